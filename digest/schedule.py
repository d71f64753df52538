"""When editions are due: local send times turned into UTC instants, correctly across DST.

This module owns the calendar arithmetic of editions. It is pure: `now` is always a parameter and no
clock is read, so the daemon, the reconciler and `digest send` all ask the same questions and tests
can walk through a DST change minute by minute. It does not schedule anything (APScheduler's job
does) and does not know what was sent (the store does; callers pass `last_day`).

Rules, all per IANA time zone (reliability.md F7, C6):

* Every local date has exactly one edition instant.
* A send time inside the spring-forward gap (02:30 in Europe/Paris on the last Sunday of March does
  not exist) is sent at the first instant after the gap: 03:00 local.
* A send time inside the repeated autumn hour (02:30 in Paris on the last Sunday of October happens
  twice) is sent at its FIRST occurrence (PEP 495 fold=0): the second occurrence is not an edition.
* After downtime at most one catch-up edition is sent: the latest one that is due, if it is no more
  than `catch_up` late; older editions are skipped, never queued (reliability.md F4, C2).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAY = timedelta(days=1)


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)  # ZoneInfo caches instances; callers pass names `known_zone` accepts


@lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    """Whether this machine's tz database has the zone `name`.

    The config, the CLI and the web pages accept only such names, but a stored one may not be: a
    database moved to a machine with an older tz database (a zone named since, such as
    America/Ciudad_Juarez in 2022), or a hand edit."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def effective_zone(zone: str | None, site_zone: str) -> str:
    """The zone whose edition a subscriber gets: their own, else the site's ([digest] timezone) when
    they chose none or chose one `known_zone` refuses. Such a subscriber is not left without an
    edition: they get the site's, at its time, and `digest status` names their zone."""
    return zone if zone and known_zone(zone) else site_zone


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {instant!r}")


def edition_instant(day: date, send_at: time, tz: str) -> datetime:
    """The UTC instant of `day`'s edition, sent at local `send_at` in `tz` (see module rules)."""
    zone = _zone(tz)
    wall = datetime.combine(day, send_at.replace(tzinfo=None, fold=0))
    local = wall.replace(tzinfo=zone)  # fold=0: in a repeated hour, the first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # `wall` does not exist: it lies in a gap. PEP 495 gives fold=0 the offset from before the gap and
    # fold=1 the offset after it; the transition lies between the two readings. Find it to the second
    # (a gap is at most a day, so ~17 halvings).
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # earlier instant, still before the change
    after = instant  # later instant, already after the change
    lo, hi = before, after
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi


def within_catch_up(now: datetime, day: date, send_at: time, tz: str, catch_up: timedelta) -> bool:
    """Whether `day`'s edition is at most `catch_up` late at `now`: still sent by itself (a missed
    one built, an open one's deferred messages retried), and its deferred messages not given up."""
    return now - edition_instant(day, send_at, tz) <= catch_up


def local_day(instant: datetime, tz: str) -> date:
    """The calendar date of `instant` in `tz`."""
    _require_aware(instant, "instant")
    return instant.astimezone(_zone(tz)).date()


def _exists(day: date, instant: datetime, tz: str) -> bool:
    # A local date can be skipped entirely (Pacific/Apia jumped from 29 to 31 December 2011): its
    # gap-adjusted instant then falls on the next date, which has its own edition.
    return local_day(instant, tz) == day


def next_edition(now: datetime, send_at: time, tz: str) -> tuple[date, datetime]:
    """The first edition strictly after `now`, as (local day, UTC instant).

    Strictly after, so that every instant is either due (`instant <= now`, see `due_edition`) or
    next, never both: the daemon sends the due one, then sleeps until this one.
    """
    _require_aware(now, "now")
    day = local_day(now, tz) - _DAY
    while True:
        instant = edition_instant(day, send_at, tz)
        if instant > now and _exists(day, instant, tz):
            return day, instant
        day += _DAY


def latest_edition(now: datetime, send_at: time, tz: str) -> tuple[date, datetime]:
    """The last edition at or before `now`, as (local day, UTC instant), whether sent or not."""
    _require_aware(now, "now")
    day = local_day(now, tz) + _DAY
    while True:
        instant = edition_instant(day, send_at, tz)
        if instant <= now and _exists(day, instant, tz):
            return day, instant
        day -= _DAY


def due_edition(now: datetime, send_at: time, tz: str, *, last_day: date | None, catch_up: timedelta) -> date | None:
    """The edition day to send now, or None.

    That is the latest day D whose instant is <= now, provided D is after `last_day` (the last
    edition already built) and D is at most `catch_up` late. Only the latest day is ever considered:
    after three days down this returns that one day, or nothing when even it is stale, never a
    backlog. A clock stepped back cannot produce a second edition for a day: `last_day` guards it.
    """
    day, instant = latest_edition(now, send_at, tz)
    if last_day is not None and day <= last_day:
        return None
    if now - instant > catch_up:
        return None
    return day
