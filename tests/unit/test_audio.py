"""pyscripts.kaldi.audio: NIST SPHERE and RIFF reading and writing, wav.scp pipes, and its errors."""
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import RECIPE
from pyscripts.kaldi.audio import (audio_info, decode_audio, read_audio, sphere_bytes, wav_bytes, write_sphere,
                             write_wav)
from pyscripts.errors import DataError


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    return (rng.standard_normal(4000) * 3000).clip(-32768, 32767).astype(np.int16)


def sphere_header(**fields):
    text = "NIST_1A\n   1024\n" + "".join(f"{k} {v}\n" for k, v in fields.items()) + "end_head\n"
    return text.encode() + b" " * (1024 - len(text))


def test_sphere_header_is_ldc_like(tmp_path, samples):
    path = tmp_path / "a.wav"
    write_sphere(path, 16000, samples)
    data = path.read_bytes()
    assert len(data) == 1024 + 2 * samples.size
    head = data[:1024].decode("ascii")
    assert head.startswith("NIST_1A\n   1024\n")
    for line in ("sample_count -i 4000", "sample_rate -i 16000", "channel_count -i 1",
                 "sample_n_bytes -i 2", "sample_coding -s3 pcm", "sample_byte_format -s2 01", "end_head"):
        assert f"\n{line}\n" in head
    assert np.array_equal(np.frombuffer(data[1024:], "<i2"), samples)


def test_sphere_and_riff_round_trip(tmp_path, samples):
    write_sphere(tmp_path / "a.sph", 16000, samples)
    write_wav(tmp_path / "a.wav", 8000, samples)
    rate, got = read_audio(tmp_path / "a.sph")
    assert rate == 16000 and got.dtype == np.int16 and np.array_equal(got, samples)
    rate, got = read_audio(str(tmp_path / "a.wav"))
    assert rate == 8000 and np.array_equal(got, samples)
    assert audio_info(tmp_path / "a.sph") == ("sphere", 16000, 1, 4000)
    assert audio_info(tmp_path / "a.wav") == ("riff", 8000, 1, 4000)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_sox_reads_our_sphere_files(tmp_path, samples):
    """An independent SPHERE reader (sox) gets the same samples: the header is valid NIST SPHERE."""
    write_sphere(tmp_path / "a.sph", 16000, samples)
    subprocess.run(["sox", str(tmp_path / "a.sph"), str(tmp_path / "b.wav")], check=True)
    with wave.open(str(tmp_path / "b.wav")) as w:
        assert w.getframerate() == 16000
        assert np.array_equal(np.frombuffer(w.readframes(w.getnframes()), "<i2"), samples)


def test_big_endian_sphere(samples):
    data = sphere_header(sample_count="-i 4000", sample_rate="-i 16000", channel_count="-i 1",
                         sample_n_bytes="-i 2", sample_byte_format="-s2 10") + samples.astype(">i2").tobytes()
    rate, got = decode_audio(data)
    assert rate == 16000 and np.array_equal(got, samples)


def test_wav_scp_pipes(tmp_path, samples):
    write_sphere(tmp_path / "a.sph", 16000, samples)
    # A general command runs through the shell.
    rate, got = read_audio(f"cat {tmp_path / 'a.sph'} |")
    assert rate == 16000 and np.array_equal(got, samples)
    # Our own to-wav pipe, read directly or run for real, gives the same samples.
    entry = f"python3 -m pyscripts.kaldi.audio to-wav {tmp_path / 'a.sph'} |"
    assert np.array_equal(read_audio(entry)[1], samples)
    out = subprocess.run([sys.executable, "-m", "pyscripts.kaldi.audio", "to-wav", str(tmp_path / "a.sph")],
                         cwd=RECIPE, capture_output=True, check=True).stdout
    assert out[:4] == b"RIFF" and out == wav_bytes(16000, samples)


def test_cli_info_and_error_exit(tmp_path, samples):
    write_sphere(tmp_path / "a.sph", 16000, samples)
    (tmp_path / "junk.wav").write_bytes(b"hello world, not audio")
    ok = subprocess.run([sys.executable, "-m", "pyscripts.kaldi.audio", "info", str(tmp_path / "a.sph")],
                        cwd=RECIPE, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.split()[1:] == ["sphere", "16000", "1", "4000"]
    bad = subprocess.run([sys.executable, "-m", "pyscripts.kaldi.audio", "to-wav", str(tmp_path / "junk.wav")],
                         cwd=RECIPE, capture_output=True, text=True)
    assert bad.returncode == 1 and "junk.wav" in bad.stderr and "neither NIST SPHERE" in bad.stderr


def test_errors_name_the_file(tmp_path, samples):
    sph = tmp_path / "trunc.sph"
    sph.write_bytes(sphere_bytes(16000, samples)[:-100])
    riff = tmp_path / "trunc.wav"
    riff.write_bytes(wav_bytes(16000, samples)[:-100])
    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16000)
        w.writeframes(bytes(100))
    (tmp_path / "shorten.sph").write_bytes(sphere_header(
        sample_count="-i 10", sample_rate="-i 16000", sample_n_bytes="-i 2",
        sample_coding="-s26 pcm,embedded-shorten-v2.00") + bytes(20))
    (tmp_path / "8bit.sph").write_bytes(sphere_header(
        sample_count="-i 10", sample_rate="-i 16000", sample_n_bytes="-i 1") + bytes(10))
    (tmp_path / "text.wav").write_text("just text")
    cases = {"trunc.sph": "truncated", "trunc.wav": "truncated",
             "shorten.sph": "not supported", "8bit.sph": "8-bit", "text.wav": "neither NIST SPHERE",
             "missing.wav": "not found"}
    for name, why in cases.items():
        with pytest.raises(DataError, match=why) as err:
            read_audio(tmp_path / name)
        assert name in str(err.value)
    for name in ("trunc.sph", "text.wav"):
        with pytest.raises(DataError, match=name):
            audio_info(tmp_path / name)
    with pytest.raises(DataError, match="command failed"):
        read_audio(f"cat {tmp_path / 'missing.wav'} |")
