# The Redis lock is an optimisation; the version fence is what keeps money
# right. (a) leases that expire mid-transaction lose no update and count
# no charge twice, (b) without Redis charges and idempotency still hold,
# (c) a lock held too long is a 503 LOCK_TIMEOUT that changes nothing.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack new_user bearer charge concurrent invariant_ok ledger_rows balance_of is_problem);

my $k = 0;
sub key { "fence-$$-" . ++$k }
sub nledger { my ($s, $id) = @_; $s->sql("SELECT COUNT(*) FROM point_ledger WHERE user_id = $id")->[0][0] }
sub ledger_sum { my ($s, $id) = @_; $s->sql("SELECT COALESCE(SUM(delta), 0) FROM point_ledger WHERE user_id = $id")->[0][0] }
sub code_of { (($_[0]{json} || {})->{code}) // '' }
sub charge_reqs {
    my ($u, $n, $amount, $fixed_key) = @_;
    return [ map {
        [ 'POST', "/api/v1/users/$u->{id}/charge",
          { %{ bearer($u->{token}) }, 'Content-Type' => 'application/json', 'Idempotency-Key' => $fixed_key // key() },
          ref $amount ? qq({"amount":$amount->[$_ - 1]}) : qq({"amount":$amount}) ]
    } 1 .. $n ];
}

# ---- (a) a lease far shorter than the transaction
subtest 'lease expires inside the transaction' => sub {
    my $s = test_stack(conf => {
        lock    => { lease_ms => 5 },
        server  => { enable_test_routes => 'yes' },
        testing => { tx_delay_ms => 50 },
        tx      => { max_attempts => 20, deadline_ms => 10000 },
    });
    my $u = new_user($s, tag => 'lease');
    my $res = concurrent($s, charge_reqs($u, 20, 1000));
    my @ok   = grep { $_->{status} == 200 } @$res;
    my @busy = grep { $_->{status} == 503 && code_of($_) eq 'CONFLICT_RETRY_EXHAUSTED' } @$res;
    my @other = grep { $_->{status} != 200 && !($_->{status} == 503 && code_of($_) eq 'CONFLICT_RETRY_EXHAUSTED') } @$res;
    note(scalar(@ok) . ' charged, ' . scalar(@busy) . ' exhausted');
    is(scalar(@other), 0, 'every answer is 200 or 503 CONFLICT_RETRY_EXHAUSTED')
        or diag(join "\n", map { "$_->{status} $_->{body}" } @other);
    ok(!grep({ !defined $_->{headers}{'retry-after'} } @busy), 'every 503 carries Retry-After');
    cmp_ok(scalar(@ok), '>=', 1, 'some charges got through');
    my $bal = balance_of($s, $u->{id});
    is(nledger($s, $u->{id}), scalar(@ok), 'one ledger row per 200');
    is($bal, 1000 * scalar(@ok), 'balance = 1,000 x number of 200s');
    is($bal, ledger_sum($s, $u->{id}), 'no lost update: balance = ledger sum');
    my %lid = map { ($_->{json} || {})->{ledgerId} => 1 } @ok;
    is(scalar(keys %lid), scalar(@ok), 'every 200 names its own ledger row');
    my %after = map { ($_->{json} || {})->{balance} => 1 } @ok;
    is(scalar(keys %after), scalar(@ok), 'every 200 reports a different balance');
    like($s->log_text('error'), qr/lease of lock:balance:$u->{id} expired/, 'the leases did expire (the fence was exercised)');
    invariant_ok($s);
    $s->stop;
};

# ---- (c) and (b) on one stack: a short wait, a long lease
my $s = test_stack(conf => { lock => { wait_ms => 50, lease_ms => 10000 } });

subtest 'lock wait timeout' => sub {
    my $u = new_user($s, tag => 'wait');
    is(charge($s, $u->{id}, $u->{token}, 1000, key())->{status}, 200, 'a first charge');
    my ($bal, $nl) = (balance_of($s, $u->{id}), nledger($s, $u->{id}));
    is($s->redis('SET', "lock:balance:$u->{id}", 'x', 'PX', 10000), 'OK', 'we hold the lock');
    my $K = key();
    my $r = charge($s, $u->{id}, $u->{token}, 2000, $K);
    is_problem($r, 503, 'LOCK_TIMEOUT', 'charge while the lock is held -> 503 LOCK_TIMEOUT');
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'Retry-After is a number of seconds');
    is(balance_of($s, $u->{id}), $bal, 'balance unchanged');
    is(nledger($s, $u->{id}), $nl, 'no ledger row');
    is($s->sql("SELECT COUNT(*) FROM idempotency_keys WHERE idem_key = '$K'")->[0][0], 0, 'the key is not recorded');
    is($s->redis('GET', "lock:balance:$u->{id}"), 'x', 'our lock was left alone');
    is($s->redis('DEL', "lock:balance:$u->{id}"), '1', 'release it');
    $r = charge($s, $u->{id}, $u->{token}, 2000, $K);
    is($r->{status}, 200, 'the same request (same key) now succeeds') or diag($r->{body});
    ok(!defined $r->{headers}{'idempotent-replayed'}, '... and is not a replay');
    is(balance_of($s, $u->{id}), $bal + 2000, 'charged once');
    is($s->redis('EXISTS', "lock:balance:$u->{id}"), '0', 'the daemon released its lock');
};

subtest 'Redis down' => sub {
    my $u = new_user($s, tag => 'noredis');
    is(charge($s, $u->{id}, $u->{token}, 1000, key())->{status}, 200, 'a first charge with Redis');
    my $b0 = balance_of($s, $u->{id});
    my $l0 = nledger($s, $u->{id});
    $s->stop_redis;
    isnt($s->redis('PING'), 'PONG', 'Redis is down');

    my $res = concurrent($s, charge_reqs($u, 10, [ map { $_ * 1000 } 1 .. 10 ]));
    is_deeply([ map { $_->{status} } @$res ], [ (200) x 10 ], '10 concurrent charges without Redis -> 200')
        or diag(join "\n", map { "$_->{status} $_->{body}" } @$res);
    is(balance_of($s, $u->{id}), $b0 + 55_000, 'balance +55,000 exactly');
    is(nledger($s, $u->{id}), $l0 + 10, 'exactly 10 new ledger rows');

    # a retry is answered from MariaDB
    my $K = key();
    my $r1 = charge($s, $u->{id}, $u->{token}, 3000, $K);
    is($r1->{status}, 200, 'charge with key K -> 200') or diag($r1->{body});
    my ($bal, $nl) = (balance_of($s, $u->{id}), nledger($s, $u->{id}));
    my $r2 = charge($s, $u->{id}, $u->{token}, 3000, $K);
    is($r2->{status}, 200, 'retry with K -> 200');
    is($r2->{body}, $r1->{body}, '... byte-identical');
    is($r2->{headers}{'idempotent-replayed'}, 'true', '... marked as a replay');
    is_problem(charge($s, $u->{id}, $u->{token}, 4000, $K), 422, 'IDEMPOTENCY_KEY_REUSED', 'K with another amount -> 422');
    is(balance_of($s, $u->{id}), $bal, 'balance unchanged');
    is(nledger($s, $u->{id}), $nl, 'no second ledger row');

    # one key fired 10 times at once: the unique row lets one through
    my $KC = key();
    $res = concurrent($s, charge_reqs($u, 10, 5000, $KC));
    my @ok = grep { $_->{status} == 200 } @$res;
    my @other = grep { $_->{status} != 200 && !($_->{status} == 409 && code_of($_) eq 'IDEMPOTENCY_IN_FLIGHT')
                       && !($_->{status} == 503 && code_of($_) eq 'CONFLICT_RETRY_EXHAUSTED') } @$res;
    cmp_ok(scalar(@ok), '>=', 1, 'one key, 10 at once, no Redis: some 200 (' . scalar(@ok) . ')');
    is(scalar(@other), 0, 'the rest are 409 in flight or 503 busy') or diag(join "\n", map { "$_->{status} $_->{body}" } @other);
    my %bodies = map { $_->{body} => 1 } @ok;
    is(scalar(keys %bodies), 1, 'all 200 bodies identical');
    is(nledger($s, $u->{id}), $nl + 1, 'exactly one ledger row for the key');
    is(balance_of($s, $u->{id}), $bal + 5000, 'charged once');

    $s->start_redis;
    is($s->redis('PING'), 'PONG', 'Redis is back');
    my $r3 = charge($s, $u->{id}, $u->{token}, 3000, $K);
    is($r3->{body}, $r1->{body}, 'after Redis returns, K still replays the same bytes');
    is(balance_of($s, $u->{id}), $bal + 5000, 'balance unchanged');
};

invariant_ok($s);
done_testing;
