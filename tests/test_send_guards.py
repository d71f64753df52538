"""`digest send` refuses what would close an edition for nothing or fill it with the wrong days: a
day that has not begun, a past day never built, or a first send before any poll. The real CLI on a
real SQLite file; no SMTP server is needed, since a refused send never connects."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from click.testing import CliRunner, Result
from storepaths import new_edition

from digest.cli import main
from digest.store import Store

NOW = "2026-12-06T12:00:00+00:00"  # 01:00 on Monday 7 December in Auckland, 15:00 on the 6th in Moscow


def config(tmp_path: Path, *zones: str) -> Path:
    path = tmp_path / "digest.toml"
    subscribers = "".join(
        f'[[subscribers]]\nemail = "reader{k}@example.org"\ntimezone = "{zone}"\n' for k, zone in enumerate(zones)
    )
    path.write_text(
        '[digest]\ntimezone = "Europe/Moscow"\n[smtp]\nhost = "127.0.0.1"\nport = 9\n'
        '[[feeds]]\nurl = "https://news.example/rss"\n' + subscribers,
        encoding="utf-8",
    )
    return path


def send(path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(path), "send", *args], env={"DIGEST_NOW": NOW})


def test_a_send_for_a_day_that_has_not_begun_anywhere_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path, "Europe/Moscow")
    result = send(path, "--date", "2027-06-01")
    assert result.exit_code == 2
    assert "2027-06-01 has not begun in any subscriber's time zone (today is 2026-12-06 at the latest)" in result.output
    # Tomorrow in Moscow has begun in Auckland: a subscriber there makes it a day that may be sent.
    path = config(tmp_path, "Europe/Moscow", "Pacific/Auckland")
    result = send(path, "--date", "2026-12-07")
    assert "has not begun" not in result.output
    assert "No item has been polled yet" in result.output  # the next check, reached


def test_a_first_send_before_any_poll_is_refused_and_builds_nothing(tmp_path: Path) -> None:
    path = config(tmp_path, "Europe/Moscow")
    result = send(path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        "error: No item has been polled yet: sending now would close this day's edition empty.",
        "  hint: Run `digest poll` first (`digest status` shows each feed's last poll).",
    ]
    status = CliRunner().invoke(main, ["--config", str(path), "status"], env={"DIGEST_NOW": NOW})
    # No edition was built (status may say one is due: the daemon would poll, then build it).
    assert status.exit_code == 0 and "last 2026-12-06" not in status.output and "open 2026-12-06" not in status.output
    # A dry run records nothing, so it may show the empty edition.
    dry = send(path, "--dry-run", str(tmp_path / "eml"))
    assert dry.exit_code == 0, dry.output


def test_a_past_date_whose_edition_was_never_built_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    """An edition is keyed by its day, but carries what was polled since the last one, up to when
    it is built: `--date` three days back sent today's news as that day's and left the next editions
    without it (audit-send finding 15)."""
    path = config(tmp_path, "Europe/Moscow")
    result = send(path, "--date", "2026-12-03")
    assert result.exit_code == 2, result.output
    assert "no edition of 2026-12-03 was built (Europe/Moscow) and that day is past" in result.output
    assert "Run `digest send` (the next edition carries them)" in result.output
    assert "digest preview --date 2026-12-03" in result.output

    # Within [digest] catch_up a missed edition may still go out, as the daemon would send it...
    path.write_text(path.read_text(encoding="utf-8").replace("[smtp]", 'catch_up = "4d"\n[smtp]', 1), encoding="utf-8")
    result = send(path, "--date", "2026-12-03")
    assert "was built" not in result.output and "No item has been polled yet" in result.output  # the next check

    # ...unless a later edition was built: that one's cut-off is where the next begins.
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:
        cutoff = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
        new_edition(store, day=date(2026, 12, 5), cutoff=cutoff, now=cutoff, timezone="Europe/Moscow")
    finally:
        store.close()
    result = send(path, "--date", "2026-12-03")
    assert result.exit_code == 2 and "no edition of 2026-12-03 was built" in result.output, result.output
