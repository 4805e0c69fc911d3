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

clock_reset($s);
my ($code, $out) = $s->admin('audit');
is($code, 0, 'audit clean') or diag($out);
invariant_ok($s, 'every balance equals the sum of its ledger');
$s->stop;
done_testing;
