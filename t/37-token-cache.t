#!/usr/bin/perl
# The bearer tokens' cache (store/authcache.h): a token looked up once is
# answered from the host's shared cache by every worker, and no copy
# outlives what MariaDB says: a logout, a password change and a revoked
# session are refused at once by every worker; a change made in SQL is
# seen after `jangteo-admin auth-flush` (what another host's revocation
# does through Redis' auth:epoch); while Redis cannot be read the cache is
# not used at all; and a copy dies with its token's expiry.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use Jangteo::Client qw(test_stack jreq new_user login is_problem);

my $s = test_stack(workers => 4);

sub metric {
    my ($name) = @_;
    my $body = $s->get('/metrics')->{body};
    return $body =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}
sub me { my ($u, $tok) = @_; jreq($s, 'GET', "/api/v1/users/$u->{id}", $tok // $u->{token}) }
# how many of $n requests with $tok answered $status (spread over the workers)
sub answered { my ($u, $tok, $n, $status) = @_; scalar grep { me($u, $tok)->{status} == $status } 1 .. $n }

my $u = new_user($s, tag => 'c37');

# ---------------------------------------------------------------- hits
{
    is(answered($u, undef, 1, 200), 1, 'a first request with a new token');
    my ($h0, $m0) = (metric('jangteo_auth_cache_hits_total'), metric('jangteo_auth_cache_misses_total'));
    ok(defined $h0 && defined $m0, '/metrics counts the cache\'s hits and misses');
    is(answered($u, undef, 40, 200), 40, '40 more requests, spread over 4 workers');
    is(metric('jangteo_auth_cache_hits_total') - $h0, 40, 'all 40 answered from the shared cache');
    is(metric('jangteo_auth_cache_misses_total') - $m0, 0, 'none looked the token up again');
}

# ---------------------------------------------------------------- revocations through the API: at once
{
    my $tok = login($s, $u->{email}, $u->{password});
    is(answered($u, $tok, 12, 200), 12, 'a second session, cached');
    my $e0 = $s->redis('GET', 'auth:epoch') || 0;
    is(jreq($s, 'DELETE', '/api/v1/auth/tokens/current', $tok)->{status}, 204, 'logout: 204');
    is(answered($u, $tok, 20, 401), 20, 'after logout, every worker refuses the token at once (20 of 20: 401)');
    is($s->redis('GET', 'auth:epoch'), $e0 + 1, 'and the other hosts are told: auth:epoch moved by one');
    is(answered($u, undef, 8, 200), 8, 'the other session still works');
}
{
    my $e0 = $s->redis('GET', 'auth:epoch');
    my $r = jreq($s, 'POST', "/api/v1/users/$u->{id}/password", $u->{token},
        { currentPassword => 'not-the-password-37', newPassword => 'another-password-37-long' });
    is($r->{status}, 403, 'a password change with the wrong current password: 403');
    is($s->redis('GET', 'auth:epoch'), $e0, 'it revoked nothing, so no cache is told to forget');
    is(answered($u, undef, 4, 200), 4, 'the session goes on');
}
{
    my $keep = login($s, $u->{email}, $u->{password});
    my $gone = login($s, $u->{email}, $u->{password});
    is(answered($u, $gone, 12, 200), 12, 'two more sessions, the one to lose cached');
    my $r = jreq($s, 'POST', "/api/v1/users/$u->{id}/password", $keep,
        { currentPassword => $u->{password}, newPassword => 'a-new-password-37-long' });
    is($r->{status}, 200, 'password changed') or diag($r->{body});
    $u->{password} = 'a-new-password-37-long';
    is(answered($u, $gone, 20, 401), 20, 'the other sessions are refused at once by every worker');
    is(answered($u, $keep, 8, 200), 8, 'the caller\'s session is kept');
    $u->{token} = $keep;
}
{
    my $tok = login($s, $u->{email}, $u->{password});
    is(answered($u, $tok, 12, 200), 12, 'a session to revoke by id, cached');
    my $list = jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens", $u->{token})->{json};
    my ($mine) = grep { !$_->{current} } @{ $list->{items} || [] };
    ok($mine, 'the sessions list names it') or diag(explain($list));
    is(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/tokens/$mine->{tokenId}", $u->{token})->{status}, 204, 'revoked: 204');
    is(answered($u, $tok, 20, 401), 20, 'every worker refuses it at once');
}

# ---------------------------------------------------------------- a change in SQL: after auth-flush
{
    my $b = new_user($s, tag => 'c37r');
    is(jreq($s, 'GET', '/api/v1/admin/webhooks', $b->{token})->{status}, 403, 'a buyer may not list webhooks');
    $s->sql("UPDATE users SET role = 'ADMIN' WHERE id = $b->{id}");
    is(jreq($s, 'GET', '/api/v1/admin/webhooks', $b->{token})->{status}, 403,
        'made ADMIN in SQL: the cached copy still says BUYER (the cache is what answers)');
    my ($rc, $out) = $s->admin('auth-flush');
    is($rc, 0, 'jangteo-admin auth-flush') or diag($out);
    like($out, qr/^auth-flush: token caches told/m, 'it says what it did');
    my $f0 = metric('jangteo_auth_cache_flushes_total');
    select(undef, undef, undef, 0.5);   # past [auth] cache_poll_ms (200)
    is(jreq($s, 'GET', '/api/v1/admin/webhooks', $b->{token})->{status}, 200, 'after it, the new role is seen');
    cmp_ok(metric('jangteo_auth_cache_flushes_total'), '>', $f0, 'the host forgot (a flush counted)');
}

# ---------------------------------------------------------------- Redis down: no cache at all
{
    my $tok = login($s, $u->{email}, $u->{password});
    is(answered($u, $tok, 12, 200), 12, 'a session, cached');
    $s->stop_redis;
    select(undef, undef, undef, 0.5);
    $s->sql("UPDATE auth_tokens SET revoked_at = NOW(6) WHERE user_id = $u->{id} AND revoked_at IS NULL"
        . " AND id = (SELECT MAX(id) FROM (SELECT id FROM auth_tokens WHERE user_id = $u->{id}) x)");
    is(answered($u, $tok, 20, 401), 20,
        'Redis stopped, the token revoked in SQL and nobody told: every worker reads MariaDB (20 of 20: 401)');
    is(answered($u, undef, 8, 200), 8, 'and the other session still works, from MariaDB');
    $s->start_redis;
    # each worker reconnects after its [redis] retry interval; until the
    # request that polls auth:epoch finds Redis again, nothing is cached
    my ($back, $all) = (0, 1);
    for my $try (1 .. 100) {
        my $h0 = metric('jangteo_auth_cache_hits_total');
        $all &&= answered($u, undef, 4, 200) == 4;
        if (metric('jangteo_auth_cache_hits_total') > $h0) { $back = 1; last }
        select(undef, undef, undef, 0.1);
    }
    ok($all, 'Redis back: every request answered 200 meanwhile');
    ok($back, 'and the cache answers again');
}

# ---------------------------------------------------------------- a copy dies with its token
{
    my $tok = login($s, $u->{email}, $u->{password});
    $s->sql("UPDATE auth_tokens SET expires_at = NOW(6) + INTERVAL 6 SECOND WHERE user_id = $u->{id}"
        . " AND id = (SELECT MAX(id) FROM (SELECT id FROM auth_tokens WHERE user_id = $u->{id}) x)");
    my $t0 = time;
    $s->auth_changed;
    is(answered($u, $tok, 4, 200), 4, 'a token with six seconds left, cached');
    sleep 7 - (time - $t0);
    is(answered($u, $tok, 12, 401), 12, 'after its expiry every worker refuses it, with no flush');
}

done_testing;
