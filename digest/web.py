"""The subscriber-facing web app: one-click unsubscribe, preferences and the edition pages.

A small aiohttp application behind the operator's TLS proxy at ``[digest] base_url``. It owns HTTP
only: every decision is the store's (who is subscribed to what), the pipeline's (what an edition
holds) or the renderer's (how it looks). Nothing calls it but the shells (`digest web`, the daemon).

    POST /u/<token>          RFC 8058 one-click unsubscribe: 200, no redirect, no cookies (G1)
    GET  /u/<token>          a confirmation page with a POST button; never changes state (G2)
    GET  /p/<token>          the subscriber's sections and time zone
    POST /p/<token>          save them (form HMAC + Fetch Metadata; the token is the credential) (G8)
    GET  /editions/<tz>/<d>  a sent edition: every story of every section ("N more in ..."); with
                             [web] archive = false only with its ?key= (tokens.edition_key)
    GET  /                   recent sent editions (404 when the archive is off)
    GET  /editions.atom      Atom feed of sent editions (archive.py; 404 when the archive is off)
    GET  /healthz            "ok" (200) or "late" (503): the last poll and the last due edition on time?
    GET  /metrics            Prometheus text format (metrics.py); on [web] metrics_port when set

The token in the URL is the only credential (tokens.py: itsdangerous, one salt per purpose, no
expiry, G3/G4). Every unreadable token -- altered, truncated, another purpose's, empty -- gets the
same 404 page, so the app is no oracle (U4). Token pages are never cached, pages send no Referer
(the token is in their URL), carry a CSP that allows no script, and the access log never shows a
token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField
from babel.dates import format_date
from babel.support import NullTranslations
from itsdangerous import BadSignature, Signer, TimestampSigner
from multidict import MultiDictProxy

from digest import schedule, tokens, unsubscribes, zones
from digest.addresses import mailbox, validate_email
from digest.archive import ArchiveEntry, atom_feed, by_day, etag_for, etag_matches
from digest.catalogue import builtin_templates_dir, catalogue_folders, load_translations, section_label, site_title
from digest.clock import Clock
from digest.config import Settings
from digest.errors import ConfigError, DigestError, StoreError, remote_words
from digest.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from digest.metrics import COUNTERS_SUFFIX, Metrics, health
from digest.model import EditionRecord, Subscriber
from digest.pipeline.send import EditionPages, edition_path, edition_url, zone_of_path
from digest.pipeline.signup import confirmation_message, send_confirmation
from digest.ratelimit import SlidingWindow, client_key
from digest.render import Renderer
from digest.store import ACTIVE, PAUSED, REMOVED, SUSPENDED, UNSUBSCRIBED, Choices, Store

__all__ = ["WebProcess", "listening", "make_app", "run_web", "serve", "start_web"]

log = logging.getLogger(__name__)

FORM_SALT = "preferences-form-v1"
MAX_BODY = 64 * 1024  # the largest form we accept; a one-click body is 26 bytes
# A client gets this long to send its request line and headers (aiohttp's keep-alive timer runs
# from the moment a connection opens) and, separately, its body: an idle or dripping connection
# must not hold a file descriptor for an hour (issue 10: 1,100 of them stopped the daemon's mail).
READ_TIMEOUT = 10.0
RETRY_AFTER = 60  # seconds a client is asked to wait when the database is busy
# Seconds a request waits for SQLite's write lock (unless the database URL sets ?timeout=) before it
# is answered 503 (a one-click unsubscribe is kept on disk first): a mail provider's one-click POST
# or a reader's browser gives up long before the 30 s a batch command waits.
WEB_BUSY_TIMEOUT = 5.0
MAX_TOKEN = 256  # longer is not ours: refuse before any HMAC work
SHUTDOWN_GRACE = 5.0  # seconds for requests in flight when the app stops (the daemon has 30 in all)
EDITIONS_LISTED = 60
ONE_CLICK = "One-Click"  # RFC 8058 section 3.1: the body is "List-Unsubscribe=One-Click"

# No script at all; inline styles only (the edition page is CSS-inlined like the email); feed
# images from anywhere, as in the email; forms post only to ourselves; never framed.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# A link's token: the segment after /u/, /p/ or /confirm/ wherever it sits, however a client or a
# proxy spelt the path around it (//u/..., /U/..., /u//...; aiohttp routes none of them, and logs
# each as it came).
_TOKEN_PATH = re.compile(r"(?i)(/(?:u|p|confirm)/+)[^/\s'\"]*")
# A token anywhere else (under another path, or in a request line aiohttp quotes when it cannot
# read it): itsdangerous's payload.signature, the signature 27 base64url characters. Runs are
# matched whole (the lookbehind), so a long line costs one pass.
_DOTTED = re.compile(r"(?<![\w.-])[\w-]+(?:\.[\w-]+)+", re.ASCII)
TOKEN_SIGNATURE_MIN = 20  # a dotted part this long is a signature (or most of one): no file name has one
# What a log line must not carry as itself: C0 and C1 controls (a line break starts a line of the
# client's choosing; ESC drives a terminal), line and paragraph separators, and bidi controls.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class Site:
    """What every handler needs: settings, store, clock, secrets and the two template sets."""

    settings: Settings
    store: Store
    clock: Clock
    secrets: tuple[str, ...]  # newest first: tokens.key_ring
    pages: jinja2.Environment
    messages: NullTranslations  # the site's catalogues, the email's (site_messages)
    title: str  # [digest] title as the email shows it: the default in the site's language
    editions: EditionPages  # each edition page rendered once
    metrics: Metrics
    spool: Path  # unsubscribes kept while the database was busy (unsubscribes.py)
    legacy_link_max_id: int = 0  # row-id links of the release before public ids: good up to this id
    signup_limiter: SlidingWindow = dataclasses.field(default_factory=lambda: SlidingWindow(5, 600.0))
    background: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)  # confirmation emails in flight

    @property
    def newest_secret(self) -> str:
        return self.secrets[0]


SITE = web.AppKey("site", Site)
METRICS = web.AppKey("metrics", Metrics)  # what /metrics serves, on the web app or a listener of its own
METRICS_CONNECTIONS = 16  # the metrics listener's cap: a scraper or two, never a crowd


def site_secrets(settings: Settings, store: Store) -> tuple[str, ...]:
    """Every key a token in a sent email may be signed with, newest first.

    The sender signs with the first of ``[web] secret_keys``, else ``[digest] secret``, else the
    store's generated secret. All verify, so emails sent before a rotation keep working (G4, U5).
    """
    return tokens.key_ring(
        settings.web.secret_keys,
        settings.digest.secret,
        store.site_secret(),
        only_listed=settings.web.only_listed_keys,
    )


def site_messages(settings: Settings) -> NullTranslations:
    """The site's messages as its email reads them (render.Renderer): the built-in catalogue with
    the operator's `templates_dir` catalogue over it, so a section or title reworded there reads the
    same on every page as in the email."""
    return load_translations(settings.digest.language, catalogue_folders(settings.digest.templates_dir))


def _pages(translations: NullTranslations) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(builtin_templates_dir() / "web")),
        autoescape=True,  # every page is HTML; feed and subscriber text is escaped (E4)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # The email's catalogues (site_messages). _() marks the catalogue's text safe (it is ours,
    # like a template) and escapes its %(name)s values; |translate is for the sentences this module
    # passes in (headings, errors) and returns plain text, which autoescape escapes as before.
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["translate"] = translations.gettext
    # A section's label; its name stays the form's value, which is what a subscriber's choice stores.
    env.filters["section_label"] = lambda name: section_label(translations, name)
    return env


def _edition_renderer(settings: Settings) -> Renderer:
    # templates/web/digest.html.j2 stands in for the email's page and reuses its section and story
    # partials from the built-in folder; the labels are the email's, from the site's catalogues.
    d = settings.digest
    return Renderer(
        templates_dir=str(builtin_templates_dir() / "web"),
        language=d.language,
        images=d.images,
        excerpt_chars=d.excerpt_chars,
        catalogues=catalogue_folders(d.templates_dir),
    )


# --------------------------------------------------------------------------- responses


def _subscribe_url(site: Site) -> str:
    return f"{site.settings.digest.base_url}/subscribe" if site.settings.web.signup else ""


def _page(site: Site, name: str, *, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("subscribe_url", _subscribe_url(site))
    body = site.pages.get_template(name).render(lang=site.settings.digest.language, site_title=site.title, **context)
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")


def _invalid_link(site: Site) -> web.Response:
    """The one answer to every token we cannot read, on every token URL (U4)."""
    return _page(
        site,
        "message.html.j2",
        status=404,
        heading="This link does not work",
        text="It may have been cut short or changed on the way. Use the link at the bottom of one of your emails.",
    )


async def _secured(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security headers on every response, errors included."""
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")  # a token page must not leak its URL to a link it shows
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Robots-Tag", "noindex, nofollow")
    h.setdefault("Cache-Control", "no-store")  # token pages and answers: never kept by a proxy or browser


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our own page for 404/405/413 and for a failure, instead of aiohttp's plain text."""
    site = request.app[SITE]
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _page(
            site, "message.html.j2", status=404, heading="Page not found", text="There is nothing at this address."
        )
    except web.HTTPMethodNotAllowed as exc:
        resp = _page(
            site,
            "message.html.j2",
            status=405,
            heading="Not allowed",
            text="This address does not take that kind of request.",
        )
        resp.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return resp
    except web.HTTPRequestEntityTooLarge:
        return _page(site, "message.html.j2", status=413, heading="Too large", text="That form was too large.")
    except web.HTTPException:
        raise
    except DigestError as exc:  # the database is busy or unreachable, a template is broken...
        log.error("web: %s %s %s", request.method, _redact(request.path), exc.message)
        resp = _page(
            site,
            "message.html.j2",
            status=503,
            heading="Please try again later",
            text="The service is briefly unavailable.",
        )
        resp.headers["Retry-After"] = str(RETRY_AFTER)
        return resp
    except Exception:
        log.exception("web: %s %s failed", request.method, _redact(request.path))
        return _page(
            site,
            "message.html.j2",
            status=500,
            heading="Please try again later",
            text="Something went wrong on our side.",
        )


def _redact(text: str) -> str:
    """A path or a request line fit for a log: tokens are credentials (an access log line must not
    unsubscribe anyone), so every token-shaped segment is `<token>`, wherever it is; and a path is
    decoded, so its %0A, %1B or %E2%80%AE is written as an escape, never as the character (a line of
    the client's own in the operator's log, a terminal's colours or a right-to-left override)."""

    def dotted(m: re.Match[str]) -> str:
        parts = m.group(0).split(".")
        return "<token>" if any(len(part) >= TOKEN_SIGNATURE_MIN for part in parts[1:]) else m.group(0)

    redacted = _DOTTED.sub(dotted, _TOKEN_PATH.sub(lambda m: f"{m.group(1)}<token>", text))
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), redacted)


class _AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("web: %s %s %d %.0fms", request.method, _redact(request.path), response.status, time * 1000)


# --------------------------------------------------------------------------- tokens to subscribers


def _token(request: web.Request) -> str:
    return request.match_info.get("token", "")


@dataclass(frozen=True, slots=True)
class Purpose:
    """One kind of link: how to read its tokens, and its tokens from before public ids."""

    read: Callable[[Sequence[str], str], str | None]
    read_legacy: Callable[[Sequence[str], str], int | None]


UNSUBSCRIBE = Purpose(tokens.read_unsubscribe_token, tokens.read_legacy_unsubscribe_token)
PREFERENCES = Purpose(tokens.read_preferences_token, tokens.read_legacy_preferences_token)


def _reference(site: Site, token: str, purpose: Purpose) -> str | int | None:
    """What a well-formed, untampered token of this purpose names, read without the database: a
    public id, or the row id of a link from the release before public ids; None otherwise."""
    if not 0 < len(token) <= MAX_TOKEN:
        return None
    public_id = purpose.read(site.secrets, token)
    if public_id is not None:
        return public_id
    row_id = purpose.read_legacy(site.secrets, token)
    if row_id is not None and 0 < row_id <= site.legacy_link_max_id:
        return row_id
    return None


def _lookup(site: Site, token: str, purpose: Purpose) -> Subscriber | None:
    """The subscriber a token of this purpose names; None otherwise.

    A removed subscriber's public id is never given again, so their links reach nobody. Every
    refusal looks the same to the caller: a bad link is one 404 page whatever is wrong (U4).
    """
    ref = _reference(site, token, purpose)
    if ref is None:
        return None
    return site.store.get_subscriber(public_id=ref) if isinstance(ref, str) else site.store.get_subscriber(id=ref)


async def _reader(site: Site, token: str, purpose: Purpose) -> Subscriber | None:
    """The subscriber a token names, or None for anything else (unreadable, or erased since)."""
    return await asyncio.to_thread(_lookup, site, token, purpose)


def _form_signer(site: Site) -> Signer:
    return Signer(list(reversed(site.secrets)), salt=FORM_SALT)  # itsdangerous signs with the last


def _form_mac(site: Site, token: str) -> str:
    return _form_signer(site).get_signature(token).decode("ascii")


def _form_mac_ok(site: Site, token: str, mac: str) -> bool:
    try:
        return _form_signer(site).verify_signature(token, mac)
    except (BadSignature, UnicodeError, ValueError):
        return False


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField] | None:
    """The posted form, or None when the body cannot be read as one (a wrong charset, broken
    multipart): that is the client's fault, a 400, never a 500 and a traceback in the log. A body
    that does not arrive within READ_TIMEOUT is a 408 and the connection is closed."""
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            return await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout(headers={"Connection": "close"}) from None
    except web.HTTPException:
        raise  # 413 from client_max_size
    except (ValueError, LookupError, UnicodeError, AssertionError, aiohttp.ClientError) as exc:
        log.info("web: %s %s unreadable body: %s", request.method, _redact(request.path), exc.__class__.__name__)
        return None


def _unreadable(site: Site, *, text: str) -> web.Response:
    """The 400 page for a form `_form` could not read: nothing was changed. `text` is a whole
    sentence written at the call (a msgid the catalogues translate)."""
    return _page(site, "message.html.j2", status=400, heading="Nothing was changed", text=text)


# --------------------------------------------------------------------------- unsubscribe (RFC 8058)


async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    """G2: link scanners GET every URL in an email, so a GET only asks."""
    site = request.app[SITE]
    if await _reader(site, _token(request), UNSUBSCRIBE) is None:
        return _invalid_link(site)
    return _page(site, "unsubscribe.html.j2")


async def _not_one_click(site: Site, request: web.Request) -> web.StreamResponse | None:
    """A 400 page unless the body is RFC 8058's List-Unsubscribe=One-Click (urlencoded or
    multipart/form-data, as section 3.1 allows); None when it is."""
    form = await _form(request)
    if form is None or form.get("List-Unsubscribe") != ONE_CLICK:
        # Not a one-click request (an empty POST from a scanner, say): change nothing.
        return _page(
            site,
            "message.html.j2",
            status=400,
            heading="Nothing was changed",
            text="Use the Unsubscribe button on the page this link opens.",
        )
    return None


async def _keep_for_retry(site: Site, ref: str | int, exc: StoreError) -> web.StreamResponse:
    """Never dropped: kept on disk and applied as soon as the database takes writes again; the 503
    asks the provider to retry too, which is harmless (U1)."""
    await asyncio.to_thread(unsubscribes.keep, site.spool, ref, at=site.clock())
    log.warning("web: an unsubscribe was kept for a retry: %s", exc.message)
    resp = _page(
        site,
        "message.html.j2",
        status=503,
        heading="Please try again later",
        text="Your request is saved and will be carried out within minutes.",
    )
    resp.headers["Retry-After"] = str(RETRY_AFTER)
    return resp


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    """RFC 8058 section 3.2: POST with List-Unsubscribe=One-Click unsubscribes at once.

    No cookie, no session and no CSRF check: the token is the only credential, and the mail
    provider posts from its own servers (finding 6; bike_index#4077). The answer is a 200 with a
    short body, never a redirect ("MUST NOT return an HTTPS redirect").
    """
    site = request.app[SITE]
    token = _token(request)
    try:
        sub = await _reader(site, token, UNSUBSCRIBE)
    except StoreError as exc:  # the database is busy: keep what a valid one-click asks for
        ref = _reference(site, token, UNSUBSCRIBE)
        if ref is None:
            return _invalid_link(site)
        refused = await _not_one_click(site, request)
        return refused if refused is not None else await _keep_for_retry(site, ref, exc)
    if sub is None:  # unreadable, or the subscriber was removed: the link is dead for everyone
        return _invalid_link(site)
    refused = await _not_one_click(site, request)
    if refused is not None:
        return refused
    try:
        if sub.status != UNSUBSCRIBED:
            await asyncio.to_thread(site.store.set_status, sub.id, UNSUBSCRIBED, now=site.clock())
            log.info("web: subscriber=%d unsubscribed (one-click)", sub.id)
    except StoreError as exc:
        return await _keep_for_retry(site, sub.public_id, exc)
    # The same answer when they were already unsubscribed: repeating is harmless (U1).
    return _page(site, "unsubscribed.html.j2")


# --------------------------------------------------------------------------- preferences (G8)


def _timezone_menu(site: Site, current: str) -> dict[str, zones.Choices]:
    """The time zone menu's two groups (digest.zones), the site's and `current` zone among the common ones."""
    common, every = zones.menu(site.clock(), own=(site.settings.digest.timezone, current))
    return {"common_zones": common, "all_zones": every}


def _preferences(
    site: Site,
    sub: Subscriber,
    token: str,
    *,
    status: int = 200,
    saved: bool = False,
    error: str | None = None,
    chosen: Sequence[str] | None = None,
    timezone: str | None = None,
    notice: str | None = None,
) -> web.Response:
    names = site.settings.section_names
    stored = site.settings.chosen_now(sub.sections)  # a former name ticks the section it became
    picked = set(names if stored is None else stored) if chosen is None else set(chosen)
    tz = timezone or schedule.effective_zone(sub.timezone, site.settings.digest.timezone)
    return _page(
        site,
        "preferences.html.j2",
        status=status,
        email=sub.email,
        subscribed=sub.status in (ACTIVE, SUSPENDED, PAUSED),
        paused=sub.status == PAUSED,
        removed=sub.status == REMOVED,  # the operator's doing, not an unsubscribe: said so
        notice=notice,
        sections=[(name, name in picked) for name in names],
        **_timezone_menu(site, tz),
        timezone=tz,
        form_mac=_form_mac(site, token),
        saved=saved,
        error=error,
        unsubscribe_token=tokens.unsubscribe_token(site.newest_secret, sub.public_id),
    )


def _nothing_chosen_exists(site: Site, sub: Subscriber) -> bool:
    """Whether none of the sections a subscriber chose exists now (each renamed without `formerly`,
    or dropped): their edition is empty, so they get no email at all."""
    stored = site.settings.chosen_now(sub.sections)
    return stored is not None and not sub.damaged and not set(stored) & set(site.settings.section_names)


async def preferences_page(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    token = _token(request)
    sub = await _reader(site, token, PREFERENCES)
    if sub is None:
        return _invalid_link(site)
    # A stored choice that brings them nothing: they are sent nothing until they choose again, so
    # the page says why rather than leaving them to wonder (R7: a choice that cannot be read, where
    # nothing is ticked; or sections that are no longer offered).
    return _preferences(
        site,
        sub,
        token,
        notice=(
            "We could not read the sections you chose, so no edition is sent to you. Tick the ones you want and save."
            if sub.damaged
            else "The sections you chose are no longer offered, so no edition is sent to you. "
            "Choose from the ones we have now and save."
            if _nothing_chosen_exists(site, sub)
            else None
        ),
    )


def _valid_timezone(site: Site, name: str, current: str | None = None) -> bool:
    """A zone the menu offers (a reader zone, a common one, the site's or the reader's own): no other is stored."""
    return zones.offered(name, own=(site.settings.digest.timezone, *([current] if current else [])))


async def save_preferences(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    token = _token(request)
    sub = await _reader(site, token, PREFERENCES)
    if sub is None:
        return _invalid_link(site)
    form = await _form(request)
    if form is None:
        return _unreadable(site, text="The form could not be read. Open the link in your email again.")
    # CSRF: only someone holding the token can post here at all, and a page of ours must have been
    # shown for it (the form's HMAC of the token); a browser that says the form came from another
    # site is refused too (Fetch Metadata). An Origin check would not do: with Referrer-Policy
    # no-referrer browsers send "Origin: null" for our own forms.
    cross_site = request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
    if cross_site or not _form_mac_ok(site, token, str(form.get("form", ""))):
        return _page(
            site,
            "message.html.j2",
            status=403,
            heading="Nothing was changed",
            text="This form did not come from this site. Open the link in your email again.",
        )
    if sub.status not in (ACTIVE, SUSPENDED, PAUSED):
        return _preferences(site, sub, token, status=409)
    action = str(form.get("action", ""))
    if action in ("pause", "resume"):  # the subscriber's own choice: no sync or CLI undoes it
        if sub.status == SUSPENDED:  # failed deliveries, not a choice: only the operator lifts it
            return _preferences(site, sub, token, status=409)
        status = PAUSED if action == "pause" else ACTIVE
        await asyncio.to_thread(site.store.set_status, sub.id, status, now=site.clock())
        log.info("web: subscriber=%d %s the emails", sub.id, "paused" if action == "pause" else "resumed")
        changed = dataclasses.replace(sub, status=status)
        if action == "pause":
            return _preferences(site, changed, token, notice="Paused. No edition is sent until you resume.")
        return _preferences(site, changed, token, notice="Resumed. The next edition follows your choices.")
    known = site.settings.section_names
    chosen = [name for name in known if name in set(map(str, form.getall("section", [])))]
    current = schedule.effective_zone(sub.timezone, site.settings.digest.timezone)
    timezone = str(form.get("timezone", "")) or current
    if not _valid_timezone(site, timezone, current):
        return _preferences(site, sub, token, status=422, chosen=chosen, error="Choose a time zone from the list.")
    if not chosen:
        return _preferences(
            site,
            sub,
            token,
            status=422,
            chosen=chosen,
            timezone=timezone,
            error="Choose at least one section, or unsubscribe from everything below.",
        )
    # Every section ticked means "all", sections added later included (the config's default).
    sections: tuple[str, ...] | None = None if len(chosen) == len(known) else tuple(chosen)
    # The site's zone stays "the site's zone" (None) unless they had picked one of their own.
    tz: str | None = None if timezone == site.settings.digest.timezone and sub.timezone is None else timezone
    # The form always posts both fields; only one the subscriber changed becomes theirs, so a field
    # they left as it was still follows the operator's later edits (README: who owns what).
    before = site.settings.chosen_now(sub.sections)
    fields = [
        *(["sections"] if sub.damaged or _as_choice(before) != _as_choice(sections) else []),
        *(["timezone"] if tz != sub.timezone else []),
    ]
    if fields:
        await asyncio.to_thread(site.store.set_choices, sub.id, Choices(sections, tz), now=site.clock(), fields=fields)
    log.info(
        "web: subscriber=%d preferences saved sections=%s timezone=%s changed=%s",
        sub.id,
        "all" if sections is None else len(sections),
        tz or "default",
        ",".join(fields) or "nothing",
    )
    updated = dataclasses.replace(sub, sections=sections, timezone=tz, damaged=None)
    return _preferences(site, updated, token, saved=True)


def _as_choice(sections: Sequence[str] | None) -> frozenset[str] | None:
    """A choice as the edition reads it: the order of the names does not matter, "all" is not a list."""
    return None if sections is None else frozenset(sections)


# --------------------------------------------------------------------------- editions


def edition_pages(
    settings: Settings, store: Store, secrets: tuple[str, ...], pages: jinja2.Environment
) -> EditionPages:
    """The edition pages, each rendered once (pipeline.send.EditionPages): what the email shows,
    with no section cut short, the same page for everyone (no subscriber's name, address or link)."""

    def with_signup(html: str) -> str:
        if not settings.web.signup:  # the email's template has no sign-up link; the archive page gets one
            return html
        label = pages.filters["translate"]("Subscribe")
        link = f'<p class="note"><a href="{escape(f"{settings.digest.base_url}/subscribe")}">{escape(label)}</a></p>'
        return html.replace("</main>", link + "</main>", 1) if "</main>" in html else html

    return EditionPages(settings, store, renderer=_edition_renderer(settings), secret=secrets[0], decorate=with_signup)


ARCHIVE_MAX_AGE = 300  # seconds a proxy or browser may keep an archive page without asking again


def _sent(store: Store, edition: EditionRecord) -> bool:
    """Only an edition that went out to somebody is archived; one being built or sent to no one is not."""
    return store.delivery_counts(edition.id).get("sent", 0) > 0


def _sent_editions(store: Store, limit: int) -> list[EditionRecord]:
    return [e for e in store.list_editions(limit=limit * 2) if _sent(store, e)][:limit]


COMPRESS_MIN = 1024  # bytes: below this, gzip's header and the CPU cost more than they save


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (RFC 9110 12.5.3): named, or "*", with q above 0."""
    codings: dict[str, float] = {}
    for part in (accept_encoding or "").split(","):
        name, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name.strip():
            codings[name.strip().lower()] = q
    return codings.get("gzip", codings.get("x-gzip", codings.get("*", 0.0))) > 0


def _cacheable(request: web.Request, body: bytes, content_type: str, *, public: bool) -> web.Response:
    """A page that is the same for everyone: ETag, Cache-Control, and 304 for a matching If-None-Match.

    Gzipped for a client that takes it: an edition's page is tens of kilobytes of repetitive HTML,
    read on phones. The gzipped representation has its own ETag (RFC 9110 8.8.3: a strong
    validator names one representation's bytes) and caches keep the two apart by `Vary`. Only these
    pages: they hold no secret and reflect nothing a request sends, so their length tells an
    eavesdropper nothing (BREACH); the token pages stay uncompressed."""
    gzipped = len(body) >= COMPRESS_MIN and accepts_gzip(request.headers.get("Accept-Encoding"))
    etag = etag_for(body)
    if gzipped:
        etag = etag[:-1] + '-gzip"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'public' if public else 'private'}, max-age={ARCHIVE_MAX_AGE}",
        "Vary": "Accept-Encoding",
    }
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    resp = web.Response(body=body, headers=headers)
    resp.headers["Content-Type"] = content_type
    if gzipped:
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


def _no_archive(site: Site) -> web.Response:
    return _page(
        site,
        "message.html.j2",
        status=404,
        heading="No such edition",
        text="There is no edition for that day and time zone.",
    )


async def edition_page(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    zone = zone_of_path(request.match_info["tz"])
    text = request.match_info["day"]
    try:
        day = date.fromisoformat(text) if _DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        return _no_archive(site)
    public = site.settings.web.archive
    if not public and not tokens.edition_key_ok(site.secrets, day.isoformat(), zone, request.query.get("key", "")):
        return _no_archive(site)  # the same answer as for a day that has no edition (U4)
    edition = await asyncio.to_thread(site.store.get_edition, day=day, timezone=zone)
    if edition is None or not await asyncio.to_thread(_sent, site.store, edition):
        return _no_archive(site)
    html = await asyncio.to_thread(site.editions.html, edition)
    # Frozen once built, and the same for every reader; private when it needs the key.
    return _cacheable(request, html.encode("utf-8"), "text/html; charset=utf-8", public=public)


async def index(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    if not site.settings.web.archive:
        return _page(
            site, "message.html.j2", status=404, heading="Page not found", text="There is nothing at this address."
        )
    editions = await asyncio.to_thread(_sent_editions, site.store, EDITIONS_LISTED)
    lang = site.settings.digest.language
    # One row a day, however many zones it was made for (Paris, Moscow, Berlin, Chicago were four).
    days = by_day(editions, site.settings.digest.timezone, complete=len(editions) < EDITIONS_LISTED)
    rows = [
        (
            format_date(d.day, "full", locale=lang),
            d.day.isoformat(),
            [(e.timezone, edition_path(e.day, e.timezone)) for e in d.editions],
        )
        for d in days
    ]
    body = site.pages.get_template("index.html.j2").render(
        lang=lang,
        site_title=site.title,
        editions=rows,
        feed_path="editions.atom",
        subscribe_url=_subscribe_url(site),
    )
    return _cacheable(request, body.encode("utf-8"), "text/html; charset=utf-8", public=True)


FEED_ENTRIES = 30  # days
FEED_EDITIONS = 120  # editions read to make them: four zones a day fill 30 days


def _feed_entries(site: Site) -> list[ArchiveEntry]:
    settings = site.settings
    renames = settings.section_renames  # a section renamed since an edition: counted under its name now
    order = {name: i for i, name in enumerate(settings.section_names)}
    editions = _sent_editions(site.store, FEED_EDITIONS)
    days = by_day(editions, settings.digest.timezone, complete=len(editions) < FEED_EDITIONS)[:FEED_ENTRIES]
    base = settings.digest.base_url.rstrip("/")
    entries = []
    for d in days:
        e = d.lead
        counts: dict[str, int] = {}
        for _item, stored in site.store.edition_items(e.id):
            section = renames.get(stored, stored)
            counts[section] = counts.get(section, 0) + 1
        summary = "; ".join(
            f"{section_label(site.messages, name)}: {n}"
            for name, n in sorted(counts.items(), key=lambda kv: order.get(kv[0], 99))
        )
        label = format_date(e.day, "long", locale=settings.digest.language)
        zones = ", ".join(x.timezone for x in d.editions)
        entries.append(
            ArchiveEntry(
                title=f"{site.title} — {label} ({zones})",
                url=edition_url(settings, e.day, e.timezone),
                updated=max(x.cutoff for x in d.editions),
                summary=summary or "-",
                # The index lists the day under this anchor; the id stays when a later zone leads it.
                id=f"{base}/#{d.day.isoformat()}",
                related=tuple((x.timezone, edition_url(settings, x.day, x.timezone)) for x in d.others),
            )
        )
    return entries


async def atom(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    if not site.settings.web.archive:
        return _no_archive(site)
    base = site.settings.digest.base_url
    entries = await asyncio.to_thread(_feed_entries, site)
    body = atom_feed(
        title=site.title,
        site_url=base,
        feed_url=f"{base}/editions.atom",
        entries=entries,
        generated=datetime(2000, 1, 1, tzinfo=UTC),
    )
    return _cacheable(request, body, "application/atom+xml; charset=utf-8", public=True)


# --------------------------------------------------------------------------- sign-up (confirmed opt-in)

SIGNUP_FORM_SALT = "subscribe-form-v1"
SIGNUP_FORM_MAX_AGE = 3600  # seconds a sign-up form may sit open before it must be loaded again


def _client(request: web.Request) -> str:
    """Who is posting, for the per-client limit: the peer, or the address our local proxy forwarded
    (ratelimit.client_key: an IPv6 client is its /64)."""
    return client_key(request.remote, request.headers.get("X-Forwarded-For"))


def _signup_form(
    site: Site,
    *,
    status: int = 200,
    email: str = "",
    chosen: Sequence[str] | None = None,
    timezone: str | None = None,
    error: str | None = None,
) -> web.Response:
    names = site.settings.section_names
    picked = set(names if chosen is None else chosen)
    # A zone the menu does not offer is not offered back (it was refused, or another error came first).
    tz = timezone if timezone and _valid_timezone(site, timezone) else site.settings.digest.timezone
    token = TimestampSigner(list(reversed(site.secrets)), salt=SIGNUP_FORM_SALT).sign("subscribe").decode()
    return _page(
        site,
        "subscribe.html.j2",
        status=status,
        sections=[(n, n in picked) for n in names],
        **_timezone_menu(site, tz),
        timezone=tz,
        email=email,
        form_token=token,
        error=error,
    )


def _signup_form_ok(site: Site, value: str) -> bool:
    try:
        TimestampSigner(list(reversed(site.secrets)), salt=SIGNUP_FORM_SALT).unsign(value, max_age=SIGNUP_FORM_MAX_AGE)
    except (BadSignature, UnicodeError, ValueError):
        return False
    return True


def _refused(site: Site) -> web.Response:
    return _page(
        site,
        "message.html.j2",
        status=403,
        heading="Nothing was changed",
        text="This form did not come from this site or has expired. Open the page again.",
    )


async def subscribe_page(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    if not site.settings.web.signup:
        raise web.HTTPNotFound()
    return _signup_form(site)


async def subscribe(request: web.Request) -> web.StreamResponse:
    """The same answer for a new, pending, subscribed or unsubscribed address (no oracle): a
    confirmation goes out if the per-address window and the hourly cap allow, and nobody is told."""
    site = request.app[SITE]
    if not site.settings.web.signup:
        raise web.HTTPNotFound()
    if not site.signup_limiter.allow(_client(request), time.monotonic()):
        return _page(
            site,
            "message.html.j2",
            status=429,
            heading="Too many attempts",
            text="Please wait a few minutes and try again.",
        )
    form = await _form(request)
    if form is None:
        return _unreadable(site, text="The form could not be read. Open the sign-up page again.")
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site" or not _signup_form_ok(
        site, str(form.get("form", ""))
    ):
        return _refused(site)
    sent = _page(
        site,
        "message.html.j2",
        heading="Check your inbox",
        text="If this address can receive our emails, a confirmation link is on its way. Open it to finish signing up.",
    )
    if str(form.get("website", "")).strip():  # the honeypot: a bot filled in the hidden field
        log.info("web: sign-up honeypot filled; nothing sent")
        return sent
    known = site.settings.section_names
    chosen = [n for n in known if n in set(map(str, form.getall("section", [])))]
    timezone = str(form.get("timezone", "")) or site.settings.digest.timezone
    raw_email = str(form.get("email", ""))[:320]
    try:
        email = validate_email(raw_email)
    except DigestError:
        return _signup_form(
            site, status=422, email=raw_email, chosen=chosen, timezone=timezone, error="Enter a valid email address."
        )
    if not chosen:
        return _signup_form(
            site, status=422, email=raw_email, chosen=chosen, timezone=timezone, error="Choose at least one section."
        )
    if not _valid_timezone(site, timezone):  # refused, not quietly made the site's: they chose another
        return _signup_form(site, status=422, email=raw_email, chosen=chosen, error="Choose a time zone from the list.")
    sections = None if len(chosen) == len(known) else chosen
    tz = None if timezone == site.settings.digest.timezone else timezone
    # Everything that depends on the address happens after the answer: whether a confirmation may
    # go (a database write when it may, none when the window or the cap holds it back, tens of
    # milliseconds apart), its making and its sending. An answer that took longer when a message
    # went out told anyone timing it whether the address had been sent one within the window.
    task = asyncio.create_task(_confirm_in_background(site, email, sections, tz))
    site.background.add(task)
    task.add_done_callback(site.background.discard)
    return sent


async def _confirm_in_background(site: Site, email: str, sections: list[str] | None, tz: str | None) -> None:
    """A sign-up's confirmation email, if the per-mailbox window and the hourly cap allow one.
    The person was told a link may come: a failure is logged, and they may sign up again."""
    try:
        await _confirm(site, email, sections, tz)
    except DigestError as exc:  # the database is busy or unreachable, the config cannot make the message
        log.warning("web: sign-up confirmation not sent: %s", exc.message)
    except Exception:
        log.exception("web: sign-up confirmation not sent")


async def _confirm(site: Site, email: str, sections: list[str] | None, tz: str | None) -> None:
    web_settings = site.settings.web
    # Counted by the mailbox it reaches, not the address as written: each "+tag" or Gmail dot is a
    # new address to the same inbox, and would have a window of its own (subscription bombing).
    allowed = await asyncio.to_thread(
        site.store.claim_confirmation,
        mailbox(email),
        now=site.clock(),
        window=web_settings.confirm_window,
        hourly_cap=web_settings.confirm_hourly_cap,
    )
    if not allowed:
        log.info("web: sign-up confirmation held back (per-address window or hourly cap)")
        return
    token = tokens.signup_token(site.newest_secret, email, sections, tz, issued=site.clock())
    url = f"{site.settings.digest.base_url}/confirm/{token}"
    data = confirmation_message(site.settings, to=email, url=url, now=site.clock())
    await send_confirmation(site.settings, to=email, data=data)


async def _finish_background(app: web.Application) -> None:
    """on_shutdown: let confirmation emails on the wire finish (the person was told one is coming)."""
    pending = app[SITE].background
    if pending:
        await asyncio.wait(set(pending), timeout=SHUTDOWN_GRACE)


def _signup_request(site: Site, token: str) -> tuple[str, tuple[str, ...] | None, str | None, datetime] | None:
    if not site.settings.web.signup:
        return None
    return tokens.read_signup_token(site.secrets, token, max_age=site.settings.web.confirm_expiry, now=site.clock())


def _expired_link(site: Site) -> web.Response:
    return _page(
        site,
        "message.html.j2",
        status=404,
        heading="This link does not work",
        text="This confirmation link has expired or does not work. Sign up again to get a new one.",
    )


async def confirm_page(request: web.Request) -> web.StreamResponse:
    """Mail scanners open links: a GET only shows the button."""
    site = request.app[SITE]
    token = _token(request)
    found = _signup_request(site, token)
    if found is None:
        return _expired_link(site)
    return _page(site, "confirm.html.j2", email=found[0], form_mac=_form_mac(site, token))


async def confirm(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    token = _token(request)
    found = _signup_request(site, token)
    if found is None:
        return _expired_link(site)
    form = await _form(request)
    if form is None:
        return _unreadable(site, text="The form could not be read. Open the link in your email again.")
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site" or not _form_mac_ok(
        site, token, str(form.get("form", ""))
    ):
        return _refused(site)
    email, sections, timezone, issued = found
    known = set(site.settings.section_names)
    if sections is not None:  # a renamed section under its name now ([[sections]] formerly); a dropped one left out
        sections = tuple(s for s in site.settings.chosen_now(sections) or () if s in known)
        if not sections:  # all of them gone: at most what they asked for, never every section
            return _page(
                site,
                "message.html.j2",
                status=409,
                heading="The sections you chose no longer exist",
                text="Nothing was subscribed. Sign up again and choose from the sections we have now.",
            )
    sub, applied = await asyncio.to_thread(
        site.store.confirm_subscription, email, sections=sections, timezone=timezone, issued=issued, now=site.clock()
    )
    if sub is None or (not applied and sub.status != ACTIVE):  # spent by an unsubscribe or an erasure (U7)
        return _expired_link(site)
    log.info("web: subscription %s subscriber=%s", "confirmed" if applied else "already confirmed", sub.public_id[:8])
    if not applied:
        # A spent link may have been forwarded or leaked (a shared mailbox, a proxy's log): whoever
        # holds it now learns nothing and gets no way into the subscriber's preferences.
        return _page(
            site,
            "message.html.j2",
            heading="You are subscribed already",
            text="This subscription was confirmed already. The email we sent you has the link to your preferences.",
        )
    path = f"../p/{tokens.preferences_token(site.newest_secret, sub.public_id)}"
    return _page(site, "confirmed.html.j2", email=sub.email, preferences_path=path)


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 "ok" when the last poll and every zone's last due edition are on time, else 503 "late";
    the lines after the first say what is late (no subscriber data)."""
    site = request.app[SITE]
    state = await asyncio.to_thread(health, site.settings, site.store, now=site.clock())
    return web.Response(status=200 if state.ok else 503, text=state.text)


async def metrics_page(request: web.Request) -> web.StreamResponse:
    body = await asyncio.to_thread(request.app[METRICS].exposition)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return resp


# --------------------------------------------------------------------------- the app and its server


def make_app(
    settings: Settings, store: Store, *, clock: Clock | None = None, metrics: Metrics | None = None
) -> web.Application:
    """The application; `store.site_secret()` is read here (it may create it: call off the loop).

    `metrics`: given by tests; else the store's figures plus the counters a daemon on this database
    writes beside it (metrics.py), since the daemon runs this app in a process of its own.
    """
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors])
    clock = clock or (lambda: datetime.now(UTC))
    secrets = site_secrets(settings, store)
    messages = site_messages(settings)
    pages = _pages(messages)
    app[SITE] = Site(
        settings=settings,
        store=store,
        clock=clock,
        secrets=secrets,
        pages=pages,
        messages=messages,
        title=site_title(messages, settings.digest.title),
        editions=edition_pages(settings, store, secrets, pages),
        legacy_link_max_id=store.legacy_link_max_id(),
        metrics=metrics
        or Metrics(settings, store, clock=clock, counters_file=settings.beside_database(COUNTERS_SUFFIX)),
        signup_limiter=SlidingWindow(settings.web.signup_per_client, 600.0),
        spool=unsubscribes.spool_path(settings),
    )
    token = "{token:[^/]*}"  # an empty token is a route too, so it gets the same answer as a bad one
    app.router.add_get(f"/u/{token}", unsubscribe_page)
    app.router.add_post(f"/u/{token}", unsubscribe)
    app.router.add_get(f"/p/{token}", preferences_page)
    app.router.add_post(f"/p/{token}", save_preferences)
    app.router.add_get("/editions/{tz}/{day}", edition_page)
    app.router.add_get("/editions.atom", atom)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app[METRICS] = app[SITE].metrics
    if settings.web.metrics_port is None:  # else on a listener of its own (start_web), 404 here
        app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/subscribe", subscribe_page)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_get(f"/confirm/{token}", confirm_page)
    app.router.add_post(f"/confirm/{token}", confirm)
    app.on_response_prepare.append(_secured)
    app.on_shutdown.append(_finish_background)
    app.cleanup_ctx.append(_apply_kept_unsubscribes)
    return app


async def _apply_kept_unsubscribes(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, write unsubscribes kept during a busy spell into the database."""
    site = app[SITE]

    async def loop() -> None:
        while True:
            try:
                n = await asyncio.to_thread(unsubscribes.apply, site.store, site.spool, now=site.clock())
                if n:
                    log.info("web: %d kept unsubscribe(s) written to the database", n)
            except StoreError as exc:
                log.warning("web: kept unsubscribes wait for the database: %s", exc.message)
            await asyncio.sleep(RETRY_AFTER / 4)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def connection_cap() -> int:
    """How many connections the app holds at once: half the descriptors this process may open (at
    most 1,000), so the database, the log and the rest always have room to spare."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft if soft != resource.RLIM_INFINITY else 4096
    return max(8, min(1000, (limit - 64) // 2))


class _Refusal(asyncio.Protocol):
    """A connection over the cap: answered 503 at once and closed, so it holds no descriptor."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        transport.close()


class _CappedSite(web.TCPSite):
    """TCPSite whose listener hands connections past `cap` to _Refusal instead of the app."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, cap: int) -> None:
        super().__init__(runner, host, port)
        self.cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner, as TCPSite.start does
        server = self._runner.server
        assert server is not None
        cap = self.cap

        def factory() -> asyncio.BaseProtocol:
            if len(server.connections) >= cap:
                return _Refusal()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog)


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot read (a URL over its 8 KB line limit, a broken request line
    or header) as an ERROR with a traceback, though it answered it 400 as it should: the client's
    fault, and on the internet an everyday one. One line says so (L5)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "web: a malformed request answered %s: %s"
            # Redacted before it is cut: a token cut short no longer looks like one.
            record.args = (exc.code, remote_words(_redact(exc.message), limit=120))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_MALFORMED_REQUESTS = _MalformedRequests()


async def start_web(
    settings: Settings,
    store: Store,
    *,
    clock: Clock | None = None,
    host: str | None = None,
    port: int | None = None,
    metrics: Metrics | None = None,
) -> web.AppRunner:
    """Listen on [web] host:port (or the given ones; port 0 picks a free one), and with [web]
    metrics_port set, serve /metrics on metrics_host:metrics_port instead.

    The caller stops both with ``runner.cleanup()``; ``listening(runner)`` says where the app listens.
    """
    app = await asyncio.to_thread(make_app, settings, store, clock=clock, metrics=metrics)
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS)  # once: a logger keeps one of each
    metrics_runners: list[web.AppRunner] = []

    async def stop_metrics(_: web.Application) -> None:  # the web app's runner.cleanup() stops both
        for metrics_runner in metrics_runners:
            await metrics_runner.cleanup()

    app.on_cleanup.append(stop_metrics)
    runner = _runner(app)
    await runner.setup()
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    await _listen(runner, host, port, cap=connection_cap(), what="The web app", keys="port (or host)")
    log.info("web: listening on %s; public at %s", ", ".join(listening(runner)), settings.digest.base_url)
    if settings.web.metrics_port is not None:
        try:
            metrics_runners.append(await _start_metrics(settings, app[METRICS]))
        except ConfigError:
            await runner.cleanup()
            raise
        log.info("web: metrics on %s/metrics", ", ".join(listening(metrics_runners[0])))
    return runner


def _runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log_class=_AccessLogger,
        access_log=logging.getLogger("digest.web.access"),
        shutdown_timeout=SHUTDOWN_GRACE,
        keepalive_timeout=READ_TIMEOUT,
        lingering_time=1.0,  # after a 408, wait for no more of its body
    )


async def _start_metrics(settings: Settings, metrics: Metrics) -> web.AppRunner:
    """/metrics alone on [web] metrics_host:metrics_port, as Prometheus exporters serve it: the
    figures stay off the public port without a rule at the proxy, and a scrape never competes with
    readers for the web app's connections."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_page)
    runner = _runner(app)
    await runner.setup()
    host, port = settings.web.metrics_host, settings.web.metrics_port
    assert port is not None
    keys = "metrics_port (or metrics_host)"
    await _listen(runner, host, port, cap=METRICS_CONNECTIONS, what="The metrics listener", keys=keys)
    return runner


async def _listen(runner: web.AppRunner, host: str, port: int, *, cap: int, what: str, keys: str) -> None:
    """Start `runner` on host:port with at most `cap` connections; an address in use is the
    operator's to change ([web] `keys`), and stops the start with one line."""
    try:
        await _CappedSite(runner, host, port, cap=cap).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint=f"Set [web] {keys} to a free address, or stop what is using it.",
        ) from exc


def listening(runner: web.AppRunner) -> list[str]:
    """The URLs the app answers on, e.g. ``["http://127.0.0.1:8080"]``."""
    out = []
    for address in runner.addresses:
        if isinstance(address, tuple):
            host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
            out.append(f"http://{host}:{address[1]}")
    return out


async def serve(
    settings: Settings,
    store: Store,
    *,
    stop: asyncio.Event,
    clock: Clock | None = None,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve until `stop` is set; requests in flight get SHUTDOWN_GRACE seconds to finish."""
    runner = await start_web(settings, store, clock=clock, host=host, port=port)
    try:
        if on_ready is not None:
            on_ready(listening(runner))
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("web: stopped")


async def run_web(
    settings: Settings,
    store: Store,
    *,
    clock: Clock | None = None,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """`digest web`: serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await serve(settings, store, stop=stop, clock=clock, host=host, port=port, on_ready=on_ready)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --------------------------------------------------------------------------- the daemon's web process


@dataclass(frozen=True, slots=True)
class _WebJob:
    settings: Settings
    offset: float  # seconds the daemon's clock is ahead of the system's (DIGEST_NOW rehearsals)
    setup: Callable[[], None] | None  # the CLI's logging set-up (a spawned process starts with none)


def _web_main(job: _WebJob, conn: Any) -> None:
    """The web app's own process: its connections can never use up the daemon's descriptors."""
    from datetime import timedelta

    if job.setup is not None:
        job.setup()
    offset = timedelta(seconds=job.offset)
    store: Store | None = None
    try:
        store = Store(job.settings.database_url, busy_timeout=WEB_BUSY_TIMEOUT)
        asyncio.run(
            run_web(
                job.settings,
                store,
                clock=lambda: datetime.now(UTC) + offset,
                on_ready=lambda urls: conn.send(("ready", urls)),
            )
        )
    except DigestError as exc:
        conn.send(("error", type(exc).__name__, exc.message, exc.hint))
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group before run_web handles it
        pass
    finally:
        if store is not None:
            store.close()


class WebProcess:
    """`digest run`'s web app, in a process of its own, started again if it ever dies.

    Idle or half-sent requests cost the web process descriptors, never the daemon's: the sender,
    the poller and the database keep theirs however many connections arrive (issue 10).
    """

    RESTART_AFTER = 5.0

    def __init__(self, settings: Settings, *, clock: Clock, setup: Callable[[], None] | None) -> None:
        self.settings, self.clock, self.setup = settings, clock, setup
        self.proc: Any = None
        self.urls: list[str] = []
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> WebProcess:
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise())
        return self

    async def _spawn(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        offset = (self.clock() - datetime.now(UTC)).total_seconds()
        self.proc = ctx.Process(
            target=_web_main, args=(_WebJob(self.settings, offset, self.setup), send), name="digest-web"
        )
        self.proc.start()
        send.close()
        try:
            got = await asyncio.to_thread(receive.poll, 60)
            message = receive.recv() if got else None
        except EOFError:  # it died before saying anything
            message = None
        finally:
            receive.close()
        if message is not None and message[0] == "ready":
            self.urls = list(message[1])
            log.info("web: serving from process %d on %s", self.proc.pid, ", ".join(self.urls))
            return
        await self._end(self.proc)
        if message is not None and message[0] == "error":
            _, kind, text, hint = message
            cls = getattr(__import__("digest.errors", fromlist=[kind]), kind, DigestError)
            raise cls(text, hint=hint)
        raise ConfigError(
            "The web app's process did not start.",
            hint="Run `digest web` on its own to see why, or set [web] enabled = false.",
        )

    async def _supervise(self) -> None:
        while True:
            await asyncio.to_thread(self.proc.join)
            if self._stopping:
                return
            log.error(
                "web: the web app's process exited (code %s); starting it again in %gs",
                self.proc.exitcode,
                self.RESTART_AFTER,
            )
            await asyncio.sleep(self.RESTART_AFTER)
            try:
                await self._spawn()
            except DigestError as exc:
                log.error("web: cannot start the web app again: %s %s", exc.message, exc.hint)

    async def _end(self, proc: Any) -> None:
        if proc.exitcode is None and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            await asyncio.to_thread(proc.join, SHUTDOWN_GRACE + 5)
            if proc.exitcode is None:
                proc.kill()
                await asyncio.to_thread(proc.join)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None:
            await self._end(self.proc)
        if self._watch is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        log.info("web: the web app's process stopped")
