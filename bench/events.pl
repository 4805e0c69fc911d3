#!/usr/bin/perl
# What the event path costs orders (issue 14): orders/s through nginx with
# the relay, the notification consumer and the webhook consumer running
# (a webhook registered, its receiver the stack's own nginx answering 200
# at /bench/hook: a receiver that costs the machine as little as one can)
# against the same stack with the three stopped, in one run, alternating
# (off, on) for several rounds. The processes are switched by a reload
# (SIGHUP) of [events] relay / consumers / webhook_consumers; before every
# round the pipeline has drained (every event published, notified and
# delivered), so an "on" round carries only its own events. Orders spread
# over 100 products and 200 buyers (wrk, one request per token at random);
# only 201 answers count. For scale, the order floor of
# ../shared/bench/limits (sysbench order_tx.lua, spread, same concurrency)
# on the same MariaDB in the same run. Not a test: the figures go to
# bench/RESULTS.md.
#
# Usage: perl bench/events.pl [-c CONCURRENCY] [-d SECONDS] [-r ROUNDS] [-w WORKERS] [--digest]
#                              [--on relay,notify,hooks]
# (--on: which of the three an "on" round runs, to see what each costs; the
# relay always, since nothing reaches a consumer without it. The figure to
# quote is the default, all three)
# (--digest: MariaDB with performance_schema on, and after every round the
# statements that took most of its time, MariaDB's CPU by connection (the
# event processes' own sessions, the workers', the background threads) and
# each event process's handler calls per event; it costs MariaDB too, so
# ratios from a --digest run are not the figure to quote)
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use List::Util qw(sum);
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use Jangteo::Stack;
use Jangteo::Client qw(test_stack login jreq);
use Jangteo::Lifecycle qw(event_counts sql1);
use Jangteo::Orders qw(make_users);
use Jangteo::Bench qw(limits_dir median);

my ($c, $secs, $rounds, $workers, $digest, $only) = (16, 10, 3, 8, 0, 'relay,notify,hooks');
GetOptions('c=i' => \$c, 'd=i' => \$secs, 'r=i' => \$rounds, 'w=i' => \$workers, 'digest' => \$digest,
    'on=s' => \$only) or die "bad options\n";
my %runs_on = map { $_ => 1 } 'relay', split /,/, $only;
for (keys %runs_on) { die "--on: no process '$_' (relay, notify, hooks)\n" unless /^(relay|notify|hooks)$/ }
my $root = Jangteo::Stack::srcdir();
my $limits = limits_dir($root, 'order_tx.lua');
for my $tool (qw(wrk sysbench)) {
    system("command -v $tool >/dev/null") == 0 or die "$tool is not installed\n";
}
binmode STDOUT, ':encoding(UTF-8)';
$| = 1;

my %ON = (relay => 'yes', consumers => $runs_on{notify} ? 1 : 0, webhook_consumers => $runs_on{hooks} ? 1 : 0);
my %OFF = (relay => 'no', consumers => 0, webhook_consumers => 0);
my $s = test_stack(demo => 1, workers => $workers,
    $digest ? (mariadb_args => ['--performance-schema=ON']) : (),
    nginx_extra => "location = /bench/hook { access_log off; return 200 'ok'; }\n", conf => {
    server => { access_log => 'off', max_requests => 0 },
    lock => { wait_ms => 10000 }, tx => { max_attempts => 50, deadline_ms => 8000 },
    events => { %ON },
});
my $dir = $s->dir;

print "setting up 200 buyers, 100 products and a webhook ...\n";
my $buyers = make_users($s, 200, tag => 'evbench', balance => 100_000_000);
my $first = sql1($s, 'SELECT COALESCE(MAX(id), 0) + 1 FROM products');
$s->sql('INSERT INTO products (id, name, price, stock) VALUES '
    . join(',', map { '(' . ($first + $_) . ", 'bench event $_', 1000, 10000000)" } 0 .. 99));
$s->sql("INSERT INTO stock_movements (product_id, delta, kind) SELECT id, stock, 'INITIAL' FROM products WHERE id >= $first");
my $admin = login($s, 'admin@jangteo.test', 'jangteo-admin-1234');
my $w = jreq($s, 'POST', '/api/v1/admin/webhooks', $admin,
    { url => 'http://127.0.0.1:' . $s->http_port . '/bench/hook', events => ['order.paid'],
      secret => 'whsec_' . encode_base64('b' x 32, '') });
die "webhook: $w->{status} $w->{body}\n" unless $w->{status} == 201;

# --- switching the event processes -----------------------------------------------
# CPU (10 ms ticks) of the stack's processes, by kind: nginx, the workers,
# each event process, MariaDB, Redis; read from /proc at a round's ends
sub group_pids {
    my %g = (nginx => [$s->nginx_pid], mariadb => [$s->{pids}{mariadbd}], redis => [$s->{pids}{redis}]);
    push @{ $g{nginx} }, map { /^\s*(\d+)/ ? $1 : () } split /\n/, `ps -o pid= --ppid ${\ $s->nginx_pid}`;
    my $m = $s->master_pid;
    for (split /\n/, `ps -o pid=,comm= --ppid $m`) {
        push @{ $g{$2 eq 'worker' ? 'workers' : $2} }, $1 if /^\s*(\d+)\s+jangteod-(\w+)/;
    }
    return \%g;
}
sub ticks {
    my ($g) = @_;
    my %t;
    for my $k (keys %$g) {
        for my $pid (@{ $g->{$k} }) {
            open my $f, '<', "/proc/$pid/stat" or next;
            my @f = split ' ', (scalar <$f>) =~ s/^.*\)//sr;
            $t{$k} += $f[11] + $f[12];
        }
    }
    return \%t;
}
# executions and time (ms) of every prepared statement, by its text, summed
# over the connections (performance_schema; --digest only)
sub prepared {
    my %p;
    for my $r (@{ $s->sql('SELECT COUNT_EXECUTE, SUM_TIMER_EXECUTE / 1e9, LEFT(REPLACE(SQL_TEXT, "\n", " "), 110)'
            . ' FROM performance_schema.prepared_statements_instances') }) {
        $p{ $r->[2] }[0] += $r->[0];
        $p{ $r->[2] }[1] += $r->[1];
    }
    return \%p;
}
# MariaDB's counters (--digest): what a round made it do
my @STATUS = qw(Com_stmt_execute Com_commit Innodb_rows_read Innodb_rows_inserted Innodb_rows_updated
    Handler_read_next Handler_read_rnd_next Handler_read_key Innodb_os_log_fsyncs Innodb_data_writes);
sub status {
    my %v = map { @$_ } @{ $s->sql('SHOW GLOBAL STATUS') };
    return { map { $_ => $v{$_} // 0 } @STATUS };
}
# --digest: which of the stack's processes each MariaDB connection is
# (its client's _pid connect attribute), by performance_schema thread id
sub connections {
    my $m = $s->master_pid;
    my %kind = map { /^\s*(\d+)\s+jangteod-(\w+)/ ? ($1 => $2) : () } split /\n/, `ps -o pid=,comm= --ppid $m`;
    my %of = map { $_->[0] => $kind{ $_->[1] } // 'other' } @{ $s->sql("SELECT PROCESSLIST_ID, ATTR_VALUE"
        . " FROM performance_schema.session_connect_attrs WHERE ATTR_NAME = '_pid'") };
    return { map { $_->[0] => { os => $_->[1], name => defined $_->[2] ? $of{ $_->[2] } // 'other'
        : $_->[3] =~ s{^thread/}{}r } } @{ $s->sql('SELECT THREAD_ID, THREAD_OS_ID, PROCESSLIST_ID, NAME'
        . ' FROM performance_schema.threads') } };
}
# MariaDB's CPU (10 ms ticks) by what its threads serve, and the event
# processes' handler calls: what a round made each of them cost
my @HANDLERS = qw(Handler_read_key Handler_read_next Handler_read_rnd_next Handler_write Handler_update);
sub by_connection {
    my $c = connections();
    my (%os, %cpu, %calls);
    # an OS thread once counted (performance_schema may show a cached
    # thread under the connection it served before as well)
    for my $t (grep { defined $_->{os} } values %$c) {
        $os{ $t->{os} }{ $t->{name} } = 1;
    }
    for my $tid (keys %os) {
        open my $f, '<', "/proc/$s->{pids}{mariadbd}/task/$tid/stat" or next;
        my @f = split ' ', (scalar <$f>) =~ s/^.*\)//sr;
        $cpu{ join('+', sort keys %{ $os{$tid} }) } += $f[11] + $f[12];
    }
    for my $r (@{ $s->sql('SELECT THREAD_ID, VARIABLE_NAME, VARIABLE_VALUE FROM performance_schema.status_by_thread'
            . " WHERE VARIABLE_NAME IN (" . join(',', map { "'$_'" } @HANDLERS) . ')') }) {
        my $k = ($c->{ $r->[0] } // {})->{name} // next;
        $calls{$k}{ $r->[1] } += $r->[2] if $k =~ /^(relay|notify|hooks)$/;
    }
    return { cpu => \%cpu, calls => \%calls };
}
my @KINDS = qw(nginx workers mariadb redis relay notify hooks);
sub kids {
    my $m = $s->master_pid or return {};
    my %n;
    $n{$_}++ for map { /^\s*\d+\s+(jangteod-\w+)/ ? $1 : () } split /\n/, `ps -o pid=,comm= --ppid $m`;
    return \%n;
}
sub switch_events {
    my ($on) = @_;
    $s->{conf}{events} = { %{ $s->{conf}{events} }, %{ $on ? \%ON : \%OFF } };
    $s->_write_app_conf;
    $s->signal_master('HUP');
    my $deadline = time + 60;
    while (time < $deadline) {
        my $k = kids();
        my $ok = ($k->{'jangteod-worker'} // 0) == $workers
            && ($k->{'jangteod-relay'} // 0) == ($on ? 1 : 0)
            && ($k->{'jangteod-notify'} // 0) == ($on && $runs_on{notify} ? 1 : 0)
            && ($k->{'jangteod-hooks'} // 0) == ($on && $runs_on{hooks} ? 1 : 0);
        return if $ok;
        sleep 0.2;
    }
    die "the reload did not bring the event processes " . ($on ? 'up' : 'down') . "\n";
}

# --- wrk: orders over 100 products and 200 buyers; only 201s count -----------------
my $ship = '"shipping":{"recipient":"홍길동","phone":"010-1234-5678","zipCode":"06236","address":"서울 강남구 테헤란로 1"}';
my $lua = "$dir/events-orders.lua";
{
    open my $fh, '>:encoding(UTF-8)', $lua or die;
    print $fh 'local tokens = {' . join(',', map { "\"$_->{token}\"" } @$buyers) . "}\n";
    print $fh "local first = $first\n";
    print $fh <<'LUA';
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() created = 0 end
wrk.method = 'POST'
wrk.headers['Content-Type'] = 'application/json'
request = function()
  wrk.headers['Authorization'] = 'Bearer ' .. tokens[math.random(1, #tokens)]
  local pid = first + math.random(0, 99)
LUA
    print $fh "  local body = '{\"items\":[{\"productId\":' .. pid .. ',\"quantity\":1}],$ship}'\n";
    print $fh <<'LUA';
  return wrk.format(nil, nil, nil, body)
end
response = function(status, headers, body)
  if status == 201 and body:find('"status":"PAID"', 1, true) then created = created + 1 end
end
done = function(summary, latency, requests)
  local ok = 0
  for _, t in ipairs(threads) do ok = ok + t:get('created') end
  io.write(string.format("WRK %d %d %.3f %.3f\n", summary.requests, ok, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
LUA
    close $fh;
}
my $url = 'http://127.0.0.1:' . $s->http_port . '/api/v1/orders';
sub wrk_run {
    my $out = `wrk -t2 -c$c -d${secs}s -s $lua $url 2>&1`;
    my ($reqs, $ok, $p50, $p99) = $out =~ /^WRK (\d+) (\d+) ([\d.]+) ([\d.]+)$/m or die "wrk output:\n$out";
    return { rps => $ok / $secs, sent => $reqs, ok => $ok, p50 => $p50, p99 => $p99 };
}

# --- the floor: sysbench order_tx.lua, spread, on the same MariaDB -------------------
my $floor;
if (-f "$limits/order_tx.lua") {
    $s->sql('CREATE DATABASE IF NOT EXISTS bench');
    my $sb = "sysbench $limits/order_tx.lua --db-driver=mysql --mysql-socket=" . $s->db_socket
           . ' --mysql-user=root --mysql-db=bench';
    system("$sb prepare >/dev/null 2>&1") == 0 or die "sysbench prepare failed\n";
    my $out = `MODE=atomic HOT=0 $sb --threads=$c --time=$secs --report-interval=0 run 2>&1`;
    ($floor) = $out =~ /transactions:\s+\d+\s+\(([\d.]+) per sec/;
}

# --- the rounds -----------------------------------------------------------------------
my (%runs, @lines);
print "warm-up ...\n";
wrk_run();
# (what the processes that run have left to do; with --on, the backlog of
# one that does not run is left alone). Each poll looks only past the
# events the last drain saw consumed, and polls are half a second apart:
# a count over the whole outbox costs MariaDB more than the consumers.
my $quiet_through = 0;
sub drained {
    my $deadline = time + 600;
    my $mark = sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM outbox');
    my $busy = sub {
        my $q = event_counts($s, after => $quiet_through);
        return $q->{unpublished} || ($runs_on{notify} && ($q->{unnotified} || $q->{pending_notifiers}))
            || ($runs_on{hooks} && ($q->{unhooked} || $q->{pending_webhooks} || sql1($s,
                "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $w->{json}{id} AND status = 'PENDING'")));
    };
    sleep 0.5 while $busy->() && time < $deadline;
    die "the pipeline did not drain\n" if $busy->();
    $quiet_through = $mark if $runs_on{notify} && $runs_on{hooks};
}
drained();
# InnoDB purges what a round changed in the background, after it; a round
# starts once the history list is short again, so that neither kind of
# round pays for the purge of the one before (an "on" round's drain of the
# "off" round's backlog claims and updates every delivery twice)
sub purged {
    my $deadline = time + 120;
    while (time < $deadline) {
        my ($len) = join("\n", map { join(' ', map { $_ // '' } @$_) } @{ $s->sql('SHOW ENGINE INNODB STATUS') })
            =~ /History list length (\d+)/;
        return if !defined $len || $len < 200;
        sleep 0.5;
    }
}
for my $round (1 .. $rounds) {
    for my $on (0, 1) {
        switch_events($on);
        # the round carries only its own events: an "on" round starts once
        # the backlog the "off" round left is drained
        drained() if $on;
        purged();
        my $before = sql1($s, 'SELECT COALESCE(MAX(id), 0) FROM outbox');
        my $ps0 = $digest ? prepared() : {};
        my $st0 = $digest ? status() : {};
        my $bc0 = $digest ? by_connection() : {};
        $s->sql('TRUNCATE performance_schema.events_statements_summary_by_digest') if $digest;
        my $g = group_pids();
        my $c0 = ticks($g);
        my $r = wrk_run();
        my $t0 = time;
        if ($on) {
            drained();
            $r->{drain} = time - $t0;
        }
        my $c1 = ticks($g);
        # ticks per 1,000 orders, the "on" round's drain included
        $r->{cpu} = { map { $_ => 1000 * (($c1->{$_} // 0) - ($c0->{$_} // 0)) / ($r->{ok} || 1) } @KINDS };
        if ($on) {
            my $events = sql1($s, "SELECT COUNT(*) FROM outbox WHERE id > $before AND topic = 'order.paid'");
            my $notified = sql1($s, "SELECT COUNT(*) FROM notifications n JOIN outbox x ON x.id = n.event_id"
                . " WHERE x.id > $before AND x.topic = 'order.paid'");
            my $delivered = sql1($s, "SELECT COUNT(*) FROM webhook_deliveries WHERE event_id > $before AND status = 'DELIVERED'");
            $r->{check} = "$events events, $notified notified, $delivered delivered";
        }
        push @{ $runs{$on} }, $r;
        my $line = sprintf("round %d events %-3s: %7.1f orders/s (201s %d of %d sent), p50 %.1f ms, p99 %.1f ms%s",
            $round, $on ? 'on' : 'off', $r->{rps}, $r->{ok}, $r->{sent}, $r->{p50}, $r->{p99},
            $on ? sprintf(', drained %.1f s after; %s', $r->{drain}, $r->{check}) : '');
        print "$line\n";
        printf "    CPU per 1,000 orders (10 ms ticks): %s\n", join(', ', map { sprintf('%s %.1f', $_, $r->{cpu}{$_}) }
            grep { $on || !/^(relay|notify|hooks)$/ } @KINDS);
        push @lines, $line;
        if ($digest) {
            # where MariaDB's time went, the statements that took most of it
            my $top = $s->sql('SELECT COUNT_STAR, ROUND(SUM_TIMER_WAIT / 1e9, 1), LEFT(REPLACE(DIGEST_TEXT, "\n", " "), 110)'
                . ' FROM performance_schema.events_statements_summary_by_digest');
            my $ps1 = prepared();
            my $st1 = status();
            my $bc1 = by_connection();
            my %cpu = map { $_ => 1000 * ($bc1->{cpu}{$_} - ($bc0->{cpu}{$_} // 0)) / ($r->{ok} || 1) } keys %{ $bc1->{cpu} };
            printf "      MariaDB CPU per 1,000 orders by connection (a connection that ended is not counted): %s\n",
                join(', ', map { sprintf('%s %.1f', $_, $cpu{$_}) } grep { $cpu{$_} >= 0.1 } sort { $cpu{$b} <=> $cpu{$a} } keys %cpu);
            for my $k (sort keys %{ $bc1->{calls} }) {
                printf "      %s, per event: %s\n", $k, join(', ', map { sprintf('%s %.2f', $_ =~ s/^Handler_//r,
                    ($bc1->{calls}{$k}{$_} - ($bc0->{calls}{$k}{$_} // 0)) / ($r->{ok} || 1)) } @HANDLERS);
            }
            printf "      per order: %s\n", join(', ', map { sprintf('%s %.2f', $_, ($st1->{$_} - $st0->{$_}) / ($r->{ok} || 1)) } @STATUS);
            for my $q (keys %$ps1) {
                my ($n, $t) = ($ps1->{$q}[0] - ($ps0->{$q}[0] // 0), $ps1->{$q}[1] - ($ps0->{$q}[1] // 0));
                push @$top, [ $n, $t, $q ] if $n > 0;
            }
            @$top = (sort { $b->[1] <=> $a->[1] } @$top)[0 .. 15];
            @$top = map { [ $_->[0], $_->[1], $_->[0] ? 1000 * $_->[1] / $_->[0] : 0, $_->[2] ] } grep { defined } @$top;
            printf "      %7d x %8.1f ms (%5d us) %s\n", @$_ for @$top;
        }
    }
}

my $off = median(map { $_->{rps} } @{ $runs{0} });
my $on = median(map { $_->{rps} } @{ $runs{1} });
my @ratios = map { $runs{1}[$_]{rps} / $runs{0}[$_]{rps} } 0 .. $rounds - 1;
my $ratio = median(@ratios);
printf "\nmedian orders/s: events off %.1f, on %.1f (their ratio %.3f)\n", $off, $on, $on / $off;
printf "on/off per round (each on round beside the off round just before it): %s; median %.3f, cost %.1f %%\n",
    join(' ', map { sprintf('%.3f', $_) } @ratios), $ratio, 100 * (1 - $ratio);
printf "median CPU per 1,000 orders, off -> on (10 ms ticks): %s\n", join(', ', map {
    my $k = $_; sprintf('%s %.1f -> %.1f', $k, median(map { $_->{cpu}{$k} } @{ $runs{0} }), median(map { $_->{cpu}{$k} } @{ $runs{1} }))
} @KINDS);
printf "median p99: off %.1f ms, on %.1f ms\n", median(map { $_->{p99} } @{ $runs{0} }),
    median(map { $_->{p99} } @{ $runs{1} });
printf "order floor (sysbench order_tx.lua spread, %d threads, same MariaDB): %.1f orders/s; jangteo off/floor %.3f\n",
    $c, $floor, $off / $floor if $floor;
printf "on rounds ran: %s\n", join(', ', sort keys %runs_on);
printf "the event path costs orders %s 10 %% (median of the rounds' ratios)\n", 1 - $ratio <= 0.10 ? 'at most' : 'MORE THAN';
$s->stop;
