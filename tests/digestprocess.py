"""A long-running `python -m digest` process for tests (`run`, `worker`), its stderr collected line by line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DigestProcess:
    def __init__(self, label: str) -> None:
        self.label = label  # how failures name it: "daemon", the worker's name
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def spawn(self, config: Path, args: Sequence[str], env: Mapping[str, str]) -> None:
        """`python -m digest --config CONFIG ARGS...` in the config's folder, with `env` over ours."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "digest",
            "--config",
            str(config),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=str(config.parent),
        )
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
