"""An edition's items as vectors: document frequencies, boilerplate, unit vectors, rare features. Pure.

In a batch of `MIN_BATCH_FOR_IDF` items or more (an edition, not a pair), each feature is weighed
by its inverse document frequency, and a feature found in most items of one source is that
source's boilerplate ("Leia mais no Massa News!") and is dropped for it. Each item then has two
unit vectors: words and numbers (how items that share a language are compared), names and numbers
(how items in two languages are).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

from digest.cluster.features import (
    ClusterInput,
    LowerCaseUses,
    _Profile,
    _profile,
    common_nouns,
    country_names,
    lower_case_uses,
    lower_case_words,
)

MIN_BATCH_FOR_IDF = 10  # below this, document frequencies say nothing and every feature weighs its kind
SMALL_BATCH = 40  # below this, a batch also counts the week before it (`Background`) into its frequencies
BOILERPLATE_SHARE = 0.4  # a feature in this share of one source's items (of at least 5) is its boilerplate


def _weak_number(feature: str) -> bool:
    # Days of the month and years are in every dated text: they tell no story apart. So is a whole
    # date ("06-01-2009", one token since `words.tokens_of_normalised` keeps it whole); a score
    # ("5-0") of two parts is not.
    if feature[0] != "d":
        return False
    parts = feature[2:].replace("/", "-").split("-")
    return (len(parts) == 1 or len(parts) == 3) and all(
        p.isdigit() and (int(p) <= 31 or 1900 <= int(p) <= 2100) for p in parts
    )


def _norm(vec: dict[str, float]) -> float:
    """What `_unit` divides a vector by."""
    return math.hypot(*vec.values()) or 1.0


def _unit(vec: dict[str, float]) -> dict[str, float]:
    return _unit_of(list(vec), list(vec.values()))


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    # The smaller vector's features looked up in the other (a native loop when compiled: no set of the
    # shared keys is made); fsum is exact, so neither the order nor which one is walked changes the sum.
    if len(a) > len(b):
        a, b = b, a
    products: list[float] = []
    for f, w in a.items():
        v = b.get(f)
        if v is not None:
            products.append(w * v)
    return math.fsum(products)


def _scaled_cosine(a: dict[str, float], a_norm: float, b: dict[str, float], b_norm: float) -> float:
    """`_cosine` of `a / a_norm` and `b / b_norm` without making them: a story's unit vector would be
    made anew after each merge, for the few features it shares with each candidate. To the last bit
    what `_cosine(_unit(a), _unit(b))` gives when the norms are `_norm`'s: each weight is divided by
    its norm first, as `_unit` does, then the two quotients multiplied (x / 1.0 is x: a one-item
    story's vector, a unit vector already, is passed with 1.0)."""
    if a_norm == 1.0 and b_norm == 1.0:
        return _cosine(a, b)
    if len(a) > len(b):  # the smaller walked, as `_cosine` does (a product of two quotients either way round)
        a, a_norm, b, b_norm = b, b_norm, a, a_norm
    products: list[float] = []
    for f, w in a.items():
        v = b.get(f)
        if v is not None:
            products.append(w / a_norm * (v / b_norm))
    return math.fsum(products)


def _word_unit(
    features: dict[str, float], idf: dict[str, float], left_out: set[str], frequent: frozenset[str]
) -> tuple[dict[str, float], frozenset[str]]:
    """The unit vector of features[f] * idf[f] of the features not in `left_out`, in their order, and
    the rare ones among them (those not in `frequent`).

    Loops written for the compiled module (`hatch_build.py`), where a loop over a dict's items is
    native code: one pass over the features, and a lookup of idf alone. Mapped in C, as they were,
    the loops looked up each feature's weight again: the batch took 38% more instructions. The same
    products, norm and quotients as before: the same floats. The rare features are picked in the same
    pass, while each feature's string is in the cache: picked from the vectors afterwards, 50,000
    items' 2 million features were read from memory once more."""
    keys: list[str] = []
    weights: list[float] = []
    rare: list[str] = []
    for f, w in features.items():
        if f not in left_out:
            keys.append(f)
            weights.append(w * idf[f])
            if f not in frequent:
                rare.append(f)
    return _unit_of(keys, weights), frozenset(rare)


def _unit_of(keys: list[str], weights: list[float]) -> dict[str, float]:
    """{keys[k]: weights[k] / norm}: `_unit` of a vector given as its keys and weights."""
    norm = math.hypot(*weights) or 1.0
    vector: dict[str, float] = {}
    for k in range(len(keys)):
        vector[keys[k]] = weights[k] / norm
    return vector


def _carrier(item: ClusterInput) -> str:
    """The feed an item came through, whose boilerplate it carries: an aggregator's feed (`via`)
    for the items it carries from many sites ("Москва" in every item of Yandex's Moscow feed),
    else its source."""
    via = getattr(item, "via", None)
    return via if isinstance(via, str) and via else item.source


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
    # Name keys that tie no two languages' reports: a common noun's (a word the batch also writes in
    # lower case, `features.common_nouns`) and a country's (`_countries`).
    no_anchors: frozenset[str] = frozenset()
    titles: Sequence[str] = ()  # by rank: one outlet's episodes of a series are told apart by them
    langs: Sequence[str] = ()  # by rank: each item's language
    # The common nouns' keys of `no_anchors` alone: a capital a word the batch writes in lower case
    # takes, which is no rare name to spare two reports of one language their rare words either.
    common: frozenset[str] = frozenset()
    # Each item's rare features of `words` and of `names` (by rank): its features less the batch's
    # features that are not `rare` (a few hundred where `rare` has tens of thousands), found by
    # probing a set that stays in the cache instead of one that does not.
    rare_words: list[frozenset[str]] = field(default_factory=list)
    rare_names: list[frozenset[str]] = field(default_factory=list)


_COUNT_ONLY = 4096  # per source, count only the batch's features common enough to be boilerplate, up to this many


def _whole_names(
    profiles: Sequence[_Profile],
    df: Counter[str],
    features_of: list[dict[str, float]],
    others_of: list[list[str]],
    counted: LowerCaseUses,
) -> None:
    """Give each item the two-word names its capitals alone could not tell (`_Profile.latent_pairs`)
    where another item of the batch writes the same two words as a name, and no item writes either
    in lower case: "Fashion Designer Kate Spade Dead at 55" (a title-case headline) and "Kate Spade's
    suicide note was ..." (a sentence's first word) name Kate Spade as "... sister-in-law Kate Spade's
    ..." does. One word alone is not enough ("Pakistan: ..." opening a headline, "Agencies" in a
    title-case one). The profiles are left as they are (a profile may be compared in other batches):
    an item that gains a name gets new features and others in `features_of` and `others_of`, and
    `df` counts them. `counted`: `features.lower_case_uses` of `profiles` and `df`."""
    latent = [rank for rank, p in enumerate(profiles) if p.latent_pairs]
    if not latent:
        return
    known = set(chain.from_iterable([p.name_pairs for p in profiles]))
    if not known:
        return
    lower = lower_case_words(counted)
    for rank in latent:
        p = profiles[rank]
        features: dict[str, float] | None = None
        others: list[str] = []
        for k1, w1, k2, w2, weight in p.latent_pairs:
            if (w1, w2) not in known or w1 in lower or w2 in lower:
                continue
            for key in (k1, k2):
                had = (features or p.features).get(key, 0.0)
                if weight <= had:
                    continue
                if features is None:
                    features, others = dict(p.features), list(p.others)
                if not had:
                    others.append(key)
                    df[key] += 1
                features[key] = weight
        if features is not None:
            features_of[rank], others_of[rank] = features, others


def _countries(profiles: Sequence[_Profile]) -> frozenset[str]:
    """The name keys that items of the batch write a country's name with (`features.country_names`):
    no anchor of a story across languages. Read off the names the items write, not every key a
    country's name has: "Palaos" (Palau) and "Polícia" are keyed alike, and a batch where no item
    names Palau keeps "Polícia" a name (a common noun's rule may still take it)."""
    known = country_names()
    # The pairs that name a country found in C, in the items' order: the few that do are unpacked.
    named = filter(known.__contains__, chain.from_iterable([p.names for p in profiles]))
    return frozenset([key for key, _ in named])


@dataclass(frozen=True, slots=True)
class Background:
    """How many earlier items (`n`) have each feature (`df`): counted into the batch's document
    frequencies, never grouped."""

    df: Counter[str]
    n: int


def background_counts(items: Sequence[ClusterInput]) -> Background:
    """The document frequencies of earlier items, for batches too small for their own (`_batch`)."""
    return Background(Counter(chain.from_iterable([_profile(item).features for item in items])), len(items))


def _batch(
    items: Sequence[ClusterInput],
    profiles: Sequence[_Profile],
    background: Background | None = None,
    *,
    by_frequency: bool = True,
) -> _Batch:
    """The batch's vectors; `by_frequency=False` weighs every feature by its kind alone, whatever
    the batch's size (one story's reports, where the words they all share are the point)."""
    n = len(items)
    # Counted in C over all the items' features at once (a Counter counts in first-seen order either way).
    df: Counter[str] = Counter(chain.from_iterable([p.features for p in profiles]))
    # A small batch (under `SMALL_BATCH` items: a small site's day; `cluster.cluster` passes a
    # background for no other) counts the background's items too: a feature's weight counts the
    # earlier items that have it. Which features are rare (and every test that reads `df`) is
    # still the batch's own: rare is what few of the day's items share. A larger batch is left as
    # it is: measured on the labelled days' day-long windows, their own earlier items changed
    # nothing for the better there (a false merge, and no pair gained in January), while batches
    # of under 40 items went from 292 true pairs to 308 in January and from 15 to 142 in June,
    # none false (`tests/test_cluster_corpus.py`).
    seen, seen_n = (background.df, background.n) if background is not None else (None, 0)
    use_idf = by_frequency and n + seen_n >= MIN_BATCH_FOR_IDF
    features_of = [p.features for p in profiles]
    others_of = [p.others for p in profiles]
    # Counted once for `_whole_names` and `common_nouns`: the words they count are no name keys, the
    # only features whose df `_whole_names` changes.
    counted = lower_case_uses(profiles, df)
    if use_idf:
        _whole_names(profiles, df, features_of, others_of, counted)
    boilerplate: dict[str, set[str]] = {}
    if use_idf:
        per_source: dict[str, list[dict[str, float]]] = defaultdict(list)
        for item, features in zip(items, features_of, strict=True):
            per_source[_carrier(item)].append(features)
        # A source's boilerplate is in a share of its items, so in at least that many of the batch's:
        # only the batch's commonest features can be, and only those are counted per source (a set
        # intersection per item in C, instead of counting every feature of every item again).
        ranked = df.most_common()  # commonest first
        below = [-k for _, k in ranked]  # ascending, for bisect
        prefixes: dict[int, frozenset[str]] = {}
        for source, members in per_source.items():
            if len(members) >= 5:
                limit = BOILERPLATE_SHARE * len(members)
                cut = bisect_right(below, -max(limit, 3.0))  # the features in that many items or more
                if cut <= _COUNT_ONLY:
                    can_be = prefixes.get(cut)
                    if can_be is None:
                        can_be = prefixes[cut] = frozenset([f for f, _ in ranked[:cut]])
                    counts = Counter(chain.from_iterable([can_be.intersection(m) for m in members]))
                else:  # a small source in a small batch: counting everything costs little
                    counts = Counter(chain.from_iterable(members))
                boilerplate[source] = {f for f, k in counts.items() if k >= limit and k > 2}
    if seen is None:
        idf = {f: math.log((n + 1) / (k + 0.5)) if use_idf else 1.0 for f, k in df.items()}
    else:
        idf = {f: math.log((n + seen_n + 1) / (k + seen[f] + 0.5)) if use_idf else 1.0 for f, k in df.items()}
    # In a handful of items no feature is common: every shared one counts.
    rare_limit = max(3.0, math.sqrt(n)) if use_idf else float(n)
    rare_features: list[str] = []
    frequent_features: list[str] = []
    for f, k in df.items():
        (rare_features if k <= rare_limit and not _weak_number(f) else frequent_features).append(f)
    frequent = frozenset(frequent_features)
    word_vectors: list[dict[str, float]] = []
    name_vectors: list[dict[str, float]] = []
    rare_words: list[frozenset[str]] = []
    rare_names: list[frozenset[str]] = []
    for item, features, item_others in zip(items, features_of, others_of, strict=True):  # every feature of every item
        drop = boilerplate.get(_carrier(item))
        # Words and numbers; names and numbers: each a unit vector of w * idf[f], its features in the item's order.
        others = [f for f in item_others if f not in drop] if drop else item_others  # numbers and names: a few
        names = {f for f in others if f[0] == "n"}
        # One pass over the features, leaving out the boilerplate and the names at once.
        words_vector, rare = _word_unit(features, idf, drop | names if drop else names, frequent)
        word_vectors.append(words_vector)
        rare_words.append(rare)
        name_vectors.append(_unit_of(others, [features[f] * idf[f] for f in others]))
        rare_names.append(frozenset([f for f in others if f not in frequent]))
    return _Batch(
        n,
        use_idf,
        df,
        rare_limit,
        word_vectors,
        name_vectors,
        frozenset(rare_features),
        (common := common_nouns(counted)) | _countries(profiles),
        [i.title for i in items],
        [p.lang for p in profiles],
        common=common,
        rare_words=rare_words,
        rare_names=rare_names,
    )
