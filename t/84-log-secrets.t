#!/usr/bin/perl
# No secret or personal data reaches a log: after realistic traffic
# (registrations, logins, wrong logins, charges, orders with shipping
# addresses, cancels, token revocation, and refusals whose bodies carry the
# same data), no log of any component holds a test user's password, token,
# phone, email, name, or a shipping recipient, phone or address - raw, JSON-
# escaped or percent-encoded. The daemon runs at log_level = debug.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Encode qw(encode_utf8);

use Jangteo::Client qw(test_stack raw_request http_client do_request);
use Jangteo::Load qw(audit_ok uniq_key);

my $JSON = JSON::PP->new->utf8->canonical;
my $s = test_stack(demo => 1, workers => 2,
    conf => { server => { log_level => 'debug', request_timeout => 2, enable_test_routes => 'yes' } });
my $http = http_client();
sub req { do_request($http, $s, @_) }

my $tag = sprintf('%05d', $$ % 100000);
my (@secrets, @users);

# ---------------------------------------------------------------- traffic
for my $k (1 .. 4) {
    my %u = (
        email    => "secret.person$k.$tag\@privacy-test.example",
        password => "Zq9!pass-$tag-$k-word",
        name     => ("홍비밀", "Jane Secretary", "김개인정보", "O'Privacy")[ $k - 1 ] . " $tag$k",
        phone    => sprintf('010-%04d-%04d', 7000 + $k, $tag % 10000),
    );
    my $r = req('POST', '/api/v1/users', {}, {%u});
    is($r->{status}, 201, "register user $k") or diag($r->{body});
    $u{id} = $r->{json}{userId};
    # a wrong password first, then the right one
    $r = req('POST', '/api/v1/auth/tokens', {}, { email => $u{email}, password => "$u{password}-wrong" });
    is($r->{status}, 401, "user $k: wrong password refused");
    $r = req('POST', '/api/v1/auth/tokens', {}, { email => $u{email}, password => $u{password} });
    is($r->{status}, 201, "user $k: login") or diag($r->{body});
    $u{token} = $r->{json}{token};
    push @secrets, [ "password $k", $u{password} ], [ "wrong password $k", "$u{password}-wrong" ], [ "token $k", $u{token} ],
        [ "email $k", $u{email} ], [ "name $k", $u{name} ], [ "phone $k", $u{phone} ];
    push @users, \%u;
}
# the same email registered twice (409) and registrations refused for one bad field (400)
{
    my $u = $users[0];
    my $r = req('POST', '/api/v1/users', {}, { email => $u->{email}, password => $u->{password}, name => $u->{name}, phone => $u->{phone} });
    is($r->{status}, 409, 'a taken email is refused');
    $r = req('POST', '/api/v1/users', {}, { email => "x$u->{email}", password => $u->{password}, name => $u->{name}, phone => 'not-a-phone' });
    is($r->{status}, 400, 'a bad phone is refused (the body holds the password)');
    $r = req('POST', '/api/v1/users', {}, qq({"email":"$u->{email}","password":"$u->{password}","name":));
    is($r->{status}, 400, 'a truncated registration is refused (the body holds the password)');
    $r = req('POST', '/api/v1/auth/tokens', {}, qq({"email":"$u->{email}","password":"$u->{password}"));
    is($r->{status}, 400, 'a truncated login is refused');
    $r = req('POST', '/api/v1/auth/tokens', {}, { email => "nobody.$tag\@privacy-test.example", password => $u->{password} });
    is($r->{status}, 401, 'a login with an unknown email is refused');
    push @secrets, [ 'unknown email', "nobody.$tag\@privacy-test.example" ];
}

my @orders;
for my $k (0 .. $#users) {
    my $u = $users[$k];
    my %auth = (Authorization => "Bearer $u->{token}");
    my $r = req('POST', "/api/v1/users/$u->{id}/charge", { %auth, 'Idempotency-Key' => uniq_key('ls') }, { amount => 500_000 });
    is($r->{status}, 200, "user $k: charge");
    my %ship = (
        recipient => ("받는이비밀", "Recipient Hidden", "수령인개인", "Mr. Private")[$k] . " $tag",
        phone     => sprintf('010-%04d-%04d', 8800 + $k, ($tag + 7) % 10000),
        zipCode   => '06236',
        address   => ("서울특별시 강남구 비밀로 $tag-$k", "12 Secret Lane $tag Apt $k", "부산광역시 해운대구 은밀길 $tag", "Hidden Street $tag/$k")[$k],
        request   => "문 앞 비밀요청 $tag$k",
    );
    push @secrets, [ "recipient $k", $ship{recipient} ], [ "ship phone $k", $ship{phone} ], [ "address $k", $ship{address} ],
        [ "ship request $k", $ship{request} ];
    for my $i (1 .. 3) {
        $r = req('POST', '/api/v1/orders', { %auth, 'Idempotency-Key' => uniq_key('lo') },
            { items => [ { productId => 1 + $i, quantity => 1 } ], shipping => {%ship} });
        is($r->{status}, 201, "user $k: order $i") or diag($r->{body});
        push @orders, [ $u, $r->{json}{orderId} ];
    }
    # refused orders whose bodies carry the address
    $r = req('POST', '/api/v1/orders', \%auth, { items => [ { productId => 2, quantity => 1 } ], shipping => { %ship, zipCode => '1' } });
    is($r->{status}, 400, "user $k: an order with a bad zip code is refused");
    $r = req('POST', '/api/v1/orders', \%auth, { items => [ { productId => 99999999, quantity => 1 } ], shipping => {%ship} });
    is($r->{status}, 404, "user $k: an order for a missing product is refused");
    $r = req('POST', '/api/v1/orders', \%auth, encode_utf8(qq({"items":[{"productId":2,"quantity":1}],"shipping":{"address":"$ship{address}")));
    is($r->{status}, 400, "user $k: a truncated order is refused");
    # reads of one's own data (the answers carry the personal data)
    is(req('GET', "/api/v1/users/$u->{id}", \%auth)->{status}, 200, "user $k: reads the profile");
    is(req('GET', "/api/v1/orders/$orders[-1][1]", \%auth)->{status}, 200, "user $k: reads an order");
    is(req('GET', "/api/v1/users/$u->{id}/orders", \%auth)->{status}, 200, "user $k: lists orders");
    # someone else's order with one's own token, and one's own with a token in the wrong place
    my $other = $users[ ($k + 1) % @users ];
    is(req('GET', "/api/v1/users/$other->{id}", \%auth)->{status}, 403, "user $k: another user's profile is refused");
    is(raw_request($s, 'GET', "/api/v1/users/$u->{id}", [ [ Authorization => "Token $u->{token}" ] ])->{status}, 401,
        "user $k: a token with the wrong scheme is refused");
}
for my $o (@orders[ grep { $_ % 3 == 0 } 0 .. $#orders ]) {
    my ($u, $id) = @$o;
    my $r = req('POST', "/api/v1/orders/$id/cancel", { Authorization => "Bearer $u->{token}" });
    is($r->{status}, 200, "cancel order $id") or diag($r->{body});
}
# logging out; then the dead token is refused
for my $u (@users[ 0, 1 ]) {
    is(req('DELETE', '/api/v1/auth/tokens/current', { Authorization => "Bearer $u->{token}" })->{status}, 204, "user $u->{id}: logs out");
    is(req('GET', "/api/v1/users/$u->{id}", { Authorization => "Bearer $u->{token}" })->{status}, 401, "user $u->{id}: the revoked token is refused");
}
# the demo accounts' passwords too (they log in as everyone does)
for my $d ([ 'buyer@jangteo.test', 'jangteo-buyer-1234' ], [ 'admin@jangteo.test', 'jangteo-admin-1234' ]) {
    my $r = req('POST', '/api/v1/auth/tokens', {}, { email => $d->[0], password => $d->[1] });
    is($r->{status}, 201, "demo login $d->[0]");
    push @secrets, [ "demo password $d->[0]", $d->[1] ], [ "demo token $d->[0]", $r->{json}{token} ];
}

# a request that overruns request_timeout: the master kills its worker and
# logs the request line, path only; the query may carry what a log must not
my $qsecret = "qs-secret-$tag-" . int(rand(1e9));
my $slow = req('GET', "/test/sleep?ms=6000&token=$qsecret");
ok($slow->{status} >= 500, "a request past request_timeout is cut off ($slow->{status})");
push @secrets, [ 'a query string value', $qsecret ];

# ---------------------------------------------------------------- the logs
# the daemon flushes on write; give every component a moment, then read
# every log and output file of the stack directory
sleep 1;
$s->signal_master('USR1');
sleep 0.5;
my $d = $s->dir;
# (demo-data.out is not a log: it is what `jangteo-admin demo-data` prints
# for the developer, the demo accounts' passwords on purpose)
my @files = grep { -f $_ && !/\.(?:pid|sock|conf)$/ && !m{/mariadb/} && !m{/demo-data\.out$} }
    (glob("$d/*.log"), glob("$d/*.err"), glob("$d/*.out"));
my %expected = map { $s->log_path($_) => 1 } qw(error access nginx nginx-error mariadb redis);
ok(-e $_, "log exists: $_") for sort keys %expected;
my $total = 0;
my %text;
for my $f (@files) {
    open my $fh, '<:raw', $f or next;
    local $/;
    $text{$f} = <$fh> // '';
    $total += length $text{$f};
}
ok(length($text{ $s->log_path('access') } // '') > 0, 'the daemon access log has lines');
ok(($text{ $s->log_path('error') } // '') =~ /\[debug\]|\[info\]/, 'the daemon error log has debug/info lines');
note(sprintf('%d log files, %d bytes, %d secrets', scalar(@files), $total, scalar(@secrets)));

# a secret in the forms a log line could carry it
sub forms {
    my ($v) = @_;
    my $raw = encode_utf8($v);
    my $json = $JSON->encode([$v]) =~ s/^\["|"\]$//gr;                      # UTF-8, JSON-escaped quotes
    my $ascii = JSON::PP->new->ascii->encode([$v]) =~ s/^\["|"\]$//gr;     # \uXXXX
    (my $pct = $raw) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    my %f = map { $_ => 1 } ($raw, $json, $ascii, $pct, lc $pct);
    return grep { length >= 6 } keys %f;
}

like($text{ $s->log_path('error') } // '', qr{request_timeout.*GET /test/sleep}, 'the daemon logged the timed-out request');
unlike($text{ $s->log_path('error') } // '', qr{GET /test/sleep\?}, '... by its path, without the query');

my @found;
for my $sec (@secrets) {
    my ($what, $value) = @$sec;
    for my $form (forms($value)) {
        for my $f (sort keys %text) {
            # nginx's own error log writes the whole request line of a
            # request whose upstream failed; nothing personal travels in a
            # query of this API (it is all in bodies), so that is allowed
            next if $what eq 'a query string value' && $f eq $s->log_path('nginx-error');
            next if index($text{$f}, $form) < 0;
            my ($line) = grep { index($_, $form) >= 0 } split /\n/, $text{$f};
            push @found, "$what in $f: " . substr($line, 0, 200);
        }
    }
    # and the part of a token or password a truncating logger might keep
    if ($what =~ /token|password/) {
        my $head = substr(encode_utf8($value), 0, 16);
        for my $f (sort keys %text) {
            push @found, "first 16 bytes of $what in $f" if index($text{$f}, $head) >= 0;
        }
    }
}
is(scalar(@found), 0, 'no password, token, email, name, phone or address in any log')
    or diag(join("\n", @found[0 .. ($#found > 19 ? 19 : $#found)]));

audit_ok($s, 'audit clean');
$s->stop;
done_testing;
