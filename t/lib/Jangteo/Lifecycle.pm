package Jangteo::Lifecycle;

# Helpers the lifecycle and event tests (t/43..t/46) share: moving orders,
# reading their history and status, waiting for the event pipeline to be
# quiet, a second daemon on the same database and Redis, and the test
# clock. Core Perl only; built on Jangteo::Client.

use strict;
use warnings;
use utf8;

use Carp qw(croak);
use Exporter qw(import);
use File::Path qw(make_path);
use JSON::PP;
use Test::More ();
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(jreq bearer);

our @EXPORT_OK = qw(
    move return_order order_get history_of status_of wait_for events_quiet event_counts
    second_daemon stop_second_daemon set_clock_at reset_clock epoch_of sql1
);

my $JSON = JSON::PP->new->utf8->canonical;

sub sql1 { my ($s, $q) = @_; my $r = $s->sql($q); return @$r ? $r->[0][0] : undef }

# POST /orders/{id}/transitions {"to"} (+ trackingNumber => ..., if_match => v, key => k)
sub move {
    my ($s, $token, $oid, $to, %o) = @_;
    my %body = (to => $to);
    $body{trackingNumber} = $o{trackingNumber} if defined $o{trackingNumber};
    my %h;
    $h{'If-Match'} = $o{if_match} if defined $o{if_match};
    $h{'Idempotency-Key'} = $o{key} if defined $o{key};
    return jreq($s, 'POST', "/api/v1/orders/$oid/transitions", $token, \%body, %h);
}

sub return_order {
    my ($s, $token, $oid, $reason, %h) = @_;
    return jreq($s, 'POST', "/api/v1/orders/$oid/return", $token, { reason => $reason // '사이즈가 맞지 않아요' }, %h);
}

sub order_get { my ($s, $token, $oid) = @_; return jreq($s, 'GET', "/api/v1/orders/$oid", $token) }

# [[from, to, actor, actor_id], ...] of an order, oldest first, from the table
sub history_of {
    my ($s, $oid) = @_;
    return $s->sql("SELECT from_status, to_status, actor, COALESCE(actor_id, 'NULL') FROM order_events"
        . " WHERE order_id = $oid ORDER BY id");
}

sub status_of { my ($s, $oid) = @_; return sql1($s, "SELECT status FROM orders WHERE id = $oid") }

# Calls $cond every $step seconds until true or $limit seconds pass (time
# bounds the wait; it is never what a test asserts).
sub wait_for {
    my ($cond, $limit, $step) = @_;
    my $deadline = time + ($limit // 30);
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep($step // 0.1);
    }
}

# How far the event pipeline has got: unpublished outbox rows, events
# with no notification yet (every topic has a recipient), events an active
# webhook registered before them wants and has no delivery of (as the
# consumers' lost sweeps see them, domain/notifications.c and webhooks.c),
# and what the stream's groups still hold pending.
sub event_counts {
    my ($s, %o) = @_;
    my $after = int($o{after} // 0);
    # the unpublished are one range of outbox_unpublished; the others walk
    # the outbox by its primary key, one key look-up per event (with
    # `after`, only the events after that id: a poll of a large outbox
    # known to be consumed up to there)
    my $r = $s->sql('SELECT (SELECT COUNT(*) FROM outbox WHERE published_at IS NULL),'
        . " (SELECT COUNT(*) FROM outbox x WHERE x.id > $after AND NOT EXISTS"
        . ' (SELECT 1 FROM notifications n WHERE n.event_id = x.id)),'
        . " (SELECT COUNT(*) FROM outbox x WHERE x.id > $after AND EXISTS (SELECT 1 FROM webhooks w WHERE w.active = 1"
        . ' AND w.created_at <= x.created_at AND FIND_IN_SET(x.topic, w.events) > 0 AND NOT EXISTS'
        . ' (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.event_id = x.id)))')->[0];
    my %c = (unpublished => $r->[0] // 0, unnotified => $r->[1] // 0, unhooked => $r->[2] // 0);
    for my $g (qw(notifiers webhooks)) {
        my $p = $s->redis('XPENDING', 'events', $g);
        my ($n) = $p =~ /^(\d+)/;
        $c{"pending_$g"} = $n // 0;
    }
    return \%c;
}

# Waits (bounded) until every event is published, notified and hooked and
# nothing is pending in either group; returns the last counts.
sub events_quiet {
    my ($s, $limit) = @_;
    my $last;
    wait_for(sub {
        $last = event_counts($s);
        !$last->{unpublished} && !$last->{unnotified} && !$last->{unhooked}
            && !$last->{pending_notifiers} && !$last->{pending_webhooks};
    }, $limit // 60, 0.2);
    return $last;
}

# A second jangteod on the stack's MariaDB and Redis (another "host"): its
# own socket, pid file and logs in $dir; `conf` overrides like the stack's.
sub second_daemon {
    my ($s, %o) = @_;
    my $d = $s->dir . '/second';
    make_path($d);
    my (@order, %sec, $cur);
    open my $in, '<', $s->conf_path or croak "read conf: $!";
    while (my $l = <$in>) {
        if ($l =~ /^\[(\w+)\]/) { $cur = $1; push @order, $cur unless $sec{$cur}; $sec{$cur} ||= [] }
        elsif ($cur && $l =~ /^(\w+) = (.*)$/) { push @{ $sec{$cur} }, [ $1, $2 ] }
    }
    close $in;
    my %over = (server => { listen => "unix:$d/jangteod.sock", error_log => "$d/error.log",
        access_log => "$d/access.log", pid_file => "$d/jangteod.pid" });
    for my $k (keys %{ $o{conf} || {} }) { $over{$k} = { %{ $over{$k} || {} }, %{ $o{conf}{$k} } } }
    my $text = '';
    for my $name (@order, grep { !$sec{$_} } sort keys %over) {
        my %left = %{ $over{$name} || {} };
        $text .= "[$name]\n";
        for my $kv (@{ $sec{$name} || [] }) {
            my $v = exists $left{ $kv->[0] } ? delete $left{ $kv->[0] } : $kv->[1];
            $text .= "$kv->[0] = $v\n";
        }
        $text .= "$_ = $left{$_}\n" for sort keys %left;
    }
    open my $fh, '>', "$d/jangteod.conf" or croak "write conf: $!";
    print $fh $text;
    close $fh;
    chmod 0600, "$d/jangteod.conf";
    $s->_spawn('jangteod2', "$d/jangteod.out", $s->bin('jangteod'), '-c', "$d/jangteod.conf");
    $s->_wait_for('jangteod2', sub { -S "$d/jangteod.sock" }, "$d/error.log", "$d/jangteod.out");
    return $d;
}

sub stop_second_daemon { my ($s) = @_; $s->_stop_child('jangteod2', 'TERM', 15) }

# The test clock (POST /test/clock) so that business time reads $epoch
# (seconds, fractions allowed) now; back to the wall clock with reset_clock.
sub set_clock_at {
    my ($s, $epoch) = @_;
    my $r = $s->post_json('/test/clock', { offsetMs => int(($epoch - time) * 1000) });
    croak "POST /test/clock: $r->{status} $r->{body}" unless $r->{status} == 200;
    return $r->{json};
}

sub reset_clock {
    my ($s) = @_;
    my $r = $s->post_json('/test/clock', { offsetMs => 0 });
    croak "POST /test/clock: $r->{status} $r->{body}" unless $r->{status} == 200;
}

# 2026-12-01T09:00:00.123456Z -> epoch seconds (with the fraction)
sub epoch_of {
    my ($iso) = @_;
    require Time::Local;
    my ($y, $mo, $d, $h, $mi, $sec, $frac) = $iso =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$/
        or croak "not a UTC time: $iso";
    return Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y) + ($frac // 0);
}

1;
