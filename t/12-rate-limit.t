#!/usr/bin/perl
# nginx limit_req on the login and order routes (as shipped, and as the local
# stack runs them): a burst beyond the limit gets 429 problem+json, other
# routes are not limited, and nothing refused reaches the application.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack);

my $s = test_stack(demo => 1, rate_limits => 1);
my (%login, %orders, %reads);
for (1 .. 40) {
    my $r = $s->post_json('/api/v1/auth/tokens', { email => 'nobody@example.com', password => 'wrong-password' });
    $login{ $r->{status} }++;
    if ($r->{status} == 429) {
        is($r->{json}{code}, 'RATE_LIMITED', 'a 429 says RATE_LIMITED') if $login{429} == 1;
        like($r->{headers}{'content-type'}, qr{^application/problem\+json}, 'as problem+json') if $login{429} == 1;
    }
}
ok(($login{401} // 0) >= 5, "some logins reach the app (401: @{[ $login{401} // 0 ]})");
ok(($login{429} // 0) >= 10, "a burst of 40 logins is limited (429: @{[ $login{429} // 0 ]})");
for (1 .. 80) {
    my $r = $s->post_json('/api/v1/orders', { items => [] });
    $orders{ $r->{status} }++;
}
ok(($orders{429} // 0) >= 10, "a burst of 80 orders is limited (429: @{[ $orders{429} // 0 ]})");
ok(($orders{401} // 0) >= 20, "the first ones reach the app (401 without a token: @{[ $orders{401} // 0 ]})");
for (1 .. 100) {
    $reads{ $s->get('/api/v1/products/1')->{status} }++;
}
is($reads{200} // 0, 100, 'product reads are not rate limited');
my $app_logins = () = $s->log_text('access') =~ m{POST /api/v1/auth/tokens}g;
is($app_logins, $login{401} // 0, 'refused logins never reached jangteod');
done_testing();
