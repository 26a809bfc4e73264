"""SVCCA and PWCCA: canonical-correlation measures of how similar two representations of the same
inputs are, beside linear CKA (cka.py), which computes them on the same layer outputs.

Both start from two views X (n x p) and Y (n x q) of the same n examples, columns centred.
  SVCCA (Raghu et al. 2017): each view is reduced to its leading singular directions, the fewest that
      explain `keep` (99%) of its variance, then CCA between the reduced views; the value is the mean
      of the canonical correlations. Invariant to any invertible linear transform of a view (when the
      reduction keeps all of it).
  PWCCA (Morcos et al. 2018): the same canonical correlations, weighted by how much of X each
      canonical direction accounts for: alpha_i proportional to sum_j |<h_i, x_j>| over the centred
      neurons x_j of X, h_i the i-th canonical variate of X (unit norm). Directions that carry much of
      X count more than ones that are highly correlated but small. Being defined on X's neurons, it is
      invariant to scaling, permuting and flipping them, not to rotating them, and not symmetric.
CCA of d-dimensional views on n examples finds correlations near 1 for unrelated views once d is a
sizeable share of n, so each reduced view is also cut to at most `max_dims` directions (n // 10 unless
given): the floor that unrelated views reach is then well below 1, and the report's reference curves
(an untrained network against the trained one) show where it lies.
"""
import numpy as np
import scipy.linalg

# Singular values below this share of the largest are treated as zero (rank deficiency); the same
# for the eigenvalues (squared singular values) of svd_reduce, at the precision they are computed to.
RANK_TOL = 1e-10
EIG_TOL = 1e-12


def _centre(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a representation must be (examples, features), got shape {x.shape}")
    return x - x.mean(axis=0, keepdims=True)


def _orthonormal_basis(x):
    """An orthonormal basis (n x r) of the column space of centred x, r its numerical rank."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise ValueError("a representation is constant over the examples; CCA is undefined")
    return u[:, s > RANK_TOL * s[0]]


def svd_reduce(x, keep=0.99, max_dims=None):
    """Centred x projected onto its leading singular directions, the fewest that explain `keep` of
    its variance and at most max_dims: (n, k) with k >= 1. The directions come from the eigenvectors
    of the smaller of x x^T and x^T x, only the leading max_dims of them computed (much faster than a
    full SVD of a wide layer)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep}: the share of variance to keep must be in (0, 1]")
    x = _centre(x)
    n, p = x.shape
    wide = p > n
    gram = x @ x.T if wide else x.T @ x
    limit = min(n, p) if max_dims is None else max(1, min(int(max_dims), n, p))
    m = len(gram)
    values, vectors = scipy.linalg.eigh(gram, subset_by_index=[m - limit, m - 1])
    values, vectors = np.clip(values[::-1], 0.0, None), vectors[:, ::-1]
    if values.size == 0 or values[0] == 0:
        raise ValueError("a representation is constant over the examples; CCA is undefined")
    share = np.cumsum(values) / np.trace(gram)
    k = int(np.searchsorted(share, keep - 1e-12) + 1)
    k = min(k, limit, int(np.sum(values > EIG_TOL * values[0])))
    # wide: the eigenvectors are the left singular vectors u, and u * s is the projection
    return vectors[:, :k] * np.sqrt(values[:k]) if wide else x @ vectors[:, :k]


def cca(x, y):
    """Canonical correlations of two views (rows: the same examples), largest first, and the unit-norm
    canonical variates of x, (n, k), k = the smaller rank."""
    x, y = _centre(x), _centre(y)
    if len(x) != len(y):
        raise ValueError(f"the representations cover {len(x)} and {len(y)} examples: they must be the same")
    qx, qy = _orthonormal_basis(x), _orthonormal_basis(y)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), qx @ u[:, :len(rho)]


def default_max_dims(n):
    """The cap on each reduced view's directions for n examples (see the module doc)."""
    return max(1, n // 10)


def _reduced_cca(rx, ry):
    """cca() for views made by svd_reduce: their columns are already centred and orthogonal, so the
    orthonormal bases are the columns scaled to unit norm (no SVD of the n x k views)."""
    if len(rx) != len(ry):
        raise ValueError(f"the representations cover {len(rx)} and {len(ry)} examples: they must be the same")
    qx, qy = rx / np.linalg.norm(rx, axis=0), ry / np.linalg.norm(ry, axis=0)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), qx @ u[:, :len(rho)]


def svcca_of_reduced(rx, ry):
    """SVCCA from views already reduced by svd_reduce."""
    return float(_reduced_cca(rx, ry)[0].mean())


def pwcca_of_reduced(x, rx, ry):
    """PWCCA from the views reduced by svd_reduce, weights from the neurons of x (unreduced)."""
    rho, variates = _reduced_cca(rx, ry)
    weights = np.abs(variates.T @ _centre(x)).sum(axis=1)
    total = weights.sum()
    if total == 0:
        raise ValueError("the canonical directions carry none of the representation; PWCCA is undefined")
    return float(np.sum(weights / total * rho))


def svcca(x, y, keep=0.99, max_dims=None):
    """Mean canonical correlation of the SVD-reduced views (see the module doc)."""
    max_dims = default_max_dims(len(x)) if max_dims is None else max_dims
    return svcca_of_reduced(svd_reduce(x, keep, max_dims), svd_reduce(y, keep, max_dims))


def pwcca(x, y, keep=0.99, max_dims=None):
    """Projection-weighted mean canonical correlation, weights from the neurons of x (see the module
    doc); the CCA runs on the SVD-reduced views, as SVCCA's, so that it is defined for wide layers."""
    max_dims = default_max_dims(len(x)) if max_dims is None else max_dims
    return pwcca_of_reduced(x, svd_reduce(x, keep, max_dims), svd_reduce(y, keep, max_dims))
