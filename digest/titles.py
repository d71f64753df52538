"""A feed's title boilerplate ("World › ", " - Reuters", " | Le Figaro"), learned and removed. Pure.

Many feeds wrap every title in the same prefix or suffix: the section they filed it under, their own
name. In an email that names the source under each title it is noise, and it makes titles of the
same story from two outlets look less alike. Nothing says which part is boilerplate, so it is
learned from repetition: an affix is boilerplate when it is set off by a separator (›, », |, -, –,
—, ::) and recurs on enough of one feed's titles. Only such affixes are removed, and never the whole
title, so a title's own words stay ("Football : Zidane égale le record" keeps "Football :", since
a colon is part of a headline's grammar).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

# A separator with spaces around it; "-" only between spaces, so hyphenated words are never split.
_SEPARATORS = r"(?:›|»|\||-|–|—|::|·)"
_PREFIX = re.compile(rf"^(.{{1,40}}?\s{_SEPARATORS}\s+)\S")
_SUFFIX = re.compile(rf"\S(\s+{_SEPARATORS}\s.{{1,40}})$")

MIN_TITLES = 3  # fewer titles cannot show that an affix repeats
MIN_SHARE = 0.5  # an affix on at least half of the feed's titles


def learn(titles: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The prefixes and suffixes that are one feed's boilerplate, from its titles."""
    if len(titles) < MIN_TITLES:
        return frozenset(), frozenset()
    need = max(MIN_TITLES, MIN_SHARE * len(titles))
    prefixes: Counter[str] = Counter()
    suffixes: Counter[str] = Counter()
    for title in titles:
        if m := _PREFIX.match(title):
            prefixes[m.group(1)] += 1
        if m := _SUFFIX.search(title):
            suffixes[m.group(1)] += 1
    return (
        frozenset(p for p, n in prefixes.items() if n >= need),
        frozenset(s for s, n in suffixes.items() if n >= need),
    )


def strip(title: str, prefixes: Iterable[str], suffixes: Iterable[str]) -> str:
    """`title` without the learned affixes; the title itself when nothing would be left."""
    out = title
    for prefix in prefixes:
        if out.startswith(prefix):
            out = out[len(prefix) :]
            break
    for suffix in suffixes:
        if out.endswith(suffix):
            out = out[: -len(suffix)]
            break
    out = out.strip()
    return out if out else title


def clean_titles(titles_by_feed: dict[int, list[str]]) -> dict[tuple[int, str], str]:
    """For each (feed, title) whose feed has boilerplate, the title without it."""
    cleaned: dict[tuple[int, str], str] = {}
    for feed, titles in titles_by_feed.items():
        prefixes, suffixes = learn(titles)
        if not (prefixes or suffixes):
            continue
        for title in titles:
            new = strip(title, prefixes, suffixes)
            if new != title:
                cleaned[(feed, title)] = new
    return cleaned
