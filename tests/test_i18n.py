"""The message catalogues (templates/i18n/<lang>/LC_MESSAGES/digest.po): complete, well-formed, merged.

The msgids are extracted the way `pybabel extract` would: Jinja2's extractor on every template,
Babel's Python extractor on digest/render.py, and the English sentences digest/web.py hands to the
web pages (they are translated there with |translate).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.pofile import read_po

from digest import config as cfg
from digest.catalogue import SECTION_NAME, SITE_TITLE
from digest.compose import Narrowing, PlacedStory
from digest.errors import TemplateError
from digest.model import DayGroup, Edition, Item, SectionGroup, Story
from digest.pipeline.mailer import compose_options
from digest.render import Renderer, SectionCuts, builtin_templates_dir, catalogue_path, load_translations

ROOT = Path(__file__).parents[1]
TEMPLATES = builtin_templates_dir()
JINJA = {
    "extensions": "jinja2.ext.i18n",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "newstyle_gettext": "true",
    "silent": "false",
}  # silent=false: a template that does not parse fails here

Key = tuple[str | None, str | tuple[str, ...]]  # (msgctxt, msgid or (singular, plural))


def _web_sentences() -> set[str]:
    """The sentences digest/web.py passes to its pages (_page, _preferences, _signup_form,
    _unreadable) as heading=, text=, error=, notice=."""
    tree = ast.parse((ROOT / "digest" / "web.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("_page", "_preferences", "_signup_form", "_unreadable")
        ):
            for kw in node.keywords:
                if kw.arg in ("heading", "text", "error", "notice"):
                    found |= {
                        n.value for n in ast.walk(kw.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    }
    return found


def used_messages() -> dict[Key, list[str]]:
    """Every message the code asks for, with where it is asked."""
    used: dict[Key, list[str]] = {}
    for name, line, msg, _comments, ctx in extract_from_dir(
        str(TEMPLATES), [("**.j2", "jinja2.ext.babel_extract")], {"**.j2": JINJA}
    ):
        used.setdefault((ctx, msg), []).append(f"templates/{name}:{line}")
    for module in ("render.py", "pipeline/signup.py"):  # the modules that call _() themselves
        for line, msg, _comments, ctx in extract_from_file("python", str(ROOT / "digest" / module)):
            used.setdefault((ctx, msg), []).append(f"digest/{module}:{line}")
    for sentence in _web_sentences():
        used.setdefault((None, sentence), []).append("digest/web.py")
    # The shipped sections' names, which render and the web pages look up under their own msgctxt.
    for name in (*cfg.DEFAULT_SECTIONS, cfg.DigestSettings().fallback_section):
        used.setdefault((SECTION_NAME, name), []).append("digest/config.py")
    # The default title, which render, the web pages and the sign-up email look up under its own msgctxt.
    used.setdefault((SITE_TITLE, cfg.DigestSettings().title), []).append("digest/config.py")
    return used


def catalogue(language: str) -> Catalog:
    with catalogue_path(TEMPLATES, language).open("rb") as po:
        return read_po(po, locale=language, abort_invalid=True)


def entries(cat: Catalog) -> dict[Key, object]:
    return {(m.context, tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id): m for m in cat if m.id}


def test_the_extraction_finds_the_messages_of_email_web_pages_and_code() -> None:
    used = used_messages()
    assert (None, "Read this edition online") in used and (None, "Your sections") in used
    assert (None, ("%(num)d more in %(section)s", "%(num)d more in %(section)s")) in used
    assert ("CLDR date pattern", "EEEE, MMMM d") in used and (None, "Top stories") in used
    assert (None, "This link does not work") in used and (None, "Choose a time zone from the list.") in used


@pytest.mark.parametrize("language", ["en", "ru"])
def test_each_catalogue_holds_exactly_the_messages_in_use(language: str) -> None:
    used, have = used_messages(), entries(catalogue(language))
    missing = {key: where for key, where in used.items() if key not in have}
    assert not missing, f"add these to {catalogue_path(TEMPLATES, language)}: {missing}"
    assert not set(have) - set(used), "messages no template or module uses any more"


def test_every_message_in_use_has_a_russian_translation() -> None:
    cat = catalogue("ru")
    have = entries(cat)
    for key, where in used_messages().items():
        message = have.get(key)
        assert message is not None, f"{key} ({where}) is not in the Russian catalogue"
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)  # type: ignore[attr-defined]
        assert all(strings) and len(strings) in (1, cat.num_plurals), f"{key} ({where}) is untranslated"
        assert not message.fuzzy, f"{key} is marked fuzzy"  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_translations_keep_the_placeholders_of_their_msgid(language: str) -> None:
    # Babel's checkers compare the %(name)s placeholders of msgid and msgstr.
    problems = [(m.id, errors) for m, errors in catalogue(language).check()]
    assert not problems
    for message in list(catalogue(language))[1:]:  # new-style gettext %-formats every message: a lone % breaks it
        strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        for text in strings:
            assert "%" not in re.sub(r"%\(\w+\)[sd]|%%", "", text or ""), text


@pytest.mark.parametrize(
    ("count", "word"),
    [(1, "материал"), (2, "материала"), (5, "материалов"), (21, "материал"), (11, "материалов"), (22, "материала")],
)
def test_russian_plural_forms_follow_the_count(count: int, word: str) -> None:
    ru = load_translations("ru", [TEMPLATES])
    text = ru.ngettext("%(num)d more in %(section)s", "%(num)d more in %(section)s", count)
    assert text % {"num": count, "section": "Мир"} == f"Ещё {count} {word} в разделе «Мир»"


@pytest.mark.parametrize("count", [1, 2, 5, 21])
def test_english_says_n_more_for_any_count(count: int) -> None:
    en = load_translations("en", [TEMPLATES])
    assert (
        en.ngettext("%(num)d more in %(section)s", "%(num)d more in %(section)s", count)
        % {"num": count, "section": "World"}
        == f"{count} more in World"
    )


def _edition(hidden: int) -> Edition:
    t = datetime(2026, 1, 16, 6, tzinfo=UTC)
    story = Story(
        lead=Item(
            id=1,
            feed_id=1,
            source="Лента",
            title="Заголовок",
            url="https://example.org/1",
            summary_html="<p>Текст</p>",
            summary_text="Текст",
            published=t,
            first_seen=t,
        )
    )
    section = SectionGroup(
        name="Мир", anchor="s-world", days=(DayGroup(date(2026, 1, 16), (story,)),), total=1 + hidden, shown=1
    )
    return Edition(
        title="Обзор",
        day=date(2026, 1, 16),
        timezone="UTC",
        sections=(section,),
        web_url="https://example.org/e",
        language="ru",
    )


@pytest.mark.parametrize(("hidden", "word"), [(1, "материал"), (2, "материала"), (5, "материалов"), (21, "материал")])
def test_a_russian_email_counts_hidden_stories_in_the_right_form(hidden: int, word: str) -> None:
    r = Renderer(language="ru").render(_edition(hidden))
    assert f"Ещё {hidden} {word} в разделе «Мир» →" in r.html
    assert f"Ещё {hidden} {word} в разделе «Мир» [" in r.text


def _override(folder: Path, language: str, body: str) -> None:
    path = catalogue_path(folder, language)
    path.parent.mkdir(parents=True)
    path.write_text(
        f'msgid ""\nmsgstr ""\n"Language: {language}\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n' + body,
        encoding="utf-8",
    )


def test_an_override_catalogue_replaces_only_its_own_entries(tmp_path: Path) -> None:
    _override(
        tmp_path, "ru", 'msgid "Unsubscribe"\nmsgstr "Больше не присылать"\n\nmsgid "Read also"\nmsgstr ""\n'
    )  # untranslated: the built-in one stays
    r = Renderer(templates_dir=str(tmp_path), language="ru").render(_edition(2))
    assert ">Больше не присылать</a>" in r.html and "Больше не присылать: " in r.text
    assert "Читать выпуск на сайте" in r.html  # not overridden: the built-in Russian
    assert "Ещё 2 материала" in r.text  # plural forms still from the built-in catalogue


def test_a_language_without_a_catalogue_shows_the_english_msgids() -> None:
    r = Renderer(language="de").render(dataclasses.replace(_edition(3), language="de"))
    assert "Read this edition online" in r.html and "3 more in Мир" in r.text
    assert "Freitag" in r.text and "16. Januar 2026" in r.subject  # names and formats still come from CLDR


def test_a_broken_catalogue_is_a_template_error_naming_it(tmp_path: Path) -> None:
    _override(tmp_path, "ru", 'msgid "Unsubscribe"\nmsgstr "Stop"\nmsgid_typo "x"\n')
    with pytest.raises(TemplateError, match=r"LC_MESSAGES/digest\.po cannot be read"):
        Renderer(templates_dir=str(tmp_path)).render(_edition(0))


def test_web_pages_speak_the_configured_language_and_still_escape() -> None:
    from digest.web import _pages

    pages = _pages(load_translations("ru", [TEMPLATES]))
    html = pages.get_template("preferences.html.j2").render(
        lang="ru",
        site_title="<i>Обзор</i>",
        email="<b>a@example.org</b>",
        subscribed=True,
        sections=[("Мир", True)],
        common_zones=[("UTC", "UTC")],
        all_zones=[("Europe/Moscow", "Europe/Moscow (UTC+3)")],
        timezone="UTC",
        form_mac="m",
        saved=True,
        error="Choose a time zone from the list.",
        unsubscribe_token="t",
    )
    assert "<h1>Ваши разделы</h1>" in html and "Сохранено." in html and ">Отписаться</button>" in html
    assert "Выберите часовой пояс из списка." in html  # a sentence from digest/web.py, via |translate
    assert "Для &lt;b&gt;a@example.org&lt;/b&gt;" in html and "&lt;i&gt;Обзор&lt;/i&gt;" in html
    assert "<b>" not in html and "<i>" not in html
    # |translate returns plain text: whatever it is given is escaped, as before translation existed.
    page = pages.get_template("message.html.j2").render(
        lang="ru", site_title="S", heading="Page not found", text="<script>x</script>"
    )
    assert "<h1>Страница не найдена</h1>" in page and "&lt;script&gt;" in page and "<script>" not in page
    assert "<h1>Editions</h1>" in _pages(load_translations("en", [TEMPLATES])).get_template("index.html.j2").render(
        lang="en", site_title="S", editions=[]
    )


def _site(language: str) -> cfg.Settings:
    """The config `digest init` writes, in `language`, with a section of the operator's own."""
    raw = tomllib.loads(cfg.example_toml())
    title = "Утренний обзор" if language == "ru" else "Morning Review"
    raw.setdefault("digest", {}).update(title=title, language=language, max_items_per_section=1)
    raw["sections"].append({"name": "Regional Desk", "categories": ["Regions"]})
    return cfg.from_mapping(raw)


def _story(n: int) -> Story:
    t = datetime(2026, 1, 16, 6 - n % 5, tzinfo=UTC)
    lead = Item(
        id=n,
        feed_id=n,
        source=f"Outlet {n}",
        title=f"Headline number {n}",
        url=f"https://example.org/{n}",
        summary_html="<p>Text.</p>",
        summary_text="Text.",
        published=t,
        first_seen=t,
    )
    return Story(lead=lead)


def _rendered_edition(settings: cfg.Settings) -> tuple[str, str]:
    """(HTML, text) of the edition an all-sections reader gets, as a send makes it (per-section pieces)."""
    placed = [
        PlacedStory(_story(n), section)
        for n, section in enumerate(("World", "World", "Sport", "Regional Desk", "Other", "Press Review"), start=1)
    ]
    narrowing = Narrowing(
        placed, day=date(2026, 1, 16), timezone="UTC", options=compose_options(settings), web_url="https://e/1"
    )
    renderer = Renderer(language=settings.digest.language)
    cuts = SectionCuts(renderer, narrowing.whole, taken=narrowing.taken)
    assert cuts.usable
    sent = cuts.render(narrowing.narrow(None))
    whole = renderer.render(narrowing.whole)  # the web edition's and preview's way
    assert (sent.html, sent.text) == (whole.html, whole.text)
    return sent.html, sent.text


def test_a_russian_site_shows_the_shipped_sections_in_russian_and_its_own_as_written() -> None:
    html, text = _rendered_edition(_site("ru"))
    for label in ("Мир", "Спорт", "Другое", "Обзор прессы"):
        assert f">{label}</h2>" in html and f">{label}</a>" in html, label  # the heading and the contents
        assert f"\n{label}\n" in text, label
    assert "Ещё 1 материал в разделе «Мир»" in html and "Ещё 1 материал в разделе «Мир» [" in text
    assert ">Regional Desk</h2>" in html and "\nRegional Desk\n" in text  # the operator's name, as written
    for english in ("World", "Sport", "Other", "Press Review"):
        assert f">{english}<" not in html and f"\n{english}\n" not in text, english


def test_an_english_site_shows_the_section_names_as_configured() -> None:
    html, text = _rendered_edition(_site("en"))
    assert ">World</h2>" in html and "\nSport\n" in text and "1 more in World" in text
    assert "Мир" not in html and "Regional Desk" in text


def test_the_sign_up_and_preferences_pages_label_shipped_sections_in_the_sites_language() -> None:
    from digest.web import _pages

    sections = [("World", True), ("Regional Desk", False), ("Press Review", False)]
    pages = _pages(load_translations("ru", [TEMPLATES]))
    common = {"lang": "ru", "site_title": "S", "common_zones": [("UTC", "UTC")], "all_zones": [], "timezone": "UTC"}
    preferences = pages.get_template("preferences.html.j2").render(
        **common,
        email="a@example.org",
        subscribed=True,
        sections=sections,
        form_mac="m",
        saved=False,
        error=None,
        unsubscribe_token="t",
    )
    signup = pages.get_template("subscribe.html.j2").render(
        **common, sections=sections, email="", form_token="f", error=None, subscribe_url=""
    )
    for page in (preferences, signup):
        # The label is translated; the value, what a subscriber's choice stores, is the configured name.
        assert 'value="World" checked> <span dir="auto">Мир</span>' in page
        assert 'value="Press Review"> <span dir="auto">Обзор прессы</span>' in page
        assert 'value="Regional Desk"> <span dir="auto">Regional Desk</span>' in page
