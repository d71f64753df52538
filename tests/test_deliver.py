"""digest.deliver against real aiosmtpd servers on loopback (tests/smtpservers.py): reliability B6-B13, M1-M14, S4."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from smtpservers import DROP, Scripted, SmtpServer, Turn, make_certs

from digest import config as cfg
from digest.config import SmtpSettings
from digest.deliver import (
    DeliveryStats,
    Envelope,
    FileTransport,
    Outcome,
    RateLimiter,
    Refusal,
    Result,
    SmtpTransport,
    classify,
    deliver,
    is_too_big,
    refusal,
)
from digest.errors import CircuitOpenError, DeliveryError, SenderRefusedError, SmtpAuthError

SENDER = "digest@news.test"


def message(key: int, recipient: str) -> bytes:
    return (
        f"From: Press Review <{SENDER}>\r\nTo: {recipient}\r\nSubject: Edition {key}\r\n"
        f"Message-ID: <1.{key}@news.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Today's stories for {recipient}.\r\n.a line that starts with a dot\r\n"
    ).encode()


def envelopes_for(recipients: Iterable[str], *, start: int = 1) -> list[Envelope]:
    return [Envelope(k, SENDER, r, message(k, r)) for k, r in enumerate(recipients, start)]


def many(n: int, domain: str = "example.org") -> list[Envelope]:
    return envelopes_for(f"reader{i}@{domain}" for i in range(n))


def settings(srv: SmtpServer, **overrides: Any) -> SmtpSettings:
    base: dict[str, Any] = dict(host=srv.host, port=srv.port, timeout=5.0, connections=1)
    base.update(overrides)
    return SmtpSettings(**base)


class Log:
    """The caller's side: the record() callback and what was taken from the iterator."""

    def __init__(self, items: list[Envelope]) -> None:
        self.items = items
        self.taken: list[int] = []
        self.results: list[Result] = []

    async def source(self) -> AsyncIterator[Envelope]:
        for item in self.items:
            self.taken.append(item.key)
            yield item

    async def record(self, result: Result) -> None:
        self.results.append(result)

    def outcomes(self) -> list[Outcome]:
        return [r.outcome for r in sorted(self.results, key=lambda r: r.key)]


async def send_all(s: SmtpSettings, items: list[Envelope], **transport: Any) -> tuple[Log, DeliveryStats]:
    log = Log(items)
    async with SmtpTransport(s, **transport) as t:
        stats = await deliver(t, log.source(), log.record)
    return log, stats


# --------------------------------------------------------------------------- the happy path


async def test_twenty_messages_share_one_reused_connection() -> None:
    async with SmtpServer() as srv:
        items = many(20)
        log, stats = await send_all(settings(srv), items)
    assert stats.sent == 20 and stats.transient == stats.permanent == 0
    assert srv.connections == 1
    assert [m.data for m in srv.messages] == [e.data for e in items]  # dot-stuffing undone, bytes intact
    assert all(m.mail_from == SENDER for m in srv.messages)
    assert [m.rcpt_tos for m in srv.messages] == [(e.recipient,) for e in items]  # B10: one RCPT each
    assert {r.code for r in log.results} == {250}
    assert log.results[0].detail == "250 2.0.0 OK queued"


async def test_several_connections_send_in_parallel_and_each_envelope_is_recorded_once() -> None:
    async with SmtpServer() as srv:
        log, stats = await send_all(settings(srv, connections=4), many(40))
    assert stats.sent == 40
    assert sorted(r.key for r in log.results) == list(range(1, 41))
    assert 1 < srv.connections <= 4
    assert len(srv.messages) == 40


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, Outcome.SENT),
        (251, Outcome.SENT),
        (421, Outcome.TRANSIENT),
        (450, Outcome.TRANSIENT),
        (451, Outcome.TRANSIENT),
        (452, Outcome.TRANSIENT),
        (550, Outcome.PERMANENT),
        (551, Outcome.PERMANENT),
        (552, Outcome.TRANSIENT),
        (553, Outcome.PERMANENT),
        (554, Outcome.PERMANENT),
    ],
)
def test_B6_reply_codes_are_classified(code: int, outcome: Outcome) -> None:
    assert classify(code) is outcome


# --------------------------------------------------------------------------- M: SMTP semantics


async def test_M1_421_at_the_greeting_is_transient_and_does_not_crash() -> None:
    async with SmtpServer(Scripted(greeting="421 4.3.2 Service not available")) as srv:
        log, stats = await send_all(settings(srv), many(3))
    assert stats.transient == 3
    assert {(r.code, r.detail) for r in log.results} == {(421, "421 4.3.2 Service not available")}
    assert srv.messages == []


async def test_M1_a_421_after_MAIL_is_sent_again_at_once_on_a_new_connection() -> None:
    # A 421 before DATA closes the connection with nothing handed over: the message goes again on
    # a new one, not 5 minutes later.
    async with SmtpServer(Scripted(mail=lambda t: "421 4.3.2 closing" if t.connection == 1 else None)) as srv:
        log, _ = await send_all(settings(srv), many(2))
    assert log.outcomes() == [Outcome.SENT, Outcome.SENT]
    assert srv.connections == 2
    assert sorted(m.rcpt_tos[0] for m in srv.messages) == ["reader0@example.org", "reader1@example.org"]


@pytest.mark.parametrize("stage", ["MAIL", "RCPT"])
async def test_M1_a_421_before_DATA_on_every_connection_is_tried_twice_then_transient(stage: str) -> None:
    tries: list[int] = []  # the connection of each 421

    def closing(t: Turn) -> str:
        tries.append(t.connection)
        return "421 4.3.2 service shutting down"

    script = Scripted(mail=closing) if stage == "MAIL" else Scripted(rcpt=closing)
    async with SmtpServer(script) as srv:
        log, stats = await send_all(settings(srv, circuit_breaker=10), many(2))
    assert stats.transient == 2 and srv.messages == []
    assert {(r.code, r.detail, r.stage) for r in log.results} == {(421, "421 4.3.2 service shutting down", stage)}
    assert tries == [1, 2, 3, 4], "each message: once on its connection, once more on a new one, then deferred"


async def test_M1_a_421_that_says_the_message_is_too_big_is_not_tried_again_on_a_new_connection() -> None:
    # Too big wins over "closing": every connection would refuse the edition, so the message is
    # left pending as too big (no breaker step) rather than sent again at once.
    tries: list[int] = []

    def too_big(t: Turn) -> str:
        tries.append(t.connection)
        return "421 4.3.4 message too big, closing"

    async with SmtpServer(Scripted(mail=too_big), size_limit=0) as srv:
        log, stats = await send_all(settings(srv, circuit_breaker=1), many(2))
    assert stats.transient == 2 and srv.messages == []
    assert all(r.too_big and r.stage == "MAIL" for r in log.results)
    assert tries == [1, 2], "each message once: a new connection only because 421 closed the last one"


async def test_B9_a_relay_capping_messages_per_connection_defers_nothing_and_throttles_no_domain() -> None:
    # The audit's t4: a relay allowing 3 messages per connection answers the 4th "421 4.7.0" at
    # MAIL. That was 12 sent and 18 deferred, the 4.7.0 putting example.org (the recipients')
    # in a 5-minute back-off: every message after the first 421 was "not attempted".
    script = Scripted(mail=lambda t: "421 4.7.0 too many messages on this connection" if t.message > 3 else None)
    async with SmtpServer(script) as srv:
        log, stats = await send_all(settings(srv), many(30))
    assert (stats.sent, stats.transient, stats.permanent) == (30, 0, 0)
    assert sorted(m.rcpt_tos[0] for m in srv.messages) == sorted(e.recipient for e in many(30)), "each once"
    assert srv.connections == 10


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later", "452 4.5.3 too many recipients"])
async def test_M2_451_and_452_at_RCPT_are_transient(reply: str) -> None:
    async with SmtpServer(Scripted(rcpt=reply)) as srv:
        log, _ = await send_all(settings(srv), many(1))
    [result] = log.results
    assert (result.outcome, result.code, result.detail) == (Outcome.TRANSIENT, int(reply[:3]), reply)


async def test_M3_550_at_RCPT_is_permanent_for_that_recipient_only() -> None:
    script = Scripted(rcpt=lambda t: "550 5.1.1 no such user" if t.address.startswith("gone") else None)
    async with SmtpServer(script) as srv:
        log, stats = await send_all(settings(srv), envelopes_for(["a@x.org", "gone@x.org", "b@x.org"]))
    assert log.outcomes() == [Outcome.SENT, Outcome.PERMANENT, Outcome.SENT]
    assert log.results[1].detail == "550 5.1.1 no such user"
    assert (stats.sent, stats.permanent) == (2, 1)
    assert srv.connections == 1  # RSET, not a new connection


async def test_a_reply_with_control_characters_is_recorded_as_one_clean_line() -> None:
    """The reply is the server's words, and the outbox keeps it (deliveries.error): a NUL in it,
    which PostgreSQL refuses in text, would fail the record of the result."""
    async with SmtpServer(Scripted(rcpt="550 5.1.1 no\x00such\tuser\x1b[0m")) as srv:
        log, _ = await send_all(settings(srv), many(1))
    [result] = log.results
    assert (result.outcome, result.detail) == (Outcome.PERMANENT, "550 5.1.1 no such user [0m")


async def test_M4_552_at_RCPT_is_transient_as_RFC_5321_says() -> None:
    async with SmtpServer(Scripted(rcpt="552 5.2.2 mailbox full")) as srv:
        log, _ = await send_all(settings(srv), many(1))
    assert (log.results[0].outcome, log.results[0].code) == (Outcome.TRANSIENT, 552)


async def test_M5_554_after_DATA_is_permanent_and_the_next_message_still_goes_through() -> None:
    script = Scripted(data=lambda t: "554 5.6.0 content rejected" if t.address.startswith("spam") else None)
    async with SmtpServer(script) as srv:
        log, _ = await send_all(settings(srv), envelopes_for(["a@x.org", "spam@x.org", "b@x.org"]))
    assert log.outcomes() == [Outcome.SENT, Outcome.PERMANENT, Outcome.SENT]
    assert log.results[1].detail == "554 5.6.0 content rejected"
    assert srv.connections == 1


async def test_M6_a_drop_after_the_DATA_terminator_is_transient_and_not_resent() -> None:
    async with SmtpServer(Scripted(data=DROP)) as srv:
        log, _ = await send_all(settings(srv), many(1))
    [result] = log.results
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, None)
    assert "may have been delivered" in result.detail
    assert len(srv.messages) == 1  # the server did get it: a re-send is the caller's choice, with the same ID


async def test_M7_a_stall_shorter_than_the_timeout_is_waited_out_without_a_resend() -> None:
    async with SmtpServer(Scripted(stall=0.5)) as srv:
        log, _ = await send_all(settings(srv, timeout=1.0), many(1), data_timeout=2.0)
    assert log.outcomes() == [Outcome.SENT]
    assert len(srv.messages) == 1


async def test_M7_a_stall_longer_than_the_timeout_is_transient_and_not_resent() -> None:
    async with SmtpServer(Scripted(stall=1.5)) as srv:
        log, _ = await send_all(settings(srv, timeout=1.0), many(1), data_timeout=1.0)
    [result] = log.results
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail == "no reply to DATA in 1s; it may have been delivered"
    assert len(srv.messages) == 1


async def test_B8_the_wait_after_the_final_dot_is_longer_than_the_command_timeout() -> None:
    async with SmtpServer(Scripted(stall=1.2)) as srv:  # longer than `timeout`, yet answered
        log, _ = await send_all(settings(srv, timeout=1.0), many(1))  # default data_timeout: 300 s
    assert log.outcomes() == [Outcome.SENT]


async def test_M8_a_server_that_drops_every_50_messages_loses_and_duplicates_nothing() -> None:
    async with SmtpServer(Scripted(drop_every=50)) as srv:
        log, stats = await send_all(settings(srv, connections=2), many(200))
    assert stats.sent == 200
    assert sorted(m.data for m in srv.messages) == sorted(e.data for e in many(200))  # each exactly once
    assert srv.connections in (4, 5)  # 50 per connection; the last of each pool slot may carry fewer


async def test_a_pooled_connection_found_dead_at_MAIL_is_reopened_and_the_message_sent_once() -> None:
    script = Scripted(mail=lambda t: DROP if (t.connection, t.message) == (1, 2) else None)
    async with SmtpServer(script) as srv:
        log, _ = await send_all(settings(srv), many(3))
    assert log.outcomes() == [Outcome.SENT] * 3
    assert len(srv.messages) == 3
    assert srv.connections == 2


async def test_a_server_that_always_drops_at_MAIL_gets_one_retry_per_message_not_a_loop() -> None:
    async with SmtpServer(Scripted(mail=DROP)) as srv:
        log, _ = await send_all(settings(srv), many(2))
    assert log.outcomes() == [Outcome.TRANSIENT] * 2
    assert log.results[0].detail == "connection lost at MAIL"
    # message 1: the connection opened at start, then one retry; message 2: a fresh connection only
    assert srv.connections == 3


async def test_M9_an_idle_connection_closed_by_the_server_is_reopened_on_the_next_send() -> None:
    async with SmtpServer(idle_timeout=0.3) as srv, SmtpTransport(settings(srv)) as t:
        first, second = Log(many(2)), Log(envelopes_for(["late@x.org"], start=10))
        await deliver(t, first.source(), first.record)
        await asyncio.sleep(0.8)  # the server closes the idle connection meanwhile
        await deliver(t, second.source(), second.record)
    assert first.outcomes() + second.outcomes() == [Outcome.SENT] * 3
    assert srv.connections == 2


async def test_B9_a_connection_idle_for_a_while_is_checked_with_NOOP_before_reuse() -> None:
    async with SmtpServer() as srv:
        log, _ = await send_all(settings(srv), many(3), idle_noop_after=0.0)
    assert log.outcomes() == [Outcome.SENT] * 3
    assert srv.handler.noops >= 2
    assert srv.connections == 1


async def test_B9_a_connection_is_closed_and_reopened_after_its_message_cap() -> None:
    # [smtp] messages_per_connection: a relay that allows 5 per connection refused the 6th for a
    # while (421) when the cap was fixed at 1,000.
    async with SmtpServer() as srv:
        log, _ = await send_all(settings(srv, messages_per_connection=5), many(12))
    assert log.outcomes() == [Outcome.SENT] * 12
    assert srv.connections == 3
    assert srv.handler.quits == 3  # two at the cap, one at the end
    assert cfg.from_mapping({"smtp": {"messages_per_connection": 5}}).smtp.messages_per_connection == 5


async def test_M10_starttls_with_an_untrusted_certificate_stops_before_anything_is_sent(tmp_path: Path) -> None:
    async with SmtpServer(tls="starttls", certs=make_certs(tmp_path)) as srv:
        with pytest.raises(DeliveryError, match="TLS with the SMTP server 127.0.0.1") as caught:
            await send_all(settings(srv, security="starttls"), many(1))
    assert "ca_file" in caught.value.hint
    assert srv.messages == []


async def test_M10_implicit_tls_with_an_untrusted_certificate_stops(tmp_path: Path) -> None:
    async with SmtpServer(tls="implicit", certs=make_certs(tmp_path)) as srv:
        with pytest.raises(DeliveryError, match="certificate verify failed"):
            await send_all(settings(srv, security="tls"), many(1))
    assert srv.messages == []


async def test_M10_a_server_without_STARTTLS_is_refused_when_starttls_is_required() -> None:
    async with SmtpServer() as srv:
        with pytest.raises(DeliveryError, match="does not offer STARTTLS; refusing to send in plain text"):
            await send_all(settings(srv, security="starttls"), many(1))
    assert srv.messages == []


@pytest.mark.parametrize(("security", "tls"), [("starttls", "starttls"), ("tls", "implicit")])
async def test_starttls_and_implicit_tls_send_when_the_ca_file_trusts_the_server(
    tmp_path: Path, security: str, tls: str
) -> None:
    certs = make_certs(tmp_path)
    async with SmtpServer(tls=tls, certs=certs) as srv:  # type: ignore[arg-type]
        log, _ = await send_all(settings(srv, security=security, ca_file=str(certs.ca_file)), many(3))
    assert log.outcomes() == [Outcome.SENT] * 3
    assert srv.connections == 1


async def test_M11_a_535_raises_SmtpAuthError_naming_the_host_and_records_nobody() -> None:
    async with SmtpServer(Scripted(auth="reject"), require_auth=True) as srv:
        log = Log(many(3))
        with pytest.raises(SmtpAuthError, match=f"127.0.0.1:{srv.port} refused the credentials of 'digest'"):
            async with SmtpTransport(settings(srv, username="digest", password="wrong")) as t:
                await deliver(t, log.source(), log.record)
    assert log.results == [] and log.taken == []
    assert srv.handler.auth_attempts >= 1


async def test_M11_a_530_at_MAIL_raises_SmtpAuthError_and_records_nobody() -> None:
    async with SmtpServer(require_auth=True) as srv:  # and we configured no username
        log = Log(many(3))
        with pytest.raises(SmtpAuthError, match="refused to send without authentication: 530"):
            async with SmtpTransport(settings(srv)) as t:
                await deliver(t, log.source(), log.record)
    assert log.results == []
    assert srv.messages == []


async def test_a_server_that_offers_AUTH_only_after_STARTTLS_is_named_in_one_sentence() -> None:
    async with SmtpServer(auth_needs_tls=True) as srv:  # and we were told security = "none"
        with pytest.raises(DeliveryError) as caught:
            async with SmtpTransport(settings(srv, username="digest", password="secret")):
                pass
    message = caught.value.message
    assert message.startswith(f"The SMTP server 127.0.0.1:{srv.port} cannot be used: ")
    assert message.endswith("(or STARTTLS).")  # aiosmtplib's own period, not one more
    assert srv.messages == []


async def test_correct_credentials_authenticate_and_send() -> None:
    async with SmtpServer(require_auth=True) as srv:
        log, _ = await send_all(settings(srv, username="digest", password="secret"), many(2))
    assert log.outcomes() == [Outcome.SENT] * 2


async def test_M12_consecutive_4xx_open_the_circuit_breaker() -> None:
    async with SmtpServer(Scripted(rcpt="451 4.3.0 Try again later.")) as srv:
        log = Log(many(20))
        with pytest.raises(CircuitOpenError, match="5 messages in a row failed .* the last: 451 4.3.0") as caught:
            async with SmtpTransport(settings(srv, circuit_breaker=5)) as t:
                await deliver(t, log.source(), log.record)
    assert caught.value.message.endswith("Try again later.")  # the reply's own period, not a second one
    assert log.outcomes() == [Outcome.TRANSIENT] * 5
    assert log.taken == [1, 2, 3, 4, 5]  # every envelope taken was recorded
    assert len(srv.handler.rcpt_seen) == 5


async def test_M12_a_success_resets_the_circuit_breaker() -> None:
    script = Scripted(rcpt=lambda t: "451 4.3.0 later" if not t.address.startswith("ok") else None)
    recipients = ["a@x.org", "b@x.org", "ok@x.org"] * 4
    async with SmtpServer(script) as srv:
        log, stats = await send_all(settings(srv, circuit_breaker=3), envelopes_for(recipients))
    assert (stats.sent, stats.transient) == (4, 8)


async def test_M13_the_rate_limit_holds_at_the_server_across_connections_and_reconnects() -> None:
    rate = 20
    async with SmtpServer() as srv:
        log, stats = await send_all(
            settings(srv, connections=3, rate_limit=float(rate)), many(2 * rate), messages_per_connection=7
        )
    assert stats.sent == 2 * rate
    assert srv.connections > 3  # reconnects happened, and the bucket was kept
    starts = sorted(m.mail_at for m in srv.messages)
    # No one-second window holds more than `rate` MAIL commands: message i and i+rate are a second
    # apart. The server stamps MAIL in its own thread, which a loaded CI machine schedules late by
    # up to a few intervals, so each window allows 150 ms of jitter and the whole run must span
    # its full (2 * rate - 1) intervals; without the limiter all 40 arrive within tens of ms.
    gaps = [later - earlier for earlier, later in zip(starts, starts[rate:], strict=False)]
    assert min(gaps) >= 1.0 - 0.15
    assert starts[-1] - starts[0] >= (2 * rate - 1) / rate - 0.15


async def test_rate_limiter_counts_the_gap_from_when_a_send_actually_starts() -> None:
    now = [100.0]
    limiter = RateLimiter(4.0, clock=lambda: now[0])
    assert limiter.delay() == 0.0
    await limiter.take()
    assert limiter.delay() == pytest.approx(0.25)
    now[0] += 10.0  # idle for a long time: no burst is saved up
    await limiter.take()
    assert limiter.delay() == pytest.approx(0.25)
    assert RateLimiter(0.0).delay() == 0.0


async def test_M14_a_throttling_domain_is_left_alone_while_other_domains_keep_flowing() -> None:
    def rcpt(t: Turn) -> str | None:
        return "421 4.7.28 unusual rate of mail, try later" if t.address.endswith("@gmail.com") else None

    recipients = [f"r{i}@{'gmail.com' if i % 2 else 'example.org'}" for i in range(10)]
    async with SmtpServer(Scripted(rcpt=rcpt)) as srv:
        log, stats = await send_all(settings(srv, circuit_breaker=3), envelopes_for(recipients))
    assert (stats.sent, stats.transient) == (5, 5)
    # the first 421 closed a connection, so r1 went again on a new one; the same answer there is
    # the domain's, and gmail.com is left alone from then on
    assert [a for a in srv.handler.rcpt_seen if a.endswith("gmail.com")] == ["r1@gmail.com"] * 2
    deferred = [r for r in log.results if r.outcome is Outcome.TRANSIENT and r.code is None]
    assert len(deferred) == 4
    assert deferred[0].detail.startswith("not attempted: gmail.com is throttling (421 4.7.28")


async def test_B13_a_4_7_x_at_MAIL_throttles_no_recipient_domain() -> None:
    # MAIL names only the sender: a relay's "421 4.7.0" there (twice, so the message is deferred)
    # is about the relay and this client, not about example.org, whose next message still goes.
    script = Scripted(mail=lambda t: "421 4.7.0 too many connections from you" if t.connection <= 2 else None)
    async with SmtpServer(script) as srv:
        log, _ = await send_all(settings(srv), many(3))
    assert log.outcomes() == [Outcome.TRANSIENT, Outcome.SENT, Outcome.SENT]
    assert [m.rcpt_tos[0] for m in srv.messages] == ["reader1@example.org", "reader2@example.org"]


async def test_a_refused_connection_at_start_raises_DeliveryError_naming_host_and_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(DeliveryError, match=f"Cannot connect to the SMTP server 127.0.0.1:{port}") as caught:
        async with SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, timeout=5.0)):
            pass
    assert "host and port" in caught.value.hint


async def test_a_non_ascii_local_part_without_SMTPUTF8_is_permanent_and_the_run_goes_on() -> None:
    async with SmtpServer() as srv:  # aiosmtpd offers SMTPUTF8 only when enabled; here it is not
        log, _ = await send_all(settings(srv), envelopes_for(["jörg@example.de", "b@x.org"]))
    assert log.outcomes() == [Outcome.PERMANENT, Outcome.SENT]
    assert "local part is not ASCII, which needs SMTPUTF8 (RFC 6531)" in log.results[0].detail


async def test_M15_an_internationalised_domain_is_sent_as_its_a_label_and_needs_no_SMTPUTF8() -> None:
    sender = "digest@nachrichten-bücher.example"
    items = [Envelope(1, sender, "leser@straße.de", message(1, "x")), Envelope(2, sender, "b@x.org", message(2, "y"))]
    async with SmtpServer() as srv:
        log, _ = await send_all(settings(srv), items)
    assert log.outcomes() == [Outcome.SENT, Outcome.SENT]
    # IDNA 2008 as email-validator spells it: Python's "idna" codec (IDNA 2003) would say strasse.de
    assert [m.rcpt_tos for m in srv.messages] == [("leser@xn--strae-oqa.de",), ("b@x.org",)]
    assert {m.mail_from for m in srv.messages} == {"digest@xn--nachrichten-bcher-f3b.example"}


async def test_M15_with_SMTPUTF8_a_non_ascii_local_part_is_sent() -> None:
    async with SmtpServer(smtputf8=True) as srv:
        log, _ = await send_all(settings(srv), envelopes_for(["jörg@bücher.de"]))
    assert log.outcomes() == [Outcome.SENT]
    assert srv.messages[0].rcpt_tos == ("jörg@xn--bcher-kva.de",)


async def test_a_non_ascii_sender_without_SMTPUTF8_stops_the_run_instead_of_failing_subscribers() -> None:
    items = [Envelope(1, "rédaction@news.test", "a@example.org", message(1, "a@example.org"))]
    async with SmtpServer() as srv:
        with pytest.raises(DeliveryError, match="non-ASCII local part, which needs SMTPUTF8") as caught:
            await send_all(settings(srv), items)
    assert "[smtp] sender" in caught.value.hint and srv.messages == []


# --------------------------------------------------------------------------- S: stopping


async def test_S4_stop_mid_run_lets_in_flight_messages_finish_and_be_recorded() -> None:
    stop = asyncio.Event()
    async with SmtpServer(Scripted(stall=0.2)) as srv:
        log = Log(many(20))

        async def record(result: Result) -> None:
            await log.record(result)
            stop.set()  # SIGTERM arrives while the other workers are mid-DATA

        async with SmtpTransport(settings(srv, connections=3)) as t:
            stats = await deliver(t, log.source(), record, stop=stop)
    assert sorted(r.key for r in log.results) == sorted(log.taken)  # nothing taken was left unrecorded
    assert 1 <= len(log.results) <= 3  # only what was in flight
    assert stats.sent == len(log.results) == len(srv.messages)


async def test_S5_stop_while_the_rate_limiter_waits_takes_nothing_more() -> None:
    stop = asyncio.Event()
    async with SmtpServer() as srv:
        log = Log(many(5))

        async def record(result: Result) -> None:
            await log.record(result)
            stop.set()

        async with SmtpTransport(settings(srv, rate_limit=0.5)) as t:  # the next slot is 2 s away
            await deliver(t, log.source(), record, stop=stop)
    assert log.taken == [1]
    assert len(srv.messages) == 1


async def test_S10_a_failing_record_stops_the_run_after_in_flight_messages() -> None:
    async with SmtpServer() as srv:
        log = Log(many(10))

        async def record(result: Result) -> None:
            await log.record(result)
            if len(log.results) == 3:
                raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            async with SmtpTransport(settings(srv)) as t:
                await deliver(t, log.source(), record)
    assert len(srv.messages) == 3  # nothing more went out on unrecorded state


# --------------------------------------------------------------------------- file transport


async def test_file_transport_writes_one_parseable_eml_per_key(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "dry-run"
    items = envelopes_for(["a@x.org", "b@x.org"], start=7)
    log = Log(items)
    async with FileTransport(folder) as t:
        stats = await deliver(t, log.source(), log.record)
    assert stats.sent == 2
    assert sorted(p.name for p in folder.iterdir()) == ["7.eml", "8.eml"]
    parsed = email.message_from_bytes((folder / "8.eml").read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "b@x.org" and parsed["Subject"] == "Edition 8"
    assert (folder / "7.eml").read_bytes() == items[0].data
    assert log.results[0].detail == f"written to {folder / '7.eml'}"


async def test_file_transport_names_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryError, match="Cannot create the folder"):
        async with FileTransport(blocker / "out"):
            pass


# --------------------------------------------------------------------------- the fixture itself


def test_the_smtp_fixture_serves_sync_clients_too() -> None:
    with SmtpServer() as srv, smtplib.SMTP(srv.host, srv.port) as client:
        client.sendmail("a@x.org", ["b@x.org"], b"Subject: hi\r\n\r\nbody\r\n")
    assert [(m.mail_from, m.rcpt_tos) for m in srv.messages] == [("a@x.org", ("b@x.org",))]


async def test_an_address_with_a_line_break_is_permanent_and_never_reaches_the_wire() -> None:
    async with SmtpServer(Scripted()) as srv:
        log, _ = await send_all(settings(srv), envelopes_for(["a@x.org\r\nRCPT TO:<evil@x.org>", "b@x.org"]))
    assert log.outcomes() == [Outcome.PERMANENT, Outcome.SENT]
    assert srv.handler.rcpt_seen == ["b@x.org"]
    assert [m.rcpt_tos for m in srv.messages] == [("b@x.org",)]
    assert log.results[0].detail == "not sent: the recipient address contains a space or control character"


async def test_a_sender_with_a_line_break_is_a_configuration_error_not_a_bounce() -> None:
    async with SmtpServer() as srv:
        items = [Envelope(1, "digest@news.test\nX: y", "a@x.org", message(1, "a@x.org"))]
        with pytest.raises(DeliveryError, match="smtp.sender"):
            await send_all(settings(srv), items)
    assert srv.messages == []


# --------------------------------------------------------------------------- who a refusal concerns


async def test_M16_a_5xx_at_MAIL_FROM_stops_the_run_naming_the_sender_and_records_nobody() -> None:
    # The relay refuses the envelope sender (an account not allowed to send as it): every message
    # would meet the same refusal, and none of it concerns a subscriber.
    refusal_text = "553 5.7.1 <digest@news.test>: Sender address rejected: not owned by user"
    async with SmtpServer(Scripted(mail=refusal_text)) as srv:
        log = Log(many(5))
        with pytest.raises(SenderRefusedError, match="refused the sender 'digest@news.test': 553 5.7.1") as caught:
            async with SmtpTransport(settings(srv)) as t:
                await deliver(t, log.source(), log.record)
    assert "[smtp] sender" in caught.value.hint and "no subscriber was marked failed" in caught.value.hint
    assert log.results == [] and log.taken == [1], "the one message taken is never recorded"
    assert srv.messages == []


@pytest.mark.parametrize(
    ("script", "stage"),
    [
        (Scripted(mail="552 5.3.4 message too big"), "MAIL"),
        (Scripted(mail="552 message size exceeds fixed maximum message size"), "MAIL"),
        (Scripted(data="552 5.3.4 message too big for system"), "."),
        (Scripted(data="554 5.3.4 message too big"), "."),
        (Scripted(data="552 5.2.3 message length exceeds administrative limit"), "."),
    ],
    ids=["552-5.3.4-at-MAIL", "552-at-MAIL", "552-5.3.4-after-DATA", "554-5.3.4-after-DATA", "552-5.2.3-after-DATA"],
)
async def test_M4_a_message_refused_as_too_big_stays_pending_and_never_opens_the_breaker(
    script: Scripted, stage: str
) -> None:
    # A relay whose limit is not offered in EHLO refuses at MAIL (digest sends SIZE=) or at the
    # end of DATA: the edition is too big, which is neither a subscriber's fault (no strike: a
    # transient result) nor the server failing (50 of them opened the breaker, as for an outage).
    async with SmtpServer(script, size_limit=0) as srv:
        log, stats = await send_all(settings(srv, circuit_breaker=3), many(6))
    assert stats.transient == 6
    assert all(r.too_big and r.stage == stage for r in log.results)
    size = len(many(1)[0].data)
    assert log.results[0].detail.endswith(
        f": the message is {size:,} bytes, too big for the SMTP server; make editions smaller "
        "([digest] max_items_per_section or a section's max_items, excerpt_chars, images)"
    )


async def test_M4_a_message_over_the_servers_SIZE_is_not_sent_and_says_by_how_much() -> None:
    items = many(60)
    limit = min(len(e.data) for e in items) - 1
    async with SmtpServer(size_limit=limit) as srv:
        log, stats = await send_all(settings(srv), items)  # circuit_breaker 50: never opened
    assert stats.transient == 60 and srv.handler.rcpt_seen == [] and srv.messages == []
    size = {e.key: len(e.data) for e in items}
    assert all(r.too_big and r.code is None for r in log.results)
    assert [r.detail for r in log.results] == [
        f"not sent: the message is {size[r.key]:,} bytes, over the {limit:,} the SMTP server 127.0.0.1:{srv.port} "
        "takes (its SIZE); make editions smaller ([digest] max_items_per_section or a section's max_items, "
        "excerpt_chars, images)"
        for r in log.results
    ]


async def test_M4_a_message_within_the_servers_SIZE_goes_and_so_do_its_neighbours_past_it() -> None:
    small, big = envelopes_for(["small@example.org"]), envelopes_for(["big@example.org"], start=2)
    big = [Envelope(2, SENDER, "big@example.org", big[0].data + b"x" * 500 + b"\r\n")]
    async with SmtpServer(size_limit=len(small[0].data) + 100) as srv:
        log, _ = await send_all(settings(srv), [*small, *big, *envelopes_for(["after@example.org"], start=3)])
    assert log.outcomes() == [Outcome.SENT, Outcome.TRANSIENT, Outcome.SENT]
    assert [m.rcpt_tos[0] for m in srv.messages] == ["small@example.org", "after@example.org"]


@pytest.mark.parametrize(
    ("reply", "stage", "verdict"),
    [
        ("552 5.3.4 message too big", "MAIL", True),
        ("552 too much mail data", ".", True),
        ("552 5.2.3 message length exceeds administrative limit", ".", True),
        ("452 4.3.4 message too big for now", "MAIL", True),
        ("552 5.2.2 mailbox full", ".", False),
        ("552 4.5.3 too many recipients", "RCPT", False),
        ("552 too many recipients", "RCPT", False),
        ("554 5.7.1 message content rejected", ".", False),
    ],
)
def test_M4_a_reply_says_the_message_is_too_big_only_by_its_code_or_a_552_at_MAIL_or_the_end(
    reply: str, stage: str, verdict: bool
) -> None:
    code, _, text = reply.partition(" ")
    assert is_too_big(int(code), text, stage) is verdict


@pytest.mark.parametrize(
    ("stage", "reply", "verdict"),
    [
        ("RCPT", "550 5.1.1 <a@x.org>: user unknown", Refusal.NO_SUCH_USER),
        ("RCPT", "550 5.1.2 bad destination system", Refusal.NO_SUCH_USER),
        ("RCPT", "556 5.1.10 domain does not accept mail", Refusal.NO_SUCH_USER),
        ("RCPT", "550 5.1.11 something else", Refusal.MAILBOX),
        ("RCPT", "550 mailbox unavailable", Refusal.MAILBOX),
        ("RCPT", "550 5.2.1 mailbox disabled", Refusal.MAILBOX),
        ("RCPT", "554 5.7.1 recipient refused by policy", Refusal.MAILBOX),
        (".", "554 5.7.1 message content rejected", Refusal.MESSAGE),
        (".", "554 5.6.0 content rejected", Refusal.MESSAGE),
        (".", "554 transaction failed", Refusal.MESSAGE),
        (".", "550 5.1.1 user unknown", Refusal.NO_SUCH_USER),
        (".", "550 5.2.1 mailbox disabled", Refusal.MAILBOX),
        (None, "not sent: the recipient address contains a space or control character", Refusal.MAILBOX),
    ],
)
def test_M3_M5_a_permanent_refusal_says_whether_the_address_or_the_message_was_refused(
    stage: str | None, reply: str, verdict: Refusal
) -> None:
    code = int(reply[:3]) if reply[:3].isdigit() else None
    assert refusal(Result(1, Outcome.PERMANENT, code, reply, stage)) is verdict


async def test_M5_a_refusal_at_the_end_of_DATA_names_its_stage_so_it_charges_the_message_not_the_address() -> None:
    script = Scripted(
        rcpt=lambda t: "550 5.1.1 no such user" if t.address.startswith("gone") else None,
        data=lambda t: "554 5.7.1 message content rejected" if t.address.startswith("spam") else None,
    )
    async with SmtpServer(script) as srv:
        log, _ = await send_all(settings(srv), envelopes_for(["gone@x.org", "spam@x.org"]))
    assert [(r.stage, refusal(r)) for r in sorted(log.results, key=lambda r: r.key)] == [
        ("RCPT", Refusal.NO_SUCH_USER),
        (".", Refusal.MESSAGE),
    ]


# --------------------------------------------------------------------------- TLS and port mix-ups


async def test_M10_implicit_tls_against_a_plain_smtp_port_hints_starttls_not_the_ca_file() -> None:
    async with SmtpServer() as srv:  # plain SMTP, as on port 587 or 25
        with pytest.raises(DeliveryError, match="WRONG_VERSION_NUMBER|wrong version number") as caught:
            await send_all(settings(srv, security="tls"), many(1))
    assert 'security = "starttls"' in caught.value.hint and "ca_file" not in caught.value.hint
    assert srv.messages == []


async def test_M10_a_port_that_opens_and_never_greets_hints_implicit_tls() -> None:
    # What an implicit-TLS port (465) does to a client that waits for a greeting in plain text:
    # it takes the connection and waits for a TLS hello that never comes.
    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            accepted.append(conn)

    acceptor = asyncio.create_task(accept())
    try:
        s = SmtpSettings(host="127.0.0.1", port=listener.getsockname()[1], timeout=0.5, connections=1)
        with pytest.raises(DeliveryError, match="no greeting in 0.5s") as caught:
            async with SmtpTransport(s):
                pass
    finally:
        acceptor.cancel()
        for conn in accepted:
            conn.close()
        listener.close()
    assert 'security = "tls"' in caught.value.hint and "465" in caught.value.hint


async def test_M10_a_closed_port_still_asks_whether_the_server_is_running() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(DeliveryError, match="Cannot connect") as caught:
        async with SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, timeout=2.0, connections=1)):
            pass
    assert "Is the SMTP server running" in caught.value.hint and "implicit TLS" not in caught.value.hint
