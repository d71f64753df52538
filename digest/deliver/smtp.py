"""The SMTP transport: a pool of reused aiosmtplib connections, shared by deliver()'s workers, and
the MAIL, RCPT, DATA transaction of each message on one of them (see the package docstring).

What it leans on: `connection` opens and closes one connection; `pacing` says when the next send
may go (rate limit, per-domain back-off, circuit breaker); `envelopes` makes an envelope fit for
the wire; `replies` says what a refusal means. This module is where those meet the network.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time

import aiosmtplib

from digest.config import SmtpSettings
from digest.deliver.connection import ConnectFailed, Connection, open_smtp
from digest.deliver.core import (
    DATA_REPLY_TIMEOUT,
    IDLE_NOOP_AFTER,
    Envelope,
    Outcome,
    Result,
    data_block,
    one_line,
)
from digest.deliver.envelopes import mail_options, over_size, wire_form, without_smtputf8
from digest.deliver.pacing import CircuitBreaker, DomainThrottles, RateLimiter
from digest.deliver.replies import classify, refused
from digest.errors import DeliveryError, DigestError, SmtpAuthError, full_stop

log = logging.getLogger(__name__)


class _DroppedBeforeData(Exception):
    """The server closed the connection before the message was handed over: safe to retry."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage


class _ClosedBeforeData(Exception):
    """The server answered 421 before the message was handed over (MAIL, RCPT or the DATA
    command): it is closing this connection (RFC 5321 section 3.8), often because a relay caps
    the messages of one connection, and nothing of this message reached it. `result` is what the
    message gets when a fresh connection does no better."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.detail)
        self.result = result


class SmtpTransport:
    """A pool of `settings.connections` reused SMTP connections (B9), shared by deliver()'s workers."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        messages_per_connection: int | None = None,
        idle_noop_after: float = IDLE_NOOP_AFTER,
        data_timeout: float | None = None,
        must_open: bool = False,
    ) -> None:
        self._settings = settings
        # The first connection must open (`digest check-config --smtp`): a server that is reachable
        # but not ready (421 at the greeting) is an error there, where a send defers its messages.
        self._must_open = must_open
        # A timeout after the final "." may mean a duplicate later, so wait longer there than for
        # other commands (RFC 5321 4.5.3.2.6 suggests 10 minutes; B8 says at least 2-5).
        self._data_timeout = data_timeout or max(settings.timeout, DATA_REPLY_TIMEOUT)
        self.concurrency = settings.connections
        self._cap = messages_per_connection or settings.messages_per_connection
        self._idle = idle_noop_after
        self._limiter = RateLimiter(settings.rate_limit)
        self._throttles = DomainThrottles()
        self._breaker = CircuitBreaker(settings.circuit_breaker, self.where)
        self._connections = [Connection(n + 1) for n in range(settings.connections)]
        self._pool: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in self._connections:
            self._pool.put_nowait(conn)
        self._tls: ssl.SSLContext | None = None
        self._helo: str | None = None

    @property
    def where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    # --- lifecycle

    async def __aenter__(self) -> SmtpTransport:
        s = self._settings
        if s.security != "none":
            try:
                # Both modes verify the certificate and the host name (A2); ca_file for a private relay.
                self._tls = ssl.create_default_context(cafile=s.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise DeliveryError(f"smtp.ca_file = {s.ca_file!r} cannot be read as CA certificates: {exc}.") from exc
        self._helo = await asyncio.to_thread(socket.getfqdn)  # once, not on every reconnect
        # Open one connection now so that a wrong host, port, certificate or password stops the
        # run before any envelope is taken. A busy server (421) is not fatal: sends report it.
        first = self._connections[0]
        try:
            await self._open(first)
        except ConnectFailed as failure:
            if not failure.reachable:
                hint = "Is the SMTP server running, and are [smtp] host and port right? "
                if failure.silent and s.security != "tls":
                    # A server on an implicit-TLS port (465) waits for our TLS hello, as we wait
                    # for its greeting: the port took the connection and then said nothing.
                    hint = 'The port may speak implicit TLS: use security = "tls" (usually port 465). '
                raise DeliveryError(
                    f"Cannot connect to the SMTP server {self.where}: {full_stop(failure.detail)}",
                    hint=hint + "Unsent messages stay pending for the next run.",
                ) from failure
            if self._must_open:
                raise DeliveryError(
                    f"The SMTP server {self.where} is not ready: {full_stop(failure.detail)}",
                    hint="A send would defer its messages and try again later; check the server's logs.",
                ) from failure
            log.warning("smtp %s not ready at start: %s", self.where, failure.detail)
        return self

    def session(self) -> tuple[aiosmtplib.SMTP, str]:
        """The connection opened on entry (greeted, TLS and AUTH done) and the server's greeting."""
        first = self._connections[0]
        if first.smtp is None or not first.open:
            raise DeliveryError(f"The SMTP server {self.where} closed the connection it had just opened.")
        return first.smtp, first.greeting

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(conn.quit(self._settings.timeout) for conn in self._connections))

    # --- pacing and the circuit breaker

    def ready_in(self) -> float:
        self._breaker.check()
        return self._limiter.delay()

    def set_rate(self, rate: float) -> None:
        """Sends per second from the next one on, this transport's connections together."""
        self._limiter.set_rate(rate)

    # --- sending

    async def send(self, envelope: Envelope) -> Result:
        self._breaker.check()
        prepared = wire_form(envelope)
        if isinstance(prepared, Result):
            return prepared
        envelope = prepared
        deferral = self._throttles.deferral(envelope.recipient)
        if deferral is not None:
            # Not the server's answer to this message, so it does not count toward the breaker.
            return Result(envelope.key, Outcome.TRANSIENT, None, deferral)
        conn = await self._pool.get()
        try:
            result = await self._send_on(conn, envelope)
        finally:
            self._pool.put_nowait(conn)
        self._throttles.note(envelope.recipient, result)
        if result.too_big:
            # The message's size, not the server's health: no step toward the breaker (50 too-big
            # messages stopped the run as if the server failed), none away from it. The sender
            # says it once per edition rather than a line per subscriber.
            log.info("smtp key=%d outcome=%s %s", envelope.key, result.outcome.value, result.detail)
            return result
        self._breaker.count(result)
        if result.outcome is not Outcome.SENT:
            log.warning("smtp key=%d outcome=%s %s", envelope.key, result.outcome.value, result.detail)
        return result

    async def _send_on(self, conn: Connection, envelope: Envelope) -> Result:
        dropped = closed = 0  # retries so far, each kind bounded: a server that always does it is not looped on
        while True:
            try:
                reused = await self._ready(conn)
            except ConnectFailed as failure:
                return Result(envelope.key, Outcome.TRANSIENT, failure.code, failure.detail)
            assert conn.smtp is not None
            too_big = over_size(envelope, conn.smtp.esmtp_extensions, where=self.where)
            if too_big is not None:
                return too_big
            await self._limiter.take()  # last thing before MAIL, on a connection that is ready
            try:
                return await self._transaction(conn, envelope)
            except _DroppedBeforeData as drop:
                conn.close()
                # A pooled connection the server had already closed: nothing of this message
                # reached it, so reconnect and try once more. A fresh connection that drops is
                # the server's problem, reported as TRANSIENT.
                if not reused or dropped:
                    return Result(envelope.key, Outcome.TRANSIENT, None, f"connection lost at {drop.stage}")
                dropped += 1
                log.info("smtp connection=%d was closed by the server; reconnecting", conn.number)
            except _ClosedBeforeData as closing:
                # A 421 before DATA closes this connection, not the message's chances: a relay
                # that caps messages per connection answers so to the first one past its cap, and
                # a new connection takes it at once. Deferring it (5 minutes) for that made one
                # message in N wait; a second 421 on a fresh connection is the server's answer
                # to this message, deferred as any 4xx is.
                if closed:
                    return closing.result
                closed += 1
                log.info(
                    "smtp connection=%d key=%d: %s before the message was handed over; sending it on a new connection",
                    conn.number,
                    envelope.key,
                    closing.result.detail,
                )

    async def _ready(self, conn: Connection) -> bool:
        """Make conn usable; True when an existing connection is reused."""
        if conn.open and conn.messages >= self._cap:
            await conn.quit(self._settings.timeout)
        elif conn.open and conn.smtp is not None and time.monotonic() - conn.last_used > self._idle:
            try:
                await conn.smtp.noop()
            except (aiosmtplib.SMTPException, OSError):
                conn.close()
        if conn.open:
            return True
        await self._open(conn)
        return False

    async def _open(self, conn: Connection) -> None:
        smtp, greeting = await open_smtp(self._settings, helo=self._helo, tls=self._tls, where=self.where)
        conn.smtp, conn.messages, conn.last_used = smtp, 0, time.monotonic()
        conn.greeting = greeting
        log.info("smtp connected host=%s connection=%d security=%s", self.where, conn.number, self._settings.security)

    async def _transaction(self, conn: Connection, envelope: Envelope) -> Result:
        """MAIL, RCPT, DATA for one envelope. The three commands are sent one by one (not with
        sendmail) because what a lost connection means depends on where it was lost."""
        smtp = conn.smtp
        assert smtp is not None
        conn.messages += 1
        key = envelope.key
        options, encoding = mail_options(smtp.esmtp_extensions, envelope)
        if options is None:
            return without_smtputf8(envelope, where=self.where)
        stage = "MAIL"  # then RCPT, DATA (the command), "." (the content was handed over)
        try:
            await smtp.mail(envelope.sender, options=options, encoding=encoding)
            stage = "RCPT"
            await smtp.rcpt(envelope.recipient, encoding=encoding)
            stage = "DATA"
            start = await smtp.execute_command(b"DATA")
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            stage = "."
            reply = await self._content(smtp, data_block(envelope.data, crlf=envelope.crlf))
        except aiosmtplib.SMTPServerDisconnected as exc:
            conn.close()
            if stage != ".":
                raise _DroppedBeforeData(stage) from exc
            # RFC 5321 section 4.5.3.2.6: the server may have taken it; the re-send keeps the Message-ID.
            detail = "connection lost during DATA; it may have been delivered"
            return Result(key, Outcome.TRANSIENT, None, detail)
        except aiosmtplib.SMTPTimeoutError:
            conn.close()
            maybe = "; it may have been delivered" if stage == "." else ""
            waited = self._data_timeout if stage == "." else self._settings.timeout
            detail = f"no reply to {'DATA' if stage == '.' else stage} in {waited:g}s{maybe}"
            return Result(key, Outcome.TRANSIENT, None, detail)
        except aiosmtplib.SMTPResponseException as exc:
            answer = refused(
                exc.code,
                exc.message,
                stage,
                key=key,
                size=len(envelope.data),
                where=self.where,
                sender=envelope.sender,
            )
            if isinstance(answer, SmtpAuthError):
                raise answer from exc  # the server wants credentials: nothing to reset for
            await self._reset(conn, exc.code)
            if isinstance(answer, DigestError):
                raise answer from exc
            if exc.code == 421 and stage != "." and not answer.too_big:
                raise _ClosedBeforeData(answer) from exc
            return answer
        except ValueError as exc:  # an address aiosmtplib will not put on the wire
            await self._reset(conn, 0)
            return Result(key, Outcome.PERMANENT, None, one_line(None, f"address cannot be sent: {exc}"))
        finally:
            conn.last_used = time.monotonic()
        return Result(key, classify(reply.code), reply.code, one_line(reply.code, reply.message), stage)

    async def _content(self, smtp: aiosmtplib.SMTP, block: bytes) -> aiosmtplib.SMTPResponse:
        """Write the message (a data_block) after the 354 and wait (long: B8) for the final reply.

        aiosmtplib's own data() rewrites line ends and dot-stuffs with two regular expressions over
        the whole message, which cost more CPU than everything else in a send (about 1 ms for a
        100 kB edition); data_block() does the same with bytes.replace. Each connection is used by
        one send at a time (the pool), so nothing else reads replies on it meanwhile.
        """
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(block)  # raises SMTPServerDisconnected on a closed connection
        reply = await protocol.read_response(timeout=self._data_timeout)
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply

    async def _reset(self, conn: Connection, code: int) -> None:
        """After a refusal: RSET for the next message, or close when the server is closing (421)."""
        if code == 421 or not conn.open or conn.smtp is None:
            conn.close()
            return
        try:
            await conn.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            conn.close()  # B9: close and reopen after a failed reset
