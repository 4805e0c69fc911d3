#!/usr/bin/perl
# Several app hosts on Galera and Sentinel, proven in network namespaces
# (issue 19). Jangteo::Cluster builds three app hosts (jangteod over TCP
# behind one nginx upstream), three Galera nodes, a Redis primary and
# replica and three Sentinels, each host a namespace on 10.77.0.0/24, and
# tears all of it down even on failure. Then, with bounded loads:
#   1. the rush: 300 buyers, stock 100, across the three hosts
#   2. kill -9 of one app host's whole tree mid-rush
#   3. kill -9 of one Galera node mid-rush, and its rejoin by IST
#   4. kill -9 of the Redis primary mid-rush: Sentinel promotes, the app follows
#   5. throughput for 1, 2 and 3 app hosts with the CPU of every component
# Every rush request carries an Idempotency-Key; an answer that failed
# because its host, node or Redis died is retried with the same key, and
# the figures after it are exact.
use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time sleep);

use Jangteo::Cluster;
use Jangteo::Client qw(bearer concurrent do_request http_client);
use Jangteo::Orders qw(make_users set_balance order_body tally order_invariants_ok);

my $why = Jangteo::Cluster::unavailable();
plan skip_all => "t/95 needs network namespaces: $why" if $why;

my $JSON = JSON::PP->new->utf8->canonical;
my $t0 = time;
my $c = Jangteo::Cluster->new(
    conf => {
        # waits long enough that only business outcomes or a dead
        # component end a request; a lease shorter than the wait so a lock
        # of a killed host lapses while its waiters still wait
        lock => { wait_ms => 20000, lease_ms => 5000 },
        tx   => { max_attempts => 100, deadline_ms => 4000 },
    },
);
diag(sprintf('cluster up in %.1f s', time - $t0));

my $APP2 = $c->addr('app2') . ':9000';

sub show { my ($t) = @_; join(', ', map { "$_ => $t->{$_}" } sort keys %$t) }

# ---------------------------------------------------------------- the topology
is($c->db_status($_, 'wsrep_cluster_size'), 3, "db$_: a Galera cluster of 3") for 1 .. 3;
is($c->sentinel_primary, $c->addr('redis1') . ':6379', 'the three Sentinels name redis1 the primary');
is($c->get('/healthz')->{status}, 200, 'nginx in the edge namespace reaches the app hosts');

# A peer outside fastcgi_allow (a database host) is closed before a byte is read.
{
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my $got = 'connect failed';
        eval {
            Jangteo::Stack::enter_netns($c->ns('db1'));
            my $s = IO::Socket::INET->new(PeerAddr => $c->addr('app1'), PeerPort => 9000, Proto => 'tcp', Timeout => 5)
                or die "connect: $!";
            syswrite($s, pack('CCnnCC', 1, 1, 1, 8, 0, 0) . pack('nCx5', 1, 0));
            my $sel = IO::Select->new($s);
            my $buf = '';
            $got = 'open after 10 s';
            if ($sel->can_read(10)) {
                my $n = sysread($s, $buf, 4096);
                $got = defined $n && $n == 0 ? 'closed, 0 bytes' : "read $n bytes";
            }
        };
        syswrite($wr, $got);    # _exit flushes nothing
        _exit(0);
    }
    close $wr;
    my $got = do { local $/; <$rd> };
    waitpid($pid, 0);
    is($got, 'closed, 0 bytes', 'a FastCGI connection from db1 (10.77.0.21) to app1:9000 is closed unanswered');
}

# ---------------------------------------------------------------- buyers
my $users = make_users($c, 300, tag => 'c95', parallel => 6);
set_balance($c, [ map { $_->{id} } @$users ], 1_000_000);
is(scalar(@$users), 300, '300 buyers registered through the three hosts');

my $SEQ = 0;
sub order_reqs {
    my ($product, $tag) = @_;
    return [ map {
        my $key = "c95-$tag-$_->{id}";
        [ 'POST', '/api/v1/orders',
          { %{ bearer($_->{token}) }, 'Idempotency-Key' => $key, 'X-Request-Id' => "$key-1" },
          order_body([ [ $product, 1 ] ]) ]
    } @$users ];
}

# Runs the rush; $at (answers received) => $act, once. Then every answer
# that is not a business outcome (201, or a 409 other than
# IDEMPOTENCY_IN_FLIGHT) is sent again with its key (and a new request id),
# as a buyer's app would: a request that died with its host leaves its
# in-flight marker until the marker's TTL (lock wait + transaction deadline
# + lease), and the app retries after Retry-After until the key settles.
# Rounds go on until every answer is an outcome, for at most 90 s.
# Returns (first answers, final answers, retried count).
sub settled { my ($a) = @_; return $a->{status} == 201 || ($a->{status} == 409 && ($a->{json}{code} // '') ne 'IDEMPOTENCY_IN_FLIGHT') }
sub rush {
    my ($reqs, %o) = @_;
    my $acted = 0;
    my $first = concurrent($c, $reqs, timeout => 180, on_answer => sub {
        my ($n) = @_;
        if ($o{act} && !$acted && $n >= $o{at}) { $acted = 1; $o{act}->() }
    });
    my @final = @$first;
    my $retried = 0;
    my $until = time + 90;
    for (my $round = 1; time < $until; $round++) {
        my @again = grep { !settled($final[$_]) } 0 .. $#final;
        last unless @again;
        $retried += @again if $round == 1;
        sleep 1;
        my @r = map { my $q = $reqs->[$_]; my %h = %{ $q->[2] }; $h{'X-Request-Id'} =~ s/-\d+$/-r$round/;
                      [ $q->[0], $q->[1], \%h, $q->[3] ] } @again;
        my $res = concurrent($c, \@r, timeout => 120);
        $final[ $again[$_] ] = $res->[$_] for 0 .. $#again;
    }
    return ($first, \@final, $retried);
}

# The exact figures of a rush on $product (stock 100) on Galera node $j.
sub rush_figures_ok {
    my ($j, $product, $final, $name) = @_;
    is(scalar_sql_on($j, "SELECT COUNT(DISTINCT o.id) FROM orders o JOIN order_items i ON i.order_id = o.id"
        . " WHERE i.product_id = $product AND o.status = 'PAID'"), 100, "$name: db$j: exactly 100 PAID orders");
    is(scalar_sql_on($j, "SELECT stock FROM products WHERE id = $product"), 0, "$name: db$j: stock 0");
    is(scalar_sql_on($j, "SELECT COUNT(*) FROM (SELECT o.user_id FROM orders o JOIN order_items i ON i.order_id = o.id"
        . " WHERE i.product_id = $product GROUP BY o.user_id HAVING COUNT(*) > 1) x"), 0,
        "$name: db$j: no buyer has two orders of it (each key applied at most once)");
    is(scalar_sql_on($j, "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)"
        . " OR NOT EXISTS (SELECT 1 FROM point_ledger l WHERE l.ref_id = o.id AND l.kind = 'ORDER_PAYMENT')"), 0,
        "$name: db$j: no partial order (every order has its line and its payment)");
    is(scalar_sql_on($j, 'SELECT COUNT(*) FROM users u LEFT JOIN (SELECT user_id, SUM(delta) s FROM point_ledger GROUP BY user_id) l'
        . ' ON l.user_id = u.id WHERE u.balance <> COALESCE(l.s, 0) OR u.balance < 0'), 0,
        "$name: db$j: every balance = its ledger sum");
    if ($final) {
        my %ids = map { $_->{json}{orderId} => 1 } grep { $_->{status} == 201 } @$final;
        is(scalar(keys %ids), 100, "$name: 100 distinct orders answered 201");
    }
}

# A product as the catalog makes one: with its INITIAL stock movement, which
# the audit's stock equation starts from.
sub add_product {
    my ($c, $name, $price, $stock) = @_;
    return $c->sql("INSERT INTO products (name, price, stock) VALUES ('$name', $price, $stock);"
        . " SET \@p = LAST_INSERT_ID();"
        . " INSERT INTO stock_movements (product_id, option_id, delta, kind) VALUES (\@p, NULL, $stock, 'INITIAL');"
        . " SELECT \@p")->[0][0];
}

# Galera's certification conflicts so far, on all three nodes.
sub cert_failures {
    my $n = 0;
    $n += $c->db_status($_, 'wsrep_local_cert_failures') // 0 for 1 .. 3;
    return $n;
}

sub cpu_text {
    my ($before, $after) = @_;
    my %d = map { ($_ => $after->{$_} - ($before->{$_} // 0)) } keys %$after;
    return join(' ', map { "$_=$d{$_}" } grep { $d{$_} } sort keys %d);
}

sub scalar_sql_on { my ($j, $q) = @_; my $r = $c->sql_on($j, $q); return @$r ? $r->[0][0] : undef }

sub audit_ok {
    my ($j, $name) = @_;
    my ($rc, $out) = $c->admin_on($j, 'audit');
    is($rc, 0, "$name: audit clean on db$j") or diag($out);
}

# request ids => upstream address, from nginx's access log
sub upstream_of {
    my %u;
    for (split /\n/, $c->log_text('nginx')) {
        $u{$1} = $2 if /rid=(\S+) ua=(\S+)/;
    }
    return \%u;
}

# ---------------------------------------------------------------- 1. the rush
{
    my $p = add_product($c, '클러스터 러시', 1_000, 100);
    my ($first, $final, $retried) = rush(order_reqs($p, 'rush'));
    my $t = tally($first);
    is(show($t), '201 => 100, 409 OUT_OF_STOCK => 200', '1: 300 buyers on stock 100: 100 PAID, 200 OUT_OF_STOCK, nothing else')
        or diag(show($t));
    rush_figures_ok($_, $p, $final, '1') for 1 .. 3;
    for my $k (1 .. 3) {
        my $n = () = $c->app_log($k, 'access') =~ m{ POST /api/v1/orders 201 }g;
        ok($n > 0, "1: app$k committed orders of the rush ($n)");
    }
    order_invariants_ok($c);
    audit_ok($_, '1') for 1 .. 3;
}

# ---------------------------------------------------------------- 2. an app host dies
{
    my $p = add_product($c, '클러스터 호스트 장애', 1_000, 100);
    my ($first, $final, $retried) = rush(order_reqs($p, 'host'), at => 40, act => sub { $c->kill_app_host(2) });
    my $t = tally($first);
    my @failed = grep { $first->[$_]{status} != 201 && $first->[$_]{status} != 409 } 0 .. $#$first;
    diag("2: first answers: " . show($t) . "; retried with their keys: $retried");
    my $ups = upstream_of();
    my $reqs = order_reqs($p, 'host');
    my @elsewhere = grep { ($ups->{ $reqs->[$_][2]{'X-Request-Id'} } // '') ne $APP2 } @failed;
    is(scalar(@elsewhere), 0, '2: every failed request was in flight on app2, the killed host')
        or diag(join("\n", map { "$first->[$_]{status} $reqs->[$_][2]{'X-Request-Id'} " . ($ups->{ $reqs->[$_][2]{'X-Request-Id'} } // '?') } @elsewhere));
    my $sent_to_app2 = grep { ($ups->{ $_->[2]{'X-Request-Id'} } // '') =~ /^\Q$APP2\E/ } @$reqs;
    ok(@failed > 0 && @failed <= $sent_to_app2,
        "2: the failures (" . scalar(@failed) . ") are among the $sent_to_app2 requests nginx had handed to app2");
    is(show(tally($final)), '201 => 100, 409 OUT_OF_STOCK => 200', '2: after keyed retries: 100 PAID, 200 OUT_OF_STOCK');
    rush_figures_ok($_, $p, $final, '2') for 1 .. 3;
    audit_ok($_, '2') for 1 .. 3;
    $c->start_app_host(2);
}

# ---------------------------------------------------------------- 3. a Galera node dies
{
    my $p = add_product($c, '클러스터 노드 장애', 1_000, 100);
    my ($first, $final, $retried) = rush(order_reqs($p, 'node'), at => 40, act => sub { $c->kill_db(3) });
    diag("3: first answers: " . show(tally($first)) . "; retried with their keys: $retried");
    my @bad = grep { $_->{status} != 201 && $_->{status} != 409 && $_->{status} != 503 } @$first;
    is(scalar(@bad), 0, '3: a request that failed with the node is a 503, never a 500') or diag(show(tally(\@bad)));
    is(show(tally($final)), '201 => 100, 409 OUT_OF_STOCK => 200', '3: after keyed retries: 100 PAID, 200 OUT_OF_STOCK');
    rush_figures_ok($_, $p, $final, '3') for 1, 2;
    my $mark = -s $c->db_log(3);
    $c->start_db(3, rejoin => 1);
    my $rejoin = substr(Jangteo::Stack::_slurp($c->db_log(3)), $mark);
    my ($ist) = $rejoin =~ /Receiving IST: (\d+) writesets/;
    ok($ist && $rejoin =~ /IST received/, "3: db3 rejoined by IST (" . ($ist // 0) . " write sets it missed)");
    # Galera runs IST through its SST hook too: the rsync script starts, and
    # then says it completed an IST, not an SST
    ok($rejoin =~ /rsync IST completed on joiner/ && $rejoin !~ /rsync SST completed on joiner/,
        '3: with no full state transfer (rsync did an IST)');
    is($c->db_status($_, 'wsrep_cluster_size'), 3, "3: db$_ sees the cluster of 3 again") for 1 .. 3;
    rush_figures_ok(3, $p, undef, '3');
    audit_ok($_, '3') for 1 .. 3;
}

# ---------------------------------------------------------------- 4. the Redis primary dies
{
    my $p = add_product($c, '클러스터 레디스 장애', 1_000, 100);
    my $reqs = order_reqs($p, 'redis');
    my $cert0 = cert_failures();
    my ($first, $final, $retried) = rush($reqs, at => 40, act => sub { $c->kill_redis('redis1') });
    diag("4: first answers: " . show(tally($first)) . "; retried with their keys: $retried; Galera certification"
        . " conflicts meanwhile (1213, retried by store/tx.c): " . (cert_failures() - $cert0));
    my @bad = grep { $_->{status} >= 500 && $_->{status} != 503 } @$first;
    is(scalar(@bad), 0, '4: nothing failed but with a 503') or diag(show(tally(\@bad)));
    is(show(tally($final)), '201 => 100, 409 OUT_OF_STOCK => 200', '4: after keyed retries: 100 PAID, 200 OUT_OF_STOCK');
    rush_figures_ok($_, $p, $final, '4') for 1 .. 3;

    my $deadline = time + 90;
    sleep 0.2 until $c->sentinel_primary eq $c->addr('redis2') . ':6379' || time > $deadline;
    is($c->sentinel_primary, $c->addr('redis2') . ':6379', '4: the Sentinels promoted redis2');
    is(($c->redis_on('redis2', 'ROLE') =~ /^(\w+)/)[0], 'master', '4: redis2 says it is the primary');
    # the app follows: a keyed charge's answer is cached on the new primary
    my $u = $users->[0];
    my ($followed, $n) = (0, 0);
    while (!$followed && time < $deadline) {
        my $r = do_request(undef, $c, 'POST', "/api/v1/users/$u->{id}/charge",
            { %{ bearer($u->{token}) }, 'Idempotency-Key' => 'c95-follow-' . $n++ }, { amount => 1000 });
        $followed = $r->{status} == 200 && $c->redis_on('redis2', '--scan', '--pattern', "idem:$u->{id}:*") ne '';
        sleep 0.2 unless $followed;
    }
    ok($followed, "4: the app writes to the new primary ($n charges until its answer was cached there)");
    # replays come from the durable rows: drop the cached answers first
    my @won = grep { $final->[$_]{status} == 201 } 0 .. $#$final;
    my @sample = @won[0 .. 19];
    for my $i (@sample) {
        my $uid = $users->[$i]{id};
        for my $k (split /\n/, $c->redis_on('redis2', '--scan', '--pattern', "idem:$uid:*")) {
            $c->redis_on('redis2', 'DEL', $k);
        }
    }
    my $same = 0;
    for my $i (@sample) {
        my $q = $reqs->[$i];
        my %h = %{ $q->[2] };
        $h{'X-Request-Id'} = "replay-$i";
        my $r = do_request(undef, $c, @$q[0, 1], \%h, $q->[3]);
        $same++ if $r->{status} == 201 && ($r->{headers}{'idempotent-replayed'} // '') eq 'true' && $r->{body} eq $final->[$i]{body};
    }
    is($same, 20, '4: 20 keyed retries of won orders replay their answer byte for byte from MariaDB');
    rush_figures_ok($_, $p, undef, '4 (after the replays)') for 1 .. 3;
    audit_ok($_, '4') for 1 .. 3;
}

# ---------------------------------------------------------------- 5. throughput, 1 to 3 app hosts
{
    my $p = add_product($c, '클러스터 처리량', 1_000, 100);
    my $expect = $c->get("/api/v1/products/$p");
    is($expect->{status}, 200, '5: the product to read');
    my @line;
    # the floor of the same run: nginx serving a static file on the edge host
    my $static = $c->ab(path => '/favicon.svg', n => 10000, c => 24, k => 1);
    is($static->{complete} . '/' . $static->{failed} . '/' . $static->{non2xx}, '10000/0/0', '5: the static floor: 10000 answers');
    push @line, "cluster-bench: nginx static floor rps=$static->{rps}";
    for my $hosts (1 .. 3) {
        $c->{upstream_servers} = [ map { $c->addr("app$_") . ':9000 max_fails=1 fail_timeout=3s' } 1 .. $hosts ];
        $c->reload_nginx;
        sleep 1.5;    # the old nginx workers finish and leave
        my $before = $c->cpu_ticks;
        my $ab = $c->ab(path => "/api/v1/products/$p", n => 10000, c => 24, k => 1);
        my $after = $c->cpu_ticks;
        is($ab->{complete} . '/' . $ab->{failed} . '/' . $ab->{non2xx}, '10000/0/0',
            "5: $hosts app host(s): 10000 reads, all 200 with the same bytes") or diag($ab->{output});
        push @line, sprintf('cluster-bench: reads hosts=%d rps=%s cpu_ticks_per_10000: %s', $hosts, $ab->{rps},
            cpu_text($before, $after));
        # writes: 300 orders at once on a product with stock 300
        my $w = add_product($c, "클러스터 처리량 주문 $hosts", 1_000, 300);
        $before = $c->cpu_ticks;
        my $t1;
        my $res = concurrent($c, order_reqs($w, "tp$hosts"), timeout => 180, just_before => sub { $t1 = time });
        my $secs = time - $t1;
        $after = $c->cpu_ticks;
        is(show(tally($res)), '201 => 300', "5: $hosts app host(s): 300 orders at once on stock 300, all 201");
        push @line, sprintf('cluster-bench: orders hosts=%d 300 in %.2f s (%.0f/s) cpu_ticks_per_300: %s',
            $hosts, $secs, 300 / $secs, cpu_text($before, $after));
    }
    diag($_) for @line;
}

done_testing();
