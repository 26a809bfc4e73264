"""Kaldi alignment dirs to training targets (pyscripts/asr/alignments.py, pyscripts/kaldi/model.py),
with final.mdl and ali.1.gz built byte by byte in Kaldi's binary formats."""
import gzip
import struct

import kaldiio
import numpy as np
import pytest

from pyscripts.asr.alignments import (ali_dir_to_targets, ali_to_pdf, ali_to_phone_segments,
                                  read_int_vector_ark, write_unaligned)
from pyscripts.errors import DataError
from pyscripts.kaldi.model import load_transition_model


# -- Kaldi binary serialisation (base/io-funcs.h) ---------------------------------------------------
def tok(s):
    return s.encode() + b" "


def i32(v):
    return b"\x04" + struct.pack("<i", v)


def f32(v):
    return b"\x04" + struct.pack("<f", v)


def int_vector(values):
    return b"\x04" + struct.pack("<i", len(values)) + struct.pack(f"<{len(values)}i", *values)


def float_vector(values):
    return tok("FV") + i32(len(values)) + struct.pack(f"<{len(values)}f", *values)


def left_to_right(n):
    """States of an n-state left-to-right HMM: (pdf class, [(dest, prob)]), then the final state."""
    return [(s, [(s, 0.75), (s + 1, 0.25)]) for s in range(n)] + [(-1, [])]


def binary_transition_model(entries, phone2entry, tuples, self_loop_classes=None):
    """A <TransitionModel> block. tuples are (phone, hmm_state, pdf) (<Triples>) or, with
    self_loop_classes, (phone, hmm_state, forward pdf, self-loop pdf) (<Tuples>)."""
    is_hmm = self_loop_classes is None
    phones = sorted(phone2entry)
    phone2idx = [-1] * (max(phones) + 1)
    for p, e in phone2entry.items():
        phone2idx[p] = e
    topo = tok("<Topology>") + int_vector(phones) + int_vector(phone2idx)
    if not is_hmm:
        topo += i32(-1)  # marks the format with separate self-loop pdf classes
    topo += i32(len(entries))
    num_tids = 0
    for e, entry in enumerate(entries):
        topo += i32(len(entry))
        for s, (pdf_class, trans) in enumerate(entry):
            topo += i32(pdf_class)
            if not is_hmm:
                topo += i32(self_loop_classes[e][s])
            topo += i32(len(trans)) + b"".join(i32(d) + f32(p) for d, p in trans)
    topo += tok("</Topology>")
    for t in tuples:
        num_tids += len(entries[phone2entry[t[0]]][t[1]][1])
    name = "Triples" if is_hmm else "Tuples"
    body = tok(f"<{name}>") + i32(len(tuples)) + b"".join(b"".join(i32(v) for v in t) for t in tuples)
    body += tok(f"</{name}>")
    log_probs = [0.0] + [float(np.log(0.5))] * num_tids
    return (tok("<TransitionModel>") + topo + body + tok("<LogProbs>") + float_vector(log_probs)
            + tok("</LogProbs>") + tok("</TransitionModel>"))


def binary_ali_ark(alis):
    out = b""
    for utt, ali in alis.items():
        out += utt.encode() + b" \0B" + b"\x04" + struct.pack("<i", len(ali))
        out += b"".join(b"\x04" + struct.pack("<i", v) for v in ali)
    return out


# Phones 1 and 2: 3-state left-to-right; phone 3: one state. Like a tree, the triples give phone 2's
# first state phone 1's pdf 0, and phone 2's last state two pdfs (two contexts).
ENTRIES = [left_to_right(3), left_to_right(1)]
PHONE2ENTRY = {1: 0, 2: 0, 3: 1}
TRIPLES = [(1, 0, 0), (1, 1, 1), (1, 2, 2), (2, 0, 0), (2, 1, 3), (2, 2, 4), (2, 2, 5), (3, 0, 6)]
# Transition-ids follow the triples, two per state (self-loop first, as listed in the topology):
# 1,2 -> pdf 0 | 3,4 -> 1 | 5,6 -> 2 | 7,8 -> 0 | 9,10 -> 3 | 11,12 -> 4 | 13,14 -> 5 | 15,16 -> 6.
# Kaldi order (self-loops before leaving a state): phone 1, phone 3, phone 2 (last-state pdf 5).
ALI_PLAIN = [1, 1, 2, 3, 4, 5, 5, 6, 15, 16, 7, 8, 9, 10, 13, 14]
PDFS_PLAIN = [0, 0, 0, 1, 1, 2, 2, 2, 6, 6, 0, 0, 3, 3, 5, 5]
# Reordered HMMs (compile-train-graphs' default): a state's frames are its forward transition, then
# its self-loops.
ALI_REORDERED = [2, 1, 4, 6, 5, 5, 8, 10, 9, 12]
PDFS_REORDERED = [0, 0, 1, 2, 2, 2, 0, 3, 3, 4]
# A dummy GMM part follows the transition model in a GMM final.mdl; the reader must stop before it.
AM_TAIL = tok("<DIMENSION>") + i32(2) + tok("<NUMPDFS>") + i32(7)


def make_ali_dir(path, mdl_bytes, alis, num_jobs=True):
    path.mkdir(parents=True, exist_ok=True)
    (path / "final.mdl").write_bytes(b"\0B" + mdl_bytes + AM_TAIL)
    with gzip.open(path / "ali.1.gz", "wb") as f:
        f.write(binary_ali_ark(alis))
    if num_jobs:
        (path / "num_jobs").write_text("1\n")
    (path / "phones.txt").write_text("<eps> 0\nx 1\ny 2\nz 3\n")
    return path


def make_data_dir(path, num_frames, with_utt2num_frames=True):
    path.mkdir(parents=True, exist_ok=True)
    if with_utt2num_frames:
        (path / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in sorted(num_frames.items())))
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as w:
        for u, n in sorted(num_frames.items()):
            w(u, np.zeros((n, 40), dtype=np.float32))
    return path


def load_from_bytes(tmp_path, data):
    (tmp_path / "final.mdl").write_bytes(data)
    return load_transition_model(tmp_path / "final.mdl")


def test_binary_transition_model_with_triples(tmp_path):
    tm = load_from_bytes(tmp_path, b"\0B" + binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES) + AM_TAIL)
    assert tm.is_hmm and tm.num_pdfs == 7 and tm.num_transition_ids == 16
    assert tm.id2pdf[1:].tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 3, 3, 4, 4, 5, 5, 6, 6]
    assert tm.id2phone[1:].tolist() == [1] * 6 + [2] * 8 + [3] * 2
    assert tm.id_is_self_loop[1:].tolist() == [True, False] * 8
    assert ali_to_pdf(tm, ALI_PLAIN).tolist() == PDFS_PLAIN
    assert ali_to_phone_segments(tm, ALI_PLAIN) == [(1, 0, 8), (3, 8, 2), (2, 10, 6)]
    assert ali_to_pdf(tm, ALI_REORDERED).tolist() == PDFS_REORDERED
    assert ali_to_phone_segments(tm, ALI_REORDERED) == [(1, 0, 6), (2, 6, 4)]


def test_binary_transition_model_with_tuples(tmp_path):
    # One-state phones whose self-loop has its own pdf class (the newer <Tuples> form).
    entries = [[(0, [(0, 0.5), (1, 0.5)]), (-1, [])]]
    tuples = [(1, 0, 0, 1), (2, 0, 2, 3)]
    tm = load_from_bytes(tmp_path, b"\0B" + binary_transition_model(entries, {1: 0, 2: 0}, tuples,
                                                                   self_loop_classes=[[1, -1]]))
    assert not tm.is_hmm and tm.num_pdfs == 4
    # Transition-ids 1 (self-loop, pdf 1), 2 (forward, pdf 0), 3 (self-loop, pdf 3), 4 (forward, pdf 2).
    assert ali_to_pdf(tm, [2, 1, 1, 4, 3]).tolist() == [0, 1, 1, 2, 3]
    assert ali_to_phone_segments(tm, [2, 1, 1, 4, 3]) == [(1, 0, 3), (2, 3, 2)]


def test_ali_dir_to_targets(tmp_path):
    mdl = binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES)
    ali_dir = make_ali_dir(tmp_path / "ali", mdl, {"utt1": ALI_PLAIN, "utt2": ALI_REORDERED})
    assert dict(read_int_vector_ark(ali_dir / "ali.1.gz"))["utt1"].tolist() == ALI_PLAIN
    data = make_data_dir(tmp_path / "data", {"utt1": 16, "utt2": 10, "utt3": 7})
    n_utts, n_frames = ali_dir_to_targets(ali_dir, data, tmp_path / "targets")
    assert (n_utts, n_frames) == (2, 26)
    targets = dict(kaldiio.load_scp(str(tmp_path / "targets/targets.scp")))
    assert set(targets) == {"utt1", "utt2"}  # utt3 has no alignment: no targets, counted in the log
    assert targets["utt1"].dtype == np.int32 and targets["utt1"].tolist() == PDFS_PLAIN
    assert targets["utt2"].tolist() == PDFS_REORDERED
    assert (tmp_path / "targets/num_targets").read_text().strip() == "7"
    counts = [int(x) for x in (tmp_path / "targets/pdf_counts").read_text().strip("[] \n").split()]
    assert counts == np.bincount(PDFS_PLAIN + PDFS_REORDERED, minlength=7).tolist()
    # The targets archive is a Kaldi int32-vector archive (what copy-int-vector reads).
    raw = (tmp_path / "targets/targets.ark").read_bytes()
    assert raw.startswith(b"utt1 \0B\x04" + struct.pack("<i", 16) + b"\x04" + struct.pack("<i", 0))


def test_unaligned_utterances_are_listed_in_the_ali_dir(tmp_path):
    ali_dir = make_ali_dir(tmp_path / "ali", binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES),
                           {"utt1": ALI_PLAIN, "utt2": ALI_REORDERED})
    (tmp_path / "data").mkdir()
    (tmp_path / "data/utt2spk").write_text("utt0 s\nutt1 s\nutt2 s\nutt3 s\n")
    assert write_unaligned(tmp_path / "data", ali_dir) == 2
    assert (ali_dir / "unaligned").read_text() == "utt0\nutt3\n"


def test_text_model_gives_the_same_targets(tmp_path):
    # The same transition model in Kaldi's text format.
    topo = ["<Topology>", "<TopologyEntry>", "<ForPhones>", "1 2", "</ForPhones>"]
    topo += [f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>"
             for s in range(3)]
    topo += ["<State> 3 </State>", "</TopologyEntry>", "<TopologyEntry>", "<ForPhones>", "3",
             "</ForPhones>", "<State> 0 <PdfClass> 0 <Transition> 0 0.5 <Transition> 1 0.5 </State>",
             "<State> 1 </State>", "</TopologyEntry>", "</Topology>"]
    text = ("<TransitionModel>\n" + "\n".join(topo) + f"\n<Triples> {len(TRIPLES)}\n"
            + "".join(f"{p} {s} {d}\n" for p, s, d in TRIPLES) + "</Triples>\n<LogProbs>\n [ "
            + " ".join(["0"] + ["-0.693147"] * 16) + " ]\n</LogProbs>\n</TransitionModel>\n"
            "<DIMENSION> 2 <NUMPDFS> 7 ")
    ali_dir = make_ali_dir(tmp_path / "ali", b"", {"utt1": ALI_PLAIN}, num_jobs=False)
    (ali_dir / "final.mdl").write_text(text)
    data = make_data_dir(tmp_path / "data", {"utt1": 16}, with_utt2num_frames=False)
    ali_dir_to_targets(ali_dir, data, tmp_path / "targets")
    assert dict(kaldiio.load_scp(str(tmp_path / "targets/targets.scp")))["utt1"].tolist() == PDFS_PLAIN


@pytest.mark.parametrize("with_utt2num_frames", [True, False])
def test_frame_count_mismatch_names_the_utterance(tmp_path, with_utt2num_frames):
    mdl = binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES)
    ali_dir = make_ali_dir(tmp_path / "ali", mdl, {"utt1": ALI_PLAIN, "utt2": ALI_REORDERED})
    data = make_data_dir(tmp_path / "data", {"utt1": 16, "utt2": 11}, with_utt2num_frames)
    with pytest.raises(DataError, match=r"utterance utt2: 10 frames .* but 11 in the features"):
        ali_dir_to_targets(ali_dir, data, tmp_path / "targets")


def test_alignment_from_another_model_is_reported(tmp_path):
    mdl = binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES)
    ali_dir = make_ali_dir(tmp_path / "ali", mdl, {"utt1": ALI_PLAIN[:-1] + [17]})
    data = make_data_dir(tmp_path / "data", {"utt1": 16})
    with pytest.raises(DataError, match=r"utterance utt1: transition-id 17 out of range 1..16"):
        ali_dir_to_targets(ali_dir, data, tmp_path / "targets")


def test_corrupt_model_is_reported(tmp_path):
    mdl = binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES)
    (tmp_path / "final.mdl").write_bytes(b"\0B" + mdl[:60])
    with pytest.raises(DataError, match="final.mdl: not a valid Kaldi model"):
        load_transition_model(tmp_path / "final.mdl")


def test_binary_gmm_part_of_final_mdl(tmp_path):
    from pyscripts.kaldi.model import load_gmm_model

    def float_matrix(rows):
        flat = [v for r in rows for v in r]
        return tok("FM") + i32(len(rows)) + i32(len(rows[0])) + struct.pack(f"<{len(flat)}f", *flat)
    am = tok("<DIMENSION>") + i32(2) + tok("<NUMPDFS>") + i32(7)
    for pdf in range(7):
        am += (tok("<DiagGMM>") + tok("<GCONSTS>") + float_vector([-1.0]) + tok("<WEIGHTS>")
               + float_vector([1.0]) + tok("<MEANS_INVVARS>") + float_matrix([[pdf * 2.0, 1.0]])
               + tok("<INV_VARS>") + float_matrix([[2.0, 4.0]]) + tok("</DiagGMM>"))
    (tmp_path / "final.mdl").write_bytes(b"\0B" + binary_transition_model(ENTRIES, PHONE2ENTRY, TRIPLES) + am)
    tm, dim, gmms = load_gmm_model(tmp_path / "final.mdl")
    assert dim == 2 and len(gmms) == tm.num_pdfs == 7
    assert gmms[3].means.tolist() == [[3.0, 0.25]]  # means_invvars / inv_vars


def test_boundary_accuracy_against_reference_ctm(tmp_path):
    from pyscripts.asr.ali_boundaries import evaluate
    (tmp_path / "ref.ctm").write_text(
        "u1 1 0.000 0.100 sil\nu1 1 0.100 0.050 aa\nu1 1 0.150 0.100 b\nu1 1 0.250 0.100 sil\n"
        "u2 1 0.000 0.100 sil\nu2 1 0.100 0.100 k\nu2 1 0.200 0.100 sil\n")
    # u1: boundaries off by +10, +30 and 0 ms; u2: the hypothesis has an extra phone, so only the
    # boundary between the two matched phones sil|k (off by 0 ms) pairs up, sil after k is missed.
    (tmp_path / "hyp.ctm").write_text(
        "u1 1 0.000 0.110 sil\nu1 1 0.110 0.070 aa\nu1 1 0.180 0.070 b\nu1 1 0.250 0.100 sil\n"
        "u2 1 0.000 0.100 sil\nu2 1 0.100 0.050 k\nu2 1 0.150 0.050 s\nu2 1 0.200 0.100 sil\n")
    r = evaluate(tmp_path / "ref.ctm", tmp_path / "hyp.ctm", collar=0.02)
    assert r["boundaries"] == 5 and r["paired"] == 4
    assert r["within_collar"] == pytest.approx(3 / 5)
    assert r["mean_offset"] == pytest.approx((0.01 + 0.03 + 0.0 + 0.0) / 4)
