"""The transfer sweeps (pyscripts/transfer/plan.py, local/transfer_job.sh): the planned jobs, the plan
file and the shell's questions to it, what each planned job does to the weights when the training stage
runs it, and the input normalisation of a row against its Baseline's."""
import logging
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyscripts.errors import DataError
from pyscripts.nnet import train as nnet_train
from pyscripts.nnet.data import norm_stats_from_cmvn
from pyscripts.transfer import plan, train_group

from conftest import transfer_setup

REPO = Path(__file__).resolve().parents[2]
FOLDS = [f"fold{k}" for k in range(1, 9)]
# A narrow ConvNet (the paper's layers, fewer channels) trained for one short epoch.
TINY = ["model.conv1_channels=4", "model.conv2_channels=8", "model.fc_dim=16", "training.max_epochs=1",
        "training.batch_size=32", "training.amp=fp32", "training.channels_last=false"]


def _write_folds_plan(folds_dir, folds=FOLDS):
    folds_dir.mkdir(parents=True, exist_ok=True)
    (folds_dir / "plan").write_text("".join(f"{f} test=S{k} valid=V1,V2 train=...\n" for k, f in enumerate(folds)))


def test_ser2asr_plans_baseline_and_l5_to_l0():
    jobs = plan.plan_direction("ser2asr", transfer_setup(), FOLDS)
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
    assert {j.cmvn_stats for j in jobs} == {"-"}  # no stats given: the training frames' own


def test_every_row_normalises_as_its_baseline():
    """SER -> ASR rows (Baseline included) with the ASR Baseline's CMVN stats, ASR -> SER rows with their
    fold's training frames' own statistics, as stage 11's SER Baseline."""
    setup = transfer_setup(asr_cmvn_stats="data/timit/train/cmvn_global.stats", layers="3,0")
    assert {j.cmvn_stats for j in plan.plan_direction("ser2asr", setup, FOLDS)} == {
        "data/timit/train/cmvn_global.stats"}
    assert {j.cmvn_stats for j in plan.plan_direction("asr2ser", setup, FOLDS)} == {"-"}


def test_asr2ser_plans_seven_rows_over_eight_folds():
    jobs = plan.plan_direction("asr2ser", transfer_setup(), FOLDS)
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
    setup = transfer_setup(reinit_unfrozen=True, exp_root="exp/transfer_reinit", asr_source="asr.pt",
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
        plan.plan_direction("ser2asr", transfer_setup(ser_source_fold="fold9"), FOLDS)


def _plan_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pyscripts.transfer.plan", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)


def test_plan_file_round_trip_and_command_line(tmp_path):
    folds_dir = tmp_path / "folds"
    _write_folds_plan(folds_dir)
    out = tmp_path / "exp" / "asr2ser" / "plan"
    # The data and targets dirs are given (local/run_transfer.sh passes its own, local/layout.sh's by default).
    layout = ["--asr-train-data", "data/timit/train", "--asr-dev-data", "data/timit/dev", "--asr-train-targets",
              "exp/mono_ali/targets", "--asr-dev-targets", "exp/mono_ali_dev/targets", "--ser-targets-dir",
              "exp/ser/targets"]
    proc = _plan_cli("write", "--direction", "asr2ser", "--ser-folds-dir", folds_dir, "--reinit-unfrozen", out)
    assert proc.returncode == 2 and "required: --asr-train-data" in proc.stderr
    proc = _plan_cli("write", "--direction", "asr2ser", *layout, "--ser-folds-dir", folds_dir, "--reinit-unfrozen", out)
    assert proc.returncode == 0, proc.stderr
    jobs = plan.read_jobs(out)
    assert len(jobs) == 7 * 8 and len(out.read_text().splitlines()) == 56
    assert jobs == plan.plan_direction("asr2ser", transfer_setup(ser_folds_dir=str(folds_dir), reinit_unfrozen=True),
                                       FOLDS)
    # The job array of the transfer rows: groups of plan lines, the rows l >= 2 of a fold together.
    proc = _plan_cli("groups", "--which", "transfer", out, tmp_path / "groups")
    assert proc.returncode == 0, proc.stderr
    groups = [[int(n) for n in line.split()] for line in (tmp_path / "groups").read_text().splitlines()]
    assert sorted(n for g in groups for n in g) == [n for n, j in enumerate(jobs, 1) if j.row != "baseline"]
    assert [jobs[n - 1].row for n in groups[0]] == ["l5", "l4", "l3", "l2"]
    assert {jobs[n - 1].fold for n in groups[0]} == {"fold1"}
    missing = _plan_cli("write", "--direction", "asr2ser", *layout, "--ser-folds-dir", tmp_path / "none", out)
    assert missing.returncode == 1 and "ser_make_folds.sh" in missing.stderr


def test_a_plan_line_holds_l_once(tmp_path):
    """The row names l (`l3`); the frozen layers are the row's, not a second column."""
    jobs = plan.plan_direction("ser2asr", transfer_setup(layers="3", ser_source="s.pt"), [])
    plan.write_jobs(tmp_path / "plan", jobs)
    line = (tmp_path / "plan").read_text().splitlines()[1].split("\t")
    assert len(line) == len(plan.JOB_FIELDS) and "freeze_layers" not in plan.JOB_FIELDS
    assert line[plan.JOB_FIELDS.index("row")] == "l3" and "3" not in line
    assert plan.read_jobs(tmp_path / "plan")[1].freeze_layers == 3 and jobs[0].freeze_layers == 0


def test_the_shell_asks_the_plan_for_fields(tmp_path):
    setup = transfer_setup(exp_root="exp", seeds=2, layers="3", ser_source="s.pt")
    path = tmp_path / "plan"
    plan.write_jobs(path, plan.plan_direction("asr2ser", setup, ["fold1", "fold2"]))
    proc = _plan_cli("fields", "--lines", "3\n4 7", path, "label", "freeze_layers", "exp_dir")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("l3 fold1\t3\texp/asr2ser/l3/fold1\nl3 fold2\t3\texp/asr2ser/l3/fold2\n"
                           "l3 fold1 seed 2\t3\texp/asr2ser/l3.seed2/fold1\n")
    assert _plan_cli("fields", "--unique", path, "fold").stdout == "fold1\nfold2\n"
    assert _plan_cli("fields", "--nth-fold", "2", path, "row", "seed").stdout == (
        "baseline\t1\nl3\t1\nbaseline\t2\nl3\t2\n")
    for args, error in ((("--nth-fold", "3", path, "row"), "has 2 folds, not a fold 3"),
                        (("--lines", "9", path, "row"), "has 8 lines, not a line 9"),
                        ((path, "l"), "no field l in a plan line")):
        proc = _plan_cli("fields", *args)
        assert proc.returncode == 1 and error in proc.stderr, proc.stderr


def test_a_damaged_plan_line_is_named(tmp_path):
    path = tmp_path / "plan"
    plan.write_jobs(path, plan.plan_direction("ser2asr", transfer_setup(ser_source="s.pt"), []))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [lines[2].replace("\tl4\t", "\tl7\t")]) + "\n")
    with pytest.raises(DataError, match="plan:3: direction 'ser2asr' and row 'l7'"):
        plan.read_jobs(path)
    path.write_text(lines[0] + "\t3\n")  # an old plan with l twice
    with pytest.raises(DataError, match="plan:1: 13 fields, expected 12"):
        plan.read_jobs(path)
    with pytest.raises(DataError, match="not found: write the sweep's plans first"):
        plan.read_plans(tmp_path / "nowhere")


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
    setup = transfer_setup(exp_root=str(root / "exp"), ser_source=str(source),
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
    plan_file = recipe_dir / "plan"
    plan.write_jobs(plan_file, plan.plan_direction("ser2asr", setup, []))
    (recipe_dir / "groups").write_text("1\n4\n")  # line 4: l3
    cmd = ["local/transfer_job.sh", "--num-threads", "1", "--overrides", " ".join(TINY), "train", str(plan_file),
           str(recipe_dir / "groups"), "2"]
    first = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    exp_dir = recipe_dir / "exp/ser2asr/l3"
    assert "freeze_layers: 3" in (exp_dir / "config.yaml").read_text()
    assert "layers 1..3 frozen" in (exp_dir / "log/train.log").read_text()
    stamp = (exp_dir / "final.pt").stat().st_mtime_ns
    second = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert second.returncode == 0 and "final.pt is up to date" in second.stderr
    assert (exp_dir / "final.pt").stat().st_mtime_ns == stamp


def test_rows_l2_and_up_of_a_fold_and_seed_train_in_one_group():
    setup = transfer_setup(seeds=2, ser_source="s.pt")
    jobs = plan.select(plan.plan_direction("asr2ser", setup, ["fold1", "fold2"]), "transfer")
    groups = [[(jobs[n - 1].row, jobs[n - 1].fold, jobs[n - 1].seed) for n in g] for g in plan.trunk_groups(jobs)]
    assert groups[:4] == [[("l5", "fold1", 1), ("l4", "fold1", 1), ("l3", "fold1", 1), ("l2", "fold1", 1)],
                          [("l5", "fold2", 1), ("l4", "fold2", 1), ("l3", "fold2", 1), ("l2", "fold2", 1)],
                          [("l1", "fold1", 1)], [("l1", "fold2", 1)]]
    assert len(groups) == 2 * 6 and sorted(n for g in plan.trunk_groups(jobs) for n in g) == list(range(1, 25))
    # Baselines (no source) and l < 2 (nothing cached) run alone.
    baselines = plan.select(plan.plan_direction("ser2asr", setup, ["fold1"]), "baseline")
    assert plan.trunk_groups(baselines) == [[1], [2]]
    # Numbered as the lines of the whole plan.
    assert plan.trunk_groups(baselines, [1, 8]) == [[1], [8]]


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
    setup = transfer_setup(seeds=2, layers="4", ser_source="s.pt")
    jobs = plan.plan_direction("asr2ser", setup, ["fold1", "fold2"])
    assert [(j.row, j.seed, j.exp_dir) for j in jobs if j.fold == "fold2"] == [
        ("baseline", 1, "exp/transfer/asr2ser/baseline/fold2"), ("l4", 1, "exp/transfer/asr2ser/l4/fold2"),
        ("baseline", 2, "exp/transfer/asr2ser/baseline.seed2/fold2"), ("l4", 2, "exp/transfer/asr2ser/l4.seed2/fold2")]
    assert {j.init_from for j in jobs if j.row == "l4"} == {"exp/transfer/ser2asr/baseline/final.pt"}
    # A baseline linked from another stage is the first seed: only the others are trained here.
    linked = plan.select(jobs, "baseline", linked_baseline=True)
    assert [(j.seed, j.fold) for j in linked] == [(2, "fold1"), (2, "fold2")]
    with pytest.raises(DataError, match="--seeds 0"):
        plan.plan_direction("ser2asr", transfer_setup(seeds=0, ser_source="s.pt"), [])


def test_job_script_trains_a_later_seed_with_the_next_training_seed(tiny_sweep, recipe_dir):
    root, _, setup = tiny_sweep
    setup = plan.Setup(**{**setup.__dict__, "exp_root": str(recipe_dir / "exp"), "seeds": 2, "layers": "3"})
    plan_file = recipe_dir / "plan.seeds"
    jobs = plan.plan_direction("ser2asr", setup, [])
    plan.write_jobs(plan_file, jobs)
    assert [j.exp_dir for j in jobs[2:]] == [str(recipe_dir / "exp/ser2asr/baseline.seed2"),
                                            str(recipe_dir / "exp/ser2asr/l3.seed2")]
    (recipe_dir / "groups.seeds").write_text("4\n")
    cmd = ["local/transfer_job.sh", "--num-threads", "1", "--overrides", " ".join(TINY), "train", str(plan_file),
           str(recipe_dir / "groups.seeds"), "1"]
    proc = subprocess.run(cmd, cwd=recipe_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = nnet_train.load_config(REPO / "conf/convnet_asr.yaml")["training"]["seed"]
    assert f"seed: {base + 1}\n" in (recipe_dir / "exp/ser2asr/l3.seed2/config.yaml").read_text()
    assert "l3 seed 2" in proc.stdout


def test_a_subset_of_layers_and_folds():
    setup = transfer_setup(layers="0,3", folds="fold2")
    jobs = plan.plan_direction("asr2ser", setup, ["fold2"])
    assert [(j.row, j.fold) for j in jobs] == [("baseline", "fold2"), ("l3", "fold2"), ("l0", "fold2")]
    with pytest.raises(DataError, match="--layers"):
        plan.plan_direction("asr2ser", transfer_setup(layers="6"), FOLDS)
    with pytest.raises(DataError, match="fold1"):  # the default SER source fold is not planned
        plan.plan_direction("ser2asr", setup, ["fold2"])


def _write_global_cmvn(data_dir, path):
    """Kaldi global CMVN stats (compute-cmvn-stats' 2 x (dim+1) matrix) of a data dir's frames."""
    feats = np.concatenate([m for _, m in kaldiio.load_scp_sequential(str(data_dir / "feats.scp"))])
    stats = np.zeros((2, feats.shape[1] + 1))
    stats[0, :-1], stats[0, -1], stats[1, :-1] = feats.sum(0), len(feats), (feats.astype(np.float64) ** 2).sum(0)
    kaldiio.save_mat(str(path), stats)


def test_a_transfer_row_normalises_as_the_asr_baseline(tiny_sweep, recipe_dir):
    """The SER -> ASR row's packaged normalisation is the Baseline's: the global CMVN stats file the
    Baseline (stage 9, steps/train_convnet.sh --cmvn-stats) was trained with, not its own frames'."""
    root, _, setup = tiny_sweep
    stats = recipe_dir / "cmvn_global.stats"
    _write_global_cmvn(root / "asr/dev", stats)  # other frames than the training set's: a visible difference
    baseline_cfg = nnet_train.configure(REPO / "conf/convnet_asr.yaml", TINY, cmvn_stats=str(stats))
    baseline = nnet_train.load_package(nnet_train.train(baseline_cfg, *(root / f"asr/{x}" for x in (
        "train", "dev", "train_tg", "dev_tg")), recipe_dir / "convnet_asr"))[0]
    setup = plan.Setup(**{**setup.__dict__, "exp_root": str(recipe_dir / "exp"), "layers": "3",
                          "asr_cmvn_stats": str(stats)})
    plan_file = recipe_dir / "exp/ser2asr/plan"
    plan.write_jobs(plan_file, plan.plan_direction("ser2asr", setup, []))
    (recipe_dir / "groups").write_text("2\n")
    proc = subprocess.run(["local/transfer_job.sh", "--num-threads", "1", "--overrides", " ".join(TINY), "train",
                           str(plan_file), str(recipe_dir / "groups"), "1"], cwd=recipe_dir, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = nnet_train.load_package(recipe_dir / "exp/ser2asr/l3/final.pt")[0]
    mean, std = norm_stats_from_cmvn(stats)
    assert torch.equal(row.feat_mean, baseline.feat_mean) and torch.equal(row.feat_std, baseline.feat_std)
    assert torch.equal(row.feat_mean, mean) and torch.equal(row.feat_std, std)
    # ... and not the training frames' own mean, which the row would have without the stats.
    own = np.concatenate([m for _, m in kaldiio.load_scp_sequential(str(root / "asr/train/feats.scp"))]).mean(0)
    assert not np.allclose(row.feat_mean.numpy(), own, atol=1e-3)
