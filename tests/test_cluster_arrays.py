"""Clustering's array paths (numpy) against the plain Python they replaced: the same pairs, bits and gates."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from functools import reduce
from itertools import combinations
from operator import or_

import pytest

from digest import words
from digest.cluster import blocking
from digest.cluster.blocking import _BLOCK_LIMIT, _PAIRS_AT_ONCE, _shared_twice
from digest.cluster.grouping import _BITS, _event_masks, _gated_pairs


def _signature_pairs(
    rare_words: list[frozenset[str]], rare_names: list[frozenset[str]], place: dict[str, int], signature: int | None
) -> dict[int, list[int]]:
    """What `_candidates` counted item by item before the arrays: pairs that meet in two postings."""
    postings: dict[int, list[int]] = defaultdict(list)
    for rank, (mine, names) in enumerate(zip(rare_words, rare_names, strict=True)):
        for p in sorted({place[f] for f in mine | names if f in place})[:signature]:
            postings[p].append(rank)
    met: Counter[tuple[int, int]] = Counter()
    for members in postings.values():
        if 1 < len(members) <= _BLOCK_LIMIT:
            met.update(combinations(members, 2))
    out: dict[int, list[int]] = defaultdict(list)
    for (a, b), k in met.items():
        if k > 1:
            out[a].append(b)
            out[b].append(a)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("signature", [None, 3, 12])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("at_once", [_PAIRS_AT_ONCE, 1, 97])
def test_pairs_sharing_two_signature_features_are_those_counted_item_by_item(
    signature: int | None, seed: int, at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocking, "_PAIRS_AT_ONCE", at_once)  # pairs made a few postings at a time, or all at once
    rng = random.Random(seed)
    vocabulary = [f"w:{k}" for k in range(300)]
    names = [f"n:{k}" for k in range(60)]
    figures = [f"d:{k}" for k in range(20)]  # a figure is among an item's words and its names
    # A few features in most items (postings past the limit), most in a few.
    weights = [50.0 if k < 5 else 1.0 for k in range(len(vocabulary))]
    rare_words, rare_names = [], []
    for _ in range(500):
        figure = rng.sample(figures, rng.randint(0, 2))
        rare_words.append(frozenset(rng.choices(vocabulary, weights, k=rng.randint(0, 15)) + figure))
        rare_names.append(frozenset(rng.sample(names, rng.randint(0, 4)) + figure))
    rare_words.append(frozenset())  # an item with no rare feature
    rare_names.append(frozenset())
    seen = [*vocabulary, *names, *figures]
    rng.shuffle(seen)
    place = {f: k for k, f in enumerate(seen[:320])}  # the rest: seen once, so in no signature
    found = _shared_twice(rare_words, rare_names, place, signature)
    assert {k: sorted(v) for k, v in found.items()} == _signature_pairs(rare_words, rare_names, place, signature)
    assert all(len(v) == len(set(v)) for v in found.values())
    assert found  # the data do make pairs


def test_no_pairs_when_no_posting_has_two_items() -> None:
    place = {"w:a": 0, "w:b": 1, "w:c": 2}
    assert _shared_twice([frozenset(["w:a", "w:b"]), frozenset(["w:c"])], [frozenset(), frozenset()], place, None) == {}
    assert _shared_twice([], [], place, None) == {}


def test_event_masks_are_each_words_hash_bit() -> None:
    rng = random.Random(4)
    events = [frozenset(f"w:{rng.randrange(5000)}" for _ in range(rng.randint(0, 30))) for _ in range(300)]
    masks, ints = _event_masks(events)
    for mine, row, bits in zip(events, masks, ints, strict=True):
        assert bits == reduce(or_, (1 << (hash(f) & (_BITS - 1)) for f in mine), 0)
        assert int.from_bytes(row.astype("<u8").tobytes(), "little") == bits


def test_gated_pairs_are_those_the_gate_lets_through() -> None:
    rng = random.Random(5)
    n = 1000  # ~75,000 pairs: more than one chunk of masks compared at once
    neighbours: dict[int, list[int]] = defaultdict(list)
    for a in range(n):
        for b in rng.sample(range(n), 75):
            if a != b and b not in neighbours[a]:
                neighbours[a].append(b)
                neighbours[b].append(a)
    lone = [rng.random() > 0.05 for _ in range(n)]
    langs = [rng.choice([0, 0, 0, 1, 2]) for _ in range(n)]
    events = [frozenset(f"w:{rng.randrange(3000)}" for _ in range(rng.randint(0, 20))) for _ in range(n)]
    masks, ints = _event_masks(events)
    expected = sorted(
        (a, b, langs[a] == langs[b])
        for a, others in neighbours.items()
        for b in others
        if a < b and lone[a] and lone[b] and not (langs[a] == langs[b] and not ints[a] & ints[b])
    )
    assert sorted(_gated_pairs(dict(neighbours), lone, langs, masks)) == expected
    assert len(expected) > 1000


def test_the_words_of_ascii_text_are_its_runs_of_a_to_z() -> None:
    # `words.language_guess` splits ASCII text on everything but a-z instead of running a regex.
    rng = random.Random(6)
    alphabet = "".join(chr(c) for c in range(128)) + "abcxyz" * 10 + "   "
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))).casefold()
        assert words._latin_words(text) == set(re.findall("[a-z]+", text))
    assert words._latin_words("l’été à paris") == {"l", "été", "à", "paris"}  # not ASCII: the regex
