"""Monophone GMM-HMM training, the embedded counterpart of Kaldi's steps/train_mono.sh.

Flat start (every pdf a single Gaussian with the global mean and variance of the first utterances),
equal alignment, then EM: at the iterations in --realign-iters the data is re-aligned (beam
--initial-beam at the first, --beam after), statistics are accumulated from the alignment, the
transition model and GMMs are re-estimated, and Gaussians are split towards --totgauss, adding an
equal share at each of the first --max-iter-inc iterations. Writes DIR/{0.mdl,final.mdl,tree,
final.occs,phones.txt,cmvn_opts}.
"""
import argparse
import heapq
import logging
import shutil
import time
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import numpy as np

from pyscripts.errors import DataError, cli_main
from pyscripts.gmm.align import Aligner, boost_silence
from pyscripts.gmm.data import (CMVN_OPTS, load_feats, load_transcripts, silence_pdfs,
                                training_graph_compiler)
from pyscripts.gmm.model import init_mono, save_model, save_tree
from pyscripts.gmm.options import add_mono_options, parse_with_config

log = logging.getLogger(__name__)


def equal_align(graph, num_frames, seed=0):
    """align-equal-compiled: a path through the graph with its frames shared out equally, or None
    when the utterance has fewer frames than its graph needs."""
    ok, path = kaldifst.equal_align(graph, num_frames, seed, 10)
    if not ok:
        return None
    ok, tids, _, _ = kaldifst.get_linear_symbol_sequence(path)
    return tids if ok and len(tids) == num_frames else None


def split_targets(occs, target, power, min_count):
    """Gaussians per pdf when mixing up to `target` in total (as gmm-est --mix-up allocates them):
    one at a time to the pdf with the largest occupancy**power per Gaussian, never giving a pdf
    more Gaussians than its occupancy / min_count allows. Starts from one per pdf."""
    counts = [1] * len(occs)
    weight = [float(o) ** power for o in occs]
    # Max-heap on weight per Gaussian; ties go to the lower pdf index.
    heap = [(-w, i) for i, w in enumerate(weight)]
    heapq.heapify(heap)
    total = len(occs)
    while total < target and heap:
        _, i = heapq.heappop(heap)
        if weight[i] == 0 or (counts[i] + 1) * min_count >= occs[i]:
            continue  # this pdf cannot take another Gaussian
        counts[i] += 1
        total += 1
        heapq.heappush(heap, (-weight[i] / counts[i], i))
    return counts


def split_gmm(gmm, num_components, perturb_factor, rng):
    """Splits a DiagGmm in place up to num_components: repeatedly halves the heaviest component into
    two whose means move apart by +-perturb_factor standard deviations along a random direction.
    A seeded numpy generator makes it reproducible (kaldi-hmm-gmm's own split is not)."""
    weights = np.asarray(gmm.weights, dtype=np.float64).copy()
    inv_vars = np.asarray(gmm.inv_vars, dtype=np.float64).copy()
    means = np.asarray(gmm.means_invvars, dtype=np.float64) / inv_vars
    weights, inv_vars, means = list(weights), list(inv_vars), list(means)
    while len(weights) < num_components:
        k = int(np.argmax(weights))
        weights[k] /= 2.0
        shift = perturb_factor * rng.standard_normal(len(means[k])) / np.sqrt(inv_vars[k])
        weights.append(weights[k])
        inv_vars.append(inv_vars[k].copy())
        means.append(means[k] + shift)
        means[k] = means[k] - shift
    gmm.resize(len(weights), len(means[0]))
    gmm.set_weights(np.array(weights, dtype=np.float32))
    gmm.set_invvars_and_means(np.array(inv_vars, dtype=np.float32), np.array(means, dtype=np.float32))
    gmm.compute_gconsts()


class MonoTrainer:
    def __init__(self, tm, am, opts):
        self.tm, self.am, self.opts = tm, am, opts
        self.rng = np.random.default_rng(opts.seed)
        self.id2pdf = np.array(tm.transition_id_to_pdf_array(), dtype=np.int64)

    def accumulate(self, alis, feats):
        """gmm-acc-stats-ali: GMM statistics and transition counts of the aligned frames."""
        accs = khg.AccumAmDiagGmm()
        accs.init(self.am, khg.GmmUpdateFlags.kGmmAll)
        counts = np.zeros(self.tm.num_transition_ids + 1)
        for utt, ali in alis.items():
            ali = np.asarray(ali)
            counts += np.bincount(ali, minlength=len(counts))
            mat = feats[utt]
            for frame, pdf in zip(mat, self.id2pdf[ali]):
                accs.accumulate_for_gmm(self.am, frame, int(pdf), 1.0)
        return accs, counts

    def estimate(self, accs, counts, min_gaussian_occupancy, mixup):
        """gmm-est: transition and GMM updates, then Gaussian splitting up to `mixup` in total."""
        impr, count = self.tm.mle_update(counts.reshape(-1, 1), khg.MleTransitionUpdateConfig())
        log_like = accs.tot_log_like / max(accs.tot_count, 1.0)
        gmm_opts = khg.MleDiagGmmOptions()
        gmm_opts.min_gaussian_occupancy = min_gaussian_occupancy
        occs = np.array([accs.get_acc(i).occupancy.sum() for i in range(accs.num_accs)],
                        dtype=np.float32)
        gmm_impr, gmm_count = khg.mle_am_diag_gmm_update(gmm_opts, accs,
                                                         khg.str_to_gmm_flags("mvwt"), self.am)
        if mixup > self.am.num_gauss:
            targets = split_targets(occs, mixup, self.opts.power, self.opts.min_count)
            for pdf, n in enumerate(targets):
                gmm = self.am.get_pdf(pdf)
                if n > gmm.num_gauss:
                    split_gmm(gmm, n, self.opts.perturb_factor, self.rng)
        return log_like, occs


def train_mono(data_dir, lang_dir, exp_dir, opts):
    start = time.time()
    exp, lang = Path(exp_dir), Path(lang_dir)
    exp.mkdir(parents=True, exist_ok=True)
    feats = load_feats(data_dir, opts.delta_order)
    transcripts = load_transcripts(data_dir, lang / "words.txt")
    utts = sorted(set(feats) & set(transcripts))
    if len(utts) < len(feats):
        log.warning("%d utterances have no transcript and are not used", len(feats) - len(utts))
    if not utts:
        raise DataError(f"{data_dir}: no utterance has both features and a transcript")
    n_frames = sum(len(feats[u]) for u in utts)
    log.info("%d utterances, %d frames (%.1f min), feature dim %d", len(utts), n_frames,
             n_frames / 6000.0, feats[utts[0]].shape[1])

    init = np.concatenate([feats[u] for u in utts[:opts.init_utts]]).astype(np.float64)
    tm, tree, am = init_mono((lang / "topo").read_text(), init.mean(0), np.maximum(init.var(0), 1e-6))
    save_model(exp / "0.mdl", tm, am)
    save_tree(exp / "tree", tree)
    shutil.copy(lang / "phones.txt", exp / "phones.txt")
    (exp / "cmvn_opts").write_text(CMVN_OPTS + "\n")
    num_gauss = am.num_gauss
    inc_gauss = max(0, (opts.totgauss - num_gauss) // max(opts.max_iter_inc, 1))
    log.info("initial model: %d pdfs, %d transition-ids; Gaussians %d, +%d a iteration up to "
             "iteration %d (target %d)", am.num_pdfs, tm.num_transition_ids, num_gauss, inc_gauss,
             opts.max_iter_inc, opts.totgauss)

    compiler = training_graph_compiler(lang, tm, tree)
    graphs = {u: compiler.compile_graph_from_text(transcripts[u]) for u in utts}
    alis = {}
    for u in utts:
        ali = equal_align(graphs[u], len(feats[u]))
        if ali is not None:
            alis[u] = ali
    if not alis:
        raise DataError(f"{data_dir}: no utterance is long enough for an equal alignment")
    if len(alis) < len(utts):
        log.warning("equal alignment failed for %d utterances (too few frames for their phones); "
                    "they wait for the first re-alignment", len(utts) - len(alis))

    trainer = MonoTrainer(tm, am, opts)
    accs, counts = trainer.accumulate(alis, feats)
    log_like, occs = trainer.estimate(accs, counts, opts.min_gaussian_occupancy_first, num_gauss)
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
            new = {}
            for u in utts:
                ali = aligner.align(u, graphs[u], feats[u])
                if ali is not None:
                    new[u] = ali
            if not new:
                raise DataError(f"iteration {it}: every utterance failed to align; the model diverged")
            alis = new
            note = f"; re-aligned (beam {beam:g}/{retry_beam:g}): {aligner.summary()}"
        accs, counts = trainer.accumulate(alis, feats)
        log_like, occs = trainer.estimate(accs, counts, opts.min_gaussian_occupancy, num_gauss)
        log.info("iteration %d: log-like per frame %.4f over %d utterances, %d Gaussians (%.1f s)%s",
                 it, log_like, len(alis), am.num_gauss, time.time() - t0, note)
        if it <= opts.max_iter_inc:
            num_gauss += inc_gauss
        beam, retry_beam = opts.beam, opts.retry_beam
    save_model(exp / "final.mdl", tm, am)
    (exp / "final.occs").write_text("[ " + " ".join(f"{x:g}" for x in occs) + " ]\n")
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
    opts = parse_with_config(parser)
    train_mono(opts.data_dir, opts.lang_dir, opts.exp_dir, opts)


if __name__ == "__main__":
    main()
