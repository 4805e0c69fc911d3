#!/usr/bin/perl
# Card checkouts beside points orders, and reads while the payment gateway
# hangs, in one run on this machine, against the gateway simulator.
#   (1) orders/s: C clients each placing orders for D seconds, alternately
#       paid with points and by card; a card checkout counts when all three
#       steps answered as they should: the order 201 PAYMENT_PENDING, the pay
#       at the simulator "paid", the verify 200 PAID. Three rounds of each,
#       medians; the database floor of one points order (sysbench
#       order_tx.lua of ../shared/bench/limits, same MariaDB, same
#       concurrency) beside them.
#   (2) reads/s (ab -k on a product detail no order touches, counting only
#       200s of the exact bytes) while K clients keep checking out by card:
#       with a healthy gateway, then with a gateway that hangs (every call
#       held 60 s: each checkout waits its timeout_ms, then 503), and with no
#       card clients at all for reference; three rounds of the three, the
#       daemon restarted after each (a fresh breaker for the next healthy
#       round), medians and each round's own ratio. Goal: hanging >= 90 %
#       of healthy.
#       The card clients wait Retry-After after a 503, as the storefront does.
#       [payments] as shipped: timeout_ms 5000, max_calls_in_flight 0 (a
#       quarter of the workers).
# Not a test: the figures go to bench/RESULTS.md.
#
# Usage: perl bench/cards.pl [-c CLIENTS] [-d SECONDS] [-w WORKERS] [-k HANGING_CLIENTS]
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use IO::Select;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);
use Jangteo::Stack;
use Jangteo::Bench qw(ab_parse limits_dir median);
use Jangteo::Client qw(test_stack http_client do_request);
use Jangteo::Orders qw(make_users set_balance);

my ($c, $secs, $workers, $k) = (8, 10, 8, 4);
GetOptions('c=i' => \$c, 'd=i' => \$secs, 'w=i' => \$workers, 'k=i' => \$k) or die "bad options\n";
my $root = Jangteo::Stack::srcdir();
my $limits = limits_dir($root, 'order_tx.lua');
for my $tool (qw(ab sysbench)) {
    system("command -v $tool >/dev/null") == 0 or die "$tool is not installed\n";
}

my $JSON = JSON::PP->new->utf8->canonical;
my $s = test_stack(demo => 1, pgsim => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 }, auctions => { consumers => 0 },
              lock => { wait_ms => 10000 }, tx => { max_attempts => 50, deadline_ms => 8000 } });
$| = 1;
$s->pgsim('POST', '/_sim/config', { webhooks => JSON::PP::false });   # the verify settles each

print "setting up $c buyers and the products ...\n";
my @buyers = @{ make_users($s, $c + $k, tag => 'bench-card', balance => 100_000_000) };
my $first = $s->sql('SELECT COALESCE(MAX(id), 0) + 1 FROM products')->[0][0];
my @products = map { $first + $_ } 0 .. 63;
$s->sql('INSERT INTO products (id, name, price, stock, has_options) VALUES '
    . join(',', map { "($_, 'bench card $_', 1000, 10000000, 0)" } @products));
$s->sql("INSERT INTO stock_movements (product_id, delta, kind) SELECT id, stock, 'INITIAL' FROM products WHERE id >= $first");
my $read_id = 1;     # a demo product no order of this run touches
my %SHIP = (recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236', address => '서울 강남구 테헤란로 1');

# One buyer's loop for $secs seconds: points orders, or whole card checkouts.
# Returns [completed, failed, sum of seconds per completed one].
sub client {
    my ($buyer, $mode, $n, $until) = @_;
    my $http = http_client(timeout => 30);
    my $sim = HTTP::Tiny->new(timeout => 30, keep_alive => 0, proxy => undef, http_proxy => undef);
    my ($ok, $bad, $lat, $i) = (0, 0, 0, 0);
    my %h = (Authorization => "Bearer $buyer->{token}");
    while (time < $until) {
        my $t0 = time;
        my $body = { items => [ { productId => $products[ ($n * 7 + $i++) % @products ], quantity => 1 } ], shipping => {%SHIP} };
        $body->{payment} = { method => 'CARD', cardCompany => 'NH' } if $mode eq 'card';
        my $r = do_request($http, $s, 'POST', '/api/v1/orders', \%h, $body);
        my $good = $r->{status} == 201;
        if ($good && $mode eq 'card') {
            my $o = $JSON->decode($r->{body});
            my $p = $sim->request('POST', $s->pgsim_url("/pay/$o->{payment}{merchantUid}"),
                { headers => { 'Content-Type' => 'application/json' }, content => '{"cardCompany":"NH"}' });
            my $paid = eval { $JSON->decode($p->{content}) } || {};
            $good = ($paid->{status} // '') eq 'paid';
            if ($good) {
                my $v = do_request($http, $s, 'POST', "/api/v1/orders/$o->{orderId}/payments",
                    { %h, 'Idempotency-Key' => "bench-$$-$i" }, { impUid => $paid->{imp_uid} });
                $good = $v->{status} == 200 && ($JSON->decode($v->{body})->{status} // '') eq 'PAID';
            }
        }
        if ($good) { $ok++; $lat += time - $t0 } else { $bad++ }
        # as the storefront does: a 503 is retried after its Retry-After
        if (!$good && $r->{status} == 503) {
            my $wait = $r->{headers}{'retry-after'} // 1;
            sleep($wait) if time + $wait < $until;
        }
    }
    return [ $ok, $bad, $lat ];
}

# Runs $fn for each of @$who in its own child, all until the same instant.
sub in_parallel {
    my ($who, $mode, $until) = @_;
    my $sel = IO::Select->new;
    my (%buf, @pids);
    for my $n (0 .. $#$who) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            close $rd;
            print {$wr} $JSON->encode(client($who->[$n], $mode, $n, $until));
            close $wr;
            _exit(0);
        }
        close $wr;
        push @pids, $pid;
        $buf{ fileno $rd } = '';
        $sel->add($rd);
    }
    return { sel => $sel, buf => \%buf, pids => \@pids };
}

sub collect {
    my ($h) = @_;
    my ($ok, $bad, $lat) = (0, 0, 0);
    my $deadline = time + $secs + 120;
    while ($h->{sel}->count && time < $deadline) {
        for my $fh ($h->{sel}->can_read(0.5)) {
            my $n = sysread($fh, my $b, 65536);
            if ($n) { $h->{buf}{ fileno $fh } .= $b; next }
            my $got = eval { $JSON->decode($h->{buf}{ fileno $fh }) } || [ 0, 0, 0 ];
            $ok += $got->[0];
            $bad += $got->[1];
            $lat += $got->[2];
            $h->{sel}->remove($fh);
            close $fh;
        }
    }
    waitpid($_, 0) for @{ $h->{pids} };
    return { rps => $ok / $secs, ok => $ok, bad => $bad, mean_ms => $ok ? 1000 * $lat / $ok : 0 };
}

sub orders_round {
    my ($mode) = @_;
    return collect(in_parallel([ @buyers[0 .. $c - 1] ], $mode, time + $secs));
}

# ab -k on the read for $secs seconds; only 200s of the first answer's bytes count.
sub reads {
    my $url = $s->url("/api/v1/products/$read_id");
    my $out = `ab -q -k -c 16 -t $secs -n 10000000 -s 30 $url 2>&1`;
    my $ab = ab_parse($out);
    my $bad = $ab->{failed} + $ab->{non2xx};
    return { rps => ($ab->{complete} - $bad) / $secs, good => $ab->{complete} - $bad, failed => $bad,
             p50 => $ab->{pct}{50} // '?', p99 => $ab->{pct}{99} // '?' };
}

# the database floor of one points order
$s->sql('CREATE DATABASE IF NOT EXISTS bench');
my $sb = "sysbench $limits/order_tx.lua --db-driver=mysql --mysql-socket=" . $s->db_socket
       . " --mysql-user=root --mysql-db=bench";
system("$sb prepare >/dev/null 2>&1") == 0 or die "sysbench prepare failed\n";
sub floor_spread {
    my $out = `MODE=pessimistic HOT=0 $sb --threads=$c --time=$secs --report-interval=0 --percentile=99 run 2>&1`;
    my ($tps) = $out =~ /transactions:\s+\d+\s+\(([\d.]+) per sec/ or die "sysbench:\n$out";
    return $tps;
}

print "measuring (clients $c, ${secs}s each, $workers workers) ...\n";
# loopback sockets in TIME_WAIT (the simulator closes every connection)
sub time_wait { my $n = () = `ss -tan state time-wait 2>/dev/null` =~ /\n/g; return $n - 1 }
my (@pts, @card, @tw);
for (1 .. 3) {
    push @pts, orders_round('points');
    push @card, orders_round('card');
    push @tw, time_wait();
}
my $floor = floor_spread();

# reads, three rounds of: alone, beside card clients with a healthy
# gateway, then with the gateway hanging. The hung calls are slow and
# failed, so the breaker may open during a hang; each round therefore
# ends with a restart of the daemon (a fresh breaker), so that every
# "healthy" round is one.
my $hangers = [ @buyers[$c .. $c + $k - 1] ];
my (@rounds, $kills, $end_state) = ();
for my $round (1 .. 3) {
    my %rd;
    $rd{alone} = reads();
    {
        my $h = in_parallel($hangers, 'card', time + $secs + 1);
        $rd{healthy} = reads();
        $rd{healthy_cards} = collect($h);
    }
    $s->pgsim('POST', '/_sim/faults', { slow_ms => 60000, endpoint => $_ }) for qw(prepare lookup find cancel);
    {
        my $h = in_parallel($hangers, 'card', time + $secs + 1);
        $rd{hanging} = reads();
        $rd{hanging_cards} = collect($h);
    }
    my $st = $s->get('/status?json')->{json};
    $kills += $st->{request_timeout_kills};
    $end_state = $st->{payment_gateway}{breaker};
    $rd{breaker} = $end_state;
    $s->pgsim('DELETE', '/_sim/faults');
    push @rounds, \%rd;
    $s->stop_app;
    $s->start_app;
}

my ($p, $q) = (median(map { $_->{rps} } @pts), median(map { $_->{rps} } @card));
printf "\n== card checkouts beside points orders (%s, %d clients, %d s each, %d workers)\n", scalar(gmtime), $c, $secs, $workers;
printf "points orders  : %s orders/s (median %.1f); failed %s; mean %.1f ms per order\n",
    join(' / ', map { sprintf '%.1f', $_->{rps} } @pts), $p, join('/', map { $_->{bad} } @pts),
    median(map { $_->{mean_ms} } @pts);
printf "card checkouts : %s checkouts/s (median %.1f); failed %s; mean %.1f ms per checkout (order, pay, verify)\n",
    join(' / ', map { sprintf '%.1f', $_->{rps} } @card), $q, join('/', map { $_->{bad} } @card),
    median(map { $_->{mean_ms} } @card);
printf "ratio card / points (same run, medians): %.1f %%\n", 100 * $q / $p;
printf "sockets in TIME_WAIT after each card round: %s\n", join(' / ', @tw);
printf "floor: one points order straight against MariaDB (sysbench, pessimistic, %d threads): %.0f orders/s;"
    . " points %.1f %%, card %.1f %% of it\n", $c, $floor, 100 * $p / $floor, 100 * $q / $floor;
printf "\n== reads of /api/v1/products/%d (ab -k -c 16, %d s each; 200s of the exact bytes only), 3 rounds\n",
    $read_id, $secs;
for my $n (0 .. $#rounds) {
    my $rd = $rounds[$n];
    printf "round %d alone                    : %8.0f reads/s  p50 %s ms  p99 %s ms  bad %d\n", $n + 1,
        @{ $rd->{alone} }{qw(rps p50 p99 failed)};
    printf "round %d %d card clients, healthy : %8.0f reads/s  p50 %s ms  p99 %s ms  bad %d   (checkouts %d done, %d failed)\n",
        $n + 1, $k, @{ $rd->{healthy} }{qw(rps p50 p99 failed)}, @{ $rd->{healthy_cards} }{qw(ok bad)};
    printf "round %d %d card clients, hanging : %8.0f reads/s  p50 %s ms  p99 %s ms  bad %d   (checkouts %d done, %d failed: 503s; breaker %s)\n",
        $n + 1, $k, @{ $rd->{hanging} }{qw(rps p50 p99 failed)}, @{ $rd->{hanging_cards} }{qw(ok bad)}, $rd->{breaker};
    printf "round %d ratio hanging / healthy : %.1f %%\n", $n + 1, 100 * $rd->{hanging}{rps} / ($rd->{healthy}{rps} || 1);
}
my ($ra, $rh, $rx) = map { my $w = $_; median(map { $_->{$w}{rps} } @rounds) } qw(alone healthy hanging);
printf "medians: alone %.0f, healthy %.0f, hanging %.0f reads/s; hanging / healthy %.1f %% (goal >= 90 %%),"
    . " median of the rounds' own ratios %.1f %%; hanging / alone %.1f %%\n", $ra, $rh, $rx, 100 * $rx / ($rh || 1),
    median(map { 100 * $_->{hanging}{rps} / ($_->{healthy}{rps} || 1) } @rounds), 100 * $rx / ($ra || 1);
printf "request_timeout kills during the hangs: %d\n", $kills;
my ($rc, $audit) = $s->admin('audit');
print "audit after the run (the gateway check included): ", ($rc == 0 ? "clean" : "VIOLATIONS\n$audit"), "\n";
$s->stop;
