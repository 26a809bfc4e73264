"""The GPU epoch benchmark (pyscripts/bench/gpu_epoch.py), checked on the CPU: it measures what stage 9
runs (the config's batch size, its autocast dtype), warms up until steps are steady, and gathers one
batch at a time."""
import json
import weakref

import torch

from conftest import RECIPE
from pyscripts.bench import gpu_epoch
from pyscripts.bench.train_throughput import synthetic_frames
from pyscripts.nnet.train import load_config, mixed_precision


def test_the_sweep_holds_the_recipes_batch_size():
    recipe = load_config(RECIPE / "conf/convnet_asr.yaml")["training"]["batch_size"]
    assert recipe == 256
    assert gpu_epoch.sweep_batch_sizes(recipe) == [256, 1024, 4096]
    assert gpu_epoch.sweep_batch_sizes(1024) == [1024, 4096]


def test_warm_up_lasts_until_the_step_time_is_steady():
    # First steps slow (autotuning, lazy initialisation), then settling: no fixed count of steps.
    per_step = iter([2.0, 0.5, 0.3, 0.2, 0.19, 0.19, 0.19])
    chunks = []

    def run(steps):
        chunks.append(steps)
        return next(per_step) * steps

    seconds, steady, _ = gpu_epoch.warm_up(run, budget=1000)
    assert steady and seconds == 0.19 and len(chunks) == 5 and chunks[0] == 1


def test_warm_up_stops_at_its_budget():
    seconds, steady, spent = gpu_epoch.warm_up(lambda steps: 3.0 * steps, budget=2)
    assert not steady and seconds == 3.0 and spent == 3.0


def test_the_window_gather_keeps_one_batch_alive(monkeypatch):
    frames = synthetic_frames(3000, 144, torch.device("cpu"))
    alive, most, gather = [], [0], gpu_epoch.gather_windows

    def tracked(*args):
        x = gather(*args)
        alive.append(weakref.ref(x))
        most[0] = max(most[0], sum(ref() is not None for ref in alive))
        return x

    monkeypatch.setattr(gpu_epoch, "gather_windows", tracked)
    gpu_epoch.gather_batches(frames, torch.arange(2048), 128, 15, channels_last=True)
    assert len(alive) == 16 and most[0] <= 2  # the new batch and the one it replaces


def test_cpu_run_measures_stage_9s_batch_size_and_arithmetic(tmp_path, monkeypatch, one_torch_thread):
    config = tmp_path / "asr.yaml"
    config.write_text(f"base: {RECIPE / 'conf/convnet_asr.yaml'}\ntraining:\n  batch_size: 24\n")
    monkeypatch.setattr(gpu_epoch, "EXTRA_BATCH_SIZES", (16,))
    out = tmp_path / "bench.json"
    gpu_epoch.main(["--device", "cpu", "--config", str(config), "--frames", "600", "--seconds", "0.2",
                    "--warmup-seconds", "0.3", "--json", str(out)])
    result = json.loads(out.read_text())
    assert [r["batch_size"] for r in result["runs"]] == [16, 24]   # the config's 24 by default
    assert result["recipe_batch_size"] == 24 and 24 in [e["batch_size"] for e in result["epochs"]]
    assert result["device"] == "cpu" and result["torch"] == torch.__version__ and "cuda" in result
    dtype = mixed_precision(torch.device("cpu"), "auto")
    assert result["amp_dtype"] == ("float32" if dtype is None else str(dtype).removeprefix("torch."))
    for run in result["runs"]:
        assert run["train_frames_per_s"] > 0 and run["infer_frames_per_s"] > 0
        assert run["train_steps"] >= gpu_epoch.MIN_STEPS
        assert run["peak_gpu_memory_mib"] == {"train": None, "gather": None, "infer": None}
    assert all(e["seconds"] > 0 for e in result["epochs"])
