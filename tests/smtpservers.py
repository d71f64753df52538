"""Real SMTP servers on 127.0.0.1 for tests: aiosmtpd with a recording or a scripted handler.

    async with SmtpServer() as srv:              # or `with SmtpServer() as srv:` from sync code
        ... send to ("127.0.0.1", srv.port) ...
        srv.messages     # every accepted (or dropped-after-DATA) message, in arrival order
        srv.connections  # how many TCP connections the server has accepted

    SmtpServer(Scripted(rcpt="550 5.1.1 no such user"))        # a fault server
    SmtpServer(Scripted(data=DROP))                            # close after DATA, no reply
    SmtpServer(tls="starttls", certs=make_certs(tmp_path))     # trustme certificates
    SmtpServer(smtputf8=True)                                  # offers SMTPUTF8 (RFC 6531); off by default
    SmtpServer(size_limit=2000)                                # EHLO says SIZE 2000 and refuses more

The server runs in its own thread with its own event loop, so it serves sync tests (CLI, daemon)
as well as async ones, and a client blocking its loop never stalls the server. Port 0 is bound
directly, so no port is guessed (aiosmtpd's Controller cannot bind port 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

DROP = "<drop>"  # a reply that closes the connection instead of answering


@dataclass(frozen=True, slots=True)
class Turn:
    """What a scripted reply can depend on."""

    connection: int  # 1-based number of the TCP connection on this server
    message: int  # 1-based number of the transaction on that connection
    address: str  # MAIL: the sender; RCPT and DATA: the (first) recipient


Reply = str | Callable[[Turn], str | None] | None  # None (or a callable returning None): the normal reply


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    mail_at: float  # time.monotonic() when MAIL arrived (for rate assertions)
    data_at: float  # time.monotonic() when the DATA terminator arrived


@dataclass(frozen=True, slots=True)
class Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca: trustme.CA
    ca_file: Path  # give this to the client as ca_file
    server_context: ssl.SSLContext


def make_certs(folder: Path) -> Certs:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    ca_file = folder / "smtp-test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certs(ca=ca, ca_file=ca_file, server_context=server_context)


class Recorder:
    """Accepts everything and keeps every message; the base of Scripted."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.connections = 0
        self.quits = 0
        self.noops = 0
        self.rcpt_seen: list[str] = []  # every RCPT address, accepted or not
        self.auth_attempts = 0
        self._per_connection: dict[int, int] = {}
        self._mail_at: dict[int, float] = {}

    # --- hooks the SMTP subclass calls
    def connected(self) -> int:
        self.connections += 1
        self._per_connection[self.connections] = 0
        return self.connections

    def turn(self, server: SMTP, address: str) -> Turn:
        conn: int = getattr(server, "connection_number", 0)
        return Turn(conn, self._per_connection.get(conn, 0) + 1, address)

    def greeting(self) -> str | None:
        return None

    def authenticate(self, mechanism: str, data: Any) -> bool:
        self.auth_attempts += 1
        return True

    # --- aiosmtpd hooks
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self._mail_at[id(envelope)] = time.monotonic()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpt_seen.append(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.keep(server, envelope)
        return "250 2.0.0 OK queued"

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope, arg: str) -> str:
        self.noops += 1
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"

    def keep(self, server: SMTP, envelope: Envelope) -> None:
        conn: int = getattr(server, "connection_number", 0)
        self._per_connection[conn] = self._per_connection.get(conn, 0) + 1
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                connection=conn,
                mail_at=self._mail_at.pop(id(envelope), time.monotonic()),
                data_at=time.monotonic(),
            )
        )


def _pick(reply: Reply, turn: Turn) -> str | None:
    return reply(turn) if callable(reply) else reply


def _drop(server: SMTP) -> None:
    if isinstance(server.transport, asyncio.Transport):
        server.transport.abort()  # no reply, no FIN handshake courtesy: the worst case for the client


class Scripted(Recorder):
    """A fault server: each field scripts one misbehaviour; the defaults behave like Recorder.

    greeting: e.g. "421 4.3.2 busy": sent instead of 220, then the connection is closed.
    mail / rcpt / data: a reply (str), DROP, or a callable of Turn returning either or None.
        `data` is decided after the terminator arrived; the message is recorded first, so a test
        can see what the server got even when it dropped the connection or refused (554).
    drop_every: close the connection right after the 250 of every Nth message on it.
    stall: seconds to wait before answering the DATA terminator.
    auth: None accepts credentials; "reject" answers 535 to every AUTH.
    """

    def __init__(
        self,
        *,
        greeting: str | None = None,
        mail: Reply = None,
        rcpt: Reply = None,
        data: Reply = None,
        drop_every: int = 0,
        stall: float = 0.0,
        auth: Literal["reject"] | None = None,
    ) -> None:
        super().__init__()
        self._greeting = greeting
        self._mail, self._rcpt, self._data = mail, rcpt, data
        self._drop_every = drop_every
        self._stall = stall
        self._auth = auth

    def greeting(self) -> str | None:
        return self._greeting

    def authenticate(self, mechanism: str, data: Any) -> bool:
        super().authenticate(mechanism, data)
        return self._auth != "reject"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = _pick(self._mail, self.turn(server, address))
        if reply == DROP:
            _drop(server)
            await asyncio.Event().wait()  # cancelled by connection_lost
        if reply:
            return reply
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = _pick(self._rcpt, self.turn(server, address))
        if reply:
            self.rcpt_seen.append(address)
        if reply == DROP:
            _drop(server)
            await asyncio.Event().wait()
        if reply:
            return reply
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        turn = self.turn(server, envelope.rcpt_tos[0] if envelope.rcpt_tos else "")
        self.keep(server, envelope)
        if self._stall:
            await asyncio.sleep(self._stall)
        reply = _pick(self._data, turn)
        if reply == DROP:
            _drop(server)
            await asyncio.Event().wait()
        if self._drop_every and turn.message % self._drop_every == 0 and server.transport is not None:
            # close() flushes the 250 written just after we return, then sends FIN
            server.loop.call_soon(server.transport.close)
        return reply or "250 2.0.0 OK queued"


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP with a connection counter and a scriptable greeting."""

    connection_number = 0

    async def _handle_client(self) -> None:
        handler: Recorder = self.event_handler
        self.connection_number = handler.connected()
        greeting = handler.greeting()
        if greeting:
            await self.push(greeting)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


@dataclass
class SmtpServer:
    """One aiosmtpd server on 127.0.0.1:<free port>, in a background thread."""

    handler: Recorder = field(default_factory=Recorder)
    tls: Literal["starttls", "implicit"] | None = None
    certs: Certs | None = None
    require_auth: bool = False
    smtputf8: bool = False  # aiosmtpd's enable_SMTPUTF8: off, like many relays
    auth_needs_tls: bool = False  # AUTH offered only after STARTTLS (aiosmtpd's auth_require_tls)
    idle_timeout: float = 300.0  # the server closes a connection silent this long (aiosmtpd `timeout`)
    size_limit: int = 33554432  # offered in EHLO as SIZE and enforced (aiosmtpd's data_size_limit; 0: none)
    host: str = "127.0.0.1"
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def connections(self) -> int:
        return self.handler.connections

    def _factory(self) -> SMTP:
        assert self._loop is not None
        tls_context = self.certs.server_context if self.certs and self.tls == "starttls" else None

        def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
            ok = self.handler.authenticate(mechanism, data)
            return AuthResult(success=ok, handled=ok)  # handled=False: aiosmtpd itself answers 535 5.7.8

        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without TLS; on loopback in tests that is intended
            warnings.simplefilter("ignore", UserWarning)
            return self._make(tls_context, authenticator)

    def _make(self, tls_context: ssl.SSLContext | None, authenticator: Any) -> SMTP:
        return _ScriptedSMTP(
            self.handler,
            hostname="smtp.test",
            tls_context=tls_context,
            require_starttls=tls_context is not None,
            timeout=self.idle_timeout,
            authenticator=authenticator,
            auth_required=self.require_auth,
            auth_require_tls=self.auth_needs_tls,  # off: tests authenticate over plain loopback too
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=self.size_limit,
            loop=self._loop,
        )

    def start(self) -> SmtpServer:
        if self.tls and self.certs is None:
            raise ValueError("tls needs certs=make_certs(tmp_path)")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                ssl_context = self.certs.server_context if self.certs and self.tls == "implicit" else None
                self._server = loop.run_until_complete(loop.create_server(self._factory, self.host, 0, ssl=ssl_context))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._server.wait_closed())
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"smtp-test-server-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SmtpServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
