"""`./run.sh --corpus iemocap --ser-protocol NAME` on an IEMOCAP-layout tree (the tiny synthetic one, with
the tiny ConvNet profile): data prep, features and stage 11 under each of the other fold plans (the
paper's is the tiny recipe's own, tests/e2e/test_recipe.py)."""
import json

import pytest

from conftest import link_recipe, run_script
from pyscripts.kaldi.datadir import read_table


def metrics_of_decisions(path):
    """(E, UE, utterances) recomputed from an eval dir's `decisions` (`utt ref hyp scores...`): the share of
    wrong decisions, and 1 - the mean recall of the reference classes present."""
    pairs = [line.split()[1:3] for line in path.read_text().splitlines() if line.strip() and line[0] != "#"]
    recalls = [sum(h == r for r, h in pairs if r == c) / sum(r == c for r, _ in pairs) for c in {r for r, _ in pairs}]
    return sum(r != h for r, h in pairs) / len(pairs), 1 - sum(recalls) / len(recalls), len(pairs)


@pytest.mark.parametrize("protocol, num_folds", [("loso10", 10), ("superb", 5)])
def test_run_sh_scores_every_fold_of_a_protocol(tmp_path, tiny_iemocap, protocol, num_folds):
    work = link_recipe(tmp_path / "recipe")
    proc = run_script(["./run.sh", "--corpus", "iemocap", "--iemocap-root", tiny_iemocap, "--ser-protocol", protocol,
                       "--nnet-profile", "tiny", "--nj", "2", "--skip-setup", "true", "--stop-stage", "11"], cwd=work)
    assert "[11/13] SER" in proc.stderr + proc.stdout
    folds = [f"fold{k}" for k in range(1, num_folds + 1)]
    assert list(read_table(work / "data/iemocap/folds/plan")) == folds
    assert "convnet_ser_tiny.yaml" in (work / "exp/stamps/stage11").read_text()
    results = json.loads((work / "exp/ser/results.json").read_text())
    assert sorted(results["folds"]) == sorted(folds)
    for subset in ("valid", "test"):
        errors, unweighted = [], []
        for fold in folds:
            eval_dir = work / f"exp/ser/{fold}/eval/{subset}"
            metrics = json.loads((eval_dir / "metrics.json").read_text())
            e, ue, n = metrics_of_decisions(eval_dir / "decisions")
            assert (metrics["E"], metrics["UE"], metrics["utterances"]) == (pytest.approx(e), pytest.approx(ue), n)
            errors.append(metrics["E"])
            unweighted.append(metrics["UE"])
        assert results["mean"][subset]["E"] == pytest.approx(sum(errors) / num_folds)
        assert results["mean"][subset]["UE"] == pytest.approx(sum(unweighted) / num_folds)
        print(f"{protocol} {subset}: mean E {sum(errors) / num_folds:.3f} UE {sum(unweighted) / num_folds:.3f}")
        # The tiny ConvNet learns the synthetic emotions: mean UE well below chance (0.75 with 4 classes).
        assert results["mean"][subset]["UE"] < 0.65
    assert f"({num_folds} folds" in (work / "exp/ser/results.md").read_text()
