"""The hybrid ASR-SER system of the paper's figure as one network: the ConvNet's layers 1..5 (the trunk)
shared by two output layers, `asr` (the pdfs of the monophone alignment) and `ser` (4 emotions + sil).

  python3 -m pyscripts.nnet.joint train [--config conf/convnet_joint.yaml] [--set KEY=VALUE ...]
      [--device auto|cpu|cuda] [--num-threads N] [--force] [--check]
      ASR_TRAIN_DATA ASR_DEV_DATA ASR_TRAIN_TARGETS ASR_DEV_TARGETS
      SER_TRAIN_DATA SER_DEV_DATA SER_TRAIN_TARGETS SER_DEV_TARGETS EXP_DIR
          trains on batches mixing both corpora (pyscripts/nnet/joint_train.py) -> EXP_DIR/final.pt
  python3 -m pyscripts.nnet.joint view JOINT_MODEL asr|ser OUT_DIR
          OUT_DIR/final.pt: the single-task view, an ordinary ConvNet package (trunk + that head), and
          OUT_DIR/prior_counts: its head's training-target counts (the priors of hybrid decoding)
  python3 -m pyscripts.nnet.joint compare [--fold K] JOINT_DIR ASR_BASELINE_DIR SER_BASELINE_DIR
          JOINT_DIR/results.md: one line per task, joint against its single-task baseline

The network: the trunk is that of pyscripts/nnet/model.py (built by it, so the same layers and
initialisation); layer 6 is a pair of heads. forward(windows) gives {head: logits} for every frame from
one pass through the trunk; forward(windows, split={"asr": n, "ser": m}) sends the first n frames of a
mixed batch to the asr head and the next m to the ser head (training). BatchNorm layers belong to the
trunk: they normalise the mixed batch as a whole, and their running statistics are those of the mixture,
used by both heads at inference. One input normalisation too (feat_mean, feat_std: the mixture's, see
joint_train.py), so one forward pass of an utterance serves both tasks.

A single-task view (view(head)) is a ConvNet whose modules are this model's: layers 1..5 the trunk,
layer 6 the head; its outputs equal the head's. Saved as a ConvNet package (view_package), it is what the
existing stages use unchanged: steps/decode_hybrid.sh --model (with the asr head's prior counts),
python3 -m pyscripts.ser.evaluate, pyscripts/infer.py.

Package (final.pt): format JOINT_PACKAGE_FORMAT, model_args (with head_targets {head: outputs}), the state
dict, prior_counts {head: counts}, the config, and the training's epoch, dev results and history.
"""
import argparse
import functools
import json
import logging
from pathlib import Path

import torch
from torch import nn

from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.model import (JOINT_PACKAGE_FORMAT, PACKAGE_FORMAT, TRANSFERABLE_LAYERS, ConvNet,
                                  package_model, reinit_layer)

log = logging.getLogger("joint")
HEADS = ("asr", "ser")


class JointConvNet(nn.Module):
    def __init__(self, head_targets, feat_dim=40, context=15, conv1_channels=64, conv2_channels=128,
                 fc_dim=1024, dropout=0.6):
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
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))

    def layer(self, n):
        """Layer n of the paper's table: 1..5 the trunk, 6 all heads (so freeze_layers applies)."""
        if not 1 <= n <= TRANSFERABLE_LAYERS + 1:
            raise ValueError(f"layer number {n} is outside 1..{TRANSFERABLE_LAYERS + 1}")
        return self.heads if n == TRANSFERABLE_LAYERS + 1 else getattr(self, f"layer{n}")

    def trunk(self, windows):
        x = windows
        for n in range(1, TRANSFERABLE_LAYERS + 1):
            x = self.layer(n)(x)
        return x

    def forward(self, windows, split=None):
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

    def conv_kernels(self):
        """The kernels the paper regularises with L2 (as ConvNet.conv_kernels)."""
        return [w for w in (self.layer1[0].weight, self.layer2[0].weight) if w.requires_grad]

    def train(self, mode=True):
        super().train(mode)
        for n in range(1, self.frozen_layers + 1):  # frozen layers keep their BatchNorm statistics
            for m in self.layer(n).modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def model_args(self):
        """The constructor's arguments: what rebuilds this network."""
        return dict(head_targets=dict(self.head_targets), feat_dim=self.feat_dim, context=self.context,
                    conv1_channels=self.layer1[0].out_channels, conv2_channels=self.layer2[0].out_channels,
                    fc_dim=self.layer3[0].out_features, dropout=self.layer3[3].p)

    def view(self, head):
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
        net.layer6 = self.heads[head]
        net.feat_mean, net.feat_std = self.feat_mean, self.feat_std
        net.frozen_layers = self.frozen_layers
        return net.train(self.training)


def build_joint_model(head_targets, feat_dim, model_cfg):
    """A JointConvNet with the model section of a training config (as model.build_model)."""
    return JointConvNet(head_targets, feat_dim=feat_dim, context=model_cfg["context"],
                        conv1_channels=model_cfg["conv1_channels"], conv2_channels=model_cfg["conv2_channels"],
                        fc_dim=model_cfg["fc_dim"], dropout=model_cfg["dropout"])


# ---------------------------------------------------------------- packages
def package_joint(model, cfg, prior_counts, epoch, dev, history):
    """What the joint final.pt holds (see the module doc); prior_counts: {head: counts tensor}."""
    return {"format": JOINT_PACKAGE_FORMAT, "model_args": model.model_args(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "head_targets": dict(model.head_targets),
            "prior_counts": {head: torch.as_tensor(c).cpu() for head, c in prior_counts.items()},
            "config": cfg, "epoch": epoch, "dev": dev, "history": history}


def joint_from_package(package):
    model = JointConvNet(**package["model_args"])
    model.load_state_dict(package["state_dict"])
    model.trained_features = package.get("features")  # inference checks its features against them
    return model.eval()


def load_joint_package(path):
    """A saved joint model -> (JointConvNet on the CPU, in eval mode; package dict)."""
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise DataError(f"cannot load model {path}: {err}") from None
    if isinstance(package, dict) and package.get("format") == PACKAGE_FORMAT:
        raise DataError(f"{path} is a single-task ConvNet; a joint ASR-SER model is the final.pt of "
                        f"local/run_joint.sh (python3 -m pyscripts.nnet.joint train)")
    if not isinstance(package, dict) or package.get("format") != JOINT_PACKAGE_FORMAT:
        raise DataError(f"{path} is not a joint ASR-SER model of pyscripts.nnet.joint (expected its final.pt)")
    return joint_from_package(package), package


@functools.lru_cache(maxsize=2)
def load_joint_model(path, device="cpu"):
    """(the joint model in eval mode on `device`, {head: prior counts as a numpy array}), cached per path
    (inference)."""
    model, package = load_joint_package(path)
    return model.to(device), {head: c.numpy() for head, c in package["prior_counts"].items()}


def view_package(package, head):
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


def write_view(joint_path, head, out_dir):
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


# ---------------------------------------------------------------- the comparison with the baselines
def _asr_cells(model_dir):
    from pyscripts.asr.scoring import model_results
    row = model_results(model_dir)
    return [row[k] for k in ("FER dev", "FER test", "PER dev", "PER test")]


def _ser_cells(fold_dir):
    cells = []
    for metric in ("E", "UE"):
        for subset in ("valid", "test"):
            path = Path(fold_dir) / "eval" / subset / "metrics.json"
            cells.append(100 * json.loads(path.read_text())[metric] if path.is_file() else None)
    return cells


def _fmt(values):
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def _diff(joint, base):
    return " / ".join("–" if j is None or b is None else f"{j - b:+.1f}" for j, b in zip(joint, base))


def compare(joint_dir, asr_baseline, ser_baseline, fold=1):
    """JOINT_DIR/results.md: ASR (FER/PER on dev and test, decoded with the asr view in JOINT_DIR/asr)
    and SER (E/UE on the fold's valid and test sets, JOINT_DIR/ser/foldK/eval), one line per task."""
    joint_dir = Path(joint_dir)
    rows = [("ASR, TIMIT: FER Dev / FER Test / PER Dev / PER Test", _asr_cells(asr_baseline),
             _asr_cells(joint_dir / "asr"), asr_baseline),
            (f"SER, IEMOCAP fold{fold}: E Dev / E Test / UE Dev / UE Test",
             _ser_cells(Path(ser_baseline) / f"fold{fold}"), _ser_cells(joint_dir / "ser" / f"fold{fold}"),
             Path(ser_baseline) / f"fold{fold}")]
    lines = ["# Joint ASR-SER ConvNet against the single-task baselines", "",
             f"One network ({joint_dir}/final.pt): the trunk (layers 1..5) shared, one output layer per task, "
             f"trained on batches mixing TIMIT and IEMOCAP fold{fold} frames. Error rates in %; "
             "the last column is joint minus baseline (negative: the joint model is better).", "",
             "| Task: metrics (%) | Baseline (single-task) | Joint | Joint − Baseline |", "|---|---|---|---|"]
    for title, base, joint, base_dir in rows:
        lines.append(f"| {title} | {_fmt(base)} ({base_dir}) | {_fmt(joint)} | {_diff(joint, base)} |")
    lines += ["", _size_and_time(joint_dir, asr_baseline, Path(ser_baseline) / f"fold{fold}")]
    text = "\n".join(lines) + "\n"
    (joint_dir / "results.md").write_text(text)
    return text


def _size_and_time(joint_dir, *baseline_dirs):
    """A sentence on parameters and training time, joint against the two baselines together."""
    from pyscripts.nnet.train import read_summary

    def params(path):
        package = torch.load(path, map_location="cpu", weights_only=True)
        return sum(v.numel() for k, v in package["state_dict"].items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked", "feat_mean", "feat_std")))

    def seconds(d):
        summary = read_summary(d)
        return float(summary["seconds"]) if summary else None
    dirs = [Path(joint_dir), *map(Path, baseline_dirs)]
    if not all((d / "final.pt").is_file() for d in dirs):
        return "Parameters and training times: a model is missing."
    n_joint, n_base = params(dirs[0] / "final.pt"), sum(params(d / "final.pt") for d in dirs[1:])
    times = [seconds(d) for d in dirs]
    time_text = "–" if None in times else f"{times[0]:.0f} s against {times[1]:.0f} + {times[2]:.0f} s"
    return (f"Parameters: {n_joint:,} (joint) against {n_base:,} (the two baselines together). "
            f"Training time: {time_text} (this run's wall clock, train_summary).")


# ---------------------------------------------------------------- command line
@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the joint model on batches mixing both corpora")
    t.add_argument("--config", default="conf/convnet_joint.yaml")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set joint.ser_weight=0.5 (repeatable)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    t.add_argument("--force", action="store_true", help="train afresh even when final.pt is up to date")
    t.add_argument("--check", action="store_true", help="only print 'up-to-date' when EXP_DIR/final.pt "
                   "was trained on these inputs (final.stamp), else why not")
    for head in HEADS:
        for name in ("train_data", "dev_data", "train_targets", "dev_targets"):
            t.add_argument(f"{head}_{name}")
    t.add_argument("exp_dir")
    v = sub.add_parser("view", help="write the single-task ConvNet of one head")
    v.add_argument("model", help="the joint final.pt")
    v.add_argument("head", choices=HEADS)
    v.add_argument("out_dir", help="receives final.pt and prior_counts")
    c = sub.add_parser("compare", help="JOINT_DIR/results.md: joint against the single-task baselines")
    c.add_argument("--fold", type=int, default=1, help="the SER fold the joint model was trained on")
    c.add_argument("joint_dir", help="e.g. exp/joint (with asr/decode_{dev,test}, ser/foldK/eval)")
    c.add_argument("asr_baseline", help="e.g. exp/convnet_asr")
    c.add_argument("ser_baseline", help="e.g. exp/ser (the fold's eval in foldK/eval)")
    args = parser.parse_args(argv)
    if args.command == "view":
        write_view(args.model, args.head, args.out_dir)
    elif args.command == "compare":
        print(compare(args.joint_dir, args.asr_baseline, args.ser_baseline, args.fold), end="")
    else:
        from pyscripts.nnet import joint_train
        joint_train.main_train(args)


if __name__ == "__main__":
    main()
