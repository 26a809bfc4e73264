"""The paper-style transfer tables (pyscripts/transfer/tables.py) against hand-written tables."""
import json

import pytest

from pyscripts.errors import DataError
from pyscripts.transfer import tables
from pyscripts.transfer.plan import plan_direction, plan_path, write_jobs

from conftest import transfer_setup

EXPECTED_ASR2SER = ("| No. Constant Layers (l) | E Dev | E Test | UE Dev | UE Test | "
                    "Paper (real corpora): E Dev / E Test / UE Dev / UE Test | Recipe − paper (points) |\n") + """\
|---|---|---|---|---|---|---|
| Baseline | 40.0 ± 2.0 (3) | 50.0 (1) | 45.0 ± 7.1 (2) | – | 44.63 / 46.44 / 46.34 / 48.96 | -4.6 / +3.6 / -1.3 / – |
| 5 | – | – | – | – | 1.00 / n/a / 3.50 / 4.00 | – |
| 4 | – | – | – | – | n/a | n/a |
| 3 | 33.3 (1) | – | – | – | n/a | n/a |
| 2 | – | – | – | – | n/a | n/a |
| 1 | – | – | – | – | n/a | n/a |
| 0 | 10.0 ± 0.0 (2) | – | – | – | 45.26 / 46.97 / 46.60 / 48.95 | -35.3 / – / – / – |
"""

# The paper's two tables (Fayek, Lech & Cavedon 2016, from the slides; error rates in %, on the real
# TIMIT and IEMOCAP), written out here by hand: conf/paper_results.tsv must hold exactly these.
PAPER_SER2ASR = {  # FER Dev, FER Test, PER Dev, PER Test
    "baseline": [30.53, 31.61, 18.71, 20.18],
    "l5": [71.09, 71.64, 61.15, 61.82],
    "l4": [53.26, 53.92, 42.96, 44.13],
    "l3": [40.29, 40.97, 28.81, 30.48],
    "l2": [31.75, 32.87, 20.08, 21.85],
    "l1": [30.83, 32.01, 18.99, 20.94],
    "l0": [30.62, 31.65, 18.73, 20.57],
}
PAPER_ASR2SER = {  # E Dev, E Test, UE Dev, UE Test
    "baseline": [44.63, 46.44, 46.34, 48.96],
    "l5": [52.55, 59.20, 62.50, 64.03],
    "l4": [51.94, 53.34, 56.21, 56.18],
    "l3": [50.22, 52.01, 54.18, 54.37],
    "l2": [47.39, 48.50, 47.72, 49.82],
    "l1": [46.37, 48.36, 47.61, 50.57],
    "l0": [45.26, 46.97, 46.60, 48.95],
}


def test_render_against_a_hand_written_table():
    cells = {"baseline": {("E", "dev"): [38.0, 40.0, 42.0], ("E", "test"): [50.0],
                          ("UE", "dev"): [40.0, 50.0]},
             "l3": {("E", "dev"): [100 / 3]},
             "l0": {("E", "dev"): [10.0, 10.0]}}
    paper = {"baseline": PAPER_ASR2SER["baseline"], "l5": [1.0, None, 3.5, 4.0], "l0": PAPER_ASR2SER["l0"]}
    assert tables.render_table("asr2ser", cells, paper) == EXPECTED_ASR2SER


def test_ser2asr_header_and_rows():
    text = tables.render_table("ser2asr", {"l5": {("PER", "test"): [21.44]}})
    lines = text.splitlines()
    assert lines[0] == ("| No. Constant Layers (l) | FER Dev | FER Test | PER Dev | PER Test | "
                        "Paper (real corpora): FER Dev / FER Test / PER Dev / PER Test | Recipe − paper (points) |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| Baseline", "| 5", "| 4", "| 3", "| 2", "| 1", "| 0"]
    assert lines[3] == "| 5 | – | – | – | 21.4 (1) | n/a | n/a |"
    text = tables.render_table("ser2asr", {"l5": {("PER", "test"): [21.44]}}, {"l5": PAPER_SER2ASR["l5"]})
    assert text.splitlines()[3] == "| 5 | – | – | – | 21.4 (1) | 71.09 / 71.64 / 61.15 / 61.82 | – / – / – / -40.4 |"


def _write_result(decode_dir, per, fer=None):
    """A decode dir's scoring/result.json (pyscripts/asr/result.py) with the PER and FER given, in %."""
    per_block = {"percent": per, "errors": round(per * 10), "ref": 1000, "ins": 0, "del": 0, "sub": round(per * 10)}
    fer_block = None if fer is None else {"percent": fer, "errors": round(fer * 10), "frames": 1000, "utts": 4}
    record = {"setting": "7_0.0", "lmwt": 7, "acwt": 1 / 7, "wip": 0, "tune_dir": None, "per": per_block,
              "settings": {}, "fer": fer_block, "rtf": None, "device": None}
    (decode_dir / "scoring").mkdir(parents=True)
    (decode_dir / "scoring/result.json").write_text(json.dumps(record))


def test_collect_reads_scoring_and_fold_metrics(tmp_path):
    setup = transfer_setup(exp_root=str(tmp_path / "exp"), ser_source="s.pt")
    asr_jobs = plan_direction("ser2asr", setup, [])
    _write_result(tmp_path / "exp/ser2asr/l2/decode_test", 24.37, 38.2)
    # The result record is what counts; the text files beside it are for people.
    (tmp_path / "exp/ser2asr/l2/decode_test/scoring/best_wer").write_text("%WER 99.99 [ 1 / 1 ] exp/x/wer_7_0.0\n")
    _write_result(tmp_path / "exp/ser2asr/l1/decode_dev", 30.0)  # a decode without the network's FER
    cells = tables.collect("ser2asr", asr_jobs)
    assert cells["l2"][("PER", "test")] == {1: [24.37]}
    assert cells["l2"][("FER", "test")] == {1: [38.2]}
    assert cells["l2"][("PER", "dev")] == {} and cells["baseline"][("PER", "test")] == {}
    assert cells["l1"][("PER", "dev")] == {1: [30.0]} and cells["l1"][("FER", "dev")] == {}

    ser_jobs = plan_direction("asr2ser", setup, ["fold1", "fold2"])
    for fold, e in (("fold1", 0.25), ("fold2", 0.35)):
        for subset in ("valid", "test"):
            d = tmp_path / f"exp/asr2ser/l4/{fold}/eval/{subset}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"E": e, "UE": e + (0.1 if subset == "test" else 0)}))
    cells = tables.collect("asr2ser", ser_jobs)
    assert cells["l4"][("E", "dev")][1] == pytest.approx([25.0, 35.0])
    assert cells["l4"][("UE", "test")][1] == pytest.approx([35.0, 45.0])
    assert tables.format_cell(cells["l4"][("E", "test")]) == "30.0 ± 7.1 (2)"
    summary = tables.results_json({"asr2ser": cells})["asr2ser"]["l4"]["E Dev"]
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(30.0)


def test_several_seeds_give_the_mean_and_the_sd_across_seeds(tmp_path):
    setup = transfer_setup(exp_root=str(tmp_path / "exp"), ser_source="s.pt", seeds=2, layers="4")
    jobs = plan_direction("asr2ser", setup, ["fold1", "fold2"])
    # seed 1: folds 20 and 30 (mean 25); seed 2: folds 40 and 50 (mean 45).
    for row, e in (("l4", (0.20, 0.30)), ("l4.seed2", (0.40, 0.50))):
        for fold, value in zip(("fold1", "fold2"), e):
            d = tmp_path / f"exp/asr2ser/{row}/{fold}/eval/test"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"E": value, "UE": value}))
    cells = tables.collect("asr2ser", jobs)
    assert cells["l4"][("E", "test")] == {1: pytest.approx([20.0, 30.0]), 2: pytest.approx([40.0, 50.0])}
    # mean of the 4 runs; sd of the seed means 25 and 45 (not of the 4 runs: 12.9)
    assert tables.format_cell(cells["l4"][("E", "test")]) == "35.0 ± 14.1 (4)"
    summary = tables.results_json({"asr2ser": cells})["asr2ser"]["l4"]["E Test"]
    assert summary["sd_across"] == "seeds" and summary["seeds"]["2"] == pytest.approx([40.0, 50.0])
    write_jobs(plan_path(tmp_path / "exp", "asr2ser"), jobs)
    write_jobs(plan_path(tmp_path / "exp", "ser2asr"), plan_direction("ser2asr", setup, []))
    tables.main(["--exp-root", str(tmp_path / "exp"), str(tmp_path / "report")])
    text = (tmp_path / "report/tables.md").read_text()
    assert "trained with 2 seeds: the ± is the sd across seeds" in text and "one run per fold (2 folds)" in text
    assert "| 4 | – | 35.0 ± 14.1 (4) | – | 35.0 ± 14.1 (4) |" in text


def test_paper_results_file(tmp_path):
    path = tmp_path / "paper.txt"
    path.write_text("# the paper's numbers\nser2asr baseline 30.1 31.2 n/a 22.0\n")
    paper = tables.read_paper_results(path)
    assert paper["ser2asr"]["baseline"] == [30.1, 31.2, None, 22.0]
    assert tables.format_paper(paper["ser2asr"]["baseline"]) == "30.10 / 31.20 / n/a / 22.00"
    assert paper["asr2ser"] == {}
    path.write_text("ser2asr l9 1 2 3 4\n")
    with pytest.raises(DataError, match="paper.txt:1"):
        tables.read_paper_results(path)
    path.write_text("ser2asr\tl1\t1\t2\t3\t4\nser2asr\tl1\t1\t2\t3\t4\n")
    with pytest.raises(DataError, match="paper.txt:2: a second line"):
        tables.read_paper_results(path)
    with pytest.raises(DataError, match="absent.tsv not found"):
        tables.read_paper_results(tmp_path / "absent.tsv")


def test_the_recipe_ships_the_papers_tables():
    """conf/paper_results.tsv, the default source of the report, holds the paper's 28 rows and no other."""
    paper = tables.read_paper_results(tables.PAPER_RESULTS)
    assert paper == {"ser2asr": PAPER_SER2ASR, "asr2ser": PAPER_ASR2SER}
    header = tables.PAPER_RESULTS.read_text()
    assert "Fayek" in header and "slides" in header and "real TIMIT and IEMOCAP" in header


def test_difference_to_the_paper():
    assert tables.minus_paper([40.0, 42.0], 44.63) == pytest.approx(-3.63)
    assert tables.minus_paper([], 44.63) is None and tables.minus_paper([40.0], None) is None
    assert tables.format_difference([[40.0], [], [50.0], [1.0]], [44.63, 46.44, None, 0.5]) == "-4.6 / – / – / +0.5"
    assert tables.format_difference([[], [], [], []], [1.0, 2.0, 3.0, 4.0]) == "–"
    assert tables.format_difference([[40.0]] * 4, None) == "n/a"


def test_transfer_figure_with_the_papers_curves(tmp_path):
    from pyscripts.transfer import figures
    cells = tables.collect("ser2asr", [])
    cells["l3"][("PER", "test")] = [25.0, 27.0]
    cells["baseline"][("FER", "dev")] = [33.0]
    results = tables.results_json({"ser2asr": cells})["ser2asr"]
    paper = {"baseline": [30.53, None, 18.71, 20.18], "l5": [71.09, 71.64, None, 61.82],
             "l0": [30.62, 31.65, 18.73, 20.57]}
    curves = figures.paper_curves("ser2asr", paper)
    assert curves["FER Dev"] == ([0, 5], [30.62, 71.09], 30.53)
    assert curves["PER Dev"] == ([0], [18.73], 18.71)
    assert curves["FER Test"] == ([0, 5], [31.65, 71.64], None)
    assert figures.plot_transfer("ser2asr", results, tmp_path / "with.png", paper) == (1, 4)
    assert figures.plot_transfer("ser2asr", results, tmp_path / "without.png") == (1, 0)
    assert (tmp_path / "with.png").stat().st_size > 1000
    assert figures.paper_curves("asr2ser", {}) == {}


def test_report_of_a_partial_sweep(tmp_path, monkeypatch):
    """tables -> figures -> README.md on a sweep where only some runs have finished."""
    from pyscripts.transfer import figures, report
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "exp"
    # The plans of the sweep (local/run_transfer.sh writes them): the tables and the report read them.
    setup = transfer_setup(exp_root=str(exp), ser_source="s.pt", asr_cmvn_stats="data/timit/train/cmvn_global.stats")
    for direction in ("ser2asr", "asr2ser"):
        write_jobs(plan_path(exp, direction), plan_direction(direction, setup, ["fold1", "fold2"]))
    run = exp / "asr2ser/l1/fold2"
    (run / "log").mkdir(parents=True)
    (run / "final.pt").write_bytes(b"")
    (run / "config.yaml").write_text("init:\n  from: src.pt\n  freeze_layers: 1\n  reinit_unfrozen: false\n")
    (run / "train_summary").write_text("started=2026-11-24T13:30:37\nended=2026-11-24T13:31:26\nseconds=49.0\n"
                                       "epochs=2\nstop=max epochs\nbest_epoch=2\ndev_loss=0.9\ndev_fer=0.3\n")
    for subset, e in (("valid", 0.4), ("test", 0.5)):
        (run / "eval" / subset).mkdir(parents=True)
        (run / "eval" / subset / "metrics.json").write_text(json.dumps({"E": e, "UE": e}))
    out = tmp_path / "report"
    tables.main(["--exp-root", str(exp), str(out)])
    figures.main(["transfer", str(out / "results.json"), str(out)])
    readme = report.write_report(out, exp).read_text()
    assert (out / "transfer_ser2asr.png").stat().st_size > 1000
    assert (out / "transfer_asr2ser.png").stat().st_size > 1000
    assert ("| 1 | 40.0 (1) | 50.0 (1) | 40.0 (1) | 50.0 (1) | 46.37 / 48.36 / 47.61 / 50.57 "
            "| -6.4 / +1.6 / -7.6 / -0.6 |") in readme
    assert "on the **real TIMIT and IEMOCAP**, not this recipe's runs (from `conf/paper_results.tsv`" in readme
    assert "| Baseline | – | – | – | – | 30.53 / 31.61 / 18.71 / 20.18 | – |" in readme
    assert "![ASR -> SER (target: IEMOCAP emotion recognition)](transfer_asr2ser.png)" in readme
    assert "ASR -> SER (target: IEMOCAP emotion recognition): 1 of 14 trainings finished; 0.8 min" in readme
    assert "copied and **fine-tuned**" in readme
    assert ("SER -> ASR with the global CMVN stats `data/timit/train/cmvn_global.stats`, as the ASR Baseline; "
            "ASR -> SER with each fold's training frames' mean and variance, as the SER Baseline") in readme
    assert "Not computed" in readme  # no CKA without the baseline models


def test_a_row_that_differs_from_the_baseline_is_marked():
    from pyscripts.stats import PairedTest
    differs = PairedTest(0.05, 0.01, 0.09, 0.001, False, 100, 40, 1000)
    same = PairedTest(0.0, -0.02, 0.02, 0.8, False, 100, 40, 1000)
    assert tables.format_cell([20.0], differs) == "20.0 (1) *"
    assert tables.format_cell([20.0, 22.0], same) == "21.0 ± 1.4 (2)"
    assert tables.format_cell([], differs) == tables.MISSING


def test_rows_carry_the_95_percent_interval_of_their_first_seed(tmp_path):
    from pyscripts.transfer import figures
    setup = transfer_setup(exp_root=str(tmp_path / "exp"), ser_source="s.pt")
    # SER -> ASR: the run's interval, from its scoring's intervals.json (FER without one: null)
    _write_result(tmp_path / "exp/ser2asr/l3/decode_test", 20.0, 30.0)
    scoring = tmp_path / "exp/ser2asr/l3/decode_test/scoring"
    (scoring / "intervals.json").write_text(json.dumps({
        "method": "percentile bootstrap", "PER": {"estimate": 20.0, "low": 17.5, "high": 22.5},
        "FER": {"estimate": 30.0, "low": None, "high": None}}))
    asr_jobs = plan_direction("ser2asr", setup, [])
    assert tables.row_intervals("ser2asr", asr_jobs) == {"l3": {("PER", "test"): (17.5, 22.5)}}
    # ASR -> SER: the mean over folds. Fold 1 gets every utterance right, fold 2 every one wrong, so
    # every resample's mean E and UE is 50%: the interval is [50, 50]. Fold 2 has no Dev decisions yet.
    ser_jobs = plan_direction("asr2ser", setup, ["fold1", "fold2"])
    emotions = ("ang", "hap", "neu", "sad")
    for fold, right in (("fold1", True), ("fold2", False)):
        for subset in ("valid", "test") if right else ("test",):
            data = tmp_path / f"data/{fold}/{subset}"  # one speaker per fold and set: the resampling strata
            data.mkdir(parents=True)
            (data / "utt2spk").write_text("".join(f"{fold}_u{k} {fold}{subset}\n" for k in range(4)))
            d = tmp_path / f"exp/asr2ser/l4/{fold}/eval/{subset}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"E": 0.0 if right else 1.0, "UE": 0.0 if right else 1.0,
                                                        "data": str(data)}))
            (d / "decisions").write_text("".join(
                f"{fold}_u{k} {e} {e if right else emotions[(k + 1) % 4]} 0.1 0.2 0.3 0.4\n"
                for k, e in enumerate(emotions)))
    intervals = tables.row_intervals("asr2ser", ser_jobs)
    assert intervals == {"l4": {("E", "test"): (50.0, 50.0), ("UE", "test"): (50.0, 50.0)}}
    cells = tables.collect("asr2ser", ser_jobs)
    rendered = tables.render_intervals("asr2ser", cells, intervals)
    assert "| 4 | 0.0 | 50.0 [50.0, 50.0] | 0.0 | 50.0 [50.0, 50.0] |" in rendered
    assert "| Baseline | – | – | – | – |" in rendered
    asr_cells = tables.collect("ser2asr", asr_jobs)
    results = tables.results_json({"ser2asr": asr_cells}, None, {"ser2asr": tables.row_intervals("ser2asr", asr_jobs)})
    cell = results["ser2asr"]["l3"]["PER Test"]
    assert cell["interval95"] == {"value": 20.0, "low": 17.5, "high": 22.5}
    # The figure's error bar: the interval around the mean; the sd where there is none.
    assert figures.error_bar(cell) == pytest.approx((2.5, 2.5))
    assert figures.error_bar(results["ser2asr"]["l3"]["FER Test"]) == (0.0, 0.0)


def test_the_report_shows_the_joint_models_row_once_stage_13_ran(tmp_path):
    from pyscripts.transfer import report
    assert report.joint_section(tmp_path / "none.md") == "Not run yet (stage 13, `local/run_joint.sh`).\n"
    results = tmp_path / "results.md"
    results.write_text("# Joint ASR-SER ConvNet against the single-task baselines\n\nOne network.\n\n"
                       "| Task | Baseline | Joint |\n|---|---|---|\n| ASR | 14.5 | 15.0 |\n")
    section = report.joint_section(results)
    assert section.startswith(f"From `{results}`:\n\nOne network.")
    assert "| ASR | 14.5 | 15.0 |" in section and "# Joint" not in section


def test_the_tables_and_the_report_count_the_planned_runs_only(tmp_path, monkeypatch):
    """A sweep planned with --layers 3 --folds fold1: a Baseline fold outside the plan (stage 11 scored
    them all) is no run of the table, and the report counts the plan's trainings."""
    from pyscripts.transfer import report
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "exp"
    setup = transfer_setup(exp_root=str(exp), ser_source="s.pt", layers="3")
    for direction in ("ser2asr", "asr2ser"):
        write_jobs(plan_path(exp, direction), plan_direction(direction, setup, ["fold1"]))
    for fold, e in (("fold1", 0.25), ("fold2", 0.75)):
        d = exp / f"asr2ser/baseline/{fold}/eval/test"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"E": e, "UE": e}))
    out = tmp_path / "report"
    tables.main(["--exp-root", str(exp), "--paper-results", "", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["asr2ser"]["baseline"]["E Test"]["values"] == [25.0]
    assert "one run per fold (1 fold)" in (out / "tables.md").read_text()
    readme = report.write_report(out, exp).read_text()
    assert "ASR -> SER (target: IEMOCAP emotion recognition): 0 of 2 trainings finished" in readme
    assert "SER -> ASR (target: TIMIT phone recognition): 0 of 2 trainings finished" in readme
    assert "SER -> ASR with each training's own frames' mean and variance" in readme  # no stats planned
    with pytest.raises(DataError, match="plan not found: write the sweep's plans first"):
        report.write_report(out, tmp_path / "elsewhere")
