"""A real edition in real mail software: Chromium lays out its HTML part, SpamAssassin scores it.

The message is not built by hand: the whole pipeline runs in this process on feeds served over
HTTP on 127.0.0.1 (several sections and days, one story from three outlets, long headlines, a
300-character unbroken URL-like word, Cyrillic, Hebrew and Arabic), and the edition is sent with
the default settings an operator would use through a real SMTP server (aiosmtpd); the test takes
the message the server received.

* Chromium (headless, driven over the DevTools protocol with aiohttp, which digest already uses)
  shows the HTML part as a 375 px phone and a 1200 px desktop; no width may scroll sideways.
  Screenshots are kept in test-artifacts/ for a human to look at.
* SpamAssassin (`spamassassin -t -L`: local tests only, no DNS or network) must score the message
  below 2.0; the score and the rules that fired are printed.

When a program is missing the test skips with a message, except under CI, where it fails:
scripts/test.sh installs both from Debian's packages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from httpservers import FeedServer
from smtpservers import SmtpServer

from digest import config as cfg
from digest.deliver import SmtpTransport
from digest.pipeline import poll_once, send_day
from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NOW = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, after send_at
TZ = "Europe/Moscow"
EDITOR = "anna.petrova@example.com"
SPAM_LIMIT = 2.0

# One unbroken "word" of 300 characters, as feeds paste tracking links into text.
LONG_WORD = ("https://courts.example.org/rulings/2026/01/15/" + "case-" + "0123456789abcdef" * 17)[:300]
assert len(LONG_WORD) == 300 and " " not in LONG_WORD


def need(program: str) -> str:
    """The program's path; skip without it here, fail without it under CI (scripts/test.sh installs it)."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (Debian: apt-get install {program}; scripts/test.sh does it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the mail-client checks: {message}")
        pytest.skip(message)
    return path


# --------------------------------------------------------------------------- the edition, made for real


@dataclass(frozen=True)
class Entry:
    title: str
    path: str
    category: str
    age: timedelta
    summary: str


def rss(name: str, host: str, entries: list[Entry]) -> bytes:
    items = "".join(
        f"<item><title>{escape(e.title)}</title><link>https://{host}{e.path}</link>"
        f'<guid isPermaLink="false">{host}{e.path}</guid><category>{escape(e.category)}</category>'
        f"<pubDate>{format_datetime(NOW - e.age)}</pubDate>"
        f"<description>{escape(e.summary)}</description></item>"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(name)}</title>'
        f"<link>https://{host}/</link><description>News from {escape(name)}</description>{items}"
        "</channel></rss>"
    ).encode()


def atom(name: str, host: str, entries: list[Entry]) -> bytes:
    body = "".join(
        f'<entry><title>{escape(e.title)}</title><link href="https://{host}{e.path}"/>'
        f'<id>tag:{host},2026:{e.path}</id><category term="{escape(e.category)}"/>'
        f"<updated>{(NOW - e.age).isoformat()}</updated>"
        f'<summary type="html">{escape(e.summary)}</summary></entry>'
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(name)}</title><id>tag:{host},2026:feed</id><updated>{NOW.isoformat()}</updated>"
        f"{body}</feed>"
    ).encode()


H = timedelta(hours=1)
RATE = (
    "Central bank raises its key rate for the third time this year, citing persistent inflation and a weaker currency"
)

COURIER = rss(
    "Northern Courier",
    "courier.example.org",
    [
        Entry(
            RATE + " that has made imported machinery dearer for regional manufacturers",
            "/economy/rate",
            "Economy",
            2 * H,
            "<p>The board raised the rate by half a point to 17.5%. Economists had expected "
            "a pause after two increases since the summer.</p><p>The governor said lending to households was "
            "still growing faster than incomes.</p>",
        ),
        Entry(
            "Harbour council approves the new tram line after a long public hearing",
            "/world/tram",
            "World",
            3 * H,
            "<p>The line will link the ferry terminal with the university campus by 2028.</p>",
        ),
        Entry(
            "Court publishes the full ruling on the port concession",
            "/world/ruling",
            "World",
            5 * H,
            f"<p>The judges found the tender lawful. The text of the ruling is at {LONG_WORD} for anyone who "
            "wants to read the reasons.</p>",
        ),
        Entry(
            "Foreign ministers meet in Geneva to discuss the grain corridor",
            "/world/geneva",
            "World",
            26 * H,
            "<p>Delegations from six countries attended the first round of talks.</p>",
        ),
        Entry(
            LONG_WORD,
            "/world/link-as-title",
            "World",
            27 * H,
            "<p>A headline that is only a link, as some aggregators publish them.</p>",
        ),
    ],
)

BALTIC = atom(
    "Baltic Wire",
    "balticwire.example.net",
    [
        Entry(
            RATE,
            "/markets/key-rate",
            "Economy",
            3 * H,
            "<p>Analysts expect the rate to stay high until the spring.</p>",
        ),
        Entry(
            "Harbour FC win the regional cup final with a goal in the last minute of extra time",
            "/sport/cup",
            "Sport",
            5 * H,
            "<p>A crowd of 12,000 saw the home side lift the trophy for the first time.</p>",
        ),
        Entry(
            "שיחות השלום בז'נבה יימשכו ביום שני, כך נמסר ממשרד החוץ",
            "/world/he-geneva",
            "World",
            4 * H,
            "<p>המשלחות ייפגשו שוב בתחילת השבוע הבא.</p>",
        ),
        Entry(
            "محادثات السلام في جنيف ستستمر يوم الاثنين بحسب وزارة الخارجية",
            "/world/ar-geneva",
            "World",
            28 * H,
            "<p>ستلتقي الوفود مرة أخرى في بداية الأسبوع المقبل.</p>",
        ),
    ],
)

VESTNIK = rss(
    "Невский вестник",
    "vestnik.example.ru",
    [
        Entry(
            "Госдума приняла закон о цифровом рубле в третьем чтении",
            "/politics/rouble",
            "Политика",
            1 * H,
            "<p>Закон вступит в силу с первого сентября. За него проголосовали 402 депутата.</p>",
        ),
        Entry(
            "Переговоры в Женеве продолжатся в понедельник, сообщили в министерстве иностранных дел",
            "/world/geneva",
            "Мир",
            6 * H,
            "<p>Делегации встретятся снова в начале следующей недели.</p>",
        ),
        Entry(
            "Центробанк в третий раз за год повысил ключевую ставку",
            "/economy/rate",
            "Экономика",
            4 * H,
            "<p>Ставка выросла до 17,5% годовых.</p>",
        ),
        Entry(
            "В Петербурге открыли новую станцию метро",
            "/society/metro",
            "Общество",
            30 * H,
            "<p>Станция «Театральная» приняла первых пассажиров в шесть утра.</p>",
        ),
    ],
)


OUTLETS = ("Northern Courier", "Baltic Wire", "Невский вестник")  # the feeds' own titles, in _send_edition's order


def settings_for(tmp: Path, *, feeds: list[str], smtp_port: int) -> cfg.Settings:
    """What an operator writes: the README's keys, everything else left at its default."""
    return cfg.from_mapping(
        {
            "digest": {
                "title": "Morning Review",
                "timezone": TZ,
                "send_at": "07:00",
                "database": f"sqlite:///{tmp / 'digest.sqlite'}",
                "base_url": "https://press.example.org",
                "top_stories": 2,  # documented option, on here so the layout has that block too
                "max_per_source": 5,  # all of the Courier's World stories, the long unbroken title among them
                "allow_private_addresses": True,
            },  # the feeds are on 127.0.0.1
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "sender": "Morning Review <review@press.example.org>",
                "timeout": 10.0,
            },
            "sections": [
                {"name": "Russian Politics & Diplomacy", "categories": ["Politics", "Политика"]},
                {"name": "World", "categories": ["World", "Мир"]},
                {"name": "Business & Economy", "categories": ["Economy", "Экономика"]},
                {"name": "Society & Culture", "categories": ["Society", "Общество"]},
                {"name": "Sport", "categories": ["Sport"]},
            ],
            # The outlets are the press (issue 13): the edition then has a Press Review section too.
            "feeds": [{"url": u, "name": name, "press": True} for u, name in zip(feeds, OUTLETS, strict=True)],
            "subscribers": [{"email": EDITOR, "name": "Anna Petrova"}],
        },
        env={},
    )


async def _send_edition(tmp: Path) -> bytes:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [
            feeds.serve("/courier.xml", COURIER),
            feeds.serve("/baltic.atom", BALTIC, headers={"Content-Type": "application/atom+xml"}),
            feeds.serve("/vestnik.xml", VESTNIK),
        ]
        settings = settings_for(tmp, feeds=urls, smtp_port=smtp.port)
        store = Store(settings.database_url)
        try:
            store.sync_feeds(settings.feeds, now=NOW)
            store.sync_subscribers(settings.subscribers, now=NOW)
            polled = await poll_once(settings=settings, store=store, clock=lambda: NOW)
            assert all(p.error is None for p in polled), polled
            await send_day(
                settings, store, day=NOW.astimezone(ZoneInfo(TZ)).date(), transport=SmtpTransport, clock=lambda: NOW
            )
        finally:
            store.close()
    assert len(smtp.messages) == 1, "the one subscriber gets one message"
    return smtp.messages[0].data


@pytest.fixture(scope="module")
def sent_message(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The editor's message as the SMTP server received it; kept as test-artifacts/edition.eml."""
    data = asyncio.run(_send_edition(tmp_path_factory.mktemp("pipeline")))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "edition.eml").write_bytes(data)
    return data


@pytest.fixture(scope="module")
def html_part(sent_message: bytes) -> str:
    msg = message_from_bytes(sent_message, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("html",))
    assert body is not None
    html = body.get_content()
    assert isinstance(html, str)
    # The rich edition really is rich: otherwise a layout check proves little. (Its shared stories
    # quote every outlet in their synopses, so none has an "Also reported by" line left.)
    for needle in (
        "Russian Politics &amp; Diplomacy",
        "Business &amp; Economy",
        "Sport",
        "Thursday, January 15",
        "Госдума",
        "שיחות השלום",
        "محادثات السلام",
        LONG_WORD,
        'class="quote"',
        " adds:",
        "Press Review",
    ):
        assert needle in html, needle
    assert "<script" not in html.lower(), "the email itself carries no script"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "edition.html").write_text(html, encoding="utf-8")
    return html


# --------------------------------------------------------------------------- Chromium over DevTools


# Run in the page after load: the page's and the viewport's widths, and what sticks out (for the
# failure message). Evaluated by DevTools, so the email's HTML itself stays script-free.
MEASURE = """(() => {
  const root = document.documentElement, vw = root.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5) && wide.length < 8)
      wide.push(`${el.tagName.toLowerCase()}.${el.className} right=${Math.round(r.right)}: `
                + (el.textContent || '').trim().slice(0, 60));
  }
  const column = document.querySelector('table.container');
  const rtl = [...document.querySelectorAll('.title')]
    .filter(h => getComputedStyle(h).direction === 'rtl').map(h => h.textContent.trim());
  return {scrollWidth: root.scrollWidth, innerWidth: window.innerWidth, clientWidth: vw,
          scrollHeight: root.scrollHeight, column: column ? column.getBoundingClientRect().width : -1, rtl, wide};
})()"""

PHONE, DESKTOP = 375, 1200
SHOT_MAX_HEIGHT = 12_000  # a full-page screenshot taller than this is cut (images stay viewable)


@dataclass(frozen=True)
class Layout:
    width: int
    scroll_width: int
    inner_width: int
    client_width: int
    scroll_height: int
    column: float  # width of the content column (table.container)
    rtl_titles: tuple[str, ...]  # story titles laid out right-to-left
    wide: tuple[str, ...]
    screenshot: Path


class DevTools:
    """One page of a headless Chromium, over the Chrome DevTools Protocol (flattened sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws, self._next, self.session = ws, 0, ""
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self._ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(frame.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.put_nowait(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("Chromium closed the DevTools connection"))

    async def call(self, method: str, page: bool = True, **params: Any) -> dict[str, Any]:
        self._next += 1
        request: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if page and self.session:
            request["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self._ws.send_str(json.dumps(request))
        reply = await asyncio.wait_for(future, 20)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def wait_for(self, method: str) -> dict[str, Any]:
        while True:
            event = await asyncio.wait_for(self.events.get(), 20)
            if event["method"] == method and event.get("sessionId", "") == self.session:
                return event

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium(binary: str, profile: Path) -> AsyncIterator[DevTools]:
    """A headless Chromium on a random loopback port, with a page attached; stopped on exit."""
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--hide-scrollbars",
        "--mute-audio",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        # Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" when ready.
        assert proc.stderr is not None
        url = None
        lines: list[str] = []
        while url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode(errors="replace")
            if not line:
                raise RuntimeError("Chromium exited before DevTools was ready:\n" + "".join(lines[-20:]))
            lines.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            url = match.group(1) if match else None
        drain = asyncio.create_task(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            devtools = DevTools(ws)
            try:
                target = await devtools.call("Target.createTarget", page=False, url="about:blank")
                attached = await devtools.call(
                    "Target.attachToTarget", page=False, targetId=target["targetId"], flatten=True
                )
                devtools.session = attached["sessionId"]
                await devtools.call("Page.enable")
                yield devtools
                with contextlib.suppress(Exception):
                    await devtools.call("Browser.close", page=False)
            finally:
                await devtools.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():  # Chromium logs (D-Bus, GPU) would otherwise fill the pipe
        pass


async def lay_out(devtools: DevTools, page: Path, *, width: int, height: int, name: str, dark: bool = False) -> Layout:
    # mobile=True below 600 px: Chromium then honours the email's <meta name="viewport">, as a phone does.
    await devtools.call(
        "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=width < 600
    )
    await devtools.call(
        "Emulation.setEmulatedMedia",
        media="screen",
        features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}],
    )
    await devtools.call("Page.navigate", url=page.as_uri())
    await devtools.wait_for("Page.loadEventFired")
    measured = await devtools.call("Runtime.evaluate", expression=MEASURE, returnByValue=True)
    m = measured["result"]["value"]
    shot_height = min(int(m["scrollHeight"]), SHOT_MAX_HEIGHT)
    shot = await devtools.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": width, "height": shot_height, "scale": 1},
    )
    path = ARTIFACTS / f"edition-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return Layout(
        width=width,
        scroll_width=int(m["scrollWidth"]),
        inner_width=int(m["innerWidth"]),
        client_width=int(m["clientWidth"]),
        scroll_height=int(m["scrollHeight"]),
        column=float(m["column"]),
        rtl_titles=tuple(m["rtl"]),
        wide=tuple(m["wide"]),
        screenshot=path,
    )


@pytest.fixture(scope="module")
def layouts(html_part: str) -> Iterator[dict[str, Layout]]:
    """The HTML part laid out by Chromium as a phone (light and dark) and a desktop."""
    binary = need("chromium")
    page = ARTIFACTS / "edition.html"  # written by html_part

    async def run(profile: Path) -> dict[str, Layout]:
        async with chromium(binary, profile) as devtools:
            return {
                "phone": await lay_out(devtools, page, width=PHONE, height=812, name="375"),
                "phone-dark": await lay_out(devtools, page, width=PHONE, height=812, name="375-dark", dark=True),
                "desktop": await lay_out(devtools, page, width=DESKTOP, height=900, name="1200"),
            }

    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile:
        yield asyncio.run(run(Path(profile)))


def test_synopses_are_laid_out_in_chromium_and_screenshotted(layouts: dict[str, Layout], html_part: str) -> None:
    # The rate story comes from two outlets: its synopsis quotes both, each linked to its own item.
    assert '<a href="https://courier.example.org/economy/rate" dir="auto"' in html_part
    assert '<a href="https://balticwire.example.net/markets/key-rate" dir="auto"' in html_part
    assert "Analysts expect the rate to stay high until the spring." in html_part
    for view in ("phone", "phone-dark", "desktop"):
        assert layouts[view].screenshot.stat().st_size > 10_000, "the screenshot is there for a human to look at"


@pytest.mark.parametrize("view", ["phone", "phone-dark", "desktop"])
def test_the_edition_never_scrolls_sideways_in_chromium(layouts: dict[str, Layout], view: str) -> None:
    lay = layouts[view]
    print(
        f"\n{view}: viewport {lay.width} px, innerWidth {lay.inner_width}, clientWidth {lay.client_width}, "
        f"scrollWidth {lay.scroll_width}, column {lay.column}, height {lay.scroll_height} px; {lay.screenshot}"
    )
    # A phone zooms out to fit content wider than the screen, which would widen innerWidth too.
    assert lay.inner_width == lay.width, f"the page was zoomed out to fit {lay.inner_width} px: {lay.wide}"
    assert lay.scroll_width <= lay.inner_width, f"{lay.scroll_width} px wide at {lay.width}: {lay.wide}"
    assert not lay.wide, lay.wide


def test_the_column_fills_a_phone_and_stays_readable_on_a_desktop(layouts: dict[str, Layout]) -> None:
    # One column, as wide as a phone's screen, and capped at 640 px on a desktop (long lines read badly).
    print(f"\ncolumn: {layouts['phone'].column} px on the phone, {layouts['desktop'].column} px on the desktop")
    assert layouts["phone"].column == PHONE
    assert layouts["desktop"].column == 640


def test_hebrew_and_arabic_titles_read_right_to_left_and_the_others_left_to_right(layouts: dict[str, Layout]) -> None:
    # dir="auto" on the heading skips children that set their own dir: a title link with dir="auto"
    # left every title left-to-right. Chromium's computed direction is what a reader sees.
    rtl = layouts["phone"].rtl_titles
    # (The Press Review section shows a title a second time, under its outlet.)
    assert sorted({t[:6] for t in rtl}) == sorted(["שיחות ", "محادثا"]), rtl


# --------------------------------------------------------------------------- SpamAssassin


@dataclass(frozen=True)
class SpamReport:
    score: float
    required: float
    rules: dict[str, float]
    details: str


def spamassassin(binary: str, message: bytes, home: Path) -> SpamReport:
    # -t: test mode, report appended; -L: local tests only (no DNS blocklists, no network), and DNS
    # declared unavailable besides. HOME is a scratch folder so no user's preferences or Bayes
    # database take part, and none is written. The rules are the ones Debian's package ships in
    # /usr/share/spamassassin: no sa-update (network) is needed.
    done = subprocess.run(
        [binary, "-t", "-L", "--cf=dns_available no", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=message,
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"},
    )
    out = message_from_bytes(done.stdout, policy=policy.compat32)
    status = " ".join(str(out.get("X-Spam-Status", "")).split())
    found = re.search(r"score=(-?[\d.]+) required=(-?[\d.]+) tests=(\S*)", status)
    assert found, f"no X-Spam-Status from spamassassin (rc={done.returncode}):\n{done.stderr.decode()[-2000:]}"
    text = done.stdout.decode("utf-8", errors="replace")
    # The report's table: " pts rule name              description" then "---- ----..." then the rows.
    table = text.split("Content analysis details:", 1)[-1]
    rules = {name: float(pts) for pts, name in re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", table, re.M)}
    for name in filter(None, found.group(3).split(",")):
        rules.setdefault(name, 0.0)
    rows = re.search(r"\n( pts rule name.*?)(?:\n\n|\Z)", table, re.S)
    return SpamReport(
        score=float(found.group(1)),
        required=float(found.group(2)),
        rules=rules,
        details=rows.group(1) if rows else status,
    )


def test_the_sent_edition_scores_below_2_in_spamassassin(sent_message: bytes, tmp_path: Path) -> None:
    report = spamassassin(need("spamassassin"), sent_message, tmp_path)
    print(f"\nSpamAssassin score {report.score} (spam at {report.required}; limit here {SPAM_LIMIT})")
    print(report.details)
    assert report.score < SPAM_LIMIT, f"score {report.score}: {report.rules}"


def test_spamassassin_really_scores_a_spammy_message_high(sent_message: bytes, tmp_path: Path) -> None:
    # The check can fail: the same program on an obvious spam scores well above our limit.
    spam = (
        b"From: WINNER <winner@lottery.example.net>\r\nTo: you@example.com\r\nSubject: =?utf-8?B?"
        + base64.b64encode(b"YOU WON $1,000,000 !!! CLAIM NOW")
        + b"?=\r\n"
        b"Content-Type: text/html\r\n\r\n<html><body><font size=7 color=red>CONGRATULATIONS!!! "
        b"You have been selected to receive $1,000,000 USD. Act now, 100% free, no obligation, "
        b"click here to claim your prize. Viagra cheap. Wire transfer. Nigerian prince. "
        b"Dear beneficiary, send your bank account details.</font></body></html>\r\n"
    )
    report = spamassassin(need("spamassassin"), spam, tmp_path)
    print(f"\nspam sample: {report.score}; {sorted(report.rules)}")
    assert report.score >= SPAM_LIMIT, "SpamAssassin has no rules here? (Debian ships them; else run sa-update)"
