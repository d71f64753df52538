"""Which hosts a feed may be fetched from, judged on a URL's text alone: no DNS, no network.

The address ranges a feed must not reach unless [digest] allow_private_addresses is true
(loopback, private, link-local...), the legacy spellings of an IPv4 literal, and the loopback
names. digest.fetch applies them to every URL and, after DNS, to every address it connects to;
digest.config to the feeds of the config file, so `digest check-config` refuses what `digest
feeds add` refuses. Imports nothing heavy: config imports it without aiohttp.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

from digest.errors import FeedURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges C2 names, listed explicitly because ipaddress.is_global changed between Python releases.
_BLOCKED: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_BLOCKED_NETS: Final = tuple((ipaddress.ip_network(net), why) for net, why in _BLOCKED)
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), which is where packets go."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Why a feed fetch must not connect to `ip` (e.g. "loopback"), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.__class__(ip.compressed.split("%")[0])  # drop a zone id
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = non_public_reason(inner)
            return f"{why}, inside IPv6 {ip}" if why else None
    for net, why in _BLOCKED_NETS:
        if ip.version == net.version and ip in net:
            return why
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not globally routable"
    return None


def is_public_address(ip: IPAddress) -> bool:
    return non_public_reason(ip) is None


_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def host_address(host: str) -> IPAddress | None:
    """The address an IP-literal host names, including the legacy forms browsers and inet_aton
    accept (2130706433, 0177.0.0.1, 127.1, 0x7f.1): the WHATWG URL rule is that a host whose
    last label is a number is an IPv4 address."""
    numeric = _NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1])
    # Only a host ending in a number, or with a ":" or "%", can be an address ip_address() reads:
    # asking it about a name fails twice (IPv4, IPv6), ~20 us a feed when all feeds have names.
    if numeric or ":" in host or "%" in host:
        try:
            return ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            pass
    if numeric:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError as exc:
            raise FeedURLError(f"{host!r} is neither a host name nor a valid IPv4 address.") from exc
    return None


def is_loopback_name(host: str) -> bool:
    """RFC 6761 section 6.3: "localhost" and the names under it are loopback whatever DNS says."""
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost")


def refusal(host: str) -> str | None:
    """Why a feed on `host` is refused while private addresses are not allowed ("127.0.0.1, a
    loopback address"), or None for a name (only DNS could tell) or a public address. Raises
    FeedURLError for a numeric host that is no IPv4 address."""
    if is_loopback_name(host):
        return f"{host}, a loopback name"
    ip = host_address(host)
    if ip is None:
        return None
    why = non_public_reason(ip)
    return f"{ip}, a {why} address" if why else None
