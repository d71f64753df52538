"""A real HTTP server on 127.0.0.1 for the demo feeds, with conditional GET.

This module owns serving: it renders every demo feed once, as of the `now` it is given, and serves
``/<slug>.xml`` with an ETag and a Last-Modified, answering 304 Not Modified to a matching
If-None-Match or a not-older If-Modified-Since (RFC 9110 section 13.1), so a second poll of the
demo shows the fetch stage's conditional path. It binds a free port on loopback only.

    async with DemoFeedServer(now=now) as server:
        url = server.url_for("baltic-wire")      # http://127.0.0.1:PORT/baltic-wire.xml
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from aiohttp import web

from digest.demo.feeds import demo_feeds, feed_bytes, newest

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class _Document:
    body: bytes
    content_type: str
    etag: str  # opaque value, without quotes; aiohttp adds them
    last_modified: datetime


class DemoFeedServer:
    """Serves every demo feed on http://127.0.0.1:PORT/<slug>.xml while the context is open."""

    def __init__(self, *, now: datetime) -> None:
        self._documents: dict[str, _Document] = {}
        for feed in demo_feeds():
            body, content_type = feed_bytes(feed.slug, now=now)
            self._documents[feed.slug] = _Document(
                body=body,
                content_type=content_type,
                etag=hashlib.sha256(body).hexdigest()[:20],
                last_modified=newest(feed.slug, now=now),
            )
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.requests: list[tuple[str, int]] = []  # (path, status) of every request, for the demo's log

    def url_for(self, slug: str) -> str:
        if slug not in self._documents:
            raise KeyError(f"No demo feed {slug!r}; known: {', '.join(self._documents)}.")
        if not self.port:
            raise RuntimeError("DemoFeedServer is not running; use it as `async with DemoFeedServer(...)`.")
        return f"http://{HOST}:{self.port}/{slug}.xml"

    async def __aenter__(self) -> DemoFeedServer:
        app = web.Application()
        app.router.add_get("/{slug}.xml", self._serve)  # add_get also answers HEAD
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, 0)  # port 0: the OS picks a free one
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.port = 0

    async def _serve(self, request: web.Request) -> web.Response:
        doc = self._documents.get(request.match_info["slug"])
        if doc is None:
            response = web.Response(status=404, text="No such demo feed.\n")
        elif _not_modified(request, doc):
            response = web.Response(status=304)
        else:
            response = web.Response(body=doc.body, headers={"Content-Type": doc.content_type})
        if doc is not None:
            # RFC 9110 section 15.4.5: a 304 carries the same validators a 200 would.
            response.etag = doc.etag
            response.last_modified = doc.last_modified
        self.requests.append((request.path, response.status))
        return response


def _not_modified(request: web.Request, doc: _Document) -> bool:
    # RFC 9110 section 13.1.2: If-None-Match uses the weak comparison, and "*" matches any current
    # representation. Section 13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    tags = request.if_none_match
    if tags is not None:
        return any(tag.value in ("*", doc.etag) for tag in tags)
    since = request.if_modified_since
    return since is not None and doc.last_modified <= since
