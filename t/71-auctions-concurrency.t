# Auctions under concurrency, with exact figures: the stock is never
# oversold, a buyer who cannot pay loses nothing, 200 bids right at a price
# drop sell exactly the stock at the new price, a consumer killed mid-batch
# loses and doubles nothing, and an Idempotency-Key makes a bid once.
# Each scenario runs with synchronous bids and with queued (async) bids.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack login bearer new_user concurrent invariant_ok balance_of is_problem);
use Jangteo::Auctions qw(
    clock_to clock_reset create_auction make_users fund bid bid_req wait_settled receipt_counts
    consumer_pids
);

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

sub stock_of { my ($s, $id) = @_; $s->sql("SELECT stock FROM auctions WHERE id = $id")->[0][0] }

sub auction_ledger {
    my ($s, $id) = @_;
    my %k = map { $_->[0] => [ $_->[1], $_->[2] ] } @{ $s->sql(
        "SELECT l.kind, COUNT(*), SUM(l.delta) FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
        . " WHERE r.auction_id = $id AND l.kind LIKE 'AUCTION%' GROUP BY l.kind") };
    return \%k;
}

# The outcome of a batch of bids, the same way for both modes: purchased
# receipts and failure codes. Sync: from the answers (201 / 409 code), with
# the receipts table agreeing. Async: every answer 202, then the receipts
# once none is PENDING.
sub outcome {
    my ($s, $mode, $id, $res) = @_;
    my %o = (purchased => 0, fail => {}, other => []);
    if ($mode eq 'sync') {
        for my $r (@$res) {
            if ($r->{status} == 201) { $o{purchased}++ }
            elsif ($r->{status} == 409 && $r->{json}) { $o{fail}{ $r->{json}{code} }++ }
            else { push @{ $o{other} }, "$r->{status} $r->{body}" }
        }
        $o{pending} = 0;
    } else {
        my @bad = grep { $_->{status} != 202 || !(($_->{json} || {})->{receiptId} // '') =~ $UUID } @$res;
        push @{ $o{other} }, map { "$_->{status} $_->{body}" } @bad;
        $o{pending} = wait_settled($s, $id, 90);
        my $c = receipt_counts($s, $id);
        $o{purchased} = $c->{PURCHASED};
        for my $k (keys %$c) { $o{fail}{$1} = $c->{$k} if $k =~ /^FAILED:(.+)$/ }
    }
    my $c = receipt_counts($s, $id);
    $o{receipts_purchased} = $c->{PURCHASED};
    $o{units} = $c->{units};
    return \%o;
}

sub scenarios {
    my ($s, $mode, $pool) = @_;
    my @pool = @$pool;

    # ---- 1. stock 10, maxPerBuyer 5, ten buyers x 2 at once: exactly 5 sold
    subtest "$mode: ten buyers x 2 on stock 10" => sub {
        my $seller = new_user($s, tag => "s1-$mode", role => 'SELLER');
        my $a = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 5, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        my @b = @pool[0 .. 9];
        my %before = map { $_->{id} => balance_of($s, $_->{id}) } @b;
        clock_to($s, $a->{startsMs} + 5000);
        my $res = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 10_000, 2) } @b ]);
        my $o = outcome($s, $mode, $a->{id}, $res);
        is($o->{pending}, 0, 'no receipt left PENDING');
        is_deeply($o->{other}, [], 'no other answers');
        is($o->{purchased}, 5, 'exactly 5 purchased');
        is_deeply($o->{fail}, { OUT_OF_STOCK => 5 }, 'exactly 5 OUT_OF_STOCK');
        is($o->{receipts_purchased}, 5, '5 PURCHASED receipts');
        is(stock_of($s, $a->{id}), 0, 'stock 0');
        is(balance_of($s, $seller->{id}), 100_000, 'seller credited 5 x 2 x 10,000');
        my $paid = grep { balance_of($s, $_->{id}) == $before{ $_->{id} } - 20_000 } @b;
        my $same = grep { balance_of($s, $_->{id}) == $before{ $_->{id} } } @b;
        is($paid, 5, '5 buyers paid exactly 20,000');
        is($same, 5, '5 buyers paid nothing');
        is_deeply(auction_ledger($s, $a->{id}), { AUCTION_PURCHASE => [ 5, -100_000 ], AUCTION_SALE => [ 5, 100_000 ] },
            'ledger: 5 purchase rows and 5 sale rows');
        is(detail_status($s, $a->{id}), 'SOLD_OUT', 'SOLD_OUT');
    };

    # ---- 1b. one buyer, five bids x 2 at once, maxPerBuyer 5: exactly 2 land
    subtest "$mode: one buyer, five bids x 2 at once, maxPerBuyer 5" => sub {
        my $seller = new_user($s, tag => "s1b-$mode", role => 'SELLER');
        my $a = create_auction($s, $seller->{token}, stock => 100, maxPerBuyer => 5, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        my $b = $pool[40];
        my $before = balance_of($s, $b->{id});
        clock_to($s, $a->{startsMs} + 5000);
        my $res = concurrent($s, [ map { bid_req($a->{id}, $b->{token}, 10_000, 2) } 1 .. 5 ]);
        my $o = outcome($s, $mode, $a->{id}, $res);
        is($o->{pending}, 0, 'no receipt left PENDING');
        is_deeply($o->{other}, [], 'no other answers');
        is($o->{purchased}, 2, 'exactly 2 purchased (4 units)');
        is_deeply($o->{fail}, { PURCHASE_LIMIT => 3 }, 'exactly 3 PURCHASE_LIMIT');
        is(stock_of($s, $a->{id}), 96, 'stock 96');
        is(balance_of($s, $b->{id}), $before - 40_000, 'the buyer paid 40,000');
    };

    # ---- 2. eleven buyers x 1 on stock 10, one cannot pay: 10 sold
    subtest "$mode: eleven buyers x 1 on stock 10, one cannot pay" => sub {
        my $seller = new_user($s, tag => "s2-$mode", role => 'SELLER');
        my ($poor) = make_users($s, 1, tag => "poor-$mode");
        fund($s, [ $poor->{id} ], 9_999);
        my $a = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 1, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        my @b = (@pool[10 .. 19], $poor);
        clock_to($s, $a->{startsMs} + 5000);
        my $res = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 10_000, 1) } @b ]);
        my $o = outcome($s, $mode, $a->{id}, $res);
        is($o->{pending}, 0, 'no receipt left PENDING');
        is_deeply($o->{other}, [], 'no other answers');
        is($o->{purchased}, 10, 'exactly 10 purchased');
        is(stock_of($s, $a->{id}), 0, 'stock 0');
        is(balance_of($s, $poor->{id}), 9_999, "the poor buyer's balance is unchanged");
        is(balance_of($s, $seller->{id}), 100_000, 'seller credited 10 x 10,000');
        my $bought = $s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $poor->{id} AND status = 'PURCHASED'")->[0][0];
        is($bought, 0, 'the poor buyer bought nothing');
        # Whether the poor buyer's bid is checked before or after the stock
        # runs out depends on the order: INSUFFICIENT_BALANCE or OUT_OF_STOCK.
        my $code = $mode eq 'sync'
            ? (($res->[-1]{json} || {})->{code} // $res->[-1]{status})
            : ($s->sql("SELECT failure_code FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $poor->{id}")->[0][0] // 'none');
        like($code, qr/^(INSUFFICIENT_BALANCE|OUT_OF_STOCK)$/, "the poor buyer's bid failed: $code");
        is_deeply($o->{fail}, { $code => 1 }, 'exactly one failure');

        # and alone, before the stock runs out, it is INSUFFICIENT_BALANCE
        my $a2 = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 1, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        clock_to($s, $a2->{startsMs} + 5000);
        my $r = bid($s, $a2->{id}, $poor->{token}, 10_000, 1);
        if ($mode eq 'sync') {
            is_problem($r, 409, 'INSUFFICIENT_BALANCE', 'alone: 409 INSUFFICIENT_BALANCE');
        } else {
            is($r->{status}, 202, 'alone: 202');
            is(wait_settled($s, $a2->{id}, 30), 0, 'settled');
            is_deeply($s->sql("SELECT status, failure_code FROM receipts WHERE auction_id = $a2->{id}"),
                [ [ 'FAILED', 'INSUFFICIENT_BALANCE' ] ], 'alone: FAILED INSUFFICIENT_BALANCE');
        }
        is(balance_of($s, $poor->{id}), 9_999, 'balance still unchanged');
        is(stock_of($s, $a2->{id}), 10, 'stock unchanged');
    };

    # ---- 3. 200 bids a few ms after a price drop on stock 100
    subtest "$mode: 200 bids right at a price drop on stock 100" => sub {
        my $seller = new_user($s, tag => "s3-$mode", role => 'SELLER');
        my $a = create_auction($s, $seller->{token}, stock => 100, maxPerBuyer => 1, originPrice => 10_000,
            variationSeconds => 60, minutes => 10, pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        my @b = @pool[0 .. 199];
        my %before = map { @$_ } @{ $s->sql('SELECT id, balance FROM users WHERE id IN (' . join(',', map { $_->{id} } @b) . ')') };
        my $drop = $a->{startsMs} + 60_000;
        my $res = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 9000, 1) } @b ],
            just_before => sub { clock_to($s, $drop + 5) });
        my $mismatch = grep { $_->{status} == 409 && (($_->{json} || {})->{code} // '') eq 'PRICE_MISMATCH' } @$res;
        is($mismatch, 0, 'no bid at the new price was refused as PRICE_MISMATCH');
        my $o = outcome($s, $mode, $a->{id}, $res);
        is($o->{pending}, 0, 'no receipt left PENDING');
        is_deeply($o->{other}, [], 'no other answers') or diag(scalar(@{ $o->{other} }) . " others");
        is($o->{purchased}, 100, 'exactly 100 purchased');
        is_deeply($o->{fail}, { OUT_OF_STOCK => 100 }, 'exactly 100 OUT_OF_STOCK');
        is(stock_of($s, $a->{id}), 0, 'stock 0');
        is_deeply($s->sql("SELECT DISTINCT price FROM receipts WHERE auction_id = $a->{id}"), [ [9000] ], 'every receipt at 9,000');
        is(balance_of($s, $seller->{id}), 900_000, 'seller credited exactly 100 x 9,000');
        my %after = map { @$_ } @{ $s->sql('SELECT id, balance FROM users WHERE id IN (' . join(',', map { $_->{id} } @b) . ')') };
        my $paid = grep { $after{$_} == $before{$_} - 9000 } keys %before;
        my $same = grep { $after{$_} == $before{$_} } keys %before;
        is($paid, 100, '100 buyers paid exactly 9,000');
        is($same, 100, '100 buyers paid nothing');
        is_deeply(auction_ledger($s, $a->{id}), { AUCTION_PURCHASE => [ 100, -900_000 ], AUCTION_SALE => [ 100, 900_000 ] },
            'ledger: 100 purchase rows and 100 sale rows');
        invariant_ok($s, 'every balance = its ledger sum');
    };

    # ---- 5. Idempotency-Key on a bid
    subtest "$mode: Idempotency-Key on a bid" => sub {
        my $seller = new_user($s, tag => "s5-$mode", role => 'SELLER');
        my $a = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 3, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        my $want = $mode eq 'sync' ? 201 : 202;
        clock_to($s, $a->{startsMs} + 5000);
        my $b = $pool[30];
        my $key = "bid-$mode-$$-1";
        my $r1 = bid($s, $a->{id}, $b->{token}, 10_000, 1, $key);
        is($r1->{status}, $want, "first -> $want") or diag($r1->{body});
        ok(!$r1->{headers}{'idempotent-replayed'}, 'first is not a replay');
        my $r2 = bid($s, $a->{id}, $b->{token}, 10_000, 1, $key);
        is($r2->{status}, $want, "the same key again -> $want") or diag($r2->{body});
        is($r2->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
        is(($r2->{json} || {})->{receiptId}, ($r1->{json} || {})->{receiptId}, 'the same receiptId');
        is($r2->{body}, $r1->{body}, 'the same body');
        wait_settled($s, $a->{id}, 30) if $mode eq 'async';
        my $r3 = bid($s, $a->{id}, $b->{token}, 10_000, 1, $key);
        is($r3->{headers}{'idempotent-replayed'}, 'true', 'after settling: still a replay');
        is(($r3->{json} || {})->{receiptId}, ($r1->{json} || {})->{receiptId}, '... of the same receipt');
        is_problem(bid($s, $a->{id}, $b->{token}, 10_000, 2, $key), 422, 'IDEMPOTENCY_KEY_REUSED',
            'the same key with another quantity -> 422 IDEMPOTENCY_KEY_REUSED');
        my $other = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 3, originPrice => 10_000,
            pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        clock_to($s, $other->{startsMs} + 5000);
        is_problem(bid($s, $other->{id}, $b->{token}, 10_000, 1, $key), 422, 'IDEMPOTENCY_KEY_REUSED',
            'the same key on another auction -> 422 IDEMPOTENCY_KEY_REUSED');
        is($s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $other->{id}")->[0][0], 0, '... no receipt there');
        clock_to($s, $a->{startsMs} + 5000);
        is_deeply($s->sql("SELECT status, quantity FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $b->{id}"),
            [ [ 'PURCHASED', 1 ] ], 'one receipt, PURCHASED, quantity 1');
        is(stock_of($s, $a->{id}), 9, 'stock 9');

        # five at once with one key
        my $c = $pool[31];
        my $k2 = "bid-$mode-$$-2";
        my $res = concurrent($s, [ map { bid_req($a->{id}, $c->{token}, 10_000, 1, $k2) } 1 .. 5 ]);
        my @good = grep { $_->{status} == $want } @$res;
        my @busy = grep { $_->{status} == 409 && (($_->{json} || {})->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT' } @$res;
        is(@good + @busy, 5, "five at once: each $want or 409 IDEMPOTENCY_IN_FLIGHT")
            or diag(join "\n", map { "$_->{status} $_->{body}" } @$res);
        my %ids = map { (($_->{json} || {})->{receiptId} // '') => 1 } @good;
        is(scalar(keys %ids), 1, 'every success names the same receipt');
        is(scalar(grep { !$_->{headers}{'idempotent-replayed'} } @good), 1, 'exactly one is not a replay');
        wait_settled($s, $a->{id}, 30) if $mode eq 'async';
        is($s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $c->{id}")->[0][0], 1,
            'one receipt');
        is(stock_of($s, $a->{id}), 8, 'stock 8');
    };
}

sub detail_status {
    my ($s, $id) = @_;
    my $r = $s->get("/api/v1/auctions/$id");
    return ($r->{json} || {})->{status} // "HTTP $r->{status}";
}

sub finish {
    my ($s, $mode) = @_;
    clock_reset($s);
    my ($code, $out) = $s->admin('audit');
    is($code, 0, "$mode: audit clean") or diag($out);
    invariant_ok($s, "$mode: every balance equals the sum of its ledger");
}

for my $mode (qw(sync async)) {
    my $s = test_stack(
        demo    => 1,
        workers => 8,
        conf    => {
            server   => { enable_test_routes => 'yes' },
            auctions => { claim_idle_ms => 500, consumers => 2, async => ($mode eq 'sync' ? 'no' : 'yes') },
        },
    );
    my @pool = make_users($s, 200, tag => "pool-$mode");
    fund($s, [ map { $_->{id} } @pool ], 100_000);
    scenarios($s, $mode, \@pool);
    finish($s, $mode);
    $s->stop;
}

# ---- 4. kill -9 a consumer while ~100 queued bids drain. A short test-only
# delay inside every transaction keeps the batch draining long enough for
# the kill to land mid-batch (and most likely mid-transaction).
my $s = test_stack(
    demo    => 1,
    workers => 8,
    conf    => {
        server   => { enable_test_routes => 'yes' },
        auctions => { claim_idle_ms => 500, consumers => 2, sweep_after_ms => 1000 },
        testing  => { tx_delay_ms => 40 },
    },
);
my @b = make_users($s, 100, tag => 'kill');
fund($s, [ map { $_->{id} } @b ], 1_000_000);
my $seller = new_user($s, tag => 'kill-seller', role => 'SELLER');

subtest 'async: a consumer killed mid-batch' => sub {
    my $a = create_auction($s, $seller->{token}, stock => 60, maxPerBuyer => 1, originPrice => 10_000,
        pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
    my @consumers = consumer_pids($s);
    is(scalar(@consumers), 2, 'two consumers') or diag("consumers: @consumers");
    clock_to($s, $a->{startsMs} + 5000);

    my $res = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 10_000, 1) } @b ]);
    is(scalar(grep { $_->{status} == 202 } @$res), 100, '100 bids queued (202)')
        or diag(join "\n", map { "$_->{status} $_->{body}" } grep { $_->{status} != 202 } @$res);
    # wait until the consumers have started on the batch, then kill one
    my $deadline = time + 30;
    my $pending;
    while (time < $deadline) {
        $pending = $s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $a->{id} AND status = 'PENDING'")->[0][0];
        last if $pending < 95;
        sleep 0.02;
    }
    my $victim = $consumers[0];
    ok(kill('KILL', $victim), "kill -9 consumer $victim");
    ok($pending > 0, "killed mid-batch ($pending of 100 still PENDING)");

    is(wait_settled($s, $a->{id}, 90), 0, 'after a bounded wait no receipt is PENDING');
    my $c = receipt_counts($s, $a->{id});
    is($c->{PURCHASED}, 60, 'exactly 60 purchased');
    is($c->{'FAILED:OUT_OF_STOCK'}, 40, 'exactly 40 OUT_OF_STOCK');
    is($c->{FAILED}, 40, 'no other failure');
    is(stock_of($s, $a->{id}), 60 - $c->{units}, 'stock = initial - purchased units');
    is(stock_of($s, $a->{id}), 0, 'stock 0');
    my $rows = $s->sql("SELECT COUNT(*) FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
        . " WHERE r.auction_id = $a->{id} AND l.kind LIKE 'AUCTION%'")->[0][0];
    is($rows, 2 * $c->{PURCHASED}, 'ledger rows = 2 x purchased: each bid applied exactly once');
    is_deeply($s->sql("SELECT r.id FROM receipts r JOIN point_ledger l ON l.ref_id = r.id AND l.kind LIKE 'AUCTION%'"
        . " WHERE r.auction_id = $a->{id} GROUP BY r.id HAVING COUNT(*) <> 2"), [], 'no receipt with other than 2 rows');
    is(balance_of($s, $seller->{id}), 600_000, 'seller credited exactly 60 x 10,000');

    # every stream entry acknowledged (bounded: the last ack follows the commit)
    $deadline = time + 30;
    my $xp;
    while (time < $deadline) {
        ($xp) = split /\n/, $s->redis('XPENDING', 'bids', 'bidders');
        last if defined $xp && $xp eq '0';
        sleep 0.1;
    }
    is($xp, '0', 'no stream entry left unacknowledged');

    # the master respawns the consumer
    $deadline = time + 30;
    my @now;
    while (time < $deadline) {
        @now = consumer_pids($s);
        last if @now == 2 && !grep { $_ == $victim } @now;
        sleep 0.1;
    }
    is(scalar(@now), 2, 'two consumers again');
    ok(!grep({ $_ == $victim } @now), 'the killed one was replaced') or diag("now: @now");

    # and the replacement works
    my $a2 = create_auction($s, $seller->{token}, stock => 5, maxPerBuyer => 1, originPrice => 10_000,
        pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
    clock_to($s, $a2->{startsMs} + 1000);
    my $res2 = concurrent($s, [ map { bid_req($a2->{id}, $_->{token}, 10_000, 1) } @b[0 .. 4] ]);
    is(wait_settled($s, $a2->{id}, 60), 0, 'a new batch settles');
    is(receipt_counts($s, $a2->{id})->{PURCHASED}, 5, '... all 5 purchased');
};

# ---- Redis restarts with bids queued: the stream (and the worker
# connections) are lost; the receipts left PENDING in MariaDB are applied by
# the consumers' sweeper (sweep_after_ms = 1000 here), exactly once. Once on
# the real clock, once with the test clock a day ahead.
for my $case ([ 'real clock', 0 ], [ 'test clock a day ahead', 86_400_000 ]) {
    my ($name, $ahead) = @$case;
    subtest "async: Redis restarts with bids queued ($name)" => sub {
        # an auction running now on the chosen clock
        my $start = (int((Time::HiRes::time() * 1000 + $ahead) / 1000) + 3) * 1000;
        my $a = create_auction($s, $seller->{token}, startsMs => $start, minutes => 1, stock => 40, maxPerBuyer => 1,
            originPrice => 10_000, pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
        if ($ahead) {
            clock_to($s, $start + 500);
        } else {
            clock_reset($s);
            sleep 0.05 while Time::HiRes::time() * 1000 < $start + 500;
        }
        my $res = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 10_000, 1) } @b[0 .. 59] ]);
        is(scalar(grep { $_->{status} == 202 } @$res), 60, '60 bids queued (202)');
        $s->stop_redis;
        $s->start_redis;
        # bids right after the restart: each worker's first Redis command
        # finds its connection dead
        my $res2 = concurrent($s, [ map { bid_req($a->{id}, $_->{token}, 10_000, 1) } @b[60 .. 69] ]);
        # A worker whose Redis is marked degraded applies the bid in the
        # request instead of queueing it, without locks (201 with the final
        # receipt, 409 OUT_OF_STOCK, or a retryable 503 when the consumers
        # keep moving the auction's version under it).
        my $code = sub { ($_[0]{json} || {})->{code} // '' };
        my @odd = grep { !($_->{status} == 202 || ($_->{status} == 201 && (($_->{json} || {})->{status} // '') eq 'PURCHASED')
                             || ($_->{status} == 409 && $code->($_) eq 'OUT_OF_STOCK')
                             || ($_->{status} == 503 && $code->($_) =~ /^(CONFLICT_RETRY_EXHAUSTED|LOCK_TIMEOUT)$/)) } @$res2;
        is(scalar(@odd), 0, '10 more bids right after the restart: 202, or (applied at once) 201 / 409 OUT_OF_STOCK / 503')
            or diag(join "\n", map { "$_->{status} $_->{body}" } @odd);
        my @busy = grep { $_->{status} == 503 } @$res2;
        note(scalar(grep { $_->{status} =~ /^(201|409|503)$/ } @$res2) . ' of 10 applied synchronously while Redis was degraded, '
            . scalar(@busy) . ' of them 503');
        my $left = wait_settled($s, $a->{id}, 30);
        is($left, 0, 'after a bounded wait no receipt is PENDING')
            or diag("$left receipts still PENDING: " . join(' ', map { $_->[0] } @{ $s->sql(
                "SELECT uuid FROM receipts WHERE auction_id = $a->{id} AND status = 'PENDING' LIMIT 5") }));
        my $c = receipt_counts($s, $a->{id});
        is($c->{PURCHASED} + $c->{PENDING}, 40 - stock_of($s, $a->{id}) + $c->{PENDING}, 'stock = 40 - purchased');
        is($c->{PURCHASED}, 40, 'exactly 40 purchased') if $left == 0;
        my $sync_refused = grep { $_->{status} == 409 } @$res2;
        is(($c->{'FAILED:OUT_OF_STOCK'} // 0) + $sync_refused, 30 - @busy, 'exactly 30 OUT_OF_STOCK (less the 503s)') if $left == 0;
        is($c->{PURCHASED} + $c->{FAILED} + $c->{PENDING}, 70 - @busy - $sync_refused, 'a receipt for every bid but the refused ones');
        my $rows = $s->sql("SELECT COUNT(*) FROM point_ledger l JOIN receipts r ON r.id = l.ref_id"
            . " WHERE r.auction_id = $a->{id} AND l.kind LIKE 'AUCTION%'")->[0][0];
        is($rows, 2 * $c->{PURCHASED}, 'ledger rows = 2 x purchased');
    };
}

finish($s, 'consumer kill');
$s->stop;

done_testing();
