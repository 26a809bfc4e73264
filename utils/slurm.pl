#!/usr/bin/env bash
# Kaldi's slurm.pl interface: utils/run.pl with jobs submitted to Slurm (sbatch --wait).
exec "$(dirname "$0")/run.pl" --backend slurm "$@"
