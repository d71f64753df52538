"""Feed bytes in, normalised ParsedFeed out: the parse stage.

This module owns turning one HTTP body into plain model objects: item identity, dates, URLs,
titles and sanitised summaries (the body's bytes are checked and mended by digest.feedbody first).
It does no I/O and reads no clock (``now`` is a parameter), and it must never hand feedparser
anything but bytes in a BytesIO: a str is fetched as a URL or opened as a file path
(reliability.md finding 1).

It is not safe to run on the event loop or in a thread: feedparser has a quadratic regex in its
author parsing (feedparser#562). The daemon calls it through digest.parsepool, which runs it in a
worker process under a CPU-time limit (D1).
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import hashlib
import html as htmllib
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import feedparser

from digest import dates, summary_boilerplate
from digest.errors import ParseError
from digest.feedbody import (
    HARMLESS_BOZO,
    MAX_ENTITY_EXPANSION,
    bozo_text,
    entity_expansion,
    looks_like_html,
    not_a_feed,
    readable_declaration,
    response_headers,
    valid_char_refs,
    valid_char_refs_in,
)
from digest.model import ParsedFeed, ParsedItem
from digest.outlets import domain, linked_article, linked_site, outlet_name, read_on, site
from digest.sanitize import (
    clean_text,
    clean_url,
    excerpt,
    html_to_text,
    only_a_byline,
    redirect_target,
    repair_mojibake,
    sanitize_html,
)
from digest.words import declared_language

__all__ = ["parse_feed"]

TITLE_CHARS = 300  # D6
AUTHOR_CHARS = 200
CATEGORY_CHARS = 100
MAX_CATEGORIES = 30
MAX_ITEMS = 1000  # D6: items taken from one body; the rest are ignored, newest feeds list first
SUMMARY_SOURCE_CHARS = 200_000  # D6: HTML fed to the sanitizer per item; nh3 closes a cut tag
TEXT_SOURCE_CHARS = 20_000  # of a title or author's markup: far more than TITLE_CHARS of text
# A guid (or link) longer than this in UTF-8 is replaced by its hash, so keys fit an index: a
# PostgreSQL B-tree entry holds 2,704 bytes, and 1,000 characters of CJK or emoji are 3,000-4,000.
KEY_BYTES = 1000
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # D5: older dates are placeholders (1970, 0001)
# D5: a date further ahead than this is wrong, not early: the item is dated when first seen instead
# (a day of slack let an item dated 23 h ahead sit at the top of the edition with a future time).
# A few minutes allow for a publisher's clock running a little fast.
FUTURE_SLACK = timedelta(minutes=5)

# feedparser 6.0.x prefers libxml2's SAX driver when installed; it is not hardened like expat
# (D2), so make sure only expat is ever picked.
feedparser.api.PREFERRED_XML_PARSERS = []
# feedparser resolves an RSS <guid> against the feed URL as if it were a link ("item-42" becomes
# "https://host/item-42"), so the key would change whenever the feed moves (D4: identity churn).
# Keep ids exactly as published; links are still resolved.
feedparser.mixin._FeedParserMixin.can_be_relative_uri = feedparser.mixin._FeedParserMixin.can_be_relative_uri - {"id"}


# feedparser reads <media:description> (the caption of an item's photo or video) as the item's own
# description (feedparser#53): written before <description>, it takes the summary and the real
# description is moved to content, where the longer of the two won. The New York Times' homepage
# feed does this for most items, so an item's excerpt was its photo's caption ("A job fair in
# Brighton, Colo., on Dec. 14."). It is kept apart here, and taken only for an item that has no
# text of its own (a YouTube video, whose description is in <media:group>).
def _start_media_description(self: Any, attrs_d: Mapping[str, str]) -> None:
    self.push("media_description", 1)


def _end_media_description(self: Any) -> None:
    value = self.pop("media_description")
    if value and value.strip() and (self.inentry or self.insource):
        self._get_context().setdefault("media_description", value)


feedparser.namespaces.mediarss.Namespace._start_media_description = _start_media_description
feedparser.namespaces.mediarss.Namespace._end_media_description = _end_media_description

# RFC 822 dates with the site's own day and month names ("Seg, 24 Set 2018 19:22:00 -0300", UOL),
# which feedparser cannot read: without them an item is undated, shown as new on every edition.
feedparser.registerDateHandler(dates.localized_rfc822)


# --------------------------------------------------------------------------- fields


def _text_of(value: str | None, detail: Mapping[str, Any] | None) -> str:
    """Plain text of a feed text construct, whatever type it claims."""
    if not value:
        return ""
    value = repair_mojibake(value[:TEXT_SOURCE_CHARS])
    if (detail or {}).get("type") == "text/plain":
        return clean_text(value)  # Atom type="text": already plain, a '<' in it is a character
    return html_to_text(value)


def _published(entry: Mapping[str, Any], now: datetime) -> datetime | None:
    """D5: aware UTC from the entry's date; None when it is absent or not believable."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            break
    else:
        return None
    try:
        # feedparser's struct_time is already UTC; timegm also folds a leap second (:60) forward.
        when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None
    if when < EARLIEST or when > now + FUTURE_SLACK:
        return None
    return when


def _summary_html(entry: Mapping[str, Any], feed_url: str) -> str:
    """Sanitised HTML of the fullest body the entry has: content, else summary/description."""
    candidates: list[Mapping[str, Any]] = list(entry.get("content") or ())
    detail = entry.get("summary_detail")
    if detail:
        candidates.append(detail)
    if not any(c.get("value") for c in candidates) and entry.get("media_description"):
        # Nothing of its own but a photo's or a video's description (see _end_media_description).
        candidates.append({"type": "text/plain", "value": entry["media_description"]})
    best: Mapping[str, Any] | None = None
    for c in candidates:
        if c.get("value") and (best is None or len(c["value"]) > len(best["value"])):
            best = c
    if best is None:
        return ""
    value: str = repair_mojibake(best["value"][:SUMMARY_SOURCE_CHARS])
    if best.get("type") == "text/plain":
        # E2: feedparser leaves text/plain as is; it is text, so escape it rather than parse it.
        value = htmllib.escape(value).replace("\n\n", "<br><br>")
    else:  # HTML, whose references are read as characters: a surrogate pair's as the one it encodes
        value = valid_char_refs(value)
    # The element's xml:base, itself relative to the feed's URL when the document gave a path; one
    # that is no address ("http://[bad/") resolves nothing, and the summary keeps the feed's URL as base.
    base = feed_url
    if best.get("base"):
        with contextlib.suppress(ValueError):
            base = urljoin(feed_url, best["base"])
    return sanitize_html(value, base_url=base)


def _categories(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """RSS category, Atom category (label, else term) and dc:subject, in order, once each."""
    seen: set[str] = set()
    out: list[str] = []
    for tag in entry.get("tags") or ():
        name = clean_text(tag.get("label") or tag.get("term") or "", limit=CATEGORY_CHARS)
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
            if len(out) >= MAX_CATEGORIES:
                break
    return tuple(out)


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


def _image_candidates(entry: Mapping[str, Any]) -> Iterable[str]:
    for media in entry.get("media_content") or ():
        kind = (media.get("type") or "").lower()
        medium = (media.get("medium") or "").lower()
        url = media.get("url") or ""
        if (
            medium == "image"
            or kind.startswith("image/")
            or (not kind and not medium and url.lower().split("?")[0].endswith(_IMAGE_SUFFIXES))
        ):
            yield url
    for thumb in entry.get("media_thumbnail") or ():
        yield thumb.get("url") or ""
    for enclosure in entry.get("enclosures") or ():
        if (enclosure.get("type") or "").lower().startswith("image/"):
            yield enclosure.get("href") or enclosure.get("url") or ""


_ABSOLUTE = re.compile(r"\s*https?://", re.IGNORECASE)
_BARE_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)  # a summary that is a link alone


def _item_url(entry: Mapping[str, Any], base: str) -> str | None:
    """The entry's page: its link, else another alternate link, else its enclosure (podcasts)."""
    link = entry.get("link")
    if entry.get("guidislink") and not _ABSOLUTE.match(link or ""):
        link = None  # an RSS guid taken for a permalink that is no URL ("item-42", "tag:...")
    candidates = [link]
    links = entry.get("links") or ()
    candidates += [link.get("href") for link in links if link.get("rel", "alternate") == "alternate"]
    candidates += [link.get("href") for link in links if link.get("rel") == "enclosure"]
    for candidate in candidates:
        url = clean_url(candidate, base_url=base)
        if url:
            return url
    return None


def _image_url(entry: Mapping[str, Any], base: str) -> str | None:
    for candidate in _image_candidates(entry):
        url = clean_url(candidate, base_url=base)
        if url:
            return url
    return None


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _content_hash(title: str, summary_html: str, url: str | None, outlet: str | None) -> str:
    # The outlet only where there is one: other items' hashes stay as they were before outlets.
    return _sha256(title, summary_html, url or "", *([outlet] if outlet else []))


def _fits_key(text: str) -> bool:
    return len(text) <= KEY_BYTES // 4 or len(text.encode("utf-8", "surrogatepass")) <= KEY_BYTES


def _key(guid: str | None, url: str | None, title: str, entry: Mapping[str, Any], summary: str) -> str:
    """D4: guid (Atom id), else canonical link, else a hash of title and date."""
    if guid:
        return guid if _fits_key(guid) else "sha256:" + _sha256("guid", guid)
    if url:
        return url if _fits_key(url) else "sha256:" + _sha256("url", url)
    date = str(entry.get("published") or entry.get("updated") or "")
    # With neither title nor date, the body is all that tells two items apart.
    return "sha256:" + _sha256("item", title, date, "" if (title or date) else summary)


def _outlet(entry: Mapping[str, Any], own: frozenset[str]) -> str | None:
    """The outlet an aggregator's feed names for the item: RSS `<source url="...">Reuters</source>`
    (Google News), Atom `<source><title>` (a planet of blogs); None when there is none, or it is the
    feed itself (NASA's items cite NASA's feed), by its host or its title."""
    source = entry.get("source")
    if not isinstance(source, Mapping):
        return None
    name = clean_text(str(source.get("title") or ""), limit=AUTHOR_CHARS)
    if not name or name.casefold() in own:
        return None
    host = site(str(source.get("href") or source.get("link") or ""))
    return None if host and host in own else name


def _item(
    entry: Mapping[str, Any],
    *,
    feed_url: str,
    now: datetime,
    excerpt_chars: int,
    own: frozenset[str] = frozenset(),
) -> ParsedItem | None:
    title = clean_text(_text_of(entry.get("title"), entry.get("title_detail")), limit=TITLE_CHARS)
    url = _item_url(entry, feed_url)
    whole_summary = _summary_html(entry, feed_url)
    publication = read_on(whole_summary, url)  # before its closing link goes
    summary_html = summary_boilerplate.without_read_more(whole_summary, url)
    summary_html = summary_boilerplate.without_read_more_text(summary_boilerplate.without_tag_list(summary_html))
    summary_html = summary_boilerplate.without_closing_calls(summary_html)
    if only_a_byline(summary_html):
        summary_html = ""  # no summary at all: the title and the link say what the item is
    summary_text = excerpt(summary_html, excerpt_chars)
    if (
        summary_html
        and (not any(map(str.isalnum, summary_text)) or _BARE_URL.fullmatch(summary_text))
        and "<img" not in summary_html
    ):
        # Not a word or a figure: "<p>…</p>", the excerpt a blog gives a post that opens with its
        # "more" break (Andreessen Horowitz); or a link alone, as CNN describes a few items
        # ("https://cnn.it/2JQYFqd"). As an excerpt either told the reader nothing.
        summary_html = summary_text = ""
    if not (title or summary_html or url):
        return None
    guid = clean_text(str(entry.get("id") or "")) or None
    author = clean_text(_text_of(entry.get("author"), entry.get("author_detail")), limit=AUTHOR_CHARS) or None
    key = _key(guid, url, title, entry, summary_html)  # as before outlets: an item keeps its identity
    # A redirector's wrapper around the article's own address (Folha's ".../rss091/*https://..."):
    # the article itself, so that a direct copy of the item in the same feed is known as the same.
    url = redirect_target(url) or url
    outlet = _outlet(entry, own) or (publication if publication and publication.casefold() not in own else None)
    article = clean_url(linked_article(url), base_url=None)
    if article is not None:  # an aggregator's redirect: link the article itself, cite its site
        outlet = outlet or linked_site(url)
        url = article
    if outlet:  # Google News ends each title with its outlet's name: the edition names it apart
        for separator in (" - ", " – ", " — ", " | "):
            if title.endswith(separator + outlet) and len(title) > len(separator + outlet):
                title = title[: -len(separator + outlet)].rstrip()
                break
    return ParsedItem(
        key=key,
        title=title,
        url=url,
        summary_html=summary_html,
        summary_text=summary_text,
        published=_published(entry, now),
        categories=_categories(entry),
        author=author,
        image_url=_image_url(entry, feed_url),
        guid=guid,
        content_hash=_content_hash(title, summary_html, url, outlet),
        outlet=outlet,
    )


def _ends_of(html: str, *, links: bool = False) -> str:
    """The text of a summary's opening and closing, where boilerplate is: a whole article's middle
    costs time and holds none. With `links`, each link is one blank (`summary_boilerplate.learn_links`)."""
    if len(html) > 2 * _ENDS:
        html = html[:_ENDS] + " \x01 " + html[-_ENDS:]  # a cut tag there is text far from either end
    return summary_boilerplate.links_as_blanks(html) if links else summary_boilerplate.text_of(html)


_ENDS = 2000  # characters of HTML at either end: well over the longest run learned (40 words)


_SHARED_CHARS = 4000  # summaries longer than this are never one text many items share


def _without_boilerplate(items: list[ParsedItem], excerpt_chars: int, feed_url: str) -> list[ParsedItem]:
    """The items with the feed's summary boilerplate removed (digest.summary_boilerplate), learned
    across this document's items. Keys stay as the summaries first gave them: an item is the same
    item whether or not its boilerplate was learned."""
    # Only short summaries are read whole: a blurb or a link, not an article (each item of each poll).
    texts = [summary_boilerplate.text_of(i.summary_html) if len(i.summary_html) < _SHARED_CHARS else "" for i in items]
    shared = summary_boilerplate.shared_whole(texts)
    prefix, suffix = summary_boilerplate.learn([(_ends_of(i.summary_html), i.title) for i in items if i.summary_html])
    if not suffix:
        suffix = summary_boilerplate.learn_links(
            [_ends_of(i.summary_html, links=True) for i in items if i.summary_html]
        )
    closing = summary_boilerplate.learn_closing(texts)
    if not (prefix or suffix or shared or closing):
        return items
    out = []
    for item, text in zip(items, texts, strict=True):
        if shared is not None and text == shared:
            html = ""  # what many items' summaries are, whole, says nothing of this one
        else:
            # A closing block is looked for only in the summaries it was learned from (an article's
            # text is not read whole: `_SHARED_CHARS`).
            html = summary_boilerplate.strip(item.summary_html, item.title, prefix, suffix, closing if text else ())
        if html != item.summary_html:
            html = summary_boilerplate.tidy(sanitize_html(html, base_url=feed_url)) if html else ""
            item = _with_summary(item, html, excerpt_chars)
        out.append(item)
    return out


def _with_summary(item: ParsedItem, html: str, excerpt_chars: int) -> ParsedItem:
    """`item` with another summary: its text and content hash follow; its key stays."""
    return dataclasses.replace(
        item,
        summary_html=html,
        summary_text=excerpt(html, excerpt_chars),
        content_hash=_content_hash(item.title, html, item.url, item.outlet),
    )


# A text that ends as a sentence, a quotation, a list or an aside does; anything else is open. Not
# `sanitize`'s sentence end, which takes a comma for one: a publisher's cut may fall after a comma.
_CLOSED_END = re.compile(r"""[.!?…:;"'»”“’)\]。！？؟।]\s*$""")
_CUT_SLACK = 3  # characters a publisher's cut may fall short of its length (entities read as one)
# A publisher's own cut mark glued to the word it cut ("no centro da cidad..."): a text that ends so
# is at the cut when the feed's summaries share its length, though "..." reads as a closed end.
_CUT_MARK = re.compile(r"[^\W\d_](?:\.\.\.|…)\s*$")
# Publishers cut descriptions at a paragraph's length (PCMag at 100, Giant Bomb at 255); a feed of
# short summaries ("ronin-exploits 0.1.1 Released") has its longest length shared by chance.
_MIN_CUT = 80
# The last word of a summary's text and the tags that close after it.
_LAST_WORD = re.compile(r"\s+[^\s<>]+((?:\s*</[a-zA-Z0-9]+>)*)\s*$")


def _publisher_cuts(items: list[ParsedItem], excerpt_chars: int) -> list[ParsedItem]:
    """The items with their publisher's cut marked: a feed that cuts its descriptions shows a word's
    first letters, or a sentence's first words, as the end of the story's excerpt. A cut summary
    ends at its last whole sentence when it has one, else at its last whole word and "…"
    (`_before_cut`). Read on the stored excerpts: a cut longer than `excerpt_chars` is never shown
    (the excerpt is cut first, and says so), and a whole summary is left as it is.

    Three cuts are told apart:

    * By characters, learned from repetition across this document: `summary_boilerplate.MIN_ITEMS`
      open summaries (no closing stop) at the feed's longest length (Giant Bomb's podcast at 255
      characters: "... and, of course, w"). The cut word goes. A feed may mark such a cut itself,
      glued to the cut word (Massa News: 163 characters, then "...", "no centro da cidad..."):
      such an ending is a cut too when at least half of the feed's summaries are at that one length.
    * By words, learned the same way: as many open summaries of one number of words, half of the
      feed's summaries at least (El pensante's WordPress excerpts of 28 words, with no mark: "... y
      de las cuales tenemos mejor"). Its words are whole.
    * Marked by the publisher with three full stops, in any feed, at any length (UOL's "O termo de
      renovaç..."): digest's own cut writes "…", so "..." ending a summary is the publisher's. Its
      words are whole ("Melvyn Bragg and guests discuss the man who, according to Machiavelli...",
      The Japan Times' "... after Trump ..."), but in a feed whose marks are glued to some words
      and spaced from others: there the count was of characters, a space before the mark is
      where the cut fell by chance, and a word glued to it goes (UOL's "perseguiç...", and its
      "a Estamparia ...").
    A feed that cuts at a word's end and adds "…" (WordPress's excerpts, 55 words) keeps its words.
    """
    texts = [i.summary_text for i in items]
    longest = max(map(len, texts), default=0)
    at_length = [bool(t) and len(t) >= longest - _CUT_SLACK for t in texts]
    marked = 2 * sum(at_length) >= sum(map(bool, texts))  # most summaries at one length: a cut by characters
    cut = [
        at and (not _CLOSED_END.search(t) or (marked and _CUT_MARK.search(t) is not None))
        for at, t in zip(at_length, texts, strict=True)
    ]
    kinds: list[str | None]
    if longest >= _MIN_CUT and sum(cut) >= summary_boilerplate.MIN_ITEMS:
        kinds = ["characters" if at_cut else None for at_cut in cut]
    else:
        kinds = _cut_by_words(texts)
    dotted = [kind is None and i.summary_text.endswith("...") for i, kind in zip(items, kinds, strict=True)]
    marks = [_TRAILING_DOTS.search(i.summary_html) for i, d in zip(items, dotted, strict=True) if d]
    spaces = {bool(m.group(1)) for m in marks if m is not None}
    out = []
    for item, kind, dots in zip(items, kinds, dotted, strict=True):
        if dots:
            kind = "characters" if len(spaces) == 2 else "words"  # glued and spaced marks: characters counted
        html = _cut_summary(item.summary_html, kind) if kind else None
        if html is not None:
            item = _with_summary(item, html, excerpt_chars)
        out.append(item)
    return out


_MIN_CUT_WORDS = 12  # a feed of short open summaries ("ferry-times 0.1.1 Released") shares a count by chance


def _cut_by_words(texts: list[str]) -> list[str | None]:
    """Each summary's cut: "words" where it is open at the number of words that most of the feed's
    open summaries have (`_publisher_cuts`), else None."""
    counts = [len(t.split()) if t and not _CLOSED_END.search(t) else 0 for t in texts]
    common = max(set(counts) - {0}, key=counts.count, default=0)
    shared = counts.count(common)
    if common < _MIN_CUT_WORDS or shared < summary_boilerplate.MIN_ITEMS or 2 * shared < sum(map(bool, texts)):
        return [None] * len(texts)
    return ["words" if n == common else None for n in counts]


# The publisher's "..." at a summary's end, the space before it, and the tags that close after it. A
# no-break space before it is the text's own ("come a&nbsp;...", RomaToday), never where a count fell.
_TRAILING_DOTS = re.compile(r"(\s*)((?:&nbsp;|&#160;|\xa0)*)\.\.\.((?:\s*</[a-zA-Z0-9]+>)*)\s*$")


def _cut_summary(html: str, kind: str) -> str | None:
    """A cut summary's HTML as `_publisher_cuts` ends it, cut by "characters" or by "words", or None
    when nothing is to change. The publisher's "..." goes; before it, a word glued to it may be cut."""
    closing = ""
    m = _TRAILING_DOTS.search(html)
    if m is not None:
        html, closing = html[: m.start()], m.group(3)
        if m.group(1) or m.group(2):  # "Estamparia ...": the cut fell after a whole word
            kind = "words"
    if kind == "characters":  # the last word may be cut: it goes
        m = _LAST_WORD.search(html)
        if m is None:
            return None
        html, closing = html[: m.start()], m.group(1) + closing
    return _before_cut(html) + closing


# A sentence's end in a summary's HTML: its stop (and a closing quote), then space (UOL writes a
# no-break space's reference: "em 2019.&nbsp;O termo") or a tag.
_SPACE = r"\s|&nbsp;|&#160;|&#[xX][aA]0;"
_STOP = re.compile(rf"""(?<=[^\s.<>;])[.!?](?:["'»”’)\]])*(?={_SPACE}|<)""")
_TAG_OR_SPACE = re.compile(rf"(?:{_SPACE}|<[^>]*>)+")
# Words whose full stop ends no sentence: titles before a name, "No." before a number, months.
_ABBREVIATIONS_TEXT = """
    mr mrs ms dr sr sra srta jr st prof hr mme mlle no nr vs gen gov sen rep
    jan feb mar apr jun jul aug sep sept oct nov dec
"""
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())


def _last_sentence_end(html: str) -> int | None:
    """Where the last whole sentence of a summary's HTML ends (after its stop and closing quote),
    when another sentence begins after it: a capital, a figure or an opening quote follows. A stop
    after an initial ("J. R. Tolkien"), an abbreviation with stops ("U.S.") or a title ("Dr.")
    ends none."""
    for m in reversed(list(_STOP.finditer(html))):
        word = re.split(r"[\s>;]", html[: m.start()])[-1]
        if len(word) <= 1 or "." in word or word.casefold().lstrip("(«“\"'") in _ABBREVIATIONS:
            continue
        gap = _TAG_OR_SPACE.match(html, m.end())
        after = html[gap.end() if gap else m.end() :][:2]
        # Not a figure: "Jan. 30", "p. 3", "ca. 200" are more often an abbreviation's than a sentence's.
        if after and (after[0].isupper() or (after[0] in "«“\"'¿¡(" and after[1:].isupper())):
            return m.end()
    return None


def _before_cut(html: str) -> str:
    """A cut summary's HTML (its cut word already gone) ended at its last whole sentence when it has
    one ("... terá continuidade em 2019.", not "... em 2019. O termo de…"), else with "…". Not at a
    sentence that keeps less than a third of it: Giant Bomb's "Games are approaching!" said less of
    its episode than the 250 characters after it, cut."""
    html = html.rstrip(" ,;:-–—")
    if html.endswith((".", "!", "?", "…")) and not html.endswith(".."):
        return html
    end = _last_sentence_end(html)
    if end is not None and 3 * len(_TAG.sub("", html[:end])) >= len(_TAG.sub("", html)):
        return html[:end]
    return html + "…"


_TAG = re.compile(r"<[^>]*>")  # a summary's tags, which its text's length does not count (a photo's address)


def _link_aggregator(items: list[ParsedItem], own_hosts: Iterable[str]) -> list[ParsedItem]:
    """The items of a link aggregator's feed (Hacker News's front page) cited by the sites they link.

    Such a feed's items link other sites' articles (three sites at least, half of its items) and say
    nothing of their own (no summary, or one the feed's items share, which `_without_boilerplate`
    has emptied: Hacker News's "Comments"): the article's site wrote the item, as a Yandex News
    item's redirect names its site. A link blog's items link elsewhere too, but with the blogger's
    own words, which are the blog's: it is left alone, and so is an item that links its own feed's site
    (`own_hosts`: the feed's and its channel link's).
    """
    mine = {domain(host) for host in own_hosts if host}
    linked = [(i, site(i.url)) for i in items if i.url]
    elsewhere = [(i, host) for i, host in linked if host and domain(host) not in mine]
    if (
        len(linked) < summary_boilerplate.MIN_ITEMS
        or len(elsewhere) < 0.5 * len(linked)
        or len({domain(host) for _, host in elsewhere}) < 3
        or sum(1 for i in items if not i.summary_html) < 0.5 * len(items)
    ):
        return items
    cited = {id(i): host for i, host in elsewhere if i.outlet is None}
    return [
        dataclasses.replace(
            i, outlet=cited[id(i)], content_hash=_content_hash(i.title, i.summary_html, i.url, cited[id(i)])
        )
        if id(i) in cited
        else i
        for i in items
    ]


# --------------------------------------------------------------------------- entry point


def parse_feed(
    body: bytes, *, url: str, content_type: str | None, now: datetime, excerpt_chars: int = 280
) -> ParsedFeed:
    """Parse one feed body fetched from ``url`` into a ParsedFeed.

    Raises ParseError when the body is not a feed (an HTML page, binary data, an empty body) or
    is so broken that no item can be read. A feed that is malformed but still yields items is
    returned with ``warning`` set to what feedparser complained about.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("parse_feed() takes the body as bytes; never a URL, path or str")
    body = bytes(body)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not body.strip():
        raise not_a_feed(body, url, {})
    if entity_expansion(body) > MAX_ENTITY_EXPANSION:
        raise ParseError(
            f"{url}: refused: the document declares XML entities that would expand to more than "
            f"{MAX_ENTITY_EXPANSION:,} characters.",
            hint="This is how entity-expansion attacks look; remove the feed unless you trust its source.",
        )
    body = readable_declaration(valid_char_refs_in(body))
    result = feedparser.parse(
        io.BytesIO(body),
        response_headers=response_headers(body, url, content_type),
        # We sanitise with nh3 (E1) and resolve URLs ourselves from each element's xml:base,
        # which spares feedparser a second HTML parse of every body.
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries = result.get("entries") or []
    bozo = bool(result.get("bozo"))
    exc = result.get("bozo_exception")
    if not entries and (
        not result.get("version") or looks_like_html(body) or (bozo and not isinstance(exc, HARMLESS_BOZO))
    ):
        raise not_a_feed(body, url, result)

    feed = result.get("feed") or {}
    feed_title = clean_text(_text_of(feed.get("title"), feed.get("title_detail")), limit=TITLE_CHARS) or None
    # What names this feed itself: an item's <source> naming it is no other outlet, nor its publication
    # on a Medium publication's own feed ("Continue reading on Hacker Noon »" in "Hacker Noon - Medium").
    link = str(feed.get("link") or "")
    rights = clean_text(_text_of(feed.get("rights"), feed.get("rights_detail")), limit=TITLE_CHARS) or None
    named = outlet_name(feed_title, url, link or None, rights).casefold() if feed_title else ""
    hosts = (site(url), site(link))
    own = frozenset(filter(None, (*hosts, (feed_title or "").casefold(), named)))
    items: list[ParsedItem] = []
    keys: set[str] = set()
    at: dict[tuple[str, str], int] = {}  # where each (link, title) was taken
    for entry in entries[:MAX_ITEMS]:
        item = _item(entry, feed_url=url, now=now, excerpt_chars=excerpt_chars, own=own)
        if item is None or item.key in keys:  # a repeated key: the first one wins
            continue
        keys.add(item.key)
        same = (item.url or "", item.title.casefold())
        if item.url and same in at:
            # One article twice in one document under two keys (UOL's item behind Folha's redirector
            # and beside it, directly): one item, the copy that has text where the other has none.
            if item.summary_html and not items[at[same]].summary_html:
                items[at[same]] = item
            continue
        at[same] = len(items)
        items.append(item)
    items = _link_aggregator(_publisher_cuts(_without_boilerplate(items, excerpt_chars, url), excerpt_chars), hosts)

    return ParsedFeed(
        title=feed_title,
        link=clean_url(feed.get("link"), base_url=url),
        items=tuple(items),
        warning=bozo_text(exc) if bozo else None,
        rights=rights,
        # RSS <language> and dc:language; Atom's xml:lang, which feedparser gives its title's details.
        language=declared_language(feed.get("language") or (feed.get("title_detail") or {}).get("language")),
    )
