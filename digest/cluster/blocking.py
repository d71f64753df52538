"""Which items are compared at all: candidate pairs blocked on rare features. Pure.

Candidate pairs come from an inverted index on rare features only (a merge needs one shared, see
`digest.cluster.stories`), so cost follows the pairs that share a rare feature, not n^2.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import chain, repeat
from typing import TYPE_CHECKING

from digest.cluster.vectors import _Batch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SIGNATURE = 12  # an item's rarest features that candidate pairs are blocked on, in a batch larger than:
FULL_SIGNATURE_ITEMS = 5000  # a batch this large or smaller (an edition's) blocks on all of them
_BLOCK_LIMIT = 60  # items sharing a pair of rare features beyond this are a subject, not a story
_PAIRS_AT_ONCE = 1 << 20  # candidate pairs made in arrays at once (`_shared_twice`): 8 MB per array


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
    # Sorted by name, then stably by df: the order of (df, name) without a tuple per feature, whose
    # comparisons went to the names for most of them (ties of df 2 or 3): half the time.
    twice = sorted([f for f in batch.rare if df[f] > 1])
    twice.sort(key=df.__getitem__)
    place = dict(zip(twice, range(len(twice)), strict=True))
    neighbours: dict[int, list[int]] = defaultdict(list, _shared_twice(rare_words, rare_names, place, signature))
    if len(set(langs)) > 1:
        _across(rare_names, langs, frozenset(place), neighbours)
    return dict(neighbours)


def _shared_twice(
    rare_words: Sequence[frozenset[str]],
    rare_names: Sequence[frozenset[str]],
    place: dict[str, int],
    signature: int | None,
) -> dict[int, list[int]]:
    """Each item -> the items that share two of their signatures' features or more: an item's
    signature is the `signature` first (all when None) of its rare words' and names' places in
    `place`, and a feature in the signatures of more than `_BLOCK_LIMIT` items does not count.

    Done in arrays, not item by item: every pair of items that meet in a feature's posting is made,
    and the pairs made twice are found by sorting them (4.3 million pairs at 50,000 synthetic items,
    three times faster than counting each item's later ones in a `Counter`)."""
    import numpy as np  # here: only clustering a batch needs it, and `digest poll` starts without it

    n = len(rare_words)
    if not n or not place:
        return {}
    # Each item's features' places (-1: not seen twice), words then names, looked up in C. Made an
    # array from a list: `np.fromiter` converts item by item, 0.55 s against 0.31 s for the bench's
    # million features.
    looked_up = chain(chain.from_iterable(rare_words), chain.from_iterable(rare_names))
    found = np.array(list(map(place.get, looked_up, repeat(-1))), dtype=np.int64)
    items = np.arange(n, dtype=np.int64)
    owner = np.concatenate([np.repeat(items, list(map(len, rare_words))), np.repeat(items, list(map(len, rare_names)))])
    places = len(place)
    # Packed two in one, the ints below are under n * max(n, places): in 32 bits up to 65,536 items,
    # where sorting them takes 40% less time than in 64 (the bench's 4.3 million pairs: 0.29 s
    # against 0.48 s) and their arrays half the memory.
    packed = np.uint32 if n * max(n, places) <= 1 << 32 else np.int64
    owner, found = owner[found >= 0].astype(packed), found[found >= 0].astype(packed)
    # Item by item, rarest first, each once (a figure is among an item's words and its names). Sorting
    # ints packed two in one, not `np.unique` (hashing, five times slower) nor a stable `argsort`.
    mine = _sorted_once(owner * places + found)
    owner, found = mine // places, mine % places
    if signature is not None:
        first = np.searchsorted(owner, owner)  # where each item's features begin
        keep = np.arange(len(owner)) - first < signature
        owner, found = owner[keep], found[keep]
    # Postings: by place, each in rank order; those of one item only or of more than `_BLOCK_LIMIT` go.
    size = np.bincount(found, minlength=places)[found]
    keep = (size > 1) & (size <= _BLOCK_LIMIT)
    postings = np.sort(found[keep] * n + owner[keep])
    found, owner = postings // n, postings % n
    # Each member of a posting pairs with the later ones: end of its posting - its index - 1 of them.
    later = np.searchsorted(found, found, side="right") - np.arange(len(found)) - 1
    total = int(later.sum())
    if not total:
        return {}
    # Made a few postings at a time (about `_PAIRS_AT_ONCE` pairs): all at once, the index arrays of
    # the bench's 4.3 million pairs held 40 MB more at the peak, and were slower (cache misses).
    ends = np.cumsum(later)
    parts = []
    head = 0
    while head < len(found):
        tail = max(int(np.searchsorted(ends, ends[head] - later[head] + _PAIRS_AT_ONCE, side="right")), head + 1)
        counts = later[head:tail]
        starts = np.cumsum(counts) - counts
        partner = np.arange(int(counts.sum())) + np.repeat(np.arange(head + 1, tail + 1) - starts, counts)
        parts.append(np.repeat(owner[head:tail], counts) * n + owner[partner])  # (earlier, later) as one int
        head = tail
    met = np.concatenate(parts)
    del parts
    met.sort()
    twice = _sorted_once(met[1:][met[1:] == met[:-1]])  # the pairs made twice or more
    if not len(twice):
        return {}
    # Both ends' lists: an item's neighbours are one slice of the pairs sorted by their first item.
    directed = np.sort(np.concatenate([twice, (twice % n) * n + twice // n]))
    # One int object per item, shared by every list it is in (as the counting's were): `tolist` makes
    # one per pair end, 24 MB more held for the whole clustering at 50,000 items. Picked from an
    # array of those objects, the list holds them without making (and freeing) one per pair end
    # first: 0.03 s against 0.13 s for the bench's 925,000.
    ranks = np.array(list(range(n)), dtype=object)
    source, targets = directed // n, ranks[directed % n].tolist()
    begins = np.flatnonzero(np.concatenate([[True], source[1:] != source[:-1]]))
    bounds = [*begins.tolist(), len(targets)]
    return {item: targets[a:b] for item, a, b in zip(source[begins].tolist(), bounds, bounds[1:], strict=False)}


def _sorted_once(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """The distinct values of an int array, ascending."""
    import numpy as np

    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


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
