# The contract: a representative slice of the integration scenarios sent
# through `prism proxy`, which validates every request and every answer
# against openapi/jangteo.yaml (t/lib/Jangteo/Contract.pm). Any answer that
# breaks the spec fails, and so does a request, unless the scenario breaks
# the spec on purpose to reach an error class (then prism must say so).
# Every operation of the spec must be exercised: a new route needs a
# scenario here.
#
# To add one: push [ 'name' => sub { my ($x) = @_; call(...); } ] onto
# @SCENARIOS; $x holds the users, products and ids earlier ones made.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use File::Temp qw(tempdir);
use Jangteo::Client qw(test_stack);
use Jangteo::Auctions qw(clock_to clock_reset auction_body fund wall_ms wait_settled);
use Jangteo::Contract qw(contract_start call coverage contract_stop);
use Jangteo::Receiver;

my $s = test_stack(
    demo => 1,
    rate_limits => 1,
    pgsim => 1,
    conf => { server => { enable_test_routes => 'yes' }, auctions => { consumers => 1 } },
);
contract_start($s);

my %SHIP = (recipient => '김구매', phone => '010-1234-5678', zipCode => '06236', address => '서울시 강남구 테헤란로 1');
my $seq = 0;
sub email { sprintf('contract-%d-%d@example.com', $$, ++$seq) }
sub key { sprintf('contract-%d-%d-%d', $$, time, ++$seq) }

sub signup_login {
    my ($x, $who, %f) = @_;
    my %u = (email => email(), password => 'contract-pw-' . $seq, name => '계약 시험', phone => '010-2222-3333', %f);
    my $r = call(POST => '/api/v1/users', json => \%u, status => 201, name => "sign up $who");
    $u{id} = $r->{json}{userId};
    $r = call(POST => '/api/v1/auth/tokens', json => { email => $u{email}, password => $u{password} }, status => 201,
        name => "log in $who");
    $u{token} = $r->{json}{token};
    $x->{$who} = \%u;
}

my @SCENARIOS = (
    [ 'operations' => sub {
        call(GET => '/healthz', status => 200);
        call(GET => '/readyz', status => 200);
        call(GET => '/status', status => 200);
        call(GET => '/status?json', status => 200);
        call(GET => '/status?full', status => 200);
        call(GET => '/metrics', status => 200);
    } ],

    [ 'sign-up, login, profile, logout' => sub {
        my ($x) = @_;
        signup_login($x, 'buyer');
        signup_login($x, 'buyer2');
        signup_login($x, 'seller', role => 'SELLER');
        my $dir = tempdir(CLEANUP => 1);
        open my $fh, '>', "$dir/pw" or die $!;
        print $fh "contract-admin-pw\n";
        close $fh;
        my $admin_email = email();
        my ($rc, $out) = $s->admin('create-admin', '--email', $admin_email, '--password-file', "$dir/pw");
        is($rc, 0, 'create-admin') or diag($out);
        my $r = call(POST => '/api/v1/auth/tokens', json => { email => $admin_email, password => 'contract-admin-pw' },
            status => 201, name => 'log in admin');
        $x->{admin} = { id => $r->{json}{userId}, token => $r->{json}{token} };

        call(POST => '/api/v1/users', json => { email => $x->{buyer}{email}, password => 'another-pw-1', name => '중복',
            phone => '010-1111-2222' }, status => 409, code => 'EMAIL_TAKEN');
        call(POST => '/api/v1/users', json => { email => email(), password => 'short', name => '짧음', phone => '010-1111-2222' },
            status => 400, code => 'INVALID_REQUEST', breaks_request => 1, name => 'sign up with a short password');
        call(POST => '/api/v1/auth/tokens', json => { email => $x->{buyer}{email}, password => 'wrong-password' },
            status => 401, code => 'INVALID_CREDENTIALS');
        call(GET => "/api/v1/users/$x->{buyer}{id}", token => $x->{buyer}{token}, status => 200);
        call(GET => "/api/v1/users/$x->{buyer}{id}", status => 401, code => 'UNAUTHORIZED', breaks_request => 1,
            name => 'profile without a token');
        call(GET => "/api/v1/users/$x->{buyer}{id}", token => $x->{buyer2}{token}, status => 403, code => 'FORBIDDEN',
            name => "another buyer's profile");
        call(GET => '/api/v1/users/999999999', token => $x->{admin}{token}, status => 404, code => 'USER_NOT_FOUND');
        call(GET => '/api/v1/users/abc', token => $x->{admin}{token}, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'a user id that is not a number');

        my $r2 = call(POST => '/api/v1/auth/tokens', json => { email => $x->{buyer2}{email}, password => $x->{buyer2}{password} },
            status => 201, name => 'a second token');
        call(DELETE => '/api/v1/auth/tokens/current', token => $r2->{json}{token}, status => 204, name => 'log out');
        call(GET => "/api/v1/users/$x->{buyer2}{id}", token => $r2->{json}{token}, status => 401, code => 'UNAUTHORIZED',
            name => 'the revoked token is refused');
    } ],

    [ 'charge with replay and mismatch' => sub {
        my ($x) = @_;
        my ($uid, $t) = @{ $x->{buyer} }{qw(id token)};
        my $k = key();
        my $r = call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => $k },
            json => { amount => 50_000 }, status => 200, name => 'charge 50,000');
        is($r->{json}{balance}, 50_000, 'balance 50,000');
        $r = call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => $k },
            json => { amount => 50_000 }, status => 200, name => 'the same charge again: replayed');
        is($r->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => $k },
            json => { amount => 60_000 }, status => 422, code => 'IDEMPOTENCY_KEY_REUSED', name => 'the key with another amount');
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => "\"$k-q\"" },
            json => { amount => 1_000 }, status => 200, name => 'a quoted key');
        call(POST => "/api/v1/users/$uid/charge", token => $t, json => { amount => 1_000 }, status => 400,
            code => 'IDEMPOTENCY_KEY_MISSING', breaks_request => 1, name => 'charge without a key');
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => 'a b' },
            json => { amount => 1_000 }, status => 400, code => 'IDEMPOTENCY_KEY_INVALID', breaks_request => 1,
            name => 'a key with a space');
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => key() },
            json => { amount => 999 }, status => 400, code => 'AMOUNT_TOO_SMALL', breaks_request => 1);
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => key() },
            json => { amount => 1_000_001 }, status => 400, code => 'AMOUNT_TOO_LARGE', breaks_request => 1);
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => key(), 'Content-Type' => 'text/plain' },
            body => '{"amount":1000}', status => 415, code => 'UNSUPPORTED_MEDIA_TYPE', breaks_request => 1);
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => key() },
            json => { amount => 1000, pad => 'x' x 70_000 }, status => 413, code => 'PAYLOAD_TOO_LARGE', breaks_request => 1,
            name => 'a body over body_max');
        # near the balance cap: given through SQL with its ledger row
        fund($s, [ $x->{buyer2}{id} ], 99_999_000);
        my $b2 = $s->post_json('/api/v1/auth/tokens', { email => $x->{buyer2}{email}, password => $x->{buyer2}{password} });
        $x->{buyer2}{token} = $b2->{json}{token};
        call(POST => "/api/v1/users/$x->{buyer2}{id}/charge", token => $x->{buyer2}{token},
            headers => { 'Idempotency-Key' => key() }, json => { amount => 5_000 }, status => 409, code => 'BALANCE_LIMIT');
        $r = call(GET => "/api/v1/users/$uid/points?limit=1", token => $t, status => 200, name => 'ledger, first page');
        is(scalar @{ $r->{json}{items} }, 1, 'one ledger row');
        call(GET => "/api/v1/users/$uid/points?limit=1&cursor=$r->{json}{nextCursor}", token => $t, status => 200,
            name => 'ledger, next page');
        call(GET => "/api/v1/users/$uid/points?limit=101", token => $t, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'ledger limit above 100');
    } ],

    [ 'catalog reads and writes' => sub {
        my ($x) = @_;
        my $st = $x->{seller}{token};
        call(GET => '/api/v1/products', status => 200);
        call(GET => '/api/v1/products?page=2&size=5&status=ON_SALE', status => 200);
        my $r = call(GET => '/api/v1/products?q=' . _uri('김치'), status => 200, name => 'search 김치');
        ok($r->{json}{total} > 0, 'search finds products');
        call(GET => '/api/v1/products?size=0', status => 400, code => 'INVALID_REQUEST', breaks_request => 1);
        call(GET => '/api/v1/products?status=SOLD', status => 400, code => 'INVALID_REQUEST', breaks_request => 1);
        call(GET => '/api/v1/products/popular', status => 200);
        $r = call(GET => '/api/v1/products/1', status => 200);
        like($r->{headers}{etag} // '', qr{^W/"\d+"$}, 'ETag on the detail');
        call(GET => '/api/v1/products/999999999', status => 404, code => 'PRODUCT_NOT_FOUND');

        $r = call(POST => '/api/v1/products', token => $st, json => { name => '계약 시험 사과', price => 12_000, stock => 5,
            description => '아삭한 사과' }, status => 201, name => 'a seller creates a product');
        my $p = $x->{product} = $r->{json};
        $r = call(POST => '/api/v1/products', token => $st, json => { name => '계약 시험 티셔츠', price => 20_000,
            options => [ { name => 'S', extraPrice => 0, stock => 3 }, { name => 'L', extraPrice => 2_000, stock => 1 } ] },
            status => 201, name => 'a product with options');
        $x->{shirt} = $r->{json};
        call(POST => '/api/v1/products', token => $x->{buyer}{token}, json => { name => '안 됨', price => 1, stock => 1 },
            status => 403, code => 'FORBIDDEN', name => 'a buyer may not create products');
        call(POST => '/api/v1/products', token => $st, json => { name => '재고 없음', price => 1 },
            status => 400, code => 'INVALID_REQUEST', name => 'no stock and no options');
        $r = call(PATCH => "/api/v1/products/$p->{id}", token => $st, headers => { 'If-Match' => "W/\"$p->{version}\"" },
            json => { price => 11_000 }, status => 200, name => 'PATCH with If-Match');
        is($r->{json}{price}, 11_000, 'new price');
        call(PATCH => "/api/v1/products/$p->{id}", token => $st, headers => { 'If-Match' => "\"$p->{version}\"" },
            json => { price => 10_000 }, status => 412, code => 'VERSION_MISMATCH', name => 'PATCH with a stale If-Match');
        call(POST => "/api/v1/products/$p->{id}/stock", token => $st, json => { delta => 3 }, status => 200, name => 'restock +3');
        call(POST => "/api/v1/products/$p->{id}/stock", token => $st, json => { delta => -100 }, status => 409,
            code => 'OUT_OF_STOCK', name => 'a correction below zero');
        call(POST => "/api/v1/products/$x->{shirt}{id}/stock", token => $st,
            json => { delta => 2, optionId => $x->{shirt}{options}[0]{id} }, status => 200, name => 'option restock');
        call(POST => "/api/v1/products/$x->{shirt}{id}/stock", token => $st, json => { delta => 2, optionId => 999999999 },
            status => 404, code => 'OPTION_NOT_FOUND');
        $r = call(POST => '/api/v1/products', token => $st, json => { name => '지울 상품', price => 100, stock => 1 }, status => 201,
            name => 'a product to delete');
        call(DELETE => "/api/v1/products/$r->{json}{id}", token => $st, headers => { 'If-Match' => '0' }, status => 204,
            name => 'DELETE with If-Match');
        call(DELETE => "/api/v1/products/$r->{json}{id}", token => $st, status => 404, code => 'PRODUCT_NOT_FOUND',
            name => 'DELETE again');
    } ],

    [ 'orders: success, out of stock, price changed, cancel' => sub {
        my ($x) = @_;
        my ($uid, $t) = @{ $x->{buyer} }{qw(id token)};
        my $p = $x->{product};
        my $k = key();
        my $body = { items => [ { productId => $p->{id}, quantity => 2 }, { productId => $x->{shirt}{id},
            optionId => $x->{shirt}{options}[1]{id}, quantity => 1 } ], shipping => {%SHIP}, expectedTotal => 44_000 };
        my $r = call(POST => '/api/v1/orders', token => $t, headers => { 'Idempotency-Key' => $k }, json => $body,
            status => 201, name => 'order two products');
        is($r->{json}{total}, 44_000, 'total 2 x 11,000 + 22,000, free shipping');
        my $order = $r->{json}{orderId};
        $r = call(POST => '/api/v1/orders', token => $t, headers => { 'Idempotency-Key' => $k }, json => $body,
            status => 201, name => 'the same order again: replayed');
        is($r->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
        $r = call(POST => '/api/v1/orders', token => $t, json => { items => [ { productId => $x->{shirt}{id},
            optionId => $x->{shirt}{options}[1]{id}, quantity => 1 } ], shipping => {%SHIP} }, status => 409,
            code => 'OUT_OF_STOCK', name => 'the last L is gone');
        is_deeply($r->{json}{productIds}, [ $x->{shirt}{id} ], 'productIds names it');
        $r = call(POST => '/api/v1/orders', token => $t, json => { items => [ { productId => $p->{id}, quantity => 1 } ],
            shipping => {%SHIP}, expectedTotal => 1 }, status => 409, code => 'PRICE_CHANGED');
        is($r->{json}{currentTotal}, 14_000, 'currentTotal 11,000 + 3,000 shipping');
        call(POST => '/api/v1/orders', token => $t, json => { items => [ { productId => 999999999, quantity => 1 } ],
            shipping => {%SHIP} }, status => 404, code => 'PRODUCT_NOT_FOUND');
        call(POST => '/api/v1/orders', token => $x->{seller}{token}, json => { items => [ { productId => $p->{id}, quantity => 1 } ],
            shipping => {%SHIP} }, status => 409, code => 'INSUFFICIENT_BALANCE', name => 'a buyer with no points');
        call(POST => '/api/v1/orders', token => $t, json => { items => [], shipping => {%SHIP} }, status => 400,
            code => 'INVALID_REQUEST', breaks_request => 1, name => 'an order of nothing');
        call(POST => '/api/v1/orders', token => $t, json => { items => [ { productId => $p->{id}, quantity => 1 } ],
            shipping => { %SHIP, zipCode => '123' } }, status => 400, code => 'INVALID_REQUEST', breaks_request => 1,
            name => 'a zip code of three digits');
        call(GET => "/api/v1/orders/$order", token => $t, status => 200);
        call(GET => "/api/v1/orders/$order", token => $x->{seller}{token}, status => 404, code => 'ORDER_NOT_FOUND',
            name => "someone else's order");
        call(GET => "/api/v1/users/$uid/orders?limit=1", token => $t, status => 200);
        $r = call(POST => "/api/v1/orders/$order/cancel", token => $t, status => 200, name => 'cancel');
        is($r->{json}{status}, 'CANCELLED', 'CANCELLED');
        call(POST => "/api/v1/orders/$order/cancel", token => $t, status => 409, code => 'ORDER_NOT_CANCELLABLE',
            name => 'cancel again');
        $r = call(GET => "/api/v1/users/$uid", token => $t, status => 200, name => 'balance after the cancel');
        is($r->{json}{balance}, 51_000, 'the balance is whole again');
    } ],

    [ 'order lifecycle, returns, notifications, webhooks' => sub {
        my ($x) = @_;
        my ($uid, $t) = @{ $x->{buyer} }{qw(id token)};
        my $st = $x->{seller}{token};
        my $rx = Jangteo::Receiver->new(mode => 'ok', dir => $s->dir);
        my $r = call(POST => '/api/v1/admin/webhooks', token => $x->{admin}{token}, json => { url => $rx->url,
            events => [ 'order.paid', 'order.shipping' ], secret => 'whsec_' . ('Q' x 43) . '=' }, status => 201,
            name => 'register a webhook');
        my $hook = $r->{json}{id};
        call(POST => '/api/v1/admin/webhooks', token => $x->{admin}{token}, json => { url => 'ftp://127.0.0.1/h',
            events => ['order.paid'], secret => 'whsec_' . ('Q' x 43) . '=' }, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'a webhook to an ftp URL');
        call(POST => '/api/v1/admin/webhooks', token => $t, json => { url => $rx->url, events => ['order.paid'],
            secret => 'whsec_' . ('Q' x 43) . '=' }, status => 403, code => 'FORBIDDEN', name => 'a buyer may not register');
        call(GET => '/api/v1/admin/webhooks?limit=5', token => $x->{admin}{token}, status => 200);

        my $order = sub {
            my $o = call(POST => '/api/v1/orders', token => $t, json => { items => [ { productId => $x->{product}{id},
                quantity => 1 } ], shipping => {%SHIP} }, status => 201, name => 'an order to move');
            return $o->{json}{orderId};
        };
        my $o = $order->();
        call(POST => "/api/v1/orders/$o/transitions", token => $st, headers => { 'If-Match' => '"3"' },
            json => { to => 'PREPARING' }, status => 412, code => 'VERSION_MISMATCH', name => 'a stale If-Match');
        call(POST => "/api/v1/orders/$o/transitions", token => $st, headers => { 'If-Match' => 'W/"0"' },
            json => { to => 'PREPARING' }, status => 200, name => 'the seller: PREPARING');
        $r = call(POST => "/api/v1/orders/$o/transitions", token => $st, json => { to => 'DELIVERED' }, status => 409,
            code => 'INVALID_TRANSITION', name => 'PREPARING -> DELIVERED is no move');
        is($r->{json}{currentStatus}, 'PREPARING', 'currentStatus names it');
        call(POST => "/api/v1/orders/$o/transitions", token => $t, json => { to => 'SHIPPING' }, status => 403,
            code => 'FORBIDDEN', name => 'the buyer may not move it');
        call(POST => "/api/v1/orders/$o/transitions", token => $st, json => { to => 'SHIPPING',
            trackingNumber => 'CJ-20261201' }, status => 200, name => 'SHIPPING with a tracking number');
        call(POST => "/api/v1/orders/$o/cancel", token => $t, status => 409, code => 'INVALID_TRANSITION',
            name => 'a cancel after SHIPPING');
        call(POST => "/api/v1/orders/$o/return", token => $t, json => { reason => '아직 안 왔어요' }, status => 409,
            code => 'INVALID_TRANSITION', name => 'a return before delivery');
        $r = call(POST => "/api/v1/orders/$o/transitions", token => $st, json => { to => 'DELIVERED' }, status => 200,
            name => 'DELIVERED');
        $r = call(GET => "/api/v1/orders/$o", token => $t, status => 200, name => 'the order with its history');
        is(scalar @{ $r->{json}{history} }, 3, 'three moves');
        call(GET => "/api/v1/users/$uid/orders?status=DELIVERED", token => $t, status => 200, name => 'orders by status');
        call(POST => "/api/v1/orders/$o/return", token => $t, json => { reason => '색상이 달라요' }, status => 200,
            name => 'the buyer asks for a return');
        call(POST => "/api/v1/orders/$o/return", token => $t, json => {}, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'a return without a reason');
        call(POST => "/api/v1/orders/$o/transitions", token => $st, json => { to => 'RETURNED' }, status => 200,
            name => 'the seller completes the return');
        call(POST => "/api/v1/orders/999999999/transitions", token => $x->{admin}{token}, json => { to => 'PREPARING' },
            status => 404, code => 'ORDER_NOT_FOUND', name => 'no such order');

        # a return a second after the window (a day from delivery, on the test clock)
        my $late = $order->();
        for my $to (qw(PREPARING SHIPPING DELIVERED)) {
            call(POST => "/api/v1/orders/$late/transitions", token => $x->{admin}{token}, json => { to => $to }, status => 200,
                name => "admin: $to");
        }
        $r = call(GET => "/api/v1/orders/$late", token => $t, status => 200, name => 'the delivered order');
        clock_to($s, _ms($r->{json}{returnableUntil} =~ s/(\.\d{3})\d*Z$/${1}Z/r) + 1_000);
        call(POST => "/api/v1/orders/$late/return", token => $t, json => { reason => '늦었어요' }, status => 409,
            code => 'RETURN_WINDOW_CLOSED', name => 'a return after the window');
        clock_reset($s);

        # what the buyer was told, and what the receiver got
        my $n;
        for (1 .. 150) {
            $n = call(GET => "/api/v1/users/$uid/notifications?unread=true&limit=100", token => $t, status => 200,
                name => 'unread notifications');
            last if grep { $_->{type} eq 'order.returned' } @{ $n->{json}{items} };
            select undef, undef, undef, 0.2;
        }
        ok(grep({ $_->{type} eq 'order.returned' } @{ $n->{json}{items} }), 'the return was told');
        my $nid = $n->{json}{items}[0]{id};
        call(POST => "/api/v1/users/$uid/notifications/$nid/read", token => $t, status => 200, name => 'mark one read');
        call(POST => "/api/v1/users/$uid/notifications/999999999/read", token => $t, status => 404,
            code => 'NOTIFICATION_NOT_FOUND', name => 'mark a notification that is not there');
        call(GET => "/api/v1/users/$uid/notifications?limit=2", token => $t, status => 200, name => 'notifications');
        my @want = map { "evt_$_->[0]" } @{ $s->sql("SELECT id FROM outbox WHERE aggregate_id IN ($o, $late)"
            . " AND topic IN ('order.paid', 'order.shipping') ORDER BY id") };
        my %got;
        for (1 .. 150) {
            %got = ();
            $got{ $_->{id} }++ for @{ $rx->requests };
            last unless grep { !$got{$_} } @want;
            select undef, undef, undef, 0.2;
        }
        is_deeply([ map { $got{$_} // 0 } @want ], [ 1, 1, 1, 1 ], 'the receiver got both orders paid and shipped, once each');
        call(GET => "/api/v1/admin/webhooks/$hook/deliveries?limit=10", token => $x->{admin}{token}, status => 200,
            name => 'the deliveries');
        call(GET => '/api/v1/admin/webhooks/999999999/deliveries', token => $x->{admin}{token}, status => 404,
            code => 'WEBHOOK_NOT_FOUND', name => 'deliveries of no webhook');
        $rx->stop;
    } ],

    [ 'card payments: checkout, verify, webhook, cancel, the gateway failing' => sub {
        my ($x) = @_;
        my $t = $x->{buyer}{token};
        my $p = $x->{product};
        $s->pgsim('POST', '/_sim/config', { webhooks => JSON::PP::false });
        my $card = sub {
            my ($name, %o) = @_;
            my $r = call(POST => '/api/v1/orders', token => $t, headers => { 'Idempotency-Key' => key() },
                json => { items => [ { productId => $p->{id}, quantity => 1 } ], shipping => {%SHIP},
                          payment => { method => 'CARD', cardCompany => $o{card} // 'NH' } }, status => $o{status} // 201,
                code => $o{code}, name => $name);
            return $r->{json};
        };
        my $pay = sub { $s->pgsim('POST', "/pay/$_[0]{payment}{merchantUid}", { cardCompany => 'NH' }) };
        my $verify = sub {
            my ($o, $imp, %c) = @_;
            return call(POST => "/api/v1/orders/$o->{orderId}/payments", token => $t,
                headers => { 'Idempotency-Key' => $c{key} // key() }, json => { impUid => $imp }, %c);
        };

        my $o = $card->('a card order: PAYMENT_PENDING');
        is($o->{status}, 'PAYMENT_PENDING', 'PAYMENT_PENDING');
        my $paid = $pay->($o);
        my $k = key();
        my $r = $verify->($o, $paid->{imp_uid}, key => $k, status => 200, name => 'verify: PAID');
        is($r->{json}{status}, 'PAID', 'PAID');
        $r = $verify->($o, $paid->{imp_uid}, key => $k, status => 200, name => 'verify again: replayed');
        is($r->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
        call(GET => "/api/v1/orders/$o->{orderId}", token => $t, status => 200, name => 'a card order read back');
        call(POST => "/api/v1/orders/$o->{orderId}/payments", token => $t, json => { impUid => $paid->{imp_uid} },
            status => 400, code => 'IDEMPOTENCY_KEY_MISSING', breaks_request => 1, name => 'verify without a key');

        my $pending = $card->('a card order nobody pays');
        $verify->($pending, 'imp_none', status => 409, code => 'PAYMENT_NOT_FOUND', name => 'verify a payment the gateway lacks');
        $verify->($pending, 'a b', status => 400, code => 'INVALID_REQUEST', breaks_request => 1, name => 'an impUid with a space');

        my $tampered = $card->('a card order paid 1 won short');
        $s->pgsim('POST', '/_sim/faults', { endpoint => 'pay', merchant_uid => $tampered->{payment}{merchantUid}, amount_delta => -1 });
        my $short = $pay->($tampered);
        $verify->($tampered, $short->{imp_uid}, status => 409, code => 'PAYMENT_AMOUNT_MISMATCH', name => 'verify: amount mismatch');
        $s->pgsim('DELETE', '/_sim/faults');

        my $hooked = $card->('a card order settled by the webhook');
        my $hp = $pay->($hooked);
        $r = call(POST => '/api/v1/payments/webhook', json => { imp_uid => $hp->{imp_uid},
            merchant_uid => $hooked->{payment}{merchantUid}, status => 'paid' }, status => 200, name => "the gateway's webhook");
        is($r->{json}{status}, 'PAID', 'the webhook made it PAID');
        $r = call(POST => '/api/v1/payments/webhook', json => { imp_uid => 'imp_000000777777', status => 'paid' }, status => 200,
            name => 'a webhook naming no payment');
        is($r->{json}{status}, 'IGNORED', 'IGNORED');
        call(POST => '/api/v1/payments/webhook', json => { imp_uid => 7 }, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'a webhook with a number for imp_uid');

        $r = call(POST => "/api/v1/orders/$o->{orderId}/cancel", token => $t, status => 200, name => 'cancel a card order: refunded');
        is($r->{json}{status}, 'CANCELLED', 'CANCELLED');
        $s->pgsim('POST', '/_sim/faults', { endpoint => 'cancel', status => 500 });
        $r = call(POST => "/api/v1/orders/$hooked->{orderId}/cancel", token => $t, status => 202,
            name => 'cancel with the gateway down: CANCEL_PENDING');
        is($r->{json}{status}, 'CANCEL_PENDING', 'CANCEL_PENDING');
        $s->pgsim('DELETE', '/_sim/faults');

        $s->pgsim('POST', '/_sim/faults', { endpoint => 'prepare', status => 400, times => 1 });
        $card->('the gateway refuses the amount', status => 502, code => 'PAYMENT_GATEWAY_REFUSED');
        $s->pgsim('POST', '/_sim/faults', { endpoint => 'prepare', status => 500, times => 1 });
        $r = $card->('the gateway answers 500', status => 503, code => 'PAYMENT_GATEWAY_UNAVAILABLE');
        $s->pgsim('POST', '/_sim/config', { webhooks => JSON::PP::true });
    } ],

    [ 'auctions, bids, receipts and refunds' => sub {
        my ($x) = @_;
        my $st = $x->{seller}{token};
        my $bt = $x->{buyer}{token};
        # the auction clock: a minute before the window
        my $body = auction_body(originPrice => 10_000, stock => 3, maxPerBuyer => 2, minutes => 10,
            pricePolicy => { type => 'PERCENTAGE', discountRate => 12.5 });
        my $start = _ms($body->{startsAt});
        clock_to($s, $start - 60_000);
        my $r = call(POST => '/api/v1/auctions', token => $st, json => $body, status => 201, name => 'create an auction');
        my $a = $r->{json};
        call(POST => '/api/v1/auctions', token => $st, json => { %$body, endsAt => $body->{startsAt} }, status => 400,
            code => 'AUCTION_WINDOW_INVALID');
        call(POST => '/api/v1/auctions', token => $st, json => { %$body, stock => 1, maxPerBuyer => 2 }, status => 400,
            code => 'AUCTION_STOCK_INVALID');
        call(POST => '/api/v1/auctions', token => $st, json => { %$body, variationSeconds => 7 }, status => 400,
            code => 'AUCTION_VARIATION_INVALID');
        call(POST => '/api/v1/auctions', token => $x->{buyer}{token}, json => $body, status => 403, code => 'FORBIDDEN',
            name => 'a buyer may not create auctions');
        my $del = call(POST => '/api/v1/auctions', token => $st, json => auction_body(), status => 201,
            name => 'an auction to delete');
        call(DELETE => "/api/v1/auctions/$del->{json}{id}", token => $st, status => 204, name => 'delete before the start');
        call(GET => "/api/v1/auctions/$del->{json}{id}", status => 404, code => 'AUCTION_NOT_FOUND');
        call(GET => '/api/v1/auctions?status=WAITING&size=5', status => 200);
        call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, json => { price => 10_000, quantity => 1 }, status => 409,
            code => 'AUCTION_NOT_RUNNING', name => 'bid while WAITING');

        clock_to($s, $start + 60_000 + 500);    # one drop in: 10,000 -> 8,750
        $r = call(GET => "/api/v1/auctions/$a->{id}", status => 200, name => 'the running auction');
        is($r->{json}{currentPrice}, 8_750, 'currentPrice after one 12.5 % drop');
        call(GET => '/api/v1/auctions', status => 200);
        $r = call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, json => { price => 10_000, quantity => 1 },
            status => 409, code => 'PRICE_MISMATCH', name => 'bid at the old price');
        is($r->{json}{currentPrice}, 8_750, 'the problem says the current price');
        call(POST => "/api/v1/auctions/$a->{id}/bids", token => $st, json => { price => 8_750, quantity => 1 }, status => 403,
            code => 'FORBIDDEN', name => 'a seller may not bid');
        call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, json => { price => 8_750, quantity => 3 }, status => 409,
            code => 'PURCHASE_LIMIT');
        my $k = key();
        $r = call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, headers => { 'Idempotency-Key' => $k },
            json => { price => 8_750, quantity => 1 }, status => 202, name => 'bid at the current price: queued');
        my $rid = $r->{json}{receiptId};
        call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, headers => { 'Idempotency-Key' => $k },
            json => { price => 8_750, quantity => 1 }, status => 202, name => 'the same bid again: replayed');
        is(wait_settled($s, $a->{id}, 30), 0, 'settled');
        $r = call(GET => "/api/v1/receipts/$rid", token => $bt, status => 200, name => 'the receipt');
        is($r->{json}{status}, 'PURCHASED', 'PURCHASED');
        call(GET => "/api/v1/receipts/$rid", token => $x->{buyer2}{token}, status => 404, code => 'RECEIPT_NOT_FOUND',
            name => "someone else's receipt");
        call(GET => '/api/v1/receipts/not-a-uuid', token => $bt, status => 404, code => 'RECEIPT_NOT_FOUND',
            breaks_request => 1, name => 'a receipt id that is not a UUID');
        call(GET => "/api/v1/users/$x->{buyer}{id}/receipts", token => $bt, status => 200);
        call(GET => "/api/v1/users/$x->{seller}{id}/receipts?role=seller&limit=5", token => $st, status => 200);
        call(DELETE => "/api/v1/auctions/$a->{id}", token => $st, status => 409, code => 'AUCTION_ALREADY_STARTED');
        call(POST => "/api/v1/receipts/$rid/refund", token => $bt, status => 409, code => 'AUCTION_NOT_FINISHED');
        call(POST => "/api/v1/receipts/$rid/refund", token => $st, status => 403, code => 'FORBIDDEN',
            name => 'the seller may not ask for the refund');

        clock_to($s, _ms($body->{endsAt}) + 1_000);
        $r = call(POST => "/api/v1/receipts/$rid/refund", token => $bt, status => 200, name => 'refund after the end');
        is($r->{json}{status}, 'REFUNDED', 'REFUNDED');
        call(POST => "/api/v1/receipts/$rid/refund", token => $bt, status => 409, code => 'ALREADY_REFUNDED');
        call(POST => "/api/v1/auctions/$a->{id}/bids", token => $bt, json => { price => 1, quantity => 1 }, status => 409,
            code => 'AUCTION_NOT_RUNNING', name => 'bid after the end');
        clock_reset($s);
    } ],

    [ 'bids applied at once (async = no)' => sub {
        my ($x) = @_;
        $s->stop_app;
        $s->{conf}{auctions}{async} = 'no';
        $s->_write_app_conf;
        $s->start_app;
        my $body = auction_body(originPrice => 5_000, stock => 2, maxPerBuyer => 1, minutes => 5,
            pricePolicy => { type => 'CONSTANT', variationWidth => 500 });
        my $start = _ms($body->{startsAt});
        clock_to($s, $start - 60_000);
        my $r = call(POST => '/api/v1/auctions', token => $x->{seller}{token}, json => $body, status => 201,
            name => 'a CONSTANT auction');
        clock_to($s, $start + 1_000);
        $r = call(POST => "/api/v1/auctions/$r->{json}{id}/bids", token => $x->{buyer}{token},
            json => { price => 5_000, quantity => 1 }, status => 201, name => 'a synchronous bid: bought');
        is($r->{json}{status}, 'PURCHASED', 'the receipt is PURCHASED at once');
        clock_reset($s);
    } ],

    [ 'cart, wishlist and their orders' => sub {
        my ($x) = @_;
        my ($uid, $t) = @{ $x->{buyer} }{qw(id token)};
        my ($p, $shirt) = ($x->{product}, $x->{shirt});
        my $cart = "/api/v1/users/$uid/cart";
        # the slices before spent part of the buyer's balance (the lifecycle's delivered orders keep theirs)
        call(POST => "/api/v1/users/$uid/charge", token => $t, headers => { 'Idempotency-Key' => key() },
            json => { amount => 50_000 }, status => 200, name => 'charge for the cart and the wishlist');
        call(GET => $cart, token => $t, status => 200, name => 'an empty cart');
        call(PUT => "$cart/items", token => $t, json => { productId => $p->{id}, quantity => 1 }, status => 200,
            name => 'a line in the cart');
        my $r = call(PUT => "$cart/items", token => $t, json => { productId => $shirt->{id}, optionId => $shirt->{options}[0]{id},
            quantity => 1 }, status => 200, name => 'a line by option');
        is($r->{json}{total}, 31_000, 'the cart: 11,000 + 20,000, free shipping');
        call(PUT => "$cart/items", token => $t, json => { productId => $shirt->{id}, quantity => 1 }, status => 400,
            code => 'INVALID_REQUEST', name => 'a product sold by option, without one');
        call(PUT => "$cart/items", token => $t, json => { productId => 999999999, quantity => 1 }, status => 404,
            code => 'PRODUCT_NOT_FOUND', name => 'an unknown product');
        call(PUT => "$cart/items", token => $t, json => { productId => $p->{id}, quantity => 1000 }, status => 400,
            code => 'INVALID_REQUEST', breaks_request => 1, name => 'quantity 1,000');
        call(GET => "/api/v1/users/$x->{buyer2}{id}/cart", token => $t, status => 404, code => 'NOT_FOUND',
            name => "another buyer's cart");
        $r = call(GET => $cart, token => $t, status => 200, name => 'the cart with two lines');
        my $line = $r->{json}{lines}[1]{lineId};
        call(DELETE => "$cart/items/$line", token => $t, status => 204, name => 'remove a line');
        call(DELETE => "$cart/items/$line", token => $t, status => 404, code => 'CART_ITEM_NOT_FOUND', name => 'remove it again');
        $r = call(POST => "$cart/checkout", token => $t, json => { shipping => {%SHIP}, expectedTotal => 1 }, status => 409,
            code => 'PRICE_CHANGED', name => 'checkout at a total that is not the cart\'s');
        is($r->{json}{currentTotal}, 14_000, 'currentTotal 11,000 + 3,000');
        my $k = key();
        my $had = call(GET => "/api/v1/users/$uid", token => $t, status => 200, name => 'the balance before')->{json}{balance};
        $r = call(POST => "$cart/checkout", token => $t, headers => { 'Idempotency-Key' => $k },
            json => { shipping => {%SHIP}, expectedTotal => 14_000 }, status => 201, name => 'checkout');
        is($r->{json}{balance}, $had - 14_000, 'paid 14,000');
        call(POST => "$cart/checkout", token => $t, headers => { 'Idempotency-Key' => $k },
            json => { shipping => {%SHIP}, expectedTotal => 14_000 }, status => 201, name => 'the same checkout again: replayed');
        call(POST => "$cart/checkout", token => $t, json => { shipping => {%SHIP} }, status => 409, code => 'CART_EMPTY',
            name => 'checkout of the empty cart');
        call(PUT => "$cart/items", token => $t, json => { productId => $p->{id}, quantity => 2 }, status => 200,
            name => 'a line to throw away');
        call(DELETE => $cart, token => $t, status => 204, name => 'empty the cart');

        my $wl = "/api/v1/users/$uid/wishlist";
        call(GET => $wl, token => $t, status => 200, name => 'an empty wishlist');
        call(POST => "$wl/order", token => $t, json => { shipping => {%SHIP} }, status => 409, code => 'WISHLIST_EMPTY',
            name => 'order an empty wishlist');
        call(PUT => "$wl/items", token => $t, json => { productId => $p->{id} }, status => 200, name => 'wish for a product');
        call(PUT => "$wl/items", token => $t, json => { productId => $shirt->{id}, optionId => $shirt->{options}[0]{id},
            quantity => 1 }, status => 200, name => 'wish for a size');
        call(PUT => "$wl/items", token => $t, json => { productId => $p->{id}, quantity => 0 }, status => 400,
            code => 'INVALID_REQUEST', breaks_request => 1, name => 'a wish of quantity 0');
        $r = call(POST => "$wl/order", token => $t, headers => { 'Idempotency-Key' => key() },
            json => { shipping => {%SHIP}, clear => JSON::PP::true }, status => 201, name => 'order the whole wishlist and clear it');
        is($r->{json}{total}, 31_000, 'both items, free shipping');
        call(PUT => "$wl/items", token => $t, json => { productId => $shirt->{id}, optionId => $shirt->{options}[0]{id} },
            status => 200, name => 'wish again');
        call(DELETE => "$wl/items/$shirt->{id}", token => $t, status => 404, code => 'WISHLIST_ITEM_NOT_FOUND',
            name => 'remove without its option');
        call(DELETE => "$wl/items/$shirt->{id}?optionId=$shirt->{options}[0]{id}", token => $t, status => 204,
            name => 'remove it by product and option');
    } ],

    [ 'the account: profile, password, sessions' => sub {
        my ($x) = @_;
        my $u = $x->{buyer2};
        my $me = "/api/v1/users/$u->{id}";
        my $r = call(PATCH => $me, token => $u->{token}, json => { name => '새 이름', phone => '010-9999-8888' }, status => 200,
            name => 'edit the profile');
        is($r->{json}{name}, '새 이름', 'the new name');
        call(PATCH => $me, token => $u->{token}, json => {}, status => 400, code => 'INVALID_REQUEST', breaks_request => 1,
            name => 'a PATCH of nothing');
        call(PATCH => $me, token => $u->{token}, json => { phone => '02-123-4567' }, status => 400, code => 'INVALID_REQUEST',
            breaks_request => 1, name => 'a phone sign-up refuses');
        call(PATCH => "/api/v1/users/$x->{buyer}{id}", token => $u->{token}, json => { name => '남의 이름' }, status => 403,
            code => 'FORBIDDEN', name => "another user's profile");
        $r = call(POST => '/api/v1/auth/tokens', json => { email => $u->{email}, password => $u->{password} }, status => 201,
            name => 'a second session');
        my $second = $r->{json}{token};
        $r = call(GET => "$me/tokens", token => $u->{token}, status => 200, name => 'the sessions');
        ok(scalar @{ $r->{json}{items} } >= 2, 'at least two sessions');
        call(GET => "$me/tokens?limit=1", token => $u->{token}, status => 200, name => 'the newest session');
        call(GET => "$me/tokens?limit=101", token => $u->{token}, status => 400, code => 'INVALID_REQUEST', breaks_request => 1,
            name => 'sessions, limit above 100');
        call(POST => "$me/password", token => $u->{token}, json => { currentPassword => 'not-the-password', newPassword => 'contract-new-pw-1' },
            status => 403, code => 'PASSWORD_WRONG', name => 'a wrong current password');
        call(POST => "$me/password", token => $u->{token}, json => { currentPassword => $u->{password}, newPassword => 'short' },
            status => 400, code => 'INVALID_REQUEST', breaks_request => 1, name => 'a weak new password');
        $r = call(POST => "$me/password", token => $u->{token}, json => { currentPassword => $u->{password},
            newPassword => 'contract-new-pw-1' }, status => 200, name => 'change the password');
        ok($r->{json}{revokedSessions} >= 1, 'the other sessions are revoked');
        $u->{password} = 'contract-new-pw-1';
        call(GET => $me, token => $second, status => 401, code => 'UNAUTHORIZED', name => 'the second session is gone');
        call(GET => $me, token => $u->{token}, status => 200, name => "the caller's session stays");
        $r = call(POST => '/api/v1/auth/tokens', json => { email => $u->{email}, password => $u->{password} }, status => 201,
            name => 'log in with the new password');
        my $third = $r->{json}{token};
        my $tid = call(GET => "$me/tokens?limit=1", token => $third, status => 200, name => 'the third session')->{json}{items}[0]{tokenId};
        call(DELETE => "$me/tokens/$tid", token => $u->{token}, status => 204, name => 'revoke a session');
        call(DELETE => "$me/tokens/999999999", token => $u->{token}, status => 404, code => 'TOKEN_NOT_FOUND',
            name => 'revoke a session that does not exist');
    } ],

    [ 'admin audit' => sub {
        my ($x) = @_;
        my $r = call(GET => '/api/v1/admin/audit', token => $x->{admin}{token}, status => 200);
        is($r->{json}{violations}, 0, 'no invariant is violated') or diag($r->{body});
        call(GET => '/api/v1/admin/audit', token => $x->{buyer}{token}, status => 403, code => 'FORBIDDEN',
            name => 'the audit is for admins');
    } ],

    [ 'every error class: 404, 405, 429, 502, 503' => sub {
        my ($x) = @_;
        call(GET => '/api/v1/nope', status => 404, code => 'NOT_FOUND', unrouted => 1, name => 'an unknown API path');
        my $r = call(PUT => '/api/v1/products', status => 405, code => 'METHOD_NOT_ALLOWED', unrouted => 1,
            name => 'PUT on the product list');
        like($r->{headers}{allow} // '', qr/^GET, HEAD, POST$/, 'Allow: GET, HEAD, POST');
        # MariaDB down: reads that need it are 503 with Retry-After, /readyz says which
        $s->stop_mariadb;
        $r = call(GET => "/api/v1/users/$x->{buyer}{id}", token => $x->{buyer}{token}, status => 503,
            code => 'DATABASE_UNAVAILABLE', name => 'MariaDB down: 503');
        like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
        call(GET => '/readyz', status => 503, name => 'MariaDB down: /readyz is 503');
        $s->start_mariadb;
        # the daemon down: nginx answers 502 itself
        $s->stop_app;
        call(GET => '/api/v1/auctions', status => 502, code => 'BAD_GATEWAY', name => 'jangteod down: 502 from nginx');
        $s->start_app;
        call(GET => '/readyz', status => 200, name => 'ready again');
        # logins are limited per address (5/s, burst 10): a burst of 25 meets 429
        my %seen;
        for my $i (1 .. 25) {
            my $t = call(POST => '/api/v1/auth/tokens', json => { email => 'nobody@example.com', password => 'wrong-password' },
                name => "login flood $i");
            $seen{ $t->{status} }++;
        }
        ok($seen{429}, 'the flood met 429 RATE_LIMITED') or diag(explain(\%seen));
    } ],
);

my %X;    # what the scenarios made, for the ones after them
for my $sc (@SCENARIOS) {
    my ($name, $run) = @$sc;
    subtest $name => sub { $run->(\%X) };
}

my ($missing, $classes, $calls) = coverage();
is_deeply($missing, [], 'every operation of the spec was exercised') or diag(join "\n", @$missing);
my @classes = sort keys %$classes;
is_deeply([ grep { !$classes->{$_} } qw(200 201 202 204 400 401 403 404 409 412 413 415 422 429 502 503) ], [],
    'every status class was met: ' . join(' ', @classes));
diag(scalar(@SCENARIOS) . " scenarios, $calls requests through prism");
contract_stop();
done_testing;

sub _uri { my ($t) = @_; utf8::encode($t); $t =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge; $t }

sub _ms {
    my ($iso) = @_;
    require Time::Local;
    my ($y, $mo, $d, $h, $mi, $sec, $ms) = $iso =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?Z$/ or die $iso;
    return Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y) * 1000 + ($ms // 0);
}
