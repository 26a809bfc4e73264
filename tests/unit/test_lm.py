"""Bigram phone LM: ARPA reading, back-off probabilities, perplexity, G.fst (pyscripts/asr/lm.py)."""
import kaldi_hmm_gmm  # noqa: F401,I001  (before kaldifst)
import math
import re
import subprocess
from itertools import chain

import kaldifst
import pytest

from pyscripts.asr.lm import arpa_to_g_fst, perplexity, read_arpa, train_arpa

# P(a)=.4 P(b)=.3 P(</s>)=.2 P(c)=.1; explicit bigrams P(a|<s>)=.5, P(b|a)=.6, P(</s>|b)=.5; back-off
# weights (1 - explicit mass) / (1 - unigram mass of the explicit words): <s> .5/.6, a .4/.7, b .5/.8.
HAND_ARPA = f"""\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-99\t<s>\t{math.log10(0.5 / 0.6):.7f}
{math.log10(0.4):.7f}\ta\t{math.log10(0.4 / 0.7):.7f}
{math.log10(0.3):.7f}\tb\t{math.log10(0.5 / 0.8):.7f}
{math.log10(0.1):.7f}\tc
{math.log10(0.2):.7f}\t</s>

\\2-grams:
{math.log10(0.5):.7f}\t<s> a
{math.log10(0.6):.7f}\ta b
{math.log10(0.5):.7f}\tb </s>

\\end\\
"""


def test_backoff_probabilities_and_perplexity_by_hand(tmp_path):
    (tmp_path / "lm.arpa").write_text(HAND_ARPA)
    lm = read_arpa(tmp_path / "lm.arpa")
    assert lm.order == 2
    p = lambda h, w: 10 ** lm.log10_prob(h, w)  # noqa: E731
    assert p(["<s>"], "a") == pytest.approx(0.5)
    assert p(["<s>"], "c") == pytest.approx(0.5 / 0.6 * 0.1)
    assert p(["a"], "</s>") == pytest.approx(0.4 / 0.7 * 0.2)
    assert p(["c"], "a") == pytest.approx(0.4)  # c has no back-off weight: 1
    # "a b": .5 * .6 * .5; "c a": (.5/.6 * .1) * .4 * (.4/.7 * .2); 4 words + 2 sentence ends.
    logprob = math.log10(0.5 * 0.6 * 0.5) + math.log10(0.5 / 0.6 * 0.1 * 0.4 * 0.4 / 0.7 * 0.2)
    ppl, total, n_words, n_oov, n_sents = perplexity(lm, [["a", "b"], ["c", "a"]])
    assert (n_words, n_oov, n_sents) == (4, 0, 2)
    assert total == pytest.approx(logprob, abs=1e-5)
    assert ppl == pytest.approx(10 ** (-logprob / 6), rel=1e-4)
    # An OOV is skipped and counted; the word after it backs off to its unigram.
    ppl, total, n_words, n_oov, _ = perplexity(lm, [["a", "zz", "b"]])
    assert (n_words, n_oov) == (3, 1)
    assert total == pytest.approx(math.log10(0.5 * 0.3 * 0.5), abs=1e-5)
    assert ppl == pytest.approx(10 ** (-total / 3))


def sums_per_history(lm):
    words = sorted(lm.vocab - {"<s>"})
    return {h: sum(10 ** lm.log10_prob([h], w) for w in words) for h in sorted(lm.vocab - {"</s>"})}


def test_hand_lm_sums_to_one(tmp_path):
    (tmp_path / "lm.arpa").write_text(HAND_ARPA)
    for history, total in sums_per_history(read_arpa(tmp_path / "lm.arpa")).items():
        assert total == pytest.approx(1.0, abs=1e-5), history


def test_kaldingram_bigram_normalised_and_agrees_on_perplexity(tmp_path):
    text = ["sil aa b sil", "sil b aa aa sil", "sil aa k sil", "sil k aa b iy sil", "sil iy iy k sil"]
    (tmp_path / "text").write_text("".join(f"u{i} {t}\n" for i, t in enumerate(text)))
    train_arpa(tmp_path / "text", tmp_path / "lm.arpa", order=2)
    lm = read_arpa(tmp_path / "lm.arpa")
    assert lm.order == 2 and lm.vocab == {"<s>", "</s>", "sil", "aa", "b", "k", "iy"}
    for history, total in sums_per_history(lm).items():
        assert total == pytest.approx(1.0, abs=1e-4), history
    # Kneser-Ney leaves mass for unseen bigrams.
    assert 10 ** lm.log10_prob(["b"], "k") > 0
    dev = [["sil", "k", "aa", "sil"], ["sil", "b", "iy", "aa", "sil"]]
    (tmp_path / "dev.txt").write_text("".join(" ".join(s) + "\n" for s in dev))
    out = subprocess.run(["kaldingram", "ppl", "--lm", str(tmp_path / "lm.arpa"), "--text",
                          str(tmp_path / "dev.txt")], capture_output=True, text=True, check=True)
    theirs = float(re.search(r"ppl= *([0-9.]+)", out.stdout + out.stderr).group(1))
    assert perplexity(lm, dev)[0] == pytest.approx(theirs, rel=1e-3)


def test_g_fst_carries_the_lm(tmp_path):
    (tmp_path / "lm.arpa").write_text(HAND_ARPA)
    symbols = ["<eps>", "a", "b", "c", "#0", "<s>", "</s>"]
    (tmp_path / "words.txt").write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)))
    arpa_to_g_fst(tmp_path / "lm.arpa", tmp_path / "words.txt", tmp_path / "G.fst")
    g = kaldifst.StdVectorFst.read(str(tmp_path / "G.fst"))
    out = {s: {a.ilabel: (a.olabel, a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(g, s)}
           for s in kaldifst.StateIterator(g)}
    start = g.start
    # From <s>: a with -ln .5; the back-off arc has input #0 (4) and output epsilon.
    assert out[start][1][1] == pytest.approx(-math.log(0.5), abs=1e-4)
    assert out[start][4][0] == 0 and out[start][4][1] == pytest.approx(-math.log(0.5 / 0.6), abs=1e-4)
    after_a = out[start][1][2]
    assert out[after_a][2][1] == pytest.approx(-math.log(0.6), abs=1e-4)
    after_b = out[after_a][2][2]
    assert g.final(after_b).value == pytest.approx(-math.log(0.5), abs=1e-4)  # </s> after b
    labels = set(chain.from_iterable(out[s].keys() for s in out))
    assert 5 not in labels and 6 not in labels  # <s> and </s> are not arcs
