#!/usr/bin/perl
# Orders per second beside the database floor, in one run on this machine.
#   (a) one hot product, (b) orders spread over 1,000 products
#   - jangteo through nginx: wrk + bench/wrk/orders.lua spreading orders over
#     1,000 buyers from jangteo-admin load-buyers, and ab with one buyer for (a)
#   - the floor: ../shared/bench/limits/order_tx.lua under sysbench, the same
#     order transaction straight against the same MariaDB, same concurrency
#   - 5,000 one-unit orders on one product with ab: wall time and errors
#   - for reference, the floor's hot order on one thread: every order
#     serialised through its durable COMMIT, as jangteo's lock (released
#     only after COMMIT) serialises a hot product; no HTTP, no Redis
# Prints orders/s, p50/p99 and the ratios. Not a test: numbers go to
# bench/RESULTS.md.
#
# Usage: perl bench/orders.pl [-c CONCURRENCY] [-d SECONDS] [-w WORKERS]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use Jangteo::Stack;
use Jangteo::Bench qw(ab_run limits_dir wrk_run);
use Jangteo::Client qw(test_stack);

my ($c, $secs, $workers) = (16, 10, 8);
GetOptions('c=i' => \$c, 'd=i' => \$secs, 'w=i' => \$workers) or die "bad options\n";
my $root = Jangteo::Stack::srcdir();
my $limits = limits_dir($root, 'order_tx.lua');
for my $tool (qw(ab wrk sysbench)) {
    system("command -v $tool >/dev/null") == 0 or die "$tool is not installed\n";
}

my $s = test_stack(demo => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 },
              lock => { wait_ms => 10000 }, tx => { max_attempts => 50, deadline_ms => 8000 } });
my $dir = $s->dir;
$| = 1;

# --- data: 1,000 buyers with tokens, a hot product, 1,000 spread products -------
# (jangteo-admin load-buyers / load-products, as the README's load runs)
print "setting up 1,000 buyers and 1,001 products ...\n";
my ($rc, $out) = $s->admin('load-buyers', 1000, '--balance', 100000000, '--tokens', "$dir/tokens.txt");
die "load-buyers: $out" if $rc;
my ($tok0) = split /\n/, do { open my $fh, '<', "$dir/tokens.txt" or die; local $/; <$fh> };   # the ab buyer
my %ids;
for my $p (['hot', 1], ['spread', 1000]) {
    ($rc, $out) = $s->admin('load-products', $p->[1], '--price', 1000, '--stock', 10000000);
    die "load-products: $out" if $rc || $out !~ /ids (\d+)-(\d+)/;
    $ids{ $p->[0] } = $1 == $2 ? $1 : "$1-$2";
}
my $hot = $ids{hot};
my $ship = '"shipping":{"recipient":"홍길동","phone":"010-1234-5678","zipCode":"06236","address":"서울 강남구 테헤란로 1"}';
my $url = "http://127.0.0.1:" . $s->http_port . "/api/v1/orders";

# --- wrk with bench/wrk/orders.lua: a random buyer per request (and product for (b)) ---
sub wrk_orders {
    my ($products) = @_;
    my $r = wrk_run(c => $c, secs => $secs, script => "$FindBin::Bin/wrk/orders.lua", url => $url,
        args => ["$dir/tokens.txt", $products]);
    my $bad = 0;
    $bad += $r->{statuses}{$_} for grep { $_ != 201 } keys %{ $r->{statuses} };
    return { rps => $r->{rps}, bad => $bad + ($r->{bad_shape} // 0), p50 => $r->{p50_ms}, p99 => $r->{p99_ms},
             sockerr => $r->{err_connect} + $r->{err_read} + $r->{err_write} + $r->{err_timeout} };
}

# --- the floor: sysbench order_tx.lua on the same MariaDB ----------------------------
$s->sql("CREATE DATABASE IF NOT EXISTS bench");
my $sb = "sysbench $limits/order_tx.lua --db-driver=mysql --mysql-socket=" . $s->db_socket
       . " --mysql-user=root --mysql-db=bench";
system("$sb prepare >/dev/null 2>&1") == 0 or die "sysbench prepare failed\n";
sub floor_run {
    my ($mode, $hotflag, $threads) = @_;
    $threads //= $c;
    my $out = `MODE=$mode HOT=$hotflag $sb --threads=$threads --time=$secs --report-interval=0 --percentile=99 run 2>&1`;
    my ($tps) = $out =~ /transactions:\s+\d+\s+\(([\d.]+) per sec/ or die "sysbench:\n$out";
    my ($p99) = $out =~ /99th percentile:\s+([\d.]+)/;
    return { rps => $tps, p99 => $p99 // 0 };
}

my %r;
print "measuring (c=$c, ${secs}s each, $workers workers) ...\n";
$r{floor_hot_atomic}    = floor_run('atomic', 1);
$r{floor_hot_pess}      = floor_run('pessimistic', 1);
$r{floor_hot_serial}    = floor_run('pessimistic', 1, 1);
$r{api_hot}             = wrk_orders($ids{hot});
$r{floor_spread_atomic} = floor_run('atomic', 0);
$r{floor_spread_pess}   = floor_run('pessimistic', 0);
$r{api_spread}          = wrk_orders($ids{spread});

# 5,000 one-unit orders on one product (ab, one buyer)
open my $fh, '>', "$dir/order.json" or die;
print $fh "{\"items\":[{\"productId\":$hot,\"quantity\":1}],$ship}";
close $fh;
my $ab = ab_run(n => 5000, c => $c, keepalive => 1, post => "$dir/order.json",
    headers => ["Authorization: Bearer $tok0"], url => $url);
my ($wall, $complete, $failed, $non2xx, $ab_rps, $ab_p50, $ab_p99) =
    ($ab->{secs}, $ab->{complete}, $ab->{failed}, $ab->{non2xx}, $ab->{rps}, $ab->{pct}{50}, $ab->{pct}{99});

printf "\n== orders vs the database floor (%s, concurrency %d, %d s each, %d workers)\n",
    scalar(gmtime), $c, $secs, $workers;
printf "floor hot    atomic      : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_hot_atomic}{rps}, $r{floor_hot_atomic}{p99};
printf "floor hot    pessimistic : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_hot_pess}{rps}, $r{floor_hot_pess}{p99};
printf "floor hot    pess., 1 thread (serialised through COMMIT): %8.0f orders/s  p99 %6.1f ms  (5,000 orders: %.2f s)\n",
    $r{floor_hot_serial}{rps}, $r{floor_hot_serial}{p99}, 5000 / $r{floor_hot_serial}{rps};
printf "jangteo hot  (wrk)       : %8.0f orders/s  p50 %6.1f ms  p99 %6.1f ms  non-2xx %d  socket errors %d\n",
    @{ $r{api_hot} }{qw(rps p50 p99 bad sockerr)};
printf "floor spread atomic      : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_spread_atomic}{rps}, $r{floor_spread_atomic}{p99};
printf "floor spread pessimistic : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_spread_pess}{rps}, $r{floor_spread_pess}{p99};
printf "jangteo spread (wrk)     : %8.0f orders/s  p50 %6.1f ms  p99 %6.1f ms  non-2xx %d  socket errors %d\n",
    @{ $r{api_spread} }{qw(rps p50 p99 bad sockerr)};
printf "ratio hot    / floor (pessimistic, atomic): %5.1f %%, %5.1f %%   (goal >= 50 %%)\n",
    100 * $r{api_hot}{rps} / $r{floor_hot_pess}{rps}, 100 * $r{api_hot}{rps} / $r{floor_hot_atomic}{rps};
printf "ratio hot    / floor serialised through COMMIT (1 thread): %5.1f %%   (reference, no goal)\n",
    100 * $r{api_hot}{rps} / $r{floor_hot_serial}{rps};
printf "ratio spread / floor (pessimistic, atomic): %5.1f %%, %5.1f %%   (goal >= 50 %%)\n",
    100 * $r{api_spread}{rps} / $r{floor_spread_pess}{rps}, 100 * $r{api_spread}{rps} / $r{floor_spread_atomic}{rps};
printf "5,000 one-unit orders on one product (ab -c %d, one buyer): %.2f s wall, %s complete, %s failed, %s non-2xx, %.0f orders/s, p50 %s ms, p99 %s ms   (goal < 6 s, no error)\n",
    $c, $wall, $complete // '?', $failed // '?', $non2xx // 0, $ab_rps // 0, $ab_p50 // '?', $ab_p99 // '?';
(my $arc, my $audit) = $s->admin('audit');
print "audit after the run: ", ($arc == 0 ? "clean" : "VIOLATIONS\n$audit"), "\n";
$s->stop;
