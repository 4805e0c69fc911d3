# An order's life in a real browser (t/browser/lifecycle.mjs): the buyer
# sees a delivered order's timeline (every move, who made it, the tracking
# number), asks for a return on its page, cancels an order being prepared
# and gets the points back, reads the Korean notifications of those moves
# and marks one read; both pages in Korean and English. The seller's moves
# are made here through the API. Screenshots in t/shots/91-browser-lifecycle/.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack new_user charge jreq);
use Jangteo::Browser qw(run_browser shots_dir);
use Jangteo::Catalog qw(make_product order_for);
use Jangteo::Lifecycle qw(move events_quiet sql1);
use Jangteo::Load qw(audit_ok);

my $s = test_stack(conf => { events => { audit_grace => 0 } });
my $shots = shots_dir();
my $seller = new_user($s, role => 'SELLER', name => '박판매', tag => 'lseller');
my $buyer = new_user($s, name => '김반품', tag => 'lbuyer');
charge($s, $buyer->{id}, $buyer->{token}, 100_000, "fund-$buyer->{id}");
my $p = make_product($s, $seller->{token}, name => '브라우저 운동화', price => 39_000, stock => 10)->{id};
my $q = make_product($s, $seller->{token}, name => '브라우저 양말', price => 5_000, stock => 10)->{id};

my $delivered = order_for($s, $buyer->{token}, [ $p, 1 ])->{json}{orderId};
my $tracking = 'CJ-4000123456';
is(move($s, $seller->{token}, $delivered, 'PREPARING')->{status}, 200, 'the seller prepares it');
is(move($s, $seller->{token}, $delivered, 'SHIPPING', trackingNumber => $tracking)->{status}, 200, '... ships it');
is(move($s, $seller->{token}, $delivered, 'DELIVERED')->{status}, 200, '... and it is delivered');
my $prep = order_for($s, $buyer->{token}, [ $q, 2 ])->{json};
is(move($s, $seller->{token}, $prep->{orderId}, 'PREPARING')->{status}, 200, 'a second order is being prepared');
events_quiet($s);

my $reason = '사이즈가 작아요';
my @out = run_browser($s, 'lifecycle.mjs', shots => $shots, timeout => 180, data => {
    buyer => { map { $_ => $buyer->{$_} } qw(email password) },
    delivered => $delivered, tracking => $tracking, reason => $reason,
    preparing => $prep->{orderId}, preparingTotal => $prep->{total},
});

is(sql1($s, "SELECT status FROM orders WHERE id = $delivered"), 'RETURN_REQUESTED', 'the order waits for its return');
is(sql1($s, "SELECT return_reason FROM orders WHERE id = $delivered"), $reason, 'with the reason as typed');
is(sql1($s, "SELECT actor FROM order_events WHERE order_id = $delivered AND to_status = 'RETURN_REQUESTED'"), 'BUYER',
    'asked by the buyer');
is(sql1($s, "SELECT status FROM orders WHERE id = $prep->{orderId}"), 'CANCELLED', 'the second order is cancelled');
is(sql1($s, "SELECT balance FROM users WHERE id = $buyer->{id}"), 100_000 - 39_000, 'the balance: 100,000 - 39,000');
is(sql1($s, "SELECT COUNT(*) FROM notifications WHERE user_id = $buyer->{id} AND read_at IS NOT NULL"), 1,
    'one notification was marked read');
events_quiet($s);
audit_ok($s);
done_testing;
