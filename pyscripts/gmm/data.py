"""Inputs of the GMM stages: features with per-speaker CMVN and deltas (Kaldi's
`apply-cmvn --utt2spk ... | add-deltas`), transcripts as word ids, and training graphs."""
import logging
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import kaldiio

from pyscripts.kaldi.datadir import read_list_table, read_table
from pyscripts.errors import DataError
from pyscripts.kaldi.features import add_deltas, apply_cmvn
from pyscripts.asr.lang import read_int_list
from pyscripts.kaldi.tables import read_symbols

log = logging.getLogger(__name__)

CMVN_OPTS = "--norm-means=true --norm-vars=false"


def load_feats(data_dir, delta_order=2):
    """{utt: float32 matrix} of a data dir: per-speaker mean normalisation, then deltas."""
    d = Path(data_dir)
    for name in ("feats.scp", "cmvn.scp", "utt2spk"):
        if not (d / name).is_file():
            fix = "steps/compute_cmvn_stats.sh" if name == "cmvn.scp" else "steps/make_mfcc.sh"
            raise DataError(f"{d / name}: missing; run {fix} on {d} first")
    utt2spk = read_table(d / "utt2spk")
    cmvn = dict(kaldiio.load_scp_sequential(str(d / "cmvn.scp")))
    feats = {}
    for utt, mat in kaldiio.load_scp_sequential(str(d / "feats.scp")):
        spk = utt2spk.get(utt)
        if spk is None:
            raise DataError(f"{d / 'feats.scp'}: utterance {utt} is not in utt2spk")
        if spk not in cmvn:
            raise DataError(f"{d / 'cmvn.scp'}: no statistics for speaker {spk} (utterance {utt}); "
                            "re-run steps/compute_cmvn_stats.sh")
        mat = apply_cmvn(mat, cmvn[spk], norm_vars=False)
        feats[utt] = add_deltas(mat, order=delta_order) if delta_order else mat
    if not feats:
        raise DataError(f"{d / 'feats.scp'}: no features")
    return feats


def load_transcripts(data_dir, words_txt):
    """{utt: [word ids]}; a word missing from words.txt is an error naming the utterance."""
    text_file = Path(data_dir) / "text"
    word2id = read_symbols(words_txt)
    out = {}
    for utt, words in read_list_table(text_file).items():
        if not words:
            raise DataError(f"{text_file}: empty transcript for utterance {utt}")
        unknown = [w for w in words if w not in word2id]
        if unknown:
            raise DataError(f"{text_file}: utterance {utt} has {unknown[0]!r}, which is not in "
                            f"{words_txt}; the transcripts must use the lang dir's phone set")
        out[utt] = [word2id[w] for w in words]
    return out


def training_graph_compiler(lang_dir, tm, tree):
    """compile-train-graphs for this model. The graphs carry no transition probabilities (scales 0,
    as Kaldi's compile-train-graphs): they are added with their scales at alignment time."""
    lang = Path(lang_dir)
    if not (lang / "L.fst").is_file():
        raise DataError(f"{lang / 'L.fst'}: missing; run utils/prepare_lang.sh")
    lex = kaldifst.StdVectorFst.read(str(lang / "L.fst"))
    kaldifst.arcsort(lex, sort_type="olabel")
    opts = khg.TrainingGraphCompilerOptions()
    opts.transition_scale = 0.0
    opts.self_loop_scale = 0.0
    return khg.TrainingGraphCompiler(tm, tree, lex, read_int_list(lang / "phones/disambig.int"), opts)


def silence_pdfs(lang_dir, tm):
    """pdfs of the optional-silence phone (gmm-boost-silence, as Kaldi's train_mono.sh uses it)."""
    phones = read_int_list(Path(lang_dir) / "phones/optional_silence.int")
    _, pdfs = khg.get_pdfs_for_phones(tm, sorted(phones))
    return pdfs
