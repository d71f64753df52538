"""digest.schedule: one edition per local date across DST, at most one catch-up (reliability.md C2, C6)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.schedule import due_edition, edition_instant, latest_edition, local_day, next_edition

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
CATCH_UP = timedelta(hours=12)

# 2026 transitions: Paris 29 March (02:00 -> 03:00) and 25 October (03:00 -> 02:00);
# New York 8 March (02:00 -> 03:00) and 1 November (02:00 -> 01:00).
DST_DAYS = [
    (PARIS, date(2026, 3, 29)),
    (PARIS, date(2026, 10, 25)),
    (NEW_YORK, date(2026, 3, 8)),
    (NEW_YORK, date(2026, 11, 1)),
]
SEND_TIMES = [time(0), time(1, 30), time(2), time(2, 30), time(2, 59), time(3), time(7), time(23, 30)]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def due(now: datetime, last_day: date | None, send_at: time = time(7), tz: str = PARIS) -> date | None:
    return due_edition(now, send_at, tz, last_day=last_day, catch_up=CATCH_UP)


# --------------------------------------------------------------------------- edition_instant


def test_C6_a_send_time_in_the_paris_spring_gap_goes_out_when_the_gap_ends() -> None:
    instant = edition_instant(date(2026, 3, 29), time(2, 30), PARIS)
    assert instant == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    local = instant.astimezone(ZoneInfo(PARIS))
    assert (local.hour, local.minute) == (3, 0)


def test_C6_a_send_time_in_the_new_york_spring_gap_goes_out_when_the_gap_ends() -> None:
    assert edition_instant(date(2026, 3, 8), time(2, 30), NEW_YORK) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT


def test_C6_a_send_time_in_the_paris_autumn_fold_is_its_first_occurrence() -> None:
    assert edition_instant(date(2026, 10, 25), time(2, 30), PARIS) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST


def test_C6_a_send_time_in_the_new_york_autumn_fold_is_its_first_occurrence() -> None:
    assert edition_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT


def test_ordinary_send_times_follow_the_local_offset_on_both_sides_of_a_change() -> None:
    assert edition_instant(date(2026, 3, 28), time(7, 0), PARIS) == utc(2026, 3, 28, 6, 0)
    assert edition_instant(date(2026, 3, 29), time(7, 0), PARIS) == utc(2026, 3, 29, 5, 0)
    assert edition_instant(date(2026, 11, 1), time(7, 0), NEW_YORK) == utc(2026, 11, 1, 12, 0)


def test_a_whole_skipped_local_date_has_no_edition_of_its_own() -> None:
    # Samoa moved across the date line: 29 December 2011 was followed by 31 December.
    d, instant = next_edition(datetime(2011, 12, 29, 12, tzinfo=ZoneInfo("Pacific/Apia")), time(7, 0), "Pacific/Apia")
    assert d == date(2011, 12, 31)
    assert local_day(instant, "Pacific/Apia") == d


def test_local_day_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day(datetime(2026, 1, 1), PARIS)


# --------------------------------------------------------------------------- minute by minute over DST


def _run_daemon(tz: str, send_at: time, start: datetime, end: datetime) -> list[tuple[date, datetime]]:
    """Ask due_edition every minute from start to end, as a daemon would; return what it sent and when."""
    sent: list[tuple[date, datetime]] = []
    last: date | None = local_day(start, tz) - timedelta(days=1)
    now = start
    while now < end:
        day = due_edition(now, send_at, tz, last_day=last, catch_up=CATCH_UP)
        if day is not None:
            sent.append((day, now))
            last = day
        now += timedelta(minutes=1)
    return sent


@pytest.mark.parametrize(("tz", "dst_day"), DST_DAYS, ids=[f"{tz}-{d}" for tz, d in DST_DAYS])
def test_C6_exactly_one_edition_per_local_date_minute_by_minute_over_dst(tz: str, dst_day: date) -> None:
    zone = ZoneInfo(tz)
    # From local midnight the day before the change to local midnight the day after it: three dates.
    start = datetime.combine(dst_day - timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(dst_day + timedelta(days=2), time(0), tzinfo=zone).astimezone(UTC)
    expected_days = [dst_day - timedelta(days=1), dst_day, dst_day + timedelta(days=1)]
    for send_at in SEND_TIMES:
        sent = _run_daemon(tz, send_at, start, end)
        assert [d for d, _ in sent] == expected_days, send_at
        for day, at in sent:
            instant = edition_instant(day, send_at, tz)
            assert at == instant, (send_at, day)  # sent in the very minute it became due
            assert local_day(instant, tz) == day
            # the first instant at which that day's local clock reads send_at or later
            wanted = datetime.combine(day, send_at)
            assert instant.astimezone(zone).replace(tzinfo=None) >= wanted
            assert (instant - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None) < wanted


@pytest.mark.parametrize(("tz", "dst_day"), DST_DAYS, ids=[f"{tz}-{d}" for tz, d in DST_DAYS])
def test_next_edition_walks_the_same_instants_as_due_edition(tz: str, dst_day: date) -> None:
    zone = ZoneInfo(tz)
    for send_at in SEND_TIMES:
        # one minute before local midnight, so that a 00:00 edition of the first day is still ahead
        midnight = datetime.combine(dst_day - timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        now = midnight - timedelta(minutes=1)
        days: list[date] = []
        for _ in range(3):
            day, instant = next_edition(now, send_at, tz)
            assert instant > now
            last = days[-1] if days else None
            assert due(instant - timedelta(seconds=1), last, send_at, tz) != day
            assert due(instant, last, send_at, tz) == day
            days.append(day)
            now = instant
        assert days == [dst_day - timedelta(days=1), dst_day, dst_day + timedelta(days=1)], send_at


def test_next_edition_at_the_exact_instant_is_the_following_day() -> None:
    instant = edition_instant(date(2026, 5, 4), time(7, 0), PARIS)
    assert next_edition(instant, time(7, 0), PARIS) == (date(2026, 5, 5), utc(2026, 5, 5, 5, 0))
    assert latest_edition(instant, time(7, 0), PARIS) == (date(2026, 5, 4), instant)


# --------------------------------------------------------------------------- downtime and clock steps


def test_C2_after_two_hours_down_the_missed_edition_is_sent() -> None:
    now = utc(2026, 5, 4, 7, 0)  # 09:00 Paris, the 07:00 edition is two hours late
    assert due(now, last_day=date(2026, 5, 3)) == date(2026, 5, 4)


def test_C2_three_days_down_gives_at_most_one_edition() -> None:
    last = date(2026, 5, 1)
    now = utc(2026, 5, 4, 8, 0)  # back on the 4th at 10:00 Paris: the 2nd, 3rd and 4th were missed
    sent = []
    for minute in range(0, 6 * 60):  # the daemon keeps asking for six hours after the restart
        day = due(now + timedelta(minutes=minute), last_day=last)
        if day is not None:
            sent.append(day)
            last = day
    assert sent == [date(2026, 5, 4)]


def test_C2_a_stale_edition_is_skipped_not_sent_late() -> None:
    now = utc(2026, 5, 4, 22, 0)  # 00:00 Paris on the 5th: the 4th's 07:00 edition is 17 hours late
    assert due(now, last_day=date(2026, 5, 3)) is None
    # and the next morning's edition goes out as usual
    assert due(utc(2026, 5, 5, 5, 0), last_day=date(2026, 5, 3)) == date(2026, 5, 5)


def test_the_catch_up_limit_is_inclusive() -> None:
    instant = edition_instant(date(2026, 5, 4), time(7, 0), PARIS)
    assert due(instant + CATCH_UP, last_day=None) == date(2026, 5, 4)
    assert due(instant + CATCH_UP + timedelta(seconds=1), last_day=None) is None


def test_nothing_is_due_before_the_send_time() -> None:
    assert due(utc(2026, 5, 4, 4, 59), last_day=date(2026, 5, 3)) is None


def test_a_clock_stepped_back_does_not_send_the_same_day_twice() -> None:
    send_at = time(7, 0)
    sent_at = utc(2026, 5, 4, 5, 30)
    day = due(sent_at, last_day=date(2026, 5, 3), send_at=send_at)
    assert day == date(2026, 5, 4)
    for back in (timedelta(minutes=20), timedelta(minutes=45), timedelta(hours=3)):
        assert due(sent_at - back, last_day=day, send_at=send_at) is None
    # the repeated autumn hour is a clock step back too: 02:30 Paris happens twice on 25 October
    first = edition_instant(date(2026, 10, 25), time(2, 30), PARIS)
    assert due(first, last_day=date(2026, 10, 24), send_at=time(2, 30)) == date(2026, 10, 25)
    second = first + timedelta(hours=1)
    assert second.astimezone(ZoneInfo(PARIS)).strftime("%H:%M") == "02:30"
    assert due(second, last_day=date(2026, 10, 25), send_at=time(2, 30)) is None


def test_due_edition_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_edition(datetime(2026, 5, 4, 9), time(7, 0), PARIS, last_day=None, catch_up=CATCH_UP)
