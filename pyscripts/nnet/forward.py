"""Inference with a trained ConvNet (final.pt): frame log-posteriors for decoding and SER.

SharedForward runs several models on the same features at once (the rows of a transfer sweep on one
fold): a layer is computed once for all the models whose input normalisation and layers up to that one
are equal, value for value. The frozen layers of the rows l = 1..5 are the source model's, so rows
l >= 2 share both convolutions. Each model gets the same numbers as alone: the same layers run on the
same batches.

Frames go through the network in batches of INFER_BATCH frames (default; GPU_INFER_BATCH on a GPU). On
a CPU small batches are faster: a batch of 1024 windows makes 260 MB activations after layer 1, and the
elementwise layers (BatchNorm, ReLU, pooling) then run from memory instead of cache. The log-posteriors
do not depend on the batch size (each frame's window goes through the same per-frame arithmetic).
"""
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyscripts.errors import DataError
from pyscripts.kaldi.features import feature_differences
from pyscripts.nnet.data import gather_windows
from pyscripts.nnet.model import NUM_LAYERS, ConvNet, load_package

log = logging.getLogger(__name__)
# (model, features) pairs already warned about: once each, not per utterance
_warned: set[tuple[str, str | None]] = set()

INFER_BATCH = 64         # frames per forward batch on a CPU
GPU_INFER_BATCH = 2048


def infer_batch(device: torch.device | str) -> int:
    """The default number of frames per forward batch on a device."""
    return GPU_INFER_BATCH if torch.device(device).type == "cuda" else INFER_BATCH


@functools.lru_cache(maxsize=4)
def load_model(model_path: str, device: torch.device | str = "cpu") -> ConvNet:
    """The model in eval mode on `device`, cached per path."""
    model, _ = load_package(model_path)
    return model.to(device)


def check_trained_features(model: Any, model_name: str | Path, given: dict | None, fix: str) -> None:
    """Refuses features made with other options than those `model` was trained on (model.trained_features,
    from final.pt): other mel bins fail on the input size, another window gives other posteriors silently.
    given: the feature record (pyscripts.kaldi.features.feature_record) of the features about to go
    through the model, or None when unknown; fix: what to do about a mismatch. Without a record on
    either side the features are assumed to match, with a warning."""
    trained = getattr(model, "trained_features", None)
    if trained is None or given is None:
        key = (str(model_name), None if given is None else given["conf"])
        if key not in _warned:
            _warned.add(key)
            log.warning("%s", f"{model_name} does not record the feature options it was trained on (trained before "
                        "they were recorded): train it again to have them checked" if trained is None else
                        f"the features given to {model_name} do not record their options (made before they "
                        f"were recorded): assumed to be those of {trained['conf']}")
        return
    diffs = feature_differences(trained, given)
    if diffs:
        raise DataError(f"{given['conf']}: not the features {model_name} was trained on ({'; '.join(diffs)}: "
                        f"the training's value first, from {trained['conf']}); {fix}")


@torch.no_grad()
def log_posteriors(model_path: str | Path, feats: np.ndarray, batch_size: int | None = None,
                   device: torch.device | str = "cpu") -> Any:
    """feats: (frames, dim) raw fbank of one utterance -> (frames, num_targets) float32 log-posteriors.
    The model's stored normalisation is applied here. The log priors that turn these into the
    pseudo log-likelihoods of hybrid decoding come from pyscripts.asr.hybrid.log_priors_from_counts."""
    return network_log_posteriors(load_model(str(model_path), device), feats, batch_size)


@torch.no_grad()
def network_log_posteriors(model: Any, feats: np.ndarray, batch_size: int | None = None) -> Any:
    """log_posteriors of a loaded model (on its device). A network whose forward gives {head: logits}
    (pyscripts/nnet/joint.py) gives {head: log-posteriors}: the heads that share an input normalisation
    from one pass, one pass per normalisation."""
    device = model.feat_mean.device
    x = torch.tensor(np.asarray(feats, dtype=np.float32), device=device)  # a copy: kaldiio arrays may be read-only
    _check_features(x, model.feat_dim)
    batch_size = batch_size or infer_batch(device)
    if model.feat_mean.dim() == 1:
        out = [model(windows) for windows in _window_batches(model, x, batch_size)]
        return torch.log_softmax(torch.cat(out), dim=1).cpu().numpy()
    result = {}
    for heads, (mean, std) in _heads_by_normalisation(model).items():
        out = [model(windows) for windows in _window_batches(model, x, batch_size, mean, std)]
        result.update({h: torch.log_softmax(torch.cat([o[h] for o in out]), dim=1).cpu().numpy() for h in heads})
    return {head: result[head] for head in model.head_targets}


def _heads_by_normalisation(model):
    """{(heads...): (mean, std)} of a joint model: the heads grouped by equal input normalisation."""
    groups = {}
    for head in model.head_targets:
        mean, std = model.normalisation(head)
        same = next((k for k, (m, s) in groups.items() if torch.equal(m, mean) and torch.equal(s, std)), None)
        if same is None:
            groups[(head,)] = (mean, std)
        else:
            groups[same + (head,)] = groups.pop(same)
    return groups


def _check_features(x, feat_dim):
    if x.ndim != 2 or x.shape[1] != feat_dim or len(x) == 0:
        raise ValueError(f"features of shape {tuple(x.shape)}: the model expects (frames>0, {feat_dim})")


def _window_batches(model, x, batch_size, mean=None, std=None):
    """The model's normalised input windows of every frame of x (with mean, std: normalised with them
    instead of the model's), batch_size frames at a time."""
    x = (x - (model.feat_mean if mean is None else mean)) / (model.feat_std if std is None else std)
    n = len(x)
    first, last = torch.zeros(n, dtype=torch.long, device=x.device), torch.full((n,), n - 1, device=x.device)
    for start in range(0, n, batch_size):
        frames = torch.arange(start, min(start + batch_size, n), device=x.device)
        yield gather_windows(x, first, last, frames, model.context)


def _same_tensors(a, b):
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def _input_state(model):
    """What the windows fed to layer 1 depend on: the normalisation and the context."""
    return {"feat_mean": model.feat_mean, "feat_std": model.feat_std, "context": torch.tensor(model.context)}


class SharedForward:
    """Log-posteriors of several ConvNets on the same features, sharing the layers they have in common
    (see the module doc)."""

    def __init__(self, models: Sequence[ConvNet]) -> None:
        if not models:
            raise ValueError("no model to run")
        self.models = list(models)
        states = [[_input_state(m)] + [m.layer(n).state_dict() for n in range(1, NUM_LAYERS + 1)]
                  for m in self.models]
        # tree[(n, members)]: members (model indices sharing layers < n) split into groups equal at layer n.
        self.tree = {}
        self._split(tuple(range(len(self.models))), 0, states)

    def _split(self, members, n, states):
        groups = []
        for i in members:
            same = next((g for g in groups if _same_tensors(states[g[0]][n], states[i][n])), None)
            if same is None:
                groups.append([i])
            else:
                same.append(i)
        self.tree[(n, members)] = [tuple(g) for g in groups]
        if n < NUM_LAYERS:
            for group in self.tree[(n, members)]:
                self._split(group, n + 1, states)

    def layer_runs(self) -> list[int]:
        """How many times each layer 1..6 runs per batch (len(models) each without sharing)."""
        return [sum(len(g) for (k, _), g in self.tree.items() if k == n) for n in range(1, NUM_LAYERS + 1)]

    def _forward(self, x, n, members, out):
        """x: the input of layer n, the same for all members; fills out[i] with model i's logits."""
        for group in self.tree[(n, members)]:
            y = self.models[group[0]].layer(n)(x)
            if n == NUM_LAYERS:
                for i in group:
                    out[i].append(y)
            else:
                self._forward(y, n + 1, group, out)

    @torch.no_grad()
    def log_posteriors(self, feats: np.ndarray, batch_size: int | None = None) -> list[np.ndarray]:
        """feats: (frames, dim) raw fbank of one utterance -> [(frames, num_targets) log-posteriors] per model."""
        x = torch.tensor(np.asarray(feats, dtype=np.float32), device=self.models[0].feat_mean.device)
        batch_size = batch_size or infer_batch(x.device)
        out = [[] for _ in self.models]
        for group in self.tree[(0, tuple(range(len(self.models))))]:
            _check_features(x, self.models[group[0]].feat_dim)
            for windows in _window_batches(self.models[group[0]], x, batch_size):
                self._forward(windows, 1, group, out)
        return [torch.log_softmax(torch.cat(o), dim=1).cpu().numpy() for o in out]
