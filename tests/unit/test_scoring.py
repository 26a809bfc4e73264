"""The built-in PER scorer (sclite's alignment costs and tie-breaking), 48 -> 39 folding, trn files,
best-setting selection and the results table, on hand-worked examples."""
from pathlib import Path

import numpy as np
import pytest

from pyscripts.asr import utt_errors
from pyscripts.errors import DataError
from pyscripts.asr.phones import read_map39
from pyscripts.asr.result import read_result
from pyscripts.asr.scoring import (align, best_setting, fold_phones, per, read_trn, results_markdown,
                               score_dir, speaker_of, write_best, write_reports, write_trn)
from sclite_tools import alignments, assert_same_table, dtl_sections, run_sclite, table_rows, totals

RECIPE = Path(__file__).resolve().parents[2]
PHONE_MAP = RECIPE / "conf/phones.60-48-39.map"
if not PHONE_MAP.is_file():  # before the foundation's conf file exists
    PHONE_MAP = Path("/work/shared/timit/phones.60-48-39.map")


def counts(ref, hyp):
    c = per({"s1_u1": ref}, {"s1_u1": hyp})
    return c.sub, c.dele, c.ins, c.ref, round(c.per, 2)


def test_substitution():
    assert align("a b c".split(), "a x c".split()) == [("C", "a", "a"), ("S", "b", "x"), ("C", "c", "c")]
    assert counts("a b c", "a x c") == (1, 0, 0, 3, 33.33)


def test_deletion():
    assert align("a b c d".split(), "a c d".split()) == [("C", "a", "a"), ("D", "b", None),
                                                          ("C", "c", "c"), ("C", "d", "d")]
    assert counts("a b c d", "a c d") == (0, 1, 0, 4, 25.0)


def test_insertion():
    assert align("a b".split(), "a b c".split())[-1] == ("I", None, "c")
    assert counts("a b", "a b c") == (0, 0, 1, 2, 50.0)


def test_empty_hypothesis_is_all_deletions():
    assert counts("sil aa sil", "") == (0, 3, 0, 3, 100.0)
    assert counts("sil aa sil", []) == (0, 3, 0, 3, 100.0)


def test_sclite_costs_prefer_insertion_plus_deletion_to_two_substitutions():
    # Two substitutions cost 4 + 4 = 8; deleting and re-inserting costs 3 + 0 + 3 = 6, so sclite
    # aligns "a b" / "b a" with one correct word. Two such alignments cost 6: at the last cell
    # deletion and insertion tie, and sclite then takes the insertion (net_dp.c: sub <= del, ins;
    # else del < ins; else ins), which leads back through b=b and a deletion of a.
    assert align(["a", "b"], ["b", "a"]) == [("D", "a", None), ("C", "b", "b"), ("I", None, "a")]
    assert counts("a b", "b a") == (0, 1, 1, 2, 100.0)


def test_sclite_tie_prefers_substitution_at_the_cell():
    # "a b" / "c": deleting a then b->c, or a->c then deleting b, both cost 7. At the last cell the
    # diagonal (b vs c) ties with the deletion of b, and sclite takes the diagonal.
    assert align(["a", "b"], ["c"]) == [("D", "a", None), ("S", "b", "c")]


def test_case_insensitive_like_sclite():
    assert counts("AA b", "aa B") == (0, 0, 0, 2, 0.0)


def test_totals_over_utterances():
    c = per({"s1_u1": "a b c", "s2_u2": "d e"}, {"s1_u1": "a c", "s2_u2": "d e f"})
    assert (c.ref, c.hyp, c.corr, c.sub, c.dele, c.ins, c.utts, c.utts_with_errors) == (5, 5, 4, 0, 1, 1, 2, 2)
    assert c.per == pytest.approx(40.0)
    assert c.kaldi_line() == "%WER 40.00 [ 2 / 5, 1 ins, 1 del, 0 sub ]"


def test_utterance_mismatch_names_the_utterance():
    with pytest.raises(DataError, match="s1_u2"):
        per({"s1_u1": "a"}, {"s1_u1": "a", "s1_u2": "b"})
    with pytest.raises(DataError, match="s9_x7.*no hypothesis"):
        per({"s1_u1": "a", "s9_x7": "b"}, {"s1_u1": "a"})


def test_fold_48_to_39():
    map39 = read_map39(PHONE_MAP)
    assert len(map39) == 48 and len(set(map39.values())) == 39
    assert fold_phones("ao ax cl vcl epi zh ix el en sil aa", map39) == \
        "aa ah sil sil sil sh ih l n sil aa".split()
    with pytest.raises(DataError, match="utterance u1: phone 'q'"):
        fold_phones(["aa", "q"], map39, "u1")


def test_folding_changes_the_score():
    map39 = read_map39(PHONE_MAP)
    ref = fold_phones("sil ao ix cl", map39)
    hyp = fold_phones("sil aa ih vcl", map39)
    assert per({"s_1": ref}, {"s_1": hyp}).errors == 0


def test_trn_round_trip(tmp_path):
    table = {"fadg0_si1279": ["sil", "aa"], "fadg0_sx19": [], "faks0_sa1": "b iy"}
    write_trn(tmp_path / "hyp.trn", table)
    assert (tmp_path / "hyp.trn").read_text() == \
        "sil aa (fadg0_si1279)\n(fadg0_sx19)\nb iy (faks0_sa1)\n"
    assert read_trn(tmp_path / "hyp.trn") == {"fadg0_si1279": ["sil", "aa"], "fadg0_sx19": [],
                                              "faks0_sa1": ["b", "iy"]}


def test_speaker_of_like_sclite_rm():
    assert speaker_of("fadg0_si1279") == "fadg0"
    assert speaker_of("spk-1_u2") == "spk"
    with pytest.raises(DataError, match="nodelim"):
        speaker_of("nodelim")


def test_reports(tmp_path):
    write_trn(tmp_path / "ref.trn", {"s1_a": "a b c", "s1_b": "a b", "s2_a": "c c"})
    write_trn(tmp_path / "hyp.trn", {"s1_a": "a x c", "s1_b": "a b", "s2_a": ""})
    total = write_reports(tmp_path / "ref.trn", tmp_path / "hyp.trn")
    assert (total.sub, total.dele, total.ins, total.ref) == (1, 2, 0, 7)
    sys_text = (tmp_path / "hyp.trn.sys").read_text()
    sum_line = next(line for line in sys_text.splitlines() if "Sum/Avg" in line)
    # 3 sentences, 7 phones; 4/7 correct, 1/7 sub, 2/7 del, 0 ins, 3/7 errors, 2/3 sentences wrong.
    assert sum_line.split("|")[2].split() == ["3", "7"]
    assert sum_line.split("|")[3].split() == ["57.1", "14.3", "28.6", "0.0", "42.9", "66.7"]
    assert "s1" in sys_text and "s2" in sys_text
    pra = (tmp_path / "hyp.trn.pra").read_text()
    assert "Scores: (#C #S #D #I) 2 1 0 0" in pra and "HYP:  a X c" in pra
    assert "b ==> x" in (tmp_path / "hyp.trn.dtl").read_text()


def _random_trn_pair(path, seed, speakers=5, utts_per_speaker=8):
    """References and hypotheses on a 6-token vocabulary (many equal-cost alignments, so sclite's
    tie-breaking decides), 0..25 tokens each (empty hypotheses and references among them), written as
    trn files of several speakers (an odd number, for the median)."""
    rng = np.random.default_rng(seed)
    vocab = ["sil", "aa", "b", "d", "iy", "sh"]

    def seq():
        return list(rng.choice(vocab, rng.integers(0, 26)))
    refs, hyps = {}, {}
    for s in range(speakers):
        for u in range(utts_per_speaker):
            utt = f"spk{s}_u{u}"
            refs[utt] = seq()
            # a noisy copy of the reference (substitutions, deletions, insertions), or an unrelated one
            hyps[utt] = seq() if rng.random() < 0.2 else [
                t for r in refs[utt] for t in ([] if rng.random() < 0.2 else [r if rng.random() < 0.7 else
                                                                            rng.choice(vocab)])
                + ([rng.choice(vocab)] if rng.random() < 0.15 else [])]
    refs["spk0_u0"] = ["aa"]      # a one-token reference that is all wrong
    hyps["spk0_u0"] = ["b", "d"]
    write_trn(path / "ref.trn", refs)
    write_trn(path / "hyp.trn", hyps)
    return refs, hyps


@pytest.mark.sclite
@pytest.mark.parametrize("seed", [1, 2])
def test_built_in_scorer_equals_sclite(sclite, tmp_path, seed):
    """The built-in scorer against NIST sclite itself on the same trn files: the totals, every utterance's
    alignment and counts, and the reports sclite would write in its place (.sys rows, .dtl sections)."""
    refs, hyps = _random_trn_pair(tmp_path, seed)
    theirs = run_sclite(sclite, tmp_path / "ref.trn", tmp_path / "hyp.trn", tmp_path / "sclite", "hyp",
                        reports=("rsum", "sum", "pralign", "dtl"))
    c = per(refs, hyps)
    assert totals(theirs.with_suffix(".raw")) == {
        "snt": c.utts, "wrd": c.ref, "corr": c.corr, "sub": c.sub, "del": c.dele, "ins": c.ins, "err": c.errors,
        "serr": c.utts_with_errors}
    write_reports(tmp_path / "ref.trn", tmp_path / "hyp.trn")
    mine = tmp_path / "hyp.trn"
    assert alignments(Path(f"{mine}.pra")) == alignments(theirs.with_suffix(".pra"))
    assert_same_table(table_rows(Path(f"{mine}.sys")), table_rows(theirs.with_suffix(".sys")), ".sys")
    assert dtl_sections(Path(f"{mine}.dtl")) == dtl_sections(theirs.with_suffix(".dtl"))


def _decode_dir(root, name, pers):
    """A decode dir with scored settings {NAME: (errors, ref phones)}: one utterance whose hypothesis
    drops `errors` of its phones."""
    d = root / name
    for setting, (errors, n) in pers.items():
        write_trn(d / "scoring/ref.trn", {"s1_u": ["aa"] * n})
        write_trn(d / f"scoring/hyp_{setting}.trn", {"s1_u": ["aa"] * (n - errors)})
    return d


def test_best_setting_from_dev_applies_to_test(tmp_path):
    dev = _decode_dir(tmp_path, "exp/m/decode_dev", {"4_0.0": (30, 100), "6_0.5": (20, 100), "8_0.0": (25, 100)})
    test = _decode_dir(tmp_path, "exp/m/decode_test", {"4_0.0": (10, 100), "6_0.5": (22, 100), "8_0.0": (21, 100)})
    with pytest.raises(DataError, match=r"decode_dev/scoring/result.json: not found.*re-run local/score.sh"):
        write_best(test, tune_dir=dev)   # dev not scored yet
    assert write_best(dev) == ("6_0.5", 20.0)
    assert best_setting(dev) == ("6_0.5", 20.0)
    assert write_best(test, tune_dir=dev) == ("6_0.5", 22.0)
    assert (test / "scoring/best_wer").read_text().startswith("%WER 22.00 [ 22 / 100")
    assert "lmwt=6 acwt=0.1667 wip=0.5" in (test / "scoring/best_wer").read_text()
    record = read_result(test)
    assert (record["setting"], record["lmwt"], record["wip"], record["tune_dir"]) == ("6_0.5", 6, 0.5, str(dev))
    assert record["acwt"] == pytest.approx(1 / 6)
    assert record["per"] == {"percent": 22.0, "errors": 22, "ref": 100, "ins": 0, "del": 22, "sub": 0, "utts": 1,
                             "utts_with_errors": 1}
    assert record["settings"]["4_0.0"] == {"percent": 10.0, "errors": 10, "ref": 100}
    assert record["fer"] is None and record["rtf"] is None and record["device"] is None
    assert write_best(test) == ("4_0.0", 10.0)  # the set's own best, without a tune dir
    assert read_result(test)["tune_dir"] is None
    write_best(test, tune_dir=dev)
    utt_errors.write_by_utt(dev / "scoring/fer_by_utt", {"s1_u": (5, 16)}, "FER")
    write_best(dev)
    assert read_result(dev)["fer"] == {"percent": 31.25, "errors": 5, "frames": 16, "utts": 1}
    table = results_markdown([tmp_path / "exp"])
    row = next(line for line in table.splitlines() if line.startswith(f"| {tmp_path / 'exp/m'} |"))
    assert [c.strip() for c in row.split("|")[2:6]] == ["31.2", "–", "20.0", "22.0"]


def test_score_dir_with_integer_hypotheses(tmp_path):
    (tmp_path / "text").write_text("s1_a sil ao b sil\ns1_b sil ix\n")
    (tmp_path / "words.txt").write_text("<eps> 0\naa 1\nao 2\nb 3\nih 4\nix 5\nsil 6\n#0 7\n")
    sc = tmp_path / "decode" / "scoring"
    sc.mkdir(parents=True)
    (sc / "10_0.0.tra").write_text("s1_a 6 1 3 6\ns1_b 6 4\n")      # folds to the reference
    (sc / "12_0.0.tra").write_text("s1_a 6 3\ns1_b\n")              # 2 + 2 deletions of 6
    results = score_dir(sc.parent, tmp_path / "text", read_map39(PHONE_MAP), tmp_path / "words.txt")
    assert results["10_0.0"].per == 0.0
    assert (results["12_0.0"].dele, results["12_0.0"].ref) == (4, 6)
    assert (sc / "hyp_12_0.0.trn").read_text() == "sil b (s1_a)\n(s1_b)\n"
    assert (sc / "ref.trn").read_text() == "sil aa b sil (s1_a)\nsil ih (s1_b)\n"
    assert (sc.parent / "wer_12_0.0").read_text().startswith("%WER 66.67 [ 4 / 6, 0 ins, 4 del, 0 sub ]")
