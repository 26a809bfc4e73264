"""Hybrid decoding: priors, the transition-id expansion, decoding a synthetic log-likelihood
matrix through a small HCLG, Kaldi lattice archives and the LM-weight sweep, and the same PER from
the ark written for Kaldi as from the in-memory matrices (also through steps/decode_hybrid.sh)."""
import gzip
import json
import math
import shutil
import struct
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

import kaldi_hmm_gmm  # noqa: F401  (before kaldifst)
import kaldifst

from pyscripts.asr.decode import (DECODERS, DecoderOptions, GraphDecoder, decode_ark, expand_to_tids,
                              lattice_to_bytes, load_tid2pdf, read_lattice_ark,
                              sweep_best_paths, sweep_lattice, write_lattice_entry)
from pyscripts.errors import DataError
from pyscripts.asr.hybrid import compute_fer, frame_errors, log_priors_from_counts, pseudo_loglikes
from pyscripts.kaldi.model import load_transition_model
from pyscripts.asr.phones import read_map39
from pyscripts.asr.result import read_result
from pyscripts.asr.scoring import per, read_tra
from pyscripts.kaldi.tables import read_symbols, write_kaldi_vector
from pyscripts.asr.utt_errors import read_by_utt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import RECIPE, run_script  # noqa: E402
from lattice_tools import best_path_words, lattice_from_bytes  # noqa: E402
from gmm_fixtures import PHONES, make_lang  # noqa: E402

PHONE_MAP = RECIPE / "conf/phones.60-48-39.map"
if not PHONE_MAP.is_file():
    PHONE_MAP = Path("/work/shared/timit/phones.60-48-39.map")


# -- priors -------------------------------------------------------------------------------------
def test_priors_are_subtracted():
    log_priors, floored = log_priors_from_counts([90, 10, 0])
    assert floored == 1
    assert log_priors[:2] == pytest.approx([math.log(0.9), math.log(0.1)])
    # An unseen pdf gets log(FLT_MAX / total): far below anything seen, but finite.
    assert log_priors[2] == pytest.approx(math.log(np.finfo(np.float32).max / 100))
    # Equal posteriors: dividing by the prior favours the rare class, never the frequent one.
    log_post = np.log(np.array([[0.5, 0.5 - 1e-9, 1e-9]]))
    ll = pseudo_loglikes(log_post, log_priors)
    assert ll.dtype == np.float32
    assert ll[0, :2] == pytest.approx([math.log(0.5 / 0.9), math.log(0.5 / 0.1)], rel=1e-6)
    assert np.argmax(ll[0]) == 1 and ll[0, 2] < -80
    assert pseudo_loglikes(log_post, log_priors, prior_scale=0.0) == pytest.approx(log_post.astype(np.float32))
    with pytest.raises(DataError, match="prior counts do not belong"):
        pseudo_loglikes(np.zeros((2, 4)), log_priors)


def test_fer_recovers_posterior_argmax():
    log_priors, _ = log_priors_from_counts([80, 15, 5])
    log_post = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4]]))
    ll = pseudo_loglikes(log_post, log_priors)
    assert np.argmax(ll[2]) == 2            # the prior flips the likelihood's argmax ...
    assert frame_errors(ll, log_priors, [0, 1, 0]) == (0, 3)   # ... but FER uses the posteriors
    with pytest.raises(DataError, match="utterance u7"):
        frame_errors(ll, log_priors, [0, 1], "u7")


# -- a small graph ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """Phone lang of gmm_fixtures, a phone-loop G (each phone 1/6), a monophone model, HCLG (built
    with the issue-3 modules)."""
    from pyscripts.gmm.mkgraph import make_hclg
    from pyscripts.gmm.model import init_mono, save_model, save_tree
    root = tmp_path_factory.mktemp("graph")
    lang = make_lang(root)
    words = read_symbols(lang / "words.txt")
    g = kaldifst.StdVectorFst()
    s = g.add_state()
    g.start = s
    g.set_final(s, 0.0)
    for p in PHONES:
        g.add_arc(s, kaldifst.StdArc(words[p], words[p], math.log(len(PHONES)), s))
    g.write(str(lang / "G.fst"))
    tm, tree, am = init_mono((lang / "topo").read_text(), np.zeros(13), np.ones(13))
    model_dir = root / "mono"
    model_dir.mkdir()
    save_model(model_dir / "final.mdl", tm, am)
    save_tree(model_dir / "tree", tree)
    make_hclg(lang, model_dir, model_dir / "graph")
    parsed = load_transition_model(model_dir / "final.mdl")
    phone_ids = read_symbols(lang / "phones.txt")
    pdf_of = {}
    for tid in range(1, parsed.num_transition_ids + 1):
        pdf_of[(int(parsed.id2phone[tid]), int(parsed.id2hmm_state[tid]))] = int(parsed.id2pdf[tid])
    return {"dir": model_dir, "graph": model_dir / "graph", "mdl": model_dir / "final.mdl",
            "words": words, "id2word": {i: w for w, i in words.items()}, "num_pdfs": parsed.num_pdfs,
            "pdf": lambda phone, state: pdf_of[(phone_ids[phone], state)]}


def synthetic_loglikes(graph, phones, rng, frames_per_state=3, noise=0.0, floor=-6.0):
    """Log-likelihoods that spell `phones` (3 states each): 0 for the right pdf, `floor` (+ noise)
    for the others. Returns (matrix, per-frame pdf ids)."""
    pdfs = [graph["pdf"](p, s) for p in phones for s in range(3) for _ in range(frames_per_state)]
    ll = np.full((len(pdfs), graph["num_pdfs"]), floor, dtype=np.float32)
    if noise:
        ll += noise * rng.randn(*ll.shape).astype(np.float32)
    ll[np.arange(len(pdfs)), pdfs] = 0.0
    return ll, np.array(pdfs)


def test_expansion_maps_column_tid_minus_one_to_pdf_of_tid(graph):
    tid2pdf = load_tid2pdf(graph["mdl"])
    tm = load_transition_model(graph["mdl"])
    assert len(tid2pdf) == tm.num_transition_ids
    ll = np.arange(2 * graph["num_pdfs"], dtype=np.float32).reshape(2, -1)
    m = expand_to_tids(ll, tid2pdf, 0.1)
    for tid in (1, 2, tm.num_transition_ids):
        assert m[1, tid - 1] == pytest.approx(0.1 * ll[1, tm.id2pdf[tid]])
    with pytest.raises(DataError, match="do not match"):
        expand_to_tids(ll[:, :3], tid2pdf, 0.1)


@pytest.mark.parametrize("decoder", DECODERS)
def test_decode_spells_the_phone_sequence(graph, decoder):
    seq = ["sil", "aa", "b", "iy", "k", "s", "aa", "sil"]
    ll, _ = synthetic_loglikes(graph, seq, np.random.RandomState(0), noise=1.0)
    dec = GraphDecoder(graph["graph"] / "HCLG.fst", load_tid2pdf(graph["mdl"]), DecoderOptions(decoder=decoder))
    result = dec.decode(ll)
    assert [graph["id2word"][w] for w in result.words] == seq
    assert result.reached_final
    assert (result.lattice is not None) == (decoder == "lattice")


def test_acoustic_scale_trades_acoustics_against_the_lm(graph):
    # Each phone has prior 1/6 in G; a short, weak "b" is kept at a high acoustic scale and dropped
    # at a low one, where the LM cost of one more phone outweighs the acoustic evidence.
    ll, _ = synthetic_loglikes(graph, ["sil", "aa", "b", "sil"], None, frames_per_state=1, floor=-1.0)
    tid2pdf = load_tid2pdf(graph["mdl"])
    high = GraphDecoder(graph["graph"] / "HCLG.fst", tid2pdf, DecoderOptions(acoustic_scale=1.0)).decode(ll)
    low = GraphDecoder(graph["graph"] / "HCLG.fst", tid2pdf, DecoderOptions(acoustic_scale=0.05)).decode(ll)
    assert len(high.words) == 4 and len(low.words) < 4


def test_lattice_archive_and_sweep(graph, tmp_path):
    rng = np.random.RandomState(1)
    dec = GraphDecoder(graph["graph"] / "HCLG.fst", load_tid2pdf(graph["mdl"]), DecoderOptions(acoustic_scale=0.1))
    seqs = {"s1_a": ["sil", "k", "aa", "s", "sil"], "s1_b": ["sil", "iy", "b", "sil"]}
    best = {}
    with open(tmp_path / "lat.1", "wb") as f:
        for utt, seq in seqs.items():
            r = dec.decode(synthetic_loglikes(graph, seq, rng, noise=1.5, floor=-4.0)[0])
            best[utt] = r.words
            write_lattice_entry(f, utt, lattice_to_bytes(r.lattice, tmp_path / "t.fst"))
    entries = list(read_lattice_ark(tmp_path / "lat.1"))
    assert [e[0] for e in entries] == ["s1_a", "s1_b"]
    # Kaldi raw lattice: vector FST with lattice4 arcs, costs with the acoustic scale taken out.
    assert entries[0][1][4:20] == b"\x06\x00\x00\x00vector\x08\x00\x00\x00la"
    assert len(entries[0][2].arcs) > 50
    sweep = sweep_best_paths([tmp_path / "lat.1"], [10, 1000], [0.0, 1e4])
    assert sweep[(10, 0.0)] == best                     # LMWT 10 = the decoding acoustic scale 0.1
    assert [graph["id2word"][w] for w in best["s1_a"]] == seqs["s1_a"]
    # LMWT 1000 (acoustic scale 0.001): the LM (1/6 a phone) dominates, fewer phones win.
    assert len(sweep[(1000, 0.0)]["s1_a"]) < len(seqs["s1_a"])
    # A huge insertion penalty leaves as few words as the lattice allows.
    assert all(len(w) <= 1 for w in sweep[(10, 1e4)].values())


def test_sweep_equals_openfst_shortest_path(graph, tmp_path):
    """The vectorised DP gives OpenFst's best path at every LM weight (no penalty), on noisy
    lattices with many competing paths."""
    rng = np.random.RandomState(3)
    dec = GraphDecoder(graph["graph"] / "HCLG.fst", load_tid2pdf(graph["mdl"]), DecoderOptions(acoustic_scale=0.1))
    lmwts = [1, 2, 3, 5, 8, 13, 20]
    for _ in range(3):
        seq = ["sil"] + list(rng.choice(PHONES[1:], 6)) + ["sil"]
        r = dec.decode(synthetic_loglikes(graph, seq, rng, frames_per_state=2, noise=2.5, floor=-2.0)[0])
        data = lattice_to_bytes(r.lattice, tmp_path / "t.fst")
        with open(tmp_path / "lat.1", "wb") as f:
            write_lattice_entry(f, "u", data)
        (_, _, raw), = read_lattice_ark(tmp_path / "lat.1")
        ours = sweep_lattice(raw, [(l, 0.0) for l in lmwts])
        reference = lattice_from_bytes(data, tmp_path / "r.fst")
        assert ours == [best_path_words(reference, l) for l in lmwts]
        assert len({tuple(w) for w in ours}) > 1  # the LM weight matters on these lattices


def test_bad_lattice_archive_is_an_error(tmp_path):
    (tmp_path / "lat.1").write_bytes(b"u1 not an fst at all")
    with pytest.raises(DataError, match="u1"):
        list(read_lattice_ark(tmp_path / "lat.1"))


# -- ark for Kaldi vs in memory, and the scripts ------------------------------------------------
@pytest.fixture(scope="module")
def noisy_set(graph):
    """Six utterances of two speakers whose noisy log-likelihoods decode with some errors."""
    rng = np.random.RandomState(7)
    text, mats, targets = {}, {}, {}
    for i in range(6):
        utt = f"spk{i % 2}_u{i}"
        seq = ["sil"] + list(rng.choice(PHONES[1:], 5)) + ["sil"]
        ll, pdfs = synthetic_loglikes(graph, seq, rng, frames_per_state=2, noise=2.0, floor=-3.0)
        text[utt], mats[utt], targets[utt] = seq, ll, pdfs
    return text, mats, targets


def test_same_per_from_ark_and_from_memory(graph, noisy_set, tmp_path):
    text, mats, _ = noisy_set
    map39 = read_map39(PHONE_MAP)
    dec = GraphDecoder(graph["graph"] / "HCLG.fst", load_tid2pdf(graph["mdl"]))
    in_memory = {u: [graph["id2word"][w] for w in dec.decode(m).words] for u, m in mats.items()}
    decode_dir = tmp_path / "decode"
    decode_dir.mkdir()
    with kaldiio.WriteHelper(f"ark:{decode_dir}/loglikes.1.ark") as w:
        for utt in sorted(mats):
            w(utt, mats[utt])
    decode_ark(graph["graph"] / "HCLG.fst", graph["mdl"], decode_dir / "loglikes.1.ark", decode_dir, 1,
               words_txt=graph["graph"] / "words.txt")
    from_ark = read_tra(decode_dir / "hyp.1")
    assert from_ark == in_memory
    fold = {u: [map39[p] for p in s] for u, s in text.items()}
    a = per(fold, {u: [map39[p] for p in h] for u, h in in_memory.items()})
    b = per(fold, {u: [map39[p] for p in h] for u, h in from_ark.items()})
    assert a == b
    # The decode of these log-likelihoods (seeded noise, Kaldi's decoder: no randomness of its own): 10 of
    # the 42 phones found, the rest deleted; a broken decode, fold or scorer changes these counts.
    assert (a.ref, a.corr, a.sub, a.dele, a.ins, a.utts) == (42, 10, 0, 32, 0, 6)


def test_decode_script_end_to_end(graph, noisy_set, recipe_dir):
    """steps/decode_hybrid.sh from stage 1 (loglikes.*.ark given) with 2 jobs: lattices, sweep,
    scoring, FER; the PER at LMWT 10 equals the in-memory decode's."""
    text, mats, targets = noisy_set
    data = recipe_dir / "data/test"
    data.mkdir(parents=True)
    (data / "text").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sorted(text.items())))
    decode_dir = recipe_dir / "exp/convnet/decode_test"
    decode_dir.mkdir(parents=True)
    utts = sorted(mats)
    for job, part in ((1, utts[:3]), (2, utts[3:])):
        with kaldiio.WriteHelper(f"ark:{decode_dir}/loglikes.{job}.ark") as w:
            for utt in part:
                w(utt, mats[utt])
    write_kaldi_vector(decode_dir / "log_priors", np.zeros(graph["num_pdfs"]))
    tdir = recipe_dir / "exp/targets_test"
    tdir.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{tdir}/targets.ark,{tdir}/targets.scp") as w:
        for utt in utts:
            w(utt, targets[utt].astype(np.int32))
    run_script([recipe_dir / "steps/decode_hybrid.sh", "--stage", "1", "--nj", "2",
                "--trans-mdl", graph["mdl"], "--targets", tdir,
                "--scoring-opts", "--min-lmwt 5 --max-lmwt 12 --word-ins-penalty -1.0,0.0,1.0",
                graph["graph"], data, decode_dir], cwd=recipe_dir)
    assert sorted(p.name for p in decode_dir.glob("lat.*.gz")) == ["lat.1.gz", "lat.2.gz"]
    assert len(list(decode_dir.glob("wer_*"))) == 24   # a negative penalty (a bonus) too
    assert (decode_dir / "wer_5_-1.0").is_file()
    best = (decode_dir / "scoring/best_wer").read_text()
    assert best.startswith("%WER ")
    # LMWT 10, no penalty: the decoding acoustic scale, so the in-memory decode's PER.
    map39 = read_map39(PHONE_MAP)
    dec = GraphDecoder(graph["graph"] / "HCLG.fst", load_tid2pdf(graph["mdl"]))
    hyps = {u: [map39[graph["id2word"][w]] for w in dec.decode(m).words] for u, m in mats.items()}
    expected = per({u: [map39[p] for p in s] for u, s in text.items()}, hyps)
    assert (decode_dir / "wer_10_0.0").read_text().splitlines()[0] == expected.kaldi_line()
    assert (decode_dir / "scoring/fer").read_text().startswith("%FER ")
    intervals = json.loads((decode_dir / "scoring/intervals.json").read_text())   # local/score.sh's step 4
    assert intervals["PER"]["low"] <= intervals["PER"]["estimate"] <= intervals["PER"]["high"]
    assert {"FER", "PER"} <= set(intervals)
    record = read_result(decode_dir)
    assert record["setting"] == intervals["PER"]["setting"] and not (decode_dir / "scoring/best_setting").exists()
    assert record["fer"]["frames"] > 0 and record["rtf"]["decode"]["nj"] == 2
    assert f"{record['per']['percent']:.2f} [ {record['per']['errors']} / {record['per']['ref']}," in best
    sys_file = next((decode_dir / "scoring").glob("hyp_*.trn.sys"))
    assert "Sum/Avg" in sys_file.read_text()
    assert "decode:" in (decode_dir / "rtf").read_text()
    table = run_script([recipe_dir / "local/results.sh", "exp"], cwd=recipe_dir).stdout
    assert "| exp/convnet |" in table


def test_fer_against_targets(graph, noisy_set, tmp_path):
    _, mats, targets = noisy_set
    d = tmp_path / "decode"
    d.mkdir()
    with kaldiio.WriteHelper(f"ark:{d}/loglikes.1.ark") as w:
        for utt in sorted(mats):
            w(utt, mats[utt])
    write_kaldi_vector(d / "log_priors", np.zeros(graph["num_pdfs"]))
    tdir = tmp_path / "targets"
    tdir.mkdir()
    frames = errors = 0
    with kaldiio.WriteHelper(f"ark,scp:{tdir}/targets.ark,{tdir}/targets.scp") as w:
        for utt in sorted(mats)[:-1]:  # one utterance without targets: counted, not hidden
            w(utt, targets[utt].astype(np.int32))
            frames += len(targets[utt])
            errors += int((np.argmax(mats[utt], axis=1) != targets[utt]).sum())
    fer = compute_fer(d, tdir)
    assert fer == pytest.approx(100.0 * errors / frames)
    assert "1 without targets" in (d / "scoring/fer").read_text()
    by_utt = read_by_utt(d / "scoring/fer_by_utt")
    assert (by_utt.errors.sum(), by_utt.totals.sum(), len(by_utt.utts)) == (errors, frames, len(mats) - 1)


def _small_convnet_and_data(graph, noisy_set, recipe_dir):
    """exp/convnet/final.pt (a small untrained ConvNet, one pdf never seen in its prior counts) and
    data/test (features of the noisy set's utterances); returns (exp dir, data dir, feats, counts)."""
    import torch
    from pyscripts.nnet.model import ConvNet
    from pyscripts.nnet.model import package_model
    text, mats, _ = noisy_set
    num_pdfs = graph["num_pdfs"]
    torch.manual_seed(0)
    model = ConvNet(num_pdfs, feat_dim=40, context=15, conv1_channels=4, conv2_channels=4, fc_dim=16).eval()
    counts = (torch.arange(num_pdfs) + 1) * 10
    counts[3] = 0                                                  # one pdf never seen
    exp_dir = recipe_dir / "exp/convnet"
    exp_dir.mkdir(parents=True)
    torch.save(package_model(model, {}, counts, 1, {}, []), exp_dir / "final.pt")
    data = recipe_dir / "data/test"
    data.mkdir(parents=True)
    rng = np.random.RandomState(5)
    feats = {u: rng.randn(len(m), 40).astype(np.float32) for u, m in mats.items()}
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as w:
        for utt in sorted(feats):
            w(utt, feats[utt])
    (data / "text").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sorted(text.items())))
    (data / "utt2spk").write_text("".join(f"{u} {u.split('_')[0]}\n" for u in sorted(text)))
    (data / "spk2utt").write_text("".join(f"spk{k} {' '.join(u for u in sorted(text) if u.startswith(f'spk{k}_'))}\n"
                                          for k in range(2)))
    return exp_dir, data, feats, counts


def test_forward_stage_subtracts_the_priors(graph, noisy_set, recipe_dir):
    """Stage 0 of steps/decode_hybrid.sh with a small ConvNet package: loglikes.JOB.ark holds the
    network's log-posteriors minus the log priors of its prior counts (unseen pdfs floored), and
    the script goes on to the scores."""
    from pyscripts.nnet.forward import log_posteriors
    exp_dir, data, feats, counts = _small_convnet_and_data(graph, noisy_set, recipe_dir)
    decode_dir = exp_dir / "decode_test"
    run_script([recipe_dir / "steps/decode_hybrid.sh", "--nj", "1", "--trans-mdl", graph["mdl"],
                "--decoder", "faster", "--scoring-opts", "--min-lmwt 10 --max-lmwt 10",
                graph["graph"], data, decode_dir], cwd=recipe_dir)
    written = {u: m for ark in sorted(decode_dir.glob("loglikes.*.ark")) for u, m in kaldiio.load_ark(str(ark))}
    assert sorted(written) == sorted(feats)
    total = float(counts.sum())
    log_priors = np.log(np.maximum(counts.numpy(), 1) / total)
    log_priors[3] = np.log(np.finfo(np.float32).max / total)
    utt = sorted(feats)[0]
    expected = log_posteriors(exp_dir / "final.pt", feats[utt]) - log_priors[None, :]
    assert written[utt] == pytest.approx(expected, abs=1e-4)
    assert (decode_dir / "scoring/best_wer").read_text().startswith("%WER ")
    assert read_result(decode_dir)["device"] == "cpu"
    rtf = (decode_dir / "rtf").read_text()
    assert "forward:" in rtf and "RTF 1-thread" in rtf and "; device=cpu threads=1" in rtf   # the default: CPU


def test_dev_and_test_are_decoded_once_until_an_input_changes(graph, noisy_set, recipe_dir):
    """steps/decode_dev_test.sh keeps MODEL_DIR/decode.stamp: a second call is up to date and decodes
    nothing, also through a link to the model dir (a transfer Baseline); a changed decode conf decodes
    both sets again and says why."""
    exp_dir, data, _, _ = _small_convnet_and_data(graph, noisy_set, recipe_dir)
    shutil.copytree(data, data.parent / "dev")
    tdir = recipe_dir / "exp/targets"
    tdir.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{tdir}/targets.ark,{tdir}/targets.scp") as w:
        for utt, pdfs in sorted(noisy_set[2].items()):
            w(utt, pdfs.astype(np.int32))
    (tdir / "num_targets").write_text(f"{graph['num_pdfs']}\n")
    conf = recipe_dir / "fast.conf"
    conf.write_text("--min-lmwt=10\n--max-lmwt=10\n--word-ins-penalty=0.0\n")

    def decode(model_dir):
        return run_script([recipe_dir / "steps/decode_dev_test.sh", "--nj", "1", "--decode-conf", conf,
                           "--decode-opts", "--decoder faster", graph["graph"], data.parent, tdir, tdir, model_dir],
                          cwd=recipe_dir).stdout

    assert "out of date (no record of a finished run)" in decode(exp_dir)
    loglikes = exp_dir / "decode_test/loglikes.1.ark"
    made = loglikes.stat().st_mtime_ns
    assert read_result(exp_dir / "decode_test")["lmwt"] == 10
    (recipe_dir / "exp/baseline").symlink_to(exp_dir)
    for model_dir in (exp_dir, recipe_dir / "exp/baseline"):
        assert "up to date" in decode(model_dir)
    assert loglikes.stat().st_mtime_ns == made
    conf.write_text("--min-lmwt=10\n--max-lmwt=10\n--word-ins-penalty=0.0\n--beam=10.0\n")
    assert "out of date (decode_conf changed)" in decode(exp_dir)
    assert loglikes.stat().st_mtime_ns > made and (exp_dir / "decode.stamp").is_file()


def _compact_lattice_bytes():
    """A hand-made compactlattice44 VectorFst (Kaldi's determinised lattices): 0 -5-> 1 -> final
    (costs graph 1 + 0.5, acoustic 2 + 0.5) and 0 -6-> 2 final (graph 0 + 0.5, acoustic 10 + 0.5);
    weights carry transition-id strings, which the reader skips."""
    def string(s):
        return struct.pack("<i", len(s)) + s.encode()

    def weight(g, a, tids):
        return struct.pack("<ffi", g, a, len(tids)) + struct.pack(f"<{len(tids)}i", *tids)

    def arc(word, g, a, tids, nextstate):
        return struct.pack("<ii", word, word) + weight(g, a, tids) + struct.pack("<i", nextstate)

    inf = float("inf")
    header = (struct.pack("<i", 2125659606) + string("vector") + string("compactlattice44")
              + struct.pack("<iiQqqq", 2, 0, 0, 0, 3, 2))
    states = (weight(inf, inf, []) + struct.pack("<q", 2) + arc(5, 1.0, 2.0, [3, 4], 1)
              + arc(6, 0.0, 10.0, [], 2)
              + weight(0.5, 0.5, [7]) + struct.pack("<q", 0)
              + weight(0.5, 0.5, []) + struct.pack("<q", 0))
    return header + states


@pytest.mark.parametrize("compress", [False, True])
def test_compact_lattices_as_kaldi_writes_them(tmp_path, compress):
    data = b"u1 " + _compact_lattice_bytes() + b"u2 " + _compact_lattice_bytes()
    path = tmp_path / "lat.1.gz"
    path.write_bytes(gzip.compress(data) if compress else data)
    entries = list(read_lattice_ark(path))
    assert [e[0] for e in entries] == ["u1", "u2"]
    assert entries[0][2].num_states == 3 and entries[0][2].arcs["olabel"].tolist() == [5, 6]
    sweep = sweep_best_paths([path], [1, 100], [0.0])
    assert sweep[(1, 0.0)] == {"u1": [5], "u2": [5]}      # 1 + 2 + 1 < 0 + 10 + 1
    assert sweep[(100, 0.0)] == {"u1": [6], "u2": [6]}    # 1.5 + 0.025 > 0.5 + 0.105
