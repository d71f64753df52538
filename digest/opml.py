"""OPML, the format feed readers exchange subscription lists in. Pure: text in, FeedSpecs out.

Outlines nested under a category outline (or carrying a `category` attribute) put their feeds in
that section, so a reader's folders become the email's sections. Parsed with the standard
library's expat, which (>= 2.4) refuses entity-expansion bombs and never fetches external DTDs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from datetime import datetime
from email.utils import format_datetime

from digest.errors import FeedError
from digest.model import FeedSpec
from digest.sanitize import clean_text


def parse_opml(text: str | bytes, *, source: str = "OPML") -> list[tuple[FeedSpec, str | None]]:
    """(feed, section from its folder or category) for every outline with an xmlUrl."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FeedError(
            f"{source} is not valid OPML: {exc}.", hint="Export the subscription list again from your feed reader."
        ) from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise FeedError(f"{source} is not OPML (no <opml><body>).", hint="Pass the .opml file your reader exported.")
    found: list[tuple[FeedSpec, str | None]] = []
    # Depth first, in document order, with a stack of its own: folders nested thousands deep (a
    # hostile file) would exhaust Python's recursion limit.
    pending: list[tuple[Iterator[ET.Element], str | None]] = [(iter(body.findall("outline")), None)]
    while pending:
        outlines, folder = pending[-1]
        outline = next(outlines, None)
        if outline is None:
            pending.pop()
            continue
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        # One line: an exported title may carry a tab, a line break or a C1 control (as &#9;, &#10;,
        # &#150;), which no name in the store, the config or an email header may hold.
        label = clean_text(outline.get("title") or outline.get("text") or "") or None
        if url:
            category = (outline.get("category") or "").split(",")[0].strip().strip("/") or None
            found.append((FeedSpec(url=url, name=label), folder or category))
        else:
            pending.append((iter(outline.findall("outline")), label or folder))
    return found


def to_opml(feeds: Sequence[tuple[str, str | None, str | None]], *, title: str, now: datetime) -> str:
    """(url, name, section) -> OPML 2.0, one folder per section."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ET.SubElement(root, "body")
    folders: dict[str | None, ET.Element] = {None: body}
    for url, name, section in feeds:
        if section not in folders:
            folders[section] = ET.SubElement(body, "outline", text=section or "", title=section or "")
        ET.SubElement(folders[section], "outline", type="rss", text=name or url, title=name or url, xmlUrl=url)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
