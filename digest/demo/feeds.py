"""The demo's feeds: bundled fictional outlets turned into RSS 2.0 and Atom bytes.

This module owns the demo content (digest/demo/data/*.toml) and its serialisation. It is pure: the
clock comes in as `now`, and every item date is `now` minus the item's day and hour offsets, so a
demo run always shows the last four days. It does no I/O beyond reading its own package data and
knows nothing of the pipeline; `digest.demo.server` serves these bytes over HTTP.

The content is written to exercise the pipeline: one Atom feed, one RSS feed in windows-1251,
undated items (dated by "first seen"), stories told by several outlets (clustered), Russian
categories, and a summary with a script and a tracking pixel for the sanitiser to remove.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import format_datetime
from functools import cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

ATOM_NS = "http://www.w3.org/2005/Atom"
SECTIONS_FILE = "sections.toml"
FORMATS = ("rss", "atom")
MAX_AGE = timedelta(days=4)  # every dated item falls within the last four days


@dataclass(frozen=True, slots=True)
class DemoFeed:
    slug: str  # the data file's stem; the server serves it at /<slug>.xml
    name: str
    section: str | None  # the feed-level section the demo config gives it, if any
    format: str  # "rss" | "atom"


@dataclass(frozen=True, slots=True)
class DemoItem:
    title: str
    summary: str  # HTML, as the outlet publishes it (unsanitised on purpose)
    link: str
    categories: tuple[str, ...]
    age: timedelta | None  # published this long before `now`; None: the feed gives no date
    story: str | None = None  # items of different outlets with one story key are the same story


@dataclass(frozen=True, slots=True)
class _Outlet:
    feed: DemoFeed
    home: str
    description: str
    language: str
    encoding: str
    zone: tzinfo  # the zone its dates are written in
    items: tuple[DemoItem, ...]


# --------------------------------------------------------------------------- loading


def _data() -> Any:
    return files("digest.demo") / "data"


def _item(slug: str, home: str, raw: dict[str, Any]) -> DemoItem:
    where = f"{slug}: item {raw.get('title')!r}"
    has_day, has_hour = "day" in raw, "hour" in raw
    if has_day != has_hour:
        raise ValueError(f"{where} needs both day and hour, or neither (undated).")
    age = timedelta(days=raw["day"], hours=raw["hour"]) if has_day else None
    if age is not None and not timedelta(0) < age < MAX_AGE:
        raise ValueError(f"{where}: day/hour must put it within the last four days, after `now`.")
    return DemoItem(
        title=raw["title"],
        summary=" ".join(raw["summary"].split()),  # TOML line breaks are only for the reader
        link=home + raw["path"],
        categories=tuple(raw["categories"]),
        age=age,
        story=raw.get("story"),
    )


def _outlet(slug: str, raw: dict[str, Any]) -> _Outlet:
    meta = raw["outlet"]
    if meta["format"] not in FORMATS:
        raise ValueError(f"{slug}: format must be one of {FORMATS}, not {meta['format']!r}.")
    home = meta["home"].rstrip("/")
    items = tuple(_item(slug, home, entry) for entry in raw["items"])
    if meta["format"] == "atom" and any(i.age is None for i in items):
        raise ValueError(f"{slug}: every Atom entry needs a date (RFC 4287 section 4.2.15).")
    return _Outlet(
        feed=DemoFeed(slug=slug, name=meta["name"], section=meta.get("section"), format=meta["format"]),
        home=home,
        description=meta["description"],
        language=meta["language"],
        encoding=meta["encoding"],
        zone=ZoneInfo(meta["timezone"]) if "timezone" in meta else UTC,
        items=items,
    )


@cache
def _outlets() -> dict[str, _Outlet]:
    outlets: dict[str, _Outlet] = {}
    for entry in sorted(_data().iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or entry.name == SECTIONS_FILE:
            continue
        slug = entry.name.removesuffix(".toml")
        outlets[slug] = _outlet(slug, tomllib.loads(entry.read_text(encoding="utf-8")))
    return outlets


def _get(slug: str) -> _Outlet:
    try:
        return _outlets()[slug]
    except KeyError:
        raise KeyError(f"No demo feed {slug!r}; known: {', '.join(_outlets())}.") from None


def demo_feeds() -> list[DemoFeed]:
    """The demo outlets, in file-name order."""
    return [o.feed for o in _outlets().values()]


def demo_items(slug: str) -> list[DemoItem]:
    """One outlet's items as written in its data file (what its feed will contain)."""
    return list(_get(slug).items)


@cache
def _sections() -> tuple[dict[str, Any], ...]:
    raw = tomllib.loads((_data() / SECTIONS_FILE).read_text(encoding="utf-8"))
    return tuple(raw["sections"])


def demo_sections() -> list[dict[str, Any]]:
    """The [[sections]] tables (name, categories, keywords) for the demo config, in order."""
    return [{key: list(value) if isinstance(value, list) else value for key, value in s.items()} for s in _sections()]


# --------------------------------------------------------------------------- serialising


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    child.text = text
    return child


def _rss(outlet: _Outlet, now: datetime) -> ET.Element:
    def rfc822(when: datetime) -> str:
        # RSS 2.0 dates are RFC 822 date-times; written in the outlet's own zone, as publishers do.
        return format_datetime(when.astimezone(outlet.zone))

    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", outlet.feed.name)
    _text(channel, "link", outlet.home + "/")
    _text(channel, "description", outlet.description)
    _text(channel, "language", outlet.language)
    _text(channel, "lastBuildDate", rfc822(now))
    for item in outlet.items:
        node = ET.SubElement(channel, "item")
        _text(node, "title", item.title)
        _text(node, "link", item.link)
        _text(node, "guid", item.link, isPermaLink="true")
        if item.age is not None:
            _text(node, "pubDate", rfc822(now - item.age))
        for category in item.categories:
            _text(node, "category", category)
        _text(node, "description", item.summary)  # HTML as escaped text, the common RSS practice
    return rss


def _atom(outlet: _Outlet, now: datetime) -> ET.Element:
    def rfc3339(when: datetime) -> str:
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")

    # The namespace as a plain attribute keeps unprefixed tags without ET.register_namespace's global state.
    feed = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": outlet.language})
    _text(feed, "id", outlet.home + "/")
    _text(feed, "title", outlet.feed.name)
    _text(feed, "subtitle", outlet.description)
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=outlet.home + "/")
    dated = [now - i.age for i in outlet.items if i.age is not None]
    _text(feed, "updated", rfc3339(max(dated, default=now)))
    author = ET.SubElement(feed, "author")
    _text(author, "name", outlet.feed.name)
    for item in outlet.items:
        assert item.age is not None  # _outlet() refuses undated Atom entries
        entry = ET.SubElement(feed, "entry")
        _text(entry, "id", item.link)
        _text(entry, "title", item.title)
        ET.SubElement(entry, "link", rel="alternate", type="text/html", href=item.link)
        _text(entry, "published", rfc3339(now - item.age))
        _text(entry, "updated", rfc3339(now - item.age))
        for category in item.categories:
            ET.SubElement(entry, "category", term=category)
        _text(entry, "summary", item.summary, type="html")
    return feed


def content_type(slug: str) -> str:
    outlet = _get(slug)
    media = "application/atom+xml" if outlet.feed.format == "atom" else "application/rss+xml"
    if outlet.encoding.lower() == "utf-8":
        return f"{media}; charset=utf-8"
    # No charset parameter: RFC 7303 section 4.3 then lets the XML declaration name the encoding,
    # which is what this feed is here to show.
    return media


def feed_bytes(slug: str, *, now: datetime) -> tuple[bytes, str]:
    """The feed document of one outlet as of `now` (timezone-aware), and its Content-Type."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(UTC).")
    now = now.astimezone(UTC).replace(microsecond=0)  # feed dates have whole seconds
    outlet = _get(slug)
    root = _atom(outlet, now) if outlet.feed.format == "atom" else _rss(outlet, now)
    ET.indent(root)
    # xml_declaration writes <?xml ... encoding='...'?>; characters the encoding lacks become &#N;.
    body = ET.tostring(root, encoding=outlet.encoding, xml_declaration=True)
    return body, content_type(slug)


def newest(slug: str, *, now: datetime) -> datetime:
    """The newest item date of a feed as of `now` (or `now` when nothing is dated): its Last-Modified."""
    now = now.astimezone(UTC).replace(microsecond=0)
    ages = [i.age for i in _get(slug).items if i.age is not None]
    return now - min(ages) if ages else now
