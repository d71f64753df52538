"""What a refusal in the middle of a transaction means: the server's reply code and text, and the
command it answered, in; the Result that message gets, or the error that stops the run, out.

Pure: no connection is touched (`SmtpTransport` resets or closes it, then acts on the answer).
See the package docstring for the whole table of outcomes.
"""

from __future__ import annotations

from digest.deliver.core import Outcome, Result, classify, is_too_big, one_line
from digest.deliver.envelopes import SMALLER
from digest.errors import DigestError, SenderRefusedError, SmtpAuthError, full_stop


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
