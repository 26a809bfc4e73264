"""Reading Kaldi model objects without Kaldi: the TransitionModel at the head of any final.mdl (GMM
or nnet), and the AmDiagGmm that follows it in a GMM model, in Kaldi's binary and text formats.

Binary format facts used here (Kaldi's base/io-funcs): a binary file starts with "\\0B"; a token is
written followed by one space; an integer or float "basic type" is one size byte then the
little-endian value; an integer vector is one element-size byte, a raw int32 count, then the raw
elements; a float vector is the token FV (DV for double) then a basic-type int32 size and raw values.
"""
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from pyscripts.errors import DataError


class KaldiObjectReader:
    """Sequential reader of Kaldi-serialised objects, binary or text."""

    def __init__(self, data: bytes, name: Path | str = "<bytes>") -> None:
        self.name = str(name)
        self.binary = data[:2] == b"\0B"
        self.data = data
        self.pos = 2 if self.binary else 0

    # -- low level -------------------------------------------------------------------------------
    def _fail(self, what: str) -> NoReturn:
        raise DataError(f"{self.name}: not a valid Kaldi model ({what} at byte {self.pos}); "
                        "it must be a final.mdl written by Kaldi or by this recipe")

    def _skip_space(self):
        while self.pos < len(self.data) and self.data[self.pos:self.pos + 1].isspace():
            self.pos += 1

    def _take(self, n):
        if self.pos + n > len(self.data):
            self._fail("unexpected end of file")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def read_token(self) -> str:
        self._skip_space()
        start = self.pos
        while self.pos < len(self.data) and not self.data[self.pos:self.pos + 1].isspace():
            self.pos += 1
        if start == self.pos:
            self._fail("unexpected end of file")
        token = self.data[start:self.pos].decode("latin-1")
        if self.binary:
            self.pos += 1  # the single space that ends a binary token
        return token

    def peek_token(self) -> str:
        saved = self.pos
        try:
            return self.read_token()
        finally:
            self.pos = saved

    def expect_token(self, expected: str) -> None:
        token = self.read_token()
        if token != expected:
            self._fail(f"expected {expected}, got {token!r}")

    def read_int(self) -> int:
        if self.binary:
            size = self._take(1)[0]
            if size != 4:
                self._fail(f"expected a 4-byte integer, size byte {size}")
            return struct.unpack("<i", self._take(4))[0]
        token = self.read_token()
        try:
            return int(token)
        except ValueError:
            self._fail(f"expected an integer, got {token!r}")

    def read_float(self) -> float:
        if self.binary:
            size = self._take(1)[0]
            if size == 4:
                return struct.unpack("<f", self._take(4))[0]
            if size == 8:
                return struct.unpack("<d", self._take(8))[0]
            self._fail(f"expected a float, size byte {size}")
        token = self.read_token()
        try:
            return float(token)
        except ValueError:
            self._fail(f"expected a number, got {token!r}")

    def read_int_vector(self) -> list[int]:
        """WriteIntegerVector's format; text form is `[ 1 2 3 ]`."""
        if self.binary:
            size = self._take(1)[0]
            if size != 4:
                self._fail(f"expected int32 vector, element size {size}")
            n = struct.unpack("<i", self._take(4))[0]
            return list(struct.unpack(f"<{n}i", self._take(4 * n)))
        self.expect_token("[")
        out = []
        while (token := self.read_token()) != "]":
            out.append(int(token))
        return out

    def read_vector(self) -> np.ndarray:
        """Kaldi Vector<float|double>; text form is `[ 1.5 2 ]`."""
        if self.binary:
            kind = self.read_token()
            if kind not in ("FV", "DV"):
                self._fail(f"expected FV or DV, got {kind!r}")
            n = self.read_int()
            fmt, width = ("<f", 4) if kind == "FV" else ("<d", 8)
            return np.frombuffer(self._take(width * n), dtype=fmt).astype(np.float64)
        self.expect_token("[")
        out = []
        while (token := self.read_token()) != "]":
            out.append(float(token))
        return np.array(out, dtype=np.float64)

    def read_matrix(self) -> np.ndarray:
        """Kaldi Matrix<float|double>; text form is `[` then one row a line, `]` after the last."""
        if self.binary:
            kind = self.read_token()
            if kind not in ("FM", "DM"):
                self._fail(f"expected FM or DM, got {kind!r}")
            rows, cols = self.read_int(), self.read_int()
            fmt, width = ("<f", 4) if kind == "FM" else ("<d", 8)
            return np.frombuffer(self._take(width * rows * cols), dtype=fmt).astype(
                np.float64).reshape(rows, cols)
        self.expect_token("[")
        end = self.data.find(b"]", self.pos)
        if end < 0:
            self._fail("matrix without closing ]")
        rows = [line.split() for line in self.data[self.pos:end].decode("latin-1").splitlines()]
        rows = [[float(x) for x in r] for r in rows if r]
        self.pos = end + 1
        if rows and any(len(r) != len(rows[0]) for r in rows):
            self._fail("matrix rows of different lengths")
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else 0)


# -- TransitionModel ------------------------------------------------------------------------------
@dataclass
class HmmState:
    forward_pdf_class: int
    self_loop_pdf_class: int
    transitions: list  # [(destination state, probability)]


@dataclass
class TransitionModel:
    """Kaldi's TransitionModel: the topology per phone, one tuple (phone, hmm_state, forward_pdf,
    self_loop_pdf) per transition state, and one log-probability per transition-id."""
    phone2entry: dict            # phone -> index into entries
    entries: list                # list of [HmmState]
    tuples: list                 # [(phone, hmm_state, forward_pdf, self_loop_pdf)], transition-state - 1
    log_probs: np.ndarray        # indexed by transition-id (entry 0 unused)
    is_hmm: bool = True          # False for the <Tuples> form (separate self-loop pdfs)
    # Derived tables, indexed by transition-id (index 0 is a placeholder).
    id2pdf: np.ndarray = field(init=False)
    id2phone: np.ndarray = field(init=False)
    id2hmm_state: np.ndarray = field(init=False)
    id2tstate: np.ndarray = field(init=False)
    id_is_self_loop: np.ndarray = field(init=False)
    id_is_final: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        id2pdf, id2phone, id2hmm, id2ts, loop, final = [-1], [0], [-1], [0], [False], [False]
        for tstate, (phone, hmm_state, fwd_pdf, loop_pdf) in enumerate(self.tuples, 1):
            if phone not in self.phone2entry:
                raise DataError(f"transition model: phone {phone} has no topology entry")
            entry = self.entries[self.phone2entry[phone]]
            if not 0 <= hmm_state < len(entry):
                raise DataError(f"transition model: phone {phone} has no HMM state {hmm_state}")
            for dest, _ in entry[hmm_state].transitions:
                is_loop = dest == hmm_state
                id2pdf.append(loop_pdf if is_loop else fwd_pdf)
                id2phone.append(phone)
                id2hmm.append(hmm_state)
                id2ts.append(tstate)
                loop.append(is_loop)
                # A transition into the phone's last (non-emitting) state ends the phone.
                final.append(dest == len(entry) - 1)
        self.id2pdf = np.array(id2pdf, dtype=np.int64)
        self.id2phone = np.array(id2phone, dtype=np.int64)
        self.id2hmm_state = np.array(id2hmm, dtype=np.int64)
        self.id2tstate = np.array(id2ts, dtype=np.int64)
        self.id_is_self_loop = np.array(loop, dtype=bool)
        self.id_is_final = np.array(final, dtype=bool)
        if len(self.log_probs) != len(self.id2pdf):
            raise DataError(f"transition model: {len(self.log_probs) - 1} log-probs for "
                            f"{len(self.id2pdf) - 1} transition-ids")

    @property
    def num_transition_ids(self) -> int:
        return len(self.id2pdf) - 1

    @property
    def num_pdfs(self) -> int:
        return 1 + max(max(t[2], t[3]) for t in self.tuples)

    @property
    def phones(self) -> list[int]:
        return sorted(self.phone2entry)

    def topology_text(self) -> str:
        """The topology in Kaldi's text format (readable by kaldi_hmm_gmm.HmmTopology.read)."""
        lines = ["<Topology>"]
        for idx, entry in enumerate(self.entries):
            phones = sorted(p for p, e in self.phone2entry.items() if e == idx)
            lines += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, phones)), "</ForPhones>"]
            for s, st in enumerate(entry):
                parts = [f"<State> {s}"]
                if st.forward_pdf_class != -1:
                    if self.is_hmm:
                        parts.append(f"<PdfClass> {st.forward_pdf_class}")
                    else:
                        parts.append(f"<ForwardPdfClass> {st.forward_pdf_class} "
                                     f"<SelfLoopPdfClass> {st.self_loop_pdf_class}")
                parts += [f"<Transition> {d} {p:.9g}" for d, p in st.transitions]
                lines.append(" ".join(parts) + " </State>")
            lines.append("</TopologyEntry>")
        lines.append("</Topology>")
        return "\n".join(lines) + "\n"


def _read_topology(r):
    r.expect_token("<Topology>")
    phone2entry, entries = {}, []
    if r.binary:
        phones = r.read_int_vector()
        phone2idx = r.read_int_vector()
        n = r.read_int()
        is_hmm = True
        if n == -1:  # the marker of the extended format with separate self-loop pdf classes
            is_hmm, n = False, r.read_int()
        for _ in range(n):
            entry = []
            for _ in range(r.read_int()):
                fwd = r.read_int()
                loop = fwd if is_hmm else r.read_int()
                trans = [(r.read_int(), r.read_float()) for _ in range(r.read_int())]
                entry.append(HmmState(fwd, loop, trans))
            entries.append(entry)
        for p in phones:
            if p >= len(phone2idx) or not 0 <= phone2idx[p] < len(entries):
                r._fail(f"phone {p} has no topology entry")
            phone2entry[p] = phone2idx[p]
        r.expect_token("</Topology>")
        return phone2entry, entries
    while (token := r.read_token()) != "</Topology>":
        if token != "<TopologyEntry>":
            r._fail(f"expected <TopologyEntry>, got {token!r}")
        r.expect_token("<ForPhones>")
        phones = []
        while (token := r.read_token()) != "</ForPhones>":
            phones.append(int(token))
        entry = []
        token = r.read_token()
        while token != "</TopologyEntry>":
            if token != "<State>":
                r._fail(f"expected <State>, got {token!r}")
            if r.read_int() != len(entry):
                r._fail("HMM states out of order")
            fwd = loop = -1
            token = r.read_token()
            if token == "<PdfClass>":
                fwd = loop = r.read_int()
                token = r.read_token()
            elif token == "<ForwardPdfClass>":
                fwd = r.read_int()
                r.expect_token("<SelfLoopPdfClass>")
                loop = r.read_int()
                token = r.read_token()
            trans = []
            while token == "<Transition>":
                trans.append((r.read_int(), r.read_float()))
                token = r.read_token()
            if token != "</State>":
                r._fail(f"expected </State>, got {token!r}")
            entry.append(HmmState(fwd, loop, trans))
            token = r.read_token()
        for p in phones:
            phone2entry[p] = len(entries)
        entries.append(entry)
    return phone2entry, entries


def read_transition_model(r: KaldiObjectReader) -> TransitionModel:
    """Reads a <TransitionModel> block at the reader's position."""
    r.expect_token("<TransitionModel>")
    phone2entry, entries = _read_topology(r)
    kind = r.read_token()
    if kind not in ("<Triples>", "<Tuples>"):
        r._fail(f"expected <Triples> or <Tuples>, got {kind!r}")
    is_hmm = kind == "<Triples>"
    tuples = []
    for _ in range(r.read_int()):
        phone, hmm_state, fwd = r.read_int(), r.read_int(), r.read_int()
        tuples.append((phone, hmm_state, fwd, fwd if is_hmm else r.read_int()))
    r.expect_token("</Triples>" if is_hmm else "</Tuples>")
    r.expect_token("<LogProbs>")
    log_probs = r.read_vector()
    r.expect_token("</LogProbs>")
    r.expect_token("</TransitionModel>")
    return TransitionModel(phone2entry, entries, tuples, log_probs, is_hmm)


# -- AmDiagGmm ------------------------------------------------------------------------------------
@dataclass
class DiagGmmParams:
    gconsts: np.ndarray
    weights: np.ndarray
    means_invvars: np.ndarray
    inv_vars: np.ndarray

    @property
    def means(self) -> np.ndarray:
        return self.means_invvars / self.inv_vars


def _read_diag_gmm(r):
    r.expect_token("<DiagGMM>")
    fields = {}
    while (token := r.read_token()) != "</DiagGMM>":
        if token == "<GCONSTS>":
            fields["gconsts"] = r.read_vector()
        elif token == "<WEIGHTS>":
            fields["weights"] = r.read_vector()
        elif token == "<MEANS_INVVARS>":
            fields["means_invvars"] = r.read_matrix()
        elif token == "<INV_VARS>":
            fields["inv_vars"] = r.read_matrix()
        else:
            r._fail(f"unexpected token {token!r} in <DiagGMM>")
    missing = {"weights", "means_invvars", "inv_vars"} - set(fields)
    if missing:
        r._fail(f"<DiagGMM> without {sorted(missing)}")
    fields.setdefault("gconsts", np.zeros(len(fields["weights"])))
    return DiagGmmParams(**fields)


def read_am_diag_gmm(r: KaldiObjectReader) -> tuple[int, list[DiagGmmParams]]:
    """Reads the AmDiagGmm (<DIMENSION> <NUMPDFS> and one <DiagGMM> per pdf) at the reader's position."""
    r.expect_token("<DIMENSION>")
    dim = r.read_int()
    r.expect_token("<NUMPDFS>")
    num_pdfs = r.read_int()
    gmms = [_read_diag_gmm(r) for _ in range(num_pdfs)]
    for i, g in enumerate(gmms):
        if g.means_invvars.shape[1] != dim:
            r._fail(f"pdf {i} has dimension {g.means_invvars.shape[1]}, model says {dim}")
    return dim, gmms


def open_model(path: Path | str) -> KaldiObjectReader:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    return KaldiObjectReader(path.read_bytes(), path)


def load_transition_model(path: Path | str) -> TransitionModel:
    """The TransitionModel of a Kaldi model file (final.mdl of any kind), binary or text."""
    return read_transition_model(open_model(path))


def load_gmm_model(path: Path | str) -> tuple[TransitionModel, int, list[DiagGmmParams]]:
    """(TransitionModel, feature dim, [DiagGmmParams]) of a GMM final.mdl, binary or text."""
    r = open_model(path)
    tm = read_transition_model(r)
    if r.peek_token() != "<DIMENSION>":
        raise DataError(f"{path}: no AmDiagGmm after the transition model; is it a GMM model?")
    dim, gmms = read_am_diag_gmm(r)
    if len(gmms) != tm.num_pdfs:
        raise DataError(f"{path}: {len(gmms)} GMMs but the transition model has {tm.num_pdfs} pdfs")
    return tm, dim, gmms


def read_tree_context(path: Path | str) -> tuple[int, int]:
    """(context width N, central position P) from a Kaldi tree file, binary or text."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: tree file not found")
    r = KaldiObjectReader(path.read_bytes(), path)
    r.expect_token("ContextDependency")
    return r.read_int(), r.read_int()
