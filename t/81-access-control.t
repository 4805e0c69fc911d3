#!/usr/bin/perl
# Access control: every route that belongs to a user, an order, a receipt or
# an admin, tried with no token, an expired token, a revoked token and
# someone else's token: 401 / 401 / 401 / 403 (another user's order or
# receipt: 404, as if it did not exist), and none of it changes anything.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use MIME::Base64 qw(decode_base64url);
use POSIX qw(strftime);

use Jangteo::Client qw(test_stack login);
use Jangteo::Load qw(money_snapshot audit_ok uniq_key);

my $s = test_stack(demo => 1, workers => 2, conf => { server => { enable_test_routes => 'yes' }, auctions => { async => 'no' } });

sub bearer { { Authorization => "Bearer $_[0]" } }
my %PW = (buyer => 'jangteo-buyer-1234', buyer2 => 'jangteo-buyer-5678', seller => 'jangteo-seller-1234', admin => 'jangteo-admin-1234');
sub tok { my ($who) = @_; login($s, "$who\@jangteo.test", $PW{$who}) }

my %t = map { $_ => tok($_) } qw(buyer buyer2 seller admin);

# ---------------------------------------------------------------- what the victim owns
my $r = $s->post_json('/api/v1/users/1/charge', { amount => 500_000 }, { %{ bearer($t{buyer}) }, 'Idempotency-Key' => uniq_key('seed') });
is($r->{status}, 200, 'victim charged') or diag($r->{body});
my %SHIP = (recipient => '홍길동', phone => '010-1111-2222', zipCode => '12345', address => '서울 어딘가 1');
$r = $s->post_json('/api/v1/orders', { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP} }, bearer($t{buyer}));
is($r->{status}, 201, 'victim ordered') or diag($r->{body});
my $order = $r->{json}{orderId};

# an auction that is running (the test clock moves past its start) and one bid: a receipt
my $start = int(time / 60) * 60 + 120;
my $iso = sub { strftime('%Y-%m-%dT%H:%M:00Z', gmtime($_[0])) };
$r = $s->post_json('/api/v1/auctions', { productName => '경매 상품', originPrice => 10_000, stock => 10, maxPerBuyer => 2,
    variationSeconds => 60, startsAt => $iso->($start), endsAt => $iso->($start + 600),
    pricePolicy => { type => 'CONSTANT', variationWidth => 100 } }, bearer($t{seller}));
is($r->{status}, 201, 'seller created an auction') or diag($r->{body});
my $auction = $r->{json}{id};
$s->post_json('/test/clock', { offsetMs => ($start - time + 5) * 1000 });
my $price = $s->get("/api/v1/auctions/$auction")->{json}{currentPrice};
$r = $s->post_json("/api/v1/auctions/$auction/bids", { price => $price, quantity => 1 }, bearer($t{buyer}));
ok($r->{status} == 201 || $r->{status} == 202, 'victim bid') or diag($r->{body});
my $receipt = $r->{json}{receiptId};
ok($receipt, 'a receipt id');

# tokens of the victim (and the admin) that no longer work
sub expire {
    my ($token) = @_;
    my $hex = sha256_hex(decode_base64url($token));
    $s->sql("UPDATE auth_tokens SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE token_hash = UNHEX('$hex')");
    $s->auth_changed;
    return $s->sql("SELECT COUNT(*) FROM auth_tokens WHERE token_hash = UNHEX('$hex') AND expires_at < NOW(6)")->[0][0];
}
sub revoke {
    my ($token) = @_;
    my $res = $s->request('DELETE', '/api/v1/auth/tokens/current', bearer($token));
    return $res->{status};
}
my %expired = (buyer => tok('buyer'), admin => tok('admin'));
is(expire($expired{$_}), 1, "$_: a token expired by SQL") for sort keys %expired;
my %revoked = (buyer => tok('buyer'), admin => tok('admin'));
is(revoke($revoked{$_}), 204, "$_: a token revoked through the API") for sort keys %revoked;

my $before = money_snapshot($s);
my $state = sub {
    join('|', map { join(',', @$_) } @{ $s->sql(
        "SELECT status FROM orders WHERE id = $order UNION ALL SELECT status FROM receipts WHERE uuid = '$receipt'"
        . " UNION ALL SELECT COUNT(*) FROM idempotency_keys UNION ALL SELECT COUNT(*) FROM auth_tokens WHERE revoked_at IS NULL") });
};
my $state_before = $state->();

# ---------------------------------------------------------------- the matrix
# [method, path, body, owner (whose expired/revoked tokens to use), answer for the other user's token]
my $order_body = { items => [ { productId => 1, quantity => 1 } ], shipping => {%SHIP} };
my @ROUTES = (
    [ GET    => '/api/v1/users/1',                    undef, 'buyer', 403 ],
    [ POST   => '/api/v1/users/1/charge',             { amount => 1000 }, 'buyer', 403 ],
    [ GET    => '/api/v1/users/1/points',             undef, 'buyer', 403 ],
    [ GET    => '/api/v1/users/1/orders',             undef, 'buyer', 403 ],
    [ GET    => '/api/v1/users/1/receipts',           undef, 'buyer', 403 ],
    [ GET    => '/api/v1/users/1/receipts?role=seller', undef, 'buyer', 403 ],
    [ GET    => "/api/v1/orders/$order",              undef, 'buyer', 404 ],
    [ POST   => "/api/v1/orders/$order/cancel",       undef, 'buyer', 404 ],
    [ GET    => "/api/v1/receipts/$receipt",          undef, 'buyer', 404 ],
    [ POST   => "/api/v1/receipts/$receipt/refund",   undef, 'buyer', 404 ],
    [ GET    => '/api/v1/admin/audit',                undef, 'admin', 403 ],
    # routes with no owner: only the 401s apply (the "other" column is a buyer doing an admin's job)
    [ POST   => '/api/v1/orders',                     $order_body, 'buyer', undef ],
    [ DELETE => '/api/v1/auth/tokens/current',        undef, 'buyer', undef ],
    [ POST   => '/api/v1/products',                   { name => '권한 없음', price => 1000, stock => 1 }, 'admin', 403 ],
    [ PATCH  => '/api/v1/products/2',                 { price => 1 }, 'admin', 403 ],
    [ DELETE => '/api/v1/products/2',                 undef, 'admin', 403 ],
    [ POST   => '/api/v1/products/2/stock',           { delta => 5 }, 'admin', 403 ],
    [ POST   => '/api/v1/auctions',                   { productName => 'x' }, 'admin', 403 ],
    [ DELETE => "/api/v1/auctions/$auction",          undef, 'admin', 403 ],
);

my %seen;
for my $rt (@ROUTES) {
    my ($m, $path, $body, $owner, $other) = @$rt;
    my @tries = (
        [ 'no token', {}, 401 ],
        [ 'a malformed token', bearer('x' x 43), 401 ],
        [ 'an expired token', bearer($expired{$owner}), 401 ],
        [ 'a revoked token', bearer($revoked{$owner}), 401 ],
    );
    # "someone else": buyer2 for the buyer's things; a buyer for the admin's
    push @tries, [ "another user's token", bearer($owner eq 'admin' ? $t{buyer} : $t{buyer2}), $other ] if defined $other;
    for my $try (@tries) {
        my ($label, $h, $want) = @$try;
        my %hdr = (%$h, 'Idempotency-Key' => uniq_key('ac'));
        my $res = defined $body ? $s->post_json($path, $body, \%hdr) : $s->request($m, $path, \%hdr);
        $res = $s->request($m, $path, { %hdr, 'Content-Type' => 'application/json' }, JSON::PP->new->utf8->encode($body))
            if defined $body && $m ne 'POST';
        my $j = ref $res->{json} eq 'HASH' ? $res->{json} : {};
        my $ok = $res->{status} == $want && ($res->{headers}{'content-type'} // '') =~ m{^application/problem\+json};
        ok($ok, "$m $path with $label: $want") or diag("got $res->{status}: $res->{body}");
        $seen{$want}++;
        if ($want == 401) {
            like($res->{headers}{'www-authenticate'} // 'Bearer', qr/^Bearer/i, "$m $path with $label: WWW-Authenticate is Bearer if present");
        }
    }
}
note('answers: ' . join(' ', map { "$_=$seen{$_}" } sort keys %seen));

# the other user's 404 must look exactly like a real miss
{
    my $miss = $s->get('/api/v1/orders/99999999', bearer($t{buyer2}));
    my $theirs = $s->get("/api/v1/orders/$order", bearer($t{buyer2}));
    is($theirs->{json}{code}, $miss->{json}{code}, "another user's order and a missing order answer with the same code");
    $miss = $s->get('/api/v1/receipts/00000000-0000-4000-8000-000000000000', bearer($t{buyer2}));
    $theirs = $s->get("/api/v1/receipts/$receipt", bearer($t{buyer2}));
    is($theirs->{json}{code}, $miss->{json}{code}, "another user's receipt and a missing receipt answer with the same code");
}

# the list routes of the other user show nothing of the victim's
{
    my $l = $s->get('/api/v1/users/2/orders', bearer($t{buyer2}));
    ok(!grep({ $_->{orderId} == $order } @{ $l->{json}{items} || [] }), "buyer2's order list does not hold the victim's order");
    $l = $s->get('/api/v1/users/2/receipts', bearer($t{buyer2}));
    ok(!grep({ ($_->{receiptId} // '') eq $receipt } @{ $l->{json}{items} || [] }), "buyer2's receipts do not hold the victim's");
}

# an admin's token still works on the victim (the matrix refused only the others)
{
    my $res = $s->get('/api/v1/users/1', bearer($t{admin}));
    is($res->{status}, 200, 'an admin may read the victim');
    $res = $s->get('/api/v1/users/1', bearer($t{buyer}));
    is($res->{status}, 200, "the victim's own live token still works");
}

is(money_snapshot($s), $before, 'nothing refused above changed money, stock or orders');
is($state->(), $state_before, 'the order, the receipt, the idempotency keys and the live tokens are as they were');
audit_ok($s, 'audit clean after the access-control matrix');
$s->stop;
done_testing;
