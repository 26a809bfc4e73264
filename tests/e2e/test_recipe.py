"""End-to-end smoke test: ./run.sh --corpus tiny runs every stage that exists, in a fresh directory."""
import json
import re

import kaldiio
import pytest

from conftest import run_script
from pyscripts.kaldi.datadir import read_table, validate_data_dir
from pyscripts.asr.phones import read_map39
from pyscripts.asr.scoring import fold_phones


def test_run_sh_tiny_end_to_end(tiny_run):
    recipe_dir, proc = tiny_run
    for stage in range(1, 14):
        assert f"[{stage}/13] " in proc.stdout
    for name in ("train", "dev", "test"):
        d = recipe_dir / "data/timit" / name
        validate_data_dir(d, need_feats=True, need_text=True)
        feats = kaldiio.load_scp(str(d / "feats.scp"))
        assert all(m.shape[1] == 40 for m in feats.values())
        mfcc = read_table(recipe_dir / "data/timit_mfcc" / name / "utt2num_frames")
        assert mfcc == read_table(d / "utt2num_frames")   # GMM alignments must fit the fbank frames
    validate_data_dir(recipe_dir / "data/iemocap/all", need_feats=True)
    assert (recipe_dir / "data/timit/train/cmvn_global.stats").is_file()
    assert (recipe_dir / "data/lang/L.fst").is_file() and (recipe_dir / "data/lang_test_bg/G.fst").is_file()
    targets = kaldiio.load_scp(str(recipe_dir / "exp/mono_ali/targets/targets.scp"))
    frames = read_table(recipe_dir / "data/timit/train/utt2num_frames")
    assert targets and all(len(v) == int(frames[u]) for u, v in targets.items())
    assert (recipe_dir / "exp/mono/graph/HCLG.fst").is_file()
    # Quality floors where the tiny run's value is known: the monophone GMM's PER (68-69% on dev and test;
    # no randomness; deleting every phone scores 100%).
    for subset in ("dev", "test"):
        best = (recipe_dir / f"exp/mono/decode_{subset}/scoring/best_wer").read_text()
        assert float(re.match(r"%WER ([0-9.]+) \[", best).group(1)) < 80, best
    results = (recipe_dir / "exp/RESULTS.md").read_text()
    assert "exp/convnet_asr" in results and "exp/mono" in results
    assert (recipe_dir / "exp/convnet_asr/decode_test/scoring/best_wer").is_file()
    assert len(list((recipe_dir / "exp/ser").glob("fold*/final.pt"))) == 8
    assert "| Baseline |" in (recipe_dir / "exp/ser/results.md").read_text()
    # The tiny SER ConvNet learns the synthetic emotions: mean UE over the folds 47% here, chance 75%.
    ser_mean = json.loads((recipe_dir / "exp/ser/results.json").read_text())["mean"]
    assert all(ser_mean[subset]["UE"] < 0.65 for subset in ("valid", "test")), ser_mean
    # Stage 12 reuses the models of stages 9 and 11 as its Baseline rows instead of training them again.
    assert (recipe_dir / "exp/transfer/ser2asr/baseline").resolve() == (recipe_dir / "exp/convnet_asr").resolve()
    assert (recipe_dir / "exp/transfer/asr2ser/baseline").resolve() == (recipe_dir / "exp/ser").resolve()
    assert not list((recipe_dir / "exp/transfer").glob("*/log/train.baseline.*"))  # linked, never re-trained
    report = (recipe_dir / "exp/report/README.md").read_text()
    assert "No. Constant Layers" in report
    for png in ("cka.png", "filters.png", "transfer_asr2ser.png", "transfer_ser2asr.png"):
        assert (recipe_dir / "exp/report" / png).stat().st_size > 1000
    check_hybrid_inference(recipe_dir)
    # Stage 13: the joint model beside the single-task Baselines, both tasks scored.
    joint = (recipe_dir / "exp/joint/results.md").read_text()
    assert "Joint" in joint and "ASR" in joint and "SER" in joint
    assert (recipe_dir / "exp/joint/asr/decode_test/scoring/best_wer").is_file()
    # ... and in stage 12's report, which stage 13 writes again (with the tables' intervals).
    report = (recipe_dir / "exp/report/README.md").read_text()
    assert "## Joint ASR-SER model\n\nFrom `exp/joint/results.md`:" in report and "| ASR, TIMIT:" in report
    assert "95% confidence intervals, `value [low, high]`" in report
    # A second run with the wrong corpus is refused rather than mixing results.
    wrong = run_script(["./run.sh", "--corpus", "demo", "--skip-setup", "true", "--stage", "4"],
                       cwd=recipe_dir, check=False)
    assert wrong.returncode == 1 and "hold results of --corpus tiny" in wrong.stderr


def check_hybrid_inference(recipe_dir):
    """local/hybrid_infer.sh on a wav must give what the recipe's stages gave for the same utterance:
    the hybrid decode's best path (folded to 39 phones) and the SER evaluation's posteriors."""
    timit_utt, timit_wav = _first_wav(recipe_dir / "data/timit/test/wav.scp")
    ser_utt, ser_line = (recipe_dir / "exp/ser/fold1/eval/test/decisions").read_text().split("\n")[0].split(" ", 1)
    ser_wav = read_table(recipe_dir / "data/iemocap/all/wav.scp")[ser_utt]
    decode = recipe_dir / "exp/convnet_asr/decode_test"
    acwt = (decode / "acwt").read_text().strip()
    proc = run_script(["local/hybrid_infer.sh", "--asr-dir", "exp/convnet_asr", "--ser-model",
                       "exp/ser/fold1/final.pt", "--acwt", acwt, timit_wav, ser_wav], cwd=recipe_dir)
    lines = proc.stdout.splitlines()
    assert lines[0] == timit_wav and lines[3] == ser_wav
    hyps = dict(line.split(" ", 1) for path in decode.glob("hyp.*") for line in path.read_text().splitlines())
    map39 = read_map39(recipe_dir / "conf/phones.60-48-39.map")
    assert lines[1].split() == ["phones:"] + fold_phones(hyps[timit_utt], map39)
    emotion = lines[5].split()
    ref, hyp, *posteriors = ser_line.split()
    assert emotion[:2] == ["emotion:", hyp]
    printed = [float(item.split("=")[1].rstrip(";")) for item in emotion[3:7]]
    assert printed == pytest.approx([float(p) for p in posteriors], abs=6e-4)


def _first_wav(wav_scp):
    """(utterance, path) of the first entry of a wav.scp, whatever its rxfilename form."""
    utt, rx = wav_scp.read_text().split("\n")[0].split(" ", 1)
    return utt, next(w for w in rx.split() if w.upper().endswith(".WAV"))
