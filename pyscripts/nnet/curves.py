"""Training curves from a history.tsv (pyscripts/nnet/train.py, joint_train.py): a PNG of the loss, the
frame error rate (FER) and the learning rate per epoch, written beside the history (curves.png).

  python3 -m pyscripts.nnet.curves [--out PNG] [--tensorboard DIR] EXP_DIR_OR_HISTORY_TSV

Columns named *_loss go to the loss panel and *_fer to the FER panel (train solid, dev dashed; a joint
training's asr_* and ser_* in colours of their own); lr to the learning-rate panel (log scale). The
epoch of the lowest dev loss (dev_metric for a joint training) is marked in every panel.
--tensorboard DIR also writes the same numbers as TensorBoard scalars; it needs the `tensorboard`
package, which the recipe does not install (pip install tensorboard into the venv to use it).
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from pyscripts.errors import DataError, cli_main

log = logging.getLogger(__name__)


def read_history(path: str | Path) -> dict[str, list[float]]:
    """{column: values per epoch} of a history.tsv; DataError when it is missing, empty or not numbers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; a training writes it after its first epoch")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "epoch" not in rows[0]:
        raise DataError(f"{path}: no epochs (a header with 'epoch' and one line per epoch expected)")
    history: dict[str, list[float]] = {}
    for number, row in enumerate(rows, start=2):
        for key, value in row.items():
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                raise DataError(f"{path} line {number}: column {key} is {value!r}, not a number") from None
    return history


def best_epoch(history: dict[str, list[float]]) -> int | None:
    """The epoch of the lowest dev loss (dev_metric for a joint training), or None without one."""
    key = next((k for k in ("dev_loss", "dev_metric") if k in history), None)
    if key is None:
        return None
    values = history[key]
    return int(history["epoch"][values.index(min(values))])


def _series(history: dict[str, list[float]], suffix: str) -> list[tuple[str, str, dict]]:
    """(column, legend label, plot style) of the columns ending in suffix: train solid, dev dashed, a
    colour per task prefix (none, asr_, ser_)."""
    out = []
    prefixes: list[str] = []
    for key in history:
        if not key.endswith(suffix):
            continue
        task, _, rest = key.rpartition("_")[0].rpartition("_")
        prefixes += [task] if task not in prefixes else []
        style = {"color": f"C{prefixes.index(task)}", "marker": ".",
                 "linestyle": "--" if rest == "dev" else "-"}
        out.append((key, key.removesuffix(suffix).replace("_", " "), style))
    return out


def plot_curves(history: dict[str, list[float]], out_png: str | Path, title: str = "") -> None:
    """Three panels: loss, FER (%) and learning rate per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = history["epoch"]
    best = best_epoch(history)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, suffix, ylabel, scale in ((axes[0], "_loss", "loss (cross-entropy)", 1),
                                      (axes[1], "_fer", "frame error rate (%)", 100)):
        for key, label, style in _series(history, suffix):
            ax.plot(epochs, [scale * v for v in history[key]], label=label, **style)
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize=8)
    if "lr" in history:
        axes[2].plot(epochs, history["lr"], marker=".", color="C2")
        if min(history["lr"]) > 0:
            axes[2].set_yscale("log")
    axes[2].set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
    note = f" (dotted: best dev epoch {best})" if best is not None else ""
    fig.suptitle(f"{title}{note}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def write_tensorboard(history: dict[str, list[float]], log_dir: str | Path) -> None:
    """The history as TensorBoard scalars (tag = column) in log_dir."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise DataError(f"--tensorboard {log_dir}: the tensorboard package is not installed ({err}); "
                        "pip install tensorboard into the venv, or leave --tensorboard out") from None
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for i, epoch in enumerate(history["epoch"]):
            for key, values in history.items():
                if key != "epoch":
                    writer.add_scalar(key, values[i], int(epoch))
    finally:
        writer.close()


@cli_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="the PNG (default: curves.png beside the history)")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard scalars into DIR")
    parser.add_argument("history", help="an exp dir with history.tsv, or the history.tsv")
    args = parser.parse_args(argv)
    path = Path(args.history)
    if path.is_dir():
        path = path / "history.tsv"
    history = read_history(path)
    out = Path(args.out) if args.out else path.with_name("curves.png")
    if args.tensorboard:   # first: a missing package fails before any output
        write_tensorboard(history, args.tensorboard)
        log.info("wrote TensorBoard scalars into %s", args.tensorboard)
    plot_curves(history, out, title=str(path.parent))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
