# A keyed retry always gets the committed answer (issue 12).
#
# The buyer's first request committed (the money moved), the answer was
# lost, and the app retries the identical request with the same
# Idempotency-Key after the world has changed: the sale closed, the price
# changed, the product was deleted, the stock ran out; the auction's price
# dropped, it sold out, it finished. Every retry must replay the first
# committed answer byte for byte, from Redis and from the durable row alike,
# and change nothing. And overlapping requests with one key, while Redis is
# down and the first one is still in its transaction, end with that one
# committed answer or 409 IDEMPOTENCY_IN_FLIGHT, never a business refusal.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack login bearer concurrent jreq);
use Jangteo::Orders qw(make_users set_balance add_product order_body place_order tally scalar_sql order_invariants_ok);
use Jangteo::Auctions qw(clock_to clock_reset create_auction fund bid bid_req wait_settled);

my $JSON = JSON::PP->new->utf8->canonical;
sub iso_utc { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(int $_[0])) }
sub show { join(', ', map { "$_ => $_[0]{$_}" } sort keys %{ $_[0] }) }

# ---------------------------------------------------------------- orders
{
    my $s = test_stack(demo => 1, workers => 4, conf => { server => { enable_test_routes => 'yes' } });
    my $admin = login($s, 'admin@jangteo.test', 'jangteo-admin-1234');
    my $users = make_users($s, 8, tag => 'k34', balance => 200_000);
    sub balance { scalar_sql($_[0], "SELECT balance FROM users WHERE id = $_[1]") }
    sub norders { scalar_sql($_[0], "SELECT COUNT(*) FROM orders WHERE user_id = $_[1]") }

    # name, what happens after the first order, the refusal a fresh key gets then
    my @changes = (
        [ 'the sale closes', sub {
            my ($p) = @_;
            return $s->request('PATCH', "/api/v1/products/$p", { %{ bearer($admin) }, 'Content-Type' => 'application/json' },
                $JSON->encode({ saleStartsAt => iso_utc(time - 7200), saleEndsAt => iso_utc(time - 1) }));
          }, 'SALE_ENDED' ],
        [ 'the price changes', sub {
            my ($p) = @_;
            return $s->request('PATCH', "/api/v1/products/$p", { %{ bearer($admin) }, 'Content-Type' => 'application/json' },
                $JSON->encode({ price => 31_000 }));
          }, 'PRICE_CHANGED' ],
        [ 'the product is deleted', sub {
            my ($p) = @_;
            return $s->request('DELETE', "/api/v1/products/$p", bearer($admin));
          }, 'PRODUCT_NOT_FOUND' ],
        [ 'its stock runs out', sub {
            my ($p) = @_;
            return place_order($s, $users->[7]{token}, order_body([ [ $p, 4 ] ]));
          }, 'OUT_OF_STOCK' ],
    );
    my $n = 0;
    for my $c (@changes) {
        my ($name, $change, $refusal) = @$c;
        my $u = $users->[ $n++ ];
        my $p = add_product($s, "재시도 상품 $n", 30_000, 5);
        my $body = order_body([ [ $p, 1 ] ], expectedTotal => 30_000);
        my $K = "k34-order-$n-$$";
        my $r1 = place_order($s, $u->{token}, $body, 'Idempotency-Key' => $K);
        is($r1->{status}, 201, "$name: the keyed order -> 201") or diag($r1->{body});
        my ($bal, $no) = (balance($s, $u->{id}), norders($s, $u->{id}));
        is($bal, 200_000 - 30_000, "$name: charged 30,000");

        my $cr = $change->($p);
        ok($cr->{status} >= 200 && $cr->{status} < 300, "$name: the change is made ($cr->{status})") or diag($cr->{body});
        my $fresh = place_order($s, $u->{token}, $body, 'Idempotency-Key' => "$K-fresh");
        is($fresh->{json}{code} // $fresh->{status}, $refusal, "$name: a new key is now refused with $refusal");

        for my $where ('Redis', 'the durable row') {
            $s->redis('FLUSHALL') if $where eq 'the durable row';
            my $r2 = place_order($s, $u->{token}, $body, 'Idempotency-Key' => $K);
            is($r2->{status}, 201, "$name: the retry (from $where) -> 201") or diag($r2->{body});
            is($r2->{body}, $r1->{body}, "$name: ... byte for byte the first answer");
            is($r2->{headers}{'idempotent-replayed'}, 'true', "$name: ... marked Idempotent-Replayed");
            is(balance($s, $u->{id}), $bal, "$name: ... the balance is unchanged");
            is(norders($s, $u->{id}), $no, "$name: ... no second order");
        }
    }

    # Nothing changed: from the durable row alone (Redis flushed), the retry
    # could commit a second order, and an order reads that row only when it
    # inserts its own (JT_WRITE_KEY_OPTIONAL_LOOKUP_LATE). It must still replay.
    {
        my $u = $users->[4];
        my $p = add_product($s, '재시도 상품 그대로', 30_000, 5);
        my $body = order_body([ [ $p, 1 ] ], expectedTotal => 30_000);
        my $K = "k34-order-same-$$";
        my $r1 = place_order($s, $u->{token}, $body, 'Idempotency-Key' => $K);
        is($r1->{status}, 201, 'nothing changes: the keyed order -> 201') or diag($r1->{body});
        my ($bal, $no) = (balance($s, $u->{id}), norders($s, $u->{id}));
        for my $round (1, 2) {
            $s->redis('FLUSHALL');
            my $r2 = place_order($s, $u->{token}, $body, 'Idempotency-Key' => $K);
            is($r2->{status}, 201, "nothing changes: retry $round from the durable row -> 201") or diag($r2->{body});
            is($r2->{body}, $r1->{body}, "nothing changes: ... byte for byte the first answer");
            is($r2->{headers}{'idempotent-replayed'}, 'true', 'nothing changes: ... marked Idempotent-Replayed');
            is(balance($s, $u->{id}), $bal, 'nothing changes: ... the balance is unchanged');
            is(norders($s, $u->{id}), $no, 'nothing changes: ... no second order');
            is(scalar_sql($s, "SELECT stock FROM products WHERE id = $p"), 4, 'nothing changes: ... one unit sold');
        }
    }
    order_invariants_ok($s);
    $s->stop;
}

# ---------------------------------------------------------------- bids, queued (202) and synchronous (201)
for my $mode ('async', 'sync') {
    my $s = test_stack(demo => 1, workers => 4, conf => {
        server => { enable_test_routes => 'yes' },
        auctions => { async => $mode eq 'async' ? 'yes' : 'no', consumers => 2, claim_idle_ms => 500 },
    });
    my $seller = login($s, 'seller@jangteo.test', 'jangteo-seller-1234');
    my $users = make_users($s, 6, tag => "k34$mode");
    fund($s, [ map { $_->{id} } @$users ], 1_000_000);
    my $want = $mode eq 'async' ? 202 : 201;
    my $ledger = sub { scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE user_id = $_[0]") };

    # name, what happens after the first bid (the clock is at start + 1 s), the refusal a fresh key gets then
    my @changes = (
        [ 'the price drops',        sub { my ($a) = @_; clock_to($s, $a->{startsMs} + 61_000) }, 'PRICE_MISMATCH' ],
        [ 'the auction sells out',  sub {
            my ($a, $price) = @_;
            my $r = bid($s, $a->{id}, $users->[5]{token}, $price, 4);
            die "sell-out bid: $r->{status} $r->{body}" unless $r->{status} == $want;
            wait_settled($s, $a->{id}, 60);
          }, 'OUT_OF_STOCK' ],
        [ 'the auction finishes',   sub { my ($a) = @_; clock_to($s, $a->{endsMs} + 1_000) }, 'AUCTION_NOT_RUNNING' ],
    );
    my $n = 0;
    for my $c (@changes) {
        my ($name, $change, $refusal) = @$c;
        my $u = $users->[ $n++ ];
        my $a = create_auction($s, $seller, stock => 5, maxPerBuyer => 5, minutes => 10, variationSeconds => 60,
            pricePolicy => { type => 'CONSTANT', variationWidth => 100 });
        clock_to($s, $a->{startsMs} + 1_000);
        my $K = "k34-bid-$mode-$n-$$";
        my $r1 = bid($s, $a->{id}, $u->{token}, 10_000, 1, $K);
        is($r1->{status}, $want, "$mode, $name: the keyed bid -> $want") or diag($r1->{body});
        is(wait_settled($s, $a->{id}, 60), 0, "$mode, $name: the bid is settled");
        my $rc = $s->sql("SELECT status FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $u->{id}");
        is(join(',', map { $_->[0] } @$rc), 'PURCHASED', "$mode, $name: one PURCHASED receipt");
        my ($bal, $nl) = (scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), $ledger->($u->{id}));
        is($bal, 1_000_000 - 10_000, "$mode, $name: paid 10,000");

        $change->($a, 10_000);
        my $fresh = bid($s, $a->{id}, $u->{token}, 10_000, 1, "$K-fresh");
        is($fresh->{json}{code} // $fresh->{status}, $refusal, "$mode, $name: a new key is now refused with $refusal");

        for my $where ('Redis', 'the durable row') {
            $s->redis('FLUSHALL') if $where eq 'the durable row';
            my $r2 = bid($s, $a->{id}, $u->{token}, 10_000, 1, $K);
            is($r2->{status}, $want, "$mode, $name: the retry (from $where) -> $want") or diag($r2->{body});
            is($r2->{body}, $r1->{body}, "$mode, $name: ... byte for byte the first answer");
            is($r2->{headers}{'idempotent-replayed'}, 'true', "$mode, $name: ... marked Idempotent-Replayed");
        }
        is(wait_settled($s, $a->{id}, 60), 0, "$mode, $name: nothing left pending");
        $rc = $s->sql("SELECT status FROM receipts WHERE auction_id = $a->{id} AND buyer_id = $u->{id}");
        is(join(',', map { $_->[0] } @$rc), 'PURCHASED', "$mode, $name: still one receipt, PURCHASED");
        is(scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), $bal, "$mode, $name: the balance is unchanged");
        is($ledger->($u->{id}), $nl, "$mode, $name: no ledger row added");
        clock_reset($s);
    }
    order_invariants_ok($s);
    $s->stop;
}

# ---------------------------------------------------------------- overlapping requests, Redis down
{
    my $s = test_stack(workers => 6, conf => {
        server  => { enable_test_routes => 'yes' },
        testing => { tx_delay_ms => 300 },
        lock    => { wait_ms => 10_000 },
        tx      => { max_attempts => 50, deadline_ms => 10_000 },
    });
    my ($u) = @{ make_users($s, 1, tag => 'k34o', balance => 30_000) };
    my $p = add_product($s, '한 번만 살 수 있는 상품', 30_000, 10);
    my $K = "k34-overlap-$$";
    my $req = [ 'POST', '/api/v1/orders', { %{ bearer($u->{token}) }, 'Idempotency-Key' => $K },
                order_body([ [ $p, 1 ] ]) ];
    $s->stop_redis;
    my $res = concurrent($s, [ ($req) x 5 ], stagger => 0.05);
    my $t = tally($res);
    my @created = grep { $_->{status} == 201 } @$res;
    my $other = grep { !($_->{status} == 201 || ($_->{status} == 409 && ($_->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT')) } @$res;
    is($other, 0, '5 overlapping sends, Redis down: every answer is 201 or 409 IDEMPOTENCY_IN_FLIGHT') or diag(show($t));
    ok(!$t->{'409 INSUFFICIENT_BALANCE'}, '... none is INSUFFICIENT_BALANCE') or diag(show($t));
    ok(@created >= 1, '... at least one 201') or diag(show($t));
    is(scalar(grep { $_->{body} eq $created[0]{body} } @created), scalar(@created), '... every 201 is the same answer');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}"), 1, '... exactly one order');
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), 0, '... charged once');
    is(scalar_sql($s, "SELECT stock FROM products WHERE id = $p"), 9, '... one unit sold');
    $s->start_redis;
    my $r = place_order($s, $u->{token}, $req->[3], 'Idempotency-Key' => $K);
    is($r->{status}, 201, 'the same request once Redis is back -> 201');
    is($r->{headers}{'idempotent-replayed'}, 'true', '... a replay');
    is($r->{body}, $created[0]{body}, '... of that one answer');
    order_invariants_ok($s);
    $s->stop;
}

done_testing;
