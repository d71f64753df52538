"""What a subscriber chose stays chosen, and links reach only their owner (issue 9), end to end:
the `digest` command as a process, the web app it serves on 127.0.0.1, feeds over HTTP on
127.0.0.1, a real SMTP server (aiosmtpd) and a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiohttp
from digestprocess import launch, run_digest
from httpservers import FeedServer
from ports import free_port
from smtpservers import SmtpServer

DAY1 = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)  # an hour after send_at (05:00 UTC)
DAY2 = DAY1 + timedelta(days=1)
INVALID = "This link does not work"


def rss(day: datetime, tag: str) -> bytes:
    """One World story and one Sport story of `day`, in our own words."""
    items = [(f"World story {tag}", f"/world/{tag}", "World"), (f"Sport story {tag}", f"/sport/{tag}", "Sport")]
    body = "".join(
        f"<item><title>{title}</title><link>https://wire.example{path}</link><guid>{path}</guid>"
        f"<category>{cat}</category><pubDate>{format_datetime(day - timedelta(hours=3))}</pubDate>"
        f"<description>About {title}.</description></item>"
        for title, path, cat in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>https://wire.example/</link>{body}</channel></rss>"
    ).encode()


def write_config(
    tmp: Path, *, feed: str, smtp_port: int, web_port: int, subscribers: str, database: str = "", extra: str = ""
) -> Path:
    """The Wire Review's config: `database` (default: digest.sqlite in `tmp`), `extra` tables before the sections."""
    database = database or f"sqlite:///{tmp / 'digest.sqlite'}"
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[digest]
title = "Wire Review"
timezone = "UTC"
send_at = "05:00"
database = "{database}"
base_url = "http://127.0.0.1:{web_port}"
allow_private_addresses = true

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Wire Review <review@wire.example>"
timeout = 10

[web]
host = "127.0.0.1"
port = {web_port}
{extra}
[[sections]]
name = "World"
categories = ["World"]
[[sections]]
name = "Sport"
categories = ["Sport"]

[[feeds]]
url = "{feed}"
{subscribers}
""",
        encoding="utf-8",
    )
    return config


def subscriber_entry(email: str, **fields: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in fields.items())
    return f'\n[[subscribers]]\nemail = "{email}"\n{extra}'


def set_subscribers(config: Path, subscribers: str) -> None:
    text = config.read_text(encoding="utf-8")
    head = text.split("\n[[subscribers]]", 1)[0].rstrip("\n") + "\n"
    config.write_text(head + subscribers, encoding="utf-8")


async def digest(config: Path, now: datetime, *args: str) -> tuple[int, str, str]:
    return await run_digest(config, *args, env={"DIGEST_NOW": now.isoformat(), "DIGEST_DAEMON_TICK": "0.3"})


async def ok(config: Path, now: datetime, *args: str) -> str:
    code, out, err = await digest(config, now, *args)
    assert code == 0, f"digest {' '.join(args)} exited {code}: {err}"
    return out


@contextlib.asynccontextmanager
async def web_app(config: Path, now: datetime) -> AsyncIterator[None]:
    """`digest web` as a process, until the block ends."""
    proc = await launch(config, "web", env={"DIGEST_NOW": now.isoformat()})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"serving on" in line, line
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def daemon(config: Path, now: datetime) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {"DIGEST_NOW": now.isoformat(), "DIGEST_DAEMON_TICK": "0.3"}
    proc = await launch(config, "run", env=env, stdout=asyncio.subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)


async def until(predicate: object, what: str, timeout: float = 60.0) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def received(smtp: SmtpServer, rcpt: str) -> list[EmailMessage]:
    return [parsed(m.data) for m in smtp.messages if list(m.rcpt_tos) == [rcpt]]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def links(msg: EmailMessage) -> tuple[str, str]:
    """(unsubscribe URL from List-Unsubscribe, preferences URL from the text part)."""
    unsubscribe = re.search(r"<(http[^>]+/u/[^>]+)>", str(msg["List-Unsubscribe"]))
    preferences = re.search(r"(http\S+/p/\S+)", text_of(msg))
    assert unsubscribe and preferences
    return unsubscribe.group(1), preferences.group(1)


def form_mac(body: str) -> str:
    m = re.search(r'name="form" value="([^"]+)"', body)
    assert m, body
    return m.group(1)


async def test_sections_chosen_on_the_web_survive_status_config_edits_a_restart_and_the_next_edition(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    async with FeedServer() as feeds, SmtpServer() as smtp:
        feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
        config = write_config(
            tmp_path,
            feed=feed,
            smtp_port=smtp.port,
            web_port=web_port,
            subscribers=subscriber_entry("alice@example.org", name='"Alice"'),
        )
        await ok(config, DAY1, "poll")
        await ok(config, DAY1 + timedelta(minutes=1), "send")  # after the poll, as an operator would
        (first,) = received(smtp, "alice@example.org")
        assert "World story one" in text_of(first) and "Sport story one" in text_of(first)
        _, preferences = links(first)

        async with web_app(config, DAY1), aiohttp.ClientSession() as http:
            async with http.get(preferences) as resp:
                assert resp.status == 200
                page = await resp.text()
            async with http.post(
                preferences, data={"form": form_mac(page), "section": ["Sport"], "timezone": "UTC"}
            ) as resp:
                assert resp.status == 200
                assert "Saved. The next edition follows your choices." in await resp.text()

        await ok(config, DAY1 + timedelta(minutes=5), "status")  # reads the config: used to put it back
        shown = await ok(config, DAY1 + timedelta(minutes=6), "subscribers", "show", "alice@example.org")
        assert "sections  Sport  [set by subscriber]" in shown, shown
        assert "name      Alice  [set by config]" in shown, shown

        # The operator edits the entry: the name follows the config, the sections stay the subscriber's.
        set_subscribers(config, subscriber_entry("alice@example.org", name='"Alice Editor"', sections='["World"]'))
        shown = await ok(config, DAY1 + timedelta(minutes=7), "subscribers", "show", "alice@example.org")
        assert "name      Alice Editor  [set by config]" in shown, shown
        assert "sections  Sport  [set by subscriber]" in shown, shown

        # A daemon restart on the next day polls and sends the next edition.
        feeds.serve("/wire.xml", rss(DAY2, "two"))
        async with daemon(config, DAY2) as run:
            await until(lambda: len(received(smtp, "alice@example.org")) == 2, "the next edition")
            run.terminate()
            assert await asyncio.wait_for(run.wait(), 60) == 0

    second = received(smtp, "alice@example.org")[1]
    assert "Sport story two" in text_of(second)
    assert "World story two" not in text_of(second)
    assert second["To"] == "Alice Editor <alice@example.org>"


async def test_a_config_subscriber_who_unsubscribed_and_was_removed_gets_no_further_edition(tmp_path: Path) -> None:
    web_port = free_port()
    both = subscriber_entry("alice@example.org") + subscriber_entry("bob@example.org")
    async with FeedServer() as feeds, SmtpServer() as smtp:
        feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
        config = write_config(tmp_path, feed=feed, smtp_port=smtp.port, web_port=web_port, subscribers=both)
        await ok(config, DAY1, "poll")
        await ok(config, DAY1 + timedelta(minutes=1), "send")  # after the poll, as an operator would
        unsubscribe, _ = links(received(smtp, "alice@example.org")[0])

        async with (
            web_app(config, DAY1),
            aiohttp.ClientSession() as http,  # RFC 8058 one-click
            http.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp,
        ):
            assert resp.status == 200

        later = DAY1 + timedelta(minutes=10)
        # Removing what the config declares is refused, never "removed" and back on the next command.
        code, out, err = await digest(config, later, "subscribers", "remove", "alice@example.org")
        assert code == 1 and "listed in digest.toml; remove it there" in err and "removed" not in out
        code, out, err = await digest(config, later, "feeds", "remove", feed)
        assert code == 1 and "listed in digest.toml; remove it there" in err and "removed" not in out
        assert feed in await ok(config, later, "feeds", "list")

        set_subscribers(config, subscriber_entry("bob@example.org"))  # the operator deletes the entry
        assert "removed alice@example.org" in await ok(config, later, "subscribers", "remove", "alice@example.org")
        # ... then lists the address again by mistake, and tries the CLI too.
        set_subscribers(config, both)
        code, _, err = await digest(config, later, "subscribers", "add", "alice@example.org")
        assert code == 1 and "alice@example.org unsubscribed" in err and "hint:" in err
        shown = await ok(config, later, "subscribers", "show", "alice@example.org")
        assert "status    unsubscribed  [set by subscriber]" in shown, shown

        feeds.serve("/wire.xml", rss(DAY2, "two"))
        await ok(config, DAY2, "poll")
        await ok(config, DAY2 + timedelta(minutes=1), "send")

    assert len(received(smtp, "alice@example.org")) == 1  # only the first edition
    assert len(received(smtp, "bob@example.org")) == 2


async def test_a_removed_subscribers_links_reach_nobody_and_the_next_subscriber_is_untouched(tmp_path: Path) -> None:
    web_port = free_port()
    async with FeedServer() as feeds, SmtpServer() as smtp:
        feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
        config = write_config(tmp_path, feed=feed, smtp_port=smtp.port, web_port=web_port, subscribers="")
        await ok(config, DAY1, "subscribers", "add", "a@example.org")
        await ok(config, DAY1, "poll")
        await ok(config, DAY1 + timedelta(minutes=1), "send")  # after the poll, as an operator would
        a_unsubscribe, a_preferences = links(received(smtp, "a@example.org")[0])

        later = DAY1 + timedelta(minutes=10)
        assert "only a hash of the address is kept" in await ok(config, later, "subscribers", "remove", "a@example.org")
        await ok(config, later, "subscribers", "add", "b@example.org")  # on SQLite, once given A's row id
        code, _, err = await digest(config, later, "subscribers", "add", "a@example.org")  # erased (U11)
        assert code == 1 and "a@example.org was erased" in err and "signing up again" in err, err

        async with web_app(config, later), aiohttp.ClientSession() as http:
            async with http.post(a_unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
                assert resp.status == 404 and INVALID in await resp.text()
            async with http.get(a_unsubscribe) as resp:
                assert resp.status == 404 and INVALID in await resp.text()
            async with http.get(a_preferences) as resp:
                assert resp.status == 404 and INVALID in await resp.text()
            async with http.post(a_preferences, data={"form": "x", "section": ["World"]}) as resp:
                assert resp.status == 404 and INVALID in await resp.text()

        shown = await ok(config, later, "subscribers", "show", "b@example.org")
        assert "status    active  [set by cli]" in shown and "all sections" in shown, shown
        feeds.serve("/wire.xml", rss(DAY2, "two"))
        await ok(config, DAY2, "poll")
        await ok(config, DAY2 + timedelta(minutes=1), "send")

    (b_mail,) = received(smtp, "b@example.org")
    assert "World story two" in text_of(b_mail) and "Sport story two" in text_of(b_mail)
    assert len(received(smtp, "a@example.org")) == 1


async def test_preview_writes_the_subscribers_working_links(tmp_path: Path) -> None:
    web_port = free_port()
    async with FeedServer() as feeds:
        feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
        config = write_config(
            tmp_path, feed=feed, smtp_port=9, web_port=web_port, subscribers=subscriber_entry("alice@example.org")
        )
        await ok(config, DAY1, "poll")
        await ok(
            config,
            DAY1 + timedelta(minutes=1),
            "preview",
            "--subscriber",
            "alice@example.org",
            "--out",
            str(tmp_path / "p.html"),
        )
        html = (tmp_path / "p.html").read_text(encoding="utf-8")
        text = (tmp_path / "p.txt").read_text(encoding="utf-8")
        assert "__DIGEST_" not in html + text
        preferences = re.search(r"(http://127\.0\.0\.1:\d+/p/\S+)", text)
        unsubscribe = re.search(r"(http://127\.0\.0\.1:\d+/u/[^\s\"<]+)", html)
        assert preferences and unsubscribe
        async with web_app(config, DAY1), aiohttp.ClientSession() as http:
            async with http.get(preferences.group(1)) as resp:
                assert resp.status == 200 and "alice@example.org" in await resp.text()
            async with http.get(unsubscribe.group(1)) as resp:
                assert resp.status == 200


async def test_a_pause_chosen_on_the_web_survives_status_and_config_edits_until_the_subscriber_resumes(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    day3 = DAY2 + timedelta(days=1)
    async with FeedServer() as feeds, SmtpServer() as smtp:
        feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
        both = subscriber_entry("alice@example.org") + subscriber_entry("bob@example.org")
        config = write_config(tmp_path, feed=feed, smtp_port=smtp.port, web_port=web_port, subscribers=both)
        await ok(config, DAY1, "poll")
        await ok(config, DAY1 + timedelta(minutes=1), "send")
        (first,) = received(smtp, "alice@example.org")
        _, preferences = links(first)

        async with web_app(config, DAY1), aiohttp.ClientSession() as http:
            async with http.get(preferences) as resp:
                page = await resp.text()
            async with http.post(preferences, data={"form": form_mac(page), "action": "pause"}) as resp:
                assert resp.status == 200
                answer = await resp.text()
        assert "Paused. No edition is sent until you resume." in answer
        assert 'name="action" value="resume"' in answer

        # Neither a command that reads the config, nor the operator's edit, nor the CLI undoes it.
        await ok(config, DAY1 + timedelta(minutes=5), "status")
        set_subscribers(
            config, subscriber_entry("alice@example.org", name='"Alice"') + subscriber_entry("bob@example.org")
        )
        shown = await ok(config, DAY1 + timedelta(minutes=6), "subscribers", "show", "alice@example.org")
        assert "status    paused  [set by subscriber]" in shown, shown
        assert "name      Alice  [set by config]" in shown, shown
        code, _, err = await digest(config, DAY1 + timedelta(minutes=7), "subscribers", "add", "alice@example.org")
        assert code == 1 and "paused the emails themselves" in err, err

        feeds.serve("/wire.xml", rss(DAY2, "two"))
        await ok(config, DAY2, "poll")
        await ok(config, DAY2 + timedelta(minutes=1), "send")
        assert len(received(smtp, "bob@example.org")) == 2  # the edition went out...
        assert len(received(smtp, "alice@example.org")) == 1  # ...but not to her

        async with web_app(config, DAY2 + timedelta(minutes=2)), aiohttp.ClientSession() as http:
            async with http.get(preferences) as resp:
                page = await resp.text()
            assert "Your emails are paused" in page
            async with http.post(preferences, data={"form": form_mac(page), "action": "resume"}) as resp:
                assert resp.status == 200
                assert "Resumed. The next edition follows your choices." in await resp.text()

        feeds.serve("/wire.xml", rss(day3, "three"))
        await ok(config, day3, "poll")
        await ok(config, day3 + timedelta(minutes=1), "send")
    resumed = received(smtp, "alice@example.org")
    assert len(resumed) == 2 and "World story three" in text_of(resumed[1])
