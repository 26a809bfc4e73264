"""Stages that know what they were made from: a re-run of a finished recipe does nothing and says so per
stage, and a changed input redoes the stages that depend on it and only those."""
import re
import shutil
import time

from conftest import RECIPE, run_script


def rerun(recipe_dir, corpus_cache):
    return run_script(["./run.sh", "--corpus", "tiny", "--nj", "2", "--skip-setup", "true",
                       "--corpus-dir", corpus_cache], cwd=recipe_dir)


def redone_stages(proc):
    """{stage: 'up to date' | 'out of date (...)'} from run.sh's console."""
    return dict(re.findall(r"stage (\d+): (up to date|out of date \(.*?\))", proc.stdout))


def test_a_finished_run_is_up_to_date_and_rerun_in_a_tenth_of_the_time(tiny_run, corpus_cache):
    recipe_dir, first = tiny_run
    times = (recipe_dir / "exp/stage_times.tsv").read_text()
    assert sorted(int(line.split("\t")[0]) for line in times.splitlines()) == list(range(1, 14))
    started = time.monotonic()
    proc = rerun(recipe_dir, corpus_cache)
    seconds = time.monotonic() - started
    assert redone_stages(proc) == {str(n): "up to date" for n in range(2, 14)}, proc.stdout
    assert "complete corpus already there" in proc.stderr  # stage 1: the generators' own check
    assert seconds < first.seconds / 10, f"re-run {seconds:.0f} s, first run {first.seconds:.0f} s"
    # Nothing was redone: only stage 1, whose generators check their corpora themselves, ran again.
    again = (recipe_dir / "exp/stage_times.tsv").read_text().splitlines()[len(times.splitlines()):]
    assert [line.split("\t")[0] for line in again] == ["1"]


def test_a_changed_monophone_conf_redoes_what_depends_on_it(tiny_run, corpus_cache, tmp_path):
    recipe_dir, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(recipe_dir, copy, symlinks=True)
    (copy / "conf").unlink()
    shutil.copytree(RECIPE / "conf", copy / "conf")
    mono_conf = copy / "conf/mono.conf"
    mono_conf.write_text(re.sub(r"--num-iters=\d+", "--num-iters=30", mono_conf.read_text()))
    assert mono_conf.read_text() != (RECIPE / "conf/mono.conf").read_text()
    stages = redone_stages(rerun(copy, corpus_cache))
    for n in range(2, 6):
        assert stages[str(n)] == "up to date"
    assert "conf/mono.conf changed" in stages["6"]
    for n in (7, 8, 9, 10, 12, 13):
        assert stages[str(n)].startswith("out of date"), (n, stages)
    assert stages["11"] == "up to date"  # SER does not depend on the monophone GMM
    # Nothing of the old run is kept where it was remade: the ConvNet trained again on the new targets.
    model = "exp/convnet_asr/final.pt"
    assert (copy / model).stat().st_mtime > (recipe_dir / model).stat().st_mtime
    assert (copy / "exp/mono_ali/targets/targets.ark").read_bytes() != \
        (recipe_dir / "exp/mono_ali/targets/targets.ark").read_bytes()
