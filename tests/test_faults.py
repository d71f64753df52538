"""No single bad input, idle client or busy database stops an edition or shows a traceback (issue 10).

Every test drives the real `python -m digest` (or the real web app on 127.0.0.1) against real SQLite
files, a feed server and aiosmtpd on loopback. Ids (H18, S12, ...) are those of docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dbfaults import write_lock
from digestprocess import launch
from httpservers import FeedServer
from ports import free_port
from smtpservers import SmtpServer

from digest import tokens
from digest.store.base import BUSY_TIMEOUT
from digest.web import WEB_BUSY_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
SECRET = "issue-10-test-secret-0123456789abcdef"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def cli(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120, now: datetime = NOW
) -> subprocess.CompletedProcess[str]:
    """`python -m digest`; each process starts its clock at `now` (a poll goes before the send)."""
    head = ["--config", str(config)] if config is not None else []
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_NOW": now.isoformat(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digest", *head, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(config.parent) if config else None,
    )


def poll(config: Path) -> subprocess.CompletedProcess[str]:
    return cli(config, "poll", now=NOW - timedelta(minutes=5))


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command, after checking it is one line plus a hint and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("  hint: ")]
    assert len(errors) == 1 and len(hints) == 1, result.stderr
    return errors[0]


def pub_date(when: datetime = NOW - timedelta(hours=1)) -> str:
    """`when` as RSS writes a date (an hour before NOW by default: news of the edition's day)."""
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def channel(title: str, link: str, items: str) -> bytes:
    """An RSS 2.0 document of one channel around `items` (its <item> elements)."""
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>{link}</link><description>d</description>{items}</channel></rss>"
    ).encode()


def rss(n: int = 3, *, when: datetime = NOW - timedelta(hours=1)) -> bytes:
    stamp = pub_date(when)
    items = "".join(
        f"<item><title>Story number {i}</title><link>https://news.example.org/{i}</link>"
        f"<guid>https://news.example.org/{i}</guid><pubDate>{stamp}</pubDate>"
        f"<description>Body {i}</description></item>"
        for i in range(n)
    )
    return channel("Test news", "https://news.example.org/", items)


def write_config(
    folder: Path,
    *,
    feed_url: str | None = None,
    smtp_port: int = 25,
    subscribers: tuple[str, ...] = ("reader0@example.org",),
    extra: str = "",
    database: str | None = None,
    tail: str = "",
) -> Path:
    lines = [
        "[digest]",
        'timezone = "UTC"',
        f'database = "{database or "sqlite:///" + str(folder / "digest.sqlite")}"',
        "allow_private_addresses = true",
        extra,
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'sender = "Review <digest@example.org>"',
        "timeout = 10",
        "workers = 1",
    ]
    if feed_url:
        lines += ["[[feeds]]", f'url = "{feed_url}"']
    for address in subscribers:
        lines += ["[[subscribers]]", f'email = "{address}"']
    lines.append(tail)  # tables of their own ([outlets]), after the arrays of tables
    path = folder / "digest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def one_feeds_edition(folder: Path, body: bytes, *, extra: str = "", tail: str = "") -> tuple[str, str]:
    """Serve `body` as the one feed over HTTP, run the real `digest poll` and `digest send` to a
    real SMTP server, and return the one message's plain text (whitespace collapsed) and HTML.
    `extra` and `tail` go into the config as `write_config` puts them."""
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/feed.xml", body)
        config = write_config(folder, feed_url=url, smtp_port=smtp.port, extra=extra, tail=tail)
        polled = await asyncio.to_thread(poll, config)
        assert polled.returncode == 0, polled.stderr
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 0, sent.stderr
        [received] = smtp.messages
    return parts(received.data)


def parts(data: bytes) -> tuple[str, str]:
    """A message's plain text (whitespace collapsed) and HTML."""
    import email
    import email.policy

    message = email.message_from_bytes(data, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return " ".join(text.split()), html


# --------------------------------------------------------------------------- H18: one bad address


@pytest.mark.parametrize(
    "bad", ["evil@example.org\r\nBcc: victim@example.org", "tab\t@example.org", "nul\x00@example.org"]
)
async def test_H18_one_bad_address_in_the_database_fails_its_own_row_and_never_the_run(
    tmp_path: Path, bad: str
) -> None:
    async with FeedServer() as feed, SmtpServer() as smtp:
        url = feed.serve("/news.xml", rss())
        config = write_config(
            tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=("first@example.org", "last@example.org")
        )
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        # An address that got in before config validation (an older digest, a direct insert):
        # it sorts between the two good ones, so the run must carry on past it.
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute("UPDATE subscribers SET id = 3 WHERE email = 'last@example.org'")
            db.execute(
                "INSERT INTO subscribers (id, public_id, email, email_key, status, from_config, permanent_failures, "
                "name_origin, sections_origin, timezone_origin, status_origin, created_at, updated_at) "
                "VALUES (2, 'bad0bad0bad0bad0bad0bad0bad0bad0', ?, ?, 'active', 0, 0, 'cli', 'cli', 'cli', "
                "'cli', ?, ?)",
                (bad, bad.lower(), NOW.isoformat(), NOW.isoformat()),
            )
        first = await asyncio.to_thread(cli, config, "send")
        again = await asyncio.to_thread(cli, config, "send")
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)

    assert first.returncode == 3, first.stderr  # a message failed for good (digest send's exit status)
    assert "Traceback" not in first.stderr
    assert received == ["first@example.org", "last@example.org"]  # nobody after the bad row is lost
    assert "2 sent, 0 skipped, 1 failed" in first.stdout, first.stdout
    assert "cannot be put in the To header" in first.stderr  # reported
    assert again.returncode == 0 and "0 sent" in again.stdout and "1 failed" not in again.stdout  # not retried
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        status, error = db.execute("SELECT status, last_error FROM deliveries WHERE subscriber_id = 2").fetchone()
    assert status == "failed" and "To header" in error  # recorded


# --------------------------------------------------------------------------- M15: internationalised domains


@pytest.mark.parametrize("smtputf8", [False, True])
async def test_M15_an_internationalised_domain_goes_out_as_its_a_label_whatever_the_relay_offers(
    tmp_path: Path, smtputf8: bool
) -> None:
    # The operator's addresses may have an internationalised domain too.
    env = {
        "DIGEST_SMTP_SENDER": "Revue <revue@presse-bücher.example>",
        "DIGEST_SMTP_UNSUBSCRIBE_MAILTO": "stop@bücher.de",
    }
    async with FeedServer() as feed, SmtpServer(smtputf8=smtputf8) as smtp:
        url = feed.serve("/news.xml", rss())
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=())
        for address in ("user@xn--bcher-kva.de", "jörg@bücher.de"):
            added = await asyncio.to_thread(cli, config, "subscribers", "add", address)
            assert added.returncode == 0, added.stderr
        listed = await asyncio.to_thread(cli, config, "subscribers", "list")
        assert "user@bücher.de" in listed.stdout  # kept as people read it
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send", env=env)
        received = {m.rcpt_tos: m for m in smtp.messages}

    assert sent.returncode == (0 if smtputf8 else 3), sent.stderr  # 3: the one address failed for good
    # RCPT TO and To carry the A-label, so no SMTPUTF8 is needed: the same bytes on either relay.
    user = received.pop(("user@xn--bcher-kva.de",))
    assert user.mail_from == "revue@xn--presse-bcher-klb.example" and user.data.isascii()
    message = email.message_from_bytes(user.data, policy=email.policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == ["user@xn--bcher-kva.de"]
    assert message["From"].addresses[0].addr_spec == "revue@xn--presse-bcher-klb.example"
    assert message["List-Id"] == "<digest.xn--presse-bcher-klb.example>"
    assert "<mailto:stop@xn--bcher-kva.de?subject=unsubscribe>" in message["List-Unsubscribe"]
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        query = "SELECT s.email, d.last_error FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
        rows = dict(db.execute(query))
    assert rows["user@bücher.de"] is None
    if smtputf8:  # a non-ASCII local part is what SMTPUTF8 is for (RFC 6531)
        assert list(received) == [("jörg@xn--bcher-kva.de",)]
        assert "1 failed" not in sent.stdout, sent.stdout
    else:  # ...and without it that one address alone fails, saying why
        assert received == {}
        assert "1 sent, 0 skipped, 1 failed" in sent.stdout, sent.stdout
        assert "local part is not ASCII, which needs SMTPUTF8" in rows["jörg@bücher.de"]


async def _three_readers(tmp_path: Path, smtp_port: int, feed_url: str) -> Path:
    """A site with three subscribers added by the CLI (ids 1-3: first, mid, last) and one poll done."""
    config = write_config(tmp_path, feed_url=feed_url, smtp_port=smtp_port, subscribers=())
    for who in ("first", "mid", "last"):
        added = await asyncio.to_thread(cli, config, "subscribers", "add", f"{who}@example.org")
        assert added.returncode == 0, added.stderr
    assert (await asyncio.to_thread(poll, config)).returncode == 0
    return config


@pytest.mark.parametrize("stored", ["{not json", "5", '"World"', '["World", 3]', "[null]"])
async def test_R7_one_subscribers_unreadable_sections_fail_their_row_and_never_the_run(
    tmp_path: Path, stored: str
) -> None:
    async with FeedServer() as feed, SmtpServer() as smtp:
        config = await _three_readers(tmp_path, smtp.port, feed.serve("/news.xml", rss()))
        # The middle subscriber chose on their preferences page, and the row was then damaged (a
        # hand edit, a broken disk, a bug of an older digest); so were an item's categories and
        # another's publication time.
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute(
                "UPDATE subscribers SET sections = ?, sections_origin = 'subscriber' WHERE email = 'mid@example.org'",
                (stored,),
            )
            db.execute("UPDATE items SET categories = '[\"World\"' WHERE id = 1")
            db.execute("UPDATE items SET published = 'Tuesday-ish' WHERE id = 2")
        first = await asyncio.to_thread(cli, config, "send")
        again = await asyncio.to_thread(cli, config, "send")
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)
        status = await asyncio.to_thread(cli, config, "status")
        listed = await asyncio.to_thread(cli, config, "subscribers", "list")
        shown = await asyncio.to_thread(cli, config, "subscribers", "show", "mid@example.org")
        # An export cannot say what they chose, and must not say "all sections"; re-importing it
        # as it is is refused, changing nothing.
        exported = await asyncio.to_thread(cli, config, "subscribers", "export", "--out", str(tmp_path / "all.csv"))
        reimported = await asyncio.to_thread(cli, config, "subscribers", "import", str(tmp_path / "all.csv"))
        # The operator mends it: an import gives the sections again (the subscriber's own choice
        # could not be read, so theirs no longer holds the field).
        (tmp_path / "mend.csv").write_text("email,name,sections,timezone\nmid@example.org,,World,\n", encoding="utf-8")
        mended = await asyncio.to_thread(cli, config, "subscribers", "import", str(tmp_path / "mend.csv"))
        after = await asyncio.to_thread(cli, config, "subscribers", "show", "mid@example.org")
        status_after = await asyncio.to_thread(cli, config, "status")

    assert first.returncode == 3 and "Traceback" not in first.stderr, first.stderr  # a row failed for good
    assert received == ["first@example.org", "last@example.org"]  # nobody after the bad row is lost
    assert "2 sent, 0 skipped, 1 failed" in first.stdout, first.stdout
    assert "sections stored for them are not" in first.stderr  # reported
    # The damaged items are in the edition: every story, in every message.
    assert all(f"Story number {i}".encode() in m.data for m in smtp.messages for i in range(3))
    assert again.returncode == 0 and "0 sent" in again.stdout and "1 failed" not in again.stdout  # not retried
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        row = db.execute("SELECT status, last_error FROM deliveries WHERE subscriber_id = 2").fetchone()
    assert row[0] == "failed" and "choose them again" in row[1]
    for command in (status, listed, shown):
        assert command.returncode == 0 and "Traceback" not in command.stderr, command.stderr
    assert "subscribers whose sections cannot be read: 1 (mid@example.org: the sections stored" in status.stdout
    assert "mid@example.org  active  [unreadable]" in listed.stdout
    assert "sections  the sections stored for them are not" in shown.stdout
    assert exported.returncode == 0 and "mid@example.org,,(unreadable),," in (tmp_path / "all.csv").read_text()
    assert "warning: the sections of 1 subscriber(s) cannot be read (mid@example.org)" in exported.stderr
    assert reimported.returncode == 1 and "all.csv line 3: the sections of mid@example.org could not be read" in (
        reimported.stderr
    )
    assert mended.returncode == 0, mended.stderr
    assert "sections  World  [set by cli]" in after.stdout
    assert "cannot be read" not in status_after.stdout


async def test_R7_a_feeds_unreadable_poll_times_are_polled_as_never_polled_and_written_again(tmp_path: Path) -> None:
    """A feed's last and next poll times that are not times (a hand edit of the SQLite file) stopped
    every read of the feeds: no feed was polled, `digest status` failed. The feed is now due, as
    one never polled, and its poll writes both times again."""
    from digest.store import Store

    async with FeedServer() as feed, SmtpServer() as smtp:
        url = feed.serve("/news.xml", rss())
        config = await _three_readers(tmp_path, smtp.port, url)
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute("UPDATE feeds SET last_polled_at = 'yesterday-ish', next_poll_at = 'soon'")
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        try:
            # What the daemon and the workers ask: the feed is due now, whatever its text compares as.
            due = store.due_feeds(now=NOW)
            claimed = store.claim_feeds("w1", due_by=NOW, lease=timedelta(minutes=5), limit=10)
            lag = store.poll_lag(now=NOW)
            store.release_feeds("w1", [f.id for f in claimed])
        finally:
            store.close()
        status = await asyncio.to_thread(cli, config, "status")
        polled = await asyncio.to_thread(cli, config, "poll")
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            times = db.execute("SELECT last_polled_at, next_poll_at FROM feeds").fetchone()

    assert [f.url for f in due] == [url] and due[0].next_poll_at is None and due[0].last_polled_at is None
    assert [f.url for f in claimed] == [url]
    assert lag == (1, timedelta(0))
    for command in (status, polled):
        assert command.returncode == 0 and "Traceback" not in command.stderr, command.stderr
    assert "stored as 'soon' is not a time" in polled.stderr
    assert all(datetime.fromisoformat(v) for v in times)  # written again as times


async def test_R7_a_time_zone_this_machine_does_not_know_gets_the_site_zones_edition(tmp_path: Path) -> None:
    async with FeedServer() as feed, SmtpServer() as smtp:
        config = await _three_readers(tmp_path, smtp.port, feed.serve("/news.xml", rss()))
        # A zone an older tz database lacks (the database came from a newer machine), or a hand edit.
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute("UPDATE subscribers SET timezone = 'Mars/Olympus_Mons' WHERE email = 'mid@example.org'")
        sent = await asyncio.to_thread(cli, config, "send")
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)
        status = await asyncio.to_thread(cli, config, "status")
        shown = await asyncio.to_thread(cli, config, "subscribers", "show", "mid@example.org")

    assert sent.returncode == 0 and "Traceback" not in sent.stderr, sent.stderr
    assert received == ["first@example.org", "last@example.org", "mid@example.org"]
    assert sent.stdout.count("edition 2026-03-10") == 1  # one edition: the site's zone
    assert status.returncode == 0, status.stderr
    assert "time zones this machine's tz database does not have: 'Mars/Olympus_Mons' (1 subscriber)" in status.stdout
    assert "  UTC: next " in status.stdout and "Mars" not in status.stdout.split("outbox:")[0]
    assert "Mars/Olympus_Mons (not in this machine's tz database: they get the UTC edition)" in shown.stdout


async def _polled_in_process(tmp_path: Path, smtp_port: int, feed_url: str) -> tuple[Any, Any]:
    """Settings and an open Store of a site with three subscribers (ids 1-3: first, mid, last) and
    one poll done, in this process, so that a test can make a bug happen inside the pipeline."""
    from digest import config as cfg
    from digest.pipeline import poll_once
    from digest.store import Store

    settings = cfg.from_mapping(
        {
            "digest": {
                "timezone": "UTC",
                "database": f"sqlite:///{tmp_path / 'digest.sqlite'}",
                "allow_private_addresses": True,
            },
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "Review <digest@example.org>"},
            "feeds": [{"url": feed_url}],
            "subscribers": [{"email": f"{who}@example.org"} for who in ("first", "mid", "last")],
        },
        env={},
    )
    store = Store(settings.database_url)
    store.sync_feeds(settings.feeds, now=NOW)
    store.sync_subscribers(settings.subscribers, now=NOW)
    await poll_once(settings=settings, store=store, clock=lambda: NOW - timedelta(minutes=5))
    return settings, store


# What a Rust extension's panic arrives as (pyo3 makes the class at run time, with no module to
# import it from): a BaseException, which `except Exception` lets through.
RustPanic = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})


def test_S8_a_rust_panic_is_a_bug_but_an_interrupt_or_a_cancellation_is_not() -> None:
    from digest.errors import is_bug

    assert is_bug(RuntimeError("x")) and is_bug(RustPanic("x"))
    assert not any(is_bug(e) for e in (KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError(), GeneratorExit()))
    # Another BaseException named as pyo3's but from elsewhere is not taken for it.
    assert not is_bug(type("PanicException", (BaseException,), {})())


def test_an_error_that_quotes_words_ending_a_sentence_ends_with_one_stop() -> None:
    from digest.errors import ConfigError, DeliveryError

    said = "TLS is required (or STARTTLS)."
    assert DeliveryError(f"The server refused: {said}.").message == "The server refused: TLS is required (or STARTTLS)."
    assert ConfigError("Is it a feed?.").message == "Is it a feed?"
    assert ConfigError("It was cut….").message == "It was cut…"
    assert ConfigError("Wait...").message == "Wait..."  # an ellipsis is left whole
    assert ConfigError("1.5.").message == "1.5." and ConfigError("").message == ""


@pytest.mark.parametrize("bug", [RuntimeError, RustPanic], ids=["exception", "rust-panic"])
async def test_S8_an_error_making_one_message_is_tried_again_then_parked_and_the_rest_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, bug: type[BaseException]
) -> None:
    """A bug met on one subscriber's data (here made to happen: no input of ours raises one any
    more), or a panic of nh3 or css-inline, fails that row alone: tried again later, parked as
    failed at its third crash (Mailman's three), with the traceback in the log; everyone else's
    message goes at the first run."""
    from digest.deliver import SmtpTransport
    from digest.pipeline import send_day
    from digest.pipeline.mailer import EditionMailer
    from digest.store import MAX_CRASHES

    real = EditionMailer.personalise

    def personalise(self: EditionMailer, template: Any, subscriber: Any, **kwargs: Any) -> bytes:
        if subscriber.email == "mid@example.org":
            raise bug("a bug met on this subscriber's data")
        return real(self, template, subscriber, **kwargs)

    monkeypatch.setattr(EditionMailer, "personalise", personalise)
    async with FeedServer() as feed, SmtpServer() as smtp:
        settings, store = await _polled_in_process(tmp_path, smtp.port, feed.serve("/news.xml", rss()))
        try:
            runs = []
            for minutes in (0, 6, 17, 40):  # each run after the row's retry time (5, then 10 minutes)
                at = NOW + timedelta(minutes=minutes)

                def clock(at: datetime = at) -> datetime:
                    return at

                (report,) = await send_day(
                    settings, store, day=NOW.date(), transport=SmtpTransport, clock=clock, workers=1
                )
                with store.engine.connect() as conn:
                    row = conn.exec_driver_sql(
                        "SELECT status, crashes, attempts, last_error FROM deliveries WHERE subscriber_id = 2"
                    ).one()
                runs.append((report.sent, report.deferred, report.failed, *row[:3]))
            error = row[3]
        finally:
            store.close()
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)

    assert received == ["first@example.org", "last@example.org"]
    assert runs == [
        (2, 1, 0, "pending", 1, 0),  # the others went at once; it waits for its retry time
        (0, 1, 0, "pending", 2, 0),
        (0, 0, 1, "failed", MAX_CRASHES, 0),  # parked: never sent, never an SMTP attempt
        (0, 0, 0, "failed", MAX_CRASHES, 0),  # and left alone
    ]
    assert error.startswith(f"parked after 3 crashes; making the message failed: {bug.__name__}: a bug met")
    crashes = [r for r in caplog.records if "making the message failed" in r.getMessage()]
    assert len(crashes) == MAX_CRASHES and all(r.exc_info for r in crashes)  # the traceback, for a report


async def test_S8_an_item_whose_excerpt_fails_shows_its_plain_summary_and_fails_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The excerpt is made while rendering, for every subscriber whose sections hold the item: a
    bug (or nh3's panic) on one item's HTML would fail all their messages. It costs that item its
    markup instead, logged once with the traceback; every subscriber gets the edition, at once."""
    from digest import render
    from digest.deliver import SmtpTransport
    from digest.pipeline import send_day
    from digest.sanitize import excerpt_html as real

    def excerpt_html(html: str, limit: int) -> str:
        if "Body 1" in html:
            raise RustPanic("called `Option::unwrap()` on a `None` value")
        return real(html, limit)

    monkeypatch.setattr(render, "excerpt_html", excerpt_html)
    render._excerpts.cache_clear()  # answers remembered by earlier tests would hide the failure
    async with FeedServer() as feed, SmtpServer() as smtp:
        settings, store = await _polled_in_process(tmp_path, smtp.port, feed.serve("/news.xml", rss()))
        try:
            (report,) = await send_day(
                settings, store, day=NOW.date(), transport=SmtpTransport, clock=lambda: NOW, workers=1
            )
        finally:
            store.close()
            render._excerpts.cache_clear()
        messages = list(smtp.messages)

    assert (report.sent, report.deferred, report.failed) == (3, 0, 0)
    assert sorted(m.rcpt_tos[0] for m in messages) == ["first@example.org", "last@example.org", "mid@example.org"]
    for m in messages:
        text, html = parts(m.data)
        assert "Story number 1" in html and "Body 1" in html and "Body 1" in text  # shown, as plain text
        assert "Body 0" in html and "Body 2" in html
    failed = [r for r in caplog.records if "excerpt failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info and "PanicException" in failed[0].getMessage()


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('[[subscribers]]\nemail = "evil@example.org\\r\\nBcc: victim@example.org"', "subscribers #1.email"),
        ('[[subscribers]]\nemail = "tab\\t@example.org"', "subscribers #1.email"),
        ('[[subscribers]]\nemail = "nul\\u0000@example.org"', "subscribers #1.email"),
        ('[[subscribers]]\nemail = "bad@"', "subscribers #1.email"),
        ('[[subscribers]]\nemail = "a b@x.org"', "subscribers #1.email"),
        ('[smtp]\nsender = "Review <digest@example.org>\\r\\nBcc: victim@example.org"', "smtp.sender"),
        ('[smtp]\nunsubscribe_mailto = "bad@"', "smtp.unsubscribe_mailto"),
        ('[digest]\nbase_url = "https://review.example.org/\\"onmouseover=x"', "digest.base_url"),
        ('[digest]\nbase_url = "https://review.example.org/a b"', "digest.base_url"),
        ("[digest]\nbase_url = \"https://review.example.org/'x'\"", "digest.base_url"),
        ('[digest]\nmax_item_age = "99999999999999d"', "digest.max_item_age"),
        ('[digest]\ncatch_up = "99999999999999w"', "digest.catch_up"),
        ('[digest]\ndatabase = "oracle+xyz://scott@db.example.org/news"', "digest.database"),
        ('[digest]\ndatabase = "nonsense"', "digest.database"),
    ],
)
def test_L1_check_config_refuses_what_would_fail_later_in_one_line(tmp_path: Path, entry: str, needle: str) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(entry + "\n", encoding="utf-8")
    assert needle in one_error(cli(config, "check-config"))


def test_L1_the_addresses_check_config_accepts_still_pass(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(
        '[smtp]\nsender = "Revue de presse <revue@example.org>"\n[[subscribers]]\nemail = "Jörg@Example.de"\n',
        encoding="utf-8",
    )
    result = cli(config, "check-config")
    assert result.returncode == 0 and "config OK" in result.stdout, result.stderr


# --------------------------------------------------------------------------- S13: a busy database


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["outbox"],
        ["feeds", "list"],
        ["subscribers", "list"],
        ["poll"],
        ["send"],
        ["subscribers", "add", "new@example.org"],
        ["feeds", "add", "http://127.0.0.1:9/x.xml"],
    ],
)
def test_S13_a_database_locked_by_another_process_gives_one_line_and_exit_1_or_an_answer(
    tmp_path: Path, command: list[str]
) -> None:
    database = tmp_path / "digest.sqlite"
    config = write_config(tmp_path, database=f"sqlite:///{database}?timeout=1")
    assert cli(config, "status").returncode == 0  # creates and syncs the database
    with write_lock(database):
        result = cli(config, *command)
    if (
        command[0] in ("status", "feeds", "subscribers")
        and command[-1] == "list"
        or command in (["status"], ["outbox"])
    ):
        # Read-only commands write nothing, so a writer's lock does not stop them (WAL readers never wait).
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    else:
        line = one_error(result)
        assert "is busy" in line and "write lock" in line


def test_S13_read_only_commands_leave_the_database_file_untouched(tmp_path: Path) -> None:
    database = tmp_path / "digest.sqlite"
    config = write_config(tmp_path)
    assert cli(config, "status").returncode == 0
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = {p.name: p.stat().st_size for p in tmp_path.glob("digest.sqlite*")}
    for command in (
        ["status"],
        ["outbox"],
        ["feeds", "list"],
        ["subscribers", "list"],
        ["subscribers", "export"],
        ["feeds", "export"],
    ):
        assert cli(config, *command).returncode == 0
    with sqlite3.connect(database) as db:
        frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert frames == 0, "a read-only command wrote to the database"
    assert {p.name: p.stat().st_size for p in tmp_path.glob("digest.sqlite*")}.keys() >= before.keys()


# --------------------------------------------------------------------------- L2: unwritable paths, encodings


def test_L2_unwritable_output_paths_give_one_line_each(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "sub"  # a path under a regular file cannot be written, even by root
    assert "Cannot write" in one_error(cli(None, "init", "--path", str(target / "digest.toml")))
    assert "Cannot write" in one_error(cli(config, "subscribers", "export", "--out", str(target / "s.csv")))
    assert "Cannot write" in one_error(cli(config, "feeds", "export", "--out", str(target / "f.opml")))
    assert "Cannot create the folder" in one_error(cli(config, "send", "--dry-run", str(target / "eml")))


async def test_L2_preview_to_an_unwritable_path_gives_one_line(tmp_path: Path) -> None:
    async with FeedServer() as feed:
        config = write_config(tmp_path, feed_url=feed.serve("/news.xml", rss()))
        assert (await asyncio.to_thread(poll, config)).returncode == 0
    out = tmp_path / "a-file"
    out.write_text("x")
    line = one_error(cli(config, "preview", "--subscriber", "reader0@example.org", "--out", str(out / "p.html")))
    assert "Cannot write" in line


def test_L2_a_latin1_csv_names_the_encoding_and_how_to_convert_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    csv_path = tmp_path / "roster.csv"
    csv_path.write_bytes("email,name\nreader1@example.org,Jörg Müller\n".encode("latin-1"))
    result = cli(config, "subscribers", "import", str(csv_path))
    line = one_error(result)
    assert "not UTF-8" in line and "Latin-1" in line
    assert "iconv -f latin1 -t utf-8" in result.stderr
    assert "reader1@example.org" not in cli(config, "subscribers", "list").stdout


def test_L2_a_csv_with_classic_mac_line_endings_imports_and_one_the_csv_module_refuses_is_one_line(
    tmp_path: Path,
) -> None:
    """Excel for Mac's "CSV (Macintosh)" ends lines with a lone CR: before, the csv module refused it
    with a traceback. A cell with a line break or a NUL in it is a one-line name, and a file the csv
    module cannot read (a cell over its size limit) is one line with a hint, and nothing imported."""
    config = write_config(tmp_path)
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b'email,name,sections\rreader1@example.org,"Smith,\rJohn",\rreader2@example.org,Ann\x00a,\r')
    result = cli(config, "subscribers", "import", str(mac))
    assert result.returncode == 0 and "2 added" in result.stdout, result.stderr
    exported = cli(config, "subscribers", "export").stdout.splitlines()
    assert 'reader1@example.org,"Smith, John",,,active' in exported and "reader2@example.org,Anna,,,active" in exported
    huge = tmp_path / "huge.csv"
    huge.write_text('email,name\nreader3@example.org,"' + "x" * 200_000 + '"\n', encoding="utf-8")
    line = one_error(cli(config, "subscribers", "import", str(huge)))
    assert "cannot be read as CSV" in line
    assert "reader3@example.org" not in cli(config, "subscribers", "list").stdout


# --------------------------------------------------------------------------- S14: imports are all or nothing


@pytest.mark.parametrize("kill_after", [1.5, 3.0])
def test_S14_kill_9_during_a_csv_import_leaves_all_rows_or_none(tmp_path: Path, kill_after: float) -> None:
    rows = 20_000
    config = write_config(tmp_path, subscribers=())
    assert cli(config, "status").returncode == 0
    csv_path = tmp_path / "roster.csv"
    csv_path.write_text(
        "email,name\n" + "".join(f"r{i:06d}@example.org,Reader {i}\n" for i in range(rows)), encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "subscribers", "import", str(csv_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: no handler, no rollback of our own
    proc.wait()
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        count = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    assert count in (0, rows), f"{count} of {rows} rows imported: an import must be all or nothing"
    if count == 0:  # a second attempt imports everything, once
        again = cli(config, "subscribers", "import", str(csv_path))
        assert again.returncode == 0 and f"{rows} added" in again.stdout, again.stderr


def test_S14_an_import_updates_and_adds_in_one_go_and_never_resubscribes(tmp_path: Path) -> None:
    config = write_config(tmp_path, subscribers=())
    first = tmp_path / "first.csv"
    first.write_text("email,name\nkeep@example.org,Keep\ngone@example.org,Gone\n", encoding="utf-8")
    assert cli(config, "subscribers", "import", str(first)).returncode == 0
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        db.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'gone@example.org'")
    second = tmp_path / "second.csv"
    second.write_text(
        "email,name,sections,timezone\nKeep@example.org,Kept,,Europe/Moscow\n"
        "gone@example.org,Back,,\nnew@example.org,New,,\n",
        encoding="utf-8",
    )
    result = cli(config, "subscribers", "import", str(second))
    assert "1 added, 1 updated, 0 unchanged, 0 unsubscribed or suspended as the file says, 1 left as they are" in (
        result.stdout
    ), result.stderr
    listing = cli(config, "subscribers", "list").stdout
    assert "keep@example.org  active  [all sections]  tz=Europe/Moscow" in listing
    assert "gone@example.org  unsubscribed" in listing and "new@example.org  active" in listing


# --------------------------------------------------------------------------- H19: idle web clients


async def start_daemon(
    config: Path, log_path: Path, *, env: dict[str, str], preexec_fn: Callable[[], None] | None = None
) -> asyncio.subprocess.Process:
    """`digest -v run` as a process, its log lines in `log_path` for the test to watch."""
    with log_path.open("wb") as log_file:
        return await launch(
            config, "-v", "run", env=env, stdout=subprocess.DEVNULL, stderr=log_file, preexec_fn=preexec_fn
        )


def _low_fd_limit(limit: int) -> Callable[[], None]:
    def lower() -> None:  # in the child, before exec: what `LimitNOFILE=` or `ulimit -n` would do
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


async def _half_sent(port: int, n: int, payload: bytes) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """n loopback connections, each sending the start of a request and then nothing."""
    conns = []
    for _ in range(n):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, TimeoutError):  # a listener that stopped accepting: its backlog is full
            continue
        writer.write(payload)
        conns.append((reader, writer))
    return conns


async def _closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server said before it closed the connection (b"reset" for a reset)."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        return b"reset"


async def test_H19_idle_half_sent_web_requests_never_stop_the_due_edition(tmp_path: Path) -> None:
    limit, attackers = 256, 400  # more idle connections than the daemon may open descriptors
    send_at = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    start = send_at - timedelta(seconds=12)
    port = free_port()
    async with FeedServer() as feed, SmtpServer() as smtp:
        url = feed.serve("/news.xml", rss(when=send_at - timedelta(hours=2)))
        config = write_config(
            tmp_path,
            feed_url=url,
            smtp_port=smtp.port,
            subscribers=("first@example.org", "second@example.org"),
            extra=f'send_at = "07:00"\n[web]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n',
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_NOW": start.isoformat(), "DIGEST_DAEMON_TICK": "0.5"}
        log_path = tmp_path / "daemon.log"
        proc = await start_daemon(config, log_path, env=env, preexec_fn=_low_fd_limit(limit))
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            await _until(lambda: "listening on" in log_path.read_text(errors="replace"), "the web app", 30)
            conns = await _half_sent(port, attackers, b"POST /u/x HTTP/1.1\r\nHost: review\r\nContent-Le")
            await _until(lambda: len(smtp.messages) >= 2, "the edition, delivered while the connections idle", 60)
        finally:
            for _, w in conns:
                w.close()
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["first@example.org", "second@example.org"]
    assert log_path.stat().st_size < 200_000, "the log grew without bound"


async def test_H19_the_web_app_drops_requests_whose_headers_or_body_never_arrive(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra=f'secret = "{SECRET}"')
    assert cli(config, "subscribers", "list").returncode == 0  # the config's subscriber is in the database
    token = unsubscribe_link_token(tmp_path / "digest.sqlite", "reader0@example.org")
    port = free_port()
    proc = await launch(config, "web", "--host", "127.0.0.1", "--port", str(port), preexec_fn=_low_fd_limit(200))
    try:
        assert proc.stdout is not None
        assert b"serving on" in await asyncio.wait_for(proc.stdout.readline(), 30)
        (headers,) = await _half_sent(port, 1, b"GET / HTTP/1.1\r\nHost: review\r\n")
        start = f"POST /u/{token} HTTP/1.1\r\nHost: review\r\nContent-Length: 100\r\n".encode()
        (body,) = await _half_sent(
            port, 1, start + b"Content-Type: application/x-www-form-urlencoded\r\n\r\nList-Unsub"
        )
        # More connections than the cap: the web app refuses the extra ones at once (503, closed)
        # instead of running out of descriptors; the ones it holds are dropped at the timeout.
        crowd = await _half_sent(port, 300, b"GET / HTTP/1.1\r\n")
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(_closed(r, 25) for r, _ in [headers, body, *crowd]))
        took = asyncio.get_running_loop().time() - started
        assert took < 20, f"idle connections were held for {took:.0f} s"
        assert b"408" in answers[1] or answers[1] == b""
        assert len(crowd) == 300
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            # and it still serves (no edition is due yet in this test: "late" is the health answer)
            assert (await resp.text()).split("\n")[0] in ("ok", "late"), resp.status
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


async def _until(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- web: bad bodies, busy database


def unsubscribe_link_token(database: Path, email: str, *, purpose: str = "u") -> str:
    """The token of a subscriber's link, as the email carries it (their public id, signed)."""
    with sqlite3.connect(database) as db:
        (public_id,) = db.execute("SELECT public_id FROM subscribers WHERE email = ?", (email,)).fetchone()
    return (tokens.unsubscribe_token if purpose == "u" else tokens.preferences_token)(SECRET, public_id)


@contextmanager
def web_process(config: Path) -> Iterator[str]:
    """`digest web` on a free loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "web", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving on" in line, (line, proc.stderr.read() if proc.stderr else "")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, err


# Form bodies no form reader can read: (Content-Type, body). Every form of the web app answers them
# 400 and changes nothing (the sign-up forms: tests/test_signup.py).
MALFORMED_FORMS = [
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"List-Unsubscribe=One-Click"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"\xff\xfeL\x00=\x00\xd8"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nbroken"),
    ("multipart/form-data", b"--no-boundary-declared--"),
    (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="List-Unsubscribe"'
        b"\r\nContent-Type: text/plain; charset=bogus\r\n\r\nOne-Click\r\n--xyz--\r\n",
    ),
    ("application/x-www-form-urlencoded", b"email=\x80\xff@example.org"),  # not UTF-8, none declared
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_FORMS)
async def test_L3_a_malformed_body_posted_to_a_valid_token_is_400_and_changes_nothing(
    tmp_path: Path, content_type: str, body: bytes
) -> None:
    config = write_config(tmp_path, extra=f'secret = "{SECRET}"')
    with web_process(config) as base:
        async with aiohttp.ClientSession() as http:
            for kind in ("u", "p"):
                token = unsubscribe_link_token(tmp_path / "digest.sqlite", "reader0@example.org", purpose=kind)
                async with http.post(
                    f"{base}/{kind}/{token}", data=body, headers={"Content-Type": content_type}
                ) as resp:
                    assert resp.status == 400, (kind, resp.status, await resp.text())
    assert "reader0@example.org  active" in cli(config, "subscribers", "list").stdout


async def test_S13_one_click_unsubscribe_through_a_busy_database_is_503_retry_after_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "digest.sqlite"
    config = write_config(
        tmp_path,
        database=f"sqlite:///{database}?timeout=1",
        subscribers=("stays@example.org", "leaves@example.org"),
        extra=f'secret = "{SECRET}"',
    )
    with web_process(config) as base:
        token = unsubscribe_link_token(database, "leaves@example.org")
        public_id = tokens.read_unsubscribe_token([SECRET], token)
        async with aiohttp.ClientSession() as http:
            with write_lock(database):
                async with http.post(f"{base}/u/{token}", data={"List-Unsubscribe": "One-Click"}) as resp:
                    assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
                    assert "Location" not in resp.headers
                spool = Path(f"{database}.unsubscribes")
                assert spool.read_text().count(f'"subscriber": "{public_id}"') == 1  # on disk before the answer
                assert "unsubscribes waiting for the database: 1" in cli(config, "status").stdout
            # The lock is gone: the next `digest` command that writes applies it (the web app's own
            # retry loop would too, within a minute).
    assert cli(config, "poll").returncode == 0
    listing = cli(config, "subscribers", "list").stdout
    assert "leaves@example.org  unsubscribed" in listing and "stays@example.org  active" in listing
    assert spool.read_text() == ""


async def test_S13_the_web_app_waits_seconds_not_the_commands_30_s_for_a_write_lock(tmp_path: Path) -> None:
    # No ?timeout= in the URL: batch commands wait BUSY_TIMEOUT (30 s) for another process's write
    # lock; a mail provider's one-click POST would give up first, so the web app waits its own.
    database = tmp_path / "digest.sqlite"
    config = write_config(tmp_path, subscribers=("leaves@example.org",), extra=f'secret = "{SECRET}"')
    with web_process(config) as base:
        token = unsubscribe_link_token(database, "leaves@example.org")
        async with aiohttp.ClientSession() as http:
            with write_lock(database):
                started = time.monotonic()
                async with http.post(f"{base}/u/{token}", data={"List-Unsubscribe": "One-Click"}) as resp:
                    waited = time.monotonic() - started
                    assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
    assert WEB_BUSY_TIMEOUT <= waited < BUSY_TIMEOUT - 10, waited
    assert cli(config, "poll").returncode == 0  # the next command that writes applies what was kept
    assert "leaves@example.org  unsubscribed" in cli(config, "subscribers", "list").stdout


# --------------------------------------------------------------------------- S12: disk full


def _file_size_limit(limit: int) -> Callable[[], None]:
    """What a full disk looks like to SQLite, unprivileged: every write past `limit` bytes fails
    (RLIMIT_FSIZE; SIGXFSZ ignored so the write returns an error instead of killing the process)."""

    def lower() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return lower


async def test_S12_a_full_disk_while_the_edition_is_built_is_one_line_and_nothing_is_lost(tmp_path: Path) -> None:
    async with FeedServer() as feed, SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=feed.serve("/news.xml", rss(2000)), smtp_port=smtp.port)
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # The WAL may grow to 40 KB: room to open the database (its 32 KB shared-memory file) and
        # sync the config, not to write the 2,000 rows of the edition.
        full = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "digest", "--config", str(config), "send", "--workers", "1"],
            capture_output=True,
            text=True,
            preexec_fn=_file_size_limit(40 * 1024),
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_NOW": NOW.isoformat()},
        )
        line = one_error(full)
        assert "cannot be written" in line and "disk" in line, line
        assert "Free space" in full.stderr
        assert smtp.messages == []
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            assert db.execute("SELECT count(*) FROM editions").fetchone()[0] == 0  # rolled back whole
        again = await asyncio.to_thread(cli, config, "send")  # space again: the edition goes out
        assert again.returncode == 0 and "1 sent" in again.stdout, again.stderr
    assert len(smtp.messages) == 1


# --------------------------------------------------------------------------- L4: one spelling per feed URL


async def test_L4_differently_spelled_urls_of_one_feed_are_one_feed_polled_once(tmp_path: Path) -> None:
    async with FeedServer() as feed:
        url = feed.serve("/news.xml", rss())
        shouting = url.replace("http://127.0.0.1", "HTTP://127.0.0.1")
        config = write_config(tmp_path, feed_url=shouting)
        added = await asyncio.to_thread(cli, config, "feeds", "add", url)
        assert "already in the list" in one_error(added)
        polled = await asyncio.to_thread(poll, config)
        assert "polled 1 feeds" in polled.stdout, polled.stdout
        assert len(feed.requests) == 1
        listing = await asyncio.to_thread(cli, config, "feeds", "list")
        assert listing.stdout.count("/news.xml") == 1 and url in listing.stdout
        # Either spelling names the feed the config lists, which only the config can remove.
        removed = await asyncio.to_thread(cli, config, "feeds", "remove", shouting)
        assert "listed in digest.toml; remove it there" in one_error(removed)


# --------------------------------------------------------------------------- P9: dates in the future


async def test_P9_an_item_dated_hours_ahead_is_dated_when_first_seen(tmp_path: Path) -> None:
    seen_at = NOW - timedelta(minutes=5)  # the poll's clock
    body = rss(1, when=seen_at + timedelta(hours=23)).replace(b"Story number 0", b"Story from tomorrow")
    body = body.replace(
        b"</channel>",
        rss(1, when=seen_at + timedelta(minutes=2))
        .split(b"</link>", 1)[1]
        .replace(b"Story number 0", b"Story with a fast clock")
        .replace(b"/0<", b"/1<")
        .split(b"</channel>")[0]
        + b"</channel>",
    )
    async with FeedServer() as feed:
        config = write_config(tmp_path, feed_url=feed.serve("/news.xml", body))
        assert (await asyncio.to_thread(poll, config)).returncode == 0
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        dates = dict(db.execute("SELECT title, published FROM items").fetchall())
    assert dates["Story from tomorrow"] is None  # shown at its first-seen time, never 23 h ahead
    assert dates["Story with a fast clock"] is not None  # within the few minutes of slack: kept
    preview = cli(config, "preview", "--subscriber", "reader0@example.org")
    assert preview.returncode == 0 and "Story from tomorrow" in preview.stdout


# --------------------------------------------------------------------------- H19: the log stays small


def test_H19_an_identical_log_line_is_written_once_a_minute_with_a_count_of_the_rest() -> None:
    import logging

    from digest.cli import RepeatFilter

    now = [0.0]
    repeats = RepeatFilter(60.0, clock=lambda: now[0])

    def shown(msg: str) -> str | None:
        record = logging.LogRecord("digest", logging.WARNING, __file__, 1, msg, None, None)
        return record.getMessage() if repeats.filter(record) else None

    assert shown("poll: unable to open database file") == "poll: unable to open database file"
    for _ in range(1000):  # every tick for a while
        now[0] += 0.05
        assert shown("poll: unable to open database file") is None
    assert shown("reconcile: another line") is not None  # other lines are not held back
    now[0] = 61.0
    assert (
        shown("poll: unable to open database file")
        == "poll: unable to open database file (and 1000 more times in the last 61 s)"
    )


def test_S14_import_subscribers_counts_and_keeps_unsubscribes_on_every_backend(store: Any) -> None:
    from digest.store import SUSPENDED, UNSUBSCRIBED
    from digest.store.subscribers import ImportRow

    rows = [ImportRow(email=f"r{i}@example.org", name=None, sections=None, timezone=None) for i in range(1200)]
    none = {"added": 0, "updated": 0, "unchanged": 0, "stopped": 0, "kept": 0}
    assert store.import_subscribers(rows, now=NOW) == {**none, "added": 1200}
    gone = store.get_subscriber(email="r7@example.org")
    store.set_status(gone.id, UNSUBSCRIBED, now=NOW)
    again = [*rows, ImportRow(email="R1@Example.org", name="One", sections=("World",), timezone="UTC")]
    assert store.import_subscribers(again, now=NOW) == {**none, "updated": 1, "unchanged": 1198, "kept": 1}
    assert store.get_subscriber(email="r7@example.org").status == UNSUBSCRIBED
    assert store.get_subscriber(email="r1@example.org").sections == ("World",)
    # A list's own unsubscribes and suspensions stop the mail of new and active addresses alike,
    # and suppress them, so that no later import or config entry brings them back.
    stops = [
        ImportRow(email="r2@example.org", name=None, sections=None, timezone=None, status=UNSUBSCRIBED),
        ImportRow(email="new@example.org", name="New", sections=None, timezone=None, status=SUSPENDED),
    ]
    assert store.import_subscribers(stops, now=NOW) == {**none, "stopped": 2}
    assert store.get_subscriber(email="new@example.org").status == SUSPENDED
    assert store.suppression_reason("r2@example.org") == ("unsubscribed", NOW)
    assert store.suppression_reason("new@example.org") == ("failed", NOW)
    assert store.import_subscribers(rows[2:3], now=NOW) == {**none, "kept": 1}


async def test_H19_the_daemon_starts_its_web_process_again_when_it_dies(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, extra=f'[web]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n')
    log_path = tmp_path / "daemon.log"
    proc = await start_daemon(config, log_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:

        def web_pids() -> list[int]:
            text = log_path.read_text(errors="replace")
            return [int(p) for p in re.findall(r"web: serving from process (\d+)", text)]

        await _until(lambda: len(web_pids()) == 1, "the web process", 30)
        os.kill(web_pids()[0], signal.SIGKILL)
        await _until(lambda: len(web_pids()) == 2, "the web process, started again", 30)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert (await resp.text()).split("\n")[0] in ("ok", "late"), resp.status  # the new process answers
        assert proc.returncode is None  # the daemon itself never stopped
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert "starting it again" in log_path.read_text()
