"""The transfer sweeps (pyscripts/transfer/plan.py, local/transfer_train_job.sh): the planned jobs, and
what each planned job does to the weights when the training stage runs it."""
import logging
import re
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyscripts.errors import DataError
from pyscripts.nnet import train as nnet_train
from pyscripts.transfer import plan, train_group

REPO = Path(__file__).resolve().parents[2]
FOLDS = [f"fold{k}" for k in range(1, 9)]
# A narrow ConvNet (the paper's layers, fewer channels) trained for one short epoch.
TINY = ["model.conv1_channels=4", "model.conv2_channels=8", "model.fc_dim=16", "training.max_epochs=1",
        "training.batch_size=32", "training.amp=fp32", "training.channels_last=false"]


def _write_folds_plan(folds_dir, folds=FOLDS):
    folds_dir.mkdir(parents=True, exist_ok=True)
    (folds_dir / "plan").write_text("".join(f"{f} test=S{k} valid=V1,V2 train=...\n" for k, f in enumerate(folds)))


def test_ser2asr_plans_baseline_and_l5_to_l0():
    jobs = plan.plan_direction("ser2asr", plan.Setup(), FOLDS)
    assert [j.row for j in jobs] == ["baseline", "l5", "l4", "l3", "l2", "l1", "l0"]
    assert [j.exp_dir for j in jobs] == ["exp/transfer/ser2asr/" + r for r in
                                         ("baseline", "l5", "l4", "l3", "l2", "l1", "l0")]
    assert [j.constant_layers for j in jobs] == [None, 5, 4, 3, 2, 1, 0]
    assert [j.freeze_layers for j in jobs] == [0, 5, 4, 3, 2, 1, 0]
    baseline, transfers = jobs[0], jobs[1:]
    assert baseline.init_from == "-"
    # The source is the SER baseline of the chosen fold; the target data are TIMIT's.
    assert {j.init_from for j in transfers} == {"exp/transfer/asr2ser/baseline/fold1/final.pt"}
    assert not any(j.reinit_unfrozen for j in jobs)
    assert {(j.train_data, j.dev_data) for j in jobs} == {("data/timit/train", "data/timit/dev")}


def test_asr2ser_plans_seven_rows_over_eight_folds():
    jobs = plan.plan_direction("asr2ser", plan.Setup(), FOLDS)
    assert len(jobs) == 7 * 8
    assert len({j.exp_dir for j in jobs}) == 56
    assert {(j.row, j.fold) for j in jobs} == {(r, f) for r in plan.ROWS for f in FOLDS}
    l2_fold3 = next(j for j in jobs if j.row == "l2" and j.fold == "fold3")
    assert l2_fold3.exp_dir == "exp/transfer/asr2ser/l2/fold3"
    assert l2_fold3.init_from == "exp/transfer/ser2asr/baseline/final.pt"
    assert l2_fold3.freeze_layers == 2
    assert (l2_fold3.train_data, l2_fold3.dev_data) == ("data/iemocap/folds/fold3/train",
                                                        "data/iemocap/folds/fold3/valid")
    assert (l2_fold3.train_targets, l2_fold3.dev_targets) == ("exp/ser/targets/fold3/train",
                                                              "exp/ser/targets/fold3/valid")
    assert all(j.init_from == "-" for j in jobs if j.row == "baseline")


def test_reinit_switch_sources_and_selection():
    setup = plan.Setup(reinit_unfrozen=True, exp_root="exp/transfer_reinit", asr_source="asr.pt",
                       ser_source="ser.pt")
    ser2asr = plan.plan_direction("ser2asr", setup, [])
    assert [j.reinit_unfrozen for j in ser2asr] == [False] + [True] * 6
    assert {j.init_from for j in ser2asr[1:]} == {"ser.pt"}
    assert ser2asr[-1].exp_dir == "exp/transfer_reinit/ser2asr/l0"
    asr2ser = plan.plan_direction("asr2ser", setup, FOLDS[:2])
    assert {j.init_from for j in asr2ser if j.row != "baseline"} == {"asr.pt"}
    assert [j.row for j in plan.select(asr2ser, "baseline")] == ["baseline"] * 2
    assert len(plan.select(asr2ser, "transfer")) == 12
    with pytest.raises(DataError, match="fold9"):
        plan.plan_direction("ser2asr", plan.Setup(ser_source_fold="fold9"), FOLDS)


def test_jobs_file_round_trip_and_command_line(tmp_path):
    folds_dir = tmp_path / "folds"
    _write_folds_plan(folds_dir)
    out = tmp_path / "jobs" / "asr2ser.transfer"
    proc = subprocess.run([sys.executable, "-m", "pyscripts.transfer.plan", "--direction", "asr2ser", "--which",
                           "transfer", "--ser-folds-dir", str(folds_dir), "--reinit-unfrozen", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    jobs = plan.read_jobs(out)
    assert len(jobs) == 6 * 8 and len(out.read_text().splitlines()) == 48
    assert jobs == plan.select(plan.plan_direction("asr2ser", plan.Setup(ser_folds_dir=str(folds_dir),
                                                                         reinit_unfrozen=True), FOLDS), "transfer")
    missing = subprocess.run([sys.executable, "-m", "pyscripts.transfer.plan", "--direction", "asr2ser",
                              "--ser-folds-dir", str(tmp_path / "none"), str(out)], cwd=REPO,
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "ser_make_folds.sh" in missing.stderr


# ---------------------------------------------------------------- the planned jobs, run on a tiny problem
def _write_task(data_dir, targets_dir, num_targets, seed, num_utts=12):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=1.5, size=(num_targets, 40)).astype(np.float32)
    data_dir.mkdir(parents=True)
    targets_dir.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/feats.ark,{data_dir}/feats.scp") as feats_out, \
         kaldiio.WriteHelper(f"ark,scp:{targets_dir}/targets.ark,{targets_dir}/targets.scp") as targets_out:
        for u in range(num_utts):
            labels = np.repeat(rng.integers(num_targets, size=10), 5)
            feats_out(f"u{u:02d}", (means[labels] + rng.normal(size=(len(labels), 40))).astype(np.float32))
            targets_out(f"u{u:02d}", labels.astype(np.int32))
    (targets_dir / "num_targets").write_text(f"{num_targets}\n")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A 'SER' source model (5 targets) and the ser2asr plan for an 'ASR' task with 7 targets."""
    root = tmp_path_factory.mktemp("sweep")
    for name, n, seed in (("ser", 5, 1), ("asr", 7, 2)):
        _write_task(root / name / "train", root / name / "train_tg", n, seed)
        _write_task(root / name / "dev", root / name / "dev_tg", n, seed + 10, num_utts=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = nnet_train.load_config(REPO / "conf/convnet_asr.yaml", TINY)
    source = nnet_train.train(cfg, root / "ser/train", root / "ser/dev", root / "ser/train_tg",
                              root / "ser/dev_tg", root / "ser_model")
    setup = plan.Setup(exp_root=str(root / "exp"), ser_source=str(source),
                       asr_train_data=str(root / "asr/train"), asr_dev_data=str(root / "asr/dev"),
                       asr_train_targets=str(root / "asr/train_tg"), asr_dev_targets=str(root / "asr/dev_tg"))
    yield root, source, setup
    torch.set_num_threads(threads)


def _run_job(job):
    cfg = nnet_train.load_config(REPO / "conf/convnet_asr.yaml", TINY)
    cfg["init"].update({"from": None if job.init_from == "-" else job.init_from,
                        "freeze_layers": job.freeze_layers, "reinit_unfrozen": job.reinit_unfrozen})
    final = nnet_train.train(cfg, job.train_data, job.dev_data, job.train_targets, job.dev_targets, job.exp_dir)
    return nnet_train.load_package(final)[0]


def _layer_equal(a, b, n):
    sa, sb = a.layer(n).state_dict(), b.layer(n).state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("reinit", [False, True])
def test_each_planned_job_freezes_and_initialises_the_right_layers(tiny_sweep, reinit):
    root, source_path, setup = tiny_sweep
    setup = plan.Setup(**{**setup.__dict__, "reinit_unfrozen": reinit,
                          "exp_root": str(root / ("exp_reinit" if reinit else "exp"))})
    source = nnet_train.load_package(source_path)[0]
    for job in plan.plan_direction("ser2asr", setup, []):
        # Initialisation, as the training stage sets it up before the first update.
        torch.manual_seed(0)
        fresh = nnet_train.build_model(7, 40, nnet_train.load_config(REPO / "conf/convnet_asr.yaml", TINY)["model"])
        if job.init_from != "-":
            nnet_train.init_from_source(fresh, {"from": job.init_from, "freeze_layers": job.freeze_layers,
                                                "reinit_unfrozen": job.reinit_unfrozen})
        l = job.constant_layers
        for n in range(1, 6):
            copied = l is not None and (n <= l or not reinit)
            assert _layer_equal(fresh, source, n) == copied, (job.row, n)
        assert fresh.layer6.out_features == 7  # the target task's fresh output layer
        # After a training epoch: layers 1..l exactly the source's (BatchNorm statistics included),
        # every other layer moved.
        trained = _run_job(job)
        for n in range(1, 6):
            assert _layer_equal(trained, source, n) == (l is not None and n <= l), (job.row, n)
        assert not _layer_equal(trained, fresh, 6)


def test_job_script_runs_a_planned_line_and_skips_it_when_done(tiny_sweep, recipe_dir):
    root, _, setup = tiny_sweep
    setup = plan.Setup(**{**setup.__dict__, "exp_root": str(recipe_dir / "exp")})
    jobs_file = recipe_dir / "jobs"
    plan.write_jobs(jobs_file, plan.select(plan.plan_direction("ser2asr", setup, []), "transfer"))
    cmd = ["local/transfer_train_job.sh", "--num-threads", "1", "--overrides", " ".join(TINY), str(jobs_file), "3"]
    first = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    exp_dir = recipe_dir / "exp/ser2asr/l3"
    assert "freeze_layers: 3" in (exp_dir / "config.yaml").read_text()
    assert "layers 1..3 frozen" in (exp_dir / "log/train.log").read_text()
    stamp = (exp_dir / "final.pt").stat().st_mtime_ns
    second = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert second.returncode == 0 and "final.pt is up to date" in second.stderr
    assert (exp_dir / "final.pt").stat().st_mtime_ns == stamp


def test_rows_l3_and_up_of_a_fold_and_seed_train_in_one_group():
    setup = plan.Setup(seeds=2, ser_source="s.pt")
    jobs = plan.select(plan.plan_direction("asr2ser", setup, ["fold1", "fold2"]), "transfer")
    groups = [[(jobs[n - 1].row, jobs[n - 1].fold, jobs[n - 1].seed) for n in g] for g in plan.trunk_groups(jobs)]
    assert groups[:4] == [[("l5", "fold1", 1), ("l4", "fold1", 1), ("l3", "fold1", 1), ("l2", "fold1", 1)],
                          [("l5", "fold2", 1), ("l4", "fold2", 1), ("l3", "fold2", 1), ("l2", "fold2", 1)],
                          [("l1", "fold1", 1)], [("l1", "fold2", 1)]]
    assert len(groups) == 2 * 6 and sorted(n for g in plan.trunk_groups(jobs) for n in g) == list(range(1, 25))
    # Baselines (no source) and l < 2 (nothing cached) run alone.
    baselines = plan.select(plan.plan_direction("ser2asr", setup, ["fold1"]), "baseline")
    assert plan.trunk_groups(baselines) == [[1], [2]]


def test_a_group_trains_each_row_as_it_trains_alone(tiny_sweep, tmp_path, caplog):
    """Rows l = 5, 4, 3, 2 in one process share the first row's frozen-layer outputs (layer 3's, and
    layer 2's for l = 2), and every weight comes out as in the row's own training."""
    caplog.set_level(logging.INFO)  # the rows' logs (EXP_DIR/log/train.log) say whether they shared
    root, _, setup = tiny_sweep
    more = TINY + ["training.max_epochs=2", "training.frames_per_epoch=300", "training.dev_frames=100"]
    trained = {}
    for how in ("alone", "group"):
        setup = plan.Setup(**{**setup.__dict__, "exp_root": str(tmp_path / how), "layers": "5,4,3,2"})
        jobs_file = tmp_path / f"jobs.{how}"
        plan.write_jobs(jobs_file, plan.select(plan.plan_direction("ser2asr", setup, []), "transfer"))
        assert plan.trunk_groups(plan.read_jobs(jobs_file)) == [[1, 2, 3, 4]]
        if how == "alone":
            finals = [train_group.train_lines(jobs_file, [n], REPO / "conf/convnet_asr.yaml", more)[0]
                      for n in (1, 2, 3, 4)]
        else:
            finals = train_group.train_lines(jobs_file, [1, 2, 3, 4], REPO / "conf/convnet_asr.yaml", more)
        trained[how] = [nnet_train.load_package(f)[0].state_dict() for f in finals]
        logs = [(Path(f).parent / "log/train.log").read_text() for f in finals]
        assert [("shared with an earlier training" in text) for text in logs] == [False] + [how == "group"] * 3
        assert ("layer 2's too" in logs[0]) == (how == "group")
    for alone, group in zip(trained["alone"], trained["group"]):
        assert alone.keys() == group.keys()
        assert all(torch.equal(alone[k], group[k]) for k in alone)


def test_seeds_plan_each_row_again_in_its_own_dir():
    setup = plan.Setup(seeds=2, layers="4", ser_source="s.pt")
    jobs = plan.plan_direction("asr2ser", setup, ["fold1", "fold2"])
    assert [(j.row, j.seed, j.exp_dir) for j in jobs if j.fold == "fold2"] == [
        ("baseline", 1, "exp/transfer/asr2ser/baseline/fold2"), ("l4", 1, "exp/transfer/asr2ser/l4/fold2"),
        ("baseline", 2, "exp/transfer/asr2ser/baseline.seed2/fold2"), ("l4", 2, "exp/transfer/asr2ser/l4.seed2/fold2")]
    assert {j.init_from for j in jobs if j.row == "l4"} == {"exp/transfer/ser2asr/baseline/final.pt"}
    # A baseline linked from another stage is the first seed: only the others are trained here.
    linked = plan.select(jobs, "baseline", linked_baseline=True)
    assert [(j.seed, j.fold) for j in linked] == [(2, "fold1"), (2, "fold2")]
    with pytest.raises(DataError, match="--seeds 0"):
        plan.plan_direction("ser2asr", plan.Setup(seeds=0, ser_source="s.pt"), [])


def test_job_script_trains_a_later_seed_with_the_next_training_seed(tiny_sweep, recipe_dir):
    root, _, setup = tiny_sweep
    setup = plan.Setup(**{**setup.__dict__, "exp_root": str(recipe_dir / "exp"), "seeds": 2, "layers": "3"})
    jobs_file = recipe_dir / "jobs.seeds"
    jobs = plan.select(plan.plan_direction("ser2asr", setup, []), "transfer")
    plan.write_jobs(jobs_file, jobs)
    assert [j.exp_dir for j in jobs] == [str(recipe_dir / "exp/ser2asr/l3"), str(recipe_dir / "exp/ser2asr/l3.seed2")]
    cmd = ["local/transfer_train_job.sh", "--num-threads", "1", "--overrides", " ".join(TINY), str(jobs_file), "2"]
    proc = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = nnet_train.load_config(REPO / "conf/convnet_asr.yaml")["training"]["seed"]
    assert f"seed: {base + 1}\n" in (recipe_dir / "exp/ser2asr/l3.seed2/config.yaml").read_text()
    assert "l3 seed 2" in proc.stdout


def test_a_subset_of_layers_and_folds():
    setup = plan.Setup(layers="0,3", folds="fold2")
    jobs = plan.plan_direction("asr2ser", setup, ["fold2"])
    assert [(j.row, j.fold) for j in jobs] == [("baseline", "fold2"), ("l3", "fold2"), ("l0", "fold2")]
    with pytest.raises(DataError, match="--layers"):
        plan.plan_direction("asr2ser", plan.Setup(layers="6"), FOLDS)
    with pytest.raises(DataError, match="fold1"):  # the default SER source fold is not planned
        plan.plan_direction("ser2asr", setup, ["fold2"])


def test_the_job_scripts_read_the_fields_in_the_plans_order():
    """local/transfer_job.sh names the fields of a jobs line; they must be plan.JOB_FIELDS, in order."""
    shell = re.search(r"JOB_FIELDS=\(([^)]*)\)", (REPO / "local/transfer_job.sh").read_text())
    assert shell and shell.group(1).split() == list(plan.JOB_FIELDS)
