"""Kaldi's small text formats, one implementation each: C-order sorting of keys, symbol tables
(words.txt, phones.txt), text vectors (`[ 1 2 3 ]`) and conf files (`--name=value` lines) with
their booleans. Kaldi's tools and the recipe's shell stages read what these write, so every module
writes and parses them here, the same way.
"""
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from pyscripts.errors import DataError


# -- C order --------------------------------------------------------------------------------------
def c_sorted(keys: Iterable[str]) -> list[str]:
    """Sorts as `LC_ALL=C sort` does: by the bytes of the UTF-8 encoding (Kaldi's table order)."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# -- symbol tables --------------------------------------------------------------------------------
def read_symbols(path: Path | str) -> dict[str, int]:
    """{symbol: integer id} of a Kaldi/OpenFst symbol table (`symbol id` lines)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: symbol table not found")
    table = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}:{lineno}: expected 'symbol integer', got {line!r}")
        if parts[0] in table:
            raise DataError(f"{path}:{lineno}: symbol {parts[0]} appears twice")
        table[parts[0]] = int(parts[1])
    return table


def read_id2symbol(path: Path | str) -> dict[int, str]:
    """{integer id: symbol} of a symbol table, for turning decoder output back into symbols."""
    return {i: s for s, i in read_symbols(path).items()}


def write_symbols(path: Path | str, symbols: Iterable[str]) -> None:
    """A symbol table numbering `symbols` from 0 in the order given (<eps> first, as Kaldi's)."""
    Path(path).write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")


# -- text vectors ---------------------------------------------------------------------------------
def format_kaldi_vector(values: Iterable[float], fmt: str = "{:.9g}") -> str:
    """`[ a b c ]`, each value written with `fmt` ("{:d}" for counts); no newline."""
    return "[ " + " ".join(fmt.format(v) for v in values) + " ]"


def write_kaldi_vector(path: Path | str, values: Iterable[float], fmt: str = "{:.9g}") -> None:
    """A Kaldi text vector file (as analyze-counts writes ali_train_pdf.counts), written to a
    temporary name first so that a killed job never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(format_kaldi_vector(values, fmt) + "\n")
    os.replace(tmp, path)


def read_kaldi_vector(path: Path | str) -> np.ndarray:
    """A Kaldi text vector `[ 1 2 3 ]` (analyze-counts, pdf_counts, prior_counts) as float64."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: vector file not found")
    tokens = path.read_text().split()
    if len(tokens) < 2 or tokens[0] != "[" or tokens[-1] != "]":
        raise DataError(f"{path}: not a Kaldi text vector ('[ a b c ]')")
    try:
        return np.array([float(t) for t in tokens[1:-1]], dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: non-numeric entry in the vector") from None


# -- conf files -----------------------------------------------------------------------------------
def read_kaldi_conf(path: Path | str) -> dict[str, str]:
    """Reads a Kaldi conf file (`--name=value` per line, `#` comments) into {name: value string}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: feature conf file not found")
    opts = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--") or "=" not in line:
            raise DataError(f"{path}:{lineno}: expected --name=value, got {line!r}")
        name, value = line[2:].split("=", 1)
        opts[name] = value
    return opts


def parse_bool(text: str) -> bool:
    """A Kaldi boolean option value: true/false or 1/0, in any case. ValueError otherwise."""
    value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
    if value is None:
        raise ValueError(f"expected true or false, got {text!r}")
    return value


def conf_bool(path: Path | str, name: str, text: str) -> bool:
    """parse_bool for option --name of conf file `path`; a DataError naming both on a bad value."""
    try:
        return parse_bool(text)
    except ValueError:
        raise DataError(f"{path}: --{name} needs true or false, got {text!r}") from None
