"""How sure is each number: bootstrap confidence intervals of the error rates and a paired test of two
systems, both over utterances (numpy only).

Intervals: percentile bootstrap (Efron & Tibshirani 1993), 95 %, DEFAULT_RESAMPLES resamples with a
fixed seed, so that a rerun writes the same numbers.
  PER, FER   ratios of sums over utterances (edit errors / reference phones, frame errors / frames):
             each resample draws the set's utterances with replacement and recomputes the ratio of the
             sums (Bisani & Ney 2004). The utterance, not the phone or frame, is the unit, since the
             errors within an utterance are not independent. Not stratified by speaker: the interval
             answers "another draw of the set's sentences"; sentences of one speaker are correlated, so
             a speaker-level interval would be wider.
  E, UE      E = 1 - accuracy, UE = 1 - mean per-class recall. Resampled within speakers: every
             resample draws, for each speaker, that speaker's number of utterances from that speaker's
             utterances, so each speaker weighs in every resample as in the data (IEMOCAP's sets are a
             few speakers, and a resample missing one would be another kind of test set).
             A class absent from a resample (present in the data) has no recall there: UE averages the
             recalls of the classes present, the rule of the point estimate (pyscripts/ser/evaluate.py);
             how many resamples lacked a class is reported (resamples_missing_class).
  Mean over folds: the folds' sets are resampled together, each speaker's utterances (pooled over the
             folds, by id) drawn once per resample and shared by every fold that holds them (the Dev set
             is the same speakers in every fold); the statistic is the mean of the folds' rates.
The bounds are the (1-level)/2 and (1+level)/2 quantiles of the resampled rates by the inverted CDF
(the ceil(q R)-th smallest of R), so the interval of an enumerated bootstrap distribution is its exact
quantiles. Every stratum draws from a generator of its own, seeded by (seed, crc32 of its name): a
speaker draws the same utterances alone or pooled with others, and a fold's interval in
exp/ser/results.md equals the one in its eval dir's intervals.json.

Paired test of systems A and B on the same utterances: two-sided approximate randomization test
(Noreen 1989; Riezler & Maxwell 2005). Under H0 (no difference) A's and B's outputs on an utterance are
exchangeable; each round swaps them on a random half of the utterances and recomputes the difference
of the metric; p = the share of rounds with |difference| >= the observed one, (1 + count) / (1 + R)
counting the observed assignment. When at most R assignments exist (2^k, k = utterances on which A and
B differ) all are enumerated and p is exact. It works unchanged for ratios of sums and for UE, needs no
assumption on the distribution, and for identical systems gives p = 1. Chosen over the paired
bootstrap's "share of resamples in which B is not better" (Koehn 2004): that share is one minus the
probability of improvement (Bisani & Ney 2004), a confidence centred on the observed difference rather
than a p-value under H0, and it rejects a true H0 more often than the randomization test (Riezler &
Maxwell 2005). The difference B - A also gets its paired
bootstrap interval (the same resamples for both systems; within speakers for E and UE).

Per-utterance files (Kaldi tables after one `#` header line):
  DECODE_DIR/scoring/per_by_utt  `utt errors ref_phones sub del ins` at the setting of best_wer
                                 (pyscripts/asr/scoring.py best)
  DECODE_DIR/scoring/fer_by_utt  `utt frame_errors frames` (pyscripts/asr/hybrid.py fer)
  EVAL_DIR/decisions             `utt ref hyp scores...` with the data dir's utt2spk (pyscripts/ser/evaluate.py)

Command line:
  python3 -m pyscripts.stats asr [--setting LMWT_WIP] DECODE_DIR...  -> DECODE_DIR/scoring/intervals.json
  python3 -m pyscripts.stats ser EVAL_DIR...                         -> EVAL_DIR/intervals.json
  python3 -m pyscripts.stats compare asr|ser --a DIR... --b DIR...   (paired test; ser: folds in order)
Options --resamples, --seed, --level everywhere.
"""
import argparse
import json
import logging
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.datadir import read_table
from pyscripts.kaldi.tables import c_sorted
from pyscripts.ser.labels import EMOTIONS

log = logging.getLogger(__name__)

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
INTERVALS_JSON = "intervals.json"
PER_BY_UTT = "per_by_utt"
FER_BY_UTT = "fer_by_utt"
ASR_METRICS = ("FER", "PER")
SER_METRICS = ("E", "UE")
_CHUNK = 256   # randomization rounds per batch (bounds the memory of a large pooled set)


# -- resampling -----------------------------------------------------------------------------------
def stratum_rng(seed, stratum):
    """The stratum's own generator, so its draws do not depend on the other strata."""
    return np.random.default_rng([int(seed), zlib.crc32(str(stratum).encode("utf-8"))])


def resample_counts(strata, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """(resamples, n) int array: how often each of n items is drawn in each bootstrap resample; each
    stratum (one label per item) draws its own size, with replacement, from its own items."""
    strata = np.asarray(strata, dtype=str)
    counts = np.zeros((int(resamples), len(strata)), dtype=np.int64)
    for stratum in c_sorted(set(strata.tolist())):
        idx = np.flatnonzero(strata == stratum)
        counts[:, idx] = stratum_rng(seed, stratum).multinomial(
            len(idx), np.full(len(idx), 1.0 / len(idx)), size=int(resamples))
    return counts


def percentile_interval(values, level=DEFAULT_LEVEL):
    """(low, high): the (1-level)/2 and (1+level)/2 quantiles by the inverted CDF; NaNs left out."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2
    low, high = np.quantile(values, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (in the unit of the estimate)."""
    estimate: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES

    def cell(self, scale=100.0, digits=1):
        """`21.4 [19.8, 23.1]`, the estimate and bounds times scale."""
        f = f"{{:.{digits}f}}"
        if math.isnan(self.low):
            return f"{f.format(scale * self.estimate)} [–]"
        return f"{f.format(scale * self.estimate)} [{f.format(scale * self.low)}, {f.format(scale * self.high)}]"


# -- ratios of sums (PER, FER) ---------------------------------------------------------------------
def ratio_rates(errors, totals, counts):
    """Σ count·errors / Σ count·totals per row of counts (NaN where the drawn totals are 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    num, den = counts @ np.asarray(errors, np.float64), counts @ np.asarray(totals, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def ratio_interval(errors, totals, strata=None, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
                   level=DEFAULT_LEVEL):
    """Interval of Σerrors / Σtotals over utterances (fractions), utterances drawn with replacement
    (within strata when given)."""
    errors, totals = np.asarray(errors, np.float64), np.asarray(totals, np.float64)
    if errors.shape != totals.shape or errors.ndim != 1 or errors.size == 0 or totals.sum() <= 0:
        raise DataError(f"need one error count and one total per utterance, and some total > 0; got "
                        f"{errors.shape} errors, {totals.shape} totals summing to {totals.sum()}")
    strata = [""] * len(errors) if strata is None else strata
    rates = ratio_rates(errors, totals, resample_counts(strata, resamples, seed))
    return Interval(float(errors.sum() / totals.sum()), *percentile_interval(rates, level), level, int(resamples))


# -- classification (E, UE) -------------------------------------------------------------------------
def class_rates(refs, correct, counts, num_classes=len(EMOTIONS)):
    """(E, UE, missing) per row of counts: E = 1 - accuracy, UE = 1 - mean recall over the classes
    present in that row, missing = whether a class of the data is absent from that row."""
    refs, correct = np.asarray(refs), np.asarray(correct, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    e = 1.0 - (counts @ correct) / counts.sum(axis=1)
    recalls = np.full((len(counts), num_classes), np.nan)
    present = []
    for c in range(num_classes):
        m = refs == c
        if m.any():
            present.append(c)
            den = counts[:, m].sum(axis=1)
            num = counts[:, m] @ correct[m]
            with np.errstate(invalid="ignore", divide="ignore"):
                recalls[:, c] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if not present:
        raise DataError("no utterances to score")
    ue = 1.0 - np.nanmean(recalls[:, present], axis=1)
    return e, ue, np.isnan(recalls[:, present]).any(axis=1)


@dataclass
class SerSet:
    """One scored set: per utterance (C order of the ids) its speaker, reference and decision."""
    utts: list
    speakers: np.ndarray
    refs: np.ndarray
    hyps: np.ndarray
    source: str = ""
    stratified: bool = True

    @property
    def correct(self):
        return (self.refs == self.hyps).astype(np.float64)


def ser_set(utts, speakers, refs, hyps, source="", stratified=True):
    """A SerSet in C order of the ids; refs/hyps as class ids or emotion names."""
    def ids(xs):
        return np.array([EMOTIONS.index(x) if isinstance(x, str) else int(x) for x in xs], dtype=np.int64)
    order = sorted(range(len(utts)), key=lambda i: utts[i].encode("utf-8"))
    return SerSet([utts[i] for i in order], np.array([str(speakers[i]) for i in order], dtype=str),
                  ids(refs)[order] if len(utts) else ids([]), ids(hyps)[order] if len(utts) else ids([]),
                  source, stratified)


def _pool(sets):
    """The union of the sets' utterances (C order) with their speakers; per set, its columns in it."""
    speaker = {}
    for s in sets:
        for utt, spk in zip(s.utts, s.speakers):
            if speaker.setdefault(utt, spk) != spk:
                raise DataError(f"{s.source}: utterance {utt} has speaker {spk} here, {speaker[utt]} in another "
                                "set; the sets come from different data dirs")
    pool = c_sorted(speaker)
    pos = {u: i for i, u in enumerate(pool)}
    return np.array([speaker[u] for u in pool], dtype=str), [np.array([pos[u] for u in s.utts]) for s in sets]


def _fold_rates(sets, counts, cols):
    """(E, UE, missing), each (rows, folds), of every set under pooled counts."""
    out = [class_rates(s.refs, s.correct, counts[:, cols[k]]) for k, s in enumerate(sets)]
    return tuple(np.stack([o[i] for o in out], axis=1) for i in range(3))


def ser_intervals(sets, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """Intervals of E and UE (fractions) of each set and of their mean, the sets resampled together
    within speakers. Returns {"sets": [{"E", "UE", "resamples_missing_class"}], "mean": {...}}."""
    if not sets or any(len(s.utts) == 0 for s in sets):
        raise DataError("no utterances to score; score the sets first (pyscripts/ser/evaluate.py)")
    pool_speakers, cols = _pool(sets)
    counts = resample_counts(pool_speakers, resamples, seed)
    e, ue, missing = _fold_rates(sets, counts, cols)
    point = [class_rates(s.refs, s.correct, np.ones((1, len(s.utts))))[:2] for s in sets]

    def block(est_e, est_ue, rs_e, rs_ue, miss):
        return {"E": Interval(float(est_e), *percentile_interval(rs_e, level), level, int(resamples)),
                "UE": Interval(float(est_ue), *percentile_interval(rs_ue, level), level, int(resamples)),
                "resamples_missing_class": int(miss.sum())}
    per_set = [block(point[k][0][0], point[k][1][0], e[:, k], ue[:, k], missing[:, k]) for k in range(len(sets))]
    mean = block(np.mean([p[0][0] for p in point]), np.mean([p[1][0] for p in point]), e.mean(axis=1),
                 ue.mean(axis=1), missing.any(axis=1))
    return {"sets": per_set, "mean": mean}


# -- paired test ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedTest:
    """B against A: difference = metric(B) - metric(A) with its paired bootstrap interval, and the
    two-sided randomization p-value (exact when every assignment was enumerated)."""
    difference: float
    low: float
    high: float
    p_value: float
    exact: bool
    utterances: int
    differing: int
    rounds: int

    def summary(self, scale=100.0):
        how = "exact" if self.exact else f"{self.rounds} rounds"
        return (f"B - A = {scale * self.difference:+.2f} [{scale * self.low:+.2f}, {scale * self.high:+.2f}], "
                f"p = {self.p_value:.4g} ({how}; {self.differing} of {self.utterances} utterances differ)")


def randomization_p(a, b, metric, rounds=DEFAULT_RESAMPLES, seed=DEFAULT_SEED):
    """(p, exact, k, rounds used): two-sided approximate randomization test of metric(A) vs metric(B).
    a, b: one value per utterance; metric maps an (rows, utterances) array to one value per row.
    Only the k utterances with a != b can change anything; with 2^k <= rounds all swaps are enumerated."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    observed = abs(float(metric(a[None])[0] - metric(b[None])[0]))
    diff = np.flatnonzero(a != b)
    k = len(diff)
    exact = k < 63 and 2 ** k <= rounds
    n_rounds = 2 ** k if exact else int(rounds)
    rng = np.random.default_rng([int(seed), k])
    tol = 1e-12 * max(1.0, observed)
    hits = 0
    for start in range(0, n_rounds, _CHUNK):
        m = min(_CHUNK, n_rounds - start)
        if exact:
            swap = ((np.arange(start, start + m)[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)
        else:
            swap = rng.random((m, k)) < 0.5
        xa, xb = np.tile(a, (m, 1)), np.tile(b, (m, 1))
        xa[:, diff] = np.where(swap, b[diff], a[diff])
        xb[:, diff] = np.where(swap, a[diff], b[diff])
        hits += int((np.abs(metric(xa) - metric(xb)) >= observed - tol).sum())
    p = hits / n_rounds if exact else (hits + 1) / (n_rounds + 1)
    return min(1.0, p), exact, k, n_rounds


def paired_test_ratio(errors_a, errors_b, totals, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
                      level=DEFAULT_LEVEL):
    """Paired test of two systems' Σerrors / Σtotals on the same utterances (same totals)."""
    ea, eb, t = (np.asarray(x, np.float64) for x in (errors_a, errors_b, totals))
    if not (ea.shape == eb.shape == t.shape) or t.sum() <= 0:
        raise DataError("paired test: both systems need one error count per utterance of the same set")
    p, exact, k, rounds = randomization_p(ea, eb, lambda x: x.sum(axis=1) / t.sum(), resamples, seed)
    counts = resample_counts([""] * len(t), resamples, seed)
    diffs = ratio_rates(eb, t, counts) - ratio_rates(ea, t, counts)
    return PairedTest(float((eb.sum() - ea.sum()) / t.sum()), *percentile_interval(diffs, level), p, exact,
                      len(t), k, rounds)


def _check_pairs(sets_a, sets_b):
    if len(sets_a) != len(sets_b) or not sets_a:
        raise DataError(f"paired test: {len(sets_a)} sets against {len(sets_b)}; pair every fold with its own")
    for sa, sb in zip(sets_a, sets_b):
        if sa.utts != sb.utts or not np.array_equal(sa.refs, sb.refs):
            raise DataError(f"{sa.source} and {sb.source}: not the same utterances and references; pair each "
                            "fold's run with the same fold's run")


def paired_test_ser(sets_a, sets_b, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """{"E": PairedTest, "UE": PairedTest} of system B against A, each a list of sets paired in order
    (fold k with fold k); the statistic is the mean over the folds, as in the tables."""
    _check_pairs(sets_a, sets_b)
    fold = np.concatenate([np.full(len(s.utts), k) for k, s in enumerate(sets_a)])
    refs = np.concatenate([s.refs for s in sets_a])
    ca = np.concatenate([s.correct for s in sets_a])
    cb = np.concatenate([s.correct for s in sets_b])
    nf = len(sets_a)
    # Both metrics are linear in the per-utterance correctness: 1 - x @ weights.
    w_e = np.zeros(len(refs))
    w_ue = np.zeros(len(refs))
    for k in range(nf):
        in_fold = fold == k
        w_e[in_fold] = 1.0 / (nf * in_fold.sum())
        classes = np.unique(refs[in_fold])
        for c in classes:
            m = in_fold & (refs == c)
            w_ue[m] = 1.0 / (nf * len(classes) * m.sum())
    pool_speakers, cols = _pool(sets_a)
    counts = resample_counts(pool_speakers, resamples, seed)
    rates_a = _fold_rates(sets_a, counts, cols)
    rates_b = _fold_rates(sets_b, counts, cols)
    out = {}
    for i, (name, w) in enumerate((("E", w_e), ("UE", w_ue))):
        p, exact, k, rounds = randomization_p(ca, cb, lambda x, w=w: 1.0 - x @ w, resamples, seed)
        diffs = rates_b[i].mean(axis=1) - rates_a[i].mean(axis=1)
        out[name] = PairedTest(float((ca - cb) @ w), *percentile_interval(diffs, level), p, exact, len(refs),
                               k, rounds)
    return out


# -- per-utterance files ----------------------------------------------------------------------------
@dataclass
class RatioUtts:
    """Per utterance (C order) its errors and total (reference phones or frames)."""
    utts: list
    errors: np.ndarray
    totals: np.ndarray
    source: str = ""
    setting: str | None = None


def write_by_utt(path, rows, header):
    """A per-utterance table: `# header` then `utt v1 v2 ...` in C order of the ids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {header}\n")
        for utt in c_sorted(rows):
            f.write(" ".join([utt] + [str(v) for v in rows[utt]]) + "\n")


def read_by_utt(path):
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


def asr_utts(decode_dir, metric="PER", setting=None):
    """RatioUtts of a decode dir: PER at `setting` (default: best_wer's, the per_by_utt file; another
    setting is aligned again from scoring/ref.trn and hyp_SETTING.trn), or FER."""
    sc = Path(decode_dir) / "scoring"
    if metric == "FER":
        return read_by_utt(sc / FER_BY_UTT)
    if metric != "PER":
        raise ValueError(f"metric {metric!r}: use one of {ASR_METRICS}")
    if (sc / PER_BY_UTT).is_file():
        utts = read_by_utt(sc / PER_BY_UTT)
        if setting is None or utts.setting == setting:
            return utts
    if setting is None:
        raise DataError(f"{sc / PER_BY_UTT}: not found; re-run local/score.sh (or pyscripts.asr.scoring best)")
    from pyscripts.asr.scoring import per_utt_counts
    rows = per_utt_counts(decode_dir, setting)
    return RatioUtts(list(rows), np.array([r[0] for r in rows.values()], np.float64),
                     np.array([r[1] for r in rows.values()], np.float64), str(sc / f"hyp_{setting}.trn"), setting)


def read_ser_set(eval_dir):
    """SerSet of an eval dir (decisions, and the speakers of the data dir its metrics.json names; without
    that utt2spk the set is one stratum, and the log says so)."""
    eval_dir = Path(eval_dir)
    decisions = read_table(eval_dir / "decisions") if (eval_dir / "decisions").is_file() else None
    if decisions is None:
        raise DataError(f"{eval_dir / 'decisions'}: not found; score the set first "
                        "(python3 -m pyscripts.ser.evaluate score|fold)")
    utts, refs, hyps = [], [], []
    for utt, value in decisions.items():
        cols = value.split()
        if len(cols) < 2 or cols[0] not in EMOTIONS or cols[1] not in EMOTIONS:
            raise DataError(f"{eval_dir / 'decisions'}: {utt}: not `utt ref hyp scores`; score the set again")
        utts.append(utt)
        refs.append(cols[0])
        hyps.append(cols[1])
    speakers, stratified = None, False
    metrics = eval_dir / "metrics.json"
    if metrics.is_file():
        utt2spk = Path(json.loads(metrics.read_text()).get("data", "")) / "utt2spk"
        if utt2spk.is_file():
            table = read_table(utt2spk)
            missing = [u for u in utts if u not in table]
            if missing:
                raise DataError(f"{utt2spk}: no speaker for {missing[0]} ({len(missing)} such) of {eval_dir}; "
                                "the decisions come from another data dir: score the set again")
            speakers, stratified = [table[u] for u in utts], True
    if speakers is None:
        log.warning("%s: no utt2spk of its data dir (metrics.json 'data'); resampling utterances without "
                    "speaker strata", eval_dir)
        speakers = [""] * len(utts)
    return ser_set(utts, speakers, refs, hyps, str(eval_dir), stratified)


# -- intervals of a decode dir / eval dir -----------------------------------------------------------
def _method(kind, resamples, seed, level):
    unit = "utterances within speakers" if kind == "ser" else "utterances"
    return {"method": f"percentile bootstrap over {unit} (pyscripts/stats.py)", "level": level,
            "resamples": int(resamples), "seed": int(seed)}


def asr_intervals(decode_dir, setting=None, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """{metric: (Interval, RatioUtts)} for the PER (at `setting`, default best_wer's) and FER that the
    decode dir has per-utterance results for."""
    out = {}
    sc = Path(decode_dir) / "scoring"
    for metric in ASR_METRICS:
        if metric == "FER" and not (sc / FER_BY_UTT).is_file():
            continue
        if metric == "PER" and setting is None and not (sc / PER_BY_UTT).is_file():
            continue
        utts = asr_utts(decode_dir, metric, setting)
        out[metric] = (ratio_interval(utts.errors, utts.totals, None, resamples, seed, level), utts)
    return out


def write_asr_intervals(decode_dir, setting=None, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED,
                        level=DEFAULT_LEVEL):
    """DECODE_DIR/scoring/intervals.json (percent); returns its dict."""
    found = asr_intervals(decode_dir, setting, resamples, seed, level)
    if not found:
        raise DataError(f"{Path(decode_dir) / 'scoring'}: no {PER_BY_UTT} or {FER_BY_UTT}; re-run local/score.sh "
                        "(and pyscripts.asr.hybrid fer)")
    result = {**_method("asr", resamples, seed, level), "unit": "%"}
    for metric, (iv, utts) in found.items():
        result[metric] = {"estimate": 100 * iv.estimate, "low": _json_number(100 * iv.low),
                          "high": _json_number(100 * iv.high),
                          "utterances": len(utts.utts), "errors": float(utts.errors.sum()),
                          "total": float(utts.totals.sum()), "from": Path(utts.source).name}
        if metric == "PER":
            result[metric]["setting"] = utts.setting
    path = Path(decode_dir) / "scoring" / INTERVALS_JSON
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _json_number(x):
    """NaN (no interval) as JSON null."""
    return None if isinstance(x, float) and math.isnan(x) else x


def ser_block(block):
    """JSON form of one set's (or the mean's) intervals, fractions."""
    out = {m: {k: _json_number(v) for k, v in asdict(block[m]).items() if k not in ("level", "resamples")}
           for m in SER_METRICS}
    out["resamples_missing_class"] = block["resamples_missing_class"]
    return out


def write_ser_intervals(eval_dir, resamples=DEFAULT_RESAMPLES, seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """EVAL_DIR/intervals.json (fractions, like metrics.json); returns its dict."""
    s = read_ser_set(eval_dir)
    block = ser_intervals([s], resamples, seed, level)["sets"][0]
    result = {**_method("ser", resamples, seed, level), "unit": "fraction", "stratified_by_speaker": s.stratified,
              "utterances": len(s.utts), "speakers": len(set(s.speakers.tolist())), **ser_block(block)}
    (Path(eval_dir) / INTERVALS_JSON).write_text(json.dumps(result, indent=1) + "\n")
    return result


# -- transfer rows ----------------------------------------------------------------------------------
def mean_over_runs(runs):
    """RatioUtts whose errors are the mean over runs on the same utterances (a row's mean over runs)."""
    first = runs[0]
    for r in runs[1:]:
        if r.utts != first.utts or not np.array_equal(r.totals, first.totals):
            raise DataError(f"{r.source} and {first.source}: not the same utterances and totals; the runs of a "
                            "row must be scored on the same set")
    return RatioUtts(first.utts, np.mean([r.errors for r in runs], axis=0), first.totals,
                     ",".join(r.source for r in runs), first.setting)


def _paired_runs(baseline, row):
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


def transfer_row_test(direction, baseline_runs, row_runs, subset="test", resamples=DEFAULT_RESAMPLES,
                      seed=DEFAULT_SEED, level=DEFAULT_LEVEL):
    """Paired test of a transfer table row against its Baseline on one set (dev | test): {metric: PairedTest}.
    ser2asr: runs are ASR exp dirs (EXP/decode_SUBSET/scoring per_by_utt, fer_by_utt); each side's
    per-utterance errors are the mean over its runs, as its cell is the mean of theirs.
    asr2ser: runs are SER fold exp dirs (EXP/eval/{valid,test}), {fold: dir} or dirs named by their
    fold; the folds both sides have are paired, the statistic is their mean."""
    if subset not in ("dev", "test"):
        raise ValueError(f"subset {subset!r}: dev or test")
    if direction == "ser2asr":
        def decode_dirs(runs):
            return [Path(d) / f"decode_{subset}" for d in (runs.values() if isinstance(runs, Mapping) else runs)]
        base, trans = decode_dirs(baseline_runs), decode_dirs(row_runs)
        out = {}
        for metric in ASR_METRICS:
            name = FER_BY_UTT if metric == "FER" else PER_BY_UTT
            if not all((d / "scoring" / name).is_file() for d in base + trans):
                continue
            a = mean_over_runs([asr_utts(d, metric) for d in base])
            b = mean_over_runs([asr_utts(d, metric) for d in trans])
            if a.utts != b.utts:
                raise DataError(f"{a.source} and {b.source}: not the same utterances; score both on the same set")
            out[metric] = paired_test_ratio(a.errors, b.errors, a.totals, resamples, seed, level)
        return out
    if direction == "asr2ser":
        eval_subset = "valid" if subset == "dev" else "test"
        pairs = _paired_runs(baseline_runs, row_runs)
        sets_a = [read_ser_set(Path(b) / "eval" / eval_subset) for b, _ in pairs]
        sets_b = [read_ser_set(Path(r) / "eval" / eval_subset) for _, r in pairs]
        return paired_test_ser(sets_a, sets_b, resamples, seed, level)
    raise ValueError(f"direction {direction!r}: ser2asr or asr2ser")


# -- command line -----------------------------------------------------------------------------------
def _print_asr(decode_dir, result):
    for metric in ASR_METRICS:
        if metric in result:
            r = result[metric]
            at = f" at {r['setting']}" if r.get("setting") else ""
            print(f"{decode_dir}: %{metric}{at} {r['estimate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                  f"({100 * result['level']:g}% CI, {r['utterances']} utterances)")


def _print_ser(eval_dir, result):
    cells = " ".join(f"{m} {100 * result[m]['estimate']:.1f} [{100 * result[m]['low']:.1f}, "
                     f"{100 * result[m]['high']:.1f}]" for m in SER_METRICS)
    print(f"{eval_dir}: {cells} % ({100 * result['level']:g}% CI, {result['utterances']} utterances, "
          f"speakers: {result['speakers']})")


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples / rounds")
    common.add_argument("--seed", type=int, default=DEFAULT_SEED)
    common.add_argument("--level", type=float, default=DEFAULT_LEVEL, help="confidence level (default 0.95)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("asr", parents=[common], help="PER/FER intervals -> DECODE_DIR/scoring/intervals.json")
    a.add_argument("--setting", help="LMWT_WIP of the PER (default: best_wer's, the per_by_utt file)")
    a.add_argument("decode_dirs", nargs="+")
    s = sub.add_parser("ser", parents=[common], help="E/UE intervals -> EVAL_DIR/intervals.json")
    s.add_argument("eval_dirs", nargs="+")
    c = sub.add_parser("compare", parents=[common], help="paired randomization test of B against A")
    c.add_argument("kind", choices=("asr", "ser"))
    c.add_argument("--a", nargs="+", required=True, help="A's decode dirs (asr: runs, errors averaged) or "
                   "eval dirs (ser: one per fold)")
    c.add_argument("--b", nargs="+", required=True, help="B's, in the same order as A's for ser")
    c.add_argument("--metric", choices=ASR_METRICS, default="PER", help="asr: PER or FER")
    args = parser.parse_args(argv)
    if not 0 < args.level < 1 or args.resamples < 1:
        raise DataError("--level must lie in (0, 1) and --resamples be positive")
    opts = (args.resamples, args.seed, args.level)
    if args.cmd == "asr":
        for d in args.decode_dirs:
            _print_asr(d, write_asr_intervals(d, args.setting, *opts))
    elif args.cmd == "ser":
        for d in args.eval_dirs:
            _print_ser(d, write_ser_intervals(d, *opts))
    elif args.kind == "asr":
        a_runs = mean_over_runs([asr_utts(d, args.metric) for d in args.a])
        b_runs = mean_over_runs([asr_utts(d, args.metric) for d in args.b])
        if a_runs.utts != b_runs.utts:
            raise DataError(f"{args.a[0]} and {args.b[0]}: not the same utterances; score both on the same set")
        print(f"{args.metric}: " + paired_test_ratio(a_runs.errors, b_runs.errors, a_runs.totals, *opts).summary())
    else:
        tests = paired_test_ser([read_ser_set(d) for d in args.a], [read_ser_set(d) for d in args.b], *opts)
        for metric, t in tests.items():
            print(f"{metric}: {t.summary()}")


if __name__ == "__main__":
    main()
