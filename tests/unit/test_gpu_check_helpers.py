"""The computing half of the GPU check (pyscripts/bench/gpu_check.py) on hand-made inputs: the tolerance
from the CPU seeds' spread, the trunk-cache verdict, the wheels' dependencies, the report of the steps."""
import json
import zipfile

import pytest

from pyscripts.bench import gpu_check
from pyscripts.errors import DataError

REF = {"fer_dev": 90.0, "fer_test": 88.0, "per_dev": 80.0, "per_test": 85.0}


def _reference():
    seeds = [{"fer_dev": 84.0, "fer_test": 88.5, "per_dev": 81.0, "per_test": 85.0},
             {"fer_dev": 91.0, "fer_test": 87.0, "per_dev": 77.5, "per_test": 86.0}]
    return gpu_check.reference([{**REF, "train_device": "cpu", "arithmetic": "float32"}, *seeds])


def test_the_tolerance_is_the_furthest_seed_plus_the_margin():
    ref = _reference()
    assert ref["spread"] == {"fer_dev": 6.0, "fer_test": 1.0, "per_dev": 2.5, "per_test": 1.0}
    assert gpu_check.tolerances(ref, 2.0) == {"fer_dev": 8.0, "fer_test": 3.0, "per_dev": 4.5, "per_test": 3.0}
    inside = gpu_check.compare(ref, {"fer_dev": 82.5, "fer_test": 90.0, "per_dev": 84.0, "per_test": 82.0}, 2.0)
    assert inside["ok"] and inside["difference"]["fer_dev"] == -7.5
    outside = gpu_check.compare(ref, {**REF, "per_test": 88.5}, 2.0)
    assert not outside["ok"] and outside["within"] == {"fer_dev": True, "fer_test": True, "per_dev": True,
                                                       "per_test": False}


def test_without_other_seeds_the_margin_alone_is_the_tolerance():
    ref = gpu_check.reference([REF])
    assert gpu_check.tolerances(ref, 2.0) == dict.fromkeys(gpu_check.METRICS, 2.0)


def _training(fer, cached):
    return {"exp_dir": "exp/t", "dev_fer": fer, "trunk_cached": cached, "seconds": 1.0,
            "peak_gpu_memory_mib": 10, "peak_rss_mib": 100}


def test_the_trunk_check_wants_the_cache_used_only_where_asked():
    ref = _reference()
    assert gpu_check.trunk_check(ref, _training(85.0, True), _training(86.0, False), 2.0)["ok"]
    unused = gpu_check.trunk_check(ref, _training(85.0, False), _training(85.0, False), 2.0)
    assert not unused["ok"] and "not cached" in unused["problems"][0]
    assert not gpu_check.trunk_check(ref, _training(85.0, True), _training(85.0, True), 2.0)["ok"]
    far = gpu_check.trunk_check(ref, _training(70.0, True), _training(85.0, False), 2.0)
    assert not far["ok"] and far["dev_fer_difference"] == -15.0


def _wheel(path, name, requires):
    with zipfile.ZipFile(path, "w") as archive:
        meta = [f"Name: {name}", "Version: 1.0"] + [f"Requires-Dist: {r}" for r in requires]
        archive.writestr(f"{name.replace('-', '_')}-1.0.dist-info/METADATA", "\n".join(meta) + "\n")
    return path


def test_wheel_requirements_must_be_bundled_or_in_the_image(tmp_path):
    wheels = [_wheel(tmp_path / "a.whl", "kaldi-hmm-gmm", ["graphviz", "kaldifst", "numpy",
                                                          'pytest; extra == "test"']),
              _wheel(tmp_path / "b.whl", "kaldifst", []),
              _wheel(tmp_path / "c.whl", "kaldingram", ["tqdm>=4.0", "Some_Thing (>=2)"])]
    needs = gpu_check.wheel_requirements(wheels)
    assert needs["kaldi-hmm-gmm"] == ["graphviz", "kaldifst", "numpy"]  # extras left out
    assert gpu_check.unmet_requirements(needs) == [("kaldingram", "some-thing")]


def test_the_train_log_names_the_device_and_arithmetic(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log/train.log").write_text(
        "2026-01-01 10:00:00,000 pyscripts.nnet.device INFO: arithmetic: torch.bfloat16 autocast on cuda:0 "
        "(training.amp auto)\n2026-01-01 10:00:00,001 train INFO: model: 7572432 parameters (7572432 "
        "trainable), 144 targets, device cuda:0\n")
    assert gpu_check._train_log_facts(tmp_path) == {"train_device": "cuda:0",
                                                    "arithmetic": "torch.bfloat16 autocast"}
    with pytest.raises(DataError, match="no fer_dev"):
        gpu_check.run_results(tmp_path, "cuda")


def test_the_report_lists_the_steps_and_gathers_their_json(tmp_path):
    (tmp_path / "steps.tsv").write_text("wheels\t1\t2\nbuild\t0\t5\n")
    (tmp_path / "json").mkdir()
    (tmp_path / "json/build.json").write_text(json.dumps({"torch": "2.11.0"}))
    (tmp_path / "json/bench.json").write_text("{\"cut off")
    result = gpu_check.report(tmp_path / "steps.tsv", tmp_path / "json", {"dry_run": True})
    assert not result["ok"] and result["failed"] == ["wheels"] and result["dry_run"] is True
    assert result["build"] == {"torch": "2.11.0"} and "error" in result["bench"]
    assert result["steps"][1] == {"name": "build", "ok": True, "rc": 0, "seconds": 5}
    assert "wheels FAILED" in gpu_check.summary_lines(result)[0]
