#!/usr/bin/env bash
# utils/train_summary.sh EXP_DIR...: one line per ConvNet training, from EXP_DIR/train_summary (the
# key=value file pyscripts/nnet/train.py writes beside final.pt).
for d in "$@"; do
  awk -v d="$d" '{ v[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1) }
    END { printf "  %s: %.0f s, %d epochs (%s); best dev epoch %d: AvgLoss %s FER %.2f%%\n", d,
          v["seconds"], v["epochs"], v["stop"], v["best_epoch"], v["dev_loss"], 100 * v["dev_fer"] }' \
    "$d/train_summary" 2>/dev/null || echo "  $d: not finished (no $d/train_summary)"
done
