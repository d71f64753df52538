"""/metrics (Prometheus text format, read back with prometheus-client's own parser) and /healthz,
served by the real app on 127.0.0.1 and by the daemon when [web] enabled."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from digestprocess import DigestProcess, slowness
from httpservers import FeedServer
from ports import free_port
from prometheus_client.parser import text_string_to_metric_families
from smtpservers import SmtpServer
from test_end_to_end import HARBOUR, SUMMIT
from test_web import NOW, Clock, add_news, make_settings, open_store

from digest import config as cfg
from digest.daemon import Ticks, run_daemon
from digest.deliver import SmtpTransport
from digest.errors import ConfigError
from digest.metrics import Metrics, counters_path, error_kind
from digest.model import PollRecord, PollResult
from digest.pipeline import send_day
from digest.store import Store
from digest.web import listening, start_web
from digest.worker import run_worker


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), parsed by prometheus-client (it raises on bad syntax)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def get(url: str, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def test_feed_errors_fall_into_a_few_kinds() -> None:
    assert error_kind(PollResult("u", 200)) is None
    assert error_kind(PollResult("u", 404, error="HTTP 404")) == "http_4xx"
    assert error_kind(PollResult("u", 503, error="HTTP 503")) == "http_5xx"
    assert error_kind(PollResult("u", 410, error="410 Gone")) == "gone"
    assert error_kind(PollResult("u", None, error="timed out after 30s")) == "timeout"
    assert error_kind(PollResult("u", 200, error="not a feed: XML syntax error")) == "parse"
    assert error_kind(PollResult("u", None, error="connection reset")) == "network"


async def test_metrics_show_the_store_figures_after_a_send(tmp_path: Path) -> None:
    async with SmtpServer() as smtp:
        settings = make_settings(tmp_path, smtp_port=smtp.port)
        store = open_store(settings)
        add_news(store, at=NOW - timedelta(hours=2), prefix="a")
        await send_day(settings, store, day=date(2026, 1, 16), transport=SmtpTransport, clock=Clock())
        runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
        try:
            status, ctype, text = await get(listening(runner)[0], "/metrics")
        finally:
            await runner.cleanup()
            store.close()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    values = samples(text)
    assert values[("digest_outbox_messages", (("status", "sent"),))] == len(smtp.messages) == 2
    assert values[("digest_subscribers", (("status", "active"),))] == 2
    assert values[("digest_items", ())] == 6
    assert values[("digest_editions", ())] == 1
    assert values[("digest_messages_total", (("outcome", "sent"),))] == 0  # no send in this process's app
    assert values[("digest_healthy", ())] == 1
    assert values[("digest_bounces", (("kind", "hard"),))] == 0
    assert values[("digest_bounces_unverified", ())] == 0


async def test_metrics_count_bounces_and_suppressions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings)
    alice = store.get_subscriber(email="alice@example.org")
    assert alice is not None
    kw: dict[str, Any] = {
        "edition_id": 1,
        "status": "5.1.1",
        "diagnostic": "x",
        "via": "file",
        "now": NOW,
        "threshold": 3.0,
        "half_life": timedelta(days=7),
    }
    store.record_bounce(dedupe="a", subscriber_id=alice.id, kind="hard", **kw)
    store.record_bounce(dedupe="b", subscriber_id=None, kind="soft", **kw)
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        _, _, text = await get(listening(runner)[0], "/metrics")
    finally:
        await runner.cleanup()
        store.close()
    values = samples(text)
    assert values[("digest_bounces", (("kind", "hard"),))] == 1
    assert values[("digest_bounces", (("kind", "soft"),))] == 0
    assert values[("digest_bounces_unverified", ())] == 1
    assert values[("digest_suppressed", (("reason", "bounced"),))] == 1


async def test_healthz_says_late_when_the_due_edition_was_not_built_and_ok_once_it_is(tmp_path: Path) -> None:
    async with SmtpServer() as smtp:
        settings = make_settings(tmp_path, smtp_port=smtp.port)
        store = open_store(settings)
        add_news(store, at=NOW - timedelta(hours=2), prefix="a")
        clock = Clock(datetime(2026, 1, 16, 7, 10, tzinfo=UTC))  # 10 minutes after send_at
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=0)
        url = listening(runner)[0]
        try:
            status, _, text = await get(url, "/healthz")
            assert status == 200 and "not built yet" in text
            clock.now = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
            status, _, text = await get(url, "/healthz")
            assert status == 503 and text.startswith("late\n") and "edition UTC 2026-01-16: late" in text
            await send_day(settings, store, day=date(2026, 1, 16), transport=SmtpTransport, clock=clock)
            status, _, text = await get(url, "/healthz")
            assert status == 200 and text.startswith("ok\n") and "alice" not in text
            feed = store.list_feeds()[0]
            with store.poll_writer() as writer:  # a poll that set its next poll an hour ago
                writer.record([PollRecord(feed.id, clock.now, 200, 0, None, clock.now - timedelta(hours=1))])
            status, _, text = await get(url, "/healthz")
            assert status == 503 and "poll: late: 1 of 1 feeds overdue" in text
        finally:
            await runner.cleanup()
            store.close()


async def test_healthz_is_ok_on_a_new_installation_and_after_a_send_ahead_of_send_at(tmp_path: Path) -> None:
    """Before, both said "late" for a day: yesterday's edition, due before anything was polled (a
    database created today), and yesterday's again after `digest send` had built today's early."""
    async with SmtpServer() as smtp:
        settings = make_settings(tmp_path, smtp_port=smtp.port)
        store = open_store(settings)
        clock = Clock(datetime(2026, 1, 16, 5, 0, tzinfo=UTC))  # before send_at (07:00): 01-15's is the due one
        add_news(store, at=clock.now - timedelta(minutes=30), prefix="a")  # the first poll, at 04:30
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=0)
        url = listening(runner)[0]
        try:
            status, _, text = await get(url, "/healthz")
            assert status == 200, text
            assert "edition UTC 2026-01-15: not expected: nothing had been polled by 2026-01-15 07:00 UTC" in text
            await send_day(settings, store, day=date(2026, 1, 16), transport=SmtpTransport, clock=clock)
            status, _, text = await get(url, "/healthz")
            assert status == 200 and "edition UTC 2026-01-15: none; the later 2026-01-16 was built (complete)" in text
            # An item polled before 01-15's send_at, and no edition at all: that one is late.
            other = open_store(
                dataclasses.replace(
                    settings,
                    digest=dataclasses.replace(settings.digest, database=f"sqlite:///{tmp_path / 'other.sqlite'}"),
                )
            )
            add_news(other, at=datetime(2026, 1, 15, 6, 0, tzinfo=UTC), prefix="b")
            from digest.metrics import health

            late = health(settings, other, now=clock.now)
            assert not late.ok and "edition UTC 2026-01-15: late" in late.text
            other.close()
        finally:
            await runner.cleanup()
            store.close()


async def test_the_daemon_serves_its_poll_and_send_counters_at_metrics(tmp_path: Path) -> None:
    port = free_port()
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [
            feeds.serve("/harbour.xml", HARBOUR),
            feeds.serve("/summit.xml", SUMMIT),
            feeds.serve("/broken.xml", b"<html>not a feed</html>"),
        ]
        settings = cfg.from_mapping(
            {
                "digest": {
                    "timezone": "UTC",
                    "send_at": "07:00",
                    "database": f"sqlite:///{tmp_path / 'd.sqlite'}",
                    "allow_private_addresses": True,
                },
                "smtp": {"host": "127.0.0.1", "port": smtp.port, "sender": "review@review.example", "timeout": 10},
                "web": {"enabled": True, "host": "127.0.0.1", "port": port},
                "sections": [
                    {"name": "World", "categories": ["World", "Economy"]},
                    {"name": "Sport", "categories": ["Sport"]},
                ],
                "feeds": [{"url": u} for u in urls],
                "subscribers": [{"email": "alice@example.org"}, {"email": "bob@example.org", "sections": ["Sport"]}],
            },
            env={},
        )
        store = Store(settings.database_url)
        store.sync_subscribers(settings.subscribers, now=NOW - timedelta(days=1))
        store.sync_feeds(settings.feeds, now=NOW - timedelta(days=1))
        # HARBOUR and SUMMIT date their items from test_end_to_end's clock; run at that moment.
        clock = Clock(datetime(2026, 1, 16, 8, 0, tzinfo=UTC))
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_daemon(
                dataclasses.replace(settings),
                store,
                clock=clock,
                stop=stop,
                grace=2.0,
                ticks=Ticks(poll=0.2, reconcile=0.2, heartbeat=0.2),
            )
        )
        try:
            values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            # A deadline, not a count of tries: the daemon now sends from spawned processes,
            # whose start-up alone takes seconds on a loaded CI machine.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                assert not task.done(), task.exception()
                try:
                    status, _, text = await get(f"http://127.0.0.1:{port}", "/metrics")
                except aiohttp.ClientConnectorError:
                    continue
                values = samples(text)
                # The outbox gauge is read from the database on its own tick: it may trail the counter.
                sent = values.get(("digest_messages_total", (("outcome", "sent"),)))
                if sent == 2 and values.get(("digest_outbox_messages", (("status", "sent"),))) == 2:
                    break
            else:
                raise AssertionError(f"the daemon never reported 2 messages sent: {values}")
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            store.close()
    assert values[("digest_feeds_polled_total", ())] >= 3
    assert values[("digest_feed_errors_total", (("kind", "parse"),))] >= 1
    assert values[("digest_items_stored_total", ())] >= 3
    assert values[("digest_editions_built_total", ())] == 1
    assert values[("digest_poll_duration_seconds_count", ())] >= 1
    assert values[("digest_send_duration_seconds_count", ())] >= 1
    assert values[("digest_outbox_messages", (("status", "sent"),))] == 2
    assert len(smtp.messages) == 2


# --------------------------------------------------------------------------- several workers' counters


def polled(n: int, *, failed: int = 0) -> list[PollResult]:
    ok = [PollResult(f"https://news.example.org/{i}", 200, new_items=2) for i in range(n - failed)]
    bad = [PollResult("https://news.example.org/x", 503, error="HTTP 503")] * failed
    return ok + bad


def test_workers_write_counters_of_their_own_and_metrics_merges_them(tmp_path: Path) -> None:
    """Every worker wrote the one file beside the database: /metrics showed whichever wrote last,
    and its counters went back and forth between the workers' counts."""
    settings = make_settings(tmp_path)
    store = open_store(settings)
    try:
        w1 = Metrics(
            settings,
            store,
            clock=Clock(NOW),
            counters_file=counters_path(settings, "w1"),
            writes_counters=True,
            worker="w1",
        )
        # A default name (host:pid) is written safe in the file's name, and whole in the label.
        w2 = Metrics(
            settings,
            store,
            clock=Clock(NOW),
            counters_file=counters_path(settings, "host-b:4242"),
            writes_counters=True,
            worker="host-b:4242",
        )
        w1.observe_poll(polled(3), 1.0)
        w2.observe_poll(polled(5, failed=1), 1.0)
        w1.observe_send(built=1, sent=10, deferred=0, failed=0, skipped=0, seconds=2.0)
        w2.observe_send(built=0, sent=7, deferred=1, failed=0, skipped=0, seconds=2.0)
        files = sorted(p.name for p in tmp_path.glob("*.prom"))
        assert len(files) == 2 and all(":" not in f for f in files), files

        web = Metrics(settings, store, clock=Clock(NOW), counters_file=counters_path(settings))
        text = web.exposition().decode()
        values = samples(text)
        assert values[("digest_feeds_polled_total", (("worker", "w1"),))] == 3
        assert values[("digest_feeds_polled_total", (("worker", "host-b:4242"),))] == 5
        assert values[("digest_feed_errors_total", (("kind", "http_5xx"), ("worker", "host-b:4242")))] == 1
        assert values[("digest_messages_total", (("outcome", "sent"), ("worker", "w1")))] == 10
        assert values[("digest_messages_total", (("outcome", "sent"), ("worker", "host-b:4242")))] == 7
        assert values[("digest_editions_built_total", (("worker", "w1"),))] == 1
        # One family per metric, as the text format wants (and Prometheus refuses a repeated one).
        assert text.count("# TYPE digest_messages_total counter") == 1, text

        w2.forget()  # a worker that stops cleanly takes its series with it
        values = samples(web.exposition().decode())
        assert ("digest_feeds_polled_total", (("worker", "host-b:4242"),)) not in values
        assert values[("digest_feeds_polled_total", (("worker", "w1"),))] == 3
    finally:
        store.close()


async def test_a_worker_writes_its_counters_to_its_own_file_and_removes_it_when_it_stops(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(
            settings,
            store,
            name="w1",
            clock=Clock(NOW),
            stop=stop,
            grace=2.0,
            ticks=Ticks(poll=60, reconcile=60, heartbeat=0.2),
        )
    )
    try:
        mine = counters_path(settings, "w1")
        deadline = time.monotonic() + 30
        while not mine.exists():
            assert time.monotonic() < deadline, "the worker never wrote its counters"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
        assert samples(mine.read_text())[("digest_feeds_polled_total", (("worker", "w1"),))] == 0
        assert not counters_path(settings).exists()  # the daemon's file is not the worker's
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        store.close()
    assert not mine.exists()


# --------------------------------------------------------------------------- [web] metrics_port


def metrics_config(folder: Path, *, feed_url: str, web_port: int, metrics_port: int) -> Path:
    path = folder / "digest.toml"
    path.write_text(
        "\n".join(
            [
                "[digest]",
                'timezone = "UTC"',
                'send_at = "07:00"',
                f'database = "sqlite:///{folder / "digest.sqlite"}"',
                "allow_private_addresses = true",
                "[smtp]",
                'host = "127.0.0.1"',
                f"port = {free_port()}",  # nothing is due: nothing is sent
                'sender = "review@review.example"',
                "[web]",
                "enabled = true",
                'host = "127.0.0.1"',
                f"port = {web_port}",
                f"metrics_port = {metrics_port}",
                "[[feeds]]",
                f'url = "{feed_url}"',
                "[[subscribers]]",
                'email = "alice@example.org"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


def two_ports() -> tuple[int, int]:
    while (ports := (free_port(), free_port()))[0] == ports[1]:
        pass
    return ports


async def refused(url: str) -> bool:
    try:
        await get(url, "/metrics")
    except aiohttp.ClientConnectorError:
        return True
    return False


@pytest.mark.parametrize("command", ["run", "web"])
async def test_metrics_port_serves_metrics_on_its_own_listener_and_the_public_port_answers_404(
    tmp_path: Path, command: str
) -> None:
    """/metrics was served on the public port, and the README asked operators to block it at the
    proxy. With [web] metrics_port the real `digest run` (its web process) and `digest web` serve it
    on a listener of their own, answer it 404 on the public port, and close both when stopped."""
    web_port, metrics_port = two_ports()
    public, scrape = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{metrics_port}"
    async with FeedServer() as feeds:
        config = metrics_config(
            tmp_path, feed_url=feeds.serve("/harbour.xml", HARBOUR), web_port=web_port, metrics_port=metrics_port
        )
        proc = DigestProcess(f"digest {command}")
        # 05:00: the edition is two hours off, so the daemon only polls.
        await proc.spawn(config, ["--verbose", command], {"DIGEST_NOW": "2026-01-16T05:00:00+00:00"})
        try:
            await proc.wait_for(f"web: metrics on {scrape}/metrics", timeout=30 * slowness())
            values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            deadline = time.monotonic() + 30 * slowness()
            while time.monotonic() < deadline:  # the daemon's counters reach its web process through a file
                status, ctype, text = await get(scrape, "/metrics")
                assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
                values = samples(text)
                if command == "web" or values.get(("digest_feeds_polled_total", ()), 0) >= 1:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the daemon's poll never reached the metrics listener: {values}")
            assert values[("digest_subscribers", (("status", "active"),))] == 1
            assert (await get(public, "/metrics"))[0] == 404
            assert (await get(public, "/healthz"))[0] in (200, 503)  # the public app is up, and serves the rest
            assert (await get(scrape, "/healthz"))[0] == 404  # the metrics listener serves /metrics alone
        finally:
            rc = await proc.stop()
    assert rc == 0, proc.log
    assert await refused(scrape) and await refused(public), "a listener outlived its process"


async def test_a_busy_metrics_port_stops_the_web_app_with_the_key_to_change(tmp_path: Path) -> None:
    web_port, metrics_port = two_ports()
    settings = make_settings(tmp_path)
    settings = dataclasses.replace(
        settings, web=dataclasses.replace(settings.web, port=web_port, metrics_port=metrics_port)
    )
    store = open_store(settings)
    busy = await asyncio.start_server(lambda r, w: None, "127.0.0.1", metrics_port)
    try:
        with pytest.raises(ConfigError) as err:
            await start_web(settings, store, clock=Clock(), host="127.0.0.1")
    finally:
        busy.close()
        await busy.wait_closed()
        store.close()
    assert f"The metrics listener cannot listen on 127.0.0.1:{metrics_port}" in err.value.message
    assert "[web] metrics_port" in err.value.hint
    assert await refused(f"http://127.0.0.1:{web_port}")  # the web app did not stay up without it


def test_metrics_port_must_not_be_the_web_apps_port() -> None:
    with pytest.raises(ConfigError, match="web.metrics_port = 8080 is web.port too"):
        cfg.from_mapping({"web": {"port": 8080, "metrics_port": 8080}}, env={})
    web = cfg.from_mapping({}, env={"DIGEST_WEB_METRICS_PORT": "9108"}).web
    assert (web.metrics_host, web.metrics_port) == ("127.0.0.1", 9108)
    assert cfg.from_mapping({}, env={}).web.metrics_port is None  # unset: /metrics stays on [web] port
