"""Bounces and complaints: one received message -> what happened to which recipient. Pure.

Order of reading, most authoritative first:

1. An abuse report (ARF, RFC 5965: ``multipart/report; report-type=feedback-report``) is a
   complaint: the subscriber pressed "This is spam" and must get no more mail.
2. A delivery status notification (RFC 3464: a ``message/delivery-status`` part) gives each
   recipient an Action and a Status code (RFC 3463); recipients whose Action is ``delivered``,
   ``relayed`` or ``expanded`` did not bounce.
3. Anything else goes to flufl.bounce's detectors (Mailman's collection of the non-standard
   formats: qmail, old Yahoo, Exchange 5.5, ...), and the status code is read from the text
   around the address when there is one (qmail writes ``(#5.1.1)``).

Kinds. *hard*: the address does not work (5.1.x no such user or domain, 5.2.1 disabled, and
other 5.x.x). *soft*: worth trying again, which is every 4.x.x (a 4.x.x is never hard, whatever
the text says) and the 5.x.x that do not mean the address is bad: 5.2.2 mailbox full (RFC 3463
says it is usually transient), 5.3.x and 5.4.5 (the receiving system), 5.7.x (policy: the
message or our reputation was refused, not the address). *complaint*: an ARF report.

Which subscriber: every message we send carries a VERP return path ``bounce+<token>@<domain>``,
so a bounce comes back to an address holding the token. It is looked for in the envelope
recipient the receiver saw, then in the headers a delivering MTA adds (Delivered-To,
X-Original-To), the To header, an ARF report's Original-Mail-From, and the returned copy's
Return-Path. This module only finds the token; digest.tokens verifies it.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import Literal

from flufl.bounce import all_failures

from digest.errors import remote_words

__all__ = ["VERP_LOCAL", "Bounce", "Kind", "classify_status", "find_token", "parse", "parse_bytes"]

Kind = Literal["hard", "soft", "complaint"]
VERP_LOCAL = "bounce"  # the local part before "+<token>"

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?<!\d)([45])\d\d(?!\d)")
_TOKEN = re.compile(VERP_LOCAL + r"\+([A-Za-z0-9_.=-]+)@", re.IGNORECASE)
_KIND_RANK = {"soft": 0, "hard": 1, "complaint": 2}
_NOT_FAILED = {"delivered", "relayed", "expanded"}


@dataclass(frozen=True, slots=True)
class Bounce:
    kind: Kind
    recipient: str | None  # the address that failed, as the report gives it
    token: str | None  # from our VERP return path; None when the report does not carry it
    status: str | None  # RFC 3463 code such as "5.1.1"; None when the report gives none
    diagnostic: str  # one line for the operator: the remote server's words, or the feedback type
    method: Literal["arf", "dsn", "fallback"]


def classify_status(status: str) -> Kind | None:
    """hard / soft for an RFC 3463 status code; None for a 2.x.x (not a failure)."""
    m = _STATUS.fullmatch(status.strip())
    if not m:
        return None
    klass, subject, detail = m.group(1), int(m.group(2)), int(m.group(3))
    if klass == "2":
        return None
    if klass == "4":
        return "soft"
    if (subject, detail) in ((2, 2), (4, 5)) or subject in (3, 7):
        return "soft"
    return "hard"


# Some receivers answer a 5.7.x (policy) or 5.0.0 for an address that does not exist (Yandex:
# "550 5.7.1 No such user!"); these words about the mailbox make a permanent failure hard.
_NO_MAILBOX = re.compile(
    r"no such (user|mailbox|account)|user unknown|unknown user|does not exist|doesn't exist|"
    r"mailbox (unavailable|not found|disabled)|recipient not found|no mailbox",
    re.IGNORECASE,
)


def _kind(status: str | None, diagnostic: str) -> Kind | None:
    kind = classify_status(status) if status else None
    if kind == "soft" and status and status.startswith("5.") and _NO_MAILBOX.search(diagnostic):
        return "hard"
    return kind


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part.

    The email package parses message/delivery-status into a list of header blocks; a report
    sent as text (some Exchange versions, or after a forward) is parsed here by hand.
    """
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        return list(payload)
    if isinstance(payload, Message):
        return [payload]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [email.message_from_string(block + "\n\n") for block in blocks if block.strip()]


def _addr_field(value: str | None) -> str | None:
    """``rfc822; user@example.org`` -> ``user@example.org``."""
    if not value:
        return None
    _, _, addr = str(value).partition(";") if ";" in str(value) else ("", "", str(value))
    addr = parseaddr(addr.strip())[1] or addr.strip().strip("<>")
    return addr or None


def _walk(msg: Message) -> Iterator[Message]:
    yield from msg.walk()


def _returned_copy(msg: Message) -> Message | None:
    """The original message (or its headers) that the report sends back."""
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                return inner
        if ctype in ("text/rfc822-headers", "message/rfc822-headers", "text/global-headers"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
            return email.message_from_string(text)
    return None


def find_token(msg: Message, *, envelope_to: str | None = None) -> str | None:
    """The VERP token this report was addressed to (see the module docstring for where it looks)."""
    candidates: list[str] = []
    if envelope_to:
        candidates.append(envelope_to)
    for name in ("Delivered-To", "X-Original-To", "X-Envelope-To", "Envelope-To", "To"):
        candidates += [addr for _, addr in getaddresses(msg.get_all(name, []))]
    for part in _walk(msg):
        if part.get_content_type() == "message/feedback-report":
            for block in _field_blocks(part):
                candidates.append(str(block.get("Original-Mail-From", "")))
    copy = _returned_copy(msg)
    if copy is not None:
        candidates += [str(copy.get("Return-Path", "")), str(copy.get("Errors-To", ""))]
    for text in candidates:
        m = _TOKEN.search(text)
        if m:
            return m.group(1)
    return None


def _arf(msg: Message) -> tuple[str | None, str] | None:
    """(recipient, feedback type) of an abuse report, or None when this is not one."""
    for part in _walk(msg):
        if part.get_content_type() != "message/feedback-report":
            continue
        recipient: str | None = None
        feedback = "abuse"
        for block in _field_blocks(part):
            feedback = str(block.get("Feedback-Type", feedback)).strip().lower() or feedback
            recipient = recipient or _addr_field(block.get("Original-Rcpt-To"))
        if feedback == "not-spam":  # RFC 6430: the opposite of a complaint
            return None
        if recipient is None:
            copy = _returned_copy(msg)
            if copy is not None:
                recipient = parseaddr(str(copy.get("To", "")))[1] or None
        return recipient, feedback
    return None


def _dsn(msg: Message) -> list[tuple[str | None, Kind, str | None, str]] | None:
    """(recipient, kind, status, diagnostic) per failed recipient of an RFC 3464 report."""
    for part in _walk(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        found: list[tuple[str | None, Kind, str | None, str]] = []
        for block in _field_blocks(part)[1:]:  # the first block is per-message (Reporting-MTA)
            action = str(block.get("Action", "")).strip().lower()
            if action in _NOT_FAILED:
                continue
            recipient = _addr_field(block.get("Final-Recipient")) or _addr_field(block.get("Original-Recipient"))
            diagnostic = remote_words(str(block.get("Diagnostic-Code", "") or ""))
            m = _STATUS.search(str(block.get("Status", "")))
            status = m.group(0) if m else None
            if status is None:
                m = _STATUS.search(diagnostic)
                status = m.group(0) if m else None
            kind = _kind(status, diagnostic)
            if kind is None and status and status.startswith("2"):
                continue
            if action == "delayed":
                kind = "soft"  # RFC 3464 2.3.3: still trying; a 5.x.x here is a forecast, not a fact
            if kind is None:
                code = _SMTP_CODE.search(diagnostic)
                kind = "hard" if action == "failed" and (code is None or code.group(1) == "5") else "soft"
            found.append((recipient, kind, status, diagnostic or action))
        return found
    return None


def _text_of(msg: Message) -> str:
    chunks: list[str] = []
    for part in _walk(msg):
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                chunks.append(_decoded(raw, part.get_content_charset()))
    return "\n".join(chunks)


def _decoded(raw: bytes, charset: str | None) -> str:
    """A text part's bytes in the charset it declares; a charset Python does not know is read as UTF-8."""
    try:
        return raw.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):  # ValueError: a charset name with a NUL in it
        return raw.decode("utf-8", "replace")


def _near(text: str, address: str) -> tuple[str | None, str]:
    """The status code and the line that the report writes about `address`, if any."""
    lowered = text.lower()
    start = lowered.find(address.lower())
    window = text[start : start + 600] if start >= 0 else text[:2000]
    m = _STATUS.search(window) or _STATUS.search(text)
    status = m.group(0) if m else None
    lines = [line.strip() for line in window.splitlines()[1:] if line.strip()]
    return status, remote_words(lines[0] if lines else "")


def _heuristics(msg: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """flufl.bounce's (temporary, permanent) failures; none when its detectors cannot read the message.

    Its detectors run in turn and the first to raise stops them all: a header of raw 8-bit bytes
    (which the email package gives as a Header object, not a str) breaks its sina and postfix
    detectors, an empty or missing From its yale detector. Such a message is read again as a copy
    with its headers as text and, when it has no sender, the null sender's "<>" (a bounce's own); if
    a detector still raises, the heuristics have read nothing."""
    try:
        return all_failures(msg)
    except Exception:  # a third-party heuristic on a hostile message: any error is "cannot read"
        pass
    try:
        as_text = email.message_from_string(msg.as_bytes().decode("utf-8", "replace"), policy=email.policy.compat32)
        if not str(as_text.get("From", "")).strip():
            del as_text["From"]
            as_text["From"] = "<>"
        return all_failures(as_text)
    except Exception:  # nor can the email package always write a hostile message out again
        return frozenset(), frozenset()


def _fallback(msg: Message) -> list[tuple[str | None, Kind, str | None, str]]:
    temporary, permanent = _heuristics(msg)
    text = _text_of(msg)
    found: list[tuple[str | None, Kind, str | None, str]] = []
    for addresses, default in ((permanent, "hard"), (temporary, "soft")):
        for raw in sorted(addresses):
            address = raw.decode("ascii", "replace")
            status, line = _near(text, address)
            kind: Kind | None = _kind(status, line)
            if kind is None:
                kind = "hard" if default == "hard" else "soft"
            found.append((address, kind, status, line))
    return found


def parse(msg: Message, *, envelope_to: str | None = None) -> Bounce | None:
    """What the report says, or None when it is not a bounce or complaint (an auto-reply, a
    delivery receipt, a delay warning that lists nobody).

    We send one recipient per message, so a report names one failure; when it names several,
    the worst (complaint, then hard, then soft) is returned.
    """
    token = find_token(msg, envelope_to=envelope_to)
    arf = _arf(msg)
    if arf is not None:
        recipient, feedback = arf
        return Bounce("complaint", recipient, token, None, f"feedback-type {feedback}", "arf")
    found = _dsn(msg)
    method: Literal["dsn", "fallback"] = "dsn"
    if not found:  # no DSN part, or one that names no failure: let the heuristics look
        found = _fallback(msg) if found is None else []
        method = "fallback"
    if not found:
        return None
    recipient, kind, status, diagnostic = max(found, key=lambda f: _KIND_RANK[f[1]])
    return Bounce(kind, recipient, token, status, diagnostic, method)


def parse_bytes(raw: bytes, *, envelope_to: str | None = None) -> Bounce | None:
    """`parse` for a message as received (SMTP DATA, a file, an IMAP fetch)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return parse(msg, envelope_to=envelope_to)
