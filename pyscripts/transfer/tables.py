"""The paper's two transfer tables, from the sweeps' results.

SER -> ASR: rows Baseline, 5..0 under "No. Constant Layers (l)"; columns FER Dev, FER Test, PER Dev,
PER Test (TIMIT, %). ASR -> SER: the same rows; columns E Dev, E Test, UE Dev, UE Test (IEMOCAP, %,
over the folds). A cell is the mean over the runs behind it, with their spread and the number of
runs: "41.2 ± 2.1 (8)" (sample standard deviation), "23.4 (1)" for a single run, "–" when no run has
finished. The spread is across seeds when the row was trained with several (--seeds: the sd of the
seeds' means, each over its folds), else across folds. Two last columns set the paper's numbers beside
them, labelled "real corpora" since they are the paper's on the real TIMIT and IEMOCAP, and the
recipe's mean minus the paper's (in points). They are read from --paper-results, by default
conf/paper_results.tsv (lines `DIRECTION ROW v1 v2 v3 v4`, ROW baseline or l5..l0, values in the
column order, `n/a` allowed, `#` comments); with `--paper-results ''` both columns read n/a.

The runs are the jobs of the sweeps' plans, EXP_ROOT/{ser2asr,asr2ser}/plan (pyscripts/transfer/plan.py,
written by local/run_transfer.sh): their rows, folds and seeds. Where the numbers come from:
  ser2asr  EXP/decode_{dev,test}/scoring/result.json (pyscripts/asr/result.py): the PER at the acoustic
           scale chosen on dev, and the FER of the network alone
  asr2ser  EXP/eval/{valid,test}/metrics.json, E and UE (pyscripts/ser/evaluate.py fold); Dev is the
           validation speakers, Test the fold's held-out speaker

  python3 -m pyscripts.transfer.tables [--exp-root exp/transfer] [--paper-results FILE] OUT_DIR
writes OUT_DIR/tables.md and OUT_DIR/results.json (mean, sd, n and the values of every cell, and the
95% bootstrap interval of its first seed's value: row_intervals), each table followed by its intervals.
"""
import argparse
import json
import logging
import math
from pathlib import Path

from pyscripts import stats
from pyscripts.ser.intervals import read_ser_set
from pyscripts.transfer.paired import transfer_row_test
from pyscripts.errors import DataError, cli_main
from pyscripts.asr.result import read_result, result_path
from pyscripts.transfer.plan import (BASELINE, DIRECTIONS, ROWS, add_plan_options, fold_count, planned_seeds,
                                     read_plans)

log = logging.getLogger(__name__)

# (metric, set) in the paper's column order.
COLUMNS = {"ser2asr": (("FER", "dev"), ("FER", "test"), ("PER", "dev"), ("PER", "test")),
           "asr2ser": (("E", "dev"), ("E", "test"), ("UE", "dev"), ("UE", "test"))}
TITLES = {"ser2asr": "SER -> ASR (target: TIMIT phone recognition)",
          "asr2ser": "ASR -> SER (target: IEMOCAP emotion recognition)"}
ROW_HEADER = "No. Constant Layers (l)"
MISSING = "–"
# The paper's numbers shipped with the recipe (found from the code, so any working directory will do).
PAPER_RESULTS = Path(__file__).resolve().parents[2] / "conf" / "paper_results.tsv"
PAPER_LABEL = "Paper (real corpora)"
SIGNIFICANCE = 0.05  # a cell is marked when its paired test against the Baseline gives a smaller p


def column_name(metric, subset):
    return f"{metric} {subset.capitalize()}"


def row_label(row):
    return "Baseline" if row == BASELINE else row[1:]


# ---------------------------------------------------------------- reading one run's results
def asr_results(exp_dir: str | Path) -> dict[tuple[str, str], float]:
    """{(metric, set): percent} of one ASR run, from its decodes' result records; the results not (yet)
    there are left out."""
    out = {}
    for subset in ("dev", "test"):
        decode_dir = Path(exp_dir) / f"decode_{subset}"
        if not result_path(decode_dir).is_file():
            continue
        result = read_result(decode_dir)
        out[("PER", subset)] = float(result["per"]["percent"])
        if result["fer"] is not None:
            out[("FER", subset)] = float(result["fer"]["percent"])
    return out


def ser_results(exp_dir):
    """{(metric, set): percent} of one SER fold run (Dev = valid, Test = test)."""
    out = {}
    for subset, name in (("valid", "dev"), ("test", "test")):
        path = Path(exp_dir) / "eval" / subset / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            for metric in ("E", "UE"):
                out[(metric, name)] = 100.0 * float(metrics[metric])
    return out


def collect(direction, jobs):
    """{row: {(metric, set): {seed: [values over runs]}}} for the rows of a direction's jobs."""
    read = asr_results if direction == "ser2asr" else ser_results
    cells = {row: {col: {} for col in COLUMNS[direction]} for row in ROWS}
    for job in jobs:
        for col, value in read(job.exp_dir).items():
            cells[job.row][col].setdefault(job.seed, []).append(value)
    return cells


def paired_tests(direction, jobs):
    """{row: {(metric, set): PairedTest}}: each transfer row against the Baseline on the same
    utterances (pyscripts/stats.py), over the finished runs of the first seed both have; rows without
    them are left out."""
    read = asr_results if direction == "ser2asr" else ser_results
    runs = {}
    for job in (j for j in jobs if j.seed == 1):
        if read(job.exp_dir):
            runs.setdefault(job.row, []).append(job.exp_dir)
    tests = {}
    for row in ROWS:
        if row == BASELINE or row not in runs or BASELINE not in runs:
            continue
        for subset in ("dev", "test"):
            try:
                found = transfer_row_test(direction, runs[BASELINE], runs[row], subset)
            except DataError as err:  # results of an older scoring without per-utterance files
                log.warning("%s %s: no paired test on %s (%s)", direction, row, subset, err)
                continue
            for metric, test in found.items():
                tests.setdefault(row, {})[(metric, subset)] = test
    return tests


def row_intervals(direction, jobs):
    """{row: {(metric, set): (low, high)}}, in %: the 95% bootstrap interval of each row's first-seed
    value (pyscripts/stats.py). SER -> ASR: the run's, its utterances resampled (the scoring's
    intervals.json); ASR -> SER: the mean over the folds', all folds' utterances resampled together
    within speakers, once every fold of the row is scored."""
    runs = {}
    for job in jobs:
        if job.seed == 1:
            runs.setdefault(job.row, []).append(Path(job.exp_dir))
    found = {row: _asr_run_intervals(dirs[0]) if direction == "ser2asr" else _ser_row_intervals(dirs)
             for row, dirs in runs.items()}
    return {row: intervals for row, intervals in found.items() if intervals}


def _asr_run_intervals(exp_dir):
    out = {}
    for subset in ("dev", "test"):
        path = exp_dir / f"decode_{subset}" / "scoring" / stats.INTERVALS_JSON
        if path.is_file():
            for metric, block in json.loads(path.read_text()).items():
                if metric in stats.ASR_METRICS and block["low"] is not None:
                    out[(metric, subset)] = (block["low"], block["high"])
    return out


def _ser_row_intervals(fold_dirs):
    out = {}
    for subset, eval_name in (("dev", "valid"), ("test", "test")):
        evals = [d / "eval" / eval_name for d in fold_dirs]
        if not all((e / "decisions").is_file() for e in evals):
            continue
        mean = stats.ser_intervals([read_ser_set(e) for e in evals])["mean"]
        for metric in stats.SER_METRICS:
            if not math.isnan(mean[metric].low):
                out[(metric, subset)] = (100 * mean[metric].low, 100 * mean[metric].high)
    return out


# ---------------------------------------------------------------- rendering
def _sample_sd(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None


def by_seed(cell):
    """A cell's {seed: [values]}; a plain list of values is one seed's."""
    return cell if isinstance(cell, dict) else {1: list(cell)}


def summarise(cell):
    """(mean, sample sd or None, n) of a cell: the mean over all its runs; the sd across its seeds'
    means when it has runs of several seeds, else across its runs."""
    seeds = {seed: values for seed, values in by_seed(cell).items() if values}
    values = [v for vs in seeds.values() for v in vs]
    n = len(values)
    if n == 0:
        return None, None, 0
    spread = [sum(vs) / len(vs) for vs in seeds.values()] if len(seeds) > 1 else values
    return sum(values) / n, _sample_sd(spread), n


def format_cell(values, test=None):
    """mean ± sd (runs), marked * when the paired test against the Baseline gives p < SIGNIFICANCE."""
    mean, sd, n = summarise(values)
    if n == 0:
        return MISSING
    mark = " *" if test is not None and test.p_value < SIGNIFICANCE else ""
    return (f"{mean:.1f} ({n})" if sd is None else f"{mean:.1f} ± {sd:.1f} ({n})") + mark


def format_paper(values):
    """The paper's values of a row with the paper's two decimals, as printed there."""
    if not values:
        return "n/a"
    return " / ".join("n/a" if v is None else f"{v:.2f}" for v in values)


def minus_paper(values, paper_value):
    """The recipe's mean minus the paper's value in points, None when either is missing."""
    mean, _, n = summarise(values)
    return None if n == 0 or paper_value is None else mean - paper_value


def format_difference(row_values, paper_values):
    """The signed differences of a row's columns ("+1.2 / -3.4 / – / –"), n/a without the paper's."""
    if not paper_values:
        return "n/a"
    diffs = [minus_paper(v, p) for v, p in zip(row_values, paper_values)]
    if all(d is None for d in diffs):
        return MISSING
    return " / ".join(MISSING if d is None else f"{d:+.1f}" for d in diffs)


def render_table(direction, cells, paper=None, tests=None):
    """The paper's table layout as Markdown, plus the paper's numbers on the real corpora and the
    recipe's difference to them in two last columns."""
    columns = COLUMNS[direction]
    names = [column_name(m, s) for m, s in columns]
    header = [ROW_HEADER] + names + [f"{PAPER_LABEL}: {' / '.join(names)}", "Recipe − paper (points)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        row_values = [cells.get(row, {}).get(col, []) for col in columns]
        paper_values = (paper or {}).get(row)
        row_tests = (tests or {}).get(row, {})
        lines.append("| " + " | ".join([row_label(row)] + [format_cell(v, row_tests.get(col))
                                                            for v, col in zip(row_values, columns)]
                                       + [format_paper(paper_values), format_difference(row_values, paper_values)])
                     + " |")
    return "\n".join(lines) + "\n"


def first_seed_mean(cell):
    """The mean of a cell's first-seed runs (the value its interval is of), or None without them."""
    first = by_seed(cell).get(1)
    return sum(first) / len(first) if first else None


def render_intervals(direction, cells, intervals):
    """The first seed's value of every cell with its 95% interval, `value [low, high]`, as Markdown."""
    columns = COLUMNS[direction]
    header = [ROW_HEADER] + [column_name(m, s) for m, s in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        shown = []
        for col in columns:
            first = first_seed_mean(cells.get(row, {}).get(col, []))
            interval = intervals.get(row, {}).get(col)
            if first is None:
                shown.append(MISSING)
                continue
            value = f"{first:.1f}"
            shown.append(value if interval is None else f"{value} [{interval[0]:.1f}, {interval[1]:.1f}]")
        lines.append("| " + " | ".join([row_label(row)] + shown) + " |")
    return "\n".join(lines) + "\n"


def read_paper_results(path):
    """{direction: {row: [4 values or None]}} from a paper-results file (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: give the paper's numbers with --paper-results FILE "
                        f"(the recipe ships {PAPER_RESULTS}), or --paper-results '' for none")
    paper = {d: {} for d in DIRECTIONS}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 6 or fields[0] not in DIRECTIONS or fields[1] not in ROWS:
            raise DataError(f"{path}:{number}: expected 'DIRECTION ROW v1 v2 v3 v4' with DIRECTION in "
                            f"{DIRECTIONS} and ROW in {ROWS}, got {line!r}")
        if fields[1] in paper[fields[0]]:
            raise DataError(f"{path}:{number}: a second line for {fields[0]} {fields[1]}; keep one")
        try:
            paper[fields[0]][fields[1]] = [None if v == "n/a" else float(v) for v in fields[2:]]
        except ValueError:
            raise DataError(f"{path}:{number}: values must be numbers or n/a: {line!r}") from None
    return paper


_RESAMPLING = (f"percentile bootstrap, {stats.DEFAULT_RESAMPLES} resamples, seed {stats.DEFAULT_SEED}; "
               "pyscripts/stats.py")
INTERVALS_NOTE = {
    "ser2asr": f"95% confidence intervals, `value [low, high]`: the run's utterances resampled ({_RESAMPLING}).",
    "asr2ser": f"95% confidence intervals, `value [low, high]`, of the mean over folds: the utterances of all "
               f"folds resampled together within speakers ({_RESAMPLING}); a row has its interval once every "
               f"fold is scored."}


def tables_markdown(all_cells, paper, folds_note, paper_source=None, all_tests=None, all_intervals=None):
    parts = []
    for direction in DIRECTIONS:
        table = render_table(direction, all_cells[direction], paper.get(direction), (all_tests or {}).get(direction))
        parts.append(f"### {TITLES[direction]}\n\n{table}")
        if all_intervals is not None:
            intervals = render_intervals(direction, all_cells[direction], all_intervals.get(direction, {}))
            parts.append(f"{INTERVALS_NOTE[direction]}\n\n{intervals}")
    if any(paper.values()):
        paper_note = (f"the paper's numbers (Fayek et al. 2016) on the **real TIMIT and IEMOCAP**, not this "
                      f"recipe's runs (from `{paper_source or 'the paper-results file'}`; E and UE without a "
                      f"spread over folds, which the paper does not give), then the recipe's mean minus the "
                      f"paper's, in points; {MISSING}: no recipe run to compare. The differences say how "
                      f"close the reproduction comes only when the recipe ran on the real corpora")
    else:
        paper_note = "the paper's numbers and the difference to them: n/a (no paper-results file given)"
    legend = (f"Error rates in %. A cell: mean over runs ± sample standard deviation (number of runs); "
              f"{MISSING}: no finished run; *: differs from the Baseline at p < {SIGNIFICANCE:g} (paired "
              f"randomization test on the same utterances, pyscripts/stats.py). {folds_note} "
              f"Last two columns: {paper_note}.\n")
    return legend + "\n" + "\n".join(parts)


def results_json(all_cells, all_tests=None, all_intervals=None):
    out = {}
    for direction, cells in all_cells.items():
        out[direction] = {}
        for row, cols in cells.items():
            out[direction][row] = {}
            for (metric, subset), values in cols.items():
                mean, sd, n = summarise(values)
                seeds = {seed: v for seed, v in by_seed(values).items() if v}
                cell = {"mean": mean, "sd": sd, "n": n, "values": [v for vs in seeds.values() for v in vs],
                        "sd_across": "seeds" if len(seeds) > 1 else "runs",
                        "seeds": {str(seed): v for seed, v in seeds.items()}}
                test = (all_tests or {}).get(direction, {}).get(row, {}).get((metric, subset))
                if test is not None:
                    cell["vs_baseline"] = {"difference": 100 * test.difference, "p_value": test.p_value}
                interval = (all_intervals or {}).get(direction, {}).get(row, {}).get((metric, subset))
                first = first_seed_mean(values)
                if interval is not None and first is not None:
                    cell["interval95"] = {"value": first, "low": interval[0], "high": interval[1]}
                out[direction][row][column_name(metric, subset)] = cell
    return out


def _shown_path(path):
    """The path relative to the recipe dir when it lies inside it (conf/paper_results.tsv)."""
    path = Path(path).resolve()
    root = PAPER_RESULTS.parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def sweep_note(jobs: dict) -> str:
    """What a cell's runs are, from the plans: folds and seeds."""
    seeds = max(planned_seeds(j) for j in jobs.values())
    note = (f"SER -> ASR: one run per row; ASR -> SER: one run per fold ({fold_count(jobs['asr2ser'])}), "
            f"Dev = the fold's validation set, Test = its held-out test speakers.")
    if seeds > 1:
        note += (f" Each row was trained with {seeds} seeds: the ± is the sd across seeds (of each "
                 f"seed's mean over its folds); the paired test and the intervals take the first seed's runs.")
    return note


@cli_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_options(parser)
    parser.add_argument("--paper-results", default=str(PAPER_RESULTS),
                        help="the paper's numbers (see the module doc); '' for none [%(default)s]")
    args = parser.parse_args(argv)
    jobs = read_plans(args.exp_root)
    all_cells = {d: collect(d, jobs[d]) for d in DIRECTIONS}
    all_tests = {d: paired_tests(d, jobs[d]) for d in DIRECTIONS}
    all_intervals = {d: row_intervals(d, jobs[d]) for d in DIRECTIONS}
    paper = read_paper_results(args.paper_results) if args.paper_results else {}
    paper_source = _shown_path(args.paper_results) if args.paper_results else None
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text(tables_markdown(all_cells, paper, sweep_note(jobs), paper_source, all_tests,
                                                   all_intervals))
    (out / "results.json").write_text(json.dumps(results_json(all_cells, all_tests, all_intervals), indent=1) + "\n")
    print((out / "tables.md").read_text(), end="")

if __name__ == "__main__":
    main()
