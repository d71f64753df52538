"""An edition's items as vectors: document frequencies, boilerplate, unit vectors, rare features. Pure.

In a batch of `MIN_BATCH_FOR_IDF` items or more (an edition, not a pair), each feature is weighed
by its inverse document frequency, and a feature found in most items of one source is that
source's boilerplate ("Leia mais no Massa News!") and is dropped for it. Each item then has two
unit vectors: words and numbers (how items that share a language are compared), names and numbers
(how items in two languages are).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from digest.cluster.features import ClusterInput, _Profile

MIN_BATCH_FOR_IDF = 40  # below this, document frequencies say nothing and every feature weighs its kind
BOILERPLATE_SHARE = 0.4  # a feature in this share of one source's items (of at least 5) is its boilerplate


def _weak_number(feature: str) -> bool:
    # Days of the month and years are in every dated text: they tell no story apart.
    digits = feature[2:]
    return feature[0] == "d" and digits.isdigit() and (int(digits) <= 31 or 1900 <= int(digits) <= 2100)


def _unit(vec: dict[str, float]) -> dict[str, float]:
    norm = math.hypot(*vec.values()) or 1.0
    return {f: v / norm for f, v in vec.items()}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    # The shared keys, found in C; fsum is exact, so the result does not depend on the set's order.
    return math.fsum([a[f] * b[f] for f in a.keys() & b.keys()])


@dataclass(slots=True)
class _Batch:
    """Document frequencies of one batch and each item's two unit vectors."""

    n: int
    idf: bool  # whether features are weighed by document frequency (a batch large enough)
    df: Counter[str]
    rare_limit: float
    words: list[dict[str, float]]  # words and numbers
    names: list[dict[str, float]]  # names and numbers

    rare: frozenset[str]


def _batch(items: Sequence[ClusterInput], profiles: Sequence[_Profile]) -> _Batch:
    n = len(items)
    df: Counter[str] = Counter()
    for p in profiles:
        df.update(p.features.keys())
    use_idf = n >= MIN_BATCH_FOR_IDF
    boilerplate: dict[str, set[str]] = {}
    if use_idf:
        per_source: dict[str, Counter[str]] = defaultdict(Counter)
        sizes: Counter[str] = Counter()
        for item, p in zip(items, profiles, strict=True):
            per_source[item.source].update(p.features.keys())
            sizes[item.source] += 1
        for source, counts in per_source.items():
            if sizes[source] >= 5:
                limit = BOILERPLATE_SHARE * sizes[source]
                boilerplate[source] = {f for f, k in counts.items() if k >= limit and k > 2}
    idf = {f: math.log((n + 1) / (k + 0.5)) if use_idf else 1.0 for f, k in df.items()}
    word_vectors, name_vectors = [], []
    hypot = math.hypot
    for item, p in zip(items, profiles, strict=True):  # this runs for every feature of every item
        drop = boilerplate.get(item.source)
        if drop:
            weighed = {f: w * idf[f] for f, w in p.features.items() if f not in drop}
        else:
            weighed = {f: w * idf[f] for f, w in p.features.items()}
        # Words and numbers; names and numbers. Each a unit vector.
        norm = hypot(*[w for f, w in weighed.items() if f[0] != "n"]) or 1.0
        word_vectors.append({f: w / norm for f, w in weighed.items() if f[0] != "n"})
        norm = hypot(*[w for f, w in weighed.items() if f[0] != "w"]) or 1.0
        name_vectors.append({f: w / norm for f, w in weighed.items() if f[0] != "w"})
    # In a handful of items no feature is common: every shared one counts.
    rare_limit = max(3.0, math.sqrt(n)) if use_idf else float(n)
    rare = frozenset(f for f, k in df.items() if k <= rare_limit and not _weak_number(f))
    return _Batch(n, use_idf, df, rare_limit, word_vectors, name_vectors, rare)
