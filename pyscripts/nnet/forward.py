"""Inference with a trained ConvNet (final.pt): frame log-posteriors for decoding and SER."""
import functools

import numpy as np
import torch

from pyscripts.nnet.data import gather_windows
from pyscripts.nnet.model import load_package


@functools.lru_cache(maxsize=4)
def load_model(model_path, device="cpu"):
    """(model in eval mode on `device`, log prior probabilities of the targets), cached per path."""
    model, package = load_package(model_path)
    counts = package["prior_counts"].double()
    # Unseen targets get a pseudo-count of 1 so that log-likelihoods stay finite.
    log_priors = torch.log(counts.clamp_min(1.0) / counts.clamp_min(1.0).sum()).float()
    return model.to(device), log_priors


@torch.no_grad()
def log_posteriors(model_path, feats, batch_size=1024, device="cpu"):
    """feats: (frames, dim) raw fbank of one utterance -> (frames, num_targets) float32 log-posteriors.
    The model's stored normalisation is applied here. Subtract load_model(...)[1] for the scaled
    log-likelihoods of hybrid decoding."""
    model, _ = load_model(str(model_path), device)
    x = torch.tensor(np.asarray(feats, dtype=np.float32), device=device)  # a copy: kaldiio arrays may be read-only
    if x.ndim != 2 or x.shape[1] != model.feat_dim or len(x) == 0:
        raise ValueError(f"features of shape {tuple(x.shape)}: the model expects (frames>0, {model.feat_dim})")
    x = (x - model.feat_mean) / model.feat_std
    n = len(x)
    first, last = torch.zeros(n, dtype=torch.long, device=device), torch.full((n,), n - 1, device=device)
    out = []
    for start in range(0, n, batch_size):
        frames = torch.arange(start, min(start + batch_size, n), device=device)
        out.append(torch.log_softmax(model(gather_windows(x, first, last, frames, model.context)), dim=1))
    return torch.cat(out).cpu().numpy()
