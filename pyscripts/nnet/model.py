"""The paper's ConvNet and the layer operations the transfer experiments need.

Input: a window of 2*context+1 = 31 frames x 40 log-mel bins, shaped (batch, 1, time, freq).
Layers, numbered as in the paper's table (transfer freezes "the first l layers" by these numbers;
a conv layer and its BatchNorm count as one layer):
  1. Conv 64 x (5x4), L2 -> BatchNorm -> ReLU -> MaxPool 2x2/2     31x40 -> 27x37 -> 13x18
  2. Conv 128 x (3x3), L2 -> BatchNorm -> ReLU -> MaxPool 2x2/2     13x18 -> 11x16 -> 5x8
  3. FC 1024 -> BatchNorm -> ReLU -> Dropout 0.6                   128*5*8 = 5120 -> 1024
  4. FC 1024 -> BatchNorm -> ReLU -> Dropout 0.6
  5. FC 1024 -> BatchNorm -> ReLU -> Dropout 0.6
  6. FC num_targets (softmax is in the loss / in log_softmax at inference)
Convolutions are "valid" (no padding). Weights are He-initialised, N(0, sqrt(2/fan_in)); biases zero.

The paper's L2 1e-3 on the two conv layers means a penalty conv_l2 * sum(w**2) on their kernels (Keras
kernel_regularizer semantics; biases and all other layers unregularised). The trainer applies it as
weight decay 2*conv_l2 on exactly those kernels (the penalty's gradient; the same for SGD and RMSProp,
as torch adds weight decay to the gradient), so the logged loss is the pure cross-entropy. Frozen
kernels are left out (conv_kernels()).

Freezing layers 1..l: their parameters get requires_grad=False and their BatchNorm modules stay in eval
mode even when the model is in train mode, so the running statistics do not move. Dropout after a
frozen layer (layers 3..5) stays active in training: it regularises the trainable layers above and
changes no weight (as in Keras with trainable=False, or Caffe with lr_mult 0).
"""
from pathlib import Path
from typing import Self

import torch
from torch import nn

from pyscripts.errors import DataError
from pyscripts.nnet.layers import NUM_LAYERS, TRANSFERABLE_LAYERS

PACKAGE_FORMAT = "pyscripts.nnet.ConvNet/1"
JOINT_PACKAGE_FORMAT = "pyscripts.nnet.JointConvNet/1"  # two output layers: pyscripts/nnet/joint.py



class ConvNet(nn.Module):
    feat_mean: torch.Tensor  # buffers, registered in __init__
    feat_std: torch.Tensor

    def __init__(self, num_targets: int, feat_dim: int = 40, context: int = 15, conv1_channels: int = 64,
                 conv2_channels: int = 128, fc_dim: int = 1024, dropout: float = 0.6) -> None:
        super().__init__()
        self.num_targets = num_targets
        self.feat_dim = feat_dim
        self.context = context
        self.frozen_layers = 0
        window = 2 * context + 1
        # Valid conv then floor-mode 2x2 pooling, per axis.
        t, f = (window - 5 + 1) // 2, (feat_dim - 4 + 1) // 2
        t, f = (t - 3 + 1) // 2, (f - 3 + 1) // 2
        if t < 1 or f < 1:
            raise ValueError(f"a {window}x{feat_dim} input is too small for the paper's ConvNet")
        self.flat_dim = conv2_channels * t * f

        self.layer1 = nn.Sequential(nn.Conv2d(1, conv1_channels, (5, 4)), nn.BatchNorm2d(conv1_channels),
                                    nn.ReLU(), nn.MaxPool2d(2, 2))
        self.layer2 = nn.Sequential(nn.Conv2d(conv1_channels, conv2_channels, (3, 3)),
                                    nn.BatchNorm2d(conv2_channels), nn.ReLU(), nn.MaxPool2d(2, 2),
                                    nn.Flatten())
        self.layer3 = _fc_block(self.flat_dim, fc_dim, dropout)
        self.layer4 = _fc_block(fc_dim, fc_dim, dropout)
        self.layer5 = _fc_block(fc_dim, fc_dim, dropout)
        self.layer6 = nn.Linear(fc_dim, num_targets)
        # Global input normalisation from the training subset, stored with the model (see data.py).
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))
        for n in range(1, NUM_LAYERS + 1):
            reinit_layer(self.layer(n))

    def layer(self, n: int) -> nn.Module:
        """Layer n of the paper's table, 1-based (Python only: TorchScript cannot index modules by number)."""
        if not 1 <= n <= NUM_LAYERS:
            raise ValueError(f"layer number {n} is outside 1..{NUM_LAYERS}")
        return getattr(self, f"layer{n}")

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows: (batch, 1, 2*context+1, feat_dim), already normalised. Returns logits.
        The layers are named one by one, not looked up by number, so that torch.jit.script compiles it."""
        x = self.layer1(windows)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.layer5(x)
        return self.layer6(x)

    def conv_kernels(self) -> list:
        """The kernels the paper regularises with L2: the two conv layers' weights, unless frozen."""
        return [w for w in (self.layer1[0].weight, self.layer2[0].weight) if w.requires_grad]

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        # Frozen layers keep their BatchNorm statistics fixed: normalise with the running stats.
        for n in range(1, self.frozen_layers + 1):
            for m in self.layer(n).modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def _fc_block(n_in, n_out, dropout):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout))


def reinit_layer(layer: nn.Module) -> None:
    """Fresh He-normal weights (std sqrt(2/fan_in)), zero biases, fresh BatchNorm (stats included)."""
    for m in layer.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)  # type: ignore[arg-type]  # every layer of these networks has a bias
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # weight 1, bias 0, running stats reset


def copy_layers(dst: ConvNet, src: ConvNet, num_layers: int) -> None:
    """Copy layers 1..num_layers (parameters and BatchNorm buffers) from src into dst."""
    for n in range(1, num_layers + 1):
        src_state, dst_layer = src.layer(n).state_dict(), dst.layer(n)
        for key, value in dst_layer.state_dict().items():
            if src_state[key].shape != value.shape:
                raise ValueError(f"layer {n} ({key}) has shape {tuple(src_state[key].shape)} in the source "
                                 f"model but {tuple(value.shape)} here: the two models' widths differ")
        dst_layer.load_state_dict(src_state)


def freeze_layers(model: ConvNet, num_layers: int) -> None:
    """Keep layers 1..num_layers fixed: no gradients, BatchNorm in eval mode (see ConvNet.train)."""
    if not 0 <= num_layers <= TRANSFERABLE_LAYERS:
        raise ValueError(f"can freeze 0..{TRANSFERABLE_LAYERS} layers, not {num_layers}")
    model.frozen_layers = num_layers
    for n in range(1, NUM_LAYERS + 1):
        for p in model.layer(n).parameters():
            p.requires_grad_(n > num_layers)
    model.train(model.training)


def reinit_layers(model: ConvNet, first: int, last: int) -> None:
    """Draw layers first..last afresh (the Yosinski et al. reading of the transfer protocol)."""
    for n in range(first, last + 1):
        reinit_layer(model.layer(n))


def build_model(num_targets: int, feat_dim: int, model_cfg: dict) -> ConvNet:
    return ConvNet(num_targets, feat_dim=feat_dim, context=model_cfg["context"],
                   conv1_channels=model_cfg["conv1_channels"], conv2_channels=model_cfg["conv2_channels"],
                   fc_dim=model_cfg["fc_dim"], dropout=model_cfg["dropout"])


def load_package(path: str | Path) -> tuple[ConvNet, dict]:
    """A saved model package (final.pt / best.pt) -> (ConvNet on the CPU, in eval mode; package dict)."""
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise DataError(f"cannot load model {path}: {err}") from None
    if isinstance(package, dict) and package.get("format") == JOINT_PACKAGE_FORMAT:
        raise DataError(f"{path} is a joint ASR-SER model with two output layers; use one of its single-task "
                        f"views (local/run_joint.sh makes them: EXP/asr/final.pt, EXP/ser/foldK/final.pt; or "
                        f"python3 -m pyscripts.nnet.joint view {path} asr|ser OUT_DIR)")
    if not isinstance(package, dict) or package.get("format") != PACKAGE_FORMAT:
        raise DataError(f"{path} is not a ConvNet model of pyscripts.nnet.train (expected final.pt)")
    model = ConvNet(**package["model_args"])
    model.load_state_dict(package["state_dict"])
    model.trained_features = package.get("features")  # type: ignore[assignment]  # inference checks them
    return model.eval(), package


def package_model(model: ConvNet, cfg: dict, prior_counts: torch.Tensor, epoch: int, dev: dict,
                  history: list) -> dict:
    """What final.pt and best.pt hold: the weights, the arguments that rebuild the network, the prior
    counts of its targets (hybrid decoding), the training config and its history. final.pt also holds
    "features": the options of the features it was trained on (pyscripts.kaldi.features.feature_record),
    None for data dirs that do not record them; load_package sets them as model.trained_features."""
    return {"format": PACKAGE_FORMAT,
            "model_args": dict(num_targets=model.num_targets, feat_dim=model.feat_dim, context=model.context,
                               conv1_channels=model.layer1[0].out_channels,
                               conv2_channels=model.layer2[0].out_channels,
                               fc_dim=model.layer6.in_features, dropout=model.layer3[3].p),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "num_targets": model.num_targets, "prior_counts": prior_counts.cpu(), "config": cfg,
            "epoch": epoch, "dev": dev, "history": history}
