"""The subject names a story its reader can read: one in the site's language ([digest] language)
when it is about as well covered as the day's most-told story in another language.

Audit (8 January 2017, an English site): an all-sections reader's subject was 20minutos' Spanish
football headline, because that match (20minutos and Le Monde) was the only story two outlets told.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from storepaths import as_stored

from digest.compose import ComposeOptions, PlacedStory, build_stories, compose
from digest.model import Item, Story
from digest.parse import parse_feed
from digest.render import Renderer

NOW = datetime(2030, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
HEAD = "Morning Review — March 10, 2026"


def _item(n: int, title: str, source: str, text: str) -> Item:
    return Item(
        id=n,
        feed_id=n,
        source=source,
        title=title,
        url=f"https://{source.lower().replace(' ', '')}.example/{n}",
        summary_html=f"<p>{text}</p>",
        summary_text=text,
        published=T0 - timedelta(minutes=n),
        first_seen=T0,
    )


SPANISH = (
    "El puerto de Vigo cierra dos días por el temporal de viento",
    "Las autoridades del puerto han decidido suspender todas las operaciones hasta el jueves por la tarde.",
)
ENGLISH = (
    "Harbour board buys the island ferry line for a record sum",
    "The harbour board has bought the island ferry line, and the new owners promise more crossings.",
)


def _told_by(n: int, outlets: int, headline: tuple[str, str], first: int) -> Story:
    members = [_item(first + k, headline[0], f"Outlet {first + k}", headline[1]) for k in range(outlets)]
    return Story(lead=members[0], also=tuple(members[1:]))


def _subject(*stories: Story, language: str = "en") -> str:
    options = ComposeOptions(title="Morning Review", section_order=("News",), language=language)
    placed = [PlacedStory(story, "News") for story in stories]
    edition = compose(placed, day=date(2026, 3, 10), timezone="UTC", chosen=None, options=options, web_url="https://e/")
    return Renderer(language=language).render(edition).subject


def test_a_story_in_the_sites_language_about_as_well_covered_names_the_edition() -> None:
    spanish, english = _told_by(1, 3, SPANISH, 10), _told_by(2, 2, ENGLISH, 20)
    assert _subject(spanish, english) == f"{HEAD}: {ENGLISH[0]}"
    # One outlet fewer is about as well covered, also when no other story is told twice.
    assert _subject(_told_by(1, 2, SPANISH, 10), _told_by(2, 1, ENGLISH, 20)) == f"{HEAD}: {ENGLISH[0]}"


def test_a_story_clearly_more_outlets_tell_names_the_edition_in_any_language() -> None:
    spanish, english = _told_by(1, 4, SPANISH, 10), _told_by(2, 2, ENGLISH, 20)
    assert _subject(spanish, english) == f"{HEAD}: {SPANISH[0]}"
    assert _subject(_told_by(1, 2, SPANISH, 10)) == f"{HEAD}: {SPANISH[0]}"  # nothing else to say
    # In the site's language already: the most-told story, as before.
    assert _subject(_told_by(1, 2, ENGLISH, 10), _told_by(2, 2, SPANISH, 20)) == f"{HEAD}: {ENGLISH[0]}"


def test_a_spanish_site_prefers_the_spanish_story_as_well_covered() -> None:
    subject = _subject(_told_by(1, 2, ENGLISH, 10), _told_by(2, 2, SPANISH, 20), language="es")
    assert subject.endswith(f": {SPANISH[0]}"), subject


def _corpus_items(name: str, feed_id: int, source: str, *titles: str) -> list[Item]:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    body = (root / "feeds" / "news" / name).read_bytes()
    parsed = parse_feed(body, url=f"https://corpus.example/{name}", content_type=None, now=NOW)
    found = [p for p in parsed.items if any(p.title.startswith(t) for t in titles)]
    assert len(found) == len(titles), [p.title for p in found]
    return [
        as_stored(p, id=feed_id * 1000 + k, feed_id=feed_id, source=source, first_seen=p.published or NOW)
        for k, p in enumerate(found)
    ]


def test_the_audits_english_site_is_not_sent_a_spanish_football_subject() -> None:
    """The audit's day from the corpus: 20minutos' and Le Monde's reports of the Real Madrid match
    (one story, two outlets, led by the Spanish headline) and the Indian Express's English reports,
    each told by one outlet, clustered and composed as the daemon does."""
    items = (
        _corpus_items("20minutos_rss10.xml", 1, "20minutos.es", "El Real Madrid pasa por encima del Granada")
        + _corpus_items("lemonde_une.xml", 2, "Le Monde", "Football : Zidane égale le record")
        + _corpus_items(
            "indian-express_world.xml",
            3,
            "The Indian Express",
            "To celebrate inaugural or not?",
            "Mike Pence says Donald Trump",
        )
    )
    options = ComposeOptions(title="Morning Review", section_order=("News",), top_stories=3, language="en")
    placed = build_stories([(i, "News") for i in items], options=options)
    match = [p.story for p in placed if p.story.outlets == 2]
    assert len(match) == 1 and match[0].lead.title.startswith("El Real Madrid"), [p.story.lead.title for p in placed]
    edition = compose(
        placed, day=date(2017, 1, 8), timezone="America/Chicago", chosen=None, options=options, web_url="https://e/"
    )
    subject = Renderer(language="en").render(edition).subject
    assert subject.startswith("Morning Review — January 8, 2017: "), subject
    assert "Real Madrid" not in subject and "Zidane" not in subject, subject
    english = {i.title for i in items if i.feed_id == 3}
    assert subject.split(": ", 1)[1] in english, subject
    # A Spanish site keeps the match, the story most outlets tell.
    es = compose(
        placed,
        day=date(2017, 1, 8),
        timezone="America/Chicago",
        chosen=None,
        options=ComposeOptions(title="Morning Review", section_order=("News",), top_stories=3, language="es"),
        web_url="https://e/",
    )
    assert "El Real Madrid pasa por encima del Granada" in Renderer(language="es").render(es).subject
