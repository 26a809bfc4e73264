"""The tiny run's phone scoring against NIST sclite itself (marker `sclite`): every decode the recipe
scored (GMM, ConvNet, transfer rows, the joint model's ASR view), every LM weight / insertion penalty
setting, scored again by sclite from the very trn files local/score.sh wrote; the recipe's counts must be
sclite's."""
import re

import pytest

from pyscripts.asr.result import read_result
from pyscripts.asr.scoring import write_reports
from sclite_tools import alignments, assert_same_table, dtl_sections, run_sclite, table_rows, totals

pytestmark = pytest.mark.sclite

WER_FILE = re.compile(r"%WER (\S+) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]\n"
                      r"%SER (\S+) \[ (\d+) / (\d+) \]\n")


def scored_decodes(exp):
    """The decode dirs of `exp` that local/score.sh scored (each once, links followed)."""
    return sorted({p.parent.parent.resolve() for p in exp.glob("**/scoring/ref.trn")})


def test_tiny_run_scoring_equals_sclite(sclite, tiny_run, tmp_path):   # sclite first: no run to skip
    recipe_dir, _ = tiny_run
    decodes = scored_decodes(recipe_dir / "exp")
    names = {str(d.relative_to(recipe_dir.resolve())) for d in decodes}
    assert {f"exp/{m}/decode_{s}" for m in ("mono", "convnet_asr", "joint/asr") for s in ("dev", "test")} <= names
    checked = 0
    for d in decodes:
        sc = d / "scoring"
        settings = sorted(sc.glob("hyp_*.trn"))
        assert len(settings) == len(list(d.glob("wer_*"))) > 0, d
        for hyp in settings:
            setting = hyp.name[len("hyp_"):-len(".trn")]
            t = totals(run_sclite(sclite, sc / "ref.trn", hyp, tmp_path / f"s{checked}", "h").with_suffix(".raw"))
            m = WER_FILE.fullmatch((d / f"wer_{setting}").read_text())
            assert m, d / f"wer_{setting}"
            per, err, wrd, ins, dele, sub, ser, serr, snt = m.groups()
            mine = dict(err=int(err), wrd=int(wrd), ins=int(ins), dele=int(dele), sub=int(sub), serr=int(serr),
                        snt=int(snt))
            assert mine == {k: t[k if k != "dele" else "del"] for k in mine}, f"{d}: setting {setting}"
            assert per == f"{100 * t['err'] / t['wrd']:.2f}" and ser == f"{100 * t['serr'] / t['snt']:.2f}"
            checked += 1
        # Per utterance at the reported setting (the confidence intervals' input): sclite's alignment counts.
        best = read_result(d)["setting"]
        theirs = run_sclite(sclite, sc / "ref.trn", sc / f"hyp_{best}.trn", tmp_path / f"best{checked}", "h",
                            reports=("sum", "pralign", "dtl"))
        header, *lines = (sc / "per_by_utt").read_text().splitlines()
        assert f"at setting {best}:" in header
        by_utt = {u: tuple(int(x) for x in v) for u, *v in map(str.split, lines)}   # errors ref sub del ins
        assert by_utt == {u: (s + de + i, c + s + de, s, de, i)
                          for u, ((c, s, de, i), _, _) in alignments(theirs.with_suffix(".pra")).items()}, d
        # The built-in reports that local/score.sh writes when sclite is not on PATH: sclite's rows,
        # alignments and sections.
        mine = tmp_path / f"mine{checked}" / "hyp.trn"
        mine.parent.mkdir()
        mine.write_text((sc / f"hyp_{best}.trn").read_text())
        write_reports(sc / "ref.trn", mine)
        assert alignments(mine.with_suffix(".trn.pra")) == alignments(theirs.with_suffix(".pra")), d
        assert_same_table(table_rows(mine.with_suffix(".trn.sys")), table_rows(theirs.with_suffix(".sys")), str(d))
        assert dtl_sections(mine.with_suffix(".trn.dtl")) == dtl_sections(theirs.with_suffix(".dtl")), d
    print(f"sclite: {checked} settings of {len(decodes)} decodes scored alike")
