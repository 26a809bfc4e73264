"""HCLG decoding graph (Kaldi's utils/mkgraph.sh) with kaldifst and kaldi-hmm-gmm.

LG = det(L_disambig o G) (log semiring), minimised; CLG by composing with the context FST of the
model's context width; H with transition-ids (transition scale on its arcs); HCLGa =
det(H o CLG), the transition-id disambiguation symbols replaced by epsilon, minimised; finally the
self-loops (self-loop scale). Writes GRAPH_DIR/{HCLG.fst,words.txt,phones.txt,phones/,
disambig_tid.int,num_pdfs}.
"""
import argparse
import logging
import shutil
import time
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst

from pyscripts.errors import DataError, cli_main
from pyscripts.gmm.model import load_model
from pyscripts.asr.lang import read_int_list

log = logging.getLogger(__name__)


def fst_size(fst):
    return fst.num_states, sum(fst.num_arcs(s) for s in range(fst.num_states))


def replace_input_labels(fst, labels):
    """A copy of fst whose input labels in `labels` become epsilon (fstrmsymbols)."""
    labels = set(labels)
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    for state in kaldifst.StateIterator(fst):
        out.set_final(state, fst.final(state))
        for arc in kaldifst.ArcIterator(fst, state):
            ilabel = 0 if arc.ilabel in labels else arc.ilabel
            out.add_arc(state, kaldifst.StdArc(ilabel, arc.olabel, arc.weight, arc.nextstate))
    return out


def make_hclg(lang_dir, model_dir, graph_dir, transition_scale=1.0, self_loop_scale=0.1):
    start = time.time()
    lang, model_dir, graph_dir = Path(lang_dir), Path(model_dir), Path(graph_dir)
    for f in (lang / "L_disambig.fst", lang / "G.fst", lang / "phones/disambig.int"):
        if not f.is_file():
            raise DataError(f"{f}: missing; make the lang dir with utils/prepare_lang.sh and "
                            "G.fst with utils/format_lm.sh")
    tm, _, tree = load_model(model_dir / "final.mdl", model_dir / "tree")
    lex = kaldifst.StdVectorFst.read(str(lang / "L_disambig.fst"))
    grammar = kaldifst.StdVectorFst.read(str(lang / "G.fst"))
    kaldifst.arcsort(lex, sort_type="olabel")
    kaldifst.arcsort(grammar, sort_type="ilabel")

    lg = kaldifst.compose(lex, grammar)
    if lg.num_states == 0:
        raise DataError(f"{lang}: L o G is empty; G.fst and the lexicon share no words")
    kaldifst.determinize_star(lg, use_log=True)
    kaldifst.minimize_encoded(lg)
    log.info("LG: %d states, %d arcs", *fst_size(lg))

    disambig_phones = read_int_list(lang / "phones/disambig.int")
    clg, ilabels = kaldifst.compose_context(disambig_phones, tree.context_width, tree.central_position, lg)
    kaldifst.arcsort(clg, sort_type="ilabel")
    log.info("CLG: %d states, %d arcs, %d context labels (context width %d)", *fst_size(clg),
             len(ilabels), tree.context_width)

    ha, disambig_tids = khg.get_h_transducer(ilabels, tree, tm,
                                             khg.HTransducerConfig(transition_scale=transition_scale))
    hclga = kaldifst.compose(ha, clg)
    kaldifst.determinize_star(hclga, use_log=True)
    hclga = replace_input_labels(hclga, disambig_tids)
    kaldifst.minimize_encoded(hclga)
    hclg = khg.add_self_loops(self_loop_scale=self_loop_scale, disambig_syms=[], reorder=True,
                              trans_model=tm, ifst=hclga)
    states, arcs = fst_size(hclg)
    if states == 0:
        raise DataError("HCLG is empty; the model's phones do not match the lang dir")

    graph_dir.mkdir(parents=True, exist_ok=True)
    hclg.write(str(graph_dir / "HCLG.fst"))
    for name in ("words.txt", "phones.txt"):
        shutil.copy(lang / name, graph_dir / name)
    if (graph_dir / "phones").exists():
        shutil.rmtree(graph_dir / "phones")
    shutil.copytree(lang / "phones", graph_dir / "phones")
    (graph_dir / "disambig_tid.int").write_text("".join(f"{t}\n" for t in disambig_tids))
    (graph_dir / "num_pdfs").write_text(f"{tm.num_pdfs}\n")
    log.info("HCLG: %d states, %d arcs (%.2f s) -> %s", states, arcs, time.time() - start,
             graph_dir / "HCLG.fst")
    return states, arcs


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transition-scale", type=float, default=1.0)
    parser.add_argument("--self-loop-scale", type=float, default=0.1)
    parser.add_argument("lang_dir", help="lang dir with G.fst (utils/format_lm.sh)")
    parser.add_argument("model_dir", help="dir with final.mdl and tree")
    parser.add_argument("graph_dir")
    args = parser.parse_args()
    make_hclg(args.lang_dir, args.model_dir, args.graph_dir, args.transition_scale,
              args.self_loop_scale)


if __name__ == "__main__":
    main()
