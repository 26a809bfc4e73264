"""Utterance-level emotion decisions from the ConvNet's frame posteriors, and the SER metrics.

Decision rule (default, `mean`): the utterance's emotion is the argmax of the mean, over its speech
frames, of the frame posteriors of the 4 emotion classes (ang, hap, neu, sad). Speech frames are the
frames the voice-activity / voicing detector labelled speech (targets != sil; at inference the same
detector is run on the wav). The sil posterior takes no part; the reported utterance posterior is that
mean 4-vector normalised to sum to 1. Option `vote`: each speech frame votes for its most probable
emotion (argmax over the 4 emotion classes), the most voted emotion wins, ties go to the higher mean
posterior; the reported score is the winner's share of the votes.
An utterance with no speech frame at all (the detector found nothing voiced) is decided on all of its
frames instead, and counted in the log.

Metrics on a confusion matrix C (rows: reference emotion, columns: decision):
  E  = weighted error   = 1 - trace(C) / sum(C)                 (1 - accuracy over utterances)
  UE = unweighted error = 1 - mean over classes of C[i,i]/sum_j C[i,j]   (1 - mean per-class recall)
A class absent from the reference of a set has no recall; UE averages over the classes present (and
the log says so). Chance UE with 4 classes is 75%.

The literature reports accuracy (acc = 1 - E) and unweighted accuracy (UA = 1 - UE).

Per fold and set (Dev = the fold's validation set, Test = its held-out test speakers) `score` writes
decisions, confusion.txt, metrics.json and intervals.json (95% bootstrap intervals of E and UE,
utterances resampled within speakers, pyscripts/stats.py); `table` collects the folds into Markdown
tables with the per-fold values and their mean, laid out like the paper's results (E Dev, E Test,
UE Dev, UE Test), and the same with their intervals.
`fold` does nothing for a fold whose metrics are newer than its final.pt and made with the same rule.
"""
import argparse
import json
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from pyscripts.kaldi.datadir import read_table, write_table
from pyscripts import stats
from pyscripts.ser.intervals import read_ser_set, write_ser_intervals
from pyscripts.errors import DataError, cli_main
from pyscripts.progress import Progress
from pyscripts.ser.labels import CLASSES, EMOTIONS, SIL_ID
from pyscripts.ser.heatmap import plot_confusions

log = logging.getLogger(__name__)

RULES = ("mean", "vote")
SETS = (("valid", "Dev"), ("test", "Test"))


def utterance_decision(log_posteriors: np.ndarray, speech: np.ndarray,
                       rule: str = "mean") -> tuple[int, np.ndarray, bool]:
    """(emotion id, scores over the 4 emotions, whether it fell back to all frames) of one utterance.
    log_posteriors: (frames, 5) frame log-posteriors; speech: (frames,) bool mask of speech frames."""
    post = np.exp(np.asarray(log_posteriors, dtype=np.float64))
    speech = np.asarray(speech, dtype=bool)
    if post.ndim != 2 or post.shape[1] != len(CLASSES) or len(post) != len(speech) or len(post) == 0:
        raise ValueError(f"need (frames>0, {len(CLASSES)}) posteriors and one speech flag per frame, got "
                         f"{post.shape} and {speech.shape}")
    fallback = not speech.any()
    emo = post[:, :len(EMOTIONS)] if fallback else post[speech, :len(EMOTIONS)]
    mean = emo.mean(axis=0)
    mean_norm = mean / mean.sum() if mean.sum() > 0 else np.full(len(EMOTIONS), 1 / len(EMOTIONS))
    if rule == "mean":
        return int(np.argmax(mean)), mean_norm, fallback
    if rule == "vote":
        votes = np.bincount(emo.argmax(axis=1), minlength=len(EMOTIONS))
        tied = np.flatnonzero(votes == votes.max())
        winner = int(tied[np.argmax(mean[tied])])
        return winner, votes / votes.sum(), fallback
    raise ValueError(f"unknown decision rule {rule!r}; use one of {RULES}")


def confusion_matrix(refs: Sequence[int], hyps: Sequence[int], num_classes: int = len(EMOTIONS)) -> np.ndarray:
    """C[i, j] = number of utterances of reference class i decided as class j."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for r, h in zip(refs, hyps):
        cm[r, h] += 1
    return cm


def error_rates(cm: np.ndarray) -> tuple[float, float]:
    """(E, UE) of a confusion matrix; UE over the reference classes present."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    if total == 0:
        raise DataError("no utterances to score")
    present = cm.sum(axis=1) > 0
    recalls = np.diag(cm)[present] / cm.sum(axis=1)[present]
    return 1.0 - np.trace(cm) / total, 1.0 - recalls.mean()


def format_confusion(cm: np.ndarray, labels: Sequence[str] = EMOTIONS) -> str:
    """Text confusion matrix with row totals and per-class recall."""
    width = max(6, max(len(str(v)) for v in np.ravel(cm)) + 1)
    lines = ["ref\\hyp " + "".join(f"{l:>{width}}" for l in labels) + f"{'total':>{width}}  recall"]
    for i, label in enumerate(labels):
        row = cm[i]
        recall = f"{100 * row[i] / row.sum():6.1f}%" if row.sum() else "     -"
        lines.append(f"{label:<8}" + "".join(f"{v:>{width}}" for v in row) + f"{row.sum():>{width}}  {recall}")
    return "\n".join(lines) + "\n"


def _forward(model_paths, data_dir):
    """feats -> [log-posteriors of each model]: the models loaded once and run together
    (pyscripts.nnet.forward.SharedForward: each gets the numbers it gets alone), each checked to have been
    trained on features with the options of data_dir's."""
    from pyscripts.kaldi.features import data_feature_record
    from pyscripts.nnet.forward import SharedForward, check_trained_features
    from pyscripts.nnet.model import load_package
    models = [load_package(str(path))[0] for path in model_paths]
    given = data_feature_record(data_dir)
    for path, model in zip(model_paths, models):
        check_trained_features(model, path, given, "make the features of this data dir with the options the "
                               "model was trained on, or score a model trained on these")
    return SharedForward(models).log_posteriors


def scoring_items(data_dir: Path, targets_dir: Path) -> Iterator[Any]:
    """(utt, reference emotion id, features, speech mask) of each utterance of utt2emo, checked."""
    import kaldiio
    utt2emo = read_table(data_dir / "utt2emo")
    feats = kaldiio.load_scp(str(data_dir / "feats.scp"))
    targets = kaldiio.load_scp(str(targets_dir / "targets.scp"))
    for utt, emotion in utt2emo.items():
        if emotion not in EMOTIONS:
            raise DataError(f"{data_dir / 'utt2emo'}: {utt} has emotion {emotion!r}, not one of {EMOTIONS}")
        if utt not in feats or utt not in targets:
            raise DataError(f"utterance {utt} of {data_dir} has no {'features' if utt not in feats else 'targets'}"
                            f"; re-run the features / local/ser_frame_labels.sh")
        x, t = feats[utt], targets[utt]
        if len(x) != len(t):
            raise DataError(f"utterance {utt}: {len(x)} feature frames but {len(t)} targets in "
                            f"{targets_dir / 'targets.scp'}; re-run local/ser_frame_labels.sh")
        yield utt, EMOTIONS.index(emotion), np.array(x, dtype=np.float32), t != SIL_ID


def score_sets(models: list, data_dir: Path | str, targets_dir: Path | str, out_dirs: list,
               rule: str = "mean") -> list[dict]:
    """score_set of several models on one data dir, its features read once and the models run together;
    returns their metrics dicts in order."""
    data_dir, targets_dir = Path(data_dir), Path(targets_dir)
    forward = _forward(models, data_dir)
    refs, hyps = [], [[] for _ in models]
    decisions, fallbacks = [{} for _ in models], [[] for _ in models]
    progress = Progress(f"scoring {data_dir}", len(read_table(data_dir / "utt2emo")), logger=log)
    for utt, ref, x, speech in scoring_items(data_dir, targets_dir):
        refs.append(ref)
        for k, post in enumerate(forward(x)):
            hyp, scores, fallback = utterance_decision(post, speech, rule)
            if fallback:
                fallbacks[k].append(utt)
            hyps[k].append(hyp)
            decisions[k][utt] = [EMOTIONS[ref], EMOTIONS[hyp]] + [f"{s:.4f}" for s in scores]
        progress.update(len(refs))
    return [write_set_scores(model, data_dir, Path(out_dir), rule, confusion_matrix(refs, model_hyps),
                             model_decisions, model_fallbacks)
            for model, out_dir, model_hyps, model_decisions, model_fallbacks
            in zip(models, out_dirs, hyps, decisions, fallbacks)]


def score_set(model: Any, data_dir: Path | str, targets_dir: Path | str, out_dir: Path | str,
              rule: str = "mean") -> dict:
    """Decisions and metrics of one model on one data dir; returns the metrics dict."""
    return score_sets([model], data_dir, targets_dir, [out_dir], rule)[0]


def write_set_scores(model: Any, data_dir: Path | str, out_dir: Path, rule: str, cm: np.ndarray, decisions: dict,
                     fallbacks: list[str]) -> dict:
    """decisions, confusion.txt, metrics.json and intervals.json of one model on one set; the metrics."""
    e, ue = error_rates(cm)
    absent = [EMOTIONS[i] for i in range(len(EMOTIONS)) if cm[i].sum() == 0]
    if absent:
        log.warning("%s: no reference utterance of %s; UE averages the recalls of the other classes",
                    data_dir, ",".join(absent))
    if fallbacks:
        log.warning("%s: %d utterance(s) without speech frames decided on all frames: %s", data_dir,
                    len(fallbacks), " ".join(fallbacks[:5]))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(out_dir / "decisions", decisions)
    (out_dir / "confusion.txt").write_text(format_confusion(cm))
    metrics = {"E": e, "UE": ue, "utterances": int(cm.sum()), "rule": rule, "model": str(model),
               "data": str(data_dir), "confusion": cm.tolist(), "classes": list(EMOTIONS),
               "absent_classes": absent, "no_speech_utterances": len(fallbacks)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    intervals = write_ser_intervals(out_dir)
    log.info("%s: 95%% intervals E [%.1f, %.1f]%% UE [%.1f, %.1f]%%", out_dir, 100 * intervals["E"]["low"],
             100 * intervals["E"]["high"], 100 * intervals["UE"]["low"], 100 * intervals["UE"]["high"])
    log.info("%s on %s (%s rule): E %.2f%% UE %.2f%% over %d utterances", model, data_dir, rule,
             100 * e, 100 * ue, int(cm.sum()))
    return metrics


def _scored(fold_exp_dir, rule, eval_name):
    """The metrics of a fold exp dir's final.pt when all its sets are scored, newer than it and with
    `rule`; else None."""
    model = Path(fold_exp_dir) / "final.pt"
    if not model.is_file():
        raise DataError(f"{model}: missing; train the fold first (steps/train_convnet.sh)")
    done = {}
    for subset, _ in SETS:
        path = Path(fold_exp_dir) / eval_name / subset / "metrics.json"
        if path.is_file() and path.stat().st_mtime > model.stat().st_mtime:
            metrics = json.loads(path.read_text())
            if metrics.get("rule") == rule:
                done[subset] = metrics
    return done if len(done) == len(SETS) else None


def score_fold(fold_exp_dirs: list, fold_data_dir: Path | str, fold_targets_dir: Path | str, rule: str = "mean",
               eval_name: str = "eval") -> dict:
    """Scores the final.pt of each of fold_exp_dirs (models of one fold) on the fold's valid (Dev) and
    test (Test) subsets into FOLD_EXP_DIR/<eval_name>/{valid,test}/, all models in one pass over each
    set; a dir already scored (see _scored) is not redone. Returns {dir: {subset: metrics}}."""
    results, todo = {}, []
    for exp_dir in map(Path, fold_exp_dirs):
        results[exp_dir] = _scored(exp_dir, rule, eval_name)
        if results[exp_dir] is None:
            todo.append(exp_dir)
        else:
            log.info("%s: already scored with the %s rule (metrics newer than the model); not redone", exp_dir, rule)
    if todo:
        log.info("scoring %d model(s) of %s together: %s", len(todo), fold_data_dir, " ".join(map(str, todo)))
        for subset, _ in SETS:
            metrics = score_sets([d / "final.pt" for d in todo], Path(fold_data_dir) / subset,
                                 Path(fold_targets_dir) / subset, [d / eval_name / subset for d in todo], rule)
            for exp_dir, m in zip(todo, metrics):
                results[exp_dir] = {**(results[exp_dir] or {}), subset: m}
    return results


def collect(fold_dirs: list, eval_name: str = "eval") -> tuple[dict, dict]:
    """Per-fold metrics {fold: {set: metrics}} and their mean per set and metric, from
    FOLD_DIR/<eval_name>/{valid,test}/metrics.json."""
    per_fold = {}
    for d in fold_dirs:
        d = Path(d)
        per_fold[d.name] = {}
        for subset, _ in SETS:
            path = d / eval_name / subset / "metrics.json"
            if not path.is_file():
                raise DataError(f"{path}: missing; run the evaluation of {d} first")
            per_fold[d.name][subset] = json.loads(path.read_text())
    if not per_fold:
        raise DataError("no folds to collect")
    mean = {subset: {m: float(np.mean([f[subset][m] for f in per_fold.values()])) for m in ("E", "UE")}
            for subset, _ in SETS}
    return per_fold, mean


def _cells(values):
    """The paper's column order: E Dev, E Test, UE Dev, UE Test, in percent."""
    return [f"{100 * values[s][m]:.1f}" for m in ("E", "UE") for s, _ in SETS]


def markdown_tables(per_fold: dict, mean: dict, label: str = "Baseline") -> tuple[str, str]:
    """The paper-style result row (mean over folds) and the per-fold table, as Markdown."""
    header = "| {} | E Dev | E Test | UE Dev | UE Test |\n|---|---|---|---|---|\n"
    row = "| {} | " + " | ".join(["{}"] * 4) + " |\n"
    paper_style = header.format("Model") + row.format(f"{label}", *_cells(mean))
    folds = header.format("Fold (test speaker)")
    for name, f in per_fold.items():
        folds += row.format(f"{name} ({_test_speaker(f['test'])})", *_cells(f))
    folds += row.format(f"mean of {len(per_fold)}", *_cells(mean))
    return paper_style, folds


def _test_speaker(metrics):
    """The held-out speaker of a fold, from its test data dir's utt2spk (or '?' when unreadable)."""
    try:
        return ",".join(sorted(set(read_table(Path(metrics["data"]) / "utt2spk").values())))
    except DataError:
        return "?"


def fold_intervals(fold_dirs: list, per_fold: dict, eval_name: str = "eval") -> dict | None:
    """{subset: stats.ser_intervals of the folds' sets} (the mean's interval resamples the folds
    together), or None when a fold has no per-utterance decisions."""
    out = {}
    for subset, _ in SETS:
        try:
            sets = [read_ser_set(Path(d) / eval_name / subset) for d in fold_dirs]
        except DataError as err:
            log.warning("no confidence intervals: %s", err)
            return None
        out[subset] = stats.ser_intervals(sets)
        for (name, f), block in zip(per_fold.items(), out[subset]["sets"]):
            for m in ("E", "UE"):
                if abs(block[m].estimate - f[subset][m]) > 1e-9:
                    log.warning("%s %s: %s of the decisions %.4f, of metrics.json %.4f; interval left out "
                                "(score the fold again)", name, subset, m, block[m].estimate, f[subset][m])
                    block[m] = stats.Interval(f[subset][m], float("nan"), float("nan"))
    return out


def interval_table(per_fold: dict, intervals: dict) -> str:
    """Markdown: per fold and their mean, `value [low, high]` in % for E Dev, E Test, UE Dev, UE Test."""
    def cells(blocks):
        return " | ".join(blocks[s][m].cell() for m in ("E", "UE") for s, _ in SETS)
    lines = ["| Fold (test speaker) | E Dev | E Test | UE Dev | UE Test |", "|---|---|---|---|---|"]
    for k, (name, f) in enumerate(per_fold.items()):
        lines.append(f"| {name} ({_test_speaker(f['test'])}) | "
                     f"{cells({s: intervals[s]['sets'][k] for s, _ in SETS})} |")
    lines.append(f"| mean of {len(per_fold)} | {cells({s: intervals[s]['mean'] for s, _ in SETS})} |")
    return "\n".join(lines) + "\n"


def write_summary(fold_dirs: list, out_dir: Path | str, label: str = "Baseline", eval_name: str = "eval") -> str:
    per_fold, mean = collect(fold_dirs, eval_name)
    paper_style, folds = markdown_tables(per_fold, mean, label)
    intervals = fold_intervals(fold_dirs, per_fold, eval_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = (f"# SER results ({len(per_fold)} folds, decision rule: "
            f"{next(iter(per_fold.values()))['test']['rule']})\n\n"
            f"E = 1 - accuracy (acc), UE = 1 - unweighted accuracy (UA, the mean per-class recall), in %; "
            f"the literature's acc = 100 - E, UA = 100 - UE. Dev = the fold's validation set, "
            f"Test = its held-out test speakers (data/iemocap/folds/plan); means over folds.\n\n{paper_style}\n{folds}")
    if intervals is None:
        text += "\n95% confidence intervals: left out, a fold has no per-utterance decisions (score it again).\n"
    else:
        text += (f"\n95% confidence intervals, `value [low, high]`: percentile bootstrap with the utterances "
                 f"resampled within speakers ({stats.DEFAULT_RESAMPLES} resamples, seed {stats.DEFAULT_SEED}; "
                 f"the mean's interval resamples all folds together; pyscripts/stats.py).\n\n"
                 f"{interval_table(per_fold, intervals)}")
    pooled: dict[str, Any] = {name: sum(np.array(f[subset]["confusion"]) for f in per_fold.values())
                              for subset, name in SETS}
    for name, cm in pooled.items():
        text += f"\n{name} confusion matrix, summed over folds:\n\n```\n{format_confusion(cm)}```\n"
    folds = f"{len(per_fold)} fold" + ("s" if len(per_fold) > 1 else "")
    plot_confusions({f"{name}, summed over {folds}": cm for name, cm in pooled.items()}, EMOTIONS,
                    out_dir / "confusion.png", f"{label}: confusion matrices (counts and row %)")
    (out_dir / "results.md").write_text(text)
    summary = {"mean": mean, "folds": {k: {s: {m: v[s][m] for m in ("E", "UE", "utterances")} for s, _ in SETS}
                                       for k, v in per_fold.items()}}
    if intervals is not None:
        summary["intervals"] = {
            "method": "percentile bootstrap over utterances within speakers (pyscripts/stats.py)",
            "level": stats.DEFAULT_LEVEL, "resamples": stats.DEFAULT_RESAMPLES, "seed": stats.DEFAULT_SEED,
            "mean": {s: stats.ser_block(intervals[s]["mean"]) for s, _ in SETS},
            "folds": {k: {s: stats.ser_block(intervals[s]["sets"][i]) for s, _ in SETS}
                      for i, k in enumerate(per_fold)}}
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    return text


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="decisions and E/UE of a model on a data dir")
    s.add_argument("--rule", choices=RULES, default="mean", help="utterance decision rule")
    s.add_argument("--num-threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    s.add_argument("model", help="final.pt of a fold")
    s.add_argument("data_dir", help="data dir with feats.scp and utt2emo")
    s.add_argument("targets_dir", help="its frame targets (the speech frames are the non-sil ones)")
    s.add_argument("out_dir")
    f = sub.add_parser("fold", help="score a fold's final.pt on its valid and test subsets (of several "
                       "experiments in one pass with MORE_EXP_DIR)")
    f.add_argument("--rule", choices=RULES, default="mean", help="utterance decision rule")
    f.add_argument("--num-threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    f.add_argument("--eval-name", default="eval", help="output sub-directory of the fold's exp dir")
    f.add_argument("exp_dir", help="e.g. exp/ser (fold K in EXP_DIR/foldK, with final.pt)")
    f.add_argument("folds_data_dir", help="e.g. data/iemocap/folds (with foldK/valid, foldK/test)")
    f.add_argument("folds_targets_dir", help="e.g. exp/ser/targets (with foldK/valid, foldK/test)")
    f.add_argument("fold", type=int, help="the fold number K")
    f.add_argument("more_exp_dirs", nargs="*", metavar="MORE_EXP_DIR",
                   help="more experiments whose fold K is scored in the same pass (their foldK/final.pt)")
    t = sub.add_parser("table", help="collect folds' metrics into Markdown tables")
    t.add_argument("--label", default="Baseline", help="row label of the paper-style table")
    t.add_argument("--eval-name", default="eval", help="sub-directory of each fold dir with the metrics")
    t.add_argument("out_dir")
    t.add_argument("fold_dirs", nargs="+")
    args = parser.parse_args()
    if args.cmd in ("score", "fold") and args.num_threads > 0:
        import torch
        torch.set_num_threads(args.num_threads)
    if args.cmd == "score":
        score_set(args.model, args.data_dir, args.targets_dir, args.out_dir, args.rule)
    elif args.cmd == "fold":
        name = f"fold{args.fold}"
        score_fold([Path(d) / name for d in [args.exp_dir] + args.more_exp_dirs], Path(args.folds_data_dir) / name,
                   Path(args.folds_targets_dir) / name, args.rule, args.eval_name)
    else:
        print(write_summary(args.fold_dirs, args.out_dir, args.label, args.eval_name), end="")


if __name__ == "__main__":
    main()
