# Auctions in a real browser (t/browser/auction.mjs): the page's price rule
# (web/js/auction-price.js) agrees with the server's currentPrice at several
# clock offsets, and a buyer who waits for the countdown to reach a drop and
# bids at the new price gets the receipt PURCHASED at exactly that price.
# Screenshots in t/shots/93-browser-auction/.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack new_user charge bearer);
use Jangteo::Auctions qw(auction_body clock_to clock_reset);
use Jangteo::Browser qw(run_browser shots_dir);

my $s = test_stack(conf => { server => { enable_test_routes => 'yes' }, auctions => { consumers => 1 } });
my $shots = shots_dir();
my $seller = new_user($s, role => 'SELLER', name => '박판매', tag => 'aseller');
my $buyer = new_user($s, name => '김경매', tag => 'abuyer');
charge($s, $buyer->{id}, $buyer->{token}, 100_000, "fund-$buyer->{id}");

sub auction {
    my (%o) = @_;
    my $b = auction_body(%o);
    my ($y, $mo, $d, $h, $mi, $sec) = $b->{startsAt} =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
    require Time::Local;
    clock_to($s, Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y) * 1000 - 60_000);
    my $r = $s->post_json('/api/v1/auctions', $b, bearer($seller->{token}));
    die "auction: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json};
}
my @rule = (
    auction(productName => '정액 경매', originPrice => 50_000, stock => 5, maxPerBuyer => 1, minutes => 10,
        variationSeconds => 30, pricePolicy => { type => 'CONSTANT', variationWidth => 1_234 }),
    auction(productName => '정률 경매', originPrice => 999_999, stock => 5, maxPerBuyer => 1, minutes => 10,
        variationSeconds => 20, pricePolicy => { type => 'PERCENTAGE', discountRate => 33.33 }),
);
my $bid = auction(productName => '브라우저 타임세일', originPrice => 10_000, stock => 3, maxPerBuyer => 1, minutes => 5,
    variationSeconds => 10, pricePolicy => { type => 'PERCENTAGE', discountRate => 12.5 });

my @shots = run_browser($s, 'auction.mjs', shots => $shots, timeout => 180,
    data => { ruleAuctions => \@rule, bidAuction => $bid, buyer => { map { $_ => $buyer->{$_} } qw(email password) } });
cmp_ok(scalar(@shots), '>=', 4, scalar(@shots) . " screenshots in $shots");
clock_reset($s);

# three drops of 12.5 %: 10,000 -> 8,750 -> 7,656 -> 6,699
my $rc = $s->sql("SELECT price, status FROM receipts WHERE auction_id = $bid->{id} AND buyer_id = $buyer->{id}");
is_deeply($rc, [ [ 6_699, 'PURCHASED' ] ], 'one receipt, PURCHASED at 6,699 (the price after the third drop)');
is($s->sql("SELECT balance FROM users WHERE id = $buyer->{id}")->[0][0], 100_000 - 6_699, 'the buyer paid exactly that');
done_testing;
