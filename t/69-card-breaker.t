#!/usr/bin/perl
# Card orders behind the circuit breaker, with the gateway failing:
#   - the simulator answers 500 to everything: the breaker opens after the
#     configured calls (at 10 of a window of 20, at 20 % failures); then card
#     orders get 503 PAYMENT_GATEWAY_UNAVAILABLE with Retry-After at once,
#     reserving nothing and calling nothing (the simulator's own request
#     count does not move); points orders keep working; once the simulator
#     recovers the breaker half-opens (3 trials) and closes;
#   - a gateway that hangs: no more than max_calls_in_flight (2) workers
#     wait for it, each to its timeout (503, the reservation released); a
#     third checkout is refused without a call; reads are answered all along
#     on the other workers;
#   - a slow gateway (calls slower than breaker_slow_ms, inside the
#     timeout): the breaker opens on slow calls alone.
# Time only bounds the waits; every assertion is an outcome or a count.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(bearer jreq concurrent is_problem);
use Jangteo::Orders qw(make_users make_admin set_balance order_body place_order scalar_sql);
use Jangteo::Catalog qw(make_product metric);
use Jangteo::Cards qw(card_stack card_body card_order sim sim_count fault clear_faults stock_of refused_while_open sweep_until);

my $s = card_stack(workers => 6, conf => { payments => {
    connect_timeout_ms => 500, timeout_ms => 2500, deadline_ms => 6000,
    breaker_window => 20, breaker_min_calls => 10, breaker_failure_rate => 20, breaker_slow_rate => 10,
    breaker_slow_ms => 1000, breaker_open_ms => 3000, breaker_half_open_calls => 3, max_calls_in_flight => 2,
} });
my ($buyer, $admin) = @{ make_users($s, 2, tag => 'c69') };
make_admin($s, $admin);
set_balance($s, [ $buyer->{id} ], 10_000_000);
my $p = make_product($s, $admin->{token}, name => '차단기 시험 상품', price => 30_000, stock => 1000)->{id};

sub breaker { $s->get('/status?json')->{json}{payment_gateway}{breaker} }
sub state_metric { metric($s, qq{jangteo_pg_breaker_state{state="$_[0]"}}) }
# 20 good calls (lookups of nothing: a 404 is an answer): an empty window
sub flush_window { $s->post_json('/test/pg', { op => 'lookup', impUid => 'imp_none' }) for 1 .. 20 }

# A card checkout from a child (it waits on the hanging gateway); its
# answer's status is written to a file.
sub in_background {
    my $file = $s->dir . "/bg-$$-" . int(rand(1e9));
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        open my $fh, '>', $file or POSIX::_exit(1);
        print $fh $r->{status};
        close $fh;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file };
}
sub slurp_status { my ($k) = @_; open my $fh, '<', $k->{file} or return 0; my $l = <$fh>; return 0 + ($l // 0) }

my $warm = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
is($warm->{status}, 201, 'a card order with a healthy gateway: 201 (getToken and prepare: 2 good calls)');
is(breaker(), 'closed', 'closed');

# ---------------------------------------------------------------- 100 % 500
subtest 'every answer 500: the breaker opens; card orders fail at once; points go on' => sub {
    fault($s, status => 500);
    my $stock = stock_of($s, $p);
    my $calls = sim_count($s, 'prepare');
    my $n = 0;
    while (breaker() ne 'open' && $n < 30) {
        my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        is_problem($r, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', "card order $n with the gateway answering 500: 503") if $n == 0;
        $n++;
    }
    is(breaker(), 'open', 'the breaker is open');
    is($n, 8, 'after exactly the configured 10 calls: the 2 good ones and 8 failed prepares');
    is(sim_count($s, 'prepare') - $calls, 8, 'the simulator saw those 8 prepares');
    is(stock_of($s, $p), $stock, 'every reservation was released');
    is(state_metric('open'), 1, '/metrics: jangteo_pg_breaker_state{state="open"} 1');

    refused_while_open($s, $buyer->{token}, [ [ $p, 1 ] ], 5, 3);
    is(stock_of($s, $p), $stock, 'the stock did not move');

    my $pts = place_order($s, $buyer->{token}, order_body([ [ $p, 1 ] ]));
    is($pts->{status}, 201, 'a points order meanwhile: 201');
    is($pts->{json}{status}, 'PAID', '... PAID');
    is(stock_of($s, $p), $stock - 1, '... and it took its unit');

    # the gateway recovers: after open_ms the first card order is a trial
    clear_faults($s);
    my ($first, $refused) = (undef, 0);
    my $deadline = time + 15;
    while (time < $deadline) {
        $first = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        last if $first->{status} == 201;
        $refused++;
        sleep 0.25;
    }
    is($first->{status}, 201, 'after open_ms a card order goes through again') or diag($first->{body});
    is(breaker(), 'half_open', 'half-open after the first trial');
    is(card_order($s, $buyer->{token}, [ [ $p, 1 ] ])->{status}, 201, 'the second trial');
    is(breaker(), 'half_open', 'still half-open (3 trials)');
    is(card_order($s, $buyer->{token}, [ [ $p, 1 ] ])->{status}, 201, 'the third trial');
    is(breaker(), 'closed', 'closed');
    is(state_metric('closed'), 1, '/metrics: closed');
};

# ---------------------------------------------------------------- hanging
subtest 'a gateway that hangs: the bulkhead holds 2 workers, the rest are refused at once, reads go on' => sub {
    flush_window();
    my $stock = stock_of($s, $p);
    my $failed = scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAYMENT_FAILED'");
    my $crowded = metric($s, 'jangteo_pg_calls_total{outcome="crowded"}');
    fault($s, endpoint => 'prepare', slow_ms => 60000);
    # two checkouts into the hanging gateway: the bulkhead's two places
    my $prepares = sim_count($s, 'prepare');
    my @kids = map { in_background() } 1 .. 2;
    ok(sweep_until(sub { sim_count($s, 'prepare') - $prepares == 2 }, 15), 'two prepares are hanging at the gateway');
    is(metric($s, 'jangteo_pg_calls_in_flight'), 2, '/metrics: 2 calls in flight (max_calls_in_flight 2)');
    # a third is refused after in_flight_wait_ms, without reaching the gateway
    my $third = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is_problem($third, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', 'a third checkout: 503 (no place for it)');
    is(sim_count($s, 'prepare') - $prepares, 2, '... it never reached the gateway');
    is(metric($s, 'jangteo_pg_calls_total{outcome="crowded"}') - $crowded, 1, '... counted as crowded');
    # reads meanwhile, on the 4 workers the gateway does not hold
    my $reads = concurrent($s, [ map { [ 'GET', "/api/v1/products/$p", {}, undef ] } 1 .. 60 ], timeout => 40);
    is(scalar(grep { $_->{status} == 200 } @$reads), 60, 'the 60 reads sent meanwhile: 60 x 200');
    my @st = map { waitpid($_->{pid}, 0); slurp_status($_) } @kids;
    is_deeply(\@st, [ 503, 503 ], 'the two hanging checkouts: 503 at their timeout (timeout_ms 2.5 s), not at the client\'s');
    is(stock_of($s, $p), $stock, 'every reservation was released');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE status = 'PAYMENT_FAILED'") - $failed, 3,
        '3 more orders PAYMENT_FAILED (the refused one had reserved, then released)');
    is(metric($s, 'jangteo_pg_calls_in_flight'), 0, 'no place left taken');
    my $st = $s->get('/status?json')->{json};
    is($st->{request_timeout_kills}, 0, 'no worker had to be killed');
    clear_faults($s);
};

# ---------------------------------------------------------------- slow
subtest 'calls slower than breaker_slow_ms: the breaker opens on slow calls' => sub {
    # the hung calls above were failed and slow: the breaker opened; let it
    # run its course first
    my $deadline = time + 20;
    while (time < $deadline && breaker() ne 'closed') {
        card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
        sleep 0.25;
    }
    flush_window();
    is(breaker(), 'closed', 'closed, with an empty window');
    my $slow0 = metric($s, 'jangteo_pg_slow_calls_total');
    fault($s, endpoint => 'prepare', slow_ms => 1500);
    my $answers = concurrent($s, [ map { [ 'POST', '/api/v1/orders', bearer($buyer->{token}), card_body([ [ $p, 1 ] ]) ] } 1 .. 2 ],
        timeout => 30);
    is(scalar(grep { $_->{status} == 201 } @$answers), 2, '2 card orders through a gateway taking 1.5 s: 2 x 201 (slow, not failed)')
        or diag(join "\n", map { "$_->{status} $_->{body}" } @$answers);
    is(metric($s, 'jangteo_pg_slow_calls_total') - $slow0, 2, '2 slow calls counted');
    is(breaker(), 'open', 'the last 20 calls hold 2 slow ones (10 % >= 10 %): open');
    my $total = sim_count($s, 'total');
    my $r = card_order($s, $buyer->{token}, [ [ $p, 1 ] ]);
    is_problem($r, 503, 'PAYMENT_GATEWAY_UNAVAILABLE', 'then a card order: 503 at once');
    is(sim_count($s, 'total') - $total, 0, '... with no call to the simulator');
    clear_faults($s);
};

done_testing;
