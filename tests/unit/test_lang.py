"""Lang dir consistency (utils/prepare_lang.sh, pyscripts/asr/lang.py)."""
import kaldi_hmm_gmm as khg  # noqa: I001  (before kaldifst)
import shutil
import subprocess
from pathlib import Path

import kaldifst
import pytest

from pyscripts.errors import DataError
from pyscripts.asr.lang import add_lex_disambig, make_phone_dict, prepare_lang, read_int_list
from pyscripts.kaldi.tables import read_symbols

RECIPE = Path(__file__).resolve().parents[2]
PHONE_MAP = RECIPE / "conf/phones.60-48-39.map"


@pytest.fixture(scope="module")
def timit_lang(tmp_path_factory):
    root = tmp_path_factory.mktemp("lang")
    make_phone_dict(PHONE_MAP, root / "dict")
    prepare_lang(root / "dict", "sil", root / "lang")
    return root / "lang"


def arcs(fst):
    return [(s, a.ilabel, a.olabel, a.nextstate) for s in kaldifst.StateIterator(fst)
            for a in kaldifst.ArcIterator(fst, s)]


def test_phone_and_word_tables(timit_lang):
    phones = read_symbols(timit_lang / "phones.txt")
    words = read_symbols(timit_lang / "words.txt")
    train48 = {line.split()[1] for line in PHONE_MAP.read_text().splitlines() if len(line.split()) > 1}
    assert len(train48) == 48
    assert phones["<eps>"] == 0 and words["<eps>"] == 0
    assert set(phones) == train48 | {"<eps>", "#0"}
    assert set(words) == train48 | {"<eps>", "#0", "<s>", "</s>"}
    assert sorted(phones.values()) == list(range(len(phones)))  # contiguous ids
    assert sorted(words.values()) == list(range(len(words)))
    assert read_int_list(timit_lang / "phones/disambig.int") == [phones["#0"]]
    assert (timit_lang / "oov.txt").read_text().split() == ["sil"]
    assert read_int_list(timit_lang / "oov.int") == [words["sil"]]


def test_phone_sets_cover_every_phone_once(timit_lang):
    phones = read_symbols(timit_lang / "phones.txt")
    real = {i for p, i in phones.items() if p != "<eps>" and not p.startswith("#")}
    sil = read_int_list(timit_lang / "phones/silence.int")
    nonsil = read_int_list(timit_lang / "phones/nonsilence.int")
    assert sil == [phones["sil"]]
    assert read_int_list(timit_lang / "phones/optional_silence.int") == [phones["sil"]]
    assert set(sil) | set(nonsil) == real and not set(sil) & set(nonsil)
    assert (timit_lang / "phones/silence.csl").read_text().strip() == str(phones["sil"])
    sets_int = (timit_lang / "phones/sets.int").read_text().splitlines()
    sets = [list(map(int, line.split())) for line in sets_int]
    assert sorted(p for s in sets for p in s) == sorted(real)
    roots = (timit_lang / "phones/roots.int").read_text().splitlines()
    assert len(roots) == len(sets) and all(r.startswith("shared split ") for r in roots)
    assert [list(map(int, r.split()[2:])) for r in roots] == sets
    # The text and int versions agree.
    for name in ("silence", "nonsilence", "disambig", "context_indep"):
        txt = (timit_lang / f"phones/{name}.txt").read_text().split()
        assert [phones[p] for p in txt] == read_int_list(timit_lang / f"phones/{name}.int")


def test_topology_three_left_to_right_states_for_every_phone(timit_lang):
    phones = read_symbols(timit_lang / "phones.txt")
    topo = khg.HmmTopology()
    topo.read((timit_lang / "topo").read_text())
    real = sorted(i for p, i in phones.items() if p != "<eps>" and not p.startswith("#"))
    assert list(topo.phones) == real
    num_pdf_classes = topo.get_phone_to_num_pdf_classes()
    assert all(num_pdf_classes[p] == 3 for p in real)
    # 144 pdfs for a monophone system: 48 phones x 3 states.
    tree = khg.monophone_context_dependency(topo.phones, num_pdf_classes)
    tm = khg.TransitionModel(tree, topo)
    assert tm.num_pdfs == 144
    # Left to right: every transition stays or moves one state on.
    for block in (timit_lang / "topo").read_text().split("<State>")[1:]:
        fields = block.split()
        state = int(fields[0])
        dests = [int(fields[i + 1]) for i, f in enumerate(fields) if f == "<Transition>"]
        assert dests in ([state, state + 1], [])


def test_lexicon_fsts(timit_lang):
    phones = read_symbols(timit_lang / "phones.txt")
    words = read_symbols(timit_lang / "words.txt")
    id2phone = {i: p for p, i in phones.items()}
    id2word = {i: w for w, i in words.items()}
    lex = kaldifst.StdVectorFst.read(str(timit_lang / "L.fst"))
    lex_d = kaldifst.StdVectorFst.read(str(timit_lang / "L_disambig.fst"))
    # Each phone is a word pronounced as itself: one loop arc per word, phone:word.
    plain = arcs(lex)
    assert len(plain) == 48
    assert all(id2phone[i] == id2word[o] for _, i, o, _ in plain)
    assert lex.is_olabel_sorted
    extra = set(arcs(lex_d)) - set(plain)
    assert extra == {(lex_d.start, phones["#0"], words["#0"], lex_d.start)}
    if shutil.which("fstinfo"):  # OpenFst's own tools read the files too
        out = subprocess.run(["fstinfo", str(timit_lang / "L_disambig.fst")], capture_output=True,
                             text=True, check=True).stdout
        assert "# of arcs                                         49" in out


def test_add_lex_disambig_marks_homophones_and_prefixes():
    lexicon = [("a", ["x"]), ("ab", ["x", "y"]), ("b1", ["y"]), ("b2", ["y"]), ("c", ["z"])]
    out, max_disambig = add_lex_disambig(lexicon)
    assert out == [("a", ["x", "#1"]), ("ab", ["x", "y"]), ("b1", ["y", "#1"]), ("b2", ["y", "#2"]),
                   ("c", ["z"])]
    assert max_disambig == 2


def test_unknown_phone_in_lexicon_is_reported(tmp_path):
    d = tmp_path / "dict"
    d.mkdir()
    (d / "silence_phones.txt").write_text("sil\n")
    (d / "optional_silence.txt").write_text("sil\n")
    (d / "nonsilence_phones.txt").write_text("aa\n")
    (d / "lexicon.txt").write_text("sil sil\naa aa\nbad zz\n")
    with pytest.raises(DataError, match=r"lexicon.txt:3: phone zz of word bad"):
        prepare_lang(d, "sil", tmp_path / "lang")


def test_unknown_phone_in_a_transcript_names_text_and_utterance(timit_lang, recipe_dir):
    """Stage 5: an unknown phone in `text` is named with its utterance before it reaches the LM, whose
    G.fst would only say that the LM and the lang dir disagree."""
    (recipe_dir / "data").mkdir()
    shutil.copytree(timit_lang, recipe_dir / "data/lang")
    for name, line in (("train", "u2 sil aa xx sil"), ("dev", "u9 sil aa sil")):
        (recipe_dir / "data" / name).mkdir()
        (recipe_dir / "data" / name / "text").write_text(f"u1 sil aa b iy sil\n{line}\n")
    proc = subprocess.run(["bash", "-c", "local/timit_train_lm.sh data/train data/dev data/local/lm/lm.arpa && "
                           "utils/format_lm.sh data/lang data/local/lm/lm.arpa data/lang_test"],
                          cwd=recipe_dir, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "data/train/text: utterance u2 has the phone 'xx', which is not in data/lang/words.txt" in proc.stderr
