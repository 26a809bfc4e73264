"""Forced alignment with a GMM-HMM (Kaldi's gmm-align-compiled after compile-train-graphs): one
job of steps/align_mono.sh, writing ali.JOB.gz (binary archive of transition-id vectors)."""
import argparse
import logging
import time
from pathlib import Path

import kaldi_hmm_gmm as khg
import numpy as np

from pyscripts.asr.alignments import write_int_vector_ark
from pyscripts.errors import DataError, cli_main
from pyscripts.gmm.data import load_feats, load_transcripts, silence_pdfs, training_graph_compiler
from pyscripts.gmm.model import load_model
from pyscripts.gmm.options import add_mono_options, parse_with_config
from pyscripts.kaldi.features import FRAME_SHIFT

log = logging.getLogger(__name__)


def boost_silence(am, pdfs, factor):
    """gmm-boost-silence: a copy of the model with the silence pdfs' weights scaled by factor."""
    if factor == 1.0:
        return am
    boosted = khg.AmDiagGmm()
    boosted.copy_from_am_diag_gmm(am)
    for pdf in pdfs:
        gmm = boosted.get_pdf(pdf)
        gmm.set_weights((np.asarray(gmm.weights) * factor).astype(np.float32))
        gmm.compute_gconsts()
    return boosted


class Aligner:
    """Aligns utterances against their training graphs with Kaldi's beam / retry-beam logic."""

    def __init__(self, tm, am, beam, retry_beam, careful=False, transition_scale=1.0,
                 acoustic_scale=0.1, self_loop_scale=0.1):
        self.tm, self.am = tm, am
        self.config = khg.AlignConfig()
        self.config.beam = beam
        self.config.retry_beam = retry_beam
        self.config.careful = careful
        self.scales = (transition_scale, acoustic_scale, self_loop_scale)
        self.num_done = self.num_error = self.num_retried = self.frames = 0
        self.tot_like = 0.0

    def align(self, utt, graph, feats):
        """Transition-ids of the best path, or None when the utterance fails to align."""
        transition_scale, acoustic_scale, self_loop_scale = self.scales
        fst = graph.copy()
        khg.add_transition_probs(trans_model=self.tm, transition_scale=transition_scale,
                                 self_loop_scale=self_loop_scale, fst=fst)
        decodable = khg.DecodableAmDiagGmmScaled(self.am, self.tm, feats, acoustic_scale)
        (self.num_done, self.num_error, self.num_retried, self.tot_like, self.frames, ali,
         _) = khg.align_utterance_wrapper(self.config, utt, acoustic_scale, fst, decodable,
                                          self.num_done, self.num_error, self.num_retried,
                                          self.tot_like, self.frames)
        if not ali:
            return None
        if len(ali) != len(feats):
            raise DataError(f"utterance {utt}: alignment has {len(ali)} frames for {len(feats)}")
        return ali

    def summary(self):
        per_frame = self.tot_like / self.frames if self.frames else float("nan")
        return (f"aligned {self.num_done}, failed {self.num_error}, retried {self.num_retried}; "
                f"average log-like per frame {per_frame:.4f} over {self.frames} frames")


def align_data(model_dir, lang_dir, data_dir, ali_out, opts):
    start = time.time()
    model_dir = Path(model_dir)
    tm, am, tree = load_model(model_dir / "final.mdl", model_dir / "tree")
    feats = load_feats(data_dir, opts.delta_order)
    transcripts = load_transcripts(data_dir, Path(lang_dir) / "words.txt")
    no_text = sorted(set(feats) - set(transcripts))
    if no_text:
        log.warning("%d utterances have features but no transcript and are not aligned, e.g. %s",
                    len(no_text), no_text[:3])
    compiler = training_graph_compiler(lang_dir, tm, tree)
    aligner = Aligner(tm, boost_silence(am, silence_pdfs(lang_dir, tm), opts.boost_silence),
                      opts.beam, opts.retry_beam, opts.careful, opts.transition_scale,
                      opts.acoustic_scale, opts.self_loop_scale)
    alis, failed = [], []
    for utt in sorted(set(feats) & set(transcripts)):
        ali = aligner.align(utt, compiler.compile_graph_from_text(transcripts[utt]), feats[utt])
        if ali is None:
            failed.append(utt)
        else:
            alis.append((utt, ali))
    write_int_vector_ark(ali_out, alis)
    n_frames = sum(len(a) for _, a in alis)
    log.info("%s: %s", data_dir, aligner.summary())
    if failed:
        log.warning("%d utterances failed to align (no alignment written): %s", len(failed), failed[:10])
    log.info("aligned %.1f s of audio (%d frames at %g ms) in %.1f s", n_frames * FRAME_SHIFT, n_frames,
             1000 * FRAME_SHIFT, time.time() - start)
    if not alis:
        # Not fatal for one job (its speakers may all be hard); steps/ali_to_targets.sh fails when
        # too few utterances of the whole set have alignments.
        log.warning("%s: no utterance of this job could be aligned", data_dir)


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add_mono_options(parser)
    parser.add_argument("model_dir", help="dir with final.mdl and tree")
    parser.add_argument("lang_dir")
    parser.add_argument("data_dir")
    parser.add_argument("ali_out", help="output archive, e.g. exp/mono_ali/ali.1.gz")
    opts = parse_with_config(parser)
    align_data(opts.model_dir, opts.lang_dir, opts.data_dir, opts.ali_out, opts)


if __name__ == "__main__":
    main()
