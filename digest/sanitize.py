"""Pure helpers that make feed-supplied text safe for the three places it reaches.

Feed text ends up in HTML (item bodies), in plain text (excerpts) and in email headers (subjects,
display names); each needs its own treatment (reliability.md finding 7, E1-E5):

* ``sanitize_html``  allow-list sanitising with nh3 (ammonia) for an email body: no style, class
  or id, no script/style/iframe/form/base/meta/svg/math, only http(s)/mailto links, relative URLs
  resolved, tracking pixels and tracking query parameters removed.
* ``clean_url``      one absolute http(s) URL or None, tracking parameters and fragment removed.
* ``excerpt``        a plain-text excerpt of HTML cut at a word boundary.
* ``clean_text``     control characters and bidi overrides removed, whitespace collapsed.
* ``header_text``    one line that cannot inject a header (CR, LF, NUL, NEL, LS, PS become spaces).

No I/O, no clock, no state: every function is a plain transformation of its arguments.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import nh3

__all__ = [
    "clean_text",
    "clean_url",
    "drop_images",
    "excerpt",
    "header_text",
    "html_to_text",
    "only_a_byline",
    "prose_text",
    "redirect_target",
    "sanitize_html",
]

# --------------------------------------------------------------------------- policy

# E1: the email-safe allow-list. Tags outside it are removed but their text is kept, except the
# CONTENT_DROPPED ones, whose whole subtree goes (script bodies, CSS, embedded documents).
ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h2",
        "h3",
        "h4",
        "hr",
        "i",
        "img",
        "ins",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    }
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"lang", "dir"},  # replaces nh3's default generic set (lang, title); dir keeps RTL text right
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
CONTENT_DROPPED = frozenset(
    {
        "script",
        "style",
        "iframe",
        "noscript",
        "object",
        "embed",
        "applet",
        "template",
        "svg",
        "math",
        "textarea",
        "select",
        "head",
        "title",
        "frameset",
        "noembed",
        "noframes",
    }
)
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer"

# E3: query parameters that only identify the reader or the campaign. Compared in lower case;
# every ``utm_*`` parameter is removed as well.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "ysclid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "igshid",
        "mkt_tok",
        "_openstat",
        "ttclid",
        "twclid",
        "li_fat_id",
        "vero_id",
        "vero_conv",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "s_cid",
        "wickedid",
        "sc_cid",
        "ga_source",
        "ga_medium",
        "ga_term",
        "ga_content",
        "ga_campaign",
        "fb_action_ids",
        "fb_action_types",
        "fb_ref",
        "fb_source",
        "action_object_map",
        "action_type_map",
        "action_ref_map",
        "ncid",
        # Web analytics' campaign markers that newspapers' feeds put on every link: AT Internet's
        # (Le Monde's "?xtor=RSS-3208"), Webtrekk's (heise's "?wt_mc=rss.ho.beitrag.rdf"), comScore's
        # (the Daily Mail's "&ns_mchannel=rss&ns_campaign=1490"). Stored links lose them; the store
        # knows the item again at its link's path (store.feeds._moved), so nothing is sent twice.
        "xtor",
        "at_medium",
        "at_campaign",
        "wt_mc",
        "wt_zmc",
        "ns_mchannel",
        "ns_campaign",
        "ns_source",
        "ns_linkname",
        "ns_fee",
        # The New York Times' email-and-marketing campaign marker ("?partner=rss&emc=rss" on every
        # link of its feeds); "partner" is FEED_MARKERS' below.
        "emc",
    }
)
TRACKING_PREFIXES = ("utm_",)
# Parameters removed only when their value says "this link came from the feed" ("rss..."): a
# "partner" parameter can mean something to the site, but NYT's "partner=rss" only counts the feed.
FEED_MARKERS = frozenset({"partner"})

# E3: images from these hosts (or host+path prefixes) are counters or share buttons, never content
# (after Miniflux's sanitizer blockedResourceURLSubstrings).
TRACKER_IMAGE_SUBSTRINGS = (
    "feeds.feedburner.com/~r/",
    "feeds.feedburner.com/~ff/",
    "feedproxy.google.com/~r/",
    "feedsportal.com",
    "stats.wordpress.com",
    "pixel.wp.com",
    "pixel.quantserve.com",
    "google-analytics.com",
    "doubleclick.net",
    "medium.com/_/stat",
    "facebook.com/tr",
    "feeds.wordpress.com/1.0/",
    "api.flattr.com",
    "pinterest.com/pin/create",
    "twitter.com/intent/",
    "facebook.com/sharer",
    "linkedin.com/sharearticle",
    "feedblitz.com",
    "assets.feedblitz.com",
    "www.assoc-amazon.com",
    "counter.",
    "/tracking/pixel",
)

# --------------------------------------------------------------------------- nesting

# html5ever (inside nh3) is quadratic in the depth of open elements: 100,000 nested <div>s take
# half a minute (P5, Miniflux TestDeeplyNestedpage). No real article nests this deep, so opening
# tags past MAX_DEPTH are dropped before parsing, keeping their text.
MAX_DEPTH = 256
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,40})\b[^<>]*?(/?)>")
# Void elements never open a level; these close themselves (HTML "optional end tags") so a long
# list of unclosed <p> or <li> is flat, not deep.
_FLAT = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "thead",
        "tbody",
        "tfoot",
    }
)


def limit_nesting(html: str, max_depth: int = MAX_DEPTH) -> str:
    """Drop opening (and matching closing) tags nested deeper than ``max_depth``."""
    if html.count("<") <= max_depth:
        return html
    depth = 0

    def token(m: re.Match[str]) -> str:
        nonlocal depth
        closing, name, self_closing = m.groups()
        if self_closing or name.lower() in _FLAT:
            return m.group(0)
        if closing:
            depth = max(0, depth - 1)
            return m.group(0) if depth < max_depth else ""
        depth += 1
        return m.group(0) if depth <= max_depth else ""

    return _TAG_TOKEN.sub(token, html)


# --------------------------------------------------------------------------- text

# C0 and C1 controls, DEL, bidi embeddings/overrides (U+202A-202E) and isolates (U+2066-2069),
# BOM/ZWNBSP. Zero-width joiners (U+200C/200D) and LRM/RLM stay: Persian, Urdu and Indic scripts
# need them and they cannot reorder text on their own.
_REMOVED = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
# Characters some parser or mail client treats as a line break: made spaces, never deleted, so
# words on either side stay apart.
_BREAKS = re.compile("[\t\n\x0b\x0c\r\x85\u2028\u2029]")


def clean_text(text: str, *, limit: int | None = None) -> str:
    """Strip controls and bidi overrides, collapse whitespace; cap at ``limit`` characters."""
    if not text:
        return ""
    text = _REMOVED.sub("", _BREAKS.sub(" ", text))
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = _cut(text, limit)
    return text


def header_text(text: str, *, limit: int = 200) -> str:
    """One line safe for an email header (RFC 5322 2.2; CVE-2024-6923): no CR, LF, NUL, NEL, LS, PS."""
    return clean_text(text.replace("\x00", " "), limit=limit)


def _cut(text: str, limit: int) -> str:
    """Cut to at most ``limit`` characters at a word boundary, marking the cut with an ellipsis."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    # Cut at the last space unless the cut already falls between words, or unless that loses
    # more than half: CJK and Thai text have no spaces.
    if text[limit - 1] != " " and space > limit // 2:
        head = head[:space]
    # A bare address as the last word kept ("... wildly varying quality: https://youtu.be/x…") is
    # no prose, and the "…" glued to it makes a mail client's link to it a broken one: cut before it
    # too, unless that loses half of the excerpt.
    if (m := _TRAILING_URL.search(head)) and m.start() > limit // 2:
        head = head[: m.start()]
    return head.rstrip(" ,;:.-–—·") + "…"


_TRAILING_URL = re.compile(r"(?:(?<=\s)|^)(?:https?://|www\.)\S*$", re.IGNORECASE)


# Block-level ends, so that "<p>a</p><p>b</p>" reads "a b", not "ab".
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    }
)
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(_BLOCK_TAGS), attributes={}, clean_content_tags=set(CONTENT_DROPPED), link_rel=None, url_schemes=set()
)
_ANY_TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags removed, entities decoded, whitespace collapsed.

    nh3 first reduces the fragment to attribute-free block tags (so a regex can then find every
    tag: nh3 escapes any '<' in text), which also drops script and style bodies.
    """
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return clean_text(html)
    return _text_after(_TEXT_CLEANER, html)


# Where a block (a paragraph, a list item, a line) ends and the next begins, its text is joined to
# the next with a space when it ends as a sentence, a clause or a label does, or when the next goes on
# in small letters; else with BLOCK_SEPARATOR.
# Joined with a space, a standfirst's list ran into its body ("... could endanger 1,700 sites Findings
# run counter to ...": The Guardian) and a podcast's credits into its plugs; the separator shows the
# reader the break and ends a sentence for `digest.sentences`, so no quote spans two blocks.
BLOCK_SEPARATOR = " · "
_ENDS_BLOCK = re.compile(r"""[.!?…:;,·。！？；：，؟۔।\-–—][\s"'»”’)\]」』）]*$""")


def _block_joint(before: str, after: str) -> str:
    """What goes between two blocks' texts: a space after a stop, or before a small letter (a sentence
    a paragraph break cut, "... met on Tuesday" and "and agreed ..."); else `BLOCK_SEPARATOR`."""
    if _ENDS_BLOCK.search(before) is not None or after[:1].islower():
        return " "
    return BLOCK_SEPARATOR


def _joined_blocks(pieces: list[str]) -> str:
    """The texts of consecutive blocks as one line (`_block_joint`); empty ones left out."""
    out = ""
    for piece in pieces:
        text = clean_text(piece)
        if text:
            out = f"{out}{_block_joint(out, text)}{text}" if out else text
    return out


def _text_after(cleaner: nh3.Cleaner, html: str) -> str:
    """The text `cleaner` leaves of `html`: tags removed, entities decoded, whitespace collapsed, blocks
    joined as `_joined_blocks` joins them (`cleaner` keeps block tags only)."""
    cleaned = cleaner.clean(limit_nesting(html))
    if "<" not in cleaned:
        return clean_text(htmllib.unescape(cleaned))
    return _joined_blocks([htmllib.unescape(piece) for piece in _ANY_TAG.split(cleaned)])


def prose_text(html: str, *, cross_links: bool = True) -> str:
    """What an item says in its own sentences: `html_to_text` without what an excerpt leaves out
    (`EXCERPT_DROPPED`: headings, figures and their captions, tables, blockquotes, code, media) and
    without a byline or a credit in capitals that opens it ("By Joseph Flaherty", "EUROPA PRESS"),
    nor a wire report's dateline ("BRASÍLIA (Reuters) - ") or arXiv's announcement ("arXiv:<id>
    Announce Type: new Abstract:"); of a body that opens with a standfirst
    (The Guardian's), the standfirst only.

    Medium and WordPress bodies open with a figure caption and a byline, and run subheadings into
    the prose: "Image: The Verge By Joseph Flaherty Microsoft is acquiring GitHub ... in stock.
    1. From Creepers to Coders to CEOs The first coding project ...". Excerpts, the press review's
    quotes and what clustering and section rules read should be the prose. A body that is nothing
    but such parts (a summary that is one blockquote) keeps its whole text.

    With `cross_links=False`, blocks that are only a link to another article go too
    (`_without_link_blocks`): what is quoted as the outlet's words. The item's stored summary keeps
    them: clustering and section rules read it, and the headlines of a report's related articles
    are often the same story's (without them the June 2018 stories cluster worse).
    """
    if not html or ("<" not in html and "&" not in html):
        return html_to_text(_without_opening_header(html)) or html_to_text(html)
    if not cross_links:
        html = _without_link_blocks(html)
    return _prose_only(_opening_cleared(html)) or html_to_text(html)


def excerpt(html: str, limit: int) -> str:
    """Plain text of ``html``'s prose (`prose_text`), whitespace collapsed, cut at a word boundary with "…"."""
    if limit <= 0 or not html:
        return ""
    # Long bodies: only the head can reach the excerpt. 8 source characters per shown one is
    # generous for markup, and nh3 repairs whatever tag the cut splits.
    window = max(4000, limit * 8)
    if len(html) > window:
        html = html[:window]
        if html.rfind("<") > html.rfind(">"):  # do not leave half a tag to be read as text
            html = html[: html.rfind("<")]
    text = prose_text(html)
    return _cut(text, limit)


# --------------------------------------------------------------------------- URLs

# WHATWG URL: leading/trailing C0 controls and spaces are stripped, tabs and newlines inside are
# removed ("jav&#x09;ascript:" must read "javascript:").
_TAB_NEWLINE = re.compile("[\t\n\r]")
_HAS_HTTP_SCHEME = re.compile(r"https?://[^/?#\\]", re.IGNORECASE)
_C0_SPACE = "".join(chr(c) for c in range(0x21))
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _is_tracking(pair: str) -> bool:
    raw_name, _, value = pair.partition("=")
    name = unquote(raw_name).strip().lower()
    if name in FEED_MARKERS:
        return unquote(value).strip().lower().startswith("rss")
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def strip_tracking(query: str) -> str:
    """Remove tracking parameters from a query string, keeping the others byte for byte."""
    if not query:
        return ""
    pairs = query.split("&")
    kept = [p for p in pairs if p and not _is_tracking(p)]
    return "&".join(kept) if len(kept) != len(pairs) else query


def _host(hostname: str) -> str | None:
    """The host in ASCII (IDNA) form; None when it cannot be a DNS name or an IP literal."""
    if any(c in hostname for c in " <>\"'`\\{}|^"):
        return None
    if hostname.isascii():
        return hostname
    from digest.addresses import a_label_host  # only for a non-ASCII host: most feeds never import idna

    try:
        return a_label_host(hostname)
    except UnicodeError:
        return None


# An absolute URL already in the form _clean gives back: lower-case http(s) scheme and host, no
# userinfo, and nothing quote() would escape in path, query or fragment. Most links in feeds are;
# for them _clean only drops a default port, tracking parameters and the fragment, without
# urlsplit and three quote() calls (a quarter of parse time on link-heavy feeds).
_CANONICAL_URL = re.compile(
    r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9/%:@!$&'()*+,;=._~-]*)?"
    r"(?:\?([A-Za-z0-9/%:@!$&'()*+,;=._~?-]*))?"
    r"(?:#([A-Za-z0-9/%:@!$&'()*+,;=._~?#-]*))?"
)


def _clean(url: str | None, base_url: str | None, *, keep_fragment: bool, strip_params: bool) -> str | None:
    if not url:
        return None
    url = _TAB_NEWLINE.sub("", url).strip(_C0_SPACE)
    if not url:
        return None
    m = _CANONICAL_URL.fullmatch(url)
    if m is not None:
        scheme, host, port_text, path, query, fragment = m.groups()
        port = int(port_text) if port_text else None
        if port is None or port <= 65535:  # else urlsplit refuses it: the slow path says None
            if port is not None and port != (443 if scheme == "https" else 80):
                host = f"{host}:{port}"
            query = strip_tracking(query) if strip_params and query else query
            return (
                f"{scheme}://{host}{path or '/'}{'?' + query if query else ''}"
                f"{'#' + fragment if keep_fragment and fragment else ''}"
            )
    try:
        if base_url and not _HAS_HTTP_SCHEME.match(url):  # urljoin is the slow part; skip it when it is a no-op
            url = urljoin(base_url, url)
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not hostname:
        return None
    host = _host(hostname)
    if host is None:
        return None
    if ":" in host:  # an IPv6 literal goes back into brackets
        host = f"[{host}]"
    # Userinfo is dropped: "http://trusted.example@evil.example/" only serves to mislead a reader.
    default_port = 443 if scheme == "https" else 80
    netloc = host if port is None or port == default_port else f"{host}:{port}"
    path = quote(parts.path, _PATH_SAFE) or "/"
    query = quote(parts.query, _QUERY_SAFE)
    if strip_params:
        query = strip_tracking(query)
    fragment = quote(parts.fragment, _QUERY_SAFE + "#") if keep_fragment else ""
    return urlunsplit((scheme, netloc, path, query, fragment))


def clean_url(url: str | None, *, base_url: str | None = None) -> str | None:
    """An absolute http(s) URL with tracking parameters and fragment removed, or None.

    Relative URLs are resolved against ``base_url``; anything that is not http(s) afterwards
    (javascript:, data:, file:, mailto:, a bare path with no base) gives None.
    """
    return _clean(url, base_url, keep_fragment=False, strip_params=True)


# A redirector that carries the article's whole address in its path, after a "*": Folha's
# "https://redir.folha.com.br/redir/online/poder/eleicoes-2018/rss091/*https://www1.folha.uol.com.br/...",
# which UOL's feed gives beside the direct link of the same article. Only a "*" that opens a path
# segment and is followed at once by "http(s)://": the Wayback Machine's "/web/2018*/https://..."
# and "/web/*/https://..." name a list of captures, not a redirect.
_STAR_REDIRECT = re.compile(r"https?://[^/?#]+/[^?#]*?/\*(https?://[^/?#\s]+\.[^/?#\s]+/.*)", re.IGNORECASE)


def redirect_target(url: str | None) -> str | None:
    """The article a redirector's link wraps (`_STAR_REDIRECT`), cleaned as `clean_url` cleans it; None
    for any other link. An aggregator's redirect by query parameter is `outlets.linked_article`'s."""
    if not url or "*" not in url:
        return None
    m = _STAR_REDIRECT.fullmatch(url)
    return None if m is None else clean_url(m.group(1))


# --------------------------------------------------------------------------- HTML


def _attribute_filter(base_url: str | None) -> Callable[[str, str, str], str | None]:
    # nh3 applies url_schemes *before* this filter and trusts what it returns, so every URL that
    # leaves here has been through _clean (http/https only) or is a checked mailto:.
    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "href":
            if value.strip(_C0_SPACE)[:7].lower() == "mailto:":
                return value.strip(_C0_SPACE)
            return _clean(value, base_url, keep_fragment=True, strip_params=True)
        if attr == "src":
            return _clean(value, base_url, keep_fragment=False, strip_params=False)
        if attr == "dir":
            return value.lower() if value.lower() in ("ltr", "rtl", "auto") else None
        if attr in ("width", "height", "colspan", "rowspan", "start"):
            digits = value.strip().removesuffix("px").strip()
            return digits if digits.isdigit() and len(digits) <= 5 else None
        return value

    return keep


# nh3 output is canonical (attributes double-quoted, '"' and '>' escaped), so these regexes
# see every tag exactly as nh3 wrote it.
_IMG = re.compile(r"<img\b([^>]*)>")
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')
_EMPTY_LINK = re.compile(r"<a\b[^>]*>\s*</a>")


def _keep_image(attrs: str) -> bool:
    values = dict(_ATTR.findall(attrs))
    src = htmllib.unescape(values.get("src", ""))
    if not src:
        return False
    for dim in ("width", "height"):
        if dim in values and values[dim].isdigit() and int(values[dim]) <= 1:
            return False  # E3: a 0x0 or 1x1 image is a tracking pixel
    lowered = src.lower()
    return not any(s in lowered for s in TRACKER_IMAGE_SUBSTRINGS)


def _drop_pixels(html: str) -> str:
    if "<img" not in html:
        return html
    out = _IMG.sub(lambda m: m.group(0) if _keep_image(m.group(1)) else "", html)
    return _EMPTY_LINK.sub("", out) if out != html else out


def sanitize_html(html: str, *, base_url: str | None) -> str:
    """Allow-list ``html`` for an email body (E1, E3); the result is safe to insert as is.

    Relative links and image sources are resolved against ``base_url`` (dropped when there is
    none); links lose tracking parameters and get rel="noopener noreferrer"; tracking pixels and
    images from known counter hosts are removed.
    """
    if not html or not html.strip():
        return ""
    cleaned = nh3.clean(
        limit_nesting(html),
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CONTENT_DROPPED),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter(base_url),
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(URL_SCHEMES),
    )
    return _drop_pixels(cleaned).strip()


def drop_images(html: str) -> str:
    """Remove every <img> from sanitised HTML: for a no-remote-images policy (E3)."""
    if "<img" not in html:
        return html
    return _EMPTY_LINK.sub("", _IMG.sub("", html))


# UTF-8 read as windows-1252/latin-1 ("Ã©", "Ð¾", "â€™"): a lead byte's character followed by a
# continuation byte's. Publishers' CMSes double-encode more often than one would think; the cheap
# test keeps ftfy off the hot path for the vast majority of clean text.
_MOJIBAKE = re.compile(
    "[\u00c2-\u00df][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
    "\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039"
    "\u203a\u20ac\u2122]|\u00e2\u20ac"
)


# A no-break space double-encoded ("Â\xa0") at the end of a title, whose "\xa0" feedparser already
# stripped as whitespace: "killing five at Fort Lauderdale airportÂ". A capital Â straight after a
# small letter ends no word of any language.
_STRIPPED_NBSP = re.compile(r"(?<=[a-z])\u00c2$")


def repair_mojibake(text: str) -> str:
    """Undo double-encoded UTF-8 when the text clearly is (ftfy decides and is conservative)."""
    if _STRIPPED_NBSP.search(text):
        text += "\xa0"  # the space it lost, for ftfy to read the pair as the no-break space it was
    elif not _MOJIBAKE.search(text):
        return text
    import ftfy  # imported on first need: most feeds never need it

    return ftfy.fix_encoding(text)


# --------------------------------------------------------------------------- excerpts of HTML

# An excerpt keeps inline emphasis and links only. These go with all they contain: a subheading
# would read as one of the email's own headings, a table or figure does not fit a summary, a
# blockquote is most often an embedded tweet, and media are remote content.
EXCERPT_TAGS = frozenset({"a", "b", "strong", "i", "em"})
EXCERPT_DROPPED = frozenset(
    {
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "figure",
        "figcaption",
        "blockquote",
        "pre",
        "iframe",
        "video",
        "audio",
        "picture",
        "object",
        "embed",
        "noscript",
        "script",
        "style",
        "svg",
        "math",
    }
)
_BLOCK_END = re.compile(
    r"</(?:p|div|li|ul|ol|dl|dd|dt|h[1-6]|table|tr|td|th|figure|blockquote|pre|section|"
    r"article|header|footer|aside)\s*>|<br\s*/?>|<hr\s*/?>",
    re.IGNORECASE,
)
_EXCERPT_TOKEN = re.compile(r"<(/?)([a-z]+)[^>]*>|([^<]+)")
_PROSE_CLEANER = nh3.Cleaner(
    tags=set(_BLOCK_TAGS - EXCERPT_DROPPED),
    attributes={},
    clean_content_tags=set(CONTENT_DROPPED | EXCERPT_DROPPED),
    link_rel=None,
    url_schemes=set(),
)
# A byline: "By" and one to five words of a name, in the languages digest tells apart ("By the
# numbers: ..." is prose: "the" is not a name).
_BYLINE = re.compile(
    r"(?:By|Par|Von|Por|Di|Door|Av|Автор:?)\s+[A-ZÀ-ÞА-ЯЁ][\w.'’-]*"
    r"(?:\s+(?:[A-ZÀ-ÞА-ЯЁ][\w.'’-]*|de|da|di|del|della|la|le|du|dos|das|van|von|der|den|ter|bin|al|&|and|et|und|y|e|и)){0,4}"
)
_BYLINE_OPENING = re.compile(r"(?:\s|<[^>]*>)*(?:By|Par|Von|Por|Di|Door|Av|Автор)\b")  # after any opening tags
_FIRST_BLOCK = re.compile(r"<(p|div)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_CREDIT_HTML = 600  # characters of markup a byline's paragraph may take (its links and emphasis)


def _is_credit(text: str) -> bool:
    """A byline ("By Jo Fenwick"), or a credit in capitals ("EFE", "EUROPA PRESS", a photographer's
    name: 20minutos opens its summaries with the photo's), never a sentence."""
    if _BYLINE.fullmatch(text):
        return True
    # Capitals: a cased letter and no lower-case one. Chinese, Japanese, Arabic or Urdu have no case:
    # a short opening paragraph in them is prose ("刚才看到一位豆友说：..."), not a credit.
    return (
        len(text) <= 60 and len(text.split()) <= 6 and any(map(str.isupper, text)) and not any(map(str.islower, text))
    )


def only_a_byline(html: str) -> bool:
    """Whether a body says nothing but who wrote it ("Por Matt Spetalnick e Jason Szep", the whole
    description UOL gives a Reuters report): as an excerpt or a quote it tells the reader nothing, and
    to clustering its names are the reporters', not the story's."""
    # Every summary of every poll passes here: only a short body that opens with a byline's word is
    # cleaned to read it (html_to_text runs nh3).
    if len(html) > _CREDIT_HTML or not _BYLINE_OPENING.match(html):
        return False
    return _BYLINE.fullmatch(html_to_text(html)) is not None


def _without_opening_byline(html: str) -> str:
    """`html` without its first paragraph when that paragraph is a byline or a credit and no prose
    comes before it (a figure and its caption may)."""
    m = _FIRST_BLOCK.search(html)
    # A byline or a credit is a line: a longer first block is prose, and is not read twice.
    if m is None or len(m.group(2)) > _CREDIT_HTML or not _is_credit(html_to_text(m.group(2))):
        return html
    if m.start() and _prose_only(html[: m.start()]):
        return html  # prose before it: not an opening byline
    return html[: m.start()] + html[m.end() :]


# A wire report's dateline: its place, maybe a date, the agency, a dash ("BRASÍLIA (Reuters) - ",
# "MOSCOU, 24 SET (ANSA) - ", "Quito, 24 Set 2018 (AFP) - ", "Nova York, 24 set (EFE).- "), as
# aggregators (UOL) pass wire copy on. Where and who is in the item's line already; as the
# opening of an excerpt or of a press-review quote ("UOL: MOSCOU, 24 SET (ANSA) - O líder...") it
# is noise. Only known agencies: "Apple (AAPL) - " has the same shape and is a sentence.
_AGENCIES = (
    "Reuters|AP|AFP|EFE|ANSA|dpa|DPA|Xinhua|UPI|Bloomberg|PTI|IANS|ANI|Kyodo|Yonhap|Lusa|TASS|Interfax|"
    "Europa Press|Folhapress|FOLHAPRESS|Agência Brasil|Estadão Conteúdo|KNA|epd|AA|ТАСС|Интерфакс|РИА Новости"
)
_PLACE_WORD = r"(?:[A-ZÀ-ÞА-ЯЁ][\w'’.-]*|de|da|do|dos|das|del|di|la|le|el|am)"  # "Rio de Janeiro"
_DATELINE = re.compile(
    r"((?:\s|<(?!/)[^>]*>)*)"  # opening tags, kept
    rf"{_PLACE_WORD}(?: {_PLACE_WORD}){{0,3}}"  # the place: up to four words
    r"(?:, [\w.]+(?: [\w.]+){0,2})?"  # ", 24 SET", ", Jan. 6", ", 24 Set 2018", ", PR"
    rf" ?\((?:{_AGENCIES})\)\.?((?:</[^>]*>)*) ?[-–—]{{1,2}}((?:</[^>]*>)*)\s+"
)


def _without_opening_header(html: str) -> str:
    """`html` (or plain text) without the header that opens it, if any: a wire dateline (`_DATELINE`)
    or arXiv's announcement (`_ARXIV_HEADER`); a tag a dateline closes ("<b>WASHINGTON (Reuters) —</b>") is
    closed still, so emphasis does not run on."""
    if "arXiv:" in html[:100]:
        m = _ARXIV_HEADER.match(html)
        return html if m is None else m.group(1) + html[m.end() :]
    m = _DATELINE.match(html)
    return html if m is None else m.group(1) + m.group(2) + m.group(3) + html[m.end() :]


# arXiv's feeds (rss.arxiv.org) open every abstract with the paper's identifier and how it is
# announced ("arXiv:2609.28553v1 Announce Type: new Abstract: Drug toxicity prediction is ..."): the
# title links the paper, and an excerpt or a quote is the abstract.
_ARXIV_HEADER = re.compile(
    r"((?:\s|<(?!/)[^>]*>)*)"  # opening tags, kept
    r"arXiv:[\w./-]+\s+Announce Type:\s*[\w-]+\s*(?:<br\s*/?>\s*|</?p>\s*)*Abstract:\s*",
    re.IGNORECASE,
)


# A standfirst: a first paragraph that ends without a sentence's punctuation, then the body ("... and
# the Republican hegemony" then "During the State of the Union..."): The Guardian's descriptions.
# Run together they read "hegemony During the State"; the standfirst alone is the summary its
# editors wrote. A shorter first line is a kicker or a greeting ("Hi all,", "Party time"); one that
# links introduces a quote ("Henri Sivonen: <a>Using an Android phone as a desktop</a>"), and what
# follows is the blogger's comment.
STANDFIRST_MIN = 60
_SENTENCE_END = re.compile(r"""[.!?…:;,"'»”“’)\]。！？；：，」』）؟۔।]\s*$""")  # and CJK, Arabic, Urdu, Hindi stops


def _standfirst_only(html: str) -> str:
    """`html` up to the end of its first paragraph when that is a standfirst (`STANDFIRST_MIN`)
    followed by more prose, and no prose comes before it."""
    m = _FIRST_BLOCK.search(html)
    if m is None or not html[m.end() :].strip():
        return html
    if "<a" in m.group(2):  # a paragraph that links: a quote's source, its comment follows
        return html
    text = clean_text(htmllib.unescape(_ANY_TAG.sub(" ", m.group(2))))
    if len(text) < STANDFIRST_MIN or len(m.group(2)) > _CREDIT_HTML * 2 or _SENTENCE_END.search(text):
        return html
    if (m.start() and _prose_only(html[: m.start()])) or not _prose_only(html[m.end() :]):
        return html
    return html[: m.end()]


# A block whose whole text is one link: a cross-link to another article, as newspapers list them
# under or inside a report (20minutos' "<li><a href=.../obama-recuerda-trump...>Obama, a Trump: "Putin
# no es de nuestro equipo".</a></li>"). It is another report's headline, not this one's words: quoted,
# it would be put in the outlet's mouth as a sentence of this story. Emphasis around the link, and a
# closing "." or "»" after it, are still only the link; any other word beside it ("Henri Sivonen:
# <a>...</a>", a sentence with a link inside) is prose and stays. A list item may go unclosed.
_INLINE = r"(?:\s|</?(?:strong|b|em|i|span|font|u)\b[^>]*>)*"
_LINK_ONLY_BLOCK = re.compile(
    rf"<(li|p|div)\b[^>]*>{_INLINE}<a\b[^>]*>(?:(?!</?a\b|</?(?:li|p|div)\b)(?:[^<]|<[^>]*>))*?</a\s*>"
    rf"{_INLINE}[.»”\"]?{_INLINE}(?:</\1\s*>|(?=<li\b|</[uo]l\b))",
    re.IGNORECASE | re.DOTALL,
)


def _without_link_blocks(html: str) -> str:
    """`html` without its blocks that are nothing but a link (`_LINK_ONLY_BLOCK`)."""
    if "<a" not in html and "<A" not in html:
        return html
    return _LINK_ONLY_BLOCK.sub("", html)


def _opening_cleared(html: str) -> str:
    """`html` without what opens it but is not its prose: a byline or credit, a wire dateline or
    arXiv's announcement; and only its standfirst when it has one."""
    return _standfirst_only(_without_opening_header(_without_opening_byline(html)))


def _prose_only(html: str) -> str:
    return _text_after(_PROSE_CLEANER, html)


# A block's end in `excerpt_html`'s source, kept through nh3 as a character no feed sends (private use).
_BLOCK_MARK = "\ue000"


def _with_block_separators(cleaned: str) -> str:
    """`cleaned` (inline markup only) with each `_BLOCK_MARK` a space or `BLOCK_SEPARATOR`, as
    `_joined_blocks` joins the blocks' texts: both parts of an email say the same."""
    if _BLOCK_MARK not in cleaned:
        return cleaned
    parts = cleaned.split(_BLOCK_MARK)
    out = [parts[0]]
    before = clean_text(htmllib.unescape(_ANY_TAG.sub("", parts[0])))  # the text so far (its end is enough)
    for part in parts[1:]:
        text = clean_text(htmllib.unescape(_ANY_TAG.sub("", part)))
        if text and before:
            out.append(_block_joint(before, text))
        out.append(part)
        if text:
            before = f"{before[-100:]} {text}"
    return "".join(out)


def excerpt_html(html: str, limit: int) -> str:
    """Sanitised ``html`` reduced to an excerpt: at most ``limit`` characters of text, cut at a
    word with "…", inline markup only (links, bold, italic), every tag it opens closed.

    Headings, tables, figures, blockquotes (embedded tweets), media and iframes are left out with
    their text; the plain-text part is this excerpt's text (`html_to_text`), so both parts say the same.
    """
    if limit <= 0 or not html:
        return ""
    window = max(4000, limit * 8)  # as excerpt(): only the head can reach the excerpt
    if len(html) > window:
        html = html[:window]
        if html.rfind("<") > html.rfind(">"):
            html = html[: html.rfind("<")]
    # An email's excerpt is the report's own words: a cross-link's headline is not (`_without_link_blocks`).
    spaced = _BLOCK_END.sub(
        lambda m: m.group(0) + _BLOCK_MARK, limit_nesting(_opening_cleared(_without_link_blocks(html)))
    )
    cleaned = _with_block_separators(
        nh3.clean(
            spaced,
            tags=set(EXCERPT_TAGS),
            clean_content_tags=set(EXCERPT_DROPPED),
            attributes={"a": {"href"}},
            link_rel=LINK_REL,
            url_schemes={"http", "https"},
            strip_comments=True,
        )
    )
    whole = clean_text(htmllib.unescape(_ANY_TAG.sub("", cleaned)))
    target = _cut(whole, limit)
    # The cut's own "…": not when the text is whole (a feed's "The…" is its text), always when cut,
    # whether or not the text ends with the feed's own.
    ellipsis = len(whole) > limit
    budget = len(target) - (1 if ellipsis else 0)  # characters of the source text to keep
    out: list[str] = []
    open_tags: list[str] = []
    used = 0
    pending_space = False
    # Whether the last character kept is a space: a link's text that opens with one (" two" in "One
    # <a> two</a>") follows the space already put before the link, and counts for nothing, as
    # clean_text counted `whole`; counted twice, each such link cut a character off the end.
    after_space = False
    for m in _EXCERPT_TOKEN.finditer(cleaned):
        closing, name, text = m.groups()
        if text is None:
            if closing:
                if name in open_tags:
                    open_tags.remove(name)
                    out.append(m.group(0))
            elif used < budget:
                if pending_space:  # the space between words goes before the link, not inside it
                    out.append(" ")
                    used += 1
                    pending_space, after_space = False, True
                open_tags.append(name)
                out.append(m.group(0))
            continue
        # As `target` was measured: without the controls and invisible marks clean_text removes (TMZ
        # writes U+FEFF around quotes; counted here, they cut "The…" to "Th" two characters early).
        plain = _REMOVED.sub("", _BREAKS.sub(" ", htmllib.unescape(text)))
        for word in re.split(r"(\s+)", plain):
            if not word:
                continue
            if word.isspace():
                pending_space = used > 0 and not after_space
                continue
            if used >= budget:
                break
            if pending_space:
                out.append(" ")
                used += 1
                pending_space = False
            piece = word[: budget - used]
            out.append(htmllib.escape(piece, quote=False))
            used += len(piece)
            after_space = False
    result = "".join(out).rstrip()
    for name in reversed(open_tags):
        result += f"</{name}>"
    result = re.sub(r"<(a|b|strong|i|em)\b[^>]*>\s*</\1>", "", result)  # a tag the cut left empty
    return result + ("…" if ellipsis else "")
