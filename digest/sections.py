"""Which section an item belongs to, and why.

This module owns the section rules: it maps one item (title, URL, categories, its feed's section) to
one configured section and says in a sentence which rule decided, so `digest` can explain a
placement. It is pure: no clock, no store, no I/O; compose calls it per item.

Order of decision, first that applies wins:

1. feed      the feed's configured section: the operator said so for every item of that feed;
2. category  one of the item's own categories equals (case-insensitively) a section's `categories`:
             the publisher's label is the best evidence we have;
3. url       a section's `url_patterns` regex matches the URL path (e.g. ``^/sport/``): the
             publisher's site structure, almost as good as a label;
4. keyword   a section's `keywords` occurs in the title as a whole word: our guess, so it comes last;
5. fallback  nothing matched.

Within one kind of rule the first matching section in configured order wins, so the operator breaks
ties by ordering the [[sections]] tables. A rule kind beats section order: an item whose category
says "Sport" goes to Sport even when an earlier section's keyword appears in its title.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from digest.config import Section

# Characters of scripts written without spaces: there a "whole word" cannot be found by boundaries,
# so a keyword containing them matches as a substring.
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Classification:
    section: str
    rule: str  # "feed" | "category" | "url" | "keyword" | "fallback"
    reason: str  # one human sentence, e.g. "category 'Politics' matches section 'World'"


def _fold(text: str) -> str:
    # NFKC then casefold: full-width and compatibility forms match, and "ß"/"SS", "Ё"/"ё" fold alike.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str] | None:
    folded = _fold(keyword)
    if not folded:
        return None
    body = r"\s+".join(re.escape(part) for part in folded.split())
    if _UNSPACED.search(folded):
        return re.compile(body)
    # \w is Unicode-aware for str patterns, so Cyrillic and accented letters are word characters and
    # "war" does not match inside "warning" or "Ukraine" inside "Ukrainian".
    return re.compile(rf"(?<!\w){body}(?!\w)")


@lru_cache(maxsize=1024)
def _url_pattern(pattern: str) -> re.Pattern[str]:
    # config validated that the pattern compiles.
    return re.compile(pattern, re.IGNORECASE)


def _url_path(url: str) -> str:
    try:
        return urlsplit(url).path or "/"
    except ValueError:  # e.g. an invalid IPv6 netloc: no path to match, and not this module's error
        return ""


def classify(
    *,
    title: str,
    url: str | None,
    categories: Sequence[str],
    feed_section: str | None,
    sections: Sequence[Section],
    fallback: str,
) -> Classification:
    """The section of one item and the rule that chose it; see the module docstring for the order."""
    if feed_section:
        return Classification(feed_section, "feed", f"the feed is configured for section '{feed_section}'")

    folded_categories = [(c, _fold(c)) for c in categories if c.strip()]
    for section in sections:
        wanted = {_fold(c) for c in section.categories}
        for original, folded in folded_categories:
            if folded in wanted:
                return Classification(
                    section.name, "category", f"category '{original}' matches section '{section.name}'"
                )

    path = _url_path(url) if url else ""
    if path:
        for section in sections:
            for pattern in section.url_patterns:
                if _url_pattern(pattern).search(path):
                    return Classification(
                        section.name,
                        "url",
                        f"URL path '{path}' matches pattern '{pattern}' of section '{section.name}'",
                    )

    folded_title = _fold(title)
    for section in sections:
        for keyword in section.keywords:
            compiled = _keyword_pattern(keyword)
            if compiled is not None and compiled.search(folded_title):
                reason = f"keyword '{keyword}' in the title matches section '{section.name}'"
                return Classification(section.name, "keyword", reason)

    return Classification(fallback, "fallback", f"no rule matched, so the fallback section '{fallback}'")
