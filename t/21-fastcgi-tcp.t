#!/usr/bin/perl
# jangteod over TCP (an app host behind a remote nginx): nginx reaches it on
# 127.0.0.1:PORT; a peer outside fastcgi_allow (127.0.0.2 here) is closed
# right after accept, before jangteod reads a byte, and is never served; a
# listen or allow-list that cannot be enforced stops jangteod at start.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);

use Jangteo::Client qw(test_stack);

my $s = test_stack(workers => 2, fcgi_tcp => 1, conf => { server => { fastcgi_allow => '127.0.0.1' } });
my $port = $s->fcgi_port;

# ---------------------------------------------------------------- a tiny FastCGI client
sub fcgi_record {
    my ($type, $content) = @_;
    my $pad = (8 - length($content) % 8) % 8;
    return pack('CCnnCC', 1, $type, 1, length $content, $pad, 0) . $content . ("\0" x $pad);
}

sub fcgi_params {
    my (%p) = @_;
    my $b = '';
    for my $k (sort keys %p) {
        for my $len (length $k, length $p{$k}) {
            $b .= $len < 128 ? pack('C', $len) : pack('N', $len | 0x80000000);
        }
        $b .= $k . $p{$k};
    }
    return $b;
}

# One GET /healthz from local address $from: (bytes received, whether the
# peer closed). Reads until EOF, bounded by 10 s.
sub fcgi_get {
    my ($from) = @_;
    my $c = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, LocalAddr => $from, Proto => 'tcp', Timeout => 5,
    ) or return (undef, "connect: $!");
    local $SIG{PIPE} = 'IGNORE';
    my $req = fcgi_record(1, pack('nCx5', 1, 0))
        . fcgi_record(4, fcgi_params(REQUEST_METHOD => 'GET', REQUEST_URI => '/healthz', QUERY_STRING => '',
                                     SCRIPT_NAME => '/healthz', DOCUMENT_URI => '/healthz', SERVER_PROTOCOL => 'HTTP/1.1',
                                     REMOTE_ADDR => $from, CONTENT_LENGTH => '0'))
        . fcgi_record(4, '') . fcgi_record(5, '');
    syswrite($c, $req);
    my $got = '';
    my $sel = IO::Select->new($c);
    my $deadline = time + 10;
    my $eof = 0;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread($c, my $buf, 65536);
        if (!$n) { $eof = 1; last }
        $got .= $buf;
    }
    close $c;
    return ($got, $eof);
}

sub accepted {
    my $r = $s->get('/status?json');
    return $r->{json}{accepted_conn};
}

# ---------------------------------------------------------------- 1. nginx over TCP
{
    my $r = $s->get('/healthz');
    is($r->{status}, 200, 'nginx reaches jangteod over TCP 127.0.0.1:PORT');
    like($s->log_text('error'), qr/listen=127\.0\.0\.1:$port/, 'the master logs its TCP listen address');
}

# ---------------------------------------------------------------- 2. an allowed peer is served
{
    my ($got, $eof) = fcgi_get('127.0.0.1');
    like($got // '', qr/Status: 200/, 'a FastCGI request from 127.0.0.1 (allowed) is answered 200');
    ok($eof, 'and the connection ends after the answer');
}

# ---------------------------------------------------------------- 3. any other peer is closed unread
{
    my $before = accepted();
    my ($got, $eof) = fcgi_get('127.0.0.2');
    is($got, '', 'a FastCGI request from 127.0.0.2 (not allowed) gets not one byte back');
    ok($eof, 'its connection is closed by jangteod');
    my $after = accepted();
    # /status itself is the one request accepted between the two readings
    is($after - $before, 1, 'the refused connection was never accepted as a request (accepted conn: +1, the /status read)');
    unlike($s->log_text('access'), qr/127\.0\.0\.2/, 'nothing from 127.0.0.2 reached the access log');
    my ($again) = fcgi_get('127.0.0.1');
    like($again // '', qr/Status: 200/, 'the workers go on serving allowed peers');
}

# ---------------------------------------------------------------- 4. settings that cannot be enforced
{
    my $bin = $s->bin('jangteod');
    my $dir = $s->dir;
    my %bad = (
        'empty fastcgi_allow' => "[server]\nlisten = 127.0.0.1:$port\nfastcgi_allow =\n",
        'a network, not an address' => "[server]\nlisten = 127.0.0.1:$port\nfastcgi_allow = 10.0.0.0/24\n",
        'an IPv6 listen' => "[server]\nlisten = [::1]:$port\n",
        'a port out of range' => "[server]\nlisten = 127.0.0.1:70000\n",
    );
    for my $name (sort keys %bad) {
        my $f = "$dir/bad-$$.conf";
        open my $fh, '>', $f or die $!;
        print $fh $bad{$name};
        close $fh;
        my $out = `$bin -c $f 2>&1`;
        my $rc = $? >> 8;
        is($rc, 1, "jangteod refuses to start with $name") or diag($out);
        like($out, qr/fastcgi_allow|listen/, "  and says which setting ($name)");
        unlink $f;
    }
    my $cfg = `$bin --print-config`;
    like($cfg, qr/^fastcgi_allow = 127\.0\.0\.1$/m, '--print-config lists fastcgi_allow with its default');
}

done_testing();
