"""What pyscripts/infer.py prints for each file, in one of three formats (--format):

  text  as before: emotion `NAME EMOTION SCORE  ang=.. hap=.. neu=.. sad=..  speech=S/N frames`; hybrid
        `NAME` then `  phones: ...` and `  emotion: ...`. A file with no result is one line
        `NAME too-short: ...` or `NAME no-speech: ...`.
  json  JSON Lines: one object per file, printed as soon as the file is done (a long batch streams, and
        one bad file does not spoil the document of the others). Keys:
          file, status ("ok", "too-short", "no-speech"), message (statuses other than ok), duration (s),
          frames, frame_shift (s);
          phones: [{phone, start, duration}] (hybrid; 39-phone set, times in seconds from the decoder's
              best path: its transition-ids split into phones, each frame FRAME_SHIFT long);
          emotion: {label, score, posteriors: {ang, hap, neu, sad}, speech_frames};
          segments (files longer than --long-file seconds): [{start, duration, emotion}],
              the emotion of every speech segment of the speech-frame detector.
  ctm   Kaldi's CTM: `NAME 1 START DURATION PHONE` per phone (hybrid only); a file with no result is a
        comment line `;; NAME too-short: ...` (sclite and Kaldi's tools skip `;;` lines). A NAME with
        white space has it replaced by `_`, as CTM fields are separated by white space.
"""
import json
from dataclasses import dataclass

import numpy as np

from pyscripts.kaldi.features import FRAME_SHIFT
from pyscripts.ser.labels import EMOTIONS

FORMATS = ("text", "json", "ctm")
OK, TOO_SHORT, NO_SPEECH = "ok", "too-short", "no-speech"


@dataclass
class Emotion:
    """An utterance (or segment) decision of the SER stages' rule."""
    label: str
    score: float
    posteriors: np.ndarray  # over EMOTIONS, summing to 1
    speech_frames: int
    frames: int

    def as_tuple(self) -> tuple:
        return self.label, self.score, self.posteriors, self.speech_frames, self.frames


@dataclass
class FileResult:
    """All that inference found for one file; fields a mode does not compute stay None."""
    name: str
    status: str
    seconds: float
    frames: int = 0
    message: str = ""
    phones: list | None = None           # 39-phone sequence of the best path's words
    phone_spans: list | None = None      # [(39-phone, first frame, frames)] of its transition-ids
    emotion: Emotion | None = None
    segments: list | None = None         # [(first frame, end frame, Emotion)] of long files


def _posteriors_text(scores) -> str:
    return " ".join(f"{e}={s:.3f}" for e, s in zip(EMOTIONS, scores))


def text_lines(result: FileResult) -> list[str]:
    if result.status != OK:
        return [f"{result.name} {result.status}: {result.message}"]
    e = result.emotion
    if result.phones is None:
        return [f"{result.name} {e.label} {e.score:.3f}  {_posteriors_text(e.posteriors)}  "
                f"speech={e.speech_frames}/{e.frames} frames"]
    return [result.name, f"  phones: {' '.join(result.phones)}",
            f"  emotion: {e.label} {e.score:.3f} ({_posteriors_text(e.posteriors)}; "
            f"{e.speech_frames} of {e.frames} frames speech)"]


def _seconds(frames: int) -> float:
    return round(frames * FRAME_SHIFT, 6)


def _emotion_json(e: Emotion) -> dict:
    return {"label": e.label, "score": round(float(e.score), 6),
            "posteriors": {name: round(float(p), 6) for name, p in zip(EMOTIONS, e.posteriors)},
            "speech_frames": int(e.speech_frames)}


def json_record(result: FileResult) -> dict:
    record = {"file": result.name, "status": result.status, "duration": round(result.seconds, 6),
              "frames": result.frames, "frame_shift": FRAME_SHIFT}
    if result.status != OK:
        record["message"] = result.message
        return record
    if result.phone_spans is not None:
        record["phones"] = [{"phone": p, "start": _seconds(s), "duration": _seconds(n)}
                            for p, s, n in result.phone_spans]
    record["emotion"] = _emotion_json(result.emotion)
    if result.segments is not None:
        record["segments"] = [{"start": _seconds(s), "duration": _seconds(e - s), "emotion": _emotion_json(emo)}
                              for s, e, emo in result.segments]
    return record


def ctm_lines(result: FileResult) -> list[str]:
    name = "_".join(result.name.split())
    if result.status != OK:
        return [f";; {name} {result.status}: {result.message}"]
    return [f"{name} 1 {s * FRAME_SHIFT:.3f} {n * FRAME_SHIFT:.3f} {p}" for p, s, n in result.phone_spans]


def format_result(result: FileResult, fmt: str) -> str:
    """The output of one file in format fmt (one of FORMATS), without the final newline."""
    if fmt == "json":
        return json.dumps(json_record(result), ensure_ascii=False)
    if fmt == "ctm":
        return "\n".join(ctm_lines(result))
    return "\n".join(text_lines(result))
