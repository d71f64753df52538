"""A feed body's bytes before feedparser reads them, and what its failure means.

This module owns the byte-level checks and repairs of one HTTP body: which character set to
decode it with (BOM, XML declaration, Content-Type), character references and declarations that
would stop expat, the size of declared entity expansion (an attack's sign), whether a body that
yields nothing is an HTML page or some other non-feed (with the page's own feed link as the next
step), and the one-line text of feedparser's complaint. Pure: bytes in, bytes or answers out.
`digest.parse` calls it before and after feedparser; `digest.parsepool` names its repairs.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

import feedparser

from digest.discovery import feed_link
from digest.errors import ParseError
from digest.sanitize import clean_text

__all__ = [
    "HARMLESS_BOZO",
    "MAX_ENTITY_EXPANSION",
    "bozo_text",
    "entity_expansion",
    "looks_like_html",
    "not_a_feed",
    "readable_declaration",
    "response_headers",
    "valid_char_refs",
    "valid_char_refs_in",
]


# --------------------------------------------------------------------------- character set

_XML_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32be"),
    (codecs.BOM_UTF32_LE, "utf-32le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
)


def _charset_param(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip("\"'").strip()
            if value:
                try:
                    return codecs.lookup(value).name
                except LookupError:
                    return None
    return None


def _bom_encoding(body: bytes) -> str | None:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return None


# '<' or '<?' in UTF-16/32 without a byte-order mark: only the XML declaration can settle these.
_WIDE_STARTS = (b"\x00\x00\x00<", b"<\x00\x00\x00", b"\x00<\x00?", b"<\x00?\x00")


def _choose_charset(body: bytes, content_type: str | None) -> str | None:
    """The charset to tell feedparser, or None to let it read the XML declaration itself (D3).

    Order: a byte-order mark; UTF-8 when the body has non-ASCII bytes and all of them form valid
    UTF-8 (legacy-encoded text practically never does, while servers and feed generators often
    declare Latin-1 for what is UTF-8); the document's XML declaration; the header's charset;
    else feedparser's own guesses.
    """
    bom = _bom_encoding(body)
    if bom:
        return bom
    if body[:4] in _WIDE_STARTS:
        return None
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "utf-8"
    if _XML_DECL_ENCODING.match(body.lstrip()[:300]):
        return None
    return _charset_param(content_type)


def response_headers(body: bytes, url: str, content_type: str | None) -> dict[str, str]:
    """Headers for feedparser.parse(): the final URL as base and our choice of charset.

    feedparser follows RFC 3023 to the letter: text/* without a charset means us-ascii and a
    header charset beats the document. Real servers get both wrong more often than feed
    generators do, so the media type is always given as application/xml and the charset is the
    one _choose_charset() settles on.
    """
    charset = _choose_charset(body, content_type)
    media = f"application/xml; charset={charset}" if charset else "application/xml"
    # No content-location: given a base, feedparser joins it with every element's xml:base at
    # every start tag, a third of its run time. It still follows xml:base inside the document,
    # and whatever stays relative is resolved against ``url`` by clean_url/sanitize_html here.
    return {"content-type": media}


# --------------------------------------------------------------------------- what feedparser trips on
# Two malformations of real publishers' documents on which feedparser 6.0 raises instead of marking
# the feed bozo (P6), so that the whole feed was lost ("the parser failed"): each is mended in the
# bytes, before feedparser reads them, into what the publisher meant or into the least that can be read.

# A numeric character reference to a UTF-16 surrogate or past U+10FFFF is no character: "&#55357;&#56832;"
# is an emoji as some publishing systems write it (one reference per UTF-16 unit), "&#1234567890;" a
# mangled one. expat refuses the document, then feedparser's loose parser fails on the reference
# (chr(0xD83D).encode("utf-8")). The pattern finds candidates only (decimal 55000-57999 or of seven
# digits and more, hex D800-DFFF or of six digits and more): `valid_char_refs` decides.
_ODD_CHAR_REF_PATTERN = (
    r"&#(?:[xX]0*([dD][89a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{5,})|0*(5[5-7][0-9]{3}|[1-9][0-9]{6,}));"
)
_ODD_CHAR_REF = re.compile(_ODD_CHAR_REF_PATTERN.encode())
# The same in a summary's HTML, where an RSS description escapes its references ("&amp;#55357;"): nh3
# would show each surrogate's reference as U+FFFD, "��" where the publisher sent an emoji.
_ODD_CHAR_REF_TEXT = re.compile(_ODD_CHAR_REF_PATTERN)


def _char_ref_value(m: re.Match[str]) -> int:
    hex_digits, decimal = m.groups()
    return int(hex_digits, 16) if hex_digits is not None else int(decimal)


def valid_char_refs(text: str) -> str:
    """`text` with a high and a low surrogate's references side by side written as the one
    character they encode, and any other reference to no character as U+FFFD's."""
    if _ODD_CHAR_REF_TEXT.search(text) is None:  # nearly every summary: one scan in C
        return text
    matches = list(_ODD_CHAR_REF_TEXT.finditer(text))
    out: list[str] = []
    last = k = 0
    while k < len(matches):
        m = matches[k]
        value = _char_ref_value(m)
        out.append(text[last : m.start()])
        last = m.end()
        k += 1
        if 0xD800 <= value <= 0xDBFF and k < len(matches) and matches[k].start() == m.end():
            low = _char_ref_value(matches[k])
            if 0xDC00 <= low <= 0xDFFF:
                out.append(f"&#{0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)};")
                last = matches[k].end()
                k += 1
                continue
        out.append(m.group() if value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "&#xFFFD;")
    out.append(text[last:])
    return "".join(out)


def valid_char_refs_in(body: bytes) -> bytes:
    """`valid_char_refs` on a feed's bytes: references are ASCII, so reading the bytes as Latin-1
    and writing them back leaves every other byte as it was, in whatever encoding."""
    if _ODD_CHAR_REF.search(body) is None:  # nearly every feed: one scan in C
        return body
    return valid_char_refs(body.decode("latin-1")).encode("latin-1")


# feedparser reads the declared encoding with `^<\?.*encoding=['"](.*?)['"].*\?>` over the document's
# whole first line (feedparser/encodings.py, RE_XML_PI_ENCODING). Two things go wrong there: a value
# that is no encoding's name (bytes that are not UTF-8, a NUL) made it raise UnicodeDecodeError or
# ValueError, and on a document written as one line the pattern backtracks over every later
# `encoding="` (1.3 s for 52 KB of them). The declaration is given a line of its own, which XML allows
# and which confines the pattern to it, and an encoding there that names none is dropped: the charset
# is then settled as for a document that declares none (`_choose_charset`).
_DECLARATION = re.compile(rb"<\?xml[^>]{0,300}\?>")
_DECLARED_ENCODING = re.compile(rb"""\sencoding\s*=\s*["']([^"']*)["']""")
_ENCODING_NAME = re.compile(rb"[A-Za-z0-9._:-]{1,40}")


def readable_declaration(body: bytes) -> bytes:
    m = _DECLARATION.match(body)
    if m is None:
        return body
    declaration = m.group()
    named = _DECLARED_ENCODING.search(declaration)
    unnamed = named is not None and not _ENCODING_NAME.fullmatch(named.group(1))
    if named is not None and unnamed:
        declaration = declaration[: named.start()] + declaration[named.end() :]
    rest = body[m.end() :]
    # feedparser finds a DOCTYPE's entities by the lines they begin (replace_doctype): a DOCTYPE
    # moved to the start of a line would be read otherwise, so its document keeps its lines.
    if rest[:1] in (b"\n", b"\r") or rest.lstrip(b" \t")[:9].upper() == b"<!DOCTYPE":
        return declaration + rest if unnamed else body  # nearly every feed: as it is, no copy
    return declaration + b"\n" + rest.lstrip(b" \t")


# --------------------------------------------------------------------------- entity expansion

MAX_ENTITY_EXPANSION = 1_000_000  # characters that declared entities may add to a document (P2)
_ENTITY_DECL = re.compile(rb"""<!ENTITY\s+([^\s%"'>]+)\s+(?:"([^"]*)"|'([^']*)')""")
_WIDE_CODECS = {
    b"\x00\x00\x00<": "utf-32be",
    b"<\x00\x00\x00": "utf-32le",
    b"\x00<\x00?": "utf-16be",
    b"<\x00?\x00": "utf-16le",
}


def entity_expansion(body: bytes) -> int:
    """How many characters the document's literal internal entities would add when expanded.

    feedparser's replace_doctype() drops nested and external entities (D2) but keeps literal ones
    and its loose parser then substitutes them with str.replace: one 100 KB entity used 50,000
    times is 5 GB (the quadratic blowup, P2). Measured on a UTF-8 view so UTF-16/32 bodies are
    seen too.
    """
    wide = _bom_encoding(body) or _WIDE_CODECS.get(body[:4])
    view = body
    if wide and wide != "utf-8":
        view = body.decode(wide, "replace").encode("utf-8", "replace")
    if b"<!ENTITY" not in view:
        return 0
    total = 0
    for m in _ENTITY_DECL.finditer(view):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        total += len(value) * view.count(b"&" + m.group(1) + b";")
    return total


# --------------------------------------------------------------------------- not-a-feed detection

# The document's first element, after the prolog (XML declaration, PIs, comments, doctype).
_ROOT = re.compile(
    rb"""(?:\s|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)*<([A-Za-z_][\w:.-]*)""", re.IGNORECASE | re.DOTALL
)
_HTML_ROOTS = {b"html", b"head", b"body", b"meta", b"title", b"script", b"div", b"p"}


def _strip_bom(body: bytes) -> bytes:
    for bom, _ in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :]
    return body


def looks_like_html(body: bytes) -> bool:
    """True when the body's root element is an HTML one (an HTML page served at a feed URL)."""
    head = _strip_bom(body[:8192])
    m = _ROOT.match(head)
    if m is None:
        return b"<html" in head.lower()
    return m.group(1).lower().rpartition(b":")[2] in _HTML_ROOTS


def not_a_feed(body: bytes, url: str, result: Any) -> ParseError:
    if not body.strip():
        return ParseError(f"{url}: not a feed (the response body is empty).")
    if body[:2] == b"\x1f\x8b":
        return ParseError(
            f"{url}: not a feed (the body is gzip-compressed data without a Content-Encoding header).",
            hint="The server compresses the feed twice or mislabels it; ask its owner to fix the headers.",
        )
    if looks_like_html(body):
        if named := feed_link(body, url):  # the page's own <link rel="alternate">: the next step, said
            return ParseError(
                f"{url}: not a feed (looks like an HTML page); this page names its feed: {named}; "
                "use that as the feed's url.",
                hint=f"Put {named} in the feed's [[feeds]] url, or `digest feeds add {named}`.",
            )
        return ParseError(
            f"{url}: not a feed (looks like an HTML page).",
            hint="The URL may be the site's home page: look for its RSS or Atom link and use that.",
        )
    reason = ""
    if result.get("bozo"):
        reason = f": {bozo_text(result.get('bozo_exception'))}"
    if not result.get("version"):
        return ParseError(f"{url}: not a feed (no RSS or Atom document found{reason}).")
    return ParseError(f"{url}: the feed is malformed and no items could be read{reason}.")


def bozo_text(exc: object) -> str:
    if exc is None:
        return "unknown problem"
    return clean_text(f"{type(exc).__name__}: {exc}", limit=300)


# Bozo reasons that are about the charset or media type only: the document itself parsed.
HARMLESS_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
