"""SER frame labels: the voicing/energy detector on synthetic signals, its alignment with the fbank
frames, and the targets of an utterance without any voiced frame."""
import numpy as np
import pytest

from conftest import RECIPE
from pyscripts.errors import DataError
from pyscripts.kaldi.features import compute_features, make_options
from pyscripts.ser import labels
from pyscripts.ser.labels import (SIL_ID, FrameOptions, VadOptions, detect_speech, frame_targets,
                                  num_frames, read_frame_options, read_vad_options)

RATE = 16000


def harmonic_tone(seconds, f0, amplitude, rng=None):
    """A voiced-like signal: a harmonic series on f0 with slowly varying pitch."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    return amplitude * sum(np.sin(k * phase) / k for k in (1, 2, 3))


def frames_inside(start_s, end_s, n_frames, frame_opts, margin_frames=3):
    """Frames whose analysis window (frame plus the voicing look-ahead) lies inside [start, end)."""
    size, shift = frame_opts.window_size, frame_opts.window_shift
    look_ahead = int(np.ceil(RATE / 60.0))
    first = int(np.ceil(start_s * RATE / shift)) + margin_frames
    last = int((end_s * RATE - size - look_ahead) // shift) - margin_frames
    return np.arange(max(first, 0), min(last + 1, n_frames))


@pytest.fixture
def opts():
    return read_frame_options(RECIPE / "conf/fbank.conf"), read_vad_options(RECIPE / "conf/vad.conf")


def test_silence_tone_noise(opts):
    """Silence and loud white noise are sil, a voiced (periodic) tone is speech."""
    frame_opts, vad_opts = opts
    rng = np.random.default_rng(0)
    silence = rng.normal(0, 2.0, RATE)                # near digital silence
    tone = harmonic_tone(1.0, 140.0, 6000.0)
    noise = rng.normal(0, 5000.0, RATE)               # as loud as the tone, but aperiodic
    quiet_tone = harmonic_tone(1.0, 220.0, 600.0)     # 20 dB down: still speech
    signal = np.concatenate([silence, tone, noise, quiet_tone, silence])
    result = detect_speech(signal, frame_opts, vad_opts)
    n = len(result.speech)
    assert n == num_frames(len(signal), frame_opts)
    segments = {"silence": (0, 1), "tone": (1, 2), "noise": (2, 3), "quiet_tone": (3, 4), "end": (4, 5)}
    inside = {name: frames_inside(a, b, n, frame_opts) for name, (a, b) in segments.items()}
    assert all(len(f) > 50 for f in inside.values())
    assert result.speech[inside["tone"]].all()
    assert result.speech[inside["quiet_tone"]].all()
    assert not result.speech[inside["silence"]].any()
    assert not result.speech[inside["end"]].any()
    assert not result.speech[inside["noise"]].any()
    # The reasons: noise is energetic but unvoiced; silence is neither.
    assert result.energetic[inside["noise"]].all() and not result.voiced[inside["noise"]].any()
    assert not result.energetic[inside["silence"]].any()
    assert result.nccf[inside["tone"]].min() > 0.9


def test_energy_threshold_relative_to_the_utterance(opts):
    """A voiced tone far below the utterance's loud part (beyond --energy-threshold-db) is sil."""
    frame_opts, vad_opts = opts
    loud, faint = harmonic_tone(0.6, 150.0, 10000.0), harmonic_tone(0.6, 150.0, 100.0)  # 40 dB apart
    result = detect_speech(np.concatenate([loud, faint]), frame_opts, vad_opts)
    n = len(result.speech)
    assert result.speech[frames_inside(0, 0.6, n, frame_opts)].all()
    faint_frames = frames_inside(0.6, 1.2, n, frame_opts)
    assert result.voiced[faint_frames].all() and not result.speech[faint_frames].any()


@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 16000, 23456])
def test_frames_match_fbank(tmp_path, snip_edges, num_samples):
    """One decision per fbank frame, whatever the length and snip-edges."""
    conf = tmp_path / "fbank.conf"
    conf.write_text((RECIPE / "conf/fbank.conf").read_text() + f"--snip-edges={str(snip_edges).lower()}\n")
    samples = np.random.default_rng(1).normal(0, 1000, num_samples)
    feats = compute_features("fbank", make_options("fbank", conf), samples)
    frame_opts = read_frame_options(conf)
    assert frame_opts.snip_edges == snip_edges
    result = detect_speech(samples, frame_opts, VadOptions())
    assert len(result.speech) == len(feats) == num_frames(num_samples, frame_opts)


def test_no_voiced_frame_gives_all_sil(opts):
    """The documented rule: an utterance without speech frames keeps every frame as sil."""
    frame_opts, vad_opts = opts
    noise = np.random.default_rng(2).normal(0, 3000.0, RATE)
    result = detect_speech(noise, frame_opts, vad_opts)
    assert not result.speech.any()
    targets = frame_targets("ang", result.speech)
    assert targets.dtype == np.int32 and len(targets) == len(result.speech)
    assert (targets == SIL_ID).all()


def test_frame_targets_ids():
    speech = np.array([False, True, True, False])
    assert frame_targets("sad", speech).tolist() == [4, 3, 3, 4]
    assert frame_targets("ang", speech).tolist() == [4, 0, 0, 4]
    with pytest.raises(DataError, match="fru"):
        frame_targets("fru", speech)


def test_vad_conf_errors(tmp_path):
    bad = tmp_path / "vad.conf"
    bad.write_text("--nccf-treshold=0.4\n")
    with pytest.raises(DataError, match="unknown option --nccf-treshold"):
        read_vad_options(bad)
    bad.write_text("--smooth-frames=4\n")
    with pytest.raises(DataError, match="odd"):
        read_vad_options(bad)
    bad.write_text("--min-f0=abc\n")
    with pytest.raises(DataError, match="not a number"):
        read_vad_options(bad)


def test_smoothing_removes_isolated_flips():
    decisions = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    assert labels._smooth(decisions, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert labels._smooth(decisions, 1).tolist() == decisions.tolist()


def test_empty_and_short_signals():
    result = detect_speech(np.zeros(100), FrameOptions(), VadOptions())
    assert len(result.speech) == 0
    result = detect_speech(np.zeros(400), FrameOptions(), VadOptions())   # digital silence
    assert result.speech.tolist() == [False]
