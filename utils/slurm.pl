#!/usr/bin/env bash
# Kaldi's slurm.pl interface: utils/run.pl with jobs submitted to Slurm as one job array (sbatch --array),
# resources mapped by conf/slurm.conf (or --config FILE). See utils/run.pl.
exec "$(dirname "$0")/run.pl" --backend slurm "$@"
