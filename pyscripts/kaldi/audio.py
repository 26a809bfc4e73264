"""Audio files of the corpora: NIST SPHERE (as in the LDC TIMIT release) and RIFF wav, 16-bit PCM.
RIFF wavs may be WAVE_FORMAT_PCM or WAVE_FORMAT_EXTENSIBLE with the PCM sub-format, as Kaldi's WaveData
reads them; other sample formats (24-bit, float, ...) are refused with the sox command that converts them
(Kaldi refuses 24-bit and float too, and reads 8/32-bit samples unscaled).

read_audio() takes a path or a wav.scp value (a path, or a shell command ending in '|' that writes a
RIFF or SPHERE file to stdout) and tells the format by its magic bytes.

Inference (read_audio_as) reads more, as users have files: besides SPHERE and the RIFF encodings above,
every format the soundfile package (libsndfile) reads: FLAC, OGG/Vorbis, MP3, A-law and mu-law wav, ...
soundfile is imported only for those (data prep and the GPU image do without it). Several channels are
averaged into one (the mean of the channels, sample by sample); another sample rate is resampled by
scipy.signal.resample_poly with a Hann-windowed sinc filter (8 zero crossings each side, cut-off at
0.97 of the lower Nyquist frequency), the filter of the hand-written resampler it replaced: on speech
the two agree within a relative RMS difference of 1e-3 (the tests check it), at a fraction of the time.
Command line:

  python3 -m pyscripts.kaldi.audio to-wav FILE    # RIFF wav on stdout, for wav.scp pipes
  python3 -m pyscripts.kaldi.audio info FILE...   # format, rate, channels, samples
"""
import argparse
import io
import logging
import os
import shlex
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)

SPHERE_MAGIC = b"NIST_1A"
RIFF_MAGIC = b"RIFF"
SPHERE_HEADER_BYTES = 1024
WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE
# The sub-format GUID of WAVE_FORMAT_EXTENSIBLE is the format tag (2 bytes) followed by these 14 bytes.
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
SOUNDFILE_PIN = "soundfile==0.14.0"  # as in requirements.txt
RESAMPLE_ZEROS, RESAMPLE_CUTOFF = 8, 0.97  # zero crossings each side; cut-off / lower Nyquist frequency


class UnsupportedEncoding(DataError):
    """A RIFF wav whose sample encoding this module does not decode itself (A-law, ADPCM, ...)."""


def _sphere_fields(head, name):
    """Parses a SPHERE header ('NIST_1A', header size, then 'key -type value' lines up to end_head)."""
    lines = head.split(b"\n")
    fields = {}
    for raw in lines[2:]:
        line = raw.strip().decode("ascii", errors="replace")
        if line == "end_head":
            return fields
        if not line or line.startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) != 3 or not parts[1].startswith("-"):
            raise DataError(f"{name}: bad NIST SPHERE header line {line!r}")
        key, kind, value = parts
        if kind == "-i":
            try:
                fields[key] = int(value)
            except ValueError:
                raise DataError(f"{name}: NIST SPHERE field {key} is not an integer: {value!r}") from None
        elif kind == "-r":
            fields[key] = float(value)
        else:
            fields[key] = value
    raise DataError(f"{name}: NIST SPHERE header has no end_head; the file is truncated or corrupt")


def _parse_sphere_header(head, name):
    """Returns (header_bytes, rate, channels, sample_count, byteorder) from the header bytes."""
    lines = head.split(b"\n", 2)
    try:
        header_bytes = int(lines[1].strip())
    except (IndexError, ValueError):
        raise DataError(f"{name}: NIST SPHERE header size line is missing or not a number") from None
    if len(head) < header_bytes:
        raise DataError(f"{name}: truncated NIST SPHERE header ({len(head)} of {header_bytes} bytes)")
    fields = _sphere_fields(head[:header_bytes], name)
    for key in ("sample_rate", "sample_count", "sample_n_bytes"):
        if key not in fields:
            raise DataError(f"{name}: NIST SPHERE header lacks {key}")
    coding = str(fields.get("sample_coding", "pcm"))
    if coding != "pcm":
        raise DataError(f"{name}: NIST SPHERE sample_coding {coding!r} is not supported; only "
                        f"uncompressed 16-bit PCM is (decompress it first, e.g. with sph2pipe -f wav)")
    if fields["sample_n_bytes"] != 2:
        raise DataError(f"{name}: {8 * fields['sample_n_bytes']}-bit samples; only 16-bit PCM is supported")
    byte_format = str(fields.get("sample_byte_format", "01"))
    if byte_format not in ("01", "10"):
        raise DataError(f"{name}: unsupported NIST SPHERE sample_byte_format {byte_format!r}")
    channels = int(fields.get("channel_count", 1))
    return header_bytes, int(fields["sample_rate"]), channels, int(fields["sample_count"]), \
        "<" if byte_format == "01" else ">"


def _only_channel(rate, samples, name):
    if samples.shape[1] != 1:
        raise DataError(f"{name}: {samples.shape[1]} channels; only mono audio is supported: mix it down, e.g. "
                        f"sox {shlex.quote(name)} -c 1 out.wav")
    return rate, samples[:, 0]


def _decode_sphere(data, name):
    header_bytes, rate, channels, count, order = _parse_sphere_header(data, name)
    need = count * channels * 2
    body = data[header_bytes:header_bytes + need]
    if len(body) < need:
        raise DataError(f"{name}: truncated NIST SPHERE file: header says {count} samples, "
                        f"the file holds {len(body) // (2 * channels)}")
    samples = np.frombuffer(body, dtype=np.dtype(np.int16).newbyteorder(order)).astype(np.int16)
    return rate, samples.reshape(-1, channels)


def _riff_encoding(tag, bits, name):
    """Checks a fmt chunk's sample encoding: PCM of 8, 16, 24 or 32 bits, or 32/64-bit float (what sox
    and soundfile write). Returns the numpy dtype of one sample as stored."""
    if tag == WAVE_FORMAT_PCM and bits in (8, 16, 24, 32):
        return {8: "u1", 16: "<i2", 24: "V3", 32: "<i4"}[bits]
    if tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        return f"<f{bits // 8}"
    what = f"{bits}-bit PCM" if tag == WAVE_FORMAT_PCM else f"{bits}-bit samples of format {tag}"
    raise UnsupportedEncoding(f"{name}: {what} is not a sample encoding this recipe reads (PCM of 8-32 bits or "
                              f"float): convert it, e.g. sox {shlex.quote(name)} -b 16 -e signed-integer out.wav")


def _riff_format(data, name):
    """Walks the chunks of a RIFF WAVE file up to its data chunk, as Kaldi's WaveData does. Returns
    (rate, channels, offset of the samples, declared bytes of the data chunk, sample dtype), or None when
    `data` (a file's head) ends before the data chunk."""
    if data[8:12] != b"WAVE":
        raise DataError(f"{name}: a RIFF file but not a WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            if len(data) < body + min(size, 40):
                return None  # a head that ends inside the chunk
            if size < 16:
                _bad_riff(name, "short fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
            if tag == WAVE_FORMAT_EXTENSIBLE:
                if size < 40:
                    _bad_riff(name, "malformed WAVE_FORMAT_EXTENSIBLE fmt chunk")
                sub = data[body + 24:body + 40]
                tag = struct.unpack("<H", sub[:2])[0] if sub[2:] == GUID_TAIL else None
            dtype = _riff_encoding(tag, bits, name)
            if channels < 1:
                _bad_riff(name, "no channels")
            fmt = rate, channels, dtype
        elif chunk == b"data":
            if fmt is None:
                _bad_riff(name, "data chunk before the fmt chunk")
            rate, channels, dtype = fmt
            return rate, channels, body, size, dtype
        pos = body + size + (size & 1)  # chunks are padded to an even size
    return None


def _bad_riff(name, why):
    raise DataError(f"{name}: not a readable RIFF wav ({why})")


def _data_bytes(declared, available):
    """Bytes of samples: the declared size of the data chunk, except from pipes (sox, Kaldi), which
    write 0 or a huge size when they cannot seek back; then all that is there."""
    return available if declared == 0 or declared >= 0x7FFFFFF0 else declared


def _to_int16(frames, dtype, name):
    """Samples of any supported encoding on the 16-bit scale Kaldi's features expect (rounded; no dither,
    so a conversion is reproducible). Float samples must be finite: numpy would turn NaN into 0 and inf
    into 32767 with only a warning."""
    if dtype == "<i2":
        return np.frombuffer(frames, dtype="<i2").astype(np.int16)
    if dtype == "V3":  # 24-bit: widen each little-endian triple to an int32 holding it in its top bytes
        triples = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3)
        wide = np.zeros((len(triples), 4), np.uint8)
        wide[:, 1:] = triples
        values = wide.view("<i4")[:, 0] / 65536.0
    elif dtype == "u1":
        values = (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128) * 256
    elif dtype == "<i4":
        values = np.frombuffer(frames, dtype="<i4") / 65536.0
    else:
        values = _finite_samples(np.frombuffer(frames, dtype=dtype), name).astype(np.float64) * 32768
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def _finite_samples(values, name):
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"{name}: {int(bad.sum())} NaN or inf samples (the first at sample {int(np.argmax(bad))}) "
                        "in this float wav; it is damaged: export it again or remove the utterance")
    return values


def _decode_riff(data, name):
    """Returns (rate, int16 samples: one column per channel)."""
    fmt = _riff_format(data, name)
    if fmt is None:
        _bad_riff(name, "no data chunk; truncated?")
    rate, channels, offset, declared, dtype = fmt
    block = channels * np.dtype(dtype).itemsize
    frames = data[offset:]
    need = _data_bytes(declared, len(frames))
    if len(frames) < need:
        raise DataError(f"{name}: truncated RIFF wav: header says {need // block} samples, "
                        f"the file holds {len(frames) // block}")
    frames = frames[:need - need % block]
    return rate, _to_int16(frames, dtype, name).reshape(-1, channels)


def decode_channels(data: bytes, name: str = "<bytes>") -> tuple[int, np.ndarray]:
    """Decodes SPHERE or RIFF bytes to (rate, int16 samples, one column per channel); name is used in
    error messages."""
    if data.startswith(SPHERE_MAGIC):
        return _decode_sphere(data, name)
    if data.startswith(RIFF_MAGIC):
        return _decode_riff(data, name)
    raise DataError(f"{name}: neither NIST SPHERE (NIST_1A) nor RIFF wav (magic bytes {data[:8]!r})")


def decode_audio(data: bytes, name: str = "<bytes>") -> tuple[int, np.ndarray]:
    """Decodes SPHERE or RIFF bytes of mono audio to (rate, int16 samples)."""
    return _only_channel(*decode_channels(data, name), name)


def _own_pipe_file(command):
    """If command is 'python3 -m pyscripts.kaldi.audio to-wav FILE' returns FILE: it can be read directly,
    with the same result, instead of starting a Python process per utterance."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if len(argv) == 5 and os.path.basename(argv[0]).startswith("python") and argv[1:4] == [
            "-m", "pyscripts.kaldi.audio", "to-wav"]:
        return argv[4]
    return None


def _read_bytes(entry):
    """The bytes of a path or of a wav.scp value ('cmd ... |'), and the name to report."""
    entry = str(entry).strip()
    if entry.endswith("|"):
        command = entry[:-1].strip()
        own = _own_pipe_file(command)
        if own is not None:
            return _read_bytes(own)
        proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise DataError(f"wav.scp command failed ({proc.returncode}): {command}\n"
                            f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout, command
    if not os.path.isfile(entry):
        raise DataError(f"{entry}: audio file not found")
    with open(entry, "rb") as f:
        return f.read(), entry


def read_audio(entry: Path | str) -> tuple[int, np.ndarray]:
    """Reads a path or a wav.scp value ('cmd ... |') and returns (rate, int16 mono samples)."""
    data, name = _read_bytes(entry)
    return decode_audio(data, name)


def _soundfile_channels(data, name):
    """(rate, float64 samples on the int16 scale, one column per channel) of any format libsndfile
    reads, through the soundfile package, imported here only: the rest of the recipe does without it."""
    try:
        import soundfile
    except ImportError:
        raise DataError(f"{name}: neither NIST SPHERE nor a RIFF wav this recipe decodes itself (magic bytes "
                        f"{data[:8]!r}); other formats (FLAC, OGG, MP3, A-law, ...) need the soundfile package: "
                        f".venv/bin/pip install {SOUNDFILE_PIN}, or convert the file first "
                        f"(sox {shlex.quote(name)} -b 16 out.wav)") from None
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as err:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"{name}: not an audio file soundfile (libsndfile) reads ({err}); convert it to a "
                        f"16-bit wav, e.g. with sox or ffmpeg") from None
    # soundfile scales 16-bit PCM by 1/32768: this undoes it exactly.
    return rate, _finite_samples(samples, name) * 32768.0


def decode_any(data: bytes, name: str = "<bytes>") -> tuple:
    """(rate, float64 samples on the int16 scale, one column per channel) of SPHERE, the RIFF wavs
    decode_channels reads, and every other format soundfile reads."""
    if data.startswith(SPHERE_MAGIC):
        rate, samples = _decode_sphere(data, name)
        return rate, samples.astype(np.float64)
    if data.startswith(RIFF_MAGIC):
        try:
            rate, samples = _decode_riff(data, name)
            return rate, samples.astype(np.float64)
        except UnsupportedEncoding:
            pass  # A-law, mu-law, ADPCM, ...: libsndfile decodes them
    return _soundfile_channels(data, name)


def read_audio_as(entry: Path | str, rate: float) -> np.ndarray:
    """int16 mono samples of any readable file (decode_any) at `rate`: several channels are averaged and
    another sample rate is resampled, each saying so (for inference on files as users have them; data
    prep refuses them instead, so that a corpus is never converted silently)."""
    data, name = _read_bytes(entry)
    file_rate, samples = decode_any(data, name)
    done = []
    if samples.shape[1] != 1:
        done.append(f"{samples.shape[1]} channels mixed down to one (their mean)")
    values = samples.mean(axis=1)
    if file_rate != rate:
        done.append(f"resampled from {file_rate} to {rate:g} Hz")
        values = resample(values, file_rate, rate)
    if done:
        log.info("%s: %s", name, ", ".join(done))
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def _integer_rate(rate, what):
    if rate <= 0 or float(rate) != int(rate):
        raise DataError(f"{what} sample rate {rate} Hz is not a positive whole number of Hz; resampling needs one")
    return int(rate)


def resample(values: np.ndarray, from_rate: float, to_rate: float, zeros: int = RESAMPLE_ZEROS) -> np.ndarray:
    """Band-limited resampling by scipy.signal.resample_poly: a Hann-windowed sinc filter with `zeros`
    zero crossings each side and the cut-off a little below both Nyquist frequencies. Returns
    floor(len * to_rate / from_rate) samples, the first aligned with the input's first."""
    from fractions import Fraction

    from scipy.signal import firwin, resample_poly
    ratio = Fraction(_integer_rate(to_rate, "target"), _integer_rate(from_rate, "input"))
    up, down = ratio.numerator, ratio.denominator
    num_out = len(values) * up // down
    if len(values) == 0 or num_out == 0:
        return np.zeros(num_out)
    # In units of the upsampled rate: cut-off RESAMPLE_CUTOFF / max(up, down) of its Nyquist frequency,
    # and the taps out to `zeros` zero crossings of that sinc.
    stretch = max(up, down)
    half = int(np.ceil(zeros * stretch / RESAMPLE_CUTOFF))
    taps = firwin(2 * half + 1, RESAMPLE_CUTOFF / stretch, window="hann")
    return resample_poly(np.asarray(values, dtype=np.float64), up, down, window=taps)[:num_out]


def audio_info(path: Path | str) -> tuple[str, int, int, int]:
    """Reads only the header: returns (format, rate, channels, num_samples); format is 'sphere', 'riff'
    (16-bit PCM, which Kaldi reads) or 'riff/<dtype>' (another encoding, read through wav_scp_entry's pipe)."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: audio file not found")
    with open(path, "rb") as f:
        head = f.read(SPHERE_HEADER_BYTES * 4)
        size = os.fstat(f.fileno()).st_size
    if head.startswith(SPHERE_MAGIC):
        header_bytes, rate, channels, count, _ = _parse_sphere_header(head, path)
        if size - header_bytes < count * channels * 2:
            raise DataError(f"{path}: truncated NIST SPHERE file: header says {count} samples, "
                            f"the file holds {(size - header_bytes) // (2 * channels)}")
        return "sphere", rate, channels, count
    if head.startswith(RIFF_MAGIC):
        fmt = _riff_format(head, path)
        if fmt is None:  # chunks before the samples larger than the head: read them all
            with open(path, "rb") as f:
                fmt = _riff_format(f.read(), path) or _bad_riff(path, "no data chunk; truncated?")
        rate, channels, offset, declared, dtype = fmt
        block = channels * np.dtype(dtype).itemsize
        need = _data_bytes(declared, size - offset)
        if size - offset < need:
            raise DataError(f"{path}: truncated RIFF wav: header says {need // block} samples, "
                            f"the file holds {(size - offset) // block}")
        return "riff" if dtype == "<i2" else f"riff/{dtype}", rate, channels, need // block
    raise DataError(f"{path}: neither NIST SPHERE (NIST_1A) nor RIFF wav (magic bytes {head[:8]!r})")


def wav_scp_entry(path: Path | str, fmt: str) -> str:
    """The wav.scp value of an audio file of format `fmt` (audio_info's): its path where Kaldi reads it
    as it is (16-bit PCM RIFF), else this module's conversion to such a wav as a pipe."""
    path = os.path.abspath(path)
    if fmt == "riff" and not any(c.isspace() for c in path):
        return path
    return f"python3 -m pyscripts.kaldi.audio to-wav {shlex.quote(path)} |"


def sphere_bytes(rate: int, samples: np.ndarray) -> bytes:
    """Encodes int16 mono samples as a NIST SPHERE file with a 1024-byte header like LDC TIMIT's."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError("sphere_bytes wants a 1-d int16 array")
    smin, smax = (int(samples.min()), int(samples.max())) if samples.size else (0, 0)
    fields = [("channel_count", "-i", 1), ("sample_count", "-i", samples.size),
              ("sample_rate", "-i", int(rate)), ("sample_min", "-i", smin), ("sample_max", "-i", smax),
              ("sample_n_bytes", "-i", 2), ("sample_byte_format", "-s2", "01"),
              ("sample_sig_bits", "-i", 16), ("sample_coding", "-s3", "pcm")]
    text = f"NIST_1A\n   {SPHERE_HEADER_BYTES}\n" + "".join(f"{k} {t} {v}\n" for k, t, v in fields) + \
        "end_head\n"
    head = text.encode("ascii")
    return head + b" " * (SPHERE_HEADER_BYTES - len(head)) + samples.astype("<i2").tobytes()


def write_sphere(path: Path | str, rate: int, samples: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(sphere_bytes(rate, samples))


def wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    """Encodes int16 mono samples as a RIFF wav file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def write_wav(path: Path | str, rate: int, samples: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(wav_bytes(rate, samples))


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("to-wav", help="write FILE (SPHERE or RIFF) as RIFF wav to stdout")
    p.add_argument("file")
    p = sub.add_parser("info", help="print format, sample rate, channels and samples of each file")
    p.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.cmd == "to-wav":
        rate, samples = read_audio(args.file)
        sys.stdout.buffer.write(wav_bytes(rate, samples))
        sys.stdout.buffer.flush()
    else:
        for path in args.files:
            fmt, rate, channels, count = audio_info(path)
            print(f"{path} {fmt} {rate} {channels} {count}")


if __name__ == "__main__":
    main()
