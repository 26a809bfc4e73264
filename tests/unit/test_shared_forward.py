"""SharedForward: several models on the same features, the layers they share computed once, and the
same numbers as each model alone."""
import numpy as np
import pytest
import torch

from pyscripts.nnet.forward import SharedForward, network_log_posteriors
from pyscripts.nnet.model import ConvNet, copy_layers, reinit_layers

SMALL = dict(feat_dim=12, context=7, conv1_channels=4, conv2_channels=6, fc_dim=16)


def transfer_rows(source, num_targets=5):
    """Models like a transfer sweep's rows l = 5..0: layers 1..l the source's, the rest drawn afresh,
    with BatchNorm statistics that are not the defaults."""
    rows = []
    for frozen in range(5, -1, -1):
        torch.manual_seed(100 + frozen)
        model = ConvNet(num_targets, **SMALL)
        copy_layers(model, source, frozen)
        reinit_layers(model, frozen + 1, 5)
        rows.append(model.eval())
    return rows


def with_batchnorm_statistics(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_shared_forward_gives_each_model_its_own_numbers_bit_for_bit():
    torch.manual_seed(0)
    source = with_batchnorm_statistics(ConvNet(7, **SMALL))
    models = transfer_rows(source)
    feats = np.random.default_rng(0).normal(size=(23, SMALL["feat_dim"])).astype(np.float32)
    shared = SharedForward(models).log_posteriors(feats, batch_size=8)
    for model, out in zip(models, shared):
        assert np.array_equal(out, network_log_posteriors(model, feats, batch_size=8))


def test_layers_are_shared_only_where_the_models_are_equal():
    torch.manual_seed(0)
    source = with_batchnorm_statistics(ConvNet(7, **SMALL))
    models = transfer_rows(source)   # l = 5, 4, 3, 2, 1, 0
    # layer n runs once for the rows sharing it (l >= n), once for each other row.
    assert SharedForward(models).layer_runs() == [2, 3, 4, 5, 6, 6]
    assert SharedForward(models[:1]).layer_runs() == [1] * 6
    # A different input normalisation shares nothing.
    models[1].feat_mean += 1.0
    assert SharedForward(models).layer_runs() == [3, 4, 5, 6, 6, 6]


def test_a_model_with_other_features_is_refused():
    other = ConvNet(5, **{**SMALL, "feat_dim": 20}).eval()
    with pytest.raises(ValueError, match="expects"):
        SharedForward([ConvNet(5, **SMALL).eval(), other]).log_posteriors(np.zeros((4, SMALL["feat_dim"])))


def test_the_batch_size_does_not_change_the_log_posteriors():
    """The CPU default of small batches (INFER_BATCH) gives what one big batch gives, bit for bit."""
    torch.manual_seed(0)
    model = with_batchnorm_statistics(ConvNet(7, **SMALL))
    feats = np.random.default_rng(1).normal(size=(300, SMALL["feat_dim"])).astype(np.float32)
    whole = network_log_posteriors(model, feats, batch_size=1024)
    assert np.array_equal(network_log_posteriors(model, feats), whole)          # INFER_BATCH on the CPU
    assert np.array_equal(SharedForward([model]).log_posteriors(feats)[0], whole)
