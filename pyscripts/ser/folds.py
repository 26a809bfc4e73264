"""Speaker folds for speech emotion recognition: leave-one-speaker-out cross-validation with a fixed
validation set.

The fold conf (Kaldi option syntax, e.g. conf/iemocap_folds.conf) names the validation speakers:
  --validation-speakers=Ses05F,Ses05M
Every other speaker is the test set of one fold (fold1 = the first in C order, ...), the validation
speakers are the valid set of every fold, and the remaining speakers train it. With IEMOCAP's 10
speakers and 2 validation speakers that gives the 8 folds of the paper.

Writes FOLDS_DIR/fold<k>/{train,valid,test}/ as subset data dirs of the full data dir, and
FOLDS_DIR/plan, one line per fold: "fold1 test=Ses01F valid=Ses05F,Ses05M train=Ses01M,...".
"""
import argparse
import logging
import shutil
from pathlib import Path

from pyscripts.kaldi.datadir import read_list_table, subset_data_dir, validate_data_dir, write_table
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import c_sorted, read_kaldi_conf

log = logging.getLogger(__name__)

SUBSETS = ("train", "valid", "test")


def read_fold_conf(path):
    """The validation speakers named by a fold conf file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: fold conf not found; it must name --validation-speakers=SPK1,SPK2")
    opts = read_kaldi_conf(path)
    unknown = sorted(set(opts) - {"validation-speakers"})
    if unknown:
        raise DataError(f"{path}: unknown option(s) {', '.join('--' + o for o in unknown)}; "
                        f"the only option is --validation-speakers")
    speakers = [s for s in opts.get("validation-speakers", "").split(",") if s]
    if not speakers:
        raise DataError(f"{path}: no --validation-speakers given")
    if len(set(speakers)) != len(speakers):
        raise DataError(f"{path}: --validation-speakers lists a speaker twice: {','.join(speakers)}")
    return speakers


def make_fold_plan(speakers, validation, conf="the fold conf"):
    """[{'name': 'fold1', 'train': [...], 'valid': [...], 'test': [spk]}, ...], one fold per
    non-validation speaker. `conf` names the source of `validation` in error messages."""
    speakers = c_sorted(set(speakers))
    unknown = [s for s in validation if s not in speakers]
    if unknown:
        raise DataError(f"{conf}: validation speaker(s) {', '.join(unknown)} not in the data "
                        f"(speakers: {', '.join(speakers)}); fix --validation-speakers")
    tested = [s for s in speakers if s not in validation]
    if len(tested) < 2:
        raise DataError(f"{conf}: {len(tested)} speaker(s) left besides the validation speakers; "
                        f"leave-one-speaker-out needs at least 2")
    valid = c_sorted(validation)
    return [{"name": f"fold{k}", "test": [spk], "valid": valid,
             "train": [s for s in tested if s != spk]}
            for k, spk in enumerate(tested, 1)]


def write_folds(data_dir, folds_dir, plan):
    """Subset data dirs for every fold, and the plan file."""
    data_dir, folds_dir = Path(data_dir), Path(folds_dir)
    spk2utt = read_list_table(data_dir / "spk2utt")
    if folds_dir.exists():  # a previous plan may have had other folds
        shutil.rmtree(folds_dir)
    for fold in plan:
        for subset in SUBSETS:
            utts = [u for spk in fold[subset] for u in spk2utt[spk]]
            dst = subset_data_dir(data_dir, utts, folds_dir / fold["name"] / subset)
            validate_data_dir(dst)
    write_table(folds_dir / "plan", {f["name"]: " ".join(f"{s}={','.join(f[s])}" for s in ("test", "valid", "train"))
                                     for f in plan})


@cli_main
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold-conf", default="conf/iemocap_folds.conf")
    parser.add_argument("data_dir", help="full data dir, e.g. data/iemocap/all")
    parser.add_argument("folds_dir", help="output, e.g. data/iemocap/folds")
    args = parser.parse_args()
    validation = read_fold_conf(args.fold_conf)
    speakers = list(read_list_table(Path(args.data_dir) / "spk2utt"))
    plan = make_fold_plan(speakers, validation, conf=args.fold_conf)
    write_folds(args.data_dir, args.folds_dir, plan)
    spk2utt = read_list_table(Path(args.data_dir) / "spk2utt")
    for fold in plan:
        n = {s: sum(len(spk2utt[spk]) for spk in fold[s]) for s in SUBSETS}
        log.info("%s: test %s (%d utts), valid %s (%d), train %d speakers (%d)", fold["name"],
                 fold["test"][0], n["test"], ",".join(fold["valid"]), n["valid"], len(fold["train"]),
                 n["train"])
    log.info("wrote %d folds to %s", len(plan), args.folds_dir)


if __name__ == "__main__":
    main()
