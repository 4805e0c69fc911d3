package Jangteo::Cards;

# Card orders against the payment gateway simulator (scripts/jangteo-pgsim):
# the stack every card test boots, the requests of a card checkout, and
# what the simulator's own records say. Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack bearer jreq);
use Jangteo::Orders qw(order_body scalar_sql);

our @EXPORT_OK = qw(
    card_stack card_body card_order pay verify sim sim_count sim_payment sim_payments_of fault clear_faults
    stock_of order_row card_row gateway_rows clock_forward sweep_until audit_clean refused_while_open
);

my $SEQ = 0;

# A stack with the simulator, test routes (the test clock moves holds),
# short gateway pauses, a quick sweeper, a refund claim of 2 s, and room
# for 8 workers in gateway calls at once (these tests are about card
# flows under concurrency; t/69 holds the bulkhead to its limit).
sub card_stack {
    my (%opt) = @_;
    my %conf = %{ $opt{conf} || {} };
    my %pay = (retry_interval_ms => 100, sweep_interval_ms => 200, sweep_claim_ms => 2000, max_calls_in_flight => 8,
        %{ delete $conf{payments} || {} });
    my %server = (enable_test_routes => 'yes', %{ delete $conf{server} || {} });
    my %auctions = (consumers => 0, %{ delete $conf{auctions} || {} });
    return test_stack(pgsim => 1, workers => $opt{workers} // 4, %opt,
        conf => { %conf, server => \%server, payments => \%pay, auctions => \%auctions });
}

# An order body paid by card.
sub card_body {
    my ($items, %o) = @_;
    my $b = order_body($items, %o);
    $b->{payment} = { method => 'CARD', cardCompany => $o{card} // 'SHINHAN' };
    return $b;
}

sub card_order {
    my ($s, $token, $items, %o) = @_;
    my %h = $o{key} ? ('Idempotency-Key' => $o{key}) : ();
    return jreq($s, 'POST', '/api/v1/orders', $token, card_body($items, %o), %h);
}

# Pays at the simulator's pay endpoint, as the buyer's browser would.
sub pay {
    my ($s, $mu, $card) = @_;
    return $s->pgsim('POST', "/pay/$mu", { cardCompany => $card // 'SHINHAN' });
}

# POST /api/v1/orders/{id}/payments {"impUid"} with a fresh (or given) key.
sub verify {
    my ($s, $token, $order_id, $imp, %o) = @_;
    my $key = $o{key} // 'verify-' . $$ . '-' . ++$SEQ;
    return jreq($s, 'POST', "/api/v1/orders/$order_id/payments", $token, { impUid => $imp }, 'Idempotency-Key' => $key);
}

sub sim { my ($s, @a) = @_; return $s->pgsim(@a) }

# Requests the simulator has seen for one endpoint (or all: 'total').
sub sim_count {
    my ($s, $ep) = @_;
    my $c = $s->pgsim('GET', '/_sim/requests');
    return $c->{$ep} // 0;
}

sub sim_payment {
    my ($s, $imp) = @_;
    my ($p) = grep { $_->{imp_uid} eq $imp } @{ $s->pgsim('GET', '/_sim/payments')->{payments} || [] };
    return $p;
}

sub sim_payments_of {
    my ($s, $mu) = @_;
    return [ grep { $_->{merchant_uid} eq $mu } @{ $s->pgsim('GET', '/_sim/payments')->{payments} || [] } ];
}

sub fault {
    my ($s, %f) = @_;
    my $r = $s->pgsim('POST', '/_sim/faults', \%f);
    croak "fault: $r->{_status} " . ($r->{message} // '') unless $r->{_status} == 201;
    return $r->{id};
}

sub clear_faults { my ($s) = @_; $s->pgsim('DELETE', '/_sim/faults') }

sub stock_of { my ($s, $pid) = @_; return scalar_sql($s, "SELECT stock FROM products WHERE id = $pid") }

sub order_row {
    my ($s, $id) = @_;
    return $s->sql("SELECT status, payment_method, total FROM orders WHERE id = $id")->[0];
}

sub card_row {
    my ($s, $id) = @_;
    return $s->sql("SELECT merchant_uid, amount, prepared, COALESCE(failure_code, 'NULL'), due_at IS NULL"
        . " FROM card_payments WHERE order_id = $id")->[0];
}

# [imp_uid, amount, refunded, state] of every gateway payment of an order
sub gateway_rows {
    my ($s, $id) = @_;
    return $s->sql("SELECT imp_uid, amount, refunded, state FROM gateway_payments WHERE order_id = $id ORDER BY imp_uid");
}

# Moves business time (holds, due times) forward by $ms for every process.
sub clock_forward {
    my ($s, $ms) = @_;
    my $r = $s->post_json('/test/clock', { offsetMs => 0 + $ms });
    croak "clock: $r->{status}" unless $r->{status} == 200;
}

# Waits (bounded) until $cond holds, giving the sweeper its turns.
sub sweep_until {
    my ($cond, $limit) = @_;
    my $deadline = time + ($limit // 20);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return $cond->();
}

# While the breaker is open: $n card orders are each 503
# PAYMENT_GATEWAY_UNAVAILABLE with a Retry-After of 1 to $open_s seconds,
# the simulator sees no request and no order is even reserved (four tests).
sub refused_while_open {
    my ($s, $token, $items, $n, $open_s) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $total = sim_count($s, 'total');
    my $orders = scalar_sql($s, 'SELECT COUNT(*) FROM orders');
    my @r = map { card_order($s, $token, $items) } 1 .. $n;
    Test::More::is(scalar(grep { $_->{status} == 503 && ($_->{json}{code} // '') eq 'PAYMENT_GATEWAY_UNAVAILABLE' } @r),
        $n, "while open: $n card orders, $n x 503 PAYMENT_GATEWAY_UNAVAILABLE");
    Test::More::is(scalar(grep { my $ra = $_->{headers}{'retry-after'} // ''; $ra =~ /^[1-9][0-9]*$/ && $ra <= $open_s } @r),
        $n, "... each with Retry-After within the $open_s s the breaker stays open");
    Test::More::is(sim_count($s, 'total') - $total, 0, 'the simulator saw no request at all');
    Test::More::is(scalar_sql($s, 'SELECT COUNT(*) FROM orders') - $orders, 0, 'no order was even reserved');
}

# jangteo-admin audit (every invariant, and every card order against the
# simulator's records) exits 0; returns its output.
sub audit_clean {
    my ($s, $name) = @_;
    my ($rc, $out) = $s->admin('audit');
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is($rc, 0, $name // 'jangteo-admin audit is clean, the gateway check included') or Test::More::diag($out);
    return $out;
}

1;
