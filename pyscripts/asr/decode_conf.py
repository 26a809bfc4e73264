"""The decode conf: the settings of decoding and scoring in one file, conf/decode.conf, in Kaldi's conf
format (`--name=value` lines, `#` comments), with DecodeConf below as the one default in code.

Keys (all optional; a key left out keeps DecodeConf's default):
  --acwt             acoustic scale of the hybrid ConvNet-HMM decode (steps/decode_hybrid.sh, inference)
  --beam --lattice-beam --max-active --min-active    the search (hybrid; beam and max-active also GMM)
  --gmm-acwt --gmm-lattice-beam                     the GMM-HMM decode (steps/decode_gmm.sh): Kaldi's
                                                    steps/decode.sh values, apart from the hybrid's
  --min-lmwt --max-lmwt --word-ins-penalty          the scoring sweep (local/score.sh): LM weights
                                                    min..max, penalties comma-separated
An unknown key or a bad value is a ConfigError naming the file and the key.

The steps read it through this module, options given on their command line winning over the conf:
  eval "$(python3 -m pyscripts.asr.decode_conf shell --part hybrid CONF acwt="$acwt" beam="$beam" ...)"
prints the part's shell assignments (hybrid: acwt beam lattice_beam max_active min_active; gmm: acwt
beam lattice_beam max_active, from the gmm keys; scoring: min_lmwt max_lmwt word_ins_penalty); a
NAME=VALUE argument with a value overrides the conf, an empty one (an option not given) does not.
  python3 -m pyscripts.asr.decode_conf lmwt CONF DECODE_DIR/acwt   the LM weight that stands for the
      decode's acoustic scale (its acwt file, else the conf's --acwt), for scoring a decode without lattices
"""
import argparse
import dataclasses
import shlex
import sys
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import read_kaldi_conf

DEFAULT_DECODE_CONF = "conf/decode.conf"


class ConfigError(DataError):
    """A bad conf file or option value; the message names the file (or option) and the key."""


@dataclass(frozen=True)
class DecodeConf:
    """The recipe's decoding and scoring settings; the defaults are Kaldi's (nnet1's decode.sh for the
    hybrid, steps/decode.sh for GMMs, score.sh's sweep with penalties 0, 0.5, 1 as score_kaldi.sh)."""
    acwt: float = 0.1
    beam: float = 13.0
    lattice_beam: float = 8.0
    max_active: int = 7000
    min_active: int = 200
    gmm_acwt: float = 0.083333
    gmm_lattice_beam: float = 6.0
    min_lmwt: int = 1
    max_lmwt: int = 20
    word_ins_penalty: str = "0.0,0.5,1.0"

    @property
    def word_ins_penalties(self) -> list[str]:
        return self.word_ins_penalty.split(",")


# The shell variables of each part, and the conf key each takes its value from.
PARTS = {
    "hybrid": {"acwt": "acwt", "beam": "beam", "lattice_beam": "lattice_beam", "max_active": "max_active",
               "min_active": "min_active"},
    "gmm": {"acwt": "gmm_acwt", "beam": "beam", "lattice_beam": "gmm_lattice_beam", "max_active": "max_active"},
    "scoring": {"min_lmwt": "min_lmwt", "max_lmwt": "max_lmwt", "word_ins_penalty": "word_ins_penalty"},
}
POSITIVE = {"acwt", "beam", "lattice_beam", "gmm_acwt", "gmm_lattice_beam", "max_active", "min_lmwt"}


def _parse_value(name: str, text: str, where: str, option: str | None = None) -> Any:
    """The value of key `name` from its text, checked; ConfigError naming `where` and the option
    (default: the key)."""
    option = option or "--" + name.replace("_", "-")
    field_type: Any = {f.name: f.type for f in dataclasses.fields(DecodeConf)}[name]
    value: Any
    try:
        if field_type is str:   # the penalties: kept as text, which names the scored settings
            [float(w) for w in text.split(",")]
            value = text
        else:
            value = field_type(text)
    except ValueError:
        kind = {int: "an integer", float: "a number"}.get(field_type, "a comma-separated list of numbers")
        raise ConfigError(f"{where}: {option}={text!r} is not {kind}") from None
    if name in POSITIVE and value <= 0 or name == "min_active" and value < 0:
        raise ConfigError(f"{where}: {option}={text} must be positive")
    return value


def _checked(conf: DecodeConf, where: str) -> DecodeConf:
    if conf.max_lmwt < conf.min_lmwt:
        raise ConfigError(f"{where}: --max-lmwt {conf.max_lmwt} is below --min-lmwt {conf.min_lmwt}")
    return conf


def read_decode_conf(path: str | Path = DEFAULT_DECODE_CONF) -> DecodeConf:
    """The DecodeConf of a conf file (keys it leaves out keep their defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: decode conf not found (the recipe's is {DEFAULT_DECODE_CONF})")
    known = {f.name for f in dataclasses.fields(DecodeConf)}
    values = {}
    try:
        options = read_kaldi_conf(path)
    except DataError as err:   # a line not in Kaldi's format: a conf error like any other
        raise ConfigError(str(err)) from None
    for key, text in options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown key --{key}; the keys are "
                              + " ".join("--" + k.replace("_", "-") for k in sorted(known)))
        values[name] = _parse_value(name, text.strip(), str(path))
    return _checked(DecodeConf(**values), str(path))


def with_options(conf: DecodeConf, part: str, options: dict[str, str], where: str = "command line") -> dict:
    """{shell variable: value} of a part of the conf, each non-empty option (shell variable -> text)
    winning over the conf."""
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; one of {', '.join(PARTS)}")
    unknown = sorted(set(options) - set(PARTS[part]))
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]} is not a setting of the {part} part ({', '.join(PARTS[part])})")
    overrides = {PARTS[part][var]: _parse_value(PARTS[part][var], text, "the command line",
                                               "--" + var.replace("_", "-"))
                 for var, text in options.items() if text != ""}
    conf = _checked(dataclasses.replace(conf, **overrides), where)
    return {var: getattr(conf, key) for var, key in PARTS[part].items()}


def lmwt_of_acwt(acwt: float) -> int:
    """The integer LM weight nearest 1/acwt: the scoring name of a decode at that acoustic scale."""
    if acwt <= 0:
        raise ConfigError(f"acoustic scale {acwt} must be positive")
    return int(1.0 / acwt + 0.5)


def decode_acwt(acwt_file: str | Path, conf: DecodeConf) -> float:
    """The acoustic scale a decode used: its acwt file (steps/decode_*.sh write one), else the conf's."""
    path = Path(acwt_file)
    if not path.is_file():
        return conf.acwt
    return float(_parse_value("acwt", path.read_text().strip(), str(path)))


def _parse_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"{text!r}: expected NAME=VALUE")
    return name, value


@cli_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("shell", help="shell assignments of a part of the conf, the given options winning")
    s.add_argument("--part", choices=sorted(PARTS), required=True)
    s.add_argument("conf")
    s.add_argument("options", nargs="*", help="NAME=VALUE (an empty VALUE: not given)")
    lm = sub.add_parser("lmwt", help="the LM weight nearest 1/acwt of a decode (its acwt file, else the conf's)")
    lm.add_argument("conf")
    lm.add_argument("acwt_file", help="DECODE_DIR/acwt, the decode's acoustic scale, when it is there")
    args = parser.parse_args(argv)
    if args.cmd == "lmwt":
        print(lmwt_of_acwt(decode_acwt(args.acwt_file, read_decode_conf(args.conf))))
        return
    options = dict(_parse_assignment(o) for o in args.options)
    values = with_options(read_decode_conf(args.conf), args.part, options, f"{args.conf} with the options given")
    sys.stdout.write("".join(f"{var}={shlex.quote(str(value))}\n" for var, value in values.items()))


if __name__ == "__main__":
    main()
