package Jangteo::Client;

# Helpers the account and point tests share: a stack with a PII key and a
# fast password hash, users and tokens, and requests fired at the same
# moment from forked children. Core Perl only.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(_exit);
use Storable qw(nstore retrieve);
use Test::More ();

our @EXPORT_OK = qw(
    test_stack new_user login bearer charge charge_raw concurrent
    invariant_ok ledger_rows balance_of is_problem raw_request
);

my $JSON = JSON::PP->new->utf8->canonical;
my $SEQ  = 0;

# A PII key file in its own private directory: one line "1 <64 hex>".
sub pii_key_file {
    my $dir = tempdir('jangteo-key-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $r, '<:raw', '/dev/urandom' or croak "urandom: $!";
    read($r, my $raw, 32) == 32 or croak 'short read from urandom';
    my $f = "$dir/pii.key";
    open my $w, '>', $f or croak "$f: $!";
    print $w '1 ', unpack('H*', $raw), "\n";
    close $w or croak "$f: $!";
    chmod 0600, $f;
    return $f;
}

# Jangteo::Stack->new with [pii] and a cheap [auth] KDF merged into `conf`.
sub test_stack {
    my (%opt) = @_;
    require Jangteo::Stack;
    my %conf = %{ $opt{conf} || {} };
    $conf{pii}  = { key_file => pii_key_file(), %{ $conf{pii} || {} } };
    $conf{auth} = { kdf_memlimit_kib => 8192, kdf_opslimit => 1, %{ $conf{auth} || {} } };
    return Jangteo::Stack->new(demo => 0, %opt, conf => \%conf);
}

sub bearer { return defined $_[0] ? { Authorization => "Bearer $_[0]" } : {} }

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

# Runs every request of @$reqs ([method, path, \%headers, $body]) in its own
# forked child, all released at once by closing a pipe. Returns the answers
# in order (hashes as Jangteo::Stack::request makes them).
sub concurrent {
    my ($s, $reqs) = @_;
    my $dir = tempdir('jangteo-conc-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    pipe(my $gate_r, my $gate_w) or croak "pipe: $!";
    my @pids;
    for my $i (0 .. $#$reqs) {
        my $pid = fork() // croak "fork: $!";
        if ($pid == 0) {
            close $gate_w;
            my $x = <$gate_r>;    # EOF when the parent lets go
            my $res = eval { $s->request(@{ $reqs->[$i] }) } || { status => 599, body => "client: $@", headers => {} };
            delete $res->{json};
            nstore($res, "$dir/$i") ;
            _exit(0);
        }
        push @pids, $pid;
    }
    close $gate_r;
    close $gate_w;
    waitpid($_, 0) for @pids;
    my @out;
    for my $i (0 .. $#$reqs) {
        my $res = -e "$dir/$i" ? retrieve("$dir/$i") : { status => 598, body => 'child died', headers => {} };
        my $ct = $res->{headers}{'content-type'} // '';
        $res->{json} = eval { $JSON->decode($res->{body}) } if $ct =~ /json/;
        push @out, $res;
    }
    return \@out;
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

# Asserts a problem+json answer with the given status and code.
sub is_problem {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    my $ok = ($r->{status} // 0) == $status
        && ($r->{headers}{'content-type'} // '') =~ m{^application/problem\+json\b}
        && (!defined $code || ($j->{code} // '') eq $code)
        && !grep { !exists $j->{$_} } qw(type title status detail code);
    Test::More::ok($ok, $name) or Test::More::diag("got $r->{status}: $r->{body}");
    return $ok;
}

1;
