"""The TIMIT phone map (conf/phones.60-48-39.map, Lee & Hon): one reader for data preparation
(61 -> 48), the phone-level lang dir (the 48 training phones) and scoring (48 -> 39).

Each line is `phone61 phone48 phone39`, or a lone TIMIT phone that is deleted (q); `#` starts a
comment line.
"""
from pathlib import Path

from pyscripts.errors import DataError


def read_phone_map(path: Path | str) -> tuple[dict[str, str | None], dict[str, str]]:
    """Reads the 60-48-39 map: {timit61: phone48 or None (deleted, i.e. q)}, {phone48: phone39}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: phone map not found (conf/phones.60-48-39.map)")
    to48: dict[str, str | None]
    to39: dict[str, str]
    to48, to39 = {}, {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 1:
            to48[fields[0]] = None
        elif len(fields) == 3:
            to48[fields[0]] = fields[1]
            if to39.setdefault(fields[1], fields[2]) != fields[2]:
                raise DataError(f"{path}:{lineno}: {fields[1]} maps to two 39-set phones")
        else:
            raise DataError(f"{path}:{lineno}: expected 'phone61 phone48 phone39' or a lone phone "
                            f"to delete, got {line!r}")
    if not to39:
        raise DataError(f"{path}: empty phone map")
    return to48, to39


def read_map39(path: Path | str) -> dict[str, str]:
    """{48-phone: 39-phone}, the folding of scoring; its keys are the 48 training phones."""
    return read_phone_map(path)[1]
