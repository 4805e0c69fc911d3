# Business time in one representation (sql/008): auction windows and a
# bid's acceptance move from BIGINT epoch milliseconds to DATETIME(6), as
# sale windows already were, and every business-time rule reads the app's
# clock. Two halves:
#
#  1. a live database in the 007 shape (the tables exactly as sql/005
#     creates them, holding auctions and receipts made through the API and
#     one written in by hand with odd milliseconds) migrates to 008 with
#     nothing lost: every row, every instant to the millisecond, every
#     receipt's updated_at, every answer byte for byte; the products are
#     untouched; a second migrate applies nothing; bids work afterwards.
#  2. the test clock (POST /test/clock) now moves sale windows too: a
#     product's status, the status filter of the list, and whether an
#     order is taken all follow it (on 007 they followed MariaDB's NOW(6)).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use Jangteo::Client qw(test_stack bearer is_problem jreq);
use Jangteo::Catalog qw(make_product list_path demo_tokens order_for rich_buyer iso_utc audit_ok);
use Jangteo::Auctions qw(create_auction clock_to clock_reset make_users fund bid iso);

my $s = test_stack(demo => 1, workers => 2, conf => {
    server   => { enable_test_routes => 'yes' },
    catalog  => { cache_ttl_ms => 0 },
    auctions => { async => 'no' },
});
my $tok = demo_tokens($s);
my $mig = "SELECT COUNT(*) FROM schema_migrations WHERE version LIKE '008%'";
is($s->sql($mig)->[0][0], 1, '008 is applied on a fresh database');

# ---- a live catalog: products, auctions (both policies), receipts of both
# outcomes, a deleted auction
my $plain = make_product($s, $tok->{seller}, name => '시계 상품', price => 5_000, stock => 7);
my ($buyer, $late) = make_users($s, 2, tag => 'clock-buyer');
fund($s, [ $buyer->{id}, $late->{id} ], 1_000_000);

my $a1 = create_auction($s, $tok->{seller}, stock => 10, maxPerBuyer => 5);
clock_to($s, $a1->{startsMs} + 61_500);            # second step, 1.5 s into it
my $r = bid($s, $a1->{id}, $buyer->{token}, 9_900, 2);
is($r->{status}, 201, 'a sync bid is PURCHASED at the second step') or diag($r->{body});
my $won = $r->{json}{receiptId};
$r = bid($s, $a1->{id}, $late->{token}, 9_900, 6);
is($r->{status}, 409, 'a bid over maxPerBuyer is refused') or diag($r->{body});

my $a2 = create_auction($s, $tok->{seller}, pricePolicy => { type => 'PERCENTAGE', discountRate => 12.5 },
    minutes => 30, variationSeconds => 300);
clock_to($s, $a2->{startsMs} + 5);
$r = bid($s, $a2->{id}, $late->{token}, 10_000, 1);
is($r->{status}, 201, 'a bid on the percentage auction at its first price') or diag($r->{body});
my $won2 = $r->{json}{receiptId};
my $a3 = create_auction($s, $tok->{seller});
$r = jreq($s, 'DELETE', "/api/v1/auctions/$a3->{id}", $tok->{seller});
is($r->{status}, 204, 'an auction deleted before it starts') or diag($r->{body});
clock_reset($s);

# A FAILED receipt, as a consumer leaves it (never made by a sync bid).
$s->sql("INSERT INTO receipts (uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status,"
    . " failure_code, accepted_at) SELECT '00000000-0000-4000-8000-000000000054', $a1->{id}, $late->{id},"
    . " seller_id, product_name, 9800, 1, 'FAILED', 'OUT_OF_STOCK', starts_at + INTERVAL 130 SECOND"
    . " FROM auctions WHERE id = $a1->{id}");

# ---- what must survive, read through the API and straight from the rows
sub answers {
    my %a;
    for my $id ($a1->{id}, $a2->{id}) {
        # asOf is the instant of the answer itself: the one member that
        # must differ between two reads
        ($a{"auction $id"} = $s->get("/api/v1/auctions/$id")->{body}) =~ s/"asOf":"[^"]*",?//;
    }
    $a{list} = $s->get('/api/v1/auctions?size=50')->{body};
    for my $u ($won, $won2) {
        $a{"receipt $u"} = $s->get("/api/v1/receipts/$u", bearer($tok->{seller}))->{body};
    }
    $a{receipts} = $s->get("/api/v1/users/$buyer->{id}/receipts", bearer($buyer->{token}))->{body};
    $a{product} = $s->get("/api/v1/products/$plain->{id}")->{body};
    return \%a;
}
my $AUCTION_KEEP = 'id, seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer, policy,'
    . ' variation_width, discount_rate_bp, variation_seconds, show_stock, version, deleted_at, created_at';
my $RECEIPT_KEEP = 'id, uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status,'
    . ' failure_code, version, created_at, updated_at';
sub rows_of { my ($q) = @_; return join("\n", map { join('|', map { $_ // 'NULL' } @$_) } @{ $s->sql($q) }) }
sub kept {
    return {
        auctions => rows_of("SELECT $AUCTION_KEEP FROM auctions ORDER BY id"),
        receipts => rows_of("SELECT $RECEIPT_KEEP FROM receipts ORDER BY id"),
        products => rows_of('SELECT * FROM products ORDER BY id'),
        options  => rows_of('SELECT * FROM product_options ORDER BY id'),
    };
}
# The instants, as epoch milliseconds (what 007 stored).
sub instants_008 {
    return rows_of("SELECT 'a', id, TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', starts_at) DIV 1000,"
        . " TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', ends_at) DIV 1000 FROM auctions"
        . " UNION ALL SELECT 'r', id, TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', accepted_at) DIV 1000,"
        . " 0 FROM receipts ORDER BY 1, 2");
}
my $before_answers = answers();
my $before_rows    = kept();
my $before_ms      = instants_008();
like($before_ms, qr/^a\|$a1->{id}\|$a1->{startsMs}\|$a1->{endsMs}$/m, 'auction 1 starts and ends where it was created');

# ---- back to the 007 shape: the two tables exactly as sql/005 creates
# them, the rows copied into them with their instants as epoch ms
my $sql005 = do { local (@ARGV, $/) = (Jangteo::Stack::srcdir() . '/sql/005_auctions.sql'); <> };
my @create = $sql005 =~ /(CREATE TABLE (?:auctions|receipts) \(.*?\) ENGINE=InnoDB[^;]*;)/gs;
is(scalar @create, 2, 'sql/005 still creates auctions and receipts');
like($create[0], qr/starts_at_ms\s+BIGINT/, 'sql/005 stored auction windows as BIGINT ms');
my $EPOCH = "TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', %s) DIV 1000";
$s->sql(join("\n",
    'RENAME TABLE auctions TO auctions_008, receipts TO receipts_008;', @create,
    "INSERT INTO auctions ($AUCTION_KEEP, starts_at_ms, ends_at_ms) SELECT $AUCTION_KEEP, "
        . sprintf($EPOCH, 'starts_at') . ', ' . sprintf($EPOCH, 'ends_at') . ' FROM auctions_008;',
    "INSERT INTO receipts ($RECEIPT_KEEP, accepted_at_ms) SELECT $RECEIPT_KEEP, " . sprintf($EPOCH, 'accepted_at')
        . ' FROM receipts_008;',
    'DROP TABLE auctions_008, receipts_008;',
    "DELETE FROM schema_migrations WHERE version LIKE '008%';"));
# and one auction 007 could hold that no API call makes: a window off the
# whole second, deleted, with a PENDING receipt accepted at an odd instant
my $odd_start = 1_893_456_000_123;    # 2030-01-01T00:00:00.123Z
$s->sql("INSERT INTO auctions (seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer, policy,"
    . " variation_width, variation_seconds, starts_at_ms, ends_at_ms, deleted_at)"
    . " VALUES (2, 'odd', 5000, 3, 3, 1, 'CONSTANT', 10, 60, $odd_start, $odd_start + 600000, NOW(6));"
    . " INSERT INTO receipts (uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status,"
    . " accepted_at_ms) SELECT '00000000-0000-4000-8000-0000000000dd', id, 1, 2, 'odd', 5000, 1, 'PENDING',"
    . " $odd_start + 1999 FROM auctions WHERE product_name = 'odd'");
my $odd = $s->sql("SELECT id FROM auctions WHERE product_name = 'odd'")->[0][0];
is($s->sql(q{SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'jangteo'
    AND TABLE_NAME = 'receipts' AND COLUMN_NAME = 'accepted_at_ms'})->[0][0], 'bigint', 'before: the 007 shape');

# ---- migrate
my ($rc, $out) = $s->admin('migrate');
is($rc, 0, 'migrate exits 0') or diag($out);
like($out, qr/applied 008_business_time\.sql/, 'and applies 008') or diag($out);
like($out, qr/1 applied/, 'and nothing else') or diag($out);
is($s->sql($mig)->[0][0], 1, '008 recorded once');
is_deeply($s->sql(q{SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, DATETIME_PRECISION, IS_NULLABLE
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'jangteo'
    AND COLUMN_NAME IN ('starts_at', 'ends_at', 'accepted_at', 'starts_at_ms', 'ends_at_ms', 'accepted_at_ms')
    ORDER BY TABLE_NAME, COLUMN_NAME}),
    [ [qw(auctions ends_at datetime 6 NO)], [qw(auctions starts_at datetime 6 NO)],
      [qw(receipts accepted_at datetime 6 NO)] ],
    'after: three NOT NULL DATETIME(6) columns, no millisecond column left');
is_deeply($s->sql(q{SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'jangteo'
    AND TABLE_NAME = 'auctions' AND INDEX_NAME = 'auctions_window' ORDER BY SEQ_IN_INDEX}),
    [ ['deleted_at'], ['starts_at'] ], 'the window index is on (deleted_at, starts_at)');

my %ms = map { ("$_->[0]$_->[1]" => [ $_->[2], $_->[3] ]) } map { [ split /\|/ ] } split /\n/, instants_008();
for my $line (split /\n/, $before_ms) {
    my ($k, $id, $x, $y) = split /\|/, $line;
    is_deeply($ms{"$k$id"}, [ $x, $y ], "$k$id: its instants are the same to the millisecond ($x)");
}
is_deeply($ms{"a$odd"}, [ $odd_start, $odd_start + 600_000 ], 'the odd window converts exactly');
is($s->sql("SELECT starts_at FROM auctions WHERE id = $odd")->[0][0], '2030-01-01 00:00:00.123000',
    '... and reads as 2030-01-01 00:00:00.123000');
is($s->sql("SELECT accepted_at FROM receipts WHERE uuid = '00000000-0000-4000-8000-0000000000dd'")->[0][0],
    '2030-01-01 00:00:02.122000', 'a receipt accepted at an odd millisecond converts exactly');
$s->sql("DELETE FROM receipts WHERE uuid = '00000000-0000-4000-8000-0000000000dd'; DELETE FROM auctions WHERE id = $odd");
is_deeply(kept(), $before_rows, 'every other column of every auction, receipt, product and option is unchanged'
    . ' (receipts keep their updated_at)');
my $after_answers = answers();
for my $k (sort keys %$before_answers) {
    is($after_answers->{$k}, $before_answers->{$k}, "$k: the same answer, byte for byte");
}

# ---- the auctions work on the new columns, on the test clock
clock_to($s, $a1->{startsMs} + 3 * 60_000 + 10);
my $d = $s->get("/api/v1/auctions/$a1->{id}")->{json};
is($d->{currentPrice}, 9_700, 'the price follows the test clock: 10,000 - 3 x 100');
is($d->{nextDropAt}, iso($a1->{startsMs} + 4 * 60_000), 'nextDropAt is the next step');
$r = bid($s, $a1->{id}, $buyer->{token}, 9_700, 3);
is($r->{status}, 201, 'a bid after the upgrade') or diag($r->{body});
is($s->sql("SELECT TIMESTAMPDIFF(SECOND, starts_at, accepted_at) FROM receipts r JOIN auctions a"
    . " ON a.id = r.auction_id WHERE r.uuid = '$r->{json}{receiptId}'")->[0][0], 180,
    'its receipt was accepted at the test clock, 3 minutes into the auction');
clock_reset($s);

($rc, $out) = $s->admin('migrate');
is($rc, 0, 'a second migrate exits 0');
like($out, qr/0 applied/, 'and applies nothing') or diag($out);

# ---- 2. the test clock moves sale windows
my $t0    = int(time) + 3600;
my $sale  = make_product($s, $tok->{seller}, name => '시간 한정 상품', price => 2_000, stock => 5,
    saleStartsAt => iso_utc($t0), saleEndsAt => iso_utc($t0 + 3600));
my $shopper = rich_buyer($s);
sub status_of { return $s->get("/api/v1/products/$sale->{id}")->{json}{status} }
sub listed_as {
    my ($st) = @_;
    my $l = $s->get(list_path(status => $st, q => '시간 한정', size => 100))->{json};
    return scalar grep { $_->{id} == $sale->{id} } @{ $l->{items} || [] };
}
sub stock_of { return $s->sql("SELECT stock FROM products WHERE id = $sale->{id}")->[0][0] }

is(status_of(), 'COMING_SOON', 'real clock: an hour before the sale it is COMING_SOON');
is(listed_as('COMING_SOON'), 1, '... and listed as COMING_SOON');
is_problem(order_for($s, $shopper->{token}, [ $sale->{id}, 1 ]), 409, 'NOT_ON_SALE_YET', '... and not sold');

clock_to($s, ($t0 + 60) * 1000);
is(status_of(), 'ON_SALE', 'test clock a minute into the sale: ON_SALE');
is(listed_as('ON_SALE'), 1, '... listed as ON_SALE');
is(listed_as('COMING_SOON'), 0, '... and no longer as COMING_SOON');
$r = order_for($s, $shopper->{token}, [ $sale->{id}, 2 ]);
is($r->{status}, 201, '... and an order is taken') or diag($r->{body});
is(stock_of(), 3, '... which takes 2 of its 5 units');

clock_to($s, ($t0 + 3600) * 1000);
is(status_of(), 'ENDED', 'test clock at the sale\'s end: ENDED (the end is exclusive)');
is(listed_as('ENDED'), 1, '... listed as ENDED');
is_problem(order_for($s, $shopper->{token}, [ $sale->{id}, 1 ]), 409, 'SALE_ENDED', '... and not sold');
is(stock_of(), 3, '... the refusals moved no stock');

clock_reset($s);
is(status_of(), 'COMING_SOON', 'the clock put back: COMING_SOON again');
is($s->get("/api/v1/products/$plain->{id}")->{json}{status}, 'ON_SALE', 'a product without a window is always ON_SALE');
audit_ok($s, $tok->{admin});

$s->stop;
done_testing;
