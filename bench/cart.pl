#!/usr/bin/perl
# Cart checkout beside POST /api/v1/orders for the same lines, in one run on
# this machine. Every order has two lines, spread over 10,000 products (no
# hot product: the lock does not decide; and a product comes round again
# seconds later, after its cached detail expired, so pricing costs both
# endpoints the same at any rate); each buyer's cart holds exactly the two
# lines its direct order names. wrk (a Lua script, each request its
# own buyer, so every checkout finds a full cart) alternates the two
# endpoints, RUNS times each, and counts only 201 answers that are a PAID
# order; the ratio is of the medians (and of each pair, for the spread).
# The goal (issue 15): checkout >= 90 % of the direct order rate. After
# the runs, the same invocation measures the database floor
# (../shared/bench/limits/limits.sh db: sysbench's one-item point-paid
# order on a MariaDB of its own, spread, at the same concurrency) and
# quotes both rates against it (-f 0 skips it).
#
# Not a test: numbers go to bench/RESULTS.md.
#
# Usage: perl bench/cart.pl [-c CONCURRENCY] [-d SECONDS] [-w WORKERS] [-r RUNS] [-f 0|1]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha256);
use Getopt::Long;
use MIME::Base64 qw(encode_base64url);
use Jangteo::Stack;
use Jangteo::Bench qw(wrk_run median limits_dir limits_run);
use Jangteo::Client qw(test_stack);

my ($c, $secs, $workers, $runs, $floor) = (16, 10, 8, 3, 1);
GetOptions('c=i' => \$c, 'd=i' => \$secs, 'w=i' => \$workers, 'r=i' => \$runs, 'f=i' => \$floor) or die "bad options\n";
my $limits = $floor ? limits_dir("$FindBin::Bin/..", 'limits.sh') : undef;
system('command -v wrk >/dev/null') == 0 or die "wrk is not installed\n";

my $s = test_stack(demo => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 },
              lock => { wait_ms => 10000 }, tx => { max_attempts => 50, deadline_ms => 8000 } });
my $dir = $s->dir;
$| = 1;

# --- data: one pool of buyers per endpoint and run, 1,000 products, carts -------
# A run needs one buyer per request: a pool of 1,200 per second of run is
# more than this machine serves (a run that used them all would reuse the
# last one, and its empty cart would show as answers that are not orders).
my $per_run = 1200 * $secs;
my $nbuyers = (2 * $runs + 1) * $per_run;    # the last pool warms up
my $NP = 10_000;
print "setting up $nbuyers buyers (tokens, balances, carts) and $NP products ...\n";
my $base = $s->sql("SELECT MAX(id) FROM users")->[0][0];
my $p0 = $s->sql("SELECT COALESCE(MAX(id), 0) + 1 FROM products")->[0][0];
$s->sql("INSERT INTO products (id, name, price, stock) SELECT $p0 + seq, CONCAT('bench cart ', seq), 1000, 10000000"
      . " FROM seq_0_to_" . ($NP - 1));
$s->sql("INSERT INTO stock_movements (product_id, delta, kind) SELECT id, stock, 'INITIAL' FROM products WHERE id >= $p0");
# buyer n's two lines: products p0 + n % NP and p0 + (n + NP / 2) % NP
# token n is the SHA-256 of "bench-cart-token-n" (so SQL can store its
# hash without a long statement); buyer n is user base + n
my @tokens = map { encode_base64url(sha256("bench-cart-token-$_")) } 1 .. $nbuyers;
for (my $from = 1; $from <= $nbuyers; $from += 10000) {
    my $to = $from + 9999 > $nbuyers ? $nbuyers : $from + 9999;
    my $q = "seq_${from}_to_${to}";
    # clones of the demo buyer (its sealed personal data is as good as any),
    # each with its CHARGE ledger row, a token and a cart of its two lines
    $s->sql("INSERT INTO users (id, email_index, email_enc, name_enc, phone_enc, password_hash, role, balance)"
          . " SELECT $base + q.seq, UNHEX(SHA2(CONCAT('bench-cart-', q.seq), 256)), u.email_enc, u.name_enc,"
          . " u.phone_enc, u.password_hash, 'BUYER', 100000000 FROM $q q JOIN users u ON u.id = 1;"
          . " INSERT INTO point_ledger (user_id, delta, balance_after, kind)"
          . " SELECT $base + seq, 100000000, 100000000, 'CHARGE' FROM $q;"
          . " INSERT INTO auth_tokens (token_hash, user_id, expires_at, last_used_at)"
          . " SELECT UNHEX(SHA2(UNHEX(SHA2(CONCAT('bench-cart-token-', seq), 256)), 256)), $base + seq,"
          . " NOW(6) + INTERVAL 1 DAY, NOW(6) FROM $q;"
          . " INSERT INTO baskets (user_id, kind, version) SELECT $base + seq, 'CART', 2 FROM $q;"
          . " INSERT INTO cart_items (user_id, id, rev, product_id, option_id, quantity)"
          . " SELECT $base + seq, 1, 1, $p0 + seq % $NP, 0, 1 FROM $q"
          . " UNION ALL SELECT $base + seq, 2, 2, $p0 + (seq + $NP / 2) % $NP, 0, 1 FROM $q");
}

# --- one wrk run: $kind 'order' or 'cart', buyers $first .. $first + $per_run - 1
my $url = "http://127.0.0.1:" . $s->http_port;
sub bench_run {
    my ($kind, $first, $dur) = @_;
    $dur //= $secs;
    my $file = "$dir/buyers-$first.txt";
    if (!-e $file) {
        open my $fh, '>', $file or die "$file: $!";
        for my $n ($first .. $first + $per_run - 1) {
            printf {$fh} "%d %s %d %d\n", $base + $n, $tokens[ $n - 1 ], $p0 + $n % $NP, $p0 + ($n + $NP / 2) % $NP;
        }
        close $fh;
    }
    # the pool's buyers log in now (a login stamps its token's last use):
    # set up minutes ago, each token's first request would otherwise write
    # the stamp ([auth] touch_interval), and more so for the later pools
    $s->sql("UPDATE auth_tokens SET last_used_at = NOW(6) WHERE user_id BETWEEN " . ($base + $first)
        . " AND " . ($base + $first + $per_run - 1));
    my $st0 = status();
    my $ticks0 = stack_ticks();
    my $w = wrk_run(c => $c, secs => $dur, script => "$FindBin::Bin/wrk/cart.lua", url => $url,
        args => [ $file, $kind, 2 ]);
    my $ticks1 = stack_ticks();
    my $st1 = status();
    my %ticks = map { $_ => 1000 * ($ticks1->{$_} - ($ticks0->{$_} // 0)) } keys %$ticks1;
    # a PAID order, and of the expected total: 2 x 1,000 + 3,000 shipping
    my $wrong = ($w->{bad_shape} // 0) + ($w->{requests} // 0) - ($w->{s201} // 0);
    my $paid = $s->sql("SELECT COUNT(*) FROM orders WHERE total <> 5000")->[0][0];
    die "an order of another total than 5,000\n" if $paid;
    my $good = $w->{good};
    my %per = map { $_ => ($st1->{$_} - ($st0->{$_} // 0)) / ($good || 1) } keys %$st1;
    return { rps => $w->{rps}, good => $good, wrong => $wrong,
             sockerr => $w->{err_connect} + $w->{err_read} + $w->{err_write} + $w->{err_timeout},
             p50 => $w->{pct}{50}, p99 => $w->{pct}{99},
             cpu => $ticks{all} / ($good || 1), parts => { map { $_ => $ticks{$_} / ($good || 1) } keys %ticks },
             per => \%per };
}

# CPU ticks (user + system) of the stack's parts, MariaDB, Redis, nginx and
# jangteod, each with its children. On a machine shared with other work
# the rates swing; what an order costs in CPU does much less.
sub stack_ticks {
    my (%ppid, %ticks);
    for my $st (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $st or next;
        my $line = <$fh> // next;
        my ($pid, $rest) = $line =~ /^(\d+) \(.*\) (.*)$/ or next;
        my @f = split ' ', $rest;
        $ppid{$pid} = $f[1];
        $ticks{$pid} = $f[11] + $f[12];
    }
    my %of;    # pid => the part it belongs to
    for my $name (keys %{ $s->{pids} }) {
        $of{ $s->{pids}{$name} } = $name if defined $s->{pids}{$name};
    }
    my $grew = 1;
    while ($grew) {
        $grew = 0;
        for my $pid (keys %ppid) {
            next if $of{$pid} || !$of{ $ppid{$pid} };
            $of{$pid} = $of{ $ppid{$pid} };
            $grew = 1;
        }
    }
    my %t = (all => 0);
    for my $pid (keys %of) {
        $t{ $of{$pid} } += $ticks{$pid} // 0;
        $t{all} += $ticks{$pid} // 0;
    }
    return \%t;
}

# MariaDB's counters of statements and row work, to say what an order costs
sub status {
    my %v = map { @$_ } @{ $s->sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select', 'Com_insert',"
        . " 'Com_update', 'Com_delete', 'Com_delete_multi', 'Com_update_multi', 'Com_commit', 'Innodb_rows_read',"
        . " 'Innodb_data_fsyncs', 'Handler_read_next', 'Handler_read_rnd_next', 'Handler_read_key')") };
    return \%v;
}

# a short warm-up of both (prepared statements, InnoDB pages), on buyers
# the runs do not use: the last pool
print "warming up ...\n";
bench_run('order', $nbuyers - $per_run + 1, 2);
bench_run('cart', $nbuyers - $per_run + 1, 2);
print "measuring (c=$c, ${secs}s each, $runs runs of each, alternating, $workers workers) ...\n";
my (@order, @cart);
for my $k (0 .. $runs - 1) {
    push @order, bench_run('order', 1 + (2 * $k) * $per_run);
    push @cart, bench_run('cart', 1 + (2 * $k + 1) * $per_run);
    printf "  run %d: orders %6.0f/s (p50 %5.1f ms, p99 %6.1f ms, %4.0f ticks/1,000, other %d)"
        . "   checkout %6.0f/s (p50 %5.1f ms, p99 %6.1f ms, %4.0f ticks/1,000, other %d)\n",
        $k + 1, @{ $order[-1] }{qw(rps p50 p99 cpu wrong)}, @{ $cart[-1] }{qw(rps p50 p99 cpu wrong)};
}
my ($mo, $mc) = (median(map { $_->{rps} } @order), median(map { $_->{rps} } @cart));

printf "\n== cart checkout vs POST /api/v1/orders, the same two lines (%s, concurrency %d, %d s each, %d workers)\n",
    scalar(gmtime), $c, $secs, $workers;
printf "POST /api/v1/orders          : median %6.0f orders/s  p50 %5.1f ms  p99 %6.1f ms\n", $mo,
    median(map { $_->{p50} } @order), median(map { $_->{p99} } @order);
printf "POST .../cart/checkout       : median %6.0f orders/s  p50 %5.1f ms  p99 %6.1f ms\n", $mc,
    median(map { $_->{p50} } @cart), median(map { $_->{p99} } @cart);
printf "ratio of the medians         : %5.1f %%   (goal >= 90 %%)\n", 100 * $mc / $mo;
my ($co, $cc) = (median(map { $_->{cpu} } @order), median(map { $_->{cpu} } @cart));
printf "CPU of the stack per 1,000   : orders %.0f ticks, checkouts %.0f ticks: a checkout costs %.1f %% of an order's CPU\n",
    $co, $cc, 100 * $cc / $co;
printf "  (on a saturated machine, checkout/s would be %.1f %% of orders/s)\n", 100 * $co / $cc;
for my $part (sort grep { $_ ne 'all' } keys %{ $order[0]{parts} }) {
    printf "  %-10s per 1,000: orders %5.1f, checkouts %5.1f ticks (medians)\n", $part,
        median(map { $_->{parts}{$part} // 0 } @order), median(map { $_->{parts}{$part} // 0 } @cart);
}
printf "ratio per pair               : %s\n", join(', ', map { sprintf('%.1f %%', 100 * $cart[$_]{rps} / $order[$_]{rps}) } 0 .. $runs - 1);
for my $pair ([ 'orders', \@order ], [ 'checkout', \@cart ]) {
    my ($name, $r) = @$pair;
    my %p = %{ $r->[-1]{per} };
    printf "per %-8s (last run): %s\n", $name, join(', ', map { sprintf('%s %.2f', $_, $p{$_}) } sort keys %p);
}
if ($floor) {
    # the floor while the stack idles: sysbench's order, spread over its
    # products like these, at this run's concurrency
    print "the database floor (limits.sh db, $c threads, ${secs}s each) ...\n";
    my $l = limits_run(what => 'db', limits => $limits, dir => "$dir/limits", threads => [$c], secs => $secs);
    warn "limits.sh db exited $l->{rc}:\n$l->{output}\n" if $l->{rc};
    for my $mode (qw(atomic pessimistic)) {
        my $f = $l->{floors}{"db $mode spread $c"};
        if (!$f || !$f->{rps}) {
            printf "floor db %-11s spread %d: not measured\n", $mode, $c;
            next;
        }
        printf "floor db %-11s spread %d: %6.0f orders/s (p95 %s ms): orders %.1f %%, checkouts %.1f %% of it\n",
            $mode, $c, $f->{rps}, $f->{p95_ms}, 100 * $mo / $f->{rps}, 100 * $mc / $f->{rps};
    }
}
printf "answers that were not a PAID order of 5,000: orders %d, checkouts %d; socket errors %d\n",
    (eval { my $t = 0; $t += $_->{wrong} for @order; $t }), (eval { my $t = 0; $t += $_->{wrong} for @cart; $t }),
    (eval { my $t = 0; $t += $_->{sockerr} for @order, @cart; $t });
# every checkout emptied its cart, every other cart is whole
my ($emptied, $whole) = (0, 0);
for my $k (0 .. $runs - 1) {
    my ($lo, $hi) = ($base + 1 + (2 * $k + 1) * $per_run, $base + (2 * $k + 2) * $per_run);
    my $r = $s->sql("SELECT COUNT(*), COALESCE(SUM(o.id IS NULL AND n.nl = 2), 0), COALESCE(SUM(o.id IS NOT NULL AND n.nl = 0), 0)"
        . " FROM (SELECT u.id, (SELECT COUNT(*) FROM cart_items c WHERE c.user_id = u.id) AS nl FROM users u"
        . "  WHERE u.id BETWEEN $lo AND $hi) n LEFT JOIN orders o ON o.user_id = n.id")->[0];
    $whole += $r->[1];
    $emptied += $r->[2];
}
my $checkouts = 0;
$checkouts += $_->{good} for @cart;
printf "checkout pools: %d carts emptied by an order (%d checkouts counted: wrk drops the answers in flight when it stops), %d carts whole without one\n",
    $emptied, $checkouts, $whole;
my ($rc, $audit) = $s->admin('audit');
print "audit after the run: ", ($rc == 0 ? "clean" : "VIOLATIONS\n$audit"), "\n";
$s->stop;
