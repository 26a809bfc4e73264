"""Trains lines of a transfer jobs file (pyscripts/transfer/plan.py) one after the other in one process.

The rows l >= 2 of one fold and seed freeze the same source layers and read the same frames in the
same order, so the first of them computes the frozen layers' outputs (pyscripts/nnet/trunk_cache.py:
layers 1..3, and 1..2 for the l = 2 row) and the next ones reuse them: each training gives what it
gives when run alone, bit for bit, and the group costs about one trunk pass instead of one per row
(plan.trunk_groups forms the groups). A finished line (final.pt up to date) is skipped; each training
also logs to its EXP_DIR/log/train.log.

  python3 -m pyscripts.transfer.train_group [--config FILE] [--set KEY=VALUE ...] [--cmvn-stats FILE]
      [--device D] [--num-threads N] JOBS_FILE LINE [LINE ...]

--cmvn-stats: the global CMVN stats every line's input is normalised with (data.cmvn_stats; as the
target task's Baseline: stage 9 trains the ASR Baseline with data/timit/train/cmvn_global.stats).
"""
import argparse
import logging
from pathlib import Path

import torch

from pyscripts.errors import DataError, cli_main
from pyscripts.nnet import train as nnet_train
from pyscripts.nnet.trunk_cache import TrunkShare, cached_depth
from pyscripts.transfer.plan import read_jobs


def job_config(job, config, overrides=(), cmvn_stats: str | None = None) -> dict:
    """The config of a jobs-file line: the target task's YAML and overrides, its source model, frozen
    layers and seed, and the CMVN stats of its input (None: the YAML's data.cmvn_stats)."""
    if job.init_from != "-" and not Path(job.init_from).is_file():
        raise DataError(f"source model {job.init_from} of {job.exp_dir} does not exist; train the baselines "
                        f"first (local/run_transfer.sh stage 1)")
    init = {} if job.init_from == "-" else dict(init_from=job.init_from, freeze_layers=job.freeze_layers,
                                                  reinit_unfrozen=job.reinit_unfrozen)
    return nnet_train.configure(config, overrides, cmvn_stats=cmvn_stats, seed_offset=job.seed - 1, **init)


def train_lines(jobs_file, lines, config, overrides=(), device="auto", cmvn_stats: str | None = None) -> list:
    """Trains the given 1-based lines of jobs_file in order, sharing the frozen-trunk outputs between
    them. Returns the final.pt paths."""
    jobs = read_jobs(jobs_file)
    bad = [n for n in lines if not 1 <= n <= len(jobs)]
    if bad:
        raise DataError(f"{jobs_file} has {len(jobs)} lines, not line {bad[0]}")
    share = TrunkShare(cached_depth(jobs[n - 1].freeze_layers) for n in lines)
    finals = []
    for n in lines:
        job = jobs[n - 1]
        cfg = job_config(job, config, overrides, cmvn_stats)
        (Path(job.exp_dir) / "log").mkdir(parents=True, exist_ok=True)
        # Appends: a resumed training keeps what its earlier runs logged.
        handler = logging.FileHandler(Path(job.exp_dir) / "log/train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        try:
            finals.append(nnet_train.train(cfg, job.train_data, job.dev_data, job.train_targets, job.dev_targets,
                                           job.exp_dir, device, trunk_share=share))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return finals


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="conf/convnet_asr.yaml", help="training YAML of the target task")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--cmvn-stats", help="Kaldi global CMVN stats for every line's input normalisation "
                        "(default: the config's data.cmvn_stats)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--num-threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("jobs_file")
    parser.add_argument("lines", type=int, nargs="+", help="1-based lines of JOBS_FILE")
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    train_lines(args.jobs_file, args.lines, args.config, args.set, args.device, args.cmvn_stats)


if __name__ == "__main__":
    main()
