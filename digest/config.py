"""Configuration: TOML file + DIGEST_* environment -> one frozen, validated Settings.

Every scalar setting is declared once, as a dataclass field whose metadata carries its
documentation and validator; the loader, `digest check-config` and the test that keeps
config/digest.example.toml in step all read that declaration. Validation happens before any
I/O, and every error names the key (``smtp.port``) and says what is wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import CONTROLS, ConfigError, DigestError
from digest.model import NAME_LIMIT, FeedSpec

log = logging.getLogger(__name__)

DEFAULT_SECTIONS = (
    "Russian Politics & Diplomacy",
    "World",
    "Business & Economy",
    "Military & Defense",
    "Science & Space",
    "Society & Culture",
    "Sport",
    "Press Review",
)

Check = Callable[[str, Any], Any]  # (key, raw value) -> converted value, or raise ConfigError


# --------------------------------------------------------------------------- validators


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {_type_name(value)}.")
    return value


def check_opt_str(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    return check_str(key, value)


def check_label(key: str, value: Any) -> str:
    """A name the store keeps (a section's, a feed's, a subscriber's): one line, no control
    character. PostgreSQL refuses a NUL in text, and every command after the config sync failed."""
    text = check_str(key, value)
    if CONTROLS.search(text):
        raise ConfigError(
            f"{key} = {text!r} contains a control character (a line break, a tab, a NUL).",
            hint="Write the name on one line, with no control characters.",
        )
    return text


def check_opt_label(key: str, value: Any) -> str | None:
    return None if value is None or value == "" else check_label(key, value)


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, not {value!r}.")
    return value


def _check_int(lo: int, hi: int) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number, not {value!r}.")
        if not lo <= value <= hi:
            raise ConfigError(f"{key} must be between {lo} and {hi}, not {value}.")
        return value

    return check


def _check_opt_int(lo: int, hi: int) -> Check:
    """A whole number in [lo, hi], or unset (None, ""); digits from the environment count."""
    whole = _check_int(lo, hi)

    def check(key: str, value: Any) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.strip().isdigit():  # DIGEST_WEB_METRICS_PORT=9108
            value = int(value)
        number: int = whole(key, value)
        return number

    return check


def _check_float(lo: float, hi: float) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, not {value!r}.")
        if not lo <= value <= hi:
            raise ConfigError(f"{key} must be between {lo} and {hi}, not {value}.")
        return float(value)

    return check


def check_timezone(key: str, value: Any) -> str:
    name = check_str(key, value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        meant = _zone_meant(name)
        raise ConfigError(
            f"{key} = {name!r} is not an IANA time zone" + (f" (did you mean {meant!r}?)." if meant else "."),
            hint="Use a name like 'Europe/Moscow' or 'UTC', written as the tz database writes it.",
        ) from None
    return name


def _zone_meant(name: str) -> str | None:
    """The tz database's zone a miswritten one stands for: the same name in other case
    ("europe/moscow"), or with spaces for underscores ("America/New York")."""
    import zoneinfo

    wanted = name.strip().replace(" ", "_").casefold()
    return next((z for z in sorted(zoneinfo.available_timezones()) if z.casefold() == wanted), None)


def close_match(name: str, known: Sequence[str]) -> str | None:
    """The one of `known` that `name` was meant to be: the same but for case ("sports" for
    "Sports"), else the closest spelling ("Wrold" for "World", "sports" for "Sport"), if any is close."""
    import difflib

    folded = {k.casefold(): k for k in known}
    if name.casefold() in folded:
        return folded[name.casefold()]
    found = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.75)
    return folded[found[0]] if found else None


def check_hhmm(key: str, value: Any) -> time:
    text = check_str(key, value)
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not m:
        raise ConfigError(f'{key} must be a local time "HH:MM" (24-hour), not {text!r}.')
    return time(int(m.group(1)), int(m.group(2)))


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta | None:
    """'48h', '7d', '1h30m' -> timedelta; None when the text is not a duration."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        return None
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(compact)))


def check_duration(key: str, value: Any) -> timedelta:
    text = check_str(key, value)
    try:
        parsed = parse_duration(text)
    except OverflowError:  # "99999999999999d" is past what a timedelta holds (999999999 days)
        raise ConfigError(f'{key} = {text!r} is far too long; use a duration like "48h" or "7d".') from None
    if parsed is None or parsed <= timedelta(0):
        raise ConfigError(f'{key} must be a duration like "48h", "7d" or "1h30m", not {text!r}.')
    return parsed


def check_security(key: str, value: Any) -> str:
    text = check_str(key, value)
    if text not in ("none", "starttls", "tls"):
        raise ConfigError(f'{key} must be "none", "starttls" or "tls", not {text!r}.')
    return text


def check_language(key: str, value: Any) -> str:
    text = check_str(key, value)
    if text not in ("en", "ru"):
        raise ConfigError(f'{key} must be "en" or "ru", not {text!r}.')
    return text


# Characters a URL in an email header and an HTML attribute cannot carry as they are (RFC 3986
# leaves them out): a base_url with one of them would break every link of every edition later.
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f\"'<>\\^`{|}]")


def check_base_url(key: str, value: Any) -> str:
    text = check_str(key, value).rstrip("/")
    if not re.match(r"https?://[^/\s]+", text) or _URL_UNSAFE.search(text):
        raise ConfigError(
            f"{key} must be an http(s) URL such as https://news.example.org (no spaces, quotes "
            f"or angle brackets), not {text!r}."
        )
    return text


def check_address(key: str, value: Any) -> str:
    """An email address, checked exactly as `digest subscribers add` and CSV imports check it."""
    from digest.addresses import validate_email
    from digest.errors import SubscriberError

    text = check_str(key, value)
    try:
        return validate_email(text)
    except SubscriberError as exc:
        raise ConfigError(f"{key}: {exc.message}", hint="Write a plain address such as editor@example.org.") from None


def check_sender(key: str, value: Any) -> str:
    """A From address, optionally with a display name: "Press Review <digest@example.org>"."""
    from email.utils import parseaddr

    text = check_str(key, value)
    if re.search(r"[\x00-\x1f\x7f]", text):  # CR/LF would make the header say something else
        raise ConfigError(
            f"{key} = {text!r} contains a line break or control character.",
            hint='Write it on one line, such as "Press Review <digest@example.org>".',
        )
    _, addr = parseaddr(text)
    local, at, domain = addr.rpartition("@")
    # Not email-validator: the sender is the operator's own, often on a private relay whose domain
    # (the default digest@localhost) a public-address check would refuse.
    if not at or not local or not domain or re.search(r"[\s<>]", addr):
        raise ConfigError(f'{key} = {text!r} is not an address such as "Press Review <digest@example.org>".')
    return text


def check_opt_address(key: str, value: Any) -> str | None:
    return None if value is None or value == "" else check_address(key, value)


def check_database(key: str, value: Any) -> str | None:
    """A SQLAlchemy URL whose driver is installed (the name is checked; nothing is opened)."""
    text = check_opt_str(key, value)
    if text is None:
        return None
    if text.partition("://")[2].partition("/")[0].count("@") > 1:
        # SQLAlchemy ends the password at its first "@" and takes the rest for the host: the
        # connection would fail naming part of the password as a host it cannot resolve.
        raise ConfigError(
            f"{key} = {mask_url(text)!r} has an '@' in its password.",
            hint="Percent-encode the password's special characters: @ as %40, : as %3A, / as %2F.",
        )
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(text).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        scheme = text.partition(":")[0]
        raise ConfigError(
            f"{key}: {scheme!r} is not a database digest can use ({exc.__class__.__name__}).",
            hint='Use "sqlite:///path/digest.sqlite" or "postgresql+psycopg://user@host/db".',
        ) from None
    return text


# A URL's password: from after "user:" to the last "@" (a password with an unescaped "@" is hidden
# whole: SQLAlchemy's render_as_string(hide_password=True) stops at the first "@" and would print
# the rest), and libpq's ?password= parameter, which SQLAlchemy passes on without hiding it.
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]*:).*@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A database URL fit to print (check-config, logs, errors): its password shown as ***.

    A pattern, not SQLAlchemy: it also masks a URL SQLAlchemy cannot read (the error saying so
    quotes it), and config stays free of SQLAlchemy's import.
    """
    return _QUERY_PASSWORD.sub("***", _URL_PASSWORD.sub(r"\1***@", url))


def check_secret_keys(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings, newest first.")
    keys = tuple(v.strip() for v in value)
    if any(len(k) < 16 for k in keys):
        raise ConfigError(
            f"{key} has a key shorter than 16 characters.",
            hint='Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"',
        )
    return keys


def check_subject(key: str, value: Any) -> str:
    text = check_str(key, value)
    if text not in ("headline", "date", "lead"):
        raise ConfigError(f'{key} must be "headline", "date" or "lead", not {text!r}.')
    return text


def _opt(default: Any, doc: str, check: Check, *, secret: bool = False, example: str | int | None = None) -> Any:
    """Declare a setting: its default, its one-line documentation and its validator."""
    meta = {"doc": doc, "check": check, "secret": secret, "example": example}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- settings tables

DEFAULT_BASE_URL = "http://localhost:8080"  # `link_problem` warns that no reader can open its links


@dataclass(frozen=True, slots=True)
class DigestSettings:
    title: str = _opt(
        "Press Review",
        'Title of the email and the web pages; left at its default it reads in `language` ("Обзор прессы"). '
        "The subject is '<title> — <date>: <the story most outlets tell>', cut to fit.",
        check_str,
    )
    timezone: str = _opt("UTC", "IANA time zone of the edition date and of subscribers without one.", check_timezone)
    send_at: time = _opt(time(7, 0), 'Local time "HH:MM" at which each subscriber gets the edition.', check_hhmm)
    database: str | None = _opt(
        None,
        "SQLAlchemy URL; default: sqlite file digest.sqlite beside the config file. A relative sqlite:/// "
        "path is relative to the working directory, not to the config file.",
        check_database,
        example="sqlite:////var/lib/digest/digest.sqlite",
    )
    base_url: str = _opt(
        DEFAULT_BASE_URL, "Public URL of the web app; links in the email point under it.", check_base_url
    )
    max_item_age: timedelta = _opt(
        timedelta(hours=48), 'An item older than this when first seen is not sent ("48h", "7d").', check_duration
    )
    max_items_per_section: int = _opt(
        10, "Stories shown per section before 'N more in <Section>'.", _check_int(1, 1000)
    )
    max_per_source: int = _opt(
        3, "Stories from one outlet shown per section before 'N more in <Section>'.", _check_int(1, 1000)
    )
    allow_private_addresses: bool = _opt(
        False, "Allow feeds on loopback/private addresses (needed for feeds on 127.0.0.1).", check_bool
    )
    fallback_section: str = _opt("Other", "Section for items that match no rule.", check_str)
    language: str = _opt("en", 'Language of the email\'s labels: "en" or "ru".', check_language)
    templates_dir: str | None = _opt(
        None,
        "Folder with templates overriding the built-in ones; a relative path is from the config file's folder.",
        check_opt_str,
    )
    secret: str | None = _opt(
        None,
        "Site secret for Message-IDs and unsubscribe tokens; generated and stored when unset.",
        check_opt_str,
        secret=True,
    )
    excerpt_chars: int = _opt(280, "Length of each story's excerpt in both parts, cut at a word.", _check_int(0, 5000))
    catch_up: timedelta | None = _opt(
        None,
        'After downtime a missed edition is still sent if at most this late ("6h"), and an open one\'s deferred '
        "messages retried (by `digest send` too), and none given up before then ([smtp] give_up_after); "
        "default: the same local day.",
        lambda key, value: None if value in (None, "", "same-day") else check_duration(key, value),
        example="same-day",
    )
    poll_interval: timedelta = _opt(
        timedelta(minutes=15), "How often each feed is polled by the daemon.", check_duration
    )
    top_stories: int = _opt(
        5,
        'Stories most outlets tell, shown first in a "Top stories" block with their number of outlets; 0: none.',
        _check_int(0, 50),
    )
    cluster_threshold: float = _opt(
        0.25,
        "How alike (0-1) two items' titles and summaries must be to be one story; lower merges more.",
        _check_float(0.05, 1.0),
    )
    read_also: int = _opt(
        2, '"Read also" links per story to earlier items on the same subject; 0: none.', _check_int(0, 10)
    )
    read_also_min: float = _opt(
        0.25, 'Least similarity (0-1) of two items compared alone for a "Read also" link.', _check_float(0.0, 1.0)
    )
    read_also_days: int = _opt(7, 'How many days back "Read also" looks for earlier items.', _check_int(1, 365))
    images: bool = _opt(False, "One lead image per story; remote images tell senders who opened the email.", check_bool)
    synopsis_sentences: int = _opt(
        3, "Sentences quoted from its outlets under a story covered by two or more; 0: none.", _check_int(0, 10)
    )
    subject: str = _opt(
        "headline",
        "\"headline\": '<title> — <date>: <the story most outlets tell>'; \"date\": '<title> — <date>'; "
        "\"lead\": 'Press review: <lead story> and <second story>'.",
        check_subject,
    )
    press_section: str = _opt(
        "Press Review", "Section that quotes each `press = true` feed's leading stories, before its own.", check_str
    )


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = _opt("localhost", "SMTP server host.", check_str)
    port: int = _opt(25, "SMTP server port (25, 587 for starttls, 465 for tls).", _check_int(1, 65535))
    security: str = _opt("none", '"none", "starttls" or "tls"; certificates are verified.', check_security)
    username: str | None = _opt(None, "SMTP user name; no AUTH when unset.", check_opt_str)
    password: str | None = _opt(None, "SMTP password; better set DIGEST_SMTP_PASSWORD.", check_opt_str, secret=True)
    sender: str = _opt("digest@localhost", "From address of the edition.", check_sender)
    timeout: float = _opt(
        60.0,
        "Seconds to wait for each SMTP command and for a connection to open; the reply after a message's "
        "data waits at least 300 s (RFC 5321), since giving up there may send it twice.",
        _check_float(1, 3600),
    )
    messages_per_connection: int = _opt(
        1000,
        "Messages sent over one SMTP connection before it is closed and another opened: at most a "
        "relay's own limit, which it enforces by refusing the next message for a while.",
        _check_int(1, 100_000),
    )
    ca_file: str | None = _opt(
        None,
        "CA bundle to verify a private relay's certificate; a relative path is from the config file's folder.",
        check_opt_str,
    )
    connections: int = _opt(4, "SMTP connections used in parallel, each reused for many messages.", _check_int(1, 64))
    workers: int = _opt(
        0,
        "Processes `digest send` and `digest run` send from, sharing the connections; 0: one per CPU core.",
        _check_int(0, 64),
    )
    rate_limit: float = _opt(0.0, "At most this many messages per second; 0 means no limit.", _check_float(0, 10000))
    unsubscribe_mailto: str | None = _opt(
        None,
        "Address for a mailto: List-Unsubscribe besides the https one; digest reads no mail sent to it: "
        "run `digest subscribers unsubscribe EMAIL` for each request.",
        check_opt_address,
    )
    give_up_after: timedelta = _opt(
        timedelta(hours=20),
        "A message still failing with 4xx this long after its edition is marked failed; with [digest] catch_up "
        "set and longer, not before the edition is past it (a catch-up may still retry it).",
        check_duration,
    )
    circuit_breaker: int = _opt(50, "Consecutive failed messages that stop a run.", _check_int(1, 100000))
    suspend_after: int = _opt(
        3,
        "Permanent (5xx) refusals of an address in a row (a delivery clears them) that suspend its subscriber.",
        _check_int(1, 1000),
    )
    claim_lease: timedelta = _opt(
        timedelta(minutes=1),
        "How long a sender's claim on messages lasts unless renewed; then another sender takes them over.",
        check_duration,
    )


@dataclass(frozen=True, slots=True)
class FetchSettings:
    concurrency: int = _opt(50, "Feeds fetched at once.", _check_int(1, 1000))
    per_host: int = _opt(4, "Feeds fetched at once from one host.", _check_int(1, 100))
    timeout: float = _opt(30.0, "Total seconds one fetch may take, body included.", _check_float(1, 600))
    connect_timeout: float = _opt(10.0, "Seconds to connect to a feed's server.", _check_float(0.1, 120))
    max_body: int = _opt(
        10 * 1024 * 1024, "Largest feed body in bytes, counted after decompression.", _check_int(1024, 1 << 31)
    )
    max_redirects: int = _opt(5, "Redirect hops followed per fetch.", _check_int(0, 30))
    user_agent: str = _opt("", "User-Agent header; default names digest and its URL.", check_str)
    parse_cpu_seconds: float = _opt(
        10.0, "CPU seconds one feed's parse may use before it is stopped.", _check_float(0.5, 600)
    )
    parse_workers: int = _opt(0, "Parser processes (feeds parsed at once); 0: one per CPU.", _check_int(0, 256))
    host_interval: float = _opt(
        0.0,
        "Least seconds between two requests to one host, by all workers together; 0: no minimum.",
        _check_float(0, 3600),
    )


@dataclass(frozen=True, slots=True)
class WebSettings:
    enabled: bool = _opt(
        False, "Serve the web app (unsubscribe, preferences, edition pages) from `digest run`.", check_bool
    )
    host: str = _opt("127.0.0.1", "Address the web app listens on (put a TLS proxy in front of it).", check_str)
    port: int = _opt(8080, "Port the web app listens on.", _check_int(1, 65535))
    metrics_port: int | None = _opt(
        None,
        "Serve /metrics on a listener of its own on this port, and answer it 404 on port; "
        "unset: /metrics is served on port.",
        _check_opt_int(1, 65535),
        example=9108,
    )
    metrics_host: str = _opt("127.0.0.1", "Address the metrics_port listener listens on.", check_str)
    archive: bool = _opt(
        True,
        "Public archive of sent editions and its Atom feed; false: an edition page needs "
        "the key its email's links carry.",
        check_bool,
    )
    secret_keys: tuple[str, ...] = _opt(
        (),
        "Keys that sign unsubscribe/preferences links, newest first; older ones still verify (rotation).",
        check_secret_keys,
        secret=True,
    )
    only_listed_keys: bool = _opt(
        False,
        "Links verify with secret_keys alone: [digest] secret and the generated secret are retired "
        "(after a copy of the config or the database leaked).",
        check_bool,
    )
    signup: bool = _opt(
        True, "The sign-up page /subscribe (confirmed opt-in by email), linked from every page.", check_bool
    )
    confirm_expiry: timedelta = _opt(timedelta(hours=48), "How long a sign-up confirmation link works.", check_duration)
    confirm_window: timedelta = _opt(
        timedelta(hours=1),
        "At most one confirmation email per mailbox this often (an address's +tag, and dots at Gmail, ignored).",
        check_duration,
    )
    confirm_hourly_cap: int = _opt(
        100, "At most this many confirmation emails per hour in all.", _check_int(1, 1_000_000)
    )
    signup_per_client: int = _opt(
        5, "Sign-up form posts allowed per client address per 10 minutes.", _check_int(1, 10_000)
    )


def check_imap_security(key: str, value: Any) -> str:
    text = check_str(key, value)
    if text not in ("tls", "starttls", "none"):
        raise ConfigError(f'{key} must be "tls", "starttls" or "none", not {text!r}.')
    return text


@dataclass(frozen=True, slots=True)
class BouncesSettings:
    domain: str | None = _opt(
        None,
        "Domain of the VERP return path `bounce+<token>@<domain>`; unset: the sender is the return path.",
        check_opt_str,
        example="bounces.example.org",
    )
    soft_threshold: float = _opt(
        3.0, "Soft-bounce score at which an address is suppressed (each soft bounce adds 1).", _check_float(1, 1000)
    )
    soft_decay: timedelta = _opt(
        timedelta(days=7), "Half-life of the soft-bounce score: it halves over this long.", check_duration
    )
    imap_host: str | None = _opt(
        None, "IMAP server `digest bounces fetch` reads bounces from.", check_opt_str, example="imap.example.org"
    )
    imap_port: int = _opt(993, "IMAP port (993 for tls, 143 for starttls or none).", _check_int(1, 65535))
    imap_security: str = _opt("tls", '"tls", "starttls" or "none"; certificates are verified.', check_imap_security)
    imap_username: str | None = _opt(None, "IMAP user name.", check_opt_str)
    imap_password: str | None = _opt(
        None, "IMAP password; better set DIGEST_BOUNCES_IMAP_PASSWORD.", check_opt_str, secret=True
    )
    imap_folder: str = _opt(
        "INBOX", "Mailbox folder holding the bounces; each read message is flagged \\Seen.", check_str
    )


@dataclass(frozen=True, slots=True)
class WorkersSettings:
    max_clock_skew: timedelta = _opt(
        timedelta(seconds=30),
        "A `digest worker` whose clock differs from the database's by more than this refuses to start.",
        check_duration,
    )


@dataclass(frozen=True, slots=True)
class DkimSettings:
    domain: str | None = _opt(
        None, "Sign with DKIM for this domain (d=); all three keys or none.", check_opt_str, example="press.example.org"
    )
    selector: str | None = _opt(
        None,
        "DKIM selector (s=): the key is published at <selector>._domainkey.<domain>.",
        check_opt_str,
        example="digest",
    )
    key_file: str | None = _opt(
        None,
        "PEM file with the RSA private key; a relative path is from the config file's folder.",
        check_opt_str,
        example="/etc/digest/dkim.pem",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.domain and self.selector and self.key_file)


@dataclass(frozen=True, slots=True)
class Rule:
    """Conditions that must all hold (digest.sections says how rules compete)."""

    categories: tuple[str, ...] = ()
    url_patterns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()  # feed names or URLs
    not_keywords: tuple[str, ...] = ()
    keyword_groups: tuple[tuple[str, ...], ...] = ()  # keywords = [[...], [...]]: a word of each list
    # The item's language is one of these (primary tags, "en"); only in [[sections.rules]].
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    categories: tuple[str, ...] = ()
    url_patterns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    not_keywords: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()  # [[sections.rules]]: each combines conditions that must all hold
    max_items: int | None = None  # stories shown before "N more in <Section>"; None: [digest] max_items_per_section
    formerly: tuple[str, ...] = ()  # names it had before: subscribers' choices under them count for it


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    email: str
    name: str | None = None
    sections: tuple[str, ...] | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class OutletName:
    """[outlets]: how the press review cites a site an aggregator's items link to ("ria.ru")."""

    site: str  # its host, lower-case, without "www."
    name: str
    plural: bool = False  # grammatically plural, as a feed's plural = true


@dataclass(frozen=True, slots=True)
class Settings:
    digest: DigestSettings
    smtp: SmtpSettings
    fetch: FetchSettings
    dkim: DkimSettings
    web: WebSettings
    sections: tuple[Section, ...]
    feeds: tuple[FeedSpec, ...]
    subscribers: tuple[SubscriberSpec, ...]
    path: Path | None = None  # the file it came from
    bounces: BouncesSettings = field(default_factory=BouncesSettings)
    workers: WorkersSettings = field(default_factory=WorkersSettings)
    outlets: tuple[OutletName, ...] = ()

    @property
    def database_url(self) -> str:
        if self.digest.database:
            return self.digest.database
        folder = self.path.parent if self.path else Path.cwd()
        return f"sqlite:///{(folder / 'digest.sqlite').resolve()}"

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file, absolute, as this process opens it (a relative path from the
        working directory, as SQLite reads it); None for a server database or one in memory."""
        name = _sqlite_database(self.database_url)
        return Path(os.path.abspath(name)) if name else None

    def beside_database(self, suffix: str) -> Path:
        """A small state file shared by the daemon, the web process and the CLI: beside the SQLite
        file, or for a server database beside the config file."""
        from sqlalchemy.engine.url import make_url  # only here: config stays cheap to import

        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).with_name(Path(url.database).name + suffix)
        folder = self.path.parent if self.path else Path.cwd()
        return folder / f"digest{suffix}"

    @property
    def section_renames(self) -> dict[str, str]:
        """A section's former name -> its name now ([[sections]] formerly)."""
        return _renames(self.sections)

    def current_section(self, name: str) -> str:
        """A section name a subscriber chose, under the name the section has now."""
        return self.section_renames.get(name, name)

    def filed_section(self, name: str | None) -> str | None:
        """A stored feed's own section as a section of this config: under its name now ([[sections]]
        formerly), or None when no section has it (an OPML folder imported before this digest filed
        such feeds under the rules, a section since dropped). Its items then go by the rules, as for a
        feed with no section: a section no subscriber can choose is never mailed to all-sections
        readers alone."""
        if name is None:
            return None
        name = self.current_section(name)
        return name if name in self.section_names else None

    def chosen_now(self, chosen: Sequence[str] | None) -> tuple[str, ...] | None:
        """A subscriber's stored choice under the names the sections have now, each once, in the
        order chosen; None (all sections) stays None. Every reader of a stored choice goes through
        this, not only the one-time rewrite of stored names (`digest` commands' config sync): a
        process still running the old config (a `digest web` not yet restarted) may write a former
        name after that rewrite, and the section is the same."""
        if chosen is None:
            return None
        renames = self.section_renames
        return tuple(dict.fromkeys(renames.get(name, name) for name in chosen))

    @property
    def section_names(self) -> tuple[str, ...]:
        names = tuple(s.name for s in self.sections)
        fallback = self.digest.fallback_section
        names = names if fallback in names else (*names, fallback)
        if any(f.press for f in self.feeds) and self.digest.press_section not in names:
            names = (*names, self.digest.press_section)  # subscribers choose it like any other section
        return names


TABLES: dict[str, type] = {
    "digest": DigestSettings,
    "smtp": SmtpSettings,
    "fetch": FetchSettings,
    "dkim": DkimSettings,
    "web": WebSettings,
    "bounces": BouncesSettings,
    "workers": WorkersSettings,
}

# Environment overrides: DIGEST_<TABLE>_<KEY>, plus the documented short forms for secrets.
ENV_ALIASES = {"DIGEST_SMTP_PASSWORD": ("smtp", "password"), "DIGEST_SECRET": ("digest", "secret")}

# digest's own variables that are not settings (the config's path, the rehearsal clock, the daemon's
# tick in tests, `db copy`'s target password), and those of its test suite and scripts: never reported as unknown.
OTHER_VARIABLES = frozenset(
    {
        "DIGEST_CONFIG",
        "DIGEST_NOW",
        "DIGEST_DAEMON_TICK",
        "DIGEST_CORPUS",
        "DIGEST_SKIP_APT",
        "DIGEST_DB_COPY_PASSWORD",  # `digest db copy`'s target password (store/copy.py)
        "DIGEST_PURE_PYTHON",  # `pip install` builds pure Python, clustering not compiled (hatch_build.py)
    }
)
_TEST_PREFIX = "DIGEST_TEST_"  # DIGEST_TEST_POSTGRES_URL, DIGEST_TEST_VENV


def env_variables(table: str, name: str) -> list[tuple[str, bool]]:
    """The variables that set table.name, weakest first, each with whether it names a file that
    holds the value (<NAME>_FILE: Docker and systemd credentials). A variable's _FILE form beats the
    variable, and a short form (DIGEST_SECRET) beats the long one (DIGEST_DIGEST_SECRET)."""
    plain = f"DIGEST_{table}_{name}".upper()
    names = [plain, *(alias for alias, key in ENV_ALIASES.items() if key == (table, name) and alias != plain)]
    return [(variable, is_file) for n in names for variable, is_file in ((n, False), (n + "_FILE", True))]


# --------------------------------------------------------------------------- loading


def find_config_path(explicit: str | None, env: Mapping[str, str]) -> Path:
    """--config, else $DIGEST_CONFIG, else ./digest.toml."""
    if explicit:
        return Path(explicit)
    if env.get("DIGEST_CONFIG"):
        return Path(env["DIGEST_CONFIG"])
    return Path("digest.toml")


def _sqlite_database(url: str) -> str | None:
    """The file path a SQLite URL names, as written (perhaps relative); None for any other URL,
    for a database in memory, and for a file: URI (SQLite reads it its own way)."""
    if not url.lower().startswith("sqlite"):
        return None
    from sqlalchemy.engine.url import make_url  # check_database imported it already: nothing to pay

    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return name


def _warn_relative_database(settings: Settings) -> None:
    """One warning line when a relative SQLite path opens elsewhere than beside the config file.

    SQLite reads a relative path from the working directory, so `digest` run from cron or systemd
    somewhere else silently opens a fresh, empty database. Not resolved against the config's folder
    instead: upgrading must not move anyone's data; the operator is told, and what to write.
    """
    name = _sqlite_database(settings.digest.database or "")
    if name is None or Path(name).is_absolute() or settings.path is None:
        return
    here, beside = Path.cwd().resolve(), settings.path.parent
    if here == beside:
        return
    log.warning(
        "[digest] database = %r is relative to the working directory %s, not to the config file's folder "
        "%s: this command opens %s; write the path absolute (sqlite:///%s) to open the same file from anywhere",
        mask_url(settings.digest.database or ""),
        here,
        beside,
        here / name,
        beside / name,
    )


def load(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    if not path.is_file():
        raise ConfigError(
            f"No config file at {path}.",
            hint="Run `digest init` to write a starter digest.toml, or pass --config PATH.",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from exc
    try:
        settings = from_mapping(raw, env=os.environ if env is None else env, path=path.resolve())
    except ConfigError as exc:
        raise located(exc, path) from None
    _warn_relative_database(settings)  # every command loads the config first: said at its start
    return settings


_ENTRY = re.compile(r"\b(feeds|subscribers|sections) #(\d+)")


def located(exc: ConfigError, path: Path | None) -> ConfigError:
    """`exc` with the line of the config file where the entry it names ("feeds #13") begins: the
    13th `[[feeds]]` header, found by scanning the file, since TOML parsers keep no positions. Still
    one line; unchanged when the entry is not written as a [[table]] (an inline array) or the file
    cannot be read again."""
    found = _ENTRY.search(exc.message)
    if path is None or found is None:
        return exc
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return exc
    header = re.compile(r"\s*\[\[\s*" + found.group(1) + r"\s*\]\]")
    wanted, seen = int(found.group(2)), 0
    for number, line in enumerate(text.splitlines(), start=1):
        if header.match(line):
            seen += 1
            if seen == wanted:
                # After the message, whole: its words stay as every other place says them.
                return type(exc)(f"{exc.message} ({found.group(0)}: {path.name} line {number})", hint=exc.hint)
    return exc


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, key) -> (the variable that set it, its value), read from the file a _FILE form names."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for table, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            for variable, is_file in env_variables(table, f.name):
                if variable not in env:
                    continue
                value = env[variable]
                if is_file:
                    try:
                        value = Path(value).read_text(encoding="utf-8").strip()
                    except (OSError, UnicodeDecodeError) as exc:
                        raise ConfigError(
                            f"{variable} points at {env[variable]}, which cannot be read: {exc}.",
                            hint=f"Point {variable} at a readable file holding the value, or unset it.",
                        ) from exc
                found[(table, f.name)] = (variable, value)  # the later, stronger variable wins
    return found


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    """Warnings for DIGEST_* variables digest does not read, each with a "did you mean" when one is
    close. Other software may set DIGEST_* variables of its own, so an unknown name is a warning;
    but one under a table's prefix (DIGEST_SMTP_PASWORD) can only be a misspelt setting, ignored
    while the operator thinks it set: that is a ConfigError, as an unknown key in the file is."""
    known = {
        v for table, cls in TABLES.items() for f in dataclasses.fields(cls) for v, _ in env_variables(table, f.name)
    }
    warnings: list[str] = []
    for variable in sorted(env):
        if not variable.startswith("DIGEST_") or variable in known or variable in OTHER_VARIABLES:
            continue
        if variable.startswith(_TEST_PREFIX):
            continue
        table = next((t for t in TABLES if variable.startswith(f"DIGEST_{t.upper()}_")), None)
        if table is not None:
            from difflib import get_close_matches  # here: only a misspelt name pays its import

            near = get_close_matches(
                variable, sorted(v for v in known if v.startswith(f"DIGEST_{table.upper()}_")), n=1
            )
            raise ConfigError(
                f"The environment variable {variable} is not a setting of [{table}]"
                + (f"; did you mean {near[0]}?" if near else "."),
                hint=f"Rename or unset it; [{table}] settings are "
                + ", ".join(f"DIGEST_{table}_{f.name}".upper() for f in dataclasses.fields(TABLES[table]))
                + " (each also as <NAME>_FILE).",
            )
        from difflib import get_close_matches

        near = get_close_matches(variable, sorted(known | OTHER_VARIABLES), n=1, cutoff=0.8)
        warnings.append(
            f"the environment variable {variable} is not one digest reads; it is ignored"
            + (f" (did you mean {near[0]}?)" if near else " (settings are DIGEST_<TABLE>_<KEY>)")
        )
    return warnings


def _coerce_env(f: dataclasses.Field[Any], text: str) -> Any:
    """Environment values are strings; turn them into what the field's TOML form would be."""
    default = f.default
    if isinstance(default, bool):
        # Only unmistakable words: "ture" must be an error, not a silent false.
        word = text.strip().lower()
        return {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(word, text)
    if isinstance(default, tuple):  # a list setting: comma-separated
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            return text
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _build_table(table: str, cls: type, raw: Any, overrides: dict[tuple[str, str], tuple[str, str]]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"[{table}] must be a table.")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"{table}.{unknown[0]} is not a setting.",
            hint=f"Known [{table}] settings: {', '.join(known)}. See config/digest.example.toml.",
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{table}.{name}"
        check: Check = f.metadata["check"]
        if (table, name) in overrides:
            variable, text = overrides[(table, name)]
            try:
                values[name] = check(key, _coerce_env(f, text))
            except ConfigError as exc:  # the value came from the environment, not from the file
                raise ConfigError(
                    f"{exc.message.rstrip('.')} (from the environment).",
                    hint=f"Fix or unset the environment variable {variable}; "
                    "`digest check-config` shows the effective settings.",
                ) from exc
        elif name in raw:
            values[name] = check(key, raw[name])
    return cls(**values)


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings.")
    return tuple(value)


def _entries(raw: Mapping[str, Any], table: str) -> list[dict[str, Any]]:
    value = raw.get(table, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"[[{table}]] must be an array of tables (write each as [[{table}]]).")
    return value


def _reject_unknown(key: str, entry: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(f"{key}.{extra[0]} is not a setting; allowed: {', '.join(sorted(allowed))}.")


_RULE_KEYS = ("categories", "url_patterns", "keywords", "feeds", "not_keywords")


def _rule(key: str, entry: Mapping[str, Any]) -> Rule:
    """The rule keys of a [[sections]] table or of one of its [[sections.rules]]."""
    raw_keywords = entry.get("keywords", [])
    groups: tuple[tuple[str, ...], ...] = ()
    if isinstance(raw_keywords, list) and raw_keywords and all(isinstance(g, list) for g in raw_keywords):
        if ".rules #" not in key:
            raise ConfigError(f"{key}.keywords: lists of lists belong in a [[sections.rules]] table.")
        groups = tuple(_str_list(f"{key}.keywords[{i}]", g) for i, g in enumerate(raw_keywords))
        entry = {k: v for k, v in entry.items() if k != "keywords"}
    values: dict[str, Any] = {k: _str_list(f"{key}.{k}", entry.get(k, [])) for k in _RULE_KEYS}
    values["keyword_groups"] = groups
    if "languages" in entry:
        if ".rules #" not in key:
            raise ConfigError(f"{key}.languages belongs in a [[sections.rules]] table, with the conditions it narrows.")
        values["languages"] = _languages(f"{key}.languages", entry["languages"])
    for p in values["url_patterns"]:
        try:
            re.compile(p)
        except re.error as exc:
            raise ConfigError(f"{key}.url_patterns has an invalid regular expression {p!r}: {exc}.") from exc
    return Rule(**values)


def _languages(key: str, value: Any) -> tuple[str, ...]:
    """Primary language tags ("en-GB" -> "en") of languages digest can tell an item is written in."""
    from digest import words  # here: reading a config without such a rule need not import it

    told = words.TOLD_LANGUAGES
    out: list[str] = []
    for tag in _str_list(key, value):
        lang = words.primary_language(tag)
        if lang not in told:
            raise ConfigError(
                f"{key}: {tag!r} is not a language digest tells items apart by; use one of "
                f"{', '.join(sorted(told))} (text in Cyrillic is read as ru, in Arabic script as ar)."
            )
        out.append(lang)
    if not out:
        raise ConfigError(f"{key} is empty; list the languages the rule is for, or leave it out.")
    return tuple(dict.fromkeys(out))


def _sections(raw: Mapping[str, Any]) -> tuple[Section, ...]:
    entries = _entries(raw, "sections")
    if not entries:
        return tuple(Section(name) for name in DEFAULT_SECTIONS)
    sections: list[Section] = []
    for i, entry in enumerate(entries, start=1):
        key = f"sections #{i}"  # counted from 1, as people count entries
        _reject_unknown(key, entry, {"name", *_RULE_KEYS, "rules", "max_items", "languages", "formerly"})
        if "name" not in entry:
            raise ConfigError(f"{key}.name is missing: every section needs a name.")
        name = check_label(f"{key}.name", entry["name"]).strip()
        if not name:
            raise ConfigError(f"{key}.name is empty.")
        if any(s.name == name for s in sections):
            raise ConfigError(f"{key}.name = {name!r} is declared twice.")
        own = _rule(key, entry)
        rules = []
        raw_rules = entry.get("rules", [])
        if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
            raise ConfigError(f"{key}.rules must be an array of tables (write each as [[sections.rules]]).")
        for j, raw_rule in enumerate(raw_rules, start=1):
            rule_key = f"{key}.rules #{j}"
            _reject_unknown(rule_key, raw_rule, {*_RULE_KEYS, "languages"})
            rule = _rule(rule_key, raw_rule)
            if (
                not (rule.categories or rule.url_patterns or rule.keywords or rule.keyword_groups or rule.feeds)
                and not rule.languages
            ):
                raise ConfigError(
                    f"{rule_key} has no condition; give it categories, url_patterns, keywords, feeds or languages."
                )
            rules.append(rule)
        sections.append(
            Section(
                name=name,
                categories=own.categories,
                url_patterns=own.url_patterns,
                keywords=own.keywords,
                feeds=own.feeds,
                not_keywords=own.not_keywords,
                rules=tuple(rules),
                max_items=_check_int(1, 1000)(f"{key}.max_items", entry["max_items"]) if "max_items" in entry else None,
                formerly=tuple(
                    check_label(f"{key}.formerly", n).strip()
                    for n in _str_list(f"{key}.formerly", entry.get("formerly", []))
                ),
            )
        )
    return tuple(sections)


def _renames(sections: Sequence[Section]) -> dict[str, str]:
    """A section's former name -> its name now ([[sections]] formerly)."""
    return {old: s.name for s in sections for old in s.formerly}


def _check_former_names(sections: Sequence[Section], choosable: tuple[str, ...]) -> None:
    """A former name stands for one section only, and for none a subscriber can choose now (a
    section, the fallback, the press review's): else who chose it could not be told apart."""
    owner: dict[str, str] = {}
    for i, section in enumerate(sections, start=1):
        for old in section.formerly:
            if not old:
                raise ConfigError(f"sections #{i}.formerly has an empty name.")
            if old in choosable:
                raise ConfigError(
                    f"sections #{i}.formerly = {old!r} is the name of a section subscribers can choose now; "
                    "a former name must be one no section has."
                )
            if owner.setdefault(old, section.name) != section.name:
                raise ConfigError(
                    f"sections #{i}.formerly = {old!r} is also a former name of {owner[old]!r}; "
                    "subscribers who chose it can follow only one section."
                )


def _check_section_ref(key: str, name: str, known: tuple[str, ...]) -> str:
    if name not in known:
        raise ConfigError(f"{key} = {name!r} is not a configured section; known: {', '.join(known)}.")
    return name


# A URL already spelt as normalise_feed_url spells it: lower-case http(s) and ASCII host, a port
# only when not the default, a path, and only characters that yarl leaves as they are.
_NORMAL_URL = re.compile(
    r"(https?)://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::([1-9][0-9]{0,4}))?"
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]+)?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _already_normal(url: str) -> bool:
    """True when normalise_feed_url would return `url` unchanged: most configs' URLs, which then
    skip parsing (~5 us a feed; tests/test_config.py compares it with yarl's spelling)."""
    m = _NORMAL_URL.fullmatch(url)
    if m is None:
        return False
    scheme, port, path = m.groups()
    return (port is None or (port != _DEFAULT_PORTS[scheme] and int(port) <= 65535)) and "/." not in path


def normalise_feed_url(url: str) -> str:
    """One spelling per feed: scheme and host lower-cased, IDN host in ASCII, the default port and
    the fragment dropped, an empty path made "/" -- so HTTP://News.Example.org:80 and
    http://news.example.org/ are one feed, stored and compared alike. (fetch.check_feed_url gives
    the same spelling for `digest feeds add`.)"""
    text = url.strip()
    return text if _already_normal(text) else _normalise_by_parsing(text)


def _normalise_by_parsing(url: str) -> str:
    from yarl import URL

    try:
        u = URL(url.strip())
        if u.user is None and u.password is None:
            return str(u.origin()) + u.raw_path_qs
        return str(u.with_fragment(None))  # credentials in the URL stay; the rest is normalised
    except (ValueError, TypeError, UnicodeError):
        return url.strip()  # not a URL we can read: the checks that follow say so


# A feed's URL is a unique key of the store, and a PostgreSQL B-tree entry holds 2,704 bytes at most:
# a longer one is refused in one line (here, and by digest.fetch for `feeds add` and redirects),
# not by the database's index on every command.
MAX_FEED_URL = 2048


def _check_public(key: str, url: str) -> None:
    """A feed on a loopback or private address, refused as `digest feeds add` refuses it while
    allow_private_addresses is false: on the URL's text alone (an IP literal, "localhost"), since
    config loading looks nothing up in DNS; the fetcher checks every resolved address as well."""
    from urllib.parse import urlsplit

    from digest.errors import FeedURLError
    from digest.hosts import refusal  # here: only a config with feeds and no private ones needs it

    try:
        why = refusal((urlsplit(url).hostname or "").rstrip("."))
    except ValueError:  # "[::1" is no host: the fetch says what is wrong with it
        return
    except FeedURLError as exc:
        raise ConfigError(f"{key}.url = {url!r}: {exc.message}") from None
    if why:
        raise ConfigError(
            f"{key}.url = {url!r} points at {why}, and [digest] allow_private_addresses is false.",
            hint="Use the feed's public address, or set allow_private_addresses = true in [digest] "
            "for feeds on this machine or your own network.",
        )


def _feeds(raw: Mapping[str, Any], known: tuple[str, ...]) -> tuple[FeedSpec, ...]:
    feeds: list[FeedSpec] = []
    first_of: dict[str, int] = {}  # url -> the entry that listed it first
    for i, entry in enumerate(_entries(raw, "feeds"), start=1):
        key = f"feeds #{i}"  # counted from 1, as people count entries
        _reject_unknown(key, entry, {"url", "name", "section", "interval", "press", "plural"})
        if "url" not in entry:
            raise ConfigError(f"{key}.url is missing: every feed needs a url.")
        url = check_str(f"{key}.url", entry["url"]).strip()
        if not re.match(r"https?://", url, re.I):
            raise ConfigError(f"{key}.url = {url!r} must start with http:// or https://.")
        if len(url) > MAX_FEED_URL:
            raise ConfigError(
                f"{key}.url is {len(url)} characters long; a feed URL may have {MAX_FEED_URL} at most.",
                hint="Use the feed's shorter address (without tracking parameters).",
            )
        url = normalise_feed_url(url)
        section = check_opt_str(f"{key}.section", entry.get("section"))
        if section is not None:
            _check_section_ref(f"{key}.section", section, known)
        interval = None
        if "interval" in entry:
            interval = int(check_duration(f"{key}.interval", entry["interval"]).total_seconds() // 60) or 1
        if url in first_of:
            raise ConfigError(
                f"{key}.url = {url!r} repeats feeds #{first_of[url]}.url: one feed, one entry.",
                hint=f"Delete one of feeds #{first_of[url]} and {key} (merge their settings).",
            )
        first_of[url] = i
        name = check_opt_label(f"{key}.name", entry.get("name"))
        press = check_bool(f"{key}.press", entry.get("press", False))
        if press and not name:
            raise ConfigError(f"{key}.press = true needs {key}.name: the outlet's name as the press review cites it.")
        feeds.append(
            FeedSpec(
                url=url,
                name=name,
                section=section,
                interval_minutes=interval,
                press=press,
                plural=check_bool(f"{key}.plural", entry.get("plural", False)),
            )
        )
    return tuple(feeds)


_SITE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}")


def _outlets(raw: Mapping[str, Any]) -> tuple[OutletName, ...]:
    """[outlets]: "site" = "Name", or "site" = { name = "Name", plural = true }."""
    table = raw.get("outlets", {})
    if not isinstance(table, dict):
        raise ConfigError('[outlets] must be a table of sites and names, e.g. "ria.ru" = "RIA Novosti".')
    out: list[OutletName] = []
    for site, value in table.items():
        host = site.strip().lower().removeprefix("www.")
        key = f"outlets.{toml_value(site)}"
        if not _SITE.fullmatch(host):
            raise ConfigError(f'{key} is not a site: write its host alone, e.g. "ria.ru" = "RIA Novosti".')
        if isinstance(value, dict):
            _reject_unknown(key, value, {"name", "plural"})
            name = check_str(f"{key}.name", value.get("name"))
            plural = check_bool(f"{key}.plural", value.get("plural", False))
        else:
            name, plural = check_str(key, value), False
        if not name.strip():
            raise ConfigError(f"{key} is empty: give the name the press review cites the site by.")
        out.append(OutletName(host, name.strip(), plural))
    return tuple(out)


def _subscribers(
    raw: Mapping[str, Any], known: tuple[str, ...], renames: Mapping[str, str]
) -> tuple[SubscriberSpec, ...]:
    """[[subscribers]]; a section's former name in `sections` stands for the section ([[sections]] formerly)."""
    from digest.addresses import address_key  # as check_address imports its module: only where subscribers are

    subs: list[SubscriberSpec] = []
    first_of: dict[str, int] = {}  # address -> the entry that listed it first
    for i, entry in enumerate(_entries(raw, "subscribers"), start=1):
        key = f"subscribers #{i}"  # counted from 1, as people count entries
        _reject_unknown(key, entry, {"email", "name", "sections", "timezone"})
        if "email" not in entry:
            raise ConfigError(f"{key}.email is missing: every subscriber needs an email.")
        email = check_address(f"{key}.email", entry["email"])  # its domain lower-cased, its local part as written
        # The store keeps one row per address in any case (address_key: Editor@x.org is editor@x.org),
        # so a second entry silently replaced the first's name, sections and time zone: as with
        # feeds, one subscriber, one entry.
        if (first := first_of.setdefault(address_key(email), i)) != i:
            raise ConfigError(
                f"{key}.email = {email!r} repeats subscribers #{first}.email: one subscriber, one entry.",
                hint=f"Delete one of subscribers #{first} and {key} (merge their settings).",
            )
        sections = None
        if "sections" in entry:
            sections = tuple(
                dict.fromkeys(
                    _check_section_ref(f"{key}.sections", renames.get(s, s), known)
                    for s in _str_list(f"{key}.sections", entry["sections"])
                )
            )
            if not sections:  # such a subscriber would never get an edition
                raise ConfigError(
                    f"{key}.sections is empty: {email} would never get an edition.",
                    hint="List at least one section, or leave sections out for all of them.",
                )
        tz = check_timezone(f"{key}.timezone", entry["timezone"]) if "timezone" in entry else None
        name = check_opt_label(f"{key}.name", entry.get("name"))
        if name is not None and len(name) > NAME_LIMIT:  # as `subscribers add` and an import refuse it
            raise ConfigError(
                f"{key}.name is {len(name):,} characters long; a subscriber's name may have at most {NAME_LIMIT}.",
                hint="Give a shorter name (the person's or the organisation's).",
            )
        subs.append(SubscriberSpec(email=email, name=name, sections=sections, timezone=tz))
    return tuple(subs)


def _check_read_also_min(digest: DigestSettings) -> None:
    """read_also_min must be below what two items compared alone need to be one story.

    That bar is clustering's rule (`digest.cluster.pair_threshold`), and importing clustering costs
    ~7 ms that commands which never cluster (`digest poll`) need not pay: with both settings at
    their defaults, which pass (tests/test_config.py checks it), there is nothing to ask it.
    """
    defaults = DigestSettings.__dataclass_fields__
    if (digest.cluster_threshold, digest.read_also_min) == (
        defaults["cluster_threshold"].default,
        defaults["read_also_min"].default,
    ):
        return
    from digest.cluster import pair_threshold

    same_story = pair_threshold(digest.cluster_threshold)
    if digest.read_also_min >= same_story:
        raise ConfigError(
            f"digest.read_also_min must be below {same_story:.2f}, what two items compared alone "
            "need to be one story at this cluster_threshold."
        )


def from_mapping(raw: Mapping[str, Any], *, env: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Validate a parsed TOML document (plus environment overrides) into Settings."""
    allowed = set(TABLES) | {"sections", "feeds", "subscribers", "outlets"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"[{unknown[0]}] is not a config table; known tables: {', '.join(sorted(allowed))}.")
    for warning in _unknown_variables(env or {}):
        log.warning("%s", warning)
    overrides = _env_overrides(env or {})
    tables = {name: _build_table(name, cls, raw.get(name), overrides) for name, cls in TABLES.items()}
    if path is not None:
        _resolve_files(tables, overrides, path.parent)
    sections = _sections(raw)
    digest_settings: DigestSettings = tables["digest"]
    dkim: DkimSettings = tables["dkim"]
    _check_read_also_min(digest_settings)
    if tables["web"].metrics_port == tables["web"].port:
        raise ConfigError(
            f"web.metrics_port = {tables['web'].port} is web.port too: /metrics needs a port of its own.",
            hint="Give [web] metrics_port a port nothing else uses (9108, say), or leave it unset to serve "
            "/metrics on [web] port.",
        )
    if tables["web"].only_listed_keys and not tables["web"].secret_keys:
        raise ConfigError(
            "web.only_listed_keys = true with no web.secret_keys: no key would sign or verify a link.",
            hint="List the new key in [web] secret_keys first (`python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`).",
        )
    if any((dkim.domain, dkim.selector, dkim.key_file)) and not dkim.enabled:
        raise ConfigError("[dkim] needs domain, selector and key_file together.")
    known = tuple(s.name for s in sections)
    if digest_settings.fallback_section not in known:
        known = (*known, digest_settings.fallback_section)
    feeds = _feeds(raw, known)
    if any(f.press for f in feeds) and digest_settings.press_section not in known:
        known = (*known, digest_settings.press_section)
    _check_former_names(sections, known)
    return Settings(
        digest=digest_settings,
        smtp=tables["smtp"],
        fetch=tables["fetch"],
        dkim=dkim,
        web=tables["web"],
        sections=sections,
        feeds=feeds,
        subscribers=_subscribers(raw, known, _renames(sections)),
        path=path,
        bounces=tables["bounces"],
        workers=tables["workers"],
        outlets=_outlets(raw),
    )


# The settings that name a file or folder: written relative in the config file, they are relative to its folder.
_PATHS = (("dkim", "key_file"), ("smtp", "ca_file"), ("digest", "templates_dir"))


def _resolve_files(tables: dict[str, Any], overrides: Mapping[tuple[str, str], tuple[str, str]], folder: Path) -> None:
    """Make the relative paths the config file writes absolute, from the file's folder (as the default
    database is beside it): a daemon started by systemd or cron runs in another working directory, where
    `key_file = "dkim.pem"` named no file and the first send stopped on it. A path from an environment
    variable is left as written: it was typed where it is read, relative to that working directory."""
    for table, key in _PATHS:
        value = getattr(tables[table], key)
        if value and (table, key) not in overrides and not Path(value).expanduser().is_absolute():
            tables[table] = dataclasses.replace(tables[table], **{key: str(folder / value)})


# The user names whose password only sending (or reading bounces) needs, with the password's key.
_LOGINS = (("smtp", "username", "password"), ("bounces", "imap_username", "imap_password"))
_MAX_KEY_BYTES = 1 << 20  # a PEM RSA key is a few kilobytes; more is not a key (and not read whole)


def check_secrets(settings: Settings) -> None:
    """What `digest check-config` checks beyond loading: a password for each user name, a DKIM key
    and a relay's CA file that can be read and are what they should be, and no feed on a private
    address unless allowed. Not at every load: `digest status` or `digest poll` run without the
    daemon's secrets (README: Under systemd) must still work, and only sending needs them."""
    for table, user_key, password_key in _LOGINS:
        obj = getattr(settings, table)
        user = getattr(obj, user_key)
        if user and not getattr(obj, password_key):
            plain = " or ".join(v for v, is_file in env_variables(table, password_key) if not is_file)
            files = " or ".join(v for v, is_file in env_variables(table, password_key) if is_file)
            raise ConfigError(
                f"{table}.{user_key} = {user!r} is set but no password is: the server would refuse the login.",
                hint=f"Set {plain}, or {files} naming a file that holds it, in this command's environment as "
                f"in the daemon's (or [{table}] {password_key}); or remove {user_key} if no login is needed.",
            )
    if settings.dkim.enabled:
        _check_dkim_key(settings.dkim.key_file or "")
    if settings.smtp.ca_file and settings.smtp.security != "none":
        _check_ca_file(settings.smtp.ca_file)
    # A feed on a private address: here, not at every load, where it would stop the daemon's sends
    # after an upgrade for a feed whose polls fail on their own (each poll records why).
    if not settings.digest.allow_private_addresses:
        for i, feed in enumerate(settings.feeds, start=1):
            try:
                _check_public(f"feeds #{i}", feed.url)
            except ConfigError as exc:
                raise located(exc, settings.path) from None


# RFC 2606 and RFC 6761: names reserved for documentation and tests, which no real site or mailbox
# has. `digest init` and the README's examples use them.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_TLDS = ("example", "test", "invalid")


def is_example_host(host: str) -> bool:
    """Whether a host name (of a feed URL or an address's domain) is reserved for examples."""
    host = host.strip().rstrip(".").lower()
    return host.rpartition(".")[2] in _EXAMPLE_TLDS or any(
        host == d or host.endswith("." + d) for d in _EXAMPLE_DOMAINS
    )


def example_entries(settings: Settings, *, named: int = 3) -> str | None:
    """The config's feeds and subscribers on names reserved for examples (RFC 2606), or None: left
    from `digest init` or the README, they poll hosts that do not exist and mail no one. A warning,
    not a refusal: a rehearsal or a test site may use them on purpose."""

    def some(found: list[str]) -> str:
        return ", ".join(found[:named]) + (f" and {len(found) - named} more" if len(found) > named else "")

    from urllib.parse import urlsplit  # only here: config stays cheap to import

    feeds = [f.url for f in settings.feeds if is_example_host(urlsplit(f.url).hostname or "")]
    readers = [s.email for s in settings.subscribers if is_example_host(s.email.rpartition("@")[2])]
    parts = [
        *([f"feeds {some(feeds)} poll hosts that do not exist"] if feeds else []),
        *([f"subscribers {some(readers)} are mailed at addresses no one reads"] if readers else []),
    ]
    if not parts:
        return None
    return (
        "example entries (names reserved by RFC 2606) are still in the config: "
        + "; ".join(parts)
        + "; replace them with your own feeds and readers, or delete them."
    )


def link_problem(settings: Settings) -> str | None:
    """Why the links every email carries under [digest] base_url (one-click unsubscribe, preferences,
    the edition page) will not serve its readers, or None: unset (the default names this machine),
    on a loopback host, or not https (RFC 8058 one-click: Gmail and Yahoo take only an https URI).

    A warning, not a refusal, in check-config as in send and run: an http base_url on an intranet,
    or a trial on one machine (the demo, the tests), is a working setup, and refusing at load would
    stop a daemon that sends today when digest is upgraded."""
    from urllib.parse import urlsplit

    from digest import hosts

    url = settings.digest.base_url
    fix = "set [digest] base_url to the https address readers reach the web app at, behind a TLS proxy"
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    try:
        ip = hosts.host_address(host)
    except DigestError:
        ip = None
    why = "loopback" if hosts.is_loopback_name(host) else hosts.non_public_reason(ip) if ip is not None else None
    if url == DEFAULT_BASE_URL:
        return (
            f"[digest] base_url is {url}, its default: every email's unsubscribe and preferences links point to "
            f"this machine, where no reader can open them; {fix}."
        )
    if why in ("loopback", "unspecified"):
        return (
            f"[digest] base_url = {url!r} names this machine ({why}): no reader can open the unsubscribe and "
            f"preferences links of the email; {fix}."
        )
    if parts.scheme != "https":
        return (
            f"[digest] base_url = {url!r} is not https: Gmail and Yahoo show no one-click unsubscribe for an "
            f"http link (RFC 8058), and the links' tokens travel unencrypted; {fix}."
        )
    return None


def _check_ca_file(path: str) -> None:
    """The relay's CA bundle, loaded as the first send loads it: a wrong path stopped that send."""
    import ssl  # here: only check-config and sending load CA files

    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"smtp.ca_file = {path!r} cannot be read as CA certificates: {reason}.",
            hint="Point ca_file at the PEM file of the relay's CA certificate, readable by the user digest runs as.",
        ) from None


def _check_dkim_key(path: str) -> None:
    """The key file the first send would read and sign with, read and parsed as signing will."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_KEY_BYTES)
    except OSError as exc:
        raise ConfigError(
            f"dkim.key_file = {path!r} cannot be read: {exc.strerror or exc}.",
            hint="Point key_file at the PEM file of the DKIM private key, readable by the user digest runs as.",
        ) from None
    from dkim.crypto import parse_pem_private_key  # here: only check-config and sending load dkimpy

    try:
        parse_pem_private_key(data)
    except Exception:  # dkimpy's parser raises what the bytes make it raise (binascii, ASN.1, index errors)
        raise ConfigError(
            f"dkim.key_file = {path!r} is not a PEM RSA private key, which DKIM signing needs.",
            hint="Generate one with `openssl genrsa -out dkim.pem 2048` and publish its public key "
            "at <selector>._domainkey.<domain>.",
        ) from None


def describe(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective scalar settings, secrets masked: what `digest check-config` prints."""
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        obj = getattr(settings, table)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("secret") and value:
                value = "********"
            values[f.name] = value
        out[table] = values
    out["digest"]["database"] = mask_url(settings.database_url)  # a URL's password is a secret too
    return out


# --------------------------------------------------------------------------- the documented example


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0 and seconds <= 72 * 3600:  # "48h" reads better than "2d" for short spans
        return f"{seconds // 3600}h"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, time):
        return f'"{value:%H:%M}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list_lines(key: str, values: tuple[str, ...], width: int = 110) -> list[str]:
    """`key = [...]` on one line, or wrapped one run of values per line when it is long."""
    line = f"{key} = {toml_value(values)}"
    if len(line) <= width:
        return [line]
    out, current = [f"{key} = ["], "  "
    for value in values:
        piece = toml_value(value) + ", "
        if len(current) + len(piece) > width:
            out.append(current.rstrip())
            current = "  "
        current += piece
    out.append(current.rstrip().rstrip(","))
    out.append("]")
    return out


def _example_section(name: str) -> list[str]:
    from digest.newsroom import SECTIONS  # the starter rules: plain data, long lists

    rules = SECTIONS.get(name, {})
    out = ["[[sections]]", f"name = {toml_value(name)}"]
    for key in ("categories", "url_patterns", "keywords", "feeds", "not_keywords"):
        if key in rules:
            out += _toml_list_lines(key, rules[key])  # type: ignore[arg-type]
    for rule in rules.get("rules", ()):  # type: ignore[attr-defined]
        out.append("[[sections.rules]]")
        for key, values in rule.items():
            if values and isinstance(values[0], tuple):  # keyword groups: one list per line
                out.append(f"{key} = [")
                out += [f"  {toml_value(group)}," for group in values]
                out.append("]")
            else:
                out += _toml_list_lines(key, values)
    return out


def example_toml() -> str:
    """The starter config `digest init` writes; config/digest.example.toml is exactly this text."""
    out = [
        "# digest configuration. Every setting is shown with its default; uncomment to change.",
        "# Environment overrides: DIGEST_<TABLE>_<KEY> (e.g. DIGEST_SMTP_HOST), DIGEST_SMTP_PASSWORD,",
        "# DIGEST_SECRET, and <NAME>_FILE to read a secret from a file.",
        "",
    ]
    for table, cls in TABLES.items():
        out.append(f"[{table}]")
        for f in dataclasses.fields(cls):
            out.append(f"# {f.metadata['doc']}")
            default = f.default if f.default is not dataclasses.MISSING else None
            if default is None or default == "":
                example = f.metadata.get("example")
                shown = toml_value(example) if example else '""'
                out.append(f"# {f.name} = {shown}")
            else:
                out.append(f"# {f.name} = {toml_value(default)}")
        out.append("")
    out += [
        "# Sections, in the order the email shows them. An item goes to its feed's section if the feed",
        "# has one, else to the section of the most specific rule that matches it, else to [digest]",
        "# fallback_section. Each of a section's lists (categories, url_patterns as regular expressions",
        "# on the link's path, keywords as word forms in the title or summary, feeds by name or URL) is",
        "# a rule; a [[sections.rules]] table is a rule whose conditions must all hold (there,",
        '# languages = ["en", "fr"] narrows it to items written in those); not_keywords',
        "# rule a section out. More conditions beat fewer, then feeds > categories > url_patterns >",
        "# keywords, then more keywords found (title counts double), then section order (README:",
        "# Sections). `digest sections explain` tells why. A section's max_items = N shows up to N of its",
        '# stories (else [digest] max_items_per_section). Renaming a section? Give it formerly = ["Old',
        '# name"] so the subscribers who chose it keep it. With no [[sections]] at all, these eight',
        "# names are used without rules.",
    ]
    for name in DEFAULT_SECTIONS:
        out += _example_section(name)
        out.append("")
    out += [
        "# Feeds: url, optional name (else the outlet's name in the feed's title), optional section (beats rules),",
        '# optional interval (poll this feed every ..., e.g. "30m"), optional press = true (an outlet of the',
        "# Press Review section, cited by its name) and plural = true (its name is grammatically plural).",
        "[[feeds]]",
        'url = "https://news.example.org/rss/world.xml"',
        'name = "Example News"',
        "press = true",
        "",
        "[[feeds]]",
        'url = "https://sport.example.org/feed.atom"',
        'section = "Sport"',
        'interval = "30m"',
        "",
        "# Outlets: the name the press review cites a site by when an aggregator's feed (Yandex News,",
        '# Google News) links to its articles; else it is cited by its host ("ria.ru"). A table',
        "# { name = ..., plural = true } marks a grammatically plural name.",
        "# [outlets]",
        '# "ria.ru" = "RIA Novosti"',
        '# "iz.ru" = { name = "Izvestia", plural = true }',
        "",
        "# Subscribers: email, optional name, optional sections (default: all), optional timezone",
        "# (default: [digest] timezone). They can also be managed with `digest subscribers ...`.",
        "[[subscribers]]",
        'email = "editor@example.org"',
        'name = "Chief Editor"',
        "",
        "[[subscribers]]",
        'email = "analyst@example.org"',
        'sections = ["Business & Economy", "World"]',
        'timezone = "Europe/Moscow"',
        "",
    ]
    return "\n".join(out)
