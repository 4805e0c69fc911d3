#!/usr/bin/perl
# Load runs as the README shows them:
#  (a) jangteo-admin load-buyers: N buyers, each with the balance asked for
#      as one CHARGE ledger row, one working token per line of a 0600 file,
#      nothing made on bad arguments; load-products: products that sell;
#      the audit stays clean;
#  (b) scripts/jangteo run (scripts/jangteo-local): with the default limits
#      500 ab orders from this one address are mostly refused with 429; with
#      JANGTEO_RATE_LIMITS=off all 500 are orders (no 429), and the buyer's
#      balance and the stock moved by exactly 500 orders. Outcomes only, no
#      timing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use MIME::Base64 qw(decode_base64);
use POSIX qw(setpgid _exit :sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);
use Jangteo::Bench qw(ab_run log_statuses free_port);
use Jangteo::Client qw(test_stack bearer);
use Jangteo::Load qw(audit_ok);
use Jangteo::Stack;

my $ORDER_SHIP = { recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236', address => '서울 강남구 테헤란로 1' };

sub slurp { my ($f) = @_; open my $fh, '<:raw', $f or die "$f: $!"; local $/; my $s = <$fh>; $s // '' }

# the user a token belongs to, found as login would: by the SHA-256 of its 32 bytes
sub token_user {
    my ($sql, $tok) = @_;
    (my $b64 = $tok) =~ tr{-_}{+/};
    my $raw = decode_base64($b64 . '=');
    return undef unless length $raw == 32;
    my $rows = $sql->("SELECT user_id FROM auth_tokens WHERE token_hash = UNHEX('" . sha256_hex($raw) . "')");
    return @$rows ? $rows->[0][0] : undef;
}

# ---------------------------------------------------------------- (a) the admin commands

my $s = test_stack();
my $tmp = tempdir('jangteo-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $sql = sub { $s->sql($_[0]) };
my $count = sub { $s->sql($_[0])->[0][0] };

subtest 'load-buyers refuses bad arguments and makes nothing' => sub {
    my $users = $count->('SELECT COUNT(*) FROM users');
    my @bad = (
        [ 2, [qw(load-buyers 0 --tokens), "$tmp/t0"] ],
        [ 2, [qw(load-buyers 100001 --tokens), "$tmp/t0"] ],
        [ 2, [qw(load-buyers 5x --tokens), "$tmp/t0"] ],
        [ 2, [qw(load-buyers 5 --balance 100000001 --tokens), "$tmp/t0"] ],
        [ 2, [qw(load-buyers 5 --balance -1 --tokens), "$tmp/t0"] ],
        [ 2, [qw(load-buyers 5 --balance 1000)] ],
        [ 1, [qw(load-buyers 5 --tokens), "$tmp/no/such/dir/t"] ],
        [ 2, [qw(load-products 0)] ],
        [ 2, [qw(load-products 3 --stock 10000001)] ],
        [ 2, [qw(load-products 3 --price -5)] ],
        [ 2, [qw(audit --timeout 0)] ],
        [ 2, [qw(audit --timeout 3601)] ],
    );
    for my $b (@bad) {
        my ($rc, $out) = $s->admin(@{ $b->[1] });
        is($rc, $b->[0], "@{ $b->[1] }: exit $b->[0]") or diag($out);
    }
    is($count->('SELECT COUNT(*) FROM users'), $users, 'no user was created');
    ok(!-e "$tmp/t0", 'no tokens file was written');
};

my ($n, $balance) = (50, 1_234_000);
my $max_user = $count->('SELECT COALESCE(MAX(id), 0) FROM users');
my $ledger0 = $count->('SELECT COUNT(*) FROM point_ledger');
my ($rc, $out) = $s->admin('load-buyers', $n, '--balance', $balance, '--tokens', "$tmp/tokens.txt");
is($rc, 0, "load-buyers $n --balance $balance exits 0") or diag($out);
like($out, qr/^load-buyers: $n buyers created .* balance $balance each .* $n tokens in \Q$tmp\E\/tokens\.txt/m,
    'it says what it made');
unlike($out, qr/\r/, 'no progress line when stderr is not a terminal');

my @tokens = split /\n/, slurp("$tmp/tokens.txt");
is(scalar @tokens, $n, "$n tokens, one a line");
is(scalar(grep { /^[A-Za-z0-9_-]{43}$/ } @tokens), $n, 'each one 43 characters of base64url (256 bits)');
my %uniq = map { $_ => 1 } @tokens;
is(scalar keys %uniq, $n, 'all different');
is((stat "$tmp/tokens.txt")[2] & 07777, 0600, 'the tokens file is 0600 (they are credentials)');

my $new = $sql->("SELECT id, role, balance FROM users WHERE id > $max_user ORDER BY id");
is(scalar @$new, $n, "$n users were created");
is(scalar(grep { $_->[1] eq 'BUYER' && $_->[2] == $balance } @$new), $n, "each a BUYER with balance $balance");
my %new_ids = map { $_->[0] => 1 } @$new;
my $ledger = $sql->("SELECT user_id, delta, balance_after, kind, ref_id FROM point_ledger WHERE id > 0"
    . " AND user_id > $max_user ORDER BY id");
is($count->('SELECT COUNT(*) FROM point_ledger') - $ledger0, $n, "$n ledger rows were added");
is(scalar(grep { $new_ids{ $_->[0] } && $_->[1] == $balance && $_->[2] == $balance && $_->[3] eq 'CHARGE'
    && $_->[4] eq 'NULL' } @$ledger), $n, 'one CHARGE row per buyer, delta = balance_after = the balance');
my %ledger_users = map { $_->[0] => 1 } @$ledger;
is(scalar keys %ledger_users, $n, 'every buyer has exactly its own row');
my $same_hash = $count->("SELECT COUNT(DISTINCT password_hash) FROM users WHERE id > $max_user");
is($same_hash, 1, 'the buyers of one run share one argon2id hash (of a password nobody holds)');
like($count->("SELECT password_hash FROM users WHERE id = " . ($max_user + 1)), qr/^\$argon2id\$/, 'an argon2id hash');

my (%owner, $answered);
for my $t (@tokens) {
    my $uid = token_user($sql, $t);
    next unless defined $uid && $new_ids{$uid};
    $owner{$uid}++;
    my $r = $s->get("/api/v1/users/$uid", bearer($t));
    $answered++ if $r->{status} == 200 && $r->{json}{userId} == $uid && $r->{json}{balance} == $balance;
}
is(scalar keys %owner, $n, 'each token is stored as its SHA-256 and names a different new buyer');
is($answered // 0, $n, 'each token is accepted by the API for its own buyer, who has the balance');
my ($other) = grep { $_ != token_user($sql, $tokens[0]) } sort { $a <=> $b } keys %new_ids;
is($s->get("/api/v1/users/$other", bearer($tokens[0]))->{status}, 403, "a buyer's token does not act on another buyer");

($rc, $out) = $s->admin(qw(load-products 3 --stock 7 --price 2500));
is($rc, 0, 'load-products 3 exits 0') or diag($out);
my ($p1, $p3) = $out =~ /ids (\d+)-(\d+),/;
chomp $out;
ok($p1 && $p3 == $p1 + 2, "it names the range of its 3 ids ($out)");
is_deeply($sql->("SELECT COUNT(*), SUM(stock = 7 AND price = 2500) FROM products WHERE id BETWEEN $p1 AND $p3"),
    [[3, 3]], '3 products with stock 7 at 2,500');
is($count->("SELECT COUNT(*) FROM stock_movements WHERE product_id BETWEEN $p1 AND $p3 AND kind = 'INITIAL' AND delta = 7"),
    3, 'each with its INITIAL stock movement');
my $buyer = token_user($sql, $tokens[0]);
my $r = $s->post_json('/api/v1/orders', { items => [ { productId => $p1, quantity => 2 } ], shipping => $ORDER_SHIP },
    bearer($tokens[0]));
is($r->{status}, 201, 'a load buyer orders a load product') or diag($r->{body});
is($r->{json}{total}, 2 * 2500 + 3000, 'priced as any order (two units and the shipping fee)');
is($count->("SELECT balance FROM users WHERE id = $buyer"), $balance - 8000, 'paid from the loaded balance');
is($count->("SELECT stock FROM products WHERE id = $p1"), 5, 'stock taken');
audit_ok($s, 'the audit is clean after load-buyers, load-products and an order');
$s->stop;

# ---------------------------------------------------------------- (b) scripts/jangteo run with and without limits

my $state = tempdir('jlr-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $port = free_port();
my $root = Jangteo::Stack::srcdir();
my $admin = Jangteo::Stack::builddir() . '/src/jangteo-admin';
my $local;    # the running scripts/jangteo-local: {pid, out}

END { stop_local() if $local }

sub start_local {
    my (%env) = @_;
    my $outf = "$state/run-" . int(time * 1000) . '.out';
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgid(0, 0);
        Jangteo::Stack::_die_with_parent();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $outf or _exit(1);
        open STDERR, '>&', \*STDOUT;
        $ENV{JANGTEO_HTTP_PORT} = $port;
        $ENV{JANGTEO_STATE_DIR} = $state;
        delete $ENV{JANGTEO_RATE_LIMITS};
        @ENV{ keys %env } = values %env;
        exec $^X, "$root/scripts/jangteo-local" or _exit(127);
    }
    $local = { pid => $pid, out => $outf };
    my $deadline = time + 180;
    while (time < $deadline) {
        my $text = -e $outf ? slurp($outf) : '';
        return $text if $text =~ /Ctrl-C stops everything/;
        if (waitpid($pid, WNOHANG) == $pid) {
            undef $local;
            return $text;
        }
        sleep 0.2;
    }
    return slurp($outf);
}

sub stop_local {
    my $pid = $local->{pid};
    kill 'INT', $pid;
    my $deadline = time + 90;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) { my $st = $?; undef $local; return $st }
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    undef $local;
    return -1;
}

my $lsql = sub {
    my ($q) = @_;
    my $text = `mariadb --no-defaults -uroot --socket=$state/mariadb.sock -N -B jangteo -e "$q"`;
    return [ map { [ split /\t/ ] } grep { length } split /\n/, $text ];
};
my $lone = sub { $lsql->($_[0])->[0][0] };

subtest 'JANGTEO_RATE_LIMITS takes on or off, nothing else' => sub {
    my $text = start_local(JANGTEO_RATE_LIMITS => 'sometimes');
    ok(!$local, 'scripts/jangteo-local exits at once');
    like($text, qr/JANGTEO_RATE_LIMITS must be on or off/, 'and says why');
    stop_local() if $local;
};

# 500 orders by ab from one buyer (c=20), as the card's user sent them
sub ab_orders {
    my ($token, $pid) = @_;
    open my $fh, '>', "$state/order.json" or die;
    print $fh qq({"items":[{"productId":$pid,"quantity":1}],"shipping":{"recipient":"홍길동","phone":"010-1234-5678",)
        . qq("zipCode":"06236","address":"서울 강남구 테헤란로 1"}});
    close $fh;
    my $off = -s "$state/nginx-access.log" // 0;
    my $ab = ab_run(n => 500, c => 20, post => "$state/order.json", headers => ["Authorization: Bearer $token"],
        url => "http://127.0.0.1:$port/api/v1/orders", timeout => 240);
    my $deadline = time + 10;
    my $st;
    do {    # nginx logs a request after answering it
        sleep 0.1;
        $st = log_statuses("$state/nginx-access.log", $off, qr{^POST /api/v1/orders$});
    } until ((eval { my $t = 0; $t += $_ for values %$st; $t } // 0) >= 500 || time > $deadline);
    return ($ab, $st);
}

my $banner = start_local();
ok($local, 'scripts/jangteo-local starts with the default limits') or diag($banner);
like($banner, qr/rate limits:\s+on, per client address/, 'the banner says the limits are on');
like($banner, qr{/api/v1/orders\s+20r/s, burst 40}, 'and which: orders 20 r/s, burst 40');
like($banner, qr{/api/v1/auth/tokens\s+5r/s, burst 10}, 'logins 5 r/s, burst 10');
like($banner, qr/JANGTEO_RATE_LIMITS=off scripts\/jangteo run/, 'and how to turn them off');

SKIP: {
    skip 'the local stack did not start', 12 unless $local;
    my $conf = "$state/jangteod.conf";
    my $lb = `$admin -c $conf load-buyers 1 --balance 100000000 --tokens $state/tokens.txt 2>&1`;
    is($?, 0, 'load-buyers against the local stack, as the README does it') or diag($lb);
    my $lp = `$admin -c $conf load-products 1 --stock 1000 --price 1000 2>&1`;
    my ($pid) = $lp =~ /ids (\d+)-/;
    ok($pid, "load-products names its product ($lp)");
    chomp(my $token = slurp("$state/tokens.txt"));
    my $buyer = token_user($lsql, $token);

    my $orders0 = $lone->("SELECT COUNT(*) FROM orders WHERE user_id = $buyer");
    my ($ab, $st) = ab_orders($token, $pid);
    my $made = $lone->("SELECT COUNT(*) FROM orders WHERE user_id = $buyer") - $orders0;
    is($ab->{complete}, 500, 'limits on: ab completes 500 requests');
    ok(($st->{429} // 0) > 0, "limits on: orders from one address are refused with 429 ($st->{429} of 500)");
    is(($st->{201} // 0) + ($st->{429} // 0), 500, 'every other answer is a 201');
    is($made, $st->{201} // 0, 'and only those became orders');

    my $stopped = stop_local();
    is($stopped, 0, 'Ctrl-C (SIGINT) stops it cleanly');

    $banner = start_local(JANGTEO_RATE_LIMITS => 'off');
    ok($local, 'JANGTEO_RATE_LIMITS=off scripts/jangteo run starts') or diag($banner);
    like($banner, qr/rate limits:\s+OFF \(JANGTEO_RATE_LIMITS=off\)/, 'the banner says the limits are off');
    skip 'the local stack did not start again', 5 unless $local;

    my $bal0 = $lone->("SELECT balance FROM users WHERE id = $buyer");
    my $stock0 = $lone->("SELECT stock FROM products WHERE id = $pid");
    $orders0 = $lone->("SELECT COUNT(*) FROM orders WHERE user_id = $buyer");
    ($ab, $st) = ab_orders($token, $pid);
    is_deeply($st, { 201 => 500 }, 'limits off: all 500 ab orders are answered 201, none 429')
        or diag(explain($st), $ab->{output});
    is($ab->{non2xx}, 0, 'ab saw no non-2xx answer');
    is($lone->("SELECT COUNT(*) FROM orders WHERE user_id = $buyer AND status = 'PAID'") - $orders0, 500,
        '500 PAID orders were made');
    is($bal0 - $lone->("SELECT balance FROM users WHERE id = $buyer"), 500 * 4000,
        "the buyer paid 500 x 4,000 (1,000 + the 3,000 shipping fee)");
    is($stock0 - $lone->("SELECT stock FROM products WHERE id = $pid"), 500, 'the stock fell by 500');
    my $audit = `$admin -c $conf audit 2>&1`;
    is($?, 0, 'the audit is clean') or diag($audit);
    is(stop_local(), 0, 'and it stops cleanly');
}
done_testing();
