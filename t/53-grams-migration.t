# Upgrading a live catalog through sql/007: the search-gram table, built
# byte-exact (utf8mb4_bin) by earlier releases, is rebuilt under the product
# name's collation. A database that already holds grams equal only under the
# new collation ('fé' and 'FÉ' for one product) must migrate without a
# duplicate-key failure, keep every other gram, and search case- and
# accent-insensitively afterwards. Running migrate again changes nothing.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Client qw(test_stack jreq);
use Jangteo::Catalog qw(make_product list_path demo_tokens);

my $s   = test_stack(demo => 1, workers => 2, conf => { catalog => { cache_ttl_ms => 0 } });
my $tok = demo_tokens($s);
my $cafe  = make_product($s, $tok->{seller}, name => 'Café Crème')->{id};
my $kimchi = make_product($s, $tok->{seller}, name => '김치찌개')->{id};

sub search_ids {
    my ($q) = @_;
    my $r = $s->get(list_path(q => $q, size => 100));
    is($r->{status}, 200, "q=$q answers 200") or diag($r->{body});
    return [ map { $_->{id} } @{ $r->{json}{items} || [] } ];
}
sub grams_of {
    my ($id) = @_;
    return [ sort map { $_->[0] } @{ $s->sql("SELECT gram FROM product_name_grams WHERE product_id = $id") } ];
}
my $mig = "SELECT COUNT(*) FROM schema_migrations WHERE version LIKE '007%'";
is($s->sql($mig)->[0][0], 1, '007 is applied on a fresh database');
my $kimchi_grams = grams_of($kimchi);
ok(@$kimchi_grams >= 3, 'the Korean name has grams: ' . join(' ', @$kimchi_grams));

# ---- back to the state before 007 (the table exactly as sql/004 creates
# it), with grams only the old table could hold
my $sql004 = do { local (@ARGV, $/) = (Jangteo::Stack::srcdir() . '/sql/004_catalog.sql'); <> };
my ($old_table) = $sql004 =~ /(CREATE TABLE product_name_grams \(.*?\) ENGINE=InnoDB;)/s
    or BAIL_OUT('sql/004 no longer creates product_name_grams');
like($old_table, qr/utf8mb4_bin/, 'sql/004 made the gram column byte-exact');
$s->sql("DROP TABLE product_name_grams; $old_table DELETE FROM schema_migrations WHERE version LIKE '007%';");
my @old = map { [ $_, $cafe ] } qw(ca af fé éc cr rè èm me);
push @old, [ 'FÉ', $cafe ], [ 'fe', $cafe ];    # equal to 'fé' under unicode_ci, distinct in bin
push @old, map { [ $_, $kimchi ] } @$kimchi_grams;
$s->sql('INSERT INTO product_name_grams (gram, product_id) VALUES '
    . join(',', map { "('$_->[0]', $_->[1])" } @old));
is($s->sql("SELECT COUNT(*) FROM product_name_grams WHERE product_id = $cafe")->[0][0], 10,
    'before: the byte-exact table holds fé, FÉ and fe as three grams');
is_deeply(search_ids('CAFÉ'), [], 'before: q=CAFÉ misses "Café Crème" (the old bug, reproduced)');

# ---- migrate
my ($rc, $out) = $s->admin('migrate');
is($rc, 0, 'migrate exits 0') or diag($out);
like($out, qr/applied 007_grams_collation\.sql/, 'and applied 007') or diag($out);
is($s->sql($mig)->[0][0], 1, '007 recorded once');
is($s->sql(q{SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'jangteo'
    AND TABLE_NAME = 'product_name_grams' AND COLUMN_NAME = 'gram'})->[0][0], 'utf8mb4_unicode_ci',
    'the gram column now has the name column\'s collation');
is($s->sql("SELECT COUNT(*) FROM product_name_grams WHERE product_id = $cafe")->[0][0], 8,
    'fé, FÉ and fe collapsed into one gram; the other seven kept');
is_deeply(grams_of($kimchi), $kimchi_grams, 'the Korean grams are untouched');
is($s->sql(q{SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'jangteo'
    AND TABLE_NAME LIKE 'product_name_grams%'})->[0][0], 1, 'no working table left behind');

# ---- the search after the upgrade
is_deeply(search_ids('CAFÉ'), [$cafe], 'after: q=CAFÉ finds "Café Crème"');
is_deeply(search_ids('cafe creme'), [$cafe], 'after: q=cafe creme finds it');
is_deeply(search_ids('김치'), [$kimchi], 'after: q=김치 still finds 김치찌개');
my $r = jreq($s, 'PATCH', "/api/v1/products/$cafe", $tok->{seller}, { name => 'Crêpe' });
is($r->{status}, 200, 'a rename after the upgrade') or diag($r->{body});
is_deeply(search_ids('CAFÉ'), [], 'the old name is gone from search');
is_deeply(search_ids('CRÊPE'), [$cafe], 'and the new one is found, case-insensitively');

($rc, $out) = $s->admin('migrate');
is($rc, 0, 'a second migrate exits 0');
like($out, qr/0 applied/, 'and applies nothing') or diag($out);

$s->stop;
done_testing;
