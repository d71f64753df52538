"""A feed's declared language: parsed, stored on the feed at each poll, carried to its items, and
taken where an item's own text says too little of its language (`words.language_read`)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer
from smtpservers import SmtpServer
from test_end_to_end import NOW as E2E_NOW
from test_end_to_end import digest, write_config

from digest import words
from digest.errors import DigestError
from digest.parse import parse_feed
from digest.sections import item_language

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("en-US", "en"),
        ("de-de", "de"),
        ("pt_BR", "pt"),
        ("  RU-ru ", "ru"),
        ("kn", "kn"),
        ("fra", "fr"),  # ISO 639-2, where BCP 47 wants the two-letter code
        ("haw", "haw"),  # a language with no two-letter code keeps its own
        ("zh-Hant-TW", "zh"),
        (None, None),
        ("", None),
        ("und", None),  # undetermined
        ("x-klingon", None),
        ("English", None),
        ("fr FR", None),
        ("en-US,fr", None),
        ("日本語", None),
    ],
)
def test_a_declared_language_is_kept_as_its_primary_subtag_and_garbage_as_none(
    tag: str | None, language: str | None
) -> None:
    assert words.declared_language(tag) == language


@pytest.mark.parametrize(
    ("text", "declared", "read"),
    [
        # Says little: a name and a figure ("en" by default), one function word ("e": Italian too).
        ("Budget 2027 adopté", "fr-FR", "fr"),
        ("Paraná apresenta zagueiro e atacante", "pt-BR", "pt"),
        ("Brandmeldeanlagenalarm", "de-de", "de"),
        # Says it clearly: a misdeclaring feed does not change it.
        ("The council approved the budget after a long debate on the harbour", "fr", "en"),
        ("Le conseil a voté le budget après un long débat sur le port", "en-US", "fr"),
        ("Совет утвердил бюджет", "en", "ru"),
        # A language of a script of its own that the text never writes: a Kannada site's English headlines.
        ("Vishwas Crystal residential apartments inaugurated", "kn", "en"),
        # ... which a text of some letters in that script does take ("听过" before a record's name).
        ("听过Faith", "zh-cn", "zh"),
        # No declaration (or none usable): the guess.
        ("Budget 2027 adopté", None, "en"),
        ("Budget 2027 adopté", "und", "en"),
    ],
)
def test_a_text_that_says_little_of_its_language_is_read_in_its_feeds(text: str, declared: str, read: str) -> None:
    assert words.language_of(text, declared) == read
    assert item_language(text, "", declared) == read


def test_the_parser_reads_rss_language_dc_language_and_atom_xml_lang() -> None:
    def rss(channel: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<channel><title>T</title><link>https://t.example/</link>{channel}<description>d</description>"
            "<item><title>Budget 2027 adopté</title><link>https://t.example/1</link></item></channel></rss>"
        ).encode()

    def language(body: bytes) -> str | None:
        return parse_feed(body, url="https://t.example/feed", content_type=None, now=NOW).language

    assert language(rss("<language>fr-FR</language>")) == "fr"
    assert language(rss("<dc:language>pt-BR</dc:language>")) == "pt"
    assert language(rss("<language>français</language>")) is None
    assert language(rss("")) is None
    atom = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de-AT">'
        b"<title>T</title><id>urn:t</id><updated>2026-01-01T00:00:00Z</updated>"
        b"<entry><title>Budget beschlossen</title><id>urn:t:1</id><link href='https://t.example/1'/>"
        b"<updated>2026-01-01T00:00:00Z</updated></entry></feed>"
    )
    assert language(atom) == "de"


def test_on_the_corpus_a_feeds_declaration_changes_only_items_whose_text_says_little() -> None:
    """For every corpus feed: what it declares, and its items' languages read from their text alone
    (before) and with the declaration (after). An item changes only to its feed's declaration and
    only where its text said little; a feed whose declaration its text contradicts (the Kannada
    site's English feed) keeps every item's guess; items read as their feed declares rise."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    totals: Counter[str] = Counter()
    print("\nfeed: declared | items' languages from their text -> with the declaration (headline and summary)")
    for path in sorted((root / "feeds" / "news").iterdir()):
        try:
            feed = parse_feed(path.read_bytes(), url=f"https://corpus.invalid/{path.name}", content_type=None, now=NOW)
        except DigestError:
            continue
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        for item in feed.items:
            text = f"{item.title} {item.summary_text}"
            guess, said = words.language_guess(text)
            read = item_language(item.title, item.summary_text, feed.language)
            before[guess] += 1
            after[read] += 1
            if read != guess:
                assert read == feed.language and said <= words.DECLARATION_OUTWEIGHS, (path.name, item.title)
                print(f"    {guess} ({said}) -> {read}: {item.title[:60]!r}")
            if feed.language:
                totals["declared items"] += 1
                totals["as declared before"] += guess == feed.language
                totals["as declared after"] += read == feed.language
        changed = " (unchanged)" if before == after else ""
        was, now = dict(before.most_common()), dict(after.most_common())
        print(f"  {path.name}: {feed.language or '-'} | {was} -> {now}{changed}")
        if path.name.startswith("varthabharathi"):
            assert feed.language == "kn" and after == before == {"en": len(feed.items)}
    print(
        f"items of feeds that declare a language read as declared: {totals['as declared before']} -> "
        f"{totals['as declared after']} of {totals['declared items']}"
    )
    assert totals["as declared after"] > totals["as declared before"]


FRENCH_SECTION = """
[[sections]]
name = "Presse francophone"
[[sections.rules]]
languages = ["fr"]
"""


def _rss(title: str, items: list[tuple[str, str]], language: str | None) -> bytes:
    """(title, link path) of headline-only items -> an RSS 2.0 body of our own words."""
    host = title.lower().replace(" ", "-")
    declared = f"<language>{language}</language>" if language else ""
    parts = [
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://{host}.example/</link><description>d</description>{declared}"
    ]
    for item_title, path in items:
        parts.append(
            f"<item><title>{item_title}</title><link>https://{host}.example{path}</link><guid>{path}</guid>"
            f"<pubDate>{format_datetime(E2E_NOW - timedelta(hours=2))}</pubDate></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


async def _explained(config: Path, link: str) -> str:
    code, out, err = await digest(config, "sections", "explain", link)
    assert code == 0, out + err
    return out


async def test_a_polled_feeds_declared_language_places_its_headlines_by_a_language_rule(tmp_path: Path) -> None:
    """`digest poll` against a feed on 127.0.0.1 that declares fr-FR, into a SQLite file: the feed's
    language is stored and listed; its headline that says nothing of its language ("Budget 2027
    adopté" reads as English alone) goes to the section of French items, while the same headline
    from a feed that declares nothing does not, nor does a clear English sentence from the French
    feed. A later body that declares nothing clears the stored language."""
    french = _rss(
        "Gazette du Port",
        [
            ("Budget 2027 adopté", "/budget"),
            ("The council approved the budget after a long debate on the harbour", "/council"),
        ],
        "fr-FR",
    )
    silent = _rss("Harbour Wire", [("Budget 2027 adopté", "/budget")], None)
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [feeds.serve("/fr.xml", french), feeds.serve("/wire.xml", silent)]
        config = write_config(tmp_path, feeds=urls, smtp_port=smtp.port)
        config.write_text(config.read_text(encoding="utf-8") + FRENCH_SECTION, encoding="utf-8")
        code, out, err = await digest(config, "poll")
        assert code == 0 and "3 new items" in out, out + err

        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            stored = dict(db.execute("SELECT url, language FROM feeds").fetchall())
        assert stored == {urls[0]: "fr", urls[1]: None}
        code, listed, err = await digest(config, "feeds", "list")
        assert code == 0, listed + err
        lines = {line.split()[0]: line for line in listed.splitlines() if line.startswith("http")}
        assert "  lang=fr  " in lines[urls[0]] and "  lang=-  " in lines[urls[1]], listed

        declared = await _explained(config, "https://gazette-du-port.example/budget")
        assert "  Presse francophone: language 'fr' matches" in declared, declared
        assert "read as 'fr', as its feed declares" in declared, declared
        undeclared = await _explained(config, "https://harbour-wire.example/budget")
        assert "Presse francophone:" not in undeclared and "read as 'en'" in undeclared, undeclared
        clear = await _explained(config, "https://gazette-du-port.example/council")
        assert "Presse francophone:" not in clear, clear
        assert "read as 'en', as its text says, though its feed declares 'fr'" in clear, clear

        # The publisher stops declaring: the next body parsed says so, and the feed has no language.
        feeds.serve("/fr.xml", _rss("Gazette du Port", [("Budget 2027 adopté", "/budget")], None))
        code, out, err = await digest(config, "poll", now=E2E_NOW + timedelta(days=2))  # both due again
        assert code == 0, out + err
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            assert db.execute("SELECT language FROM feeds WHERE url = ?", (urls[0],)).fetchone() == (None,)
        assert "Presse francophone:" not in await _explained(config, "https://gazette-du-port.example/budget")
