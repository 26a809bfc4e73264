"""TIMIT data preparation (local/timit_data_prep.sh, pyscripts/corpora/timit.py)."""
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import RECIPE, run_script
from pyscripts.kaldi.audio import read_audio, write_sphere, write_wav
from pyscripts.kaldi.datadir import read_list_table, read_table, validate_data_dir
from pyscripts.errors import DataError
from pyscripts.asr.phones import read_phone_map
from pyscripts.corpora.timit import prepare

PHONE_MAP = RECIPE / "conf/phones.60-48-39.map"
TO48, TO39 = read_phone_map(PHONE_MAP)
PHONES48 = {p for p in TO48.values() if p}
# A short utterance: (start, end, phone) in samples at 16 kHz, with a glottal stop q to delete.
PHN = [(0, 1600, "h#"), (1600, 2400, "s"), (2400, 4000, "ih"), (4000, 4400, "q"), (4400, 5200, "tcl"),
       (5200, 5600, "t"), (5600, 8000, "h#")]


def write_utt(spk_dir, sent, upper, fmt, rate=16000, phn=PHN):
    """One utterance file pair; names in upper or lower case, audio as SPHERE or RIFF."""
    spk_dir.mkdir(parents=True, exist_ok=True)
    name = sent.upper() if upper else sent.lower()
    samples = (np.random.default_rng(len(sent)).standard_normal(8000) * 1000).astype(np.int16)
    wav = spk_dir / (name + (".WAV" if upper else ".wav"))
    (write_sphere if fmt == "sphere" else write_wav)(wav, rate, samples)
    (spk_dir / (name + (".PHN" if upper else ".phn"))).write_text("".join(f"{s} {e} {p}\n" for s, e, p in phn))
    (spk_dir / (name + (".TXT" if upper else ".txt"))).write_text("0 8000 Sit.\n")
    return wav


def make_tree(root, speakers, upper=False, fmt="riff"):
    """speakers: {spk: (folder, dialect region)}; each reads SA1, SI10 and SX20."""
    for spk, (folder, dr) in speakers.items():
        parts = [folder, f"dr{dr}", spk]
        spk_dir = root.joinpath(*[p.upper() if upper else p.lower() for p in parts])
        for sent in ("sa1", "si10", "sx20"):
            write_utt(spk_dir, sent, upper, fmt)
    return root


def write_list(path, spks):
    path.write_text("".join(s + "\n" for s in spks))
    return path


HAND_SPEAKERS = {"mabc0": ("train", 1), "fdef0": ("train", 2), "mghi0": ("test", 1),
                 "fjkl0": ("test", 2), "mmno0": ("test", 1)}


@pytest.fixture
def hand_tree(tmp_path):
    """A lower-case TIMIT copy with RIFF audio, under a timit/ sub-folder as some copies are."""
    make_tree(tmp_path / "corpus" / "timit", HAND_SPEAKERS)
    return (tmp_path / "corpus", write_list(tmp_path / "dev.list", ["mghi0"]),
            write_list(tmp_path / "test.list", ["FJKL0"]))


def test_hand_made_lower_case_riff_tree(hand_tree, tmp_path, caplog):
    corpus, dev, test = hand_tree
    with caplog.at_level(logging.INFO):
        prepare(corpus, tmp_path / "data", dev, test, PHONE_MAP)
    log = caplog.text
    data = tmp_path / "data"
    sets = {s: read_table(data / s / "utt2spk") for s in ("train", "dev", "test")}
    assert sorted(sets["train"]) == ["fdef0_si10", "fdef0_sx20", "mabc0_si10", "mabc0_sx20"]
    assert sorted(sets["dev"]) == ["mghi0_si10", "mghi0_sx20"]
    assert sorted(sets["test"]) == ["fjkl0_si10", "fjkl0_sx20"]
    for s in sets:
        validate_data_dir(data / s, need_text=True)
        wav_scp = read_table(data / s / "wav.scp")
        for utt, entry in wav_scp.items():       # RIFF files are read by path, no pipe
            assert Path(entry).is_absolute() and entry.endswith(".wav") and Path(entry).is_file()
            assert utt.split("_")[1] in entry
        text = read_list_table(data / s / "text")
        assert all(t == ["sil", "s", "ih", "cl", "t", "sil"] for t in text.values())   # q deleted
        assert read_table(data / s / "spk2gender") == {spk: spk[0] for spk in set(sets[s].values())}
    # Dropped data is counted: SA of the used speakers, q phones, the unused TEST speaker.
    assert "dropped SA utterances: 2 of train speakers, 1 of dev speakers, 1 of test speakers" in log
    assert "deleted phones (no 48-phone mapping): 8 q" in log
    assert "dropped 1 TEST speakers" in log and "(3 utterances)" in log


def test_a_second_preparation_of_fewer_utterances_leaves_nothing_stale(hand_tree, tmp_path):
    """Stage 2 owns its data dirs: what stage 4 added for the old utterances (features, frame counts,
    splits) goes, instead of failing the check with 'feats.scp: utterances differ from utt2spk'."""
    corpus, dev, test = hand_tree
    data = tmp_path / "data"
    prepare(corpus, data, dev, test, PHONE_MAP)
    train = data / "train"
    utts = read_table(train / "utt2spk")
    for name in ("feats.scp", "utt2num_frames"):   # as stage 4 leaves them
        (train / name).write_text("".join(f"{u} 1\n" for u in sorted(utts)))
    (train / "split2" / "1").mkdir(parents=True)
    for f in (corpus / "timit/train/dr1/mabc0").glob("si10.*"):
        f.unlink()
    prepare(corpus, data, dev, test, PHONE_MAP)
    assert sorted(read_table(train / "utt2spk")) == sorted(set(utts) - {"mabc0_si10"})
    assert not any((train / name).exists() for name in ("feats.scp", "utt2num_frames", "split2"))


def test_a_smaller_dev_speaker_list_leaves_nothing_stale(hand_tree, tmp_path):
    """The documented --dev-spk-list, with two speakers and then one: the dev set loses a speaker and the
    features made for it."""
    corpus, _, test = hand_tree
    data = tmp_path / "data"
    prepare(corpus, data, write_list(tmp_path / "dev2.list", ["mghi0", "mmno0"]), test, PHONE_MAP)
    (data / "dev/feats.scp").write_text("".join(f"{u} x.ark:1\n" for u in sorted(read_table(data / "dev/utt2spk"))))
    prepare(corpus, data, write_list(tmp_path / "dev1.list", ["mghi0"]), test, PHONE_MAP)
    assert set(read_table(data / "dev/utt2spk").values()) == {"mghi0"}
    assert not (data / "dev/feats.scp").exists()


def test_shell_script_and_upper_case_sphere(tmp_path, recipe_dir):
    make_tree(tmp_path / "TIMIT", HAND_SPEAKERS, upper=True, fmt="sphere")
    dev = write_list(tmp_path / "dev.list", ["mghi0"])
    test = write_list(tmp_path / "test.list", ["fjkl0"])
    run_script([recipe_dir / "local/timit_data_prep.sh", "--dev-spk-list", dev, "--test-spk-list", test,
                tmp_path / "TIMIT", "data/timit"], cwd=recipe_dir)
    data = recipe_dir / "data/timit"
    wav_scp = read_table(data / "train/wav.scp")
    assert len(wav_scp) == 4
    for utt, entry in wav_scp.items():       # SPHERE through the to-wav pipe, giving the same samples
        assert entry.startswith("python3 -m pyscripts.kaldi.audio to-wav /") and entry.endswith(".WAV |")
        path = entry.split()[-2]
        assert np.array_equal(read_audio(entry)[1], read_audio(path)[1])
    assert (data / "prep_timit.log").is_file()


def test_tiny_demo_corpus(tiny_timit, tmp_path):
    prepare(tiny_timit, tmp_path / "data", RECIPE / "conf/tiny_timit_dev_spk.list",
            RECIPE / "conf/tiny_timit_test_spk.list", PHONE_MAP)
    spks = {}
    for s in ("train", "dev", "test"):
        d = tmp_path / "data" / s
        validate_data_dir(d, need_text=True)
        utt2spk = read_table(d / "utt2spk")
        spks[s] = set(utt2spk.values())
        assert all(utt.startswith(spk + "_") and "_sa" not in utt for utt, spk in utt2spk.items())
        text = read_list_table(d / "text")
        assert all(set(t) <= PHONES48 and t[0] == t[-1] == "sil" for t in text.values())
        # stm holds the same transcript; ref_phones.ctm the same phones, tiling the utterance.
        stm = read_list_table(d / "stm")
        utt2dur = read_table(d / "utt2dur")
        ctm = {}
        for line in (d / "ref_phones.ctm").read_text().split("\n")[:-1]:
            utt, chan, start, dur, phone = line.split()
            ctm.setdefault(utt, []).append((float(start), float(dur), phone))
        for utt, phones in text.items():
            assert stm[utt][:2] == ["1", utt2spk[utt]] and stm[utt][4:] == phones
            assert [p for _, _, p in ctm[utt]] == phones
            assert ctm[utt][0][0] == 0
            assert ctm[utt][-1][0] + ctm[utt][-1][1] == pytest.approx(float(utt2dur[utt]), abs=1e-3)
        # wav.scp reads back to the corpus' own audio.
        for utt, entry in list(read_table(d / "wav.scp").items())[:2]:
            rate, samples = read_audio(entry)
            assert rate == 16000 and samples.size / rate == pytest.approx(float(utt2dur[utt]), abs=1e-3)
    assert spks["dev"] == set((RECIPE / "conf/tiny_timit_dev_spk.list").read_text().split())
    assert spks["test"] == set((RECIPE / "conf/tiny_timit_test_spk.list").read_text().split())
    assert not (spks["train"] & spks["dev"] or spks["train"] & spks["test"] or spks["dev"] & spks["test"])
    assert len(read_table(tmp_path / "data/train/utt2spk")) == 4 * 3


def test_real_timit_conf_files():
    dev = (RECIPE / "conf/timit_dev_spk.list").read_text().split()
    test = (RECIPE / "conf/timit_test_spk.list").read_text().split()
    assert len(set(dev)) == len(dev) == 50 and len(set(test)) == len(test) == 24
    assert not set(dev) & set(test)
    assert all(s == s.lower() and s[0] in "mf" for s in dev + test)
    assert len(TO48) == 61 and [p for p, v in TO48.items() if v is None] == ["q"]
    assert len(PHONES48) == 48 and len(set(TO39.values())) == 39
    assert TO48["h#"] == TO48["pau"] == "sil" and TO39["cl"] == TO39["vcl"] == TO39["epi"] == "sil"


def test_default_protocol_with_the_real_speaker_lists(tmp_path):
    """A stand-in tree with TIMIT's real dev and core-test speakers, two training speakers and one
    TEST speaker on neither list: the default lists split it as the standard protocol does."""
    dev = (RECIPE / "conf/timit_dev_spk.list").read_text().split()
    test = (RECIPE / "conf/timit_test_spk.list").read_text().split()
    speakers = {s: ("test", 1 + i % 8) for i, s in enumerate(dev + test + ["mzzz0"])}
    speakers.update({"fcjf0": ("train", 1), "mrcz0": ("train", 7)})
    make_tree(tmp_path / "TIMIT", speakers, upper=True)
    prepare(tmp_path / "TIMIT", tmp_path / "data", RECIPE / "conf/timit_dev_spk.list",
            RECIPE / "conf/timit_test_spk.list", PHONE_MAP)
    got = {s: set(read_table(tmp_path / "data" / s / "spk2utt")) for s in ("train", "dev", "test")}
    assert got == {"train": {"fcjf0", "mrcz0"}, "dev": set(dev), "test": set(test)}
    assert len(read_table(tmp_path / "data/dev/utt2spk")) == 100


def test_errors_name_the_file(hand_tree, tmp_path):
    corpus, dev, test = hand_tree
    out = tmp_path / "data"
    spk_dir = corpus / "timit/train/dr1/mabc0"

    with pytest.raises(DataError, match="no_such_dir.*not found"):
        prepare(tmp_path / "no_such_dir", out, dev, test, PHONE_MAP)
    with pytest.raises(DataError, match=r"other\.list.*not in the corpus.*mxyz0"):
        prepare(corpus, out, write_list(tmp_path / "other.list", ["mxyz0"]), test, PHONE_MAP)
    with pytest.raises(DataError, match="share speakers"):
        prepare(corpus, out, dev, write_list(tmp_path / "t2.list", ["mghi0"]), PHONE_MAP)

    wav = write_utt(spk_dir, "si11", False, "riff", rate=8000)
    with pytest.raises(DataError, match=f"{wav}: sample rate 8000"):
        prepare(corpus, out, dev, test, PHONE_MAP)
    for f in spk_dir.glob("si11.*"):
        f.unlink()

    write_utt(spk_dir, "si12", False, "riff", phn=PHN[:2] + [(2400, 4000, "xx")] + PHN[3:])
    with pytest.raises(DataError, match=r"si12\.phn:3: phone 'xx' is not one of TIMIT's 61"):
        prepare(corpus, out, dev, test, PHONE_MAP)
    (spk_dir / "si12.phn").write_text("")
    with pytest.raises(DataError, match=r"si12\.phn: empty phone transcription"):
        prepare(corpus, out, dev, test, PHONE_MAP)
    (spk_dir / "si12.phn").write_text("0 8000 q\n")
    with pytest.raises(DataError, match=r"si12\.phn: no phones left"):
        prepare(corpus, out, dev, test, PHONE_MAP)
    (spk_dir / "si12.phn").unlink()
    with pytest.raises(DataError, match=r"si12\.wav: has no matching \.PHN"):
        prepare(corpus, out, dev, test, PHONE_MAP)


def test_script_exits_1_with_the_message(recipe_dir, tmp_path):
    proc = run_script([recipe_dir / "local/timit_data_prep.sh", tmp_path / "missing", "data/timit"],
                      cwd=recipe_dir, check=False)
    assert proc.returncode == 1
    assert f"{tmp_path / 'missing'}: TIMIT corpus directory not found" in proc.stdout + proc.stderr
