"""The joint ASR-SER model's comparison with the single-task Baselines, made where the results are
gathered (local/run_joint.sh stage 5, after training, decoding and the SER evaluation):

  python3 -m pyscripts.joint_results [--fold K] JOINT_DIR ASR_BASELINE_DIR SER_BASELINE_DIR
      JOINT_DIR/results.md: ASR (FER/PER on dev and test) and SER (E/UE on the fold's valid and test
      sets), one line per task, joint against its single-task Baseline
"""
import argparse
import json
from pathlib import Path

import torch

from pyscripts.asr.scoring import model_results
from pyscripts.errors import cli_main
from pyscripts.nnet.checkpoints import read_summary


def _asr_cells(model_dir):
    row = model_results(model_dir)
    return [row[k] for k in ("FER dev", "FER test", "PER dev", "PER test")]


def _ser_cells(fold_dir):
    cells = []
    for metric in ("E", "UE"):
        for subset in ("valid", "test"):
            path = Path(fold_dir) / "eval" / subset / "metrics.json"
            cells.append(100 * json.loads(path.read_text())[metric] if path.is_file() else None)
    return cells


def _fmt(values):
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def _diff(joint, base):
    return " / ".join("–" if j is None or b is None else f"{j - b:+.1f}" for j, b in zip(joint, base))


def compare(joint_dir, asr_baseline, ser_baseline, fold: int = 1) -> str:
    """JOINT_DIR/results.md: ASR (FER/PER on dev and test, decoded with the asr view in JOINT_DIR/asr)
    and SER (E/UE on the fold's valid and test sets, JOINT_DIR/ser/foldK/eval), one line per task."""
    joint_dir = Path(joint_dir)
    rows = [("ASR, TIMIT: FER Dev / FER Test / PER Dev / PER Test", _asr_cells(asr_baseline),
             _asr_cells(joint_dir / "asr"), asr_baseline),
            (f"SER, IEMOCAP fold{fold}: E Dev / E Test / UE Dev / UE Test",
             _ser_cells(Path(ser_baseline) / f"fold{fold}"), _ser_cells(joint_dir / "ser" / f"fold{fold}"),
             Path(ser_baseline) / f"fold{fold}")]
    lines = ["# Joint ASR-SER ConvNet against the single-task baselines", "",
             f"One network ({joint_dir}/final.pt): the trunk (layers 1..5) shared, one output layer per task, "
             f"trained on batches mixing TIMIT and IEMOCAP fold{fold} frames. Error rates in %; "
             "the last column is joint minus baseline (negative: the joint model is better).", "",
             "| Task: metrics (%) | Baseline (single-task) | Joint | Joint − Baseline |", "|---|---|---|---|"]
    for title, base, joint, base_dir in rows:
        lines.append(f"| {title} | {_fmt(base)} ({base_dir}) | {_fmt(joint)} | {_diff(joint, base)} |")
    lines += ["", _size_and_time(joint_dir, asr_baseline, Path(ser_baseline) / f"fold{fold}")]
    text = "\n".join(lines) + "\n"
    (joint_dir / "results.md").write_text(text)
    return text


def _size_and_time(joint_dir, *baseline_dirs):
    """A sentence on parameters and training time, joint against the two baselines together."""
    def params(path):
        package = torch.load(path, map_location="cpu", weights_only=True)
        return sum(v.numel() for k, v in package["state_dict"].items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked", "feat_mean", "feat_std")))

    def seconds(d):
        summary = read_summary(d)
        return float(summary["seconds"]) if summary else None
    dirs = [Path(joint_dir), *map(Path, baseline_dirs)]
    if not all((d / "final.pt").is_file() for d in dirs):
        return "Parameters and training times: a model is missing."
    n_joint, n_base = params(dirs[0] / "final.pt"), sum(params(d / "final.pt") for d in dirs[1:])
    times = [seconds(d) for d in dirs]
    time_text = "–" if None in times else f"{times[0]:.0f} s against {times[1]:.0f} + {times[2]:.0f} s"
    return (f"Parameters: {n_joint:,} (joint) against {n_base:,} (the two baselines together). "
            f"Training time: {time_text} (this run's wall clock, train_summary).")



@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold", type=int, default=1, help="the SER fold the joint model was trained on")
    parser.add_argument("joint_dir", help="e.g. exp/joint (with asr/decode_{dev,test}, ser/foldK/eval)")
    parser.add_argument("asr_baseline", help="e.g. exp/convnet_asr")
    parser.add_argument("ser_baseline", help="e.g. exp/ser (the fold's eval in foldK/eval)")
    args = parser.parse_args(argv)
    print(compare(args.joint_dir, args.asr_baseline, args.ser_baseline, args.fold), end="")


if __name__ == "__main__":
    main()
