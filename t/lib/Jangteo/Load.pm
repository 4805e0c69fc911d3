package Jangteo::Load;

# Load for the reliability tests (t/8x): forked clients that keep sending
# requests for a bounded time and count, recording every answer (status,
# problem code, body, Idempotency-Key) so a test can check outcomes after a
# fault; slow and half-sent clients; a flat snapshot of what money and stock
# look like; ab with a POST body. Core Perl only. Everything talks to
# 127.0.0.1 through the stack's nginx.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit :sys_wait_h);
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(http_client do_request);

our @EXPORT_OK = qw(
    load_start load_wait load_run load_stop load_running tally tally_line
    make_buyers make_product money_snapshot audit_ok slow_clients_open slow_clients_step slow_clients_close
    half_body_client rss_kib uniq_key
);

my $JSON = JSON::PP->new->utf8->canonical;
my $SEQ = 0;

# A key no other request of this run uses (pid + time + counter).
sub uniq_key {
    my ($tag) = @_;
    $SEQ++;
    return sprintf('%s-%d-%d-%d-%d', $tag // 'k', $$, int(time * 1000), $SEQ, int(rand(1e9)));
}

# Starts $opt{clients} forked clients. Client $c calls $opt{next}->($c, $n)
# for its n-th request; it returns [method, path, \%headers, $body, \%meta]
# or undef to stop. A client stops after $opt{duration} seconds or
# $opt{count} requests, whichever comes first. Each answer is written as a
# JSON line (meta fields + status, code, elapsed, t; the body when
# $opt{keep_body}) to a file of its own. Returns a handle for load_wait.
sub load_start {
    my ($s, %opt) = @_;
    my $dir = tempdir('jangteo-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $clients = $opt{clients} // 4;
    my $duration = $opt{duration} // 10;
    my $count = $opt{count} // 1_000_000;
    my $next = $opt{next} or croak 'load_start: next => sub required';
    my @pids;
    for my $c (0 .. $clients - 1) {
        my $pid = fork() // croak "fork: $!";
        if ($pid == 0) {
            srand($$ ^ int(time * 1000));
            my $http = http_client(timeout => $opt{timeout} // 30);
            open my $out, '>', "$dir/$c.jsonl" or _exit(1);
            select((select($out), $| = 1)[0]);
            my $end = time + $duration;
            for (my $n = 0; $n < $count && time < $end && !-e "$dir/stop"; $n++) {
                my $req = $next->($c, $n) or last;
                my ($m, $p, $h, $b, $meta) = @$req;
                my $t = time;
                my $res = eval { do_request($http, $s, $m, $p, $h, $b) }
                    || { status => 599, body => "client: $@", headers => {}, elapsed => time - $t };
                my %rec = (%{ $meta || {} }, method => $m, path => $p, status => $res->{status},
                    code => $res->{code}, elapsed => $res->{elapsed}, t => $t, client => $c, n => $n,
                    retry_after => $res->{headers}{'retry-after'});
                $rec{body} = $res->{body} if $opt{keep_body} || $res->{status} >= 500 || ($res->{status} >= 200 && $res->{status} < 300);
                $rec{key} = $h->{'Idempotency-Key'} if $h && defined $h->{'Idempotency-Key'};
                $rec{req_body} = $b if $opt{keep_request};
                print {$out} $JSON->encode(\%rec), "\n";
                sleep $opt{pause} if $opt{pause};
                # a polite client backs off when told the service is unavailable
                sleep $opt{backoff_5xx} if $opt{backoff_5xx} && $res->{status} >= 500;
            }
            close $out;
            _exit(0);
        }
        push @pids, $pid;
    }
    return { pids => \@pids, dir => $dir, clients => $clients, started => time, duration => $duration };
}

# Asks the clients to stop after the request each has in hand.
sub load_stop { my ($h) = @_; open my $f, '>', "$h->{dir}/stop"; close $f }

sub load_running {
    my ($h) = @_;
    return scalar grep { waitpid($_, WNOHANG) == 0 } @{ $h->{pids} };
}

# Waits for the clients (killing any still running $grace seconds after
# their duration) and returns every record, in time order.
sub load_wait {
    my ($h, $grace) = @_;
    my $deadline = $h->{started} + $h->{duration} + ($grace // 60);
    my %left = map { $_ => 1 } @{ $h->{pids} };
    while (%left) {
        for my $pid (keys %left) {
            delete $left{$pid} if waitpid($pid, WNOHANG) != 0;
        }
        last unless %left;
        if (time > $deadline) {
            kill 'KILL', keys %left;
            waitpid($_, 0) for keys %left;
            last;
        }
        sleep 0.05;
    }
    my @recs;
    for my $c (0 .. $h->{clients} - 1) {
        open my $in, '<', "$h->{dir}/$c.jsonl" or next;
        while (my $l = <$in>) {
            my $r = eval { $JSON->decode($l) } or next;    # a killed client's last line may be cut
            push @recs, $r;
        }
    }
    return [ sort { $a->{t} <=> $b->{t} } @recs ];
}

sub load_run { my ($s, %opt) = @_; load_wait(load_start($s, %opt)) }

# status => count, with 2xx folded into "ok" when $fold.
sub tally {
    my ($recs) = @_;
    my %t = (sent => scalar @$recs, ok => 0);
    for my $r (@$recs) {
        if ($r->{status} >= 200 && $r->{status} < 300) { $t{ok}++ }
        else { $t{ $r->{status} }++ }
    }
    return \%t;
}

# "sent=N ok=N 409=N 502=N ..." with the statuses sorted.
sub tally_line {
    my ($t) = @_;
    return join(' ', "sent=$t->{sent}", "ok=$t->{ok}",
        map { "$_=$t->{$_}" } sort { $a <=> $b } grep { /^\d+$/ } keys %$t);
}

# $n buyers registered through the API, logged in, and charged $balance
# (in 1,000,000 steps) through the API with Idempotency-Keys. Returns
# [{id, email, password, token, name, phone}].
sub make_buyers {
    my ($s, $n, %o) = @_;
    my $http = http_client();
    my @u;
    for my $k (1 .. $n) {
        my %u = (
            email => sprintf('%s-%d-%d-%d@example.com', $o{tag} // 'load', $$, $k, int(rand(1e9))),
            password => "pw-$k-" . int(rand(1e9)) . '-secret',
            name => "부하 구매자 $k", phone => '010-5555-' . sprintf('%04d', $k),
        );
        my $r = do_request($http, $s, 'POST', '/api/v1/users', {}, {%u});
        croak "register: $r->{status} $r->{body}" unless $r->{status} == 201;
        $u{id} = $r->{json}{userId};
        $r = do_request($http, $s, 'POST', '/api/v1/auth/tokens', {}, { email => $u{email}, password => $u{password} });
        croak "login: $r->{status} $r->{body}" unless $r->{status} == 201;
        $u{token} = $r->{json}{token};
        my $left = $o{balance} // 0;
        while ($left > 0) {
            my $a = $left > 1_000_000 ? 1_000_000 : $left;
            $r = do_request($http, $s, 'POST', "/api/v1/users/$u{id}/charge",
                { Authorization => "Bearer $u{token}", 'Idempotency-Key' => uniq_key('seed') }, { amount => $a });
            croak "charge: $r->{status} $r->{body}" unless $r->{status} == 200;
            $left -= $a;
        }
        push @u, \%u;
    }
    return \@u;
}

# A product created through the API by $token (admin or seller): stock and
# price as given. Returns its id.
sub make_product {
    my ($s, $token, %p) = @_;
    my $r = do_request(http_client(), $s, 'POST', '/api/v1/products', { Authorization => "Bearer $token" },
        { name => $p{name} // ('부하 상품 ' . int(rand(1e6))), price => $p{price} // 1000, stock => $p{stock} // 1000,
          %{ $p{extra} || {} } });
    croak "create product: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json}{id};
}

# (SUM(balance), SUM(stock), COUNT(orders), COUNT(point_ledger), ...) as one
# string, to compare before and after something that must change nothing.
sub money_snapshot {
    my ($s) = @_;
    my $row = $s->sql(
        'SELECT (SELECT COALESCE(SUM(balance),0) FROM users), (SELECT COALESCE(SUM(stock),0) FROM products),'
        . ' (SELECT COALESCE(SUM(stock),0) FROM product_options), (SELECT COUNT(*) FROM orders),'
        . ' (SELECT COUNT(*) FROM point_ledger), (SELECT COUNT(*) FROM products),'
        . ' (SELECT COUNT(*) FROM stock_movements), (SELECT COUNT(*) FROM auctions),'
        . ' (SELECT COUNT(*) FROM receipts), (SELECT COUNT(*) FROM users)')->[0];
    my @n = qw(balance stock option_stock orders ledger products movements auctions receipts users);
    return join(' ', map { "$n[$_]=$row->[$_]" } 0 .. $#n);
}

# Runs `jangteo-admin audit`; passes when it exits 0. Returns 'clean' or
# 'VIOLATIONS' for the figures.
sub audit_ok {
    my ($s, $name) = @_;
    require Test::More;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($rc, $out) = $s->admin('audit');
    Test::More::is($rc, 0, $name // 'audit clean') or Test::More::diag($out);
    return $rc == 0 ? 'clean' : 'VIOLATIONS';
}

# ---------------------------------------------------------------- slow clients

# Opens $n sockets to nginx. Each will send a request's headers one byte per
# slow_clients_step. Returns a handle.
sub slow_clients_open {
    my ($s, $n) = @_;
    my @c;
    for (1 .. $n) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp',
            Timeout => 5, Blocking => 0);
        last unless $sock;
        push @c, { sock => $sock, text => "GET /api/v1/products/1 HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            . ('s' x 200) . "\r\n", pos => 0 };
    }
    return \@c;
}

# Sends the next byte on each slow socket (never the final blank line).
# Returns how many sockets are still open.
sub slow_clients_step {
    my ($c) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $open = 0;
    for my $x (@$c) {
        next unless $x->{sock};
        if ($x->{pos} < length $x->{text}) {
            my $w = syswrite($x->{sock}, substr($x->{text}, $x->{pos}, 1));
            if (!defined $w && !$!{EAGAIN} && !$!{EINPROGRESS}) { close $x->{sock}; $x->{sock} = undef; next }
            $x->{pos} += $w if $w;
        }
        $open++;
    }
    return $open;
}

sub slow_clients_close { my ($c) = @_; for my $x (@$c) { close $x->{sock} if $x->{sock}; $x->{sock} = undef } }

# A POST whose body is half sent, then nothing: the socket is returned (the
# caller closes it).
sub half_body_client {
    my ($s, $path, $token) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp', Timeout => 5)
        or croak "connect: $!";
    my $body = '{"amount":' . ('1' x 3) . ',"pad":"' . ('x' x 1000) . '"}';
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        . ($token ? "Authorization: Bearer $token\r\n" : '')
        . 'Content-Length: ' . length($body) . "\r\n\r\n" . substr($body, 0, int(length($body) / 2));
    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $req;
    return $sock;
}

# VmRSS of a process in KiB (undef if gone).
sub rss_kib {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (my $l = <$fh>) { return $1 if $l =~ /^VmRSS:\s+(\d+)\s+kB/ }
    return undef;
}

1;
