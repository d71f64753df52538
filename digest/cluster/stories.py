"""When two stories are one: a story's centroid and the tests a merge must pass. Pure.

Grouping is precision first: merging two different stories hides news, while showing a story twice
only costs a line. Two stories (their centroids, the sum of the members' vectors) merge only when
all of this holds:

* their centroids' cosine reaches the threshold (words and numbers for a shared language, of the
  members in the languages both write when one has a language the other lacks; names
  and numbers, with a rare one shared, for two stories with no language in common, or with one
  in common but most pairs of their members in two languages, halved when both give figures and
  none agree: one brand in common is not one event; not between a report that names one name
  and one that names several);
* they share an *event* word (one not written with a capital) that is rare in the batch, and three
  rare words or a rare name or figure: sharing "North Korea" and nothing that happened is a subject,
  not a story (this is what keeps one outlet's four North Korea items apart); a capital the batch
  also writes in lower case is no name (`features.common_nouns`);
* together they span no more than `MAX_GAP`;
* two stories of one source need `SAME_SOURCE_FACTOR` times the threshold: an outlet writes
  about its subjects again and again (two rounds of one golf tournament), while two outlets on one
  subject the same day are usually one story. A follow-up (later, within `FOLLOW_UP_GAP`, sharing a
  rare name and `_FOLLOW_UP_WORDS` rare words) needs `FOLLOW_UP_FACTOR` times the threshold only; two
  items whose titles number them apart in a series ("Day One", "Day Two") never merge.
* two outlets in one language that share a rare name and `_CORROBORATING_WORDS` rare words (in a
  batch, where rarity means something) need `CORROBORATED_FACTOR` times the threshold: their
  wording differs, but the who and the what are corroborated (a hotel fire's reports, an iceberg
  about to break off Antarctica). A story `TOLD_OUTLETS` outlets tell has its who and what settled,
  and its centroid gathers each report's own words: one more report that corroborates it so needs
  `TOLD_FACTOR` times the threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from digest.cluster.features import _ties_languages, series_places
from digest.cluster.vectors import _Batch, _cosine, _norm, _scaled_cosine, _unit

DEFAULT_THRESHOLD = 0.25  # centroid cosine for stories that share a language
# Names-and-numbers cosine for stories with no language in common. 0.35 until session 27: measured
# again then, nothing false joined above 0.29 (the labelled days, their windows, the whole corpus and
# each of its days), and at 0.33 SPIEGEL's report on the intelligence report met its story.
CROSS_LANGUAGE_THRESHOLD = 0.32
SAME_SOURCE_FACTOR = 2.5  # two stories of one source need this times the threshold
FOLLOW_UP_FACTOR = 1.5  # ... or this, for a follow-up: hours later, the same rare name and words
FOLLOW_UP_GAP = timedelta(hours=12)
MAX_GAP = timedelta(hours=36)  # a story spans no more than this: a day and a half of follow-ups
_MAX_GAP_SECONDS = MAX_GAP.total_seconds()
_FOLLOW_UP_SECONDS = FOLLOW_UP_GAP.total_seconds()
_FOLLOW_UP_WORDS = 3  # rare words a follow-up shares with its story besides a rare name
# Two outlets of one language sharing a rare name and `_CORROBORATING_WORDS` rare words need this times
# the threshold (at 0.85 the labelled days' intelligence report took in Trump's "attack-dog strategy").
CORROBORATED_FACTOR = 0.9
_CORROBORATING_WORDS = 4
# ... and one report that corroborates so a story three outlets or more tell needs this times it: the
# story's centroid is the sum of many reports' varied words, which one report's cannot all share (The
# Indian Express's "Chicago: Four ordered held without bail over torture shown on Facebook" against the
# Chicago beating's five reports of three outlets: 0.74 of the bar). Two outlets are not enough: in
# June 2018's windows a celebrity's jibe at Trump then joins two outlets' reports of his White House party.
# At 0.6 the intelligence report of January 2017 takes in Russia's withdrawal from Syria in some of its
# day-long windows.
TOLD_FACTOR = 0.7
TOLD_OUTLETS = 3
NO_IDF_FACTOR = 2.8  # without document frequencies common words weigh as much as rare ones: a higher bar
NUMBER_MISMATCH = 0.5  # both give figures and none agree: another quake, another rate decision
NAME_MISMATCH = 0.75  # both name someone or somewhere and no name is shared

_RARE_WORDS_OR_NAME = 3  # rare words two stories must share unless they share a rare name or figure
_ANCHORS_ACROSS = 1  # names or figures two languages must share (rare ones, with the names cosine)


def pair_threshold(threshold: float = DEFAULT_THRESHOLD) -> float:
    """The similarity two items compared alone (no batch to weigh words by) need to be one story."""
    return threshold * NO_IDF_FACTOR


@dataclass(slots=True)
class _Story:
    ranks: list[int]
    words: dict[str, float]  # the sum of the members' word vectors (a one-item story's: shared with the batch)
    names: dict[str, float]  # the sum of the members' name vectors (likewise)
    langs: frozenset[str]  # a one-item story's are shared by every item of its language (source)
    sources: frozenset[str]
    first: float  # seconds from the batch's earliest item
    last: float
    # Rare features of `words`, rare event words, rare features of `names` (names and figures): a one-item
    # story's are frozen; a merged story's are its own sets, grown in place (a new frozenset at every
    # merge would copy a large story's whole set each time it takes in one more item).
    rare_words: set[str] | frozenset[str]
    rare_events: set[str] | frozenset[str]
    rare_names: set[str] | frozenset[str]
    version: int = 0
    # A one-item story's rare words written as names, and written in lower case (empty when the
    # item is a title-case text); a merged story's are empty (its members write words every way).
    named_words: frozenset[str] = frozenset()
    lower_words: frozenset[str] = frozenset()
    # The norms of `words` and `names` (0.0: not yet known), each worked out when first asked for: most
    # merged stories are only ever compared on words (one language), so their names' is rarely needed.
    # Merges compare the sums scaled by them (`_scaled_cosine`), so no unit vector is made at each merge.
    _word_norm: float = field(default=0.0, repr=False)
    _name_norm: float = field(default=0.0, repr=False)

    def word_norm(self) -> float:
        if not self.version:  # one item's vectors are unit vectors already; a merged story's sums are not
            return 1.0
        if not self._word_norm:
            self._word_norm = _norm(self.words)
        return self._word_norm

    def name_norm(self) -> float:
        if not self.version:
            return 1.0
        if not self._name_norm:
            self._name_norm = _norm(self.names)
        return self._name_norm

    def word_unit(self) -> dict[str, float]:
        """The unit vector of `words` (the story-level passes compare these)."""
        return self.words if not self.version else _unit(self.words)

    def absorb(self, other: _Story) -> None:
        self.ranks.extend(other.ranks)
        if not self.version:  # copy on first write: the vectors were the batch's, the sets the item's
            self.words, self.names = dict(self.words), dict(self.names)
            self.rare_words, self.rare_events, self.rare_names = (
                set(self.rare_words),
                set(self.rare_events),
                set(self.rare_names),
            )
        _add(self.words, other.words)
        _add(self.names, other.names)
        self.rare_words |= other.rare_words
        self.rare_events |= other.rare_events
        self.rare_names |= other.rare_names
        self.langs |= other.langs
        self.sources |= other.sources
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.version += 1
        self.named_words = self.lower_words = frozenset()
        self._word_norm = self._name_norm = 0.0


def _add(mine: dict[str, float], theirs: dict[str, float]) -> None:
    """`mine` += `theirs`: the shared features' sums keep their place, the others come after in their
    order. A native loop when compiled (`hatch_build.py`), one lookup and one store per feature of
    theirs; in C (a set of the shared keys, then two updates) it took more."""
    for f, w in theirs.items():
        v = mine.get(f)
        mine[f] = w if v is None else v + w


def _merge_score(a: _Story, b: _Story, batch: _Batch, threshold: float) -> float:
    """How far above its threshold the merge of two stories is (>= 1), or 0 when they must stay apart."""
    if max(a.last, b.last) - min(a.first, b.first) > _MAX_GAP_SECONDS:
        return 0.0
    event = not a.rare_events.isdisjoint(b.rare_events)
    one_language = not a.langs.isdisjoint(b.langs)
    mixed = one_language and a.langs != b.langs  # a language in common, and one the other lacks
    if mixed:
        # A story's one report in a language does not make that language's next report be measured by
        # the story's words, most of which it does not write: mostly two languages, names may decide.
        one_language = _mostly_one_language(a.ranks, b.ranks, batch.langs)
    if not event and one_language:  # the cheap test first: most candidate pairs end here
        return 0.0
    shared_names = a.rare_names & b.rare_names
    if shared_names and batch.common:
        # Not a common noun's capital ("Year" in "New Year's Day" and in "Game of the Year", "Apple"
        # where the batch writes "apple"): a subject many reports share names no one of them.
        shared_names -= batch.common
    # A rare name, not only a figure: a story's rare figures are among its rare words too, its names never are.
    named = bool(shared_names) and not shared_names.issubset(a.rare_words)
    if not named:
        shared = a.rare_words & b.rare_words
        if a.named_words or b.named_words:  # "China" and "china shop" share no word
            shared -= (a.named_words & b.lower_words) | (b.named_words & a.lower_words)
        if len(shared) < _RARE_WORDS_OR_NAME:
            return 0.0
    score = 0.0
    if event:  # something happened, in both
        if mixed:
            # Their words in the languages both write (whether mostly one language or two): a story's
            # reports in other languages would dilute its centroid with words the other cannot share.
            common = a.langs & b.langs
            cosine = _cosine(_words_in(a, common, batch), _words_in(b, common, batch))
        else:
            cosine = _scaled_cosine(a.words, a.word_norm(), b.words, b.word_norm())
        score = cosine / (threshold if batch.idf else threshold * NO_IDF_FACTOR)
        if not batch.idf:  # in a batch, rare shared words do this job; summaries carry incidental figures
            score *= _mismatch(a, b)
    # Two languages: names and figures, a common noun's capital ("Police", "Polícia") and a country
    # ("France", "Francia": a subject many stories share) not among them. A report whose names are
    # one name is compared so with another that names one too, not with one that names several: the
    # cosine would then be only how much of the other's names that one is, a place or a person the
    # other mentions. (The Indian Express's "Two women punched, racially abused in New York", whose one
    # name is "York", met SPIEGEL's "Bullenreiten in New York" in an edition of 7 January 2017: 1.006
    # of the bar.)
    if (
        not one_language
        and (len(a.names) > 1) == (len(b.names) > 1)
        and sum(map(_ties_languages, shared_names - batch.no_anchors)) >= _ANCHORS_ACROSS
    ):
        across = _scaled_cosine(a.names, a.name_norm(), b.names, b.name_norm()) / (
            threshold * CROSS_LANGUAGE_THRESHOLD / DEFAULT_THRESHOLD
        )
        score = max(score, across * _number_mismatch(a.names, b.names))
    if len(a.sources) == 1 and a.sources == b.sources:
        # One outlet's items on one subject: a podcast's episodes, a fire brigade's alarms, two rounds
        # of a tournament. Its follow-ups must be far closer, and figures that all differ (Day 01, Day 02)
        # say another event.
        span = max(a.last, b.last) - min(a.first, b.first)
        # A follow-up comes later: items an outlet publishes at one instant are two articles (a series'
        # match previews), however alike.
        anchored = 0 < span <= _FOLLOW_UP_SECONDS and named and len(a.rare_words & b.rare_words) >= _FOLLOW_UP_WORDS
        score /= FOLLOW_UP_FACTOR if anchored else SAME_SOURCE_FACTOR
        if batch.idf:
            score *= _mismatch(a, b)
        if score >= 1.0 and batch.titles and _other_episodes(a.ranks, b.ranks, batch.titles):
            return 0.0
    elif named and one_language and batch.idf and len(a.rare_words & b.rare_words) >= _CORROBORATING_WORDS:
        told = max(len(a.sources), len(b.sources)) >= TOLD_OUTLETS and min(len(a.ranks), len(b.ranks)) == 1
        score /= TOLD_FACTOR if told else CORROBORATED_FACTOR
    return score if score >= 1.0 else 0.0


def _words_in(story: _Story, langs: frozenset[str], batch: _Batch) -> dict[str, float]:
    """The unit vector of the story's members' words, of its members in `langs` only."""
    if story.langs <= langs:
        return story.word_unit()
    words: dict[str, float] = {}
    for rank in story.ranks:
        if batch.langs[rank] in langs:
            _add(words, batch.words[rank])
    return _unit(words)


def _mostly_one_language(a: list[int], b: list[int], langs: Sequence[str]) -> bool:
    """Whether half the pairs of two stories' members at least (`langs`: each rank's language) are of
    one language: then the stories are compared as one language's are, on their words."""
    mine = Counter(langs[r] for r in a)
    theirs = Counter(langs[r] for r in b)
    same = sum(k * theirs[lang] for lang, k in mine.items())
    return 2 * same >= len(a) * len(b)


def _other_episodes(a: list[int], b: list[int], titles: Sequence[str]) -> bool:
    """Whether two stories' titles number them apart in one series ("Day One" and "Day Two"): read
    only for one outlet's pairs that would merge, so the titles of most items are never searched."""
    mine = _places(a, titles)
    if not mine:
        return False
    theirs = _places(b, titles)
    return any(marker in theirs and theirs[marker].isdisjoint(places) for marker, places in mine.items())


def _places(ranks: list[int], titles: Sequence[str]) -> dict[str, set[int]]:
    places: dict[str, set[int]] = {}
    for rank in ranks:
        for marker, place in series_places(titles[rank]):
            places.setdefault(marker, set()).add(place)
    return places


def _number_mismatch(a: dict[str, float], b: dict[str, float]) -> float:
    """`NUMBER_MISMATCH` when both vectors give figures and none agree, else 1."""
    a_numbers = {f for f in a if f[0] == "d"}
    b_numbers = {f for f in b if f[0] == "d"}
    return NUMBER_MISMATCH if a_numbers and b_numbers and not a_numbers & b_numbers else 1.0


def _mismatch(a: _Story, b: _Story) -> float:
    return _mismatch_of(a.words, a.names, b.words, b.names)


def _mismatch_of(
    a_words: dict[str, float], a_names: dict[str, float], b_words: dict[str, float], b_names: dict[str, float]
) -> float:
    """Two cheap signs of another event: figures that all differ (magnitude 6.2 vs 5.8, 16% vs 21%),
    names that all differ (Leeds vs Glasgow, ECB vs Bank of England)."""
    factor = _number_mismatch(a_words, b_words)
    a_only = {f for f in a_names if f[0] == "n"}
    b_only = {f for f in b_names if f[0] == "n"}
    if a_only and b_only and not a_only & b_only:
        factor *= NAME_MISMATCH
    return factor
