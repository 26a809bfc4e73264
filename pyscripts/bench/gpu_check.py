"""The computing half of local/gpu_bundle.sh and local/gpu_check.sh (the shell scripts run the steps):
the torch build, the results of a tiny run, their comparison with the CPU reference, one training with
its peak memory, the wheels' dependencies, and the report that gathers it all.

  python3 -m pyscripts.bench.gpu_check build --device cpu|cuda [--json FILE]
      the torch build, the device, its bf16 support and autocast dtype, and the Kaldi modules (imported)
  python3 -m pyscripts.bench.gpu_check results MODEL_DIR [--expect-device cpu|cuda] [--json FILE]
      FER/PER dev/test of a stage-9/10 model dir, the device and arithmetic it trained with
  python3 -m pyscripts.bench.gpu_check reference --json FILE RESULTS [SEED_RESULTS ...]
      the CPU reference: the run of the recipe's seed, and the runs of other seeds that measure the spread
  python3 -m pyscripts.bench.gpu_check compare [--margin POINTS] REFERENCE RESULTS [--json FILE]
      exit 1 when a FER/PER lies further from the reference than the tolerance (see TOLERANCE)
  python3 -m pyscripts.bench.gpu_check train --json FILE -- TRAIN_ARGS...
      one pyscripts.nnet.train run: dev FER, seconds, peak GPU memory and RSS, whether the trunk was cached
  python3 -m pyscripts.bench.gpu_check trunk [--margin POINTS] REFERENCE CACHED UNCACHED [--json FILE]
      the frozen-trunk cache: used only where asked, and the same dev FER within the tolerance
  python3 -m pyscripts.bench.gpu_check wheels WHEEL...
      exit 1 when a wheel needs a package that is neither bundled nor in the GPU image
  python3 -m pyscripts.bench.gpu_check report --steps TSV --json-dir DIR --out FILE [--set KEY=VALUE ...]
  python3 -m pyscripts.bench.gpu_check summary GPU_CHECK_JSON
      the report's main figures, a few lines
"""
import argparse
import importlib
import importlib.metadata
import json
import platform
import re
import resource
import sys
import time
import zipfile
from pathlib import Path

import torch

from pyscripts.asr.scoring import model_results
from pyscripts.errors import DataError, cli_main

# What the recipe imports from the bundled wheels (module: distribution), and from the GPU image.
KALDI_MODULES = {"kaldiio": "kaldiio", "kaldi_io": "kaldi-io", "kaldi_native_fbank": "kaldi-native-fbank",
                 "kaldi_hmm_gmm": "kaldi-hmm-gmm", "kaldifst": "kaldifst", "kaldi_decoder": "kaldi-decoder",
                 "kaldilm": "kaldilm", "kaldialign": "kaldialign", "kaldingram": "kaldingram"}
IMAGE_MODULES = {"numpy": "numpy", "yaml": "pyyaml", "scipy": "scipy", "sklearn": "scikit-learn",
                 "matplotlib": "matplotlib"}
# The wheels' Requires-Dist that need no wheel: in the GPU image (device README, KINDS.md), or never
# imported by what the recipe calls.
IMAGE_HAS = {"numpy", "tqdm", "pyyaml", "scipy"}
NOT_IMPORTED = {"graphviz": "kaldi_hmm_gmm imports it only to draw HMM topologies (hmm_topo_utils)"}
METRICS = ("fer_dev", "fer_test", "per_dev", "per_test")
TOLERANCE = ("a GPU value passes when it lies no further from the CPU reference than the furthest CPU run "
             "with another seed does, plus the margin (points absolute); the GPU run differs from the CPU run "
             "in its arithmetic (bf16 vs the CPU's dtype, other kernels, nondeterministic sums) and its dropout "
             "masks (CUDA's generator), so it is one more draw of the seeds' spread")


def _write(result, path):
    text = json.dumps(result, indent=1)
    if path:
        Path(path).write_text(text + "\n")
    print(text)


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read it as JSON ({err}); run the step that writes it first") from None


# ---------------------------------------------------------------- the torch build
def _module_versions(modules):
    found, errors = {}, []
    for module, dist in modules.items():
        try:
            imported = importlib.import_module(module)
            found[module] = {"version": importlib.metadata.version(dist), "file": getattr(imported, "__file__", None)}
        except Exception as err:  # noqa: BLE001  any import failure is a finding to report
            found[module] = {"error": f"{type(err).__name__}: {err}"}
            errors.append(f"import {module} ({dist}): {err}")
    return found, errors


def build_info(device_name):
    """The torch build and what the recipe will do on `device_name`; 'errors' lists what would fail."""
    from pyscripts.nnet.train import mixed_precision, resolve_device
    info = {"python": platform.python_version(), "torch": torch.__version__, "torch_file": torch.__file__,
            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "errors": []}
    try:
        device = resolve_device(device_name)
    except DataError as err:
        info["errors"].append(str(err))
        device = None
    if device is not None and device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device=props.name, capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported())
    elif device is not None:
        info.update(device="cpu", capability=None, gpu_memory_gib=None, cudnn=None, bf16_supported=None)
    if device is not None:
        dtype = mixed_precision(device, "auto")
        info["amp_dtype"] = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    info["modules"], errors = _module_versions({**KALDI_MODULES, **IMAGE_MODULES})
    info["errors"] += errors
    info["ok"] = not info["errors"]
    return info


# ---------------------------------------------------------------- a tiny run's results
def _train_log_facts(model_dir):
    """The device and arithmetic the training logged (log/train.log), None where it did not say."""
    path = Path(model_dir) / "log/train.log"
    text = path.read_text() if path.is_file() else ""
    device = re.findall(r"targets, device ((?:cuda|cpu)\S*)", text)
    arithmetic = re.findall(r"arithmetic: (.+?) on (?:cuda|cpu)", text)
    return {"train_device": device[-1].rstrip(",") if device else None,
            "arithmetic": arithmetic[-1] if arithmetic else None}


def run_results(model_dir, expect_device=None):
    """FER/PER (%) of MODEL_DIR's decode_dev/decode_test, its training's time and device."""
    model_dir = Path(model_dir)
    row = model_results(model_dir)
    metrics = {"fer_dev": row["FER dev"], "fer_test": row["FER test"], "per_dev": row["PER dev"],
               "per_test": row["PER test"]}
    missing = [k for k, v in metrics.items() if v is None]
    if missing:
        raise DataError(f"{model_dir}: no {', '.join(missing)} in decode_{{dev,test}}/scoring; did stage 10 run?")
    result = {"model_dir": str(model_dir), **metrics, "lm_setting": row["setting"], **_train_log_facts(model_dir)}
    summary_path = model_dir / "train_summary"
    if summary_path.is_file():
        summary = dict(line.split("=", 1) for line in summary_path.read_text().splitlines() if "=" in line)
        result.update(train_seconds=float(summary.get("seconds", "nan")), epochs=int(summary.get("epochs", 0)))
    if expect_device and not (result["train_device"] or "").startswith(expect_device):
        raise DataError(f"{model_dir}/log/train.log: trained on {result['train_device']}, not {expect_device}; "
                        "the job was not given the device (cmd.sh's cuda_cmd, --device)")
    return result


def reference(runs):
    """The CPU reference: the first run (the recipe's seed), the others (other seeds) and how far each
    metric of those lies from the reference at most (`spread`)."""
    ref, seeds = runs[0], runs[1:]
    spread = {m: round(max((abs(s[m] - ref[m]) for s in seeds), default=0.0), 2) for m in METRICS}
    return {"reference": {m: ref[m] for m in METRICS}, "seeds": [{m: s[m] for m in METRICS} for s in seeds],
            "spread": spread, "train_device": ref.get("train_device"), "arithmetic": ref.get("arithmetic"),
            "torch": torch.__version__, "python": platform.python_version()}


def tolerances(ref, margin):
    return {m: round(ref["spread"][m] + margin, 2) for m in METRICS}


def compare(ref, run, margin):
    """Each metric of `run` against the reference, within tolerances(ref, margin)."""
    tol = tolerances(ref, margin)
    diff = {m: round(run[m] - ref["reference"][m], 2) for m in METRICS}
    within = {m: abs(diff[m]) <= tol[m] for m in METRICS}
    return {"run": {m: run[m] for m in METRICS}, "reference": ref["reference"], "difference": diff,
            "tolerance": tol, "within": within, "ok": all(within.values()), "margin": margin,
            "seeds_measured": len(ref["seeds"]), "rule": TOLERANCE}


# ---------------------------------------------------------------- one training, with its peak memory
def train_with_peak(train_args):
    """Runs pyscripts.nnet.train's command line in this process; returns its dev FER, time, peak memory
    and whether the frozen trunk was cached (train.cache_trunk returned cached outputs)."""
    from pyscripts.nnet import train as train_module
    from pyscripts.nnet.train import read_summary
    calls, original = [], train_module.cache_trunk

    def watched(*args, **kwargs):
        cached = original(*args, **kwargs)
        calls.append(cached is not None)
        return cached

    train_module.cache_trunk = watched
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        train_module.main(train_args)
    finally:
        train_module.cache_trunk = original
    seconds = time.perf_counter() - start
    exp_dir = Path(train_args[-1])
    summary = read_summary(exp_dir)
    if summary is None:
        raise DataError(f"{exp_dir}: no train_summary after the training; see its log above")
    on_gpu = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {"exp_dir": str(exp_dir), "seconds": round(seconds, 2), "epochs": int(summary["epochs"]),
            "dev_fer": round(100 * float(summary["dev_fer"]), 2), "dev_loss": float(summary["dev_loss"]),
            "trunk_cached": any(calls),
            "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20) if on_gpu else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def trunk_check(ref, cached, uncached, margin):
    """The cache is used where asked and not otherwise, and both trainings reach the same dev FER within
    the dev FER tolerance."""
    tol = tolerances(ref, margin)["fer_dev"]
    diff = round(cached["dev_fer"] - uncached["dev_fer"], 2)
    problems = []
    if not cached["trunk_cached"]:
        problems.append(f"{cached['exp_dir']}: the frozen trunk was not cached (see its log)")
    if uncached["trunk_cached"]:
        problems.append(f"{uncached['exp_dir']}: cached although training.trunk_cache_mb=0")
    if abs(diff) > tol:
        problems.append(f"dev FER cached {cached['dev_fer']} vs uncached {uncached['dev_fer']}: differ by more "
                        f"than {tol} points")
    return {"cached": cached, "uncached": uncached, "dev_fer_difference": diff, "tolerance": tol,
            "problems": problems, "ok": not problems}


# ---------------------------------------------------------------- the wheels' dependencies
def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_requirements(wheels):
    """{wheel distribution: [required distributions]} from each wheel's METADATA (extras left out)."""
    needs = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(meta).decode().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Name:"))
        needs[_normalise(name)] = sorted({_normalise(re.split(r"[ ;<>=!~(\[]", line.split(":", 1)[1].strip())[0])
                                          for line in lines if line.startswith("Requires-Dist:")
                                          and "extra ==" not in line})
    return needs


def unmet_requirements(needs):
    """[(wheel, requirement)] that neither a bundled wheel, the GPU image nor NOT_IMPORTED covers."""
    return [(wheel, req) for wheel, reqs in needs.items() for req in reqs
            if req not in needs and req not in IMAGE_HAS and req not in NOT_IMPORTED]


# ---------------------------------------------------------------- the report
def report(steps_tsv, json_dir, extra):
    """One JSON: the steps (name, ok, exit code, seconds) and every step's JSON under its file's name."""
    steps = []
    if Path(steps_tsv).is_file():
        for line in Path(steps_tsv).read_text().splitlines():
            name, rc, seconds = line.split("\t")
            steps.append({"name": name, "ok": rc == "0", "rc": int(rc), "seconds": int(seconds)})
    result = {**extra, "steps": steps, "failed": [s["name"] for s in steps if not s["ok"]]}
    result["ok"] = bool(steps) and not result["failed"]
    for path in sorted(Path(json_dir).glob("*.json")):
        try:
            result[path.stem] = json.loads(path.read_text())
        except ValueError as err:  # a step killed while writing: say so, keep the rest
            result[path.stem] = {"error": f"{path}: {err}"}
    return result


def summary_lines(result):
    """The main figures of a report (gpu_check.json), for the end of the check's output."""
    lines = ["steps: " + ", ".join(f"{s['name']} {'ok' if s['ok'] else 'FAILED'} ({s['seconds']} s)"
                                   for s in result.get("steps", []))]
    build = result.get("build", {})
    if build:
        lines.append(f"torch {build.get('torch')} (cuda {build.get('cuda')}, cudnn {build.get('cudnn')}) on "
                     f"{build.get('device')} (capability {build.get('capability')}, bf16 "
                     f"{build.get('bf16_supported')}); autocast {build.get('amp_dtype')}")
    for run in result.get("bench", {}).get("runs", []):
        lines.append(f"bench batch {run['batch_size']}: train {run['train_frames_per_s']} fr/s, infer "
                     f"{run['infer_frames_per_s']} fr/s, bf16 peak {run['bf16_peak_fraction']}, gather "
                     f"{run['gather_share_of_step']} of a step, peak MiB {run['peak_gpu_memory_mib']}")
    for epoch in result.get("bench", {}).get("epochs", []):
        lines.append(f"bench epoch at batch {epoch['batch_size']}: {epoch['seconds']} s "
                     f"({epoch['frames_per_s']} fr/s, peak {epoch['peak_gpu_memory_mib']} MiB)")
    comp = result.get("compare", {})
    if comp:
        lines.append("tiny run vs CPU reference: " + ", ".join(
            f"{m} {comp['run'][m]} vs {comp['reference'][m]} (tol {comp['tolerance'][m]})" for m in METRICS)
            + (" ok" if comp["ok"] else " OUT OF TOLERANCE"))
    trunk = result.get("trunk", {})
    if trunk:
        lines.append(f"trunk cache: dev FER cached {trunk['cached']['dev_fer']} vs uncached "
                     f"{trunk['uncached']['dev_fer']}; peak GPU MiB {trunk['cached']['peak_gpu_memory_mib']} vs "
                     f"{trunk['uncached']['peak_gpu_memory_mib']}; seconds {trunk['cached']['seconds']} vs "
                     f"{trunk['uncached']['seconds']}" + ("" if trunk["ok"] else "; " + "; ".join(trunk["problems"])))
    return lines


def _parse_set(items):
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--set {item}: expected KEY=VALUE")
        extra[key] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
    return extra


def _parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build")
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--json")
    p = sub.add_parser("results")
    p.add_argument("model_dir")
    p.add_argument("--expect-device", choices=["cpu", "cuda"])
    p.add_argument("--json")
    p = sub.add_parser("reference")
    p.add_argument("--json", required=True)
    p.add_argument("runs", nargs="+")
    for name in ("compare", "trunk"):
        p = sub.add_parser(name)
        p.add_argument("--margin", type=float, default=2.0, help="points added to the seeds' spread")
        p.add_argument("reference")
        p.add_argument("runs", nargs=1 if name == "compare" else 2)
        p.add_argument("--json")
    p = sub.add_parser("train")
    p.add_argument("--json", required=True)
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("wheels")
    p.add_argument("wheels", nargs="+")
    p = sub.add_parser("report")
    p.add_argument("--steps", required=True)
    p.add_argument("--json-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[])
    p = sub.add_parser("summary")
    p.add_argument("report")
    return parser


@cli_main
def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "build":
        info = build_info(args.device)
        _write(info, args.json)
        return 0 if info["ok"] else 1
    if args.command == "results":
        _write(run_results(args.model_dir, args.expect_device), args.json)
    elif args.command == "reference":
        _write(reference([_read_json(p) for p in args.runs]), args.json)
    elif args.command == "compare":
        result = compare(_read_json(args.reference), _read_json(args.runs[0]), args.margin)
        _write(result, args.json)
        return 0 if result["ok"] else 1
    elif args.command == "trunk":
        result = trunk_check(_read_json(args.reference), *(_read_json(p) for p in args.runs), args.margin)
        _write(result, args.json)
        return 0 if result["ok"] else 1
    elif args.command == "train":
        train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
        _write(train_with_peak(train_args), args.json)
    elif args.command == "wheels":
        needs = wheel_requirements(args.wheels)
        unmet = unmet_requirements(needs)
        _write({"requires": needs, "not_imported": {k: v for k, v in NOT_IMPORTED.items()
                                                    if any(k in r for r in needs.values())},
                "unmet": [f"{w} needs {r}" for w, r in unmet]}, None)
        return 1 if unmet else 0
    elif args.command == "report":
        result = report(args.steps, args.json_dir, _parse_set(args.set))
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    elif args.command == "summary":
        print("\n".join(summary_lines(_read_json(args.report))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
