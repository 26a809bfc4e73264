"""Kaldi lang dir (utils/prepare_lang.sh) from a dict dir, and the phone-level TIMIT dict.

A dict dir holds lexicon.txt (word phone...), silence_phones.txt, nonsilence_phones.txt (one or
more phones a line; phones on one line share a tree root), optional_silence.txt and, optionally,
extra_questions.txt. The lang dir gets phones.txt, words.txt, oov.{txt,int}, topo, L.fst,
L_disambig.fst (binary OpenFst) and phones/ with the sets Kaldi's tools read. Phones are not made
word-position dependent, and there is no optional silence between words (the TIMIT set-up:
prepare_lang.sh --position-dependent-phones false --sil-prob 0.0).
"""
import argparse
import logging
from pathlib import Path
from typing import Any

from pyscripts.asr.phones import read_map39
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import c_sorted, write_symbols

log = logging.getLogger(__name__)


# -- int lists --------------------------------------------------------------------------------------
def read_int_list(path: Path) -> list[int]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found; is it a Kaldi lang dir made by utils/prepare_lang.sh?")
    return [int(x) for x in path.read_text().split()]


# -- dict dir ------------------------------------------------------------------------------------
def _read_phone_lines(path, required=True):
    path = Path(path)
    if not path.is_file():
        if required:
            raise DataError(f"{path}: missing from the dict dir")
        return []
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_dict_dir(dict_dir: Path | str) -> tuple[list[tuple[str, list[str]]], list[list[str]], list[list[str]], str,
                                                 list[list[str]]]:
    """(lexicon [(word, [phones])], silence phone lines, nonsilence phone lines, optional silence,
    extra question lines), checked for the mistakes prepare_lang.sh rejects."""
    d = Path(dict_dir)
    sil_lines = _read_phone_lines(d / "silence_phones.txt")
    nonsil_lines = _read_phone_lines(d / "nonsilence_phones.txt")
    opt = _read_phone_lines(d / "optional_silence.txt")
    extra = _read_phone_lines(d / "extra_questions.txt", required=False)
    sil = [p for line in sil_lines for p in line]
    nonsil = [p for line in nonsil_lines for p in line]
    if not sil or not nonsil:
        raise DataError(f"{d}: silence_phones.txt and nonsilence_phones.txt must each list a phone")
    seen = set()
    for p in sil + nonsil:
        if p in seen:
            raise DataError(f"{d}: phone {p} is listed twice in silence/nonsilence_phones.txt")
        if p.startswith("#") or p in ("<eps>",):
            raise DataError(f"{d}: phone name {p} is reserved")
        seen.add(p)
    if len(opt) != 1 or len(opt[0]) != 1 or opt[0][0] not in sil:
        raise DataError(f"{d / 'optional_silence.txt'}: must hold one phone from silence_phones.txt")
    for line in extra:
        for p in line:
            if p not in seen:
                raise DataError(f"{d / 'extra_questions.txt'}: unknown phone {p}")
    lexicon, lex_path = [], d / "lexicon.txt"
    if not lex_path.is_file():
        raise DataError(f"{lex_path}: missing from the dict dir")
    for lineno, line in enumerate(lex_path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{lex_path}:{lineno}: word {parts[0]} has no pronunciation")
        for p in parts[1:]:
            if p not in seen:
                raise DataError(f"{lex_path}:{lineno}: phone {p} of word {parts[0]} is in neither "
                                "silence_phones.txt nor nonsilence_phones.txt")
        if parts[0] in ("<eps>", "<s>", "</s>") or parts[0].startswith("#"):
            raise DataError(f"{lex_path}:{lineno}: word {parts[0]} is reserved")
        lexicon.append((parts[0], parts[1:]))
    if not lexicon:
        raise DataError(f"{lex_path}: empty lexicon")
    return lexicon, sil_lines, nonsil_lines, opt[0][0], extra


def add_lex_disambig(lexicon: list[tuple[str, list[str]]]) -> tuple[list[tuple[str, list[str]]], int]:
    """Appends #1, #2... to pronunciations that are repeated or prefixes of others, as Kaldi's
    add_lex_disambig.pl does. Returns (new lexicon, highest disambig index used)."""
    count, prefixes = {}, set()
    for _, pron in lexicon:
        count[tuple(pron)] = count.get(tuple(pron), 0) + 1
        for k in range(1, len(pron)):
            prefixes.add(tuple(pron[:k]))
    last_used, max_disambig, out = {}, 0, []
    for word, pron in lexicon:
        key = tuple(pron)
        if count[key] == 1 and key not in prefixes:
            out.append((word, list(pron)))
            continue
        n = last_used.get(key, 0) + 1
        last_used[key] = n
        max_disambig = max(max_disambig, n)
        out.append((word, list(pron) + [f"#{n}"]))
    return out, max_disambig


# -- topology and FSTs ---------------------------------------------------------------------------
def left_to_right_topo(entries: list[tuple[list[int], int]]) -> str:
    """Kaldi text topology: entries = [(phone ids, number of emitting states)], each phone a
    left-to-right HMM with self-loops (0.75) and forward transitions (0.25)."""
    lines = ["<Topology>"]
    for phone_ids, n in entries:
        lines += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, phone_ids)), "</ForPhones>"]
        for s in range(n):
            lines.append(f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 "
                         f"<Transition> {s + 1} 0.25 </State>")
        lines += [f"<State> {n} </State>", "</TopologyEntry>"]
    lines.append("</Topology>")
    return "\n".join(lines) + "\n"


def make_lexicon_fst(lexicon: list[tuple[str, list[str]]], phone2id: dict[str, int], word2id: dict[str, int],
                     loop_disambig: tuple[int, int] | None = None) -> Any:
    """Lexicon transducer (phones in, words out) without optional silence: one start/final state
    that every pronunciation leaves and returns to. loop_disambig=(phone #0 id, word #0 id) adds the
    self-loop that lets G's #0 back-off symbol through (L_disambig)."""
    import kaldi_hmm_gmm  # noqa: F401  (must be imported before kaldifst)
    import kaldifst
    fst = kaldifst.StdVectorFst()
    start = fst.add_state()
    fst.start = start
    fst.set_final(start, 0.0)
    for word, pron in lexicon:
        src = start
        for k, phone in enumerate(pron):
            dest = start if k == len(pron) - 1 else fst.add_state()
            fst.add_arc(src, kaldifst.StdArc(phone2id[phone], word2id[word] if k == 0 else 0, 0.0, dest))
            src = dest
    if loop_disambig is not None:
        fst.add_arc(start, kaldifst.StdArc(loop_disambig[0], loop_disambig[1], 0.0, start))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


# -- lang dir ------------------------------------------------------------------------------------
def prepare_lang(dict_dir: Path | str, oov_word: str, lang_dir: Path | str, num_sil_states: int = 3,
                 num_nonsil_states: int = 3) -> None:
    lexicon, sil_lines, nonsil_lines, opt_sil, extra = read_dict_dir(dict_dir)
    words = c_sorted({w for w, _ in lexicon})
    if oov_word not in words:
        raise DataError(f"{dict_dir}/lexicon.txt: the OOV word {oov_word!r} is not in the lexicon")
    lex_disambig, max_disambig = add_lex_disambig(lexicon)
    sil = [p for line in sil_lines for p in line]
    nonsil = [p for line in nonsil_lines for p in line]
    disambig = [f"#{i}" for i in range(max_disambig + 1)]
    phones = ["<eps>"] + sil + nonsil + disambig
    word_syms = ["<eps>"] + words + ["#0", "<s>", "</s>"]
    phone2id = {p: i for i, p in enumerate(phones)}
    word2id = {w: i for i, w in enumerate(word_syms)}

    lang = Path(lang_dir)
    (lang / "phones").mkdir(parents=True, exist_ok=True)
    write_symbols(lang / "phones.txt", phones)
    write_symbols(lang / "words.txt", word_syms)
    (lang / "oov.txt").write_text(f"{oov_word}\n")
    (lang / "oov.int").write_text(f"{word2id[oov_word]}\n")

    def write_set(name, items, csl=True):
        (lang / "phones" / f"{name}.txt").write_text("".join(f"{p}\n" for p in items))
        (lang / "phones" / f"{name}.int").write_text("".join(f"{phone2id[p]}\n" for p in items))
        if csl:
            (lang / "phones" / f"{name}.csl").write_text(":".join(str(phone2id[p]) for p in items) + "\n")

    write_set("silence", sil)
    write_set("nonsilence", nonsil)
    write_set("optional_silence", [opt_sil])
    write_set("disambig", disambig)
    write_set("context_indep", sil)
    write_set("wdisambig", ["#0"], csl=False)
    (lang / "phones" / "wdisambig_phones.int").write_text(f"{phone2id['#0']}\n")
    (lang / "phones" / "wdisambig_words.int").write_text(f"{word2id['#0']}\n")
    # One tree root per line of the phone lists; phones on a line share it.
    sets = sil_lines + nonsil_lines
    (lang / "phones" / "sets.txt").write_text("".join(" ".join(s) + "\n" for s in sets))
    (lang / "phones" / "sets.int").write_text(
        "".join(" ".join(str(phone2id[p]) for p in s) + "\n" for s in sets))
    (lang / "phones" / "roots.txt").write_text("".join("shared split " + " ".join(s) + "\n" for s in sets))
    (lang / "phones" / "roots.int").write_text(
        "".join("shared split " + " ".join(str(phone2id[p]) for p in s) + "\n" for s in sets))
    (lang / "phones" / "extra_questions.txt").write_text("".join(" ".join(q) + "\n" for q in extra))
    (lang / "phones" / "extra_questions.int").write_text(
        "".join(" ".join(str(phone2id[p]) for p in q) + "\n" for q in extra))
    (lang / "phones" / "align_lexicon.txt").write_text(
        "".join(f"{w} {w} {' '.join(p)}\n" for w, p in lexicon))
    (lang / "phones" / "align_lexicon.int").write_text(
        "".join(f"{word2id[w]} {word2id[w]} {' '.join(str(phone2id[x]) for x in p)}\n" for w, p in lexicon))

    (lang / "topo").write_text(left_to_right_topo(
        [([phone2id[p] for p in nonsil], num_nonsil_states), ([phone2id[p] for p in sil], num_sil_states)]))
    make_lexicon_fst(lexicon, phone2id, word2id).write(str(lang / "L.fst"))
    make_lexicon_fst(lex_disambig, phone2id, word2id,
                     loop_disambig=(phone2id["#0"], word2id["#0"])).write(str(lang / "L_disambig.fst"))
    log.info("%s: %d phones (%d silence), %d disambiguation symbols, %d words", lang,
             len(sil) + len(nonsil), len(sil), len(disambig), len(words))


def make_phone_dict(phone_map: Path | str, dict_dir: Path | str, silence: str = "sil") -> None:
    """Phone-level dict dir: every training phone (column 2 of the 60-48-39 map) is a word whose
    pronunciation is itself; `silence` is the silence and optional-silence phone."""
    phones = set(read_map39(phone_map))
    if silence not in phones:
        raise DataError(f"{phone_map}: the silence phone {silence!r} is not among the training phones")
    nonsil = sorted(phones - {silence})
    d = Path(dict_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "silence_phones.txt").write_text(f"{silence}\n")
    (d / "optional_silence.txt").write_text(f"{silence}\n")
    (d / "nonsilence_phones.txt").write_text("".join(f"{p}\n" for p in nonsil))
    (d / "lexicon.txt").write_text("".join(f"{p} {p}\n" for p in sorted([silence] + nonsil)))
    # Questions for a tree, should one be built: silence versus speech.
    (d / "extra_questions.txt").write_text(f"{silence}\n{' '.join(nonsil)}\n")
    log.info("%s: %d phones, %d of them non-silence", d, len(nonsil) + 1, len(nonsil))


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="lang dir from a dict dir")
    p.add_argument("--num-sil-states", type=int, default=3)
    p.add_argument("--num-nonsil-states", type=int, default=3)
    p.add_argument("dict_dir")
    p.add_argument("oov_word")
    p.add_argument("lang_dir")
    d = sub.add_parser("phone-dict", help="phone-level dict dir from the 60-48-39 phone map")
    d.add_argument("--silence", default="sil")
    d.add_argument("phone_map")
    d.add_argument("dict_dir")
    args = parser.parse_args()
    if args.cmd == "prepare":
        if args.num_sil_states < 1 or args.num_nonsil_states < 1:
            raise DataError("--num-sil-states and --num-nonsil-states must be at least 1")
        prepare_lang(args.dict_dir, args.oov_word, args.lang_dir, args.num_sil_states,
                     args.num_nonsil_states)
    else:
        make_phone_dict(args.phone_map, args.dict_dir, args.silence)


if __name__ == "__main__":
    main()
