"""GMM-HMM decoding with an HCLG graph (Kaldi's gmm-latgen-faster): one job of steps/decode_gmm.sh.

The GMM's log-likelihood of every pdf on every frame goes through the same mapped lattice decoder as
the ConvNet's pseudo log-likelihoods (pyscripts/asr/decode.py), so both models get lattices (lat.JOB.gz)
and best paths (hyp.JOB) in the decode dir, and local/score.sh scores them with the same LM weight x
insertion penalty sweep."""
import argparse

import numpy as np

from pyscripts.asr.decode import DecoderOptions, decode_matrices
from pyscripts.errors import cli_main
from pyscripts.gmm.data import load_feats
from pyscripts.gmm.model import load_model


class PdfLoglikes:
    """log p(x | pdf) of a diagonal-covariance GMM per pdf, for whole utterances at once."""

    def __init__(self, am):
        params = [am.get_pdf(p) for p in range(am.num_pdfs)]
        self.gconsts = [np.asarray(g.gconsts, dtype=np.float64) for g in params]
        self.means_invvars = [np.asarray(g.means_invvars, dtype=np.float64) for g in params]
        self.inv_vars = [np.asarray(g.inv_vars, dtype=np.float64) for g in params]

    def __call__(self, feats):
        """(frames x pdfs) float32: logsumexp over each pdf's Gaussians, as DiagGmm::LogLikelihood."""
        x = np.asarray(feats, dtype=np.float64)
        half_sq = 0.5 * x * x
        out = np.empty((len(x), len(self.gconsts)), dtype=np.float32)
        for p, (gc, mi, iv) in enumerate(zip(self.gconsts, self.means_invvars, self.inv_vars)):
            per_gauss = gc + x @ mi.T - half_sq @ iv.T
            top = per_gauss.max(axis=1)
            out[:, p] = top + np.log(np.exp(per_gauss - top[:, None]).sum(axis=1))
        return out


def decode_data(graph_dir, model_dir, data_dir, decode_dir, job, acoustic_scale=0.083333, beam=13.0,
                lattice_beam=6.0, delta_order=2):
    _, am, _ = load_model(f"{model_dir}/final.mdl", f"{model_dir}/tree")
    loglikes = PdfLoglikes(am)
    feats = load_feats(data_dir, delta_order)
    decode_matrices(f"{graph_dir}/HCLG.fst", f"{model_dir}/final.mdl",
                    ((utt, loglikes(feats[utt])) for utt in sorted(feats)), decode_dir, job,
                    DecoderOptions(acoustic_scale, beam, lattice_beam), f"{graph_dir}/words.txt")


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acoustic-scale", type=float, default=0.083333)
    parser.add_argument("--beam", type=float, default=13.0)
    parser.add_argument("--lattice-beam", type=float, default=6.0)
    parser.add_argument("--delta-order", type=int, default=2)
    parser.add_argument("graph_dir")
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("decode_dir")
    parser.add_argument("job")
    args = parser.parse_args()
    decode_data(args.graph_dir, args.model_dir, args.data_dir, args.decode_dir, args.job,
                args.acoustic_scale, args.beam, args.lattice_beam, args.delta_order)


if __name__ == "__main__":
    main()
