"""`./run.sh --corpus iemocap --ser-protocol NAME` on an IEMOCAP-layout tree (the tiny synthetic one, with
the tiny ConvNet profile): data prep, features and stage 11 under each of the other fold plans (the
paper's is the tiny recipe's own, tests/e2e/test_recipe.py)."""
import json

import pytest

from conftest import link_recipe, run_script
from pyscripts.kaldi.datadir import read_table


@pytest.mark.parametrize("protocol, num_folds", [("loso10", 10), ("superb", 5)])
def test_run_sh_scores_every_fold_of_a_protocol(tmp_path, tiny_iemocap, protocol, num_folds):
    work = link_recipe(tmp_path / "recipe")
    proc = run_script(["./run.sh", "--corpus", "iemocap", "--iemocap-root", tiny_iemocap, "--ser-protocol", protocol,
                       "--nnet-profile", "tiny", "--nj", "2", "--skip-setup", "true", "--stop-stage", "11"], cwd=work)
    assert "stage 11: SER" in proc.stderr + proc.stdout
    folds = [f"fold{k}" for k in range(1, num_folds + 1)]
    assert list(read_table(work / "data/iemocap/folds/plan")) == folds
    assert "convnet_ser_tiny.yaml" in (work / "exp/stamps/stage11").read_text()
    results = json.loads((work / "exp/ser/results.json").read_text())
    assert sorted(results["folds"]) == sorted(folds)
    for subset in ("valid", "test"):
        errors = []
        for fold in folds:
            metrics = json.loads((work / f"exp/ser/{fold}/eval/{subset}/metrics.json").read_text())
            assert 0 <= metrics["E"] <= 1 and 0 <= metrics["UE"] <= 1
            errors.append(metrics["E"])
        assert results["mean"][subset]["E"] == pytest.approx(sum(errors) / num_folds)
    assert f"({num_folds} folds" in (work / "exp/ser/results.md").read_text()
