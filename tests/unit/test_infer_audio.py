"""Inference audio input (pyscripts/kaldi/audio.py read_audio_as, pyscripts/kaldi/features.py): formats
through soundfile (FLAC, MP3, A-law), stereo at 8 kHz, wav.scp pipes, the library resampler against the
hand-written one it replaced, and files shorter than one analysis window."""
import sys

import numpy as np
import pytest

from pyscripts.errors import DataError
from pyscripts.kaldi.audio import read_audio_as, resample, write_wav
from pyscripts.kaldi.datadir import write_table
from pyscripts.kaldi.features import compute_features, make_feats, make_options, too_short_message

from conftest import RECIPE

FBANK = RECIPE / "conf/fbank.conf"


def voice(seconds=1.0, rate=16000, f0=150):
    """A voiced, speech-like int16 signal: harmonics of f0 under a syllable-rate envelope."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20) if f0 * k < 0.4 * rate)
    return (4000 * wave * (1.2 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)


def old_resample(values, from_rate, to_rate, zeros=8):
    """The hand-written resampler read_audio_as used before (Hann-windowed sinc, cut-off 0.97 of the lower
    Nyquist frequency), kept here as the reference the library one must match."""
    from_rate, to_rate = float(from_rate), float(to_rate)
    cutoff = 0.97 * min(from_rate, to_rate) / 2
    half_width = zeros / (2 * cutoff)
    t = np.arange(int(np.floor(len(values) * to_rate / from_rate))) / to_rate
    reach = int(np.ceil(half_width * from_rate))
    idx = np.floor(t * from_rate).astype(np.int64)[:, None] + np.arange(-reach, reach + 1)[None, :]
    dt = t[:, None] - idx / from_rate
    window = np.where(np.abs(dt) < half_width, 0.5 + 0.5 * np.cos(np.pi * dt / half_width), 0.0)
    weights = 2 * cutoff / from_rate * np.sinc(2 * cutoff * dt) * window
    inside = (idx >= 0) & (idx < len(values))
    return (weights * np.where(inside, values[np.clip(idx, 0, len(values) - 1)], 0)).sum(1)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_library_resampler_matches_the_hand_written_one(rate):
    x = voice(0.5, rate).astype(np.float64)
    new, old = resample(x, rate, 16000), old_resample(x, rate, 16000)
    assert len(new) == len(old) == len(x) * 16000 // rate
    # The stated tolerance (audio.py's docstring): relative RMS difference under 1e-3.
    assert np.sqrt(np.mean((new - old) ** 2) / np.mean(old ** 2)) < 1e-3


def test_resampler_refuses_a_fractional_rate():
    with pytest.raises(DataError, match="not a positive whole number"):
        resample(np.zeros(100), 16000.5, 16000)


def test_stereo_8k_is_averaged_and_resampled(tmp_path):
    import wave
    left, right = voice(1.0, 8000), voice(1.0, 8000, f0=210)
    path = tmp_path / "stereo8k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())
    got = read_audio_as(path, 16000)
    mean = (left.astype(np.float64) + right) / 2
    assert len(got) == 16000
    assert np.abs(got[::2][100:-100] - mean[100:-100]).max() < 0.02 * np.abs(mean).max()


def test_scp_pipe_entries_are_read(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, 16000, voice())
    assert np.array_equal(read_audio_as(f"cat {path} |", 16000), voice())


@pytest.mark.parametrize("fmt, subtype, tolerance", [("FLAC", "PCM_16", 0.0), ("WAV", "ALAW", 0.04),
                                                     ("WAV", "ULAW", 0.04), ("OGG", "VORBIS", None),
                                                     ("MP3", "MPEG_LAYER_III", None)])
def test_soundfile_formats_are_read(tmp_path, fmt, subtype, tolerance):
    soundfile = pytest.importorskip("soundfile")
    x = voice(1.0)
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, x, 16000, format=fmt, subtype=subtype)
    got = read_audio_as(path, 16000).astype(np.float64)
    if tolerance is not None:   # lossless or sample-wise companding: sample by sample
        assert len(got) == len(x)
        assert np.abs(got - x).max() <= tolerance * np.abs(x).max()
        return
    # Lossy codecs add delay and padding: the same signal, found by cross-correlation, at about its level.
    assert abs(len(got) - len(x)) < 0.1 * len(x)
    n = min(len(got), len(x))
    lag = int(np.argmax(np.correlate(got[:n], x[:n - 2000], "valid")))
    aligned = got[lag:lag + n - 2000]
    assert np.corrcoef(aligned, x[:n - 2000])[0, 1] > 0.95


def test_a_law_wav_at_8k_is_resampled(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "alaw.wav"
    soundfile.write(path, voice(1.0, 8000), 8000, format="WAV", subtype="ALAW")
    assert len(read_audio_as(path, 16000)) == 16000


def test_missing_soundfile_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "a.flac"
    path.write_bytes(b"fLaC" + bytes(100))
    monkeypatch.setitem(sys.modules, "soundfile", None)   # import soundfile raises ImportError
    with pytest.raises(DataError, match=rf"{path}: .*need the soundfile package: .venv/bin/pip install "
                                        r"soundfile==[0-9.]+, or convert"):
        read_audio_as(path, 16000)


def test_unreadable_bytes_name_the_file(tmp_path):
    pytest.importorskip("soundfile")
    path = tmp_path / "notes.txt"
    path.write_text("not audio at all")
    with pytest.raises(DataError, match=rf"{path}: not an audio file soundfile"):
        read_audio_as(path, 16000)


def test_a_20_ms_file_gives_no_frame_and_says_why():
    opts = make_options("fbank", FBANK)
    feats = compute_features("fbank", opts, voice(0.02))
    assert feats.shape == (0, 40)
    assert too_short_message(320, opts) == ("too short: 320 samples (0.020 s) at 16000 Hz, shorter than one "
                                            "0.025 s analysis window (400 samples)")


def test_data_prep_names_a_too_short_utterance(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for utt, seconds in (("long", 1.0), ("click", 0.02)):
        write_wav(tmp_path / f"{utt}.wav", 16000, voice(seconds))
    write_table(data / "wav.scp", {u: str(tmp_path / f"{u}.wav") for u in ("long", "click")})
    with pytest.raises(DataError, match=r"wav.scp: utterance click is too short: 320 samples .* remove it"):
        make_feats("fbank", FBANK, data, tmp_path / "f.ark", tmp_path / "f.scp")
