"""IEMOCAP data prep on the tiny demo corpus: kept and dropped labels, hap+exc merged, speakers taken
from the utterance name, the fold plan, and errors on broken corpora and fold confs."""
import re
import shutil
import sys
import wave
from collections import Counter

import pytest

from conftest import RECIPE, run_script
from pyscripts.kaldi.datadir import read_list_table, read_table, validate_data_dir
from pyscripts.errors import DataError
from pyscripts.ser.folds import FoldConf, make_fold_plan, read_fold_conf
from pyscripts.corpora.iemocap import prepare_iemocap

SPEAKERS = [f"Ses0{i}{g}" for i in range(1, 6) for g in "FM"]
VALIDATION = ["Ses05F", "Ses05M"]


def corpus_labels(corpus):
    """{utt: label} read straight from the EmoEvaluation files, independently of the prep code."""
    labels = {}
    for path in corpus.glob("Session*/dialog/EmoEvaluation/*.txt"):
        for line in path.read_text().splitlines():
            m = re.match(r"^\[[\d.]+ - [\d.]+\]\t(\S+)\t(\w+)\t", line)
            if m:
                labels[m.group(1)] = m.group(2)
    return labels


@pytest.fixture(scope="module")
def prepared(tiny_iemocap, tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "iemocap"
    proc = run_script([RECIPE / "local/iemocap_data_prep.sh", tiny_iemocap, data], cwd=RECIPE)
    return data, proc.stderr


@pytest.fixture
def corpus_copy(tiny_iemocap, tmp_path):
    copy = tmp_path / "iemocap"
    shutil.copytree(tiny_iemocap, copy)
    return copy


def test_kept_labels_merged_and_dropped_counted(tiny_iemocap, prepared):
    data, log = prepared
    labels = corpus_labels(tiny_iemocap)
    utt2emo = read_table(data / "all" / "utt2emo")
    utt2spk = read_table(data / "all" / "utt2spk")
    validate_data_dir(data / "all")
    expected = {u: {"exc": "hap"}.get(l, l) for u, l in labels.items() if l in ("ang", "hap", "exc", "neu", "sad")}
    assert {k.split("-", 1)[1]: v for k, v in utt2emo.items()} == expected
    assert Counter(utt2emo.values()) == {"ang": 10, "hap": 20, "neu": 10, "sad": 10}
    dropped = Counter(l for l in labels.values() if l in ("fru", "sur", "xxx"))
    assert sum(dropped.values()) == len(labels) - len(utt2emo) == 10
    assert f"dropped 10 utterances not in the 4 classes: fru={dropped['fru']} sur={dropped['sur']} " \
           f"xxx={dropped['xxx']}" in log
    # The speaker is the session plus the letter of the turn (_M002), not of the dialog (Ses01F_...).
    assert sorted(set(utt2spk.values())) == SPEAKERS
    crossed = 0
    for key, spk in utt2spk.items():
        utt = key.split("-", 1)[1]
        assert key.startswith(spk + "-") and spk == utt[:5] + utt.rsplit("_", 1)[1][0]
        crossed += utt[5] != spk[5]
    assert crossed > 0
    assert read_table(data / "all" / "spk2gender") == {s: s[-1].lower() for s in SPEAKERS}
    for key, path in read_table(data / "all" / "wav.scp").items():
        assert path.endswith("/" + key.split("-", 1)[1] + ".wav")


def test_folds(prepared, tmp_path):
    data, _ = prepared
    assert not (data / "folds").exists()  # made once, after features, by local/ser_make_folds.sh
    run_script([sys.executable, "-m", "pyscripts.ser.folds", "--fold-conf", RECIPE / "conf/iemocap_folds.conf",
                data / "all", tmp_path / "folds"], cwd=RECIPE)
    spk2utt = read_list_table(data / "all" / "spk2utt")
    folds = sorted((tmp_path / "folds").glob("fold*"), key=lambda p: int(p.name[4:]))
    assert [f.name for f in folds] == [f"fold{k}" for k in range(1, 9)]
    tested = []
    for fold in folds:
        spks = {s: sorted(read_list_table(fold / s / "spk2utt")) for s in ("train", "valid", "test")}
        for subset, spk_list in spks.items():
            validate_data_dir(fold / subset)
            utts = sorted(read_table(fold / subset / "utt2spk"))
            assert utts == sorted(u for s in spk_list for u in spk2utt[s])
        assert spks["valid"] == VALIDATION
        assert len(spks["test"]) == 1 and spks["test"][0] not in VALIDATION
        assert not set(VALIDATION) & (set(spks["train"]) | set(spks["test"]))
        assert sorted(spks["train"] + spks["test"] + spks["valid"]) == SPEAKERS
        assert len(spks["train"]) == 7
        tested += spks["test"]
    assert sorted(tested) == [s for s in SPEAKERS if s not in VALIDATION]  # each exactly once
    plan = read_table(tmp_path / "folds" / "plan")
    assert plan["fold1"] == "test=Ses01F valid=Ses05F,Ses05M " \
                            "train=Ses01M,Ses02F,Ses02M,Ses03F,Ses03M,Ses04F,Ses04M"


def test_fold_plan_other_validation_speakers():
    plan = make_fold_plan(SPEAKERS, FoldConf(validation_speakers=("Ses01F", "Ses03M")))
    assert [f["test"][0] for f in plan] == [s for s in SPEAKERS if s not in ("Ses01F", "Ses03M")]
    for f in plan:
        assert f["valid"] == ["Ses01F", "Ses03M"] and len(f["train"]) == 7
    with pytest.raises(DataError, match="at least 2"):
        make_fold_plan(["A", "B", "C"], FoldConf(validation_speakers=("A", "B")))


def test_fold_conf_errors(tmp_path, prepared):
    data, _ = prepared
    conf = tmp_path / "folds.conf"
    conf.write_text("# validation set\n--validation-speakers=Ses05F,Ses06M\n")
    assert read_fold_conf(conf).validation_speakers == ("Ses05F", "Ses06M")
    proc = run_script([sys.executable, "-m", "pyscripts.ser.folds", "--fold-conf", conf, data / "all",
                       tmp_path / "folds"], cwd=RECIPE, check=False)
    assert proc.returncode == 1
    assert str(conf) in proc.stderr and "Ses06M" in proc.stderr and "Traceback" not in proc.stderr
    conf.write_text("--validation-speaker=Ses05F\n")
    with pytest.raises(DataError, match="unknown option"):
        read_fold_conf(conf)
    conf.write_text("--validation-speakers=Ses05F,Ses05F\n")
    with pytest.raises(DataError, match="twice"):
        read_fold_conf(conf)
    with pytest.raises(DataError, match="not found"):
        read_fold_conf(tmp_path / "missing.conf")


def test_missing_corpus(tmp_path):
    missing = tmp_path / "no_such_corpus"
    proc = run_script([RECIPE / "local/iemocap_data_prep.sh", missing, tmp_path / "data"], cwd=RECIPE,
                      check=False)
    assert proc.returncode == 1
    assert f"{missing}: IEMOCAP corpus directory not found" in proc.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Session"):
        prepare_iemocap(tmp_path / "empty", tmp_path / "data")


def kept_wav(corpus):
    labels = corpus_labels(corpus)
    utt = min(u for u, l in labels.items() if l == "sad")
    return next(corpus.glob(f"Session*/sentences/wav/*/{utt}.wav"))


def test_wrong_sample_rate(corpus_copy, tmp_path):
    wav = kept_wav(corpus_copy)
    with wave.open(str(wav), "rb") as w:
        frames = w.readframes(w.getnframes())
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    with pytest.raises(DataError, match=re.escape(f"{wav}: sample rate 8000 Hz, expected 16000")):
        prepare_iemocap(corpus_copy, tmp_path / "data")


def test_label_without_wav(corpus_copy, tmp_path):
    wav = kept_wav(corpus_copy)
    wav.unlink()
    label_file = corpus_copy / wav.parents[3].name / "dialog" / "EmoEvaluation" / f"{wav.parent.name}.txt"
    with pytest.raises(DataError, match=re.escape(f"{label_file}: utterance {wav.stem} has no wav")):
        prepare_iemocap(corpus_copy, tmp_path / "data")


def test_wav_without_label(corpus_copy, tmp_path):
    wav = kept_wav(corpus_copy)
    extra = wav.with_name(wav.stem[:-3] + "099.wav")
    shutil.copy(wav, extra)
    with pytest.raises(DataError, match=re.escape(f"{extra}: no EmoEvaluation line labels this wav")):
        prepare_iemocap(corpus_copy, tmp_path / "data")


def test_bad_label_line(corpus_copy, tmp_path):
    label_file = sorted(corpus_copy.glob("Session2/dialog/EmoEvaluation/*.txt"))[0]
    text = label_file.read_text()
    label_file.write_text(re.sub(r"\t(neu|sad|ang|hap|exc|fru|sur|xxx)\t", "\tcalm\t", text, count=1))
    with pytest.raises(DataError, match=re.escape(f"{label_file}:3: unknown emotion label 'calm'")):
        prepare_iemocap(corpus_copy, tmp_path / "data")
    label_file.write_text(re.sub(r"(?m)^(\[[\d.]+) - ", r"\1 to ", text, count=1))
    with pytest.raises(DataError, match=re.escape(f"{label_file}:3: cannot parse label line")):
        prepare_iemocap(corpus_copy, tmp_path / "data")


def test_relabelling_an_utterance_leaves_nothing_stale(corpus_copy, tmp_path):
    """Stage 3 owns data/iemocap/all: an utterance relabelled `fru` (not kept) leaves the data dir with
    the features stage 4 made for it, which must go instead of failing the check on feats.scp."""
    data = tmp_path / "data"
    prepare_iemocap(corpus_copy, data)
    utts = read_table(data / "utt2spk")
    (data / "feats.scp").write_text("".join(f"{u} x.ark:1\n" for u in sorted(utts)))  # as stage 4 leaves it
    wav = kept_wav(corpus_copy)
    label_file = corpus_copy / wav.parents[3].name / "dialog" / "EmoEvaluation" / f"{wav.parent.name}.txt"
    text = label_file.read_text()
    label_file.write_text(re.sub(rf"(\t{wav.stem}\t)sad(\t)", r"\1fru\2", text))
    prepare_iemocap(corpus_copy, data)
    assert sorted(read_table(data / "utt2spk")) == sorted(u for u in utts if not u.endswith(f"-{wav.stem}"))
    assert len(read_table(data / "utt2spk")) == len(utts) - 1
    assert not (data / "feats.scp").exists()
