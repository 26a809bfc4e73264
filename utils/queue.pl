#!/usr/bin/env bash
# Kaldi's queue.pl interface: utils/run.pl with jobs submitted to Sun Grid Engine as one array job
# (qsub -t), resources mapped by conf/queue.conf (or --config FILE). See utils/run.pl.
exec "$(dirname "$0")/run.pl" --backend sge "$@"
