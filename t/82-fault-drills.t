#!/usr/bin/perl
# Fault drills under load. Each drill boots its own stack, runs forked
# clients (orders and charges, every one with an Idempotency-Key so its
# outcome can be checked afterwards), breaks something on purpose, and
# checks what the clients saw, what the database holds and the audit.
#
#   1 kill -9 workers       5 SIGHUP + max_requests recycling
#   2 Redis down 5 s        6 nginx reloads
#   3 MariaDB down 5 s      7 slow and half-sent clients
#   4 lock leases expiring under a stock race
#
# Each drill prints one line:  # drill N name: sent=.. ok=.. 4xx=.. 502=.. 503=.. other=.. audit=clean
# With JANGTEO_DRILL_REPORT=FILE the lines are also appended to FILE.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use List::Util qw(shuffle sum0);
use Time::HiRes qw(time sleep);

use Jangteo::Client qw(test_stack login http_client do_request concurrent bearer);
use Jangteo::Load qw(
    load_start load_wait load_run load_stop load_running tally
    make_buyers make_product audit_ok uniq_key slow_clients_open slow_clients_step slow_clients_close half_body_client
);

my $JSON = JSON::PP->new->utf8->canonical;
my %SHIP = (recipient => '부하 수령인', phone => '010-3333-4444', zipCode => '04524', address => '서울 중구 세종대로 110');
my @ONLY = split /,/, ($ENV{JANGTEO_DRILLS} // '1,2,3,4,5,6,7');
my %ONLY = map { $_ => 1 } @ONLY;

# ---------------------------------------------------------------- shared pieces

sub stack {
    my (%conf) = @_;
    # no auction consumers: every child of the master is a worker
    return test_stack(demo => 1, workers => 4,
        conf => { auctions => { consumers => 0 }, server => { crash_guard_exits => 100000 }, %conf });
}

sub admin_token { login($_[0], 'admin@jangteo.test', 'jangteo-admin-1234') }

# $n buyers with money, $np products with plenty of stock.
sub fixtures {
    my ($s, $n, $np, %o) = @_;
    my $buyers = make_buyers($s, $n, balance => $o{balance} // 20_000_000, tag => 'drill');
    my $admin = admin_token($s);
    my @products = map { make_product($s, $admin, price => 1000, stock => $o{stock} // 1_000_000, name => "훈련 상품 $_") } 1 .. $np;
    return ($buyers, \@products);
}

# The mixed load: 70% one-unit orders, 30% charges, each with a fresh key.
# Client c acts as buyer c (mod buyers) on product c (mod products), so
# clients do not queue behind each other's locks.
sub mixed_load {
    my ($s, $buyers, $products, %o) = @_;
    return load_start($s,
        clients => $o{clients} // 6, duration => $o{duration} // 10, timeout => $o{timeout} // 30, keep_request => 1,
        pause => $o{pause} // 0.01, backoff_5xx => 0.25,
        next => sub {
            my ($c, $n) = @_;
            my $u = $buyers->[ $c % @$buyers ];
            my %h = (Authorization => "Bearer $u->{token}");
            if (rand() < 0.7) {
                my $p = $products->[ $c % @$products ];
                $h{'Idempotency-Key'} = uniq_key("o$c");
                return [ 'POST', '/api/v1/orders', \%h,
                    $JSON->encode({ items => [ { productId => 0 + $p, quantity => 1 } ], shipping => {%SHIP} }),
                    { kind => 'order', user => $u->{id} } ];
            }
            $h{'Idempotency-Key'} = uniq_key("c$c");
            return [ 'POST', "/api/v1/users/$u->{id}/charge", \%h, $JSON->encode({ amount => 1000 }),
                { kind => 'charge', user => $u->{id} } ];
        });
}

# Figures of a set of answers: sent, ok (2xx), 4xx, 502, 503, other.
sub figures {
    my ($recs) = @_;
    my %f = (sent => scalar @$recs, ok => 0, '4xx' => 0, 502 => 0, 503 => 0, other => 0);
    for my $r (@$recs) {
        my $st = $r->{status};
        if ($st >= 200 && $st < 300) { $f{ok}++ }
        elsif ($st == 502 || $st == 503) { $f{$st}++ }
        elsif ($st >= 400 && $st < 500) { $f{'4xx'}++ }
        else { $f{other}++ }
    }
    return \%f;
}

my @REPORT;
sub report {
    my ($n, $name, $f, $audit, $extra) = @_;
    my $line = sprintf('drill %d %s: sent=%d ok=%d 4xx=%d 502=%d 503=%d other=%d audit=%s%s',
        $n, $name, map({ $f->{$_} // 0 } qw(sent ok 4xx 502 503 other)), $audit, $extra ? " $extra" : '');
    diag($line);
    push @REPORT, { drill => $n, name => $name, %$f, audit => $audit, extra => $extra // '', line => $line };
}

sub status_codes {
    my ($recs) = @_;
    my %t;
    $t{ $_->{status} . ($_->{code} ? " $_->{code}" : '') }++ for @$recs;
    return join(', ', map { "$_: $t{$_}" } sort keys %t);
}

# Resends every request of @$recs (same method, path, body and key) until
# it is neither in flight nor unavailable, within $budget seconds. Returns
# key => final answer.
sub retry_keys {
    my ($s, $recs, $tokens, $budget) = @_;
    my $http = http_client(timeout => 30);
    my @queue = @$recs;
    my %final;
    my $deadline = time + ($budget // 40);
    while (@queue && time < $deadline) {
        my @again;
        for my $r (@queue) {
            my %h = (Authorization => "Bearer $tokens->{ $r->{user} }", 'Idempotency-Key' => $r->{key});
            my $res = do_request($http, $s, $r->{method}, $r->{path}, \%h, $r->{req_body});
            if ($res->{status} == 503 || ($res->{status} == 409 && ($res->{code} // '') eq 'IDEMPOTENCY_IN_FLIGHT')
                || $res->{status} == 502) {
                push @again, $r;
                next;
            }
            $final{ $r->{key} } = $res;
        }
        @queue = @again;
        sleep 0.5 if @queue;
    }
    $final{ $_->{key} } //= { status => 0, body => 'retries ran out of time' } for @queue;
    return \%final;
}

# The outcome check shared by drills 1-3. $unknown: statuses whose outcome
# the client cannot know (the request may or may not have been applied).
# Every key the client saw succeed exists once; every effect in the database
# belongs to a key that succeeded or is unknown; retrying the unknown keys
# applies each exactly once.
sub check_outcomes {
    my ($s, $label, $recs, $buyers, $unknown) = @_;
    my %tok = map { $_->{id} => $_->{token} } @$buyers;
    my $ids = join(',', map { $_->{id} } @$buyers);
    my %is_unknown = map { $_ => 1 } @$unknown;

    my %rows;    # key => [kind, ref]
    for my $row (@{ $s->sql("SELECT idem_key, ref_kind, ref_id FROM idempotency_keys WHERE user_id IN ($ids)") }) {
        $rows{ $row->[0] } = [ $row->[1], $row->[2] ];
    }
    my (%ok_keys, %unk_keys, @bad);
    for my $r (@$recs) {
        if ($r->{status} >= 200 && $r->{status} < 300) {
            $ok_keys{ $r->{key} } = $r;
            my $j = eval { $JSON->decode($r->{body} // '') } || {};
            my $ref = $r->{kind} eq 'order' ? $j->{orderId} : $j->{ledgerId};
            my $row = $rows{ $r->{key} };
            push @bad, "answered $r->{status} but no idempotency row: $r->{key}" unless $row;
            push @bad, "key $r->{key}: answered ref $ref, stored ref $row->[1]" if $row && defined $ref && $row->[1] != $ref;
        } elsif ($is_unknown{ $r->{status} }) {
            $unk_keys{ $r->{key} } = $r;
        } elsif (exists $rows{ $r->{key} }) {
            push @bad, "key $r->{key} was refused ($r->{status}) but has an effect";
        }
    }
    my %answered = (%ok_keys, %unk_keys);
    my @stray = grep { !$answered{$_} && !/^seed-/ } keys %rows;
    push @bad, 'effects with no answered key: ' . join(',', @stray[0 .. ($#stray > 4 ? 4 : $#stray)]) if @stray;
    # every order and charge of these users has its key row (nothing applied without one)
    my ($orders, $okeys) = @{ $s->sql("SELECT (SELECT COUNT(*) FROM orders WHERE user_id IN ($ids)),"
        . " (SELECT COUNT(*) FROM idempotency_keys WHERE user_id IN ($ids) AND ref_kind = 'ORDER')")->[0] };
    my ($charges, $ckeys) = @{ $s->sql("SELECT (SELECT COUNT(*) FROM point_ledger WHERE user_id IN ($ids) AND kind = 'CHARGE'),"
        . " (SELECT COUNT(*) FROM idempotency_keys WHERE user_id IN ($ids) AND ref_kind = 'CHARGE')")->[0] };
    is($orders, $okeys, "$label: one order per order key ($orders orders)");
    is($charges, $ckeys, "$label: one charge per charge key ($charges charges)");
    is(scalar(@bad), 0, "$label: every success is stored under its key, every stored effect was answered 2xx or unknown")
        or diag(join("\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]));

    # retry the unknown ones: each applies exactly once (or replays)
    my @unk = values %unk_keys;
    my $final = retry_keys($s, \@unk, \%tok, 40);
    my @not_ok = grep { !($final->{ $_->{key} }{status} >= 200 && $final->{ $_->{key} }{status} < 300) } @unk;
    is(scalar(@not_ok), 0, "$label: each of the " . scalar(@unk) . ' unknown outcomes, retried with its key, succeeds')
        or diag(join("\n", map { "$_->{key}: $final->{ $_->{key} }{status} " . substr($final->{ $_->{key} }{body} // '', 0, 200) } @not_ok[0 .. ($#not_ok > 9 ? 9 : $#not_ok)]));
    # and a sample of the successes replays the same answer without a new effect
    my @sample = (shuffle(values %ok_keys))[0 .. 19];
    @sample = grep { defined } @sample;
    my $replay = retry_keys($s, \@sample, \%tok, 20);
    my @diff = grep {
        my $a = eval { $JSON->decode($_->{body}) } || {};
        my $b = eval { $JSON->decode($replay->{ $_->{key} }{body} // '') } || {};
        ($a->{orderId} // $a->{ledgerId} // -1) != ($b->{orderId} // $b->{ledgerId} // -2)
    } @sample;
    is(scalar(@diff), 0, "$label: " . scalar(@sample) . ' successes retried replay the same order or ledger row')
        or diag(join("\n", map { "$_->{key}: first $_->{status} $_->{body}\n  retry $replay->{ $_->{key} }{status} $replay->{ $_->{key} }{body}" } @diff));
    my ($orders2, $okeys2) = @{ $s->sql("SELECT (SELECT COUNT(*) FROM orders WHERE user_id IN ($ids)),"
        . " (SELECT COUNT(*) FROM idempotency_keys WHERE user_id IN ($ids) AND ref_kind = 'ORDER')")->[0] };
    my ($charges2) = @{ $s->sql("SELECT COUNT(*) FROM point_ledger WHERE user_id IN ($ids) AND kind = 'CHARGE'")->[0] };
    my $new_orders = grep { $_->{kind} eq 'order' && $final->{ $_->{key} }{status} == 201 && !$final->{ $_->{key} }{headers}{'idempotent-replayed'} } @unk;
    ok($orders2 == $okeys2 && $orders2 - $orders <= scalar(grep { $_->{kind} eq 'order' } @unk),
        "$label: after the retries still one order per key ($orders -> $orders2)");
    ok($charges2 - $charges <= scalar(grep { $_->{kind} eq 'charge' } @unk), "$label: the retries added at most one charge per unknown key");
    return scalar @unk;
}

sub metric {
    my ($s, $name) = @_;
    my $m = $s->get('/metrics');
    my $v = 0;
    $v += $1 while $m->{body} =~ /^\Q$name\E(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/mg;
    return $v;
}

# ---------------------------------------------------------------- drill 1: kill -9 workers
if ($ONLY{1}) {
    my $s = stack(lock => { wait_ms => 4000, lease_ms => 2000 }, tx => { deadline_ms => 1500 });
    my ($buyers, $products) = fixtures($s, 6, 6);
    my $h = mixed_load($s, $buyers, $products, clients => 6, duration => 11);
    my ($kills, %killed) = (0);
    my $end = time + 10;
    sleep 0.5;
    while (time < $end) {
        my @w = $s->worker_pids;
        if (@w) {
            my $victim = $w[ int rand @w ];
            $kills++, $killed{$victim} = 1 if kill 'KILL', $victim;
        }
        sleep 0.2;
    }
    my $recs = load_wait($h);
    my @back = $s->wait_workers(count => 4, timeout => 20);
    is(scalar @back, 4, "drill 1: the master is back to 4 workers after $kills kills");
    ok(!grep({ $killed{$_} } @back), 'drill 1: none of them is a killed one');
    my $st = $s->get('/status?json')->{json} || {};
    is($st->{total_processes}, 4, 'drill 1: /status counts 4 processes');
    my $f = figures($recs);
    my @odd = grep { !($_->{status} >= 200 && $_->{status} < 300) && $_->{status} != 502 } @$recs;
    is(scalar(@odd), 0, 'drill 1: clients saw only successes and 502s') or diag(status_codes(\@odd));
    ok($f->{ok} > 0, "drill 1: $f->{ok} requests succeeded while workers died");
    my $unknown = check_outcomes($s, 'drill 1', $recs, $buyers, [502]);
    my $audit = audit_ok($s, 'drill 1: audit clean');
    report(1, 'kill-workers', $f, $audit, "kills=$kills retried=$unknown");
    $s->stop;
}

# ---------------------------------------------------------------- drill 2: Redis down for 5 s
if ($ONLY{2}) {
    my $s = stack();
    my ($buyers, $products) = fixtures($s, 6, 6);
    my $h = mixed_load($s, $buyers, $products, clients => 6, duration => 40);
    sleep 2.5;
    my $down = time;
    $s->stop_redis;
    sleep 5;
    my $up = time;
    $s->start_redis;
    sleep 3;
    load_stop($h);
    my $recs = load_wait($h);
    my @during = grep { $_->{t} > $down + 0.2 && $_->{t} + $_->{elapsed} < $up } @$recs;
    my $ok_during = grep { $_->{status} >= 200 && $_->{status} < 300 } @during;
    my ($o_during, $c_during) = (scalar(grep { $_->{kind} eq 'order' && $_->{status} == 201 } @during),
        scalar(grep { $_->{kind} eq 'charge' && $_->{status} == 200 } @during));
    ok($o_during > 0, "drill 2: $o_during orders succeeded while Redis was down");
    ok($c_during > 0, "drill 2: $c_during charges succeeded while Redis was down");
    my $f = figures($recs);
    my @five = grep { $_->{status} >= 500 } @$recs;
    is(scalar(@five), 0, 'drill 2: no 5xx with Redis down (writes go on without the lock)') or diag(status_codes(\@five));
    ok(metric($s, 'jangteo_redis_degraded_operations_total') > 0, 'drill 2: jangteo_redis_degraded_operations_total > 0');
    # every key answered during the outage, retried now that Redis is back
    # (its cache is empty): replayed from MariaDB, never applied twice
    my %tok = map { $_->{id} => $_->{token} } @$buyers;
    my @ok_during = (shuffle(grep { $_->{status} >= 200 && $_->{status} < 300 } @during))[0 .. 199];
    @ok_during = grep { defined } @ok_during;
    my $ids = join(',', map { $_->{id} } @$buyers);
    my $count = sub { $s->sql("SELECT (SELECT COUNT(*) FROM point_ledger WHERE user_id IN ($ids)), (SELECT COUNT(*) FROM orders WHERE user_id IN ($ids))")->[0] };
    my $before = join('/', @{ $count->() });
    my $rep = retry_keys($s, \@ok_during, \%tok, 30);
    my @notrep = grep { !($rep->{ $_->{key} }{headers}{'idempotent-replayed'} // '') && $rep->{ $_->{key} }{status} != $_->{status} } @ok_during;
    is(join('/', @{ $count->() }), $before, 'drill 2: ' . scalar(@ok_during) . ' keys answered during the outage, retried after it, add no ledger row or order');
    my @same = grep { $rep->{ $_->{key} }{status} == $_->{status} } @ok_during;
    is(scalar(@same), scalar(@ok_during), 'drill 2: and each retry answers as the original did');
    my $unknown = check_outcomes($s, 'drill 2', $recs, $buyers, [ 502, 503 ]);
    my $audit = audit_ok($s, 'drill 2: audit clean');
    report(2, 'redis-down-5s', $f, $audit, "ok_during_outage=$ok_during retried=" . scalar(@ok_during));
    $s->stop;
}

# ---------------------------------------------------------------- drill 3: MariaDB down for 5 s
if ($ONLY{3}) {
    my $s = stack();
    my ($buyers, $products) = fixtures($s, 6, 6);
    my $h = mixed_load($s, $buyers, $products, clients => 6, duration => 60, timeout => 30);
    sleep 2.5;
    my $down = time;
    $s->stop_mariadb;
    sleep 5;
    $s->start_mariadb;
    my $up = time;
    sleep 1;
    load_stop($h);
    my $recs = load_wait($h);
    my $f = figures($recs);
    my @d503 = grep { $_->{status} == 503 } @$recs;
    ok(@d503 > 0, 'drill 3: clients saw 503s while MariaDB was down (' . scalar(@d503) . ')');
    my @wrong = grep { ($_->{code} // '') ne 'DATABASE_UNAVAILABLE' || !defined $_->{retry_after} } @d503;
    is(scalar(@wrong), 0, 'drill 3: every 503 is DATABASE_UNAVAILABLE with Retry-After') or diag(status_codes(\@wrong));
    my @bad = grep { $_->{status} >= 500 && $_->{status} != 503 || $_->{status} == 599 } @$recs;
    is(scalar(@bad), 0, 'drill 3: no 500, no 502, no client timeout') or diag(status_codes(\@bad));
    my $slowest = 0;
    $slowest < $_->{elapsed} and $slowest = $_->{elapsed} for @$recs;
    note(sprintf('drill 3: slowest request %.2fs (client timeout 30s)', $slowest));
    # after the restart the same load succeeds: workers reconnect by themselves
    my $after = load_wait(mixed_load($s, $buyers, $products, clients => 6, duration => 3));
    my $fa = figures($after);
    is($fa->{ok}, $fa->{sent}, "drill 3: after the restart all $fa->{sent} requests succeed") or diag(status_codes($after));
    my $unknown = check_outcomes($s, 'drill 3', [ @$recs, @$after ], $buyers, [ 502, 503 ]);
    my $audit = audit_ok($s, 'drill 3: audit clean');
    report(3, 'mariadb-down-5s', $f, $audit, sprintf('after_restart=%d/%d retried=%d', $fa->{ok}, $fa->{sent}, $unknown));

    # A restart while the workers are idle: each worker pings a connection
    # unused for a second before its next statement (store/db.c), so none
    # fails its first request afterwards on the connection that died
    $s->stop_mariadb;
    $s->start_mariadb;
    sleep 1.5;
    my $me = $buyers->[0];
    my $idle = concurrent($s, [ map { [ 'GET', "/api/v1/users/$me->{id}", bearer($me->{token}) ] } 1 .. 12 ]);
    is(scalar(grep { $_->{status} == 200 } @$idle), 12,
        'drill 3: after a restart while idle, 12 requests at once over 4 workers: 12 x 200 (no 503)')
        or diag(join ' ', map { $_->{status} } @$idle);
    $s->stop;
}

# ---------------------------------------------------------------- drill 4: leases expire mid-transaction
if ($ONLY{4}) {
    my $s = stack(
        lock => { lease_ms => 5, wait_ms => 60000 },
        testing => { tx_delay_ms => 20 },
        server => { enable_test_routes => 'yes', crash_guard_exits => 100000 },
        tx => { max_attempts => 100, deadline_ms => 60000 },
    );
    my ($buyers, $products) = fixtures($s, 20, 1, balance => 100_000, stock => 100);
    my $p = $products->[0];
    my $recs = load_run($s, clients => 200, count => 1, duration => 120, timeout => 120, next => sub {
        my ($c) = @_;
        my $u = $buyers->[ $c % @$buyers ];
        return [ 'POST', '/api/v1/orders', { Authorization => "Bearer $u->{token}", 'Idempotency-Key' => uniq_key("l$c") },
            $JSON->encode({ items => [ { productId => 0 + $p, quantity => 1 } ], shipping => {%SHIP} }), { kind => 'order', user => $u->{id} } ];
    });
    my $f = figures($recs);
    my $paid = $s->sql("SELECT COUNT(*), COALESCE(SUM(i.quantity),0) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.product_id = $p AND o.status = 'PAID'")->[0];
    is($paid->[0], 100, 'drill 4: exactly 100 paid orders for stock 100');
    is($s->sql("SELECT stock FROM products WHERE id = $p")->[0][0], 0, 'drill 4: stock is 0, not below');
    is($f->{ok}, 100, 'drill 4: exactly 100 clients were told 201');
    my @rest = grep { $_->{status} != 201 } @$recs;
    is(scalar(grep { $_->{status} == 409 && ($_->{code} // '') eq 'OUT_OF_STOCK' } @rest), 100, 'drill 4: the other 100 were told OUT_OF_STOCK')
        or diag(status_codes(\@rest));
    # what the drill did: leases ran out under the test delay, and the
    # version fence turned the overlaps into conflict retries
    cmp_ok(metric($s, 'jangteo_lock_lease_expiries_total') // 0, '>', 0, 'drill 4: leases expired before release');
    cmp_ok(metric($s, 'jangteo_tx_conflict_retries_total') // 0, '>', 0, 'drill 4: the fence caused conflict retries');
    my $audit = audit_ok($s, 'drill 4: audit clean');
    report(4, 'lease-expiry', $f, $audit, "paid=$paid->[0]");
    $s->stop;
}

# ---------------------------------------------------------------- drill 5: SIGHUP + max_requests recycling
if ($ONLY{5}) {
    my $s = stack(server => { max_requests => 200, crash_guard_exits => 100000 });
    my ($buyers, $products) = fixtures($s, 4, 4);
    my $starts0 = ($s->get('/status?json')->{json} || {})->{worker_starts} // 0;
    # 60,000 rather than 20,000: at this rate 20,000 last only ~3 s, too few SIGHUPs
    my $ab = $s->ab_start(path => '/api/v1/products/1', n => 60000, c => 20, k => 1);
    my $w = mixed_load($s, $buyers, $products, clients => 2, duration => 120);
    my $hups = 0;
    my $deadline = time + 110;
    while ($s->ab_running($ab) && time < $deadline) {
        sleep 1;
        $s->signal_master('HUP');
        $hups++;
    }
    my $res = $s->ab_wait($ab, 10);
    load_stop($w);
    my $writes = load_wait($w);
    my $fw = figures($writes);
    is($res->{complete}, 60000, 'drill 5: ab completed 60000 requests');
    is($res->{failed}, 0, "drill 5: ab failed requests: 0 ($hups SIGHUPs)") or diag($res->{output});
    is($res->{non2xx}, 0, 'drill 5: ab non-2xx: 0');
    is($fw->{ok}, $fw->{sent}, "drill 5: all $fw->{sent} writes beside it succeeded") or diag(status_codes($writes));
    my @back = $s->wait_workers(count => 4, timeout => 20);
    is(scalar @back, 4, 'drill 5: 4 workers at the end');
    my $st = $s->get('/status?json')->{json} || {};
    my $starts = ($st->{worker_starts} // 0) - $starts0;
    ok($starts > 4, "drill 5: workers were replaced ($starts starts, $st->{recycles} recycles)");
    my $unknown = check_outcomes($s, 'drill 5', $writes, $buyers, [ 502, 503 ]);
    my $audit = audit_ok($s, 'drill 5: audit clean');
    my $f = { sent => $res->{complete} + $fw->{sent}, ok => $res->{complete} - $res->{failed} - $res->{non2xx} + $fw->{ok},
        '4xx' => $fw->{'4xx'}, 502 => $fw->{502}, 503 => $fw->{503}, other => $fw->{other} + $res->{failed} + $res->{non2xx} };
    report(5, 'sighup-recycle', $f, $audit, "hups=$hups worker_starts=$starts recycles=" . ($st->{recycles} // 0));
    $s->stop;
}

# ---------------------------------------------------------------- drill 6: nginx reloads
if ($ONLY{6}) {
    my $s = stack();
    my ($buyers, $products) = fixtures($s, 4, 4);
    # no -k: a keep-alive connection the old nginx worker closes between two
    # requests is the client's race, not a dropped request
    my $ab = $s->ab_start(path => '/api/v1/products/1', n => 40000, c => 20);
    my $w = mixed_load($s, $buyers, $products, clients => 2, duration => 120);
    my $reloads = 0;
    my $deadline = time + 110;
    sleep 0.5;
    while ($s->ab_running($ab) && time < $deadline && $reloads < 8) {
        $s->reload_nginx;
        $reloads++;
        sleep 1;
    }
    my $res = $s->ab_wait($ab, 100);
    load_stop($w);
    my $writes = load_wait($w);
    my $fw = figures($writes);
    is($res->{complete}, 40000, 'drill 6: ab completed 40000 requests');
    is($res->{failed}, 0, "drill 6: ab failed requests: 0 ($reloads reloads)") or diag($res->{output});
    is($res->{non2xx}, 0, 'drill 6: ab non-2xx: 0');
    is($fw->{ok}, $fw->{sent}, "drill 6: all $fw->{sent} writes beside it succeeded") or diag(status_codes($writes));
    my $audit = audit_ok($s, 'drill 6: audit clean');
    my $f = { sent => $res->{complete} + $fw->{sent}, ok => $res->{complete} - $res->{failed} - $res->{non2xx} + $fw->{ok},
        '4xx' => $fw->{'4xx'}, 502 => $fw->{502}, 503 => $fw->{503}, other => $fw->{other} + $res->{failed} + $res->{non2xx} };
    report(6, 'nginx-reload', $f, $audit, "reloads=$reloads");
    $s->stop;
}

# ---------------------------------------------------------------- drill 7: slow clients
if ($ONLY{7}) {
    my $s = stack();
    my ($buyers) = fixtures($s, 1, 1);
    my $half = half_body_client($s, "/api/v1/users/$buyers->[0]{id}/charge", $buyers->[0]{token});
    my $slow = slow_clients_open($s, 500);
    is(scalar @$slow, 500, 'drill 7: 500 slow clients connected');
    slow_clients_step($slow) for 1 .. 3;
    my $g = load_start($s, clients => 1, count => 50, duration => 60, timeout => 10,
        next => sub { [ 'GET', '/api/v1/products/' . (1 + $_[1] % 50), {}, undef, { kind => 'get' } ] });
    my $end = time + 4;
    my $open;
    while (time < $end || load_running($g)) {
        $open = slow_clients_step($slow);
        sleep 0.05;
        last if time > $end + 30;
    }
    my $recs = load_wait($g);
    my $f = figures($recs);
    is($f->{sent}, 50, 'drill 7: the normal client sent 50 GETs');
    is($f->{ok}, 50, 'drill 7: all 50 succeeded beside 500 slow clients and a half-sent body') or diag(status_codes($recs));
    ok($open > 450, "drill 7: the slow clients were still connected meanwhile ($open)");
    my $st = $s->get('/status?json')->{json} || {};
    ok(($st->{active_processes} // 99) <= 1, "drill 7: active workers while the slow clients hang: $st->{active_processes} (the /status request itself)");
    slow_clients_close($slow);
    close $half;
    sleep 0.5;
    $st = $s->get('/status?json')->{json} || {};
    ok(($st->{active_processes} // 99) <= 1, "drill 7: active workers after: $st->{active_processes}");
    ok(($st->{max_active_processes} // 99) < 4, "drill 7: the workers were never all busy (max active $st->{max_active_processes})");
    my $audit = audit_ok($s, 'drill 7: audit clean');
    $f->{sent} += 501;    # the slow ones and the half body, none answered
    report(7, 'slow-clients', $f, $audit, 'slow=500 half_body=1 max_active=' . ($st->{max_active_processes} // '?'));
    $s->stop;
}

if (my $file = $ENV{JANGTEO_DRILL_REPORT}) {
    open my $fh, '>>', $file or die "$file: $!";
    print {$fh} $JSON->encode($_), "\n" for @REPORT;
    close $fh;
}
done_testing;
