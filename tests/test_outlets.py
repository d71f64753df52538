"""Who an item's outlet is: the site an aggregator's link names, and the outlet's name in a feed's title."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer
from smtpservers import SmtpServer
from storepaths import store_items
from test_end_to_end import NOW as E2E_NOW
from test_end_to_end import digest, write_config
from test_end_to_end import parsed as parsed_message
from test_store import T0, parsed

from digest.config import Settings, load
from digest.model import Feed, FeedSpec, PollRecord
from digest.outlets import linked_article, outlet_name, site
from digest.parse import parse_feed
from digest.pipeline.mailer import classify_item
from digest.store import Store


@pytest.mark.parametrize(
    ("title", "url", "name"),
    [
        ("World – The Harbour Gazette", "https://harbourgazette.example/world/feed/", "The Harbour Gazette"),
        ("HGZ > Home Page", "https://rss.hgz.example/home.xml", "HGZ"),  # a short name inside a longer host
        ("BUGLE ONLINE - Nachrichten", "https://www.bugle.example/schlagzeilen/index.rss", "BUGLE ONLINE"),
        ("Il Faro - Cronache", "https://www.ilfaro.example/rss/cronaca.xml", "Il Faro"),
        ("Le Phare.example - Actualités", "https://www.lephare.example/rss/une.xml", "Le Phare"),  # its address
        ("Phare.example - Actualités", "https://www.phare.example/rss/une.xml", "Phare.example"),  # a brand
        ("The Quay Times.co.uk | News", "https://www.quaytimes.co.uk/rss", "The Quay Times"),
        ("Гавань / Новости", "https://gavan.example/rss", "Гавань"),  # compared in ASCII: "Gavan'"
        ("Politik | The Daily Lantern", "https://feeds.dailylantern.example/politik", "The Daily Lantern"),
        # No part names the host: the title as it is, not a guess ...
        ("Harbour | Evening Courier", "https://www.dailycourier.example/h/index.rss", "Harbour | Evening Courier"),
        # A brand that shortens its host's name is that part (HuffPost at huffingtonpost.ca); a part
        # that is no shortening of it, or a word of three letters, is not.
        ("HarbPost Canada - Athena2 - All Posts", "https://www.harbingtonpost.ca/feeds/i.xml", "HarbPost Canada"),
        ("Harbour | Lantern", "https://www.harbingercourier.example/rss", "Harbour | Lantern"),
        ("Hgz | Lantern", "https://www.hogwartz.example/rss", "Hgz | Lantern"),
        # ... but a part that names a page ("Home", "World News Articles", "Últimas Notícias") is not the outlet,
        ("Home | Evening Courier", "https://www.dailycourier.example/home/index.rss", "Evening Courier"),
        ("World News Articles | Evening Courier", "https://www.dailycourier.example/w.rss", "Evening Courier"),
        ("Jornal da Ria - Últimas Notícias", "https://www.jr.example/rss", "Jornal da Ria"),
        ("Home | News", "https://www.dailycourier.example/home/index.rss", "dailycourier.example"),
        # and a title that names only a page is the site's.
        ("Пресс-релизы", "https://www.bank.example/rss/press.xml", "bank.example"),
        ("Latest News", "https://www.dailycourier.example/rss", "dailycourier.example"),
        ("Breaking Courier", "https://www.dailycourier.example/rss", "Breaking Courier"),
        ("World – The Harbour Gazette", "https://feeds.feedburner.com/harbour-world", "The Harbour Gazette"),
        # A platform hosts many outlets: "- Medium" is where it is published, not who wrote it.
        ("engineering-notes - Medium", "https://medium.com/feed/engineering-notes", "engineering-notes"),
        ("Quay Notes - Harbour - Medium", "https://medium.com/feed/quay", "Quay Notes - Harbour - Medium"),
        ("Ferries in Harbour Gazette on Medium", "https://harbourgazette.example/feed/tagged/x", "Harbour Gazette"),
        ("Stories by Jo Fenwick on Medium", "https://medium.com/feed/@jo", "Jo Fenwick"),
        # A page of a site, described ("<what it lists> on <the site>"): the site, as a reader names it.
        ("Stories about Ferries on Medium", "https://medium.com/feed/t/x", "Medium"),
        ("q.HB updates on Quayprints.org", "https://rss.quayprints.org/atom/q.HB", "Quayprints.org"),
        ("Notes on Harbour", "https://www.notesonharbour.example/feed", "Notes on Harbour"),  # a name, not a page
        # A page of a thing the site lists, named as the site's link writes it, under its owner.
        ("newest submissions : ferries", "https://www.forum.example/r/ferries/new/.rss", "r/ferries"),
        ("Recent Commits to tides:main", "https://code.example/quaylab/tides/commits/main.atom", "quaylab/tides"),
        ("Release notes from tides", "https://code.example/quaylab/tides/releases.atom", "quaylab/tides"),
        ("News of the Harbour", "https://www.quaypress.example/rss", "News of the Harbour"),  # a name
        # A part whose first word opens the host's name, beside a topic's page.
        ("HGB News Gaeilge - Ferries and fares", "https://www.hgbgaeilge.example/rss", "HGB News Gaeilge"),
        ("The Lantern - Ferries", "https://www.thequay.example/rss", "The Lantern - Ferries"),  # "The" opens many
        # A name written as an address, as a reader says it.
        ("Ticker - www.quayfinanz.example", "https://www.quayfinanz.example/rss", "quayfinanz.example"),
        ("HGZ.com - RSS Channel - App Edition", "https://www.hgz.com/rss", "HGZ"),
        ("Gavan.io", "https://gavan.io/rss", "Gavan"),
        ("quayfinanz.com", "https://quayfinanz.com/rss", "quayfinanz.com"),  # written as an address, not a name
        ("Lantern.org", "https://lantern.org/rss", "Lantern.org"),  # an organisation's own suffix stays
        ("The Harbour Gazette", "https://harbourgazette.example/feed", "The Harbour Gazette"),
        ("News: Harbour", "https://news.example/feed", "Harbour"),  # "news" names no outlet; "News", a page
        # No separator: the words that spell the host's name, whole.
        ("Latest Items from HarbourGazette", "https://www.harbourgazette.example/feeds/all", "HarbourGazette"),
        ("Harbour Gazette latest articles", "https://www.harbourgazette.example/feed", "Harbour Gazette"),
        ("Harbour news of the day", "https://www.harbourgazette.example/feed", "Harbour news of the day"),
        ("Gazette latest", "https://www.harbourgazette.example/feed", "Gazette latest"),  # a part of it: no
        ("HarbourGazette Blog", "https://www.harbourgazette.example/feed", "HarbourGazette Blog"),
    ],
)
def test_the_outlets_name_is_the_part_of_the_feeds_title_its_host_names(title: str, url: str, name: str) -> None:
    assert outlet_name(title, url) == name


@pytest.mark.parametrize(
    ("title", "url", "site_url", "name"),
    [
        # Served from FeedBurner, a CDN or a mirror: the site the channel links to names the outlet.
        (
            "World – The Harbour Gazette",
            "https://feeds.feedburner.com/hg-world",
            "https://www.harbourgazette.example/",
            "The Harbour Gazette",
        ),
        ("HGZ > Home Page", "http://127.0.0.1:8080/hgz.xml", "https://www.hgz.example/", "HGZ"),
        (
            "Harbour Gazette latest articles",
            "https://cdn.example.net/f/1.xml",
            "https://harbourgazette.example/",
            "Harbour Gazette",
        ),
        # The feed's own host names a part: that part, whatever the link says.
        (
            "World – The Harbour Gazette",
            "https://harbourgazette.example/rss",
            "https://portal.example/",
            "The Harbour Gazette",
        ),
        # Neither names a part: the whole title, not a guess; less a part that names a page.
        (
            "Harbour | Evening Courier",
            "https://feeds.feedburner.com/ec",
            "https://www.dailycourier.example/",
            "Harbour | Evening Courier",
        ),
        (
            "Home | Evening Courier",
            "https://feeds.feedburner.com/ec",
            "https://www.dailycourier.example/",
            "Evening Courier",
        ),
        ("Пресс-релизы", "http://127.0.0.1:8080/cb.xml", "https://www.bank.example/", "bank.example"),
        ("World – The Harbour Gazette", "https://feeds.feedburner.com/hg-world", None, "The Harbour Gazette"),
        ("Harbour – The Gazette", "https://feeds.feedburner.com/hg-harbour", None, "Harbour – The Gazette"),
    ],
)
def test_a_feed_on_another_host_is_named_by_the_site_it_links_to(
    title: str, url: str, site_url: str | None, name: str
) -> None:
    assert outlet_name(title, url, site_url) == name


def test_a_feeds_display_name_is_its_configured_name_else_the_outlet_in_its_title() -> None:
    feed = Feed(id=1, url="https://harbourgazette.example/world/feed/", name=None, section=None, active=True)
    assert feed.display_name == "https://harbourgazette.example/world/feed/"
    titled = Feed(
        id=1,
        url="https://harbourgazette.example/world/feed/",
        name=None,
        section=None,
        active=True,
        title="World – The Harbour Gazette",
    )
    assert titled.display_name == "The Harbour Gazette"
    named = Feed(id=1, url=titled.url, name="Gazette", section=None, active=True, title=titled.title)
    assert named.display_name == "Gazette"


def test_stored_items_are_cited_by_the_outlet_and_rules_naming_the_whole_title_still_match(
    store: Store, tmp_path: Path
) -> None:
    url = "https://harbourgazette.example/world/feed/"
    store.sync_feeds([FeedSpec(url=url, name=None)], now=T0)
    feed = next(f.id for f in store.list_feeds() if f.url == url)
    with store.poll_writer() as writer:  # what a poll of the feed's first body writes
        writer.record([PollRecord(feed, T0, 200, 0, None, T0, title="World – The Harbour Gazette")])
    store_items(store, feed, [parsed("g1", url="https://harbourgazette.example/1", title="Quay reopens")], now=T0)
    (item,) = store.edition_window("UTC", until=datetime(2026, 1, 17, tzinfo=UTC)).items
    assert item.source == "The Harbour Gazette"
    # A section rule written before, with the feed's whole title, still finds the feed's items.
    config = tmp_path / "digest.toml"
    config.write_text(
        '[digest]\ntitle = "R"\ntimezone = "UTC"\ndatabase = "sqlite:///x.sqlite"\n'
        '[smtp]\nhost = "127.0.0.1"\nsender = "r@example.org"\n'
        '[[sections]]\nname = "Harbour"\nfeeds = ["World – The Harbour Gazette"]\n'
        '[[sections]]\nname = "Gazette"\nfeeds = ["The Harbour Gazette"]\n',
        encoding="utf-8",
    )
    settings: Settings = load(config)
    assert classify_item(settings, item).section == "Harbour"


# What the corpus's feeds are cited as, served from a host that names no outlet (as from a mirror):
# by the site each feed's channel links to. Each name is written here by hand (the outlet as a reader knows it).
CORPUS_NAMES = {
    "indian-express_world.xml": "The Indian Express",
    "spiegel_online.xml": "SPIEGEL ONLINE",
    "lemonde_une.xml": "Le Monde",  # "Le Monde.fr - Actualités et Infos ...": the name, not the address
    "nytimes_homepage.xml": "The New York Times",  # "NYT > Home Page": its copyright line spells it out
    "massa-news_curitiba.xml": "Massa News",
    "themoscowtimes_news.xml": "The Moscow Times",
    "theverge_frontpage.atom": "The Verge",
    # Less the part that names a page; a title that names only a page is the site's.
    "daily-mail_home_mediacontent.xml": "Mail Online",
    "daily-mail_world_empty.xml": "Mail Online",
    "jornal-de-noticias_latin1.rss": "Jornal de Notícias",
    "cbr_press-releases.xml": "cbr.ru",
    # Titles whose parts name no host, or with no separator, are cited whole.
    "huffpost-canada.xml": "HuffPost Canada - Athena2 - All Posts",
    "japantimes_latest.xml": "Japan Times",
    "treehugger.xml": "TreeHugger",
    "yandex-news_moscow_mojibake.xml": "Яндекс.Новости: Москва",
    "strava-engineering_medium.xml": "strava-engineering",
    "hackernoon_medium.xml": "Hacker Noon",
    # Pages of a site, described: the site, or the thing the page lists as the channel's link writes it.
    "medium_technology.xml": "Medium",
    "arxiv_cs-lg.atom": "arXiv.org",
    "github_miniflux-commits.atom": "miniflux/v2",
    "github_gulp-releases.atom": "gulpjs/gulp",
    "reddit_homelab.atom": "r/homelab",
    # A part whose first word opens the host's name (bbcurdu.com), not the topic's page after it.
    "bbc-urdu.xml": "BBC News اردو",
    # Names written as addresses, as a reader says them.
    "finanzen-net_analysen_latin1.xml": "finanzen.net",
    "meduza_all.xml": "Meduza",
    "cnn_international.xml": "CNN",
    "tmz.xml": "TMZ",
    "pcmag_dvorak_illegally-nested.xml": "PCMag",
    "kottke.atom": "kottke.org",
    "20minutos_rss10.xml": "20minutos.es",
}


def test_real_feeds_titles_give_the_outlets_names() -> None:
    """Every feed of the corpus, printed with the name digest cites it by (`pytest -s`); the ones
    written above are asserted."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    found = {}
    for path in sorted((root / "feeds" / "news").iterdir()):
        feed = parse_feed(
            path.read_bytes(),
            url=f"https://corpus.invalid/{path.name}",
            content_type=None,
            now=datetime(2026, 11, 30, tzinfo=UTC),
        )
        if not feed.title:
            continue
        found[path.name] = outlet_name(feed.title, f"https://corpus.invalid/{path.name}", feed.link, feed.rights)
        print(f"{path.name}: {feed.title!r} -> {found[path.name]!r}")
    assert {name: found.get(name) for name in CORPUS_NAMES} == CORPUS_NAMES


@pytest.mark.parametrize(
    ("link", "article"),
    [
        (
            "https://news.yandex.ru/yandsearch?cl4url=paper.example%2Fnews%2F2026%2F01%2F07%2Fquay.html&lr=213",
            "https://paper.example/news/2026/01/07/quay.html",
        ),
        (
            "https://news.google.com/news/url?sa=t&url=https://www.gazette.example/ferry-fares&ct=ga",
            "https://www.gazette.example/ferry-fares",
        ),
        ("https://paper.example/news/quay.html?utm_source=rss", None),  # a publisher's own link
        ("https://news.agg.example/story?url=news.agg.example%2Fabout", None),  # back to its own site
        ("https://news.agg.example/story?url=paper.example", None),  # a bare host: no article
        ("https://paper.example/search?u=42", None),  # a value that is no address
        ("https://news.agg.example/go?url=javascript:alert(1)", None),
        ("https://news.agg.example/go?url=http://[paper.example/news/7", None),  # a host urlsplit refuses
        ("http://[news.agg.example/go?url=https://paper.example/news/7", None),  # the link's own host too
    ],
)
def test_an_aggregators_link_is_read_as_the_article_it_stands_for(link: str, article: str | None) -> None:
    assert linked_article(link) == article


def test_an_aggregators_item_links_the_article_and_keeps_its_key() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Agg</title><link>https://news.agg.example/</link>'
        b"<description>d</description><item><title>Quay reopens</title>"
        b"<link>https://news.agg.example/story?url=paper.example%2Fnews%2F7&amp;utm_source=agg</link></item>"
        b"</channel></rss>"
    )
    (item,) = parse_feed(body, url="https://news.agg.example/rss", content_type=None, now=T0).items
    assert item.url == "https://paper.example/news/7"
    assert item.outlet == "paper.example"
    # Its identity is the link the feed gave, as before links were unwrapped: no item is stored twice.
    assert item.key == "https://news.agg.example/story?url=paper.example%2Fnews%2F7"


def test_a_malformed_address_names_no_site_and_the_title_still_names_the_outlet() -> None:
    """ "http://[..." is an address urlsplit refuses: where a feed's URL or its channel's link is
    one, no host is read from it, and nothing raises."""
    assert site("http://[gazette.example/world") == ""
    assert outlet_name("Harbour | Evening Courier", "http://[bad/feed") == "Harbour | Evening Courier"
    assert outlet_name("World – The Harbour Gazette", "http://[bad/feed") == "The Harbour Gazette"  # "World": a page
    assert outlet_name("World – The Harbour Gazette", "https://harbourgazette.example/feed", "http://[bad/") == (
        "The Harbour Gazette"
    )
    assert outlet_name("Home | Mail Online", "http://[bad/feed", "http://[bad/") == "Mail Online"


@pytest.mark.parametrize(
    ("title", "feed_url", "site_url", "rights", "cited"),
    [
        # An acronym whose initials the copyright line's owner has, and whose host spells that owner.
        (
            "HG > Home Page",
            "https://www.hgazette.example/rss",
            None,
            "Copyright 2026  The Harbour Gazette Company",
            "The Harbour Gazette",
        ),
        (
            "HG > World",
            "https://feeds.example/hg",
            "https://hgazette.example/",
            "© 2020-2026 Harbour Gazette Ltd.",
            "Harbour Gazette",
        ),
        (
            "HG > World",
            "https://harbourgazette.example/rss",
            None,
            "Harbour Gazette Media Group. All rights reserved.",
            "HG",
        ),  # "Media": not H, G
        # A parent company is another name; a host that spells another; no copyright line; no acronym.
        ("HG > Home Page", "https://www.hgazette.example/rss", None, "Copyright 2026 Coastal Newspapers Inc.", "HG"),
        (
            "HG > Home Page",
            "https://feeds.example/hg",
            "https://www.coastal.example/",
            "The Harbour Gazette Company",
            "HG",
        ),
        ("HG > Home Page", "https://www.hgazette.example/rss", None, None, "HG"),
        (
            "World – The Harbour Gazette",
            "https://harbourgazette.example/rss",
            None,
            "Harbour Town Press",
            "The Harbour Gazette",
        ),
    ],
)
def test_an_acronym_is_cited_as_the_name_the_feeds_copyright_line_spells_out(
    title: str, feed_url: str, site_url: str | None, rights: str | None, cited: str
) -> None:
    assert outlet_name(title, feed_url, site_url, rights) == cited


async def test_a_polled_feed_titled_by_an_acronym_is_cited_by_its_full_name(tmp_path: Path) -> None:
    """Poll and send as processes: the copyright line a poll stores names the outlet in the email and
    in `feeds list`."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>HG &gt; Home Page</title><link>https://www.hgazette.example/</link><description>d</description>"
        "<copyright>Copyright 2026  The Harbour Gazette Company</copyright>"
        "<item><title>Ferry strike ends after a night of talks</title>"
        "<link>https://www.hgazette.example/world/ferries</link><guid>ferries</guid>"
        f"<category>World</category><pubDate>{format_datetime(E2E_NOW - timedelta(hours=2))}</pubDate>"
        "<description>Crews return to the quay on Monday.</description></item></channel></rss>"
    ).encode()
    _, listed, text = await _polled_and_sent(tmp_path, body)
    assert "as 'The Harbour Gazette'" in listed, listed
    assert "The Harbour Gazette · " in text and "HG · " not in text, text


async def _polled_and_sent(tmp_path: Path, body: bytes) -> tuple[str, str, str]:
    """Serve `body` as a feed on 127.0.0.1, run `digest poll`, `digest send` and `digest feeds list`
    as processes: what poll and feeds list printed, and the text part the editor received."""
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/feed.xml", body)], smtp_port=smtp.port)
        code, polled, err = await digest(config, "poll")
        assert code == 0, polled + err
        code, out, err = await digest(config, "send")
        assert code == 0 and "1 sent" in out, out + err
        code, listed, err = await digest(config, "feeds", "list")
        assert code == 0, listed + err
    (message,) = [m for m in smtp.messages if m.rcpt_tos[0] == "editor@example.org"]
    text = parsed_message(message.data).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return polled, listed, text


async def test_one_malformed_link_or_reference_costs_neither_the_feed_nor_the_edition(tmp_path: Path) -> None:
    """Poll and send as processes, the feed served on 127.0.0.1. Its channel's link is no address,
    one item is an aggregator's link forwarding to no address, and its titles write an emoji as two
    UTF-16 references: each of these made the parse of the whole feed fail ("the parser failed"),
    so none of its items reached an edition. Now every item is stored and sent, the emoji as itself."""
    when = format_datetime(E2E_NOW - timedelta(hours=2))
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Top stories - Google News</title><link>http://[news.google.com/</link><description>d</description>"
        "<item><title>Rocket launch lights up the coast &#55357;&#56960;</title>"
        "<link>https://news.google.com/url?url=https://wire.example/launch</link>"
        f"<category>World</category><pubDate>{when}</pubDate><description>Crowds watched.</description></item>"
        "<item><title>Ferry strike ends after a night of talks</title>"
        "<link>https://news.google.com/url?url=http://[harbour.example/ferries</link>"
        f"<category>World</category><pubDate>{when}</pubDate><description>Crews return.</description></item>"
        "</channel></rss>"
    ).encode()
    polled, _, text = await _polled_and_sent(tmp_path, body)
    assert "2 new items, 0 failed" in polled, polled
    assert "Rocket launch lights up the coast \U0001f680" in text and "https://wire.example/launch" in text
    assert "wire.example · " in text  # the forwarded item is cited by the site it names
    assert "Ferry strike ends after a night of talks" in text  # the other, under the aggregator's own link


async def test_a_feed_served_from_another_host_is_cited_by_the_outlet_its_site_names(tmp_path: Path) -> None:
    """Poll and send as processes, the feed served on 127.0.0.1 (as from a CDN or a mirror, whose
    host names no outlet): the email cites the outlet the channel's <link> names, not the title."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>World – The Harbour Gazette</title><link>https://www.harbourgazette.example/world/</link>"
        "<description>d</description><item><title>Ferry strike ends after a night of talks</title>"
        "<link>https://www.harbourgazette.example/world/ferries</link><guid>ferries</guid>"
        f"<category>World</category><pubDate>{format_datetime(E2E_NOW - timedelta(hours=2))}</pubDate>"
        "<description>Crews return to the quay on Monday.</description></item></channel></rss>"
    ).encode()
    _, listed, text = await _polled_and_sent(tmp_path, body)
    assert "as 'The Harbour Gazette'" in listed, listed  # the operator sees it too
    assert "Ferry strike ends after a night of talks" in text
    assert "The Harbour Gazette · " in text and "World – The Harbour Gazette" not in text
