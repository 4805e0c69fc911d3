#!/usr/bin/perl
# Operations: /metrics passes promtool and a real Prometheus scrapes it; the
# shipped systemd units verify and score "OK" or better; the shipped nginx
# site passes nginx -t; the shipped config is exactly --print-config.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Jangteo::Stack;
use Jangteo::Client qw(test_stack);

my $src = Jangteo::Stack::srcdir();
my $build = Jangteo::Stack::builddir();
my $tmp = tempdir('jangteo-ops-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub slurp { my ($f) = @_; open my $h, '<', $f or return undef; local $/; <$h> }
sub have { system("command -v $_[0] >/dev/null 2>&1") == 0 }

# --- the shipped config is every setting at its default ---------------------
{
    my $printed = `$build/src/jangteod --print-config`;
    is($printed, slurp("$src/conf/jangteo.conf"), 'conf/jangteo.conf == jangteod --print-config');
    ok($printed !~ /enable_test_routes|tx_delay_ms/, 'test-only settings are not in the shipped config');
    my $rc = system("$build/src/jangteod -t -c $src/conf/jangteo.conf >/dev/null 2>&1");
    is($rc, 0, 'the shipped config passes jangteod -t');
}

my $s = test_stack(demo => 1);

# some traffic, so counters have values
$s->get('/api/v1/products/1') for 1 .. 5;
$s->get('/api/v1/products/999999999');
$s->get('/api/v1/nope');

my $m = $s->get('/metrics');
is($m->{status}, 200, '/metrics answers');
like($m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'exposition format content type');
my $text = $m->{body};
like($text, qr/^jangteo_http_requests_total\{route="\/api\/v1\/products\/\{id\}",method="GET",status="2xx"\} (\d+)$/m,
     'requests by route template and status class');
my ($n2xx) = $text =~ /^jangteo_http_requests_total\{route="\/api\/v1\/products\/\{id\}",method="GET",status="2xx"\} (\d+)$/m;
cmp_ok($n2xx // 0, '>=', 5, 'the five product reads are counted, aggregated over all workers');
like($text, qr/^jangteo_http_requests_total\{route="\/api\/v1\/products\/\{id\}",method="GET",status="4xx"\} [1-9]/m,
     '404 counted as 4xx');
like($text, qr/^jangteo_http_request_duration_seconds_bucket\{route="\/api\/v1\/products\/\{id\}",method="GET",le="\+Inf"\} \d+$/m,
     'latency histogram by route');
for my $name (qw(jangteo_http_requests_in_flight jangteo_lock_acquisitions_total jangteo_lock_wait_seconds_count
                 jangteo_lock_wait_timeouts_total jangteo_lock_lease_expiries_total jangteo_tx_conflict_retries_total
                 jangteo_tx_retries_exhausted_total jangteo_idempotent_replays_total
                 jangteo_idempotency_in_flight_conflicts_total jangteo_idempotency_payload_mismatches_total
                 jangteo_mariadb_errors_total jangteo_mariadb_reconnects_total jangteo_redis_errors_total
                 jangteo_redis_reconnects_total jangteo_redis_degraded_operations_total jangteo_worker_starts_total
                 jangteo_worker_abnormal_exits_total jangteo_worker_recycles_total
                 jangteo_worker_request_timeout_kills_total jangteo_orders_paid_total jangteo_orders_cancelled_total
                 jangteo_orders_out_of_stock_total jangteo_point_charges_total jangteo_points_charged_won_total)) {
    like($text, qr/^\Q$name\E(\{[^}]*\})? \d/m, "metric $name present");
}
# the same counter read twice: identical sums whichever worker answers
{
    my ($a) = $s->get('/metrics')->{body} =~ /^jangteo_worker_starts_total (\d+)$/m;
    my ($b) = $s->get('/metrics')->{body} =~ /^jangteo_worker_starts_total (\d+)$/m;
    is($a, $b, 'worker_starts_total is one shared figure, not a per-worker one');
}

{
    ok(have('promtool'), 'promtool is installed (scripts/install-deps installs it)') or last;
    open my $fh, '>', "$tmp/metrics.txt" or die;
    print $fh $text;
    close $fh;
    my $out = `promtool check metrics < $tmp/metrics.txt 2>&1`;
    is($?, 0, 'promtool check metrics passes') or diag($out);
}

{
    ok(have('prometheus'), 'prometheus is installed (scripts/install-deps installs it)') or last;
    my $port = Jangteo::Stack::free_port();
    my $target = '127.0.0.1:' . $s->http_port;
    open my $fh, '>', "$tmp/prometheus.yml" or die;
    print $fh "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: jangteo\n"
            . "    metrics_path: /metrics\n    static_configs:\n      - targets: ['$target']\n";
    close $fh;
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', "$tmp/prometheus.log"; open STDERR, '>&', \*STDOUT;
        exec 'prometheus', "--config.file=$tmp/prometheus.yml", "--storage.tsdb.path=$tmp/tsdb",
             "--web.listen-address=127.0.0.1:$port";
        exit 127;
    }
    my $value;
    for (1 .. 60) {    # bounded: at most ~30 s
        select undef, undef, undef, 0.5;
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 2) or next;
        print $sock "GET /api/v1/query?query=jangteo_worker_starts_total HTTP/1.0\r\nHost: x\r\n\r\n";
        local $/;
        my $resp = <$sock>;
        my ($body) = $resp =~ /\r\n\r\n(.*)$/s or next;
        my $j = eval { decode_json($body) } or next;
        my $res = $j->{data}{result} || [];
        if (@$res) { $value = $res->[0]{value}[1]; last }
    }
    kill 'TERM', $pid;
    waitpid $pid, 0;
    ok(defined $value, 'a real Prometheus scraped the stack') or diag(slurp("$tmp/prometheus.log") // '');
    cmp_ok($value // 0, '>=', 4, 'and queried jangteo_worker_starts_total back');
}

# --- systemd units -------------------------------------------------------------
{
    ok(have('systemd-analyze'), 'systemd-analyze is installed (scripts/install-deps installs it)') or last;
    for my $u (qw(jangteod.service jangteod.socket jangteo-sweep.service jangteo-sweep.timer)) {
        my $in = slurp("$src/conf/systemd/$u.in") // slurp("$src/conf/systemd/$u");
        $in =~ s/\@sbindir\@/$build\/src/g;
        $in =~ s/\@sysconfdir\@/$tmp\/etc/g;
        $in =~ s/\@docdir\@/$tmp\/doc/g;
        open my $fh, '>', "$tmp/$u" or die;
        print $fh $in;
        close $fh;
    }
    my $out = `cd $tmp && systemd-analyze verify --man=no ./jangteod.service ./jangteod.socket ./jangteo-sweep.service ./jangteo-sweep.timer 2>&1`;
    my @real = grep { !/Failed to connect|System has not been booted|Cannot open user|Unknown key name 'ProtectProc'/ }
               split /\n/, $out;
    is($?, 0, 'systemd-analyze verify passes on the four units (daemon, socket, sweep service and timer)') or diag($out);
    for my $svc (qw(jangteod jangteo-sweep)) {
        my $sec = `systemd-analyze security --offline=true $tmp/$svc.service 2>&1`;
        my ($score, $word) = $sec =~ /Overall exposure level for \Q$svc\E\.service: ([\d.]+) (\w+)/;
        ok(defined $score, "systemd-analyze security scored $svc.service") or diag($sec);
        ok(defined $word && $word =~ /^(OK|SAFE)$/, "$svc.service: exposure level is OK or better ($score $word)");
    }
}

# --- nginx: the shipped site with a generated wrapper -----------------------------
{
    ok(have('nginx'), 'nginx is installed (scripts/install-deps installs it)') or last;
    my $site = slurp("$src/conf/nginx/jangteo-site.conf.in");
    $site =~ s/\@pkgdatadir\@\/nginx/$src\/conf\/nginx/g;
    $site =~ s{/var/log/nginx/}{$tmp/}g;
    $site =~ s/listen 80;/listen 127.0.0.1:@{[Jangteo::Stack::free_port()]};/;
    $site =~ s/listen \[::\]:80;//;
    open my $fh, '>', "$tmp/site.conf" or die;
    print $fh $site;
    close $fh;
    open $fh, '>', "$tmp/nginx.conf" or die;
    print $fh "pid $tmp/nginx.pid;\nerror_log $tmp/error.log;\nevents {}\nhttp {\n"
            . "  client_body_temp_path $tmp; fastcgi_temp_path $tmp; proxy_temp_path $tmp;\n"
            . "  uwsgi_temp_path $tmp; scgi_temp_path $tmp;\n  include $tmp/site.conf;\n}\n";
    close $fh;
    symlink '/etc/nginx/fastcgi_params', "$tmp/fastcgi_params";   # as in /etc/nginx
    my $out = `nginx -t -p $tmp -c $tmp/nginx.conf 2>&1`;
    is($?, 0, 'nginx -t accepts the shipped site config') or diag($out);
}

$s->stop;
done_testing();
