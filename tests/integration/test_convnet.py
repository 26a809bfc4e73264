"""The paper's ConvNet, its data pipeline and training stage, on small synthetic Kaldi data."""
import math
import shutil
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyscripts import progress
from pyscripts.errors import DataError
from pyscripts.nnet import epoch as nnet_epoch
from pyscripts.nnet import loop as nnet_loop
from pyscripts.nnet import train as nnet_train
from pyscripts.nnet.data import (epoch_frame_order, frame_set_from_arrays, gather_windows, load_frame_set,
                                 norm_stats_from_cmvn, norm_stats_from_frames)
from pyscripts.nnet.forward import log_posteriors
from pyscripts.nnet.model import ConvNet, copy_layers, freeze_layers, reinit_layers
from nnet_fixtures import write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
# A narrow ConvNet for the training-loop tests: same layers and code paths, ~100x fewer FLOPs.
NARROW = ["model.conv1_channels=8", "model.conv2_channels=16", "model.fc_dim=64"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Train/dev splits with 6 targets, and a second task with 4 targets (for transfer)."""
    root = tmp_path_factory.mktemp("convnet")
    write_split(root / "train", root / "train_tg", 40, 6, seed=1)
    write_split(root / "dev", root / "dev_tg", 10, 6, seed=2)
    write_split(root / "train4", root / "train4_tg", 30, 4, seed=3)
    write_split(root / "dev4", root / "dev4_tg", 8, 4, seed=4)
    return root


def config(*overrides):
    return nnet_train.load_config(REPO / "conf/convnet_asr.yaml",
                                  NARROW + ["training.batch_size=64", "training.eval_batch_size=512",
                                            "optimizer.lr=0.05", *overrides])


def run_training(root, exp, cfg, task_name=""):
    return nnet_train.train(cfg, root / f"train{task_name}", root / f"dev{task_name}",
                            root / f"train{task_name}_tg", root / f"dev{task_name}_tg", root / exp, device="cpu")


@pytest.fixture(scope="module")
def source_model(task):
    """A narrow model trained on the 6-target task: the source of the transfer tests."""
    return run_training(task, "source", config("training.max_epochs=3"))


# ---------------------------------------------------------------- the paper's table
def test_layer_shapes_and_parameter_count_follow_the_seeds_table():
    # Shapes by hand: valid convs and 2x2/2 pooling (floor).
    # 31x40 -conv 5x4-> 27x37 -pool-> 13x18 -conv 3x3-> 11x16 -pool-> 5x8; 128*5*8 = 5120.
    model = ConvNet(144).eval()
    x = torch.randn(2, 1, 31, 40)
    assert model.layer1[0](x).shape == (2, 64, 27, 37)
    h1 = model.layer1(x)
    assert h1.shape == (2, 64, 13, 18)
    assert model.layer2[0](h1).shape == (2, 128, 11, 16)
    h2 = model.layer2(h1)
    assert h2.shape == (2, 5120)
    h = h2
    for n in (3, 4, 5):
        h = model.layer(n)(h)
        assert h.shape == (2, 1024)
    assert model.layer6(h).shape == (2, 144)
    assert model(x).shape == (2, 144)

    # Parameters by hand: weights + biases, BatchNorm gamma + beta per channel/unit.
    conv1 = 64 * (5 * 4 * 1) + 64 + 2 * 64          # 1,472
    conv2 = 128 * (3 * 3 * 64) + 128 + 2 * 128      # 74,112
    fc3 = 5120 * 1024 + 1024 + 2 * 1024             # 5,245,952
    fc4 = fc5 = 1024 * 1024 + 1024 + 2 * 1024       # 1,051,648 each
    out = 1024 * 144 + 144                          # 147,600
    expected = conv1 + conv2 + fc3 + fc4 + fc5 + out
    assert expected == 7_572_432
    assert sum(p.numel() for p in model.parameters()) == expected
    per_layer = [sum(p.numel() for p in model.layer(n).parameters()) for n in range(1, 7)]
    assert per_layer == [conv1, conv2, fc3, fc4, fc5, out]
    ser = ConvNet(5)
    assert sum(p.numel() for p in ser.parameters()) == expected - out + 1024 * 5 + 5


def test_he_initialisation_and_dropout():
    torch.manual_seed(0)
    model = ConvNet(144)
    for layer, fan_in in [(model.layer1[0], 20), (model.layer2[0], 576), (model.layer3[0], 5120),
                          (model.layer4[0], 1024), (model.layer6, 1024)]:
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert layer.weight.mean().abs().item() < 0.1 * math.sqrt(2 / fan_in)
        assert torch.all(layer.bias == 0)
    assert [model.layer(n)[3].p for n in (3, 4, 5)] == [0.6] * 3


def test_l2_applies_to_the_two_conv_kernels_only():
    model = ConvNet(144)
    optimizer = nnet_train.make_optimizer(model, {"name": "sgd", "lr": 0.1, "momentum": 0.9}, 1e-3)
    decayed = [g for g in optimizer.param_groups if g["weight_decay"] > 0]
    assert len(decayed) == 1 and decayed[0]["weight_decay"] == pytest.approx(2e-3)  # d/dw 1e-3*w^2
    assert [p.shape for p in decayed[0]["params"]] == [(64, 1, 5, 4), (128, 64, 3, 3)]
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 7_572_432


# ---------------------------------------------------------------- data pipeline
def test_window_gather_equals_naive_loop_at_utterance_edges():
    rng = np.random.default_rng(5)
    lengths, context = [1, 7, 40, 16], 15   # shorter and longer than the 31-frame window
    utts = [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths]
    frames = frame_set_from_arrays(utts)
    index = torch.arange(frames.num_frames)
    got = gather_windows(frames.feats, frames.first, frames.last, index, context)
    assert got.shape == (sum(lengths), 1, 2 * context + 1, 3)
    expected = []
    for utt in utts:
        for t in range(len(utt)):
            window = [utt[min(max(t + k, 0), len(utt) - 1)] for k in range(-context, context + 1)]
            expected.append(np.stack(window))
    np.testing.assert_array_equal(got[:, 0].numpy(), np.stack(expected))
    # A shuffled subset gathers the same windows.
    subset = torch.tensor([63, 0, 8, 7, 47])
    np.testing.assert_array_equal(gather_windows(frames.feats, frames.first, frames.last, subset, context).numpy(),
                                  got[subset].numpy())


def test_frame_order_is_seeded_and_sharded_by_rank():
    a = epoch_frame_order(101, seed=3, epoch=1)
    assert torch.equal(a, epoch_frame_order(101, seed=3, epoch=1))
    assert sorted(a.tolist()) == list(range(101))
    assert not torch.equal(a, epoch_frame_order(101, seed=3, epoch=2))
    shards = [epoch_frame_order(101, seed=3, epoch=1, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert len(epoch_frame_order(101, seed=3, epoch=1, limit=40)) == 40


def test_length_mismatch_is_a_clear_error(tmp_path):
    write_split(tmp_path / "d", tmp_path / "t", 4, 3, seed=7, bad_lengths={"utt002"})
    with pytest.raises(DataError) as err:
        load_frame_set(tmp_path / "d", tmp_path / "t")
    feats = kaldiio.load_scp(str(tmp_path / "d/feats.scp"))["utt002"]
    message = str(err.value)
    assert "utt002" in message and f"{len(feats)} feature frames" in message
    assert f"{len(feats) - 3} targets" in message and "re-align" in message


def test_missing_targets_are_skipped_and_too_many_are_an_error(tmp_path, caplog):
    write_split(tmp_path / "d", tmp_path / "t", 5, 3, seed=8, missing={"utt001"})
    frames, num_targets = load_frame_set(tmp_path / "d", tmp_path / "t")
    assert frames.utt_ids == ["utt000", "utt002", "utt003", "utt004"] and num_targets == 3
    assert "1 of 5 utterances have no targets" in caplog.text
    write_split(tmp_path / "d2", tmp_path / "t2", 5, 3, seed=8, missing={"utt000", "utt001", "utt003"})
    with pytest.raises(DataError, match="3 of 5 utterances"):
        load_frame_set(tmp_path / "d2", tmp_path / "t2")


def test_cmvn_stats_matrix_gives_the_frame_statistics(tmp_path):
    x = torch.randn(500, 40, dtype=torch.float64) * 3 + 2
    stats = np.zeros((2, 41))
    stats[0, :40], stats[0, 40], stats[1, :40] = x.sum(0), len(x), (x ** 2).sum(0)
    kaldiio.save_mat(str(tmp_path / "cmvn.mat"), stats)
    mean, std = norm_stats_from_cmvn(tmp_path / "cmvn.mat")
    ref_mean, ref_std = norm_stats_from_frames(x.float())
    torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std, ref_std, rtol=1e-5, atol=1e-5)


def test_config_base_and_overrides():
    cfg = nnet_train.load_config(REPO / "conf/convnet_ser_tiny.yaml", ["optimizer.lr=0.5", "init.from=x.pt"])
    assert cfg["model"]["conv1_channels"] == 64 and cfg["training"]["max_epochs"] == 2
    assert cfg["optimizer"]["lr"] == 0.5 and cfg["init"]["from"] == "x.pt"
    with pytest.raises(DataError, match="no key 'optimizer.lrate'"):
        nnet_train.load_config(REPO / "conf/convnet_asr.yaml", ["optimizer.lrate=1"])


# ---------------------------------------------------------------- training
def test_training_decreases_the_loss_and_writes_a_complete_model(task, source_model):
    package = torch.load(source_model, weights_only=True)
    history = package["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["dev_loss"] < history[0]["dev_loss"]
    assert package["dev"]["fer"] < 0.5 * (1 - 1 / 6)  # far below chance on 6 classes
    counts = np.array((task / "source/prior_counts").read_text().split()[1:-1], dtype=int)
    targets = kaldiio.load_scp(str(task / "train_tg/targets.scp"))
    assert np.array_equal(counts, np.bincount(np.concatenate(list(targets.values())), minlength=6))
    assert np.array_equal(package["prior_counts"].numpy(), counts)
    assert not (task / "source/checkpoint.pt").exists() and not (task / "source/best.pt").exists()
    # Inference needs only final.pt: normalisation is stored and applied there.
    feats = kaldiio.load_scp(str(task / "dev/feats.scp"))["utt000"]
    logp = log_posteriors(source_model, feats)
    assert logp.shape == (len(feats), 6)
    np.testing.assert_allclose(np.exp(logp).sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(log_posteriors(source_model, feats, batch_size=7), logp, rtol=1e-5, atol=1e-6)
    labels = kaldiio.load_scp(str(task / "dev_tg/targets.scp"))["utt000"]
    assert (logp.argmax(1) == labels).mean() > 0.5


def test_rmsprop_with_exponential_decay_also_learns(task, caplog):
    cfg = config("training.max_epochs=2", "training.frames_per_epoch=1500", "optimizer.name=rmsprop",
                 "optimizer.lr=0.001", "schedule.name=exponential", "schedule.gamma=0.5",
                 "training.dev_frames=300")
    with caplog.at_level("INFO"):
        history = torch.load(run_training(task, "rmsprop", cfg), weights_only=True)["history"]
    assert [h["lr"] for h in history] == [0.001, 0.0005]
    assert caplog.text.count("(Xent) FER") == 4 and caplog.text.count("[300 frames]") == 2  # dev subset
    assert history[1]["dev_loss"] < history[0]["dev_loss"] and history[1]["dev_fer"] < 0.5


def test_resume_after_a_kill_equals_an_uninterrupted_run(task, monkeypatch):
    cfg = config("training.max_epochs=3", "training.frames_per_epoch=1000")
    calls = {"n": 0}
    real_gather = nnet_epoch.gather_windows

    def counting_gather(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls.get("kill_at"):
            raise KeyboardInterrupt("simulated kill")
        return real_gather(*args, **kwargs)

    monkeypatch.setattr(nnet_epoch, "gather_windows", counting_gather)
    uninterrupted = torch.load(run_training(task, "whole", cfg), weights_only=True)
    calls_per_epoch = calls["n"] // 3
    calls.update(n=0, kill_at=2 * calls_per_epoch + calls_per_epoch // 2)   # in the middle of epoch 3
    with pytest.raises(KeyboardInterrupt):
        run_training(task, "killed", cfg)
    checkpoint = torch.load(task / "killed/checkpoint.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 2 and not (task / "killed/final.pt").exists()
    calls.update(n=0, kill_at=None)
    resumed = torch.load(run_training(task, "killed", cfg), weights_only=True)
    assert calls["n"] == calls_per_epoch  # only epoch 3 was run again
    def untimed(history):
        return [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]
    assert untimed(resumed["history"]) == untimed(uninterrupted["history"])
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key


def test_resume_on_a_machine_that_needs_loss_scaling(task, monkeypatch):
    """training.amp auto gives bf16 (no loss scaling) on one machine and fp16 (a GradScaler) on an older
    GPU: a checkpoint saved without scaling resumes there with a fresh loss scale."""
    from pyscripts.nnet import device as nnet_device
    cfg = config("training.max_epochs=2", "training.frames_per_epoch=300")
    monkeypatch.setattr(nnet_epoch, "gather_windows", _kill_after(nnet_epoch.gather_windows, 7))
    with pytest.raises(KeyboardInterrupt):
        run_training(task, "rescaled", cfg)   # epoch 1 saved by a disabled scaler (bf16 or fp32 here)
    assert torch.load(task / "rescaled/checkpoint.pt", weights_only=True)["scaler"] == {}
    monkeypatch.undo()
    real = nnet_device.mixed_precision
    monkeypatch.setattr(nnet_train, "mixed_precision", lambda device, amp: real(device, "fp16"))
    resumed = torch.load(run_training(task, "rescaled", cfg), weights_only=True)
    assert resumed["epoch"] in (1, 2) and len(resumed["history"]) == 2
    assert all(math.isfinite(h["train_loss"]) for h in resumed["history"])


def test_resume_refuses_a_changed_config(task, monkeypatch):
    cfg = config("training.max_epochs=2", "training.frames_per_epoch=300")
    monkeypatch.setattr(nnet_epoch, "gather_windows", _kill_after(nnet_epoch.gather_windows, 7))
    with pytest.raises(KeyboardInterrupt):
        run_training(task, "changed", cfg)
    monkeypatch.undo()
    assert (task / "changed/checkpoint.pt").exists()
    with pytest.raises(DataError, match="optimizer.lr"):
        run_training(task, "changed", config("training.max_epochs=2", "training.frames_per_epoch=300",
                                             "optimizer.lr=0.001"))


def _kill_after(func, num_calls):
    count = [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] > num_calls:
            raise KeyboardInterrupt("simulated kill")
        return func(*args, **kwargs)
    return wrapper


def test_compiled_training_learns(task, monkeypatch):
    """training.compile: the steps run through torch.compile (CPU: TorchInductor, which needs a C++
    compiler); the narrow model learns as uncompiled, and final.pt's weights load into a plain ConvNet."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on the CPU (TorchInductor) needs a C++ compiler: none on PATH")
    import torch._dynamo
    torch._dynamo.reset()
    compiled = []
    real_compile = torch.compile

    def counting_compile(model, *args, **kwargs):
        compiled.append(model)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    # whole batches only (1536 = 24 x 64): a last, smaller batch would compile the graph a second time
    cfg = config("training.max_epochs=2", "training.frames_per_epoch=1536", "training.compile=true")
    try:
        package = torch.load(run_training(task, "compiled", cfg), weights_only=True)
    finally:
        torch._dynamo.reset()
    assert len(compiled) == 1 and isinstance(compiled[0], ConvNet)
    history = package["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert package["dev"]["fer"] < 0.5 * (1 - 1 / 6)   # far below chance on 6 classes
    assert "_orig_mod" not in "".join(package["state_dict"])   # the plain model's names
    model, _ = nnet_train.load_package(task / "compiled/final.pt")
    assert model.num_targets == 6


# ---------------------------------------------------------------- transfer: copy, freeze, reinit
def _layer_state(model, n):
    return {k: v.clone() for k, v in model.layer(n).state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_freeze_keeps_layers_and_batchnorm_statistics_after_an_epoch(task, source_model):
    source, _ = nnet_train.load_package(source_model)
    cfg = config("training.max_epochs=1", "training.frames_per_epoch=600", f"init.from={source_model}",
                 "init.freeze_layers=3")
    target, package = nnet_train.load_package(run_training(task, "frozen3", cfg, task_name="4"))
    assert package["num_targets"] == 4 and target.layer6.out_features == 4
    for n in (1, 2, 3):   # conv + BatchNorm2d, conv + BatchNorm2d, FC + BatchNorm1d: bit-identical
        assert _same(_layer_state(target, n), _layer_state(source, n)), f"layer {n} changed"
    for n in (4, 5):      # copied, then fine-tuned
        assert not _same(_layer_state(target, n), _layer_state(source, n)), f"layer {n} not trained"
        assert not torch.equal(target.layer(n)[1].running_mean, source.layer(n)[1].running_mean)


def test_freeze_sets_gradients_and_batchnorm_modes():
    model = ConvNet(5, conv1_channels=4, conv2_channels=8, fc_dim=16)
    freeze_layers(model, 2)
    model.train()
    assert not any(p.requires_grad for n in (1, 2) for p in model.layer(n).parameters())
    assert all(p.requires_grad for n in (3, 4, 5, 6) for p in model.layer(n).parameters())
    assert not model.layer1[1].training and not model.layer2[1].training
    assert model.layer3[1].training and model.layer3[3].training
    assert model.conv_kernels() == []   # no L2 on frozen kernels
    freeze_layers(model, 0)
    assert model.layer1[1].training and len(model.conv_kernels()) == 2


def test_copy_and_reinit_unfrozen_layers():
    torch.manual_seed(1)
    source = ConvNet(6, conv1_channels=4, conv2_channels=8, fc_dim=16)
    for n in range(1, 6):   # make BatchNorm statistics non-trivial so that copies are checkable
        source.layer(n)[1].running_mean.uniform_()
    target = ConvNet(3, conv1_channels=4, conv2_channels=8, fc_dim=16)
    copy_layers(target, source, 5)
    for n in range(1, 6):
        assert _same(_layer_state(target, n), _layer_state(source, n))
    reinit_layers(target, 3, 5)
    for n in (1, 2):
        assert _same(_layer_state(target, n), _layer_state(source, n))
    for n in (3, 4, 5):
        assert not torch.equal(target.layer(n)[0].weight, source.layer(n)[0].weight)
        assert torch.all(target.layer(n)[1].running_mean == 0)
    with pytest.raises(ValueError, match="widths differ"):
        copy_layers(ConvNet(3, conv1_channels=5, conv2_channels=8, fc_dim=16), source, 1)


def test_reinit_unfrozen_training_redraws_the_unfrozen_layers(task, source_model, monkeypatch):
    source, _ = nnet_train.load_package(source_model)
    seen = {}
    real_freeze = nnet_train.freeze_layers

    def spy_freeze(model, num_layers):   # the model as initialised, before any training step
        seen.update({n: _layer_state(model, n) for n in range(1, 6)})
        real_freeze(model, num_layers)

    monkeypatch.setattr(nnet_train, "freeze_layers", spy_freeze)
    cfg = config("training.max_epochs=1", "training.frames_per_epoch=200", f"init.from={source_model}",
                 "init.freeze_layers=2", "init.reinit_unfrozen=true")
    target, _ = nnet_train.load_package(run_training(task, "reinit2", cfg, task_name="4"))
    for n in (1, 2):
        assert _same(seen[n], _layer_state(source, n)) and _same(_layer_state(target, n), _layer_state(source, n))
    for n in (3, 4, 5):
        assert not torch.equal(seen[n]["0.weight"], source.layer(n)[0].weight)
        assert torch.all(seen[n]["1.running_mean"] == 0)


# ---------------------------------------------------------------- the steps/ script
def test_train_convnet_script_trains_once_and_then_skips(task, tmp_path):
    exp = tmp_path / "exp"
    overrides = " ".join(NARROW + ["training.max_epochs=1", "training.frames_per_epoch=1500",
                                   "training.batch_size=64", "optimizer.lr=0.05"])
    args = ["steps/train_convnet.sh", "--cmd", "run.pl", "--overrides", overrides, "--num-threads", "1",
            str(task / "train"), str(task / "dev"), str(task / "train_tg"), str(task / "dev_tg"), str(exp)]
    first = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (exp / "final.pt").is_file() and (exp / "prior_counts").is_file()
    assert "epoch 1/1: TRAIN AvgLoss" in (exp / "log/train.log").read_text()
    summary = nnet_train.read_summary(exp)   # what the stages report, instead of reading the log
    assert (summary["epochs"], summary["stop"], summary["best_epoch"]) == ("1", "max epochs", "1")
    package = torch.load(exp / "final.pt", weights_only=True)
    assert float(summary["seconds"]) > 0
    # the best epoch's dev results, as final.pt has them; one epoch learns (FER 0.38 here, chance 5/6)
    dev = package["dev"]
    assert (summary["dev_fer"], summary["dev_loss"]) == (f"{dev['fer']:.4f}", f"{dev['loss']:.4f}")
    assert float(summary["dev_fer"]) < 0.6
    assert f"{exp}: " in subprocess.run(["utils/train_summary.sh", str(exp)], cwd=REPO, capture_output=True,
                                        text=True).stdout
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert second.returncode == 0 and "skipping" in second.stdout


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
@pytest.mark.parametrize("frozen", [2, 4])
def test_cached_frozen_trunk_trains_the_same_weights(task, source_model, frozen, amp, caplog):
    """Frozen layers computed once per frame (pyscripts/nnet/trunk_cache.py) give the uncached weights,
    dropout after frozen layers included (l = 4: layer 3's and 4's dropout drawn at every step), in
    float32 and under bf16 autocast (forced: the same on CPUs with and without native bf16)."""
    common = ("training.max_epochs=2", "training.frames_per_epoch=600", "model.dropout=0.3",
              f"init.from={source_model}", f"init.freeze_layers={frozen}", f"training.amp={amp}")
    with caplog.at_level("INFO"):
        cached = run_training(task, f"cached{frozen}{amp}", config(*common), task_name="4")
    assert "output computed once and kept" in caplog.text
    uncached = run_training(task, f"uncached{frozen}{amp}", config(*common, "training.trunk_cache_mb=0"),
                            task_name="4")
    a = torch.load(cached, weights_only=True)
    b = torch.load(uncached, weights_only=True)
    assert _same(a["state_dict"], b["state_dict"]) and a["dev"] == b["dev"]


def _untimed(history):
    return [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]


def record_last_epoch(module, monkeypatch):
    """Wraps module.save_epoch (the one training loop's) so that the model's state after each epoch is
    kept ({epoch: state dict}):
    final.pt holds the best epoch's weights, which may come from before a kill."""
    states, real_save = {}, module.save_epoch

    def saving(exp_dir, cfg, trainee, state, *args, **kwargs):
        states[state["epoch"]] = {k: v.detach().clone() for k, v in trainee.model.state_dict().items()}
        return real_save(exp_dir, cfg, trainee, state, *args, **kwargs)

    monkeypatch.setattr(module, "save_epoch", saving)
    return states


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_resume_with_the_trunk_cache_equals_an_uninterrupted_run(task, source_model, amp, monkeypatch, caplog):
    """A transfer training on the frozen-trunk cache, killed in the middle of its third epoch and resumed:
    the resumed run starts with an empty cache, so it computes the rows of epoch 3's frames that the
    uninterrupted run had computed in epochs 1-2, in other batches; the weights must come out the same.
    Dropout after the frozen layers (l = 3) draws from the random state as in the uncached run."""
    cfg = config("training.max_epochs=3", "training.frames_per_epoch=600", "model.dropout=0.3",
                 f"init.from={source_model}", "init.freeze_layers=3", f"training.amp={amp}")
    calls = {"n": 0}
    real_batch = nnet_epoch.batch_inputs

    def counting_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls.get("kill_at"):
            raise KeyboardInterrupt("simulated kill")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(nnet_epoch, "batch_inputs", counting_batch)
    states = record_last_epoch(nnet_loop, monkeypatch)
    with caplog.at_level("INFO"):
        uninterrupted = torch.load(run_training(task, f"cache_whole{amp}", cfg, task_name="4"), weights_only=True)
    last = states.pop(3)
    assert "output computed once and kept" in caplog.text
    calls_per_epoch = calls["n"] // 3   # training and dev batches
    calls.update(n=0, kill_at=2 * calls_per_epoch + calls_per_epoch // 4)   # in epoch 3's training batches
    with pytest.raises(KeyboardInterrupt):
        run_training(task, f"cache_killed{amp}", cfg, task_name="4")
    assert torch.load(task / f"cache_killed{amp}/checkpoint.pt", weights_only=True)["state"]["epoch"] == 2
    calls.update(n=0, kill_at=None)
    caplog.clear()
    with caplog.at_level("INFO"):
        resumed = torch.load(run_training(task, f"cache_killed{amp}", cfg, task_name="4"), weights_only=True)
    assert "resuming from" in caplog.text and "output computed once and kept" in caplog.text
    assert calls["n"] == calls_per_epoch   # only epoch 3 again, on the cache
    assert _untimed(resumed["history"]) == _untimed(uninterrupted["history"])
    assert _same(resumed["state_dict"], uninterrupted["state_dict"]) and resumed["dev"] == uninterrupted["dev"]
    assert _same(states[3], last)   # the weights after epoch 3, the one run again


def test_trunk_cache_makes_room_for_the_frames_used_only(task, source_model, monkeypatch):
    """On a GPU all of a tensor's memory is committed at once: the cache must hold only the frames the
    training can use (2 epochs x 300 frames of a larger set, here), in the autocast dtype (bf16: 2 bytes)."""
    from pyscripts.nnet import trunk_cache
    made = []
    real_init = trunk_cache.TrunkOutputs.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(trunk_cache.TrunkOutputs, "__init__", recording_init)
    run_training(task, "roomy", config("training.max_epochs=2", "training.frames_per_epoch=300",
                                       "training.dev_frames=200", "training.amp=bf16", f"init.from={source_model}",
                                       "init.freeze_layers=3"), task_name="4")
    train, dev = made
    assert train.num_frames > 600 and dev.num_frames > 200
    for cache, room in ((train, 600), (dev, 200)):
        (rows,) = cache.store.outputs.values()
        assert rows.shape == (room, 64) and rows.dtype == torch.bfloat16   # layer 3: fc_dim values per frame
        assert 0 < cache.store.used <= room and cache.store.slot.device.type == "cpu"  # frame -> row: on the host


def test_the_training_log_shows_progress_within_an_epoch(task, monkeypatch, caplog):
    """Under run.pl stderr is the job's log, not a terminal: progress must come as log lines (here one
    after every step), with frames done of all, the rate and the time left."""
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 1e-9)
    with caplog.at_level("INFO"):
        run_training(task, "progress", config("training.max_epochs=1", "training.frames_per_epoch=640"))
    lines = [r.getMessage() for r in caplog.records if " of 640 frames (" in r.getMessage()]
    assert [line.split(":")[1].split(" of")[0].strip() for line in lines[:3]] == ["64", "128", "192"]
    assert lines[-1].startswith("epoch 1/1: 640 of 640 frames (100%)") and " s left; running train AvgLoss" in lines[-1]
