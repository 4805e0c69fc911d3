# Catalog reads through the whole stack: nginx -> jangteod -> MariaDB.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Jangteo::Client qw(test_stack);

my $s = test_stack(demo => 1);

sub is_problem {
    my ($r, $status, $code, $name) = @_;
    subtest $name => sub {
        is($r->{status}, $status, 'status');
        like($r->{headers}{'content-type'} // '', qr{^application/problem\+json\b}, 'content-type');
        ok($r->{json}, 'body is JSON') or diag($r->{body});
        my $j = $r->{json} || {};
        ok(exists $j->{$_}, "has $_") for qw(type title status detail code);
        is($j->{status}, $status, 'status field');
        is($j->{code}, $code, 'code');
    };
}

# ---- health
my $r = $s->get('/healthz');
is($r->{status}, 200, 'GET /healthz 200');
$r = $s->get('/readyz');
is($r->{status}, 200, 'GET /readyz 200');
ok(ref $r->{json} eq 'HASH', '/readyz answers JSON') or diag($r->{body});

# ---- list, defaults
# The oracle: live products, and a product's stock is the sum of its
# options' stock when it has options (sql/004_catalog.sql).
my $LIVE  = 'deleted_at IS NULL';
my $STOCK = 'COALESCE((SELECT SUM(o.stock) FROM product_options o WHERE o.product_id = p.id), p.stock)';
my $total = $s->sql("SELECT COUNT(*) FROM products WHERE $LIVE")->[0][0];
ok($total > 0, "demo data has products ($total)");
# Paging needs more than one page of rows: top up behind the app's back.
if ($total < 25) {
    $s->sql('INSERT INTO products (name, price, stock) VALUES '
        . join(',', map { "('test product $_', " . (1000 * $_) . ", $_)" } 1 .. 25 - $total));
    $total = $s->sql("SELECT COUNT(*) FROM products WHERE $LIVE")->[0][0];
}
my $rows = $s->sql("SELECT p.id, p.name, p.price, $STOCK, p.version FROM products p WHERE p.$LIVE ORDER BY p.id");
my %row = map { $_->[0] => { id => $_->[0], name => $_->[1], price => $_->[2], stock => $_->[3], version => $_->[4] } } @$rows;
my @ids = map { $_->[0] } @$rows;

$r = $s->get('/api/v1/products');
is($r->{status}, 200, 'GET /api/v1/products 200');
like($r->{headers}{'content-type'} // '', qr{^application/json\b}, 'list content-type JSON');
my $j = $r->{json} || {};
is($j->{total}, $total, 'total = SELECT COUNT(*) of live products');
is($j->{page}, 1, 'default page 1');
is($j->{size}, 20, 'default size 20');
my $items = ref $j->{items} eq 'ARRAY' ? $j->{items} : [];
my $want = $total < 20 ? $total : 20;
is(scalar @$items, $want, "default page holds $want items");
is_deeply([ map { $_->{id} } @$items ], [ @ids[0 .. $want - 1] ], 'items ordered by id ascending');
my @short = grep { my $i = $_; grep { !exists $i->{$_} } qw(id name price stock) } @$items;
is_deeply(\@short, [], 'each item has id,name,price,stock');
is_deeply([ grep { my $d = $row{ $_->{id} }; !$d || $d->{name} ne $_->{name} || $d->{price} != $_->{price} || $d->{stock} != $_->{stock} } @$items ],
    [], 'items match their DB rows');

# ---- list, page 2 size 5
$r = $s->get('/api/v1/products?page=2&size=5');
is($r->{status}, 200, 'page=2&size=5 200');
$items = ($r->{json} || {})->{items} || [];
is_deeply([ map { $_->{id} } @$items ], [ @ids[5 .. 9] ], 'page 2 size 5 = the 6th..10th ids in order');
is(($r->{json} || {})->{total}, $total, 'total on page 2');

# ---- size 100 (the maximum)
$r = $s->get('/api/v1/products?size=100');
is($r->{status}, 200, 'size=100 200');
$items = ($r->{json} || {})->{items} || [];
my $want100 = $total < 100 ? $total : 100;
is(scalar @$items, $want100, "size=100 holds $want100 items");

# ---- one product
my $id = $ids[0];
$r = $s->get("/api/v1/products/$id");
is($r->{status}, 200, "GET /api/v1/products/$id 200");
my $p = $r->{json} || {};
is_deeply({ map { $_ => "$p->{$_}" } grep { defined $p->{$_} } qw(id name price stock version) },
    $row{$id}, 'product matches DB row (id,name,price,stock,version)');
$id = $ids[-1];
$r = $s->get("/api/v1/products/$id");
is(($r->{json} || {})->{id}, $id, "last product ($id) found too");

# ---- unknown product
$r = $s->get('/api/v1/products/999999999');
is_problem($r, 404, 'PRODUCT_NOT_FOUND', 'unknown product -> 404 problem+json');

# ---- request ids
my @seen;
for my $path ('/healthz', '/api/v1/products', '/api/v1/products/1', '/api/v1/products/999999999', '/api/v1/nope') {
    my $x = $s->get($path);
    push @seen, $path unless length($x->{headers}{'x-request-id'} // '');
}
is_deeply(\@seen, [], 'every response has an X-Request-Id');
my $one = $s->get('/api/v1/products/1')->{headers}{'x-request-id'} // '';
my $two = $s->get('/api/v1/products/1')->{headers}{'x-request-id'} // '';
isnt($one, $two, 'generated request ids differ');

my $rid = 'abc-123';
$r = $s->get('/api/v1/products/1', { 'X-Request-Id' => $rid });
is($r->{headers}{'x-request-id'}, $rid, 'client X-Request-Id comes back unchanged');

# Logs are written after the response is sent: poll, bounded.
sub log_line {
    my ($which, $re) = @_;
    my $deadline = time + 10;
    while (1) {
        my ($l) = grep { /$re/ } split /\n/, $s->log_text($which);
        return $l if defined $l || time > $deadline;
        sleep 0.1;
    }
}
my $found = log_line('access', qr/\Q$rid\E/);
ok($found, 'request id appears in the jangteod access log') or diag($s->log_text('access'));
like($found // '', qr{/api/v1/products/1}, 'on the line of that request');
ok(log_line('nginx', qr/rid=\Q$rid\E/), 'and in the nginx access log');

$s->stop;
done_testing;
