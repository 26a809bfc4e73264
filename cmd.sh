# Job runners, as in Kaldi's cmd.sh. Pick one block; the default runs everything on this machine.
#   run.pl   : local, JOB=1:N jobs in parallel (limit with --max-jobs-run)
#   queue.pl : Sun Grid Engine (qsub)
#   slurm.pl : Slurm (sbatch)
export train_cmd="run.pl"
export decode_cmd="run.pl"
export cuda_cmd="run.pl"

# export train_cmd="queue.pl --mem 4G"
# export decode_cmd="queue.pl --mem 4G"
# export cuda_cmd="queue.pl --gpu 1"

# export train_cmd="slurm.pl --mem 4G"
# export decode_cmd="slurm.pl --mem 4G"
# export cuda_cmd="slurm.pl --gpu 1"
