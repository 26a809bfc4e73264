"""SER stages 1-2 as run.sh runs them (frame labels, folds) on a hand-made 10-speaker data dir, the
fold plan they produce, and the inference command."""
import kaldiio
import numpy as np
import pytest

from conftest import run_script
from pyscripts.kaldi.audio import write_wav
from pyscripts.kaldi.datadir import read_table, utt2spk_to_spk2utt, write_table
from pyscripts.ser.folds import read_fold_conf
from pyscripts.ser.labels import CLASSES, EMOTIONS, SIL_ID

RATE = 16000
SPEAKERS = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]


def voiced_utterance(rng, f0, seconds=0.8):
    """Silence, a harmonic tone (voiced), a noise burst (unvoiced), silence."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 5000 * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t))
    return np.concatenate([rng.normal(0, 3, 3000), tone, rng.normal(0, 3000, 4000), rng.normal(0, 3, 3000)])


@pytest.fixture
def ser_data(recipe_dir):
    """data/iemocap/all with 3 utterances per speaker (+ one noise-only utterance), fbank features."""
    rng = np.random.default_rng(5)
    wav_dir = recipe_dir / "wavs"
    wav_dir.mkdir()
    wav_scp, utt2spk, utt2emo = {}, {}, {}
    for i, spk in enumerate(SPEAKERS):
        for j in range(3):
            utt = f"{spk}-{spk}_impro01_{j:03d}"
            samples = voiced_utterance(rng, 110 + 15 * i + 20 * j)
            if spk == "Ses02M" and j == 0:
                samples = rng.normal(0, 3000, 12000)      # no voiced frame at all
            write_wav(wav_dir / f"{utt}.wav", RATE, np.round(samples).astype(np.int16))
            wav_scp[utt], utt2spk[utt] = str(wav_dir / f"{utt}.wav"), spk
            utt2emo[utt] = EMOTIONS[(i + j) % 4]
    data = recipe_dir / "data/iemocap/all"
    write_table(data / "wav.scp", wav_scp)
    write_table(data / "utt2spk", utt2spk)
    write_table(data / "utt2emo", utt2emo)
    write_table(data / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    write_table(data / "spk2gender", {s: s[-1].lower() for s in SPEAKERS})
    run_script(["steps/make_fbank.sh", "--nj", "2", data, recipe_dir / "exp/make_fbank/all",
                recipe_dir / "fbank"], cwd=recipe_dir)
    return recipe_dir


def test_labels_and_folds_stages(ser_data):
    root = ser_data
    proc = run_script(["local/run_ser.sh", "--stop-stage", "2", "--nj", "2", "data/iemocap", "exp/ser"], cwd=root)
    assert "1 utterance(s) without speech frames" in proc.stdout
    targets_dir = root / "exp/ser/targets/all"
    assert (targets_dir / "num_targets").read_text().split() == ["5"]
    assert read_table(targets_dir / "classes.txt") == {c: str(i) for i, c in enumerate(CLASSES)}
    num_frames = read_table(root / "data/iemocap/all/utt2num_frames")
    utt2emo = read_table(root / "data/iemocap/all/utt2emo")
    targets = dict(kaldiio.load_scp(str(targets_dir / "targets.scp")).items())
    assert set(targets) == set(num_frames)
    for utt, t in targets.items():
        assert t.dtype == np.int32 and len(t) == int(num_frames[utt])
        assert set(np.unique(t)) <= {EMOTIONS.index(utt2emo[utt]), SIL_ID}
    no_speech = "Ses02M-Ses02M_impro01_000"
    assert (targets[no_speech] == SIL_ID).all()
    # A voiced utterance: speech in the tone, sil in the leading silence and the noise burst.
    t = targets["Ses01F-Ses01F_impro01_000"]
    assert (t[:15] == SIL_ID).all() and (t[30:90] != SIL_ID).all() and (t[-40:] == SIL_ID).all()
    shares = read_table(targets_dir / "utt2sil_share")
    assert float(shares[no_speech]) == 1.0 and 0.2 < float(shares["Ses01F-Ses01F_impro01_000"]) < 0.6
    assert "1 utterances without any speech frame" in \
        "".join(p.read_text() for p in (targets_dir / "log").glob("labels.*.log"))

    # The fold plan: 8 folds, each non-validation speaker tested exactly once, validation never
    # trained or tested on, train = the other 7.
    validation = set(read_fold_conf(root / "conf/iemocap_folds.conf").validation_speakers)
    assert len(validation) == 2
    plan = read_table(root / "data/iemocap/folds/plan")
    assert sorted(plan) == [f"fold{k}" for k in range(1, 9)]
    tested = []
    for fold in plan:
        spk = {s: set(read_table(root / f"data/iemocap/folds/{fold}/{s}/utt2spk").values())
               for s in ("train", "valid", "test")}
        assert spk["valid"] == validation
        assert len(spk["test"]) == 1 and not spk["test"] & validation
        assert not spk["train"] & (validation | spk["test"]) and len(spk["train"]) == 7
        assert spk["train"] | spk["valid"] | spk["test"] == set(SPEAKERS)
        tested += spk["test"]
        for s in ("train", "valid", "test"):
            data_dir = root / f"data/iemocap/folds/{fold}/{s}"
            fold_targets = root / f"exp/ser/targets/{fold}/{s}"
            assert set(read_table(fold_targets / "targets.scp")) == set(read_table(data_dir / "feats.scp")) \
                == set(read_table(data_dir / "utt2spk"))
            assert (fold_targets / "num_targets").read_text().split() == ["5"]
    assert sorted(tested) == sorted(set(SPEAKERS) - validation)


def test_labels_refuse_mismatched_frames(ser_data):
    """Labels made with another framing than the features are an error naming the cause."""
    root = ser_data
    conf = root / "fbank_20ms.conf"
    conf.write_text((root / "conf/fbank.conf").read_text() + "--frame-shift=20\n")
    proc = run_script(["local/ser_frame_labels.sh", "--nj", "1", "--fbank-config", conf, "data/iemocap/all",
                       "exp/ser/targets/all"], cwd=root, check=False)
    assert proc.returncode != 0
    log = (root / "exp/ser/targets/all/log/labels.1.log").read_text()
    assert "utt2num_frames says" in log and "Recompute them" in log


def test_inference_prints_emotion(recipe_dir, tmp_path):
    """local/ser_infer.sh with an untrained model package: one line, a known emotion, posteriors summing to 1."""
    import torch
    from pyscripts.nnet import train as nnet_train
    cfg = nnet_train.load_config(recipe_dir / "conf/convnet_ser.yaml")
    cfg["model"].update(conv1_channels=4, conv2_channels=8, fc_dim=32)   # small: quick to save and load
    torch.manual_seed(0)
    model = nnet_train.build_model(len(CLASSES), 40, cfg["model"]).eval()
    model_path = tmp_path / "final.pt"
    package = nnet_train.package_model(model, cfg, torch.ones(len(CLASSES), dtype=torch.long), 1, {}, [])
    torch.save(package, model_path)
    wav = tmp_path / "utt.wav"
    write_wav(wav, RATE, np.round(voiced_utterance(np.random.default_rng(0), 150, 0.5)).astype(np.int16))
    proc = run_script(["local/ser_infer.sh", "--model", model_path, wav], cwd=recipe_dir)
    fields = proc.stdout.split()
    assert fields[0] == str(wav) and fields[1] in EMOTIONS
    scores = dict(f.split("=") for f in fields[3:7])
    assert list(scores) == list(EMOTIONS)
    assert sum(float(v) for v in scores.values()) == pytest.approx(1.0, abs=2e-3)
    assert float(fields[2]) == pytest.approx(float(scores[fields[1]])) == max(float(v) for v in scores.values())
    assert fields[-2].startswith("speech=")
    # A wav at another rate is resampled to the models' 16 kHz: one second gives one second's frames.
    from pyscripts.infer import recognise_emotion
    write_wav(wav, 8000, np.zeros(8000, dtype=np.int16))
    *_, frames = recognise_emotion(wav, model_path, recipe_dir / "conf/fbank.conf", recipe_dir / "conf/vad.conf")
    assert frames == 98


def test_fold_protocols_on_tiny_corpus(tiny_iemocap, recipe_dir):
    """Stages 1-2 of local/run_ser.sh with each protocol's fold conf on the tiny corpus: the fold count,
    test speakers disjoint from train and valid, targets of the plan's folds only, and the warning about
    the scripted sentences every session shares."""
    root = recipe_dir
    run_script(["local/iemocap_data_prep.sh", tiny_iemocap, "data/iemocap"], cwd=root)
    run_script(["steps/make_fbank.sh", "--nj", "2", "data/iemocap/all", "exp/make_fbank/all", "fbank"], cwd=root)
    run_script(["local/run_ser.sh", "--stop-stage", "1", "--nj", "2", "data/iemocap", "exp/ser"], cwd=root)
    speakers = set(read_table(root / "data/iemocap/all/spk2gender"))
    for conf, num_folds in (("conf/iemocap_folds_loso10.conf", 10), ("conf/iemocap_folds_superb.conf", 5),
                            ("conf/iemocap_folds.conf", 8)):
        proc = run_script(["local/run_ser.sh", "--stage", "2", "--stop-stage", "2", "--fold-conf", conf,
                           "data/iemocap", "exp/ser"], cwd=root)
        folds = [f"fold{k}" for k in range(1, num_folds + 1)]
        assert list(read_table(root / "data/iemocap/folds/plan")) == folds, conf
        assert sorted(p.name for p in (root / "exp/ser/targets").glob("fold*")) == sorted(folds)
        for fold in folds:
            spk = {s: set(read_table(root / f"data/iemocap/folds/{fold}/{s}/utt2spk").values())
                   for s in ("train", "valid", "test")}
            assert spk["test"] and not spk["test"] & (spk["train"] | spk["valid"])
            assert spk["train"] | spk["valid"] | spk["test"] == speakers
        leakage = read_table(root / "data/iemocap/folds/leakage")
        assert list(leakage) == folds and "warning: in" in proc.stderr
