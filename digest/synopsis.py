"""A story told across its outlets: whole sentences quoted from each member item. Pure.

Nothing is generated or paraphrased. Every sentence of a synopsis is a verbatim sentence of one
member's summary (digest.sentences splits them), attributed to that member's outlet; so a synopsis can
only be as wrong as the outlet it quotes. How sentences are chosen:

* Candidates: the complete sentences of each member's summary. A sentence that a feed or our excerpt
  cut ("...", "…"), that starts mid-way (lower case), that is a "Read more" line, or that is too short
  to say anything or too long to quote is never a candidate: a synopsis never cuts a sentence.
* Centrality: each sentence's cosine similarity to the story's centroid, the mean of each outlet's
  term vector (title and summary as digest.words compares them: Snowball stems, stop words dropped),
  so what several outlets say weighs more than what one says. A sentence early in its item gets a
  small bonus: news puts the facts first.
* Maximal marginal relevance (Carbonell and Goldstein, 1998): each next sentence maximises
  LAMBDA * centrality - (1 - LAMBDA) * its greatest similarity to a sentence already chosen, and one
  that is a near-duplicate of a chosen sentence is never taken. While some outlet is not yet quoted
  and has a candidate, the next sentence comes from such an outlet (when it says something central
  enough, and always for the second sentence), so a story from N outlets quotes min(N, limit) of them.
* The result groups the chosen sentences by item (one quote per report, linked to it), in the order
  each item was first chosen, and keeps each item's sentences in their order in its text. Two of
  them that are not next to each other there say so (`Quote.gaps`: render marks the cut "[…]"), so
  a quote is never a passage the report does not have. An outlet may be quoted from two of its
  reports: render says it "also reports" the second time.

Deterministic byte for byte: every loop runs over lists in input order and every tie is broken on
input position, never on set or hash order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from digest import sentences, words
from digest.model import Quote
from digest.sanitize import prose_text
from digest.summary_boilerplate import CALL_TO_ACTION as _CALL_TO_ACTION

DEFAULT_SENTENCES = 3
LAMBDA = 0.7  # weight of centrality against novelty in MMR
NEAR_DUPLICATE = 0.5  # term-set Jaccard (or 0.8 containment) at or above which two sentences say the same
NEAR_CONTAINED = 0.8
NEW_OUTLET_SHARE = 0.1  # an unquoted outlet goes next when its best sentence is this central relative to the best
MIN_CHARS, MAX_CHARS = 25, 400  # shorter says nothing; longer is an article, not a sentence to quote
MIN_WORDS = 4
TEXT_WINDOW = 600  # characters searched for sentences: news says it first (ROUGE did not drop), pysbd costs per char

_ENDS = (".", "!", "?", "»", '"', "”", "’", ")")
_CUT = ("...", "…", "..")
_BOILERPLATE = re.compile(
    r"continue reading|read more|appeared first on|click here|subscribe to|подробнее|читать далее|"
    r"lire la suite|weiterlesen|leer más|leggi (anche|tutto)|leia mais",
    re.I,
)


class SynopsisItem(Protocol):
    """What a synopsis needs of an item; `digest.model.Item` fits as it is."""

    @property
    def id(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def title(self) -> str: ...
    @property
    def summary_html(self) -> str: ...
    @property
    def summary_text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Candidate:
    outlet: int  # index of the outlet in order of first appearance
    item: int  # index of the item in the input
    position: int  # index of the sentence in its item
    text: str
    terms: Counter[str]
    norm: float
    termset: frozenset[str]


def item_text(item: SynopsisItem) -> str:
    """The text a synopsis quotes from: the sanitised summary's prose (no captions, bylines,
    subheadings or embedded tweets, nor a cross-link to another article), else the plain excerpt."""
    return prose_text(item.summary_html, cross_links=False) or " ".join(item.summary_text.split())


def item_language(item: SynopsisItem) -> str:
    """The language an item's sentences are split and stemmed in: its title and text's, or its feed's
    declared one where they say little, as sections and clustering read it (`words.language_of`)."""
    declared = getattr(item, "language", None)  # `Item.language`; absent from other callers' items
    text = f"{item.title} {item_text(item)[:TEXT_WINDOW]}"
    return words.language_of(text, declared if isinstance(declared, str) else None)


def terms(text: str, language: str | None = None) -> Counter[str]:
    """Content words of a text as digest.words compares them: Snowball stems, folded, stop words dropped."""
    return Counter(words.word_forms(text, language or words.language_of(text)))


def quotable(sentence: str) -> bool:
    """A whole sentence worth quoting: not cut, not a fragment, not boilerplate, not too short or long."""
    if not (MIN_CHARS <= len(sentence) <= MAX_CHARS) or sentence.endswith(_CUT):
        return False
    if not sentence.endswith(_ENDS) or len(sentence.split()) < MIN_WORDS:
        return False
    first = next((c for c in sentence if c.isalnum()), "")
    if not first or first.islower():
        return False
    return not _BOILERPLATE.search(sentence) and not _CALL_TO_ACTION.match(sentence)


def _norm(vector: Mapping[str, float]) -> float:
    return math.sqrt(sum(v * v for v in vector.values()))


def _cosine(a: Mapping[str, float], na: float, b: Mapping[str, float], nb: float) -> float:
    if not na or not nb:
        return 0.0
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(v * large[t] for t, v in small.items() if t in large) / (na * nb)


def near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two sentences that say the same thing: most of their content words are shared."""
    if not a or not b:
        return False
    common = len(a & b)
    return common / len(a | b) >= NEAR_DUPLICATE or common / min(len(a), len(b)) >= NEAR_CONTAINED


def _sentences(text: str, language: str) -> list[str]:
    if len(text) <= TEXT_WINDOW:
        return sentences.split(text, language)
    # The window may end inside a sentence (or after "Dr."): its last sentence is never quoted.
    return sentences.split(text[:TEXT_WINDOW], language)[:-1]


def _candidates(items: Sequence[SynopsisItem], outlet_of: list[int]) -> tuple[list[_Candidate], dict[str, float]]:
    per_outlet: dict[int, Counter[str]] = {}
    found: list[_Candidate] = []
    for i, item in enumerate(items):
        text = item_text(item)
        language = item_language(item)
        vector = per_outlet.setdefault(outlet_of[i], Counter())
        vector.update(terms(item.title, language))
        vector.update(terms(text, language))
        for position, sentence in enumerate(_sentences(text, language)):
            if not quotable(sentence):
                continue
            t = terms(sentence, language)
            if t:
                found.append(_Candidate(outlet_of[i], i, position, sentence, t, _norm(t), frozenset(t)))
    centroid: dict[str, float] = {}
    for outlet in sorted(per_outlet):  # each outlet counts once, however long its text
        vector = per_outlet[outlet]
        size = _norm(vector)
        for term, count in vector.items():
            centroid[term] = centroid.get(term, 0.0) + (count / size if size else 0.0)
    return found, centroid


def choose(
    items: Sequence[SynopsisItem],
    *,
    limit: int = DEFAULT_SENTENCES,
    min_outlets: int = 2,
    first_outlet: str | None = None,
) -> list[tuple[int, str]]:
    """The chosen (item index, sentence) pairs, in the order they were chosen."""
    outlets: list[str] = []
    outlet_of: list[int] = []
    for item in items:
        if item.source not in outlets:
            outlets.append(item.source)
        outlet_of.append(outlets.index(item.source))
    if len(outlets) < min_outlets or limit <= 0:
        return []
    found, centroid = _candidates(items, outlet_of)
    if not found:
        return []
    cnorm = _norm(centroid)
    relevance = [_cosine(c.terms, c.norm, centroid, cnorm) / (1 + 0.1 * min(c.position, 5)) for c in found]
    best = max(relevance)
    chosen: list[int] = []
    quoted: set[int] = set()
    forced = outlets.index(first_outlet) if first_outlet in outlets else None
    while len(chosen) < limit:
        open_ = [
            k
            for k in range(len(found))
            if k not in chosen and not any(near_duplicate(found[k].termset, found[j].termset) for j in chosen)
        ]
        if forced is not None and not chosen:
            open_ = [k for k in open_ if found[k].outlet == forced] or open_
        fresh = [k for k in open_ if found[k].outlet not in quoted]
        if len(quoted) == 1:
            open_ = fresh or open_  # the second sentence always brings in a second outlet when one has any
        else:
            open_ = [k for k in fresh if relevance[k] >= NEW_OUTLET_SHARE * best] or open_
        if not open_:
            break

        def score(k: int) -> tuple[float, int, int]:
            c = found[k]
            redundancy = max((_cosine(c.terms, c.norm, found[j].terms, found[j].norm) for j in chosen), default=0.0)
            return (LAMBDA * relevance[k] - (1 - LAMBDA) * redundancy, -c.item, -c.position)

        pick = max(open_, key=score)
        chosen.append(pick)
        quoted.add(found[pick].outlet)
    return [(found[k].item, found[k].text) for k in chosen]


def synopsis(
    items: Sequence[SynopsisItem],
    *,
    limit: int = DEFAULT_SENTENCES,
    min_outlets: int = 2,
    first_outlet: str | None = None,
    plural: Collection[str] = (),
) -> tuple[Quote, ...]:
    """Up to `limit` quoted sentences about one story, grouped by outlet; () below `min_outlets` outlets.

    `plural` names the outlets whose names are grammatically plural ("Ведомости"), so the connecting
    verb can agree; `first_outlet` puts that outlet's most central sentence first (the Press Review
    section quotes the outlet it is about first).
    """
    picks = choose(items, limit=limit, min_outlets=min_outlets, first_outlet=first_outlet)
    order: list[int] = []  # items in the order their first sentence was chosen
    by_item: dict[int, list[tuple[int, str]]] = {}
    for item_index, text in picks:
        if item_index not in by_item:
            order.append(item_index)
            by_item[item_index] = []
        by_item[item_index].append((item_text(items[item_index]).find(text), text))
    quotes = []
    for item_index in order:
        item = items[item_index]
        chosen = sorted(by_item[item_index])  # their order in the item's own text
        # Each sentence's place among all of the item's sentences (quotable or not, as `_candidates`
        # numbers them): two chosen ones with another between them leave text out.
        said = _sentences(item_text(item), item_language(item))
        places = [said.index(text) if text in said else -1 for _, text in chosen]
        quotes.append(
            Quote(
                source=item.source,
                url=item.url,
                item_id=item.id,
                sentences=tuple(text for _, text in chosen),
                plural=item.source in plural,
                gaps=tuple(k for k in range(1, len(places)) if places[k] != places[k - 1] + 1),
            )
        )
    return tuple(quotes)
