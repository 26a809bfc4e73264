"""How hard the demo IEMOCAP's emotions are: the SER Baseline's E and UE on it against the real corpus's range.

  python3 -m pyscripts.bench.demo_difficulty [--corpus DIR] [--work DIR] [--method proxy|convnet]
      [--folds all|1,3] [--nj N] [--json FILE]

Generates the demo IEMOCAP into WORK/corpus (or takes --corpus), prepares it and makes its fbank features
with the recipe's own scripts (local/iemocap_data_prep.sh, steps/make_fbank.sh), then scores the paper's
8 leave-one-speaker-out folds (conf/iemocap_folds.conf: Dev = Ses05F and Ses05M, Test = the fold's speaker)
in one of two ways:
  proxy    a logistic regression on each utterance's mean and standard deviation of its fbank frames
           (seconds; to tune the generator, not to report)
  convnet  the SER Baseline itself: local/run_ser.sh's frame targets and folds, then the ConvNet of each
           chosen fold trained with --train-config (conf/convnet_ser_demo.yaml) and scored with the mean rule
It prints (and writes to --json) E and UE per fold and their mean over the folds scored, in %, beside the
target range (UE 35-55%: the paper's Baseline on the real IEMOCAP, UE 46.3 / 49.0 Dev / Test, and
SUPERB's FBANK baseline, about 35% accuracy) and a verdict per set: in range, too easy or too hard.
A benchmark, not a test: it takes minutes (the proxy) to about half an hour (8 ConvNet folds on 2 cores).
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pyscripts.errors import DataError, cli_main
from pyscripts.ser.folds import DEFAULT_FOLD_CONF

log = logging.getLogger(__name__)

RECIPE = Path(__file__).resolve().parents[2]
TARGET_UE = (35.0, 55.0)  # %, the range a demo Baseline should land in
PAPER = {"dev": {"E": 44.63, "UE": 46.34}, "test": {"E": 46.44, "UE": 48.96}}  # conf/paper_results.tsv
FOLD_CONF = RECIPE / DEFAULT_FOLD_CONF
SER_CONFIG = RECIPE / "conf" / "convnet_ser_demo.yaml"


def _run(cmd, log_path):
    """Runs a recipe command from the recipe dir, its output to log_path; a failure names the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written under --work, so the recipe dir's one-run lock (utils/stage.sh) is not taken:
    # the benchmark may run beside a recipe run.
    env = {**os.environ, "RECIPE_LOCK_FD": "none"}
    with open(log_path, "w") as out:
        proc = subprocess.run([str(c) for c in cmd], cwd=RECIPE, stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise DataError(f"{' '.join(map(str, cmd[:2]))} failed (exit {proc.returncode}); see {log_path}")


def prepare(work: Path, corpus: "Path | None", nj: int) -> Path:
    """The demo corpus (generated unless given), its data dir and fbank features; returns the data dir."""
    from pyscripts.corpora.demo.iemocap import make_corpus
    if corpus is None:
        corpus = work / "corpus"
        make_corpus(corpus, size="demo", nj=nj)
    data = work / "data"
    if not (data / "all" / "feats.scp").is_file():
        _run(["local/iemocap_data_prep.sh", corpus, data], work / "log" / "prep.log")
        _run(["steps/make_fbank.sh", "--nj", nj, "--cmd", "run.pl", data / "all", work / "log" / "fbank",
              work / "fbank"], work / "log" / "fbank.log")
    return data


def fold_plan(data: Path) -> list:
    """The paper's fold plan over the speakers of data/all."""
    from pyscripts.kaldi.datadir import read_table
    from pyscripts.ser.folds import make_fold_plan, read_fold_conf
    speakers = set(read_table(data / "all" / "utt2spk").values())
    return make_fold_plan(speakers, read_fold_conf(FOLD_CONF), str(FOLD_CONF))


def utterance_stats(data: Path) -> dict:
    """{utt: (speaker, emotion id, mean and sd of its fbank frames)}."""
    import kaldiio
    from pyscripts.kaldi.datadir import read_table
    from pyscripts.ser.labels import EMOTIONS
    utt2spk, utt2emo = read_table(data / "all" / "utt2spk"), read_table(data / "all" / "utt2emo")
    out = {}
    for utt, feats in kaldiio.load_scp_sequential(str(data / "all" / "feats.scp")):
        if utt in utt2emo:
            x = np.asarray(feats, dtype=np.float64)
            out[utt] = (utt2spk[utt], EMOTIONS.index(utt2emo[utt]), np.concatenate([x.mean(0), x.std(0)]))
    return out


def _rates(refs, hyps):
    from pyscripts.ser.evaluate import confusion_matrix, error_rates
    e, ue = error_rates(confusion_matrix(refs, hyps))
    return {"E": 100 * e, "UE": 100 * ue}


def proxy_folds(data: Path, folds: list) -> dict:
    """{fold: {"dev": {E, UE}, "test": {E, UE}}} of a linear classifier on utterance statistics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    stats = utterance_stats(data)
    results = {}
    for fold in folds:
        def subset(speakers):
            rows = [v for v in stats.values() if v[0] in speakers]
            return np.stack([r[2] for r in rows]), np.array([r[1] for r in rows])
        x, y = subset(fold["train"])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(x, y)
        results[fold["name"]] = {}
        for name, speakers in (("dev", fold["valid"]), ("test", fold["test"])):
            xs, ys = subset(speakers)
            results[fold["name"]][name] = _rates(ys, model.predict(xs))
    return results


def convnet_folds(data: Path, work: Path, folds: list, nj: int, config: Path) -> dict:
    """{fold: {"dev": {E, UE}, "test": {E, UE}}} of the SER Baseline's ConvNets of the chosen folds."""
    exp = work / "exp"
    # Made once per work dir (like its features): redoing them would date every fold's model as stale.
    if not ((data / "folds" / "plan").is_file() and (exp / "targets" / "all" / "targets.scp").is_file()):
        _run(["local/run_ser.sh", "--stage", 1, "--stop-stage", 2, "--nj", nj, "--train-config", config,
              data, exp], work / "log" / "ser_prep.log")
    number = {f"fold{k}": k for k in range(1, len(fold_plan(data)) + 1)}

    def train_and_score(fold):
        k = number[fold["name"]]
        _run(["local/ser_train_fold.sh", "--train-config", config, "--num-threads", 1, "--device", "cpu",
              data / "folds", exp / "targets", exp, k], work / "log" / f"train.{k}.log")
        _run([sys.executable, "-m", "pyscripts.ser.evaluate", "fold", "--rule", "mean", "--num-threads", 1,
              exp, data / "folds", exp / "targets", k], work / "log" / f"eval.{k}.log")
        metrics = {}
        for subset, name in (("valid", "dev"), ("test", "test")):
            m = json.loads((exp / fold["name"] / "eval" / subset / "metrics.json").read_text())
            metrics[name] = {"E": 100 * m["E"], "UE": 100 * m["UE"]}
        return fold["name"], metrics

    with ThreadPoolExecutor(max_workers=nj) as pool:
        return dict(pool.map(train_and_score, folds))


def verdict(ue: float) -> str:
    low, high = TARGET_UE
    return "in range" if low <= ue <= high else ("too easy" if ue < low else "too hard")


def summary(per_fold: dict) -> dict:
    """Mean E and UE per set over the folds scored, with the UE verdict of each set."""
    out = {}
    for name in ("dev", "test"):
        mean = {m: float(np.mean([f[name][m] for f in per_fold.values()])) for m in ("E", "UE")}
        out[name] = {**mean, "verdict": verdict(mean["UE"])}
    return out


def choose_folds(plan: list, spec: str) -> list:
    if spec == "all":
        return plan
    try:
        wanted = [int(k) for k in spec.split(",")]
    except ValueError:
        raise DataError(f"--folds {spec!r}: give 'all' or fold numbers like 1,3") from None
    if not all(1 <= k <= len(plan) for k in wanted):
        raise DataError(f"--folds {spec!r}: the plan has folds 1..{len(plan)}")
    return [plan[k - 1] for k in wanted]


@cli_main
def main(argv: "list | None" = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a demo IEMOCAP already generated (default: generate one)")
    parser.add_argument("--work", type=Path, default=Path("exp/bench_demo_difficulty"),
                        help="where the corpus, data, features and models go [%(default)s]")
    parser.add_argument("--method", choices=("proxy", "convnet"), default="proxy")
    parser.add_argument("--folds", default="all", help="all, or fold numbers like 1,3 [%(default)s]")
    parser.add_argument("--nj", type=int, default=2, help="parallel jobs (synthesis, features, folds)")
    parser.add_argument("--train-config", type=Path, default=SER_CONFIG)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    started = time.time()
    work = args.work.resolve()
    data = prepare(work, args.corpus.resolve() if args.corpus else None, args.nj)
    prepared = time.time()
    folds = choose_folds(fold_plan(data), args.folds)
    per_fold = (proxy_folds(data, folds) if args.method == "proxy"
                else convnet_folds(data, work, folds, args.nj, args.train_config.resolve()))
    result = {"method": args.method, "corpus": str(args.corpus or work / "corpus"), "folds": sorted(per_fold),
              "per_fold": per_fold, "mean": summary(per_fold), "target_UE": list(TARGET_UE),
              "paper_real_iemocap": PAPER, "seconds": {"prepare": round(prepared - started, 1),
                                                       "score": round(time.time() - prepared, 1)}}
    if args.method == "convnet":
        result["train_config"] = str(args.train_config)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
