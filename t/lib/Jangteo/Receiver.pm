package Jangteo::Receiver;

# A fake webhook receiver on 127.0.0.1 for the event tests: a forked child
# that accepts HTTP POSTs, writes each one (its headers and body) as a line
# of JSON to a log, and answers as its mode says:
#
#   ok           200 to everything
#   fail_twice   500 to the first two calls of each webhook-id, then 200
#   hang         reads the request and never answers (holds the socket)
#
# It serves one connection at a time (a hung one is set aside, not waited
# on), lives at most `lifetime` seconds, and is stopped by stop() or by its
# parent's death. Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->utf8->canonical;

sub new {
    my ($class, %o) = @_;
    my $self = bless { mode => $o{mode} // 'ok', lifetime => $o{lifetime} // 600, owner => $$ }, $class;
    my $dir = $o{dir} or croak 'dir';
    $self->{log} = "$dir/receiver-$self->{mode}-" . int(rand(1e9)) . '.log';
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 64,
        ReuseAddr => 1) or croak "listen: $!";
    $self->{port} = $srv->sockport;
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        eval { _serve($self, $srv) };
        _exit(0);
    }
    close $srv;
    $self->{pid} = $pid;
    return $self;
}

sub url { my ($self, $path) = @_; "http://127.0.0.1:$self->{port}" . ($path // '/hook') }

# Every request it has read so far: [{ id, timestamp, signature, body, at }]
sub requests {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return [];
    my @r = map { $JSON->decode($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@r;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

sub _serve {
    my ($self, $srv) = @_;
    my $deadline = time + $self->{lifetime};
    my (%calls, @held);
    local $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($srv);
    while (time < $deadline) {
        # the parent is gone: so are we
        last if getppid() == 1;
        next unless $sel->can_read(0.5);
        my $c = $srv->accept or next;
        my $req = _read_request($c, 10);
        if (!$req) { close $c; next }
        open my $log, '>>', $self->{log} or die "log: $!";
        print {$log} $JSON->encode({ %$req, at => time }) . "\n";
        close $log;
        if ($self->{mode} eq 'hang') {
            push @held, $c;    # never answered, never closed while we live
            next;
        }
        my $status = 200;
        if ($self->{mode} eq 'fail_twice' && ++$calls{ $req->{id} // '' } <= 2) {
            $status = 500;
        }
        my $body = $status == 200 ? 'ok' : 'try again';
        print {$c} "HTTP/1.1 $status X\r\nContent-Type: text/plain\r\nContent-Length: " . length($body)
            . "\r\nConnection: close\r\n\r\n$body";
        close $c;
    }
}

# One HTTP request: its webhook headers and body (undef when it never came
# whole within $limit seconds).
sub _read_request {
    my ($c, $limit) = @_;
    my $buf = '';
    my $end = time + $limit;
    my $sel = IO::Select->new($c);
    while (time < $end) {
        if ($buf =~ /\r\n\r\n/) {
            my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
            my %h;
            for my $l (split /\r\n/, $head) {
                $h{ lc $1 } = $2 if $l =~ /^([^:]+):\s*(.*)$/;
            }
            my $len = $h{'content-length'} // 0;
            if (length($rest) >= $len) {
                return { id => $h{'webhook-id'}, timestamp => $h{'webhook-timestamp'},
                         signature => $h{'webhook-signature'}, type => $h{'content-type'},
                         body => substr($rest, 0, $len) };
            }
        }
        next unless $sel->can_read(0.2);
        my $n = sysread($c, my $chunk, 65536);
        return undef unless $n;
        $buf .= $chunk;
    }
    return undef;
}

1;
