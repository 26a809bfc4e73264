"""The training config (conf/convnet_*.yaml): read with its base file and --set overrides, every value
checked against CONFIG_SCHEMA before any data is read or file written."""
import copy
from collections.abc import Sequence
from pathlib import Path

import yaml

from pyscripts.config_files import read_yaml
from pyscripts.errors import DataError
from pyscripts.nnet.device import AMP_MODES
from pyscripts.nnet.model import TRANSFERABLE_LAYERS

# Keys that may differ between a checkpoint and the run that resumes it (they do not change results).
RESUME_FREE_KEYS = {("training", "log_interval_frames"), ("training", "eval_batch_size")}


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """YAML config; `base: FILE` (relative to the file) is read first and updated key by key.
    overrides: "section.key=value" strings, value parsed as YAML. Unknown keys are errors (typos), and
    every value is checked against CONFIG_SCHEMA here, before any data is read or file written."""
    path = Path(path)
    cfg = read_yaml(path)
    if not isinstance(cfg, dict):
        raise DataError(f"config {path}: expected a mapping of sections (model:, optimizer:, ...)")
    base = cfg.pop("base", None)
    if base is not None:
        cfg = _merge(load_config(path.parent / base), cfg, str(path))
    validate_config(cfg, f"config {path}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"override '{item}' is not KEY=VALUE (e.g. optimizer.lr=0.01)")
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise DataError(f"override '{item}': no key '{key}' in config {path}")
        node[leaf] = yaml.safe_load(value)
    if overrides:
        validate_config(cfg, f"config {path} with --set {' '.join(overrides)}")
    return cfg


# The type of every config value, and the range it must lie in: (type or types, (test, range text)).
_POS, _NONNEG, _UNIT = (lambda v: v > 0, "> 0"), (lambda v: v >= 0, ">= 0"), (lambda v: 0 <= v < 1, "in [0, 1)")
_NULL = type(None)


def _one_of(*names):
    return lambda v: v in names, "one of " + ", ".join(names)


CONFIG_SCHEMA: dict[str, dict[str, tuple]] = {
    "model": {"context": (int, _NONNEG), "conv1_channels": (int, _POS), "conv2_channels": (int, _POS),
              "fc_dim": (int, _POS), "dropout": (float, _UNIT), "conv_l2": (float, _NONNEG)},
    "optimizer": {"name": (str, _one_of("sgd", "rmsprop")), "lr": (float, _POS), "momentum": (float, _UNIT),
                  "rmsprop_alpha": (float, _UNIT)},
    "schedule": {"name": (str, _one_of("newbob", "exponential")), "factor": (float, _UNIT),
                 "threshold": (float, _NONNEG), "gamma": (float, _POS)},
    "training": {"seed": (int, None), "batch_size": (int, (lambda v: v >= 2, ">= 2")), "max_epochs": (int, _POS),
                 "frames_per_epoch": ((int, _NULL), _POS), "dev_frames": ((int, _NULL), _POS),
                 "dev_metric": (str, _one_of("loss", "fer")), "patience": (int, _POS),
                 "eval_batch_size": (int, _POS), "amp": (str, _one_of(*AMP_MODES)),
                 "deterministic": (bool, None), "compile": (bool, None),
                 "channels_last": (bool, None), "log_interval_frames": (int, _POS),
                 "trunk_cache_mb": (int, _NONNEG)},
    "init": {"from": ((str, _NULL), None), "freeze_layers": (int, (lambda v: 0 <= v <= TRANSFERABLE_LAYERS,
                                                                    f"0..{TRANSFERABLE_LAYERS}")),
             "reinit_unfrozen": (bool, None)},
    "data": {"cmvn_stats": ((str, _NULL), None)},
}


def validate_config(cfg: dict, where: str, schema: dict | None = None) -> None:
    """Raises DataError naming the key, the value and the expected type or range. YAML quirks are
    caught here rather than deep in training: "false" (a string) would count as true, 1e-3 (no dot)
    is a string in YAML 1.1. schema: CONFIG_SCHEMA, or the sections of another config in its form."""
    schema = CONFIG_SCHEMA if schema is None else schema
    for section, keys in schema.items():
        node = cfg.get(section)
        if not isinstance(node, dict):
            raise DataError(f"{where}: section '{section}' is missing or not a mapping")
        for key in node:
            if key not in keys:
                raise DataError(f"{where}: unknown key '{section}.{key}' (known: {', '.join(keys)})")
        for key, (types, check) in keys.items():
            if key not in node:
                raise DataError(f"{where}: key '{section}.{key}' is missing")
            value, types = node[key], types if isinstance(types, tuple) else (types,)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
                ok = True  # an integer is a fine float
            if not ok:
                names = " or ".join("null" if t is _NULL else "number" if t is float else t.__name__ for t in types)
                hint = ""
                if isinstance(value, str) and float in types:
                    hint = " (a string: remove any quotes; YAML reads 1e-3 as a string, 1.0e-3 as a number)"
                elif isinstance(value, str) and bool in types:
                    hint = " (a string: write true or false without quotes)"
                raise DataError(f"{where}: {section}.{key} is {value!r} ({type(value).__name__}); expected "
                                f"{names}{hint}")
            if check is not None and value is not None and not check[0](value):
                raise DataError(f"{where}: {section}.{key} is {value!r}; expected a value {check[1]}")
    for section in cfg:
        if section not in schema:
            raise DataError(f"{where}: unknown section '{section}' (known: {', '.join(schema)})")


def _merge(base, update, where):
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out:
            raise DataError(f"config {where}: unknown key '{key}' (not in its base config)")
        out[key] = _merge(out[key], value, where) if isinstance(value, dict) else value
    return out


def config_differences(a: dict, b: dict, prefix: tuple[str, ...] = ()) -> list[str]:
    keys = set(a) | set(b)
    diffs = []
    for k in sorted(keys):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += config_differences(va, vb, prefix + (k,))
        elif va != vb and prefix + (k,) not in RESUME_FREE_KEYS:
            diffs.append(".".join(prefix + (k,)))
    return diffs



def configure(config: str | Path, overrides: Sequence[str] = (), init_from: str | None = None,
              freeze_layers: int | None = None, reinit_unfrozen: bool = False, cmvn_stats: str | None = None,
              seed_offset: int = 0) -> dict:
    """The config of one training: the YAML with its overrides, then the command line's source model,
    frozen layers, CMVN stats and seed offset (None/False/0: the YAML's)."""
    cfg = load_config(config, overrides)
    if init_from is not None:
        cfg["init"]["from"] = init_from
    if freeze_layers is not None:
        cfg["init"]["freeze_layers"] = freeze_layers
    if reinit_unfrozen:
        cfg["init"]["reinit_unfrozen"] = True
    if cmvn_stats:  # None or "": the config's
        cfg["data"]["cmvn_stats"] = cmvn_stats
    cfg["training"]["seed"] += seed_offset
    # The command line's values pass the same checks as the YAML's (e.g. frozen layers 0..5).
    validate_config(cfg, f"config {config} with the command line's --init-from/--freeze-layers/--cmvn-stats")
    return cfg


