# Queued bids of one auction are settled in the order they were accepted,
# whatever order the consumers meet their stream entries in. Each buyer bids
# twice, each bid at maxPerBuyer, while no consumer runs; then every buyer's
# FIRST stream entry is deleted (as if Redis had lost it), so the consumers
# see the second bid first. The first bid must still win (PURCHASED) and the
# second must fail on the purchase limit, and the first must be applied
# without waiting for the sweeper (set far beyond the test's length).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack new_user invariant_ok);
use Jangteo::Auctions qw(create_auction clock_to clock_reset bid wait_settled make_users fund consumer_pids receipt_of);

my $s = test_stack(
    demo    => 1,
    workers => 2,
    conf    => {
        server   => { enable_test_routes => 'yes' },
        auctions => { async => 'yes', consumers => 0, claim_idle_ms => 500, sweep_after_ms => 600_000 },
    },
);
my @buyers = make_users($s, 4, tag => 'fifo');
fund($s, [ map { $_->{id} } @buyers ], 1_000_000);
my $seller = new_user($s, tag => 'fifo-seller', role => 'SELLER');

my $a = create_auction($s, $seller->{token}, stock => 12, maxPerBuyer => 3, originPrice => 10_000,
    pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
clock_to($s, $a->{startsMs} + 1000);
is(scalar(my @none = consumer_pids($s)), 0, 'no consumer yet: bids only queue');

# A synchronous bid while Redis is down must not overtake the buyer's own
# earlier PENDING bid: Y bids 3 (queued), Redis goes away, Y bids 3 again.
my $a3 = create_auction($s, $seller->{token}, stock => 10, maxPerBuyer => 3, originPrice => 10_000,
    pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
clock_to($s, $a3->{startsMs} + 1000);
my ($y) = make_users($s, 1, tag => 'fifo-y');
fund($s, [ $y->{id} ], 1_000_000);
my $y1 = bid($s, $a3->{id}, $y->{token}, 10_000, 3);
is($y1->{status}, 202, 'buyer Y: a bid of 3 queued');
$s->stop_redis;
# every worker meets the dead connection (a bid on a live-looking one would
# be queued durably and answered 202): now bids are applied in the request
$s->get('/api/v1/products?page=1&size=1') for 1 .. 20;
my $y2 = bid($s, $a3->{id}, $y->{token}, 10_000, 3);
is(join(' ', $y2->{status}, ($y2->{json} || {})->{code} // '-'), '409 PURCHASE_LIMIT',
    'buyer Y, Redis down: the second bid (applied at once) comes after the first and meets the purchase limit')
    or diag($y2->{body});
my $ry1 = receipt_of($s, ($y1->{json} || {})->{receiptId} // '', $y->{token}) || {};
is($ry1->{status} // 'none', 'PURCHASED', 'buyer Y: the first bid won');
$s->start_redis;    # empty: the bids below queue anew
# every worker meets its broken Redis connection once (and is degraded for
# retry_interval_ms), then reconnects: afterwards bids queue again
for (1 .. 2) { $s->get('/api/v1/products?page=1&size=1') for 1 .. 20; sleep 1.2 }
clock_to($s, $a->{startsMs} + 1000);

my (%first, %second);
for my $b (@buyers) {
    my $r1 = bid($s, $a->{id}, $b->{token}, 10_000, 3);
    my $r2 = bid($s, $a->{id}, $b->{token}, 10_000, 3);
    is("$r1->{status} $r2->{status}", '202 202', "buyer $b->{id}: two bids of 3 queued") or diag("$r1->{body} $r2->{body}");
    $first{ $b->{id} }  = ($r1->{json} || {})->{receiptId} // '';
    $second{ $b->{id} } = ($r2->{json} || {})->{receiptId} // '';
}

# the stream, as redis-cli prints it: id, "receipt", uuid, id, ...
my @lines = split /\n/, $s->redis('XRANGE', 'bids', '-', '+');
my %entry_of;
for (my $i = 0; $i + 2 < @lines + 0; $i += 3) { $entry_of{ $lines[ $i + 2 ] } = $lines[$i] }
is(scalar(keys %entry_of), 8, 'eight entries in the stream');
my $dropped = 0;
$dropped += $s->redis('XDEL', 'bids', $entry_of{$_} // '0-0') for values %first;
is($dropped, 4, "every buyer's first entry deleted: the consumers will meet the second bid first");

# More than 32 earlier PENDING receipts: 35 buyers bid once each, then
# buyer X bids 3 and 3 again; only X's second entry stays in the stream, so
# the first receipt a consumer meets has 36 earlier PENDING ones before it.
my $a2 = create_auction($s, $seller->{token}, stock => 100, maxPerBuyer => 3, originPrice => 10_000,
    pricePolicy => { type => 'CONSTANT', variationWidth => 1000 });
clock_to($s, $a2->{startsMs} + 1000);
my @crowd = make_users($s, 36, tag => 'fifo-crowd');
fund($s, [ map { $_->{id} } @crowd ], 1_000_000);
my $x = pop @crowd;
my $crowd_ok = 0;
for my $b (@crowd) { $crowd_ok++ if bid($s, $a2->{id}, $b->{token}, 10_000, 1)->{status} == 202 }
is($crowd_ok, 35, '35 bids queued ahead');
my $x1 = bid($s, $a2->{id}, $x->{token}, 10_000, 3);
my $x2 = bid($s, $a2->{id}, $x->{token}, 10_000, 3);
is("$x1->{status} $x2->{status}", '202 202', "buyer X: two bids of 3 queued behind them");
my $x2_uuid = ($x2->{json} || {})->{receiptId} // '';
@lines = split /\n/, $s->redis('XRANGE', 'bids', '-', '+');
my $kept = 0;
for (my $i = 0; $i + 2 < @lines + 0; $i += 3) {
    next if $entry_of{ $lines[ $i + 2 ] };    # the first auction's entries stay as they are
    if ($lines[ $i + 2 ] eq $x2_uuid) { $kept++; next }
    $s->redis('XDEL', 'bids', $lines[$i]);
}
is($kept, 1, "only X's second entry is left for the second auction: 36 earlier receipts wait in MariaDB alone");


# start two consumers on the same configuration
$s->stop_app;
my $conf = do { local (@ARGV, $/) = ($s->conf_path); <> };
$conf =~ s/^consumers\s*=\s*0\s*$/consumers = 2/m or BAIL_OUT('no consumers line in the config');
open my $fh, '>', $s->conf_path or die $!;
print {$fh} $conf;
close $fh;
$s->start_app;
my $deadline = time + 30;
my @running;
sleep 1 until (@running = consumer_pids($s)) == 2 || time > $deadline;
is(scalar @running, 2, 'two consumers running');

is(wait_settled($s, $a->{id}, 60), 0, 'every receipt settled (no sweeper needed)');
for my $b (@buyers) {
    my $r1 = receipt_of($s, $first{ $b->{id} }, $b->{token}) || {};
    my $r2 = receipt_of($s, $second{ $b->{id} }, $b->{token}) || {};
    is($r1->{status} // 'none', 'PURCHASED', "buyer $b->{id}: the first bid won");
    is(join(' ', $r2->{status} // 'none', $r2->{failureCode} // '-'), 'FAILED PURCHASE_LIMIT',
        "buyer $b->{id}: the second bid failed on the purchase limit");
}
is($s->sql("SELECT stock FROM auctions WHERE id = $a->{id}")->[0][0], 0, 'stock 12 - 4 x 3 = 0');

is(wait_settled($s, $a2->{id}, 60), 0, 'second auction: every receipt settled (no sweeper needed)');
my $rx1 = receipt_of($s, ($x1->{json} || {})->{receiptId} // '', $x->{token}) || {};
my $rx2 = receipt_of($s, $x2_uuid, $x->{token}) || {};
is($rx1->{status} // 'none', 'PURCHASED', "buyer X: the first bid won, though 36 receipts came before it");
is(join(' ', $rx2->{status} // 'none', $rx2->{failureCode} // '-'), 'FAILED PURCHASE_LIMIT',
    'buyer X: the second bid failed on the purchase limit');
is($s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $a2->{id} AND status = 'PURCHASED'")->[0][0], 36,
    'second auction: 35 + 1 purchases');
is($s->sql("SELECT stock FROM auctions WHERE id = $a2->{id}")->[0][0], 100 - 35 - 3, 'second auction: stock 100 - 35 - 3');

clock_reset($s);
my ($code, $out) = $s->admin('audit');
is($code, 0, 'audit clean') or diag($out);
invariant_ok($s, 'every balance equals the sum of its ledger');
$s->stop;
done_testing;
