"""The demo TIMIT-layout corpus generator (local/make_demo_timit.sh, pyscripts/corpora/demo/timit.py)."""
import re
from collections import Counter

import numpy as np
import pytest

from conftest import RECIPE, run_script
from pyscripts.corpora.demo import timit as demo_timit
from pyscripts.kaldi.audio import read_audio
from pyscripts.errors import DataError

TIMIT61 = {line.split()[0] for line in (RECIPE / "conf/phones.60-48-39.map").read_text().splitlines()
           if line.strip()}
SPEAKER_RE = re.compile(r"^[MF][A-Z]{3}[0-9]$")
SENT_RE = re.compile(r"^(SA[12]|SI[0-9]+|SX[0-9]+)$")


def rows(path):
    return [line.split(maxsplit=2) for line in path.read_text().splitlines()]


def utterances(corpus):
    return sorted(p.with_suffix("") for p in corpus.glob("*/DR*/*/*.WAV"))


def test_plan_has_timit_shape():
    """The demo size (not generated here: too slow for a unit test) has TIMIT's structure."""
    plan = demo_timit.make_plan("demo", 1234)
    speakers = {u.speaker for u in plan}
    assert len(speakers) >= 16
    assert len({s.voice.name for s in speakers}) >= 6 and {s.voice.sex for s in speakers} == {"M", "F"}
    # Distinct speaker settings, also within a voice.
    assert len({(s.voice.name, s.rate, s.f0, s.speed) for s in speakers}) == len(speakers)
    for folder in ("TRAIN", "TEST"):
        assert len({s.dialect for s in speakers if s.folder == folder}) >= 2
    per_spk = Counter(u.speaker.spk for u in plan)
    assert set(per_spk.values()) == {10}
    assert len({u.sent for u in plan if u.sent.startswith("SA")}) == 2
    texts = {u.sent: u.text for u in plan}
    assert all(texts[u.sent] == u.text for u in plan)          # one prompt per sentence id
    sx_readers = Counter(u.sent for u in plan if u.sent.startswith("SX"))
    assert set(sx_readers.values()) == {demo_timit.SX_READERS}
    assert all(n == 1 for s, n in Counter(u.sent for u in plan if u.sent.startswith("SI")).items())
    # TRAIN and TEST speakers read disjoint SX/SI prompts, as in TIMIT.
    train_texts = {u.text for u in plan if u.speaker.role == "train" and not u.sent.startswith("SA")}
    test_texts = {u.text for u in plan if u.speaker.role != "train" and not u.sent.startswith("SA")}
    assert not train_texts & test_texts


@pytest.mark.parametrize("size", ["demo", "tiny"])
def test_conf_speaker_lists_match_generator(size):
    lists = demo_timit.speaker_lists(size)
    for role in ("dev", "test"):
        conf = (RECIPE / f"conf/{size}_timit_{role}_spk.list").read_text().split()
        assert conf == lists[role] and conf
    assert not set(lists["dev"]) & set(lists["test"])
    # Another seed changes the voices' settings, not the speakers.
    assert demo_timit.speaker_lists(size, seed=7) == lists


def test_tiny_is_a_subset_of_demo():
    demo = {(u.speaker, u.sent, u.text) for u in demo_timit.make_plan("demo", 1234)}
    tiny = {(u.speaker, u.sent, u.text) for u in demo_timit.make_plan("tiny", 1234)}
    assert tiny < demo
    for role in ("dev", "test"):
        assert set(demo_timit.speaker_lists("tiny")[role]) <= set(demo_timit.speaker_lists("demo")[role])
    roles = Counter(s.role for s, _, _ in tiny)
    assert roles["train"] >= 2 and roles["dev"] >= 1 and roles["test"] >= 1


def test_tiny_layout_and_names(tiny_timit):
    top = sorted(p.name for p in tiny_timit.iterdir() if not p.name.startswith("."))
    assert top == ["DOC", "TEST", "TRAIN"]
    for folder in ("TRAIN", "TEST"):
        drs = [p.name for p in (tiny_timit / folder).iterdir()]
        assert drs and all(re.fullmatch(r"DR[1-8]", d) for d in drs)
    spk_dirs = sorted(tiny_timit.glob("*/DR*/*"))
    assert len(spk_dirs) == len(demo_timit.TINY_SPEAKERS)
    assert len({p.parent.name for p in spk_dirs}) >= 2          # at least two dialect regions
    for spk_dir in spk_dirs:
        assert SPEAKER_RE.match(spk_dir.name)
        stems = {p.stem for p in spk_dir.iterdir()}
        assert {"SA1", "SA2"} <= stems
        assert any(s.startswith("SI") for s in stems) and any(s.startswith("SX") for s in stems)
        for stem in stems:
            assert SENT_RE.match(stem)
            assert sorted(p.suffix for p in spk_dir.glob(stem + ".*")) == [".PHN", ".TXT", ".WAV", ".WRD"]
    spkrinfo = (tiny_timit / "DOC/SPKRINFO.TXT").read_text()
    assert all(p.name[1:] in spkrinfo for p in spk_dirs)


def test_tiny_audio_and_labels(tiny_timit):
    utts = utterances(tiny_timit)
    assert len(utts) == 8 * 5
    sa1 = set()
    for base in utts:
        head = base.with_suffix(".WAV").read_bytes()[:1024]
        assert head.startswith(b"NIST_1A\n   1024\n") and b"sample_rate -i 16000" in head
        rate, samples = read_audio(base.with_suffix(".WAV"))
        assert rate == 16000 and samples.size > 16000
        n = samples.size
        phn = [(int(s), int(e), p) for s, e, p in rows(base.with_suffix(".PHN"))]
        assert {p for _, _, p in phn} <= TIMIT61
        assert phn[0][0] == 0 and phn[-1][1] == n                 # offsets cover the audio exactly
        assert all(s < e for s, e, _ in phn)
        assert all(a[1] == b[0] for a, b in zip(phn, phn[1:]))
        assert phn[0][2] == "h#" and phn[-1][2] == "h#"
        assert "h#" not in {p for _, _, p in phn[1:-1]}
        for prev, (_, _, p) in zip(phn, phn[1:]):
            if p in ("b", "d", "g", "p", "t", "k"):
                assert prev[2] == p + "cl"
        # The labels fit the audio: the edge silences are far quieter than the vowels.
        def rms(spans):
            x = np.concatenate([samples[s:e].astype(float) for s, e in spans])
            return np.sqrt((x ** 2).mean())
        vowels = [(s, e) for s, e, p in phn if p in {"aa", "ae", "ah", "ao", "eh", "ih", "iy", "ow", "uw"}]
        edges = [(phn[0][0], phn[0][1]), (phn[-1][0], phn[-1][1])]
        assert rms(edges) * 10 < rms(vowels)
        # .TXT: "0 N sentence"; .WRD: the sentence's words on phone boundaries.
        start, end, text = rows(base.with_suffix(".TXT"))[0]
        assert start == "0" and int(end) == n
        wrd = [(int(s), int(e), w) for s, e, w in rows(base.with_suffix(".WRD"))]
        assert [w for _, _, w in wrd] == demo_timit.sentence_words(text)
        bounds = {s for s, _, _ in phn} | {e for _, e, _ in phn}
        assert all(s in bounds and e in bounds and s < e for s, e, _ in wrd)
        assert all(a[1] <= b[0] for a, b in zip(wrd, wrd[1:]))
        assert phn[0][1] <= wrd[0][0] and wrd[-1][1] <= phn[-1][0]
        if base.name == "SA1":
            sa1.add(text)
    assert len(sa1) == 1                                        # every speaker reads the same SA1


def test_tiny_is_deterministic_and_skipped_when_complete(tiny_timit, tmp_path):
    again = tmp_path / "timit"
    run_script([RECIPE / "local/make_demo_timit.sh", "--size", "tiny", "--nj", "1", again], cwd=RECIPE)
    files = sorted(p.relative_to(tiny_timit) for p in tiny_timit.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_timit / rel).read_bytes() == (again / rel).read_bytes(), rel
    # A second call finds the stamp and does nothing.
    wav = next(again.glob("TRAIN/*/*/SA1.WAV"))
    mtime = wav.stat().st_mtime_ns
    proc = run_script([RECIPE / "local/make_demo_timit.sh", "--size", "tiny", again], cwd=RECIPE)
    assert "nothing to do" in proc.stderr and wav.stat().st_mtime_ns == mtime
    # The same dir with other settings, or a dir holding something else, is an error.
    with pytest.raises(DataError, match="other settings"):
        demo_timit.generate(again, "tiny", seed=99)
    (tmp_path / "other").mkdir()
    (tmp_path / "other/file").write_text("x")
    with pytest.raises(DataError, match="no complete demo corpus"):
        demo_timit.generate(tmp_path / "other", "tiny")


def test_timit_labels_mapping():
    samples = np.zeros(16000, dtype=np.int16)
    samples[5000:6000] = np.random.default_rng(0).normal(0, 3000, 1000)   # a burst inside the k segment
    segs = [("pau", 0.1, 0), ("k", 0.4, 1), ("ae", 0.5, 1), ("brth", 0.55, 0), ("t", 0.7, 2),
            ("pau", 0.9, 0)]
    phn, wrd = demo_timit.timit_labels(samples, segs, ["cat", "it"], "x")
    assert [p for _, _, p in phn] == ["h#", "kcl", "k", "ae", "pau", "tcl", "t", "h#"]
    assert phn[-1][1] == 16000                                  # the last pause runs to the end
    assert phn[1][:2] == (1600, phn[2][0]) and abs(phn[2][0] - 5000) <= 16   # release at the burst (1 ms)
    assert wrd == [(1600, 8000, "cat"), (8800, 11200, "it")]
    with pytest.raises(DataError, match="no TIMIT mapping"):
        demo_timit.timit_labels(samples, [("pau", 0.1, 0), ("xx", 0.5, 1), ("pau", 1.0, 0)], ["a"], "x")


def test_align_words_handles_context_changes():
    # "the apple" said as dh iy ae p ax l, isolated prons dh ax / ae p ax l.
    owner = demo_timit.align_words("dh iy ae p ax l".split(), [["dh", "ax"], ["ae", "p", "ax", "l"]])
    assert owner == [1, 1, 2, 2, 2, 2]
    # An extra phone joins its neighbour's word; a missing one leaves the others in place.
    prons = [["k", "ae", "t"], ["ih", "t"]]
    assert demo_timit.align_words("k ae t s ih t".split(), prons) == [1, 1, 1, 1, 2, 2]
    assert demo_timit.align_words("k ae ih t".split(), prons) == [1, 1, 2, 2]


# ---------------------------------------------------------------------------------------------------
# The demo size's recording conditions (DIFFICULTY) and the benchmark's verdict.

def test_tiny_has_no_recording_conditions_and_keeps_its_version():
    # tiny's files (stamp included) must stay as they were before DIFFICULTY: clean, version 1.
    assert demo_timit.DIFFICULTY["tiny"] is None and demo_timit.GENERATOR_VERSION["tiny"] == 1
    assert demo_timit.DIFFICULTY["demo"] is not None and demo_timit.GENERATOR_VERSION["demo"] > 1
    for low, high in vars(demo_timit.DIFFICULTY["demo"]).values():
        assert low <= high


def test_add_noise_gives_the_asked_snr():
    rng = np.random.default_rng(0)
    signal = np.concatenate([np.zeros(4000), 3000 * np.sin(np.arange(16000) * 0.05), np.zeros(4000)])
    noise = demo_timit.coloured_noise(rng, len(signal), 1.0)
    assert np.mean(noise ** 2) == pytest.approx(1.0)
    speech = slice(4000, 20000)
    for snr in (5.0, 20.0):
        noisy = demo_timit.add_noise(signal, noise, snr, speech)
        added = noisy - signal
        measured = 10 * np.log10(np.mean(signal[speech] ** 2) / np.mean(added ** 2))
        assert measured == pytest.approx(snr, abs=1e-6)


def test_noise_colour_follows_its_slope():
    def low_over_high(slope):
        noise = demo_timit.coloured_noise(np.random.default_rng(1), 32000, slope)
        power = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(32000, 1 / demo_timit.SAMPLE_RATE)
        return power[(freqs > 100) & (freqs < 200)].mean() / power[(freqs > 4000) & (freqs < 8000)].mean()
    assert 0.5 < low_over_high(0.0) < 2.0                      # white: flat
    assert low_over_high(2.0) > 10 * low_over_high(1.0)        # brown has far more rumble than pink
    assert low_over_high(1.0) > 10                             # pink: ~ 1/f


def test_channel_gain_band_limits_and_tilt():
    channel = demo_timit.Channel(highpass_hz=100.0, lowpass_hz=6000.0, tilt_db_per_octave=-2.0)
    gain_db = 20 * np.log10(demo_timit.channel_gain(np.array([100.0, 1000.0, 2000.0, 6000.0, 7900.0]),
                                                    channel))
    assert gain_db[1] == pytest.approx(0.0, abs=0.01)          # 1 kHz: the tilt's pivot, in the pass band
    assert gain_db[2] == pytest.approx(-2.0, abs=0.01)         # one octave up
    assert gain_db[0] == pytest.approx(-3.01 + 2 * np.log2(10), abs=0.05)   # -3 dB at the cut-offs
    assert gain_db[3] == pytest.approx(-3.01 - 2 * np.log2(6), abs=0.05)
    assert gain_db[4] < gain_db[3] - 5


def test_record_is_seeded_and_keeps_length_and_range():
    difficulty = demo_timit.DIFFICULTY["demo"]
    rng = np.random.default_rng(2)
    samples = np.concatenate([np.zeros(1600), rng.normal(0, 8000, 16000), np.zeros(1600)]).astype(np.int16)
    phn = [(0, 1600, "h#"), (1600, 17600, "aa"), (17600, 19200, "h#")]
    channel = demo_timit.speaker_channel(difficulty, 1234, "MSFW0")
    assert channel == demo_timit.speaker_channel(difficulty, 1234, "MSFW0")
    assert channel != demo_timit.speaker_channel(difficulty, 1234, "MGLK0")
    one = demo_timit.record(samples, phn, channel, difficulty, 1234, "MSFW0", "SA1")
    assert one.dtype == np.int16 and len(one) == len(samples)
    assert np.array_equal(one, demo_timit.record(samples, phn, channel, difficulty, 1234, "MSFW0", "SA1"))
    assert not np.array_equal(one, demo_timit.record(samples, phn, channel, difficulty, 1234, "MSFW0", "SA2"))
    assert np.abs(one[:1600]).max() > 0                        # the pauses are noisy now
    assert np.abs(one.astype(np.int32)).max() <= 32000          # turned down rather than clipped


def test_benchmark_verdict():
    from pyscripts.bench import demo_difficulty as bench
    low, high = bench.TARGET_PER
    assert low <= bench.paper_baselines()["asr"]["test"]["PER"] == 20.18 <= high
    assert bench.verdict(15.8, bench.TARGET_PER) == "too easy"
    assert bench.verdict(20.0, bench.TARGET_PER) == "in range"
    assert bench.verdict(low, bench.TARGET_PER) == "in range"
    assert bench.verdict(30.0, bench.TARGET_PER) == "too hard"
    assert bench.verdict(40.0) == "in range"                   # the SER target (UE) stays the default
