"""Every file of the shared corpus, served over HTTP on 127.0.0.1 and polled through the real
fetch -> parse -> store path: no crash, no hang; items or a clear error recorded on the feed.

The corpus lives in ../shared/corpus (real publishers' feeds, feedparser's edge cases, hostile
inputs); it is not copied into this project. Without it these tests skip with a message; in CI
they must run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer

from digest import config as cfg
from digest.model import Feed, Item
from digest.pipeline import poll_once
from digest.store import Store

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(CORPUS is None, reason=CORPUS_ABSENT)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# News feeds whose text must decode to these scripts (the legacy encodings of the corpus).
CYRILLIC = re.compile(r"[А-Яа-яЁё]{3,}")
MOJIBAKE = re.compile(r"Ã.|Ð.|Ñ.|\ufffd")


def _files(sub: str) -> list[Path]:
    assert CORPUS is not None, "CI must have ../shared/corpus"
    return sorted(p for p in (CORPUS / "feeds" / sub).rglob("*") if p.is_file())


def _content_type(path: Path) -> str:
    if path.suffix in (".html", ".htm"):
        return "text/html"
    if path.suffix == ".json":
        return "application/json"
    return "application/xml"  # no charset: the document's own declaration decides (RFC 7303)


async def _poll_all(tmp_path: Path, files: list[Path]) -> tuple[Store, dict[str, Feed], dict[int, list[Item]]]:
    async with FeedServer() as server:
        urls = {}
        for i, path in enumerate(files):
            urls[
                server.serve(f"/{i}/{path.name}", path.read_bytes(), headers={"Content-Type": _content_type(path)})
            ] = path
        settings = cfg.from_mapping(
            {
                "digest": {"database": f"sqlite:///{tmp_path / 'corpus.sqlite'}", "allow_private_addresses": True},
                "fetch": {"timeout": 20.0, "per_host": 8},
                "feeds": [{"url": u} for u in urls],
            },
            env={},
        )
        store = Store(settings.database_url)
        store.sync_feeds(settings.feeds, now=NOW)
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW)
    assert len(results) == len(files)
    assert CORPUS is not None
    feeds = {str(urls[f.url].relative_to(CORPUS)): f for f in store.list_feeds()}
    items: dict[int, list[Item]] = defaultdict(list)
    for item in store.edition_window("UTC", until=NOW).items:
        items[item.feed_id].append(item)
    return store, feeds, items


async def test_every_news_feed_yields_clean_items(tmp_path: Path) -> None:
    store, feeds, items = await _poll_all(tmp_path, _files("news"))
    failures = []
    for name, feed in feeds.items():
        got = items.get(feed.id, [])
        if not got:
            if feed.last_error is None and "empty" not in name:
                failures.append(f"{name}: no items and no error recorded")
            continue
        for it in got:
            if not (it.title or it.summary_text):
                failures.append(f"{name}: item {it.id} has neither title nor summary")
            if it.url is not None and not re.match(r"https?://[^/\s]+", it.url):
                failures.append(f"{name}: item link {it.url!r} is not absolute http(s)")
            if it.published is not None and it.published.utcoffset() != UTC.utcoffset(None):
                failures.append(f"{name}: {it.published!r} is not UTC")
            if MOJIBAKE.search(it.title):
                failures.append(f"{name}: mis-decoded title {it.title!r}")
        with_links = sum(1 for it in got if it.url)
        assert CORPUS is not None
        raw = feedparser.parse((CORPUS / name).read_bytes())
        if with_links == 0 and any(str(e.get("link", "")).startswith("http") for e in raw.entries):
            failures.append(f"{name}: the feed's items have links but ours have none")
    assert not failures, "\n".join(failures)


async def test_legacy_encodings_decode_to_real_text(tmp_path: Path) -> None:
    news = _files("news")
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")  # type: ignore[operator]
    legacy = [p for p in news if re.search(rf"`feeds/news/{re.escape(p.name)}`[^\n]*\| (windows-1251|koi8-r)", sources)]
    _store, feeds, items = await _poll_all(tmp_path, legacy or news)
    checked = 0
    for name, feed in feeds.items():
        if not legacy:
            break
        text = " ".join(i.title + " " + i.summary_text for i in items.get(feed.id, []))
        assert CYRILLIC.search(text), f"{name}: no Cyrillic text decoded"
        assert "\ufffd" not in text, f"{name}: replacement characters in decoded text"
        checked += 1
    assert checked == len(legacy)


async def test_feedparser_edge_cases_and_hostile_files_never_crash_or_hang(tmp_path: Path) -> None:
    files = _files("feedparser-tests") + _files("hostile")
    _store, feeds, items = await _poll_all(tmp_path, files)
    silent = [
        name for name, f in feeds.items() if not items.get(f.id) and f.last_error is None and f.last_status != 200
    ]
    assert not silent, f"feeds with neither items nor a recorded error: {silent}"
    # Hostile XML never expands entities or includes local files.
    for name, feed in feeds.items():
        for it in items.get(feed.id, []):
            blob = it.title + it.summary_html + it.summary_text
            assert "root:x:0:0" not in blob, f"{name}: XXE included /etc/passwd"
            assert len(blob) < 2_000_000, f"{name}: an entity expanded"
            assert "<script" not in it.summary_html.lower(), f"{name}: script survived sanitising"
