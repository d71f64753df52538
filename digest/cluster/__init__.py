"""Same story, several sources: which items to show once.

This package owns the grouping of items into stories and the "read also" links. It is pure: it reads
no clock, no environment, no store; times come in on the items. compose turns the groups it returns
into `Story` objects; nothing here knows about sections, subscribers or rendering.

Its modules, in the order an edition goes through them:

* `features`: what two items are compared on (words, numbers, names across scripts, event words);
* `vectors`: the batch's document frequencies, each source's boilerplate, unit vectors, rare features;
* `blocking`: which pairs of items are compared at all (pairs of rare features in common);
* `stories`: a story's centroid and the tests two stories must pass to be one;
* `grouping`: `cluster()`: same URL, then the most similar pair of stories first;
* `linking`: the story-level passes (a story two outlets tell takes in a late report on it; a report
  in another language that two of its outlets' members match);
* `pairs`: items compared without a batch: `similarity()` of titles, `related()` ("read also"), and
  `representative()`, the report of a story that tells it best (its lead in an edition).

Names with a leading underscore are the package's own: its modules share them, callers do not.

Measured on every corpus item of 6-7 January 2017 (tests/test_cluster_corpus.py): see
docs/performance.md for the figures and what is missed.
"""

from __future__ import annotations

from digest.cluster.blocking import SIGNATURE
from digest.cluster.features import (
    NAME_WEIGHT,
    NUMBER_WEIGHT,
    SUMMARY_CHARS,
    SUMMARY_WEIGHT,
    TITLE_WEIGHT,
    Candidate,
    ClusterInput,
    normalise_title,
    title_shingles,
)
from digest.cluster.grouping import canonical_url, cluster, outlet
from digest.cluster.linking import LINK_COSINE, LINK_SPECIFIC_DF, LINK_SPECIFIC_SHARE
from digest.cluster.pairs import related, representative, similarity
from digest.cluster.stories import (
    CROSS_LANGUAGE_THRESHOLD,
    DEFAULT_THRESHOLD,
    FOLLOW_UP_FACTOR,
    FOLLOW_UP_GAP,
    MAX_GAP,
    NAME_MISMATCH,
    NO_IDF_FACTOR,
    NUMBER_MISMATCH,
    SAME_SOURCE_FACTOR,
    TOLD_FACTOR,
    TOLD_OUTLETS,
    pair_threshold,
)
from digest.cluster.vectors import BOILERPLATE_SHARE, MIN_BATCH_FOR_IDF, SMALL_BATCH, Background, background_counts

__all__ = [
    "BOILERPLATE_SHARE",
    "CROSS_LANGUAGE_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "FOLLOW_UP_FACTOR",
    "FOLLOW_UP_GAP",
    "LINK_COSINE",
    "LINK_SPECIFIC_DF",
    "LINK_SPECIFIC_SHARE",
    "MAX_GAP",
    "MIN_BATCH_FOR_IDF",
    "Background",
    "background_counts",
    "NAME_MISMATCH",
    "NAME_WEIGHT",
    "NO_IDF_FACTOR",
    "NUMBER_MISMATCH",
    "NUMBER_WEIGHT",
    "SAME_SOURCE_FACTOR",
    "SIGNATURE",
    "SMALL_BATCH",
    "SUMMARY_CHARS",
    "SUMMARY_WEIGHT",
    "TITLE_WEIGHT",
    "TOLD_FACTOR",
    "TOLD_OUTLETS",
    "Candidate",
    "ClusterInput",
    "canonical_url",
    "cluster",
    "outlet",
    "normalise_title",
    "pair_threshold",
    "representative",
    "related",
    "similarity",
    "title_shingles",
]
