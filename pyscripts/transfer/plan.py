"""The transfer-learning sweeps of the seed: which ConvNet trainings each direction needs.

A direction is ser2asr (source SER, target ASR: TIMIT frame targets) or asr2ser (source ASR, target
SER: emotion + sil frame targets, once per cross-validation fold). Each direction has 7 rows:
  Baseline   trained from scratch on the target task (no source model)
  l = 5..0   layers 1..l copied from the source model and frozen (BatchNorm statistics included),
             layers l+1..5 copied and fine-tuned, layer 6 (the output) fresh.
             With --reinit-unfrozen (the reading of Yosinski et al. 2014), layers l+1..5 are drawn
             afresh instead; l = 0 is then a training from scratch like the baseline (another draw).
For asr2ser every row runs over every fold, so 7 x 8 trainings with IEMOCAP's fold plan.
--layers and --folds plan a subset (e.g. a smoke test: --layers 3 --folds fold1).
--seeds N trains every row N times, seed k with training.seed + k - 1 (another draw of the fresh
layers, the frame order and the dropout; the same source model): seed 1 in ROW/, seed k in ROW.seedK/.

Every row of a direction normalises its input as the direction's Baseline does, so that Baseline and
rows differ only in what they copy and freeze: ser2asr with the global CMVN stats of --asr-cmvn-stats
(stage 9's ASR Baseline: data/timit/train/cmvn_global.stats), asr2ser with its fold's training frames'
own statistics (stage 11's SER Baseline).

The source models are the baselines of the other direction unless given: ser2asr starts from the SER
baseline of one fold (--ser-source-fold), asr2ser from the ASR baseline. The baselines therefore run
first, then the transfers.

The plan of a direction is one file, EXP_ROOT/DIRECTION/plan: one tab-separated line per training (the
columns of JOB_FIELDS; l is the row's, `l3`). It is parsed here only; the shell asks for fields:
  python3 -m pyscripts.transfer.plan write --direction D [options] PLAN
  python3 -m pyscripts.transfer.plan groups --which baseline|transfer [--linked-baseline] PLAN GROUPS
      one line per process of a job array: the plan lines it trains (trunk_groups); with
      --linked-baseline without the baseline's first seed (a model linked from another stage)
  python3 -m pyscripts.transfer.plan fields [--lines 'N ...' | --nth-fold K] [--unique] PLAN KEY...
      the KEYs (JOB_FIELDS, freeze_layers, label) of the selected lines, tab-separated, one line each
local/run_transfer.sh writes the plans, local/transfer_job.sh runs a group or scores a fold, and
pyscripts/transfer/tables.py and report.py read them.
"""
import argparse
import logging
from dataclasses import MISSING, astuple, dataclass, fields
from pathlib import Path

from pyscripts.kaldi.datadir import read_table
from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.layers import MIN_FROZEN, TRANSFERABLE_LAYERS

log = logging.getLogger(__name__)

DIRECTIONS = ("ser2asr", "asr2ser")
BASELINE = "baseline"
# Rows in the order of the paper's tables: Baseline, then l = 5 down to 0.
CONSTANT_LAYERS = tuple(range(TRANSFERABLE_LAYERS, -1, -1))
ROWS = (BASELINE,) + tuple(f"l{n}" for n in CONSTANT_LAYERS)
PLAN_FILE = "plan"      # EXP_ROOT/DIRECTION/plan
NONE = "-"              # an empty field of a plan line (no fold, no source model, no CMVN stats file)


@dataclass(frozen=True)
class Job:
    direction: str
    row: str                 # baseline | l5 .. l0: the frozen layers l, once
    fold: str                # fold name for asr2ser, "-" for ser2asr
    seed: int                # 1..N: trained with training.seed + seed - 1
    exp_dir: str
    init_from: str           # source final.pt, "-" for the baseline
    reinit_unfrozen: bool
    train_data: str
    dev_data: str
    train_targets: str
    dev_targets: str
    cmvn_stats: str          # global CMVN stats of the input normalisation, "-": the training frames' own

    @property
    def constant_layers(self) -> int | None:
        """l of the paper's tables, None for the baseline."""
        return None if self.row == BASELINE else int(self.row[1:])

    @property
    def freeze_layers(self) -> int:
        """The source layers kept fixed in training: l, 0 for the baseline."""
        return self.constant_layers or 0

    @property
    def label(self) -> str:
        """The training in words, for logs: `l3`, `l3 fold2`, `l3 fold2 seed 2`."""
        return " ".join([self.row] + ([self.fold] if self.fold != NONE else [])
                        + ([f"seed {self.seed}"] if self.seed > 1 else []))


# The columns of a plan file, in order.
JOB_FIELDS = tuple(f.name for f in fields(Job))
# What `fields` answers: the columns, and what follows from them.
QUERY_KEYS = JOB_FIELDS + ("freeze_layers", "label")


@dataclass
class Setup:
    """Where the data, targets and models of both tasks are (given by local/run_transfer.sh, whose defaults
    are the recipe's layout, local/layout.sh), and which rows to train."""
    asr_train_data: str
    asr_dev_data: str
    asr_train_targets: str                        # targets dirs (steps/ali_to_targets.sh)
    asr_dev_targets: str
    ser_folds_dir: str                            # fold<k>/{train,valid,test} and plan (pyscripts/ser/folds.py)
    ser_targets_dir: str                          # fold<k>/{train,valid,test}/targets.scp
    exp_root: str = "exp/transfer"
    asr_cmvn_stats: str = ""                      # the ASR Baseline's global CMVN stats; empty: frames' own
    asr_source: str = ""                          # empty: the ser2asr baseline
    ser_source: str = ""                          # empty: the asr2ser baseline of ser_source_fold
    ser_source_fold: str = "fold1"
    folds: str = ""                               # asr2ser on these folds only (comma-separated); empty: all
    layers: str = ""                              # these l only (comma-separated, e.g. "3,0"); empty: 5..0
    seeds: int = 1                                # trainings per row (and fold), each with another seed
    reinit_unfrozen: bool = False


def read_folds(folds_dir: str | Path, subset: str = "") -> list[str]:
    """Fold names from the fold plan written by pyscripts/ser/folds.py, in its order; `subset`
    (comma-separated names) keeps only those."""
    plan = Path(folds_dir) / "plan"
    if not plan.is_file():
        raise DataError(f"{plan} not found: make the SER folds first (local/ser_make_folds.sh)")
    folds = list(read_table(plan))
    if not folds:
        raise DataError(f"{plan} lists no fold")
    if subset:
        wanted = subset.split(",")
        unknown = [f for f in wanted if f not in folds]
        if unknown:
            raise DataError(f"--folds {subset}: {', '.join(unknown)} not in {plan} ({', '.join(folds)})")
        folds = [f for f in folds if f in wanted]
    return folds


def source_model(direction: str, setup: Setup, folds: list[str]) -> str:
    """The model a direction's transfer jobs start from: the given one, or the other direction's
    baseline (for ser2asr, the SER baseline of setup.ser_source_fold)."""
    if direction == "asr2ser":
        return setup.asr_source or f"{setup.exp_root}/ser2asr/{BASELINE}/final.pt"
    if not setup.ser_source and setup.ser_source_fold not in folds:
        raise DataError(f"--ser-source-fold {setup.ser_source_fold} is not a fold of {setup.ser_folds_dir} "
                        f"(folds: {', '.join(folds)})")
    return setup.ser_source or f"{setup.exp_root}/asr2ser/{BASELINE}/{setup.ser_source_fold}/final.pt"


def planned_rows(layers: str = "") -> tuple[str, ...]:
    """Baseline and the rows l of `layers` (comma-separated; empty: all of 5..0), in table order."""
    if not layers:
        return ROWS
    try:
        wanted = {int(n) for n in layers.split(",")}
    except ValueError:
        wanted = {-1}
    if not wanted <= set(CONSTANT_LAYERS):
        raise DataError(f"--layers {layers}: give numbers of constant layers in 0..{TRANSFERABLE_LAYERS}, "
                        f"comma-separated")
    return (BASELINE,) + tuple(f"l{n}" for n in CONSTANT_LAYERS if n in wanted)


def row_dir(row: str, seed: int) -> str:
    """The directory name of a row's run with seed k: ROW for the first seed, ROW.seedK after it."""
    return row if seed == 1 else f"{row}.seed{seed}"


def plan_direction(direction: str, setup: Setup, folds: list[str]) -> list[Job]:
    """All 7 (ser2asr) or 7 x len(folds) (asr2ser) jobs of a direction per seed, rows in table order
    (fewer rows with setup.layers), seed by seed."""
    if direction not in DIRECTIONS:
        raise DataError(f"unknown direction '{direction}': use {' or '.join(DIRECTIONS)}")
    if int(setup.seeds) < 1:
        raise DataError(f"--seeds {setup.seeds}: give the number of trainings per row, 1 or more")
    source = source_model(direction, setup, folds)
    return [job for seed in range(1, int(setup.seeds) + 1)
            for job in _plan_seed(direction, setup, folds, source, seed)]


def _plan_seed(direction, setup, folds, source, seed):
    jobs = []
    for row in planned_rows(setup.layers):
        is_baseline = row == BASELINE
        init = dict(init_from=NONE if is_baseline else source,
                    reinit_unfrozen=False if is_baseline else setup.reinit_unfrozen)
        run_dir = f"{setup.exp_root}/{direction}/{row_dir(row, seed)}"
        if direction == "ser2asr":
            # The ASR Baseline's normalisation for every row (the SER rows' is their frames' own, below).
            jobs.append(Job(direction, row, NONE, seed, run_dir, **init,
                            train_data=setup.asr_train_data, dev_data=setup.asr_dev_data,
                            train_targets=setup.asr_train_targets, dev_targets=setup.asr_dev_targets,
                            cmvn_stats=setup.asr_cmvn_stats or NONE))
        else:
            for fold in folds:
                jobs.append(Job(direction, row, fold, seed, f"{run_dir}/{fold}", **init,
                                train_data=f"{setup.ser_folds_dir}/{fold}/train",
                                dev_data=f"{setup.ser_folds_dir}/{fold}/valid",
                                train_targets=f"{setup.ser_targets_dir}/{fold}/train",
                                dev_targets=f"{setup.ser_targets_dir}/{fold}/valid", cmvn_stats=NONE))
    return jobs


def select(jobs: list[Job], which: str, linked_baseline: bool = False) -> list[Job]:
    """The baseline or transfer jobs (or all); with linked_baseline, without the baseline's first seed."""
    if which not in ("all", "baseline", "transfer"):
        raise DataError(f"--which {which}: use all, baseline or transfer")
    return [j for j in jobs if (which == "all" or (j.row == BASELINE) == (which == "baseline"))
            and not (linked_baseline and j.row == BASELINE and j.seed == 1)]


def trunk_groups(jobs: list[Job], numbers: list[int] | None = None) -> list[list[int]]:
    """The jobs in groups of one process each, as lists of their line numbers (`numbers`, default 1..n),
    in the jobs' order: the rows with a cached frozen trunk (l >= 2) share it when they have the same
    source, data, normalisation and seed (one fold, one seed; pyscripts/nnet/trunk_cache.py); every
    other job is a group of its own."""
    groups, shared = [], {}
    for number, job in zip(numbers or range(1, len(jobs) + 1), jobs):
        if job.init_from == NONE or job.freeze_layers < MIN_FROZEN:
            groups.append([number])
            continue
        key = (job.direction, job.fold, job.seed, job.init_from, job.train_data, job.dev_data,
               job.train_targets, job.dev_targets, job.cmvn_stats)
        if key not in shared:
            shared[key] = []
            groups.append(shared[key])
        shared[key].append(number)
    return groups


# ---------------------------------------------------------------- the plan file
def plan_path(exp_root: str | Path, direction: str) -> Path:
    return Path(exp_root) / direction / PLAN_FILE


def write_jobs(path: str | Path, jobs: list[Job]) -> None:
    lines = ["\t".join(_shown(v) for v in astuple(j)) for j in jobs]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(line + "\n" for line in lines))


def _parse_line(line: str, where: str) -> Job:
    values = line.split("\t")
    if len(values) != len(JOB_FIELDS):
        raise DataError(f"{where}: {len(values)} fields, expected {len(JOB_FIELDS)} ({' '.join(JOB_FIELDS)}); "
                        f"re-make it with local/run_transfer.sh (pyscripts.transfer.plan write)")
    record = dict(zip(JOB_FIELDS, values))
    if record["direction"] not in DIRECTIONS or record["row"] not in ROWS:
        raise DataError(f"{where}: direction {record['direction']!r} and row {record['row']!r}: expected one "
                        f"of {DIRECTIONS} and one of {ROWS}; re-make the plan")
    if not record["seed"].isdigit() or record["reinit_unfrozen"] not in ("true", "false"):
        raise DataError(f"{where}: seed {record['seed']!r} must be a number and reinit_unfrozen "
                        f"{record['reinit_unfrozen']!r} true or false; re-make the plan")
    record["seed"] = int(record["seed"])
    record["reinit_unfrozen"] = record["reinit_unfrozen"] == "true"
    return Job(**record)


def read_jobs(path: str | Path) -> list[Job]:
    """The jobs of a plan file, in its order (line k is jobs[k - 1])."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: write the sweep's plans first (local/run_transfer.sh, any stage)")
    return [_parse_line(line, f"{path}:{number}") for number, line in enumerate(path.read_text().splitlines(), 1)]


def read_plans(exp_root: str | Path) -> dict[str, list[Job]]:
    """{direction: jobs} of the sweeps in exp_root, from their plan files."""
    return {direction: read_jobs(plan_path(exp_root, direction)) for direction in DIRECTIONS}


def planned_folds(jobs: list[Job]) -> list[str]:
    """The folds of a direction's jobs, each once, in the plan's order (none for ser2asr)."""
    return list(dict.fromkeys(j.fold for j in jobs if j.fold != NONE))


def fold_count(jobs: list[Job]) -> str:
    """How many folds a direction's jobs run on, in words: `1 fold`, `8 folds`."""
    n = len(planned_folds(jobs))
    return f"{n} fold" if n == 1 else f"{n} folds"


def planned_seeds(jobs: list[Job]) -> int:
    """The number of seeds the rows were planned with (1 for an empty plan)."""
    return max((j.seed for j in jobs), default=1)


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """The options of the programs that read a sweep's plans and write into OUT_DIR (tables.py, report.py)."""
    parser.add_argument("--exp-root", default=Setup.exp_root,
                        help=f"the sweeps, with their plans EXP_ROOT/DIRECTION/{PLAN_FILE} [%(default)s]")
    parser.add_argument("out_dir")


# ---------------------------------------------------------------- the command line
def _add_setup_options(parser):
    for f in fields(Setup):
        option = "--" + f.name.replace("_", "-")
        if f.type is bool:
            parser.add_argument(option, action="store_true")
        elif f.default is MISSING:
            parser.add_argument(option, required=True)
        else:
            parser.add_argument(option, type=f.type, default=f.default)


def setup_from_args(args: argparse.Namespace) -> Setup:
    return Setup(**{f.name: getattr(args, f.name) for f in fields(Setup)})


def _write(args):
    setup = setup_from_args(args)
    # ser2asr needs the folds only to find its default SER source model.
    needs_folds = args.direction == "asr2ser" or not setup.ser_source
    folds = read_folds(setup.ser_folds_dir, setup.folds) if needs_folds else []
    jobs = plan_direction(args.direction, setup, folds)
    write_jobs(args.plan, jobs)
    log.info("%s: %d trainings planned in %s", args.direction, len(jobs), args.plan)


def _groups(args):
    jobs = read_jobs(args.plan)
    numbered = [(n, j) for n, j in enumerate(jobs, 1) if select([j], args.which, args.linked_baseline)]
    groups = trunk_groups([j for _, j in numbered], [n for n, _ in numbered])
    Path(args.groups).write_text("".join(" ".join(map(str, g)) + "\n" for g in groups))
    done = sum((Path(j.exp_dir) / "final.pt").exists() for _, j in numbered)
    log.info("%s (%s): %d trainings in %d jobs (%s), %d of them already finished (final.pt: not re-run)",
             args.plan, args.which, len(numbered), len(groups), args.groups, done)


def query(jobs: list[Job], keys: list[str], lines: list[int] | None = None, nth_fold: int | None = None,
          where: str = "the plan") -> list[tuple[str, ...]]:
    """The values of `keys` (QUERY_KEYS) of the jobs on `lines` (1-based), or of the jobs of the plan's
    nth_fold-th fold, or of all; booleans as true/false."""
    unknown = [k for k in keys if k not in QUERY_KEYS]
    if unknown:
        raise DataError(f"no field {', '.join(unknown)} in a plan line: ask for {', '.join(QUERY_KEYS)}")
    chosen = jobs
    if lines is not None:
        bad = [n for n in lines if not 1 <= n <= len(jobs)]
        if bad:
            raise DataError(f"{where} has {len(jobs)} lines, not a line {bad[0]}")
        chosen = [jobs[n - 1] for n in lines]
    if nth_fold is not None:
        folds = planned_folds(jobs)
        if not 1 <= nth_fold <= len(folds):
            raise DataError(f"{where} has {len(folds)} folds, not a fold {nth_fold}")
        chosen = [j for j in chosen if j.fold == folds[nth_fold - 1]]
    return [tuple(_shown(getattr(j, k)) for k in keys) for j in chosen]


def _shown(value):
    """A field as a plan line writes it: booleans true/false."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fields(args):
    lines = None if args.lines is None else [int(n) for n in args.lines.split()]
    rows = query(read_jobs(args.plan), args.keys, lines, args.nth_fold, args.plan)
    if args.unique:
        rows = list(dict.fromkeys(rows))
    print("".join("\t".join(row) + "\n" for row in rows), end="")


def _parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="plan a direction's trainings: one line each")
    write.add_argument("--direction", required=True, choices=DIRECTIONS)
    _add_setup_options(write)
    write.add_argument("plan", help="output: the plan file")
    write.set_defaults(run=_write)
    groups = commands.add_parser("groups", help="the processes of a job array: the plan lines each trains")
    groups.add_argument("--which", required=True, choices=("all", "baseline", "transfer"))
    groups.add_argument("--linked-baseline", action="store_true",
                        help="the baseline's first seed is linked from another stage: leave it out")
    groups.add_argument("plan")
    groups.add_argument("groups", help="output: one line per process, the plan lines it trains")
    groups.set_defaults(run=_groups)
    query_ = commands.add_parser("fields", help="fields of plan lines, tab-separated, one line each")
    chosen = query_.add_mutually_exclusive_group()
    chosen.add_argument("--lines", help="these 1-based lines (whitespace-separated) [all]")
    chosen.add_argument("--nth-fold", type=int, metavar="K", help="the lines of the plan's K-th fold")
    query_.add_argument("--unique", action="store_true", help="each distinct answer once, in order")
    query_.add_argument("plan")
    query_.add_argument("keys", nargs="+", metavar="KEY", help=", ".join(QUERY_KEYS))
    query_.set_defaults(run=_fields)
    return parser


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
