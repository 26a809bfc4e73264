"""Monophone GMM-HMM training, the embedded counterpart of Kaldi's steps/train_mono.sh.

Flat start (every pdf a single Gaussian with the global mean and variance of the first --init-utts
utterances of the first of --nj speaker splits, as gmm-init-mono sees them), equal alignment, then EM:
at the iterations in --realign-iters the data is re-aligned (beam --initial-beam at the first, --beam
after), statistics are accumulated from the alignment, the transition model and GMMs are re-estimated,
and Gaussians are split towards --totgauss, adding an equal share at each of the first --max-iter-inc
iterations. Random numbers are Kaldi's, so the computation follows Kaldi's run of the same data split.
Writes DIR/{0.mdl,final.mdl,tree,final.occs,phones.txt,cmvn_opts} and the last alignment of each
split in DIR/ali.JOB.gz.
"""
import argparse
import logging
import shutil
import time
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import numpy as np

from pyscripts.asr.alignments import write_int_vector_ark
from pyscripts.kaldi.datadir import read_table, split_data
from pyscripts.errors import DataError, cli_main
from pyscripts.gmm.align import Aligner, boost_silence
from pyscripts.gmm.data import (CMVN_OPTS, load_feats, load_transcripts, silence_pdfs,
                                training_graph_compiler)
from pyscripts.gmm.estimate import job_stats, summed_stats, update_gmm
from pyscripts.gmm.kaldi_rand import KaldiRand
from pyscripts.gmm.model import init_mono, save_model, save_tree
from pyscripts.gmm.options import add_mono_options, parse_with_config
from pyscripts.kaldi.tables import write_kaldi_vector

log = logging.getLogger(__name__)


def utt_seed(utt):
    """align-equal-compiled's random seed for an utterance: Kaldi's StringHasher of the key (signed
    chars, 64-bit arithmetic) truncated to a C int."""
    h = 0
    for c in utt.encode("utf-8"):
        h = (h * 7853 + (c - 256 if c > 127 else c)) % 2**64
    h %= 2**32
    return h - 2**32 if h >= 2**31 else h


def equal_align(graph, num_frames, seed):
    """align-equal-compiled: a path through the graph with its frames shared out equally, or None
    when the utterance has fewer frames than its graph needs."""
    ok, path = kaldifst.equal_align(graph, num_frames, seed, 10)
    if not ok:
        return None
    ok, tids, _, _ = kaldifst.get_linear_symbol_sequence(path)
    return tids if ok and len(tids) == num_frames else None


def split_targets(occs, target, power, min_count):
    """Gaussians per pdf when mixing up to `target` in total, as gmm-est --mix-up allocates them
    (one at a time to the pdf with the largest occupancy**power per Gaussian, while occupancy /
    min_count allows). Kaldi's own allocation run on a stand-in model with one 1-dim Gaussian per
    pdf, so that ties go where Kaldi's priority queue sends them."""
    gmm = khg.DiagGmm(1, 1)
    gmm.set_weights(np.ones(1, dtype=np.float32))
    gmm.set_invvars_and_means(np.ones((1, 1), dtype=np.float32), np.zeros((1, 1), dtype=np.float32))
    gmm.compute_gconsts()
    am = khg.AmDiagGmm()
    for _ in occs:
        am.add_pdf(gmm)
    am.split_by_count(np.asarray(occs, dtype=np.float32), target, 0.0, power, min_count)
    return [am.num_gauss_in_pdf(i) for i in range(len(occs))]


def split_gmm(gmm, num_components, perturb_factor, rand):
    """DiagGmm::Split up to num_components: each step halves the heaviest component, and the copy and
    the original move apart by +-perturb_factor * RandGauss * sqrt(inv_var) in means_invvars (float32,
    one Gaussian number per dimension, from `rand`). kaldi-hmm-gmm's split picks the components; its
    own random numbers (not Kaldi's sequence) are disabled by a zero perturbation."""
    means_invvars = np.array(gmm.means_invvars, dtype=np.float32)
    history = gmm.split(num_components, 0.0)
    inv_vars = np.asarray(gmm.inv_vars, dtype=np.float32)
    means_invvars = np.concatenate([means_invvars, np.zeros((len(history), gmm.dim), np.float32)])
    factor = np.float32(perturb_factor)
    new = num_components - len(history)
    for k in history:
        step = np.array([rand.gauss() for _ in range(gmm.dim)], dtype=np.float32)
        step = factor * (step * np.sqrt(inv_vars[k]))
        means_invvars[new] = means_invvars[k] + step
        means_invvars[k] = means_invvars[k] - step
        new += 1
    for k in set(history) | set(range(num_components - len(history), num_components)):
        gmm.set_component_mean(k, means_invvars[k] / inv_vars[k])
    gmm.compute_gconsts()


def mix_up(am, occs, target, perturb_factor, power, min_count):
    """gmm-est --mix-up: splits every pdf with fewer Gaussians than its share of `target`, in pdf
    order, drawing from a fresh Kaldi generator as each gmm-est process does."""
    rand = KaldiRand()
    for pdf, n in enumerate(split_targets(occs, target, power, min_count)):
        gmm = am.get_pdf(pdf)
        if n > gmm.num_gauss:
            split_gmm(gmm, n, perturb_factor, rand)


class MonoTrainer:
    def __init__(self, tm, am, opts):
        self.tm, self.am, self.opts = tm, am, opts
        self.id2pdf = np.array(tm.transition_id_to_pdf_array(), dtype=np.int64)

    def accumulate(self, jobs, alis, feats):
        """gmm-acc-stats-ali in each job, then gmm-sum-accs: the GMM statistics of the aligned frames
        (GmmStats per pdf, rounded as Kaldi stores them), transition counts and the average
        log-likelihood per frame."""
        counts = np.zeros(self.tm.num_transition_ids + 1)
        per_job, tot_like, num_frames = [], 0.0, 0
        # gmm-sum-accs reads x.*.acc in the shell's C-locale order: 1, 10, 11, ..., 2, 20, ...
        for j in sorted(range(len(jobs)), key=lambda j: str(j + 1)):
            aligned = [u for u in jobs[j] if u in alis]
            tids = np.concatenate([np.asarray(alis[u]) for u in aligned] or [np.zeros(0, int)])
            counts += np.bincount(tids, minlength=len(counts))
            frames = np.concatenate([feats[u] for u in aligned] or [np.zeros((0, self.am.dim))])
            stats, like = job_stats(self.am, frames.astype(np.float32), self.id2pdf[tids])
            per_job.append(stats)
            tot_like += like
            num_frames += len(tids)
        return summed_stats(per_job), counts, tot_like / max(num_frames, 1)

    def estimate(self, stats, counts, min_gaussian_occupancy, mixup):
        """gmm-est: transition update, GMM update (dropping Gaussians under min_gaussian_occupancy),
        then Gaussian splitting up to `mixup` in total. Returns the pdfs' occupancies."""
        self.tm.mle_update(counts.reshape(-1, 1), khg.MleTransitionUpdateConfig())
        for pdf, pdf_stats in enumerate(stats):
            update_gmm(self.am.get_pdf(pdf), pdf_stats, min_gaussian_occupancy)
        occs = np.array([st.occ.sum() for st in stats], dtype=np.float32)
        mix_up(self.am, occs, mixup, self.opts.perturb_factor, self.opts.power, self.opts.min_count)
        return occs


def split_jobs(data_dir, nj):
    """utils/split_data.sh's speaker splits (written to DATA/splitNJ as the Kaldi backend does):
    the utterance ids of each, in its feats.scp order."""
    return [list(read_table(d / "feats.scp")) for d in split_data(data_dir, nj)]


def init_stats(mat):
    """gmm-init-mono --train-feats: the mean and variance (E[x^2] - mean^2), in double precision
    and scaled by 1/count as Kaldi does."""
    mat = mat.astype(np.float64)
    scale = 1.0 / len(mat)
    mean = mat.sum(0) * scale
    return mean, (mat * mat).sum(0) * scale - mean * mean


def _initial_model(exp, lang, init_feats):
    """gmm-init-mono on the first utterances of split 1 (Kaldi's `subset-feats --n=N`, transcript or
    not): writes 0.mdl, tree, phones.txt and cmvn_opts. Returns (transition model, tree, GMMs)."""
    mean, var = init_stats(np.concatenate(init_feats))
    tm, tree, am = init_mono((lang / "topo").read_text(), mean, np.maximum(var, 1e-6))
    save_model(exp / "0.mdl", tm, am)
    save_tree(exp / "tree", tree)
    shutil.copy(lang / "phones.txt", exp / "phones.txt")
    (exp / "cmvn_opts").write_text(CMVN_OPTS + "\n")
    return tm, tree, am


def _equal_alignments(lang, tm, tree, utts, feats, data_dir):
    """The training graphs of the utterances and their equal alignments (Kaldi's align-equal-compiled;
    an utterance with too few frames for its phones waits for the first re-alignment)."""
    compiler = training_graph_compiler(lang, tm, tree)
    graphs = {u: compiler.compile_graph_from_text(text) for u, text in utts.items()}
    alis = {}
    for u in utts:
        ali = equal_align(graphs[u], len(feats[u]), utt_seed(u))
        if ali is not None:
            alis[u] = ali
    if not alis:
        raise DataError(f"{data_dir}: no utterance is long enough for an equal alignment")
    if len(alis) < len(utts):
        log.warning("equal alignment failed for %d utterances (too few frames for their phones); "
                    "they wait for the first re-alignment", len(utts) - len(alis))
    return graphs, alis


def _realign(aligner, utts, graphs, feats, it):
    alis = {}
    for u in utts:
        ali = aligner.align(u, graphs[u], feats[u])
        if ali is not None:
            alis[u] = ali
    if not alis:
        raise DataError(f"iteration {it}: every utterance failed to align; the model diverged")
    return alis


def train_mono(data_dir, lang_dir, exp_dir, opts, nj=1):
    start = time.time()
    exp, lang = Path(exp_dir), Path(lang_dir)
    exp.mkdir(parents=True, exist_ok=True)
    feats = load_feats(data_dir, opts.delta_order)
    transcripts = load_transcripts(data_dir, lang / "words.txt")
    splits = split_jobs(data_dir, nj)
    jobs = [[u for u in split if u in transcripts] for split in splits]
    utts = [u for job in jobs for u in job]
    if len(utts) < len(feats):
        log.warning("%d utterances have no transcript and are not used", len(feats) - len(utts))
    if not utts:
        raise DataError(f"{data_dir}: no utterance has both features and a transcript")
    n_frames = sum(len(feats[u]) for u in utts)
    log.info("%d utterances in %d splits, %d frames (%.1f min), feature dim %d", len(utts), nj,
             n_frames, n_frames / 6000.0, feats[utts[0]].shape[1])

    tm, tree, am = _initial_model(exp, lang, [feats[u] for u in splits[0][:opts.init_utts]])
    num_gauss = am.num_gauss
    inc_gauss = max(0, (opts.totgauss - num_gauss) // max(opts.max_iter_inc, 1))
    log.info("initial model: %d pdfs, %d transition-ids; Gaussians %d, +%d a iteration up to "
             "iteration %d (target %d)", am.num_pdfs, tm.num_transition_ids, num_gauss, inc_gauss,
             opts.max_iter_inc, opts.totgauss)

    graphs, alis = _equal_alignments(lang, tm, tree, {u: transcripts[u] for u in utts}, feats, data_dir)
    trainer = MonoTrainer(tm, am, opts)
    stats, counts, log_like = trainer.accumulate(jobs, alis, feats)
    occs = trainer.estimate(stats, counts, opts.min_gaussian_occupancy_first, num_gauss)
    log.info("iteration 0 (equal alignment of %d utterances): log-like per frame %.4f, %d Gaussians",
             len(alis), log_like, am.num_gauss)

    realign = {int(x) for x in opts.realign_iters.split()}
    sil_pdfs = silence_pdfs(lang, tm)
    beam, retry_beam = opts.initial_beam, opts.initial_retry_beam
    for it in range(1, opts.num_iters):
        t0 = time.time()
        note = ""
        if it in realign:
            aligner = Aligner(tm, boost_silence(am, sil_pdfs, opts.boost_silence), beam, retry_beam,
                              opts.careful, opts.transition_scale, opts.acoustic_scale,
                              opts.self_loop_scale)
            alis = _realign(aligner, utts, graphs, feats, it)
            note = f"; re-aligned (beam {beam:g}/{retry_beam:g}): {aligner.summary()}"
        stats, counts, log_like = trainer.accumulate(jobs, alis, feats)
        occs = trainer.estimate(stats, counts, opts.min_gaussian_occupancy, num_gauss)
        log.info("iteration %d: log-like per frame %.4f over %d utterances, %d Gaussians (%.1f s)%s",
                 it, log_like, len(alis), am.num_gauss, time.time() - t0, note)
        if it <= opts.max_iter_inc:
            num_gauss += inc_gauss
        beam, retry_beam = opts.beam, opts.retry_beam
    save_model(exp / "final.mdl", tm, am)
    for j, job in enumerate(jobs, 1):
        write_int_vector_ark(exp / f"ali.{j}.gz", [(u, alis[u]) for u in job if u in alis])
    write_kaldi_vector(exp / "final.occs", occs, fmt="{:g}")
    log.info("wrote %s: %d pdfs, %d Gaussians; training took %.1f s for %.1f min of audio",
             exp / "final.mdl", am.num_pdfs, am.num_gauss, time.time() - start, n_frames / 6000.0)


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mono_options(parser)
    parser.add_argument("data_dir", help="data dir with feats.scp, cmvn.scp and text")
    parser.add_argument("lang_dir")
    parser.add_argument("exp_dir")
    parser.add_argument("--nj", type=int, default=1,
                        help="number of speaker splits, as the Kaldi backend's jobs: the model is "
                        "initialised from the first utterances of split 1")
    opts = parse_with_config(parser)
    train_mono(opts.data_dir, opts.lang_dir, opts.exp_dir, opts, opts.nj)


if __name__ == "__main__":
    main()
