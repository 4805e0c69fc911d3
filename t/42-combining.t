# Combining (issue 18): a hot product's queued orders commit together, and
# nothing about an order's outcome depends on it. Exact figures:
#  1. stock 100, 300 buyers at once: exactly 100 PAID, 200 OUT_OF_STOCK,
#     stock 0, money exact, and batches of more than one order happened;
#  2. 64 buyers at once, 10 of whom cannot afford it: exactly those 10 are
#     refused with INSUFFICIENT_BALANCE, the other 54 PAID, sharing batches;
#  3. a waiter's deadline shorter than the leader's transaction: every 503
#     left no order and no charge, every 201 is a real order;
#  4. kill -9 of a worker while it leads a batch, every order keyed: every
#     5xx, retried with its key, ends applied once or not at all;
#  5. a product sold by options: batches take each option's stock exactly
#     and keep each line's option, price and name;
#  6. a leader that has answered its client leads the next batch with the
#     product's lock kept, and every order still ends as its own.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack bearer concurrent);
use Jangteo::Orders qw(make_users set_balance add_product add_option order_body place_order tally
    scalar_sql order_invariants_ok);

my $JSON = JSON::PP->new->utf8->canonical;
sub show { join(', ', map { "$_ => $_[0]{$_}" } sort keys %{ $_[0] }) }
sub metric {
    my ($s, $name) = @_;
    my $body = $s->get('/metrics')->{body};
    my $v = 0;
    $v += $1 while $body =~ /^\Q$name\E (\d+)$/mg;
    return $v;
}
sub batches_over_one {
    my ($s) = @_;
    my $body = $s->get('/metrics')->{body};
    my ($one) = $body =~ /^jangteo_order_batch_size_bucket\{le="1"\} (\d+)$/m;
    my ($all) = $body =~ /^jangteo_order_batch_size_count (\d+)$/m;
    return ($all // 0) - ($one // 0);
}
sub audit_clean {
    my ($s, $name) = @_;
    my ($code, $out) = $s->admin('audit');
    is($code, 0, $name) or diag($out);
}
# a product as the catalog makes one: with its INITIAL stock movement (the
# audit counts stock from those)
sub product {
    my ($s, $name, $price, $stock) = @_;
    my $p = add_product($s, $name, $price, $stock);
    $s->sql("INSERT INTO stock_movements (product_id, option_id, delta, kind) VALUES ($p, NULL, $stock, 'INITIAL')");
    return $p;
}
sub req_for {
    my ($u, $p, %h) = @_;
    return [ 'POST', '/api/v1/orders', { %{ bearer($u->{token}) }, %h }, order_body([ [ $p, 1 ] ]) ];
}

my %GENEROUS = (lock => { wait_ms => 30_000 }, tx => { max_attempts => 100, deadline_ms => 20_000 });

# ---------------------------------------------------------------- 1 and 2
{
    my $s = test_stack(workers => 8, conf => {%GENEROUS});
    my $users = make_users($s, 300, tag => 'c42', balance => 1_000_000);

    my $p = product($s, '플래시 세일 상품', 30_000, 100);
    my $res = concurrent($s, [ map { req_for($_, $p) } @$users ]);
    my $t = tally($res);
    is($t->{201} // 0, 100, '1: 300 buyers on stock 100: exactly 100 PAID') or diag(show($t));
    is($t->{'409 OUT_OF_STOCK'} // 0, 200, '1: the other 200 OUT_OF_STOCK') or diag(show($t));
    is(scalar_sql($s, "SELECT stock FROM products WHERE id = $p"), 0, '1: stock 0');
    is(scalar_sql($s, "SELECT COUNT(*) FROM order_items WHERE product_id = $p"), 100, '1: 100 order lines');
    my %paid = map { $_->{json}{orderId} => 1 } grep { $_->{status} == 201 } @$res;
    is(scalar(keys %paid), 100, '1: 100 distinct order ids answered');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE id IN (" . join(',', keys %paid, 0) . ") AND status = 'PAID'"),
        100, '1: each of them a PAID order');
    cmp_ok(batches_over_one($s), '>', 0, '1: the batch-size histogram shows batches of more than one order');
    cmp_ok(metric($s, 'jangteo_orders_combined_total'), '>', 0, '1: orders were committed in shared batches');
    order_invariants_ok($s);

    # 2. ten buyers who cannot afford it
    my @b = @{$users}[0 .. 63];
    my @poor = @b[ map { $_ * 6 } 0 .. 9 ];
    set_balance($s, [ map { $_->{id} } @b ], 1_000_000);
    set_balance($s, [ map { $_->{id} } @poor ], 10_000);
    my %is_poor = map { $_->{id} => 1 } @poor;
    my $q = product($s, '두 번째 세일 상품', 30_000, 1000);
    my $before = metric($s, 'jangteo_orders_combined_total');
    $res = concurrent($s, [ map { req_for($_, $q) } @b ]);
    $t = tally($res);
    my ($refused_poor, $paid_rich, $other) = (0, 0, 0);
    for my $i (0 .. $#b) {
        my $r = $res->[$i];
        if ($is_poor{ $b[$i]{id} }) {
            $refused_poor++ if $r->{status} == 409 && ($r->{code} // '') eq 'INSUFFICIENT_BALANCE';
        } else {
            $paid_rich++ if $r->{status} == 201;
        }
    }
    is($refused_poor, 10, '2: exactly the 10 who cannot afford it are refused with INSUFFICIENT_BALANCE') or diag(show($t));
    is($paid_rich, 54, '2: the other 54 are PAID') or diag(show($t));
    is(($t->{201} // 0) + ($t->{'409 INSUFFICIENT_BALANCE'} // 0), 64, '2: and nothing else happened') or diag(show($t));
    is(scalar_sql($s, "SELECT 1000 - stock FROM products WHERE id = $q"), 54, '2: 54 units sold');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.product_id = $q"
        . " AND o.user_id IN (" . join(',', map { $_->{id} } @poor) . ")"), 0, '2: no order for any of the 10');
    cmp_ok(metric($s, 'jangteo_orders_combined_total') - $before, '>', 0, '2: the 54 shared batches');
    order_invariants_ok($s);
    audit_clean($s, '1, 2: audit clean');
    $s->stop;
}

# ---------------------------------------------------------------- 3. waiters past their deadline
{
    my $s = test_stack(workers => 8, conf => {
        server  => { enable_test_routes => 'yes' },
        testing => { tx_delay_ms => 800 },
        lock    => { wait_ms => 400 },
        tx      => { deadline_ms => 20_000, max_attempts => 100 },
        orders  => { combine_max => 8 },
    });
    my $users = make_users($s, 40, tag => 'w42', balance => 1_000_000);
    my $p = product($s, '기다리는 상품', 10_000, 1000);
    my $res = concurrent($s, [ map { req_for($_, $p) } @$users ]);
    my $t = tally($res);
    my ($ok503, $n503, $ok201, $n201) = (0, 0, 0, 0);
    for my $i (0 .. $#$users) {
        my ($u, $r) = ($users->[$i], $res->[$i]);
        my $orders = scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}");
        my $bal = scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}");
        if ($r->{status} == 503) {
            $n503++;
            $ok503++ if $orders == 0 && $bal == 1_000_000;
        } elsif ($r->{status} == 201) {
            $n201++;
            $ok201++ if $orders == 1 && $bal == 1_000_000 - 13_000
                && scalar_sql($s, "SELECT user_id FROM orders WHERE id = " . (0 + ($r->{json}{orderId} // 0))) == $u->{id};
        }
    }
    cmp_ok($n503, '>', 0, "3: some waiters reached their deadline (" . show($t) . ")");
    is($ok503, $n503, '3: every 503 left no order and no charge');
    is($ok201, $n201, '3: every 201 is a real order of its buyer, charged once');
    is($n503 + $n201, 40, '3: every answer is a 201 or a 503') or diag(show($t));
    is(scalar_sql($s, "SELECT 1000 - stock FROM products WHERE id = $p"), $n201, '3: stock sold = orders paid');
    order_invariants_ok($s);
    audit_clean($s, '3: audit clean');
    $s->stop;
}

# ---------------------------------------------------------------- 4. the leader killed mid-batch
{
    # more workers than buyers: waiters hold theirs, and /status must still
    # find one free to say who is leading
    my $s = test_stack(workers => 72, conf => {
        server  => { enable_test_routes => 'yes', crash_guard_exits => 1000 },
        testing => { tx_delay_ms => 1500 },
        lock    => { wait_ms => 3000, lease_ms => 3000 },
        tx      => { deadline_ms => 3000, max_attempts => 100 },
    });
    my $users = make_users($s, 60, tag => 'k42', balance => 1_000_000);
    my $p = product($s, '리더가 죽는 상품', 10_000, 30);
    my @reqs = map { req_for($users->[$_], $p, 'Idempotency-Key' => "k42-$_-$$") } 0 .. $#$users;

    # the killer: finds a worker leading a batch (/status) and kills it
    my $mark = $s->dir . '/killed';
    my $killer = fork() // die "fork: $!";
    if ($killer == 0) {
        my $deadline = time + 20;
        while (time < $deadline) {
            my $st = eval { $JSON->decode($s->get('/status?json')->{body}) } || {};
            my ($l) = grep { ($_->{leading_batch} // 0) > 0 } @{ $st->{processes} || [] };
            if ($l) {
                sleep 0.2;   # well inside its transaction (the test delay is 1.5 s)
                if (kill 'KILL', $l->{pid}) {
                    open my $fh, '>', $mark or _exit(1);
                    print $fh "$l->{pid} $l->{leading_batch}\n";
                    close $fh;
                    _exit(0);
                }
            }
            sleep 0.05;
        }
        _exit(0);
    }
    my $res = concurrent($s, \@reqs, timeout => 120);
    waitpid($killer, 0);
    my $killed = -e $mark ? do { local (@ARGV, $/) = ($mark); <> } : '';
    ok(length $killed, "4: a worker was killed while it led a batch ($killed)");
    my $t = tally($res);
    my @failed = grep { $res->[$_]{status} >= 500 } 0 .. $#$res;
    note('4: first answers: ' . show($t));
    cmp_ok(scalar(@failed), '>', 0, '4: the kill cost some requests an answer');

    # every failed one, retried with its key, says what happened
    my %final = map { $_ => $res->[$_] } 0 .. $#$res;
    for my $i (@failed) {
        my $r;
        for (1 .. 20) {
            $r = $s->request(@{ $reqs[$i] }[ 0 .. 1 ], { %{ $reqs[$i][2] }, 'Content-Type' => 'application/json' },
                $JSON->encode($reqs[$i][3]));
            last if $r->{status} < 500;
            sleep 0.5;
        }
        $final{$i} = $r;
    }
    my ($bad, $paid) = (0, 0);
    for my $i (0 .. $#$users) {
        my $r = $final{$i};
        my $n = scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $users->[$i]{id}");
        if ($r->{status} == 201) {
            my $j = eval { $JSON->decode($r->{body}) } || {};
            $paid++;
            $bad++ unless $n == 1 && scalar_sql($s, "SELECT user_id FROM orders WHERE id = " . (0 + ($j->{orderId} // 0)))
                == $users->[$i]{id};
        } else {
            $bad++ unless $r->{status} == 409 && $n == 0;
        }
    }
    is($bad, 0, '4: after the retries every buyer has exactly the order (or none) its last answer says');
    is($paid, 30, '4: exactly the stock was sold');
    is(scalar_sql($s, "SELECT stock FROM products WHERE id = $p"), 0, '4: stock 0');
    order_invariants_ok($s);
    audit_clean($s, '4: audit clean');
    $s->stop;
}

# ---------------------------------------------------------------- 5. options
{
    my $s = test_stack(workers => 16, conf => {%GENEROUS});
    my $users = make_users($s, 90, tag => 'o42', balance => 1_000_000);
    my $p = add_product($s, '옵션 세일 상품', 20_000, 0);
    my @opt = map { add_option($s, $p, "색상 $_", 500 * $_, 30) } 1 .. 3;
    $s->sql("INSERT INTO stock_movements (product_id, option_id, delta, kind) SELECT product_id, id, stock, 'INITIAL'"
        . " FROM product_options WHERE product_id = $p");
    my $res = concurrent($s, [ map {
        my $o = $opt[ $_ % 3 ];
        [ 'POST', '/api/v1/orders', bearer($users->[$_]{token}), order_body([ [ $p, 1, $o ] ]) ]
    } 0 .. 89 ]);
    my $t = tally($res);
    is($t->{201} // 0, 90, '5: 90 buyers over 3 options of 30: all PAID') or diag(show($t));
    for my $k (0 .. 2) {
        is(scalar_sql($s, "SELECT stock FROM product_options WHERE id = $opt[$k]"), 0, "5: option " . ($k + 1) . ": stock 0");
        is(scalar_sql($s, "SELECT COUNT(*) FROM order_items WHERE option_id = $opt[$k] AND unit_price = "
            . (20_000 + 500 * ($k + 1)) . " AND name = '옵션 세일 상품 / 색상 " . ($k + 1) . "'"), 30,
            "5: option " . ($k + 1) . ": 30 lines at its price, with its name");
    }
    my $bad = grep { $_->{status} == 201 && !(($_->{json}{items}[0]{optionId} // 0) > 0) } @$res;
    is($bad, 0, '5: every answer names its option');
    cmp_ok(batches_over_one($s), '>', 0, '5: option orders were combined');
    order_invariants_ok($s);
    audit_clean($s, '5: audit clean');
    $s->stop;
}

# ---------------------------------------------------------------- 6. a leader leads on
# A leader that has answered its own client takes the next batch with the
# product's lock kept. Batches of at most 4, each held 200 ms in its
# transaction (the test delay), and 24 buyers at once: when the first batch
# commits, the queue cannot be empty, so its leader leads on; nothing of any
# order's outcome depends on it.
{
    my $s = test_stack(workers => 8, conf => {
        server  => { enable_test_routes => 'yes' },
        testing => { tx_delay_ms => 200 },
        lock    => { wait_ms => 30_000, lease_ms => 20_000 },
        tx      => { deadline_ms => 3000, max_attempts => 100 },
        orders  => { combine_max => 4 },
    });
    my $users = make_users($s, 24, tag => 'l42', balance => 1_000_000);
    my $p = product($s, '이어서 이끄는 상품', 10_000, 1000);
    my $res = concurrent($s, [ map { req_for($_, $p) } @$users ]);
    my $t = tally($res);
    is($t->{201} // 0, 24, '6: 24 buyers, batches of at most 4: all PAID') or diag(show($t));
    my $own = 0;
    for my $i (0 .. $#$users) {
        my $id = 0 + ($res->[$i]{json}{orderId} // 0);
        $own++ if $id && scalar_sql($s, "SELECT user_id FROM orders WHERE id = $id AND status = 'PAID'") == $users->[$i]{id};
    }
    is($own, 24, "6: each answer is its own buyer's PAID order");
    is(scalar_sql($s, "SELECT 1000 - stock FROM products WHERE id = $p"), 24, '6: 24 units sold');
    cmp_ok(metric($s, 'jangteo_order_leader_turns_chained_total'), '>', 0,
        '6: a leader took a batch after answering its own client');
    cmp_ok(batches_over_one($s), '>', 0, '6: the batches held more than one order');
    my $r = place_order($s, $users->[0]{token}, order_body([ [ $p, 1 ] ]));
    is($r->{status}, 201, '6: the lock is free again: one more order -> 201') or diag($r->{body});
    order_invariants_ok($s);
    audit_clean($s, '6: audit clean');
    $s->stop;
}

done_testing;
