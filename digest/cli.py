"""The `digest` command: the only place that parses arguments, configures logging and exits.

Every DigestError becomes one line plus a hint and exit code 1 (a traceback only with --debug);
click's usage errors exit 2. `digest send` also exits 3 when a message failed for good and 4 when
messages are left to send (EXIT_FAILED, EXIT_PENDING), so that cron can tell them apart.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import gc
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click

from digest import config as cfg
from digest import schedule
from digest.clock import Clock, system_clock
from digest.errors import (
    ConfigError,
    DatabaseBusyError,
    DeliveryError,
    DigestError,
    FeedError,
    StoreError,
    SubscriberError,
)
from digest.model import FeedSpec, OutboxEntry, PollResult

if TYPE_CHECKING:  # imported where a command opens the database: SQLAlchemy is a third of --help's start
    from digest.store import Store

T = TypeVar("T")
log = logging.getLogger("digest")

EXIT_FAILED = 3  # `digest send`: a message failed for good in this run (a 5xx, or given up after give_up_after)
EXIT_PENDING = 4  # `digest send`: messages are left to send (a retry time to come, another sender, a stop)

# At exit the interpreter's last garbage collections walk every object the imports made (SQLAlchemy,
# aiohttp...): ~0.1 s of CPU, a sixth of a `digest poll` of unchanged feeds. Frozen objects are
# skipped; everything is still released when the process ends, and atexit handlers still run.
atexit.register(gc.freeze)


# --------------------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class RepeatFilter(logging.Filter):
    """Let an identical log line through once per `window` seconds, then say how many were held back.

    A failure that repeats every tick (an exhausted descriptor table, a database that is gone)
    once wrote 585 MB of log in 3 minutes; the first line says all there is to say.
    """

    def __init__(
        self, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic, remember: int = 1000
    ) -> None:
        super().__init__()
        self.window, self.clock, self.remember = window, clock, remember
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # line -> (last shown, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        shown = self._seen.get(key)
        if shown is not None and now - shown[0] < self.window:
            self._seen[key] = (shown[0], shown[1] + 1)
            return False
        if shown is not None and shown[1]:
            record.msg = f"{record.getMessage()} (and {shown[1]} more times in the last {now - shown[0]:.0f} s)"
            record.args = None
        if len(self._seen) >= self.remember:  # forget the oldest half: a bounded memory, not a leak
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[: self.remember // 2]:
                del self._seen[old]
        self._seen[key] = (now, 0)
        return True


def setup_logging(fmt: str, level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in (
        "aiosmtpd",
        "mail.log",
        "asyncio",
        "alembic.runtime.plugins",  # a line per plugin at every start
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # The daemon says in its own words when a run is skipped or missed (`Daemon._on_event`, F6):
    # APScheduler's warnings of the same events wrote each twice. Its errors (a job's traceback) stay.
    for scheduler in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logging.getLogger(scheduler).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.ERROR)
    # flufl.bounce logs each detector it runs, and a detector that raises with its traceback, which
    # digest.bounces then handles itself: its own words would only alarm.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- context


class App:
    """What every command needs, loaded on first use so `digest init` works without a config."""

    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = cfg.find_config_path(config_path, _env())
        self.debug = debug
        self.clock: Clock = system_clock()
        self._settings: cfg.Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> cfg.Settings:
        if self._settings is None:
            self._settings = cfg.load(self.config_path)
        return self._settings

    @property
    def store(self) -> Store:
        """The database, with the config's feeds and subscribers synced into it."""
        if self._store is None:
            from digest.store import Store

            store = Store(self.settings.database_url)
            self._sync(store)
            self._store = store
        return self._store

    def _config_digest(self) -> str:
        """A fingerprint of the config's feeds and subscribers: unchanged means nothing to sync."""
        import hashlib

        text = repr((self.settings.feeds, self.settings.subscribers, sorted(self.settings.section_renames.items())))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _sync(self, store: Store) -> None:
        now = self.clock()
        with store.config_sync_lock():  # workers starting together on PostgreSQL sync in turn
            store.sync_feeds(self.settings.feeds, now=now)
            if kept := store.sync_subscribers(self.settings.subscribers, now=now):
                # The operator deleted the entries to stop their mail, maybe: say why it goes on.
                log.warning(
                    "%d subscriber(s) deleted from the config signed up or resumed the emails themselves on the "
                    "web pages: they stay subscribed (`digest subscribers show EMAIL` says who set what; "
                    "`digest subscribers unsubscribe EMAIL` when they ask you to stop)",
                    kept,
                )
            self._rename_chosen_sections(store, now)
            store.set_meta("config_synced", self._config_digest())
        from digest import unsubscribes

        unsubscribes.apply(store, unsubscribes.spool_path(self.settings), now=now)  # kept while it was busy

    def _rename_chosen_sections(self, store: Store, now: datetime) -> None:
        """Once per set of renames ([[sections]] formerly): subscribers' choices follow the new names."""
        renames = self.settings.section_renames
        applied = repr(sorted(renames.items()))
        if not renames or store.get_meta("sections_renamed") == applied:
            return
        changed = store.rename_chosen_sections(sorted(renames.items()), now=now)
        store.set_meta("sections_renamed", applied)
        if changed:
            moves = ", ".join(f"{old!r} -> {new!r}" for old, new in renames.items())
            log.warning("sections renamed (%s): %d subscribers' chosen sections follow them", moves, changed)

    @property
    def reader(self) -> Store:
        """The database as it is, for commands that only read: no config sync, so they write nothing
        and still answer while another process holds a write lock (SQLite WAL readers never wait)."""
        if self._store is None:
            from digest.store import Store

            store = Store(self.settings.database_url)
            if store.get_meta("config_synced") != self._config_digest():
                try:  # the config changed since the last sync: show it, if the database lets us
                    self._sync(store)
                except DatabaseBusyError as exc:
                    log.warning("not syncing the config's feeds and subscribers: %s", exc.message)
            self._store = store
        return self._store

    def today(self) -> date:
        return self.clock().astimezone(ZoneInfo(self.settings.digest.timezone)).date()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


pass_app = click.make_pass_decorator(App)


@contextlib.contextmanager
def _long_lived() -> Iterator[None]:
    """For a command's imports and opening its database: what they make lives until exit.

    Collecting meanwhile only walks those objects again and again (~30 ms of `digest poll`'s
    start); afterwards they are frozen, so later collections skip them too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _few_collections(threshold: int = 50_000) -> Iterator[None]:
    """For a one-shot poll: the youngest generation collected every `threshold` allocations, not 700.

    A poll of 1,000 feeds allocates ~50,000 short-lived containers (tasks, futures, requests):
    about 70 collections, each walking every request then in flight, ~20 ms of a `digest poll` of
    unchanged feeds. Almost all of it is freed by reference counting anyway; cycles are still
    collected, 70 times less often, so memory stays bounded however many feeds there are.
    """
    old = gc.get_threshold()
    gc.set_threshold(threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _date(value: str | None, app: App) -> date:
    if value is None:
        return app.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD.") from None


def _progress(total: int, label: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """A rich progress bar on a terminal; nothing otherwise (logs and pipes stay clean)."""
    if not sys.stderr.isatty() or total == 0:
        return (lambda: None), (lambda: None)
    from rich.progress import Progress

    progress = Progress(transient=True, console=None)
    task = progress.add_task(label, total=total)
    progress.start()
    return (lambda: progress.advance(task)), progress.stop


def write_output(path: Path, text: str) -> None:
    """Write a file the user named (--path, --out): a path we cannot write is one line, not a traceback."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DigestError(
            f"Cannot write {path}: {exc.strerror or exc}.",
            hint="Choose a path in a folder that exists and that you can write to.",
        ) from exc


def read_csv_text(path: str) -> str:
    """A CSV file's text as UTF-8 (a BOM is fine); any other encoding is one line saying how to convert it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SubscriberError(f"Cannot read {path}: {exc.strerror or exc}.", hint="Check the path.") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        guess = "cp1252" if any(0x80 <= b <= 0x9F for b in data) else "latin1"
        raise SubscriberError(
            f"{path} is not UTF-8 (line {line} has the byte 0x{data[exc.start]:02x}); it looks like "
            f"{'Windows-1252' if guess == 'cp1252' else 'Latin-1 (ISO-8859-1)'}.",
            hint=f"Convert it, then import again: iconv -f {guess} -t utf-8 {path} > utf8.csv "
            "(or save it as 'CSV UTF-8' from your spreadsheet); nothing was imported.",
        ) from None


# --------------------------------------------------------------------------- root


class DigestGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as exc:
            debug = bool(ctx.find_object(App) and ctx.find_object(App).debug)  # type: ignore[union-attr]
            if debug:
                raise
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"  hint: {exc.hint}", err=True)
            ctx.exit(1)


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", metavar="PATH", help="Config file (default: $DIGEST_CONFIG, else ./digest.toml)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people or for log collectors.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every feed and edition event.")
@click.version_option(package_name="digest")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, debug: bool, log_format: str, verbose: bool) -> None:
    """digest: turn news feeds into a daily press-review email, one edition per subscriber."""
    setup_logging(log_format, logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    ctx.obj = App(config_path, debug)


# --------------------------------------------------------------------------- config


@main.command()
@click.option("--path", "path", default="digest.toml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a starter digest.toml documenting every setting."""
    target = Path(path)
    if target.exists() and not force:
        raise ConfigError(
            f"{target} already exists.", hint="Pass --force to overwrite it, or --path to write elsewhere."
        )
    write_output(target, cfg.example_toml())
    click.echo(f"wrote {target}; edit it, then run `digest --config {target} check-config`.")


@main.command("check-config")
@click.option(
    "--smtp",
    "smtp",
    is_flag=True,
    help="Also open one SMTP session as a send would (TLS, AUTH, MAIL FROM the sender), then QUIT: nothing is sent.",
)
@pass_app
def check_config(app: App, smtp: bool) -> None:
    """Validate the config and print the effective settings (secrets masked)."""
    settings = app.settings
    cfg.check_secrets(settings)  # what only sending needs: caught here, not at the first send
    click.echo(f"# {settings.path}")
    for table, values in cfg.describe(settings).items():
        click.echo(f"[{table}]")
        for key, value in values.items():
            click.echo(f"{key} = {cfg.toml_value(value) if value is not None else '(unset)'}")
        click.echo("")
    notes = {
        s.name: ", ".join(
            [*([f"max_items {s.max_items}"] if s.max_items is not None else []), *(f"formerly {o}" for o in s.formerly)]
        )
        for s in settings.sections
    }
    click.echo(
        "sections: "
        + ", ".join(name + (f" ({notes[name]})" if notes.get(name) else "") for name in settings.section_names)
    )
    click.echo(f"feeds: {len(settings.feeds)}, subscribers: {len(settings.subscribers)}")
    if settings.sqlite_file is not None:  # where the data is, whatever the URL's form
        click.echo(f"database file: {settings.sqlite_file}")
    if settings.outlets:
        click.echo("outlets: " + ", ".join(f"{o.site} = {o.name}" for o in settings.outlets))
    if problem := cfg.link_problem(settings):  # mail would go out, with links that fail its readers
        click.echo(f"warning: {problem}", err=True)
    if examples := cfg.example_entries(settings):  # `digest init`'s examples, kept by mistake
        click.echo(f"warning: {examples}", err=True)
    for problem in _database_problems(settings):
        click.echo(f"warning: {problem}", err=True)
    click.echo("config OK")
    if smtp:
        _check_smtp(settings)


def _database_problems(settings: cfg.Settings) -> list[str]:
    """What `digest status` says of this config against the subscribers' stored choices (sections
    renamed without `formerly`, which `send` only counts as skipped): read from an existing SQLite
    database, without writing to it or creating one; a cron operator may never run status."""
    from digest.status import orphaned_choices

    if settings.sqlite_file is None or not settings.sqlite_file.is_file():
        return []  # none yet, or a server's (check-config must not wait on one that is down)
    from digest.store import Store

    try:
        store = Store(settings.database_url)
    except DigestError as exc:  # an older schema, a busy file: the command that needs it will say
        return [f"the database {settings.sqlite_file} was not read: {exc.message}"]
    try:
        orphans = orphaned_choices(settings, store)
    finally:
        store.close()
    return [orphans] if orphans else []


def _check_smtp(settings: cfg.Settings) -> None:
    """`check-config --smtp`: what the relay said to one session opened as a send opens it, or the
    one-line error a send would stop with (a wrong port, TLS mode, certificate, password, sender)."""
    from email.utils import parseaddr

    from digest import tokens
    from digest.addresses import ascii_domain
    from digest.deliver.probe import probe

    sender = ascii_domain(parseaddr(settings.smtp.sender)[1] or settings.smtp.sender)
    if settings.bounces.domain:  # a send's return path: a VERP address of this shape (the token is a stand-in)
        sender = ascii_domain(tokens.verp_address("check-config", "0" * 32, 0, settings.bounces.domain))
    found = run_async(probe(settings.smtp, sender=sender))
    size = f"{found.size:,} bytes a message at most" if found.size else "no limit offered"
    utf8 = "offered" if found.smtputf8 else "not offered (an address with a non-ASCII local part cannot be sent)"
    click.echo(
        "\n".join(
            [
                f"smtp {found.where}: {found.greeting}",
                f"  TLS: {found.tls}",
                f"  AUTH: {found.auth}",
                f"  SIZE: {size}",
                f"  SMTPUTF8: {utf8}",
                f"  MAIL FROM:<{found.sender}>: {found.sender_reply}",
                "smtp OK: nothing was sent",
            ]
        )
    )


# --------------------------------------------------------------------------- poll / preview / send


@main.command()
@pass_app
def poll(app: App) -> None:
    """Poll every feed once and store new items."""
    with _long_lived():
        from digest.pipeline.poll import poll_once

        store = app.store
    total = len(store.list_feeds(active_only=True)) if sys.stderr.isatty() else 0  # only a progress bar needs it
    advance, done = _progress(total, "polling")
    lines: list[PollResult] = []

    def on_result(res: PollResult) -> None:
        advance()
        lines.append(res)

    started = time.perf_counter()
    try:
        with _few_collections():
            if store.many_workers:  # PostgreSQL: claim feeds as workers do, never one a worker is polling
                results = run_async(_poll_by_claims(app, store, on_result))
            else:
                results = run_async(poll_once(settings=app.settings, store=store, clock=app.clock, on_result=on_result))
    finally:
        done()
    took = time.perf_counter() - started
    report: list[str] = []
    for res in results:
        status = "304" if res.not_modified and res.status == 304 else str(res.status or "-")
        tail = (
            f"error: {res.error}"
            if res.error
            else ("unchanged" if res.not_modified else f"{res.new_items} new, {res.updated_items} updated")
        )
        report.append(f"{status:>4}  {res.feed_url}  {tail}")
    if report:  # one write: click.echo flushes after every call, a system call per feed
        click.echo("\n".join(report))
    new = sum(r.new_items for r in results)
    failed = sum(1 for r in results if r.error)
    click.echo(f"polled {len(results)} feeds: {new} new items, {failed} failed, in {took:.2f} s")
    if store.many_workers and (skipped := len(store.list_feeds(active_only=True)) - len(results)) > 0:
        click.echo(f"skipped {skipped} feeds that digest workers were polling at the time")
    if 0 < failed < len(results):
        click.echo(
            "  hint: open a failing URL in a browser to see what it serves; each feed is polled again at its next "
            "time, less often while it keeps failing (`digest feeds list` shows its last error).",
            err=True,
        )
    if results and failed == len(results):
        # Exit 1, so that `digest poll && digest send` in a cron job stops and says so: with one feed
        # up, the poll did its work; with none, something shared is wrong (the network, a proxy, DNS).
        raise FeedError(
            f"Every feed failed this poll ({failed}).",
            hint="The errors are listed above; when they all say the same, check this machine's network, "
            "proxy or DNS. Nothing is lost: each feed is polled again at its next time.",
        )


async def _poll_by_claims(app: App, store: Store, on_result: Callable[[PollResult], None]) -> list[PollResult]:
    """`digest poll` on PostgreSQL: every active feed once, by the claims workers use (issue 15)."""
    import os
    import socket
    from datetime import timedelta

    from digest.pipeline.claims import poll_claimed
    from digest.pipeline.poll import parser_pool

    pool = parser_pool(app.settings)
    try:
        return await poll_claimed(
            settings=app.settings,
            store=store,
            clock=app.clock,
            worker=f"poll:{socket.gethostname()}:{os.getpid()}",
            parser=pool,
            lease=timedelta(minutes=1),
            every_feed=True,
            renew=True,
            on_result=on_result,
        )
    finally:
        pool.close()


def _after_cutoff(app: App, zone: str, day: date, now: datetime) -> str | None:
    """The hint for a preview that found nothing while items wait: how many were first seen after
    the edition's cut-off (the edition of `day` as built, else `now`, as preview drafts it) and when
    the edition that carries them is sent. A rehearsal that polls and previews at one DIGEST_NOW
    meets it: each process starts its clock there, so the poll's items are newer than the preview."""
    from datetime import UTC

    built = app.store.get_edition(day=day, timezone=zone)
    cutoff = built.cutoff if built is not None else now
    newer = app.store.count_items_seen_after(cutoff)
    if not newer:
        return None
    _, instant = schedule.next_edition(max(now, cutoff), app.settings.digest.send_at, zone)
    items = "1 item was" if newer == 1 else f"{newer} items were"
    return (
        f"  hint: {items} first seen after this edition's cut-off, {cutoff.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC; "
        f"the edition sent at {instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} ({zone}) carries them. "
        "Preview again later to see them (in a rehearsal, with a later DIGEST_NOW than the poll's)."
    )


@main.command()
@click.option("--subscriber", "email", required=True, help="The subscriber's email address.")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Edition date (default: the subscriber's today).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write FILE.html and FILE.txt (default: print text).")
@pass_app
def preview(app: App, email: str, day: str | None, out: str | None) -> None:
    """Render a subscriber's edition without sending it."""
    from digest import schedule
    from digest.pipeline.drafts import preview as render_preview
    from digest.pipeline.send import zone_day

    store = app.store
    sub = store.get_subscriber(email=email)
    if sub is None:
        raise SubscriberError(f"No subscriber {email}.", hint="`digest subscribers list` shows the subscribers.")
    now = app.clock()
    # Their own day, as `digest send` sends it them (`zone_day`), not the site's.
    zone = schedule.effective_zone(sub.timezone, app.settings.digest.timezone)
    edition_day = zone_day(_date(day, app) if day is not None else None, zone, now)
    shown = render_preview(app.settings, store, subscriber=sub, day=edition_day, now=now)
    rendered = shown.rendered
    if shown.edition is not None:  # a send now would not mail them this edition (already sent...): say which it is
        click.echo(shown.edition)
    if shown.moved is not None:  # their message is not their zone's others': say how
        click.echo(shown.moved)
    if rendered is None:
        click.echo(f"Nothing new for {email} in their sections; no email would be sent.")
        if (newer := _after_cutoff(app, zone, edition_day, now)) is not None:
            click.echo(newer, err=True)
        return
    if out:
        base = Path(out)
        html_path = base if base.suffix == ".html" else base.with_suffix(".html")
        write_output(html_path, rendered.html)
        write_output(html_path.with_suffix(".txt"), rendered.text)
        click.echo(f"wrote {html_path} and {html_path.with_suffix('.txt')} ({rendered.subject})")
    else:
        click.echo(f"Subject: {rendered.subject}\n")
        click.echo(rendered.text)


SEND_EPILOG = """\b
Without --date it also sends the messages of earlier editions that are due
for a retry, while those editions are due (their own day, or within
[digest] catch_up), as the daemon does; it names those it leaves.

\b
A message deferred by a 4xx is retried once its retry time has come (5 min,
then longer), by `digest run` or by any later `digest send`; --retry-now
retries it at once.

\b
Exit status:
  0  every message went out (or was skipped), or nothing was due
  1  an error stopped the run: the SMTP server unreachable, a refused
     login or sender, the circuit breaker... (one line and a hint);
     unsent messages stay pending
  2  usage: a --date not begun yet, or past and never built
  3  a message failed for good in this run (a 5xx, or gave up after
     [smtp] give_up_after and its edition's [digest] catch_up);
     `digest outbox --failed` names them
  4  messages are left to send: deferred until their retry time, held
     by another sender, or the run was stopped (SIGINT, SIGTERM)
  3 wins over 4 when both hold.
"""


@main.command(epilog=SEND_EPILOG)
@click.option(
    "--date", "day", metavar="YYYY-MM-DD", help="Edition date (default: each subscriber's time zone's own today)."
)
@click.option(
    "--dry-run",
    "dry_run",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write the messages this send would send now as .eml files into DIR instead (records nothing).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    metavar="N",
    help="Sending processes (default: [smtp] workers; 0: one per CPU core; 1: this process only).",
)
@click.option(
    "--retry-now",
    "retry_now",
    is_flag=True,
    help="Retry messages an earlier run deferred at once, whatever their retry time.",
)
@pass_app
def send(app: App, day: str | None, dry_run: str | None, workers: int | None, retry_now: bool) -> None:
    """Build and send the edition for a date to every active subscriber; re-running sends only what is still due."""
    edition_day = _date(day, app) if day is not None else None  # None: each time zone's own day
    if dry_run:
        run_async(_dry_run(app, edition_day, Path(dry_run), retry_now))
        return
    store = app.store
    _check_sendable(app, store, edition_day)
    _warn_of_links(app)
    from digest.status import clear_send_failure, record_send_failure

    try:
        reports = run_async(
            _send(app, store, edition_day, app.settings.smtp.workers if workers is None else workers, retry_now)
        )
    except DeliveryError as exc:  # for `digest status`: a failed run is recorded on no message
        with contextlib.suppress(StoreError):
            record_send_failure(store, at=app.clock(), retry_at=None, message=f"{exc.message} {exc.hint}")
        raise
    with contextlib.suppress(StoreError):
        clear_send_failure(store)
    from digest.pipeline.sender import skipped_text

    for rep in reports:
        state = "complete" if rep.complete else "pending rows remain"
        which = f"edition {rep.day} {rep.timezone}" + (" (earlier, messages due for a retry)" if rep.resumed else "")
        click.echo(
            f"{which}: {rep.sent} sent, {skipped_text(rep)}, {rep.failed} failed, {rep.deferred} deferred ({state})"
        )
        if rep.abandoned:
            click.echo(_given_up(rep.abandoned))
        if not rep.complete:
            click.echo(_remaining(app, store, rep.edition_id, rep.day))
    if not reports:
        click.echo("no active subscribers: nothing to send")
    # For cron (`digest send || alert`): a run that failed someone, or left work, says so (finding 8).
    if any(rep.failed for rep in reports):
        click.get_current_context().exit(EXIT_FAILED)
    if any(not rep.complete for rep in reports):
        click.get_current_context().exit(EXIT_PENDING)


def _given_up(addresses: list[str], *, named: int = 10) -> str:
    """The messages a stopped run gave up on the wire, without the server's reply (finding 11)."""
    from digest.status import shown_address

    shown = ", ".join(shown_address(a) for a in addresses[:named])
    extra = len(addresses) - named
    more = f" and {extra} more (`digest outbox --pending` lists them)" if extra > 0 else ""
    one = len(addresses) == 1
    return (
        f"  stopped without the SMTP server's reply to {len(addresses)} message{'' if one else 's'} ({shown}{more}): "
        f"{'it' if one else 'each'} may or may not have reached {'its' if one else 'their'} subscriber; "
        f"pending again, the next `digest send` sends {'it' if one else 'them'}, with the same Message-ID"
    )


def _remaining(app: App, store: Store, edition_id: int, day: date) -> str:
    """What becomes of an edition's rows this run left unsent, and what to do (audit finding 8).
    Every later `digest send` sends them once their retry time has come, as the daemon does, while
    the edition is due (its own day, or within [digest] catch_up); `--date` after that, and
    `--retry-now` at once (rows deferred by this run are never retried by it: B7)."""
    pending, earliest = store.next_retry(edition_id)
    if not pending:  # only rows another sender holds: they are its to send, or anyone's once its claim lapses
        return (
            "  the other messages are held by another sender, which sends them; if it stopped, the next "
            f"`digest send --date {day}` takes them over once its claim lapses ([smtp] claim_lease)"
        )
    later = earliest is not None and earliest > app.clock()
    when = f"at {earliest:%Y-%m-%d %H:%M} UTC" if later and earliest is not None else "now"
    its = "it" if pending == 1 else "them"
    return (
        f"  {pending} message{'s' if pending != 1 else ''} to {'retry' if later else 'send'} {when}: the daemon "
        f"(`digest run`) or any `digest send` from then on sends {its} while the edition is due (its own day, "
        f"or within [digest] catch_up; after that, `digest send --date {day}`)"
        + (f"; `digest send --retry-now` retries {its} at once" if later else "")
        + ". `digest outbox --pending` lists them with the SMTP server's replies"
    )


def _warn_of_links(app: App) -> None:
    """One log line when the links real mail carries will not work (`config.link_problem`): said where
    mail goes out, not only by check-config, which an operator may never have run."""
    if problem := cfg.link_problem(app.settings):
        log.warning("%s", problem)
    if examples := cfg.example_entries(app.settings):
        log.warning("%s", examples)


def _check_sendable(app: App, store: Store, day: date | None) -> None:
    """Refuse a send that would close an edition for nothing: a day that has not begun in any
    subscriber's time zone (a mistyped --date sent a year-ahead edition at once, and every item
    polled so far went into it, out of the next real one), a past day never built (below), or a
    first send before any poll (today's edition would be built empty, and the day's items would wait
    for tomorrow's)."""
    from digest.pipeline.send import still_fresh, zone_day

    now = app.clock()
    zones = store.timezones_in_use(app.settings.digest.timezone)
    latest = max(now.astimezone(ZoneInfo(tz)).date() for tz in zones or [app.settings.digest.timezone])
    if day is not None and day > latest:
        raise click.BadParameter(
            f"{day} has not begun in any subscriber's time zone (today is {latest} at the latest); "
            "an edition sent now would take every item polled so far. Check the date, or see the "
            "edition with `digest preview --date`.",
            param_hint="'--date'",
        )
    unbuilt = [tz for tz in zones if store.get_edition(day=zone_day(day, tz, now), timezone=tz) is None]
    # An edition is keyed by its day but carries the items first seen since the zone's last one, up
    # to when it is built: a past day built now takes today's news under an old date, and the next
    # edition goes without it (audit finding 15). A built one may be sent (its pending messages), and
    # a missed one within [digest] catch_up, as the daemon would, unless a later one was built.
    late = [
        tz
        for tz in unbuilt
        if day is not None
        and day < now.astimezone(ZoneInfo(tz)).date()
        and (not still_fresh(now, app.settings.digest, tz, day) or _built_after(store, tz, day))
    ]
    if late:
        raise click.BadParameter(
            f"no edition of {day} was built ({', '.join(late)}) and that day is past: built now it would carry "
            "every item polled since the last edition, up to now, under that date, and the next edition "
            "would go without them. Run `digest send` (the next edition carries them), or see that day's "
            f"with `digest preview --date {day}`.",
            param_hint="'--date'",
        )
    if unbuilt and store.count_items() == 0:
        raise DigestError(
            "No item has been polled yet: sending now would close this day's edition empty.",
            hint="Run `digest poll` first (`digest status` shows each feed's last poll).",
        )


def _built_after(store: Store, timezone: str, day: date) -> bool:
    newest = store.newest_edition(timezone)
    return newest is not None and newest.day > day


async def _send(app: App, store: Store, day: date | None, workers: int, retry_now: bool) -> Any:
    from digest.deliver import SmtpTransport
    from digest.pipeline.send import send_day
    from digest.pipeline.sender import WIRE_GRACE

    stop, abandon = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        # S4: the first SIGTERM/SIGINT lets messages on the wire finish and be recorded, for at most
        # WIRE_GRACE seconds (a slow relay held one for minutes: audit finding 11); nothing new
        # starts. A second one gives them up at once. Sending processes get both passed on.
        if not stop.is_set():
            log.warning(
                "stopping: no new message starts; the SMTP server has %g s to answer those on the wire "
                "(Ctrl-C again to stop at once); unsent ones stay pending",
                WIRE_GRACE,
            )
            stop.set()
        elif not abandon.is_set():
            log.warning("stopping at once: not waiting for the SMTP server's reply to the messages on the wire")
            abandon.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    progress = asyncio.create_task(_send_progress(app, store, day)) if sys.stderr.isatty() else None
    try:
        return await send_day(
            app.settings,
            store,
            day=day,
            clock=app.clock,
            transport=SmtpTransport,
            workers=workers,
            stop=stop,
            abandon=abandon,
            setup=_logging_setup(),
            retry_now=retry_now,
        )
    finally:
        if progress is not None:
            progress.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _send_progress(app: App, store: Store, day: date | None) -> None:
    """A progress bar for `digest send` on a terminal, read from the outbox itself: the rows may be
    sent by several processes, and the database is the one place that knows them all."""
    from rich.progress import Progress

    from digest.pipeline.send import zone_day

    with Progress(transient=True) as progress:
        task = progress.add_task("sending", total=None)
        while True:
            done = total = 0
            for tz in await asyncio.to_thread(store.timezones_in_use, app.settings.digest.timezone):
                edition = await asyncio.to_thread(store.get_edition, day=zone_day(day, tz, app.clock()), timezone=tz)
                if edition is not None:
                    counts = await asyncio.to_thread(store.delivery_counts, edition.id)
                    total += sum(counts.values())
                    done += sum(n for status, n in counts.items() if status not in ("pending", "sending"))
            progress.update(task, total=total or None, completed=done)
            await asyncio.sleep(0.5)


def _logging_setup() -> Callable[[], None]:
    """This process's logging set-up, for the sending processes to repeat (they start with none)."""
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return partial(setup_logging, "json" if json_lines else "text", root.level)


async def _dry_run(app: App, day: date | None, folder: Path, retry_now: bool) -> None:
    """Render into .eml files every message the same `digest send` would send now, touching no outbox row."""
    from digest.pipeline.drafts import dry_run
    from digest.pipeline.sender import skipped_words

    done = await dry_run(app.settings, app.store, day=day, now=app.clock(), folder=folder, retry_now=retry_now)
    click.echo(f"wrote {done.written} messages to {folder} (nothing was sent or recorded)")
    for line in done.resumed:  # earlier editions' due messages, as a plain `digest send` resumes them
        click.echo(line)
    for line in done.moved:  # the messages of subscribers who moved zone, unlike their zone's others
        click.echo(f"  {line}")
    if done.skipped:  # as the send's report says it: "3 skipped (2 had no story in ...)"
        click.echo(skipped_words(sum(done.skipped.values()), done.skipped))
    for line in done.not_sent:  # built editions' rows a send now leaves alone: "already sent: ..."
        click.echo(line)


# --------------------------------------------------------------------------- daemon and status


@main.command()
@pass_app
def run(app: App) -> None:
    """Run the daemon: poll feeds on their interval and send each edition at send_at."""
    _warn_of_links(app)
    if app.store.many_workers:  # PostgreSQL: one worker plus the web app; more may join (issue 15)
        from digest.worker import run_worker

        run_async(run_worker(app.settings, app.store, clock=app.clock, web=True, log_setup=_logging_setup()))
        return
    from digest.daemon import run_daemon

    run_async(run_daemon(app.settings, app.store, clock=app.clock, log_setup=_logging_setup()))


@main.command()
@click.option("--name", metavar="NAME", help="What claims and `digest status` call it (default: host:pid).")
@pass_app
def worker(app: App, name: str | None) -> None:
    """Run one worker: poll due feeds, build due editions, send pending rows; any number share PostgreSQL."""
    from digest.worker import run_worker, worker_name

    worker_name(name)  # a --name it refuses is the one line said
    _warn_of_links(app)

    run_async(run_worker(app.settings, app.store, name=name, clock=app.clock, log_setup=_logging_setup()))


@main.command()
@pass_app
def status(app: App) -> None:
    """Feeds, editions and the outbox at a glance."""
    from digest.status import render_status

    click.echo(render_status(app.settings, app.reader, now=app.clock()))


@main.command()
@click.option(
    "--date", "day", metavar="YYYY-MM-DD", help="Editions of this day (default: the newest and every open one)."
)
@click.option("--failed", is_flag=True, help="Only messages that failed for good.")
@click.option("--pending", is_flag=True, help="Only messages waiting to be sent or retried.")
@pass_app
def outbox(app: App, day: str | None, failed: bool, pending: bool) -> None:
    """Who did not get an edition yet, or never will, and what the SMTP server said."""
    from digest.store import FAILED, PENDING

    store = app.reader
    if day is not None:
        editions = store.editions_on(_date(day, app))
        if not editions:
            raise DigestError(
                f"No edition of {day} was built.", hint="`digest status` shows each time zone's editions."
            )
    else:
        newest = [store.newest_edition(tz) for tz in store.timezones_in_use(app.settings.digest.timezone)]
        found = {e.id: e for e in [*store.list_editions(status="open"), *newest] if e is not None}
        editions = sorted(found.values(), key=lambda e: (e.day, e.timezone), reverse=True)
    # Sent and skipped rows need no one's attention; the rest is who is waiting and who failed.
    statuses = ([FAILED] if failed else []) + ([PENDING, "sending"] if pending else [])
    statuses = statuses or [PENDING, "sending", FAILED]
    now, shown = app.clock(), 0
    for edition in editions:
        counts = store.delivery_counts(edition.id)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no subscribers"
        click.echo(f"edition {edition.day} {edition.timezone} ({edition.status}): {summary}")
        after = 0
        while batch := store.outbox_entries(edition.id, statuses=statuses, after=after):
            for row in batch:
                click.echo(_outbox_line(row, now))
            shown += len(batch)
            after = batch[-1].id
    click.echo(f"{shown} message{'s' if shown != 1 else ''} {'/'.join(statuses)}")


def _outbox_line(row: OutboxEntry, now: datetime) -> str:
    """One outbox row: address, state, attempts, when it is tried next, and the last reply."""
    if row.status == "sending":
        gone = row.lease_until is not None and row.lease_until < now
        nxt = f"held by {row.worker} until {_utc(row.lease_until)}" + (
            " (lapsed: taken over by the next run)" if gone else ""
        )
    elif row.status == "pending":
        nxt = (
            "next=now"
            if row.next_attempt_at is None or row.next_attempt_at <= now
            else f"next={_utc(row.next_attempt_at)}"
        )
    else:
        nxt = "never retried"
    crashes = f"  crashes={row.crashes}" if row.crashes else ""
    from digest.status import shown_address

    head = f"  {shown_address(row.email)}  {row.status}  attempts={row.attempts}{crashes}"
    return f"{head}  {nxt}  reply: {row.last_error or '-'}"


def _utc(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "-"


# --------------------------------------------------------------------------- feeds


def _emit(text: str, out: str | None) -> None:
    """An export: to the file named by --out, else to standard output."""
    if out:
        write_output(Path(out), text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@main.group()
def feeds() -> None:
    """List, add and remove feeds."""


@feeds.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include removed feeds.")
@pass_app
def feeds_list(app: App, show_all: bool) -> None:
    # A feed its publisher stopped (410) is listed until the operator removes it: it is news to them.
    rows = [f for f in app.reader.list_feeds() if show_all or f.active or f.stopped]
    for f in rows:
        if f.active:
            state, nxt = "active", f.next_poll_at.strftime("%Y-%m-%d %H:%M UTC") if f.next_poll_at else "now"
        else:  # not polled again, whatever time the last poll set
            state, nxt = ("STOPPED: gone (410)" if f.stopped else "removed"), "-"
        err = f"  error: {f.last_error}" if f.last_error else ""
        if f.stopped:
            err += f"  (`digest feeds enable {f.url}` polls it again)"
        filed = app.settings.filed_section(f.section)
        if f.section is not None and filed is None:  # an old OPML folder, or a section since dropped
            filed = f"rules: {f.section!r} is no section"
        # The outlet an edition cites it as: the configured name, else the one its title and site give;
        # the language it declares, what an item whose text says little of its own is read in.
        click.echo(
            f"{f.url}  [{filed or 'rules'}]  {state}  last={f.last_status or '-'}  "
            f"next={nxt}  failures={f.consecutive_failures}  lang={f.language or '-'}  as {f.display_name!r}{err}"
        )
    click.echo(f"{len(rows)} feeds")


def _label(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A name the store keeps, as the config's are checked: one line, no control character."""
    return cfg.check_opt_label(f"--{param.name}", value)


@feeds.command("add")
@click.argument("url")
@click.option("--name", callback=_label, help="Display name (default: the feed's own title).")
@click.option("--section", help="Put every item of this feed in this section.")
@pass_app
def feeds_add(app: App, url: str, name: str | None, section: str | None) -> None:
    from digest.fetch import check_feed_url

    url = check_feed_url(url, allow_private=app.settings.digest.allow_private_addresses)
    if section is not None and section not in app.settings.section_names:
        raise FeedError(
            f"--section {section!r} is not a configured section.",
            hint="Known sections: " + ", ".join(app.settings.section_names),
        )
    feed = app.store.add_feed(FeedSpec(url=url, name=name, section=section), now=app.clock())
    click.echo(f"added {feed.url}")


@feeds.command("remove")
@click.argument("url")
@pass_app
def feeds_remove(app: App, url: str) -> None:
    url = cfg.normalise_feed_url(url)
    if not app.store.remove_feed(url):
        raise FeedError(f"No active feed {url}.", hint="`digest feeds list` shows the feeds.")
    click.echo(f"removed {url} (its items stay in editions already built)")


@feeds.command("enable")
@click.argument("url")
@pass_app
def feeds_enable(app: App, url: str) -> None:
    """Poll again a feed stopped by a 410 Gone (the publisher restored it, or to try again)."""
    url = cfg.normalise_feed_url(url)
    feed = app.store.enable_feed(url)
    if feed is None:
        active = any(f.url == url and f.active for f in app.reader.list_feeds())
        raise FeedError(
            f"{url} is {'polled already' if active else 'no feed stopped by a 410 Gone'}.",
            hint="`digest feeds list` shows the stopped feeds (STOPPED: gone); `digest feeds add URL` adds a new one.",
        )
    click.echo(f"enabled {feed.url}: polled at the next poll; another 410 stops it again")


@feeds.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@pass_app
def feeds_import(app: App, path: str) -> None:
    """Add the feeds of an OPML file; its folders become sections."""
    from digest.fetch import check_feed_url
    from digest.opml import parse_opml

    entries = parse_opml(Path(path).read_bytes(), source=path)
    by_fold = {name.casefold(): name for name in app.settings.section_names}
    added = refiled = skipped = 0
    unknown: dict[str, list[str]] = {}  # folder -> its feeds, filed under the rules instead
    for spec, folder in entries:
        # A folder is a section of the config, named as it is there ("tech" is Tech, a former name
        # its section now), or it is none: a section nobody can choose on /subscribe or with
        # --sections must not be mailed to the readers of all sections alone (audit bug 2).
        section = None if folder is None else by_fold.get(app.settings.current_section(folder).casefold())
        try:
            url = check_feed_url(spec.url, allow_private=app.settings.digest.allow_private_addresses)
            if section is not None and app.store.refile_feed(url, section):  # imported before its section existed
                click.echo(f"filed {url} under {section!r}")
                refiled += 1
                continue
            app.store.add_feed(FeedSpec(url=url, name=spec.name, section=section), now=app.clock())
        except FeedError as exc:
            click.echo(f"skipped {spec.url}: {exc.message}")
            skipped += 1
            continue
        added += 1
        if folder is not None and section is None:
            unknown.setdefault(folder, []).append(url)
    for folder, urls in unknown.items():
        click.echo(
            f"note: folder {folder!r} ({len(urls)} feed{'s' if len(urls) != 1 else ''}) is no section of the "
            f"config, so its items are filed by the section rules; to give it a section of its own, add "
            f"[[sections]] name = {cfg.toml_value(folder)} to the config and import the file again"
        )
    again = f", {refiled} filed under their folder's section" if refiled else ""
    click.echo(f"imported {added} feeds from {path} ({skipped} skipped{again})")


@feeds.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE (default: standard output).")
@pass_app
def feeds_export(app: App, out: str | None) -> None:
    """Write the active feeds as OPML, one folder per section."""
    from digest.catalogue import title_in_site_language
    from digest.opml import to_opml

    site = app.settings.digest
    _emit(
        to_opml(
            [(f.url, f.display_name, f.section) for f in app.reader.list_feeds(active_only=True)],
            # Titled as the site's email and pages are; folders keep the sections' own names, which an
            # import reads back as sections.
            title=title_in_site_language(site.title, site.language, site.templates_dir),
            now=app.clock(),
        ),
        out,
    )


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Where the database's schema stands, upgrading it (Alembic migrations), and copying it to another."""


def _schema_store(app: App) -> Store:
    # The one place a store is opened without the schema check and without the config sync: these
    # commands exist for databases the rest of digest refuses.
    from digest.store import Store

    return Store(app.settings.database_url, check_schema=False)


def _refuse_while_running(store: Store, command: str) -> None:
    """StoreError while a daemon or a worker runs on the database (`digest db upgrade`, `db copy`)."""
    from datetime import UTC

    from digest.daemon import LOCK_NAME, STALE_AFTER

    if store.schema_revision() is None:
        return
    holder = store.lock_holder(LOCK_NAME)
    if holder is not None and datetime.now(UTC) - holder[1] < STALE_AFTER:
        raise StoreError(
            f"A digest daemon ({holder[0]}) is running on this database; nothing was changed.",
            hint=f"Stop it, run `digest {command}`, then start the daemon again.",
        )
    live = store.live_worker_names()
    if live:  # workers on PostgreSQL take no lock: they are in the workers table (issue 15)
        raise StoreError(
            f"digest workers ({', '.join(live)}) are running on this database; nothing was changed.",
            hint=f"Stop them, run `digest {command}`, then start them again.",
        )


@db.command("current")
@pass_app
def db_current(app: App) -> None:
    """Print the database's schema revision and whether it is the one this digest needs."""
    from digest import migrations

    store = _schema_store(app)
    try:
        found, wanted = store.schema_revision(), migrations.head()
    finally:
        store.close()
    if found is None:
        click.echo(f"empty database: the first command creates it at revision {wanted}")
    elif found == wanted:
        click.echo(f"{found} (head): up to date")
    elif found not in migrations.revisions_between(None, wanted):
        click.echo(f"{found}: unknown to this digest (it needs {wanted}); a newer digest upgraded it")
    else:
        origin = " (the release before migrations; no alembic_version table)" if found == migrations.RELEASE_1 else ""
        click.echo(f"{found}{origin}: outdated; this digest needs {wanted}: run `digest db upgrade`")


@db.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Bring the database to this digest's schema; keeps every row; running it again does nothing."""
    store = _schema_store(app)
    try:
        _refuse_while_running(store, "db upgrade")  # a daemon would meet tables changing under it
        before, after = store.upgrade_schema()
    finally:
        store.close()
    if before == after:
        click.echo(f"already at {after}: nothing to do")
    else:
        click.echo(f"upgraded {before or 'an empty database'} -> {after}")


@db.command("copy")
@click.option(
    "--to",
    "to_url",
    required=True,
    metavar="URL",
    help="SQLAlchemy URL of a new, empty database; its password from DIGEST_DB_COPY_PASSWORD (or PGPASSWORD).",
)
@pass_app
def db_copy(app: App, to_url: str) -> None:
    """Copy every row of the database into a new, empty one (SQLite to PostgreSQL), keeping ids,
    links, the site secret and what was sent; the database itself is left as it was."""
    from digest import unsubscribes
    from digest.config import mask_url
    from digest.store import Store
    from digest.store import copy as dbcopy

    to_url, on_command_line = dbcopy.target_url(to_url, _env())
    if on_command_line:
        click.echo(
            "warning: the --to URL carries a password, which `ps` shows to every user of this host and the "
            f"shell's history keeps: give the URL without it and the password in {dbcopy.PASSWORD_VARIABLE} "
            "(or PGPASSWORD, or ~/.pgpass)",
            err=True,
        )

    spool = unsubscribes.spool_path(app.settings)
    store = _schema_store(app)
    try:
        _refuse_while_running(store, "db copy")  # rows written after their table was copied would be lost
        dbcopy.check_source(store.engine, mask_url(app.settings.database_url))
        # Unsubscribes the web app kept beside this database while it was busy: into the rows copied,
        # since after the move nothing reads that file any more.
        if spooled := unsubscribes.apply(store, spool, now=app.clock()):
            click.echo(f"applied {spooled} unsubscribe(s) waiting in {spool}")
        target = dbcopy.prepare_target(to_url)
        try:
            counts = dbcopy.copy_rows(store.engine, target)
        finally:
            target.dispose()
    finally:
        store.close()
    moved = Store(to_url)
    try:  # one the web app could only spool while the copy held the database
        if late := unsubscribes.apply(moved, spool, now=app.clock()):
            click.echo(f"applied {late} unsubscribe(s) made during the copy to the new database")
    finally:
        moved.close()
    width = max(len(c.table) for c in counts)
    for c in counts:
        click.echo(f"{c.table:<{width}}  {c.rows}")
    click.echo(f"copied {sum(c.rows for c in counts)} rows into {mask_url(to_url)}")
    click.echo(
        f"next: point `database` under [digest] in {app.config_path} at the --to URL, then start digest again; "
        "keep `digest web` stopped until then (an unsubscribe it takes now would stay in the old database, "
        "which is left as it was)"
    )


# --------------------------------------------------------------------------- subscribers


@main.group()
def subscribers() -> None:
    """List, add, unsubscribe and remove subscribers."""


@subscribers.command("list")
@pass_app
def subscribers_list(app: App) -> None:
    from digest.status import shown_address

    rows = app.reader.list_subscribers()
    for s in rows:
        chosen = app.settings.chosen_now(s.sections)  # a former name ([[sections]] formerly) as its section
        sections = "unreadable" if s.damaged else ", ".join(chosen) if chosen is not None else "all sections"
        # Permanent SMTP refusals counted towards [smtp] suspend_after; bounces are counted apart.
        strikes = f"{s.permanent_failures}/{app.settings.smtp.suspend_after}"
        extra = f"  smtp_failures={strikes}" if s.permanent_failures else ""
        zone = _zone_shown(app, s.timezone or app.settings.digest.timezone)
        click.echo(f"{shown_address(s.email)}  {s.status}  [{sections}]  tz={zone}{extra}")
    click.echo(f"{len(rows)} subscribers")


def _zone_shown(app: App, zone: str | None) -> str:
    """A subscriber's time zone as `subscribers list` and `show` give it: the site's when they chose
    none, and a stored one this machine does not know, with the edition they get instead."""
    site = app.settings.digest.timezone
    if zone is None:
        return f"{site} (the site's)"
    if not schedule.known_zone(zone):
        return f"{zone} (not in this machine's tz database: they get the {site} edition)"
    return zone


def _sections_option(app: App, value: str | None) -> tuple[str, ...] | None:
    """--sections "World,Sport" -> the names, each checked against the config."""
    if value is None:
        return None
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:  # an empty choice would store a subscriber who never gets an email
        raise SubscriberError(
            f"--sections {value!r} names no section.",
            hint="Give at least one section (--sections World,Sport), or leave out --sections for all sections.",
        )
    return _known_sections(app, names)


def _known_sections(app: App, chosen: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The names, each checked against the config; a section's former name stands for the section."""
    names = tuple(dict.fromkeys(app.settings.current_section(s) for s in chosen))
    known = app.settings.section_names
    for s in names:
        if s not in known:
            meant = cfg.close_match(s, known)
            raise SubscriberError(
                f"{s!r} is not a section" + (f" (did you mean {meant!r}?)." if meant else "."),
                hint="Known sections: " + ", ".join(known),
            )
    return names


def _subscriber_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from digest.roster import check_name

    # The length first: a pasted page would otherwise be quoted whole in the control-character error.
    return _label(ctx, param, check_name(value, subject="--name"))


@subscribers.command("add")
@click.argument("email")
@click.option("--name", callback=_subscriber_name)
@click.option("--sections", help="Comma-separated section names (default: all).")
@click.option("--timezone", help="IANA time zone (default: [digest] timezone).")
@pass_app
def subscribers_add(app: App, email: str, name: str | None, sections: str | None, timezone: str | None) -> None:
    from digest.addresses import validate_email

    address = validate_email(email)
    if timezone is not None:
        cfg.check_timezone("--timezone", timezone)
    sub = app.store.add_subscriber(
        address, name=name, sections=_sections_option(app, sections), timezone=timezone, now=app.clock()
    )
    click.echo(f"added {sub.email}")


@subscribers.command("remove")
@click.argument("email")
@pass_app
def subscribers_remove(app: App, email: str) -> None:
    if not app.store.remove_subscriber(email, now=app.clock()):
        raise SubscriberError(f"No subscriber {email}.", hint="`digest subscribers list` shows the subscribers.")
    click.echo(
        f"removed {email} and their delivery records; only a hash of the address is kept, so that no "
        "import or command adds it back (the person can sign up again)"
    )


def _as_stored(app: App, given: str) -> str:
    """An address an operator typed, as the store has it: an A-label spelling or another case finds
    the same subscriber, named as stored; one the check refuses is looked up as written (a stored
    address may predate it)."""
    from digest.addresses import validate_email

    try:
        address = validate_email(given)
    except SubscriberError:
        return given.strip()
    found = app.store.get_subscriber(email=address)
    return found.email if found is not None else address


@subscribers.command("unsubscribe")
@click.argument("emails", metavar="EMAIL...", nargs=-1, required=True)
@pass_app
def subscribers_unsubscribe(app: App, emails: tuple[str, ...]) -> None:
    """Unsubscribe addresses whose owners asked you to (a mail to [smtp] unsubscribe_mailto).

    Their sections and other settings stay; only their own sign-up subscribes them again.
    """
    store, now = app.store, app.clock()
    unknown: list[str] = []
    for given in emails:
        email = _as_stored(app, given)
        outcome = store.unsubscribe_on_request(email, now=now)
        if outcome == "unsubscribed":
            click.echo(
                f"unsubscribed {email} (sections and settings kept; only their own sign-up subscribes them again)"
            )
        elif outcome == "already":
            click.echo(f"{email} was already unsubscribed; nothing changed")
        elif outcome == "erased":
            click.echo(f"{email} was erased earlier; nothing is sent to it")
        else:
            click.echo(f"{email} is not a subscriber here; nothing changed", err=True)
            unknown.append(email)
    if unknown:
        # Exit 1: a typo must not pass for done while the person who asked keeps getting editions.
        raise SubscriberError(
            f"No subscriber {', '.join(unknown)} ({len(unknown)} of the {len(emails)} addresses given).",
            hint="Check the spelling; a request may come from another address than the one subscribed "
            "(an alias, a forward): the edition they answer names it in its To line.",
        )


@subscribers.command("reinstate")
@click.argument("emails", metavar="EMAIL...", nargs=-1, required=True)
@pass_app
def subscribers_reinstate(app: App, emails: tuple[str, ...]) -> None:
    """Lift a suspension that failed deliveries or bounces caused, once the mailbox works again.

    Never an unsubscribe or a spam complaint: those are the subscriber's, and only their own
    sign-up lifts them.
    """
    store, now = app.store, app.clock()
    refused: list[str] = []
    for given in emails:
        email = _as_stored(app, given)
        outcome = store.reinstate(email, now=now)
        if outcome == "reinstated":
            click.echo(f"reinstated {email}: active again, strikes and bounces cleared, no longer suppressed")
        elif outcome == "active":
            click.echo(f"{email} is active; nothing changed")
        elif outcome in ("complained", "unsubscribed"):
            why = "reported an edition as spam" if outcome == "complained" else "unsubscribed"
            click.echo(f"{email} {why}; only their own sign-up subscribes them again", err=True)
            refused.append(email)
        elif outcome == "erased":
            click.echo(f"{email} was erased; only their own sign-up subscribes them again", err=True)
            refused.append(email)
        elif outcome is None:
            click.echo(f"{email} is not a subscriber here", err=True)
            refused.append(email)
        else:
            click.echo(f"{email} is {outcome}, not suspended; nothing changed", err=True)
            refused.append(email)
    if refused:
        raise SubscriberError(
            f"Not reinstated: {', '.join(refused)} ({len(refused)} of the {len(emails)} addresses given).",
            hint="`digest subscribers show EMAIL` says each one's status and who set it.",
        )


@subscribers.command("show")
@click.argument("email")
@pass_app
def subscribers_show(app: App, email: str) -> None:
    """Each of a subscriber's settings and who set it: config, cli or subscriber (the web pages)."""
    found = app.store.subscriber_origins(email)
    if found is None:
        raise SubscriberError(f"No subscriber {email}.", hint="`digest subscribers list` shows the subscribers.")
    sub, origins = found.subscriber, found.origins
    known = set(app.settings.section_names)
    # A choice no section has now (renamed without `formerly`, or dropped) brings them nothing: say
    # so. A former name a section lists is that section, as the edition reads it.
    stored = app.settings.chosen_now(sub.sections) or ()
    chosen = [s if s in known else f"{s} (no section has this name now)" for s in stored]
    sections = sub.damaged or (", ".join(chosen) if sub.sections is not None else "all sections")
    click.echo(f"email     {sub.email}  ({'listed in the config' if found.from_config else 'not in the config'})")
    for label, value, origin in (
        ("name", sub.name or "-", origins["name"]),
        ("sections", sections, origins["sections"]),
        ("timezone", _zone_shown(app, sub.timezone), origins["timezone"]),
        ("status", sub.status, origins["status"]),
    ):
        click.echo(f"{label:<9} {value}  [set by {origin}]")
    _show_deliveries(app, sub.id, sub.permanent_failures)
    score = app.store.bounce_score(sub.id, now=app.clock(), half_life=app.settings.bounces.soft_decay)
    if score >= 0.01:
        click.echo(
            f"soft-bounce score {score:.2f} (suppressed at {app.settings.bounces.soft_threshold:g}; "
            f"halves every {cfg.format_duration(app.settings.bounces.soft_decay)})"
        )
    why = app.store.suppression_reason(sub.email)
    if why is not None:
        reason, since = why
        line = f"suppressed {reason} since {since:%Y-%m-%d %H:%M} UTC"
        last = app.store.last_bounce(sub.id)
        if last is not None and reason in ("bounced", "complained"):
            kind, code, diagnostic, at = last
            line += f"; last bounce {kind} {code or ''} on {at:%Y-%m-%d}: {diagnostic or '-'}".replace("  ", " ")
        click.echo(line)


def _show_deliveries(app: App, subscriber_id: int, strikes: int) -> None:
    """The permanent SMTP failures counted towards a suspension, the last one's reply, and the
    messages waiting for a retry with theirs: what the SMTP server said about this address."""
    from digest.store import FAILED, PENDING

    limit = app.settings.smtp.suspend_after
    click.echo(f"strikes   {strikes} of {limit} (permanent SMTP failures; suspended at [smtp] suspend_after = {limit})")
    for row in app.store.subscriber_outbox(subscriber_id, statuses=[FAILED], limit=1):
        reply = row.last_error or "no reply recorded"
        click.echo(f"failed    edition {row.day} {row.timezone} at {_utc(row.updated_at)}: {reply}")
    for row in app.store.subscriber_outbox(subscriber_id, statuses=[PENDING], limit=3):
        if row.last_error:
            when = _utc(row.next_attempt_at) if row.next_attempt_at else "now"
            click.echo(
                f"deferred  edition {row.day} {row.timezone}, attempts={row.attempts}, next {when}: {row.last_error}"
            )


@subscribers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@pass_app
def subscribers_import(app: App, path: str) -> None:
    """Add or update subscribers from a CSV file (email,name,sections,timezone[,status]); all or nothing."""
    from digest.addresses import address_key, validate_email
    from digest.roster import NOTHING_IMPORTED, read_roster
    from digest.store.subscribers import ImportRow

    rows, problems = read_roster(read_csv_text(path), source=path)
    checked: list[ImportRow] = []
    first_line: dict[str, tuple[int, str]] = {}  # an address's key -> its first line and spelling
    for row in rows:  # validate everything first, so a typo on line 900 imports nothing

        def bad(message: str, hint: str = f"Fix that line; {NOTHING_IMPORTED}.", *, line: int = row.line) -> None:
            problems.append((line, SubscriberError(message, hint=hint)))

        try:
            email = validate_email(row.email)
        except SubscriberError as exc:
            bad(f"{path} line {row.line}: {exc.message}")
            continue
        # Which of two lines was meant cannot be told (one may say unsubscribed, the other not); two
        # spellings in different case are one address (address_key).
        earlier, spelt = first_line.setdefault(address_key(email), (row.line, email))
        if earlier != row.line:
            bad(
                f"{path} lines {earlier} and {row.line} both give the address {spelt}.",
                f"Keep one of the two lines; {NOTHING_IMPORTED}.",
            )
            continue
        try:
            sections = _known_sections(app, row.sections) if row.sections else None
            if row.timezone:
                cfg.check_timezone("timezone", row.timezone)
        except (SubscriberError, ConfigError) as exc:
            bad(f"{path} line {row.line}: {exc.message}")
            continue
        checked.append(
            ImportRow(email=email, name=row.name, sections=sections, timezone=row.timezone, status=row.status)
        )
    if len(problems) == 1:
        raise problems[0][1]
    if problems:  # every row to fix in one run, in the file's order, then the one error line
        for _, problem in sorted(problems, key=lambda p: p[0]):
            click.echo(problem.message, err=True)
        raise SubscriberError(
            f"{path}: {len(problems)} rows cannot be imported (each is named above).",
            hint=f"Fix those lines; {NOTHING_IMPORTED}.",
        )
    counts = app.store.import_subscribers(checked, now=app.clock())
    click.echo(
        f"imported {path}: {counts['added']} added, {counts['updated']} updated, {counts['unchanged']} unchanged, "
        f"{counts['stopped']} unsubscribed or suspended as the file says, "
        f"{counts['kept']} left as they are (unsubscribed, suspended or erased here)"
    )


@subscribers.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE (default: standard output).")
@pass_app
def subscribers_export(app: App, out: str | None) -> None:
    """Write every subscriber as CSV (email,name,sections,timezone,status)."""
    from digest.roster import UNREADABLE, write_csv

    # Former names ([[sections]] formerly) under the sections' names now: the file imports into a
    # config that no longer lists them.
    now_named = app.settings.chosen_now
    listed = [dataclasses.replace(s, sections=now_named(s.sections)) for s in app.reader.list_subscribers()]
    _emit(write_csv(listed), out)
    if damaged := [s.email for s in listed if s.damaged]:
        click.echo(
            f"warning: the sections of {len(damaged)} subscriber(s) cannot be read ({', '.join(damaged[:5])}"
            f"{', ...' if len(damaged) > 5 else ''}): their cell says {UNREADABLE}, which an import refuses "
            "until you write what they chose (`digest status` lists them)",
            err=True,
        )


# --------------------------------------------------------------------------- sections


@main.group()
def sections() -> None:
    """Inspect section rules."""


@sections.command("explain")
@click.argument("text")
@click.option("--category", "categories", multiple=True, help="An item category to take into account.")
@pass_app
def sections_explain(app: App, text: str, categories: tuple[str, ...]) -> None:
    """Say which section an item goes to, and why: a URL or title, or a stored item's link or id.

    For a stored item, the section each edition stored for it is shown: what its email used.
    """
    from digest.pipeline.mailer import classify_item
    from digest.sections import classify

    stored = app.store.find_items(text.strip()) if not categories else []
    if stored:
        renames = app.settings.section_renames
        for item in stored:
            result = classify_item(app.settings, item)
            # Under the names the sections have now: a section renamed since (formerly) is the same.
            placements = [(ed, renames.get(sec, sec)) for ed, sec in app.store.item_sections(item.id)]
            click.echo(f"item {item.id} ({item.source}): {item.title}")
            for edition, section in placements:
                click.echo(f"  edition {edition.day} {edition.timezone}: {section}")
            if not placements:
                click.echo("  in no edition yet")
            if all(section == result.section for _, section in placements):
                click.echo(f"  {result.section}: {result.reason}")
            else:  # the rules changed after the edition was built; the email used the stored section
                click.echo(f"  with today's rules it would go to {result.section}: {result.reason}")
            _echo_capital_misses(app, item.title, item.summary_text, indent="  ", declared=item.language)
            _echo_derived_misses(app, item.title, item.summary_text, indent="  ", declared=item.language)
            _echo_language(app, item.title, item.summary_text, indent="  ", declared=item.language)
        return
    if text.strip().isdigit():
        raise DigestError(
            f"No stored item has id {text.strip()}.",
            hint="Give an item's id from the database, its link, or a title to try the rules on.",
        )
    is_url = text.startswith(("http://", "https://"))
    result = classify(
        title="" if is_url else text,
        url=text if is_url else None,
        categories=categories,
        feed_section=None,
        sections=app.settings.sections,
        fallback=app.settings.digest.fallback_section,
    )
    click.echo(f"{result.section}: {result.reason}")
    if not is_url:
        _echo_capital_misses(app, text, "")
        _echo_derived_misses(app, text, "")
        _echo_language(app, text, "")


def _echo_language(app: App, title: str, summary: str, indent: str = "", declared: str | None = None) -> None:
    """Where rules name languages, the one the item is read in: a rule for "pt" misses an item read as "es"."""
    from digest.sections import item_language

    named = {lang for section in app.settings.sections for rule in section.rules for lang in rule.languages}
    if named:
        lang = item_language(title, summary, declared)
        why = ""
        if declared:
            guessed = item_language(title, summary)
            why = (
                f", as its feed declares: its text says too little to tell (alone it reads as '{guessed}')"
                if lang == declared and guessed != declared
                else f", as its text says, though its feed declares '{declared}'"
                if lang != declared
                else ", as its text says and its feed declares"
            )
        click.echo(
            f"{indent}language: read as '{lang}'{why} (rules that set languages list {', '.join(sorted(named))})"
        )


def _echo_capital_misses(app: App, title: str, summary: str, indent: str = "", declared: str | None = None) -> None:
    """A keyword written with a capital matches only names: say so where the text has it in lower case."""
    from digest.sections import capital_misses

    for section, keyword in capital_misses(title, summary, app.settings.sections, declared):
        click.echo(
            f"{indent}note: keyword '{keyword}' of section '{section}' is written with a capital, so it matches"
            f" only a name, and the text has it in lower case; write '{keyword.lower()}' to match it either way."
        )


def _echo_derived_misses(app: App, title: str, summary: str, indent: str = "", declared: str | None = None) -> None:
    """A keyword matches a word's inflections, not a word derived from it: say so where the text has one."""
    from digest.sections import derived_misses

    for section, keyword, word in derived_misses(title, summary, app.settings.sections, declared):
        click.echo(
            f"{indent}note: keyword '{keyword}' of section '{section}' does not match '{word}', a word derived"
            f" from it (keywords match a word's inflections only); add '{word}' if it should match too."
        )


# --------------------------------------------------------------------------- demo


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="digest-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to leave the received .eml files, the HTML preview and the SQLite database.",
)
def demo(out_dir: str) -> None:
    """Run the whole pipeline offline on bundled demo feeds, a local SMTP server and SQLite."""
    from digest.demo import run_demo

    result = run_async(run_demo(Path(out_dir)))
    click.echo(result.summary())


@main.command("web")
@click.option("--host", help="Address to listen on (default: [web] host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default: [web] port; 0: any free one).")
@pass_app
def web_command(app: App, host: str | None, port: int | None) -> None:
    """Serve the web app (one-click unsubscribe, preferences, edition pages) until SIGTERM or SIGINT."""
    from digest.store import Store
    from digest.web import WEB_BUSY_TIMEOUT, run_web

    def ready(urls: list[str]) -> None:
        web = app.settings.web
        metrics = "" if web.metrics_port is None else f"; /metrics on {web.metrics_host}:{web.metrics_port}"
        click.echo(f"serving on {', '.join(urls)}; public at {app.settings.digest.base_url}{metrics}")

    app.store.close()  # synced the config; requests get a store that waits less for a write lock
    store = Store(app.settings.database_url, busy_timeout=WEB_BUSY_TIMEOUT)
    try:
        run_async(run_web(app.settings, store, clock=app.clock, host=host, port=port, on_ready=ready))
    finally:
        store.close()


@main.group()
def bounces() -> None:
    """Bounces and complaints: receive them over SMTP, read them from IMAP, or import them from files."""


@bounces.command("serve")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=25, show_default=True, help="Port to listen on (0: any free one)."
)
@pass_app
def bounces_serve(app: App, host: str, port: int) -> None:
    """Receive bounces for bounce+*@[bounces] domain over SMTP until SIGTERM or SIGINT."""
    from digest.pipeline.bounces import run_smtp

    def ready(where: str) -> None:
        click.echo(f"receiving bounces for {app.settings.bounces.domain} on {where}")

    run_async(run_smtp(app.settings, app.store, clock=app.clock, host=host, port=port, on_ready=ready))


@bounces.command("fetch")
@pass_app
def bounces_fetch(app: App) -> None:
    """Record the unread messages of the [bounces] imap_* mailbox, flagging each one read."""
    from digest.pipeline.bounces import fetch_imap

    report = fetch_imap(app.settings, app.store, clock=app.clock)
    click.echo(report.summary())
    _bounce_hint(report.hint(app.settings))


@bounces.command("import")
@click.argument("files", nargs=-1, required=True)
@pass_app
def bounces_import(app: App, files: tuple[str, ...]) -> None:
    """Record bounce messages from FILES (one message each, or an mbox); - reads one from standard input."""
    from digest.pipeline.bounces import import_files

    def stdin() -> bytes:
        return sys.stdin.buffer.read()

    report = import_files(app.settings, app.store, files, clock=app.clock, read_stdin=stdin)
    click.echo(report.summary())
    _bounce_hint(report.hint(app.settings))


def _bounce_hint(hint: str | None) -> None:
    """After the counts, on standard error as an error's hint is: the counts stay one line to read."""
    if hint:
        click.echo(f"  hint: {hint}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
