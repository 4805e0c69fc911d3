package Jangteo::Orders;

# Helpers for the order tests (t/40, t/41): users made in parallel,
# products and options made with SQL, order requests and their tally, and
# the money/stock invariants. Requests, the stack and concurrency come from
# Jangteo::Client. Core Perl only.

use strict;
use warnings;
use utf8;

use Carp qw(croak);
use Exporter qw(import);
use IO::Select;
use JSON::PP;
use POSIX qw(_exit);
use Test::More ();
use Time::HiRes qw(time);
use Jangteo::Client qw(bearer http_client do_request);

our @EXPORT_OK = qw(
    make_users make_admin set_balance add_product add_option
    order_body place_order tally snapshot order_invariants_ok scalar_sql
);

my $JSON = JSON::PP->new->utf8->canonical;

# "201" / "409 OUT_OF_STOCK" / ... => count
sub tally {
    my ($res) = @_;
    my %t;
    $t{ $_->{status} . (defined $_->{code} ? " $_->{code}" : '') }++ for @$res;
    return \%t;
}

sub tally_text { my ($t) = @_; join(', ', map { "$_ => $t->{$_}" } sort keys %$t) }

# Registers $n users (and logs them in) from a pool of forked children, each
# hashing passwords in parallel. Returns [{id, token, email, password}].
sub make_users {
    my ($s, $n, %opt) = @_;
    my $par = $opt{parallel} // 8;
    my $tag = $opt{tag} // 'buyer';
    my @reqs;
    my @users;
    my @chunks;
    push @{ $chunks[ $_ % $par ] }, $_ for 0 .. $n - 1;
    my $sel = IO::Select->new;
    my (%buf, @pids);
    for my $chunk (grep { $_ } @chunks) {
        pipe(my $rd, my $wr) or croak "pipe: $!";
        my $pid = fork() // croak "fork: $!";
        if ($pid == 0) {
            close $rd;
            my $http = http_client(timeout => 120);
            my @made;
            my $ok = eval {
            for my $k (@$chunk) {
                my %u = (
                    email => sprintf('%s-%d-%d-%d@example.com', $tag, $$, $k, int(rand(1e9))),
                    password => "pw-$k-" . int(rand(1e9)) . '-secret',
                    name => "구매자 $k", phone => '010-1234-5678',
                );
                my $r = do_request($http, $s, 'POST', '/api/v1/users', {}, \%u);
                if ($r->{status} != 201) { print {$wr} $JSON->encode({ error => "register: $r->{status} $r->{body}" }); _exit(1) }
                $u{id} = $JSON->decode($r->{body})->{userId};
                $r = do_request($http, $s, 'POST', '/api/v1/auth/tokens', {}, { email => $u{email}, password => $u{password} });
                if ($r->{status} != 201) { print {$wr} $JSON->encode({ error => "login: $r->{status} $r->{body}" }); _exit(1) }
                $u{token} = $JSON->decode($r->{body})->{token};
                push @made, { %u, k => $k };
            }
            1;
            };
            if (!$ok) { print {$wr} $JSON->encode({ error => "child $$: $@" }); _exit(1) }
            print {$wr} $JSON->encode({ users => \@made });
            close $wr;
            _exit(0);
        }
        close $wr;
        push @pids, $pid;
        $buf{ fileno $rd } = '';
        $sel->add($rd);
    }
    my $deadline = time + 300;
    my @errors;
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(0.5)) {
            my $nread = sysread($fh, my $b, 65536);
            if ($nread) { $buf{ fileno $fh } .= $b; next }
            next if !defined $nread && $!{EINTR};
            my $got = eval { $JSON->decode($buf{ fileno $fh }) }
                || { error => 'child died (' . (defined $nread ? 'eof' : "read: $!") . ', ' . length($buf{ fileno $fh }) . ' bytes)' };
            $sel->remove($fh);
            close $fh;
            push @errors, $got->{error} if $got->{error};
            push @users, @{ $got->{users} || [] };
        }
    }
    waitpid($_, 0) for @pids;
    croak "make_users: @errors" if @errors;
    croak "make_users: made " . scalar(@users) . " of $n" if @users != $n;
    @users = sort { $a->{k} <=> $b->{k} } @users;
    set_balance($s, [ map { $_->{id} } @users ], $opt{balance}) if $opt{balance};
    return \@users;
}

sub make_admin {
    my ($s, $u) = @_;
    $s->sql("UPDATE users SET role = 'ADMIN' WHERE id = $u->{id}");
    $s->auth_changed;
}

# Sets the balance of every user in @$ids to $x, with the CHARGE ledger row
# that keeps balance = SUM(ledger deltas).
sub set_balance {
    my ($s, $ids, $x) = @_;
    $ids = [$ids] unless ref $ids;
    my $in = join(',', map { int } @$ids);
    $s->sql("INSERT INTO point_ledger (user_id, delta, balance_after, kind)"
        . " SELECT id, $x - balance, $x, 'CHARGE' FROM users WHERE id IN ($in) AND balance <> $x;"
        . " UPDATE users SET balance = $x, version = version + 1 WHERE id IN ($in)");
}

sub scalar_sql { my ($s, $q) = @_; my $r = $s->sql($q); return @$r ? $r->[0][0] : undef }

sub add_product {
    my ($s, $name, $price, $stock) = @_;
    (my $n = $name) =~ s/'/''/g;
    return $s->sql("INSERT INTO products (name, price, stock) VALUES ('$n', $price, $stock); SELECT LAST_INSERT_ID()")->[0][0];
}

sub add_option {
    my ($s, $pid, $name, $extra, $stock) = @_;
    (my $n = $name) =~ s/'/''/g;
    # as the catalog makes options: with its product, which then has_options
    return $s->sql("UPDATE products SET has_options = 1 WHERE id = $pid;"
        . " INSERT INTO product_options (product_id, name, extra_price, stock) VALUES ($pid, '$n', $extra, $stock);"
        . " SELECT LAST_INSERT_ID()")->[0][0];
}

my %SHIP = (
    recipient => '김철수', phone => '010-9876-5432', zipCode => '06236',
    address => '서울특별시 강남구 테헤란로 152 비밀동 1호', request => '문 앞에 놓아 주세요',
);
sub default_shipping { return {%SHIP} }

# An order body: items as [productId, quantity] or [productId, quantity, optionId].
sub order_body {
    my ($items, %o) = @_;
    my %b = (
        items => [ map { { productId => 0 + $_->[0], optionId => (defined $_->[2] ? 0 + $_->[2] : undef), quantity => 0 + $_->[1] } } @$items ],
        shipping => $o{shipping} // default_shipping(),
    );
    $b{expectedTotal} = $o{expectedTotal} if exists $o{expectedTotal};
    return \%b;
}

sub place_order {
    my ($s, $token, $body, %h) = @_;
    return $s->post_json('/api/v1/orders', $body, { %{ bearer($token) }, %h });
}

# Everything an order may change, to compare before/after a refusal.
sub snapshot {
    my ($s) = @_;
    return join("\n",
        map { join('|', map { $_ // 'NULL' } @$_) } @{ $s->sql(
            "SELECT 'p', id, stock, version FROM products"
            . " UNION ALL SELECT 'o', id, stock, version FROM product_options"
            . " UNION ALL SELECT 'u', id, balance, version FROM users"
            . " UNION ALL SELECT 'orders', COUNT(*), COALESCE(MAX(id),0), 0 FROM orders"
            . " UNION ALL SELECT 'items', COUNT(*), 0, 0 FROM order_items"
            . " UNION ALL SELECT 'ledger', COUNT(*), COALESCE(MAX(id),0), 0 FROM point_ledger"
            . " UNION ALL SELECT 'outbox', COUNT(*), COALESCE(MAX(id),0), 0 FROM outbox") });
}

# The money and stock invariants of the whole database.
sub order_invariants_ok {
    my ($s) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $bad = $s->sql(
        'SELECT u.id, u.balance, COALESCE(l.s, 0) FROM users u LEFT JOIN'
        . ' (SELECT user_id, SUM(delta) s FROM point_ledger GROUP BY user_id) l ON l.user_id = u.id'
        . ' WHERE u.balance <> COALESCE(l.s, 0) OR u.balance < 0');
    Test::More::is(scalar(@$bad), 0, 'invariant: every balance = SUM(ledger deltas) and >= 0')
        or Test::More::diag('user balance ledger: ' . join('; ', map { "@$_" } @$bad));
    my $neg = $s->sql('SELECT id, stock FROM products WHERE stock < 0 UNION ALL SELECT -id, stock FROM product_options WHERE stock < 0');
    Test::More::is(scalar(@$neg), 0, 'invariant: no negative stock');
    $bad = $s->sql(
        "SELECT o.id, o.total, COUNT(l.id), COALESCE(SUM(l.delta), 0) FROM orders o"
        . " LEFT JOIN point_ledger l ON l.ref_id = o.id AND l.kind = 'ORDER_PAYMENT' WHERE o.payment_method = 'POINTS'"
        . " GROUP BY o.id, o.total HAVING COUNT(l.id) <> 1 OR SUM(l.delta) <> -o.total");
    Test::More::is(scalar(@$bad), 0, 'invariant: every points order has exactly one ORDER_PAYMENT row of -total')
        or Test::More::diag('order total rows sum: ' . join('; ', map { "@$_" } @$bad));
    $bad = $s->sql(
        "SELECT o.id, o.status, o.total, COUNT(l.id), COALESCE(SUM(l.delta), 0) FROM orders o"
        . " LEFT JOIN point_ledger l ON l.ref_id = o.id AND l.kind = 'ORDER_REFUND' WHERE o.payment_method = 'POINTS'"
        . " GROUP BY o.id, o.status, o.total"
        . " HAVING (o.status = 'CANCELLED' AND (COUNT(l.id) <> 1 OR SUM(l.delta) <> o.total))"
        . " OR (o.status = 'PAID' AND COUNT(l.id) <> 0)");
    Test::More::is(scalar(@$bad), 0, 'invariant: every CANCELLED order has exactly one ORDER_REFUND row of +total, a PAID one none')
        or Test::More::diag('order status total rows sum: ' . join('; ', map { "@$_" } @$bad));
    $bad = $s->sql(
        "SELECT o.id FROM orders o LEFT JOIN outbox x ON x.aggregate_id = o.id AND x.topic = 'order.paid'"
        . " WHERE o.payment_method = 'POINTS' GROUP BY o.id HAVING COUNT(x.id) <> 1");
    Test::More::is(scalar(@$bad), 0, 'invariant: every points order has exactly one order.paid outbox row')
        or Test::More::diag('orders: ' . join(',', map { $_->[0] } @$bad));
}

1;
