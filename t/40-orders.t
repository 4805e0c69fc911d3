#!/usr/bin/perl
# Orders, one request at a time: pricing, shipping fee, expectedTotal,
# options, refusals that change nothing, validation, 401/404, reading,
# listing, cancelling, and shipping sealed at rest.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes ();

use Jangteo::Client qw(test_stack bearer is_problem);
use Jangteo::Orders qw(
    make_users make_admin set_balance add_product add_option
    order_body place_order snapshot order_invariants_ok scalar_sql
);

my $s = test_stack(workers => 4);
my $JSON = JSON::PP->new->utf8->canonical;

my ($alice, $bob, $carol, $admin) = @{ make_users($s, 4, tag => 'o40') };
make_admin($s, $admin);
set_balance($s, [ $alice->{id}, $bob->{id} ], 1_000_000);

my $p_basic = add_product($s, '기본 상품', 10_000, 100);
my $p_other = add_product($s, '다른 상품', 5_000, 10);
my $p_short = add_product($s, '품절 임박', 1_000, 1);
my $p_29999 = add_product($s, '경계 상품 A', 29_999, 10);
my $p_30000 = add_product($s, '경계 상품 B', 30_000, 10);
my $p_opt   = add_product($s, '옵션 티셔츠', 20_000, 7);     # product stock must stay untouched
my $o_red   = add_option($s, $p_opt, '빨강 XL', 2_500, 5);
my $o_blue  = add_option($s, $p_opt, '파랑 M', 0, 3);
my $p_opt2  = add_product($s, '옵션 모자', 8_000, 0);
my $o_cap   = add_option($s, $p_opt2, '검정', 1_000, 4);

sub stock  { scalar_sql($s, "SELECT stock FROM products WHERE id = $_[0]") }
sub ostock { scalar_sql($s, "SELECT stock FROM product_options WHERE id = $_[0]") }
sub bal    { scalar_sql($s, "SELECT balance FROM users WHERE id = $_[0]") }
sub norders { scalar_sql($s, "SELECT COUNT(*) FROM orders") }

# ---------------------------------------------------------------- 401
{
    my $before = snapshot($s);
    my $r = place_order($s, undef, order_body([ [ $p_basic, 1 ] ]));
    is($r->{status}, 401, 'no token: 401') or diag($r->{body});
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json}, 'no token: problem+json');
    $r = place_order($s, 'not-a-real-token', order_body([ [ $p_basic, 1 ] ]));
    is($r->{status}, 401, 'a bogus token: 401');
    is(snapshot($s), $before, '401s changed nothing');
}

# ---------------------------------------------------------------- a plain order, all its rows
my $first;
{
    my $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 2 ] ]));
    is($r->{status}, 201, 'order: 201') or diag($r->{body});
    my $j = $r->{json} || {};
    $first = $j->{orderId};
    ok($first && $first =~ /^\d+$/, 'orderId is a number');
    is($j->{status}, 'PAID', 'status PAID');
    is($j->{itemsTotal}, 20_000, 'itemsTotal 20,000');
    is($j->{shippingFee}, 3_000, 'shippingFee 3,000 below 30,000');
    is($j->{total}, 23_000, 'total 23,000');
    is($j->{balance}, 1_000_000 - 23_000, 'balance after the order in the answer');
    ok(defined $j->{createdAt} && $j->{createdAt} =~ /^\d{4}-\d\d-\d\dT/, 'createdAt is a timestamp');
    is_deeply($j->{items}, [ { productId => 0 + $p_basic, optionId => undef, name => '기본 상품',
        unitPrice => 10_000, quantity => 2, lineTotal => 20_000 } ], 'items of the answer');
    like($r->{headers}{location} // '', qr{/api/v1/orders/$first$}, 'Location of the order');

    is(stock($p_basic), 98, 'stock 100 -> 98');
    is(bal($alice->{id}), 977_000, 'balance 1,000,000 -> 977,000');
    is_deeply($s->sql("SELECT user_id, status, items_total, shipping_fee, total FROM orders WHERE id = $first"),
        [ [ $alice->{id}, 'PAID', 20000, 3000, 23000 ] ], 'the orders row');
    is_deeply($s->sql("SELECT line_no, product_id, option_id, name, unit_price, quantity, line_total FROM order_items WHERE order_id = $first"),
        [ [ 1, $p_basic, 'NULL', '기본 상품', 10000, 2, 20000 ] ], 'the order_items row');
    is_deeply($s->sql("SELECT user_id, delta, balance_after FROM point_ledger WHERE kind = 'ORDER_PAYMENT' AND ref_id = $first"),
        [ [ $alice->{id}, -23000, 977000 ] ], 'one ORDER_PAYMENT ledger row of -total');
    is(scalar_sql($s, "SELECT COUNT(*) FROM outbox WHERE topic = 'order.paid' AND aggregate_id = $first"), 1,
        'one order.paid outbox row');

    # sealed at rest: neither the address nor the recipient nor the phone in clear
    my $ship = Jangteo::Orders::default_shipping();
    for my $f (qw(address recipient phone request)) {
        (my $v = $ship->{$f}) =~ s/'/''/g;
        is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE shipping_enc LIKE '%$v%'"
            . " OR CONVERT(shipping_enc USING utf8mb4) LIKE '%$v%'"), 0, "shipping.$f is not stored in plain text");
    }
    is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE shipping_enc LIKE '%테헤란로%'"), 0,
        'not even part of the address in plain text');
    is(scalar_sql($s, "SELECT COUNT(*) FROM outbox WHERE payload LIKE '%테헤란로%'"), 0,
        'the outbox payload does not carry the address either');

    # reading it back
    $r = $s->get("/api/v1/orders/$first", bearer($alice->{token}));
    is($r->{status}, 200, 'GET by the buyer: 200');
    is_deeply($r->{json}{shipping}, $ship, 'GET: shipping decrypted');
    is($r->{json}{total}, 23_000, 'GET: total');
    is($r->{json}{status}, 'PAID', 'GET: status');
    is_deeply($r->{json}{items}, $j->{items}, 'GET: the same items as the 201');
    $r = $s->get("/api/v1/orders/$first", bearer($bob->{token}));
    is_problem($r, 404, 'ORDER_NOT_FOUND', 'GET by another user: 404 ORDER_NOT_FOUND');
    ok(!defined $r->{json}{shipping} && $r->{body} !~ /테헤란로/, 'GET by another user leaks nothing');
    $r = $s->get("/api/v1/orders/$first", bearer($admin->{token}));
    is($r->{status}, 200, 'GET by an admin: 200');
    is_deeply($r->{json}{shipping}, $ship, 'admin sees shipping');
    $r = $s->get("/api/v1/orders/$first");
    is($r->{status}, 401, 'GET without token: 401');
    $r = $s->get('/api/v1/orders/99999999', bearer($alice->{token}));
    is_problem($r, 404, 'ORDER_NOT_FOUND', 'GET of an unknown order: 404');
}

# ---------------------------------------------------------------- 7. shipping fee and expectedTotal
{
    my $r = place_order($s, $alice->{token}, order_body([ [ $p_29999, 1 ] ]));
    is($r->{status}, 201, 'items total 29,999: 201') or diag($r->{body});
    is($r->{json}{itemsTotal}, 29_999, '29,999: itemsTotal');
    is($r->{json}{shippingFee}, 3_000, '29,999: shipping fee 3,000');
    is($r->{json}{total}, 32_999, '29,999: total 32,999');

    $r = place_order($s, $alice->{token}, order_body([ [ $p_30000, 1 ] ]));
    is($r->{status}, 201, 'items total 30,000: 201') or diag($r->{body});
    is($r->{json}{shippingFee}, 0, '30,000: shipping fee 0');
    is($r->{json}{total}, 30_000, '30,000: total 30,000');

    # two lines summing to exactly 30,000: 10,000 x 2 + 5,000 x 2
    $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 2 ], [ $p_other, 2 ] ]));
    is($r->{status}, 201, 'two lines summing to 30,000: 201') or diag($r->{body});
    is($r->{json}{shippingFee}, 0, 'two lines at 30,000: no fee');
    is($r->{json}{total}, 30_000, 'two lines at 30,000: total 30,000');

    my $before = snapshot($s);
    $r = place_order($s, $alice->{token}, order_body([ [ $p_29999, 1 ] ], expectedTotal => 29_999));
    is_problem($r, 409, 'PRICE_CHANGED', 'expectedTotal 29,999 (fee forgotten): 409 PRICE_CHANGED');
    is($r->{json}{currentTotal}, 32_999, 'PRICE_CHANGED carries currentTotal 32,999');
    is(snapshot($s), $before, 'PRICE_CHANGED changed nothing');

    my $bal = bal($alice->{id});
    $r = place_order($s, $alice->{token}, order_body([ [ $p_29999, 1 ] ], expectedTotal => 32_999));
    is($r->{status}, 201, 'expectedTotal matching: 201') or diag($r->{body});
    is($r->{json}{total}, 32_999, 'expectedTotal matching: total');
    is(bal($alice->{id}), $bal - 32_999, 'expectedTotal matching: balance charged 32,999');

    # a price change between two looks at the product
    $s->sql("UPDATE products SET price = 31000, version = version + 1 WHERE id = $p_29999");
    $before = snapshot($s);
    $r = place_order($s, $alice->{token}, order_body([ [ $p_29999, 1 ] ], expectedTotal => 32_999));
    is_problem($r, 409, 'PRICE_CHANGED', 'price raised to 31,000 after the client looked: 409');
    is($r->{json}{currentTotal}, 31_000, 'currentTotal 31,000 (no fee any more)');
    is(snapshot($s), $before, 'nothing changed');

    # The price changes while the order, already priced, waits for its lock:
    # the transaction sees it, and the 409 must still say what the total is
    # now. We hold the product's lock ourselves, wait until the order is
    # polling for it (Redis counts its SET NX attempts), change the price,
    # and let go.
    my $pc = add_product($s, '가격 변동 상품', 10_000, 10);
    my $sets = sub { ($s->redis('INFO', 'commandstats') =~ /cmdstat_set:calls=(\d+)/)[0] // 0 };
    $s->redis('SET', "lock:stock:p:$pc", 'held-by-t40', 'PX', 20000);
    my $sets0 = $sets->();
    my $pid = open(my $kid, '-|') // die "fork: $!";
    if (!$pid) {
        my $x = place_order($s, $alice->{token}, order_body([ [ $pc, 1 ] ], expectedTotal => 13_000));
        print $JSON->encode({ status => $x->{status}, json => $x->{json} });
        POSIX::_exit(0);
    }
    my $waited = 0;
    $waited += 0.05, Time::HiRes::sleep(0.05) while $sets->() < $sets0 + 3 && $waited < 15;
    ok($waited < 15, 'the order is waiting for the lock we hold');
    $s->sql("UPDATE products SET price = 12000, version = version + 1 WHERE id = $pc");
    $before = snapshot($s);
    $s->redis('DEL', "lock:stock:p:$pc");
    my $got = do { local $/; <$kid> };
    close $kid;
    $r = eval { $JSON->decode($got) } || { status => 0, json => {} };
    is($r->{status}, 409, 'price changed while waiting for the lock: 409');
    is($r->{json}{code}, 'PRICE_CHANGED', '... PRICE_CHANGED');
    is($r->{json}{currentTotal}, 15_000, '... with currentTotal 15,000 (12,000 + fee)')
        or diag("got: $got");
    is(snapshot($s), $before, '... and nothing changed');
}

# ---------------------------------------------------------------- 6. options
{
    my $p_stock = stock($p_opt);
    my $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 2, $o_red ] ]));
    is($r->{status}, 201, 'an option order: 201') or diag($r->{body});
    my $j = $r->{json} || {};
    is_deeply($j->{items}, [ { productId => 0 + $p_opt, optionId => 0 + $o_red, name => '옵션 티셔츠 / 빨강 XL',
        unitPrice => 22_500, quantity => 2, lineTotal => 45_000 } ], 'unitPrice = price + extra price');
    is($j->{itemsTotal}, 45_000, 'option: itemsTotal 45,000');
    is($j->{shippingFee}, 0, 'option: no fee over 30,000');
    is($j->{total}, 45_000, 'option: total 45,000');
    is(ostock($o_red), 3, 'stock taken from the option: 5 -> 3');
    is(ostock($o_blue), 3, 'the other option untouched');
    is(stock($p_opt), $p_stock, 'the product stock untouched');
    is_deeply($s->sql("SELECT option_id, unit_price, line_total FROM order_items WHERE order_id = $j->{orderId}"),
        [ [ $o_red, 22500, 45000 ] ], 'order_items keeps the option and the unit price');

    # the option below the fee threshold: 8,000 + 1,000 = 9,000 x 3 = 27,000 + 3,000
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt2, 3, $o_cap ] ]));
    is($r->{status}, 201, 'option of a product with stock 0 itself: 201 (stock on the option)') or diag($r->{body});
    is($r->{json}{items}[0]{unitPrice}, 9_000, 'unitPrice 9,000');
    is($r->{json}{total}, 30_000, '27,000 + fee 3,000');
    is(ostock($o_cap), 1, 'option stock 4 -> 1');
    is(stock($p_opt2), 0, 'product stock still 0');

    my $before = snapshot($s);
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt2, 2, $o_cap ] ]));
    is_problem($r, 409, 'OUT_OF_STOCK', 'option stock 1 < 2: OUT_OF_STOCK');
    is_deeply($r->{json}{productIds}, [ 0 + $p_opt2 ], 'productIds names the product');
    is(snapshot($s), $before, 'nothing changed');

    # two options of one product, both short: the product is named once
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 9, $o_red ], [ $p_opt, 9, $o_blue ] ]));
    is_problem($r, 409, 'OUT_OF_STOCK', 'two short options of one product: OUT_OF_STOCK');
    is_deeply($r->{json}{productIds}, [ 0 + $p_opt ], 'productIds names the product once');
    is(snapshot($s), $before, 'nothing changed');

    # a product that has options cannot be ordered without one
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 1 ] ]));
    is_problem($r, 400, 'INVALID_REQUEST', 'product with options, no optionId: 400');
    # an option of another product, an unknown option
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 1, $o_cap ] ]));
    is_problem($r, 404, 'OPTION_NOT_FOUND', 'the option of another product: 404 OPTION_NOT_FOUND');
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 1, 987654 ] ]));
    is_problem($r, 404, 'OPTION_NOT_FOUND', 'an unknown option: 404 OPTION_NOT_FOUND');
    $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 1, $o_red ] ]));
    is_problem($r, 404, 'OPTION_NOT_FOUND', 'an option on a product without options: 404 OPTION_NOT_FOUND');
    # two different options of one product are two lines
    $r = place_order($s, $alice->{token}, order_body([ [ $p_opt, 1, $o_red ], [ $p_opt, 1, $o_blue ] ]));
    is($r->{status}, 201, 'two options of one product: 201') or diag($r->{body});
    is(ostock($o_red) . '/' . ostock($o_blue), '2/2', 'each option lost one');
    is(snapshot($s) ne $before, 1, 'sanity: that order changed something');
}

# ---------------------------------------------------------------- 5. one short line: nothing changes
{
    my $before = snapshot($s);
    my ($sb, $ss, $bal, $n) = (stock($p_basic), stock($p_short), bal($alice->{id}), norders());
    my $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 3 ], [ $p_short, 2 ] ]));
    is_problem($r, 409, 'OUT_OF_STOCK', 'second line short (stock 1, wants 2): 409 OUT_OF_STOCK');
    is_deeply($r->{json}{productIds}, [ 0 + $p_short ], 'productIds = [the short product] only');
    is(stock($p_basic), $sb, "first line's stock unchanged ($sb)");
    is(stock($p_short), $ss, 'second line stock unchanged (1)');
    is(bal($alice->{id}), $bal, 'balance unchanged');
    is(norders(), $n, 'no order row');
    is(snapshot($s), $before, 'nothing at all changed');

    # both short: both named
    $r = place_order($s, $alice->{token}, order_body([ [ $p_short, 5 ], [ $p_other, 500 ] ]));
    is_problem($r, 409, 'OUT_OF_STOCK', 'both lines short: 409');
    is_deeply([ sort { $a <=> $b } @{ $r->{json}{productIds} || [] } ], [ sort { $a <=> $b } 0 + $p_short, 0 + $p_other ],
        'productIds names both');
    is(snapshot($s), $before, 'nothing changed');
}

# ---------------------------------------------------------------- insufficient balance
{
    set_balance($s, $carol->{id}, 12_999);
    my $before = snapshot($s);
    my $r = place_order($s, $carol->{token}, order_body([ [ $p_basic, 1 ] ]));
    is_problem($r, 409, 'INSUFFICIENT_BALANCE', 'balance 12,999 < 13,000: 409 INSUFFICIENT_BALANCE');
    is(snapshot($s), $before, 'nothing changed');
    set_balance($s, $carol->{id}, 13_000);
    $r = place_order($s, $carol->{token}, order_body([ [ $p_basic, 1 ] ]));
    is($r->{status}, 201, 'balance exactly 13,000: 201') or diag($r->{body});
    is(bal($carol->{id}), 0, 'balance ends at 0');
    is($r->{json}{balance}, 0, 'answer says balance 0');
}

# ---------------------------------------------------------------- the most lines: 50 (inserted in batches)
{
    my ($dora) = @{ make_users($s, 1, tag => 'o40l') };
    set_balance($s, [ $dora->{id} ], 1_000_000);
    my @p = map { add_product($s, "줄 상품 $_", 1_000 + $_, 10) } 1 .. 49;
    my $p_opt = add_product($s, '줄 옵션 상품', 20_000, 0);
    my $o_blue = add_option($s, $p_opt, '파랑', 0, 2);
    my @lines = ((map { [ $p[$_ - 1], 1 + $_ % 3 ] } 1 .. 49), [ $p_opt, 1, $o_blue ]);
    my ($ob, $bal) = (ostock($o_blue), bal($dora->{id}));
    my $total = 0;
    $total += (1_000 + $_) * (1 + $_ % 3) for 1 .. 49;
    $total += 20_000;
    my $r = place_order($s, $dora->{token}, order_body(\@lines));
    is($r->{status}, 201, '50 lines: 201') or diag($r->{body});
    my $id = $r->{json}{orderId};
    is($r->{json}{total}, $total, "total $total (no fee)");
    is_deeply([ map { [ $_->{productId}, $_->{quantity}, $_->{unitPrice}, $_->{lineTotal} ] } @{ $r->{json}{items} || [] } ],
        [ (map { [ $p[$_ - 1], 1 + $_ % 3, 1_000 + $_, (1_000 + $_) * (1 + $_ % 3) ] } 1 .. 49), [ $p_opt, 1, 20_000, 20_000 ] ],
        'the answer lists the 50 lines in order');
    is_deeply($s->sql("SELECT line_no, product_id, COALESCE(option_id, 0), quantity, unit_price, line_total"
            . " FROM order_items WHERE order_id = $id ORDER BY line_no"),
        [ (map { [ $_, $p[$_ - 1], 0, 1 + $_ % 3, 1_000 + $_, (1_000 + $_) * (1 + $_ % 3) ] } 1 .. 49),
          [ 50, $p_opt, $o_blue, 1, 20_000, 20_000 ] ],
        'order_items: 50 rows, line_no 1..50, each with its own product, option, quantity and prices');
    is_deeply([ map { stock($p[$_ - 1]) } 1 .. 49 ], [ map { 10 - (1 + $_ % 3) } 1 .. 49 ], 'every product gave its quantity');
    is(ostock($o_blue), $ob - 1, 'the option gave one');
    is(bal($dora->{id}), $bal - $total, 'the buyer paid the total');
    my $g = $s->get("/api/v1/orders/$id", bearer($dora->{token}));
    is_deeply([ map { $_->{productId} } @{ ($g->{json} || {})->{items} || [] } ], [ @p, $p_opt ], 'read back in line order');
}

# ---------------------------------------------------------------- validation table: 400, nothing changed
{
    my $ship = Jangteo::Orders::default_shipping();
    my $item = { productId => 0 + $p_basic, optionId => undef, quantity => 1 };
    my $with = sub { my (%o) = @_; my $b = { items => [ {%$item} ], shipping => {%$ship} }; $_->($b) for values %o; $b };
    my @cases = (
        [ 'no items key',            { shipping => $ship } ],
        [ 'items empty',             { items => [], shipping => $ship } ],
        [ 'items not an array',      { items => {%$item}, shipping => $ship } ],
        [ 'items null',              { items => undef, shipping => $ship } ],
        [ '51 items',                { items => [ map { { productId => $_, quantity => 1 } } 1 .. 51 ], shipping => $ship } ],
        [ 'item not an object',      { items => [ 5 ], shipping => $ship } ],
        [ 'quantity 0',              $with->(q => sub { $_[0]{items}[0]{quantity} = 0 }) ],
        [ 'quantity 1000',           $with->(q => sub { $_[0]{items}[0]{quantity} = 1000 }) ],
        [ 'quantity -1',             $with->(q => sub { $_[0]{items}[0]{quantity} = -1 }) ],
        [ 'quantity "2"',            $with->(q => sub { $_[0]{items}[0]{quantity} = '2' }) ],
        [ 'quantity 2.5',            $with->(q => sub { $_[0]{items}[0]{quantity} = 2.5 }) ],
        [ 'quantity missing',        $with->(q => sub { delete $_[0]{items}[0]{quantity} }) ],
        [ 'quantity null',           $with->(q => sub { $_[0]{items}[0]{quantity} = undef }) ],
        [ 'quantity true',           $with->(q => sub { $_[0]{items}[0]{quantity} = JSON::PP::true }) ],
        [ 'productId missing',       $with->(q => sub { delete $_[0]{items}[0]{productId} }) ],
        [ 'productId "101"',         $with->(q => sub { $_[0]{items}[0]{productId} = "$p_basic" }) ],
        [ 'productId 0',             $with->(q => sub { $_[0]{items}[0]{productId} = 0 }) ],
        [ 'productId -5',            $with->(q => sub { $_[0]{items}[0]{productId} = -5 }) ],
        [ 'optionId "x"',            $with->(q => sub { $_[0]{items}[0]{optionId} = 'x' }) ],
        [ 'optionId 1.5',            $with->(q => sub { $_[0]{items}[0]{optionId} = 1.5 }) ],
        [ 'same product twice',      { items => [ {%$item}, { %$item, quantity => 2 } ], shipping => $ship } ],
        [ 'same option twice',       { items => [ { productId => 0 + $p_opt, optionId => 0 + $o_blue, quantity => 1 },
                                                  { productId => 0 + $p_opt, optionId => 0 + $o_blue, quantity => 1 } ], shipping => $ship } ],
        [ 'no shipping',             { items => [ {%$item} ] } ],
        [ 'shipping a string',       { items => [ {%$item} ], shipping => 'Seoul' } ],
        [ 'shipping null',           { items => [ {%$item} ], shipping => undef } ],
        (map { my $f = $_; [ "shipping.$f missing", $with->(q => sub { delete $_[0]{shipping}{$f} }) ] } qw(recipient phone zipCode address)),
        (map { my $f = $_; [ "shipping.$f empty", $with->(q => sub { $_[0]{shipping}{$f} = '' }) ] } qw(recipient phone zipCode address)),
        (map { my $f = $_; [ "shipping.$f a number", $with->(q => sub { $_[0]{shipping}{$f} = 12345 }) ] } qw(recipient phone zipCode address)),
        [ 'zipCode 4 digits',        $with->(q => sub { $_[0]{shipping}{zipCode} = '1234' }) ],
        [ 'zipCode 6 digits',        $with->(q => sub { $_[0]{shipping}{zipCode} = '123456' }) ],
        [ 'zipCode with a letter',   $with->(q => sub { $_[0]{shipping}{zipCode} = '12a45' }) ],
        [ 'zipCode with a space',    $with->(q => sub { $_[0]{shipping}{zipCode} = '1234 ' }) ],
        [ 'phone not a phone',       $with->(q => sub { $_[0]{shipping}{phone} = 'call me maybe' }) ],
        [ 'recipient 51 chars',      $with->(q => sub { $_[0]{shipping}{recipient} = 'x' x 51 }) ],
        [ 'address 201 chars',       $with->(q => sub { $_[0]{shipping}{address} = 'a' x 201 }) ],
        [ 'request a number',        $with->(q => sub { $_[0]{shipping}{request} = 7 }) ],
        [ 'expectedTotal "13000"',   $with->(q => sub { $_[0]{expectedTotal} = '13000' }) ],
        [ 'expectedTotal -1',        $with->(q => sub { $_[0]{expectedTotal} = -1 }) ],
        [ 'expectedTotal 1.5',       $with->(q => sub { $_[0]{expectedTotal} = 1.5 }) ],
        [ 'body an array',           [ {%$item} ] ],
        [ 'body not JSON',           \'{"items": [', 'INVALID_JSON' ],
        [ 'body empty',              \'', 'INVALID_JSON' ],
    );
    my $before = snapshot($s);
    for my $c (@cases) {
        my ($name, $body, $code) = @$c;
        my $raw = ref $body eq 'SCALAR' ? $$body : $JSON->encode($body);
        my $r = $s->request('POST', '/api/v1/orders',
            { 'Content-Type' => 'application/json', %{ bearer($alice->{token}) } }, $raw);
        is_problem($r, 400, $code // 'INVALID_REQUEST', "validation: $name -> 400 " . ($code // 'INVALID_REQUEST'));
    }
    is(snapshot($s), $before, 'the whole validation table changed nothing');
}

# ---------------------------------------------------------------- 404s
{
    my $before = snapshot($s);
    my $r = place_order($s, $alice->{token}, order_body([ [ 987654, 1 ] ]));
    is_problem($r, 404, 'PRODUCT_NOT_FOUND', 'unknown product: 404 PRODUCT_NOT_FOUND');
    $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 1 ], [ 987654, 1 ] ]));
    is_problem($r, 404, 'PRODUCT_NOT_FOUND', 'a known then an unknown product: 404');
    is(snapshot($s), $before, 'the 404s changed nothing');
}

# ---------------------------------------------------------------- list, newest first, paginated
{
    my @ids;
    for my $q (1 .. 5) {
        my $r = place_order($s, $bob->{token}, order_body([ [ $p_other, 1 ] ]));
        is($r->{status}, 201, "bob's order $q: 201") or diag($r->{body});
        push @ids, $r->{json}{orderId};
    }
    my @want = reverse @ids;
    my $r = $s->get("/api/v1/users/$bob->{id}/orders?limit=2", bearer($bob->{token}));
    is($r->{status}, 200, 'list page 1: 200') or diag($r->{body});
    is_deeply([ map { $_->{orderId} } @{ $r->{json}{items} || [] } ], [ @want[0, 1] ], 'page 1: the two newest');
    ok(defined $r->{json}{nextCursor}, 'page 1 has a nextCursor');
    is($r->{json}{items}[0]{shipping}{address}, Jangteo::Orders::default_shipping()->{address}, 'list items carry shipping for the buyer');
    my @seen = map { $_->{orderId} } @{ $r->{json}{items} || [] };
    my $pages = 1;
    my $cursor = $r->{json}{nextCursor};
    while (defined $cursor && $pages < 10) {
        $r = $s->get("/api/v1/users/$bob->{id}/orders?limit=2&cursor=$cursor", bearer($bob->{token}));
        is($r->{status}, 200, "list page " . ($pages + 1) . ': 200');
        push @seen, map { $_->{orderId} } @{ $r->{json}{items} || [] };
        $cursor = $r->{json}{nextCursor};
        $pages++;
    }
    is($pages, 3, '5 orders at 2 a page: 3 pages');
    is_deeply(\@seen, \@want, 'pages together: every order once, newest first');
    $r = $s->get("/api/v1/users/$bob->{id}/orders", bearer($bob->{token}));
    is_deeply([ map { $_->{orderId} } @{ $r->{json}{items} || [] } ], \@want, 'default limit: all 5, newest first');
    ok(!defined $r->{json}{nextCursor}, 'last page: nextCursor null');
    $r = $s->get("/api/v1/users/$bob->{id}/orders", bearer($alice->{token}));
    ok($r->{status} == 403 || $r->{status} == 404, "alice cannot list bob's orders ($r->{status})");
    $r = $s->get("/api/v1/users/$bob->{id}/orders", bearer($admin->{token}));
    is($r->{status}, 200, "an admin can list bob's orders");
    $r = $s->get("/api/v1/users/$bob->{id}/orders?limit=0", bearer($bob->{token}));
    is($r->{status}, 400, 'limit=0: 400');
    $r = $s->get("/api/v1/users/$bob->{id}/orders?limit=51", bearer($bob->{token}));
    is($r->{status}, 400, 'limit=51: 400');
    $r = $s->get("/api/v1/users/$carol->{id}/orders", bearer($carol->{token}));
    is_deeply($r->{json}{items}, [ $r->{json}{items}[0] ], "carol's one order") if $r->{json};
}

# ---------------------------------------------------------------- cancel
{
    # alice's option order: two lines, on options
    my $r = place_order($s, $alice->{token}, order_body([ [ $p_basic, 2 ], [ $p_opt, 1, $o_blue ] ]));
    is($r->{status}, 201, 'an order to cancel: 201') or diag($r->{body});
    my $id = $r->{json}{orderId};
    my $total = $r->{json}{total};
    is($total, 40_000, '10,000 x 2 + 20,000 x 1 = 40,000, no fee');
    my ($sb, $so, $bal) = (stock($p_basic), ostock($o_blue), bal($alice->{id}));

    $r = $s->post_json("/api/v1/orders/$id/cancel", {}, bearer($bob->{token}));
    is_problem($r, 404, 'ORDER_NOT_FOUND', "bob cancelling alice's order: 404");
    $r = $s->post_json("/api/v1/orders/$id/cancel", {});
    is($r->{status}, 401, 'cancel without token: 401');

    $r = $s->post_json("/api/v1/orders/$id/cancel", {}, bearer($alice->{token}));
    is($r->{status}, 200, 'cancel by the buyer: 200') or diag($r->{body});
    is($r->{json}{status}, 'CANCELLED', 'status CANCELLED');
    ok(defined $r->{json}{cancelledAt}, 'cancelledAt set');
    is(stock($p_basic), $sb + 2, 'product stock restored (+2)');
    is(ostock($o_blue), $so + 1, 'option stock restored (+1)');
    is(bal($alice->{id}), $bal + $total, "refunded $total");
    is_deeply($s->sql("SELECT delta FROM point_ledger WHERE kind = 'ORDER_REFUND' AND ref_id = $id"), [ [$total] ],
        'one ORDER_REFUND row of +total');
    is(scalar_sql($s, "SELECT status FROM orders WHERE id = $id"), 'CANCELLED', 'orders row CANCELLED');

    my $before = snapshot($s);
    $r = $s->post_json("/api/v1/orders/$id/cancel", {}, bearer($alice->{token}));
    is_problem($r, 409, 'ORDER_NOT_CANCELLABLE', 'second cancel: 409 ORDER_NOT_CANCELLABLE');
    is(snapshot($s), $before, 'second cancel changed nothing');
    $r = $s->get("/api/v1/orders/$id", bearer($alice->{token}));
    is($r->{json}{status}, 'CANCELLED', 'GET shows CANCELLED');
    $r = $s->post_json('/api/v1/orders/99999999/cancel', {}, bearer($alice->{token}));
    is_problem($r, 404, 'ORDER_NOT_FOUND', 'cancel of an unknown order: 404');
}

order_invariants_ok($s);
is(scalar_sql($s, "SELECT COUNT(*) FROM orders WHERE shipping_enc LIKE '%테헤란로%'"), 0,
    'at the end: no order holds the address in plain text');

done_testing;
