"""`digest status`: what an operator checks first. Reads the store only."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from digest import schedule, unsubscribes
from digest.config import Settings, toml_value
from digest.store import Store
from digest.store.workers import STALE_AFTER

log = logging.getLogger(__name__)


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


def render_status(settings: Settings, store: Store, *, now: datetime) -> str:
    lines: list[str] = []
    holder = store.lock_holder("daemon")
    if holder:
        age = int((datetime.now(UTC) - holder[1]).total_seconds())  # heartbeats are on the real clock
        lines.append(f"daemon: {holder[0]} (heartbeat {age}s ago)")
    else:
        lines.append("daemon: not running")
    lines += _workers(store, now=now)

    feeds = store.list_feeds(active_only=True)
    upcoming = [f.next_poll_at for f in feeds if f.next_poll_at]
    due_now = sum(1 for f in feeds if f.next_poll_at is None or f.next_poll_at <= now)
    nxt = min(upcoming) if upcoming else None
    lines.append(f"feeds: {len(feeds)} active, {due_now} due now, next poll {_when(nxt) if due_now == 0 else 'now'}")
    failing = [f for f in feeds if f.consecutive_failures]
    for f in failing:
        lines.append(
            f"  failing: {f.url} ({f.consecutive_failures}x, last status {f.last_status or '-'}): "
            f"{f.last_error}; next try {_when(f.next_poll_at)}"
        )

    zones = store.timezones_in_use(settings.digest.timezone) or [settings.digest.timezone]
    lines.append("editions:")
    for tz in zones:
        last = store.last_edition(tz)
        day, instant = schedule.next_edition(now, settings.digest.send_at, tz)
        while last is not None and day <= last.day:  # that day's edition was already made (e.g. `digest send`)
            day, instant = schedule.next_edition(instant, settings.digest.send_at, tz)
        lines.append(f"  {tz}: next {day} at {_when(instant)}")
        if last:
            counts = store.delivery_counts(last.id)
            summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no subscribers"
            lines.append(f"  {tz}: last {last.day} ({last.status}): {summary}")
    totals = store.delivery_counts()
    lines.append("outbox: " + (", ".join(f"{n} {k}" for k, n in sorted(totals.items())) or "empty"))
    b = store.bounce_summary()
    kinds = ", ".join(f"{b.by_kind.get(k, 0)} {k}" for k in ("hard", "soft", "complaint"))
    lines.append(f"bounces: {kinds}; {b.unverified} ignored (token did not verify)")
    lines.append("suppressed: " + (", ".join(f"{n} {r}" for r, n in sorted(b.suppressed.items())) or "none"))
    if orphans := orphaned_choices(settings, store):
        lines.append(orphans)
    lines += unreadable_choices(settings, store)
    kept = unsubscribes.pending(unsubscribes.spool_path(settings))
    if kept:  # the web app could not write them while the database was busy; applied on the next write
        lines.append(f"unsubscribes waiting for the database: {len(kept)} ({unsubscribes.spool_path(settings)})")
    return "\n".join(lines)


def warn_orphaned_choices(settings: Settings, store: Store) -> None:
    """Log `orphaned_choices` once, as the daemon and a worker start (synchronous: to_thread). A
    database that cannot answer now is no reason not to start: the next status will say it."""
    try:
        orphans = orphaned_choices(settings, store)
    except Exception as exc:
        log.warning("cannot count the sections subscribers chose: %s", exc)
        return
    if orphans:
        log.warning("%s", orphans)
    try:
        problems = unreadable_choices(settings, store)
    except Exception as exc:
        log.warning("cannot read the subscribers' choices: %s", exc)
        return
    for line in problems:
        log.warning("%s", line)


def orphaned_choices(settings: Settings, store: Store) -> str | None:
    """Sections subscribers chose that no section has now (renamed without `formerly`, or dropped):
    those subscribers get nothing from them, and nothing at all if they chose nothing else."""
    known = set(settings.section_names)
    # A former name a section lists ([[sections]] formerly) is that section: every reader maps it,
    # whether or not the one-time rewrite of stored names has run since it was written.
    orphans = sorted(
        (name, n) for name, n in store.chosen_sections().items() if settings.current_section(name) not in known
    )
    if not orphans:
        return None
    named = ", ".join(f"{name!r} ({n} subscriber{'s' if n != 1 else ''})" for name, n in orphans)
    if len(orphans) == 1:
        hint = f"If a section was renamed, add formerly = {toml_value([orphans[0][0]])} to its [[sections]] entry."
    else:  # unrelated renames: each former name goes to the section it became, not all to one
        each = ", ".join(f"formerly = {toml_value([name])}" for name, _ in orphans)
        hint = f"If sections were renamed, add each former name to the [[sections]] entry it became: {each}."
    return f"chosen sections that no section has: {named}; those subscribers get nothing from them. {hint}"


def unreadable_choices(settings: Settings, store: Store, *, named: int = 5) -> list[str]:
    """Subscribers whose stored choices this digest cannot use (R7): sections that are not a list
    of names (their messages fail until the row is mended), time zones this machine's tz database
    lacks (they get the site zone's edition). Only a hand edit, a damaged file or a database moved
    to an older machine makes them; each is one line with what to do."""
    lines: list[str] = []
    if damaged := store.damaged_subscribers():
        shown = "; ".join(f"{email}: {why}" for email, why in damaged[:named])
        more = f" and {len(damaged) - named} more" if len(damaged) > named else ""
        lines.append(
            f"subscribers whose sections cannot be read: {len(damaged)} ({shown}{more}); each edition "
            "fails their message. They can choose again on their preferences page, or give their "
            "sections again with `digest subscribers import` or the config."
        )
    if unknown := store.unknown_timezones():
        zones = ", ".join(f"{zone!r} ({n} subscriber{'s' if n != 1 else ''})" for zone, n in sorted(unknown.items()))
        lines.append(
            f"time zones this machine's tz database does not have: {zones}; those subscribers get the "
            f"{settings.digest.timezone} edition. Update the tz database (the tzdata package, or "
            "`pip install -U tzdata`), or give them a zone again."
        )
    return lines


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def _workers(store: Store, *, now: datetime) -> list[str]:
    """The workers (issue 15): who is alive, what each holds, and how far behind the due work is."""
    found = store.workers(stale_after=STALE_AFTER)
    if not found:
        return []
    db_now = store.database_now()
    alive = [w for w in found if w.alive]
    lines = [f"workers: {len(alive)} alive" + (f", {len(found) - len(alive)} gone" if len(found) > len(alive) else "")]
    for w in found:
        state = (
            f"holds {w.feeds} feeds, {w.deliveries} outbox rows; heartbeat {_ago(db_now - w.heartbeat_at)} ago"
            if w.alive
            else f"gone: last heartbeat {_ago(db_now - w.heartbeat_at)} ago"
        )
        lines.append(
            f"  {w.name} ({w.host} pid {w.pid}, up {_ago(w.heartbeat_at - w.started_at)}, "
            f"clock {w.clock_skew:+.1f}s): {state}"
        )
    senders, held = store.outbox_claims()
    if held:
        lines.append(f"  sending: {held} messages claimed by {senders} sending processes")
    feeds, feed_lag = store.poll_lag(now=now)
    rows, row_lag = store.outbox_lag(now=now)
    lines.append(
        f"due work: {feeds} feeds (the most overdue {_ago(feed_lag)} late), "
        f"{rows} messages (the oldest waiting {_ago(row_lag)})"
    )
    return lines
