"""The outbox keeps its promise through crashes, signals and a misbehaving relay.

reliability.md group S (S1-S4, S7, S9-S11) and M2, M3, M11, M12 at the pipeline level: each test
runs `digest send` as a real process (`python -m digest`) against a real aiosmtpd server on
127.0.0.1 and a real SQLite file, and judges only what the server received and what the database
holds. Faults are injected from the SMTP server's own thread at an exact point of the conversation
(the Nth message, the first MAIL, right after a 250), so no test depends on timing. A crash is
SIGKILL to the process group of `digest send`: the process and anything it started die at once,
as in a power cut or `systemctl kill` (S1 also kills the main process alone, as `kill -9 PID`).
The database may be left with rows `pending` or `sending` (claimed): the tests only require that
the next run finishes them.

"Exactly once" is impossible over SMTP (RFC 5321 section 4.5.3.2.6), so the promise under test is
"nobody missed; a duplicate only of a message that was on the wire at the crash, and then with the
same Message-ID".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import sqlite3
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from digestprocess import kill_sessions, launch
from httpservers import FeedServer
from smtpservers import Received, Scripted, SmtpServer, Turn

from digest.store import MAX_CRASHES

NOW = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
DAY = NOW.date()
SECRET = "outbox-test-secret-outbox-test-secret"
SECTIONS = {"World": "World", "Business": "Economy", "Sport": "Sport", "Culture": "Culture"}

Subscriber = tuple[str, Sequence[str] | None]  # (email, sections; None: all)
UNFINISHED = {"pending", "sending"}  # outbox states that the next run must finish


# --------------------------------------------------------------------------- feed and config


def rss(now: datetime, tag: str = "") -> bytes:
    """Three fresh items (World, Economy, Sport; nothing for Culture), unique per `tag`."""
    stamp = format_datetime(now - timedelta(hours=1))
    stories = [
        ("World", f"Council debates tram fares {tag}", "world/trams"),
        ("Economy", f"Port approves a new grain terminal {tag}", "business/grain"),
        ("Sport", f"Harbour FC win the regional cup {tag}", "sport/cup"),
    ]
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{path}{tag}</link>"
        f"<guid>https://news.example.org/{path}{tag}</guid><category>{cat}</category>"
        f"<pubDate>{stamp}</pubDate><description>About {title}.</description></item>"
        for cat, title, path in stories
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour News</title>'
        f"<link>https://news.example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def readers(n: int) -> list[Subscriber]:
    return [(f"reader{i:04d}@example.org", None) for i in range(1, n + 1)]


@dataclass
class Run:
    code: int
    out: str
    err: str


class Site:
    """One deployment: digest.toml and digest.sqlite in `folder`, fed by one feed URL.

    Every command runs a minute after the previous one (DIGEST_NOW), as an operator's would.
    """

    def __init__(self, folder: Path, feed_url: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.feed_url = folder, feed_url
        self.config, self.db = folder / "digest.toml", folder / "digest.sqlite"
        self.minute = 0
        self.password: str | None = None
        self.procs: list[asyncio.subprocess.Process] = []

    def configure(
        self,
        *,
        smtp_port: int,
        subscribers: Sequence[Subscriber],
        connections: int = 4,
        circuit_breaker: int = 50,
        username: str | None = None,
    ) -> None:
        lines = [
            "[digest]",
            'title = "Morning Review"',
            'timezone = "UTC"',
            f'database = "sqlite:///{self.db}"',
            'base_url = "https://review.example"',
            "allow_private_addresses = true",
            f'secret = "{SECRET}"',
            "[smtp]",
            'host = "127.0.0.1"',
            f"port = {smtp_port}",
            'sender = "Morning Review <review@review.example>"',
            "timeout = 10",
            f"connections = {connections}",
            f"circuit_breaker = {circuit_breaker}",
            'claim_lease = "2s"',  # a killed sender's rows are taken over 2 s later, not a minute
        ]
        if username:
            lines.append(f'username = "{username}"')
        for name, category in SECTIONS.items():
            lines += ["[[sections]]", f'name = "{name}"', f'categories = ["{category}"]']
        lines += ["[[feeds]]", f'url = "{self.feed_url}"']
        for email, sections in subscribers:
            lines += ["[[subscribers]]", f'email = "{email}"']
            if sections is not None:
                lines.append(f"sections = {json.dumps(list(sections))}")
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    async def start(self, *args: str, now: datetime | None = None) -> asyncio.subprocess.Process:
        self.minute += 1
        env = {
            "DIGEST_NOW": (now or NOW + timedelta(minutes=self.minute)).isoformat(),
            "DIGEST_SMTP_PASSWORD": self.password,  # None: not the test runner's either
        }
        # A session of its own, so that a crash can take the process group (the process and any
        # worker it started) and the fixture can clean up whatever a failing test left running.
        proc = await launch(self.config, *args, env=env, own_session=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    async def finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> Run:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    async def run(self, *args: str, now: datetime | None = None) -> Run:
        return await self.finish(await self.start(*args, now=now))

    async def poll(self, now: datetime | None = None) -> None:
        res = await self.run("poll", now=now)
        assert res.code == 0 and "0 failed" in res.out, res.out + res.err

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    def statuses(self, day: date = DAY) -> dict[str, str]:
        """email -> the status of their outbox row for the edition of `day`."""
        return dict(
            self.query(
                "SELECT s.email, d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                " JOIN editions e ON e.id = d.edition_id WHERE e.day = ?",
                day.isoformat(),
            )
        )

    def counts(self, day: date = DAY) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for status in self.statuses(day).values():
            out[status] += 1
        return dict(out)

    def progress(self, day: date = DAY) -> dict[str, int]:
        """Like counts(), with rows not yet done ("pending", or "sending" under a sender's claim) as
        "unfinished": which of the two a crash or a stop leaves is the sender's business."""
        out: dict[str, int] = defaultdict(int)
        for status, n in self.counts(day).items():
            out["unfinished" if status in UNFINISHED else status] += n
        return dict(out)

    def edition_status(self, day: date = DAY) -> str:
        (row,) = self.query("SELECT status FROM editions WHERE day = ?", day.isoformat())
        return str(row[0])

    def use_secret(self) -> None:
        """Give the site secret before the first edition, so two databases make the same messages.

        [digest] secret = ... is set in the config too; this makes the comparison independent of
        whether the pipeline reads it (it reads the stored one).
        """
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn, conn:
            conn.execute("DELETE FROM meta WHERE key = 'secret'")
            conn.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", (SECRET,))


@pytest.fixture
async def feed() -> AsyncIterator[FeedServer]:
    async with FeedServer() as srv:
        srv.serve("/news.xml", rss(NOW))
        yield srv


@pytest.fixture
async def site(tmp_path: Path, feed: FeedServer) -> AsyncIterator[Site]:
    s = Site(tmp_path / "site", feed.url("/news.xml"))
    try:
        yield s
    finally:
        await kill_sessions(s.procs)


# --------------------------------------------------------------------------- the fault server


class Faults(Scripted):
    """Scripted, plus hooks run in the server's thread at exact points of the conversation.

    on_data(n): the DATA terminator of the nth message arrived (it is recorded, no reply yet).
    after_reply(n): return True to have the reply to the nth message written to the client's
        socket while the client is stopped (SIGSTOP), and `killer` fired right after.
    on_mail(): return True to leave that MAIL unanswered (the hook killed the client).
    """

    def __init__(
        self,
        *,
        on_data: Callable[[int], None] | None = None,
        after_reply: Callable[[int], bool] | None = None,
        killer: Trigger | None = None,
        on_mail: Callable[[], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_data, self.after_reply, self.on_mail = on_data, after_reply, on_mail
        self.killer = killer
        self._numbers: dict[int, int] = {}

    def keep(self, server: SMTP, envelope: Envelope) -> None:
        super().keep(server, envelope)
        n = len(self.messages)
        self._numbers[id(envelope)] = n
        if self.on_data is not None:
            self.on_data(n)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.on_mail is not None and self.on_mail():
            await asyncio.Event().wait()  # cancelled when the dead client's connection is lost
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        n = self._numbers.pop(id(envelope), 0)
        if (
            self.after_reply is not None
            and self.after_reply(n)
            and isinstance(server.transport, asyncio.WriteTransport)
        ):
            assert self.killer is not None and self.killer.pid is not None
            # Stopped first, so that the client cannot act on the 250 however the threads of this
            # process are scheduled; then the 250 goes onto its socket, then it dies.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.killer.pid, signal.SIGSTOP)
            server.transport.write(f"{reply}\r\n".encode())
            self.killer.fire()
            await asyncio.Event().wait()  # cancelled when the dead client's connection is lost
        return reply


def crash(pid: int) -> None:
    """kill -9 the whole of `digest send` (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class Trigger:
    """Fires `action(pid)` once, from the SMTP server's thread, when its condition first holds."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.action = action
        self.pid: int | None = None
        self.fired = threading.Event()

    def fire(self) -> bool:
        if self.pid is None or self.fired.is_set():
            return False
        self.fired.set()
        self.action(self.pid)
        return True

    def at_message(self, number: int) -> Callable[[int], None]:
        def hook(n: int) -> None:
            if n == number:
                self.fire()

        return hook


# --------------------------------------------------------------------------- what arrived


def headers(data: bytes) -> Any:
    return BytesHeaderParser().parsebytes(data)


def by_recipient(messages: list[Received]) -> dict[str, list[Received]]:
    out: dict[str, list[Received]] = defaultdict(list)
    for m in messages:
        out[m.rcpt_tos[0]].append(m)
    return out


def message_ids(messages: list[Received]) -> dict[str, list[str]]:
    return {rcpt: [str(headers(m.data)["Message-ID"]) for m in got] for rcpt, got in by_recipient(messages).items()}


_LINK_TOKEN = re.compile(r"/([up])/[A-Za-z0-9_.-]+")


def readable_without_links(data: bytes) -> list[tuple[str, str]]:
    """The message as (header or part, decoded text) pairs, Date and Message-ID dropped and each
    /u/ and /p/ token replaced: links carry the subscription's random public id, which differs
    between two databases even for the same address."""
    msg = message_from_bytes(data, policy=policy.default)
    out = [(k, _LINK_TOKEN.sub(r"/\1/<token>", str(v))) for k, v in msg.items() if k not in ("Date", "Message-ID")]
    for part in msg.walk():
        if not part.is_multipart():
            out.append((part.get_content_type(), _LINK_TOKEN.sub(r"/\1/<token>", str(part.get_content()))))
    return out


def without(data: bytes, *names: str) -> bytes:
    """The message with the named header fields (and their folded lines) removed."""
    head, sep, body = data.partition(b"\r\n\r\n")
    keep: list[bytes] = []
    dropping = False
    lowered = tuple(n.lower().encode() + b":" for n in names)
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                keep.append(line)
            continue
        dropping = line.lower().startswith(lowered)
        if not dropping:
            keep.append(line)
    return b"\r\n".join(keep) + sep + body


def text_part(data: bytes) -> str:
    msg = message_from_bytes(data, policy=policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def one_error_line_and_a_hint(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert lines[errors[0] + 1].lstrip().startswith("hint: "), err


# --------------------------------------------------------------------------- S: crash safety


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
                if int(fields[2]) == pgid and fields[0] != b"Z":
                    members.append(int(entry.name))
    return members


async def until_gone(pgid: int, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if not group_members(pgid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"processes {group_members(pgid)} of the killed `digest send` are still running")


@pytest.mark.parametrize("target", ["process-group", "main-process"])
async def test_S1_kill_9_mid_send_of_1000_then_a_rerun_reaches_everyone_with_only_same_id_duplicates(
    site: Site, target: str
) -> None:
    # The whole group dies as in a power cut; the main process alone, as with `kill -9 PID`:
    # then any sending process it started must notice, finish what is on the wire and stop.
    trigger = Trigger(crash if target == "process-group" else lambda pid: os.kill(pid, signal.SIGKILL))
    handler = Faults(stall=0.005, on_data=trigger.at_message(300))
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(1000), connections=4)
        await site.poll()
        proc = await site.start("send")
        trigger.pid = proc.pid
        first = await site.finish(proc)
        assert first.code == -signal.SIGKILL, first.err
        await until_gone(proc.pid)
        received = len(smtp.messages)
        assert received >= 300
        if target == "process-group":
            assert received < 1000
        at_kill = site.statuses()
        recorded = {email for email, status in at_kill.items() if status == "sent"}
        assert len(at_kill) == 1000 and set(at_kill.values()) <= {"sent", *UNFINISHED}
        # A row is sent only after the server's 250, so nothing recorded was missing at the server.
        assert recorded <= {m.rcpt_tos[0] for m in smtp.messages}
        assert site.edition_status() == ("open" if received < 1000 else "complete")

        second = await site.run("send")
        assert second.code == 0, second.err

    ids = message_ids(smtp.messages)
    assert sorted(ids) == [email for email, _ in readers(1000)], "every subscriber has the edition"
    assert all(len(set(got)) == 1 for got in ids.values()), "a re-send is the same message (A8)"
    doubled = {rcpt for rcpt, got in ids.items() if len(got) > 1}
    assert all(len(got) <= 2 for got in ids.values())
    assert len(doubled) <= 4, f"at most the 4 messages in flight at the kill are doubled, not {len(doubled)}"
    assert not doubled & recorded, "a row recorded as sent is never sent again"
    assert site.counts() == {"sent": 1000} and site.edition_status() == "complete"
    stored = dict(
        site.query("SELECT s.email, d.message_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id")
    )
    assert all(stored[rcpt] == got[0] for rcpt, got in ids.items()), "the row names the Message-ID sent"


async def test_S2_a_crash_between_the_250_and_the_commit_gives_one_identical_duplicate(site: Site) -> None:
    trigger = Trigger(crash)
    # One connection: message 7's 250 is on the client's socket when it dies; nothing else is in flight.
    handler = Faults(after_reply=lambda n: n == 7 and not trigger.fired.is_set(), killer=trigger)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(20), connections=1)
        await site.poll()
        proc = await site.start("send")
        trigger.pid = proc.pid
        first = await site.finish(proc)
        assert first.code == -signal.SIGKILL, first.err
        victim = smtp.messages[6].rcpt_tos[0]
        assert len(smtp.messages) == 7
        assert site.progress() == {"sent": 6, "unfinished": 14}
        assert site.statuses()[victim] in UNFINISHED, "the 250 arrived but was never recorded"
        handler.after_reply = None

        second = await site.run("send")
        assert second.code == 0, second.err

    got = by_recipient(smtp.messages)
    assert sorted(got) == [email for email, _ in readers(20)]
    assert {rcpt: len(msgs) for rcpt, msgs in got.items() if len(msgs) != 1} == {victim: 2}
    original, again = got[victim]
    assert headers(original.data)["Message-ID"] == headers(again.data)["Message-ID"]
    assert without(original.data, "Date") == without(again.data, "Date"), (
        "the re-send is byte-identical apart from Date (B4)"
    )
    assert site.counts() == {"sent": 20} and site.edition_status() == "complete"


S3_SUBSCRIBERS: list[Subscriber] = [
    *readers(10),
    ("sport@example.org", ["Sport"]),
    ("world@example.org", ["World", "Sport"]),
    ("money@example.org", ["Business"]),
]


async def test_S3_a_crash_after_the_edition_is_built_sends_everything_once_as_a_clean_run_would(
    tmp_path: Path, feed: FeedServer
) -> None:
    crashed, clean = Site(tmp_path / "crashed", feed.url("/news.xml")), Site(tmp_path / "clean", feed.url("/news.xml"))
    trigger = Trigger(crash)
    handler = Faults(on_mail=trigger.fire)  # the first MAIL: built, nothing sent yet
    try:
        async with SmtpServer(handler) as smtp, SmtpServer() as reference:
            crashed.configure(smtp_port=smtp.port, subscribers=S3_SUBSCRIBERS)
            clean.configure(smtp_port=reference.port, subscribers=S3_SUBSCRIBERS)
            for s in (crashed, clean):
                await s.poll()
                s.use_secret()

            proc = await crashed.start("send")
            trigger.pid = proc.pid
            first = await crashed.finish(proc)
            assert first.code == -signal.SIGKILL, first.err
            assert trigger.fired.is_set() and smtp.messages == []
            assert crashed.edition_status() == "open"
            assert crashed.progress() == {"unfinished": len(S3_SUBSCRIBERS)}, "built, with one row per subscriber"

            handler.on_mail = None
            again = await crashed.run("send")
            assert again.code == 0, again.err
            reference_run = await clean.run("send", now=NOW + timedelta(minutes=2))
            assert reference_run.code == 0, reference_run.err
    finally:
        for proc in crashed.procs:
            if proc.returncode is None:
                crash(proc.pid)
                await proc.wait()

    sent, expected = by_recipient(smtp.messages), by_recipient(reference.messages)
    assert sorted(sent) == sorted(expected) == sorted(email for email, _ in S3_SUBSCRIBERS)
    assert all(len(msgs) == 1 for msgs in sent.values()), "each subscriber once"
    for rcpt, (message,) in sent.items():
        (twin,) = expected[rcpt]
        assert readable_without_links(message.data) == readable_without_links(twin.data), rcpt
    assert crashed.edition_status() == "complete"


async def test_S8_S2_a_sender_killed_while_a_relay_holds_a_message_loses_no_one_and_logs_the_re_sends(
    site: Site,
) -> None:
    # The audit's t7: the sender is killed (a deploy, docker stop, the OOM killer) while the relay
    # holds one reader's message, three times over. That message did not kill it: it was on the
    # wire, so no crash is counted and nothing is parked; it goes again, and the takeover says so.
    # (A message that kills its sender while being made is parked at its third crash:
    # test_sending's S8 tests and test_faults.)
    victim = readers(20)[4][0]
    pid: list[int] = []

    def on_data(n: int) -> None:
        if handler.messages[n - 1].rcpt_tos == (victim,) and pid:
            crash(pid.pop())

    handler = Faults(on_data=on_data)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(20), connections=1)
        await site.poll()
        runs = []
        for _ in range(MAX_CRASHES):
            proc = await site.start("send")
            pid.append(proc.pid)
            runs.append(await site.finish(proc))
            await until_gone(proc.pid)
            await asyncio.sleep(2.2)  # the killed sender's lease (claim_lease = 2s) runs out
        last = await site.run("send")

    assert [run.code for run in runs] == [-signal.SIGKILL] * MAX_CRASHES
    assert last.code == 0 and "0 failed" in last.out and "(complete)" in last.out, last.out
    for run in [*runs[1:], last]:  # each takeover is logged, with the possible duplicate (S2)
        taken = [line for line in run.err.splitlines() if "held by a sender that stopped" in line]
        assert len(taken) == 1 and "1 of them were on the wire" in taken[0], run.err
    got = by_recipient(smtp.messages)
    assert {rcpt: len(msgs) for rcpt, msgs in got.items() if rcpt != victim} == {
        email: 1 for email, _ in readers(20) if email != victim
    }, "everyone else has the edition once"
    assert len(got[victim]) == MAX_CRASHES + 1 and len(set(message_ids(smtp.messages)[victim])) == 1
    assert site.counts() == {"sent": 20} and site.edition_status() == "complete"
    assert site.query("SELECT max(crashes) FROM deliveries") == [(1,)], "at most the next row in line"


class HoldsOne(Scripted):
    """Keeps its reply to `held`'s message until `others` other messages have arrived (or `cap`
    seconds passed, which only bounds a failing test), and says which came first."""

    def __init__(self, held: str, others: int, cap: float = 20.0) -> None:
        super().__init__()
        self.held, self.others, self.cap = held, others, cap
        self.released_by_others: bool | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if envelope.rcpt_tos != [self.held]:
            return await super().handle_DATA(server, session, envelope)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cap
        while loop.time() < deadline and self._others_in() < self.others:
            await asyncio.sleep(0.02)
        self.released_by_others = self._others_in() >= self.others
        return await super().handle_DATA(server, session, envelope)

    def _others_in(self) -> int:
        return sum(1 for m in self.messages if m.rcpt_tos != (self.held,))


async def test_S8_a_suspect_on_a_slow_relay_holds_back_none_of_the_others(site: Site) -> None:
    # The audit's t30: a sender killed with a message on the wire leaves the next row in line a
    # suspect (it may have been the one being made). The next run sends the suspect alone, and
    # the relay keeps it long; the 30 other messages of the edition go meanwhile, over the other
    # connections, instead of waiting for its answer (up to 300 s) and then going.
    subscribers = readers(36)
    victim, suspect = subscribers[4][0], subscribers[5][0]
    pid: list[int] = []

    def on_data(n: int) -> None:
        if killer.messages[n - 1].rcpt_tos == (victim,) and pid:
            crash(pid.pop())

    killer = Faults(on_data=on_data)
    async with SmtpServer(killer) as first:
        site.configure(smtp_port=first.port, subscribers=subscribers, connections=1)
        await site.poll()
        proc = await site.start("send")
        pid.append(proc.pid)
        assert (await site.finish(proc)).code == -signal.SIGKILL
        await until_gone(proc.pid)
    await asyncio.sleep(2.2)  # the killed sender's lease (claim_lease = 2s) runs out

    others = len(subscribers) - 4 - 1  # the first four were sent; the victim goes again
    slow = HoldsOne(suspect, others)
    async with SmtpServer(slow) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=subscribers, connections=4)
        run = await site.run("send")
    assert run.code == 0 and f"{others + 1} sent" in run.out and "(complete)" in run.out, run.out + run.err
    assert slow.released_by_others, "the others were all accepted while the relay kept the suspect"
    assert [m.rcpt_tos[0] for m in smtp.messages][-1] == suspect
    assert site.query(
        "SELECT s.email, d.crashes FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.crashes > 0"
    ) == [(suspect, 1)]
    got = by_recipient(first.messages + smtp.messages)
    assert sorted(got) == sorted(email for email, _ in subscribers), "everyone has the edition"
    assert site.counts() == {"sent": len(subscribers)} and site.edition_status() == "complete"


async def test_S4_sigterm_finishes_and_records_what_is_in_flight_and_leaves_the_edition_open(site: Site) -> None:
    trigger = Trigger(lambda pid: os.kill(pid, signal.SIGTERM))
    handler = Faults(stall=0.02, on_data=trigger.at_message(20))
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(120), connections=4)
        await site.poll()
        proc = await site.start("send")
        trigger.pid = proc.pid
        first = await site.finish(proc, timeout=30)
        assert first.code == 4, first.err  # messages left to send
        assert "pending rows remain" in first.out
        received = len(smtp.messages)
        assert 20 <= received <= 24, "nothing new starts after SIGTERM; at most the 4 in flight finish"
        assert site.progress() == {"sent": received, "unfinished": 120 - received}, (
            "every message the server took is recorded"
        )
        assert site.edition_status() == "open", "a stopped run never marks the edition complete (listmonk#2278)"

        second = await site.run("send")
        assert second.code == 0, second.err
        assert f"{120 - received} sent" in second.out and "(complete)" in second.out

    ids = message_ids(smtp.messages)
    assert len(ids) == 120 and all(len(got) == 1 for got in ids.values())
    assert site.counts() == {"sent": 120} and site.edition_status() == "complete"


async def test_S7_two_sends_started_together_give_every_subscriber_exactly_one_message(site: Site) -> None:
    async with SmtpServer(Scripted(stall=0.01)) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(60), connections=2)
        await site.poll()
        now = NOW + timedelta(minutes=5)
        procs = [await site.start("send", now=now), await site.start("send", now=now)]
        runs = await asyncio.gather(*(site.finish(p) for p in procs))
        assert [r.code for r in runs] == [0, 0], [r.err for r in runs]

    ids = message_ids(smtp.messages)
    assert len(ids) == 60
    assert {rcpt: len(got) for rcpt, got in ids.items() if len(got) != 1} == {}
    assert site.counts() == {"sent": 60} and len(site.query("SELECT id FROM editions")) == 1


def change_subscribers(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> Callable[[int], None]:
    def act(_pid: int) -> None:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn, conn:
            for sql, params in statements:
                assert conn.execute(sql, params).rowcount == 1

    return act


@pytest.mark.parametrize(
    ("count", "connections", "stall"),
    [(230, 4, 0.002), (40, 1, 0.01)],
    ids=["some-200-messages-before-their-turn", "a-few-messages-before-their-turn"],
)
async def test_S9_an_unsubscribe_or_section_change_before_their_turn_is_honoured_and_their_row_skipped(
    site: Site, count: int, connections: int, stall: float
) -> None:
    # The change is made at the 5th message; the victim's row (the last) comes some 200 messages
    # later through four connections, or a few later through one.
    subs = readers(count)
    victim, changer = subs[-1][0], subs[-2][0]
    trigger = Trigger(
        change_subscribers(
            site.db,
            ("UPDATE subscribers SET status = 'unsubscribed' WHERE email = ?", (victim,)),
            ("UPDATE subscribers SET sections = ? WHERE email = ?", (json.dumps(["Sport"]), changer)),
        )
    )
    async with SmtpServer(Faults(stall=stall, on_data=trigger.at_message(5))) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=subs, connections=connections)
        await site.poll()
        (last_id,) = site.query("SELECT max(id) FROM subscribers")[0]
        assert site.query("SELECT email FROM subscribers WHERE id = ?", last_id) == [(victim,)]
        proc = await site.start("send")
        trigger.pid = proc.pid
        run = await site.finish(proc)
        assert run.code == 0, run.err
        assert trigger.fired.is_set()
        assert f"{count - 1} sent, 1 skipped" in run.out and "(complete)" in run.out

    got = by_recipient(smtp.messages)
    assert victim not in got, "an unsubscribe before their turn is honoured (B5)"
    assert site.statuses()[victim] == "skipped"
    text = text_part(got[changer][0].data)
    assert "Harbour FC win the regional cup" in text
    assert "Council debates tram fares" not in text, "their message has the sections they chose mid-run"
    assert "Council debates tram fares" in text_part(got[subs[0][0]][0].data)
    assert len(got) == count - 1 and all(len(m) == 1 for m in got.values())


async def test_S11_a_subscriber_with_nothing_in_their_sections_gets_no_email_and_is_not_retried(site: Site) -> None:
    async with SmtpServer() as smtp:
        site.configure(smtp_port=smtp.port, subscribers=[*readers(3), ("arts@example.org", ["Culture"])])
        await site.poll()
        first = await site.run("send")
        assert first.code == 0, first.err
        assert "3 sent, 1 skipped" in first.out and "(complete)" in first.out
        second = await site.run("send")
        assert second.code == 0, second.err
        assert "0 sent, 0 skipped" in second.out

    assert sorted(by_recipient(smtp.messages)) == [email for email, _ in readers(3)]
    assert len(smtp.messages) == 3
    ((status, attempts),) = site.query(
        "SELECT d.status, d.attempts FROM deliveries d JOIN subscribers s"
        " ON s.id = d.subscriber_id WHERE s.email = 'arts@example.org'"
    )
    assert (status, attempts) == ("skipped", 0)
    assert site.edition_status() == "complete"


# --------------------------------------------------------------------------- S10: the database fails


async def send_until_the_disk_fills(site: Site, subscribers: int = 200) -> tuple[Run, SmtpServer]:
    """`digest send` whose database writes all fail (EFBIG, as on a full disk) from message 20 on.

    As root, chmod does not stop writes; a file-size limit of 0 set on the running process does,
    while reads keep working.
    """

    def fill_disk(pid: int) -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, 0))

    trigger = Trigger(fill_disk)
    smtp = SmtpServer(Faults(stall=0.01, on_data=trigger.at_message(20)))
    async with smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(subscribers), connections=4)
        await site.poll()
        proc = await site.start("send")
        trigger.pid = proc.pid
        run = await site.finish(proc, timeout=30)
    assert trigger.fired.is_set()
    return run, smtp


async def test_S10_when_the_disk_fills_sending_halts_and_nothing_more_goes_out_unrecorded(site: Site) -> None:
    first, smtp = await send_until_the_disk_fills(site)
    received = len(smtp.messages)
    recorded = site.counts().get("sent", 0)
    assert first.code != 0, first.out
    assert received < 200, "sending halted"
    assert received - recorded <= 4, "at most the messages in flight went out unrecorded"
    assert site.edition_status() == "open"

    async with smtp:  # the disk has room again
        site.configure(smtp_port=smtp.port, subscribers=readers(200), connections=4)
        second = await site.run("send")
        assert second.code == 0, second.err
    ids = message_ids(smtp.messages)
    assert len(ids) == 200 and all(len(set(got)) == 1 for got in ids.values())
    assert sum(len(got) - 1 for got in ids.values()) <= 4
    assert site.counts() == {"sent": 200} and site.edition_status() == "complete"


async def test_S10_a_full_disk_is_reported_as_one_error_line_with_a_hint(site: Site) -> None:
    run, _ = await send_until_the_disk_fills(site, subscribers=60)
    assert run.code == 1
    one_error_line_and_a_hint(run.err)


async def test_S10_while_the_database_is_locked_nothing_more_goes_out_and_the_run_then_completes(site: Site) -> None:
    held: dict[str, int] = {}

    def lock(_pid: int) -> None:
        conn = sqlite3.connect(site.db, timeout=30, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: readers go on, writers wait (busy_timeout)
        held["from"] = len(handler.messages)

        def release() -> None:
            held["until"] = len(handler.messages)
            conn.rollback()
            conn.close()

        threading.Timer(2.0, release).start()

    trigger = Trigger(lock)
    handler = Faults(stall=0.01, on_data=trigger.at_message(20))
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(100), connections=4)
        await site.poll()
        proc = await site.start("send")
        trigger.pid = proc.pid
        run = await site.finish(proc, timeout=60)
        assert run.code == 0, run.err

    assert held["until"] - held["from"] <= 3, "no new message starts while its result cannot be recorded"
    ids = message_ids(smtp.messages)
    assert len(ids) == 100 and all(len(got) == 1 for got in ids.values())
    assert site.counts() == {"sent": 100} and site.edition_status() == "complete"


# --------------------------------------------------------------------------- M: SMTP replies at the pipeline level


async def test_M2_a_451_at_rcpt_leaves_the_row_pending_with_a_retry_time_and_the_next_send_delivers(site: Site) -> None:
    busy = "busy@example.org"
    healed = threading.Event()

    def rcpt(turn: Turn) -> str | None:
        return "451 4.2.0 mailbox busy, try later" if turn.address == busy and not healed.is_set() else None

    async with SmtpServer(Scripted(rcpt=rcpt)) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=[*readers(4), (busy, None)])
        await site.poll()
        first = await site.run("send")
        assert first.code == 4, first.err  # a message left to retry
        assert "4 sent, 0 skipped, 0 failed, 1 deferred (pending rows remain)" in first.out
        ((status, next_at, error, attempts),) = site.query(
            "SELECT d.status, d.next_attempt_at, d.last_error, d.attempts FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = ?",
            busy,
        )
        assert status == "pending" and next_at is not None and attempts >= 1
        assert "451" in error
        assert site.edition_status() == "open"

        healed.set()
        second = await site.run("send", now=NOW + timedelta(minutes=15))  # after its retry time
        assert second.code == 0, second.err
        assert "1 sent" in second.out and "(complete)" in second.out

    assert {rcpt: len(m) for rcpt, m in by_recipient(smtp.messages).items()} == {
        **{email: 1 for email, _ in readers(4)},
        busy: 1,
    }
    assert smtp.handler.rcpt_seen.count(busy) == 2
    assert site.counts() == {"sent": 5} and site.edition_status() == "complete"


async def test_M3_a_550_fails_the_row_counts_a_strike_and_three_editions_suspend_the_subscriber(
    site: Site, feed: FeedServer
) -> None:
    gone = "gone@example.org"
    handler = Scripted(rcpt=lambda turn: "550 5.2.1 mailbox disabled" if turn.address == gone else None)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=[*readers(2), (gone, None)])
        for n in range(4):
            day = DAY + timedelta(days=n)
            morning = NOW + timedelta(days=n)
            feed.serve("/news.xml", rss(morning, tag=f"d{n}"))
            await site.poll(now=morning)
            run = await site.run("send", "--date", day.isoformat(), now=morning + timedelta(minutes=1))
            assert run.code == (3 if n < 3 else 0), run.err  # 3: a message failed for good
            if n < 3:
                assert site.statuses(day)[gone] == "failed"
                assert "1 failed" in run.out and "(complete)" in run.out
            if n in (0, 2):
                listing = await site.run("subscribers", "list", now=morning + timedelta(minutes=2))
                line = next(line for line in listing.out.splitlines() if line.startswith(gone))
                assert f"smtp_failures={n + 1}/3" in line
                assert (" suspended " in line) == (n == 2), line
            if n == 3:  # suspended: no row, no attempt
                assert gone not in site.statuses(day) and "2 sent, 0 skipped, 0 failed" in run.out

    assert smtp.handler.rcpt_seen.count(gone) == 3, "a 5xx is never retried within an edition"
    assert [status for (status,) in site.query("SELECT status FROM subscribers WHERE email = ?", gone)] == ["suspended"]


async def test_M3_a_550_5_1_1_at_RCPT_is_a_hard_bounce_and_suppresses_the_address_at_once(
    site: Site, feed: FeedServer
) -> None:
    gone = "gone@example.org"
    handler = Scripted(rcpt=lambda turn: "550 5.1.1 <gone@example.org>: user unknown" if turn.address == gone else None)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=[*readers(2), (gone, None)])
        await site.poll()
        first = await site.run("send")
        assert first.code == 3, first.err
        assert "2 sent, 0 skipped, 1 failed" in first.out and site.statuses()[gone] == "failed"
        assert "does not exist" in first.err
        tomorrow = NOW + timedelta(days=1)
        feed.serve("/news.xml", rss(tomorrow, tag="next"))
        await site.poll(now=tomorrow)
        second = await site.run(
            "send", "--date", (DAY + timedelta(days=1)).isoformat(), now=tomorrow + timedelta(minutes=1)
        )
        assert second.code == 0, second.err

    assert gone not in site.statuses(DAY + timedelta(days=1)), "suspended after one: no row the next day"
    assert smtp.handler.rcpt_seen.count(gone) == 1
    assert site.query("SELECT status, status_origin FROM subscribers WHERE email = ?", gone) == [
        ("suspended", "delivery")
    ]
    # recorded as the hard bounce a DSN would have brought, once
    assert site.query("SELECT kind, status, via FROM bounces") == [("hard", "5.1.1", "rcpt")]
    assert site.query("SELECT reason FROM suppressions") == [("bounced",)]


async def test_M5_a_content_refusal_fails_that_row_and_a_delivery_clears_the_strikes(
    site: Site, feed: FeedServer
) -> None:
    # The audit's t13: the relay's filter refuses one reader's message on three days of four. The
    # message was refused, not the address: no strike. A mailbox refusal is one, and the next
    # delivery clears it, so strikes count in a row, not over a lifetime.
    picky, full = "picky@example.org", "full@example.org"
    refuse = {0: {picky, full}, 1: set(), 2: {picky, full}, 3: {picky}}
    day_n = [0]

    def data(turn: Turn) -> str | None:
        return "554 5.7.1 message content rejected" if turn.address == picky and picky in refuse[day_n[0]] else None

    def rcpt(turn: Turn) -> str | None:
        return "550 5.2.0 mailbox unavailable" if turn.address == full and full in refuse[day_n[0]] else None

    handler = Scripted(data=data, rcpt=rcpt)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=[*readers(1), (picky, None), (full, None)])
        strikes = []
        for n in range(4):
            day_n[0] = n
            morning = NOW + timedelta(days=n)
            feed.serve("/news.xml", rss(morning, tag=f"d{n}"))
            await site.poll(now=morning)
            run = await site.run(
                "send", "--date", (DAY + timedelta(days=n)).isoformat(), now=morning + timedelta(minutes=1)
            )
            assert run.code == (3 if refuse[n] else 0), run.err
            expected = {
                picky: "failed" if picky in refuse[n] else "sent",
                full: "failed" if full in refuse[n] else "sent",
            }
            got = site.statuses(DAY + timedelta(days=n))
            assert {k: got[k] for k in expected} == expected, n
            strikes.append(
                dict(site.query("SELECT email, permanent_failures FROM subscribers WHERE email != ?", readers(1)[0][0]))
            )

    assert strikes == [
        {picky: 0, full: 1},
        {picky: 0, full: 0},  # delivered: the strike is cleared
        {picky: 0, full: 1},
        {picky: 0, full: 0},
    ]
    assert site.query("SELECT count(*) FROM subscribers WHERE status != 'active'") == [(0,)]


async def test_M16_a_relay_that_refuses_the_sender_stops_the_run_and_charges_nobody(site: Site) -> None:
    handler = Refusing(mail="553 5.7.1 <review@example.org>: Sender address rejected: not owned by user")
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(30), connections=4)
        await site.poll()
        run = await site.run("send")
        assert run.code == 1, run.out + run.err
        one_error_line_and_a_hint(run.err)
        assert "refused the sender" in run.err and "[smtp] sender" in run.err
        assert handler.refused <= 4, "at most the messages in flight meet the refusal"
        assert site.progress() == {"unfinished": 30} and site.edition_status() == "open"
        assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0 OR status != 'active'") == [
            (0,)
        ]

        handler.script_mail(None)  # the operator fixed the relay
        again = await site.run("send")
        assert again.code == 0, again.err
        assert "30 sent" in again.out and "(complete)" in again.out
    assert len(by_recipient(smtp.messages)) == 30


async def test_M12_a_relay_that_refuses_every_recipient_opens_the_breaker_and_everyone_gets_the_edition_later(
    site: Site,
) -> None:
    # "Relay access denied" at RCPT for everyone: the operator's mistake, not the subscribers'.
    # The refusals of the failing run are judged when it ends: the breaker opening puts them back.
    handler = Refusing(rcpt="554 5.7.1 <reader0001@example.org>: Relay access denied")
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(60), connections=4, circuit_breaker=10)
        await site.poll()
        run = await site.run("send")
        assert run.code == 1, run.out + run.err
        one_error_line_and_a_hint(run.err)
        assert "in a row" in run.err and "charged to no subscriber" in run.err
        assert 10 <= handler.refused <= 14
        assert site.progress() == {"unfinished": 60} and site.edition_status() == "open"
        assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0 OR status != 'active'") == [
            (0,)
        ]

        handler.script_rcpt(None)
        again = await site.run("send")
        assert again.code == 0, again.err
        assert "60 sent" in again.out and "(complete)" in again.out
    assert len(by_recipient(smtp.messages)) == 60 and site.counts() == {"sent": 60}


async def test_M12_refusals_between_deliveries_are_recorded_when_the_failing_run_ends(site: Site) -> None:
    # Two addresses refused among deliveries: each run of failures ends with a delivery, so the
    # refusals stand (failed, one strike each) although they waited for that judgement.
    gone = {"reader0003@example.org", "reader0007@example.org"}
    handler = Scripted(rcpt=lambda t: "550 5.2.1 mailbox disabled" if t.address in gone else None)
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(10), connections=1, circuit_breaker=3)
        await site.poll()
        run = await site.run("send")
    assert run.code == 3, run.err
    assert "8 sent, 0 skipped, 2 failed" in run.out and "(complete)" in run.out
    assert {e for e, s in site.statuses().items() if s == "failed"} == gone
    assert sorted(site.query("SELECT email FROM subscribers WHERE permanent_failures = 1")) == sorted(
        (e,) for e in gone
    )
    assert len(smtp.messages) == 8


async def test_M11_rejected_credentials_stop_the_send_with_one_error_line_and_mark_nobody(site: Site) -> None:
    async with SmtpServer(Scripted(auth="reject"), require_auth=True) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(5), username="review")
        site.password = "wrong"
        await site.poll()
        run = await site.run("send")
    assert run.code == 1
    one_error_line_and_a_hint(run.err)
    assert "review" in run.err and "wrong" not in run.err, "names the user, never the password"
    assert smtp.messages == [] and smtp.handler.auth_attempts >= 1
    assert "failed" not in site.counts()
    assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0") == [(0,)]


async def test_M11_a_530_after_the_build_stops_the_run_and_leaves_every_row_pending(site: Site) -> None:
    async with SmtpServer(Scripted(mail="530 5.7.0 Authentication required")) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(30))
        await site.poll()
        run = await site.run("send")
    assert run.code == 1
    one_error_line_and_a_hint(run.err)
    assert "530" in run.err
    assert smtp.messages == []
    assert site.progress() == {"unfinished": 30} and site.edition_status() == "open"
    assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0 OR status != 'active'") == [(0,)]


class Refusing(Scripted):
    """Scripted, counting the commands it refused (each one a failed attempt at a message)."""

    def __init__(self, **kwargs: Any) -> None:
        self.refused = 0
        self._replies: dict[str, str | None] = {}
        for command in ("mail", "rcpt"):
            if command in kwargs:
                self._replies[command] = kwargs[command]
                kwargs[command] = self._counting(command)
        super().__init__(**kwargs)

    def _counting(self, command: str) -> Callable[[Turn], str | None]:
        def answer(_turn: Turn) -> str | None:
            reply = self._replies.get(command)
            if reply is not None:
                self.refused += 1
            return reply

        return answer

    def script_mail(self, reply: str | None) -> None:
        """What MAIL gets from now on (None: accepted), as an operator's fix to the relay."""
        self._replies["mail"] = reply

    def script_rcpt(self, reply: str | None) -> None:
        self._replies["rcpt"] = reply


CIRCUIT: dict[str, Callable[[], Refusing]] = {
    "451-at-rcpt": lambda: Refusing(rcpt="451 4.3.0 try again later"),
    "421-at-mail": lambda: Refusing(mail="421 4.3.2 shutting down"),
    "421-greeting": lambda: Refusing(greeting="421 4.3.2 too busy"),
}


async def test_M4_an_edition_too_big_for_the_relay_is_said_once_charges_no_one_and_goes_when_allowed(
    site: Site,
) -> None:
    # The relay's EHLO says SIZE 3000, and every message of the edition is bigger. They were sent
    # anyway, refused "552" at MAIL, retried for give_up_after, and 10 of them opened the circuit
    # breaker as if the relay were down; nobody said the edition was too big.
    async with SmtpServer(size_limit=3000) as small:
        site.configure(smtp_port=small.port, subscribers=readers(30), connections=4, circuit_breaker=10)
        await site.poll()
        run = await site.run("send")
        status = await site.run("status")
    assert "0 sent" in run.out and "30 deferred" in run.out and "in a row" not in run.err, run.out + run.err
    said = [line for line in run.err.splitlines() if "too big" in line]
    assert len(said) == 1, run.err
    assert f"edition {DAY} UTC is too big for the SMTP server: subscriber " in said[0]
    assert re.search(r"the message is [\d,]+ bytes, over the 3,000 the SMTP server 127\.0\.0\.1:\d+ takes", said[0])
    assert "max_items_per_section" in said[0] and "excerpt_chars" in said[0]
    assert f"`digest send --date {DAY} --retry-now` at once" in said[0]
    assert small.handler.rcpt_seen == [] and small.messages == []
    assert site.progress() == {"unfinished": 30}
    assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0") == [(0,)]
    last = [line for line in status.out.splitlines() if "last delivery error" in line]
    assert len(last) == 1 and f"edition {DAY} UTC" in last[0] and "over the 3,000" in last[0], status.out

    async with SmtpServer() as relay:  # the limit raised (or the edition made smaller)
        site.configure(smtp_port=relay.port, subscribers=readers(30), connections=4, circuit_breaker=10)
        again = await site.run("send", "--date", DAY.isoformat(), "--retry-now")  # as the line said
    assert "30 sent" in again.out and "(complete)" in again.out, again.out + again.err
    assert sorted(m.rcpt_tos[0] for m in relay.messages) == sorted(email for email, _ in readers(30))


@pytest.mark.parametrize("fault", list(CIRCUIT))
async def test_M12_the_circuit_breaker_stops_a_run_after_about_10_failures_and_leaves_rows_pending(
    site: Site, fault: str
) -> None:
    handler = CIRCUIT[fault]()
    async with SmtpServer(handler) as smtp:
        site.configure(smtp_port=smtp.port, subscribers=readers(100), connections=4, circuit_breaker=10)
        await site.poll()
        run = await site.run("send")
    assert run.code == 1, run.out + run.err
    one_error_line_and_a_hint(run.err)
    assert "in a row" in run.err
    # A refused greeting is one attempt per connection, less the check made before the edition is built;
    # a 421 at MAIL closes the connection, and each message goes once more on a new one before it
    # counts as failed.
    attempts = {"421-greeting": smtp.connections - 1, "421-at-mail": handler.refused // 2}.get(fault, handler.refused)
    assert 10 <= attempts <= 10 + 4, f"{attempts} attempts for a breaker of 10"
    assert smtp.messages == []
    assert site.progress() == {"unfinished": 100} and site.edition_status() == "open"
    assert site.query("SELECT count(*) FROM subscribers WHERE permanent_failures > 0") == [(0,)]
