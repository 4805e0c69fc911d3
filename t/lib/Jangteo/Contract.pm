package Jangteo::Contract;

# The contract test's engine: `prism proxy` (npm's @stoplight/prism-cli,
# pinned) between the test and a Jangteo::Stack, validating every request
# and every answer against openapi/jangteo.yaml. Prism reports what broke
# the spec in an `sl-violations` header; `call` fails the test on any
# violation the scenario did not announce:
#
#   call($method, $path, %o)
#     headers => {...}, json => $data | body => $bytes, token => $t
#     status  => 201              the status the scenario expects
#     breaks_request => 1         the request breaks the spec on purpose (an
#                                 error-class case): it must be flagged as
#                                 such, and the answer must still validate
#     unrouted => 1               no operation exists for it (405): prism can
#                                 only say so; the test checks the problem
#
# Every call is counted against the operation it matched, so the test can
# require that every operation of the spec was exercised.

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(setpgid _exit :sys_wait_h);
use Test::More ();
use Time::HiRes qw(time sleep);
use YAML::XS ();
use Jangteo::Stack;

our @EXPORT_OK = qw(contract_start call coverage spec_operations contract_stop);

my $JSON = JSON::PP->new->utf8->canonical;
my %C;    # the one proxy of this test

# Starts prism in front of $stack; returns its base URL.
sub contract_start {
    my ($stack) = @_;
    my $src = Jangteo::Stack::srcdir();
    my $prism = "$src/node_modules/.bin/prism";
    croak "$prism missing: scripts/install-deps runs npm ci" unless -x $prism;
    my $spec = "$src/openapi/jangteo.yaml";
    my $port = Jangteo::Stack::free_port();
    my $log = $stack->dir . '/prism.log';
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log or _exit(127);
        open STDERR, '>&', \*STDOUT;
        exec { $prism } $prism, 'proxy', '--host', '127.0.0.1', '--port', $port, '--errors', 'false',
            '--cors', 'false', $spec, $stack->url('') or _exit(127);
    }
    %C = (pid => $pid, port => $port, log => $log, stack => $stack, seen => {}, calls => 0,
        ops => spec_operations($spec),
        http => HTTP::Tiny->new(timeout => 30, proxy => undef, http_proxy => undef, keep_alive => 0,
            max_redirect => 0, agent => 'jangteo-contract/1'));
    my $deadline = time + 60;
    while (time < $deadline) {
        my $r = $C{http}->get("http://127.0.0.1:$port/healthz");
        return "http://127.0.0.1:$port" if $r->{status} == 200;
        croak "prism exited:\n" . _slurp($log) if waitpid($pid, WNOHANG) == $pid;
        sleep 0.2;
    }
    croak "prism did not answer in 60 s:\n" . _slurp($log);
}

sub contract_stop {
    return unless $C{pid};
    kill 'TERM', -$C{pid};
    kill 'TERM', $C{pid};
    my $deadline = time + 10;
    while (waitpid($C{pid}, WNOHANG) == 0 && time < $deadline) { sleep 0.05 }
    kill 'KILL', $C{pid} if waitpid($C{pid}, WNOHANG) == 0;
    delete $C{pid};
}

END { contract_stop() }

# { "GET /api/v1/products/{id}" => regex, ... } of every operation
sub spec_operations {
    my ($file) = @_;
    my $spec = YAML::XS::LoadFile($file);
    my %ops;
    for my $path (keys %{ $spec->{paths} }) {
        (my $re = quotemeta $path) =~ s/\\\{\w+\\\}/[^\/]+/g;
        for my $m (grep { /^(?:get|put|post|patch|delete)$/ } keys %{ $spec->{paths}{$path} }) {
            $ops{ uc($m) . " $path" } = { re => qr/^$re$/, literal => ($path =~ tr/{//) ? 0 : 1 };
        }
    }
    return \%ops;
}

# The operation a request matches: a literal path before a templated one,
# as the router and OpenAPI both choose.
sub _operation_of {
    my ($method, $path) = @_;
    $path =~ s/\?.*//;
    my @m = grep { index($_, "$method ") == 0 && $path =~ $C{ops}{$_}{re} } keys %{ $C{ops} };
    @m = sort { $C{ops}{$b}{literal} <=> $C{ops}{$a}{literal} || $a cmp $b } @m;
    return $m[0];
}

sub call {
    my ($method, $path, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};
    my $body = $o{body};
    if (exists $o{json}) {
        $body = ref $o{json} ? $JSON->encode($o{json}) : $o{json};
        $h{'Content-Type'} //= 'application/json';
    }
    my %req = (headers => \%h);
    $req{content} = $body if defined $body;
    local $SIG{PIPE} = 'IGNORE';
    my $r = $C{http}->request($method, "http://127.0.0.1:$C{port}$path", \%req);
    my %hdr = map { lc($_) => $r->{headers}{$_} } keys %{ $r->{headers} || {} };
    my $res = { status => $r->{status}, headers => \%hdr, body => $r->{content} // '' };
    $res->{json} = eval { $JSON->decode($res->{body}) } if ($hdr{'content-type'} // '') =~ /json/;
    my $v = $hdr{'sl-violations'};
    $res->{violations} = defined $v ? (eval { $JSON->decode($v) } || [ { location => ['?'], message => $v } ]) : [];
    $C{calls}++;

    my $name = $o{name} // "$method $path";
    my @req_v = grep { ($_->{location}[0] // '') eq 'request' } @{ $res->{violations} };
    my @res_v = grep { ($_->{location}[0] // '') ne 'request' } @{ $res->{violations} };
    my $op = _operation_of($method, $path);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = 1;
    my @why;
    if ($o{unrouted}) {
        my $routed = !grep { ($_->{message} // '') eq 'Selected route not found' } @req_v;
        push @why, 'prism found an operation for it' if $routed || $op;
    } else {
        push @why, "no operation of the spec matches $method $path" unless $op;
        $C{seen}{$op}{ $res->{status} }++ if $op;
        if ($o{breaks_request}) {
            push @why, 'the spec did not flag the request it should refuse' unless @req_v;
        } elsif (@req_v) {
            push @why, 'request breaks the spec';
        }
        push @why, 'answer breaks the spec' if @res_v;
    }
    if (defined $o{status} && $res->{status} != $o{status}) {
        push @why, "status $res->{status}, not $o{status}";
    }
    if (defined $o{code}) {
        my $got = ref $res->{json} eq 'HASH' ? ($res->{json}{code} // '') : '';
        push @why, "code '$got', not $o{code}" unless $got eq $o{code};
    }
    $ok = !@why;
    Test::More::ok($ok, $name) or Test::More::diag(join("\n", @why, "violations: " . ($v // 'none'),
        "answer: $res->{status} " . substr($res->{body}, 0, 600)));
    return $res;
}

# Operations of the spec no call matched, and the statuses seen per class.
sub coverage {
    my @missing = grep { !$C{seen}{$_} } sort keys %{ $C{ops} };
    my %classes;
    for my $op (values %{ $C{seen} }) {
        $classes{$_}++ for keys %$op;
    }
    return (\@missing, \%classes, $C{calls});
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return <$fh> // '';
}

1;
