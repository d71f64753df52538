"""A feed whose items carry no date: the day in an article's link keeps its archive out of the edition.

End to end: the feed served over HTTP on 127.0.0.1, the real `digest poll` and `digest send`, a real
SMTP server. The clock of both commands is test_faults.NOW (10 March 2026); max_item_age is 48 h.
"""

from __future__ import annotations

from pathlib import Path

from test_faults import channel, one_feeds_edition

STORIES = (
    ("/news/2026/03/10/quay-reopens/", "Quay reopens after the storm"),
    ("/news/lighthouse-keeper-retires/", "Lighthouse keeper retires"),  # no day: news when first seen
    ("/news/2026/02/20/fish-market-moves/", "Fish market moves indoors"),  # the archive: 18 days old
)


def undated_feed() -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>https://gazette.example{path}</link><guid>{path}</guid>"
        f"<description>{title}, our reporter writes.</description></item>"
        for path, title in STORIES
    )
    return channel("Harbour Gazette", "https://gazette.example/", items)


async def test_an_undated_feeds_archive_is_not_sent_as_news(tmp_path: Path) -> None:
    text, html = await one_feeds_edition(tmp_path, undated_feed())
    for _, title in STORIES[:2]:
        assert title in text and title in html
    assert "Fish market moves indoors" not in text and "Fish market moves indoors" not in html
    assert " more in " not in text  # left out, not counted among the stories the email hides


async def test_an_undated_item_of_an_earlier_day_is_shown_on_its_links_day(tmp_path: Path) -> None:
    # The Japan Times' items carry no date; those of 3 January, first seen on the 5th, were shown as
    # "January 5, 23:30 (first seen)" under the 5th, ahead of the day's own news.
    stories = (
        ("/news/2026/03/09/ferry-timetable/", "Ferry timetable changes for spring"),  # yesterday's, by its link
        ("/news/2026/03/10/quay-reopens/", "Quay reopens after the storm"),  # today's: the time we saw it
    )
    items = "".join(
        f"<item><title>{title}</title><link>https://gazette.example{path}</link><guid>{path}</guid>"
        f"<description>{title}, our reporter writes.</description></item>"
        for path, title in stories
    )
    text, html = await one_feeds_edition(tmp_path, channel("Harbour Gazette", "https://gazette.example/", items))
    for part, first_seen in ((text, "(first seen)"), (html, "(first&nbsp;seen)")):
        yesterday, today = part.index("Monday, March 9"), part.index("Tuesday, March 10")
        # (the HTML part names the lead story in its preheader too, before any heading)
        assert today < part.index("Quay reopens", today) < yesterday < part.index("Ferry timetable", today)
        assert part.count(first_seen) == 1  # the quay's; a link tells a day, and no time is shown for it
    assert "Harbour Gazette · March 9 " in text  # text is joined into one line by one_feeds_edition
