"""Sign-up confirmation emails: the message and its sending, for the web app's /subscribe.

The email says who asked (nobody's data but the address it goes to) and carries the expiring
confirmation link; opening it shows a page whose button confirms (link scanners only GET).
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr

from digest.addresses import ascii_domain
from digest.catalogue import catalogue_folders, load_translations, site_title
from digest.config import Settings
from digest.deliver import Envelope, Outcome, SmtpTransport
from digest.errors import DigestError
from digest.pipeline.mailer import sender_domain

__all__ = ["confirmation_message", "send_confirmation"]

log = logging.getLogger(__name__)


def confirmation_message(settings: Settings, *, to: str, url: str, now: datetime) -> bytes:
    # The site's catalogues, as its editions and web pages read them: the same title, the same words.
    messages = load_translations(settings.digest.language, catalogue_folders(settings.digest.templates_dir))
    _ = messages.gettext
    title = site_title(messages, settings.digest.title)
    hours = int(settings.web.confirm_expiry.total_seconds() // 3600)
    msg = EmailMessage(policy=SMTP_POLICY)
    name, address = parseaddr(settings.smtp.sender)
    # Domains in IDNA A-labels, as in an edition (digest.message): the email package would write a
    # Unicode domain as an RFC 2047 encoded word, which is not allowed in an address.
    local, _at, domain = ascii_domain(address or settings.smtp.sender).rpartition("@")
    msg["From"] = Address(display_name=name or title, username=local, domain=domain)
    msg["To"] = ascii_domain(to)
    msg["Subject"] = _("Confirm your subscription to %(site)s") % {"site": title}
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender_domain(settings))
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this, please
    msg.set_content(
        "\n\n".join(
            [
                _("Someone, probably you, asked to receive %(site)s at this address.") % {"site": title},
                _("To confirm, open this link and press the button on the page:") + f"\n{url}",
                _(
                    "The link works for %(hours)d hours. "
                    "If you did not ask, ignore this email: you will get nothing more."
                )
                % {"hours": hours},
            ]
        )
        + "\n"
    )
    return bytes(msg.as_bytes(policy=SMTP_POLICY))


async def send_confirmation(settings: Settings, *, to: str, data: bytes) -> bool:
    """Send one confirmation; True when the SMTP server accepted it. Failures are logged, not raised:
    the person sees the same page either way and may ask again after the window."""
    sender = parseaddr(settings.smtp.sender)[1] or settings.smtp.sender
    try:
        async with SmtpTransport(settings.smtp) as transport:
            result = await transport.send(Envelope(key=0, sender=sender, recipient=to, data=data))
    except DigestError as exc:
        log.warning("signup: confirmation not sent: %s", exc.message)
        return False
    if result.outcome is not Outcome.SENT:
        log.warning("signup: confirmation not sent: %s", result.detail)
    return result.outcome is Outcome.SENT
