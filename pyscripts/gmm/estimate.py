"""The GMM re-estimation of Kaldi's monophone training, done on statistics as gmm-est sees them.

Kaldi accumulates each job's statistics in double precision but stores them in single precision
(gmm-acc-stats-ali's acc files, and the sum gmm-sum-accs writes for gmm-est). That rounding decides
which Gaussians survive --min-gaussian-occupancy and which pdfs --min-count lets split, so the
embedded trainer rounds the same way, and then updates the GMMs as MleDiagGmmUpdate does (in double,
stored in single precision). Done here because kaldi-hmm-gmm's accumulators square the features in
single precision and cannot be loaded with rounded statistics.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class GmmStats:
    """Zeroth, first and second order statistics of one pdf's Gaussians (double)."""
    occ: np.ndarray
    x: np.ndarray
    x2: np.ndarray


def job_stats(am, frames, pdfs):
    """gmm-acc-stats-ali's statistics of one job from its aligned frames (float32 rows, the pdf of
    each): GmmStats per pdf, summed in double over each frame's Gaussian posteriors, and the total
    log-likelihood."""
    stats, tot_like = [], 0.0
    for pdf in range(am.num_pdfs):
        x = frames[pdfs == pdf]
        gmm = am.get_pdf(pdf)
        if not len(x):
            zeros = np.zeros((gmm.num_gauss, frames.shape[1]))
            stats.append(GmmStats(np.zeros(gmm.num_gauss), zeros, zeros.copy()))
            continue
        loglikes = np.asarray(gmm.log_likelihoods_matrix(x))
        top = loglikes.max(1, keepdims=True)
        post = np.exp(loglikes - top)
        total = post.sum(1, keepdims=True)
        tot_like += float((top + np.log(total)).sum())
        post = (post / total).astype(np.float64)
        x = x.astype(np.float64)
        stats.append(GmmStats(post.sum(0), post.T @ x, post.T @ (x * x)))
    return stats, tot_like


def summed_stats(jobs):
    """gmm-sum-accs over the jobs' statistics (lists of GmmStats, in the order the shell globs their
    files): each job's rounded to float32, added in double, the sum rounded to float32 again."""
    def rounded(values):
        return np.float32(values).astype(np.float64)

    summed = []
    for per_job in zip(*jobs):
        occ, x, x2 = (sum(rounded(getattr(st, name)) for st in per_job) for name in ("occ", "x", "x2"))
        summed.append(GmmStats(rounded(occ), rounded(x), rounded(x2)))
    return summed


def _invert(values):
    """Kaldi's InvertElements: 1.0 / x computed in double (the caller stores it in its type)."""
    return 1.0 / np.asarray(values, dtype=np.float64)


def update_gmm(gmm, stats, min_gaussian_occupancy, min_gaussian_weight=1e-5, min_variance=1e-3):
    """MleDiagGmmUpdate with all of means, variances and weights: ML estimates of the Gaussians with
    more than min_gaussian_occupancy frames, the others removed (all but the last) with the weights
    renormalised. Returns the number removed."""
    inv_vars = np.asarray(gmm.inv_vars, dtype=np.float64)
    variances = _invert(inv_vars)
    means = np.asarray(gmm.means_invvars, dtype=np.float64) * variances
    weights = np.asarray(gmm.weights, dtype=np.float64).copy()
    total = stats.occ.sum()
    remove = []
    for g, occ in enumerate(stats.occ):
        prob = occ / total if total > 0 else 1.0 / len(weights)
        if occ > np.float32(min_gaussian_occupancy) and prob > np.float32(min_gaussian_weight):
            weights[g] = prob
            means[g] = stats.x[g] * (1.0 / occ)
            variances[g] = np.maximum(stats.x2[g] * (1.0 / occ) - means[g] * means[g],
                                      np.float32(min_variance))
        elif len(remove) < len(weights) - 1:
            remove.append(g)
        else:
            weights[g] = max(prob, np.float32(min_gaussian_weight))
    inv32 = _invert(np.float32(variances)).astype(np.float32)
    gmm.set_weights(weights.astype(np.float32))
    gmm.set_invvars_and_means(inv32, means.astype(np.float32))
    gmm.compute_gconsts()
    if remove:
        gmm.remove_components(remove, True)
        gmm.compute_gconsts()
    return len(remove)
