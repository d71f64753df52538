"""What an operator's monitoring sees: /metrics (Prometheus text format) and /healthz.

Two sources. Events of this process (feeds polled, items stored, editions built, messages sent,
deferred and failed, poll and send durations) are counted as they happen by the daemon, so
they are rates a dashboard can graph; they start from zero with the process, as Prometheus
counters do. What the database holds (subscribers by status, the outbox by status, stored
items, editions, bounces, suppressions, when the last poll and the last edition were) is read
from the store at each scrape, so it is right whichever process did the work (`digest send`
in another process, a restart).

The web app runs in its own process (so idle clients never take the daemon's descriptors), so
the daemon's event counters reach it the way node_exporter's textfile collector does: the daemon
writes its counters in the text format to a file beside the database after each poll and send
pass (`Settings.beside_database(COUNTERS_SUFFIX)`, replaced atomically), and /metrics appends
that file to the store's figures. Several `digest worker` processes on one database each write a
file of their own (`counters_path`: the suffix carries the worker's name) whose samples carry a
`worker` label, so no worker overwrites another's counters and the files never repeat a series
(node_exporter's textfile collector takes them all); /metrics merges every such file into one
family per metric, as the text format wants.

`health` answers /healthz: whether the last poll and the last due edition are on time. It reads
the store and the schedule only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from digest import schedule
from digest.config import Settings
from digest.model import PollResult
from digest.store import Store

__all__ = ["CONTENT_TYPE", "COUNTERS_SUFFIX", "Health", "Metrics", "counters_path", "error_kind", "health"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COUNTERS_SUFFIX = ".metrics.prom"  # the daemon's counters, for the web process to serve
POLL_LATE_AFTER = timedelta(minutes=10)  # beyond a feed's own due time, before the poll counts as late
EDITION_LATE_AFTER = timedelta(minutes=15)  # after send_at, before a missing edition counts as late

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def counters_path(settings: Settings, worker: str | None = None) -> Path:
    """Where a process's event counters go: the daemon's beside the database, a worker's beside
    them with its name in the file's (`digest.sqlite.metrics.w1.prom`). A name with characters a
    file name should not carry (the default host:pid) is written safe, with a short hash of the
    name so that two names made alike stay two files."""
    if worker is None:
        return settings.beside_database(COUNTERS_SUFFIX)
    safe = _UNSAFE.sub("_", worker)
    if safe != worker:
        safe += "-" + hashlib.sha256(worker.encode()).hexdigest()[:8]
    return settings.beside_database(COUNTERS_SUFFIX.replace(".prom", f".{safe}.prom"))


def _workers_counters(daemons: Path) -> list[Path]:
    """The workers' counter files beside the daemon's (`counters_path`), in a stable order."""
    head, _, tail = daemons.name.rpartition(".prom")
    return sorted(p for p in daemons.parent.glob(f"{head}.*.prom{tail}") if p.is_file())


class _Labelled(Collector):
    """A registry's metrics with one more label on every sample (a worker's name)."""

    def __init__(self, registry: CollectorRegistry, name: str, value: str) -> None:
        self.registry, self.name, self.value = registry, name, value

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [s._replace(labels={**s.labels, self.name: self.value}) for s in family.samples]
            yield labelled


class _Merged(Collector):
    """Families read back from several text files, one family per name with every file's samples."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for text in self.texts:
            try:
                families = list(text_string_to_metric_families(text))
            except ValueError:  # a file cut short by hand or a damaged disk: the others still count
                continue
            for family in families:
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                seen = {(s.name, tuple(sorted(s.labels.items()))) for s in into.samples}
                into.samples += [
                    Sample(s.name, s.labels, s.value, s.timestamp, s.exemplar)
                    for s in family.samples
                    if (s.name, tuple(sorted(s.labels.items()))) not in seen
                ]
        yield from merged.values()


_TIMEOUT = re.compile(r"tim(ed|e)\s*out|deadline|slow", re.IGNORECASE)
_PARSE = re.compile(r"pars|xml|not a feed|encoding|cpu", re.IGNORECASE)
_TOO_BIG = re.compile(r"too large|bytes|size", re.IGNORECASE)
_REFUSED = re.compile(r"private|loopback|refus|not allowed|redirect", re.IGNORECASE)


def error_kind(result: PollResult) -> str | None:
    """A small fixed set of labels for a failed poll (a label per message would explode the series)."""
    if not result.error:
        return None
    if result.status == 410:
        return "gone"
    if result.status is not None and result.status >= 400:
        return f"http_{result.status // 100}xx"
    for kind, pattern in (("timeout", _TIMEOUT), ("too_large", _TOO_BIG), ("parse", _PARSE), ("refused", _REFUSED)):
        if pattern.search(result.error):
            return kind
    return "network"


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    lines: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return ("ok" if self.ok else "late") + "\n" + "".join(f"{line}\n" for line in self.lines)


def health(settings: Settings, store: Store, *, now: datetime) -> Health:
    """Is the last poll on time (no active feed overdue by POLL_LATE_AFTER) and has every time
    zone's last due edition been built (EDITION_LATE_AFTER after its send_at)?"""
    lines: list[str] = []
    ok = True
    feeds = store.list_feeds(active_only=True)
    overdue = [f for f in feeds if f.next_poll_at is not None and f.next_poll_at < now - POLL_LATE_AFTER]
    polled = [f.last_polled_at for f in feeds if f.last_polled_at is not None]
    last = max(polled) if polled else None
    if overdue:
        ok = False
        lines.append(
            f"poll: late: {len(overdue)} of {len(feeds)} feeds overdue (oldest due "
            f"{min(f.next_poll_at for f in overdue if f.next_poll_at):%Y-%m-%d %H:%M} UTC)"
        )
    else:
        lines.append(f"poll: on time ({len(feeds)} feeds; last {'never' if last is None else f'{last:%H:%M} UTC'})")
    for tz in store.timezones_in_use(settings.digest.timezone):
        day, instant = schedule.latest_edition(now, settings.digest.send_at, tz)
        built = store.get_edition(day=day, timezone=tz)
        newest = None if built is not None else store.last_edition(tz)
        if built is not None:
            lines.append(f"edition {tz} {day}: built ({built.status})")
        elif newest is not None and newest.day > day:
            # `digest send` ran before send_at: today's edition took what this one would have.
            lines.append(f"edition {tz} {day}: none; the later {newest.day} was built ({newest.status})")
        elif now - instant < EDITION_LATE_AFTER:
            lines.append(f"edition {tz} {day}: due at {instant:%H:%M} UTC, not built yet")
        elif newest is None and not store.items_seen_before(instant):
            # A new installation: nothing had been polled when that edition was due, and the daemon
            # never builds an edition for nothing (schedule.due_edition's catch-up is bounded too).
            lines.append(f"edition {tz} {day}: not expected: nothing had been polled by {instant:%Y-%m-%d %H:%M} UTC")
        else:
            ok = False
            lines.append(f"edition {tz} {day}: late: due at {instant:%Y-%m-%d %H:%M} UTC and not built")
    return Health(ok, tuple(lines))


class _StoreCollector(Collector):
    """Gauges read from the store at scrape time."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime]) -> None:
        self.settings, self.store, self.clock = settings, store, clock

    def collect(self) -> Iterable[Metric]:
        store = self.store
        subscribers = GaugeMetricFamily("digest_subscribers", "Subscribers by status.", labels=["status"])
        for status, n in sorted(store.subscriber_counts().items()):
            subscribers.add_metric([status], n)
        yield subscribers
        outbox = GaugeMetricFamily(
            "digest_outbox_messages",
            "Messages in the outbox by status (all editions): sent, pending, failed, skipped.",
            labels=["status"],
        )
        for status, n in sorted(store.delivery_counts().items()):
            outbox.add_metric([status], n)
        yield outbox
        summary = store.bounce_summary()
        bounced = GaugeMetricFamily(
            "digest_bounces", "Bounces and complaints recorded, by kind (each once).", labels=["kind"]
        )
        for kind in ("hard", "soft", "complaint"):
            bounced.add_metric([kind], summary.by_kind.get(kind, 0))
        yield bounced
        yield GaugeMetricFamily(
            "digest_bounces_unverified",
            "Bounce reports whose token did not verify (ignored).",
            value=summary.unverified,
        )
        suppressed = GaugeMetricFamily("digest_suppressed", "Suppressed addresses by reason.", labels=["reason"])
        for reason, n in sorted(summary.suppressed.items()):
            suppressed.add_metric([reason], n)
        yield suppressed
        yield GaugeMetricFamily("digest_items", "Items stored.", value=store.count_items())
        yield GaugeMetricFamily("digest_editions", "Editions built.", value=store.count_editions())
        feeds = store.list_feeds(active_only=True)
        failing = GaugeMetricFamily("digest_feeds", "Active feeds, and those whose last poll failed.", labels=["state"])
        failing.add_metric(["active"], len(feeds))
        failing.add_metric(["failing"], sum(1 for f in feeds if f.consecutive_failures))
        yield failing
        polled = [f.last_polled_at for f in feeds if f.last_polled_at is not None]
        if polled:
            yield GaugeMetricFamily(
                "digest_last_poll_timestamp_seconds",
                "When a feed was last polled (Unix time).",
                value=max(polled).timestamp(),
            )
        state = health(self.settings, store, now=self.clock())
        yield GaugeMetricFamily(
            "digest_healthy", "1 when the last poll and the last due edition are on time.", value=1 if state.ok else 0
        )


class Metrics:
    """One registry per app or daemon (never the global one, so tests and two apps do not clash).

    `counters_file`: in the daemon, where its event counters are written for the web process; in
    the web process, where they are read from, with the workers' files beside it (`counters_path`).
    Without one, /metrics serves this process's own. `worker`: the worker this process is, whose
    name labels every counter it writes.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime],
        counters_file: Path | None = None,
        writes_counters: bool = False,
        worker: str | None = None,
    ) -> None:
        self.counters_file, self.writes_counters = counters_file, writes_counters
        self.events = CollectorRegistry()
        r = self.events
        self.published = self.events
        if worker is not None:
            self.published = CollectorRegistry()
            self.published.register(_Labelled(self.events, "worker", worker))
        self.feeds_polled = Counter("digest_feeds_polled", "Feed polls done by this process.", registry=r)
        self.feed_errors = Counter("digest_feed_errors", "Failed feed polls by kind.", ["kind"], registry=r)
        self.items_stored = Counter("digest_items_stored", "New items stored by this process's polls.", registry=r)
        self.editions_built = Counter("digest_editions_built", "Editions built by this process.", registry=r)
        self.messages = Counter(
            "digest_messages",
            "Messages by outcome: sent, deferred (4xx, retried), failed, skipped.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("sent", "deferred", "failed", "skipped"):
            self.messages.labels(outcome)  # present at 0 from the start, so rate() works at once
        self.poll_seconds = Histogram(
            "digest_poll_duration_seconds",
            "Duration of one poll cycle.",
            registry=r,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.send_seconds = Histogram(
            "digest_send_duration_seconds",
            "Duration of one send pass (all due editions).",
            registry=r,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
        )
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(settings, store, clock))
        self._publish()  # a new daemon starts from zero, as Prometheus counters do

    def observe_poll(self, results: Sequence[PollResult], seconds: float) -> None:
        self.poll_seconds.observe(seconds)
        self.feeds_polled.inc(len(results))
        self.items_stored.inc(sum(r.new_items for r in results))
        for result in results:
            kind = error_kind(result)
            if kind:
                self.feed_errors.labels(kind).inc()
        self._publish()

    def observe_send(self, *, built: int, sent: int, deferred: int, failed: int, skipped: int, seconds: float) -> None:
        self.send_seconds.observe(seconds)
        self.editions_built.inc(built)
        for outcome, n in (("sent", sent), ("deferred", deferred), ("failed", failed), ("skipped", skipped)):
            self.messages.labels(outcome).inc(n)
        self._publish()

    def _publish(self) -> None:
        """The daemon's counters to the file the web process serves; a scrape never sees half a file."""
        if not (self.writes_counters and self.counters_file):
            return
        tmp = self.counters_file.with_name(self.counters_file.name + ".tmp")
        try:
            tmp.write_bytes(generate_latest(self.published))
            os.replace(tmp, self.counters_file)
        except OSError:  # a full or read-only disk costs the dashboard a few figures, never a poll or a send
            pass

    def _counters(self) -> bytes:
        if self.counters_file is None or self.writes_counters:
            return generate_latest(self.published)
        texts = []
        for path in (self.counters_file, *_workers_counters(self.counters_file)):
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):  # gone since the listing (a worker stopped), or damaged
                continue
        if not texts:  # no daemon has run on this database yet: counters at zero, so rate() works
            return generate_latest(self.events)
        merged = CollectorRegistry()
        merged.register(_Merged(texts))
        return generate_latest(merged)

    def forget(self) -> None:
        """A worker that stops cleanly takes its counters with it (a new one starts from zero, as
        Prometheus counters do); a killed worker's file stays until removed or written again."""
        if self.writes_counters and self.counters_file is not None:
            with contextlib.suppress(OSError):
                self.counters_file.unlink(missing_ok=True)

    def exposition(self) -> bytes:
        """The text format (version 0.0.4); it reads the store: call it off the event loop."""
        return generate_latest(self.registry) + self._counters()
