# Bad input is the client's fault: always a 4xx problem+json, never a 5xx.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack);

my $s = test_stack(
    demo => 1,
    conf => { server => { enable_test_routes => 'yes', body_max => 1024 } },
);

sub is_problem {
    my ($r, $status, $code, $name) = @_;
    subtest $name => sub {
        is($r->{status}, $status, "status $status") or diag($r->{body});
        like($r->{headers}{'content-type'} // '', qr{^application/problem\+json\b}, 'content-type problem+json');
        my $j = $r->{json} || {};
        ok(ref $r->{json} eq 'HASH', 'JSON object body');
        ok(exists $j->{$_}, "has $_") for qw(type title status detail code);
        is($j->{code}, $code, "code $code") if defined $code;
        ok(length($r->{headers}{'x-request-id'} // ''), 'has X-Request-Id');
    };
}

# ---- malformed product ids
for my $id ('abc', '0', '-1', '1.5', '18446744073709551616', '99999999999999999999999', '%00', '1abc') {
    is_problem($s->get("/api/v1/products/$id"), 400, 'INVALID_REQUEST', "id '$id' -> 400");
}

# ---- malformed paging
for my $q ('size=0', 'size=101', 'size=-1', 'size=x', 'page=0', 'page=-1', 'page=x') {
    is_problem($s->get("/api/v1/products?$q"), 400, 'INVALID_REQUEST', "?$q -> 400");
}

# ---- routing
is_problem($s->get('/api/v1/nope'), 404, 'NOT_FOUND', 'unknown API path -> 404');
{
    my $home = $s->get('/');
    is($home->{status}, 200, '/ is the storefront');
    like($home->{headers}{'content-type'} // '', qr{^text/html}, '/ is HTML');
}
is_problem($s->get('/nope.html'), 404, 'NOT_FOUND', 'an unknown static path -> 404 problem+json (nginx)');

my $r = $s->request('POST', '/api/v1/products/1', { 'Content-Type' => 'application/json' }, '{}');
is_problem($r, 405, 'METHOD_NOT_ALLOWED', 'POST /api/v1/products/1 -> 405');
like($r->{headers}{allow} // '', qr/\bGET\b/, 'Allow lists GET');

# ---- bodies (test route POST /test/echo)
$r = $s->post_json('/test/echo', { a => 1, b => [ 'x', 2 ] });
is($r->{status}, 200, 'echo 200') or diag($r->{body});
is_deeply(($r->{json} || {})->{echo}, { a => 1, b => [ 'x', 2 ] }, 'echo returns the body');

is_problem($s->post_json('/test/echo', '{"a":'), 400, 'INVALID_JSON', 'truncated JSON -> 400');
is_problem($s->post_json('/test/echo', 'not json'), 400, 'INVALID_JSON', 'not JSON -> 400');

my $big = '{"pad":"' . ('x' x 2000) . '"}';
is_problem($s->post_json('/test/echo', $big), 413, 'PAYLOAD_TOO_LARGE', 'body over body_max -> 413 from the app');

my $huge = '{"pad":"' . ('x' x (1024 * 1024 + 10)) . '"}';
is_problem($s->post_json('/test/echo', $huge), 413, 'PAYLOAD_TOO_LARGE', 'body over nginx limit -> 413 from nginx');

# ---- nothing above was a server error
unlike($s->log_text('nginx'), qr/" 5\d\d /, 'no 5xx in the nginx access log');

$s->stop;
done_testing;
