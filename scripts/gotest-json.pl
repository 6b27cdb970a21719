#!/usr/bin/env perl
# Reads the output of `go test -json` (JSON FILE) and
#   - writes the tests' own output, as `go test -v` prints it, to HUMAN LOG;
#   - prints one line "counts PASSED FAILED SKIPPED" and then, for every
#     failed or skipped test (subtests included), "fail PACKAGE TEST\tMESSAGE"
#     or "skip PACKAGE TEST\tMESSAGE" (MESSAGE: what the test printed, on
#     one line).
# Only "pass"/"fail"/"skip" events that name a test count: a test's
# output that merely contains "--- PASS" (a child process it ran, say) is
# output, not a result. PACKAGE is relative to the module.
#   perl scripts/gotest-json.pl JSON HUMAN_LOG
use strict;
use warnings;
use JSON::PP;

my ($json_file, $human_file) = @ARGV;
die "usage: $0 JSON HUMAN_LOG\n" unless defined $human_file;
open(my $in, '<', $json_file) or die "$json_file: $!\n";
open(my $out, '>', $human_file) or die "$human_file: $!\n";
my $module = 'github.com/mariadb-go/aws_key_management/';
my $json = JSON::PP->new;
my ($pass, $fail, $skip) = (0, 0, 0);
my (@results, %said);
while (my $line = <$in>) {
	if ($line !~ /^\{/) {
		print $out $line;    # not an event (go's own messages)
		next;
	}
	my $e = eval { $json->decode($line) };
	if (!$e) {
		print $out $line;
		next;
	}
	my $pkg = $e->{Package} // '';
	$pkg =~ s/^\Q$module\E//;
	my $act = $e->{Action} // '';
	if (defined $e->{Output}) {
		print $out $e->{Output};
		if (defined $e->{Test}) {
			my $o = $e->{Output};
			$o =~ s/^\s+|\s+$//g;
			push @{ $said{"$pkg $e->{Test}"} }, $o
			  if $o ne '' && $o !~ /^(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP)):? /;
		}
	}
	next unless defined $e->{Test} && $e->{Test} ne '';
	if ($act eq 'pass') { $pass++ }
	elsif ($act eq 'fail' || $act eq 'skip') {
		$act eq 'fail' ? $fail++ : $skip++;
		my $msg = join(' | ', @{ $said{"$pkg $e->{Test}"} // [] });
		push @results, "$act $pkg $e->{Test}\t$msg";
	}
}
print "counts $pass $fail $skip\n";
print "$_\n" for @results;
