"""The public archive's Atom feed (RFC 4287) and the validators that make archive pages cacheable. Pure.

The archive shows editions, never subscribers. An edition is a (day, time zone) pair, and a site
whose subscribers live in four zones makes four editions a day: the index and the feed list each day
once (`by_day`), led by the site's own zone's edition, with the other zones' linked beside it. A
feed entry is such a day, with its title, the lead edition's absolute URL under
``[digest] base_url`` and a one-line summary of its sections.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Generic, Protocol, TypeVar

__all__ = ["ArchiveEntry", "DayEditions", "atom_feed", "by_day", "etag_for", "etag_matches"]

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    title: str
    url: str  # absolute
    updated: datetime  # aware
    summary: str
    # RFC 4287 4.2.6: permanent and unique. A day's entry keeps its id whichever zone's edition
    # leads it: the site's zone may send after another zone has (Paris after Moscow).
    id: str = ""  # "": the url
    related: tuple[tuple[str, str], ...] = field(default=())  # (time zone, absolute URL) of the day's other editions


class _Edition(Protocol):
    @property
    def day(self) -> date: ...
    @property
    def timezone(self) -> str: ...
    @property
    def cutoff(self) -> datetime: ...


E = TypeVar("E", bound=_Edition)


@dataclass(frozen=True, slots=True)
class DayEditions(Generic[E]):
    """One day of the archive: the edition it leads with, then the other zones' editions."""

    day: date
    lead: E
    others: tuple[E, ...]

    @property
    def editions(self) -> tuple[E, ...]:
        return (self.lead, *self.others)


def by_day(editions: Sequence[E], site_zone: str, *, complete: bool = True) -> list[DayEditions[E]]:
    """`editions` grouped by day, newest day first. Each day leads with the site's zone's edition
    (`[digest] timezone`), else the one made first; the others follow in the order they were made
    (east to west). `complete=False`: `editions` was cut at a limit, so its oldest day may lack some
    zones; that day is left out rather than shown short."""
    days: dict[date, list[E]] = {}
    for e in editions:
        days.setdefault(e.day, []).append(e)
    if not complete and len(days) > 1:
        del days[min(days)]
    out = []
    for day in sorted(days, reverse=True):
        ordered = sorted(days[day], key=lambda e: (e.cutoff, e.timezone))
        lead = next((e for e in ordered if e.timezone == site_zone), ordered[0])
        out.append(DayEditions(day, lead, tuple(e for e in ordered if e is not lead)))
    return out


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom_feed(
    *, title: str, site_url: str, feed_url: str, entries: Sequence[ArchiveEntry], generated: datetime
) -> bytes:
    """The feed document; `generated` is its <updated> when there is no entry yet."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", site_url.rstrip("/") + "/")
    sub(feed, "title", title)
    sub(feed, "updated", _stamp(max((e.updated for e in entries), default=generated)))
    sub(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    sub(feed, "link", rel="alternate", type="text/html", href=site_url.rstrip("/") + "/")
    author = sub(feed, "author")
    sub(author, "name", title)
    sub(feed, "generator", "digest")
    for e in entries:
        entry = sub(feed, "entry")
        sub(entry, "id", e.id or e.url)
        sub(entry, "title", e.title)
        sub(entry, "updated", _stamp(e.updated))
        sub(entry, "link", rel="alternate", type="text/html", href=e.url)
        for zone, url in e.related:
            sub(entry, "link", rel="related", type="text/html", href=url, title=zone)
        sub(entry, "summary", e.summary, type="text")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + bytes(ET.tostring(feed, encoding="utf-8"))


def etag_for(body: bytes) -> str:
    """A strong validator: the page is a function of frozen data, so equal bytes mean equal pages."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: If-None-Match compares weakly; "*" matches any current representation."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
