#!/usr/bin/perl
# Product-detail read beside its floors, in one run, through one nginx:
#   1. nginx serving a static file with the same bytes as the API answer
#   2. the bare libfcgi handler (../shared/bench/limits/fcgi_hello.c), same worker count
#   3. GET /api/v1/products/{id} (jangteod, reading MariaDB)
# Prints requests/s for each and the ratios. Not a test: numbers go to bench/RESULTS.md.
#
# Usage: perl bench/products.pl [-n REQUESTS] [-c CONCURRENCY] [-r ROUNDS]
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Getopt::Long;
use Jangteo::Stack;
use Jangteo::Bench qw(ab_run limits_dir median);
use Jangteo::Client qw(test_stack);

my ($n, $c, $rounds, $workers, $nocache) = (50000, 50, 3, 4, 0);
GetOptions('n=i' => \$n, 'c=i' => \$c, 'r=i' => \$rounds, 'w=i' => \$workers, 'nocache' => \$nocache)
    or die "bad options\n";

my $root = Jangteo::Stack::srcdir();
my $limits = limits_dir($root, 'fcgi_hello.c');

my $s = test_stack(demo => 1, workers => $workers,
    conf => { server => { access_log => 'off', max_requests => 0 },
              catalog => { cache_ttl_ms => $nocache ? 0 : 1000 } },
    nginx_extra => sub {
        my ($dir) = @_;
        return "        location = /static.json { root $dir; default_type application/json; }\n"
             . "        location = /fcgi { include fastcgi_params; fastcgi_pass unix:$dir/hello.sock; }\n";
    });
my $dir = $s->dir;

# the floor handlers answer exactly the API's bytes
my $api = $s->get('/api/v1/products/1');
$api->{status} == 200 or die "product 1: $api->{status}\n";
open my $fh, '>', "$dir/static.json" or die; print $fh $api->{body}; close $fh;
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
system('gcc', '-O2', '-Wall', "-DBODY_FILE=\"$dir/static.json\"", '-o', "$dir/fcgi_hello",
       "$dir/fcgi_hello.c", '-lfcgi') == 0 or die "cannot build fcgi_hello\n";
my $hello = fork // die;
if (!$hello) { exec "$dir/fcgi_hello", "$dir/hello.sock", $workers; die "exec: $!" }
for (1 .. 50) { last if -S "$dir/hello.sock"; select undef, undef, undef, 0.1 }

sub ab {
    my ($path) = @_;
    my $r = ab_run(n => $n, c => $c, keepalive => 1, url => "http://127.0.0.1:@{[$s->http_port]}$path");
    die "ab failed on $path:\n$r->{output}" unless $r->{rps};
    return $r;
}

my %runs = (static => [], fcgi => [], api => []);
my %paths = (static => '/static.json', fcgi => '/fcgi', api => '/api/v1/products/1');
ab($_) for values %paths;    # warm-up
for my $round (1 .. $rounds) {
    for my $k (qw(static fcgi api)) {
        my $r = ab($paths{$k});
        push @{ $runs{$k} }, $r->{rps};
        warn "round $round $k: $r->{rps} req/s (failed $r->{failed}, non-2xx $r->{non2xx})\n"
            if $r->{failed} || $r->{non2xx};
    }
}
my %m = map { $_ => median(@{ $runs{$_} }) } keys %runs;

printf "== product detail vs floors (%s; ab -k -c %d -n %d, %d workers, %d-byte body, median of %d, %s)\n",
    scalar(gmtime), $c, $n, $workers, length($api->{body}), $rounds, $nocache ? "cache off: every read from MariaDB" : "Redis cache on";
printf "nginx static file        : %10.0f req/s\n", $m{static};
printf "nginx + bare libfcgi     : %10.0f req/s\n", $m{fcgi};
printf "GET /api/v1/products/{id}: %10.0f req/s\n", $m{api};
printf "ratio api / bare libfcgi : %5.1f %%   (goal >= 40 %%)\n", 100 * $m{api} / $m{fcgi};
printf "ratio api / static       : %5.1f %%\n", 100 * $m{api} / $m{static};

kill 'TERM', $hello; waitpid $hello, 0;
$s->stop;
