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
#                        file: resource requests. Locally only --gpu counts (below). On a cluster each
#                        one is mapped to scheduler options by the conf file (--num-threads -> num_threads).
#                        A later option wins over an earlier one (cmd.sh's --gpu 1, then a script's --gpu 0).
#   --config FILE        the conf file (default: conf/slurm.conf or conf/queue.conf in the current dir):
#                          command sbatch --export=ALL      the submit command
#                          option mem=* --mem=$0            any value; $0 is the value
#                          option gpu=0                     an exact value (here: adds nothing)
#                          default num_threads=1            the value when the option is not given
#   -x VALUE             (single dash) passed to the submit command as it is
# On a cluster JOB=1:N is one array job (sbatch --array, qsub -t). The runner waits for the jobs'
# log footers, asks the scheduler (squeue / qstat) whether the job is still there, and on INT, TERM,
# HUP or QUIT cancels it (scancel / qdel). Job scripts and the scheduler's output files are in the log
# dir's q/.
#
# Locally each job runs in a process group of its own, so that stopping it stops all its processes. A
# job never outlives its runner: on INT, TERM, HUP (a closed terminal) or QUIT the runner stops its
# jobs, and a watcher beside each job stops it when the runner ends in any other way (kill -9, a
# crash), noting so in the job's log.
#
# GPUs: a job sees a GPU only when it asked for one. A job without --gpu, or with --gpu 0, runs with
# CUDA_VISIBLE_DEVICES empty (on every back-end: a node without device cgroups would show it all its
# GPUs). Locally, --gpu N gives each job N GPUs of its own in CUDA_VISIBLE_DEVICES and waits while
# they are all taken; the GPUs are those of run.pl's own CUDA_VISIBLE_DEVICES when it is set, else
# those `nvidia-smi -L` lists. Several run.pl processes of one user share them through lock files in
# ${TMPDIR:-/tmp}/run.pl-gpus-$UID. Without any GPU, --gpu N jobs run without one (and the runner
# says so). A run.pl inside a job shares out that job's GPUs instead (below). On a cluster, a --gpu N
# job keeps the CUDA_VISIBLE_DEVICES its scheduler set (Slurm: from --gres). Each log's header says
# which GPUs its job got ("# GPUs: 2,3", "# GPUs: none").
#
# Heartbeat: while it waits for its jobs the runner prints, every RUN_PL_HEARTBEAT seconds (default 60;
# 0: never), one line on stderr: how long it has waited, how many jobs are done of all, and the last
# progress line in the log of each job still running (pyscripts/progress.py's "... 1200 of 4000
# utterances (30%), 52.1 utterances/s, 54 s left"; training's per-epoch lines alike).
use strict;
use warnings;
use File::Path qw(make_path);
use Cwd qw(getcwd);
use Fcntl qw(:flock);
use POSIX qw(:sys_wait_h);
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
  return (\@command, [@args, @raw], $file, $want{gpu});
}

# ---------------------------------------------------------------- job script and logs
# One script for all jobs of the range; the job index is its first argument or the array task id.
sub job_script {
  my ($no_gpu) = @_;
  my $pwd = shell_quote(getcwd());
  my $s = "#!/usr/bin/env bash\n# written by $me: the jobs $var=$first:$last of $logfile\n"
        . "cd $pwd || exit 1\nexport RUN_PL_IN_JOB=1   # a run.pl in the job shares out the job's GPUs\n"
        . ($no_gpu ? "export CUDA_VISIBLE_DEVICES=   # it asked for no GPU: hide the node's\n" : '')
        . "gpus=\${CUDA_VISIBLE_DEVICES-all (CUDA_VISIBLE_DEVICES unset)}\n"
        . "task=\${1:-\${SLURM_ARRAY_TASK_ID:-\${SGE_TASK_ID:-}}}\n"
        . "start=\$(date +%s)\ncase \$task in\n";
  for my $j ($first .. $last) {
    my $c = subst($cmd, $j);
    my $q = shell_quote(logof($j));
    $s .= "  $j) log=$q\n"
        . "    { echo " . shell_quote("# $c") . "; echo \"# Started at \$(date) on \$(hostname)\";"
        . " echo \"# GPUs: \${gpus:-none}\"; echo '#'; } > \"\$log\"\n"
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

# The GPUs each job asks for: --gpu, else (on a cluster) the conf file's default; none or 0: no GPU.
# A local run.pl inside a job of a runner (RUN_PL_IN_JOB, set by every job script: local/run_ser.sh's
# fold jobs run steps/train_convnet.sh's run.pl) shares out that job's GPUs: a job without --gpu keeps
# them all, as the job's own commands do, and --gpu N takes N of them without lock files (the
# enclosing runner holds those locks).
my $nested = $backend eq 'local' && ($ENV{RUN_PL_IN_JOB} // '') ne '';
my $inherit = $nested && !defined $res{gpu};
my ($command, $args, $conf, $gpu);
if ($backend eq 'local') {
  $gpu = $res{gpu} // 0;
  die "$me: --gpu must be a number of GPUs (0 for none), not '$gpu'\n" unless $gpu =~ /^\d+$/;
} else {
  ($command, $args, $conf, $gpu) = conf_options();
}
my $no_gpu = !$inherit && (!defined $gpu || $gpu =~ /^0*$/);

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
print $sfh job_script($no_gpu);
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

# ---------------------------------------------------------------- heartbeat
my $beat_every = $ENV{RUN_PL_HEARTBEAT} // 60;
die "$me: RUN_PL_HEARTBEAT='$beat_every': give seconds between heartbeat lines (0: none)\n"
  unless $beat_every =~ /^\d+(\.\d*)?$/;
my $wait_start = time();
my $next_beat = $beat_every > 0 ? $wait_start + $beat_every : undef;

sub span {
  my $s = int(shift);
  return "$s s" if $s < 120;
  return int($s / 60) . " min" if $s < 3600;
  return sprintf("%d h %02d min", $s / 3600, ($s % 3600) / 60);
}

# The last progress line ("N UNIT/s") in the end of a job's log, its logger's date and name left out.
sub last_progress {
  my $log = shift;
  open(my $fh, '<', $log) or return undef;
  my $size = -s $fh;
  seek($fh, $size > 65536 ? $size - 65536 : 0, 0);
  my $found;
  while (my $line = <$fh>) { $found = $line if $line =~ m{\d \S+/s\b}; }
  close $fh;
  return undef unless defined $found;
  chomp $found;
  $found =~ s/^\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)\S* \S+ [A-Z]+: /$1 /;   # pyscripts' log format
  return length($found) > 200 ? substr($found, 0, 197) . '...' : $found;
}

# One line on stderr when a heartbeat is due: the jobs done of all, and the unfinished ones' progress.
sub heartbeat {
  my ($done, @waiting) = @_;
  return unless defined $next_beat && time() >= $next_beat;
  $next_beat = time() + $beat_every;
  my $all = $last - $first + 1;
  my @shown = @waiting > 3 ? @waiting[0 .. 2] : @waiting;
  my @parts = map { tag($_) . ': ' . (last_progress(logof($_)) // 'no progress line yet') } @shown;
  push @parts, '... (' . (@waiting - 3) . ' more)' if @waiting > 3;
  my $waited = span(time() - $wait_start);
  if ($all == 1) {
    print STDERR "$me: $waited: " . (last_progress(logof($first)) // 'no progress line yet')
      . " (log " . logof($first) . ")\n";
    return;
  }
  print STDERR "$me: $waited: $done of $all jobs done$range, logs like " . logof($first)
    . (@parts ? '; ' . join('; ', @parts) : '') . "\n";
}

# ---------------------------------------------------------------- local back-end
# The signals that stop a runner and its jobs (exit code 128 + the signal's number).
my %signum = (HUP => 1, INT => 2, QUIT => 3, TERM => 15);

# The watcher of a local job: a child of the job's shell ($job: its PID and process group) in a process
# group of its own, which ends with that shell. When the runner's lifeline ($alive) reads end-of-file,
# the runner is gone (however it ended) and the job is stopped: SIGTERM to its process group, a note in
# its log, SIGKILL to what is left after 10 s. It holds no other descriptor of the runner's: a GPU
# lock, a caller's pipe or the recipe's lock, held by a watcher that outlives its job, would hold them up.
sub watch_job {
  my ($job, $alive, $log, $runner) = @_;
  $SIG{$_} = 'DEFAULT' for keys %signum;   # not the runner's handler: it would stop the runner's jobs
  setpgrp(0, 0);
  $0 = "$me: watcher of the job in process group $job (log $log)";
  my $keep = fileno($alive);
  my @fds = 3 .. 1023;
  if (opendir(my $dh, '/proc/self/fd')) { @fds = grep { /^\d+$/ && $_ > 2 } readdir $dh; closedir $dh; }
  POSIX::close($_) for grep { $_ != $keep } @fds;
  open(STDIN, '<', '/dev/null');
  open(STDOUT, '>', '/dev/null');
  open(STDERR, '>', '/dev/null');
  my $rin = '';
  vec($rin, $keep, 1) = 1;
  while (getppid() == $job) {
    next unless select(my $rout = $rin, undef, undef, 0.5) > 0;
    last unless kill(0, -$job);   # the job had ended already
    kill 'TERM', -$job;
    if (open(my $fh, '>>', $log)) {
      print $fh "# $me (PID $runner) ended before this job: its watcher stopped the job's processes "
        . "(SIGTERM to process group $job)\n";
      close $fh;
    }
    my $waited = 0;   # (an unreaped zombie counts too: then the SIGKILL below does nothing)
    while (kill(0, -$job) && $waited < 10) { sleep 0.1; $waited += 0.1; }
    kill 'KILL', -$job if kill(0, -$job);
    last;
  }
  POSIX::_exit(0);
}

# The GPUs of this machine: (where they come from, their ids). run.pl's own CUDA_VISIBLE_DEVICES when
# it is set (empty: none; CUDA ignores the list from a negative entry on), else the indices that
# `nvidia-smi -L` lists (no nvidia-smi, or one that fails without a driver: none).
sub machine_gpus {
  if (defined $ENV{CUDA_VISIBLE_DEVICES}) {
    my @ids;
    for my $id (split /,/, $ENV{CUDA_VISIBLE_DEVICES}) {
      $id =~ s/^\s+|\s+$//g;
      last if $id =~ /^-/;
      push @ids, $id if $id ne '';
    }
    return ("CUDA_VISIBLE_DEVICES='$ENV{CUDA_VISIBLE_DEVICES}'", @ids);
  }
  my ($rc, $text) = capture('nvidia-smi', '-L');
  return ($rc == 127 ? 'no nvidia-smi on PATH' : "nvidia-smi -L failed with exit code $rc") if $rc != 0;
  return ('nvidia-smi -L', $text =~ /^GPU (\d+):/mg);
}

if ($backend eq 'local') {
  # --gpu N: each job takes N GPUs no other job holds. A GPU is taken by flock'ing its lock file in
  # $lockdir, shared by all run.pl processes of this user on this machine (two recipes, two stages).
  # This process holds the lock for the job's life and closes it when it reaps the job: perl opens
  # files close-on-exec, so the job itself never holds it, and a runner that dies frees its GPUs.
  my ($lockdir, $from, @gpus, %held, %gpus_of);
  if ($gpu > 0) {
    ($from, @gpus) = machine_gpus();
    my $where = $nested ? 'the job this run.pl runs in' : 'this machine';
    if (!@gpus) {
      print STDERR "$me: --gpu $gpu but $where has no GPU ($from): the jobs$range run without one "
        . "(CUDA_VISIBLE_DEVICES empty)\n";
    } else {
      die "$me: --gpu $gpu but $where has " . @gpus . " GPU(s) (" . join(',', @gpus) . ", from $from): "
        . "ask for at most " . @gpus . " per job (--gpu in cmd.sh's cuda_cmd, or the script's --num-gpus)\n"
        if $gpu > @gpus;
    }
    if (@gpus && !$nested) {
      my $tmp = defined $ENV{TMPDIR} && $ENV{TMPDIR} ne '' ? $ENV{TMPDIR} : '/tmp';
      $lockdir = "$tmp/run.pl-gpus-$<";
      mkdir($lockdir, 0700) or -d $lockdir
        or die "$me: cannot make the GPU lock dir $lockdir ($!): set TMPDIR to a writable directory\n";
    }
  }
  # N free GPUs, locked: [[id, handle], ...]; undef (and nothing locked) when fewer are free.
  my $grab = sub {
    my @got;
    for my $id (@gpus) {
      last if @got == $gpu;
      next if $held{$id};
      if ($nested) { push @got, [$id, 1]; next; }   # the enclosing job's GPU: ours alone
      (my $file = "gpu.$id") =~ s/[^\w.-]/_/g;   # a UUID or MIG name may hold '/' or ':'
      $file = "$lockdir/$file";
      open(my $fh, '>>', $file) or die "$me: cannot open the GPU lock file $file: $!\n";
      if (flock($fh, LOCK_EX | LOCK_NB)) { push @got, [$id, $fh]; } else { close $fh; }
    }
    return \@got if @got == $gpu;
    for (@got) { close $_->[1] if ref $_->[1]; }
    return undef;
  };

  my %running;
  my $stop = sub {
    kill 'TERM', map { -$_ } keys %running;
    print STDERR "$me: interrupted (SIG$_[0]): stopped ", scalar(keys %running), " running job(s)$range, "
      . "logs like " . logof($first) . "\n";
    exit(128 + $signum{$_[0]});
  };
  local @SIG{keys %signum} = ($stop) x keys %signum;
  # The watchers' lifeline: this process alone holds the write end (perl opens pipes close-on-exec,
  # and each watcher closes its copy), so the read end sees end-of-file once this process is gone.
  pipe(my $alive_r, my $alive_w) or die "$me: cannot make a pipe for the job watchers: $!\n";
  my %why;
  my $done = 0;
  # Reaps one ended job (waiting for one when $block) and frees its GPUs; false when none ended.
  my $reap = sub {
    my $block = shift;
    my $pid = $block ? wait() : waitpid(-1, WNOHANG);
    return 0 if $pid <= 0;
    my $status = $?;
    for my $id (@{delete $gpus_of{$pid} // []}) { my $lock = delete $held{$id}; close $lock if ref $lock; }
    my $j = delete $running{$pid};
    my $code = footer_code(logof($j));
    if ($status != 0 || !defined $code || $code != 0) {
      $why{$j} = defined $code ? tag($j) . ": exit code $code, see " . logof($j)
                     : tag($j) . ($status ? ": killed (exit status $status)" : ": exited 0, but its log was cut short or removed")
                       . ", no '# Ended' line in " . logof($j);
    }
    $done++;
    return 1;
  };
  # Waits for one job to end: a blocking wait, which a SIGALRM at each heartbeat due interrupts for its
  # line (perl's wait() goes on waiting after the handler).
  my $arm = sub { my $left = $next_beat - time(); Time::HiRes::alarm($left > 0.01 ? $left : 0.01); };
  my $wait_one = sub {
    return $reap->(1) unless defined $next_beat;
    local $SIG{ALRM} = sub { heartbeat($done, sort { $a <=> $b } values %running); $arm->(); };
    $arm->();
    my $reaped = $reap->(1);
    Time::HiRes::alarm(0);
    return $reaped;
  };
  for my $j ($first .. $last) {
    $wait_one->() while $opt{'max-jobs-run'} > 0 && keys(%running) >= $opt{'max-jobs-run'};
    my $got = [];
    if (@gpus) {
      my $said = 0;
      until ($got = $grab->()) {
        next if $reap->(0);   # a job of ours ended: its GPUs are free now
        print STDERR "$me: all GPUs (" . join(',', @gpus) . ") are taken by other run.pl jobs of this user "
          . "(locks in $lockdir): waiting for $gpu of them\n" if !%running && !$said++;
        heartbeat($done, sort { $a <=> $b } values %running);
        sleep 0.2;
      }
    }
    my $pid = fork();
    die "$me: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
      setpgrp(0, 0);   # its own process group, so that an interrupt stops the whole job
      my ($job, $runner) = ($$, getppid());
      my $watcher = fork();
      die "$me: fork failed: $!\n" unless defined $watcher;
      watch_job($job, $alive_r, logof($j), $runner) if $watcher == 0;
      close $alive_w;
      $ENV{CUDA_VISIBLE_DEVICES} = join(',', map { $_->[0] } @$got) unless $inherit;   # empty: no GPU
      # CUDA counts GPUs fastest first, nvidia-smi by PCI bus: make its indices mean the same GPUs.
      $ENV{CUDA_DEVICE_ORDER} //= 'PCI_BUS_ID' if @$got && $from eq 'nvidia-smi -L';
      exec('bash', $script, $j) or die "$me: cannot run bash: $!\n";
    }
    $running{$pid} = $j;
    $gpus_of{$pid} = [map { $_->[0] } @$got];
    $held{$_->[0]} = $_->[1] for @$got;
  }
  $wait_one->() while keys %running;
  fail(%why) if %why;
  exit 0;
}

# ---------------------------------------------------------------- cluster back-ends
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
  exit(128 + $signum{$_[0]});
};
@SIG{keys %signum} = ($stop) x keys %signum;

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
  heartbeat(($last - $first + 1) - keys(%pending), sort { $a <=> $b } keys %pending);
  sleep 0.5;
}
fail(%why) if %why;
exit 0;
