"""digest.dates: RFC 822 dates with another language's day and month names (audit finding 6)."""

from __future__ import annotations

import calendar

import pytest

from digest.dates import localized_rfc822, month_number


def _utc(date: str) -> str | None:
    parsed = localized_rfc822(date)
    return None if parsed is None else f"{calendar.timegm(parsed)}"


SEP_24_2222_UTC = str(calendar.timegm((2018, 9, 24, 22, 22, 0, 0, 0, 0)))


@pytest.mark.parametrize(
    "date",
    [
        "Seg, 24 Set 2018 19:22:00 -0300",  # pt: UOL's own
        "seg., 24 set. 2018 19:22:00 -0300",
        "lun, 24 sep 2018 19:22:00 -0300",  # es
        "lun., 24 sept. 2018 19:22:00 -0300",  # fr
        "Mo, 24 Sep 2018 19:22:00 -0300",  # de, an English month
        "Mo., 24. Sept. 2018 19:22:00 -0300",
        "lun, 24 set 2018 19:22:00 -0300",  # it
        "Пн, 24 сен 2018 19:22:00 -0300",  # ru
        "понедельник, 24 сентября 2018 19:22:00 -0300",
        "24 setembro 2018 19:22:00 -0300",  # no day name
        "ma, 24 sep 2018 19:22:00 -0300",  # nl
    ],
)
def test_a_date_with_localised_names_is_read_as_its_instant(date: str) -> None:
    assert _utc(date) == SEP_24_2222_UTC


def test_months_that_english_spells_otherwise_are_read() -> None:
    assert [
        month_number(w) for w in ("Fev", "févr.", "Mai", "Okt", "Dez", "dic", "Out", "Ott", "ago", "мая", "gen")
    ] == [
        2,
        2,
        5,
        10,
        12,
        12,
        10,
        10,
        8,
        5,
        1,
    ]


@pytest.mark.parametrize("word", ["jui", "ma", "ju", "Segunda", "xyz", "Sommer"])
def test_a_word_that_names_no_month_or_could_begin_two_names_none(word: str) -> None:
    assert month_number(word) is None


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 24 Sep 2018 19:22:00 -0300",  # English: feedparser's own handlers read it
        "2018-09-24T19:22:00-03:00",
        "Seg, 24 Xyz 2018 19:22:00 -0300",  # no month: no guess
        "Seg, 24 Jui 2018 19:22:00 -0300",  # juin or juillet
    ],
)
def test_anything_else_is_left_to_feedparser(date: str) -> None:
    assert localized_rfc822(date) is None
