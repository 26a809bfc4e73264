"""Kaldi tier: the alignment swap of the README ("Swapping in your own Kaldi alignments",
"Using your own Kaldi") done as a user with a Kaldi build does it, on the tiny corpus:
  1. the recipe's data prep, features (Kaldi's compute-*-feats) and lang dir (stages 1-5);
  2. Kaldi's OWN egs/wsj/s5 steps/train_mono.sh, align_si.sh, train_deltas.sh on them, run from a
     Kaldi-style working dir (steps/ utils/ linked to Kaldi's): a monophone and a triphone system;
  3. the recipe's steps/ali_to_targets.sh on Kaldi's alignment dirs, checked against ali-to-pdf;
  4. Kaldi's own utils/mkgraph.sh: the triphone HCLG;
  5. the recipe's train_convnet.sh on the triphone targets and decode_hybrid.sh through that graph.
Runs when KALDI_ROOT points at a Kaldi build; skipped, with the reason, when it does not."""
import re

import kaldiio
import pytest

from conftest import int_table, run_kaldi, run_script
from pyscripts.nnet.model import load_package

pytestmark = pytest.mark.kaldi

NJ = 2
# A triphone system small enough for 12 training utterances (train_deltas.sh NUM_LEAVES TOT_GAUSS).
NUM_LEAVES, TOT_GAUSS = 100, 400
# The tiny models are too weak for the dev speakers at Kaldi's default alignment beams (10/40);
# the same beams as the recipe's stage 7 uses on the tiny corpus.
DEV_ALIGN_BEAMS = ["--beam", "40", "--retry-beam", "400"]
# The paper's architecture with a schedule that trains in well under a minute on 2 CPU cores; the
# network is barely trained, so only the plumbing is tested, not the accuracy.
CONVNET_CONFIG = """base: conf/convnet_asr.yaml
training:
  batch_size: 128
  max_epochs: 2
  frames_per_epoch: 1500
"""


def kaldi_workdir(path, kaldi_root):
    """A working dir like one of Kaldi's egs dirs: Kaldi's steps/ and utils/ (its scripts call them
    relative to the working dir) and a path.sh with Kaldi's binaries on PATH."""
    path.mkdir()
    s5 = kaldi_root / "egs/wsj/s5"
    for name in ("steps", "utils"):
        (path / name).symlink_to(s5 / name)
    (path / "path.sh").write_text(
        f"export KALDI_ROOT={kaldi_root}\n"
        "for d in $KALDI_ROOT/src/*bin; do PATH=$d:$PATH; done\n"
        "export PATH=$PWD/utils:$PATH\n"
        "export LC_ALL=C\n")
    (path / "cmd.sh").write_text("export train_cmd=utils/run.pl\nexport decode_cmd=utils/run.pl\n")
    return path


def ali_to_pdf(ali_dir, kaldi_env):
    """Kaldi's own ali-to-pdf of every ali.*.gz of ali_dir: {utt: pdf ids}."""
    num_jobs = int((ali_dir / "num_jobs").read_text())
    out = {}
    for j in range(1, num_jobs + 1):
        out.update(int_table(run_kaldi(["ali-to-pdf", ali_dir / "final.mdl",
                                        f"ark:gunzip -c {ali_dir}/ali.{j}.gz|", "ark,t:-"], kaldi_env, ali_dir)))
    return out


def num_pdfs(model_dir, kaldi_env):
    """(pdfs of the tree, pdfs of the acoustic model, context width of the tree), as Kaldi reports them."""
    tree = dict(line.split() for line in run_kaldi(["tree-info", model_dir / "tree"], kaldi_env,
                                                      model_dir).splitlines())
    am = re.search(r"number of pdfs (\d+)", run_kaldi(["am-info", model_dir / "final.mdl"], kaldi_env,
                                                          model_dir)).group(1)
    return int(tree["num-pdfs"]), int(am), int(tree["context-width"])


def utterances(data_dir):
    return sorted(line.split()[0] for line in (data_dir / "utt2spk").read_text().splitlines())


def test_kaldi_alignments_swap_in(kaldi_root, kaldi_env, recipe_dir, tmp_path_factory, corpus_cache,
                                  tiny_timit, tiny_iemocap):
    # (kaldi_root first: without a Kaldi the test skips before the corpora are generated)
    recipe_env = {"KALDI_ROOT": str(kaldi_root)}
    # 1. The recipe up to the lang dir, with Kaldi's feature binaries (a user with Kaldi sets
    #    KALDI_ROOT); the session's tiny corpora are reused.
    run_script(["./run.sh", "--corpus", "tiny", "--nj", NJ, "--skip-setup", "true",
                "--corpus-dir", corpus_cache, "--stop-stage", 5], cwd=recipe_dir, env=recipe_env)
    data = recipe_dir / "data"
    mfcc_train, mfcc_dev, lang = data / "timit_mfcc/train", data / "timit_mfcc/dev", data / "lang"

    # 2. Kaldi's own GMM scripts on the recipe's MFCC data dirs and lang dir.
    k = kaldi_workdir(tmp_path_factory.mktemp("kaldi_s5") / "s5", kaldi_root)
    exp = k / "exp"
    cmd = ["--cmd", "utils/run.pl"]
    run_script(["steps/train_mono.sh", "--nj", NJ, *cmd, mfcc_train, lang, exp / "mono"], k, env=kaldi_env)
    run_script(["steps/align_si.sh", "--nj", NJ, *cmd, mfcc_train, lang, exp / "mono", exp / "mono_ali"],
               k, env=kaldi_env)
    run_script(["steps/train_deltas.sh", *cmd, NUM_LEAVES, TOT_GAUSS, mfcc_train, lang, exp / "mono_ali",
                exp / "tri1"], k, env=kaldi_env)
    run_script(["steps/align_si.sh", "--nj", NJ, *cmd, mfcc_train, lang, exp / "tri1", exp / "tri1_ali"],
               k, env=kaldi_env)
    run_script(["steps/align_si.sh", "--nj", NJ, *cmd, *DEV_ALIGN_BEAMS, mfcc_dev, lang, exp / "tri1",
                exp / "tri1_ali_dev"], k, env=kaldi_env)
    mono_pdfs, mono_am_pdfs, mono_width = num_pdfs(exp / "mono", kaldi_env)
    assert (mono_pdfs, mono_am_pdfs, mono_width) == (144, 144, 1)   # 48 phones x 3 states
    tri_pdfs, tri_am_pdfs, tri_width = num_pdfs(exp / "tri1", kaldi_env)
    assert tri_pdfs == tri_am_pdfs and tri_width == 3   # a triphone tree: the embedded graph builder can't

    # 3. The recipe's targets from Kaldi's alignment dirs: ali-to-pdf's pdf ids, every frame of every
    #    utterance (all of them aligned: the network trains on each utterance's fbank frames).
    cases = [("mono_ali", "train", mono_pdfs), ("tri1_ali", "train", tri_pdfs), ("tri1_ali_dev", "dev", tri_pdfs)]
    for ali, subset, pdfs in cases:
        targets_dir = recipe_dir / "exp" / f"{ali}_targets"
        run_script(["steps/ali_to_targets.sh", exp / ali, data / "timit" / subset, targets_dir], recipe_dir,
                   env=recipe_env)
        assert int((targets_dir / "num_targets").read_text()) == pdfs
        kaldi_pdfs = ali_to_pdf(exp / ali, kaldi_env)
        targets = kaldiio.load_scp(str(targets_dir / "targets.scp"))
        assert sorted(kaldi_pdfs) == sorted(targets) == utterances(data / "timit" / subset), ali
        for utt, pdf_ids in kaldi_pdfs.items():
            assert targets[utt].tolist() == pdf_ids, f"{ali}: {utt}"
        utt2num_frames = (data / "timit" / subset / "utt2num_frames").read_text()
        frames = dict(line.split() for line in utt2num_frames.splitlines())
        assert all(len(targets[u]) == int(n) for u, n in frames.items())

    # 4. Kaldi's own mkgraph.sh: the triphone HCLG with the recipe's bigram G.
    graph = exp / "tri1/graph"
    run_script(["utils/mkgraph.sh", data / "lang_test_bg", exp / "tri1", graph], k, env=kaldi_env)
    assert (graph / "HCLG.fst").stat().st_size > 0

    # 5. The recipe's ConvNet on the triphone targets, decoded by Kaldi's latgen-faster-mapped
    #    through Kaldi's triphone graph, with the triphone model's transition-ids.
    (recipe_dir / "convnet_swap.yaml").write_text(CONVNET_CONFIG)
    nnet = recipe_dir / "exp/convnet_tri1"
    run_script(["steps/train_convnet.sh", "--train-config", "convnet_swap.yaml", "--cmvn-stats",
                data / "timit/train/cmvn_global.stats", data / "timit/train", data / "timit/dev",
                recipe_dir / "exp/tri1_ali_targets", recipe_dir / "exp/tri1_ali_dev_targets", nnet],
               recipe_dir, env=recipe_env)
    model, _ = load_package(nnet / "final.pt")
    assert model.layer6.out_features == tri_pdfs
    # A barely trained network keeps wide raw lattices: --lattice-beam 4 keeps the LM-weight sweep short.
    decode = nnet / "decode_dev"
    proc = run_script(["steps/decode_hybrid.sh", "--nj", NJ, "--trans-mdl", exp / "tri1/final.mdl",
                       "--lattice-beam", 4, "--targets", recipe_dir / "exp/tri1_ali_dev_targets",
                       graph, data / "timit/dev", decode], recipe_dir, env=recipe_env)
    assert "latgen-faster-mapped" in proc.stdout   # Kaldi's decoder, not the embedded one
    loglikes = kaldiio.load_scp(str(decode / "loglikes.1.scp"))
    assert all(m.shape[1] == tri_pdfs for m in loglikes.values())
    best = (decode / "scoring/best_wer").read_text()
    per = float(re.search(r"%WER ([0-9.]+) \[", best).group(1))
    assert 0.0 <= per <= 100.0, best
    hyps = {line.split()[0] for f in decode.glob("hyp.[0-9]*") if re.fullmatch(r"hyp\.\d+", f.name)
            for line in f.read_text().splitlines()}
    assert hyps == set(utterances(data / "timit/dev"))
    print(f"Kaldi swap: mono {mono_pdfs} pdfs, tri1 {tri_pdfs} pdfs; {best.splitlines()[0]}")
