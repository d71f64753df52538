"""Fetching feeds over HTTP: the only module that talks to feed servers.

It owns the hardening a feed reader needs against servers it does not control: http(s) only,
no connection to non-public addresses (checked on the resolved address when the socket is
made, so redirects and DNS answers cannot get around it), manual redirects with a hop limit,
a total deadline per fetch, a body cap counted after decompression, conditional GET,
Retry-After, and global and per-host concurrency limits.

It returns bytes and headers (FetchResult) and never parses them: deciding whether a body is a
feed is parse's job. A per-feed problem never raises out of Fetcher.fetch; it comes back as
FetchResult.error so one bad feed cannot stop a poll (reliability C10).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Final

from digest import __version__
from digest.config import MAX_FEED_URL, FetchSettings
from digest.errors import FeedURLError, FetchError, remote_words
from digest.hosts import IPAddress, host_address, is_loopback_name, is_public_address, non_public_reason

_CA_LOCATIONS: Final = ("SSL_CERT_FILE", "SSL_CERT_DIR")  # where OpenSSL looks for CAs, when set


@contextlib.contextmanager
def _no_ca_bundle_for_aiohttps_own_contexts() -> Iterator[None]:
    """While aiohttp is imported, OpenSSL's default CA locations point at an empty file.

    aiohttp builds two TLS contexts when it is imported (a verifying one, and one that does not
    verify) and each loads the system CA bundle: ~16 ms apiece, a tenth of a `digest poll` of
    unchanged feeds. The fetcher uses neither: https requests carry `_tls_context()`, built with
    the CA bundle on the first https request of the process. OpenSSL reads SSL_CERT_FILE and
    SSL_CERT_DIR when a context loads its default locations, so aiohttp's two loads find nothing to
    parse; both variables are restored (or removed) as soon as the import returns, so an
    operator's own SSL_CERT_FILE is the one `_tls_context()` loads. aiohttp's unused verifying
    context is left with no CAs: whatever might use it by mistake fails to verify, never passes.

    Only when this is the process's one thread (as at the start of a command): another thread
    could build a context in that moment and find no CAs; with threads, aiohttp imports as usual.
    """
    if "aiohttp" in sys.modules or threading.active_count() > 1:
        yield
        return
    saved = {name: os.environ.get(name) for name in _CA_LOCATIONS}
    os.environ.update(dict.fromkeys(_CA_LOCATIONS, os.devnull))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


with _no_ca_bundle_for_aiohttps_own_contexts():
    import aiohttp
from aiohappyeyeballs import AddrInfoType  # noqa: E402  (after aiohttp, which imports it)
from yarl import URL  # noqa: E402

log = logging.getLogger(__name__)

AddressCheck = Callable[[IPAddress], bool]

DEFAULT_USER_AGENT: Final = f"digest/{__version__} (+https://github.com/digest-press/digest)"
_ACCEPT: Final = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_PERMANENT: Final = frozenset({301, 308})  # RFC 9110 15.4.2 and 15.4.9
# aiohttp decodes one coding, boundedly, as it streams; anything else (x-gzip, "gzip, gzip") would
# reach us still encoded, so it is refused rather than half-decoded.
_DECODED_BY_AIOHTTP: Final = frozenset({"", "identity", "gzip", "deflate", "br", "zstd"})


# --------------------------------------------------------------------------- addresses


class AddressRefused(OSError):
    """Raised in the socket factory: aiohttp wraps it in ClientConnectorError."""


def _guarded_socket_factory(is_allowed: AddressCheck) -> Callable[[AddrInfoType], socket.socket]:
    """Miniflux's dialer Control callback, for aiohttp: every socket is checked on the address
    it is about to connect to, after DNS, on every hop (reliability finding 5, C2)."""

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not is_allowed(ip):
            why = non_public_reason(ip) or "not allowed"
            raise AddressRefused(f"refused to connect to {ip} ({why} address)")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


# --------------------------------------------------------------------------- URLs


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _validate(raw: str, is_allowed: AddressCheck) -> URL:
    """C1 and C2 on a URL's text: http(s), a host, no userinfo, no refused IP literal."""
    text = raw.strip()
    if len(text) > MAX_FEED_URL:  # a redirect's target too
        raise FeedURLError(f"The feed URL is longer than {MAX_FEED_URL} characters.")
    scheme = _SCHEME.match(text)
    if scheme is None or "://" not in text:
        raise FeedURLError(
            f"{raw!r} is not a URL; feeds are fetched over the web, never read from a file.",
            hint="Write the full address, starting with https:// (or http://).",
        )
    name = scheme.group(1).lower()
    if name == "feed":
        raise FeedURLError(f"{raw!r} uses the feed: alias.", hint="Replace feed:// with https://.")
    if name not in ("http", "https"):
        raise FeedURLError(f"{raw!r} uses the {name}: scheme; only http:// and https:// feeds are fetched.")
    try:
        url = URL(text)
    except ValueError as exc:
        raise FeedURLError(f"{raw!r} is not a valid URL: {exc}.") from exc
    if not url.host:
        raise FeedURLError(f"{raw!r} has no host name.")
    if url.user is not None or url.password is not None:
        raise FeedURLError(
            f"{raw!r} contains a user name or password before the host.",
            hint="Credentials in feed URLs are not supported; remove the part before '@'.",
        )
    ip = host_address(url.host)
    if ip is not None:
        if url.host != (canonical := str(ip)):
            url = url.with_host(canonical)  # canonical form, so logs and the store show the real target
        if not is_allowed(ip):
            raise FeedURLError(f"{raw!r} points at {ip}, a {non_public_reason(ip) or 'refused'} address.")
    return url.with_fragment(None)


def check_feed_url(url: str, *, allow_private: bool) -> str:
    """Validate a feed URL when it is added; returns it normalised. Raises FeedURLError.

    This is the early, friendly check: Fetcher re-checks every hop, and every resolved address
    when it connects, which is what actually keeps it off private networks.
    """
    checked = _validate(url, _allow_all if allow_private else is_public_address)
    host = (checked.host or "").rstrip(".")
    if not allow_private and is_loopback_name(host):
        raise FeedURLError(f"{url!r} points at {host}, a loopback name.")
    return str(checked.origin()) + checked.raw_path_qs  # origin + path spells out the root "/"


def _allow_all(ip: IPAddress) -> bool:
    return True


# --------------------------------------------------------------------------- Retry-After


def parse_retry_after(value: str | None, *, now: datetime, cap: float) -> float | None:
    """RFC 9110 section 10.2.3: delay-seconds or an HTTP-date; garbage is ignored, the result capped."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 5.6.7: HTTP-dates are in GMT
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), cap)


# --------------------------------------------------------------------------- fetching


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """What every https request verifies with: the system CAs (or SSL_CERT_FILE / SSL_CERT_DIR),
    certificate and host name checked; aiohttp's own verifying context, as it would build it.

    Built on the first https request, once per process: loading the CA bundle takes ~16 ms, which
    a poll of http feeds never pays and a poll of https feeds pays once instead of twice.
    """
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # requested URL
    final_url: str  # after redirects
    status: int | None  # last HTTP status, None if no response
    body: bytes | None  # decoded (decompressed) body on 200, else None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    permanent_url: str | None  # the feed moved: every hop was 301/308 and the target answered 200/304
    retry_after: float | None  # seconds, from Retry-After on 429/503, bounded by the cap
    not_modified: bool  # 304
    gone: bool  # 410
    error: str | None  # one line for the feed, None on success and 304


class _HopError(FetchError):
    """A FetchError that remembers the URL it happened at, for FetchResult.final_url."""

    def __init__(self, message: str, at: URL, status: int | None = None) -> None:
        super().__init__(message)
        self.final_url, self.status = str(at), status


def _failed(url: str, final_url: str, error: str, status: int | None = None) -> FetchResult:
    return FetchResult(url, final_url, status, None, None, None, None, None, None, False, False, error)


class _Deadline:
    """A total deadline that stands still while the fetch queues for a slot (queueing is ours).

    It runs only while a slot is held (`Fetcher._slot` resumes and pauses it), which is the only
    place a fetch waits on the network: one timer armed and cancelled per request, where starting
    it at once and pausing it around the queueing cost three of each.
    """

    def __init__(self, timeout: asyncio.Timeout, seconds: float) -> None:
        self._timeout, self._left = timeout, seconds  # paused until the first slot

    def pause(self) -> None:
        if self._timeout.expired():  # already cancelling the fetch; nothing left to pause
            return
        when = self._timeout.when()
        if when is not None:
            self._left = when - asyncio.get_running_loop().time()
        self._timeout.reschedule(None)

    def resume(self) -> None:
        if not self._timeout.expired():
            self._timeout.reschedule(asyncio.get_running_loop().time() + self._left)


class _Slot:
    """Fetcher._slot: `async with` the host's semaphore, the host gate (when there is one) and the
    global semaphore, in that order; the deadline runs only while all three are held.

    A class rather than an async generator: entered once per request, contextlib's generator
    machinery cost ~2 ms of a poll of 1,000 feeds. Release is in the reverse order, exceptions
    pass through (the deadline is then left running: the fetch is over).
    """

    __slots__ = ("_host", "_gate", "_global", "_deadline")

    def __init__(
        self,
        host: asyncio.Semaphore,
        gate: AbstractAsyncContextManager[None] | None,
        global_: asyncio.Semaphore,
        deadline: _Deadline,
    ) -> None:
        self._host, self._gate, self._global, self._deadline = host, gate, global_, deadline

    async def __aenter__(self) -> None:
        await self._host.acquire()
        try:
            if self._gate is not None:
                await self._gate.__aenter__()
            try:
                await self._global.acquire()
            except BaseException:
                if self._gate is not None:
                    await self._gate.__aexit__(*sys.exc_info())
                raise
        except BaseException:
            self._host.release()
            raise
        self._deadline.resume()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self._deadline.pause()
        self._global.release()
        try:
            if self._gate is not None:
                await self._gate.__aexit__(exc_type, exc, tb)
        finally:
            self._host.release()


# Politeness beyond this process (issue 15): given a host, a context held around each request to
# it. The pipeline's gate is backed by the database, so all workers together keep `per_host` and
# `host_interval`; fetch itself knows nothing of who else is fetching.
HostGate = Callable[[str], AbstractAsyncContextManager[None]]


class _Spacing:
    """host_interval within one process: request starts to a host handed out that far apart."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, host: str) -> AsyncIterator[None]:
        now = time.monotonic()
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self._interval
        await asyncio.sleep(start - now)
        yield


class Fetcher:
    """One HTTP session for a poll: `async with Fetcher(...) as f: await f.fetch(url)`."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        allow_private: bool,
        retry_after_cap: float = 86400.0,
        is_allowed_address: AddressCheck | None = None,
        host_gate: HostGate | None = None,
    ) -> None:
        self._settings = settings
        spacing = _Spacing(settings.host_interval) if settings.host_interval else None
        self._gate: HostGate | None = host_gate or spacing
        self._cap = retry_after_cap
        # Tests inject a check (allow 127.0.0.2, refuse 127.0.0.1) to exercise the guard on loopback.
        self._is_allowed = is_allowed_address or (_allow_all if allow_private else is_public_address)
        self._global = asyncio.Semaphore(settings.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        connector = aiohttp.TCPConnector(
            limit=self._settings.concurrency,
            limit_per_host=0,  # our per-host semaphore counts by host name, across ports
            socket_factory=_guarded_socket_factory(self._is_allowed),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._settings.connect_timeout),
            headers={"User-Agent": self._settings.user_agent or DEFAULT_USER_AGENT, "Accept": _ACCEPT},
            cookie_jar=aiohttp.DummyCookieJar(),  # one feed's cookies must not reach another
            trust_env=False,  # a proxy from the environment would bypass the address guard
            auto_decompress=True,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """Fetch one feed; a per-feed problem comes back as FetchResult.error, never raised."""
        try:
            target = _validate(url, self._is_allowed)
        except FeedURLError as exc:
            return _failed(url, url, exc.message)
        conditional = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        final: str | None = None
        status: int | None = None
        try:
            async with asyncio.timeout(None) as timeout:
                deadline = _Deadline(timeout, self._settings.timeout)
                return await self._follow(url, target, conditional, deadline)
        except TimeoutError:
            # Only our deadline and aiohttp's connect timeout can end here.
            error = (
                f"timed out after {self._settings.timeout:g} s"
                if timeout.expired()
                else f"could not connect within {self._settings.connect_timeout:g} s"
            )
        except _HopError as exc:
            final, error, status = exc.final_url, exc.message, exc.status
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect to {exc.host}: {exc.os_error}"
        except aiohttp.ClientPayloadError as exc:
            error = f"the body was cut off or could not be decoded: {exc}"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.debug("feed=%s error=%s", url, error)
        return _failed(url, final or str(target), error, status)

    def _slot(self, host: str, deadline: _Deadline) -> _Slot:
        """Wait for the host's slot, then a global one (in that order, so feeds waiting on one busy
        host do not hold global slots others could use); the deadline stands still meanwhile."""
        per_host = self._hosts.get(host)
        if per_host is None:
            per_host = self._hosts[host] = asyncio.Semaphore(self._settings.per_host)
        return _Slot(per_host, self._gate(host) if self._gate is not None else None, self._global, deadline)

    async def _follow(self, url: str, target: URL, conditional: dict[str, str], deadline: _Deadline) -> FetchResult:
        assert self._session is not None, "use Fetcher as an async context manager"
        here = str(target)
        seen = {here}
        permanent = True
        hops = 0
        while True:
            async with (
                self._slot(target.host or "", deadline),
                self._session.get(
                    target,
                    headers=conditional,
                    allow_redirects=False,
                    ssl=_tls_context() if target.scheme == "https" else True,  # True: no TLS for http
                ) as resp,
            ):
                if resp.status not in _REDIRECTS:
                    result = await self._answer(url, target, here, resp)
                    moved = permanent and hops > 0 and resp.status in (200, 304)
                    log.debug("feed=%s status=%s hops=%d", url, resp.status, hops)
                    return replace(result, permanent_url=here) if moved else result
                location = resp.headers.get("Location")
            if not location:
                raise _HopError(f"HTTP {resp.status} redirect without a Location header", target)
            if hops >= self._settings.max_redirects:
                raise _HopError(f"more than {self._settings.max_redirects} redirects", target)
            try:
                nxt = target.join(URL(location))
                nxt = _validate(str(nxt), self._is_allowed)
            except (ValueError, FeedURLError) as exc:
                why = exc.message if isinstance(exc, FeedURLError) else str(exc)
                raise _HopError(f"redirect to {location!r} refused: {why}", target) from exc
            here = str(nxt)
            if here in seen:
                raise _HopError(f"redirect loop back to {nxt}", target)
            seen.add(here)
            permanent = permanent and resp.status in _PERMANENT
            hops += 1
            target = nxt

    async def _answer(self, url: str, target: URL, here: str, resp: aiohttp.ClientResponse) -> FetchResult:
        """The FetchResult of a final answer from `target` (spelt `here`)."""
        status, headers = resp.status, resp.headers
        ctype, etag, modified = headers.get("Content-Type"), headers.get("ETag"), headers.get("Last-Modified")
        body, retry, error = None, None, None
        if status == 200:
            body = await self._read_body(resp, target)
        elif status == 304:
            pass
        else:
            # The reason phrase is the server's words: one line, no control character.
            reason = f"HTTP {status} {remote_words(resp.reason or '', limit=200)}".rstrip()
            if status in (429, 503):
                retry = parse_retry_after(headers.get("Retry-After"), now=datetime.now(UTC), cap=self._cap)
            error = reason if retry is None else f"{reason}; retry after {retry:g} s"
        return FetchResult(
            url=url,
            final_url=here,
            status=status,
            body=body,
            content_type=ctype,
            etag=etag,
            last_modified=modified,
            permanent_url=None,
            retry_after=retry,
            not_modified=status == 304,
            gone=status == 410,
            error=error,
        )

    async def _read_body(self, resp: aiohttp.ClientResponse, target: URL) -> bytes:
        """Stream the decoded body, stopping at max_body decoded bytes (C4): aiohttp inflates in
        bounded steps as we read, so a bomb never expands much past what we have counted."""
        cap = self._settings.max_body
        coding = resp.headers.get("Content-Encoding", "").strip().lower()
        if coding not in _DECODED_BY_AIOHTTP:
            raise _HopError(f"unsupported Content-Encoding {coding!r}", target, 200)
        if coding in ("", "identity") and (resp.content_length or 0) > cap:
            raise _HopError(f"body of {resp.content_length} bytes is over the {cap}-byte limit", target, 200)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > cap:
                resp.close()  # do not drain an endless body back into the pool
                raise _HopError(f"body is over the {cap}-byte limit, counted decompressed", target, 200)
            chunks.append(chunk)
        return b"".join(chunks)
