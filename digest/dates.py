"""Feed dates written with another language's day and month names. Pure.

RFC 822 (and RSS 2.0 after it) spells day and month names in English, and feedparser reads only
those. Some publishers' systems write them in the site's language: UOL dates every item
"Seg, 24 Set 2018 19:22:00 -0300" (segunda-feira, setembro). feedparser gave up on such a date,
the item was stored undated, shown as first seen on every edition's day and never aged out by
`max_item_age`. `localized_rfc822` is a feedparser date handler (parse registers it) that reads
the same shape with the month named in pt, es, fr, de, it, ca, nl or ru, and hands the date, its
month in English, to feedparser's own RFC 822 reader.

It must not guess: a month word is read only when it begins the name of one month and no other in
every language listed (French "jui" is juin or juillet: not read), and only in RFC 822's order
(day, month, year, time, zone).
"""

from __future__ import annotations

import re
import time

from feedparser.datetimes.rfc822 import _parse_date_rfc822

__all__ = ["localized_rfc822", "month_number"]

# Each month's names, nominative and (Russian) genitive, as sites write them whole; an abbreviation
# is a prefix of one of them ("Set", "févr.", "сент", "dic").
_MONTH_NAMES = (
    "janeiro enero janvier januar jänner gennaio gener januari январь января",
    "fevereiro febrero février fevrier februar febbraio febrer februari февраль февраля",
    "março marco marzo mars märz maerz març maart март марта",
    "abril avril april aprile апрель апреля",
    "maio mayo mai maggio maig mei май мая",
    "junho junio juin juni giugno juny июнь июня",
    "julho julio juillet juli luglio juliol июль июля",
    "agosto août aout august agost augustus август августа",
    "setembro septiembre setiembre septembre september settembre setembre сентябрь сентября",
    "outubro octubre octobre oktober ottobre october октябрь октября",
    "novembro noviembre novembre november ноябрь ноября",
    "dezembro diciembre décembre decembre dezember dicembre desembre december декабрь декабря",
)
_NAMES = tuple((number, name) for number, names in enumerate(_MONTH_NAMES, 1) for name in names.split())
_ENGLISH_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ENGLISH_DAYS = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
_MIN_PREFIX = 3  # "ma" is março, maio, mai...; three letters tell every month apart but French "jui"

# RFC 822's date: an optional day name, the day, the month, the year, then time and zone as they are.
_RFC822 = re.compile(
    r"\s*(?:([^\W\d_]{2,12})\.?,?\s+)?(\d{1,2})\.?\s+([^\W\d_]{3,12})\.?,?\s+(\d{2,4})\b(.*)", re.DOTALL
)


def month_number(word: str) -> int | None:
    """The month `word` names or abbreviates in one of the languages above (1-12), else None; a
    word that could begin two months' names names none."""
    word = word.casefold().rstrip(".")
    if len(word) < _MIN_PREFIX:
        return None
    numbers = {number for number, name in _NAMES if name.startswith(word)}
    return numbers.pop() if len(numbers) == 1 else None


def localized_rfc822(date: str) -> time.struct_time | None:
    """feedparser date handler: an RFC 822 date whose day or month name is not English, as UTC; None
    for anything else, which feedparser's own handlers then read (an English date among them)."""
    m = _RFC822.fullmatch(date)
    if m is None:
        return None
    day_name, day, month_word, year, rest = m.groups()
    english_month = month_word.casefold()[:3] in _ENGLISH_MONTHS
    if english_month and (day_name is None or day_name.casefold()[:3] in _ENGLISH_DAYS):
        return None  # feedparser's own reading
    number = _ENGLISH_MONTHS.index(month_word.casefold()[:3]) + 1 if english_month else month_number(month_word)
    if number is None:
        return None
    # The day's name is left out: feedparser ignores an English one too (the date says which day it is).
    parsed: time.struct_time | None = _parse_date_rfc822(f"{day} {_ENGLISH_MONTHS[number - 1]} {year}{rest}")
    return parsed
