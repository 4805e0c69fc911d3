# Descending-price auctions, one request at a time: the creation rules, the
# price at the exact instants it drops (both policies, driven by the test
# clock), status transitions, list and detail fields, deletion, bids and
# their receipts, and refunds (including ten at once on one receipt).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Jangteo::Client qw(test_stack login bearer new_user concurrent invariant_ok balance_of is_problem jreq);
use Jangteo::Auctions qw(
    wall_ms iso clock_to clock_reset next_window auction_body create_auction make_users fund bid bid_req
    wait_settled receipt_counts
);

my $s = test_stack(
    demo    => 1,
    workers => 8,
    conf    => {
        server   => { enable_test_routes => 'yes' },
        auctions => { claim_idle_ms => 500, consumers => 2 },
    },
);

my $seller  = login($s, 'seller@jangteo.test', 'jangteo-seller-1234');
my $buyer   = login($s, 'buyer@jangteo.test',  'jangteo-buyer-1234');
my $admin   = login($s, 'admin@jangteo.test',  'jangteo-admin-1234');
my $seller2 = new_user($s, tag => 'seller2', role => 'SELLER');
my ($b1, $b2, $b3, $poor) = make_users($s, 4, tag => 'auction-buyer');
fund($s, [ map { $_->{id} } $b1, $b2, $b3 ], 1_000_000);
fund($s, [1], 1_000_000);    # the demo buyer
fund($s, [ $poor->{id} ], 5_000);
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

sub nauctions { $s->sql('SELECT COUNT(*) FROM auctions')->[0][0] }
sub detail { my ($id) = @_; my $r = $s->get("/api/v1/auctions/$id"); $r->{status} == 200 ? $r->{json} : { _status => $r->{status}, _body => $r->{body} } }
sub stock_of { my ($id) = @_; $s->sql("SELECT stock FROM auctions WHERE id = $id")->[0][0] }

# ---------------------------------------------------------------- creation rules
subtest 'creation rules' => sub {
    clock_reset($s);
    my $past = int((wall_ms() - 300_000) / 1000) * 1000;
    my @cases = (
        # name, overrides, status, code
        [ 'duration 61 minutes',            { minutes => 61 },                                       400, 'AUCTION_DURATION_INVALID' ],
        [ 'duration 90 s (not whole min)',  { minutes => 1.5, variationSeconds => 30 },              400, 'AUCTION_DURATION_INVALID' ],
        [ 'duration 2 h',                   { minutes => 120 },                                      400, 'AUCTION_DURATION_INVALID' ],
        [ 'variation 7 s on 10 min',        { variationSeconds => 7 },                               400, 'AUCTION_VARIATION_INVALID' ],
        [ 'variation 3600 s on 10 min',     { variationSeconds => 3600 },                            400, 'AUCTION_VARIATION_INVALID' ],
        [ 'variation 0',                    { variationSeconds => 0 },                               400, undef ],
        [ 'startsAt 5 minutes ago',         { startsMs => $past },                                   400, 'AUCTION_START_IN_PAST' ],
        [ 'startsAt = endsAt',              { minutes => 0 },                                        400, 'AUCTION_WINDOW_INVALID' ],
        [ 'startsAt after endsAt',          { minutes => -10 },                                      400, 'AUCTION_WINDOW_INVALID' ],
        [ 'stock 0',                        { stock => 0, maxPerBuyer => 0 },                        400, 'AUCTION_STOCK_INVALID' ],
        [ 'maxPerBuyer 0',                  { maxPerBuyer => 0 },                                    400, 'AUCTION_STOCK_INVALID' ],
        [ 'maxPerBuyer > stock',            { stock => 4, maxPerBuyer => 5 },                        400, 'AUCTION_STOCK_INVALID' ],
        [ 'negative stock',                 { stock => -1, maxPerBuyer => 1 },                       400, 'AUCTION_STOCK_INVALID' ],
        [ 'width 0',                        { pricePolicy => { type => 'CONSTANT', variationWidth => 0 } },    400, 'AUCTION_WIDTH_INVALID' ],
        [ 'width -100',                     { pricePolicy => { type => 'CONSTANT', variationWidth => -100 } }, 400, 'AUCTION_WIDTH_INVALID' ],
        [ 'originPrice = width',            { originPrice => 100, pricePolicy => { type => 'CONSTANT', variationWidth => 100 } }, 400, 'AUCTION_WIDTH_INVALID' ],
        [ 'originPrice < width',            { originPrice => 99, pricePolicy => { type => 'CONSTANT', variationWidth => 100 } },  400, 'AUCTION_WIDTH_INVALID' ],
        [ 'rate 0',                         { pricePolicy => { type => 'PERCENTAGE', discountRate => 0 } },      400, 'AUCTION_RATE_INVALID' ],
        [ 'rate 50.1',                      { pricePolicy => { type => 'PERCENTAGE', discountRate => 50.1 } },   400, 'AUCTION_RATE_INVALID' ],
        [ 'rate -10',                       { pricePolicy => { type => 'PERCENTAGE', discountRate => -10 } },    400, 'AUCTION_RATE_INVALID' ],
        [ 'rate 100',                       { pricePolicy => { type => 'PERCENTAGE', discountRate => 100 } },    400, 'AUCTION_RATE_INVALID' ],
        [ 'rate 0.001 (3 decimals)',        { pricePolicy => { type => 'PERCENTAGE', discountRate => 0.001 } },  400, 'AUCTION_RATE_INVALID' ],
        [ 'rate 10.555 (3 decimals)',       { pricePolicy => { type => 'PERCENTAGE', discountRate => 10.555 } }, 400, 'AUCTION_RATE_INVALID' ],
        [ 'CONSTANT last price 0',          { originPrice => 1000, minutes => 11, pricePolicy => { type => 'CONSTANT', variationWidth => 100 } }, 400, 'AUCTION_FINAL_PRICE_INVALID' ],
        [ 'CONSTANT last price < 0',        { originPrice => 1000, minutes => 60, pricePolicy => { type => 'CONSTANT', variationWidth => 100 } }, 400, 'AUCTION_FINAL_PRICE_INVALID' ],
        [ 'PERCENTAGE last price 0',        { originPrice => 3, minutes => 3, pricePolicy => { type => 'PERCENTAGE', discountRate => 50 } },      400, 'AUCTION_FINAL_PRICE_INVALID' ],
        [ 'startsAt not ISO',               { startsAt => '2026-11-23 13:00:00' },                   400, 'INVALID_REQUEST' ],
        [ 'startsAt with a local offset',   { startsAt => '2030-01-01T09:00:00+09:00', endsAt => '2030-01-01T09:10:00+09:00' }, 400, 'INVALID_REQUEST' ],
        [ 'startsAt February 30',          { startsAt => '2030-02-30T10:00:00Z', endsAt => '2030-02-30T10:10:00Z' }, 400, 'INVALID_REQUEST' ],
        [ 'startsAt April 31',              { startsAt => '2030-04-31T10:00:00Z', endsAt => '2030-04-31T10:10:00Z' }, 400, 'INVALID_REQUEST' ],
        [ 'startsAt "10:00:00.Z"',          { startsAt => '2030-01-01T10:00:00.Z', endsAt => '2030-01-01T10:10:00Z' }, 400, 'INVALID_REQUEST' ],
        [ 'startsAt month "+1"',            { startsAt => '2030-+1-01T10:00:00Z', endsAt => '2030-01-01T10:10:00Z' }, 400, 'INVALID_REQUEST' ],
        [ 'policy type LINEAR',             { pricePolicy => { type => 'LINEAR', variationWidth => 100 } }, 400, 'INVALID_REQUEST' ],
        [ 'no pricePolicy',                 { pricePolicy => undef },                                400, 'INVALID_REQUEST' ],
        [ 'rate as a string',               { pricePolicy => { type => 'PERCENTAGE', discountRate => '10' } }, 400, 'INVALID_REQUEST' ],
        [ 'no productName',                 { productName => undef },                                400, 'INVALID_REQUEST' ],
        [ 'blank productName',              { productName => '' },                                   400, 'INVALID_REQUEST' ],
        [ 'originPrice 0',                  { originPrice => 0 },                                    400, 'INVALID_REQUEST' ],
        [ 'stock as a string',              { stock => '10' },                                       400, 'INVALID_REQUEST' ],
    );
    my $before = nauctions();
    for my $c (@cases) {
        my ($name, $o, $status, $code) = @$c;
        my %o = %$o;
        my @undef = grep { !defined $o{$_} } keys %o;
        delete @o{@undef};
        my $body = auction_body(%o);
        delete @$body{@undef};
        my $r = $s->post_json('/api/v1/auctions', $body, bearer($seller));
        is_problem($r, $status, $code, "$name -> $status" . ($code ? " $code" : ''));
        $before++ if $r->{status} == 201;    # counted apart: one bug, one failure
    }
    is(nauctions(), $before, 'no refused body created an auction');

    is_problem($s->post_json('/api/v1/auctions', auction_body(), bearer($buyer)), 403, 'FORBIDDEN', 'a BUYER -> 403');
    is_problem($s->post_json('/api/v1/auctions', auction_body(), {}), 401, undef, 'no token -> 401');
    is(nauctions(), $before, 'nor did the forbidden ones');

    my @ok = (
        # name, overrides, check on the detail
        [ 'rate 0.1',                { pricePolicy => { type => 'PERCENTAGE', discountRate => 0.1 } },   sub { $_[0]{pricePolicy}{discountRate} == 0.1 } ],
        [ 'rate 50',                 { pricePolicy => { type => 'PERCENTAGE', discountRate => 50 } },    sub { $_[0]{pricePolicy}{discountRate} == 50 } ],
        [ 'rate 50.00',              { pricePolicy => { type => 'PERCENTAGE', discountRate => 50.00 } }, sub { $_[0]{pricePolicy}{type} eq 'PERCENTAGE' } ],
        [ 'rate 12.34',              { pricePolicy => { type => 'PERCENTAGE', discountRate => 12.34 } }, sub { $_[0]{pricePolicy}{discountRate} == 12.34 } ],
        [ 'exactly 60 minutes',      { minutes => 60 },                                                  sub { $_[0]{remainingSeconds} == 3600 } ],
        [ 'one minute, one step',    { minutes => 1, variationSeconds => 60 },                           sub { $_[0]{variationSeconds} == 60 } ],
        [ 'variation 1 s',           { variationSeconds => 1, originPrice => 1_000_000, pricePolicy => { type => 'CONSTANT', variationWidth => 1 } }, sub { $_[0]{variationSeconds} == 1 } ],
        [ 'stock = maxPerBuyer = 1', { stock => 1, maxPerBuyer => 1 },                                   sub { $_[0]{stock} == 1 && $_[0]{maxPerBuyer} == 1 } ],
        [ 'CONSTANT last price 100', { originPrice => 1000, pricePolicy => { type => 'CONSTANT', variationWidth => 100 } }, sub { $_[0]{pricePolicy}{variationWidth} == 100 } ],
        [ 'PERCENTAGE last price 1', { originPrice => 4, minutes => 3, pricePolicy => { type => 'PERCENTAGE', discountRate => 50 } }, sub { $_[0]{originPrice} == 4 } ],
        [ 'times with milliseconds', { startsMs => next_window() + 123, minutes => 10 },                 sub { $_[0]{startsAt} =~ /\.123Z$/ && $_[0]{endsAt} =~ /\.123Z$/ } ],
        [ 'showStock omitted',       { showStock => undef },                                             sub { exists $_[0]{stock} } ],
    );
    for my $c (@ok) {
        my ($name, $o, $check) = @$c;
        my %o = %$o;
        my @undef = grep { !defined $o{$_} } keys %o;
        delete @o{@undef};
        my $body = auction_body(%o);
        delete @$body{@undef};
        my $r = $s->post_json('/api/v1/auctions', $body, bearer($seller));
        ok($r->{status} == 201 && $r->{json} && $check->($r->{json}), "$name -> 201") or diag("$r->{status} $r->{body}");
        like($r->{headers}{location} // '', qr{^/api/v1/auctions/\d+$}, "$name: Location") if $r->{status} == 201;
    }
    my $r = $s->post_json('/api/v1/auctions', auction_body(), bearer($admin));
    is($r->{status}, 201, 'an ADMIN -> 201') or diag($r->{body});

    # startsAt may lag the clock by up to 1 s (500 ms here), not more (1.5 s)
    my $t = next_window();
    clock_to($s, $t + 500);
    $r = $s->post_json('/api/v1/auctions', auction_body(startsMs => $t), bearer($seller));
    is($r->{status}, 201, 'startsAt 500 ms in the past -> 201 (1 s slack)') or diag($r->{body});
    $t = next_window();
    clock_to($s, $t + 1500);
    is_problem($s->post_json('/api/v1/auctions', auction_body(startsMs => $t), bearer($seller)), 400,
        'AUCTION_START_IN_PAST', 'startsAt 1.5 s in the past -> 400 AUCTION_START_IN_PAST');
    clock_reset($s);
};

# ---------------------------------------------------------------- price at every drop
# Just before a boundary (300 ms) the old price; at the boundary (time only
# moves on from there) the new one.
sub price_walk {
    my ($name, $a, $var, @prices) = @_;
    my $id = $a->{id};
    my $steps = @prices;
    clock_to($s, $a->{startsMs} - 300);
    my $d = detail($id);
    is($d->{status}, 'WAITING', "$name: 300 ms before start WAITING");
    is($d->{currentPrice}, $prices[0], "$name: before start the price is the origin price");
    for my $k (0 .. $steps - 1) {
        my $b = $a->{startsMs} + $k * $var * 1000;
        if ($k > 0) {
            clock_to($s, $b - 300);
            $d = detail($id);
            is($d->{currentPrice}, $prices[$k - 1], "$name: step $k - 300 ms: $prices[$k-1]");
        }
        clock_to($s, $b);
        $d = detail($id);
        is($d->{status}, 'RUNNING', "$name: step $k: RUNNING");
        is($d->{currentPrice}, $prices[$k], "$name: step $k: $prices[$k]");
        if ($k < $steps - 1) {
            is($d->{nextDropAt}, iso($b + $var * 1000), "$name: step $k: nextDropAt");
            is($d->{nextPrice}, $prices[$k + 1], "$name: step $k: nextPrice $prices[$k+1]");
        } else {
            ok(exists $d->{nextDropAt} && !defined $d->{nextDropAt} && !defined $d->{nextPrice},
               "$name: last step: nextDropAt and nextPrice null") or diag(explain($d));
        }
    }
    clock_to($s, $a->{endsMs} - 300);
    $d = detail($id);
    is($d->{status}, 'RUNNING', "$name: 300 ms before the end still RUNNING");
    is($d->{currentPrice}, $prices[-1], "$name: ... at the last price");
    is($d->{remainingSeconds}, 1, "$name: ... remainingSeconds 1");
    clock_to($s, $a->{endsMs});
    $d = detail($id);
    is($d->{status}, 'FINISHED', "$name: at endsAt FINISHED");
    is($d->{remainingSeconds}, 0, "$name: remainingSeconds 0");
    ok(!defined $d->{nextDropAt} && !defined $d->{nextPrice}, "$name: no next drop once finished");
}

subtest 'price at the exact drop instants' => sub {
    my $c = create_auction($s, $seller, originPrice => 10_000, variationSeconds => 60, minutes => 10,
        pricePolicy => { type => 'CONSTANT', variationWidth => 700 });
    price_walk('CONSTANT 700', $c, 60, map { 10_000 - 700 * $_ } 0 .. 9);

    my $p = create_auction($s, $seller, originPrice => 10_000, variationSeconds => 30, minutes => 5,
        pricePolicy => { type => 'PERCENTAGE', discountRate => 10.0 });
    price_walk('PERCENTAGE 10%', $p, 30, 10000, 9000, 8100, 7290, 6561, 5904, 5313, 4781, 4302, 3871);

    # 12.5% on 999: floor at every step (999, 874, 764, 668, 584, 511)
    my $q = create_auction($s, $seller, originPrice => 999, variationSeconds => 60, minutes => 6,
        pricePolicy => { type => 'PERCENTAGE', discountRate => 12.5 });
    my @want = (999);
    push @want, int($want[-1] * 8750 / 10000) for 1 .. 5;
    is_deeply(\@want, [999, 874, 764, 668, 584, 511], 'expected floor sequence');
    my @got;
    for my $k (0 .. 5) {
        clock_to($s, $q->{startsMs} + $k * 60_000);
        push @got, detail($q->{id})->{currentPrice};
    }
    is_deeply(\@got, \@want, 'PERCENTAGE 12.5% on 999 floors at every step');

    # a bid races the drop: the old price right after the boundary is refused
    my $x = create_auction($s, $seller, originPrice => 10_000, stock => 10, maxPerBuyer => 5,
        pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
    clock_to($s, $x->{startsMs} + 3 * 60_000 - 300);
    my $r = bid($s, $x->{id}, $b1->{token}, 7000, 1);
    is_problem($r, 409, 'PRICE_MISMATCH', '300 ms before drop 3, the step-3 price -> 409 PRICE_MISMATCH');
    is(($r->{json} || {})->{currentPrice}, 8000, '... with currentPrice 8000');
    clock_to($s, $x->{startsMs} + 3 * 60_000);
    $r = bid($s, $x->{id}, $b1->{token}, 8000, 1);
    is_problem($r, 409, 'PRICE_MISMATCH', 'at drop 3, the step-2 price -> 409 PRICE_MISMATCH');
    is(($r->{json} || {})->{currentPrice}, 7000, '... with currentPrice 7000');
    $r = bid($s, $x->{id}, $b1->{token}, 7000, 1);
    is($r->{status}, 202, 'at drop 3, the step-3 price -> 202') or diag($r->{body});
    is(wait_settled($s, $x->{id}), 0, 'the bid settles');
    my $rc = $s->sql("SELECT price, status FROM receipts WHERE auction_id = $x->{id}");
    is_deeply($rc, [[7000, 'PURCHASED']], 'purchased at 7000');
};

# ---------------------------------------------------------------- status, list and detail
subtest 'status transitions, list and detail fields' => sub {
    my $a = create_auction($s, $seller, stock => 2, maxPerBuyer => 2, originPrice => 5000,
        pricePolicy => { type => 'CONSTANT', variationWidth => 100 });
    my $id = $a->{id};
    my @list_keys = sort qw(id productName startsAt endsAt originPrice currentPrice status remainingSeconds);
    my @detail_keys = (@list_keys, qw(stock maxPerBuyer pricePolicy variationSeconds nextDropAt nextPrice));

    my $in = sub {
        my ($status) = @_;
        my $r = $s->get("/api/v1/auctions?status=$status&size=100");
        return undef unless $r->{status} == 200 && ref $r->{json} eq 'ARRAY';
        my ($x) = grep { $_->{id} == $id } @{ $r->{json} };
        return $x || 0;
    };

    clock_to($s, $a->{startsMs} - 10_000);
    my $d = detail($id);
    is($d->{status}, 'WAITING', 'WAITING before the start');
    ok(!grep({ !exists $d->{$_} } @detail_keys), 'detail has every field') or diag(explain($d));
    is($d->{stock}, 2, 'detail: stock (showStock)');
    is($d->{maxPerBuyer}, 2, 'detail: maxPerBuyer');
    is_deeply($d->{pricePolicy}, { type => 'CONSTANT', variationWidth => 100 }, 'detail: pricePolicy');
    is($d->{variationSeconds}, 60, 'detail: variationSeconds');
    is($d->{startsAt}, iso($a->{startsMs}), 'detail: startsAt');
    is($d->{endsAt}, iso($a->{endsMs}), 'detail: endsAt');
    is($d->{productName}, '타임세일 경매 상품', 'detail: productName in Korean');
    my $w = $in->('WAITING');
    ok($w, 'in ?status=WAITING');
    is_deeply([ sort keys %{ $w || {} } ], \@list_keys, 'list items have exactly the list fields');
    ok(defined $in->('RUNNING') && !$in->('RUNNING'), 'not in ?status=RUNNING');
    is_problem(bid($s, $id, $b1->{token}, 5000, 1), 409, 'AUCTION_NOT_RUNNING', 'bid while WAITING -> 409 AUCTION_NOT_RUNNING');

    clock_to($s, $a->{startsMs});
    $d = detail($id);
    is($d->{status}, 'RUNNING', 'RUNNING at the start');
    is($d->{remainingSeconds}, 600, 'remainingSeconds 600 at the start');
    ok($in->('RUNNING'), 'in ?status=RUNNING');
    ok(!$in->('WAITING'), 'no longer in ?status=WAITING');
    my $r = bid($s, $id, $b2->{token}, 5000, 2);
    is($r->{status}, 202, 'bid for the whole stock -> 202') or diag($r->{body});
    is(wait_settled($s, $id), 0, 'settled');
    $d = detail($id);
    is($d->{status}, 'SOLD_OUT', 'SOLD_OUT with stock 0 while running');
    is($d->{stock}, 0, 'stock 0');
    ok($in->('SOLD_OUT'), 'in ?status=SOLD_OUT');
    ok(!$in->('RUNNING'), 'not in ?status=RUNNING');
    is_problem(bid($s, $id, $b3->{token}, 5000, 1), 409, 'OUT_OF_STOCK', 'bid on a sold-out auction -> 409 OUT_OF_STOCK');
    $r = bid($s, $id, $b3->{token}, 4000, 1);
    is_problem($r, 409, undef, 'wrong price on a sold-out auction -> 409');

    clock_to($s, $a->{endsMs} + 1);
    $d = detail($id);
    is($d->{status}, 'FINISHED', 'FINISHED after the end (even sold out)');
    ok($in->('FINISHED'), 'in ?status=FINISHED');
    is_problem(bid($s, $id, $b3->{token}, $d->{currentPrice}, 1), 409, 'AUCTION_NOT_RUNNING', 'bid after the end -> 409 AUCTION_NOT_RUNNING');

    # showStock false hides the stock everywhere
    my $h = create_auction($s, $seller, showStock => JSON::PP::false, stock => 7, maxPerBuyer => 1);
    ok(!exists $h->{stock}, 'showStock false: no stock in the 201 answer');
    $d = detail($h->{id});
    ok(!exists $d->{stock}, 'showStock false: no stock in the detail') or diag(explain($d));
    is($d->{maxPerBuyer}, 1, '... the other fields are there');
    $r = $s->get('/api/v1/auctions?size=100');
    my ($li) = grep { $_->{id} == $h->{id} } @{ $r->{json} || [] };
    ok($li && !exists $li->{stock}, 'no stock in the list item');

    # list parameters
    is_problem($s->get('/api/v1/auctions?status=OPEN'), 400, 'INVALID_REQUEST', '?status=OPEN -> 400');
    is_problem($s->get('/api/v1/auctions?size=0'), 400, undef, '?size=0 -> 400');
    is_problem($s->get('/api/v1/auctions?size=101'), 400, undef, '?size=101 -> 400');
    is_problem($s->get('/api/v1/auctions?page=0'), 400, undef, '?page=0 -> 400');
    my $p1 = $s->get('/api/v1/auctions?size=2&page=1')->{json} || [];
    my $p2 = $s->get('/api/v1/auctions?size=2&page=2')->{json} || [];
    is(scalar(@$p1), 2, 'size=2 gives 2');
    ok(@$p2 && !grep({ my $x = $_->{id}; grep { $_->{id} == $x } @$p1 } @$p2), 'page 2 does not repeat page 1');
    is_problem($s->get('/api/v1/auctions/999999'), 404, 'AUCTION_NOT_FOUND', 'unknown auction -> 404');
};

# ---------------------------------------------------------------- delete
subtest 'delete rules' => sub {
    my $a = create_auction($s, $seller);
    my $id = $a->{id};
    clock_to($s, $a->{startsMs} - 30_000);
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$id", $seller2->{token}), 403, 'FORBIDDEN', 'another seller -> 403');
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$id", $buyer), 403, 'FORBIDDEN', 'a buyer -> 403');
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$id", undef), 401, undef, 'no token -> 401');
    is(detail($id)->{id}, $id, 'still there');
    my $r = jreq($s, 'DELETE', "/api/v1/auctions/$id", $seller);
    is($r->{status}, 204, 'its seller before the start -> 204') or diag($r->{body});
    is($r->{body}, '', '204 has no body');
    is_problem($s->get("/api/v1/auctions/$id"), 404, 'AUCTION_NOT_FOUND', 'then GET -> 404');
    my $l = $s->get('/api/v1/auctions?size=100')->{json} || [];
    ok(!grep({ $_->{id} == $id } @$l), 'not listed any more');
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$id", $seller), 404, 'AUCTION_NOT_FOUND', 'delete again -> 404');
    clock_to($s, $a->{startsMs});
    is_problem(bid($s, $id, $b1->{token}, 10_000, 1), 404, 'AUCTION_NOT_FOUND', 'bid on a deleted auction -> 404');

    my $b = create_auction($s, $seller);
    clock_to($s, $b->{startsMs});
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$b->{id}", $seller), 409, 'AUCTION_ALREADY_STARTED', 'at the start -> 409 AUCTION_ALREADY_STARTED');
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$b->{id}", $seller2->{token}), 403, 'FORBIDDEN', 'another seller after the start -> 403');
    clock_to($s, $b->{endsMs} + 1000);
    is_problem(jreq($s, 'DELETE', "/api/v1/auctions/$b->{id}", $seller), 409, 'AUCTION_ALREADY_STARTED', 'after the end -> 409');
    is(detail($b->{id})->{id}, $b->{id}, 'still there');
    is_problem(jreq($s, 'DELETE', '/api/v1/auctions/999999', $seller), 404, 'AUCTION_NOT_FOUND', 'unknown -> 404');
};

# ---------------------------------------------------------------- bids and receipts
my ($rc_auction, %receipt);
subtest 'bids and receipts' => sub {
    my $a = create_auction($s, $seller, stock => 10, maxPerBuyer => 5, originPrice => 10_000,
        pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
    $rc_auction = $a;
    my $id = $a->{id};
    clock_to($s, $a->{startsMs} + 1000);

    is_problem(bid($s, $id, $seller, 10_000, 1), 403, 'FORBIDDEN', 'a seller cannot bid');
    is_problem(bid($s, $id, $admin, 10_000, 1), 403, 'FORBIDDEN', 'an admin cannot bid');
    is_problem(bid($s, $id, undef, 10_000, 1), 401, undef, 'no token -> 401');
    is_problem(bid($s, $id, $b1->{token}, 10_000, 6), 409, 'PURCHASE_LIMIT', 'quantity 6 > maxPerBuyer 5 -> 409 PURCHASE_LIMIT');
    is_problem(bid($s, $id, $b1->{token}, 10_000, 0), 400, undef, 'quantity 0 -> 400');
    is_problem(jreq($s, 'POST', "/api/v1/auctions/$id/bids", $b1->{token}, { quantity => 1 }), 400, undef, 'no price -> 400');
    is_problem(bid($s, 999999, $b1->{token}, 10_000, 1), 404, 'AUCTION_NOT_FOUND', 'unknown auction -> 404');
    my $r = bid($s, $id, $b1->{token}, 9000, 1);
    is_problem($r, 409, 'PRICE_MISMATCH', 'a lower price -> 409 PRICE_MISMATCH');
    is(($r->{json} || {})->{currentPrice}, 10_000, '... currentPrice 10000');
    is_problem(bid($s, $id, $b1->{token}, 11_000, 1), 409, 'PRICE_MISMATCH', 'a higher price -> 409 PRICE_MISMATCH');
    is(scalar(@{ $s->sql("SELECT id FROM receipts WHERE auction_id = $id") }), 0, 'no refusal made a receipt');

    my $bal1 = balance_of($s, $b1->{id});
    my $sbal = balance_of($s, 3);
    $r = bid($s, $id, $b1->{token}, 10_000, 3);
    is($r->{status}, 202, 'b1 buys 3 -> 202') or diag($r->{body});
    is_deeply([ sort keys %{ $r->{json} || {} } ], [qw(receiptId status)], '202 answer: receiptId and status');
    like(($r->{json} || {})->{receiptId} // '', $UUID, 'receiptId is a v4 UUID');
    is(($r->{json} || {})->{status}, 'PENDING', 'status PENDING');
    $receipt{b1} = $r->{json}{receiptId};
    $r = bid($s, $id, $b1->{token}, 10_000, 3);
    is($r->{status}, 202, 'b1 buys 3 more -> 202 (checked by the consumer)');
    $receipt{b1_limit} = $r->{json}{receiptId};
    is(wait_settled($s, $id), 0, 'settled');
    $r = bid($s, $id, $b1->{token}, 10_000, 2);
    is($r->{status}, 202, 'b1 buys 2 more -> 202');
    $receipt{b1_more} = $r->{json}{receiptId};
    $r = bid($s, $id, $poor->{token}, 10_000, 1);
    is($r->{status}, 202, 'a buyer with 5,000 points bids 10,000 -> 202');
    $receipt{poor} = $r->{json}{receiptId};
    $r = bid($s, $id, $b2->{token}, 10_000, 1);
    $receipt{b2} = $r->{json}{receiptId};
    is(wait_settled($s, $id), 0, 'settled');

    my $g = $s->get("/api/v1/receipts/$receipt{b1}", bearer($b1->{token}));
    is($g->{status}, 200, 'its buyer reads the receipt') or diag($g->{body});
    my $j = $g->{json} || {};
    is_deeply([ sort keys %$j ],
        [ sort qw(receiptId auctionId productName price quantity status failureCode buyerId sellerId createdAt updatedAt) ],
        'receipt fields');
    is($j->{receiptId}, $receipt{b1}, 'receiptId');
    is($j->{auctionId}, $id, 'auctionId');
    is($j->{productName}, '타임세일 경매 상품', 'productName');
    is($j->{price}, 10_000, 'price');
    is($j->{quantity}, 3, 'quantity');
    is($j->{status}, 'PURCHASED', 'PURCHASED');
    ok(exists $j->{failureCode} && !defined $j->{failureCode}, 'failureCode null');
    is($j->{buyerId}, $b1->{id}, 'buyerId');
    is($j->{sellerId}, 3, 'sellerId');

    my $lim = $s->get("/api/v1/receipts/$receipt{b1_limit}", bearer($b1->{token}))->{json} || {};
    is($lim->{status}, 'FAILED', 'the bid past maxPerBuyer counting earlier purchases: FAILED');
    is($lim->{failureCode}, 'PURCHASE_LIMIT', '... PURCHASE_LIMIT');
    is(($s->get("/api/v1/receipts/$receipt{b1_more}", bearer($b1->{token}))->{json} || {})->{status}, 'PURCHASED',
        '3 + 2 = maxPerBuyer: PURCHASED');
    my $pj = $s->get("/api/v1/receipts/$receipt{poor}", bearer($poor->{token}))->{json} || {};
    is($pj->{status}, 'FAILED', 'the poor buyer: FAILED');
    is($pj->{failureCode}, 'INSUFFICIENT_BALANCE', '... INSUFFICIENT_BALANCE');
    is(balance_of($s, $poor->{id}), 5_000, "the poor buyer's balance is unchanged");
    is(balance_of($s, $b1->{id}), $bal1 - 50_000, 'b1 paid 5 x 10,000');
    is(balance_of($s, 3), $sbal + 60_000, 'the seller got 6 x 10,000');
    is(stock_of($id), 4, 'stock 10 - 6 = 4');
    my $led = $s->sql("SELECT l.kind, l.user_id, l.delta FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
        . " WHERE r.uuid = '$receipt{b1}' AND l.kind LIKE 'AUCTION%' ORDER BY l.kind");
    is_deeply($led, [ [ 'AUCTION_PURCHASE', $b1->{id}, -30_000 ], [ 'AUCTION_SALE', 3, 30_000 ] ],
        'ledger: AUCTION_PURCHASE and AUCTION_SALE with ref_id = receipts.id');
    is($s->sql("SELECT COUNT(*) FROM point_ledger l JOIN receipts r ON r.id = l.ref_id WHERE l.kind LIKE 'AUCTION%'"
        . " AND r.uuid IN ('$receipt{b1_limit}', '$receipt{poor}')")->[0][0], 0, 'no ledger rows for failed receipts');

    # who may see a receipt
    is(($s->get("/api/v1/receipts/$receipt{b1}", bearer($seller))->{status}), 200, 'its seller reads it');
    is_problem($s->get("/api/v1/receipts/$receipt{b1}", bearer($b2->{token})), 404, 'RECEIPT_NOT_FOUND', 'another buyer -> 404');
    is_problem($s->get("/api/v1/receipts/$receipt{b1}", bearer($seller2->{token})), 404, 'RECEIPT_NOT_FOUND', 'another seller -> 404');
    is_problem($s->get("/api/v1/receipts/$receipt{b1}", {}), 401, undef, 'no token -> 401');
    is_problem($s->get('/api/v1/receipts/00000000-0000-4000-8000-000000000000', bearer($b1->{token})), 404, 'RECEIPT_NOT_FOUND', 'unknown uuid -> 404');
    is_problem($s->get('/api/v1/receipts/nope', bearer($b1->{token})), 404, 'RECEIPT_NOT_FOUND', 'not a uuid -> 404');

    # the lists
    my $bl = $s->get("/api/v1/users/$b1->{id}/receipts?role=buyer", bearer($b1->{token}));
    is($bl->{status}, 200, 'buyer list 200') or diag($bl->{body});
    my @ids = map { $_->{receiptId} } grep { $_->{auctionId} == $id } @{ ($bl->{json} || {})->{items} || [] };
    is_deeply(\@ids, [ @receipt{qw(b1_more b1_limit b1)} ], "b1's receipts of this auction, newest first");
    ok(exists $bl->{json}{nextCursor} && !defined $bl->{json}{nextCursor}, 'nextCursor null on the last page');
    my $p = $s->get("/api/v1/users/$b1->{id}/receipts?role=buyer&limit=2", bearer($b1->{token}))->{json} || {};
    is(scalar(@{ $p->{items} || [] }), 2, 'limit=2: 2 items');
    ok(defined $p->{nextCursor}, 'limit=2: a nextCursor');
    my $p2 = $s->get("/api/v1/users/$b1->{id}/receipts?role=buyer&limit=2&cursor=$p->{nextCursor}", bearer($b1->{token}))->{json} || {};
    is((($p2->{items} || [])->[0] || {})->{receiptId}, $receipt{b1}, 'the next page starts with the third newest');
    is(scalar(@{ $p2->{items} || [] }), 2, '... and holds the 2 older ones (one from the price test)');
    ok(!defined $p2->{nextCursor}, '... and no further page');
    my $sl = $s->get('/api/v1/users/3/receipts?role=seller&limit=100', bearer($seller))->{json} || {};
    my %sel = map { $_->{receiptId} => 1 } @{ $sl->{items} || [] };
    ok($sel{$receipt{b1}} && $sel{$receipt{poor}} && $sel{$receipt{b2}}, "the seller's list has its auction's receipts");
    my $r2 = $s->get("/api/v1/users/$b1->{id}/receipts?role=buyer", bearer($b2->{token}));
    ok($r2->{status} == 403 || $r2->{status} == 404, "another user's receipts -> 403/404") or diag("$r2->{status} $r2->{body}");
    is_problem($s->get("/api/v1/users/$b1->{id}/receipts?role=owner", bearer($b1->{token})), 400, undef, 'role=owner -> 400');
};

# ---------------------------------------------------------------- refunds
subtest 'refund rules' => sub {
    my $sell = new_user($s, tag => 'refund-seller', role => 'SELLER');
    my $a = create_auction($s, $sell->{token}, stock => 10, maxPerBuyer => 5, originPrice => 10_000,
        pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
    my $id = $a->{id};
    clock_to($s, $a->{startsMs});
    my %rid;
    for my $x ([ b1 => $b1, 2 ], [ b2 => $b2, 1 ], [ b3 => $b3, 3 ]) {
        my $r = bid($s, $id, $x->[1]{token}, 10_000, $x->[2]);
        is($r->{status}, 202, "$x->[0] buys $x->[2]") or diag($r->{body});
        $rid{ $x->[0] } = ($r->{json} || {})->{receiptId};
    }
    my $r = bid($s, $id, $poor->{token}, 10_000, 1);
    $rid{poor} = ($r->{json} || {})->{receiptId};
    is(wait_settled($s, $id), 0, 'settled');
    is(stock_of($id), 4, 'stock 4');
    is(balance_of($s, $sell->{id}), 60_000, 'seller has 60,000');
    my $refund = sub { my ($who, $tok) = @_; $s->post_json("/api/v1/receipts/$rid{$who}/refund", {}, bearer($tok)) };
    my $nrows = sub { $s->sql('SELECT COUNT(*) FROM point_ledger')->[0][0] };

    my $n0 = $nrows->();
    is_problem($refund->(b1 => $b1->{token}), 409, 'AUCTION_NOT_FINISHED', 'while RUNNING -> 409 AUCTION_NOT_FINISHED');
    clock_to($s, $a->{endsMs} - 300);
    is_problem($refund->(b1 => $b1->{token}), 409, 'AUCTION_NOT_FINISHED', '300 ms before the end -> 409');
    is($nrows->(), $n0, 'no ledger rows');
    clock_to($s, $a->{endsMs});
    is_problem($refund->(b1 => $sell->{token}), 403, 'FORBIDDEN', 'its seller -> 403');
    is_problem($refund->(b1 => $b2->{token}), 404, 'RECEIPT_NOT_FOUND', 'another buyer -> 404');
    is_problem($s->post_json('/api/v1/receipts/00000000-0000-4000-8000-000000000000/refund', {}, bearer($b1->{token})),
        404, 'RECEIPT_NOT_FOUND', 'unknown receipt -> 404');
    $r = $refund->(poor => $poor->{token});
    ok($r->{status} >= 400 && $r->{status} < 500, "a FAILED receipt cannot be refunded ($r->{status})");
    is(balance_of($s, $poor->{id}), 5_000, '... nothing moved');
    is($nrows->(), $n0, 'no ledger rows after the refusals');

    my ($bb, $sb) = (balance_of($s, $b1->{id}), balance_of($s, $sell->{id}));
    $r = $refund->(b1 => $b1->{token});
    is($r->{status}, 200, 'at endsAt its buyer -> 200') or diag($r->{body});
    is(($r->{json} || {})->{status}, 'REFUNDED', 'status REFUNDED');
    is(($r->{json} || {})->{receiptId}, $rid{b1}, 'the same receipt');
    is(balance_of($s, $b1->{id}), $bb + 20_000, 'buyer +20,000');
    is(balance_of($s, $sell->{id}), $sb - 20_000, 'seller -20,000');
    is(stock_of($id), 6, 'stock back 4 + 2');
    my $led = $s->sql("SELECT l.kind, l.user_id, l.delta FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
        . " WHERE r.uuid = '$rid{b1}' ORDER BY l.id");
    is_deeply($led, [ [ 'AUCTION_PURCHASE', $b1->{id}, -20_000 ], [ 'AUCTION_SALE', $sell->{id}, 20_000 ],
                      [ 'AUCTION_REVERSAL', $sell->{id}, -20_000 ], [ 'AUCTION_REFUND', $b1->{id}, 20_000 ] ],
        'ledger: the purchase pair, then AUCTION_REVERSAL and AUCTION_REFUND with ref_id = receipts.id');
    is_problem($refund->(b1 => $b1->{token}), 409, 'ALREADY_REFUNDED', 'again -> 409 ALREADY_REFUNDED');
    is(($s->get("/api/v1/receipts/$rid{b1}", bearer($b1->{token}))->{json} || {})->{status}, 'REFUNDED', 'GET says REFUNDED');

    # the seller cannot cover the refund: nothing changes
    my $take = balance_of($s, $sell->{id}) - 5_000;    # leave 5,000 < 10,000
    $s->sql("INSERT INTO point_ledger (user_id, delta, balance_after, kind) VALUES ($sell->{id}, -$take, 5000, 'ADJUSTMENT');"
        . " UPDATE users SET balance = 5000, version = version + 1 WHERE id = $sell->{id}");
    ($bb, $sb) = (balance_of($s, $b2->{id}), balance_of($s, $sell->{id}));
    my $n1 = $nrows->();
    is_problem($refund->(b2 => $b2->{token}), 409, 'INSUFFICIENT_BALANCE', 'seller with 5,000 cannot refund 10,000 -> 409 INSUFFICIENT_BALANCE');
    is(balance_of($s, $b2->{id}), $bb, 'buyer unchanged');
    is(balance_of($s, $sell->{id}), $sb, 'seller unchanged');
    is(stock_of($id), 6, 'stock unchanged');
    is($nrows->(), $n1, 'no ledger rows');
    is(($s->get("/api/v1/receipts/$rid{b2}", bearer($b2->{token}))->{json} || {})->{status}, 'PURCHASED', 'still PURCHASED');
    fund($s, [ $sell->{id} ], 100_000);
    $r = $refund->(b2 => $b2->{token});
    is($r->{status}, 200, 'once the seller has points -> 200') or diag($r->{body});
    is(stock_of($id), 7, 'stock 7');

    # ten refunds of one receipt at once
    ($bb, $sb) = (balance_of($s, $b3->{id}), balance_of($s, $sell->{id}));
    my $res = concurrent($s, [ map { [ 'POST', "/api/v1/receipts/$rid{b3}/refund",
        { 'Content-Type' => 'application/json', %{ bearer($b3->{token}) } }, '{}' ] } 1 .. 10 ]);
    my @ok = grep { $_->{status} == 200 } @$res;
    my @dup = grep { $_->{status} == 409 && (($_->{json} || {})->{code} // '') eq 'ALREADY_REFUNDED' } @$res;
    is(scalar(@ok), 1, 'ten at once: exactly one 200');
    is(scalar(@dup), 9, 'ten at once: nine 409 ALREADY_REFUNDED')
        or diag(join "\n", map { "$_->{status} $_->{body}" } grep { $_->{status} != 200 } @$res);
    my $pairs = $s->sql("SELECT l.kind, COUNT(*), SUM(l.delta) FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
        . " WHERE r.uuid = '$rid{b3}' AND l.kind IN ('AUCTION_REFUND', 'AUCTION_REVERSAL') GROUP BY l.kind ORDER BY l.kind");
    is_deeply($pairs, [ [ 'AUCTION_REFUND', 1, 30_000 ], [ 'AUCTION_REVERSAL', 1, -30_000 ] ], 'one refund pair in the ledger');
    is(balance_of($s, $b3->{id}), $bb + 30_000, 'buyer +30,000 once');
    is(balance_of($s, $sell->{id}), $sb - 30_000, 'seller -30,000 once');
    is(stock_of($id), 10, 'stock restored once: back to the original 10');
    my ($st, $ini) = @{ $s->sql("SELECT stock, initial_stock FROM auctions WHERE id = $id")->[0] };
    ok($st <= $ini, 'stock never above the original');
};

clock_reset($s);
my ($code, $out) = $s->admin('audit');
is($code, 0, 'audit clean') or diag($out);
invariant_ok($s);

done_testing();
