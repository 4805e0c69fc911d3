package Jangteo::Auctions;

# Helpers the auction tests (t/7x) share: the test clock (POST /test/clock),
# auctions made through the API in windows that never overlap, buyers made
# in bulk, points given through SQL with their ledger rows, bids, and bounded
# waits for the consumers. Core Perl only; built on Jangteo::Client.

use strict;
use warnings;
use utf8;

use Carp qw(croak);
use Exporter qw(import);
use JSON::PP;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(login bearer concurrent);

our @EXPORT_OK = qw(
    wall_ms iso clock_to clock_reset next_window auction_body create_auction
    make_users fund bid bid_req receipt_of wait_settled receipt_counts
    consumer_pids
);

my $JSON = JSON::PP->new->utf8->canonical;
my $SEQ  = 0;

sub wall_ms { int(time() * 1000) }

# Epoch ms -> "2026-11-23T13:00:00.000Z", the form the server writes.
sub iso {
    my ($ms) = @_;
    return sprintf('%s.%03dZ', strftime('%Y-%m-%dT%H:%M:%S', gmtime(int($ms / 1000))), $ms % 1000);
}

# Moves the auction clock of every process so that "now" is $target_ms at
# the moment of the call (time then runs on from there). Returns nowMs.
sub clock_to {
    my ($s, $target_ms) = @_;
    my $off = $target_ms - wall_ms();
    my $r = $s->post_json('/test/clock', { offsetMs => $off });
    croak "POST /test/clock: $r->{status} $r->{body}" unless $r->{status} == 200 && $r->{json};
    return $r->{json}{nowMs};
}

sub clock_reset {
    my ($s) = @_;
    my $r = $s->post_json('/test/clock', { offsetMs => 0 });
    croak "POST /test/clock: $r->{status} $r->{body}" unless $r->{status} == 200;
}

# A start time (epoch ms, whole minute) whose following two hours belong to
# one auction only: windows are at most an hour long.
my $BASE;
sub next_window {
    $BASE //= (int(time() / 60) + 60) * 60_000;
    return $BASE + 2 * 3_600_000 * $SEQ++;
}

# A valid creation body; %o overrides top-level fields. startsMs/endsMs (or
# minutes) set the window.
sub auction_body {
    my (%o) = @_;
    my $start = delete $o{startsMs} // next_window();
    my $min   = delete $o{minutes} // 10;
    my $end   = delete $o{endsMs} // $start + $min * 60_000;
    return {
        productName      => '타임세일 경매 상품',
        originPrice      => 10_000,
        stock            => 10,
        maxPerBuyer      => 5,
        pricePolicy      => { type => 'CONSTANT', variationWidth => 100 },
        variationSeconds => 60,
        startsAt         => iso($start),
        endsAt           => iso($end),
        showStock        => JSON::PP::true,
        %o,
    };
}

# Creates an auction (clock first put a minute before its start) and returns
# the 201 detail plus startsMs/endsMs. Croaks unless 201.
sub create_auction {
    my ($s, $token, %o) = @_;
    my $body = auction_body(%o);
    my $start = _parse_iso($body->{startsAt});
    clock_to($s, $start - 60_000);
    my $r = $s->post_json('/api/v1/auctions', $body, bearer($token));
    croak "create auction: $r->{status} $r->{body}" unless $r->{status} == 201 && $r->{json};
    my $a = $r->{json};
    $a->{startsMs} = $start;
    $a->{endsMs}   = _parse_iso($body->{endsAt});
    return $a;
}

sub _parse_iso {
    my ($t) = @_;
    my ($y, $mo, $d, $h, $mi, $sec, $ms) = $t =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?Z$/
        or croak "not an ISO time: $t";
    require Time::Local;
    my $e = Time::Local::timegm($sec, $mi, $h, $d, $mo - 1, $y);
    return $e * 1000 + ($ms ? substr($ms . '00', 0, 3) : 0);
}

# $n users registered and logged in, $batch requests at a time. Returns
# hashes with id, email, password, token.
sub make_users {
    my ($s, $n, %o) = @_;
    my $role  = $o{role} // 'BUYER';
    my $batch = $o{batch} // 25;
    my @u = map {
        {
            email    => sprintf('%s-%d-%d-%d@example.com', lc($o{tag} // 'bidder'), $$, time, ++$SEQ),
            password => 'pw-' . int(rand(1e9)) . '-auction',
            name     => '경매 참가자',
            phone    => '010-2222-3333',
            role     => $role,
        }
    } 1 .. $n;
    for (my $i = 0; $i < @u; $i += $batch) {
        my @part = @u[ $i .. ($i + $batch - 1 < $#u ? $i + $batch - 1 : $#u) ];
        my $res = concurrent($s, [ map { [ 'POST', '/api/v1/users', { 'Content-Type' => 'application/json' },
                                            $JSON->encode($_) ] } @part ]);
        for my $k (0 .. $#part) {
            croak "register: $res->[$k]{status} $res->[$k]{body}" unless $res->[$k]{status} == 201;
            $part[$k]{id} = $res->[$k]{json}{userId};
        }
        $res = concurrent($s, [ map { [ 'POST', '/api/v1/auth/tokens', { 'Content-Type' => 'application/json' },
                                         $JSON->encode({ email => $_->{email}, password => $_->{password} }) ] } @part ]);
        for my $k (0 .. $#part) {
            croak "login: $res->[$k]{status} $res->[$k]{body}" unless $res->[$k]{status} == 201;
            $part[$k]{token} = $res->[$k]{json}{token};
        }
    }
    return @u;
}

# Adds $amount points to each user id, with the CHARGE ledger row that keeps
# balance = SUM(ledger) and the running balance continuous.
sub fund {
    my ($s, $ids, $amount) = @_;
    return unless @$ids;
    my $in = join(',', map { int } @$ids);
    $s->sql("INSERT INTO point_ledger (user_id, delta, balance_after, kind)"
        . " SELECT id, $amount, balance + $amount, 'CHARGE' FROM users WHERE id IN ($in) ORDER BY id;"
        . " UPDATE users SET balance = balance + $amount, version = version + 1 WHERE id IN ($in)");
}

sub bid_req {
    my ($aid, $token, $price, $qty, $key) = @_;
    my %h = ('Content-Type' => 'application/json', %{ bearer($token) });
    $h{'Idempotency-Key'} = $key if defined $key;
    return [ 'POST', "/api/v1/auctions/$aid/bids", \%h, $JSON->encode({ price => $price, quantity => $qty }) ];
}

sub bid {
    my ($s, @a) = @_;
    return $s->request(@{ bid_req(@a) });
}

sub receipt_of {
    my ($s, $uuid, $token) = @_;
    my $r = $s->get("/api/v1/receipts/$uuid", bearer($token));
    return $r->{status} == 200 ? $r->{json} : undef;
}

# Polls until no receipt of the auction is PENDING (or $timeout seconds).
# Returns the number still pending.
sub wait_settled {
    my ($s, $aid, $timeout) = @_;
    my $deadline = time + ($timeout // 60);
    my $n;
    while (1) {
        $n = $s->sql("SELECT COUNT(*) FROM receipts WHERE auction_id = $aid AND status = 'PENDING'")->[0][0];
        return 0 if $n == 0;
        return $n if time > $deadline;
        sleep 0.1;
    }
}

# { STATUS => count, 'FAILED:CODE' => count, units => purchased units }
sub receipt_counts {
    my ($s, $aid) = @_;
    my %c;
    for my $row (@{ $s->sql("SELECT status, COALESCE(failure_code, ''), COUNT(*), SUM(quantity)"
                            . " FROM receipts WHERE auction_id = $aid GROUP BY 1, 2") }) {
        my ($st, $code, $n, $q) = @$row;
        $c{$st} += $n;
        $c{"$st:$code"} += $n if length $code;
        $c{units} += $q if $st eq 'PURCHASED';
    }
    $c{$_} //= 0 for qw(PENDING PURCHASED FAILED REFUNDED units);
    return \%c;
}

# The bid consumers: Jangteo::Stack's own consumer_pids when it has one;
# otherwise the master's children that GET /status?json does not list (those
# are the FastCGI workers).
sub consumer_pids {
    my ($s) = @_;
    return $s->consumer_pids if $s->can('consumer_pids');
    my $m = $s->master_pid or return ();
    my $st = $s->get('/status?json');
    croak "status: $st->{status}" unless $st->{status} == 200 && $st->{json};
    my %worker = map { $_->{pid} => 1 } @{ $st->{json}{processes} || [] };
    my @children = grep { /^\d+$/ } map { s/\s+//gr } split /\n/, scalar(`ps -o pid= --ppid $m`);
    return sort { $a <=> $b } grep { !$worker{$_} } @children;
}

1;
