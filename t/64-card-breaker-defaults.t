#!/usr/bin/perl
# The circuit breaker with the settings as shipped, which are the issue's
# figures (t/69 holds a small configured breaker to its limits; this one
# runs the real ones): a window of 100 calls, open at 20 % failures over at
# least 50 calls or at 10 % of calls slower than 3,000 ms, open for 6 s,
# then 10 trial calls; timeout_ms 5000; a quarter of the 8 workers (2) may
# be inside a gateway call at once.
#   - the simulator answers 500 to everything: after the warm-up's 2 good
#     calls, exactly 48 failed prepares fill the window to its 50 calls
#     (96 % failed) and it opens; card orders then get 503 with Retry-After
#     and the simulator sees no request; points orders go on; the
#     simulator recovers: 6 s later a card order is the first of 10 trials,
#     the 10th closes it;
#   - every call takes 4 s: with 50 good calls in the window, the 6th slow
#     call (6 of 56 = 10.7 %) opens it; each of those checkouts is answered
#     201 inside its 5 s timeout (slow, not failed), no worker is killed,
#     and the reads sent meanwhile are all answered; then card orders fail
#     at once with no call.
# Time only bounds the waits; every assertion is an outcome or a count.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(bearer concurrent is_problem);
use Jangteo::Orders qw(make_users make_admin set_balance order_body place_order scalar_sql);
use Jangteo::Catalog qw(make_product metric);
use Jangteo::Cards qw(card_stack card_body card_order sim sim_count fault clear_faults stock_of refused_while_open);

# the shipped [payments] settings: card_stack's quicker retries and wider
# bulkhead put back to their defaults, nothing of the breaker's set
my $s = card_stack(workers => 8, conf => { payments => { retry_interval_ms => 500, max_calls_in_flight => 0 } });
my ($conf) = do { local (@ARGV, $/) = ($s->conf_path); <> } =~ /^\[payments\]\n(.*?)(?=^\[|\z)/ms;
ok(defined $conf, 'the generated config has a [payments] section');
$conf //= '';
unlike($conf, qr/^(?:breaker_\w+|timeout_ms|connect_timeout_ms|deadline_ms)\s*=/m,
    'its [payments] sets no breaker setting and no gateway timeout: the shipped defaults apply');
like($conf, qr/^max_calls_in_flight = 0$/m, 'max_calls_in_flight 0: a quarter of the workers');

my ($buyer, $admin) = @{ make_users($s, 2, tag => 'c64') };
make_admin($s, $admin);
set_balance($s, [ $buyer->{id} ], 10_000_000);
my $p = make_product($s, $admin->{token}, name => '기본 설정 차단기 상품', price => 30_000, stock => 1000)->{id};

sub gw { $s->get('/status?json')->{json}{payment_gateway} }
sub breaker { gw()->{breaker} }

my $warm = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
is($warm->{status}, 201, 'a card order with a healthy gateway: 201') or diag($warm->{body});
is_deeply([ @{ gw() }{qw(breaker window_calls window_failed window_slow)} ], [ 'closed', 2, 0, 0 ],
    'closed, its window holds the 2 good calls (getToken, prepare)');

# ---------------------------------------------------------------- 100 % 500
subtest 'every answer 500: open after 50 calls; 503 at once with no call; 6 s; 10 trials; closed' => sub {
    fault($s, status => 500);
    my $stock = stock_of($s, $p);
    my $prepares = sim_count($s, 'prepare');
    my ($n, $bad) = (0, 0);
    while (breaker() ne 'open' && $n < 60) {
        my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        $bad++ unless $r->{status} == 503 && ($r->{json}{code} // '') eq 'PAYMENT_GATEWAY_UNAVAILABLE';
        $n++;
    }
    is(breaker(), 'open', 'the breaker is open');
    is($n, 48, 'after exactly 48 failed card orders: 2 good + 48 failed = the 50 calls breaker_min_calls asks for');
    is($bad, 0, '... each answered 503 PAYMENT_GATEWAY_UNAVAILABLE');
    is(sim_count($s, 'prepare') - $prepares, 48, 'the simulator saw 48 prepares (a prepare is never retried)');
    is(stock_of($s, $p), $stock, 'every reservation was released');
    is(metric($s, q{jangteo_pg_breaker_state{state="open"}}), 1, '/metrics: open');

    refused_while_open($s, $buyer->{token}, [ [ $p, 1 ] ], 5, 6);

    my $pts = place_order($s, $buyer->{token}, order_body([ [ $p, 1 ] ]));
    is($pts->{status}, 201, 'a points order meanwhile: 201');
    is($pts->{json}{status}, 'PAID', '... PAID');
    is(stock_of($s, $p), $stock - 1, '... and it took its unit');

    clear_faults($s);
    my $first;
    my $deadline = time + 20;
    while (time < $deadline) {
        $first = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        last if $first->{status} == 201;
        sleep 0.25;
    }
    is($first->{status}, 201, 'once open_ms (6 s) passed, a card order goes through: the first trial') or diag($first->{body});
    is_deeply([ @{ gw() }{qw(breaker window_calls)} ], [ 'half_open', 1 ], 'half-open, 1 trial recorded');
    my @states;
    for my $k (2 .. 10) {
        my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        push @states, $r->{status} . ' ' . breaker();
    }
    is_deeply(\@states, [ (map { '201 half_open' } 2 .. 9), '201 closed' ],
        'trials 2-9: 201 and still half-open; the 10th: 201 and closed');
    is_deeply([ @{ gw() }{qw(window_calls window_failed)} ], [ 0, 0 ], 'closed with an empty window');
};

# ---------------------------------------------------------------- every call 4 s
subtest 'every call 4 s: the 6th slow call opens it; no worker held past its timeout; reads answered' => sub {
    $s->post_json('/test/pg', { op => 'lookup', impUid => 'imp_none' }) for 1 .. 50;   # 50 good calls (404s)
    is_deeply([ @{ gw() }{qw(breaker window_calls window_failed window_slow)} ], [ 'closed', 50, 0, 0 ],
        'closed with 50 good calls in the window');
    my $slow0 = metric($s, 'jangteo_pg_slow_calls_total');
    my $kills0 = $s->get('/status?json')->{json}{request_timeout_kills};
    fault($s, slow_ms => 4000);
    my (@rounds, $reads_ok, $reads);
    for my $round (1 .. 3) {
        # two checkouts (the bulkhead's two places) and 30 reads at once
        my $res = concurrent($s, [
            (map { [ 'POST', '/api/v1/orders', bearer($buyer->{token}), card_body([ [ $p, 1 ] ]) ] } 1 .. 2),
            (map { [ 'GET', "/api/v1/products/$p", {}, undef ] } 1 .. 30),
        ], timeout => 60);
        my @cards = @$res[ 0, 1 ];
        push @rounds, join(',', map { $_->{status} . ' ' . ($_->{json}{status} // $_->{json}{code} // '') } @cards)
            . ' -> ' . breaker();
        $reads += 30;
        $reads_ok += grep { $_->{status} == 200 } @$res[ 2 .. 31 ];
    }
    is_deeply(\@rounds, [
        '201 PAYMENT_PENDING,201 PAYMENT_PENDING -> closed',    # 2 of 52 slow: 3.8 %
        '201 PAYMENT_PENDING,201 PAYMENT_PENDING -> closed',    # 4 of 54: 7.4 %
        '201 PAYMENT_PENDING,201 PAYMENT_PENDING -> open',      # 6 of 56: 10.7 %
    ], 'three rounds of two 4 s checkouts, each 201 inside timeout_ms 5000; the 6th slow call opens the breaker');
    is(metric($s, 'jangteo_pg_slow_calls_total') - $slow0, 6, '6 slow calls counted');
    is($reads_ok, $reads, "the $reads reads sent beside them: all 200");
    is($s->get('/status?json')->{json}{request_timeout_kills} - $kills0, 0, 'no worker was killed for its time');
    is(metric($s, 'jangteo_pg_calls_in_flight'), 0, 'no gateway call left in flight');

    my $total = sim_count($s, 'total');
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is_problem($r, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', 'then a card order: 503 at once');
    like($r->{headers}{'retry-after'} // '', qr/^[1-6]$/, '... with Retry-After');
    is(sim_count($s, 'total') - $total, 0, '... with no call to the simulator');
    my $pts = place_order($s, $buyer->{token}, order_body([ [ $p, 1 ] ]));
    is($pts->{status}, 201, 'a points order: 201');
    clear_faults($s);
};

done_testing;
