"""Confidence intervals and paired tests of the recipe's results, from the command line (the statistics:
pyscripts/stats.py; the files: pyscripts/asr/utt_errors.py, pyscripts/ser/intervals.py).

  python3 -m pyscripts.intervals asr [--setting LMWT_WIP] DECODE_DIR...  -> DECODE_DIR/scoring/intervals.json
  python3 -m pyscripts.intervals ser EVAL_DIR...                         -> EVAL_DIR/intervals.json
  python3 -m pyscripts.intervals compare asr|ser --a DIR... --b DIR...   (paired test; ser: folds in order)
Options --resamples, --seed, --level everywhere.
"""
import argparse

from pyscripts import stats
from pyscripts.asr import utt_errors
from pyscripts.asr.scoring import per_utt_counts
from pyscripts.errors import DataError, cli_main
from pyscripts.ser.intervals import paired_test_evals, write_ser_intervals


def _print_asr(decode_dir: str, result: dict) -> None:
    for metric in stats.ASR_METRICS:
        if metric in result:
            r = result[metric]
            at = f" at {r['setting']}" if r.get("setting") else ""
            print(f"{decode_dir}: %{metric}{at} {r['estimate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                  f"({100 * result['level']:g}% CI, {r['utterances']} utterances)")


def _print_ser(eval_dir: str, result: dict) -> None:
    cells = " ".join(f"{m} {100 * result[m]['estimate']:.1f} [{100 * result[m]['low']:.1f}, "
                     f"{100 * result[m]['high']:.1f}]" for m in stats.SER_METRICS)
    print(f"{eval_dir}: {cells} % ({100 * result['level']:g}% CI, {result['utterances']} utterances, "
          f"speakers: {result['speakers']})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES, help="bootstrap resamples / rounds")
    common.add_argument("--seed", type=int, default=stats.DEFAULT_SEED)
    common.add_argument("--level", type=float, default=stats.DEFAULT_LEVEL, help="confidence level (default 0.95)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("asr", parents=[common], help="PER/FER intervals -> DECODE_DIR/scoring/intervals.json")
    a.add_argument("--setting", help="LMWT_WIP of the PER (default: best_wer's, the per_by_utt file)")
    a.add_argument("decode_dirs", nargs="+")
    s = sub.add_parser("ser", parents=[common], help="E/UE intervals -> EVAL_DIR/intervals.json")
    s.add_argument("eval_dirs", nargs="+")
    c = sub.add_parser("compare", parents=[common], help="paired randomization test of B against A")
    c.add_argument("kind", choices=("asr", "ser"))
    c.add_argument("--a", nargs="+", required=True, help="A's decode dirs (asr: runs, errors averaged) or "
                   "eval dirs (ser: one per fold)")
    c.add_argument("--b", nargs="+", required=True, help="B's, in the same order as A's for ser")
    c.add_argument("--metric", choices=stats.ASR_METRICS, default="PER", help="asr: PER or FER")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not 0 < args.level < 1 or args.resamples < 1:
        raise DataError("--level must lie in (0, 1) and --resamples be positive")
    opts = (args.resamples, args.seed, args.level)
    if args.cmd == "asr":
        for d in args.decode_dirs:
            _print_asr(d, utt_errors.write_asr_intervals(d, args.setting, *opts, realign=per_utt_counts))
    elif args.cmd == "ser":
        for d in args.eval_dirs:
            _print_ser(d, write_ser_intervals(d, *opts))
    elif args.kind == "asr":
        test = utt_errors.paired_test_decodes(args.a, args.b, args.metric, *opts)
        print(f"{args.metric}: {test.summary()}")
    else:
        for metric, t in paired_test_evals(args.a, args.b, *opts).items():
            print(f"{metric}: {t.summary()}")


if __name__ == "__main__":
    main()
