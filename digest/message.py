"""The email bytes: a Rendered edition -> a pre-encoded message template -> one message per subscriber.

Pure and fast. An edition is rendered and MIME-encoded once per section set
(``build_template``); ``personalise`` then only splices each subscriber's values into the
pre-encoded bytes, so sending thousands of messages costs no MIME or quoted-printable work on the
edition's body.

The message (RFC 5322, RFC 2046 5.1.4): multipart/alternative with text/plain first and text/html
last, both UTF-8 and quoted-printable so no line passes 998 octets (A9, A10). The subscriber's
unsubscribe and preferences URLs sit where the templates put digest.render's markers: the text
around each marker is encoded separately and joined to the value with soft line breaks ("=" CRLF,
RFC 2045 6.7 rule 5), so the decoded body reads exactly as if the URL had been there all along.

Headers are built with the email package's header classes under ``email.policy.SMTP`` (RFC 2047
encoding and folding, A11), never by pasting feed text; every text value first becomes one line
(CR, LF, NUL, NEL, LS, PS -> space: E5, CVE-2024-6923). The two List-Unsubscribe headers are
written unfolded, because folding them has broken DKIM in practice (A6).

This module sends nothing and reads no clock: Date and Message-ID are arguments.
"""

from __future__ import annotations

import hashlib
import html
import re
from binascii import b2a_qp
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime
from typing import Any, Literal

import dkim

from digest.addresses import ascii_domain
from digest.errors import ConfigError, SubscriberError
from digest.model import PLACEHOLDER_PREFERENCES_URL, PLACEHOLDER_UNSUBSCRIBE_URL, Rendered

__all__ = [
    "DKIM_HEADERS",
    "EncodedPiece",
    "MessageTemplate",
    "build_template",
    "encode_piece",
    "one_line",
    "personalise",
    "sign_dkim",
    "template_from_pieces",
]

# The markers digest.render's templates put where each subscriber's links go. Stages do not import
# each other, so they are repeated here; a test keeps the two modules in step.

Slot = Literal["unsubscribe", "preferences"]
_MARKERS: dict[str, Slot] = {PLACEHOLDER_UNSUBSCRIBE_URL: "unsubscribe", PLACEHOLDER_PREFERENCES_URL: "preferences"}
_MARKER_RE = re.compile("|".join(re.escape(m) for m in _MARKERS))

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
MAX_LINE = 998  # RFC 5322 2.1.1, octets without CRLF
SUBJECT_CHARS = 400  # cap before encoding; the title is the operator's, but a cap keeps headers bounded
NAME_CHARS = 120

_POLICY = email_policy.SMTP  # CRLF, 78-column folding, RFC 2047 for non-ASCII
_POLICY_UTF8 = email_policy.SMTPUTF8  # only for an address whose mailbox itself is not ASCII (RFC 6532)

# E5: characters that end a line somewhere (RFC 5322, Unicode line breaks) or are not text at all.
_UNSAFE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
# A URL that can go into a header and a body as is: printable ASCII without space, quotes or angles.
_HEADER_URL = re.compile(r"(https?|mailto):[!#-;=?-~]+")

# h= of our DKIM signature: the headers a forwarder must not change, both List-Unsubscribe headers
# included (RFC 8058 section 4).
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
)


def one_line(text: str, *, limit: int) -> str:
    """Header-safe text: line breaks and controls become spaces, runs of space collapse, length capped."""
    flat = " ".join(_UNSAFE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- encoding helpers


def _fold(name: str, value: Any, *, policy: email_policy.EmailPolicy[Any] = _POLICY) -> bytes:
    """One header, encoded and folded by the email package's header class for `name`."""
    header = policy.header_factory(name, value)
    folded: str = header.fold(policy=policy)
    return folded.encode("utf-8" if policy.utf8 else "ascii")


def _encoded_words(name: str, text: str) -> str:
    """RFC 2047 encoded words for non-ASCII text, folded near 78 columns.

    email.header.Header, because the newer folder (3.11-3.13) drops or moves the space between
    words when it folds a long run of encoded words, so long Cyrillic subjects did not round-trip.
    """
    return Header(text, charset="utf-8", header_name=name, maxlinelen=78).encode(linesep="\r\n")


def _unstructured(name: str, text: str) -> bytes:
    if text.isascii():
        return _fold(name, text)
    return f"{name}: {_encoded_words(name, text)}".encode("ascii") + CRLF


def _qp(text: str) -> bytes:
    """Quoted-printable of UTF-8 text with CRLF line ends (RFC 2045 6.7), by binascii in C.

    b2a_qp writes CRLF line ends (hard and soft) only when the data's first line ends in CRLF, so
    one is added and taken off again: a piece that ends mid-line stays mid-line, and pieces join.
    Lines stay within 76 characters; "=" is always escaped, so the output never contains "=_".
    """
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8") + CRLF
    encoded = b2a_qp(data, quotetabs=False, istext=True, header=False)
    return encoded[:-2] if encoded.endswith(CRLF) else encoded


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_body(text: str) -> tuple[tuple[bytes, ...], tuple[Slot, ...]]:
    """QP-encode the text between markers; the segments are later joined around each subscriber value."""
    segments: list[bytes] = []
    slots: list[Slot] = []
    start = 0
    for match in _MARKER_RE.finditer(text):
        segments.append(_qp(text[start : match.start()]))
        slots.append(_MARKERS[match.group(0)])
        start = match.end()
    segments.append(_qp(text[start:]))
    return tuple(segments), tuple(slots)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDR = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*(?: [A-Za-z0-9'_-]+)*")


def _plain_address(key: str, display: str, addr: str) -> bytes | None:
    """The header as the email package would write it, for the usual case only: an ASCII dot-atom
    address and a name of letters, digits and spaces, on one line. It is 50 times cheaper, and it
    runs once per subscriber; anything else (None) goes through the email package."""
    if not _PLAIN_ADDR.fullmatch(addr) or (display and not _PLAIN_NAME.fullmatch(display)):
        return None
    line = f"{key}: {display} <{addr}>" if display else f"{key}: {addr}"
    return line.encode("ascii") + CRLF if len(line) <= 78 else None


def _address(addr: str, name: str | None, *, key: str) -> bytes:
    display = one_line(name, limit=NAME_CHARS) if name else ""
    addr = addr.strip()
    if (plain := _plain_address(key, display, addr)) is not None:
        return plain
    if _UNSAFE.search(addr) or not addr or "@" not in addr:
        raise SubscriberError(f"{addr!r} cannot be put in the {key} header.")
    # The domain in IDNA A-labels on every relay, as digest.deliver writes it in MAIL FROM and RCPT
    # TO: the same bytes (and DKIM signature) whatever the relay offers, and an ASCII local part
    # needs no SMTPUTF8 (RFC 5890 2.3.2.1). Raises SubscriberError for a domain IDNA cannot write.
    local, _, domain = ascii_domain(addr).rpartition("@")
    try:
        if not (local.isascii() and domain.isascii()):  # RFC 6532: needs SMTPUTF8 anyway
            return _fold(key, Address(display_name=display, username=local, domain=domain), policy=_POLICY_UTF8)
        if display.isascii():
            return _fold(key, Address(display_name=display, username=local, domain=domain))
        mailbox = Address(username=local, domain=domain).addr_spec  # quotes an unusual local part
        return f"{key}: {_encoded_words(key, display)}\r\n <{mailbox}>".encode("ascii") + CRLF
    except (ValueError, IndexError, TypeError) as exc:  # the email package's parse and fold errors
        raise SubscriberError(f"{addr!r} cannot be put in the {key} header: {exc}.") from exc


def _url(url: str, *, what: str) -> str:
    if not _HEADER_URL.fullmatch(url):
        raise ConfigError(
            f"The {what} {url!r} is not a plain ASCII URL that can go in a header.",
            hint="Check digest.base_url and smtp.unsubscribe_mailto.",
        )
    return url


# --------------------------------------------------------------------------- the template


@dataclass(frozen=True, slots=True)
class EncodedPiece:
    """A piece of a body part, quoted-printable once; pieces join into a part without re-encoding."""

    body: tuple[bytes, ...]  # QP segments, len(slots) + 1
    slots: tuple[Slot, ...]  # the subscriber URLs between the segments
    digest: bytes  # SHA-256 of the text: the boundary is made from these


def encode_piece(text: str) -> EncodedPiece:
    body, slots = _split_body(_normalise_newlines(text))
    return EncodedPiece(body=body, slots=slots, digest=hashlib.sha256(text.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A whole message pre-encoded as bytes, with the per-subscriber parts left as slots.

    ``personalise`` writes: from_header, To, subject_header, Date, Message-ID, list_headers,
    List-Unsubscribe, tail_headers, then body segments interleaved with the body slots'
    values (``len(body) == len(slots) + 1``); each slot is QP-encoded for text or, with ``html``
    set, HTML-escaped first; a None slot puts nothing between its segments (where two pieces join).
    """

    from_header: bytes
    subject_header: bytes
    list_headers: bytes  # MIME-Version, List-Id, List-Archive, Feedback-ID
    tail_headers: bytes  # List-Unsubscribe-Post, Content-Type, blank line
    body: tuple[bytes, ...]
    slots: tuple[tuple[Slot, bool] | None, ...]  # (which URL, HTML-escaped?); None: nothing
    subject: str  # the clean one-line subject, for logs and tests


_FEEDBACK_ID = re.compile(r"[A-Za-z0-9._/-]+(?::[A-Za-z0-9._/-]+){1,3}")


def build_template(
    rendered: Rendered,
    *,
    sender: str,
    sender_name: str | None,
    list_id: str,
    base_url: str,
    feedback_id: str | None = None,
) -> MessageTemplate:
    """Encode a rendered edition once; only the subscriber's parts are left to fill in.

    `feedback_id` is the Feedback-ID header (Gmail's feedback loop: up to four colon-separated
    identifiers, the last naming the sender); it is per edition and carries no personal data.
    """
    return template_from_pieces(
        rendered.subject,
        [encode_piece(rendered.text)],
        [encode_piece(rendered.html)],
        sender=sender,
        sender_name=sender_name,
        list_id=list_id,
        base_url=base_url,
        feedback_id=feedback_id,
    )


def template_from_pieces(
    subject: str,
    text: Sequence[EncodedPiece],
    html: Sequence[EncodedPiece],
    *,
    sender: str,
    sender_name: str | None,
    list_id: str,
    base_url: str,
    feedback_id: str | None = None,
) -> MessageTemplate:
    """A message whose text and HTML parts are the given pieces joined in order.

    The pieces are encoded already (one per section, shared by every section set that has it), so
    this costs no encoding of the body: segments are referenced, not copied. Where a piece ends
    mid-line, a soft line break ("=" CRLF) joins it to the next, so the part decodes to the pieces'
    texts joined, and no line passes 78 octets.
    """
    subject = one_line(subject, limit=SUBJECT_CHARS)
    list_host = list_id.strip().strip("<>")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+", list_host):
        raise ConfigError(f"The List-Id {list_id!r} is not a dot-atom such as digest.news.example.org.")
    archive = _url(base_url.rstrip("/") + "/", what="archive URL (digest.base_url)")

    # RFC 2046 5.1.1: the boundary must not occur in the parts; QP output never contains "=_".
    digests = hashlib.sha256()
    for piece in (*text, *html):
        digests.update(piece.digest)
    boundary = "=_digest_" + digests.hexdigest()[:32]
    delimiter = b"--" + boundary.encode("ascii")

    def part_head(subtype: str) -> bytes:
        return (
            delimiter
            + CRLF
            + f'Content-Type: text/{subtype}; charset="utf-8"'.encode("ascii")
            + CRLF
            + b"Content-Transfer-Encoding: quoted-printable"
            + CRLF
            + CRLF
        )

    body: list[bytes] = []
    slots: list[tuple[Slot, bool] | None] = []

    def add(pieces: Sequence[EncodedPiece], *, escaped: bool) -> None:
        for piece in pieces:
            if piece.body == (b"",):
                continue
            if body and body[-1] and not body[-1].endswith(CRLF) and piece.body[0]:
                slots.append(None)
                body.append(SOFT_BREAK)
            for k, segment in enumerate(piece.body):
                if k:
                    slots.append((piece.slots[k - 1], escaped))
                    body.append(segment)
                elif body:
                    slots.append(None)
                    body.append(segment)
                else:
                    body.append(segment)

    # A9: text/plain first, text/html last (the last alternative is the preferred one).
    body.append(part_head("plain"))
    add(text, escaped=False)
    slots.append(None)
    body.append(CRLF + part_head("html"))
    add(html, escaped=True)
    slots.append(None)
    body.append(CRLF + delimiter + b"--" + CRLF)

    list_headers = (
        b"MIME-Version: 1.0"
        + CRLF
        + f"List-Id: <{list_host}>".encode("ascii")
        + CRLF
        + f"List-Archive: <{archive}>".encode("ascii")
        + CRLF
    )
    if feedback_id is not None:
        if not _FEEDBACK_ID.fullmatch(feedback_id):
            raise ValueError(f"{feedback_id!r} is not a Feedback-ID such as 7:2026-11-30:edition:example.org")
        list_headers += f"Feedback-ID: {feedback_id}".encode("ascii") + CRLF
    tail_headers = (
        # RFC 8058 section 3.1: exactly this value.
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
        + CRLF
        + b"Content-Type: multipart/alternative;"
        + CRLF
        + f' boundary="{boundary}"'.encode("ascii")
        + CRLF
        + CRLF
    )
    try:
        from_header = _address(sender, sender_name, key="From")
    except SubscriberError as exc:  # the operator's address, not a subscriber's: no row is at fault
        raise ConfigError(f"smtp.sender: {exc.message}", hint="Fix [smtp] sender in your config file.") from None
    return MessageTemplate(
        from_header=from_header,
        subject_header=_unstructured("Subject", subject),
        list_headers=list_headers,
        tail_headers=tail_headers,
        body=tuple(body),
        slots=tuple(slots),
        subject=subject,
    )


def _list_unsubscribe(https_url: str, mailto: str | None) -> bytes:
    # RFC 2369 3.2 / RFC 8058 3.1: each URI in angle brackets, the one HTTPS URI first, one line.
    uris = [f"<{_url(https_url, what='unsubscribe URL')}>"]
    if mailto:
        target = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        if "?" not in target:
            target += "?subject=unsubscribe"
        uris.append(f"<{_url(target, what='unsubscribe mailto')}>")
    line = "List-Unsubscribe: " + ", ".join(uris)
    if len(line) > MAX_LINE:  # fold between the URIs only when one line cannot hold both
        line = "List-Unsubscribe: " + ",\r\n ".join(uris)
        if any(len(part) > MAX_LINE for part in line.split("\r\n")):
            raise ConfigError(
                f"The unsubscribe URL is {len(https_url)} characters; it must fit in one header line.",
                hint="Use a shorter digest.base_url.",
            )
    return line.encode("ascii") + CRLF


def _slot_value(url: str, *, escape_html: bool) -> bytes:
    value = html.escape(url, quote=True) if escape_html else url
    return SOFT_BREAK + _qp(value) + SOFT_BREAK


def personalise(
    template: MessageTemplate,
    *,
    to_addr: str,
    to_name: str | None,
    message_id: str,
    date: datetime,
    unsubscribe_url: str,
    preferences_url: str,
    unsubscribe_mailto: str | None = None,
) -> bytes:
    """The subscriber's message as CRLF bytes, ready for SMTP DATA (the transport dot-stuffs)."""
    if not re.fullmatch(r"<[!-;=?-~]+@[!-;=?-~]+>", message_id):
        raise ValueError(f"{message_id!r} is not a Message-ID (digest.tokens.message_id makes them)")
    if date.tzinfo is None:
        raise ValueError("the Date of a message must be timezone-aware")
    urls = {
        "unsubscribe": _url(unsubscribe_url, what="unsubscribe URL"),
        "preferences": _url(preferences_url, what="preferences URL"),
    }
    values: dict[tuple[Slot, bool] | None, bytes] = {
        key: _slot_value(urls[key[0]], escape_html=key[1]) for key in set(template.slots) if key is not None
    }
    values[None] = b""
    parts = [
        template.from_header,
        _address(to_addr, to_name, key="To"),
        template.subject_header,
        b"Date: " + format_datetime(date).encode("ascii") + CRLF,
        b"Message-ID: " + message_id.encode("ascii") + CRLF,
        template.list_headers,
        _list_unsubscribe(urls["unsubscribe"], unsubscribe_mailto),
        template.tail_headers,
    ]
    for segment, slot in zip(template.body, template.slots, strict=False):
        parts.append(segment)
        parts.append(values[slot])
    parts.append(template.body[-1])
    return b"".join(parts)


def sign_dkim(message: bytes, *, domain: str, selector: str, private_key: bytes) -> bytes:
    """The message with a DKIM-Signature (rsa-sha256, relaxed/simple) prepended; h= is DKIM_HEADERS."""
    try:
        signature = dkim.sign(
            message,
            selector.encode("ascii"),
            domain.encode("ascii"),
            private_key,
            include_headers=list(DKIM_HEADERS),
            linesep=CRLF,
        )
    except (dkim.DKIMException, UnicodeError, ValueError) as exc:
        raise ConfigError(
            f"Cannot DKIM-sign for {domain} with selector {selector!r}: {exc}.",
            hint="Check the DKIM private key file (PEM RSA) and the domain and selector.",
        ) from exc
    return bytes(signature) + message
