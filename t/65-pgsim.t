#!/usr/bin/perl
# The payment gateway simulator (scripts/jangteo-pgsim) and the C client
# (store/pg.c) against it, through the test-only route POST /test/pg: each
# call is made by a real worker, with its libcurl handle, the token every
# worker shares and the shared circuit breaker. Every figure is counted on
# the simulator's side too (GET /_sim/requests), so a retry, a cached
# token or a call the breaker held back is seen from both ends.
#
# The breaker runs with a small window here (20 calls, opens from 10 at
# 20 % failures, 3 s open, 3 trials) so that a test can walk it through
# every state; its state machine at Bootakhae's figures is t/unit/test_breaker.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX ();
use Encode ();
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack);

my $s = test_stack(
    pgsim => 1, workers => 2,
    conf => {
        server => { enable_test_routes => 'yes' },
        auctions => { consumers => 0 },
        payments => {
            connect_timeout_ms => 500, timeout_ms => 2000, deadline_ms => 8000, retry_interval_ms => 100,
            breaker_window => 20, breaker_min_calls => 10, breaker_failure_rate => 20, breaker_slow_rate => 100,
            breaker_slow_ms => 1000, breaker_open_ms => 3000, breaker_half_open_calls => 3,
        },
    },
);

# ---------------------------------------------------------------- helpers

sub pg {
    my (%a) = @_;
    my $r = $s->post_json('/test/pg', \%a);
    die "POST /test/pg: $r->{status} $r->{body}" unless $r->{status} == 200 && $r->{json};
    return $r->{json};
}
sub sim      { $s->pgsim(@_) }
sub counts   { my $c = sim('GET', '/_sim/requests'); delete $c->{_status}; $c }
sub fault    { my $r = sim('POST', '/_sim/faults', {@_}); die "fault: $r->{message}" unless $r->{_status} == 201; $r->{id} }
sub clear    { sim('DELETE', '/_sim/faults') }
sub delta    { my ($before, $ep) = @_; (counts()->{$ep} // 0) - ($before->{$ep} // 0) }
sub pay      { my ($mu, $card) = @_; sim('POST', "/pay/$mu", { cardCompany => $card // 'SHINHAN' }) }
sub sim_payment {
    my ($imp) = @_;
    my ($p) = grep { $_->{imp_uid} eq $imp } @{ sim('GET', '/_sim/payments')->{payments} };
    return $p;
}
sub metric {
    my ($name) = @_;
    my $text = $s->get('/metrics')->{body};
    my ($v) = $text =~ /^\Q$name\E (\d+)$/m;
    return $v;
}
sub breaker { $s->get('/status?json')->{json}{payment_gateway}{breaker} }

# 20 good calls (a lookup of nothing: 404 is an answer, not a failure):
# the breaker's window then holds no failure.
sub flush_window { pg(op => 'lookup', impUid => 'imp_none') for 1 .. 20 }

# ---------------------------------------------------------------- the simulator itself

subtest 'the simulator speaks PortOne V1' => sub {
    my $r = sim('GET', '/payments/imp_x');
    is($r->{_status}, 401, 'a lookup without a token: 401');
    is($r->{code}, -1, 'code -1');
    $r = sim('POST', '/users/getToken', { imp_key => 'jangteo-sim-key', imp_secret => 'wrong' });
    is($r->{_status}, 401, 'getToken with a wrong secret: 401');
    ok(!defined $r->{response}, 'no token');

    my $big = $s->_http->request('POST', $s->pgsim_url('/payments/prepare'),
        { headers => { 'Content-Type' => 'application/json' }, content => '{"x":"' . ('a' x 70000) . '"}' });
    is($big->{status}, 413, 'a body over 64 KiB: 413');
    my $page = $s->_http->get($s->pgsim_url('/pay/no-such-order'));
    is($page->{status}, 404, 'the pay page of an order never prepared: 404');
    is(pay('no-such-order')->{_status}, 404, 'paying it: 404');
};

# ---------------------------------------------------------------- token

subtest 'one token for every worker, until shortly before it expires' => sub {
    my $c0 = counts();
    my $t = pg(op => 'token');
    is($t->{rc}, 'ok', 'token: ok');
    is($t->{tokenFetches}, 1, 'the first call fetched it');
    my @r = map { pg(op => 'lookup', impUid => 'imp_nothing') } 1 .. 10;
    is(scalar(grep { $_->{rc} eq 'not_found' } @r), 10, '10 lookups of an unknown payment: not_found');
    is(scalar(grep { $_->{tokenFetches} == 0 && $_->{attempts} == 1 } @r), 10, 'none fetched a token, one attempt each');
    is(delta($c0, 'token'), 1, 'the simulator saw exactly 1 getToken for 11 calls over 2 workers');
    is(delta($c0, 'lookup'), 10, 'and 10 lookups');

    # a gateway that forgets its tokens: one 401, a new token, the call again
    sim('POST', '/_sim/tokens/expire');
    my $c1 = counts();
    my $x = pg(op => 'lookup', impUid => 'imp_nothing');
    is($x->{rc}, 'not_found', 'after the gateway expired the token: still answered');
    is($x->{tokenFetches}, 1, 'one new token');
    is($x->{attempts}, 3, 'three requests: the 401, getToken, the lookup again');
    is(delta($c1, 'lookup'), 2, 'the simulator saw 2 lookups');
    is(delta($c1, 'token'), 1, 'and 1 getToken');

    # a token that expires within the 60 s margin is not used: the client
    # asks again, and (PortOne's rule) is handed the same token extended by
    # 5 minutes, which it then keeps using
    sim('POST', '/_sim/config', { token_ttl => 30 });
    sim('POST', '/_sim/tokens/expire');
    my $c2 = counts();
    my @t = map { pg(op => 'lookup', impUid => 'imp_nothing') } 1 .. 3;
    is_deeply([ map { $_->{tokenFetches} } @t ], [ 1, 1, 0 ],
        'token fetches: 1 (after the 401: a 30 s token), 1 (too close to expiry: asked again), 0 (extended: kept)');
    is(scalar(grep { $_->{rc} eq 'not_found' } @t), 3, 'and the 3 calls are answered');
    is(delta($c2, 'token'), 2, 'the simulator saw 2 getToken');

    sim('POST', '/_sim/config', { token_ttl => 1800 });
    sim('POST', '/_sim/tokens/expire');
    pg(op => 'lookup', impUid => 'imp_nothing');
    my $c3 = counts();
    pg(op => 'lookup', impUid => 'imp_nothing') for 1 .. 3;
    is(delta($c3, 'token'), 0, 'with a 30-minute token again: no fetch for 3 calls');
};

# ---------------------------------------------------------------- retries

subtest 'retries: idempotent calls only, 3 attempts' => sub {
    flush_window();
    my $c0 = counts();
    fault(endpoint => 'lookup', status => 500, times => 2);
    my $r = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r->{rc}, 'not_found', '500 twice, then the answer: the call gets the answer');
    is($r->{attempts}, 3, 'in 3 attempts');
    is(delta($c0, 'lookup'), 3, 'the simulator saw 3 lookups');

    flush_window();
    fault(endpoint => 'lookup', status => 500);
    my $c1 = counts();
    my $retries = metric('jangteo_pg_retries_total');
    $r = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r->{rc}, 'unavailable', '500 every time: unavailable');
    is($r->{httpStatus}, 500, 'the last answer was a 500');
    is($r->{attempts}, 3, 'after 3 attempts, no more');
    is(delta($c1, 'lookup'), 3, 'the simulator saw 3');
    is(metric('jangteo_pg_retries_total') - $retries, 2, '/metrics counts 2 retries');
    clear();

    flush_window();
    fault(endpoint => 'prepare', status => 500);
    my $c2 = counts();
    $r = pg(op => 'prepare', merchantUid => 'm-500', amount => 1000);
    is($r->{rc}, 'unavailable', 'prepare with a 500: unavailable');
    is($r->{attempts}, 1, 'prepare is not idempotent: sent once');
    is(delta($c2, 'prepare'), 1, 'the simulator saw 1 prepare');
    clear();

    fault(endpoint => 'cancel', status => 500);
    my $c3 = counts();
    $r = pg(op => 'cancel', impUid => 'imp_000000000099', amount => 100, checksum => -1);
    is($r->{attempts}, 1, 'a cancel without checksum: sent once');
    flush_window();
    $r = pg(op => 'cancel', impUid => 'imp_000000000099', amount => 100, checksum => 100);
    is($r->{attempts}, 3, 'a cancel with checksum: retried, 3 attempts');
    is(delta($c3, 'cancel'), 4, 'the simulator saw 1 + 3 cancels');
    is(breaker(), 'closed', 'none of this opened the breaker (never 20 % of the last 20)');
    clear();
};

subtest 'a slow gateway: the call ends at its timeout' => sub {
    flush_window();
    fault(endpoint => 'lookup', slow_ms => 4000);
    my $c0 = counts();
    my $r = pg(op => 'lookup', impUid => 'imp_nothing');
    # answered in full the lookup would be not_found; unavailable with a
    # timeout means every attempt was cut at timeout_ms (2 s)
    is($r->{rc}, 'unavailable', 'answers 4 s late: unavailable');
    like($r->{message}, qr/timed out|timeout/i, 'because the attempt timed out');
    is($r->{attempts}, 3, 'each of the 3 attempts timed out');
    is(delta($c0, 'lookup'), 3, 'the simulator saw 3');
    clear();

    # a call slower than breaker_slow_ms (1 s) but inside the timeout (2 s)
    flush_window();
    my $slow = metric('jangteo_pg_slow_calls_total');
    fault(endpoint => 'lookup', slow_ms => 1100, times => 1);
    $r = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r->{rc}, 'not_found', 'answered after 1.1 s: the answer');
    is(metric('jangteo_pg_slow_calls_total') - $slow, 1, 'counted as 1 slow call');

    # the simulator answers others while it holds one back
    fault(endpoint => 'prepared', slow_ms => 5000, times => 1);
    my $c1 = counts();
    my $pid = fork() // die;
    if ($pid == 0) { $s->pgsim('GET', '/payments/prepare/x'); POSIX::_exit(0) }
    my $until = time + 4;
    sleep 0.02 while delta($c1, 'prepared') < 1 && time < $until;
    is(delta($c1, 'prepared'), 1, 'a request held back 5 s has arrived');
    my $h = sim('GET', '/payments/imp_nothing');
    is($h->{_status}, 401, 'meanwhile the simulator answers another (401: no token)');
    ok(waitpid($pid, POSIX::WNOHANG()) == 0, 'while the first is still waiting');
    waitpid($pid, 0);
    clear();
};

subtest 'a reset connection and a dropped answer' => sub {
    flush_window();
    fault(endpoint => 'lookup', reset => 1);
    my $c0 = counts();
    my $r = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r->{rc}, 'unavailable', 'connection reset: unavailable');
    is($r->{httpStatus}, 0, 'no HTTP answer');
    is($r->{attempts}, 3, 'retried: 3 attempts');
    is(delta($c0, 'lookup'), 3, 'the simulator saw 3');
    clear();

    flush_window();
    fault(endpoint => 'prepare', merchant_uid => 'm-drop', drop_answer => 1);
    $r = pg(op => 'prepare', merchantUid => 'm-drop', amount => 7000);
    is($r->{rc}, 'unavailable', 'prepare whose answer is dropped: unavailable (unknown outcome)');
    is($r->{attempts}, 1, 'sent once');
    is(sim('GET', '/_sim/payments')->{prepared}{'m-drop'}, 7000, 'but the gateway did register it');
    clear();
    $r = pg(op => 'prepared', merchantUid => 'm-drop');
    ok($r->{rc} eq 'ok' && $r->{amount} == 7000, 'and a prepared lookup finds the 7,000 won');
    $r = pg(op => 'prepare', merchantUid => 'm-drop', amount => 7000);
    is($r->{rc}, 'refused', 'preparing it again: refused');
    is($r->{message}, '이미 등록된 merchant_uid입니다.', 'with the gateway\'s message');
};

# ---------------------------------------------------------------- payments

my %imp;
subtest 'pay, look up, lose, a tampered amount, cancel once' => sub {
    flush_window();
    for ([ 'm-1', 15000 ], [ 'm-2', 10000 ], [ 'm-3', 10000 ], [ 'm-4', 5000 ]) {
        my $r = pg(op => 'prepare', merchantUid => $_->[0], amount => $_->[1]);
        is($r->{rc}, 'ok', "prepare $_->[0] for $_->[1]");
    }
    my $page = $s->_http->get($s->pgsim_url('/pay/m-1'));
    is($page->{status}, 200, 'the pay page');
    like($page->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, 'HTML in UTF-8');
    $page->{content} = Encode::decode_utf8($page->{content});
    like($page->{content}, qr/카드 결제/, 'in Korean');
    like($page->{content}, qr/15,000원/, 'with the amount');
    like($page->{content}, qr/lang="en"/, 'and an English line');
    unlike($page->{content}, qr/(?:src|href)=["']?(?:https?:)?\/\//, 'loading nothing from another host');

    my $paid = pay('m-1', 'NH');
    is($paid->{status}, 'paid', 'POST /pay/m-1: paid');
    is($paid->{amount}, 15000, 'the prepared amount');
    like($paid->{imp_uid}, qr/^imp_\d{12}$/, 'an imp_uid');
    $imp{'m-1'} = $paid->{imp_uid};
    is(pay('m-1')->{_status}, 409, 'paying it twice: 409');
    is(pay('m-2', 'VISA')->{_status}, 400, 'an unknown card company: 400');

    my $r = pg(op => 'lookup', impUid => $imp{'m-1'});
    is($r->{rc}, 'ok', 'the client finds it');
    is_deeply([ @{ $r->{payment} }{qw(merchantUid amount status cardName currency)} ],
        [ 'm-1', 15000, 'paid', 'NH농협카드', 'KRW' ], 'merchant uid, amount, status, card, currency');
    ok($r->{payment}{paidAt} > 0, 'paid_at');

    fault(endpoint => 'lookup', merchant_uid => 'm-1', lose => 1);
    is(pg(op => 'lookup', impUid => $imp{'m-1'})->{rc}, 'not_found', 'a lost payment: not_found');
    clear();
    is(pg(op => 'lookup', impUid => $imp{'m-1'})->{rc}, 'ok', 'found again once the fault is cleared');

    fault(merchant_uid => 'm-2', amount_delta => -1);
    $paid = pay('m-2', 'KAKAOBANK');
    is($paid->{amount}, 9999, 'a tampered payment: 9,999 paid for 10,000 prepared');
    $imp{'m-2'} = $paid->{imp_uid};
    is(pg(op => 'lookup', impUid => $imp{'m-2'})->{payment}{amount}, 9999, 'and the lookup reports 9,999');
    clear();

    # a full cancel, then the same cancel again
    $r = pg(op => 'cancel', impUid => $imp{'m-1'}, amount => 15000, checksum => 15000, reason => '재고 부족');
    is($r->{rc}, 'ok', 'cancel 15,000 with checksum 15,000: ok');
    is($r->{payment}{status}, 'cancelled', 'cancelled');
    is($r->{payment}{cancelAmount}, 15000, 'cancel_amount 15,000');
    $r = pg(op => 'cancel', impUid => $imp{'m-1'}, amount => 15000, checksum => 15000, reason => '재고 부족');
    is($r->{rc}, 'refused', 'the same cancel again: refused');
    is($r->{message}, '이미 전액취소된 주문입니다.', 'already fully cancelled');
    my $p = sim_payment($imp{'m-1'});
    is($p->{cancel_amount}, 15000, 'the gateway refunded 15,000 once');
    is(scalar @{ $p->{cancel_history} }, 1, 'one refund in its history');

    # partial refunds: checksum is the refundable amount
    $imp{'m-3'} = pay('m-3')->{imp_uid};
    $r = pg(op => 'cancel', impUid => $imp{'m-3'}, amount => 4000, checksum => 10000);
    ok($r->{rc} eq 'ok' && $r->{payment}{status} eq 'paid' && $r->{payment}{cancelAmount} == 4000,
        'refund 4,000 of 10,000: still paid, 4,000 cancelled');
    $r = pg(op => 'cancel', impUid => $imp{'m-3'}, amount => 4000, checksum => 10000);
    is($r->{rc}, 'refused', 'the same refund again (checksum 10,000, refundable 6,000): refused');
    $r = pg(op => 'cancel', impUid => $imp{'m-3'}, amount => 6000, checksum => 6000);
    ok($r->{rc} eq 'ok' && $r->{payment}{status} eq 'cancelled', 'the other 6,000: cancelled');

    # a cancel whose answer is lost is retried, and the checksum stops the second refund
    $imp{'m-4'} = pay('m-4')->{imp_uid};
    fault(endpoint => 'cancel', merchant_uid => 'm-4', drop_answer => 1, times => 1);
    my $c0 = counts();
    $r = pg(op => 'cancel', impUid => $imp{'m-4'}, amount => 5000, checksum => 5000);
    is($r->{attempts}, 2, 'the dropped answer is retried once');
    is($r->{rc}, 'refused', 'and the retry is refused: nothing left to refund');
    is(delta($c0, 'cancel'), 2, 'the simulator saw 2 cancels');
    $p = sim_payment($imp{'m-4'});
    ok($p->{status} eq 'cancelled' && $p->{cancel_amount} == 5000 && @{ $p->{cancel_history} } == 1,
        'refunded exactly once: 5,000, one history entry');
    clear();
};

subtest 'the webhook goes out after a payment' => sub {
    pg(op => 'prepare', merchantUid => 'm-hook', amount => 3000);
    my $imp = pay('m-hook')->{imp_uid};
    my $seen = 0;
    for (1 .. 100) {
        last if ($seen = $s->log_text('nginx') =~ m{"POST /api/v1/payments/webhook HTTP/1\.1"});
        sleep 0.05;
    }
    ok($seen, 'the simulator POSTed to the configured webhook URL (this stack\'s nginx)');
    is(sim('GET', '/_sim/payments')->{webhooks}{started}, 5, 'one webhook per payment: 5 so far');
    ok($imp, 'paid');
};

# ---------------------------------------------------------------- the breaker

subtest 'the circuit breaker opens, refuses without calling, half-opens and closes' => sub {
    flush_window();
    is(breaker(), 'closed', 'closed to begin with');
    my %tr = map { $_ => metric(qq{jangteo_pg_breaker_transitions_total{to="$_"}}) } qw(open half_open closed);
    fault(status => 500);
    my $c0 = counts();
    my $r1 = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r1->{attempts}, 3, 'first lookup: 3 failed attempts (3 failures of the last 20)');
    my $r2 = pg(op => 'lookup', impUid => 'imp_nothing');
    is($r2->{attempts}, 1, 'second: the 4th failure (20 % of 20) opens it, the retry is not sent');
    ok($r2->{rejected}, 'the retry was refused by the breaker');
    is(delta($c0, 'lookup'), 4, 'the simulator saw exactly 4 lookups');
    is(breaker(), 'open', '/status: open');
    like($s->get('/metrics')->{body}, qr/^jangteo_pg_breaker_state\{state="open"\} 1$/m, '/metrics: open');

    my $c1 = counts();
    my $rej = metric('jangteo_pg_calls_total{outcome="rejected"}');
    my @r = map { pg(op => 'lookup', impUid => 'imp_nothing') } 1 .. 8;
    is(scalar(grep { $_->{rc} eq 'unavailable' && $_->{rejected} && $_->{attempts} == 0 } @r), 8,
        '8 calls while open: all unavailable at once, none sent');
    ok((grep { $_->{retryAfterMs} > 0 && $_->{retryAfterMs} <= 3000 } @r) == 8, 'each told when to come back (<= 3 s)');
    is(counts()->{total} - $c1->{total}, 0, 'the simulator saw no request at all meanwhile');
    is(metric('jangteo_pg_calls_total{outcome="rejected"}') - $rej, 8, '/metrics: 8 rejected');

    # the gateway recovers; after open_ms the breaker lets 3 trials through
    clear();
    my $first;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $r = pg(op => 'lookup', impUid => 'imp_nothing');
        if (!$r->{rejected}) { $first = $r; last }
        sleep 0.1;
    }
    ok($first && $first->{rc} eq 'not_found', 'after open_ms a call goes through (a trial) and is answered');
    is(breaker(), 'half_open', 'half-open');
    pg(op => 'lookup', impUid => 'imp_nothing');
    is(breaker(), 'half_open', 'after 2 good trials of 3: still half-open');
    pg(op => 'lookup', impUid => 'imp_nothing');
    is(breaker(), 'closed', 'after the 3rd: closed');
    is(metric(qq{jangteo_pg_breaker_transitions_total{to="$_->[0]"}}) - $tr{ $_->[0] }, $_->[1],
        "transitions to $_->[0]: $_->[1]") for [ open => 1 ], [ half_open => 1 ], [ closed => 1 ];
    my $st = $s->get('/status?json')->{json}{payment_gateway};
    is($st->{window_calls}, 0, 'the new window starts empty');

    # failing again: 10 calls (min_calls), all failed, open it; after
    # open_ms one lookup gets the 3 trials (its retries) and all fail
    fault(status => 500);
    for (1 .. 10) { last if breaker() eq 'open'; pg(op => 'lookup', impUid => 'imp_nothing') }
    is(breaker(), 'open', 'failing again: open (10 calls, 100 % failed)');
    %tr = map { $_ => metric(qq{jangteo_pg_breaker_transitions_total{to="$_"}}) } qw(open half_open closed);
    $deadline = time + 10;
    my $trial;
    while (time < $deadline) {
        my $r = pg(op => 'lookup', impUid => 'imp_nothing');
        if ($r->{attempts} > 0) { $trial = $r; last }
        sleep 0.1;
    }
    ok($trial && $trial->{rc} eq 'unavailable' && $trial->{attempts} == 3, 'the trials go out and fail (3 attempts)');
    is(breaker(), 'open', 'three failed trials: open again');
    is(metric(qq{jangteo_pg_breaker_transitions_total{to="$_->[0]"}}) - $tr{ $_->[0] }, $_->[1],
        "then transitions to $_->[0]: $_->[1]") for [ open => 1 ], [ half_open => 1 ], [ closed => 0 ];
    clear();
    # and closed again for what follows
    $deadline = time + 10;
    while (time < $deadline && breaker() ne 'closed') {
        pg(op => 'lookup', impUid => 'imp_nothing');
        sleep 0.1;
    }
    is(breaker(), 'closed', 'closed again once the gateway answers');
};

# ---------------------------------------------------------------- restarts

subtest 'the simulator keeps its state across a restart, even a kill -9' => sub {
    my $before = sim('GET', '/_sim/payments');
    delete $before->{_status};
    delete $before->{webhooks};
    is(scalar @{ $before->{payments} }, 5, '5 payments before');

    $s->stop_pgsim;
    my $r = pg(op => 'lookup', impUid => $imp{'m-1'});
    is($r->{rc}, 'unavailable', 'gateway stopped: unavailable');
    like($r->{message}, qr/connect/i, 'because nothing accepts the connection');
    $s->start_pgsim;
    my $after = sim('GET', '/_sim/payments');
    delete @{$after}{qw(_status webhooks)};
    is_deeply($after, $before, 'after a restart: the same payments and prepared amounts');

    kill 'KILL', $s->pgsim_pid;
    sleep 0.05 while $s->_alive('pgsim');
    $s->start_pgsim;
    $after = sim('GET', '/_sim/payments');
    delete @{$after}{qw(_status webhooks)};
    is_deeply($after, $before, 'after kill -9: the same again');
    $r = pg(op => 'lookup', impUid => $imp{'m-2'});
    is($r->{rc}, 'ok', 'the client finds a payment made before both restarts');
    is($r->{tokenFetches}, 0, 'with the token issued before them (the gateway kept it too)');
    is($r->{payment}{amount}, 9999, 'amount 9,999');

    # the file is a journal: a change appends its records (it does not
    # rewrite the whole state), and a record cut short by a kill -9 (never
    # answered) is dropped when the file is read back
    my $state = $s->dir . '/pgsim-state';
    my $lines = sub { open my $fh, '<', $state or die "$state: $!"; my @l = <$fh>; scalar @l };
    my $n0 = $lines->();
    is(sim('POST', '/payments/prepare', { merchant_uid => 'journal-1', amount => 5_000 })->{_status}, 401,
        '(the control client has no token: the prepare is refused, nothing written)');
    pg(op => 'prepare', merchantUid => 'journal-1', amount => 5_000);
    is($lines->() - $n0, 1, 'a prepare appends exactly one record');
    $s->stop_pgsim;
    open my $fh, '>>', $state or die "$state: $!";
    print $fh '{"k":"payment","imp_uid":"imp_torn","merch';
    close $fh;
    $s->start_pgsim;
    my $j = sim('GET', '/_sim/payments');
    is($j->{prepared}{'journal-1'}, 5_000, 'restarted over a torn last record: the prepare before it is kept');
    ok(!grep({ $_->{imp_uid} eq 'imp_torn' } @{ $j->{payments} }), '... and the torn record is dropped');
    is(scalar @{ $j->{payments} }, 5, '... the 5 payments are all there');
};

subtest 'no secret in any log' => sub {
    my $secret = do { local @ARGV = ($s->dir . '/secrets/pg_imp_secret'); my $l = <>; chomp $l; $l };
    ok(length $secret >= 32, 'the secret is there to look for');
    pg(op => 'token');
    my @tokens = $s->log_text('pgsim-state') =~ /"token":"([0-9a-f]{40})"/g;
    ok(@tokens >= 1, scalar(@tokens) . ' access tokens issued, to look for');
    for my $log (qw(error access out nginx nginx-error pgsim)) {
        my $t = $s->log_text($log);
        ok(index($t, $secret) < 0, "the imp_secret is not in $log");
        is(scalar(grep { index($t, $_) >= 0 } @tokens), 0, "no access token is in $log");
    }
};

done_testing();
