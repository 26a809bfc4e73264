"""The joint ASR-SER ConvNet (pyscripts/nnet/joint.py, joint_train.py) on small hand-made data: its two
heads on one trunk, the single-task views, packages, and a short mixed-batch training."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyscripts.errors import DataError
from pyscripts.joint_results import main as results_main
from pyscripts.nnet import joint_train
from pyscripts.nnet import loop as nnet_loop
from pyscripts.nnet.data import load_frame_set, norm_stats_from_frames
from pyscripts.nnet.forward import log_posteriors, network_log_posteriors
from pyscripts.nnet.joint import (JointConvNet, load_joint_package, main as joint_main, package_joint,
                                  view_package, write_view)
from pyscripts.nnet.model import ConvNet, freeze_layers, load_package
from pyscripts.nnet.train import main as train_main, make_optimizer, read_summary
from nnet_fixtures import write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
NARROW = ["model.conv1_channels=8", "model.conv2_channels=16", "model.fc_dim=64"]
SMALL = dict(conv1_channels=8, conv2_channels=16, fc_dim=64)


def small_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return JointConvNet({"asr": 7, "ser": 5}, **SMALL, **kwargs)


def windows(n, seed=1):
    return torch.randn(n, 1, 31, 40, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """An ASR-like task with 6 targets and an SER-like one with 5, each with train and dev splits."""
    root = tmp_path_factory.mktemp("joint")
    write_split(root / "asr_train", root / "asr_train_tg", 20, 6, seed=1)
    write_split(root / "asr_dev", root / "asr_dev_tg", 6, 6, seed=2)
    write_split(root / "ser_train", root / "ser_train_tg", 20, 5, seed=3)
    write_split(root / "ser_dev", root / "ser_dev_tg", 6, 5, seed=4)
    return root, {h: joint_train.Corpus(*(root / f"{h}_{s}" for s in ("train", "dev", "train_tg", "dev_tg")))
                  for h in ("asr", "ser")}


@pytest.fixture(scope="module")
def trained(corpora):
    """A narrow joint model after a short training on the tiny profile (3 epochs)."""
    root, data = corpora
    cfg = joint_train.load_joint_config(REPO / "conf/convnet_joint_tiny.yaml",
                                        NARROW + ["training.batch_size=64", "training.max_epochs=3"])
    return joint_train.train_joint(cfg, data, root / "exp", device="cpu"), cfg


# ---------------------------------------------------------------- the network
def test_two_heads_on_one_trunk():
    model = small_model().eval()
    out = model(windows(9))
    assert set(out) == {"asr", "ser"} and out["asr"].shape == (9, 7) and out["ser"].shape == (9, 5)
    # One set of layer 1..5 parameters, then one output layer per head; nothing else.
    names = [n for n, _ in model.named_parameters()]
    assert {n.split(".")[0] for n in names} == {"layer1", "layer2", "layer3", "layer4", "layer5", "heads"}
    trunk = sum(p.numel() for n in range(1, 6) for p in model.layer(n).parameters())
    single = ConvNet(7, **SMALL)
    assert trunk == sum(p.numel() for n in range(1, 6) for p in single.layer(n).parameters())
    assert sum(p.numel() for p in model.parameters()) == trunk + (64 * 7 + 7) + (64 * 5 + 5)
    # Both heads read the same trunk output.
    hidden = model.trunk(windows(9))
    assert torch.equal(out["asr"], model.heads["asr"](hidden)) and torch.equal(out["ser"], model.heads["ser"](hidden))


def test_views_share_the_trunk_and_give_the_joint_outputs():
    model = small_model().eval()
    x = windows(6)
    with torch.no_grad():
        joint = model(x)
        for head in ("asr", "ser"):
            view = model.view(head)
            assert isinstance(view, ConvNet) and view.num_targets == model.head_targets[head]
            assert view.layer3[0].weight is model.layer3[0].weight and view.layer6 is model.heads[head]
            # the view normalises as its head: its row of the joint model's normalisation, shared (not copied)
            i = list(model.head_targets).index(head)
            assert view.feat_mean.data_ptr() == model.feat_mean[i].data_ptr() and view.feat_mean.shape == (40,)
            assert torch.equal(view(x), joint[head])
    with pytest.raises(DataError, match="no head 'lm'"):
        model.view("lm")


def test_a_mixed_batch_sends_each_heads_frames_to_its_head_and_trains_both():
    model = small_model().eval()  # eval: no dropout, BatchNorm with fixed statistics
    x, split = windows(10), {"asr": 6, "ser": 4}
    out = model(x, split)
    assert out["asr"].shape == (6, 7) and out["ser"].shape == (4, 5)
    with torch.no_grad():
        assert torch.allclose(out["asr"], model(x[:6])["asr"], atol=1e-6)
        assert torch.allclose(out["ser"], model(x[6:])["ser"], atol=1e-6)
    ya, ys = torch.randint(7, (6,)), torch.randint(5, (4,))
    (F.cross_entropy(out["asr"], ya) + 0.5 * F.cross_entropy(out["ser"], ys)).backward()
    asr_grad, ser_grad = model.heads["asr"].weight.grad.clone(), model.heads["ser"].weight.grad.clone()
    assert asr_grad.abs().sum() > 0 and ser_grad.abs().sum() > 0 and model.layer1[0].weight.grad.abs().sum() > 0
    # Each head's gradient comes from its own frames only (and the SER loss carries its weight).
    model.zero_grad()
    F.cross_entropy(model(x[:6])["asr"], ya).backward()
    assert torch.allclose(model.heads["asr"].weight.grad, asr_grad, atol=1e-6)
    model.zero_grad()
    (0.5 * F.cross_entropy(model(x[6:])["ser"], ys)).backward()
    assert torch.allclose(model.heads["ser"].weight.grad, ser_grad, atol=1e-6)
    with pytest.raises(ValueError, match="does not cover"):
        model(x, {"asr": 6, "ser": 3})


def test_freezing_saving_and_loading_round_trip(tmp_path):
    model = small_model()
    freeze_layers(model, 3)
    model.train()
    assert not any(p.requires_grad for n in (1, 2, 3) for p in model.layer(n).parameters())
    assert all(p.requires_grad for n in (4, 5, 6) for p in model.layer(n).parameters())
    assert not model.layer2[1].training and model.layer4[1].training  # frozen BatchNorm keeps its statistics
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("layer1.", "layer2.", "layer3."))}
    optimizer = make_optimizer(model, {"name": "sgd", "lr": 0.1, "momentum": 0.9}, 1e-3)
    assert model.conv_kernels() == []
    out = model(windows(8), {"asr": 4, "ser": 4})
    loss = F.cross_entropy(out["asr"], torch.randint(7, (4,))) + F.cross_entropy(out["ser"], torch.randint(5, (4,)))
    loss.backward()
    optimizer.step()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())
    assert model.view("ser").frozen_layers == 3

    counts = {"asr": torch.arange(7), "ser": torch.arange(5)}
    dev = {"epoch": 1, "metric": 2.0, "asr": {"loss": 1.5, "fer": 0.5}, "ser": {"loss": 0.5, "fer": 0.25}}
    cfg = joint_train.load_joint_config(REPO / "conf/convnet_joint_tiny.yaml", NARROW)
    torch.save(package_joint(model, cfg, counts, 1, dev, []), tmp_path / "joint.pt")
    loaded, package = load_joint_package(tmp_path / "joint.pt")
    model.eval()
    x = windows(5)
    with torch.no_grad():
        assert all(torch.equal(loaded(x)[h], model(x)[h]) for h in ("asr", "ser"))
    assert package["head_targets"] == {"asr": 7, "ser": 5}
    assert torch.equal(package["prior_counts"]["ser"], counts["ser"])
    # A view package is an ordinary ConvNet package: the stages' loaders read it unchanged.
    view = view_package(package, "asr")
    assert view["dev"] == {"epoch": 1, "metric": 1.5, "loss": 1.5, "fer": 0.5}
    torch.save(view, tmp_path / "asr.pt")
    net, net_package = load_package(tmp_path / "asr.pt")
    with torch.no_grad():
        assert torch.equal(net(x), model(x)["asr"])
    assert torch.equal(net_package["prior_counts"], counts["asr"])
    with pytest.raises(DataError, match="joint ASR-SER model.*pyscripts.nnet.joint view"):
        load_package(tmp_path / "joint.pt")
    with pytest.raises(DataError, match="single-task ConvNet"):
        load_joint_package(tmp_path / "asr.pt")


# ---------------------------------------------------------------- configuration and batches
def test_configs_profiles_and_their_errors(tmp_path):
    for profile, network in (("", "asr"), ("_demo", "asr_demo"), ("_tiny", "asr_tiny")):
        cfg = joint_train.load_joint_config(REPO / f"conf/convnet_joint{profile}.yaml")
        base = joint_train.load_config(REPO / f"conf/convnet_{network}.yaml")
        assert cfg["model"] == base["model"] and cfg["optimizer"] == base["optimizer"]
        assert 0 < cfg["joint"]["ser_fraction"] < 1
    cfg = joint_train.load_joint_config(REPO / "conf/convnet_joint.yaml", ["joint.ser_weight=0.5", "optimizer.lr=0.1"])
    assert cfg["joint"]["ser_weight"] == 0.5 and cfg["optimizer"]["lr"] == 0.1
    for overrides, match in ((["joint.ser_fraction=1.0"], r"ser_fraction is 1.0; expected a value in \(0, 1\)"),
                             (["joint.weight=2"], "a key of the joint section"),
                             (["joint.normalise=global"], "normalise is 'global'; expected a value one of"),
                             (["joint.normalise=mixture", "data.cmvn_stats=x.stats"], "mixture normalises with both"),
                             (["init.freeze_layers=2", "init.from=x.pt"], "starts from scratch")):
        with pytest.raises(DataError, match=match):
            joint_train.load_joint_config(REPO / "conf/convnet_joint.yaml", overrides)
    (tmp_path / "bad.yaml").write_text("base: convnet_asr.yaml\n")
    with pytest.raises(DataError, match="expected the keys network"):
        joint_train.load_joint_config(tmp_path / "bad.yaml")
    assert joint_train.batch_split(256, 0.25) == {"asr": 192, "ser": 64}
    with pytest.raises(DataError, match="both need at least one"):
        joint_train.batch_split(2, 0.1)


def test_mixture_normalisation_and_epoch_orders():
    a, b = torch.randn(500, 3) * 2 + 5, torch.randn(500, 3) - 1
    mean, std = joint_train.mixture_norm_stats({"asr": a, "ser": b}, {"asr": 0.5, "ser": 0.5})
    ref_mean, ref_std = norm_stats_from_frames(torch.cat([a, b]))
    assert torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(std, ref_std, atol=1e-5)
    order = joint_train.head_order(10, 25, seed=1, epoch=2, stream=0)
    assert len(order) == 25 and sorted(order[:10].tolist()) == list(range(10))  # all frames, then more
    assert torch.equal(order, joint_train.head_order(10, 25, 1, 2, 0))
    assert not torch.equal(order, joint_train.head_order(10, 25, 1, 2, 1))
    train = {"asr": type("S", (), {"num_frames": 1000})(), "ser": type("S", (), {"num_frames": 100})()}
    assert joint_train.batches_per_epoch(train, {"asr": 48, "ser": 16}, None) == 21  # every ASR frame once
    assert joint_train.batches_per_epoch(train, {"asr": 48, "ser": 16}, 640) == 10


# ---------------------------------------------------------------- training and the command line
def test_short_joint_training_completes(corpora, trained):
    root, data = corpora
    final, cfg = trained
    model, package = load_joint_package(final)
    assert package["head_targets"] == {"asr": 6, "ser": 5} and package["config"]["joint"] == cfg["joint"]
    assert [h["epoch"] for h in package["history"]] == [1, 2, 3]
    first, last = package["history"][0], package["history"][-1]
    for head in ("asr", "ser"):
        assert last[f"{head}_train_loss"] < first[f"{head}_train_loss"]  # both heads learn
    summary = read_summary(root / "exp")
    assert summary["epochs"] == "3" and {"asr_dev_fer", "ser_dev_fer", "dev_value"} <= set(summary)
    assert (root / "exp/asr.prior_counts").is_file() and not (root / "exp/checkpoint.pt").exists()
    # Each head's input is normalised with its own training frames' statistics (no CMVN file given).
    for i, head in enumerate(("asr", "ser")):
        mean, std = norm_stats_from_frames(load_frame_set(data[head].train_data, data[head].train_targets)[0].feats)
        assert torch.equal(model.feat_mean[i], mean) and torch.equal(model.feat_std[i], std)
    # Up to date: a second call trains nothing.
    mtime = final.stat().st_mtime_ns
    assert joint_train.train_joint(cfg, data, root / "exp", device="cpu") == final
    assert final.stat().st_mtime_ns == mtime


def test_resume_after_a_kill_equals_an_uninterrupted_run(corpora, monkeypatch):
    """The joint training killed in the middle of its third epoch and run again resumes from checkpoint.pt
    and ends where an uninterrupted run ends: same history, same weights after epoch 3 and in final.pt."""
    root, data = corpora
    cfg = joint_train.load_joint_config(REPO / "conf/convnet_joint_tiny.yaml",
                                        NARROW + ["training.batch_size=64", "training.max_epochs=3",
                                                  "training.frames_per_epoch=1280", "model.dropout=0.3"])
    calls = {"n": 0}
    real_gather = joint_train.gather_windows

    def counting_gather(*args, **kwargs):   # twice per batch: its ASR and its SER frames
        calls["n"] += 1
        if calls["n"] == calls.get("kill_at"):
            raise KeyboardInterrupt("simulated kill")
        return real_gather(*args, **kwargs)

    monkeypatch.setattr(joint_train, "gather_windows", counting_gather)
    states, real_save = {}, nnet_loop.save_epoch

    def saving(exp_dir, cfg, trainee, state, *args, **kwargs):   # the weights after each epoch
        states[state["epoch"]] = {k: v.detach().clone() for k, v in trainee.model.state_dict().items()}
        return real_save(exp_dir, cfg, trainee, state, *args, **kwargs)

    monkeypatch.setattr(nnet_loop, "save_epoch", saving)
    uninterrupted = torch.load(joint_train.train_joint(cfg, data, root / "whole", device="cpu"), weights_only=True)
    last = states.pop(3)
    calls_per_epoch = calls["n"] // 3
    assert calls_per_epoch == 2 * (1280 // 64)
    calls.update(n=0, kill_at=2 * calls_per_epoch + calls_per_epoch // 2)
    with pytest.raises(KeyboardInterrupt):
        joint_train.train_joint(cfg, data, root / "killed", device="cpu")
    assert torch.load(root / "killed/checkpoint.pt", weights_only=True)["state"]["epoch"] == 2
    calls.update(n=0, kill_at=None)
    resumed = torch.load(joint_train.train_joint(cfg, data, root / "killed", device="cpu"), weights_only=True)
    assert calls["n"] == calls_per_epoch   # only epoch 3 was run again

    def untimed(history):
        return [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]
    assert untimed(resumed["history"]) == untimed(uninterrupted["history"])
    for weights, expected in ((resumed["state_dict"], uninterrupted["state_dict"]), (states[3], last)):
        assert weights.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(weights[key], value), key


def test_views_on_disk_and_one_pass_inference(corpora, trained, tmp_path):
    final, _ = trained
    feats = np.random.default_rng(0).normal(8, 2, size=(40, 40)).astype(np.float32)
    model, _ = load_joint_package(final)
    both = network_log_posteriors(model, feats)
    for head in ("asr", "ser"):
        path = write_view(final, head, tmp_path / head)
        assert (tmp_path / head / "prior_counts").is_file()
        np.testing.assert_allclose(log_posteriors(path, feats), both[head], atol=1e-5)


def test_command_line(corpora, trained, tmp_path, capsys):
    root, data = corpora
    final, _ = trained
    args = ["--config", str(REPO / "conf/convnet_joint_tiny.yaml"), "--check",
            *[f"--set={kv}" for kv in NARROW + ["training.batch_size=64", "training.max_epochs=3"]]]
    paths = [str(p) for h in ("asr", "ser") for p in (data[h].train_data, data[h].dev_data, data[h].train_targets,
                                                     data[h].dev_targets)]
    train_main(args + paths + [str(root / "exp")])   # the one training entry, with a joint config
    assert capsys.readouterr().out.strip() == "up-to-date"
    train_main(args[:-1] + ["--set=joint.ser_weight=2"] + args[-1:] + paths + [str(root / "exp")])
    assert "changed since it was trained: config" in capsys.readouterr().out
    joint_main(["view", str(final), "ser", str(tmp_path / "ser/fold1")])
    assert load_package(tmp_path / "ser/fold1/final.pt")[0].num_targets == 5
    # compare: SER metrics from the evals; ASR cells stay empty without decodes.
    for d in (tmp_path / "base/fold1", tmp_path / "ser/fold1"):
        for subset, e in (("valid", 0.5), ("test", 0.25)):
            (d / "eval" / subset).mkdir(parents=True)
            (d / "eval" / subset / "metrics.json").write_text(json.dumps({"E": e, "UE": e + 0.1}))
    results_main([str(tmp_path), str(tmp_path / "no_asr"), str(tmp_path / "base")])
    table = (tmp_path / "results.md").read_text()
    assert "| SER, IEMOCAP fold1: E Dev / E Test / UE Dev / UE Test | 50.0 / 25.0 / 60.0 / 35.0" in table
    assert "+0.0 / +0.0 / +0.0 / +0.0" in table and "– / – / – / –" in table


def test_infer_hybrid_takes_two_models_or_one_joint_model():
    from pyscripts.infer import main as infer_main
    for bad in (["--joint-model", "j.pt", "--asr-model", "a.pt"], ["--asr-model", "a.pt"], []):
        with pytest.raises(SystemExit) as err:
            infer_main(["hybrid", "--graph-dir", "g", *bad, "x.wav"])
        assert err.value.code == 2


def test_run_joint_help():
    proc = subprocess.run(["local/run_joint.sh", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "Usage: local/run_joint.sh [options] EXP_DIR" in proc.stderr
    assert "--fold K" in proc.stderr
