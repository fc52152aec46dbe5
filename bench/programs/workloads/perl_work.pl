# make bench-programs: a deterministic Perl workload (Debian's perl uses the
# system malloc). Reads a text file, builds hashes and arrays of strings,
# runs regexes, sorts, joins and splits; prints digests that must not depend
# on the allocator. Usage: perl_work.pl FILE [scale]
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my ($file, $scale) = @ARGV;
$scale //= 1;
open(my $fh, '<', $file) or die "perl_work: $file: $!";
my @lines = <$fh>;
close $fh;
chomp @lines;
my $limit = int(@lines * $scale);
$limit = @lines if $limit > @lines;
@lines = @lines[0 .. $limit - 1];

my (%count, %first, %bylen);
for my $i (0 .. $#lines) {
    for my $w (split / /, $lines[$i]) {
        $count{$w}++;
        $first{$w} //= $i;
        push @{ $bylen{ length $w } }, $w if $count{$w} == 1;
    }
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
print "words ", scalar(keys %count), " top @top[0..4]\n";
print "lens ", join(",", map { "$_:" . scalar @{ $bylen{$_} } } sort { $a <=> $b } keys %bylen), "\n";

my @nums = map { /(\d+)/g } @lines;
my $sum = 0;
$sum += $_ for @nums;
print "numbers ", scalar(@nums), " sum $sum\n";

my @edited = map { (my $s = $_) =~ s/\b([aeiou]\w*)\b/\U$1/g; $s } @lines;
print "subst ", md5_hex(join("\n", @edited[0 .. ($#edited < 999 ? $#edited : 999)])), "\n";

my @sorted = sort { length($a) <=> length($b) || $a cmp $b } @lines;
print "sorted ", md5_hex(join("\n", @sorted)), "\n";

my %pairs;
for my $l (@lines) {
    my @w = split / /, $l;
    for my $j (0 .. $#w - 1) {
        $pairs{"$w[$j] $w[$j + 1]"} .= substr($w[$j], 0, 1);
    }
    delete $pairs{ $w[0] . " " . $w[-1] } if @w > 2;
}
my $plen = 0;
$plen += length $_ for values %pairs;
print "pairs ", scalar(keys %pairs), " $plen\n";

my @rev = reverse map { scalar reverse $_ } grep { /e.*a/ } @lines;
print "rev ", scalar(@rev), " ", md5_hex(join("", @rev)), "\n";
