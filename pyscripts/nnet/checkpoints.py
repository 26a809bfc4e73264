"""What a training leaves in EXP_DIR and what it was trained on: final.stamp (a stamp of
pyscripts/fingerprint.py, the recipe's one freshness mechanism), checkpoint.pt (resume),
best.pt -> final.pt, history.tsv, train_summary. Shared by every training task (pyscripts/nnet/loop.py).

Files are written to NAME.tmp and renamed, so a kill never leaves a half-written file under the real
name; final.stamp goes first and comes back last when final.pt is replaced (see promote_best).
"""
import copy
import datetime
import errno
import hashlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from pyscripts.errors import DataError
from pyscripts.fingerprint import changed_keys, file_digest, read_stamp, scp_digest, stamp_text
from pyscripts.kaldi.features import data_feature_record, feature_differences
from pyscripts.nnet.config import RESUME_FREE_KEYS, config_differences
from pyscripts.nnet.device import load_scaler_state

if TYPE_CHECKING:
    from pyscripts.nnet.epoch import Trainee

log = logging.getLogger("train")
SUMMARY = "train_summary"  # beside final.pt, see run_summary


def save_file(obj: object, path: str | Path) -> None:
    """torch.save through memory: torch's own file writer reports a full disk as 'unexpected pos'."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_file(path, buffer.getbuffer())


def write_file(path: str | Path, data: str | bytes | memoryview) -> None:
    """Writes bytes or text to path.tmp, then renames it: a kill never leaves a half-written file under the
    real name, and a full disk is an error naming the file that leaves no .tmp behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        raise DataError(f"{path}: cannot write it ({'disk full: ' if full else ''}{err.strerror}); "
                        f"{'free space on its disk' if full else 'check that its directory is writable'} and "
                        f"run again ({path.name} keeps its last complete version, if any; a training resumes "
                        "from checkpoint.pt)") from None


def input_stamp(cfg: dict, train_data: str | Path, dev_data: str | Path, train_targets: str | Path,
                dev_targets: str | Path) -> dict:
    """{input: checksum} of everything a training depends on; saved beside final.pt as final.stamp."""
    cfg = copy.deepcopy(cfg)
    for section, key in RESUME_FREE_KEYS:
        cfg[section].pop(key, None)
    config = hashlib.sha256(yaml.safe_dump(cfg, sort_keys=True).encode()).hexdigest()[:16]
    stamp = {"config": config, "cmvn_stats": file_digest(cfg["data"]["cmvn_stats"]),
             "init_from": file_digest(cfg["init"]["from"])}
    for name, data, targets in (("train", train_data, train_targets), ("dev", dev_data, dev_targets)):
        stamp[f"{name}_feats"] = scp_digest(Path(data) / "feats.scp")
        stamp[f"{name}_targets"] = scp_digest(Path(targets) / "targets.scp") + "/" + \
            file_digest(Path(targets) / "num_targets")
    return stamp


def stamp_changes(old: dict | None, new: dict) -> str:
    """'' when the stamps agree, else what differs (for the messages)."""
    if old is None:
        return "no final.stamp says what it was trained on"
    changed = changed_keys(old, new)
    return "" if not changed else "changed since it was trained: " + ", ".join(changed)


def up_to_date(exp_dir: Path, stamp: dict, force: bool) -> bool:
    """True when final.pt was trained on these inputs. Otherwise the new training starts (or resumes its
    own checkpoint.pt); the last good final.pt stays, with its final.stamp, train_summary and prior_counts,
    until a new one is complete (promote_best replaces them together)."""
    final_path = exp_dir / "final.pt"
    if final_path.exists():
        changed = stamp_changes(read_stamp(exp_dir / "final.stamp"), stamp)
        if not changed and not force:
            log.info("%s is up to date (same config, features, targets, CMVN stats and source model)", final_path)
            return True
        log.warning("%s: %s; training it again (it stays until the new one is complete)", final_path,
                    "--force" if force else changed)
    if force or final_path.exists():
        drop_other_checkpoint(exp_dir, stamp, force)
    return False


def drop_other_checkpoint(exp_dir: Path, stamp: dict, force: bool) -> None:
    """Removes checkpoint.pt and best.pt unless they are a killed run of this very training (same inputs
    and config), which resumes; --force never resumes."""
    ckpt = exp_dir / "checkpoint.pt"
    if not force and ckpt.exists():
        try:
            same = torch.load(ckpt, map_location="cpu", weights_only=True).get("stamp") == stamp
        except (OSError, RuntimeError, EOFError):  # a damaged checkpoint cannot resume anything
            same = False
        if same:
            return
    for name in ("checkpoint.pt", "best.pt"):
        (exp_dir / name).unlink(missing_ok=True)


def training_features(data_dirs: list) -> dict | None:
    """The feature options the data dirs' features were made with (DATA/conf/fbank.conf, written by
    steps/make_fbank.sh), for final.pt: inference refuses others. All must be the same; None, with a
    warning, when no data dir records them (made before they were recorded)."""
    records = {str(d): data_feature_record(d) for d in data_dirs}
    known = [r for r in records.values() if r is not None]
    if not known:
        log.warning("%s: no record of their feature options (DATA/conf/fbank.conf, written by "
                    "steps/make_fbank.sh); the model cannot record them, nor inference check them",
                    ", ".join(records))
        return None
    for other in known[1:]:
        diffs = feature_differences(known[0], other)
        if diffs:
            raise DataError(f"{other['conf']}: not the features of {known[0]['conf']} ({'; '.join(diffs)}): one "
                            "training needs one kind of features; make them again with one conf "
                            "(steps/make_fbank.sh --config FILE)")
    unknown = [d for d, r in records.items() if r is None]
    if unknown:
        log.warning("%s: no record of its feature options; assuming those of %s", ", ".join(unknown),
                    known[0]["conf"])
    return known[0]


def resume_checkpoint(ckpt_path: Path, cfg: dict, stamp: dict, trainee: "Trainee", device: torch.device | str,
                      how_to_restart: str) -> dict:
    """Loads checkpoint.pt into `trainee` (Trainee) and returns its early-stopping state; refuses one made
    with another config or from other inputs, saying `how_to_restart`."""
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
    diffs = config_differences(ckpt["config"], cfg)
    if diffs:
        raise DataError(f"{ckpt_path} was made with a different config ({', '.join(diffs)}); "
                        f"delete {ckpt_path.parent} to start afresh, or resume with the same config")
    changed = stamp_changes(ckpt.get("stamp"), stamp)
    if changed:
        raise DataError(f"{ckpt_path}: its inputs {changed.removeprefix('changed since it was trained: ')} "
                        f"changed; {how_to_restart}")
    for name in ("model", "optimizer", "schedule"):
        getattr(trainee, name).load_state_dict(ckpt[name])
    load_scaler_state(trainee.scaler, ckpt["scaler"])
    log.info("resuming from %s after epoch %d", ckpt_path, ckpt["state"]["epoch"])
    return ckpt["state"]


def save_epoch(exp_dir: Path, cfg: dict, trainee: "Trainee", state: dict, stamp: dict, prior_counts: Any,
               improved: bool, package: Callable[..., dict]) -> None:
    """best.pt (made by `package`) when dev improved, and checkpoint.pt (the resume point), history.tsv
    after every epoch."""
    if improved:
        save_file(package(trainee.model, cfg, prior_counts, state["epoch"], state["best"], state["history"]),
              exp_dir / "best.pt")
    save_file({"config": cfg, "model": trainee.model.state_dict(), "optimizer": trainee.optimizer.state_dict(),
           "schedule": trainee.schedule.state_dict(), "scaler": trainee.scaler.state_dict(), "state": state,
           "stamp": stamp}, exp_dir / "checkpoint.pt")
    write_history(exp_dir / "history.tsv", state["history"])


def promote_best(exp_dir: Path, state: dict, stamp: dict, summary: dict, features: dict | None = None,
                 beside: dict | None = None) -> None:
    """best.pt becomes final.pt (with the whole history and `features`, the feature options it was trained
    on), with train_summary, the files of `beside` ({name: text}: what belongs to final.pt, e.g.
    prior_counts) and final.stamp. final.stamp goes first and comes back last: a kill in between leaves
    a final.pt that no stamp claims (trained again), never one training's files under another's stamp."""
    package = torch.load(exp_dir / "best.pt", map_location="cpu", weights_only=True)
    package["history"] = state["history"]
    package["features"] = features
    (exp_dir / "final.stamp").unlink(missing_ok=True)
    for name, text in (beside or {}).items():
        write_file(exp_dir / name, text)
    save_file(package, exp_dir / "final.pt")
    write_file(exp_dir / SUMMARY, "".join(f"{k}={v}\n" for k, v in summary.items()))
    write_file(exp_dir / "final.stamp", stamp_text(stamp))
    (exp_dir / "best.pt").unlink()
    (exp_dir / "checkpoint.pt").unlink()


def run_summary(started: datetime.datetime, epochs: int, stop: str, best: dict) -> dict:
    """The common fields of EXP_DIR/train_summary (`key=value` lines: what the stages report of a
    finished training; its times are this run's, a resumed training's earlier runs are not counted)."""
    ended = datetime.datetime.now()
    return {"started": started.isoformat(timespec="seconds"), "ended": ended.isoformat(timespec="seconds"),
            "seconds": f"{(ended - started).total_seconds():.1f}", "epochs": epochs, "stop": stop,
            "best_epoch": best["epoch"]}


def read_summary(exp_dir: str | Path) -> dict | None:
    """{key: value} of EXP_DIR/train_summary, or None when the training has not finished."""
    path = Path(exp_dir) / SUMMARY
    if not path.is_file():
        return None
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def write_history(path: Path, history: list) -> None:
    keys = list(history[0])
    lines = ["\t".join(keys)] + ["\t".join(f"{h[k]:.6g}" if isinstance(h[k], float) else str(h[k])
                                            for k in keys) for h in history]
    write_file(path, "\n".join(lines) + "\n")


