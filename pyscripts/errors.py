"""One error type for bad input, so command-line entry points can print it plainly and exit 1."""
import functools
import logging
import sys

import numpy as np


class DataError(Exception):
    """Bad or inconsistent input data. The message names the file and says how to fix it."""


def check_finite(array, where):
    """Returns `array`; raises DataError when it holds NaN or inf, which would otherwise pass silently
    through training (a NaN model) or decoding (a Kaldi assertion naming nothing). `where` names the
    utterance and the file."""
    finite = np.isfinite(np.asarray(array))
    if not finite.all():
        first = np.argwhere(~finite)[0]
        raise DataError(f"{where}: {int((~finite).sum())} NaN or inf values (the first in frame {first[0]}); "
                        "recompute it or remove the utterance from the data dir")
    return array


def cli_main(func):
    """Wraps a command-line main(): logging to stderr, and a DataError becomes a one-line error, exit 1."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        try:
            return func(*args, **kwargs)
        except DataError as err:
            prog = func.__module__.split(".")[-1] if func.__module__ != "__main__" else sys.argv[0]
            print(f"ERROR ({prog}): {err}", file=sys.stderr)
            sys.exit(1)
    return wrapper
