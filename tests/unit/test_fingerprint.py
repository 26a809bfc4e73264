"""The stage fingerprints (pyscripts/fingerprint.py) on hand-made files: what makes a stage out of date."""
import os

import numpy as np
import kaldiio
import pytest

from pyscripts import fingerprint


def check(tmp_path, *args):
    """Runs `check` on tmp_path/stamp; returns (exit code, printed line)."""
    return fingerprint.main(["check", str(tmp_path / "stamp"), *map(str, args)])


def finished(tmp_path, *args):
    """Checks and commits, as a stage that ran to the end does."""
    assert check(tmp_path, *args) == fingerprint.OUT_OF_DATE
    fingerprint.main(["commit", str(tmp_path / "stamp")])


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "mono.conf").write_text("--num-iters 40\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text("u1 a b\n")
    (data / "utt2spk").write_text("u1 s1\n")
    kaldiio.save_ark(str(data / "feats.ark"), {"u1": np.ones((3, 2), np.float32)}, scp=str(data / "feats.scp"))
    return tmp_path


def test_unchanged_inputs_are_up_to_date(inputs, capsys):
    args = ("--input", inputs / "mono.conf", "--data", inputs / "data", "--input", inputs / "data/feats.scp",
            "--option", "beam=10")
    finished(inputs, *args)
    assert check(inputs, *args) == 0
    assert "up to date" in capsys.readouterr().out


def test_a_changed_conf_or_option_is_named(inputs, capsys):
    finished(inputs, "--input", inputs / "mono.conf", "--option", "beam=10")
    (inputs / "mono.conf").write_text("--num-iters 20\n")
    assert check(inputs, "--input", inputs / "mono.conf", "--option", "beam=40") == fingerprint.OUT_OF_DATE
    out = capsys.readouterr().out
    assert f"{inputs / 'mono.conf'} changed" in out and "option beam was '10', now '40'" in out
    assert not (inputs / "stamp").exists()  # an interrupted redo must not look finished


def test_new_ark_content_under_the_same_scp_is_a_change(inputs):
    args = ("--input", inputs / "data/feats.scp")
    finished(inputs, *args)
    scp_before = (inputs / "data/feats.scp").read_text()
    kaldiio.save_ark(str(inputs / "data/feats.ark"), {"u1": np.zeros((3, 2), np.float32)})
    assert (inputs / "data/feats.scp").read_text() == scp_before
    assert check(inputs, *args) == fingerprint.OUT_OF_DATE


def test_a_rewrite_with_the_same_content_keeps_it_up_to_date(inputs):
    finished(inputs, "--input", inputs / "data")
    text = inputs / "data/text"
    text.write_text(text.read_text())
    os.utime(text, ns=(1, 1))
    assert check(inputs, "--input", inputs / "data") == 0


def test_a_data_dir_is_its_tables_not_the_features_added_later(inputs):
    finished(inputs, "--data", inputs / "data")
    (inputs / "data/cmvn.scp").write_text("s1 x.ark:5\n")
    (inputs / "data/split2").mkdir()
    assert check(inputs, "--data", inputs / "data") == 0
    (inputs / "data/utt2spk").write_text("u1 s2\n")
    assert check(inputs, "--data", inputs / "data") == fingerprint.OUT_OF_DATE


def test_a_missing_output_or_force_means_redo(inputs, capsys):
    args = ("--input", inputs / "mono.conf", "--output", inputs / "final.mdl")
    finished(inputs, *args)
    assert check(inputs, *args) == fingerprint.OUT_OF_DATE
    assert "final.mdl is missing" in capsys.readouterr().out
    fingerprint.main(["commit", str(inputs / "stamp")])
    (inputs / "final.mdl").write_text("model")
    assert check(inputs, *args) == 0
    assert check(inputs, "--force", "--input", inputs / "mono.conf") == fingerprint.OUT_OF_DATE
    assert "--force" in capsys.readouterr().out


def test_a_corpus_is_compared_by_its_listing(inputs):
    corpus = inputs / "corpus"
    (corpus / "s1").mkdir(parents=True)
    (corpus / "s1/a.wav").write_bytes(b"RIFF")
    finished(inputs, "--corpus", corpus)
    assert check(inputs, "--corpus", corpus) == 0
    (corpus / "s1/b.wav").write_bytes(b"RIFF")
    assert check(inputs, "--corpus", corpus) == fingerprint.OUT_OF_DATE


def test_commit_without_check_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fingerprint.main(["commit", str(tmp_path / "stamp")])
    assert "no fingerprint to commit" in capsys.readouterr().err


def test_a_config_stands_for_its_base_chain(tmp_path, capsys):
    """A stage that reads conf/convnet_ser_tiny.yaml depends on convnet_ser.yaml and convnet_asr.yaml
    too (base:): a change there makes it out of date."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "asr.yaml").write_text("training:\n  lr: 0.02\n")
    (conf / "ser.yaml").write_text("base: asr.yaml\n")
    (conf / "ser_tiny.yaml").write_text("base: ser.yaml\ntraining:\n  max_epochs: 2\n")
    (conf / "joint.yaml").write_text("network: ser_tiny.yaml\njoint: {}\n")
    for config in ("ser_tiny.yaml", "joint.yaml"):
        finished(tmp_path, "--input", conf / config)
        (conf / "asr.yaml").write_text("training:\n  lr: 0.01\n")
        capsys.readouterr()
        assert check(tmp_path, "--input", conf / config) == fingerprint.OUT_OF_DATE
        assert f"{conf / 'asr.yaml'} changed" in capsys.readouterr().out
        (conf / "asr.yaml").write_text("training:\n  lr: 0.02\n")


def test_a_key_given_twice_in_a_config_is_refused(tmp_path):
    from pyscripts.errors import DataError
    from pyscripts.nnet.train import load_config
    config = tmp_path / "c.yaml"
    config.write_text("base: /nonexistent.yaml\ntraining:\n  lr: 0.1\nmodel:\n  context: 5\ntraining:\n  lr: 0.2\n")
    with pytest.raises(DataError, match=r"c.yaml: line 6: key 'training' given twice \(first on line 2\)"):
        load_config(config)


def test_a_named_input_holds_wherever_the_file_is(inputs, capsys):
    """A decode.stamp keys its model by role: the same model reached by another path (a transfer Baseline
    linked to stage 9's dir) is up to date; another model under the same name is not, and says so."""
    (inputs / "a").mkdir()
    (inputs / "a/final.pt").write_bytes(b"model 1")
    (inputs / "b").symlink_to(inputs / "a")
    finished(inputs, "--named", "model", inputs / "a/final.pt")
    assert check(inputs, "--named", "model", inputs / "b/final.pt") == 0
    (inputs / "a/final.pt").write_bytes(b"model 2")
    capsys.readouterr()
    assert check(inputs, "--named", "model", inputs / "b/final.pt") == fingerprint.OUT_OF_DATE
    assert "(model changed)" in capsys.readouterr().out


def test_one_stamp_format_reads_a_final_stamp_of_either_separator(tmp_path):
    """Trainings, decodes and stages write one format (KEY<tab>VALUE); a final.stamp written before
    (KEY VALUE) reads the same, so an upgrade does not retrain finished models."""
    stamp = {"config": "1a2b", "option transfer": "--layers 3,0", "train_feats": "9f"}
    fingerprint.write_stamp(tmp_path / "new", stamp)
    (tmp_path / "old").write_text("config 1a2b\ntrain_feats 9f\n")
    assert fingerprint.read_stamp(tmp_path / "new") == stamp
    assert fingerprint.read_stamp(tmp_path / "old") == {"config": "1a2b", "train_feats": "9f"}
    assert fingerprint.why_out_of_date(fingerprint.read_stamp(tmp_path / "old"), {"config": "1a2b"}) == \
        "train_feats is no longer an input"
