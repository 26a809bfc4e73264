"""What a person sees (issue 27): progress lines in job logs, run.pl's console heartbeat, stage titles
[k/13], the pictures (training curves, SER confusion heatmap, transfer panels, filters) and the shared
venv of path.sh."""
import json
import logging
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import RECIPE, run_script
from pyscripts import progress
from pyscripts.errors import DataError
from pyscripts.kaldi.datadir import write_table
from pyscripts.nnet import curves
from pyscripts.ser import evaluate
from pyscripts.ser.heatmap import plot_confusions, row_shares
from pyscripts.transfer import figures, tables
from test_hybrid_decode import graph, noisy_set  # noqa: F401  (fixtures)
from test_ser_evaluate import write_scoring_fixture

RUN_PL = RECIPE / "utils/run.pl"


def png_written(path):
    data = Path(path).read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


# ---------------------------------------------------------------- progress lines
class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_line_every_interval_with_rate_and_time_left(caplog):
    clock = FakeClock()
    p = progress.Progress("decode job 3", 400, every=60, clock=clock, logger=logging.getLogger("t"))
    with caplog.at_level(logging.INFO, logger="t"):
        clock.now += 30
        assert not p.update(50)          # not due yet
        clock.now += 30
        assert p.update(100, "2000 frames")
        clock.now += 10
        assert not p.update(110)         # the next one is 60 s after the last
    assert caplog.messages == ["decode job 3: 100 of 400 utterances (25%), 1.7 utterances/s, 3 min left; 2000 frames"]


def test_progress_without_total_and_switched_off():
    clock = FakeClock()
    p = progress.Progress("scoring", None, unit="frames", every=0, clock=clock)
    clock.now += 4
    assert p.line(1000) == "scoring: 1000 frames, 250 frames/s"
    clock.now += 1000
    assert not p.due() and not p.update(2000)   # every=0: never
    assert progress.duration(45) == "45 s" and progress.duration(750) == "12 min"
    assert progress.duration(7500) == "2 h 05 min"


def test_decode_log_has_progress_lines(graph, noisy_set, tmp_path, monkeypatch, caplog):  # noqa: F811
    from pyscripts.asr.decode import decode_matrices
    _, mats, _ = noisy_set
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 1e-9)   # a line after every utterance
    with caplog.at_level(logging.INFO, logger="pyscripts.asr.decode"):
        decode_matrices(graph["graph"] / "HCLG.fst", graph["mdl"], sorted(mats.items()), tmp_path, 2)
    lines = [m for m in caplog.messages if m.startswith("decode job 2: ")]
    assert len(lines) == len(mats)
    assert f"{len(mats)} of {len(mats)} utterances (100%)" in lines[-1] and "frames, RTF" in lines[-1]


def test_ser_scoring_log_has_progress_lines(tmp_path, monkeypatch, caplog):
    utts = {f"u{k}": ("ang", [0, 0, 4]) for k in range(3)}
    data, targets = write_scoring_fixture(tmp_path, utts)
    post = np.log(np.array([[0.7, 0.1, 0.1, 0.1, 1e-6]] * 3))
    monkeypatch.setattr(evaluate, "_forward", lambda models, data_dir: lambda feats: [post])
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 1e-9)
    with caplog.at_level(logging.INFO, logger="pyscripts.ser.evaluate"):
        evaluate.score_set("model.pt", data, targets, tmp_path / "out")
    lines = [m for m in caplog.messages if m.startswith(f"scoring {data}: ")]
    assert [m.split(": ")[1].split(" (")[0] for m in lines] == ["1 of 3 utterances", "2 of 3 utterances",
                                                                "3 of 3 utterances"]


# ---------------------------------------------------------------- run.pl's heartbeat
JOB = ("echo '2026-01-01 10:00:00,123 pyscripts.asr.decode INFO: decode job JOB: 3 of 9 utterances (33%), "
       "1.5 utterances/s, 4 s left'; sleep 1.5")


def test_run_pl_heartbeat_shows_each_running_jobs_last_progress_line(tmp_path):
    proc = run_script([RUN_PL, "JOB=1:2", "log/d.JOB.log", "bash", "-c", JOB], cwd=tmp_path,
                      env={"RUN_PL_HEARTBEAT": "0.5"})
    beats = [line for line in proc.stderr.splitlines() if line.startswith("run.pl: ")]
    assert beats, proc.stderr
    assert "0 of 2 jobs done (JOB=1:2), logs like log/d.1.log; JOB=1: 10:00:00 decode job 1: 3 of 9 " \
           "utterances (33%)" in beats[0]
    assert "JOB=2: 10:00:00 decode job 2: 3 of 9" in beats[0]
    assert (tmp_path / "log/d.2.log").read_text().rstrip().splitlines()[-1].startswith("# Ended (code 0)")


def test_run_pl_heartbeat_single_job_and_off(tmp_path):
    proc = run_script([RUN_PL, "log/s.log", "sleep", "1"], cwd=tmp_path, env={"RUN_PL_HEARTBEAT": "0.3"})
    assert "no progress line yet (log log/s.log)" in proc.stderr
    quiet = run_script([RUN_PL, "log/q.log", "sleep", "1"], cwd=tmp_path, env={"RUN_PL_HEARTBEAT": "0"})
    assert quiet.stderr == ""
    bad = run_script([RUN_PL, "log/b.log", "true"], cwd=tmp_path, check=False, env={"RUN_PL_HEARTBEAT": "soon"})
    assert bad.returncode == 1 and "RUN_PL_HEARTBEAT='soon'" in bad.stderr


# ---------------------------------------------------------------- stage titles, path.sh's VENV
def stage_title(tmp_path, last_stage):
    script = (f'. "{RECIPE}/utils/log.sh"; . "{RECIPE}/utils/stage.sh"; RECIPE_LOCK_FD=none; '
              f'stage=1 stop_stage=13 {last_stage} stage_selected 4 "features"')
    return run_script(["bash", "-c", script], cwd=tmp_path).stdout.strip()


def test_stage_titles_count_the_stages(tmp_path):
    assert stage_title(tmp_path, "last_stage=13").endswith(": [4/13] features")
    assert stage_title(tmp_path, "").endswith(": stage 4: features")   # a script with no stage count


def test_path_sh_activates_venv_when_set(tmp_path):
    venv = tmp_path / "shared venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/activate").write_text('PATH="$VENV/bin:$PATH"; export PATH\n')
    (venv / "bin/python3").write_text("#!/bin/sh\necho fake\n")
    (venv / "bin/python3").chmod(0o755)
    env = {**os.environ, "VENV": str(venv)}
    out = subprocess.run(["bash", "-c", f'. "{RECIPE}/path.sh" && command -v python3'], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == str(venv / "bin/python3"), out.stderr
    env["VENV"] = str(tmp_path / "none")
    out = subprocess.run(["bash", "-c", f'. "{RECIPE}/path.sh" || echo refused'], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "refused" and "has no bin/activate" in out.stderr


# ---------------------------------------------------------------- pictures
def test_training_curves_png_beside_history(tmp_path):
    rows = ["epoch\tlr\ttrain_loss\ttrain_fer\tdev_loss\tdev_fer\ttrain_seconds"]
    rows += [f"{e}\t{0.02 / 2 ** max(0, e - 3)}\t{2 / e}\t{0.5 / e}\t{2.2 / e + 0.1 * (e == 4)}\t{0.6 / e}\t1.5"
             for e in range(1, 6)]
    (tmp_path / "history.tsv").write_text("\n".join(rows) + "\n")
    curves.main([str(tmp_path)])
    assert png_written(tmp_path / "curves.png")
    assert curves.best_epoch(curves.read_history(tmp_path / "history.tsv")) == 5


def test_joint_training_curves_and_bad_history(tmp_path):
    head = "\t".join(["epoch", "lr", "dev_metric", "asr_train_loss", "asr_train_fer", "asr_dev_loss", "asr_dev_fer",
                      "ser_train_loss", "ser_dev_loss"])
    (tmp_path / "history.tsv").write_text(f"{head}\n1\t0.02\t6.1\t5.2\t0.95\t5.0\t0.93\t1.4\t1.1\n"
                                          "2\t0.02\t5.9\t5.0\t0.9\t4.8\t0.9\t1.2\t1.1\n")
    history = curves.read_history(tmp_path / "history.tsv")
    assert [k for k, _, _ in curves._series(history, "_loss")] == ["asr_train_loss", "asr_dev_loss",
                                                                   "ser_train_loss", "ser_dev_loss"]
    assert curves.best_epoch(history) == 2
    curves.plot_curves(history, tmp_path / "joint.png")
    assert png_written(tmp_path / "joint.png")
    (tmp_path / "bad.tsv").write_text("epoch\tlr\n1\tfast\n")
    with pytest.raises(DataError, match="bad.tsv line 2: column lr is 'fast'"):
        curves.read_history(tmp_path / "bad.tsv")


def test_tensorboard_option_fails_clearly_without_the_package(tmp_path):
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    with pytest.raises(DataError, match="tensorboard package is not installed"):
        curves.write_tensorboard({"epoch": [1.0], "lr": [0.1]}, tmp_path / "tb")


def test_confusion_heatmap_from_the_ser_summary(tmp_path):
    folds = []
    for k in (1, 2):
        for subset in ("valid", "test"):
            d = tmp_path / f"fold{k}" / "eval" / subset
            d.mkdir(parents=True)
            cm = [[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 4, 0], [1, 0, 0, 3]]
            d.joinpath("metrics.json").write_text(json.dumps(
                {"E": 0.25, "UE": 0.25, "utterances": 16, "rule": "mean", "data": str(tmp_path), "confusion": cm}))
        folds.append(tmp_path / f"fold{k}")
    write_table(tmp_path / "utt2spk", {"u1": "Ses01F"})
    evaluate.write_summary(folds, tmp_path / "out")
    assert png_written(tmp_path / "out/confusion.png")
    assert row_shares(np.array([[3, 1], [0, 0]])).tolist() == [[0.75, 0.25], [0.0, 0.0]]
    with pytest.raises(ValueError, match="3 classes"):
        plot_confusions({"Dev": np.eye(2)}, ["a", "b", "c"], tmp_path / "x.png")


def transfer_results(baseline_runs, row_runs):
    cells = tables.collect("asr2ser", [])
    for col in tables.COLUMNS["asr2ser"]:
        cells["baseline"][col] = {1: [50.0 + k for k in range(baseline_runs)]}
        for layers in range(6):
            cells[f"l{layers}"][col] = {1: [45.0 + layers] * row_runs}
    return tables.results_json({"asr2ser": cells})["asr2ser"]


def test_transfer_figure_has_a_panel_per_metric_and_says_when_runs_differ(tmp_path):
    one_fold = transfer_results(8, 1)
    fig, drawn, _ = figures.transfer_figure("asr2ser", one_fold)
    assert drawn == 4 and len([ax for ax in fig.axes if ax.get_visible()]) == 4
    assert "1 fold, the Baseline on 8" in fig._suptitle.get_text()
    assert "8 folds" in [t.get_text() for t in fig.axes[0].texts][-1]
    assert figures.unequal_runs("asr2ser", transfer_results(8, 8)) == ""
    assert figures.plot_transfer("asr2ser", one_fold, tmp_path / "t.png") == (4, 0)
    assert png_written(tmp_path / "t.png")


def test_filters_png_has_a_colour_bar(tmp_path):
    import torch
    net = SimpleNamespace(layer1=[torch.nn.Conv2d(1, 16, (5, 4))])
    figures.plot_filters({"ASR": net, "SER": net}, tmp_path / "filters.png")
    assert png_written(tmp_path / "filters.png")
