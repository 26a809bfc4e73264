"""Writes the transfer report, OUT_DIR/README.md, from what local/make_report.sh left in OUT_DIR
(tables.md, transfer_*.png, filters.png, cka.tsv, svcca.tsv, pwcca.tsv, cka.png, probes.tsv, probes.png)
and the sweeps (their plans EXP_ROOT/{ser2asr,asr2ser}/plan, and in the planned exp dirs the training
configs, and their train_summary files for how many trainings finished and how long they took), with
the joint model's comparison (stage 13, local/run_joint.sh: --joint-results) when it has been run.

  python3 -m pyscripts.transfer.report [--exp-root exp/transfer] [--asr-model A] [--ser-model S]
      [--joint-results FILE] OUT_DIR
"""
import argparse
import datetime
import logging
import subprocess
from pathlib import Path

import yaml

from pyscripts.errors import cli_main
from pyscripts.nnet.train import read_summary
from pyscripts.transfer.cka import read_cka_table
from pyscripts.transfer.claims import claims_section
from pyscripts.transfer.figures import CKA_LABELS, PROBE_NETWORKS
from pyscripts.transfer.plan import NONE, DIRECTIONS, add_plan_options, fold_count, planned_seeds, read_plans
from pyscripts.transfer.probes import read_probe_table
from pyscripts.transfer.tables import TITLES

log = logging.getLogger(__name__)


def job_times(exp_dirs):
    """(finished jobs, summed training seconds, first start, last end) from EXP/train_summary of each
    finished training (pyscripts.nnet.train writes it beside final.pt)."""
    summaries = [s for s in map(read_summary, exp_dirs) if s is not None]
    starts = [datetime.datetime.fromisoformat(s["started"]) for s in summaries]
    ends = [datetime.datetime.fromisoformat(s["ended"]) for s in summaries]
    return (len(summaries), sum(float(s["seconds"]) for s in summaries), min(starts, default=None),
            max(ends, default=None))


def _config_of(exp_dirs):
    for d in exp_dirs:
        path = Path(d) / "config.yaml"
        if path.is_file():
            return path, yaml.safe_load(path.read_text())
    return None, None


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _protocol(cfg):
    reinit = bool(cfg and cfg["init"]["reinit_unfrozen"])
    if reinit:
        return ("layers 1..l copied from the source model and frozen (BatchNorm statistics included), "
                "layers l+1..5 **drawn afresh** (the reading of Yosinski et al. 2014, `--reinit-unfrozen "
                "true`), layer 6 fresh; l = 0 is then a training from scratch like the Baseline")
    return ("layers 1..l copied from the source model and frozen (BatchNorm statistics included), "
            "layers l+1..5 copied and **fine-tuned**, layer 6 (the output) fresh; l = 0 is full "
            "fine-tuning from the source model (the default; `--reinit-unfrozen true` gives the other reading)")


def _layer_table(columns):
    names = list(columns)
    lines = ["| layer | " + " | ".join(CKA_LABELS.get(n, n) for n in names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for k in range(len(columns[names[0]])):
        lines.append(f"| {k + 1} | " + " | ".join(f"{columns[n][k]:.3f}" for n in names) + " |")
    return lines


def _comments(tsv):
    """The `#` comment lines of a layer or probe table (how its frames were drawn), without the `#`."""
    return [line[1:].strip() for line in Path(tsv).read_text().splitlines() if line.startswith("#")]


def cca_part(out_dir):
    """The SVCCA and PWCCA tables, where make_report.sh wrote them ('' when neither is there)."""
    parts = []
    for title, name in (("SVCCA", "svcca.tsv"), ("PWCCA", "pwcca.tsv")):
        tsv = Path(out_dir) / name
        if tsv.is_file():
            parts.append(f"{title}:\n\n" + "\n".join(_layer_table(read_cka_table(tsv))) + "\n")
    if not parts:
        return ""
    tsv = Path(out_dir) / ("svcca.tsv" if (Path(out_dir) / "svcca.tsv").is_file() else "pwcca.tsv")
    notes = _comments(tsv)
    return ("SVCCA and PWCCA of the same pairs on the same layer outputs (panels beside CKA in the figure). "
            "SVCCA (Raghu et al. 2017): each layer's outputs reduced to their leading singular directions, "
            "then canonical correlation analysis between the two networks; the mean canonical correlation. "
            "Unlike CKA it is invariant to any invertible linear map of the kept directions, so it asks "
            "whether the same linear subspace is there, however scaled. PWCCA (Morcos et al. 2018): the "
            "canonical correlations weighted by how much of the first network's layer each canonical "
            "direction accounts for. "
            f"{notes[-1] if notes else ''}. Unrelated views do not score 0 here: the untrained-network "
            "columns show the floor.\n\n" + "\n".join(parts) + "\n")


def cka_section(out_dir):
    tsv = Path(out_dir) / "cka.tsv"
    if not tsv.is_file():
        return "Not computed (the ASR and SER baseline models were not there when the report was made).\n"
    lines = _layer_table(read_cka_table(tsv))
    notes = _comments(tsv)
    return ("Linear CKA between the two networks' representations (outputs of layers 1..5, eval mode) of "
            "the same frames; 1 = identical up to rotation and scale. Reference curves: the untrained "
            "network the ASR training started from (how far training moved each layer), an untrained "
            "network of another seed (what the shared input alone gives) and, where present, the SER "
            "networks of two folds (the same task with other training speakers; both folds start from "
            "the same seeded initial weights, so early layers that training barely moves score near 1)."
            "\n\n"
            + "\n".join(lines) + "\n\n" + cca_part(out_dir) + "![CKA, SVCCA and PWCCA per layer](cka.png)\n\n"
            + "".join(f"- {n}\n" for n in notes))


PROBE_TEXT = {
    "phone": "TIMIT frames (silence included), labelled with the phone of their alignment target (pdf id -> "
             "phone, folded to the 39 scoring phones); trained on TIMIT train, scored on TIMIT dev",
    "emotion": "IEMOCAP frames of speech (the SER frame targets without sil); trained on a fold's training "
               "speakers, scored on its test speaker(s)",
    "speaker": "frames of one data dir (TIMIT dev by default); each speaker's utterances alternate between "
               "training and scoring",
}


def probe_section(out_dir):
    tsv = Path(out_dir) / "probes.tsv"
    if not tsv.is_file():
        return "Not computed (turned off, or the models or the labelled data were not there).\n"
    rows = read_probe_table(tsv)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    networks = list(dict.fromkeys(r["network"] for r in rows if r["network"] != "input"))
    acc = {(r["network"], r["layer"], r["label"]): r["accuracy"] for r in rows}
    heads = [f"{PROBE_NETWORKS.get(n, n).split()[0]} {label}" for label in labels for n in networks]
    lines = ["| layer | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    inputs = [acc.get(("input", 0, label)) for label in labels for _ in networks]
    lines.append("| 0 (input) | " + " | ".join("–" if a is None else f"{a:.3f}" for a in inputs) + " |")
    for k in sorted({r["layer"] for r in rows if r["layer"] > 0}):
        cells = [acc.get((n, k, label)) for label in labels for n in networks]
        lines.append(f"| {k} | " + " | ".join("–" if a is None else f"{a:.3f}" for a in cells) + " |")
    chance = {r["label"]: (r["chance"], r["classes"]) for r in rows}
    lines.append("| chance | " + " | ".join(f"{chance[label][0]:.3f}" for label in labels for _ in networks) + " |")
    notes = _comments(tsv)
    return ("Linear probes: a logistic regression trained on the frozen outputs of one layer (eval mode, "
            "standardised) of frames of some speakers and scored (frame accuracy) on frames of others; "
            "how much of each label a linear read-out finds in that layer. Layer 0 is the input window, "
            "the same for both networks. Chance: always answering the most frequent training class.\n\n"
            + "".join(f"- {label} ({chance[label][1]} classes): {PROBE_TEXT.get(label, '')}\n" for label in labels)
            + "\n" + "\n".join(lines) + "\n\n"
            + ("![probe accuracy per layer](probes.png)\n\n" if (Path(out_dir) / "probes.png").is_file() else "")
            + "".join(f"- {n}\n" for n in notes))


def joint_section(path):
    """The joint model's comparison with the single-task Baselines (local/run_joint.sh's results.md,
    its title left out), or a line saying it has not been run."""
    if path is None or not Path(path).is_file():
        return "Not run yet (stage 13, `local/run_joint.sh`).\n"
    lines = Path(path).read_text().splitlines()
    return f"From `{path}`:\n\n" + "\n".join(line for line in lines if not line.startswith("# ")).strip() + "\n"


def sweep_part(plans: dict) -> tuple[list[str], dict]:
    """A line per direction on its planned trainings (finished, training time), and the training config of
    each direction ((path, config) of a transfer row's, else a Baseline's; (None, None) before any)."""
    sweep, configs = [], {}
    for direction in DIRECTIONS:
        jobs = plans[direction]
        # The wall span of the transfer rows only: a Baseline may be a link to a model of an earlier stage.
        base_finished, base_seconds, _, _ = job_times([j.exp_dir for j in jobs if j.row == "baseline"])
        finished, seconds, start, end = job_times([j.exp_dir for j in jobs if j.row != "baseline"])
        finished, seconds = finished + base_finished, seconds + base_seconds
        span = (f", the transfer rows' first start to last end {(end - start).total_seconds() / 60:.0f} min"
                if start and end else "")
        sweep.append(f"- {TITLES[direction]}: {finished} of {len(jobs)} trainings finished; "
                     f"{seconds / 60:.1f} min of training jobs (Baselines included){span}")
        configs[direction] = _config_of([j.exp_dir for j in jobs if j.row != "baseline"] +
                                        [j.exp_dir for j in jobs if j.row == "baseline"])
    return sweep, configs


def normalisation_note(plans: dict) -> str:
    """How the planned trainings normalise their input: each direction's rows as its Baseline."""
    stats = sorted({j.cmvn_stats for j in plans["ser2asr"]} - {NONE})
    asr = (f"the global CMVN stats `{'`, `'.join(stats)}`, as the ASR Baseline" if stats else
           "each training's own frames' mean and variance")
    return (f"- Input normalisation, the same for a Baseline and its rows: SER -> ASR with {asr}; ASR -> SER "
            f"with each fold's training frames' mean and variance, as the SER Baseline.\n")


def write_report(out_dir: str | Path, exp_root: str | Path, asr_model: str | None = None,
                 ser_model: str | None = None, joint_results: str | None = None) -> Path:
    """OUT_DIR/README.md of the sweeps planned in exp_root (see the module doc)."""
    out_dir = Path(out_dir)
    plans = read_plans(exp_root)
    seeds = max(planned_seeds(jobs) for jobs in plans.values())
    parts = [f"# Transfer of ConvNet features between ASR and SER\n\n"
             f"Generated by `local/make_report.sh` on {datetime.date.today()} (commit {_git_commit()}) from "
             f"`{exp_root}`"]
    corpus = Path("data/.corpus")
    parts[-1] += f", corpus `{corpus.read_text().strip()}`.\n" if corpus.is_file() else ".\n"
    sweep, configs = sweep_part(plans)
    transfer_cfg = next((c for _, c in configs.values() if c and c["init"]["from"]), None)
    parts.append("## Protocol\n\n"
                 "- Baseline: trained from scratch on the target task.\n"
                 f"- Row l (5..0): {_protocol(transfer_cfg)}.\n"
                 f"- Source models: ASR `{asr_model or 'the SER -> ASR baseline'}`, "
                 f"SER `{ser_model or 'an ASR -> SER baseline fold'}`.\n"
                 + normalisation_note(plans) +
                 f"- SER -> ASR is one training per row; ASR -> SER one per row and fold "
                 f"({fold_count(plans['asr2ser'])}: each tests one held-out speaker, Dev = the validation speakers)"
                 + (f"; each of them with {seeds} seeds (training.seed + 0..{seeds - 1})"
                    if seeds > 1 else "") + ".\n"
                 + "\n".join(sweep) + "\n")
    tables = out_dir / "tables.md"
    parts.append("## Results\n\n" + (tables.read_text() if tables.is_file() else "No tables (run tables first).\n"))
    figs = [f"![{TITLES[d]}](transfer_{d}.png)" for d in DIRECTIONS if (out_dir / f"transfer_{d}.png").is_file()]
    bars = ("standard deviation over seeds" if seeds > 1 else
            "95% bootstrap intervals (as in the tables' interval rows; none where a value has none)")
    parts.append("## Transfer learning performance\n\nError vs number of constant layers l; dotted: the "
                 f"Baseline of the same column, shaded: its 95% interval; error bars: {bars}. Dashed (x) and "
                 "dash-dotted: the paper's numbers and Baseline on the real TIMIT and IEMOCAP, for "
                 "comparison, not runs of this recipe.\n\n"
                 + ("\n".join(figs) if figs else "No figures.") + "\n")
    parts.append("## Linear probes\n\n" + probe_section(out_dir))
    parts.append("## Learned features\n\nThe 64 first-layer filters (5 frames x 4 mel bins; time left to "
                 "right, frequency upwards, each scaled to its own peak) of the ASR and SER baselines.\n\n"
                 + ("![first-layer filters](filters.png)" if (out_dir / "filters.png").is_file() else "Not drawn.")
                 + "\n")
    parts.append("## Correlation of learned features\n\n" + cka_section(out_dir))
    parts.append("## The paper's claims\n\n" + claims_section(out_dir))
    parts.append("## Joint ASR-SER model\n\n" + joint_section(joint_results))
    conf = ["## Configuration\n"]
    for direction, (path, cfg) in configs.items():
        if cfg:
            conf.append(f"Training config of the {TITLES[direction]} jobs (`{path}`; the init section "
                        f"differs per row):\n\n```yaml\n{yaml.safe_dump(cfg, sort_keys=False)}```\n")
    parts.append("\n".join(conf) if len(conf) > 1 else "## Configuration\n\nNo finished training.\n")
    (out_dir / "README.md").write_text("\n".join(parts))
    return out_dir / "README.md"


@cli_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_options(parser)
    parser.add_argument("--asr-model")
    parser.add_argument("--ser-model")
    parser.add_argument("--joint-results", help="the joint model's results.md (local/run_joint.sh)")
    args = parser.parse_args(argv)
    path = write_report(args.out_dir, args.exp_root, args.asr_model, args.ser_model, args.joint_results)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
