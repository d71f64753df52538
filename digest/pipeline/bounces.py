"""Bounces and complaints in: three ways, one path (`intake`) from the received bytes to the store.

    digest bounces serve   an SMTP receiver (aiosmtpd) for `bounce+*@[bounces] domain`
    digest bounces fetch   the unread messages of an IMAP folder ([bounces] imap_*)
    digest bounces import  files (one message each, or an mbox), or standard input from an MTA pipe

`intake` parses the message (digest.bounces), verifies the VERP token (digest.tokens) against
every key the site has signed with, and records the outcome once (store.record_bounce). A report
whose token does not verify, or that names nobody we know, changes nothing and is only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import imaplib
import logging
import mailbox
import signal
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from digest import bounces, tokens
from digest.addresses import ascii_domain
from digest.clock import Clock
from digest.config import Settings
from digest.errors import ConfigError, DigestError, SubscriberError
from digest.ratelimit import client_key
from digest.store import Store
from digest.store.bounces import UNVERIFIED

__all__ = ["NOT_A_BOUNCE", "UNREADABLE", "IntakeReport", "fetch_imap", "import_files", "intake", "serve_smtp"]

log = logging.getLogger(__name__)

NOT_A_BOUNCE = "not a bounce"  # an auto-reply, a delivery receipt: read and left alone
UNREADABLE = "unreadable"  # a message the parser failed on: logged, counted, and left alone
MAX_MESSAGE = 10 * 1024 * 1024  # a bounce with its returned copy; larger is refused at DATA
# The receiver is an MX on the internet. aiosmtpd keeps each line of a message as an object of its
# own, ~60 bytes beyond its text: 10 MB of empty lines held 330 MB, and a few clients could have the
# host's memory. A session may send this many lines in all (a 10 MB bounce of 76-character lines is
# 140,000), so what a client makes us hold stays near what it sends; and at most MAX_SESSIONS
# sessions run at once, the others answered 421 (RFC 5321 3.8: the sender retries later). One
# client (an address, an IPv6 /64; loopback too, which is a local MTA or anyone on this host) holds
# at most MAX_SESSIONS_PER_CLIENT of them, so that one host idling in sessions cannot keep every
# other MX's bounces out; a real MTA opens one or two at a time.
MAX_SESSION_LINES = 250_000
MAX_SESSIONS = 16
MAX_SESSIONS_PER_CLIENT = 4
# A bounce comes back to the one VERP address its message was sent from; more at once is not one.
MAX_RECIPIENTS = 10


# Without [bounces] domain a bounce comes back to the sender's own address, with no token to name
# its subscriber. `bounces serve` refuses to start with these words; import and fetch say them
# when they count a report they could not verify.
NO_VERP_DOMAIN = "[bounces] domain is not set, so no message carries a VERP return path"
SET_VERP_DOMAIN = 'Set [bounces] domain = "bounces.example.org"'


@dataclass
class IntakeReport:
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def summary(self) -> str:
        if not self.outcomes:
            return "no messages"
        return ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))

    def hint(self, settings: Settings) -> str | None:
        """One line on why reports were only counted, when the settings are the reason."""
        if not self.outcomes[UNVERIFIED] or settings.bounces.domain:
            return None  # with a domain, an unverified report is forged, mangled or for someone erased
        return (
            f"{NO_VERP_DOMAIN} to tell whose bounce it is, so unverified ones are only counted. "
            f"{SET_VERP_DOMAIN}; bounces of messages sent after that are recorded."
        )


def intake(
    settings: Settings, store: Store, raw: bytes, *, via: str, now: datetime, envelope_to: str | None = None
) -> str:
    """Record what one received message says; returns store.bounces' outcome, NOT_A_BOUNCE or UNREADABLE."""
    try:
        found = bounces.parse_bytes(raw, envelope_to=envelope_to)
    except Exception as exc:  # untrusted bytes through the email package and flufl's heuristics
        # One message the parser fails on must not stop the others: an IMAP folder would otherwise
        # fail at it on every fetch, and bounces behind it would never be read.
        log.warning("bounce via=%s could not be read (%s: %s); left as it is", via, type(exc).__name__, exc)
        return UNREADABLE
    if found is None:
        return NOT_A_BOUNCE
    ring = tokens.key_ring(
        settings.web.secret_keys,
        settings.digest.secret,
        store.site_secret(),
        only_listed=settings.web.only_listed_keys,
    )
    decoded = tokens.read_bounce_token(ring, found.token) if found.token else None
    subscriber = store.get_subscriber(public_id=decoded[0]) if decoded else None
    b = settings.bounces
    if decoded is None or subscriber is None:
        # Forged, mangled, from before a key was dropped, or for someone since erased: counted only.
        dedupe = hashlib.sha256(b"unverified:" + (found.token or "").lower().encode() + b":" + raw).hexdigest()
        outcome = store.record_bounce(
            dedupe=dedupe,
            subscriber_id=None,
            edition_id=None,
            kind=found.kind,
            status=None,
            diagnostic=None,
            via=via,
            now=now,
            threshold=b.soft_threshold,
            half_life=b.soft_decay,
        )
        log.info(
            "bounce via=%s kind=%s ignored: %s",
            via,
            found.kind,
            "duplicate" if outcome != UNVERIFIED else "token does not verify",
        )
        return outcome if outcome != UNVERIFIED else UNVERIFIED
    # One outcome per (subscription, edition, kind): the same report arriving by SMTP and IMAP,
    # or a second delay warning for the same message, counts once.
    assert found.token is not None
    dedupe = hashlib.sha256(f"verified:{found.token.lower()}:{found.kind}".encode()).hexdigest()
    outcome = store.record_bounce(
        dedupe=dedupe,
        subscriber_id=subscriber.id,
        edition_id=decoded[1],
        kind=found.kind,
        status=found.status,
        diagnostic=found.diagnostic[:500],
        via=via,
        now=now,
        threshold=b.soft_threshold,
        half_life=b.soft_decay,
    )
    log.info(
        "bounce via=%s subscriber=%s kind=%s status=%s: %s",
        via,
        subscriber.public_id[:8],
        found.kind,
        found.status or "-",
        outcome,
    )
    return outcome


# --------------------------------------------------------------------------- files and standard input


def _messages_in(data: bytes, source: str) -> Iterator[bytes]:
    """One message, or each message of an mbox (a file that starts with a "From " line)."""
    if data.startswith(b"From ") and source != "-":
        box = mailbox.mbox(source, create=False)
        try:
            for key in box.iterkeys():
                yield box.get_bytes(key)
        finally:
            box.close()
        return
    if data.startswith(b"From "):  # an MTA's pipe may put the mbox envelope line first
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    yield data


def import_files(
    settings: Settings, store: Store, sources: Iterable[str], *, clock: Clock, read_stdin: Callable[[], bytes]
) -> IntakeReport:
    report = IntakeReport()
    for source in sources:
        try:
            data = read_stdin() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read {source}: {exc.strerror or exc}.",
                hint="Give files that hold bounce messages, or - for standard input.",
            ) from exc
        for raw in _messages_in(data, source):
            report.add(intake(settings, store, raw, via="file", now=clock()))
    return report


# --------------------------------------------------------------------------- SMTP receiver


def _a_label(domain: str) -> str | None:
    """A domain as it comes back in a bounce's RCPT TO: in IDNA A-labels, lower case, as every return
    path goes out (digest.addresses.ascii_domain); None for none, or one IDNA cannot write. A domain
    set in Unicode ("bounces.bücher.de") is then the one its bounces name ("bounces.xn--bcher-kva.de")."""
    domain = domain.rstrip(".")
    if not domain:
        return None
    try:
        return ascii_domain(f"x@{domain}").rpartition("@")[2].lower()
    except SubscriberError:
        return None


class _Receiver:
    """aiosmtpd handler: takes mail for bounce+*@domain only, records it, then answers 250."""

    def __init__(
        self, settings: Settings, store: Store, clock: Clock, domain: str, on_outcome: Callable[[str], None] | None
    ) -> None:
        self.settings, self.store, self.clock, self.domain = settings, store, clock, domain
        self.on_outcome = on_outcome

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local, _, domain = address.rpartition("@")
        if _a_label(domain) != self.domain or not local.lower().startswith(f"{bounces.VERP_LOCAL}+"):
            return "550 5.1.1 No such mailbox: this server takes bounces only"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            # Each recipient is one intake of the whole message (up to MAX_MESSAGE): a client that
            # names a thousand would make this receiver parse it a thousand times.
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            for rcpt in envelope.rcpt_tos:
                outcome = await asyncio.to_thread(
                    intake, self.settings, self.store, raw, via="smtp", now=self.clock(), envelope_to=rcpt
                )
                if self.on_outcome:
                    self.on_outcome(outcome)
        except DigestError as exc:  # the database is locked or gone: the sender keeps it and retries
            log.warning("bounce not recorded, asked the sender to retry: %s", exc.message)
            return "451 4.3.0 Cannot record this now; try again later"
        return "250 2.0.0 OK: recorded"


class _Session(SMTP):
    """One SMTP session of the receiver: counted among the sessions running, refused with a 421
    when its client holds MAX_SESSIONS_PER_CLIENT already, and closed with a 421 once it has sent
    MAX_SESSION_LINES lines."""

    def __init__(self, handler: _Receiver, *, running: set[_Session], **options: Any) -> None:
        super().__init__(handler, **options)
        self.running = running
        self.lines = 0
        self.client = "-"
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.client = client_key(str(peer[0]) if isinstance(peer, tuple) else None, None)
        if sum(1 for s in self.running if s.client == self.client) >= MAX_SESSIONS_PER_CLIENT:
            # Before aiosmtpd sees it: no greeting, no handler task, nothing held but this reply.
            self.refused = True
            log.info("bounces: a session from %s refused: it holds %d already", self.client, MAX_SESSIONS_PER_CLIENT)
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"421 4.7.0 Too many sessions from your address; try again later\r\n")
            transport.close()
            return
        self.running.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.refused:
            return
        self.running.discard(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return False if self.refused else super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.lines += data.count(b"\n")
        if self.lines <= MAX_SESSION_LINES:
            super().data_received(data)
        elif self.transport is not None and not self.transport.is_closing():
            log.info("bounces: a session from %s sent over %d lines; closed", self.session_peer(), MAX_SESSION_LINES)
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(b"421 4.7.0 Too many lines in one session; closing\r\n")
            self.transport.close()

    def session_peer(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else "?"


class _Busy(asyncio.Protocol):
    """A session past MAX_SESSIONS: a 421 greeting (RFC 5321 3.1), then closed, holding nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"421 4.3.2 Too busy; try again later\r\n")
        transport.close()


async def serve_smtp(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
    on_outcome: Callable[[str], None] | None = None,
) -> None:
    """`digest bounces serve`: receive bounces until `stop` is set."""
    domain = _a_label(settings.bounces.domain or "")
    if not domain:
        raise ConfigError(f"{NO_VERP_DOMAIN} to receive.", hint=f"{SET_VERP_DOMAIN} and point its MX here.")
    handler = _Receiver(settings, store, clock, domain, on_outcome)
    loop = asyncio.get_running_loop()

    running: set[_Session] = set()

    def factory() -> asyncio.BaseProtocol:
        if len(running) >= MAX_SESSIONS:
            return _Busy()
        return _Session(
            handler,
            running=running,
            hostname=domain,
            data_size_limit=MAX_MESSAGE,
            enable_SMTPUTF8=True,
            decode_data=False,
            ident="digest bounce receiver",
        )

    try:
        server = await loop.create_server(factory, host=host, port=port)
    except OSError as exc:
        raise ConfigError(
            f"The bounce receiver cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick a free --port, or stop what is using it.",
        ) from exc
    where = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    log.info("bounces: receiving for %s on %s", domain, where)
    if on_ready:
        on_ready(where)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


async def run_smtp(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    await serve_smtp(settings, store, clock=clock, host=host, port=port, stop=stop, on_ready=on_ready)


# --------------------------------------------------------------------------- IMAP


def _imap(settings: Settings) -> imaplib.IMAP4:
    b = settings.bounces
    if not b.imap_host or not b.imap_username:
        raise ConfigError(
            "[bounces] imap_host and imap_username are not set.",
            hint="Set them (and DIGEST_BOUNCES_IMAP_PASSWORD) to read bounces from a mailbox.",
        )
    context = ssl.create_default_context()
    try:
        if b.imap_security == "tls":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(b.imap_host, b.imap_port, ssl_context=context, timeout=60)
        else:
            conn = imaplib.IMAP4(b.imap_host, b.imap_port, timeout=60)
            if b.imap_security == "starttls":
                conn.starttls(ssl_context=context)
        conn.login(b.imap_username, b.imap_password or "")
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ConfigError(
            f"Cannot log in to IMAP {b.imap_host}:{b.imap_port} as {b.imap_username}: {exc}.",
            hint="Check [bounces] imap_host, imap_port, imap_security and the password.",
        ) from exc
    return conn


def fetch_imap(settings: Settings, store: Store, *, clock: Clock) -> IntakeReport:
    """`digest bounces fetch`: record every unread message of the folder, then flag it \\Seen.

    A message is flagged only after its outcome is committed, so a crash re-reads it and the
    dedupe key keeps it from counting twice.
    """
    report = IntakeReport()
    conn = _imap(settings)
    folder = settings.bounces.imap_folder
    try:
        status, _ = conn.select(f'"{folder}"')
        if status != "OK":
            raise ConfigError(f"The IMAP folder {folder!r} cannot be opened.", hint="Check [bounces] imap_folder.")
        status, found = conn.uid("SEARCH", "UNSEEN")
        uids = found[0].split() if status == "OK" and found and found[0] else []
        for uid in uids:
            status, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple) and len(p) > 1), None)
            if status != "OK" or not isinstance(raw, bytes):
                continue
            report.add(intake(settings, store, raw, via="imap", now=clock()))
            conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ConfigError(
            f"IMAP {settings.bounces.imap_host} failed while reading bounces: {exc}.",
            hint="Run `digest bounces fetch` again: what was recorded is not counted twice.",
        ) from exc
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    return report
