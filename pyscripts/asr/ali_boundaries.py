"""Forced-alignment quality against a reference phone segmentation (the demo corpus' synthesiser
segmentation, ref_phones.ctm): the share of phone boundaries within a collar (20 ms) of the
reference, the mean and median offset, the share within the collar once the median offset is
removed, and the share of 10 ms frames with the same phone.

Both CTMs are `utt channel start duration phone`. Where an utterance's two phone sequences are
equal, boundaries pair up in order; otherwise the sequences are aligned (kaldialign) and only
boundaries between two matched phones count, the rest being counted as missed.
"""
import argparse
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import kaldialign
import numpy as np

from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.features import FRAME_SHIFT

log = logging.getLogger(__name__)


def read_ctm(path: Path | str) -> dict[str, list[tuple[str, float, float]]]:
    """{utt: [(phone, start, end)]} in time order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CTM not found")
    segs = defaultdict(list)
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise DataError(f"{path}:{lineno}: expected 'utt channel start duration phone'")
        start, dur = float(parts[2]), float(parts[3])
        segs[parts[0]].append((parts[4], start, start + dur))
    return {u: sorted(s, key=lambda x: x[1]) for u, s in segs.items()}


def boundary_offsets(ref: list, hyp: list) -> tuple[list[float], int]:
    """(offsets hyp - ref in seconds of the paired boundaries, number of reference boundaries)."""
    n_ref = len(ref) - 1
    if [p for p, _, _ in ref] == [p for p, _, _ in hyp]:
        return [h[1] - r[1] for r, h in zip(ref[1:], hyp[1:])], n_ref
    # Pair phones through an alignment of the two label sequences.
    pairs: list[tuple[Any, Any, bool]]
    ri, hi, pairs = 0, 0, []
    for a, b in kaldialign.align([p for p, _, _ in ref], [p for p, _, _ in hyp], "*"):
        pairs.append((ri if a != "*" else None, hi if b != "*" else None, a == b))
        ri += a != "*"
        hi += b != "*"
    offsets = []
    for (r0, h0, ok0), (r1, h1, ok1) in zip(pairs, pairs[1:]):
        if ok0 and ok1 and r1 == r0 + 1 and h1 == h0 + 1:
            offsets.append(hyp[h1][1] - ref[r1][1])
    return offsets, n_ref


def frame_agreement(ref: list, hyp: list, shift: float = FRAME_SHIFT) -> tuple[int, int]:
    """(frames with the same phone, frames) on a 10 ms grid over the reference's span."""
    end = ref[-1][2]
    times = np.arange(0.0, end, shift) + shift / 2

    def labels(segs):
        out = np.full(len(times), "", dtype=object)
        for p, s, e in segs:
            out[(times >= s) & (times < e)] = p
        return out
    r, h = labels(ref), labels(hyp)
    valid = r != ""
    return int(((r == h) & valid).sum()), int(valid.sum())


def evaluate(ref_ctm: Path | str, hyp_ctm: Path | str, collar: float = 0.02) -> dict[str, Any]:
    refs, hyps = read_ctm(ref_ctm), read_ctm(hyp_ctm)
    common = sorted(set(refs) & set(hyps))
    if not common:
        raise DataError(f"{ref_ctm} and {hyp_ctm} share no utterance")
    offsets, n_ref, agree, frames = [], 0, 0, 0
    for utt in common:
        o, n = boundary_offsets(refs[utt], hyps[utt])
        offsets += o
        n_ref += n
        a, f = frame_agreement(refs[utt], hyps[utt])
        agree, frames = agree + a, frames + f
    offsets = np.array(offsets)
    median = float(np.median(offsets)) if len(offsets) else 0.0
    tol = collar + 1e-6
    result = {
        "utterances": len(common), "utterances_without_alignment": len(set(refs) - set(hyps)),
        "boundaries": n_ref, "paired": len(offsets),
        "within_collar": float((np.abs(offsets) <= tol).sum() / n_ref) if n_ref else 0.0,
        "mean_offset": float(offsets.mean()) if len(offsets) else 0.0, "median_offset": median,
        "within_collar_after_median_shift": float((np.abs(offsets - median) <= tol).sum() / n_ref)
        if n_ref else 0.0,
        "frame_agreement": agree / frames if frames else 0.0,
    }
    return result


def report(result: dict[str, Any], collar: float) -> str:
    return (f"boundaries within {collar * 1000:.0f} ms: {100 * result['within_collar']:.1f}% of "
            f"{result['boundaries']} ({result['utterances']} utterances, "
            f"{result['utterances_without_alignment']} without alignment); mean offset "
            f"{1000 * result['mean_offset']:+.1f} ms, median {1000 * result['median_offset']:+.1f} ms; "
            f"within {collar * 1000:.0f} ms after removing the median offset: "
            f"{100 * result['within_collar_after_median_shift']:.1f}%; frames with the same phone: "
            f"{100 * result['frame_agreement']:.1f}%")


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collar", type=float, default=0.02, help="seconds")
    parser.add_argument("ref_ctm")
    parser.add_argument("hyp_ctm")
    args = parser.parse_args()
    print(report(evaluate(args.ref_ctm, args.hyp_ctm, args.collar), args.collar))


if __name__ == "__main__":
    main()
