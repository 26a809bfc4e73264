"""The demo IEMOCAP-layout corpus: layout and names, audio format, parseable labels that match the
audio, bit-exact regeneration, the stamp, and emotions that differ acoustically."""
import hashlib
import random
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import pytest

from conftest import RECIPE, run_script
from pyscripts.kaldi.audio import audio_info, read_audio
from pyscripts.corpora.demo.iemocap import (DIFFICULTY, GENERATOR_VERSION, NOISE_DBFS, SIZES, STAMP_NAME, STYLES,
                                           SpeakerManner, Style, _overlapping_params, make_corpus, plan_corpus,
                                           stamp_text)
from pyscripts.errors import DataError
from pyscripts.corpora.iemocap import read_emo_evaluation

DIALOG = re.compile(r"^Ses0([1-5])([FM])_(impro\d\d|script\d\d_\d)$")
LABEL_LINE = re.compile(r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(\S+)\t([a-z]{3})\t\[\d\.\d{4}, \d\.\d{4}, \d\.\d{4}\]$")


def corpus_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def labels_of(root):
    labels = {}
    for path in sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        labels.update(read_emo_evaluation(path))
    return labels


def wav_of(root, utt):
    dialog = utt.rsplit("_", 1)[0]
    return root / f"Session{int(utt[3:5])}" / "sentences" / "wav" / dialog / f"{utt}.wav"


def speaker_of(utt):
    return utt[:5] + utt.rsplit("_", 1)[1][0]


def test_layout_and_names(tiny_iemocap):
    sessions = sorted(p.name for p in tiny_iemocap.iterdir() if p.is_dir())
    assert sessions == [f"Session{i}" for i in range(1, 6)]
    speakers = set()
    for i in range(1, 6):
        wav_dirs = sorted((tiny_iemocap / f"Session{i}" / "sentences" / "wav").iterdir())
        emo_files = sorted((tiny_iemocap / f"Session{i}" / "dialog" / "EmoEvaluation").glob("*.txt"))
        assert [d.name for d in wav_dirs] == [f.stem for f in emo_files]
        letters = set()
        for d in wav_dirs:
            m = DIALOG.match(d.name)
            assert m and int(m.group(1)) == i, d
            letters.add(m.group(2))
            for wav in d.iterdir():
                assert re.fullmatch(re.escape(d.name) + r"_[FM]\d{3}\.wav", wav.name), wav
                speakers.add(speaker_of(wav.stem))
        assert letters == {"F", "M"}  # dialogs led by either actor
        kinds = {DIALOG.match(d.name).group(3)[:5] for d in wav_dirs}
        assert kinds == {"impro", "scrip"}
    assert speakers == {f"Ses0{i}{g}" for i in range(1, 6) for g in "FM"}


def test_audio_is_16k_mono_16bit_riff(tiny_iemocap):
    wavs = sorted(tiny_iemocap.glob("Session*/sentences/wav/*/*.wav"))
    assert len(wavs) == 10 * sum(SIZES["tiny"].values())
    for wav in wavs:
        fmt, rate, channels, n = audio_info(wav)
        assert (fmt, rate, channels) == ("riff", 16000, 1), wav
        assert 1.0 < n / rate < 10.0, wav


def test_label_files_parse_and_match_audio(tiny_iemocap):
    counts = Counter()
    for path in sorted(tiny_iemocap.glob("Session*/dialog/EmoEvaluation/*.txt")):
        lines = path.read_text().splitlines()
        assert lines[0] == "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
        previous_end = 0.0
        for line in lines[1:]:
            if line.startswith("["):
                m = LABEL_LINE.match(line)
                assert m, f"{path}: {line!r}"
                start, end, utt, label = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
                assert utt.startswith(path.stem + "_")
                assert start >= previous_end  # turns do not overlap on the dialog's time line
                previous_end = end
                rate, samples = read_audio(wav_of(tiny_iemocap, utt))
                assert abs((end - start) - len(samples) / rate) < 1e-3, utt
                counts[label] += 1
            else:
                assert line == "" or re.match(r"^[CA]-[EFM]\d:\t", line), f"{path}: {line!r}"
    # Every speaker has one of each kept label; the dropped kind rotates over speakers.
    assert counts == {"ang": 10, "hap": 10, "exc": 10, "neu": 10, "sad": 10, "fru": 4, "sur": 3, "xxx": 3}
    # The transcriptions list the same utterances.
    transcribed = set()
    for path in tiny_iemocap.glob("Session*/dialog/transcriptions/*.txt"):
        for line in path.read_text().splitlines():
            m = re.match(r"^(\S+) \[\d{3}\.\d{4}-\d{3}\.\d{4}\]: \S.*$", line)
            assert m, line
            transcribed.add(m.group(1))
    assert transcribed == set(labels_of(tiny_iemocap))


def test_demo_plan_sizes():
    utts = plan_corpus("demo", 1234)
    assert len({u.utt_id for u in utts}) == len(utts)
    per_speaker = Counter(speaker_of(u.utt_id) for u in utts)
    assert len(per_speaker) == 10 and min(per_speaker.values()) >= 40
    for u in utts:
        assert speaker_of(u.utt_id) == u.speaker
    labels = Counter(u.label for u in utts)
    assert all(labels[k] >= 50 for k in ("ang", "neu", "sad")) and labels["hap"] + labels["exc"] >= 50
    assert all(labels[k] > 0 for k in ("fru", "sur", "xxx"))
    # The plan depends on the seed only.
    assert [(u.utt_id, u.label, u.sentence) for u in plan_corpus("demo", 1234)] == \
           [(u.utt_id, u.label, u.sentence) for u in utts]
    assert [u.sentence for u in plan_corpus("demo", 99)] != [u.sentence for u in utts]


def test_regeneration_is_bit_exact_and_independent_of_jobs(tiny_iemocap, tmp_path):
    again = tmp_path / "iemocap"
    run_script([RECIPE / "local/make_demo_iemocap.sh", "--size", "tiny", "--nj", "1", again], cwd=RECIPE)
    files = corpus_files(tiny_iemocap)
    assert files == corpus_files(again)
    for rel in files:
        assert (tiny_iemocap / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_complete_corpus_is_not_regenerated(tiny_iemocap):
    wav = next(tiny_iemocap.glob("Session1/sentences/wav/*/*.wav"))
    mtime = wav.stat().st_mtime_ns
    proc = run_script([RECIPE / "local/make_demo_iemocap.sh", "--size", "tiny", tiny_iemocap], cwd=RECIPE)
    assert "nothing to do" in proc.stderr
    assert wav.stat().st_mtime_ns == mtime
    # Another size in the same place is refused rather than mixed in.
    with pytest.raises(DataError, match="other settings"):
        make_corpus(tiny_iemocap, size="demo")


def test_incomplete_corpus_dir_is_refused(tiny_iemocap, tmp_path):
    broken = tmp_path / "iemocap"
    shutil.copytree(tiny_iemocap, broken)
    (broken / STAMP_NAME).unlink()
    proc = run_script([RECIPE / "local/make_demo_iemocap.sh", "--size", "tiny", broken], cwd=RECIPE,
                      check=False)
    assert proc.returncode == 1
    assert str(broken) in proc.stderr and STAMP_NAME in proc.stderr


def rms_db(samples):
    x = samples.astype(np.float64)
    frames = x[: len(x) // 400 * 400].reshape(-1, 400)
    energy = (frames ** 2).mean(1)
    speech = energy[energy > 0.1 * energy.max()]  # the loud half of the utterance, not its pauses
    return 10 * np.log10(speech.mean())


def median_f0(samples, rate=16000):
    """Median F0 (Hz) over clearly voiced 40 ms frames, by normalised autocorrelation."""
    x = samples.astype(np.float64)
    size, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = rate // 400, rate // 60
    energies = [np.mean(x[s:s + size] ** 2) for s in range(0, len(x) - size, hop)]
    threshold = 0.05 * max(energies)
    f0s = []
    for s, energy in zip(range(0, len(x) - size, hop), energies):
        if energy < threshold:
            continue
        frame = x[s:s + size] - x[s:s + size].mean()
        ac = np.correlate(frame, frame, "full")[size - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.6 * ac[0]:
            f0s.append(rate / lag)
    return float(np.median(f0s))


def test_emotions_differ_acoustically(tiny_iemocap):
    feats = defaultdict(dict)
    for utt, label in labels_of(tiny_iemocap).items():
        if label in ("ang", "hap", "neu", "sad"):
            rate, samples = read_audio(wav_of(tiny_iemocap, utt))
            feats[speaker_of(utt)][label] = (rms_db(samples), median_f0(samples), len(samples) / rate)
    assert len(feats) == 10
    for spk, f in feats.items():
        # Each speaker: anger much louder than sadness, neutral in between; happiness higher pitched
        # than sadness.
        assert f["ang"][0] > f["neu"][0] + 2.5 and f["neu"][0] > f["sad"][0] + 5, (spk, f)
        assert f["hap"][1] > 1.3 * f["sad"][1], (spk, f)
    # Sadness is slow, anger fast (sentences differ, so compare the averages over speakers).
    assert np.mean([f["sad"][2] for f in feats.values()]) > 1.3 * np.mean([f["ang"][2] for f in feats.values()])


def tiny_plan_digest(utts):
    planned = [(u.utt_id, u.label, u.sentence, u.dialog, u.pitch, u.range, u.rate, u.level, u.tilt, u.lead_sil,
                u.trail_sil, u.noise_seed) for u in utts]
    return hashlib.sha256(repr(planned).encode()).hexdigest()


def test_tiny_plan_is_unchanged_by_the_demo_difficulty():
    # The digest of the tiny plan made by the generator before the demo's difficulty model (commit 1596aac):
    # tiny's files, and every comparison made on them, must stay the same.
    utts = plan_corpus("tiny", 1234)
    assert tiny_plan_digest(utts) == "59064c310d8ca3dcaa9be2562b8c2ccf64410c4fbfd46576e9480523bc698c7b"
    assert {u.noise_dbfs for u in utts} == {NOISE_DBFS}
    assert stamp_text("tiny", 1234, len(utts)).startswith("demo_iemocap version=1 ")
    assert stamp_text("demo", 1234, 450).startswith(f"demo_iemocap version={GENERATOR_VERSION['demo']} ")


def test_scripted_dialogs_carry_weaker_cues():
    quiet = Style(0, 0, 0, 0, 0)
    difficulty = replace(DIFFICULTY["demo"], jitter=quiet)
    manner = SpeakerManner(baseline=quiet, expressiveness=1.0, twists={})
    neutral = STYLES["neu"]
    for label in ("ang", "sad", "hap"):
        impro = _overlapping_params(random.Random(0), label, STYLES[label], manner, False, difficulty)
        script = _overlapping_params(random.Random(0), label, STYLES[label], manner, True, difficulty)
        for f in ("pitch", "rate", "level", "tilt"):
            full = getattr(STYLES[label], f) - getattr(neutral, f)
            assert impro[f] - getattr(neutral, f) == pytest.approx(difficulty.cue_scale * full)
            weaker = difficulty.scripted_scale * difficulty.cue_scale * full
            assert script[f] - getattr(neutral, f) == pytest.approx(weaker)


def test_demo_emotions_overlap_across_speakers_but_keep_their_direction():
    utts = [u for u in plan_corpus("demo", 1234) if u.label in ("ang", "neu", "sad")]
    level = {label: [u.level for u in utts if u.label == label] for label in ("ang", "neu", "sad")}
    rate = {label: [u.rate for u in utts if u.label == label] for label in ("ang", "neu", "sad")}
    # On average anger is louder and faster than neutral speech, sadness quieter and slower ...
    assert np.mean(level["ang"]) > np.mean(level["neu"]) > np.mean(level["sad"])
    assert np.mean(rate["ang"]) > np.mean(rate["neu"]) > np.mean(rate["sad"])
    # ... but no threshold separates them: the loudest sad utterance is louder than the quietest angry one.
    assert max(level["sad"]) > min(level["ang"]) and max(rate["sad"]) > min(rate["ang"])
    # Speakers differ in their neutral baseline by more than the per-utterance jitter's half-range.
    neutral_level = defaultdict(list)
    for u in utts:
        if u.label == "neu":
            neutral_level[u.speaker].append(u.level)
    means = [np.mean(v) for v in neutral_level.values()]
    assert max(means) - min(means) > DIFFICULTY["demo"].jitter.level
    noise = [u.noise_dbfs for u in plan_corpus("demo", 1234)]
    low, high = DIFFICULTY["demo"].noise_dbfs
    assert all(low <= n <= high for n in noise) and np.std(noise) > 1.0
