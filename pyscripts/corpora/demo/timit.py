"""Generates a small TIMIT-layout corpus with festival and flite, for running the ASR recipe without TIMIT.

Layout and file formats follow the LDC TIMIT release:
  {TRAIN,TEST}/DR<n>/<SPK>/<SENT>.WAV   16 kHz 16-bit mono NIST SPHERE (1024-byte header)
  {TRAIN,TEST}/DR<n>/<SPK>/<SENT>.PHN   "start end phone" in samples, TIMIT's 61-phone set
  {TRAIN,TEST}/DR<n>/<SPK>/<SENT>.WRD   "start end word" in samples
  {TRAIN,TEST}/DR<n>/<SPK>/<SENT>.TXT   "0 <num samples> <sentence>"
  DOC/SPKRINFO.TXT, DOC/PROMPTS.TXT     speaker table (with the synthesis settings) and prompts
Speaker ids are TIMIT-like (sex letter, three initials, digit); every speaker reads SA1 and SA2, SX
sentences that a few other speakers also read, and SI sentences of their own. TRAIN and TEST use
disjoint SX/SI prompts. The TEST speakers form the dev and test sets (conf/demo_timit_{dev,test}_spk.list);
the tiny corpus is a subset of the demo one (same speakers and voices, fewer of them, fewer sentences),
with its own lists conf/tiny_timit_{dev,test}_spk.list.

Voices: festival kal_diphone, ked_diphone (male) and cmu_us_slt_arctic_hts (female); flite rms, awb
(male) and slt (female). Each voice gives five speakers by varying speaking rate and F0 in the
synthesiser (flite's rms has no F0 control), and the vocal tract length (formants and F0 together) by
resampling with `sox speed`.
The phone timings are the synthesiser's own (festival's Segment relation, `flite -psdur`), rescaled by
the speed factor.

Phone mapping to TIMIT's 61 phones (the synthesisers use the `radio`/cmulex phone names, which are
TIMIT's): a stop gets its closure (b -> bcl b, d -> dcl d, g -> gcl g, p -> pcl p, t -> tcl t,
k -> kcl k) and so does an affricate, as TIMIT labels it (ch -> tcl ch, jh -> dcl jh); the release is
found as the largest rise of high-frequency energy inside the synthesiser's stop segment. `pau` at the
start and end becomes `h#`, inside the sentence it stays `pau`; `brth` (breath) becomes `pau`. Any other
name outside the 61 phones is an error.

How hard the recordings are depends on the size (DIFFICULTY). tiny keeps the synthesiser's clean
output (the smoke test needs only that the pipeline runs; its files must not change). demo is meant to
be about as hard for the ASR Baseline as the real TIMIT (ConvNet PER about 18-22% on test, the paper's
18.7 / 20.2 dev / test; clean synthetic speech from six voices gave 13.1 / 15.8): each speaker records
through their own channel (a high-pass and a low-pass band limit and a spectral tilt), and each
utterance has its own background noise (coloured between white and brown, at an SNR drawn from a range,
against the speech's power) and its own recording level. The labels are made from the clean signal, as
TIMIT's were hand-labelled on what was said rather than on what the noise lets one hear.

Everything random comes from generators seeded with --seed and the speaker id (and the sentence id for
per-utterance settings); festival, flite and `sox -R -D` (no dither) are bit-exact, and the channel and
noise are numpy/scipy float64 arithmetic, so the same size and seed give byte-identical files. A stamp
file marks a complete corpus; a second call with the same settings does nothing.
"""
import argparse
import concurrent.futures
import logging
import math
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyscripts.kaldi.audio import read_audio, write_sphere, write_wav
from pyscripts.corpora.demo.timit_prompts import PROMPTS
from pyscripts.corpora.demo.stamp import corpus_is_complete
from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
STAMP_NAME = ".demo_timit_complete"
# Bump a size's version when the generator changes what it writes for that size, so old corpora are not
# mistaken for current ones. tiny stays at 1: its files, stamp included, must not change (DIFFICULTY is
# None for it); demo is 2 since it has channels and noise.
GENERATOR_VERSION = {"tiny": 1, "demo": 2}

TIMIT_PHONES = frozenset("""
aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv ih ix iy
jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh""".split())
CLOSURE = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "ch": "tcl", "jh": "dcl"}
RENAME = {"brth": "pau"}


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str        # festival or flite
    sex: str           # M or F
    select: str        # festival voice function or flite voice name
    f0_mean: float     # the voice's own mean F0 (Hz), which the speaker's F0 factor scales
    native_f0: bool    # whether the synthesiser can change F0 (flite's rms cannot)


VOICES = {v.name: v for v in (
    Voice("kal", "festival", "M", "voice_kal_diphone", 105.0, True),
    Voice("ked", "festival", "M", "voice_ked_diphone", 105.0, True),
    Voice("slt_hts", "festival", "F", "voice_cmu_us_slt_arctic_hts", 170.0, True),
    Voice("rms", "flite", "M", "rms", 103.0, False),
    Voice("awb", "flite", "M", "awb", 134.0, True),
    Voice("slt", "flite", "F", "slt", 167.0, True),
)}

# Speaker id, voice, role (train speakers go to TRAIN/, dev and test speakers to TEST/), dialect region.
# Fixed (not drawn from --seed) so that the speaker lists in conf/ hold for every seed.
SPEAKER_TABLE = (
    ("MSFW0", "kal", "train", 1), ("MGLK0", "kal", "train", 2), ("MLAS0", "kal", "train", 3),
    ("MMMC0", "kal", "dev", 4), ("MNRL0", "kal", "test", 1),
    ("MFLA0", "ked", "train", 2), ("MTCF0", "ked", "train", 3), ("MLAP0", "ked", "train", 4),
    ("MEEN0", "ked", "dev", 1), ("MKKL0", "ked", "test", 2),
    ("FRLM0", "slt_hts", "train", 3), ("FFJP0", "slt_hts", "train", 4), ("FPHE0", "slt_hts", "train", 1),
    ("FFBW0", "slt_hts", "dev", 2), ("FMSA0", "slt_hts", "test", 3),
    ("MWNC0", "rms", "train", 4), ("MKAP0", "rms", "train", 1), ("MFDR0", "rms", "train", 2),
    ("MMCN0", "rms", "dev", 3), ("MGDM0", "rms", "test", 4),
    ("MLBS0", "awb", "train", 1), ("MJPN0", "awb", "train", 2), ("MGEC0", "awb", "train", 3),
    ("MNSD0", "awb", "dev", 4), ("MKSP0", "awb", "test", 1),
    ("FAMG0", "slt", "train", 2), ("FMFT0", "slt", "train", 3), ("FRRC0", "slt", "train", 4),
    ("FDGF0", "slt", "dev", 1), ("FDAN0", "slt", "test", 2),
)
# The tiny corpus: these speakers (each role's voices are seen in tiny's training set), and per speaker
# SA1, SA2, the first TINY_SX of their SX sentences and the first TINY_SI of their SI sentences.
TINY_SPEAKERS = ("MSFW0", "FRLM0", "MWNC0", "FAMG0", "MMMC0", "FFBW0", "MGDM0", "FDAN0")
TINY_SX, TINY_SI = 2, 1
SX_PER_SPEAKER, SI_PER_SPEAKER = 5, 3
SX_READERS = 3            # speakers reading each SX sentence
SX_FIRST, SI_FIRST = 3, 453  # TIMIT numbers SX prompts from 3 and SI prompts from 453 on


@dataclass(frozen=True)
class Difficulty:
    """The recording conditions of a size; each field is a (low, high) range drawn from uniformly.
    Per speaker (their microphone and room): highpass_hz, lowpass_hz, tilt_db_per_octave.
    Per utterance: snr_db, noise_slope, level_db."""
    highpass_hz: tuple         # band limit below (4th-order Butterworth high-pass cut-off)
    lowpass_hz: tuple          # band limit above (4th-order Butterworth low-pass cut-off)
    tilt_db_per_octave: tuple  # spectral tilt about 1 kHz (<0: dull microphone, >0: bright one)
    snr_db: tuple              # speech power (over the labelled speech) to noise power, after the channel
    noise_slope: tuple         # noise power spectrum ~ 1/f^slope: 0 white (hiss), 1 pink, 2 brown (rumble)
    level_db: tuple            # gain of the whole recording (speaker distance, recording level)


# None: the synthesiser's clean output (the size's files must not change).
DIFFICULTY = {
    "tiny": None,
    # Tuned on the monophone GMM and confirmed with the ConvNet (README, "Data"): the noise does
    # most of it (SNR 22-40 dB alone took the GMM's test PER from 16 to 21%, these channels alone to 17%).
    "demo": Difficulty(
        highpass_hz=(50.0, 200.0),        # from a full-range microphone to a small one's bass cut
        lowpass_hz=(6000.0, 7800.0),      # some channels lose the top of the band (the s/sh/f cues)
        tilt_db_per_octave=(-2.0, 2.0),   # mild: a microphone's or a room's colouring
        snr_db=(23.0, 42.0),              # a quiet office to a studio (TIMIT's own is about 40 dB)
        noise_slope=(0.0, 2.0),           # hiss (white), fan (pink), traffic-like rumble (brown)
        level_db=(-8.0, 2.0),             # recording levels that vary; clipping is avoided (see record)
    ),
}


@dataclass(frozen=True)
class Speaker:
    spk: str
    voice: Voice
    role: str
    dialect: int
    rate: float    # duration stretch (>1 slower)
    f0: float      # F0 factor on the voice's mean
    speed: float   # sox speed: vocal tract and F0 scale (>1 shorter, higher)

    @property
    def folder(self):
        return "TRAIN" if self.role == "train" else "TEST"

    @property
    def path(self):
        return f"{self.folder}/DR{self.dialect}/{self.spk}"


@dataclass(frozen=True)
class Utterance:
    speaker: Speaker
    sent: str      # SA1, SX23, SI471...
    text: str

    @property
    def words(self):
        return sentence_words(self.text)


def sentence_words(text):
    """The words of a prompt as TIMIT's .WRD spells them: lower case, apostrophes kept."""
    return [w for w in re.sub(r"[^a-z' ]", " ", text.lower()).split() if w.strip("'")]


def make_speakers(seed):
    """The 30 demo speakers, with rate/F0/speed drawn per speaker from the seed."""
    speakers = []
    for spk, voice_name, role, dialect in SPEAKER_TABLE:
        voice = VOICES[voice_name]
        rng = random.Random(f"demo_timit:{seed}:{spk}")
        rate = rng.uniform(0.85, 1.2)
        if voice.native_f0:
            f0 = rng.uniform(0.8, 1.3) if voice.sex == "M" else rng.uniform(0.85, 1.2)
            speed = rng.uniform(0.93, 1.08)
        else:   # F0 can only move together with the formants: a wider speed range instead
            f0 = 1.0
            speed = rng.uniform(0.88, 1.12)
        speakers.append(Speaker(spk, voice, role, dialect, round(rate, 3), round(f0, 3), round(speed, 3)))
    return speakers


def make_plan(size, seed):
    """All utterances of the corpus of this size, in a fixed order."""
    speakers = make_speakers(seed)
    prompts = PROMPTS[2:]
    train = [s for s in speakers if s.role == "train"]
    test = [s for s in speakers if s.role != "train"]
    n_sx_train = len(train) * SX_PER_SPEAKER // SX_READERS
    n_sx_test = len(test) * SX_PER_SPEAKER // SX_READERS
    sx_train, rest = prompts[:n_sx_train], prompts[n_sx_train:]
    sx_test, rest = rest[:n_sx_test], rest[n_sx_test:]
    si_train, rest = rest[:len(train) * SI_PER_SPEAKER], rest[len(train) * SI_PER_SPEAKER:]
    si_test = rest[:len(test) * SI_PER_SPEAKER]
    if len(si_test) < len(test) * SI_PER_SPEAKER:
        raise AssertionError("not enough prompts for the speaker table")
    sx_ids = {text: f"SX{SX_FIRST + i}" for i, text in enumerate(sx_train + sx_test)}
    si_ids = {text: f"SI{SI_FIRST + i}" for i, text in enumerate(si_train + si_test)}
    plan = []
    for group, sx_pool, si_pool in ((train, sx_train, si_train), (test, sx_test, si_test)):
        for i, spk in enumerate(group):
            # Speaker i reads a block of SX_PER_SPEAKER prompts; the blocks wrap round the pool, so that
            # each prompt is read by SX_READERS speakers (of different voices, by the table's order).
            sx = [sx_pool[(SX_PER_SPEAKER * i + j) % len(sx_pool)] for j in range(SX_PER_SPEAKER)]
            si = list(si_pool[SI_PER_SPEAKER * i:SI_PER_SPEAKER * (i + 1)])
            if size == "tiny":
                if spk.spk not in TINY_SPEAKERS:
                    continue
                sx, si = sx[:TINY_SX], si[:TINY_SI]
            utts = [Utterance(spk, "SA1", PROMPTS[0]), Utterance(spk, "SA2", PROMPTS[1])]
            utts += [Utterance(spk, sx_ids[t], t) for t in sx] + [Utterance(spk, si_ids[t], t) for t in si]
            plan.extend(utts)
    return plan


def speaker_lists(size, seed=0):
    """{'dev': [spk ids], 'test': [...]} (lower case, sorted) of the corpus of this size."""
    spks = {u.speaker for u in make_plan(size, seed)}
    return {role: sorted(s.spk.lower() for s in spks if s.role == role) for role in ("dev", "test")}


# ---------------------------------------------------------------------------------------------------
# Synthesis. Each engine returns, per utterance, 16 kHz samples and a list of segments
# (phone, end time in seconds, word index from 1, or 0 for pauses).

FESTIVAL_DUMP = r"""
(define (demo_dump utt wavpath segpath)
  (utt.wave.resample utt 16000)
  (utt.save.wave utt wavpath 'riff)
  (let ((n 0) (fd (fopen segpath "w")))
    (mapcar
     (lambda (w)
       (set! n (+ n 1))
       (format fd "word %d %s\n" n (item.name w))
       (mapcar (lambda (syl)
                 (mapcar (lambda (seg) (item.set_feat seg "demo_word" n)) (item.daughters syl)))
               (item.daughters (item.relation w 'SylStructure))))
     (utt.relation.items utt 'Word))
    (mapcar
     (lambda (s)
       (format fd "seg %s %f %s\n" (item.name s) (item.feat s "end") (item.feat s "demo_word")))
     (utt.relation.items utt 'Segment))
    (fclose fd)))
"""


def _scheme_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_voice_setup(spk):
    v = spk.voice
    lines = [f"({v.select})"]
    if v.name == "slt_hts":
        # hts_engine: -r speaking speed (>1 faster), -fm additive F0 shift in half tones.
        half_tones = 12 * math.log2(spk.f0)
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1 / spk.rate:.4f}) '
                     f'(list "-fm" {half_tones:.4f}))))')
    else:
        # The diphone voices default to Duration_Stretch 1.1 and F0 105 +- 14 Hz.
        lines.append(f"(Parameter.set 'Duration_Stretch {1.1 * spk.rate:.4f})")
        lines.append(f"(set! int_lr_params '((target_f0_mean {v.f0_mean * spk.f0:.2f}) "
                     f"(target_f0_std {14 * spk.f0:.2f}) (model_f0_mean 170) (model_f0_std 34)))")
    return "\n".join(lines)


def synth_festival(utts, work):
    """Synthesises one speaker's utterances in one festival process."""
    spk = utts[0].speaker
    script = [FESTIVAL_DUMP, festival_voice_setup(spk)]
    for k, u in enumerate(utts):
        script.append(f"(demo_dump (utt.synth (Utterance Text {_scheme_string(u.text)})) "
                      f"{_scheme_string(str(work / f'{k}.wav'))} {_scheme_string(str(work / f'{k}.seg'))})")
    (work / "synth.scm").write_text("\n".join(script) + "\n")
    proc = subprocess.run(["festival", "-b", str(work / "synth.scm")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"festival failed for speaker {spk.spk} ({spk.voice.select}): {proc.stderr.strip()}")
    results = []
    for k, u in enumerate(utts):
        seg_path = work / f"{k}.seg"
        if not seg_path.is_file():
            raise DataError(f"festival wrote no segments for {spk.spk} {u.sent}: {proc.stderr.strip()}")
        words, segs = [], []
        for line in seg_path.read_text().splitlines():
            f = line.split()
            if f[0] == "word":
                words.append(f[2].lower())
            else:
                segs.append((f[1], float(f[2]), int(f[3])))
        if [w.replace("'", "") for w in words] != [w.replace("'", "") for w in u.words]:
            raise DataError(f"festival read {spk.spk} {u.sent} as words {words}, expected {u.words}: "
                            f"reword the prompt")
        rate, samples = read_audio(work / f"{k}.wav")
        if rate != SAMPLE_RATE:
            raise DataError(f"festival wrote {rate} Hz for {spk.spk} {u.sent}")
        results.append((samples, segs))
    return results


def _flite_segments(output, what):
    segs = []
    for item in output.split():
        name, _, end = item.rpartition(":")
        try:
            segs.append((name, float(end)))
        except ValueError:
            raise DataError(f"flite printed unexpected segment {item!r} for {what}") from None
    if not segs:
        raise DataError(f"flite printed no segments for {what}")
    return segs


def flite_pronunciations(words, voice="kal16"):
    """Each word's phones as flite says it alone: one call, words separated by commas (pauses).
    kal16, rms, awb and slt share flite's cmulex lexicon and post-lexical rules (checked on the whole
    vocabulary), and kal16 is by far the fastest to synthesise."""
    proc = subprocess.run(["flite", "-voice", voice, "-ps", "-o", "none", "-t", ", ".join(words)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"flite -voice {voice} failed: {proc.stderr.strip()}")
    groups, current = [], []
    for ph in proc.stdout.split():
        if ph == "pau":
            if current:
                groups.append(current)
            current = []
        else:
            current.append(ph)
    if current:
        groups.append(current)
    if len(groups) != len(words):
        raise DataError(f"flite -voice {voice}: {len(groups)} pronunciations for {len(words)} words")
    return dict(zip(words, groups))


def align_words(phones, prons):
    """Assigns each phone of the sentence to a word: edit-distance alignment of the phones with the
    concatenated isolated-word pronunciations (context changes such as 'the' -> dh iy are substitutions).
    Returns the word index (from 1) of each phone."""
    ref = [(ph, w + 1) for w, pron in enumerate(prons) for ph in pron]
    n, m = len(phones), len(ref)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (phones[i - 1] != ref[j - 1][0]),
                             cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    owner = [0] * n
    i, j = n, m
    while i > 0:
        if j > 0 and cost[i, j] == cost[i - 1, j - 1] + (phones[i - 1] != ref[j - 1][0]):
            owner[i - 1] = ref[j - 1][1]
            i, j = i - 1, j - 1
        elif j > 0 and cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:   # an extra phone: belongs to the word of its aligned neighbour (filled below)
            i -= 1
    for k in range(n):
        if owner[k] == 0:
            owner[k] = owner[k - 1] if k > 0 and owner[k - 1] else next((o for o in owner[k:] if o), 1)
    return owner


def synth_flite(utts, work, prons):
    spk = utts[0].speaker
    v = spk.voice
    results = []
    for k, u in enumerate(utts):
        cmd = ["flite", "-voice", v.select, "--setf", f"duration_stretch={spk.rate:.4f}"]
        if v.native_f0:
            cmd += ["--setf", f"int_f0_target_mean={v.f0_mean * spk.f0:.2f}"]
        wav = work / f"{k}.wav"
        cmd += ["-psdur", "-t", u.text, "-o", str(wav)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(f"flite failed for {spk.spk} {u.sent}: {proc.stderr.strip()}")
        segs = _flite_segments(proc.stdout, f"{spk.spk} {u.sent}")
        speech = [k2 for k2, (ph, _) in enumerate(segs) if ph != "pau"]
        owner = align_words([segs[k2][0] for k2 in speech], [prons[w] for w in u.words])
        word_of = dict(zip(speech, owner))
        if sorted(set(owner)) != list(range(1, len(u.words) + 1)):
            raise DataError(f"flite: cannot place every word of {spk.spk} {u.sent} ({u.text!r})")
        rate, samples = read_audio(wav)
        if rate != SAMPLE_RATE:
            raise DataError(f"flite wrote {rate} Hz for {spk.spk} {u.sent}")
        results.append((samples, [(ph, end, word_of.get(k2, 0)) for k2, (ph, end) in enumerate(segs)]))
    return results


def change_speed(samples, factor, work):
    """Plays the audio `factor` times faster (formants and F0 scale by factor), resampled to 16 kHz."""
    if factor == 1.0:
        return samples
    src, dst = work / "speed_in.wav", work / "speed_out.wav"
    write_wav(src, SAMPLE_RATE, samples)
    proc = subprocess.run(["sox", "-R", "-D", str(src), str(dst), "speed", f"{factor:.4f}",
                           "rate", "-v", str(SAMPLE_RATE)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"sox speed failed: {proc.stderr.strip()}")
    return read_audio(dst)[1]


# ---------------------------------------------------------------------------------------------------
# TIMIT labels from the synthesiser's segments.

def release_point(samples, start, end):
    """Sample where a stop's release starts: the largest rise of high-passed energy (1 ms frames)
    between 30% and 80% of the stop; 60% of it when the stop is too short to tell."""
    hop = SAMPLE_RATE // 1000
    n = (end - start) // hop
    fallback = start + round(0.6 * (end - start))
    if n < 8:
        return fallback
    x = np.diff(samples[start:start + n * hop + 1].astype(np.float64))
    energy = np.log((x[:n * hop].reshape(n, hop) ** 2).sum(axis=1) + 1.0)
    lo, hi = max(3, int(0.3 * n)), min(n - 3, int(0.8 * n))
    if hi <= lo:
        return fallback
    rise = [energy[j:j + 3].mean() - energy[j - 3:j].mean() for j in range(lo, hi + 1)]
    best = int(np.argmax(rise))
    if rise[best] < 1.0:     # no clear burst (under a factor e of energy)
        return fallback
    return start + (lo + best) * hop


def timit_labels(samples, segs, words, what):
    """Turns segments (phone, end s, word index) into TIMIT .PHN and .WRD rows (start, end, label)."""
    total = len(samples)
    bounds, names, owners = [], [], []
    start = 0
    for k, (ph, end, word) in enumerate(segs):
        ph = RENAME.get(ph, ph)
        if ph in ("pau", "h#") and k in (0, len(segs) - 1):
            ph = "h#"
        stop_end = total if k == len(segs) - 1 else min(round(end * SAMPLE_RATE), total)
        if stop_end <= start:
            raise DataError(f"{what}: segment {ph} has no duration after rounding ({segs})")
        if ph not in TIMIT_PHONES and ph not in CLOSURE:
            raise DataError(f"{what}: synthesiser phone {ph!r} has no TIMIT mapping; add it to RENAME")
        if ph in CLOSURE:
            release = release_point(samples, start, stop_end)
            bounds += [(start, release), (release, stop_end)]
            names += [CLOSURE[ph], ph]
            owners += [word, word]
        else:
            bounds.append((start, stop_end))
            names.append(ph)
            owners.append(word)
        start = stop_end
    if names[0] != "h#" or names[-1] != "h#":
        raise DataError(f"{what}: synthesiser output does not start and end with a pause: {names}")
    phn = [(s, e, ph) for (s, e), ph in zip(bounds, names)]
    wrd = []
    for w, word in enumerate(words, 1):
        span = [b for b, o in zip(bounds, owners) if o == w]
        if not span:
            raise DataError(f"{what}: word {word!r} got no phones")
        wrd.append((span[0][0], span[-1][1], word))
    return phn, wrd


# ---------------------------------------------------------------------------------------------------
# Recording conditions (DIFFICULTY): the speaker's channel, the utterance's noise and level.

@dataclass(frozen=True)
class Channel:
    highpass_hz: float
    lowpass_hz: float
    tilt_db_per_octave: float


def _rng(*key):
    """A numpy generator seeded from a string key (random.Random hashes str seeds with sha512: stable)."""
    return np.random.default_rng(random.Random(":".join(map(str, key))).getrandbits(64))


def speaker_channel(difficulty, seed, spk):
    """The speaker's channel, drawn from its own generator (the speaker's voice settings keep theirs)."""
    rng = _rng("demo_timit_channel", seed, spk)
    return Channel(*(round(float(rng.uniform(*r)), 1) for r in (
        difficulty.highpass_hz, difficulty.lowpass_hz, difficulty.tilt_db_per_octave)))


def channel_gain(freqs, channel):
    """Magnitude response of the channel at freqs (Hz): Butterworth band limits and the tilt."""
    f = np.maximum(freqs, 1.0)
    highpass = 1 / np.sqrt(1 + (channel.highpass_hz / f) ** 8)
    lowpass = 1 / np.sqrt(1 + (f / channel.lowpass_hz) ** 8)
    tilt = 10 ** (channel.tilt_db_per_octave * np.log2(f / 1000.0) / 20)
    return highpass * lowpass * tilt


def apply_channel(signal, channel):
    """Filters the signal with the channel's (zero-phase) response; zero padding keeps it from wrapping."""
    n = len(signal) + 2048
    spectrum = np.fft.rfft(signal, n) * channel_gain(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), channel)
    return np.fft.irfft(spectrum, n)[:len(signal)]


def coloured_noise(rng, n, slope):
    """n samples of unit-power Gaussian noise with power spectrum ~ 1/f^slope (flat below 50 Hz)."""
    white = rng.standard_normal(n)
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 50.0)
    noise = np.fft.irfft(np.fft.rfft(white) * freqs ** (-slope / 2), n)
    return noise / np.sqrt(np.mean(noise ** 2))


def add_noise(signal, noise, snr_db, speech):
    """signal plus noise scaled so that the power of signal[speech] over the noise's is snr_db."""
    power = np.mean(signal[speech] ** 2)
    return signal + noise * np.sqrt(power / 10 ** (snr_db / 10))


def record(samples, phn, channel, difficulty, seed, spk, sent):
    """The clean int16 samples as recorded: the speaker's channel, the utterance's noise and level.
    The SNR is against the power between the first and the last non-h# label (the speech)."""
    rng = _rng("demo_timit_recording", seed, spk, sent)
    snr, slope, level = (float(rng.uniform(*r)) for r in (
        difficulty.snr_db, difficulty.noise_slope, difficulty.level_db))
    speech = [(s, e) for s, e, ph in phn if ph != "h#"]
    signal = apply_channel(samples.astype(np.float64), channel)
    signal = add_noise(signal, coloured_noise(rng, len(signal), slope), snr,
                       slice(speech[0][0], speech[-1][1]))
    signal *= 10 ** (level / 20)
    peak = np.max(np.abs(signal))
    if peak > 32000:   # a recording engineer would have turned the level down
        signal *= 32000 / peak
    return np.round(signal).astype(np.int16)


# ---------------------------------------------------------------------------------------------------

def synthesise_speaker(utts, out, prons, difficulty=None, seed=0):
    """Synthesises and writes all utterances of one speaker (recorded under difficulty unless None);
    returns their durations in seconds."""
    spk = utts[0].speaker
    channel = speaker_channel(difficulty, seed, spk.spk) if difficulty else None
    with tempfile.TemporaryDirectory(prefix=f"demo_timit_{spk.spk}_") as tmp:
        work = Path(tmp)
        if spk.voice.engine == "festival":
            results = synth_festival(utts, work)
        else:
            results = synth_flite(utts, work, prons)
        durations = []
        spk_dir = out / spk.path
        spk_dir.mkdir(parents=True, exist_ok=True)
        for u, (samples, segs) in zip(utts, results):
            scaled = change_speed(samples, spk.speed, work)
            segs = [(ph, end / spk.speed, w) for ph, end, w in segs]
            what = f"{spk.path}/{u.sent}"
            phn, wrd = timit_labels(scaled, segs, u.words, what)
            if difficulty:
                scaled = record(scaled, phn, channel, difficulty, seed, spk.spk, u.sent)
            write_sphere(spk_dir / f"{u.sent}.WAV", SAMPLE_RATE, scaled)
            (spk_dir / f"{u.sent}.PHN").write_text("".join(f"{s} {e} {p}\n" for s, e, p in phn))
            (spk_dir / f"{u.sent}.WRD").write_text("".join(f"{s} {e} {w}\n" for s, e, w in wrd))
            (spk_dir / f"{u.sent}.TXT").write_text(f"0 {len(scaled)} {u.text}\n")
            durations.append(len(scaled) / SAMPLE_RATE)
    return durations


def write_docs(out, plan, difficulty=None, seed=0):
    """DOC/SPKRINFO.TXT (with the speakers' channels when the size has a difficulty) and PROMPTS.TXT."""
    doc = out / "DOC"
    doc.mkdir(parents=True, exist_ok=True)
    speakers = sorted({u.speaker for u in plan}, key=lambda s: s.spk)
    header = "; ID    Sex DR Use  Set   Voice    Rate   F0     Speed"
    lines = ["; Demo TIMIT-layout corpus: speakers (synthesised; see pyscripts/corpora/demo/timit.py)\n",
             header + ("  HP(Hz) LP(Hz) Tilt(dB/oct)\n" if difficulty else "\n")]
    for s in speakers:
        row = (f"{s.spk[1:]:<6} {s.voice.sex}   {s.dialect}  {'TRN' if s.role == 'train' else 'TST'}  "
               f"{s.role:<5} {s.voice.name:<8} {s.rate:.3f}  {s.f0:.3f}  {s.speed:.3f}")
        if difficulty:
            c = speaker_channel(difficulty, seed, s.spk)
            row += f"  {c.highpass_hz:<6.1f} {c.lowpass_hz:<6.1f} {c.tilt_db_per_octave:.1f}"
        lines.append(row + "\n")
    (doc / "SPKRINFO.TXT").write_text("".join(lines))
    prompts = {}
    for u in plan:
        prompts.setdefault(u.sent, u.text)
    (doc / "PROMPTS.TXT").write_text("; Demo TIMIT-layout corpus: prompts\n" + "".join(
        f"{prompts[s]} ({s.lower()})\n" for s in sorted(prompts, key=lambda s: (s[:2], int(s[2:])))))


def generate(out, size="demo", seed=1234, nj=2):
    """Generates the corpus into out; returns False when a complete one is already there."""
    out = Path(out)
    stamp = f"demo_timit version={GENERATOR_VERSION[size]} size={size} seed={seed}\n"
    if corpus_is_complete(out, STAMP_NAME, stamp):
        return False
    for tool in ("festival", "flite", "sox"):
        if shutil.which(tool) is None:
            raise DataError(f"{tool} not found: install the Debian packages in requirements-debian.txt "
                            f"(utils/setup_env.sh does)")
    plan = make_plan(size, seed)
    began = time.time()
    # Build in a side directory and rename at the end, so an interrupted run leaves no half corpus.
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    by_speaker = {}
    for u in plan:
        by_speaker.setdefault(u.speaker.spk, []).append(u)
    prons = flite_pronunciations(sorted({w for u in plan for w in u.words}))
    log.info("synthesising %d utterances of %d speakers (%s, seed %d) with %d jobs",
             len(plan), len(by_speaker), size, seed, nj)
    with concurrent.futures.ThreadPoolExecutor(max_workers=nj) as pool:
        durations = [d for ds in pool.map(
            lambda utts: synthesise_speaker(utts, partial, prons, DIFFICULTY[size], seed),
            by_speaker.values()) for d in ds]
    write_docs(partial, plan, DIFFICULTY[size], seed)
    (partial / STAMP_NAME).write_text(stamp)
    if out.exists():
        out.rmdir()
    partial.rename(out)
    log.info("%s: %d speakers, %d utterances, %.1f min of audio, in %.1f s", out, len(by_speaker),
             len(plan), sum(durations) / 60, time.time() - began)
    return True


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="demo", choices=("demo", "tiny"))
    parser.add_argument("--seed", type=int, default=1234, help="seed of the speakers' voice settings")
    parser.add_argument("--nj", type=int, default=2, help="parallel synthesis jobs")
    parser.add_argument("--print-spk-list", choices=("dev", "test"),
                        help="print the dev or test speaker list of this size and exit (for conf/)")
    parser.add_argument("out_dir", nargs="?")
    args = parser.parse_args()
    if args.print_spk_list:
        print("\n".join(speaker_lists(args.size, args.seed)[args.print_spk_list]))
        return
    if not args.out_dir:
        parser.error("out_dir is required")
    generate(args.out_dir, args.size, args.seed, args.nj)


if __name__ == "__main__":
    main()
