"""The decode conf (conf/decode.conf, pyscripts/asr/decode_conf.py): Kaldi's conf format read strictly,
the dataclass as the one default in code, options given to a step winning over the conf."""
import subprocess
import sys
from pathlib import Path

import pytest

from pyscripts.asr.decode import DecoderOptions
from pyscripts.asr.decode_conf import (ConfigError, DecodeConf, decode_acwt, lmwt_of_acwt, read_decode_conf,
                                       with_options)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import RECIPE, run_script  # noqa: E402


def test_the_recipe_conf_holds_the_defaults():
    """conf/decode.conf and DecodeConf agree, and the decoder's options default to them."""
    conf = read_decode_conf(RECIPE / "conf/decode.conf")
    assert conf == DecodeConf()
    assert DecoderOptions() == DecoderOptions.from_conf(conf)
    assert (conf.acwt, conf.beam, conf.gmm_acwt, conf.gmm_lattice_beam) == (0.1, 13.0, 0.083333, 6.0)
    assert conf.word_ins_penalties == ["0.0", "0.5", "1.0"]


def test_a_conf_sets_only_its_keys(tmp_path):
    path = tmp_path / "decode.conf"
    path.write_text("# wider search\n--beam=16.0   # comment\n--max-lmwt=12\n--word-ins-penalty=-1.0,0.0\n")
    conf = read_decode_conf(path)
    assert (conf.beam, conf.max_lmwt, conf.word_ins_penalty) == (16.0, 12, "-1.0,0.0")
    assert (conf.acwt, conf.min_lmwt, conf.lattice_beam) == (0.1, 1, 8.0)


@pytest.mark.parametrize("line, message", [
    ("--bem=13.0", r"decode.conf: unknown key --bem; the keys are --acwt --beam"),
    ("--beam=wide", r"decode.conf: --beam='wide' is not a number"),
    ("--max-active=7000.5", r"decode.conf: --max-active='7000.5' is not an integer"),
    ("--acwt=0", r"decode.conf: --acwt=0 must be positive"),
    ("--word-ins-penalty=0.0,x", r"--word-ins-penalty='0.0,x' is not a comma-separated list of numbers"),
    ("--min-lmwt=9\n--max-lmwt=4", r"--max-lmwt 4 is below --min-lmwt 9"),
    ("beam=13.0", r"decode.conf:1: expected --name=value"),
])
def test_bad_conf_names_file_and_key(tmp_path, line, message):
    path = tmp_path / "decode.conf"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message):
        read_decode_conf(path)


def test_missing_conf(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.conf: decode conf not found \(the recipe's is conf/decode.conf\)"):
        read_decode_conf(tmp_path / "nope.conf")


def test_options_win_over_the_conf():
    conf = DecodeConf(beam=16.0)
    assert with_options(conf, "hybrid", {"acwt": "0.2", "beam": ""}) == {
        "acwt": 0.2, "beam": 16.0, "lattice_beam": 8.0, "max_active": 7000, "min_active": 200}
    # the GMM part takes the gmm keys under the step's own names
    assert with_options(conf, "gmm", {"lattice_beam": "4.0"}) == {
        "acwt": 0.083333, "beam": 16.0, "lattice_beam": 4.0, "max_active": 7000}
    assert with_options(conf, "scoring", {"max_lmwt": "5"})["max_lmwt"] == 5
    with pytest.raises(ConfigError, match="the command line: --beam='x' is not a number"):
        with_options(conf, "hybrid", {"beam": "x"})
    with pytest.raises(ConfigError, match="max_lmwt is not a setting of the hybrid part"):
        with_options(conf, "hybrid", {"max_lmwt": "5"})
    with pytest.raises(ConfigError, match="--max-lmwt 0 is below|--max-lmwt=0 must be positive"):
        with_options(conf, "scoring", {"max_lmwt": "0"})


def test_shell_assignments(tmp_path):
    path = tmp_path / "decode.conf"
    path.write_text("--beam=16.0\n")
    out = subprocess.run([sys.executable, "-m", "pyscripts.asr.decode_conf", "shell", "--part", "gmm", str(path),
                          "acwt=", "lattice_beam=5"], cwd=RECIPE, capture_output=True, text=True, check=True)
    assert out.stdout == "acwt=0.083333\nbeam=16.0\nlattice_beam=5.0\nmax_active=7000\n"


def test_lmwt_of_a_decode(tmp_path):
    assert lmwt_of_acwt(0.1) == 10 and lmwt_of_acwt(0.083333) == 12
    assert decode_acwt(tmp_path / "acwt", DecodeConf()) == 0.1    # no acwt file: the conf's
    (tmp_path / "acwt").write_text("0.25\n")
    assert decode_acwt(tmp_path / "acwt", DecodeConf()) == 0.25


@pytest.mark.parametrize("step", ["steps/decode_hybrid.sh", "steps/decode_gmm.sh", "local/score.sh"])
def test_steps_refuse_a_bad_conf(recipe_dir, step):
    (recipe_dir / "bad.conf").write_text("--beam=13.0\n--bem=1\n")
    proc = run_script([recipe_dir / step, "--decode-conf", "bad.conf", "g", "d", "e"], cwd=recipe_dir, check=False)
    assert proc.returncode != 0 and "bad.conf: unknown key --bem" in proc.stderr
