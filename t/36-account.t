#!/usr/bin/perl
# The buyer's own account: PATCH of name and phone by the sign-up's rules,
# sealed at rest; a password change (403 for a wrong current password, 400
# for a weak new one) that revokes every other session at once and keeps the
# caller's; the sessions list (created, last used, expires, never the token)
# and revoking one. A token's last use costs no database write per request:
# it is stamped at most once per [auth] touch_interval (60 s, the default
# this stack runs with).
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;

use Jangteo::Client qw(test_stack jreq new_user login is_problem);
use Jangteo::Orders qw(make_admin scalar_sql);

my $s = test_stack(workers => 2);
my $u = new_user($s, tag => 'a36', name => '김계정', phone => '010-1111-2222');
my $other = new_user($s, tag => 'a36o');
my $admin = new_user($s, tag => 'a36a');
make_admin($s, $admin);

sub me { jreq($s, 'GET', "/api/v1/users/$_[0]{id}", $_[1] // $_[0]{token}) }
sub patch { my ($who, $body, $tok) = @_; jreq($s, 'PATCH', "/api/v1/users/$who->{id}", $tok // $who->{token}, $body) }

# ---------------------------------------------------------------- the profile
{
    my $r = patch($u, { name => '이새이름', phone => '01098765432' });
    is($r->{status}, 200, 'PATCH name and phone: 200') or diag($r->{body});
    is_deeply([ @{ $r->{json} }{qw(userId name phone email role balance)} ],
        [ $u->{id}, '이새이름', '01098765432', $u->{email}, 'BUYER', 0 ], 'the answer is the profile as it now is');
    is_deeply([ @{ me($u)->{json} }{qw(name phone)} ], [ '이새이름', '01098765432' ], 'GET shows it');
    $r = patch($u, { phone => '010-2222-3333' });
    is_deeply([ @{ $r->{json} }{qw(name phone)} ], [ '이새이름', '010-2222-3333' ], 'PATCH of the phone alone keeps the name');
    is_deeply($s->sql("SELECT LOCATE(CAST('이새이름' AS BINARY), name_enc), LOCATE(CAST('010-2222-3333' AS BINARY), phone_enc)"
        . " FROM users WHERE id = $u->{id}"), [ [ 0, 0 ] ], 'name and phone are sealed at rest (no plain text in the columns)');
    my $before = me($u)->{body};
    is_problem(patch($u, { phone => '02-123-4567' }), 400, 'INVALID_REQUEST', "a phone sign-up refuses: 400");
    is_problem(patch($u, { name => '   ' }), 400, 'INVALID_REQUEST', 'a blank name: 400');
    is_problem(patch($u, { name => 'x' x 51 }), 400, 'INVALID_REQUEST', 'a 51-character name: 400');
    is_problem(patch($u, { name => 7 }), 400, 'INVALID_REQUEST', 'a name that is a number: 400');
    is_problem(patch($u, {}), 400, 'INVALID_REQUEST', 'nothing to change: 400');
    my $bad = patch($u, { name => '좋은 이름', email => 'new@example.com' });
    is_problem($bad, 400, 'INVALID_REQUEST', 'an email (not editable here): 400');
    like($bad->{json}{detail} // '', qr/email/, 'naming the member');
    is_problem(patch($u, { name => '남의 이름' }, $other->{token}), 403, 'FORBIDDEN', "another user's profile: 403");
    is(me($u)->{body}, $before, 'none of that changed the profile');
    is(patch($u, { name => '관리자가 바꾼 이름' }, $admin->{token})->{status}, 200, 'an admin may edit it');
    is(patch($u, { name => '김계정' })->{json}{name}, '김계정', 'and the owner back');
}

# ---------------------------------------------------------------- sessions
my $second = login($s, $u->{email}, $u->{password});   # another device
{
    my $r = jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens", $u->{token});
    is($r->{status}, 200, 'the sessions: 200') or diag($r->{body});
    my @items = @{ $r->{json}{items} || [] };
    is(scalar @items, 2, 'two sessions');
    is_deeply([ map { $_->{current} ? 1 : 0 } @items ], [ 0, 1 ], 'newest first; the caller\'s is marked current');
    is_deeply([ sort keys %{ $items[0] } ], [ qw(createdAt current expiresAt lastUsedAt tokenId) ],
        'each: tokenId, createdAt, lastUsedAt, expiresAt, current');
    like($items[1]{lastUsedAt} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'the caller\'s token was used: lastUsedAt');
    is($items[0]{lastUsedAt}, $items[0]{createdAt}, 'the other, not used since its login: lastUsedAt is the login');
    unlike($r->{body}, qr/\Q$u->{token}\E|\Q$second\E/, 'no token in the answer');
    my $hashes = $s->sql("SELECT LOWER(HEX(token_hash)) FROM auth_tokens WHERE user_id = $u->{id}");
    unlike($r->{body}, qr/$_->[0]/i, 'nor a token hash') for @$hashes;
    is(jreq($s, 'GET', "/api/v1/users/$u->{id}", $second)->{status}, 200, 'the second session works');
    $r = jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens?limit=1", $second);
    is(scalar @{ $r->{json}{items} }, 1, 'a page of one');
    ok($r->{json}{items}[0]{current} && defined $r->{json}{items}[0]{lastUsedAt}, 'the second session, now used and current');
    ok(defined $r->{json}{nextCursor}, 'with a next page');
    is_problem(jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens", $other->{token}), 403, 'FORBIDDEN', "another user's sessions: 403");

    # revoke one
    my $third = login($s, $u->{email}, $u->{password});
    my $tid = jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens?limit=1", $third)->{json}{items}[0]{tokenId};
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$other->{id}/tokens/$tid", $other->{token}), 404, 'TOKEN_NOT_FOUND',
        "revoking someone else's session by its id: 404");
    is(jreq($s, 'GET', "/api/v1/users/$u->{id}", $third)->{status}, 200, 'which still works');
    is(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/tokens/$tid", $u->{token})->{status}, 204, 'revoke it: 204');
    is_problem(jreq($s, 'GET', "/api/v1/users/$u->{id}", $third), 401, 'UNAUTHORIZED', 'that token is refused at once');
    is(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/tokens/$tid", $u->{token})->{status}, 204, 'revoking it again: 204');
    is_problem(jreq($s, 'DELETE', "/api/v1/users/$u->{id}/tokens/99999999", $u->{token}), 404, 'TOKEN_NOT_FOUND',
        'an unknown session: 404');
    is(scalar @{ jreq($s, 'GET', "/api/v1/users/$u->{id}/tokens", $u->{token})->{json}{items} }, 2,
        'the revoked session is no longer listed');
}

# ---------------------------------------------------------------- last use, coalesced
# (the stamp is an UPDATE setting NOW(6): a value that did not move is a
# write that did not happen)
{
    my $used = sub { scalar_sql($s, "SELECT DATE_FORMAT(last_used_at, '%Y-%m-%d %H:%i:%s.%f') FROM auth_tokens"
        . " WHERE user_id = $other->{id} AND revoked_at IS NULL") };
    my $login = $used->();
    is($login, scalar_sql($s, "SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') FROM auth_tokens"
        . " WHERE user_id = $other->{id}"), 'a login stamps its token: lastUsedAt = createdAt');
    my $ok = grep { jreq($s, 'GET', "/api/v1/users/$other->{id}", $other->{token})->{status} == 200 } 1 .. 20;
    is($ok, 20, '20 requests with the token');
    is($used->(), $login, 'within touch_interval (60 s) none of them wrote lastUsedAt');
    $s->sql("UPDATE auth_tokens SET last_used_at = '2026-01-01 00:00:00.000000' WHERE user_id = $other->{id}");
    $s->auth_changed;
    is(jreq($s, 'GET', "/api/v1/users/$other->{id}", $other->{token})->{status}, 200, 'a request after the interval');
    my $stamped = $used->();
    cmp_ok($stamped, 'gt', '2026-01-01 00:00:00.000000', 'stamps it again');
    $ok = grep { jreq($s, 'GET', "/api/v1/users/$other->{id}", $other->{token})->{status} == 200 } 1 .. 20;
    is($ok, 20, '20 more requests');
    is($used->(), $stamped, 'and none of those wrote it: one write in 21 requests');
    my $r = jreq($s, 'GET', "/api/v1/users/$other->{id}/tokens", $other->{token});
    is($r->{json}{items}[0]{lastUsedAt}, do { (my $x = $stamped) =~ s/ /T/; "${x}Z" }, 'the sessions list shows that stamp');
}

# ---------------------------------------------------------------- the password
{
    my $path = "/api/v1/users/$u->{id}/password";
    my $hash = scalar_sql($s, "SELECT password_hash FROM users WHERE id = $u->{id}");
    is_problem(jreq($s, 'POST', $path, $u->{token}, { currentPassword => 'not-the-password', newPassword => 'a-new-secret-1' }),
        403, 'PASSWORD_WRONG', 'a wrong current password: 403');
    is_problem(jreq($s, 'POST', $path, $u->{token}, { currentPassword => $u->{password}, newPassword => 'short7!' }),
        400, 'INVALID_REQUEST', 'a weak new password (7 characters, the sign-up refuses it): 400');
    is_problem(jreq($s, 'POST', $path, $u->{token}, { currentPassword => $u->{password}, newPassword => 'x' x 73 }),
        400, 'INVALID_REQUEST', 'a 73-character new password: 400');
    is_problem(jreq($s, 'POST', $path, $u->{token}, { currentPassword => $u->{password} }), 400, 'INVALID_REQUEST',
        'no new password: 400');
    is_problem(jreq($s, 'POST', $path, $other->{token}, { currentPassword => $u->{password}, newPassword => 'a-new-secret-1' }),
        403, 'FORBIDDEN', "another user's password: 403");
    is(scalar_sql($s, "SELECT password_hash FROM users WHERE id = $u->{id}"), $hash, 'none of that changed the hash');
    is(jreq($s, 'GET', "/api/v1/users/$u->{id}", $second)->{status}, 200, 'the other session still works');

    my $r = jreq($s, 'POST', $path, $u->{token}, { currentPassword => $u->{password}, newPassword => 'a-new-secret-1' });
    is($r->{status}, 200, 'the change: 200') or diag($r->{body});
    is_deeply($r->{json}, { userId => 0 + $u->{id}, revokedSessions => 1 }, 'one other session revoked');
    is_problem(jreq($s, 'GET', "/api/v1/users/$u->{id}", $second), 401, 'UNAUTHORIZED',
        'the old token of the other session: 401 at once');
    is(jreq($s, 'GET', "/api/v1/users/$u->{id}", $u->{token})->{status}, 200, "the caller's token still works");
    like(scalar_sql($s, "SELECT password_hash FROM users WHERE id = $u->{id}"), qr/^\$argon2id\$/, 'the new hash is argon2id');
    is_problem($s->post_json('/api/v1/auth/tokens', { email => $u->{email}, password => $u->{password} }), 401,
        'INVALID_CREDENTIALS', 'the old password no longer logs in');
    ok(login($s, $u->{email}, 'a-new-secret-1'), 'the new one does');
    is_problem(jreq($s, 'POST', $path, $u->{token}, { currentPassword => $u->{password}, newPassword => 'another-one-2' }),
        403, 'PASSWORD_WRONG', 'the old password as the current one: 403');
}

$s->stop;
done_testing;
