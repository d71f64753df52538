"""`digest demo`: the whole pipeline, offline, on bundled feeds.

Serves the demo feeds (our own fictional outlets) on 127.0.0.1, runs a real aiosmtpd server on
127.0.0.1 that writes every message it receives as an .eml file, keeps SQLite in the output folder,
then polls, sends today's edition and writes an HTML preview. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

from digest import config as cfg
from digest.deliver import SmtpTransport
from digest.demo.feeds import demo_feeds, demo_sections
from digest.demo.server import DemoFeedServer
from digest.pipeline.drafts import preview
from digest.pipeline.poll import poll_once
from digest.pipeline.send import send_day
from digest.store import Store

DEMO_TZ = "Europe/Moscow"
SUBSCRIBERS: list[dict[str, Any]] = [
    {"email": "editor@newsroom.example", "name": "Chief Editor"},
    {"email": "markets@newsroom.example", "name": "Markets Desk", "sections": ["Business & Economy", "World"]},
    {
        "email": "nyc.bureau@newsroom.example",
        "name": "New York Bureau",
        "timezone": "America/New_York",
        "sections": ["World", "Science & Space", "Sport"],
    },
]


class _MaildirHandler:
    """An aiosmtpd handler that keeps each accepted message as an .eml file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        rcpt = re.sub(r"[^a-zA-Z0-9@._-]", "_", envelope.rcpt_tos[0])
        (self.folder / f"{self.count:03d}-{rcpt}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoResult:
    out_dir: Path
    messages: list[Path] = field(default_factory=list)
    preview: Path | None = None
    database: Path | None = None
    feeds: int = 0
    new_items: int = 0
    subjects: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"digest demo: polled {self.feeds} demo feeds ({self.new_items} items), "
            f"sent {len(self.messages)} messages through a local SMTP server."
        ]
        for path, subject in zip(self.messages, self.subjects, strict=False):
            lines.append(f"  {path}  ({subject})")
        if self.preview:
            lines.append(f"HTML preview: {self.preview}")
        lines.append(f"Database: {self.database}")
        lines.append("Open the .eml files in a mail client, or the preview in a browser.")
        return "\n".join(lines)


def demo_settings(out_dir: Path, *, feed_urls: dict[str, str], smtp_port: int) -> cfg.Settings:
    feeds = [
        {"url": feed_urls[f.slug], "name": f.name, **({"section": f.section} if f.section else {})}
        for f in demo_feeds()
    ]
    raw = {
        "digest": {
            "title": "Demo Press Review",
            "timezone": DEMO_TZ,
            "send_at": "07:00",
            "database": f"sqlite:///{(out_dir / 'demo.sqlite').resolve()}",
            "base_url": "https://press.example",
            "max_item_age": "7d",
            "max_items_per_section": 6,
            "allow_private_addresses": True,
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "sender": "Demo Press Review <review@press.example>",
            "timeout": 30.0,
            "connections": 2,
        },
        "fetch": {"timeout": 20.0},
        "sections": demo_sections(),
        "feeds": feeds,
        "subscribers": SUBSCRIBERS,
    }
    return cfg.from_mapping(raw, env={})


async def run_demo(out_dir: Path, *, now: datetime | None = None) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    mail_dir = out_dir / "mail"
    mail_dir.mkdir(exist_ok=True)
    for old in [*mail_dir.glob("*.eml"), *out_dir.glob("demo.sqlite*")]:
        old.unlink()  # each demo starts afresh, so it always has news to send
    moment = now or datetime.now(UTC)
    result = DemoResult(out_dir=out_dir.resolve(), database=(out_dir / "demo.sqlite").resolve())

    handler = _MaildirHandler(mail_dir)
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        async with DemoFeedServer(now=moment) as server:
            urls = {f.slug: server.url_for(f.slug) for f in demo_feeds()}
            settings = demo_settings(out_dir, feed_urls=urls, smtp_port=controller.port)
            store = Store(settings.database_url)
            store.sync_feeds(settings.feeds, now=moment)
            store.sync_subscribers(settings.subscribers, now=moment)

            def clock() -> datetime:
                return moment

            polled = await poll_once(settings=settings, store=store, clock=clock)
            result.feeds = len(polled)
            result.new_items = sum(p.new_items for p in polled)
            day = moment.astimezone(ZoneInfo(DEMO_TZ)).date()
            # Each subscriber's own day, as `digest send` does: New York's is still the 6th at Moscow's 7th.
            await send_day(settings, store, day=None, transport=SmtpTransport, clock=clock)
            editor = store.get_subscriber(email=SUBSCRIBERS[0]["email"])
            assert editor is not None
            shown = await asyncio.to_thread(preview, settings, store, subscriber=editor, day=day, now=moment)
            if (rendered := shown.rendered) is not None:
                result.preview = (out_dir / "preview.html").resolve()
                result.preview.write_text(rendered.html, encoding="utf-8")
            store.close()
    finally:
        controller.stop()
    result.messages = sorted(p.resolve() for p in mail_dir.glob("*.eml"))
    result.subjects = [
        str(message_from_bytes(p.read_bytes(), policy=default_policy)["Subject"]) for p in result.messages
    ]
    return result
