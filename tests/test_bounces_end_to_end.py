"""Bounces end to end: an edition goes out with VERP return paths, the real `digest bounces serve`
(aiosmtpd) is fed the fixture messages over SMTP, and the next edition skips the addresses they
suppressed. Also `digest bounces import` from files and standard input, `digest status` and
`digest subscribers show`."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from digestprocess import launch, run_digest
from httpservers import FeedServer
from smtpservers import SmtpServer

from digest import bounces
from digest.pipeline import bounces as bounces_pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
DAY1 = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def labelled() -> list[tuple[str, str]]:
    rows = []
    for line in (FIXTURES / "labels.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, kind = line.split("\t")[:2]
            rows.append((name, kind))
    return rows


def feed(day: datetime, tag: str) -> bytes:
    items = "".join(
        f"<item><title>{tag} story number {i} about the harbour {i * 7}</title>"
        f"<link>https://news.example/{tag}/{i}</link><guid>{tag}-{i}</guid><category>World</category>"
        f"<pubDate>{format_datetime(day - timedelta(hours=1, minutes=i))}</pubDate>"
        f"<description>Summary {i}</description></item>"
        for i in range(3)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour Times</title>'
        f"<link>https://news.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def write_config(tmp: Path, *, feed_url: str, smtp_port: int, readers: int) -> Path:
    subs = "".join(f'[[subscribers]]\nemail = "reader{i:02d}@example.org"\n' for i in range(readers))
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "UTC"
send_at = "07:00"
database = "sqlite:///{tmp / "digest.sqlite"}"
base_url = "https://review.example"
allow_private_addresses = true
secret = "bounce-e2e-secret"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Morning Review <review@review.example>"
timeout = 10

[bounces]
domain = "bounces.review.example"

[[sections]]
name = "World"
categories = ["World"]

[[feeds]]
url = "{feed_url}"

{subs}""",
        encoding="utf-8",
    )
    return config


async def digest(config: Path, now: datetime, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    return await run_digest(config, *args, env={"DIGEST_NOW": now.isoformat()}, stdin=stdin)


@asynccontextmanager
async def bounce_receiver(
    config: Path, now: datetime, domain: str, pids: list[int] | None = None
) -> AsyncIterator[int]:
    """The real `digest bounces serve` on a free port of 127.0.0.1, its clock at `now`; the port,
    once its first line says it receives for `domain` (as written in the config), and its process
    id added to `pids`. Stopped by SIGTERM, which must exit 0."""
    serve = ("bounces", "serve", "--host", "127.0.0.1", "--port", "0")
    proc = await launch(config, *serve, env={"DIGEST_NOW": now.isoformat()})
    if pids is not None:
        pids.append(proc.pid)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        m = re.search(rf"receiving bounces for {re.escape(domain)} on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        yield int(m.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


def rcpt_answers(port: int, rcpts: list[str]) -> list[int]:
    """The code of each RCPT of one transaction."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("mx.remote.example")
        client.mail("")
        return [client.rcpt(rcpt)[0] for rcpt in rcpts]


def smtp_send(port: int, rcpt: str, data: bytes, *, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """One transaction from the client at `source` (a loopback address: Linux routes 127.0.0.0/8 here)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20, source_address=(source, 0)) as client:
        client.ehlo("mx.remote.example")
        client.mail("")  # bounces come from the null sender (RFC 5321 4.5.5)
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))  # SMTP lines end in CRLF


async def one_edition_sent(tmp_path: Path, *, readers: int) -> tuple[Path, dict[str, str]]:
    """A config of `readers` subscribers whose first edition was polled and sent for real; each
    reader's VERP return path, as the edition's messages carried it."""
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/news.xml", feed(DAY1, "first"))
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, readers=readers)
        assert (await digest(config, DAY1, "poll"))[0] == 0
        assert (await digest(config, DAY1 + timedelta(minutes=1), "send"))[0] == 0
        return config, {m.rcpt_tos[0]: m.mail_from for m in smtp.messages}


def returned_to(return_path: str, fixture: bytes) -> bytes:
    """A fixture bounce as it comes back to `return_path` (its own VERP address replaced)."""
    return re.sub(rb"bounce\+[0-9a-f-]+@bounces\.example\.org", return_path.encode(), fixture)


def read_bounces_from(config: Path, imap_port: int) -> None:
    """Point the config's [bounces] at the IMAP server on loopback (the password comes from the environment)."""
    text = config.read_text(encoding="utf-8").replace(
        "[bounces]\n",
        f'[bounces]\nimap_host = "127.0.0.1"\nimap_port = {imap_port}\nimap_security = "none"\n'
        'imap_username = "bounces"\n',
    )
    config.write_text(text, encoding="utf-8")


@pytest.mark.slow
async def test_the_bounce_receiver_takes_the_fixtures_over_smtp_and_the_next_edition_skips_them(tmp_path: Path) -> None:
    fixtures = [(name, kind) for name, kind in labelled()]
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/news.xml", feed(DAY1, "first"))
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, readers=len(fixtures))
        assert (await digest(config, DAY1, "poll"))[0] == 0
        code, _, err = await digest(config, DAY1 + timedelta(minutes=1), "send")
        assert code == 0, err
        verp = {m.rcpt_tos[0]: m.mail_from for m in smtp.messages}
        assert len(verp) == len(fixtures) and all(v.startswith("bounce+") for v in verp.values())

        async with bounce_receiver(config, DAY1 + timedelta(hours=1), "bounces.review.example") as port:
            expected: dict[str, str] = {}
            for i, (name, _label) in enumerate(fixtures):
                reader = f"reader{i:02d}@example.org"
                raw = (FIXTURES / name).read_bytes()
                found = bounces.parse_bytes(raw)
                expected[reader] = found.kind if found else "none"
                code, reply = await asyncio.to_thread(smtp_send, port, verp[reader], raw)
                assert code == 250, (name, reply)
            # The same report again (an MTA retry, or the same bounce by two ways): counted once.
            again = await asyncio.to_thread(
                smtp_send, port, verp["reader00@example.org"], (FIXTURES / fixtures[0][0]).read_bytes()
            )
            assert again[0] == 250
            # A report to a token nobody signed: accepted (no oracle) but only counted.
            forged = re.sub(r"-[0-9a-f]{12}@", "-000000000000@", verp["reader01@example.org"])
            raw = (FIXTURES / fixtures[1][0]).read_bytes()
            assert (await asyncio.to_thread(smtp_send, port, forged, raw))[0] == 250
            # Not a bounce address: refused at RCPT.
            assert (await asyncio.to_thread(smtp_send, port, "postmaster@bounces.review.example", b"x"))[0] == 550
            # A bounce is addressed to one return path: past MAX_RECIPIENTS in a transaction, 452.
            answers = await asyncio.to_thread(
                rcpt_answers, port, [f"bounce+x{i}@bounces.review.example" for i in range(12)]
            )
            assert answers == [250] * 10 + [452] * 2

        kinds = list(expected.values())
        code, out, err = await digest(config, DAY1 + timedelta(hours=2), "status")
        assert code == 0, err
        assert (
            f"bounces: {kinds.count('hard')} hard, {kinds.count('soft')} soft, "
            f"{kinds.count('complaint')} complaint; 1 ignored"
        ) in out
        assert f"{kinds.count('hard')} bounced" in out and f"{kinds.count('complaint')} complained" in out
        hard = next(r for r, k in expected.items() if k == "hard")
        code, out, err = await digest(config, DAY1 + timedelta(hours=2), "subscribers", "show", hard)
        assert code == 0, err
        assert "suppressed bounced since 2026-01-16" in out and "last bounce hard" in out
        soft = next(r for r, k in expected.items() if k == "soft")
        code, out, err = await digest(config, DAY1 + timedelta(hours=2), "subscribers", "show", soft)
        assert code == 0, err
        assert "soft-bounce score 1.00 (suppressed at 3; halves every 1w)" in out and "suppressed " not in out.replace(
            "(suppressed at", ""
        )

        feeds.serve("/news.xml", feed(DAY2, "second"))
        assert (await digest(config, DAY2, "poll"))[0] == 0
        before = len(smtp.messages)
        code, _, err = await digest(config, DAY2 + timedelta(minutes=1), "send")
        assert code == 0, err
        second = sorted(m.rcpt_tos[0] for m in smtp.messages[before:])
    assert second == sorted(r for r, k in expected.items() if k in ("soft", "none"))
    assert kinds.count("hard") >= 20 and kinds.count("complaint") >= 4 and kinds.count("soft") >= 15


async def test_digest_bounces_import_reads_files_and_standard_input_and_counts_each_once(tmp_path: Path) -> None:
    config, verp = await one_edition_sent(tmp_path, readers=2)
    # An MTA delivering to a file or a pipe keeps the envelope recipient in Delivered-To.
    hard = (FIXTURES / "qmail-5.1.1-no-mailbox.eml").read_bytes()
    hard = returned_to(verp["reader00@example.org"], hard)
    path = tmp_path / "hard.eml"
    path.write_bytes(hard)
    complaint = (FIXTURES / "arf-yahoo-abuse.eml").read_bytes()
    complaint = returned_to(verp["reader01@example.org"], complaint)
    code, out, err = await digest(config, DAY1 + timedelta(hours=1), "bounces", "import", str(path), str(path))
    assert code == 0, err
    assert out.strip() == "1 duplicate, 1 suppressed"
    code, out, err = await digest(
        config,
        DAY1 + timedelta(hours=1),
        "bounces",
        "import",
        "-",
        stdin=b"From MAILER-DAEMON Fri Jan 16 09:00:00 2026\n" + complaint,
    )
    assert code == 0, err
    assert out.strip() == "1 suppressed"
    code, out, _ = await digest(config, DAY1 + timedelta(hours=1), "subscribers", "show", "reader01@example.org")
    assert "suppressed complained since 2026-01-16" in out
    code, _, err = await digest(config, DAY1, "bounces", "import", str(tmp_path / "missing.eml"))
    assert code == 1 and "Cannot read" in err and err.strip().count("\n") <= 1


async def test_bounces_import_and_fetch_without_a_bounce_domain_say_why_a_real_bounce_is_unverified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imapserver import ImapServer

    config = write_config(tmp_path, feed_url="http://127.0.0.1:9/news.xml", smtp_port=25, readers=1)
    with_domain = config.read_text(encoding="utf-8")
    config.write_text(with_domain.replace('domain = "bounces.review.example"\n', ""), encoding="utf-8")
    # Without a VERP domain a bounce comes back to the sender, with no token in it.
    hard = returned_to("review@review.example", (FIXTURES / "gmail-5.1.1-no-such-user.eml").read_bytes())
    (tmp_path / "hard.eml").write_bytes(hard)
    code, out, err = await digest(config, DAY1, "bounces", "import", str(tmp_path / "hard.eml"))
    assert code == 0, err
    assert out.strip() == "1 unverified"
    [hint] = [line for line in err.splitlines() if line.startswith("  hint: ")]
    assert "[bounces] domain is not set, so no message carries a VERP return path" in hint
    assert 'Set [bounces] domain = "bounces.example.org"' in hint
    other = returned_to("review@review.example", (FIXTURES / "exim-5.1.1-rcpt.eml").read_bytes())
    with ImapServer(user="bounces", password="imap-pw", messages=[other]) as imap:
        read_bounces_from(config, imap.port)
        monkeypatch.setenv("DIGEST_BOUNCES_IMAP_PASSWORD", "imap-pw")
        code, out, err = await digest(config, DAY1, "bounces", "fetch")
    assert (code, out.strip()) == (0, "1 unverified") and hint in err.splitlines(), err
    # With the domain set, an unverified report is a forged or stale one: nothing to configure.
    config.write_text(with_domain, encoding="utf-8")
    forged = (FIXTURES / "exim-5.1.1-rcpt.eml").read_bytes()
    code, out, err = await digest(config, DAY1, "bounces", "import", "-", stdin=forged)
    assert (code, out.strip()) == (0, "1 unverified") and "hint" not in err, err


async def test_digest_bounces_fetch_reads_the_unread_messages_over_imap_and_flags_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imapserver import ImapServer

    config, verp = await one_edition_sent(tmp_path, readers=3)
    messages = []
    for reader, name in (
        ("reader00@example.org", "exchange2007-5.1.1-recipnotfound.eml"),
        ("reader01@example.org", "gmail-4.4.1-delay.eml"),
        ("reader02@example.org", "autoreply-vacation.eml"),
    ):
        raw = (FIXTURES / name).read_bytes()
        messages.append(returned_to(verp[reader], raw))
    with ImapServer(user="bounces", password="imap-pw", messages=messages) as imap:
        read_bounces_from(config, imap.port)
        env_now = DAY1 + timedelta(hours=1)
        monkeypatch.setenv("DIGEST_BOUNCES_IMAP_PASSWORD", "imap-pw")
        code, out, err = await digest(config, env_now, "bounces", "fetch")
        assert code == 0, err
        assert out.strip() == "1 not a bounce, 1 recorded, 1 suppressed"
        assert imap.seen == {1, 2, 3}
        code, out, err = await digest(config, env_now, "bounces", "fetch")  # nothing unread is left
        assert (code, out.strip()) == (0, "no messages")
        monkeypatch.setenv("DIGEST_BOUNCES_IMAP_PASSWORD", "wrong")
        code, _, err = await digest(config, env_now, "bounces", "fetch")
        assert code == 1 and "Cannot log in to IMAP 127.0.0.1" in err
    code, out, _ = await digest(config, env_now, "subscribers", "show", "reader00@example.org")
    assert "suppressed bounced" in out


def nested_mime(depth: int) -> bytes:
    """A message whose MIME parts nest `depth` deep: the email package exhausts Python's recursion
    limit walking it."""
    head = b"From: MAILER-DAEMON@mx.remote.example\r\nSubject: failure notice\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nnothing\r\n" + closing


async def test_B18_one_message_the_parser_fails_on_never_stops_the_bounces_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IMAP folder whose first unread message the parser cannot read (MIME nested 3,000 deep),
    then two real bounces whose sender headers flufl.bounce's detectors raised on (raw 8-bit bytes,
    an empty From). `digest bounces fetch` reads them all, counts the first as unreadable with one
    log line and no traceback, and flags all three read. Before, the first exception ended the
    fetch, unflagged, and every later fetch stopped at the same message: no bounce was ever read."""
    from imapserver import ImapServer

    config, verp = await one_edition_sent(tmp_path, readers=2)
    qmail = (FIXTURES / "qmail-5.1.1-no-mailbox.eml").read_bytes()
    messages = [nested_mime(3000)]
    for reader, sender in (
        ("reader00@example.org", "From: Système de messagerie <MAILER-DAEMON@mail.qmail-host.example>".encode()),
        ("reader01@example.org", b"From: "),
    ):
        raw = returned_to(verp[reader], qmail)
        messages.append(re.sub(rb"(?m)^From: MAILER-DAEMON.*$", sender, raw, count=1))
    with ImapServer(user="bounces", password="imap-pw", messages=messages) as imap:
        read_bounces_from(config, imap.port)
        monkeypatch.setenv("DIGEST_BOUNCES_IMAP_PASSWORD", "imap-pw")
        code, out, err = await digest(config, DAY1 + timedelta(hours=1), "bounces", "fetch")
        assert code == 0, err
        assert out.strip() == "2 suppressed, 1 unreadable"
        assert imap.seen == {1, 2, 3}
        assert "Traceback" not in err and "could not be read (RecursionError" in err
    for reader in ("reader00@example.org", "reader01@example.org"):
        code, out, _ = await digest(config, DAY1 + timedelta(hours=1), "subscribers", "show", reader)
        assert "suppressed bounced" in out, out


async def test_M15_a_bounce_domain_written_in_unicode_takes_the_bounces_its_a_label_return_paths_bring(
    tmp_path: Path,
) -> None:
    # Every return path goes out with its domain in A-labels (M15); the receiver compared the RCPT
    # with the domain as written in the config, and refused every bounce to "bounces.bücher.example".
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/news.xml", feed(DAY1, "first"))
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, readers=1)
        text = config.read_text(encoding="utf-8").replace("bounces.review.example", "Bounces.Bücher.example")
        config.write_text(text, encoding="utf-8")
        assert (await digest(config, DAY1, "poll"))[0] == 0
        assert (await digest(config, DAY1 + timedelta(minutes=1), "send"))[0] == 0
        [message] = smtp.messages
    return_path = message.mail_from
    assert return_path.startswith("bounce+") and return_path.endswith("@bounces.xn--bcher-kva.example")
    hard = next(name for name, kind in labelled() if kind == "hard")
    async with bounce_receiver(config, DAY1 + timedelta(hours=1), "Bounces.Bücher.example") as port:
        raw = returned_to(return_path, (FIXTURES / hard).read_bytes())
        code, reply = await asyncio.to_thread(smtp_send, port, return_path, raw)
        assert code == 250, reply
    code, out, err = await digest(config, DAY1 + timedelta(hours=2), "status")
    assert code == 0, err
    assert "bounces: 1 hard, 0 soft, 0 complaint; 0 ignored" in out


def resident_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def open_data(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A session on the receiver, from the client at `source`, that has reached DATA (354), for a
    return path it takes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    assert (await reader.readline()).startswith(b"220")
    for command in (b"EHLO mx.remote.example", b"MAIL FROM:<>", b"RCPT TO:<bounce+x@bounces.review.example>", b"DATA"):
        writer.write(command + b"\r\n")
        while (line := await reader.readline())[3:4] == b"-":  # EHLO's lines before its last
            pass
        assert line[:1] in (b"2", b"3"), (command, line)
    return reader, writer


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads a process's memory from /proc")
async def test_H20_the_bounce_receiver_holds_a_bounded_memory_and_number_of_sessions(tmp_path: Path) -> None:
    """An MX on the internet: aiosmtpd keeps each line of a message as an object of its own, so 10 MB
    of empty lines, never ended, held 330 MB of the receiver; a few such clients, or thousands of
    idle ones, had the host's memory or descriptors. A session is closed with a 421 past its line
    budget, sessions past the cap are answered 421 at once, and a real bounce still gets in."""
    config, verp = await one_edition_sent(tmp_path, readers=1)
    pids: list[int] = []
    async with bounce_receiver(config, DAY1 + timedelta(hours=1), "bounces.review.example", pids) as port:
        pid = pids[0]
        before = resident_mb(pid)
        reader, writer = await open_data(port)
        with contextlib.suppress(ConnectionError):
            for _ in range(10):  # 10 MB of empty lines, never ended
                writer.write(b"\r\n" * 500_000)
                await writer.drain()
        with contextlib.suppress(ConnectionError):  # the 421, unless the reset for our unread lines overtook it
            assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"421 4.7.0")
        assert reader.at_eof() or reader.exception() is not None  # closed by the receiver
        writer.close()
        assert resident_mb(pid) - before < 100

        share = bounces_pipeline.MAX_SESSIONS_PER_CLIENT  # each client's most: the cap takes several
        held = [await open_data(port, f"127.0.0.{1 + i // share}") for i in range(bounces_pipeline.MAX_SESSIONS)]
        late, late_writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.100", 0))
        assert (await asyncio.wait_for(late.read(), 10)).startswith(b"421 4.3.2")  # and closed
        late_writer.close()
        for _, held_writer in held:
            held_writer.close()
        await asyncio.sleep(0.2)
        raw = returned_to(verp["reader00@example.org"], next(iter(sorted(FIXTURES.glob("*.eml")))).read_bytes())
        assert (await asyncio.to_thread(smtp_send, port, verp["reader00@example.org"], raw))[0] == 250


async def test_H20_one_client_holds_at_most_its_share_of_the_bounce_receivers_sessions(tmp_path: Path) -> None:
    """One host opening the whole cap's worth of sessions and idling in them kept every other MX's
    bounces out until it let go. Now it gets MAX_SESSIONS_PER_CLIENT; its others are greeted 421 and
    closed, and another client (127.0.0.2: loopback is an address like any other) is served."""
    config, verp = await one_edition_sent(tmp_path, readers=1)
    share = bounces_pipeline.MAX_SESSIONS_PER_CLIENT
    assert 1 < share < bounces_pipeline.MAX_SESSIONS
    async with bounce_receiver(config, DAY1 + timedelta(hours=1), "bounces.review.example") as port:
        held = [await open_data(port, "127.0.0.1") for _ in range(share)]
        refused = []
        for _ in range(bounces_pipeline.MAX_SESSIONS - share):
            late, late_writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.1", 0))
            refused.append(await asyncio.wait_for(late.read(), 10))  # to the end: closed by the receiver
            late_writer.close()
        assert all(answer.startswith(b"421 4.7.0 Too many sessions from your address") for answer in refused), refused

        raw = returned_to(verp["reader00@example.org"], next(iter(sorted(FIXTURES.glob("*.eml")))).read_bytes())
        code, reply = await asyncio.to_thread(smtp_send, port, verp["reader00@example.org"], raw, source="127.0.0.2")
        assert (code, reply) == (250, b"2.0.0 OK: recorded")

        for reader, writer in held:  # the first client's own sessions were never disturbed
            writer.write(b".\r\n")  # an empty message ends its DATA; not a bounce, but answered
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"250"), "a held session was lost"
            writer.close()
