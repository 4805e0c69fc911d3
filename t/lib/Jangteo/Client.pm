package Jangteo::Client;

# The one client module of the tests: the one test stack constructor, the
# request helpers every other helper module and test builds on (bearer,
# jreq, do_request, requests fired at the same moment from forked
# children, raw bytes HTTP::Tiny refuses to send), users and tokens,
# charges, problem answers and the balance invariant. Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use IO::Select;
use JSON::PP;
use POSIX qw(_exit :sys_wait_h);
use Test::More ();
use Time::HiRes qw(time sleep);
use Jangteo::Stack;

our @EXPORT_OK = qw(
    test_stack bearer jreq http_client do_request concurrent raw_request
    new_user login charge charge_raw invariant_ok ledger_rows balance_of is_problem
);

my $JSON = JSON::PP->new->utf8->canonical;
my $SEQ  = 0;

# The stack every test boots (Jangteo::Stack->new, which also writes the
# PII key file): no demo data unless asked, and a cheap password hash (the
# tests register hundreds of users) merged into `conf`.
sub test_stack {
    my (%opt) = @_;
    my %conf = %{ $opt{conf} || {} };
    $conf{auth} = { kdf_memlimit_kib => 8192, kdf_opslimit => 1, %{ $conf{auth} || {} } };
    return Jangteo::Stack->new(demo => 0, %opt, conf => \%conf);
}

sub bearer { return defined $_[0] ? { Authorization => "Bearer $_[0]" } : {} }

*http_client = \&Jangteo::Stack::http_client;

# One request through $http (undef: the stack's own client). A body that
# is a reference is sent as JSON; any body goes as application/json unless
# the headers say otherwise. The answer as Jangteo::Stack::request gives it.
sub do_request {
    my ($http, $s, $method, $path, $headers, $body) = @_;
    my %h = %{ $headers || {} };
    if (defined $body) {
        $body = $JSON->encode($body) if ref $body;
        $h{'Content-Type'} //= 'application/json' unless grep { lc($_) eq 'content-type' } keys %h;
    }
    return $s->request($method, $path, \%h, $body, $http ? (http => $http) : ());
}

# Any method with a JSON body and an optional token; extra headers merged in.
sub jreq {
    my ($s, $method, $path, $token, $body, %h) = @_;
    return do_request(undef, $s, $method, $path, { %{ bearer($token) }, %h }, $body);
}

# Runs every request of @$reqs ([method, path, \%headers, $body], as
# do_request takes them) in its own forked child; all are released at once
# by closing a pipe, once every child is forked and waiting. Answers come
# back in request order. Options:
#   just_before => sub   called right before the release (a clock set there
#                        is a few ms old when the requests arrive, however
#                        long forking took)
#   on_answer => sub     called with the count each time an answer arrives
#                        (to act mid-run)
#   stagger => s         request $i leaves $i * s seconds after the release
#                        (overlapping sends, in a known order)
#   timeout => s         children still running then are killed and
#                        reported as status 597 (150)
sub concurrent {
    my ($s, $reqs, %opt) = @_;
    my $timeout = $opt{timeout} // 150;
    pipe(my $gate_r, my $gate_w) or croak "pipe: $!";
    pipe(my $ready_r, my $ready_w) or croak "pipe: $!";
    my (@pids, %slot_of, @out);
    my $sel = IO::Select->new;
    for my $i (0 .. $#$reqs) {
        pipe(my $rd, my $wr) or croak "pipe: $!";
        my $pid = fork() // croak "fork: $!";
        if ($pid == 0) {
            close $gate_w;
            close $ready_r;
            close $rd;
            syswrite($ready_w, 'r');
            close $ready_w;
            my $x = <$gate_r>;    # EOF when the parent lets go
            sleep($opt{stagger} * $i) if $opt{stagger};
            my $res = eval { do_request(http_client(timeout => 120), $s, @{ $reqs->[$i] }) }
                || { status => 599, body => "client: $@", headers => {} };
            print {$wr} $JSON->encode($res);
            close $wr;
            _exit(0);
        }
        close $wr;
        push @pids, $pid;
        $slot_of{ fileno $rd } = [ $i, '' ];
        $sel->add($rd);
    }
    close $gate_r;
    close $ready_w;
    for (my $ready = 0; $ready < @$reqs;) {
        my $n = sysread($ready_r, my $buf, 4096);
        last unless $n;
        $ready += $n;
    }
    close $ready_r;
    $opt{just_before}->() if $opt{just_before};
    close $gate_w;    # go
    my $deadline = time + $timeout;
    my $answered = 0;
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(0.5)) {
            my $slot = $slot_of{ fileno $fh };
            my $n = sysread($fh, my $buf, 65536);
            if ($n) { $slot->[1] .= $buf; next }
            next if !defined $n && $!{EINTR};
            $sel->remove($fh);
            close $fh;
            $out[ $slot->[0] ] = length $slot->[1]
                ? eval { $JSON->decode($slot->[1]) } || { status => 598, body => 'bad child output', headers => {} }
                : { status => 598, body => 'child died', headers => {} };
            $answered++;
            $opt{on_answer}->($answered) if $opt{on_answer};
        }
    }
    for my $fh ($sel->handles) {
        $out[ $slot_of{ fileno $fh }[0] ] = { status => 597, body => 'no answer in time', headers => {} };
        close $fh;
    }
    kill 'KILL', grep { waitpid($_, WNOHANG) == 0 } @pids if $sel->count;
    waitpid($_, 0) for @pids;
    return \@out;
}

sub unique_email {
    my ($tag) = @_;
    $SEQ++;
    return sprintf('%s-%d-%d-%d@example.com', $tag // 'user', $$, time, $SEQ);
}

# POST /api/v1/auth/tokens; returns the token or croaks.
sub login {
    my ($s, $email, $password) = @_;
    my $r = $s->post_json('/api/v1/auth/tokens', { email => $email, password => $password });
    croak "login $email: $r->{status} $r->{body}" unless $r->{status} == 201 && $r->{json};
    return $r->{json}{token};
}

# Registers a user (fields overridable) and logs in. Returns a hash with
# id, email, password, phone, name, token.
sub new_user {
    my ($s, %f) = @_;
    my %u = (
        email    => unique_email($f{tag}),
        password => 'pw-' . int(rand(1e9)) . '-secret',
        name     => '테스트 사용자',
        phone    => '010-1234-5678',
        %f,
    );
    delete $u{tag};
    my $r = $s->post_json('/api/v1/users', \%u);
    croak "register $u{email}: $r->{status} $r->{body}" unless $r->{status} == 201 && $r->{json};
    $u{id}    = $r->{json}{userId};
    $u{token} = login($s, $u{email}, $u{password});
    return \%u;
}

# POST /charge with an integer amount (or any JSON text when $raw).
sub charge {
    my ($s, $uid, $token, $amount, $key, %h) = @_;
    my %hdr = (%{ bearer($token) }, %h);
    $hdr{'Idempotency-Key'} = $key if defined $key;
    return $s->post_json("/api/v1/users/$uid/charge", { amount => $amount }, \%hdr);
}

sub charge_raw {
    my ($s, $uid, $token, $body, $key) = @_;
    my %hdr = %{ bearer($token) };
    $hdr{'Idempotency-Key'} = $key if defined $key;
    return $s->post_json("/api/v1/users/$uid/charge", $body, \%hdr);
}

# Sends bytes HTTP::Tiny refuses to send (control characters in a header):
# an HTTP/1.0 request written by hand. Returns the same hash as request().
sub raw_request {
    my ($s, $method, $path, $headers, $body) = @_;
    require IO::Socket::INET;
    local $SIG{PIPE} = 'IGNORE';
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp', Timeout => 30)
        or croak "connect: $!";
    $body //= '';
    my $req = "$method $path HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for @$headers;
    $req .= 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    print $sock $req;
    local $/;
    my $text = <$sock> // '';
    close $sock;
    my ($head, $content) = split /\r\n\r\n/, $text, 2;
    my ($status) = ($head // '') =~ m{^HTTP/\d\.\d (\d{3})};
    my %h;
    for my $l (split /\r\n/, $head // '') {
        $h{ lc $1 } = $2 if $l =~ /^([^:\s]+):\s*(.*)$/;
    }
    my $res = { status => $status // 0, headers => \%h, body => $content // '' };
    $res->{json} = eval { $JSON->decode($res->{body}) } if ($h{'content-type'} // '') =~ /json/;
    return $res;
}

sub balance_of {
    my ($s, $uid) = @_;
    return $s->sql("SELECT balance FROM users WHERE id = $uid")->[0][0];
}

sub ledger_rows {
    my ($s, $uid) = @_;
    return $s->sql("SELECT id, delta, balance_after, kind FROM point_ledger WHERE user_id = $uid ORDER BY id DESC");
}

# balance = SUM(ledger deltas) and balance >= 0, for every user.
sub invariant_ok {
    my ($s, $name) = @_;
    my $bad = $s->sql(
        'SELECT u.id FROM users u LEFT JOIN (SELECT user_id, SUM(delta) s FROM point_ledger GROUP BY user_id) l'
        . ' ON l.user_id = u.id WHERE u.balance <> COALESCE(l.s, 0) OR u.balance < 0');
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is(scalar(@$bad), 0, $name // 'every balance equals the sum of its ledger')
        or Test::More::diag('users: ' . join(',', map { $_->[0] } @$bad));
}

# Asserts a problem+json answer with the given status and code (any code
# when undef), carrying every RFC 9457 member.
sub is_problem {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    my $ok = ($r->{status} // 0) == $status
        && ($r->{headers}{'content-type'} // '') =~ m{^application/problem\+json\b}
        && (!defined $code || ($j->{code} // '') eq $code)
        && !grep { !exists $j->{$_} } qw(type title status detail code);
    Test::More::ok($ok, $name) or Test::More::diag("want $status " . ($code // 'any code') . ", got $r->{status}: $r->{body}");
    return $ok;
}

1;
