"""`digest send` refuses what would close an edition for nothing: a day that has not begun, or a
first send before any poll. The real CLI on a real SQLite file; no SMTP server is needed, since a
refused send never connects."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from digest.cli import main

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
