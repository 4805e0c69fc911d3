package Jangteo::Stack;

# The one way to boot jangteo: MariaDB + Redis + jangteod + nginx, all
# private to one state directory and bound to 127.0.0.1 on free ports.
# Used by scripts/jangteo-local and by every integration test in t/, so a
# test exercises exactly what a developer runs.
#
# Every process we start is our direct child, in its own process group (a
# terminal's Ctrl-C reaches only us, and we stop the stack in order), and is
# asked by the kernel to exit with SIGTERM if we die without cleaning up.
# Nothing is ever found or killed by name: several stacks may run side by side.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Config;
use Encode ();
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h setpgid _exit);
use Scalar::Util qw(weaken);
use Time::HiRes qw(time sleep);

our $VERSION = '0.1';

my $JSON = JSON::PP->new->utf8->canonical;

# Live stacks, weakly held, so END and the signal handlers can stop them all.
my %LIVE;
my $HANDLERS_SET;

sub srcdir {
    return $ENV{JANGTEO_SRCDIR} if $ENV{JANGTEO_SRCDIR};
    # t/lib/Jangteo/Stack.pm -> checkout root
    return abs_path(dirname(__FILE__) . '/../../..');
}

sub builddir { $ENV{JANGTEO_BUILDDIR} || srcdir() }

# A port the kernel just handed out on 127.0.0.1. Racy by nature (we close it
# before the server binds it), so start-up retries once on a bind failure.
sub free_port {
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1,
    ) or croak "cannot bind 127.0.0.1:0: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        workers    => 4,
        conf       => {},
        demo       => 0,
        persistent => 0,
        boot_timeout => $ENV{JANGTEO_BOOT_TIMEOUT} || 60,
        %opt,
        owner => $$,
        pids  => {},
    }, $class;

    if (!$self->{dir}) {
        $self->{dir} = tempdir('jangteo-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{JANGTEO_KEEP_STATE});
    }
    make_path($self->{dir});
    $self->{dir} = abs_path($self->{dir});
    # sun_path is 108 bytes; the longest socket name we use is jangteod.sock.
    croak "state dir too long for unix sockets: $self->{dir}" if length($self->{dir}) > 90;

    $self->{src}   = srcdir();
    $self->{build} = builddir();
    $self->{_http_port_auto} = !$self->{http_port};
    $self->{http_port} ||= free_port();
    $self->{fcgi_port} ||= free_port() if $self->{fcgi_tcp};

    # Product names are Korean: let test output carry characters.
    if ($INC{'Test/Builder.pm'} && !$self->{_utf8_tb}) {
        my $tb = Test::Builder->new;
        binmode($tb->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);
    }

    return $self->boot;
}

# Registers $self for teardown and starts it (_start); on any failure
# prints the logs, stops what was started and croaks.
sub boot {
    my ($self) = @_;
    $self->register;
    my $ok = eval { $self->_start; 1 };
    if (!$ok) {
        my $err = $@;
        $self->_dump_logs_on_failure(1);
        $self->stop;
        croak $err;
    }
    return $self;
}

# ---------------------------------------------------------------- accessors

sub dir       { $_[0]{dir} }
sub conf_path { "$_[0]{dir}/jangteod.conf" }
sub http_port { $_[0]{http_port} }
sub fcgi_port { $_[0]{fcgi_port} }
sub db_port   { $_[0]{db_port} }
sub redis_port { $_[0]{redis_port} }
sub db_socket { "$_[0]{dir}/mariadb.sock" }
sub master_pid { $_[0]{pids}{jangteod} }
sub nginx_pid  { $_[0]{pids}{nginx} }
sub url       { my ($self, $path) = @_; $path //= '/'; "http://127.0.0.1:$self->{http_port}$path" }

sub bin {
    my ($self, $name) = @_;
    my $p = "$self->{build}/src/$name";
    croak "$p not found or not executable (build first: make)" unless -x $p;
    return $p;
}

# ---------------------------------------------------------------- start-up

sub _start {
    my ($self) = @_;
    my $d = $self->{dir};
    $self->bin($_) for qw(jangteod jangteo-admin);    # fail before starting anything
    make_path("$d/secrets", "$d/nginx-tmp", "$d/tmp");
    chmod 0700, "$d/secrets";
    $self->_ensure_pii_key;

    $self->_retry_port('db_port', sub { $self->start_mariadb });
    $self->_create_db_and_accounts;
    $self->_retry_port('redis_port', sub { $self->start_redis });
    $self->start_pgsim if $self->{pgsim};
    $self->_write_app_conf;

    my ($rc, $out) = $self->admin('migrate');
    croak "jangteo-admin migrate failed (exit $rc):\n$out" if $rc != 0;
    $self->{migrate_output} = $out;
    if ($self->{demo}) {
        my $marker = "$d/demo-data.out";
        if ($self->{persistent} && -s $marker) {
            $self->{demo_output} = _slurp($marker);
        } else {
            ($rc, $out) = $self->admin('demo-data');
            croak "jangteo-admin demo-data failed (exit $rc):\n$out" if $rc != 0;
            $self->{demo_output} = $out;
            _spew($marker, $out, 0600);
        }
    }

    $self->start_app;
    $self->start_nginx;
}

# Runs $start; if the component died early (most likely: someone else took
# the free port between our probe and its bind), picks a new port once.
sub _retry_port {
    my ($self, $key, $start) = @_;
    $self->{$key} ||= free_port();
    my $ok = eval { $start->(); 1 };
    return if $ok;
    my $err = $@;
    warn "Jangteo::Stack: retrying with a new port after: $err";
    $self->{$key} = free_port();
    $start->();
}

sub start_mariadb {
    my ($self) = @_;
    my $d       = $self->{dir};
    my $datadir = "$d/mariadb";
    my $user    = getpwuid($>) // 'root';
    $self->{db_port} ||= free_port();

    if (!-d "$datadir/mysql") {
        croak "$datadir exists but holds no database; remove it" if -d $datadir && !$self->{persistent} && glob("$datadir/*");
        # Its bootstrap server puts temporary tables in $TMPDIR: a shared
        # /tmp lets two stacks installing at once collide.
        make_path("$d/tmp");
        my ($rc, $out) = do {
            local $ENV{TMPDIR} = "$d/tmp";
            _run_capture(
                'mariadb-install-db', '--no-defaults', '--auth-root-authentication-method=normal',
                "--user=$user", "--datadir=$datadir", '--skip-test-db',
            );
        };
        if ($rc != 0) {
            remove_tree($datadir);    # half a system database must not be reused
            croak "mariadb-install-db failed (exit $rc):\n$out";
        }
    }
    unlink "$d/mariadb.sock", "$d/mariadb.pid";

    $self->_spawn('mariadbd', "$d/mariadb.out",
        'mariadbd', '--no-defaults', "--datadir=$datadir", "--socket=$d/mariadb.sock",
        "--port=$self->{db_port}", '--bind-address=127.0.0.1', "--user=$user",
        '--skip-log-bin', '--skip-name-resolve',
        '--innodb-buffer-pool-size=256M', '--innodb-flush-log-at-trx-commit=1',
        '--max-connections=500', '--character-set-server=utf8mb4',
        '--collation-server=utf8mb4_unicode_ci', "--log-error=$d/mariadb.err",
        "--pid-file=$d/mariadb.pid", "--tmpdir=$d/tmp",
        @{ $self->{mariadb_args} || [] },    # a bench's or probe's extra settings
    );
    $self->_wait_for('mariadbd', sub {
        my ($rc) = _run_capture($self->_mariadb_cmd, '-e', 'select 1');
        $rc == 0;
    }, "$d/mariadb.err");
    return 1;
}

sub stop_mariadb {
    my ($self) = @_;
    $self->_stop_child('mariadbd', 'TERM', 60);
}

sub start_redis {
    my ($self) = @_;
    my $d = $self->{dir};
    $self->{redis_port} ||= free_port();
    $self->_spawn('redis', "$d/redis.out",
        'redis-server', '--port', $self->{redis_port}, '--bind', '127.0.0.1',
        '--unixsocket', "$d/redis.sock", '--unixsocketperm', '700',
        '--save', '', '--appendonly', 'no', '--daemonize', 'no',
        '--dir', $d, '--logfile', "$d/redis.log",
    );
    $self->_wait_for('redis', sub {
        my ($rc, $out) = _run_capture('redis-cli', '-p', $self->{redis_port}, 'ping');
        $rc == 0 && $out =~ /PONG/;
    }, "$d/redis.log");
    return 1;
}

# pgsim => 1: the payment gateway simulator (scripts/jangteo-pgsim) on a
# port it picks itself, its state kept in the stack dir, and [payments]
# pointed at it. Its webhook goes to this stack's nginx.
sub start_pgsim {
    my ($self) = @_;
    my $d = $self->{dir};
    my $secret = "$d/secrets/pg_imp_secret";
    _spew($secret, _random_hex(24) . "\n", 0600) unless -s $secret;
    chmod 0600, $secret;
    unlink "$d/pgsim.port";
    # a restart keeps the port jangteod was configured with
    my $port = $self->{pgsim_port} // 0;
    $self->_spawn('pgsim', "$d/pgsim.out",
        $^X, "$self->{src}/scripts/jangteo-pgsim", '--state', "$d/pgsim-state", '--imp-key', 'jangteo-sim-key',
        '--imp-secret-file', $secret, '--port', $port, '--port-file', "$d/pgsim.port", '--log', "$d/pgsim.log",
        '--webhook-url', "http://127.0.0.1:$self->{http_port}/api/v1/payments/webhook",
    );
    $self->_wait_for('pgsim', sub {
        return 0 unless -s "$d/pgsim.port";
        ($self->{pgsim_port}) = _slurp("$d/pgsim.port") =~ /(\d+)/;
        my $r = $self->_http->get($self->pgsim_url("/_sim/health"));
        $r->{status} == 200;
    }, "$d/pgsim.log", "$d/pgsim.out");
    return 1;
}

sub stop_pgsim {
    my ($self) = @_;
    $self->_stop_child('pgsim', 'TERM', 10);
}

sub pgsim_pid { $_[0]{pids}{pgsim} }

sub pgsim_url { my ($self, $path) = @_; "http://127.0.0.1:$self->{pgsim_port}" . ($path // '') }

# A request to the simulator (its control API, or the gateway itself):
# returns the decoded JSON answer with `_status` added.
sub pgsim {
    my ($self, $method, $path, $data) = @_;
    my %o = (headers => { 'Content-Type' => 'application/json' });
    $o{content} = $JSON->encode($data) if defined $data;
    my $r = $self->_http->request($method, $self->pgsim_url($path), \%o);
    my $j = eval { $JSON->decode($r->{content} // '') };
    $j = { _body => $r->{content} } unless ref $j eq 'HASH';
    $j->{_status} = $r->{status};
    return $j;
}

sub stop_redis {
    my ($self) = @_;
    return unless $self->_alive('redis');
    _run_capture('redis-cli', '-p', $self->{redis_port}, 'shutdown', 'nosave');
    $self->_stop_child('redis', 'TERM', 10);
}

sub start_app {
    my ($self) = @_;
    my $d = $self->{dir};
    unlink "$d/jangteod.sock";
    $self->_spawn('jangteod', "$d/jangteod.out", $self->bin('jangteod'), '-c', $self->conf_path);
    # fcgi_tcp => 1: jangteod listens on 127.0.0.1:fcgi_port (TCP) instead
    # of its unix socket, as an app host behind a remote nginx does
    my $ready = $self->{fcgi_tcp}
        ? sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{fcgi_port}, Proto => 'tcp', Timeout => 1) }
        : sub { -S "$d/jangteod.sock" };
    $self->_wait_for('jangteod', $ready, "$d/jangteod-error.log", "$d/jangteod.out");
    return 1;
}

sub stop_app {
    my ($self) = @_;
    my @workers = $self->_alive('jangteod') ? $self->worker_pids : ();
    $self->_stop_child('jangteod', 'TERM', 15);
    # A master that died hard may leave orphans; they are ours (we saw them
    # as its children), so end them rather than leak them.
    for my $w (@workers) {
        kill 'KILL', $w if _is_orphan_of($w, $self->{bins_seen}{jangteod});
    }
}

sub start_nginx {
    my ($self) = @_;
    my $d = $self->{dir};
    $self->_write_nginx_conf;
    my ($rc, $out) = _run_capture('nginx', '-t', '-q', '-c', "$d/nginx.conf", '-p', "$d/");
    croak "nginx -t failed:\n$out" if $rc != 0;
    my $try = 0;
    while (1) {
        my $ok = eval {
            $self->_spawn('nginx', "$d/nginx.out", 'nginx', '-c', "$d/nginx.conf", '-p', "$d/");
            $self->_wait_for('nginx', sub {
                my $r = $self->_http->get($self->url('/healthz'));
                $r->{status} == 200;
            }, "$d/nginx-error.log", "$d/jangteod-error.log");
            1;
        };
        return 1 if $ok;
        my $err = $@;
        die $err if $try++ || !$self->{_http_port_auto};
        # Port stolen between probe and bind: pick another and try once more.
        $self->_stop_child('nginx', 'QUIT', 10);
        $self->{http_port} = free_port();
        $self->_write_nginx_conf;
    }
}

sub stop_nginx {
    my ($self) = @_;
    $self->_stop_child('nginx', 'QUIT', 15);
}

sub reload_nginx {
    my ($self) = @_;
    $self->_write_nginx_conf;
    my $pid = $self->{pids}{nginx} or croak 'nginx not running';
    kill 'HUP', $pid;
}

# ---------------------------------------------------------------- config files

sub _create_db_and_accounts {
    my ($self) = @_;
    my $d = $self->{dir};
    my %pw;
    for my $who (qw(app migrate)) {
        my $f = "$d/secrets/db_$who.pw";
        if (!-s $f) {
            _spew($f, _random_password(), 0600);
        }
        chmod 0600, $f;
        ($pw{$who} = _slurp($f)) =~ s/\s+\z//;
    }
    my @sql = ('CREATE DATABASE IF NOT EXISTS jangteo CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;');
    for my $host ('localhost', '127.0.0.1') {
        push @sql,
            "CREATE USER IF NOT EXISTS 'jangteo_migrate'\@'$host';",
            "ALTER USER 'jangteo_migrate'\@'$host' IDENTIFIED BY '$pw{migrate}';",
            "GRANT ALL PRIVILEGES ON jangteo.* TO 'jangteo_migrate'\@'$host';",
            "CREATE USER IF NOT EXISTS 'jangteo_app'\@'$host';",
            "ALTER USER 'jangteo_app'\@'$host' IDENTIFIED BY '$pw{app}';",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON jangteo.* TO 'jangteo_app'\@'$host';";
    }
    my ($rc, $out) = _run_capture($self->_mariadb_cmd, '-e', join("\n", @sql));
    croak "creating database/accounts failed:\n$out" if $rc != 0;
}

# The key that seals PII columns. Kept with the state: in a persistent state
# dir, losing it would make every sealed value unreadable.
sub _ensure_pii_key {
    my ($self) = @_;
    my $f = "$self->{dir}/secrets/pii.key";
    _spew($f, '1 ' . _random_hex(32) . "\n", 0600) unless -s $f;
    chmod 0600, $f;
}

sub _random_password { _random_hex(24) }

sub _random_hex {
    my ($n) = @_;
    open my $fh, '<:raw', '/dev/urandom' or croak "urandom: $!";
    read($fh, my $b, $n) == $n or croak 'short read from urandom';
    return unpack('H*', $b);
}

sub _app_conf_sections {
    my ($self) = @_;
    my $d = $self->{dir};
    my %s = (
        server => [
            listen => $self->{fcgi_tcp} ? "127.0.0.1:$self->{fcgi_port}" : "unix:$d/jangteod.sock",
            listen_mode => '0666',
            listen_backlog => 1024,
            workers => $self->{workers},
            max_requests => 0,
            request_timeout => 30,
            error_log => "$d/jangteod-error.log",
            access_log => "$d/jangteod-access.log",
            pid_file => "$d/jangteod.pid",
            body_max => 65536,
        ],
        mariadb => [
            socket => "$d/mariadb.sock",
            host => '127.0.0.1',
            port => $self->{db_port},
            database => 'jangteo',
            user => 'jangteo_app',
            password_file => "$d/secrets/db_app.pw",
        ],
        migrate => [
            user => 'jangteo_migrate',
            password_file => "$d/secrets/db_migrate.pw",
            sql_dir => "$self->{src}/sql",
        ],
        # the unix socket, as on a single host (MariaDB's too); the port
        # stays open for redis-cli and for tests that want TCP
        redis => [
            host => '127.0.0.1',
            port => $self->{redis_port},
            socket => "$d/redis.sock",
        ],
        pii => [
            key_file => "$d/secrets/pii.key",
        ],
    );
    my @order = qw(server mariadb migrate redis pii);
    if ($self->{pgsim}) {
        my $url = $self->pgsim_url;
        $s{payments} = [
            pg_url => $url,
            imp_key => 'jangteo-sim-key',
            imp_secret_file => "$d/secrets/pg_imp_secret",
            pay_url => "$url/pay/",
            webhook_allow => '127.0.0.1',
        ];
        push @order, 'payments';
    }
    return (\%s, \@order);
}

# Generated INI: our defaults, then the caller's `conf` merged in (a value of
# undef deletes a key; unknown sections and keys are appended).
sub _write_app_conf {
    my ($self) = @_;
    my ($s, $order) = $self->_app_conf_sections;
    my $conf = $self->{conf} || {};
    my @sections = (@$order, sort grep { !$s->{$_} } keys %$conf);
    my $text = "; generated by t/lib/Jangteo/Stack.pm -- edits are overwritten\n";
    for my $sec (@sections) {
        my @kv = @{ $s->{$sec} || [] };
        my %over = %{ $conf->{$sec} || {} };
        $text .= "\n[$sec]\n";
        for (my $i = 0; $i < @kv; $i += 2) {
            my $k = $kv[$i];
            if (exists $over{$k}) {
                my $v = delete $over{$k};
                $text .= "$k = $v\n" if defined $v;
            } else {
                $text .= "$k = $kv[$i+1]\n";
            }
        }
        for my $k (sort keys %over) {
            $text .= "$k = $over{$k}\n" if defined $over{$k};
        }
    }
    _spew($self->conf_path, $text, 0600);
}

sub _write_nginx_conf {
    my ($self) = @_;
    my $d = $self->{dir};
    # Relative includes resolve against the prefix: give it the stock file.
    for my $f ('fastcgi_params') {
        my $sys = "/etc/nginx/$f";
        _spew("$d/$f", _slurp($sys), 0644) if -r $sys;
    }
    make_path(map { "$d/nginx-tmp/$_" } qw(client_body proxy fastcgi uwsgi scgi));
    $self->_link_web_root;
    my $user = $> == 0 ? "user root;\n" : '';
    my $locations = "$self->{src}/conf/nginx/jangteo-locations.conf";
    # rate_limits => 1: the shipped limits per client address (local stack)
    my $limit_key = $self->{rate_limits} ? '$binary_remote_addr' : '$jangteo_no_limit';
    my $zones = join '', map { "    limit_req_zone $limit_key zone=$_->{zone}:$_->{size} rate=$_->{rate};\n" }
        $self->limit_zones;
    # nginx_extra => "location ... { }" or sub { my ($dir) = @_; ... }: more
    # locations in the same server (benchmarks put their floors there)
    my $extra = ref $self->{nginx_extra} eq 'CODE' ? $self->{nginx_extra}->($d) : ($self->{nginx_extra} // '');
    croak "$locations missing" unless -r $locations;
    # upstream_servers => [ 'ADDR PARAMS', ... ]: several app hosts
    # (Jangteo::Cluster); otherwise the one jangteod of this stack
    my @servers = $self->{upstream_servers} ? @{ $self->{upstream_servers} }
        : ($self->{fcgi_tcp} ? "127.0.0.1:$self->{fcgi_port}" : "unix:$d/jangteod.sock");
    my $upstream = join("\n        ", map { "server $_;" } @servers);
    my $text = <<"EOF";
# generated by t/lib/Jangteo/Stack.pm -- edits are overwritten
daemon off;
master_process on;
${user}worker_processes 2;
pid $d/nginx.pid;
error_log $d/nginx-error.log warn;

events {
    worker_connections 4096;
}

http {
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    keepalive_timeout 30s;
    keepalive_requests 100000;

    client_body_temp_path $d/nginx-tmp/client_body;
    proxy_temp_path       $d/nginx-tmp/proxy;
    fastcgi_temp_path     $d/nginx-tmp/fastcgi;
    uwsgi_temp_path       $d/nginx-tmp/uwsgi;
    scgi_temp_path        $d/nginx-tmp/scgi;

    # A client's X-Request-Id is kept if it is a sane token (it ends up in
    # logs); otherwise nginx makes one.
    map \$http_x_request_id \$jangteo_request_id {
        default                      \$request_id;
        "~^[A-Za-z0-9._:\@=+/-]{1,128}\$" \$http_x_request_id;
    }

    # the request line without its query string (as in
    # conf/nginx/jangteo-site.conf.in, which says why not \$request_method
    # \$uri: an error page's internal redirect turns those into
    # "GET /_jangteo/error/NNN")
    map \$request \$jangteo_log_request {
        default                                          \$request;
        "~^(?<jangteo_log_a>[^?]*)\\?\\S*(?<jangteo_log_b>.*)\$" "\$jangteo_log_a\$jangteo_log_b";
    }
    log_format jangteo '\$remote_addr [\$time_iso8601] "\$jangteo_log_request" \$status \$body_bytes_sent '
                       'rt=\$request_time urt=\$upstream_response_time rid=\$jangteo_request_id ua=\$upstream_addr';
    access_log $d/nginx-access.log jangteo;

    # The zones conf/nginx/jangteo-site.conf.in defines, so the locations
    # file may use limit_req the same way in production and here. Tests get
    # an empty key (nginx does not count those) unless they ask for limits.
    map \$host \$jangteo_no_limit { default ""; }
$zones    limit_req_status 429;

    # No keepalive to the app: each FastCGI connection is one request.
    upstream jangteo {
        $upstream
    }

    server {
        listen 127.0.0.1:$self->{http_port} backlog=4096;
        server_name localhost;
        root $d/www;
        include $locations;
$extra    }
}
EOF
    _spew("$d/nginx.conf", $text, 0644);
}

# The rate-limit zones as shipped (conf/nginx/jangteo-site.conf.in): each
# {zone, size, rate}. The local stack and the tests use these same rates,
# keyed per address only when asked (rate_limits => 1).
sub limit_zones {
    my ($self) = @_;
    my $site = _slurp("$self->{src}/conf/nginx/jangteo-site.conf.in");
    my @z;
    while ($site =~ /^\s*limit_req_zone\s+\S+\s+zone=(\w+):(\w+)\s+rate=(\w+\/[sm])\s*;/mg) {
        push @z, { zone => $1, size => $2, rate => $3 };
    }
    croak 'no limit_req_zone in conf/nginx/jangteo-site.conf.in' unless @z;
    return @z;
}

# Which locations are limited, from conf/nginx/jangteo-locations.conf: each
# {path, zone, rate, burst}, for the local stack's banner.
sub rate_limits {
    my ($self) = @_;
    my %rate = map { $_->{zone} => $_->{rate} } $self->limit_zones;
    my $loc = _slurp("$self->{src}/conf/nginx/jangteo-locations.conf");
    my @l;
    while ($loc =~ /^location\s+=?\s*(\S+)\s*\{([^}]*)\}/mg) {
        my ($path, $body) = ($1, $2);
        next unless $body =~ /limit_req\s+zone=(\w+)(?:\s+burst=(\d+))?/;
        push @l, { path => $path, zone => $1, burst => $2 // 0, rate => $rate{$1} // '?' };
    }
    return @l;
}
sub rate_limited { $_[0]{rate_limits} ? 1 : 0 }

# The server's root as `make install` lays it out (@pkgdatadir@/web): the
# storefront's files, and api/ with the built docs and the spec, as links
# into the checkout and the build, so an edited page is served at once.
sub _link_web_root {
    my ($self) = @_;
    my $www = "$self->{dir}/www";
    remove_tree($www) if -e $www;
    make_path("$www/api");
    opendir(my $dh, "$self->{src}/web") or croak "$self->{src}/web: $!";
    for my $e (grep { !/^\./ } readdir $dh) {
        symlink("$self->{src}/web/$e", "$www/$e") or croak "symlink $www/$e: $!";
    }
    closedir $dh;
    symlink("$self->{src}/openapi/jangteo.yaml", "$www/api/jangteo.yaml") or croak "symlink: $!";
    # built by make (redocly build-docs); absent, /api/docs is a 404
    symlink("$self->{build}/openapi/jangteo.html", "$www/api/jangteo.html") or croak "symlink: $!";
}

# ---------------------------------------------------------------- processes

sub _spawn {
    my ($self, $name, $outfile, @cmd) = @_;
    croak "$name already running" if $self->_alive($name);
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        eval {
            setpgid(0, 0);
            _die_with_parent();
            # netns => { NAME => namespace }: that component runs inside a
            # network namespace (Jangteo::Cluster's hosts)
            enter_netns($self->{netns}{$name}) if $self->{netns} && $self->{netns}{$name};
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', $outfile or die "open $outfile: $!";
            open STDERR, '>&', \*STDOUT;
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
        };
        print STDERR "spawn $name: $@";
        _exit(127);
    }
    $self->{pids}{$name} = $pid;
    $self->{bins_seen}{$name} = $pid;
    $self->{exit}{$name} = undef;
    return $pid;
}

# Ask the kernel to SIGTERM the child if this process dies without cleaning
# up (a kill -9 on a test). Best effort: Linux prctl(PR_SET_PDEATHSIG).
sub _die_with_parent {
    my %nr = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172, arm => 172);
    my ($arch) = $Config{archname} =~ /^([^-]+)/;
    return unless $^O eq 'linux' && $nr{$arch};
    syscall($nr{$arch}, 1, 15);
}

# Moves the calling process into the named network namespace (ip netns
# add made it: /run/netns/NAME), as `ip netns exec` does, by setns(2).
sub enter_netns {
    my ($ns) = @_;
    my %nr = (x86_64 => 308, aarch64 => 268, i386 => 346, i686 => 346, arm => 375);
    my ($arch) = $Config{archname} =~ /^([^-]+)/;
    croak "setns: unknown syscall number on $arch" unless $nr{$arch};
    open(my $fh, '<', "/run/netns/$ns") or croak "netns $ns: $!";
    syscall($nr{$arch}, fileno($fh), 0x40000000) == 0 or croak "setns $ns: $!";    # CLONE_NEWNET
    close $fh;
}

sub _alive {
    my ($self, $name) = @_;
    my $pid = $self->{pids}{$name} or return 0;
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid || $r == -1) {
        $self->{exit}{$name} = $r == $pid ? $? : -1;
        delete $self->{pids}{$name};
        return 0;
    }
    return 1;
}

# Names of components that have died since they were started.
sub dead_components {
    my ($self) = @_;
    my @dead;
    for my $name (sort keys %{ $self->{bins_seen} || {} }) {
        next unless $self->{pids}{$name};
        push @dead, $name unless $self->_alive($name);
    }
    return @dead;
}

sub _wait_for {
    my ($self, $name, $cond, @logs) = @_;
    my $deadline = time + $self->{boot_timeout};
    while (time < $deadline) {
        return 1 if eval { $cond->() };
        if (!$self->_alive($name)) {
            croak "$name exited during start-up (status $self->{exit}{$name})\n" . _tails(@logs);
        }
        sleep 0.05;
    }
    croak "$name not ready after $self->{boot_timeout}s\n" . _tails(@logs);
}

# Signal, wait bounded, then SIGKILL. Returns the exit status.
sub _stop_child {
    my ($self, $name, $sig, $timeout) = @_;
    my $pid = $self->{pids}{$name} or return $self->{exit}{$name};
    kill $sig, $pid if $sig;
    return $self->{exit}{$name} if $self->_wait_child($name, $timeout);
    warn "Jangteo::Stack: $name (pid $pid) ignored SIG$sig for ${timeout}s; killing\n";
    kill 'KILL', $pid;
    $self->_wait_child($name, 10);
    return $self->{exit}{$name};
}

sub _wait_child {
    my ($self, $name, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 unless $self->_alive($name);
        return 0 if time >= $deadline;
        sleep 0.02;
    }
}

# For tests of a master that exits by itself (graceful stop): true if it did
# within $timeout seconds; its wait status is then in exit_status('jangteod').
sub wait_master_exit {
    my ($self, $timeout) = @_;
    return $self->_wait_child('jangteod', $timeout // 15);
}

sub exit_status { $_[0]{exit}{$_[1]} }

sub _is_orphan_of {
    my ($pid, $master) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/;
    return 0 unless defined $ppid && ($ppid == 1 || ($master && $ppid == $master));
    # Reused pid? Only kill what is still a jangteod.
    open my $ch, '<', "/proc/$pid/cmdline" or return 0;
    local $/;
    my $cmd = <$ch> // '';
    return $cmd =~ /jangteod/;
}

sub worker_pids {
    my ($self) = @_;
    my $m = $self->master_pid or return ();
    my ($rc, $out) = _run_capture('ps', '-o', 'pid=,comm=', '--ppid', $m);
    # FastCGI workers name themselves jangteod-worker; bid consumers
    # jangteod-bids (see consumer_pids)
    return sort { $a <=> $b } map { /^\s*(\d+)\s+jangteod-worker/ ? $1 : () } split /\n/, $out;
}

sub consumer_pids {
    my ($self) = @_;
    my $m = $self->master_pid or return ();
    my ($rc, $out) = _run_capture('ps', '-o', 'pid=,comm=', '--ppid', $m);
    return sort { $a <=> $b } map { /^\s*(\d+)\s+jangteod-bids/ ? $1 : () } split /\n/, $out;
}

# payment sweepers name themselves jangteod-pays
sub sweeper_pids {
    my ($self) = @_;
    my $m = $self->master_pid or return ();
    my ($rc, $out) = _run_capture('ps', '-o', 'pid=,comm=', '--ppid', $m);
    return sort { $a <=> $b } map { /^\s*(\d+)\s+jangteod-pays/ ? $1 : () } split /\n/, $out;
}

# Polls until the master has $n workers (default: configured count), none of
# them in @not; returns the pids, or an empty list after $timeout seconds.
sub wait_workers {
    my ($self, %a) = @_;
    my $n = $a{count} // $self->{conf}{server}{workers} // $self->{workers};
    my %not = map { $_ => 1 } @{ $a{not} || [] };
    my $deadline = time + ($a{timeout} // 20);
    while (time < $deadline) {
        my @w = $self->worker_pids;
        return @w if @w == $n && !grep { $not{$_} } @w;
        sleep 0.05;
    }
    return ();
}

sub signal_master {
    my ($self, $sig) = @_;
    my $m = $self->master_pid or croak 'jangteod not running';
    kill $sig, $m or croak "kill $sig $m: $!";
}

# ---------------------------------------------------------------- helpers for tests

# An HTTP client for 127.0.0.1: no proxy, no keep-alive (so a forked child
# may share it), no redirects; timeout => seconds (30).
sub http_client {
    my (%o) = @_;
    return HTTP::Tiny->new(
        timeout => $o{timeout} // 30, proxy => undef, http_proxy => undef, https_proxy => undef,
        no_proxy => ['127.0.0.1', 'localhost'], agent => 'jangteo-test/1',
        keep_alive => 0, max_redirect => 0,
    );
}

sub _http {
    my ($self) = @_;
    $self->{http} ||= http_client();
}

# The one HTTP request of the test library (Jangteo::Client builds on it):
# $body is sent as given. The answer is a plain hash: status, reason,
# headers (names lower-cased, a repeated header's values joined with ","),
# body, json (when the answer is JSON), code (a problem's), elapsed
# (seconds). `http => $client` sends it through another HTTP::Tiny (a forked
# child's own, or one with a longer timeout). HTTP::Tiny reports its own
# failures (refused, timed out) as status 599.
sub request {
    my ($self, $method, $path, $headers, $body, %opt) = @_;
    local $SIG{PIPE} = 'IGNORE';    # a server may answer (413) and close before we finish sending
    my %o = (headers => { %{ $headers || {} } });
    $o{content} = $body if defined $body;
    my $t0 = time;
    my $r = ($opt{http} || $self->_http)->request($method, $self->url($path), \%o);
    my %h = map { lc($_) => (ref $r->{headers}{$_} ? join(',', @{ $r->{headers}{$_} }) : $r->{headers}{$_}) }
        keys %{ $r->{headers} || {} };
    my $res = { status => $r->{status}, reason => $r->{reason}, headers => \%h, body => $r->{content} // '',
                elapsed => time - $t0 };
    if (($h{'content-type'} // '') =~ m{^application/(?:[\w.+-]+\+)?json\b}i) {
        $res->{json} = eval { $JSON->decode($res->{body}) };
        $res->{code} = $res->{json}{code} if ref $res->{json} eq 'HASH';
    }
    return $res;
}

sub get { my ($self, $path, $h) = @_; $self->request('GET', $path, $h) }

sub post_json {
    my ($self, $path, $data, $h) = @_;
    my $body = ref $data ? $JSON->encode($data) : $data;
    return $self->request('POST', $path, { 'Content-Type' => 'application/json', %{ $h || {} } }, $body);
}

sub _mariadb_cmd {
    my ($self) = @_;
    return ('mariadb', '--no-defaults', '-uroot', "--socket=$self->{dir}/mariadb.sock");
}

# Rows of a query as root on database jangteo, each an arrayref of strings.
sub sql {
    my ($self, $query) = @_;
    my ($rc, $out) = _run_capture($self->_mariadb_cmd, '--default-character-set=utf8mb4',
        '-N', '-B', 'jangteo', '-e', Encode::encode('UTF-8', $query));
    croak "sql failed: $query\n$out" if $rc != 0;
    $out = Encode::decode('UTF-8', $out);
    return [ map { [ split /\t/, $_, -1 ] } grep { length } split /\n/, $out ];
}

sub redis {
    my ($self, @args) = @_;
    my ($rc, $out) = _run_capture('redis-cli', '-p', $self->{redis_port}, @args);
    chomp $out;
    return $out;
}

sub admin {
    my ($self, @args) = @_;
    return _run_capture($self->bin('jangteo-admin'), '-c', $self->conf_path, @args);
}

# After a role, an expiry or a token was changed in SQL rather than through
# the API: the token caches forget (jangteo-admin auth-flush, as a site
# would run it), and every worker has read Redis' auth:epoch again once a
# poll interval ([auth] cache_poll_ms, 200 ms) has passed; twice that, to
# be sure, is waited here.
sub auth_changed {
    my ($self) = @_;
    my ($rc, $out) = $self->admin('auth-flush');
    croak "auth-flush failed: $out" if $rc != 0;
    select(undef, undef, undef, 0.5);
    return;
}

sub demo_output    { $_[0]{demo_output} // '' }
sub migrate_output { $_[0]{migrate_output} // '' }

my %LOGS = (
    error => 'jangteod-error.log', access => 'jangteod-access.log', out => 'jangteod.out',
    nginx => 'nginx-access.log', 'nginx-error' => 'nginx-error.log',
    mariadb => 'mariadb.err', redis => 'redis.log', pgsim => 'pgsim.log',
);

sub log_path { my ($self, $which) = @_; "$self->{dir}/" . ($LOGS{$which} // $which) }
sub log_text {
    my ($self, $which) = @_;
    my $p = $self->log_path($which);
    return -e $p ? _slurp($p) : '';
}

# ab against a path. ab_start returns a handle (it runs in the background);
# ab_wait parses the result; ab does both.
sub ab_start {
    my ($self, %a) = @_;
    my $path = $a{path} // '/api/v1/products/1';
    my @cmd = ('ab', '-q', '-r', '-n', $a{n} // 1000, '-c', $a{c} // 10, '-s', $a{timeout} // 30);
    push @cmd, '-k' if $a{k} || $a{keepalive};
    push @cmd, '-H', $_ for @{ $a{headers} || [] };
    push @cmd, @{ $a{args} || [] };
    push @cmd, $self->url($path);
    my $out = File::Temp->new(TEMPLATE => 'ab-XXXXXX', DIR => $self->{dir}, UNLINK => 1);
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setpgid(0, 0);
        _die_with_parent();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename;
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or _exit(127);
    }
    return { pid => $pid, out => $out, cmd => \@cmd };
}

sub ab_wait {
    my ($self, $h, $timeout) = @_;
    my $deadline = time + ($timeout // 120);
    my $r;
    while (($r = waitpid($h->{pid}, WNOHANG)) == 0) {
        if (time > $deadline) { kill 'KILL', $h->{pid}; waitpid($h->{pid}, 0); last }
        sleep 0.05;
    }
    my $exit = $?;
    require Jangteo::Bench;
    my $res = Jangteo::Bench::ab_parse(_slurp($h->{out}->filename));
    $res->{exit} = $exit >> 8;
    return $res;
}

sub ab {
    my ($self, %a) = @_;
    return $self->ab_wait($self->ab_start(%a), $a{wait});
}

sub ab_running { my ($self, $h) = @_; waitpid($h->{pid}, WNOHANG) == 0 ? 1 : do { $h->{status} = $?; 0 } }

# ---------------------------------------------------------------- teardown

sub stop {
    my ($self, $force) = @_;
    return if $$ != $self->{owner};    # a forked child must not tear down the parent's stack
    # $force: a signal handler interrupting a stop in progress finishes it.
    return if $self->{stopped}++ && !$force;
    local ($?, $@, $!);
    $self->_dump_logs_on_failure unless $force;
    eval { $self->stop_nginx };
    eval { $self->stop_app };
    eval { $self->stop_pgsim };
    $self->_check_sanitizer_output unless $force;
    eval { $self->stop_redis };
    eval { $self->stop_mariadb };
    delete $LIVE{"$self"};
}

# In a sanitizer build, ASan, UBSan and LeakSanitizer write their reports to
# jangteod's stderr (jangteod.out): any such line fails the test that owns
# the stack, so every test of the suite is also a sanitizer check. A test
# that provokes a report on purpose (t/83's canary) accepts what came so far.
my $SANITIZER_REPORT = qr/ERROR: (?:Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

sub accept_sanitizer_output {
    my ($self) = @_;
    $self->{sanitizer_mark} = -s $self->log_path('out') // 0;
}

sub _check_sanitizer_output {
    my ($self) = @_;
    check_sanitizer_file($self->log_path('out'), $self->{sanitizer_mark} // 0);
}

# Fails the running test if jangteod's stderr file $path holds a sanitizer
# report past byte $mark (Jangteo::Cluster checks each app host's so).
sub check_sanitizer_file {
    my ($path, $mark) = @_;
    my $text = -e $path ? _slurp($path) : '';
    $text = substr($text, $mark <= length $text ? $mark : 0);
    return unless $text =~ $SANITIZER_REPORT;
    my ($first) = $text =~ /(^.*$SANITIZER_REPORT.*$)/m;
    if ($INC{'Test/Builder.pm'}) {
        my $tb = Test::Builder->new;
        $tb->ok(0, 'jangteod wrote no sanitizer report');
        $tb->diag("sanitizer report in $path:\n" . substr($text, 0, 6000));
    } else {
        print STDERR "sanitizer report in $path: $first\n";
    }
}

# When a test fails, the logs are the only witness: print their tails.
sub _dump_logs_on_failure {
    my ($self, $force) = @_;
    return if $self->{dumped};
    my $failed = $force;
    if (!$failed && $INC{'Test/Builder.pm'}) {
        my $tb = Test::Builder->new;
        $failed = !$tb->is_passing;
    }
    return unless $failed;
    $self->{dumped} = 1;
    my $text = _tails(map { $self->log_path($_) } qw(error out nginx-error), ($self->{pgsim} ? ('pgsim') : ()))
        . _tails(map { [ $self->log_path($_), 8 ] } qw(mariadb redis));
    if ($INC{'Test/Builder.pm'}) { Test::Builder->new->diag("stack dir $self->{dir}\n$text") }
    else { print STDERR "stack dir $self->{dir}\n$text" }
}

sub DESTROY { $_[0]->stop }

# Makes $self one of the stacks END and the signal handlers stop (a
# subclass that starts differently, Jangteo::Cluster, registers too).
sub register {
    my ($self) = @_;
    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});
    _install_handlers();
}

sub stop_all { my ($force) = @_; $_ && $_->stop($force) for values %LIVE }

END { stop_all() }

sub _install_handlers {
    return if $HANDLERS_SET++;
    for my $sig (qw(INT TERM HUP)) {
        my $prev = $SIG{$sig};
        next if ref $prev;     # the program has its own handler: it owns shutdown
        # The signal may land anywhere (inside a subtest, inside a stop):
        # stop everything from here and leave without unwinding, which
        # Test::Builder would report as a broken test instead of a signal.
        $SIG{$sig} = sub {
            local $SIG{$sig} = 'IGNORE';
            print STDERR "# Jangteo::Stack: SIG$sig, stopping stacks\n";
            stop_all(1);
            File::Temp::cleanup();
            _exit(128 + ($sig eq 'INT' ? 2 : $sig eq 'TERM' ? 15 : 1));
        };
    }
}

# ---------------------------------------------------------------- small utils

sub _run_capture {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or do { print "exec $cmd[0]: $!\n"; _exit(127) };
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out) if wantarray;
    return $out;
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or croak "open $f: $!";
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub _spew {
    my ($f, $text, $mode) = @_;
    my $tmp = "$f.tmp$$";
    open my $fh, '>:raw', $tmp or croak "open $tmp: $!";
    chmod $mode, $tmp if defined $mode;
    print $fh $text;
    close $fh or croak "close $tmp: $!";
    rename $tmp, $f or croak "rename $tmp: $!";
}

sub _tails {
    my (@files) = @_;
    my $s = '';
    for my $spec (@files) {
        my ($f, $n) = ref $spec ? @$spec : ($spec, 30);
        next unless -s $f;
        my @l = split /\n/, _slurp($f);
        @l = @l[-$n .. -1] if @l > $n;
        $s .= "---- $f (tail)\n" . join("\n", @l) . "\n";
    }
    return $s;
}

1;
