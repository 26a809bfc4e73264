"""IEMOCAP data preparation for speech emotion recognition: a Kaldi data dir of the utterances labelled
ang, hap or exc (merged into hap), neu and sad, over the corpus' 10 speakers.

Reads SessionN/dialog/EmoEvaluation/*.txt (the "[start - end]<TAB>utt<TAB>label<TAB>[V, A, D]" lines)
and SessionN/sentences/wav/<dialog>/<utt>.wav. The speaker of an utterance is its session plus the
letter that starts the utterance's last name part: Ses01F_impro01_M003 is spoken by Ses01M (the
dialog's letter only says who wore the motion-capture markers). Utterance ids are prefixed with the
speaker (Ses01M-Ses01F_impro01_M003) so that utt2spk and spk2utt sort alike.

Writes wav.scp, utt2spk, spk2utt, spk2gender, utt2emo and utt2dur. Utterances of other labels (fru,
sur, fea, dis, oth, xxx) are dropped and counted per label in the log. A labelled utterance without a
wav, or a wav without a label, is an error: IEMOCAP labels every sentence wav, so either means a
damaged or partial copy of the corpus.
"""
import argparse
import logging
import re
from collections import Counter
from pathlib import Path

from pyscripts.kaldi.audio import audio_info, wav_scp_entry
from pyscripts.kaldi.datadir import new_data_dir, utt2spk_to_spk2utt, validate_data_dir, write_table
from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# The SER classes (IEMOCAP's four-class protocol, in class-id order; pyscripts/ser/labels.py uses them),
# IEMOCAP's majority labels, and the classes the kept ones map to.
EMOTIONS = ("ang", "hap", "neu", "sad")
ALL_LABELS = ("ang", "hap", "exc", "neu", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
EMOTION_MAP = {**{e: e for e in EMOTIONS}, "exc": "hap"}   # excited counts as happy (the paper's four)

_LABEL_LINE = re.compile(r"^\[\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*\]\s+(\S+)\s+(\S+)\s+\[")
# The corpus' names: speaker Ses01F (session 1, the female actor), utterance Ses01F_impro01_M003 (the
# male actor's 4th turn of a dialog the female actor's recording holds), script lines Ses01F_script01_1_F000.
_UTT_NAME = re.compile(r"^(Ses\d\d)[FM]_\S+_([FM])\d+$")
_SPEAKER = re.compile(r"^(Ses\d\d)[FM]$")
_IMPROVISED = re.compile(r"^Ses\d\d[FM]_impro")
_SCRIPT_LINE = re.compile(r"^Ses\d\d[FM]_(script\d+_\d+[a-z]*)_([FM]\d+)$")


def speaker_of(utt, where):
    """Ses01F_impro01_M003 -> Ses01M. `where` names the file for the error message."""
    m = _UTT_NAME.match(utt)
    if not m:
        raise DataError(f"{where}: utterance name {utt!r} is not IEMOCAP's SesNN[FM]_<dialog>_[FM]NNN")
    return m.group(1) + m.group(2)


def session_of(speaker: str, conf: str = "the fold conf") -> str:
    """Ses01F -> Ses01: the session an IEMOCAP speaker recorded in. `conf` names the file for the error."""
    m = _SPEAKER.match(speaker)
    if not m:
        raise DataError(f"{conf}: speaker {speaker!r} is not IEMOCAP's SesNN[FM], so it has no session; "
                        f"--test-unit=session and --validation=session-partner need IEMOCAP's speakers")
    return m.group(1)


def is_improvised(utt_name: str) -> bool:
    """Whether an utterance name (without a speaker prefix) is from an improvised dialog (_impro)."""
    return bool(_IMPROVISED.match(utt_name))


def script_line(utt_name: str) -> tuple[str, str] | None:
    """(script dialog, line) of a scripted utterance name, e.g. ("script01_1", "F000") for
    Ses01F_script01_1_F000 and Ses03M_script01_1_F000 alike; None for an improvised one."""
    m = _SCRIPT_LINE.match(utt_name)
    return (m.group(1), m.group(2)) if m else None


def read_emo_evaluation(path):
    """{utt: label} from one EmoEvaluation file; the annotator lines (C-*, A-*) are not needed."""
    labels = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.startswith("["):
            continue
        m = _LABEL_LINE.match(line)
        if not m:
            raise DataError(f"{path}:{lineno}: cannot parse label line {line!r}; expected "
                            f"'[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]'")
        utt, label = m.group(3), m.group(4)
        if label not in ALL_LABELS:
            raise DataError(f"{path}:{lineno}: unknown emotion label {label!r} for {utt}; "
                            f"IEMOCAP's labels are {', '.join(ALL_LABELS)}")
        if utt in labels:
            raise DataError(f"{path}:{lineno}: utterance {utt} is labelled twice")
        labels[utt] = label
    return labels


def find_corpus_files(corpus):
    """Label files and wavs of the corpus, checked for the layout IEMOCAP has."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise DataError(f"{corpus}: IEMOCAP corpus directory not found; pass the directory that holds "
                        f"Session1..Session5 (or generate the demo corpus with local/make_demo_iemocap.sh)")
    sessions = sorted(p for p in corpus.glob("Session*") if p.is_dir())
    if not sessions:
        raise DataError(f"{corpus}: no Session* directories; this is not an IEMOCAP release directory")
    label_files = sorted(corpus.glob("Session*/dialog/EmoEvaluation/*.txt"))
    if not label_files:
        raise DataError(f"{corpus}: no Session*/dialog/EmoEvaluation/*.txt label files")
    wavs, hidden = {}, 0
    for wav in sorted(corpus.glob("Session*/sentences/wav/*/*.wav")):
        if wav.name.startswith("."):  # macOS resource forks (._Ses01F...) in some copies
            hidden += 1
            continue
        utt = wav.stem
        if utt in wavs:
            raise DataError(f"{wav}: utterance {utt} also has the wav {wavs[utt]}; remove one")
        wavs[utt] = wav
    if not wavs:
        raise DataError(f"{corpus}: no Session*/sentences/wav/<dialog>/*.wav files")
    if hidden:
        log.info("ignored %d hidden files (names starting with '.') under sentences/wav", hidden)
    return label_files, wavs


def read_labels(corpus):
    """({utterance: label}, {utterance: its label file}, {utterance: wav}) of the corpus; every label
    must have its wav and every wav its label."""
    label_files, wavs = find_corpus_files(corpus)
    labels, label_source = {}, {}
    for path in label_files:
        for utt, label in read_emo_evaluation(path).items():
            if utt in labels:
                raise DataError(f"{path}: utterance {utt} is labelled again (first in {label_source[utt]})")
            if utt not in wavs:
                raise DataError(f"{path}: utterance {utt} has no wav (expected "
                                f"{path.parents[2]}/sentences/wav/<dialog>/{utt}.wav); the corpus copy "
                                f"is incomplete")
            labels[utt] = label
            label_source[utt] = path
    unlabelled = sorted(set(wavs) - set(labels))
    if unlabelled:
        raise DataError(f"{wavs[unlabelled[0]]}: no EmoEvaluation line labels this wav "
                        f"({len(unlabelled)} unlabelled wavs in all); the label files are incomplete")
    return labels, label_source, wavs


def _log_counts(corpus, out, num_labelled, label_counts, dropped, kept, num_speakers, utt2dur):
    log.info("%s: %d labelled utterances: %s", corpus, num_labelled,
             " ".join(f"{k}={label_counts[k]}" for k in sorted(label_counts)))
    log.info("dropped %d utterances not in the 4 classes: %s", sum(dropped.values()),
             " ".join(f"{k}={dropped[k]}" for k in sorted(dropped)) or "none")
    log.info("kept %d utterances of %d speakers in %s (hap includes exc): %s", sum(kept.values()),
             num_speakers, out, " ".join(f"{k}={kept[k]}" for k in sorted(kept)))
    log.info("kept audio: %.2f hours", sum(float(d) for d in utt2dur.values()) / 3600)


def prepare_iemocap(corpus, out_dir):
    """Writes the data dir out_dir from the corpus; returns Counters (label counts, kept classes)."""
    labels, label_source, wavs = read_labels(corpus)
    wav_scp, utt2spk, utt2emo, utt2dur = {}, {}, {}, {}
    label_counts, dropped = Counter(labels.values()), Counter()
    for utt in sorted(labels):
        speaker = speaker_of(utt, label_source[utt])
        emotion = EMOTION_MAP.get(labels[utt])
        if emotion is None:
            dropped[labels[utt]] += 1
            continue
        wav = wavs[utt].resolve()
        if any(c.isspace() for c in str(wav)):
            raise DataError(f"{wav}: path contains white space, which wav.scp cannot hold; move the corpus")
        fmt, rate, channels, num_samples = audio_info(wav)
        if channels != 1:
            raise DataError(f"{wav}: {channels} channels; IEMOCAP's sentence wavs are mono (mix it down first)")
        if rate != SAMPLE_RATE:
            raise DataError(f"{wav}: sample rate {rate} Hz, expected {SAMPLE_RATE}; resample the corpus "
                            f"to 16 kHz (e.g. sox in.wav -r 16000 out.wav)")
        key = f"{speaker}-{utt}"
        wav_scp[key] = wav_scp_entry(wav, fmt)
        utt2spk[key] = speaker
        utt2emo[key] = emotion
        utt2dur[key] = f"{num_samples / rate:.3f}"
    if not utt2spk:
        raise DataError(f"{corpus}: no utterance labelled {', '.join(sorted(EMOTION_MAP))}")

    out = new_data_dir(out_dir)
    write_table(out / "wav.scp", wav_scp)
    write_table(out / "utt2spk", utt2spk)
    write_table(out / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_table(out / "spk2gender", {s: s[-1].lower() for s in set(utt2spk.values())})
    write_table(out / "utt2emo", utt2emo)
    write_table(out / "utt2dur", utt2dur)
    validate_data_dir(out)

    kept = Counter(utt2emo.values())
    _log_counts(corpus, out, len(labels), label_counts, dropped, kept, len(set(utt2spk.values())), utt2dur)
    return label_counts, kept, dropped


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus_dir", help="IEMOCAP release directory (holds Session1..Session5)")
    parser.add_argument("out_dir", help="data dir to write, e.g. data/iemocap/all")
    args = parser.parse_args()
    prepare_iemocap(args.corpus_dir, args.out_dir)


if __name__ == "__main__":
    main()
