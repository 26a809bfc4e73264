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
With --linked-baseline the baseline's first seed is a model linked from another stage, not planned.

The source models are the baselines of the other direction unless given: ser2asr starts from the SER
baseline of one fold (--ser-source-fold), asr2ser from the ASR baseline. The baselines therefore run
first (--which baseline), then the transfers (--which transfer).

  python3 -m pyscripts.transfer.plan --direction ser2asr [options] [--groups GROUPS_FILE] JOBS_FILE
writes one line per training, tab-separated (see JOB_FIELDS), and with --groups one line per process:
the jobs-file lines it trains, one after the other (trunk_groups); local/transfer_train_job.sh runs one.
"""
import argparse
import logging
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from pyscripts.kaldi.datadir import read_table
from pyscripts.errors import DataError, cli_main
from pyscripts.nnet.model import TRANSFERABLE_LAYERS
from pyscripts.nnet.trunk_cache import MIN_FROZEN

log = logging.getLogger(__name__)

DIRECTIONS = ("ser2asr", "asr2ser")
BASELINE = "baseline"
# Rows in the order of the paper's tables: Baseline, then l = 5 down to 0.
CONSTANT_LAYERS = tuple(range(TRANSFERABLE_LAYERS, -1, -1))
ROWS = (BASELINE,) + tuple(f"l{n}" for n in CONSTANT_LAYERS)


@dataclass(frozen=True)
class Job:
    direction: str
    row: str                 # baseline | l5 .. l0
    fold: str                # fold name for asr2ser, "-" for ser2asr
    seed: int                # 1..N: trained with training.seed + seed - 1
    exp_dir: str
    init_from: str           # source final.pt, "-" for the baseline
    freeze_layers: int
    reinit_unfrozen: bool
    train_data: str
    dev_data: str
    train_targets: str
    dev_targets: str

    @property
    def constant_layers(self):
        """l of the paper's tables, None for the baseline."""
        return None if self.row == BASELINE else int(self.row[1:])


# The columns of a jobs file, in order (local/transfer_job.sh reads them by these names).
JOB_FIELDS = tuple(f.name for f in fields(Job))


@dataclass
class Setup:
    """Where the data, targets and models of both tasks are (defaults: the recipe's layout)."""
    exp_root: str = "exp/transfer"
    asr_train_data: str = "data/timit/train"
    asr_dev_data: str = "data/timit/dev"
    asr_train_targets: str = "exp/mono_ali/targets"         # targets dirs (steps/ali_to_targets.sh)
    asr_dev_targets: str = "exp/mono_ali_dev/targets"
    ser_folds_dir: str = "data/iemocap/folds"     # fold<k>/{train,valid,test} and plan (pyscripts/ser/folds.py)
    ser_targets_dir: str = "exp/ser/targets"      # fold<k>/{train,valid,test}/targets.scp
    asr_source: str = ""                          # empty: the ser2asr baseline
    ser_source: str = ""                          # empty: the asr2ser baseline of ser_source_fold
    ser_source_fold: str = "fold1"
    folds: str = ""                               # asr2ser on these folds only (comma-separated); empty: all
    layers: str = ""                              # these l only (comma-separated, e.g. "3,0"); empty: 5..0
    seeds: int = 1                                # trainings per row (and fold), each with another seed
    reinit_unfrozen: bool = False


def read_folds(folds_dir, subset=""):
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


def source_model(direction, setup, folds):
    """The model a direction's transfer jobs start from: the given one, or the other direction's
    baseline (for ser2asr, the SER baseline of setup.ser_source_fold)."""
    if direction == "asr2ser":
        return setup.asr_source or f"{setup.exp_root}/ser2asr/{BASELINE}/final.pt"
    if not setup.ser_source and setup.ser_source_fold not in folds:
        raise DataError(f"--ser-source-fold {setup.ser_source_fold} is not a fold of {setup.ser_folds_dir} "
                        f"(folds: {', '.join(folds)})")
    return setup.ser_source or f"{setup.exp_root}/asr2ser/{BASELINE}/{setup.ser_source_fold}/final.pt"


def planned_rows(layers=""):
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


def row_dir(row, seed):
    """The directory name of a row's run with seed k: ROW for the first seed, ROW.seedK after it."""
    return row if seed == 1 else f"{row}.seed{seed}"


def plan_direction(direction, setup, folds):
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
        init = dict(init_from="-" if is_baseline else source,
                    freeze_layers=0 if is_baseline else int(row[1:]),
                    reinit_unfrozen=False if is_baseline else setup.reinit_unfrozen)
        run_dir = f"{setup.exp_root}/{direction}/{row_dir(row, seed)}"
        if direction == "ser2asr":
            jobs.append(Job(direction, row, "-", seed, run_dir, **init,
                            train_data=setup.asr_train_data, dev_data=setup.asr_dev_data,
                            train_targets=setup.asr_train_targets, dev_targets=setup.asr_dev_targets))
        else:
            for fold in folds:
                jobs.append(Job(direction, row, fold, seed, f"{run_dir}/{fold}", **init,
                                train_data=f"{setup.ser_folds_dir}/{fold}/train",
                                dev_data=f"{setup.ser_folds_dir}/{fold}/valid",
                                train_targets=f"{setup.ser_targets_dir}/{fold}/train",
                                dev_targets=f"{setup.ser_targets_dir}/{fold}/valid"))
    return jobs


def select(jobs, which, linked_baseline=False):
    """The baseline or transfer jobs (or all); with linked_baseline, without the baseline's first seed."""
    if which not in ("all", "baseline", "transfer"):
        raise DataError(f"--which {which}: use all, baseline or transfer")
    return [j for j in jobs if (which == "all" or (j.row == BASELINE) == (which == "baseline"))
            and not (linked_baseline and j.row == BASELINE and j.seed == 1)]


def trunk_groups(jobs):
    """The jobs in groups of one process each, as lists of 1-based line numbers, in the jobs' order: the
    rows with a cached frozen trunk (l >= 2) share it when they have the same source, data and seed (one
    fold, one seed; pyscripts/nnet/trunk_cache.py); every other job is a group of its own."""
    groups, shared = [], {}
    for number, job in enumerate(jobs, 1):
        if job.init_from == "-" or job.freeze_layers < MIN_FROZEN:
            groups.append([number])
            continue
        key = (job.direction, job.fold, job.seed, job.init_from, job.train_data, job.dev_data,
               job.train_targets, job.dev_targets)
        if key not in shared:
            shared[key] = []
            groups.append(shared[key])
        shared[key].append(number)
    return groups


def write_jobs(path, jobs):
    lines = ["\t".join(str(v).lower() if isinstance(v, bool) else str(v) for v in astuple(j)) for j in jobs]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_jobs(path):
    jobs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        values = line.split("\t")
        if len(values) != len(JOB_FIELDS):
            raise DataError(f"{path}:{number}: {len(values)} fields, expected {len(JOB_FIELDS)}; "
                            f"re-make it with pyscripts.transfer.plan")
        record = dict(zip(JOB_FIELDS, values))
        record["freeze_layers"] = int(record["freeze_layers"])
        record["seed"] = int(record["seed"])
        record["reinit_unfrozen"] = record["reinit_unfrozen"] == "true"
        jobs.append(Job(**record))
    return jobs


def _add_setup_options(parser):
    defaults = Setup()
    for f in fields(Setup):
        if f.type is bool:
            parser.add_argument("--" + f.name.replace("_", "-"), action="store_true")
        elif f.type is int:
            parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=getattr(defaults, f.name))
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), default=getattr(defaults, f.name))


def setup_from_args(args):
    return Setup(**{f.name: getattr(args, f.name) for f in fields(Setup)})


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direction", required=True, choices=DIRECTIONS)
    parser.add_argument("--which", default="all", choices=("all", "baseline", "transfer"))
    parser.add_argument("--linked-baseline", action="store_true",
                        help="the baseline's first seed is linked from another stage: leave it out")
    _add_setup_options(parser)
    parser.add_argument("--groups", help="output: one line per process, the jobs-file lines it trains")
    parser.add_argument("jobs_file", help="output: one tab-separated line per training")
    args = parser.parse_args(argv)
    setup = setup_from_args(args)
    # ser2asr needs the folds only to find its default SER source model.
    needs_folds = args.direction == "asr2ser" or not setup.ser_source
    folds = read_folds(setup.ser_folds_dir, setup.folds) if needs_folds else []
    jobs = select(plan_direction(args.direction, setup, folds), args.which, args.linked_baseline)
    write_jobs(args.jobs_file, jobs)
    if args.groups:
        Path(args.groups).write_text("".join(" ".join(map(str, g)) + "\n" for g in trunk_groups(jobs)))
    done = sum((Path(j.exp_dir) / "final.pt").exists() for j in jobs)
    log.info("%s (%s): %d jobs written to %s, %d of them already finished (final.pt: not re-run)",
             args.direction, args.which, len(jobs), args.jobs_file, done)


if __name__ == "__main__":
    main()
