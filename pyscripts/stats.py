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

The files these numbers come from, and the command line, are the recipe's:
  pyscripts/asr/utt_errors.py   per_by_utt, fer_by_utt and DECODE_DIR/scoring/intervals.json
  pyscripts/ser/intervals.py    EVAL_DIR/decisions and EVAL_DIR/intervals.json
  pyscripts/intervals.py        python3 -m pyscripts.intervals asr|ser|compare ...
This module imports nothing of the recipe: numpy, the errors and the C order of ids (kaldi/tables.py).
"""
import math
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from pyscripts.errors import DataError
from pyscripts.kaldi.tables import c_sorted

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95
INTERVALS_JSON = "intervals.json"   # the JSON form of a set's intervals (method_fields, ser_block)
ASR_METRICS = ("FER", "PER")        # ratios of sums over utterances
SER_METRICS = ("E", "UE")           # class error rates
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
def class_rates(refs, correct, counts, num_classes: int | None = None) -> tuple:
    """(E, UE, missing) per row of counts: E = 1 - accuracy, UE = 1 - mean recall over the classes
    present in that row, missing = whether a class of the data is absent from that row. Classes are
    ids 0..num_classes-1 (default: up to the largest reference)."""
    refs, correct = np.asarray(refs), np.asarray(correct, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if num_classes is None:
        num_classes = int(refs.max()) + 1 if refs.size else 0
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


def ser_set(utts: list, speakers, refs, hyps, source: str = "", stratified: bool = True) -> SerSet:
    """A SerSet in C order of the ids; refs/hyps as class ids (pyscripts/ser/intervals.py maps emotion
    names to them)."""
    def ids(xs):
        return np.array([int(x) for x in xs], dtype=np.int64)
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


# -- JSON form ------------------------------------------------------------------------------------
def method_fields(kind: str, resamples: int, seed: int, level: float) -> dict:
    """The method, level, resamples and seed of an intervals.json (kind: asr | ser)."""
    unit = "utterances within speakers" if kind == "ser" else "utterances"
    return {"method": f"percentile bootstrap over {unit} (pyscripts/stats.py)", "level": level,
            "resamples": int(resamples), "seed": int(seed)}


def json_number(x):
    """NaN (no interval) as JSON null."""
    return None if isinstance(x, float) and math.isnan(x) else x


def ser_block(block):
    """JSON form of one set's (or the mean's) intervals, fractions."""
    out = {m: {k: json_number(v) for k, v in asdict(block[m]).items() if k not in ("level", "resamples")}
           for m in SER_METRICS}
    out["resamples_missing_class"] = block["resamples_missing_class"]
    return out
