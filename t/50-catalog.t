# Catalog management through the whole stack: create / patch / restock /
# delete with roles, validation and If-Match; listings with status filters;
# n-gram name search; timed sales that open and close on the clock.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack new_user login invariant_ok is_problem concurrent bearer jreq);
use Jangteo::Catalog qw(make_product product order_for rich_buyer iso_utc demo_tokens list_path wait_until shipping audit_ok);
use JSON::PP ();

# Redis over TCP here (the other tests reach it through its unix socket)
my $s   = test_stack(demo => 1, workers => 4, conf => { redis => { socket => undef } });
my $tok = demo_tokens($s);
my ($admin, $seller, $buyer) = @{$tok}{qw(admin seller buyer)};
my $SELLER_ID = 3;

# A second seller, to check ownership.
my $other = new_user($s, tag => 'seller2');
$s->sql("UPDATE users SET role = 'SELLER' WHERE id = $other->{id}");
$s->auth_changed;

my $shopper = rich_buyer($s);

sub sec { my ($t) = @_; return defined $t ? $t =~ s/\.0+Z\z/Z/r : undef }    # to-the-second form
sub db1 { my ($q) = @_; my $r = $s->sql($q); return @$r ? $r->[0] : [] }

# ------------------------------------------------------------ create: roles
my $body = { name => '테스트 사과', price => 1500, stock => 10, description => '아삭한 사과' };
is_problem(jreq($s, 'POST', '/api/v1/products', undef, $body), 401, undef, 'create without a token -> 401');
is_problem(jreq($s, 'POST', '/api/v1/products', $buyer, $body), 403, 'FORBIDDEN', 'create as BUYER -> 403 FORBIDDEN');

my $r = jreq($s, 'POST', '/api/v1/products', $seller, $body);
is($r->{status}, 201, 'create as SELLER -> 201') or diag($r->{body});
my $p = $r->{json} || {};
like($p->{id} // '', qr/^\d+$/, 'created product has an id');
is($r->{headers}{location}, "/api/v1/products/$p->{id}", 'Location names the product');
is_deeply([ sort keys %$p ],
    [ sort qw(id name price stock version description sellerId status saleStartsAt saleEndsAt options wishCount) ],
    'detail carries exactly the documented fields');
is($p->{wishCount}, 0, 'a new product: nobody wishes for it yet (wishCount 0)');
is($p->{name}, '테스트 사과', 'name');
is($p->{price}, 1500, 'price');
is($p->{stock}, 10, 'stock');
is($p->{description}, '아삭한 사과', 'description');
is($p->{sellerId}, $SELLER_ID, 'sellerId = the seller who created it');
is($p->{status}, 'ON_SALE', 'no window -> ON_SALE');
is($p->{saleStartsAt}, undef, 'saleStartsAt null');
is($p->{saleEndsAt}, undef, 'saleEndsAt null');
is_deeply($p->{options}, [], 'no options');
my $apple = $p->{id};
is_deeply(product($s, $apple)->{json}, $p, 'GET answers what POST answered');
is_deeply($s->sql("SELECT option_id, delta, kind FROM stock_movements WHERE product_id = $apple"),
    [ [ 'NULL', 10, 'INITIAL' ] ], 'creation journals one INITIAL movement of the stock');

$r = jreq($s, 'POST', '/api/v1/products', $admin, { name => '관리자 상품', price => 0, stock => 0 });
is($r->{status}, 201, 'create as ADMIN -> 201 (price 0, stock 0 allowed)') or diag($r->{body});
ok(exists $r->{json}{sellerId}, 'admin product has a sellerId field');

# ------------------------------------------------------------ create: validation
my @bad = (
    [ 'name missing',            { price => 1, stock => 1 } ],
    [ 'name empty',              { name => '', price => 1, stock => 1 } ],
    [ 'name blank',              { name => '   ', price => 1, stock => 1 } ],
    [ 'name 101 characters',     { name => '가' x 101, price => 1, stock => 1 } ],
    [ 'name not a string',       { name => 12, price => 1, stock => 1 } ],
    [ 'price missing',           { name => 'x', stock => 1 } ],
    [ 'price negative',          { name => 'x', price => -1, stock => 1 } ],
    [ 'price 100,000,001',       { name => 'x', price => 100_000_001, stock => 1 } ],
    [ 'price fractional',        { name => 'x', price => 1.5, stock => 1 } ],
    [ 'price a string',          { name => 'x', price => '100', stock => 1 } ],
    [ 'stock negative',          { name => 'x', price => 1, stock => -1 } ],
    [ 'stock 10,000,001',        { name => 'x', price => 1, stock => 10_000_001 } ],
    [ 'stock missing, no options', { name => 'x', price => 1 } ],
    [ 'extraPrice negative',     { name => 'x', price => 1, options => [ { name => 'S', extraPrice => -1, stock => 1 } ] } ],
    [ 'option without a name',   { name => 'x', price => 1, options => [ { extraPrice => 0, stock => 1 } ] } ],
    [ 'option stock negative',   { name => 'x', price => 1, options => [ { name => 'S', extraPrice => 0, stock => -1 } ] } ],
    [ 'options not an array',    { name => 'x', price => 1, stock => 1, options => { name => 'S' } } ],
    [ 'time without Z',          { name => 'x', price => 1, stock => 1, saleStartsAt => '2026-12-01T09:00:00' } ],
    [ 'time with a space',       { name => 'x', price => 1, stock => 1, saleStartsAt => '2026-12-01 09:00:00Z' } ],
    [ 'time in +09:00',          { name => 'x', price => 1, stock => 1, saleStartsAt => '2026-12-01T09:00:00+09:00' } ],
    [ 'time 31 February',        { name => 'x', price => 1, stock => 1, saleStartsAt => '2026-02-31T09:00:00Z' } ],
    [ 'time hour 24',            { name => 'x', price => 1, stock => 1, saleEndsAt => '2026-12-01T24:00:00Z' } ],
    [ 'time a number',           { name => 'x', price => 1, stock => 1, saleEndsAt => 1764579600 } ],
    [ 'time garbage',            { name => 'x', price => 1, stock => 1, saleEndsAt => 'tomorrow' } ],
    [ 'window end = start',      { name => 'x', price => 1, stock => 1,
                                   saleStartsAt => '2026-12-01T09:00:00Z', saleEndsAt => '2026-12-01T09:00:00Z' } ],
    [ 'window end before start', { name => 'x', price => 1, stock => 1,
                                   saleStartsAt => '2026-12-02T09:00:00Z', saleEndsAt => '2026-12-01T09:00:00Z' } ],
);
my $before = db1('SELECT COUNT(*) FROM products')->[0];
for my $c (@bad) {
    is_problem(jreq($s, 'POST', '/api/v1/products', $seller, $c->[1]), 400, 'INVALID_REQUEST', "create: $c->[0] -> 400");
}
is_problem(jreq($s, 'POST', '/api/v1/products', $seller, '{"name":'), 400, undef, 'create: broken JSON -> 400');
is(db1('SELECT COUNT(*) FROM products')->[0], $before, 'no refused create left a row');

for my $c (
    [ 'name of 100 Korean characters', { name => '가' x 100, price => 1, stock => 1 } ],
    [ 'price 100,000,000',             { name => 'max price', price => 100_000_000, stock => 1 } ],
    [ 'stock 10,000,000',              { name => 'max stock', price => 1, stock => 10_000_000 } ],
    [ 'time with microseconds',        { name => 'frac', price => 1, stock => 1, saleEndsAt => '2099-12-01T09:00:00.5Z' } ],
) {
    $r = jreq($s, 'POST', '/api/v1/products', $seller, $c->[1]);
    is($r->{status}, 201, "create: $c->[0] -> 201") or diag($r->{body});
}

# ------------------------------------------------------------ create: options
$r = jreq($s, 'POST', '/api/v1/products', $seller, {
    name => '옵션 티셔츠', price => 10000,
    options => [ { name => 'S', extraPrice => 0, stock => 3 }, { name => 'XL', extraPrice => 2000, stock => 4 } ],
});
is($r->{status}, 201, 'create with options and no stock -> 201') or diag($r->{body});
my $shirt = $r->{json} || {};
is($shirt->{stock}, 7, 'stock of an optioned product = sum of its options');
is_deeply([ map { [ $_->{name}, $_->{extraPrice}, $_->{stock} ] } @{ $shirt->{options} || [] } ],
    [ [ 'S', 0, 3 ], [ 'XL', 2000, 4 ] ], 'options as given, in order');
my ($optS, $optXL) = map { $_->{id} } @{ $shirt->{options} || [] };
is_deeply($s->sql("SELECT option_id, delta, kind FROM stock_movements WHERE product_id = $shirt->{id} ORDER BY id"),
    [ [ $optS, 3, 'INITIAL' ], [ $optXL, 4, 'INITIAL' ] ], 'one INITIAL movement per option');

# ------------------------------------------------------------ PATCH
my $pid = make_product($s, $seller, name => '수정 전 이름', price => 2000, stock => 5)->{id};
my $v0  = product($s, $pid)->{json}{version};
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", undef, { price => 1 }), 401, undef, 'PATCH without a token -> 401');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $buyer, { price => 1 }), 403, 'FORBIDDEN', 'PATCH as BUYER -> 403');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $other->{token}, { price => 1 }), 403, 'FORBIDDEN',
    'PATCH by another seller -> 403');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, {}), 400, 'INVALID_REQUEST', 'empty PATCH -> 400');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => -5 }), 400, 'INVALID_REQUEST', 'PATCH price -5 -> 400');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { name => ' ' }), 400, 'INVALID_REQUEST', 'PATCH blank name -> 400');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { saleStartsAt => '2026/12/01' }), 400, 'INVALID_REQUEST',
    'PATCH bad time -> 400');
is_problem(jreq($s, 'PATCH', "/api/v1/products/999999", $seller, { price => 1 }), 404, 'PRODUCT_NOT_FOUND',
    'PATCH unknown product -> 404');
is_deeply(db1("SELECT name, price, version FROM products WHERE id = $pid"), [ '수정 전 이름', 2000, $v0 ],
    'refused PATCHes changed nothing');

$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => 2500 }, 'If-Match' => $v0);
is($r->{status}, 200, 'PATCH with If-Match: <bare version> -> 200') or diag($r->{body});
is($r->{json}{price}, 2500, 'answer shows the new price');
is($r->{json}{name}, '수정 전 이름', 'fields not in the patch are kept');
is($r->{json}{version}, $v0 + 1, 'version + 1');
$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => 2600 }, 'If-Match' => '"' . ($v0 + 1) . '"');
is($r->{status}, 200, 'PATCH with If-Match: "<version>" -> 200') or diag($r->{body});
$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => 2700 }, 'If-Match' => 'W/"' . ($v0 + 2) . '"');
is($r->{status}, 200, 'PATCH with If-Match: W/"<version>" -> 200') or diag($r->{body});
my $vnow = $v0 + 3;
is(product($s, $pid)->{json}{version}, $vnow, 'GET shows the new version');

for my $stale ($v0, '"' . ($v0 + 1) . '"', 'W/"' . ($vnow + 5) . '"') {
    is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => 1, name => '바뀌면 안 됨' }, 'If-Match' => $stale),
        412, 'VERSION_MISMATCH', "PATCH with stale If-Match $stale -> 412");
}
is_problem(jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { price => 1 }, 'If-Match' => 'abc'), 400, undef,
    'PATCH with a malformed If-Match -> 400');
is_deeply(db1("SELECT name, price, version FROM products WHERE id = $pid"), [ '수정 전 이름', 2700, $vnow ],
    'stale / malformed If-Match changed nothing');

$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $seller,
    { name => '수정 후 이름', description => '설명', saleStartsAt => '2020-01-01T00:00:00Z', saleEndsAt => '2099-01-01T00:00:00Z' });
is($r->{status}, 200, 'PATCH without If-Match applies to the latest') or diag($r->{body});
is_deeply([ @{ $r->{json} || {} }{qw(name description price)}, sec($r->{json}{saleStartsAt}), sec($r->{json}{saleEndsAt}), $r->{json}{status} ],
    [ '수정 후 이름', '설명', 2700, '2020-01-01T00:00:00Z', '2099-01-01T00:00:00Z', 'ON_SALE' ], 'name, description and window changed');
$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $seller, { saleEndsAt => '2019-01-01T00:00:00Z' });
is_problem($r, 400, 'INVALID_REQUEST', 'PATCH end before the stored start -> 400');
$r = jreq($s, 'PATCH', "/api/v1/products/$pid", $admin, { saleStartsAt => undef, description => undef });
is($r->{status}, 200, 'admin may PATCH a seller\'s product; null clears') or diag($r->{body});
is($r->{json}{saleStartsAt}, undef, 'saleStartsAt cleared');
is($r->{json}{description}, undef, 'description cleared');
is(sec($r->{json}{saleEndsAt}), '2099-01-01T00:00:00Z', 'saleEndsAt kept');

# ------------------------------------------------------------ stock
my $sp = make_product($s, $seller, name => '재고 상품', stock => 5);
my $sid = $sp->{id};
my $sv = $sp->{version};
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $buyer, { delta => 1 }), 403, 'FORBIDDEN', 'stock as BUYER -> 403');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $other->{token}, { delta => 1 }), 403, 'FORBIDDEN',
    'stock by another seller -> 403');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => 0 }), 400, 'INVALID_REQUEST', 'delta 0 -> 400');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => 1.5 }), 400, 'INVALID_REQUEST', 'delta 1.5 -> 400');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, {}), 400, 'INVALID_REQUEST', 'delta missing -> 400');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => -6 }), 409, 'OUT_OF_STOCK',
    'stock below zero -> 409 OUT_OF_STOCK');
is_deeply(db1("SELECT stock, version FROM products WHERE id = $sid"), [ 5, $sv ], 'refused stock changes changed nothing');

$r = jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => 7 }, 'If-Match' => "\"$sv\"");
is($r->{status}, 200, 'restock +7 with If-Match -> 200') or diag($r->{body});
is($r->{json}{stock}, 12, 'answer shows stock 12');
is_problem(jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => 1 }, 'If-Match' => $sv), 412,
    'VERSION_MISMATCH', 'stock with stale If-Match -> 412');
$r = jreq($s, 'POST', "/api/v1/products/$sid/stock", $seller, { delta => -12 });
is($r->{status}, 200, 'correction -12 (to exactly zero) -> 200') or diag($r->{body});
is($r->{json}{stock}, 0, 'stock 0');
$r = jreq($s, 'POST', "/api/v1/products/$sid/stock", $admin, { delta => 3 });
is($r->{status}, 200, 'admin restock -> 200') or diag($r->{body});
is_deeply($s->sql("SELECT option_id, delta, kind FROM stock_movements WHERE product_id = $sid ORDER BY id"),
    [ [ 'NULL', 5, 'INITIAL' ], [ 'NULL', 7, 'RESTOCK' ], [ 'NULL', -12, 'CORRECTION' ], [ 'NULL', 3, 'RESTOCK' ] ],
    'journal: INITIAL, RESTOCK, CORRECTION, RESTOCK');
is(db1("SELECT SUM(delta) FROM stock_movements WHERE product_id = $sid")->[0], db1("SELECT stock FROM products WHERE id = $sid")->[0],
    'journal sums to the stock');

# options
my $shid = $shirt->{id};
is_problem(jreq($s, 'POST', "/api/v1/products/$shid/stock", $seller, { delta => 1 }), 400, 'INVALID_REQUEST',
    'optioned product without optionId -> 400');
$r = jreq($s, 'POST', "/api/v1/products/$shid/stock", $seller, { delta => 1, optionId => 999999 });
ok($r->{status} == 404 || $r->{status} == 400, 'unknown optionId -> 404/400') or diag("$r->{status} $r->{body}");
my $ov = db1("SELECT version FROM product_options WHERE id = $optXL")->[0];
is_problem(jreq($s, 'POST', "/api/v1/products/$shid/stock", $seller, { delta => 1, optionId => $optXL }, 'If-Match' => $ov + 1),
    412, 'VERSION_MISMATCH', 'option stock with stale If-Match -> 412');
$r = jreq($s, 'POST', "/api/v1/products/$shid/stock", $seller, { delta => 6, optionId => $optXL }, 'If-Match' => $ov);
is($r->{status}, 200, 'option restock with the option\'s version as If-Match -> 200') or diag($r->{body});
is_deeply([ map { $_->{stock} } @{ $r->{json}{options} || [] } ], [ 3, 10 ], 'only that option changed');
is($r->{json}{stock}, 13, 'product stock = new sum');
is_problem(jreq($s, 'POST', "/api/v1/products/$shid/stock", $seller, { delta => -4, optionId => $optS }), 409, 'OUT_OF_STOCK',
    'option below zero -> 409');
is_deeply($s->sql("SELECT option_id, delta, kind FROM stock_movements WHERE product_id = $shid ORDER BY id"),
    [ [ $optS, 3, 'INITIAL' ], [ $optXL, 4, 'INITIAL' ], [ $optXL, 6, 'RESTOCK' ] ], 'option journal');
my $cross = make_product($s, $seller, name => '옵션 없는 상품', stock => 1)->{id};
$r = jreq($s, 'POST', "/api/v1/products/$cross/stock", $seller, { delta => 1, optionId => $optS });
ok($r->{status} == 404 || $r->{status} == 400, "another product's optionId -> 404/400")
    or diag("$r->{status} $r->{body}");
is(db1("SELECT stock FROM product_options WHERE id = $optS")->[0], 3, "another product's option untouched");

# ------------------------------------------------------------ DELETE
my $del = make_product($s, $seller, name => '삭제될 상품 고유이름', price => 4321, stock => 9);
my $did = $del->{id};
$r = order_for($s, $shopper->{token}, [ $did, 2 ]);
is($r->{status}, 201, 'an order of the product before deletion') or diag($r->{body});
my $oid = $r->{json}{orderId};

is_problem(jreq($s, 'DELETE', "/api/v1/products/$did", $buyer), 403, 'FORBIDDEN', 'DELETE as BUYER -> 403');
is_problem(jreq($s, 'DELETE', "/api/v1/products/$did", $other->{token}), 403, 'FORBIDDEN', 'DELETE by another seller -> 403');
is_problem(jreq($s, 'DELETE', "/api/v1/products/$did", undef), 401, undef, 'DELETE without a token -> 401');
is_problem(jreq($s, 'DELETE', "/api/v1/products/$did", $seller, undef, 'If-Match' => 0), 412, 'VERSION_MISMATCH',
    'DELETE with stale If-Match -> 412');
is(product($s, $did)->{status}, 200, 'still there after refused deletes');
$r = jreq($s, 'DELETE', "/api/v1/products/$did", $seller);
is($r->{status}, 204, 'DELETE by its seller -> 204') or diag($r->{body});
is($r->{body}, '', '204 has no body');
is_problem(product($s, $did), 404, 'PRODUCT_NOT_FOUND', 'deleted -> GET 404 PRODUCT_NOT_FOUND');
is_problem(jreq($s, 'DELETE', "/api/v1/products/$did", $seller), 404, 'PRODUCT_NOT_FOUND', 'DELETE again -> 404');
is_problem(jreq($s, 'PATCH', "/api/v1/products/$did", $seller, { price => 1 }), 404, 'PRODUCT_NOT_FOUND', 'PATCH deleted -> 404');
is_problem(jreq($s, 'POST', "/api/v1/products/$did/stock", $seller, { delta => 1 }), 404, 'PRODUCT_NOT_FOUND',
    'restock deleted -> 404');
is_problem(order_for($s, $shopper->{token}, [ $did, 1 ]), 404, 'PRODUCT_NOT_FOUND', 'ordering a deleted product -> 404');
$r = $s->get(list_path(q => '삭제될 상품 고유이름'));
is_deeply([ map { $_->{id} } @{ ($r->{json} || {})->{items} || [] } ], [], 'search does not find the deleted product');
$r = $s->get(list_path(size => 100, page => 1 + int(($did - 1) / 100)));
ok(!grep({ $_->{id} == $did } @{ ($r->{json} || {})->{items} || [] }), 'listing page that would hold it does not');
$r = $s->get("/api/v1/orders/$oid", { Authorization => "Bearer $shopper->{token}" });
is($r->{status}, 200, 'the past order is still readable') or diag($r->{body});
my ($line) = @{ ($r->{json} || {})->{items} || [] };
is_deeply([ @{ $line || {} }{qw(productId name unitPrice quantity)} ], [ $did, '삭제될 상품 고유이름', 4321, 2 ],
    'the past order keeps its snapshot of name and unit price');
$r = jreq($s, 'DELETE', "/api/v1/products/$shid", $admin);
is($r->{status}, 204, 'admin may delete a seller\'s product') or diag($r->{body});

# ------------------------------------------------------------ listing + status filter
my $now   = time;
my $soon  = make_product($s, $seller, name => '곧 판매 상품', saleStartsAt => iso_utc($now + 86400));
my $ended = make_product($s, $seller, name => '종료 상품', saleStartsAt => '2020-01-01T00:00:00Z', saleEndsAt => '2021-01-01T00:00:00Z');
my $live  = make_product($s, $seller, name => '판매중 상품', saleStartsAt => '2020-01-01T00:00:00Z', saleEndsAt => iso_utc($now + 86400));
is($soon->{status}, 'COMING_SOON', 'start in the future -> COMING_SOON');
is($ended->{status}, 'ENDED', 'end in the past -> ENDED');
is($live->{status}, 'ON_SALE', 'inside the window -> ON_SALE');

my $live_total = db1('SELECT COUNT(*) FROM products WHERE deleted_at IS NULL')->[0];
$r = $s->get(list_path(size => 100));
is($r->{status}, 200, 'list 200');
is($r->{json}{total}, $live_total, 'total counts live products only');
is_deeply([ grep { join(',', sort keys %$_) ne 'id,name,price,status,stock' } @{ $r->{json}{items} || [] } ], [],
    'each list item has id,name,price,stock,status');

my %want = (
    ON_SALE     => "(sale_starts_at IS NULL OR sale_starts_at <= NOW(6)) AND (sale_ends_at IS NULL OR sale_ends_at > NOW(6))",
    COMING_SOON => 'sale_starts_at > NOW(6)',
    ENDED       => 'sale_ends_at <= NOW(6)',
);
for my $st (sort keys %want) {
    my $ids = [ map { $_->[0] } @{ $s->sql("SELECT id FROM products WHERE deleted_at IS NULL AND $want{$st} ORDER BY id LIMIT 100") } ];
    my $cnt = db1("SELECT COUNT(*) FROM products WHERE deleted_at IS NULL AND $want{$st}")->[0];
    $r = $s->get(list_path(status => $st, size => 100));
    is($r->{status}, 200, "status=$st 200") or diag($r->{body});
    is_deeply([ map { $_->{id} } @{ $r->{json}{items} || [] } ], $ids, "status=$st lists exactly those products");
    is($r->{json}{total}, $cnt, "status=$st total");
    ok(!grep({ $_->{status} ne $st } @{ $r->{json}{items} || [] }), "status=$st items all say $st");
}
my %in = map { $_->{id} => $_->{status} } @{ $s->get(list_path(status => 'COMING_SOON', size => 100))->{json}{items} || [] };
is($in{ $soon->{id} }, 'COMING_SOON', 'the coming product is in COMING_SOON');
%in = map { $_->{id} => $_->{status} } @{ $s->get(list_path(status => 'ENDED', size => 100))->{json}{items} || [] };
is($in{ $ended->{id} }, 'ENDED', 'the ended product is in ENDED');
is_problem($s->get(list_path(status => 'SOLD_OUT')), 400, 'INVALID_REQUEST', 'unknown status -> 400');
is_problem($s->get(list_path(status => 'on_sale')), 400, 'INVALID_REQUEST', 'lower-case status -> 400');

# ------------------------------------------------------------ search
my $k1 = make_product($s, $seller, name => '묵은지 김치찜 세트')->{id};
my $k2 = make_product($s, $seller, name => '김치')->{id};
my $l1 = make_product($s, $seller, name => 'Organic Apple Juice')->{id};
my $l2 = make_product($s, $seller, name => '100% 보리차')->{id};
my $l3 = make_product($s, $seller, name => '1000 보리차')->{id};

sub search_ids {
    my ($q, %more) = @_;
    my $r = $s->get(list_path(q => $q, size => 100, %more));
    is($r->{status}, 200, "q=$q answers 200") or diag($r->{body});
    return [ map { $_->{id} } @{ ($r->{json} || {})->{items} || [] } ], $r->{json};
}
sub like_ids {
    my ($pat) = @_;    # the truth, by a full scan
    (my $q = $pat) =~ s/'/''/g;
    return [ map { $_->[0] } @{ $s->sql("SELECT id FROM products WHERE deleted_at IS NULL AND name LIKE '$q' ESCAPE '!' ORDER BY id") } ];
}
my ($ids, $j) = search_ids('김치');
is_deeply($ids, like_ids('%김치%'), 'q=김치 finds exactly the live names containing 김치');
ok((grep { $_ == $k1 } @$ids) && (grep { $_ == $k2 } @$ids), 'including the two just created');
is($j->{total}, scalar @$ids, 'total of a search');
($ids) = search_ids('치찜');
is_deeply($ids, [ $k1 ], 'q=치찜 (middle of a word) finds it');
($ids) = search_ids('김');
is_deeply($ids, like_ids('%김%'), 'one-character query');
($ids) = search_ids('김치 세트');
is_deeply($ids, [], 'q with a space is a substring, not a word set (no false hit)');
($ids) = search_ids('김치찜 세트');
is_deeply($ids, [ $k1 ], 'q with a space inside the name');
($ids) = search_ids('apple');
is_deeply($ids, [ $l1 ], 'Latin search is case-insensitive');
($ids) = search_ids('APPLE JU');
is_deeply($ids, [ $l1 ], 'upper-case query with a space');
($ids) = search_ids('100%');
is_deeply($ids, [ $l2 ], 'q=100% matches the literal % only');
($ids) = search_ids('0 보');
is_deeply($ids, like_ids('%0 보%'), 'digits and Korean mixed');
($ids) = search_ids('없는상품이름xyz');
is_deeply($ids, [], 'no match -> empty items');
($ids) = search_ids('김치', status => 'COMING_SOON');
is_deeply($ids, [], 'q with a status filter');
is_problem($s->get(list_path(q => '')), 400, 'INVALID_REQUEST', 'empty q -> 400');
is_problem($s->get(list_path(q => 'x' x 101)), 400, 'INVALID_REQUEST', 'q of 101 characters -> 400');

$r = jreq($s, 'PATCH', "/api/v1/products/$k2", $seller, { name => '깍두기' });
is($r->{status}, 200, 'rename 김치 -> 깍두기') or diag($r->{body});
($ids) = search_ids('김치');
ok(!grep({ $_ == $k2 } @$ids), 'the renamed product is gone from q=김치');
($ids) = search_ids('깍두');
is_deeply($ids, like_ids('%깍두%'), 'and found under its new name');
ok(grep({ $_ == $k2 } @$ids), '(it is there)');

{
    my $cafe = make_product($s, $seller, name => 'Café Crème')->{id};
    my ($upper) = search_ids('CAFÉ');
    my ($plain) = search_ids('cafe creme');
    my ($exact) = search_ids('Café Crème');
    is_deeply($exact, [ $cafe ], 'q=Café Crème (exact bytes) finds it');
    is_deeply($upper, [ $cafe ], 'q=CAFÉ finds "Café Crème" (as LIKE under the table collation would)');
    is_deeply($plain, like_ids('%cafe creme%'), 'q=cafe creme finds what LIKE finds');
    # 'éè' and 'èê' are one gram under the collation: "has every gram"
    # must not be counted as "has two distinct grams"
    my $eee = make_product($s, $seller, name => 'Crème éèê')->{id};
    my ($same) = search_ids('éèê');
    ok(grep({ $_ == $eee } @$same), 'q=éèê (two grams equal under the collation) finds "Crème éèê"');
    is_deeply($same, like_ids('%éèê%'), 'and exactly what LIKE finds');
}

# (the statement the list handler prepares for q, with its grams filled in)
my $in = sub { qq{ AND p.id IN (SELECT g.product_id FROM product_name_grams g WHERE g.gram = '$_[0]')} };
my $explain = $s->sql(q{EXPLAIN SELECT p.id FROM products p WHERE p.deleted_at IS NULL}
    . join('', map { $in->($_) } '김치', '김치', '치찌', '찌개') . q{ AND p.name LIKE '%김치찌개%' ORDER BY p.id LIMIT 20});
ok(grep({ $_->[2] eq 'g' && ($_->[5] // '') eq 'PRIMARY' && $_->[3] =~ /^(?:ref|range|eq_ref)$/ } @$explain),
    'EXPLAIN: the search reads product_name_grams by its key')
    or diag(join("\n", map { join("\t", @$_) } @$explain));

# ------------------------------------------------------------ timed sales
is_problem(order_for($s, $shopper->{token}, [ $soon->{id}, 1 ]), 409, 'NOT_ON_SALE_YET', 'order before the window -> 409 NOT_ON_SALE_YET');
is_problem(order_for($s, $shopper->{token}, [ $ended->{id}, 1 ]), 409, 'SALE_ENDED', 'order after the window -> 409 SALE_ENDED');
$r = order_for($s, $shopper->{token}, [ $live->{id}, 1 ]);
is($r->{status}, 201, 'order inside the window -> 201') or diag($r->{body});

# Opening on the second, no job: start 2 s ahead.
my $open_at = int(time) + 3;
my $timed = make_product($s, $seller, name => '타임세일 상품', stock => 10, saleStartsAt => iso_utc($open_at),
    saleEndsAt => iso_utc($open_at + 3));
is($timed->{status}, 'COMING_SOON', 'timed product is COMING_SOON');
is(product($s, $timed->{id})->{json}{status}, 'COMING_SOON', 'GET (warming the cache) says COMING_SOON');
is_problem(order_for($s, $shopper->{token}, [ $timed->{id}, 1 ]), 409, 'NOT_ON_SALE_YET', 'order 2+ s before it opens -> 409');
sleep(0.05) while time < $open_at + 0.2;
is(product($s, $timed->{id})->{json}{status}, 'ON_SALE', 'just after the opening second, GET says ON_SALE');
$r = order_for($s, $shopper->{token}, [ $timed->{id}, 1 ]);
is($r->{status}, 201, 'just after the opening second, the order goes through') or diag($r->{body});
sleep(0.05) while time < $open_at + 3.2;
is(product($s, $timed->{id})->{json}{status}, 'ENDED', 'just after the closing second, GET says ENDED');
is_problem(order_for($s, $shopper->{token}, [ $timed->{id}, 1 ]), 409, 'SALE_ENDED', 'order after it closes -> 409 SALE_ENDED');
my $ok = wait_until(sub {
    grep { $_->{id} == $timed->{id} } @{ $s->get(list_path(status => 'ENDED', size => 100))->{json}{items} || [] };
}, 5, 0.2);
ok($ok, 'the closed product shows up in status=ENDED');

# PATCH moves the window: re-open it.
$r = jreq($s, 'PATCH', "/api/v1/products/$timed->{id}", $seller, { saleEndsAt => undef });
is($r->{status}, 200, 'PATCH clears the end') or diag($r->{body});
is($r->{json}{status}, 'ON_SALE', 'ON_SALE again');
$r = order_for($s, $shopper->{token}, [ $timed->{id}, 1 ]);
is($r->{status}, 201, 'orderable again at once') or diag($r->{body});

# ------------------------------------------------------------ concurrency
{
    my $J = JSON::PP->new->utf8->canonical;
    # one If-Match, ten writers: exactly one wins
    my $c = make_product($s, $seller, name => '동시 수정 상품', price => 100, stock => 10);
    my $res = concurrent($s, [ map {
        [ 'PATCH', "/api/v1/products/$c->{id}", { %{ bearer($seller) }, 'Content-Type' => 'application/json', 'If-Match' => $c->{version} },
          $J->encode({ price => 1000 + $_ }) ]
    } 1 .. 10 ]);
    my @st = sort map { $_->{status} } @$res;
    is_deeply(\@st, [ 200, (412) x 9 ], 'ten PATCHes with the same If-Match: one 200, nine 412') or diag("@st");
    my ($won) = map { $J->decode($_->{body})->{price} } grep { $_->{status} == 200 } @$res;
    is_deeply(db1("SELECT price, version FROM products WHERE id = $c->{id}"), [ $won // -1, $c->{version} + 1 ],
        'the winner\'s price stands, version + 1');

    # orders and restocks on one stock row at once
    my @buyers = map { rich_buyer($s) } 1 .. 4;
    my $ord = sub {
        my ($u) = @_;
        [ 'POST', '/api/v1/orders', { %{ bearer($u->{token}) }, 'Content-Type' => 'application/json' },
          $J->encode({ items => [ { productId => $c->{id}, quantity => 1 } ], shipping => shipping() }) ];
    };
    my $rst = [ 'POST', "/api/v1/products/$c->{id}/stock", { %{ bearer($seller) }, 'Content-Type' => 'application/json' },
                $J->encode({ delta => 1 }) ];
    $res = concurrent($s, [ (map { $ord->($buyers[$_ % 4]) } 0 .. 19), ($rst) x 10 ]);
    my @o = @$res[0 .. 19];
    my @k = @$res[20 .. 29];
    my $paid = grep { $_->{status} == 201 } @o;
    is(scalar(grep { $_->{status} != 201 && !($_->{status} == 409 && $_->{body} =~ /OUT_OF_STOCK/) } @o), 0,
        "20 orders racing 10 restocks: each order 201 or 409 OUT_OF_STOCK ($paid paid)")
        or diag(join ' ', map { $_->{status} } @o);
    is(scalar(grep { $_->{status} == 200 } @k), 10, 'every restock 200') or diag(join ' ', map { "$_->{status} $_->{body}" } @k);
    is(db1("SELECT stock FROM products WHERE id = $c->{id}")->[0], 10 + 10 - $paid, 'stock = 10 + 10 restocked - sold');
    is(db1("SELECT SUM(delta) FROM stock_movements WHERE product_id = $c->{id}")->[0], 20, 'journal: INITIAL 10 + 10 RESTOCK');
}

audit_ok($s, $admin);
invariant_ok($s);
done_testing;
