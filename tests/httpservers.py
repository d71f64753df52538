"""Real HTTP servers on loopback for tests: a well-behaved feed server and hostile ones.

    async with FeedServer() as srv:                  # 127.0.0.1, a free port
        url = srv.serve("/feed.xml", body, etag='"v1"')
        ...                                           # srv.requests logs what arrived

FeedServer serves a dict of path -> Resource (status, headers, body) with ETag/If-None-Match
and Last-Modified/If-Modified-Since (RFC 9110 section 13), redirects, and any aiohttp handler
for hostile behaviour (the `slowloris`, `endless_body` and `hang` handlers below). It counts
requests in flight so tests can check concurrency limits. RawServer speaks raw TCP for what an
HTTP framework will not do: accept and never answer, or cut a body short.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STOPPING = web.AppKey("stopping", asyncio.Event)
FEED_TYPE = "application/rss+xml; charset=utf-8"


@dataclass
class Resource:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": FEED_TYPE})
    etag: str | None = None
    last_modified: str | None = None  # an HTTP-date
    delay: float = 0.0  # seconds to hold the request before answering (for concurrency tests)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


def _not_modified(res: Resource, request: web.Request) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:  # RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is sent
        tags = [t.strip() for t in inm.split(",")]
        return res.etag is not None and ("*" in tags or res.etag in tags)
    ims = request.headers.get("If-Modified-Since")
    if ims and res.last_modified:
        try:
            return parsedate_to_datetime(res.last_modified) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


class FeedServer:
    def __init__(self, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self._wanted_port = port  # 0: any free port; a given one lets two hosts answer on one port (H4)
        self.routes: dict[str, Resource | Handler] = {}
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FeedServer:
        app = web.Application()
        app[STOPPING] = asyncio.Event()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._wanted_port, ssl_context=self.ssl_context).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.app[STOPPING].set()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- routes

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self._port}{path}"

    def serve(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        delay: float = 0.0,
    ) -> str:
        """Serve `body` at `path`; returns the full URL."""
        all_headers = {"Content-Type": FEED_TYPE, **(headers or {})}
        self.routes[path] = Resource(body, status, all_headers, etag, last_modified, delay)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 301) -> str:
        self.routes[path] = Resource(status=status, headers={"Location": location})
        return self.url(path)

    def handle(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # ---------------------------------------------------------------- dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Request(request.method, request.path_qs, dict(request.headers)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            route = self.routes.get(request.path_qs) or self.routes.get(request.path)
            if route is None:
                return web.Response(status=404, text="not found")
            if not isinstance(route, Resource):
                return await route(request)
            if route.delay:
                await asyncio.sleep(route.delay)
            headers = dict(route.headers)
            if route.etag:
                headers["ETag"] = route.etag
            if route.last_modified:
                headers["Last-Modified"] = route.last_modified
            if route.status == 200 and _not_modified(route, request):
                headers.pop("Content-Type", None)
                return web.Response(status=304, headers=headers)
            return web.Response(status=route.status, headers=headers, body=route.body)
        finally:
            self.in_flight -= 1


# --------------------------------------------------------------------------- hostile handlers


async def _drip(request: web.Request, data: bytes, interval: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": FEED_TYPE})
    await response.prepare(request)
    stopping = request.app[STOPPING]
    with contextlib.suppress(ConnectionError):
        while not stopping.is_set():
            await response.write(data)
            if interval:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), interval)
            else:
                await asyncio.sleep(0)
    return response


def slowloris(interval: float = 0.5) -> Handler:
    """Headers at once, then one byte every `interval` seconds, forever (reliability H9)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _drip(request, b"<", interval)

    return handler


def endless_body(chunk: int = 64 * 1024) -> Handler:
    """A 200 whose chunked body never ends (H7)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _drip(request, b"<item>" * (chunk // 6), 0)

    return handler


async def hang(request: web.Request) -> web.StreamResponse:
    """Read the request, never answer it (H10 at the HTTP level)."""
    await request.app[STOPPING].wait()
    return web.Response(status=503)


# --------------------------------------------------------------------------- raw TCP


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]


class RawServer:
    """A TCP server on loopback that runs `handler` for each connection and counts connections."""

    def __init__(self, handler: RawHandler, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_connect, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept the connection and never send a byte (H10)."""
    await asyncio.Event().wait()


def canned(response: bytes) -> RawHandler:
    """Read the request head, send `response` verbatim, close (e.g. a body cut short, H17)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()

    return handler
