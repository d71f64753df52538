"""Which items are compared at all: candidate pairs blocked on rare features. Pure.

Candidate pairs come from an inverted index on rare features only (a merge needs one shared, see
`digest.cluster.stories`), so cost follows the pairs that share a rare feature, not n^2.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import chain

from digest.cluster.vectors import _Batch

SIGNATURE = 12  # an item's rarest features that candidate pairs are blocked on, in a batch larger than:
FULL_SIGNATURE_ITEMS = 5000  # a batch this large or smaller (an edition's) blocks on all of them
_BLOCK_LIMIT = 60  # items sharing a pair of rare features beyond this are a subject, not a story


def _candidates(
    batch: _Batch,
    rare_words: Sequence[frozenset[str]],
    rare_names: Sequence[frozenset[str]],
    langs: Sequence[str] = (),
) -> dict[int, list[int]]:
    """Which items may be compared: those that share a pair of features among each one's rarest.

    A merge needs two shared rare features at least (an event word and a name, or three words), and a
    story's own words are the rarest of its items' (df of a few), so blocking on pairs of each item's
    `SIGNATURE` rarest features (seen in two items at least) finds them while two items that share one
    ordinary word are never compared: the cost follows the number of items, not its square. That cap
    is for large batches (the bench's 50,000); a batch of `FULL_SIGNATURE_ITEMS` or fewer, an
    edition's, blocks on all of an item's rare features. Capped, a report with a long summary of
    rarer words leaves its headline's words out, and which ones depends on the rest of the batch: a
    live edition of the labelled days' feeds split the intelligence report because one unrelated
    item made "Russia" tie for the NYT report's twelfth place and sort after it (5,000 synthetic
    items take 1.9 s instead of 1.5 s).
    `rare_words` and `rare_names` are each item's rare features of `batch.words` and `batch.names`.

    Two items of two languages (`langs`, each item's) that share two rare names or figures which
    items of both languages have are compared too, wherever those rank: in a large batch an item's own
    language's words, and a German item's nouns (capitalised, so read as names), rank rarer than
    the names two languages share. In the whole corpus as one batch (2,586 items) SPIEGEL ONLINE's
    report of the Fort Lauderdale shooting ranked "Fort" and "Lauderdale" 13th and 15th among its
    features and was compared with no English or French report of it.
    """
    # Rare features seen twice or more, rarest first (ties by name, so that every item orders alike),
    # interned to their place in that order.
    df = batch.df
    signature = SIGNATURE if batch.n > FULL_SIGNATURE_ITEMS else None
    place = {f: k for k, (_, f) in enumerate(sorted((df[f], f) for f in batch.rare if df[f] > 1))}
    # Each item's postings and its place in each: the items after it there are the later ones, found
    # without a search or a second lookup of the feature.
    signatures: list[tuple[list[list[int]], list[int]]] = []
    # A feature's place -> the items with it in their signature: a list, read by index in C.
    postings: list[list[int]] = [[] for _ in range(len(place))]
    keys, place_of, posting = place.keys(), place.__getitem__, postings.__getitem__
    for rank, (words, names) in enumerate(zip(rare_words, rare_names, strict=True)):
        found = keys & words  # set operations in C, over the item's rare features only
        found |= keys & names
        mine = list(map(posting, sorted(map(place_of, found))[:signature]))
        at = list(map(len, mine))
        for p in mine:
            p.append(rank)
        signatures.append((mine, at))
    # Two items share a pair of signature features when they meet in two postings: counting them item
    # by item costs the postings' lengths, not one list per pair of features. A feature in the
    # signatures of more than `_BLOCK_LIMIT` items is a subject, not a story: it does not block.
    # Postings are in rank order: each item counts only the later items of its lists (a pair is found
    # once, from its earlier item) and the pair is recorded for both.
    neighbours: dict[int, list[int]] = defaultdict(list)
    for rank, (mine, at) in enumerate(signatures):
        lists = [p[i + 1 :] for p, i in zip(mine, at, strict=True) if 1 < len(p) <= _BLOCK_LIMIT]
        if len(lists) < 2:
            continue
        counts = Counter(chain.from_iterable(lists))
        near = [other for other, shared in counts.items() if shared > 1]
        if near:
            neighbours[rank].extend(near)
            for other in near:
                neighbours[other].append(rank)
    if len(set(langs)) > 1:
        _across(rare_names, langs, frozenset(place), neighbours)
    return dict(neighbours)


def _across(
    rare_names: Sequence[frozenset[str]],
    langs: Sequence[str],
    seen_twice: frozenset[str],
    neighbours: dict[int, list[int]],
) -> None:
    """Add the pairs of items of two languages that share two rare names or figures (an item's
    `rare_names`: what its names vector holds) that items of both languages write."""
    first_lang: dict[str, str] = {}
    bilingual: set[str] = set()
    for names, lang in zip(rare_names, langs, strict=True):
        for f in seen_twice.intersection(names):
            if first_lang.setdefault(f, lang) != lang:
                bilingual.add(f)
    if not bilingual:
        return
    holders: dict[str, list[int]] = defaultdict(list)
    anchors = [sorted(bilingual.intersection(names)) for names in rare_names]
    for rank, mine in enumerate(anchors):
        if len(mine) > 1:
            for f in mine:
                holders[f].append(rank)
    for rank, mine in enumerate(anchors):
        if len(mine) < 2:
            continue
        lang = langs[rank]
        counts = Counter(
            chain.from_iterable(
                [other for other in holders[f] if other > rank and langs[other] != lang]
                for f in mine
                if len(holders[f]) <= _BLOCK_LIMIT
            )
        )
        paired = [other for other, shared in counts.items() if shared > 1]
        if paired:
            known = set(neighbours.get(rank, ()))
            for other in paired:
                if other not in known:
                    neighbours[rank].append(other)
                    neighbours[other].append(rank)
