"""What a reader with a screen reader, a narrow screen or dark mode gets: the subscriber-facing audit.

The email and the edition's web page are read as a browser reads them (the stdlib's HTML parser):
a screen reader lists the headings as the page's outline and jumps by level, so no level may be
skipped going down and there is one h1.
"""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest
from test_render import item, rich_edition

from digest.model import DayGroup, Edition, PressGroup, Quote, SectionGroup, Story
from digest.render import Renderer, builtin_templates_dir, load_translations

WEB_TEMPLATES = str(builtin_templates_dir() / "web")


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.levels: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self.levels.append(int(tag[1]))


def heading_levels(html: str) -> list[int]:
    parser = _Headings()
    parser.feed(html)
    return parser.levels


def outline_problems(levels: list[int]) -> list[str]:
    """What breaks the outline: not exactly one h1, first, and a level skipped going down."""
    problems = [] if levels.count(1) == 1 and levels[:1] == [1] else [f"h1s: {levels.count(1)}, first h{levels[:1]}"]
    problems += [f"h{a} -> h{b}" for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
    return problems


def test_the_outline_check_finds_a_skipped_level_and_a_missing_h1() -> None:
    assert outline_problems([1, 2, 3, 4, 2, 3, 2]) == []
    assert outline_problems([1, 4, 2, 4, 3]) == ["h1 -> h4", "h2 -> h4"]
    assert outline_problems([2, 3]) and outline_problems([1, 2, 1])


def press_edition(language: str = "en") -> Edition:
    """The rich edition with the Press Review's outlets (their names are the day headings) first."""
    quoted = Story(lead=item(20, "Editorial: the rate decision", source="Коммерсант"))
    return dataclasses.replace(
        rich_edition(language=language),
        press=(PressGroup(outlet="Коммерсант", stories=(quoted,)),),
        press_section="Press Review",
    )


def one_section_edition() -> Edition:
    """No top stories, no press: a section's days and stories only."""
    section = SectionGroup(
        name="World",
        anchor="s-world",
        days=(DayGroup(rich_edition().day, (Story(lead=item(1, "A")),)),),
        total=1,
        shown=1,
    )
    return dataclasses.replace(rich_edition(), sections=(section,), top_stories=())


EDITIONS = {"rich": rich_edition, "press": press_edition, "one section": one_section_edition}


@pytest.mark.parametrize("page", ["email", "web"])
@pytest.mark.parametrize("edition", list(EDITIONS))
def test_the_headings_of_the_email_and_the_web_edition_skip_no_level_under_one_h1(page: str, edition: str) -> None:
    renderer = Renderer(templates_dir=WEB_TEMPLATES) if page == "web" else Renderer()
    levels = heading_levels(renderer.render(EDITIONS[edition]()).html)
    assert outline_problems(levels) == [], levels
    assert 4 in levels  # days and their stories are headings too, below the sections


# --------------------------------------------------------------------------- lang on feed text

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _Texts(HTMLParser):
    """Each story title, summary and quoted text: (what, its lang attribute or None, its text)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str, str | None, list[str]]] = []  # tag, what, lang, text
        self.found: list[tuple[str, str | None, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        a = dict(attrs)
        parent = self.open[-1][1] if self.open else ""
        what = a.get("class") or ("quoted" if parent == "quote" and tag == "span" else "")
        self.open.append((tag, what or "", a.get("lang"), []))

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            name, what, lang, text = self.open.pop()
            if what in ("title", "summary", "quoted"):
                self.found.append((what, lang, "".join(text).strip()))
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        for _, _, _, text in self.open:
            text.append(data)


def feed_texts(html: str) -> dict[str, str | None]:
    """Each title's, summary's and quote's text -> its lang attribute."""
    parser = _Texts()
    parser.feed(html)
    return {text: lang for _, lang, text in parser.found}


RU_TITLE, RU_SUMMARY = "Переговоры в Женеве продолжатся в понедельник", "Делегации встретятся снова после выходных."
EN_TITLE, EN_SUMMARY = "Talks in Geneva will go on on Monday", "The delegations will meet again after the weekend."
FR_TITLE = "Les négociations reprennent lundi à Genève"
FR_QUOTE = "Les deux délégations se retrouveront après le week-end, a indiqué le ministère."
RU_MORE, FR_READ_ALSO = "Делегации обсудят обмен пленными", "Le ministère publie le calendrier des réunions"
# One function word ("son" is French) says too little to overrule an English edition.
WEAK = "US imposes sanctions against Osama bin Laden son"


def two_language_edition(language: str) -> Edition:
    """Russian, English and French stories; the French one's synopsis quotes itself in French."""
    fr = item(32, FR_TITLE, source="Le Quotidien", summary=FR_QUOTE)
    told = Story(
        lead=fr,
        also=(item(34, "Geneva talks to resume", source="Wire Service"),),
        synopsis=(Quote(source="Le Quotidien", url=fr.url, item_id=32, sentences=(FR_QUOTE,)),),
    )
    stories = (
        told,
        Story(lead=item(30, RU_TITLE, source="Новости дня", summary=RU_SUMMARY)),
        Story(
            lead=item(31, EN_TITLE, source="Wire Service", summary=EN_SUMMARY),
            also=(item(35, RU_MORE, source="Wire Service"),),  # "More from Wire Service: ..."
            read_also=(item(36, FR_READ_ALSO, source="Le Quotidien"),),
        ),
        Story(lead=item(33, WEAK, source="Wire Service", summary="")),
    )
    section = SectionGroup(
        name="World", anchor="s-world", days=(DayGroup(rich_edition().day, stories),), total=4, shown=4
    )
    return dataclasses.replace(rich_edition(language=language), sections=(section,), top_stories=())


@pytest.mark.parametrize("page", ["email", "web"])
def test_feed_text_in_another_language_than_the_editions_says_which(page: str) -> None:
    for language, expected in [
        ("en", {RU_TITLE: "ru", RU_SUMMARY: "ru", EN_TITLE: None, EN_SUMMARY: None, WEAK: None}),
        ("ru", {RU_TITLE: None, RU_SUMMARY: None, EN_TITLE: "en", EN_SUMMARY: "en", WEAK: "fr"}),
    ]:
        templates = WEB_TEMPLATES if page == "web" else None
        html = Renderer(language=language, templates_dir=templates).render(two_language_edition(language)).html
        texts = feed_texts(html)
        expected |= {FR_TITLE: "fr", FR_QUOTE: "fr"}
        assert {text: texts.get(text, "absent") for text in expected} == expected, language
        assert f'<html lang="{language}"' in html
        # "More from" and "Read also" headlines too (before, only a story's own title and summary said it)
        links = {
            text: (re.findall(r' lang="(\w+)"', attrs) or [""])[0]
            for attrs, text in re.findall(r"<a ([^>]*)>([^<]*)</a>", html)
        }
        assert links[FR_READ_ALSO] == "fr", links
        assert links[RU_MORE] == ("" if language == "ru" else "ru"), links


# --------------------------------------------------------------------------- colours of the web pages


def _luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of #rrggbb."""
    rgb = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_is_wcags() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0 and contrast("#777777", "#777777") == 1.0
    assert round(contrast("#b3261e", "#1e1e1e"), 2) == 2.55  # the audit's figure


def _rules(css: str) -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declared = dict(
            (name.strip(), value.replace("!important", "").strip())
            for name, _, value in (d.partition(":") for d in body.split(";") if ":" in d)
        )
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update(declared)
    return rules


def page_colours(scheme: str) -> dict[str, dict[str, str]]:
    """The web pages' rules (templates/web/_page.html.j2) as a browser in that colour scheme applies them."""
    css = (builtin_templates_dir() / "web" / "_page.html.j2").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css.split("<style>", 1)[1].split("</style>", 1)[0], flags=re.S)
    dark_at = css.index("@media (prefers-color-scheme: dark)")
    dark_block = css[css.index("{", dark_at) + 1 : css.rindex("}")]
    base = _rules(re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css))
    if scheme == "dark":
        for selector, declared in _rules(dark_block).items():
            base.setdefault(selector, {}).update(declared)
    return base


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_web_pages_buttons_and_focus_ring_meet_wcag_aa_in_light_and_dark(scheme: str) -> None:
    rules = page_colours(scheme)
    page = rules["body"]["background-color"]
    assert page == {"light": "#ffffff", "dark": "#1e1e1e"}[scheme]
    red = rules["button.secondary"]
    assert red["background-color"] == "transparent"  # its text sits on the page
    assert contrast(red["color"], page) >= 4.5  # WCAG 1.4.3, text
    assert contrast(red["border-color"], page) >= 3  # 1.4.11, a component's boundary
    button = rules["button"]
    assert contrast(button["color"], button["background-color"]) >= 4.5
    ring = rules["button:focus-visible"]
    assert contrast(ring.get("outline-color") or ring["outline"].split()[-1], page) >= 3  # 1.4.11


def test_resuming_is_not_styled_as_a_destructive_action() -> None:
    from digest.web import _pages

    pages = _pages(load_translations("en", [builtin_templates_dir()]))
    context = {
        "lang": "en",
        "site_title": "S",
        "email": "a@example.org",
        "subscribed": True,
        "sections": [("World", True)],
        "common_zones": [("UTC", "UTC")],
        "all_zones": [],
        "timezone": "UTC",
        "form_mac": "m",
        "saved": False,
        "error": None,
        "unsubscribe_token": "t",
    }
    for paused, action, red in [(False, "pause", True), (True, "resume", False)]:
        html = pages.get_template("preferences.html.j2").render(**context, paused=paused)
        form = re.search(rf'<form[^>]*>(?:(?!</form>).)*value="{action}"(?:(?!</form>).)*</form>', html, re.S)
        assert form, html
        assert ('class="secondary"' in form.group(0)) is red, action
        assert 'class="secondary">Unsubscribe</button>' in html  # unsubscribing stays red


# --------------------------------------------------------------------------- the web page looks like the email


class _Styles(HTMLParser):
    """The inlined style of the first element of each class, its declarations sorted."""

    def __init__(self) -> None:
        super().__init__()
        self.styles: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in (a.get("class") or "").split():
            self.styles.setdefault(name, ";".join(sorted((a.get("style") or "").split(";"))))


def first_styles(html: str) -> dict[str, str]:
    parser = _Styles()
    parser.feed(html)
    return parser.styles


def test_the_web_editions_press_review_quotes_look_like_the_emails() -> None:
    """They rendered at the page's 17px with a paragraph's default margins, the email's at 15px, close together."""
    email = first_styles(Renderer().render(rich_edition()).html)
    page = first_styles(Renderer(templates_dir=WEB_TEMPLATES).render(rich_edition()).html)
    for name in ("synopsis", "quote", "summary", "title", "meta", "also"):
        assert page[name] == email[name], name
    assert "font-size:15px" in page["quote"] and "margin:0 0 6px 0" in page["quote"]


# --------------------------------------------------------------------------- short phrases stay whole


@pytest.mark.parametrize(
    ("language", "first_seen", "outlets"),
    [("en", "(first seen)", "2 outlets"), ("ru", "(время получения)", "2 издания")],
)
def test_first_seen_and_the_outlet_count_never_split_across_lines_in_html(
    language: str, first_seen: str, outlets: str
) -> None:
    """A no-break space in the HTML part ("(first" at a line's end, "seen)" on the next read as two
    things); the plain-text part keeps ordinary spaces, which its wrapping at 78 columns needs."""
    for page in ("email", "web"):
        templates = WEB_TEMPLATES if page == "web" else None
        r = Renderer(language=language, templates_dir=templates).render(rich_edition(language=language))
        for phrase in (first_seen, outlets):
            assert phrase.replace(" ", "&nbsp;") in r.html and phrase not in r.html, (page, phrase)
        assert first_seen in r.text and outlets in r.text and "\xa0" not in r.text
