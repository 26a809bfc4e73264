"""Phone error rate (PER) scoring with sclite's conventions (used by the GMM and the hybrid
decodes alike, so that their PERs are computed the same way).

Hypotheses and references (Kaldi text, 48 training phones) are folded to the 39 scoring phones
(conf/phones.60-48-39.map, Lee & Hon) and written as sclite `trn` files, one utterance a line:
`sil aa ... (utt-id)`. When `sclite` is on PATH, local/score.sh runs it on them
(`sclite -r ref.trn trn -h hyp.trn trn -i rm -o sum pralign dtl`); otherwise the built-in scorer
here aligns every utterance the way sclite's DP does and writes the same kinds of reports
(HYP.trn.sys, .pra, .dtl).

Built-in alignment = sclite's (SCTK src/sclite/word.c wwd_WORD and net_dp.c): word-to-word
distances correct 0, insertion 3, deletion 3, substitution 4; at each DP cell the diagonal
(correct/substitution) wins ties, then deletion, then insertion; the path is traced back from the
last cell, and the errors are counted on it (so S/D/I follow sclite's alignment, not a plain
Levenshtein count). PER = (S + D + I) / N, N the reference phones. Comparison is case-insensitive
as in sclite; with `-i rm` an utterance's speaker is its id up to the first '-' (else '_').

Layout of a scored decode dir (Kaldi's): DECODE_DIR/wer_NAME per setting (NAME = LMWT_WIP, or LMWT),
with Kaldi's `%WER` token for these phone error rates; DECODE_DIR/scoring/{ref.trn, hyp_NAME.trn};
the chosen setting in scoring/result.json (the record every program reads, pyscripts/asr/result.py)
and scoring/best_wer (its `%WER` line, for people and utils/best_wer.sh); the reports of that setting
next to its hyp_NAME.trn; scoring/per_by_utt, the errors of each utterance at that setting, for the
confidence intervals (pyscripts/asr/utt_errors.py). Every reference needs a hypothesis and vice versa (a
decode that lost an utterance writes an empty hypothesis, which counts as deletions); a mismatch is an
error naming the utterance.

Command line:
  python3 -m pyscripts.asr.scoring score-dir --phone-map MAP --ref TEXT [--words words.txt]
      [--tune-dir DEV_DECODE_DIR] DECODE_DIR
      scores DECODE_DIR/scoring/NAME.tra (word ids) and NAME.txt (symbols), chooses the setting (with
      --tune-dir: the dev set's best) and writes its record; prints the setting
  python3 -m pyscripts.asr.scoring best [--tune-dir DEV_DECODE_DIR] DECODE_DIR
      chooses the setting again from the trn files (prints it)
  python3 -m pyscripts.asr.scoring reports --ref-trn REF --hyp-trn HYP          (built-in sclite reports)
  python3 -m pyscripts.asr.scoring results [--dev dev --test test] EXP_DIR...   (Markdown table)
"""
from __future__ import annotations

import argparse
import logging
import math
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from pyscripts.asr import result, utt_errors
from pyscripts.asr.result import ErrorCounts
from pyscripts.asr.phones import read_map39
from pyscripts.kaldi.datadir import read_list_table
from pyscripts.kaldi.tables import c_sorted, read_id2symbol
from pyscripts.errors import DataError, cli_main
from pyscripts import stats

log = logging.getLogger(__name__)

# sclite's word-to-word distances (SCTK word.c).
COST_CORRECT, COST_SUB, COST_INS, COST_DEL = 0, 4, 3, 3


# -- phone folding -----------------------------------------------------------------------------------
def fold_phones(seq: list[str] | str, map39: dict[str, str], utt: str | None = None) -> list[str]:
    """Maps a phone sequence (list or space-separated string) through map39 (48 -> 39); an unknown
    phone is an error naming it (and the utterance, when given)."""
    if isinstance(seq, str):
        seq = seq.split()
    out = []
    for phone in seq:
        if phone not in map39:
            where = f"utterance {utt}: " if utt is not None else ""
            raise DataError(f"{where}phone {phone!r} is not in the phone map's 48-phone column; the "
                            "transcripts and the map disagree")
        out.append(map39[phone])
    return out


def fold_table(table: dict[str, list[str] | str], map39: dict[str, str]) -> dict[str, list[str]]:
    return {utt: fold_phones(seq, map39, utt) for utt, seq in table.items()}


# -- alignment ------------------------------------------------------------------------------------
def align(ref: list[str], hyp: list[str]) -> list[tuple[str, str | None, str | None]]:
    """sclite's DP alignment of two token lists -> [(op, ref token or None, hyp token or None)],
    op C (correct), S, D or I; tokens lower-cased."""
    ref = [r.lower() for r in ref]
    hyp = [h.lower() for h in hyp]
    n, m = len(ref), len(hyp)
    # cost[i][j]: cheapest alignment of ref[:i] with hyp[:j]; back[i][j]: the move into (i, j).
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [[""] * (m + 1) for _ in range(n + 1)]
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = cost[0][j - 1] + COST_INS, "I"
    for i in range(1, n + 1):
        cost[i][0], back[i][0] = cost[i - 1][0] + COST_DEL, "D"
        for j in range(1, m + 1):
            same = ref[i - 1] == hyp[j - 1]
            diag = cost[i - 1][j - 1] + (COST_CORRECT if same else COST_SUB)
            dele = cost[i - 1][j] + COST_DEL
            ins = cost[i][j - 1] + COST_INS
            if diag <= dele and diag <= ins:
                cost[i][j], back[i][j] = diag, "C" if same else "S"
            elif dele < ins:
                cost[i][j], back[i][j] = dele, "D"
            else:
                cost[i][j], back[i][j] = ins, "I"
    ops: list[tuple[str, str | None, str | None]]
    ops, i, j = [], n, m
    while i > 0 or j > 0:
        op = back[i][j]
        if op in ("C", "S"):
            ops.append((op, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif op == "D":
            ops.append((op, ref[i - 1], None))
            i -= 1
        else:
            ops.append((op, None, hyp[j - 1]))
            j -= 1
    ops.reverse()
    return ops


# -- error counts (ErrorCounts: pyscripts/asr/result.py, the record holds them) -------------------
def count_ops(ops: list[tuple[str, str | None, str | None]]) -> ErrorCounts:
    c = ErrorCounts(utts=1)
    for op, r, h in ops:
        c.ref += r is not None
        c.hyp += h is not None
        c.corr += op == "C"
        c.sub += op == "S"
        c.dele += op == "D"
        c.ins += op == "I"
    c.utts_with_errors = int(c.errors > 0)
    return c


def _as_tokens(table):
    return {u: (v.split() if isinstance(v, str) else list(v)) for u, v in table.items()}


def check_same_utts(refs: dict, hyps: dict, ref_name: str = "references", hyp_name: str = "hypotheses") -> None:
    no_ref = sorted(set(hyps) - set(refs))
    if no_ref:
        raise DataError(f"utterance {no_ref[0]} is in the {hyp_name} but not in the {ref_name} "
                        f"({len(no_ref)} such); score a decode against its own data dir's text")
    no_hyp = sorted(set(refs) - set(hyps))
    if no_hyp:
        raise DataError(f"utterance {no_hyp[0]} is in the {ref_name} but has no hypothesis in the "
                        f"{hyp_name} ({len(no_hyp)} such); the decode is incomplete (check its logs)")


def align_all(refs: dict, hyps: dict) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """{utt: alignment} after checking that both cover the same utterances."""
    refs, hyps = _as_tokens(refs), _as_tokens(hyps)
    check_same_utts(refs, hyps)
    return {utt: align(refs[utt], hyps[utt]) for utt in refs}


def per(refs: dict, hyps: dict) -> ErrorCounts:
    """Scores {utt: phones} hypotheses against references (lists or strings, already folded):
    returns ErrorCounts (.per is the PER in percent, .sub/.dele/.ins/.ref the counts)."""
    total = ErrorCounts()
    for ops in align_all(refs, hyps).values():
        total.add(count_ops(ops))
    return total


# -- trn files ------------------------------------------------------------------------------------
def write_trn(path: Path | str, transcripts: Mapping[str, list[str] | str]) -> None:
    """sclite trn: `tok tok ... (utt-id)` per utterance, in C order of the ids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for utt in c_sorted(transcripts):
            seq = transcripts[utt]
            seq = seq.split() if isinstance(seq, str) else seq
            if not utt or any(c in utt for c in "() \t"):
                raise DataError(f"{path}: utterance id {utt!r} cannot be written to a trn file")
            f.write((" ".join(seq) + " " if seq else "") + f"({utt})\n")


_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()\s]+)\)\s*$")


def read_trn(path: Path | str) -> dict[str, list[str]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: trn file not found")
    table = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _TRN_LINE.match(line)
        if not m:
            raise DataError(f"{path}:{lineno}: not a trn line (`tokens (utt-id)`)")
        if m.group(2) in table:
            raise DataError(f"{path}:{lineno}: utterance {m.group(2)} appears twice")
        table[m.group(2)] = m.group(1).split()
    return table


def speaker_of(utt: str) -> str:
    """sclite `-i rm`: the id up to the first '-', else the first '_'."""
    for sep in ("-", "_"):
        if sep in utt:
            return utt.split(sep, 1)[0]
    raise DataError(f"utterance id {utt!r} has neither '-' nor '_': sclite -i rm cannot find its speaker")


# -- reports: the built-in stand-in for sclite's sum, pralign and dtl -----------------------------
def _pct(x, n):
    return 100.0 * x / n if n else 0.0


def sys_report(alignments: dict[str, list[tuple[str, str | None, str | None]]], title: str) -> tuple[str, ErrorCounts]:
    """A `.sys`-like table: one row per speaker, then Sum/Avg, Mean, S.D., Median (as sclite's sum)."""
    by_spk = {}
    for utt, ops in alignments.items():
        by_spk.setdefault(speaker_of(utt), ErrorCounts()).add(count_ops(ops))
    total = ErrorCounts()
    for c in by_spk.values():
        total.add(c)

    def pcts(c):
        return (_pct(c.corr, c.ref), _pct(c.sub, c.ref), _pct(c.dele, c.ref), _pct(c.ins, c.ref),
                _pct(c.errors, c.ref), _pct(c.utts_with_errors, c.utts))

    def row(name, snt, wrd, values):
        return f"| {name:<8}| {snt:>6} {wrd:>7} | " + " ".join(f"{v:6.1f}" for v in values) + " |"

    width = len(row("", 0, 0, [0] * 6))
    lines = ["SYSTEM SUMMARY PERCENTAGES by SPEAKER", "", "," + "-" * (width - 2) + ".",
             f"|{title:^{width - 2}}|", "|" + "-" * (width - 2) + "|",
             f"| {'SPKR':<8}| {'# Snt':>6} {'# Wrd':>7} | " + " ".join(
                 f"{h:>6}" for h in ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")) + " |",
             "|" + "-" * (width - 2) + "|"]
    for spk in c_sorted(by_spk):
        lines.append(row(spk, by_spk[spk].utts, by_spk[spk].ref, pcts(by_spk[spk])))
    lines.append("|" + "=" * (width - 2) + "|")
    lines.append(row("Sum/Avg", total.utts, total.ref, pcts(total)))
    lines.append("|" + "=" * (width - 2) + "|")
    per_spk = [(c.utts, c.ref) + pcts(c) for c in by_spk.values()]
    # sclite's S.D. is the sample standard deviation over the speakers (n - 1; 0 for one speaker).
    def sample_sd(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0
    for name, fn in (("Mean", statistics.mean), ("S.D.", sample_sd), ("Median", statistics.median)):
        vals = [fn([r[k] for r in per_spk]) for k in range(8)]
        lines.append(row(name, f"{vals[0]:.1f}", f"{vals[1]:.1f}", vals[2:]))
    lines.append("`" + "-" * (width - 2) + "'")
    return "\n".join(lines) + "\n", total


def pralign_report(alignments: dict[str, list[tuple[str, Any, Any]]]) -> str:
    """Per-utterance alignments as sclite's pralign: REF/HYP with *** for gaps, errors upper-cased."""
    out = []
    for utt in c_sorted(alignments):
        ops = alignments[utt]
        c = count_ops(ops)
        refs, hyps, evals = [], [], []
        for op, r, h in ops:
            r_s = "*" * len(h) if r is None else (r if op == "C" else r.upper())
            h_s = "*" * len(r) if h is None else (h if op == "C" else h.upper())
            w = max(len(r_s), len(h_s))
            refs.append(r_s.ljust(w))
            hyps.append(h_s.ljust(w))
            evals.append(("" if op == "C" else op).ljust(w))
        out += [f"id: ({utt})", f"Scores: (#C #S #D #I) {c.corr} {c.sub} {c.dele} {c.ins}",
                "REF:  " + " ".join(refs).rstrip(), "HYP:  " + " ".join(hyps).rstrip(),
                "Eval: " + " ".join(evals).rstrip(), ""]
    return "\n".join(out)


def dtl_report(alignments: dict[str, list[tuple[str, str | None, str | None]]], title: str) -> str:
    """Totals, then confusion pairs, insertions, deletions and substitutions by frequency."""
    total = ErrorCounts()
    pairs, ins, dels, subs = Counter(), Counter(), Counter(), Counter()
    for ops in alignments.values():
        total.add(count_ops(ops))
        for op, r, h in ops:
            if op == "S":
                pairs[(r, h)] += 1
                subs[r] += 1
            elif op == "I":
                ins[h] += 1
            elif op == "D":
                dels[r] += 1
    lines = [f"DETAILED OVERALL REPORT FOR THE SYSTEM: {title}", "",
             "SENTENCE RECOGNITION PERFORMANCE", "",
             f" sentences                      {total.utts:7d}",
             f" with errors          {_pct(total.utts_with_errors, total.utts):6.1f}%   "
             f"({total.utts_with_errors:5d})", "",
             "WORD RECOGNITION PERFORMANCE (words are phones)", "",
             f"Percent Total Error       = {total.per:6.1f}%   ({total.errors:5d})", "",
             f"Percent Correct           = {_pct(total.corr, total.ref):6.1f}%   ({total.corr:5d})", "",
             f"Percent Substitution      = {_pct(total.sub, total.ref):6.1f}%   ({total.sub:5d})",
             f"Percent Deletions         = {_pct(total.dele, total.ref):6.1f}%   ({total.dele:5d})",
             f"Percent Insertions        = {_pct(total.ins, total.ref):6.1f}%   ({total.ins:5d})", "",
             f"Ref. words                =           ({total.ref:5d})",
             f"Hyp. words                =           ({total.hyp:5d})", ""]
    for name, counter, fmt in (("CONFUSION PAIRS", pairs, lambda k: f"{k[0]} ==> {k[1]}"),
                               ("INSERTIONS", ins, str), ("DELETIONS", dels, str),
                               ("SUBSTITUTIONS", subs, str)):
        # as sclite: Total = how many different pairs (words); their occurrences summed at the end
        lines += [f"{name:<33}Total                 ({len(counter)})",
                  f"{'':<33}With >=  1 occurrences ({len(counter)})", ""]
        for i, (key, n) in enumerate(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])), 1):
            lines.append(f"{i:4d}:  {n:4d}  ->  {fmt(key)}")
        lines += ["     -------", f"{sum(counter.values()):10d}", ""]
    return "\n".join(lines)


def write_reports(ref_trn: Path | str, hyp_trn: Path | str) -> ErrorCounts:
    """The built-in scorer on two trn files: HYP.sys, HYP.pra, HYP.dtl next to the hypothesis file
    (sclite's naming). Returns the totals."""
    alignments = align_all(read_trn(ref_trn), read_trn(hyp_trn))
    hyp_trn = Path(hyp_trn)
    sys_text, total = sys_report(alignments, hyp_trn.name)
    Path(f"{hyp_trn}.sys").write_text(sys_text)
    Path(f"{hyp_trn}.pra").write_text(pralign_report(alignments))
    Path(f"{hyp_trn}.dtl").write_text(dtl_report(alignments, hyp_trn.name))
    return total


# -- hypotheses of a decode -----------------------------------------------------------------------
def read_tra(path: Path | str, id2word: dict[int, str] | None = None) -> dict[str, list[str]]:
    """A Kaldi transcription table (`utt w1 w2 ...`; integer ids when id2word is given, as Kaldi's
    .tra). An utterance with nothing after its id has an empty hypothesis."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: hypothesis file not found")
    table = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        utt, words = cols[0], cols[1:]
        if utt in table:
            raise DataError(f"{path}:{lineno}: utterance {utt} appears twice")
        if id2word is not None:
            try:
                words = [id2word[int(w)] for w in words]
            except (ValueError, KeyError) as err:
                raise DataError(f"{path}:{lineno}: word id {err} is not in the symbol table") from None
        table[utt] = words
    return table


# Symbols that are not phones (Kaldi's scoring drops them too).
NON_PHONE_WORDS = {"<eps>", "<s>", "</s>", "#0"}


def score_tables(refs48: dict, hyps48: dict, map39: dict[str, str], decode_dir: Path | str,
                 name: str) -> ErrorCounts:
    """Folds to 39; writes DECODE_DIR/scoring/ref.trn, scoring/hyp_NAME.trn and DECODE_DIR/wer_NAME.
    Returns ErrorCounts."""
    decode_dir = Path(decode_dir)
    refs39 = fold_table(refs48, map39)
    hyps39 = fold_table({u: [w for w in ws if w not in NON_PHONE_WORDS] for u, ws in hyps48.items()}, map39)
    check_same_utts(refs39, hyps39)
    write_trn(decode_dir / "scoring" / "ref.trn", refs39)
    write_trn(decode_dir / "scoring" / f"hyp_{name}.trn", hyps39)
    counts = per(refs39, hyps39)
    (decode_dir / f"wer_{name}").write_text(
        f"{counts.kaldi_line()}\n%SER {_pct(counts.utts_with_errors, counts.utts):.2f} "
        f"[ {counts.utts_with_errors} / {counts.utts} ]\n")
    return counts


def score_dir(decode_dir: Path | str, ref_text: Path | str, map39: dict[str, str],
              words_txt: Path | str | None = None) -> dict[str, ErrorCounts]:
    """Scores every hypothesis table DECODE_DIR/scoring/NAME.tra (integer ids; needs words.txt) and
    NAME.txt (symbols). Returns {name: ErrorCounts}."""
    decode_dir = Path(decode_dir)
    refs = read_list_table(ref_text)
    id2word = read_id2symbol(words_txt) if words_txt else None
    for old in decode_dir.glob("wer_*"):
        old.unlink()
    hyp_files = sorted((decode_dir / "scoring").glob("*.tra")) + sorted((decode_dir / "scoring").glob("*.txt"))
    results = {}
    for path in hyp_files:
        if path.suffix == ".tra" and id2word is None:
            raise DataError(f"{path}: integer hypotheses need the graph's words.txt (--words)")
        hyps = read_tra(path, id2word if path.suffix == ".tra" else None)
        results[path.stem] = score_tables(refs, hyps, map39, decode_dir, path.stem)
    if not results:
        raise DataError(f"{decode_dir / 'scoring'}: no hypotheses (NAME.tra or NAME.txt); decode first")
    return results


# -- best setting ---------------------------------------------------------------------------------
def setting_counts(decode_dir: str | Path) -> dict[str, ErrorCounts]:
    """{NAME: ErrorCounts} of every scored setting of a decode dir, aligned again from its trn files
    (scoring/ref.trn, hyp_NAME.trn), for choosing a setting without scoring again."""
    sc = Path(decode_dir) / "scoring"
    hyp_files = sorted(sc.glob("hyp_*.trn"))
    if not hyp_files or not (sc / "ref.trn").is_file():
        raise DataError(f"{sc}: no ref.trn and hyp_NAME.trn files; run local/score.sh first")
    refs = read_trn(sc / "ref.trn")
    return {p.name[len("hyp_"):-len(".trn")]: per(refs, read_trn(p)) for p in hyp_files}


def setting_of(name: str) -> tuple[str, str]:
    """`LMWT_WIP` (or `LMWT`) -> (lmwt, wip) as text."""
    lmwt, _, wip = name.partition("_")
    return lmwt, wip or "0.0"


def best_of(rates: dict[str, float]) -> tuple[str, float]:
    """(name, rate) of the lowest rate; rates compare at the 2 decimals the wer_* files print (as Kaldi's
    utils/best_wer.sh sorts them), ties to the first name in sorted order."""
    if not rates:
        raise DataError("no scored settings to choose from; run local/score.sh first")
    return min(((name, result.rounded_percent(rates[name])) for name in sorted(rates)), key=lambda x: x[1])


def best_setting(decode_dir: str | Path) -> tuple[str, float]:
    """(name, PER) of the decode dir's best scored setting, from its result record."""
    settings = result.read_result(decode_dir)["settings"]
    return best_of({name: s["percent"] for name, s in settings.items()})


def _chosen_setting(decode_dir, results, tune_dir):
    """(setting, where it was chosen) of write_best."""
    if tune_dir is None:
        return best_of({name: c.per for name, c in results.items()})[0], "best on this set"
    setting, _ = best_setting(tune_dir)
    if setting not in results:
        raise DataError(f"{Path(decode_dir) / f'wer_{setting}'}: missing; the setting chosen on {tune_dir} "
                        "was not scored here (use the same LM weights and penalties)")
    return setting, f"setting chosen on {tune_dir}"


def write_best(decode_dir: str | Path, tune_dir: str | Path | None = None,
               results: dict[str, ErrorCounts] | None = None) -> tuple[str, float]:
    """Chooses the setting of a scored decode dir, its best, or, with tune_dir (the dev set's decode
    dir), the dev set's best, and writes its record scoring/result.json, scoring/best_wer (for people and
    utils/best_wer.sh) and scoring/per_by_utt. results: {NAME: ErrorCounts} of score_dir (default:
    aligned again from the trn files). Returns (setting, PER)."""
    decode_dir = Path(decode_dir)
    results = setting_counts(decode_dir) if results is None else results
    setting, source = _chosen_setting(decode_dir, results, tune_dir)
    record = result.make_result(decode_dir, setting, results[setting], results, tune_dir)
    (decode_dir / "scoring").mkdir(exist_ok=True)
    (decode_dir / "scoring" / "best_wer").write_text(
        f"{results[setting].kaldi_line()} {decode_dir / f'wer_{setting}'}\n"
        f"lmwt={setting_of(setting)[0]} acwt={record['acwt']:.4g} wip={setting_of(setting)[1]} ({source})\n")
    write_per_by_utt(decode_dir, setting)
    result.write_result(decode_dir, record)
    return setting, record["per"]["percent"]


def per_utt_counts(decode_dir: Path | str, setting: str) -> dict[str, tuple[int, int, int, int, int]]:
    """{utt: (errors, ref phones, sub, del, ins)} of one scored setting, from scoring/ref.trn and
    scoring/hyp_SETTING.trn."""
    sc = Path(decode_dir) / "scoring"
    alignments = align_all(read_trn(sc / "ref.trn"), read_trn(sc / f"hyp_{setting}.trn"))
    counts = {utt: count_ops(ops) for utt, ops in alignments.items()}
    return {utt: (c.errors, c.ref, c.sub, c.dele, c.ins) for utt, c in counts.items()}


def write_per_by_utt(decode_dir: Path | str, setting: str) -> dict | None:
    """DECODE_DIR/scoring/per_by_utt: the per-utterance errors of the best_wer setting, for the
    confidence intervals and paired tests (pyscripts/stats.py). Left out (and a stale one removed) when
    the setting's trn files are not there."""
    sc = Path(decode_dir) / "scoring"
    (sc / utt_errors.PER_BY_UTT).unlink(missing_ok=True)
    if not ((sc / "ref.trn").is_file() and (sc / f"hyp_{setting}.trn").is_file()):
        return None
    rows = per_utt_counts(decode_dir, setting)
    utt_errors.write_by_utt(sc / utt_errors.PER_BY_UTT, rows,
                            f"PER per utterance at setting {setting}: utt errors ref_phones sub del ins")
    return rows


# -- results table --------------------------------------------------------------------------------
def _record_or_none(decode_dir):
    """The result record of a decode dir; None when the dir was not scored (no scoring/ at all)."""
    if not (Path(decode_dir) / "scoring").is_dir():
        return None
    return result.read_result(decode_dir)


def model_results(model_dir: str | Path, dev: str = "dev", test: str = "test") -> dict:
    """FER/PER dev/test, the dev-chosen setting and the RTFs of one model dir (exp/<model>), from the
    result records of its decode_{dev,test} dirs."""
    model_dir = Path(model_dir)
    records = {name: _record_or_none(model_dir / f"decode_{name}") for name in (dev, test)}
    row: dict[str, Any] = {"model": str(model_dir)}
    for name, rec in records.items():
        row[f"FER {name}"] = rec["fer"]["percent"] if rec and rec["fer"] else None
        row[f"rtf {name}"] = rec["rtf"] if rec else None
    row[f"PER {dev}"], row["setting"] = None, None
    if records[dev]:
        row["setting"], row[f"PER {dev}"] = best_setting(model_dir / f"decode_{dev}")
    # Test at the setting chosen on dev; the test set's own best only when dev was not scored.
    row[f"PER {test}"], row["test_own_best"] = None, False
    test_rec = records[test]
    if test_rec and row["setting"] in test_rec["settings"]:
        row[f"PER {test}"] = test_rec["settings"][row["setting"]]["percent"]
    elif test_rec:
        row[f"PER {test}"], row["test_own_best"] = test_rec["per"]["percent"], True
    return row


def _rtf_cells(rtf: dict | None) -> dict[str, str]:
    """{'forward': '0.51 / 0.31 (nj=2)', 'decode': ...} from a result record's rtf; a figure not from CPU
    threads says so: '0.02 (1-gpu)'."""
    cells = {"forward": "–", "decode": "–"}
    for stage in cells:
        timed = (rtf or {}).get(stage)
        if not timed:
            continue
        own = "–"
        if timed["rtf"] is not None:
            own = f"{timed['rtf']:.4f}"
            if not timed["label"].endswith("-thread"):
                own += f" ({timed['label']})"
        wall = [f"{timed['wall_rtf']:.4f} (nj={timed['nj']})"] if timed["wall_rtf"] is not None else []
        cells[stage] = " / ".join([own] + wall)
    return cells


def find_model_dirs(exp_roots: Iterable[Path | str]) -> list[Path]:
    """Dirs holding decode_*/scoring (exp/<model>, also nested like exp/timit/<model>)."""
    dirs = set()
    for root in exp_roots:
        for sc in Path(root).glob("**/decode_*/scoring"):
            dirs.add(sc.parent.parent)
    return sorted(dirs, key=lambda p: str(p))


def model_intervals(row: dict[str, Any], dev: str = "dev", test: str = "test") -> dict[str, Any]:
    """{column: Interval or None}: the bootstrap intervals (pyscripts/stats.py) of a results row's FER
    and PER, PER at the row's setting; None where the per-utterance results are not there."""
    out = {}
    for name in (dev, test):
        decode_dir = Path(row["model"]) / f"decode_{name}"
        for metric in ("FER", "PER"):
            column, setting = f"{metric} {name}", None
            if metric == "PER" and not (name == test and row["test_own_best"]):
                setting = row["setting"]
            out[column] = None
            if row[column] is None:
                continue
            try:
                utts = utt_errors.asr_utts(decode_dir, metric, setting, per_utt_counts)
            except DataError:
                continue
            out[column] = stats.ratio_interval(utts.errors, utts.totals)
    return out


def interval_table(rows: list[dict[str, Any]], dev: str = "dev", test: str = "test") -> list[str]:
    """Markdown lines: the results table's FER and PER with their 95% intervals, `value [low, high]`."""
    columns = [f"{m} {name}" for m in ("FER", "PER") for name in (dev, test)]
    lines = [f"95% confidence intervals: percentile bootstrap over utterances ({stats.DEFAULT_RESAMPLES} resamples, "
             f"seed {stats.DEFAULT_SEED}; pyscripts/stats.py); [–]: no per-utterance results (scoring/per_by_utt, "
             "fer_by_utt).", "",
             "| Model | " + " | ".join(f"{c[:4]}{c[4:].capitalize()} (95% CI)" for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for r in rows:
        intervals = model_intervals(r, dev, test)
        cells = []
        for c in columns:
            iv = intervals[c]
            if r[c] is None:
                cells.append("–")
            elif iv is None or math.isnan(iv.low):
                cells.append(f"{r[c]:.1f} [–]")
            else:
                cells.append(f"{r[c]:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return lines + [""]


def results_markdown(exp_roots: Iterable[Path | str], dev: str = "dev", test: str = "test") -> str:
    rows = [model_results(d, dev, test) for d in find_model_dirs(exp_roots)]
    if not rows:
        raise DataError(f"no decode_*/scoring dirs under {' '.join(map(str, exp_roots))}; decode and score first")

    def cell(x):
        return "–" if x is None else f"{x:.1f}"

    lines = [f"| Model | FER {dev.capitalize()} | FER {test.capitalize()} | PER {dev.capitalize()} | "
             f"PER {test.capitalize()} |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        per_test = cell(r[f"PER {test}"]) + ("*" if r["test_own_best"] else "")
        lines.append(f"| {r['model']} | {cell(r[f'FER {dev}'])} | {cell(r[f'FER {test}'])} | "
                     f"{cell(r[f'PER {dev}'])} | {per_test} |")
    lines += ["", "FER: frame error rate of the network alone (frame argmax against the alignment's pdfs); "
              "PER: phone error rate on the 39 folded phones, %.",
              f"PER {test.capitalize()} is scored at the LM weight / insertion penalty chosen on {dev} "
              "(* : the set's own best, no dev scoring found).", ""]
    lines += interval_table(rows, dev, test) + [
              f"| Model | LMWT_WIP (acwt) chosen on {dev} | forward RTF 1-thread / wall | "
              "decode RTF 1-thread / wall |", "|---|---|---|---|"]
    for r in rows:
        setting = "–"
        if r["setting"]:
            setting = f"{r['setting']} (acwt {1.0 / result.setting_numbers(r['setting'])[0]:.3g})"
        rtf = _rtf_cells(r[f"rtf {test}"] or r[f"rtf {dev}"])
        lines.append(f"| {r['model']} | {setting} | {rtf['forward']} | {rtf['decode']} |")
    lines.append("")
    lines.append(f"RTF: seconds per second of audio on the {test} set ({dev} when {test} has none); 1-thread: "
                 "the jobs' own time summed (1-gpu: jobs on a GPU; the rtf files name the device), wall: the parallel "
                 "jobs' wall clock with start-up.")
    return "\n".join(lines) + "\n"


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("score-dir", help="score every scoring/NAME.tra|txt of a decode dir -> wer_NAME, choose "
                       "the setting -> scoring/result.json and best_wer; prints the setting")
    d.add_argument("--phone-map", required=True, help="the 60-48-39 phone map")
    d.add_argument("--ref", required=True, help="reference text (utt + 48 phones), e.g. data/timit/test/text")
    d.add_argument("--words", help="words.txt, for the integer .tra files")
    d.add_argument("--tune-dir", help="the dev set's decode dir: use its best setting here")
    d.add_argument("decode_dir")
    b = sub.add_parser("best", help="choose the setting again from the trn files -> scoring/result.json and "
                       "best_wer; prints the setting")
    b.add_argument("--tune-dir", help="the dev set's decode dir: use its best setting here")
    b.add_argument("decode_dir")
    r = sub.add_parser("reports", help="built-in sclite stand-in: HYP.sys/.pra/.dtl from two trn files")
    r.add_argument("--ref-trn", required=True)
    r.add_argument("--hyp-trn", required=True)
    t = sub.add_parser("results", help="Markdown results table of every EXP/**/decode_*/scoring")
    t.add_argument("--dev", default="dev")
    t.add_argument("--test", default="test")
    t.add_argument("exp_dirs", nargs="+")
    args = parser.parse_args()
    if args.cmd == "score-dir":
        results = score_dir(args.decode_dir, args.ref, read_map39(args.phone_map), args.words)
        name = min(results, key=lambda k: results[k].per)
        log.info("%s: %d settings scored; lowest %s at %s", args.decode_dir, len(results),
                 results[name].kaldi_line(), name)
        print(write_best(args.decode_dir, args.tune_dir, results)[0])
    elif args.cmd == "best":
        print(write_best(args.decode_dir, args.tune_dir)[0])
    elif args.cmd == "reports":
        print(write_reports(args.ref_trn, args.hyp_trn).kaldi_line())
    else:
        print(results_markdown(args.exp_dirs, args.dev, args.test), end="")


if __name__ == "__main__":
    main()
