"""How hard the demo corpora are: the Baselines' error rates on them against the real corpora's range.

  python3 -m pyscripts.bench.demo_difficulty [--task ser|asr] [--corpus DIR] [--work DIR]
      [--method proxy|convnet] [--folds all|1,3] [--nj N] [--json FILE]

--task ser (the default): the demo IEMOCAP's emotions. Generates the demo IEMOCAP into WORK/corpus (or
takes --corpus), prepares it and makes its fbank features with the recipe's own scripts
(local/iemocap_data_prep.sh, steps/make_fbank.sh), then scores the paper's 8 leave-one-speaker-out folds
(conf/iemocap_folds.conf: Dev = Ses05F and Ses05M, Test = the fold's speaker) in one of two ways:
  proxy    a logistic regression on each utterance's mean and standard deviation of its fbank frames
           (seconds; to tune the generator, not to report)
  convnet  the SER Baseline itself: local/run_ser.sh's frame targets and folds, then the ConvNet of each
           chosen fold trained with --train-config (conf/convnet_ser_demo.yaml) and scored with the mean rule
It prints (and writes to --json) E and UE per fold and their mean over the folds scored, in %, beside the
target range (UE 35-55%: the paper's Baseline on the real IEMOCAP, UE 46.3 / 49.0 Dev / Test, and
SUPERB's FBANK baseline, about 35% accuracy) and a verdict per set: in range, too easy or too hard.
A benchmark, not a test: it takes minutes (the proxy) to about half an hour (8 ConvNet folds on 2 cores).

--task asr: the demo TIMIT's phones. Generates the demo TIMIT into WORK/corpus (or takes --corpus), makes
a recipe dir WORK/recipe (links to this recipe's scripts and code, a copy of conf/) and runs the recipe's
own ASR stages there on it as a real TIMIT (./run.sh --corpus timit with the demo speaker lists and the
demo ConvNet profile), then reads the PER (39 phones; the test set's at the LM weight chosen on dev) of
  proxy    the monophone GMM-HMM (stages 2-8, about two minutes on 2 cores; in the tuning runs its test
           PER was within 0.3 points of the ConvNet's, its dev PER up to 2.3 points above it)
  convnet  the ASR Baseline itself, the hybrid ConvNet-HMM (stages 2-10, about 10 minutes on 2 cores)
It prints (and writes to --json) PER dev and test, the forced alignment's accuracy against the corpus's
labels (stage 7; the ConvNet trains on that alignment), the target range (TARGET_PER on test) and the
paper's Baseline on the real TIMIT (PER 18.7 / 20.2 dev / test), and a verdict per set. The stages keep
their stamps in WORK/recipe, so a second call on the same corpus only reads the results.
"""
import argparse
import json
import logging
import os
import shutil
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
FOLD_CONF = RECIPE / DEFAULT_FOLD_CONF
SER_CONFIG = RECIPE / "conf" / "convnet_ser_demo.yaml"
# %, the PER (39 phones) on test a demo ASR Baseline should land in: the paper's Baseline on the real TIMIT
# (18.7 / 20.2 dev / test) with room for the spread of a 48-utterance test set (95% CI about +-2 points).
TARGET_PER = (18.0, 22.0)
# What the ASR stages link from this recipe into the benchmark's recipe dir (conf/ is copied: a run may add
# to it), as local/gpu_workdir.sh makes one.
RECIPE_LINKS = ("run.sh", "path.sh", "cmd.sh", "local", "steps", "utils", "pyscripts")
ASR_STOP_STAGE = {"proxy": 8, "convnet": 10}
ASR_DECODE = {"proxy": "exp/mono", "convnet": "exp/convnet_asr"}


def paper_baselines() -> dict:
    """The paper's Baselines on the real corpora, {"asr": {set: {"PER"}}, "ser": {set: {"E", "UE"}}}, read
    from the recipe's one copy of its numbers (conf/paper_results.tsv)."""
    from pyscripts.transfer.tables import PAPER_RESULTS, read_paper_results
    paper = read_paper_results(PAPER_RESULTS)
    _, _, per_dev, per_test = paper["ser2asr"]["baseline"]   # FER Dev, FER Test, PER Dev, PER Test
    e_dev, e_test, ue_dev, ue_test = paper["asr2ser"]["baseline"]
    return {"asr": {"dev": {"PER": per_dev}, "test": {"PER": per_test}},
            "ser": {"dev": {"E": e_dev, "UE": ue_dev}, "test": {"E": e_test, "UE": ue_test}}}


def _run(cmd, log_path, cwd=RECIPE):
    """Runs a recipe command from cwd (the recipe dir), its output to log_path; a failure names the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if cwd == RECIPE:
        # Everything is written under --work, so the recipe dir's one-run lock (utils/stage.sh) is not
        # taken: the benchmark may run beside a recipe run.
        env = {**os.environ, "RECIPE_LOCK_FD": "none"}
    else:   # run.sh in the benchmark's own recipe dir takes that dir's lock
        env = {k: v for k, v in os.environ.items() if k != "RECIPE_LOCK_FD"}
    with open(log_path, "w") as out:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
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


def verdict(error: float, target: tuple = TARGET_UE) -> str:
    """Where an error rate (%) falls against the target range (low, high): below it the corpus is too easy."""
    low, high = target
    return "in range" if low <= error <= high else ("too easy" if error < low else "too hard")


def summary(per_fold: dict) -> dict:
    """Mean E and UE per set over the folds scored, with the UE verdict of each set."""
    out = {}
    for name in ("dev", "test"):
        mean = {m: float(np.mean([f[name][m] for f in per_fold.values()])) for m in ("E", "UE")}
        out[name] = {**mean, "verdict": verdict(mean["UE"])}
    return out


def asr_recipe_dir(work: Path) -> Path:
    """WORK/recipe: links to this recipe's scripts and code and a copy of its conf/ (made once)."""
    recipe = work / "recipe"
    if not (recipe / "conf").is_dir():
        recipe.mkdir(parents=True, exist_ok=True)
        for name in RECIPE_LINKS + ((".venv",) if (RECIPE / ".venv").is_dir() else ()):
            if not (recipe / name).is_symlink():
                (recipe / name).symlink_to(RECIPE / name)
        shutil.copytree(RECIPE / "conf", recipe / "conf.partial", dirs_exist_ok=True)
        (recipe / "conf.partial").rename(recipe / "conf")
    return recipe


def run_asr(work: Path, corpus: "Path | None", method: str, nj: int) -> Path:
    """Generates the demo TIMIT (unless given) and runs the ASR stages of `method` on it; returns the
    recipe dir."""
    from pyscripts.corpora.demo.timit import generate
    if corpus is None:
        corpus = work / "corpus"
        generate(corpus, size="demo", nj=nj)
    recipe = asr_recipe_dir(work)
    _run(["./run.sh", "--corpus", "timit", "--timit-root", corpus,
          "--dev-spk-list", "conf/demo_timit_dev_spk.list", "--test-spk-list", "conf/demo_timit_test_spk.list",
          "--nnet-profile", "demo", "--skip-setup", "true", "--nj", nj, "--stop-stage", ASR_STOP_STAGE[method]],
         work / "log" / f"run_asr_{method}.log", cwd=recipe)
    return recipe


def asr_summary(recipe: Path, method: str) -> dict:
    """PER dev and test (with the LM setting chosen on dev and the verdict) from the decode dirs' results."""
    out = {}
    for name in ("dev", "test"):
        path = recipe / ASR_DECODE[method] / f"decode_{name}" / "scoring" / "result.json"
        if not path.is_file():
            raise DataError(f"{path} is missing: the ASR stages did not score {name}; see {recipe}/exp and "
                            f"the run log under --work/log")
        result = json.loads(path.read_text())
        per = float(result["per"]["percent"])
        out[name] = {"PER": per, "setting": result.get("setting"), "verdict": verdict(per, TARGET_PER)}
    return out


def alignment_accuracy(recipe: Path) -> "str | None":
    """Stage 7's line on the forced alignment against the corpus's labels (local/score_alignment.sh)."""
    path = recipe / "exp" / "mono_ali" / "boundary_accuracy"
    return path.read_text().strip() if path.is_file() else None


def asr_main(args) -> dict:
    started = time.time()
    work = args.work.resolve()
    recipe = run_asr(work, args.corpus.resolve() if args.corpus else None, args.method, args.nj)
    return {"task": "asr", "method": args.method, "model": ASR_DECODE[args.method],
            "corpus": str(args.corpus or work / "corpus"), "PER": asr_summary(recipe, args.method),
            "alignment": alignment_accuracy(recipe), "target_PER_test": list(TARGET_PER),
            "paper_real_timit": paper_baselines()["asr"], "seconds": round(time.time() - started, 1)}


def ser_main(args) -> dict:
    started = time.time()
    work = args.work.resolve()
    data = prepare(work, args.corpus.resolve() if args.corpus else None, args.nj)
    prepared = time.time()
    folds = choose_folds(fold_plan(data), args.folds)
    per_fold = (proxy_folds(data, folds) if args.method == "proxy"
                else convnet_folds(data, work, folds, args.nj, args.train_config.resolve()))
    result = {"task": "ser", "method": args.method, "corpus": str(args.corpus or work / "corpus"),
              "folds": sorted(per_fold), "per_fold": per_fold, "mean": summary(per_fold),
              "target_UE": list(TARGET_UE), "paper_real_iemocap": paper_baselines()["ser"],
              "seconds": {"prepare": round(prepared - started, 1), "score": round(time.time() - prepared, 1)}}
    if args.method == "convnet":
        result["train_config"] = str(args.train_config)
    return result


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
    parser.add_argument("--task", choices=("ser", "asr"), default="ser",
                        help="ser: the demo IEMOCAP; asr: the demo TIMIT [%(default)s]")
    parser.add_argument("--corpus", type=Path, help="the task's demo corpus already generated (default: generate one)")
    parser.add_argument("--work", type=Path,
                        help="where the corpus, data, features and models go "
                             "[exp/bench_demo_difficulty, with --task asr exp/bench_demo_difficulty_asr]")
    parser.add_argument("--method", choices=("proxy", "convnet"), default="proxy")
    parser.add_argument("--folds", default="all", help="SER: all, or fold numbers like 1,3 [%(default)s]")
    parser.add_argument("--nj", type=int, default=2, help="parallel jobs (synthesis, features, folds, decoding)")
    parser.add_argument("--train-config", type=Path, default=SER_CONFIG,
                        help="SER ConvNet config (ASR: the recipe's demo profile, conf/convnet_asr_demo.yaml)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.task == "asr" and args.folds != "all":
        parser.error("--folds is for --task ser (the ASR task has one train/dev/test split)")
    if args.work is None:
        args.work = Path("exp/bench_demo_difficulty" + ("_asr" if args.task == "asr" else ""))
    result = asr_main(args) if args.task == "asr" else ser_main(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
