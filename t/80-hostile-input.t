#!/usr/bin/perl
# Hostile input on every endpoint that takes some: broken JSON, wrong types,
# out-of-range and overflowing numbers, huge and deep bodies, invalid UTF-8,
# NUL bytes, SQL metacharacters, oversized headers, bad Idempotency-Keys.
# Every case is a 4xx problem (the documented code where there is one),
# never a 5xx, and the whole table changes no money, stock or order.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Encode qw(encode_utf8);
use POSIX qw(strftime);

use Jangteo::Client qw(test_stack login raw_request);
use Jangteo::Load qw(money_snapshot audit_ok uniq_key);

my $JSON = JSON::PP->new->utf8->canonical;
# with the payment gateway simulator: card bodies reach a real checkout
my $s = test_stack(demo => 1, workers => 2, pgsim => 1);

my $buyer  = login($s, 'buyer@jangteo.test', 'jangteo-buyer-1234');
my $seller = login($s, 'seller@jangteo.test', 'jangteo-seller-1234');
my $admin  = login($s, 'admin@jangteo.test', 'jangteo-admin-1234');
my $buyer2 = login($s, 'buyer2@jangteo.test', 'jangteo-buyer-5678');   # user 2: "another user"
my %tok = (buyer => $buyer, seller => $seller, admin => $admin);

# ---------------------------------------------------------------- fixtures (before the snapshot)
my $r = $s->post_json('/api/v1/users/1/charge', { amount => 1_000_000 },
    { Authorization => "Bearer $buyer", 'Idempotency-Key' => uniq_key('seed') });
is($r->{status}, 200, 'fixture: buyer charged') or diag($r->{body});

my %SHIP = (recipient => '홍길동', phone => '010-1111-2222', zipCode => '12345', address => '서울 어딘가 1', request => '문 앞');
$r = $s->post_json('/api/v1/orders', { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP} },
    { Authorization => "Bearer $buyer" });
is($r->{status}, 201, 'fixture: an order to aim cancels at') or diag($r->{body});
my $order_id = $r->{json}{orderId} // 1;
$r = $s->post_json('/api/v1/orders', { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP},
    payment => { method => 'CARD', cardCompany => 'NH' } }, { Authorization => "Bearer $buyer" });
is($r->{status}, 201, 'fixture: a card order waiting for its payment, to aim verifies at') or diag($r->{body});
my $card_order = $r->{json}{orderId} // 1;

sub iso_min { strftime('%Y-%m-%dT%H:%M:00Z', gmtime($_[0])) }
my $t0 = int(time / 60) * 60 + 3600;
my %AUCTION = (
    productName => '경매 상품', originPrice => 10_000, stock => 10, maxPerBuyer => 2, variationSeconds => 60,
    startsAt => iso_min($t0), endsAt => iso_min($t0 + 600), showStock => JSON::PP::true,
    pricePolicy => { type => 'CONSTANT', variationWidth => 100 },
);
$r = $s->post_json('/api/v1/auctions', {%AUCTION}, { Authorization => "Bearer $seller" });
is($r->{status}, 201, 'fixture: a waiting auction to aim bids at') or diag($r->{body});
my $auction_id = $r->{json}{id} // 1;

# carts and wishlists to aim at (the buyer's, and buyer2's as another
# user's): a body wrongly accepted by a checkout would order them
for my $f ([ $buyer, 1, 'cart/items', { productId => 1, quantity => 1 } ], [ $buyer, 1, 'wishlist/items', { productId => 2 } ],
    [ $buyer2, 2, 'cart/items', { productId => 3, quantity => 1 } ], [ $buyer2, 2, 'wishlist/items', { productId => 3 } ]) {
    my ($t, $uid, $what, $body) = @$f;
    $r = $s->request('PUT', "/api/v1/users/$uid/$what", { Authorization => "Bearer $t", 'Content-Type' => 'application/json' },
        $JSON->encode($body));
    is($r->{status}, 200, "fixture: $what of user $uid") or diag($r->{body});
}
my $other_line = $s->sql('SELECT id FROM cart_items WHERE user_id = 2')->[0][0];
my $other_token = $s->sql('SELECT MAX(id) FROM auth_tokens WHERE user_id = 2')->[0][0];
BAIL_OUT('no line or session of user 2 to aim at') unless $other_line && $other_token;
# what the table must not change besides money: the lists, their heads, the
# users' rows (profiles, passwords) and sessions
sub basket_snapshot {
    return join(' ', map { join('|', @$_) } @{ $s->sql(
        "SELECT 'c', COUNT(*), COALESCE(SUM(id * 7 + product_id * 3 + option_id + quantity), 0) FROM cart_items"
        . " UNION ALL SELECT 'w', COUNT(*), COALESCE(SUM(id * 7 + product_id * 3 + option_id + quantity), 0) FROM wishlist_items"
        . " UNION ALL SELECT 'b', COUNT(*), COALESCE(SUM(version), 0) FROM baskets"
        . " UNION ALL SELECT 'u', COUNT(*), COALESCE(SUM(version), 0) + SUM(CRC32(CONCAT(HEX(name_enc), HEX(phone_enc), password_hash))) FROM users"
        . " UNION ALL SELECT 't', COUNT(*), COUNT(revoked_at) FROM auth_tokens") });
}

my $before = money_snapshot($s);
my $baskets_before = basket_snapshot();
note("snapshot: $before; $baskets_before");
# and what the gateway holds: payments, refunds, prepared amounts
sub gateway_snapshot {
    my $g = $s->pgsim('GET', '/_sim/payments');
    my ($n, $paid, $cancelled) = (0, 0, 0);
    for my $p (@{ $g->{payments} || [] }) { $n++; $paid += $p->{amount}; $cancelled += $p->{cancel_amount} }
    return sprintf('payments=%d paid=%d cancelled=%d prepared=%d statuses=%s gateway_payments=%s', $n, $paid, $cancelled,
        scalar keys %{ $g->{prepared} || {} }, $s->sql('SELECT GROUP_CONCAT(status ORDER BY id) FROM orders')->[0][0],
        $s->sql('SELECT COUNT(*) FROM gateway_payments')->[0][0]);
}
my $gw_before = gateway_snapshot();

# ---------------------------------------------------------------- the table
my @cases;    # { name, method, path, headers => [[k,v],...], body, raw, want => [statuses], code => [codes] }

sub add_case { push @cases, {@_} }

# JSON text of $base with the value at $path ("a.0.b") replaced by the raw
# JSON text $raw (or the key deleted when $raw is undef).
my $MARK = "\x{1}MUT\x{1}";
sub mutate {
    my ($base, $path, $raw) = @_;
    my $copy = $JSON->decode($JSON->encode($base));
    my @p = split /\./, $path;
    my $last = pop @p;
    my $node = $copy;
    $node = ref $node eq 'ARRAY' ? $node->[$_] : $node->{$_} for @p;
    if (ref $node eq 'ARRAY') { $node->[$last] = $MARK } else { $node->{$last} = $MARK }
    my $text = $JSON->encode($copy);
    my $m = $JSON->encode([$MARK]);
    $m = substr($m, 1, -1);
    my $i = index($text, $m);
    substr($text, $i, length $m) = $raw;
    return $text;
}

my $I64MAX = '9223372036854775807';
my @NOT_INT = ('null', '"1"', '"abc"', '1.5', '1e3', '1.0', 'true', 'false', '[]', '{}', '[1]', '1e400', '-1e400',
    '"\' OR 1=1 --"', '"1; DROP TABLE users; --"');
my @BIG_INT = ($I64MAX, '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
    '18446744073709551615', '18446744073709551616', '123456789012345678901234567890', '-123456789012345678901234567890');

# Bad values for an integer field accepting [lo, hi].
sub bad_ints {
    my ($lo, $hi, %o) = @_;
    my @v = grep { $_ ne 'null' || !$o{optional} } @NOT_INT;
    for my $n (-1, 0, 1, $lo - 1, $hi + 1, -1_000_000_000_000) {
        push @v, "$n" if $n < $lo || $n > $hi;
    }
    push @v, @BIG_INT;
    my %seen;
    return grep { !$seen{$_}++ } @v;
}

# Bad values for a string field of $min..$max characters.
sub bad_strs {
    my ($min, $max, %o) = @_;
    my @v = ('1', '0', 'true', '[]', '{}', '["a"]', '{"a":"b"}', '"a\u0000b"', '"\u0000"',
        # bytes that are not UTF-8, or not valid UTF-8 (put in after encoding)
        '"a<<RAW:ff>>b"', '"a<<RAW:c0af>>bcdefghijk"', '"<<RAW:eda080>>bcdefghijk"', '"<<RAW:f4908080>>bcdefghijk"',
        '"abcdefghij<<RAW:ea>>"');
    push @v, 'null' unless $o{optional};
    push @v, '""' if $min > 0;
    push @v, $JSON->encode(['x' x ($max + 1)]) =~ s/^\[|\]$//gr;
    push @v, @{ $o{extra} || [] };
    return @v;
}

# The members every way of placing an order shares (POST /orders, a cart's
# checkout, a wishlist's order): the order path validates them once.
my %ORDER_FIELDS = (
    expectedTotal        => [ bad_ints(0, 9223372036854775806, optional => 1), '1' ],
    shipping             => [ 'null', '[]', '"x"', '1', '{}', '[{}]' ],
    'shipping.recipient' => [ bad_strs(1, 50) ],
    'shipping.phone'     => [ bad_strs(10, 13, extra => ['"\' OR 1=1 --"']) ],
    'shipping.zipCode'   => [ bad_strs(5, 5, extra => [ '"1234"', '"123456"' ]) ],
    'shipping.address'   => [ bad_strs(1, 200) ],
    'shipping.request'   => [ bad_strs(0, 200, optional => 1) ],
);

# Every endpoint that takes a body: how to reach it and its fields.
my @ENDPOINTS = (
    {
        name => 'users.create', method => 'POST', path => '/api/v1/users', token => undef,
        base => { email => 'hostile-new@example.com', password => 'hostile-pass-1234', name => '악성 입력', phone => '010-9999-0000' },
        fields => {
            email    => [ bad_strs(3, 254, extra => [ '"\' OR 1=1 --"', '"a@b\'; DROP TABLE users; --"', '"no-at-sign"', '"@example.com"' ]) ],
            password => [ bad_strs(8, 72, extra => ['"short"']) ],
            name     => [ bad_strs(1, 50, extra => ['"   "']) ],
            phone    => [ bad_strs(10, 13, extra => [ '"\' OR 1=1 --"', '"01012345678\'--"', '"abcdefghijk"' ]) ],
            role     => [ bad_strs(1, 16, optional => 1, extra => [ '"ADMIN"', '"root"', '"\' OR 1=1 --"', '"admin"' ]) ],
        },
    },
    {
        name => 'auth.tokens', method => 'POST', path => '/api/v1/auth/tokens', token => undef, base_ok => 201,
        base => { email => 'buyer@jangteo.test', password => 'jangteo-buyer-1234' },
        fields => {
            email    => [ bad_strs(1, 254, extra => [ '"\' OR 1=1 --"', '"buyer@jangteo.test\' --"', '"\' OR \'1\'=\'1"' ]) ],
            password => [ grep { $_ ne '""' } bad_strs(0, 4096, extra => [ '"\' OR \'1\'=\'1"', '"\' OR 1=1 --"', '"\ud800"', '""' ]) ],
        },
    },
    {
        name => 'points.charge', method => 'POST', path => '/api/v1/users/1/charge', token => 'buyer', key => 1,
        unknown => [''],
        base => { amount => 1000 },
        fields => { amount => [ bad_ints(1000, 1_000_000) ] },
    },
    {
        name => 'orders.place', method => 'POST', path => '/api/v1/orders', token => 'buyer',
        unknown => [ '', 'items.0', 'shipping' ],
        base => { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP} },
        fields => {
            items                 => [ 'null', '[]', '{}', '"x"', '1', '[null]', '[1]', '["x"]', '[[]]',
                                       '[' . join(',', map { '{"productId":1,"quantity":1}' } 1 .. 1000) . ']',
                                       '[' . join(',', map { '{"productId":1,"quantity":1}' } 1 .. 51) . ']' ],
            'items.0.productId'   => [ bad_ints(1, 9223372036854775806), '99999999' ],
            'items.0.quantity'    => [ bad_ints(1, 999), '-999', '1000' ],
            'items.0.optionId'    => [ bad_ints(1, 9223372036854775806, optional => 1), '5' ],
            %ORDER_FIELDS,
        },
    },
    {
        name => 'cart.put', method => 'PUT', path => '/api/v1/users/1/cart/items', token => 'buyer',
        unknown => [''],
        base => { productId => 1, quantity => 1 },
        fields => {
            productId => [ bad_ints(1, 9223372036854775806), '99999999' ],
            quantity  => [ bad_ints(0, 999), '1000', '-999' ],
            optionId  => [ bad_ints(1, 9223372036854775806, optional => 1), '5' ],
        },
    },
    {
        name => 'cart.checkout', method => 'POST', path => '/api/v1/users/1/cart/checkout', token => 'buyer',
        unknown => [ '', 'shipping' ],
        base => { shipping => {%SHIP} },
        fields => {
            %ORDER_FIELDS,
            items => [ '[{"productId":1,"quantity":1}]' ],
        },
    },
    {
        name => 'wishlist.put', method => 'PUT', path => '/api/v1/users/1/wishlist/items', token => 'buyer',
        unknown => [''],
        base => { productId => 2 },
        fields => {
            productId => [ bad_ints(1, 9223372036854775806), '99999999' ],
            quantity  => [ bad_ints(1, 999, optional => 1), '1000' ],
            optionId  => [ bad_ints(1, 9223372036854775806, optional => 1), '5' ],
        },
    },
    {
        name => 'wishlist.order', method => 'POST', path => '/api/v1/users/1/wishlist/order', token => 'buyer',
        unknown => [ '', 'shipping' ],
        base => { shipping => {%SHIP}, clear => JSON::PP::false },
        fields => {
            %ORDER_FIELDS,
            clear => [ '1', '0', '"yes"', '"true"', '[]', '{}', '[true]' ],
        },
    },
    {
        name => 'users.patch', method => 'PATCH', path => '/api/v1/users/1', token => 'buyer',
        unknown => [''],
        base => { name => '악성 이름', phone => '010-4444-5555' },
        fields => {
            name  => [ bad_strs(1, 50, optional => 1, extra => [ '"   "', '"\t"' ]) ],
            phone => [ bad_strs(10, 13, optional => 1, extra => [ '"\' OR 1=1 --"', '"abcdefghijk"', '"02-123-4567"' ]) ],
        },
    },
    {
        name => 'users.password', method => 'POST', path => '/api/v1/users/1/password', token => 'buyer',
        unknown => [''],
        # a wrong current password: no mutation may ever change it
        base => { currentPassword => 'not-the-buyer-password', newPassword => 'hostile-new-pass-1' },
        fields => {
            currentPassword => [ bad_strs(1, 4096, extra => [ '"\' OR \'1\'=\'1"', '"\ud800"' ]) ],
            newPassword     => [ bad_strs(8, 72, extra => [ '"short"', '"1234567"' ]) ],
        },
    },
    {
        name => 'orders.place (card)', method => 'POST', path => '/api/v1/orders', token => 'buyer',
        unknown => [ '', 'payment' ],
        base => { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP},
                  payment => { method => 'CARD', cardCompany => 'NH' } },
        fields => {
            payment                => [ 'null', '1', '"CARD"', '[]', '{}', '[{"method":"CARD"}]', '{"method":"card","cardCompany":"NH"}',
                                        '{"method":"CARD"}', '{"method":"CASH"}', '{"method":1,"cardCompany":"NH"}',
                                        '{"method":"POINTS","cardCompany":"NH"}', '{"method":"CARD","cardCompany":null}' ],
            'payment.method'       => [ bad_strs(1, 16, extra => [ '"card"', '"Card"', '"CARD "', '" CARD"', '"CARDS"' ]) ],
            'payment.cardCompany'  => [ bad_strs(1, 16, extra => [ '"nh"', '"VISA"', '"SHINHAN\u0000"', '"NH; DROP TABLE orders"' ]) ],
            'items.0.quantity'     => [ bad_ints(1, 999) ],
            'items.0.productId'    => [ '0', '-1', '"1"', '99999999' ],
            'shipping.zipCode'     => [ '"1234"', '1', 'null' ],
            expectedTotal          => [ '1', '-1', '"x"' ],
        },
    },
    {
        name => 'payments.verify', method => 'POST', path => "/api/v1/orders/$card_order/payments", token => 'buyer', key => 1,
        unknown => [''],
        base => { impUid => 'imp_hostile' }, base_ok => 409,
        fields => {
            impUid => [ bad_strs(1, 64, extra => [ '"a b"', '"../../users/getToken"', '"imp_1?x=1"', '"imp%201"',
                        '"imp/1"', '"\u00e9"', '"' . ('i' x 65) . '"', '""' ]) ],
        },
    },
    {
        name => 'payments.webhook', method => 'POST', path => '/api/v1/payments/webhook',
        unknown => [''],
        base => { imp_uid => 'imp_hostile', merchant_uid => 'jt00', status => 'paid' },
        fields => {
            imp_uid      => [ bad_strs(1, 64, extra => [ '"a b"', '"../x"', '"imp/1"', '""' ]) ],
            merchant_uid => [ bad_strs(1, 64, optional => 1, extra => [ '"a b"', '"../x"', '""' ]) ],
            status       => [ bad_strs(1, 32, optional => 1) ],
        },
    },
    {
        name => 'products.create', method => 'POST', path => '/api/v1/products', token => 'admin',
        unknown => [''],
        base => { name => '악성 상품', price => 1000, stock => 10 },
        fields => {
            name         => [ bad_strs(1, 100, extra => ['"   "']) ],
            price        => [ bad_ints(0, 100_000_000) ],
            stock        => [ bad_ints(0, 10_000_000, optional => 1) ],
            description  => [ bad_strs(0, 2000, optional => 1) ],
            saleStartsAt => [ '1', 'true', '[]', '"\' OR 1=1 --"', '"2026-13-45T99:99:99Z"', '"yesterday"', '""' ],
            saleEndsAt   => [ '1', '{}', '"2026-02-30T00:00:00Z"', '"9999999-01-01T00:00:00Z"' ],
            options      => [ '1', '"x"', '{}', '[1]', '[null]', '[{}]', '[{"name":"a","extraPrice":-1,"stock":1}]',
                              '[{"name":"a","extraPrice":0,"stock":' . $I64MAX . '}]',
                              '[' . join(',', map { '{"name":"o' . $_ . '","extraPrice":0,"stock":1}' } 1 .. 51) . ']' ],
        },
    },
    {
        name => 'products.patch', method => 'PATCH', path => '/api/v1/products/2', token => 'admin',
        unknown => [''],
        base => { name => '바뀐 이름', price => 12345 },
        fields => {
            name  => [ bad_strs(1, 100, extra => ['"   "']) ],
            price => [ bad_ints(0, 100_000_000) ],
            saleStartsAt => [ '1', '"\' OR 1=1 --"', '"2026-13-45T99:99:99Z"' ],
        },
    },
    {
        name => 'products.stock', method => 'POST', path => '/api/v1/products/3/stock', token => 'admin',
        unknown => [''],
        base => { delta => 5 },
        fields => {
            delta    => [ grep { $_ ne '-1' } bad_ints(-10_000_000, 10_000_000), '0', '10000001', '-10000001' ],
            optionId => [ bad_ints(1, 9223372036854775806, optional => 1), '99999999' ],
        },
    },
    {
        name => 'auctions.create', method => 'POST', path => '/api/v1/auctions', token => 'seller',
        unknown => [ '', 'pricePolicy' ],
        base => {%AUCTION},
        fields => {
            productName      => [ bad_strs(1, 100) ],
            originPrice      => [ bad_ints(1, 1_000_000_000) ],
            stock            => [ bad_ints(2, 10_000_000) ],
            maxPerBuyer      => [ bad_ints(1, 10), '11' ],
            variationSeconds => [ bad_ints(1, 3600), '7', '3601' ],
            startsAt         => [ bad_strs(20, 40, extra => [ '"\' OR 1=1 --\' OR 1=1 --"', '"2000-01-01T00:00:00Z"', '"2026-13-45T99:99:99Z"' ]) ],
            endsAt           => [ bad_strs(20, 40, extra => [ '"' . iso_min($t0) . '"', '"' . iso_min($t0 + 7200) . '"' ]) ],
            showStock        => [ '1', '"yes"', '[]', '{}' ],
            pricePolicy      => [ 'null', '1', '"CONSTANT"', '[]', '{}', '{"type":"NOPE"}', '{"type":"PERCENTAGE","discountRate":0}',
                                  '{"type":"PERCENTAGE","discountRate":1e400}', '{"type":"PERCENTAGE","discountRate":"5"}',
                                  '{"type":"PERCENTAGE","discountRate":50.001}', '{"type":"CONSTANT","variationWidth":10000}' ],
            'pricePolicy.variationWidth' => [ bad_ints(1, 1111) ],
        },
    },
    {
        name => 'orders.transitions', method => 'POST', path => "/api/v1/orders/$order_id/transitions", token => 'admin',
        unknown => [''],
        base => { to => 'PREPARING' },
        fields => {
            to             => [ bad_strs(1, 24, extra => [ '"CANCELLED"', '"RETURN_REQUESTED"', '"PAID"', '"preparing"',
                                  '"NOPE"', '"\' OR 1=1 --"' ]) ],
            trackingNumber => [ bad_strs(1, 64, optional => 1, extra => [ '"CJ 123"', '"CJ-1\u0000"', '"운송장"',
                                  '"CJ-123"' ]) ],
        },
    },
    {
        name => 'orders.return', method => 'POST', path => "/api/v1/orders/$order_id/return", token => 'buyer',
        unknown => [''],
        base => { reason => '사이즈가 맞지 않아요' }, base_ok => 409,
        fields => { reason => [ bad_strs(1, 500) ] },
    },
    {
        name => 'admin.webhooks', method => 'POST', path => '/api/v1/admin/webhooks', token => 'admin',
        unknown => [''],
        base => { url => 'http://127.0.0.1:9/hook', events => ['order.paid'], secret => 'whsec_' . ('A' x 43) . '=' },
        fields => {
            url    => [ bad_strs(10, 2048, extra => [ '"ftp://127.0.0.1/hook"', '"http://"', '"javascript:alert(1)"',
                          '"file:///etc/passwd"', '"http://127.0.0.1/a b"', '"//127.0.0.1/hook"', '"/relative/hook"' ]) ],
            events => [ 'null', '[]', '{}', '"order.paid"', '[1]', '[null]', '["nope"]', '["order.paid","order.paid"]',
                        '["ORDER.PAID"]', '[' . join(',', map { '"order.paid"' } 1 .. 17) . ']' ],
            secret => [ bad_strs(38, 96, extra => [ '"' . ('A' x 49) . '"', '"whsec_' . ('!' x 43) . '"',
                          '"whsec_' . ('A' x 12) . '"' ]) ],
        },
    },
    {
        name => 'auctions.bid', method => 'POST', path => "/api/v1/auctions/$auction_id/bids", token => 'buyer',
        unknown => [''],
        base => { price => 10_000, quantity => 1 }, base_ok => 409,
        fields => {
            price    => [ bad_ints(1, 1_000_000_000) ],
            quantity => [ bad_ints(1, 10_000_000) ],
        },
    },
);

# Bodies that are wrong whatever the endpoint.
my @GENERIC = (
    [ 'empty body', '', 'INVALID_JSON' ],
    [ 'lone brace', '{', 'INVALID_JSON' ],
    [ 'truncated', '{"a":', 'INVALID_JSON' ],
    [ 'truncated string', '{"a":"bc', 'INVALID_JSON' ],
    [ 'not JSON', 'not json', 'INVALID_JSON' ],
    [ 'form encoded', 'amount=1000&x=1', 'INVALID_JSON' ],
    [ 'trailing garbage', '{"a":1} x', 'INVALID_JSON' ],
    [ 'two objects', '{"a":1}{"b":2}', 'INVALID_JSON' ],
    [ 'trailing comma', '{"a":1,}', 'INVALID_JSON' ],
    [ 'single quotes', "{'a':1}", undef ],
    [ 'comment', '{/* c */"a":1}', 'INVALID_JSON' ],
    [ 'NaN', '{"a":NaN}', undef ],
    [ 'Infinity', '{"a":Infinity}', undef ],
    [ 'unquoted key', '{a:1}', 'INVALID_JSON' ],
    [ 'hex number', '{"a":0x10}', 'INVALID_JSON' ],
    [ 'leading zero', '{"a":0123}', 'INVALID_JSON' ],
    [ 'raw NUL byte', qq({"a":"x\0y"}), 'INVALID_JSON' ],
    [ 'NUL after the object', qq({"a":1}\0), 'INVALID_JSON' ],
    [ 'invalid UTF-8 (0xFF)', qq({"a":"\xff\xfe"}), 'INVALID_JSON' ],
    [ 'overlong UTF-8', qq({"a":"\xc0\xaf"}), undef ],
    [ 'UTF-8 surrogate', qq({"a":"\xed\xa0\x80"}), undef ],
    [ 'truncated UTF-8', qq({"a":"\xea\xb0"}), 'INVALID_JSON' ],
    [ 'Latin-1 key', qq({"\xe9":1}), 'INVALID_JSON' ],
    [ 'nested 1000 arrays', ('[' x 1000) . (']' x 1000), 'INVALID_JSON' ],
    [ 'nested 1000 objects', ('{"a":' x 1000) . '1' . ('}' x 1000), 'INVALID_JSON' ],
    [ 'nested 100000 unclosed', '[' x 60000, 'INVALID_JSON' ],
    [ 'null', 'null', [qw(INVALID_JSON INVALID_REQUEST)] ],
    [ 'array', '[]', 'INVALID_REQUEST' ],
    [ 'array of object', '[{}]', 'INVALID_REQUEST' ],
    [ 'string', '"x"', 'INVALID_REQUEST' ],
    [ 'number', '123', [qw(INVALID_JSON INVALID_REQUEST)] ],
    [ 'true', 'true', [qw(INVALID_JSON INVALID_REQUEST)] ],
    [ 'empty object', '{}', undef ],
    [ 'body over body_max (100 KB)', '{"pad":"' . ('x' x 100_000) . '"}', 'PAYLOAD_TOO_LARGE' ],
    [ 'body over nginx limit (10 MB)', '{"pad":"' . ('x' x (10 * 1024 * 1024)) . '"}', 'PAYLOAD_TOO_LARGE' ],
);

my %CODES_400 = map { $_ => 1 } qw(INVALID_REQUEST INVALID_JSON);

for my $ep (@ENDPOINTS) {
    my @auth = $ep->{token} ? ([ Authorization => "Bearer $tok{ $ep->{token} }" ]) : ();
    my $key = sub { $ep->{key} ? ([ 'Idempotency-Key' => uniq_key('hostile') ]) : () };
    my $ct = [ 'Content-Type' => 'application/json' ];
    for my $g (@GENERIC) {
        add_case(name => "$ep->{name}: $g->[0]", method => $ep->{method}, path => $ep->{path},
            headers => [ @auth, $key->(), $ct ], body => $g->[1],
            want => [ $g->[2] && $g->[2] eq 'PAYLOAD_TOO_LARGE' ? 413 : 400 ], code => $g->[2]);
    }
    for my $f (sort keys %{ $ep->{fields} }) {
        for my $v (@{ $ep->{fields}{$f} }) {
            my $label = length($v) > 40 ? substr($v, 0, 37) . '...' : $v;
            add_case(name => "$ep->{name}: $f = $label", method => $ep->{method}, path => $ep->{path},
                headers => [ @auth, $key->(), $ct ],
                # (a fresh email each time: one wrongly accepted registration must not mask the next case)
                body => encode_utf8(mutate($ep->{base}, $f, $v)) =~ s/<<RAW:([0-9a-f]+)>>/pack('H*', $1)/ger
                    =~ s/hostile-new\@/'hostile-' . scalar(@cases) . '@'/er, want => '4xx');
        }
        # a required field missing altogether (optional ones may be absent)
    }
    # duplicate keys, the bad value last (bad first: see the strictness section)
    my ($f1) = grep { !/\./ && exists $ep->{base}{$_} } sort keys %{ $ep->{fields} };
    (my $front = $JSON->encode($ep->{base})) =~ s/\}$//;
    add_case(name => "$ep->{name}: duplicate key $f1 (good, bad)", method => $ep->{method}, path => $ep->{path},
        headers => [ @auth, $key->(), $ct ], body => encode_utf8(qq($front,"$f1":[]})), want => '4xx');
    add_case(name => "$ep->{name}: 1,000 unknown keys", method => $ep->{method}, path => $ep->{path},
        headers => [ @auth, $key->(), $ct ],
        body => encode_utf8('{' . join(',', map { qq("k$_":$_) } 1 .. 1000) . '}'), want => '4xx');
    # a body that moves money or stock takes no member it does not know, at
    # any depth (a misspelt or newer field is never silently dropped)
    for my $at (@{ $ep->{unknown} || [] }) {
        my $name = length $at ? "$at.zzUnknown" : 'zzUnknown';
        (my $shown = $name) =~ s/\.(\d+)\./[$1]./g;
        add_case(name => "$ep->{name}: unknown member $shown", method => $ep->{method}, path => $ep->{path},
            headers => [ @auth, $key->(), $ct ], body => encode_utf8(mutate($ep->{base}, $name, '1')),
            want => [400], code => 'INVALID_REQUEST', detail => qr/\Q$shown\E/);
    }
}

# ---- ids in paths
my @BAD_IDS = ('abc', '0', '-1', '1.5', '1e3', '0x10', $I64MAX, '9223372036854775808', '18446744073709551616',
    '99999999999999999999999', "1'%20OR%201=1%20--", '1%27%20OR%20%271%27=%271', '1;DROP%20TABLE%20users;--',
    '%00', '1%00', '%2e%2e', '1%20', '%201', '1,2', '99999999');
my @ID_ROUTES = (
    [ GET => '/api/v1/products/ID', undef, undef ],
    [ PATCH => '/api/v1/products/ID', 'admin', '{"price":1}' ],
    [ DELETE => '/api/v1/products/ID', 'admin', undef ],
    [ POST => '/api/v1/products/ID/stock', 'admin', '{"delta":1}' ],
    [ GET => '/api/v1/users/ID', 'buyer', undef ],
    [ POST => '/api/v1/users/ID/charge', 'buyer', '{"amount":1000}', 1 ],
    [ GET => '/api/v1/users/ID/points', 'buyer', undef ],
    [ GET => '/api/v1/users/ID/orders', 'buyer', undef ],
    [ GET => '/api/v1/users/ID/receipts', 'buyer', undef ],
    [ GET => '/api/v1/orders/ID', 'buyer', undef ],
    [ POST => '/api/v1/orders/ID/cancel', 'buyer', undef ],
    [ POST => '/api/v1/orders/ID/transitions', 'admin', '{"to":"PREPARING"}' ],
    [ POST => '/api/v1/orders/ID/return', 'buyer', '{"reason":"x"}' ],
    [ GET => '/api/v1/users/ID/notifications', 'buyer', undef ],
    [ POST => '/api/v1/users/ID/notifications/1/read', 'buyer', undef ],
    [ POST => '/api/v1/users/1/notifications/ID/read', 'buyer', undef ],
    [ GET => '/api/v1/admin/webhooks/ID/deliveries', 'admin', undef ],
    [ POST => '/api/v1/orders/ID/payments', 'buyer', '{"impUid":"imp_hostile"}', 1 ],
    [ GET => '/api/v1/auctions/ID', undef, undef ],
    [ DELETE => '/api/v1/auctions/ID', 'seller', undef ],
    [ POST => '/api/v1/auctions/ID/bids', 'buyer', '{"price":10000,"quantity":1}' ],
    [ GET => '/api/v1/receipts/ID', 'buyer', undef ],
    [ POST => '/api/v1/receipts/ID/refund', 'seller', undef ],
    [ GET => '/api/v1/users/ID/cart', 'buyer', undef ],
    [ DELETE => '/api/v1/users/ID/cart', 'buyer', undef ],
    [ PUT => '/api/v1/users/ID/cart/items', 'buyer', '{"productId":1,"quantity":1}' ],
    [ DELETE => '/api/v1/users/ID/cart/items/1', 'buyer', undef ],
    [ DELETE => '/api/v1/users/1/cart/items/ID', 'buyer', undef ],
    [ POST => '/api/v1/users/ID/cart/checkout', 'buyer', $JSON->encode({ shipping => {%SHIP} }) ],
    [ GET => '/api/v1/users/ID/wishlist', 'buyer', undef ],
    [ PUT => '/api/v1/users/ID/wishlist/items', 'buyer', '{"productId":1}' ],
    [ DELETE => '/api/v1/users/ID/wishlist/items/2', 'buyer', undef ],
    [ DELETE => '/api/v1/users/1/wishlist/items/ID', 'buyer', undef ],
    [ POST => '/api/v1/users/ID/wishlist/order', 'buyer', $JSON->encode({ shipping => {%SHIP} }) ],
    [ PATCH => '/api/v1/users/ID', 'buyer', '{"name":"남의 이름"}' ],
    [ POST => '/api/v1/users/ID/password', 'buyer', '{"currentPassword":"jangteo-buyer-1234","newPassword":"taken-over-1"}' ],
    [ GET => '/api/v1/users/ID/tokens', 'buyer', undef ],
    [ DELETE => '/api/v1/users/ID/tokens/1', 'buyer', undef ],
    [ DELETE => '/api/v1/users/1/tokens/ID', 'buyer', undef ],
);
for my $rt (@ID_ROUTES) {
    my ($m, $tpl, $who, $body, $needkey) = @$rt;
    my @ids = @BAD_IDS;
    push @ids, "00000000-0000-0000-0000-000000000000", "'%20OR%20''='", 'x' x 300 if $tpl =~ /receipts/;
    for my $id (@ids) {
        (my $path = $tpl) =~ s/ID/$id/;
        my @h = ($who ? ([ Authorization => "Bearer $tok{$who}" ]) : ());
        push @h, [ 'Idempotency-Key' => uniq_key('id') ] if $needkey;
        push @h, [ 'Content-Type' => 'application/json' ] if defined $body;
        add_case(name => "$m $path", method => $m, path => $path, headers => \@h, body => $body, want => '4xx', raw => 1);
    }
}

# ---- other users' ids: buyer2's cart, wishlist, profile, password and
# sessions, and buyer2's session id from the buyer's side (a lineId names a
# line of the path's user: there is no other user's line to aim at)
{
    my $ship = $JSON->encode({ shipping => {%SHIP} });
    for my $c (
        [ GET => '/api/v1/users/2/cart', undef, 404, 'NOT_FOUND' ],
        [ PUT => '/api/v1/users/2/cart/items', '{"productId":1,"quantity":5}', 404, 'NOT_FOUND' ],
        [ DELETE => '/api/v1/users/2/cart', undef, 404, 'NOT_FOUND' ],
        [ DELETE => "/api/v1/users/2/cart/items/$other_line", undef, 404, 'NOT_FOUND' ],
        [ POST => '/api/v1/users/2/cart/checkout', $ship, 404, 'NOT_FOUND' ],
        [ GET => '/api/v1/users/2/wishlist', undef, 404, 'NOT_FOUND' ],
        [ PUT => '/api/v1/users/2/wishlist/items', '{"productId":1}', 404, 'NOT_FOUND' ],
        [ DELETE => '/api/v1/users/2/wishlist/items/3', undef, 404, 'NOT_FOUND' ],
        [ POST => '/api/v1/users/2/wishlist/order', $ship, 404, 'NOT_FOUND' ],
        [ PATCH => '/api/v1/users/2', '{"name":"남의 이름"}', 403, 'FORBIDDEN' ],
        [ POST => '/api/v1/users/2/password', '{"currentPassword":"jangteo-buyer-5678","newPassword":"taken-over-1"}', 403, 'FORBIDDEN' ],
        [ GET => '/api/v1/users/2/tokens', undef, 403, 'FORBIDDEN' ],
        [ DELETE => "/api/v1/users/2/tokens/$other_token", undef, 403, 'FORBIDDEN' ],
        [ DELETE => "/api/v1/users/1/tokens/$other_token", undef, 404, 'TOKEN_NOT_FOUND' ],
        # and the buyer's own item with an option id that is no id
        map({ [ DELETE => "/api/v1/users/1/wishlist/items/2?optionId=$_", undef, 400, 'INVALID_REQUEST' ] }
            '0', '-1', 'x', '1.5', "1%27%20OR%201=1", '99999999999999999999', '%00'),
        ) {
        my ($m, $path, $body, $st, $code) = @$c;
        add_case(name => "another user's: $m $path", method => $m, path => $path,
            headers => [ [ Authorization => "Bearer $buyer" ], (defined $body ? ([ 'Content-Type' => 'application/json' ]) : ()) ],
            body => $body, want => [$st], code => $code, raw => 1);
    }
}
# ---- other users' orders: a card order is its buyer's (and an admin's) only
for my $c ([ POST => "/api/v1/orders/$card_order/payments", '{"impUid":"imp_hostile"}', 1 ],
           [ POST => "/api/v1/orders/$card_order/cancel", undef, 0 ],
           [ GET => "/api/v1/orders/$card_order", undef, 0 ]) {
    my ($m, $path, $body, $needkey) = @$c;
    my @h = ([ Authorization => "Bearer $tok{seller}" ]);
    push @h, [ 'Idempotency-Key' => uniq_key('other') ] if $needkey;
    push @h, [ 'Content-Type' => 'application/json' ] if defined $body;
    add_case(name => "$m $path by another user", method => $m, path => $path, headers => \@h, body => $body,
        want => [404], code => 'ORDER_NOT_FOUND', raw => 1);
}
add_case(name => 'POST the buyer\'s card order payments with no token', method => 'POST',
    path => "/api/v1/orders/$card_order/payments", headers => [ [ 'Content-Type' => 'application/json' ],
    [ 'Idempotency-Key' => uniq_key('anon') ] ], body => '{"impUid":"imp_hostile"}', want => [401], raw => 1);

# ---- list queries
my @QUERIES = (
    map({ "/api/v1/products?$_" } 'page=0', 'page=-1', 'page=x', 'page=1.5', "page=$I64MAX", 'page=99999999999999999999',
        'size=0', 'size=101', 'size=-1', 'size=x', "size=1%27%20OR%201=1%20--", 'size=10;DROP%20TABLE%20users',
       'status=NOPE', "status=ON_SALE%27%20OR%20%271%27=%271", 'q=' . ('%EA%B0%80' x 500)),
    map({ "/api/v1/users/1/orders?$_" } 'cursor=0', 'cursor=-1', 'cursor=x', "cursor=1%27%20OR%201=1", 'limit=0', 'limit=51', 'limit=x',
        'status=NOPE', 'status=paid', "status=PAID%27%20OR%20%271%27=%271", 'status=%00', 'status=PAID%00'),
    map({ "/api/v1/users/1/notifications?$_" } 'unread=yes', 'unread=1', 'unread=%00', 'cursor=0', 'cursor=x', 'limit=0', 'limit=101'),
    map({ "/api/v1/users/1/points?$_" } 'cursor=0', 'cursor=abc', 'limit=0', 'limit=101', 'limit=1e3'),
    map({ "/api/v1/users/1/receipts?$_" } 'role=admin', "role=buyer%27--", 'cursor=-5', 'limit=1000'),
    map({ "/api/v1/auctions?$_" } 'page=0', 'size=1000', 'status=NOPE', "status=RUNNING%27%20OR%201=1--"),
    map({ "/api/v1/users/1/tokens?$_" } 'cursor=0', 'cursor=x', 'limit=0', 'limit=101', "limit=1%27--"),
);
for my $q (@QUERIES) {
    add_case(name => "GET $q" =~ s/(.{80}).+/$1.../r, method => 'GET', path => $q,
        headers => [ [ Authorization => "Bearer $buyer" ] ], want => [400], code => 'INVALID_REQUEST', raw => 1);
}
for my $q (map({ "/api/v1/admin/webhooks?$_" } 'cursor=0', 'cursor=x', 'limit=0', 'limit=101'),
    map({ "/api/v1/admin/webhooks/1/deliveries?$_" } 'cursor=-1', 'limit=51', 'limit=%00')) {
    add_case(name => "GET $q (admin)", method => 'GET', path => $q,
        headers => [ [ Authorization => "Bearer $admin" ] ], want => [400], code => 'INVALID_REQUEST', raw => 1);
}

# ---- other users' ids and roles (the buyer is user 1, the seller user 3)
for my $c (
    [ 'the buyer reads the seller\'s notifications', GET => '/api/v1/users/3/notifications', 'buyer', undef, 403, 'FORBIDDEN' ],
    [ 'the buyer marks a seller\'s notification read', POST => '/api/v1/users/3/notifications/1/read', 'buyer', undef, 403, 'FORBIDDEN' ],
    [ 'the buyer marks a notification that is not theirs', POST => '/api/v1/users/1/notifications/99999999/read', 'buyer', undef,
      404, 'NOTIFICATION_NOT_FOUND' ],
    [ 'the seller moves an order of products not theirs', POST => "/api/v1/orders/$order_id/transitions", 'seller',
      '{"to":"PREPARING"}', 404, 'ORDER_NOT_FOUND' ],
    [ 'the buyer moves their own order', POST => "/api/v1/orders/$order_id/transitions", 'buyer', '{"to":"PREPARING"}', 403,
      'FORBIDDEN' ],
    [ 'the seller asks to return the buyer\'s order', POST => "/api/v1/orders/$order_id/return", 'seller', '{"reason":"x"}',
      404, 'ORDER_NOT_FOUND' ],
    [ 'the buyer returns an order never delivered', POST => "/api/v1/orders/$order_id/return", 'buyer', '{"reason":"x"}', 409,
      'INVALID_TRANSITION' ],
    [ 'the admin moves the order from a stale version', POST => "/api/v1/orders/$order_id/transitions", 'admin',
      '{"to":"PREPARING"}', 412, 'VERSION_MISMATCH', [ [ 'If-Match' => '"7"' ] ] ],
    [ 'the admin sends a malformed If-Match', POST => "/api/v1/orders/$order_id/transitions", 'admin', '{"to":"PREPARING"}',
      400, 'INVALID_REQUEST', [ [ 'If-Match' => '"1", "2"' ] ] ],
    [ 'the admin jumps PAID -> DELIVERED', POST => "/api/v1/orders/$order_id/transitions", 'admin', '{"to":"DELIVERED"}', 409,
      'INVALID_TRANSITION' ],
    [ 'the buyer registers a webhook', POST => '/api/v1/admin/webhooks', 'buyer',
      '{"url":"http://127.0.0.1:9/h","events":["order.paid"],"secret":"whsec_' . ('A' x 43) . '="}', 403, 'FORBIDDEN' ],
    [ 'the seller lists webhooks', GET => '/api/v1/admin/webhooks', 'seller', undef, 403, 'FORBIDDEN' ],
    [ 'the buyer reads deliveries', GET => '/api/v1/admin/webhooks/1/deliveries', 'buyer', undef, 403, 'FORBIDDEN' ],
    [ 'deliveries of no webhook', GET => '/api/v1/admin/webhooks/99999999/deliveries', 'admin', undef, 404, 'WEBHOOK_NOT_FOUND' ],
) {
    my ($name, $m, $path, $who, $body, $st, $code, $extra) = @$c;
    add_case(name => $name, method => $m, path => $path, raw => 1, body => $body, want => [$st], code => $code,
        headers => [ [ Authorization => "Bearer $tok{$who}" ], (defined $body ? ([ 'Content-Type' => 'application/json' ]) : ()),
            @{ $extra || [] } ]);
}

# ---- routing
for my $c ([ PUT => '/api/v1/products/1' ], [ DELETE => '/api/v1/users/1' ], [ PATCH => '/api/v1/orders/1' ],
    [ GET => '/api/v1/users/1/charge' ], [ POST => '/api/v1/products/1' ], [ PUT => '/api/v1/orders' ],
    [ GET => '/api/v1/auth/tokens' ], [ POST => '/api/v1/admin/audit' ], [ GET => '/api/v1/orders/1/transitions' ],
    [ GET => '/api/v1/orders/1/return' ], [ DELETE => '/api/v1/admin/webhooks' ], [ PUT => '/api/v1/users/1/notifications/1/read' ],
    [ POST => '/api/v1/users/1/notifications' ], [ POST => '/api/v1/admin/webhooks/1/deliveries' ]) {
    add_case(name => "$c->[0] $c->[1] is 405", method => $c->[0], path => $c->[1],
        headers => [ [ Authorization => "Bearer $admin" ], [ 'Content-Type' => 'application/json' ] ],
        body => '{}', want => [405], code => 'METHOD_NOT_ALLOWED', raw => 1);
}
for my $p ('/api/v1/nope', '/api/v1/products/1/nope', '/api/v2/products', '/api/v1/users/1/charge/x', '/api/v1/products/1/',
    '/api/v1/products/', '/API/V1/PRODUCTS/1') {
    add_case(name => "GET $p is 404", method => 'GET', path => $p, headers => [], want => [404], code => 'NOT_FOUND', raw => 1);
}
add_case(name => 'GET /api/v1/products/1/../../users/1 (normalised to a route needing a token)', method => 'GET',
    path => '/api/v1/products/1/../../users/1', headers => [], want => '4xx', raw => 1);

# ---- headers
my $charge = sub { ('POST', '/api/v1/users/1/charge') };
my $cbody = '{"amount":1000}';
my @HDR_AUTH = ([ Authorization => "Bearer $buyer" ], [ 'Content-Type' => 'application/json' ]);
for my $k ('a b', 'x' x 256, '키', "a\tb", "a\x7fb", '"unterminated', "\x01", '"', '""', "a\x00b", "a\rb") {
    (my $label = $k) =~ s/([^\x21-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    $label = substr($label, 0, 30) . '...' if length $label > 30;
    for my $ep ([ 'charge', 'POST', '/api/v1/users/1/charge', $cbody ],
        [ 'order', 'POST', '/api/v1/orders', $JSON->encode({ items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP} }) ],
        # (cancel takes no Idempotency-Key: it ignores one, so it is not here)
        [ 'bid', 'POST', "/api/v1/auctions/$auction_id/bids", '{"price":10000,"quantity":1}' ]) {
        my $bytes = encode_utf8($k);
        # a key nginx can refuse itself (control bytes) is a 400 from nginx
        my $nginx_may = $bytes =~ /[\x00\r]/;
        add_case(name => "$ep->[0]: Idempotency-Key '$label'", method => $ep->[1], path => $ep->[2],
            headers => [ @HDR_AUTH, [ 'Idempotency-Key' => $bytes ] ], body => $ep->[3], raw => 1,
            # a bid on a waiting auction may be refused for that first
            want => $ep->[0] eq 'bid' ? [ 400, 409 ] : [400],
            code => $nginx_may ? undef : $ep->[0] eq 'bid' ? [qw(IDEMPOTENCY_KEY_INVALID AUCTION_NOT_RUNNING)] : 'IDEMPOTENCY_KEY_INVALID');
    }
}
add_case(name => 'charge: empty Idempotency-Key', method => 'POST', path => '/api/v1/users/1/charge',
    headers => [ @HDR_AUTH, [ 'Idempotency-Key' => '' ] ], body => $cbody, raw => 1, want => [400],
    code => [qw(IDEMPOTENCY_KEY_INVALID IDEMPOTENCY_KEY_MISSING)]);
add_case(name => 'charge: no Idempotency-Key', method => 'POST', path => '/api/v1/users/1/charge',
    headers => [@HDR_AUTH], body => $cbody, raw => 1, want => [400], code => 'IDEMPOTENCY_KEY_MISSING');

for my $len (8 * 1024, 16 * 1024, 64 * 1024) {
    add_case(name => "charge: ${len}-byte header", method => 'POST', path => '/api/v1/users/1/charge',
        headers => [ @HDR_AUTH, [ 'Idempotency-Key' => uniq_key('h') ], [ 'X-Junk' => 'j' x $len ] ],
        body => $cbody, raw => 1, want => '4xx', nginx => 1);
    add_case(name => "charge: ${len}-byte Idempotency-Key", method => 'POST', path => '/api/v1/users/1/charge',
        headers => [ @HDR_AUTH, [ 'Idempotency-Key' => 'k' x $len ] ], body => $cbody, raw => 1, want => '4xx', nginx => 1);
    add_case(name => "charge: ${len}-byte Authorization", method => 'POST', path => '/api/v1/users/1/charge',
        headers => [ [ Authorization => 'Bearer ' . ('A' x $len) ], [ 'Content-Type' => 'application/json' ],
            [ 'Idempotency-Key' => uniq_key('h') ] ], body => $cbody, raw => 1, want => '4xx', nginx => 1);
    add_case(name => "GET ${len}-byte query", method => 'GET', path => '/api/v1/products?q=' . ('a' x $len),
        headers => [], raw => 1, want => '4xx', nginx => 1);
    add_case(name => "GET ${len}-byte header name", method => 'GET', path => '/api/v1/products/1',
        headers => [ [ ('X' x $len) => 'v' ] ], raw => 1, want => '4xx', nginx => 1);
}
# many headers on a read: refused or served, never a 5xx
add_case(name => 'GET with 500 headers', method => 'GET', path => '/api/v1/products/1',
    headers => [ map { [ "X-H$_" => 'v' x 60 ] } 1 .. 500 ], raw => 1, want => 'not5xx', nginx => 1);
for my $a ("Bearer \x00$buyer", "Bearer $buyer\x00", "Bearer ' OR 1=1 --", "Basic YWRtaW46YWRtaW4=", "Bearer",
    "Bearer  ", "bearer $buyer" . 'x', "Bearer " . ('%' x 43)) {
    (my $label = $a) =~ s/([^\x21-\x7e ])/sprintf('\\x%02x', ord $1)/ge;
    add_case(name => "charge: Authorization '" . substr($label, 0, 24) . "'", method => 'POST', path => '/api/v1/users/1/charge',
        headers => [ [ Authorization => $a ], [ 'Content-Type' => 'application/json' ], [ 'Idempotency-Key' => uniq_key('h') ] ],
        body => $cbody, raw => 1, want => [ 400, 401 ]);
}
# a Content-Length that lies: shorter than the body, and a body that never comes
add_case(name => 'charge: Content-Length shorter than the body', method => 'POST', path => '/api/v1/users/1/charge',
    headers => [ @HDR_AUTH, [ 'Idempotency-Key' => uniq_key('h') ] ], body => $cbody, raw => 1, cl => 5, want => [400]);

# ---------------------------------------------------------------- run it
# raw_request for anything HTTP::Tiny would refuse or rewrite; HTTP::Tiny
# for the rest (it handles the 10 MB upload that nginx answers early).
sub send_raw {
    my ($c) = @_;
    my $body = $c->{body} // '';
    if (defined $c->{cl}) {
        require IO::Socket::INET;
        local $SIG{PIPE} = 'IGNORE';
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp', Timeout => 30)
            or return { status => 0, body => "connect: $!", headers => {} };
        my $req = "$c->{method} $c->{path} HTTP/1.0\r\nHost: localhost\r\n";
        $req .= "$_->[0]: $_->[1]\r\n" for @{ $c->{headers} };
        print {$sock} $req . "Content-Length: $c->{cl}\r\n\r\n$body";
        local $/;
        my $text = <$sock> // '';
        my ($st) = $text =~ m{^HTTP/\d\.\d (\d{3})};
        my ($ct) = $text =~ m{^Content-Type:\s*(\S+)}mi;
        my ($b) = $text =~ /\r\n\r\n(.*)\z/s;
        return { status => $st // 0, body => $b // '', headers => { 'content-type' => $ct // '' },
            json => eval { $JSON->decode($b // '') } };
    }
    if ($c->{raw} || grep { $_->[1] =~ /[^\x20-\x7e]/ || $_->[0] =~ /[^\x21-\x7e]/ } @{ $c->{headers} }) {
        return raw_request($s, $c->{method}, $c->{path}, $c->{headers}, $c->{body});
    }
    my %h;
    $h{ $_->[0] } = $_->[1] for @{ $c->{headers} };
    return $s->request($c->{method}, $c->{path}, \%h, $c->{body});
}

my %by_status;
my $fivexx = 0;
for my $c (@cases) {
    my $res = send_raw($c);
    my $st = $res->{status} // 0;
    $by_status{$st}++;
    $fivexx++ if $st >= 500 || $st < 100;
    my $j = ref $res->{json} eq 'HASH' ? $res->{json} : {};
    my $ct = $res->{headers}{'content-type'} // '';
    my @why;
    if ($c->{want} eq 'not5xx') {
        push @why, "status $st" unless $st >= 200 && $st < 500;
    } elsif ($c->{want} eq '4xx') {
        push @why, "status $st is not 4xx" unless $st >= 400 && $st < 500;
    } else {
        push @why, "status $st not in (@{ $c->{want} })" unless grep { $_ == $st } @{ $c->{want} };
    }
    # nginx's own refusals of oversized headers (400/414/431/494) may be HTML
    my $nginx_own = $c->{nginx} && $ct !~ /json/;
    if (!$nginx_own && $st >= 400 && $st < 600) {
        push @why, "content-type '$ct' is not problem+json" unless $ct =~ m{^application/problem\+json\b};
        push @why, "problem lacks '$_'" for grep { !exists $j->{$_} } qw(type title status detail code);
        push @why, "problem status $j->{status} != $st" if defined $j->{status} && $j->{status} != $st;
    }
    push @why, 'detail does not name ' . $c->{detail} if $c->{detail} && ($j->{detail} // '') !~ $c->{detail};
    if (my $code = $c->{code}) {
        my @ok = ref $code ? @$code : ($code);
        push @why, 'code ' . ($j->{code} // 'none') . " not in (@ok)" unless grep { ($j->{code} // '') eq $_ } @ok;
    }
    ok(!@why, $c->{name}) or diag(join('; ', @why) . ': ' . substr($res->{body} // '', 0, 300));
}
note('cases: ' . scalar(@cases) . '; answers by status: ' . join(' ', map { "$_=$by_status{$_}" } sort keys %by_status));
is($fivexx, 0, 'no 5xx (and no dropped connection) in the whole table');

is(money_snapshot($s), $before, 'the table changed no balance, stock, order, ledger row, product, auction or user');
is(basket_snapshot(), $baskets_before, 'nor any cart, wishlist, profile, password or session');
is(gateway_snapshot(), $gw_before, 'nor any order status, payment, refund or prepared amount (ours or the gateway\'s)');
my $acc = $s->sql("SELECT COUNT(*) FROM users WHERE role = 'ADMIN'")->[0][0];
is($acc, 1, 'still exactly one admin');
unlike($s->log_text('nginx'), qr/" 5\d\d \d+ /, 'no 5xx in the nginx access log');
is(scalar(grep { $_ ne 'mariadbd' || 1 } $s->dead_components), 0, 'every component still running')
    or diag(join(',', $s->dead_components));

# ---------------------------------------------------------------- strictness
# Input that is not quite JSON, or not quite one request, aimed at the one
# endpoint where being lenient moves money: each must be refused, and the
# ledger must not grow. (After the snapshot: a lenient parser charges here.)
{
    my $n = sub { $s->sql('SELECT COUNT(*) FROM point_ledger')->[0][0] };
    my @strict = (
        [ 'single-quoted key', "{'amount':1000}", 'application/json', [400], 'INVALID_JSON' ],
        [ 'NaN beside the amount', '{"amount":1000,"x":NaN}', 'application/json', [400], 'INVALID_JSON' ],
        [ 'Infinity beside the amount', '{"amount":1000,"x":-Infinity}', 'application/json', [400], 'INVALID_JSON' ],
        [ 'overlong UTF-8 beside the amount', qq({"amount":1000,"x":"\xc0\xaf"}), 'application/json', [400], 'INVALID_JSON' ],
        [ 'UTF-8-encoded surrogate beside the amount', qq({"amount":1000,"x":"\xed\xa0\x80"}), 'application/json', [400], 'INVALID_JSON' ],
        [ 'duplicate key, bad value first', '{"amount":[],"amount":1000}', 'application/json', [400], undef ],
        [ 'duplicate key, two amounts', '{"amount":1000000,"amount":1000}', 'application/json', [400], undef ],
        [ 'text/plain body', '{"amount":1000}', 'text/plain', [ 400, 415 ], undef ],
        [ 'no Content-Type', '{"amount":1000}', undef, [ 400, 415 ], undef ],
    );
    for my $c (@strict) {
        my ($name, $body, $ct, $want, $code) = @$c;
        my $k = uniq_key('strict');
        my $was = $n->();
        my $res = raw_request($s, 'POST', '/api/v1/users/1/charge',
            [ [ Authorization => "Bearer $buyer" ], [ 'Idempotency-Key' => $k ], ($ct ? ([ 'Content-Type' => $ct ]) : ()) ], $body);
        my $ok = (grep { $_ == $res->{status} } @$want) && (!$code || ($res->{json}{code} // '') eq $code);
        my $moved = $n->() - $was;
        ok($ok && !$moved, "strict: charge with $name is refused and moves no money")
            or diag("got $res->{status}: $res->{body}; ledger rows added: $moved");
    }
    my $was = $n->();
    my $res = raw_request($s, 'POST', '/api/v1/users/1/charge',
        [ [ Authorization => "Bearer $buyer" ], [ 'Content-Type' => 'application/json' ],
          [ 'Idempotency-Key' => uniq_key('a') ], [ 'Idempotency-Key' => uniq_key('b') ] ], $cbody);
    my $moved = $n->() - $was;
    ok($res->{status} == 400 && !$moved, 'strict: a charge with two Idempotency-Key headers is refused and moves no money')
        or diag("got $res->{status}: $res->{body}; ledger rows added: $moved");
    for my $q ('page=%00', 'status=%00', 'size=%00', 'page=1%00', 'status=ON_SALE%00x') {
        my $g = raw_request($s, 'GET', "/api/v1/products?$q", []);
        is($g->{status}, 400, "strict: ?$q (a NUL byte) is refused") or diag("got $g->{status}");
    }
}

# ---------------------------------------------------------------- metacharacters are data, not code
# (after the snapshot: these are meant to succeed and to store the text as is)
{
    my $evil = q{'; DROP TABLE users; -- " OR 1=1 /* \\ %_ };
    my $p = $s->post_json('/api/v1/products', { name => $evil, price => 1000, stock => 3 }, { Authorization => "Bearer $admin" });
    is($p->{status}, 201, 'a product named with SQL metacharacters is created') or diag($p->{body});
    my $g = $s->get("/api/v1/products/$p->{json}{id}");
    is($g->{json}{name}, $evil, 'and its name reads back byte for byte');
    my $q = $s->get('/api/v1/products?q=' . "%27%20OR%201%3D1%20--");
    is($q->{status}, 200, "search for ' OR 1=1 -- is a plain search");
    ok(@{ $q->{json}{items} || [] } < 20, 'which does not return the whole catalog')
        or diag(scalar @{ $q->{json}{items} || [] });
    my $u = $s->post_json('/api/v1/users', { email => "o'brien+x\@example.com", password => "pa'ss\"word--1", name => "Robert'); DROP TABLE users;--",
        phone => '010-7777-8888' });
    is($u->{status}, 201, 'a user with quotes in email, password and name registers') or diag($u->{body});
    my $t = login($s, "o'brien+x\@example.com", "pa'ss\"word--1");
    my $me = $s->get("/api/v1/users/$u->{json}{userId}", { Authorization => "Bearer $t" });
    is($me->{json}{name}, "Robert'); DROP TABLE users;--", 'and reads back as given');
    my $bad = $s->post_json('/api/v1/auth/tokens', { email => "o'brien+x\@example.com' --", password => 'x' x 8 });
    is($bad->{status}, 401, 'a login with a comment-terminated email is just wrong credentials');
    ok($s->sql('SELECT COUNT(*) FROM users')->[0][0] >= 5, 'the users table is still there');
}

audit_ok($s, 'audit clean after the hostile table');
$s->stop;
done_testing;
