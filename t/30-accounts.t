# Accounts and bearer tokens: registration rules, login, revocation and
# expiry, who may act on whom, and that secrets stay out of the logs.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use MIME::Base64 qw(decode_base64);
use Jangteo::Client qw(test_stack new_user login bearer charge invariant_ok balance_of is_problem);

my $s = test_stack();

sub nusers { $s->sql('SELECT COUNT(*) FROM users')->[0][0] }

# A password and a phone no other test uses: they must never reach a log.
my $SECRET_PW = 'Zq7-secret-' . $$ . '-pw';
my $PHONE     = '019-8' . sprintf('%03d', $$ % 1000) . '-4321';

# ---- registration validation: every bad field is a 400 and no row
my %good = (email => 'valid@example.com', password => $SECRET_PW, name => '김철수', phone => $PHONE);
my @bad = (
    [ 'email missing',        { email => undef } ],
    [ 'email not a string',   { email => 12345 } ],
    [ 'email without @',      { email => 'no-at.example.com' } ],
    [ 'email without domain', { email => 'a@' } ],
    [ 'email two @',          { email => 'a@b@example.com' } ],
    [ 'email with space',     { email => 'a b@example.com' } ],
    [ 'email no dot',         { email => 'a@localhost' } ],
    [ 'email too long',       { email => ('x' x 250) . '@example.com' } ],
    [ 'password missing',     { password => undef } ],
    [ 'password 7 chars',     { password => 'abcdefg' } ],
    [ 'password 73 chars',    { password => 'p' x 73 } ],
    [ 'password a number',    { password => 12345678 } ],
    [ 'name missing',         { name => undef } ],
    [ 'name empty',           { name => '' } ],
    [ 'name 51 chars',        { name => '가' x 51 } ],
    [ 'phone missing',        { phone => undef } ],
    [ 'phone landline',       { phone => '02-123-4567' } ],
    [ 'phone bad prefix 012', { phone => '012-1234-5678' } ],
    [ 'phone short middle',   { phone => '010-12-5678' } ],
    [ 'phone short last',     { phone => '010-1234-567' } ],
    [ 'phone long last',      { phone => '010-123-45678' } ],
    [ 'phone too few digits', { phone => '010123456' } ],
    [ 'phone spaces',         { phone => '010 1234 5678' } ],
    [ 'phone +82',            { phone => '+82-10-1234-5678' } ],
    [ 'phone letters',        { phone => '010-abcd-5678' } ],
    [ 'phone a number',       { phone => 1012345678 } ],
    [ 'role ADMIN',           { role => 'ADMIN' } ],
    [ 'role lower case',      { role => 'buyer' } ],
    [ 'role unknown',         { role => 'GUEST' } ],
    [ 'role a number',        { role => 1 } ],
);
my $before = nusers();
for my $case (@bad) {
    my ($name, $over) = @$case;
    my %body = (%good, %$over);
    delete $body{$_} for grep { !defined $over->{$_} } keys %$over;    # undef: leave the field out
    my $r = $s->post_json('/api/v1/users', \%body);
    is_problem($r, 400, 'INVALID_REQUEST', "register: $name -> 400 INVALID_REQUEST");
}
is_problem($s->post_json('/api/v1/users', '{"email":'), 400, undef, 'register: broken JSON -> 400');
is_problem($s->post_json('/api/v1/users', '[1,2]'), 400, undef, 'register: JSON array -> 400');
is_problem($s->post_json('/api/v1/users', qq({"email":"n-$$\@example.com","password":"abcdefgh","name":null,"phone":"010-1234-5678"})),
    400, 'INVALID_REQUEST', 'register: name null -> 400');
is(nusers(), $before, 'no invalid registration inserted a row');

# ---- valid edges
my @ok = (
    [ 'password 8 chars',  { password => 'abcdefgh' } ],
    [ 'password 72 chars', { password => 'p' x 72 } ],
    [ 'phone no dashes',   { phone => '01012345678' } ],
    [ 'phone 3-digit mid', { phone => '010-123-4567' } ],
    [ 'phone 10 digits',   { phone => '0161234567' } ],
    [ 'role SELLER',       { role => 'SELLER' } ],
);
my $n = 0;
for my $case (@ok) {
    my ($name, $over) = @$case;
    my %body = (%good, email => 'edge' . ++$n . "-$$\@example.com", %$over);
    my $r = $s->post_json('/api/v1/users', \%body);
    is($r->{status}, 201, "register: $name -> 201") or diag($r->{body});
}

# ---- a user, and the shape of the answer
my $email = "Mixed.Case-$$\@Example.com";
my $r = $s->post_json('/api/v1/users', { %good, email => $email });
is($r->{status}, 201, 'register -> 201') or diag($r->{body});
my $me = $r->{json} || {};
ok($me->{userId} && $me->{userId} =~ /^\d+$/, 'userId is a number');
is($me->{email}, lc $email, 'email is stored in lower case');
is($me->{name}, '김철수', 'name');
is($me->{phone}, $PHONE, 'phone');
is($me->{role}, 'BUYER', 'role defaults to BUYER');
is($me->{balance}, 0, 'balance starts at 0');
my $uid = $me->{userId};

# PII is sealed at rest
my $raw_users = join ' ', map { join ' ', @$_ } @{ $s->sql("SELECT email_enc, name_enc, phone_enc, password_hash FROM users WHERE id = $uid") };
unlike($raw_users, qr/\Q$PHONE\E/, 'phone is not stored in clear');
unlike($raw_users, qr/\Q@{[lc $email]}\E/i, 'email is not stored in clear');
unlike($raw_users, qr/\Q$SECRET_PW\E/, 'password is not stored in clear');

# ---- EMAIL_TAKEN, also in another case
$before = nusers();
is_problem($s->post_json('/api/v1/users', { %good, email => $email }), 409, 'EMAIL_TAKEN', 'same email -> 409 EMAIL_TAKEN');
is_problem($s->post_json('/api/v1/users', { %good, email => uc $email }), 409, 'EMAIL_TAKEN', 'same email upper case -> 409');
is_problem($s->post_json('/api/v1/users', { %good, email => lc $email, role => 'SELLER' }), 409, 'EMAIL_TAKEN', 'same email lower case -> 409');
is(nusers(), $before, 'no duplicate row');

# ---- login
$r = $s->post_json('/api/v1/auth/tokens', { email => $email, password => $SECRET_PW });
is($r->{status}, 201, 'login -> 201') or diag($r->{body});
my $tok = $r->{json} || {};
like($tok->{token} // '', qr/^[A-Za-z0-9_-]{20,}$/, 'token looks like a token');
is($tok->{tokenType}, 'Bearer', 'tokenType Bearer');
like($tok->{expiresAt} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, 'expiresAt is a timestamp');
is($tok->{userId}, $uid, 'userId');
my $token = $tok->{token};

$r = $s->post_json('/api/v1/auth/tokens', { email => uc $email, password => $SECRET_PW });
is($r->{status}, 201, 'login with the email in another case -> 201');

my $wrong   = $s->post_json('/api/v1/auth/tokens', { email => $email, password => $SECRET_PW . 'x' });
my $unknown = $s->post_json('/api/v1/auth/tokens', { email => "nobody-$$\@example.com", password => $SECRET_PW });
is_problem($wrong, 401, 'INVALID_CREDENTIALS', 'wrong password -> 401 INVALID_CREDENTIALS');
is_problem($unknown, 401, 'INVALID_CREDENTIALS', 'unknown email -> 401 INVALID_CREDENTIALS');
{
    my %a = %{ $wrong->{json} || {} };
    my %b = %{ $unknown->{json} || {} };
    delete @a{qw(instance)};
    delete @b{qw(instance)};
    is_deeply(\%a, \%b, 'wrong password and unknown email answer the same (but instance)');
}

# ---- tokens are stored hashed only
{
    my $cols = join ',', map { $_->[0] } @{ $s->sql('SHOW COLUMNS FROM auth_tokens') };
    my $dump = join ' ', map { join ' ', @$_ } @{ $s->sql('SELECT HEX(token_hash), user_id, expires_at, COALESCE(revoked_at, \'\'), created_at FROM auth_tokens') };
    my $text = join ' ', map { join ' ', map { $_ // '' } @$_ } @{ $s->sql('SELECT * FROM auth_tokens') };
    (my $b64 = $token) =~ tr/-_/+\//;
    my $raw = decode_base64($b64 . '=' x ((4 - length($b64) % 4) % 4));
    is(length($raw), 32, 'token carries 256 bits');
    unlike($dump . $text, qr/\Q$token\E/, 'the raw token string is nowhere in auth_tokens');
    unlike($dump, qr/\Q@{[uc unpack('H*', $raw)]}\E/, 'the raw token bytes are not stored');
    my $h = uc sha256_hex($raw);
    is($s->sql("SELECT COUNT(*) FROM auth_tokens WHERE HEX(token_hash) = '$h'")->[0][0], 1, 'its SHA-256 is');
    unlike($cols, qr/\btoken\b(?!_hash)/, "no column holds the token ($cols)");
}

# ---- the token works on GET /users/{id}
$r = $s->get("/api/v1/users/$uid", bearer($token));
is($r->{status}, 200, 'GET own user -> 200') or diag($r->{body});
my $got = $r->{json} || {};
is_deeply([ sort keys %$got ], [ sort qw(userId name email phone role balance updatedAt) ], 'user fields');
is($got->{email}, lc $email, 'email');
is($got->{phone}, $PHONE, 'phone');
is($got->{name}, '김철수', 'name (UTF-8)');
is($got->{balance}, 0, 'balance');

is_problem($s->get("/api/v1/users/$uid"), 401, 'UNAUTHORIZED', 'no token -> 401');
is_problem($s->get("/api/v1/users/$uid", { Authorization => 'Bearer nope' }), 401, 'UNAUTHORIZED', 'garbage token -> 401');
is_problem($s->get("/api/v1/users/$uid", { Authorization => 'Bearer ' . ('A' x 43) }), 401, 'UNAUTHORIZED', 'unknown token -> 401');
is_problem($s->get("/api/v1/users/$uid", { Authorization => "Basic $token" }), 401, 'UNAUTHORIZED', 'not Bearer -> 401');

# ---- revoke: 204, then 401 at once
my $t2 = login($s, $email, $SECRET_PW);
$r = $s->request('DELETE', '/api/v1/auth/tokens/current', bearer($t2));
is($r->{status}, 204, 'revoke -> 204') or diag($r->{body});
is_problem($s->get("/api/v1/users/$uid", bearer($t2)), 401, 'UNAUTHORIZED', 'revoked token -> 401 at once');
is_problem($s->request('DELETE', '/api/v1/auth/tokens/current', bearer($t2)), 401, 'UNAUTHORIZED', 'revoking again -> 401');
is($s->get("/api/v1/users/$uid", bearer($token))->{status}, 200, 'the other token of the same user still works');

# ---- expiry
my $t3 = login($s, $email, $SECRET_PW);
is($s->get("/api/v1/users/$uid", bearer($t3))->{status}, 200, 'fresh token works');
{
    (my $b64 = $t3) =~ tr/-_/+\//;
    my $h = uc sha256_hex(decode_base64($b64 . '=' x ((4 - length($b64) % 4) % 4)));
    $s->sql("UPDATE auth_tokens SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE HEX(token_hash) = '$h'");
    $s->auth_changed;
}
is_problem($s->get("/api/v1/users/$uid", bearer($t3)), 401, 'UNAUTHORIZED', 'expired token -> 401');

# ---- another user's token: 403 everywhere
my $other = new_user($s, tag => 'other');
is_problem($s->get("/api/v1/users/$uid", bearer($other->{token})), 403, 'FORBIDDEN', "other user's token: GET user -> 403");
is_problem(charge($s, $uid, $other->{token}, 5000, "k-$$-other"), 403, 'FORBIDDEN', "other user's token: charge -> 403");
is_problem($s->get("/api/v1/users/$uid/points", bearer($other->{token})), 403, 'FORBIDDEN', "other user's token: points -> 403");
is_problem(charge($s, $uid, undef, 5000, "k-$$-none"), 401, 'UNAUTHORIZED', 'no token: charge -> 401');
is_problem($s->get("/api/v1/users/$uid/points"), 401, 'UNAUTHORIZED', 'no token: points -> 401');
is(balance_of($s, $uid), 0, 'nothing was charged');
is($s->sql("SELECT COUNT(*) FROM point_ledger WHERE user_id = $uid")->[0][0], 0, 'no ledger row');

# ---- an admin acts on anyone
{
    my $dir = tempdir(CLEANUP => 1);
    my $admin_email = "admin-$$\@example.com";
    my $admin_pw = 'admin-pw-' . $$;
    open my $fh, '>', "$dir/pw" or die;
    print $fh "$admin_pw\n";
    close $fh;
    my ($rc, $out) = $s->admin('create-admin', '--email', $admin_email, '--password-file', "$dir/pw");
    is($rc, 0, 'create-admin exits 0') or diag($out);
    is($s->sql("SELECT role FROM users WHERE id = (SELECT MAX(id) FROM users)")->[0][0], 'ADMIN', 'an ADMIN row exists');
    my $atok = login($s, $admin_email, $admin_pw);
    $r = $s->get("/api/v1/users/$uid", bearer($atok));
    is($r->{status}, 200, 'admin reads another user') or diag($r->{body});
    is(($r->{json} || {})->{email}, lc $email, '... and sees that user');
    $r = charge($s, $uid, $atok, 3000, "admin-$$-1");
    is($r->{status}, 200, 'admin charges another user') or diag($r->{body});
    is(($r->{json} || {})->{userId}, $uid, '... on that user');
    is(balance_of($s, $uid), 3000, "the user's balance moved");
    is($s->get("/api/v1/users/$uid/points", bearer($atok))->{status}, 200, "admin reads the user's points");
    is_problem($s->get('/api/v1/users/99999999', bearer($atok)), 404, 'USER_NOT_FOUND', 'admin: unknown user -> 404');
    is_problem(charge($s, 99999999, $atok, 3000, "admin-$$-2"), 404, 'USER_NOT_FOUND', 'admin: charge unknown user -> 404');
    my ($rc2, $out2) = $s->admin('create-admin', '--email', uc $admin_email, '--password-file', "$dir/pw");
    isnt($rc2, 0, 'create-admin refuses an existing email');
}

# ---- secrets never reach a log
for my $log (qw(error access out nginx nginx-error)) {
    my $text = $s->log_text($log);
    unlike($text, qr/\Q$SECRET_PW\E/, "password not in the $log log");
    unlike($text, qr/\Q$PHONE\E/, "phone not in the $log log");
    (my $digits = $PHONE) =~ s/-//g;
    unlike($text, qr/\Q$digits\E/, "phone digits not in the $log log");
    unlike($text, qr/\Q$token\E/, "token not in the $log log");
}

invariant_ok($s);
done_testing;
