"""TIMIT data preparation: Kaldi data dirs train, dev and test from a TIMIT-layout corpus.

Standard protocol: train = the TRAIN speakers' SI and SX sentences (SA dropped), without any speaker of
the dev or test list; dev and test = the SI and SX sentences of the speakers on the dev list (TIMIT's 50
development speakers) and the test list (the 24 core-test speakers). TEST speakers on neither list are
not used. Everything dropped is counted in the log.

Works with upper- or lower-case file names and with NIST SPHERE or RIFF .WAV files. Writes per set:
  wav.scp         16-bit RIFF as a path; SPHERE and other encodings through `python3 -m pyscripts.kaldi.audio
                  to-wav FILE |`
  text            <utt> 48-phone transcript (61 -> 48 folding of conf/phones.60-48-39.map, q deleted)
  utt2spk spk2utt spk2gender utt2dur
  stm, glm        sclite references (48 phones; scoring folds hypothesis and reference to 39); the
                  glm has no rules
  ref_phones.ctm  the corpus' own segmentation, "<utt> 1 <start s> <dur s> <phone48>" (q left out)
Utterance ids are <speaker>_<sentence> in lower case (fcjf0_si1027), so they sort by speaker.
"""
import argparse
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pyscripts.asr.phones import read_phone_map
from pyscripts.kaldi.audio import audio_info, wav_scp_entry
from pyscripts.kaldi.datadir import new_data_dir, utt2spk_to_spk2utt, validate_data_dir, write_table
from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SETS = ("train", "dev", "test")


@dataclass
class Utt:
    utt_id: str
    spk: str
    folder: str      # train or test (the corpus folder, lower case)
    kind: str        # sa, si or sx
    wav: Path
    phn: Path


def read_speaker_list(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: speaker list not found")
    spks = [line.split()[0].lower() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    dups = sorted(s for s, n in Counter(spks).items() if n > 1)
    if dups:
        raise DataError(f"{path}: speakers listed twice: {dups}")
    if not spks:
        raise DataError(f"{path}: empty speaker list")
    return spks


def _child(parent, name):
    """The entry of parent whose name equals name in any case, or None."""
    for entry in sorted(os.listdir(parent)):
        if entry.lower() == name and (parent / entry).is_dir():
            return parent / entry
    return None


def find_corpus_root(corpus_dir):
    """The folder holding TRAIN and TEST: corpus_dir itself or one of its sub-folders (TIMIT/, data/)."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: TIMIT corpus directory not found; pass the folder that holds "
                        f"TRAIN/ and TEST/ (e.g. --timit-root /data/TIMIT), or generate the demo corpus")
    candidates = [corpus_dir] + [corpus_dir / e for e in sorted(os.listdir(corpus_dir))
                                 if (corpus_dir / e).is_dir()]
    for cand in candidates:
        if _child(cand, "train") and _child(cand, "test"):
            return cand
    raise DataError(f"{corpus_dir}: no TRAIN and TEST folders in it (or in a sub-folder); "
                    f"pass the TIMIT directory that holds them")


def scan_corpus(root):
    """Finds all utterances: {folder}/DR*/{speaker}/{sentence}.{wav,phn}, any case. Returns
    ({utt_id: Utt}, {spk: folder})."""
    utts, spk_folder, other = {}, {}, Counter()
    for folder in ("train", "test"):
        fdir = _child(root, folder)
        for dr in sorted(os.listdir(fdir)):
            dr_dir = fdir / dr
            if not dr_dir.is_dir():
                other[dr_dir.suffix.lower() or dr] += 1
                continue
            for spk_name in sorted(os.listdir(dr_dir)):
                spk_dir = dr_dir / spk_name
                if not spk_dir.is_dir():
                    other[Path(spk_name).suffix.lower() or spk_name] += 1
                    continue
                spk = spk_name.lower()
                if spk in spk_folder:
                    raise DataError(f"{spk_dir}: speaker {spk} appears twice in the corpus")
                spk_folder[spk] = folder
                if spk[0] not in "mf":
                    raise DataError(f"{spk_dir}: a TIMIT speaker folder starts with its sex, M or F")
                files = {}
                for name in sorted(os.listdir(spk_dir)):
                    stem, _, ext = name.partition(".")
                    ext = ext.lower()
                    if ext not in ("wav", "phn"):
                        other["." + ext if ext else name] += 1
                        continue
                    key = (stem.lower(), ext)
                    if key in files:
                        raise DataError(f"{spk_dir / name}: same sentence as {files[key]} (file names "
                                        f"differing only in case); keep one")
                    files[key] = spk_dir / name
                for stem in sorted({s for s, _ in files}):
                    wav, phn = files.get((stem, "wav")), files.get((stem, "phn"))
                    if wav is None or phn is None:
                        have = wav or phn
                        raise DataError(f"{have}: has no matching {'.PHN' if phn is None else '.WAV'} "
                                        f"file; the corpus copy is incomplete")
                    kind = stem[:2]
                    if kind not in ("sa", "si", "sx") or not stem[2:].isdigit():
                        raise DataError(f"{wav}: not a TIMIT sentence name (SA1, SI1027, SX127...)")
                    utt_id = f"{spk}_{stem}"
                    utts[utt_id] = Utt(utt_id, spk, folder, kind, wav, phn)
    if not utts:
        raise DataError(f"{root}: no utterances found under TRAIN/ and TEST/ (<DR>/<SPEAKER>/<SENT>.WAV)")
    if other:
        log.info("ignored other files: %s", ", ".join(f"{n} {k}" for k, n in sorted(other.items())))
    return utts, spk_folder


def read_phn(path, to48):
    """Reads a .PHN file: [(start, end, phone61)]; errors on unknown phones and malformed lines."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DataError(f"{path}:{lineno}: expected 'start end phone', got {line!r}")
        start, end, phone = int(fields[0]), int(fields[1]), fields[2].lower()
        if phone not in to48:
            raise DataError(f"{path}:{lineno}: phone {phone!r} is not one of TIMIT's 61 phones "
                            f"(conf/phones.60-48-39.map); fix the transcription")
        if end < start:
            raise DataError(f"{path}:{lineno}: segment ends ({end}) before it starts ({start})")
        rows.append((start, end, phone))
    if not rows:
        raise DataError(f"{path}: empty phone transcription")
    return rows


def split_speakers(spk_folder, dev_spks, test_spks, dev_list, test_list):
    for lst, spks in ((dev_list, dev_spks), (test_list, test_spks)):
        missing = [s for s in spks if s not in spk_folder]
        if missing:
            raise DataError(f"{lst}: {len(missing)} of its {len(spks)} speakers are not in the corpus: "
                            f"{' '.join(missing)}. For a partial copy or another split, pass speaker lists "
                            f"that go with the corpus: ./run.sh --dev-spk-list FILE --test-spk-list FILE "
                            f"(local/timit_data_prep.sh takes the same options; conf/tiny_timit_*_spk.list "
                            f"are those of the tiny demo corpus)")
    both = sorted(set(dev_spks) & set(test_spks))
    if both:
        raise DataError(f"{dev_list} and {test_list} share speakers {both}; dev and test must be disjoint")
    split = {s: "dev" for s in dev_spks}
    split.update({s: "test" for s in test_spks})
    moved = sorted(s for s in split if spk_folder[s] == "train")
    if moved:
        log.info("%d dev/test speakers come from TRAIN/ and are left out of train: %s", len(moved), moved)
    for spk, folder in spk_folder.items():
        if spk not in split and folder == "train":
            split[spk] = "train"
    return split


def _phones_and_ctm(utt, to48, num_samples, rate, deleted):
    """(48-phone transcript, ref_phones.ctm lines, segments past the audio's end) of one utterance;
    counts the phones without a 48-phone mapping in `deleted`."""
    phones48, lines, past_end = [], [], 0
    for start, end, p61 in read_phn(utt.phn, to48):
        p48 = to48[p61]
        if p48 is None:
            deleted[p61] += 1
            continue
        phones48.append(p48)
        if end > num_samples:
            past_end += 1
        s, e = min(start, num_samples), min(end, num_samples)
        lines.append(f"{utt.utt_id} 1 {s / rate:.4f} {(e - s) / rate:.4f} {p48}")
    if not phones48:
        gone = sorted(p for p, p48 in to48.items() if p48 is None)
        raise DataError(f"{utt.phn}: no phones left after deleting {gone}; the transcription is empty")
    return phones48, lines, past_end


def _write_set(out, tables, ctm, empty_error):
    """One data dir: the tables, spk2utt, spk2gender, glm and ref_phones.ctm, validated."""
    if not tables["utt2spk"]:
        raise DataError(empty_error)
    new_data_dir(out)
    for name, table in tables.items():
        write_table(out / name, table)
    spk2utt = utt2spk_to_spk2utt(tables["utt2spk"])
    write_table(out / "spk2utt", spk2utt)
    write_table(out / "spk2gender", {s: s[0] for s in spk2utt})
    (out / "glm").write_text(";; No rewrite rules: TIMIT phone scoring maps hypothesis and reference\n"
                             ";; 48 -> 39 with conf/phones.60-48-39.map before sclite.\n")
    (out / "ref_phones.ctm").write_text("\n".join(ctm) + "\n")
    validate_data_dir(out, need_text=True)
    minutes = sum(float(d) for d in tables["utt2dur"].values()) / 60
    log.info("%s: %d speakers, %d utterances, %.1f min", out, len(spk2utt), len(tables["utt2spk"]), minutes)


def prepare(corpus_dir, data_dir, dev_list, test_list, phone_map):
    to48, to39 = read_phone_map(phone_map)
    root = find_corpus_root(corpus_dir)
    utts, spk_folder = scan_corpus(root)
    log.info("%s: %d utterances of %d speakers", root, len(utts), len(spk_folder))
    dev_spks, test_spks = read_speaker_list(dev_list), read_speaker_list(test_list)
    split = split_speakers(spk_folder, dev_spks, test_spks, dev_list, test_list)
    unused = sorted(s for s in spk_folder if s not in split)
    if unused:
        log.info("dropped %d TEST speakers on neither list (%d utterances), as the protocol does",
                 len(unused), sum(1 for u in utts.values() if u.spk in set(unused)))
    dropped_sa = Counter()
    tables = {name: {s: {} for s in SETS} for name in ("wav.scp", "text", "utt2spk", "utt2dur", "stm")}
    ctm = {s: [] for s in SETS}
    deleted = Counter()
    past_end = 0
    for utt in sorted(utts.values(), key=lambda u: u.utt_id):
        set_name = split.get(utt.spk)
        if set_name is None:
            continue
        if utt.kind == "sa":
            dropped_sa[set_name] += 1
            continue
        fmt, rate, channels, num_samples = audio_info(utt.wav)
        if rate != SAMPLE_RATE:
            raise DataError(f"{utt.wav}: sample rate {rate} Hz; TIMIT data prep needs {SAMPLE_RATE} Hz "
                            f"audio (resample the corpus, e.g. sox IN -r 16000 OUT)")
        if channels != 1:
            raise DataError(f"{utt.wav}: {channels} channels; TIMIT audio is mono")
        phones48, lines, clipped = _phones_and_ctm(utt, to48, num_samples, rate, deleted)
        ctm[set_name] += lines
        past_end += clipped
        dur = num_samples / rate
        tables["wav.scp"][set_name][utt.utt_id] = wav_scp_entry(utt.wav, fmt)
        tables["text"][set_name][utt.utt_id] = " ".join(phones48)
        tables["utt2spk"][set_name][utt.utt_id] = utt.spk
        tables["utt2dur"][set_name][utt.utt_id] = f"{dur:.4f}"
        tables["stm"][set_name][utt.utt_id] = f"1 {utt.spk} 0.000 {dur:.3f} {' '.join(phones48)}"
    if past_end:
        log.warning("%d phone segments end after the end of their audio (clipped in ref_phones.ctm)",
                    past_end)
    for set_name in SETS:
        _write_set(Path(data_dir) / set_name, {name: per_set[set_name] for name, per_set in tables.items()},
                   ctm[set_name], f"{corpus_dir}: no utterances for {set_name}; check the corpus and the "
                   f"speaker lists {dev_list}, {test_list}")
    log.info("dropped SA utterances: %s", ", ".join(f"{dropped_sa[s]} of {s} speakers" for s in SETS))
    log.info("deleted phones (no 48-phone mapping): %s",
             ", ".join(f"{n} {p}" for p, n in sorted(deleted.items())) or "none")


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev-spk-list", default="conf/timit_dev_spk.list")
    parser.add_argument("--test-spk-list", default="conf/timit_test_spk.list")
    parser.add_argument("--phone-map", default="conf/phones.60-48-39.map")
    parser.add_argument("corpus_dir")
    parser.add_argument("data_dir")
    args = parser.parse_args()
    prepare(args.corpus_dir, args.data_dir, args.dev_spk_list, args.test_spk_list, args.phone_map)


if __name__ == "__main__":
    main()
