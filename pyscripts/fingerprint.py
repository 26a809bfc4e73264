"""What a step was made from, so that a re-run can tell "up to date" from "redo it, because ...".

The recipe's one freshness mechanism. Each step declares the inputs it reads where it runs, and keeps
their checksums in a stamp file beside its outputs:
  a stage of run.sh           exp/stamps/stageN (its inputs listed with its `run_stage` call)
  a training                  EXP_DIR/final.stamp (pyscripts/nnet/checkpoints.py input_stamp: the config,
                              features, targets, CMVN stats and source model it reads, by role, so that
                              a model moved with its data stays up to date)
  a decode of dev and test    MODEL_DIR/decode.stamp (steps/decode_dev_test.sh)
  a view of the joint model   VIEW_DIR/view.stamp (local/run_joint.sh)
All are read, written and compared here (read_stamp, write_stamp, changed_keys, why_out_of_date).

A stamp lists the step's options and a checksum of each input: files and dirs by content (an scp by
the content of the arks it points to, not their paths; a YAML config with the configs it includes), a
data dir by its tables, a corpus dir by its listing (names, sizes, times: a licensed corpus is read-only
and too large to read on every run).
Checksums are cached by size and modification time, so checking a finished stage reads no data, only the
headers of the matrices its scp outputs point to (a truncated ark is an out-of-date stage, not a finished one).

  python3 -m pyscripts.fingerprint check [--force] STAMP [--input PATH]... [--named NAME PATH]...
      [--data DIR]... [--corpus DIR]... [--option KEY=VALUE]... [--output PATH]...
      exit 0: up to date (same inputs and options, every output there and each scp's arks whole);
      exit 3: out of date, says why, removes STAMP and keeps the new fingerprint as STAMP.new
  python3 -m pyscripts.fingerprint commit STAMP      the stage finished: STAMP.new becomes STAMP
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from pyscripts.config_files import config_chain
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.archives import ARK_OFFSET, check_archives
from pyscripts.kaldi.datadir import check_features

OUT_OF_DATE = 3


def file_digest(path):
    """Checksum of a file's content ('none' for no file): a rewrite with equal content keeps it."""
    if path is None:
        return "none"
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror})") from None
    return h.hexdigest()[:16]


def scp_digest(scp, digest=file_digest):
    """Checksum of the matrices an scp points to: its keys and offsets with the content of its arks (not
    their paths or times, so stages that only rewrite the same features leave it unchanged). Lines that
    name no ark (a wav.scp) count as they are."""
    if not Path(scp).is_file():
        raise DataError(f"{scp} does not exist: run the stage that makes it first")
    h, arks = hashlib.sha256(), {}
    for line in Path(scp).read_text().splitlines():
        key, _, where = line.partition(" ")
        match = ARK_OFFSET.match(where.strip())
        if match and Path(match[1]).is_file():
            ark, offset = match[1], match[2]
            if ark not in arks:
                arks[ark] = digest(ark)
            h.update(f"{key} {arks[ark]} {offset}\n".encode())
        else:
            h.update(f"{line}\n".encode())
    return h.hexdigest()[:16]


class DigestCache:
    """File checksums remembered by path, size and modification time (a JSON file beside the stamps)."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except ValueError:  # a damaged cache only costs reading the files again
            self.entries = {}

    def file(self, path):
        if str(path).endswith(".scp"):  # its arks may change under an unchanged scp: check them
            return scp_digest(path, self.file)
        st = os.stat(path)
        key, when = str(Path(path).resolve()), [st.st_size, st.st_mtime_ns]
        cached = self.entries.get(key)
        if cached and cached[:2] == when:
            return cached[2]
        digest = file_digest(path)
        self.entries[key] = when + [digest]
        return digest

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries))
        tmp.replace(self.path)


def _files_under(root):
    """Files under a dir in a fixed order, skipping logs (never an input, rewritten by every run)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "log")
        for name in sorted(filenames):
            if not name.endswith(".log"):
                yield Path(dirpath) / name


def input_digest(path, cache):
    """Checksum of an input's content: a file, or every file under a dir; 'absent' when there is none."""
    path = Path(path)
    if path.is_file():
        return cache.file(path)
    if not path.is_dir():
        return "absent"
    h = hashlib.sha256()
    for f in _files_under(path):
        h.update(f"{f.relative_to(path)} {cache.file(f)}\n".encode())
    return h.hexdigest()[:16]


FEATURE_FILES = {"feats.scp", "cmvn.scp", "cmvn_global.stats", "utt2num_frames"}


def data_digest(data_dir, cache):
    """Checksum of a Kaldi data dir's tables (text, wav.scp, utt2spk...): its top-level files without the
    features that a later stage adds to it (feats.scp, CMVN, frame counts) and without its split dirs."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return "absent"
    h = hashlib.sha256()
    for f in sorted(data_dir.iterdir()):
        if f.is_file() and f.name not in FEATURE_FILES and not f.name.endswith(".log"):
            h.update(f"{f.name} {cache.file(f)}\n".encode())
    return h.hexdigest()[:16]


def corpus_digest(root):
    """Checksum of a corpus dir's listing: relative names, sizes and modification times."""
    root = Path(root)
    if not root.is_dir():
        return "absent"
    h = hashlib.sha256()
    for f in _files_under(root):
        st = f.stat()
        h.update(f"{f.relative_to(root)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def fingerprint(inputs, data_dirs, corpora, options, cache, named=()):
    """{'option KEY' / 'corpus DIR' / 'data DIR' / 'input PATH' / NAME: value}: what a step is made from.
    named: (NAME, PATH) pairs, inputs keyed by their role instead of their path, so that the stamp holds
    wherever the files are (a model reached through a link, a dir moved with its data)."""
    stamp = {}
    for name, path in named:
        stamp[name] = input_digest(path, cache)
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep:
            raise DataError(f"--option {opt}: expected KEY=VALUE")
        stamp[f"option {key}"] = value
    for path in corpora:
        stamp[f"corpus {path}"] = corpus_digest(path)
    for path in data_dirs:
        stamp[f"data {path}"] = data_digest(path, cache)
    for path in inputs:
        # a config stands for the configs it includes too (base:, network:)
        for part in config_chain(path) if _is_config(path) else [path]:
            stamp.setdefault(f"input {part}", input_digest(part, cache))
    return stamp


def _is_config(path):
    return Path(path).suffix in (".yaml", ".yml") and Path(path).is_file()


def read_stamp(path):
    """{key: checksum or value} of a stamp file; None when there is none or it cannot be read (as if the
    step had never finished). A key and its value are split by a tab (values hold spaces); a final.stamp
    written before 2026-12 splits them by a space, and reads the same."""
    path = Path(path)
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line]
    pairs = [line.split("\t", 1) if "\t" in line else line.split(None, 1) for line in lines]
    return dict(pairs) if all(len(p) == 2 for p in pairs) else None


def stamp_text(stamp):
    return "".join(f"{k}\t{v}\n" for k, v in stamp.items())


def write_stamp(path, stamp):
    tmp = Path(f"{path}.tmp")
    tmp.write_text(stamp_text(stamp))
    tmp.replace(path)


def changed_keys(old, new):
    """The keys of `new` that `old` lacks or holds with another value, then those `old` alone has."""
    return [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]


def why_out_of_date(old, new, outputs=()):
    """'' when the step is up to date, else the reasons (for the console). A key is `KIND NAME` (a
    stage's `input PATH`, `option KEY`...) or a role name (a training's `train_feats`)."""
    if old is None:
        return "no record of a finished run"
    reasons = []
    for key in changed_keys(old, new):
        kind, _, name = key.partition(" ")
        if key not in new:
            reasons.append(f"{name or kind} is no longer an input")
        elif key not in old:
            reasons.append(f"{key} is new")
        else:
            reasons.append(f"option {name} was '{old[key]}', now '{new[key]}'" if kind == "option"
                           else f"{name or kind} changed")
    reasons += [f"{path} is missing" for path in outputs if not Path(path).exists()]
    reasons += [problem for problem in map(_output_problem, outputs) if problem]
    if len(reasons) > 4:
        reasons = reasons[:4] + [f"{len(reasons) - 4} more"]
    return "; ".join(reasons)


def _output_problem(path):
    """Why an output that is there cannot be used: an scp whose arks are cut short (a full disk, a killed
    job: they must not pass for finished features or targets); '' when it is fine."""
    path = Path(path)
    if path.suffix != ".scp" or not path.is_file():
        return ""
    try:
        if path.name == "feats.scp":
            check_features(path.parent)  # with the frame counts of utt2num_frames
        else:
            check_archives(path)
    except DataError as err:
        return str(err).rsplit("; ", 1)[0]  # the stage redoes it: no advice on how
    return ""


def check(args):
    stamp_path = Path(args.stamp)
    stamp_path.parent.mkdir(parents=True, exist_ok=True)
    cache = DigestCache(stamp_path.parent / "digest_cache.json")
    new = fingerprint(args.input, args.data, args.corpus, args.option, cache, args.named)
    cache.save()
    why = "--force" if args.force else why_out_of_date(read_stamp(stamp_path), new, args.output)
    if not why:
        print(f"up to date: its inputs and options are those of its last run ({stamp_path})")
        return 0
    print(f"out of date ({why}): making it again")
    stamp_path.unlink(missing_ok=True)  # an interrupted redo must not pass for a finished one
    write_stamp(f"{stamp_path}.new", new)
    return OUT_OF_DATE


def commit(args):
    pending = Path(f"{args.stamp}.new")
    if not pending.is_file():
        raise DataError(f"{pending}: no fingerprint to commit (run 'check' at the start of the stage)")
    pending.replace(args.stamp)
    return 0


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="is the stage up to date?")
    p.add_argument("--force", action="store_true", help="out of date whatever the inputs")
    p.add_argument("stamp")
    p.add_argument("--input", action="append", default=[], help="a file or dir the stage reads")
    p.add_argument("--data", action="append", default=[], help="a Kaldi data dir (its tables, not its features)")
    p.add_argument("--corpus", action="append", default=[], help="a corpus dir (compared by listing)")
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE the stage's result depends on")
    p.add_argument("--named", nargs=2, action="append", default=[], metavar=("NAME", "PATH"),
                   help="a file or dir the step reads, keyed by its role NAME instead of its path")
    p.add_argument("--output", action="append", default=[], help="a file or dir the stage makes")
    p.set_defaults(func=check)
    p = sub.add_parser("commit", help="the stage finished: keep its fingerprint")
    p.add_argument("stamp")
    p.set_defaults(func=commit)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
