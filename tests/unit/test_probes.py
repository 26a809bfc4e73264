"""Layer analysis beyond linear CKA: linear probes (pyscripts/transfer/probes.py), SVCCA and PWCCA
(pyscripts/transfer/cca.py) and their place in cka.py's tables, on hand-made data and small networks."""
import json

import numpy as np
import pytest
import torch

from pyscripts.errors import DataError
from pyscripts.nnet.model import ConvNet, package_model
from pyscripts.transfer.cca import cca, pwcca, svcca, svd_reduce
from pyscripts.transfer.cka import linear_cka, read_cka_table
from pyscripts.transfer.probes import (chance_accuracy, pdf_to_phone, probe_accuracy, read_probe_table,
                                       speaker_split)
from nnet_fixtures import write_split


def _blobs(n, classes, dim, seed, spread=6.0):
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(100).normal(scale=spread, size=(classes, dim))
    y = rng.integers(classes, size=n)
    return means[y] + rng.standard_normal((n, dim)), y


# -- probes ---------------------------------------------------------------------------------------
def test_probe_reads_separable_classes_almost_perfectly():
    (train_x, train_y), (eval_x, eval_y) = _blobs(1000, 4, 20, seed=0), _blobs(1000, 4, 20, seed=1)
    accuracy, converged = probe_accuracy(train_x, train_y, eval_x, eval_y)
    assert accuracy > 0.98
    assert converged


def test_probe_on_random_labels_is_at_chance():
    rng = np.random.default_rng(2)
    train_x, eval_x = rng.standard_normal((2000, 30)), rng.standard_normal((2000, 30))
    train_y, eval_y = rng.integers(4, size=2000), rng.integers(4, size=2000)
    accuracy, _ = probe_accuracy(train_x, train_y, eval_x, eval_y)
    assert abs(accuracy - 0.25) < 0.04


def test_probe_is_indifferent_to_feature_scale():
    (train_x, train_y), (eval_x, eval_y) = _blobs(500, 3, 10, seed=3, spread=1.0), _blobs(500, 3, 10, seed=4,
                                                                                          spread=1.0)
    scale = np.logspace(-3, 3, 10)  # standardisation undoes any per-feature scale
    plain, _ = probe_accuracy(train_x, train_y, eval_x, eval_y)
    scaled, _ = probe_accuracy(train_x * scale, train_y, eval_x * scale, eval_y)
    assert scaled == pytest.approx(plain, abs=0.01)


def test_chance_is_the_majority_class_of_training():
    assert chance_accuracy(np.array([0, 1, 1, 1, 2]), np.array([1, 1, 0, 2])) == pytest.approx(0.5)


def test_speaker_split_alternates_each_speakers_utterances(tmp_path):
    (tmp_path / "utt2spk").write_text("a1 A\na2 A\na3 A\nb1 B\nb2 B\nc1 C\n")
    train, held_out, utt2spk = speaker_split(tmp_path)
    assert train == ["a1", "a3", "b1"]       # C has one utterance: left out
    assert held_out == ["a2", "b2"]
    assert utt2spk["b2"] == "B"


def _write_text_model(ali_dir, phones):
    """A text-format monophone model: 3-state left-to-right HMMs, pdfs 3*(phone-1)+state."""
    ali_dir.mkdir(parents=True, exist_ok=True)
    ids = " ".join(str(p) for p in range(1, len(phones) + 1))
    topo = ["<Topology>", "<TopologyEntry>", "<ForPhones>", ids, "</ForPhones>"]
    topo += [f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>"
             for s in range(3)]
    topo += ["<State> 3 </State>", "</TopologyEntry>", "</Topology>"]
    triples = [(p, s, 3 * (p - 1) + s) for p in range(1, len(phones) + 1) for s in range(3)]
    (ali_dir / "final.mdl").write_text(
        "<TransitionModel>\n" + "\n".join(topo) + f"\n<Triples> {len(triples)}\n"
        + "".join(f"{p} {s} {d}\n" for p, s, d in triples) + "</Triples>\n<LogProbs>\n [ "
        + " ".join(["0"] + ["-0.693147"] * (2 * len(triples))) + " ]\n</LogProbs>\n</TransitionModel>\n")
    (ali_dir / "phones.txt").write_text("<eps> 0\n" + "".join(f"{p} {i}\n" for i, p in enumerate(phones, 1)))


def test_pdfs_map_to_phones_folded_to_the_scoring_set(tmp_path):
    _write_text_model(tmp_path / "ali", ["aa", "ao", "sil", "z"])
    (tmp_path / "map").write_text("aa aa aa\nao ao aa\nh# sil sil\nz z z\n")
    table, names = pdf_to_phone(tmp_path / "ali", tmp_path / "map")
    assert names == ["aa", "sil", "z"]        # ao folds into aa
    assert table.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    table, names = pdf_to_phone(tmp_path / "ali")
    assert names == ["aa", "ao", "sil", "z"] and table[3] == 1


def test_phone_mapping_needs_the_alignment_model(tmp_path):
    with pytest.raises(DataError, match="final.mdl not found.*--phone-ali-dir"):
        pdf_to_phone(tmp_path)


# -- SVCCA and PWCCA ------------------------------------------------------------------------------
def _views(n=2000, p=10, seed=0):
    return np.random.default_rng(seed).standard_normal((n, p))


def test_identical_views_score_one():
    x = _views()
    assert svcca(x, x) == pytest.approx(1.0, abs=1e-9)
    assert pwcca(x, x) == pytest.approx(1.0, abs=1e-9)


def test_svcca_is_invariant_to_an_invertible_linear_map():
    x = _views(p=12)
    a = np.random.default_rng(1).standard_normal((12, 12)) + 3 * np.eye(12)
    assert svcca(x, x @ a, keep=1.0) == pytest.approx(1.0, abs=1e-9)
    assert pwcca(x, x @ a, keep=1.0) == pytest.approx(1.0, abs=1e-9)
    # CKA is not: it weighs the directions by their variance.
    assert linear_cka(x, x @ a) < 0.99


def test_independent_views_score_low():
    x, y = _views(seed=0), _views(seed=1)
    assert svcca(x, y) < 0.1
    assert pwcca(x, y) < 0.1
    assert linear_cka(x, y) < 0.05


def test_pwcca_weights_the_directions_that_carry_the_representation():
    # x: a big column a and a small one b; y: a and an unrelated c. Canonical correlations 1 (a) and ~0.
    rng = np.random.default_rng(5)
    a, b, c = rng.standard_normal((3, 5000))
    x, y = np.stack([10 * a, b], axis=1), np.stack([a, c], axis=1)
    rho, _ = cca(x, y)
    assert rho[0] == pytest.approx(1.0, abs=1e-9) and rho[1] < 0.05
    assert svcca(x, y, keep=1.0) == pytest.approx(0.5, abs=0.03)
    # PWCCA: a carries 10 / (10 + 1) of x's projections.
    assert pwcca(x, y, keep=1.0) == pytest.approx(10 / 11, abs=0.03)
    # At 99% variance x keeps only its leading direction, almost exactly a, which y holds.
    assert svd_reduce(x, 0.99).shape == (5000, 1)
    assert svcca(x, y) == pytest.approx(1.0, abs=1e-6)


def test_svd_reduce_keeps_the_fewest_directions_for_the_variance_and_respects_the_cap():
    x = _views(n=500, p=6) * np.array([10.0, 5.0, 1.0, 0.1, 0.01, 0.001])
    assert svd_reduce(x, 0.9).shape[1] == 2
    assert svd_reduce(x, 0.999).shape[1] == 3
    assert svd_reduce(x, 1.0).shape[1] == 6
    assert svd_reduce(x, 1.0, max_dims=4).shape[1] == 4


@pytest.mark.parametrize("width", [30, 300])   # narrow (x^T x) and wide (x x^T) layers
def test_reduced_views_are_the_leading_singular_directions(width):
    x = _views(n=200, p=width) @ np.diag(np.linspace(3.0, 0.1, width))
    reduced = svd_reduce(x, 0.9, max_dims=15)
    u, s, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    assert reduced.shape == (200, 15)
    expected = u[:, :15] * s[:15]
    signs = np.sign(np.sum(reduced * expected, axis=0))   # each direction is defined up to its sign
    assert reduced * signs == pytest.approx(expected, abs=1e-8)
    gram = reduced.T @ reduced   # centred, orthogonal columns: what the fast CCA of reduced views relies on
    assert np.abs(reduced.mean(axis=0)).max() < 1e-9
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-8 * gram.max()
    y = np.tanh(x[:, :20] @ np.random.default_rng(6).standard_normal((20, 25)))
    rho, _ = cca(reduced, svd_reduce(y, 0.9, max_dims=15))
    assert svcca(x, y, 0.9, max_dims=15) == pytest.approx(rho.mean(), abs=1e-9)


def test_invariances_of_the_three_measures():
    x = _views(p=8)
    y = np.tanh(x @ np.random.default_rng(2).standard_normal((8, 8)))
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((8, 8)))
    for measure in (linear_cka, svcca):   # rotations and isotropic scaling
        assert measure(3.0 * x @ q, y) == pytest.approx(measure(x, y), abs=1e-9), measure.__name__
    # PWCCA weighs by the neurons of x: unchanged when they are scaled, permuted or flipped, not rotated.
    shuffled = -3.0 * x[:, np.random.default_rng(4).permutation(8)]
    assert pwcca(shuffled, y) == pytest.approx(pwcca(x, y), abs=1e-9)
    assert abs(pwcca(x @ q, y) - pwcca(x, y)) > 1e-4


# -- the command-line tools on small networks -----------------------------------------------------
def _save_model(path, seed, num_targets):
    torch.manual_seed(seed)
    model = ConvNet(num_targets, feat_dim=40, context=7, conv1_channels=4, conv2_channels=6, fc_dim=16)
    model.feat_mean.fill_(8.0)
    torch.save(package_model(model, {"training": {"seed": seed}}, torch.ones(num_targets), 0, {}, []), path)
    return path


def test_cka_tool_writes_svcca_and_pwcca_beside_cka(tmp_path):
    from pyscripts.transfer import cka
    write_split(tmp_path / "data", tmp_path / "targets", num_utts=6)
    asr, ser = _save_model(tmp_path / "asr.pt", 1, 3), _save_model(tmp_path / "ser.pt", 2, 5)
    cka.main(["--asr-model", str(asr), "--ser-model", str(ser), "--ser-model2", str(ser), "--frames-per-set", "200",
              "--svcca-out", str(tmp_path / "svcca.tsv"), "--pwcca-out", str(tmp_path / "pwcca.tsv"),
              str(tmp_path / "data"), str(tmp_path / "cka.tsv")])
    tables = {m: read_cka_table(tmp_path / f"{m}.tsv") for m in ("cka", "svcca", "pwcca")}
    for measure, columns in tables.items():
        assert list(columns) == ["asr_ser", "asr_init", "asr_random", "ser_ser"], measure
        assert columns["ser_ser"] == pytest.approx([1.0] * 5, abs=1e-3), measure   # a network against itself
        assert all(0 <= v <= 1.0001 for values in columns.values() for v in values), measure
    assert "99% of its variance, at most 20" in (tmp_path / "svcca.tsv").read_text()
    from pyscripts.transfer.report import cka_section
    section = cka_section(tmp_path)
    assert "SVCCA:\n\n| layer | ASR vs SER |" in section and "PWCCA:\n\n| layer |" in section


def _write_ser_split(data_dir, targets_dir, seed):
    write_split(data_dir, targets_dir, num_utts=8, num_targets=5, seed=seed)
    (targets_dir / "classes.txt").write_text("ang 0\nhap 1\nneu 2\nsad 3\nsil 4\n")


def test_probe_tool_writes_every_network_layer_and_label(tmp_path):
    from pyscripts.transfer import figures, probes
    # "TIMIT": pdf ids 0..8 of 3 phones (a, b, c, 3 states each); the features' classes are the pdfs.
    write_split(tmp_path / "timit/train", tmp_path / "ali/targets", num_utts=8, num_targets=9, seed=0)
    write_split(tmp_path / "timit/dev", tmp_path / "ali_dev/targets", num_utts=6, num_targets=9, seed=1)
    _write_text_model(tmp_path / "ali", ["a", "b", "c"])
    (tmp_path / "timit/dev/utt2spk").write_text("".join(f"utt{u:03d} spk{u % 3}\n" for u in range(6)))
    _write_ser_split(tmp_path / "fold1/train", tmp_path / "ser/fold1/train", seed=2)
    _write_ser_split(tmp_path / "fold1/test", tmp_path / "ser/fold1/test", seed=3)
    asr, ser = _save_model(tmp_path / "asr.pt", 1, 9), _save_model(tmp_path / "ser.pt", 2, 5)
    out = tmp_path / "report/probes.tsv"
    probes.main(["--asr-model", str(asr), "--ser-model", str(ser), "--frames-per-split", "150",
                 "--phone", str(tmp_path / "timit/train"), str(tmp_path / "ali/targets"),
                 str(tmp_path / "timit/dev"), str(tmp_path / "ali_dev/targets"), "--phone-map", "",
                 "--emotion", str(tmp_path / "fold1/train"), str(tmp_path / "ser/fold1/train"),
                 str(tmp_path / "fold1/test"), str(tmp_path / "ser/fold1/test"),
                 "--speaker", str(tmp_path / "timit/dev"), str(out)])
    rows = read_probe_table(out)
    keys = {(r["network"], r["layer"], r["label"]) for r in rows}
    expected = {("input", 0, lab) for lab in probes.LABELS}
    expected |= {(n, k, lab) for n in ("asr", "ser") for k in range(1, 6) for lab in probes.LABELS}
    assert keys == expected
    by_label = {r["label"]: r for r in rows}
    assert by_label["phone"]["classes"] == 3
    assert by_label["emotion"]["classes"] == 4          # sil frames are left out
    assert by_label["speaker"]["classes"] == 3
    assert by_label["phone"]["train_frames"] == by_label["phone"]["eval_frames"] == 150
    # The phone is written into the input frames (noisy class means): the input probe reads it well.
    inputs = {r["label"]: r["accuracy"] for r in rows if r["network"] == "input"}
    assert inputs["phone"] > 0.9 and inputs["emotion"] > 0.9
    saved = json.loads(out.with_suffix(".json").read_text())
    assert len(saved["probes"]) == len(rows) and saved["labels"]["emotion"]["classes"] == ["ang", "hap", "neu", "sad"]
    figures.main(["probes", str(out), str(tmp_path / "report/probes.png")])
    assert (tmp_path / "report/probes.png").stat().st_size > 1000
    from pyscripts.transfer.report import probe_section
    section = probe_section(tmp_path / "report")
    assert "| layer | ASR phone | SER phone | ASR emotion | SER emotion | ASR speaker | SER speaker |" in section
    assert f"| 0 (input) | {inputs['phone']:.3f} | {inputs['phone']:.3f} |" in section
    assert "![probe accuracy per layer](probes.png)" in section


def test_probe_tool_without_labels_is_an_error(tmp_path, capsys):
    from pyscripts.transfer import probes
    with pytest.raises(SystemExit):
        probes.main(["--asr-model", "a.pt", "--ser-model", "s.pt", str(tmp_path / "p.tsv")])
    assert "no label to probe" in capsys.readouterr().err
