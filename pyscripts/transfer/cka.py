"""How similar are the ASR and SER networks' representations, layer by layer? Linear CKA.

Linear centred kernel alignment (Kornblith et al. 2019) between two representations X (n x p) and
Y (n x q) of the same n inputs, columns centred:
    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
It is 1 for X against itself, invariant to orthogonal transforms and isotropic scaling of either
side, and near 0 for unrelated features (with n much larger than p and q). ||Y^T X||_F^2 equals
<X X^T, Y Y^T>, so it is computed from the n x n Gram matrices when the layers are wider than n.

The representation of layer k (1..5, the paper's numbering) is the output of that layer's block in
eval mode (after pooling for the conv layers, flattened), for a window of 2*context+1 frames around
each of the common frames. Each network sees the frames normalised with its own input statistics,
as it does in inference. References printed beside the ASR-SER curve: the untrained network the
ASR model started from (redrawn with its training seed; meaningful for a model trained from scratch:
how far training moved each layer), a freshly drawn network of another seed (what the shared input
alone gives) and, optionally, two SER networks of different folds (the same task with other
training speakers; those start from the same draw, as they have the same shape and seed).

With --svcca-out/--pwcca-out, SVCCA and PWCCA (cca.py) of the same pairs on the same layer outputs
are written too, in the same format (PWCCA weighted by the first network of each pair).

  python3 -m pyscripts.transfer.cka --asr-model A.pt --ser-model S.pt [--ser-model2 S2.pt]
      [--frames-per-set 1000] [--seed 7] [--svcca-out T] [--pwcca-out T] DATA_DIR [DATA_DIR ...] OUT_TSV
writes '#' lines saying which frames were used, then one line per layer: layer, asr_ser, asr_init,
asr_random[, ser_ser].
"""
import argparse
import logging
from pathlib import Path

import kaldiio
import numpy as np
import torch

from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.data import frame_set_from_arrays, gather_windows
from pyscripts.nnet.model import TRANSFERABLE_LAYERS, ConvNet
from pyscripts.nnet.model import load_package
from pyscripts.transfer.cca import default_max_dims, pwcca_of_reduced, svcca_of_reduced, svd_reduce

log = logging.getLogger(__name__)


def _centre(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a representation must be (examples, features), got shape {x.shape}")
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x, y, form="auto"):
    """Linear CKA of two representations (rows: the same examples). form: features | gram | auto
    (auto: whichever needs the smaller matrices; both give the same value)."""
    x, y = _centre(x), _centre(y)
    if len(x) != len(y):
        raise ValueError(f"the representations cover {len(x)} and {len(y)} examples: they must be the same")
    n, p, q = len(x), x.shape[1], y.shape[1]
    if form not in ("auto", "features", "gram"):
        raise ValueError(f"form '{form}': use auto, features or gram")
    if form == "features" or (form == "auto" and p * q <= n * n):
        cross = np.sum((y.T @ x) ** 2)
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    else:  # wide layers: the n x n Gram matrices are smaller
        gram_x, gram_y = x @ x.T, y @ y.T
        cross = np.sum(gram_x * gram_y)
        norm_x, norm_y = np.linalg.norm(gram_x), np.linalg.norm(gram_y)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("a representation is constant over the examples; CKA is undefined")
    return float(cross / (norm_x * norm_y))


@torch.no_grad()
def layer_representations(model, windows, batch_size=512):
    """Outputs of layers 1..5 (eval mode), each (n, features) float32, for raw windows (n, 1, W, dim)
    that this function normalises with the model's own input statistics."""
    model.eval()
    outs = [[] for _ in range(TRANSFERABLE_LAYERS)]
    for start in range(0, len(windows), batch_size):
        x = (windows[start:start + batch_size] - model.feat_mean) / model.feat_std
        for n in range(1, TRANSFERABLE_LAYERS + 1):
            x = model.layer(n)(x)
            outs[n - 1].append(x.reshape(len(x), -1).numpy())
    return [np.concatenate(o) for o in outs]


def common_windows(data_dirs, frames_per_set, context, seed):
    """Raw windows around `frames_per_set` frames drawn (seeded, without replacement) from each data
    dir's feats.scp: ((n, 1, 2*context+1, dim) float32, a line per data dir saying what was drawn)."""
    rng = np.random.default_rng(seed)
    windows, notes = [], []
    for data_dir in data_dirs:
        scp = Path(data_dir) / "feats.scp"
        if not scp.is_file():
            raise DataError(f"{scp} not found: CKA needs the fbank features of {data_dir}")
        feats = [np.asarray(m, dtype=np.float32) for _, m in kaldiio.load_scp_sequential(str(scp))]
        frames = frame_set_from_arrays(feats)
        take = min(frames_per_set, frames.num_frames)  # a small set gives all its frames
        pick = torch.from_numpy(np.sort(rng.choice(frames.num_frames, take, replace=False)))
        windows.append(gather_windows(frames.feats, frames.first, frames.last, pick, context))
        notes.append(f"{data_dir}: {take} of {frames.num_frames} frames"
                     + (f" (fewer than the {frames_per_set} asked for)" if take < frames_per_set else ""))
        log.info("%s", notes[-1])
    return torch.cat(windows), notes


def random_like(model, seed):
    """A freshly initialised network of the same shape and input normalisation (He init, fresh BN),
    drawn as the training stage draws it after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    twin = ConvNet(model.num_targets, feat_dim=model.feat_dim, context=model.context,
                   conv1_channels=model.layer1[0].out_channels, conv2_channels=model.layer2[0].out_channels,
                   fc_dim=model.layer6.in_features, dropout=model.layer3[3].p)
    twin.feat_mean.copy_(model.feat_mean)
    twin.feat_std.copy_(model.feat_std)
    return twin.eval()


class LayerViews:
    """A network's layer outputs on the common windows, and their SVD reductions (cca.svd_reduce),
    computed once however many pairs the network is in."""

    def __init__(self, model, windows, keep=0.99):
        self.reps = layer_representations(model, windows)
        self.keep = keep
        self._reduced = {}

    def reduced(self, k):
        if k not in self._reduced:
            self._reduced[k] = svd_reduce(self.reps[k], self.keep, default_max_dims(len(self.reps[k])))
        return self._reduced[k]


def compare_layers(views_a, views_b, cca_measures=False):
    """{measure: [value of layers 1..5]}: linear CKA ('cka'), and with cca_measures SVCCA and PWCCA
    (weights from views_a's network)."""
    layers = range(len(views_a.reps))
    out = {"cka": [linear_cka(views_a.reps[k], views_b.reps[k]) for k in layers]}
    if cca_measures:
        out["svcca"] = [svcca_of_reduced(views_a.reduced(k), views_b.reduced(k)) for k in layers]
        out["pwcca"] = [pwcca_of_reduced(views_a.reps[k], views_a.reduced(k), views_b.reduced(k)) for k in layers]
    return out


def write_layer_table(path, columns, head):
    """The TSV of main: '#' lines `head`, then layer and one column per pair."""
    lines = [f"# {note}" for note in head] + ["\t".join(["layer", *columns])]
    for k in range(TRANSFERABLE_LAYERS):
        lines.append("\t".join([str(k + 1)] + [f"{columns[c][k]:.4f}" for c in columns]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return lines


def read_cka_table(path):
    """The TSV written by main -> {column: [values for layers 1..5]}."""
    lines = [line for line in Path(path).read_text().split("\n") if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    return {name: [float(r[i]) for r in rows] for i, name in enumerate(header) if name != "layer"}


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr-model", required=True)
    parser.add_argument("--ser-model", required=True)
    parser.add_argument("--ser-model2", help="a second SER model (another fold): same-task reference")
    parser.add_argument("--frames-per-set", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--svcca-out", help="also write SVCCA per layer to this TSV")
    parser.add_argument("--pwcca-out", help="also write PWCCA per layer to this TSV")
    parser.add_argument("data_dirs", nargs="+", help="data dirs with feats.scp (e.g. TIMIT dev, IEMOCAP)")
    parser.add_argument("out_tsv")
    args = parser.parse_args(argv)
    asr, asr_package = load_package(args.asr_model)
    ser, _ = load_package(args.ser_model)
    if asr.context != ser.context or asr.feat_dim != ser.feat_dim:
        raise DataError(f"{args.asr_model} and {args.ser_model} take different inputs "
                        f"({2 * asr.context + 1}x{asr.feat_dim} and {2 * ser.context + 1}x{ser.feat_dim})")
    windows, notes = common_windows(args.data_dirs, args.frames_per_set, asr.context, args.seed)
    init_seed = int(asr_package["config"]["training"]["seed"])
    random_seed = args.seed if args.seed != init_seed else init_seed + 1
    with_cca = bool(args.svcca_out or args.pwcca_out)
    asr_views, ser_views = LayerViews(asr, windows), LayerViews(ser, windows)
    pairs = {"asr_ser": compare_layers(asr_views, ser_views, with_cca),
             "asr_init": compare_layers(asr_views, LayerViews(random_like(asr, init_seed), windows), with_cca),
             "asr_random": compare_layers(asr_views, LayerViews(random_like(asr, random_seed), windows), with_cca)}
    if args.ser_model2:
        ser2, _ = load_package(args.ser_model2)
        pairs["ser_ser"] = compare_layers(ser_views, LayerViews(ser2, windows), with_cca)
    head = notes + [f"{len(windows)} frames in all; untrained networks: seed {init_seed} (the training's) "
                    f"and {random_seed}"]
    cca_head = [f"CCA on each layer's leading singular directions: the fewest explaining 99% of its "
                f"variance, at most {default_max_dims(len(windows))} (a tenth of the frames)"]
    for measure, path, extra in (("cka", args.out_tsv, []), ("svcca", args.svcca_out, cca_head),
                                 ("pwcca", args.pwcca_out, cca_head)):
        if path:
            lines = write_layer_table(path, {name: values[measure] for name, values in pairs.items()},
                                      head + extra)
            for line in lines:
                log.info("%s %s", measure, line)
            log.info("%s over %d frames written to %s", measure, len(windows), path)


if __name__ == "__main__":
    main()
