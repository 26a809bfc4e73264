"""The stamp file that marks a generated demo corpus complete, shared by both generators."""
import logging
from pathlib import Path

from pyscripts.errors import DataError

log = logging.getLogger(__name__)


def corpus_is_complete(out, stamp_name, stamp):
    """True when `out` holds a complete corpus made with the settings in `stamp`; False when `out` is
    absent or empty (generate it). Any other content is an error: it must not be overwritten."""
    out = Path(out)
    if (out / stamp_name).is_file():
        found = (out / stamp_name).read_text()
        if found == stamp:
            log.info("%s: complete corpus already there (%s), nothing to do", out, stamp.strip())
            return True
        raise DataError(f"{out}: holds a demo corpus made with other settings "
                        f"({found.strip()}); remove it or choose another dir")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: exists but holds no complete demo corpus (no {stamp_name}); "
                        f"remove it and run again")
    return False
