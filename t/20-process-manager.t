# The master keeps its pool alive and replaces workers without dropping
# requests: crashes, reloads (HUP), graceful stop (QUIT), max_requests,
# request_timeout, and the status page that shows it all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack);

my $WORKERS = 4;
my $PRODUCT = '/api/v1/products/1';

# Polls $cond until true or $timeout seconds pass; returns its last value.
sub wait_until {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;
    my $v;
    until (($v = $cond->()) || time >= $deadline) { sleep 0.05 }
    return $v;
}

sub nginx_lines {
    my ($s) = @_;
    my $t = $s->log_text('nginx');
    return $t =~ tr/\n//;
}

# Waits until a background ab has pushed $n more requests through nginx (or
# ended); returns whether it is still running.
sub wait_progress {
    my ($s, $ab, $base, $n) = @_;
    wait_until(30, sub { nginx_lines($s) >= $base + $n || !$s->ab_running($ab) });
    return $s->ab_running($ab);
}

sub status_json {
    my ($s) = @_;
    my $r = $s->get('/status?json');
    return $r->{status} == 200 ? $r->{json} : undef;
}

my $s = test_stack(
    demo => 1, workers => $WORKERS,
    conf => { server => { enable_test_routes => 'yes' } },
);
my @w0 = $s->wait_workers(count => $WORKERS);
is(scalar @w0, $WORKERS, "master has $WORKERS workers");

# ---- f. status page
subtest 'status page' => sub {
    my $made = 1;    # the readiness probe during start-up
    for (1 .. 10) { $s->get($PRODUCT)->{status} == 200 && $made++ }
    my $st = status_json($s);
    ok($st, 'GET /status?json answers 200 JSON') or return;
    cmp_ok($st->{accepted_conn} // -1, '>=', $made, "accepted_conn >= $made requests made");
    is(($st->{active_processes} // 0) + ($st->{idle_processes} // 0), $WORKERS, 'active + idle = workers');
    is($st->{total_processes}, $WORKERS, 'total_processes');
    my $procs = ref $st->{processes} eq 'ARRAY' ? $st->{processes} : [];
    is(scalar @$procs, $WORKERS, 'one entry per worker');
    is_deeply([ grep { !(exists $_->{pid} && exists $_->{state} && exists $_->{requests}) } @$procs ], [],
        'each has pid, state, requests');
    is_deeply([ sort { $a <=> $b } map { $_->{pid} } @$procs ], [ $s->worker_pids ], 'pids are the master\'s children');
    my $sum = 0;
    $sum += $_->{requests} // 0 for @$procs;
    cmp_ok($sum, '>=', 10, 'per-worker request counts add up');
    my $r = $s->get('/status');
    is($r->{status}, 200, 'GET /status (text) 200');
};

# ---- a. kill -9 a worker under load
subtest 'worker killed under load is replaced' => sub {
    my @before = $s->wait_workers(count => $WORKERS);
    my $base = nginx_lines($s);
    my $ab = $s->ab_start(path => $PRODUCT, c => 10, n => 3000);
    diag('ab ended before the kill') unless wait_progress($s, $ab, $base, 300);
    my $victim = $before[0];
    ok(kill('KILL', $victim), "SIGKILL worker $victim");
    my $res = $s->ab_wait($ab);
    is($res->{complete}, 3000, 'ab completed its run') or diag($res->{output});
    my @after = $s->wait_workers(count => $WORKERS, not => [$victim]);
    is(scalar @after, $WORKERS, "back to $WORKERS workers, without $victim") or diag("workers: @{[ $s->worker_pids ]}");
    ok(wait_until(10, sub { !-e "/proc/$victim" || !grep { $_ == $victim } $s->worker_pids }), 'killed pid is gone');
    my $ok = grep { $s->get($PRODUCT)->{status} == 200 } 1 .. 50;
    is($ok, 50, '50 sequential requests succeed');
};

# ---- b. two reloads under keep-alive load drop nothing
subtest 'SIGHUP twice under load' => sub {
    my @before = $s->wait_workers(count => $WORKERS);
    my $base = nginx_lines($s);
    my $ab = $s->ab_start(path => $PRODUCT, k => 1, c => 20, n => 20000);
    diag('ab ended before the first HUP') unless wait_progress($s, $ab, $base, 2000);
    $s->signal_master('HUP');
    my $base2 = nginx_lines($s);
    diag('ab ended before the second HUP') unless wait_progress($s, $ab, $base2, 1000);
    my @mid = $s->worker_pids;
    $s->signal_master('HUP');
    my $res = $s->ab_wait($ab);
    is($res->{complete}, 20000, 'ab completed its run') or diag($res->{output});
    is($res->{failed}, 0, 'Failed requests: 0') or diag($res->{output});
    is($res->{non2xx}, 0, 'no Non-2xx responses') or diag($res->{output});
    my @after = $s->wait_workers(count => $WORKERS, not => [ @before, @mid ]);
    is(scalar @after, $WORKERS, 'all workers replaced by the reloads')
        or diag("before @before, mid @mid, now @{[ $s->worker_pids ]}");
    is($s->get($PRODUCT)->{status}, 200, 'serving after the reloads');
};

# ---- d. max_requests recycles workers without dropping requests
subtest 'max_requests' => sub {
    my $m = test_stack(
        demo => 1, workers => $WORKERS,
        conf => { server => { max_requests => 50 } },
    );
    my @before = $m->wait_workers(count => $WORKERS);
    my $res = $m->ab(path => $PRODUCT, c => 10, n => 2000);
    is($res->{complete}, 2000, 'ab completed its run') or diag($res->{output});
    is($res->{failed}, 0, 'Failed requests: 0') or diag($res->{output});
    is($res->{non2xx}, 0, 'no Non-2xx responses') or diag($res->{output});
    my @after = $m->wait_workers(count => $WORKERS, not => \@before);
    is(scalar @after, $WORKERS, 'every worker was recycled') or diag("before @before, now @{[ $m->worker_pids ]}");
    $m->stop;
};

# ---- e. request_timeout kills a stuck worker
subtest 'request_timeout' => sub {
    my $m = test_stack(
        demo => 1, workers => $WORKERS,
        conf => { server => { request_timeout => 2, enable_test_routes => 'yes' } },
    );
    my %before = map { $_ => 1 } $m->wait_workers(count => $WORKERS);
    my $r = $m->get('/test/sleep?ms=6000');
    isnt($r->{status}, 200, "a request over the timeout does not get 200 (got $r->{status})");
    ok(wait_until(10, sub { $m->log_text('error') =~ m{GET /test/sleep} }), 'error log names the request')
        or diag($m->log_text('error'));
    my $replaced = wait_until(20, sub {
        my @w = $m->worker_pids;
        @w == $WORKERS && grep { !$before{$_} } @w;
    });
    ok($replaced, 'the stuck worker was replaced') or diag("now @{[ $m->worker_pids ]}");
    is($m->get($PRODUCT)->{status}, 200, 'next request succeeds');
    $m->stop;
};

# ---- c. graceful stop lets a running request finish (last: it ends $s's master)
subtest 'SIGQUIT finishes in-flight requests, then exits' => sub {
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my $r = eval { $s->get('/test/sleep?ms=2000') };
        print $wr ($r ? $r->{status} : 0), "\n";
        close $wr;
        _exit(0);
    }
    close $wr;
    # In flight once the status page shows a worker on it.
    my $busy = wait_until(10, sub {
        my $st = status_json($s) or return 0;
        grep { ($_->{request_uri} // '') =~ m{/test/sleep} } @{ $st->{processes} || [] };
    });
    diag('status page never showed the slow request; sending QUIT anyway') unless $busy;
    $s->signal_master('QUIT');
    my $status = <$rd>;
    waitpid($pid, 0);
    chomp($status //= '');
    is($status, 200, 'the in-flight request completed with 200');
    ok($s->wait_master_exit(15), 'master exited by itself');
    is(($s->exit_status('jangteod') // -1) >> 8, 0, 'with status 0');
};

$s->stop;
done_testing;
