package Jangteo::Bench;

# What the benchmarks share (bench/*.pl, scripts/jangteo bench): running ab
# and wrk (bench/wrk/orders.lua) bounded in count or time and reading what
# they say; the floors of ../shared/bench/limits/limits.sh, run as they are;
# statuses from nginx's access log; /metrics deltas; medians; and gnuplot
# charts. Every figure kept is one of answers with the expected status and
# the expected bytes or shape: anything else is counted apart, never as
# throughput. Traffic goes to 127.0.0.1 only. Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use HTTP::Tiny;
use POSIX qw(_exit :sys_wait_h);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(
    ab_parse ab_run wrk_run limits_dir limits_run limits_floor median free_port
    log_offset log_statuses metrics_get metrics_delta chart status_line
);

# ---------------------------------------------------------------- tools

# Runs @cmd with stdout+stderr to a string, killed after $timeout seconds
# (every run is bounded by its own count or duration; this is the backstop).
sub _run_bounded {
    my ($timeout, $env, @cmd) = @_;
    pipe(my $r, my $w) or croak "pipe: $!";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        POSIX::setpgid(0, 0);
        @ENV{ keys %$env } = values %$env;
        exec { $cmd[0] } @cmd or do { print STDOUT "exec $cmd[0]: $!\n"; _exit(127) };
    }
    close $w;
    my $out = '';
    my $deadline = time + $timeout;
    my $killed = 0;
    my $sel = '';
    vec($sel, fileno($r), 1) = 1;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { kill 'KILL', -$pid; $killed = 1; last }
        my $rin = $sel;
        my $n = select($rin, undef, undef, $left < 1 ? $left : 1);
        next unless $n > 0;
        my $got = sysread($r, my $buf, 65536);
        last unless $got;
        $out .= $buf;
    }
    close $r;
    waitpid($pid, 0);
    my $rc = $killed ? -1 : $? >> 8;
    $out .= "\n(killed after ${timeout}s)\n" if $killed;
    return ($rc, $out);
}

sub free_port { require Jangteo::Stack; return Jangteo::Stack::free_port() }

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# ---------------------------------------------------------------- ab

# What ab printed: complete, failed (and its kinds), non2xx, rps, secs,
# doc_length, pct => {50 => ms, ...}. ab counts as "Failed (Length)" every
# answer whose length differs from the first one's: an error for a read of
# fixed bytes, the normal case for orders (ids and balances grow digits).
sub ab_parse {
    my ($text) = @_;
    my %r = (output => $text, complete => 0, failed => 0, non2xx => 0, rps => 0, pct => {});
    $r{complete}   = $1 if $text =~ /^Complete requests:\s+(\d+)/m;
    $r{failed}     = $1 if $text =~ /^Failed requests:\s+(\d+)/m;
    $r{non2xx}     = $1 if $text =~ /^Non-2xx responses:\s+(\d+)/m;
    $r{rps}        = $1 if $text =~ /^Requests per second:\s+([\d.]+)/m;
    $r{secs}       = $1 if $text =~ /^Time taken for tests:\s+([\d.]+)/m;
    $r{doc_length} = $1 if $text =~ /^Document Length:\s+(\d+)/m;
    if ($text =~ /\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)/) {
        @r{qw(failed_connect failed_receive failed_length failed_exceptions)} = ($1, $2, $3, $4);
    }
    $r{pct}{$1} = $2 while $text =~ /^\s+(\d+)%\s+(\d+)/mg;
    return \%r;
}

# ab -q -n N -c C [-k] [-p FILE -T TYPE] [-H ...] URL, bounded by `timeout`.
sub ab_run {
    my (%o) = @_;
    my @cmd = ('ab', '-q', '-n', $o{n}, '-c', $o{c}, '-s', $o{socket_timeout} // 30);
    push @cmd, '-k' if $o{keepalive};
    push @cmd, '-p', $o{post}, '-T', $o{type} // 'application/json' if $o{post};
    push @cmd, '-H', $_ for @{ $o{headers} || [] };
    push @cmd, $o{url};
    my ($rc, $out) = _run_bounded($o{timeout} // 300, {}, @cmd);
    my $r = ab_parse($out);
    $r->{exit} = $rc;
    $r->{cmd} = \@cmd;
    return $r;
}

# ---------------------------------------------------------------- wrk

# wrk with bench/wrk/orders.lua (or any script that prints a JANGTEO-WRK
# line): returns its key=value pairs (good, s201, c409_OUT_OF_STOCK,
# p50_ms, ..., duration_us), plus rps = good per second and the output.
sub wrk_run {
    my (%o) = @_;
    my @cmd = ('wrk', '-t', $o{threads} // 2, '-c', $o{c}, '-d', "$o{secs}s", '--timeout', $o{socket_timeout} // '30s',
               '-s', $o{script}, $o{url}, '--', @{ $o{args} || [] });
    my ($rc, $out) = _run_bounded($o{secs} + 60, {}, @cmd);
    my ($line) = $out =~ /^JANGTEO-WRK (.*)$/m;
    croak "wrk printed no JANGTEO-WRK line (exit $rc):\n$out" unless defined $line;
    my %r = map { split /=/, $_, 2 } split ' ', $line;
    $r{output} = $out;
    $r{cmd} = \@cmd;
    $r{secs} = $r{duration_us} / 1e6;
    $r{rps} = $r{good} / $r{secs};
    $r{pct} = { map { /^p([\d.]+)_ms$/ ? ($1 => $r{$_}) : () } keys %r };
    $r{statuses} = { map { /^s(\d{3})$/ ? ($1 => $r{$_}) : () } keys %r };
    $r{codes} = { map { /^c(\d{3})_(\w+)$/ ? ("$1 $2" => $r{$_}) : () } keys %r };
    return \%r;
}

# ---------------------------------------------------------------- floors

# The floors' directory (limits.sh, fcgi_hello.c, order_tx.lua: the
# workplace's shared/bench/limits, "../shared/bench/limits" of the main
# checkout) for the checkout at $root, holding the file $need
# (limits.sh): $JANGTEO_LIMITS_DIR when set; else shared/bench/limits beside
# the checkout or beside any folder above it, so a worktree in wt/NAME finds
# the same one as the main checkout; else beside the main checkout of a git
# worktree placed elsewhere. Nothing is assumed about where the workplace
# is. Dies naming every place it looked and what to set.
sub limits_dir {
    my ($root, $need) = @_;
    $need //= 'limits.sh';
    my $env = $ENV{JANGTEO_LIMITS_DIR};
    if (defined $env && length $env) {
        return $env if -f "$env/$need";
        die "JANGTEO_LIMITS_DIR=$env holds no $need: set it to the directory that holds limits.sh,\n"
          . "fcgi_hello.c and order_tx.lua (the workplace's shared/bench/limits)\n";
    }
    my @from = (abs_path($root) // $root);
    if (-e "$root/.git"
        && open my $git, '-|', 'git', '-C', $root, 'rev-parse', '--path-format=absolute', '--git-common-dir') {
        chomp(my $common = <$git> // '');
        close $git;
        push @from, dirname($common) if $? == 0 && $common =~ m{^/};
    }
    my (@tried, %seen);
    for my $start (@from) {
        for (my $d = $start; $d ne '/' && $d ne '.'; $d = dirname($d)) {
            my $c = dirname($d) eq '/' ? '/shared/bench/limits' : dirname($d) . '/shared/bench/limits';
            next if $seen{$c}++;
            return $c if -f "$c/$need";
            push @tried, $c;
        }
    }
    die "no benchmark floors: $need is in none of\n" . join('', map { "  $_\n" } @tried)
      . "(../shared/bench/limits beside this checkout or a folder above it). Set JANGTEO_LIMITS_DIR\n"
      . "to the directory that holds limits.sh, e.g.\n"
      . "  JANGTEO_LIMITS_DIR=/path/to/shared/bench/limits scripts/jangteo bench\n";
}

# Runs ../shared/bench/limits/limits.sh WHAT (http or db) as it is, in
# $dir, on free ports. Returns { lines => [...], floors => { NAME => {rps,
# valid, p95, text} }, output }. Names: 'nginx static file', 'nginx + bare
# libfcgi', and 'db MODE hot|spread THREADS' (e.g. 'db pessimistic hot 16').
# limits.sh refuses (prints INVALID) an HTTP floor whose answers are not all
# 200 with the body's exact length; such a floor has valid => 0 and no rps.
sub limits_run {
    my (%o) = @_;
    my %env = (
        LIMITS_HTTP_PORT => free_port(), LIMITS_DB_PORT => free_port(), LIMITS_REDIS_PORT => free_port(),
        LIMITS_SECONDS => $o{secs} // 10, LIMITS_THREADS => join(' ', @{ $o{threads} || [16] }),
    );
    $env{LIMITS_BODY} = $o{body} if $o{body};
    $env{LIMITS_WORKERS} = $o{workers} if $o{workers};
    my $timeout = $o{what} eq 'db' ? 600 + 8 * $env{LIMITS_SECONDS} * @{ $o{threads} || [16] } : 600;
    my ($rc, $out) = _run_bounded($timeout, \%env, 'bash', "$o{limits}/limits.sh", $o{what}, $o{dir});
    my %f;
    for my $l (split /\n/, $out) {
        if ($l =~ /^(nginx static file|nginx \+ bare libfcgi)\s*:\s*(.*)$/) {
            my ($name, $t) = ($1, $2);
            $f{$name} = $t =~ /^([\d.]+) req\/s, mean ([\d.]+) ms/
                ? { rps => $1, mean_ms => $2, valid => 1, text => $t } : { valid => 0, text => $t };
        } elsif ($l =~ /^mode=(\w+)\s+(hot|spread)\s+threads=(\d+)\s*:\s*([\d.]+) orders\/s, p95 ([\d.]+) ms/) {
            $f{"db $1 $2 $3"} = { rps => $4, p95_ms => $5, valid => 1, text => $l };
        }
    }
    return { rc => $rc, floors => \%f, output => $out };
}

# ---------------------------------------------------------------- logs, metrics

sub log_offset { my ($f) = @_; return -s $f // 0 }

# Statuses of nginx access-log lines ("METHOD PATH ..." STATUS) written
# since $offset whose request matches $re: { status => count }.
sub log_statuses {
    my ($f, $offset, $re) = @_;
    my %n;
    open my $fh, '<', $f or return \%n;
    seek $fh, $offset, 0;
    while (my $l = <$fh>) {
        next unless $l =~ /"(\S+ \S+) HTTP\/[\d.]+" (\d{3}) /;
        my ($req, $st) = ($1, $2);
        $n{$st}++ if $req =~ $re;
    }
    return \%n;
}

# /metrics as { "name{labels}" => value } (loopback: nginx allows only 127.0.0.1).
sub metrics_get {
    my ($port) = @_;
    my $r = HTTP::Tiny->new(timeout => 10, proxy => undef, no_proxy => ['127.0.0.1'])
        ->get("http://127.0.0.1:$port/metrics");
    return {} unless $r->{success};
    my %m;
    for my $l (split /\n/, $r->{content}) {
        $m{$1} = $2 if $l =~ /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (-?[\d.eE+-]+)$/;
    }
    return \%m;
}

# The series matching $re that moved between two metrics_get snapshots.
sub metrics_delta {
    my ($before, $after, $re) = @_;
    my %d;
    for my $k (keys %$after) {
        next unless $k =~ $re;
        my $v = $after->{$k} - ($before->{$k} // 0);
        $d{$k} = $v if $v;
    }
    return \%d;
}

# "201=500 409=12" from { status => count }
sub status_line {
    my ($h) = @_;
    return join(' ', map { "$_=$h->{$_}" } sort keys %$h) || 'none';
}

# ---------------------------------------------------------------- charts

sub _spew {
    my ($f, $text) = @_;
    open my $fh, '>:raw', $f or croak "$f: $!";
    print $fh $text;
    close $fh or croak "$f: $!";
}

sub _gp_str { my ($s) = @_; $s =~ s/\\/\\\\/g; $s =~ s/"/\\"/g; $s =~ s/\n/\\n/g; return qq("$s") }

# One PNG: on the left the run's answers/s beside its floors (bars, each
# with its figure and the run's ratio to it), on the right the run's latency
# percentiles, with any floor latency known as a dashed line. bars: [label
# (may hold "\n"), value, is_run]; pct: {percentile => ms}; floor_lat:
# [label, ms]. Writes NAME.dat, NAME-lat.dat, NAME.gp and NAME.png in $dir;
# returns the PNG's path, or (undef, gnuplot's complaint).
sub chart {
    my (%o) = @_;
    my ($dir, $name) = @o{qw(dir name)};
    my @bars = @{ $o{bars} };
    my ($run) = grep { $_->[2] } @bars;
    my ($data, @tics) = ('');
    for my $i (0 .. $#bars) {
        my $b = $bars[$i];
        my $ratio = $b->[2] || !$b->[1] || !$run ? '' : sprintf(' (run: %.0f %%)', 100 * $run->[1] / $b->[1]);
        $data .= sprintf("%d\t%.1f\t%s\t%s\n", $i, $b->[1], $b->[2] ? '0x2e7d32' : '0x78909c',
            _gp_str(sprintf('%.0f/s%s', $b->[1], $ratio)));
        push @tics, _gp_str($b->[0]) . " $i";
    }
    _spew("$dir/$name.dat", $data);
    my @p = sort { $a <=> $b } keys %{ $o{pct} || {} };
    _spew("$dir/$name-lat.dat", join('', map { sprintf("%d\t%s\n", $_, $o{pct}{ $p[$_] }) } 0 .. $#p));
    my $lines = '';
    for my $f (@{ $o{floor_lat} || [] }) {
        $lines .= sprintf("set arrow from graph 0, first %s to graph 1, first %s nohead dt 2 lw 1.5 lc rgb '#78909c'\n"
            . "set label %s at graph 0.98, first %s right offset 0,-0.7 font ',8' tc rgb '#455a64' noenhanced\n",
            $f->[1], $f->[1], _gp_str("$f->[0]: $f->[1] ms"), $f->[1]);
    }
    my $ptics = join(', ', map { _gp_str("p$p[$_]") . " $_" } 0 .. $#p);
    my $gp = <<"GP";
set terminal pngcairo size 1200,500 font "DejaVu Sans,10"
set output ${\ _gp_str("$dir/$name.png")}
set multiplot layout 1,2 title ${\ _gp_str($o{title})} font ",12" noenhanced
set datafile separator "\\t"
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics
set key off
set bmargin 4
set xrange [-0.6:${\ ($#bars + 0.6)}]
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set xtics (${\ join(', ', @tics)}) noenhanced font ",9"
set ylabel ${\ _gp_str($o{ylabel} // 'answers/s (expected status and bytes only)')}
set title "throughput beside the floors"
plot ${\ _gp_str("$dir/$name.dat")} using 1:2:3 with boxes lc rgb variable, \\
     '' using 1:2:4 with labels offset 0,0.8 font ",9" noenhanced
set title "latency percentiles of the run (ms)"
set ylabel "ms"
set xrange [-0.3:${\ ($#p + 0.3)}]
set xtics ($ptics)
set offsets 0, 0, graph 0.1, 0
$lines
plot ${\ _gp_str("$dir/$name-lat.dat")} using 1:2 with linespoints lw 2 pt 7 lc rgb '#2e7d32', \\
     '' using 1:2:(sprintf('%.1f', \$2)) with labels offset 0,1 font ',8'
unset multiplot
GP
    _spew("$dir/$name.gp", $gp);
    my ($rc, $out) = _run_bounded(60, {}, 'gnuplot', "$dir/$name.gp");
    return (undef, $out || "gnuplot exited $rc") if $rc != 0 || !-s "$dir/$name.png";
    return "$dir/$name.png";
}

1;
