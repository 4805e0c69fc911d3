#!/usr/bin/perl
# The scheduler (issue 14): what nobody moves by hand moves by itself, from
# the order's paid time, with durations of a few seconds here. 20 paid
# orders all end DELIVERED through exactly three moves each, the
# scheduler's, each told the buyer once; a return inside the window is
# completed later (units back exactly, the total refunded as one ledger
# row); two daemons on one database sweep side by side, with Redis up (the
# sweep lock) and with Redis stopped (no lock at all: the version fence
# alone), and every move still happens once; `jangteo-admin sweep` does a
# sweep where the daemon runs no scheduler.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack jreq new_user invariant_ok);
use Jangteo::Catalog qw(make_product order_for rich_buyer);
use Jangteo::Lifecycle qw(return_order history_of status_of wait_for events_quiet second_daemon stop_second_daemon
    sql1);
use Jangteo::Load qw(audit_ok);

my %CONF = (
    server => { enable_test_routes => 'yes' },
    testing => { tx_delay_ms => 0 },
    lifecycle => { ship_after => 2, deliver_after => 4, return_window => 60, return_complete_after => 2,
                   sweep_interval => 1, batch => 7 },
    events => { audit_grace => 0, lost_after => 2, claim_idle_ms => 1000 },
);
my $s = test_stack(demo => 1, conf => {%CONF});
my $seller = new_user($s, tag => 'seller', role => 'SELLER');
my $buyer = rich_buyer($s);
my $product = make_product($s, $seller->{token}, price => 2_000, stock => 1000)->{id};

sub place_n {
    my ($n, $qty) = @_;
    my @ids;
    for (1 .. $n) {
        my $r = order_for($s, $buyer->{token}, [ $product, $qty // 1 ]);
        push @ids, $r->{json}{orderId} if $r->{status} == 201;
    }
    is(scalar @ids, $n, "$n orders placed");
    return @ids;
}
sub in_list { join(',', @_) }
sub all_delivered {
    my (@ids) = @_;
    return wait_for(sub {
        sql1($s, 'SELECT COUNT(*) FROM orders WHERE status = \'DELIVERED\' AND id IN (' . in_list(@ids) . ')') == @ids;
    }, 60, 0.25);
}
# every order of @ids moved PAID -> PREPARING -> SHIPPING -> DELIVERED, by
# the scheduler, exactly once each
sub three_moves_each {
    my ($label, @ids) = @_;
    my $rows = $s->sql('SELECT order_id, GROUP_CONCAT(CONCAT(from_status, \'>\', to_status, \':\', actor, \':\','
        . ' COALESCE(actor_id, \'-\')) ORDER BY id SEPARATOR \' \') FROM order_events WHERE order_id IN ('
        . in_list(@ids) . ') GROUP BY order_id');
    my $want = 'PAID>PREPARING:SCHEDULER:- PREPARING>SHIPPING:SCHEDULER:- SHIPPING>DELIVERED:SCHEDULER:-';
    my @bad = grep { $_->[1] ne $want } @$rows;
    is(scalar @$rows, scalar @ids, "$label: every order has a history");
    is(scalar @bad, 0, "$label: each is exactly PAID>PREPARING>SHIPPING>DELIVERED, by the scheduler") or diag(explain \@bad);
    is(sql1($s, 'SELECT COUNT(*) FROM order_events WHERE order_id IN (' . in_list(@ids) . ')'), 3 * @ids,
        "$label: " . (3 * @ids) . ' moves in all');
    is(sql1($s, "SELECT COUNT(*) FROM outbox WHERE topic IN ('order.preparing', 'order.shipping', 'order.delivered')"
        . ' AND aggregate_id IN (' . in_list(@ids) . ')'), 3 * @ids, "$label: one event per move");
}

# ---------------------------------------------------------------- 20 orders
my @twenty = place_n(20);
ok(all_delivered(@twenty), 'the 20 orders all reach DELIVERED by themselves');
three_moves_each('20 orders', @twenty);
my $q = events_quiet($s);
is($q->{unnotified} + $q->{unpublished}, 0, 'every event was published and consumed') or diag(explain $q);
is(sql1($s, 'SELECT COUNT(*) FROM notifications n JOIN outbox x ON x.id = n.event_id WHERE x.topic LIKE \'order.%\''
    . ' AND x.aggregate_id IN (' . in_list(@twenty) . ')'), 80, '80 notifications: order.paid and three moves, each');
is(sql1($s, 'SELECT COUNT(*) FROM outbox x WHERE x.topic LIKE \'order.%\' AND x.aggregate_id IN (' . in_list(@twenty)
    . ') AND (SELECT COUNT(*) FROM notifications n WHERE n.event_id = x.id) <> 1'), 0,
    'exactly one notification per event');
is(sql1($s, 'SELECT COUNT(DISTINCT user_id) FROM notifications n JOIN outbox x ON x.id = n.event_id'
    . ' WHERE x.aggregate_id IN (' . in_list(@twenty) . ') AND x.topic LIKE \'order.%\''), 1, 'all to the buyer');
is(sql1($s, 'SELECT message FROM notifications n JOIN outbox x ON x.id = n.event_id WHERE x.topic = \'order.delivered\''
    . " AND x.aggregate_id = $twenty[0]"), "배송이 완료되었습니다. 주문번호 $twenty[0]", 'the delivery message');

# ---------------------------------------------------------------- a return, completed by the scheduler
{
    my $bal0 = sql1($s, "SELECT balance FROM users WHERE id = $buyer->{id}");
    my $st0 = sql1($s, "SELECT stock FROM products WHERE id = $product");
    my ($o) = place_n(1, 3);
    my $total = sql1($s, "SELECT total FROM orders WHERE id = $o");
    is($total, 9_000, 'three units: 6,000 + 3,000 shipping');
    is(sql1($s, "SELECT stock FROM products WHERE id = $product"), $st0 - 3, 'three units taken');
    ok(all_delivered($o), 'the order is delivered by the scheduler');
    my $r = return_order($s, $buyer->{token}, $o, '마음이 바뀌었어요');
    is($r->{status}, 200, 'the buyer asks for a return inside the window') or diag($r->{body});
    ok(wait_for(sub { status_of($s, $o) eq 'RETURNED' }, 30, 0.25), 'the scheduler completes it');
    is(sql1($s, "SELECT stock FROM products WHERE id = $product"), $st0, 'the three units are back, exactly');
    is_deeply($s->sql("SELECT delta FROM point_ledger WHERE ref_id = $o AND kind = 'ORDER_REFUND'"), [ [$total] ],
        'one refund ledger row of exactly the total');
    is(sql1($s, "SELECT balance FROM users WHERE id = $buyer->{id}"), $bal0, 'the balance is what it was before');
    is(sql1($s, "SELECT balance - (SELECT SUM(delta) FROM point_ledger WHERE user_id = $buyer->{id}) FROM users"
        . " WHERE id = $buyer->{id}"), 0, 'balance = the sum of the ledger');
    is_deeply([ map { "$_->[0]>$_->[1]:$_->[2]" } @{ history_of($s, $o) } ], [
        'PAID>PREPARING:SCHEDULER', 'PREPARING>SHIPPING:SCHEDULER', 'SHIPPING>DELIVERED:SCHEDULER',
        'DELIVERED>RETURN_REQUESTED:BUYER', 'RETURN_REQUESTED>RETURNED:SCHEDULER' ], 'its five moves');
}

# ---------------------------------------------------------------- two schedulers
# The proof that the fence is what keeps a move single needs the two
# schedulers' sweeps to overlap, not take turns: with moves of a few
# milliseconds each sweep is over long before the other's next tick, and
# which daemon makes the moves depends on the phase of their timers. So
# during the Redis-down part every transaction of both daemons waits
# [testing] tx_delay_ms (40) before its COMMIT: a sweep of 40 due orders
# then lasts well over sweep_interval (1 s), the two read the same due rows
# and race for each one (the loser's versioned UPDATE finds 0 rows).
my $DELAY = 40;
sub kid_pid {
    my ($ppid, $comm) = @_;
    my ($pid) = map { /^\s*(\d+)\s+\Q$comm\E/ ? $1 : () } split /\n/, `ps -o pid=,comm= --ppid $ppid`;
    return $pid;
}
sub second_log { my ($d) = @_; -e "$d/error.log" ? do { local (@ARGV, $/) = ("$d/error.log"); <> } : '' }
my $second = second_daemon($s, conf => { testing => { tx_delay_ms => $DELAY } });
ok(wait_for(sub { -s "$second/error.log" && kid_pid($s->{pids}{jangteod2}, 'jangteod-sched') }, 20),
    'a second daemon (another host) runs its own scheduler on the same database');
{
    my @ids = place_n(25);
    ok(all_delivered(@ids), 'two schedulers with Redis up: all delivered');
    three_moves_each('two schedulers, Redis up', @ids);
}
{
    my $old = kid_pid($s->master_pid, 'jangteod-sched');
    $s->{conf}{testing}{tx_delay_ms} = $DELAY;
    $s->_write_app_conf;
    $s->signal_master('HUP');
    ok(wait_for(sub { my $p = kid_pid($s->master_pid, 'jangteod-sched'); $p && $p != $old }, 20),
        "the first daemon reloaded with tx_delay_ms = $DELAY");
    my ($mine0, $theirs0) = (length($s->log_text('error')), length(second_log($second)));
    $s->stop_redis;
    my @ids = place_n(40);
    ok(all_delivered(@ids), 'two schedulers with Redis stopped (no sweep lock, no order lock): all delivered');
    three_moves_each('two schedulers, Redis down', @ids);
    my $mine = () = substr($s->log_text('error'), $mine0) =~ /scheduler: sweep moved [1-9]/g;
    my $theirs = () = substr(second_log($second), $theirs0) =~ /scheduler: sweep moved [1-9]/g;
    ok($mine > 0 && $theirs > 0, "both schedulers made moves with Redis down ($mine and $theirs sweeps)")
        or diag(substr(second_log($second), $theirs0));
    $s->start_redis;
    $s->{conf}{testing}{tx_delay_ms} = 0;
}
my $dups = $s->sql('SELECT order_id, to_status FROM order_events GROUP BY order_id, to_status HAVING COUNT(*) > 1');
is(scalar @$dups, 0, 'no order entered any status twice') or diag(explain $dups);
stop_second_daemon($s);

# ---------------------------------------------------------------- jangteo-admin sweep
{
    $s->{conf}{lifecycle}{scheduler} = 'no';
    $s->_write_app_conf;
    $s->signal_master('HUP');
    ok(wait_for(sub { `ps -o comm= --ppid @{[ $s->master_pid ]}` !~ /jangteod-sched/ }, 20),
        'reloaded without its scheduler');
    my @ids = place_n(3);
    # past deliver_after (on MariaDB's clock, which business time follows here): due for every move
    wait_for(sub { sql1($s, 'SELECT MAX(paid_at) < NOW(6) - INTERVAL 4500000 MICROSECOND FROM orders WHERE id IN ('
        . in_list(@ids) . ')') }, 20, 0.1);
    is(sql1($s, 'SELECT COUNT(*) FROM orders WHERE status = \'PAID\' AND id IN (' . in_list(@ids) . ')'), 3,
        'with no scheduler nothing moves by itself');
    my ($rc, $out) = $s->admin('sweep');
    is($rc, 0, 'jangteo-admin sweep exits 0') or diag($out);
    like($out, qr/^sweep: 9 moved, 0 skipped, 0 to retry$/m, 'it made the nine moves due');
    three_moves_each('jangteo-admin sweep', @ids);
    ($rc, $out) = $s->admin('sweep');
    like($out, qr/^sweep: 0 moved/m, 'a second sweep finds nothing due');
}

$q = events_quiet($s, 90);
is($q->{unpublished} + $q->{unnotified} + $q->{pending_notifiers}, 0, 'every event published and notified at the end')
    or diag(explain $q);
invariant_ok($s);
audit_ok($s, 'audit clean: statuses agree with their histories, one refund per return, every event notified');
$s->stop;
done_testing;
