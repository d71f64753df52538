"""`digest check-config --smtp`: one SMTP session opened exactly as a send opens it (connect,
greeting, EHLO, STARTTLS or implicit TLS, AUTH), the sender tried with MAIL FROM and RSET, then QUIT.

Nothing is sent: no RCPT, no DATA. A wrong port, TLS mode, certificate, password or sender is
found here with the same one-line error and hint a send would give (`SmtpTransport` raises them),
not at the first edition.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiosmtplib

from digest.config import SmtpSettings
from digest.deliver.core import one_line
from digest.deliver.envelopes import size_limit
from digest.deliver.smtp import SmtpTransport
from digest.errors import DeliveryError, SenderRefusedError, SmtpAuthError, full_stop


@dataclass(frozen=True, slots=True)
class Probe:
    """What one session found, each field a phrase for the operator."""

    where: str  # host:port
    greeting: str  # the server's 220 line
    tls: str
    auth: str
    size: int | None  # the largest message the server takes (EHLO SIZE); None: no limit offered
    smtputf8: bool
    sender: str  # the envelope sender tried
    sender_reply: str  # the server's answer to MAIL FROM


async def probe(settings: SmtpSettings, *, sender: str) -> Probe:
    """Open, describe, try `sender` at MAIL FROM, reset and quit; raises the DeliveryError a send would."""
    async with SmtpTransport(settings, must_open=True) as transport:
        smtp, greeting = transport.session()
        reply = await _try_sender(smtp, sender, where=transport.where)
        return Probe(
            where=transport.where,
            greeting=greeting,
            tls=_tls(smtp, settings),
            auth=_auth(smtp, settings),
            size=size_limit(smtp.esmtp_extensions),
            smtputf8=smtp.supports_extension("smtputf8"),
            sender=sender,
            sender_reply=reply,
        )


def _tls(smtp: aiosmtplib.SMTP, settings: SmtpSettings) -> str:
    if settings.security == "none":
        offered = smtp.supports_extension("starttls")
        return 'none (security = "none"): mail goes in plain text' + (
            '; the server offers STARTTLS, which security = "starttls" would use' if offered else ""
        )
    mode = "STARTTLS" if settings.security == "starttls" else "implicit TLS"
    tls = smtp.transport.get_extra_info("ssl_object") if smtp.transport is not None else None
    version = tls.version() if isinstance(tls, ssl.SSLObject | ssl.SSLSocket) else None
    return f"{mode}, {version or 'TLS'}, certificate verified for {settings.host}"


def _auth(smtp: aiosmtplib.SMTP, settings: SmtpSettings) -> str:
    if settings.username:
        return f"accepted for {settings.username!r}"
    offered = " ".join(m.upper() for m in smtp.server_auth_methods)
    return "not used ([smtp] username unset)" + (f"; the server offers AUTH {offered}" if offered else "")


async def _try_sender(smtp: aiosmtplib.SMTP, sender: str, *, where: str) -> str:
    """MAIL FROM the sender, then RSET: what a send's first command would meet, with nothing sent.
    A refusal raises what a send raises (M11, M16); a 4xx is only reported, as a send would defer."""
    utf8 = not sender.isascii()
    if utf8 and not smtp.supports_extension("smtputf8"):
        raise DeliveryError(
            f"The sender {sender!r} has a non-ASCII local part, which needs SMTPUTF8 (RFC 6531), and the "
            f"SMTP server {where} does not offer it.",
            hint="Use an ASCII address in [smtp] sender, or a relay that offers SMTPUTF8.",
        )
    try:
        reply = await smtp.mail(sender, options=["SMTPUTF8"] if utf8 else [], encoding="utf-8" if utf8 else "ascii")
    except aiosmtplib.SMTPResponseException as exc:
        said = full_stop(one_line(exc.code, exc.message))
        if exc.code in (530, 535):
            raise SmtpAuthError(f"The SMTP server {where} refused to send without authentication: {said}") from exc
        if exc.code >= 500:
            raise SenderRefusedError(f"The SMTP server {where} refused the sender {sender!r}: {said}") from exc
        return f"{one_line(exc.code, exc.message)} (a send would defer its messages and try again)"
    await smtp.rset()
    return one_line(reply.code, reply.message)
