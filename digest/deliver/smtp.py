"""The SMTP transport: a pool of reused aiosmtplib connections, rate limit, per-domain back-off,
circuit breaker and reply classification (see the package docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import Callable

import aiosmtplib

from digest.addresses import ascii_domain
from digest.config import SmtpSettings
from digest.deliver.core import (
    _THROTTLE,
    DATA_REPLY_TIMEOUT,
    DOMAIN_BACKOFF,
    IDLE_NOOP_AFTER,
    Envelope,
    Outcome,
    Result,
    classify,
    data_block,
    is_too_big,
    one_line,
)
from digest.errors import (
    CircuitOpenError,
    DeliveryError,
    SenderRefusedError,
    SmtpAuthError,
    SubscriberError,
    full_stop,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- SMTP helpers


class RateLimiter:
    """At most `rate` sends start per second, across all connections and reconnects (B11).

    Starts are spaced at least 1/rate apart (no burst), so no one-second window holds more than
    `rate` of them. The slot is claimed when the sender actually goes, not when it starts waiting:
    a worker that wakes late (a busy loop, a slow reconnect) never makes the next gap shorter.
    rate 0 means no limit.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._next = -math.inf

    def delay(self) -> float:
        return max(0.0, self._next - self._clock()) if self._interval else 0.0

    def set_rate(self, rate: float) -> None:
        """A new rate from the next start on (a worker's share of a shared limit changes)."""
        self._interval = 1.0 / rate if rate > 0 else 0.0

    async def take(self) -> None:
        if not self._interval:
            return
        while (wait := self._next - self._clock()) > 0:
            await asyncio.sleep(wait)  # another worker may claim the slot first: then wait again
        self._next = self._clock() + self._interval


class _Throttles:
    """Recipient domains that answered 4.7.x (e.g. Gmail's 421 4.7.28) are left alone for a while,
    while other domains keep flowing (B13; RFC 5321 section 4.5.4.1).

    Only a reply to a command that names the recipient (RCPT, or the DATA that follows it) speaks
    for its domain: MAIL names only the sender, so a 4.7.x there (a relay's "421 4.7.0 too many
    messages on this connection") says nothing of example.org, and keying it there held back every
    later message to example.org for 5 minutes. A 421 at RCPT reaches here only when a fresh
    connection met it again (`SmtpTransport._send_on`): one that went away was the connection's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, tuple[float, str]] = {}
        self._clock = clock

    @staticmethod
    def _domain(recipient: str) -> str:
        return recipient.rpartition("@")[2].lower()

    def deferral(self, recipient: str) -> str | None:
        hold = self._until.get(self._domain(recipient))
        if hold is None or hold[0] <= self._clock():
            return None
        return f"not attempted: {self._domain(recipient)} is throttling ({hold[1]})"

    def note(self, recipient: str, result: Result) -> None:
        if result.stage not in ("RCPT", "DATA", "."):
            return
        text = result.detail.partition(" ")[2]
        if result.outcome is Outcome.TRANSIENT and result.code is not None and _THROTTLE.match(text):
            self._until[self._domain(recipient)] = (self._clock() + DOMAIN_BACKOFF, result.detail)


# What an operator changes when editions are too big for their relay (the sender repeats it).
SMALLER = "make editions smaller ([digest] max_items_per_section or a section's max_items, excerpt_chars, images)"


def size_limit(smtp: aiosmtplib.SMTP) -> int | None:
    """The largest message the server takes, as its EHLO's SIZE says (RFC 1870); None when it
    offers no SIZE or "SIZE 0" (no fixed limit)."""
    words = smtp.esmtp_extensions.get("size", "").split()
    limit = int(words[0]) if words and words[0].isdigit() else 0
    return limit or None


_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _unsafe(address: str) -> bool:
    return _SPACE_OR_CONTROL.search(address) is not None


class _ConnectFailed(Exception):
    """A connection could not be opened for a reason worth retrying later (TRANSIENT)."""

    def __init__(self, code: int | None, detail: str, *, reachable: bool, silent: bool = False) -> None:
        super().__init__(detail)
        self.code, self.detail, self.reachable = code, detail, reachable
        self.silent = silent  # the TCP connection opened, and no greeting came


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


class _Connection:
    """One pooled SMTP connection and its reuse counters."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.smtp: aiosmtplib.SMTP | None = None
        self.greeting = ""  # the server's 220 line when it opened
        self.messages = 0
        self.last_used = 0.0

    @property
    def open(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None


# --------------------------------------------------------------------------- SMTP transport


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
        self._throttles = _Throttles()
        self._connections = [_Connection(n + 1) for n in range(settings.connections)]
        self._pool: asyncio.Queue[_Connection] = asyncio.Queue()
        for conn in self._connections:
            self._pool.put_nowait(conn)
        self._tls: ssl.SSLContext | None = None
        self._helo: str | None = None
        self._failures = 0  # consecutive non-SENT results from the server (B12)
        self._last_failure = ""

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
        except _ConnectFailed as failure:
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
        await asyncio.gather(*(self._quit(conn) for conn in self._connections))

    async def _quit(self, conn: _Connection) -> None:
        if conn.open and conn.smtp is not None:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(self._settings.timeout):
                    await conn.smtp.quit()
        conn.close()

    # --- pacing and the circuit breaker

    def ready_in(self) -> float:
        self._check_breaker()
        return self._limiter.delay()

    def set_rate(self, rate: float) -> None:
        """Sends per second from the next one on, this transport's connections together."""
        self._limiter.set_rate(rate)

    def _check_breaker(self) -> None:
        limit = self._settings.circuit_breaker
        if self._failures >= limit:
            raise CircuitOpenError(
                f"{self._failures} messages in a row failed at the SMTP server {self.where}; "
                f"the last: {full_stop(self._last_failure)}"
            )

    def _count(self, result: Result) -> None:
        if result.outcome is Outcome.SENT:
            self._failures = 0
        else:
            self._failures += 1
            self._last_failure = result.detail

    # --- sending

    async def send(self, envelope: Envelope) -> Result:
        self._check_breaker()
        if _unsafe(envelope.sender):
            raise DeliveryError(
                f"smtp.sender {envelope.sender!r} contains a space or control character.",
                hint="Fix [smtp] sender in your config file.",
            )
        if _unsafe(envelope.recipient) or not envelope.recipient:
            # aiosmtplib would quietly keep the part before a line break; refuse the address instead
            detail = "not sent: the recipient address contains a space or control character"
            return Result(envelope.key, Outcome.PERMANENT, None, detail)
        if not (envelope.sender.isascii() and envelope.recipient.isascii()):
            try:
                envelope = self._ascii_domains(envelope)
            except SubscriberError as exc:
                detail = one_line(None, f"not sent: {exc.message.rstrip('.')}")
                return Result(envelope.key, Outcome.PERMANENT, None, detail)
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
        self._count(result)
        if result.outcome is not Outcome.SENT:
            log.warning("smtp key=%d outcome=%s %s", envelope.key, result.outcome.value, result.detail)
        return result

    @staticmethod
    def _ascii_domains(envelope: Envelope) -> Envelope:
        """The envelope with both domains in IDNA A-labels (user@xn--bcher-kva.de), always, not only
        when the server lacks SMTPUTF8: an A-label is valid on every server (RFC 5890 2.3.2.1, RFC
        5321 2.3.5), it is the form digest.message writes in To and From, and with it only a
        non-ASCII local part needs SMTPUTF8. A sender whose domain IDNA cannot write is the
        operator's to fix; a recipient's fails that message alone (SubscriberError)."""
        try:
            sender = ascii_domain(envelope.sender)
        except SubscriberError as exc:
            raise DeliveryError(
                f"The envelope sender cannot be put on the wire: {exc.message}",
                hint="Fix [smtp] sender (or [bounces] domain) in your config file.",
            ) from None
        return dataclasses.replace(envelope, sender=sender, recipient=ascii_domain(envelope.recipient))

    async def _send_on(self, conn: _Connection, envelope: Envelope) -> Result:
        dropped = closed = 0  # retries so far, each kind bounded: a server that always does it is not looped on
        while True:
            try:
                reused = await self._ready(conn)
            except _ConnectFailed as failure:
                return Result(envelope.key, Outcome.TRANSIENT, failure.code, failure.detail)
            assert conn.smtp is not None
            limit = size_limit(conn.smtp)
            if limit is not None and len(envelope.data) > limit:
                # RFC 1870 section 6.1: a message over the server's SIZE would be refused at MAIL
                # (552), and is, on every connection, until the edition is made smaller.
                detail = (
                    f"not sent: the message is {len(envelope.data):,} bytes, over the {limit:,} "
                    f"the SMTP server {self.where} takes (its SIZE); {SMALLER}"
                )
                return Result(envelope.key, Outcome.TRANSIENT, None, detail, too_big=True)
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

    async def _ready(self, conn: _Connection) -> bool:
        """Make conn usable; True when an existing connection is reused."""
        if conn.open and conn.messages >= self._cap:
            await self._quit(conn)
        elif conn.open and conn.smtp is not None and time.monotonic() - conn.last_used > self._idle:
            try:
                await conn.smtp.noop()
            except (aiosmtplib.SMTPException, OSError):
                conn.close()
        if conn.open:
            return True
        await self._open(conn)
        return False

    async def _open(self, conn: _Connection) -> None:
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            local_hostname=self._helo,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=False,  # done below, so that a missing STARTTLS is an error, not plain text
            tls_context=self._tls,
        )
        step = "connect"
        try:
            # aiosmtplib clients have hung on reconnect (aiosmtplib#243): bound the whole opening.
            # A second more than aiosmtplib's own bound on each step, so that its error, which
            # tells a silent greeting from a connection never made, comes first.
            async with asyncio.timeout(s.timeout + 1.0):
                greeting = await smtp.connect()
                step = "EHLO"
                await self._greet(smtp)
                if s.security == "starttls":
                    step = "STARTTLS"
                    if not smtp.supports_extension("starttls"):
                        raise DeliveryError(
                            f"The SMTP server {self.where} does not offer STARTTLS; refusing to send in plain text.",
                            hint='Use security = "tls" (port 465) or a server that offers STARTTLS.',
                        )
                    await smtp.starttls()
                    await self._greet(smtp)
                if s.username:
                    step = "AUTH"
                    await smtp.login(s.username, s.password or "")
        except BaseException as exc:
            # aiosmtplib's timeout waiting for the greeting, on a connection that did open
            opened = isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) and isinstance(
                exc.__cause__, aiosmtplib.SMTPTimeoutError
            )
            smtp.close()
            if isinstance(exc, Exception):
                self._translate_connect_error(exc, step, opened=opened)
            raise
        conn.smtp, conn.messages, conn.last_used = smtp, 0, time.monotonic()
        conn.greeting = one_line(greeting.code, greeting.message)
        log.info("smtp connected host=%s connection=%d security=%s", self.where, conn.number, s.security)

    @staticmethod
    async def _greet(smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()

    def _translate_connect_error(self, exc: Exception, step: str, *, opened: bool = False) -> None:
        """Raise the DigestError or _ConnectFailed that `exc`, met at `step` of opening, stands for;
        `opened`: the TCP connection was made."""
        if isinstance(exc, DeliveryError):
            raise exc
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            raise SmtpAuthError(
                f"The SMTP server {self.where} refused the credentials of {self._settings.username!r}: "
                f"{full_stop(one_line(exc.code, exc.message))}"
            ) from exc
        tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
        if step == "STARTTLS" or isinstance(tls_error, ssl.SSLError | ssl.CertificateError):
            reason = tls_error if isinstance(tls_error, ssl.SSLError) else exc
            hint = (
                "If the relay uses a private CA, set [smtp] ca_file to its certificate; "
                "check that [smtp] host matches the certificate."
            )
            if getattr(reason, "reason", None) == "WRONG_VERSION_NUMBER" and step == "connect":
                # The reply to our TLS hello was not TLS: a plain SMTP greeting, on the submission
                # port (587) or 25, where TLS starts only after STARTTLS.
                hint = (
                    'The server speaks plain SMTP on this port: use security = "starttls" (usually '
                    'port 587), or "none" for a relay on this machine.'
                )
            raise DeliveryError(
                f"TLS with the SMTP server {self.where} failed: {full_stop(str(reason))} "
                "Nothing was sent in plain text.",
                hint=hint,
            ) from exc
        if isinstance(exc, aiosmtplib.SMTPResponseException):  # e.g. 421 at the greeting (M1)
            raise _ConnectFailed(exc.code, one_line(exc.code, exc.message), reachable=True) from exc
        if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(exc, ConnectionError | TimeoutError):
            # e.g. no AUTH: aiosmtplib's "... Try connecting via TLS (or STARTTLS)." has its own period
            raise DeliveryError(f"The SMTP server {self.where} cannot be used: {full_stop(str(exc))}") from exc
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            detail = one_line(None, str(exc) or "timed out")
            if step != "connect":
                detail = f"{step} failed: {detail}"
            elif opened:
                detail = f"no greeting in {self._settings.timeout:g}s on a connection that opened"
            raise _ConnectFailed(
                None, detail, reachable=step != "connect", silent=step == "connect" and opened
            ) from exc

    async def _transaction(self, conn: _Connection, envelope: Envelope) -> Result:
        """MAIL, RCPT, DATA for one envelope. The three commands are sent one by one (not with
        sendmail) because what a lost connection means depends on where it was lost."""
        smtp = conn.smtp
        assert smtp is not None
        conn.messages += 1
        key = envelope.key
        options, encoding = self._mail_options(smtp, envelope)
        if options is None:
            if not envelope.sender.isascii():
                raise DeliveryError(
                    f"The sender {envelope.sender!r} has a non-ASCII local part, which needs SMTPUTF8 "
                    f"(RFC 6531), and the SMTP server {self.where} does not offer it.",
                    hint="Use an ASCII address in [smtp] sender, or a relay that offers SMTPUTF8.",
                )
            detail = (
                "not sent: the recipient's local part is not ASCII, which needs SMTPUTF8 (RFC 6531), "
                "and the server does not offer it"
            )
            return Result(key, Outcome.PERMANENT, None, detail)
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
            if is_too_big(exc.code, exc.message, stage):
                # The edition is too big for this server: every connection would refuse it, and no
                # subscriber's address nor the server's health is at fault. Pending, charged to no one.
                await self._reset(conn, exc.code)
                said = one_line(exc.code, exc.message)[:120]
                detail = f"{said}: the message is {len(envelope.data):,} bytes, too big for the SMTP server; {SMALLER}"
                return Result(key, Outcome.TRANSIENT, exc.code, detail, stage, too_big=True)
            if exc.code in (530, 535):  # the server wants (other) credentials: no subscriber is at fault
                raise SmtpAuthError(
                    f"The SMTP server {self.where} refused to send without authentication: "
                    f"{full_stop(one_line(exc.code, exc.message))}"
                ) from exc
            if stage == "MAIL" and classify(exc.code) is Outcome.PERMANENT:
                # RFC 5321 section 3.3: MAIL names only the sender (and the message's SIZE, whose 552
                # is transient): a refusal there is the operator's to fix, as every message would
                # meet it; failing the subscriber's row would charge them for it (and suspend them).
                await self._reset(conn, exc.code)
                raise SenderRefusedError(
                    f"The SMTP server {self.where} refused the sender {envelope.sender!r}: "
                    f"{full_stop(one_line(exc.code, exc.message))}"
                ) from exc
            await self._reset(conn, exc.code)
            result = Result(key, classify(exc.code), exc.code, one_line(exc.code, exc.message), stage)
            if exc.code == 421 and stage != ".":
                raise _ClosedBeforeData(result) from exc
            return result
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

    @staticmethod
    def _mail_options(smtp: aiosmtplib.SMTP, envelope: Envelope) -> tuple[list[str] | None, str]:
        options: list[str] = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(envelope.data)}")  # RFC 1870: a too-big message fails at MAIL
        if envelope.sender.isascii() and envelope.recipient.isascii():  # domains are A-labels by now
            return options, "ascii"
        if not smtp.supports_extension("smtputf8"):
            return None, "ascii"
        return [*options, "SMTPUTF8"], "utf-8"  # RFC 6531

    async def _reset(self, conn: _Connection, code: int) -> None:
        """After a refusal: RSET for the next message, or close when the server is closing (421)."""
        if code == 421 or not conn.open or conn.smtp is None:
            conn.close()
            return
        try:
            await conn.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            conn.close()  # B9: close and reopen after a failed reset
