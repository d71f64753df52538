"""A reader's whole life in a real browser (Chromium through Playwright, the system's binary):
sign up on the archive's page, get the confirmation through the real SMTP server, confirm,
receive the next edition, change sections from the email's link, unsubscribe from it."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from ports import free_port
from smtpservers import SmtpServer
from test_web import NOW, Clock, add_news, make_settings, mark_sent, open_store

from digest.deliver import SmtpTransport
from digest.pipeline import build_edition, send_day
from digest.store import UNSUBSCRIBED
from digest.web import start_web

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DAY = date(2026, 1, 16)
READER = "reader@example.org"


def body(data: bytes, subtype: str = "plain") -> str:
    msg = message_from_bytes(data, policy=policy.default)
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


async def wait_for_mail(smtp: SmtpServer, rcpt: str, count: int) -> bytes:
    for _ in range(200):
        mine = [m for m in smtp.messages if m.rcpt_tos == (rcpt,) or rcpt in m.rcpt_tos]
        if len(mine) >= count:
            return mine[count - 1].data
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rcpt} never got message {count}")


@pytest.mark.slow
async def test_sign_up_confirm_receive_change_sections_and_unsubscribe_in_chromium(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium here (scripts/test.sh installs it as root on Debian)")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with SmtpServer() as smtp:
        settings = make_settings(tmp_path, smtp_port=smtp.port, base_url=base_url)
        store = open_store(settings)
        clock = Clock()
        # An archive to start from: yesterday's edition, sent to the config's readers.
        add_news(store, at=NOW - timedelta(days=1, hours=2), prefix="Yesterday")
        mark_sent(
            store,
            build_edition(settings, store, day=DAY - timedelta(days=1), timezone="UTC", now=NOW - timedelta(days=1))[0],
        )
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=port)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(base_url + "/")
                async with page.expect_navigation():
                    await page.click("text=Subscribe")
                assert page.url == base_url + "/subscribe"
                await page.fill("#email", READER)
                await page.uncheck("input[name=section][value=Sport]")
                async with page.expect_navigation():
                    await page.click("button[type=submit]")
                assert "Check your inbox" in await page.inner_text("h1")

                confirmation = await wait_for_mail(smtp, READER, 1)
                link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", body(confirmation))
                assert link
                await page.goto(link.group(1))
                assert store.get_subscriber(email=READER) is None  # opening the link is not confirming
                async with page.expect_navigation():
                    await page.click('button:has-text("Confirm")')
                assert "You are subscribed" in await page.inner_text("h1")

                # The next edition reaches the new reader with World only.
                add_news(store, at=NOW - timedelta(hours=2), prefix="Today")
                await send_day(settings, store, day=DAY, transport=SmtpTransport, clock=clock)
                first = await wait_for_mail(smtp, READER, 2)
                html = body(first, "html")
                assert "Today grain" in html and "cup final" not in html

                # Their sections, changed from the email's link.
                prefs = re.search(r'href="(http://127\.0\.0\.1:\d+/p/[^"]+)"', html)
                assert prefs
                await page.goto(prefs.group(1))
                await page.check("input[name=section][value=Sport]")
                async with page.expect_navigation():
                    await page.click('button:has-text("Save")')
                assert "Saved" in await page.inner_text("main")
                sub = store.get_subscriber(email=READER)
                assert sub is not None and sub.sections is None  # every section ticked: all of them

                clock.now = NOW + timedelta(days=1)
                add_news(store, at=clock.now - timedelta(hours=2), prefix="Tomorrow")
                await send_day(settings, store, day=DAY + timedelta(days=1), transport=SmtpTransport, clock=clock)
                second = body(await wait_for_mail(smtp, READER, 3), "html")
                assert "Tomorrow cup final" in second

                # Unsubscribe from the email's link: the page asks, the button does it.
                unsub = re.search(r'href="(http://127\.0\.0\.1:\d+/u/[^"]+)"', second)
                assert unsub
                await page.goto(unsub.group(1))
                async with page.expect_navigation():
                    await page.click("button[type=submit]")
                assert "unsubscribed" in (await page.inner_text("h1")).lower()
                sub = store.get_subscriber(email=READER)
                assert sub is not None and sub.status == UNSUBSCRIBED

                clock.now = NOW + timedelta(days=2)
                add_news(store, at=clock.now - timedelta(hours=2), prefix="Later")
                before = len(smtp.messages)
                await send_day(settings, store, day=DAY + timedelta(days=2), transport=SmtpTransport, clock=clock)
                assert READER not in [m.rcpt_tos[0] for m in smtp.messages[before:]]
            finally:
                await browser.close()
                await runner.cleanup()
                store.close()
