"""digest.fetch against real servers on loopback (tests/httpservers.py): reliability C1-C10, H1-H17."""

from __future__ import annotations

import asyncio
import gzip
import importlib.metadata
import ipaddress
import itertools
import re
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from httpservers import FeedServer, RawServer, canned, endless_body, hang, silent, slowloris
from ports import free_port

import digest
from digest.config import FetchSettings
from digest.errors import FeedURLError
from digest.fetch import (
    DEFAULT_USER_AGENT,
    AddressCheck,
    Fetcher,
    FetchResult,
    _tls_context,
    check_feed_url,
    parse_retry_after,
)
from digest.hosts import IPAddress, host_address, is_public_address

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
MiB = 1024 * 1024


def settings(**kw: Any) -> FetchSettings:
    """Short limits so hostile servers cost a test a second or two."""
    return FetchSettings(**{"timeout": 2.0, "connect_timeout": 1.0, "max_body": MiB, **kw})


async def fetch_one(url: str, *, allow_private: bool = True, **kw: Any) -> FetchResult:
    async with Fetcher(settings(**kw), allow_private=allow_private) as f:
        return await f.fetch(url)


@pytest.fixture
async def srv() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


# --------------------------------------------------------------------------- basic answers


async def test_a_200_returns_the_body_and_headers(srv: FeedServer) -> None:
    url = srv.serve("/feed.xml", FEED, etag='"v1"', last_modified="Wed, 01 Jan 2025 00:00:00 GMT")
    r = await fetch_one(url)
    assert (r.status, r.body, r.error) == (200, FEED, None)
    assert r.content_type == "application/rss+xml; charset=utf-8"
    assert (r.etag, r.last_modified) == ('"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert r.final_url == url and r.permanent_url is None


async def test_H15_user_agent_names_digest_and_can_be_configured(srv: FeedServer) -> None:
    url = srv.serve("/feed.xml", FEED)
    await fetch_one(url)
    await fetch_one(url, user_agent="press-room/2")
    agents = [r.headers["User-Agent"] for r in srv.requests]
    assert agents == [DEFAULT_USER_AGENT, "press-room/2"]
    assert DEFAULT_USER_AGENT.startswith("digest/")
    assert "https://github.com/digest-press/digest" in DEFAULT_USER_AGENT


def test_the_user_agent_carries_the_installed_version_read_without_importlib_metadata() -> None:
    # digest/__init__.py's __version__ is what pyproject.toml (tool.hatch.version) installs.
    assert digest.__version__ == importlib.metadata.version("digest")
    assert DEFAULT_USER_AGENT.startswith(f"digest/{digest.__version__} ")


async def test_H13_conditional_get_sends_validators_and_a_304_has_no_body(srv: FeedServer) -> None:
    stamp = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = srv.serve("/feed.xml", FEED, etag='"v1"', last_modified=stamp)
    async with Fetcher(settings(), allow_private=True) as f:
        first = await f.fetch(url)
        second = await f.fetch(url, etag=first.etag, last_modified=first.last_modified)
        by_date = await f.fetch(url, last_modified=stamp)
        stale = await f.fetch(url, etag='"v0"')
    assert first.status == 200 and "If-None-Match" not in srv.requests[0].headers
    assert srv.requests[1].headers["If-None-Match"] == '"v1"'
    assert srv.requests[1].headers["If-Modified-Since"] == stamp
    assert (second.status, second.not_modified, second.body, second.error) == (304, True, None, None)
    assert by_date.not_modified
    assert (stale.status, stale.body) == (200, FEED)


async def test_H12_a_410_feed_is_gone(srv: FeedServer) -> None:
    r = await fetch_one(srv.serve("/old.xml", b"bye", status=410))
    assert r.gone and r.status == 410 and r.body is None and "410" in (r.error or "")


@pytest.mark.parametrize("status", [404, 500])
async def test_an_http_error_is_recorded_with_its_status(srv: FeedServer, status: int) -> None:
    r = await fetch_one(srv.serve("/x", b"no", status=status))
    assert r.status == status and r.body is None and not r.gone
    assert r.error is not None and str(status) in r.error


async def test_an_untrusted_certificate_is_an_error() -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with FeedServer(ssl_context=context) as tls:
        r = await fetch_one(tls.serve("/feed", FEED))
    assert tls.url().startswith("https://") and r.body is None
    assert r.error is not None and "certificate" in r.error.lower()


def tls_server_context(ca: trustme.CA, *identities: str) -> ssl.SSLContext:
    """A server's TLS context with a certificate `ca` issued for `identities`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(context)
    return context


@pytest.fixture
def trusted_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[trustme.CA]:
    """A CA the fetcher trusts, as an operator's SSL_CERT_FILE makes it (read when the fetcher's
    TLS context is built: on the first https request of the process, here of the test)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    _tls_context.cache_clear()
    yield ca
    _tls_context.cache_clear()


async def test_an_https_feed_whose_certificate_a_trusted_ca_signed_is_fetched(trusted_ca: trustme.CA) -> None:
    async with FeedServer(ssl_context=tls_server_context(trusted_ca, "127.0.0.1")) as tls:
        r = await fetch_one(tls.serve("/feed", FEED))
    assert tls.url().startswith("https://")
    assert (r.status, r.body, r.error) == (200, FEED, None)


async def test_a_certificate_from_another_ca_or_for_another_host_is_refused(trusted_ca: trustme.CA) -> None:
    for context, why in (
        (tls_server_context(trustme.CA(), "127.0.0.1"), "unable to get local issuer certificate"),  # unknown CA
        (tls_server_context(trusted_ca, "feeds.example.org"), "mismatch"),  # trusted CA, another host's certificate
    ):
        async with FeedServer(ssl_context=context) as tls:
            r = await fetch_one(tls.serve("/feed", FEED))
        assert r.body is None and r.error is not None and "certificate verify failed" in r.error, r.error
        assert why in r.error


async def test_a_refused_connection_is_an_error_not_an_exception() -> None:
    async with FeedServer() as gone:
        url = gone.url("/feed")
    r = await fetch_one(url)
    assert r.status is None and r.error is not None and "connect" in r.error


# --------------------------------------------------------------------------- redirects (C3, C7)


async def test_H11_a_chain_of_301_and_308_sets_permanent_url(srv: FeedServer) -> None:
    final = srv.serve("/new.xml", FEED)
    srv.redirect("/mid", "/new.xml", 308)  # relative Location, RFC 9110 10.2.2
    start = srv.redirect("/old.xml", srv.url("/mid"), 301)
    r = await fetch_one(start)
    assert (r.status, r.body, r.url, r.final_url, r.permanent_url) == (200, FEED, start, final, final)


@pytest.mark.parametrize("temporary", [302, 303, 307])
async def test_H11_a_temporary_hop_in_the_chain_leaves_permanent_url_unset(srv: FeedServer, temporary: int) -> None:
    final = srv.serve("/new.xml", FEED)
    srv.redirect("/mid", final, temporary)
    r = await fetch_one(srv.redirect("/old.xml", srv.url("/mid"), 301))
    assert (r.status, r.final_url, r.permanent_url) == (200, final, None)


async def test_H6_a_redirect_loop_is_stopped(srv: FeedServer) -> None:
    srv.redirect("/b", srv.url("/a"), 302)
    r = await fetch_one(srv.redirect("/a", srv.url("/b"), 302), max_redirects=10)
    assert r.error is not None and "loop" in r.error and r.body is None
    assert srv.paths() == ["/a", "/b"]


async def test_H6_a_chain_of_30_redirects_stops_at_the_hop_limit(srv: FeedServer) -> None:
    for i in range(30):
        srv.redirect(f"/r{i}", f"/r{i + 1}", 301)
    srv.serve("/r30", FEED)
    r = await fetch_one(srv.url("/r0"), max_redirects=5)
    assert r.error == "more than 5 redirects" and r.permanent_url is None
    assert srv.paths() == [f"/r{i}" for i in range(6)]
    assert r.final_url == srv.url("/r5")


async def test_H5_a_redirect_to_a_file_url_is_refused(srv: FeedServer) -> None:
    r = await fetch_one(srv.redirect("/a", "file:///etc/passwd", 302))
    assert r.error is not None and "refused" in r.error and r.body is None


# --------------------------------------------------------------------------- Retry-After (C7, H14)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("value", "low", "high"),
    [("120", 120, 120), ("in 300 s", 280, 300), ("garbage", None, None), ("31536000", 86400, 86400)],
)
async def test_H14_retry_after_is_read_and_capped(
    srv: FeedServer, status: int, value: str, low: float | None, high: float | None
) -> None:
    if value == "in 300 s":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    r = await fetch_one(srv.serve("/busy", b"", status=status, headers={"Retry-After": value}))
    assert r.status == status and r.error is not None
    if low is None:
        assert r.retry_after is None
    else:
        assert r.retry_after is not None and low <= r.retry_after <= (high or 0)


def test_retry_after_parsing_is_a_pure_function_of_now() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:02:00 GMT", now=now, cap=1e9) == 120
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now, cap=1e9) == 0  # already past
    assert parse_retry_after("-5", now=now, cap=1e9) is None
    assert parse_retry_after("１２０", now=now, cap=1e9) is None  # only ASCII digits, RFC 9110 10.2.3
    assert parse_retry_after(None, now=now, cap=1e9) is None
    assert parse_retry_after("99999", now=now, cap=3600) == 3600


# --------------------------------------------------------------------------- size cap (C4, H7, H8)


def zeros(n: int) -> bytes:
    return bytes(n)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros gzipped to about 64 KiB."""
    return gzip.compress(zeros(64 * MiB), compresslevel=9)


async def _peak_memory_of(url: str, **kw: Any) -> tuple[FetchResult, int]:
    tracemalloc.start()
    try:
        r = await fetch_one(url, **kw)
        return r, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_gzip_feed_is_decoded(srv: FeedServer) -> None:
    r = await fetch_one(srv.serve("/f", gzip.compress(FEED), headers={"Content-Encoding": "gzip"}))
    assert (r.body, r.error) == (FEED, None)


async def test_H8_gzip_bomb_is_cut_at_the_decoded_cap(srv: FeedServer, bomb: bytes) -> None:
    url = srv.serve("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    r, peak = await _peak_memory_of(url)
    assert r.body is None and r.error is not None and "limit" in r.error
    assert peak < 8 * MiB  # cap (1 MiB) plus buffers, nowhere near the 64 MiB it expands to


async def test_H8_deflate_bomb_is_cut_at_the_decoded_cap(srv: FeedServer) -> None:
    url = srv.serve("/bomb", zlib.compress(zeros(64 * MiB), 9), headers={"Content-Encoding": "deflate"})
    r, peak = await _peak_memory_of(url)
    assert r.body is None and r.error is not None and "limit" in r.error
    assert peak < 8 * MiB


async def test_H8_double_gzip_is_cut_at_the_cap_of_the_layer_it_decodes(srv: FeedServer, bomb: bytes) -> None:
    # One Content-Encoding over a gzip-in-gzip body: the decoded layer (the 64 KiB bomb) is over a 16 KiB cap.
    url = srv.serve("/bomb2", gzip.compress(bomb), headers={"Content-Encoding": "gzip"})
    r = await fetch_one(url, max_body=16 * 1024)
    assert r.body is None and r.error is not None and "limit" in r.error


async def test_H8_stacked_content_encodings_are_refused(srv: FeedServer, bomb: bytes) -> None:
    url = srv.serve("/bomb2", gzip.compress(bomb), headers={"Content-Encoding": "gzip, gzip"})
    r = await fetch_one(url)
    assert r.body is None and r.error is not None and "Content-Encoding" in r.error


async def test_a_body_at_the_cap_passes_and_one_byte_more_fails(srv: FeedServer) -> None:
    ok = await fetch_one(srv.serve("/at", zeros(4096)), max_body=4096)
    over = await fetch_one(srv.serve("/over", zeros(4097)), max_body=4096)
    assert ok.body == zeros(4096)
    assert over.body is None and over.error is not None and "limit" in over.error


async def test_H7_an_endless_body_is_cut_at_the_cap(srv: FeedServer) -> None:
    r, peak = await _peak_memory_of(srv.handle("/endless", endless_body()))
    assert r.status == 200 and r.body is None and r.error is not None and "limit" in r.error
    assert peak < 8 * MiB


async def test_a_reason_phrase_with_control_characters_is_one_clean_line() -> None:
    """The reason phrase is the server's words, and the error is stored (feeds.last_error): a NUL
    in it, which PostgreSQL refuses in text, failed the poll's record there, so the feed was never
    backed off and was polled again at once, every time."""
    async with RawServer(canned(b"HTTP/1.1 500 Oops\x00gone\x1b[31m\r\nContent-Length: 0\r\n\r\n")) as raw:
        r = await fetch_one(raw.url("/feed"))
    assert r.status == 500 and r.error == "HTTP 500 Oops gone [31m"


async def test_H17_a_body_cut_short_is_an_error() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 1000\r\n\r\n"
    async with RawServer(canned(head + FEED)) as raw:
        r = await fetch_one(raw.url("/feed"))
    assert r.body is None and r.error is not None


# --------------------------------------------------------------------------- deadlines (C5, C10, H9, H10)


async def test_H9_slowloris_hits_the_total_deadline_while_50_other_feeds_succeed(srv: FeedServer) -> None:
    urls = [srv.serve(f"/f{i}", FEED) for i in range(50)]
    async with FeedServer("127.0.0.2") as slow:
        slow_url = slow.handle("/drip", slowloris(0.5))
        done: list[str] = []
        async with Fetcher(settings(timeout=2.0, concurrency=60), allow_private=True) as f:

            async def one(url: str) -> FetchResult:
                result = await f.fetch(url)
                done.append(url)
                return result

            results = await asyncio.gather(one(slow_url), *(one(u) for u in urls))
    assert results[0].error == "timed out after 2 s" and results[0].body is None
    assert all(r.body == FEED for r in results[1:])
    assert done[-1] == slow_url  # every normal feed finished before the stalled one gave up


async def test_H10_a_server_that_accepts_and_never_answers_times_out() -> None:
    async with RawServer(silent) as raw:
        r = await fetch_one(raw.url("/feed"), timeout=1.0)
    assert raw.connections == 1
    assert (r.status, r.body, r.error) == (None, None, "timed out after 1 s")


async def test_H10_a_server_that_reads_the_request_and_never_responds_times_out(srv: FeedServer) -> None:
    r = await fetch_one(srv.handle("/hang", hang), timeout=1.0)
    assert srv.paths() == ["/hang"] and r.error == "timed out after 1 s"


async def test_time_queued_for_a_host_slot_does_not_count_against_the_deadline(srv: FeedServer) -> None:
    urls = [srv.serve(f"/f{i}", FEED, delay=0.4) for i in range(4)]  # 1.6 s in a row, deadline 1 s
    async with Fetcher(settings(timeout=1.0, per_host=1), allow_private=True) as f:
        results = await asyncio.gather(*(f.fetch(u) for u in urls))
    assert [r.error for r in results] == [None] * 4
    assert srv.max_in_flight == 1


# --------------------------------------------------------------------------- politeness (C8, H15)


async def test_H15_per_host_concurrency_is_never_exceeded(srv: FeedServer) -> None:
    urls = [srv.serve(f"/f{i}", FEED, delay=0.1) for i in range(12)]
    async with Fetcher(settings(per_host=3, concurrency=50), allow_private=True) as f:
        results = await asyncio.gather(*(f.fetch(u) for u in urls))
    assert all(r.body == FEED for r in results)
    assert srv.max_in_flight == 3


async def test_global_concurrency_is_never_exceeded(srv: FeedServer) -> None:
    async with FeedServer("127.0.0.2") as other:
        urls = [s.serve(f"/f{i}", FEED, delay=0.1) for i in range(6) for s in (srv, other)]
        async with Fetcher(settings(per_host=10, concurrency=2), allow_private=True) as f:
            peak = 0

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, srv.in_flight + other.in_flight)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(*(f.fetch(u) for u in urls))
            watcher.cancel()
    assert all(r.body == FEED for r in results)
    assert max(srv.max_in_flight, other.max_in_flight) <= 2 and peak == 2


# --------------------------------------------------------------------------- URL validation (C1, H5)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "etc/passwd",
        "ftp://example.com/feed.xml",
        "feed://example.com/rss",
        "feed:https://example.com/rss",
        "data:text/xml,<rss/>",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/feed",
        "http:/example.com/feed",
        "http://",
        "",
        "http://user:secret@example.com/feed",
        "http://example.com@evil.test/feed",
        "http://999.1.1.1/",
    ],
)
def test_H5_non_web_urls_are_rejected_at_validation(url: str) -> None:
    with pytest.raises(FeedURLError):
        check_feed_url(url, allow_private=True)


def test_P10_a_feed_url_too_long_for_the_stores_index_is_refused_in_one_line() -> None:
    """A feed's URL is a unique key of the store; PostgreSQL indexes 2,704 bytes of it at most."""
    fits = "https://example.com/feed?" + "q" * (2048 - 25)
    assert check_feed_url(fits, allow_private=False) == fits
    with pytest.raises(FeedURLError, match="longer than 2048 characters"):
        check_feed_url(fits + "q", allow_private=False)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("  HTTPS://Example.COM ", "https://example.com/"),
        ("http://example.com/feed.xml#top", "http://example.com/feed.xml"),
        ("http://134744072/rss", "http://8.8.8.8/rss"),
        ("http://[2606:4700:4700::1111]:8080/", "http://[2606:4700:4700::1111]:8080/"),
    ],
)
def test_check_feed_url_returns_the_normalised_url(url: str, normalised: str) -> None:
    assert check_feed_url(url, allow_private=False) == normalised


def _host_address_in_full(host: str) -> IPAddress | None:
    """hosts.host_address without its shortcut: every host goes through ip_address() first."""
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    if re.match(r"^(0x[0-9a-f]*|[0-9]+)$", host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None  # host_address raises FeedURLError here
    return None


def test_the_host_address_shortcut_answers_as_asking_ip_address_about_every_host() -> None:
    """Names skip ipaddress (two failed parses, ~20 us a feed); everything it reads still goes to it."""
    parts = ["127", "0", "1", "255", "256", "0x7f", "0177", "08", "a", "example", "xn--d1acufc", "1e3", "0x", ""]
    hosts = {".".join(combo) for n in (1, 2, 3, 4) for combo in itertools.product(parts, repeat=n)}
    hosts |= {h + "." for h in list(hosts)[:2000]}
    hosts |= {"::1", "fe80::1%eth0", "::ffff:127.0.0.1", "2606:4700:4700::1111", "1.2.3.4%eth0", "fd00::", "::"}
    assert len(hosts) > 30_000
    for host in sorted(hosts):
        try:
            got = host_address(host)
        except FeedURLError:
            got = None
        assert got == _host_address_in_full(host), host


async def test_H5_fetch_of_a_file_url_returns_an_error_without_raising() -> None:
    r = await fetch_one("file:///etc/passwd")
    assert r.status is None and r.body is None and r.error is not None and "file:" in r.error


# --------------------------------------------------------------------------- SSRF (C2, H1-H3)


H1_LITERALS = [
    "http://127.0.0.1:{port}/",
    "http://[::1]:{port}/",
    "http://10.0.0.1:{port}/",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://100.64.0.1:{port}/",
    "http://0.0.0.0:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://user@127.0.0.1:{port}/",
    "http://[fd00::1]:{port}/",
    "http://224.0.0.1:{port}/",
]


@pytest.mark.parametrize("template", H1_LITERALS)
def test_H1_private_literals_are_rejected_when_a_feed_is_added(template: str) -> None:
    with pytest.raises(FeedURLError):
        check_feed_url(template.format(port=80), allow_private=False)


@pytest.mark.parametrize("name", ["http://localhost/feed", "http://feeds.localhost./rss"])
def test_H2_loopback_names_are_rejected_when_a_feed_is_added(name: str) -> None:
    with pytest.raises(FeedURLError):
        check_feed_url(name, allow_private=False)
    assert check_feed_url(name, allow_private=True)


async def test_H1_private_literals_are_refused_by_fetch_and_reach_no_server() -> None:
    async with FeedServer("127.0.0.1") as v4, FeedServer("::1") as v6:
        async with Fetcher(settings(), allow_private=False) as f:
            results = []
            for template in H1_LITERALS:
                port = v6.port if "[::" in template else v4.port
                results.append(await f.fetch(template.format(port=port)))
        assert v4.requests == [] and v6.requests == []
    for template, r in zip(H1_LITERALS, results, strict=True):
        assert r.status is None and r.error is not None, template
        assert "address" in r.error or "user name" in r.error, (template, r.error)


async def test_H1_allow_private_lets_the_same_loopback_feeds_through() -> None:
    async with FeedServer("127.0.0.1") as v4, FeedServer("::1") as v6:
        for s in (v4, v6):
            s.serve("/", FEED)
        async with Fetcher(settings(), allow_private=True) as f:
            a = await f.fetch(f"http://2130706433:{v4.port}/")
            b = await f.fetch(f"http://[::1]:{v6.port}/")
    assert a.body == FEED and b.body == FEED


async def test_H2_a_host_name_resolving_to_loopback_is_refused_at_connect(srv: FeedServer) -> None:
    srv.serve("/feed", FEED)
    r = await fetch_one(f"http://localhost:{srv.port}/feed", allow_private=False)
    assert srv.requests == []
    assert r.error is not None and "refused to connect to 127.0.0.1 (loopback address)" in r.error


def only(allowed: str) -> AddressCheck:
    def check(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return ip == ipaddress.ip_address(allowed)

    return check


async def test_H4_dns_rebinding_a_name_answered_public_then_loopback_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A hostile name server answers rebind.test with a "public" address (here 127.0.0.2, which the
    # injected check allows), TTL 0, then with 127.0.0.1 (private). aiohttp's default resolver asks
    # the system's getaddrinfo, which is where the answers are scripted; the internet's DNS is the
    # one part that cannot run here. Each poll opens its own session, so each asks again.
    import aiohttp.resolver

    assert aiohttp.resolver.DefaultResolver is aiohttp.resolver.ThreadedResolver, "the DNS script below is not asked"
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1"])
    asked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(address := next(answers))
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = free_port()  # the same port on both addresses
    async with FeedServer("127.0.0.2", port=port) as public, FeedServer("127.0.0.1", port=port) as private:
        public.serve("/feed", FEED)
        private.serve("/feed", b"<rss>the private server's answer</rss>")
        url = f"http://rebind.test:{port}/feed"
        results = []
        for _ in range(2):  # two polls
            async with Fetcher(settings(), allow_private=False, is_allowed_address=only("127.0.0.2")) as f:
                results.append(await f.fetch(url))
    first, second = results
    assert asked == ["127.0.0.2", "127.0.0.1"]
    assert first.body == FEED and len(public.requests) == 1
    assert private.requests == [], "the rebound name reached the private server"
    assert second.body is None and second.error is not None
    assert "refused to connect to 127.0.0.1 (loopback address)" in second.error, second.error


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost"])
async def test_H3_a_redirect_from_an_allowed_origin_to_a_private_one_is_refused(target_host: str) -> None:
    async with FeedServer("127.0.0.2") as public, FeedServer("127.0.0.1") as private:
        private.serve("/feed", FEED)
        public.serve("/ok", FEED)
        start = public.redirect("/feed", f"http://{target_host}:{private.port}/feed", 302)
        async with Fetcher(settings(), allow_private=False, is_allowed_address=only("127.0.0.2")) as f:
            control = await f.fetch(public.url("/ok"))
            r = await f.fetch(start)
        assert control.body == FEED  # the guard lets the "public" origin through
        assert private.requests == [] and public.paths() == ["/ok", "/feed"]
    assert r.body is None and r.error is not None and "127.0.0.1" in r.error


@pytest.mark.parametrize(
    "address",
    [
        *("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"),
        *("0.1.2.3", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1"),
        *("::", "::1", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "2001:db8::1"),
        *("::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"),
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))
