"""NIST sclite as the reference for the recipe's scoring (pyscripts/asr/scoring.py, local/score.sh): runs
sclite on trn files and reads its reports (.raw, .pra, .sys, .dtl), and the built-in ones, which have the
same rows, alignments and sections. The tests that use it are marked `sclite` and get the binary from
the `sclite` fixture (tests/conftest.py)."""
import re
import subprocess

import pytest


def run_sclite(sclite, ref_trn, hyp_trn, out_dir, name, reports=("rsum",)):
    """sclite -r REF trn -h HYP trn -i rm -o REPORTS, its reports written as OUT_DIR/NAME.{raw,pra,sys,dtl}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(sclite), "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm",
                           "-o", *reports, "-O", str(out_dir), "-n", name], capture_output=True, text=True)
    assert proc.returncode == 0, f"sclite failed on {hyp_trn}:\n{proc.stdout}\n{proc.stderr}"
    return out_dir / name


def table_rows(path):
    """The rows of a .sys or .raw table: {row name: [numbers]} (speakers, Sum/Avg or Sum, Mean, S.D.,
    Median), the name as written, numbers in column order (# Snt, # Wrd, Corr, Sub, Del, Ins, Err, S.Err)."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = line.strip().split("|")
        if len(cells) != 5:
            continue
        try:
            numbers = [float(x) for x in cells[2].split() + cells[3].split()]
        except ValueError:   # the header row
            continue
        rows[cells[1].strip()] = numbers
    return rows


def totals(raw_path):
    """The Sum row of sclite's .raw report: {snt, wrd, corr, sub, del, ins, err, serr} as integers."""
    rows = table_rows(raw_path)
    (name,) = [n for n in rows if n in ("Sum", "Sum/Avg")]
    return dict(zip(("snt", "wrd", "corr", "sub", "del", "ins", "err", "serr"), map(int, rows[name])))


def alignments(pra_path):
    """{utt: (scores (C, S, D, I), REF tokens, HYP tokens)} of a .pra report (sclite's or the built-in);
    '***' marks an insertion in REF, a deletion in HYP, errors are upper-cased, as sclite prints them."""
    out = {}
    for block in re.split(r"^id: \(", pra_path.read_text(), flags=re.M)[1:]:
        utt = block[:block.index(")")]
        scores = tuple(int(x) for x in re.search(r"^Scores: \(#C #S #D #I\) (.*)$", block, re.M).group(1).split())
        ref = [t for line in re.findall(r"^REF: (.*)$", block, re.M) for t in line.split()]
        hyp = [t for line in re.findall(r"^HYP: (.*)$", block, re.M) for t in line.split()]
        out[utt] = (scores, ref, hyp)
    return out


_SECTIONS = ("CONFUSION PAIRS", "INSERTIONS", "DELETIONS", "SUBSTITUTIONS")


def dtl_sections(dtl_path):
    """{section: (Total, {entry: count}, occurrences)} of the .dtl sections both scorers write: confusion
    pairs (`ref ==> hyp`), inserted, deleted and substituted words."""
    out, current = {}, None
    for line in dtl_path.read_text().splitlines():
        head = re.match(r"^([A-Z][A-Z ]+?)\s+Total\s+\((\d+)\)", line)
        if head:
            current = head.group(1) if head.group(1) in _SECTIONS else None
            if current:
                out[current] = [int(head.group(2)), {}, None]
            continue
        if current is None:
            continue
        entry = re.match(r"^\s*\d+:\s+(\d+)\s+->\s+(.*?)\s*$", line)
        if entry:
            out[current][1][entry.group(2)] = int(entry.group(1))
        elif re.match(r"^\s*\d+\s*$", line):   # the sum under the '-------' line
            out[current][2] = int(line)
            current = None
    return {k: tuple(v) for k, v in out.items()}


def assert_same_table(mine, theirs, what):
    """Rows by the same names; counts equal, percentages and the Mean/S.D./Median rows within the
    rounding of one printed decimal."""
    assert mine.keys() == theirs.keys(), what
    for name in theirs:
        assert mine[name] == pytest.approx(theirs[name], abs=0.1 + 1e-9), f"{what}: row {name}"
