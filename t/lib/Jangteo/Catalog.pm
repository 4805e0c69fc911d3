package Jangteo::Catalog;

# Helpers the catalog tests (t/5x) share: products made through the API, a
# buyer with points, orders, and UTC times. Core Perl only; built on
# Jangteo::Client (which has jreq).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use JSON::PP;
use POSIX qw(strftime);
use Test::More ();
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(login bearer charge new_user jreq);

our @EXPORT_OK = qw(
    make_product product order_for cancel_order rich_buyer iso_utc
    demo_tokens shipping metric wait_until list_path audit_ok
);

my $JSON = JSON::PP->new->utf8->canonical;
my $SEQ  = 0;

# POST /api/v1/products; croaks unless 201. Returns the detail body.
sub make_product {
    my ($s, $token, %f) = @_;
    $SEQ++;
    my %body = (name => "상품 $$-$SEQ", price => 1000, stock => 100, %f);
    delete $body{stock} if exists $f{stock} && !defined $f{stock};
    my $r = jreq($s, 'POST', '/api/v1/products', $token, \%body);
    croak "create product: $r->{status} $r->{body}" unless $r->{status} == 201 && ref $r->{json} eq 'HASH';
    return $r->{json};
}

# /api/v1/products?... with each value UTF-8 and percent-encoded.
sub list_path {
    my (%q) = @_;
    my @kv;
    for my $k (sort keys %q) {
        my $v = $q{$k};
        utf8::encode($v) if utf8::is_utf8($v);
        $v =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
        push @kv, "$k=$v";
    }
    return '/api/v1/products' . (@kv ? '?' . join('&', @kv) : '');
}

sub product { my ($s, $id) = @_; return $s->get("/api/v1/products/$id") }

sub shipping {
    return { recipient => '홍길동', phone => '010-1234-5678', zipCode => '06236', address => '서울' };
}

# POST /api/v1/orders for one or more [productId, quantity(, optionId)].
sub order_for {
    my ($s, $token, @lines) = @_;
    my @items = map {
        my %i = (productId => $_->[0], quantity => $_->[1]);
        $i{optionId} = $_->[2] if defined $_->[2];
        \%i;
    } @lines;
    return jreq($s, 'POST', '/api/v1/orders', $token, { items => \@items, shipping => shipping() });
}

sub cancel_order {
    my ($s, $token, $oid) = @_;
    return jreq($s, 'POST', "/api/v1/orders/$oid/cancel", $token);
}

# A fresh buyer charged with 1,000,000 points (or $amount).
sub rich_buyer {
    my ($s, $amount) = @_;
    my $u = new_user($s, tag => 'buyer');
    my $r = charge($s, $u->{id}, $u->{token}, $amount // 1_000_000, "charge-$$-" . ++$SEQ . '-' . int(rand(1e9)));
    croak "charge: $r->{status} $r->{body}" unless $r->{status} == 200 || $r->{status} == 201;
    return $u;
}

# Epoch seconds (fractions dropped) as 2026-12-01T09:00:00Z.
sub iso_utc { return strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(int $_[0])) }

# Tokens of the three demo accounts.
sub demo_tokens {
    my ($s) = @_;
    return {
        admin  => login($s, 'admin@jangteo.test', 'jangteo-admin-1234'),
        seller => login($s, 'seller@jangteo.test', 'jangteo-seller-1234'),
        buyer  => login($s, 'buyer@jangteo.test', 'jangteo-buyer-1234'),
    };
}

# A counter's value in GET /metrics (sum over label sets); 0 when absent.
sub metric {
    my ($s, $name) = @_;
    my $r = $s->get('/metrics');
    croak "metrics: $r->{status}" unless $r->{status} == 200;
    my $sum = 0;
    for my $l (split /\n/, $r->{body}) {
        $sum += $1 if $l =~ /^\Q$name\E(?:\{[^}]*\})?\s+([0-9.eE+-]+)/;
    }
    return $sum;
}

# GET /api/v1/admin/audit (every money and stock invariant) must be clean.
sub audit_ok {
    my ($s, $admin_token) = @_;
    my $r = $s->get('/api/v1/admin/audit', bearer($admin_token));
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $r->{status} == 200 && ref $r->{json} eq 'HASH' && $r->{json}{clean};
    Test::More::ok($ok, 'admin audit: every stock and money invariant holds') or Test::More::diag("$r->{status} $r->{body}");
    return $ok;
}

# Calls $cond every $step seconds until it is true or $limit seconds pass.
sub wait_until {
    my ($cond, $limit, $step) = @_;
    my $deadline = time + ($limit // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time >= $deadline;
        sleep($step // 0.1);
    }
}

1;
