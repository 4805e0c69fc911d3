#!/usr/bin/perl
# Orders moved by hand (issue 14): the seller of every line or an admin
# moves an order along the graph, a buyer cancels (PAID or PREPARING) or
# asks for a return within the window, the seller completes a return at
# once. Refusals change nothing: a move the graph does not allow is 409
# INVALID_TRANSITION naming the status, a stale If-Match 412, a buyer's
# move 403, someone else's order 404. GET shows the history; ?status=
# filters; ten return requests at once make one. The scheduler is left
# idle (durations of a day): every move here is made by hand, and business
# time is moved with the test clock for the return window's edges.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);

use Jangteo::Client qw(test_stack jreq new_user concurrent bearer invariant_ok is_problem);
use Jangteo::Catalog qw(make_product order_for rich_buyer demo_tokens audit_ok);
use Jangteo::Lifecycle qw(move return_order order_get history_of status_of events_quiet set_clock_at reset_clock
    epoch_of sql1);

my $WINDOW = 600;
my $s = test_stack(demo => 1, conf => {
    server => { enable_test_routes => 'yes' },
    lifecycle => { return_window => $WINDOW, sweep_interval => 1 },
    events => { audit_grace => 0, lost_after => 2, claim_idle_ms => 1000 },
});
my $tok = demo_tokens($s);
my $admin_id = sql1($s, "SELECT id FROM users WHERE role = 'ADMIN'");
my $seller = new_user($s, tag => 'seller', role => 'SELLER');
my $other_seller = new_user($s, tag => 'seller2', role => 'SELLER');
my $buyer = rich_buyer($s);
my $stranger = rich_buyer($s);
my $p1 = make_product($s, $seller->{token}, price => 10_000, stock => 10)->{id};
my $p2 = make_product($s, $seller->{token}, price => 5_000, stock => 20)->{id};
my $p3 = make_product($s, $other_seller->{token}, price => 7_000, stock => 5)->{id};

sub place {
    my (@lines) = @_;
    my $r = order_for($s, $buyer->{token}, @lines);
    is($r->{status}, 201, 'order placed') or diag($r->{body});
    return $r->{json}{orderId};
}
sub stock_of { sql1($s, "SELECT stock FROM products WHERE id = $_[0]") }
sub balance { sql1($s, "SELECT balance FROM users WHERE id = $buyer->{id}") }

# ---------------------------------------------------------------- one order, step by step
subtest 'the seller moves an order along the graph; refusals change nothing' => sub {
    my $o = place([ $p1, 2 ]);
    my $g = order_get($s, $buyer->{token}, $o);
    is($g->{status}, 200, 'GET the order');
    is($g->{json}{status}, 'PAID', 'it starts PAID');
    is($g->{json}{version}, 0, 'at version 0');
    is_deeply($g->{json}{history}, [], 'with no move in its history');
    is($g->{json}{total}, 23_000, 'total 20,000 + 3,000 shipping');
    ok($g->{json}{paidAt}, 'paidAt is set');

    is_problem(move($s, $buyer->{token}, $o, 'PREPARING'), 403, 'FORBIDDEN', 'the buyer may not move it');
    is_problem(move($s, $other_seller->{token}, $o, 'PREPARING'), 404, 'ORDER_NOT_FOUND',
        'a seller of none of its lines gets 404');
    is_problem(move($s, $stranger->{token}, $o, 'PREPARING'), 404, 'ORDER_NOT_FOUND', 'another buyer gets 404');
    my $r = move($s, $seller->{token}, $o, 'DELIVERED');
    is_problem($r, 409, 'INVALID_TRANSITION', 'PAID -> DELIVERED is not a move of the graph');
    is($r->{json}{currentStatus}, 'PAID', '... and the answer names the current status');
    like($r->{json}{detail} // '', qr/is PAID: it cannot move to DELIVERED/, '... in its detail too');
    is_problem(move($s, $seller->{token}, $o, 'PREPARING', if_match => '"5"'), 412, 'VERSION_MISMATCH',
        'a stale If-Match is 412');
    is_problem(move($s, $seller->{token}, $o, 'CANCELLED'), 400, 'INVALID_REQUEST', 'a cancel is not a transition');
    is_problem(move($s, $seller->{token}, $o, 'PREPARING', trackingNumber => 'CJ-1'), 400, 'INVALID_REQUEST',
        'a tracking number goes with SHIPPING only');
    is(status_of($s, $o), 'PAID', 'after all that the order is still PAID');
    is(scalar @{ history_of($s, $o) }, 0, '... with no move');

    $r = move($s, $seller->{token}, $o, 'PREPARING', if_match => 'W/"0"');
    is($r->{status}, 200, 'the seller: PREPARING with the version it saw') or diag($r->{body});
    is($r->{json}{status}, 'PREPARING', 'the answer is the order as it now stands');
    is($r->{json}{version}, 1, 'at version 1');
    is_deeply([ map { [ $_->{from}, $_->{to}, $_->{actor}, $_->{actorId} ] } @{ $r->{json}{history} } ],
        [ [ 'PAID', 'PREPARING', 'SELLER', $seller->{id} ] ], 'its history holds the move, by the seller');

    is_problem(move($s, $seller->{token}, $o, 'SHIPPING', trackingNumber => '운송장'), 400, 'INVALID_REQUEST',
        'a tracking number is letters, digits and dashes');
    $r = move($s, $seller->{token}, $o, 'SHIPPING', trackingNumber => 'CJ-1234567890');
    is($r->{status}, 200, 'SHIPPING with a tracking number') or diag($r->{body});
    is($r->{json}{trackingNumber}, 'CJ-1234567890', 'the tracking number is on the order');
    ok($r->{json}{shippedAt}, 'shippedAt is set');

    my $bal = balance();
    my $st = stock_of($p1);
    is_problem(jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token}), 409, 'INVALID_TRANSITION',
        'a cancel after SHIPPING is 409 INVALID_TRANSITION');
    is_problem(return_order($s, $buyer->{token}, $o), 409, 'INVALID_TRANSITION', 'a return before delivery is 409');
    is(balance(), $bal, '... the balance did not move');
    is(stock_of($p1), $st, '... nor the stock');

    $r = move($s, $tok->{admin}, $o, 'DELIVERED');
    is($r->{status}, 200, 'an admin moves it to DELIVERED') or diag($r->{body});
    ok($r->{json}{deliveredAt}, 'deliveredAt is set');
    is(epoch_of($r->{json}{returnableUntil}) - epoch_of($r->{json}{deliveredAt}), $WINDOW,
        "returnableUntil is deliveredAt + $WINDOW s");
    is_problem(move($s, $tok->{admin}, $o, 'SHIPPING'), 409, 'INVALID_TRANSITION', 'no way back to SHIPPING');

    is_deeply(history_of($s, $o), [
        [ 'PAID', 'PREPARING', 'SELLER', $seller->{id} ],
        [ 'PREPARING', 'SHIPPING', 'SELLER', $seller->{id} ],
        [ 'SHIPPING', 'DELIVERED', 'ADMIN', $admin_id ],
    ], 'order_events: three moves, each with its actor');
    $g = order_get($s, $buyer->{token}, $o);
    is_deeply([ map { "$_->{from}>$_->{to}" } @{ $g->{json}{history} } ],
        [ 'PAID>PREPARING', 'PREPARING>SHIPPING', 'SHIPPING>DELIVERED' ], 'GET shows the same history');
    is($g->{json}{version}, 3, 'version 3 after three moves');
    is(sql1($s, "SELECT COUNT(*) FROM outbox WHERE aggregate_id = $o AND topic IN"
        . " ('order.preparing', 'order.shipping', 'order.delivered')"), 3, 'one outbox row per move');

    # ten return requests at once: one
    my $res = concurrent($s, [ map { [ 'POST', "/api/v1/orders/$o/return", bearer($buyer->{token}),
        { reason => "요청 $_" } ] } 1 .. 10 ]);
    my %t;
    $t{ $_->{status} . ' ' . ($_->{json}{code} // $_->{json}{status} // '') }++ for @$res;
    is($t{'200 RETURN_REQUESTED'} // 0, 1, '10 concurrent return requests: one is 200') or diag(explain \%t);
    is($t{'409 INVALID_TRANSITION'} // 0, 9, '... nine are 409 INVALID_TRANSITION') or diag(explain \%t);
    is(sql1($s, "SELECT COUNT(*) FROM order_events WHERE order_id = $o AND to_status = 'RETURN_REQUESTED'"), 1,
        '... and one move was made');
    is(sql1($s, "SELECT COUNT(*) FROM outbox WHERE aggregate_id = $o AND topic = 'order.return_requested'"), 1,
        '... with one event');
};

# ---------------------------------------------------------------- the return window's edges
subtest 'a return one second inside the window is taken, one second after it is 409' => sub {
    my ($inside, $after) = (place([ $p2, 1 ]), place([ $p2, 1 ]));
    for my $o ($inside, $after) {
        is(move($s, $tok->{admin}, $o, $_)->{status}, 200, "order $o to $_") for qw(PREPARING SHIPPING DELIVERED);
    }
    my $d_after = epoch_of(order_get($s, $buyer->{token}, $after)->{json}{deliveredAt});
    set_clock_at($s, $d_after + $WINDOW + 1);
    is_problem(return_order($s, $buyer->{token}, $after), 409, 'RETURN_WINDOW_CLOSED',
        'one second after the window: 409 RETURN_WINDOW_CLOSED');
    is(status_of($s, $after), 'DELIVERED', '... the order stays DELIVERED');

    my $d_in = epoch_of(order_get($s, $buyer->{token}, $inside)->{json}{deliveredAt});
    set_clock_at($s, $d_in + $WINDOW - 1);
    my $r = return_order($s, $buyer->{token}, $inside, '색상이 달라요');
    is($r->{status}, 200, 'one second before it closes: the return is taken') or diag($r->{body});
    is($r->{json}{status}, 'RETURN_REQUESTED', 'RETURN_REQUESTED');
    is($r->{json}{returnReason}, '색상이 달라요', 'with the reason');
    reset_clock($s);

    is_problem(return_order($s, $tok->{admin}, $after), 403, 'FORBIDDEN', 'only the buyer asks for a return');
    is_problem(jreq($s, 'POST', "/api/v1/orders/$after/return", $buyer->{token}, { reason => '' }), 400,
        'INVALID_REQUEST', 'an empty reason is 400');
    is_problem(jreq($s, 'POST', "/api/v1/orders/$after/return", $buyer->{token}, { reason => 'x', extra => 1 }), 400,
        'INVALID_REQUEST', 'an unknown member is 400');

    # the seller completes the return at once: units back, the total refunded
    my $bal = balance();
    my $st = stock_of($p2);
    my $total = sql1($s, "SELECT total FROM orders WHERE id = $inside");
    $r = move($s, $seller->{token}, $inside, 'RETURNED');
    is($r->{status}, 200, 'the seller completes the return') or diag($r->{body});
    is($r->{json}{status}, 'RETURNED', 'RETURNED');
    is(stock_of($p2), $st + 1, 'the unit is back in stock, exactly');
    is(balance(), $bal + $total, 'the buyer has the total back');
    is_deeply($s->sql("SELECT delta FROM point_ledger WHERE ref_id = $inside AND kind = 'ORDER_REFUND'"),
        [ [$total] ], 'one ORDER_REFUND row of exactly the total');
    is_problem(move($s, $seller->{token}, $inside, 'RETURNED'), 409, 'INVALID_TRANSITION', 'a second time is 409');
    is(balance(), $bal + $total, '... and refunds nothing more');
    invariant_ok($s);
};

# ---------------------------------------------------------------- cancels
subtest 'a buyer cancels a PREPARING order: units back, the total refunded, once' => sub {
    my $bal0 = balance();
    my $st0 = stock_of($p1);
    my $o = place([ $p1, 1 ]);
    is(move($s, $seller->{token}, $o, 'PREPARING')->{status}, 200, 'PREPARING');
    my $r = jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token});
    is($r->{status}, 200, 'cancelled from PREPARING') or diag($r->{body});
    is($r->{json}{status}, 'CANCELLED', 'CANCELLED');
    ok($r->{json}{cancelledAt}, 'cancelledAt is set');
    is(balance(), $bal0, 'the balance is what it was before the order');
    is(stock_of($p1), $st0, 'so is the stock');
    is_problem(jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token}), 409, 'ORDER_NOT_CANCELLABLE',
        'a second cancel is 409 ORDER_NOT_CANCELLABLE');
    is(balance(), $bal0, '... and refunds nothing');
    is_deeply(history_of($s, $o), [ [ 'PAID', 'PREPARING', 'SELLER', $seller->{id} ],
        [ 'PREPARING', 'CANCELLED', 'BUYER', $buyer->{id} ] ], 'the history: PREPARING, then CANCELLED by the buyer');
};

# ---------------------------------------------------------------- a keyed retry
subtest 'a transition retried with its Idempotency-Key replays the committed answer' => sub {
    my $o = place([ $p2, 1 ]);
    my $k = "move-$$-" . int(rand(1e9));
    my $a = move($s, $seller->{token}, $o, 'PREPARING', key => $k);
    is($a->{status}, 200, 'the first move') or diag($a->{body});
    my $b = move($s, $seller->{token}, $o, 'PREPARING', key => $k);
    is($b->{status}, 200, 'the retry with the same key: 200');
    is($b->{headers}{'idempotent-replayed'}, 'true', '... marked as a replay');
    is($b->{body}, $a->{body}, '... byte for byte the first answer');
    is(scalar @{ history_of($s, $o) }, 1, '... and the order moved once');
    is_problem(move($s, $seller->{token}, $o, 'PREPARING'), 409, 'INVALID_TRANSITION', 'without the key: 409');
};

# ---------------------------------------------------------------- a mixed order, the lists
subtest 'an order of two sellers is moved by an admin; ?status= filters the list' => sub {
    my $o = place([ $p1, 1 ], [ $p3, 1 ]);
    is_problem(move($s, $seller->{token}, $o, 'PREPARING'), 404, 'ORDER_NOT_FOUND',
        'the seller of one line only gets 404');
    is(move($s, $tok->{admin}, $o, 'PREPARING')->{status}, 200, 'an admin moves it');

    my %want;
    for my $st (qw(PAID PREPARING DELIVERED RETURN_REQUESTED RETURNED CANCELLED)) {
        $want{$st} = [ map { $_->[0] } @{ $s->sql("SELECT id FROM orders WHERE user_id = $buyer->{id} AND status = '$st'"
            . ' ORDER BY id DESC') } ];
        my $r = jreq($s, 'GET', "/api/v1/users/$buyer->{id}/orders?status=$st&limit=50", $buyer->{token});
        is($r->{status}, 200, "?status=$st");
        is_deeply([ map { $_->{orderId} } @{ $r->{json}{items} } ], $want{$st}, "... lists exactly the $st orders");
        ok(!grep({ $_->{status} ne $st } @{ $r->{json}{items} }), '... each of that status');
    }
    is(scalar @{ $want{DELIVERED} }, 1, 'one order is DELIVERED (the one whose return window closed)');
    is(scalar @{ $want{RETURN_REQUESTED} }, 1, 'one waits for its return');
    is_problem(jreq($s, 'GET', "/api/v1/users/$buyer->{id}/orders?status=NOPE", $buyer->{token}), 400,
        'INVALID_REQUEST', '?status=NOPE is 400');
    is_problem(jreq($s, 'GET', "/api/v1/users/$buyer->{id}/orders?status=PAID", $stranger->{token}), 403,
        'FORBIDDEN', "another user's list is 403");
};

# ---------------------------------------------------------------- notifications
subtest 'every event told the buyer, in Korean, once; read marks one' => sub {
    my $q = events_quiet($s);
    is($q->{unnotified}, 0, 'every event was consumed') or diag(explain $q);
    my $dup = $s->sql('SELECT event_id FROM notifications GROUP BY event_id, user_id HAVING COUNT(*) <> 1');
    is(scalar @$dup, 0, 'no event told anyone twice');
    my $o = sql1($s, "SELECT MIN(order_id) FROM order_events WHERE to_status = 'SHIPPING'");
    my $m = sql1($s, "SELECT n.message FROM notifications n JOIN outbox x ON x.id = n.event_id"
        . " WHERE x.topic = 'order.shipping' AND x.aggregate_id = $o");
    is($m, "배송이 시작되었습니다. 주문번호 $o, 운송장번호 CJ-1234567890", 'the shipping message names the tracking number');
    is(sql1($s, "SELECT message FROM notifications n JOIN outbox x ON x.id = n.event_id"
        . " WHERE x.topic = 'order.paid' AND x.aggregate_id = $o"), "주문이 완료되었습니다. 주문번호 $o, 결제금액 23,000원",
        'the order message: 주문이 완료되었습니다, with the amount');
    my $events = sql1($s, "SELECT COUNT(*) FROM outbox x WHERE (x.topic LIKE 'order.%' AND x.aggregate_id IN"
        . " (SELECT id FROM orders WHERE user_id = $buyer->{id})) OR (x.topic = 'points.charged' AND x.aggregate_id IN"
        . " (SELECT id FROM point_ledger WHERE user_id = $buyer->{id}))");
    my $list = jreq($s, 'GET', "/api/v1/users/$buyer->{id}/notifications?limit=100", $buyer->{token});
    is($list->{status}, 200, 'GET notifications');
    is(scalar @{ $list->{json}{items} }, $events, "one notification per event of the buyer ($events)");
    my $unread = jreq($s, 'GET', "/api/v1/users/$buyer->{id}/notifications?unread=true&limit=100", $buyer->{token});
    is(scalar @{ $unread->{json}{items} }, $events, 'all of them unread');
    my $n = $list->{json}{items}[0];
    my $r = jreq($s, 'POST', "/api/v1/users/$buyer->{id}/notifications/$n->{id}/read", $buyer->{token});
    is($r->{status}, 200, 'mark the newest read') or diag($r->{body});
    ok($r->{json}{readAt}, '... it has readAt');
    my $again = jreq($s, 'POST', "/api/v1/users/$buyer->{id}/notifications/$n->{id}/read", $buyer->{token});
    is($again->{json}{readAt}, $r->{json}{readAt}, 'a second read changes nothing');
    $unread = jreq($s, 'GET', "/api/v1/users/$buyer->{id}/notifications?unread=true&limit=100", $buyer->{token});
    is(scalar @{ $unread->{json}{items} }, $events - 1, 'one fewer unread');
    is_problem(jreq($s, 'POST', "/api/v1/users/$stranger->{id}/notifications/$n->{id}/read", $stranger->{token}), 404,
        'NOTIFICATION_NOT_FOUND', "someone else's notification is 404 under their own id");
    is_problem(jreq($s, 'GET', "/api/v1/users/$buyer->{id}/notifications", $stranger->{token}), 403, 'FORBIDDEN',
        "someone else's list is 403");
    is_problem(jreq($s, 'GET', "/api/v1/users/$buyer->{id}/notifications?unread=yes", $buyer->{token}), 400,
        'INVALID_REQUEST', '?unread=yes is 400');
};

invariant_ok($s);
audit_ok($s, $tok->{admin});
$s->stop;
done_testing;
