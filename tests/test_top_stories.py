"""'Top stories' ranks stories by how many outlets tell them; the subject can name the lead story."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer
from smtpservers import Received, SmtpServer
from test_end_to_end import digest, parsed, rss, write_config

from digest.compose import ComposeOptions, build_stories, compose
from digest.model import Item
from digest.render import SUBJECT_CHARS, Renderer

T0 = datetime(2017, 1, 7, 6, 0, tzinfo=UTC)


def item(n: int, title: str, source: str, *, minutes: int = 0, summary: str = "") -> Item:
    when = T0 - timedelta(minutes=minutes)
    return Item(
        id=n,
        feed_id=n,
        source=source,
        title=title,
        url=f"https://{source.lower()}.example/{n}",
        summary_html="",
        summary_text=summary,
        published=when,
        first_seen=when,
    )


def options(top: int = 3, subject: str = "lead") -> ComposeOptions:
    return ComposeOptions(title="Morning Review", section_order=("World",), top_stories=top, subject_style=subject)


def edition_of(items: list[Item], top: int = 3, subject: str = "lead"):  # type: ignore[no-untyped-def]
    stories = build_stories([(i, "World") for i in items], options=options(top, subject))
    return compose(
        stories, day=date(2017, 1, 7), timezone="UTC", chosen=None, options=options(top, subject), web_url="u"
    )


SHOOTING = [
    item(1, "Gunman kills five at Fort Lauderdale airport", "Wire"),
    item(2, "Fort Lauderdale airport: gunman kills five", "Herald", minutes=5),
    item(3, "Gunman kills five at Florida's Fort Lauderdale airport", "Gazette", minutes=9),
    item(4, "Gunman kills five people at Fort Lauderdale airport, eight hurt", "Wire", minutes=20),
]
SUMMIT = [
    item(5, "Leaders sign climate pact at Geneva summit", "Herald", minutes=30),
    item(6, "Geneva summit: leaders sign climate pact", "Courier", minutes=40),
]


def test_top_stories_are_ranked_by_outlets_and_one_outlets_follow_up_counts_once() -> None:
    ed = edition_of([*SHOOTING, *SUMMIT, item(7, "Cup final tonight", "Wire", minutes=50)])
    # Three outlets, then two; a lone story is not top. The shooting is led by the title the other
    # reports agree with most (cluster.representative), not by the earliest, 4, with its "eight hurt".
    assert [s.lead.id for s in ed.top_stories] == [1, 6]
    assert [s.outlets for s in ed.top_stories] == [3, 2]
    assert ed.top_stories[0].sources == 4  # four items, three outlets


def test_among_stories_as_many_outlets_tell_the_one_with_more_reports_leads() -> None:
    fire = [
        item(8, "Fire in a Moscow hotel: two dead", "Rg", minutes=1),
        item(9, "Moscow hotel fire kills two", "Dni", minutes=2),
        item(10, "Two dead as fire sweeps Moscow hotel", "Tv360", minutes=3),
    ]
    ed = edition_of(
        [*SHOOTING, item(11, "Gunman kills five at Fort Lauderdale airport, FBI says", "Herald", minutes=4), *fire]
    )
    assert [s.outlets for s in ed.top_stories] == [3, 3]
    # The shooting (five reports) is older than the fire (three), and leads it all the same.
    assert ed.top_stories[0].lead.id in {1, 2, 3, 4, 11} and ed.top_stories[0].sources == 5
    assert "Fort Lauderdale" in Renderer().render(ed).subject


def test_the_subject_names_the_story_most_outlets_tell_and_the_parts_show_the_outlets() -> None:
    rendered = Renderer().render(edition_of([*SHOOTING, *SUMMIT]))  # [digest] subject = "lead"
    assert rendered.subject.startswith("Press review: Gunman kills five")
    assert "Fort Lauderdale" in rendered.subject
    assert "3 outlets" in rendered.text and "3&nbsp;outlets" in rendered.html
    assert "2 outlets" in rendered.text


def test_by_default_the_subject_is_title_date_and_the_story_most_outlets_tell() -> None:
    # Issue 11's "Morning Review — 7 January: Gunman kills five at Fort Lauderdale airport", cut to fit.
    subject = Renderer().render(edition_of([*SHOOTING, *SUMMIT], subject="headline")).subject
    assert subject.startswith("Morning Review — January 7, 2017: Gunman kills five") and len(subject) <= SUBJECT_CHARS
    assert "Fort Lauderdale" in subject
    assert ComposeOptions(title="R", section_order=()).subject_style == "headline"  # the default
    # A day no two outlets share names no story; "date" never does.
    alone = Renderer().render(edition_of(SUMMIT[:1], subject="headline")).subject
    assert alone == "Morning Review — January 7, 2017"
    plain = Renderer().render(edition_of([*SHOOTING, *SUMMIT], subject="date")).subject
    assert plain == "Morning Review — January 7, 2017"


def test_a_long_or_hostile_lead_title_is_cut_to_fit_on_one_header_line() -> None:
    long = "Gunman kills five at Fort Lauderdale airport " + "and the whole terminal is evacuated " * 6
    hostile = [
        item(1, long + "\r\nBcc: victim@example.org", "Wire"),
        item(2, long + "\r\nBcc: victim@example.org", "Herald", minutes=3),
    ]
    subject = Renderer().render(edition_of(hostile)).subject
    assert len(subject) <= SUBJECT_CHARS
    assert "\r" not in subject and "\n" not in subject
    assert "…" in subject and "Fort Lauderdale" in subject


def test_the_real_days_lead_story_is_the_one_most_outlets_told() -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    sys.path.insert(0, str(Path(__file__).parent))
    from test_cluster_corpus import load_days, most_told

    labelled = load_days(root / "feeds" / "news")
    items = [x.item for x in labelled]  # stored items, as compose gets them
    ed = edition_of(items, top=5)
    story_of = {x.item.url: x.story for x in labelled}
    top = [(story_of[s.lead.url], s.outlets) for s in ed.top_stories]
    print("\ntop stories:", top)
    # The labels' two stories most outlets told, most reports first among equals: the intelligence
    # report (six outlets, 16 reports) and the Fort Lauderdale shooting (five, 13). Each is one story
    # of the edition, and they lead it in that order.
    assert [story for story, _ in top[:2]] == most_told(labelled, 2)
    assert len({story for story, _ in top}) == len(top), "a story twice in Top stories"
    subject = Renderer().render(ed).subject
    print("subject:", subject)
    assert ed.top_stories[0].lead.title[:40] in subject


FERRY = "Portmere ferry strike ends after twelve hours of talks"


async def _ferry_strike_sent(
    tmp_path: Path, *, also: list[tuple[str, str, str, timedelta, str]], config_lines: str = ""
) -> list[Received]:
    """Two outlets' feeds telling the ferry strike (the second with `also`, more of its items) served
    on 127.0.0.1; `digest poll` and `digest send` run as processes with `config_lines` added to
    [digest]; the messages the SMTP server received."""
    summary = "Crews of the Portmere ferries return to work on Monday after twelve hours of talks."
    quay = rss("Quay Gazette", [(FERRY, "/world/ferry", "World", timedelta(hours=3), summary)])
    bay = rss("Bay Herald", [(f"{FERRY}, union says", "/world/ferries", "World", timedelta(hours=2), summary), *also])
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [feeds.serve("/quay.xml", quay), feeds.serve("/bay.xml", bay)]
        config = write_config(tmp_path, feeds=urls, smtp_port=smtp.port)
        config.write_text(config.read_text().replace("[digest]\n", "[digest]\n" + config_lines, 1))
        code, _, err = await digest(config, "poll")
        assert code == 0, err
        code, out, err = await digest(config, "send")
        assert code == 0, out + err
    return list(smtp.messages)


async def test_the_subject_a_subscriber_receives_names_the_story_two_outlets_tell(tmp_path: Path) -> None:
    """Poll and send as processes, two outlets' feeds served on 127.0.0.1, the config's default
    subject style: the message's Subject names the story both tell."""
    trams = ("Tram fares rise in March", "/world/trams", "World", timedelta(hours=1), "The council voted.")
    messages = await _ferry_strike_sent(tmp_path, also=[trams])
    (message,) = [m for m in messages if m.rcpt_tos[0] == "editor@example.org"]
    subject = parsed(message.data)["Subject"]
    assert subject.startswith(f"Morning Review — January 16, 2026: {FERRY}"), subject


async def test_an_edition_whose_stories_are_all_top_stories_is_sent(tmp_path: Path) -> None:
    """With `top_stories` on, a story several outlets tell moves from its section into the block: a
    subscriber whose sections hold nothing else still gets the edition (it was taken for empty, and
    the story was lost to them)."""
    messages = await _ferry_strike_sent(tmp_path, also=[], config_lines="top_stories = 3\n")
    (message,) = [m for m in messages if m.rcpt_tos[0] == "editor@example.org"]
    text = " ".join(parsed(message.data).get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert "Top stories" in text and FERRY in text and "2 outlets" in text, text
    # The Sport reader's sections hold nothing: no email for them.
    assert [m.rcpt_tos[0] for m in messages] == ["editor@example.org"]
