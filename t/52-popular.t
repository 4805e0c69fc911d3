# Popular products: top 5 by units sold in PAID orders over the last three
# days (rolling, to the second), ties by product id; cancelled orders do not
# count; the answer is cached for popular_ttl and a cold cache under a crowd
# costs one query (single flight).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack invariant_ok concurrent jreq);
use Jangteo::Catalog qw(make_product order_for cancel_order rich_buyer demo_tokens metric audit_ok);

my $URL = '/api/v1/products/popular';

# ------------------------------------------------------------ ranking (popular_ttl = 1)
my $s   = test_stack(demo => 1, workers => 4, conf => { catalog => { popular_ttl => 1 } });
my $tok = demo_tokens($s);
my $seller = $tok->{seller};
my ($b1, $b2) = (rich_buyer($s), rich_buyer($s));

sub fresh { $s->redis('DEL', 'popular'); return $s->get($URL) }    # skip the cache
sub ranks { my ($r) = @_; return [ map { [ $_->{id}, $_->{salesCount} ] } @{ ref $r->{json} eq 'ARRAY' ? $r->{json} : [] } ] }
sub buy {
    my ($who, @lines) = @_;
    my $r = order_for($s, $who->{token}, @lines);
    is($r->{status}, 201, 'order ' . join(' ', map { "$_->[0]x$_->[1]" } @lines)) or diag($r->{body});
    return $r->{json}{orderId};
}
sub backdate {
    my ($oid, $expr) = @_;
    $s->sql("SET time_zone = '+00:00'; UPDATE orders SET created_at = NOW(6) - INTERVAL 3 DAY $expr WHERE id = $oid");
}

my $r = fresh();
is($r->{status}, 200, 'popular 200');
like($r->{headers}{'content-type'} // '', qr{^application/json\b}, 'JSON');
is_deeply($r->{json}, [], 'no sales -> empty array');

my @p = map { make_product($s, $seller, name => "인기 상품 $_", price => 100 * $_, stock => 1000) } 1 .. 8;
my @id = map { $_->{id} } @p;

buy($b1, [ $id[0], 2 ]);
$r = fresh();
is_deeply($r->{json}, [ { id => $id[0], name => '인기 상품 1', price => 100, salesCount => 2 } ],
    'one product sold -> one row with id, name, price, salesCount');

# units, not orders; several lines and buyers add up; ties by id ascending
buy($b2, [ $id[2], 3 ]);                      # C 3 (ordered before B on purpose)
buy($b1, [ $id[1], 1 ], [ $id[3], 4 ]);       # B 1, D 4
buy($b2, [ $id[1], 2 ], [ $id[0], 3 ]);       # B 3, A 5
buy($b1, [ $id[3], 3 ]);                      # D 7
buy($b2, [ $id[4], 1 ]);                      # E 1
buy($b1, [ $id[5], 2 ]);                      # F 2
buy($b2, [ $id[6], 1 ]);                      # G 1
$r = fresh();
is_deeply(ranks($r), [ [ $id[3], 7 ], [ $id[0], 5 ], [ $id[1], 3 ], [ $id[2], 3 ], [ $id[5], 2 ] ],
    'top 5 by units sold; B and C tie at 3 -> lower id first; E and G (1 each) left out');
is_deeply([ grep { join(',', sort keys %$_) ne 'id,name,price,salesCount' } @{ $r->{json} || [] } ], [],
    'rows carry exactly id,name,price,salesCount');

# cancelled orders do not count
my $big = buy($b1, [ $id[7], 50 ]);
is(ranks(fresh())->[0][0], $id[7], 'a big PAID order tops the list');
$r = cancel_order($s, $b1->{token}, $big);
is($r->{status}, 200, 'cancel it') or diag($r->{body});
is_deeply([ map { $_->[0] } @{ ranks(fresh()) } ], [ @id[3, 0, 1, 2, 5] ], 'cancelled -> not counted');

# the three-day window, to the second
my $old = buy($b2, [ $id[6], 40 ]);
backdate($old, '- INTERVAL 1 SECOND');
ok(!grep({ $_->[0] == $id[6] } @{ ranks(fresh()) }), 'an order 3 days + 1 s old is not counted');
my $edge = buy($b2, [ $id[4], 40 ]);
backdate($edge, '+ INTERVAL 5 SECOND');
my $t_edge = time;
$r = fresh();
is_deeply(ranks($r)->[0], [ $id[4], 41 ], 'an order 3 days - 5 s old is counted (with E\'s other unit)');
# rolling: five seconds later it has aged out, with no job involved
sleep(0.1) while time < $t_edge + 5.5;
$r = fresh();
is_deeply(ranks($r), [ [ $id[3], 7 ], [ $id[0], 5 ], [ $id[1], 3 ], [ $id[2], 3 ], [ $id[5], 2 ] ],
    '... and once it is older than 3 days it drops out (rolling window)');

# cached for popular_ttl (1 s): unchanged at once, refreshed after it
my $before = $s->get($URL);
is($before->{status}, 200, 'read (fills the cache)');
buy($b1, [ $id[7], 30 ]);
my $now = $s->get($URL);
is_deeply($now->{json}, $before->{json}, 'read at once after a new order: the cached answer');
sleep 1.5;
$r = $s->get($URL);
is_deeply(ranks($r)->[0], [ $id[7], 30 ], 'after popular_ttl the new order shows');

# cross-check against a query of our own
my $want = $s->sql(q{SET time_zone = '+00:00';
    SELECT oi.product_id, SUM(oi.quantity) n FROM orders o JOIN order_items oi ON oi.order_id = o.id
     WHERE o.status = 'PAID' AND o.created_at >= NOW(6) - INTERVAL 3 DAY
     GROUP BY oi.product_id ORDER BY n DESC, oi.product_id LIMIT 5});
is_deeply(ranks(fresh()), [ map { [ $_->[0], $_->[1] ] } @$want ], 'matches SUM(quantity) of PAID orders in the window');

audit_ok($s, $tok->{admin});
invariant_ok($s);
$s->stop;
undef $s;

# ------------------------------------------------------------ single flight (default popular_ttl = 60)
$s = test_stack(demo => 1, workers => 4);
$tok = demo_tokens($s);
my $buyer = rich_buyer($s);
my $q = make_product($s, $tok->{seller}, name => '단일 비행 상품', stock => 100);
$r = order_for($s, $buyer->{token}, [ $q->{id}, 2 ]);
is($r->{status}, 201, 'an order so the answer is not empty') or diag($r->{body});

# an independent count of the query: MariaDB's general log
$s->sql("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 'ON'");
my $log_count = sub {
    $s->sql(q{SELECT COUNT(*) FROM mysql.general_log WHERE command_type IN ('Execute', 'Query')
               AND argument LIKE '%SUM(oi.quantity) AS sold%' AND argument NOT LIKE '%general_log%'})->[0][0];
};

$r = $s->get('/metrics');
ok($r->{body} =~ /^jangteo_popular_queries_total(?:\{[^}]*\})? \d+/m, '/metrics exposes jangteo_popular_queries_total');

$s->redis('DEL', 'popular');
is($s->redis('EXISTS', 'popular'), 0, 'cache cold');
my $m0 = metric($s, 'jangteo_popular_queries_total');
my $g0 = $log_count->();
my $res = concurrent($s, [ map { [ 'GET', $URL ] } 1 .. 100 ]);
my $m1 = metric($s, 'jangteo_popular_queries_total');
my $g1 = $log_count->();
is(scalar(grep { $_->{status} == 200 } @$res), 100, '100 concurrent reads on a cold cache: all 200')
    or diag(join ' ', map { $_->{status} } @$res);
my %bodies = map { $_->{body} => 1 } @$res;
is(scalar keys %bodies, 1, 'all 100 got the same answer');
is_deeply(ranks({ json => JSON::PP->new->decode((keys %bodies)[0] // '[]') }), [ [ $q->{id}, 2 ] ], 'and it is right');
is($g1 - $g0, 1, 'MariaDB ran the popular query exactly once (general log)');
is($m1 - $m0, 1, 'jangteo_popular_queries_total grew by exactly 1');

# warm: a crowd costs nothing
$res = concurrent($s, [ map { [ 'GET', $URL ] } 1 .. 50 ]);
is($log_count->() - $g1, 0, '50 more reads on a warm cache: no query');
is(scalar(grep { $_->{status} == 200 } @$res), 50, 'all 200');

# within popular_ttl (60 s) a new order does not show
$r = order_for($s, $buyer->{token}, [ $q->{id}, 5 ]);
is($r->{status}, 201, 'another order') or diag($r->{body});
is_deeply(ranks($s->get($URL)), [ [ $q->{id}, 2 ] ], 'within popular_ttl the cached answer stands');
my $pttl = $s->redis('TTL', 'popular');
ok($pttl > 0 && $pttl <= 60, "popular is cached with TTL <= 60 s ($pttl)");

# ... but its rows carry names and prices: a catalog write shows at once
$r = jreq($s, 'PATCH', "/api/v1/products/$q->{id}", $tok->{seller}, { name => '단일 비행 새이름', price => 4321 });
is($r->{status}, 200, 'PATCH name and price of the popular product') or diag($r->{body});
my ($row) = grep { $_->{id} == $q->{id} } @{ $s->get($URL)->{json} || [] };
is_deeply([ @{ $row || {} }{qw(name price)} ], [ '단일 비행 새이름', 4321 ], 'popular shows the new name and price at once');
$r = jreq($s, 'DELETE', "/api/v1/products/$q->{id}", $tok->{seller});
is($r->{status}, 204, 'delete it') or diag($r->{body});
ok(!grep({ $_->{id} == $q->{id} } @{ $s->get($URL)->{json} || [] }), 'a deleted product leaves popular at once');

$s->sql("SET GLOBAL general_log = 'OFF'");
audit_ok($s, $tok->{admin});
invariant_ok($s);
done_testing;
