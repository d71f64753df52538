"""A per-key sliding-window limit (the sign-up form's per-client limit), and the key a client is
counted under. Pure: times and addresses are arguments.

In memory, per process: it slows a script hammering one web app down; the store's per-address
window and global hourly cap are what bound the mail that goes out.
"""

from __future__ import annotations

import ipaddress
from collections import deque

__all__ = ["SlidingWindow", "client_key"]

# One IPv6 client is a /64: a home line, a phone or a rented server is routed a whole /64 (RFC
# 6177), and can post from 2**64 addresses in it, each a client of its own if counted whole.
IPV6_CLIENT_PREFIX = 64
_LOOPBACK = ("127.0.0.1", "::1")


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address((text or "").strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d
    return ip


def client_key(peer: str | None, forwarded_for: str | None) -> str:
    """The key a client's posts are counted under: its address, or for IPv6 its /64.

    The peer, or, when the peer is a proxy on this host, the last `X-Forwarded-For` address (the
    one the proxy appended). A last entry that is no address was not written by a proxy (one that
    passes its client's header on unchanged): it is the client's own word and is not believed, nor
    kept (a header of kilobytes, new on every post, would each be a key held in memory).
    """
    ip = _address(peer)
    if ip is not None and str(ip) in _LOOPBACK and forwarded_for:
        ip = _address(forwarded_for.split(",")[-1]) or ip
    if ip is None:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


class SlidingWindow:
    def __init__(self, limit: int, seconds: float, *, max_keys: int = 100_000) -> None:
        self.limit, self.seconds, self.max_keys = limit, seconds, max_keys
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Count one attempt by `key` at `now` (seconds); False when it is over the limit."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget(now)
            hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _forget(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.seconds]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full of live keys: start over rather than grow
            self._hits.clear()
