# Write-path defects found in review (issue 12), each proven by outcome:
#  1. a synchronous bid whose attempt inserted its receipt and then
#     conflicted must not answer 201 for a receipt that was rolled back;
#  2. an order on a product's option is ordered against a change of the
#     product itself (price, deletion) by a fence in MariaDB, not only by a
#     lock that happens to share a name;
#  4. a committed cancel or catalog write answers from what its transaction
#     knew, even when the database goes away right after COMMIT;
#  6. past the prepared-statement cache, statements are closed, not leaked;
#  7. a money- or stock-moving body with a member this version does not
#     know is refused whole (400 naming it), never half-understood;
#  8. a keyed request refused for a business reason whose look-up for a
#     same-key commit fails answers 503 (retry with the key), never the
#     refusal: a same-key transaction (a combined batch) may be committing.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack login bearer concurrent is_problem jreq);
use Jangteo::Orders qw(make_users add_product add_option order_body place_order tally scalar_sql
    snapshot order_invariants_ok);
use Jangteo::Auctions qw(clock_to clock_reset create_auction fund bid_req wait_settled);

my $JSON = JSON::PP->new->utf8->canonical;
sub show { join(', ', map { "$_ => $_[0]{$_}" } sort keys %{ $_[0] }) }

# ---------------------------------------------------------------- 1. sync bids under conflicts
{
    my $s = test_stack(workers => 8, conf => {
        server   => { enable_test_routes => 'yes' },
        auctions => { async => 'no', consumers => 0 },
        lock     => { lease_ms => 1, wait_ms => 10_000 },
        tx       => { max_attempts => 100, deadline_ms => 30_000 },
        testing  => { tx_delay_ms => 30 },
    });
    my ($seller) = @{ make_users($s, 1, tag => 's35') };
    $s->sql("UPDATE users SET role = 'SELLER' WHERE id = $seller->{id}");
    $s->auth_changed;
    my $buyers = make_users($s, 40, tag => 'b35');
    fund($s, [ map { $_->{id} } @$buyers ], 100_000);
    # two auctions of one seller, running at the same time
    my $start = Jangteo::Auctions::next_window();
    my @a = map {
        create_auction($s, $seller->{token}, startsMs => $start, stock => 30, maxPerBuyer => 30, minutes => 10,
            pricePolicy => { type => 'CONSTANT', variationWidth => 100 })
    } 1 .. 2;
    clock_to($s, $a[0]{startsMs} + 1_000);
    my $res = concurrent($s, [ map {
        my $r = bid_req($a[ $_ % 2 ]{id}, $buyers->[$_]{token}, 10_000, 1);
        [ $r->[0], $r->[1], $r->[2], $r->[3] ]
    } 0 .. $#$buyers ]);
    my $t = tally($res);
    my @ok = grep { $_->{status} == 201 } @$res;
    ok(@ok > 0, '1: some synchronous bids succeed (' . show($t) . ')');
    my $found = 0;
    for my $i (0 .. $#$res) {
        next unless $res->[$i]{status} == 201;
        my $uuid = $res->[$i]{json}{receiptId} // '';
        my $g = $s->get("/api/v1/receipts/$uuid", bearer($buyers->[$i]{token}));
        $found++ if $g->{status} == 200 && ($g->{json}{status} // '') eq 'PURCHASED';
    }
    is($found, scalar(@ok), '1: every 201 names a receipt that GET finds PURCHASED');
    my $in = join(',', map { $_->{id} } @a);
    is(scalar_sql($s, "SELECT COUNT(*) FROM receipts WHERE auction_id IN ($in) AND status = 'PURCHASED'"),
        scalar(@ok), '1: as many PURCHASED receipts as 201s');
    is(scalar_sql($s, "SELECT COALESCE(SUM(delta), 0) FROM point_ledger WHERE user_id = $seller->{id} AND kind = 'AUCTION_SALE'"),
        10_000 * @ok, "1: the seller is credited for exactly the 201s");
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $seller->{id}"), 10_000 * @ok, '1: and holds exactly that');
    my $bad = grep { $_->{status} != 201 && $_->{status} != 503 } @$res;
    is($bad, 0, '1: every other answer is a 503 that changed nothing') or diag(show($t));
    order_invariants_ok($s);
    $s->stop;
}

# ---------------------------------------------------------------- 2. option orders vs product changes
{
    my $s = test_stack(workers => 4, conf => {
        server  => { enable_test_routes => 'yes' },
        testing => { tx_delay_ms => 3000 },
        lock    => { wait_ms => 20_000, lease_ms => 30_000 },
        tx      => { deadline_ms => 20_000 },
    });
    my $users = make_users($s, 4, tag => 'o35', balance => 1_000_000);
    my $n = 0;
    for my $redis ('up', 'down') {
        for my $change ([ 'a price change', 'price = 20000' ], [ 'a deletion', 'deleted_at = NOW(6)' ]) {
            my ($what, $set) = @$change;
            my $u = $users->[ $n++ ];
            my $p = add_product($s, "옵션 상품 $n", 10_000, 0);
            my $o = add_option($s, $p, '빨강', 500, 10);
            $s->stop_redis if $redis eq 'down' && $s->_alive('redis');
            pipe(my $rd, my $wr) or die "pipe: $!";
            my $pid = fork() // die "fork: $!";
            if ($pid == 0) {
                close $rd;
                my $r = place_order($s, $u->{token}, order_body([ [ $p, 1, $o ] ]));
                print {$wr} $JSON->encode({ status => $r->{status}, body => $r->{body} });
                close $wr;
                _exit(0);
            }
            close $wr;
            sleep 0.8;    # the order is inside its transaction (3 s, test delay)
            # another writer changes the product; it may wait at most 1 s for a row lock
            my $changed = eval {
                $s->sql("SET SESSION innodb_lock_wait_timeout = 1; UPDATE products SET $set, version = version + 1 WHERE id = $p");
                1;
            } ? 1 : 0;
            my $ans = do { local $/; <$rd> };
            waitpid($pid, 0);
            my $r = eval { $JSON->decode($ans) } || { status => 0, body => $ans // '' };
            my $j = eval { $JSON->decode($r->{body}) } || {};
            my $stale = $r->{status} == 201
                && ($what eq 'a deletion' || ($j->{items}[0]{unitPrice} // 0) == 10_500);
            ok(!($changed && $stale),
                "2 (Redis $redis): $what that committed during an option order's transaction is not followed by that order at the old state")
                or diag("the change committed; then the order answered $r->{status}: $r->{body}");
            ok($r->{status} == 201 || $r->{status} == 409 || $r->{status} == 404,
                "2 (Redis $redis, $what): the order got an answer ($r->{status})") or diag($r->{body});
            my $paid = scalar_sql($s, "SELECT COALESCE(SUM(i.unit_price), 0) FROM order_items i WHERE i.option_id = $o");
            my $now_price = scalar_sql($s, "SELECT price + 500 FROM products WHERE id = $p");
            ok(!$changed || $paid == 0 || $paid == $now_price,
                "2 (Redis $redis, $what): whatever committed, the order was priced by the product as it then stood");
        }
    }
    $s->start_redis unless $s->_alive('redis');
    order_invariants_ok($s);
    $s->stop;
}

# ---------------------------------------------------------------- 4. answers after COMMIT
{
    my $s = test_stack(demo => 1, workers => 2, conf => {
        server  => { enable_test_routes => 'yes' },
        testing => { fail_after_commit => 'yes' },
    });
    my $admin = login($s, 'admin@jangteo.test', 'jangteo-admin-1234');
    my ($u) = @{ make_users($s, 1, tag => 'c35', balance => 100_000) };
    my $p = add_product($s, '취소 상품', 20_000, 5);
    my $o = place_order($s, $u->{token}, order_body([ [ $p, 1 ] ]));
    is($o->{status}, 201, '4: an order (nothing is read after its COMMIT)') or diag($o->{body});
    my $oid = $o->{json}{orderId} // 0;
    my $c = $s->post_json("/api/v1/orders/$oid/cancel", {}, bearer($u->{token}));
    is($c->{status}, 200, '4: a committed cancel answers 200 though the database went away after COMMIT') or diag($c->{body});
    is($c->{json}{status} // '', 'CANCELLED', '4: ... with the order as it now stands');
    is(scalar_sql($s, "SELECT status FROM orders WHERE id = $oid"), 'CANCELLED', '4: ... and it is cancelled');
    is(scalar_sql($s, "SELECT COUNT(*) FROM point_ledger WHERE ref_id = $oid AND kind = 'ORDER_REFUND'"), 1, '4: ... refunded once');

    my $h = { %{ bearer($admin) }, 'Content-Type' => 'application/json' };
    my $cr = $s->request('POST', '/api/v1/products', $h, $JSON->encode({ name => '새 상품', price => 7_000, stock => 3 }));
    is($cr->{status}, 201, '4: a committed create answers 201') or diag($cr->{body});
    my $np = $cr->{json}{id} // $cr->{json}{productId} // 0;
    ok($np > 0 && scalar_sql($s, "SELECT COUNT(*) FROM products WHERE id = $np") == 1, '4: ... with the id of the row it made');
    my $pa = $s->request('PATCH', "/api/v1/products/$p", $h, $JSON->encode({ price => 21_000 }));
    is($pa->{status}, 200, '4: a committed PATCH answers 200') or diag($pa->{body});
    is($pa->{json}{price} // 0, 21_000, '4: ... with the new price');
    my $rs = $s->request('POST', "/api/v1/products/$p/stock", $h, $JSON->encode({ delta => 2 }));
    is($rs->{status}, 200, '4: a committed restock answers 200') or diag($rs->{body});
    is($rs->{json}{stock} // -1, scalar_sql($s, "SELECT stock FROM products WHERE id = $p"), '4: ... with the stock it wrote');
    my $de = $s->request('DELETE', "/api/v1/products/$np", bearer($admin));
    is($de->{status}, 204, '4: a committed DELETE answers 204') or diag($de->{body});
    order_invariants_ok($s);
    $s->stop;
}

# ---------------------------------------------------------------- 6. past the statement cache
{
    my $s = test_stack(workers => 2, conf => { mariadb => { statement_cache => 4 } });
    my $users = make_users($s, 2, tag => 'p35', balance => 10_000_000);
    my $p = add_product($s, '캐시 밖 상품', 1_000, 1_000);
    my $stmts = sub { ($s->sql("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")->[0] // [])->[1] // -1 };
    place_order($s, $_->{token}, order_body([ [ $p, 1 ] ])) for @$users;   # warm every worker
    my $before = $stmts->();
    for my $i (1 .. 60) {
        my $u = $users->[ $i % 2 ];
        place_order($s, $u->{token}, order_body([ [ $p, 1 ] ]));
        $s->get("/api/v1/users/$u->{id}/orders", bearer($u->{token}));
        $s->get("/api/v1/products/$p");
    }
    my $after = $stmts->();
    # every process of the daemon holds one connection (workers, and the
    # bid consumers, scheduler, relay and event consumers beside them)
    my $conns = scalar_sql($s, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'jangteo_app'");
    cmp_ok($after, '<=', $conns * 4 + 4, "6: 180 requests with a cache of 4 statements: the server holds at most the cached ones, 4 per connection ($conns; $before -> $after)");
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders"), 62, '6: and every order went through');
    $s->stop;
}

# ---------------------------------------------------------------- 7. unknown members
{
    my $s = test_stack(demo => 1, workers => 2, conf => { server => { enable_test_routes => 'yes' } });
    my $admin = login($s, 'admin@jangteo.test', 'jangteo-admin-1234');
    my ($u) = @{ make_users($s, 1, tag => 'u35', balance => 100_000) };
    my $p = add_product($s, '알 수 없는 필드', 10_000, 5);
    my $ok_order = order_body([ [ $p, 1 ] ]);
    my @cases = (
        [ 'order: payment.installments', 'POST', '/api/v1/orders', $u->{token},
          { %$ok_order, payment => { method => 'CARD', cardCompany => 'NH', installments => 3 } }, qr/payment\.installments/ ],
        [ 'order: items[0].price', 'POST', '/api/v1/orders', $u->{token},
          { %$ok_order, items => [ { productId => 0 + $p, quantity => 1, price => 1 } ] }, qr/items\[0\]\.price/ ],
        [ 'order: shipping.email', 'POST', '/api/v1/orders', $u->{token},
          { %$ok_order, shipping => { %{ $ok_order->{shipping} }, email => 'x@example.com' } }, qr/shipping\.email/ ],
        [ 'charge: bonus', 'POST', "/api/v1/users/$u->{id}/charge", $u->{token}, { amount => 5_000, bonus => 500 }, qr/'bonus'/ ],
        [ 'restock: note', 'POST', "/api/v1/products/$p/stock", $admin, { delta => 1, note => 'x' }, qr/'note'/ ],
        [ 'product: color', 'POST', '/api/v1/products', $admin, { name => '상품', price => 1_000, stock => 1, color => 'red' }, qr/'color'/ ],
        [ 'product patch: colour', 'PATCH', "/api/v1/products/$p", $admin, { price => 1_000, colour => 'red' }, qr/'colour'/ ],
    );
    for my $c (@cases) {
        my ($name, $m, $path, $tok, $body, $names) = @$c;
        my $before = snapshot($s);
        my $r = jreq($s, $m, $path, $tok, $body, 'Idempotency-Key' => 'u35-' . ($name =~ s/\W+/-/gr) . "-$$");
        $r->{json} //= eval { $JSON->decode($r->{body}) };
        is_problem($r, 400, 'INVALID_REQUEST', "7: $name -> 400 INVALID_REQUEST");
        like($r->{json}{detail} // '', $names, "7: $name: the detail names the member");
        is(snapshot($s), $before, "7: $name: nothing changed");
    }
    # the same bodies without the stranger are taken
    my $r = jreq($s, 'POST', '/api/v1/orders', $u->{token}, $ok_order);
    is($r->{status}, 201, '7: the order without it -> 201') or diag($r->{body});
    $r = jreq($s, 'POST', "/api/v1/users/$u->{id}/charge", $u->{token}, { amount => 5_000 }, 'Idempotency-Key' => "u35-ok-$$");
    is($r->{status}, 200, '7: the charge without it -> 200') or diag($r->{body});
    $s->stop;
}

# ---------------------------------------------------------------- 8. the settle look-up fails
# A same-key transaction holds its idempotency row uncommitted (as a batch
# that took the order does while it commits); the request is refused as sold
# out; its look-up for a committed answer waits on that row, and is killed.
# Whether the other committed is then unknown: 503, and the retry with the
# key, once the other has rolled back, gets the true answer.
{
    my $s = test_stack(workers => 2);
    my ($u) = @{ make_users($s, 1, tag => 'k35', balance => 100_000) };
    my $p = add_product($s, '매진 상품', 1_000, 0);
    my $key = "settle35-$$";
    open(my $holder, '|-', $s->_mariadb_cmd, 'jangteo') or die "mariadb: $!";
    $holder->autoflush(1);
    print $holder "BEGIN; INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, status, body, ref_kind, ref_id,"
        . " expires_at) VALUES ($u->{id}, '$key', UNHEX(REPEAT('00', 32)), 201, '{}', 'ORDER', 0, NOW(6) + INTERVAL 1 DAY);\n";
    sleep 0.5;
    my $out = "${\ $s->dir}/settle35.answer";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = jreq($s, 'POST', '/api/v1/orders', $u->{token}, order_body([ [ $p, 1 ] ]), 'Idempotency-Key' => $key);
        open(my $f, '>', $out) or _exit(1);
        print $f "$r->{status} " . ($r->{json}{code} // '') . "\n";
        close $f;
        _exit(0);
    }
    my $killed = 0;
    for (1 .. 100) {   # at most 10 s for the look-up to start waiting
        my $rows = $s->sql("SELECT id FROM information_schema.processlist WHERE info LIKE '%idempotency_keys%LOCK IN SHARE MODE%'"
            . " AND info NOT LIKE '%processlist%'");
        if (@$rows) { $s->sql("KILL QUERY $rows->[0][0]"); $killed = 1; last }
        sleep 0.1;
    }
    ok($killed, '8: the refused request looks for a same-key commit, and waits on the uncommitted row');
    waitpid($pid, 0);
    open(my $f, '<', $out) or die "no answer: $!";
    chomp(my $ans = <$f> // '');
    is($ans, '503 DATABASE_UNAVAILABLE', '8: with the look-up killed: 503, not 409 OUT_OF_STOCK');
    print $holder "ROLLBACK;\n";
    close $holder;
    my $r = jreq($s, 'POST', '/api/v1/orders', $u->{token}, order_body([ [ $p, 1 ] ]), 'Idempotency-Key' => $key);
    is_problem($r, 409, 'OUT_OF_STOCK', '8: the retry with the key, nothing committed under it: 409 OUT_OF_STOCK');
    is(scalar_sql($s, "SELECT balance FROM users WHERE id = $u->{id}"), 100_000, '8: the balance is untouched');
    $s->stop;
}

done_testing;
