"""Whether the archives an scp points to are whole: every `key ark:offset` entry's object lies inside
its ark. Only the headers are read (a few bytes per entry), so a stage can check its outputs each time
it decides whether it is up to date: an ark cut short by a full disk or a killed job is noticed there,
not as a read error in a later stage.

Kaldi's binary objects, as kaldiio and Kaldi's tools write them: "\\0B" then
  FM / DM (float / double matrix): "\\4" rows "\\4" cols, then rows x cols values of 4 / 8 bytes
  FV / DV (vectors): "\\4" n, then n values
  CM / CM2 / CM3 (compressed matrices): a 16-byte header (min, range, rows, cols), then per column
      8 bytes and 1 byte per value (CM), 2 bytes per value (CM2) or 1 byte per value (CM3)
  an integer vector: "\\4" n, then n x ("\\4" int32)
Text objects ("[ ... ]") have no size in their header; they are checked for their start only.
"""
import re
import struct
from pathlib import Path
from typing import Mapping

from pyscripts.errors import DataError

ARK_OFFSET = re.compile(r"^(.*):(\d+)$")  # the `ark:offset` of an scp line
_VALUE_BYTES = {b"FM": 4, b"DM": 8, b"FV": 4, b"DV": 8}


def scp_entries(scp: Path | str) -> list[tuple[str, str, int]]:
    """[(key, ark path, offset)] of the `key ark:offset` lines of an scp (others, e.g. pipes, are left out)."""
    entries = []
    for line in Path(scp).read_text().splitlines():
        key, _, where = line.strip().partition(" ")
        match = ARK_OFFSET.match(where.strip())
        if match:
            entries.append((key, match[1], int(match[2])))
    return entries


def _int32(head, pos):
    """The int32 after a size byte "\\4" at head[pos] (Kaldi's basic-type encoding), or None if cut off."""
    if len(head) < pos + 5 or head[pos] != 4:
        return None
    return struct.unpack("<i", head[pos + 1:pos + 5])[0]


def object_extent(head: bytes) -> tuple[int | None, int | None] | None:
    """(bytes, rows) of the binary Kaldi object whose first bytes are `head` (at least 32 of them when
    the file has them); None for a text object or a type this does not know; (None, None) when `head`
    ends inside the header."""
    if not head.startswith(b"\0B"):
        return None
    if head[2:3] == b"\4":  # an integer vector
        n = _int32(head, 2)
        return (None, None) if n is None else (7 + 5 * n, n)
    token, space, _ = head[2:8].partition(b" ")
    if not space:
        return (None, None) if len(head) < 8 else None
    pos = 3 + len(token)
    if token in (b"FM", b"DM"):
        rows, cols = _int32(head, pos), _int32(head, pos + 5)
        return (None, None) if cols is None else (pos + 10 + rows * cols * _VALUE_BYTES[token], rows)
    if token in (b"FV", b"DV"):
        n = _int32(head, pos)
        return (None, None) if n is None else (pos + 5 + n * _VALUE_BYTES[token], n)
    if token in (b"CM", b"CM2", b"CM3"):
        if len(head) < pos + 16:
            return None, None
        rows, cols = struct.unpack("<ii", head[pos + 8:pos + 16])
        per_value = {b"CM": 1, b"CM2": 2, b"CM3": 1}[token]
        return pos + 16 + (8 * cols if token == b"CM" else 0) + rows * cols * per_value, rows
    return None


def check_archives(scp: Path | str, num_rows: Mapping[str, int | str] | None = None,
                   fix: str = "make it again") -> None:
    """Raises DataError naming the scp, the utterance and the ark when an entry's object does not lie
    whole inside its ark (truncated or overwritten), or when its rows differ from num_rows[key] (e.g.
    utt2num_frames). `fix`: what to do about it, for the message."""
    by_ark = {}
    for key, ark, offset in scp_entries(scp):
        by_ark.setdefault(ark, []).append((key, offset))
    for ark, entries in by_ark.items():
        try:
            with open(ark, "rb") as f:
                size = f.seek(0, 2)
                for key, offset in entries:
                    f.seek(offset)
                    _check_entry(scp, key, ark, offset, size, f.read(32), num_rows, fix)
        except OSError as err:
            raise DataError(f"{scp}: cannot read {ark} ({err.strerror}); {fix}") from None


def _check_entry(scp, key, ark, offset, size, head, num_rows, fix):
    where = f"{scp}: utterance {key}"
    if offset >= size:
        raise DataError(f"{where} starts at byte {offset} of {ark}, which has only {size} bytes: the archive "
                        f"is truncated (a full disk or a killed job?); {fix}")
    extent = object_extent(head)
    if extent is None:
        return
    length, rows = extent
    if length is None or offset + length > size:
        raise DataError(f"{where}: its {'header' if length is None else f'{length}-byte entry'} at byte {offset} "
                        f"of {ark} is cut off (the file has {size} bytes): the archive is truncated (a full "
                        f"disk or a killed job?); {fix}")
    if num_rows is not None and key in num_rows and int(num_rows[key]) != rows:
        raise DataError(f"{where} has {rows} frames in {ark} but {num_rows[key]} in utt2num_frames: the "
                        f"archive was overwritten by other features; {fix}")
