"""Sending fast without giving up a guarantee: outbox claims, group commits, sending processes,
and the cheap per-message paths (dot-stuffing, plain address headers).

Real parts only: SQLite files (and PostgreSQL when configured), the `digest` command as a process,
aiosmtpd on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from pathlib import Path

import pytest
import sqlalchemy as sa
from smtpservers import Scripted, SmtpServer
from sqlalchemy import insert, select
from storepaths import claim, new_edition, record, release, store_items

from digest import config as cfg
from digest import message
from digest.config import SmtpSettings
from digest.deliver import SmtpTransport, data_block
from digest.errors import OutdatedDatabaseError
from digest.model import EditionRecord, FeedSpec, Lapsed, Mark
from digest.pipeline.send import send_day
from digest.pipeline.sender import SendReport, taken_over
from digest.pipeline.workers import plan_workers, shares
from digest.store import FAILED, MAX_CRASHES, PENDING, SENT, Store
from digest.store import schema as t
from digest.store.editions import SENDING

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def edition_with(store: Store, subscribers: int) -> int:
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.subscribers),
            [
                {
                    "email": f"r{i}@x.example",
                    "status": "active",
                    "permanent_failures": 0,
                    "from_config": False,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(subscribers)
            ],
        )
    edition, _ = new_edition(store, day=date(2026, 5, 4), cutoff=NOW, now=NOW)
    return edition.id


# --------------------------------------------------------------------------- pure helpers


def test_data_block_dot_stuffs_lines_and_ends_with_the_terminator() -> None:
    assert data_block(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert data_block(b".first") == b"..first\r\n.\r\n"
    assert data_block(b"") == b"\r\n.\r\n"


def test_data_block_makes_bare_line_ends_crlf_before_stuffing_so_nothing_is_smuggled() -> None:
    # A bare LF before "." is what SMTP smuggling uses; it must leave as CRLF ".." CRLF.
    assert data_block(b"a\n.\nb\rc\r\n") == b"a\r\n..\r\nb\r\nc\r\n.\r\n"
    # crlf=True trusts the caller (digest.message) and skips the check, but still stuffs.
    assert data_block(b"a\r\n.b", crlf=True) == b"a\r\n..b\r\n.\r\n"


def test_personalised_messages_have_crlf_line_ends_only() -> None:
    from digest.model import PLACEHOLDER_UNSUBSCRIBE_URL, Rendered

    rendered = Rendered(
        subject="Review\r\nBcc: x@evil.example",
        text=f"a\nb\r.c\r\n{PLACEHOLDER_UNSUBSCRIBE_URL}\n",
        html=f"<p>\n.x\r</p><a href='{PLACEHOLDER_UNSUBSCRIBE_URL}'>u</a>",
    )
    template = message.build_template(
        rendered,
        sender="r@review.example",
        sender_name="Review",
        list_id="digest.review.example",
        base_url="https://review.example",
    )
    data = message.personalise(
        template,
        to_addr="o'neil@x.example",
        to_name="Ann Lee",
        message_id="<e1.s1.abc@review.example>",
        date=NOW,
        unsubscribe_url="https://review.example/u/t",
        preferences_url="https://review.example/p/t",
    )
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")  # what Envelope(crlf=True) promises


def test_a_plain_address_header_is_exactly_what_the_email_package_writes() -> None:
    names = [
        None,
        "Reader 1",
        "J. Smith",
        "O'Brien",
        "Anne-Marie",
        "x_y z",
        "=?utf-8?q?x?=",
        "Łukasz",
        "a" * 80,
        "Smith, John",
        "-dash",
    ]
    addresses = [
        "reader1@mail1.example",
        "x.y+z@b-c.org",
        "A.B@EXAMPLE.ORG",
        "o'neil@x.org",
        "a..b@x.org",
        "a@-x.org",
        '"q"@x.org',
    ]
    fast = 0
    for name, addr in itertools.product(names, addresses):
        display = message.one_line(name, limit=message.NAME_CHARS) if name else ""
        plain = message._plain_address("To", display, addr)
        if plain is None:
            continue
        fast += 1
        local, _, domain = addr.rpartition("@")
        assert plain == message._fold("To", Address(display_name=display, username=local, domain=domain))
    assert fast >= 20  # the fast path is taken for the usual names and addresses


def test_workers_share_the_connections_and_the_rate_limit() -> None:
    assert plan_workers(0, connections=4, rows=10_000) == min(os.cpu_count() or 1, 4)  # 0: one per core
    assert plan_workers(8, connections=4, rows=10_000) == 4  # never more processes than connections
    assert plan_workers(4, connections=8, rows=600) == 2  # a small edition is not worth 4 start-ups
    assert plan_workers(1, connections=8, rows=10_000) == 1
    parts = shares(SmtpSettings(connections=5, rate_limit=10.0), 2)
    assert [p.connections for p in parts] == [3, 2] and all(p.rate_limit == 5.0 for p in parts)


# --------------------------------------------------------------------------- claims in the store


def test_B1_two_senders_never_claim_the_same_row(store: Store) -> None:
    edition = edition_with(store, 25)
    a = claim(store, edition, "a", now=NOW, lease=LEASE, limit=10)
    b = claim(store, edition, "b", now=NOW, lease=LEASE, limit=10)
    c = claim(store, edition, "c", now=NOW, lease=LEASE, limit=10)
    ids = [d.id for d in a + b + c]
    assert len(ids) == len(set(ids)) == 25
    assert [len(a), len(b), len(c)] == [10, 10, 5] and all(d.status == SENDING for d in a)
    assert claim(store, edition, "d", now=NOW, lease=LEASE, limit=10) == []


def test_B1_a_claim_whose_lease_ran_out_is_claimed_again(store: Store) -> None:
    # Leases run on the database's clock (issue 15): a sender whose own clock is far ahead takes
    # nothing early; once the lease has really run out, anyone takes the rows.
    edition = edition_with(store, 3)
    claim(store, edition, "a", now=NOW, lease=timedelta(seconds=1), limit=10)
    assert claim(store, edition, "b", now=NOW, lease=LEASE, limit=10) == []
    assert claim(store, edition, "b", now=NOW + timedelta(days=1), lease=LEASE, limit=10) == []
    time.sleep(1.2)
    # Its sender stopped while holding them. The first, which it was making (none was on the
    # wire), counts a crash and is claimed only as a suspect, to be sent alone (S8); the others
    # were only claimed, and are anyone's again with nothing counted (audit finding 4).
    others = claim(store, edition, "b", now=NOW, lease=LEASE, limit=10)
    assert [d.crashes for d in others] == [0, 0]
    (suspect,) = claim(store, edition, "b", now=NOW, lease=LEASE, limit=10, suspects=True)
    assert suspect.crashes == 1 and suspect.id < min(d.id for d in others)


def test_S8_a_row_whose_sender_stops_three_times_while_holding_it_is_parked(store: Store) -> None:
    edition = edition_with(store, 2)
    poison = claim(store, edition, "a", now=NOW, lease=timedelta(seconds=1), limit=1)[0]
    for lapse in range(1, MAX_CRASHES):
        time.sleep(1.1)  # the sender was killed while it held the row: its lease runs out
        (again,) = claim(store, edition, f"sender{lapse}", now=NOW, lease=timedelta(seconds=1), limit=1, suspects=True)
        assert (again.id, again.crashes) == (poison.id, lapse)
    time.sleep(1.1)
    lapsed = store.expire_claims(edition, now=NOW)  # the third lapse: parked, not pending
    assert (lapsed.requeued, lapsed.parked) == (0, ((poison.id, poison.subscriber_id),))
    with store.engine.connect() as conn:
        row = conn.execute(select(t.deliveries).where(t.deliveries.c.id == poison.id)).one()
    assert (row.status, row.crashes, row.worker) == (FAILED, MAX_CRASHES, None)
    assert "stopped while making its message 3 times" in row.last_error
    # The other row was never in a crashed sender's hands: a plain claim takes it.
    assert [d.crashes for d in claim(store, edition, "b", now=NOW, lease=LEASE, limit=10)] == [0]


def test_S8_a_sender_stopped_while_its_message_is_on_the_wire_counts_no_crash_and_is_never_parked(
    store: Store,
) -> None:
    # The audit's t7: a slow relay holds one reader's message and the sender is killed (a deploy,
    # docker stop) again and again. The message did not kill it: it goes again each time.
    edition = edition_with(store, 3)
    for lapse in range(MAX_CRASHES + 1):
        held = claim(store, edition, f"sender{lapse}", now=NOW, lease=timedelta(seconds=1), limit=10)
        assert [d.crashes for d in held] == [0, 0, 0]
        first = held[0]
        assert record(store, [], f"sender{lapse}", now=NOW, on_wire=[first.id]) == 0
        time.sleep(1.1)
        lapsed = store.expire_claims(edition, now=NOW)
        # the second row, which it would have made next, counts the crash: one bystander at most
        assert (lapsed.requeued, lapsed.on_wire, lapsed.crashed, lapsed.parked) == (3, 1, 1, ())
        with store.engine.begin() as conn:
            conn.execute(t.deliveries.update().values(crashes=0))  # only the row on the wire is under test
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.deliveries.c.status, t.deliveries.c.on_wire)).all()
    assert set(rows) == {(PENDING, False)}


def test_results_move_only_rows_their_sender_still_holds(store: Store) -> None:
    edition = edition_with(store, 2)
    first, second = claim(store, edition, "a", now=NOW, lease=LEASE, limit=10)
    assert record(store, [Mark(first.id, SENT, message_id="<m@x>")], "b", now=NOW) == 0
    assert record(store, [Mark(first.id, SENT, message_id="<m@x>")], "a", now=NOW) == 1
    assert record(store, [Mark(first.id, PENDING, error="late duplicate")], "a", now=NOW) == 0
    assert release(store, "a", now=NOW) == 1  # only the unsent one goes back
    assert store.delivery_counts(edition) == {SENT: 1, PENDING: 1}
    with store.engine.connect() as conn:
        sent = conn.execute(select(t.deliveries).where(t.deliveries.c.id == first.id)).one()
    assert (sent.attempts, sent.message_id, sent.sent_at) == (1, "<m@x>", NOW)


def test_B1_claims_whose_lease_ran_out_return_to_pending_on_any_host_and_live_ones_stay(store: Store) -> None:
    edition = edition_with(store, 4)
    start = store.database_now()
    claim(store, edition, "gone-host:4242:a", now=NOW, lease=timedelta(seconds=1), limit=2)  # it stopped renewing
    claim(store, edition, "this-host:1:b", now=NOW, lease=LEASE, limit=1)  # renewed since
    held = store.claims_held(edition)
    assert held is not None and start + timedelta(seconds=1) <= held < start + timedelta(seconds=5)
    assert store.expire_claims(edition, now=NOW + timedelta(days=1)).count == 0  # a fast clock expires nothing
    time.sleep(1.2)
    assert store.expire_claims(edition, now=NOW).count == 2
    assert store.delivery_counts(edition) == {PENDING: 3, SENDING: 1}
    held = store.claims_held(edition)
    assert held is not None and held >= start + LEASE


def test_an_edition_with_claimed_rows_is_not_complete(store: Store) -> None:
    edition = edition_with(store, 1)
    (row,) = claim(store, edition, "a", now=NOW, lease=LEASE, limit=10)
    assert store.close_edition_if_done(edition) is False
    assert [d.id for d in store.iter_deliveries(edition)] == [row.id]  # the daemon sees it unfinished
    record(store, [Mark(row.id, SENT)], "a", now=NOW)
    assert store.close_edition_if_done(edition) is True


# --------------------------------------------------------------------------- `digest send` with workers


def write_config(
    tmp: Path, *, smtp_port: int, subscribers: int, workers: int, connections: int = 4, database: str | None = None
) -> Path:
    database = database or f"sqlite:///{tmp / 'digest.sqlite'}"
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "UTC"
database = "{database}"
base_url = "https://review.example"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "review@review.example"
timeout = 10
connections = {connections}
workers = {workers}
claim_lease = "2s"
""",
        encoding="utf-8",
    )
    store = Store(database)
    feed = store.add_feed(_feed_spec(), now=NOW - timedelta(days=1))
    from digest.model import ParsedItem

    store_items(
        store,
        feed.id,
        [
            ParsedItem(
                key="k1",
                title="Harbour opens",
                url="https://n.example/1",
                summary_html="<p>s</p>",
                summary_text="s",
                published=NOW,
                content_hash="h",
            )
        ],
        now=NOW,
    )
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.subscribers),
            [
                {
                    "email": f"reader{i}@x.example",
                    "status": "active",
                    "permanent_failures": 0,
                    "from_config": False,
                    "sections": None if i % 2 else ["Other"],
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(subscribers)
            ],
        )
    store.close()
    return config


def _feed_spec() -> FeedSpec:
    return FeedSpec(url="https://n.example/rss")


def digest_send(config: Path, *args: str, start: datetime = NOW) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_NOW": (start + timedelta(minutes=5)).isoformat()}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "-v", "--config", str(config), "send", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def by_recipient(smtp: SmtpServer) -> Counter[str]:
    return Counter(m.rcpt_tos[0] for m in smtp.messages)


def test_digest_send_with_two_sending_processes_reaches_everyone_once(tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=600, workers=2)
        proc = digest_send(config)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "edition 2026-05-04 UTC: 600 sent, 0 skipped, 0 failed, 0 deferred (complete)" in out
        assert err.count("sending process") == 2, err  # two processes did it
        got = by_recipient(smtp)
        assert len(got) == 600 and set(got.values()) == {1}
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        assert store.delivery_counts() == {SENT: 600}
        proc = digest_send(config)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "0 sent" in out and len(smtp.messages) == 600


def test_sending_processes_started_before_the_build_and_not_needed_go_home() -> None:
    """`digest send` starts its other processes before building the editions (their start-up
    overlaps the build); one given no job (fewer rows than expected, or a run stopped early) is
    dismissed and exits by itself, having claimed nothing."""
    import asyncio

    from digest.pipeline.workers import _Starting

    async def start_and_dismiss() -> list[int | None]:
        starting = _Starting(2)
        await starting.dismiss()
        return [proc.exitcode for proc in starting.procs]

    assert asyncio.run(asyncio.wait_for(start_and_dismiss(), 60)) == [0, 0]


def test_B1_two_digest_send_runs_racing_on_one_database_send_every_row_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    """The claim race on the production path: two `digest send`, each with two sending processes,
    started together on the same database (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: its write lock)."""
    with SmtpServer(Scripted(stall=0.02)) as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=1200, workers=2, database=store.url)
        runs = [digest_send(config), digest_send(config)]
        outs = [proc.communicate(timeout=180) for proc in runs]
        for proc, (_, err) in zip(runs, outs, strict=True):
            assert proc.returncode == 0, err
        got = by_recipient(smtp)
    assert len(got) == 1200 and set(got.values()) == {1}, "a subscriber got none, or two"
    assert store.delivery_counts() == {SENT: 1200}
    sent = [int(re.search(r"UTC: (\d+) sent", out).group(1)) for out, _ in outs]  # type: ignore[union-attr]
    assert sum(sent) == 1200 and all(n > 0 for n in sent), f"no race happened: {sent}"


def test_S4_sigterm_stops_every_sending_process_and_a_rerun_finishes_without_duplicates(tmp_path: Path) -> None:
    with SmtpServer(Scripted(stall=0.02)) as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=600, workers=2)
        proc = digest_send(config)
        _wait(lambda: len(smtp.messages) >= 60, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 4, err  # messages left to send
        received = len(smtp.messages)
        assert received < 600, "the stop came too late to test anything"
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        # Every message the server took is recorded; no row is left claimed by a stopped process.
        assert store.delivery_counts() == {SENT: received, PENDING: 600 - received}
        assert "pending rows remain" in out
        proc = digest_send(config)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    got = by_recipient(smtp)
    assert len(got) == 600 and set(got.values()) == {1}


def test_S1_kill_9_of_digest_send_stops_its_workers_and_a_rerun_reaches_everyone(tmp_path: Path) -> None:
    with SmtpServer(Scripted(stall=0.02)) as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=600, workers=2)
        proc = digest_send(config)
        _wait(lambda: len(smtp.messages) >= 60, proc)
        proc.kill()
        proc.communicate(timeout=30)
        # The orphaned sending processes notice, finish what is on the wire and stop.
        _wait_quiet(smtp)
        assert len(smtp.messages) < 600, "the kill came too late to test anything"
        proc = digest_send(config)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "(complete)" in out
    got = by_recipient(smtp)
    assert len(got) == 600
    assert sum(got.values()) - 600 <= 4  # at most the messages on the 4 connections at the kill
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    assert store.delivery_counts() == {SENT: 600}


def _wait(condition: object, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _wait_quiet(smtp: SmtpServer, quiet: float = 1.5, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    last, since = len(smtp.messages), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the orphaned sending processes kept sending"
        time.sleep(0.05)
        if len(smtp.messages) != last:
            last, since = len(smtp.messages), time.monotonic()


def test_S8_a_row_parked_at_a_takeover_counts_as_failed_in_the_run_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The audit's finding 3: the run said "0 failed" and nothing named the parked row.
    edition = EditionRecord(7, NOW.date(), "UTC", NOW, None, NOW, "open")
    report = SendReport(edition.id, edition.day, edition.timezone, created=False)
    with caplog.at_level(logging.WARNING, logger="digest.pipeline.sender"):
        taken_over(edition, Lapsed(requeued=2, on_wire=1, crashed=0, parked=((41, 12),)), report)
    assert report.failed == 1 and report.errors == [
        "subscriber 12: parked: its sender stopped while making its message 3 times"
    ]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2
    assert "2 messages held by a sender that stopped" in lines[0] and "1 of them were on the wire" in lines[0]
    assert "row=41 subscriber=12 parked" in lines[1]


# --------------------------------------------------------------------------- the schema, checked by every sender


def move_schema(url: str, revision: str = "9999") -> None:
    """What `digest db upgrade` of a newer digest leaves: the database at a revision this code lacks."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def the_open_error(url: str) -> str:
    """The one line a process started now gets (`Store` at start: `digest send`, the daemon)."""
    with pytest.raises(OutdatedDatabaseError) as refused:
        Store(url)
    return refused.value.message


def test_a_pass_begun_after_the_schema_moved_sends_nothing_and_says_so_in_one_line(tmp_path: Path) -> None:
    """A daemon learns of an upgrade at its next heartbeat: a send pass that began before then sent
    a whole edition with code older than the schema."""
    with SmtpServer() as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=10, workers=1)
        settings = cfg.load(config, env={})
        store = Store(settings.database_url)  # opened while the schema was this code's
        try:
            move_schema(settings.database_url)
            with pytest.raises(OutdatedDatabaseError) as refused:
                asyncio.run(
                    send_day(settings, store, day=NOW.date(), clock=lambda: NOW, transport=SmtpTransport, workers=1)
                )
        finally:
            store.close()
        assert smtp.messages == []
    assert refused.value.message == the_open_error(settings.database_url)


def test_a_sending_process_that_meets_a_moved_schema_stops_the_run_with_the_same_one_line(tmp_path: Path) -> None:
    """A spawned sending process opened the database with no word to its parent: a schema moved
    since the parent's check ended the run with "Sending process N stopped with exit code 1 before
    it reported" and a traceback, not the error that says what to do."""
    with SmtpServer() as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=1200, workers=2)
        settings = cfg.load(config, env={})
        store = Store(settings.database_url)
        try:
            with pytest.raises(OutdatedDatabaseError) as refused:
                asyncio.run(
                    send_day(
                        settings,
                        store,
                        day=NOW.date(),
                        clock=lambda: NOW + timedelta(minutes=5),
                        transport=SmtpTransport,
                        workers=2,
                        # Runs first in the spawned process: the upgrade lands between the checks.
                        setup=functools.partial(move_schema, settings.database_url),
                    )
                )
        finally:
            store.close()
    assert refused.value.message == the_open_error(settings.database_url)
