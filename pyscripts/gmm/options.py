"""Options of the GMM stages, from a Kaldi-style conf file (`--name=value` lines, as conf/mono.conf)
with the command line taking precedence, as Kaldi's binaries treat --config."""
import argparse
from pathlib import Path

from pyscripts.errors import DataError
from pyscripts.kaldi.tables import parse_bool, read_kaldi_conf


def str2bool(text):
    """A boolean option's argparse type: Kaldi's true/false or 1/0."""
    try:
        return parse_bool(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_mono_options(parser):
    """Monophone training and alignment options; defaults are Kaldi's train_mono.sh/align_si.sh."""
    g = parser.add_argument_group("monophone training and alignment (conf/mono.conf)")
    g.add_argument("--num-iters", type=int, default=40, help="EM iterations")
    g.add_argument("--max-iter-inc", type=int, default=30, help="last iteration that adds Gaussians")
    g.add_argument("--totgauss", type=int, default=1000, help="target total number of Gaussians")
    g.add_argument("--realign-iters", default="1 2 3 4 5 6 7 8 9 10 12 14 16 18 20 23 26 29 32 35 38",
                   help="iterations that start with a re-alignment")
    g.add_argument("--power", type=float, default=0.25, help="exponent of the occupancy when allocating "
                   "Gaussians to pdfs")
    g.add_argument("--min-count", type=float, default=20.0, help="minimum count per Gaussian when splitting")
    g.add_argument("--perturb-factor", type=float, default=0.01, help="mean perturbation when splitting")
    g.add_argument("--min-gaussian-occupancy-first", type=float, default=3.0,
                   help="gmm-est --min-gaussian-occupancy of the first update (from the equal alignment)")
    g.add_argument("--min-gaussian-occupancy", type=float, default=10.0,
                   help="gmm-est --min-gaussian-occupancy of the later updates")
    g.add_argument("--init-utts", type=int, default=10,
                   help="utterances whose global mean and variance initialise every pdf")
    g.add_argument("--initial-beam", type=float, default=6.0, help="alignment beam of the first realignment")
    g.add_argument("--initial-retry-beam", type=float, default=24.0)
    g.add_argument("--beam", type=float, default=10.0, help="alignment beam after the first iteration "
                   "and in steps/align_mono.sh")
    g.add_argument("--retry-beam", type=float, default=40.0)
    g.add_argument("--careful", type=str2bool, default=False,
                   help="also fail alignments that do not reach the final state through the whole graph")
    g.add_argument("--boost-silence", type=float, default=1.0,
                   help="factor on the silence pdfs' weights during alignment")
    g.add_argument("--transition-scale", type=float, default=1.0)
    g.add_argument("--acoustic-scale", type=float, default=0.1)
    g.add_argument("--self-loop-scale", type=float, default=0.1)
    g.add_argument("--delta-order", type=int, default=2, help="add-deltas --delta-order")


def parse_with_config(parser, argv=None):
    """Parses argv, with `--config FILE` supplying defaults for any option it names."""
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    parser.add_argument("--config", help="Kaldi-style conf file (--name=value per line); options "
                        "given on the command line override it")
    pre, _ = parser.parse_known_args(argv)
    conf_argv = []
    if pre.config:
        if not Path(pre.config).is_file():
            raise DataError(f"{pre.config}: conf file not found")
        known = {a.lstrip("-") for action in parser._actions for a in action.option_strings}
        for name, value in read_kaldi_conf(pre.config).items():
            if name not in known:
                raise DataError(f"{pre.config}: unknown option --{name}")
            conf_argv.append(f"--{name}={value}")
    return parser.parse_args(conf_argv + argv)
