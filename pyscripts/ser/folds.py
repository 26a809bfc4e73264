"""Speaker folds for speech emotion recognition: the IEMOCAP cross-validation protocols, each a fold
conf in Kaldi option syntax (conf/iemocap_folds.conf, conf/iemocap_folds_<protocol>.conf).

Options of a fold conf:
  --test-unit=speaker|session     each fold tests one speaker, or both speakers of one session [speaker]
  --validation=fixed|session-partner|held-out
      fixed:           --validation-speakers are the valid set of every fold and never tested
      session-partner: the other speaker of the test speaker's session (with --test-unit=speaker)
      held-out:        a --validation-share of the training speakers' utterances (the same speakers
                       train and validate, on different utterances)
      [fixed when --validation-speakers is given]
  --validation-speakers=A,B       (fixed)
  --validation-share=0.2          (held-out) the share of the training utterances that validates
  --utterances=all|improvised     all utterances, or the improvised dialogs only (ids with _impro) [all]
A conf naming only --validation-speakers=Ses05F,Ses05M is the paper's protocol: every other speaker is the
test set of one fold (fold1 = the first in C order, ...), the remaining speakers train it: 8 folds.
conf/iemocap_folds_loso10.conf (--validation=session-partner) gives 10 folds, and
conf/iemocap_folds_superb.conf (--test-unit=session --validation=held-out, SUPERB's 20%) 5 folds.
The held-out utterances are those first in the order of the CRC-32 of their ids: the same utterances
every run, without a seed.

Writes FOLDS_DIR/fold<k>/{train,valid,test}/ as subset data dirs of the full data dir, and
FOLDS_DIR/plan, one line per fold in fold order: "fold1 test=Ses01F valid=Ses05F,Ses05M train=Ses01M,...".
A speaker both in a fold's test set and in its train or valid set is an error.

Scripted sentences shared between a fold's training and test speakers are reported (a warning, and
FOLDS_DIR/leakage: "fold1 shared_sentences=N leaked_test_utts=M test_utts=T"): every IEMOCAP session
performs the same scripts, so a test speaker's scripted lines were also spoken, with other voices, in
training. Two scripted utterances are the same sentence when their ids name the same script dialog and
the same line of it - Ses01F_script01_1_F000 and Ses03M_script01_1_F000 are both line F000 of
script01_1 - whatever the session and the dialog's recording letter. That follows the script's turn
numbering, which an ad-libbed or skipped line shifts; a data dir with a `text` file is compared on its
transcripts instead (case and punctuation ignored). Improvised utterances are never counted.
"""
import argparse
import logging
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pyscripts.kaldi.datadir import read_list_table, read_table, subset_data_dir, validate_data_dir
from pyscripts.corpora.iemocap import is_improvised, script_line, session_of
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import c_sorted, read_kaldi_conf

log = logging.getLogger(__name__)

SUBSETS = ("train", "valid", "test")
TEST_UNITS = ("speaker", "session")
VALIDATIONS = ("fixed", "session-partner", "held-out")
UTTERANCES = ("all", "improvised")
OPTIONS = ("test-unit", "validation", "validation-speakers", "validation-share", "utterances")
DEFAULT_FOLD_CONF = "conf/iemocap_folds.conf"   # the paper's protocol; local/ser_*.sh pass theirs or none

@dataclass(frozen=True)
class FoldConf:
    """A fold conf's protocol (see the module docstring)."""
    test_unit: str = "speaker"
    validation: str = "fixed"
    validation_speakers: tuple = ()
    validation_share: float = 0.2
    utterances: str = "all"


def _choice(path, opts, name, choices, default):
    value = opts.get(name, default)
    if value not in choices:
        raise DataError(f"{path}: --{name}={value}: not one of {'|'.join(choices)}")
    return value


def read_fold_conf(path: Path | str) -> FoldConf:
    """The FoldConf of a fold conf file, checked for options that do not fit together."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: fold conf not found; it must name --validation-speakers=SPK1,SPK2 "
                        f"or another --validation rule")
    opts = read_kaldi_conf(path)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise DataError(f"{path}: unknown option(s) {', '.join('--' + o for o in unknown)}; "
                        f"the options are {', '.join('--' + o for o in OPTIONS)}")
    speakers = tuple(s for s in opts.get("validation-speakers", "").split(",") if s)
    if len(set(speakers)) != len(speakers):
        raise DataError(f"{path}: --validation-speakers lists a speaker twice: {','.join(speakers)}")
    test_unit = _choice(path, opts, "test-unit", TEST_UNITS, "speaker")
    validation = _choice(path, opts, "validation", VALIDATIONS, "fixed")
    utterances = _choice(path, opts, "utterances", UTTERANCES, "all")
    if validation == "fixed" and not speakers:
        raise DataError(f"{path}: no --validation-speakers given (or choose --validation=session-partner|held-out)")
    if validation != "fixed" and speakers:
        raise DataError(f"{path}: --validation-speakers goes with --validation=fixed, not {validation}; "
                        f"remove one of them")
    if validation == "session-partner" and test_unit == "session":
        raise DataError(f"{path}: --validation=session-partner needs --test-unit=speaker (with "
                        f"--test-unit=session the partner is tested too)")
    share = FoldConf.validation_share
    if "validation-share" in opts:
        if validation != "held-out":
            raise DataError(f"{path}: --validation-share goes with --validation=held-out; remove it")
        try:
            share = float(opts["validation-share"])
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            raise DataError(f"{path}: --validation-share={opts['validation-share']}: expected a number "
                            f"between 0 and 1, e.g. 0.2")
    return FoldConf(test_unit, validation, speakers, share, utterances)


def make_fold_plan(speakers: list[str], fold_conf: FoldConf, conf: str = "the fold conf") -> list[dict[str, Any]]:
    """[{'name': 'fold1', 'test': [...], 'valid': [...], 'train': [...]}, ...] by the rule of fold_conf
    (a FoldConf); a held-out fold has 'valid_share' too, and its valid speakers are its train speakers.
    `conf` names the fold conf in error messages."""
    speakers = c_sorted(set(speakers))
    fixed = list(fold_conf.validation_speakers) if fold_conf.validation == "fixed" else []
    unknown = [s for s in fixed if s not in speakers]
    if unknown:
        raise DataError(f"{conf}: validation speaker(s) {', '.join(unknown)} not in the data "
                        f"(speakers: {', '.join(speakers)}); fix --validation-speakers")
    tested = [s for s in speakers if s not in fixed]
    if fold_conf.test_unit == "session":
        sessions = c_sorted({session_of(s, conf) for s in tested})
        units = [[s for s in tested if session_of(s, conf) == sess] for sess in sessions]
    else:
        units = [[s] for s in tested]
    if len(units) < 2:
        raise DataError(f"{conf}: {len(units)} {fold_conf.test_unit}(s) left besides the validation speakers; "
                        f"leaving one out needs at least 2")
    plan = []
    for k, test in enumerate(units, 1):
        if fold_conf.validation == "session-partner":
            valid = [s for s in speakers if s not in test and session_of(s, conf) == session_of(test[0], conf)]
            if not valid:
                raise DataError(f"{conf}: speaker {test[0]} has no session partner in the data, so "
                                f"--validation=session-partner has no valid set for it")
        else:
            valid = c_sorted(fixed)
        fold: dict[str, Any] = {"name": f"fold{k}", "test": test, "valid": valid,
                "train": [s for s in speakers if s not in test and s not in valid]}
        if fold_conf.validation == "held-out":
            fold["valid"] = fold["train"]
            fold["valid_share"] = fold_conf.validation_share
        check_fold_roles(fold, conf)
        plan.append(fold)
    return plan


def check_fold_roles(fold: dict[str, Any], where: Path | str) -> None:
    """A test speaker also in the fold's train or valid set is an error naming the fold and speaker."""
    for spk in fold["test"]:
        for role in ("train", "valid"):
            if spk in fold[role]:
                raise DataError(f"{where}: {fold['name']}: speaker {spk} is in both the test and the {role} "
                                f"set; a fold's test speakers must be unseen in training and validation "
                                f"(fix the fold conf or utt2spk)")


def select_utterances(spk2utt: dict[str, list[str]], utterances: str, where: Path | str) -> dict[str, list[str]]:
    """{speaker: utterances} kept by --utterances (all, or the improvised ones: ids with _impro)."""
    if utterances == "all":
        return spk2utt
    selected = {s: [u for u in utts if is_improvised(u.split("-", 1)[-1])] for s, utts in spk2utt.items()}
    empty = [s for s, utts in selected.items() if not utts]
    if empty:
        raise DataError(f"{where}: speaker(s) {', '.join(empty)} have no improvised utterance (an id "
                        f"SesNN[FM]_impro...); use --utterances=all")
    return selected


def held_out(utts: Iterable[str], share: float) -> set[str]:
    """The share of utts that validates: the first in the order of their ids' CRC-32."""
    order = sorted(utts, key=lambda u: (zlib.crc32(u.encode("utf-8")), u))
    n = min(max(round(share * len(order)), 1), len(order) - 1)
    return set(order[:n])


def fold_utterances(spk2utt: dict[str, list[str]], plan: list[dict[str, Any]],
                    where: Path | str) -> dict[str, dict[str, list[str]]]:
    """{fold: {subset: utterances}} of the plan; checks each fold's subsets by their utterances' speakers."""
    utt2spk = {u: s for s, utts in spk2utt.items() for u in utts}
    folds = {}
    for fold in plan:
        subsets = {s: [u for spk in fold[s] for u in spk2utt[spk]] for s in ("test", "train")}
        if fold.get("valid_share"):
            valid = held_out(subsets["train"], fold["valid_share"])
            subsets["valid"] = [u for u in subsets["train"] if u in valid]
            subsets["train"] = [u for u in subsets["train"] if u not in valid]
        else:
            subsets["valid"] = [u for spk in fold["valid"] for u in spk2utt[spk]]
        check_fold_roles({"name": fold["name"], **{s: c_sorted({utt2spk[u] for u in subsets[s]}) for s in SUBSETS}},
                         where)
        for s in SUBSETS:
            if len(subsets[s]) < 1:
                raise DataError(f"{where}: {fold['name']}: no {s} utterance; the fold conf leaves it empty")
        folds[fold["name"]] = subsets
    return folds


def valid_of(fold: dict[str, Any]) -> str:
    """The valid set as the plan writes it: its speakers, or '20%-of-train' for a held-out fold."""
    return f"{round(100 * fold['valid_share'])}%-of-train" if fold.get("valid_share") else ",".join(fold["valid"])


def plan_line(fold: dict[str, Any], utterances: str = "all") -> str:
    """'test=Ses01F valid=Ses05F,Ses05M train=...', and the utterance selection unless all."""
    line = f"test={','.join(fold['test'])} valid={valid_of(fold)} train={','.join(fold['train'])}"
    return line + (f" utterances={utterances}" if utterances != "all" else "")


def write_folds(data_dir: Path | str, folds_dir: Path | str, plan: list[dict[str, Any]],
                utterances: str = "all") -> dict[str, dict[str, list[str]]]:
    """Subset data dirs for every fold, and the plan file. Returns {fold: {subset: utterances}}."""
    data_dir, folds_dir = Path(data_dir), Path(folds_dir)
    spk2utt = select_utterances(read_list_table(data_dir / "spk2utt"), utterances, data_dir / "spk2utt")
    folds = fold_utterances(spk2utt, plan, data_dir / "utt2spk")
    if folds_dir.exists():  # a previous plan may have had other folds
        shutil.rmtree(folds_dir)
    for name, subsets in folds.items():
        for subset in SUBSETS:
            validate_data_dir(subset_data_dir(data_dir, subsets[subset], folds_dir / name / subset))
    write_lines(folds_dir / "plan", {f["name"]: plan_line(f, utterances) for f in plan})
    return folds


def write_lines(path: Path | str, table: dict) -> None:
    """A "key value" line per entry in the table's order: fold1, fold2, ..., fold10, not C order."""
    Path(path).write_text("".join(f"{k} {v}\n" for k, v in table.items()), encoding="utf-8")


def script_sentences(utts: Iterable[str], text: dict[str, str] | None = None) -> dict[str, str]:
    """{utterance: sentence} of the scripted utterances: their transcript in `text` ({utt: words}) when
    given (lower case, punctuation dropped), else 'script01_1_F000' from the id."""
    sentences = {}
    for utt in utts:
        line = script_line(utt.split("-", 1)[-1])
        if line is None:
            continue
        if text is None:
            sentences[utt] = "_".join(line)
        elif utt in text:
            words = re.findall(r"[a-z0-9']+", text[utt].lower())
            if words:
                sentences[utt] = " ".join(words)
    return sentences


def find_leakage(folds: dict[str, dict[str, list[str]]], sentences: dict[str, str]) -> dict[str, tuple]:
    """{fold: (shared sentences, test utterances speaking one, test utterances)}: the scripted sentences
    a fold's test speakers share with its training speakers."""
    leakage = {}
    for name, subsets in folds.items():
        trained = {sentences[u] for u in subsets["train"] if u in sentences}
        leaked = [u for u in subsets["test"] if sentences.get(u) in trained]
        leakage[name] = (len({sentences[u] for u in leaked}), len(leaked), len(subsets["test"]))
    return leakage


def report_leakage(data_dir: Path | str, folds_dir: Path | str, folds: dict[str, dict[str, list[str]]]) -> dict:
    """Writes FOLDS_DIR/leakage and warns when a fold's test speakers speak sentences seen in training."""
    text_file = Path(data_dir) / "text"
    text = read_table(text_file) if text_file.is_file() else None
    utts = {u for subsets in folds.values() for s in SUBSETS for u in subsets[s]}
    leakage = find_leakage(folds, script_sentences(utts, text))
    write_lines(Path(folds_dir) / "leakage", {f: f"shared_sentences={n} leaked_test_utts={m} test_utts={t}"
                                              for f, (n, m, t) in leakage.items()})
    leaky = {f: v for f, v in leakage.items() if v[0]}
    if leaky:
        log.warning("%d of %d folds test scripted sentences their training speakers also spoke (same %s): "
                    "%s; see %s/leakage, or use --utterances=improvised", len(leaky), len(leakage),
                    "transcript" if text is not None else "script line", ", ".join(
                        f"{f} {m}/{t} test utts" for f, (_, m, t) in leaky.items()), folds_dir)
    return leakage


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold-conf", default=DEFAULT_FOLD_CONF, help=f"the protocol (default {DEFAULT_FOLD_CONF})")
    parser.add_argument("data_dir", help="full data dir, e.g. data/iemocap/all")
    parser.add_argument("folds_dir", help="output, e.g. data/iemocap/folds")
    args = parser.parse_args()
    fold_conf = read_fold_conf(args.fold_conf)
    speakers = list(read_list_table(Path(args.data_dir) / "spk2utt"))
    plan = make_fold_plan(speakers, fold_conf, conf=args.fold_conf)
    folds = write_folds(args.data_dir, args.folds_dir, plan, fold_conf.utterances)
    for fold in plan:
        n = {s: len(folds[fold["name"]][s]) for s in SUBSETS}
        log.info("%s: test %s (%d utts), valid %s (%d), train %d speakers (%d)", fold["name"],
                 ",".join(fold["test"]), n["test"], valid_of(fold), n["valid"],
                 len(fold["train"]), n["train"])
    report_leakage(args.data_dir, args.folds_dir, folds)
    log.info("wrote %d folds (%s utterances) to %s", len(plan), fold_conf.utterances, args.folds_dir)


if __name__ == "__main__":
    main()
