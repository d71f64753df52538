"""Subscriber addresses: syntax checked with email-validator (no DNS: imports must work offline)."""

from __future__ import annotations

import email_validator

from digest.errors import SubscriberError


def validate_email(address: str) -> str:
    """The normalised address, or SubscriberError saying what is wrong with it."""
    try:
        info = email_validator.validate_email(address.strip(), check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        raise SubscriberError(f"{address!r} is not a valid email address: {exc}") from None
    return info.normalized.lower()
