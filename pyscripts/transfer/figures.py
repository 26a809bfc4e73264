"""Figures of the transfer report (PNG, matplotlib with the Agg backend: no display needed).

  transfer [--paper-results F] RESULTS_JSON OUT_DIR
                                  error vs number of constant layers, one PNG per direction (the paper's
                                  "Transfer Learning Performance" figures): a panel per column of the
                                  table, its curve over l = 0..5, each point labelled with the runs behind
                                  it (a note in the title when they are fewer than the Baseline's); the
                                  Baseline as a dotted line of the same colour (shaded: its 95% interval),
                                  error bars = the 95% bootstrap interval (error_bar; the sd over seeds
                                  with several); the paper's numbers on the real corpora (F, default
                                  conf/paper_results.tsv; '' for none) dashed in the same colour, their
                                  Baseline dash-dotted
  filters --asr-model A --ser-model S OUT_PNG
                                  the 64 first-layer 5x4 filters of each network side by side (the
                                  paper's "Learned Features"); time runs left to right, frequency
                                  (mel bin) upwards; each filter scaled to its own largest magnitude
                                  (colour bar), dark grey gaps between the filters
  cka [--svcca T] [--pwcca T] CKA_TSV OUT_PNG
                                  linear CKA per layer (pyscripts/transfer/cka.py), and SVCCA and PWCCA
                                  (same format) in panels beside it when given
  probes PROBES_TSV OUT_PNG       linear-probe accuracy vs layer (pyscripts/transfer/probes.py): a panel
                                  per label, a line per network, the input (layer 0) as the start of
                                  each line, chance dotted
"""
import argparse
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402

from pyscripts.errors import DataError, cli_main  # noqa: E402
from pyscripts.transfer.cka import read_cka_table  # noqa: E402
from pyscripts.transfer.plan import BASELINE, CONSTANT_LAYERS, DIRECTIONS  # noqa: E402
from pyscripts.transfer.tables import (  # noqa: E402
    COLUMNS,
    PAPER_RESULTS,
    TITLES,
    column_name,
    read_paper_results,
)

log = logging.getLogger(__name__)
TARGET_CORPUS = {"ser2asr": "TIMIT", "asr2ser": "IEMOCAP"}
PROBE_NETWORKS = {"asr": "ASR network", "ser": "SER network"}
CKA_LABELS = {"asr_ser": "ASR vs SER", "asr_init": "ASR vs its untrained start",
              "asr_random": "ASR vs another untrained network", "ser_ser": "SER vs SER (another fold)"}


def paper_curves(direction, paper):
    """{column name: ([l], [error]) over the rows l5..l0 the paper gives, baseline or None} from the
    direction's part of read_paper_results."""
    curves = {}
    for i, (metric, subset) in enumerate(COLUMNS[direction]):
        points = [(l, paper[f"l{l}"][i]) for l in sorted(CONSTANT_LAYERS)
                  if f"l{l}" in paper and paper[f"l{l}"][i] is not None]
        base = paper[BASELINE][i] if BASELINE in paper else None
        if points or base is not None:
            curves[column_name(metric, subset)] = ([l for l, _ in points], [v for _, v in points], base)
    return curves


def drawn_interval(cell):
    """The 95% bootstrap interval of a results.json cell, when the cell is one seed's (the interval is
    the first seed's, so with several seeds it does not belong to the mean drawn), else None."""
    return cell.get("interval95") if len(cell["seeds"]) == 1 else None


def error_bar(cell):
    """(below, above) the mean of a results.json cell: its drawn_interval, else the standard deviation
    (0 for a single run)."""
    interval = drawn_interval(cell)
    if interval:
        return cell["mean"] - interval["low"], interval["high"] - cell["mean"]
    return (cell["sd"] or 0.0,) * 2


def runs_note(direction, cell):
    """What a drawn point stands on: its runs (folds for ASR -> SER) and seeds, e.g. '8 folds', '3 runs'."""
    n, seeds = cell["n"], max(len(cell["seeds"]), 1)
    unit = "fold" if direction == "asr2ser" and seeds == 1 else "run"
    text = f"{n} {unit}{'s' if n != 1 else ''}"
    return text + (f", {seeds} seeds" if seeds > 1 else "")


def unequal_runs(direction, results):
    """A warning when transfer rows stand on fewer runs than the Baseline (ASR -> SER on one fold against
    the 8-fold Baseline), else ''."""
    base = max((c["n"] for c in results[BASELINE].values()), default=0)
    rows = {c["n"] for row, cells in results.items() if row != BASELINE for c in cells.values() if c["n"] > 0}
    if not base or not rows or max(rows) >= base:
        return ""
    what = "fold" if direction == "asr2ser" else "run"
    counts = f"{min(rows)}" if min(rows) == max(rows) else f"{min(rows)} to {max(rows)}"
    return (f"Note: the transfer points stand on {counts} {what}{'' if max(rows) == 1 else 's'}, the Baseline "
            f"on {base}: they are not measured on the same {'speakers' if direction == 'asr2ser' else 'runs'}.")


def _draw_column(ax, direction, name, results, paper_curve, colour):
    """One metric's panel: the recipe's points (n marked), its Baseline (band: 95% interval) and the
    paper's numbers; returns (points drawn, Baseline drawn)."""
    layers = sorted(CONSTANT_LAYERS)
    points = [(l, results[f"l{l}"][name]) for l in layers if results[f"l{l}"][name]["n"] > 0]
    if points:
        x = [l for l, _ in points]
        y = [c["mean"] for _, c in points]
        ax.errorbar(x, y, yerr=np.array([error_bar(c) for _, c in points]).T, marker="o", color=colour,
                    capsize=3)
        for l, c in points:
            ax.annotate(runs_note(direction, c), (l, c["mean"]), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=6, color="dimgrey")
    base = results[BASELINE][name]
    if base["n"] > 0:
        ax.axhline(base["mean"], color=colour, linestyle=":", linewidth=1.2)
        band = drawn_interval(base)
        if band:
            ax.axhspan(band["low"], band["high"], color=colour, alpha=0.1, lw=0)
        ax.annotate(f"Baseline: {runs_note(direction, base)}", (1.0, base["mean"]), xycoords=("axes fraction", "data"),
                    xytext=(-3, 3), textcoords="offset points", ha="right", fontsize=6, color=colour)
    if paper_curve is not None:
        x, y, paper_base = paper_curve
        if x:
            ax.plot(x, y, linestyle="--", marker="x", color=colour, linewidth=1, alpha=0.8)
        if paper_base is not None:
            ax.axhline(paper_base, color=colour, linestyle="-.", linewidth=0.8, alpha=0.6)
    ax.set_title(name, fontsize=9)
    ax.set_xticks(layers)
    ax.margins(y=0.12)   # room for the run counts above the points
    ax.grid(alpha=0.3)
    if not points and base["n"] == 0:
        ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    return bool(points), base["n"] > 0


def _legend_handles(direction, any_base, curves):
    handles = [Line2D([], [], color="grey", marker="o", label="recipe (n: runs behind the point)")]
    if any_base:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="recipe Baseline (band: 95% interval)"))
    if curves:
        corpus = TARGET_CORPUS[direction]
        handles += [Line2D([], [], color="grey", linestyle="--", marker="x",
                           label=f"paper's numbers, real {corpus} (not this recipe)"),
                    Line2D([], [], color="grey", linestyle="-.", label=f"paper's Baseline, real {corpus}")]
    return handles


def transfer_figure(direction, results, paper=None):
    """results: the direction's part of tables.py's results.json; paper: the direction's part of
    read_paper_results (the paper's numbers on the real corpora), drawn dashed so that they are not
    taken for the recipe's. A panel per metric (column). Returns (the figure, recipe curves drawn,
    paper curves drawn)."""
    columns = [column_name(metric, subset) for metric, subset in COLUMNS[direction]]
    fig, axes = plt.subplots(2, (len(columns) + 1) // 2, figsize=(8, 6.6), squeeze=False)
    curves = paper_curves(direction, paper or {})
    drawn, any_base = 0, False
    for i, (ax, name) in enumerate(zip(axes.flat, columns)):
        has_points, has_base = _draw_column(ax, direction, name, results, curves.get(name), f"C{i}")
        drawn += has_points
        any_base = any_base or has_base
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("No. constant layers (l)")
    for ax in axes[:, 0]:
        ax.set_ylabel("error (%)")
    note = unequal_runs(direction, results)
    fig.suptitle(TITLES[direction] + (f"\n{note}" if note else ""), fontsize=9,
                 color="firebrick" if note else "black")
    fig.legend(handles=_legend_handles(direction, any_base, curves), fontsize=7, ncol=2, loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig, drawn, len(curves)


def plot_transfer(direction, results, out_png, paper=None):
    """transfer_figure as a PNG; returns (recipe curves drawn, paper curves drawn)."""
    fig, drawn, paper_drawn = transfer_figure(direction, results, paper)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return drawn, paper_drawn


def _filter_grid(weights, columns=8, pad=1):
    """(filters, 1, time, freq) conv weights -> one image of tiles, each filter scaled to [-1, 1]."""
    w = np.asarray(weights, dtype=np.float64)[:, 0]
    n, t, f = w.shape
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (f + pad) - pad, columns * (t + pad) - pad), np.nan)
    for k in range(n):
        tile = w[k] / max(np.abs(w[k]).max(), 1e-12)
        r, c = divmod(k, columns)
        # frequency upwards: rows of the image are frequency bins, highest first
        grid[r * (f + pad):r * (f + pad) + f, c * (t + pad):c * (t + pad) + t] = tile.T[::-1]
    return grid


def plot_filters(models, out_png):
    """models: {title: ConvNet}. The first-layer filters of each, side by side, with a colour bar; the
    gaps between filters are dark grey (white is a weight of 0 in this colour map)."""
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models) + 0.9, 4.6), squeeze=False)
    axes = axes[0]
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.3")
    for ax, (title, model) in zip(axes, models.items()):
        weights = model.layer1[0].weight.detach().cpu().numpy()
        image = ax.imshow(_filter_grid(weights), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}: {weights.shape[0]} filters {weights.shape[2]}x{weights.shape[3]} "
                     f"(time x freq)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), fraction=0.025, pad=0.02, shrink=0.85,
                 label="weight / the filter's largest |weight|")
    fig.savefig(out_png, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_cka(columns, out_png, more=None):
    """columns: {name: [CKA of layers 1..5]} (read_cka_table); more: {measure title: columns} of other
    measures of the same pairs (SVCCA, PWCCA), drawn in panels beside the CKA one."""
    panels = {"linear CKA": columns, **(more or {})}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (measure, cols) in zip(axes[0], panels.items()):
        for name, values in cols.items():
            style = "-o" if name == "asr_ser" else "--."
            ax.plot(range(1, len(values) + 1), values, style, label=CKA_LABELS.get(name, name))
        ax.set_xlabel("layer")
        ax.set_ylabel(measure)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(1, 6))
        ax.set_title(f"{measure} of the representations of the same frames", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def plot_probes(rows, out_png):
    """rows: read_probe_table's. A panel per label: accuracy vs layer, a line per network starting from
    the input (layer 0), chance dotted."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, axes = plt.subplots(1, max(len(labels), 1), figsize=(4.2 * max(len(labels), 1), 3.6), squeeze=False)
    for ax, label in zip(axes[0], labels):
        mine = [r for r in rows if r["label"] == label]
        start = [r for r in mine if r["network"] == "input"]
        for i, network in enumerate(dict.fromkeys(r["network"] for r in mine if r["network"] != "input")):
            points = sorted(start + [r for r in mine if r["network"] == network], key=lambda r: r["layer"])
            ax.plot([r["layer"] for r in points], [r["accuracy"] for r in points], "-o" if i == 0 else "--s",
                    color=f"C{i}", label=PROBE_NETWORKS.get(network, network))
        ax.axhline(mine[0]["chance"], color="grey", linestyle=":", label="chance (majority class)")
        ax.set_xlabel("layer (0: the input window)")
        ax.set_ylabel("probe accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(0, 6))
        ax.set_title(f"{label} ({mine[0]['classes']} classes)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transfer")
    t.add_argument("--paper-results", default=str(PAPER_RESULTS),
                   help="the paper's numbers on the real corpora (tables.py's format); '' for none [%(default)s]")
    t.add_argument("results_json")
    t.add_argument("out_dir")
    f = sub.add_parser("filters")
    f.add_argument("--asr-model", required=True)
    f.add_argument("--ser-model", required=True)
    f.add_argument("out_png")
    c = sub.add_parser("cka")
    c.add_argument("--svcca", help="SVCCA per layer (cka.py --svcca-out), a panel beside CKA")
    c.add_argument("--pwcca", help="PWCCA per layer (cka.py --pwcca-out), a panel beside CKA")
    c.add_argument("cka_tsv")
    c.add_argument("out_png")
    pr = sub.add_parser("probes")
    pr.add_argument("probes_tsv")
    pr.add_argument("out_png")
    args = parser.parse_args(argv)
    if args.cmd == "transfer":
        path = Path(args.results_json)
        if not path.is_file():
            raise DataError(f"{path} not found: run python3 -m pyscripts.transfer.tables first")
        results = json.loads(path.read_text())
        paper = read_paper_results(args.paper_results) if args.paper_results else {}
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        for direction in (d for d in DIRECTIONS if d in results):  # results.json holds the claims too
            out = Path(args.out_dir) / f"transfer_{direction}.png"
            plot_transfer(direction, results[direction], out, paper.get(direction))
            log.info("wrote %s", out)
    elif args.cmd == "filters":
        from pyscripts.nnet.model import load_package
        plot_filters({"ASR": load_package(args.asr_model)[0], "SER": load_package(args.ser_model)[0]},
                     args.out_png)
        log.info("wrote %s", args.out_png)
    elif args.cmd == "probes":
        from pyscripts.transfer.probes import read_probe_table
        plot_probes(read_probe_table(args.probes_tsv), args.out_png)
        log.info("wrote %s", args.out_png)
    else:
        more = {title: read_cka_table(path) for title, path in (("SVCCA", args.svcca), ("PWCCA", args.pwcca))
                if path}
        plot_cka(read_cka_table(args.cka_tsv), args.out_png, more)
        log.info("wrote %s", args.out_png)


if __name__ == "__main__":
    main()
