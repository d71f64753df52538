"""Delivery: puts finished messages on the wire and says what became of each one.

Owns the SMTP conversation (aiosmtplib), the .eml file transport, the connection pool, the rate
limit, per-domain back-off and the circuit breaker. It does not own the outbox: `deliver()` hands
each Result to the caller's `record` callback, which commits it before that worker takes more work.
Exactly-once is impossible over SMTP (RFC 5321 section 4.5.3.2.6), so the aim is "nobody missed,
few duplicates": nothing here re-sends a message that may have reached the server. The caller
re-queues TRANSIENT results and sends them again later with the same Message-ID.

How replies become outcomes (RFC 5321 section 4.2.1; reliability.md B6):

    2xx                                     SENT
    4xx, lost connection, timeout           TRANSIENT
    552                                     TRANSIENT  (section 4.5.3.1.10: treat as 452)
    bigger than EHLO's SIZE, or refused     TRANSIENT, too_big: not sent (or refused) as the
      as too big (X.3.4, X.2.3, 552 at        edition's size; counts toward no breaker, charges
      MAIL or the end of DATA)                no one; the caller says what to change
    other 5xx                               PERMANENT; `refusal()` says whether it is the
                                            address's (5.1.1: no such user; RCPT: its mailbox)
                                            or the message's (end of DATA: content, policy)
    530, 535 (authentication)               raises SmtpAuthError: the run stops, nobody is marked
    other 5xx at MAIL FROM                  raises SenderRefusedError: the sender, not a
                                            subscriber, was refused; the run stops
    TLS or certificate failure              raises DeliveryError: never falls back to plain text
    N failures in a row                     raises CircuitOpenError (B12)

An error raised by `send()` means that envelope never reached the server.
"""

from __future__ import annotations

from digest.deliver.core import (
    DeliveryStats,
    Envelope,
    FileTransport,
    Outcome,
    Paced,
    Result,
    Transport,
    data_block,
    deliver,
    one_line,
)
from digest.deliver.pacing import RateLimiter
from digest.deliver.replies import Refusal, classify, is_too_big, refusal
from digest.deliver.smtp import SmtpTransport

__all__ = [
    "DeliveryStats",
    "Envelope",
    "FileTransport",
    "Outcome",
    "Paced",
    "RateLimiter",
    "Refusal",
    "Result",
    "SmtpTransport",
    "Transport",
    "classify",
    "data_block",
    "deliver",
    "one_line",
    "refusal",
    "is_too_big",
]
