"""Sending fast without giving up a guarantee: outbox claims, group commits, sending processes,
and the cheap per-message paths (dot-stuffing, plain address headers).

Real parts only: SQLite files (and PostgreSQL when configured), the `digest` command as a process,
aiosmtpd on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from pathlib import Path

from smtpservers import Scripted, SmtpServer
from sqlalchemy import insert

from digest import message
from digest.config import SmtpSettings
from digest.deliver import data_block
from digest.model import FeedSpec
from digest.pipeline.send import release_orphans, worker_alive, worker_name
from digest.pipeline.workers import plan_workers, shares
from digest.store import PENDING, SENT, Store
from digest.store import schema as t
from digest.store.editions import SENDING, Mark

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
    edition, _ = store.create_edition(
        day=date(2026, 5, 4),
        timezone="UTC",
        default_timezone="UTC",
        cutoff=NOW,
        now=NOW,
        max_item_age=timedelta(days=2),
        classify=lambda item: "World",
    )
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
    a = store.claim_deliveries(edition, worker="a", now=NOW, lease=LEASE, limit=10)
    b = store.claim_deliveries(edition, worker="b", now=NOW, lease=LEASE, limit=10)
    c = store.claim_deliveries(edition, worker="c", now=NOW, lease=LEASE, limit=10)
    ids = [d.id for d in a + b + c]
    assert len(ids) == len(set(ids)) == 25
    assert [len(a), len(b), len(c)] == [10, 10, 5] and all(d.status == SENDING for d in a)
    assert store.claim_deliveries(edition, worker="d", now=NOW, lease=LEASE, limit=10) == []


def test_B1_a_claim_whose_lease_ran_out_is_claimed_again(store: Store) -> None:
    edition = edition_with(store, 3)
    store.claim_deliveries(edition, worker="a", now=NOW, lease=LEASE, limit=10)
    assert (
        store.claim_deliveries(edition, worker="b", now=NOW + LEASE - timedelta(seconds=1), lease=LEASE, limit=10) == []
    )
    again = store.claim_deliveries(edition, worker="b", now=NOW + LEASE + timedelta(seconds=1), lease=LEASE, limit=10)
    assert len(again) == 3


def test_results_move_only_rows_their_sender_still_holds(store: Store) -> None:
    edition = edition_with(store, 2)
    first, second = store.claim_deliveries(edition, worker="a", now=NOW, lease=LEASE, limit=10)
    assert store.record_deliveries([Mark(first.id, SENT, message_id="<m@x>")], worker="b", now=NOW) == 0
    assert store.record_deliveries([Mark(first.id, SENT, message_id="<m@x>")], worker="a", now=NOW) == 1
    assert store.record_deliveries([Mark(first.id, PENDING, error="late duplicate")], worker="a", now=NOW) == 0
    assert store.release_claims("a", now=NOW) == 1  # only the unsent one goes back
    assert store.delivery_counts(edition) == {SENT: 1, PENDING: 1}
    sent = store.get_delivery(edition, first.subscriber_id)
    assert sent is not None and (sent.attempts, sent.message_id, sent.sent_at) == (1, "<m@x>", NOW)


def test_B1_claims_of_a_process_that_is_gone_return_to_pending_and_a_live_ones_stay(store: Store) -> None:
    edition = edition_with(store, 4)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = f"{socket.gethostname()}:{dead.pid}"  # that pid no longer runs
    me = worker_name()
    assert worker_alive(me) is True and worker_alive(gone) is False and worker_alive("elsewhere:1") is None
    store.claim_deliveries(edition, worker=gone, now=NOW, lease=LEASE, limit=2)
    store.claim_deliveries(edition, worker=me, now=NOW, lease=LEASE, limit=1)
    store.claim_deliveries(edition, worker="another-host:1.1", now=NOW, lease=LEASE, limit=1)
    assert release_orphans(store, edition, now=NOW) == 2
    assert store.delivery_counts(edition) == {PENDING: 2, SENDING: 2}


def test_an_edition_with_claimed_rows_is_not_complete(store: Store) -> None:
    edition = edition_with(store, 1)
    (row,) = store.claim_deliveries(edition, worker="a", now=NOW, lease=LEASE, limit=10)
    assert store.close_edition_if_done(edition) is False
    assert [d.id for d in store.iter_deliveries(edition)] == [row.id]  # the daemon sees it unfinished
    store.record_deliveries([Mark(row.id, SENT)], worker="a", now=NOW)
    assert store.close_edition_if_done(edition) is True


# --------------------------------------------------------------------------- `digest send` with workers


def write_config(tmp: Path, *, smtp_port: int, subscribers: int, workers: int, connections: int = 4) -> Path:
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "UTC"
database = "sqlite:///{tmp / "digest.sqlite"}"
base_url = "https://review.example"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "review@review.example"
timeout = 10
connections = {connections}
workers = {workers}
""",
        encoding="utf-8",
    )
    store = Store(f"sqlite:///{tmp / 'digest.sqlite'}")
    feed = store.add_feed(_feed_spec(), now=NOW - timedelta(days=1))
    from digest.model import ParsedItem

    store.upsert_items(
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


def test_S4_sigterm_stops_every_sending_process_and_a_rerun_finishes_without_duplicates(tmp_path: Path) -> None:
    with SmtpServer(Scripted(stall=0.02)) as smtp:
        config = write_config(tmp_path, smtp_port=smtp.port, subscribers=600, workers=2)
        proc = digest_send(config)
        _wait(lambda: len(smtp.messages) >= 60, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
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
