"""A trained ConvNet as files others can load: TorchScript, ONNX and a model card, and inference that
reads nothing but those files.

  python3 -m pyscripts.nnet.export export [--task asr|ser] [--ali-dir D] [--phone-map M]
      [--vad-config conf/vad.conf] [--no-onnx] MODEL OUT_DIR
          MODEL: a final.pt (ConvNet or joint ASR-SER model) or the dir holding it. Writes OUT_DIR/model.ts,
          OUT_DIR/model.onnx, OUT_DIR/model_card.json, OUT_DIR/fbank.conf (and vad.conf for SER).
  python3 -m pyscripts.nnet.export infer [--backend onnx|torchscript] [--ark OUT.ark] OUT_DIR WAV...
          per wav, from OUT_DIR alone: the emotion with its posteriors (SER), or the best pdf (or phone,
          when the card maps pdfs to phones) per frame as runs `NAME:FRAMES` (ASR); --ark also writes
          every head's log-posteriors as Kaldi matrices.

The exported graph takes what a user has, (T, n_mels) raw fbank frames computed as the card's features
say, and gives (T, targets) log-posteriors per frame: the input normalisation (the global CMVN of the
training data, card "cmvn") and the splicing of 2*context+1 frames around each frame (edge frames
repeated, as in training) happen inside it. A joint model gives one output per head. The network is in
eval mode (BatchNorm running statistics, no dropout), so a frame's posteriors do not depend on the
others in the call: long files go through in chunks with `context` frames of overlap, giving the same
numbers as one call.

Hybrid ASR: pseudo log-likelihoods are log-posteriors minus the card's log_priors (the rule of
pyscripts/asr/hybrid.py), scaled by the acoustic scale chosen on dev (card "acwt", when the model's
decode_dev was scored). onnx and onnxruntime are imported only here: the recipe does not need them.
"""
import argparse
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pyscripts.errors import DataError, check_finite, cli_main
from pyscripts.fingerprint import read_stamp
from pyscripts.nnet.checkpoints import read_summary
from pyscripts.nnet.model import JOINT_PACKAGE_FORMAT, PACKAGE_FORMAT, load_package

log = logging.getLogger("export")

CARD_FORMAT = "pyscripts.nnet.export/1"
CARD, TORCHSCRIPT, ONNX, FBANK_CONF, VAD_CONF = "model_card.json", "model.ts", "model.onnx", "fbank.conf", "vad.conf"
ONNX_OPSET = 17
CHUNK_FRAMES = 256   # frames per call at inference: bounds the activations' memory on long files
INPUT_NAME = "fbank"


# ---------------------------------------------------------------- the exported network
class _FrameNet(nn.Module):
    """Raw fbank frames -> the trunk's output per frame: CMVN, splicing, layers 1..5 of the ConvNet."""
    offsets: torch.Tensor    # buffers: offsets here, the input normalisation in the subclasses
    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.layer1, self.layer2, self.layer3 = model.layer1, model.layer2, model.layer3
        self.layer4, self.layer5 = model.layer4, model.layer5
        self.register_buffer("offsets", torch.arange(-model.context, model.context + 1))

    def windows(self, feats: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """(T, dim) -> (T, 1, 2*context+1, dim) normalised windows, edges clamped (data.gather_windows)."""
        x = (feats - mean) / std
        frames = torch.arange(x.shape[0], device=x.device)
        index = (frames.unsqueeze(1) + self.offsets).clamp(min=0)
        index = torch.minimum(index, frames[-1:])  # a tensor, not an int: the frame count stays dynamic
        return x[index].unsqueeze(1)

    def trunk(self, feats: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.windows(feats, mean, std)))
        return self.layer5(self.layer4(self.layer3(x)))


class SingleTaskExport(_FrameNet):
    """A ConvNet (final.pt of pyscripts.nnet.train): (T, dim) fbank -> (T, targets) log-posteriors."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.layer6 = model.layer6
        self.register_buffer("feat_mean", model.feat_mean.detach().clone())
        self.register_buffer("feat_std", model.feat_std.detach().clone())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.layer6(self.trunk(feats, self.feat_mean, self.feat_std)), dim=1)


class JointExport(_FrameNet):
    """A joint ASR-SER model: (T, dim) fbank -> [(T, targets) log-posteriors per head], heads in card order.
    Each head has its input normalisation (a row of feat_mean/feat_std, pyscripts/nnet/joint.py); when all
    rows are equal the trunk runs once for all heads."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.heads = nn.ModuleList(list(model.heads.values()))
        rows = len(self.heads)
        # A joint model of one normalisation for all heads keeps it as one row (before per-head rows).
        self.register_buffer("feat_mean", model.feat_mean.detach().expand(rows, -1).clone())
        self.register_buffer("feat_std", model.feat_std.detach().expand(rows, -1).clone())
        self.shared_input = bool((self.feat_mean == self.feat_mean[0]).all()
                                 and (self.feat_std == self.feat_std[0]).all())

    def forward(self, feats: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.trunk(feats, self.feat_mean[0], self.feat_std[0])
        out: list[torch.Tensor] = []
        for i, head in enumerate(self.heads):
            if i > 0 and not self.shared_input:
                hidden = self.trunk(feats, self.feat_mean[i], self.feat_std[i])
            out.append(torch.log_softmax(head(hidden), dim=1))
        return out


# ---------------------------------------------------------------- loading a trained model
def find_model(model: str | Path) -> Path:
    """MODEL (a final.pt, or a dir holding one) -> the final.pt path; DataError when there is none."""
    path = Path(model)
    path = path / "final.pt" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no trained model there; train it first (run.sh stage 9, local/run_ser.sh or "
                        f"local/run_joint.sh) or give the final.pt of one")
    return path


def load_trained(path: Path) -> tuple[_FrameNet, dict, dict[str, nn.Module]]:
    """(export wrapper in eval mode, package, {head: output layer}) of a ConvNet or joint final.pt."""
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise DataError(f"cannot load model {path}: {err}") from None
    fmt = package.get("format") if isinstance(package, dict) else None
    if fmt == JOINT_PACKAGE_FORMAT:
        from pyscripts.nnet.joint import load_joint_package
        model, package = load_joint_package(path)
        return JointExport(model).eval(), package, dict(model.heads.items())
    if fmt != PACKAGE_FORMAT:
        raise DataError(f"{path} is not a model of pyscripts.nnet.train or pyscripts.nnet.joint (format {fmt!r})")
    model, package = load_package(path)
    return SingleTaskExport(model).eval(), package, {"": model.layer6}


def single_task(package: dict, num_targets: int, given: str | None) -> str:
    """asr or ser for a single-task ConvNet: as given, else the joint head it is a view of, else by its
    outputs (the SER models have the 4 emotions + sil)."""
    from pyscripts.ser.labels import CLASSES
    if given:
        return given
    head = (package.get("view_of") or {}).get("head")
    return head or ("ser" if num_targets == len(CLASSES) else "asr")


# ---------------------------------------------------------------- the model card
def asr_head_card(model_path: Path, package: dict, num_targets: int, joint: bool, ali_dir: str | None,
                  phone_map: str | None) -> dict:
    """The ASR head: its pdfs, their log priors (the decode's rule), the acoustic scale chosen on dev."""
    from pyscripts.asr.hybrid import find_prior_counts, log_priors_from_counts
    counts = package["prior_counts"]["asr"].numpy() if joint else find_prior_counts(model_path)[0]
    log_priors, floored = log_priors_from_counts(counts)
    card = {"task": "asr", "num_targets": num_targets, "targets": "pdf ids of the alignment it was trained on",
            "log_priors": [float(v) for v in log_priors], "floored_priors": int(floored),
            "pseudo_loglikes": "log_posteriors - log_priors, times acwt (pyscripts/asr/hybrid.py)"}
    card.update(_dev_acoustic_scale(model_path.parent / ("asr" if joint else "") / "decode_dev"))
    if ali_dir:
        from pyscripts.transfer.probes import pdf_to_phone
        table, names = pdf_to_phone(ali_dir, phone_map)
        card["pdf_phones"] = [names[i] if i >= 0 else None for i in table.tolist()]
    return card


def _dev_acoustic_scale(decode_dev: Path) -> dict:
    """{acwt, lmwt, wip, acwt_from} of the dev decode's scoring/result.json, or a note why there is none."""
    try:
        from pyscripts.asr.result import read_result, result_path
    except ImportError:
        return {"acwt": None, "acwt_note": "this version of the recipe writes no scoring/result.json"}
    if not result_path(decode_dev).is_file():
        why = "has no scoring/result.json (re-run local/score.sh)" if decode_dev.is_dir() else "was not decoded"
        return {"acwt": None, "acwt_note": f"{decode_dev} {why}; the decode's default acwt is 0.1"}
    result = read_result(decode_dev)
    return {"acwt": result["acwt"], "lmwt": result["lmwt"], "wip": result["wip"],
            "acwt_from": str(decode_dev / "scoring" / "result.json")}


def ser_head_card(num_targets: int) -> dict:
    from pyscripts.ser.labels import CLASSES, EMOTIONS
    if num_targets != len(CLASSES):
        raise DataError(f"a SER model has {len(CLASSES)} outputs ({' '.join(CLASSES)}), this one {num_targets}; "
                        "give --task asr if it is an ASR model")
    return {"task": "ser", "num_targets": num_targets, "classes": list(CLASSES), "emotions": list(EMOTIONS),
            "decision": {"rule": "mean", "vad_conf": VAD_CONF,
                         "doc": "mean of the emotion posteriors over the speech frames of vad.conf's detector "
                                "(all frames when none), the largest wins (pyscripts/ser/evaluate.py)"}}


def training_card(model_path: Path, package: dict) -> dict:
    """What the model was trained on and how: config, epoch, dev scores, summary, input fingerprints."""
    exp, conf = model_path.parent, (package.get("features") or {}).get("conf")
    return {"config": package.get("config"), "epoch": package.get("epoch"), "dev": package.get("dev"),
            "summary": read_summary(exp), "inputs": read_stamp(exp / "final.stamp"),
            # A data dir keeps the conf of its features as DATA_DIR/conf/fbank.conf (steps/make_feats.sh).
            "train_data": str(Path(conf).parent.parent) if conf else None, "features_conf": conf,
            "cmvn_stats": ((package.get("config") or {}).get("data") or {}).get("cmvn_stats")}


def results_card(exp: Path) -> dict:
    """The scored results next to the model: ASR decode dirs (result.json) and SER evaluations."""
    results = {}
    for metrics in sorted([*exp.glob("eval/*/metrics.json"), *exp.glob("ser/fold*/eval/*/metrics.json")]):
        record = json.loads(metrics.read_text())
        results[str(metrics.parent.relative_to(exp))] = {k: record.get(k) for k in ("E", "UE", "utterances", "data")}
    try:
        from pyscripts.asr.result import read_result, result_path
    except ImportError:
        return results
    for decode in sorted([*exp.glob("decode_*"), *exp.glob("asr/decode_*")]):
        if result_path(decode).is_file():
            record = read_result(decode)
            results[str(decode.relative_to(exp))] = {k: record.get(k) for k in ("setting", "acwt", "per", "fer")}
    return results


def feature_card(package: dict, fbank_conf: str | None) -> dict:
    """The features the model was trained on (final.pt records them; older models need --fbank-config)."""
    from pyscripts.kaldi.features import feature_record
    record = package.get("features")
    if record is None:
        if not fbank_conf:
            raise DataError("the model does not record the features it was trained on (trained before they were "
                            "recorded): give --fbank-config with the conf of its training features")
        record = feature_record(fbank_conf, "fbank")
    return {"kind": record["kind"], "options": dict(record["options"]), "conf": FBANK_CONF,
            "trained_conf": record["conf"]}


def model_card(model_path: Path, net: _FrameNet, package: dict, heads: dict, options: argparse.Namespace) -> dict:
    """The JSON card of an export (see the module doc for what the graph computes)."""
    joint = isinstance(net, JointExport)
    cards = {}
    for name, layer in heads.items():
        task = name if joint else single_task(package, layer.out_features, options.task)
        cards[task] = (asr_head_card(model_path, package, layer.out_features, joint, options.ali_dir,
                                     options.phone_map) if task == "asr" else ser_head_card(layer.out_features))
    cmvn = ({"per_head": {head: _cmvn_card(net.feat_mean[i], net.feat_std[i]) for i, head in enumerate(cards)}}
            if joint else _cmvn_card(net.feat_mean, net.feat_std))
    return {"format": CARD_FORMAT, "source": str(model_path), "kind": "joint" if joint else next(iter(cards)),
            "files": {"torchscript": TORCHSCRIPT, "onnx": ONNX if options.onnx else None},
            "input": {"name": INPUT_NAME, "shape": ["frames", int(net.feat_mean.shape[-1])], "dtype": "float32",
                      "what": "raw fbank frames of one utterance, as `features` says (CMVN and splicing are "
                              "inside the graph)"},
            "outputs": [{"name": output_name(task, joint), "head": task, "shape": ["frames", c["num_targets"]],
                         "what": "log-posteriors per frame"} for task, c in cards.items()],
            "features": feature_card(package, options.fbank_config),
            "context": int(net.offsets[-1]), "window": int(net.offsets.numel()),
            "splicing": "frames t-context..t+context, the first/last frame repeated beyond the edges",
            "cmvn": cmvn,
            "heads": cards, "training": training_card(model_path, package),
            "results": results_card(model_path.parent)}


def _cmvn_card(mean: torch.Tensor, std: torch.Tensor) -> dict:
    mean, std = mean.double(), std.double()
    return {"mean": mean.tolist(), "var": (std * std).tolist(), "std": std.tolist(),
            "applied": "(x - mean) / std, per dimension, inside the graph (global statistics of the training data)"}


def output_name(task: str, joint: bool) -> str:
    return f"{task}_log_posteriors" if joint else "log_posteriors"


# ---------------------------------------------------------------- writing the export
def write_conf(path: Path, options: dict, source: str) -> None:
    lines = [f"# Written by pyscripts.nnet.export from {source}."] + [f"--{k}={v}" for k, v in options.items()]
    path.write_text("\n".join(lines) + "\n")


def example_input(feat_dim: int, frames: int = 40, seed: int = 0) -> torch.Tensor:
    """fbank-like frames for tracing and for the export's own check."""
    return torch.randn(frames, feat_dim, generator=torch.Generator().manual_seed(seed)) * 3 + 10


def save_onnx(net: _FrameNet, path: Path, output_names: list[str]) -> None:
    """The TorchScript-based exporter (dynamo=False): it needs no onnxscript, and the frame axis is dynamic."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        raise DataError("the ONNX export needs the onnx package: pip install -r requirements.txt "
                        "(or pass --no-onnx)") from None
    axes = {name: {0: "frames"} for name in [INPUT_NAME, *output_names]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, chosen on purpose (above)
        torch.onnx.export(net, (example_input(int(net.feat_mean.shape[-1])),), str(path), dynamo=False,
                          input_names=[INPUT_NAME], output_names=output_names, dynamic_axes=axes,
                          opset_version=ONNX_OPSET)


def check_export(net: _FrameNet, out_dir: Path, card: dict) -> dict:
    """Max abs difference of each saved file's outputs from the PyTorch network's on fbank-like input."""
    x = example_input(int(net.feat_mean.shape[-1]), frames=57, seed=1)
    with torch.no_grad():
        want = _as_list(net(x))
    checks = {}
    for backend in ("torchscript", "onnx"):
        if card["files"][backend] and (backend == "torchscript" or _onnxruntime() is not None):
            got = load_runner(out_dir, card, backend)(x.numpy())
            checks[backend] = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    return checks


def export(model: str | Path, out_dir: str | Path, options: argparse.Namespace) -> dict:
    """Writes OUT_DIR/model.ts, model.onnx (unless options.onnx is false), fbank.conf, vad.conf (SER) and
    model_card.json; returns the card."""
    model_path = find_model(model)
    net, package, heads = load_trained(model_path)
    card = model_card(model_path, net, package, heads, options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_conf(out_dir / FBANK_CONF, card["features"]["options"], card["features"]["trained_conf"])
    if "ser" in card["heads"]:
        from pyscripts.kaldi.tables import read_kaldi_conf
        write_conf(out_dir / VAD_CONF, read_kaldi_conf(options.vad_config), options.vad_config)
    torch.jit.script(net).save(str(out_dir / TORCHSCRIPT))
    if options.onnx:
        save_onnx(net, out_dir / ONNX, [o["name"] for o in card["outputs"]])
    card["export_check"] = {"max_abs_diff": check_export(net, out_dir, card),
                            "what": "saved files against the PyTorch network, 57 random fbank-like frames"}
    (out_dir / CARD).write_text(json.dumps(card, indent=1) + "\n")
    log.info("%s: %s model of %s exported (%s), check %s", out_dir, card["kind"], model_path,
             ", ".join(f for f in card["files"].values() if f), card["export_check"]["max_abs_diff"])
    return card


# ---------------------------------------------------------------- inference from the export alone
def _as_list(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def load_card(out_dir: str | Path) -> dict:
    path = Path(out_dir) / CARD
    if not path.is_file():
        raise DataError(f"{path}: not found; export a model there first (local/export_model.sh MODEL_DIR {out_dir})")
    card = json.loads(path.read_text())
    if card.get("format") != CARD_FORMAT:
        raise DataError(f"{path}: not a card of pyscripts.nnet.export (format {card.get('format')!r}, "
                        f"expected {CARD_FORMAT!r}); export the model again")
    return card


def load_runner(out_dir: str | Path, card: dict, backend: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function (T, dim) float32 array -> [(T, targets) log-posteriors per output], from the saved file."""
    out_dir = Path(out_dir)
    if backend == "onnx":
        ort = _onnxruntime()
        if not card["files"]["onnx"]:
            raise DataError(f"{out_dir}: the export has no {ONNX} (exported with --no-onnx); use --backend torchscript")
        if ort is None:
            raise DataError("onnxruntime is not installed (pip install -r requirements.txt); use --backend torchscript")
        session = ort.InferenceSession(str(out_dir / card["files"]["onnx"]), providers=["CPUExecutionProvider"])
        return lambda feats: session.run(None, {INPUT_NAME: np.ascontiguousarray(feats, dtype=np.float32)})
    module = torch.jit.load(str(out_dir / card["files"]["torchscript"]), map_location="cpu").eval()

    def run(feats: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in _as_list(module(torch.tensor(np.asarray(feats, dtype=np.float32))))]
    return run


def chunked_posteriors(run: Callable[[np.ndarray], list[np.ndarray]], feats: np.ndarray, context: int,
                       chunk: int = CHUNK_FRAMES) -> list[np.ndarray]:
    """run() over chunks of `chunk` frames, each with `context` real frames either side, keeping only
    the chunk's own frames: the same windows, so the same numbers, as one call on the whole utterance."""
    parts = []
    for start in range(0, len(feats), chunk):
        lo, hi = max(0, start - context), min(len(feats), start + chunk + context)
        end = min(len(feats), start + chunk)
        parts.append([o[start - lo:end - lo] for o in run(feats[lo:hi])])
    return [np.concatenate(outs) for outs in zip(*parts)]


def file_features(out_dir: Path, card: dict, wav: str) -> tuple[np.ndarray, np.ndarray]:
    """(int16-scale samples at the card's rate, fbank frames) of one audio file, per the card."""
    from pyscripts.kaldi.audio import read_audio_as
    from pyscripts.kaldi.features import compute_features, options_from
    features = card["features"]
    opts = options_from(features["kind"], features["options"], out_dir / CARD)
    samples = read_audio_as(wav, opts.frame_opts.samp_freq)
    frame = opts.frame_opts.samp_freq * opts.frame_opts.frame_length_ms / 1000
    # Checked before computing: kaldi-native-fbank gives no frame, which some versions cannot reshape.
    if len(samples) == 0 or (opts.frame_opts.snip_edges and len(samples) < frame):
        raise DataError(f"{wav}: shorter than one frame ({len(samples)} samples, a frame is {frame:.0f})")
    feats = compute_features(features["kind"], opts, samples)
    return samples, check_finite(feats, f"{wav}: features")


def describe_emotion(out_dir: Path, samples: np.ndarray, log_post: np.ndarray, head: dict) -> str:
    """`EMOTION SCORE  ang=.. hap=.. neu=.. sad=..  speech=S/N frames`, decided as the SER stages do."""
    from pyscripts.ser.evaluate import utterance_decision
    from pyscripts.ser.labels import detect_speech, read_frame_options, read_vad_options
    vad = detect_speech(samples, read_frame_options(out_dir / FBANK_CONF),
                        read_vad_options(out_dir / head["decision"]["vad_conf"]))
    if len(vad.speech) != len(log_post):
        raise DataError(f"{out_dir / FBANK_CONF}: {len(log_post)} feature frames but {len(vad.speech)} detector "
                        "frames; its framing options are not those the detector follows")
    hyp, scores, _ = utterance_decision(log_post, vad.speech, head["decision"]["rule"])
    posts = " ".join(f"{e}={s:.3f}" for e, s in zip(head["emotions"], scores))
    return f"{head['emotions'][hyp]} {scores[hyp]:.3f}  {posts}  speech={int(vad.speech.sum())}/{len(log_post)} frames"


def describe_frames(log_post: np.ndarray, head: dict) -> str:
    """The best class per frame as runs `NAME:FRAMES` (phones when the card maps pdfs to them)."""
    best = log_post.argmax(axis=1)
    names = head.get("pdf_phones") or [str(i) for i in range(head["num_targets"])]
    labels = [names[i] or str(i) for i in best]
    runs, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            runs.append(f"{labels[start]}:{t - start}")
            start = t
    return " ".join(runs)


def infer(out_dir: str | Path, wavs: list[str], backend: str | None = None, ark: str | None = None) -> list[str]:
    """Prints one line per head of every file (`WAV HEAD: ...`) from OUT_DIR alone; a bad file is reported
    and skipped. Returns the bad files. ark: also writes the log-posteriors (key: the file's stem, with
    `-HEAD` for a joint model)."""
    import kaldiio
    out_dir = Path(out_dir)
    card = load_card(out_dir)
    backend = backend or ("onnx" if card["files"]["onnx"] and _onnxruntime() is not None else "torchscript")
    run = load_runner(out_dir, card, backend)
    bad = []
    with kaldiio.WriteHelper(f"ark:{ark}") if ark else _NoArk() as writer:
        for wav in wavs:
            try:
                samples, feats = file_features(out_dir, card, wav)
                outputs = chunked_posteriors(run, feats, card["context"])
                for out, log_post in zip(card["outputs"], outputs):
                    head = card["heads"][out["head"]]
                    text = (describe_emotion(out_dir, samples, log_post, head) if head["task"] == "ser"
                            else describe_frames(log_post, head))
                    print(f"{wav} {out['head']}: {text}", flush=True)
                    writer(Path(wav).stem + (f"-{out['head']}" if card["kind"] == "joint" else ""), log_post)
            except DataError as err:
                log.error("skipped: %s", err)  # the message names the file
                bad.append(wav)
    return bad


class _NoArk:
    """Stands in for kaldiio.WriteHelper when no ark is asked for."""

    def __enter__(self):
        return lambda key, matrix: None

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write TorchScript, ONNX and the model card of a trained model")
    e.add_argument("--task", choices=["asr", "ser"], help="of a single-task model (default: a view's head, else "
                   "ser for 5 outputs, else asr)")
    e.add_argument("--ali-dir", help="ASR: the alignment dir of its targets (final.mdl, phones.txt), to name "
                   "each pdf's phone in the card")
    e.add_argument("--phone-map", help="with --ali-dir: fold the phones by this 60-48-39 map")
    e.add_argument("--vad-config", default="conf/vad.conf", help="SER: the speech detector of its decisions")
    e.add_argument("--fbank-config", help="the training features' conf, for a model that does not record it")
    e.add_argument("--no-onnx", dest="onnx", action="store_false", help="TorchScript only")
    e.add_argument("model", help="a final.pt, or the dir that holds it")
    e.add_argument("out_dir")
    i = sub.add_parser("infer", help="run an export on audio files, reading only OUT_DIR")
    i.add_argument("--backend", choices=["onnx", "torchscript"], help="default: onnx when onnxruntime is there")
    i.add_argument("--ark", help="also write the log-posteriors as Kaldi matrices to this ark")
    i.add_argument("out_dir")
    i.add_argument("wavs", nargs="+", metavar="WAV")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "export":
        export(args.model, args.out_dir, args)
        return
    bad = infer(args.out_dir, args.wavs, args.backend, args.ark)
    if bad:
        raise DataError(f"{len(bad)} of {len(args.wavs)} files failed: {' '.join(bad)}")


if __name__ == "__main__":
    main()
