#!/usr/bin/perl
# Orders paid by card, against the gateway simulator: the happy path, a
# tampered amount, a payment the gateway does not have, a lost answer, ten
# verifies at once, the webhook alone, a forged webhook, cancelling with a
# refund (and with the gateway down: CANCEL_PENDING, finished by the
# sweeper), points orders untouched, and the audit against the simulator.
# Every figure is read back from MariaDB and from the simulator's records.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;

use Jangteo::Client qw(bearer jreq concurrent is_problem);
use Jangteo::Orders qw(make_users make_admin set_balance order_body place_order scalar_sql);
use Jangteo::Catalog qw(make_product);
use Jangteo::Cards qw(
    card_stack card_order pay verify sim sim_count sim_payment sim_payments_of fault clear_faults
    stock_of order_row card_row gateway_rows sweep_until audit_clean
);

my $s = card_stack(workers => 4);
my ($alice, $bob, $admin) = @{ make_users($s, 3, tag => 'c66') };
make_admin($s, $admin);
set_balance($s, [ $alice->{id} ], 500_000);

# 2 x 12,000 + 3,000 shipping = 27,000 (made through the API: its stock movement is what the audit counts from)
my $p = make_product($s, $admin->{token}, name => '카드 결제 상품', price => 12_000, stock => 50)->{id};

# A card order of 2 units, paid at the simulator: (order, merchantUid, imp_uid)
sub placed {
    my ($tok, %o) = @_;
    my $r = card_order($s, $tok, [ [ $p, $o{qty} // 2 ] ], %o);
    die "card order: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json};
}

# ---------------------------------------------------------------- the happy path
subtest 'card order, pay at the simulator, verify: PAID' => sub {
    my $before = stock_of($s, $p);
    my $prepares = sim_count($s, 'prepare');
    my $r = card_order($s, $alice->{token}, [ [ $p, 2 ] ], card => 'NH');
    is($r->{status}, 201, 'the card order: 201') or diag($r->{body});
    my $j = $r->{json};
    is($j->{status}, 'PAYMENT_PENDING', 'status PAYMENT_PENDING');
    is($j->{total}, 27_000, 'total 27,000');
    ok(!exists $j->{balance}, 'no balance in a card order answer');
    is($j->{payment}{method}, 'CARD', 'payment.method CARD');
    is($j->{payment}{cardCompany}, 'NH', 'payment.cardCompany NH');
    is($j->{payment}{amount}, 27_000, 'payment.amount 27,000');
    like($j->{payment}{merchantUid}, qr/^jt[0-9a-f]{32}$/, 'a merchantUid of 128 random bits');
    like($j->{payment}{holdExpiresAt}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'holdExpiresAt');
    is($j->{payment}{payUrl}, $s->pgsim_url("/pay/$j->{payment}{merchantUid}"), "payUrl: the simulator's pay page");
    like($r->{headers}{location} // '', qr{/api/v1/orders/$j->{orderId}$}, 'Location');
    is(stock_of($s, $p), $before - 2, 'the stock is reserved: down by exactly 2');
    is(sim_count($s, 'prepare') - $prepares, 1, 'one prepare at the gateway');
    is(sim($s, 'GET', '/_sim/payments')->{prepared}{ $j->{payment}{merchantUid} }, 27_000,
        'the gateway holds the amount 27,000 for the merchant uid');
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE ref_id = $j->{orderId} AND kind LIKE 'ORDER%'"), 0,
        'no points move');

    my $page = $s->_http->get($j->{payment}{payUrl});
    is($page->{status}, 200, 'the pay page renders');
    like($page->{content}, qr/27,000/, 'and shows the amount');

    # the webhook is the next subtest's: here the verify alone
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
    my $paid = pay($s, $j->{payment}{merchantUid}, 'NH');
    is($paid->{status}, 'paid', 'paid at the simulator');
    is($paid->{amount}, 27_000, 'the simulator charged 27,000');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_PENDING', 'still pending until verified');

    my $lookups = sim_count($s, 'lookup');
    my $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is($v->{status}, 200, 'verify: 200') or diag($v->{body});
    is($v->{json}{status}, 'PAID', 'the order is PAID');
    is($v->{json}{payment}{impUid}, $paid->{imp_uid}, 'the answer names the gateway payment');
    is(sim_count($s, 'lookup') - $lookups, 1, 'one lookup for the verify');
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
    is_deeply(order_row($s, $j->{orderId}), [ 'PAID', 'CARD', 27000 ], 'orders row: PAID, CARD, 27,000');
    is_deeply(gateway_rows($s, $j->{orderId}), [ [ $paid->{imp_uid}, 27000, 0, 'CAPTURED' ] ],
        'one captured gateway payment of 27,000');
    is(stock_of($s, $p), $before - 2, 'the stock stays down by exactly 2');
    my $at_gw = sim_payments_of($s, $j->{payment}{merchantUid});
    is(scalar(@$at_gw), 1, 'the gateway shows one payment for the merchant uid');
    is($at_gw->[0]{status}, 'paid', '... paid');
    is($at_gw->[0]{amount}, 27_000, '... of 27,000');

    my $g = $s->get("/api/v1/orders/$j->{orderId}", bearer($alice->{token}));
    is($g->{json}{status}, 'PAID', 'GET: PAID');
    is($g->{json}{payment}{impUid}, $paid->{imp_uid}, 'GET: the payment block');
    ok(!exists $g->{json}{payment}{payUrl}, 'GET: no payUrl once paid');

    my $again = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is($again->{status}, 200, 'a second verify (new key): 200');
    is($again->{body}, $v->{body}, '... the same answer');
    is_deeply(gateway_rows($s, $j->{orderId}), [ [ $paid->{imp_uid}, 27000, 0, 'CAPTURED' ] ], '... nothing twice');
};

# ---------------------------------------------------------------- the amount tampered
subtest 'the simulator reports total - 1: 409, cancelled at the gateway, stock restored' => sub {
    my $before = stock_of($s, $p);
    my $j = placed($alice->{token});
    my $mu = $j->{payment}{merchantUid};
    is(stock_of($s, $p), $before - 2, 'reserved');
    fault($s, endpoint => 'pay', merchant_uid => $mu, amount_delta => -1);
    my $paid = pay($s, $mu);
    is($paid->{amount}, 26_999, 'the buyer paid 26,999');
    my $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is_problem($v, 409, 'PAYMENT_AMOUNT_MISMATCH', 'verify: 409 PAYMENT_AMOUNT_MISMATCH');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_FAILED', 'the order is PAYMENT_FAILED');
    is(stock_of($s, $p), $before, 'the stock is restored');
    my $gp = sim_payment($s, $paid->{imp_uid});
    is($gp->{status}, 'cancelled', 'the gateway shows the payment cancelled');
    is($gp->{cancel_amount}, 26_999, '... all 26,999 of it');
    is(scalar(@{ $gp->{cancel_history} }), 1, '... in one refund');
    is_deeply(gateway_rows($s, $j->{orderId}), [ [ $paid->{imp_uid}, 26999, 26999, 'REFUNDED' ] ],
        'our record: refunded in full');
    is(scalar_sql($s, "SELECT checksum FROM card_refunds WHERE imp_uid = '$paid->{imp_uid}'"), 26_999,
        'the refund carried checksum 26,999');
    my $again = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is_problem($again, 409, 'PAYMENT_AMOUNT_MISMATCH', 'verify again: the same 409');
    is(scalar(@{ sim_payment($s, $paid->{imp_uid})->{cancel_history} }), 1, '... and no second refund');
    clear_faults($s);
};

# ---------------------------------------------------------------- no such payment
subtest 'a payment the gateway does not have: 409 PAYMENT_NOT_FOUND, still pending' => sub {
    my $before = stock_of($s, $p);
    my $j = placed($alice->{token});
    my $v = verify($s, $alice->{token}, $j->{orderId}, 'imp_999999999999');
    is_problem($v, 409, 'PAYMENT_NOT_FOUND', 'verify of an unknown imp_uid: 409 PAYMENT_NOT_FOUND');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_PENDING', 'the order stays pending');
    is(stock_of($s, $p), $before - 2, 'its stock stays reserved');
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
    my $paid = pay($s, $j->{payment}{merchantUid});
    fault($s, endpoint => 'lookup', merchant_uid => $j->{payment}{merchantUid}, lose => 1, times => 1);
    $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is_problem($v, 409, 'PAYMENT_NOT_FOUND', 'a lookup that loses the payment: 409 PAYMENT_NOT_FOUND');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_PENDING', '... still pending');
    clear_faults($s);
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
    $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid});
    is($v->{status}, 200, 'once the gateway finds it: 200') or diag($v->{body});
    is($v->{json}{status}, 'PAID', '... PAID');
    is(stock_of($s, $p), $before - 2, 'the stock: down by exactly 2');
};

# ---------------------------------------------------------------- a lost answer, ten at once
subtest 'a dropped answer, then verify again: PAID once; ten verifies at once: PAID once' => sub {
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
    my $j = placed($alice->{token});
    my $mu = $j->{payment}{merchantUid};
    my $paid = pay($s, $mu);
    fault($s, endpoint => 'lookup', merchant_uid => $mu, drop_answer => 1);
    my $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid}, key => "lost-$j->{orderId}");
    is_problem($v, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', 'every answer dropped: 503 PAYMENT_GATEWAY_UNAVAILABLE');
    ok(defined $v->{headers}{'retry-after'}, '... with Retry-After');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_PENDING', '... and the order still pending');
    clear_faults($s);
    $v = verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid}, key => "lost-$j->{orderId}");
    is($v->{status}, 200, 'the same key again: 200') or diag($v->{body});
    is($v->{json}{status}, 'PAID', '... PAID');
    is(scalar(@{ gateway_rows($s, $j->{orderId}) }), 1, 'one gateway payment recorded');

    my $k = placed($alice->{token});
    my $paid2 = pay($s, $k->{payment}{merchantUid});
    my $lookups = sim_count($s, 'lookup');
    my @answers = @{ concurrent($s, [ map {
        [ 'POST', "/api/v1/orders/$k->{orderId}/payments",
          { %{ bearer($alice->{token}) }, 'Idempotency-Key' => "ten-$k->{orderId}-$_" }, { impUid => $paid2->{imp_uid} } ]
    } 1 .. 10 ]) };
    is(scalar(grep { $_->{status} == 200 } @answers), 10, 'ten verifies: ten 200s')
        or diag(join "\n", map { "$_->{status} $_->{body}" } @answers);
    is(scalar(grep { ($_->{json}{status} // '') eq 'PAID' } @answers), 10, '... each says PAID');
    ok(sim_count($s, 'lookup') - $lookups <= 10, 'at most one lookup per verify: ' . (sim_count($s, 'lookup') - $lookups));
    is_deeply(gateway_rows($s, $k->{orderId}), [ [ $paid2->{imp_uid}, 27000, 0, 'CAPTURED' ] ], 'PAID once: one captured payment');
    is(scalar_sql($s, "SELECT COUNT(*) FROM outbox WHERE aggregate_id = $k->{orderId} AND topic = 'order.paid'"), 1,
        'one order.paid event');
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
};

# ---------------------------------------------------------------- the webhook alone
subtest 'the webhook alone: PAID without a verify; a forged webhook changes nothing' => sub {
    my $j = placed($bob->{token});
    my $paid = pay($s, $j->{payment}{merchantUid});
    ok(sweep_until(sub { order_row($s, $j->{orderId})->[0] eq 'PAID' }, 10),
        "the simulator's webhook made the order PAID");
    is_deeply(gateway_rows($s, $j->{orderId}), [ [ $paid->{imp_uid}, 27000, 0, 'CAPTURED' ] ], 'one captured payment');

    # forged: a pending order, a made-up payment, a wrong amount
    my $k = placed($bob->{token});
    my $snap = $s->sql("SELECT status, version FROM orders WHERE id = $k->{orderId}")->[0];
    my $r = $s->post_json('/api/v1/payments/webhook',
        { imp_uid => 'imp_000000999999', merchant_uid => $k->{payment}{merchantUid}, status => 'paid' });
    is($r->{status}, 200, 'a forged webhook (no such payment): 200, nothing to retry');
    is($r->{json}{status}, 'IGNORED', '... IGNORED');
    # forged: a real payment of 26,999 named with the order's merchant uid
    fault($s, endpoint => 'pay', merchant_uid => $k->{payment}{merchantUid}, amount_delta => -1);
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
    my $bad = pay($s, $k->{payment}{merchantUid});
    clear_faults($s);
    $r = jreq($s, 'POST', '/api/v1/payments/webhook', undef,
        '{"imp_uid":"' . $bad->{imp_uid} . '","merchant_uid":"' . $k->{payment}{merchantUid} . '","status":"paid","amount":27000}');
    is_problem($r, 400, 'INVALID_REQUEST', 'a webhook body with members PortOne does not send: 400');
    is_deeply($s->sql("SELECT status, version FROM orders WHERE id = $k->{orderId}")->[0], $snap,
        'the forged webhooks changed nothing');
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
};

# ---------------------------------------------------------------- cancelling
subtest 'cancel a card order: refunded with checksum, CANCELLED, stock back' => sub {
    my $before = stock_of($s, $p);
    my $j = placed($alice->{token});
    my $paid = pay($s, $j->{payment}{merchantUid});
    is(verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid})->{status}, 200, 'paid and verified');
    my $r = jreq($s, 'POST', "/api/v1/orders/$j->{orderId}/cancel", $alice->{token});
    is($r->{status}, 200, 'cancel: 200') or diag($r->{body});
    is($r->{json}{status}, 'CANCELLED', 'CANCELLED');
    is($r->{json}{payment}{refunded}, 27_000, 'refunded 27,000');
    is(stock_of($s, $p), $before, 'the stock is back');
    my $gp = sim_payment($s, $paid->{imp_uid});
    is($gp->{status}, 'cancelled', 'the gateway shows it cancelled');
    is($gp->{cancel_amount}, 27_000, '... 27,000');
    is(scalar_sql($s, "SELECT checksum FROM card_refunds WHERE imp_uid = '$paid->{imp_uid}'"), 27_000, 'checksum 27,000');
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $alice->{id}"), 500_000, 'no points moved');
    $r = jreq($s, 'POST', "/api/v1/orders/$j->{orderId}/cancel", $alice->{token});
    is_problem($r, 409, 'ORDER_NOT_CANCELLABLE', 'a second cancel: 409');
    is(scalar(@{ sim_payment($s, $paid->{imp_uid})->{cancel_history} }), 1, '... and no second refund');
};

subtest 'cancel with the gateway down: CANCEL_PENDING (202), the sweeper finishes the refund' => sub {
    my $before = stock_of($s, $p);
    my $j = placed($alice->{token});
    my $paid = pay($s, $j->{payment}{merchantUid});
    is(verify($s, $alice->{token}, $j->{orderId}, $paid->{imp_uid})->{status}, 200, 'paid and verified');
    fault($s, endpoint => 'cancel', status => 500);
    my $r = jreq($s, 'POST', "/api/v1/orders/$j->{orderId}/cancel", $alice->{token});
    is($r->{status}, 202, 'cancel with the gateway answering 500: 202') or diag($r->{body});
    is($r->{json}{status}, 'CANCEL_PENDING', 'CANCEL_PENDING');
    is(stock_of($s, $p), $before - 2, 'the stock is still held');
    is(sim_payment($s, $paid->{imp_uid})->{status}, 'paid', 'the gateway still has it paid');
    clear_faults($s);
    ok(sweep_until(sub { order_row($s, $j->{orderId})->[0] eq 'CANCELLED' }, 20), 'the sweeper finished: CANCELLED');
    is(stock_of($s, $p), $before, 'the stock is back');
    is(sim_payment($s, $paid->{imp_uid})->{cancel_amount}, 27_000, 'the gateway refunded 27,000');
    is(scalar(@{ sim_payment($s, $paid->{imp_uid})->{cancel_history} }), 1, '... once');
};

# ---------------------------------------------------------------- points untouched
subtest 'points orders are as they were' => sub {
    my $r = place_order($s, $alice->{token}, order_body([ [ $p, 1 ] ]));
    is($r->{status}, 201, 'a points order: 201');
    is($r->{json}{status}, 'PAID', 'PAID at once');
    is($r->{json}{balance}, 500_000 - 15_000, 'balance 485,000');
    ok(!exists $r->{json}{payment}, 'no payment block');
    $r = place_order($s, $alice->{token}, { %{ order_body([ [ $p, 1 ] ]) }, payment => { method => 'POINTS' } });
    is($r->{status}, 201, 'payment.method POINTS: a points order');
    is($r->{json}{balance}, 470_000, 'balance 470,000');
    my $g = $s->get("/api/v1/orders/$r->{json}{orderId}", bearer($alice->{token}));
    ok(!exists $g->{json}{payment}, 'GET of a points order: no payment block');
};

# ---------------------------------------------------------------- the gateway down
subtest 'the gateway down (the simulator stopped): 503 with Retry-After, the reservation released' => sub {
    my $before = stock_of($s, $p);
    my $orders = scalar_sql($s, 'SELECT COUNT(*) FROM orders');
    $s->stop_pgsim;
    my $r = card_order($s, $alice->{token}, [ [ $p, 2 ] ]);
    is_problem($r, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', 'a card order with no gateway listening: 503 PAYMENT_GATEWAY_UNAVAILABLE');
    like($r->{headers}{'retry-after'} // '', qr/^[1-9][0-9]*$/, '... with Retry-After');
    is(stock_of($s, $p), $before, 'the stock it reserved is back');
    is(scalar_sql($s, 'SELECT COUNT(*) FROM orders') - $orders, 1, 'one order was reserved ...');
    my $id = scalar_sql($s, 'SELECT MAX(id) FROM orders');
    is_deeply(order_row($s, $id), [ 'PAYMENT_FAILED', 'CARD', 27000 ], '... and is PAYMENT_FAILED');
    is_deeply([ @{ card_row($s, $id) }[ 2 .. 4 ] ], [ 0, 'PAYMENT_GATEWAY_UNAVAILABLE', 1 ],
        '... never prepared, failed as PAYMENT_GATEWAY_UNAVAILABLE, nothing left for the sweeper');
    my $pts = place_order($s, $alice->{token}, order_body([ [ $p, 1 ] ]));
    is($pts->{status}, 201, 'a points order meanwhile: 201');
    is($pts->{json}{balance}, 455_000, '... balance 455,000');
    is(stock_of($s, $p), $before - 1, '... its unit taken');
    $s->start_pgsim;
    $r = card_order($s, $alice->{token}, [ [ $p, 2 ] ]);
    is($r->{status}, 201, 'the simulator back: a card order is 201 again') or diag($r->{body});
};

# ---------------------------------------------------------------- a real gateway: no pay page
subtest 'with a real gateway ([payments] pay_url empty) the answer has no payUrl' => sub {
    $s->stop_app;
    $s->{conf}{payments}{pay_url} = undef;
    $s->_write_app_conf;
    $s->start_app;
    my $r = card_order($s, $alice->{token}, [ [ $p, 2 ] ], card => 'SHINHAN');
    is($r->{status}, 201, 'a card order: 201') or diag($r->{body});
    my $pay = $r->{json}{payment} || {};
    ok(!exists $pay->{payUrl}, 'no payUrl: the browser SDK of the real gateway takes its place');
    like($pay->{merchantUid} // '', qr/^jt[0-9a-f]{32}$/, '... the merchantUid is there');
    is($pay->{amount}, 27_000, '... the amount 27,000');
    like($pay->{holdExpiresAt} // '', qr/^\d{4}-\d\d-\d\dT/, '... and holdExpiresAt');
    is(sim($s, 'GET', '/_sim/payments')->{prepared}{ $pay->{merchantUid} }, 27_000, 'prepared at the gateway all the same');
    delete $s->{conf}{payments}{pay_url};
    $s->stop_app;
    $s->_write_app_conf;
    $s->start_app;
};

# ---------------------------------------------------------------- the webhook's sources
subtest 'a webhook from an address not in [payments] webhook_allow: 403, nothing changes' => sub {
    my $j = placed($bob->{token});
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
    my $paid = pay($s, $j->{payment}{merchantUid});
    $s->stop_app;
    $s->{conf}{payments}{webhook_allow} = '192.0.2.1, 2001:db8::1';
    $s->_write_app_conf;
    $s->start_app;
    my $lookups = sim_count($s, 'lookup');
    my $r = $s->post_json('/api/v1/payments/webhook',
        { imp_uid => $paid->{imp_uid}, merchant_uid => $j->{payment}{merchantUid}, status => 'paid' });
    is_problem($r, 403, 'FORBIDDEN', 'from 127.0.0.1, not allowed: 403 FORBIDDEN');
    is(sim_count($s, 'lookup') - $lookups, 0, 'the gateway was not even asked');
    is(order_row($s, $j->{orderId})->[0], 'PAYMENT_PENDING', 'the order is still pending');
    delete $s->{conf}{payments}{webhook_allow};
    $s->stop_app;
    $s->_write_app_conf;
    $s->start_app;
    $r = $s->post_json('/api/v1/payments/webhook',
        { imp_uid => $paid->{imp_uid}, merchant_uid => $j->{payment}{merchantUid}, status => 'paid' });
    is($r->{status}, 200, 'allowed again: 200');
    is($r->{json}{status}, 'PAID', '... PAID');
    sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
};

audit_clean($s);
my $a = $s->get('/api/v1/admin/audit', bearer($admin->{token}));
is($a->{json}{clean}, JSON::PP::true, 'GET /api/v1/admin/audit: clean') or diag($a->{body});
my ($gw) = grep { $_->{name} eq 'gateway_payments' } @{ $a->{json}{checks} || [] };
ok($gw && $gw->{checked} >= 8, 'the audit checked the card orders against the gateway: ' . ($gw ? $gw->{checked} : 'none'));

done_testing;
