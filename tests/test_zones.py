"""digest.zones: the time zones a reader may choose on the web pages, and their labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest import zones

WINTER = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 16, 8, 0, tzinfo=UTC)


def test_every_canonical_area_city_zone_is_offered_and_no_legacy_alias() -> None:
    every = zones.reader_zones()
    assert 350 < len(every) < 500
    assert {"Asia/Vladivostok", "Asia/Yekaterinburg", "Asia/Kamchatka", "America/Argentina/Buenos_Aires"} <= every
    assert {"Asia/Calcutta", "US/Eastern", "Etc/GMT+5", "GMT", "UTC", "Europe/Kiev", "posixrules"}.isdisjoint(every)
    assert all(z.partition("/")[0] in zones.AREAS for z in every)


def test_without_zone_tab_the_menu_still_holds_only_area_city_zones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zones, "_zone_tab", lambda: None)
    zones.reader_zones.cache_clear()
    try:
        every = zones.reader_zones()
        assert "Asia/Vladivostok" in every and not {"US/Eastern", "Etc/GMT+5", "GMT"} & every
    finally:
        zones.reader_zones.cache_clear()


@pytest.mark.parametrize(
    ("zone", "now", "label"),
    [
        ("Asia/Yekaterinburg", WINTER, "Asia/Yekaterinburg (UTC+5)"),
        ("America/New_York", WINTER, "America/New York (UTC-5)"),
        ("America/New_York", SUMMER, "America/New York (UTC-4)"),
        ("Asia/Kathmandu", WINTER, "Asia/Kathmandu (UTC+5:45)"),
        ("America/St_Johns", WINTER, "America/St Johns (UTC-3:30)"),
        ("Europe/London", WINTER, "Europe/London (UTC)"),
        ("UTC", WINTER, "UTC"),
    ],
)
def test_a_zone_is_labelled_with_its_offset_at_the_time_asked(zone: str, now: datetime, label: str) -> None:
    assert zones.label(zone, now) == label


def test_the_common_zones_come_west_to_east_with_the_readers_own_and_every_zone_by_name() -> None:
    common, every = zones.menu(WINTER, own=("US/Eastern", "Mars/X"))
    ids = [z for z, _ in common]
    assert ids[0] == "America/Los_Angeles" and ids[-1] == "Australia/Sydney"
    assert "US/Eastern" in ids and "Mars/X" not in ids  # their legacy zone stays theirs; an unknown one is no zone
    assert [z for z, _ in every] == sorted(zones.reader_zones())
    assert zones.offered("Asia/Vladivostok") and zones.offered("Europe/Moscow")
    assert not zones.offered("US/Eastern") and zones.offered("US/Eastern", own=["US/Eastern"])
    assert not zones.offered("Mars/X", own=["Mars/X"]) and not zones.offered("../../etc/passwd")
