# Charging points: amount bounds, the balance ceiling, the ledger and its
# pages, and concurrent charges that must all land exactly once.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack new_user bearer charge charge_raw concurrent invariant_ok ledger_rows balance_of is_problem);

my $s = test_stack();
my $u = new_user($s, tag => 'charge');
my ($uid, $tok) = ($u->{id}, $u->{token});
my $k = 0;
sub key { "charge-$$-" . ++$k }
sub nledger { $s->sql("SELECT COUNT(*) FROM point_ledger WHERE user_id = $uid")->[0][0] }

# ---- amount bounds and types: every refusal changes nothing
my @bad = (
    [ '999',                  '{"amount":999}',                  'AMOUNT_TOO_SMALL' ],
    [ '1000001',              '{"amount":1000001}',              'AMOUNT_TOO_LARGE' ],
    [ '-1000',                '{"amount":-1000}',                undef ],
    [ '0',                    '{"amount":0}',                    undef ],
    [ '1e3',                  '{"amount":1e3}',                  'INVALID_REQUEST' ],
    [ '"1000"',               '{"amount":"1000"}',               'INVALID_REQUEST' ],
    [ '1000.0',               '{"amount":1000.0}',               'INVALID_REQUEST' ],
    [ 'null',                 '{"amount":null}',                 'INVALID_REQUEST' ],
    [ 'missing',              '{}',                              'INVALID_REQUEST' ],
    [ 'true',                 '{"amount":true}',                 'INVALID_REQUEST' ],
    [ '[1000]',               '{"amount":[1000]}',               'INVALID_REQUEST' ],
    [ '2^63',                 '{"amount":9223372036854775808}',  undef ],
    [ '-2^63',                '{"amount":-9223372036854775808}', undef ],
    [ '2^64',                 '{"amount":18446744073709551616}', undef ],
    [ '99999999999999999999', '{"amount":99999999999999999999}', undef ],
    [ 'not an object',        '1000',                            undef ],
);
for my $c (@bad) {
    my ($name, $body, $code) = @$c;
    is_problem(charge_raw($s, $uid, $tok, $body, key()), 400, $code, "amount $name -> 400" . ($code ? " $code" : ''));
}
is(balance_of($s, $uid), 0, 'no refusal changed the balance');
is(nledger(), 0, 'no refusal wrote a ledger row');

# ---- the bounds themselves
my $r = charge($s, $uid, $tok, 1000, key());
is($r->{status}, 200, 'amount 1,000 -> 200') or diag($r->{body});
my $j = $r->{json} || {};
is_deeply([ sort keys %$j ], [ sort qw(userId balance charged ledgerId) ], 'answer fields');
is($j->{userId}, $uid, 'userId');
is($j->{charged}, 1000, 'charged');
is($j->{balance}, 1000, 'balance');
my $first_ledger = $j->{ledgerId};
$r = charge($s, $uid, $tok, 1_000_000, key());
is($r->{status}, 200, 'amount 1,000,000 -> 200') or diag($r->{body});
is(($r->{json} || {})->{balance}, 1_001_000, 'balance 1,001,000');
is(balance_of($s, $uid), 1_001_000, 'stored balance');

# ---- the ceiling: 100,000,000
# bring the balance to 99,500,000 with 98 charges of 1,000,000 + 499,000
my $bal = 1_001_000;
my @amounts = ((1_000_000) x 98, 499_000);
my $ok = 0;
for my $a (@amounts) {
    $r = charge($s, $uid, $tok, $a, key());
    $ok++ if $r->{status} == 200;
    $bal += $a;
}
is($ok, scalar(@amounts), 'filler charges succeeded');
is(balance_of($s, $uid), 99_500_000, 'balance 99,500,000');
my $n = nledger();
is_problem(charge($s, $uid, $tok, 1_000_000, key()), 409, 'BALANCE_LIMIT', '1,000,000 more -> 409 BALANCE_LIMIT');
is_problem(charge($s, $uid, $tok, 500_001, key()), 409, 'BALANCE_LIMIT', '500,001 more -> 409 BALANCE_LIMIT');
is(balance_of($s, $uid), 99_500_000, 'balance unchanged by the refusals');
is(nledger(), $n, 'no ledger row for the refusals');
$r = charge($s, $uid, $tok, 500_000, key());
is($r->{status}, 200, '500,000 more -> 200') or diag($r->{body});
is(($r->{json} || {})->{balance}, 100_000_000, 'exactly 100,000,000');
is_problem(charge($s, $uid, $tok, 1000, key()), 409, 'BALANCE_LIMIT', 'at the ceiling, 1,000 -> 409');
is(balance_of($s, $uid), 100_000_000, 'balance stays 100,000,000');

# ---- the ledger: newest first, matching rows, pages
my $v = new_user($s, tag => 'ledger');
my @want;
my $running = 0;
for my $a (1000, 2500, 3000, 7000, 12_345) {
    $r = charge($s, $v->{id}, $v->{token}, $a, key());
    is($r->{status}, 200, "charge $a") or diag($r->{body});
    $running += $a;
    unshift @want, { id => ($r->{json} || {})->{ledgerId}, delta => $a, balanceAfter => $running, kind => 'CHARGE' };
}
$r = $s->get("/api/v1/users/$v->{id}/points", bearer($v->{token}));
is($r->{status}, 200, 'GET points -> 200') or diag($r->{body});
my $items = ($r->{json} || {})->{items} || [];
is(scalar(@$items), 5, 'five items');
is_deeply([ map { { id => $_->{id}, delta => $_->{delta}, balanceAfter => $_->{balanceAfter}, kind => $_->{kind} } } @$items ],
    \@want, 'items match the charges, newest first');
ok((!grep { !exists $_->{refId} || !defined $_->{createdAt} || $_->{createdAt} !~ /^\d{4}-\d\d-\d\dT/ } @$items),
    'every item has refId and createdAt');
ok(!defined(($r->{json} || {})->{nextCursor}), 'no nextCursor when everything fit');
my $db_rows = ledger_rows($s, $v->{id});
is_deeply([ map { [ $_->{id}, $_->{delta}, $_->{balanceAfter}, $_->{kind} ] } @want ], $db_rows, 'the table agrees');

# pages of 2
my (@paged, $cursor, $pages);
while (1) {
    my $q = "/api/v1/users/$v->{id}/points?limit=2" . (defined $cursor ? "&cursor=$cursor" : '');
    $r = $s->get($q, bearer($v->{token}));
    last unless is($r->{status}, 200, "page " . ($pages // 0) . ' -> 200');
    my $p = $r->{json} || {};
    cmp_ok(scalar(@{ $p->{items} || [] }), '<=', 2, 'at most 2 items a page');
    push @paged, @{ $p->{items} || [] };
    last if ++$pages > 10 || !defined $p->{nextCursor};
    $cursor = $p->{nextCursor};
}
is_deeply([ map { $_->{id} } @paged ], [ map { $_->{id} } @want ], 'pages of 2 hold every item once, newest first');
is($pages, 3, 'three pages (2+2+1)');
for my $q ('limit=0', 'limit=101', 'limit=x', 'cursor=0', 'cursor=-1', 'cursor=abc') {
    is_problem($s->get("/api/v1/users/$v->{id}/points?$q", bearer($v->{token})), 400, 'INVALID_REQUEST', "points ?$q -> 400");
}

# ---- 10 concurrent charges, distinct keys: all land exactly once
my $w = new_user($s, tag => 'conc');
charge($s, $w->{id}, $w->{token}, 1000, key());
my $b0 = balance_of($s, $w->{id});
my $l0 = scalar @{ ledger_rows($s, $w->{id}) };
my @reqs = map {
    [ 'POST', "/api/v1/users/$w->{id}/charge",
      { %{ bearer($w->{token}) }, 'Content-Type' => 'application/json', 'Idempotency-Key' => key() },
      qq({"amount":@{[ $_ * 1000 ]}}) ]
} 1 .. 10;
my $res = concurrent($s, \@reqs);
my @st = map { $_->{status} } @$res;
is_deeply(\@st, [ (200) x 10 ], 'all 10 concurrent charges -> 200') or diag(join ' ', map { "$_->{status} $_->{body}" } @$res);
is(balance_of($s, $w->{id}), $b0 + 55_000, 'balance +55,000 exactly');
my $rows = ledger_rows($s, $w->{id});
is(scalar(@$rows) - $l0, 10, 'exactly 10 new ledger rows');
is_deeply([ sort { $a <=> $b } map { $_->[1] } @$rows[0 .. 9] ], [ map { $_ * 1000 } 1 .. 10 ], 'one row per amount');
my %ids = map { (($_->{json} || {})->{ledgerId} // 'none') => 1 } @$res;
is(scalar(keys %ids), 10, 'ten distinct ledgerIds answered');
# each row's balance_after chains from the previous one
my @asc = reverse @$rows;
my $chain = 1;
for my $i (1 .. $#asc) {
    $chain = 0 if $asc[$i][2] != $asc[$i - 1][2] + $asc[$i][1];
}
ok($chain, 'balance_after chains row to row');

invariant_ok($s);
done_testing;
