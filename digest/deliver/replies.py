"""What a refusal in the middle of a transaction means: the server's reply code and text, and the
command it answered, in; the Result that message gets, or the error that stops the run, out.

Pure: no connection is touched (`SmtpTransport` resets or closes it, then acts on the answer).
See the package docstring for the whole table of outcomes.
"""

from __future__ import annotations

import enum
import re

from digest.deliver.core import Outcome, Result, one_line
from digest.deliver.envelopes import SMALLER
from digest.errors import DigestError, SenderRefusedError, SmtpAuthError, full_stop


class Refusal(enum.Enum):
    """What a permanent failure says about the recipient's address (`refusal()`)."""

    MESSAGE = "message"  # this message was refused (content, policy, size): no strike
    MAILBOX = "mailbox"  # the mailbox refused it: one strike towards [smtp] suspend_after
    NO_SUCH_USER = "no such user"  # the address does not exist: a hard bounce, suppressed at once


def classify(code: int) -> Outcome:
    """The outcome of one SMTP reply code (B6)."""
    if 200 <= code < 300:
        return Outcome.SENT
    if code == 552:  # RFC 5321 section 4.5.3.1.10: clients should treat 552 as 452
        return Outcome.TRANSIENT
    if 500 <= code < 600:
        return Outcome.PERMANENT
    return Outcome.TRANSIENT  # 4xx, and anything a broken server invents


# RFC 3463 section 3.5 and 3.4: X.3.4 message too big for system, X.2.3 message length exceeds
# administrative limit.
_TOO_BIG = re.compile(r"^[45]\.(3\.4|2\.3)\b")


def is_too_big(code: int, text: str, stage: str | None) -> bool:
    """Whether a refusal says the message is too big: X.3.4 or X.2.3 wherever it comes, or a
    552 at MAIL (which carried SIZE=; RFC 1870 section 6.1) or at the end of DATA with no
    enhanced code to say otherwise ("552 5.2.2 mailbox full" is the mailbox's)."""
    if _TOO_BIG.match(text):
        return True
    return code == 552 and stage in ("MAIL", ".") and not re.match(r"^[45]\.\d", text)


_ENHANCED = re.compile(r"^5\.(\d{1,3})\.(\d{1,3})\b")  # RFC 3463: class.subject.detail
# RFC 3463 section 3.2: 5.1.1 bad destination mailbox, 5.1.2 bad destination system; RFC 7505
# 5.1.10: the domain accepts no mail (null MX). The address itself is wrong, as in a hard DSN.
_NO_SUCH_USER = {("1", "1"), ("1", "2"), ("1", "10")}


def refusal(result: Result) -> Refusal:
    """What a PERMANENT result says about the address: a reply at the end of DATA refuses the
    message (its content or a policy: 5.7.x, 5.6.x, 5.3.x) unless its enhanced code names the
    mailbox (5.1.x, 5.2.x); 5.1.1, 5.1.2 and 5.1.10 wherever they come say the address does not
    exist; anything else, at RCPT or with no reply (an address that cannot be sent), is the mailbox's."""
    match = _ENHANCED.match(result.detail.partition(" ")[2])
    subject, detail = match.groups() if match else (None, None)
    if (subject, detail) in _NO_SUCH_USER:
        return Refusal.NO_SUCH_USER
    if result.stage in ("DATA", ".") and subject not in ("1", "2"):
        return Refusal.MESSAGE
    return Refusal.MAILBOX


def refused(code: int, text: str, stage: str, *, key: int, size: int, where: str, sender: str) -> Result | DigestError:
    """The Result of envelope `key` (`size` bytes) refused with `code` `text` at `stage` ("MAIL",
    "RCPT", "DATA" or "."), or the error to raise: SmtpAuthError (the server wants credentials) or
    SenderRefusedError (MAIL refused the sender). `where`: host:port, for the messages."""
    if is_too_big(code, text, stage):
        # The edition is too big for this server: every connection would refuse it, and no
        # subscriber's address nor the server's health is at fault. Pending, charged to no one.
        said = one_line(code, text)[:120]
        detail = f"{said}: the message is {size:,} bytes, too big for the SMTP server; {SMALLER}"
        return Result(key, Outcome.TRANSIENT, code, detail, stage, too_big=True)
    if code in (530, 535):  # the server wants (other) credentials: no subscriber is at fault
        return SmtpAuthError(
            f"The SMTP server {where} refused to send without authentication: {full_stop(one_line(code, text))}"
        )
    if stage == "MAIL" and classify(code) is Outcome.PERMANENT:
        # RFC 5321 section 3.3: MAIL names only the sender (and the message's SIZE, whose 552
        # is transient): a refusal there is the operator's to fix, as every message would
        # meet it; failing the subscriber's row would charge them for it (and suspend them).
        return SenderRefusedError(
            f"The SMTP server {where} refused the sender {sender!r}: {full_stop(one_line(code, text))}"
        )
    return Result(key, classify(code), code, one_line(code, text), stage)
