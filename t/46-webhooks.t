#!/usr/bin/perl
# Webhooks (issue 14): an admin registers a receiver, its topics and a
# secret; each matching event is POSTed with the Standard Webhooks headers
# and an HMAC-SHA256 signature over id.timestamp.body. Receivers here are
# fakes on 127.0.0.1 (t/lib/Jangteo/Receiver.pm): one that answers 500
# twice then 200 gets the event once delivered after 3 attempts, every
# attempt signed; one that hangs holds a few calls of its own while a second
# receiver gets all of its events and the orders go on; once it is gone
# its deliveries fail for good after max_attempts. The secret is never
# shown or logged.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256_base64);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;

use Jangteo::Client qw(test_stack jreq new_user is_problem);
use Jangteo::Catalog qw(make_product order_for rich_buyer demo_tokens);
use Jangteo::Lifecycle qw(wait_for events_quiet sql1);
use Jangteo::Load qw(audit_ok);
use Jangteo::Receiver;

my $JSON = JSON::PP->new->utf8->canonical;
my $s = test_stack(demo => 1, conf => {
    events => { webhook_max_attempts => 5, webhook_backoff_base_ms => 200, webhook_backoff_max_ms => 1000,
                webhook_timeout_ms => 30000, webhook_connect_timeout_ms => 1000, audit_grace => 0, lost_after => 2 },
});
my $tok = demo_tokens($s);
my $seller = new_user($s, tag => 'seller', role => 'SELLER');
my $buyer = rich_buyer($s);
my $product = make_product($s, $seller->{token}, price => 1_500, stock => 500)->{id};

sub new_secret { 'whsec_' . encode_base64(join('', map { chr int rand 256 } 1 .. 32), '') }
sub register {
    my ($url, $events, $secret) = @_;
    my $r = jreq($s, 'POST', '/api/v1/admin/webhooks', $tok->{admin}, { url => $url, events => $events, secret => $secret });
    is($r->{status}, 201, "webhook for $url registered") or diag($r->{body});
    return $r;
}
sub deliveries {
    my ($id) = @_;
    my $r = jreq($s, 'GET', "/api/v1/admin/webhooks/$id/deliveries?limit=50", $tok->{admin});
    return $r->{status} == 200 ? $r->{json}{items} : [];
}
sub place {
    my $r = order_for($s, $buyer->{token}, [ $product, 1 ]);
    is($r->{status}, 201, 'an order') or diag($r->{body});
    return $r->{json}{orderId};
}
# the Standard Webhooks signature of a request, by the receiver's side
sub verifies {
    my ($req, $secret) = @_;
    my $key = decode_base64(substr($secret, 6));
    my $mac = hmac_sha256_base64("$req->{id}.$req->{timestamp}.$req->{body}", $key);
    $mac .= '=' x ((4 - length($mac) % 4) % 4);    # Digest::SHA leaves the padding off
    return ($req->{signature} // '') eq "v1,$mac";
}

# ---------------------------------------------------------------- registering
subtest 'only an admin registers, with a URL, known topics and a whsec_ secret' => sub {
    my $secret = new_secret();
    my %ok = (url => 'http://127.0.0.1:9/hook', events => ['order.paid'], secret => $secret);
    is_problem(jreq($s, 'POST', '/api/v1/admin/webhooks', $buyer->{token}, {%ok}), 403, 'FORBIDDEN', 'a buyer: 403');
    is_problem(jreq($s, 'POST', '/api/v1/admin/webhooks', undef, {%ok}), 401, 'UNAUTHORIZED', 'nobody: 401');
    for my $bad (
        [ 'an ftp URL', { %ok, url => 'ftp://127.0.0.1/hook' } ],
        [ 'a relative URL', { %ok, url => '/just/a/path' } ],
        [ 'a URL with a space', { %ok, url => 'http://127.0.0.1/a b' } ],
        [ 'an unknown topic', { %ok, events => ['order.teleported'] } ],
        [ 'no topic', { %ok, events => [] } ],
        [ 'a topic twice', { %ok, events => [ 'order.paid', 'order.paid' ] } ],
        [ 'a secret without whsec_', { %ok, secret => encode_base64('x' x 32, '') } ],
        [ 'a short key', { %ok, secret => 'whsec_' . encode_base64('x' x 8, '') } ],
        [ 'no secret', { url => $ok{url}, events => $ok{events} } ],
        [ 'an unknown member', { %ok, active => JSON::PP::false } ],
    ) {
        is_problem(jreq($s, 'POST', '/api/v1/admin/webhooks', $tok->{admin}, $bad->[1]), 400, 'INVALID_REQUEST',
            "$bad->[0]: 400");
    }
    is(sql1($s, 'SELECT COUNT(*) FROM webhooks'), 0, 'nothing was registered');
};

# ---------------------------------------------------------------- 500, 500, 200
my $secret = new_secret();
my $flaky = Jangteo::Receiver->new(mode => 'fail_twice', dir => $s->dir);
my $w1 = register($flaky->url, ['order.paid'], $secret)->{json};
is_deeply($w1->{events}, ['order.paid'], 'the answer names its topics');
ok(!grep({ /secret/i } keys %$w1), 'and has no secret');
my $list = jreq($s, 'GET', '/api/v1/admin/webhooks', $tok->{admin});
is(scalar @{ $list->{json}{items} }, 1, 'GET lists it');
unlike($list->{body}, qr/\Q@{[ substr($secret, 6) ]}\E|whsec_|secret/, 'the list shows no secret');

subtest 'a receiver that answers 500 twice, then 200: one delivery, three attempts, each signed' => sub {
    my $o = place();
    ok(wait_for(sub { (deliveries($w1->{id})->[0]{status} // '') eq 'DELIVERED' }, 30), 'the delivery is DELIVERED');
    my $d = deliveries($w1->{id});
    is(scalar @$d, 1, 'one delivery');
    is($d->[0]{attempts}, 3, 'after three attempts');
    is($d->[0]{lastStatusCode}, 200, 'the last one answered 200');
    is_deeply([ map { $_->{statusCode} } @{ $d->[0]{attemptLog} } ], [ 500, 500, 200 ], 'the attempts: 500, 500, 200');
    my $reqs = $flaky->requests;
    is(scalar @$reqs, 3, 'the receiver was called three times');
    my $eid = sql1($s, "SELECT id FROM outbox WHERE topic = 'order.paid' AND aggregate_id = $o");
    is_deeply([ map { $_->{id} } @$reqs ], [ ("evt_$eid") x 3 ], 'always with the event\'s webhook-id');
    ok(verifies($_, $secret), "attempt signed over id.timestamp.body ($_->{timestamp})") for @$reqs;
    ok(!verifies({ %{ $reqs->[0] }, body => $reqs->[0]{body} . ' ' }, $secret), 'a changed body would not verify');
    my $body = $JSON->decode($reqs->[2]{body});
    is($body->{type}, 'order.paid', 'the body: its type');
    is($body->{id}, "evt_$eid", 'its id');
    is($body->{data}{orderId}, $o, 'and the order in its data');
    like($reqs->[2]{type}, qr{^application/json}, 'sent as application/json');
    is(scalar(grep { abs($_->{timestamp} - time) < 300 } @$reqs), 3, 'timestamps are now (not the event\'s)');
};
$flaky->stop;

# ---------------------------------------------------------------- a receiver that hangs
subtest 'a receiver that hangs holds four calls of its own; another receiver and the orders go on' => sub {
    my $hang = Jangteo::Receiver->new(mode => 'hang', dir => $s->dir);
    my $fine = Jangteo::Receiver->new(mode => 'ok', dir => $s->dir);
    my $wh = register($hang->url, ['order.paid'], new_secret())->{json};
    my $wf = register($fine->url, [ 'order.paid', 'order.cancelled' ], new_secret())->{json};
    my @orders = map { place() } 1 .. 10;
    is(scalar(grep { defined } @orders), 10, 'ten orders, all 201, while one receiver hangs');
    ok(wait_for(sub { scalar(@{ $fine->requests }) >= 10 }, 30), 'the other receiver gets its ten events');
    my %ids = map { $_->{id} => 1 } @{ $fine->requests };
    is(scalar keys %ids, 10, '... ten distinct events, each once');
    is(scalar @{ $hang->requests }, 4, '... while the hung receiver has been called webhook_per_receiver (4) times'
        . ' and never answered');
    my $dh = deliveries($wh->{id});
    is(scalar @$dh, 10, 'the hung receiver has ten deliveries');
    is(scalar(grep { $_->{status} eq 'PENDING' && $_->{attempts} == 0 } @$dh), 10, '... none finished or tried twice');
    # (outcomes are recorded a batch at a time, a moment after the answers)
    wait_for(sub { 10 == grep { $_->{status} eq 'DELIVERED' } @{ deliveries($wf->{id}) } }, 10);
    is(scalar(grep { $_->{status} eq 'DELIVERED' && $_->{attempts} == 1 } @{ deliveries($wf->{id}) }), 10,
        'the other has ten, DELIVERED at the first attempt');

    # the hung receiver goes away: its deliveries fail for good
    $hang->stop;
    ok(wait_for(sub { !grep { $_->{status} ne 'FAILED' } @{ deliveries($wh->{id}) } }, 60, 0.25),
        'with the receiver gone every delivery ends FAILED');
    $dh = deliveries($wh->{id});
    is(scalar(grep { $_->{attempts} == 5 } @$dh), 10, '... each after max_attempts (5) attempts');
    is(scalar(grep { !defined $_->{lastStatusCode} } @$dh), 10, '... with no HTTP answer');
    ok(!grep({ !defined $_->{error} } map { @{ $_->{attemptLog} } } @$dh), 'each attempt says why it failed');
    $fine->stop;
};

# ---------------------------------------------------------------- a lease taken over
subtest 'an outcome that comes back after its lease was taken over is not recorded' => sub {
    my $hang = Jangteo::Receiver->new(mode => 'hang', dir => $s->dir);
    my $wh = register($hang->url, ['order.paid'], new_secret())->{json};
    my $o = place();
    my $eid = sql1($s, "SELECT id FROM outbox WHERE topic = 'order.paid' AND aggregate_id = $o");
    ok(wait_for(sub { scalar @{ $hang->requests } >= 1 }, 30), 'the call is in flight (the receiver hangs)');
    my $row = sub {
        $s->sql("SELECT id, version, attempts, status, lease_until IS NOT NULL, next_attempt_at = lease_until,"
            . " (SELECT COUNT(*) FROM webhook_attempts a WHERE a.delivery_id = d.id) FROM webhook_deliveries d"
            . " WHERE webhook_id = $wh->{id} AND event_id = $eid")->[0];
    };
    my ($d, $v, $attempts, $status, $leased, $moved) = @{ $row->() };
    is_deeply([ $attempts, $status, $leased, $moved ], [ 0, 'PENDING', 1, 1 ],
        'claimed: leased, its next attempt moved to the lease\'s end, no attempt counted yet');
    # another consumer takes it over (as once this one's lease ran out): the version moves
    $s->sql("UPDATE webhook_deliveries SET version = version + 1, lease_until = NOW(6) + INTERVAL 1 HOUR,"
        . " next_attempt_at = lease_until WHERE id = $d");
    $hang->stop;    # the first call ends, without an answer
    my $fine = Jangteo::Receiver->new(mode => 'ok', dir => $s->dir);
    my $wf = register($fine->url, ['order.paid'], new_secret())->{json};
    my $o2 = place();
    my $eid2 = sql1($s, "SELECT id FROM outbox WHERE topic = 'order.paid' AND aggregate_id = $o2");
    ok(wait_for(sub { (sql1($s, "SELECT status FROM webhook_deliveries WHERE webhook_id = $wf->{id} AND event_id = $eid2")
            // '') eq 'DELIVERED' }, 30), 'a later call, made and recorded after the first one ended');
    is_deeply([ @{ $row->() }[ 1, 2, 3, 6 ] ], [ $v + 1, 0, 'PENDING', 0 ],
        'the first call\'s outcome changed nothing: the version is the takeover\'s, no attempt, no attempt row');
    # the takeover's lease ends without an outcome: the delivery is due again
    $s->sql("UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = NOW(6) WHERE id = $d");
    ok(wait_for(sub { $row->()->[2] >= 1 }, 30), 'claimed and called again (the receiver is gone now)');
    wait_for(sub { $row->()->[6] >= 1 }, 10);
    my $end = $row->();
    is_deeply([ $end->[2], $end->[6] ], [ 1, 1 ], 'exactly one attempt counted and one attempt row: the second call\'s');
    is(sql1($s, "SELECT status_code IS NULL AND error IS NOT NULL FROM webhook_attempts WHERE delivery_id = $d"), 1,
        '... which got no answer, and says why');
    $fine->stop;
};

# ---------------------------------------------------------------- more than one consumer calls at once
# A batch of events can want more deliveries than a consumer has room to
# call at once (256): it inserts the first ones leased and calls them, and
# leaves the others due for a claim. Both kinds are made in one statement
# that returns what it inserted; none may be lost, and none called twice.
subtest 'a batch with more deliveries than a consumer calls at once: the rest are claimed, each delivered once' => sub {
    my @rx = map { Jangteo::Receiver->new(mode => 'ok', dir => $s->dir) } 1 .. 4;
    my @wh = map { register($_->url, ['order.paid'], new_secret())->{json} } @rx;
    my $reload = sub {
        my ($n) = @_;
        $s->{conf}{events} = { %{ $s->{conf}{events} }, webhook_consumers => $n };
        $s->_write_app_conf;
        $s->signal_master('HUP');
        my $m = $s->master_pid;
        ok(wait_for(sub { scalar(grep { /jangteod-hooks/ } split /\n/, `ps -o comm= --ppid $m`) == $n }, 30),
            "$n webhook consumers running");
    };
    $reload->(0);
    # every active webhook that wants order.paid gets each event: enough
    # events that one batch (up to [events] batch of them) wants over 256
    my $wanting = sql1($s, "SELECT COUNT(*) FROM webhooks WHERE active = 1 AND FIND_IN_SET('order.paid', events) > 0");
    my $orders = int(300 / $wanting) + 1;
    my $from = sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM outbox');
    place() for 1 .. $orders;
    my $events = sql1($s, "SELECT COUNT(*) FROM outbox WHERE id > $from AND topic = 'order.paid'");
    is($events, $orders, "$orders order.paid events, " . $orders * $wanting . ' deliveries wanted, none made yet');
    ok(wait_for(sub { !sql1($s, "SELECT COUNT(*) FROM outbox WHERE id > $from AND published_at IS NULL") }, 30),
        'all published');
    my $log0 = length $s->log_text('error');
    $reload->(1);
    my $ids = join ',', map { $_->{id} } @wh;
    ok(wait_for(sub { sql1($s, "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id IN ($ids) AND event_id > $from"
        . " AND status = 'DELIVERED'") == 4 * $orders }, 60), 'the four receivers\' deliveries are all DELIVERED');
    for my $i (0 .. 3) {
        my %seen;
        $seen{ $_->{id} }++ for @{ $rx[$i]->requests };
        is(scalar(keys %seen), $orders, "receiver $i got every event");
        is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, '... each once');
    }
    is(sql1($s, "SELECT COUNT(*) FROM webhook_deliveries WHERE event_id > $from"), $orders * $wanting,
        'one delivery per event and webhook');
    my $log = substr($s->log_text('error'), $log0);
    unlike($log, qr/out of range|transaction .*fail|gave up/i, 'no transaction of the consumer failed');
    $_->stop for @rx;
};

is_problem(jreq($s, 'GET', '/api/v1/admin/webhooks/999999/deliveries', $tok->{admin}), 404, 'WEBHOOK_NOT_FOUND',
    'deliveries of no webhook: 404');
is_problem(jreq($s, 'GET', "/api/v1/admin/webhooks/$w1->{id}/deliveries", $buyer->{token}), 403, 'FORBIDDEN',
    'deliveries are for admins');

my $logs = join '', map { $s->log_text($_) } qw(error access out nginx nginx-error);
unlike($logs, qr/\Q@{[ substr($secret, 6, 20) ]}\E/, 'no secret in any log');
unlike($logs, qr/127\.0\.0\.1:\d+\/hook/, 'no receiver URL in any log');
events_quiet($s);
audit_ok($s);
$s->stop;
done_testing;
