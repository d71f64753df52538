"""When the next SMTP send may go: the rate limit, per-domain back-off and the circuit breaker.

Pure bookkeeping over an injected clock: no connection, no network. `SmtpTransport` asks these
before each send and tells them what each send became.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from digest.deliver.core import _THROTTLE, DOMAIN_BACKOFF, Outcome, Result
from digest.errors import CircuitOpenError, full_stop


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


class DomainThrottles:
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


class CircuitBreaker:
    """`limit` non-SENT answers from the server in a row stop the run (B12): a server that fails
    every message is not worth walking the whole subscriber list through."""

    def __init__(self, limit: int, where: str) -> None:
        self._limit = limit
        self._where = where  # host:port, for the error
        self._failures = 0
        self._last_failure = ""

    def check(self) -> None:
        """Raise CircuitOpenError once the breaker is open."""
        if self._failures >= self._limit:
            raise CircuitOpenError(
                f"{self._failures} messages in a row failed at the SMTP server {self._where}; "
                f"the last: {full_stop(self._last_failure)}"
            )

    def count(self, result: Result) -> None:
        """One answer of the server: SENT closes the breaker again, anything else is a step to opening it."""
        if result.outcome is Outcome.SENT:
            self._failures = 0
        else:
            self._failures += 1
            self._last_failure = result.detail
