"""The scored utterances of an SER eval dir, and their confidence intervals (the statistics are
pyscripts/stats.py's; this module knows the recipe's files).

  EVAL_DIR/decisions       `utt ref hyp scores...` (pyscripts/ser/evaluate.py), with the speakers of the
                           data dir its metrics.json names (the resampling's strata)
  EVAL_DIR/intervals.json  E and UE with their 95% intervals (fractions, like metrics.json)
"""
import json
import logging
from pathlib import Path
from typing import Sequence

from pyscripts import stats
from pyscripts.errors import DataError
from pyscripts.kaldi.datadir import read_table
from pyscripts.ser.labels import EMOTIONS

log = logging.getLogger(__name__)


def emotion_set(utts: list, speakers: list, refs: Sequence[str | int], hyps: Sequence[str | int], source: str = "",
                stratified: bool = True) -> stats.SerSet:
    """stats.ser_set of refs/hyps given as emotion names (or class ids)."""
    def ids(xs):
        return [EMOTIONS.index(x) if isinstance(x, str) else int(x) for x in xs]
    return stats.ser_set(utts, speakers, ids(refs), ids(hyps), source, stratified)


def _read_decisions(eval_dir: Path) -> tuple[list, list, list]:
    """(utts, refs, hyps) of EVAL_DIR/decisions, emotion names."""
    path = eval_dir / "decisions"
    if not path.is_file():
        raise DataError(f"{path}: not found; score the set first (python3 -m pyscripts.ser.evaluate score|fold)")
    utts, refs, hyps = [], [], []
    for utt, value in read_table(path).items():
        cols = value.split()
        if len(cols) < 2 or cols[0] not in EMOTIONS or cols[1] not in EMOTIONS:
            raise DataError(f"{path}: {utt}: not `utt ref hyp scores`; score the set again")
        utts.append(utt)
        refs.append(cols[0])
        hyps.append(cols[1])
    return utts, refs, hyps


def _speakers_of(eval_dir: Path, utts: list) -> list | None:
    """The speakers of utts from the utt2spk of the data dir that metrics.json names; None without it."""
    metrics = eval_dir / "metrics.json"
    if not metrics.is_file():
        return None
    utt2spk = Path(json.loads(metrics.read_text()).get("data", "")) / "utt2spk"
    if not utt2spk.is_file():
        return None
    table = read_table(utt2spk)
    missing = [u for u in utts if u not in table]
    if missing:
        raise DataError(f"{utt2spk}: no speaker for {missing[0]} ({len(missing)} such) of {eval_dir}; "
                        "the decisions come from another data dir: score the set again")
    return [table[u] for u in utts]


def read_ser_set(eval_dir: Path | str) -> stats.SerSet:
    """SerSet of an eval dir (decisions, and the speakers of the data dir its metrics.json names; without
    that utt2spk the set is one stratum, and the log says so)."""
    eval_dir = Path(eval_dir)
    utts, refs, hyps = _read_decisions(eval_dir)
    speakers = _speakers_of(eval_dir, utts)
    stratified = speakers is not None
    if speakers is None:
        log.warning("%s: no utt2spk of its data dir (metrics.json 'data'); resampling utterances without "
                    "speaker strata", eval_dir)
        speakers = [""] * len(utts)
    return emotion_set(utts, speakers, refs, hyps, str(eval_dir), stratified)


def write_ser_intervals(eval_dir: Path | str, resamples: int = stats.DEFAULT_RESAMPLES,
                        seed: int = stats.DEFAULT_SEED, level: float = stats.DEFAULT_LEVEL) -> dict:
    """EVAL_DIR/intervals.json (fractions, like metrics.json); returns its dict."""
    s = read_ser_set(eval_dir)
    block = stats.ser_intervals([s], resamples, seed, level)["sets"][0]
    result = {**stats.method_fields("ser", resamples, seed, level), "unit": "fraction",
              "stratified_by_speaker": s.stratified, "utterances": len(s.utts),
              "speakers": len(set(s.speakers.tolist())), **stats.ser_block(block)}
    (Path(eval_dir) / stats.INTERVALS_JSON).write_text(json.dumps(result, indent=1) + "\n")
    return result


def paired_test_evals(dirs_a: list, dirs_b: list, resamples: int = stats.DEFAULT_RESAMPLES,
                      seed: int = stats.DEFAULT_SEED, level: float = stats.DEFAULT_LEVEL) -> dict:
    """{"E": PairedTest, "UE": PairedTest} of system B's eval dirs against A's, paired in order (fold k with
    fold k); the statistic is the mean over the folds."""
    return stats.paired_test_ser([read_ser_set(d) for d in dirs_a], [read_ser_set(d) for d in dirs_b],
                                 resamples, seed, level)
