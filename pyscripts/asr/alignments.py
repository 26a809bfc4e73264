"""Kaldi alignment dirs (exp/mono_ali, exp/tri3_ali, ...) to per-frame training targets.

Reads the transition model from the dir's final.mdl (Kaldi binary or text, any model type) and the
transition-id alignments ali.*.gz, and does what Kaldi's ali-to-pdf and ali-to-phones do. The
targets dir it writes is what the ConvNet trainer reads: targets.scp/targets.ark (int32 vector of
pdf ids per utterance), num_targets (pdfs in the model) and pdf_counts (frames per pdf).
"""
import argparse
import gzip
import logging
import struct
from pathlib import Path
from typing import Any, Iterable, Iterator

import kaldiio
import numpy as np

from pyscripts.kaldi.datadir import read_table
from pyscripts.kaldi.features import FRAME_SHIFT
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.model import load_transition_model
from pyscripts.kaldi.tables import c_sorted, read_id2symbol, write_kaldi_vector

log = logging.getLogger(__name__)


# -- int-vector archives ---------------------------------------------------------------------------
def _open_maybe_gz(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: alignment archive not found")
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_int_vector_ark(path: Path | str) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (key, int32 array) from a Kaldi int-vector archive, binary or text, gzipped or not."""
    with _open_maybe_gz(path) as f:
        data = f.read()
    pos, n = 0, len(data)
    while pos < n:
        while pos < n and data[pos:pos + 1].isspace():
            pos += 1
        if pos >= n:
            break
        end = data.find(b" ", pos)
        if end < 0:
            raise DataError(f"{path}: truncated archive (key without value at byte {pos})")
        key = data[pos:end].decode("utf-8")
        pos = end + 1
        if data[pos:pos + 2] == b"\0B":
            pos += 2
            if data[pos] != 4:
                raise DataError(f"{path}: utterance {key}: not an int32 vector (size byte {data[pos]})")
            count = struct.unpack_from("<i", data, pos + 1)[0]
            pos += 5
            body = np.frombuffer(data, dtype=np.dtype([("size", "u1"), ("value", "<i4")]),
                                 count=count, offset=pos)
            if count and not np.all(body["size"] == 4):
                raise DataError(f"{path}: utterance {key}: corrupt int32 vector")
            yield key, body["value"].astype(np.int32)
            pos += 5 * count
        else:
            end = data.find(b"\n", pos)
            end = n if end < 0 else end
            try:
                values = [int(x) for x in data[pos:end].split()]
            except ValueError:
                raise DataError(f"{path}: utterance {key}: text value is not a list of integers") from None
            yield key, np.array(values, dtype=np.int32)
            pos = end + 1


def write_int_vector_ark(path: Path | str, items: Iterable[tuple[str, np.ndarray]]) -> None:
    """Writes {key: int vector} as a binary Kaldi archive (gzipped if path ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        for key, vec in items:
            vec = np.asarray(vec, dtype="<i4")
            body = np.empty(len(vec), dtype=np.dtype([("size", "u1"), ("value", "<i4")]))
            body["size"], body["value"] = 4, vec
            f.write(key.encode("utf-8") + b" \0B\x04" + struct.pack("<i", len(vec)) + body.tobytes())


def alignment_files(ali_dir: Path | str) -> list[Path]:
    """The ali.N.gz files of an alignment dir, in job order (num_jobs when present)."""
    ali_dir = Path(ali_dir)
    nj_file = ali_dir / "num_jobs"
    if nj_file.is_file():
        nj = int(nj_file.read_text().split()[0])
        files = [ali_dir / f"ali.{j}.gz" for j in range(1, nj + 1)]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: missing, but {nj_file} says {nj} jobs; re-run the alignment")
        return files
    files = sorted(ali_dir.glob("ali.*.gz"), key=lambda p: int(p.name.split(".")[1]))
    if not files:
        raise DataError(f"{ali_dir}: no ali.*.gz alignments; is it a Kaldi alignment dir?")
    return files


def read_alignments(ali_dir: Path | str) -> dict[str, np.ndarray]:
    """{utt: transition-id array} over all jobs of an alignment dir."""
    alis = {}
    for path in alignment_files(ali_dir):
        for utt, ali in read_int_vector_ark(path):
            if utt in alis:
                raise DataError(f"{path}: utterance {utt} is aligned twice in {ali_dir}")
            alis[utt] = ali
    return alis


# -- ali-to-pdf / ali-to-phones -------------------------------------------------------------------
def _check_ids(tm, tids, utt):
    bad = tids[(tids < 1) | (tids > tm.num_transition_ids)]
    if len(bad):
        raise DataError(f"utterance {utt}: transition-id {int(bad[0])} out of range "
                        f"1..{tm.num_transition_ids}; the alignment does not belong to this final.mdl")


def ali_to_pdf(tm: Any, tids: np.ndarray, utt: str = "?") -> np.ndarray:
    """Per-frame pdf ids (Kaldi's ali-to-pdf)."""
    tids = np.asarray(tids)
    _check_ids(tm, tids, utt)
    return tm.id2pdf[tids].astype(np.int32)


def _is_reordered(tm, tids):
    """Kaldi's test: at a change of transition state, a self-loop last means reordered HMMs."""
    for a, b in zip(tids[:-1], tids[1:]):
        if tm.id2tstate[a] != tm.id2tstate[b]:
            if tm.id_is_self_loop[a]:
                return True
            if tm.id_is_self_loop[b]:
                return False
    return False


def ali_to_phone_segments(tm: Any, tids: np.ndarray, utt: str = "?") -> list[tuple[int, int, int]]:
    """[(phone, first frame, num frames)] of one alignment, split at phone ends as Kaldi's
    SplitToPhones does (handles reordered and non-reordered self-loops)."""
    tids = np.asarray(tids)
    _check_ids(tm, tids, utt)
    reordered = _is_reordered(tm, tids)
    ends, i, n = [], 0, len(tids)
    while i < n:
        tid = tids[i]
        if tm.id_is_final[tid]:
            if reordered:
                while i + 1 < n and tm.id_is_self_loop[tids[i + 1]] and \
                        tm.id2tstate[tids[i + 1]] == tm.id2tstate[tid]:
                    i += 1
            ends.append(i + 1)
        elif i + 1 == n or tm.id2phone[tids[i + 1]] != tm.id2phone[tid]:
            raise DataError(f"utterance {utt}: alignment has a phone that does not end in its final "
                            f"state at frame {i}; the alignment and model do not match")
        i += 1
    segments, start = [], 0
    for end in ends:
        segments.append((int(tm.id2phone[tids[start]]), start, end - start))
        start = end
    return segments


# -- frame counts --------------------------------------------------------------------------------
def data_num_frames(data_dir: Path | str) -> dict[str, int]:
    """{utt: frames} from utt2num_frames, else from the matrices in feats.scp."""
    d = Path(data_dir)
    if (d / "utt2num_frames").is_file():
        table = read_table(d / "utt2num_frames")
        try:
            return {u: int(v) for u, v in table.items()}
        except ValueError:
            raise DataError(f"{d / 'utt2num_frames'}: non-integer frame count") from None
    if not (d / "feats.scp").is_file():
        raise DataError(f"{d}: neither utt2num_frames nor feats.scp; compute features first")
    return {u: m.shape[0] for u, m in kaldiio.load_scp_sequential(str(d / "feats.scp"))}


# -- targets dir ---------------------------------------------------------------------------------
def ali_dir_to_targets(ali_dir: Path | str, data_dir: Path | str, targets_dir: Path | str) -> tuple[int, int]:
    """Writes targets.{ark,scp}, num_targets and pdf_counts; returns (utterances, frames)."""
    ali_dir, targets_dir = Path(ali_dir), Path(targets_dir)
    tm = load_transition_model(ali_dir / "final.mdl")
    num_pdfs = tm.num_pdfs
    log.info("%s/final.mdl: %d phones, %d pdfs, %d transition-ids (%s form)", ali_dir, len(tm.phones),
             num_pdfs, tm.num_transition_ids, "HMM" if tm.is_hmm else "tuples")
    frames = data_num_frames(data_dir)
    alis = read_alignments(ali_dir)
    not_in_data = sorted(set(alis) - set(frames))
    no_ali = sorted(set(frames) - set(alis))
    targets = {}
    for utt in sorted(set(alis) & set(frames)):
        ali = alis[utt]
        if len(ali) != frames[utt]:
            raise DataError(f"utterance {utt}: {len(ali)} frames in the alignments of {ali_dir} but "
                            f"{frames[utt]} in the features of {data_dir}; the alignment must come from "
                            "features with the same frame shift, window and snip-edges setting")
        targets[utt] = ali_to_pdf(tm, ali, utt)
    if not targets:
        raise DataError(f"{ali_dir} and {data_dir} have no utterance in common; align this data dir first")
    if no_ali:
        log.warning("%d of %d utterances of %s have no alignment (failed to align) and get no targets, "
                    "e.g. %s", len(no_ali), len(frames), data_dir, no_ali[:3])
    if not_in_data:
        log.info("%d aligned utterances are not in %s and are not used", len(not_in_data), data_dir)
    targets_dir.mkdir(parents=True, exist_ok=True)
    # Absolute archive path in the scp, so that it reads from any directory.
    ark, scp = targets_dir.resolve() / "targets.ark", targets_dir / "targets.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt, pdfs in targets.items():
            writer(utt, pdfs)
    counts = np.bincount(np.concatenate(list(targets.values())), minlength=num_pdfs)
    (targets_dir / "num_targets").write_text(f"{num_pdfs}\n")
    write_kaldi_vector(targets_dir / "pdf_counts", counts, fmt="{:d}")
    (targets_dir / "ali_dir").write_text(f"{ali_dir}\n")
    n_frames = int(counts.sum())
    unseen = int((counts == 0).sum())
    log.info("wrote %d utterances, %d frames, %d targets (%d never seen) to %s",
             len(targets), n_frames, num_pdfs, unseen, targets_dir)
    return len(targets), n_frames


def write_unaligned(data_dir: Path | str, ali_dir: Path | str) -> int:
    """ALI_DIR/unaligned: the utterances of DATA_DIR without an alignment (they failed to align), one
    per line, so that later stages count them from a file; returns how many."""
    missing = c_sorted(set(read_table(Path(data_dir) / "utt2spk")) - set(read_alignments(ali_dir)))
    (Path(ali_dir) / "unaligned").write_text("".join(f"{u}\n" for u in missing))
    return len(missing)


def ali_dir_to_ctm(ali_dir: Path | str, ctm: Path | str, frame_shift: float = FRAME_SHIFT) -> None:
    """Phone-level CTM (utt 1 start duration phone) of an alignment dir's alignments."""
    ali_dir = Path(ali_dir)
    tm = load_transition_model(ali_dir / "final.mdl")
    id2phone = read_id2symbol(ali_dir / "phones.txt")
    lines = []
    for utt, ali in sorted(read_alignments(ali_dir).items()):
        for phone, start, length in ali_to_phone_segments(tm, ali, utt):
            lines.append(f"{utt} 1 {start * frame_shift:.3f} {length * frame_shift:.3f} {id2phone[phone]}\n")
    Path(ctm).write_text("".join(lines))


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("to-targets", help="ali-to-pdf of an alignment dir into a targets dir")
    t.add_argument("ali_dir")
    t.add_argument("data_dir", help="data dir whose features the targets are for (frame counts)")
    t.add_argument("targets_dir")
    c = sub.add_parser("to-ctm", help="phone CTM of an alignment dir (ali-to-phones --ctm-output)")
    c.add_argument("--frame-shift", type=float, default=FRAME_SHIFT)
    c.add_argument("ali_dir")
    c.add_argument("ctm")
    u = sub.add_parser("unaligned", help="ALI_DIR/unaligned: DATA_DIR's utterances without an alignment; "
                                         "prints their number")
    u.add_argument("data_dir")
    u.add_argument("ali_dir")
    args = parser.parse_args()
    if args.cmd == "to-targets":
        ali_dir_to_targets(args.ali_dir, args.data_dir, args.targets_dir)
    elif args.cmd == "unaligned":
        print(write_unaligned(args.data_dir, args.ali_dir))
    else:
        ali_dir_to_ctm(args.ali_dir, args.ctm, args.frame_shift)


if __name__ == "__main__":
    main()
