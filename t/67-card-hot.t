#!/usr/bin/perl
# A hot product paid by card: stock 10, 30 buyers at once -> exactly 10
# reservations, 20 OUT_OF_STOCK at once (with no gateway call). 5 pay; the
# other 5 never do: once their holds expire (the test clock moves past
# [payments] hold_seconds) the sweeper releases exactly 5 units. They are
# sold again, and one of the expired buyers pays late: refunded at the
# gateway, OUT_OF_STOCK. A late payment while the stock is still there
# takes it and is PAID. Three sweepers run at once (as on three hosts): each
# expired order is still found once and released once. The audit, against
# the simulator, is clean.
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
    card_stack card_body pay verify sim sim_count sim_payment sim_payments_of
    stock_of order_row gateway_rows clock_forward sweep_until audit_clean
);

# three sweepers race for the same due rows, as several hosts would
my $s = card_stack(workers => 6, conf => { payments => { sweepers => 3 } });
my @buyers = @{ make_users($s, 36, tag => 'c67') };
my $admin = pop @buyers;
make_admin($s, $admin);
my @resellers = splice(@buyers, 30);      # 5 points buyers for the units that come back
set_balance($s, [ map { $_->{id} } @resellers ], 100_000);

my $hot = make_product($s, $admin->{token}, name => '한정 카드 상품', price => 40_000, stock => 10)->{id};
# disable the webhook: here the payments are settled by verify and the sweeper
sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });

# ---------------------------------------------------------------- 30 buyers, 10 units
my $prepares = sim_count($s, 'prepare');
my $answers = concurrent($s, [ map {
    [ 'POST', '/api/v1/orders', { %{ bearer($_->{token}) }, 'Idempotency-Key' => "hot-$_->{id}" },
      card_body([ [ $hot, 1 ] ]) ]
} @buyers ]);
my @won = grep { $answers->[$_]{status} == 201 } 0 .. $#buyers;
my @lost = grep { $answers->[$_]{status} == 409 } 0 .. $#buyers;
is(scalar(@won), 10, 'exactly 10 reservations (201)')
    or diag(join "\n", map { "$_->{status} $_->{body}" } grep { $_->{status} != 201 && $_->{status} != 409 } @$answers);
is(scalar(@lost), 20, 'the other 20: 409');
is(scalar(grep { ($answers->[$_]{json}{code} // '') eq 'OUT_OF_STOCK' } @lost), 20, '... all OUT_OF_STOCK');
is(sim_count($s, 'prepare') - $prepares, 10, 'the gateway saw 10 prepares: none for a buyer who got no stock');
is(stock_of($s, $hot), 0, 'stock 10 -> 0');
is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAYMENT_PENDING'"), 10, '10 orders PAYMENT_PENDING');

my @orders = map { { buyer => $buyers[$_], %{ $answers->[$_]{json} } } } @won;
my @payers = @orders[0 .. 4];
my @idle = @orders[5 .. 9];

# ---------------------------------------------------------------- 5 pay
for my $o (@payers) {
    my $paid = pay($s, $o->{payment}{merchantUid}, 'KAKAOBANK');
    my $v = verify($s, $o->{buyer}{token}, $o->{orderId}, $paid->{imp_uid});
    is($v->{json}{status}, 'PAID', "order $o->{orderId}: PAID") or diag($v->{body});
}
is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAID' AND id IN ("
    . join(',', map { $_->{orderId} } @orders) . ')'), 5, '5 PAID');

# ---------------------------------------------------------------- the holds expire
is(stock_of($s, $hot), 0, 'before the holds expire: stock 0');
is(order_row($s, $idle[0]{orderId})->[0], 'PAYMENT_PENDING', '... and the idle ones pending');
my $finds = sim_count($s, 'find');
clock_forward($s, 900_000 + 60_000);    # [payments] hold_seconds 900, and a minute
ok(sweep_until(sub { scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAYMENT_EXPIRED'") == 5 }, 20),
    'the sweeper expired the 5 that never paid');
is(stock_of($s, $hot), 5, 'it released exactly 5 units');
is(sim_count($s, 'find') - $finds, 5, 'one find at the gateway for each, though three sweepers looked (the claim)');
is(scalar(my @sw = $s->sweeper_pids), 3, 'three sweeper processes');
is(scalar_sql($s, "SELECT COUNT(*) FROM outbox WHERE topic = 'order.payment_expired'"), 5, 'five expiries, not more');
is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAID'"), 5, 'the 5 paid are untouched');
is(scalar_sql($s, "SELECT COUNT(*) FROM card_payments c JOIN orders o ON o.id = c.order_id WHERE c.due_at IS NOT NULL"
    . " AND o.status = 'PAYMENT_EXPIRED' AND c.due_at > c.hold_expires_at + INTERVAL 899 SECOND"), 5,
    'each expired order keeps one late look for a payment, a hold later');

# ---------------------------------------------------------------- resold, then one pays late
my $late = $idle[0];
my $sold = 0;
for my $u (@resellers[0 .. 3]) {
    $sold++ if place_order($s, $u->{token}, order_body([ [ $hot, 1 ] ]))->{status} == 201;
}
is($sold, 4, '4 of the released units sold again (points)');
is(stock_of($s, $hot), 1, 'stock 1 left');

# a late payment while a unit is there: it takes it
my $lucky = $idle[1];
my $paid = pay($s, $lucky->{payment}{merchantUid});
is($paid->{status}, 'paid', 'an expired order paid at the gateway after its hold');
my $v = verify($s, $lucky->{buyer}{token}, $lucky->{orderId}, $paid->{imp_uid});
is($v->{status}, 200, 'verify: 200 (the stock was still there)') or diag($v->{body});
is($v->{json}{status}, 'PAID', '... PAID');
is(stock_of($s, $hot), 0, '... and it took the last unit');

# the last unit gone: a late payment is refunded, OUT_OF_STOCK
$paid = pay($s, $late->{payment}{merchantUid});
$v = verify($s, $late->{buyer}{token}, $late->{orderId}, $paid->{imp_uid});
is_problem($v, 409, 'OUT_OF_STOCK', 'paid after the hold, the stock resold: 409 OUT_OF_STOCK');
is(order_row($s, $late->{orderId})->[0], 'OUT_OF_STOCK', 'the order is OUT_OF_STOCK');
my $gp = sim_payment($s, $paid->{imp_uid});
is($gp->{status}, 'cancelled', 'the gateway shows the late payment cancelled');
is($gp->{cancel_amount}, 40_000, '... refunded in full: 40,000 (no shipping fee from 30,000)');
is_deeply(gateway_rows($s, $late->{orderId}), [ [ $paid->{imp_uid}, 40000, 40000, 'REFUNDED' ] ], 'our record: REFUNDED');
is(stock_of($s, $hot), 0, 'the stock stays 0: nothing oversold');
is(scalar_sql($s, "SELECT COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.product_id = $hot"
    . " AND o.status IN ('PAID','PAYMENT_PENDING','CANCEL_PENDING')"), 10, '10 units held by orders, 10 sold in all');

sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::true });
audit_clean($s);

done_testing;
