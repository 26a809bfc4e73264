# Job runners, as in Kaldi's cmd.sh. Pick one block; the default runs everything on this machine.
# shellcheck shell=bash
#   run.pl   : local, JOB=1:N jobs in parallel (limit with --max-jobs-run)
#   queue.pl : Sun Grid Engine (qsub), resources mapped by conf/queue.conf
#   slurm.pl : Slurm (sbatch), resources mapped by conf/slurm.conf
# Every job sources path.sh and must end its log with "# Ended (code 0)"; JOB=1:N is one array job.
# cuda_cmd runs the ConvNet trainings (stages 9, 11, 12, 13): with --gpu 1 each asks for a GPU and uses it
# (--device auto); without, it trains on CPUs. --device cpu|cuda in the stages' scripts overrides it
# (they add --gpu 0 or --gpu N after it; the later option wins). Jobs that ask for no GPU see none.
# Locally, run.pl --gpu 1 gives each training a GPU of its own and waits while all are busy; on a machine
# without a GPU the trainings run on CPUs as before (run.pl says so).
export train_cmd="run.pl"
export decode_cmd="run.pl"
export cuda_cmd="run.pl --gpu 1"

# export train_cmd="queue.pl --mem 4G"
# export decode_cmd="queue.pl --mem 4G"
# export cuda_cmd="queue.pl --mem 8G --gpu 1"

# export train_cmd="slurm.pl --mem 4G"
# export decode_cmd="slurm.pl --mem 4G"
# export cuda_cmd="slurm.pl --mem 8G --gpu 1"    # a CPU-only partition: "slurm.pl --mem 8G"
