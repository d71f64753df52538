"""Items -> stories: same URL first, then the most similar pair of stories first. Pure.

Agglomerative on story centroids (the sum of the members' vectors, which gathers a story's
vocabulary: airport, shooting, Lauderdale, veteran), most similar pair first, while a pair passes
the tests of `digest.cluster.stories`; then the story-level passes of `digest.cluster.linking`.
A story's sources are the outlets that wrote its items (`outlet`): an aggregator's feed carries many.
"""

from __future__ import annotations

import gc
import heapq
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING
from urllib.parse import urlunsplit

from digest.cluster.blocking import _candidates
from digest.cluster.features import ClusterInput, _profile, in_sources_languages
from digest.cluster.linking import _link, _link_across
from digest.cluster.stories import DEFAULT_THRESHOLD, _merge_score, _Story
from digest.cluster.vectors import SMALL_BATCH, Background, _batch, background_counts
from digest.cluster.weather import _link_weather
from digest.outlets import linked_site, split_url

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# A plain http(s) link: no query, fragment, brackets, blanks or controls; what `urlsplit` would make of
# it is read off directly (its host, if ASCII, and path), a fifth of the time at 50,000 items.
_PLAIN_URL = re.compile(r"https?://([^/?#\[\]\x00-\x20]+)([^?#\[\]\x00-\x20]*)")


def canonical_url(url: str | None) -> str | None:
    """The URL as identity: scheme and host lower-cased, no fragment, no trailing slash, http == https."""
    if not url:
        return None
    plain = _PLAIN_URL.fullmatch(url.strip())
    if plain is not None:
        netloc, path = plain.groups()
        host = netloc.lower().removeprefix("www.")
        if host and netloc.isascii():  # urlsplit checks a non-ASCII host's normalisation
            return "//" + host + path.rstrip("/")  # as urlunsplit writes it: the path starts with "/"
    parts = split_url(url.strip())
    if parts is None or not parts.netloc:  # no host, or none urlsplit can read ("http://[bad/"): as written
        return url.strip()
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    # Publishers serve the same article on http and https; the scheme does not make it another story.
    return urlunsplit(("", host, path, parts.query, ""))


def outlet(item: ClusterInput) -> str:
    """Who wrote an item: its source, unless its link is an aggregator's redirect to another site's
    article (`digest.outlets`): then that site. An aggregator's feed carries many outlets, and two of
    them on one event are two tellings of it, not one outlet's series."""
    return linked_site(item.url) or item.source


def _order_key(items: Sequence[ClusterInput], i: int) -> tuple[datetime, int, str, int]:
    # Earliest first; then an item with a link (a lead the reader can open); then source name; then input
    # position, so the order is total and the result does not depend on set or dict iteration.
    item = items[i]
    return (item.when, 0 if item.url else 1, item.source, i)


def cluster(
    items: Sequence[ClusterInput],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    background: Sequence[ClusterInput] | Background = (),
) -> list[list[int]]:
    """Group indices of `items` that are one story; every index appears in exactly one group.

    * Items with the same canonical URL are always one story, whatever their titles or sources.
    * Otherwise stories merge most similar pair first while a pair passes the tests of the module
      docstring (`threshold` is the cosine for a shared language; the others scale with it).
    * `background`: earlier items of the same feeds (a week of them), which no group holds. A batch
      of fewer than `SMALL_BATCH` items (a small site's day), whose few items tell a story's words
      from its feeds' everyday ones poorly, counts the background's items too
      (`vectors.background_counts`, which callers that cluster many batches against one
      background may count once); a larger batch ignores it.
    * The first index of each group is its lead: the earliest item (ties: one with a URL, then source
      name, then input position). Groups come in the order of their leads. The result is a function
      of the input only, not of its order.
    """
    # Tens of thousands of small dicts and sets, none in a cycle: the cyclic collector would walk them
    # all again and again while they are made (a fifth of the time at 50,000 items) and frees nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        counted: Background | None = None
        if len(items) < SMALL_BATCH and background:
            counted = background if isinstance(background, Background) else background_counts(background)
        return _cluster(items, threshold, counted)
    finally:
        if collecting:
            gc.enable()


_NONE: frozenset[str] = frozenset()
_BITS = 2048  # bits of a story's event-word mask: few enough to AND fast, enough that one item's ~15 rarely meet


def _event_masks(events: Sequence[Collection[str]]) -> tuple[NDArray[np.uint64], list[int]]:
    """Each story's event-word mask: bit k set for a word whose hash is k modulo `_BITS` (the hashes
    are the strings' own, kept in them), as rows of an array (`_gated_pairs` reads them) and as ints
    (merges OR them, the gates AND them). Made in arrays: one OR per word in Python cost 0.3 s at
    50,000 items."""
    import numpy as np  # here: only clustering a batch needs it, and `digest poll` starts without it

    words = _WORDS
    masks = np.zeros((len(events), _BITS // words), dtype="<u8")
    hashes = np.fromiter(map(hash, chain.from_iterable(events)), dtype=np.int64)
    owner = np.repeat(np.arange(len(events)), list(map(len, events)))
    bit = hashes & (_BITS - 1)
    np.bitwise_or.at(masks, (owner, bit // words), np.left_shift(np.uint64(1), (bit % words).astype(np.uint64)))
    row = _BITS // 8
    data = masks.tobytes()
    return masks, [int.from_bytes(data[k : k + row], "little") for k in range(0, len(data), row)]


_WORDS = 64  # bits of one word of a mask row
# Pairs whose masks are compared at once: 1 MB of rows (65,536 at once took more time, and 50 MB more at the peak).
_CHUNK = 1 << 12


def _gated_pairs(
    neighbours: dict[int, list[int]], lone: list[bool], langs: list[int], masks: NDArray[np.uint64]
) -> Iterator[tuple[int, int, bool]]:
    """The candidate pairs (earlier, later) of two single items (`lone`) that `push_pairs`'s gate lets
    through, and whether the two share a language (`langs`: each item's): those whose masks meet still
    want their event sets tested. The gate in arrays: a language in common and masks that do not meet
    (most pairs) end there."""
    import numpy as np

    if not neighbours:
        return
    sizes = list(map(len, neighbours.values()))
    first = np.repeat(np.fromiter(neighbours, dtype=np.int64, count=len(neighbours)), sizes)
    second = np.fromiter(chain.from_iterable(neighbours.values()), dtype=np.int64, count=sum(sizes))
    single = np.array(lone, dtype=bool)
    keep = (first < second) & single[first] & single[second]
    first, second = first[keep], second[keep]
    lang = np.array(langs, dtype=np.int64)
    same = lang[first] == lang[second]
    meet = np.zeros(len(first), dtype=bool)
    for at in range(0, len(first), _CHUNK):
        a, b = first[at : at + _CHUNK], second[at : at + _CHUNK]
        meet[at : at + _CHUNK] = (masks[a] & masks[b]).any(axis=1)
    keep = ~same | meet
    yield from zip(first[keep].tolist(), second[keep].tolist(), same[keep].tolist(), strict=True)


def _cluster(items: Sequence[ClusterInput], threshold: float, background: Background | None) -> list[list[int]]:
    order = sorted(range(len(items)), key=lambda i: _order_key(items, i))
    ranked = [items[i] for i in order]  # by rank from here on
    profiles = in_sources_languages(ranked, [_profile(item) for item in ranked])
    batch = _batch(ranked, profiles, background)
    stories: dict[int, _Story] = {}
    start = items[order[0]].when if order else datetime.min
    # One set per language and per source, shared by the items' stories: fewer objects to make and free,
    # and two stories of one language compare their sets by identity.
    lang_sets: dict[str, frozenset[str]] = {}
    source_sets: dict[str, frozenset[str]] = {}
    # Each item's rare features, found with its vectors: its story starts with them, and candidate pairs
    # and the second pass need no other features of an item.
    item_rare_words, item_rare_names = batch.rare_words, batch.rare_names
    outlets = [outlet(items[i]) for i in order]
    for rank, i in enumerate(order):
        wv, nv = batch.words[rank], batch.names[rank]
        seconds = (items[i].when - start).total_seconds()
        rare_words, rare_names = item_rare_words[rank], item_rare_names[rank]
        profile = profiles[rank]
        lang, source = profile.lang, outlets[rank]
        # Its rare words less its numbers and capitalised words: its rare words that are events.
        rare_events = rare_words.difference(profile.others, profile.capitals)
        stories[rank] = _Story(
            [rank],
            wv,
            nv,
            lang_sets.get(lang) or lang_sets.setdefault(lang, frozenset([lang])),
            source_sets.get(source) or source_sets.setdefault(source, frozenset([source])),
            seconds,
            seconds,
            rare_words=rare_words,
            rare_events=rare_events,
            rare_names=rare_names,
            # Its rare words written as names ("China") and, unless a title-case text makes every word
            # look like one, in lower case ("china shop"): a word one item writes each way is two words.
            named_words=rare_words.intersection([w for _, w in profile.names]) if profile.names else _NONE,
            lower_words=_NONE if profile.styled else rare_events,
        )

    neighbours = _candidates(batch, item_rare_words, item_rare_names, [p.lang for p in profiles])
    root = list(range(len(order)))  # union-find over ranks: the story each item is in
    # Each story's rare event words as bits of an int (one bit per word's hash): two stories whose bits
    # do not meet share no event word, told by one AND instead of a set test whose lookups miss the cache.
    # Bits that meet prove nothing (two words may hash alike): the sets decide then.
    masks, events_bits = _event_masks([stories[rank].rare_events for rank in range(len(order))])
    # Each story's languages as bits of an int, one bit per language of the batch: exactly its `langs`,
    # so the gate below tells whether two stories share a language without reading either story.
    lang_bit: dict[str, int] = {}
    for p in profiles:
        lang_bit.setdefault(p.lang, 1 << len(lang_bit))
    lang_bits = [lang_bit[p.lang] for p in profiles]
    # Each story's `version` (how many merges it took in), -1 once merged into another: whether a pair
    # on the heap is stale is told by two list reads.
    versions = [0] * len(order)

    def find(rank: int) -> int:
        while root[rank] != rank:
            root[rank] = root[root[rank]]
            rank = root[rank]
        return rank

    near: dict[int, set[int]] = {}  # a story of several items -> its members' candidates

    def merge(keep: int, gone: int) -> None:
        root[gone] = keep
        events_bits[keep] |= events_bits[gone]
        lang_bits[keep] |= lang_bits[gone]
        versions[keep] += 1  # as `absorb` counts it
        versions[gone] = -1
        stories[keep].absorb(stories.pop(gone))
        mine = near.get(keep)
        if mine is None:
            mine = near[keep] = set(neighbours.get(keep, ()))
        theirs = near.pop(gone, None)
        mine.update(neighbours.get(gone, ()) if theirs is None else theirs)

    by_url: dict[str, int] = {}
    for rank, i in enumerate(order):
        url = canonical_url(items[i].url)
        if url is None:
            continue
        if url not in by_url:
            by_url[url] = rank
        elif find(rank) != find(by_url[url]):
            merge(find(by_url[url]), find(rank))  # the earlier rank keeps the story; a later one never led it

    heap: list[tuple[float, int, int, int, int]] = []

    def push_pairs(sid: int, later_only: bool = False) -> None:
        story = stories[sid]
        events, languages, bits = story.rare_events, lang_bits[sid], events_bits[sid]
        # A root is its own story: read off `root` without calling `find` (most of a grown story's
        # candidates are roots already, `near` keeping them as such).
        if len(story.ranks) == 1:
            own = neighbours.get(sid, ())
            # In the first pass a later item's root is never earlier than `sid`: filter before finding.
            if later_only:
                others = {x if root[x] == x else find(x) for x in own if x > sid}
            else:
                others = {x if root[x] == x else find(x) for x in own}
        else:
            others = {x if root[x] == x else find(x) for x in near[sid]}
            others.discard(sid)
            near[sid] = others  # roots stand for their items from here on: the set shrinks as stories grow
        others.discard(sid)
        for other in others:  # the heap orders the pairs: the order they are scored in does not matter
            if later_only and other < sid:
                continue
            # _merge_score's first gate, inline (a language in common and no rare event word in common):
            # most candidate pairs end here, most without reading the other story. It is stricter than
            # _merge_score for stories mostly in two languages that share one, which names alone may
            # join there: here they need an event too. Letting names alone join them here lost pairs
            # in the labelled windows (same-language 0.592 -> 0.587, cross 0.475 -> 0.457): a story's
            # foreign members joined it before its own language's reports did.
            if languages & lang_bits[other] and (
                not bits & events_bits[other] or events.isdisjoint(stories[other].rare_events)
            ):
                continue
            score = _merge_score(story, stories[other], batch, threshold)
            if score:
                a, b = min(sid, other), max(sid, other)
                heapq.heappush(heap, (-score, a, b, versions[a], versions[b]))

    # The first pass: each candidate pair once, from its earlier story. Stories are not merged in it, so
    # the pairs of two single items (nearly all) go through the gate of `push_pairs` in arrays; a pair is
    # scored in the order found, and the heap orders the pairs whatever order they come in.
    lone = [v == 0 for v in versions]  # single items (a URL merged the others)
    item_lang = [lang_bit[p.lang].bit_length() for p in profiles]  # its language's number
    for sid, other, one_language in _gated_pairs(neighbours, lone, item_lang, masks):
        mine, theirs = stories[sid], stories[other]
        if one_language and mine.rare_events.isdisjoint(theirs.rare_events):
            continue  # their masks meet, but no word does
        score = _merge_score(mine, theirs, batch, threshold)
        if score:
            heap.append((-score, sid, other, 0, 0))
    heapq.heapify(heap)
    for sid in range(len(order)):  # the pairs of a story that a URL made, or of an item with such a story
        story = stories.get(sid)
        if story is None:
            continue
        if len(story.ranks) > 1:
            push_pairs(sid, later_only=True)
            continue
        events, languages, bits = story.rare_events, lang_bits[sid], events_bits[sid]
        for x in neighbours.get(sid, ()):
            if x <= sid or lone[x]:
                continue  # an earlier item's pair, or one of two single items: done above
            other = x if versions[x] >= 0 else find(x)  # a later item merged into an earlier one with its URL
            if other <= sid:
                continue
            if languages & lang_bits[other] and (
                not bits & events_bits[other] or events.isdisjoint(stories[other].rare_events)
            ):
                continue
            theirs = stories[other]
            score = _merge_score(story, theirs, batch, threshold)
            if score:
                heapq.heappush(heap, (-score, sid, other, versions[sid], versions[other]))

    def merge_most_similar_first() -> None:
        while heap:
            _, a, b, va, vb = heapq.heappop(heap)
            if versions[a] != va or versions[b] != vb:
                continue  # a stale pair: one of the two has grown since (or is gone)
            merge(a, b)
            push_pairs(a)

    merge_most_similar_first()
    if batch.idf:
        titles = [items[i].title for i in order]
        before = versions.copy()
        _link(stories, profiles, titles, item_rare_words, batch, find, merge, threshold)
        _link_across(profiles, outlets, neighbours, batch, stories, find, merge, threshold)
        _link_weather(profiles, stories, batch, find, merge)
        # A story these passes grew has a new centroid: a report that tells both its parts may now pass
        # the first pass's tests against it, though it passed them against neither part (a piece on the
        # shooting's lessons, once the late reports on the gunman had joined the airport's story).
        for sid in sorted(stories):
            if versions[sid] != before[sid]:
                push_pairs(sid)
        merge_most_similar_first()

    groups = [sorted(story.ranks) for story in stories.values()]
    groups.sort(key=lambda g: g[0])
    # Compiled (`hatch_build.py`), the nested functions above and the variables they use live in one
    # environment object, which holds the functions too: a reference cycle. It kept the stories, the
    # candidate pairs and the batch's vectors alive after the call, until the next garbage collection
    # freed them (0.9 s at 50,000 items, in whatever ran next). Emptied here, they are freed now, by
    # reference counting, as pure Python frees them on return.
    for table in (stories, near, neighbours):
        table.clear()
    for values in (root, versions, events_bits, lang_bits):
        values.clear()
    for vectors in (batch.words, batch.names, batch.rare_words, batch.rare_names):
        vectors.clear()
    batch.df.clear()
    return [[order[r] for r in g] for g in groups]
