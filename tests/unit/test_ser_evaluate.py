"""SER utterance decisions and metrics: E and UE on a hand-worked confusion matrix, the decision rule
(mean posterior over speech frames, majority vote), the no-speech fallback, scoring and the tables."""
import json

import numpy as np
import pytest

from pyscripts.kaldi.datadir import read_table, write_table
from pyscripts.ser import evaluate
from pyscripts.ser.evaluate import confusion_matrix, error_rates, utterance_decision


def log_post(rows):
    """Log-posteriors from rows of (ang, hap, neu, sad, sil) probabilities."""
    p = np.asarray(rows, dtype=np.float64)
    assert np.allclose(p.sum(axis=1), 1)
    return np.log(np.maximum(p, 1e-12))


def test_error_rates_hand_worked():
    # rows: reference ang, hap, neu, sad; columns: decisions.
    cm = np.array([[5, 1, 0, 0],
                   [2, 6, 2, 0],
                   [0, 0, 8, 2],
                   [0, 0, 0, 4]])
    e, ue = error_rates(cm)
    # 23 of 30 right; recalls 5/6, 6/10, 8/10, 4/4.
    assert e == pytest.approx(7 / 30)
    assert ue == pytest.approx(1 - (5 / 6 + 0.6 + 0.8 + 1.0) / 4)
    refs = [0] * 6 + [1] * 10 + [2] * 10 + [3] * 4
    hyps = [0] * 5 + [1] + [0] * 2 + [1] * 6 + [2] * 2 + [2] * 8 + [3] * 2 + [3] * 4
    assert confusion_matrix(refs, hyps).tolist() == cm.tolist()


def test_unweighted_error_over_present_classes():
    cm = np.array([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 0, 0]])
    e, ue = error_rates(cm)
    assert e == pytest.approx(3 / 8)
    assert ue == pytest.approx(1 - (0.75 + 0.5) / 2)


def test_mean_rule_ignores_non_speech_frames():
    speech_rows = [[0.90, 0.10, 0, 0, 0], [0.45, 0.55, 0, 0, 0], [0.45, 0.55, 0, 0, 0]]
    # Frames the detector called non-speech, whose posteriors favour neu (as a silence-heavy model might).
    other_rows = [[0.0, 0.0, 0.6, 0.0, 0.4]] * 5
    lp = log_post(speech_rows + other_rows)
    speech = np.array([True] * 3 + [False] * 5)
    hyp, scores, fallback = utterance_decision(lp, speech, "mean")
    assert (hyp, fallback) == (0, False)                 # ang: mean 0.6 against hap 0.4
    assert scores == pytest.approx([0.6, 0.4, 0, 0], abs=1e-6)
    # Over all frames neu would win: the speech mask is what makes it ang.
    assert utterance_decision(lp, np.ones(8, bool), "mean")[0] == 2


def test_vote_rule_and_its_tie_break():
    speech_rows = [[0.90, 0.10, 0, 0, 0], [0.45, 0.55, 0, 0, 0], [0.45, 0.55, 0, 0, 0]]
    hyp, scores, _ = utterance_decision(log_post(speech_rows), np.ones(3, bool), "vote")
    assert hyp == 1 and scores == pytest.approx([1 / 3, 2 / 3, 0, 0])   # two frames vote hap
    tie = [[0.6, 0.4, 0, 0, 0], [0.3, 0.7, 0, 0, 0]]                  # 1 vote each; hap has the higher mean
    assert utterance_decision(log_post(tie), np.ones(2, bool), "vote")[0] == 1


def test_sil_posterior_takes_no_part():
    # sil is the most probable class of every frame, yet the decision is among the emotions.
    rows = [[0.1, 0.05, 0.05, 0.0, 0.8], [0.2, 0.0, 0.1, 0.0, 0.7]]
    hyp, scores, _ = utterance_decision(log_post(rows), np.ones(2, bool))
    assert hyp == 0 and sum(scores) == pytest.approx(1.0)


def test_no_speech_frame_falls_back_to_all_frames():
    rows = [[0.1, 0.0, 0.0, 0.5, 0.4], [0.0, 0.2, 0.0, 0.4, 0.4]]
    hyp, scores, fallback = utterance_decision(log_post(rows), np.zeros(2, bool))
    assert fallback and hyp == 3
    assert scores == pytest.approx(np.array([0.05, 0.1, 0.0, 0.45]) / 0.6, abs=1e-9)


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError):
        utterance_decision(np.zeros((3, 4)), np.ones(3, bool))
    with pytest.raises(ValueError):
        utterance_decision(np.zeros((3, 5)), np.ones(2, bool))


def write_scoring_fixture(root, utts, rng=None):
    """A data dir + targets dir; utts: {utt: (emotion, targets list)}; fake features of matching length
    (zeros, or drawn from rng)."""
    import kaldiio
    data, targets = root / "data", root / "targets"
    data.mkdir(parents=True)
    targets.mkdir(parents=True)
    write_table(data / "utt2emo", {u: e for u, (e, _) in utts.items()})
    write_table(data / "utt2spk", {u: "spk" for u in utts})
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as w:
        for u, (_, t) in utts.items():
            w(u, np.zeros((len(t), 40), dtype=np.float32) if rng is None
              else rng.normal(size=(len(t), 40)).astype(np.float32))
    with kaldiio.WriteHelper(f"ark,scp:{targets}/targets.ark,{targets}/targets.scp") as w:
        for u, (_, t) in utts.items():
            w(u, np.asarray(t, dtype=np.int32))
    (targets / "num_targets").write_text("5\n")
    return data, targets


def test_score_set_with_known_posteriors(tmp_path, monkeypatch):
    """Scoring end to end with a stand-in for the network: every frame says 'ang' except the frames of
    utterances whose features were marked; checks decisions, the fallback, confusion and metrics."""
    utts = {"a1": ("ang", [4, 0, 0, 4]), "h1": ("hap", [4, 1, 1, 1]), "n1": ("neu", [2, 2, 4]),
            "s1": ("sad", [4, 4, 4])}   # s1: no speech frame
    data, targets = write_scoring_fixture(tmp_path, utts)
    frame_posts = {"a1": [[0.7, 0.1, 0.1, 0.1, 0]] * 4, "h1": [[0.1, 0.7, 0.1, 0.1, 0]] * 4,
                   "n1": [[0.6, 0.1, 0.2, 0.1, 0]] * 3, "s1": [[0.1, 0.1, 0.1, 0.7, 0]] * 3}
    order = iter(["a1", "h1", "n1", "s1"])   # score_set walks utt2emo in C order

    def fake_log_posteriors(feats):
        utt = next(order)
        assert len(feats) == len(utts[utt][1])
        return [log_post(frame_posts[utt])]

    monkeypatch.setattr(evaluate, "_forward", lambda models, data_dir: fake_log_posteriors)
    metrics = evaluate.score_set("model.pt", data, targets, tmp_path / "out")
    assert metrics["confusion"] == [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert metrics["E"] == pytest.approx(0.25) and metrics["UE"] == pytest.approx(0.25)
    assert metrics["no_speech_utterances"] == 1
    decisions = read_table(tmp_path / "out/decisions")
    assert decisions["n1"].split()[:2] == ["neu", "ang"]
    assert decisions["s1"].split()[:2] == ["sad", "sad"]
    assert json.loads((tmp_path / "out/metrics.json").read_text())["utterances"] == 4
    assert "recall" in (tmp_path / "out/confusion.txt").read_text()


def test_fold_scores_several_models_in_one_pass_as_one_by_one(tmp_path):
    """Transfer rows of one fold scored together (features read once, shared frozen layers computed once)
    give each model the decisions and metrics it gets alone."""
    import torch
    from pyscripts.nnet.model import ConvNet, copy_layers, package_model
    rng = np.random.default_rng(1)
    utts = {f"u{i}": (evaluate.EMOTIONS[i % 4], list(rng.integers(0, 5, size=25))) for i in range(8)}
    for subset in ("valid", "test"):
        data, targets = write_scoring_fixture(tmp_path / subset, utts, rng)
        (tmp_path / "folds/fold1").mkdir(parents=True, exist_ok=True)
        (tmp_path / "targets/fold1").mkdir(parents=True, exist_ok=True)
        (tmp_path / "folds/fold1" / subset).symlink_to(data)  # the scp files name the arks by path
        (tmp_path / "targets/fold1" / subset).symlink_to(targets)
    torch.manual_seed(0)
    source = ConvNet(5).eval()
    exp_dirs = []
    for frozen in (3, 2, 0):
        model = ConvNet(5)
        copy_layers(model, source, frozen)
        exp_dirs.append(tmp_path / f"l{frozen}")
        (exp_dirs[-1] / "fold1").mkdir(parents=True)
        torch.save(package_model(model.eval(), {}, torch.ones(5), 1, {}, []), exp_dirs[-1] / "fold1/final.pt")
    folds, targets = tmp_path / "folds/fold1", tmp_path / "targets/fold1"
    together = evaluate.score_fold([d / "fold1" for d in exp_dirs], folds, targets, eval_name="together")
    for d in exp_dirs:
        alone = evaluate.score_fold([d / "fold1"], folds, targets, eval_name="alone")[d / "fold1"]
        for subset in ("valid", "test"):
            assert {k: v for k, v in together[d / "fold1"][subset].items() if k != "model"} == \
                   {k: v for k, v in alone[subset].items() if k != "model"}
            assert (d / "fold1/together" / subset / "decisions").read_text() == \
                   (d / "fold1/alone" / subset / "decisions").read_text()


def test_length_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    data, targets = write_scoring_fixture(tmp_path, {"a1": ("ang", [0, 0, 4])})
    import kaldiio
    with kaldiio.WriteHelper(f"ark,scp:{targets}/t2.ark,{targets}/targets.scp") as w:
        w("a1", np.zeros(5, dtype=np.int32))
    monkeypatch.setattr(evaluate, "_forward", lambda models, data_dir: lambda feats: [None])
    from pyscripts.errors import DataError
    with pytest.raises(DataError, match="3 feature frames but 5 targets"):
        evaluate.score_set("model.pt", data, targets, tmp_path / "out")


def test_tables(tmp_path):
    folds = []
    for k, (ed, et, ud, ut) in enumerate([(0.20, 0.30, 0.25, 0.40), (0.10, 0.50, 0.15, 0.60)], 1):
        fold = tmp_path / f"fold{k}"
        spk_dir = tmp_path / f"data{k}"
        spk_dir.mkdir()
        write_table(spk_dir / "utt2spk", {"u1": f"Ses0{k}F"})
        for subset, e, ue in (("valid", ed, ud), ("test", et, ut)):
            d = fold / "eval" / subset
            d.mkdir(parents=True)
            cm = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
            d.joinpath("metrics.json").write_text(json.dumps(
                {"E": e, "UE": ue, "utterances": 4, "rule": "mean", "data": str(spk_dir), "confusion": cm}))
        folds.append(fold)
    per_fold, mean = evaluate.collect(folds)
    seed_style, per_fold_table = evaluate.markdown_tables(per_fold, mean)
    assert seed_style == ("| Model | E Dev | E Test | UE Dev | UE Test |\n|---|---|---|---|---|\n"
                          "| Baseline | 15.0 | 40.0 | 20.0 | 50.0 |\n")
    assert per_fold_table.splitlines()[2] == "| fold1 (Ses01F) | 20.0 | 30.0 | 25.0 | 40.0 |"
    assert per_fold_table.splitlines()[-1] == "| mean of 2 | 15.0 | 40.0 | 20.0 | 50.0 |"
    text = evaluate.write_summary(folds, tmp_path / "out")
    assert "ang          2" in text and (tmp_path / "out/results.md").read_text() == text
