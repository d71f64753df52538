"""Render once per section (issue 12): a section set's message joined from per-section pieces is the
message rendering that set's edition whole would give, clip trimming included."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from digest import message, tokens
from digest.compose import ComposeOptions, PlacedStory, compose, narrow
from digest.model import Item, Story
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


def test_a_top_stories_block_or_a_template_without_cut_markers_is_not_cut(tmp_path: object) -> None:
    placed = stories(30)
    whole = compose(
        placed, day=date(2026, 1, 16), timezone="UTC", chosen=None, options=options(top_stories=2), web_url=WEB
    )
    assert whole.top_stories and not SectionCuts(Renderer(), whole).usable


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
