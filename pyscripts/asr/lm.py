"""Phone n-gram LM: training with kaldingram (Kneser-Ney), perplexity from the ARPA file, G.fst.

Perplexity follows SRILM's convention: every sentence is scored from <s> through </s>; words not
in the LM (OOVs) are skipped and counted, and an OOV in the history makes the next word back off;
ppl = 10 ** (-sum log10 p / (words - OOVs + sentences)).
"""
import argparse
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from pyscripts.kaldi.datadir import read_list_table
from pyscripts.errors import DataError, cli_main
from pyscripts.kaldi.tables import read_symbols

log = logging.getLogger(__name__)


class ArpaLM:
    """An ARPA back-off n-gram model: {ngram tuple: (log10 prob, log10 back-off weight)}."""

    def __init__(self, ngrams: dict[tuple[str, ...], tuple[float, float]], order: int) -> None:
        self.ngrams = ngrams
        self.order = order
        self.vocab = {ng[0] for ng in ngrams if len(ng) == 1}

    def log10_prob(self, history: Sequence[str], word: str) -> float:
        """log10 P(word | history) with Katz-style back-off through the ARPA back-off weights."""
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            entry = self.ngrams.get(history + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not history:
                raise KeyError(word)
            ctx = self.ngrams.get(history)
            backoff += ctx[1] if ctx is not None else 0.0
            history = history[1:]


def read_arpa(path: Path | str) -> ArpaLM:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ARPA LM not found")
    ngrams, counts, section = {}, {}, None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1:line.index("-")])
        elif section == "data" and line.startswith("ngram "):
            n, c = line[6:].split("=")
            counts[int(n)] = int(c)
        elif isinstance(section, int):
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise DataError(f"{path}:{lineno}: malformed {section}-gram line {line!r}")
            if len(parts) == section + 2 and section == max(counts, default=0):
                raise DataError(f"{path}:{lineno}: a highest-order n-gram cannot have a back-off weight")
            words = tuple(parts[1:section + 1])
            bow = float(parts[section + 1]) if len(parts) == section + 2 else 0.0
            ngrams[words] = (float(parts[0]), bow)
        else:
            raise DataError(f"{path}:{lineno}: unexpected line {line!r}; is it an ARPA file?")
    if not counts:
        raise DataError(f"{path}: no \\data\\ section; is it an ARPA file?")
    for n, c in counts.items():
        found = sum(1 for ng in ngrams if len(ng) == n)
        if found != c:
            raise DataError(f"{path}: header says {c} {n}-grams, file has {found}")
    return ArpaLM(ngrams, max(counts))


def perplexity(lm: ArpaLM, sentences: list[list[str]]) -> tuple[float, float, int, int, int]:
    """(ppl, log10 prob, words, OOVs, sentences) of token lists, SRILM style."""
    total, n_words, n_oov = 0.0, 0, 0
    for sent in sentences:
        history = ["<s>"]
        for word in list(sent) + ["</s>"]:
            if word != "</s>":
                n_words += 1
            if word not in lm.vocab:
                n_oov += 1
                history.append(word)
                continue
            total += lm.log10_prob(history, word)
            history.append(word)
    denom = n_words - n_oov + len(sentences)
    if denom == 0:
        raise DataError("perplexity of an empty text")
    return 10 ** (-total / denom), total, n_words, n_oov, len(sentences)


def transcripts(text_file: Path | str) -> list[list[str]]:
    """Token lists of a Kaldi text file (utterance id dropped)."""
    table = read_list_table(text_file)
    empty = [u for u, t in table.items() if not t]
    if empty:
        raise DataError(f"{text_file}: empty transcript for utterance {empty[0]}")
    return list(table.values())


def check_phones(text_file: Path | str, words_txt: Path | str) -> None:
    """Every token of the transcripts is a word of the lang dir (its phones): an unknown phone is named here
    with its utterance and file, not later as a disagreement of the LM and the lang dir."""
    words = set(read_symbols(words_txt)) - {"<eps>", "<s>", "</s>"}
    for utt, tokens in read_list_table(text_file).items():
        unknown = [t for t in tokens if t not in words or t.startswith("#")]
        if unknown:
            raise DataError(f"{text_file}: utterance {utt} has the phone {unknown[0]!r}, which is not in {words_txt} "
                            "(the lang dir's phones, from the phone map): correct the transcript, or add the "
                            "phone to conf/phones.60-48-39.map and redo the data preparation and the lang dir")


def train_arpa(text_file: Path | str, arpa: Path | str, order: int = 2) -> None:
    """Kneser-Ney ARPA LM with kaldingram on the transcripts of a Kaldi text file."""
    exe = shutil.which("kaldingram")
    if exe is None:
        raise DataError("kaldingram not found; run utils/setup_env.sh (it is in requirements.txt)")
    sents = transcripts(text_file)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.writelines(" ".join(s) + "\n" for s in sents)
        corpus = f.name
    try:
        proc = subprocess.run([exe, "train", "--ngram-order", str(order), "--text", corpus, "--lm",
                               str(arpa)], capture_output=True, text=True)
    finally:
        Path(corpus).unlink()
    if proc.returncode != 0:
        raise DataError(f"kaldingram train failed on {text_file}:\n{proc.stderr[-2000:]}")
    log.info("trained %d-gram on %d sentences, %d tokens -> %s", order, len(sents),
             sum(len(s) for s in sents), arpa)


def arpa_to_g_fst(arpa: Path | str, words_txt: Path | str, g_fst: Path | str) -> None:
    """G.fst (binary OpenFst, arcs sorted on input) from an ARPA LM, #0 on the back-off arcs."""
    import kaldi_hmm_gmm  # noqa: F401  (must be imported before kaldifst/kaldilm)
    import kaldifst
    import kaldilm
    words = read_symbols(words_txt)
    for needed in ("#0", "<s>", "</s>"):
        if needed not in words:
            raise DataError(f"{words_txt}: has no {needed}; make the lang dir with utils/prepare_lang.sh")
    lm = read_arpa(arpa)
    unknown = sorted(lm.vocab - set(words) - {"<s>", "</s>"})
    if unknown:
        raise DataError(f"{arpa}: words not in {words_txt}: {unknown[:5]}; the LM and lang dir disagree: "
                        "train the LM on transcripts of the lang dir's words (python3 -m pyscripts.asr.lm train "
                        "--words WORDS_TXT names the utterance that has another)")
    text = kaldilm.arpa2fst(input_arpa=str(arpa), disambig_symbol="#0", read_symbol_table=str(words_txt))
    fst = kaldifst.compile(s=text, acceptor=False)
    kaldifst.arcsort(fst, sort_type="ilabel")
    fst.write(str(g_fst))
    log.info("%s: %d states, %d arcs", g_fst, fst.num_states,
             sum(fst.num_arcs(s) for s in range(fst.num_states)))


@cli_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="ARPA LM from a data dir's text, with dev perplexity")
    t.add_argument("--order", type=int, default=2)
    t.add_argument("--dev-text", help="Kaldi text file to report perplexity on")
    t.add_argument("--words", help="the lang dir's words.txt: every transcript token must be one of them")
    t.add_argument("train_text")
    t.add_argument("arpa")
    g = sub.add_parser("arpa2fst", help="G.fst from an ARPA LM")
    g.add_argument("arpa")
    g.add_argument("words_txt")
    g.add_argument("g_fst")
    args = parser.parse_args()
    if args.cmd == "train":
        for text in (args.train_text, args.dev_text) if args.words else ():
            if text:  # an unknown phone named with its utterance, before it reaches the LM
                check_phones(text, args.words)
        train_arpa(args.train_text, args.arpa, args.order)
        lm = read_arpa(args.arpa)
        for name, text in (("train", args.train_text), ("dev", args.dev_text)):
            if text:
                ppl, lp, nw, noov, ns = perplexity(lm, transcripts(text))
                log.info("%s perplexity %.3f (%s: %d sentences, %d phones, %d OOVs, log10 prob %.2f)",
                         name, ppl, text, ns, nw, noov, lp)
    else:
        arpa_to_g_fst(args.arpa, args.words_txt, args.g_fst)


if __name__ == "__main__":
    main()
