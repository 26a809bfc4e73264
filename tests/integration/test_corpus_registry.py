"""run.sh's corpus registry (conf/corpora/NAME.conf): the corpora it knows, the errors for a wrong
corpus or a missing root, and a new corpus made by one conf."""
import shutil

import pytest

from conftest import RECIPE, link_recipe, run_script


def _run(work, *args):
    return run_script(["./run.sh", "--skip-setup", "true", "--stage", "0", "--stop-stage", "0", *args], cwd=work,
                      check=False)


def test_a_wrong_corpus_lists_the_registry(tmp_path):
    proc = _run(link_recipe(tmp_path / "recipe"), "--corpus", "nope")
    assert proc.returncode == 1
    assert "--corpus must be demo, iemocap, timit or tiny, not 'nope'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("corpus, option", [("timit", "--timit-root"), ("iemocap", "--iemocap-root")])
def test_a_licensed_corpus_needs_its_root(tmp_path, corpus, option):
    proc = _run(link_recipe(tmp_path / "recipe"), "--corpus", corpus)
    assert proc.returncode == 1 and f"--corpus {corpus} needs {option} DIR" in proc.stderr, proc.stderr


def _with_own_conf(tmp_path):
    """A recipe dir whose conf/ is a copy, to add a corpus to."""
    work = link_recipe(tmp_path / "recipe")
    (work / "conf").unlink()
    shutil.copytree(RECIPE / "conf", work / "conf")
    return work


def test_a_new_corpus_is_one_conf(tmp_path):
    work = _with_own_conf(tmp_path)
    conf = work / "conf/corpora/myemo.conf"
    conf.write_text("# an IEMOCAP-like corpus\n--tasks=ser\n--synthetic=false\n--nnet-profile=paper\n")
    proc = _run(work, "--corpus", "myemo")
    assert proc.returncode == 1 and "--ser-prep='' is not an executable script" in proc.stderr, proc.stderr
    # Its own data preparation, named by the conf, is what stage 3 runs.
    prep = work / "myemo_prep.sh"
    prep.write_text('#!/usr/bin/env bash\nmkdir -p "$2/all"\necho "from $1" > "$2/all/utt2emo"\n')
    prep.chmod(0o755)
    conf.write_text(conf.read_text() + "--ser-prep=myemo_prep.sh\n")
    proc = _run(work, "--corpus", "myemo")
    assert proc.returncode == 1 and "--corpus myemo needs --iemocap-root DIR" in proc.stderr, proc.stderr
    (tmp_path / "myemo").mkdir()
    run_script(["./run.sh", "--skip-setup", "true", "--corpus", "myemo", "--iemocap-root", tmp_path / "myemo",
                "--stage", "3", "--stop-stage", "3"], cwd=work)
    assert (work / "data/iemocap/all/utt2emo").read_text() == f"from {tmp_path / 'myemo'}\n"
    proc = _run(work, "--corpus", "nope")
    assert "--corpus must be demo, iemocap, myemo, timit or tiny, not 'nope'" in proc.stderr


def test_a_conf_without_its_keys_is_refused(tmp_path):
    work = _with_own_conf(tmp_path)
    (work / "conf/corpora/bad.conf").write_text("--tasks=asr\n")
    proc = _run(work, "--corpus", "bad")
    assert proc.returncode == 1 and "conf/corpora/bad.conf: needs --tasks=" in proc.stderr, proc.stderr
