"""Same story, several sources: which items to show once.

This module owns title similarity and the grouping of items into stories. It is pure: it reads no
clock, no environment, no store; times come in on the items. compose turns the groups it returns into
`Story` objects; nothing here knows about sections, subscribers or rendering.

How titles are compared, in any language, without a language detector:

* `normalise_title`: Unicode NFKC (full-width letters and digits become ASCII), casefold, punctuation
  and symbols become spaces, runs of space collapse. A decimal separator between digits is kept, so
  "0.25" and "0.5" stay different numbers (and "6,8" equals "6.8" once shingled).
* `title_shingles`: scripts written with spaces give word tokens, with short function words dropped
  and long words cut to their first `STEM` characters, so that Russian case endings (Финляндию /
  Финляндии) and German participles (beschließt / beschlossen) meet. Scripts written without spaces
  (Han, kana, Hangul) give character bigrams within each stretch of one script, the usual unit of
  Chinese and Japanese search; one- and two-character hiragana stretches (particles) are dropped.
* `similarity`: the mean of Jaccard and a smoothed overlap coefficient |A & B| / (min(|A|, |B|) + 1),
  so a short headline contained in a longer one still scores high, while two titles that share only
  a frame ("X raises interest rates to N%") score lower. Two titles need two shared shingles (unless
  identical). Then two cheap signals of "another event": when both titles carry figures and none
  agree, the score is halved (magnitude 6.2 vs 5.8); when both name someone or somewhere
  (capitalised words, acronyms, katakana) and no name is shared, it drops by a quarter (Leeds vs
  Glasgow).

The default threshold was tuned on tests/data/title_pairs.toml (140 labelled pairs, five scripts) for
precision first: showing two different stories as one hides news, while showing a story twice only
costs a line. Titles that say the same thing in other words (synonyms, another language) are missed:
that is the price of a method with no model and no corpus statistics.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

DEFAULT_THRESHOLD = 0.6
STEM = 5  # characters kept of a long word: enough to tell words apart, few enough to drop case endings

# Words that carry no story. Short and deliberately incomplete: it only has to keep "the ... of ... in"
# from making two unrelated headlines look alike. One-letter words are dropped anyway.
_STOPWORD_TEXT = """
    the and for from with into over after amid as at by in of on to up out off its his her their an
    it or be we he this that these those is are was were been has have had will would can could may
    not no new says said say than then what who why how when where which while about more
    der die das den dem des ein eine einer eines und oder mit von vom zum zur bei aus auf für
    nach über unter ist sind war wird werden hat haben nicht auch sich
    les une des du de la le et en au aux dans pour par sur avec ses son sont est pas qui que ce il
    el los las un una del al en con por para sus se es tras como lo su
    во на со по за из ко об от до не что как это его её их для при после над под
    был была были будет также ещё уже или но
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Scripts written without spaces between words: Han (incl. extension A and compatibility), kana,
# Hangul. A \w-run that contains them is split into runs of these and runs of everything else.
_CJK = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\u31f0-\u31ff"  # Katakana phonetic extensions
)
_CJK_RUN = re.compile(f"([{_CJK}]+)")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W_]+")  # numbers keep their decimal point; words are letters+digits
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_HIRAGANA = re.compile("[\u3040-\u309f]+")
_WORD = re.compile(r"[^\W\d_]+")
_MIN_COMMON = 2
_NUMBER_MISMATCH = 0.5  # both titles give figures and none agree: another quake, another rate decision
_NAME_MISMATCH = 0.75  # both titles name someone or somewhere and no name is shared: Leeds vs Glasgow


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A plain ClusterInput, for callers (and the bench) that have no Item."""

    title: str
    url: str | None
    source: str
    when: datetime


# --------------------------------------------------------------------------- titles


def normalise_title(title: str) -> str:
    """NFKC, casefold, punctuation and symbols to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", title).casefold()
    # Keep a decimal separator between digits ("2.3", "6,8", "1.134"); every other non-word becomes space.
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch.isalnum() or (
            ch in ".," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        ):
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


@lru_cache(maxsize=8192)
def title_shingles(title: str) -> frozenset[str]:
    """The set of units two titles are compared on: stemmed words, numbers, CJK character bigrams."""
    shingles: set[str] = set()
    for token in _TOKEN.findall(normalise_title(title)):
        for i, part in enumerate(_CJK_RUN.split(token)):
            if not part:
                continue
            if i % 2:  # a CJK run: re.split with a group puts the matched runs at odd positions
                shingles.update(_cjk_shingles(part))
            elif part[0].isdigit():
                shingles.add(part.replace(",", "."))  # "6,8" (ru/de/fr/es) and "6.8" are one number
            elif len(part) > 1 and part not in _STOPWORDS:
                shingles.add(part[:STEM])
    return frozenset(shingles)


def _cjk_shingles(run: str) -> set[str]:
    # Bigrams within each stretch of one script. Japanese particles and okurigana are short hiragana
    # stretches between kanji (台風10号が九州に上陸へ): dropping those of one or two characters keeps
    # が/に/を/の from counting as shared content. Chinese is all Han, so this changes nothing there.
    out: set[str] = set()
    for stretch in _script_stretches(run):
        if _HIRAGANA.fullmatch(stretch) and len(stretch) <= 2:
            continue
        if len(stretch) == 1:
            out.add(stretch)
        out.update(stretch[j : j + 2] for j in range(len(stretch) - 1))
    return out


def _script_stretches(run: str) -> list[str]:
    stretches: list[str] = []
    for ch in run:
        kind = _script(ch)
        if stretches and _script(stretches[-1][-1]) == kind:
            stretches[-1] += ch
        else:
            stretches.append(ch)
    return stretches


def _script(ch: str) -> str:
    if "\u3040" <= ch <= "\u309f":
        return "hiragana"
    if "\u30a0" <= ch <= "\u30ff" or "\u31f0" <= ch <= "\u31ff":
        return "katakana"
    return "han"  # Han and Hangul: Hangul is spaced, so its stretches are words already


def _numbers(shingles: frozenset[str]) -> frozenset[str]:
    return frozenset(s for s in shingles if _NUMBER.fullmatch(s))


@lru_cache(maxsize=8192)
def title_names(title: str) -> frozenset[str]:
    """Stems of the names a title marks as such: capitalised words (not the first), acronyms, katakana.

    Scripts with case mark names by capitals; Japanese writes foreign and company names in katakana
    (トヨタ, ホンダ). Chinese marks nothing, so there this is empty and nothing is inferred from it.
    """
    names: set[str] = set()
    text = unicodedata.normalize("NFKC", title)
    for k, word in enumerate(_WORD.findall(text)):
        if _CJK_RUN.search(word):
            names.update(s for s in _script_stretches(word) if len(s) > 1 and _script(s[0]) == "katakana")
        elif (word.isupper() and len(word) > 1) or (k > 0 and word[0].isupper()):
            names.add(word.casefold()[:STEM])
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class _Title:
    shingles: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]

    @classmethod
    def of(cls, title: str) -> _Title:
        shingles = title_shingles(title)
        return cls(shingles, _numbers(shingles), title_names(title))


def _score(a: _Title, b: _Title, common: int) -> float:
    if common and a.shingles == b.shingles:
        return 1.0
    if common < _MIN_COMMON:
        # One shared word says nothing: "Security" is contained in "mod_security woes", and "Dominoes"
        # and "dominio" share a stem. (Identical one-word titles matched above.)
        return 0.0
    na, nb = len(a.shingles), len(b.shingles)
    # The +1 keeps a two-word title from "containing" a longer one on two common words alone.
    score = (common / (na + nb - common) + common / (min(na, nb) + 1)) / 2
    if a.numbers and b.numbers and not a.numbers & b.numbers:
        score *= _NUMBER_MISMATCH
    if a.names and b.names and not a.names & b.names:
        score *= _NAME_MISMATCH
    return score


def similarity(a: str, b: str) -> float:
    """How alike two titles are, 0..1: see the module docstring for the measure."""
    ta, tb = _Title.of(a), _Title.of(b)
    return _score(ta, tb, len(ta.shingles & tb.shingles))


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


def cluster(items: Sequence[ClusterInput], *, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Group indices of `items` that are one story; every index appears in exactly one group.

    * Items with the same canonical URL are always one story, whatever their titles or sources.
    * Otherwise an item joins a story when its title is at least `threshold` similar to the title of
      some item already in it, and the story has nothing yet from the item's source: a feed does not
      repeat a story under a new title, so two items of one feed are two stories (unless same URL).
      When several stories qualify it joins the most similar (ties: the earliest story).
    * Items are visited earliest first, so the first index of each group is its lead: the earliest
      item (ties: one with a URL, then source name, then input position).
    * Groups are returned in the order of their leads. The result is a function of the input only.

    Candidate stories are found through an inverted index on shingles, so cost grows with the number
    of title pairs that share a shingle, not with n^2.
    """
    order = sorted(range(len(items)), key=lambda i: _order_key(items, i))
    groups: list[list[int]] = []
    group_sources: list[set[str]] = []
    by_url: dict[str, int] = {}
    postings: dict[str, list[tuple[int, int]]] = {}  # shingle -> (group, item) already placed
    titles = {i: _Title.of(items[i].title) for i in order}

    for i in order:
        item = items[i]
        url = canonical_url(item.url)
        target = by_url.get(url) if url else None
        if target is None:
            target = _best_title_match(titles[i], item.source, titles, postings, group_sources, threshold)
        if target is None:
            target = len(groups)
            groups.append([])
            group_sources.append(set())
        groups[target].append(i)
        group_sources[target].add(item.source)
        if url and url not in by_url:
            by_url[url] = target
        for s in titles[i].shingles:
            postings.setdefault(s, []).append((target, i))
    return groups


def _best_title_match(
    mine: _Title,
    source: str,
    titles: dict[int, _Title],
    postings: dict[str, list[tuple[int, int]]],
    group_sources: list[set[str]],
    threshold: float,
) -> int | None:
    if not mine.shingles:
        return None  # an empty or all-punctuation title matches nothing by title
    common: Counter[tuple[int, int]] = Counter()
    for s in mine.shingles:
        for placed in postings.get(s, ()):
            common[placed] += 1
    best: tuple[float, int] | None = None  # (score, -group) so that max() prefers the earliest group
    for (group, j), n in common.items():
        if source in group_sources[group]:
            continue
        score = _score(mine, titles[j], n)
        if score >= threshold and (best is None or (score, -group) > best):
            best = (score, -group)
    return None if best is None else -best[1]


def related(
    candidates: Sequence[ClusterInput],
    target: ClusterInput,
    *,
    lower: float,
    upper: float = DEFAULT_THRESHOLD,
) -> list[int]:
    """'Read also': indices of earlier candidates on the subject of `target` but not the same story.

    A candidate qualifies when it is strictly earlier than `target`, does not share its URL, and
    lower <= similarity < upper (upper is the clustering threshold: above it, it is the same story).
    The most similar come first; ties go to the most recent, then input position.
    """
    url = canonical_url(target.url)
    scored: list[tuple[float, float, int]] = []
    for i, c in enumerate(candidates):
        if c.when >= target.when or (url is not None and canonical_url(c.url) == url):
            continue
        score = similarity(c.title, target.title)
        if lower <= score < upper:
            scored.append((-score, -c.when.timestamp(), i))
    return [i for _, _, i in sorted(scored)]
