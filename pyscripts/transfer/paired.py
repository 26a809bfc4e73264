"""Paired tests of a transfer table row against its Baseline, on the same utterances (the statistics are
pyscripts/stats.py's; the per-utterance files are read by pyscripts/asr/utt_errors.py and
pyscripts/ser/intervals.py)."""
from collections.abc import Mapping
from pathlib import Path

from pyscripts import stats
from pyscripts.asr import utt_errors
from pyscripts.errors import DataError
from pyscripts.kaldi.tables import c_sorted
from pyscripts.ser.intervals import paired_test_evals


def _paired_runs(baseline, row) -> list:
    """Pairs of run dirs: by key for mappings (fold -> dir), else by the dirs' names."""
    def named(runs):
        if isinstance(runs, Mapping):
            return {str(k): Path(v) for k, v in runs.items()}
        return {Path(r).name: Path(r) for r in runs}
    b, r = named(baseline), named(row)
    keys = [k for k in c_sorted(r) if k in b]
    if not keys:
        raise DataError(f"no fold in common between the baseline runs ({', '.join(c_sorted(b))}) and the row's "
                        f"({', '.join(c_sorted(r))}); pass {{fold: exp_dir}} mappings")
    return [(b[k], r[k]) for k in keys]


def _ser2asr_tests(baseline_runs, row_runs, subset: str, opts: tuple) -> dict:
    """{metric: PairedTest} of the metrics that every run has per-utterance results for."""
    def decode_dirs(runs):
        return [Path(d) / f"decode_{subset}" for d in (runs.values() if isinstance(runs, Mapping) else runs)]
    base, trans = decode_dirs(baseline_runs), decode_dirs(row_runs)
    out = {}
    for metric in stats.ASR_METRICS:
        name = utt_errors.FER_BY_UTT if metric == "FER" else utt_errors.PER_BY_UTT
        if all((d / "scoring" / name).is_file() for d in base + trans):
            out[metric] = utt_errors.paired_test_decodes(base, trans, metric, *opts)
    return out


def transfer_row_test(direction: str, baseline_runs, row_runs, subset: str = "test",
                      resamples: int = stats.DEFAULT_RESAMPLES, seed: int = stats.DEFAULT_SEED,
                      level: float = stats.DEFAULT_LEVEL) -> dict:
    """Paired test of a transfer table row against its Baseline on one set (dev | test): {metric: PairedTest}.
    ser2asr: runs are ASR exp dirs (EXP/decode_SUBSET/scoring per_by_utt, fer_by_utt); each side's
    per-utterance errors are the mean over its runs, as its cell is the mean of theirs.
    asr2ser: runs are SER fold exp dirs (EXP/eval/{valid,test}), {fold: dir} or dirs named by their
    fold; the folds both sides have are paired, the statistic is their mean."""
    if subset not in ("dev", "test"):
        raise ValueError(f"subset {subset!r}: dev or test")
    opts = (resamples, seed, level)
    if direction == "ser2asr":
        return _ser2asr_tests(baseline_runs, row_runs, subset, opts)
    if direction == "asr2ser":
        eval_subset = "valid" if subset == "dev" else "test"
        pairs = _paired_runs(baseline_runs, row_runs)
        return paired_test_evals([Path(b) / "eval" / eval_subset for b, _ in pairs],
                                 [Path(r) / "eval" / eval_subset for _, r in pairs], *opts)
    raise ValueError(f"direction {direction!r}: ser2asr or asr2ser")
