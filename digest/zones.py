"""The time zones a reader may choose (web sign-up and preferences), and how they are labelled. Pure.

A reader gets the edition in the morning of their own zone, so the menu must hold theirs: Yekaterinburg
and Vladivostok, not only Moscow. Every zone of the tz database's ``zone.tab`` (one or more per country,
"Area/City", about 420) is offered, after a short list of common ones; legacy aliases (US/Eastern,
Asia/Calcutta), Etc/GMT+5 and the like are not, though a zone a reader or the site already has stays
on their menu. Each is labelled with its UTC offset at `now` ("Asia/Yekaterinburg (UTC+5)"); the value
posted is the IANA id. This module reads the tz database's files and no clock: `now` is a parameter.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

# First on the menu, as they are the most asked for; ordered west to east when shown.
COMMON = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Europe/Moscow",
    "Europe/Istanbul",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Africa/Johannesburg",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)
# The areas of "Area/City" zones: what is left of available_timezones() is legacy (US/*, GB, Etc/*, ...).
AREAS = frozenset(
    ["Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"]
)


def utc_offset(moment: datetime) -> str:
    """'UTC+3', 'UTC-3:30', 'UTC' for an aware datetime's offset: the menu's labels and the email's times."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _zone_tab() -> str | None:
    """The tz database's zone.tab: where zoneinfo looks first (TZPATH), else the tzdata package's."""
    for folder in zoneinfo.TZPATH:
        path = Path(folder) / "zone.tab"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    try:
        return resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


@lru_cache(maxsize=1)
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())  # a walk of the tz database's folders: once


@lru_cache(maxsize=1)
def reader_zones() -> frozenset[str]:
    """The canonical "Area/City" zones of this machine's tz database (read once per process)."""
    tab = _zone_tab()
    if tab is None:  # no zone.tab: every Area/City name, the few legacy ones in those areas included
        log.warning(
            "no zone.tab in %s nor in the tzdata package: the time zone menu lists every Area/City", zoneinfo.TZPATH
        )
        listed: Iterable[str] = _available()
    else:
        rows = (line.split("\t") for line in tab.splitlines() if line and not line.startswith("#"))
        listed = (row[2].strip() for row in rows if len(row) >= 3)
    return frozenset(z for z in listed if z in _available() and "/" in z and z.partition("/")[0] in AREAS)


@lru_cache(maxsize=1024)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    # ZoneInfo's own cache keeps few zones alive: a menu of 420 would read their files on every page.
    return zoneinfo.ZoneInfo(name)


def label(zone: str, now: datetime) -> str:
    """'Asia/Yekaterinburg (UTC+5)': the id, underscores as spaces, and its offset at `now`."""
    if zone == "UTC":
        return zone
    return f"{zone.replace('_', ' ')} ({utc_offset(now.astimezone(_zone(zone)))})"


@lru_cache(maxsize=2)
def _every(slot: datetime) -> tuple[tuple[str, str], ...]:
    # Offsets change at most on the quarter hour (Chatham Islands: UTC+12:45): the labels at the start
    # of `now`'s quarter hold for all of it, and one page after another shares them.
    return tuple((z, label(z, slot)) for z in sorted(reader_zones()))


def _first(own: Iterable[str]) -> set[str]:
    """The common zones and `own` (the site's, the reader's), those this machine's tz database has."""
    return {z for z in (*COMMON, *own) if z in _available()}


def offered(zone: str, *, own: Iterable[str] = ()) -> bool:
    """Whether the menu offers `zone`: a reader zone, a common one, or one of `own`."""
    return zone in reader_zones() or zone in _first(own)


Choices = tuple[tuple[str, str], ...]  # (IANA id, label)


def menu(now: datetime, *, own: Iterable[str] = ()) -> tuple[Choices, Choices]:
    """(common, every) as (IANA id, label) pairs. Common: `COMMON` and `own` (so a site's or a reader's
    zone that is no reader zone, such as a legacy alias, stays on their menu), west to east at `now`;
    every: all reader zones by name, Area then City."""

    def west_to_east(zone: str) -> tuple[float, str]:
        offset = now.astimezone(_zone(zone)).utcoffset()
        return (offset.total_seconds() if offset else 0.0, zone)

    common = tuple((z, label(z, now)) for z in sorted(_first(own), key=west_to_east))
    slot = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return common, _every(slot)
