"""Linear CKA (pyscripts/transfer/cka.py): the properties the correlation analysis relies on."""
import numpy as np
import pytest
import torch

from pyscripts.nnet.model import ConvNet
from pyscripts.transfer.cka import layer_representations, linear_cka


def cka_per_layer(model_a, model_b, windows):
    """Linear CKA of two networks, layer by layer, on the same windows."""
    reps_a, reps_b = layer_representations(model_a, windows), layer_representations(model_b, windows)
    return [linear_cka(a, b) for a, b in zip(reps_a, reps_b)]


def _features(n=300, p=20, seed=0):
    return np.random.default_rng(seed).standard_normal((n, p))


def _orthogonal(p, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))
    return q


def test_cka_of_a_representation_with_itself_is_one():
    x = _features()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x = _features()
    y = np.tanh(x @ np.random.default_rng(2).standard_normal((20, 15)))  # a related, nonlinear view
    reference = linear_cka(x, y)
    assert 0.1 < reference < 0.99
    assert linear_cka(x @ _orthogonal(20), y) == pytest.approx(reference, abs=1e-10)
    assert linear_cka(x, 7.5 * y @ _orthogonal(15, seed=3)) == pytest.approx(reference, abs=1e-10)
    assert linear_cka(0.01 * x, y) == pytest.approx(reference, abs=1e-10)
    assert linear_cka(x @ _orthogonal(20) * 3.0, y) == pytest.approx(linear_cka(x, y), abs=1e-10)


def test_cka_is_not_invariant_to_a_non_isotropic_scaling():
    x, y = _features(), _features(seed=5)[:, :10] + _features()[:, :10]
    stretched = x * np.linspace(0.1, 10.0, 20)
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 0.05


def test_cka_of_unrelated_random_features_is_small():
    x, y = _features(n=2000, p=10, seed=0), _features(n=2000, p=10, seed=9)
    assert linear_cka(x, y) < 0.05


def test_gram_and_feature_forms_agree():
    x = _features(n=40, p=30)
    y = np.tanh(x @ np.random.default_rng(4).standard_normal((30, 60)))
    by_features, by_gram = linear_cka(x, y, form="features"), linear_cka(x, y, form="gram")
    assert by_features == pytest.approx(by_gram, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(by_gram, abs=1e-12)  # auto picks the Gram form here
    assert 0.2 < by_gram < 1


def test_mismatched_examples_are_an_error():
    with pytest.raises(ValueError, match="same"):
        linear_cka(_features(n=10), _features(n=11))


def test_network_representations_cover_layers_one_to_five():
    torch.manual_seed(0)
    model = ConvNet(5, feat_dim=12, context=7, conv1_channels=4, conv2_channels=6, fc_dim=16).eval()
    windows = torch.randn(64, 1, 15, 12)
    reps = layer_representations(model, windows, batch_size=20)
    assert [r.shape for r in reps] == [(64, 4 * 5 * 4), (64, 6 * 1 * 1), (64, 16), (64, 16), (64, 16)]
    same = cka_per_layer(model, model, windows)
    assert same == pytest.approx([1.0] * 5, abs=1e-6)


def test_random_like_redraws_the_training_initialisation():
    from pathlib import Path

    from pyscripts.nnet import train as nnet_train
    from pyscripts.transfer.cka import random_like
    cfg = nnet_train.load_config(Path(__file__).resolve().parents[2] / "conf/convnet_asr.yaml",
                                 ["model.conv1_channels=4", "model.conv2_channels=6", "model.fc_dim=16"])
    torch.manual_seed(777)
    start = nnet_train.build_model(9, 40, cfg["model"])
    again, other = random_like(start, 777), random_like(start, 778)
    for name, value in start.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    assert not torch.equal(start.layer1[0].weight, other.layer1[0].weight)


def test_common_windows_draw_from_every_data_dir(tmp_path):
    import kaldiio

    from pyscripts.transfer.cka import common_windows
    sets = []
    for name, lengths in (("a", (30, 50)), ("b", (12,))):
        d = tmp_path / name
        d.mkdir()
        with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
            for k, n in enumerate(lengths):
                w(f"{name}{k}", np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 1000 * k)
        sets.append(d)
    windows, notes = common_windows(sets, 20, context=2, seed=0)
    assert windows.shape == (20 + 12, 1, 5, 3)   # set b has only 12 frames: all of them
    assert "12 of 12 frames (fewer than the 20 asked for)" in notes[1]
    again, _ = common_windows(sets, 20, context=2, seed=0)
    assert torch.equal(windows, again)
    # Every window is 5 consecutive frames of one utterance, clamped at its edges.
    steps = windows[:, 0, 1:, 0] - windows[:, 0, :-1, 0]
    assert set(steps.flatten().tolist()) <= {0.0, 3.0}
