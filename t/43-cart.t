#!/usr/bin/perl
# The cart: lines priced at every read (never stored with a price), the
# order's shipping rule at 29,999 and 30,000, the owner's alone, and one-step
# checkout through the order path: a short line refuses the whole order and
# leaves cart, stock and balance as they were; a checkout empties the cart in
# the order's transaction (MariaDB keeps the truth: a Redis flush shows it);
# ten checkouts of one cart at once make one order (with the lock, and with
# Redis down on the version fence alone); a cart changed between its read
# and the order's transaction refuses the order; a crowd of 100 carts on
# stock 60 makes exactly 60 orders and leaves 40 carts whole.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;

use Jangteo::Client qw(test_stack bearer jreq concurrent is_problem);
use Jangteo::Orders qw(
    make_users make_admin set_balance add_product add_option snapshot order_invariants_ok scalar_sql
);

my %GENEROUS = (lock => { wait_ms => 30000 }, tx => { max_attempts => 100, deadline_ms => 20000 });
my $s = test_stack(workers => 8, conf => {%GENEROUS});
my $users = make_users($s, 112, tag => 'c43', balance => 1_000_000);
my ($alice, $bob, $admin) = @{$users}[ 0 .. 2 ];
make_admin($s, $admin);

my %SHIP = (recipient => '김장바', phone => '010-5555-6666', zipCode => '06236', address => '서울시 강남구 장바구니로 1');
sub cart     { jreq($s, 'GET', "/api/v1/users/$_[0]{id}/cart", $_[1] // $_[0]{token}) }
sub put_line {
    my ($u, $pid, $qty, $oid, $tok) = @_;
    return jreq($s, 'PUT', "/api/v1/users/$u->{id}/cart/items", $tok // $u->{token},
        { productId => 0 + $pid, quantity => 0 + $qty, (defined $oid ? (optionId => 0 + $oid) : ()) });
}
sub checkout {
    my ($u, %o) = @_;
    my %b = (shipping => {%SHIP});
    $b{expectedTotal} = $o{expectedTotal} if exists $o{expectedTotal};
    return jreq($s, 'POST', "/api/v1/users/$u->{id}/cart/checkout", $o{token} // $u->{token}, \%b,
        ($o{key} ? ('Idempotency-Key' => $o{key}) : ()));
}
sub checkout_req {
    my ($u, $key) = @_;
    return [ 'POST', "/api/v1/users/$u->{id}/cart/checkout", { %{ bearer($u->{token}) }, 'Idempotency-Key' => $key },
        { shipping => {%SHIP} } ];
}
sub rows_of { $s->sql("SELECT product_id, option_id, quantity FROM cart_items WHERE user_id = $_[0]{id} ORDER BY id") }
sub stock  { scalar_sql($s, "SELECT stock FROM products WHERE id = $_[0]") }
sub bal    { scalar_sql($s, "SELECT balance FROM users WHERE id = $_[0]{id}") }
sub show   { Jangteo::Orders::tally_text(Jangteo::Orders::tally($_[0])) }
my $seq = 0;
sub key { sprintf('c43-%d-%d-%d', $$, time, ++$seq) }

# ---------------------------------------------------------------- arithmetic: 29,999 and 30,000
my $pa = add_product($s, '장바구니 사과', 10_000, 20);
my $pb = add_product($s, '장바구니 배', 9_000, 20);
my $pc = add_product($s, '장바구니 셔츠', 8_000, 0);
my $oc = add_option($s, $pc, 'L', 2_999, 5);
add_option($s, $pc, 'S', 0, 5);
{
    is(cart($alice)->{body}, '{"lines":[],"itemsTotal":0,"shippingFee":0,"total":0}', 'a new cart: empty, costs nothing');
    my $r = put_line($alice, $pa, 1);
    is($r->{status}, 200, 'PUT a line: 200') or diag($r->{body});
    is(scalar @{ $r->{json}{lines} }, 1, 'and the answer is the cart with it');
    is(put_line($alice, $pb, 1)->{status}, 200, 'a second line');
    $r = put_line($alice, $pc, 1, $oc);
    is($r->{status}, 200, 'a third, by option (extra price 2,999)') or diag($r->{body});
    $r = cart($alice);
    is($r->{status}, 200, 'GET the cart');
    my @l = @{ $r->{json}{lines} };
    is_deeply([ map { delete $_->{lineId}; delete $_->{addedAt}; $_ } @l ], [
        { productId => 0 + $pa, optionId => undef, name => '장바구니 사과', unitPrice => 10_000, quantity => 1,
          lineTotal => 10_000, available => JSON::PP::true, stock => 20 },
        { productId => 0 + $pb, optionId => undef, name => '장바구니 배', unitPrice => 9_000, quantity => 1,
          lineTotal => 9_000, available => JSON::PP::true, stock => 20 },
        { productId => 0 + $pc, optionId => 0 + $oc, name => '장바구니 셔츠 / L', unitPrice => 10_999, quantity => 1,
          lineTotal => 10_999, available => JSON::PP::true, stock => 5 },
    ], 'three lines, priced now: 10,000 + 9,000 + (8,000 + 2,999)');
    is($r->{json}{itemsTotal}, 29_999, 'itemsTotal 29,999');
    is($r->{json}{shippingFee}, 3_000, 'below 30,000: shipping 3,000');
    is($r->{json}{total}, 32_999, 'total 32,999');

    my $adm = jreq($s, 'PATCH', "/api/v1/products/$pa", $admin->{token}, { price => 10_001 });
    is($adm->{status}, 200, 'the price of the first line changes: 10,001') or diag($adm->{body});
    $r = cart($alice);
    is($r->{json}{lines}[0]{unitPrice}, 10_001, 'the next GET shows the new price');
    is($r->{json}{itemsTotal}, 30_000, 'itemsTotal 30,000');
    is($r->{json}{shippingFee}, 0, 'at 30,000: free shipping');
    is($r->{json}{total}, 30_000, 'total 30,000');
    is_deeply($s->sql("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = 'jangteo'"
        . " AND table_name = 'cart_items' AND column_name LIKE '%price%'"), [ [0] ], 'cart_items has no price column');

    $r = put_line($alice, $pb, 3);
    is($r->{json}{lines}[1]{quantity}, 3, 'PUT again sets the quantity: 3');
    is($r->{json}{itemsTotal}, 48_000, 'itemsTotal 10,001 + 27,000 + 10,999 = 48,000');
    is(scalar @{ $r->{json}{lines} }, 3, 'still three lines');
    $r = put_line($alice, $pb, 0);
    is_deeply([ map { $_->{productId} } @{ $r->{json}{lines} } ], [ $pa, $pc ], 'quantity 0 removes the line');
    $r = put_line($alice, $pc, 6, $oc);
    is($r->{json}{lines}[1]{available}, JSON::PP::false, '6 of an option with stock 5: not available');
    is($r->{json}{lines}[1]{stock}, 5, 'and the stock says why');
    $s->sql("UPDATE products SET sale_ends_at = NOW(6) - INTERVAL 1 SECOND WHERE id = $pa");
    is(cart($alice)->{json}{lines}[0]{available}, JSON::PP::false, 'a product whose sale ended: not available');
    $s->sql("UPDATE products SET sale_ends_at = NULL WHERE id = $pa");

    # refusals, and whose cart it is
    is_problem(put_line($alice, $pc, 1), 400, 'INVALID_REQUEST', 'a product with options needs an option');
    is_problem(put_line($alice, 99_999_999, 1), 404, 'PRODUCT_NOT_FOUND', 'an unknown product: 404');
    is_problem(put_line($alice, $pc, 1, 99_999_999), 404, 'OPTION_NOT_FOUND', 'an unknown option: 404');
    is_problem(put_line($alice, $pa, 1, $oc), 404, 'OPTION_NOT_FOUND', "another product's option: 404");
    is_problem(put_line($alice, $pa, 1000), 400, 'INVALID_REQUEST', 'quantity 1,000: 400');
    is_problem(put_line($alice, $pa, -1), 400, 'INVALID_REQUEST', 'quantity -1: 400');
    my $before = cart($alice)->{body};
    is_problem(cart($alice, $bob->{token}), 404, 'NOT_FOUND', "another buyer's cart: 404");
    is_problem(put_line($alice, $pb, 1, undef, $bob->{token}), 404, 'NOT_FOUND', "PUT into another buyer's cart: 404");
    my $line = cart($alice)->{json}{lines}[0]{lineId};
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$alice->{id}/cart/items/$line", $bob->{token}), 404, 'NOT_FOUND',
        "DELETE from another buyer's cart: 404");
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$bob->{id}/cart/items/$line", $bob->{token}), 404, 'CART_ITEM_NOT_FOUND',
        "another buyer's lineId in one's own cart: 404");
    is_problem(checkout($alice, token => $bob->{token}), 404, 'NOT_FOUND', "checking out another buyer's cart: 404");
    is(cart($alice)->{body}, $before, 'none of that changed the cart');
    is(cart($alice, $admin->{token})->{body}, $before, 'an admin reads it');
    is_problem(jreq($s, 'GET', '/api/v1/users/99999999/cart', $admin->{token}), 404, 'USER_NOT_FOUND',
        "an admin and a user that does not exist: 404");

    # the 50-line cap
    my $many = $s->sql(join(';', map { "INSERT INTO products (name, price, stock) VALUES ('채우기 $_', 100, 5)" } 1 .. 49)
        . "; SELECT id FROM products WHERE name LIKE '채우기 %' ORDER BY id");
    my $u = $users->[3];
    my @st = map { put_line($u, $_->[0], 1)->{status} } @{$many}[ 0 .. 48 ];
    is(scalar(grep { $_ == 200 } @st), 49, '49 lines');
    is(put_line($u, $pa, 1)->{status}, 200, 'the 50th line');
    is_problem(put_line($u, $pb, 1), 409, 'CART_FULL', 'a 51st line: 409 CART_FULL');
    is(put_line($u, $pa, 2)->{status}, 200, 'a full cart still takes a new quantity for a line it has');
    is(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/cart", $u->{token})->{status}, 204, 'DELETE the whole cart: 204');
    is(scalar_sql($s, "SELECT COUNT(*) FROM cart_items WHERE user_id = $u->{id}"), 0, 'no line left');
    my $r2 = put_line($u, $pb, 2);
    my $lid = $r2->{json}{lines}[0]{lineId};
    is(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/cart/items/$lid", $u->{token})->{status}, 204, 'DELETE one line: 204');
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/cart/items/$lid", $u->{token}), 404, 'CART_ITEM_NOT_FOUND',
        'and again: 404');
    is_problem(checkout($u), 409, 'CART_EMPTY', 'checkout of an empty cart: 409 CART_EMPTY');
}

my $pfill = add_product($s, '넉넉한 상품', 9_000, 100_000);

# Ten checkouts of one cart at once, each with its own key; with Redis
# stopped (last in this file: workers take a while to find Redis again)
# the version fence alone decides.
sub ten_at_once {
    my ($name, $down) = @_;
    my $u = $users->[ 6 + $down ];
    my $p = add_product($s, "동시 결제 $down", 4_000, 100);
    put_line($u, $p, 2);
    put_line($u, $pfill, 1);
    $s->stop_redis if $down;
    my $res = concurrent($s, [ map { checkout_req($u, key()) } 1 .. 10 ]);
    my @ok = grep { $_->{status} == 201 } @$res;
    my $empty = grep { $_->{status} == 409 && ($_->{code} // '') eq 'CART_EMPTY' } @$res;
    is(scalar @ok, 1, "$name: 10 checkouts of one cart, each with its own key: exactly one 201") or diag(show($res));
    is($empty, 9, "$name: the nine others 409 CART_EMPTY") or diag(show($res));
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}"), 1, "$name: one order row");
    is(stock($p), 98, "$name: stock taken once");
    is(bal($u), 1_000_000 - 17_000 - 3_000, "$name: charged once (8,000 + 9,000 + 3,000)");
    is(scalar_sql($s, "SELECT COUNT(*) FROM cart_items WHERE user_id = $u->{id}"), 0, "$name: the cart is empty");
    like($s->log_text('error'), qr/Redis unavailable; relying on the version fence/, "$name: ran without the lock")
        if $down;
}


# ---------------------------------------------------------------- checkout with a short line
{
    my $u = $users->[4];
    my $p1 = add_product($s, '충분한 상품', 7_000, 10);
    my $p2 = add_product($s, '모자란 상품', 5_000, 1);
    put_line($u, $p1, 2);
    put_line($u, $p2, 2);
    my $cart = cart($u)->{body};
    my $rows = rows_of($u);
    my $before = snapshot($s);
    my $r = checkout($u, key => key());
    is_problem($r, 409, 'OUT_OF_STOCK', 'a cart of 2 lines, the second short: 409 OUT_OF_STOCK');
    is_deeply($r->{json}{productIds}, [ 0 + $p2 ], 'naming the short product');
    is_deeply(rows_of($u), $rows, 'the cart rows are unchanged');
    is(cart($u)->{body}, $cart, 'and so is the cart as GET shows it');
    is(snapshot($s), $before, 'stock, balances, orders, ledger and outbox are unchanged');
    is(stock($p1), 10, 'stock of the first line still 10');
    is(bal($u), 1_000_000, 'balance still 1,000,000');
}

# ---------------------------------------------------------------- checkout success
{
    my $u = $users->[5];
    my $p1 = add_product($s, '결제 상품 A', 12_000, 10);
    my $p2 = add_product($s, '결제 상품 B', 3_500, 10);
    put_line($u, $p1, 2);
    put_line($u, $p2, 1);
    is(cart($u)->{json}{total}, 30_500, 'the cart costs 27,500 + 3,000');
    is_problem(checkout($u, expectedTotal => 27_500), 409, 'PRICE_CHANGED', 'expectedTotal 27,500: 409 PRICE_CHANGED');
    is(scalar @{ rows_of($u) }, 2, 'a refused checkout keeps the cart');
    my $k = key();
    my $r = checkout($u, key => $k, expectedTotal => 30_500);
    is($r->{status}, 201, 'checkout: 201') or diag($r->{body});
    my $j = $r->{json} || {};
    is_deeply([ map { [ @{$_}{qw(productId quantity unitPrice lineTotal)} ] } @{ $j->{items} || [] } ],
        [ [ $p1, 2, 12_000, 24_000 ], [ $p2, 1, 3_500, 3_500 ] ], 'the order has both lines');
    is_deeply([ @{$j}{qw(status itemsTotal shippingFee total balance)} ], [ 'PAID', 27_500, 3_000, 30_500, 969_500 ],
        'PAID, 27,500 + 3,000 = 30,500, balance 969,500');
    like($r->{headers}{location} // '', qr{^/api/v1/orders/$j->{orderId}$}, 'Location of the order');
    is_deeply($s->sql("SELECT user_id, total FROM orders WHERE id = $j->{orderId}"), [ [ $u->{id}, 30_500 ] ],
        'the order is the buyer\'s');
    is(scalar_sql($s, "SELECT COUNT(*) FROM cart_items WHERE user_id = $u->{id}"), 0, 'the cart rows are gone');
    is(cart($u)->{body}, '{"lines":[],"itemsTotal":0,"shippingFee":0,"total":0}', 'GET /cart: empty');
    is($s->redis('flushall'), 'OK', 'Redis flushed');
    is(cart($u)->{body}, '{"lines":[],"itemsTotal":0,"shippingFee":0,"total":0}', 'GET /cart still empty: the truth is in MariaDB');
    my $again = checkout($u, key => $k, expectedTotal => 30_500);
    is($again->{status}, 201, 'the same key again (Redis flushed): 201');
    is($again->{headers}{'idempotent-replayed'}, 'true', 'a replay');
    is($again->{body}, $r->{body}, 'of the same bytes');
    is_problem(checkout($u, key => key()), 409, 'CART_EMPTY', 'a new key: 409 CART_EMPTY');
    is(stock($p1), 8, 'stock taken once: 10 -> 8');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}"), 1, 'one order');
}

# ---------------------------------------------------------------- ten checkouts of one cart at once
ten_at_once('with the lock', 0);
{
    # one key for all ten: one order, the others replay it (or wait their turn)
    my $u = $users->[8];
    put_line($u, $pfill, 1);
    my $k = key();
    my $res = concurrent($s, [ map { checkout_req($u, $k) } 1 .. 10 ]);
    my @ok = grep { $_->{status} == 201 } @$res;
    my $inflight = grep { $_->{status} == 409 && ($_->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT' } @$res;
    is(@ok + $inflight, 10, 'one key, ten at once: every answer is the order (201) or IDEMPOTENCY_IN_FLIGHT') or diag(show($res));
    my %bodies = map { $_->{body} => 1 } @ok;
    is(scalar(keys %bodies), 1, 'every 201 is the same order, byte for byte');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id = $u->{id}"), 1, 'one order row');
}

# ---------------------------------------------------------------- the cart changes between its read and the order
{
    my $u = $users->[9];
    my $p = add_product($s, '바뀌는 장바구니', 2_000, 50);
    put_line($u, $p, 1);
    # the buyer's balance lock held from outside: the checkout reads and
    # prices the cart, then waits for the lock; meanwhile a PUT commits
    my $lock = "lock:balance:$u->{id}";
    is($s->redis('set', $lock, 'held-by-the-test', 'PX', 20000), 'OK', "the buyer's balance lock is held");
    my $before = snapshot($s);
    my $res = concurrent($s, [ checkout_req($u, key()),
        [ 'PUT', "/api/v1/users/$u->{id}/cart/items", bearer($u->{token}), { productId => 0 + $p, quantity => 3 } ] ],
        stagger => 0.5, on_answer => sub { $s->redis('del', $lock) if $_[0] == 1 });
    is($res->[1]{status}, 200, 'the PUT commits while the checkout waits') or diag($res->[1]{body});
    is_problem($res->[0], 409, 'CART_CHANGED', 'the checkout then finds the cart changed: 409 CART_CHANGED');
    is(snapshot($s), $before, 'no order, no stock or balance moved');
    is_deeply(rows_of($u), [ [ $p, 0, 3 ] ], 'the cart is as the PUT left it');
    my $r = checkout($u);
    is($r->{status}, 201, 'a checkout now orders it') or diag($r->{body});
    is($r->{json}{items}[0]{quantity}, 3, 'with the quantity the buyer set last');

    # a line added meanwhile is not part of the checkout: it stays
    put_line($u, $p, 1);
    is($s->redis('set', $lock, 'held-by-the-test', 'PX', 20000), 'OK', 'the lock is held again');
    $res = concurrent($s, [ checkout_req($u, key()),
        [ 'PUT', "/api/v1/users/$u->{id}/cart/items", bearer($u->{token}), { productId => 0 + $pfill, quantity => 2 } ] ],
        stagger => 0.5, on_answer => sub { $s->redis('del', $lock) if $_[0] == 1 });
    is($res->[1]{status}, 200, 'a line is added while the checkout waits') or diag($res->[1]{body});
    is($res->[0]{status}, 201, 'the checkout orders the cart it read') or diag($res->[0]{body});
    is_deeply([ map { [ $_->{productId}, $_->{quantity} ] } @{ $res->[0]{json}{items} || [] } ], [ [ $p, 1 ] ],
        'one line, as read');
    is_deeply(rows_of($u), [ [ $pfill, 0, 2 ] ], 'the line added meanwhile stays in the cart');
}

# ---------------------------------------------------------------- a crowd of carts
{
    my $p = add_product($s, '인기 상품', 1_000, 60);
    my @crowd = @{$users}[ 12 .. 111 ];
    for my $u (@crowd) {
        put_line($u, $p, 1)->{status} == 200 or BAIL_OUT('could not fill a cart');
        put_line($u, $pfill, 1);
    }
    my $pfill_stock = stock($pfill);
    my $res = concurrent($s, [ map { checkout_req($_, key()) } @crowd ]);
    my $t = Jangteo::Orders::tally($res);
    is($t->{201} // 0, 60, '100 carts with the same product of stock 60: exactly 60 orders') or diag(show($res));
    is($t->{'409 OUT_OF_STOCK'} // 0, 40, 'and 40 OUT_OF_STOCK') or diag(show($res));
    is(scalar(keys %$t), 2, 'no other answer') or diag(show($res));
    is(stock($p), 0, 'stock 0');
    is(stock($pfill), $pfill_stock - 60, 'the other line sold 60 times');
    my @won = map { $crowd[$_] } grep { $res->[$_]{status} == 201 } 0 .. $#crowd;
    my @lost = map { $crowd[$_] } grep { $res->[$_]{status} == 409 } 0 .. $#crowd;
    my $in = sub { join(',', map { $_->{id} } @_) || 0 };
    is(scalar_sql($s, "SELECT COUNT(*) FROM cart_items WHERE user_id IN (" . $in->(@won) . ')'), 0, 'the 60 carts are empty');
    is(scalar_sql($s, "SELECT COUNT(*) FROM cart_items WHERE user_id IN (" . $in->(@lost) . ") AND quantity = 1"
        . " AND product_id IN ($p, $pfill)"), 80, 'the 40 other carts are intact: 2 lines each');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id IN (" . $in->(@lost) . ')'), 0, 'and have no order');
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE user_id IN (" . $in->(@won) . ") AND total = 13000"), 60,
        'each of the 60 orders costs 1,000 + 9,000 + 3,000');
}

ten_at_once('Redis down: the version fence alone', 1);
$s->start_redis;

order_invariants_ok($s);
$s->stop;
done_testing;
