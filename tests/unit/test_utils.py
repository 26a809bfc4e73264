"""utils/ and path.sh: the job runner, Kaldi-style option parsing, data-dir handling, the environment."""
import os
import shutil

import pytest

from conftest import RECIPE, run_script
from pyscripts.kaldi.datadir import (read_table, split_data, subset_data_dir, utt2spk_to_spk2utt,
                               validate_data_dir, write_table)
from pyscripts.errors import DataError


def test_run_pl_runs_every_job_and_logs_it(tmp_path):
    run_script([RECIPE / "utils/run.pl", "--max-jobs-run", "2", "JOB=1:3", "log/echo.JOB.log",
                "echo", "job JOB", "|", "tr", "a-z", "A-Z"], cwd=tmp_path)
    for j in (1, 2, 3):
        log = (tmp_path / f"log/echo.{j}.log").read_text()
        assert f"JOB {j}" in log          # the pipe ran in the job's shell
        assert "Ended (code 0)" in log


def test_run_pl_fails_when_one_job_fails(tmp_path):
    proc = run_script([RECIPE / "utils/run.pl", "JOB=1:3", "log/t.JOB.log", "test", "JOB", "-ne", "2"],
                      cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "1 / 3 failed" in proc.stderr and "log/t.2.log" in proc.stderr
    assert "Ended (code 1)" in (tmp_path / "log/t.2.log").read_text()
    assert "Ended (code 0)" in (tmp_path / "log/t.3.log").read_text()


def _strip_footers_after_bash(tmp_path):
    """A `bash` first on PATH that runs the job script with the real bash, then drops the footer line from
    every log in log/ (a footer lost on its way to the disk) and exits with the job's status."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    real_bash = shutil.which("bash")
    (fake / "bash").write_text(f'#!/bin/sh\n{real_bash} "$@"\nrc=$?\n'
                               "sed -i '/^# Ended (code/d' log/*.log\nexit $rc\n")
    (fake / "bash").chmod(0o755)
    return {"PATH": f"{fake}:{os.environ['PATH']}"}


@pytest.mark.parametrize("command, setup", [
    (["rm", "-rf", "log"], lambda tmp_path: {}),   # a job that cleans up the dir its own log is in
    (["true"], _strip_footers_after_bash),          # a job whose footer never reached its log
], ids=["log-removed-by-the-job", "footer-lost"])
def test_run_pl_fails_a_job_that_exits_0_without_a_footer(tmp_path, command, setup):
    """Success is the log's `# Ended (code 0)` footer, not the exit status alone: a job that ends with
    status 0 but leaves no footer is a failed job (on a cluster the footer is all the runner sees)."""
    proc = run_script([RECIPE / "utils/run.pl", "log/j.log", *command], cwd=tmp_path, check=False,
                      env=setup(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 / 1 failed" in proc.stderr and "no '# Ended' line in log/j.log" in proc.stderr
    assert "exited 0, but its log was cut short or removed" in proc.stderr
    log = tmp_path / "log/j.log"
    assert not log.exists() or "# Ended" not in log.read_text()   # the situation is the one meant
    ok = run_script([RECIPE / "utils/run.pl", "log/k.log", "true"], cwd=tmp_path)   # and 0 + footer passes
    assert ok.returncode == 0 and "# Ended (code 0)" in (tmp_path / "log/k.log").read_text()


@pytest.mark.parametrize("mine, expected", [({}, "0 1073741824"), ({"MALLOC_MMAP_MAX_": "65536"}, "65536 1073741824")])
def test_path_sh_keeps_freed_memory_unless_set(mine, expected):
    unset = {"MALLOC_MMAP_MAX_": "", "MALLOC_TRIM_THRESHOLD_": ""}  # path.sh takes empty for unset
    proc = run_script(["bash", "-c", '. ./path.sh && echo "$MALLOC_MMAP_MAX_ $MALLOC_TRIM_THRESHOLD_"'],
                      cwd=RECIPE, env=unset | mine)
    assert proc.stdout.splitlines()[-1] == expected


def test_parse_options_sets_known_and_rejects_unknown(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(f"nj=1\nsome_opt=a\n. {RECIPE}/utils/parse_options.sh\necho \"$nj $some_opt $1\"\n")
    out = run_script(["bash", script, "--nj", "4", "--some-opt", "b c", "rest"], cwd=tmp_path).stdout
    assert out.strip() == "4 b c rest"
    bad = run_script(["bash", script, "--no-such", "1"], cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "unknown option --no-such" in bad.stderr


def make_data_dir(d, speakers=3, utts_per_spk=2):
    utt2spk = {f"s{s}_u{u}": f"s{s}" for s in range(speakers) for u in range(utts_per_spk)}
    write_table(d / "utt2spk", utt2spk)
    write_table(d / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_table(d / "wav.scp", {u: f"/audio/{u}.wav" for u in utt2spk})
    write_table(d / "text", {u: "sil aa sil" for u in utt2spk})
    write_table(d / "spk2gender", {f"s{s}": "f" for s in range(speakers)})
    return d


def test_valid_data_dir_passes(tmp_path):
    validate_data_dir(make_data_dir(tmp_path / "d"), need_text=True)


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "spk2utt").unlink(), "spk2utt: missing"),
    (lambda d: (d / "text").write_text("s1_u0 aa\ns0_u0 aa\n"), "not sorted"),
    (lambda d: (d / "wav.scp").write_text("s0_u0 /a.wav\n"), "utterances differ from utt2spk"),
    (lambda d: write_table(d / "spk2utt", {"s0": "s0_u0", "s1": "s1_u0 s1_u1", "s2": "s2_u0 s2_u1"}),
     "does not match utt2spk"),
    (lambda d: (d / "text").write_text("".join(
        f"{u} {'' if u == 's1_u1' else 'aa'}\n" for u in sorted(read_table(d / "utt2spk")))),
     "empty transcript for utterance s1_u1"),
    (lambda d: (d / "utt2spk").write_text("s0_u0 s0\ns0_u0 s0\n"), "duplicate key"),
    (lambda d: shutil.rmtree(d), "data directory not found"),
])
def test_broken_data_dir_is_reported(tmp_path, breakage, message):
    d = make_data_dir(tmp_path / "d")
    breakage(d)
    with pytest.raises(DataError, match=message):
        validate_data_dir(d, need_text=True)


def test_validator_script_exits_nonzero_with_the_message(tmp_path):
    d = make_data_dir(tmp_path / "d")
    (d / "spk2gender").write_text("s0 f\ns1 x\ns2 m\n")
    proc = run_script([RECIPE / "utils/validate_data_dir.sh", d], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "gender must be m or f" in proc.stderr


def test_split_keeps_speakers_together_and_loses_nothing(tmp_path):
    d = make_data_dir(tmp_path / "d", speakers=5, utts_per_spk=3)
    parts = split_data(d, 3)
    seen = {}
    for p in parts:
        validate_data_dir(p, need_text=True)
        for utt, spk in read_table(p / "utt2spk").items():
            seen[utt] = spk
    assert seen == read_table(d / "utt2spk")
    speakers = [set(read_table(p / "utt2spk").values()) for p in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(speakers) for b in speakers[i + 1:])
    with pytest.raises(DataError, match="cannot split 5 speakers into 6 jobs"):
        split_data(d, 6)


def test_subset_keeps_only_listed_utterances_and_their_speakers(tmp_path):
    d = make_data_dir(tmp_path / "d")
    sub = subset_data_dir(d, ["s0_u1", "s2_u0"], tmp_path / "sub")
    validate_data_dir(sub, need_text=True)
    assert set(read_table(sub / "spk2gender")) == {"s0", "s2"}
    assert list(read_table(sub / "text")) == ["s0_u1", "s2_u0"]


def make_segmented_data_dir(d):
    """Two recordings (one per speaker) cut into two utterances each: wav.scp keyed by recording."""
    d = make_data_dir(d, speakers=2, utts_per_spk=2)
    write_table(d / "wav.scp", {"rec0": "/audio/rec0.wav", "rec1": "/audio/rec1.wav"})
    write_table(d / "segments", {f"s{s}_u{u}": f"rec{s} {u * 1.5:.2f} {u * 1.5 + 1.2:.2f}"
                                 for s in range(2) for u in range(2)})
    return d


def test_segmented_data_dir_validates_and_splits_by_recording(tmp_path):
    d = make_segmented_data_dir(tmp_path / "d")
    validate_data_dir(d, need_text=True)
    parts = split_data(d, 2)
    for p in parts:
        validate_data_dir(p, need_text=True)
    assert [list(read_table(p / "wav.scp")) for p in parts] == [["rec0"], ["rec1"]]


@pytest.mark.parametrize("segments, message", [
    ("s0_u0 rec9 0.0 1.2\n", "recording rec9 is not in wav.scp"),
    ("s0_u0 rec0 1.2 0.5\n", "0 <= start < end"),
    ("s0_u0 rec0 0.0\n", "expected `utt recording start end`"),
])
def test_bad_segments_are_reported(tmp_path, segments, message):
    d = make_segmented_data_dir(tmp_path / "d")
    lines = (d / "segments").read_text().splitlines(keepends=True)
    (d / "segments").write_text(segments + "".join(lines[1:]))
    with pytest.raises(DataError, match=message):
        validate_data_dir(d)
