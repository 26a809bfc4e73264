"""The GPU check, on the CPU: local/gpu_bundle.sh makes a bundle that holds all that stages 9-10 read (and
the wheels, small enough to travel), and local/gpu_check.sh --dry-run true runs every step from it and
reports them in one JSON; a failing step is reported and the next one still runs."""
import json
import re
import shutil

import pytest
import torch

from conftest import RECIPE, run_script

TRAVEL_LIMIT = 64 * 2**20  # the device tool's: the repository's files and the bundle together
STEPS = ["wheels", "build", "bench", "recipe", "trunk"]
METRICS = ["fer_dev", "fer_test", "per_dev", "per_test"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, corpus_cache, tiny_timit, tiny_iemocap):
    work = tmp_path_factory.mktemp("gpu_bundle")
    run_script([RECIPE / "local/gpu_bundle.sh", "--out", work / "gpu_bundle", "--seeds", 1, "--nj", 2,
                "--corpus-dir", corpus_cache, "--work-dir", work / "scratch"], cwd=RECIPE)
    return work / "gpu_bundle"


def _size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_the_bundle_holds_the_wheels_and_stage_8_outputs(bundle):
    info = json.loads((bundle / "bundle.json").read_text())
    assert _size(bundle) + info["bytes"]["repository"] < TRAVEL_LIMIT
    assert info["bytes"]["recipe"] < 5 * 2**20  # the tiny corpus: a few MB
    pins = re.findall(r"^(kaldi[\w-]*)==([\w.]+)", (RECIPE / "requirements.txt").read_text(), re.M)
    wheels = [w.name for w in (bundle / "wheels").glob("*.whl")]
    assert len(pins) == 9 and len(wheels) == len(pins)
    for name, version in pins:
        assert any(re.match(rf"{name.replace('-', '_')}-{version}-(cp312-cp312|py3-none)", w) for w in wheels), name
    recipe = bundle / "recipe"
    for path in ("data/timit/train/cmvn_global.stats", "exp/mono/final.mdl", "exp/mono/graph/HCLG.fst",
                 "exp/mono_ali_dev/targets/num_targets"):
        assert (recipe / path).is_file(), path
    for scp in list(recipe.glob("data/timit/*/feats.scp")) + list(recipe.glob("exp/*/targets/targets.scp")):
        for line in scp.read_text().splitlines():  # relative to the recipe dir, wherever it lands
            ark = line.split()[1].rsplit(":", 1)[0]
            assert not ark.startswith("/") and (recipe / ark).is_file(), f"{scp}: {line}"
    reference = json.loads((bundle / "reference.json").read_text())
    assert reference["train_device"] == "cpu" and len(reference["seeds"]) == 1
    assert all(0 < reference["reference"][m] <= 100 for m in METRICS)


def test_the_dry_run_runs_every_step_and_reports_it(bundle, tmp_path):
    out = tmp_path / "out"
    run_script([RECIPE / "local/gpu_check.sh", "--dry-run", "true", "--bundle", bundle, "--out", out,
                "--work-dir", tmp_path / "work"], cwd=RECIPE)
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["ok"] and result["dry_run"] is True and result["failed"] == []
    assert [s["name"] for s in result["steps"]] == STEPS and all(s["ok"] for s in result["steps"])
    build = result["build"]
    assert build["torch"] == torch.__version__ and build["device"] == "cpu" and build["ok"]
    assert all("version" in m for m in build["modules"].values())
    bench = result["bench"]
    assert bench["recipe_batch_size"] == 256 and [r["batch_size"] for r in bench["runs"]] == [256]
    assert bench["epochs"][0]["batch_size"] == 256 and bench["amp_dtype"] == build["amp_dtype"]
    assert result["recipe"]["train_device"] == "cpu"
    compare = result["compare"]
    assert compare["ok"] and set(compare["tolerance"]) == set(METRICS)
    # A CPU run of the reference's seed and config: the same model (training.deterministic of the tiny config).
    assert compare["run"] == compare["reference"]
    trunk = result["trunk"]
    assert trunk["ok"] and trunk["cached"]["trunk_cached"] and not trunk["uncached"]["trunk_cached"]
    assert trunk["cached"]["dev_fer"] == trunk["uncached"]["dev_fer"]
    assert trunk["cached"]["peak_rss_mib"] > 0 and trunk["cached"]["peak_gpu_memory_mib"] is None
    for name in ("bench.json", "gpu_check.log", "steps.log", "logs.tar.gz"):
        assert (out / name).stat().st_size > 0, name
    assert "gpu check: all steps passed" in (out / "gpu_check.log").read_text()


def test_a_failed_step_is_reported_and_the_next_one_runs(bundle, tmp_path):
    broken = tmp_path / "no_wheels"
    shutil.copytree(bundle, broken, ignore=shutil.ignore_patterns("wheels"))
    out = tmp_path / "out"
    proc = run_script([RECIPE / "local/gpu_check.sh", "--dry-run", "true", "--bundle", broken, "--out", out,
                       "--work-dir", tmp_path / "work", "--steps", "wheels,build"], cwd=RECIPE, check=False)
    assert proc.returncode == 1 and "1 step(s) failed: wheels" in proc.stdout + proc.stderr
    result = json.loads((out / "gpu_check.json").read_text())
    assert not result["ok"] and result["failed"] == ["wheels"]
    assert [s["ok"] for s in result["steps"]] == [False, True] and result["build"]["ok"]
    assert "no wheels in" in (out / "steps.log").read_text()
