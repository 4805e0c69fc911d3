#!/usr/bin/perl
# The event pipeline under faults (issue 14): the relay and the
# notification consumers are killed with SIGKILL again and again while 500
# orders are placed, and every outbox row is still published, every event
# has exactly one notification, nothing is left pending; Redis is stopped
# for 5 s while orders go on, and afterwards every event is delivered
# (notified, and POSTed to a webhook), none lost, none twice; Redis loses
# the stream with events in it nobody read, and the consumers' sweeps find
# them in MariaDB.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack jreq new_user concurrent bearer invariant_ok);
use Jangteo::Catalog qw(make_product shipping demo_tokens);
use Jangteo::Lifecycle qw(wait_for events_quiet event_counts sql1);
use Jangteo::Load qw(audit_ok);
use Jangteo::Orders qw(make_users);
use Jangteo::Receiver;
use MIME::Base64 qw(encode_base64);

my $s = test_stack(demo => 1, workers => 4, conf => {
    events => { consumers => 2, claim_idle_ms => 1000, lost_after => 3, audit_grace => 0, batch => 50 },
});
my $tok = demo_tokens($s);
my $seller = new_user($s, tag => 'seller', role => 'SELLER');
my $product = make_product($s, $seller->{token}, price => 1_000, stock => 2_000)->{id};
my $buyers = make_users($s, 25, tag => 'evbuyer', balance => 1_000_000);

sub kids {
    my ($name) = @_;
    my $m = $s->master_pid or return ();
    return map { /^\s*(\d+)\s+\Q$name\E/ ? $1 : () } split /\n/, `ps -o pid=,comm= --ppid $m`;
}
sub order_reqs {
    my ($n, $offset) = @_;
    return [ map {
        my $u = $buyers->[ ($_ + $offset) % @$buyers ];
        [ 'POST', '/api/v1/orders', bearer($u->{token}), { items => [ { productId => $product, quantity => 1 } ],
          shipping => shipping() } ]
    } 1 .. $n ];
}
# every order.paid event of these orders: exactly one notification, to its buyer
sub one_notification_each {
    my ($label, $first_order) = @_;
    my $bad = $s->sql("SELECT x.id FROM outbox x JOIN orders o ON o.id = x.aggregate_id WHERE x.topic = 'order.paid'"
        . " AND o.id >= $first_order AND ((SELECT COUNT(*) FROM notifications n WHERE n.event_id = x.id) <> 1"
        . ' OR NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = x.id AND n.user_id = o.user_id))');
    is(scalar @$bad, 0, "$label: every order.paid has exactly one notification, to its buyer")
        or diag('events: ' . join(',', map { $_->[0] } @$bad));
}

# ---------------------------------------------------------------- kill -9, again and again
subtest 'SIGKILL to the relay and the notifiers during 500 orders' => sub {
    my $first = (sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM orders') // 0) + 1;
    ok(scalar(kids('jangteod-relay')) == 1 && scalar(kids('jangteod-notify')) == 2, 'one relay, two notifiers running');
    # The killer counts its kills in $kills; round k of the orders starts
    # only after kill k, so the kills fall among the 500 orders however fast
    # the machine places them (not on the clock: a bounded wait, then on).
    my $kills = $s->dir . '/kills';
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $killer = fork() // die "fork: $!";
    if ($killer == 0) {
        close $rd;
        my %n = (relay => 0, notify => 0);
        my $i = 0;
        my $end = time + 120;    # bounded: it stops by itself
        while (time < $end && getppid() != 1) {
            last if -e $s->dir . '/stop-killer';
            # relay, notifier, relay, ... (one that is restarting is tried again)
            my $kind = $i % 2 ? 'notify' : 'relay';
            my @p = kids("jangteod-$kind");
            if (@p) {
                kill 'KILL', $p[ int rand @p ];
                $n{$kind}++;
                $i++;
                open my $f, '>', "$kills.tmp" or die;
                print $f "$i\n";
                close $f;
                rename "$kills.tmp", $kills or die;
            }
            sleep 1.2;    # under the master's crash guard (10 abnormal exits in 10 s)
        }
        print {$wr} "$n{relay} $n{notify}\n";
        close $wr;
        _exit(0);
    }
    close $wr;
    my %t;
    for my $round (0 .. 9) {
        wait_for(sub { (-e $kills ? do { open my $f, '<', $kills; <$f> // 0 } : 0) >= $round }, 30, 0.1);
        my $res = concurrent($s, order_reqs(50, $round * 50));
        $t{ $_->{status} }++ for @$res;
    }
    open my $stop, '>', $s->dir . '/stop-killer' or die;
    close $stop;
    my ($killed_relay, $killed_notify) = split ' ', (<$rd> // '0 0');
    waitpid($killer, 0);
    is($t{201} // 0, 500, '500 orders, all 201') or diag(explain \%t);
    cmp_ok($killed_relay, '>=', 2, "the relay was killed $killed_relay times");
    cmp_ok($killed_notify, '>=', 2, "a notifier was killed $killed_notify times");
    ok(wait_for(sub { scalar(kids('jangteod-relay')) == 1 && scalar(kids('jangteod-notify')) == 2 }, 60),
        'the master brought them back');

    my $q = events_quiet($s, 120);
    is($q->{unpublished}, 0, 'every outbox row was published') or diag(explain $q);
    is($q->{unnotified}, 0, 'every event was recorded by a notifier');
    is($q->{pending_notifiers}, 0, 'nothing is left pending in the stream');
    is(sql1($s, "SELECT COUNT(*) FROM outbox WHERE topic = 'order.paid' AND aggregate_id >= $first"), 500,
        '500 order.paid events');
    one_notification_each('after the kills', $first);
    my $dup = $s->sql('SELECT event_id FROM notifications GROUP BY event_id, user_id HAVING COUNT(*) > 1');
    is(scalar @$dup, 0, 'no event notified anyone twice');
    audit_ok($s, 'the audit agrees: every published event has its notifications');
};

# ---------------------------------------------------------------- Redis stopped for 5 s
subtest 'Redis stopped for 5 s during orders: every event delivered afterwards, none lost, none doubled' => sub {
    my $rx = Jangteo::Receiver->new(mode => 'ok', dir => $s->dir);
    my $r = jreq($s, 'POST', '/api/v1/admin/webhooks', $tok->{admin}, { url => $rx->url, events => ['order.paid'],
        secret => 'whsec_' . encode_base64('k' x 32, '') });
    is($r->{status}, 201, 'a webhook receiver') or diag($r->{body});
    my $first = (sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM orders') // 0) + 1;

    # a steady trickle of orders from a child, while Redis goes away and back
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my %t;
        my $end = time + 9;
        my $i = 0;
        while (time < $end) {
            my $u = $buyers->[ $i++ % @$buyers ];
            my $res = jreq($s, 'POST', '/api/v1/orders', $u->{token},
                { items => [ { productId => $product, quantity => 1 } ], shipping => shipping() });
            $t{ $res->{status} }++;
            sleep 0.05;
        }
        print {$wr} join(' ', map { "$_=$t{$_}" } sort keys %t) . "\n";
        close $wr;
        _exit(0);
    }
    close $wr;
    sleep 1.5;
    $s->stop_redis;
    my $down_at = sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM outbox');
    sleep 5;
    my $during = sql1($s, "SELECT COUNT(*) FROM outbox WHERE id > $down_at AND published_at IS NULL");
    $s->start_redis;
    my $tally = <$rd> // '';
    waitpid($pid, 0);
    chomp $tally;
    my %t = map { split /=/ } split ' ', $tally;
    my $placed = sql1($s, "SELECT COUNT(*) FROM orders WHERE id >= $first");
    cmp_ok($t{201} // 0, '>', 0, "orders went on ($tally)");
    is($t{201} // 0, $placed, 'every 201 is an order, and every order a 201');
    cmp_ok($during, '>', 0, "events written while Redis was down waited unpublished ($during)");

    my $q = events_quiet($s, 120);
    is($q->{unpublished} + $q->{unnotified} + $q->{unhooked}, 0, 'afterwards every event is published and consumed')
        or diag(explain $q);
    one_notification_each('Redis stopped', $first);
    my $want = sql1($s, "SELECT COUNT(*) FROM outbox WHERE topic = 'order.paid' AND aggregate_id >= $first");
    is($want, $placed, 'one order.paid event per order');
    ok(wait_for(sub { scalar(@{ $rx->requests }) >= $want }, 60), 'the webhook receiver got them');
    my %seen;
    $seen{ $_->{id} }++ for @{ $rx->requests };
    is(scalar(keys %seen), $want, "... all $want events");
    is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, '... each once');
    # (outcomes are recorded a batch at a time, a moment after the answers)
    wait_for(sub { !sql1($s, "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'DELIVERED'") }, 10);
    is(sql1($s, "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'DELIVERED'"), 0, 'every delivery DELIVERED');
    $rx->stop;
};

# ---------------------------------------------------------------- the stream lost
subtest 'Redis lost the stream with events nobody consumed: the sweeps find every one in MariaDB, once' => sub {
    my $rx = Jangteo::Receiver->new(mode => 'ok', dir => $s->dir);
    my $r = jreq($s, 'POST', '/api/v1/admin/webhooks', $tok->{admin}, { url => $rx->url, events => ['order.paid'],
        secret => 'whsec_' . encode_base64('l' x 32, '') });
    is($r->{status}, 201, 'a webhook receiver') or diag($r->{body});
    my $reload = sub {
        my ($consumers) = @_;
        $s->{conf}{events} = { %{ $s->{conf}{events} }, consumers => $consumers, webhook_consumers => $consumers };
        $s->_write_app_conf;
        $s->signal_master('HUP');
        ok(wait_for(sub { scalar(kids('jangteod-notify')) == $consumers && scalar(kids('jangteod-hooks')) == $consumers }, 30),
            "$consumers notifiers and webhook consumers running");
    };
    $reload->(0);
    my $first = (sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM orders') // 0) + 1;
    my $from = sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM outbox');
    my $res = concurrent($s, order_reqs(30, 3));
    is(scalar(grep { $_->{status} == 201 } @$res), 30, '30 orders placed with no consumer running');
    ok(wait_for(sub { !sql1($s, 'SELECT COUNT(*) FROM outbox WHERE published_at IS NULL') }, 30), 'the relay published them');
    my $events = sql1($s, "SELECT COUNT(*) FROM outbox WHERE id > $from");
    is(sql1($s, "SELECT COUNT(*) FROM notifications WHERE event_id > $from"), 0, 'nobody was told yet');
    # what a Redis without persistence does on a restart: the stream and
    # its groups are gone, entries nobody read with them
    $s->redis('DEL', 'events');
    my $log0 = length $s->log_text('error');
    $reload->(2);
    my $q = events_quiet($s, 60);
    is($q->{unnotified} + $q->{unhooked}, 0, 'afterwards every event is consumed') or diag(explain $q);
    one_notification_each('the stream lost', $first);
    is(sql1($s, "SELECT COUNT(*) FROM notifications WHERE event_id > $from"), $events, "one notification per event ($events)");
    ok(wait_for(sub { scalar(@{ $rx->requests }) >= 30 }, 30), 'the webhook receiver got the 30 order.paid events');
    my %seen;
    $seen{ $_->{id} }++ for @{ $rx->requests };
    is(scalar(keys %seen), 30, '... all 30');
    is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, '... each once');
    my $log = substr($s->log_text('error'), $log0);
    like($log, qr/notifier: \d+ events Redis lost were taken from MariaDB/, 'the notifiers\' sweep found them');
    like($log, qr/webhooks: \d+ events Redis lost were taken from MariaDB/, 'the webhook consumers\' sweep found them');
    my $last = sql1($s, 'SELECT MAX(id) FROM outbox');
    ok(wait_for(sub { (sql1($s, "SELECT MIN(through_id) FROM event_cursors WHERE name IN ('notifications', 'webhooks')"
        . ' HAVING COUNT(*) = 2') // 0) >= $last }, 30), 'both sweeps\' cursors moved past the last event');
    $rx->stop;
};

# ---------------------------------------------------------------- retention
subtest 'published events past [events] retention are purged, and nothing else' => sub {
    my $ids = join(',', map { $_->[0] } @{ $s->sql('SELECT id FROM outbox WHERE published_at IS NOT NULL ORDER BY id LIMIT 3') });
    my $before = sql1($s, 'SELECT COUNT(*) FROM outbox');
    $s->sql("UPDATE outbox SET published_at = NOW(6) - INTERVAL 8 DAY WHERE id IN ($ids)");
    $s->sql("UPDATE outbox SET published_at = NOW(6) - INTERVAL 6 DAY WHERE id = (SELECT MAX(id) FROM outbox)");
    my ($rc, $out) = $s->admin('purge');
    is($rc, 0, 'jangteo-admin purge') or diag($out);
    like($out, qr/, 3 published events older than 604800 s removed$/m, 'it removed the three events a week old');
    is(sql1($s, "SELECT COUNT(*) FROM outbox WHERE id IN ($ids)"), 0, 'they are gone');
    is(sql1($s, 'SELECT COUNT(*) FROM outbox'), $before - 3, 'and only they: one six days old stays');
};

invariant_ok($s);
audit_ok($s, 'audit clean at the end');
$s->stop;
done_testing;
