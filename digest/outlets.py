"""Who wrote an item that an aggregator's feed carries. Pure.

Yandex News and Google News feeds carry many outlets' reports, each link naming the article it
stands for (`https://news.yandex.ru/yandsearch?cl4url=ria.ru%2F...`, `https://news.google.com/
news/url?...&url=https://www.reuters.com/...`). The site that link names wrote the item: a press
review cites it ("ria.ru reports: ..."), and two of them on one event are two outlets telling it,
not one outlet's series (`digest.cluster`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

_FORWARDS = ("cl4url", "url", "u")  # query parameters an aggregator's link names the article in


def linked_site(url: str | None) -> str | None:
    """The site (host without "www.") of the article an aggregator's link stands for, or None for
    any other link: a publisher's own, one back to its own site, a bare host, a value that is no
    address."""
    if not url or "?" not in url:
        return None
    parts = urlsplit(url)
    for name, value in parse_qsl(parts.query):
        if name in _FORWARDS and value:
            target = urlsplit(value if "://" in value else "http://" + value)
            host = (target.hostname or "").removeprefix("www.")
            if "." in host and target.path not in ("", "/") and host != (parts.hostname or "").removeprefix("www."):
                return host
    return None
