#!/usr/bin/perl
# scripts/jangteo bench: the README's load runs against a running stack
# (`JANGTEO_RATE_LIMITS=off scripts/jangteo run` in another terminal),
# each beside its floor from ../shared/bench/limits/limits.sh measured in
# the same round, medians over the rounds:
#
#   reads         ab -k on one product's detail   vs nginx + bare libfcgi (same bytes)
#   buyer-orders  ab, one buyer's orders          vs the order transaction, hot, 1 and C threads
#   crowd-hot     wrk + bench/wrk/orders.lua, 1,000 buyers, one product       vs hot, C threads
#   crowd-spread  wrk + orders.lua, 1,000 buyers over 1,000 products         vs spread, C threads
#   hot-5000      ab -c C: 5,000 one-unit orders of one buyer on one product (wall time, 0 errors)
#   crowd-hot-64  wrk -c 64 on one product: the p99 a crowd of 64 sees
#
# Order runs also print how /metrics' order batch-size histogram and commit
# counter moved (combining, src/domain/combine.c). For figures that mean
# something, give the stack workers for its clients: JANGTEO_WORKERS=16 (or
# 64 for crowd-hot-64) on `scripts/jangteo run`.
#
# Only answers with the expected status and bytes (reads) or shape (an
# order: 201 with a PAID order, checked by orders.lua or against the orders
# table) count as throughput; every other answer is listed by status. Prints
# answers/s, p50/p99, non-2xx by status, the outcome checked in the
# database and `jangteo-admin audit`; writes a PNG per run (throughput
# beside the floor, latency percentiles) and the raw outputs into a results
# directory it names. Bounded: every run has a fixed count or duration;
# traffic goes to 127.0.0.1 only. Not a test: figures go to bench/RESULTS.md.
#
# Usage: scripts/jangteo bench [--rounds N] [--seconds S] [--concurrency C]
#                              [--reads N] [--orders N] [--only NAME,...]
# Env:   JANGTEO_HTTP_PORT (8080), JANGTEO_STATE_DIR (./state) of the running
#        stack; JANGTEO_BENCH_DIR (./bench-results); JANGTEO_LIMITS_DIR
#        (shared/bench/limits beside the checkout or a folder above it)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Cwd qw(abs_path);
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use Getopt::Long;
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(strftime);
use Jangteo::Bench qw(ab_run wrk_run limits_dir limits_run median log_offset log_statuses metrics_get
    metrics_delta chart status_line);

my %opt = (rounds => 3, seconds => 10, concurrency => 16, reads => 20000, orders => 2000, only => '');
my $BATCH = qr/^jangteo_order_(?:batch_size_(?:bucket|sum|count)|commits_total)/;
GetOptions(\%opt, 'rounds=i', 'seconds=i', 'concurrency=i', 'reads=i', 'orders=i', 'only=s', 'help')
    or die "bad options (see --help)\n";
if ($opt{help}) { system('sed', '-n', '2,27s/^# \{0,1\}//p', $0); exit 0 }
die "--rounds 1..9, --seconds 1..120, --concurrency 1..256\n"
    unless $opt{rounds} >= 1 && $opt{rounds} <= 9 && $opt{seconds} >= 1 && $opt{seconds} <= 120
        && $opt{concurrency} >= 1 && $opt{concurrency} <= 256;
my $C = $opt{concurrency};

my $root   = abs_path("$FindBin::Bin/..");
my $port   = $ENV{JANGTEO_HTTP_PORT} // 8080;
my $state  = $ENV{JANGTEO_STATE_DIR} // "$root/state";
my $admin  = "$root/src/jangteo-admin";
my $conf   = "$state/jangteod.conf";
my $base   = "http://127.0.0.1:$port";
my $JSON   = JSON::PP->new->utf8->canonical->pretty;
$| = 1;

# ---------------------------------------------------------------- the stack it measures

-x $admin or die "no $admin: build first (scripts/jangteo run builds)\n";
-f $conf or die "no $conf: is the stack of JANGTEO_STATE_DIR=$state running? (scripts/jangteo run)\n";
my $limits = limits_dir($root);
for my $tool (qw(ab wrk sysbench gnuplot mariadb)) {
    system("command -v $tool >/dev/null") == 0 or die "$tool is not installed (scripts/install-deps)\n";
}
my $http = HTTP::Tiny->new(timeout => 10, proxy => undef, no_proxy => ['127.0.0.1'], keep_alive => 0);
my $hz = $http->get("$base/healthz");
$hz->{status} == 200 or die "nothing answers $base/healthz ($hz->{status}): start the stack with\n"
    . "  JANGTEO_RATE_LIMITS=off JANGTEO_HTTP_PORT=$port JANGTEO_STATE_DIR=$state scripts/jangteo run\n";
if (open my $ng, '<', "$state/nginx.conf") {
    local $/;
    die "the stack at $base limits requests per address (nginx limit_req): every load run from this\n"
      . "machine is one address and would mostly get 429. Restart it with JANGTEO_RATE_LIMITS=off.\n"
        if <$ng> =~ /limit_req_zone \$binary_remote_addr/;
}

my $stamp = strftime('%Y%m%d-%H%M%S', gmtime);
my $out = ($ENV{JANGTEO_BENCH_DIR} // "$root/bench-results") . "/$stamp";
make_path($out);
print "jangteo bench: results in $out\n";

sub sql {
    my ($q) = @_;
    my @rows = map { [ split /\t/ ] } grep { length }
        split /\n/, `mariadb --no-defaults -uroot --socket=$state/mariadb.sock -N -B jangteo -e "$q" 2>&1`;
    die "sql failed: $q\n" if $?;
    return \@rows;
}
sub sql1 { sql($_[0])->[0][0] }

sub admin {
    my (@args) = @_;
    my $text = '';
    open my $fh, '-|', $admin, '-c', $conf, @args or die "jangteo-admin: $!\n";
    while (my $l = <$fh>) { $text .= $l }    # stderr (progress on a terminal) passes through
    close $fh;
    return ($? >> 8, $text);
}

sub audit {
    my ($rc, $text) = admin('audit');
    my ($line) = $text =~ /^audit: (clean.*|VIOLATIONS FOUND.*)$/m;
    return { clean => $rc == 0, line => $line // "exit $rc", text => $text };
}

sub spew { my ($f, $t) = @_; open my $fh, '>:raw', $f or die "$f: $!"; print $fh $t; close $fh }

# ---------------------------------------------------------------- set-up (once)

my %ctx = (out => $out, port => $port, base => $base);
print "set-up: 1,000 buyers with 100,000,000 points each, 1 product to read, 1 hot product, 1,000 spread products\n";
{
    my ($rc, $t) = admin('load-buyers', 1000, '--balance', 100_000_000, '--tokens', "$out/tokens.txt");
    $rc == 0 or die "load-buyers failed:\n$t";
    print "  $t";
    for my $p (['read', 1], ['hot', 1], ['spread', 1000]) {
        ($rc, $t) = admin('load-products', $p->[1], '--price', 1000, '--stock', 10_000_000);
        $rc == 0 && $t =~ /ids (\d+)-(\d+)/ or die "load-products failed:\n$t";
        $ctx{$p->[0]} = [$1, $2];
        print "  $p->[0]: $t";
    }
    open my $fh, '<', "$out/tokens.txt" or die;
    chomp(my $tok = <$fh>);
    $ctx{token} = $tok;
    (my $b64 = $tok) =~ tr{-_}{+/};
    $ctx{buyer} = sql1("SELECT user_id FROM auth_tokens WHERE token_hash = UNHEX('"
        . sha256_hex(decode_base64($b64 . '=')) . "')");
    my $r = $http->get("$base/api/v1/products/$ctx{read}[0]");
    $r->{status} == 200 or die "GET product $ctx{read}[0]: $r->{status}\n";
    $ctx{read_body} = $r->{content};
    spew("$out/read-body.json", $r->{content});
    spew("$out/order.json", '{"items":[{"productId":' . $ctx{hot}[0] . ',"quantity":1}],"shipping":'
        . '{"recipient":"홍길동","phone":"010-1234-5678","zipCode":"06236","address":"서울 강남구 테헤란로 1"}}');
}

# Waits (at most 30 s) until no order has been made for a second: requests
# a client gave up on (wrk stops on the clock) may still be queued in the
# workers, and must land in the run that sent them, not in the next one.
sub settle {
    my $deadline = time + 30;
    my $last = sql1('SELECT COALESCE(MAX(id), 0) FROM orders');
    while (time < $deadline) {
        sleep 1;
        my $now = sql1('SELECT COALESCE(MAX(id), 0) FROM orders');
        return $now if $now == $last;
        $last = $now;
    }
    return $last;
}

# The orders made since $since_id: count, by status, their sum, and units
# per product range; for checking that every counted 201 is a real order.
sub orders_since {
    my ($since_id, $user) = @_;
    my $w = "o.id > $since_id" . ($user ? " AND o.user_id = $user" : '');
    my $r = sql("SELECT COUNT(*), COALESCE(SUM(o.total), 0), COALESCE(SUM(o.status = 'PAID'), 0) FROM orders o WHERE $w")->[0];
    return { n => $r->[0], total => $r->[1], paid => $r->[2] };
}

# ---------------------------------------------------------------- the runs
#
# Each run: name, what it is (title), its floors (the first is the one its
# ratio is quoted against; names as Jangteo::Bench::limits_run gives them,
# 'db MODE hot|spread THREADS' or an HTTP floor), the floor group it needs
# (http or db), optional /metrics series to report (a regex), and run:
# ($ctx, $round) -> { rps, pct => {p => ms}, statuses => {status => n},
# codes, valid (0 when an answer was not what the run expects), outcome
# (what the database says), note }.
#
# Hooks for more measures: push a run onto @RUNS. A db floor at another
# thread count (e.g. 'db pessimistic hot 64') is measured because a run
# names it; `metrics => qr/^jangteo_combine_/` prints that histogram's
# movement during the run; wrk_orders_run() and ab_orders_run() make the
# order runs, so "5,000 one-unit orders on one product" or "64 clients" are
# one call each.

sub ab_orders_run {
    my (%a) = @_;
    return {
        group => 'db', %a,
        run => sub {
            my ($ctx, $round) = @_;
            my $max = settle();
            my $bal = sql1("SELECT balance FROM users WHERE id = $ctx->{buyer}");
            my $stock = sql1("SELECT stock FROM products WHERE id = $ctx->{hot}[0]");
            my $off = log_offset("$state/nginx-access.log");
            my $ab = ab_run(n => $a{n}, c => $a{c}, post => "$ctx->{out}/order.json",
                headers => ["Authorization: Bearer $ctx->{token}"], url => "$ctx->{base}/api/v1/orders");
            spew("$ctx->{out}/$a{name}-r$round.txt", $ab->{output});
            select undef, undef, undef, 0.3;    # nginx writes its log line after the answer
            my $st = log_statuses("$state/nginx-access.log", $off, qr{^POST /api/v1/orders$});
            my $o = orders_since($max, $ctx->{buyer});
            my $bal2 = sql1("SELECT balance FROM users WHERE id = $ctx->{buyer}");
            my $stock2 = sql1("SELECT stock FROM products WHERE id = $ctx->{hot}[0]");
            my $ok = $st->{201} // 0;
            # ab's "Failed (Length)" is every body whose length differs from the first (ids and
            # balances grow digits): not an error here; the database says what each 201 was
            my $bad_io = ($ab->{failed_connect} // 0) + ($ab->{failed_receive} // 0) + ($ab->{failed_exceptions} // 0);
            my $valid = $o->{n} == $ok && $o->{paid} == $ok && $bal - $bal2 == $o->{total} && $stock - $stock2 == $ok
                && $ab->{complete} == $a{n} && !$bad_io;
            return {
                rps => $ok / ($ab->{secs} || 1), secs => $ab->{secs}, pct => $ab->{pct}, statuses => $st,
                valid => $valid,
                outcome => sprintf('%d x 201, %d PAID orders of buyer %d; balance %d -> %d (-%d = %d x %d); stock %d -> %d (-%d)%s',
                    $ok, $o->{paid}, $ctx->{buyer}, $bal, $bal2, $bal - $bal2, $o->{n}, $o->{n} ? $o->{total} / $o->{n} : 0,
                    $stock, $stock2, $stock - $stock2, $valid ? '' : '  MISMATCH'),
                note => sprintf('ab: %d complete, non-2xx %d, socket failures %d, wall %.2f s', $ab->{complete},
                    $ab->{non2xx}, $bad_io, $ab->{secs} // 0),
            };
        },
    };
}

sub wrk_orders_run {
    my (%a) = @_;
    return {
        group => 'db', %a,
        run => sub {
            my ($ctx, $round) = @_;
            my ($lo, $hi) = @{ $ctx->{ $a{products} } };
            my $max = settle();
            my $w = wrk_run(c => $a{c}, secs => $a{secs}, script => "$root/bench/wrk/orders.lua",
                url => "$ctx->{base}/api/v1/orders",
                args => ["$ctx->{out}/tokens.txt", $lo == $hi ? $lo : "$lo-$hi"]);
            spew("$ctx->{out}/$a{name}-r$round.txt", $w->{output});
            settle();
            my $o = orders_since($max);
            my $sockerr = $w->{err_connect} + $w->{err_read} + $w->{err_write} + $w->{err_timeout};
            # wrk stops on the clock and drops the requests in flight: up to one per connection
            # may have become an order whose answer nobody counted
            my $inflight = $o->{n} - $w->{good};
            my $valid = !$w->{bad_shape} && $o->{paid} == $o->{n} && $inflight >= 0 && $inflight <= $a{c}
                && !$sockerr;
            return {
                rps => $w->{rps}, secs => $w->{secs}, pct => $w->{pct}, statuses => $w->{statuses},
                codes => $w->{codes}, valid => $valid,
                outcome => sprintf('%d x 201 PAID counted; %d PAID orders in the table (%d in flight when wrk'
                    . ' stopped, at most %d)%s', $w->{good}, $o->{paid}, $inflight, $a{c}, $valid ? '' : '  MISMATCH'),
                note => sprintf('wrk: %d answers, socket errors %d, 201 of another shape %d', $w->{requests},
                    $sockerr, $w->{bad_shape} // 0),
            };
        },
    };
}

my @RUNS = (
    {
        name => 'reads', group => 'http',
        title => "ab -k -c 50 -n $opt{reads} GET /api/v1/products/{id} (200 with the exact bytes)",
        floors => ['nginx + bare libfcgi', 'nginx static file'],
        run => sub {
            my ($ctx, $round) = @_;
            my $off = log_offset("$state/nginx-access.log");
            my $ab = ab_run(n => $opt{reads}, c => 50, keepalive => 1, url => "$ctx->{base}/api/v1/products/$ctx->{read}[0]");
            spew("$ctx->{out}/reads-r$round.txt", $ab->{output});
            select undef, undef, undef, 0.3;
            my $st = log_statuses("$state/nginx-access.log", $off, qr{^GET /api/v1/products/\d+$});
            my $want = length $ctx->{read_body};
            my $valid = $ab->{complete} == $opt{reads} && !$ab->{failed} && !$ab->{non2xx}
                && ($ab->{doc_length} // -1) == $want;
            return {
                rps => $valid ? $ab->{rps} : 0, secs => $ab->{secs}, pct => $ab->{pct}, statuses => $st,
                valid => $valid,
                outcome => $valid ? "every answer 200 with the product's $want bytes"
                    : "INVALID: $ab->{non2xx} non-2xx, $ab->{failed} failed, $ab->{doc_length}-byte answers (want $want)",
                note => sprintf('ab: %d complete', $ab->{complete}),
            };
        },
    },
    ab_orders_run(name => 'buyer-orders', n => $opt{orders}, c => $C, metrics => $BATCH,
        title => "ab -c $C -n $opt{orders}: one buyer's one-unit orders on one product (expect all 201)",
        floors => ["db pessimistic hot $C", 'db pessimistic hot 1']),
    wrk_orders_run(name => 'crowd-hot', c => $C, secs => $opt{seconds}, products => 'hot', metrics => $BATCH,
        title => "wrk -c $C -d $opt{seconds}s orders.lua: 1,000 buyers on one product",
        floors => ["db pessimistic hot $C", "db atomic hot $C", 'db pessimistic hot 1']),
    wrk_orders_run(name => 'crowd-spread', c => $C, secs => $opt{seconds}, products => 'spread', metrics => $BATCH,
        title => "wrk -c $C -d $opt{seconds}s orders.lua: 1,000 buyers over 1,000 products",
        floors => ["db pessimistic spread $C", "db atomic spread $C"]),
    ab_orders_run(name => 'hot-5000', n => 5000, c => $C, metrics => $BATCH,
        title => "ab -c $C -n 5000: 5,000 one-unit orders on one product (goal: under 3 s, no error)",
        floors => ["db pessimistic hot $C"]),
    wrk_orders_run(name => 'crowd-hot-64', c => 64, secs => $opt{seconds}, products => 'hot', metrics => $BATCH,
        title => "wrk -c 64 -d $opt{seconds}s orders.lua: 1,000 buyers on one product (goal: p99 under 50 ms)",
        floors => ["db pessimistic hot 64"]),
);

if ($opt{only}) {
    my %want = map { $_ => 1 } split /,/, $opt{only};
    @RUNS = grep { $want{ $_->{name} } } @RUNS;
    die "--only names none of: reads buyer-orders crowd-hot crowd-spread hot-5000 crowd-hot-64\n" unless @RUNS;
}

# ---------------------------------------------------------------- rounds

my %threads = map { /^db \w+ \w+ (\d+)$/ ? ($1 => 1) : () } map { @{ $_->{floors} } } @RUNS;
my @threads = sort { $a <=> $b } keys %threads;
my (%res, %floor, @audits);
my $before = audit();
print "audit before: $before->{line}\n";
for my $round (1 .. $opt{rounds}) {
    for my $group (qw(http db)) {
        my @runs = grep { $_->{group} eq $group } @RUNS or next;
        printf "round %d/%d: %s floors (limits.sh %s%s) ...\n", $round, $opt{rounds}, $group, $group,
            $group eq 'db' ? ", threads @threads, $opt{seconds} s each" : '';
        my $l = limits_run(what => $group, limits => $limits, dir => "$out/limits-$group-r$round",
            secs => $opt{seconds}, threads => \@threads, body => "$out/read-body.json");
        spew("$out/limits-$group-r$round.txt", $l->{output});
        warn "limits.sh $group exited $l->{rc}; see $out/limits-$group-r$round.txt\n" if $l->{rc};
        push @{ $floor{$_} }, $l->{floors}{$_} for keys %{ $l->{floors} };
        for my $run (@runs) {
            printf "round %d/%d: %-13s %s ...\n", $round, $opt{rounds}, $run->{name}, $run->{title};
            my $m0 = $run->{metrics} ? metrics_get($port) : undef;
            my $r = $run->{run}->(\%ctx, $round);
            $r->{metrics} = metrics_delta($m0, metrics_get($port), $run->{metrics}) if $m0;
            printf "    %.0f/s  p50 %.1f ms  p99 %.1f ms  statuses %s  %s\n", $r->{rps}, $r->{pct}{50} // 0,
                $r->{pct}{99} // 0, status_line($r->{statuses}), $r->{valid} ? 'ok' : "NOT AS EXPECTED: $r->{outcome}";
            push @{ $res{ $run->{name} } }, $r;
        }
    }
    my $a = audit();
    push @audits, $a;
    print "round $round: audit $a->{line}\n";
}

# ---------------------------------------------------------------- report

my $floor_rps = sub {    # median of the valid rounds, or undef
    my ($name) = @_;
    my @v = map { $_->{rps} } grep { $_ && $_->{valid} } @{ $floor{$name} || [] };
    return @v == @{ $floor{$name} || [] } && @v ? median(@v) : undef;
};
my $host = `hostname`; chomp $host;
my ($cpu, $cores) = ('?', 0);
if (open my $ci, '<', '/proc/cpuinfo') {
    while (<$ci>) { $cores++ if /^processor\s*:/; $cpu = $1 if $cpu eq '?' && /^model name\s*:\s*(.*)/ }
}
my $report = sprintf("== jangteo bench, %s UTC, %s (%d cores, %s), %d round(s), medians\n"
    . "   stack %s (state %s), concurrency %d, %d s per wrk run and per db floor\n",
    strftime('%Y-%m-%d %H:%M', gmtime), $host, $cores, $cpu, $opt{rounds}, $base, $state, $C, $opt{seconds});
my %summary = (date => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime), host => $host, cpu => $cpu, options => \%opt, runs => {});
for my $run (@RUNS) {
    my @r = @{ $res{ $run->{name} } || [] } or next;
    my $valid = !grep { !$_->{valid} } @r;
    my $rps = median(map { $_->{rps} } @r);
    my $last = $r[-1];
    my %pct = map { my $p = $_; ($p => median(map { $_->{pct}{$p} } @r)) } keys %{ $last->{pct} };
    my (%st, %codes);
    for my $x (@r) {
        $st{$_} += $x->{statuses}{$_} for keys %{ $x->{statuses} };
        $codes{$_} += $x->{codes}{$_} for keys %{ $x->{codes} || {} };
    }
    my @non2xx = map { "$_=$st{$_}" } sort grep { !/^2/ } keys %st;
    $report .= "\n== $run->{name}: $run->{title}\n";
    $report .= sprintf("   run     : %9.0f answers/s (rounds: %s)  p50 %.1f ms  p99 %.1f ms  %s\n", $rps,
        join(' / ', map { sprintf '%.0f', $_->{rps} } @r), $pct{50} // 0, $pct{99} // 0,
        $valid ? '' : 'NOT AS EXPECTED: see outcome');
    $report .= sprintf("   non-2xx : %s%s\n", @non2xx ? join(' ', @non2xx) : 'none',
        %codes ? ' (' . join(', ', map { "$_=$codes{$_}" } sort keys %codes) . ')' : '');
    $report .= sprintf("   outcome : %s%s\n", @r > 1 ? "round $_: " : '', $r[ $_ - 1 ]{outcome})
        for grep { !$r[ $_ - 1 ]{valid} || $_ == @r } 1 .. @r;
    $report .= "   note    : $last->{note}\n" if $last->{note};
    my @bars = (["jangteo\n$run->{name}", $valid ? $rps : 0, 1]);
    my @floor_lat;
    for my $f (@{ $run->{floors} }) {
        my $v = $floor_rps->($f);
        my @rounds = map { $_ && $_->{valid} ? sprintf('%.0f', $_->{rps}) : 'INVALID' } @{ $floor{$f} || [] };
        if (defined $v) {
            # the ratio of the medians, and each round's own ratio (the run beside the floor
            # measured just before it): on a shared machine the latter shows the noise
            my @per = map { 100 * $r[$_]{rps} / $floor{$f}[$_]{rps} } grep { $floor{$f}[$_] && $floor{$f}[$_]{rps} } 0 .. $#r;
            $report .= sprintf("   floor   : %-26s %9.0f /s (rounds: %s)  run = %5.1f %% (per round: %s %%)\n", $f, $v,
                join(' / ', @rounds), 100 * $rps / $v, join(' / ', map { sprintf '%.0f', $_ } @per));
            $summary{ratios}{ $run->{name} }{$f} = { of_medians => 100 * $rps / $v, per_round => \@per };
            push @bars, [$f =~ /^db (\w+) (\w+) (\d+)$/ ? "floor: $1 $2\n$3 thread" . ($3 == 1 ? '' : 's')
                : "floor:\n$f", $v, 0];
            my $p95 = median(map { $_->{p95_ms} } grep { $_->{p95_ms} } @{ $floor{$f} });
            my $mean = median(map { $_->{mean_ms} } grep { $_->{mean_ms} } @{ $floor{$f} });
            push @floor_lat, ["floor $f, p95", $p95] if $p95 && $f eq $run->{floors}[0];
            push @floor_lat, ["floor $f, mean", $mean] if $mean && $f eq $run->{floors}[0];
        } else {
            $report .= sprintf("   floor   : %-26s not measured or refused by limits.sh (%s): no ratio\n", $f,
                join(' / ', @rounds) || 'missing');
        }
    }
    if ($run->{metrics}) {
        my %m;
        for my $x (@r) { $m{$_} += $x->{metrics}{$_} for keys %{ $x->{metrics} || {} } }
        $report .= "   metrics : $_ +$m{$_}\n" for sort keys %m;
    }
    my %pp = map { $_ => $pct{$_} } grep { defined $pct{$_} && $_ >= 50 } keys %pct;
    my ($png, $err) = chart(dir => $out, name => $run->{name}, bars => \@bars, pct => \%pp,
        floor_lat => \@floor_lat,
        title => "$run->{name}: $run->{title}\n" . strftime('%Y-%m-%d %H:%M UTC', gmtime)
            . ", $host, median of $opt{rounds}");
    $report .= $png ? "   chart   : $png\n" : "   chart   : none (gnuplot: $err)\n";
    $summary{runs}{ $run->{name} } = { title => $run->{title}, rps => $rps, valid => $valid ? JSON::PP::true : JSON::PP::false,
        pct => \%pct, statuses => \%st, codes => \%codes, rounds => [ map { $_->{rps} } @r ],
        floors => { map { $_ => $floor_rps->($_) } @{ $run->{floors} } }, chart => $png };
}
my $bad = grep { !$_->{clean} } @audits;
$report .= sprintf("\naudit   : before %s; after each round: %s\n", $before->{line}, join(' / ', map { $_->{line} } @audits));
$report .= "results : $out\n";
$summary{audit} = [ map { $_->{line} } $before, @audits ];
print "\n$report";
spew("$out/summary.txt", $report);
spew("$out/summary.json", $JSON->encode(\%summary));
exit($bad || grep({ !$_->{valid} } map { @$_ } values %res) ? 1 : 0);
