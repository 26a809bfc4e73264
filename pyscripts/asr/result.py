"""The machine-readable result of a scored decode dir: DECODE_DIR/scoring/result.json.

Written once, by the scoring (pyscripts/asr/scoring.py `score-dir` / write_best, run by local/score.sh),
and read by every consumer (the results table, the transfer tables, inference's acoustic scale); the text
files beside it (wer_*, best_wer, the sclite reports) are for people and Kaldi's tools and no code
parses them.

Keys (stable; numbers are JSON numbers, absent facts are null):
  decode_dir   the decode dir as given to the scoring
  setting      the chosen setting, LMWT_WIP (or LMWT for a decode scored at one setting)
  lmwt         its LM weight; acwt = 1 / lmwt, the acoustic scale it stands for; wip: its insertion penalty
  tune_dir     the dev decode dir whose best setting was applied here, or null (this set's own best)
  per          {percent, errors, ref, ins, del, sub, utts, utts_with_errors} at the setting; percent has
               the 2 decimals of the wer_* line (which also decides between settings, as Kaldi's best_wer)
  settings     {NAME: {percent, errors, ref}} for every scored setting
  fer          {percent, errors, frames, utts} of the network alone, when the decode computed it
               (scoring/fer_by_utt), else null
  rtf          {audio_seconds, forward: STAGE, decode: STAGE} when the decode timed itself (timing/),
               else null; STAGE = {label, rtf, wall_rtf, nj, devices, threads} or null, rtf the work's
               seconds summed over the jobs per second of audio, wall_rtf the parallel jobs' wall clock
  device       the forward pass's device (cpu, cuda:0 (NAME)), when timed, else null
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pyscripts.asr.hybrid import timing_record
from pyscripts.asr.utt_errors import FER_BY_UTT, read_by_utt
from pyscripts.errors import DataError


RESULT_JSON = "result.json"
REQUIRED_KEYS = ("setting", "lmwt", "acwt", "wip", "tune_dir", "per", "settings", "fer", "rtf", "device")
PER_KEYS = ("percent", "errors", "ref", "ins", "del", "sub")


def result_path(decode_dir: str | Path) -> Path:
    return Path(decode_dir) / "scoring" / RESULT_JSON


def rounded_percent(value: float) -> float:
    """A rate as the wer_* and fer lines print it (2 decimals): the number every table shows."""
    return float(f"{value:.2f}")


def setting_numbers(setting: str) -> tuple[float, float]:
    """`LMWT_WIP` (or `LMWT`, penalty 0) -> (lmwt, wip); a name that is not two numbers is an error."""
    lmwt, _, wip = setting.partition("_")
    try:
        lmwt_value, wip_value = float(lmwt), float(wip or "0")
    except ValueError:
        raise DataError(f"setting {setting!r} is not LMWT_WIP (two numbers); score with local/score.sh") from None
    if lmwt_value <= 0:
        raise DataError(f"setting {setting!r}: the LM weight must be positive (the acoustic scale is 1/LMWT)")
    return lmwt_value, wip_value


def _number(value: float) -> int | float:
    """An integral float as int (LM weight 10, not 10.0), so the JSON reads as the setting's name."""
    return int(value) if float(value).is_integer() else value


# -- what the decode measured -------------------------------------------------------------------------
def fer_record(decode_dir: str | Path) -> dict | None:
    """{percent, errors, frames, utts} from scoring/fer_by_utt (pyscripts/asr/hybrid.py fer), or None."""
    path = Path(decode_dir) / "scoring" / FER_BY_UTT
    if not path.is_file():
        return None
    utts = read_by_utt(path)
    errors, frames = int(utts.errors.sum()), int(utts.totals.sum())
    return {"percent": rounded_percent(100.0 * errors / frames), "errors": errors, "frames": frames,
            "utts": len(utts.errors)}


def rtf_record(decode_dir: str | Path) -> dict | None:
    """The real-time factors of the decode's timing/ files (pyscripts/asr/hybrid.py timing_record), or
    None. Only a decode that timed its stages with their wall clock (timing/STAGE.wall:
    steps/decode_hybrid.sh) is reported: a GMM decode's per-job times alone were never in the results."""
    if not any((Path(decode_dir) / "timing").glob("*.wall")):
        return None
    return timing_record(decode_dir)


@dataclass
class ErrorCounts:
    """Totals over utterances; `per` in percent."""
    ref: int = 0
    hyp: int = 0
    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    utts: int = 0
    utts_with_errors: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def per(self) -> float:
        if self.ref == 0:
            return 0.0 if self.errors == 0 else math.inf
        return 100.0 * self.errors / self.ref

    def add(self, other: ErrorCounts) -> ErrorCounts:
        for name in ("ref", "hyp", "corr", "sub", "dele", "ins", "utts", "utts_with_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def kaldi_line(self, label: str = "WER") -> str:
        """Kaldi's compute-wer line, e.g. `%WER 21.43 [ 3 / 14, 1 ins, 1 del, 1 sub ]`: Kaldi's token for
        phone error rates too (its TIMIT recipe's), so that `grep WER .../wer_* | utils/best_wer.sh` works."""
        return (f"%{label} {self.per:.2f} [ {self.errors} / {self.ref}, {self.ins} ins, "
                f"{self.dele} del, {self.sub} sub ]")


# -- the record ---------------------------------------------------------------------------------------
def make_result(decode_dir: str | Path, setting: str, counts: ErrorCounts, settings: dict,
                tune_dir: str | Path | None = None) -> dict:
    """The record of a decode dir scored at `setting`: counts is its ErrorCounts (pyscripts/asr/scoring.py),
    settings {NAME: ErrorCounts} of every scored setting."""
    lmwt, wip = setting_numbers(setting)
    rtf = rtf_record(decode_dir)
    forward = (rtf or {}).get("forward") or {}
    return {
        "decode_dir": str(decode_dir), "setting": setting, "lmwt": _number(lmwt), "acwt": 1.0 / lmwt,
        "wip": _number(wip), "tune_dir": None if tune_dir is None else str(tune_dir),
        "per": {"percent": rounded_percent(counts.per), "errors": counts.errors, "ref": counts.ref,
                "ins": counts.ins, "del": counts.dele, "sub": counts.sub, "utts": counts.utts,
                "utts_with_errors": counts.utts_with_errors},
        "settings": {name: {"percent": rounded_percent(c.per), "errors": c.errors, "ref": c.ref}
                     for name, c in sorted(settings.items())},
        "fer": fer_record(decode_dir), "rtf": rtf,
        "device": " + ".join(forward["devices"]) if forward.get("devices") else None,
    }


def write_result(decode_dir: str | Path, record: dict) -> Path:
    path = result_path(decode_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)   # a reader never sees half a record
    return path


def read_result(decode_dir: str | Path) -> dict:
    """The record of a scored decode dir (keys: the module's docstring). DataError naming the file when
    it is missing or malformed."""
    path = result_path(decode_dir)
    if not path.is_file():
        raise DataError(f"{path}: not found; {Path(decode_dir)} was not scored (re-run local/score.sh)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a JSON result record ({err}); re-run local/score.sh") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: not a JSON object; re-run local/score.sh")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    missing += [f"per.{key}" for key in PER_KEYS if key not in (record.get("per") or {})]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)}; written by an older scoring? re-run local/score.sh")
    return record
