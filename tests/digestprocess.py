"""`python -m digest` as a process for tests, launched one way everywhere: `run_digest()` for a
one-shot command (its exit status, stdout and stderr), `launch()` for one the test talks to while it
runs, `DigestProcess` for a long-running one (`run`, `worker`) whose stderr is collected line by line,
and `kill_sessions()` for what a failing test left running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def digest_env(env: Mapping[str, str | None]) -> dict[str, str]:
    """Our environment with `env` over it (None: left out), and PYTHONPATH at this checkout, so that
    the process runs the code under test even where another checkout is installed."""
    merged: dict[str, str | None] = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return {k: v for k, v in merged.items() if v is not None}


async def launch(
    config: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    stdin: int | IO[bytes] = asyncio.subprocess.DEVNULL,
    stdout: int = asyncio.subprocess.PIPE,
    stderr: int | IO[bytes] = asyncio.subprocess.PIPE,
    own_session: bool = False,
    preexec_fn: Callable[[], None] | None = None,
) -> asyncio.subprocess.Process:
    """`python -m digest --config CONFIG ARGS...` in the config's folder, stdout and stderr piped.

    `own_session`: in a session (and process group) of its own, so that a signal or a kill -9 can
    reach the process and any worker it started (`kill_sessions()`)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "digest",
        "--config",
        str(config),
        *args,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=digest_env(env or {}),
        cwd=str(config.parent),
        start_new_session=own_session,
        preexec_fn=preexec_fn,
    )


async def run_digest(
    config: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    stdin: bytes | None = None,
    timeout: float = 120.0,
) -> tuple[int, str, str]:
    """A one-shot `python -m digest --config CONFIG ARGS...`, fed `stdin`: (exit status, stdout, stderr)."""
    proc = await launch(
        config, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def slowness() -> float:
    """How many times slower than an idle machine a process starts now: the load average per core
    (the larger of the last 1 and 5 minutes, so a load still building up counts), at least 1.

    For a test whose outcome depends on how soon `digest` is up, not on how long it waits: the
    daemon's clock (DIGEST_NOW) runs from the moment its process starts, so a head start of a few
    seconds before send_at is all used up by imports on a machine with six runnable processes a core."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # no load average here: assume an idle machine
        return 1.0
    return max(1.0, max(one, five) / (os.cpu_count() or 1))


async def kill_sessions(procs: Iterable[asyncio.subprocess.Process]) -> None:
    """SIGKILL the process group of each process still running (each `launch`ed with own_session)."""
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class DigestProcess:
    def __init__(self, label: str) -> None:
        self.label = label  # how failures name it: "daemon", the worker's name
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def spawn(self, config: Path, args: Sequence[str], env: Mapping[str, str]) -> None:
        """`python -m digest --config CONFIG ARGS...` in the config's folder, with `env` over ours."""
        self.proc = await launch(config, *args, env=env, stdout=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, text: str, timeout: float = 20.0) -> None:
        """Until a line of the log contains `text`; fails at once if the process exits first."""

        async def seen() -> None:
            while not any(text in line for line in self.lines):
                assert self.proc is not None
                if self.proc.returncode is not None and self._reader is not None and self._reader.done():
                    raise AssertionError(
                        f"{self.label} exited ({self.proc.returncode}) before logging {text!r}:\n{self.log}"
                    )
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)

        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.label} never logged {text!r}:\n{self.log}") from None

    async def exited(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit on its own (a one-shot command); its exit status, its log read whole."""
        assert self.proc is not None
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return rc

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait for the exit status; kill and fail after `timeout`."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"{self.label} did not exit within {timeout}s of signal {sig}:\n{self.log}") from None
        if self._reader is not None:
            await self._reader
        return rc
