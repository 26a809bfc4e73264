"""The one training loop (pyscripts/nnet/loop.py) and its tasks: the joint model's input normalisation per
task (as each task's Baseline), the one command-line entry for both kinds of config, and the shape of the
nnet package (no import circles, no function over 60 lines)."""
import ast
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyscripts.nnet import joint_train
from pyscripts.nnet.data import load_frame_set, norm_stats_from_cmvn, norm_stats_from_frames
from pyscripts.nnet.forward import _heads_by_normalisation, log_posteriors, network_log_posteriors
from pyscripts.nnet.joint import load_joint_package, write_view
from pyscripts.nnet.train import main as train_main
from nnet_fixtures import write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
NARROW = ["model.conv1_channels=8", "model.conv2_channels=16", "model.fc_dim=64", "training.batch_size=64",
          "training.max_epochs=1", "training.frames_per_epoch=640"]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    write_split(root / "asr_train", root / "asr_train_tg", 12, 6, seed=1)
    write_split(root / "asr_dev", root / "asr_dev_tg", 4, 6, seed=2)
    write_split(root / "ser_train", root / "ser_train_tg", 12, 5, seed=3)
    write_split(root / "ser_dev", root / "ser_dev_tg", 4, 5, seed=4)
    # global CMVN stats unlike the ASR training frames' own (as those of a larger training set would be)
    feats = np.random.default_rng(5).normal(3.0, 2.5, size=(800, 40))
    stats = np.zeros((2, 41))
    stats[0, :40], stats[0, 40], stats[1, :40] = feats.sum(0), len(feats), (feats ** 2).sum(0)
    kaldiio.save_mat(str(root / "cmvn_global.stats"), stats)
    dirs = [str(root / f"{h}_{s}") for h in ("asr", "ser") for s in ("train", "dev", "train_tg", "dev_tg")]
    return root, dirs


def _train(root, dirs, name, *extra):
    exp = root / name
    train_main(["--config", str(REPO / "conf/convnet_joint_tiny.yaml"), "--device", "cpu",
                *[f"--set={kv}" for kv in NARROW], *extra, *dirs, str(exp)])
    return exp


def test_joint_model_normalises_each_task_as_its_baseline(corpora, capsys):
    """ASR input with the global CMVN stats (as stage 9's Baseline), SER input with its training frames'
    statistics (as stage 11's); each single-task view carries its head's normalisation."""
    root, dirs = corpora
    exp = _train(root, dirs, "per_task", "--cmvn-stats", str(root / "cmvn_global.stats"))
    model, package = load_joint_package(exp / "final.pt")
    asr_mean, asr_std = norm_stats_from_cmvn(root / "cmvn_global.stats")
    ser_mean, ser_std = norm_stats_from_frames(load_frame_set(dirs[4], dirs[6])[0].feats)
    assert torch.equal(model.feat_mean[0], asr_mean) and torch.equal(model.feat_std[0], asr_std)
    assert torch.equal(model.feat_mean[1], ser_mean) and torch.equal(model.feat_std[1], ser_std)
    assert package["config"]["data"]["cmvn_stats"] == str(root / "cmvn_global.stats")
    feats = np.random.default_rng(0).normal(8, 2, size=(30, 40)).astype(np.float32)
    both = network_log_posteriors(model, feats)   # one trunk pass per normalisation
    assert len(_heads_by_normalisation(model)) == 2
    for head, (mean, _) in (("asr", (asr_mean, asr_std)), ("ser", (ser_mean, ser_std))):
        view = write_view(exp / "final.pt", head, root / f"view_{head}")
        assert torch.equal(torch.load(view, weights_only=True)["state_dict"]["feat_mean"], mean)
        np.testing.assert_allclose(log_posteriors(view, feats), both[head], atol=1e-5)
    # The CMVN stats are an input of final.stamp: other stats make the model out of date.
    stamp = dict(line.split(None, 1) for line in (exp / "final.stamp").read_text().splitlines())
    assert stamp["cmvn_stats"] != "none" and "asr_train_feats" in stamp
    kaldiio.save_mat(str(root / "other.stats"), np.abs(np.random.default_rng(6).normal(size=(2, 41))) + 1)
    train_main(["--config", str(REPO / "conf/convnet_joint_tiny.yaml"), "--check", "--cmvn-stats",
                str(root / "other.stats"), *[f"--set={kv}" for kv in NARROW], *dirs, str(exp)])
    assert "changed since it was trained: config, cmvn_stats" in capsys.readouterr().out


def test_mixture_normalisation_keeps_one_pass(corpora):
    """joint.normalise mixture: the one normalisation of both corpora's mixture (the model before the
    per-task normalisation), so one trunk pass serves both heads."""
    root, dirs = corpora
    exp = _train(root, dirs, "mixture", "--set=joint.normalise=mixture")
    model, _ = load_joint_package(exp / "final.pt")
    train = {h: load_frame_set(dirs[4 * i], dirs[4 * i + 2])[0].feats for i, h in enumerate(("asr", "ser"))}
    mean, std = joint_train.mixture_norm_stats(train, {"asr": 0.5, "ser": 0.5})   # ser_fraction 0.5
    assert all(torch.equal(model.feat_mean[i], mean) and torch.equal(model.feat_std[i], std) for i in (0, 1))
    assert list(_heads_by_normalisation(model)) == [("asr", "ser")]


def _refusal(argv, capsys):
    """The error message of a command line that the entry refuses (exit status 1)."""
    with pytest.raises(SystemExit) as err:
        train_main(argv)
    assert err.value.code == 1
    return capsys.readouterr().err


def test_one_entry_checks_the_arguments_for_the_config(corpora, capsys):
    root, dirs = corpora
    joint, single = str(REPO / "conf/convnet_joint_tiny.yaml"), str(REPO / "conf/convnet_asr_tiny.yaml")
    out = str(root / "x")
    assert "joint config: it takes 9" in _refusal(["--config", joint, *dirs[:4], out], capsys)
    assert "single-task config: it takes 5" in _refusal(["--config", single, *dirs, out], capsys)
    assert "starts from scratch" in _refusal(["--config", joint, "--init-from", "a.pt", *dirs, out], capsys)
    # the frozen-layer range is checked in one place, the config's schema, also for the command line's value
    assert "init.freeze_layers is 7; expected a value 0..5" in _refusal(
        ["--config", single, "--init-from", "a.pt", "--freeze-layers", "7", *dirs[:4], out], capsys)


# ---------------------------------------------------------------- the package's shape
TRAINING_MODULES = ("train", "joint_train", "joint", "loop", "epoch", "checkpoints", "config", "data", "device",
                    "trunk_cache", "forward", "model")


def _nnet_modules():
    return {p.stem: ast.parse(p.read_text()) for p in (REPO / "pyscripts/nnet").glob("*.py")}


def _imports(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nnet_imports_no_circle_and_nothing_above_it():
    """Every import, also those inside functions: the nnet modules form no circle, and none of the training's
    reaches up into the recipe's result makers (asr/, ser/, transfer/)."""
    modules = _nnet_modules()
    graph = {m: {i.split(".")[2] for i in _imports(t) if i.startswith("pyscripts.nnet.") and i.split(".")[2] in modules}
             for m, t in modules.items()}
    above = ("pyscripts.asr", "pyscripts.ser", "pyscripts.transfer")
    for m in TRAINING_MODULES:
        assert not any(i.startswith(above) for i in _imports(modules[m])), m

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph[start])
    assert [m for m in graph if reaches(m, m)] == []


def test_no_function_in_nnet_is_over_60_lines():
    long = [f"{m}.{n.name}: {n.end_lineno - n.lineno + 1}" for m, t in _nnet_modules().items()
            for n in ast.walk(t) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []
