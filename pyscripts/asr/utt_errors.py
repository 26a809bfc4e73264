"""The per-utterance errors of a decode dir, and their confidence intervals (the statistics are
pyscripts/stats.py's; this module knows the recipe's files).

Per-utterance files (Kaldi tables after one `#` header line):
  DECODE_DIR/scoring/per_by_utt  `utt errors ref_phones sub del ins` at the setting of best_wer
                                 (pyscripts/asr/scoring.py best)
  DECODE_DIR/scoring/fer_by_utt  `utt frame_errors frames` (pyscripts/asr/hybrid.py fer)
Written from them: DECODE_DIR/scoring/intervals.json, the PER and FER with their 95% intervals (percent).

The PER at another setting than best_wer's is aligned again from scoring/ref.trn and hyp_SETTING.trn:
the caller hands in that aligner (pyscripts.asr.scoring.per_utt_counts), which lives above this module.
"""
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyscripts import stats
from pyscripts.errors import DataError
from pyscripts.kaldi.tables import c_sorted

PER_BY_UTT = "per_by_utt"
FER_BY_UTT = "fer_by_utt"

# (decode_dir, setting) -> {utt: (errors, ref phones, ...)}: the PER of one setting, aligned again.
Realign = Callable[[Path, str], dict]


@dataclass
class RatioUtts:
    """Per utterance (C order) its errors and total (reference phones or frames)."""
    utts: list
    errors: np.ndarray
    totals: np.ndarray
    source: str = ""
    setting: str | None = None


def write_by_utt(path: Path | str, rows: dict, header: str) -> None:
    """A per-utterance table: `# header` then `utt v1 v2 ...` in C order of the ids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {header}\n")
        for utt in c_sorted(rows):
            f.write(" ".join([utt] + [str(v) for v in rows[utt]]) + "\n")


def read_by_utt(path: Path | str) -> RatioUtts:
    """RatioUtts of a per_by_utt / fer_by_utt file (columns 2 and 3: errors, total)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found; re-run the scoring (local/score.sh; FER: pyscripts.asr.hybrid fer)")
    utts, errors, totals, setting = [], [], [], None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("#"):
            m = re.search(r"setting ([^\s:]+)", line)
            setting = m.group(1) if m else setting
            continue
        cols = line.split()
        try:
            utts.append(cols[0])
            errors.append(float(cols[1]))
            totals.append(float(cols[2]))
        except (IndexError, ValueError):
            raise DataError(f"{path}:{lineno}: not `utt errors total ...`; re-run the scoring") from None
    if not utts:
        raise DataError(f"{path}: no utterances; re-run the scoring")
    return RatioUtts(utts, np.array(errors), np.array(totals), str(path), setting)


def asr_utts(decode_dir: Path | str, metric: str = "PER", setting: str | None = None,
             realign: Realign | None = None) -> RatioUtts:
    """RatioUtts of a decode dir: PER at `setting` (default: best_wer's, the per_by_utt file; another
    setting is aligned again by `realign`), or FER."""
    sc = Path(decode_dir) / "scoring"
    if metric == "FER":
        return read_by_utt(sc / FER_BY_UTT)
    if metric != "PER":
        raise ValueError(f"metric {metric!r}: use one of {stats.ASR_METRICS}")
    if (sc / PER_BY_UTT).is_file():
        utts = read_by_utt(sc / PER_BY_UTT)
        if setting is None or utts.setting == setting:
            return utts
    if setting is None:
        raise DataError(f"{sc / PER_BY_UTT}: not found; re-run local/score.sh (or pyscripts.asr.scoring best)")
    if realign is None:
        raise DataError(f"{sc / PER_BY_UTT}: not at setting {setting}, and no aligner given to score it again "
                        "(pass pyscripts.asr.scoring.per_utt_counts)")
    rows = realign(Path(decode_dir), setting)
    return RatioUtts(list(rows), np.array([r[0] for r in rows.values()], np.float64),
                     np.array([r[1] for r in rows.values()], np.float64), str(sc / f"hyp_{setting}.trn"), setting)


def mean_over_runs(runs: list[RatioUtts]) -> RatioUtts:
    """RatioUtts whose errors are the mean over runs on the same utterances (a row's mean over runs)."""
    first = runs[0]
    for r in runs[1:]:
        if r.utts != first.utts or not np.array_equal(r.totals, first.totals):
            raise DataError(f"{r.source} and {first.source}: not the same utterances and totals; the runs of a "
                            "row must be scored on the same set")
    return RatioUtts(first.utts, np.mean([r.errors for r in runs], axis=0), first.totals,
                     ",".join(r.source for r in runs), first.setting)


def asr_intervals(decode_dir: Path | str, setting: str | None = None, resamples: int = stats.DEFAULT_RESAMPLES,
                  seed: int = stats.DEFAULT_SEED, level: float = stats.DEFAULT_LEVEL,
                  realign: Realign | None = None) -> dict:
    """{metric: (Interval, RatioUtts)} for the PER (at `setting`, default best_wer's) and FER that the
    decode dir has per-utterance results for."""
    out = {}
    sc = Path(decode_dir) / "scoring"
    for metric in stats.ASR_METRICS:
        if metric == "FER" and not (sc / FER_BY_UTT).is_file():
            continue
        if metric == "PER" and setting is None and not (sc / PER_BY_UTT).is_file():
            continue
        utts = asr_utts(decode_dir, metric, setting, realign)
        out[metric] = (stats.ratio_interval(utts.errors, utts.totals, None, resamples, seed, level), utts)
    return out


def write_asr_intervals(decode_dir: Path | str, setting: str | None = None,
                        resamples: int = stats.DEFAULT_RESAMPLES, seed: int = stats.DEFAULT_SEED,
                        level: float = stats.DEFAULT_LEVEL, realign: Realign | None = None) -> dict:
    """DECODE_DIR/scoring/intervals.json (percent); returns its dict."""
    found = asr_intervals(decode_dir, setting, resamples, seed, level, realign)
    if not found:
        raise DataError(f"{Path(decode_dir) / 'scoring'}: no {PER_BY_UTT} or {FER_BY_UTT}; re-run local/score.sh "
                        "(and pyscripts.asr.hybrid fer)")
    result = {**stats.method_fields("asr", resamples, seed, level), "unit": "%"}
    for metric, (iv, utts) in found.items():
        result[metric] = {"estimate": 100 * iv.estimate, "low": stats.json_number(100 * iv.low),
                          "high": stats.json_number(100 * iv.high),
                          "utterances": len(utts.utts), "errors": float(utts.errors.sum()),
                          "total": float(utts.totals.sum()), "from": Path(utts.source).name}
        if metric == "PER":
            result[metric]["setting"] = utts.setting
    path = Path(decode_dir) / "scoring" / stats.INTERVALS_JSON
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def paired_test_decodes(dirs_a: list, dirs_b: list, metric: str = "PER", resamples: int = stats.DEFAULT_RESAMPLES,
                        seed: int = stats.DEFAULT_SEED, level: float = stats.DEFAULT_LEVEL) -> stats.PairedTest:
    """Paired test of system B against A on one set, each side's per-utterance errors the mean over its
    runs' decode dirs (as a table cell is the mean of its runs')."""
    a = mean_over_runs([asr_utts(d, metric) for d in dirs_a])
    b = mean_over_runs([asr_utts(d, metric) for d in dirs_b])
    if a.utts != b.utts:
        raise DataError(f"{a.source} and {b.source}: not the same utterances; score both on the same set")
    return stats.paired_test_ratio(a.errors, b.errors, a.totals, resamples, seed, level)
