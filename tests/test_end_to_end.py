"""The whole press review through real parts: a config file, the `digest` command as a process,
feeds served over HTTP on 127.0.0.1, a real SMTP server (aiosmtpd) and a real SQLite file.

config -> digest poll -> digest send -> what the SMTP server received.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from digestprocess import run_digest
from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn

NOW = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, after send_at 07:00


def rss(title: str, items: list[tuple[str, str, str, timedelta, str]]) -> bytes:
    """(title, link path, category, age, summary) -> an RSS 2.0 body of our own words."""
    parts = [
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://{title.lower().replace(' ', '-')}.example/</link><description>d</description>"
    ]
    for item_title, path, category, age, summary in items:
        parts.append(
            f"<item><title>{item_title}</title><link>https://{title.lower().replace(' ', '-')}.example{path}"
            f"</link><guid>{path}</guid><category>{category}</category>"
            f"<pubDate>{format_datetime(NOW - age)}</pubDate><description><![CDATA[<p>{summary}</p>"
            f"<script>alert(1)</script>]]></description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


HARBOUR = rss(
    "Harbour Times",
    [
        (
            "Port authority approves new grain terminal",
            "/business/grain",
            "Economy",
            timedelta(hours=2),
            "The terminal will double export capacity.",
        ),
        (
            "City council debates tram fares",
            "/world/trams",
            "World",
            timedelta(days=1, hours=3),
            "A vote is expected next week.",
        ),
        ("Old story from last month", "/world/old", "World", timedelta(days=30), "Too old to send."),
    ],
)
SUMMIT = rss(
    "Summit Sport",
    [
        ("Harbour FC win the regional cup final", "/sport/cup", "Sport", timedelta(hours=5), "A late goal settled it."),
    ],
)


def write_config(tmp: Path, *, feeds: list[str], smtp_port: int) -> Path:
    config = tmp / "digest.toml"
    feed_lines = "".join(f'[[feeds]]\nurl = "{u}"\n' for u in feeds)
    config.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "Europe/Moscow"
send_at = "07:00"
database = "sqlite:///{tmp / "digest.sqlite"}"
base_url = "https://review.example"
allow_private_addresses = true

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Morning Review <review@review.example>"
timeout = 10

[fetch]
timeout = 10

[[sections]]
name = "World"
categories = ["World"]
[[sections]]
name = "Business & Economy"
categories = ["Economy"]
[[sections]]
name = "Sport"
categories = ["Sport"]

{feed_lines}
[[subscribers]]
email = "editor@example.org"
name = "Chief Editor"

[[subscribers]]
email = "fan@example.org"
sections = ["Sport"]
""",
        encoding="utf-8",
    )
    return config


STEP = [0]


async def digest(config: Path, *args: str, now: datetime | None = None) -> tuple[int, str, str]:
    """`python -m digest --config CONFIG ARGS...` with its clock at `now` (DIGEST_NOW): (exit code,
    stdout, stderr). By default each command runs a minute after the previous one, as an operator's
    would: DIGEST_NOW restarts the clock in every process, so identical starts would overlap."""
    STEP[0] += 1
    return await run_digest(config, *args, env={"DIGEST_NOW": (now or NOW + timedelta(minutes=STEP[0])).isoformat()})


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_poll_then_send_delivers_one_edition_per_subscriber_and_a_second_send_nothing(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [feeds.serve("/harbour.xml", HARBOUR, etag='"h1"'), feeds.serve("/summit.xml", SUMMIT)]
        config = write_config(tmp_path, feeds=urls, smtp_port=smtp.port)

        code, out, err = await digest(config, "poll")
        assert code == 0, err
        assert "polled 2 feeds: 4 new items, 0 failed" in out
        assert f"200  {urls[0]}  3 new, 0 updated" in out

        code, out, err = await digest(config, "send")
        assert code == 0, err
        assert "edition 2026-01-16 Europe/Moscow: 2 sent, 0 skipped, 0 failed, 0 deferred (complete)" in out
        assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["editor@example.org", "fan@example.org"]

        code, out, _ = await digest(config, "send")
        assert code == 0 and "0 sent" in out
        assert len(smtp.messages) == 2, "a second send for the same date must send nothing"

        code, out, _ = await digest(config, "poll")
        assert "304" in out and "0 new items" in out

    by_rcpt = {m.rcpt_tos[0]: parsed(m.data) for m in smtp.messages}
    editor = by_rcpt["editor@example.org"]
    assert editor["Subject"] == "Morning Review — January 16, 2026"
    assert editor["To"] == "Chief Editor <editor@example.org>"
    assert editor["List-Unsubscribe"].startswith("<https://review.example/u/")
    assert editor.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in editor.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = editor.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = editor.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # Sections in configured order, each with its local day headings.
    assert text.index("World") < text.index("Business & Economy") < text.index("Sport")
    assert "Friday, January 16" in text and "Thursday, January 15" in text
    assert "January 16, 07:00 UTC+3" in text  # 04:00 UTC shown in Moscow time
    assert "Port authority approves new grain terminal" in html
    assert "Old story from last month" not in text, "an item older than max_item_age is not news"
    assert "<script" not in html and 'style="' in html, "feed scripts removed, our CSS inlined"

    fan = by_rcpt["fan@example.org"]
    fan_text = fan.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Harbour FC win the regional cup final" in fan_text
    assert "grain terminal" not in fan_text and "tram fares" not in fan_text
    assert fan["Message-ID"] != editor["Message-ID"]


async def test_an_smtp_outage_loses_nothing_and_the_next_send_delivers(tmp_path: Path) -> None:
    async with FeedServer() as feeds:
        url = feeds.serve("/summit.xml", SUMMIT)
        smtp = SmtpServer().start()
        port = smtp.port
        smtp.stop()  # the relay is down
        config = write_config(tmp_path, feeds=[url], smtp_port=port)
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert code == 1
        # The error line (after the warning that the test's example.org readers get no real mail).
        assert "\nerror: " in "\n" + err and "hint:" in err and "Traceback" not in err
        async with SmtpServer() as smtp_back:  # the relay is back (the operator fixed [smtp] port)
            write_config(tmp_path, feeds=[url], smtp_port=smtp_back.port)
            code, out, err = await digest(config, "send")
            assert code == 0, err
            assert "2 sent" in out or ("1 sent" in out and "1 skipped" in out)
            assert sorted(m.rcpt_tos[0] for m in smtp_back.messages) == ["editor@example.org", "fan@example.org"]


async def test_preview_and_dry_run_send_nothing(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/h.xml", HARBOUR)], smtp_port=smtp.port)
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(
            config, "preview", "--subscriber", "editor@example.org", "--out", str(tmp_path / "p.html")
        )
        assert code == 0, err
        assert "Port authority" in (tmp_path / "p.html").read_text() and (tmp_path / "p.txt").exists()
        code, out, err = await digest(config, "send", "--dry-run", str(tmp_path / "eml"))
        assert code == 0, err
        emls = sorted((tmp_path / "eml").glob("*.eml"))
        assert len(emls) == 1  # the sport fan has nothing in Sport from this feed
        assert parsed(emls[0].read_bytes())["To"] == "Chief Editor <editor@example.org>"
        assert smtp.messages == []
        code, out, _ = await digest(config, "send")
        assert "1 sent, 1 skipped" in out, "a dry run records nothing"


BUSY = rss(
    "Busy Wire",
    [
        *(
            (f"{place} harbour reopens after {n} days of repairs", f"/world/{n}", "World", timedelta(hours=n), "")
            for n, place in enumerate(("Northport", "Eastbay", "Westmere", "Southcliff"), start=1)
        ),
        ("Harbour FC sign a goalkeeper", "/sport/keeper", "Sport", timedelta(hours=1), ""),
        ("Lakeside rowing club wins the spring regatta", "/sport/regatta", "Sport", timedelta(hours=2), ""),
    ],
)


async def test_a_sections_own_max_items_overrides_max_items_per_section_in_the_sent_email(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/busy.xml", BUSY)], smtp_port=smtp.port)
        text = config.read_text(encoding="utf-8")
        text = text.replace('send_at = "07:00"', 'send_at = "07:00"\nmax_items_per_section = 1\nmax_per_source = 10')
        text = text.replace('categories = ["World"]', 'categories = ["World"]\nmax_items = 3')
        config.write_text(text, encoding="utf-8")
        code, out, err = await digest(config, "check-config")
        assert code == 0, err
        assert "World (max_items 3)" in out
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert code == 0, err
        editor = next(parsed(m.data) for m in smtp.messages if list(m.rcpt_tos) == ["editor@example.org"])
        body = editor.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert sum(place in body for place in ("Northport", "Eastbay", "Westmere", "Southcliff")) == 3
        assert "1 more in World" in body
        assert sum(club in body for club in ("goalkeeper", "regatta")) == 1  # [digest]'s 1 still holds for Sport
        assert "1 more in Sport" in body


MIXED = rss(
    "Mixed Wire",
    [
        (
            "Opera house reopens with a season of new productions",
            "/a/opera",
            "Arts",
            timedelta(hours=1),
            "The city opera company returns to its restored hall this spring.",
        ),
        (
            "Polizei meldet einen Einbruch im Rathaus der Altstadt",
            "/b/rathaus",
            "Lokales",
            timedelta(hours=2),
            "Die Täter sind nach Angaben der Polizei noch nicht gefasst.",
        ),
        (
            "Bund und Länder einigen sich über den Ausbau des Hafens",
            "/c/hafen",
            "World",
            timedelta(hours=3),
            "Der Ausbau soll im nächsten Jahr beginnen.",
        ),
        (
            "L'operato del sindaco sul nuovo porto divide la città",
            "/d/porto",
            "Cronaca",
            timedelta(hours=4),
            "Il consiglio comunale discute il piano per il porto.",
        ),
    ],
)


def section_of(body: str, title: str, sections: Sequence[str]) -> str:
    """The section heading an item's title stands under in the text part."""
    body = body.replace("\r\n", "\n")
    at = body.index(title)
    headings = [(body.rfind(f"\n{name}\n" + "-" * len(name), 0, at), name) for name in sections]
    return max(headings)[1]


async def test_a_rules_languages_place_items_by_the_language_they_are_written_in(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/mixed.xml", MIXED)
        config = write_config(tmp_path, feeds=[url], smtp_port=smtp.port)
        text = config.read_text(encoding="utf-8")
        text = text.replace(
            '[[sections]]\nname = "Sport"',
            '[[sections]]\nname = "Society & Culture"\n[[sections.rules]]\nkeywords = ["opera"]\n'
            'languages = ["en", "fr"]\n'
            '[[sections]]\nname = "Deutschsprachige Presse"\n[[sections.rules]]\nlanguages = ["de"]\n'
            '[[sections]]\nname = "Sport"',
        )
        config.write_text(text, encoding="utf-8")
        code, out, err = await digest(config, "check-config")
        assert code == 0, err
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert code == 0, err
        editor = next(parsed(m.data) for m in smtp.messages if list(m.rcpt_tos) == ["editor@example.org"])
        body = editor.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        names = ("World", "Society & Culture", "Deutschsprachige Presse", "Other")
        assert section_of(body, "Opera house reopens", names) == "Society & Culture"
        assert section_of(body, "Polizei meldet einen Einbruch", names) == "Deutschsprachige Presse"
        assert section_of(body, "Bund und Länder einigen sich", names) == "World"  # its category outranks
        assert section_of(body, "L'operato del sindaco", names) == "Other"  # not read as opera in Italian
        code, out, err = await digest(config, "sections", "explain", "https://mixed-wire.example/a/opera")
        assert code == 0, err
        assert "keyword 'opera' in the title and language 'en' match section 'Society & Culture'" in out
        assert "language: read as 'en' (rules that set languages list de, en, fr)" in out
        code, out, err = await digest(config, "sections", "explain", "https://mixed-wire.example/d/porto")
        assert code == 0, err
        assert "Other: no rule matched" in out and "language: read as 'it'" in out


async def test_a_renamed_section_keeps_the_subscribers_who_chose_it_under_its_old_name(tmp_path: Path) -> None:
    from digest.store import Choices, Store

    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/h.xml", HARBOUR)], smtp_port=smtp.port)
        code, _, err = await digest(config, "subscribers", "add", "cli@example.org", "--sections", "World")
        assert code == 0, err
        code, _, err = await digest(config, "subscribers", "add", "reader@example.org")
        assert code == 0, err
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        try:  # what the preferences page saves when the reader ticks World and Sport
            reader = next(s for s in store.list_subscribers() if s.email == "reader@example.org")
            store.set_choices(reader.id, Choices(("World", "Sport"), None), now=NOW)
        finally:
            store.close()

        # The operator renames World. Without `formerly`, status says who would lose it.
        original = config.read_text(encoding="utf-8")
        config.write_text(original.replace('name = "World"', 'name = "International"'), encoding="utf-8")
        code, out, err = await digest(config, "status")
        assert code == 0, err
        assert "chosen sections that no section has: 'World' (2 subscribers)" in out, out
        assert 'add formerly = ["World"] to its [[sections]] entry' in out
        code, out, err = await digest(config, "subscribers", "show", "reader@example.org")
        assert "sections  World (no section has this name now), Sport  [set by subscriber]" in out, out

        config.write_text(
            original.replace('name = "World"', 'name = "International"\nformerly = ["World"]'), encoding="utf-8"
        )
        code, out, err = await digest(config, "check-config")
        assert code == 0 and "sections: International (formerly World), " in out, out
        code, out, err = await digest(config, "status")
        assert code == 0, err
        assert "chosen sections that no section has" not in out
        assert "2 subscribers' chosen sections follow them" in err
        code, out, err = await digest(config, "subscribers", "show", "reader@example.org")
        assert "sections  International, Sport  [set by subscriber]" in out, out
        code, out, err = await digest(config, "subscribers", "show", "cli@example.org")
        assert "sections  International  [set by cli]" in out, out
        # A list written before the rename still reads.
        old_csv = tmp_path / "old.csv"
        old_csv.write_text("email,name,sections,timezone\nlate@example.org,Late,World;Sport,\n", encoding="utf-8")
        code, out, err = await digest(config, "subscribers", "import", str(old_csv))
        assert code == 0, err
        code, out, err = await digest(config, "subscribers", "show", "late@example.org")
        assert "sections  International, Sport  [set by cli]" in out, out
        # A `digest web` still running the old config saves "World" after that one-time rewrite
        # (finding 2): every reader of the choice maps it, status, show and the edition alike.
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        try:
            store.set_choices(reader.id, Choices(("World", "Sport"), None), now=NOW)
        finally:
            store.close()
        code, out, err = await digest(config, "status")
        assert code == 0 and "chosen sections that no section has" not in out, out
        code, out, err = await digest(config, "subscribers", "show", "reader@example.org")
        assert "sections  International, Sport  [set by subscriber]" in out, out

        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert code == 0, err
    got = {m.rcpt_tos[0]: parsed(m.data) for m in smtp.messages}
    for address in ("cli@example.org", "reader@example.org", "late@example.org"):
        body = got[address].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "City council debates tram fares" in body and "International\r\n---" in body, address
        assert "grain terminal" not in body, address


async def test_an_edition_built_before_a_rename_goes_out_under_the_new_name(tmp_path: Path) -> None:
    # The reader's server defers the first attempt (451): the edition is built, with "World", and
    # their row waits for its retry; meanwhile the operator renames World.
    deferred: list[str] = []

    def rcpt(turn: Turn) -> str | None:
        if turn.address == "reader@example.org" and not deferred:
            deferred.append(turn.address)
            return "451 4.3.0 try again later"
        return None

    async with FeedServer() as feeds, SmtpServer(Scripted(rcpt=rcpt)) as smtp:
        url = feeds.serve("/h.xml", HARBOUR)
        config = write_config(tmp_path, feeds=[url], smtp_port=smtp.port)
        code, _, err = await digest(config, "subscribers", "add", "reader@example.org", "--sections", "World")
        assert code == 0, err
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert deferred and all(m.rcpt_tos[0] != "reader@example.org" for m in smtp.messages), out + err
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace('name = "World"', 'name = "International"\nformerly = ["World"]'), encoding="utf-8"
        )
        STEP[0] += 10  # the retry is due five minutes after the first attempt
        code, out, err = await digest(config, "send")
        assert code == 0, err
        got = [parsed(m.data) for m in smtp.messages if m.rcpt_tos[0] == "reader@example.org"]
        code, explained, err = await digest(config, "sections", "explain", "https://harbour-times.example/world/trams")
    assert code == 0 and "2026-01-16 Europe/Moscow: International" in explained, explained + err
    assert "with today's rules" not in explained  # the same section, under its name now
    assert len(got) == 1, out
    body = got[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "International\r\n-------------" in body and "City council debates tram fares" in body, body
    assert "\r\nWorld\r\n" not in body


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'categories = ["World"]',
            'categories = ["World"]\nmax_items = 0',
            ("sections #1.max_items must be between 1 and 1000, not 0.",),
        ),
        (
            'categories = ["World"]',
            'categories = ["World"]\n[[sections.rules]]\nlanguages = ["uk"]',
            (
                "sections #1.rules #1.languages: 'uk' is not a language digest tells items apart by",
                "text in Cyrillic is read as ru",
            ),
        ),
        (
            'name = "World"',
            'name = "World"\nformerly = ["Sport"]',
            ("sections #1.formerly = 'Sport' is the name of a section subscribers can choose now",),
        ),
    ],
    ids=["max_items", "languages", "formerly"],
)
async def test_a_bad_section_setting_is_a_one_line_config_error(
    tmp_path: Path, old: str, new: str, expected: tuple[str, ...]
) -> None:
    config = write_config(tmp_path, feeds=["http://127.0.0.1:9/none.xml"], smtp_port=9)
    config.write_text(config.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    code, _, err = await digest(config, "check-config")
    assert code != 0 and len(err.strip().splitlines()) <= 2, err
    for text in expected:
        assert text in err, err


async def test_status_shows_failing_feeds_the_next_edition_and_the_outbox(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        good = feeds.serve("/h.xml", HARBOUR)
        broken = feeds.serve("/gone.xml", b"not found", status=404)
        config = write_config(tmp_path, feeds=[good, broken], smtp_port=smtp.port)
        assert (await digest(config, "poll"))[0] == 0
        assert (await digest(config, "send"))[0] == 0
        code, out, err = await digest(config, "status")
    assert code == 0, err
    assert "daemon: not running" in out
    assert f"failing: {broken} (1x, last status 404)" in out
    assert "Europe/Moscow: next 2026-01-17 at 2026-01-17 04:00 UTC" in out  # today's edition is made
    assert "Europe/Moscow: last 2026-01-16 (complete): 1 sent, 1 skipped" in out
    listed = (await digest(config, "feeds", "list"))[1]
    assert f"{broken}  [rules]  active  last=404" in listed and "  error: " in listed
    assert "failures=1  lang=-  as " in listed


async def test_dkim_from_the_config_signs_what_the_smtp_server_receives(tmp_path: Path) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/s.xml", SUMMIT)], smtp_port=smtp.port)
        config.write_text(
            config.read_text().replace(
                "[fetch]", f'[dkim]\ndomain = "review.example"\nselector = "d1"\nkey_file = "{key_file}"\n\n[fetch]'
            )
        )
        assert (await digest(config, "poll"))[0] == 0
        code, _, err = await digest(config, "send")
        assert code == 0, err
    assert len(smtp.messages) == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return txt if name == b"d1._domainkey.review.example." else b""

    for received in smtp.messages:
        assert received.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(received.data, dnsfunc=dns), "the signature must verify on what the server received"


async def test_poll_and_send_on_a_terminal_show_progress_and_still_finish(tmp_path: Path) -> None:
    import shlex
    import shutil

    import pytest

    if shutil.which("script") is None:
        pytest.skip("util-linux `script` is needed to give the command a terminal")
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feeds=[feeds.serve("/s.xml", SUMMIT)], smtp_port=smtp.port)
        for minute, args in enumerate((["poll"], ["send"]), start=1):
            cmd = shlex.join([sys.executable, "-m", "digest", "--config", str(config), *args])
            proc = await asyncio.create_subprocess_exec(
                "script",
                "-qec",
                cmd,
                "/dev/null",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "DIGEST_NOW": (NOW + timedelta(minutes=minute)).isoformat(), "COLUMNS": "100"},
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode == 0, out.decode(errors="replace")
        assert len(smtp.messages) == 2
