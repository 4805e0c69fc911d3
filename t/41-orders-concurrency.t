#!/usr/bin/perl
# Orders under contention: no oversell, no overspend, one cancel wins, the
# version fence holds when leases expire, Redis may vanish mid-run, and one
# Idempotency-Key makes one order. Exact figures: the stack gets waits and
# retry budgets generous enough that only business outcomes (201/409) occur.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use Jangteo::Client qw(test_stack bearer concurrent);
use Jangteo::Orders qw(
    make_users set_balance add_product add_option
    order_body place_order tally snapshot order_invariants_ok scalar_sql
);

my %GENEROUS = (
    lock => { wait_ms => 30000 },
    tx   => { max_attempts => 100, deadline_ms => 20000 },
);

my $s = test_stack(workers => 8, conf => {%GENEROUS});
my $users = make_users($s, 200, tag => 'o41', balance => 1_000_000);

sub stock  { scalar_sql($s, "SELECT stock FROM products WHERE id = $_[0]") }
sub order_req {
    my ($u, $body, %h) = @_;
    return [ 'POST', '/api/v1/orders', { %{ bearer($u->{token}) }, %h }, $body ];
}
sub show { Jangteo::Orders::tally_text($_[0]) }
sub ledger_ok {
    my ($ids, $name) = @_;
    my $in = join(',', @$ids);
    my $bad = $s->sql("SELECT u.id FROM users u LEFT JOIN (SELECT user_id, SUM(delta) d FROM point_ledger"
        . " GROUP BY user_id) l ON l.user_id = u.id WHERE u.id IN ($in) AND (u.balance <> COALESCE(l.d, 0) OR u.balance < 0)");
    is(scalar(@$bad), 0, $name) or diag('users: ' . join(',', map { $_->[0] } @$bad));
}

# ---------------------------------------------------------------- 1. 100 buyers, stock 100
{
    my $p = add_product($s, '동시 주문 A', 1_000, 100);
    my @b = @{$users}[0 .. 99];
    my $res = concurrent($s, [ map { order_req($_, order_body([ [ $p, 1 ] ])) } @b ]);
    my $t = tally($res);
    is($t->{201} // 0, 100, '1: 100 concurrent orders on stock 100: 100 PAID') or diag(show($t));
    is(stock($p), 0, '1: stock 0');
    is(scalar_sql($s, "SELECT COUNT(*) FROM order_items WHERE product_id = $p"), 100, '1: 100 order lines');
    is(scalar_sql($s, "SELECT COUNT(DISTINCT i.order_id) FROM order_items i JOIN orders o ON o.id = i.order_id"
        . " WHERE i.product_id = $p AND o.status = 'PAID'"), 100, '1: 100 PAID orders');
    ledger_ok([ map { $_->{id} } @b ], '1: every buyer: balance = ledger sum');
}

# ---------------------------------------------------------------- 2. 200 buyers, stock 100
{
    my $p = add_product($s, '동시 주문 B', 1_000, 100);
    my $res = concurrent($s, [ map { order_req($_, order_body([ [ $p, 1 ] ])) } @$users ]);
    my $t = tally($res);
    is($t->{201} // 0, 100, '2: 200 buyers on stock 100: exactly 100 PAID') or diag(show($t));
    is($t->{'409 OUT_OF_STOCK'} // 0, 100, '2: exactly 100 OUT_OF_STOCK') or diag(show($t));
    is(scalar(keys %$t), 2, '2: no other answer') or diag(show($t));
    is(stock($p), 0, '2: stock 0');
    is(scalar_sql($s, "SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = $p"), 100, '2: 100 units sold');
    my @paid = map { $users->[$_]{id} } grep { $res->[$_]{status} == 201 } 0 .. $#$res;
    my @refused = map { $users->[$_]{id} } grep { $res->[$_]{status} == 409 } 0 .. $#$res;
    ledger_ok([ map { $_->{id} } @$users ], '2: every buyer: balance = ledger sum');
    is(scalar_sql($s, "SELECT COUNT(*) FROM (SELECT o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id"
        . " WHERE i.product_id = $p GROUP BY o.user_id HAVING COUNT(*) = 1 AND SUM(o.total) = 4000) w"), 100,
        '2: 100 distinct winners, each with one order of 4,000');
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger l JOIN order_items i ON i.order_id = l.ref_id"
        . " WHERE l.kind = 'ORDER_PAYMENT' AND i.product_id = $p AND l.delta = -4000"), 100, '2: 100 payments of 4,000');
    is_deeply([ sort { $a <=> $b } @paid ], [ sort { $a <=> $b } map { $_->[0] } @{ $s->sql(
        "SELECT o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.product_id = $p") } ],
        '2: the buyers answered 201 are exactly the buyers with an order');
    my $loser_bad = @refused ? scalar_sql($s, "SELECT COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id"
        . " WHERE i.product_id = $p AND o.user_id IN (" . join(',', @refused) . ')') : 0;
    is($loser_bad, 0, '2: no refused buyer has an order for it');
}

# ---------------------------------------------------------------- 3. two products, 10 buyers x 2 of both
{
    my $p1 = add_product($s, '묶음 A', 2_000, 50);
    my $p2 = add_product($s, '묶음 B', 3_000, 50);
    my @b = @{$users}[100 .. 109];
    # half of them list the lines the other way round: locks must not deadlock
    my $i = 0;
    my $res = concurrent($s, [ map { order_req($_, order_body($i++ % 2 ? [ [ $p1, 2 ], [ $p2, 2 ] ] : [ [ $p2, 2 ], [ $p1, 2 ] ])) } @b ]);
    my $t = tally($res);
    is($t->{201} // 0, 10, '3: 10 buyers x (2 of A + 2 of B): 10 PAID') or diag(show($t));
    is(stock($p1), 30, '3: A 50 -> 30');
    is(stock($p2), 30, '3: B 50 -> 30');
    ledger_ok([ map { $_->{id} } @b ], '3: balances = ledger sums');
}

# ---------------------------------------------------------------- 4. one buyer, money for 3 orders, 10 at once
{
    my $p = add_product($s, '잔액 경쟁', 10_000, 1_000);
    my $u = $users->[110];
    set_balance($s, $u->{id}, 3 * 13_000 + 500);
    my $res = concurrent($s, [ map { order_req($u, order_body([ [ $p, 1 ] ])) } 1 .. 10 ]);
    my $t = tally($res);
    is($t->{201} // 0, 3, '4: exactly 3 orders succeed') or diag(show($t));
    is($t->{'409 INSUFFICIENT_BALANCE'} // 0, 7, '4: exactly 7 INSUFFICIENT_BALANCE') or diag(show($t));
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), 500, '4: balance ends at the remainder 500');
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE user_id = $u->{id} AND balance_after < 0"), 0,
        '4: the balance was never negative in the ledger');
    is(stock($p), 997, '4: 3 units sold');
    ledger_ok([ $u->{id} ], '4: balance = ledger sum');
    my @balances = sort { $a <=> $b } map { $_->{json}{balance} } grep { $_->{status} == 201 } @$res;
    is_deeply(\@balances, [ 500, 13_500, 26_500 ], '4: the three answers saw 26,500, 13,500, 500');
}

# ---------------------------------------------------------------- 8. ten concurrent cancels of one order
{
    my $p = add_product($s, '취소 경쟁', 7_000, 10);
    my $u = $users->[111];
    my $r = place_order($s, $u->{token}, order_body([ [ $p, 3 ] ]));
    is($r->{status}, 201, '8: the order to cancel') or diag($r->{body});
    my $id = $r->{json}{orderId};
    my $total = $r->{json}{total};
    my $bal = scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}");
    is(stock($p), 7, '8: stock 10 -> 7');
    my $res = concurrent($s, [ map { [ 'POST', "/api/v1/orders/$id/cancel", bearer($u->{token}), {} ] } 1 .. 10 ]);
    my $t = tally($res);
    is($t->{200} // 0, 1, '8: exactly one cancel 200') or diag(show($t));
    is($t->{'409 ORDER_NOT_CANCELLABLE'} // 0, 9, '8: nine 409 ORDER_NOT_CANCELLABLE') or diag(show($t));
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE kind = 'ORDER_REFUND' AND ref_id = $id"), 1, '8: one refund row');
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), $bal + $total, '8: refunded once');
    is(stock($p), 10, '8: stock restored once (10)');
    is(scalar_sql($s, "SELECT COUNT(*) FROM outbox WHERE topic = 'order.cancelled' AND aggregate_id = $id"), 1,
        '8: one order.cancelled event');
}

# ---------------------------------------------------------------- 11. one Idempotency-Key, 20 concurrent retries
{
    my $p = add_product($s, '멱등 주문', 4_000, 100);
    my $u = $users->[112];
    my $key = 'order-' . $$ . '-' . int(rand(1e9));
    my $body = order_body([ [ $p, 2 ] ]);
    my $before_orders = scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}");
    my $res = concurrent($s, [ map { order_req($u, $body, 'Idempotency-Key' => $key) } 1 .. 20 ]);
    my $t = tally($res);
    my @ok = grep { $_->{status} == 201 } @$res;
    my $inflight = grep { $_->{status} == 409 && ($_->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT' } @$res;
    ok(@ok >= 1, '11: at least one 201') or diag(show($t));
    is(@ok + $inflight, 20, '11: every answer is 201 or 409 IDEMPOTENCY_IN_FLIGHT') or diag(show($t));
    my %bodies = map { $_->{body} => 1 } @ok;
    is(scalar(keys %bodies), 1, '11: all 201 bodies byte-identical') or diag(join("\n", keys %bodies));
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}") - $before_orders, 1, '11: exactly one order row');
    is(stock($p), 98, '11: stock taken once');
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger l JOIN order_items i ON i.order_id = l.ref_id"
        . " WHERE l.user_id = $u->{id} AND l.kind = 'ORDER_PAYMENT' AND i.product_id = $p"), 1, '11: charged once');
    my $r = place_order($s, $u->{token}, $body, 'Idempotency-Key' => $key);
    is($r->{status}, 201, '11: a later retry: 201');
    is($r->{headers}{'idempotent-replayed'}, 'true', '11: with Idempotent-Replayed: true');
    is($r->{body}, (keys %bodies)[0], '11: the same bytes as the first answer');
    note('11: replay Location: ' . ($r->{headers}{location} // 'none'));
    $r = place_order($s, $u->{token}, order_body([ [ $p, 3 ] ]), 'Idempotency-Key' => $key);
    is($r->{status}, 422, '11: the same key with another body: 422') or diag($r->{body});
    is(stock($p), 98, '11: still taken once');
}

# ---------------------------------------------------------------- 10. Redis stopped mid-run
{
    my $p = add_product($s, 'Redis 정지', 1_000, 40);
    my @b = @{$users}[120 .. 179];
    my $stopped = 0;
    my $res = concurrent($s, [ map { order_req($_, order_body([ [ $p, 1 ] ])) } @b ],
        on_answer => sub { if ($_[0] >= 10 && !$stopped) { $stopped = 1; $s->stop_redis } });
    ok($stopped, '10: Redis was stopped while orders ran');
    like($s->log_text('error'), qr/Redis unavailable; relying on the version fence/, '10: some orders ran without the lock');
    my $t = tally($res);
    is($t->{201} // 0, 40, '10: exactly 40 PAID') or diag(show($t));
    is($t->{'409 OUT_OF_STOCK'} // 0, 20, '10: exactly 20 OUT_OF_STOCK') or diag(show($t));
    is(stock($p), 0, '10: stock 0, no oversell');
    is(scalar_sql($s, "SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = $p"), 40, '10: 40 units sold');
    ledger_ok([ map { $_->{id} } @b ], '10: balances = ledger sums');
    $s->start_redis;
    is($s->redis('ping'), 'PONG', '10: Redis back');
    my $q = add_product($s, 'Redis 복귀', 1_000, 5);
    my $r = place_order($s, $users->[180]{token}, order_body([ [ $q, 1 ] ]));
    is($r->{status}, 201, '10: orders work again with Redis back') or diag($r->{body});
}

order_invariants_ok($s);
$s->stop;

# ---------------------------------------------------------------- 9. tiny lease, delay inside the tx: the version fence
{
    my $s9 = test_stack(workers => 8, conf => {
        lock    => { lease_ms => 5, wait_ms => 30000 },
        tx      => { max_attempts => 100, deadline_ms => 60000 },
        testing => { tx_delay_ms => 30 },
        server  => { enable_test_routes => 'yes' },
    });
    my $u9 = make_users($s9, 100, tag => 'o41f', balance => 100_000);
    my $p = add_product($s9, '펜스 시험', 1_000, 50);
    my $res = concurrent($s9, [ map { [ 'POST', '/api/v1/orders', bearer($_->{token}), order_body([ [ $p, 1 ] ]) ] } @$u9 ]);
    my $t = tally($res);
    is($t->{201} // 0, 50, '9: lease 5 ms, 30 ms in the tx: exactly 50 PAID') or diag(Jangteo::Orders::tally_text($t));
    is($t->{'409 OUT_OF_STOCK'} // 0, 50, '9: exactly 50 OUT_OF_STOCK') or diag(Jangteo::Orders::tally_text($t));
    is(scalar_sql($s9, "SELECT stock FROM products WHERE id = $p"), 0, '9: stock 0');
    is(scalar_sql($s9, "SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE product_id = $p"), 50, '9: 50 units sold');
    like($s9->log_text('error'), qr/lease .* expired before release/, '9: leases did expire (the fence, not the lock, decided)');
    order_invariants_ok($s9);
    $s9->stop;
}

done_testing;
