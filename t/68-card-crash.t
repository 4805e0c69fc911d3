#!/usr/bin/perl
# kill -9 the whole daemon (master, workers, sweeper) between a step at the
# gateway and the local commit that follows it, restart, and let the
# sweeper finish, with the webhook off so nothing else can:
#   1 the gateway has the payment, the verify's lookup is in flight: the
#     sweeper finds the payment at the hold's end: PAID;
#   2 the same for an order whose hold ran out and whose stock was sold
#     again: the sweeper's late look finds it: refunded, OUT_OF_STOCK;
#   3 a cancel's refund reached the gateway (it refunds after the kill):
#     the sweeper's cancel with the same checksum is refused, a lookup shows
#     the refund, it is recorded once: CANCELLED.
# The audit, against the simulator, is clean afterwards.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(bearer jreq do_request http_client);
use Jangteo::Orders qw(make_users make_admin set_balance order_body place_order scalar_sql);
use Jangteo::Catalog qw(make_product);
use Jangteo::Cards qw(
    card_stack card_order pay verify sim sim_count sim_payment fault clear_faults
    stock_of order_row gateway_rows clock_forward sweep_until audit_clean
);

my $s = card_stack(workers => 3);
my ($buyer, $other, $admin) = @{ make_users($s, 3, tag => 'c68') };
make_admin($s, $admin);
set_balance($s, [ $other->{id} ], 1_000_000);
my $p = make_product($s, $admin->{token}, name => '충돌 시험 상품', price => 31_000, stock => 3)->{id};
sim($s, 'POST', '/_sim/config', { webhooks => JSON::PP::false });
my $clock = 0;
sub forward { my ($ms) = @_; $clock += $ms; Jangteo::Cards::clock_forward($s, $clock) }

# Sends a request from a child (it may never be answered: the daemon dies
# under it); returns the child's pid.
sub in_background {
    my ($method, $path, $token, $body, %h) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $http = http_client(timeout => 30);
        do_request($http, $s, $method, $path, { %{ bearer($token) }, %h }, $body);
        _exit(0);
    }
    return $pid;
}

# Waits until the simulator has seen one more request of endpoint $ep.
sub arrived {
    my ($ep, $before) = @_;
    return sweep_until(sub { sim_count($s, $ep) > $before }, 15);
}

# kill -9 the master and every child at once, then start it again.
sub crash_and_restart {
    my @pids = ($s->master_pid, $s->worker_pids, $s->sweeper_pids);
    kill 'KILL', @pids;
    $s->stop_app;          # reaps the master (already dead)
    $s->start_app;
    # the test clock lives in the master's shared memory: a new master
    # starts at 0, so put business time back where the test had it
    Jangteo::Cards::clock_forward($s, $clock);
    ok(sweep_until(sub { my @sw = $s->sweeper_pids; @sw >= 1 }, 10), 'restarted, with its sweeper');
}

# ---------------------------------------------------------------- 1: paid, the commit lost
subtest 'killed while verifying a payment the gateway has: the sweeper completes it' => sub {
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is($r->{status}, 201, 'a card order') or diag($r->{body});
    my $o = $r->{json};
    my $paid = pay($s, $o->{payment}{merchantUid});
    is($paid->{status}, 'paid', 'the gateway has it paid');
    fault($s, endpoint => 'lookup', merchant_uid => $o->{payment}{merchantUid}, slow_ms => 8000);
    my $lookups = sim_count($s, 'lookup');
    my $kid = in_background('POST', "/api/v1/orders/$o->{orderId}/payments", $buyer->{token},
        { impUid => $paid->{imp_uid} }, 'Idempotency-Key' => "crash1-$o->{orderId}");
    ok(arrived('lookup', $lookups), "the verify's lookup reached the gateway");
    crash_and_restart();
    waitpid($kid, 0);
    clear_faults($s);
    is(order_row($s, $o->{orderId})->[0], 'PAYMENT_PENDING', 'after the crash: still PAYMENT_PENDING');
    is(stock_of($s, $p), 2, 'its unit still held');
    forward(900_000 + 30_000);
    ok(sweep_until(sub { order_row($s, $o->{orderId})->[0] eq 'PAID' }, 20), 'the sweeper found the payment: PAID');
    is_deeply(gateway_rows($s, $o->{orderId}), [ [ $paid->{imp_uid}, 31000, 0, 'CAPTURED' ] ], 'captured once');
    is(stock_of($s, $p), 2, 'the unit is sold: stock 2');
    # the killed request's key stays in flight until its marker lapses
    # (the write path: Redis holds it for the request's whole life)
    my $v = verify($s, $buyer->{token}, $o->{orderId}, $paid->{imp_uid}, key => "crash1-$o->{orderId}");
    is($v->{json}{code}, 'IDEMPOTENCY_IN_FLIGHT', "the killed verify's own key: 409 IDEMPOTENCY_IN_FLIGHT for now");
    $v = verify($s, $buyer->{token}, $o->{orderId}, $paid->{imp_uid});
    is($v->{status}, 200, 'a verify with a new key: 200');
    is($v->{json}{status}, 'PAID', '... PAID');
};

# ---------------------------------------------------------------- 2: paid late, the stock gone
subtest 'killed while verifying a late payment whose stock was sold: the late look refunds it' => sub {
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is($r->{status}, 201, 'a card order') or diag($r->{body});
    my $o = $r->{json};
    forward(900_000 + 30_000);
    ok(sweep_until(sub { order_row($s, $o->{orderId})->[0] eq 'PAYMENT_EXPIRED' }, 20), 'never paid in time: PAYMENT_EXPIRED');
    is(stock_of($s, $p), 2, 'its unit is back');
    is(place_order($s, $other->{token}, order_body([ [ $p, 2 ] ]))->{status}, 201, 'the units are sold again');
    is(stock_of($s, $p), 0, 'stock 0');
    my $paid = pay($s, $o->{payment}{merchantUid});
    is($paid->{status}, 'paid', 'the buyer pays late at the gateway');
    fault($s, endpoint => 'lookup', merchant_uid => $o->{payment}{merchantUid}, slow_ms => 8000);
    my $lookups = sim_count($s, 'lookup');
    my $kid = in_background('POST', "/api/v1/orders/$o->{orderId}/payments", $buyer->{token},
        { impUid => $paid->{imp_uid} }, 'Idempotency-Key' => "crash2-$o->{orderId}");
    ok(arrived('lookup', $lookups), "the verify's lookup reached the gateway");
    crash_and_restart();
    waitpid($kid, 0);
    clear_faults($s);
    is(order_row($s, $o->{orderId})->[0], 'PAYMENT_EXPIRED', 'after the crash: PAYMENT_EXPIRED, the payment unknown to us');
    forward(900_000 + 30_000);
    ok(sweep_until(sub { order_row($s, $o->{orderId})->[0] eq 'OUT_OF_STOCK' }, 20),
        "the sweeper's late look found the payment: OUT_OF_STOCK");
    ok(sweep_until(sub { (sim_payment($s, $paid->{imp_uid})->{status} // '') eq 'cancelled' }, 20),
        'the gateway shows it refunded');
    is(sim_payment($s, $paid->{imp_uid})->{cancel_amount}, 31_000, '... 31,000');
    is_deeply(gateway_rows($s, $o->{orderId}), [ [ $paid->{imp_uid}, 31000, 31000, 'REFUNDED' ] ], 'our record: REFUNDED');
    is(stock_of($s, $p), 0, 'nothing oversold: stock 0');
};

# ---------------------------------------------------------------- 3: refunded, the record lost
subtest 'killed while the gateway refunds a cancel: recorded once by the sweeper' => sub {
    is($s->post_json("/api/v1/products/$p/stock", { delta => 1 }, bearer($admin->{token}))->{status}, 200, 'one more unit');
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is($r->{status}, 201, 'a card order') or diag($r->{body});
    my $o = $r->{json};
    my $paid = pay($s, $o->{payment}{merchantUid});
    is(verify($s, $buyer->{token}, $o->{orderId}, $paid->{imp_uid})->{json}{status}, 'PAID', 'PAID');
    fault($s, endpoint => 'cancel', slow_ms => 3000, times => 1);
    my $cancels = sim_count($s, 'cancel');
    my $kid = in_background('POST', "/api/v1/orders/$o->{orderId}/cancel", $buyer->{token});
    ok(arrived('cancel', $cancels), 'the refund reached the gateway');
    crash_and_restart();
    waitpid($kid, 0);
    is(order_row($s, $o->{orderId})->[0], 'CANCEL_PENDING', 'after the crash: CANCEL_PENDING');
    ok(sweep_until(sub { (sim_payment($s, $paid->{imp_uid})->{status} // '') eq 'cancelled' }, 10),
        'the gateway finished the refund it was asked for');
    ok(sweep_until(sub { order_row($s, $o->{orderId})->[0] eq 'CANCELLED' }, 20), 'the sweeper completed it: CANCELLED');
    is(scalar(@{ sim_payment($s, $paid->{imp_uid})->{cancel_history} }), 1, 'one refund at the gateway, not two');
    is_deeply(gateway_rows($s, $o->{orderId}), [ [ $paid->{imp_uid}, 31000, 31000, 'REFUNDED' ] ], 'our record: REFUNDED');
    is(scalar_sql($s, "SELECT COUNT(*) FROM card_refunds WHERE imp_uid = '$paid->{imp_uid}'"), 1, 'one refund row');
    is(stock_of($s, $p), 1, 'the unit is back');
};

audit_clean($s);
done_testing;
