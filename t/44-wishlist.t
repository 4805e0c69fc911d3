#!/usr/bin/perl
# The wishlist (찜): items with the current price and availability, adding
# the same product again is idempotent, 100 items at most, removal by
# product (and option); the whole wishlist ordered as one order through the
# order path, all or nothing: one item off sale refuses the order and
# changes nothing; fixed, one order of 4 lines that keeps the wishlist, or
# clears it with "clear": true; a wishlist changed between its read and the
# order refuses it. GET /api/v1/products/{id} counts the buyers who wish for
# it (from the cache, within its TTL).
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use Jangteo::Client qw(test_stack bearer jreq concurrent is_problem);
use Jangteo::Orders qw(make_users make_admin add_product add_option snapshot order_invariants_ok scalar_sql);

my $s = test_stack(workers => 4, conf => { lock => { wait_ms => 30000 } });
my $users = make_users($s, 8, tag => 'w44', balance => 1_000_000);
my ($alice, $bob, $carol, $admin) = @$users;
make_admin($s, $admin);

my %SHIP = (recipient => '김찜하', phone => '010-3333-4444', zipCode => '04524', address => '서울시 중구 찜로 4');
sub wl { jreq($s, 'GET', "/api/v1/users/$_[0]{id}/wishlist", $_[1] // $_[0]{token}) }
sub wish {
    my ($u, $pid, %o) = @_;
    return jreq($s, 'PUT', "/api/v1/users/$u->{id}/wishlist/items", $o{token} // $u->{token},
        { productId => 0 + $pid, (defined $o{option} ? (optionId => 0 + $o{option}) : ()),
          (defined $o{quantity} ? (quantity => 0 + $o{quantity}) : ()) });
}
sub unwish {
    my ($u, $pid, $oid) = @_;
    return jreq($s, 'DELETE', "/api/v1/users/$u->{id}/wishlist/items/$pid" . (defined $oid ? "?optionId=$oid" : ''), $u->{token});
}
sub order_all {
    my ($u, %o) = @_;
    my %b = (shipping => {%SHIP});
    $b{clear} = $o{clear} if exists $o{clear};
    $b{expectedTotal} = $o{expectedTotal} if exists $o{expectedTotal};
    return jreq($s, 'POST', "/api/v1/users/$u->{id}/wishlist/order", $o{token} // $u->{token}, \%b,
        ($o{key} ? ('Idempotency-Key' => $o{key}) : ()));
}
sub rows_of { $s->sql("SELECT product_id, option_id, quantity FROM wishlist_items WHERE user_id = $_[0]{id} ORDER BY id") }
sub stock { scalar_sql($s, "SELECT stock FROM products WHERE id = $_[0]") }
my $seq = 0;
sub key { sprintf('w44-%d-%d-%d', $$, time, ++$seq) }

my $p1 = add_product($s, '찜 상품 하나', 5_000, 30);
my $p2 = add_product($s, '찜 상품 둘', 6_000, 30);
my $p3 = add_product($s, '찜 상품 셋', 7_000, 30);
my $p4 = add_product($s, '찜 옷', 10_000, 0);
my $o4 = add_option($s, $p4, '파랑', 500, 30);
my $o4b = add_option($s, $p4, '빨강', 0, 30);

# ---------------------------------------------------------------- the list itself
{
    is(wl($alice)->{body}, '{"items":[],"itemsTotal":0,"shippingFee":0,"total":0}', 'a new wishlist: empty');
    my $r = wish($alice, $p1);
    is($r->{status}, 200, 'wish for a product: 200') or diag($r->{body});
    is($r->{json}{items}[0]{quantity}, 1, 'the quantity defaults to 1');
    my $again = wish($alice, $p1);
    is($again->{status}, 200, 'the same product again: 200');
    is_deeply(rows_of($alice), [ [ $p1, 0, 1 ] ], 'adding it again is idempotent: one item, quantity 1');
    is(wish($alice, $p1, quantity => 2)->{json}{items}[0]{quantity}, 2, 'a quantity updates it: 2');
    wish($alice, $p2);
    wish($alice, $p3);
    wish($alice, $p4, option => $o4);
    $r = wl($alice);
    is_deeply([ map { [ @{$_}{qw(productId optionId name unitPrice quantity lineTotal available stock)} ] } @{ $r->{json}{items} } ], [
        [ $p1, undef, '찜 상품 하나', 5_000, 2, 10_000, JSON::PP::true, 30 ],
        [ $p2, undef, '찜 상품 둘', 6_000, 1, 6_000, JSON::PP::true, 30 ],
        [ $p3, undef, '찜 상품 셋', 7_000, 1, 7_000, JSON::PP::true, 30 ],
        [ $p4, $o4, '찜 옷 / 파랑', 10_500, 1, 10_500, JSON::PP::true, 30 ],
    ], 'four items with the current price (10,000 + 500 for the option) and availability');
    is_deeply([ @{ $r->{json} }{qw(itemsTotal shippingFee total)} ], [ 33_500, 0, 33_500 ], 'totals: 33,500, free shipping');
    $s->sql("UPDATE products SET price = 5500, version = version + 1 WHERE id = $p1");
    is(wl($alice)->{json}{items}[0]{unitPrice}, 5_500, 'a price change shows at once');
    $s->sql("UPDATE products SET price = 5000, version = version + 1 WHERE id = $p1");

    is_problem(wish($alice, $p4), 400, 'INVALID_REQUEST', 'a product with options needs one');
    is_problem(wish($alice, 99_999_999), 404, 'PRODUCT_NOT_FOUND', 'an unknown product: 404');
    is_problem(wish($alice, $p4, option => 99_999_999), 404, 'OPTION_NOT_FOUND', 'an unknown option: 404');
    is_problem(wish($alice, $p1, quantity => 0), 400, 'INVALID_REQUEST', 'quantity 0: 400 (the wishlist removes by DELETE)');
    is_problem(wl($alice, $bob->{token}), 404, 'NOT_FOUND', "another buyer's wishlist: 404");
    is_problem(wish($alice, $p2, token => $bob->{token}), 404, 'NOT_FOUND', "PUT into another buyer's wishlist: 404");
    is_problem(order_all($alice, token => $bob->{token}), 404, 'NOT_FOUND', "ordering another buyer's wishlist: 404");
    is(scalar @{ rows_of($alice) }, 4, 'still four items');

    # removal by product, and by product and option
    wish($bob, $p4, option => $o4);
    wish($bob, $p4, option => $o4b);
    is(unwish($bob, $p4, $o4)->{status}, 204, 'DELETE by product and ?optionId=: 204');
    is_deeply(rows_of($bob), [ [ $p4, $o4b, 1 ] ], 'only that option went');
    is_problem(unwish($bob, $p4, $o4), 404, 'WISHLIST_ITEM_NOT_FOUND', 'and again: 404');
    is_problem(unwish($bob, $p4), 404, 'WISHLIST_ITEM_NOT_FOUND', 'the product without its option: not an item');
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$bob->{id}/wishlist/items/$p4?optionId=x", $bob->{token}), 400,
        'INVALID_REQUEST', '?optionId=x: 400');
    is(unwish($bob, $p4, $o4b)->{status}, 204, 'the last one');
    is_problem(order_all($bob), 409, 'WISHLIST_EMPTY', 'ordering an empty wishlist: 409 WISHLIST_EMPTY');

    # 100 at most; an order has 50 lines at most
    my $many = $s->sql(join(';', map { "INSERT INTO products (name, price, stock) VALUES ('찜 채우기 $_', 100, 5)" } 1 .. 100)
        . "; SELECT id FROM products WHERE name LIKE '찜 채우기 %' ORDER BY id");
    my $u = $users->[4];
    my $ok = grep { $_ == 200 } map { wish($u, $_->[0])->{status} } @{$many}[ 0 .. 99 ];
    is($ok, 100, '100 items');
    is_problem(wish($u, $p1), 409, 'WISHLIST_FULL', 'a 101st: 409 WISHLIST_FULL');
    is(wish($u, $many->[0][0], quantity => 3)->{status}, 200, 'a full wishlist still updates an item it has');
    my $before = snapshot($s);
    is_problem(order_all($u), 400, 'INVALID_REQUEST', 'ordering 100 items at once: 400 (an order has at most 50 lines)');
    is(snapshot($s), $before, 'and nothing moved');
}

# ---------------------------------------------------------------- one item off sale, fixed, kept or cleared
{
    $s->sql("UPDATE products SET sale_ends_at = NOW(6) - INTERVAL 1 MINUTE WHERE id = $p3");
    is(wl($alice)->{json}{items}[2]{available}, JSON::PP::false, 'the third item is off sale: not available');
    my $rows = rows_of($alice);
    my $before = snapshot($s);
    my $r = order_all($alice, key => key());
    is_problem($r, 409, 'SALE_ENDED', 'a wishlist of 4, one off sale: 409 SALE_ENDED');
    is(snapshot($s), $before, 'no order, no stock or balance moved');
    is_deeply(rows_of($alice), $rows, 'the wishlist is unchanged');

    my $fix = jreq($s, 'PATCH', "/api/v1/products/$p3", $admin->{token}, { saleEndsAt => undef });
    is($fix->{status}, 200, 'the sale is reopened (PATCH saleEndsAt: null)') or diag($fix->{body});
    my $k = key();
    $r = order_all($alice, key => $k, expectedTotal => 33_500);
    is($r->{status}, 201, 'fixed: the wishlist is ordered: 201') or diag($r->{body});
    is(scalar @{ $r->{json}{items} || [] }, 4, 'one order with 4 lines');
    is_deeply([ map { [ $_->{productId}, $_->{quantity}, $_->{lineTotal} ] } @{ $r->{json}{items} } ],
        [ [ $p1, 2, 10_000 ], [ $p2, 1, 6_000 ], [ $p3, 1, 7_000 ], [ $p4, 1, 10_500 ] ], 'the lines as wished');
    is_deeply([ @{ $r->{json} }{qw(itemsTotal shippingFee total balance)} ], [ 33_500, 0, 33_500, 966_500 ],
        '33,500, free shipping, balance 966,500');
    is_deeply(rows_of($alice), $rows, 'the wishlist is kept');
    is(stock($p1), 28, 'stock taken: 30 -> 28');
    my $again = order_all($alice, key => $k, expectedTotal => 33_500);
    is($again->{headers}{'idempotent-replayed'}, 'true', 'the same key: a replay');
    is($again->{body}, $r->{body}, 'of the same bytes');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $alice->{id}"), 1, 'one order');

    $r = order_all($alice, clear => JSON::PP::true);
    is($r->{status}, 201, 'ordered again with "clear": true: 201') or diag($r->{body});
    is(scalar @{ $r->{json}{items} || [] }, 4, 'the same 4 lines');
    is_deeply(rows_of($alice), [], 'and the wishlist is cleared');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $alice->{id}"), 2, 'two orders');
    is_problem(order_all($alice, clear => 'yes'), 400, 'INVALID_REQUEST', '"clear": "yes": 400');
}

# ---------------------------------------------------------------- a refused order that would have cleared
{
    my $p = add_product($s, '찜 모자람', 1_000, 1);
    wish($carol, $p, quantity => 2);
    wish($carol, $p1);
    my $rows = rows_of($carol);
    my $before = snapshot($s);
    is_problem(order_all($carol, clear => JSON::PP::true), 409, 'OUT_OF_STOCK', 'with "clear", but one item is short: 409');
    is_deeply(rows_of($carol), $rows, 'the wishlist is whole: the clearing rolled back with the order');
    is(snapshot($s), $before, 'and nothing else moved');
}

# ---------------------------------------------------------------- the wishlist changes between its read and the order
# (the buyer's balance lock held from outside: the order reads the wishlist
# and prices it, then waits; meanwhile a PUT commits, then the lock goes)
sub while_it_waits {
    my ($u, $change, $clear) = @_;
    my $lock = "lock:balance:$u->{id}";
    $s->redis('set', $lock, 'held-by-the-test', 'PX', 20000) eq 'OK' or BAIL_OUT('cannot hold the lock');
    return concurrent($s, [
        [ 'POST', "/api/v1/users/$u->{id}/wishlist/order", bearer($u->{token}), { shipping => {%SHIP}, clear => $clear } ],
        [ 'PUT', "/api/v1/users/$u->{id}/wishlist/items", bearer($u->{token}), $change ] ],
        stagger => 0.5, on_answer => sub { $s->redis('del', $lock) if $_[0] == 1 });
}
for my $clear (JSON::PP::false, JSON::PP::true) {
    my $how = $clear ? 'clearing' : 'keeping';
    my $u = $users->[ $clear ? 6 : 5 ];
    wish($u, $p2);
    wish($u, $p3);
    my $before = snapshot($s);
    my $res = while_it_waits($u, { productId => 0 + $p2, quantity => 2 }, $clear);
    is($res->[1]{status}, 200, "$how: an item's quantity is set while the order waits") or diag($res->[1]{body});
    is_problem($res->[0], 409, 'WISHLIST_CHANGED', "$how: the order then finds the wishlist changed: 409 WISHLIST_CHANGED");
    is(snapshot($s), $before, "$how: nothing moved");
    is_deeply(rows_of($u), [ [ $p2, 0, 2 ], [ $p3, 0, 1 ] ], "$how: the wishlist is as the PUT left it");
    $res = while_it_waits($u, { productId => 0 + $p1 }, $clear);
    is($res->[1]{status}, 200, "$how: an item is added while the order waits") or diag($res->[1]{body});
    is($res->[0]{status}, 201, "$how: the order goes on with the items it read") or diag($res->[0]{body});
    is_deeply([ map { [ $_->{productId}, $_->{quantity} ] } @{ $res->[0]{json}{items} || [] } ], [ [ $p2, 2 ], [ $p3, 1 ] ],
        "$how: exactly those, as they were set");
    is_deeply(rows_of($u), $clear ? [ [ $p1, 0, 1 ] ] : [ [ $p2, 0, 2 ], [ $p3, 0, 1 ], [ $p1, 0, 1 ] ],
        $clear ? 'clearing: the items ordered are gone, the one added meanwhile stays'
               : 'keeping: all three are on the wishlist');
}

# ---------------------------------------------------------------- wishCount
{
    my $p = add_product($s, '모두가 찜한 상품', 3_000, 10);
    my $q = add_product($s, '옵션 여럿', 3_000, 0);
    my $qa = add_option($s, $q, 'A', 0, 5);
    my $qb = add_option($s, $q, 'B', 0, 5);
    is($s->get("/api/v1/products/$p")->{json}{wishCount}, 0, 'wishCount 0');
    wish($_, $p) for @{$users}[ 0 .. 2 ];
    wish($users->[0], $q, option => $qa);
    wish($users->[0], $q, option => $qb);
    wish($users->[1], $q, option => $qb);
    sleep(1.2);    # past [catalog] cache_ttl_ms (1 s): the count may lag by that much, no more
    is($s->get("/api/v1/products/$p")->{json}{wishCount}, 3, 'three buyers wish for it: 3');
    is($s->get("/api/v1/products/$q")->{json}{wishCount}, 2, 'two buyers wish for options of the other (one for two): 2');
    unwish($users->[2], $p);
    sleep(1.2);
    is($s->get("/api/v1/products/$p")->{json}{wishCount}, 2, 'one removes it: 2');

    # the count is kept by the wishlist's writes (sql/015): a buyer is one
    # wisher however many options, until the last goes; an order with
    # "clear" counts too, and so does a crowd at once
    my $wishers = sub { scalar_sql($s, "SELECT COALESCE((SELECT wishers FROM product_wishes WHERE product_id = $_[0]), 0)") };
    unwish($users->[0], $q, $qa);
    is($wishers->($q), 2, 'one of her two options removed: still 2 wishers of the other');
    unwish($users->[0], $q, $qb);
    is($wishers->($q), 1, 'her last option removed: 1');
    my $crowd = make_users($s, 30, tag => 'w44c', balance => 1_000_000);
    my $res = concurrent($s, [ map { [ 'PUT', "/api/v1/users/$_->{id}/wishlist/items", bearer($_->{token}),
        { productId => 0 + $p } ] } @$crowd ]);
    is(scalar(grep { $_->{status} == 200 } @$res), 30, '30 buyers wish for it at once: 30 x 200');
    is($wishers->($p), 32, '... and it has 2 + 30 = 32 wishers');
    wish($crowd->[0], $q, option => $qa);
    is(unwish($crowd->[0], $p)->{status}, 204, 'one removes both of hers');
    is(unwish($crowd->[0], $q, $qa)->{status}, 204, '...');
    is($wishers->($p), 31, '... 31 wishers of the first');
    is($wishers->($q), 1, '... and the other is back at 1');
    wish($crowd->[1], $q, option => $qa);
    my $r = jreq($s, 'POST', "/api/v1/users/$crowd->[1]{id}/wishlist/order", $crowd->[1]{token},
        { shipping => {%SHIP}, clear => JSON::PP::true });
    is($r->{status}, 201, 'another orders hers with "clear"') or diag($r->{body});
    is($wishers->($p), 30, '... 30 wishers of the first');
    is($wishers->($q), 1, '... the other still 1');
    sleep(1.2);
    is($s->get("/api/v1/products/$p")->{json}{wishCount}, 30, 'and the product detail says 30');
    # (this test's products are made in SQL without their INITIAL stock
    # movements, so only the audit's wish_count line is this test's)
    my (undef, $out) = $s->admin('audit');
    like($out, qr/^audit: wish_count\s+ok\s+checked \d+\s+violations 0\b/m, 'the audit: every wishCount agrees with the wishlists')
        or diag($out);
}

order_invariants_ok($s);
$s->stop;
done_testing;
