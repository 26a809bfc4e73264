"""The paper's claims as verdicts (pyscripts/transfer/claims.py), on small hand-made results where each
verdict is known: holds, does not hold, undecided at this size."""
import json

import pytest

from pyscripts.transfer import claims
from pyscripts.transfer.claims import FAILS, HOLDS, UNDECIDED


def cell(value, half_width, p_value=None):
    """A results.json cell with a first-seed value, its 95% interval and, optionally, a paired test."""
    out = {"mean": value, "interval95": {"value": value, "low": value - half_width, "high": value + half_width}}
    if p_value is not None:
        out["vs_baseline"] = {"difference": 0.0, "p_value": p_value}
    return out


def direction(baseline, rows, half_width=1.0, p_values=None):
    """{row: {column: cell}} for both Test columns, rows l0..l5 from a list of 6 values."""
    p_values = p_values or {}
    out = {"baseline": {col: cell(baseline, half_width) for col in ("PER Test", "UE Test")}}
    for l, value in enumerate(rows):
        out[f"l{l}"] = {col: cell(value, half_width, p_values.get(l)) for col in ("PER Test", "UE Test")}
    return out


def test_rank_correlation():
    assert claims.rank_correlation([0, 1, 2, 3], [1, 2, 5, 9]) == pytest.approx(1.0)
    assert claims.rank_correlation([0, 1, 2, 3], [9, 5, 2, 1]) == pytest.approx(-1.0)
    assert claims.rank_correlation([0, 1, 2], [4, 4, 4]) == 0.0
    assert claims.rank_correlation([0, 1, 2, 3], [1, 1, 2, 3]) == pytest.approx(0.9486833, abs=1e-6)


def test_monotone_rise_holds():
    results = {"ser2asr": direction(20, [20, 21, 22, 30, 45, 60])}
    claim = claims.check_monotone(results, "ser2asr")
    assert claim.verdict == HOLDS
    assert "rho(l, error) = 1.00" in claim.statistic


def test_monotone_rise_fails_on_a_step_down_beyond_the_intervals():
    results = {"ser2asr": direction(20, [20, 21, 22, 35, 25, 60])}
    claim = claims.check_monotone(results, "ser2asr")
    assert claim.verdict == FAILS
    assert any("l3 -> l4" in e for e in claim.evidence)


def test_monotone_rise_undecided_when_the_intervals_overlap():
    results = {"asr2ser": direction(50, [50, 51, 50, 52, 53, 54], half_width=8.0)}
    assert claims.check_monotone(results, "asr2ser").verdict == UNDECIDED


def test_monotone_rise_undecided_without_all_rows():
    results = {"ser2asr": direction(20, [20, 21, 22, 30, 45, 60])}
    del results["ser2asr"]["l4"]
    claim = claims.check_monotone(results, "ser2asr")
    assert claim.verdict == UNDECIDED and "l4" in claim.statistic


def test_asymmetry():
    asr_rises_little = direction(50, [50, 50, 51, 52, 53, 55])      # +10% at l = 5
    ser_to_asr_rises_much = direction(20, [20, 21, 22, 30, 45, 60])  # +200% at l = 5
    holds = {"asr2ser": asr_rises_little, "ser2asr": ser_to_asr_rises_much}
    assert claims.check_asymmetry(holds).verdict == HOLDS
    fails = {"asr2ser": direction(20, [20, 21, 22, 30, 45, 60]), "ser2asr": direction(50, [50, 50, 51, 52, 53, 55])}
    assert claims.check_asymmetry(fails).verdict == FAILS
    wide = {"asr2ser": direction(50, [50, 52, 54, 56, 58, 60], half_width=15.0),
            "ser2asr": direction(50, [50, 53, 55, 58, 60, 62], half_width=15.0)}
    assert claims.check_asymmetry(wide).verdict == UNDECIDED
    assert claims.check_asymmetry({}).verdict == UNDECIDED
    perfect = {"asr2ser": direction(0.0, [0, 0, 0, 10, 20, 30], half_width=0.0), "ser2asr": ser_to_asr_rises_much}
    assert claims.check_asymmetry(perfect).verdict == UNDECIDED  # no relative rise over a Baseline of 0


def test_first_layers_transfer_freely():
    near = {"ser2asr": direction(20, [20.5, 20.2, 20.9, 30, 45, 60]),
            "asr2ser": direction(50, [49, 50.5, 50.8, 55, 58, 62])}
    assert claims.check_first_layers(near).verdict == HOLDS
    # l = 2 of SER -> ASR well above the Baseline's interval, and the paired test says so.
    costly = {"ser2asr": direction(20, [20.5, 20.2, 25, 30, 45, 60], p_values={2: 0.001}),
              "asr2ser": near["asr2ser"]}
    claim = claims.check_first_layers(costly)
    assert claim.verdict == FAILS and any("ser2asr l = 2" in e and "costly" in e for e in claim.evidence)
    # Above the interval, but the paired test does not separate it from the Baseline.
    unclear = {"ser2asr": direction(20, [20.5, 20.2, 25, 30, 45, 60], p_values={2: 0.3}),
               "asr2ser": near["asr2ser"]}
    assert claims.check_first_layers(unclear).verdict == UNDECIDED


def test_cka_falls_with_depth():
    assert claims.check_cka_depth({"asr_ser": [0.99, 0.95, 0.8, 0.7, 0.6]}).verdict == HOLDS
    assert claims.check_cka_depth({"asr_ser": [0.6, 0.7, 0.8, 0.9, 0.95]}).verdict == FAILS
    assert claims.check_cka_depth({"asr_ser": [0.9, 0.7, 0.85, 0.6, 0.5]}).verdict == FAILS  # rises at layer 3
    assert claims.check_cka_depth({"asr_ser": [0.90, 0.89, 0.885, 0.88, 0.87]}).verdict == UNDECIDED
    assert claims.check_cka_depth(None).verdict == UNDECIDED


def test_claims_section_writes_the_verdicts_into_results_json(tmp_path):
    assert "Not checked" in claims.claims_section(tmp_path)
    results = {"ser2asr": direction(20, [20, 21, 22, 30, 45, 60]), "asr2ser": direction(50, [50, 50, 51, 52, 53, 55])}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "cka.tsv").write_text("# note\nlayer\tasr_ser\n1\t0.99\n2\t0.95\n3\t0.8\n4\t0.7\n5\t0.6\n")
    text = claims.claims_section(tmp_path)
    written = json.loads((tmp_path / "results.json").read_text())
    assert set(written["claims"]) == {"monotone_ser2asr", "monotone_asr2ser", "asymmetry", "first_layers", "cka_depth"}
    assert written["claims"]["monotone_ser2asr"]["verdict"] == HOLDS
    assert written["claims"]["cka_depth"]["verdict"] == HOLDS
    assert written["ser2asr"] == results["ser2asr"]  # the tables' numbers are left as they were
    assert "| SER -> ASR error rises monotonically with l |" in text and "arXiv:2210.02595" in text
    # Run again (the report rewritten): the claims are replaced, not nested.
    claims.claims_section(tmp_path)
    assert "claims" not in json.loads((tmp_path / "results.json").read_text())["claims"]
