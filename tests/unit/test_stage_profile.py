"""The per-stage profile (pyscripts/bench/stage_profile.py) of run.sh's stage_times.tsv."""
import pytest

from pyscripts.bench.stage_profile import profile
from pyscripts.errors import DataError


def test_latest_run_of_each_stage(tmp_path):
    (tmp_path / "stage_times.tsv").write_text("2\t5\t2026-01-01T10:00:00\n4\t30\t2026-01-01T10:01:00\n"
                                              "4\t28\t2026-01-01T11:00:00\n")
    result = profile(tmp_path)
    assert result["stages"] == {2: {"seconds": 5, "finished": "2026-01-01T10:00:00"},
                                4: {"seconds": 28, "finished": "2026-01-01T11:00:00"}}
    assert result["total_seconds"] == 33


def test_bad_lines_and_no_file_are_errors(tmp_path):
    with pytest.raises(DataError, match="no stage times"):
        profile(tmp_path)
    (tmp_path / "stage_times.tsv").write_text("4 thirty\n")
    with pytest.raises(DataError, match="stage_times.tsv:1"):
        profile(tmp_path)


def _summary(exp, rel, seconds, epochs=4):
    (exp / rel).mkdir(parents=True)
    (exp / rel / "train_summary").write_text(f"started=2026-01-01T10:00:00\nseconds={seconds}\nepochs={epochs}\n")


def test_trainings_largest_first_and_summed_per_experiment(tmp_path):
    (tmp_path / "stage_times.tsv").write_text("11\t90\t2026-01-01T10:00:00\n")
    _summary(tmp_path, "ser/fold1", 20.5)
    _summary(tmp_path, "ser/fold2", 30.0)
    _summary(tmp_path, "transfer/asr2ser/l0/fold1", 40.0)
    _summary(tmp_path, "convnet_asr", 35, epochs=12)
    (tmp_path / "ser" / "fold3").mkdir()  # unfinished: no summary, not listed
    result = profile(tmp_path)
    assert [t["dir"] for t in result["trainings"]] == ["transfer/asr2ser/l0/fold1", "convnet_asr", "ser/fold2",
                                                      "ser/fold1"]
    assert result["trainings"][1] == {"dir": "convnet_asr", "seconds": 35.0, "epochs": 12,
                                      "started": "2026-01-01T10:00:00"}
    assert result["training_seconds"] == {"ser": 50.5, "transfer/asr2ser/l0": 40.0, "convnet_asr": 35.0}


def test_a_broken_summary_is_named(tmp_path):
    (tmp_path / "stage_times.tsv").write_text("11\t90\t2026-01-01T10:00:00\n")
    (tmp_path / "ser").mkdir()
    (tmp_path / "ser" / "train_summary").write_text("seconds=soon\n")
    with pytest.raises(DataError, match="ser/train_summary: not a training summary"):
        profile(tmp_path)
