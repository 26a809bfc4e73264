"""Linear probes: how much phone, emotion and speaker information can a linear read-out find in each
layer of the ASR and SER networks?

For each label, a multinomial logistic regression (scikit-learn, L2, lbfgs) is trained on the frozen
outputs of one layer (eval mode, flattened, as in cka.py) for frames of training speakers, and its frame
accuracy is measured on frames of other speakers (other utterances, for the speaker label). Features are
standardised with the probe's training frames. Layer 0 is the network's input window itself (the same
for both networks once standardised): what a linear read-out finds without any network.
  phone    TIMIT frames, all of them (silence included). Label: the phone of the frame's alignment target.
           The targets (exp/mono_ali*/targets) hold pdf ids of the alignment model (144 for the
           monophones, 3 per phone); each pdf is mapped to its phone through the alignment dir's
           final.mdl and phones.txt, then folded to the 39 scoring phones (conf/phones.60-48-39.map), so
           the probe reads the phone, not its HMM state, and the same classes whatever model aligned.
           Train: TIMIT train; eval: TIMIT dev (other speakers).
  emotion  IEMOCAP frames of speech only (the SER frame targets, exp/ser/targets, without class sil).
           Train: a fold's train speakers; eval: its test speaker(s), never seen by that fold's SER model.
  speaker  all frames of one data dir (TIMIT dev by default: neither network trained on it); each
           speaker's utterances alternate, in sorted order, between the probe's training and eval sets,
           so the probe is scored on held-out utterances of the same speakers (speakers with one
           utterance are left out).
Each split is subsampled to --frames-per-split frames (seeded): utterances are read in a seeded random
order until they hold 10 times that many eligible frames (or run out), and the frames are drawn from
those. Chance: the accuracy of always answering the probe's most frequent training class.

  python3 -m pyscripts.transfer.probes --asr-model A --ser-model S
      [--phone TRAIN_DATA TRAIN_TARGETS EVAL_DATA EVAL_TARGETS] [--phone-ali-dir D] [--phone-map F]
      [--emotion TRAIN_DATA TRAIN_TARGETS EVAL_DATA EVAL_TARGETS] [--speaker DATA]
      [--frames-per-split 2000] [--max-iter 100] [--c 1.0] [--seed 7] OUT_TSV
writes '#' lines saying what each probe saw, then one line per (network, layer, label): network (input,
asr, ser), layer, label, accuracy, chance, classes, train_frames, eval_frames; and OUT_TSV with .json for
.tsv, the same rows and notes as JSON.
"""
import argparse
import json
import logging
import time
import warnings
from collections import defaultdict
from pathlib import Path

import kaldiio
import numpy as np
import torch

from pyscripts.asr.phones import read_map39
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.datadir import read_table
from pyscripts.kaldi.model import load_transition_model
from pyscripts.kaldi.tables import read_id2symbol
from pyscripts.nnet.data import frame_set_from_arrays, gather_windows, read_num_targets
from pyscripts.nnet.model import TRANSFERABLE_LAYERS, load_package
from pyscripts.transfer.cka import layer_representations

log = logging.getLogger(__name__)

LABELS = ("phone", "emotion", "speaker")
POOL_FACTOR = 10   # utterances are read until they hold this many times the frames to draw
PHONE_MAP = "conf/phones.60-48-39.map"


# -- labels ---------------------------------------------------------------------------------------
def pdf_to_phone(ali_dir, phone_map=None):
    """(int array: pdf id -> class id, class names) from ALI_DIR/final.mdl and phones.txt; the phones
    are folded by the 48 -> 39 map when given (names the map does not know stay as they are)."""
    ali_dir = Path(ali_dir)
    for name in ("final.mdl", "phones.txt"):
        if not (ali_dir / name).is_file():
            raise DataError(f"{ali_dir / name} not found: the phone probe maps the targets' pdf ids to phones "
                            f"with the alignment dir's final.mdl and phones.txt (give it with --phone-ali-dir)")
    model = load_transition_model(ali_dir / "final.mdl")
    symbols = read_id2symbol(ali_dir / "phones.txt")
    fold = read_map39(phone_map) if phone_map else {}
    pdf_phones = defaultdict(set)
    for phone, _, forward_pdf, loop_pdf in model.tuples:
        if phone not in symbols:
            raise DataError(f"{ali_dir / 'final.mdl'} has phone {phone}, which {ali_dir / 'phones.txt'} lacks: "
                            f"the two come from different lang dirs; re-run the alignment")
        name = fold.get(symbols[phone], symbols[phone])
        pdf_phones[forward_pdf].add(name)
        pdf_phones[loop_pdf].add(name)
    shared = sorted(p for p, names in pdf_phones.items() if len(names) > 1)
    if shared:  # a tree with roots shared by several phones: the pdf goes to the first in C order
        log.warning("%s: %d pdfs are shared by several phones; each is counted as the first of them",
                    ali_dir / "final.mdl", len(shared))
    names = sorted({min(n) for n in pdf_phones.values()})
    index = {n: i for i, n in enumerate(names)}
    table = np.full(model.num_pdfs, -1, dtype=np.int64)
    for pdf, phones in pdf_phones.items():
        table[pdf] = index[min(phones)]
    return table, names


def read_classes(targets_dir):
    """{class id: name} of a SER targets dir (classes.txt), or None when it has none."""
    path = Path(targets_dir) / "classes.txt"
    if not path.is_file():
        return None
    return {int(i): name for name, i in (line.split() for line in path.read_text().splitlines() if line.strip())}


def speaker_split(data_dir):
    """Each speaker's utterances (sorted) alternately to the probe's training and eval sets:
    (train utts, eval utts, {utt: speaker}); speakers with fewer than 2 utterances are left out."""
    utt2spk = read_table(Path(data_dir) / "utt2spk")
    by_speaker = defaultdict(list)
    for utt, spk in utt2spk.items():
        by_speaker[spk].append(utt)
    train, held_out = [], []
    for spk in sorted(by_speaker):
        utts = sorted(by_speaker[spk])
        if len(utts) >= 2:
            train += utts[0::2]
            held_out += utts[1::2]
    return train, held_out, utt2spk


# -- frames ---------------------------------------------------------------------------------------
def draw_frames(data_dir, utts, frame_labels, num_frames, context, rng):
    """Raw windows (n, 1, 2*context+1, dim) and labels (n,) of num_frames frames of data_dir: utterances
    `utts` (all of feats.scp if None) are read in a seeded random order until they hold POOL_FACTOR times
    num_frames eligible frames, then the frames are drawn from those. frame_labels(utt, frames) gives an
    utterance's per-frame label ids (-1: not eligible) or None to skip it. Returns (windows, labels, note)."""
    scp = Path(data_dir) / "feats.scp"
    if not scp.is_file():
        raise DataError(f"{scp} not found: the probes need the fbank features of {data_dir}")
    table = kaldiio.load_scp(str(scp))
    utts = list(table.keys()) if utts is None else [u for u in utts if u in table]
    feats_list, labels_list, pool, skipped = [], [], 0, 0
    for i in rng.permutation(len(utts)):
        feats = np.asarray(table[utts[i]], dtype=np.float32)
        labels = frame_labels(utts[i], len(feats))
        if labels is None:
            skipped += 1
            continue
        feats_list.append(feats)
        labels_list.append(labels)
        pool += int(np.sum(labels >= 0))
        if pool >= POOL_FACTOR * num_frames:
            break
    if pool == 0:
        raise DataError(f"{scp}: none of its {len(utts)} utterances has a frame to probe (no labels, or "
                        f"only excluded classes); check the targets given with it")
    frames = frame_set_from_arrays(feats_list, labels_list)
    labels = frames.targets.numpy()
    take = min(num_frames, pool)
    pick = np.sort(rng.choice(np.flatnonzero(labels >= 0), take, replace=False))
    windows = gather_windows(frames.feats, frames.first, frames.last, torch.from_numpy(pick), context)
    note = (f"{data_dir}: {take} frames from {len(feats_list)} of {len(utts)} utterances"
            + (f" ({skipped} without targets)" if skipped else ""))
    return windows, labels[pick], note


def _targets_labels(targets_dir, mapping=None):
    """frame_labels for draw_frames from a targets dir: the targets, mapped by `mapping` (an array:
    target id -> label id, -1 to exclude) when given."""
    scp = Path(targets_dir) / "targets.scp"
    if not scp.is_file():
        raise DataError(f"{scp} not found: run the alignment / SER target stage that writes it")
    table = kaldiio.load_scp(str(scp))

    def labels_of(utt, num_frames):
        if utt not in table:
            return None
        targets = np.asarray(table[utt], dtype=np.int64)
        if len(targets) != num_frames:
            raise DataError(f"utterance {utt}: {num_frames} feature frames but {len(targets)} targets in {scp}; "
                            f"the targets were made with other features - re-make them")
        if mapping is None:
            return targets
        if targets.min() < 0 or targets.max() >= len(mapping):
            raise DataError(f"{scp}: utterance {utt} has target ids outside 0..{len(mapping) - 1}; "
                            f"the targets do not belong to the model that maps them")
        return mapping[targets]
    return labels_of


# -- probes ---------------------------------------------------------------------------------------
def probe_accuracy(train_x, train_y, eval_x, eval_y, max_iter=100, c=1.0):
    """Accuracy on (eval_x, eval_y) of a logistic regression trained on standardised train_x; and
    whether lbfgs converged within max_iter."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(train_x)
    probe = LogisticRegression(C=c, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(scaler.transform(train_x), train_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    accuracy = float(np.mean(probe.predict(scaler.transform(eval_x)) == eval_y))
    return accuracy, converged


def chance_accuracy(train_y, eval_y):
    """The accuracy of always answering the most frequent training class."""
    values, counts = np.unique(train_y, return_counts=True)
    return float(np.mean(eval_y == values[np.argmax(counts)]))


def run_probes(models, train, held_out, max_iter=100, c=1.0):
    """models: {network: ConvNet}; train/held_out: (raw windows, labels). Rows (network, layer, accuracy,
    converged): layer 0 (the standardised input, network 'input') and layers 1..5 of every model."""
    (train_w, train_y), (eval_w, eval_y) = train, held_out
    first = next(iter(models.values()))

    def flat_input(w):
        return ((w - first.feat_mean) / first.feat_std).reshape(len(w), -1).numpy()
    rows = [("input", 0, *probe_accuracy(flat_input(train_w), train_y, flat_input(eval_w), eval_y, max_iter, c))]
    for name, model in models.items():
        train_reps, eval_reps = layer_representations(model, train_w), layer_representations(model, eval_w)
        for k in range(TRANSFERABLE_LAYERS):
            rows.append((name, k + 1, *probe_accuracy(train_reps[k], train_y, eval_reps[k], eval_y, max_iter, c)))
            train_reps[k] = eval_reps[k] = None   # the wide early layers: free them as soon as done
    return rows


def label_sets(args, context, rng):
    """{label: (train (windows, labels), eval (windows, labels), class names, notes)} for the labels
    the arguments ask for."""
    sets = {}
    if args.phone:
        train_data, train_targets, eval_data, eval_targets = args.phone
        ali_dir = args.phone_ali_dir or Path(train_targets).parent
        mapping, names = pdf_to_phone(ali_dir, args.phone_map or None)
        parts = [draw_frames(d, None, _targets_labels(t, mapping), args.frames_per_split, context, rng)
                 for d, t in ((train_data, train_targets), (eval_data, eval_targets))]
        sets["phone"] = (parts[0][:2], parts[1][:2], names,
                         [f"train {parts[0][2]}", f"eval {parts[1][2]}",
                          f"{len(names)} phones: pdf ids of {train_targets} mapped through {ali_dir}/final.mdl"
                          + (f", folded by {args.phone_map}" if args.phone_map else "")])
    if args.emotion:
        train_data, train_targets, eval_data, eval_targets = args.emotion
        classes = read_classes(train_targets) or {}
        if classes and classes != (read_classes(eval_targets) or classes):
            raise DataError(f"{train_targets}/classes.txt and {eval_targets}/classes.txt differ: "
                            f"make both with the same local/ser_frame_labels.sh")
        num = read_num_targets(train_targets)
        mapping = np.arange(num)
        excluded = [i for i, n in classes.items() if n == "sil"]
        mapping[excluded] = -1
        parts = [draw_frames(d, None, _targets_labels(t, mapping), args.frames_per_split, context, rng)
                 for d, t in ((train_data, train_targets), (eval_data, eval_targets))]
        names = [classes.get(i, str(i)) for i in range(num) if i not in excluded]
        sets["emotion"] = (parts[0][:2], parts[1][:2], names,
                           [f"train {parts[0][2]}", f"eval {parts[1][2]}",
                            f"frames of speech only (class sil of {train_targets}/classes.txt left out)"
                            if excluded else f"all frames ({train_targets} has no classes.txt naming sil)"])
    if args.speaker:
        train_utts, eval_utts, utt2spk = speaker_split(args.speaker)
        speakers = sorted({utt2spk[u] for u in train_utts})
        if len(speakers) < 2:
            log.warning("%s: fewer than 2 speakers with 2 or more utterances; no speaker probe", args.speaker)
        else:
            index = {s: i for i, s in enumerate(speakers)}

            def speaker_labels(utt, num_frames):
                return np.full(num_frames, index[utt2spk[utt]], dtype=np.int64)
            parts = [draw_frames(args.speaker, utts, speaker_labels, args.frames_per_split, context, rng)
                     for utts in (train_utts, eval_utts)]
            sets["speaker"] = (parts[0][:2], parts[1][:2], speakers,
                               [f"train {parts[0][2]}", f"eval {parts[1][2]}",
                                f"{len(speakers)} speakers; their utterances alternate between train and eval"])
    return sets


def read_probe_table(path):
    """The TSV written by main -> [row dicts] (accuracy and chance as floats, counts as ints)."""
    lines = [line for line in Path(path).read_text().split("\n") if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        for key in ("accuracy", "chance"):
            row[key] = float(row[key])
        for key in ("layer", "classes", "train_frames", "eval_frames"):
            row[key] = int(row[key])
        rows.append(row)
    return rows


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr-model", required=True)
    parser.add_argument("--ser-model", required=True)
    parser.add_argument("--phone", nargs=4, metavar=("TRAIN_DATA", "TRAIN_TARGETS", "EVAL_DATA", "EVAL_TARGETS"),
                        help="TIMIT data dirs and their alignment targets (pdf ids)")
    parser.add_argument("--phone-ali-dir", help="alignment dir with final.mdl and phones.txt "
                        "[the parent of TRAIN_TARGETS]")
    parser.add_argument("--phone-map", default=PHONE_MAP, help="48 -> 39 phone map; '' for none [%(default)s]")
    parser.add_argument("--emotion", nargs=4, metavar=("TRAIN_DATA", "TRAIN_TARGETS", "EVAL_DATA", "EVAL_TARGETS"),
                        help="IEMOCAP fold data dirs and their SER frame targets")
    parser.add_argument("--speaker", metavar="DATA", help="data dir with utt2spk whose speakers are probed")
    parser.add_argument("--frames-per-split", type=int, default=2000)
    parser.add_argument("--max-iter", type=int, default=100, help="lbfgs iterations per probe [%(default)s]")
    parser.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the probes [%(default)s]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("out_tsv")
    args = parser.parse_args(argv)
    if not (args.phone or args.emotion or args.speaker):
        raise DataError("no label to probe: give --phone, --emotion and/or --speaker")
    if args.frames_per_split < 10:
        raise DataError(f"--frames-per-split {args.frames_per_split}: give at least 10")
    start = time.time()
    models = {"asr": load_package(args.asr_model)[0], "ser": load_package(args.ser_model)[0]}
    asr, ser = models["asr"], models["ser"]
    if asr.context != ser.context or asr.feat_dim != ser.feat_dim:
        raise DataError(f"{args.asr_model} and {args.ser_model} take different inputs "
                        f"({2 * asr.context + 1}x{asr.feat_dim} and {2 * ser.context + 1}x{ser.feat_dim})")
    sets = label_sets(args, asr.context, np.random.default_rng(args.seed))
    notes, rows, not_converged, about = [], [], 0, {}
    for label, (train, held_out, names, label_notes) in sets.items():
        chance = chance_accuracy(train[1], held_out[1])
        classes = len(np.unique(np.concatenate([train[1], held_out[1]])))
        notes += [f"{label}: {n}" for n in label_notes]
        about[label] = {"classes": names, "notes": label_notes, "chance": chance}
        if len(np.unique(train[1])) < 2:
            log.warning("%s: the probe's training frames hold one class only; no %s probe", label, label)
            continue
        t0 = time.time()
        for network, layer, accuracy, converged in run_probes(models, train, held_out, args.max_iter, args.c):
            rows.append({"network": network, "layer": layer, "label": label, "accuracy": accuracy,
                         "chance": chance, "classes": classes, "train_frames": len(train[1]),
                         "eval_frames": len(held_out[1])})
            not_converged += not converged
            log.info("%s layer %d %s: accuracy %.3f (chance %.3f)%s", network, layer, label, accuracy, chance,
                     "" if converged else f", not converged in {args.max_iter} iterations")
        log.info("%s probes: %.1f s", label, time.time() - t0)
    notes.append(f"logistic regression (L2, C={args.c}, lbfgs, at most {args.max_iter} iterations) on "
                 f"standardised layer outputs; {not_converged} of {len(rows)} probes stopped at the iteration "
                 f"limit; seed {args.seed}; {time.time() - start:.0f} s in all")
    _write_probes(Path(args.out_tsv), notes, about, rows)


def _write_probes(out, notes, about, rows):
    """OUT_TSV ('#' notes, then one line per probe) and its .json twin."""
    header = ["network", "layer", "label", "accuracy", "chance", "classes", "train_frames", "eval_frames"]
    lines = [f"# {n}" for n in notes] + ["\t".join(header)]
    for row in rows:
        lines.append("\t".join(f"{row[h]:.4f}" if isinstance(row[h], float) else str(row[h]) for h in header))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"notes": notes, "labels": about, "probes": rows}, indent=1) + "\n")
    for note in notes:
        log.info("%s", note)
    log.info("%d probes written to %s", len(rows), out)


if __name__ == "__main__":
    main()
