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
import textwrap
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2
from babel.dates import format_date
from babel.support import NullTranslations

from digest.catalogue import CATALOGUE_DOMAIN, builtin_templates_dir, catalogue_path, load_translations
from digest.errors import TemplateError
from digest.model import (
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    Edition,
    Item,
    Rendered,
    SectionGroup,
    Story,
)
from digest.sanitize import header_text

__all__ = ["CATALOGUE_DOMAIN", "PLACEHOLDER_PREFERENCES_URL", "PLACEHOLDER_UNSUBSCRIBE_URL", "Renderer",
           "builtin_templates_dir", "catalogue_path", "load_translations"]

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
# A subject naming the lead story stays whole in most inboxes' list view (about 70-100 characters
# show) and within one 78-character header line plus a fold once RFC 2047-encoded.
SUBJECT_CHARS = 110
_LINK_SCHEMES = frozenset({"http", "https"})


# --------------------------------------------------------------------------- view objects


@dataclass(frozen=True, slots=True)
class LinkView:
    text: str
    url: str | None  # None when the feed gave no usable http(s) link
    source: str = ""
    ref: int | None = None  # number of the link in the plain-text part

    @property
    def cited(self) -> str:
        """The text with its plain-text reference number: "Title [3]"."""
        return f"{self.text} [{self.ref}]" if self.ref is not None else self.text


@dataclass(frozen=True, slots=True)
class StoryView:
    title: LinkView
    source: str
    when: str  # "January 16, 09:17 UTC+3"
    first_seen: bool  # undated: `when` is the time we first saw it
    summary_html: str  # sanitised by parse (E1); the only value the templates mark |safe
    summary_text: str
    image_url: str | None
    also: tuple[LinkView, ...]
    read_also: tuple[LinkView, ...]
    outlets: int = 0  # in "Top stories": how many outlets tell it


@dataclass(frozen=True, slots=True)
class DayView:
    heading: str
    stories: tuple[StoryView, ...]


@dataclass(frozen=True, slots=True)
class SectionView:
    name: str
    anchor: str
    count: int  # stories in the section today, shown or not
    days: tuple[DayView, ...]
    hidden: int  # stories left out of this email; the templates say "N more in <Section>"
    more: LinkView | None  # the link to the section in the web edition, when stories are hidden
    links: tuple[LinkView, ...]  # the numbered links of this block, for the plain-text part


@dataclass(frozen=True, slots=True)
class Notice:
    """The HTML part was shortened to fit (Gmail clipping); the full edition is at `url`."""

    stories_dropped: bool  # False: only summaries were shortened or dropped
    url: str | None


@dataclass(frozen=True, slots=True)
class _Budget:
    """How much of the edition the HTML part may show (Gmail clipping)."""

    summaries: str = "full"  # full | short | none
    per_section: int | None = None  # stories kept per section; None: all
    top_stories: bool = True


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
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc or any(c in url for c in " <>\"'"):
        return None
    return url


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


def wrap(text: str, indent: str = "", hang: str | None = None) -> str:
    """Jinja filter: wrap at 78 columns; long words (URLs) are never split."""
    return textwrap.fill(text, width=TEXT_WIDTH, initial_indent=indent,
                         subsequent_indent=indent if hang is None else hang,
                         break_long_words=False, break_on_hyphens=False)


def underline(text: str, char: str = "-") -> str:
    """Jinja filter: a heading with a rule as wide as the text under it."""
    return f"{text}\n{char * min(_display_width(text), TEXT_WIDTH)}"


def _utc_offset(moment: datetime) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- edition -> views


class _ViewBuilder:
    """Turns one Edition into view objects; numbers links for the plain-text part as it goes."""

    def __init__(self, edition: Edition, *, messages: NullTranslations, locale: str, images: bool,
                 budget: _Budget) -> None:
        self.edition, self.messages, self.locale = edition, messages, locale
        self.images, self.budget = images, budget
        self.zone = ZoneInfo(edition.timezone)
        self._next_ref = 1
        self._block_links: list[LinkView] = []

    def _link(self, text: str, url: str | None, source: str = "") -> LinkView:
        href = _href(url)
        ref = None
        if href is not None:
            ref, self._next_ref = self._next_ref, self._next_ref + 1
        link = LinkView(text=_clean(text), url=href, source=_clean(source), ref=ref)
        if href is not None:
            self._block_links.append(link)
        return link

    def _take_links(self) -> tuple[LinkView, ...]:
        links, self._block_links = tuple(self._block_links), []
        return links

    def when(self, item: Item) -> str:
        local = item.when.astimezone(self.zone)
        # Date patterns are messages too (as GNU programs translate "%B %d"): each language orders
        # the day and the month its own way. CLDR gives the names (babel.dates).
        pattern = str(self.messages.pgettext("CLDR date pattern", "MMMM d"))  # January 16
        day = format_date(local.date(), pattern, locale=self.locale)
        return f"{day}, {local:%H:%M} {_utc_offset(local)}"

    def story(self, story: Story) -> StoryView:
        lead = story.lead
        # Some feeds (microblogs, podcasts) give items no title: the start of the summary stands in.
        headline = lead.title or _cut(_clean(lead.summary_text), 90) or _clean(lead.source)
        title = self._link(headline, lead.url, lead.source)
        summary_html, summary_text = lead.summary_html, _clean(lead.summary_text)
        if self.budget.summaries == "short":
            summary_html, summary_text = "", _cut(summary_text, SHORT_SUMMARY_CHARS)
        elif self.budget.summaries == "none":
            summary_html, summary_text = "", ""
        image = _href(lead.image_url) if self.images else None
        return StoryView(
            title=title, source=_clean(lead.source), when=self.when(lead), first_seen=lead.undated,
            summary_html=summary_html.replace(PLACEHOLDER_UNSUBSCRIBE_URL, "").replace(
                PLACEHOLDER_PREFERENCES_URL, ""),
            summary_text=summary_text, image_url=image,
            also=tuple(self._link(item.source, item.url) for item in story.also),
            read_also=tuple(self._link(item.title or _cut(_clean(item.summary_text), 90), item.url, item.source)
                            for item in story.read_also),
        )

    def day_heading(self, day: date) -> str:
        pattern = str(self.messages.pgettext("CLDR date pattern", "EEEE, MMMM d"))  # Friday, January 16
        return _capitalise(format_date(day, pattern, locale=self.locale))

    def top_stories(self) -> SectionView | None:
        if not self.edition.top_stories or not self.budget.top_stories:
            return None
        stories = tuple(dataclasses.replace(self.story(s), outlets=s.outlets) for s in self.edition.top_stories)
        return SectionView(name=self.messages.gettext("Top stories"), anchor="top-stories", count=len(stories),
                           days=(DayView(heading="", stories=stories),), hidden=0, more=None,
                           links=self._take_links())

    def section(self, section: SectionGroup) -> SectionView:
        keep = self.budget.per_section
        days: list[DayView] = []
        shown = 0
        for day in section.days:
            stories = day.stories if keep is None else day.stories[: max(keep - shown, 0)]
            shown += len(stories)
            if stories:
                days.append(DayView(self.day_heading(day.day), tuple(self.story(s) for s in stories)))
        hidden = section.total - shown
        name = _clean(section.name)
        more = self._link(name, f"{self.edition.web_url}#{section.anchor}") if hidden > 0 else None
        return SectionView(name=name, anchor=section.anchor, count=section.total, days=tuple(days),
                           hidden=max(hidden, 0), more=more, links=self._take_links())

    def sections(self) -> tuple[SectionView, ...]:
        return tuple(self.section(s) for s in self.edition.sections)


def _subject(head: str, lead: Story | None) -> str:
    """'Morning Review — 7 January: <the story most outlets tell>', the story's title cut to fit.

    One line for the header (no CR, LF or other line breaks a feed could plant; F5) of at most
    SUBJECT_CHARS; the title and date always stay whole.
    """
    room = SUBJECT_CHARS - len(head) - 2
    story = header_text(_clean(lead.lead.title), limit=10_000) if lead is not None else ""
    if not story or room < 12:
        return head
    return f"{head}: {_cut(story, room)}"


def _all_titles(edition: Edition) -> Iterator[str]:
    yield from (s.lead.title for s in edition.top_stories)
    for section in edition.sections:
        for day in section.days:
            yield from (s.lead.title for s in day.stories)


# --------------------------------------------------------------------------- the renderer


class Renderer:
    """Renders editions with the built-in templates, or same-named ones from ``templates_dir``.

    Messages come from the built-in catalogue overlaid by ``templates_dir``'s (see the module
    docstring). Each language gets its own Jinja environment, so renders in several threads (the
    web app) never share installed translations.
    """

    def __init__(self, *, templates_dir: str | None = None, language: str = "en", images: bool = False) -> None:
        self.language = language
        self.images = images
        self._dirs = [Path(templates_dir).resolve()] if templates_dir else []
        self._dirs.append(builtin_templates_dir().resolve())
        # keep_at_rules keeps the @media blocks (narrow screens, prefers-color-scheme) in <style>;
        # remote stylesheets are never fetched while rendering (E6).
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False,
                                              minify_css=True)
        self._envs: dict[str, jinja2.Environment] = {}
        self._translations: dict[str, NullTranslations] = {}

    def translations(self, language: str) -> NullTranslations:
        """The language's messages: the built-in catalogue, then templates_dir's over it."""
        if language not in self._translations:
            self._translations[language] = load_translations(language, reversed(self._dirs))
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
            # New-style: _("... %(name)s", name=x) formats after translating and escapes x in HTML.
            env.install_gettext_translations(self.translations(language), newstyle=True)  # type: ignore[attr-defined]
            self._envs[language] = env
        return self._envs[language]

    # -------------------------------------------------------------- rendering

    def render(self, edition: Edition, *, max_html_bytes: int = GMAIL_CLIP_BYTES) -> Rendered:
        language = edition.language or self.language
        messages = self.translations(language)
        title = _clean(edition.title)
        date_label = format_date(edition.day, str(messages.pgettext("CLDR date pattern", "long")), locale=language)
        subject = _subject(f"{title} — {date_label}", edition.lead_story)
        titles = [_clean(t) for t in _all_titles(edition)][:3]
        preheader = _cut(" · ".join(titles), PREHEADER_CHARS)
        base = {"title": title, "date_label": date_label, "subject": subject, "preheader": preheader,
                "web_url": edition.web_url, "lang": language, "images": self.images,
                "unsubscribe_url": PLACEHOLDER_UNSUBSCRIBE_URL, "preferences_url": PLACEHOLDER_PREFERENCES_URL}

        def views(budget: _Budget) -> dict[str, Any]:
            builder = _ViewBuilder(edition, messages=messages, locale=language, images=self.images, budget=budget)
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
                context["notice"] = Notice(stories_dropped=budget.per_section is not None or not budget.top_stories,
                                           url=_href(edition.web_url))
            return self._inline(self._render(language, HTML_TEMPLATE, context))

        html = ""
        for budget in (_Budget(), _Budget(summaries="short"), _Budget(summaries="none")):
            html = attempt(budget)
            if _size(html) <= limit:
                return html
        most = max((s.shown for s in edition.sections), default=0)
        lo, hi = 0, most  # bisect the largest per-section count that fits
        best: str | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            candidate = attempt(_Budget(summaries="none", per_section=mid))
            if _size(candidate) <= limit:
                best, lo = candidate, mid + 1
            else:
                hi = mid - 1
        if best is None:  # even section headings alone are too big: drop the top stories as well
            best = attempt(_Budget(summaries="none", per_section=0, top_stories=False))
        return best

    def _inline(self, html: str) -> str:
        try:
            return str(self._inliner.inline(html))
        except Exception as exc:  # css_inline raises its own ValueError subclasses
            raise TemplateError(f"The CSS of {HTML_TEMPLATE} cannot be inlined: {exc}.") from exc

    def _render(self, language: str, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self._env(language).get_template(name).render(context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"Template {exc.name} was not found in {', '.join(map(str, self._dirs))}.") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"Template {exc.name or name} has a syntax error on line {exc.lineno}: "
                                f"{exc.message}.") from exc
        except jinja2.UndefinedError as exc:
            where = self._template_in(exc.__traceback__) or name
            raise TemplateError(f"Template {where} uses an undefined variable: {exc.message}.") from exc

    def _template_in(self, tb: TracebackType | None) -> str | None:
        """The innermost template in a traceback (Jinja2 gives template frames their file name)."""
        found = None
        roots = [str(d) for d in self._dirs]
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            for root in roots:
                if filename.startswith(root):
                    found = Path(filename).relative_to(root).as_posix()
            tb = tb.tb_next
        return found


def _autoescape(name: str | None) -> bool:
    # E4: every HTML template (and partial) escapes by default; the text ones must not.
    return name is not None and ".html" in name


def _size(html: str) -> int:
    return len(html.encode("utf-8"))
