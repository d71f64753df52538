"""One SMTP connection opened as every send opens it (connect, greeting, EHLO, STARTTLS or implicit
TLS, AUTH) and closed politely, with the translation of what went wrong on the way into a
DigestError the operator can act on, or `ConnectFailed` when trying again later may help.

It owns no pool and sends no message: `SmtpTransport` pools `Connection`s and runs transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiosmtplib

from digest.config import SmtpSettings
from digest.deliver.core import one_line
from digest.errors import DeliveryError, SmtpAuthError, full_stop


class ConnectFailed(Exception):
    """A connection could not be opened for a reason worth retrying later (TRANSIENT)."""

    def __init__(self, code: int | None, detail: str, *, reachable: bool, silent: bool = False) -> None:
        super().__init__(detail)
        self.code, self.detail, self.reachable = code, detail, reachable
        self.silent = silent  # the TCP connection opened, and no greeting came


class Connection:
    """One pooled SMTP connection and its reuse counters."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.smtp: aiosmtplib.SMTP | None = None
        self.greeting = ""  # the server's 220 line when it opened
        self.messages = 0
        self.last_used = 0.0

    @property
    def open(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None

    async def quit(self, timeout: float) -> None:
        """QUIT if the server is still there, then close; a server that does not answer is not waited for."""
        if self.open and self.smtp is not None:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.smtp.quit()
        self.close()


async def open_smtp(
    settings: SmtpSettings, *, helo: str | None, tls: ssl.SSLContext | None, where: str
) -> tuple[aiosmtplib.SMTP, str]:
    """A greeted, secured and authenticated client, and the server's greeting as one line.

    Raises DeliveryError or SmtpAuthError for what the operator must fix, ConnectFailed otherwise."""
    s = settings
    smtp = aiosmtplib.SMTP(
        hostname=s.host,
        port=s.port,
        local_hostname=helo,
        timeout=s.timeout,
        use_tls=s.security == "tls",
        start_tls=False,  # done below, so that a missing STARTTLS is an error, not plain text
        tls_context=tls,
    )
    step = "connect"
    try:
        # aiosmtplib clients have hung on reconnect (aiosmtplib#243): bound the whole opening.
        # A second more than aiosmtplib's own bound on each step, so that its error, which
        # tells a silent greeting from a connection never made, comes first.
        async with asyncio.timeout(s.timeout + 1.0):
            greeting = await smtp.connect()
            step = "EHLO"
            await _greet(smtp)
            if s.security == "starttls":
                step = "STARTTLS"
                if not smtp.supports_extension("starttls"):
                    raise DeliveryError(
                        f"The SMTP server {where} does not offer STARTTLS; refusing to send in plain text.",
                        hint='Use security = "tls" (port 465) or a server that offers STARTTLS.',
                    )
                await smtp.starttls()
                await _greet(smtp)
            if s.username:
                step = "AUTH"
                await smtp.login(s.username, s.password or "")
    except BaseException as exc:
        # aiosmtplib's timeout waiting for the greeting, on a connection that did open
        opened = isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) and isinstance(
            exc.__cause__, aiosmtplib.SMTPTimeoutError
        )
        smtp.close()
        if isinstance(exc, Exception):
            _translate_connect_error(exc, step, settings=s, where=where, opened=opened)
        raise
    return smtp, one_line(greeting.code, greeting.message)


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        await smtp.helo()


def _translate_connect_error(exc: Exception, step: str, *, settings: SmtpSettings, where: str, opened: bool) -> None:
    """Raise the DigestError or ConnectFailed that `exc`, met at `step` of opening, stands for;
    `opened`: the TCP connection was made."""
    if isinstance(exc, DeliveryError):
        raise exc
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        raise SmtpAuthError(
            f"The SMTP server {where} refused the credentials of {settings.username!r}: "
            f"{full_stop(one_line(exc.code, exc.message))}"
        ) from exc
    tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if step == "STARTTLS" or isinstance(tls_error, ssl.SSLError | ssl.CertificateError):
        reason = tls_error if isinstance(tls_error, ssl.SSLError) else exc
        hint = (
            "If the relay uses a private CA, set [smtp] ca_file to its certificate; "
            "check that [smtp] host matches the certificate."
        )
        if getattr(reason, "reason", None) == "WRONG_VERSION_NUMBER" and step == "connect":
            # The reply to our TLS hello was not TLS: a plain SMTP greeting, on the submission
            # port (587) or 25, where TLS starts only after STARTTLS.
            hint = (
                'The server speaks plain SMTP on this port: use security = "starttls" (usually '
                'port 587), or "none" for a relay on this machine.'
            )
        raise DeliveryError(
            f"TLS with the SMTP server {where} failed: {full_stop(str(reason))} Nothing was sent in plain text.",
            hint=hint,
        ) from exc
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # e.g. 421 at the greeting (M1)
        raise ConnectFailed(exc.code, one_line(exc.code, exc.message), reachable=True) from exc
    if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(exc, ConnectionError | TimeoutError):
        # e.g. no AUTH: aiosmtplib's "... Try connecting via TLS (or STARTTLS)." has its own period
        raise DeliveryError(f"The SMTP server {where} cannot be used: {full_stop(str(exc))}") from exc
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        detail = one_line(None, str(exc) or "timed out")
        if step != "connect":
            detail = f"{step} failed: {detail}"
        elif opened:
            detail = f"no greeting in {settings.timeout:g}s on a connection that opened"
        raise ConnectFailed(None, detail, reachable=step != "connect", silent=step == "connect" and opened) from exc
