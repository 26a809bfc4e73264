"""Kaldi data directories: reading and writing their tables, validating, splitting and subsetting.

A data dir holds text tables keyed by the first token of each line (wav.scp, text, utt2spk, spk2utt,
feats.scp, ...), sorted in C-locale byte order, as Kaldi's tools expect.
"""
import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable

from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.archives import check_archives
from pyscripts.kaldi.tables import c_sorted

log = logging.getLogger(__name__)

# Tables keyed by utterance that a data dir may have; they must all cover the same utterances.
# With a `segments` file (utterance -> recording, start, end), wav.scp is keyed by recording.
UTT_TABLES = ("wav.scp", "text", "utt2spk", "feats.scp", "utt2emo", "utt2num_frames", "utt2dur",
              "segments")
SPK_TABLES = ("spk2utt", "spk2gender", "cmvn.scp")
# The options feats.scp was made with: steps/make_feats.sh copies its conf here, so that they travel with
# the features into subsets, splits and the models trained on them.
FEATURE_CONFS = ("conf/fbank.conf", "conf/mfcc.conf")


def read_table(path: Path | str) -> dict[str, str]:
    """Reads a Kaldi table file into {key: rest of line}. Errors on empty keys and duplicates."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    table = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                raise DataError(f"{path}:{lineno}: empty line; remove it")
            key, _, value = line.strip().partition(" ")
            if key in table:
                raise DataError(f"{path}:{lineno}: duplicate key {key!r}; each key must appear once")
            table[key] = value.strip()
    return table


def read_list_table(path: Path | str) -> dict[str, list[str]]:
    """Reads a table whose values are token lists (text, spk2utt)."""
    return {k: v.split() for k, v in read_table(path).items()}


def write_table(path: Path | str, table: dict) -> None:
    """Writes {key: value} (value a string or a list of tokens) sorted in C order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for key in c_sorted(table):
            value = table[key]
            if not isinstance(value, str):
                value = " ".join(str(v) for v in value)
            if not key or any(c.isspace() for c in key):
                raise DataError(f"{path}: invalid key {key!r}: keys must be non-empty, without spaces")
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")
    os.replace(tmp, path)


def new_data_dir(path: Path | str) -> Path:
    """The data dir a preparation stage writes, emptied of what an earlier run left: its tables, the
    features and CMVN a later stage added, its split dirs. A preparation owns the whole dir, so a changed
    set of utterances can never meet the old features (other sub-dirs are left alone)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink() and entry.name.startswith("split"):
            shutil.rmtree(entry)
        elif not entry.is_dir():
            entry.unlink()
    for name in FEATURE_CONFS:  # the options of the features removed above
        (path / name).unlink(missing_ok=True)
    return path


def feature_conf(data_dir: Path | str) -> Path | None:
    """The conf file feats.scp of a data dir was made with (DATA_DIR/conf/fbank.conf or mfcc.conf, written
    by steps/make_feats.sh), or None for a data dir made before they were recorded."""
    found = [Path(data_dir) / name for name in FEATURE_CONFS if (Path(data_dir) / name).is_file()]
    if len(found) > 1:
        raise DataError(f"{data_dir}: both {found[0]} and {found[1]}; only the conf of the features in feats.scp "
                        "may be there: make the features again (steps/make_fbank.sh or steps/make_mfcc.sh)")
    return found[0] if found else None


def check_features(data_dir: Path | str) -> None:
    """Every feats.scp entry lies whole in its ark, with the frame count of utt2num_frames: a truncated
    ark (full disk, killed job) is an error naming the utterance and the ark (headers only are read)."""
    d = Path(data_dir)
    num_frames = read_table(d / "utt2num_frames") if (d / "utt2num_frames").is_file() else None
    check_archives(d / "feats.scp", num_frames, "make the features again (steps/make_fbank.sh, or run.sh's "
                   "stage 4 with --force true)")


def utt2spk_to_spk2utt(utt2spk: dict[str, str]) -> dict[str, list[str]]:
    """Inverts utt2spk into {spk: [utts in C order]}."""
    spk2utt = {}
    for utt in c_sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return spk2utt


def validate_data_dir(data_dir: Path | str, need_feats: bool = False, need_text: bool = False) -> None:
    """Checks a data dir for the mistakes that break Kaldi tools. Raises DataError naming the file."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"{d}: data directory not found; run the data preparation stage first")
    for required in ("utt2spk", "spk2utt") + (("feats.scp",) if need_feats else ()) \
            + (("text",) if need_text else ()):
        if not (d / required).is_file():
            raise DataError(f"{d / required}: missing; a data dir needs it (re-run data preparation)")
    if not (d / "wav.scp").is_file() and not (d / "feats.scp").is_file():
        raise DataError(f"{d}: has neither wav.scp nor feats.scp")
    for name in UTT_TABLES + SPK_TABLES:
        p = d / name
        if not p.is_file():
            continue
        with open(p, "rb") as f:
            keys = [line.split(maxsplit=1)[0] if line.strip() else b"" for line in f]
        if keys != sorted(keys):
            raise DataError(f"{p}: not sorted; sort it with `LC_ALL=C sort -k1,1 -u`")
    utt2spk = read_table(d / "utt2spk")
    if not utt2spk:
        raise DataError(f"{d / 'utt2spk'}: empty data dir")
    for utt, spk in utt2spk.items():
        if not spk or " " in spk:
            raise DataError(f"{d / 'utt2spk'}: utterance {utt} must map to exactly one speaker")
    spk2utt = read_list_table(d / "spk2utt")
    expected = utt2spk_to_spk2utt(utt2spk)
    if {s: sorted(u) for s, u in spk2utt.items()} != {s: sorted(u) for s, u in expected.items()}:
        raise DataError(f"{d / 'spk2utt'}: does not match utt2spk; regenerate it with "
                        f"utils/utt2spk_to_spk2utt.pl or pyscripts.kaldi.datadir.utt2spk_to_spk2utt")
    utts = set(utt2spk)
    segmented = (d / "segments").is_file()
    if segmented:
        _check_segments(d)
    for name in UTT_TABLES:
        p = d / name
        if name == "utt2spk" or not p.is_file() or (segmented and name == "wav.scp"):
            continue
        table = read_table(p)
        if set(table) != utts:
            extra, missing = sorted(set(table) - utts), sorted(utts - set(table))
            raise DataError(f"{p}: utterances differ from utt2spk "
                            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                            f"extra {extra[:3]}{'...' if len(extra) > 3 else ''}); "
                            f"fix the data dir or re-run data preparation")
        if name == "text":
            empty = [u for u, v in table.items() if not v]
            if empty:
                raise DataError(f"{p}: empty transcript for utterance {empty[0]}")
    spks = set(spk2utt)
    for name in ("spk2gender", "cmvn.scp"):
        p = d / name
        if p.is_file() and set(read_table(p)) != spks:
            raise DataError(f"{p}: speakers differ from spk2utt")
    if (d / "spk2gender").is_file():
        bad = {s: g for s, g in read_table(d / "spk2gender").items() if g not in ("m", "f")}
        if bad:
            raise DataError(f"{d / 'spk2gender'}: gender must be m or f, got {bad}")
    if need_feats:
        check_features(d)


def _check_segments(d):
    """segments lines `utt recording start end` name recordings of wav.scp, with 0 <= start < end."""
    recordings = set(read_table(d / "wav.scp")) if (d / "wav.scp").is_file() else None
    for utt, value in read_table(d / "segments").items():
        fields = value.split()
        try:
            ok = len(fields) == 3 and 0 <= float(fields[1]) < float(fields[2])
        except ValueError:
            ok = False
        if not ok:
            raise DataError(f"{d / 'segments'}: utterance {utt}: expected `utt recording start end` "
                            f"with 0 <= start < end (seconds), got {value!r}")
        if recordings is not None and fields[0] not in recordings:
            raise DataError(f"{d / 'segments'}: utterance {utt}: recording {fields[0]} is not in wav.scp")


def subset_data_dir(src: Path | str, utt_ids: Iterable[str], dst: Path | str) -> Path:
    """Writes a data dir with only the utterances utt_ids (and their speakers)."""
    src, dst = Path(src), Path(dst)
    keep = set(utt_ids)
    utt2spk = read_table(src / "utt2spk")
    unknown = keep - set(utt2spk)
    if unknown:
        raise DataError(f"{src}: subset asks for utterances not in the data dir: {sorted(unknown)[:3]}")
    dst.mkdir(parents=True, exist_ok=True)
    for name in UTT_TABLES + SPK_TABLES:  # an earlier subset's tables that src no longer has
        if not (src / name).is_file():
            (dst / name).unlink(missing_ok=True)
    segmented = (src / "segments").is_file()
    for name in UTT_TABLES:
        if (src / name).is_file() and not (segmented and name == "wav.scp"):
            table = read_table(src / name)
            write_table(dst / name, {u: v for u, v in table.items() if u in keep})
    if segmented and (src / "wav.scp").is_file():
        recordings = {v.split()[0] for v in read_table(dst / "segments").values()}
        write_table(dst / "wav.scp", {r: v for r, v in read_table(src / "wav.scp").items() if r in recordings})
    spk2utt = utt2spk_to_spk2utt({u: s for u, s in utt2spk.items() if u in keep})
    write_table(dst / "spk2utt", spk2utt)
    for name in ("spk2gender", "cmvn.scp"):
        if (src / name).is_file():
            table = read_table(src / name)
            write_table(dst / name, {s: v for s, v in table.items() if s in spk2utt})
    for name in FEATURE_CONFS:  # the features' options go with them (none left from an earlier subset)
        (dst / name).unlink(missing_ok=True)
        if (src / name).is_file() and (src / "feats.scp").is_file():
            (dst / name).parent.mkdir(exist_ok=True)
            shutil.copyfile(src / name, dst / name)
    return dst


def split_data(data_dir: Path | str, num_jobs: int, per_speaker: bool = True) -> list[Path]:
    """Splits a data dir into data_dir/splitN/{1..N}, keeping each speaker's utterances together
    (as Kaldi's split_data.sh does) unless per_speaker is False. Returns the split dirs."""
    d = Path(data_dir)
    utt2spk = read_table(d / "utt2spk")
    spk2utt = utt2spk_to_spk2utt(utt2spk)
    units = [spk2utt[s] for s in c_sorted(spk2utt)] if per_speaker else [[u] for u in c_sorted(utt2spk)]
    if len(units) < num_jobs:
        raise DataError(f"{d}: cannot split {len(units)} {'speakers' if per_speaker else 'utterances'} "
                        f"into {num_jobs} jobs; use a smaller --nj")
    # Contiguous chunks with about equal numbers of utterances, as Kaldi splits.
    total = sum(len(u) for u in units)
    parts, start, done = [], 0, 0
    for j in range(num_jobs):
        target = round(total * (j + 1) / num_jobs)
        end = start
        while end < len(units) - (num_jobs - j - 1) and (done < target or end == start):
            done += len(units[end])
            end += 1
        if j == num_jobs - 1:
            end = len(units)
        parts.append([u for unit in units[start:end] for u in unit])
        start = end
    out_dirs = []
    split_root = d / f"split{num_jobs}"
    for j, utts in enumerate(parts, 1):
        out_dirs.append(subset_data_dir(d, utts, split_root / str(j)))
    return out_dirs


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check a data dir")
    v.add_argument("--need-feats", action="store_true")
    v.add_argument("--need-text", action="store_true")
    v.add_argument("data_dir")
    s = sub.add_parser("split", help="split a data dir into N parts")
    s.add_argument("--per-utt", action="store_true", help="split by utterance, not by speaker")
    s.add_argument("data_dir")
    s.add_argument("num_jobs", type=int)
    b = sub.add_parser("subset", help="subset a data dir to the utterances listed in a file")
    b.add_argument("data_dir")
    b.add_argument("utt_list")
    b.add_argument("out_dir")
    args = parser.parse_args()
    if args.cmd == "validate":
        validate_data_dir(args.data_dir, need_feats=args.need_feats, need_text=args.need_text)
        print(f"{args.data_dir}: ok")
    elif args.cmd == "split":
        split_data(args.data_dir, args.num_jobs, per_speaker=not args.per_utt)
    else:
        utts = Path(args.utt_list).read_text().split()
        subset_data_dir(args.data_dir, utts, args.out_dir)


if __name__ == "__main__":
    main()
