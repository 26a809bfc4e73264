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
