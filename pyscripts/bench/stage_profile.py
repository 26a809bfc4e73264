"""Where a recipe run's time goes: each stage's wall-clock seconds, and each ConvNet training's, as JSON.

  python3 -m pyscripts.bench.stage_profile [EXP_DIR] [--json FILE]

run.sh appends a line to EXP_DIR/stage_times.tsv (`stage  seconds  finished`) each time a stage
finishes; a stage that was up to date adds nothing. The profile takes each stage's latest run. Each
training writes its seconds to its train_summary; the profile lists them, the largest first, and sums
them per experiment (the folds of a row together), since the trainings are most of stages 9 and 11-13.
"""
import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.train import SUMMARY, read_summary


def read_stage_times(exp_dir):
    """{stage: {"seconds": s, "finished": timestamp}} of the latest run of each stage."""
    path = Path(exp_dir) / "stage_times.tsv"
    if not path.is_file():
        raise DataError(f"{path}: no stage times; run ./run.sh (it writes them as stages finish)")
    stages = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DataError(f"{path}:{lineno}: expected `stage<TAB>seconds<TAB>finished`, got {line!r}")
        stages[int(fields[0])] = {"seconds": int(fields[1]), "finished": fields[2]}
    return dict(sorted(stages.items()))


def read_trainings(exp_dir):
    """[{"dir", "seconds", "epochs", "started"}] of every finished training under exp_dir, largest first."""
    trainings = []
    for path in sorted(Path(exp_dir).rglob(SUMMARY)):
        summary = read_summary(path.parent)
        try:
            trainings.append({"dir": str(path.parent.relative_to(exp_dir)), "seconds": float(summary["seconds"]),
                              "epochs": int(summary["epochs"]), "started": summary.get("started", "")})
        except (KeyError, ValueError) as err:
            raise DataError(f"{path}: not a training summary ({err!r}); delete it and train again") from None
    return sorted(trainings, key=lambda t: -t["seconds"])


def seconds_per_experiment(trainings):
    """{experiment: seconds}: the trainings summed with their fold component dropped (ser/fold3 -> ser)."""
    sums = defaultdict(float)
    for t in trainings:
        sums[re.sub(r"/fold\d+$", "", t["dir"])] += t["seconds"]
    return {name: round(seconds, 1) for name, seconds in sorted(sums.items(), key=lambda item: -item[1])}


def profile(exp_dir):
    stages = read_stage_times(exp_dir)
    trainings = read_trainings(exp_dir)
    return {"exp_dir": str(exp_dir), "stages": stages, "total_seconds": sum(s["seconds"] for s in stages.values()),
            "training_seconds": seconds_per_experiment(trainings), "trainings": trainings}


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", nargs="?", default="exp")
    parser.add_argument("--json", help="also write the profile here")
    args = parser.parse_args(argv)
    result = profile(args.exp_dir)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
