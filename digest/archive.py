"""The public archive's Atom feed (RFC 4287) and the validators that make archive pages cacheable. Pure.

The archive shows editions, never subscribers: an entry is a (day, time zone) edition with its
title, its absolute URL under ``[digest] base_url`` and a one-line summary of its sections.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["ArchiveEntry", "atom_feed", "etag_for", "etag_matches"]

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    title: str
    url: str  # absolute
    updated: datetime  # aware
    summary: str


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
        sub(entry, "id", e.url)  # RFC 4287 4.2.6: permanent and unique; the page's URL never changes
        sub(entry, "title", e.title)
        sub(entry, "updated", _stamp(e.updated))
        sub(entry, "link", rel="alternate", type="text/html", href=e.url)
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
