"""Runs parse_feed in worker processes, each parse under a CPU-time budget.

feedparser has a quadratic regex in its author parsing (feedparser#562): one crafted feed can
take minutes of CPU. A thread cannot be stopped, so parsing runs in separate processes
(reliability.md D1, finding 2), and each parse may use at most ``cpu_seconds`` of CPU:

* before each job the worker sets its soft RLIMIT_CPU to the CPU it has used so far plus the
  budget; the kernel then ends it with SIGXCPU when a parse overruns (setrlimit(2)). Limits are
  whole seconds, so a parse may run up to one second past the budget;
* the parent sees the worker's pipe close, fails only that parse with ParseError and starts a
  fresh worker; parses in the other workers carry on;
* a wall-clock backstop (``wall_seconds``) kills a worker that stops answering without using
  CPU, which parsing never should.

The pool owns a fixed set of long-lived worker processes (``python -m digest.parsepool``), started
on first use and replaced when one dies. Each worker is paired with one
thread of a private ThreadPoolExecutor that does the blocking pipe I/O, so the event loop never
blocks and at most ``workers`` parses run at once; further calls queue in the executor.

Use it as ``with ParserPool() as pool:`` or ``async with ParserPool() as pool:``; both call
close(), which stops the workers. It must not be shared across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import operator
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from digest.errors import ParseError, is_bug
from digest.model import ParsedFeed, ParsedItem

if TYPE_CHECKING:  # imported where a worker starts: a poll whose feeds all answer 304 starts none
    import multiprocessing.connection

__all__ = ["ParserPool"]

log = logging.getLogger(__name__)

try:
    import resource
except ImportError:  # not POSIX: only the wall-clock backstop applies
    resource = None  # type: ignore[assignment]

_Job = tuple[bytes, str, str | None, datetime, int]


# --------------------------------------------------------------------------- the reply

# Items cross the pipe as plain tuples: pickle rebuilds a frozen slotted dataclass field by field
# through object.__setattr__, which made unpickling a 50-item feed cost the parent (whose one
# core also fetches and stores) twice as much.
_ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(ParsedItem))
_item_values = operator.attrgetter(*_ITEM_FIELDS)
_Packed = tuple[str | None, str | None, str | None, str | None, str | None, list[tuple[Any, ...]]]


def _pack(feed: ParsedFeed) -> _Packed:
    return feed.title, feed.link, feed.warning, feed.rights, feed.language, [_item_values(item) for item in feed.items]


def _unpack(packed: _Packed) -> ParsedFeed:
    title, link, warning, rights, language, items = packed
    return ParsedFeed(
        title=title,
        link=link,
        items=tuple(ParsedItem(*values) for values in items),
        warning=warning,
        rights=rights,
        language=language,
    )


# --------------------------------------------------------------------------- worker process side


def _set_cpu_budget(seconds: float) -> None:
    """Let this process use ``seconds`` more CPU from now on, then SIGXCPU ends it."""
    if resource is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _worker_main(conn: multiprocessing.connection.Connection, cpu_seconds: float) -> None:
    """A worker's whole life: receive a job, parse it, send back ('ok', feed) or ('error', text)."""
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if resource is not None:
        # SIGXCPU's default action dumps core: a budget overrun should leave no core file.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from digest.parse import parse_feed  # imported here so the parent never needs feedparser

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        body, url, content_type, now, excerpt_chars = job
        _set_cpu_budget(cpu_seconds)
        reply: tuple[str, Any]
        try:
            reply = (
                "ok",
                _pack(parse_feed(body, url=url, content_type=content_type, now=now, excerpt_chars=excerpt_chars)),
            )
        except ParseError as exc:
            reply = ("error", (exc.message, exc.hint))
        except MemoryError:
            reply = ("error", (f"{url}: the feed needs too much memory to parse.", None))
        except BaseException as exc:  # a feedparser bug (or nh3's panic) on odd input is that feed's problem
            if not is_bug(exc):
                raise
            reply = ("crash", (f"{url}: the parser failed: {type(exc).__name__}: {exc}", traceback.format_exc()))
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


# --------------------------------------------------------------------------- parent side


class _Worker:
    """One worker process and the parent's end of its socket; used by one executor thread only.

    The worker is a plain ``python -m digest.parsepool`` child rather than a multiprocessing
    Process: spawn would re-import the parent's __main__ (the whole daemon) in every worker, and
    fork would copy the locks of the daemon's threads.
    """

    def __init__(self, cpu_seconds: float) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "digest.parsepool", str(child_sock.fileno()), repr(cpu_seconds)],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            child_sock.close()
        import multiprocessing.connection

        self.conn = multiprocessing.connection.Connection(parent_sock.detach())

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 2.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()

    def exit_code(self) -> int | None:
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            return None


class ParserPool:
    """A fixed set of parser processes; ``await pool.parse(...)`` parses one body in one of them."""

    def __init__(self, *, workers: int | None = None, cpu_seconds: float = 10.0) -> None:
        if cpu_seconds <= 0:
            raise ValueError("cpu_seconds must be positive")
        self.workers = workers or _available_cpus()
        self.cpu_seconds = cpu_seconds
        # Only for a worker that hangs without burning CPU; generous because on a busy machine
        # a parse's wall time can be several times its CPU time.
        self.wall_seconds = max(30.0, cpu_seconds * 6)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="digest-parse")
        self._local = threading.local()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- public

    async def parse(
        self, body: bytes, *, url: str, content_type: str | None, now: datetime, excerpt_chars: int = 280
    ) -> ParsedFeed:
        """parse_feed() in a worker process; ParseError when the body is not a feed or overruns."""
        if self._closed:
            raise RuntimeError("ParserPool is closed")
        job: _Job = (bytes(body), url, content_type, now, excerpt_chars)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, job)

    def close(self) -> None:
        """Stop every worker; pending parses finish first. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> ParserPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- executor-thread side

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None or not worker.alive():
            if worker is not None:
                self._retire(worker)
            worker = _Worker(self.cpu_seconds)
            self._local.worker = worker
            with self._lock:
                self._all.append(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        self._local.worker = None

    def _run(self, job: _Job) -> ParsedFeed:
        url = job[1]
        try:
            status, payload = self._exchange(job)
        except _WorkerDied:
            # Killed from outside (OOM killer, an operator) perhaps before it even saw the job:
            # one more try on a fresh worker; a body that kills workers fails the second time.
            try:
                status, payload = self._exchange(job)
            except _WorkerDied as exc:
                raise ParseError(f"{url}: the parser process died ({exc}).") from None
        if status == "ok":
            return _unpack(payload)
        message, detail = payload
        if status == "crash":
            log.debug("feed=%s parser traceback:\n%s", url, detail)
            raise ParseError(message, hint=_CRASH_HINT)
        raise ParseError(message, hint=detail)

    def _exchange(self, job: _Job) -> tuple[str, Any]:
        """Send one job to this thread's worker and wait for its reply."""
        url = job[1]
        worker = self._worker()
        try:
            worker.conn.send(job)
            if not worker.conn.poll(self.wall_seconds):
                self._retire(worker)
                log.warning("feed=%s parse stopped after %.0f s wall time", url, self.wall_seconds)
                raise ParseError(
                    f"{url}: parsing took longer than {self.wall_seconds:.0f} s and was stopped.", hint=_SLOW_HINT
                )
            reply: tuple[str, Any] = worker.conn.recv()
            return reply
        except (EOFError, OSError, ValueError):
            code = worker.exit_code()
            self._retire(worker)
        if code == -signal.SIGXCPU:  # the kernel enforcing the soft RLIMIT_CPU set for this job
            log.warning("feed=%s parse stopped at the CPU budget of %g s", url, self.cpu_seconds)
            raise ParseError(
                f"{url}: parsing used more than {self.cpu_seconds:g} s of CPU and was stopped.", hint=_SLOW_HINT
            )
        raise _WorkerDied(f"signal {-code}" if code is not None and code < 0 else f"exit code {code}")


class _WorkerDied(Exception):
    pass


_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# feedparser raises on some malformed documents instead of marking them bozo; parse mends those it
# knows of (`feedbody.valid_char_refs`, `feedbody.readable_declaration`), and the feed's next poll is tried again.
_CRASH_HINT = (
    "feedparser could not read this document; check it with a feed validator or tell its publisher "
    "(digest --debug poll logs the traceback). It is polled again as usual."
)
_SLOW_HINT = (
    "The feed may be crafted to be slow to parse (e.g. a huge <author>); "
    "remove it or raise the parse CPU budget if you trust it."
)


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


if __name__ == "__main__":  # a worker, started by _Worker with its socket's fd and the CPU budget
    import multiprocessing.connection

    _worker_main(multiprocessing.connection.Connection(int(sys.argv[1])), float(sys.argv[2]))
