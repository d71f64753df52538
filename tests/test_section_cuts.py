"""Render once per section (issue 12): a section set's message joined from per-section pieces is the
message rendering that set's edition whole would give, clip trimming included."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from digest import message, tokens
from digest.catalogue import builtin_templates_dir
from digest.compose import ComposeOptions, Narrowing, PlacedStory, compose, narrow
from digest.model import Edition, Item, Story
from digest.render import Renderer, SectionCuts

T0 = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
SECTIONS = ("World", "Business & <Economy>", "Наука", "Press Review", "Sport")
WEB = "https://news.example.org/editions/Europe~Moscow/2026-01-16"


def item(n: int, source: str, *, words: int = 30, title: str | None = None) -> Item:
    text = " ".join(f"word{(n * 7 + k) % 97} &" if k % 9 == 0 else f"w{k}" for k in range(words))
    return Item(
        id=n,
        feed_id=n % 4 + 1,
        source=source,
        title=title or f"Headline {n} — about thing {n * 3} & more",
        url=f"https://example.org/{n}",
        summary_html=f"<p>{text.replace('&', '&amp;')}</p>",
        summary_text=text,
        published=T0 - timedelta(minutes=n * 13),
        first_seen=T0,
    )


def stories(words: int) -> list[PlacedStory]:
    placed = []
    n = 0
    for s, section in enumerate(SECTIONS):
        for k in range(4 + s * 3):
            n += 1
            also = (item(1000 + n, "Gazette"),) if k % 3 == 0 else ()
            placed.append(
                PlacedStory(Story(lead=item(n, ("Wire", "Gazette", "Daily")[k % 3], words=words), also=also), section)
            )
    return placed


def options(**kw: Any) -> ComposeOptions:
    return ComposeOptions(
        title="Morning & Review",
        section_order=SECTIONS,
        max_per_section=12,
        press_outlets=("Gazette",),
        synopsis_sentences=0,
        **kw,
    )


def chosen_sets() -> list[tuple[str, ...] | None]:
    return [None, *(c for r in range(1, len(SECTIONS) + 1) for c in itertools.combinations(SECTIONS, r))]


@pytest.mark.parametrize(
    ("words", "language", "subject"), [(30, "en", "date"), (30, "ru", "lead"), (400, "en", "lead")]
)
def test_every_section_set_joined_from_pieces_is_the_set_rendered_whole(
    words: int, language: str, subject: str
) -> None:
    opts = options(language=language, subject_style=subject)
    placed = stories(words)
    renderer = Renderer(language=language, excerpt_chars=3000 if words > 100 else 280)
    whole = compose(placed, day=date(2026, 1, 16), timezone="Europe/Moscow", chosen=None, options=opts, web_url=WEB)
    cuts = SectionCuts(renderer, whole)
    assert cuts.usable
    trimmed = 0
    for chosen in chosen_sets():
        alone = compose(
            placed, day=date(2026, 1, 16), timezone="Europe/Moscow", chosen=chosen, options=opts, web_url=WEB
        )
        assert narrow(whole, chosen) == alone
        expected = renderer.render(alone)
        got = cuts.render(narrow(whole, chosen))
        assert got == expected, chosen
        trimmed += "shortened to fit" in got.html
    # The long summaries overflow the clip for the bigger sets only: both ways are covered.
    assert (trimmed > 0) == (words > 100) and trimmed < len(chosen_sets())
    # Rendering happened once per budget tried, not once per section set.
    assert len(cuts._html) <= 12


@pytest.mark.parametrize(("top", "words"), [(1, 30), (3, 30), (5, 30), (5, 400)])
def test_with_a_top_stories_block_every_section_set_joined_from_pieces_is_the_set_rendered_whole(
    top: int, words: int
) -> None:
    # The block is drawn from each set's own sections: it takes a section's first stories, as many as
    # rank in the set's top; the sections are cut from editions without those (compose's `taken`).
    opts = options(top_stories=top)
    placed = stories(words)
    renderer = Renderer(excerpt_chars=3000 if words > 100 else 280)
    day = date(2026, 1, 16)
    narrowing = Narrowing(placed, day=day, timezone="Europe/Moscow", options=opts, web_url=WEB)
    whole = narrowing.whole
    assert whole == compose(placed, day=day, timezone="Europe/Moscow", chosen=None, options=opts, web_url=WEB)
    assert whole.top_stories
    assert not SectionCuts(renderer, whole).usable  # a block, and no way to take from the sections
    cuts = SectionCuts(renderer, whole, taken=narrowing.taken)
    assert cuts.usable
    trimmed, blocks = 0, set()
    for chosen in chosen_sets():
        alone = compose(placed, day=day, timezone="Europe/Moscow", chosen=chosen, options=opts, web_url=WEB)
        narrowed = narrowing.narrow(chosen)
        assert narrowed == alone
        got = cuts.render(narrowed)
        assert got == renderer.render(alone), chosen
        trimmed += "shortened to fit" in got.html
        blocks.add(tuple(s.lead.id for s in alone.top_stories))
        # The block takes what it shows from its sections: no story twice.
        shown = [s.lead.id for g in alone.sections for d in g.days for s in d.stories]
        assert not set(shown) & set(blocks_of(alone))
    assert (trimmed > 0) == (words > 100)
    # Sections rendered once per number taken (and budget), the block once per block: not per set.
    assert len(cuts._text) <= top + 1 and len(narrowing._taken) <= top + 1
    assert len({key for key in cuts._blocks if key[0] is None}) <= len(blocks) < len(chosen_sets())


def blocks_of(edition: Edition) -> list[int]:
    return [s.lead.id for s in edition.top_stories]


def test_a_template_without_the_cut_markers_is_not_cut(tmp_path: Path) -> None:
    # An operator's templates_dir written before the text part had its cut before the top block.
    own = tmp_path / "templates"
    own.mkdir()
    text = (builtin_templates_dir() / "digest.txt.j2").read_text(encoding="utf-8")
    (own / "digest.txt.j2").write_text(text.replace("{{ cut }}{% if top_stories %}", "{% if top_stories %}"))
    whole = compose(stories(30), day=date(2026, 1, 16), timezone="UTC", chosen=None, options=options(), web_url=WEB)
    assert SectionCuts(Renderer(), whole).usable
    assert not SectionCuts(Renderer(templates_dir=str(own)), whole).usable


def decoded(raw: bytes) -> tuple[str, str]:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage) and msg.defects == []
    text, html = [p.get_content().replace("\r\n", "\n") for p in msg.iter_parts()]
    return text, html


def test_a_message_joined_from_encoded_pieces_decodes_to_the_whole_render_with_short_lines() -> None:
    opts = options()
    placed = stories(60)
    whole = compose(placed, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=opts, web_url=WEB)
    cuts = SectionCuts(Renderer(), whole)
    encoded: dict[str, message.EncodedPiece] = {}
    kw = {
        "sender": "review@news.example.org",
        "sender_name": "Review",
        "list_id": "digest.news.example.org",
        "base_url": "https://news.example.org",
    }
    for chosen in (None, ("Sport",), ("World", "Press Review"), ("Наука", "Sport", "World")):
        subject, _, text, html = cuts.parts(narrow(whole, chosen))
        template = message.template_from_pieces(
            subject,
            [encoded.setdefault(p, message.encode_piece(p)) for p in text],
            [encoded.setdefault(p, message.encode_piece(p)) for p in html],
            **kw,
        )
        rendered = Renderer().render(
            compose(placed, day=date(2026, 1, 16), timezone="UTC", chosen=chosen, options=opts, web_url=WEB)
        )
        personal = {
            "to_addr": "reader@example.com",
            "to_name": "Reader",
            "message_id": tokens.message_id("s", 1, 2, "news.example.org"),
            "date": datetime(2026, 1, 16, 7, tzinfo=UTC),
            "unsubscribe_url": "https://news.example.org/u/x",
            "preferences_url": "https://news.example.org/p/y",
        }
        raw = message.personalise(template, **personal)  # type: ignore[arg-type]
        whole_raw = message.personalise(message.build_template(rendered, **kw), **personal)  # type: ignore[arg-type]
        assert decoded(raw) == decoded(whole_raw)
        assert max(len(line) for line in raw.split(b"\r\n")) <= 78
        assert raw == message.personalise(template, **personal)  # type: ignore[arg-type]  # stable bytes
