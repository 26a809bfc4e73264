"""Inference with a trained ConvNet (final.pt): frame log-posteriors for decoding and SER."""
import functools

import numpy as np
import torch

from pyscripts.nnet.data import gather_windows
from pyscripts.nnet.model import load_package


@functools.lru_cache(maxsize=4)
def load_model(model_path, device="cpu"):
    """The model in eval mode on `device`, cached per path."""
    model, _ = load_package(model_path)
    return model.to(device)


@torch.no_grad()
def log_posteriors(model_path, feats, batch_size=1024, device="cpu"):
    """feats: (frames, dim) raw fbank of one utterance -> (frames, num_targets) float32 log-posteriors.
    The model's stored normalisation is applied here. The log priors that turn these into the
    pseudo log-likelihoods of hybrid decoding come from pyscripts.asr.hybrid.log_priors_from_counts."""
    return network_log_posteriors(load_model(str(model_path), device), feats, batch_size)


@torch.no_grad()
def network_log_posteriors(model, feats, batch_size=1024):
    """log_posteriors of a loaded model (on its device). A network whose forward gives {head: logits}
    (pyscripts/nnet/joint.py) gives {head: log-posteriors}, all heads from one pass."""
    device = model.feat_mean.device
    x = torch.tensor(np.asarray(feats, dtype=np.float32), device=device)  # a copy: kaldiio arrays may be read-only
    if x.ndim != 2 or x.shape[1] != model.feat_dim or len(x) == 0:
        raise ValueError(f"features of shape {tuple(x.shape)}: the model expects (frames>0, {model.feat_dim})")
    x = (x - model.feat_mean) / model.feat_std
    n = len(x)
    first, last = torch.zeros(n, dtype=torch.long, device=device), torch.full((n,), n - 1, device=device)
    out = []
    for start in range(0, n, batch_size):
        frames = torch.arange(start, min(start + batch_size, n), device=device)
        out.append(model(gather_windows(x, first, last, frames, model.context)))
    if isinstance(out[0], dict):
        return {head: torch.log_softmax(torch.cat([o[head] for o in out]), dim=1).cpu().numpy() for head in out[0]}
    return torch.log_softmax(torch.cat(out), dim=1).cpu().numpy()
