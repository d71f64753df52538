"""A feed's summary boilerplate is learned across its items and left out of the excerpts.

Unit tests on invented feeds through `digest.parse`, the corpus's real feeds (what is removed is
printed, and content that merely repeats is kept), and end to end: a feed served over HTTP on
127.0.0.1, polled and sent by the real `digest` to a real SMTP server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from test_faults import NOW, channel, one_feeds_edition, pub_date

from digest import parse as parse_module
from digest import summary_boilerplate
from digest.parse import parse_feed
from digest.summary_boilerplate import _LINK as LINK
from digest.summary_boilerplate import _URL as URL
from digest.summary_boilerplate import learn, learn_closing, learn_links, links_as_blanks, text_of, without_read_more

PARSED_AT = datetime(2026, 11, 30, tzinfo=UTC)
STORIES = (
    ("Quay reopens after the storm", "The harbour quay reopened on Monday after a week of repairs."),
    ("Ferry fares rise by a tenth", "Fares on the island ferry will rise by ten percent from March."),
    ("Lighthouse keeper retires", "After forty years the keeper of the north light hands over the keys."),
    ("Fish market moves indoors", "The Saturday fish market moves into the old customs hall."),
)


def feed(description: str, *, stories: tuple[tuple[str, str], ...] = STORIES) -> bytes:
    """An RSS feed whose items' descriptions are `description` with {title}, {text}, {n} filled in."""
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title}</title><link>https://gazette.example/{n}</link><guid>g-{n}</guid>"
        f"<pubDate>{stamp}</pubDate><description><![CDATA[{description.format(title=title, text=text, n=n)}]]>"
        "</description></item>"
        for n, (title, text) in enumerate(stories)
    )
    return channel("The Harbour Gazette", "https://gazette.example/", items)


def summaries(body: bytes) -> list[str]:
    return [
        i.summary_text for i in parse_feed(body, url="https://gazette.example/rss", content_type=None, now=NOW).items
    ]


def test_a_closing_plea_repeated_on_every_item_is_left_out() -> None:
    body = feed('<p>{text} ... Read more in the <a href="https://gazette.example/{n}">Harbour Gazette</a>!</p>')
    # The "..." left before the plea goes too: after a whole sentence it marks no cut of it (`parse._publisher_cuts`).
    assert summaries(body) == [text for _, text in STORIES]


def test_an_opening_greeting_paragraph_and_a_closing_line_quoting_the_title_are_left_out() -> None:
    body = feed(
        "<p>Thank you for following the Harbour Gazette feed.</p><p>{text}</p>"
        '<p>The post <a href="https://gazette.example/{n}">{title}</a> appeared first on Harbour Gazette.</p>'
    )
    parsed = parse_feed(body, url="https://gazette.example/rss", content_type=None, now=NOW)
    assert [i.summary_text for i in parsed.items] == [text for _, text in STORIES]
    assert all("<p></p>" not in i.summary_html and "appeared first" not in i.summary_html for i in parsed.items)


def test_keys_stay_as_they_were_and_the_content_hash_follows_the_summary() -> None:
    body = feed('<p>{text} ... Read more in the <a href="https://gazette.example/{n}">Harbour Gazette</a>!</p>')
    items = parse_feed(body, url="https://gazette.example/rss", content_type=None, now=NOW).items
    assert [i.key for i in items] == [f"g-{n}" for n in range(len(STORIES))]
    assert len({i.content_hash for i in items}) == len(items)


def test_words_that_open_every_item_but_run_into_its_own_are_kept() -> None:
    # An analyst desk's notes all open alike and go on with the company's name: that is content.
    notes = tuple(
        (f"Rating for {firm}", f"The analyst Harbour Capital has kept the rating for {firm} at buy.")
        for firm in ("Quayside Ltd", "Ferrylines", "North Light Co", "Customs Hall plc")
    )
    body = feed("<p>{text}</p>", stories=notes)
    assert summaries(body) == [text for _, text in notes]


def test_a_closing_line_whose_blanks_are_links_is_left_out_and_a_summary_that_is_only_it_goes() -> None:
    # Reddit's line: the user, the subreddit, the linked page, the comments (a link post has no text).
    line = (
        ' submitted by <a href="https://gazette.example/u/{n}"> /u/keeper{n} </a> to'
        ' <a href="https://gazette.example/r/harbour{n}"> harbour{n}</a> <br>'
        ' <a href="https://pics.example/{n}.jpg">[link]</a> <a href="https://gazette.example/c/{n}">[{n}3 comments]</a>'
    )
    body = feed("<p>{text}</p>" + line)
    assert summaries(body) == [text for _, text in STORIES]
    link_posts = feed(
        '<table><tr><td><a href="https://gazette.example/{n}"><img src="t.jpg" alt=""></a></td><td>' + line
    )
    assert summaries(link_posts) == ["", "", "", ""]
    # A blog's "Posted by <author> in <category>", on three items of four.
    posted = (
        '<p>{text}</p><p>Posted by <a href="https://gazette.example/a{n}">Ann {n}</a> in <a href="/c{n}">Quay</a></p>'
    )
    body = feed(posted).replace(b"Posted by", b"Filed by", 1)
    assert summaries(body)[1:] == [text for _, text in STORIES[1:]]
    assert summaries(body)[0].endswith("Filed by Ann 0 in Quay")


def test_a_sentence_with_links_that_every_item_writes_is_the_news_and_is_kept() -> None:
    firms = ("Quayside Ltd", "Ferrylines", "North Light Co", "Customs Hall plc")
    said = 'The analyst <a href="/a">Harbour Capital</a> has kept the rating for <a href="/{n}">{firm}</a> at buy.'
    notes = tuple((f"Rating for {firm}", said.format(n=n, firm=firm)) for n, firm in enumerate(firms))
    body = feed("<p>{text}</p>", stories=notes)
    assert summaries(body) == [f"The analyst Harbour Capital has kept the rating for {firm} at buy." for firm in firms]
    # "via <a>" is one word: too little to tell a line from the item's own closing words.
    body = feed('<p>{text} via <a href="https://wire.example/{n}">Wire {n}</a></p>')
    assert summaries(body) == [f"{text} via Wire {n}" for n, (_, text) in enumerate(STORIES)]


def test_fewer_than_three_items_teach_nothing() -> None:
    body = feed("<p>{text} Printed in the Harbour Gazette!</p>", stories=STORIES[:2])
    assert summaries(body) == [f"{text} Printed in the Harbour Gazette!" for _, text in STORIES[:2]]
    same = feed("<p>Printed in the Harbour Gazette today!</p>", stories=STORIES[:2])
    assert summaries(same) == ["Printed in the Harbour Gazette today!"] * 2


CREDITS = (
    "The Harbour Hour is made by Quayside Audio. Our producers are Ann Reed and Tom Vale. Music by {music}. "
    "Thanks to {thanks} for their help."
)
MUSIC = ("the Dock Band", "Gull Choir", "Anchor Strings", "the Tidesmen")
THANKS = ("the coastguard", "the ferry crew", "our listeners", "the harbour master")


def podcast(opening: str = "<p>{text} " + CREDITS + "</p>") -> bytes:
    """Episodes whose description is followed by credits that open alike and go on each its own."""
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title}</title><link>https://hour.example/{n}</link><guid>h-{n}</guid>"
        f"<pubDate>{stamp}</pubDate><description><![CDATA["
        + opening.format(text=text, music=MUSIC[n], thanks=THANKS[n])
        + "]]></description></item>"
        for n, (title, text) in enumerate(STORIES)
    )
    return channel("The Harbour Hour", "https://hour.example/", items)


def test_an_opening_plug_after_an_address_that_differs_from_item_to_item_is_left_out() -> None:
    # A video channel's descriptions open with a link to its shop (one of several), then the same plug.
    shops = ("https://go.example/Ab12", "https://go.example/Cd34", "https://go.example/Ab12", "https://go.example/Ef56")
    opening = "<p>{shop} - JOIN THE HARBOUR CLUB TODAY!<br><br>{text}</p>"
    body = feed(opening.replace("{shop}", "{n}"))
    for n, shop in enumerate(shops):
        body = body.replace(f"<![CDATA[<p>{n} - ".encode(), f"<![CDATA[<p>{shop} - ".encode())
    assert summaries(body) == [text for _, text in STORIES]
    # An address that opens each summary and runs into the item's own words stays: no plug follows it.
    own = feed("<p>https://gazette.example/{n} {text}</p>")
    assert summaries(own) == [f"https://gazette.example/{n} {text}" for n, (_, text) in enumerate(STORIES)]


def test_a_closing_block_of_credits_that_opens_alike_on_every_episode_is_cut_off() -> None:
    # No run ends half of the summaries (the music and the thanks differ), but they share a closing
    # block's first sentences: each summary is cut where that block opens.
    assert summaries(podcast()) == [text for _, text in STORIES]
    assert learn_closing(
        [f"{text} " + CREDITS.format(music=m, thanks=t) for (_, text), m, t in zip(STORIES, MUSIC, THANKS, strict=True)]
    ) == ("The", "Harbour", "Hour", "is", "made", "by", "Quayside", "Audio.")


def test_a_sentence_that_opens_the_summaries_or_is_short_opens_no_closing_block() -> None:
    # Opening each summary, the credits are no closing block: the item's own text comes after them.
    credits_first = podcast("<p>" + CREDITS + " {text}</p>")
    assert [s[-len(text) :] for s, (_, text) in zip(summaries(credits_first), STORIES, strict=True)] == [
        text for _, text in STORIES
    ]
    # "Listen below." (two words) in the middle of every summary is too short to say a block opens.
    short = podcast("<p>{text} Listen below. Music by {music}.</p>")
    assert summaries(short) == [
        f"{text} Listen below. Music by {m}." for (_, text), m in zip(STORIES, MUSIC, strict=False)
    ]


# Runs the corpus's feeds repeat, as learned (an item's title: <T>); each checked by hand to be
# boilerplate, not news. A feed not listed here must learn nothing it removes.
CORPUS_REMOVED = {
    "massa-news_curitiba.xml": (0, 50),  # "Leia mais no Massa News!"
    "sospc_fr.xml": (10, 10),  # "Merci à vous de suivre le flux Rss ..." and "Cet article <T> est apparu ..."
    "stadtfeuerwehr-weiz_rss091.xml": (0, 13),  # "Weitere Informationen und Details zu diesem Einsatz ..."
    "hackernoon_medium.xml": (0, 10),  # "<T> was originally published in Hacker Noon on Medium, ..."
    "strava-engineering_medium.xml": (0, 10),
    "joel-on-software.xml": (0, 7),  # the job board's advertisement
    "nuus-in-afrikaans.xml": (0, 5),
    "rubyonrails_riding-rails.atom": (0, 6),  # "Until next week!"
    # The show's credits after each episode's one line, opening "The Habitat is a production of Gimlet
    # Media." (`learn_closing`; the 3 whose thanks and sponsors closed them, before session 27).
    "the-habitat_podcast.xml": (0, 8),
    "wnyc_nancy_podcast.xml": (0, 41),  # "Become a Nancy member today ..."
    # The plugs after each episode's description, opening "Sei beim nächsten Seminar dabei!" (seminars,
    # timestamps, social links, how to ask a question), and the opening "<a shop's address> - JETZT
    # MITGLIED DER INVESTMENT PUNK ACADEMY WERDEN!", its address one of several.
    "youtube_investmentpunk.atom": (9, 13),
    "large_atom_feed_that_needs_css_sanitisation.xml": (0, 2),  # "Обсуждение ведем здесь"
    # Reddit's closing "submitted by <a>user</a> to <a>subreddit</a> <a>[link]</a> <a>[N comments]</a>",
    # its blanks links: a link post's summary is only that line, and goes whole.
    "reddit_frontpage.rss": (20, "line"),
    "reddit_homelab.atom": (1, "line"),  # and the line closing the 24 others
    # Summaries that are, whole, what most of the feed's items' are: Hacker News's "Comments".
    "hackernews_frontpage.xml": (30, "whole"),
    "winds_malformed-hackernews.xml": (16, "whole"),
}


def test_real_feeds_lose_their_boilerplate_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    found = {}
    for path in sorted((root / "feeds").rglob("*")):
        if not path.is_file():
            continue
        # Both without the publisher's cut marked (a word it cut goes, `parse._publisher_cuts`): only
        # what boilerplate removal changed is compared here.
        monkeypatch.setattr(parse_module, "_publisher_cuts", lambda items, *_: items)
        try:
            body = path.read_bytes()
            cleaned = parse_feed(body, url=f"https://corpus.invalid/{path.name}", content_type=None, now=PARSED_AT)
        except Exception:  # the corpus's hostile and broken files
            continue
        with monkeypatch.context() as m:
            m.setattr(parse_module, "_without_boilerplate", lambda items, *_: items)
            raw = parse_feed(body, url=f"https://corpus.invalid/{path.name}", content_type=None, now=PARSED_AT)
        prefix, suffix = learn([(text_of(i.summary_html), i.title) for i in raw.items if i.summary_html])
        closing = learn_closing([text_of(i.summary_html) for i in raw.items if len(i.summary_html) < 4000])
        line = () if suffix else learn_links([links_as_blanks(i.summary_html) for i in raw.items if i.summary_html])
        changed = [(a, b) for a, b in zip(raw.items, cleaned.items, strict=True) if a.summary_html != b.summary_html]
        if not changed:
            continue
        emptied = [a for a, b in changed if not b.summary_html]
        starts = sum(text_of(a.summary_html)[:20] != text_of(b.summary_html)[:20] for a, b in changed if b.summary_html)
        kind = "line" if line else "whole"
        found[path.name] = (starts, len(changed) - len(emptied)) if not emptied else (len(emptied), kind)
        shown = " ".join("<link>" if w == LINK else w for w in line or suffix)
        opening = " ".join("<url>" if w == URL else w for w in prefix)
        print(
            f"{path.name}: {len(changed)} of {len(raw.items)};",
            f"prefix {opening[:60]!r}; suffix {shown[:60]!r}; closing block {' '.join(closing)[:60]!r};",
            f"{len(emptied)} emptied ({kind}): {text_of(emptied[0].summary_html)[:60]!r}" if emptied else "",
        )
        # A summary many items share whole goes, all of it and only it; so does one that is only the
        # closing line with links the feed repeats; in any other, what is left is the item's own text,
        # whole: only an opening and a closing went.
        if line:
            # Nothing but that line and links (a thumbnail's) before it: no word of the item's own.
            for a in emptied:
                assert " ".join(links_as_blanks(a.summary_html).split()).lstrip(LINK + " ") == " ".join(line)
        else:
            assert len({text_of(a.summary_html) for a in emptied}) <= 1
        for a, b in changed:
            assert not b.summary_html or text_of(b.summary_html) in text_of(a.summary_html), a.key
            assert a.key == b.key
    assert found == CORPUS_REMOVED


async def test_the_email_shows_the_excerpt_without_the_feeds_boilerplate(tmp_path: Path) -> None:
    body = feed('<p>{text} ... Read more in the <a href="https://gazette.example/{n}">Harbour Gazette</a>!</p>')
    text, html = await one_feeds_edition(tmp_path, body)
    shown = [story for _, story in STORIES if story in text]
    assert len(shown) >= 3, text  # one outlet: max_per_source of its stories in a section
    assert all(story in html for story in shown)
    assert "Read more in the" not in text and "Read more in the" not in html


async def test_the_email_shows_the_episode_without_its_closing_credits(tmp_path: Path) -> None:
    text, html = await one_feeds_edition(tmp_path, podcast())
    shown = [story for _, story in STORIES if story in text]
    assert len(shown) >= 3, text
    assert all(story in html for story in shown)
    for credit in ("Quayside Audio", "Music by", "Thanks to"):
        assert credit not in text and credit not in html


async def test_the_email_shows_no_closing_line_with_links(tmp_path: Path) -> None:
    line = ' submitted by <a href="https://gazette.example/u/{n}">/u/keeper{n}</a> <br> <a href="/{n}">[link]</a>'
    text, html = await one_feeds_edition(tmp_path, feed("<p>{text}</p>" + line))
    assert STORIES[0][1] in text and STORIES[0][1] in html
    assert "submitted by" not in text and "submitted by" not in html and "/u/keeper" not in html


def test_a_summary_half_the_feeds_items_share_whole_is_no_excerpt() -> None:
    # Hacker News: every item's summary is a link to its comments.
    body = feed('<a href="https://gazette.example/item?id={n}">Comments</a>')
    assert summaries(body) == ["", "", "", ""]
    # Below half of the items it is the item's own (two of four is half: left out as well).
    body = feed("<p>{text}</p>", stories=STORIES[:3]).replace(STORIES[0][1].encode(), b"Comments")
    assert summaries(body) == ["Comments", STORIES[1][1], STORIES[2][1]]
    # A longer show blurb repeated on every episode says nothing of any of them either.
    blurb = "<p>The weekly harbour podcast, with news of ferries, fish and the quay.</p>"
    assert summaries(feed(blurb)) == ["", "", "", ""]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # WordPress's "(more…)", the Guardian's "Continue reading...", Habr's "Читать дальше →":
        # a closing link of a few words to the item's own article.
        (
            '<p>The quay reopens. <a href="https://gazette.example/2#more-17">(more…)</a></p>',
            "<p>The quay reopens.</p>",
        ),
        ('The quay reopens. <a href="http://gazette.example/2/">Continue reading...</a>', "The quay reopens."),
        ('Причал открыт. <a href="https://gazette.example/2#habracut">Читать дальше →</a>', "Причал открыт."),
        # Medium's closing paragraph names the publication, so it differs from item to item.
        (
            '<p>The quay reopens…</p><p><a href="https://gazette.example/2">'
            "Continue reading on The Harbour Gazette »</a></p>",
            "<p>The quay reopens…</p><p></p>",
        ),
        # A link to another page, a longer one, one inside the text, or the whole summary: left alone.
        ('The quay reopens. <a href="https://gazette.example/3">(more…)</a>', None),
        ('The quay reopens. <a href="https://gazette.example/2">as the harbour board had promised</a>', None),
        (
            '<p>The quay reopens.</p><p><a href="https://gazette.example/2">'
            "The harbour board had promised it for the spring of this year</a></p>",
            None,
        ),
        ('The <a href="https://gazette.example/2">quay</a> reopens.', None),
        ('<a href="https://gazette.example/2">Read more</a>', None),
    ],
)
def test_a_closing_read_more_link_to_the_items_article_is_left_out(html: str, expected: str | None) -> None:
    assert without_read_more(html, "https://gazette.example/2") == (html if expected is None else expected)


async def test_the_email_shows_no_read_more_link(tmp_path: Path) -> None:
    body = feed('<p>{text} <a href="https://gazette.example/{n}#more-{n}">(more…)</a></p>')
    text, html = await one_feeds_edition(tmp_path, body)
    assert STORIES[0][1] in text and "(more" not in text and "(more" not in html


# --------------------------------------------------------------------------- a closing list of tags (audit finding 7)

_TAGS = (
    "<p>A clockmaker rebuilt the cuckoo clock as a concrete tower block. (via a friend)</p>\n\n <strong>Tags:</strong> "
    '<a href="https://blog.example/tag/art">art</a>&nbsp;&nbsp; <a href="https://blog.example/tag/clocks">clocks</a>'
)


def test_a_closing_list_of_tag_links_is_dropped() -> None:
    # kottke's every post: the excerpt ended "... (via colossal) Tags: art Tim Easley".
    assert summary_boilerplate.without_tag_list(_TAGS) == (
        "<p>A clockmaker rebuilt the cuckoo clock as a concrete tower block. (via a friend)</p>"
    )
    after_a_sentence = 'Fares rise in May. Tags: <a href="https://blog.example/tag/fares">fares</a>'
    assert summary_boilerplate.without_tag_list(after_a_sentence) == "Fares rise in May."


@pytest.mark.parametrize(
    "html",
    [
        '<p>Tags: <a href="https://blog.example/tag/art">art</a></p>',  # nothing else: kept
        'We sorted the posts by their tags: <a href="https://blog.example/tag/art">art</a>',  # a sentence's words
        'The site lists these Tags: <a href="https://blog.example/tag/art">art</a>',  # no block or sentence before
        '<p>Fares rise.</p><p>Tags: <a href="https://blog.example/tag/art">art</a> and more words</p>',
    ],
)
def test_what_is_not_a_closing_tag_list_is_kept(html: str) -> None:
    assert summary_boilerplate.without_tag_list(html) == html


def test_a_closing_read_more_in_plain_words_after_the_items_own_text_is_dropped() -> None:
    # UOL closes a summary with "Leia mais" and the time it was filed; in the whole corpus only that
    # item changes (the 51 "Leia mais no Massa News!" are the feed's learned boilerplate).
    drop = summary_boilerplate.without_read_more_text
    filed = "Eleitores testaram a ferramenta.\xa0Leia mais (09/24/2018 - 19h22) "
    assert drop(filed) == "Eleitores testaram a ferramenta."
    assert drop("<p>The ferry sank.</p><p>Read more »</p>") == "<p>The ferry sank.</p>"
    assert drop("Он сказал это вчера. Подробнее") == "Он сказал это вчера."
    assert drop("It fell sharply. Continue reading...") == "It fell sharply."
    for kept in ("Nobody would read more", "A sentence Leia mais", "Read more", "Read more about the ferry here."):
        assert drop(kept) == kept


def test_closing_sentences_that_send_the_reader_elsewhere_are_dropped_after_the_items_own() -> None:
    # 13 items of the corpus change: podcasts' "Subscribe on Apple Podcasts ...", YouTube's "Find out
    # more at ...", the NYT's "Sign up to get it by email."; the synopsis never quoted such sentences.
    drop = summary_boilerplate.without_closing_calls
    episode = "<p>This week: the harbour ferry.</p><p>Subscribe on your app or wherever you listen to shows.</p>"
    assert drop(episode) == "<p>This week: the harbour ferry.</p>"
    assert drop("A look at the new tram. Find out more at tram.example. Sign up for our newsletter.") == (
        "A look at the new tram."
    )
    assert drop("What do trams and ferries have in common? Listen here to find out!") == (
        "What do trams and ferries have in common?"
    )
    for kept in (
        "Subscribe now.",  # nothing else would be left
        "Watch sales fell. Prices rose.",  # "Watch" is news here
        "Sign up for our newsletter. The ferry sank on Monday.",  # a call before the item's own text
        "The ferry sank. Readers wrote in.",
    ):
        assert drop(kept) == kept
