# openapi/jangteo.yaml against the code: every route of the route table
# (bar the test-only ones) is an operation of the spec and the other way
# round; every problem code of the error table, and of nginx's own pages,
# is in the ProblemNNN schema of its status, and nothing else is. The tables
# come from the compiled daemon (t/unit/api_table), not from reading C.
# Then the spec lints clean (redocly, every recommended rule an error).
#
# The comparison is proved able to fail: it is run once more on a copy of
# both sides with one route and one code taken away, and must name them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use YAML::XS ();
use Jangteo::Stack;

my $src   = Jangteo::Stack::srcdir();
my $build = Jangteo::Stack::builddir();
my $spec_file = $ENV{JANGTEO_OPENAPI} // "$src/openapi/jangteo.yaml";
my $spec = YAML::XS::LoadFile($spec_file);
my %METHODS = map { $_ => 1 } qw(get put post patch delete head);

# --- the code's side
my $helper = "$build/t/unit/api_table";
ok(-x $helper, 't/unit/api_table is built') or BAIL_OUT("$helper missing: make check builds it");
my (%code_routes, %code_codes);
for my $line (split /\n/, `$helper`) {
    if ($line =~ /^route (\S+) (\S+)$/) {
        $code_routes{"$1 $2"} = 1;
    } elsif ($line =~ /^code (\d+) (\S+)$/) {
        $code_codes{$2} = $1;
    }
}
is($? >> 8, 0, 'api_table ran');
cmp_ok(scalar(keys %code_routes), '>=', 30, 'the route table has its routes') or diag(join "\n", sort keys %code_routes);
cmp_ok(scalar(keys %code_codes), '>=', 40, 'the error table has its codes');

# nginx answers some problems itself (conf/nginx/jangteo-locations.conf)
my $loc = do { local (@ARGV, $/) = ("$src/conf/nginx/jangteo-locations.conf"); <> };
my $nginx = 0;
while ($loc =~ /return (\d{3}) '\{[^']*"code":"([A-Z_]+)"/g) {
    my ($st, $c) = ($1, $2);
    $nginx++;
    if (exists $code_codes{$c} && $code_codes{$c} != $st) {
        fail("nginx's $c is $st, the error table's $code_codes{$c}");
    }
    $code_codes{$c} = $st;
}
cmp_ok($nginx, '>=', 8, "nginx's own problem pages found ($nginx)");

# --- the spec's side
my (%spec_routes, %spec_codes, @shape);
for my $path (sort keys %{ $spec->{paths} }) {
    for my $m (sort keys %{ $spec->{paths}{$path} }) {
        next unless $METHODS{$m};
        $spec_routes{ uc($m) . " $path" } = 1;
    }
}
my $schemas = $spec->{components}{schemas};
for my $name (sort grep { /^Problem\d{3}$/ } keys %$schemas) {
    my ($status) = $name =~ /(\d{3})/;
    my $p = $schemas->{$name}{properties};
    push @shape, "$name: status is not const $status" unless ($p->{status}{const} // '') eq $status;
    push @shape, "$name: additionalProperties is not false"
        unless exists $schemas->{$name}{additionalProperties} && !$schemas->{$name}{additionalProperties};
    for my $c (@{ $p->{code}{enum} || [] }) {
        push @shape, "$c is in $name and in Problem$spec_codes{$c}" if exists $spec_codes{$c};
        $spec_codes{$c} = $status;
    }
}
is_deeply(\@shape, [], 'every ProblemNNN schema is strict and names its status') or diag(join "\n", @shape);

# Returns the differences of two sides as readable lines.
sub differences {
    my ($cr, $sr, $cc, $sc) = @_;
    my @d;
    push @d, "route $_ is in src/routes.c but not in the spec" for grep { !$sr->{$_} } sort keys %$cr;
    push @d, "route $_ is in the spec but not in src/routes.c" for grep { !$cr->{$_} } sort keys %$sr;
    push @d, "code $_ ($cc->{$_}) is in the error table but not in the spec" for grep { !exists $sc->{$_} } sort keys %$cc;
    push @d, "code $_ ($sc->{$_}) is in the spec but not in the error table" for grep { !exists $cc->{$_} } sort keys %$sc;
    push @d, "code $_ is $cc->{$_} in the error table but $sc->{$_} in the spec"
        for grep { exists $sc->{$_} && $sc->{$_} != $cc->{$_} } sort keys %$cc;
    return @d;
}

my @d = differences(\%code_routes, \%spec_routes, \%code_codes, \%spec_codes);
is_deeply(\@d, [], 'routes and problem codes agree between the code and the spec') or diag(join "\n", @d);

# the check can fail: drop a route from the spec's side and a code from the
# code's, move another code's status, and it must say exactly that
{
    my %sr = %spec_routes;
    my %cc = %code_codes;
    my %sc = %spec_codes;
    delete $sr{'POST /api/v1/orders'};
    delete $cc{OUT_OF_STOCK};
    $sc{EMAIL_TAKEN} = 400;
    is_deeply([ differences(\%code_routes, \%sr, \%cc, \%sc) ], [
        'route POST /api/v1/orders is in src/routes.c but not in the spec',
        'code OUT_OF_STOCK (409) is in the spec but not in the error table',
        'code EMAIL_TAKEN is 409 in the error table but 400 in the spec',
    ], 'the comparison reports a missing route, a missing code and a moved status');
}

# every path parameter of a route is declared, with the route's name
for my $path (sort keys %{ $spec->{paths} }) {
    my @want = $path =~ /\{(\w+)\}/g;
    for my $m (grep { $METHODS{$_} } sort keys %{ $spec->{paths}{$path} }) {
        my $op = $spec->{paths}{$path}{$m};
        my %have;
        for my $p (@{ $op->{parameters} || [] }) {
            if ($p->{'$ref'}) {
                my ($n) = $p->{'$ref'} =~ m{^#/components/parameters/(\w+)$};
                $p = $spec->{components}{parameters}{$n};
            }
            $have{ $p->{name} } = 1 if $p->{in} eq 'path';
        }
        is_deeply([ sort keys %have ], [ sort @want ], uc($m) . " $path declares its path parameters");
    }
}

# --- lint (npm's @redocly/cli, installed by scripts/install-deps)
SKIP: {
    my $redocly = "$src/node_modules/.bin/redocly";
    skip 'JANGTEO_OPENAPI points at another spec: not linted', 2 if $ENV{JANGTEO_OPENAPI};
    ok(-x $redocly, 'redocly is installed (npm ci: scripts/install-deps)') or skip 'no redocly', 1;
    local $ENV{REDOCLY_TELEMETRY} = 'off';
    local $ENV{REDOCLY_SUPPRESS_UPDATE_NOTICE} = 'true';
    my $out = `cd '$src' && '$redocly' lint --config redocly.yaml --format stylish openapi/jangteo.yaml 2>&1`;
    my $rc = $? >> 8;
    my $clean = $rc == 0 && $out =~ /Your API description is valid/ && $out !~ /\d+ (?:error|warning)/;
    ok($clean, 'redocly lint: 0 errors, 0 warnings') or diag($out);
}

done_testing;
