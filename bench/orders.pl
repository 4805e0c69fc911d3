#!/usr/bin/perl
# Orders per second beside the database floor, in one run on this machine.
#   (a) one hot product, (b) orders spread over 1,000 products
#   - jangteo through nginx: wrk + a Lua script that spreads orders over 1,000
#     buyers (each request its own token), and ab with one buyer for (a)
#   - the floor: ../shared/bench/limits/order_tx.lua under sysbench, the same
#     order transaction straight against the same MariaDB, same concurrency
#   - 5,000 one-unit orders on one product with ab: wall time and errors
#   - for reference, the floor's hot order on one thread: every order
#     serialised through its durable COMMIT, as jangteo's lock (released
#     only after COMMIT) serialises a hot product; no HTTP, no Redis
# Prints orders/s, p50/p99 and the ratios. Not a test: numbers go to
# bench/RESULTS.md.
#
# Usage: perl bench/orders.pl [-c CONCURRENCY] [-d SECONDS] [-w WORKERS]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Digest::SHA qw(sha256);
use Getopt::Long;
use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use Time::HiRes qw(time);
use Jangteo::Stack;
use Jangteo::Client qw(test_stack login);

my ($c, $secs, $workers) = (16, 10, 8);
GetOptions('c=i' => \$c, 'd=i' => \$secs, 'w=i' => \$workers) or die "bad options\n";
my $root = Jangteo::Stack::srcdir();
my $limits = $ENV{JANGTEO_LIMITS_DIR} // "$root/../shared/bench/limits";
-f "$limits/order_tx.lua" or die "no $limits/order_tx.lua\n";
for my $tool (qw(ab wrk sysbench)) {
    system("command -v $tool >/dev/null") == 0 or die "$tool is not installed\n";
}

my $s = test_stack(demo => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 },
              lock => { wait_ms => 10000 }, tx => { max_attempts => 50, deadline_ms => 8000 } });
my $dir = $s->dir;
$| = 1;

# --- data: 1,000 buyers with tokens, a hot product, 1,000 spread products -------
print "setting up 1,000 buyers and 1,001 products ...\n";
my $tok0 = login($s, 'buyer@jangteo.test', 'jangteo-buyer-1234');
my $base = $s->sql("SELECT MAX(id) FROM users")->[0][0];
my @tokens;
{
    my (@ledger, @toks);
    for my $n (1 .. 1000) {
        my $uid = $base + $n;
        push @ledger, "($uid, 100000000, 100000000, 'CHARGE')";
        my $raw = join '', map { chr(int(rand(256))) } 1 .. 32;
        push @tokens, encode_base64url($raw);
        push @toks, sprintf("(UNHEX('%s'), %d, NOW(6) + INTERVAL 1 DAY)", unpack('H*', sha256($raw)), $uid);
    }
    # clones of the demo buyer (its sealed personal data is as good as any)
    $s->sql("INSERT INTO users (id, email_index, email_enc, name_enc, phone_enc, password_hash, role, balance)"
          . " SELECT $base + q.seq, UNHEX(SHA2(CONCAT('bench-', q.seq), 256)), u.email_enc, u.name_enc,"
          . " u.phone_enc, u.password_hash, 'BUYER', 100000000 FROM seq_1_to_1000 q JOIN users u ON u.id = 1");
    push @ledger, "(1, 100000000, 100000000, 'CHARGE')";   # the ab buyer
    $s->sql("UPDATE users SET balance = 100000000 WHERE id = 1");
    $s->sql("INSERT INTO point_ledger (user_id, delta, balance_after, kind) VALUES " . join(',', @ledger));
    $s->sql("INSERT INTO auth_tokens (token_hash, user_id, expires_at) VALUES " . join(',', @toks));
}
my $hot = $s->sql("SELECT COALESCE(MAX(id), 0) + 1 FROM products")->[0][0];
$s->sql("INSERT INTO products (id, name, price, stock) VALUES ($hot, 'bench hot', 1000, 10000000)");
$s->sql("INSERT INTO products (id, name, price, stock) VALUES "
      . join(',', map { "(" . ($hot + $_) . ", 'bench spread $_', 1000, 10000000)" } 1 .. 1000));
$s->sql("INSERT INTO stock_movements (product_id, delta, kind) SELECT id, stock, 'INITIAL' FROM products WHERE id >= $hot");

my $ship = '"shipping":{"recipient":"홍길동","phone":"010-1234-5678","zipCode":"06236","address":"서울 강남구 테헤란로 1"}';
my $url = "http://127.0.0.1:" . $s->http_port . "/api/v1/orders";

# --- wrk with a Lua script spreading buyers (and products for (b)) -----------------
sub wrk_run {
    my ($spread) = @_;
    my $lua = "$dir/orders-$spread.lua";
    open my $fh, '>:raw', $lua or die;
    print $fh "local tokens = {" . join(',', map { "\"$_\"" } @tokens) . "}\n";
    print $fh "local hot = $hot\nlocal spread = $spread\nlocal n = 0\n";
    print $fh "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n";
    print $fh <<'LUA';
request = function()
  n = n + 1
  local pid = hot
  if spread == 1 then pid = hot + math.random(1, 1000) end
  wrk.headers['Authorization'] = 'Bearer ' .. tokens[math.random(1, #tokens)]
LUA
    print $fh "  local body = '{\"items\":[{\"productId\":' .. pid .. ',\"quantity\":1}],$ship}'\n";
    print $fh <<'LUA';
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %d %d %d %.3f %.3f\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
    close $fh;
    my $out = `wrk -t2 -c$c -d${secs}s -s $lua $url 2>&1`;
    my ($reqs, $bad, $sockerr, $p50, $p99) = $out =~ /^WRK (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$/m
        or die "wrk output:\n$out";
    return { rps => $reqs / $secs, bad => $bad, sockerr => $sockerr, p50 => $p50, p99 => $p99 };
}

# --- the floor: sysbench order_tx.lua on the same MariaDB ----------------------------
$s->sql("CREATE DATABASE IF NOT EXISTS bench");
my $sb = "sysbench $limits/order_tx.lua --db-driver=mysql --mysql-socket=" . $s->db_socket
       . " --mysql-user=root --mysql-db=bench";
system("$sb prepare >/dev/null 2>&1") == 0 or die "sysbench prepare failed\n";
sub floor_run {
    my ($mode, $hotflag, $threads) = @_;
    $threads //= $c;
    my $out = `MODE=$mode HOT=$hotflag $sb --threads=$threads --time=$secs --report-interval=0 --percentile=99 run 2>&1`;
    my ($tps) = $out =~ /transactions:\s+\d+\s+\(([\d.]+) per sec/ or die "sysbench:\n$out";
    my ($p99) = $out =~ /99th percentile:\s+([\d.]+)/;
    return { rps => $tps, p99 => $p99 // 0 };
}

my %r;
print "measuring (c=$c, ${secs}s each, $workers workers) ...\n";
$r{floor_hot_atomic}    = floor_run('atomic', 1);
$r{floor_hot_pess}      = floor_run('pessimistic', 1);
$r{floor_hot_serial}    = floor_run('pessimistic', 1, 1);
$r{api_hot}             = wrk_run(0);
$r{floor_spread_atomic} = floor_run('atomic', 0);
$r{floor_spread_pess}   = floor_run('pessimistic', 0);
$r{api_spread}          = wrk_run(1);

# 5,000 one-unit orders on one product (ab, one buyer)
open my $fh, '>', "$dir/order.json" or die;
print $fh "{\"items\":[{\"productId\":$hot,\"quantity\":1}],$ship}";
close $fh;
my $t0 = time;
my $ab = `ab -q -k -c $c -n 5000 -p $dir/order.json -T application/json -H 'Authorization: Bearer $tok0' $url 2>&1`;
my $wall = time - $t0;
my ($complete) = $ab =~ /Complete requests:\s+(\d+)/;
my ($failed) = $ab =~ /Failed requests:\s+(\d+)/;
my ($non2xx) = $ab =~ /Non-2xx responses:\s+(\d+)/;
my ($ab_rps) = $ab =~ /Requests per second:\s+([\d.]+)/;
my ($ab_p50) = $ab =~ /^\s+50%\s+(\d+)/m;
my ($ab_p99) = $ab =~ /^\s+99%\s+(\d+)/m;

printf "\n== orders vs the database floor (%s, concurrency %d, %d s each, %d workers)\n",
    scalar(gmtime), $c, $secs, $workers;
printf "floor hot    atomic      : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_hot_atomic}{rps}, $r{floor_hot_atomic}{p99};
printf "floor hot    pessimistic : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_hot_pess}{rps}, $r{floor_hot_pess}{p99};
printf "floor hot    pess., 1 thread (serialised through COMMIT): %8.0f orders/s  p99 %6.1f ms  (5,000 orders: %.2f s)\n",
    $r{floor_hot_serial}{rps}, $r{floor_hot_serial}{p99}, 5000 / $r{floor_hot_serial}{rps};
printf "jangteo hot  (wrk)       : %8.0f orders/s  p50 %6.1f ms  p99 %6.1f ms  non-2xx %d  socket errors %d\n",
    @{ $r{api_hot} }{qw(rps p50 p99 bad sockerr)};
printf "floor spread atomic      : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_spread_atomic}{rps}, $r{floor_spread_atomic}{p99};
printf "floor spread pessimistic : %8.0f orders/s  p99 %6.1f ms\n", $r{floor_spread_pess}{rps}, $r{floor_spread_pess}{p99};
printf "jangteo spread (wrk)     : %8.0f orders/s  p50 %6.1f ms  p99 %6.1f ms  non-2xx %d  socket errors %d\n",
    @{ $r{api_spread} }{qw(rps p50 p99 bad sockerr)};
printf "ratio hot    / floor (pessimistic, atomic): %5.1f %%, %5.1f %%   (goal >= 50 %%)\n",
    100 * $r{api_hot}{rps} / $r{floor_hot_pess}{rps}, 100 * $r{api_hot}{rps} / $r{floor_hot_atomic}{rps};
printf "ratio hot    / floor serialised through COMMIT (1 thread): %5.1f %%   (reference, no goal)\n",
    100 * $r{api_hot}{rps} / $r{floor_hot_serial}{rps};
printf "ratio spread / floor (pessimistic, atomic): %5.1f %%, %5.1f %%   (goal >= 50 %%)\n",
    100 * $r{api_spread}{rps} / $r{floor_spread_pess}{rps}, 100 * $r{api_spread}{rps} / $r{floor_spread_atomic}{rps};
printf "5,000 one-unit orders on one product (ab -c %d, one buyer): %.2f s wall, %s complete, %s failed, %s non-2xx, %.0f orders/s, p50 %s ms, p99 %s ms   (goal < 6 s, no error)\n",
    $c, $wall, $complete // '?', $failed // '?', $non2xx // 0, $ab_rps // 0, $ab_p50 // '?', $ab_p99 // '?';
my ($rc, $audit) = $s->admin('audit');
print "audit after the run: ", ($rc == 0 ? "clean" : "VIOLATIONS\n$audit"), "\n";
$s->stop;
