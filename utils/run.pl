#!/usr/bin/env perl
# Job runner with the interface of Kaldi's run.pl / queue.pl / slurm.pl:
#   run.pl [options] [JOB=1:N] LOGFILE COMMAND...
# Each occurrence of the job variable (JOB) in LOGFILE and COMMAND becomes the job index. Every job
# runs in the submitting directory, sources ./path.sh there when it exists (a scheduler's login shell
# may reset PATH), and writes its own log: the command, start time, output, and a footer
# "# Ended (code N) ...". A job counts as successful only when its log ends with "code 0"; the runner
# fails if any job does not, naming each failed job's log (and, on a cluster, the scheduler's reason).
#
# --backend local|sge|slurm picks where jobs run (utils/queue.pl and utils/slurm.pl set it).
# Options:
#   --max-jobs-run N     at most N jobs at once (local: processes; cluster: the array's task limit)
#   --mem 4G --gpu N --num-threads N --time HH:MM:SS --queue NAME, or any NAME with a line in the conf
#                        file: resource requests. Locally they are ignored. On a cluster each one is
#                        mapped to scheduler options by the conf file (--num-threads -> num_threads).
#   --config FILE        the conf file (default: conf/slurm.conf or conf/queue.conf in the current dir):
#                          command sbatch --export=ALL      the submit command
#                          option mem=* --mem=$0            any value; $0 is the value
#                          option gpu=0                     an exact value (here: adds nothing)
#                          default num_threads=1            the value when the option is not given
#   -x VALUE             (single dash) passed to the submit command as it is
# On a cluster JOB=1:N is one array job (sbatch --array, qsub -t). The runner waits for the jobs'
# log footers, asks the scheduler (squeue / qstat) whether the job is still there, and on INT or TERM
# cancels it (scancel / qdel). Job scripts and the scheduler's output files are in the log dir's q/.
use strict;
use warnings;
use File::Path qw(make_path);
use Cwd qw(getcwd);
use POSIX qw();
use Time::HiRes qw(sleep time);

$SIG{__DIE__} = sub { print STDERR $_[0]; exit 1; };   # errors exit 1, whatever errno is

my %opt = (backend => 'local', 'max-jobs-run' => 0, config => '');
my (%res, @raw);   # resource requests (conf names, e.g. num_threads); raw scheduler options
my ($var, $first, $last) = ('', 1, 1);
for my $pass (1, 2) {   # options may come before and after JOB=1:N
  while (@ARGV && $ARGV[0] =~ /^-/) {
    my $sw = shift @ARGV;
    my $val = shift @ARGV;
    die "run.pl: option $sw needs a value\n" unless defined $val;
    if ($sw =~ /^--(backend|max-jobs-run|config)$/) { $opt{$1} = $val; }
    elsif ($sw =~ /^--([A-Za-z][\w-]*)$/) { (my $n = $1) =~ tr/-/_/; $res{$n} = $val; }
    else { push @raw, $sw, $val; }
  }
  if ($pass == 1 && @ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
    ($var, $first, $last) = ($1, $2, defined $3 ? $3 : $2);
    shift @ARGV;
    die "run.pl: empty job range $first:$last\n" if $last < $first;
  }
}
my $backend = $opt{backend};
die "run.pl: --backend must be local, sge or slurm\n" unless $backend =~ /^(local|sge|slurm)$/;
my $me = {local => 'run.pl', sge => 'queue.pl', slurm => 'slurm.pl'}->{$backend};
my $sched = {local => 'local', sge => 'SGE', slurm => 'Slurm'}->{$backend};
die "usage: $me [options] [JOB=1:N] LOGFILE COMMAND...\n" if @ARGV < 2;
die "$me: --max-jobs-run must be a number, not '$opt{'max-jobs-run'}'\n" unless $opt{'max-jobs-run'} =~ /^\d+$/;
my $logfile = shift @ARGV;
# Arguments with white space are quoted; others (such as '|' or '&&') reach the shell as they are,
# as with Kaldi's run.pl.
my $cmd = join(' ', map { /^\S+$/ ? $_ : shell_quote($_) } @ARGV);
my $threads = $res{num_threads} // 1;

sub shell_quote { my $s = shift; return "'" . ($s =~ s/'/'\\''/gr) . "'"; }
sub subst { my ($s, $j) = @_; $s =~ s/\Q$var\E/$j/g if $var ne ''; return $s; }
sub logof { return subst($logfile, $_[0]); }
sub tag { return $var eq '' ? 'the job' : "$var=$_[0]"; }

# ---------------------------------------------------------------- the conf file (cluster back-ends)
# Returns the submit command and its options for the requested resources.
sub conf_options {
  my $file = $opt{config} ne '' ? $opt{config} : ($backend eq 'slurm' ? 'conf/slurm.conf' : 'conf/queue.conf');
  open(my $fh, '<', $file) or die "$me: cannot read the conf file $file ($!): run in the recipe dir, whose "
    . "conf/ has it, or pass --config FILE (format: see the comments of utils/run.pl)\n";
  my (@command, %exact, %any, %default);
  while (my $line = <$fh>) {
    $line =~ s/#.*//;
    my @w = split ' ', $line;
    next unless @w;
    my $where = "$file line $.";
    if ($w[0] eq 'command') {
      die "$me: $where: 'command' needs the submit program, e.g. 'command sbatch'\n" if @w < 2;
      @command = @w[1 .. $#w];
    } elsif ($w[0] =~ /^(option|default)$/ && @w >= 2 && $w[1] =~ /^(\w+)=(\S+)$/) {
      my ($name, $value, @args) = ($1, $2, @w[2 .. $#w]);
      if ($w[0] eq 'default') { $default{$name} = $value; }
      elsif ($value eq '*') { $any{$name} = [@args]; }
      else { $exact{"$name=$value"} = [@args]; }
    } else {
      die "$me: $where: cannot parse '@w': lines are 'command PROGRAM ARGS', 'option NAME=VALUE ARGS', "
        . "'option NAME=* ARGS' (\$0 is the value) or 'default NAME=VALUE'\n";
    }
  }
  close $fh;
  die "$me: $file has no 'command' line (e.g. 'command sbatch --export=ALL')\n" unless @command;
  my @args;
  my %want = (%default, %res);
  for my $name (sort keys %want) {
    my $value = $want{$name};
    my $a = $exact{"$name=$value"};
    $a = [map { s/\$0/$value/gr } @{$any{$name}}] if !defined $a && defined $any{$name};
    (my $dashed = $name) =~ tr/_/-/;
    die "$me: --$dashed $value: $file has no line 'option $name=$value' or 'option $name=*': add one "
      . "that maps it to $sched options (e.g. 'option $name=* ...\$0...'), or one with no options to "
      . "accept it and request nothing\n" unless defined $a;
    push @args, @$a;
  }
  return (\@command, [@args, @raw], $file);
}

# ---------------------------------------------------------------- job script and logs
# One script for all jobs of the range; the job index is its first argument or the array task id.
sub job_script {
  my $pwd = shell_quote(getcwd());
  my $s = "#!/usr/bin/env bash\n# written by $me: the jobs $var=$first:$last of $logfile\n"
        . "cd $pwd || exit 1\n"
        . "task=\${1:-\${SLURM_ARRAY_TASK_ID:-\${SGE_TASK_ID:-}}}\n"
        . "start=\$(date +%s)\ncase \$task in\n";
  for my $j ($first .. $last) {
    my $c = subst($cmd, $j);
    my $q = shell_quote(logof($j));
    $s .= "  $j) log=$q\n"
        . "    { echo " . shell_quote("# $c") . "; echo \"# Started at \$(date) on \$(hostname)\"; echo '#'; } > \"\$log\"\n"
        . "    ( if [ -f ./path.sh ]; then . ./path.sh || exit 1; fi\n      $c\n    ) >> \"\$log\" 2>&1\n"
        . "    rc=\$? ;;\n";
  }
  $s .= "  *) echo \"$me: no job \$task in this script\" >&2; exit 1 ;;\nesac\n"
      . "end=\$(date +%s)\n"
      . "echo \"# Accounting: time=\$((end - start)) threads=$threads\" >> \"\$log\"\n"
      . "echo \"# Ended (code \$rc) at \$(date), elapsed time \$((end - start)) seconds\" >> \"\$log\"\n"
      . "exit \$rc\n";
  return $s;
}

# The exit code in the last line of the job's log, or undef while it has none.
sub footer_code {
  my $log = shift;
  open(my $fh, '<', $log) or return undef;
  my $size = -s $fh;
  seek($fh, $size > 4096 ? $size - 4096 : 0, 0);
  local $/;
  my $tail = <$fh> // '';
  close $fh;
  return $tail =~ /# Ended \(code (-?\d+)\)[^\n]*\n?\z/ ? $1 : undef;
}

for my $j ($first .. $last) {
  (my $dir = logof($j)) =~ s{/?[^/]*$}{};
  make_path($dir eq '' ? '.' : $dir);
}
(my $logdir = logof($first)) =~ s{/?[^/]*$}{};
$logdir = '.' if $logdir eq '';
(my $name = $logfile) =~ s{.*/}{};
$name =~ s/\.?\Q$var\E//g if $var ne '';
$name =~ s/\.log$//;
$name = 'job' if $name eq '';
my $qdir = "$logdir/q";
make_path($qdir);
my $script = "$qdir/$name.sh";
open(my $sfh, '>', $script) or die "$me: cannot write $script: $!\n";
print $sfh job_script();
close $sfh;
chmod 0755, $script;
my $range = $var eq '' ? '' : " ($var=$first:$last)";

# Reports the failed jobs (index => reason) and exits 1.
sub fail {
  my %why = @_;
  my @j = sort { $a <=> $b } keys %why;
  my $msg = sprintf("%s: %d / %d failed%s:\n", $me, scalar @j, $last - $first + 1, $range);
  $msg .= "  $why{$_}\n" for @j[0 .. ($#j < 4 ? $#j : 4)];
  $msg .= "  ... (" . (@j - 5) . " more)\n" if @j > 5;
  print STDERR $msg;
  exit 1;
}

# ---------------------------------------------------------------- local back-end
if ($backend eq 'local') {
  my %running;
  my $stop = sub {
    kill 'TERM', map { -$_ } keys %running;
    print STDERR "$me: interrupted (SIG$_[0]): stopped ", scalar(keys %running), " running job(s)$range, "
      . "logs like " . logof($first) . "\n";
    exit($_[0] eq 'INT' ? 130 : 143);
  };
  local $SIG{INT} = $stop;
  local $SIG{TERM} = $stop;
  my %why;
  my $reap = sub {
    my $pid = wait();
    return if $pid < 0;
    my $j = delete $running{$pid};
    my $code = footer_code(logof($j));
    if ($? != 0 || !defined $code || $code != 0) {
      $why{$j} = defined $code ? tag($j) . ": exit code $code, see " . logof($j)
                               : tag($j) . ": killed (exit status $?), no '# Ended' line in " . logof($j);
    }
  };
  for my $j ($first .. $last) {
    $reap->() while $opt{'max-jobs-run'} > 0 && keys(%running) >= $opt{'max-jobs-run'};
    my $pid = fork();
    die "$me: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
      setpgrp(0, 0);   # its own process group, so that an interrupt stops the whole job
      exec('bash', $script, $j) or die "$me: cannot run bash: $!\n";
    }
    $running{$pid} = $j;
  }
  $reap->() while keys %running;
  fail(%why) if %why;
  exit 0;
}

# ---------------------------------------------------------------- cluster back-ends
my ($command, $args, $conf) = conf_options();
my @submit = @$command;
my $out = $backend eq 'slurm' ? "$qdir/$name.%a.out" : "$qdir/$name.\$TASK_ID.out";
if ($backend eq 'slurm') {
  my $array = "$first-$last" . ($opt{'max-jobs-run'} > 0 ? "%$opt{'max-jobs-run'}" : '');
  push @submit, @$args, '--parsable', "--job-name=$name", "--array=$array", '-o', $out, $script;
} else {
  (my $jname = $name) =~ s/^(\d)/j$1/;
  push @submit, @$args, '-terse', '-N', $jname, '-t', "$first-$last", '-o', $out;
  push @submit, '-tc', $opt{'max-jobs-run'} if $opt{'max-jobs-run'} > 0;
  push @submit, $script;
}
sub outfile { my $j = shift; return "$qdir/$name.$j.out"; }

# Runs a scheduler command; returns (exit status, its stdout and stderr together).
sub capture {
  my @c = @_;
  my $pid = open(my $fh, '-|');
  die "$me: fork failed: $!\n" unless defined $pid;
  if ($pid == 0) {
    open(STDERR, '>&', \*STDOUT);
    exec(@c) or do { print "cannot run $c[0]: $!\n"; POSIX::_exit(127); };
  }
  local $/;
  my $text = <$fh> // '';
  close $fh;
  return ($? >> 8, $text);
}

for my $j ($first .. $last) { unlink logof($j), outfile($j); }  # a log left by an earlier run is not this job's
my ($rc, $text) = capture(@submit);
if (open(my $sub, '>', "$qdir/$name.submit")) { print $sub "@submit\n$text"; close $sub; }
my $id;
if ($rc == 0) {
  ($id) = $text =~ /^(\d+)/m;   # sbatch --parsable: ID[;cluster]; qsub -terse: ID[.1-N:1]
}
unless (defined $id) {
  chomp $text;
  die "$me: $submit[0] refused the job$range (exit code $rc):\n  $text\n  command: @submit\n"
    . "  The $sched options come from $conf (its 'command' and 'option' lines) and the runner's options;"
    . " fix the one the scheduler names.\n";
}
my $jobname = "$sched job $id";

my $cancelled = 0;
sub cancel {
  return if $cancelled++;
  capture($backend eq 'slurm' ? ('scancel', $id) : ('qdel', $id));
}
my $stop = sub {
  cancel();
  print STDERR "$me: interrupted (SIG$_[0]): cancelled $jobname$range; logs like " . logof($first) . "\n";
  exit($_[0] eq 'INT' ? 130 : 143);
};
$SIG{INT} = $stop;
$SIG{TERM} = $stop;

# Is the job still known to the scheduler as pending or running?
my $warned = 0;
sub active {
  my ($rc, $text) = $backend eq 'slurm' ? capture('squeue', '-h', '-j', $id, '-o', '%i %T')
                                        : capture('qstat', '-j', $id);
  if ($backend eq 'slurm') {
    return $text =~ /\S/ if $rc == 0;
    return 0 if $text =~ /Invalid job id/i;
  } else {
    return 1 if $rc == 0;
    return 0 if $text =~ /do not exist/i;
  }
  print STDERR "$me: cannot ask the scheduler about $jobname (exit code $rc: $text); still waiting\n"
    unless $warned++;
  return 1;
}

# Why did job j end without a footer: the scheduler's output file and, on Slurm, the job's state.
sub reason {
  my $j = shift;
  my @why;
  if (open(my $fh, '<', outfile($j))) {
    my @lines = grep { /\S/ } <$fh>;
    close $fh;
    chomp @lines;
    push @why, join(' | ', @lines[($#lines > 2 ? $#lines - 2 : 0) .. $#lines]) . ' [' . outfile($j) . ']' if @lines;
  }
  if ($backend eq 'slurm') {
    my ($rc, $text) = capture('scontrol', '-o', 'show', 'job', "${id}_$j");
    my ($state) = $text =~ /\bJobState=(\S+)/;
    my ($sreason) = $text =~ /\bReason=(\S+)/;
    my ($exit) = $text =~ /\bExitCode=(\S+)/;
    push @why, "JobState=$state" . ($sreason && $sreason ne 'None' ? " Reason=$sreason" : '')
      . ($exit ? " ExitCode=$exit" : '') if $rc == 0 && $state;
  }
  push @why, 'no output file ' . outfile($j) unless @why;
  return join('; ', @why);
}

my %pending = map { $_ => 1 } ($first .. $last);
my (%why, $gone);
my $next_query = time() + 2;
while (%pending) {
  for my $j (sort { $a <=> $b } keys %pending) {
    my $code = footer_code(logof($j));
    next unless defined $code;
    delete $pending{$j};
    $why{$j} = tag($j) . ": exit code $code, see " . logof($j) if $code != 0;
  }
  last unless %pending;
  if ($gone) {   # gone from the queue, and a last look at the logs found no footer
    for my $j (keys %pending) {
      my $log = logof($j);
      $why{$j} = tag($j) . ": $sched job " . ($backend eq 'slurm' ? "${id}_$j" : "$id.$j") . " ended without "
        . (-e $log ? "the '# Ended' line in $log" : "writing $log") . " (killed or cancelled): " . reason($j);
    }
    last;
  }
  if (time() >= $next_query) {
    $gone = !active();
    $next_query = time() + 5;
    next if $gone;
  }
  sleep 0.5;
}
fail(%why) if %why;
exit 0;
