"""The paper's qualitative claims as checks with verdicts, from the transfer report's own numbers.

Reads what tables.py wrote (OUT_DIR/results.json: every cell's first-seed value with its 95% bootstrap
interval, `interval95`, and its paired randomization test against the Baseline, `vs_baseline`) and the
CKA table (OUT_DIR/cka.tsv). Each claim gets its statistic, the evidence (intervals or tests) and a
verdict: holds, does not hold, or undecided at this size (the intervals are too wide to tell).

Claims (Fayek et al. 2016), each on the Test column of the paper's headline metric (PER for ASR, UE for SER):
  monotone_ser2asr  SER -> ASR error rises monotonically with l (the number of frozen layers)
  monotone_asr2ser  ASR -> SER error rises with l
  asymmetry         frozen ASR layers serve SER better than frozen SER layers serve ASR: the relative rise of
                    the error over the Baseline, (row - Baseline) / Baseline, is smaller for ASR -> SER
  first_layers      the first layers transfer almost freely: rows l <= 2 within the Baseline's interval
  cka_depth         linear CKA between the ASR and SER networks falls with depth

Two intervals "separate" when they do not overlap; that is conservative (two 95% intervals that just
touch differ at well below p = 0.05), so a separated step is a real one and an overlap is left undecided.
"""
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyscripts.errors import DataError

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided at this size"
COLUMN = {"ser2asr": "PER Test", "asr2ser": "UE Test"}
LAYERS = (0, 1, 2, 3, 4, 5)
EARLY = (0, 1, 2)           # "the first layers": l <= 2
MIN_RANK_CORRELATION = 0.8  # a rise "with l" must be nearly monotone in the point estimates
SIGNIFICANCE = 0.05
CKA_TOLERANCE = 0.02        # a rise of CKA smaller than this between layers is noise of the 600 frames
CKA_MIN_DROP = 0.05         # layer 1 -> 5 drop below this: no clear fall either way


@dataclass
class Claim:
    """One claim's check: what was measured, the evidence, and the verdict."""
    key: str
    claim: str
    statistic: str
    evidence: list = field(default_factory=list)
    verdict: str = UNDECIDED


@dataclass(frozen=True)
class Value:
    """A row's first-seed value with its 95% interval (percent)."""
    value: float
    low: float
    high: float


def row_value(results: dict, direction: str, row: str, column: str) -> "Value | None":
    """The Value of a results.json cell, or None when the cell has no interval (not run, not scored)."""
    cell = results.get(direction, {}).get(row, {}).get(column)
    if not cell or "interval95" not in cell:
        return None
    iv = cell["interval95"]
    return Value(iv["value"], iv["low"], iv["high"])


def compare(a: Value, b: Value) -> int:
    """+1 when b's interval lies above a's, -1 when below, 0 when they overlap."""
    if b.low > a.high:
        return 1
    if b.high < a.low:
        return -1
    return 0


def rank_correlation(xs: list, ys: list) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def _fmt(v):
    return f"{v.value:.1f} [{v.low:.1f}, {v.high:.1f}]"


def check_monotone(results: dict, direction: str) -> Claim:
    """Error rises with l: no step down beyond the intervals, l = 5 above l = 0 beyond them, and the point
    estimates nearly in order (rank correlation with l at least MIN_RANK_CORRELATION)."""
    column = COLUMN[direction]
    arrow = "SER -> ASR" if direction == "ser2asr" else "ASR -> SER"
    claim = Claim(f"monotone_{direction}", f"{arrow} error rises monotonically with l", "")
    values = {l: row_value(results, direction, f"l{l}", column) for l in LAYERS}
    if any(v is None for v in values.values()):
        missing = [f"l{l}" for l, v in values.items() if v is None]
        claim.statistic = f"{column}: rows {', '.join(missing)} have no value with an interval"
        return claim
    rho = rank_correlation(list(LAYERS), [values[l].value for l in LAYERS])
    falls = [l for l in LAYERS[1:] if compare(values[l - 1], values[l]) < 0]
    rises_overall = compare(values[0], values[5]) > 0
    claim.statistic = (f"{column}: Spearman rho(l, error) = {rho:.2f}; l = 0 -> 5: "
                       f"{values[0].value:.1f} -> {values[5].value:.1f}")
    claim.evidence = [f"l = {l}: {_fmt(values[l])}" for l in LAYERS]
    claim.evidence.append(f"steps down beyond the intervals: {', '.join(f'l{l - 1} -> l{l}' for l in falls) or 'none'}")
    if falls or compare(values[0], values[5]) < 0:
        claim.verdict = FAILS
    elif rises_overall and rho >= MIN_RANK_CORRELATION:
        claim.verdict = HOLDS
    return claim


def relative_rise(row: Value, base: Value) -> tuple:
    """(row - base) / base with conservative bounds from the two intervals."""
    return (row.value - base.value) / base.value, (row.low - base.high) / base.high, (row.high - base.low) / base.low


def check_asymmetry(results: dict) -> Claim:
    """Frozen ASR layers serve SER better: per l, the relative rise of ASR -> SER's error over its Baseline
    against SER -> ASR's; holds when some l separates in that direction and none the other way."""
    claim = Claim("asymmetry", "frozen ASR layers serve SER better than frozen SER layers serve ASR",
                  f"relative rise over the Baseline, (row - Baseline) / Baseline, of {COLUMN['asr2ser']} "
                  f"(ASR -> SER) vs {COLUMN['ser2asr']} (SER -> ASR), per l; bounds from the intervals")
    outcomes = []
    for l in LAYERS[1:]:
        rises = {}
        for direction in ("asr2ser", "ser2asr"):
            row = row_value(results, direction, f"l{l}", COLUMN[direction])
            base = row_value(results, direction, "baseline", COLUMN[direction])
            if row is not None and base is not None and base.low > 0:  # a zero Baseline has no relative rise
                rises[direction] = relative_rise(row, base)
        if len(rises) < 2:
            continue
        a, s = rises["asr2ser"], rises["ser2asr"]
        outcome = 1 if a[2] < s[1] else (-1 if s[2] < a[1] else 0)
        outcomes.append(outcome)
        claim.evidence.append(f"l = {l}: ASR -> SER {100 * a[0]:+.0f}% [{100 * a[1]:+.0f}, {100 * a[2]:+.0f}], "
                              f"SER -> ASR {100 * s[0]:+.0f}% [{100 * s[1]:+.0f}, {100 * s[2]:+.0f}]"
                              + {1: " (ASR -> SER less)", -1: " (SER -> ASR less)", 0: " (overlap)"}[outcome])
    if not outcomes:
        claim.evidence.append("no l with values and intervals (and a Baseline above 0) in both directions")
    elif 1 in outcomes and -1 not in outcomes:
        claim.verdict = HOLDS
    elif -1 in outcomes and 1 not in outcomes:
        claim.verdict = FAILS
    return claim


def early_row_outcome(results: dict, direction: str, l: int, base: Value) -> tuple:
    """'free' (within the Baseline's interval), 'better', 'costly' (above it and p < SIGNIFICANCE) or
    'unclear' (above it, the paired test not significant), with the line that says so."""
    column = COLUMN[direction]
    row = row_value(results, direction, f"l{l}", column)
    if row is None:
        return "unclear", f"{direction} l = {l}: no value with an interval"
    test = results[direction][f"l{l}"][column].get("vs_baseline")
    p = f", paired test p = {test['p_value']:.3g}" if test else ""
    line = f"{direction} l = {l}: {row.value:.1f} vs Baseline {_fmt(base)}{p}"
    if base.low <= row.value <= base.high:
        return "free", line
    if row.value < base.low:
        return "better", line
    return ("costly" if test and test["p_value"] < SIGNIFICANCE else "unclear"), line


def check_first_layers(results: dict) -> Claim:
    """Rows l <= 2 of both directions within the Baseline's interval (or better); fails when one is worse
    beyond it with a significant paired test."""
    claim = Claim("first_layers", "the first layers transfer almost freely (l <= 2 within the Baseline's interval)",
                  f"rows l = 0..2 against the Baseline's 95% interval, {COLUMN['ser2asr']} and {COLUMN['asr2ser']}")
    outcomes = []
    for direction in ("ser2asr", "asr2ser"):
        base = row_value(results, direction, "baseline", COLUMN[direction])
        if base is None:
            outcomes.append("unclear")
            claim.evidence.append(f"{direction}: the Baseline has no value with an interval")
            continue
        for l in EARLY:
            outcome, line = early_row_outcome(results, direction, l, base)
            outcomes.append(outcome)
            claim.evidence.append(f"{line} ({outcome})")
    if "costly" in outcomes:
        claim.verdict = FAILS
    elif all(o in ("free", "better") for o in outcomes):
        claim.verdict = HOLDS
    return claim


def check_cka_depth(cka: "dict | None") -> Claim:
    """CKA(ASR, SER) falls with depth: no rise beyond CKA_TOLERANCE between layers and a layer 1 -> 5 drop
    of at least CKA_MIN_DROP; fails on a larger rise or a rise overall. cka: {column: [layers 1..5]}."""
    claim = Claim("cka_depth", "CKA between the tasks falls with depth", "")
    curve = (cka or {}).get("asr_ser")
    if not curve:
        claim.statistic = "no CKA table (cka.tsv) with an asr_ser column"
        return claim
    drop = curve[0] - curve[-1]
    rises = [k + 2 for k in range(len(curve) - 1) if curve[k + 1] - curve[k] > CKA_TOLERANCE]
    claim.statistic = (f"linear CKA(ASR, SER) layer 1 -> {len(curve)}: {curve[0]:.3f} -> {curve[-1]:.3f} "
                       f"(drop {drop:.3f}); point estimates on the report's frames, no interval")
    claim.evidence = [f"layer {k + 1}: {v:.3f}" for k, v in enumerate(curve)]
    floor = cka.get("asr_random")
    if floor:
        claim.evidence.append(f"reference, ASR vs an untrained network: {floor[0]:.3f} -> {floor[-1]:.3f} "
                              "(part of any fall comes from depth alone)")
    if rises or drop < -CKA_TOLERANCE:
        claim.verdict = FAILS
        claim.evidence.append(f"rises beyond {CKA_TOLERANCE} at layer(s) {', '.join(map(str, rises)) or '-'}")
    elif drop >= CKA_MIN_DROP:
        claim.verdict = HOLDS
    return claim


def check_claims(results: dict, cka: "dict | None" = None) -> list:
    """Every claim's Claim, from tables.py's results dict and read_cka_table's dict (or None)."""
    return [check_monotone(results, "ser2asr"), check_monotone(results, "asr2ser"), check_asymmetry(results),
            check_first_layers(results), check_cka_depth(cka)]


def read_inputs(out_dir) -> tuple:
    """(results.json dict, cka table or None) of a report dir."""
    from pyscripts.transfer.cka import read_cka_table
    out_dir = Path(out_dir)
    path = out_dir / "results.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; run python3 -m pyscripts.transfer.tables {out_dir} first")
    results = json.loads(path.read_text())
    cka = read_cka_table(out_dir / "cka.tsv") if (out_dir / "cka.tsv").is_file() else None
    return results, cka


def add_to_results(out_dir, claims: list) -> None:
    """Writes the verdicts into OUT_DIR/results.json under "claims" (replacing earlier ones)."""
    path = Path(out_dir) / "results.json"
    results = json.loads(path.read_text())
    results["claims"] = {c.key: asdict(c) for c in claims}
    path.write_text(json.dumps(results, indent=1) + "\n")


# The later literature on where paralinguistic information sits in deep speech networks: facts with their
# sources (self-supervised wav2vec 2.0-class models, not this recipe's ConvNet), set beside our layer-wise numbers.
LITERATURE = (
    ("For emotion recognition, the representation of a middle layer of wav2vec 2.0 alone does as well as the "
     "average over layers, while the final layer gives the worst results in some cases; wav2vec 2.0 appears "
     "to discard paralinguistic information that is less useful for word recognition",
     "Y. Li, Y. Mohamied, P. Bell, C. Lai, \"Exploration of a Self-Supervised Speech Model: A Study on "
     "Emotional Corpora\", 2022, arXiv:2210.02595"),
    ("Probing eight speech representation models (wav2vec2, HuBERT and others) on SER data sets in six "
     "languages, the middle layers capture the most important emotional information, and a single well "
     "chosen layer beats using all layers",
     "\"Decoding Emotions: A comprehensive Multilingual Study of Speech Models for Speech Emotion "
     "Recognition\", 2023, arXiv:2308.08713"),
    ("Layer-wise analysis of wav2vec 2.0 (canonical correlation, mutual information, probes) shows acoustic "
     "and linguistic properties encoded in different layers and how fine-tuning for ASR changes them; it "
     "measures phonetic and word content, not emotion",
     "A. Pasad, J.-C. Chou, K. Livescu, \"Layer-wise Analysis of a Self-supervised Speech Representation "
     "Model\", 2021, arXiv:2107.04734"),
)


def literature_markdown() -> str:
    return "".join(f"- {fact} ({source}).\n" for fact, source in LITERATURE)


def markdown(claims: list) -> str:
    """The claims as a Markdown table of verdicts, then each claim's evidence."""
    lines = ["| Claim (Fayek et al. 2016) | Statistic | Verdict |", "|---|---|---|"]
    lines += [f"| {c.claim} | {c.statistic} | **{c.verdict}** |" for c in claims]
    for c in claims:
        if c.evidence:
            lines += ["", f"{c.claim}:", ""] + [f"- {e}" for e in c.evidence]
    return "\n".join(lines) + "\n"


def claims_section(out_dir) -> str:
    """The report's claims section for OUT_DIR; also writes the verdicts into OUT_DIR/results.json."""
    if not (Path(out_dir) / "results.json").is_file():
        return "Not checked (no results.json: run the tables first).\n"
    results, cka = read_inputs(out_dir)
    claims = check_claims(results, cka)
    add_to_results(out_dir, claims)
    return ("Each of the paper's qualitative claims checked on this run's numbers (pyscripts/transfer/claims.py): "
            "the statistic, the evidence (95% bootstrap intervals, `value [low, high]`, and paired tests against "
            "the Baseline, as in the tables) and a verdict: holds, does not hold, or undecided at this size "
            "(the intervals overlap). Two intervals count as different only when they do not overlap, which is "
            "conservative. The same verdicts are in results.json under `claims`.\n\n"
            + markdown(claims)
            + "\nThe later literature on where paralinguistic information lies in deep speech models (facts from "
            "the cited papers, on wav2vec 2.0-class self-supervised models and real corpora, not this recipe's "
            "numbers):\n\n" + literature_markdown())
