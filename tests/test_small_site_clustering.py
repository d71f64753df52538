"""A small site's edition (fewer items than document frequencies need, `SMALL_BATCH`) weighs
its words by the week of items before it too, so two outlets' reports of one story are one story.

The real `python -m digest` against two feeds served on 127.0.0.1, aiosmtpd and a real SQLite file;
each command's clock is set with DIGEST_NOW. Day one's edition carries 48 items of everyday news;
day two's carries eight, two of which tell one ferry fire in other words. Without day one in the
database (a site's first days) the two reports stay apart, as every pair of a batch that small
does unless nearly the same words.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import SmtpServer
from test_faults import channel, cli, pub_date, write_config

from digest.cluster import SMALL_BATCH

DAY1 = datetime(2026, 12, 1, 7, 5, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)

PLACES = ("Leeds", "Porto", "Gdansk", "Lyon", "Tartu", "Bilbao", "Graz", "Aarhus")
SUBJECTS = (
    ("council approves budget for {p} libraries", "The city council voted on the library budget on Monday."),
    ("{p} tram line to close for repairs", "Engineers will replace the rails over three weeks, the operator said."),
    ("New museum director named in {p}", "The board named a curator from the national gallery as director."),
    ("{p} marathon draws record field", "Organisers said more runners than ever had signed up for the race."),
    ("Police in {p} appeal for witnesses after burglary", "Officers asked residents to report anything unusual."),
    ("{p} airport adds winter routes", "Two airlines will fly to ski resorts from the airport this season."),
)
# Day two: the story, told by two outlets in their own words, and six other reports.
FERRY_A = (
    "Ferry fire: all 212 passengers rescued off Brindisi",
    "Coast guard boats took every passenger off the burning ferry Aurora before dawn, officials said.",
)
FERRY_B = (
    "Passengers saved as blaze sweeps ferry Aurora near Brindisi",
    "Rescue crews lifted the passengers from the ferry after a fire broke out on its car deck overnight.",
)
OTHERS = (
    ("Orchestra in Vilnius names conductor", "The orchestra chose a violinist who has led it as a guest."),
    ("Bakery chain opens tenth shop in Cork", "The chain said it would hire forty people this winter."),
    ("Zoo in Basel welcomes twin lion cubs", "Keepers said the cubs and their mother were doing well."),
    ("Chess club in Riga wins league title", "The club won its final match to finish a point clear."),
    ("Bridge repairs in Turin finish early", "The road reopened to traffic two days ahead of schedule."),
    ("Students in Ghent plant a thousand trees", "Volunteers planted saplings along the river banks."),
)


def _items(site: str, entries: list[tuple[str, str]], when: datetime) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>https://{site}/{n}</link><guid>https://{site}/{n}</guid>"
        f"<pubDate>{pub_date(when - timedelta(minutes=5 * n + 90))}</pubDate>"
        f"<description>{summary}</description></item>"
        for n, (title, summary) in enumerate(entries)
    )
    return channel(site, f"https://{site}/", body)


def _day_one(site: int) -> list[tuple[str, str]]:
    """24 everyday reports of one outlet: the first site's half of the places, the second's the other."""
    places = PLACES[site * 4 : site * 4 + 4]
    titles = [(t.format(p=p), s) for p in places for t, s in SUBJECTS]
    return [(t[0].upper() + t[1:], s) for t, s in titles]


def _text(data: bytes) -> str:
    """The plain-text part, its wrapped lines joined."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


def _headlined(text: str, title: str) -> bool:
    return f"* {title} [" in text


async def _editions(tmp: Path, *, with_history: bool) -> list[bytes]:
    tmp.mkdir()
    async with FeedServer() as feeds, SmtpServer() as smtp:
        sites = ("harbour.example", "coast.example")
        urls = [feeds.serve(f"/{n}.xml", b"") for n in range(2)]
        config = write_config(
            tmp,
            feed_url=urls[0],
            smtp_port=smtp.port,
            extra='max_item_age = "3d"',
            tail=f'[[feeds]]\nurl = "{urls[1]}"',
        )
        if with_history:
            for n, site in enumerate(sites):
                feeds.serve(f"/{n}.xml", _items(site, _day_one(n), DAY1))
            for command, at in (("poll", DAY1 - timedelta(hours=1)), ("send", DAY1)):
                done = await asyncio.to_thread(cli, config, command, now=at)
                assert done.returncode == 0, done.stdout + done.stderr
        second = [[FERRY_A, *OTHERS[:3]], [FERRY_B, *OTHERS[3:]]]
        for n, site in enumerate(sites):
            feeds.serve(f"/{n}.xml", _items(f"{site}/day2", second[n], DAY2))
        for command, at in (("poll", DAY2 - timedelta(hours=1)), ("send", DAY2)):
            done = await asyncio.to_thread(cli, config, command, now=at)
            assert done.returncode == 0, done.stdout + done.stderr
    return [m.data for m in smtp.messages]


def test_a_small_sites_edition_tells_two_outlets_reports_of_one_story_once(tmp_path: Path) -> None:
    assert len(FERRY_A + FERRY_B + OTHERS) // 2 + 2 < SMALL_BATCH  # day two is a small edition
    sent = asyncio.run(_editions(tmp_path / "week", with_history=True))
    assert len(sent) == 2  # day one's edition and day two's
    text = _text(sent[1])
    # One story: one report leads it, the other is quoted under it ("... adds: ...").
    assert _headlined(text, FERRY_A[0]) != _headlined(text, FERRY_B[0]), text
    assert "2 outlets" in text and FERRY_A[1] in text and FERRY_B[1] in text, text

    first_days = asyncio.run(_editions(tmp_path / "new", with_history=False))
    assert len(first_days) == 1
    apart = _text(first_days[0])
    assert _headlined(apart, FERRY_A[0]) and _headlined(apart, FERRY_B[0]), apart
    assert "2 outlets" not in apart
