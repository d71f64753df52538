"""Items compared with no batch to weigh words by: title similarity, "read also", a story's best report. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.cluster.features import Candidate, ClusterInput, _profile
from digest.cluster.grouping import canonical_url
from digest.cluster.stories import _mismatch_of, pair_threshold
from digest.cluster.vectors import _batch, _cosine


def similarity(a: str, b: str) -> float:
    """How alike two titles are, 0..1: the cosine of their words and numbers, each at its kind's weight,
    lowered when their figures or names all differ (the signs of another event).

    One shared word says nothing ("Security" and "mod_security woes"): under two, it is 0 unless the
    titles' words are the same.
    """
    pair = [Candidate(a, None, "a", datetime.min), Candidate(b, None, "b", datetime.min)]
    batch = _batch(pair, [_profile(c) for c in pair])
    va, vb = batch.words
    shared = sum(1 for f in va if f in vb)
    if shared < 2 and va.keys() != vb.keys():
        return 0.0
    return _cosine(va, vb) * _mismatch_of(va, batch.names[0], vb, batch.names[1])


def representative(items: Sequence[ClusterInput]) -> int:
    """The index of the report of one story whose title tells it best: the title the others agree with.

    Each report's title alone is compared with each other report's title and summary (the cosine of
    words and numbers, or of names and numbers where that is higher, so a report in another
    language counts through its names), and the title with the highest sum wins; among equals the
    first (callers give reports earliest first). A story of two keeps its first: one other report
    is no majority. The earliest report is often a first angle on the story (a quote, a reaction, a
    preview, "Russian officials celebrated Trump's win: report" before "US intelligence report says
    Putin directed cyber campaign to help Trump win"); a headline states what the others report.
    On 15 hand-drawn stories of real coverage an editor would headline 12 by the title this picks
    and 8 by the earliest (tests/test_story_leads.py).
    """
    if len(items) < 3:
        return 0
    titles = [Candidate(item.title, item.url, item.source, item.when) for item in items]
    # By kind alone: within one story, document frequencies would weigh down the very words its
    # reports agree on (a story of 16 reports led by a Spanish reaction to it).
    heads = _batch(titles, [_profile(t) for t in titles], by_frequency=False)
    whole = _batch(items, [_profile(item) for item in items], by_frequency=False)
    n = len(items)
    scores = [
        sum(
            max(_cosine(heads.words[i], whole.words[j]), _cosine(heads.names[i], whole.names[j]))
            for j in range(n)
            if j != i
        )
        for i in range(n)
    ]
    return max(range(n), key=lambda i: (scores[i], -i))


def related(
    candidates: Sequence[ClusterInput],
    target: ClusterInput,
    *,
    lower: float,
    upper: float | None = None,
) -> list[int]:
    """'Read also': indices of earlier candidates on the subject of `target` but not the same story.

    A candidate qualifies when it is strictly earlier than `target`, does not share its URL, and
    lower <= similarity < upper, where similarity is the cosine of title and summary words and
    numbers (each at its kind's weight) and upper (default: `pair_threshold()`) is what two items
    compared alone need to be one story. The most similar come first; ties go to the most recent,
    then input position.
    """
    upper = pair_threshold() if upper is None else upper
    url = canonical_url(target.url)
    mine = _profile(target)
    scored: list[tuple[float, float, int]] = []
    for i, c in enumerate(candidates):
        if c.when >= target.when or (url is not None and canonical_url(c.url) == url):
            continue
        pair = _batch([target, c], [mine, _profile(c)])
        score = _cosine(pair.words[0], pair.words[1])
        score *= _mismatch_of(pair.words[0], pair.names[0], pair.words[1], pair.names[1])
        if lower <= score < upper:
            scored.append((-score, -c.when.timestamp(), i))
    return [i for _, _, i in sorted(scored)]
