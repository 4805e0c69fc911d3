# The storefront in a real browser (Debian's chromium, driven headless by
# playwright-core from t/browser/shop.mjs): a buyer's order and cancel with
# exact balances, two buyers racing for the last unit, a seller's product
# found by search, a charge retried through a MariaDB outage with a visible
# countdown, and every page in both languages with labels, the keyboard and
# the first page's weight. Any console error, uncaught error or promise
# rejection, or failed request other than an expected 4xx, fails. The
# screenshots are kept in t/shots/92-browser-shop/ (paths in the output).
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Jangteo::Client qw(test_stack new_user charge);
use Jangteo::Auctions qw(auction_body);
use Jangteo::Browser qw(run_browser shots_dir);

my $s = test_stack(demo => 1, conf => { server => { enable_test_routes => 'yes' } });
my $shots = shots_dir();
my $tag = sprintf('%d%d', $$, time % 100000);

my $seller = new_user($s, role => 'SELLER', name => '박판매', tag => 'bseller');
sub product {
    my (%b) = @_;
    my $r = $s->post_json('/api/v1/products', \%b, { Authorization => "Bearer $seller->{token}" });
    die "product: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json};
}
my @products = (product(name => "브라우저 사과 $tag", price => 12_000, stock => 10),
    product(name => "브라우저 배 $tag", price => 8_000, stock => 10));
my $last = product(name => "마지막 하나 $tag", price => 5_000, stock => 1);
my $shirt = product(name => "브라우저 티셔츠 $tag", price => 20_000,
    options => [ { name => 'S', extraPrice => 0, stock => 3 }, { name => 'L', extraPrice => 2_000, stock => 2 } ]);

my @buyers = map { new_user($s, tag => "bbuyer$_", name => "구매자$_") } 1 .. 3;
charge($s, $_->{id}, $_->{token}, 50_000, "fund-$_->{id}") for @buyers;
my $cart_buyer = new_user($s, tag => 'bcart', name => '장바구');
charge($s, $cart_buyer->{id}, $cart_buyer->{token}, 100_000, "fund-$cart_buyer->{id}");

my $dir = tempdir(CLEANUP => 1);
{ open my $fh, '>', "$dir/pw" or die $!; print $fh "browser-admin-pw\n"; close $fh }
my $admin_email = "badmin-$tag\@example.com";
my ($rc, $out) = $s->admin('create-admin', '--email', $admin_email, '--password-file', "$dir/pw");
is($rc, 0, 'create-admin') or diag($out);

my $ab = auction_body(productName => "브라우저 경매 $tag");
my $ar = $s->post_json('/api/v1/auctions', $ab, { Authorization => "Bearer $seller->{token}" });
is($ar->{status}, 201, 'an auction for the every-page visit') or diag($ar->{body});

my $buyer = { email => "browser-$tag\@example.com", password => 'browser-pw-1234', name => '김브라', phone => '010-9876-5432' };
my %data = (
    products => [ map { { id => $_->{id}, price => $_->{price} } } @products ],
    lastUnit => { id => $last->{id} },
    optionProduct => $shirt->{id},
    buyer => $buyer,
    buyerA => { map { $_ => $buyers[0]{$_} } qw(email password) },
    buyerB => { map { $_ => $buyers[1]{$_} } qw(email password) },
    retryBuyer => { map { $_ => $buyers[2]{$_} } qw(email password) },
    cartBuyer => { email => $cart_buyer->{email}, password => $cart_buyer->{password}, balance => 100_000,
        newName => '장바구니', newPassword => 'browser-new-pw-1' },
    seller => { map { $_ => $seller->{$_} } qw(email password) },
    admin => { email => $admin_email, password => 'browser-admin-pw' },
    auction => $ar->{json}{id},
    newName => "브라우저 시험 한정판 $tag",
    searchFor => "한정판 $tag",
);

my @shots = run_browser($s, 'shop.mjs', data => \%data, shots => $shots, timeout => 240,
    control => { 'stop-mariadb' => sub { $s->stop_mariadb }, 'start-mariadb' => \&start_mariadb });

# MariaDB back and answering before the browser goes on (a worker pings a
# connection idle for a second before using it, store/db.c, so none of the
# pages after this one meets a connection that died in the restart)
sub start_mariadb {
    $s->start_mariadb;
    my $ok = 0;
    for (1 .. 60) {
        $ok = $s->get('/readyz')->{status} == 200 ? $ok + 1 : 0;
        last if $ok >= 12;
    }
}
cmp_ok(scalar(@shots), '>=', 10, scalar(@shots) . " screenshots in $shots");

# what the browser did, as the database has it
my $uid = $s->sql("SELECT id FROM users WHERE email_index IS NOT NULL ORDER BY id DESC LIMIT 1")->[0][0];
my $o = $s->sql("SELECT o.status, o.total, o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id"
    . " WHERE i.product_id = $products[0]{id} ORDER BY o.id")->[0] || [];
is($o->[0] // '', 'CANCELLED', 'the buyer\'s order is CANCELLED');
is($o->[1] // 0, 23_000, 'its total was 12,000 + 8,000 + 3,000 shipping');
is($s->sql("SELECT balance FROM users WHERE id = " . ($o->[2] // 0))->[0][0] // '', 50_000, 'the buyer has 50,000 again');
is($s->sql("SELECT stock FROM products WHERE id = $last->{id}")->[0][0], 0, 'the last unit: stock is 0');
is($s->sql("SELECT COUNT(*) FROM order_items WHERE product_id = $last->{id}")->[0][0], 1, 'and one order has it');
is($s->sql("SELECT COUNT(*) FROM products WHERE name = '브라우저 시험 한정판 $tag' AND stock = 7 AND price = 15000"
    . " AND seller_id = $seller->{id}")->[0][0], 1, "the seller's product is stored as entered");
is_deeply($s->sql("SELECT delta FROM point_ledger WHERE user_id = $buyers[2]{id} AND kind = 'CHARGE' ORDER BY id"),
    [ [50_000], [10_000] ], 'the charge retried through the outage was made once');
# the cart, the wishlist and the account, as the database has them
my $cb = $cart_buyer->{id};
is_deeply($s->sql("SELECT total FROM orders WHERE user_id = $cb ORDER BY id"), [ [32_000], [11_000] ],
    'the cart buyer: two orders, 2 x 12,000 + 8,000 (free shipping) and 8,000 + 3,000');
is($s->sql("SELECT balance FROM users WHERE id = $cb")->[0][0], 100_000 - 43_000, 'and 57,000 left');
is($s->sql("SELECT (SELECT COUNT(*) FROM cart_items WHERE user_id = $cb) + (SELECT COUNT(*) FROM wishlist_items WHERE user_id = $cb)")->[0][0],
    0, 'the cart and the wishlist are empty');
is($s->get("/api/v1/users/$cb", { Authorization => "Bearer $cart_buyer->{token}" })->{status}, 401,
    "the test's own session was logged out by the password change");
my $relog = $s->post_json('/api/v1/auth/tokens', { email => $cart_buyer->{email}, password => 'browser-new-pw-1' });
is($relog->{status}, 201, 'the new password logs in');
is($s->get("/api/v1/users/$cb", { Authorization => "Bearer $relog->{json}{token}" })->{json}{name}, '장바구니', 'under the new name');

my $audit = $s->get('/api/v1/admin/audit', { Authorization => 'Bearer ' . Jangteo::Client::login($s, $admin_email, 'browser-admin-pw') });
is($audit->{json}{violations}, 0, 'and every invariant holds');
done_testing;
