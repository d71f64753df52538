"""Feed autodiscovery: the feed an HTML page names in its head. Pure: bytes and the page's URL in,
an absolute URL out.

A site's pages name their feed with `<link rel="alternate" type="application/rss+xml" href="...">`
(or `application/atom+xml`; the RSS Advisory Board's autodiscovery spec, and every reader's "add
this site"). When an operator gives a page's address as a feed's, that link is the next step to
tell them.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

FEED_TYPES = ("application/rss+xml", "application/atom+xml")
_HEAD_BYTES = 262_144  # a page names its feed in its head: no need to read a whole large page


class _FeedLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {name.lower(): (value or "") for name, value in attrs}
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").split(";")[0].strip().lower()
        href = values.get("href", "").strip()
        if "alternate" in rels and kind in FEED_TYPES and href:
            self.found.append(href)

    handle_startendtag = handle_starttag


def feed_link(page: bytes, url: str) -> str | None:
    """The first feed the page names, as an absolute http(s) URL (resolved against `url`), or None.

    Never `url` itself: a page served at the feed's own address that names that address (a
    publisher's landing or error page) gives no next step, and "use <the same URL>" would mislead."""
    reader = _FeedLinks()
    try:
        # The attributes that matter are ASCII in any of the encodings a page may declare.
        reader.feed(page[:_HEAD_BYTES].decode("utf-8", "replace"))
        reader.close()
    except Exception:  # html.parser is lenient; a page it cannot read simply names no feed
        return None
    for href in reader.found:
        try:
            absolute = urljoin(url, href)
        except ValueError:  # an href that is no URL ("http://[...") names nothing
            continue
        if absolute.lower().startswith(("http://", "https://")) and absolute.isprintable() and absolute != url:
            return absolute
    return None
