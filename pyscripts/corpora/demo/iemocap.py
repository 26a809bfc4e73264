"""Generates a small IEMOCAP-layout corpus with espeak-ng, for running the SER recipe without IEMOCAP.

Layout, names and label files follow the IEMOCAP release:
  SessionN/sentences/wav/<dialog>/<utt>.wav          16 kHz 16-bit mono RIFF
  SessionN/dialog/EmoEvaluation/<dialog>.txt         IEMOCAP's label lines and annotator lines
  SessionN/dialog/transcriptions/<dialog>.txt        "<utt> [start-end]: words"
Five sessions, one female and one male speaker each (distinct espeak-ng voice variants, base pitch and
rate). The emotions are acted by prosody: pitch level and range, speaking rate, loudness and spectral
tilt (vocal effort), each jittered per utterance. Besides ang, hap, exc, neu and sad there are fru, sur
and xxx utterances that the SER data preparation drops.

How hard the emotions are to tell apart depends on the size. tiny acts each emotion with its full STYLES
offsets and small jitter (nearly separable: the smoke test needs only that the pipeline runs). demo is
meant to be about as hard as the real IEMOCAP (8-fold SER error UE about 35-55%, the paper's 46-49%): each
speaker has a personal baseline and expressiveness and acts each emotion a little their own way, the
emotion offsets are shrunk to the size of the per-utterance jitter, scripted dialogs carry weaker cues
than improvised ones, and each utterance has its own mild noise floor (see DIFFICULTY).

Everything is drawn from one seeded random generator and the tools are run bit-exactly (sox -R), so the
same size and seed give byte-identical files. A stamp file marks a complete corpus; a second call with
the same size and seed does nothing.
"""
import argparse
import concurrent.futures
import logging
import math
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from pyscripts.kaldi.audio import write_wav
from pyscripts.corpora.demo.stamp import corpus_is_complete
from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
STAMP_NAME = ".demo_iemocap_complete"
# Bump a size's version when the generator changes what it writes for that size, so old corpora are not
# mistaken for current ones (tiny stays at 1: its files, stamp included, must not change).
GENERATOR_VERSION = {"tiny": 1, "demo": 2}

# Speaker, espeak-ng voice variant, base pitch (-p, 0..99), base rate (-s, words/min), level offset (dB).
SPEAKERS = (
    ("Ses01F", "f1", 48, 168, 0.0), ("Ses01M", "m1", 45, 165, 1.0),
    ("Ses02F", "f2", 55, 180, -1.0), ("Ses02M", "m2", 52, 175, 0.5),
    ("Ses03F", "f3", 42, 160, 1.5), ("Ses03M", "m3", 58, 185, -1.5),
    ("Ses04F", "f4", 60, 172, -0.5), ("Ses04M", "m4", 40, 158, 0.0),
    ("Ses05F", "f5", 50, 165, 1.0), ("Ses05M", "m6", 48, 178, -1.0),
)


@dataclass(frozen=True)
class Style:
    """How an emotion is acted. pitch/range/rate are SSML <prosody> changes in percent (espeak-ng),
    level the speech RMS in dBFS, tilt a treble shelf gain in dB (vocal effort)."""
    pitch: float
    range: float
    rate: float
    level: float
    tilt: float


STYLES = {
    "neu": Style(pitch=-5, range=-30, rate=0, level=-26, tilt=-1),
    "hap": Style(pitch=45, range=100, rate=8, level=-22, tilt=1),
    "exc": Style(pitch=55, range=100, rate=15, level=-20, tilt=2),
    "ang": Style(pitch=10, range=50, rate=30, level=-15, tilt=9),
    "sad": Style(pitch=-25, range=-80, rate=-35, level=-33, tilt=-8),
    "fru": Style(pitch=5, range=20, rate=12, level=-21, tilt=3),
    "sur": Style(pitch=60, range=100, rate=0, level=-22, tilt=2),
}
# Per-utterance jitter (uniform, +-) of each style parameter.
JITTER = Style(pitch=5, range=15, rate=7, level=2, tilt=1.5)


@dataclass(frozen=True)
class Difficulty:
    """How the emotions of a size overlap. An utterance's prosody is the neutral style plus the speaker's
    baseline plus the emotion's offset from neutral (STYLES[label] - STYLES["neu"]) times cue_scale, the
    speaker's expressiveness and, in scripted dialogs, scripted_scale; plus the speaker's own twist of
    that emotion and the per-utterance jitter. All spreads are uniform +-; noise_dbfs is the range of
    each utterance's noise floor."""
    cue_scale: float
    scripted_scale: float
    expressiveness: tuple
    speaker_baseline: Style
    speaker_twist: Style
    jitter: Style
    noise_dbfs: tuple


# None: the emotion is acted with its full STYLES offsets and JITTER (the size's files must not change).
DIFFICULTY = {
    "tiny": None,
    "demo": Difficulty(cue_scale=0.42, scripted_scale=0.6, expressiveness=(0.6, 1.4),
                       speaker_baseline=Style(pitch=10, range=25, rate=10, level=3, tilt=3),
                       speaker_twist=Style(pitch=5, range=15, rate=5, level=1.5, tilt=1.5),
                       jitter=Style(pitch=10, range=30, rate=10, level=3, tilt=3),
                       noise_dbfs=(-52.0, -42.0)),
}
STYLE_FIELDS = ("pitch", "range", "rate", "level", "tilt")

# Labels per speaker for each size. hap and exc are merged by data prep; fru, sur and xxx are dropped.
SIZES = {
    "tiny": {"ang": 1, "hap": 1, "exc": 1, "neu": 1, "sad": 1, "dropped": 1},
    "demo": {"ang": 8, "hap": 5, "exc": 5, "neu": 12, "sad": 10, "fru": 2, "sur": 1, "xxx": 2},
}
# Dialogs per session: (dialog letter, kind). Both speakers of a session talk in every dialog.
DIALOGS = {
    "tiny": (("F", "impro01"), ("M", "script01_1")),
    "demo": (("F", "impro01"), ("F", "impro02"), ("F", "script01_1"),
             ("M", "impro01"), ("M", "script02_1"), ("M", "script02_2")),
}
DROPPED_LABELS = ("fru", "sur", "xxx")

# Annotators' category names as IEMOCAP's C-* lines write them, and typical [V, A, D] values.
CATEGORY = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
            "fru": "Frustration", "sur": "Surprise"}
VAD = {"neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.5), "ang": (1.5, 4.0, 4.0),
       "sad": (2.0, 2.0, 2.0), "fru": (2.0, 3.5, 3.5), "sur": (3.5, 3.5, 3.0), "xxx": (2.5, 3.0, 3.0)}

NOISE_DBFS = -62.0  # recording noise floor under the whole utterance
LEAD_SIL = (0.15, 0.45)  # seconds of noise-only signal before and after the speech
TRAIL_SIL = (0.15, 0.45)

# Neutral, everyday sentences written for this recipe (public domain).
SENTENCES = (
    "The train leaves the station at half past nine.",
    "I left the blue folder on the kitchen table.",
    "We should paint the fence before the rain comes.",
    "My brother works at the library on weekends.",
    "Please put the boxes next to the front door.",
    "The meeting was moved to the room upstairs.",
    "She bought three apples and a loaf of bread.",
    "The bus was late again this morning.",
    "I think the keys are in my other coat.",
    "They are building a new bridge across the river.",
    "The letter arrived two days after the party.",
    "We walked along the beach until it got dark.",
    "Can you tell me where the post office is?",
    "He fixed the old radio with a small screwdriver.",
    "The garden needs water every evening in summer.",
    "Our neighbours have a large grey dog.",
    "I will call you when the plane lands.",
    "The shop on the corner closes at six.",
    "She wrote the numbers down on a napkin.",
    "The children played football in the park.",
    "There is still some coffee in the pot.",
    "We need to leave before the traffic starts.",
    "The window in the bedroom will not open.",
    "He reads the newspaper every day after lunch.",
    "The tickets are in the envelope on the shelf.",
    "I saw your sister at the market yesterday.",
    "The car is parked behind the old church.",
    "You can borrow my umbrella if you want.",
    "The report has to be finished by Friday.",
    "We ate dinner at the small place by the harbour.",
    "Turn left at the lights and keep going.",
    "The phone rang just as I sat down.",
    "My cousin is moving to another city.",
    "The lamp in the hallway needs a new bulb.",
    "I found a picture of us from last year.",
    "They changed the time of the last ferry.",
    "The cat sleeps on the sofa all afternoon.",
    "Somebody left the gate open again.",
    "We have to talk about the rent.",
    "The doctor said to come back next week.",
    "I already told him about the new plan.",
    "The water in the lake was very cold.",
    "He forgot his wallet at the restaurant.",
    "The flowers on the balcony are growing fast.",
    "Let me know which day works for you.",
    "The elevator is out of order today.",
    "She keeps her bicycle in the basement.",
    "I made a copy of the map for you.",
    "The museum is free on the first Sunday.",
    "We waited for an hour at the airport.",
    "The printer on the second floor is broken.",
    "Your package was delivered to the wrong house.",
    "He plays the piano in a band on Thursdays.",
    "The soup needs a little more salt.",
    "I moved the chairs out onto the porch.",
    "The film starts at a quarter to eight.",
    "They sold the house at the end of the street.",
    "My sister grows tomatoes in her yard.",
    "The road to the village is closed for repairs.",
    "We will take the early train tomorrow.",
)


@dataclass
class Utterance:
    """One planned utterance: who says what, with which label and prosody, in which dialog."""
    speaker: str
    voice: str
    base_pitch: int
    base_rate: int
    label: str
    sentence: str
    dialog: str
    pitch: float
    range: float
    rate: float
    level: float
    tilt: float
    lead_sil: float
    trail_sil: float
    noise_seed: int
    noise_dbfs: float = NOISE_DBFS
    utt_id: str = ""
    samples: np.ndarray = None


def _jittered(rng, style, jitter=JITTER):
    return {name: getattr(style, name) + rng.uniform(-getattr(jitter, name), getattr(jitter, name))
            for name in STYLE_FIELDS}


def _uniform_style(rng, spread):
    """A Style of independent uniform draws in +-spread."""
    return Style(*(rng.uniform(-getattr(spread, f), getattr(spread, f)) for f in STYLE_FIELDS))


@dataclass(frozen=True)
class SpeakerManner:
    """How one speaker acts under a Difficulty: a personal baseline, how strongly they show emotion, and
    their own twist of each emotion (so that no fixed offset marks an emotion across speakers)."""
    baseline: Style
    expressiveness: float
    twists: dict


def speaker_manner(rng: random.Random, difficulty: Difficulty) -> SpeakerManner:
    return SpeakerManner(baseline=_uniform_style(rng, difficulty.speaker_baseline),
                         expressiveness=rng.uniform(*difficulty.expressiveness),
                         twists={label: _uniform_style(rng, difficulty.speaker_twist) for label in sorted(STYLES)})


def _acted_style(rng, label):
    """The style of a label; xxx (the annotators disagreed) is a blend of two other styles."""
    if label != "xxx":
        return STYLES[label]
    a, b = rng.sample(sorted(STYLES), 2)
    mix = rng.uniform(0.3, 0.7)
    return Style(*(mix * getattr(STYLES[a], f) + (1 - mix) * getattr(STYLES[b], f) for f in STYLE_FIELDS))


def _overlapping_params(rng, label, style, manner, scripted, difficulty):
    """Prosody of one utterance under a Difficulty (see its doc); xxx takes the twist of no emotion."""
    neutral = STYLES["neu"]
    cue = difficulty.cue_scale * manner.expressiveness * (difficulty.scripted_scale if scripted else 1.0)
    twist = manner.twists.get(label)
    centre = Style(*(getattr(neutral, f) + getattr(manner.baseline, f)
                     + cue * (getattr(style, f) - getattr(neutral, f)) + (getattr(twist, f) if twist else 0.0)
                     for f in STYLE_FIELDS))
    return _jittered(rng, centre, difficulty.jitter)


def _speaker_labels(size, spk_index):
    labels = []
    for label, count in SIZES[size].items():
        if label == "dropped":  # tiny: one dropped utterance per speaker, the kind rotating
            label = DROPPED_LABELS[spk_index % len(DROPPED_LABELS)]
        labels += [label] * count
    return labels


def plan_corpus(size: str, seed: int) -> list:
    """Decides every utterance (speaker, label, sentence, prosody, dialog, id) from the seed alone."""
    if size not in SIZES:
        raise DataError(f"unknown corpus size {size!r}; use one of {sorted(SIZES)}")
    rng = random.Random(seed)
    difficulty = DIFFICULTY[size]
    utts = []
    for spk_index, (speaker, voice, base_pitch, base_rate, level_offset) in enumerate(SPEAKERS):
        labels = _speaker_labels(size, spk_index)
        rng.shuffle(labels)
        sentences = rng.sample(SENTENCES, len(labels))
        session = speaker[:5]
        dialogs = [f"{session}{letter}_{kind}" for letter, kind in DIALOGS[size]]
        manner = speaker_manner(rng, difficulty) if difficulty else None
        for i, (label, sentence) in enumerate(zip(labels, sentences)):
            dialog = dialogs[i % len(dialogs)]
            style = _acted_style(rng, label)
            if difficulty:
                params = _overlapping_params(rng, label, style, manner, "_script" in dialog, difficulty)
            else:
                params = _jittered(rng, style)
            params["level"] += level_offset
            extra = {"noise_dbfs": rng.uniform(*difficulty.noise_dbfs)} if difficulty else {}
            utts.append(Utterance(
                speaker=speaker, voice=voice, base_pitch=base_pitch, base_rate=base_rate, label=label,
                sentence=sentence, dialog=dialog,
                lead_sil=rng.uniform(*LEAD_SIL), trail_sil=rng.uniform(*TRAIL_SIL),
                noise_seed=rng.randrange(2 ** 31), **params, **extra))
    # IEMOCAP numbers each speaker's turns within a dialog: Ses01F_impro01_F000, _F001, _M000, ...
    counters = {}
    for u in utts:
        key = (u.dialog, u.speaker[-1])
        n = counters.get(key, 0)
        counters[key] = n + 1
        u.utt_id = f"{u.dialog}_{u.speaker[-1]}{n:03d}"
    return utts


def synthesize(utt):
    """espeak-ng -> sox (bit-exact resampling to 16 kHz, tilt) -> level, silences, noise -> int16."""
    ssml = (f'<speak><prosody pitch="{utt.pitch:+.1f}%" range="{utt.range:+.1f}%" '
            f'rate="{utt.rate:+.1f}%">{escape(utt.sentence)}</prosody></speak>')
    espeak = ["espeak-ng", "-m", "-v", f"en-us+{utt.voice}", "-p", str(utt.base_pitch),
              "-s", str(utt.base_rate), "--stdout", ssml]
    try:
        wav22k = subprocess.run(espeak, check=True, capture_output=True).stdout
        # 32-bit output and half volume leave headroom, so neither rate nor treble clips; -R makes
        # sox repeatable (no random dither seed).
        sox = ["sox", "-R", "-V1", "-t", "wav", "-", "-t", "raw", "-e", "signed-integer", "-b", "32",
               "-c", "1", "-r", str(SAMPLE_RATE), "-", "vol", "0.5", "treble", f"{utt.tilt:+.2f}",
               "rate", "-h", str(SAMPLE_RATE)]
        raw = subprocess.run(sox, input=wav22k, check=True, capture_output=True).stdout
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: not found; install the Debian packages espeak-ng and sox "
                        f"(see requirements-debian.txt)") from err
    except subprocess.CalledProcessError as err:
        raise DataError(f"synthesis of {utt.utt_id} failed: {' '.join(err.cmd[:4])}...: "
                        f"{err.stderr.decode(errors='replace').strip()}") from err
    speech = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2 ** 31
    rms = math.sqrt(float(np.mean(speech ** 2)))
    if rms == 0.0:
        raise DataError(f"espeak-ng produced silence for {utt.utt_id} ({utt.sentence!r})")
    gain = 10 ** (utt.level / 20) / rms
    gain = min(gain, 0.9 / float(np.max(np.abs(speech))))  # loud styles must not clip
    lead = np.zeros(int(utt.lead_sil * SAMPLE_RATE))
    trail = np.zeros(int(utt.trail_sil * SAMPLE_RATE))
    signal = np.concatenate([lead, speech * gain, trail])
    noise = np.random.default_rng(utt.noise_seed).standard_normal(len(signal)) * 10 ** (utt.noise_dbfs / 20)
    samples = np.clip(np.round((signal + noise) * 32768), -32768, 32767).astype(np.int16)
    return samples


def _annotator_lines(rng, utt):
    """C-* (category) and A-* (attribute) lines as IEMOCAP's evaluators wrote them."""
    own = "C-F1" if utt.dialog[5] == "F" else "C-M1"  # the actor wearing markers self-evaluated
    evaluators = ["C-E1", "C-E2", "C-E3", "C-E4"]
    chosen = sorted(rng.sample(evaluators, 3)) + [own]
    if utt.label == "xxx":  # no majority: every evaluator picks something else
        cats = rng.sample(sorted(CATEGORY.values()), len(chosen))
    else:
        majority = CATEGORY[utt.label]
        other = rng.choice(sorted(set(CATEGORY.values()) - {majority}))
        cats = [majority] * len(chosen)
        cats[rng.randrange(len(chosen))] = other
    lines = [f"{who}:\t{cat};\t()" for who, cat in zip(chosen, cats)]
    val, act, dom = VAD[utt.label]
    for who in [c.replace("C-", "A-") for c in chosen]:
        v, a, d = (min(5, max(1, round(x + rng.choice((-1, 0, 0, 1))))) for x in (val, act, dom))
        lines.append(f"{who}:\tval {v}; act {a}; dom  {d};\t()")
    return lines


def write_labels(out, utts, seed):
    """Places each dialog's turns on a time line and writes EmoEvaluation and transcription files."""
    rng = random.Random(seed + 1)
    by_dialog = {}
    for u in utts:
        by_dialog.setdefault(u.dialog, []).append(u)
    for dialog in sorted(by_dialog):
        # Turns alternate between the two speakers as far as their counts allow.
        turns = {"F": [u for u in by_dialog[dialog] if u.speaker.endswith("F")],
                 "M": [u for u in by_dialog[dialog] if u.speaker.endswith("M")]}
        order, who = [], dialog[5]
        while turns["F"] or turns["M"]:
            if not turns[who]:
                who = "M" if who == "F" else "F"
            order.append(turns[who].pop(0))
            who = "M" if who == "F" else "F"
        t = rng.uniform(2.0, 8.0)
        emo_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        trans_lines = []
        for u in order:
            start, end = t, t + len(u.samples) / SAMPLE_RATE
            t = end + rng.uniform(0.3, 2.5)
            v, a, d = VAD[u.label]
            emo_lines.append(f"[{start:.4f} - {end:.4f}]\t{u.utt_id}\t{u.label}\t[{v:.4f}, {a:.4f}, {d:.4f}]")
            emo_lines += _annotator_lines(rng, u)
            emo_lines.append("")
            trans_lines.append(f"{u.utt_id} [{start:08.4f}-{end:08.4f}]: {u.sentence}")
        session_dir = out / f"Session{int(dialog[3:5])}" / "dialog"
        for sub, lines in (("EmoEvaluation", emo_lines), ("transcriptions", trans_lines)):
            (session_dir / sub).mkdir(parents=True, exist_ok=True)
            (session_dir / sub / f"{dialog}.txt").write_text("\n".join(lines) + "\n")


def stamp_text(size: str, seed: int, n_utts: int) -> str:
    return f"demo_iemocap version={GENERATOR_VERSION[size]} size={size} seed={seed} utterances={n_utts}\n"


def make_corpus(out_dir, size="demo", seed=1234, nj=2):
    """Generates the corpus into out_dir unless a complete one with the same settings is there."""
    out = Path(out_dir)
    utts = plan_corpus(size, seed)
    stamp = stamp_text(size, seed, len(utts))
    if corpus_is_complete(out, STAMP_NAME, stamp):
        return False
    # Build in a side directory and rename at the end, so an interrupted run leaves no half corpus.
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log.info("synthesising %d utterances (%s, seed %d) with %d jobs", len(utts), size, seed, nj)
    with concurrent.futures.ThreadPoolExecutor(max_workers=nj) as pool:
        for utt, samples in zip(utts, pool.map(synthesize, utts)):
            utt.samples = samples
            session = f"Session{int(utt.dialog[3:5])}"
            wav_dir = partial / session / "sentences" / "wav" / utt.dialog
            wav_dir.mkdir(parents=True, exist_ok=True)
            write_wav(wav_dir / f"{utt.utt_id}.wav", SAMPLE_RATE, samples)
    write_labels(partial, utts, seed)
    (partial / STAMP_NAME).write_text(stamp)
    if out.exists():
        out.rmdir()
    partial.rename(out)
    counts = {}
    for u in utts:
        counts[u.label] = counts.get(u.label, 0) + 1
    hours = sum(len(u.samples) for u in utts) / SAMPLE_RATE / 3600
    log.info("wrote %s: %d utterances, %.3f h; per label: %s", out, len(utts), hours,
             " ".join(f"{k}={counts[k]}" for k in sorted(counts)))
    return True


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="demo", choices=sorted(SIZES))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--nj", type=int, default=2, help="parallel synthesis jobs")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    make_corpus(args.out_dir, size=args.size, seed=args.seed, nj=args.nj)


if __name__ == "__main__":
    main()
