"""Render: Edition -> Rendered (subject, HTML, plain text, preheader). Pure.

The templates (top-level ``templates/``, shipped in the wheel as ``digest/templates``) hold the
layout and nothing else: this module turns an Edition into plain view objects with every label,
date and link already decided, and the templates only loop over them. It reads no clock, no
environment and no network; the time zone and language come with the Edition.

UI strings are gettext messages: the templates call ``_()`` and ``ngettext()`` (jinja2.ext.i18n,
new-style), this module ``gettext``/``pgettext`` for the few it decides itself. The catalogues are
``i18n/<lang>/LC_MESSAGES/digest.po`` in the built-in folder and, overriding entry by entry, in
``templates_dir``; they are read with Babel and compiled in memory, so there is no build step. A
message with no translation shows its msgid, which is the English text.

Feed text is untrusted (reliability.md finding 7, E4): the HTML template runs with autoescape and
StrictUndefined, only the sanitiser's ``summary_html`` is marked ``|safe`` (a test greps the
templates), and only http(s) links are rendered as links. The subscriber's own links are left as
the ASCII markers below; digest.message puts each subscriber's URL in their place, so an edition is
rendered once per section set, not once per subscriber.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import css_inline
import jinja2
from babel.dates import format_date
from babel.support import NullTranslations

from digest import words
from digest.catalogue import (
    CATALOGUE_DOMAIN,
    builtin_templates_dir,
    catalogue_folders,
    catalogue_path,
    load_translations,
    section_label,
    site_title,
)
from digest.errors import TemplateError, is_bug
from digest.model import (
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    Edition,
    Item,
    Quote,
    Rendered,
    SectionGroup,
    Story,
)
from digest.outlets import split_url
from digest.sanitize import excerpt_html, html_to_text
from digest.zones import utc_offset

__all__ = [
    "CATALOGUE_DOMAIN",
    "PLACEHOLDER_PREFERENCES_URL",
    "PLACEHOLDER_UNSUBSCRIBE_URL",
    "Renderer",
    "builtin_templates_dir",
    "catalogue_path",
    "load_translations",
]

log = logging.getLogger(__name__)

# Where each subscriber's own link goes. Plain ASCII letters and underscores only, so autoescape,
# CSS inlining and text wrapping leave them as they are; feed text cannot carry them (see _clean).
_PLACEHOLDERS = (PLACEHOLDER_UNSUBSCRIBE_URL, PLACEHOLDER_PREFERENCES_URL)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
TEXT_WIDTH = 78  # RFC 5322 2.1.1: lines SHOULD be no longer than 78 characters
GMAIL_CLIP_BYTES = 102_000  # Gmail hides everything after ~102 KB of HTML behind "[Message clipped]"
# The markers are replaced by longer per-subscriber URLs after the size check: keep room for them.
_URL_ALLOWANCE = 2_000
SHORT_SUMMARY_CHARS = 140
PREHEADER_CHARS = 140
SUBJECT_CHARS = 150  # long enough for two headlines; header_text keeps it one safe line
# "More from The Indian Express": its first reports by headline (what they add is in the headline: "Suspect
# had mental health issues: relatives"), any further ones by a short headline, so a busy outlet's
# follow-ups stay a few lines and each link still says what it opens (a number said nothing to a
# reader or a screen reader: "2, 3, 4").
MORE_FROM_HEADLINES = 3
SHORT_HEADLINE_CHARS = 48
HEADLINE_CHARS = 90  # an untitled item's stand-in headline: the start of its summary
_LINK_SCHEMES = frozenset({"http", "https"})


# --------------------------------------------------------------------------- view objects


@dataclass(frozen=True, slots=True)
class LinkView:
    text: str
    url: str | None  # None when the feed gave no usable http(s) link
    source: str = ""
    ref: int | None = None  # number of the link in the plain-text part
    # The headline behind a link whose text is a number ("NYT (2, 3)"): the HTML part's title attribute,
    # so a reader pointing at "2" (or a screen reader) learns which report it opens.
    hint: str = ""
    lang: str = ""  # a headline's language where it is not the edition's (`_other_language`)

    @property
    def cited(self) -> str:
        """The text with its plain-text reference number: "Title [3]"."""
        return f"{self.text} [{self.ref}]" if self.ref is not None else self.text


@dataclass(frozen=True, slots=True)
class OutletView:
    """One outlet in "Also reported by": its name linked to its first report, then its other reports
    of the story, numbered from 2 ("The Indian Express (2, 3)"), so that a busy outlet's follow-ups
    do not repeat its name."""

    name: LinkView
    more: tuple[LinkView, ...] = ()
    # Only in "More from": its first other reports by headline; `more` then holds the further ones by a
    # short headline, or, in an HTML part cut to fit, one link to them all in the web edition.
    headlines: tuple[LinkView, ...] = ()

    @property
    def refs(self) -> str:
        """The plain-text form of "More from": 'Suspect had mental health issues [5]; Iraq war veteran… [6]'."""
        return "; ".join(link.cited for link in (*self.headlines, *self.more))

    @property
    def cited(self) -> str:
        """The plain-text form: 'The Indian Express [5] [6] [7]'."""
        refs = " ".join(f"[{link.ref}]" for link in (self.name, *self.more) if link.ref is not None)
        return f"{self.name.text} {refs}" if refs else self.name.text


@dataclass(frozen=True, slots=True)
class QuoteView:
    """One outlet's part of a synopsis: "<before><outlet><after> <text>", e.g. "Reuters adds: ..."."""

    before: str
    outlet: LinkView  # the outlet's name, linked to its item
    after: str
    text: str  # the quoted sentences, verbatim
    lang: str = ""  # the sentences' language where it is not the edition's (`_other_language`)

    @property
    def cited(self) -> str:
        """The plain-text form: 'Reuters [4] adds: ...'."""
        return f"{self.before}{self.outlet.cited}{self.after} {self.text}"


@dataclass(frozen=True, slots=True)
class StoryView:
    title: LinkView
    source: str
    when: str  # "January 16, 09:17 UTC+3"; "January 3" for an item its link alone dates
    first_seen: bool  # undated: `when` is the time we first saw it
    summary_html: str  # sanitised by parse (E1); the only value the templates mark |safe
    summary_text: str
    image_url: str | None
    also: tuple[OutletView, ...]
    read_also: tuple[LinkView, ...]
    outlets: int = 0  # in "Top stories": how many outlets tell it
    synopsis: tuple[QuoteView, ...] = ()
    image: ImageView | None = None
    # The lead's outlet's other reports of the story ("More from The Indian Express: Suspect had
    # mental health issues: relatives; ..."): not "Also reported by", which names other outlets.
    more_from: OutletView | None = None
    # The title's and the summary's language where it is not the edition's (`_other_language`): their
    # HTML elements say so (lang=), or a screen reader reads a Russian headline with an English voice.
    title_lang: str = ""
    summary_lang: str = ""
    # An episode's audio (or video) file, "MP3 audio", when its link is that file: its title then opens
    # the podcast's page (`_page`), and this link says what it downloads.
    audio: LinkView | None = None


@dataclass(frozen=True, slots=True)
class ImageView:
    """A story's lead image (only with [digest] images = true): sized and described for mail clients."""

    url: str
    width: int
    height: int
    alt: str


@dataclass(frozen=True, slots=True)
class DayView:
    heading: str
    stories: tuple[StoryView, ...]


@dataclass(frozen=True, slots=True)
class SectionView:
    name: str  # as the reader reads it: a shipped section's name in the edition's language
    anchor: str
    count: int  # stories in the section today, shown or not
    days: tuple[DayView, ...]
    hidden: int  # stories left out of this email; the templates say "N more in <Section>"
    more: LinkView | None  # the link to the section in the web edition, when stories are hidden
    links: tuple[LinkView, ...]  # the numbered links of this block, for the plain-text part
    key: str  # the configured name, which SectionCuts cuts the edition by (two labels may be alike)


@dataclass(frozen=True, slots=True)
class Notice:
    """The HTML part was shortened to fit (Gmail clipping); the full edition is at `url`."""

    stories_dropped: bool  # False: only summaries were shortened or dropped
    url: str | None


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of the edition the HTML part may show (Gmail clipping)."""

    summaries: str = "full"  # full | short | none
    per_section: int | None = None  # stories kept per section; None: all
    top_stories: bool = True
    synopses: str = "all"  # all | top: only the top stories keep theirs (they go last)


_Budget = Budget


# --------------------------------------------------------------------------- text helpers


def _clean(text: str) -> str:
    """Feed text as one line, without our markers (a feed must not plant a subscriber's link)."""
    for marker in _PLACEHOLDERS:
        text = text.replace(marker, "")
    return " ".join(text.split())


def _href(url: str | None) -> str | None:
    """E4/C1: only absolute http(s) URLs become links; anything else is shown as plain text."""
    if not url:
        return None
    url = _clean(url)
    parts = split_url(url)
    if (
        parts is None
        or parts.scheme.lower() not in _LINK_SCHEMES
        or not parts.netloc
        or any(c in url for c in " <>\"'")
    ):
        return None
    return url


# A link to a file that plays rather than a page that reads: a podcast episode with no <link> of its
# own links its enclosure (Still Processing's "https://dts.podtrac.com/redirect.mp3/.../episode.mp3"),
# and a reader's click downloaded 50 MB. By the file's name: that is what a browser goes by too.
_AUDIO_FILES = frozenset({"mp3", "m4a", "aac", "ogg", "oga", "opus", "wav", "flac"})
_VIDEO_FILES = frozenset({"mp4", "m4v", "mov", "webm"})


def _media(url: str | None) -> tuple[str, str] | None:
    """("audio" or "video", the file's format, "MP3") when a link opens an audio or a video file."""
    parts = split_url(url or "")
    name = parts.path.rsplit("/", 1)[-1] if parts is not None else ""
    _, dot, extension = name.rpartition(".")
    extension = extension.lower() if dot else ""
    if extension in _AUDIO_FILES:
        return "audio", extension.upper()
    return ("video", extension.upper()) if extension in _VIDEO_FILES else None


def _page(item: Item) -> str | None:
    """The page an item's links open: its own link, or for an episode whose link is its audio (or
    video) file, the site its feed links to, the podcast's page (None when the feed gives none)."""
    return item.site_url if _media(item.url) else item.url


def _headline(item: Item) -> str:
    """An item's title; some feeds (microblogs, podcasts) give none: the start of its summary stands in."""
    return item.title or _cut(_clean(item.summary_text), HEADLINE_CHARS)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-–—") + "…"


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# A space no line may break at: inside French quotes and before French high punctuation ("« le
# football moderne »", "Syrie : un attentat", "pourquoi ?"), where a closing » or a "?" opened a line
# of its own; and after a quote's cut mark ("[…] Markets fell"), which would end a line alone.
_GLUED_SPACE = re.compile(r"(?<=[«‹]) | (?=[»›:;!?](?:\s|$))|(?<=\[…\]) ")
_GLUE = "\x00"  # one column wide, as the space it stands for; no feed text keeps a NUL


def wrap(text: str, indent: str = "", hang: str | None = None) -> str:
    """Jinja filter: wrap at 78 columns; long words (URLs) are never split, nor a glued space
    (`_GLUED_SPACE`)."""
    return textwrap.fill(
        _GLUED_SPACE.sub(_GLUE, text),
        width=TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent if hang is None else hang,
        break_long_words=False,
        break_on_hyphens=False,
    ).replace(_GLUE, " ")


def nbsp(text: str) -> str:
    """Jinja filter for the HTML part: no-break spaces, so a short phrase ("3 outlets", "(first seen)")
    is never split across lines; given translated Markup, it stays Markup. css-inline writes &nbsp;."""
    return text.replace(" ", "\xa0")


def underline(text: str, char: str = "-") -> str:
    """Jinja filter: a heading with a rule as wide as the text under it."""
    return f"{text}\n{char * min(_display_width(text), TEXT_WIDTH)}"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- edition -> views


@lru_cache(maxsize=4096)
def _excerpts(summary_html: str, summary_text: str, chars: int) -> tuple[str, str]:
    """A story's excerpt in both parts: inline markup only, cut at `chars`; the text part is the same
    excerpt's text, so both parts follow the one setting. Remembered: a story is shown in many
    renders of one edition (the whole, its clip budgets, each top stories block)."""
    try:
        html_part = excerpt_html(summary_html, chars)
        return html_part, html_to_text(html_part) if html_part else _cut(_clean(summary_text), chars)
    except BaseException as exc:
        if not is_bug(exc):
            raise
        # One item's HTML the excerpt code cannot read (a bug, or nh3's panic) costs that item its
        # markup, not the edition: raised, it would fail the message of every subscriber whose
        # sections hold the item. Logged once (the answer is remembered), with the traceback.
        log.error("an item's excerpt failed; it shows its plain summary: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return "", _cut(_clean(summary_text), chars)


@lru_cache(maxsize=8192)
def _guess(text: str) -> tuple[str, int]:
    """`words.language_guess`, remembered: the same texts come back in every render of an edition
    (each clip budget, each number of stories the top block takes), so each is guessed once."""
    return words.language_guess(text)


# The languages `words.language_guess` tells apart within one script by a few letters of their own
# (Urdu's retroflexes, Persian's pe and gaf): a short text without them is guessed as another.
_ARABIC_SCRIPT = frozenset({"ar", "fa", "ur"})
_SCRIPT_KIN = dict.fromkeys(_ARABIC_SCRIPT, _ARABIC_SCRIPT)


def _other_language(text: str, item_text: str, language: str) -> str:
    """The language of `text` (feed text) when it is not `language` (the edition's), else "".

    The guess is digest's (`words.language_guess`, what digest.sections reads an item in); a text
    too short to say it (one function word at most, and no script of its own) takes its item's
    (`item_text`: title and summary, as digest.sections reads them). One function word never overrules
    an edition in a Latin-script language ("... bin Laden son" is no French), but any Latin-script
    text in a Russian edition is not Russian: there the guess ("en" when nothing decides) stands.
    A text whose script several languages write, told apart by letters a short text may lack, takes
    its item's language among them: a BBC Urdu headline without Urdu's own letters was guessed
    Persian (lang="fa"), though its summary is plainly Urdu.
    """
    lang, said = _guess(text[:400])
    if said <= 1 and item_text:
        lang, said = _guess(item_text[:400])
    elif item_text and said == words.SCRIPT_SAYS and (kin := _SCRIPT_KIN.get(lang)):
        whole, told = _guess(item_text[:400])
        if told == words.SCRIPT_SAYS and whole in kin:
            lang = whole
    if lang == language or (said <= 1 and language in words.LATIN_LANGUAGES):
        return ""
    return lang


class _ViewBuilder:
    """Turns one Edition into view objects; numbers links for the plain-text part as it goes."""

    def __init__(
        self,
        edition: Edition,
        *,
        messages: NullTranslations,
        locale: str,
        images: bool,
        budget: _Budget,
        excerpt_chars: int = 280,
    ) -> None:
        self.edition, self.messages, self.locale = edition, messages, locale
        self.images, self.budget = images, budget
        self.excerpt_chars = excerpt_chars
        self.language = words.primary_language(locale) or locale
        self.zone = ZoneInfo(edition.timezone)
        self._next_ref = 1
        self._anchor = ""  # the block being built: where its stories are in the web edition
        # The current block's links by URL, in the order they were numbered: a URL the block already
        # numbered keeps its number (a story's headline and the quote of its lead's own summary, "NYT
        # [1]: ...", open one article, listed once in the text part).
        self._block_links: dict[str, LinkView] = {}

    def _link(self, text: str, url: str | None, source: str = "", hint: str = "", lang: str = "") -> LinkView:
        href = _href(url)
        listed = None if href is None else self._block_links.get(href)
        ref = None if listed is None else listed.ref
        if href is not None and ref is None:
            ref, self._next_ref = self._next_ref, self._next_ref + 1
        link = LinkView(text=_clean(text), url=href, source=_clean(source), ref=ref, hint=_clean(hint), lang=lang)
        if href is not None and listed is None:
            self._block_links[href] = link
        return link

    def _outlets(self, items: Sequence[Item]) -> tuple[OutletView, ...]:
        """Each outlet once, in the order of its first report; its other linked reports by number."""
        by_outlet: dict[str, list[Item]] = {}
        for item in items:
            by_outlet.setdefault(_clean(item.source), []).append(item)
        outlets = []
        for name, (first, *rest) in by_outlet.items():
            outlets.append(OutletView(self._link(name, _page(first)), self._numbered(rest)))
        return tuple(outlets)

    def _numbered(self, items: Sequence[Item], start: int = 2) -> tuple[LinkView, ...]:
        """An outlet's further reports as links numbered from 2 (its first is its name or the title);
        an unlinked report adds nothing. Each number carries its headline as a hint while summaries
        are in full; a message cut to fit Gmail's clip spends no bytes on them."""
        linked = [item for item in items if _href(_page(item)) is not None]
        full = self.budget.summaries == "full"
        return tuple(
            self._link(str(k), _page(item), hint=_headline(item) if full else "")
            for k, item in enumerate(linked, start=start)
        )

    def _more_from(self, outlet: str, items: Sequence[Item]) -> OutletView | None:
        """The lead's outlet's other linked reports (the title is its first): the first
        `MORE_FROM_HEADLINES` by headline, the rest by a short headline (the whole one its link's
        hint). An HTML part cut to fit Gmail's clip spends no bytes on them: one link says how many
        there are, to the story's section in the web edition, where every one is listed; one report
        alone keeps its short headline, which costs no more than that link."""
        linked = [item for item in items if _href(_page(item)) is not None]
        if not linked:
            return None
        if self.budget.summaries != "full" and len(linked) == 1:
            alone = dataclasses.replace(self._headline_link(linked[0], short=True), hint="")
            return OutletView(LinkView(outlet, None), (alone,))
        if self.budget.summaries != "full":
            count = len(linked)
            online = self.messages.ngettext(
                "%(num)d report in the online edition", "%(num)d reports in the online edition", count
            ) % {"num": count}
            return OutletView(LinkView(outlet, None), (self._link(online, f"{self.edition.web_url}#{self._anchor}"),))
        named = linked[:MORE_FROM_HEADLINES]
        headlines = tuple(self._headline_link(item) for item in named)
        more = tuple(self._headline_link(item, short=True) for item in linked[len(named) :])
        return OutletView(LinkView(outlet, None), more, headlines)

    def _headline_link(self, item: Item, source: str = "", *, short: bool = False) -> LinkView:
        """A report's headline as a link ("More from", "Read also"), with its language where it is not
        the edition's, as a story's own title has it: a screen reader reads it in its own voice.
        `short`: cut to `SHORT_HEADLINE_CHARS`, the whole headline its hint when cut."""
        headline = _headline(item)
        lang = _other_language(headline, f"{item.title} {item.summary_text}", self.language)
        shown = _cut(headline, SHORT_HEADLINE_CHARS) if short else headline
        return self._link(shown, _page(item), source, hint=headline if shown != headline else "", lang=lang)

    def _take_links(self) -> tuple[LinkView, ...]:
        links, self._block_links = tuple(self._block_links.values()), {}
        return links

    def when(self, item: Item) -> str:
        local = item.when.astimezone(self.zone)
        # An item dated by its link alone shows that day and no time: a link tells no time of day.
        linked = item.day_of_link
        shown = linked or local.date()
        # Date patterns are messages too (as GNU programs translate "%B %d"): each language orders
        # the day and the month its own way. CLDR gives the names (babel.dates).
        if shown.year != self.edition.day.year:  # an old item's, as its day heading: "January 6, 2017"
            pattern = str(self.messages.pgettext("CLDR date pattern", "MMMM d, y"))
        else:
            pattern = str(self.messages.pgettext("CLDR date pattern", "MMMM d"))  # January 16
        day = format_date(shown, pattern, locale=self.locale)
        return day if linked else f"{day}, {local:%H:%M} {utc_offset(local)}"

    def quotes(self, quotes: tuple[Quote, ...], pages: Mapping[int, str | None] | None = None) -> tuple[QuoteView, ...]:
        """The synopsis's quotes, each outlet linked to its report: `pages`, by item id, where a
        report's page is not its link (`_page`)."""
        views = []
        quoted: set[str] = set()
        for k, quote in enumerate(quotes):
            # The connecting words are messages, and the outlet's grammatical number picks the form:
            # Russian says "Коммерсант пишет", "Ведомости пишут". The outlet goes where the
            # translation puts %(outlet)s, so a language may put it after its verb. An outlet quoted
            # again from another of its reports "also reports": "NYT: ... NYT adds: ..." read as if
            # the paper contradicted or completed itself.
            again = quote.source in quoted
            quoted.add(quote.source)
            if again and quote.plural:
                label = self.messages.pgettext(
                    "synopsis: an outlet quoted again, plural name", "%(outlet)s also report:"
                )
            elif again:
                label = self.messages.pgettext("synopsis: an outlet quoted again", "%(outlet)s also reports:")
            elif k == 0 and quote.plural:
                label = self.messages.pgettext("synopsis: first outlet, plural name", "%(outlet)s:")
            elif k == 0:
                label = self.messages.pgettext("synopsis: first outlet", "%(outlet)s:")
            elif quote.plural:
                label = self.messages.pgettext("synopsis: next outlet, plural name", "%(outlet)s adds:")
            else:
                label = self.messages.pgettext("synopsis: next outlet", "%(outlet)s adds:")
            before, _, after = str(label).replace("%(outlet)s", "\x00", 1).partition("\x00")
            cut = str(self.messages.pgettext("synopsis: text left out between two quoted sentences", "[…]"))
            text = _clean(
                "".join(
                    (f" {cut} " if k in quote.gaps else " ") + sentence if k else sentence
                    for k, sentence in enumerate(quote.sentences)
                )
            )
            views.append(
                QuoteView(
                    before=before,
                    outlet=self._link(quote.source, (pages or {}).get(quote.item_id, quote.url)),
                    after=after,
                    text=text,
                    lang=_other_language(text, "", self.language),  # whole sentences: they say their language
                )
            )
        return tuple(views)

    def story(self, story: Story, *, top: bool = False) -> StoryView:
        lead = story.lead
        headline = _headline(lead) or _clean(lead.source)
        title = self._link(headline, _page(lead), lead.source)
        media = _media(lead.url)
        summary_html, summary_text = _excerpts(lead.summary_html, lead.summary_text, self.excerpt_chars)
        if self.budget.summaries == "short":
            summary_html, summary_text = "", _cut(summary_text, SHORT_SUMMARY_CHARS)
        elif self.budget.summaries == "none":
            summary_html, summary_text = "", ""
        image = _lead_image(lead, headline) if self.images else None
        keep_synopsis = self.budget.synopses == "all" or top
        pages = {item.id: _page(item) for item in (lead, *story.also) if item.url != _page(item)}
        synopsis = self.quotes(story.synopsis, pages) if keep_synopsis else ()
        quoted = {q.item_id for q in story.synopsis} if synopsis else set()
        source = _clean(lead.source)
        unquoted = [item for item in story.also if item.id not in quoted]
        item_text = f"{lead.title} {lead.summary_text}"
        return StoryView(
            title=title,
            source=source,
            when=self.when(lead),
            first_seen=lead.undated and lead.day_of_link is None,
            summary_html=summary_html.replace(PLACEHOLDER_UNSUBSCRIBE_URL, "").replace(PLACEHOLDER_PREFERENCES_URL, ""),
            summary_text=summary_text,
            image_url=image.url if image else None,
            image=image,
            # An outlet the synopsis quotes is already linked there: "Also reported by" names the rest.
            also=self._outlets([i for i in unquoted if _clean(i.source) != source]),
            more_from=self._more_from(source, [i for i in unquoted if _clean(i.source) == source]),
            read_also=tuple(self._headline_link(item, item.source) for item in story.read_also),
            synopsis=synopsis,
            outlets=story.outlets if top else 0,
            audio=self._link(self._media_label(*media), lead.url) if media else None,
            title_lang=_other_language(headline, item_text, self.language),
            summary_lang=_other_language(summary_text, item_text, self.language) if summary_text else "",
        )

    def _media_label(self, kind: str, file_format: str) -> str:
        """What a story's audio or video file is called beside its time: "MP3 audio"."""
        if kind == "audio":
            label = self.messages.pgettext("a story's audio file, by its format: MP3 audio", "%(format)s audio")
        else:
            label = self.messages.pgettext("a story's video file, by its format: MP4 video", "%(format)s video")
        return str(label) % {"format": file_format}

    def day_heading(self, day: date) -> str:
        if day.year != self.edition.day.year:  # an old item: "Friday, January 6, 2017", not just "Friday, January 6"
            pattern = str(self.messages.pgettext("CLDR date pattern", "EEEE, MMMM d, y"))
            return _capitalise(format_date(day, pattern, locale=self.locale))
        pattern = str(self.messages.pgettext("CLDR date pattern", "EEEE, MMMM d"))  # Friday, January 16
        return _capitalise(format_date(day, pattern, locale=self.locale))

    def top_stories(self) -> SectionView | None:
        if not self.edition.top_stories or not self.budget.top_stories:
            return None
        self._next_ref = 1
        self._anchor = "top-stories"
        stories = tuple(self.story(s, top=True) for s in self.edition.top_stories)
        return SectionView(
            name=self.messages.gettext("Top stories"),
            key=self._anchor,
            anchor=self._anchor,
            count=len(stories),
            days=(DayView(heading="", stories=stories),),
            hidden=0,
            more=None,
            links=self._take_links(),
        )

    def section(self, section: SectionGroup) -> SectionView:
        keep = self.budget.per_section
        self._anchor = section.anchor
        days: list[DayView] = []
        shown = 0
        for day in section.days:
            stories = day.stories if keep is None else day.stories[: max(keep - shown, 0)]
            shown += len(stories)
            if stories:
                days.append(DayView(self.day_heading(day.day), tuple(self.story(s) for s in stories)))
        hidden = section.total - shown
        name = _clean(section_label(self.messages, section.name))
        more = self._link(name, f"{self.edition.web_url}#{section.anchor}") if hidden > 0 else None
        return SectionView(
            name=name,
            key=_clean(section.name),
            anchor=section.anchor,
            count=section.total,
            days=tuple(days),
            hidden=max(hidden, 0),
            more=more,
            links=self._take_links(),
        )

    def press(self, anchor: str = "press-review") -> SectionView | None:
        """The Press Review section's outlets: one heading per outlet, its leading stories under it;
        `anchor`: the section that shows them, its own or the configured section of the same name."""
        if not self.edition.press:
            return None
        keep = self.budget.per_section
        self._anchor = anchor
        days, shown, total = [], 0, 0
        for group in self.edition.press:
            total += len(group.stories)
            stories = group.stories if keep is None else group.stories[: max(keep - shown, 0)]
            shown += len(stories)
            if stories:
                days.append(DayView(_clean(group.outlet), tuple(self.story(s) for s in stories)))
        return SectionView(
            name=_clean(section_label(self.messages, self.edition.press_section)),
            key=_clean(self.edition.press_section),
            anchor=anchor,
            count=total,
            days=tuple(days),
            hidden=0,
            more=None,
            links=self._take_links(),
        )

    def sections(self) -> tuple[SectionView, ...]:
        """The configured sections; the press outlets in the section of the same name, else first.

        The newsroom's own "Press Review" section (its rules file commentary and agencies' press
        reviews) is where the outlets go: they come first in it, its own stories follow.
        """
        views: list[SectionView] = []
        placed = not self.edition.press
        for group in self.edition.sections:
            # Links are numbered from 1 in each block, so a section's text is the same whatever
            # sections come before it: it is rendered once and joined into every section set's message.
            self._next_ref = 1
            if not placed and group.name == self.edition.press_section:
                press = self.press(group.anchor)  # numbered before the section's own links, as the text part lists them
                own = self.section(group)
                assert press is not None
                views.append(
                    dataclasses.replace(
                        own,
                        count=own.count + press.count,
                        days=(*press.days, *own.days),
                        links=(*press.links, *own.links),
                    )
                )
                placed = True
            else:
                views.append(self.section(group))
        self._next_ref = 1
        if not placed and (press := self.press()) is not None:
            views.insert(0, press)
        return tuple(views)


# Mail clients lay out an <img> before it loads from its width and height; a lead image's real size
# is rarely known, so it is given a 16:9 box of the column's width and CSS height:auto keeps its
# own proportions once loaded. An <img> in the summary that states its size keeps that ratio.
LEAD_IMAGE_WIDTH = 592
_SUMMARY_IMG = re.compile(r'<img\b[^>]*?\bsrc="([^"]+)"[^>]*>')
_DIMENSION = re.compile(r'\b(width|height)="(\d+)"')


def _lead_image(lead: Item, headline: str) -> ImageView | None:
    """One image per story: the feed's media image, else the first image of its summary."""
    url = _href(lead.image_url)
    width, height = 16, 9
    if url is None:
        m = _SUMMARY_IMG.search(lead.summary_html)
        if m is None:
            return None
        url = _href(html.unescape(m.group(1)))
        dims = dict(_DIMENSION.findall(m.group(0)))
        if url and dims.get("width", "0") != "0" and dims.get("height", "0") != "0":
            width, height = int(dims["width"]), int(dims["height"])
    if url is None:
        return None
    return ImageView(
        url=url, width=LEAD_IMAGE_WIDTH, height=max(1, round(LEAD_IMAGE_WIDTH * height / width)), alt=_clean(headline)
    )


def _all_stories(edition: Edition) -> Iterator[Story]:
    yield from edition.top_stories
    for section in edition.sections:
        for day in section.days:
            yield from day.stories


def _by_outlets(edition: Edition) -> list[Story]:
    """The edition's stories, those most outlets cover first (the top block first); among equals,
    the edition's own order."""
    ranked = sorted(enumerate(_all_stories(edition)), key=lambda pair: (-pair[1].outlets, pair[0]))
    return [story for _, story in ranked]


# How many outlets fewer a story in the edition's language may have than one in another language
# and still be "about as well covered": the subject prefers the story its reader can read.
SUBJECT_OUTLETS_MARGIN = 1


def _in_language(story: Story, title: str, language: str) -> bool:
    """Whether a story's headline is in `language` (as the templates' lang= attributes read it)."""
    return not _other_language(title, f"{story.lead.title} {story.lead.summary_text}", language)


def _subject_story(edition: Edition) -> str:
    """The headline the "headline" subject carries: the story most outlets tell, when two or more
    do; "" when none is. A story in another language than the edition's gives way to one in it that
    is about as well covered (`SUBJECT_OUTLETS_MARGIN`): an English site's all-sections reader was
    sent a Spanish football headline because it was the day's only story two outlets told. A story
    told by clearly more outlets still leads, whatever its language."""
    ranked = [(story, title) for story in _by_outlets(edition) if (title := _clean(story.lead.title))]
    if not ranked or ranked[0][0].outlets < 2:
        return ""
    top, title = ranked[0]
    if _in_language(top, title, edition.language):
        return title
    for story, other in ranked[1:]:
        if story.outlets < top.outlets - SUBJECT_OUTLETS_MARGIN:
            break
        if _in_language(story, other, edition.language):
            return other
    return title


# --------------------------------------------------------------------------- the renderer


class Renderer:
    """Renders editions with the built-in templates, or same-named ones from ``templates_dir``.

    Messages come from the built-in catalogue overlaid by ``templates_dir``'s (see the module
    docstring). Each language gets its own Jinja environment, so renders in several threads (the
    web app) never share installed translations.
    """

    def __init__(
        self,
        *,
        templates_dir: str | None = None,
        language: str = "en",
        images: bool = False,
        excerpt_chars: int = 280,
        catalogues: Sequence[Path] | None = None,
    ) -> None:
        """`catalogues`: the folders whose catalogues it reads, later over earlier; by default the
        built-in one and `templates_dir`'s (`catalogue_folders`). The web edition page takes its
        templates from elsewhere but the site's catalogues, so it names sections as the email does."""
        self.language = language
        self.images = images
        self.excerpt_chars = excerpt_chars
        self._dirs = [Path(templates_dir).resolve()] if templates_dir else []
        self._dirs.append(builtin_templates_dir().resolve())
        self._catalogues = tuple(catalogues) if catalogues is not None else catalogue_folders(templates_dir)
        # keep_at_rules keeps the @media blocks (narrow screens, prefers-color-scheme) in <style>;
        # remote stylesheets are never fetched while rendering (E6).
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False, minify_css=True)
        self._envs: dict[str, jinja2.Environment] = {}
        self._translations: dict[str, NullTranslations] = {}

    def translations(self, language: str) -> NullTranslations:
        """The language's messages: the built-in catalogue, then templates_dir's over it."""
        if language not in self._translations:
            self._translations[language] = load_translations(language, self._catalogues)
        return self._translations[language]

    def _env(self, language: str) -> jinja2.Environment:
        if language not in self._envs:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader([str(d) for d in self._dirs]),
                autoescape=_autoescape,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                extensions=["jinja2.ext.i18n"],
            )
            env.filters["wrap"] = wrap
            env.filters["underline"] = underline
            env.filters["nbsp"] = nbsp
            # New-style: _("... %(name)s", name=x) formats after translating and escapes x in HTML.
            env.install_gettext_translations(self.translations(language), newstyle=True)  # type: ignore[attr-defined]
            self._envs[language] = env
        return self._envs[language]

    # -------------------------------------------------------------- rendering

    def render(self, edition: Edition, *, max_html_bytes: int = GMAIL_CLIP_BYTES) -> Rendered:
        language = edition.language or self.language
        messages = self.translations(language)
        title = _clean(site_title(messages, edition.title))
        date_label = format_date(edition.day, str(messages.pgettext("CLDR date pattern", "long")), locale=language)
        subject = self.subject_line(edition, f"{title} — {date_label}", messages)
        preheader = self.headline(edition, messages, PREHEADER_CHARS)
        base = {
            "title": title,
            "date_label": date_label,
            "subject": subject,
            "preheader": preheader,
            "web_url": edition.web_url,
            "lang": language,
            "images": self.images,
            "unsubscribe_url": PLACEHOLDER_UNSUBSCRIBE_URL,
            "preferences_url": PLACEHOLDER_PREFERENCES_URL,
            "cut": "",
        }

        def views(budget: _Budget) -> dict[str, Any]:
            builder = _ViewBuilder(
                edition,
                messages=messages,
                locale=language,
                images=self.images,
                budget=budget,
                excerpt_chars=self.excerpt_chars,
            )
            top = builder.top_stories()
            return {**base, "top_stories": top, "sections": builder.sections(), "notice": None}

        text = self._render(language, TEXT_TEMPLATE, views(_Budget()))
        html = self._fit_html(edition, language, views, max_html_bytes)
        return Rendered(subject=subject, html=html, text=text, preheader=preheader)

    def _fit_html(self, edition: Edition, language: str, views: Any, max_bytes: int) -> str:
        """The HTML part, shortened until it fits under Gmail's clipping size.

        First summaries are shortened, then dropped; then stories are dropped from the end of
        every section alike (they are counted in "N more in <Section>"), found by bisection so
        a huge edition costs a handful of renders rather than one per story.
        """
        limit = max_bytes - _URL_ALLOWANCE

        def attempt(budget: _Budget) -> str:
            context = views(budget)
            if budget != _Budget():
                # The template words it: "summaries were shortened" or "this email was shortened".
                context["notice"] = Notice(
                    stories_dropped=budget.per_section is not None or not budget.top_stories, url=_href(edition.web_url)
                )
            return self._inline(self._render(language, HTML_TEMPLATE, context))

        tried: dict[Budget, str] = {}

        def fits(budget: Budget) -> bool:
            if budget not in tried:
                tried[budget] = attempt(budget)
            return _size(tried[budget]) <= limit

        chosen = choose_budget(fits, most_per_section(edition))
        return tried[chosen] if chosen in tried else attempt(chosen)

    @staticmethod
    def subject_line(edition: Edition, head: str, messages: NullTranslations) -> str:
        """The subject as `[digest] subject` words it; `head` is '<title> — <date>'.

        "headline" (the default): '<title> — <date>: <the story most outlets tell>' (in the edition's
        language when one about as well covered is: `_subject_story`), the story cut to fit and the
        title and date whole; just the head when no story is told by two outlets.
        "lead": 'Press review: <lead story> and <second story>'. "date": the head alone.
        """
        if edition.subject_style == "lead":
            return Renderer.headline(edition, messages, SUBJECT_CHARS) or head
        if edition.subject_style == "headline":
            lead = _subject_story(edition)
            room = SUBJECT_CHARS - len(head) - 2
            if lead and room >= 12:
                return f"{head}: {_cut(lead, room)}"
        return head

    @staticmethod
    def headline(edition: Edition, messages: NullTranslations, limit: int) -> str:
        """'Press review: <lead story> and <second story>', cut to `limit` characters, one safe line.

        The lead stories are the ones most outlets cover (the top block first); among equals, the
        edition's own order. The second headline is shortened before the first.
        """
        titles = []
        for story in _by_outlets(edition):
            t = _clean(story.lead.title)
            if t and t not in titles:
                titles.append(t)
            if len(titles) == 2:
                break
        if not titles:
            return ""
        if len(titles) == 1:
            return _cut(str(messages.gettext("Press review: %(first)s") % {"first": titles[0]}), limit)
        pattern = str(messages.gettext("Press review: %(first)s and %(second)s"))
        first, second = titles
        room = limit - len(pattern % {"first": "", "second": ""})
        if len(first) + len(second) > room:
            second = _cut(second, max(room - len(first), room // 3))
            first = _cut(first, max(room - len(second), 1))
        return _cut(pattern % {"first": first, "second": second}, limit)

    def _inline(self, html: str) -> str:
        try:
            return str(self._inliner.inline(html))
        except Exception as exc:  # css_inline raises its own ValueError subclasses
            raise TemplateError(f"The CSS of {HTML_TEMPLATE} cannot be inlined: {exc}.") from exc

    def _render(self, language: str, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self._env(language).get_template(name).render(context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"Template {exc.name} was not found in {', '.join(map(str, self._dirs))}.",
                hint=None if len(self._dirs) > 1 else _UPGRADED_UNDER,
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"Template {exc.name or name} has a syntax error on line {exc.lineno}: {exc.message}."
            ) from exc
        except jinja2.UndefinedError as exc:
            where, root = self._template_in(exc.__traceback__)
            raise TemplateError(
                f"Template {where or name} uses an undefined variable: {exc.message}.",
                # digest's own template asks this process's code for what it lacks: the files on
                # disk are a newer release's, installed under a running daemon (an audit's workers
                # failed every pass, told to remove a templates_dir nobody had set).
                hint=_UPGRADED_UNDER if root in (None, self._dirs[-1]) else None,
            ) from exc

    def _template_in(self, tb: TracebackType | None) -> tuple[str | None, Path | None]:
        """The innermost template in a traceback (Jinja2 gives template frames their file name),
        and the templates folder it is in."""
        found: tuple[str | None, Path | None] = (None, None)
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            for root in self._dirs:
                if filename.startswith(str(root)):
                    found = (Path(filename).relative_to(root).as_posix(), root)
            tb = tb.tb_next
        return found


_UPGRADED_UNDER = (
    "digest's own templates do not fit this running process: digest was probably upgraded while it ran. "
    "Restart the daemon and workers (stop them before installing a new version); unsent messages stay pending."
)


def _autoescape(name: str | None) -> bool:
    # E4: every HTML template (and partial) escapes by default; the text ones must not.
    return name is not None and ".html" in name


def _size(html: str) -> int:
    return len(html.encode("utf-8"))


# --------------------------------------------------------------------------- fitting under the clip


def most_per_section(edition: Edition) -> int:
    """The most stories any section (or press outlet) of the edition shows: where bisection starts."""
    return max([s.shown for s in edition.sections] + [len(g.stories) for g in edition.press], default=0)


def choose_budget(fits: Callable[[Budget], bool], most: int) -> Budget:
    """The first budget whose HTML fits, in the order the edition gives way (issue 13's rule).

    First summaries are shortened, then dropped; then the synopses of stories outside the top block
    (the top stories keep theirs longest); then stories are dropped from the end of every section
    alike (counted in "N more in <Section>"), found by bisection so a huge edition costs a handful
    of attempts rather than one per story; last, the top stories too.
    """
    for budget in (
        Budget(),
        Budget(summaries="short"),
        Budget(summaries="none"),
        Budget(summaries="none", synopses="top"),
    ):
        if fits(budget):
            return budget
    lo, hi = 0, most  # bisect the largest per-section count that fits
    best: Budget | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = Budget(summaries="none", per_section=mid, synopses="top")
        if fits(candidate):
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else Budget(summaries="none", per_section=0, top_stories=False, synopses="top")


# --------------------------------------------------------------------------- rendered once, cut per section
#
# A subscriber's edition differs from the whole edition only in which sections it has (with no top
# stories block: that block picks across the chosen sections). Each section renders the same in
# every message (links are numbered per section), so the whole edition is rendered once per HTML
# budget and cut where the templates say {{ cut }}; a section set's message is a join of pieces.

HTML_CUT = "<!--digest-cut-->"  # an HTML comment: css-inline keeps it; feed text cannot make one (E4)
TEXT_CUT = "\x1f"  # unit separator: _clean drops it from feed text (str.split treats it as space)
_SUBJECT_MARK = "\ue000"  # private-use characters stand for the per-set subject and preheader
_PREHEADER_MARK = "\ue001"


class _HtmlCut:
    """The HTML cut marker for the templates: a constant of ours, written as is (``__html__``), not feed text."""

    def __html__(self) -> str:
        return HTML_CUT

    def __str__(self) -> str:
        return HTML_CUT


@dataclass(frozen=True, slots=True)
class Pieces:
    """One part (HTML or text) of an edition, cut into pieces that join into any section set's part (`_join`).

    ``head`` is split where the subject (and, in HTML, the preheader) goes, and holds the top block's
    contents entry; ``contents`` and ``sections`` map a section's name to its contents entry and its
    block; ``middle`` joins the contents to the first block, and holds the top block; ``tail`` is the
    footer, with the subscriber markers.
    """

    head: tuple[str, ...]
    contents: Mapping[str, str]
    middle: str
    sections: Mapping[str, str]
    tail: str
    size: Mapping[str, int]  # UTF-8 bytes of every piece above, by the piece itself


def _join(frame: Pieces, sections: Sequence[Pieces], names: Sequence[str], dynamic: Sequence[str]) -> list[str]:
    """A section set's part: the head, middle and tail of `frame` (the set's top block, or the whole
    edition's), with `dynamic` (subject, preheader) between the head's parts, and each name's contents
    entry and block from its own cut (`sections`, one per name)."""
    out = [frame.head[0]]
    for value, part in zip(dynamic, frame.head[1:], strict=True):
        out += (value, part)
    out += [pieces.contents[n] for n, pieces in zip(names, sections, strict=True)]
    if frame.middle:
        out.append(frame.middle)
    out += [pieces.sections[n] for n, pieces in zip(names, sections, strict=True)]
    out.append(frame.tail)
    return out


def _bytes_of(frame: Pieces, sections: Sequence[Pieces], names: Sequence[str], dynamic: Sequence[str]) -> int:
    """The UTF-8 size of `_join`'s result, from the pieces' sizes."""
    size = frame.size
    return (
        sum(size[p] for p in frame.head)
        + sum(len(d.encode("utf-8")) for d in dynamic)
        + sum(
            pieces.size[pieces.contents[n]] + pieces.size[pieces.sections[n]]
            for n, pieces in zip(names, sections, strict=True)
        )
        + size[frame.middle]
        + size[frame.tail]
    )


def _cut_pieces(whole: str, cut: str, names: Sequence[str], marks: Sequence[str], *, middle: bool) -> Pieces | None:
    """Cut a rendered part; None when the template does not mark its pieces as the built-in ones do."""
    parts = whole.split(cut)
    n = len(names)
    if len(set(names)) != n or len(parts) != 2 * n + (3 if middle else 2):
        return None
    head = parts[0]
    pieces: list[str] = []
    for mark in marks:
        if head.count(mark) != 1:
            return None
        before, head = head.split(mark)
        pieces.append(before)
    pieces.append(head)
    contents = dict(zip(names, parts[1 : n + 1], strict=True))
    rest = parts[n + 1 :]
    mid = rest.pop(0) if middle else ""
    sections = dict(zip(names, rest[:n], strict=True))
    tail = rest[n]
    every = [*pieces, *contents.values(), mid, *sections.values(), tail]
    return Pieces(
        head=tuple(pieces),
        contents=contents,
        middle=mid,
        sections=sections,
        tail=tail,
        size={p: len(p.encode("utf-8")) for p in every},
    )


def html_text(value: str) -> str:
    """Text as the inlined HTML writes it (html5ever's serialiser: &, no-break space, <, >)."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


class SectionCuts:
    """The whole edition rendered once (once per HTML budget needed), cut into per-section pieces.

    ``parts(narrowed)`` gives a section set's subject and the pieces of its text and HTML parts,
    joined from these: the same strings ``Renderer.render`` gives for that edition, with the Gmail
    clip decided from the pieces' sizes.

    A top stories block is drawn from each set's own sections, so it takes from each section the
    stories that rank first in it (`digest.compose`), a different number for each set. `taken(k)`
    gives the whole edition without a block and without each section's k first stories (compose's
    ``taken``): a set whose block takes k stories of a section shows that section as it is there,
    so sections are rendered once per number taken (the block's size at most), not once per set.
    The block, with its contents entry before the sections' and the notice, is the head and middle
    of an edition of the block alone, rendered once per block. ``usable`` is False for an edition
    with a block and no `taken`, or when a templates_dir template has no {{ cut }} markers.
    """

    def __init__(
        self,
        renderer: Renderer,
        whole: Edition,
        *,
        max_html_bytes: int = GMAIL_CLIP_BYTES,
        taken: Callable[[int], Edition] | None = None,
    ) -> None:
        self.renderer, self.whole = renderer, whole
        self.limit = max_html_bytes - _URL_ALLOWANCE
        self.language = whole.language or renderer.language
        self.messages = renderer.translations(self.language)
        self._taken = taken
        self._html: dict[tuple[Budget, int], Pieces | None] = {}
        self._text: dict[int, Pieces | None] = {}
        self._blocks: dict[tuple[Budget | None, tuple[int, ...]], Pieces | None] = {}
        self.usable = (not whole.top_stories or taken is not None) and (
            self.text_pieces(0) is not None and self.html_pieces(Budget(), 0) is not None
        )

    def edition(self, taken: int) -> Edition:
        """The whole edition without a top block and without each section's `taken` first stories
        (asked once per number taken and clip budget: `compose.Narrowing.taken` remembers them)."""
        if not self.whole.top_stories:
            return self.whole  # nothing is ever taken
        assert self._taken is not None
        return self._taken(taken)

    def _views(self, budget: Budget, whole: Edition) -> dict[str, Any]:
        r, language = self.renderer, self.language
        date_label = format_date(whole.day, str(self.messages.pgettext("CLDR date pattern", "long")), locale=language)
        builder = _ViewBuilder(
            whole,
            messages=self.messages,
            locale=language,
            images=r.images,
            budget=budget,
            excerpt_chars=r.excerpt_chars,
        )
        notice = None
        if budget != Budget():
            notice = Notice(
                stories_dropped=budget.per_section is not None or not budget.top_stories, url=_href(whole.web_url)
            )
        return {
            "title": _clean(site_title(self.messages, whole.title)),
            "date_label": date_label,
            "subject": _SUBJECT_MARK,
            "preheader": _PREHEADER_MARK,
            "web_url": whole.web_url,
            "lang": language,
            "images": r.images,
            "unsubscribe_url": PLACEHOLDER_UNSUBSCRIBE_URL,
            "preferences_url": PLACEHOLDER_PREFERENCES_URL,
            "top_stories": builder.top_stories(),
            "sections": builder.sections(),
            "notice": notice,
            "cut": "",
        }

    def _cut(self, edition: Edition, budget: Budget | None) -> Pieces | None:
        """One edition's text part (`budget` None) or HTML part at `budget`, cut into pieces."""
        views = self._views(budget or Budget(), edition)
        names = tuple(v.key for v in views["sections"])
        if budget is None:
            context = {**views, "cut": TEXT_CUT}
            text = self.renderer._render(self.language, TEXT_TEMPLATE, context)
            return _cut_pieces(text, TEXT_CUT, names, (f"{_SUBJECT_MARK}\n=",), middle=True)
        whole = self.renderer._inline(self.renderer._render(self.language, HTML_TEMPLATE, {**views, "cut": _HtmlCut()}))
        return _cut_pieces(whole, HTML_CUT, names, (_SUBJECT_MARK, _PREHEADER_MARK), middle=True)

    def text_pieces(self, taken: int) -> Pieces | None:
        if taken not in self._text:
            self._text[taken] = self._cut(self.edition(taken), None)
        return self._text[taken]

    def html_pieces(self, budget: Budget, taken: int) -> Pieces | None:
        if (budget, taken) not in self._html:
            self._html[(budget, taken)] = self._cut(self.edition(taken), budget)
        return self._html[(budget, taken)]

    def _block(self, narrowed: Edition, budget: Budget | None) -> Pieces | None:
        """Head, middle and tail of a set's part: its top block (text: `budget` None), or, with no
        block, those of the whole edition."""
        if not narrowed.top_stories:
            return self.text_pieces(0) if budget is None else self.html_pieces(budget, 0)
        key = (budget, tuple(s.lead.id for s in narrowed.top_stories))
        if key not in self._blocks:
            alone = dataclasses.replace(self.whole, sections=(), press=(), top_stories=narrowed.top_stories)
            self._blocks[key] = self._cut(alone, budget)
        return self._blocks[key]

    def subject(self, narrowed: Edition) -> tuple[str, str]:
        """(subject, preheader) of a section set's edition, as Renderer.render words them."""
        messages = self.messages
        title = _clean(site_title(messages, self.whole.title))
        date_label = format_date(
            self.whole.day, str(messages.pgettext("CLDR date pattern", "long")), locale=self.language
        )
        subject = Renderer.subject_line(narrowed, f"{title} — {date_label}", messages)
        return subject, Renderer.headline(narrowed, messages, PREHEADER_CHARS)

    def parts(self, narrowed: Edition) -> tuple[str, str, list[str], list[str]]:
        """(subject, preheader, text pieces, HTML pieces) of `narrowed`, a section set's part of the whole
        edition (`digest.compose.Narrowing.narrow`)."""
        assert self.usable, "check usable first"
        names = [_clean(g.name) for g in narrowed.sections]
        if narrowed.press and _clean(narrowed.press_section) not in names:
            names.insert(0, _clean(narrowed.press_section))  # the outlets come first when no section has the name
        # How many of each section's stories the set's top block took (the press outlets: none).
        taken: dict[str, int] = {}
        for section in narrowed.top_sections:
            taken[_clean(section)] = taken.get(_clean(section), 0) + 1
        subject, preheader = self.subject(narrowed)
        dynamic = (html_text(subject), html_text(preheader))

        def cut(budget: Budget | None) -> tuple[Pieces, list[Pieces]]:
            """The set's frame and its sections' cuts: text (`budget` None) or HTML at `budget`."""
            frame = self._block(narrowed, budget)
            found = [
                self.text_pieces(k) if budget is None else self.html_pieces(budget, k)
                for k in (taken.get(n, 0) for n in names)
            ]
            sections = [p for p in found if p is not None]
            if frame is None or len(sections) != len(found):
                template = TEXT_TEMPLATE if budget is None else HTML_TEMPLATE
                raise TemplateError(f"{template} lost its {{{{ cut }}}} markers for this section set.")
            return frame, sections

        def fits(budget: Budget) -> bool:
            return _bytes_of(*cut(budget), names, dynamic) <= self.limit

        budget = choose_budget(fits, most_per_section(narrowed))
        return (
            subject,
            preheader,
            _join(*cut(None), names, (underline(wrap(subject), "="),)),
            _join(*cut(budget), names, dynamic),
        )

    def render(self, narrowed: Edition) -> Rendered:
        """The pieces joined: what Renderer.render(narrowed) gives (tests compare the two)."""
        subject, preheader, text, html_pieces = self.parts(narrowed)
        return Rendered(subject=subject, html="".join(html_pieces), text="".join(text), preheader=preheader)
