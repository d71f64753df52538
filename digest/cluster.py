"""Same story, several sources: which items to show once.

This module owns the grouping of items into stories and the "read also" links. It is pure: it reads
no clock, no environment, no store; times come in on the items. compose turns the groups it returns
into `Story` objects; nothing here knows about sections, subscribers or rendering.

What two items are compared on (`digest.words` makes the word forms):

* **Words**: the title's and the summary's words, stemmed in the item's language (declared or
  guessed) and folded to ASCII, without stopwords; a title word weighs twice a summary word. An
  English demonym is stemmed as its place ("Russian" as "Russia", `_place_of`).
* **Numbers** ("43", "6.8"), weighed up: the death toll, the magnitude, the score.
* **Names**: capitalised words that do not start a sentence, and acronyms, keyed by their consonant
  skeleton (`words.skeleton`), so "Trump" meets "Трамп" and "Lauderdale" meets "Лодердейл". Names
  and numbers are what two languages share, so they are how items in two languages are compared.
  In a title-case headline ("Hate Crime Charges Brought") capitals are a style: its words are
  neither names nor capitalised, so they count as event words (below) as another outlet's do.

In a batch of `MIN_BATCH_FOR_IDF` items or more (an edition, not a pair), each feature is weighed
by its inverse document frequency, and a feature found in most items of one source is that
source's boilerplate ("Leia mais no Massa News!") and is dropped for it.

Grouping is precision first: merging two different stories hides news, while showing a story twice
only costs a line. It is agglomerative on story centroids (the sum of the members' vectors, which
gathers a story's vocabulary: airport, shooting, Lauderdale, veteran), most similar pair first,
and two stories merge only when all of this holds:

* their centroids' cosine reaches the threshold (words and numbers for a shared language; names
  and numbers, with a rare one shared, for two stories with no language in common);
* they share an *event* word (one not written with a capital) that is rare in the batch, and three
  rare words or a rare name or figure: sharing "North Korea" and nothing that happened is a subject,
  not a story (this is what keeps one outlet's four North Korea items apart);
* together they span no more than `MAX_GAP`;
* two stories of one source need `SAME_SOURCE_FACTOR` times the threshold: an outlet writes
  about its subjects again and again (two rounds of one golf tournament), while two outlets on one
  subject the same day are usually one story. A follow-up (within `FOLLOW_UP_GAP`, sharing a rare
  name and `_FOLLOW_UP_WORDS` rare words) needs `FOLLOW_UP_FACTOR` times the threshold only.

A second pass (`_link`) then lets a story that two outlets or more tell take in another story that
shares a pair of its own rare words and nothing else does: a story's centroid is diluted by its
members' varied words, so a late report on it scores under the threshold though it carries two of
the story's words.

Candidate pairs come from an inverted index on rare features only (the gate needs one), so cost
follows the pairs that share a rare feature, not n^2. Measured on every corpus item of 6-7 January
2017 (tests/test_cluster_corpus.py): see docs/performance.md for the figures and what is missed.
"""

from __future__ import annotations

import gc
import heapq
import math
import re
import unicodedata
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from digest import words

DEFAULT_THRESHOLD = 0.25  # centroid cosine for stories that share a language
CROSS_LANGUAGE_THRESHOLD = 0.35  # names-and-numbers cosine for stories with no language in common
SAME_SOURCE_FACTOR = 2.5  # two stories of one source need this times the threshold
FOLLOW_UP_FACTOR = 1.5  # ... or this, for a follow-up: hours later, the same rare name and words
FOLLOW_UP_GAP = timedelta(hours=12)
MAX_GAP = timedelta(hours=36)  # a story spans no more than this: a day and a half of follow-ups
_MAX_GAP_SECONDS = MAX_GAP.total_seconds()
_FOLLOW_UP_SECONDS = FOLLOW_UP_GAP.total_seconds()
_FOLLOW_UP_WORDS = 3  # rare words a follow-up shares with its story besides a rare name
MIN_BATCH_FOR_IDF = 40  # below this, document frequencies say nothing and every feature weighs its kind
BOILERPLATE_SHARE = 0.4  # a feature in this share of one source's items (of at least 5) is its boilerplate
SIGNATURE = 12  # an item's rarest features that candidate pairs are blocked on
SUMMARY_CHARS = 600  # what of a summary is compared: the lead paragraph says what the story is

TITLE_WEIGHT = 1.0
SUMMARY_WEIGHT = 0.5
NAME_WEIGHT = 1.6
NUMBER_WEIGHT = 1.4

NO_IDF_FACTOR = 2.8  # without document frequencies common words weigh as much as rare ones: a higher bar
NUMBER_MISMATCH = 0.5  # both give figures and none agree: another quake, another rate decision
NAME_MISMATCH = 0.75  # both name someone or somewhere and no name is shared

_RARE_WORDS_OR_NAME = 3  # rare words two stories must share unless they share a rare name or figure
_ENTRY_CACHE = 262144  # tokens remembered per language
_BLOCK_LIMIT = 60  # items sharing a pair of rare features beyond this are a subject, not a story
_ANCHORS_ACROSS = 1  # names or figures two languages must share (rare ones, with the names cosine)
LINK_COSINE = 0.5  # the second pass (`_link`): centroids' cosine, times the threshold
LINK_SPECIFIC_SHARE = 0.5  # ... one word of the linking pair in at most this share of the rare bar's items
LINK_SPECIFIC_DF = 10  # ... and in at most this many: in 50,000 items, chance pairs of rarer words abound


class ClusterInput(Protocol):
    """What clustering needs of an item; `digest.model.Item` fits as it is."""

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def source(self) -> str: ...
    @property
    def when(self) -> datetime: ...
    @property
    def summary_text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A plain ClusterInput, for callers (and the bench) that have no Item."""

    title: str
    url: str | None
    source: str
    when: datetime
    summary_text: str = ""
    language: str | None = None  # the feed's declared language, when known


# --------------------------------------------------------------------------- features


def normalise_title(title: str) -> str:
    """NFKC, casefold, punctuation and symbols to spaces, whitespace collapsed; decimals kept."""
    text = unicodedata.normalize("NFKC", title).casefold()
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch.isalnum() or (ch in ".," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()):
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


@lru_cache(maxsize=8192)
def title_shingles(title: str) -> frozenset[str]:
    """The word forms of a title in its guessed language (stems, numbers, CJK bigrams)."""
    return frozenset(words.word_forms(title, words.language_of(title)))


def _is_title_case(tokens: list[str]) -> bool:
    # "Putin Led a Complex Cyberattack Scheme": capitals there mark a style, not names.
    # Words of four letters or more (a number's first character is a digit, below every letter).
    initials = "".join([t[0] for t in tokens if len(t) > 3 and t[0] > "9"])
    return len(initials) >= 3 and sum(map(str.isupper, initials)) >= 0.8 * len(initials)


@lru_cache(maxsize=65536)
def _name_key(token: str) -> str:
    key = words.skeleton(token)
    return "n:" + (key if len(key) >= 3 else words.fold(token))


_SENTENCE_END = re.compile(r"[.!?:;]\s+")
_LEAD_WORD = re.compile(r"[\"'«“‘(\[¿¡]*([^\W\d_]+)")


def _sentence_starts(text: str) -> set[str]:
    """The first word of each sentence (and of the text): capitalised whatever the word."""
    return {m.group(1) for part in _SENTENCE_END.split(text) if (m := _LEAD_WORD.match(part))}


@lru_cache(maxsize=262144)
def _token_features(token: str, lang: str) -> tuple[tuple[str, float, bool], ...]:
    """(feature, weight factor, is a capitalised word's) for one token; names are added by the caller."""
    if words.has_cjk(token):
        forms = words.word_forms(token, lang)
        # A run of k characters gives k-1 bigrams: together they weigh about one word, so that a shared
        # four-character prefix ("最近在听", "recently listening to") is not three shared words.
        bigrams = sum(1 for f in forms if words.has_cjk(f)) or 1
        out = [("w:" + f, 1 / math.sqrt(bigrams) if words.has_cjk(f) else 1.0, False) for f in forms]
        # Japanese writes foreign and company names in katakana (トヨタ, マイナス): those are its names.
        for stretch in words.script_stretches(token):
            if len(stretch) > 1 and words.is_katakana(stretch[0]):
                katakana = {"w:" + f for f in words.cjk_bigrams(stretch)}
                out = [(f, w, f in katakana) for f, w, _ in out] + [("n:" + stretch, NAME_WEIGHT, True)]
        return tuple(out)
    if token[0].isdigit():
        return (("d:" + token.replace(",", "."), NUMBER_WEIGHT, False),)
    form = words.word_form(token, lang)
    if form is None:
        return ()
    if lang == "en" and token[0].isupper():
        form = _place_of(form)
    return (("w:" + form, 1.0, token[0].isupper()),)


def _place_of(form: str) -> str:
    """An English demonym's stem as its place's: 'russian' -> 'russia', 'syrian' -> 'syria', 'korean' ->
    'korea', so "Russian hackers" meets "Russia hacked". Only -ian and -ean: places that end in -an
    themselves (Iran, Taiwan) are left alone, and dropping the -i of 'iraqi' or 'pakistani' also turned
    names into common words ('Hindi' into 'hind') and cost precision on the bench's invented names."""
    if len(form) > 5 and form.endswith(("ian", "ean")):
        return form[:-1]
    return form


def _token_entry(token: str, lang: str) -> tuple[tuple[tuple[str, float, bool], ...], str | None, bool]:
    """A token's features, its name key when written like a name (None otherwise), and whether it is
    a short acronym (a name wherever it stands): what `_add_text` needs of it, worked out once."""
    feats = _token_features(token, lang)
    if len(token) > 1 and token[0].isupper() and not words.is_stopword(token, lang):
        return feats, _name_key(token), token.isupper() and len(token) <= 6
    return feats, None, False


_Entry = tuple[tuple[tuple[str, float, bool], ...], str | None, bool]
# Per language, token -> what `_add_text` needs of it, worked out once: a plain word (one feature at
# weight 1, no capital, no name; "" for a stopword) in the first dict, any other in the second.
_PLAIN: dict[str, dict[str, str]] = {}
_ENTRIES: dict[str, dict[str, _Entry]] = {}


def _entries(lang: str) -> tuple[dict[str, str], dict[str, _Entry]]:
    plain, entries = _PLAIN.get(lang), _ENTRIES.get(lang)
    if plain is None or entries is None or len(plain) + len(entries) > _ENTRY_CACHE:
        plain, entries = _PLAIN[lang], _ENTRIES[lang] = {}, {}  # a long-running daemon must not grow them forever
    return plain, entries


def _add_text(features: dict[str, float], capitals: set[str], text: str, lang: str, weight: float) -> None:
    """Add one text's features at `weight` (a feature keeps its largest weight).

    `capitals` collects the word features of capitalised tokens: what is left are the event words.
    """
    text = unicodedata.normalize("NFKC", text)
    tokens = words.tokens_of_normalised(text)
    title_case = _is_title_case(tokens)
    starts = _sentence_starts(text)
    name_weight = weight * NAME_WEIGHT
    get = features.get
    plain, entries = _entries(lang)
    for token in dict.fromkeys(tokens):  # a repeated word adds nothing: features keep their largest weight
        feature = plain.get(token)
        if feature is not None:  # most tokens: one pass through this loop is all they cost
            if feature and weight > get(feature, 0.0):
                features[feature] = weight
            continue
        entry = entries.get(token)
        if entry is None:
            entry = _token_entry(token, lang)
            feats, key, _ = entry
            if key is None and not feats:
                plain[token] = ""
                continue
            if key is None and len(feats) == 1 and feats[0][1] == 1.0 and not feats[0][2]:
                plain[token] = feats[0][0]
                if weight > get(feats[0][0], 0.0):
                    features[feats[0][0]] = weight
                continue
            entries[token] = entry
        feats, key, acronym = entry
        for feature, factor, capital in feats:
            w = weight * factor
            if w > get(feature, 0.0):
                features[feature] = w
            if capital and not title_case:  # in "Hate Crime Charges Brought", capitals are a style
                capitals.add(feature)
        if key is not None and (acronym or (not title_case and token not in starts)) and name_weight > get(key, 0.0):
            features[key] = name_weight


def _put(features: dict[str, float], key: str, weight: float) -> None:
    if weight > features.get(key, 0.0):
        features[key] = weight


@dataclass(frozen=True, slots=True)
class _Profile:
    lang: str
    features: dict[str, float]  # kind weights, before document frequencies
    events: frozenset[str]  # word features not written with a capital


def _profile(item: ClusterInput) -> _Profile:
    summary = (getattr(item, "summary_text", "") or "")[:SUMMARY_CHARS]
    hint = getattr(item, "language", None)
    lang = words.language_of(f"{item.title} {summary}", hint if isinstance(hint, str) else None)
    features: dict[str, float] = {}
    capitals: set[str] = set()
    if summary:
        _add_text(features, capitals, summary, lang, SUMMARY_WEIGHT)
    _add_text(features, capitals, item.title, lang, TITLE_WEIGHT)
    events = frozenset([f for f in features if f[0] == "w" and f not in capitals])  # a list: no generator
    return _Profile(lang, features, events)


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

    def is_rare(self, feature: str) -> bool:
        return feature in self.rare


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


def pair_threshold(threshold: float = DEFAULT_THRESHOLD) -> float:
    """The similarity two items compared alone (no batch to weigh words by) need to be one story."""
    return threshold * NO_IDF_FACTOR


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


# --------------------------------------------------------------------------- grouping


def canonical_url(url: str | None) -> str | None:
    """The URL as identity: scheme and host lower-cased, no fragment, no trailing slash, http == https."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return url.strip()
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    # Publishers serve the same article on http and https; the scheme does not make it another story.
    return urlunsplit(("", host, path, parts.query, ""))


def _order_key(items: Sequence[ClusterInput], i: int) -> tuple[datetime, int, str, int]:
    # Earliest first; then an item with a link (a lead the reader can open); then source name; then input
    # position, so the order is total and the result does not depend on set or dict iteration.
    item = items[i]
    return (item.when, 0 if item.url else 1, item.source, i)


@dataclass(slots=True)
class _Story:
    ranks: list[int]
    words: dict[str, float]  # the sum of the members' word vectors (a one-item story's: shared with the batch)
    names: dict[str, float]  # the sum of the members' name vectors (likewise)
    langs: set[str]
    sources: set[str]
    first: float  # seconds from the batch's earliest item
    last: float
    rare_words: frozenset[str]  # rare features of `words`
    rare_events: frozenset[str]  # rare event words
    rare_names: frozenset[str]  # rare features of `names` (names and figures)
    version: int = 0
    _units: tuple[dict[str, float], dict[str, float]] | None = field(default=None, repr=False)

    def units(self) -> tuple[dict[str, float], dict[str, float]]:
        if self._units is None:
            # One item's vectors are unit vectors already; a merged story's sums are not.
            self._units = (_unit(self.words), _unit(self.names)) if self.version else (self.words, self.names)
        return self._units

    def absorb(self, other: _Story) -> None:
        self.ranks.extend(other.ranks)
        if not self.version:  # copy on first write: the vectors were the batch's
            self.words, self.names = dict(self.words), dict(self.names)
        for mine, theirs in ((self.words, other.words), (self.names, other.names)):
            for f, w in theirs.items():
                mine[f] = mine.get(f, 0.0) + w
        self.rare_words |= other.rare_words
        self.rare_events |= other.rare_events
        self.rare_names |= other.rare_names
        self.langs |= other.langs
        self.sources |= other.sources
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.version += 1
        self._units = None


def _merge_score(a: _Story, b: _Story, batch: _Batch, threshold: float) -> float:
    """How far above its threshold the merge of two stories is (>= 1), or 0 when they must stay apart."""
    if max(a.last, b.last) - min(a.first, b.first) > _MAX_GAP_SECONDS:
        return 0.0
    event = not a.rare_events.isdisjoint(b.rare_events)
    one_language = not a.langs.isdisjoint(b.langs)
    if not event and one_language:  # the cheap test first: most candidate pairs end here
        return 0.0
    shared_names = a.rare_names & b.rare_names
    if not any(f[0] == "n" for f in shared_names) and len(a.rare_words & b.rare_words) < _RARE_WORDS_OR_NAME:
        return 0.0
    (aw, an), (bw, bn) = a.units(), b.units()
    score = 0.0
    if event:  # something happened, in both
        score = _cosine(aw, bw) / (threshold if batch.idf else threshold * NO_IDF_FACTOR)
        if not batch.idf:  # in a batch, rare shared words do this job; summaries carry incidental figures
            score *= _mismatch(a, b)
    if not one_language and len(shared_names) >= _ANCHORS_ACROSS:  # two languages: names and figures
        score = max(score, _cosine(an, bn) / (threshold * CROSS_LANGUAGE_THRESHOLD / DEFAULT_THRESHOLD))
    if len(a.sources) == 1 and a.sources == b.sources:
        # One outlet's items on one subject: a podcast's episodes, a fire brigade's alarms, two rounds
        # of a tournament. Its follow-ups must be far closer, and figures that all differ (Day 01, Day 02)
        # say another event.
        span = max(a.last, b.last) - min(a.first, b.first)
        anchored = (
            span <= _FOLLOW_UP_SECONDS
            and any(f[0] == "n" for f in shared_names)
            and len(a.rare_words & b.rare_words) >= _FOLLOW_UP_WORDS
        )
        score /= FOLLOW_UP_FACTOR if anchored else SAME_SOURCE_FACTOR
        if batch.idf:
            score *= _mismatch(a, b)
    return score if score >= 1.0 else 0.0


def _mismatch(a: _Story, b: _Story) -> float:
    return _mismatch_of(a.words, a.names, b.words, b.names)


def _mismatch_of(
    a_words: dict[str, float], a_names: dict[str, float], b_words: dict[str, float], b_names: dict[str, float]
) -> float:
    """Two cheap signs of another event: figures that all differ (magnitude 6.2 vs 5.8, 16% vs 21%),
    names that all differ (Leeds vs Glasgow, ECB vs Bank of England)."""
    factor = 1.0
    a_numbers = {f for f in a_words if f[0] == "d"}
    b_numbers = {f for f in b_words if f[0] == "d"}
    if a_numbers and b_numbers and not a_numbers & b_numbers:
        factor *= NUMBER_MISMATCH
    a_only = {f for f in a_names if f[0] == "n"}
    b_only = {f for f in b_names if f[0] == "n"}
    if a_only and b_only and not a_only & b_only:
        factor *= NAME_MISMATCH
    return factor


def _candidates(batch: _Batch) -> dict[int, list[int]]:
    """Which items may be compared: those that share a pair of features among each one's rarest.

    A merge needs two shared rare features at least (an event word and a name, or three words), and a
    story's own words are the rarest of its items' (df of a few), so blocking on pairs of each item's
    `SIGNATURE` rarest features (seen in two items at least) finds them while two items that share one
    ordinary word are never compared: the cost follows the number of items, not its square.
    """
    # Rare features seen twice or more, rarest first (ties by name, so that every item orders alike),
    # interned to their place in that order.
    df = batch.df
    place = {f: k for k, (_, f) in enumerate(sorted((df[f], f) for f in batch.rare if df[f] > 1))}
    signatures: list[list[int]] = []
    postings: dict[int, list[int]] = defaultdict(list)  # feature -> items with it in their signature
    for rank, (wv, nv) in enumerate(zip(batch.words, batch.names, strict=True)):
        found = wv.keys() & place.keys()  # set operations in C: this runs for every feature of every item
        found |= nv.keys() & place.keys()
        signature = sorted(map(place.__getitem__, found))[:SIGNATURE]
        for k in signature:
            postings[k].append(rank)
        signatures.append(signature)
    # Two items share a pair of signature features when they meet in two postings: counting them item
    # by item costs the postings' lengths, not one list per pair of features. A feature in the
    # signatures of more than `_BLOCK_LIMIT` items is a subject, not a story: it does not block.
    # Postings are in rank order: each item counts only the later items of its lists (a pair is found
    # once, from its earlier item) and the pair is recorded for both.
    neighbours: dict[int, list[int]] = defaultdict(list)
    for rank, signature in enumerate(signatures):
        lists = [p[bisect_right(p, rank) :] for k in signature if 1 < len(p := postings[k]) <= _BLOCK_LIMIT]
        if len(lists) < 2:
            continue
        counts = Counter(chain.from_iterable(lists))
        near = [other for other, shared in counts.items() if shared > 1]
        if near:
            neighbours[rank].extend(near)
            for other in near:
                neighbours[other].append(rank)
    return dict(neighbours)


def cluster(items: Sequence[ClusterInput], *, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Group indices of `items` that are one story; every index appears in exactly one group.

    * Items with the same canonical URL are always one story, whatever their titles or sources.
    * Otherwise stories merge most similar pair first while a pair passes the tests of the module
      docstring (`threshold` is the cosine for a shared language; the others scale with it).
    * The first index of each group is its lead: the earliest item (ties: one with a URL, then source
      name, then input position). Groups come in the order of their leads. The result is a function
      of the input only, not of its order.
    """
    # Tens of thousands of small dicts and sets, none in a cycle: the cyclic collector would walk them
    # all again and again while they are made (a fifth of the time at 50,000 items) and frees nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _cluster(items, threshold)
    finally:
        if collecting:
            gc.enable()


def _cluster(items: Sequence[ClusterInput], threshold: float) -> list[list[int]]:
    order = sorted(range(len(items)), key=lambda i: _order_key(items, i))
    profiles = [_profile(items[i]) for i in order]  # by rank from here on
    batch = _batch([items[i] for i in order], profiles)
    stories: dict[int, _Story] = {}
    rare = batch.rare
    start = items[order[0]].when if order else datetime.min
    for rank, i in enumerate(order):
        wv, nv = batch.words[rank], batch.names[rank]
        seconds = (items[i].when - start).total_seconds()
        rare_words = rare.intersection(wv)
        stories[rank] = _Story(
            [rank],
            wv,
            nv,
            {profiles[rank].lang},
            {items[i].source},
            seconds,
            seconds,
            rare_words=rare_words,
            rare_events=rare_words.intersection(profiles[rank].events),
            rare_names=rare.intersection(nv),
        )

    neighbours = _candidates(batch)
    root = list(range(len(order)))  # union-find over ranks: the story each item is in

    def find(rank: int) -> int:
        while root[rank] != rank:
            root[rank] = root[root[rank]]
            rank = root[rank]
        return rank

    near: dict[int, set[int]] = {}  # a story of several items -> its members' candidates

    def merge(keep: int, gone: int) -> None:
        root[gone] = keep
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
        events, langs = story.rare_events, story.langs
        if len(story.ranks) == 1:
            own = neighbours.get(sid, ())
            # In the first pass a later item's root is never earlier than `sid`: filter before finding.
            others = {find(x) for x in own if x > sid} if later_only else {find(x) for x in own}
        else:
            others = {find(x) for x in near[sid]}
            others.discard(sid)
            near[sid] = others  # roots stand for their items from here on: the set shrinks as stories grow
        others.discard(sid)
        for other in others:  # the heap orders the pairs: the order they are scored in does not matter
            if later_only and other < sid:
                continue
            theirs = stories[other]
            if events.isdisjoint(theirs.rare_events) and not langs.isdisjoint(theirs.langs):
                continue  # _merge_score's first gate, inline: most candidate pairs end here
            score = _merge_score(story, theirs, batch, threshold)
            if score:
                a, b = min(sid, other), max(sid, other)
                heapq.heappush(heap, (-score, a, b, stories[a].version, stories[b].version))

    for sid in range(len(order)):  # the first pass: each pair once, from its earlier story
        story = stories.get(sid)
        if story is None:
            continue
        if len(story.ranks) > 1:
            push_pairs(sid, later_only=True)
            continue
        # A single item (nearly all of them): its later candidates are their own roots but for the few
        # that share a URL, so the loop of push_pairs is inlined without its set and finds.
        events, langs = story.rare_events, story.langs
        for x in neighbours.get(sid, ()):
            if x <= sid:
                continue
            theirs = stories.get(x)
            if theirs is None:  # merged into an earlier item with its URL
                other = find(x)
                if other <= sid:
                    continue
                theirs = stories[other]
            if events.isdisjoint(theirs.rare_events) and not langs.isdisjoint(theirs.langs):
                continue
            score = _merge_score(story, theirs, batch, threshold)
            if score:
                other = find(x)
                heapq.heappush(heap, (-score, sid, other, story.version, theirs.version))
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if a not in stories or b not in stories or stories[a].version != va or stories[b].version != vb:
            continue  # a stale pair: one of the two has grown since
        merge(a, b)
        push_pairs(a)

    if batch.idf:
        titles = [items[i].title for i in order]
        _link(stories, profiles, titles, batch, find, merge, threshold)

    groups = [sorted(story.ranks) for story in stories.values()]
    groups.sort(key=lambda g: g[0])
    return [[order[r] for r in g] for g in groups]


def _link(
    stories: dict[int, _Story],
    profiles: Sequence[_Profile],
    titles: Sequence[str],
    batch: _Batch,
    find: Callable[[int], int],
    merge: Callable[[int, int], None],
    threshold: float,
) -> None:
    """The second pass, story by story: a story that two outlets or more tell takes in another story
    when the two share a *pair* of its rare words that no other item of the batch has.

    A story's centroid is diluted by its members' varied words, so a late report ("Trump calls Russian
    hacking controversy a witch hunt") scores under the threshold against it though it carries two of
    the story's own words ("hack", "Russia"). One shared word is a subject; a pair of rare words that
    two of the story's members have, one of them an event word and one specific (`LINK_SPECIFIC_DF`),
    found elsewhere only in one other story, is this story. Guards, each measured on the labelled
    days, the whole corpus and the bench's invented stories: the pair is in the titles of two of the
    story's members or in the title of every outside item that has it; the outside items are half the
    other story at least (not a passing mention in it); one language in common; `MAX_GAP`; the
    centroids' cosine at least `LINK_COSINE` times the threshold. Stories of one outlet never take in
    anything here: its series (crime reports, match previews, listings) share pairs of words too.
    """
    df = batch.df
    limit = min(LINK_SPECIFIC_SHARE * batch.rare_limit, LINK_SPECIFIC_DF)
    # Rare words in three items at least (two of the story's and one outside it), and of those the
    # specific ones. Words only: a name's key and its word are one token, and would make a pair of one.
    linkable = frozenset([f for f in batch.rare if df[f] >= 3 and f[0] != "n"])
    specific = frozenset([f for f in linkable if df[f] <= limit])
    feats = [linkable.intersection(v) for v in batch.words]  # set operations in C: every item runs this
    own = [specific.intersection(fs) for fs in feats]
    holders: dict[str, list[int]] = defaultdict(list)  # a specific word -> the items with it
    for rank, fs in enumerate(own):
        for f in fs:
            holders[f].append(rank)
    headlines: dict[int, dict[str, float]] = {}
    sequences: dict[int, list[str]] = {}

    def headline(rank: int) -> dict[str, float]:
        # A title's features, worked out for the few items a pair is checked on.
        found = headlines.get(rank)
        if found is None:
            found = headlines[rank] = {}
            _add_text(found, set(), titles[rank], profiles[rank].lang, TITLE_WEIGHT)
        return found

    def phrase(f: str, g: str, ranks: Sequence[int]) -> bool:
        # Two words side by side in every title that has both are one term ("central bank", "foreign
        # ministers"): a subject, not a pair.
        side_by_side = False
        for r in ranks:
            seq = sequences.get(r)
            if seq is None:
                lang = profiles[r].lang
                text = unicodedata.normalize("NFKC", titles[r])
                tokens = words.tokens_of_normalised(text)
                # A function word between two words keeps them apart ("hacking says Russia"): a blank.
                seq = sequences[r] = [
                    next((x for x, _, _ in _token_features(t, lang) if x[0] == "w"), "") for t in tokens
                ]
            pairs = set(zip(seq, seq[1:], strict=False))
            if f in seq and g in seq:
                if (f, g) not in pairs and (g, f) not in pairs:
                    return False
                side_by_side = True
        return side_by_side

    links: set[tuple[int, int]] = set()
    for a in sorted(stories):
        sa = stories[a]
        if len(sa.ranks) < 2 or len(sa.sources) < 2:
            continue
        members = set(sa.ranks)
        # The story's specific words that items outside it have too: most stories have none (cheap).
        starts = [
            f
            for f, k in Counter(chain.from_iterable(own[r] for r in sa.ranks)).items()
            if k >= 2 and len(holders[f]) > k
        ]
        if not starts:
            continue
        counts = Counter(chain.from_iterable(feats[r] for r in sa.ranks))
        core = sorted(f for f, k in counts.items() if k >= 2)
        events = set(chain.from_iterable(profiles[r].events for r in sa.ranks))
        for f in sorted(starts):
            away = [r for r in holders[f] if r not in members]
            for g in core:
                if g == f or (g in specific and g < f) or (f not in events and g not in events):
                    continue  # each pair once: two specific words in their order
                outside = [r for r in away if g in feats[r]]
                if not outside or sum(1 for r in sa.ranks if f in feats[r] and g in feats[r]) < 2:
                    continue  # the pair must be outside the story, and in two of its members
                roots = {find(r) for r in outside}
                if len(roots) != 1:
                    continue
                b = roots.pop()
                sb = stories[b]
                if len(outside) < len(sb.ranks) / 2 or sa.langs.isdisjoint(sb.langs):
                    continue
                if max(sa.last, sb.last) - min(sa.first, sb.first) > _MAX_GAP_SECONDS:
                    continue
                titled = sum(1 for r in sa.ranks if f in headline(r) and g in headline(r))
                if titled < 2 and not all(f in headline(r) and g in headline(r) for r in outside):
                    continue
                if phrase(f, g, [*sa.ranks, *outside]):
                    continue
                if _cosine(sa.units()[0], sb.units()[0]) >= LINK_COSINE * threshold:
                    links.add((a, b))
    for a, b in sorted(links):
        ra, rb = find(a), find(b)
        if ra != rb:
            merge(min(ra, rb), max(ra, rb))


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
