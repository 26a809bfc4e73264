"""The hybrid ASR-SER system of the paper's figure as one network: the ConvNet's layers 1..5 (the trunk)
shared by two output layers, `asr` (the pdfs of the monophone alignment) and `ser` (4 emotions + sil).

  python3 -m pyscripts.nnet.joint view JOINT_MODEL asr|ser OUT_DIR
          OUT_DIR/final.pt: the single-task view, an ordinary ConvNet package (trunk + that head), and
          OUT_DIR/prior_counts: its head's training-target counts (the priors of hybrid decoding)

It is trained by the one training entry, `python3 -m pyscripts.nnet.train` with a joint config
(pyscripts/nnet/joint_train.py: the joint task); its comparison with the single-task Baselines is
pyscripts/joint_results.py.

The network: the trunk is that of pyscripts/nnet/model.py (built by it, so the same layers and
initialisation); layer 6 is a pair of heads. forward(windows) gives {head: logits} for every frame from
one pass through the trunk; forward(windows, split={"asr": n, "ser": m}) sends the first n frames of a
mixed batch to the asr head and the next m to the ser head (training). BatchNorm layers belong to the
trunk: they normalise the mixed batch as a whole, and their running statistics are those of the mixture,
used by both heads at inference. Each head has its input normalisation (feat_mean, feat_std: one row per
head, in head order; see joint_train.py, joint.normalise): the ASR head's input as the ASR Baseline's, the
SER head's as the SER Baseline's. Heads with the same normalisation share one forward pass of an
utterance (pyscripts/nnet/forward.py); with two normalisations inference runs the trunk once per head.

A single-task view (view(head)) is a ConvNet whose modules are this model's: layers 1..5 the trunk,
layer 6 the head; its outputs equal the head's. Saved as a ConvNet package (view_package), it is what the
existing stages use unchanged: steps/decode_hybrid.sh --model (with the asr head's prior counts),
python3 -m pyscripts.ser.evaluate, pyscripts/infer.py.

Package (final.pt): format JOINT_PACKAGE_FORMAT, model_args (with head_targets {head: outputs}), the state
dict, prior_counts {head: counts}, the config, and the training's epoch, dev results and history.
"""
import argparse
import functools
import logging
from pathlib import Path
from typing import Any, Self, cast

import torch
from torch import nn

from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.model import (JOINT_PACKAGE_FORMAT, PACKAGE_FORMAT, TRANSFERABLE_LAYERS, ConvNet,
                                  package_model, reinit_layer)

log = logging.getLogger("joint")
HEADS = ("asr", "ser")


class JointConvNet(nn.Module):
    # set in __init__ (by setattr, and register_buffer)
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(self, head_targets: dict[str, int], feat_dim: int = 40, context: int = 15,
                 conv1_channels: int = 64, conv2_channels: int = 128, fc_dim: int = 1024,
                 dropout: float = 0.6) -> None:
        super().__init__()
        if not head_targets:
            raise ValueError("a joint model needs at least one head")
        self.head_targets = {head: int(n) for head, n in head_targets.items()}
        self.feat_dim, self.context, self.frozen_layers = feat_dim, context, 0
        # The trunk: layers 1..5 of a ConvNet built (and He-initialised) as for the single-task models.
        base = ConvNet(1, feat_dim, context, conv1_channels, conv2_channels, fc_dim, dropout)
        for n in range(1, TRANSFERABLE_LAYERS + 1):
            setattr(self, f"layer{n}", base.layer(n))
        self.heads = nn.ModuleDict({head: nn.Linear(fc_dim, n) for head, n in self.head_targets.items()})
        reinit_layer(self.heads)
        # One input normalisation per head (rows in head order), set by set_normalisation.
        self.register_buffer("feat_mean", torch.zeros(len(self.head_targets), feat_dim))
        self.register_buffer("feat_std", torch.ones(len(self.head_targets), feat_dim))

    def set_normalisation(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """stats: {head: (mean, std)}, the input normalisation of each head's frames."""
        for i, head in enumerate(self.head_targets):
            self.feat_mean[i].copy_(stats[head][0])
            self.feat_std[i].copy_(stats[head][1])

    def normalisation(self, head: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of one head's input."""
        i = list(self.head_targets).index(head)
        return self.feat_mean[i], self.feat_std[i]

    def layer(self, n: int) -> nn.Module:
        """Layer n of the paper's table: 1..5 the trunk, 6 all heads (so freeze_layers applies)."""
        if not 1 <= n <= TRANSFERABLE_LAYERS + 1:
            raise ValueError(f"layer number {n} is outside 1..{TRANSFERABLE_LAYERS + 1}")
        return self.heads if n == TRANSFERABLE_LAYERS + 1 else getattr(self, f"layer{n}")

    def trunk(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows
        for n in range(1, TRANSFERABLE_LAYERS + 1):
            x = self.layer(n)(x)
        return x

    def forward(self, windows: torch.Tensor, split: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
        """{head: logits}: every head on every frame, or with split {head: n} the heads on consecutive
        slices of the batch, in split's order (a mixed training batch)."""
        hidden = self.trunk(windows)
        if split is None:
            return {head: module(hidden) for head, module in self.heads.items()}
        if sum(split.values()) != len(hidden):
            raise ValueError(f"split {split} does not cover the batch of {len(hidden)} frames")
        out, start = {}, 0
        for head, n in split.items():
            out[head] = self.heads[head](hidden[start:start + n])
            start += n
        return out

    def conv_kernels(self) -> list:
        """The kernels the paper regularises with L2 (as ConvNet.conv_kernels)."""
        return [w for w in (self.layer1[0].weight, self.layer2[0].weight) if w.requires_grad]

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        for n in range(1, self.frozen_layers + 1):  # frozen layers keep their BatchNorm statistics
            for m in self.layer(n).modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def model_args(self) -> dict:
        """The constructor's arguments: what rebuilds this network."""
        return dict(head_targets=dict(self.head_targets), feat_dim=self.feat_dim, context=self.context,
                    conv1_channels=self.layer1[0].out_channels, conv2_channels=self.layer2[0].out_channels,
                    fc_dim=self.layer3[0].out_features, dropout=self.layer3[3].p)

    def view(self, head: str) -> ConvNet:
        """The single-task ConvNet of one head, sharing this model's modules and normalisation (not a
        copy: training one trains the other). Make it after moving the model to its device."""
        if head not in self.heads:
            raise DataError(f"the joint model has no head '{head}' (its heads: {', '.join(self.heads)})")
        args = self.model_args()
        num_targets = args.pop("head_targets")[head]
        with torch.random.fork_rng(devices=[]):  # its own weights are replaced: draw them off the record
            net = ConvNet(num_targets, **args)
        for n in range(1, TRANSFERABLE_LAYERS + 1):
            setattr(net, f"layer{n}", self.layer(n))
        net.layer6 = cast(nn.Linear, self.heads[head])
        net.feat_mean, net.feat_std = self.normalisation(head)
        net.frozen_layers = self.frozen_layers
        return net.train(self.training)


def build_joint_model(head_targets: dict[str, int], feat_dim: int, model_cfg: dict) -> JointConvNet:
    """A JointConvNet with the model section of a training config (as model.build_model)."""
    return JointConvNet(head_targets, feat_dim=feat_dim, context=model_cfg["context"],
                        conv1_channels=model_cfg["conv1_channels"], conv2_channels=model_cfg["conv2_channels"],
                        fc_dim=model_cfg["fc_dim"], dropout=model_cfg["dropout"])


# ---------------------------------------------------------------- packages
def package_joint(model: JointConvNet, cfg: dict, prior_counts: dict, epoch: int, dev: dict, history: list) -> dict:
    """What the joint final.pt holds (see the module doc); prior_counts: {head: counts tensor}."""
    return {"format": JOINT_PACKAGE_FORMAT, "model_args": model.model_args(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "head_targets": dict(model.head_targets),
            "prior_counts": {head: torch.as_tensor(c).cpu() for head, c in prior_counts.items()},
            "config": cfg, "epoch": epoch, "dev": dev, "history": history}


def joint_from_package(package: dict) -> JointConvNet:
    model = JointConvNet(**package["model_args"])
    state = dict(package["state_dict"])
    for key in ("feat_mean", "feat_std"):  # a model of one normalisation for all heads (before per-head rows)
        if state[key].dim() == 1:
            state[key] = state[key].expand(len(model.head_targets), -1).clone()
    model.load_state_dict(state)
    model.trained_features = package.get("features")  # type: ignore[assignment]  # inference checks them
    return model.eval()


def load_joint_package(path: str | Path) -> tuple[JointConvNet, dict]:
    """A saved joint model -> (JointConvNet on the CPU, in eval mode; package dict)."""
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise DataError(f"cannot load model {path}: {err}") from None
    if isinstance(package, dict) and package.get("format") == PACKAGE_FORMAT:
        raise DataError(f"{path} is a single-task ConvNet; a joint ASR-SER model is the final.pt of "
                        f"local/run_joint.sh (python3 -m pyscripts.nnet.train with a joint config)")
    if not isinstance(package, dict) or package.get("format") != JOINT_PACKAGE_FORMAT:
        raise DataError(f"{path} is not a joint ASR-SER model of pyscripts.nnet.joint (expected its final.pt)")
    return joint_from_package(package), package


@functools.lru_cache(maxsize=2)
def load_joint_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[JointConvNet, dict[str, Any]]:
    """(the joint model in eval mode on `device`, {head: prior counts as a numpy array}), cached per path
    (inference)."""
    model, package = load_joint_package(path)
    return model.to(device), {head: c.numpy() for head, c in package["prior_counts"].items()}


def view_package(package: dict, head: str) -> dict:
    """The single-task ConvNet package (pyscripts.nnet.model format) of one head of a joint package:
    its weights, the head's prior counts, and the head's own dev loss and FER at the chosen epoch."""
    view = joint_from_package(package).view(head)
    dev = package["dev"]
    metric = package["config"]["training"]["dev_metric"]
    head_dev = {"epoch": dev["epoch"], "metric": dev[head][metric], "loss": dev[head]["loss"],
                "fer": dev[head]["fer"]}
    out = package_model(view, package["config"], package["prior_counts"][head], package["epoch"], head_dev,
                        package["history"])
    out["view_of"] = {"head": head, "heads": list(package["head_targets"])}
    out["features"] = package.get("features")
    return out


def write_view(joint_path: str | Path, head: str, out_dir: str | Path) -> Path:
    """OUT_DIR/final.pt (the head's view) and OUT_DIR/prior_counts; returns the model path."""
    from pyscripts.kaldi.tables import write_kaldi_vector
    _, package = load_joint_package(joint_path)
    if head not in package["head_targets"]:
        raise DataError(f"{joint_path} has no head '{head}' (its heads: {', '.join(package['head_targets'])})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    view = view_package(package, head)
    tmp = out_dir / "final.pt.tmp"
    torch.save(view, tmp)
    tmp.replace(out_dir / "final.pt")
    write_kaldi_vector(out_dir / "prior_counts", view["prior_counts"].tolist(), fmt="{:d}")
    log.info("%s: the %s head of %s (%d outputs, epoch %d)", out_dir / "final.pt", head, joint_path,
             view["num_targets"], view["epoch"])
    return out_dir / "final.pt"


# ---------------------------------------------------------------- command line
@cli_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("view", help="write the single-task ConvNet of one head")
    v.add_argument("model", help="the joint final.pt")
    v.add_argument("head", choices=HEADS)
    v.add_argument("out_dir", help="receives final.pt and prior_counts")
    args = parser.parse_args(argv)
    write_view(args.model, args.head, args.out_dir)


if __name__ == "__main__":
    main()
