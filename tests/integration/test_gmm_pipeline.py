"""The GMM-HMM stages end to end through their scripts, on synthetic features with a known state
segmentation: lang dir, bigram LM, monophone training, alignment dir, targets, HCLG, decoding."""
import kaldi_hmm_gmm as khg  # noqa: I001  (before kaldifst)
import re
import shutil

import kaldiio
import numpy as np

from conftest import run_script
from gmm_fixtures import PHONES, make_data, state_means, write_ctm
from pyscripts.asr.alignments import read_alignments
from pyscripts.gmm.model import load_model, save_model
from pyscripts.kaldi.model import load_transition_model
from pyscripts.kaldi.tables import read_symbols

FAST_CONF = """--num-iters=8
--max-iter-inc=6
--totgauss=80
--realign-iters=1 2 3 5 7
--init-utts=10
--initial-beam=6
--initial-retry-beam=24
--beam=10
--retry-beam=40
"""


def test_gmm_stages_end_to_end(recipe_dir):
    d = recipe_dir
    means = state_means()
    truth = make_data(d / "data/train", 40, 4, seed=1, means=means)
    make_data(d / "data/dev", 8, 2, seed=2, means=means)
    make_data(d / "data/test", 10, 2, seed=3, means=means)
    write_ctm(d / "data/train/ref_phones.ctm", truth)
    dict_dir = d / "data/local/dict"
    dict_dir.mkdir(parents=True)
    (dict_dir / "silence_phones.txt").write_text("sil\n")
    (dict_dir / "optional_silence.txt").write_text("sil\n")
    (dict_dir / "nonsilence_phones.txt").write_text("".join(f"{p}\n" for p in PHONES[1:]))
    (dict_dir / "lexicon.txt").write_text("".join(f"{p} {p}\n" for p in PHONES))
    (d / "phones.map").write_text("".join(f"{p}\t{p}\t{p}\n" for p in PHONES))
    (d / "fast.conf").write_text(FAST_CONF)

    run_script(["utils/prepare_lang.sh", "data/local/dict", "sil", "data/local/lang_tmp", "data/lang"], d)
    out = run_script(["local/timit_train_lm.sh", "data/train", "data/dev",
                      "data/local/lm/lm_phone_bg.arpa"], d)
    assert re.search(r"dev perplexity [0-9.]+", out.stdout)
    run_script(["utils/format_lm.sh", "data/lang", "data/local/lm/lm_phone_bg.arpa", "data/lang_test_bg"], d)
    run_script(["steps/train_mono.sh", "--conf", "fast.conf", "data/train", "data/lang", "exp/mono"], d)
    for name in ("final.mdl", "tree", "final.occs", "phones.txt", "cmvn_opts", "log/train.log"):
        assert (d / "exp/mono" / name).is_file(), name
    assert "iteration 7:" in (d / "exp/mono/log/train.log").read_text()

    run_script(["steps/align_mono.sh", "--nj", "2", "--conf", "fast.conf", "data/train", "data/lang",
                "exp/mono", "exp/mono_ali"], d)
    ali_dir = d / "exp/mono_ali"
    assert (ali_dir / "num_jobs").read_text().strip() == "2"
    for name in ("ali.1.gz", "ali.2.gz", "final.mdl", "tree", "phones.txt"):
        assert (ali_dir / name).is_file(), name
    alis = read_alignments(ali_dir)
    assert set(alis) == set(truth)
    assert (ali_dir / "unaligned").read_text() == ""   # every utterance aligned: an empty list

    # The alignment recovers the true (phone, state) of most frames.
    tm = load_transition_model(ali_dir / "final.mdl")
    phone_id = read_symbols(d / "data/lang/phones.txt")
    agree = total = 0
    for utt, segs in truth.items():
        ref = [(phone_id[p], s) for p, s, _, n in segs for _ in range(n)]
        hyp = list(zip(tm.id2phone[alis[utt]], tm.id2hmm_state[alis[utt]]))
        agree += sum(a == b for a, b in zip(ref, hyp))
        total += len(ref)
    assert agree / total > 0.85

    run_script(["steps/ali_to_targets.sh", "exp/mono_ali", "data/train", "exp/mono_ali/targets"], d)
    targets = dict(kaldiio.load_scp(str(ali_dir / "targets/targets.scp")))
    assert (ali_dir / "targets/num_targets").read_text().strip() == str(3 * len(PHONES))
    for utt in truth:
        assert targets[utt].tolist() == tm.id2pdf[alis[utt]].tolist()

    out = run_script(["local/score_alignment.sh", "exp/mono_ali", "data/train"], d)
    share = float(re.search(r"boundaries within 20 ms: ([0-9.]+)%", out.stdout).group(1))
    assert share > 80.0

    # A data dir whose frame count disagrees with the alignment: the error names the utterance.
    shutil.copytree(d / "data/train", d / "data/train_bad")
    frames = (d / "data/train_bad/utt2num_frames").read_text().splitlines()
    utt, n = frames[3].split()
    frames[3] = f"{utt} {int(n) + 1}"
    (d / "data/train_bad/utt2num_frames").write_text("\n".join(frames) + "\n")
    bad = run_script(["steps/ali_to_targets.sh", "exp/mono_ali", "data/train_bad", "exp/bad_targets"], d,
                     check=False)
    assert bad.returncode == 1 and f"utterance {utt}:" in bad.stderr

    out = run_script(["utils/mkgraph.sh", "data/lang_test_bg", "exp/mono", "exp/mono/graph"], d)
    assert re.search(r"HCLG: \d+ states, \d+ arcs", out.stdout)
    for x in ("dev", "test"):
        tune = ["--tune-dir", "exp/mono/decode_dev"] if x == "test" else []
        run_script(["steps/decode_gmm.sh", "--nj", "2", *tune, "--scoring-opts",
                    "--min-lmwt 1 --max-lmwt 3 --phone-map phones.map",
                    "exp/mono/graph", f"data/{x}", f"exp/mono/decode_{x}"], d)
    best = (d / "exp/mono/decode_test/scoring/best_wer").read_text()
    per = float(re.search(r"%WER ([0-9.]+)", best).group(1))
    assert per < 10.0, best
    assert "(setting chosen on exp/mono/decode_dev)" in best
    decode = d / "exp/mono/decode_test"
    assert sorted(p.name for p in decode.glob("lat.*.gz")) == ["lat.1.gz", "lat.2.gz"]
    assert len(list(decode.glob("wer_*"))) == 9   # LM weights 1..3 x penalties 0.0, 0.5, 1.0
    hyps = [line for job in (1, 2) for line in (decode / f"hyp.{job}").read_text().splitlines()]
    assert len(hyps) == 10


def test_model_file_round_trip(tmp_path):
    """final.mdl (Kaldi text) written and read back gives the same transition model and GMMs."""
    from gmm_fixtures import make_lang
    lang = make_lang(tmp_path)
    from pyscripts.gmm.model import init_mono, save_tree
    tm, tree, am = init_mono((lang / "topo").read_text(), np.zeros(4), np.ones(4))
    rng = np.random.RandomState(0)
    counts = rng.rand(tm.num_transition_ids + 1) * 10
    counts[0] = 0
    tm.mle_update(counts.reshape(-1, 1), khg.MleTransitionUpdateConfig())
    am.split_by_count(np.full(am.num_pdfs, 100.0, dtype=np.float32), 40, 0.5, 0.2, 1.0)
    save_model(tmp_path / "final.mdl", tm, am)
    save_tree(tmp_path / "tree", tree)
    tm2, am2, _ = load_model(tmp_path / "final.mdl", tmp_path / "tree")
    assert np.allclose(tm.log_probs, tm2.log_probs, atol=1e-6)
    assert am2.num_gauss == am.num_gauss == 40
    x = rng.randn(4).astype(np.float32)
    assert all(abs(am.log_likelihood(i, x) - am2.log_likelihood(i, x)) < 1e-3 for i in range(am.num_pdfs))
    # The decoder's vectorised log-likelihoods are Kaldi's DiagGmm::LogLikelihood, pdf by pdf.
    from pyscripts.gmm.decode import PdfLoglikes
    frames = rng.randn(5, 4).astype(np.float32)
    kaldi = [[am2.log_likelihood(p, f) for p in range(am2.num_pdfs)] for f in frames]
    assert np.allclose(PdfLoglikes(am2)(frames), kaldi, atol=1e-3)


def test_gaussian_split_allocation():
    from pyscripts.gmm.train_mono import split_targets
    # pdf 0 takes Gaussians while its occupancy per Gaussian is highest and min_count allows.
    assert split_targets([100.0, 30.0, 0.0], 6, power=1.0, min_count=20.0) == [4, 1, 1]
    # min_count 30: pdf 0 stops at 3 (4 x 30 >= 100), pdf 1 cannot split, the target is not reached.
    assert split_targets([100.0, 30.0, 0.0], 6, power=1.0, min_count=30.0) == [3, 1, 1]


def test_training_is_reproducible(tmp_path):
    import argparse
    from gmm_fixtures import make_lang
    from pyscripts.gmm.options import add_mono_options
    from pyscripts.gmm.train_mono import train_mono
    lang = make_lang(tmp_path)
    make_data(tmp_path / "train", 20, 2, seed=4)
    parser = argparse.ArgumentParser()
    add_mono_options(parser)
    opts = parser.parse_args(["--num-iters", "5", "--realign-iters", "1 3", "--totgauss", "60",
                              "--max-iter-inc", "4", "--min-count", "5"])
    train_mono(tmp_path / "train", lang, tmp_path / "a", opts)
    train_mono(tmp_path / "train", lang, tmp_path / "b", opts)
    _, am, _ = load_model(tmp_path / "a/final.mdl", tmp_path / "a/tree")
    assert am.num_gauss > 3 * len(PHONES)  # Gaussians were split
    assert (tmp_path / "a/final.mdl").read_bytes() == (tmp_path / "b/final.mdl").read_bytes()
