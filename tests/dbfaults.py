"""Databases that fail under a running process: a SQLite file another process holds the write lock
of, and a PostgreSQL server that goes away (reliability.md S13, C8)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from conftest import postgres_database
from ports import free_port


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another process's write lock on the SQLite file, held for as long as the block runs."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


class Switch:
    """A TCP relay to the PostgreSQL server that the test can cut: `down()` drops every open
    connection and stops listening (connection refused), `up()` listens on the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open -= {writer, up_writer}


Available = Callable[[bool], Awaitable[None]]


@contextlib.asynccontextmanager
async def database_that_goes_away(backend: str, folder: Path) -> AsyncIterator[tuple[str, Available]]:
    """(the URL the daemon uses, an async `available(flag)`) for a SQLite file another process can
    lock, or a PostgreSQL database behind a relay the test can cut."""
    if backend == "sqlite":
        database = folder / "digest.sqlite"
        holder: list[contextlib.ExitStack] = []

        async def sqlite_available(flag: bool) -> None:
            if not flag:
                stack = contextlib.ExitStack()
                stack.enter_context(write_lock(database))
                holder.append(stack)
            else:
                holder.pop().close()

        yield f"sqlite:///{database}?timeout=1", sqlite_available
        for stack in holder:
            stack.close()
        return
    with postgres_database() as url:
        real = sa.engine.make_url(url)
        switch = Switch(real.host or "127.0.0.1", real.port or 5432)
        await switch.up()

        async def postgres_available(flag: bool) -> None:
            await (switch.up() if flag else switch.down())

        yield real.set(host="127.0.0.1", port=switch.port).render_as_string(hide_password=False), postgres_available
        with contextlib.suppress(AssertionError):
            await switch.down()
