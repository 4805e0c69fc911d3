# Card payment in a real browser (Debian's chromium, driven headless by
# playwright-core from t/browser/card.mjs): checkout by card, the gateway
# simulator's pay page in Korean and English, the way back to the shop and
# the verification, my orders (paid, cancelled and refunded; awaiting
# payment, paid later and cancelled from its own page), and the card pages
# in English. Then the database and
# the simulator's own records must say the same: one payment per order of
# the exact total, the cancelled one refunded once. Any console error,
# uncaught error or promise rejection, or failed request fails. Screenshots
# are kept in t/shots/94-browser-card/.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Jangteo::Client qw(test_stack new_user);
use Jangteo::Browser qw(run_browser shots_dir);

my $s = test_stack(demo => 1, pgsim => 1);
my $shots = shots_dir();
my $tag = sprintf('%d%d', $$, time % 100000);
$s->pgsim('POST', '/_sim/config', { webhooks => JSON::PP::false() });   # the page's verify settles it

my $seller = new_user($s, role => 'SELLER', name => '박판매', tag => 'cseller');
my $r = $s->post_json('/api/v1/products', { name => "카드 브라우저 상품 $tag", price => 12_000, stock => 5 },
    { Authorization => "Bearer $seller->{token}" });
die "product: $r->{status} $r->{body}" unless $r->{status} == 201;
my $product = $r->{json};
my @buyers = map { new_user($s, tag => "cbuyer$_", name => "카드구매자$_") } 1 .. 2;

my @shots = run_browser($s, 'card.mjs', timeout => 240, shots => $shots, data => {
    product => { id => $product->{id} },
    total => 15_000,                                  # 12,000 + 3,000 shipping
    simUrl => $s->pgsim_url,
    buyer => { map { $_ => $buyers[0]{$_} } qw(email password) },
    buyer2 => { map { $_ => $buyers[1]{$_} } qw(email password) },
});
cmp_ok(scalar(@shots), '>=', 7, scalar(@shots) . " screenshots in $shots");

# what the browser did, as the database and the gateway have it
my $orders = $s->sql("SELECT o.id, o.status, o.total, c.merchant_uid, c.card_company FROM orders o"
    . " JOIN card_payments c ON c.order_id = o.id ORDER BY o.id");
is(scalar(@$orders), 2, 'two card orders');
my ($first, $later) = @$orders;
is_deeply([ @{$first}[1, 2, 4] ], [ 'CANCELLED', 15000, 'SHINHAN' ], 'the first: 15,000 by Shinhan card, cancelled');
is_deeply([ @{$later}[1, 2, 4] ], [ 'CANCELLED', 15000, 'NH' ], 'the second: 15,000 by NH card, paid later, cancelled');
my $sim = $s->pgsim('GET', '/_sim/payments')->{payments};
my @p1 = grep { $_->{merchant_uid} eq $first->[3] } @$sim;
my @p2 = grep { $_->{merchant_uid} eq $later->[3] } @$sim;
is(scalar(@p1), 1, 'the gateway: one payment for the first');
is_deeply([ @{ $p1[0] || {} }{qw(amount status cancel_amount card_code)} ], [ 15000, 'cancelled', 15000, 'SHINHAN' ],
    '... 15,000, refunded in full');
is(scalar(@{ $p1[0]{cancel_history} || [] }), 1, '... once');
is(scalar(@p2), 1, 'one payment for the second');
is_deeply([ @{ $p2[0] || {} }{qw(amount status cancel_amount)} ], [ 15000, 'cancelled', 15000 ], '... 15,000, refunded in full');
is(scalar(@{ $p2[0]{cancel_history} || [] }), 1, '... once');
is($s->sql("SELECT stock FROM products WHERE id = $product->{id}")->[0][0], 5, 'stock 5 again (both cancelled units are back)');
my ($rc, $out) = $s->admin('audit');
is($rc, 0, 'the audit is clean, against the gateway too') or diag($out);
done_testing;
