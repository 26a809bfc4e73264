"""Bootstrap intervals and the paired randomization test (pyscripts/stats.py) on hand-worked and
exhaustively enumerated cases, the per-utterance files the scorers write, and the intervals in the ASR
and SER results tables."""
import itertools
import json

import numpy as np
import pytest

from pyscripts import intervals, stats
from pyscripts.asr import scoring, utt_errors
from pyscripts.errors import DataError
from pyscripts.kaldi.datadir import write_table
from pyscripts.ser import evaluate
from pyscripts.ser.intervals import emotion_set, write_ser_intervals
from pyscripts.transfer.paired import transfer_row_test


def enumerated_interval(errors, totals, level=0.95):
    """The exact percentile interval: every one of the n^n equally likely resamples."""
    n = len(errors)
    rates = [sum(errors[i] for i in idx) / sum(totals[i] for i in idx)
             for idx in itertools.product(range(n), repeat=n)]
    tail = (1 - level) / 2
    return tuple(np.quantile(rates, [tail, 1 - tail], method="inverted_cdf"))


# -- intervals ------------------------------------------------------------------------------------
def test_percentile_interval_is_the_inverted_cdf():
    # 10 values, 80%: the 1st and the 9th smallest (ceil(0.1 * 10), ceil(0.9 * 10)).
    assert stats.percentile_interval(np.arange(10, 0, -1), level=0.8) == (1.0, 9.0)
    assert stats.percentile_interval([np.nan, 2.0, np.nan], level=0.9) == (2.0, 2.0)


def test_ratio_interval_hand_worked():
    # 4 utterances of 1 phone, one wrong: a resample's PER is k/4, k ~ Binomial(4, 1/4);
    # P(k = 0) = 0.316 >= 0.025 -> low 0; P(k <= 2) = 0.949 < 0.975 <= P(k <= 3) = 0.996 -> high 3/4.
    iv = stats.ratio_interval([0, 0, 0, 1], [1, 1, 1, 1])
    assert (iv.estimate, iv.low, iv.high) == (0.25, 0.0, 0.75)
    assert iv.low <= iv.estimate <= iv.high
    # Ratio of sums, not mean of ratios: utterances 1 and 3 both have rate 1/2, utterance 2 has 0. Any
    # resample is at most 1/2 (P = 8/27 of exactly 1/2), the all-utterance-2 one (P = 1/27 >= 0.025) is 0.
    iv = stats.ratio_interval([1, 0, 2], [2, 3, 4])
    assert iv.estimate == pytest.approx(3 / 9)
    assert (iv.low, iv.high) == (0.0, 0.5) == enumerated_interval([1, 0, 2], [2, 3, 4])


def test_ratio_interval_close_to_the_enumerated_one():
    errors, totals = [3, 0, 1, 0, 2], [5, 4, 6, 3, 7]   # 5^5 resamples enumerated
    low, high = enumerated_interval(errors, totals)
    iv = stats.ratio_interval(errors, totals, resamples=20000)
    assert iv.low == pytest.approx(low, abs=0.01) and iv.high == pytest.approx(high, abs=0.01)
    assert iv.low <= iv.estimate <= iv.high


def test_intervals_are_reproducible_and_contain_the_estimate():
    rng = np.random.default_rng(5)
    totals = rng.integers(20, 40, size=200)
    errors = rng.binomial(totals, 0.2)
    a, b = stats.ratio_interval(errors, totals), stats.ratio_interval(errors, totals)
    assert a == b                                   # fixed seed
    assert a.low < a.estimate < a.high and a.high - a.low < 0.05
    assert stats.ratio_interval(errors, totals, seed=1) != a


def test_bad_ratio_input_is_a_data_error():
    with pytest.raises(DataError):
        stats.ratio_interval([1, 2], [3])
    with pytest.raises(DataError):
        stats.ratio_interval([], [])


# -- strata ---------------------------------------------------------------------------------------
def test_stratified_resampling_keeps_each_speakers_count():
    strata = ["b", "a", "b", "b", "a", "c"]
    counts = stats.resample_counts(strata, resamples=500)
    assert counts.shape == (500, 6)
    strata = np.array(strata)
    for spk, n in (("a", 2), ("b", 3), ("c", 1)):
        assert (counts[:, strata == spk].sum(axis=1) == n).all()
    assert (counts[:, 5] == 1).all()
    # A speaker draws the same counts alone as pooled with others (its own generator).
    alone = stats.resample_counts(["a", "a"], resamples=500)
    assert np.array_equal(alone, counts[:, strata == "a"])


def test_stratification_against_plain_resampling():
    # Speaker A: 2 right; speaker B: 1 wrong. Within speakers every resample holds B's utterance once:
    # E = 1/3 always. Without strata the resamples vary.
    s = emotion_set(["a1", "a2", "b1"], ["A", "A", "B"], ["ang", "ang", "hap"], ["ang", "ang", "ang"])
    block = stats.ser_intervals([s])["sets"][0]
    assert (block["E"].low, block["E"].estimate, block["E"].high) == pytest.approx((1 / 3,) * 3)
    assert block["resamples_missing_class"] == 0
    flat = emotion_set(s.utts, ["", "", ""], ["ang", "ang", "hap"], ["ang", "ang", "ang"])
    b2 = stats.ser_intervals([flat])["sets"][0]
    assert (b2["E"].low, b2["E"].high) == (0.0, 1.0)


def test_unweighted_error_and_absent_classes():
    # One speaker, refs ang, hap; decisions ang, ang. Resamples: {1,1} (1/4): E 0, and hap is absent, so
    # UE = 1 - recall(ang) = 0; {2,2} (1/4): E = UE = 1; mixed (1/2): E = 1/2, UE = 1 - (1 + 0)/2.
    s = emotion_set(["u1", "u2"], ["S", "S"], ["ang", "hap"], ["ang", "ang"])
    e, ue, missing = stats.class_rates(s.refs, s.correct, np.array([[2, 0], [0, 2], [1, 1]]))
    assert e.tolist() == [0.0, 1.0, 0.5] and ue.tolist() == [0.0, 1.0, 0.5]
    assert missing.tolist() == [True, True, False]
    block = stats.ser_intervals([s])["sets"][0]
    assert (block["E"].estimate, block["UE"].estimate) == (0.5, 0.5)
    assert (block["UE"].low, block["UE"].high) == (0.0, 1.0)
    assert 400 < block["resamples_missing_class"] < 600      # half of 1000, binomially


def test_unweighted_error_matches_evaluate():
    refs = [0] * 6 + [1] * 10 + [2] * 10 + [3] * 4
    hyps = [0] * 5 + [1] + [0] * 2 + [1] * 6 + [2] * 2 + [2] * 8 + [3] * 2 + [3] * 4
    e, ue = evaluate.error_rates(evaluate.confusion_matrix(refs, hyps))
    s = emotion_set([f"u{i:02d}" for i in range(30)], ["S"] * 30, refs, hyps)
    block = stats.ser_intervals([s])["sets"][0]
    assert (block["E"].estimate, block["UE"].estimate) == pytest.approx((e, ue))
    assert block["E"].low <= e <= block["E"].high and block["UE"].low <= ue <= block["UE"].high


def test_mean_over_folds_and_each_fold_as_alone():
    f1 = emotion_set(["a1", "a2", "a3"], ["A"] * 3, ["ang", "hap", "sad"], ["ang", "hap", "neu"])
    f2 = emotion_set(["b1", "b2"], ["B"] * 2, ["neu", "neu"], ["neu", "sad"])
    both = stats.ser_intervals([f1, f2])
    assert both["mean"]["E"].estimate == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert both["sets"][0] == stats.ser_intervals([f1])["sets"][0]
    assert both["sets"][1] == stats.ser_intervals([f2])["sets"][0]
    m = both["mean"]["E"]
    assert m.low <= m.estimate <= m.high


# -- paired test ----------------------------------------------------------------------------------
def test_identical_systems_give_p_one():
    t = stats.paired_test_ratio([1, 0, 2, 3], [1, 0, 2, 3], [5, 5, 5, 5])
    assert (t.difference, t.p_value, t.exact, t.differing) == (0.0, 1.0, True, 0)
    assert (t.low, t.high) == (0.0, 0.0)


def test_exact_randomization_hand_worked():
    # 3 utterances, B right where A is wrong on each: of the 2^3 swaps only "none" and "all" reach
    # |difference| = 1, so p = 2/8.
    t = stats.paired_test_ratio([1, 1, 1], [0, 0, 0], [1, 1, 1])
    assert (t.difference, t.p_value, t.exact, t.rounds) == (-1.0, 0.25, True, 8)
    # Differences 2 and 1 on two of three utterances: swaps give 3, 1, -1, -3; |.| >= 3 twice of 4.
    t = stats.paired_test_ratio([2, 0, 1], [0, 0, 0], [2, 2, 2])
    assert (t.difference, t.p_value, t.differing) == (-0.5, 0.5, 2)


def test_uniformly_better_system_gives_a_small_p():
    a, b, totals = np.ones(40), np.zeros(40), np.full(40, 10)
    t = stats.paired_test_ratio(a, b, totals)
    assert not t.exact and t.p_value < 0.01      # 2^-39 exactly; (1 + hits) / 1001 here
    assert t.difference == pytest.approx(-0.1) and t.high < 0
    assert stats.paired_test_ratio(b, a, totals).p_value == t.p_value   # two-sided


class _Draws:
    """Stands in for numpy's generator in randomization_p: rng.random((m, k)) returns the rows given
    (swap where < 0.5), and the seed it was made with is kept."""

    def __init__(self, rows):
        self.rows, self.seeds = np.asarray(rows, dtype=np.float64), []

    def __call__(self, seed):
        self.seeds.append(seed)
        return self

    def random(self, shape):
        assert shape == self.rows.shape, shape
        return self.rows


def test_monte_carlo_p_is_one_plus_exceedances_over_one_plus_rounds(monkeypatch):
    # 3 utterances on which B is right and A wrong (difference -1 each; observed |B - A| = 3/3), 4 rounds
    # (2^3 = 8 > 4: sampled, not enumerated). The rounds swap none, all, one and two of them: B - A =
    # -1, +1, -1/3, +1/3, so |.| >= 1 in 2 rounds, one of each sign: p = (1 + 2) / (1 + 4) = 3/5.
    # (hits / rounds = 2/4, (1 + hits) / rounds = 3/4; one-sided, only one round counts: 2/5.)
    draws = _Draws([[0.9, 0.9, 0.9], [0.1, 0.1, 0.1], [0.1, 0.9, 0.9], [0.1, 0.1, 0.9]])
    monkeypatch.setattr(stats.np.random, "default_rng", draws)
    p, exact, k, rounds = stats.randomization_p([1, 1, 1], [0, 0, 0], lambda x: x.sum(axis=1) / 3, rounds=4, seed=7)
    assert (p, exact, k, rounds) == (pytest.approx(3 / 5), False, 3, 4)
    assert draws.seeds == [[7, 3]]   # seeded by (seed, k): reproducible, and the same for A vs B and B vs A
    # A round that swaps nothing is the observed assignment: every round reaching it gives p = 1 exactly.
    draws = _Draws(np.full((4, 3), 0.9))
    monkeypatch.setattr(stats.np.random, "default_rng", draws)
    assert stats.randomization_p([1, 1, 1], [0, 0, 0], lambda x: x.sum(axis=1) / 3, rounds=4)[0] == 1.0


def test_monte_carlo_p_of_a_uniformly_better_system_is_one_over_rounds_plus_one():
    # 40 utterances, B better on each: only 2 of the 2^40 assignments reach the observed difference, so
    # 1000 real draws (seed 0) find none of them: p = (1 + 0) / (1 + 1000), whichever system is A.
    a, b, totals = np.ones(40), np.zeros(40), np.full(40, 10)
    for x, y in ((a, b), (b, a)):
        t = stats.paired_test_ratio(x, y, totals, resamples=1000, seed=0)
        assert (t.p_value, t.exact, t.rounds, t.differing) == (1 / 1001, False, 1000, 40)


def test_paired_ser_exact_case():
    # refs ang ang hap hap; A right on all, B wrong on both hap: E +1/2, UE +1/2 (hap recall 1 -> 0).
    # Swapping one of the two differing utterances gives 0, both: -1/2; p = 2/4.
    refs, spk = ["ang", "ang", "hap", "hap"], ["S"] * 4
    a = emotion_set(["u1", "u2", "u3", "u4"], spk, refs, refs, "a")
    b = emotion_set(["u1", "u2", "u3", "u4"], spk, refs, ["ang", "ang", "ang", "sad"], "b")
    tests = stats.paired_test_ser([a], [b])
    for metric in ("E", "UE"):
        assert (tests[metric].difference, tests[metric].p_value, tests[metric].exact) == (0.5, 0.5, True)
    assert stats.paired_test_ser([a], [a])["UE"].p_value == 1.0
    with pytest.raises(DataError, match="not the same utterances"):
        stats.paired_test_ser([a], [emotion_set(["u1"], ["S"], ["ang"], ["ang"], "c")])


# -- files and the tables -------------------------------------------------------------------------
def _scored_decode(d, refs, hyps, setting="10_0.0"):
    """A decode dir scored like local/score.sh (trn files, wer_SETTING, best_wer, per_by_utt)."""
    sc = d / "scoring"
    sc.mkdir(parents=True)
    scoring.write_trn(sc / "ref.trn", refs)
    scoring.write_trn(sc / f"hyp_{setting}.trn", hyps)
    c = scoring.per(refs, hyps)
    (d / f"wer_{setting}").write_text(c.kaldi_line() + "\n")
    return c


def test_per_by_utt_and_asr_intervals(tmp_path):
    refs = {"s1_a": "a b c d", "s1_b": "a b", "s2_c": "c c c"}
    hyps = {"s1_a": "a x c", "s1_b": "a b", "s2_c": "c"}          # 2 errors / 4, 0 / 2, 2 / 3
    d = tmp_path / "decode_test"
    c = _scored_decode(d, refs, hyps)
    assert scoring.write_best(d) == ("10_0.0", pytest.approx(c.per, abs=0.005))   # wer_* has 2 decimals
    lines = (d / "scoring/per_by_utt").read_text().splitlines()
    assert lines[0].startswith("# PER per utterance at setting 10_0.0")
    assert lines[1:] == ["s1_a 2 4 1 1 0", "s1_b 0 2 0 0 0", "s2_c 2 3 0 2 0"]
    utt_errors.write_by_utt(d / "scoring/fer_by_utt", {"s1_a": (3, 10), "s1_b": (0, 5), "s2_c": (5, 5)}, "FER")
    result = utt_errors.write_asr_intervals(d)
    assert result["PER"]["estimate"] == pytest.approx(c.per) and result["PER"]["setting"] == "10_0.0"
    assert result["FER"]["estimate"] == pytest.approx(40.0) and result["FER"]["utterances"] == 3
    assert json.loads((d / "scoring/intervals.json").read_text()) == result
    # Another setting is aligned again from its trn files.
    (d / "scoring/hyp_12_0.0.trn").write_text("a b c d (s1_a)\na b (s1_b)\nc c c (s2_c)\n")
    assert utt_errors.asr_utts(d, "PER", "12_0.0", scoring.per_utt_counts).errors.sum() == 0


def test_results_table_shows_intervals(tmp_path):
    refs = {f"s{i}_u": "a b c d" for i in range(6)}
    hyps = {u: ("a b c d" if i % 2 else "a b") for i, u in enumerate(refs)}   # 6 errors / 24 = 25%
    for name in ("dev", "test"):
        d = tmp_path / "exp/m" / f"decode_{name}"
        _scored_decode(d, refs, hyps)
        scoring.write_best(d, tune_dir=(tmp_path / "exp/m/decode_dev") if name == "test" else None)
    table = scoring.results_markdown([tmp_path / "exp"])
    rows = [line for line in table.splitlines() if line.startswith(f"| {tmp_path / 'exp/m'} |")]
    assert [c.strip() for c in rows[0].split("|")[2:6]] == ["–", "–", "25.0", "25.0"]  # unchanged
    cells = [c.strip() for c in rows[1].split("|")[2:6]]
    assert cells[:2] == ["–", "–"] and cells[2] == cells[3] and cells[2].startswith("25.0 [")
    low, high = (float(x) for x in cells[2][len("25.0 ["):-1].split(", "))
    assert low <= 25.0 <= high
    assert "| Model | FER Dev (95% CI) | FER Test (95% CI) | PER Dev (95% CI) | PER Test (95% CI) |" in table


def _ser_fold(root, k, speaker, utts):
    """exp/foldK/eval/{valid,test} with decisions, metrics.json and the data dir's utt2spk;
    utts: {utt: (ref, hyp)}, the same in both sets."""
    data = root / f"data{k}"
    data.mkdir(parents=True)
    write_table(data / "utt2spk", {u: speaker for u in utts})
    fold = root / f"fold{k}"
    refs = [evaluate.EMOTIONS.index(r) for r, _ in utts.values()]
    hyps = [evaluate.EMOTIONS.index(h) for _, h in utts.values()]
    cm = evaluate.confusion_matrix(refs, hyps)
    e, ue = evaluate.error_rates(cm)
    for subset in ("valid", "test"):
        d = fold / "eval" / subset
        d.mkdir(parents=True)
        write_table(d / "decisions", {u: f"{r} {h} 0.25 0.25 0.25 0.25" for u, (r, h) in utts.items()})
        (d / "metrics.json").write_text(json.dumps({"E": e, "UE": ue, "utterances": len(utts), "rule": "mean",
                                                    "data": str(data), "confusion": cm.tolist()}))
    return fold


def test_ser_results_table_shows_intervals(tmp_path):
    f1 = _ser_fold(tmp_path, 1, "Ses01F", {"a": ("ang", "ang"), "b": ("hap", "ang"), "c": ("neu", "neu"),
                                           "d": ("sad", "sad")})
    f2 = _ser_fold(tmp_path, 2, "Ses02F", {"e": ("ang", "ang"), "f": ("neu", "neu")})
    text = evaluate.write_summary([f1, f2], tmp_path / "out")
    assert "| Baseline | 12.5 | 12.5 | 12.5 | 12.5 |" in text            # the existing table, unchanged
    assert "acc = 100 - E, UA = 100 - UE" in text
    lines = text.splitlines()
    start = lines.index("| Fold (test speaker) | E Dev | E Test | UE Dev | UE Test |", lines.index("| mean of 2 | "
                        "12.5 | 12.5 | 12.5 | 12.5 |"))
    assert lines[start + 2].startswith("| fold1 (Ses01F) | 25.0 [") and lines[start + 3].startswith("| fold2 (Ses02F) "
                                                                                                    "| 0.0 [0.0, 0.0]")
    assert lines[start + 4].startswith("| mean of 2 | 12.5 [")
    summary = json.loads((tmp_path / "out/results.json").read_text())
    assert summary["intervals"]["folds"]["fold2"]["test"]["E"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    # The eval dir's own intervals.json has the fold's interval of the table (same draws).
    own = write_ser_intervals(f1 / "eval/test")
    assert own["E"] == summary["intervals"]["folds"]["fold1"]["test"]["E"] and own["stratified_by_speaker"]


def test_ser_table_without_decisions_leaves_intervals_out(tmp_path):
    f1 = _ser_fold(tmp_path, 1, "Ses01F", {"a": ("ang", "ang"), "b": ("hap", "ang")})
    (f1 / "eval/test/decisions").unlink()
    text = evaluate.write_summary([f1], tmp_path / "out")
    assert "confidence intervals: left out" in text
    assert "intervals" not in json.loads((tmp_path / "out/results.json").read_text())


def test_transfer_row_tests(tmp_path):
    # asr2ser: folds paired by name; the row is right where the baseline is wrong.
    base = _ser_fold(tmp_path / "base", 1, "S", {"a": ("ang", "hap"), "b": ("hap", "hap")})
    row = _ser_fold(tmp_path / "row", 1, "S", {"a": ("ang", "ang"), "b": ("hap", "hap")})
    tests = transfer_row_test("asr2ser", [base], {"fold1": row}, "dev")
    assert tests["E"].difference == pytest.approx(-0.5) and tests["E"].p_value == 1.0   # 2 swaps, both |.| = 1/2
    # ser2asr: the row's per-utterance errors are the mean over its runs.
    refs = {"s1_a": "a b", "s1_b": "c d"}
    _scored_decode(tmp_path / "asr_base/decode_test", refs, {"s1_a": "a", "s1_b": "c"})
    for r, hyp in (("r1", {"s1_a": "a b", "s1_b": "c"}), ("r2", {"s1_a": "a b", "s1_b": "c d"})):
        _scored_decode(tmp_path / r / "decode_test", refs, hyp)
    for d in ("asr_base", "r1", "r2"):
        scoring.write_best(tmp_path / d / "decode_test")
    tests = transfer_row_test("ser2asr", [tmp_path / "asr_base"], [tmp_path / "r1", tmp_path / "r2"])
    assert list(tests) == ["PER"]
    assert tests["PER"].difference == pytest.approx((0.25 + 0.0) / 2 - 0.5)
    with pytest.raises(DataError, match="no fold in common"):
        transfer_row_test("asr2ser", {"fold9": base}, {"fold1": row})


def test_command_line(tmp_path, capsys):
    d = tmp_path / "decode"
    _scored_decode(d, {"s1_a": "a b"}, {"s1_a": "a"})
    scoring.write_best(d)
    intervals.main(["asr", str(d)])
    assert "%PER at 10_0.0 50.00 [50.00, 50.00]" in capsys.readouterr().out
    f = _ser_fold(tmp_path, 1, "S", {"a": ("ang", "ang"), "b": ("hap", "ang")})
    intervals.main(["ser", str(f / "eval/test")])
    assert "E 50.0 [0.0, 100.0]" in capsys.readouterr().out
    intervals.main(["compare", "ser", "--a", str(f / "eval/test"), "--b", str(f / "eval/valid")])
    assert "p = 1 (exact" in capsys.readouterr().out


def test_stats_imports_no_recipe_module():
    # The statistics are a leaf: the readers of the recipe's files import them, never the other way.
    import ast
    from pathlib import Path
    tree = ast.parse(Path(stats.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith("pyscripts")} == {"pyscripts.errors", "pyscripts.kaldi.tables"}


def test_another_setting_needs_an_aligner(tmp_path):
    d = tmp_path / "decode"
    _scored_decode(d, {"s1_a": "a b"}, {"s1_a": "a"})
    scoring.write_best(d)
    (d / "scoring/hyp_12_0.0.trn").write_text("a b (s1_a)\n")
    with pytest.raises(DataError, match="not at setting 12_0.0"):
        utt_errors.asr_utts(d, "PER", "12_0.0")
    assert utt_errors.asr_utts(d, "PER", "10_0.0").errors.tolist() == [1.0]
