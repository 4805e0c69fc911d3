package Jangteo::Browser;

# Runs one browser scenario (a node script in t/browser/, playwright-core
# driving Debian's chromium) against a Jangteo::Stack and turns its lines
# into TAP (see t/browser/lib.mjs):
#
#   ok NAME / not ok NAME / # DIAG    a test point / its diagnostics
#   shot PATH                         a screenshot, reported with diag
#   control WORD                      the script asks the test to act on the
#                                     stack (stop MariaDB, ...): the handler
#                                     runs, then "done" goes to its stdin
#
# Screenshots go to t/shots/<test>/ in the build directory (kept after the
# run, emptied at the start of the next one). The run is bounded: a script
# still going after `timeout` seconds is killed and fails.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Basename qw(basename);
use File::Path qw(make_path remove_tree);
use IO::Handle;
use IO::Select;
use JSON::PP;
use POSIX qw(:sys_wait_h setpgid _exit);
use Test::More ();
use Time::HiRes qw(time);
use Jangteo::Stack;

our @EXPORT_OK = qw(shots_dir run_browser);

sub shots_dir {
    my ($name) = @_;
    $name //= basename($0, '.t');
    my $dir = Jangteo::Stack::builddir() . "/t/shots/$name";
    remove_tree($dir);
    make_path($dir);
    return $dir;
}

# run_browser($stack, 'shop.mjs', args => [...], data => {...},
#             shots => $dir, control => { word => sub {...} }, timeout => 180)
# Returns the list of screenshot paths.
sub run_browser {
    my ($stack, $script, %o) = @_;
    my $src = Jangteo::Stack::srcdir();
    my $path = "$src/t/browser/$script";
    croak "$path missing" unless -r $path;
    croak 'playwright-core missing: scripts/install-deps runs npm ci' unless -d "$src/node_modules/playwright-core";
    my $shots = $o{shots} // shots_dir();
    my $timeout = $o{timeout} // 180;

    pipe(my $from_r, my $from_w) or croak "pipe: $!";
    pipe(my $to_r, my $to_w) or croak "pipe: $!";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setpgid(0, 0);
        close $from_r;
        close $to_w;
        open STDIN, '<&', $to_r or _exit(127);
        open STDOUT, '>&', $from_w or _exit(127);
        open STDERR, '>&', $from_w or _exit(127);
        $ENV{JANGTEO_URL} = $stack->url('');
        $ENV{JANGTEO_SHOTS} = $shots;
        $ENV{JANGTEO_DATA} = JSON::PP->new->utf8->canonical->encode($o{data} || {});
        chdir $src;
        exec 'node', $path, @{ $o{args} || [] } or _exit(127);
    }
    close $from_w;
    close $to_r;
    $to_w->autoflush(1);

    my (@shots, $buf, $points);
    my $sel = IO::Select->new($from_r);
    my $deadline = time + $timeout;
    my $timed_out = 0;
    $buf = '';
    LINE: while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            $timed_out = 1;
            last;
        }
        next unless $sel->can_read($left < 1 ? $left : 1);
        my $n = sysread($from_r, my $chunk, 65536);
        last if !$n;
        $buf .= $chunk;
        while ($buf =~ s/^([^\n]*)\n//) {
            my $line = $1;
            utf8::decode($line);
            if ($line =~ /^(not )?ok (.*)$/) {
                local $Test::Builder::Level = $Test::Builder::Level + 1;
                Test::More::ok(!$1, $2);
                $points++;
            } elsif ($line =~ /^shot (.*)$/) {
                push @shots, $1;
                Test::More::diag("screenshot: $1");
            } elsif ($line =~ /^control (\S+)$/) {
                my $h = $o{control}{$1};
                if ($h) {
                    eval { $h->(); 1 } or Test::More::diag("control $1 failed: $@");
                } else {
                    Test::More::diag("no handler for control $1");
                }
                print $to_w "done\n";
            } elsif ($line =~ /^# ?(.*)$/) {
                Test::More::diag($1);
            } elsif (length $line) {
                Test::More::diag("node: $line");
            }
        }
    }
    if ($timed_out) {
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    Test::More::ok(!$timed_out, "$script finished within $timeout s");
    Test::More::is($rc, 0, "$script exited 0") or Test::More::diag("exit status $?");
    Test::More::ok($points, "$script reported its checks");
    return @shots;
}

1;
