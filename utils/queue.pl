#!/usr/bin/env bash
# Kaldi's queue.pl interface: utils/run.pl with jobs submitted to Sun Grid Engine (qsub -sync y).
exec "$(dirname "$0")/run.pl" --backend sge "$@"
