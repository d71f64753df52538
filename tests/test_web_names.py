"""The web pages name the sections and the site as the subscriber's email does, in the site's language.

An operator rewords a section in their `templates_dir` catalogue, and may leave `[digest] title` at
its default. Through a real app on 127.0.0.1, a real SMTP server and a real SQLite file, a reader
signs up, confirms, opens their preferences, gets an edition and follows its "N more" link: every
page names each section and the site exactly as the email does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from ports import free_port
from smtpservers import SmtpServer
from test_web import DAY, NOW, WORLD_STORIES, Clock, add_news, received

from digest import config as cfg
from digest.catalogue import catalogue_path
from digest.deliver import SmtpTransport
from digest.pipeline import send_day
from digest.store import Store
from digest.web import listening, start_web

READER = "reader@example.org"
REWORDED = {"en": "Global Affairs", "ru": "Международная панорама"}  # the operator's label for World
# How each configured section reads: World as the operator reworded it, Sport and Other as the
# built-in catalogue has them, and a section of the operator's own as written.
LABELS = {
    "en": {"World": REWORDED["en"], "Sport": "Sport", "Regional Desk": "Regional Desk", "Other": "Other"},
    "ru": {"World": REWORDED["ru"], "Sport": "Спорт", "Regional Desk": "Regional Desk", "Other": "Другое"},
}
DEFAULT_TITLE = {"en": "Press Review", "ru": "Обзор прессы"}


def write_config(folder: Path, *, language: str, port: int, smtp_port: int, title: str | None) -> Path:
    """A site whose own catalogue (templates_dir, relative to the config) rewords World; `title`
    None leaves [digest] title out, at its default."""
    po = catalogue_path(folder / "templates", language)
    po.parent.mkdir(parents=True)
    po.write_text(
        f'msgid ""\nmsgstr ""\n"Language: {language}\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        f'msgctxt "section name"\nmsgid "World"\nmsgstr "{REWORDED[language]}"\n',
        encoding="utf-8",
    )
    own_title = f'title = "{title}"\n' if title is not None else ""
    config = folder / "digest.toml"
    config.write_text(
        f"""[digest]
{own_title}language = "{language}"
templates_dir = "templates"
timezone = "UTC"
send_at = "07:00"
base_url = "http://127.0.0.1:{port}"
database = "sqlite:///{folder / "digest.sqlite"}"
max_items_per_section = 3
top_stories = 0
read_also = 0

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "review@review.example"
timeout = 10

[[sections]]
name = "World"
categories = ["World"]

[[sections]]
name = "Sport"
categories = ["Sport"]

[[sections]]
name = "Regional Desk"
categories = ["Regions"]
""",
        encoding="utf-8",
    )
    return config


@dataclass
class Site:
    settings: cfg.Settings
    store: Store
    smtp: SmtpServer
    http: aiohttp.ClientSession
    clock: Clock


@contextlib.asynccontextmanager
async def serve(folder: Path, *, language: str, title: str | None) -> AsyncIterator[Site]:
    port = free_port()
    async with SmtpServer() as smtp:
        settings = cfg.load(
            write_config(folder, language=language, port=port, smtp_port=smtp.port, title=title), env={}
        )
        store = Store(settings.database_url)
        clock = Clock(NOW - timedelta(hours=4))  # signing up before the day's send
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=port)
        try:
            async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
                yield Site(settings, store, smtp, http, clock)
        finally:
            await runner.cleanup()
            store.close()


async def page(site: Site, url: str, *, data: dict[str, str] | list[tuple[str, str]] | None = None) -> str:
    method = site.http.get if data is None else site.http.post
    async with method(url, data=data) as resp:
        assert resp.status == 200, (url, resp.status)
        return await resp.text()


def choices(html: str) -> dict[str, str]:
    """A sign-up or preferences page's sections: the form's value (the configured name) -> its label."""
    found = re.findall(r'name="section" value="([^"]+)"[^>]*> <span dir="auto">([^<]+)</span>', html)
    return {unescape(value): unescape(label) for value, label in found}


def headings(html: str) -> list[str]:
    """An email's or an edition page's section headings (h2 class="section"), in order."""
    return [unescape(h) for h in re.findall(r'<h2[^>]*class="section"[^>]*>(?:<a[^>]*></a>)?([^<]+)</h2>', html)]


def form_value(html: str) -> str:
    found = re.search(r'name="form" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


async def mail_to(site: Site, rcpt: str, count: int) -> EmailMessage:
    """The `count`th message to `rcpt` (from 1), waited for: a confirmation goes out in the background."""
    for _ in range(200):
        mine = [m for m in site.smtp.messages if m.rcpt_tos == (rcpt,)]
        if len(mine) >= count:
            return received(mine[count - 1].data)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message #{count} to {rcpt}")


def sender_name(msg: EmailMessage) -> str:
    return str(msg["From"].addresses[0].display_name)


def html_of(msg: EmailMessage) -> str:
    body = msg.get_body(("html",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


@pytest.mark.parametrize(
    ("language", "title"),
    [("en", None), ("ru", None), ("ru", "Утренний обзор")],
    ids=["en-default-title", "ru-default-title", "ru-own-title"],
)
async def test_the_web_pages_name_sections_and_site_as_the_subscribers_email_does(
    tmp_path: Path, language: str, title: str | None
) -> None:
    labels = LABELS[language]
    shown_title = title if title is not None else DEFAULT_TITLE[language]
    async with serve(tmp_path, language=language, title=title) as site:
        # Sign up for every section but the fallback one: the form labels them in the site's words.
        signup = await page(site, "/subscribe")
        assert choices(signup) == labels
        assert f'<p class="site">{shown_title}</p>' in signup
        chosen = ["World", "Sport", "Regional Desk"]
        form = [("form", form_value(signup)), ("email", READER), ("timezone", "UTC")]
        await page(site, "/subscribe", data=form + [("section", s) for s in chosen])
        confirmation = await mail_to(site, READER, 1)
        assert shown_title in str(confirmation["Subject"]) and sender_name(confirmation) == shown_title
        body = confirmation.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        link = re.search(r"http://127\.0\.0\.1:\d+(/confirm/\S+)", str(body.get_content()))
        assert link, "the confirmation email has no link"
        confirm = await page(site, link.group(1))
        assert f'<p class="site">{shown_title}</p>' in confirm
        confirmed = await page(site, link.group(1), data={"form": form_value(confirm)})
        preferences_path = re.search(r'href="\.\./(p/[^"]+)"', confirmed)
        assert preferences_path, "the confirmed page links no preferences"
        preferences = await page(site, "/" + preferences_path.group(1))
        on_page = choices(preferences)
        assert on_page == labels and f'<p class="site">{shown_title}</p>' in preferences

        # The day's edition, sent to the reader over SMTP: its sections read as the pages label them.
        add_news(site.store, at=NOW - timedelta(hours=2), prefix="Today")
        site.clock.now = NOW
        await send_day(site.settings, site.store, day=DAY, transport=SmtpTransport, clock=site.clock)
        edition = await mail_to(site, READER, 2)
        html = html_of(edition)
        in_email = headings(html)
        assert in_email == [on_page["World"], on_page["Sport"]]  # the sections with stories, as the page names them
        assert str(edition["Subject"]).startswith(f"{shown_title} — ") and sender_name(edition) == shown_title
        assert re.search(rf"<h1[^>]*>{re.escape(shown_title)}</h1>", html)

        # Its "N more in <World>" link opens the edition page, which names them the same.
        more = re.search(rf'href="http://127\.0\.0\.1:\d+(/editions/[^"#]+)#s-world"[^>]*>[^<]*{labels["World"]}', html)
        assert more, "the email has no 'more in' link naming World as the pages do"
        web_edition = await page(site, more.group(1))
        assert headings(web_edition) == in_email
        assert re.search(rf"<h1[^>]*><a [^>]*>{re.escape(shown_title)}</a></h1>", web_edition)
        feed = await page(site, "/editions.atom")
        assert f"<title>{shown_title}</title>" in feed
        assert f"{labels['World']}: {WORLD_STORIES}; {labels['Sport']}: 1" in feed
