"""`digest status`: what an operator checks first. Reads the store only."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from digest import schedule, unsubscribes
from digest.config import Settings, toml_value
from digest.model import Feed
from digest.store import Store
from digest.store.workers import STALE_AFTER, WorkerInfo

log = logging.getLogger(__name__)


def shown_address(email: str) -> str:
    """An address as one safe line: a stored one may hold CR/LF or be empty (a hand edit, or a row
    from before addresses were checked), and printed raw it would forge a line of the listing."""
    return email if email and email.isprintable() and email.strip() == email else repr(email)


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

    every = store.list_feeds()
    feeds = [f for f in every if f.active]
    stopped = [f for f in every if f.stopped]
    upcoming = [f.next_poll_at for f in feeds if f.next_poll_at]
    due_now = sum(1 for f in feeds if f.next_poll_at is None or f.next_poll_at <= now)
    nxt = min(upcoming) if upcoming else None
    gone = f", {len(stopped)} stopped (410 Gone)" if stopped else ""
    lines.append(
        f"feeds: {len(feeds)} active{gone}, {due_now} due now, next poll {_when(nxt) if due_now == 0 else 'now'}"
    )
    lines += [_stopped_line(f) for f in stopped]
    lines += [_failing_line(f) for f in feeds if f.consecutive_failures]

    zones = store.timezones_in_use(settings.digest.timezone) or [settings.digest.timezone]
    lines.append("editions:")
    # A daemon killed outright leaves its lock row behind: only a fresh heartbeat is one running.
    daemon = holder is not None and datetime.now(UTC) - holder[1] <= STALE_AFTER
    running = daemon or any(w.alive for w in store.workers(stale_after=STALE_AFTER))
    overdue = False
    for tz in zones:
        zone_lines, late = _zone_editions(settings, store, tz, now=now, running=running)
        lines += zone_lines
        overdue = overdue or late
    totals = store.delivery_counts()
    outbox = ", ".join(f"{n} {k}" for k, n in sorted(totals.items())) or "empty"
    if totals.get("failed") or totals.get("pending") or totals.get("sending"):
        outbox += " (`digest outbox` names who failed or waits, and why)"
    lines.append(f"outbox: {outbox}")
    lines += _last_error(store, overdue=overdue, running=running)
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


def _stopped_line(feed: Feed) -> str:
    """A feed its publisher removed (410 Gone), which is never polled again: what the operator does."""
    todo = f"`digest feeds enable {feed.url}` polls it again if the publisher restored it; else " + (
        "delete its [[feeds]] entry from the config (or give the feed's new address there)"
        if feed.from_config
        else f"`digest feeds remove {feed.url}` (and `digest feeds add NEW-URL` if it moved)"
    )
    return f"  stopped: {feed.url}: the publisher answered 410 Gone on {_when(feed.last_polled_at)}; {todo}"


def _failing_line(feed: Feed) -> str:
    """One failing feed: its URL once, then why (a fetch error names the URL it failed on: said once)."""
    why = (feed.last_error or "no error recorded").strip()
    for prefix in (f"{feed.url}: ", f"{feed.url} "):
        why = why.removeprefix(prefix)
    why = why.rstrip(".")
    return (
        f"  failing: {feed.url} ({feed.consecutive_failures}x, last status {feed.last_status or '-'}): "
        f"{why}; next try {_when(feed.next_poll_at)}"
    )


def _zone_editions(
    settings: Settings, store: Store, tz: str, *, now: datetime, running: bool
) -> tuple[list[str], bool]:
    """A time zone's editions as the operator needs them (audit finding 6): the next one; the one
    due and not built, with since when (an SMTP outage keeps the daemon from building it: it
    connects first); the newest by day; and every edition still open, with its pending rows' next
    attempt. Returns the lines and whether an edition is overdue."""
    from digest.pipeline.send import edition_due, still_fresh

    digest, lines, overdue = settings.digest, [], False
    newest = store.newest_edition(tz)
    day, instant = schedule.next_edition(now, digest.send_at, tz)
    while newest is not None and day <= newest.day:  # that day's edition was already made (e.g. `digest send`)
        day, instant = schedule.next_edition(instant, digest.send_at, tz)
    lines.append(f"  {tz}: next {day} at {_when(instant)}")
    due_day, due_at = schedule.latest_edition(now, digest.send_at, tz)
    if store.get_edition(day=due_day, timezone=tz) is None and (newest is None or newest.day < due_day):
        # The daemon's own rule (pipeline.send.plan), so status says what the daemon will do.
        if edition_due(now, digest, tz, last_day=newest.day if newest else None) == due_day:
            overdue = True
            who = (
                "the daemon builds and sends it once it reaches the SMTP server (its log says why it has "
                "not yet; after a failed run it tries again within 30 minutes)"
                if running
                else "no daemon is running: start `digest run`, or run `digest send`"
            )
            lines.append(
                f"  {tz}: overdue {due_day}: due since {_when(due_at)} ({_ago(now - due_at)} ago), not built; {who}"
            )
        elif newest is not None or store.items_seen_before(due_at):  # else a new site: nothing to send then
            lines.append(
                f"  {tz}: missed {due_day}: due at {_when(due_at)}, never built, and past the catch-up window, "
                "so neither the daemon nor `digest send --date` builds it now (it would carry every item polled "
                "since the last edition, up to now); the next edition carries its items"
            )
    shown = [newest] if newest is not None else []
    shown += [e for e in reversed(store.list_editions(status="open")) if e.timezone == tz and e != newest]
    for edition in shown:
        counts = store.delivery_counts(edition.id)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no subscribers"
        label = "last" if edition is newest else "open"
        line = f"  {tz}: {label} {edition.day} ({edition.status}): {summary}"
        pending, earliest = store.next_retry(edition.id)
        if edition.status == "open" and pending:
            if not still_fresh(now, digest, tz, edition.day):
                line += (
                    "; past its catch-up window, so the daemon leaves its pending messages: "
                    f"`digest send --date {edition.day}` sends them"
                )
            elif earliest is None or earliest <= now:
                line += "; pending messages due now"
            else:
                line += f"; next attempt {_when(earliest)}"
        lines.append(line)
    return lines, overdue


SEND_FAILURE_META = "send_failure"  # the daemon's last failed run: "<at ISO>\t<next attempt ISO>\t<message>"


def record_send_failure(store: Store, *, at: datetime, retry_at: datetime | None, message: str) -> None:
    """What a run that the SMTP server failed as a whole (no connection, a 535, the circuit breaker)
    said, for `digest status`: such a failure is recorded on no message. "" once a run gets through."""
    flat = " ".join(message.split())
    store.set_meta(SEND_FAILURE_META, f"{at.isoformat()}\t{retry_at.isoformat() if retry_at else ''}\t{flat}")


def clear_send_failure(store: Store) -> None:
    if store.get_meta(SEND_FAILURE_META):
        store.set_meta(SEND_FAILURE_META, "")


def _last_error(store: Store, *, overdue: bool, running: bool) -> list[str]:
    """The last error a send recorded on a message not sent (the SMTP server's reply, or why the
    message could not be made), and the daemon's last run that the SMTP server failed as a whole
    (no connection, a 535, the circuit breaker), which no message records, while no run has got
    through since."""
    lines: list[str] = []
    failed = (store.get_meta(SEND_FAILURE_META) or "").split("\t", 2)
    if len(failed) == 3:
        at, retry_at, message = failed
        line = f"last failed run: {_when(datetime.fromisoformat(at))}: {message}"
        if retry_at and running:
            line += f" The daemon tries again at {_when(datetime.fromisoformat(retry_at))}."
        lines.append(line)
    last = store.last_delivery_error()
    if last is not None:
        edition = f"edition {last.day} {last.timezone}, {last.status}, {_attempts(last.attempts)}"
        lines.append(
            f"last delivery error: {_when(last.updated_at)}, {shown_address(last.email)} ({edition}): {last.last_error}"
        )
    elif overdue and running and not lines:
        lines.append(
            "last delivery error: none recorded on a message; a run that could not reach the SMTP server "
            "is in the daemon's log (journalctl -u digest)"
        )
    return lines


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


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
        if not w.alive and (w.stranded_feeds or w.stranded_deliveries):
            lines.append(_stranded_line(w, db_now=db_now, others=len(alive)))
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


def _stranded_line(w: WorkerInfo, *, db_now: datetime, others: int) -> str:
    """What a silent worker still holds: its feeds are polled by no one and its outbox rows sent by
    no one until their leases run out and a live process claims them, and nothing else said so."""
    held = f"{w.stranded_feeds} feeds and {w.stranded_deliveries} outbox rows"
    head = f"    held by {w.name} ({w.host} pid {w.pid}), silent for {_ago(db_now - w.heartbeat_at)}: {held}"
    until = w.stranded_until
    if until is not None and until > db_now:
        when = f"their lease runs out at {_when(until)} (in {_ago(until - db_now)}); then they are taken over"
    else:
        lapsed = f" at {_when(until)}" if until is not None else ""
        when = f"their lease ran out{lapsed}; they are taken over"
    who = (
        "by the next poll or send of a live worker"
        if others
        else "by the next `digest poll` / `digest send`, or a worker once one runs (none is alive now)"
    )
    return f"{head}; {when} {who}"
