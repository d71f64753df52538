"""An aggregator's feed (Yandex News, Google News): each item is cited by the site that wrote it.

End to end: a feed served over HTTP on 127.0.0.1 whose links name each paper's article
(`?url=paper.example/...`), or whose items name their outlet in <source> (Google News today),
polled and sent by the real `digest` to a real SMTP server.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_faults import channel, one_feeds_edition, pub_date

PAPERS = ("kommersant.example", "vedomosti.example", "izvestia.example")
TELLINGS = (
    ("Central bank raises key rate to 18 percent", "The central bank raised its key rate to 18 percent on Friday."),
    ("Central bank raises its key rate to 18 percent", "Importers welcomed a stronger rouble after the decision."),
    ("Bank raises key rate to 18 percent", "Economists say the key rate decision will slow inflation by summer."),
)


def aggregator_feed() -> bytes:
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title}</title>"
        f"<link>https://news.agg.example/story?url={paper}%2Fnews%2F{n}</link>"
        f"<guid>agg-{n}</guid><pubDate>{stamp}</pubDate><description>{text}</description></item>"
        for n, (paper, (title, text)) in enumerate(zip(PAPERS, TELLINGS, strict=True))
    )
    return channel("News Aggregator", "https://news.agg.example/", items)


async def test_an_aggregators_items_are_one_story_cited_by_the_papers_that_wrote_them(tmp_path: Path) -> None:
    flat, html = await one_feeds_edition(tmp_path, aggregator_feed())
    # One story, told by three papers ("X: ..., Y adds: ..."), not one feed's three items.
    assert sum(flat.count(f"* {title} [") for title, _ in TELLINGS) == 1, flat
    for paper in PAPERS:
        assert paper in flat and paper in html
        assert f'href="https://{paper}/news/' in html  # the article itself, not the aggregator's redirect
    assert "News Aggregator adds" not in flat and " adds: " in flat
    assert "news.agg.example" not in html and "news.agg.example" not in flat


async def test_an_aggregators_sites_are_cited_by_the_names_outlets_gives_them(tmp_path: Path) -> None:
    # [outlets] names two of the three sites; the plural one agrees in Russian ("Ведомости пишут").
    tail = "\n".join(
        [
            "[outlets]",
            '"kommersant.example" = "Коммерсантъ"',
            '"www.vedomosti.example" = { name = "Ведомости", plural = true }',
        ]
    )
    flat, html = await one_feeds_edition(tmp_path, aggregator_feed(), extra='language = "ru"', tail=tail)
    assert sum(flat.count(f"* {title} [") for title, _ in TELLINGS) == 1, flat
    assert re.search(r"Коммерсантъ \[\d+\] (пишет|добавляет):", flat), flat
    assert re.search(r"Ведомости \[\d+\] (пишут|добавляют):", flat), flat
    assert "Коммерсантъ" in html and "Ведомости" in html
    assert "kommersant.example [" not in flat and "vedomosti.example [" not in flat
    assert "izvestia.example" in flat  # not named in [outlets]: cited by its host
    assert 'href="https://vedomosti.example/news/' in html  # the link still goes to the article


OUTLETS = ("Harbour Gazette", "Evening Courier", "Daily Lantern")


def news_search_feed() -> bytes:
    """A Google News search feed as it is written today: links to news.google.com that name no
    article, each item's outlet in <source>, and each title ending with " - <outlet>"."""
    stamp = pub_date()
    items = "".join(
        f"<item><title>{title} - {outlet}</title>"
        f"<link>https://news.google.com/rss/articles/CBMi{n}x?oc=5</link>"
        f'<guid isPermaLink="false">CBMi{n}x</guid><pubDate>{stamp}</pubDate><description>{text}</description>'
        f'<source url="https://{outlet.replace(" ", "").lower()}.example">{outlet}</source></item>'
        for n, (outlet, (title, text)) in enumerate(zip(OUTLETS, TELLINGS, strict=True))
    )
    return channel('"key rate" - Google News', "https://news.google.com/search?q=key+rate", items)


async def test_an_aggregators_items_are_cited_by_the_outlets_its_feed_names_in_source(tmp_path: Path) -> None:
    flat, html = await one_feeds_edition(tmp_path, news_search_feed())
    # One story told by three outlets, cited by name ("Harbour Gazette: ..., Evening Courier adds: ..."),
    # its headline without Google News's " - <outlet>".
    assert sum(flat.count(f"* {title} [") for title, _ in TELLINGS) == 1, flat
    for outlet in OUTLETS:
        assert f"{outlet} [" in flat and outlet in html
        assert f" - {outlet}" not in flat
    assert "Google News adds" not in flat and " adds: " in flat
