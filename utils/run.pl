#!/usr/bin/env perl
# Job runner with the interface of Kaldi's run.pl / queue.pl / slurm.pl:
#   run.pl [options] [JOB=1:N] LOGFILE COMMAND...
# Each occurrence of the job variable (JOB) in LOGFILE and COMMAND becomes the job index. Every job
# writes its own log (the command, start and end time, exit code); the runner fails if any job fails.
# Options: --max-jobs-run N (at most N jobs at once), and for the cluster back-ends --mem 4G, --gpu N,
# --num-threads N, --time HH:MM:SS, --queue NAME (accepted and ignored when running locally).
# --backend local|sge|slurm picks where jobs run; utils/queue.pl and utils/slurm.pl set it.
use strict;
use warnings;
use File::Path qw(make_path);
use Cwd qw(getcwd);

my %opt = (backend => 'local', 'max-jobs-run' => 0, mem => '', gpu => 0, 'num-threads' => 1,
           time => '', queue => '');
while (@ARGV && $ARGV[0] =~ /^--(.+)$/) {
  my $name = $1;
  shift @ARGV;
  die "run.pl: unknown option --$name\n" unless exists $opt{$name} || $name eq 'config';
  my $val = shift @ARGV;
  die "run.pl: option --$name needs a value\n" unless defined $val;
  $opt{$name} = $val unless $name eq 'config';
}
die "run.pl: --backend must be local, sge or slurm\n" unless $opt{backend} =~ /^(local|sge|slurm)$/;
my ($var, $first, $last) = ('', 1, 1);
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
  ($var, $first, $last) = ($1, $2, defined $3 ? $3 : $2);
  shift @ARGV;
  die "run.pl: empty job range $first:$last\n" if $last < $first;
}
die "usage: run.pl [options] [JOB=1:N] LOGFILE COMMAND...\n" if @ARGV < 2;
my $logfile = shift @ARGV;
# Arguments with white space are quoted; others (such as '|' or '&&') reach the shell as they are,
# as with Kaldi's run.pl.
my $cmd = join(' ', map { /^\S+$/ ? $_ : "'" . s/'/'\\''/gr . "'" } @ARGV);

sub subst { my ($s, $j) = @_; $s =~ s/$var/$j/g if $var ne ''; return $s; }
sub shell_quote { my $s = shift; return "'" . ($s =~ s/'/'\\''/gr) . "'"; }

# The job script: runs the command in the submitting directory with its environment and writes
# the log header and footer, so that every back-end produces the same log.
sub job_script {
  my ($c, $log) = @_;
  my $q = shell_quote($log);
  my $pwd = shell_quote(getcwd());
  return <<"EOS";
#!/usr/bin/env bash
cd $pwd
{ echo ${\ shell_quote("# $c")}; echo "# Started at \$(date)"; echo "#"; } > $q
start=\$(date +%s)
( $c ) >> $q 2>&1
rc=\$?
end=\$(date +%s)
echo "# Accounting: time=\$((end - start)) threads=$opt{'num-threads'}" >> $q
echo "# Ended (code \$rc) at \$(date), elapsed time \$((end - start)) seconds" >> $q
exit \$rc
EOS
}

sub submit_command {
  my ($script, $log) = @_;
  return ('bash', $script) if $opt{backend} eq 'local';
  my $out = "$script.out";
  if ($opt{backend} eq 'sge') {
    my @c = ('qsub', '-sync', 'y', '-V', '-cwd', '-j', 'y', '-o', $out, '-S', '/bin/bash');
    push @c, '-l', "mem_free=$opt{mem},ram_free=$opt{mem}" if $opt{mem} ne '';
    push @c, '-l', "gpu=$opt{gpu}" if $opt{gpu};
    push @c, '-pe', 'smp', $opt{'num-threads'} if $opt{'num-threads'} > 1;
    push @c, '-l', "h_rt=$opt{time}" if $opt{time} ne '';
    push @c, '-q', $opt{queue} if $opt{queue} ne '';
    return (@c, $script);
  }
  my @c = ('sbatch', '--wait', '--export=ALL', '-o', $out);
  push @c, "--mem=$opt{mem}" if $opt{mem} ne '';
  push @c, "--gres=gpu:$opt{gpu}" if $opt{gpu};
  push @c, "--cpus-per-task=$opt{'num-threads'}" if $opt{'num-threads'} > 1;
  push @c, "--time=$opt{time}" if $opt{time} ne '';
  push @c, '-p', $opt{queue} if $opt{queue} ne '';
  return (@c, $script);
}

my (%running, @failed);
sub reap {
  my $pid = wait();
  return if $pid < 0;
  my $j = delete $running{$pid};
  push @failed, $j if $? != 0;
}
for my $j ($first .. $last) {
  reap() while $opt{'max-jobs-run'} > 0 && keys(%running) >= $opt{'max-jobs-run'};
  my $log = subst($logfile, $j);
  (my $dir = $log) =~ s{/?[^/]*$}{};
  $dir = '.' if $dir eq '';
  make_path("$dir/q");
  (my $base = $log) =~ s{.*/}{};
  my $script = "$dir/q/$base.sh";
  open(my $fh, '>', $script) or die "run.pl: cannot write $script: $!\n";
  print $fh job_script(subst($cmd, $j), $log);
  close $fh;
  my @submit = submit_command($script, $log);
  my $pid = fork();
  die "run.pl: fork failed\n" unless defined $pid;
  if ($pid == 0) {
    exec(@submit) or die "run.pl: cannot run $submit[0]: $!\n";
  }
  $running{$pid} = $j;
}
reap() while keys %running;
if (@failed) {
  my $example = subst($logfile, (sort { $a <=> $b } @failed)[0]);
  printf STDERR "run.pl: %d / %d failed, log is in %s\n", scalar @failed, $last - $first + 1, $example;
  exit 1;
}
exit 0;
