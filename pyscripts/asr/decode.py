"""Decoding pseudo log-likelihoods with an HCLG graph, embedded backend.

The decoders score the graph's input labels, transition-ids, through kaldi-decoder's DecodableCtc,
which gives ilabel i at frame t the value matrix[t][i-1] and applies no acoustic scale. So each
utterance's (frames x pdfs) log-likelihood matrix is expanded into (frames x transition-ids) with
column tid-1 = acoustic_scale * loglike[pdf(tid)], pdf(tid) from the transition model of final.mdl:
the mapping and scaling of Kaldi's latgen-faster-mapped (DecodableMatrixScaledMapped).

Decoders (--decoder):
  lattice         kaldi-decoder's LatticeSimpleDecoder (--beam, --lattice-beam): the only wheel
                  decoder that returns a lattice. Default. It has no max-active / min-active; these
                  cannot matter while the graph has fewer states than max-active, since a decoder
                  holds at most one token per graph state and frame (the demo's phone-bigram HCLG
                  has 128 states). NB: with fewer states than min-active (200), Kaldi's
                  latgen-faster search does no beam pruning at all, this one prunes at --beam.
  faster          kaldi-decoder's FasterDecoder (--beam, --max-active, --min-active): best path
                  only, like Kaldi's decode-faster-mapped; about 30 times faster than `lattice`.

Lattices (decoder `lattice`) are written as lat.JOB.gz, a gzipped Kaldi archive of binary raw
(state-level, not determinised) lattices: input labels transition-ids, output labels words,
weights (graph cost, acoustic cost) with the acoustic scale taken out again, in the format
latgen-faster-mapped --determinize-lattice=false writes them; Kaldi's lattice tools read them, and
read_lattice_ark reads Kaldi's (raw or compact).
Not being determinised, they are large (about 9 kB per frame at --lattice-beam 8 with a weak
network, 3 kB gzipped); a smaller --lattice-beam shrinks them quickly.

The language-model-weight sweep (best-paths) does on those lattices what Kaldi's scoring does with
lattice-scale --inv-acoustic-scale=LMWT | lattice-add-penalty --word-ins-penalty=WIP |
lattice-best-path: the best path under graph + WIP * words + acoustic / LMWT (acoustic scale
1/LMWT), for every LMWT and WIP. One dynamic programme over each lattice serves all settings at
once (sweep_lattice; it equals OpenFst's shortest path on the same lattice, see the tests).

Command line:
  python3 -m pyscripts.asr.decode decode [opts] HCLG TRANS_MDL LOGLIKES_ARK DECODE_DIR JOB
  python3 -m pyscripts.asr.decode best-paths [--lmwt 1:20] [--wip 0.0,0.5,1.0] DECODE_DIR OUT_DIR
"""
import argparse
import gzip
import logging
import struct
import tempfile
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import kaldi_hmm_gmm  # noqa: F401  (import before kaldifst and kaldi_decoder, see the wheel notes)
import kaldi_decoder
import kaldifst
import kaldiio
import numpy as np

from pyscripts.asr.decode_conf import DecodeConf
from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.kaldi.features import FRAME_SHIFT
from pyscripts.kaldi.tables import c_sorted, read_id2symbol
from pyscripts.progress import Progress

log = logging.getLogger(__name__)

DECODERS = ("lattice", "faster")


_CONF = DecodeConf()


@dataclass
class DecoderOptions:
    """The decoding search of the hybrid; its defaults are the decode conf's (pyscripts/asr/decode_conf.py
    DecodeConf, conf/decode.conf)."""
    acoustic_scale: float = _CONF.acwt
    beam: float = _CONF.beam
    lattice_beam: float = _CONF.lattice_beam
    max_active: int = _CONF.max_active
    min_active: int = _CONF.min_active
    decoder: str = "lattice"  # one of DECODERS

    @classmethod
    def from_conf(cls, conf: DecodeConf, decoder: str = "lattice") -> "DecoderOptions":
        """The hybrid search of a decode conf (read_decode_conf)."""
        return cls(conf.acwt, conf.beam, conf.lattice_beam, conf.max_active, conf.min_active, decoder)


# -- transition-ids -> pdfs -----------------------------------------------------------------------
def load_tid2pdf(trans_mdl: Path | str) -> np.ndarray:
    """pdf of transition-id 1..N as an array of length N (entry k is pdf(k+1)), from a final.mdl
    (Kaldi binary or text, read by pyscripts.kaldi.model)."""
    from pyscripts.kaldi.model import load_transition_model
    tm = load_transition_model(trans_mdl)
    return np.asarray(tm.id2pdf[1:], dtype=np.int64)  # drop the placeholder for transition-id 0


def expand_to_tids(loglikes: np.ndarray, tid2pdf: np.ndarray, acoustic_scale: float) -> np.ndarray:
    """(frames x pdfs) -> (frames x transition-ids): column tid-1 = acoustic_scale * loglike[pdf(tid)]."""
    loglikes = np.asarray(loglikes, dtype=np.float32)
    if loglikes.ndim != 2:
        raise DataError(f"log-likelihoods must be a matrix, got shape {loglikes.shape}")
    if loglikes.shape[1] != tid2pdf.max() + 1:  # as Kaldi's DecodableMatrixScaledMapped checks
        raise DataError(f"the transition model has {tid2pdf.max() + 1} pdfs but the log-likelihoods "
                        f"have {loglikes.shape[1]} columns: network and final.mdl do not match")
    return np.ascontiguousarray(np.float32(acoustic_scale) * loglikes[:, tid2pdf])


# -- decoders -------------------------------------------------------------------------------------
@dataclass
class DecodeResult:
    words: list            # word ids of the best path
    reached_final: bool    # False: partial output (no final state active at the last frame)
    lattice: object        # kaldifst.Lattice with the acoustic scale removed, or None
    graph_cost: float
    acoustic_cost: float   # unscaled (acoustic log-likelihood of the best path is minus this)


def read_graph(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: decoding graph not found; build it first (HCLG.fst in the graph dir)")
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None or fst.num_states == 0:
        raise DataError(f"{path}: not a readable, non-empty OpenFst file")
    return fst


class GraphDecoder:
    """One decoder over one graph, reused for every utterance."""

    def __init__(self, graph: Any, tid2pdf: np.ndarray, opts: DecoderOptions = DecoderOptions()) -> None:
        if opts.decoder not in DECODERS:
            raise DataError(f"unknown decoder {opts.decoder!r}; choose one of {', '.join(DECODERS)}")
        self.graph = read_graph(graph) if isinstance(graph, (str, Path)) else graph
        self.tid2pdf = np.asarray(tid2pdf)
        self.acoustic_scale = opts.acoustic_scale
        self.kind = opts.decoder
        if opts.decoder == "lattice":
            cfg = kaldi_decoder.LatticeSimpleDecoderConfig(beam=opts.beam, lattice_beam=opts.lattice_beam)
            self.decoder = kaldi_decoder.LatticeSimpleDecoder(self.graph, cfg)
        else:
            faster = kaldi_decoder.FasterDecoderOptions(beam=opts.beam, max_active=opts.max_active,
                                                        min_active=opts.min_active)
            self.decoder = kaldi_decoder.FasterDecoder(self.graph, faster)

    def decode(self, loglikes: np.ndarray, utt: str = "utt") -> DecodeResult:
        matrix = expand_to_tids(loglikes, self.tid2pdf, self.acoustic_scale)
        if len(matrix) == 0:
            return DecodeResult([], False, None, 0.0, 0.0)
        decodable = kaldi_decoder.DecodableCtc(matrix)
        self.decoder.decode(decodable)
        if self.kind == "lattice":
            reached_final = np.isfinite(self.decoder.final_relative_cost())
        else:
            reached_final = bool(self.decoder.reached_final())
        # With no final state active, Kaldi's decoders return the best partial path (allow-partial).
        ok, best = self.decoder.get_best_path(use_final_probs=reached_final)
        if not ok or best.num_states == 0:
            return DecodeResult([], False, None, float("inf"), float("inf"))
        _, _, words, weight = kaldifst.get_linear_symbol_sequence(best)
        lattice = None
        if self.kind == "lattice":
            ok, lattice = self.decoder.get_raw_lattice(use_final_probs=reached_final)
            if ok:
                kaldifst.scale_lattice([[1.0, 0.0], [0.0, 1.0 / self.acoustic_scale]], lattice)
            else:
                lattice = None
        return DecodeResult(list(words), reached_final, lattice, weight.value1,
                            weight.value2 / self.acoustic_scale)


# -- Kaldi lattice archives -----------------------------------------------------------------------
# Kaldi's lattice holders write an archive entry as `key ` followed directly by the OpenFst binary
# (its magic number is the binary marker: no `\0B`). Two arc types occur: raw state-level lattices
# (`lattice4`: weight = graph, acoustic cost) and compact lattices (`compactlattice44`, latgen's
# determinised output: the weight also carries the arc's transition-ids).
_FST_MAGIC = 2125659606
_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("graph", "<f4"), ("acoustic", "<f4"),
                 ("nextstate", "<i4")])
_ARC_TYPES = ("lattice4", "compactlattice44")


def lattice_to_bytes(lattice: Any, tmp_path: Path | str) -> bytes:
    """OpenFst binary of a kaldifst.Lattice (what Kaldi writes after `key `)."""
    if not lattice.write(str(tmp_path)):
        raise DataError(f"{tmp_path}: cannot write a temporary lattice file")
    return Path(tmp_path).read_bytes()


def _read_string(data, pos):
    n = struct.unpack_from("<i", data, pos)[0]
    return data[pos + 4:pos + 4 + n].decode("latin-1"), pos + 4 + n


@dataclass
class RawLattice:
    """A lattice as arrays, arcs in state order (src ascending); for a compact lattice ilabel =
    olabel = the word and the transition-ids are dropped (best paths need only words and costs)."""
    start: int
    final: np.ndarray   # (states, 2) float32 final (graph, acoustic) costs; inf: not final
    src: np.ndarray     # (arcs,) source state of every arc
    arcs: np.ndarray    # (arcs,) _ARC records: ilabel, olabel, graph, acoustic, nextstate

    @property
    def num_states(self) -> int:
        return len(self.final)


def _read_states_raw(data, p, num_states):
    """States of a lattice4 VectorFst: fixed-size records, arcs sliced out as whole blocks."""
    final = np.empty((num_states, 2), dtype=np.float32)
    narcs = np.empty(num_states, dtype=np.int64)
    chunks = []
    for s in range(num_states):
        final[s] = struct.unpack_from("<ff", data, p)
        narcs[s] = struct.unpack_from("<q", data, p + 8)[0]
        p += 16
        if narcs[s]:
            chunks.append(data[p:p + int(narcs[s]) * _ARC.itemsize])
            p += int(narcs[s]) * _ARC.itemsize
    return p, final, narcs, np.frombuffer(b"".join(chunks), dtype=_ARC)


def _read_states_compact(data, p, num_states):
    """States of a compactlattice44 VectorFst: every weight is followed by its transition-id string
    (int32 length + ids), so records vary in size."""
    final = np.empty((num_states, 2), dtype=np.float32)
    narcs = np.empty(num_states, dtype=np.int64)
    arcs = []
    for s in range(num_states):
        g, a, n = struct.unpack_from("<ffi", data, p)
        final[s] = g, a
        p += 12 + 4 * n
        narcs[s] = struct.unpack_from("<q", data, p)[0]
        p += 8
        for _ in range(narcs[s]):
            ilabel, olabel, g, a, n = struct.unpack_from("<iiffi", data, p)
            p += 20 + 4 * n
            arcs.append((ilabel, olabel, g, a, struct.unpack_from("<i", data, p)[0]))
            p += 4
    return p, final, narcs, np.array(arcs, dtype=_ARC)


def parse_lattice_binary(data: bytes, pos: int = 0, where: str = "lattice") -> tuple[int, RawLattice]:
    """Reads an OpenFst VectorFst binary with Kaldi lattice arcs (raw or compact) at data[pos:] ->
    (end position, RawLattice). Raises DataError for other FST types and for truncated data."""
    try:
        if struct.unpack_from("<i", data, pos)[0] != _FST_MAGIC:
            raise DataError(f"{where}: not an OpenFst binary")
        fst_type, p = _read_string(data, pos + 4)
        arc_type, p = _read_string(data, p)
        if fst_type != "vector" or arc_type not in _ARC_TYPES:
            raise DataError(f"{where}: a {fst_type} FST with {arc_type} arcs; expected a Kaldi lattice "
                            f"(vector FST, arcs {' or '.join(_ARC_TYPES)})")
        _version, flags = struct.unpack_from("<ii", data, p)
        if flags & 3:
            raise DataError(f"{where}: lattice with symbol tables is not supported")
        p += 8 + 8  # version, flags, properties
        start, num_states, _num_arcs = struct.unpack_from("<qqq", data, p)
        p += 24
        read_states = _read_states_raw if arc_type == "lattice4" else _read_states_compact
        p, final, narcs, arcs = read_states(data, p, num_states)
        if p > len(data):
            raise DataError(f"{where}: truncated lattice")
    except struct.error:
        raise DataError(f"{where}: truncated lattice") from None
    if (num_states and not 0 <= start < num_states) or (
            len(arcs) and (arcs["nextstate"].min() < 0 or arcs["nextstate"].max() >= num_states)):
        raise DataError(f"{where}: corrupt lattice (state ids out of range)")
    return p, RawLattice(int(start), final, np.repeat(np.arange(num_states), narcs), arcs)


def write_lattice_entry(f: IO[bytes] | gzip.GzipFile, utt: str, lattice_bytes: bytes) -> None:
    """One archive entry as Kaldi's LatticeHolder writes it: `key ` then the FST binary."""
    f.write(utt.encode("utf-8") + b" " + lattice_bytes)


def read_lattice_ark(path: Path | str) -> Iterator[tuple[str, bytes, RawLattice]]:
    """Yields (utt, OpenFst bytes, RawLattice) from a binary Kaldi lattice archive, gzipped or not,
    written by Kaldi (raw or compact lattices) or by this recipe. Entries with a `\0B` marker
    before the FST (archives of earlier versions of this recipe) are read too."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: lattice archive not found")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        end = data.find(b" ", pos)
        if end < 0:
            raise DataError(f"{path}: truncated archive (a key without a lattice)")
        utt = data[pos:end].decode("utf-8")
        start = end + 1
        if data[start:start + 2] == b"\0B":
            start += 2
        elif data[start:start + 1].isspace():
            raise DataError(f"{path}: utterance {utt}: text-mode lattice; write binary archives "
                            "(lattice-copy ark:IN ark:OUT)")
        stop, lattice = parse_lattice_binary(data, start, f"{path}: utterance {utt}")
        yield utt, data[start:stop], lattice
        pos = stop


def _ranges(starts, counts):
    """Concatenation of arange(s, s + c) for every (s, c)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return shift + np.arange(total)


def sweep_lattice(lat: RawLattice, settings: list[tuple[int, float]]) -> list[list[int] | None]:
    """Best path of a raw lattice for every (lmwt, wip) in settings at once, the cost of a path being
    graph + wip * words + acoustic / lmwt (Kaldi's lattice-scale --inv-acoustic-scale |
    lattice-add-penalty | lattice-best-path). A shortest-path DP over the acyclic lattice in
    topological order (Kahn's levels: one level per frame or epsilon step), vectorised over the
    arcs of a level and over the settings. Returns one word-id list per setting, None where the
    lattice has no complete path."""
    n, k = lat.num_states, len(settings)
    if n == 0:
        return [None] * k
    lm = np.array([float(l) for l, _ in settings])
    wp = np.array([float(w) for _, w in settings])
    arcs, src = lat.arcs, lat.src
    dst = arcs["nextstate"].astype(np.int64)
    has_word = arcs["olabel"] != 0
    weight = (arcs["graph"].astype(np.float64)[:, None] + has_word[:, None] * wp[None, :]
              + arcs["acoustic"].astype(np.float64)[:, None] / lm[None, :])
    order = np.argsort(dst, kind="stable")                  # incoming arcs grouped by state
    in_ptr = np.searchsorted(dst[order], np.arange(n + 1))
    out_ptr = np.searchsorted(src, np.arange(n + 1))
    indeg = np.diff(in_ptr)
    cost = np.full((n, k), np.inf)
    back = np.full((n, k), -1, dtype=np.int64)
    cost[lat.start] = 0.0
    frontier, visited = np.flatnonzero(indeg == 0), 0
    while frontier.size:
        visited += frontier.size
        # All predecessors of a frontier state are done: take its best incoming arc per setting.
        targets = frontier[in_ptr[frontier + 1] > in_ptr[frontier]]
        if targets.size:
            counts = in_ptr[targets + 1] - in_ptr[targets]
            idx = order[_ranges(in_ptr[targets], counts)]
            cand = cost[src[idx]] + weight[idx]
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            best = np.minimum.reduceat(cand, first, axis=0)
            pos = np.where(cand == np.repeat(best, counts, axis=0), np.arange(len(idx))[:, None], -1)
            cost[targets] = best
            back[targets] = np.where(np.isfinite(best), idx[np.maximum.reduceat(pos, first, axis=0)], -1)
        succ = dst[_ranges(out_ptr[frontier], out_ptr[frontier + 1] - out_ptr[frontier])]
        np.subtract.at(indeg, succ, 1)
        succ = np.unique(succ)
        frontier = succ[indeg[succ] == 0]
    if visited < n:
        raise DataError("the lattice has a cycle; expected an acyclic lattice")
    final = lat.final.astype(np.float64)
    total = cost + final[:, :1] + final[:, 1:] / lm[None, :]
    end = np.argmin(total, axis=0)
    words: list[list[int] | None] = []
    for j in range(k):
        if not np.isfinite(total[end[j], j]):
            words.append(None)
            continue
        out, state = [], end[j]
        while back[state, j] >= 0:
            arc = back[state, j]
            if has_word[arc]:
                out.append(int(arcs["olabel"][arc]))
            state = src[arc]
        words.append(out[::-1])
    return words


def lattice_files(decode_dir: Path | str) -> list[Path]:
    files = sorted(Path(decode_dir).glob("lat.*.gz"), key=lambda p: int(p.name.split(".")[1]))
    if not files:
        raise DataError(f"{decode_dir}: no lat.*.gz lattices")
    return files


def sweep_best_paths(lattice_paths: list[Path], lmwts: list[int],
                     wips: list[float]) -> dict[tuple[int, float], dict[str, list[int]]]:
    """{(lmwt, wip): {utt: word ids}} over all lattices. An utterance whose lattice has no complete
    path gets an empty hypothesis (counted in the log)."""
    settings = [(l, w) for l in lmwts for w in wips]
    results = {s: {} for s in settings}
    empty = 0
    for path in lattice_paths:
        for utt, _, lattice in read_lattice_ark(path):
            for setting, words in zip(settings, sweep_lattice(lattice, settings)):
                if words is None:
                    empty += 1
                results[setting][utt] = words or []
    if empty:
        log.warning("%d (utterance, setting) pairs had no path through the lattice: empty hypotheses",
                    empty)
    return results


# -- writing tables -------------------------------------------------------------------------------
def write_word_table(path: Path | str, table: dict[str, list[int]], id2word: dict[int, str] | None = None) -> None:
    """`utt w1 w2 ...` per utterance in C order; integer ids, or symbols when id2word is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt in c_sorted(table):
            words = table[utt] if id2word is None else [id2word[w] for w in table[utt]]
            f.write(" ".join([utt] + [str(w) for w in words]) + "\n")


def parse_lmwts(spec: str) -> list[int]:
    """'1:20' -> [1..20]; '4 6 8' -> [4, 6, 8] (integers, as Kaldi's LMWT)."""
    try:
        if ":" in spec:
            lo, hi = spec.split(":")
            values = list(range(int(lo), int(hi) + 1))
        else:
            values = [int(x) for x in spec.replace(",", " ").split()]
    except ValueError:
        raise DataError(f"--lmwt {spec!r}: expected 'lo:hi' or a list of integers") from None
    if not values or min(values) <= 0:
        raise DataError(f"--lmwt {spec!r}: LM weights must be positive integers")
    return values


def parse_wips(spec: str) -> list[tuple[str, float]]:
    """'0.0 0.5 1.0' -> [('0.0', 0.0), ...]: the text names the setting (as in Kaldi's wer_LMWT_WIP)."""
    try:
        values = [(x, float(x)) for x in spec.replace(",", " ").split()]
    except ValueError:
        raise DataError(f"--wip {spec!r}: expected a list of numbers") from None
    if not values:
        raise DataError("--wip: no word insertion penalty given")
    return values


def setting_name(lmwt: int, wip_text: str) -> str:
    """Kaldi's naming of a scoring setting: LMWT_WIP, e.g. 10_0.0."""
    return f"{lmwt}_{wip_text}"


# -- the decode job -------------------------------------------------------------------------------
def decode_ark(graph: Path | str, trans_mdl: Path | str, loglikes_ark: Path | str, decode_dir: Path | str,
               job: int | str, opts: DecoderOptions = DecoderOptions(),
               words_txt: Path | str | None = None) -> dict[str, list[int]]:
    """Decodes every utterance of LOGLIKES_ARK (see decode_matrices)."""
    return decode_matrices(graph, trans_mdl, kaldiio.load_ark(str(loglikes_ark)), decode_dir, job, opts,
                           words_txt, source=loglikes_ark)


def decode_matrices(graph: Path | str, trans_mdl: Path | str, matrices: Any,
                    decode_dir: Path | str, job: int | str, opts: DecoderOptions = DecoderOptions(),
                    words_txt: Path | str | None = None, source: Path | str = "the input") -> dict[str, list[int]]:
    """Decodes (utt, frames x pdfs log-likelihoods) pairs with the search of `opts` (DecoderOptions);
    writes DECODE_DIR/hyp.JOB (words, or ids without words_txt), lat.JOB.gz (decoder `lattice`) and
    timing/decode.JOB."""
    decode_dir = Path(decode_dir)
    id2word = read_id2symbol(words_txt) if words_txt else None
    load_start = time.perf_counter()
    tid2pdf = load_tid2pdf(trans_mdl)
    dec = GraphDecoder(graph, tid2pdf, opts)
    decoder = opts.decoder
    log.info("graph %s and model %s loaded in %.2f s (%d transition-ids, %d pdfs); decoder %s, acwt %g, "
             "beam %g, lattice-beam %g, max-active %d", graph, trans_mdl, time.perf_counter() - load_start,
             len(tid2pdf), tid2pdf.max() + 1, decoder, opts.acoustic_scale, opts.beam, opts.lattice_beam,
             opts.max_active)
    hyps, frames, partial, failed, seconds = {}, 0, 0, 0, 0.0
    # gzip level 1: raw lattices are large, and level 9 costs 20 times the time for 30% less space.
    lat_file = gzip.open(decode_dir / f"lat.{job}.gz", "wb", compresslevel=1) if decoder == "lattice" else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / "lat.fst"
            progress = Progress(f"decode job {job}", len(matrices) if hasattr(matrices, "__len__") else None,
                                logger=log)
            for utt, loglikes in matrices:
                check_finite(loglikes, f"{source}: log-likelihoods of utterance {utt}")
                start = time.perf_counter()  # decoding and writing the lattice, as Kaldi's RTF
                result = dec.decode(loglikes, utt)
                if lat_file is not None and result.lattice is not None:
                    write_lattice_entry(lat_file, utt, lattice_to_bytes(result.lattice, tmp_path))
                seconds += time.perf_counter() - start
                frames += len(loglikes)
                hyps[utt] = result.words
                progress.update(len(hyps), f"{frames} frames, RTF {seconds / max(frames * FRAME_SHIFT, 1e-9):.4f}")
                if not result.words and not result.reached_final:
                    failed += 1
                    log.warning("utterance %s: no path through the graph; empty hypothesis", utt)
                elif not result.reached_final:
                    partial += 1
                    log.warning("utterance %s: no final state reached; partial best path", utt)
    finally:
        if lat_file is not None:
            lat_file.close()
    if not hyps:
        raise DataError(f"{source}: no utterances")
    write_word_table(decode_dir / f"hyp.{job}", hyps, id2word)
    (decode_dir / "timing").mkdir(exist_ok=True)
    (decode_dir / "timing" / f"decode.{job}").write_text(
        f"frames={frames} seconds={seconds:.4f} utts={len(hyps)} threads=1 decoder={decoder}\n")
    log.info("decoded %d utterances (%d partial, %d failed), %d frames in %.2f s: RTF %.4f", len(hyps),
             partial, failed, frames, seconds, seconds / (frames * FRAME_SHIFT))
    return hyps


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="decode a loglikes ark with HCLG (one job)")
    defaults = DecoderOptions()
    for field in dataclasses.fields(DecoderOptions):
        d.add_argument("--" + field.name.replace("_", "-"), type=field.type, default=getattr(defaults, field.name),
                       choices=DECODERS if field.name == "decoder" else None)
    d.add_argument("--word-symbol-table", help="words.txt: hyp.JOB in symbols (else integer ids)")
    d.add_argument("graph")
    d.add_argument("trans_mdl")
    d.add_argument("loglikes_ark")
    d.add_argument("decode_dir")
    d.add_argument("job")
    b = sub.add_parser("best-paths", help="LMWT x WIP sweep over lat.*.gz -> OUT/LMWT_WIP.tra")
    lmwts = f"{_CONF.min_lmwt}:{_CONF.max_lmwt}"
    b.add_argument("--lmwt", default=lmwts, help=f"LM weights, 'lo:hi' or a list (default {lmwts})")
    b.add_argument("--wip", default=_CONF.word_ins_penalty,
                   help=f"word insertion penalties (default {_CONF.word_ins_penalty})")
    b.add_argument("decode_dir")
    b.add_argument("out_dir")
    args = parser.parse_args()
    if args.cmd == "decode":
        if args.acoustic_scale <= 0:
            raise DataError("--acoustic-scale must be positive")
        opts = DecoderOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DecoderOptions)})
        decode_ark(args.graph, args.trans_mdl, args.loglikes_ark, args.decode_dir, args.job, opts,
                   args.word_symbol_table)
    else:
        lmwts, wips = parse_lmwts(args.lmwt), parse_wips(args.wip)
        start = time.perf_counter()
        results = sweep_best_paths(lattice_files(args.decode_dir), lmwts, [w for _, w in wips])
        names = dict((value, text) for text, value in wips)
        for (lmwt, wip), table in results.items():
            write_word_table(Path(args.out_dir) / f"{setting_name(lmwt, names[wip])}.tra", table)
        log.info("%d settings x %d utterances in %.1f s", len(results),
                 len(next(iter(results.values()))), time.perf_counter() - start)


if __name__ == "__main__":
    main()
