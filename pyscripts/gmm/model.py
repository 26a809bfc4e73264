"""GMM-HMM model files for the embedded backend: Kaldi's text final.mdl (TransitionModel then
AmDiagGmm), readable by Kaldi's gmm-* tools, and the tree.

kaldi_hmm_gmm has no model read/write, so the model is written from the objects' contents and
read back by pyscripts.kaldi.model, then rebuilt: the topology and the monophone tree give the
TransitionModel's structure, and its transition probabilities are restored through an MLE update
on counts proportional to the stored probabilities.
"""
import logging
from pathlib import Path

import kaldi_hmm_gmm as khg
import numpy as np

from pyscripts.errors import DataError
from pyscripts.kaldi.model import load_gmm_model, read_tree_context
from pyscripts.kaldi.tables import format_kaldi_vector

log = logging.getLogger(__name__)


def topology_from_text(text):
    topo = khg.HmmTopology()
    topo.read(text)
    return topo


def monophone_tree(topo):
    return khg.monophone_context_dependency(topo.phones, topo.get_phone_to_num_pdf_classes())


def init_mono(topo_text, mean, var):
    """gmm-init-mono: one single-Gaussian pdf per (phone, pdf class), all with the global mean and
    variance. Returns (TransitionModel, tree, AmDiagGmm)."""
    topo = topology_from_text(topo_text)
    tree = monophone_tree(topo)
    gmm = khg.DiagGmm(1, len(mean))
    gmm.set_weights(np.ones(1, dtype=np.float32))
    gmm.set_invvars_and_means(np.asarray(1.0 / var, dtype=np.float32)[None, :],
                              np.asarray(mean, dtype=np.float32)[None, :])
    gmm.compute_gconsts()
    am = khg.AmDiagGmm()
    for _ in range(tree.num_pdfs):
        am.add_pdf(gmm)
    return khg.TransitionModel(tree, topo), tree, am


def _vec(values):
    return " " + format_kaldi_vector(values, "{:.9g}") + "\n"


def _mat(rows):
    body = "\n".join("  " + " ".join(f"{v:.9g}" for v in row) for row in rows)
    return " [\n" + body + " ]\n"


def model_text(tm, am):
    """final.mdl in Kaldi's text format."""
    tm_text = str(tm)
    # str() prints 6 digits; keep the log-probabilities exactly, so that a reload gives the same model.
    head, _, rest = tm_text.partition("<LogProbs>")
    _, _, tail = rest.partition("</LogProbs>")
    tm_text = head + "<LogProbs> \n" + _vec(tm.log_probs) + "</LogProbs>" + tail
    parts = [tm_text, f"<DIMENSION> {am.dim} <NUMPDFS> {am.num_pdfs} "]
    for i in range(am.num_pdfs):
        g = am.get_pdf(i)
        parts += ["<DiagGMM> \n<GCONSTS> ", _vec(g.gconsts), "<WEIGHTS> ", _vec(g.weights),
                  "<MEANS_INVVARS> ", _mat(g.means_invvars), "<INV_VARS> ", _mat(g.inv_vars),
                  "</DiagGMM> \n"]
    return "".join(parts)


def save_model(path, tm, am):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(model_text(tm, am))
    tmp.replace(path)


def save_tree(path, tree):
    """The tree in Kaldi's binary format (as Kaldi writes exp/*/tree)."""
    tree.write(True, str(path))


def restore_transition_probs(tm, log_probs):
    """Sets a TransitionModel's probabilities to log_probs (indexed by transition-id) through an MLE
    update on matching counts."""
    counts = np.exp(np.asarray(log_probs, dtype=np.float64)) * 1e4
    counts[0] = 0.0
    cfg = khg.MleTransitionUpdateConfig()
    cfg.floor = 0.0
    cfg.mincount = 0.0
    tm.mle_update(counts.reshape(-1, 1), cfg)


def load_model(model_path, tree_path=None):
    """(TransitionModel, AmDiagGmm, tree) of a monophone GMM final.mdl (text or binary)."""
    if tree_path is not None:
        width, _ = read_tree_context(tree_path)
        if width != 1:
            raise DataError(f"{tree_path}: context width {width}; the embedded backend handles monophone "
                            "models only (use Kaldi's binaries by setting KALDI_ROOT)")
    parsed, dim, gmms = load_gmm_model(model_path)
    topo = topology_from_text(parsed.topology_text())
    tree = monophone_tree(topo)
    tm = khg.TransitionModel(tree, topo)
    ours = np.array(tm.transition_id_to_pdf_array()[1:])
    if len(ours) != parsed.num_transition_ids or not np.array_equal(ours, parsed.id2pdf[1:]):
        raise DataError(f"{model_path}: its pdfs are not those of a monophone model of its topology; "
                        "the embedded backend handles monophone models only")
    restore_transition_probs(tm, parsed.log_probs)
    if not np.allclose(np.array(tm.log_probs)[1:], parsed.log_probs[1:], atol=1e-4):
        raise DataError(f"{model_path}: could not restore its transition probabilities")
    am = khg.AmDiagGmm()
    for params in gmms:
        g = khg.DiagGmm(len(params.weights), dim)
        g.set_weights(params.weights.astype(np.float32))
        g.set_invvars_and_means(params.inv_vars.astype(np.float32), params.means.astype(np.float32))
        g.compute_gconsts()
        am.add_pdf(g)
    return tm, am, tree
