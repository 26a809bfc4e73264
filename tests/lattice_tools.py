"""Test-only lattice helpers: OpenFst's own reading and shortest path, the references that the
decoder's lattice writer and its one-pass LM-weight sweep (pyscripts/asr/decode.py) are checked against."""
from pathlib import Path

import kaldi_hmm_gmm  # noqa: F401  (import before kaldifst, see pyscripts/asr/decode.py)
import kaldifst


def lattice_from_bytes(data: bytes, tmp_path: Path) -> "kaldifst.Lattice":
    """A kaldifst.Lattice from the OpenFst binary of one lattice (an archive entry after `key `)."""
    Path(tmp_path).write_bytes(data)
    lattice = kaldifst.Lattice.read(str(tmp_path))
    assert lattice is not None, f"{tmp_path}: OpenFst cannot read the lattice"
    return lattice


def best_path_words(lattice: "kaldifst.Lattice", lmwt: float) -> list[int] | None:
    """Word ids of the best path under graph + acoustic / lmwt, by OpenFst's shortest path (the lattice
    is not changed); None when the lattice has no complete path."""
    scaled = lattice.copy()
    kaldifst.scale_lattice([[1.0, 0.0], [0.0, 1.0 / lmwt]], scaled)
    best = kaldifst.shortest_path(scaled)
    if best.num_states == 0:
        return None
    ok, _, words, _ = kaldifst.get_linear_symbol_sequence(best)
    return list(words) if ok else None
