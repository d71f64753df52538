"""The delivery contract (Envelope, Outcome, Result, Transport), `deliver()` and the .eml file transport.

See the package docstring for how replies become outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from digest.errors import DeliveryError, remote_words

log = logging.getLogger(__name__)

IDLE_NOOP_AFTER = 30.0  # seconds; a connection idle longer is checked with NOOP before reuse (B9)
DATA_REPLY_TIMEOUT = 300.0  # seconds to wait for the reply after the final "." (B8; RFC 5321 4.5.3.2.6)
DOMAIN_BACKOFF = 300.0  # seconds a throttling domain is left alone (B13)
_THROTTLE = re.compile(r"^4\.7\.\d{1,3}\b")  # enhanced status 4.7.x: policy / rate (RFC 3463 section 3.8)


# --------------------------------------------------------------------------- the contract


@dataclass(frozen=True, slots=True)
class Envelope:
    key: int  # the outbox row id
    sender: str  # envelope MAIL FROM
    recipient: str  # exactly one RCPT per transaction: each message is personalised (B10)
    data: bytes  # the complete message, CRLF line ends
    # True: the caller guarantees CRLF line ends only (digest.message builds messages so), and
    # the transport skips checking it; dot-stuffing is still done here.
    crlf: bool = False


class Outcome(enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Result:
    key: int
    outcome: Outcome
    code: int | None  # the SMTP reply code; None when there was no reply
    detail: str  # one line, e.g. "550 5.1.1 no such user"
    # Where the server answered: "RCPT", "DATA" (the command), "." (the end of the content);
    # None when no command of the transaction did (a refused connection, an address not sent).
    stage: str | None = None
    # The message is bigger than the server takes (its EHLO SIZE, or its "552 5.3.4" refusal):
    # TRANSIENT, the edition's to fix, not the subscriber's nor the server's health (`is_too_big()`).
    too_big: bool = False


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    transient: int = 0
    permanent: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)


class Transport(Protocol):
    async def __aenter__(self) -> Transport: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def send(self, envelope: Envelope) -> Result: ...


@runtime_checkable
class Paced(Protocol):
    """Optional: a transport that says how many workers it wants and when the next send may start."""

    concurrency: int

    def ready_in(self) -> float:
        """Seconds until the next send may start; raises CircuitOpenError when the run must stop."""
        ...


def one_line(code: int | None, text: str) -> str:
    """A server's reply as one line for the outbox and the log: no control character (a NUL,
    which PostgreSQL refuses in text, is a space)."""
    return remote_words(f"{code} {text}" if code is not None else text, limit=300)


_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def data_block(message: bytes, *, crlf: bool = False) -> bytes:
    """What goes on the wire after DATA's 354: CRLF line ends, dot-stuffed, then CRLF "." CRLF.

    RFC 5321 section 4.5.2 (transparency): a line that starts with "." gets another one. A bare
    CR or LF is made CRLF first (RFC 5321 section 2.3.8; a bare LF before "." is how SMTP
    smuggling works), unless `crlf` says the message has none: the three counts that check it
    cost as much as the rest of this function.
    """
    if not crlf:
        pairs = message.count(b"\r\n")
        if message.count(b"\n") != pairs or message.count(b"\r") != pairs:
            message = _BARE_LINE_END.sub(b"\r\n", message)
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"


# --------------------------------------------------------------------------- deliver()


async def deliver(
    transport: Transport,
    envelopes: AsyncIterable[Envelope],
    record: Callable[[Result], Awaitable[None]],
    *,
    stop: asyncio.Event | None = None,
) -> DeliveryStats:
    """Send every envelope with the transport's workers; `record` each Result before the next.

    Each worker takes one envelope, sends it, awaits record(result), then takes another. When
    `stop` is set (or a worker fails) no new envelope is taken, but messages already on the wire
    finish and are recorded (S4); a waiting rate limiter is interrupted (S5). A worker's error
    (SmtpAuthError, CircuitOpenError, or one raised by `record`) is re-raised after that.
    """
    paced = transport if isinstance(transport, Paced) else None
    workers = max(1, paced.concurrency if paced else 1)
    source = aiter(envelopes)
    take_lock = asyncio.Lock()  # an async generator cannot be advanced by two tasks at once
    halt = asyncio.Event()
    errors: list[Exception] = []
    stats = DeliveryStats()

    def halted() -> bool:  # `stop` is read directly too: the mirroring task may not have run yet
        return halt.is_set() or (stop is not None and stop.is_set())

    async def next_envelope() -> Envelope | None:
        while paced is not None and not halted():
            wait = paced.ready_in()
            if wait <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), wait)
        async with take_lock:
            if halted():
                return None
            try:
                return await anext(source)
            except StopAsyncIteration:
                return None

    async def worker() -> None:
        try:
            while (envelope := await next_envelope()) is not None:
                result = await transport.send(envelope)
                await record(result)
                stats.count(result.outcome)
        except Exception as exc:
            errors.append(exc)
            halt.set()

    async def mirror_stop() -> None:
        if stop is not None:
            await stop.wait()
            halt.set()

    watcher = asyncio.create_task(mirror_stop())
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        watcher.cancel()
    if errors:
        raise errors[0]
    return stats


# --------------------------------------------------------------------------- file transport


class FileTransport:
    """Writes <folder>/<key>.eml instead of sending: `digest send --dry-run DIR` and the demo."""

    concurrency = 1

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def ready_in(self) -> float:
        return 0.0

    async def __aenter__(self) -> FileTransport:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(
                f"Cannot create the folder {self._folder} for .eml files: {exc.strerror}.",
                hint="Pass a folder you can write to.",
            ) from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, envelope: Envelope) -> Result:
        path = self._folder / f"{envelope.key}.eml"
        try:
            await asyncio.to_thread(_write_atomically, path, envelope.data)
        except OSError as exc:
            raise DeliveryError(
                f"Cannot write {path}: {exc.strerror}.", hint="Check free space and permissions."
            ) from exc
        return Result(envelope.key, Outcome.SENT, None, f"written to {path}")


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)  # a reader never sees half a message
