# The README's Layout section is the map of src/: every source file is on
# it, once, in its own folder, and nothing is on it that is not in the tree.
# An entry without a suffix is a .c file and its .h; one with a suffix is
# that file alone. No stack: this reads files only.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Jangteo::Stack;

my $src = Jangteo::Stack::srcdir();
my $readme = do { local (@ARGV, $/) = ("$src/README"); <> };
my ($layout) = $readme =~ /^Layout\n-+\n(.*?)\n(?=Follow one request)/ms
    or BAIL_OUT('README has no Layout section followed by "Follow one request"');

# what the README lists: folder => [names]
my (%listed, $folder);
for my $line (split /\n/, $layout) {
    if ($line =~ m{^    (src/[\w.]+)\s}) {            # src/main.c and its peers
        push @{ $listed{'src'} }, substr($1, 4);
        undef $folder;
    } elsif ($line =~ m{^    (src/\w+)/\s}) {          # a layer's folder
        $folder = $1;
        $listed{$folder} //= [];
    } elsif ($folder && $line =~ m{^      ([\w.]+)\s}) {  # a module of that folder
        push @{ $listed{$folder} }, $1;
    } elsif ($line =~ m{^    ([\w.]+)/\s}) {           # sql/, conf/, t/, ...
        ok(-d "$src/$1", "the README's $1/ exists");
        undef $folder;
    }
}

# what the tree holds: folder => {file => 1}
my %tree;
for my $dir ('src', map { "src/$_" } qw(core http store domain server)) {
    opendir(my $dh, "$src/$dir") or BAIL_OUT("cannot read $src/$dir: $!");
    $tree{$dir}{$_} = 1 for grep { /\.[ch]$/ && -f "$src/$dir/$_" } readdir $dh;
    closedir $dh;
}
is_deeply([ sort keys %listed ], [ sort keys %tree ], 'the README names every folder of src/ and no other');

for my $dir (sort keys %tree) {
    my %left = %{ $tree{$dir} };
    for my $name (@{ $listed{$dir} || [] }) {
        my @files = $name =~ /\.[ch]$/ ? ($name) : ("$name.c", "$name.h");
        for my $f (@files) {
            ok(delete $left{$f}, "$dir/$f, listed as '$name', is in the tree, listed once");
        }
    }
    is_deeply([ sort keys %left ], [], "every file of $dir/ is on the README's map");
}

done_testing;
