"""ROUGE-N F1 (Lin, 2004) for any script: the same counts as Google's rouge-score, without its tokenizer.

rouge-score's tokenizer keeps only [a-z0-9], so Russian (or "Übernahme") text loses its words. Here a
token is a run of Unicode letters and digits, casefolded; on lower-case ASCII text the two agree, which
tests/test_rouge.py checks against rouge-score itself.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def ngrams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def rouge_n(candidate: str, reference: str, n: int) -> float:
    """F1 of clipped n-gram overlap between a candidate and one reference; 0 when either is empty."""
    cand, ref = ngrams(tokens(candidate), n), ngrams(tokens(reference), n)
    overlap = sum((cand & ref).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(cand.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)
