# Idempotency-Key on charges: replays are byte-identical and change
# nothing, a reused key with another payload is refused, refusals are not
# remembered, a key in flight is not run twice, and the durable record
# survives a Redis flush or restart.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Digest::SHA ();
use Jangteo::Client qw(test_stack new_user login bearer charge charge_raw concurrent invariant_ok ledger_rows balance_of is_problem raw_request);

my $s = test_stack();
my $u = new_user($s, tag => 'idem');
my ($uid, $tok) = ($u->{id}, $u->{token});
sub nledger { my $id = shift // $uid; $s->sql("SELECT COUNT(*) FROM point_ledger WHERE user_id = $id")->[0][0] }
sub nkeys   { my ($k) = @_; $s->sql("SELECT COUNT(*) FROM idempotency_keys WHERE idem_key = '$k'")->[0][0] }

# ---- replay: same status, same bytes, marked, nothing changes
my $K = "replay-$$";
my $r1 = charge($s, $uid, $tok, 5000, $K);
is($r1->{status}, 200, 'first charge -> 200') or diag($r1->{body});
ok(!defined $r1->{headers}{'idempotent-replayed'}, 'the first answer is not marked as a replay');
is(nkeys($K), 1, 'the key is recorded durably');
my ($bal, $nl) = (balance_of($s, $uid), nledger());
my $r2 = charge($s, $uid, $tok, 5000, $K);
is($r2->{status}, 200, 'same key, same payload -> 200');
is($r2->{body}, $r1->{body}, 'body byte for byte');
is($r2->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
is($r2->{headers}{'content-type'}, $r1->{headers}{'content-type'}, 'same content-type');
my $r2b = charge_raw($s, $uid, $tok, qq({ "amount" :   5000 }), $K);
is($r2b->{status}, 200, 'same payload spelled with other whitespace -> replay');
is($r2b->{body}, $r1->{body}, '... byte for byte');
is(balance_of($s, $uid), $bal, 'balance unchanged by the replays');
is(nledger(), $nl, 'no ledger row added by the replays');

# ---- same key, another payload
is_problem(charge($s, $uid, $tok, 6000, $K), 422, 'IDEMPOTENCY_KEY_REUSED', 'same key, other amount -> 422');
is(balance_of($s, $uid), $bal, 'balance unchanged');
is(nledger(), $nl, 'no ledger row');
# the durable record says the same once the cache is gone
$s->redis('FLUSHALL');
is_problem(charge($s, $uid, $tok, 6000, $K), 422, 'IDEMPOTENCY_KEY_REUSED', 'same key, other amount, after FLUSHALL -> 422');
is(balance_of($s, $uid), $bal, 'balance unchanged');

# ---- refusals are not remembered
my $K3 = "refused-$$";
is_problem(charge($s, $uid, $tok, 999, $K3), 400, 'AMOUNT_TOO_SMALL', 'key K3 with 999 -> 400');
is(nkeys($K3), 0, 'the 400 is not recorded');
my $r = charge($s, $uid, $tok, 1000, $K3);
is($r->{status}, 200, 'key K3 again with 1,000 -> 200 (charged)') or diag($r->{body});
ok(!defined $r->{headers}{'idempotent-replayed'}, '... not a replay');
is(balance_of($s, $uid), $bal + 1000, 'charged once');
is(nledger(), $nl + 1, 'one ledger row');
$r = charge($s, $uid, $tok, 1000, $K3);
is($r->{headers}{'idempotent-replayed'}, 'true', 'and K3 now replays');
is(balance_of($s, $uid), $bal + 1000, 'still charged once');
($bal, $nl) = (balance_of($s, $uid), nledger());

my $other = new_user($s, tag => 'other');
my $K4 = "forbidden-$$";
is_problem(charge($s, $uid, $other->{token}, 1000, $K4), 403, 'FORBIDDEN', "another user's token -> 403");
is(nkeys($K4), 0, 'the 403 is not recorded');

# ---- quoted sf-string and bare token are one key
my $r5 = charge($s, $uid, $tok, 2000, qq("K2-$$"));
is($r5->{status}, 200, 'quoted key -> 200') or diag($r5->{body});
my $r6 = charge($s, $uid, $tok, 2000, "K2-$$");
is($r6->{status}, 200, 'bare key -> 200');
is($r6->{headers}{'idempotent-replayed'}, 'true', 'bare form of a quoted key replays');
is($r6->{body}, $r5->{body}, '... the same body');
my $r7 = charge($s, $uid, $tok, 2000, qq("K2-$$"));
is($r7->{headers}{'idempotent-replayed'}, 'true', 'quoted again replays');
is(balance_of($s, $uid), $bal + 2000, 'charged once for the two spellings');
($bal, $nl) = (balance_of($s, $uid), nledger());

# ---- malformed and missing keys
my @badkeys = (
    [ 'empty',               '' ],
    [ '256 chars',           'k' x 256 ],
    [ 'inner space',         'a b' ],
    [ 'tab inside',          "a\tb" ],
    [ 'unterminated quote',  '"abc' ],
    [ 'lone quote',          '"' ],
    [ 'empty quoted',        '""' ],
    [ 'quoted with space',   '"a b"' ],
    [ 'bad escape',          '"a\\qb"' ],
    [ 'quoted 256 chars',    '"' . ('q' x 256) . '"' ],
);
for my $c (@badkeys) {
    my ($name, $key) = @$c;
    is_problem(charge($s, $uid, $tok, 1000, $key), 400, 'IDEMPOTENCY_KEY_INVALID', "key $name -> 400 IDEMPOTENCY_KEY_INVALID");
}
# bytes HTTP::Tiny will not send: written by hand
for my $c ([ 'control char', "a\x01b" ], [ 'DEL', "a\x7fb" ], [ 'non-ASCII (UTF-8)', "\xed\x82\xa4" ],
           [ 'quoted control char', "\"a\x01b\"" ], [ 'escape char', "\x1b[0m" ]) {
    my ($name, $key) = @$c;
    my $res = raw_request($s, 'POST', "/api/v1/users/$uid/charge",
        [ [ Authorization => "Bearer $tok" ], [ 'Content-Type' => 'application/json' ], [ 'Idempotency-Key' => $key ] ],
        '{"amount":1000}');
    is_problem($res, 400, 'IDEMPOTENCY_KEY_INVALID', "key $name -> 400 IDEMPOTENCY_KEY_INVALID");
}
is_problem(charge($s, $uid, $tok, 1000, undef), 400, 'IDEMPOTENCY_KEY_MISSING', 'no key -> 400 IDEMPOTENCY_KEY_MISSING');
is(balance_of($s, $uid), $bal, 'no bad key charged anything');
is(nledger(), $nl, 'no bad key wrote a ledger row');
$r = charge($s, $uid, $tok, 1000, 'L' x 255);
is($r->{status}, 200, 'a 255-character key -> 200') or diag($r->{body});
$r = charge($s, $uid, $tok, 1000, '"' . ('L' x 255) . '"');
is($r->{headers}{'idempotent-replayed'}, 'true', '... and its quoted form replays');
$r = charge($s, $uid, $tok, 1000, q{"esc\"aped\\\\key"});
is($r->{status}, 200, 'quoted key with \\" and \\\\ escapes -> 200') or diag($r->{body});
($bal, $nl) = (balance_of($s, $uid), nledger());

# ---- keys belong to their user
my $KU = "shared-$$";
my $ra = charge($s, $uid, $tok, 1000, $KU);
my $rb = charge($s, $other->{id}, $other->{token}, 1000, $KU);
is($ra->{status}, 200, 'user A with key KU -> 200');
is($rb->{status}, 200, 'user B with the same key KU -> 200');
ok(!defined $rb->{headers}{'idempotent-replayed'}, "B's request is not A's replay");
is(balance_of($s, $other->{id}), 1000, 'B was charged');
($bal, $nl) = (balance_of($s, $uid), nledger());

# ---- an admin using one key on two users must not get the first user's answer
{
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/pw" or die;
    print $fh "admin-pw-$$\n";
    close $fh;
    my ($rc, $out) = $s->admin('create-admin', '--email', "admin-$$\@example.com", '--password-file', "$dir/pw");
    is($rc, 0, 'create-admin') or diag($out);
    my $atok = login($s, "admin-$$\@example.com", "admin-pw-$$");
    my $c = new_user($s, tag => 'c');
    my $d = new_user($s, tag => 'd');
    my $KA = "admin-key-$$";
    my $rc1 = charge($s, $c->{id}, $atok, 1000, $KA);
    is($rc1->{status}, 200, 'admin charges C with key KA') or diag($rc1->{body});
    my $rd = charge($s, $d->{id}, $atok, 1000, $KA);
    my $dj = $rd->{json} || {};
    ok(!($rd->{status} == 200 && ($dj->{userId} // 0) == $c->{id}),
        "admin charging D with the same key must not be answered with C's charge")
        or diag("got $rd->{status} $rd->{body} (replayed: " . ($rd->{headers}{'idempotent-replayed'} // 'no') . ')');
    ok(($rd->{status} == 200 && ($dj->{userId} // 0) == $d->{id} && balance_of($s, $d->{id}) == 1000)
        || ($rd->{status} == 422 && balance_of($s, $d->{id}) == 0),
        'D is either charged (200, userId D) or refused (422), never silently skipped')
        or diag('D balance ' . balance_of($s, $d->{id}));
}

# ---- 50 concurrent requests, one key, one payload
{
    my $v = new_user($s, tag => 'flight');
    my $KC = "flight-$$";
    my @reqs = map {
        [ 'POST', "/api/v1/users/$v->{id}/charge",
          { %{ bearer($v->{token}) }, 'Content-Type' => 'application/json', 'Idempotency-Key' => $KC },
          '{"amount":7000}' ]
    } 1 .. 50;
    my $res = concurrent($s, \@reqs);
    my @ok = grep { $_->{status} == 200 } @$res;
    my @busy = grep { $_->{status} == 409 && (($_->{json} || {})->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT' } @$res;
    my @other = grep { $_->{status} != 200 && !($_->{status} == 409 && (($_->{json} || {})->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT') } @$res;
    cmp_ok(scalar(@ok), '>=', 1, 'at least one 200 (' . scalar(@ok) . ' 200s, ' . scalar(@busy) . ' in flight)');
    is(scalar(@other), 0, 'every other answer is 409 IDEMPOTENCY_IN_FLIGHT')
        or diag(join "\n", map { "$_->{status} $_->{body}" } @other[0 .. ($#other < 4 ? $#other : 4)]);
    my %bodies = map { $_->{body} => 1 } @ok;
    is(scalar(keys %bodies), 1, 'all 200 bodies are byte-identical') or diag(join "\n", keys %bodies);
    is(nledger($v->{id}), 1, 'exactly one ledger row');
    is(balance_of($s, $v->{id}), 7000, 'charged once');
    is(nkeys($KC), 1, 'one durable key row');
    my $again = charge($s, $v->{id}, $v->{token}, 7000, $KC);
    is($again->{status}, 200, 'afterwards the key replays');
    is($again->{body}, $ok[0]{body}, '... with the same body') if @ok;
}

# ---- FLUSHALL between success and retry
{
    my $KF = "flush-$$";
    my $f1 = charge($s, $uid, $tok, 3000, $KF);
    is($f1->{status}, 200, 'charge before FLUSHALL -> 200') or diag($f1->{body});
    ($bal, $nl) = (balance_of($s, $uid), nledger());
    is($s->redis('FLUSHALL'), 'OK', 'FLUSHALL');
    my $f2 = charge($s, $uid, $tok, 3000, $KF);
    is($f2->{status}, 200, 'retry after FLUSHALL -> 200');
    is($f2->{body}, $f1->{body}, '... byte-identical body');
    is($f2->{headers}{'idempotent-replayed'}, 'true', '... marked as a replay');
    is(balance_of($s, $uid), $bal, 'balance unchanged');
    is(nledger(), $nl, 'no ledger row');
}

# ---- Redis restart between success and retry
{
    my $KR = "restart-$$";
    my $g1 = charge($s, $uid, $tok, 4000, $KR);
    is($g1->{status}, 200, 'charge before the restart -> 200') or diag($g1->{body});
    ($bal, $nl) = (balance_of($s, $uid), nledger());
    $s->stop_redis;
    my $g2 = charge($s, $uid, $tok, 4000, $KR);
    is($g2->{status}, 200, 'retry while Redis is down -> 200') or diag($g2->{body});
    is($g2->{body}, $g1->{body}, '... byte-identical body');
    $s->start_redis;
    is($s->redis('PING'), 'PONG', 'Redis is back (empty)');
    my $g3 = charge($s, $uid, $tok, 4000, $KR);
    is($g3->{status}, 200, 'retry after the restart -> 200') or diag($g3->{body});
    is($g3->{body}, $g1->{body}, '... byte-identical body');
    is($g3->{headers}{'idempotent-replayed'}, 'true', '... marked as a replay');
    is(balance_of($s, $uid), $bal, 'balance unchanged');
    is(nledger(), $nl, 'no ledger row');
}

# ---- an expired key is a new key: its durable row is taken over in place,
# the new request applies once, and then replays as itself
{
    my $KE = "expired-$$";
    my $e1 = charge($s, $uid, $tok, 2000, $KE);
    is($e1->{status}, 200, 'charge under a key that will expire -> 200') or diag($e1->{body});
    my $id1 = $s->sql("SELECT id FROM idempotency_keys WHERE idem_key = '$KE'")->[0][0];
    $s->sql("UPDATE idempotency_keys SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE idem_key = '$KE'");
    $s->redis('FLUSHALL');
    ($bal, $nl) = (balance_of($s, $uid), nledger());
    my $e2 = charge($s, $uid, $tok, 3000, $KE);
    is($e2->{status}, 200, 'the expired key with another amount -> 200, not 422') or diag($e2->{body});
    ok(!defined $e2->{headers}{'idempotent-replayed'}, '... not a replay');
    is(balance_of($s, $uid), $bal + 3000, '... charged the new amount once');
    is(nledger(), $nl + 1, '... one ledger row');
    is_deeply($s->sql("SELECT COUNT(*), MIN(id), MIN(expires_at > NOW(6)), MIN(SHA2(body, 256))"
                      . " FROM idempotency_keys WHERE idem_key = '$KE'"),
              [[1, $id1, 1, Digest::SHA::sha256_hex($e2->{body})]], '... the one row of the key, taken over: live again, with the new answer');
    $s->redis('FLUSHALL');
    my $e3 = charge($s, $uid, $tok, 3000, $KE);
    is($e3->{headers}{'idempotent-replayed'}, 'true', 'the same request again replays (from the row)');
    is($e3->{body}, $e2->{body}, '... byte for byte');
    is_problem(charge($s, $uid, $tok, 2000, $KE), 422, 'IDEMPOTENCY_KEY_REUSED', '... and the old amount is now a mismatch');
    is(balance_of($s, $uid), $bal + 3000, 'still charged once');
}

invariant_ok($s);
done_testing;
