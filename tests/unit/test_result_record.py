"""The result record of a scored decode dir (scoring/result.json, pyscripts/asr/result.py): written once by
the scoring with the chosen setting, its PER counts, the FER and RTF the decode measured; read back by
every consumer; a missing or broken record is an error that says to score again."""
import json
import subprocess
from pathlib import Path

import pytest

from pyscripts.asr import result, scoring
from pyscripts.asr.utt_errors import write_by_utt
from pyscripts.errors import DataError

RECIPE = Path(__file__).resolve().parents[2]


def _scored(d, hyps_by_setting, refs):
    """A decode dir scored at the given settings ({NAME: {utt: phones}}), as local/score.sh leaves it."""
    scoring.write_trn(d / "scoring/ref.trn", refs)
    for name, hyps in hyps_by_setting.items():
        scoring.write_trn(d / f"scoring/hyp_{name}.trn", hyps)
    return d


def _timed(d):
    """timing/ as steps/decode_hybrid.sh writes it: two forward and two decode jobs, wall clocks."""
    t = d / "timing"
    t.mkdir(parents=True)
    (t / "forward.1").write_text("frames=300 seconds=0.6 utts=2 threads=1 device=cpu\n")
    (t / "forward.2").write_text("frames=200 seconds=0.4 utts=1 threads=1 device=cpu\n")
    (t / "forward.wall").write_text("seconds=2.5 nj=2\n")
    (t / "decode.1").write_text("frames=300 seconds=0.1 utts=2 threads=1 decoder=lattice\n")
    (t / "decode.2").write_text("frames=200 seconds=0.15 utts=1 threads=1 decoder=lattice\n")
    (t / "decode.wall").write_text("seconds=0.5 nj=2\n")


REFS = {"s1_a": "a b c d", "s1_b": "a b", "s2_c": "c c c"}
HYPS = {"10_0.0": {"s1_a": "a x c", "s1_b": "a b", "s2_c": "c"},        # 4 errors / 9
        "12_0.5": {"s1_a": "a b c d", "s1_b": "a b", "s2_c": "c c"}}     # 1 error / 9


def test_record_written_by_the_scoring_and_read_back(tmp_path):
    d = _scored(tmp_path / "exp/m/decode_test", HYPS, REFS)
    _timed(d)
    write_by_utt(d / "scoring/fer_by_utt", {"s1_a": (30, 100), "s1_b": (10, 100), "s2_c": (0, 300)}, "FER")
    assert scoring.write_best(d) == ("12_0.5", 11.11)
    record = result.read_result(d)
    assert json.loads(result.result_path(d).read_text()) == record
    assert (record["setting"], record["lmwt"], record["wip"], record["tune_dir"]) == ("12_0.5", 12, 0.5, None)
    assert record["acwt"] == pytest.approx(1 / 12)
    assert record["per"] == {"percent": 11.11, "errors": 1, "ref": 9, "ins": 0, "del": 1, "sub": 0, "utts": 3,
                             "utts_with_errors": 1}
    assert record["settings"] == {"10_0.0": {"percent": 44.44, "errors": 4, "ref": 9},
                                  "12_0.5": {"percent": 11.11, "errors": 1, "ref": 9}}
    assert record["fer"] == {"percent": 8.0, "errors": 40, "frames": 500, "utts": 3}
    # 500 frames = 5 s of audio: forward 1.0 s of work and 2.5 s of wall clock, decode 0.25 s and 0.5 s.
    assert record["rtf"] == {"audio_seconds": 5.0,
                             "forward": {"label": "1-thread", "rtf": 0.2, "wall_rtf": 0.5, "nj": 2,
                                         "devices": ["cpu"], "threads": [1]},
                             "decode": {"label": "1-thread", "rtf": 0.05, "wall_rtf": 0.1, "nj": 2,
                                        "devices": ["cpu"], "threads": [1]}}
    assert record["device"] == "cpu"
    # best_wer: the same setting for people, Kaldi's token
    assert (d / "scoring/best_wer").read_text().splitlines()[0] == f"%WER 11.11 [ 1 / 9, 0 ins, 1 del, 0 sub ] " \
                                                                    f"{d / 'wer_12_0.5'}"
    # the results table reads the record: FER, PER and the RTF cells
    table = scoring.results_markdown([tmp_path / "exp"], dev="test", test="test")
    assert f"| {tmp_path / 'exp/m'} | 8.0 | 8.0 | 11.1 | 11.1 |" in table
    assert f"| {tmp_path / 'exp/m'} | 12_0.5 (acwt 0.0833) | 0.2000 / 0.5000 (nj=2) | 0.0500 / 0.1000 (nj=2) |" \
        in table


def test_a_gpu_forward_pass_is_named(tmp_path):
    d = _scored(tmp_path / "decode", HYPS, REFS)
    _timed(d)
    (d / "timing/forward.1").write_text("frames=300 seconds=0.06 utts=2 threads=1 device=cuda:0 (NVIDIA H100)\n")
    (d / "timing/forward.2").write_text("frames=200 seconds=0.04 utts=1 threads=1 device=cuda:0 (NVIDIA H100)\n")
    scoring.write_best(d)
    record = result.read_result(d)
    assert record["device"] == "cuda:0 (NVIDIA H100)" and record["rtf"]["forward"]["label"] == "1-gpu"
    assert scoring._rtf_cells(record["rtf"])["forward"] == "0.0200 (1-gpu) / 0.5000 (nj=2)"


def test_a_decode_without_wall_clock_or_fer_leaves_them_null(tmp_path):
    """A GMM decode times its jobs but not their wall clock: no RTF in the record (nor in the table)."""
    d = _scored(tmp_path / "decode", HYPS, REFS)
    (d / "timing").mkdir()
    (d / "timing/decode.1").write_text("frames=300 seconds=0.1 utts=2 threads=1\n")
    scoring.write_best(d)
    record = result.read_result(d)
    assert (record["fer"], record["rtf"], record["device"]) == (None, None, None)


def test_missing_or_broken_record_says_to_score_again(tmp_path):
    d = tmp_path / "decode_dev"
    with pytest.raises(DataError, match=r"decode_dev/scoring/result.json: not found.*re-run local/score.sh"):
        result.read_result(d)
    (d / "scoring").mkdir(parents=True)
    result.result_path(d).write_text("{ not json")
    with pytest.raises(DataError, match=r"result.json: not a JSON result record.*re-run local/score.sh"):
        result.read_result(d)
    result.result_path(d).write_text("[1, 2]")
    with pytest.raises(DataError, match="not a JSON object"):
        result.read_result(d)
    result.result_path(d).write_text(json.dumps({"setting": "10_0.0", "per": {"percent": 1.0}}))
    with pytest.raises(DataError, match=r"no lmwt, acwt, .*per\.errors.*re-run local/score.sh"):
        result.read_result(d)


def test_setting_names():
    assert result.setting_numbers("7_0.5") == (7.0, 0.5)
    assert result.setting_numbers("12") == (12.0, 0.0)
    with pytest.raises(DataError, match="'best' is not LMWT_WIP"):
        result.setting_numbers("best")
    with pytest.raises(DataError, match="must be positive"):
        result.setting_numbers("0_0.0")


def test_tune_dir_setting_must_be_scored_here(tmp_path):
    dev = _scored(tmp_path / "dev", HYPS, REFS)
    scoring.write_best(dev)
    test = _scored(tmp_path / "test", {"10_0.0": HYPS["10_0.0"]}, REFS)
    with pytest.raises(DataError, match="wer_12_0.5: missing; the setting chosen on"):
        scoring.write_best(test, tune_dir=dev)


def test_best_wer_script_prints_the_lowest_line(tmp_path):
    lines = "d/wer_1_0.0:%WER 30.10 [ 3 / 10, 0 ins, 3 del, 0 sub ]\n" \
            "d/wer_2_0.0:%WER 9.50 [ 1 / 10, 0 ins, 1 del, 0 sub ]\n" \
            "d/wer_3_0.0:%WER 9.50 [ 1 / 10, 1 ins, 0 del, 0 sub ]\n"
    out = subprocess.run([RECIPE / "utils/best_wer.sh"], input=lines, capture_output=True, text=True, check=True)
    assert out.stdout == "d/wer_2_0.0:%WER 9.50 [ 1 / 10, 0 ins, 1 del, 0 sub ]\n"
    empty = subprocess.run([RECIPE / "utils/best_wer.sh"], input="no rates\n", capture_output=True, text=True)
    assert empty.returncode == 1 and "no line with `WER RATE`" in empty.stderr
