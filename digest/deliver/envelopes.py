"""An envelope made fit for the wire, before any command is sent: its addresses checked and their
domains in A-labels, its MAIL FROM options (SIZE, SMTPUTF8), and whether it fits the server's SIZE.

Pure: envelopes and the server's EHLO extensions in, an envelope, options or a Result out. No
connection is touched here (`SmtpTransport` does that).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from digest.addresses import ascii_domain
from digest.deliver.core import Envelope, Outcome, Result, one_line
from digest.errors import DeliveryError, SubscriberError

# What an operator changes when editions are too big for their relay (the sender repeats it).
SMALLER = "make editions smaller ([digest] max_items_per_section or a section's max_items, excerpt_chars, images)"

_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _unsafe(address: str) -> bool:
    return _SPACE_OR_CONTROL.search(address) is not None


def wire_form(envelope: Envelope) -> Envelope | Result:
    """The envelope as it goes on the wire, or the PERMANENT Result of a recipient that cannot be
    sent to; raises DeliveryError for a sender no message could be sent from (the operator's)."""
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
            return ascii_domains(envelope)
        except SubscriberError as exc:
            detail = one_line(None, f"not sent: {exc.message.rstrip('.')}")
            return Result(envelope.key, Outcome.PERMANENT, None, detail)
    return envelope


def ascii_domains(envelope: Envelope) -> Envelope:
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


def size_limit(extensions: Mapping[str, str]) -> int | None:
    """The largest message the server takes, as its EHLO's SIZE says (RFC 1870); None when it
    offers no SIZE or "SIZE 0" (no fixed limit). `extensions`: aiosmtplib's esmtp_extensions."""
    words = extensions.get("size", "").split()
    limit = int(words[0]) if words and words[0].isdigit() else 0
    return limit or None


def over_size(envelope: Envelope, extensions: Mapping[str, str], *, where: str) -> Result | None:
    """The TRANSIENT, too-big Result of a message over the server's SIZE; None when it fits.

    RFC 1870 section 6.1: a message over the server's SIZE would be refused at MAIL (552), and
    is, on every connection, until the edition is made smaller."""
    limit = size_limit(extensions)
    if limit is None or len(envelope.data) <= limit:
        return None
    detail = (
        f"not sent: the message is {len(envelope.data):,} bytes, over the {limit:,} "
        f"the SMTP server {where} takes (its SIZE); {SMALLER}"
    )
    return Result(envelope.key, Outcome.TRANSIENT, None, detail, too_big=True)


def mail_options(extensions: Mapping[str, str], envelope: Envelope) -> tuple[list[str] | None, str]:
    """MAIL FROM's options and the encoding of the addresses; None for the options when an address
    needs SMTPUTF8 and the server does not offer it (`without_smtputf8()` says what follows)."""
    options: list[str] = []
    if "size" in extensions:
        options.append(f"SIZE={len(envelope.data)}")  # RFC 1870: a too-big message fails at MAIL
    if envelope.sender.isascii() and envelope.recipient.isascii():  # domains are A-labels by now
        return options, "ascii"
    if "smtputf8" not in extensions:
        return None, "ascii"
    return [*options, "SMTPUTF8"], "utf-8"  # RFC 6531


def without_smtputf8(envelope: Envelope, *, where: str) -> Result:
    """What an envelope with a non-ASCII local part gets from a server without SMTPUTF8: the
    recipient's fails PERMANENT; the sender's raises DeliveryError, as every message would fail."""
    if not envelope.sender.isascii():
        raise DeliveryError(
            f"The sender {envelope.sender!r} has a non-ASCII local part, which needs SMTPUTF8 "
            f"(RFC 6531), and the SMTP server {where} does not offer it.",
            hint="Use an ASCII address in [smtp] sender, or a relay that offers SMTPUTF8.",
        )
    detail = (
        "not sent: the recipient's local part is not ASCII, which needs SMTPUTF8 (RFC 6531), "
        "and the server does not offer it"
    )
    return Result(envelope.key, Outcome.PERMANENT, None, detail)
