"""Every file of the shared feed corpus through ParserPool: no crash, no hang, sane items.

The corpus (news/, feedparser-tests/, hostile/; SOURCES.md describes each file) lives outside the
repository: ../shared/corpus next to the checkout, or wherever DIGEST_CORPUS points. Without it
these tests skip.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir

from digest.errors import ParseError
from digest.model import ParsedFeed
from digest.parsepool import ParserPool
from digest.sanitize import clean_url

_ROOT = corpus_dir()
FEEDS = _ROOT / "feeds" if _ROOT else None
FILES = sorted(p for p in FEEDS.rglob("*") if p.is_file() and p.suffix != ".md") if FEEDS else []
pytestmark = pytest.mark.skipif(FEEDS is None, reason=CORPUS_ABSENT)

NOW = datetime(2026, 11, 25, tzinfo=UTC)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)

# News feeds whose channel really has no items.
EMPTY_NEWS = {"daily-mail_world_empty.xml", "kaiak-tw_empty_zh-tw.xml"}
# News feeds with entries that carry no http(s) link, alternate or enclosure at all.
NO_LINKS = {"planet-gnome_atom.xml"}

CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def _mojibake() -> re.Pattern[str]:
    """UTF-8 read as Latin-1, cp1252 or cp1251: "Ã©" for "é", "â€™" for "’", "Р°" for "а"."""
    letters = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ" + "éèêëàâäîïôöûüçñãõáíóúÉÁÓ’“”–—…"
    found = set()
    for letter in letters:
        for charset in ("latin-1", "cp1252", "cp1251"):
            with contextlib.suppress(UnicodeDecodeError):
                found.add(letter.encode("utf-8").decode(charset))
    return re.compile("|".join(re.escape(f) for f in sorted(found, key=len, reverse=True)))


MOJIBAKE = _mojibake()
UNSAFE_HTML = re.compile(
    r"<script|<iframe|<object|<embed|<style|<form|<svg|<math|\son\w+\s*=|javascript:|"
    r"vbscript:|\sstyle\s*=|\sclass\s*=|<base|<meta",
    re.IGNORECASE,
)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _relative(path: Path) -> str:
    assert FEEDS is not None
    return path.relative_to(FEEDS).as_posix()


def _declared_content_type(body: bytes) -> str | None:
    """feedparser's own tests give some files an HTTP header in a comment ("Header: Content-type: ...")."""
    m = re.search(rb"Header:\s+Content-type:\s*([^\r\n]+)", body[:2000], re.IGNORECASE)
    return m.group(1).decode("ascii", "replace").strip() if m else None


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    with ParserPool(cpu_seconds=10) as p:
        yield p


async def _parse(pool: ParserPool, path: Path) -> ParsedFeed | ParseError:
    body = path.read_bytes()
    url = f"https://corpus.example/{_relative(path)}"
    try:
        return await pool.parse(body, url=url, content_type=_declared_content_type(body), now=NOW)
    except ParseError as exc:
        # A crash inside the parser or a budget overrun is a bug here, not a verdict on the feed.
        assert "the parser failed" not in exc.message and "CPU" not in exc.message, exc.message
        assert "process died" not in exc.message and "took longer" not in exc.message, exc.message
        assert exc.message.startswith(url + ": ")
        return exc


def _check_items(feed: ParsedFeed) -> None:
    keys = [i.key for i in feed.items]
    assert len(keys) == len(set(keys)) and all(keys)
    for item in feed.items:
        assert not CONTROL.search(item.title), item.title
        assert not UNSAFE_HTML.search(item.summary_html), item.summary_html[:300]
        assert item.url is None or (item.url.startswith(("http://", "https://")) and clean_url(item.url) == item.url)
        assert item.image_url is None or item.image_url.startswith(("http://", "https://"))
        assert item.published is None or (
            item.published.utcoffset() == timedelta(0) and EARLIEST <= item.published <= NOW + timedelta(days=1)
        )
        assert len(item.title) <= 300 and len(item.summary_text) <= 280


@pytest.mark.parametrize("path", FILES, ids=[_relative(p) for p in FILES] if FEEDS else [])
async def test_every_corpus_file_gives_items_or_a_parse_error(pool: ParserPool, path: Path) -> None:
    result = await _parse(pool, path)
    if isinstance(result, ParseError):
        assert not _relative(path).startswith("news/"), f"a real news feed was rejected: {result}"
        return
    _check_items(result)
    if _relative(path).startswith("news/"):
        # Some saved copies are double-encoded at the source (yandex-news, parts of lemonde, hubspot):
        # parse repairs them, so no news item may show mojibake.
        _check_news(path.name, result)


def _check_news(name: str, feed: ParsedFeed) -> None:
    assert feed.items or name in EMPTY_NEWS
    for item in feed.items:
        assert item.title or item.summary_text, item.key
        assert item.url is not None or name in NO_LINKS, item.key
        assert "\ufffd" not in item.title + item.summary_text
        assert not MOJIBAKE.search(item.title + " " + item.summary_text), (item.title, item.summary_text[:80])
        assert not re.search(r"[a-z]Â(\s|$)", item.title + " " + item.summary_text), item.title  # a no-break space's


# --------------------------------------------------------------------------- decoding

# file -> text that must appear in the feed title or some item title/summary once decoded.
DECODED = {
    "news/oren-ru_news_cp1251.xml": "Оренбург",  # windows-1251
    "hostile/miniflux_koi8r-declared.xml": "Пример RSS ленты",  # KOI8-R
    "news/citydog-by_news.xml": "Новости",
    "news/habr_best-daily.xml": "Хабр",
    "news/cbr_press-releases.xml": "Пресс-релизы",
    "news/jornal-de-noticias_latin1.rss": "Notícias",  # ISO-8859-1
    "news/inovacao-tecnologica_latin1.xml": "Inovação Tecnológica",
    "news/stadtfeuerwehr-weiz_rss091.xml": "Einsätze",
    "news/tjrs_rss091_latin1.xml": "Justiça",
    "news/daily-mail_home_mediacontent.xml": "Mail Online",
    "feedparser-tests/encoding/euc-kr.xml": "\ub144",
    "feedparser-tests/encoding/http_i18n.xml": "Iñtërnâtiônàlizætiøn",
    "feedparser-tests/encoding/bozo_http_i18n.xml": "Iñtërnâtiônàlizætiøn",
    "news/bbc-urdu.xml": "پاکستان",
    "news/douban_collection_zh.xml": "的收藏",
}
# Undeclared legacy encodings: only a charset detector (chardet) can tell these.
DETECTED = {
    "feedparser-tests/illformed/chardet/koi8r.xml": "Как пережить новогоднюю ночь",
    "feedparser-tests/illformed/chardet/gb2312.xml": "不归移民漫画系列",
    "feedparser-tests/illformed/chardet/euckr.xml": "한글닉네임",
    "feedparser-tests/illformed/chardet/shiftjis.xml": "記事投稿",
}
# UTF-16/32 variants: no text to compare, but each must be read as a feed.
WIDE = [
    "feedparser-tests/encoding/utf16.xml",
    "feedparser-tests/encoding/u16.xml",
    "feedparser-tests/encoding/utf-16be-bom.xml",
    "feedparser-tests/encoding/utf-16le.xml",
    "feedparser-tests/encoding/utf-16be-autodetect.xml",
    "feedparser-tests/encoding/utf-16le-autodetect.xml",
    "feedparser-tests/encoding/utf-32be-bom.xml",
    "feedparser-tests/encoding/utf-32le-bom.xml",
    "feedparser-tests/encoding/utf-8-bom.xml",
]


def _all_text(feed: ParsedFeed) -> str:
    return unicodedata.normalize(
        "NFC", " ".join([feed.title or ""] + [f"{i.title} {i.summary_text}" for i in feed.items])
    )


@pytest.mark.parametrize(("name", "expected"), sorted(DECODED.items()))
async def test_P6_corpus_text_is_decoded_from_its_charset(pool: ParserPool, name: str, expected: str) -> None:
    assert FEEDS is not None
    feed = await _parse(pool, FEEDS / name)
    assert isinstance(feed, ParsedFeed)
    text = _all_text(feed)
    assert expected in text
    assert "\ufffd" not in text and not MOJIBAKE.search(text)


@pytest.mark.parametrize(("name", "expected"), sorted(DETECTED.items()))
async def test_P6_undeclared_legacy_charsets_are_detected(pool: ParserPool, name: str, expected: str) -> None:
    pytest.importorskip("chardet", reason="feedparser guesses undeclared charsets only with chardet installed")
    assert FEEDS is not None
    feed = await _parse(pool, FEEDS / name)
    assert isinstance(feed, ParsedFeed) and expected in _all_text(feed)


async def test_P6_cyrillic_feeds_are_mostly_cyrillic(pool: ParserPool) -> None:
    assert FEEDS is not None
    for name in (
        "news/oren-ru_news_cp1251.xml",
        "news/meduza_all.xml",
        "news/citydog-by_news.xml",
        "hostile/miniflux_koi8r-declared.xml",
    ):
        feed = await _parse(pool, FEEDS / name)
        assert isinstance(feed, ParsedFeed)
        letters = [c for c in " ".join(i.title for i in feed.items) if c.isalpha()]
        cyrillic = sum(1 for c in letters if CYRILLIC.match(c))
        assert cyrillic / len(letters) > 0.6, (name, feed.items[0].title)


@pytest.mark.parametrize("name", WIDE)
async def test_P6_utf16_and_utf32_corpus_files_are_read_as_feeds(pool: ParserPool, name: str) -> None:
    assert FEEDS is not None
    result = await _parse(pool, FEEDS / name)
    assert isinstance(result, ParsedFeed) and result.warning is None


# --------------------------------------------------------------------------- hostile


@pytest.mark.parametrize(
    "name",
    [
        "hostile/feedreader_html_heise.html",
        "hostile/feedreader_html_stackoverflow.html",
        "hostile/feedreader_html_theverge.html",
        "hostile/node-feedparser_notafeed.html",
        "hostile/winds_html-not-a-feed.xml",
        "hostile/winds_og_techcrunch_broken.html",
        "hostile/miniflux_iso-8859-1-meta-after-1024.html",
    ],
)
async def test_html_pages_in_the_corpus_are_not_feeds(pool: ParserPool, name: str) -> None:
    assert FEEDS is not None
    result = await _parse(pool, FEEDS / name)
    assert isinstance(result, ParseError) and "looks like an HTML page" in result.message


@pytest.mark.parametrize(
    "name",
    [
        "hostile/crafted-billion-laughs-in-rss.xml",
        "hostile/crafted-xxe-local-file-in-rss.xml",
        "hostile/defusedxml_xmlbomb.xml",
        "hostile/defusedxml_xmlbomb2.xml",
        "hostile/defusedxml_quadratic.xml",
        "hostile/defusedxml_external.xml",
        "hostile/defusedxml_external_file.xml",
        "hostile/defusedxml_dtd.xml",
    ],
)
async def test_P1_P3_entity_attacks_in_the_corpus_expand_nothing(pool: ParserPool, name: str) -> None:
    assert FEEDS is not None
    result = await _parse(pool, FEEDS / name)
    if isinstance(result, ParsedFeed):
        text = " ".join(i.title + i.summary_html for i in result.items)
        assert "lollollol" not in text and "root:" not in text and len(text) < 10_000


async def test_the_kitchen_sink_keeps_its_text_and_loses_its_weapons(pool: ParserPool) -> None:
    assert FEEDS is not None
    feed = await _parse(pool, FEEDS / "hostile/crafted-html-injection-kitchen-sink.xml")
    assert isinstance(feed, ParsedFeed) and len(feed.items) == 5
    assert feed.link is None or feed.link.startswith("http")
    for item in feed.items:
        assert not UNSAFE_HTML.search(item.summary_html) and "data:" not in item.summary_html
        assert not re.search(r'<img[^>]+width="[01]"', item.summary_html)


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("news/nytimes_homepage.xml", "emc=rss"),  # "?partner=rss&emc=rss" on all 65 links
        ("news/heise_newsticker_rss090.xml", "wt_mc="),
        ("news/lemonde_une.xml", "xtor="),
    ],
)
async def test_E3_newspapers_analytics_markers_leave_their_links(pool: ParserPool, name: str, marker: str) -> None:
    """README: the analytics markers newspapers put on every link of their feed are removed, from
    the items' links and from the links in their text."""
    assert FEEDS is not None
    assert marker in (FEEDS / name).read_text("utf-8", "replace")
    feed = await _parse(pool, FEEDS / name)
    assert isinstance(feed, ParsedFeed) and feed.items
    for item in feed.items:
        assert item.url and marker not in item.url and "partner=rss" not in item.url, item.url
        assert marker not in item.summary_html and "partner=rss" not in item.summary_html
