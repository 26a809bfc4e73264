"""The IEMOCAP fold protocols (conf/iemocap_folds*.conf): fold plans on hand-made speaker lists, the
improvised-only selection, the held-out validation share, the error for a speaker in two roles of one
fold, and the report of scripted sentences shared between training and test speakers."""
import sys

import pytest

from conftest import RECIPE, run_script
from pyscripts.errors import DataError
from pyscripts.kaldi.datadir import read_list_table, read_table, utt2spk_to_spk2utt, write_table
from pyscripts.ser.folds import (FoldConf, check_fold_roles, find_leakage, make_fold_plan, read_fold_conf,
                                 script_sentences, write_folds)

SPEAKERS = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
PROTOCOLS = {"paper": "conf/iemocap_folds.conf", "loso10": "conf/iemocap_folds_loso10.conf",
             "superb": "conf/iemocap_folds_superb.conf"}


def plan_of(protocol, speakers=SPEAKERS):
    conf = RECIPE / PROTOCOLS[protocol]
    return make_fold_plan(list(reversed(speakers)), read_fold_conf(conf), conf=conf)


def assert_roles_apart(plan):
    """No speaker in two roles, except train/valid of a held-out fold (other utterances)."""
    for fold in plan:
        test, valid, train = set(fold["test"]), set(fold["valid"]), set(fold["train"])
        assert test and train and not test & (train | valid)
        assert test | valid | train == set(SPEAKERS)
        if fold.get("valid_share"):
            assert valid == train
        else:
            assert valid and not valid & train


def test_paper_protocol():
    plan = plan_of("paper")
    assert [f["name"] for f in plan] == [f"fold{k}" for k in range(1, 9)]
    assert [f["test"] for f in plan] == [[s] for s in SPEAKERS[:8]]
    assert all(f["valid"] == ["Ses05F", "Ses05M"] and len(f["train"]) == 7 for f in plan)
    assert_roles_apart(plan)


def test_loso10_protocol():
    plan = plan_of("loso10")
    assert [f["test"] for f in plan] == [[s] for s in SPEAKERS]      # every speaker tested once
    for fold in plan:
        spk = fold["test"][0]
        assert fold["valid"] == [spk[:5] + {"F": "M", "M": "F"}[spk[5]]]   # the session partner
        assert len(fold["train"]) == 8 and not {s[:5] for s in fold["train"]} & {spk[:5]}
    assert_roles_apart(plan)


def test_superb_protocol():
    plan = plan_of("superb")
    assert [f["test"] for f in plan] == [[f"Ses0{s}F", f"Ses0{s}M"] for s in range(1, 6)]
    for fold in plan:
        assert fold["valid_share"] == 0.2 and len(fold["train"]) == 8
    assert_roles_apart(plan)


def test_fold_conf_options(tmp_path):
    conf = tmp_path / "folds.conf"
    bad = {"--validation=held-out\n--validation-speakers=Ses05F\n": "goes with --validation=fixed",
           "--test-unit=session\n--validation=session-partner\n": "needs --test-unit=speaker",
           "--validation=session-partner\n--validation-share=0.2\n": "goes with --validation=held-out",
           "--validation=held-out\n--validation-share=1.5\n": "between 0 and 1",
           "--validation-speakers=Ses05F\n--utterances=scripted\n": "--utterances=scripted: not one of all|improvised",
           "--test-unit=dialog\n--validation=held-out\n": "not one of speaker|session",
           "--utterances=all\n": "no --validation-speakers given"}
    for text, message in bad.items():
        conf.write_text(text)
        with pytest.raises(DataError, match=message):
            read_fold_conf(conf)
    with pytest.raises(DataError, match="not IEMOCAP's SesNN"):
        make_fold_plan(["spk1", "spk2", "spk3"], FoldConf(validation="session-partner"), conf=conf)
    with pytest.raises(DataError, match="Ses03F has no session partner"):
        make_fold_plan(["Ses01F", "Ses01M", "Ses03F"], FoldConf(validation="session-partner"), conf=conf)


def make_data_dir(path, utts):
    """A data dir of the utterance names (Ses01F_impro01_F000, ...), keyed as data prep keys them."""
    utt2spk = {f"{u[:5]}{u[-4]}-{u}": u[:5] + u[-4] for u in utts}
    write_table(path / "wav.scp", {u: f"/dev/null/{u}.wav" for u in utt2spk})
    write_table(path / "utt2spk", utt2spk)
    write_table(path / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_table(path / "utt2emo", {u: "neu" for u in utt2spk})
    return path


def corpus_utts(per_speaker=5):
    """Per speaker: improvised turns, and scripted turns of script01_1 with the same line numbers in every
    session (the female lines F000.., the male lines M000..)."""
    utts = []
    for spk in SPEAKERS:
        g = spk[5]
        utts += [f"{spk[:5]}F_impro01_{g}{k:03d}" for k in range(per_speaker)]
        utts += [f"{spk[:5]}M_script01_1_{g}{k:03d}" for k in range(per_speaker)]
    return utts


def test_improvised_only_and_held_out_validation(tmp_path):
    data = make_data_dir(tmp_path / "all", corpus_utts())
    conf = tmp_path / "superb_impro.conf"
    conf.write_text((RECIPE / PROTOCOLS["superb"]).read_text().replace("--utterances=all", "--utterances=improvised"))
    fold_conf = read_fold_conf(conf)
    plan = make_fold_plan(SPEAKERS, fold_conf, conf=conf)
    folds = write_folds(data, tmp_path / "folds", plan, fold_conf.utterances)
    for name, subsets in folds.items():
        utts = {s: set(read_table(tmp_path / "folds" / name / s / "utt2spk")) for s in ("train", "valid", "test")}
        assert all("_impro01_" in u for s in utts.values() for u in s)
        assert len(utts["test"]) == 10 and len(utts["valid"]) == 8 and len(utts["train"]) == 32
        assert not utts["valid"] & utts["train"] and not utts["test"] & (utts["train"] | utts["valid"])
        spks = {s: set(read_list_table(tmp_path / "folds" / name / s / "spk2utt")) for s in utts}
        assert not spks["test"] & (spks["train"] | spks["valid"])
    assert read_table(tmp_path / "folds/plan")["fold1"] == \
        "test=Ses01F,Ses01M valid=20%-of-train train=Ses02F,Ses02M,Ses03F,Ses03M,Ses04F,Ses04M,Ses05F,Ses05M " \
        "utterances=improvised"
    # Improvised utterances only: no scripted sentence can be shared.
    assert all(n == 0 for n, _, _ in find_leakage(folds, script_sentences(
        {u for f in folds.values() for s in f.values() for u in s})).values())
    # A speaker without an improvised utterance cannot be in an improvised-only plan.
    data = make_data_dir(tmp_path / "scripted", [u for u in corpus_utts() if not u.startswith("Ses02F_impro01_M")])
    with pytest.raises(DataError, match="Ses02M have no improvised utterance"):
        write_folds(data, tmp_path / "folds2", plan, "improvised")


def test_speaker_in_two_roles_is_an_error(tmp_path):
    with pytest.raises(DataError, match="fold3: speaker Ses01F is in both the test and the train set"):
        check_fold_roles({"name": "fold3", "test": ["Ses01F"], "valid": ["Ses05F"],
                          "train": ["Ses01F", "Ses02M"]}, "plan.conf")
    with pytest.raises(DataError, match="fold1: speaker Ses02M is in both the test and the valid set"):
        check_fold_roles({"name": "fold1", "test": ["Ses02M"], "valid": ["Ses02M"], "train": ["Ses01F"]}, "x")
    # Checked again on the utterances a plan gives each subset, before anything is written.
    data = make_data_dir(tmp_path / "all", corpus_utts(2))
    bad = [{"name": "fold1", "test": ["Ses01F"], "valid": ["Ses05F"], "train": ["Ses01F", "Ses02F"]}]
    with pytest.raises(DataError, match=r"utt2spk: fold1: speaker Ses01F is in both"):
        write_folds(data, tmp_path / "folds", bad)
    assert not (tmp_path / "folds").exists()


def test_leakage_of_scripted_sentences(tmp_path):
    # Line F000 of script01_1 in sessions 1 and 3 (two performances in session 3), F001 only in
    # session 2, and an improvised turn with the same number: one sentence shared, by two test turns.
    utts = ["Ses01M_script01_1_F000", "Ses01M_script01_1_M000", "Ses02F_script01_1_F001",
            "Ses03F_script01_1_F000", "Ses03M_script01_1_F000", "Ses03F_impro01_F000", "Ses04F_impro02_F000"]
    sentences = script_sentences([f"{u[:5]}{u[-4]}-{u}" for u in utts])
    assert sentences["Ses03F-Ses03M_script01_1_F000"] == sentences["Ses01F-Ses01M_script01_1_F000"] \
        == "script01_1_F000"
    assert "Ses03F-Ses03F_impro01_F000" not in sentences
    folds = {"fold1": {"train": ["Ses01F-Ses01M_script01_1_F000", "Ses01M-Ses01M_script01_1_M000",
                                 "Ses02F-Ses02F_script01_1_F001", "Ses04F-Ses04F_impro02_F000"],
                       "valid": [],
                       "test": ["Ses03F-Ses03F_script01_1_F000", "Ses03F-Ses03M_script01_1_F000",
                                "Ses03F-Ses03F_impro01_F000"]},
             "fold2": {"train": ["Ses03F-Ses03F_script01_1_F000"], "valid": [],
                       "test": ["Ses02F-Ses02F_script01_1_F001", "Ses01M-Ses01M_script01_1_M000"]}}
    assert find_leakage(folds, sentences) == {"fold1": (1, 2, 3), "fold2": (0, 0, 2)}
    # With transcripts, the words decide: F001 of session 2 reads like F000 here.
    text = {"Ses01F-Ses01M_script01_1_F000": "Where are you going?",
            "Ses03F-Ses03F_script01_1_F000": "where are you GOING",
            "Ses02F-Ses02F_script01_1_F001": "Where are you going.", "Ses01M-Ses01M_script01_1_M000": "Out."}
    by_text = script_sentences(text, text)
    assert len(set(by_text.values())) == 2
    assert find_leakage(folds, by_text)["fold2"] == (1, 1, 2)


def test_leakage_report_of_the_command(tmp_path):
    """pyscripts.ser.folds writes FOLDS_DIR/leakage and warns, on the paper's plan of a scripted corpus."""
    data = make_data_dir(tmp_path / "all", corpus_utts(3))
    proc = run_script([sys.executable, "-m", "pyscripts.ser.folds", "--fold-conf", RECIPE / PROTOCOLS["paper"],
                       data, tmp_path / "folds"], cwd=RECIPE)
    leakage = read_table(tmp_path / "folds/leakage")
    # Ses01F's scripted lines F000..F002 are also Ses02F's, Ses03F's and Ses04F's (in training).
    assert leakage["fold1"] == "shared_sentences=3 leaked_test_utts=3 test_utts=6"
    assert len(leakage) == 8 and "8 of 8 folds test scripted sentences" in proc.stderr
    assert "same script line" in proc.stderr
    # With a text file of distinct transcripts nothing is shared.
    write_table(data / "text", {u: f"sentence {u}" for u in read_table(data / "utt2spk")})
    proc = run_script([sys.executable, "-m", "pyscripts.ser.folds", "--fold-conf", RECIPE / PROTOCOLS["paper"],
                       data, tmp_path / "folds"], cwd=RECIPE)
    assert set(read_table(tmp_path / "folds/leakage").values()) == \
        {"shared_sentences=0 leaked_test_utts=0 test_utts=6"}
    assert "WARNING" not in proc.stderr
