"""Signed tokens and Message-IDs derived from the site secret. Pure.

Unsubscribe and preference links carry an itsdangerous signature of the subscription's public id
(a random 32-hex string, never reused and never the row id: a link made for a removed subscriber
reaches nobody), one salt per purpose so a token made for one cannot be used for the other
(reliability.md G3). They do not expire: old emails must keep working (G4). Rotation: keys are
given newest first (``[web] secret_keys``); new tokens are signed with the newest and every key
verifies. Anything altered, truncated, signed with another salt or not a public id reads as None,
the same answer for every failure (U4).

Tokens of the release before public ids (salt ``*-v1``, the row id) still read through
``read_legacy_*``; the web app honours them only for rows that existed when the database was
upgraded, since ids handed out after that are never reused.

Bounce tokens go in the VERP return path ``bounce+<token>@<domain>``: ``<public id>-<edition>-<mac>``,
lower-case letters, digits and hyphens only, because some mail systems lower-case the local part
of the address they return a bounce to; the HMAC is checked against every accepted secret.

Sign-up confirmation links carry the request itself (address, sections, time zone, when),
sealed with AES-GCM under a key derived from the secret: readable by nobody but digest, because
proxies log URLs (the only token here that is encrypted, and the only one made with randomness).

Message-IDs are an HMAC of (edition, subscriber): a re-send after a crash carries the same ID, and
nobody without the secret can predict another subscriber's (A8).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer

from digest.errors import ConfigError

__all__ = [
    "key_ring",
    "bounce_token",
    "edition_key",
    "read_signup_token",
    "signup_token",
    "edition_key_ok",
    "message_id",
    "read_bounce_token",
    "preferences_token",
    "read_legacy_preferences_token",
    "read_legacy_unsubscribe_token",
    "read_preferences_token",
    "read_unsubscribe_token",
    "unsubscribe_token",
    "verp_address",
]

UNSUBSCRIBE_SALT = "unsubscribe-v2"
PREFERENCES_SALT = "preferences-v2"
LEGACY_UNSUBSCRIBE_SALT = "unsubscribe-v1"
LEGACY_PREFERENCES_SALT = "preferences-v1"
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_PUBLIC_ID = re.compile(r"[0-9a-f]{32}")


def key_ring(
    secret_keys: Sequence[str], secret: str | None, generated: str, *, only_listed: bool = False
) -> tuple[str, ...]:
    """Every key a link may be signed with, newest first, without repeats.

    ``[web] secret_keys`` come first (the operator's rotation list), then ``[digest] secret`` and the
    store's generated secret, which signed the links of emails sent before the list was set; with
    `only_listed` (``[web] only_listed_keys``) those two are retired: a leaked database or config
    file, which holds them, then opens no subscriber's link.
    """
    ring: list[str] = []
    for key in (*secret_keys, *(() if only_listed else (secret, generated))):
        if key and key not in ring:
            ring.append(key)
    return tuple(ring)


@functools.lru_cache(maxsize=8)
def _signer(secret: str, salt: str) -> URLSafeSerializer:
    # One per (secret, purpose) instead of one per token: a send signs two tokens per subscriber.
    return URLSafeSerializer(secret, salt=salt)


def _loads(keys: Sequence[str], salt: str, token: str) -> object:
    if not keys or not token:
        return None
    try:
        # itsdangerous takes keys oldest first and verifies with every one (its HMAC comparison
        # is constant-time).
        return URLSafeSerializer(list(reversed(keys)), salt=salt).loads(token)
    except (BadData, ValueError, TypeError):
        return None


def _read(keys: Sequence[str], salt: str, token: str) -> str | None:
    value = _loads(keys, salt, token)
    return value if isinstance(value, str) and _PUBLIC_ID.fullmatch(value) else None


def _read_legacy(keys: Sequence[str], salt: str, token: str) -> int | None:
    value = _loads(keys, salt, token)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@functools.lru_cache(maxsize=8)
def _mac(secret: str, salt: str) -> hmac.HMAC | None:
    """The HMAC itsdangerous signs `_signer(secret, salt)`'s tokens with, keyed once; None if this
    version of itsdangerous signs otherwise (then every token goes through it)."""
    serializer = _signer(secret, salt)
    mac = hmac.new(serializer.make_signer(salt).derive_key(), digestmod=hashlib.sha1)
    sample = "0123456789abcdeffedcba9876543210"  # no 3 bytes repeated: signed here, not by zlib
    fast = _signed(mac, sample)
    return mac if fast is not None and fast == serializer.dumps(sample) else None


def _signed(mac: hmac.HMAC, public_id: str) -> str | None:
    """What itsdangerous's URLSafeSerializer.dumps(public_id) returns, without its cost per token:
    it tries zlib on the JSON first (~35-150 us here, for an allocation of zlib's state; twice per
    message sent), and keeps the compressed form only if it is shorter. Deflate shortens data only
    with a repeated run of 3 bytes or more (a literal costs at least 8 bits in a fixed-code block,
    a stored or dynamic block of 34 bytes is longer still), so when the JSON has none the plain
    form is the answer; otherwise None, and the caller asks itsdangerous."""
    if not _PUBLIC_ID.fullmatch(public_id):
        return None
    text = f'"{public_id}"'
    if len({text[i : i + 3] for i in range(len(text) - 2)}) != len(text) - 2:
        return None  # a repeat: zlib might shorten it
    payload = base64.urlsafe_b64encode(text.encode("ascii")).rstrip(b"=")
    signature = mac.copy()
    signature.update(payload)
    return (payload + b"." + base64.urlsafe_b64encode(signature.digest()).rstrip(b"=")).decode("ascii")


def _dumps(key: str, salt: str, public_id: str) -> str:
    mac = _mac(key, salt)
    token = _signed(mac, public_id) if mac is not None else None
    return token if token is not None else _signer(key, salt).dumps(public_id)


def unsubscribe_token(key: str, public_id: str) -> str:
    """A URL-safe token for /u/<token>, signed with `key` (the newest)."""
    return _dumps(key, UNSUBSCRIBE_SALT, public_id)


def read_unsubscribe_token(keys: Sequence[str], token: str) -> str | None:
    """The public id, or None for anything not signed by one of `keys` (newest first) for unsubscribing."""
    return _read(keys, UNSUBSCRIBE_SALT, token)


def preferences_token(key: str, public_id: str) -> str:
    return _dumps(key, PREFERENCES_SALT, public_id)


def read_preferences_token(keys: Sequence[str], token: str) -> str | None:
    return _read(keys, PREFERENCES_SALT, token)


def read_legacy_unsubscribe_token(keys: Sequence[str], token: str) -> int | None:
    """The row id a token of the release before public ids carries; None otherwise."""
    return _read_legacy(keys, LEGACY_UNSUBSCRIBE_SALT, token)


def read_legacy_preferences_token(keys: Sequence[str], token: str) -> int | None:
    return _read_legacy(keys, LEGACY_PREFERENCES_SALT, token)


def message_id(secret: str, edition_id: int, subscriber_id: int, domain: str) -> str:
    """``<e{edition}.s{subscriber}.{hmac[:20]}@domain>``: stable per pair, unguessable without the secret."""
    # RFC 5322 3.6.4: the right-hand side is our own domain, never socket.getfqdn() (A7).
    try:
        host = domain.strip().rstrip(".")
        if not host.isascii():
            from digest.addresses import a_label_host  # idna's import only for an internationalised domain

            host = a_label_host(host)
    except UnicodeError:
        host = ""
    if not _DOMAIN.fullmatch(host):
        raise ConfigError(
            f"{domain!r} is not a domain name to put in Message-IDs.",
            hint="Set smtp.sender to an address in your own domain, e.g. digest@news.example.org.",
        )
    digest = hmac.new(
        secret.encode("utf-8"), f"message-id-v1:{edition_id}:{subscriber_id}".encode("ascii"), hashlib.sha256
    ).hexdigest()[:20]
    return f"<e{edition_id}.s{subscriber_id}.{digest}@{host}>"


# RFC 5321 4.5.3.1.1: a local part is at most 64 octets. "bounce+" (7) + public id (32) + "-" +
# edition id + "-" + MAC (12 hex, 48 bits: a forger must guess online, one bounce per guess) fits.
BOUNCE_MAC_CHARS = 12
_BOUNCE_TOKEN = re.compile(rf"([0-9a-f]{{32}})-([0-9]{{1,10}})-([0-9a-f]{{{BOUNCE_MAC_CHARS}}})")


def _bounce_mac(secret: str, public_id: str, edition_id: int) -> str:
    data = f"bounce-v1:{public_id}:{edition_id}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()[:BOUNCE_MAC_CHARS]


def bounce_token(secret: str, public_id: str, edition_id: int) -> str:
    """``<public id>-<edition>-<mac>``: which subscription got which edition, signed; never the row id."""
    if not _PUBLIC_ID.fullmatch(public_id):
        raise ValueError(f"{public_id!r} is not a subscriber's public id")
    return f"{public_id}-{edition_id}-{_bounce_mac(secret, public_id, edition_id)}"


def read_bounce_token(secrets: Sequence[str], token: str) -> tuple[str, int] | None:
    """(public id, edition id), or None for a token that no accepted secret signed."""
    m = _BOUNCE_TOKEN.fullmatch(token.strip().lower())
    if not m:
        return None
    public_id, edition_id = m.group(1), int(m.group(2))
    for secret in secrets:
        if hmac.compare_digest(_bounce_mac(secret, public_id, edition_id), m.group(3)):
            return public_id, edition_id
    return None


def verp_address(secret: str, public_id: str, edition_id: int, domain: str) -> str:
    """The envelope sender (MAIL FROM) of one message: ``bounce+<token>@<domain>`` (VERP)."""
    return f"bounce+{bounce_token(secret, public_id, edition_id)}@{domain.strip().rstrip('.').lower()}"


def edition_key(secret: str, day: str, timezone: str) -> str:
    """The key an edition page needs when the public archive is off (``[web] archive = false``).

    Per edition, not per subscriber: the link in the email opens the page, and a forwarded email
    gives away no subscriber's unsubscribe or preferences link.
    """
    data = f"edition-v1:{day}:{timezone}".encode()
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()[:24]


def edition_key_ok(secrets: Sequence[str], day: str, timezone: str, key: str) -> bool:
    return any(hmac.compare_digest(edition_key(secret, day, timezone), key) for secret in secrets)


SIGNUP_SALT = "signup-confirm-v1"  # signed, readable links of releases before sealed ones
SIGNUP_SEAL = b"digest signup-confirm-v2"
_NONCE = 12  # bytes: AES-GCM's standard nonce, random per link
_TAG = 16


@functools.lru_cache(maxsize=8)
def _sealing_key(secret: str) -> bytes:
    """A 256-bit AES key derived from one site secret for sign-up links alone (HKDF): the secret
    itself signs other tokens, and one key must not serve two purposes."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=SHA256(), length=32, salt=None, info=SIGNUP_SEAL).derive(secret.encode("utf-8"))


def signup_token(
    secret: str, email: str, sections: Sequence[str] | None, timezone: str | None, *, issued: datetime
) -> str:
    """The confirmation link's token: what the person asked for and when, sealed.

    Nothing is stored before the confirmation: the request lives in the link, which only the
    address's owner receives, and expires (read_signup_token's max_age, counted from `issued` on
    digest's clock, so DIGEST_NOW rehearsals and tests see the same expiry as production).
    The request is encrypted (AES-GCM, a random nonce per link), not only signed: a signed link
    is base64 of the address, and the access log of the TLS proxy the README puts in front of
    digest would keep every sign-up's address. A sealed token has no ".", which tells it from the
    signed links of earlier releases (still read until they expire).
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    payload = [email, list(sections) if sections is not None else None, timezone, int(issued.timestamp() * 1000)]
    nonce = os.urandom(_NONCE)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sealed = nonce + AESGCM(_sealing_key(secret)).encrypt(nonce, data, SIGNUP_SEAL)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _unseal(secrets: Sequence[str], token: str) -> object:
    """The sealed request under any of `secrets`, or None: altered, truncated, or not ours."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    if len(sealed) < _NONCE + _TAG + 2:
        return None
    nonce, body = sealed[:_NONCE], sealed[_NONCE:]
    for secret in secrets:
        try:
            data = AESGCM(_sealing_key(secret)).decrypt(nonce, body, SIGNUP_SEAL)
        except InvalidTag:
            continue
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            return None
    return None


def read_signup_token(
    secrets: Sequence[str], token: str, *, max_age: timedelta, now: datetime
) -> tuple[str, tuple[str, ...] | None, str | None, datetime] | None:
    """(email, sections or None for all, time zone or None, issued), or None: altered, expired, or not ours."""
    if not secrets or not token or len(token) > 2048:
        return None
    # A "." is an earlier release's signed link (base64url has none): still honoured until it expires.
    value = _loads(secrets, SIGNUP_SALT, token) if "." in token else _unseal(secrets, token)
    if not (isinstance(value, list) and len(value) == 4 and isinstance(value[0], str)):
        return None
    email, sections, timezone, issued = value
    if isinstance(issued, bool) or not isinstance(issued, int):
        return None
    age = now.timestamp() - issued / 1000
    if age < -300 or age > max_age.total_seconds():  # a little clock skew between processes is fine
        return None
    if sections is not None and not (isinstance(sections, list) and all(isinstance(x, str) for x in sections)):
        return None
    if timezone is not None and not isinstance(timezone, str):
        return None
    return (
        email,
        tuple(sections) if sections is not None else None,
        timezone,
        datetime.fromtimestamp(issued / 1000, tz=UTC),
    )
