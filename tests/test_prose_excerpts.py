"""What an edition quotes of an item is its prose: not a figure's caption, a byline, subheadings
or an embedded post (Medium's and WordPress's bodies open with a caption and a byline).

End to end: a feed served over HTTP on 127.0.0.1 whose items (two outlets, one story, named in
<source>) carry such bodies, polled and sent by the real `digest` to a real SMTP server.
"""

from __future__ import annotations

from pathlib import Path

from test_faults import channel, one_feeds_edition, pub_date

BODY = (
    '<figure><img alt="" src="https://cdn.example/{n}.jpeg"><figcaption><em>Image: </em>'
    "<em>The&nbsp;Wire</em></figcaption></figure>"
    '<p><em>By </em><a href="https://social.example/{n}"><em>{writer}</em></a></p>'
    "<p>{text}</p><h3><strong>1. From ferries to freight</strong></h3>"
    '<blockquote class="twitter-tweet"><p>Big day at the quay! pic.twitter.com/x</p></blockquote>'
    "<p>The board will publish the new timetable in March.</p>"
)
TELLINGS = (
    (
        "Harbour Gazette",
        "Jo Fenwick",
        "Harbour board buys the island ferry line for $7.5 million",
        "The harbour board bought the island ferry line for $7.5 million on Monday.",
    ),
    (
        "Evening Courier",
        "Ana de la Cruz",
        "Harbour board buys island ferry line for $7.5 million",
        "Ferry crews welcomed the harbour board's $7.5 million purchase of the line.",
    ),
)


def feed() -> bytes:
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title}</title><link>https://{outlet.replace(' ', '').lower()}.example/ferry</link>"
        f"<guid>g-{n}</guid><pubDate>{stamp}</pubDate>"
        f"<description><![CDATA[{BODY.format(n=n, writer=writer, text=text)}]]></description>"
        f'<source url="https://{outlet.replace(" ", "").lower()}.example">{outlet}</source></item>'
        for n, (outlet, writer, title, text) in enumerate(TELLINGS)
    )
    return channel("Ferry news", "https://news.agg.example/", items)


async def test_the_press_review_quotes_prose_not_captions_bylines_subheadings_or_posts(tmp_path: Path) -> None:
    flat, html = await one_feeds_edition(tmp_path, feed())
    # One story told by both outlets, each quoted from its own prose.
    assert "Evening Courier" in flat and "Harbour Gazette" in flat and " adds: " in flat, flat
    assert "The harbour board bought the island ferry line for $7.5 million on Monday." in flat, flat
    for part in (flat, html):
        for shown in ("Image:", "The Wire", "By Jo Fenwick", "Jo Fenwick", "Ana de la Cruz", "From ferries", "Big day"):
            assert shown not in part, (shown, part)


CROSS_LINKED = (
    '<ul><li>The <a href="https://{host}/board">harbour board</a> bought the island ferry line on Monday.</li>'
    '<li><a href="https://{host}/other-story" target="_blank">Mayor opens the new quay at Eastpoint.</a></li></ul>'
    '<p><strong><a href="https://{host}/third">Storm closes the coast road for a day.</a></strong></p>'
    "<p>{text}</p>"
)


async def test_a_list_item_that_only_links_another_article_is_neither_quoted_nor_excerpted(tmp_path: Path) -> None:
    """A report that lists links to the outlet's other articles (as 20minutos does inside its
    summaries): those headlines are not this report's sentences, so neither the press review nor the
    excerpt shows them; a sentence with a link inside is the report's and is quoted."""
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title}</title><link>https://{host}/ferry</link><guid>g-{n}</guid><pubDate>{stamp}</pubDate>"
        f"<description><![CDATA[{CROSS_LINKED.format(host=host, text=text)}]]></description>"
        f'<source url="https://{host}">{outlet}</source></item>'
        for n, (outlet, _, title, text) in enumerate(TELLINGS)
        for host in [outlet.replace(" ", "").lower() + ".example"]
    )
    flat, html = await one_feeds_edition(tmp_path, channel("Ferry news", "https://news.agg.example/", items))
    assert "Evening Courier" in flat and "Harbour Gazette" in flat, flat
    assert "bought the island ferry line on Monday." in flat, flat
    for part in (flat, html):
        for shown in ("Mayor opens the new quay", "Storm closes the coast road"):
            assert shown not in part, (shown, part)
