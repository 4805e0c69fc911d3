package Jangteo::Cluster;

# jangteo as a deployment of several machines, on one: network namespaces
# joined by a bridge (which lives in a namespace of its own, so nothing is
# added to the machine's own network and two runs cannot collide), each
# "host" a namespace with one veth on 10.77.0.0/24:
#
#   edge   10.77.0.2        nginx (upstream of the three app hosts) and the
#                           test itself, which moves into this namespace
#   app1-3 10.77.0.11-13    jangteod on :9000 (TCP, fastcgi_allow = edge),
#                           and a Redis Sentinel on :26379
#   db1-3  10.77.0.21-23    MariaDB Galera nodes (galera-4, rsync SST)
#   redis1 10.77.0.31       the Redis primary
#   redis2 10.77.0.32       its replica
#
# Traffic goes only to these addresses (and to the namespaces' loopback).
# Every process is our child, in its own process group, asked to die with
# us; stop() ends them, then kills whatever is left in our namespaces and
# deletes them, also on failure (END and the signal handlers of
# Jangteo::Stack, whose process and nginx helpers this class reuses).

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Encode ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use parent -norequire, 'Jangteo::Stack';
use Jangteo::Stack;

our $GALERA = '/usr/lib/galera/libgalera_smm.so';
my $NET = '10.77.0';

my %ADDR = (
    edge => "$NET.2",
    (map { ("app$_" => "$NET.1$_", "db$_" => "$NET.2$_") } 1 .. 3),
    redis1 => "$NET.31", redis2 => "$NET.32",
);

# Why this machine cannot run the cluster (undef: it can). Only the lack of
# network namespaces is a reason to skip; missing packages are failures
# (scripts/install-deps installs them).
sub unavailable {
    return 'network namespaces need root' if $> != 0;
    return 'not Linux' if $^O ne 'linux';
    my $probe = "jtprobe$$";
    my $out = `ip netns add $probe 2>&1`;
    return "cannot create a network namespace (ip netns add: $out)" if $? != 0;
    `ip netns del $probe 2>&1`;
    return undef;
}

sub addr { $ADDR{ $_[1] } }

sub new {
    my ($class, %opt) = @_;
    for my $bin (qw(ip mariadbd mariadb-install-db redis-server redis-sentinel rsync nginx wsrep_sst_rsync)) {
        croak "$bin not installed (scripts/install-deps)" unless grep { -x "$_/$bin" } split /:/, "$ENV{PATH}:/usr/sbin:/sbin";
    }
    croak "$GALERA missing (galera-4)" unless -r $GALERA;
    my $dir = tempdir('jtc-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{JANGTEO_KEEP_STATE});
    my $self = bless {
        app_workers => 3,
        conf        => {},
        boot_timeout => 120,
        %opt,
        dir   => abs_path($dir),
        src   => Jangteo::Stack::srcdir(),
        build => Jangteo::Stack::builddir(),
        owner => $$,
        pids  => {},
        id    => 'jt' . ($$ % 100000),
        namespaces => [],
        netns => {},
    }, $class;
    croak "state dir too long for unix sockets: $self->{dir}" if length($self->{dir}) > 70;
    chmod 0711, $self->{dir};    # the Galera nodes' user reaches its own directory
    return $self->boot;
}

sub ns { my ($self, $host) = @_; "$self->{id}-$host" }

sub _ip {
    my (@args) = @_;
    my $out = `ip @args 2>&1`;
    croak "ip @args: $out" if $? != 0;
    return $out;
}

sub _start {
    my ($self) = @_;
    my $d = $self->{dir};
    $self->bin($_) for qw(jangteod jangteo-admin);
    make_path("$d/secrets", "$d/nginx-tmp", "$d/tmp");
    chmod 0700, "$d/secrets";
    $self->_ensure_pii_key;
    $self->_network;
    # From here on the test is a client on the edge host.
    Jangteo::Stack::enter_netns($self->ns('edge'));
    $self->{http_port} = Jangteo::Stack::free_port();

    $self->start_db(1, bootstrap => 1);
    $self->_accounts;
    $self->start_db($_) for 2, 3;
    $self->start_redis_pair;
    $self->start_sentinel($_) for 1 .. 3;
    $self->wait_sentinels("$NET.31");
    my ($rc, $out) = $self->admin('migrate');
    croak "jangteo-admin migrate failed (exit $rc):\n$out" if $rc != 0;
    $self->start_app_host($_) for 1 .. 3;
    $self->{upstream_servers} = [ map { "$NET.1$_:9000 max_fails=1 fail_timeout=3s" } 1 .. 3 ];
    $self->start_nginx;
}

# The bridge namespace and one namespace per host, each with a veth whose
# other end is a port of the bridge.
sub _network {
    my ($self) = @_;
    my $br = $self->ns('br');
    _ip('netns', 'add', $br);
    push @{ $self->{namespaces} }, $br;
    _ip('-n', $br, 'link', 'add', 'br0', 'type', 'bridge');
    _ip('-n', $br, 'link', 'set', 'br0', 'up');
    for my $host (sort keys %ADDR) {
        my $ns = $self->ns($host);
        _ip('netns', 'add', $ns);
        push @{ $self->{namespaces} }, $ns;
        _ip('-n', $br, 'link', 'add', "p-$host", 'type', 'veth', 'peer', 'name', 'eth0', 'netns', $ns);
        _ip('-n', $br, 'link', 'set', "p-$host", 'master', 'br0', 'up');
        _ip('-n', $ns, 'addr', 'add', "$ADDR{$host}/24", 'dev', 'eth0');
        _ip('-n', $ns, 'link', 'set', 'eth0', 'up');
        _ip('-n', $ns, 'link', 'set', 'lo', 'up');
    }
}

# ---------------------------------------------------------------- Galera

sub db_dir    { "$_[0]{dir}/db$_[1]" }
sub db_socket { "$_[0]{dir}/db$_[1]/mysql.sock" }
sub db_log    { "$_[0]{dir}/db$_[1]/mariadb.err" }

# Galera nodes run as mysql when root starts them: the rsync daemon of a
# state transfer, started as root, would drop to nobody and could not write
# the joiner's datadir.
sub _db_user { $> == 0 && getpwnam('mysql') ? 'mysql' : (getpwuid($>) // 'root') }

sub _db_cnf {
    my ($self, $j) = @_;
    my $d = $self->{dir};
    my $a = $ADDR{"db$j"};
    my $cluster = join(',', map { $ADDR{"db$_"} } 1 .. 3);
    # small buffers; Galera's own failure detection (a peer is suspected
    # after 5 s): shorter timeouts evict a node that was merely starved of
    # CPU on these two shared cores, and the cluster then refuses writes
    my $opts = join(';', 'gcache.size=64M', "gmcast.listen_addr=tcp://$a:4567", "ist.recv_addr=$a:4568");
    my $user = _db_user();
    return <<"EOF";
[mysqld]
user=$user
datadir=$d/db$j/data
socket=$d/db$j/mysql.sock
pid-file=$d/db$j/mariadb.pid
tmpdir=$d/db$j/tmp
log-error=$d/db$j/mariadb.err
port=3306
bind-address=$a
skip-name-resolve
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=1
max_connections=200
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
default_storage_engine=InnoDB
binlog_format=ROW
innodb_autoinc_lock_mode=2
wsrep_on=ON
wsrep_provider=$GALERA
wsrep_cluster_name=jangteo-t95
wsrep_cluster_address=gcomm://$cluster
wsrep_node_address=$a
wsrep_node_name=db$j
wsrep_sst_method=rsync
wsrep_slave_threads=2
wsrep_provider_options="$opts"
EOF
}

# Starts Galera node $j: the first bootstraps the cluster (a fresh
# datadir), the others join it (state transfer by rsync the first time;
# rejoin => 1 after a crash: IST from the recovered position). Returns when
# the node is Synced.
sub start_db {
    my ($self, $j, %o) = @_;
    my $dd = $self->db_dir($j);
    make_path("$dd/data", "$dd/tmp");
    Jangteo::Stack::_spew("$dd/my.cnf", $self->_db_cnf($j), 0644);
    my $user = _db_user();
    my ($uid, $gid) = (getpwnam($user))[2, 3];
    chown $uid, $gid, $dd, "$dd/data", "$dd/tmp";
    if ($o{bootstrap} && !-d "$dd/data/mysql") {
        local $ENV{TMPDIR} = "$dd/tmp";
        my ($rc, $out) = Jangteo::Stack::_run_capture('mariadb-install-db', '--no-defaults',
            '--auth-root-authentication-method=normal', "--user=$user", "--datadir=$dd/data", '--skip-test-db');
        croak "mariadb-install-db failed (exit $rc):\n$out" if $rc != 0;
    }
    my @start = $o{bootstrap} ? ('--wsrep-new-cluster') : ();
    if ($o{rejoin}) {
        # after a crash grastate.dat says seqno -1: recover the position
        # from InnoDB (what galera_recovery does for the packaged unit), so
        # the node asks for the write sets it missed (IST), not a full copy
        unlink "$dd/recover.err";
        Jangteo::Stack::_run_capture('mariadbd', "--defaults-file=$dd/my.cnf", '--wsrep-recover',
            "--log-error=$dd/recover.err");
        my ($pos) = Jangteo::Stack::_slurp("$dd/recover.err") =~ /WSREP: Recovered position: (\S+)/;
        croak "db$j: mariadbd --wsrep-recover found no position" unless $pos;
        push @start, "--wsrep-start-position=$pos";
    }
    unlink $self->db_socket($j);
    $self->{netns}{"db$j"} = $self->ns("db$j");
    $self->_spawn("db$j", "$dd/mariadbd.out", 'mariadbd', "--defaults-file=$dd/my.cnf", @start);
    $self->_own_cpu("db$j", -5);
    $self->_wait_for("db$j", sub { $self->db_state($j) eq '4' }, $self->db_log($j), "$dd/mariadbd.out");
    return 1;
}

sub _db_cmd { my ($self, $j) = @_; ('mariadb', '--no-defaults', '-uroot', '--socket=' . $self->db_socket($j)) }

# wsrep_local_state of node $j ('4' = Synced), '' when it does not answer.
sub db_state {
    my ($self, $j) = @_;
    my ($rc, $out) = Jangteo::Stack::_run_capture($self->_db_cmd($j), '-N', '-B', '-e',
        "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'");
    return $rc == 0 && $out =~ /wsrep_local_state\s+(\d+)/ ? $1 : '';
}

sub db_status {
    my ($self, $j, $var) = @_;
    my $r = $self->sql_on($j, "SHOW GLOBAL STATUS LIKE '$var'");
    return @$r ? $r->[0][1] : undef;
}

sub kill_db {
    my ($self, $j) = @_;
    my $pid = $self->{pids}{"db$j"} or croak "db$j not running";
    kill 'KILL', $pid;
    $self->_wait_child("db$j", 20);
}

sub _accounts {
    my ($self) = @_;
    my $d = $self->{dir};
    my %pw;
    for my $who (qw(app migrate)) {
        my $f = "$d/secrets/db_$who.pw";
        Jangteo::Stack::_spew($f, Jangteo::Stack::_random_password(), 0600) unless -s $f;
        ($pw{$who} = Jangteo::Stack::_slurp($f)) =~ s/\s+\z//;
    }
    my $h = "$NET.%";
    $self->sql_on(1, join("\n",
        'CREATE DATABASE IF NOT EXISTS jangteo CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;',
        "CREATE USER IF NOT EXISTS 'jangteo_migrate'\@'$h' IDENTIFIED BY '$pw{migrate}';",
        "GRANT ALL PRIVILEGES ON jangteo.* TO 'jangteo_migrate'\@'$h';",
        "CREATE USER IF NOT EXISTS 'jangteo_app'\@'$h' IDENTIFIED BY '$pw{app}';",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON jangteo.* TO 'jangteo_app'\@'$h';"), db => '');
}

# Rows of a query as root on node $j (its unix socket: a file, reachable
# from every namespace), each an arrayref of strings.
sub sql_on {
    my ($self, $j, $query, %o) = @_;
    my ($rc, $out) = Jangteo::Stack::_run_capture($self->_db_cmd($j), '--default-character-set=utf8mb4',
        '-N', '-B', (($o{db} // 'jangteo') ne '' ? ($o{db} // 'jangteo') : ()), '-e', Encode::encode('UTF-8', $query));
    croak "sql on db$j failed: $query\n$out" if $rc != 0;
    $out = Encode::decode('UTF-8', $out);
    return [ map { [ split /\t/, $_, -1 ] } grep { length } split /\n/, $out ];
}

# Jangteo::Orders and the tests call sql(): the first node that is up.
sub sql {
    my ($self, $query) = @_;
    my ($j) = grep { $self->{pids}{"db$_"} } 1 .. 3;
    return $self->sql_on($j // 1, $query);
}

# ---------------------------------------------------------------- Redis and Sentinel

sub redis_dir { "$_[0]{dir}/$_[1]" }

sub start_redis_pair {
    my ($self) = @_;
    $self->start_redis_node('redis1');
    $self->start_redis_node('redis2', replicaof => "$NET.31");
}

sub start_redis_node {
    my ($self, $name, %o) = @_;
    my $rd = $self->redis_dir($name);
    make_path($rd);
    $self->{netns}{$name} = $self->ns($name);
    $self->_spawn($name, "$rd/out", 'redis-server', '--port', 6379, '--bind', $ADDR{$name}, '--protected-mode', 'no',
        '--unixsocket', "$rd/redis.sock", '--unixsocketperm', '700', '--save', '', '--appendonly', 'no',
        '--daemonize', 'no', '--dir', $rd, '--logfile', "$rd/redis.log",
        $o{replicaof} ? ('--replicaof', $o{replicaof}, 6379) : ());
    $self->_own_cpu($name);
    $self->_wait_for($name, sub { $self->redis_on($name, 'ping') eq 'PONG' }, "$rd/redis.log");
}

# Redis, the Sentinels and the Galera nodes would have machines of their
# own. On two shared cores, starved of CPU during a rush, a Sentinel whose
# timer runs 2 s late enters TILT for 30 s and will not fail over, and a
# Galera node that misses its peers' keepalives is suspected dead: they get
# the CPU first (a nice of -10, -5 for the nodes).
sub _own_cpu {
    my ($self, $name, $nice) = @_;
    setpriority(0, $self->{pids}{$name}, $nice // -10) if $> == 0;
}

sub redis_on {
    my ($self, $name, @args) = @_;
    my ($rc, $out) = Jangteo::Stack::_run_capture('redis-cli', '-s', $self->redis_dir($name) . '/redis.sock', @args);
    chomp $out;
    return $out;
}

sub kill_redis {
    my ($self, $name) = @_;
    kill 'KILL', $self->{pids}{$name} or croak "$name not running";
    $self->_wait_child($name, 20);
}

sub start_sentinel {
    my ($self, $k) = @_;
    my $sd = "$self->{dir}/sentinel$k";
    make_path($sd);
    my $a = $ADDR{"app$k"};
    # Sentinel rewrites its file as it learns the topology: ours alone
    Jangteo::Stack::_spew("$sd/sentinel.conf", <<"EOF", 0644);
port 26379
bind $a
protected-mode no
daemonize no
dir $sd
logfile $sd/sentinel.log
sentinel monitor jangteo $NET.31 6379 2
sentinel down-after-milliseconds jangteo 3000
sentinel failover-timeout jangteo 10000
sentinel parallel-syncs jangteo 1
EOF
    $self->{netns}{"sentinel$k"} = $self->ns("app$k");
    $self->_spawn("sentinel$k", "$sd/out", 'redis-sentinel', "$sd/sentinel.conf");
    $self->_own_cpu("sentinel$k");
    $self->_wait_for("sentinel$k", sub { $self->sentinel($k, 'ping') eq 'PONG' }, "$sd/sentinel.log");
}

sub sentinel {
    my ($self, $k, @args) = @_;
    my ($rc, $out) = Jangteo::Stack::_run_capture('redis-cli', '-h', $ADDR{"app$k"}, '-p', 26379, @args);
    chomp $out;
    return $out;
}

# The primary every Sentinel names ('' when they disagree or cannot say).
sub sentinel_primary {
    my ($self) = @_;
    my %seen;
    for my $k (1 .. 3) {
        my $a = $self->sentinel($k, 'SENTINEL', 'get-master-addr-by-name', 'jangteo');
        $a =~ s/\n/:/;
        $seen{$a}++;
    }
    my @a = keys %seen;
    return @a == 1 ? $a[0] : '';
}

# Waits until all three Sentinels know each other, the replica, and name
# $primary.
sub wait_sentinels {
    my ($self, $primary) = @_;
    $self->_wait_for('sentinel1', sub {
        for my $k (1 .. 3) {
            my $info = $self->sentinel($k, 'SENTINEL', 'master', 'jangteo');
            my %f = split /\n/, $info;
            return 0 unless ($f{'num-other-sentinels'} // 0) == 2 && ($f{'num-slaves'} // 0) >= 1
                && ($f{ip} // '') eq $primary;
        }
        1;
    }, "$self->{dir}/sentinel1/sentinel.log");
}

# ---------------------------------------------------------------- app hosts

sub app_dir { "$_[0]{dir}/app$_[1]" }

# The INI of app host $k ($node: a single Galera node, for jangteo-admin):
# each host prefers its own Galera node and lists the others after it.
sub _app_conf_text {
    my ($self, $k, $node) = @_;
    my $d = $self->{dir};
    my $ad = $self->app_dir($k);
    my @order = $node ? ($node) : map { (($k - 1 + $_) % 3) + 1 } 0 .. 2;
    my %s = (
        server => [
            listen => "$ADDR{\"app$k\"}:9000", fastcgi_allow => $ADDR{edge},
            workers => $self->{app_workers}, max_requests => 0, request_timeout => 30,
            error_log => "$ad/error.log", access_log => "$ad/access.log", pid_file => "$ad/jangteod.pid",
        ],
        mariadb => [
            hosts => join(',', map { "$ADDR{\"db$_\"}:3306" } @order), database => 'jangteo',
            user => 'jangteo_app', password_file => "$d/secrets/db_app.pw",
            connect_timeout => 1, read_timeout => 15, write_timeout => 15, failback_interval => 5,
        ],
        migrate => [
            user => 'jangteo_migrate', password_file => "$d/secrets/db_migrate.pw", sql_dir => "$self->{src}/sql",
        ],
        redis => [
            sentinels => join(',', map { "$ADDR{\"app$_\"}:26379" } 1 .. 3), master_name => 'jangteo',
            sentinel_timeout_ms => 200, connect_timeout_ms => 200, timeout_ms => 500, retry_interval_ms => 200,
        ],
        pii  => [ key_file => "$d/secrets/pii.key" ],
        auth => [ kdf_memlimit_kib => 8192, kdf_opslimit => 1 ],
    );
    my @order_s = qw(server mariadb migrate redis pii auth);
    my $conf = $self->{conf};
    my $text = "; generated by t/lib/Jangteo/Cluster.pm\n";
    for my $sec (@order_s, sort grep { !$s{$_} } keys %$conf) {
        my %kv = @{ $s{$sec} || [] };
        %kv = (%kv, %{ $conf->{$sec} || {} });
        $text .= "\n[$sec]\n" . join('', map { defined $kv{$_} ? "$_ = $kv{$_}\n" : '' } sort keys %kv);
    }
    return $text;
}

# jangteo-admin's configuration: node $j alone (1 by default).
sub conf_path {
    my ($self, $j) = @_;
    $j //= 1;
    my $f = "$self->{dir}/admin-db$j.conf";
    Jangteo::Stack::_spew($f, $self->_app_conf_text(1, $j), 0600) unless -e $f;
    return $f;
}

sub admin_on {
    my ($self, $j, @args) = @_;
    return Jangteo::Stack::_run_capture($self->bin('jangteo-admin'), '-c', $self->conf_path($j), @args);
}

sub admin { my ($self, @args) = @_; $self->admin_on(1, @args) }

sub start_app_host {
    my ($self, $k) = @_;
    my $ad = $self->app_dir($k);
    make_path($ad);
    Jangteo::Stack::_spew("$ad/jangteod.conf", $self->_app_conf_text($k), 0600);
    $self->{netns}{"app$k"} = $self->ns("app$k");
    my $mark = -s "$ad/error.log" // 0;
    $self->_spawn("app$k", "$ad/jangteod.out", $self->bin('jangteod'), '-c', "$ad/jangteod.conf");
    $self->_wait_for("app$k", sub {
        my $log = -e "$ad/error.log" ? Jangteo::Stack::_slurp("$ad/error.log") : '';
        substr($log, $mark) =~ /master: started/;
    }, "$ad/error.log", "$ad/jangteod.out");
}

# kill -9 of the whole tree of app host $k: the master and every worker and
# consumer (one process group), as when the machine loses power.
sub kill_app_host {
    my ($self, $k) = @_;
    my $pid = $self->{pids}{"app$k"} or croak "app$k not running";
    kill 'KILL', -$pid;
    $self->_wait_child("app$k", 20);
}

sub app_log {
    my ($self, $k, $which) = @_;
    my $f = $self->app_dir($k) . "/$which.log";
    return -e $f ? Jangteo::Stack::_slurp($f) : '';
}

# CPU ticks (user + system) used so far by each component's process group.
sub cpu_ticks {
    my ($self) = @_;
    my %pg = map { ($self->{pids}{$_} => $_) } grep { $self->{pids}{$_} } keys %{ $self->{pids} };
    my %t = map { ($_ => 0) } values %pg;
    opendir(my $dh, '/proc') or return \%t;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open(my $fh, '<', "/proc/$p/stat") or next;
        my $st = <$fh> // next;
        $st =~ s/^.*\)\s+//;
        my @f = split ' ', $st;    # from field 3 (state) on
        my $name = $pg{ $f[2] } or next;   # pgrp
        $t{$name} += $f[11] + $f[12];      # utime + stime
    }
    return \%t;
}

# ---------------------------------------------------------------- teardown

sub stop {
    my ($self, $force) = @_;
    return if $$ != $self->{owner};
    return if $self->{stopped}++ && !$force;
    local ($?, $@, $!);
    $self->_dump_logs_on_failure unless $force;
    eval { $self->_stop_child('nginx', 'QUIT', 10) };
    for my $name (sort keys %{ $self->{pids} }) {
        my $pid = $self->{pids}{$name} or next;
        kill 'TERM', ($name =~ /^app/ ? -$pid : $pid);
    }
    for my $name (sort keys %{ $self->{pids} }) {
        eval { $self->_stop_child($name, undef, 15) };
    }
    # a sanitizer build: any report of a jangteod on any host fails the test
    Jangteo::Stack::check_sanitizer_file($self->app_dir($_) . '/jangteod.out', 0) for $force ? () : (1 .. 3);
    # anything still in our namespaces (an orphaned worker, an rsync of a
    # state transfer) is ours
    for my $ns (reverse @{ $self->{namespaces} }) {
        my @left = grep { /^\d+$/ } split /\s+/, `ip netns pids $ns 2>/dev/null`;
        @left = grep { $_ != $$ } @left;    # the test itself lives on the edge host
        kill 'KILL', @left if @left;
    }
    for my $ns (reverse @{ $self->{namespaces} }) {
        `ip netns del $ns 2>&1`;
    }
    $self->{namespaces} = [];
}

sub _dump_logs_on_failure {
    my ($self, $force) = @_;
    return if $self->{dumped};
    my $failed = $force || ($INC{'Test/Builder.pm'} && !Test::Builder->new->is_passing);
    return unless $failed;
    $self->{dumped} = 1;
    my $d = $self->{dir};
    my $text = Jangteo::Stack::_tails((map { [ "$d/app$_/error.log", 15 ] } 1 .. 3), [ "$d/nginx-error.log", 15 ],
        (map { [ $self->db_log($_), 12 ] } 1 .. 3), (map { [ "$d/sentinel$_/sentinel.log", 8 ] } 1 .. 3),
        (map { [ "$d/$_/redis.log", 8 ] } qw(redis1 redis2)));
    if ($INC{'Test/Builder.pm'}) { Test::Builder->new->diag("cluster dir $d\n$text") }
    else { print STDERR "cluster dir $d\n$text" }
}

1;
