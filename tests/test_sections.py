"""digest.sections: feed beats category beats URL beats keyword beats fallback, each with a reason."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from digest.config import Section
from digest.sections import Classification, classify

SECTIONS = (
    Section("Russian Politics & Diplomacy", categories=("Politics", "Политика"), keywords=("Kremlin", "Лавров")),
    Section("World", categories=("World", "International"), url_patterns=(r"^/world/",), keywords=("UN",)),
    Section("Business & Economy", categories=("Business",), url_patterns=(r"/business/", r"/markets?/"),
            keywords=("central bank", "ставка", "inflation")),
    Section("Sport", categories=("Sport", "Спорт"), url_patterns=(r"^/sport/",), keywords=("football", "хоккей")),
    Section("Science & Space", keywords=("NASA", "Роскосмос", "宇宙")),
)


def place(
    title: str = "A headline",
    url: str | None = None,
    categories: Sequence[str] = (),
    feed_section: str | None = None,
) -> Classification:
    return classify(title=title, url=url, categories=categories, feed_section=feed_section,
                    sections=SECTIONS, fallback="Other")


def test_the_feed_section_beats_every_rule() -> None:
    c = place("Kremlin says", url="https://x.example/sport/1", categories=["Business"], feed_section="World")
    assert (c.section, c.rule) == ("World", "feed")
    assert "World" in c.reason


def test_a_category_beats_a_url_and_a_keyword_whatever_the_section_order() -> None:
    # The keyword belongs to the first section, the URL to the second, the category to the fourth.
    c = place("Kremlin comments on the match", url="https://x.example/world/2", categories=["Sport"])
    assert c == Classification("Sport", "category", "category 'Sport' matches section 'Sport'")


def test_a_url_pattern_beats_a_keyword() -> None:
    c = place("Kremlin and football", url="https://x.example/business/7?id=1")
    assert (c.section, c.rule) == ("Business & Economy", "url")
    assert "'/business/7'" in c.reason and "Business & Economy" in c.reason


def test_within_one_rule_kind_the_first_configured_section_wins() -> None:
    c = place("Kremlin reacts to the football final")
    assert (c.section, c.rule) == ("Russian Politics & Diplomacy", "keyword")
    c = place(categories=["Sport", "Politics"])  # the item's category order does not matter
    assert c.section == "Russian Politics & Diplomacy"


def test_categories_match_case_insensitively_and_in_cyrillic() -> None:
    assert place(categories=["  POLITICS "]).section == "Russian Politics & Diplomacy"
    assert place(categories=["СПОРТ"]).section == "Sport"


def test_url_patterns_match_the_path_only_and_ignore_case() -> None:
    assert place(url="https://news.example/SPORT/42").section == "Sport"
    # "sport" in the host or the query is not the path
    assert place(url="https://sport.example/a?s=/sport/").rule == "fallback"


def test_keywords_match_whole_words_only() -> None:
    assert place("UNESCO adds three sites").rule == "fallback"  # "UN" inside a word
    assert place("UN votes on a resolution").section == "World"
    assert place("The central  bank holds").section == "Business & Economy"  # any run of spaces
    assert place("Central-banking history").rule == "fallback"


def test_keywords_match_cyrillic_words_case_insensitively() -> None:
    c = place("ЛАВРОВ встретился с коллегой")
    assert c == Classification(
        "Russian Politics & Diplomacy", "keyword",
        "keyword 'Лавров' in the title matches section 'Russian Politics & Diplomacy'",
    )
    assert place("Ставка ЦБ осталась прежней").section == "Business & Economy"
    # A Cyrillic keyword inside a longer word is not a whole word (\w covers Cyrillic).
    assert place("Торговля ставками на спорт").rule == "fallback"  # "ставка" begins "ставками"
    assert place("Чемпионат по хоккею").rule == "fallback"  # inflected forms are not the keyword


def test_a_keyword_in_a_script_without_spaces_matches_inside_the_title() -> None:
    assert place("日本の宇宙開発が新段階へ").section == "Science & Space"


def test_full_width_letters_match_their_ascii_keyword() -> None:
    assert place("ＮＡＳＡ launches a probe").section == "Science & Space"


def test_nothing_matches_gives_the_fallback_with_a_reason() -> None:
    c = place("Local bakery wins award", url="https://x.example/life/1", categories=["Lifestyle"])
    assert c == Classification("Other", "fallback", "no rule matched, so the fallback section 'Other'")


def test_an_empty_configuration_always_falls_back() -> None:
    c = classify(title="UN votes", url="https://x.example/world/1", categories=["World"], feed_section=None,
                 sections=(), fallback="Misc")
    assert (c.section, c.rule) == ("Misc", "fallback")


@pytest.mark.parametrize("url", [None, "", "not a url", "https://[::1/broken"])
def test_a_missing_or_odd_url_is_not_an_error(url: str | None) -> None:
    assert place("Nothing here", url=url).rule == "fallback"
