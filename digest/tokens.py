"""Signed tokens and Message-IDs derived from the site secret. Pure.

Unsubscribe and preference links carry an itsdangerous signature of the subscriber id, one salt
per purpose so a token made for one cannot be used for the other (reliability.md G3). They do not
expire: old emails must keep working (G4). Rotation: verification takes every accepted secret,
oldest first and newest last, as itsdangerous' key list does; new tokens are always signed with
the newest. Anything altered, truncated, signed with another salt or not an id reads as None, the
same answer for every failure (U4).

Bounce tokens go in the VERP return path ``bounce+<token>@<domain>``: ``<subscriber>-<edition>-<mac>``,
lower-case letters, digits and hyphens only, because some mail systems lower-case the local part
of the address they return a bounce to; the HMAC is checked against every accepted secret.

Message-IDs are an HMAC of (edition, subscriber): a re-send after a crash carries the same ID, and
nobody without the secret can predict another subscriber's (A8).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Sequence

from itsdangerous import BadData, URLSafeSerializer

from digest.errors import ConfigError

__all__ = [
    "bounce_token",
    "edition_key",
    "edition_key_ok",
    "message_id",
    "read_bounce_token",
    "preferences_token",
    "read_preferences_token",
    "read_unsubscribe_token",
    "unsubscribe_token",
    "verp_address",
]

UNSUBSCRIBE_SALT = "unsubscribe-v1"
PREFERENCES_SALT = "preferences-v1"
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@functools.lru_cache(maxsize=8)
def _signer(secret: str, salt: str) -> URLSafeSerializer:
    # One per (secret, purpose) instead of one per token: a send signs two tokens per subscriber.
    return URLSafeSerializer(secret, salt=salt)


def _sign(secret: str, salt: str, subscriber_id: int) -> str:
    return _signer(secret, salt).dumps(subscriber_id)


def _read(secrets: Sequence[str], salt: str, token: str) -> int | None:
    if not secrets or not token:
        return None
    try:
        # itsdangerous verifies with every key (its HMAC comparison is constant-time) and signs
        # with the last one.
        value = URLSafeSerializer(list(secrets), salt=salt).loads(token)
    except (BadData, ValueError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """A short URL-safe token for /u/<token>, e.g. ``MQ.x9Gv...``."""
    return _sign(secret, UNSUBSCRIBE_SALT, subscriber_id)


def read_unsubscribe_token(secrets: Sequence[str], token: str) -> int | None:
    """The subscriber id, or None for anything not signed by one of `secrets` for unsubscribing."""
    return _read(secrets, UNSUBSCRIBE_SALT, token)


def preferences_token(secret: str, subscriber_id: int) -> str:
    return _sign(secret, PREFERENCES_SALT, subscriber_id)


def read_preferences_token(secrets: Sequence[str], token: str) -> int | None:
    return _read(secrets, PREFERENCES_SALT, token)


def message_id(secret: str, edition_id: int, subscriber_id: int, domain: str) -> str:
    """``<e{edition}.s{subscriber}.{hmac[:20]}@domain>``: stable per pair, unguessable without the secret."""
    # RFC 5322 3.6.4: the right-hand side is our own domain, never socket.getfqdn() (A7).
    try:
        host = domain.strip().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        host = ""
    if not _DOMAIN.fullmatch(host):
        raise ConfigError(f"{domain!r} is not a domain name to put in Message-IDs.",
                          hint="Set smtp.sender to an address in your own domain, e.g. digest@news.example.org.")
    digest = hmac.new(secret.encode("utf-8"), f"message-id-v1:{edition_id}:{subscriber_id}".encode("ascii"),
                      hashlib.sha256).hexdigest()[:20]
    return f"<e{edition_id}.s{subscriber_id}.{digest}@{host}>"


BOUNCE_MAC_CHARS = 16  # 64 bits: a forged token must be guessed online, one bounce per guess
_BOUNCE_TOKEN = re.compile(rf"([0-9]{{1,12}})-([0-9]{{1,12}})-([0-9a-f]{{{BOUNCE_MAC_CHARS}}})")


def _bounce_mac(secret: str, subscriber_id: int, edition_id: int) -> str:
    data = f"bounce-v1:{subscriber_id}:{edition_id}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()[:BOUNCE_MAC_CHARS]


def bounce_token(secret: str, subscriber_id: int, edition_id: int) -> str:
    """``17-42-0123456789abcdef``: who got which edition, signed."""
    return f"{subscriber_id}-{edition_id}-{_bounce_mac(secret, subscriber_id, edition_id)}"


def read_bounce_token(secrets: Sequence[str], token: str) -> tuple[int, int] | None:
    """(subscriber id, edition id), or None for a token that no accepted secret signed."""
    m = _BOUNCE_TOKEN.fullmatch(token.strip().lower())
    if not m:
        return None
    subscriber_id, edition_id = int(m.group(1)), int(m.group(2))
    for secret in secrets:
        if hmac.compare_digest(_bounce_mac(secret, subscriber_id, edition_id), m.group(3)):
            return subscriber_id, edition_id
    return None


def verp_address(secret: str, subscriber_id: int, edition_id: int, domain: str) -> str:
    """The envelope sender (MAIL FROM) of one message: ``bounce+<token>@<domain>`` (VERP)."""
    return f"bounce+{bounce_token(secret, subscriber_id, edition_id)}@{domain.strip().rstrip('.').lower()}"


def edition_key(secret: str, day: str, timezone: str) -> str:
    """The key an edition page needs when the public archive is off (``[web] archive = false``).

    Per edition, not per subscriber: the link in the email opens the page, and a forwarded email
    gives away no subscriber's unsubscribe or preferences link.
    """
    data = f"edition-v1:{day}:{timezone}".encode()
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()[:24]


def edition_key_ok(secrets: Sequence[str], day: str, timezone: str, key: str) -> bool:
    return any(hmac.compare_digest(edition_key(secret, day, timezone), key) for secret in secrets)
