"""Confusion-matrix heatmaps of SER results (PNG, matplotlib's Agg backend: no display needed).

Each cell shows its count and its share of the reference row (the class's recall on the diagonal);
the colour is that row share, so that rare and frequent classes read alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def row_shares(cm: np.ndarray) -> np.ndarray:
    """Each row of the confusion matrix divided by its total (a row without utterances stays 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def _draw(ax, cm: np.ndarray, labels: Sequence[str], title: str):
    shares = row_shares(cm)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (r, c), count in np.ndenumerate(cm):
        # dark cells get white text
        ax.text(c, r, f"{int(count)}\n{100 * shares[r, c]:.0f}%", ha="center", va="center", fontsize=8,
                color="white" if shares[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), [f"{label} ({int(n)})" for label, n in zip(labels, cm.sum(axis=1))])
    ax.set_xlabel("decision")
    ax.set_title(title, fontsize=10)
    return image


def plot_confusions(panels: Mapping[str, np.ndarray], labels: Sequence[str], out_png: str | Path,
                    suptitle: str = "") -> None:
    """One heatmap panel per {title: confusion matrix (rows: reference, columns: decision)}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not panels:
        raise ValueError(f"{out_png}: no confusion matrix to draw")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.9 * len(panels) + 0.8, 4.4), squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels.items()):
        cm = np.asarray(cm)
        if cm.shape != (len(labels), len(labels)):
            raise ValueError(f"{out_png}: panel {title!r} has a {cm.shape} matrix for {len(labels)} classes")
        image = _draw(ax, cm, labels, title)
    axes[0][0].set_ylabel("reference (utterances)")
    fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.02, label="share of the reference row")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    plt.close(fig)
