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

from digest.model import DayGroup, Edition, PressGroup, SectionGroup, Story
from digest.render import Renderer, builtin_templates_dir

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
