#!/usr/bin/perl
# Card orders (issue 16) along the delivery lifecycle (issue 14), against
# the gateway simulator: a card order moved to PREPARING and cancelled by
# its buyer is refunded at the gateway (one cancel of exactly its total, no
# points row, the stock back); a card order delivered, returned and
# completed by the seller is refunded at the gateway the same way; a
# scheduler sweep moves a PAID card order like any PAID order and leaves
# PAYMENT_PENDING, PAYMENT_FAILED and CANCEL_PENDING ones as they are; a
# return nobody completes by hand is completed by a sweep and refunded at
# the gateway by the payment sweeper. The
# audit (every invariant, and every card order against the simulator) is
# clean after each. Figures are read back from MariaDB and the simulator.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;

use Jangteo::Client qw(bearer jreq is_problem);
use Jangteo::Orders qw(make_users make_admin scalar_sql);
use Jangteo::Catalog qw(make_product);
use Jangteo::Cards qw(
    card_stack card_order pay verify sim sim_count sim_payment fault clear_faults stock_of order_row gateway_rows
    sweep_until audit_clean
);
use Jangteo::Lifecycle qw(move return_order history_of wait_for);

# The daemon runs no scheduler: subtest 3 sweeps with jangteo-admin sweep,
# so nothing moves the other orders behind the test's back. Two seconds
# after its paid time a PAID order is due for PREPARING and SHIPPING.
my $s = card_stack(workers => 4, conf => {
    lifecycle => { scheduler => 'no', ship_after => 2, deliver_after => 100000, return_window => 86400,
                   return_complete_after => 2 },
    events => { audit_grace => 3600 },
});
my ($buyer, $admin) = @{ make_users($s, 2, tag => 'c63') };
make_admin($s, $admin);

# 3 x 9,000 + 3,000 shipping = 30,000; the admin is its seller
my $p = make_product($s, $admin->{token}, name => '카드 배송 상품', price => 9_000, stock => 40)->{id};
my $TOTAL = 30_000;

sub points_rows {
    my ($oid) = @_;
    return scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE ref_id = $oid AND kind LIKE 'ORDER%'");
}
sub balance { scalar_sql($s, "SELECT balance FROM users WHERE id = $buyer->{id}") }
sub path_of { join ' ', map { "$_->[0]>$_->[1]:$_->[2]" } @{ history_of($s, $_[0]) } }

# The gateway refunded payment $imp of order $o once, all 30,000 of it
# ($cancels: the simulator's cancel count before), and we recorded it.
sub refunded_once {
    my ($o, $imp, $cancels) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(sim_count($s, 'cancel') - $cancels, 1, 'the simulator saw one cancel');
    my $gp = sim_payment($s, $imp);
    is($gp->{status}, 'cancelled', 'the gateway shows the payment cancelled');
    is($gp->{cancel_amount}, $TOTAL, '... 30,000 of it, exactly the total');
    is(scalar(@{ $gp->{cancel_history} }), 1, '... in one refund');
    is_deeply(gateway_rows($s, $o), [ [ $imp, $TOTAL, $TOTAL, 'REFUNDED' ] ], 'our record: refunded 30,000 of 30,000');
}

# A card order of 3 units, paid at the simulator and verified: PAID.
sub paid_order {
    my $r = card_order($s, $buyer->{token}, [ [ $p, 3 ] ], card => 'KAKAOBANK');
    die "card order: $r->{status} $r->{body}" unless $r->{status} == 201;
    my $j = $r->{json};
    my $paid = pay($s, $j->{payment}{merchantUid}, 'KAKAOBANK');
    my $v = verify($s, $buyer->{token}, $j->{orderId}, $paid->{imp_uid});
    die "verify: $v->{status} $v->{body}" unless $v->{status} == 200 && $v->{json}{status} eq 'PAID';
    return ($j->{orderId}, $paid->{imp_uid}, $j->{payment}{merchantUid});
}

# A paid card order the seller has moved on to DELIVERED.
sub delivered_order {
    my ($o, $imp) = paid_order();
    for my $to (qw(PREPARING SHIPPING DELIVERED)) {
        my $r = move($s, $admin->{token}, $o, $to);
        is($r->{status}, 200, "the seller: $to") or diag($r->{body});
    }
    return ($o, $imp);
}

sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });

# ---------------------------------------------------------------- cancel from PREPARING
subtest 'a card order moved to PREPARING, cancelled by its buyer: one gateway refund of 30,000' => sub {
    my $before = stock_of($s, $p);
    my $bal = balance();
    my ($o, $imp) = paid_order();
    is(stock_of($s, $p), $before - 3, 'the 3 units are taken');
    my $r = move($s, $admin->{token}, $o, 'PREPARING');
    is($r->{status}, 200, 'the seller: PREPARING') or diag($r->{body});
    is($r->{json}{status}, 'PREPARING', '... PREPARING');
    is($r->{json}{payment}{impUid}, $imp, '... the answer keeps its payment block');

    my $cancels = sim_count($s, 'cancel');
    $r = jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token});
    is($r->{status}, 200, 'the buyer cancels from PREPARING: 200') or diag($r->{body});
    is($r->{json}{status}, 'CANCELLED', '... CANCELLED');
    is_deeply(order_row($s, $o), [ 'CANCELLED', 'CARD', $TOTAL ], 'orders row: CANCELLED, CARD, 30,000');
    refunded_once($o, $imp, $cancels);
    is(points_rows($o), 0, 'no points ledger row for the order');
    is(balance(), $bal, 'the balance is untouched');
    is(stock_of($s, $p), $before, 'the stock is restored exactly');
    is(path_of($o), 'PAYMENT_PENDING>PAID:PAYMENT PAID>PREPARING:ADMIN PREPARING>CANCEL_PENDING:BUYER'
        . ' CANCEL_PENDING>CANCELLED:BUYER', 'the history: paid, PREPARING, CANCEL_PENDING, CANCELLED');

    $r = jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token});
    is_problem($r, 409, 'ORDER_NOT_CANCELLABLE', 'a second cancel: 409');
    is(sim_count($s, 'cancel') - $cancels, 1, '... and no second cancel at the gateway');
    audit_clean($s, 'audit clean after the cancel from PREPARING');
};

# ---------------------------------------------------------------- an admin's cancel
subtest 'a card order cancelled by an admin: one gateway refund, and the history names the admin' => sub {
    my ($o, $imp) = paid_order();
    my $cancels = sim_count($s, 'cancel');
    my $r = jreq($s, 'POST', "/api/v1/orders/$o/cancel", $admin->{token});
    is($r->{status}, 200, 'the admin cancels the buyer\'s card order: 200') or diag($r->{body});
    is($r->{json}{status}, 'CANCELLED', '... CANCELLED');
    refunded_once($o, $imp, $cancels);
    is(path_of($o), 'PAYMENT_PENDING>PAID:PAYMENT PAID>CANCEL_PENDING:ADMIN CANCEL_PENDING>CANCELLED:ADMIN',
        'the history: both cancel moves by ADMIN, not BUYER');
    is_deeply($s->sql("SELECT actor_id FROM order_events WHERE order_id = $o AND to_status IN ('CANCEL_PENDING',"
        . " 'CANCELLED') ORDER BY id"), [ [ $admin->{id} ], [ $admin->{id} ] ], '... with the admin\'s user id');
    audit_clean($s, 'audit clean after the admin\'s cancel');
};

# ---------------------------------------------------------------- a return
subtest 'a card order delivered, returned, completed by the seller: one gateway refund of 30,000' => sub {
    my $before = stock_of($s, $p);
    my $bal = balance();
    my ($o, $imp) = delivered_order();
    my $r = jreq($s, 'POST', "/api/v1/orders/$o/cancel", $buyer->{token});
    is_problem($r, 409, 'INVALID_TRANSITION', 'a cancel once DELIVERED: 409, as for a points order');
    is($r->{json}{currentStatus}, 'DELIVERED', '... naming DELIVERED');
    is(order_row($s, $o)->[0], 'DELIVERED', '... still DELIVERED');
    $r = verify($s, $buyer->{token}, $o, $imp);
    is($r->{status}, 200, 'a verify of its payment, now DELIVERED: 200') or diag($r->{body});
    is($r->{json}{status}, 'DELIVERED', '... with the order as it is');
    $r = return_order($s, $buyer->{token}, $o, '색상이 달라요');
    is($r->{status}, 200, 'the buyer asks for a return') or diag($r->{body});
    is(stock_of($s, $p), $before - 3, 'the units are still out');

    my $cancels = sim_count($s, 'cancel');
    $r = move($s, $admin->{token}, $o, 'RETURNED');
    is($r->{status}, 200, 'the seller completes the return: {"to":"RETURNED"}') or diag($r->{body});
    is($r->{json}{status}, 'RETURNED', '... RETURNED');
    ok(sweep_until(sub { (gateway_rows($s, $o)->[0][3] // '') eq 'REFUNDED' }, 20), 'the refund is recorded');
    refunded_once($o, $imp, $cancels);
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE ref_id = $o AND kind = 'ORDER_REFUND'"), 0,
        'no ORDER_REFUND points row');
    is(points_rows($o), 0, 'no points ledger row for the order at all');
    is(balance(), $bal, 'the balance is untouched');
    is(stock_of($s, $p), $before, 'the stock is restored exactly');
    is_deeply(order_row($s, $o), [ 'RETURNED', 'CARD', $TOTAL ], 'orders row: RETURNED, CARD, 30,000');

    $r = move($s, $admin->{token}, $o, 'RETURNED');
    is_problem($r, 409, 'INVALID_TRANSITION', 'completing it again: 409');
    is(sim_count($s, 'cancel') - $cancels, 1, '... and still one cancel at the gateway');
    audit_clean($s, 'audit clean after the return');
};

# ---------------------------------------------------------------- the scheduler
subtest 'a sweep moves a PAID card order and leaves the card statuses before PAID or refunding alone' => sub {
    my ($paid) = paid_order();
    # never paid: PAYMENT_PENDING for its 900 s hold
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is($r->{status}, 201, 'a card order nobody pays') or diag($r->{body});
    my $pending = $r->{json}{orderId};
    # paid 1 won short: PAYMENT_FAILED
    $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    my $failed = $r->{json}{orderId};
    fault($s, endpoint => 'pay', merchant_uid => $r->{json}{payment}{merchantUid}, amount_delta => -1);
    my $short = pay($s, $r->{json}{payment}{merchantUid});
    clear_faults($s);
    is(verify($s, $buyer->{token}, $failed, $short->{imp_uid})->{status}, 409, 'the short payment: 409');
    is(order_row($s, $failed)->[0], 'PAYMENT_FAILED', '... PAYMENT_FAILED');
    # a cancel the gateway will not refund yet: CANCEL_PENDING
    my ($waiting) = paid_order();
    fault($s, endpoint => 'cancel', status => 500);
    $r = jreq($s, 'POST', "/api/v1/orders/$waiting/cancel", $buyer->{token});
    is($r->{status}, 202, 'a cancel with the gateway down: 202') or diag($r->{body});
    is(order_row($s, $waiting)->[0], 'CANCEL_PENDING', '... CANCEL_PENDING');

    my %before = map { $_ => $s->sql("SELECT status, version FROM orders WHERE id = $_")->[0] }
        ($pending, $failed, $waiting);
    my $ids = join(',', $paid, $pending, $failed, $waiting);
    ok(wait_for(sub { scalar_sql($s, "SELECT MAX(COALESCE(paid_at, created_at)) < NOW(6) - INTERVAL 2500000 MICROSECOND"
        . " FROM orders WHERE id IN ($ids)") }, 20, 0.2), 'every one of them is past ship_after');
    my ($rc, $out) = $s->admin('sweep');
    is($rc, 0, 'jangteo-admin sweep exits 0') or diag($out);
    is(order_row($s, $paid)->[0], 'SHIPPING', 'the PAID card order: SHIPPING');
    is(path_of($paid), 'PAYMENT_PENDING>PAID:PAYMENT PAID>PREPARING:SCHEDULER PREPARING>SHIPPING:SCHEDULER',
        '... two moves, by the scheduler');
    for my $o ($pending, $failed, $waiting) {
        is_deeply($s->sql("SELECT status, version FROM orders WHERE id = $o")->[0], $before{$o},
            "the $before{$o}[0] order: same status, same version");
        is(scalar_sql($s, "SELECT COUNT(*) FROM order_events WHERE order_id = $o AND actor = 'SCHEDULER'"), 0,
            '... no move by the scheduler');
    }
    ($rc, $out) = $s->admin('sweep');
    is($rc, 0, 'a second sweep exits 0');
    is(order_row($s, $pending)->[0], 'PAYMENT_PENDING', 'PAYMENT_PENDING is still PAYMENT_PENDING');

    clear_faults($s);
    ok(sweep_until(sub { order_row($s, $waiting)->[0] eq 'CANCELLED' }, 20), 'the sweeper finishes the waiting cancel');
    is(scalar_sql($s, "SELECT COUNT(*) FROM card_refunds WHERE order_id = $waiting"), 1, '... with one refund row');
    audit_clean($s, 'audit clean after the sweeps');
};

# ---------------------------------------------------------------- a return the scheduler completes
# Nobody completes the return by hand: return_complete_after (2 s) after the
# request, a sweep moves it to RETURNED, and the payment sweeper refunds it
# at the gateway, as a seller's completion is refunded.
subtest 'a card return completed by the scheduler: one gateway refund of 30,000 by the sweeper' => sub {
    my $before = stock_of($s, $p);
    my $bal = balance();
    my ($o, $imp) = delivered_order();
    my $r = return_order($s, $buyer->{token}, $o, '사이즈가 맞지 않아요');
    is($r->{status}, 200, 'the buyer asks for a return') or diag($r->{body});
    my $cancels = sim_count($s, 'cancel');
    ok(wait_for(sub { scalar_sql($s, "SELECT return_requested_at < NOW(6) - INTERVAL 2500000 MICROSECOND FROM orders"
        . " WHERE id = $o") }, 20, 0.2), 'the return is past return_complete_after');
    my ($rc, $out) = $s->admin('sweep');
    is($rc, 0, 'jangteo-admin sweep exits 0') or diag($out);
    is(order_row($s, $o)->[0], 'RETURNED', 'the sweep completes the return: RETURNED');
    like(path_of($o), qr/RETURN_REQUESTED>RETURNED:SCHEDULER$/, '... by the scheduler');
    ok(sweep_until(sub { (gateway_rows($s, $o)->[0][3] // '') eq 'REFUNDED' }, 30), 'the payment sweeper refunds it');
    refunded_once($o, $imp, $cancels);
    is(points_rows($o), 0, 'no points ledger row for the order');
    is(balance(), $bal, 'the balance is untouched');
    is(stock_of($s, $p), $before, 'the stock is restored exactly');
    ($rc, $out) = $s->admin('sweep');
    is(sim_count($s, 'cancel') - $cancels, 1, 'a second sweep: still one cancel at the gateway');
    audit_clean($s, 'audit clean after the scheduler\'s return');
};

done_testing();
