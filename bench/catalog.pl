#!/usr/bin/perl
# The read side with a warm Redis cache, beside the bare libfcgi floor
# (../shared/bench/limits/fcgi_hello.c) behind the same nginx, in one run:
#   warm product detail, a product list page, popular products.
# Then popular with a cold cache under ab -c 100: the SQL must run once per
# TTL (read from jangteo_popular_queries_total in /metrics).
# Not a test: numbers go to bench/RESULTS.md.
#
# Usage: perl bench/catalog.pl [-n REQUESTS] [-c CONCURRENCY] [-r ROUNDS] [-w WORKERS]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use Jangteo::Stack;
use Jangteo::Bench qw(ab_run limits_dir median);
use Jangteo::Client qw(test_stack login);

my ($n, $c, $rounds, $workers) = (30000, 50, 3, 4);
GetOptions('n=i' => \$n, 'c=i' => \$c, 'r=i' => \$rounds, 'w=i' => \$workers) or die "bad options\n";
my $root = Jangteo::Stack::srcdir();
my $limits = limits_dir($root, 'fcgi_hello.c');

my $s = test_stack(demo => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 }, catalog => { popular_ttl => 60 } },
    nginx_extra => sub {
        my ($dir) = @_;
        return "        location = /fcgi { include fastcgi_params; fastcgi_pass unix:$dir/hello.sock; }\n";
    });
my $dir = $s->dir;
my $port = $s->http_port;

# some sales so popular has rows
my $tok = login($s, 'buyer@jangteo.test', 'jangteo-buyer-1234');
$s->sql("UPDATE users SET balance = 100000000 WHERE id = 1");
$s->sql("INSERT INTO point_ledger (user_id, delta, balance_after, kind) VALUES (1, 100000000, 100000000, 'CHARGE')");
for my $pid (1 .. 8) {
    $s->post_json('/api/v1/orders', { items => [ { productId => $pid, quantity => 1 } ],
        shipping => { recipient => 'x', phone => '010-1234-5678', zipCode => '06236', address => 'y' } },
        { Authorization => "Bearer $tok" });
}

my $detail = $s->get('/api/v1/products/1');
open my $fh, '>', "$dir/body.json" or die;
print $fh $detail->{body};
close $fh;
# libfcgi's own FCGX_FPrintF knows no %zu (it prints the format's tail
# instead of the number, so nginx answers 502): build a copy that says %lu,
# the same type on this platform, and is otherwise the shared floor.
{
    open my $in, '<', "$limits/fcgi_hello.c" or die;
    local $/;
    my $src = <$in> =~ s/%zu/%lu/gr;
    open my $out, '>', "$dir/fcgi_hello.c" or die;
    print $out $src;
}
system('gcc', '-O2', '-Wall', "-DBODY_FILE=\"$dir/body.json\"", '-o', "$dir/fcgi_hello",
       "$dir/fcgi_hello.c", '-lfcgi') == 0 or die "cannot build fcgi_hello\n";
my $hello = fork // die;
if (!$hello) { exec "$dir/fcgi_hello", "$dir/hello.sock", $workers; die "exec: $!" }
for (1 .. 50) { last if -S "$dir/hello.sock"; select undef, undef, undef, 0.1 }
chmod 0777, "$dir/hello.sock";

sub ab {
    my ($path, $conc, $count) = @_;
    my $r = ab_run(n => $count, c => $conc, keepalive => 1, url => "http://127.0.0.1:$port$path");
    die "ab failed on $path:\n$r->{output}" unless $r->{rps};
    warn "$path: failed $r->{failed}, non-2xx $r->{non2xx}\n" if $r->{failed} || $r->{non2xx};
    return $r->{rps};
}

my %paths = (fcgi => '/fcgi', detail => '/api/v1/products/1', list => '/api/v1/products?page=1&size=20',
             popular => '/api/v1/products/popular');
ab($_, $c, 5000) for values %paths;    # warm-up (and warm caches)
my %runs;
for (1 .. $rounds) {
    push @{ $runs{$_} }, ab($paths{$_}, $c, $n) for qw(fcgi detail list popular);
}
my %m = map { $_ => median(@{ $runs{$_} }) } keys %runs;

# popular, cold cache, 100 concurrent clients: the query runs once
sub popular_queries { ($s->get('/metrics')->{body} =~ /^jangteo_popular_queries_total (\d+)$/m)[0] // 0 }
$s->redis('DEL', 'popular');
my $q0 = popular_queries();
ab('/api/v1/products/popular', 100, 2000);
my $q1 = popular_queries();

printf "== catalog reads, warm cache, vs bare libfcgi (%s; ab -k -c %d -n %d, %d workers, median of %d)\n",
    scalar(gmtime), $c, $n, $workers, $rounds;
printf "nginx + bare libfcgi      : %8.0f req/s\n", $m{fcgi};
printf "product detail (warm)     : %8.0f req/s  = %5.1f %% of the floor (goal >= 60 %%)\n", $m{detail}, 100 * $m{detail} / $m{fcgi};
printf "product list page (warm)  : %8.0f req/s  = %5.1f %% of the floor (goal >= 60 %%)\n", $m{list}, 100 * $m{list} / $m{fcgi};
printf "popular (warm)            : %8.0f req/s  = %5.1f %% of the floor (goal >= 60 %%)\n", $m{popular}, 100 * $m{popular} / $m{fcgi};
printf "popular, cold cache, ab -c 100 -n 2000: the SQL ran %d time(s)\n", $q1 - $q0;
kill 'TERM', $hello;
waitpid $hello, 0;
$s->stop;
