"""The export of a trained ConvNet (pyscripts/nnet/export.py, local/export_model.sh): TorchScript and ONNX
give the PyTorch model's posteriors, the model card says what the model expects, and inference runs
from the export alone."""
import argparse
import json
import re
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyscripts.asr.hybrid import log_priors_from_counts
from pyscripts.errors import DataError
from pyscripts.kaldi.audio import write_wav
from pyscripts.kaldi.features import feature_record, wav_features
from pyscripts.nnet import export as nnet_export
from pyscripts.nnet import train as nnet_train
from pyscripts.nnet.config import load_config
from pyscripts.nnet.forward import network_log_posteriors
from pyscripts.nnet.joint import JointConvNet, package_joint
from pyscripts.nnet.model import ConvNet, load_package, package_model
from nnet_fixtures import write_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
NARROW = ["model.conv1_channels=8", "model.conv2_channels=16", "model.fc_dim=64"]
SMALL = dict(conv1_channels=8, conv2_channels=16, fc_dim=64)
BACKENDS = ["torchscript", "onnx"]


def options(**kwargs):
    """The export command's options, as argparse gives them."""
    base = dict(task=None, ali_dir=None, phone_map=None, vad_config=str(REPO / "conf/vad.conf"),
                fbank_config=None, onnx=nnet_export._onnxruntime() is not None)
    return argparse.Namespace(**{**base, **kwargs})


def runner(out_dir, card, backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime", reason="onnxruntime cannot be installed here: the ONNX part is skipped")
    return nnet_export.load_runner(out_dir, card, backend)


def assert_same_posteriors(got, want):
    """The brief's bound: fp32 posteriors within 1e-5 (log-posteriors of near-zero classes may differ more)."""
    assert got.shape == want.shape
    assert np.abs(np.exp(got) - np.exp(want)).max() <= 1e-5


def shaken_batchnorm(model, seed=0):
    """Running statistics away from 0/1, so that the export has to carry them (an untrained model's are trivial)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    model.feat_mean.copy_(torch.randn(model.feat_mean.shape, generator=g) + 10)
    model.feat_std.copy_(torch.rand(model.feat_std.shape, generator=g) * 3 + 1)
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A narrow ConvNet trained for one epoch on a 6-target task, as the ConvNet tests train theirs."""
    root = tmp_path_factory.mktemp("export")
    write_split(root / "train", root / "train_tg", 16, 6, seed=1)
    write_split(root / "dev", root / "dev_tg", 4, 6, seed=2)
    cfg = load_config(REPO / "conf/convnet_asr.yaml", NARROW + ["training.max_epochs=1", "training.batch_size=64",
                                                               "training.eval_batch_size=512"])
    return nnet_train.train(cfg, root / "train", root / "dev", root / "train_tg", root / "dev_tg", root / "exp",
                            device="cpu")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "asr"
    card = nnet_export.export(trained.parent, out, options(fbank_config=str(REPO / "conf/fbank.conf")))
    return out, card


def test_the_convnet_scripts_with_its_parameters_and_outputs_unchanged():
    torch.manual_seed(0)
    model = shaken_batchnorm(ConvNet(5, **SMALL))
    scripted = torch.jit.script(model)
    x = torch.randn(9, 1, 31, 40)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))
    assert list(scripted.state_dict()) == list(model.state_dict())
    assert model.layer(6) is model.layer6  # the numbered access the transfer code uses stays


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_gives_the_pytorch_posteriors(trained, exported, backend):
    out, card = exported
    model, _ = load_package(trained)
    run = runner(out, card, backend)
    rng = np.random.default_rng(3)
    for frames in (1, 7, 31, 600):  # shorter than the window, and longer than a chunk (several calls)
        feats = (rng.normal(size=(frames, 40)) * 3 + 9).astype(np.float32)
        want = network_log_posteriors(model, feats)
        assert_same_posteriors(run(feats)[0], want)
        assert_same_posteriors(nnet_export.chunked_posteriors(run, feats, card["context"], chunk=100)[0], want)
    utt_feats = next(iter(kaldiio.load_scp(str(trained.parent.parent / "dev" / "feats.scp")).values()))
    assert_same_posteriors(run(utt_feats)[0], network_log_posteriors(model, utt_feats))


def test_the_card_says_what_the_model_expects(trained, exported):
    out, card = exported
    model, package = load_package(trained)
    assert card["format"] == nnet_export.CARD_FORMAT and card["kind"] == "asr"
    assert card["files"]["torchscript"] == "model.ts" and (out / "model.ts").is_file()
    assert card["input"]["shape"] == ["frames", 40]
    assert card["outputs"] == [{"name": "log_posteriors", "head": "asr", "shape": ["frames", 6],
                                "what": "log-posteriors per frame"}]
    assert (card["context"], card["window"]) == (15, 31)
    assert np.allclose(card["cmvn"]["mean"], model.feat_mean.numpy())
    assert np.allclose(card["cmvn"]["var"], model.feat_std.numpy() ** 2)
    assert card["features"]["options"]["num-mel-bins"] == "40"
    assert (out / "fbank.conf").read_text().splitlines()[1:] == [
        f"--{k}={v}" for k, v in card["features"]["options"].items()]
    head = card["heads"]["asr"]
    assert head["num_targets"] == 6
    assert np.allclose(head["log_priors"], log_priors_from_counts(package["prior_counts"].numpy())[0])
    assert head["acwt"] is None and "not decoded" in head["acwt_note"]
    assert card["training"]["epoch"] == package["epoch"] and card["training"]["summary"]["epochs"] == "1"
    assert max(card["export_check"]["max_abs_diff"].values()) <= 1e-4


def test_the_card_takes_the_acoustic_scale_chosen_on_dev(trained, tmp_path):
    from pyscripts.asr.result import REQUIRED_KEYS, result_path
    record = dict.fromkeys(REQUIRED_KEYS)
    record.update(setting="8_0.5", lmwt=8, acwt=0.125, wip=0.5, settings={},
                  per={"percent": 31.25, "errors": 5, "ref": 16, "ins": 1, "del": 2, "sub": 2})
    path = result_path(trained.parent / "decode_dev")
    path.parent.mkdir(parents=True)
    try:
        path.write_text(json.dumps(record))
        card = nnet_export.export(trained, tmp_path, options(fbank_config=str(REPO / "conf/fbank.conf"), onnx=False))
    finally:
        path.unlink()
    assert (card["heads"]["asr"]["acwt"], card["heads"]["asr"]["lmwt"]) == (0.125, 8)
    assert card["results"]["decode_dev"]["per"]["percent"] == 31.25
    assert card["files"]["onnx"] is None and not (tmp_path / "model.onnx").exists()


def test_a_missing_model_or_features_record_is_a_clear_error(trained, tmp_path):
    with pytest.raises(DataError, match=r"final\.pt: no trained model there"):
        nnet_export.export(tmp_path, tmp_path / "out", options())
    with pytest.raises(DataError, match="give --fbank-config"):
        nnet_export.export(trained, tmp_path / "out", options())
    with pytest.raises(DataError, match=r"model_card\.json: not found"):
        nnet_export.infer(tmp_path, ["x.wav"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_joint_model_exports_both_heads(tmp_path, backend):
    torch.manual_seed(0)
    model = shaken_batchnorm(JointConvNet({"asr": 7, "ser": 5}, **SMALL))
    package = package_joint(model, {}, {"asr": torch.arange(1, 8), "ser": torch.arange(1, 6)}, 1, {}, [])
    package["features"] = feature_record(REPO / "conf/fbank.conf", "fbank")
    torch.save(package, tmp_path / "final.pt")
    card = nnet_export.export(tmp_path, tmp_path / "out", options(onnx=backend == "onnx"))
    assert card["kind"] == "joint" and [o["name"] for o in card["outputs"]] == ["asr_log_posteriors",
                                                                                "ser_log_posteriors"]
    assert card["heads"]["ser"]["classes"] == ["ang", "hap", "neu", "sad", "sil"]
    feats = (np.random.default_rng(4).normal(size=(120, 40)) * 3 + 9).astype(np.float32)
    want = network_log_posteriors(model, feats)
    got = runner(tmp_path / "out", card, backend)(feats)
    for head, log_post in zip(("asr", "ser"), got):
        assert_same_posteriors(log_post, want[head])


@pytest.fixture(scope="module")
def ser_export(tmp_path_factory):
    """A 5-output (SER) ConvNet package recording its features, exported; and two wavs, one 20 ms short."""
    root = tmp_path_factory.mktemp("ser")
    torch.manual_seed(1)
    model = shaken_batchnorm(ConvNet(5, **SMALL))
    package = package_model(model, {}, torch.ones(5), 1, {}, [])
    package["features"] = feature_record(REPO / "conf/fbank.conf", "fbank")
    torch.save(package, root / "final.pt")
    nnet_export.export(root, root / "out", options())
    t = np.arange(16000) / 16000
    voice = 3000 * np.sin(2 * np.pi * 150 * t) * (t > 0.3) + np.random.default_rng(0).normal(scale=30, size=len(t))
    write_wav(root / "voice.wav", 16000, voice.astype(np.int16))
    write_wav(root / "short.wav", 16000, np.zeros(320, dtype=np.int16))
    return root


def test_inference_from_the_export_alone(ser_export, capsys, caplog):
    root = ser_export
    with pytest.raises(SystemExit) as stop:   # one bad file fails the run at the end, after the others
        nnet_export.main(["infer", "--ark", str(root / "post.ark"), str(root / "out"),
                          str(root / "short.wav"), str(root / "voice.wav")])
    assert stop.value.code == 1
    out, err = capsys.readouterr()
    assert "1 of 2 files failed" in err and "short.wav: shorter than one frame" in caplog.text
    line = re.fullmatch(r"(\S+) ser: (ang|hap|neu|sad) (\S+)  ang=(\S+) hap=(\S+) neu=(\S+) sad=(\S+)  "
                        r"speech=(\d+)/(\d+) frames", out.strip())
    assert line and line[1].endswith("voice.wav"), out
    scores = [float(line[i]) for i in range(4, 8)]
    assert abs(sum(scores) - 1) < 0.01 and float(line[3]) == max(scores)
    assert 0 < int(line[8]) < int(line[9]) == 98   # the silent first 0.3 s is no speech
    model, _ = load_package(root / "final.pt")
    _, feats = wav_features(root / "voice.wav", REPO / "conf/fbank.conf")
    written = dict(kaldiio.load_ark(str(root / "post.ark")))
    assert list(written) == ["voice"]
    assert_same_posteriors(written["voice"], network_log_posteriors(model, feats))


def test_asr_inference_prints_the_best_class_per_frame(exported, trained, capsys):
    out, _ = exported
    write_wav(out.parent / "tone.wav", 16000, (2000 * np.sin(np.arange(8000) * 0.1)).astype(np.int16))
    assert nnet_export.infer(out, [str(out.parent / "tone.wav")], "torchscript") == []
    text = capsys.readouterr().out.split(" asr: ")[1]
    runs = [run.rsplit(":", 1) for run in text.split()]
    assert sum(int(n) for _, n in runs) == 48 and all(0 <= int(pdf) < 6 for pdf, _ in runs)


def test_export_model_sh(trained, tmp_path):
    wrong = subprocess.run(["local/export_model.sh", str(trained.parent)], cwd=REPO, capture_output=True, text=True)
    assert wrong.returncode == 1 and "Usage:" in wrong.stderr
    done = subprocess.run(["local/export_model.sh", "--no-onnx", "true", "--task", "ser", str(trained.parent),
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and "a SER model has 5 outputs" in done.stderr  # 6 outputs: not SER
