"""Kaldi tier: the tiny recipe with KALDI_ROOT (Kaldi's binaries) against the embedded run of the same
corpora, and each backend's artefacts read by the other backend's tools. Runs when KALDI_ROOT points
at a Kaldi build; skipped, with the reason, when it does not."""
import re

import kaldiio
import numpy as np
import pytest

from conftest import int_table, run_kaldi, run_script, run_tiny_recipe
from pyscripts.asr.decode import (DecoderOptions, GraphDecoder, lattice_files, load_tid2pdf, read_lattice_ark,
                              sweep_best_paths)
from pyscripts.kaldi.model import load_gmm_model

pytestmark = pytest.mark.kaldi

# Tolerances of the comparison. Measured on the tiny corpora: fbank 4.6e-4, MFCC 2.8e-3, training
# frames on the same phone 99.9%, GMM PER dev / test 69.2 / 67.8 embedded and 69.2 / 67.4 Kaldi.
FBANK_TOL = 5e-4         # max |Kaldi - embedded| of a log-mel energy
MFCC_TOL = 5e-3          # max |Kaldi - embedded| of a cepstrum
PER_TOL = 2.0            # GMM PER points between the backends (each on its own MFCCs)
CONVNET_PER_TOL = 5.0    # ConvNet PER points (trained on each backend's alignments)
MIN_ALI_AGREEMENT = 0.99 # training frames aligned to the same phone by both backends


@pytest.fixture(scope="module")
def kaldi_run(tmp_path_factory, corpus_cache, tiny_timit, tiny_iemocap, kaldi_root):
    """Stages 1-10 (everything Kaldi takes part in) with KALDI_ROOT set."""
    workdir = tmp_path_factory.mktemp("tiny_kaldi")
    run_tiny_recipe(workdir, corpus_cache, env={"KALDI_ROOT": str(kaldi_root)}, stop_stage=10)
    return workdir


def per(decode_dir):
    return float(re.search(r"%WER ([0-9.]+)", (decode_dir / "scoring/best_wer").read_text()).group(1))


def max_feature_diff(a_scp, b_scp):
    a, b = kaldiio.load_scp(str(a_scp)), kaldiio.load_scp(str(b_scp))
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[u] - b[u]).max()) for u in a)


def test_features_agree(tiny_run, kaldi_run):
    embedded, _ = tiny_run
    for x in ("train", "dev", "test"):
        assert max_feature_diff(embedded / f"data/timit/{x}/feats.scp",
                                kaldi_run / f"data/timit/{x}/feats.scp") < FBANK_TOL
        assert max_feature_diff(embedded / f"data/timit_mfcc/{x}/feats.scp",
                                kaldi_run / f"data/timit_mfcc/{x}/feats.scp") < MFCC_TOL
    assert max_feature_diff(embedded / "data/iemocap/all/feats.scp",
                            kaldi_run / "data/iemocap/all/feats.scp") < FBANK_TOL
    # Per-speaker CMVN statistics: the same counts, sums within the feature tolerance.
    a = kaldiio.load_scp(str(embedded / "data/timit_mfcc/train/cmvn.scp"))
    b = kaldiio.load_scp(str(kaldi_run / "data/timit_mfcc/train/cmvn.scp"))
    for spk in a:
        assert a[spk][0, -1] == b[spk][0, -1]
        assert np.allclose(a[spk], b[spk], rtol=1e-3, atol=MFCC_TOL * a[spk][0, -1])


def frame_phones(run, ali_dir, kaldi_env):
    """{utt: [phone per frame]} of an alignment dir, by Kaldi's ali-to-phones."""
    return int_table(run_kaldi(["ali-to-phones", "--per-frame=true", f"{ali_dir}/final.mdl",
                                f"ark:gunzip -c {ali_dir}/ali.*.gz|", "ark,t:-"], kaldi_env, run))


def test_gmm_alignments_and_per_agree(tiny_run, kaldi_run, kaldi_env):
    embedded, _ = tiny_run
    ours = frame_phones(embedded, embedded / "exp/mono_ali", kaldi_env)
    theirs = frame_phones(kaldi_run, kaldi_run / "exp/mono_ali", kaldi_env)
    assert sorted(ours) == sorted(theirs)
    same = sum(a == b for u in ours for a, b in zip(ours[u], theirs[u], strict=True))
    total = sum(len(p) for p in ours.values())
    assert same / total >= MIN_ALI_AGREEMENT, f"{same} of {total} training frames on the same phone"
    for x in ("dev", "test"):
        assert abs(per(embedded / f"exp/mono/decode_{x}") - per(kaldi_run / f"exp/mono/decode_{x}")) <= PER_TOL
        assert abs(per(embedded / f"exp/convnet_asr/decode_{x}")
                   - per(kaldi_run / f"exp/convnet_asr/decode_{x}")) <= CONVNET_PER_TOL
    assert "decode" in (kaldi_run / "exp/RESULTS.md").read_text()


def test_kaldi_reads_embedded_artefacts(tiny_run, kaldi_env):
    run, _ = tiny_run
    mdl, tree = run / "exp/mono/final.mdl", run / "exp/mono/tree"
    assert "number of pdfs" in run_kaldi(["gmm-info", mdl], kaldi_env, run)
    assert "num-pdfs" in run_kaldi(["tree-info", tree], kaldi_env, run)
    run_kaldi(["copy-feats", "scp:data/timit/dev/feats.scp", "ark:/dev/null"], kaldi_env, run)
    run_kaldi(["copy-matrix", "scp:data/timit_mfcc/dev/cmvn.scp", "ark:/dev/null"], kaldi_env, run)
    run_kaldi(["fsttablecompose", "data/lang/L.fst", "data/lang_test_bg/G.fst", "/dev/null"], kaldi_env, run)
    # Alignments: Kaldi's ali-to-pdf equals the recipe's targets.
    pdfs = run_kaldi(["ali-to-pdf", mdl, "ark:gunzip -c exp/mono_ali/ali.*.gz|", "ark,t:-"], kaldi_env, run)
    targets = kaldiio.load_scp(str(run / "exp/mono_ali/targets/targets.scp"))
    assert int_table(pdfs) == {u: v.tolist() for u, v in targets.items()}
    # Lattices: lattice-copy reads every entry, and lattice-best-path gives the recipe's own sweep.
    decode = run / "exp/convnet_asr/decode_dev"
    lats = f"ark:gunzip -c {decode}/lat.*.gz|"
    _, log = run_kaldi(["lattice-copy", lats, "ark:/dev/null"], kaldi_env, run, stderr=True)
    utts = sum(1 for f in lattice_files(decode) for _ in read_lattice_ark(f))
    assert utts > 0 and f"Done copying {utts} lattices" in log
    ours = sweep_best_paths(lattice_files(decode), [2, 10], [0.0])
    for lmwt in (2, 10):
        best = run_kaldi(["lattice-best-path", f"--acoustic-scale={1 / lmwt}", lats, "ark,t:-"], kaldi_env, run)
        assert int_table(best) == ours[(lmwt, 0.0)]


def test_embedded_reads_kaldi_artefacts(kaldi_run, kaldi_env):
    run = kaldi_run
    tm, dim, gmms = load_gmm_model(run / "exp/mono/final.mdl")   # Kaldi's binary format
    assert dim == 39 and len(gmms) == tm.num_pdfs
    info = run_kaldi(["gmm-info", "exp/mono/final.mdl"], kaldi_env, run)
    assert f"number of pdfs {tm.num_pdfs}" in info
    assert f"number of transition-ids {tm.num_transition_ids}" in info
    # Kaldi's alignments through the recipe's converter (embedded, no Kaldi on PATH) = ali-to-pdf.
    run_script(["steps/ali_to_targets.sh", "exp/mono_ali", "data/timit/train", "targets_check"], cwd=run)
    pdfs = run_kaldi(["ali-to-pdf", "exp/mono/final.mdl", "ark:gunzip -c exp/mono_ali/ali.*.gz|", "ark,t:-"],
                 kaldi_env, run)
    targets = kaldiio.load_scp(str(run / "targets_check/targets.scp"))
    assert int_table(pdfs) == {u: v.tolist() for u, v in targets.items()}
    # Kaldi's lattices (latgen-faster-mapped): local/score.sh's sweep (the recipe's reader, which
    # scored them in the run) gives the best paths of Kaldi's own scoring pipeline, setting by setting.
    decode = run / "exp/convnet_asr/decode_dev"
    kaldi_scored = run / "exp/convnet_asr/decode_dev_kaldi_scoring"
    kaldi_scored.mkdir()
    for lat in decode.glob("lat.*.gz"):
        (kaldi_scored / lat.name).symlink_to(lat)
    run_script(["local/score.sh", "--use-kaldi", "true", "--min-lmwt", "4", "--max-lmwt", "6",
                "data/timit/dev", "exp/mono/graph", kaldi_scored], cwd=run,
               env={"KALDI_ROOT": kaldi_env["KALDI_ROOT"]})
    for name in ("4_0.0", "5_0.5", "6_1.0"):
        assert int_table((kaldi_scored / f"scoring/{name}.tra").read_text()) == \
            int_table((decode / f"scoring/{name}.tra").read_text())


def decoder_agreement(decode, kaldi_env):
    """(utterances, equal best paths) of latgen-faster-mapped and the embedded decoder on the same
    log-likelihoods (those of a decode dir), graph and model."""
    run = decode.parents[2]
    graph, mdl = run / "exp/mono/graph/HCLG.fst", run / "exp/mono/final.mdl"
    acwt = float((decode / "acwt").read_text())
    latgen = {}
    for ark in sorted(decode.glob("loglikes.*.ark")):
        out = run_kaldi(["latgen-faster-mapped", f"--acoustic-scale={acwt}", "--allow-partial=true",
                         "--determinize-lattice=false", mdl, graph, f"ark:{ark}", "ark:/dev/null", "ark,t:-"],
                        kaldi_env, run)
        latgen.update(int_table(out))
    dec = GraphDecoder(graph, load_tid2pdf(mdl), DecoderOptions(acoustic_scale=acwt))
    ours = {utt: dec.decode(m, utt).words for ark in sorted(decode.glob("loglikes.*.ark"))
            for utt, m in kaldiio.load_ark(str(ark))}
    assert sorted(ours) == sorted(latgen)
    return len(ours), sum(ours[u] == latgen[u] for u in ours)


def test_embedded_decoder_and_latgen_agree(tiny_run, kaldi_run, kaldi_env):
    for run in (tiny_run[0], kaldi_run):
        for x in ("dev", "test"):
            utts, same = decoder_agreement(run / f"exp/convnet_asr/decode_{x}", kaldi_env)
            assert same == utts, f"{run} {x}: {utts - same} of {utts} best paths differ"


def test_decode_rtf_from_both_backends(tiny_run, kaldi_run):
    for run in (tiny_run[0], kaldi_run):
        rtf = (run / "exp/convnet_asr/decode_dev/rtf").read_text()
        assert re.search(r"^decode: .*RTF 1-thread [0-9.]+", rtf, flags=re.M), rtf


def test_segmented_recordings_with_kaldi(tiny_iemocap, recipe_dir, kaldi_root):
    """A data dir with `segments` (utterances cut from a recording): Kaldi's extract-segments, then
    the same fbank as the embedded features of the cut samples."""
    from pyscripts.kaldi.audio import read_audio
    from pyscripts.kaldi.datadir import write_table
    from pyscripts.kaldi.features import compute_features, make_options
    wav = sorted(tiny_iemocap.rglob("*.wav"))[0]
    d = recipe_dir / "data/seg"
    cuts = {"spk_a": (0.0, 1.0), "spk_b": (0.5, 1.5)}
    write_table(d / "wav.scp", {"rec": str(wav)})
    write_table(d / "segments", {u: f"rec {a} {b}" for u, (a, b) in cuts.items()})
    write_table(d / "utt2spk", {u: "spk" for u in cuts})
    write_table(d / "spk2utt", {"spk": list(cuts)})
    run_script(["steps/make_fbank.sh", "--nj", "1", d], cwd=recipe_dir, env={"KALDI_ROOT": str(kaldi_root)})
    feats = kaldiio.load_scp(str(d / "feats.scp"))
    rate, samples = read_audio(wav)
    opts = make_options("fbank", recipe_dir / "conf/fbank.conf")
    for utt, (a, b) in cuts.items():
        expected = compute_features("fbank", opts, samples[int(a * rate):int(b * rate)])
        assert feats[utt].shape == expected.shape == (98, 40)
        assert np.abs(feats[utt] - expected).max() < FBANK_TOL
