"""digest.parse: bytes + headers -> ParsedFeed (D1-D6, E2, P1-P3, P6-P8)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir

from digest.errors import ParseError
from digest.feedbody import MAX_ENTITY_EXPANSION
from digest.model import ParsedFeed
from digest.parse import TITLE_CHARS, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2024, 9, 3, 12, 30, tzinfo=UTC)  # the fixture's newest item is dated 12:30 (D5: no future dates)
URL = "https://gazette.example/feed.xml"
REPO = Path(__file__).resolve().parents[1]


def parse(
    body: bytes,
    *,
    url: str = URL,
    content_type: str | None = "application/rss+xml",
    now: datetime = NOW,
    excerpt_chars: int = 280,
) -> ParsedFeed:
    return parse_feed(body, url=url, content_type=content_type, now=now, excerpt_chars=excerpt_chars)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rss(
    items: str,
    *,
    channel: str = "<title>T</title><link>https://t.example/</link>",
    prolog: str = '<?xml version="1.0" encoding="utf-8"?>',
) -> bytes:
    return f'{prolog}<rss version="2.0"><channel>{channel}{items}</channel></rss>'.encode()


# --------------------------------------------------------------------------- a well-formed RSS feed


@pytest.fixture(scope="module")
def gazette() -> ParsedFeed:
    return parse(fixture("basic.rss"))


def test_feed_title_and_link_are_clean(gazette: ParsedFeed) -> None:
    assert gazette.title == "Harbour Town Gazette"
    assert gazette.link == "https://gazette.example/"
    assert gazette.warning is None


def test_title_is_plain_text_without_tags_or_entities(gazette: ParsedFeed) -> None:
    assert gazette.items[0].title == "Ferry timetable changes & new winter route"


def test_D6_bidi_overrides_are_removed_from_titles(gazette: ParsedFeed) -> None:
    assert gazette.items[3].title == "Market square reversed stalls"


def test_item_url_is_absolute_and_without_tracking(gazette: ParsedFeed) -> None:
    urls = [i.url for i in gazette.items]
    assert urls == [
        "https://gazette.example/news/ferry?id=7",
        "https://gazette.example/news/library",  # relative <link>, resolved against the feed URL
        None,
        "https://gazette.example/news/market",
    ]


def test_D4_key_is_guid_else_canonical_link_else_a_hash(gazette: ParsedFeed) -> None:
    keys = [i.key for i in gazette.items]
    assert keys[0] == "gazette-0001"
    assert keys[1] == "https://gazette.example/news/library"
    assert keys[2].startswith("sha256:") and len(keys[2]) == 7 + 64
    assert keys[3] == "https://gazette.example/news/market"
    assert gazette.items[0].guid == "gazette-0001" and gazette.items[1].guid is None


def test_P7_a_repeated_guid_in_one_feed_keeps_the_first_item(gazette: ParsedFeed) -> None:
    assert len(gazette.items) == 4
    assert [i.title for i in gazette.items if i.key == "gazette-0001"] == ["Ferry timetable changes & new winter route"]


def test_published_is_aware_utc(gazette: ParsedFeed) -> None:
    assert gazette.items[0].published == datetime(2024, 9, 3, 12, 30, tzinfo=UTC)
    assert gazette.items[0].published is not None and gazette.items[0].published.utcoffset() == timedelta(0)


def test_summary_is_sanitised_and_links_resolved(gazette: ParsedFeed) -> None:
    html = gazette.items[0].summary_html
    assert html == (
        "<p>The ferry now leaves at <b>07:15</b>.</p><p>Details are in the "
        '<a href="https://gazette.example/timetable" rel="noopener noreferrer">full timetable</a>.</p>'
    )
    assert gazette.items[0].summary_text == "The ferry now leaves at 07:15. Details are in the full timetable."


def test_categories_merge_rss_category_and_dc_subject_once_each(gazette: ParsedFeed) -> None:
    assert gazette.items[0].categories == ("Transport", "Local", "Harbour")
    assert gazette.items[1].categories == ()


def test_author_comes_from_dc_creator(gazette: ParsedFeed) -> None:
    assert gazette.items[0].author == "Mira Holm"


def test_image_url_from_thumbnail_enclosure_or_media_content(gazette: ParsedFeed) -> None:
    assert [i.image_url for i in gazette.items] == [
        "https://img.gazette.example/ferry-small.jpg",
        "https://img.gazette.example/library.png",
        None,
        "https://img.gazette.example/market.jpg",
    ]


def test_an_item_with_only_a_description_is_kept(gazette: ParsedFeed) -> None:
    item = gazette.items[2]
    assert item.title == "" and item.summary_text == "A short note with no title, no link and no guid."


def test_excerpt_chars_caps_the_plain_summary() -> None:
    feed = parse(fixture("basic.rss"), excerpt_chars=20)
    assert feed.items[0].summary_text == "The ferry now…"


def test_content_hash_changes_when_the_publisher_edits_an_item() -> None:
    before = parse(rss("<item><guid>g1</guid><title>Old title</title><description>Body</description></item>"))
    after = parse(rss("<item><guid>g1</guid><title>New title</title><description>Body</description></item>"))
    same = parse(rss("<item><guid>g1</guid><title>Old title</title><description>Body</description></item>"))
    assert before.items[0].key == after.items[0].key == "g1"
    assert before.items[0].content_hash != after.items[0].content_hash
    assert before.items[0].content_hash == same.items[0].content_hash


def test_P7_items_without_guid_share_a_key_when_their_link_differs_only_by_tracking() -> None:
    feed = parse(
        rss(
            "<item><title>a</title><link>https://x.example/s?utm_source=a</link></item>"
            "<item><title>b</title><link>https://x.example/s?utm_source=b#top</link></item>"
        )
    )
    assert [i.key for i in feed.items] == ["https://x.example/s"]


def test_P7_items_without_guid_or_link_are_told_apart_by_title_and_date() -> None:
    feed = parse(
        rss(
            "<item><title>a</title><pubDate>Mon, 02 Sep 2024 09:00:00 GMT</pubDate></item>"
            "<item><title>a</title><pubDate>Tue, 03 Sep 2024 09:00:00 GMT</pubDate></item>"
            "<item><title>b</title><pubDate>Tue, 03 Sep 2024 09:00:00 GMT</pubDate></item>"
            "<item><title>b</title><pubDate>Tue, 03 Sep 2024 09:00:00 GMT</pubDate></item>"
        )
    )
    assert len(feed.items) == 3


def test_D6_long_titles_are_capped() -> None:
    feed = parse(rss(f"<item><guid>g</guid><title>{'word ' * 200}</title></item>"))
    assert len(feed.items[0].title) <= TITLE_CHARS and feed.items[0].title.endswith("…")


def test_a_podcast_episode_without_a_link_points_at_its_enclosure() -> None:
    feed = parse(
        rss(
            "<item><guid>ep1</guid><title>Episode 1</title>"
            '<enclosure url="https://cdn.example/ep1.mp3" type="audio/mpeg" length="1"/></item>'
        )
    )
    assert feed.items[0].url == "https://cdn.example/ep1.mp3" and feed.items[0].image_url is None


def test_javascript_item_links_are_dropped() -> None:
    feed = parse(rss("<item><guid>g</guid><title>t</title><link>javascript:alert(1)</link></item>"))
    assert feed.items[0].url is None


# --------------------------------------------------------------------------- Atom


@pytest.fixture(scope="module")
def journal() -> ParsedFeed:
    return parse(
        fixture("basic.atom"), url="https://blog.example/journal/atom.xml", content_type="application/atom+xml"
    )


def test_atom_relative_links_resolve_against_xml_base(journal: ParsedFeed) -> None:
    item = journal.items[0]
    assert item.url == "https://blog.example/journal/2024/post-1.html"
    assert 'href="https://blog.example/journal/2024/notes.html"' in item.summary_html
    assert 'src="https://blog.example/journal/2024/bench.jpg"' in item.summary_html


def test_a_relative_xml_base_is_resolved_against_the_feed_url() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/journal/"><title>j</title>'
        b'<entry><id>e1</id><title>t</title><link href="2024/post.html"/>'
        b'<content type="html">&lt;a href="notes.html"&gt;n&lt;/a&gt;</content></entry></feed>'
    )
    item = parse(body, url="https://blog.example/feeds/atom.xml").items[0]
    assert item.url == "https://blog.example/journal/2024/post.html"
    assert 'href="https://blog.example/journal/notes.html"' in item.summary_html


def test_atom_text_title_keeps_a_literal_less_than(journal: ParsedFeed) -> None:
    assert journal.items[0].title == "Why x < y matters"


def test_atom_html_and_xhtml_titles_become_plain_text(journal: ParsedFeed) -> None:
    assert journal.items[1].title == "Plain text body"
    assert journal.items[2].title == "An xhtml title"


def test_atom_category_prefers_label_then_term(journal: ParsedFeed) -> None:
    assert journal.items[0].categories == ("Carpentry", "tools")


def test_E2_text_plain_content_is_escaped_not_parsed(journal: ParsedFeed) -> None:
    item = journal.items[1]
    assert item.summary_html == "Use &lt;b&gt; for bold &amp; keep it short"
    assert item.summary_text == "Use <b> for bold & keep it short"


def test_atom_xhtml_summary_is_kept_as_html(journal: ParsedFeed) -> None:
    assert journal.items[2].summary_html == "<p>First paragraph.</p><p>Second paragraph.</p>"
    assert journal.items[2].summary_text == "First paragraph. Second paragraph."


def test_atom_id_is_the_key(journal: ParsedFeed) -> None:
    assert [i.key for i in journal.items] == [f"tag:blog.example,2024:post-{n}" for n in (1, 2, 3)]
    assert journal.items[0].author == "Ode Varga"


# --------------------------------------------------------------------------- P8 dates


@pytest.fixture(scope="module")
def dates() -> dict[str, datetime | None]:
    feed = parse(fixture("dates.rss"), url="https://dates.example/feed")
    return {i.key: i.published for i in feed.items}


@pytest.mark.parametrize("key", ["d-2099", "d-1970", "d-missing", "d-garbage", "d-three-days"])
def test_P8_unbelievable_dates_become_none(dates: dict[str, datetime | None], key: str) -> None:
    assert dates[key] is None


def test_P8_extreme_offsets_are_converted_to_utc(dates: dict[str, datetime | None]) -> None:
    # 00:30 at +14:00 on the 3rd and 23:30 at -12:00 on the 2nd are both 10:30 and 11:30 UTC on the 2nd/3rd.
    assert dates["d-plus14"] == datetime(2024, 9, 2, 10, 30, tzinfo=UTC)
    assert dates["d-minus12"] == datetime(2024, 9, 3, 11, 30, tzinfo=UTC)


def test_P9_a_date_hours_ahead_falls_back_to_the_first_seen_time(dates: dict[str, datetime | None]) -> None:
    assert dates["d-tomorrow"] is None  # was kept (a day of slack): pinned at the top with a future time


def test_P8_updated_is_used_when_there_is_no_published_date(dates: dict[str, datetime | None]) -> None:
    assert dates["d-updated"] == datetime(2024, 9, 1, 6, 0, tzinfo=UTC)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        parse(fixture("basic.rss"), now=datetime(2024, 9, 3))


# --------------------------------------------------------------------------- not a feed


def test_an_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match=r"^https://gazette.example/feed.xml: not a feed \(looks like an HTML page\)"):
        parse(fixture("not_a_feed.html"), content_type="text/html; charset=utf-8")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (bytes(range(256)) * 20, "no RSS or Atom"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "gzip"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "no RSS or Atom"),
        (b"<?xml version='1.0'?><rss version='2.0'><channel><title>cut", "malformed"),
    ],
)
def test_bodies_that_are_not_feeds_raise_parse_error(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as info:
        parse(body)
    assert str(info.value).startswith(URL + ": ")
    assert info.value.hint


def test_an_empty_channel_is_a_feed_with_no_items() -> None:
    feed = parse(rss(""))
    assert feed.items == () and feed.title == "T"


def test_a_broken_feed_that_still_yields_items_carries_a_warning() -> None:
    body = rss("<item><guid>a</guid><title>Fish &chips</title></item><item><guid>b</guid><title>ok</title></item>")
    feed = parse(body)
    assert feed.warning and "SAXParseException" in feed.warning
    assert [i.key for i in feed.items] == ["a", "b"]


def test_a_str_body_is_refused_so_feedparser_never_fetches_or_opens_it() -> None:
    with pytest.raises(TypeError):
        parse_feed("file:///etc/passwd", url=URL, content_type=None, now=NOW)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- P6 encodings

CYRILLIC_ITEM = (
    "<item><guid>r1</guid><title>Новости Оренбурга: снегопад</title><description>Ёлки и ёжики</description></item>"
)


@pytest.mark.parametrize("encoding", ["windows-1251", "koi8-r", "iso-8859-5", "utf-16", "utf-16-be", "utf-8"])
def test_P6_a_declared_encoding_is_honoured(encoding: str) -> None:
    declared = "utf-16" if encoding.startswith("utf-16") else encoding
    text = (
        f'<?xml version="1.0" encoding="{declared}"?><rss version="2.0"><channel><title>Лента</title>'
        f"{CYRILLIC_ITEM}</channel></rss>"
    )
    body = text.encode(encoding)
    if encoding == "utf-16-be":
        body = b"\xfe\xff" + body
    feed = parse(body, content_type="application/rss+xml")
    assert feed.title == "Лента"
    assert feed.items[0].title == "Новости Оренбурга: снегопад"
    assert feed.items[0].summary_text == "Ёлки и ёжики"


def test_P6_a_header_charset_applies_when_the_body_declares_none() -> None:
    body = f'<rss version="2.0"><channel><title>Лента</title>{CYRILLIC_ITEM}</channel></rss>'.encode("cp1251")
    feed = parse(body, content_type="text/xml; charset=windows-1251")
    assert feed.items[0].title == "Новости Оренбурга: снегопад"


def test_P6_a_gb2312_feed_is_decoded() -> None:
    body = (
        '<?xml version="1.0" encoding="gb2312"?><rss version="2.0"><channel><title>新闻</title>'
        "<item><guid>z</guid><title>港口开放时间延长</title></item></channel></rss>"
    ).encode("gb2312")
    assert parse(body).items[0].title == "港口开放时间延长"


def test_P6_utf8_bytes_mislabelled_as_latin1_by_the_server_are_read_as_utf8() -> None:
    body = rss("<item><guid>g</guid><title>Ação no café — über</title></item>", prolog="<?xml version='1.0'?>")
    feed = parse(body, content_type="application/rss+xml; charset=iso-8859-1")
    assert feed.items[0].title == "Ação no café — über"


def test_P6_utf8_bytes_under_a_wrong_latin1_declaration_are_read_as_utf8() -> None:
    body = rss(
        "<item><guid>g</guid><title>Ação no café</title></item>", prolog='<?xml version="1.0" encoding="iso-8859-1"?>'
    )
    assert parse(body).items[0].title == "Ação no café"


def test_P6_latin1_bytes_declared_latin1_stay_latin1() -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
        "<item><guid>g</guid><title>Notícias de Portugal</title></item></channel></rss>"
    ).encode("latin-1")
    assert parse(body, content_type="text/xml; charset=utf-8").items[0].title == "Notícias de Portugal"


def test_P6_a_bom_beats_a_conflicting_declaration() -> None:
    text = (
        '<?xml version="1.0" encoding="windows-1251"?><rss version="2.0"><channel><title>Лента</title></channel></rss>'
    )
    feed = parse(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert feed.title == "Лента"


def test_P6_illegal_xml_characters_do_not_crash_and_are_removed() -> None:
    feed = parse(rss("<item><guid>g</guid><title>bell\x07 and \x1b escape</title></item>"))
    assert feed.items[0].title == "bell and escape"
    assert feed.warning


def test_P6_an_emoji_written_as_two_surrogate_references_is_the_emoji() -> None:
    """Some publishing systems write a character beyond the BMP as its two UTF-16 units'
    references. Those are no XML: expat refused the document and feedparser's loose parser then
    raised on the first reference, so the whole feed was lost. In the XML and in a description's
    escaped HTML alike, the pair is the character it encodes."""
    feed = parse(
        rss(
            "<item><guid>g</guid><title>Smile &#55357;&#56832; and &#xD83D;&#xDE00;</title>"
            "<description>&lt;p&gt;Launch &amp;#55357;&amp;#56960; today&lt;/p&gt;</description></item>"
            "<item><guid>h</guid><title>A plain second item</title></item>"
        )
    )
    assert [i.title for i in feed.items] == ["Smile \U0001f600 and \U0001f600", "A plain second item"]
    assert feed.items[0].summary_text == "Launch \U0001f680 today"
    assert "\U0001f680" in feed.items[0].summary_html


def test_P6_a_reference_to_no_character_is_a_replacement_character_and_the_rest_stays() -> None:
    feed = parse(
        rss(
            "<item><guid>g</guid><title>lone &#55357; low &#56832; huge &#1234567890; "
            "private &#x10FFFD; ok &#8217; &#1000000;</title>"
            "<description>&lt;p&gt;&amp;#xDE00;&amp;#xD83D; reversed&lt;/p&gt;</description></item>"
        )
    )
    assert feed.items[0].title == "lone \ufffd low \ufffd huge \ufffd private \U0010fffd ok \u2019 \U000f4240"
    assert feed.items[0].summary_text == "\ufffd\ufffd reversed"  # a low then a high surrogate are no pair


@pytest.mark.parametrize("declared", [b"\xe9t\xe9", b"utf\x008", b"\xff\xfe"], ids=["latin-1", "nul", "bom-bytes"])
def test_P6_a_declared_encoding_that_names_none_is_read_as_undeclared(declared: bytes) -> None:
    """feedparser decodes the declaration's encoding name as UTF-8 and looks it up: bytes that are not
    UTF-8, or a NUL, made it raise and lose the feed. Such a declaration names no encoding."""
    text = (
        '<rss version="2.0"><channel><title>T</title>'
        "<item><guid>g</guid><title>Été chaud à Lyon</title></item></channel></rss>"
    )
    body = b'<?xml version="1.0" encoding="' + declared + b'"?>\n' + text.encode("latin-1")  # a legacy feed's bytes
    feed = parse(body)
    assert feed.items[0].title == "Été chaud à Lyon"


def test_a_channel_link_that_is_no_address_costs_the_feed_nothing() -> None:
    """urlsplit refuses "http://[..." (a bracketed host that is no IPv6 address): reading the
    channel's site from it raised, and the parse of the whole feed failed."""
    feed = parse(
        rss(
            "<item><guid>g</guid><title>Kept</title><link>https://t.example/a</link></item>",
            channel="<title>World - The Gazette</title><link>http://[gazette.example/</link>",
        )
    )
    assert [i.title for i in feed.items] == ["Kept"]
    assert feed.link is None


def test_an_aggregator_link_forwarding_to_no_address_keeps_its_item_under_its_own_link() -> None:
    feed = parse(
        rss(
            "<item><guid>g</guid><title>Forwarded nowhere</title>"
            "<link>https://news.google.com/url?url=http://[wire.example/a</link></item>"
            "<item><guid>h</guid><title>Forwarded</title>"
            "<link>https://news.google.com/url?url=https://wire.example/b</link></item>",
            channel="<title>Top stories - Google News</title><link>https://news.google.com/</link>",
        )
    )
    first, second = feed.items
    assert first.title == "Forwarded nowhere" and first.url is not None and first.outlet is None
    assert first.url.startswith("https://news.google.com/url?url=")
    assert second.url == "https://wire.example/b" and second.outlet == "wire.example"


def test_an_xml_base_that_is_no_address_leaves_the_summary_based_on_the_feed() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
        b'<entry><id>e</id><title>Based</title><link href="https://t.example/e"/>'
        b'<summary type="html" xml:base="http://[bad/">&lt;a href="more"&gt;more&lt;/a&gt; text</summary>'
        b"</entry></feed>"
    )
    feed = parse(body)
    assert feed.items[0].title == "Based"
    assert 'href="https://gazette.example/more"' in feed.items[0].summary_html


# --------------------------------------------------------------------------- P1-P3 XML attacks


def billion_laughs(encoding: str = "utf-8") -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    )
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE rss [{entities}]>'
        '<rss version="2.0"><channel><title>t</title><item><guid>g</guid><title>laugh</title>'
        "<description>&lol9;</description></item></channel></rss>"
    )
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-be"])
def test_P1_billion_laughs_is_not_expanded(encoding: str) -> None:
    body = billion_laughs(encoding)
    if encoding == "utf-16-be":
        body = b"\xfe\xff" + billion_laughs("utf-16-be").replace(
            'encoding="utf-16-be"'.encode("utf-16-be"), 'encoding="utf-16"'.encode("utf-16-be")
        )
    feed = parse(body)
    assert feed.items[0].title == "laugh"
    assert "lol" * 20 not in feed.items[0].summary_html


def test_P2_quadratic_blowup_is_refused() -> None:
    big = "B" * 100_000
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{big}">]><rss version="2.0"><channel>'
        f"<title>t</title><item><guid>g</guid><description>{'&a;' * 50_000}</description></item>"
        "</channel></rss>"
    ).encode()
    with pytest.raises(ParseError, match="entities"):
        parse(body)
    assert len(big) * 50_000 > MAX_ENTITY_EXPANSION


def test_P2_a_small_literal_entity_is_still_expanded() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY town "Harbour Town">]><rss version="2.0"><channel>'
        b"<title>t</title><item><guid>g</guid><title>News from &town;</title></item></channel></rss>"
    )
    assert parse(body).items[0].title == "News from Harbour Town"


XXE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    from datetime import datetime, UTC
    from digest.parse import parse_feed

    now = datetime(2024, 9, 3, tzinfo=UTC)
    warm = b'<rss version="2.0"><channel><title>w</title><item><guid>w</guid><title>w</title></item></channel></rss>'
    parse_feed(warm, url="https://w.example/", content_type=None, now=now)

    events = []
    def hook(event, args):
        if event == "open" or event.startswith(("socket.", "urllib.", "subprocess.", "os.system")):
            events.append([event, repr(args)[:200]])
    sys.addaudithook(hook)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0)); listener.listen(); listener.setblocking(False)
    port = listener.getsockname()[1]
    bodies = [
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>a &x; b</title>'
        '<description>&x;</description></item></channel></rss>',
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "http://169.254.169.254/latest/meta-data/">]>'
        '<rss version="2.0"><channel><title>t</title><item><guid>2</guid><title>meta</title>'
        '<description>&x;</description></item></channel></rss>',
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % ext SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %ext;]>'
        '<rss version="2.0"><channel><title>t</title><item><guid>3</guid><title>param</title>'
        '<description>&y;</description></item></channel></rss>',
        f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://127.0.0.1:{port}/rss.dtd">'
        '<rss version="2.0"><channel><title>t</title><item><guid>4</guid><title>dtd</title></item></channel></rss>',
    ]
    texts = []
    for body in bodies:
        try:
            feed = parse_feed(body.encode(), url="https://x.example/", content_type=None, now=now)
            texts.append(" | ".join(i.title + i.summary_html for i in feed.items))
        except Exception as exc:
            texts.append(type(exc).__name__ + str(exc))
    try:
        listener.accept(); connected = True
    except BlockingIOError:
        connected = False
    print(json.dumps({"events": [e for e in events if "127.0.0.1" not in e[1] or e[0] != "socket.bind"],
                      "texts": texts, "connected": connected}))
    """
)


def test_P3_xxe_and_external_dtds_are_neither_read_nor_fetched() -> None:
    passwd = Path("/etc/passwd").read_text(errors="replace").splitlines()[:1] if Path("/etc/passwd").exists() else []
    out = subprocess.run(
        [sys.executable, "-c", XXE_SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    opened = [e for e in report["events"] if e[0] == "open"]
    network = [
        e for e in report["events"] if e[0] != "open" and "socket.bind" not in e[0] and "socket.__new__" not in e[0]
    ]
    assert not [e for e in opened if "passwd" in e[1] or ".dtd" in e[1]], opened
    assert not [e for e in network if "connect" in e[0] or "getaddrinfo" in e[0] or "urllib" in e[0]], network
    assert report["connected"] is False
    assert len(report["texts"]) == 4
    for text in report["texts"]:
        assert "root:" not in text and all(line not in text for line in passwd if line)


def test_an_aggregators_item_names_its_outlet_from_source_and_its_title_loses_it() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>"ferry" - Google News</title>'
        b"<link>https://news.google.com/search?q=ferry</link><description>d</description>"
        b"<item><title>Ferry fares rise by a tenth - Harbour Gazette</title>"
        b"<link>https://news.google.com/rss/articles/CBMiA?oc=5</link><guid>CBMiA</guid>"
        b'<source url="https://harbourgazette.example">Harbour Gazette</source></item>'
        b"<item><title>Google News names itself</title><link>https://news.google.com/rss/articles/CBMiB</link>"
        b'<guid>CBMiB</guid><source url="https://news.google.com">Google News</source></item>'
        b"<item><title>No source at all</title><link>https://news.google.com/rss/articles/CBMiC</link>"
        b"<guid>CBMiC</guid></item>"
        b"</channel></rss>"
    )
    feed = parse(body, url="https://news.google.com/rss/search?q=ferry")
    assert [(i.key, i.title, i.outlet) for i in feed.items] == [
        ("CBMiA", "Ferry fares rise by a tenth", "Harbour Gazette"),
        ("CBMiB", "Google News names itself", None),  # the feed itself: no other outlet
        ("CBMiC", "No source at all", None),
    ]


def test_an_atom_planets_entry_names_the_blog_it_came_from() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>Planet Harbour</title><id>urn:planet</id><updated>2024-09-03T10:00:00Z</updated>"
        b'<link href="https://planet.harbour.example/"/>'
        b"<entry><title>Mending nets</title><id>urn:e1</id><updated>2024-09-03T10:00:00Z</updated>"
        b'<link href="https://netmaker.example/nets"/><source><title>The Net Maker</title>'
        b'<link href="https://netmaker.example/"/><id>urn:netmaker</id></source></entry>'
        b"<entry><title>Planet news</title><id>urn:e2</id><updated>2024-09-03T10:00:00Z</updated>"
        b'<link href="https://planet.harbour.example/news"/><source><title>Planet Harbour</title></source></entry>'
        b"</feed>"
    )
    feed = parse(body, url="https://planet.harbour.example/atom.xml")
    assert [(i.title, i.outlet) for i in feed.items] == [("Mending nets", "The Net Maker"), ("Planet news", None)]


def _medium_item(slug: str, host: str, publication: str) -> str:
    url = f"https://{host}/{slug}-1a2b3c?source=rss-------8-----technology"
    return (
        f"<item><title>{slug}</title><link>{url}</link><guid>https://medium.com/p/{slug}</guid>"
        f'<description><![CDATA[<p>What the story says…</p><p><a href="{url}">'
        f"Continue reading on {publication} »</a></p>]]></description></item>"
    )


def test_a_medium_topic_feeds_story_names_its_publication() -> None:
    # Medium's topic feeds ("Handpicked stories about Technology on Medium") carry many publications'
    # stories; each summary closes with "Continue reading on <publication> »", linking the story. A
    # press review cites the publication, as it cites Google News's outlets. "... on Medium »" is a
    # writer's own page on Medium, and a publication's own feed names no other outlet.
    topic = (
        '<?xml version="1.0"?><rss version="2.0"><channel>'
        "<title>Handpicked stories about Harbours on Medium</title>"
        "<link>https://medium.com/topic/harbours</link><description>d</description>"
        + _medium_item("ferries", "harbourgazette.example", "The Harbour Gazette")
        + _medium_item("nets", "medium.com/@netmaker", "Medium")
        + _medium_item("quays", "medium.com/quay-weekly", "Quay Weekly")
        + "</channel></rss>"
    )
    feed = parse(topic.encode(), url="https://medium.com/feed/topic/harbours")
    assert [i.outlet for i in feed.items] == ["The Harbour Gazette", None, "Quay Weekly"]
    assert all("Continue reading" not in i.summary_html for i in feed.items)
    own = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Quay Weekly - Medium</title>'
        "<link>https://medium.com/quay-weekly</link><description>d</description>"
        + _medium_item("quays", "medium.com/quay-weekly", "Quay Weekly")
        + "</channel></rss>"
    )
    assert [i.outlet for i in parse(own.encode(), url="https://medium.com/feed/quay-weekly").items] == [None]


def _links_feed(links: list[str], summary: str) -> bytes:
    items = "".join(
        f"<item><title>Item {n}</title><link>{link}</link><guid>g{n}</guid>"
        f"<description>{summary.format(n=n)}</description></item>"
        for n, link in enumerate(links)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour Links</title>'
        f"<link>https://links.harbour.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def test_a_link_aggregators_items_are_cited_by_the_sites_they_link() -> None:
    # Hacker News's front page links other sites' articles and says nothing of its own: every
    # summary is a "Comments" link, which the feed's shared text empties. A press review cites the
    # site that wrote the article, as it cites a Yandex News item's. An item on the feed's own site
    # ("Ask HN") stays the feed's, and a host of another of its own names ("www2.") is its own too.
    links = [
        "https://ferries.example/fares",
        "https://www.quaynews.example/2024/crane",
        "https://news.bbc.example.co.uk/nets",
        "https://ferries.example/timetable",
        "https://links.harbour.example/item?id=7",
        "https://www2.harbour.example/about",
    ]
    feed = parse(_links_feed(links, '<a href="https://links.harbour.example/item?id=1">Comments</a>'))
    assert [i.outlet for i in feed.items] == [
        "ferries.example",
        "quaynews.example",
        "news.bbc.example.co.uk",
        "ferries.example",
        None,
        None,
    ]
    # A link blog's items link elsewhere too, but say things of their own: they are the blog's.
    blog = parse(_links_feed(links, "<p>Why link {n} matters for the quay, in a few words of mine.</p>"))
    assert [i.outlet for i in blog.items] == [None] * len(links)


MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'


def test_a_photos_caption_is_not_the_items_summary() -> None:
    # The New York Times' homepage feed writes each photo's <media:description> before the item's
    # <description>; feedparser took the caption as the summary and moved the description to content,
    # where the longer won: items were summarised by "A job fair in Brighton, Colo., on Dec. 14."
    item = (
        "<item><title>Wages rise fastest since the recession</title><link>https://t.example/a</link>"
        '<media:content url="https://t.example/a.jpg" medium="image" width="151" height="151"/>'
        "<media:description>A job fair in Harbourtown on Dec. 14. For all the talk of the campaign, the "
        "new mayor inherits an economy that is fundamentally solid, economists said.</media:description>"
        "<description>Average hourly earnings rose by 2.9 percent last year.</description></item>"
    )
    feed = parse(rss(item).replace(b'<rss version="2.0">', f'<rss version="2.0" {MEDIA}>'.encode()))
    (parsed,) = feed.items
    assert parsed.summary_text == "Average hourly earnings rose by 2.9 percent last year."
    assert "job fair" not in parsed.summary_html


def test_a_video_with_no_text_of_its_own_is_summarised_by_its_description() -> None:
    # A YouTube entry's only text is <media:group><media:description>.
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<feed xmlns="http://www.w3.org/2005/Atom" {MEDIA}><title>Channel</title>'
        '<entry><id>yt:video:1</id><title>Episode 12</title><link href="https://v.example/watch?v=1"/>'
        "<updated>2024-09-03T10:00:00Z</updated>"
        "<media:group><media:title>Episode 12</media:title>"
        "<media:description>In this episode we visit the harbour.\n\nLinks below.</media:description>"
        "</media:group></entry></feed>"
    ).encode()
    (parsed,) = parse(body, content_type="application/atom+xml").items
    assert parsed.title == "Episode 12"
    assert parsed.summary_text.startswith("In this episode we visit the harbour.")


def test_a_summary_that_only_names_its_authors_is_no_summary() -> None:
    # UOL's description of a Reuters report is its byline alone: shown as the excerpt it said nothing.
    feed = parse(
        rss(
            "<item><title>Relatório acusa militares de Mianmar</title><link>https://uol.example/1</link>"
            "<description>Por Matt Spetalnick e Jason Szep</description></item>"
            "<item><title>Ferries stop</title><link>https://uol.example/2</link>"
            "<description>&lt;p&gt;By Jo Fenwick&lt;/p&gt;</description></item>"
            "<item><title>Numbers</title><link>https://uol.example/3</link>"
            "<description>By the numbers: three ferries, two ports.</description></item>"
            "<item><title>Fares</title><link>https://uol.example/4</link>"
            "<description>Fares rise. By Jo Fenwick</description></item>"
        )
    )
    assert [(i.summary_html, i.summary_text) for i in feed.items[:2]] == [("", ""), ("", "")]
    assert feed.items[2].summary_text == "By the numbers: three ferries, two ports."
    assert feed.items[3].summary_text == "Fares rise. By Jo Fenwick"


def test_a_summary_with_no_word_or_figure_or_only_a_link_is_no_summary() -> None:
    # Andreessen Horowitz's feed gives a post that opens with its "more" break the description
    # "<p>&#8230;</p>": the edition showed the reader a lone "…" as its excerpt.
    feed = parse(
        rss(
            "<item><title>How startups get addicted to paid marketing</title><link>https://a.example/1</link>"
            "<description>&lt;p&gt;&amp;#8230;&lt;/p&gt;</description></item>"
            "<item><title>Harbour</title><link>https://a.example/2</link>"
            "<description>&lt;p&gt;[&amp;#8230;] &amp;mdash;&lt;/p&gt;</description></item>"
            "<item><title>Cover</title><link>https://a.example/3</link>"
            '<description>&lt;img src="https://a.example/cover.jpg" alt=""&gt;</description></item>'
            "<item><title>Count</title><link>https://a.example/4</link>"
            "<description>&lt;p&gt;3 &amp;#8230;&lt;/p&gt;</description></item>"
            # CNN describes a few items by a short link alone.
            "<item><title>DJs</title><link>https://a.example/5</link>"
            "<description>https://cnn.example/2JQYFqd</description></item>"
            "<item><title>Read</title><link>https://a.example/6</link>"
            "<description>Read more at https://cnn.example/2JQYFqd</description></item>"
        )
    )
    assert [(i.summary_html, i.summary_text) for i in feed.items[:2]] == [("", ""), ("", "")]
    assert (feed.items[4].summary_html, feed.items[4].summary_text) == ("", "")
    assert feed.items[5].summary_text == "Read more at https://cnn.example/2JQYFqd"
    assert "<img" in feed.items[2].summary_html  # a picture alone stays: with images on, it is the lead image
    assert feed.items[3].summary_text == "3 …"


def test_a_feed_that_cuts_its_descriptions_mid_word_has_its_cut_marked() -> None:
    # Giant Bomb's podcast cuts every description at 255 characters, mid-word ("... and, of course,
    # w"); the excerpt showed the reader a word's first letter as its end.
    cut = "The crew talks ferries, harbour fees, the new quay and the long winter ahead, then takes questions on"
    bodies = [cut + " tides and sai", cut + " the lighthouse", cut + " fog, rope and", "A short one, whole."]
    items = "".join(
        f"<item><title>Episode {k}</title><link>https://pod.example/{k}</link><description>{b}</description></item>"
        for k, b in enumerate(bodies)
    )
    got = [i.summary_text for i in parse(rss(items)).items]
    assert got == [cut + " tides and…", cut + " the…", cut + " fog, rope…", "A short one, whole."]
    # Descriptions of one length that end as sentences do, or short ones, were not cut.
    whole = [cut + " tides and sails.", cut + " the lighthouse!", cut + " fog, and rope.", "A short one."]
    items = "".join(
        f"<item><title>Episode {k}</title><link>https://pod.example/{k}</link><description>{b}</description></item>"
        for k, b in enumerate(whole)
    )
    assert [i.summary_text for i in parse(rss(items)).items] == whole
    short = ["ferry-times 0.1.1 Released", "quay-lib 0.2.0 Released", "tidal 1.0.0 Released"]
    items = "".join(
        f"<item><title>R{k}</title><link>https://rel.example/{k}</link><description>{b}</description></item>"
        for k, b in enumerate(short)
    )
    assert [i.summary_text for i in parse(rss(items)).items] == short


def test_a_feed_that_marks_its_cut_mid_word_loses_the_cut_word() -> None:
    # Massa News cuts every description at 163 characters and glues "..." to the cut word ("no
    # centro da cidad..."): a closed end to the eye, a word's first letters to the reader.
    def cut_at(text: str, n: int = 90) -> str:
        return text[:n] + "..."

    texts = [
        "The ferry to the north quay left an hour late on Friday, and the harbour office said the tides",
        "Harbour fees rise in March for every boat over ten metres, the town council said. The winter rates",
        "Fog closed the lighthouse road for the third night in a row, and the coastguard asked drivers to",
        "The new quay opens in April with berths for forty boats, the port authority said in a statement",
    ]
    bodies = [cut_at(t) for t in texts]
    assert len({len(b) for b in bodies}) == 1
    items = "".join(
        f"<item><title>Harbour {k}</title><link>https://quay.example/{k}</link><description>{b}</description></item>"
        for k, b in enumerate(bodies)
    )
    got = [i.summary_text for i in parse(rss(items)).items]
    assert got == [
        "The ferry to the north quay left an hour late on Friday, and the harbour office said the…",
        "Harbour fees rise in March for every boat over ten metres, the town council said.",  # not "... said. The…"
        "Fog closed the lighthouse road for the third night in a row, and the coastguard asked…",
        "The new quay opens in April with berths for forty boats, the port authority said in a…",
    ]
    # WordPress cuts at a number of words and glues "…" to a whole word: lengths differ, words stay.
    words = [
        "The ferry to the north quay left an hour late on Friday, and the harbour office said…",
        "Harbour fees rise in March for every boat over ten metres long, the council said on Monday…",
        "Fog closed the lighthouse road again…",
        "The new quay opens in April with berths for forty boats…",
    ]
    items = "".join(
        f"<item><title>Blog {k}</title><link>https://blog.example/{k}</link><description>{b}</description></item>"
        for k, b in enumerate(words)
    )
    assert [i.summary_text for i in parse(rss(items)).items] == words


def _items(bodies: list[str], host: str = "pod.example") -> bytes:
    return rss(
        "".join(
            f"<item><title>Item {k}</title><link>https://{host}/{k}</link><description>{b}</description></item>"
            for k, b in enumerate(bodies)
        )
    )


def test_a_feed_that_cuts_its_descriptions_at_a_number_of_words_ends_them_at_a_sentence() -> None:
    # El pensante's WordPress feed cuts every description at 28 words, with no mark and no repeated
    # length: "... (y de las cuales tenemos mejor" ended the excerpt (audit finding 8).
    cut = [
        "Ferries ran late on Friday. The harbour office said the tides and the fog in the narrows kept the"
        " morning boats at the quay",
        "The new quay opens in April with berths for forty boats and a crane for the fishing fleet, the port"
        " authority said on its",
        "Harbour fees rise in March for every boat over ten metres long, the town council said on Monday night."
        " The vote was unanimous and",
        "Fog closed the pier road for the third night in a row, and the coastguard asked drivers to keep"
        " well away from the old",
    ]
    assert len({len(b.split()) for b in cut}) == 1 and len({len(b) for b in cut}) == 4
    whole = "A short one, whole."
    got = [i.summary_text for i in parse(_items([*cut, whole])).items]
    assert got == [
        cut[0] + "…",  # "Ferries ran late on Friday." keeps less than a third of it: its words and "…"
        cut[1] + "…",
        "Harbour fees rise in March for every boat over ten metres long, the town council said on Monday night.",
        cut[3] + "…",
        whole,
    ]
    # Open descriptions of many lengths in words, or few of one, were not cut.
    varied = [cut[0], cut[1] + " desk", cut[2] + " the rates and", cut[3]]
    assert [i.summary_text for i in parse(_items(varied)).items] == varied


def test_a_publishers_three_dots_end_a_summary_at_its_last_sentence_or_word() -> None:
    # UOL marks its cut with "..." glued to the cut word, in summaries of any length: "... terá
    # continuidade em 2019. O termo de renovaç..." (audit finding 8). digest's own cut writes "…".
    bodies = [
        "The ferry to the north quay left an hour late on Friday, the harbour office said. The new timetable"
        " starts on Monday and the first boa...",
        "Harbour fees rise in March for every boat over ten metres, the town council said after the vot...",
        "Fog closed the lighthouse road for the third night in a row, and the coastguard asked drivers to ...",
        "Crews return to the quay on Jan. 30 after the strike ends, the union sai...",
    ]
    got = [i.summary_text for i in parse(_items(bodies, "news.example")).items]
    assert got == [
        "The ferry to the north quay left an hour late on Friday, the harbour office said.",
        "Harbour fees rise in March for every boat over ten metres, the town council said after the…",
        "Fog closed the lighthouse road for the third night in a row, and the coastguard asked drivers to…",
        "Crews return to the quay on Jan. 30 after the strike ends, the union…",  # "Jan." ends no sentence
    ]
    # Marks all glued to their words: a cut at a word's end (the BBC's "... according to
    # Machiavelli..."), whose last words stay; and a summary that is whole stays as it is.
    glued = ["The crew talks ferries with the harbour master...", "A night on the quay with the fishing fleet..."]
    got = [i.summary_text for i in parse(_items([*glued, "Ferries run again."], "radio.example")).items]
    assert got == [
        "The crew talks ferries with the harbour master…",
        "A night on the quay with the fishing fleet…",
        "Ferries run again.",
    ]


@pytest.mark.parametrize(
    ("name", "title", "ending"),
    [
        # Cut mid-word and marked: at its last sentence, else at its last whole word.
        ("uol-noticias_no-decl_latin1.rss", "Apucarana garante", "terá continuidade em 2019."),
        ("uol-noticias_no-decl_latin1.rss", "Enfermeira de Chávez", "e alegou sofrer…"),
        (
            "uol-noticias_no-decl_latin1.rss",
            "Dow Jones fecha",
            "possível renúncia de Rod Rosenstein ao cargo de procurador-geral adjunto dos Estados Unidos.",
        ),  # whole: as it was
        # Cut at 28 words, unmarked.
        ("tejiendoelmundo_wordpress_es.xml", "Mujeres guerreras", "las mujeres suelen hacer muy malos soldados."),
        ("tejiendoelmundo_wordpress_es.xml", "Argelia apaga", "algunos estudiantes que jamás lo…"),
    ],
)
def test_real_feeds_cut_summaries_end_at_a_sentence_or_a_whole_word(name: str, title: str, ending: str) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    feed = parse_feed((root / "feeds" / "news" / name).read_bytes(), url=URL, content_type=None, now=NOW)
    (item,) = [i for i in feed.items if i.title.startswith(title)]
    assert item.summary_text.endswith(ending), item.summary_text


# --------------------------------------------------------------------------- localised dates


def test_an_item_dated_with_portuguese_day_and_month_names_is_dated() -> None:
    # UOL's feed: "Seg" (segunda-feira) and "Set" (setembro). Read as undated, such an item was shown
    # as new in every edition and never aged out (audit finding 6).
    feed = parse(
        rss(
            "<item><title>Votação na Câmara</title><link>https://noticias.example/a</link>"
            "<pubDate>Seg, 24 Set 2018 19:22:00 -0300</pubDate></item>"
        )
    )
    assert feed.items[0].published == datetime(2018, 9, 24, 22, 22, tzinfo=UTC)


# --------------------------------------------------------------------------- one article twice in one feed

_WRAPPED = "https://redir.daily.example/redir/online/rss091/*https://www.daily.example/2018/09/quiz.shtml"
_DIRECT = "https://www.daily.example/2018/09/quiz.shtml"


@pytest.mark.parametrize("wrapped_first", [True, False])
def test_an_article_given_behind_a_redirector_and_directly_is_one_item_with_its_text(wrapped_first: bool) -> None:
    # UOL's feed gives Folha's article twice: behind Folha's redirector with a description, and
    # directly with none (audit finding 3). The edition showed the empty copy and the headline twice.
    wrapped = (
        f"<item><title>Quiz passes half a million</title><link>{_WRAPPED}</link>"
        "<description>The election quiz has been taken half a million times.</description></item>"
    )
    direct = f"<item><title>Quiz passes half a million</title><link>{_DIRECT}</link><description></description></item>"
    other = "<item><title>Another story</title><link>https://www.daily.example/2018/09/other.shtml</link></item>"
    feed = parse(rss(wrapped + direct + other if wrapped_first else direct + wrapped + other))
    assert [(i.url, i.summary_text) for i in feed.items] == [
        (_DIRECT, "The election quiz has been taken half a million times."),
        ("https://www.daily.example/2018/09/other.shtml", ""),
    ]
    assert feed.items[0].key == _WRAPPED  # the key the copy with text always had: stores know it


def test_items_that_share_a_link_but_not_a_title_are_all_kept() -> None:
    # A feed whose items all link its front page (no page of their own) lists different stories.
    items = "".join(
        f"<item><guid isPermaLink='false'>n{n}</guid><title>Notice {n}</title><link>https://t.example/</link></item>"
        for n in range(3)
    )
    assert [i.title for i in parse(rss(items)).items] == ["Notice 0", "Notice 1", "Notice 2"]
