"""The subscriber-facing web app through a real server on 127.0.0.1 and a real SQLite file
(reliability.md G1-G4, G8; U1-U6, U10).

Each test starts the app the way `digest web` and the daemon do (`start_web`, port 0) and talks to
it with an HTTP client; the end-to-end test sends real editions to aiosmtpd, takes the
List-Unsubscribe URL out of the received message and posts it back.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from ports import free_port
from smtpservers import SmtpServer
from storepaths import claim, record, store_items

from digest import config as cfg
from digest import tokens
from digest.daemon import Ticks, run_daemon
from digest.deliver import SmtpTransport
from digest.errors import ConfigError
from digest.model import FeedSpec, Mark, ParsedItem
from digest.pipeline import build_edition, preview, send_day
from digest.store import ACTIVE, SENT, UNSUBSCRIBED, Choices, Store
from digest.web import CSP, SITE, listening, start_web

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 1, 16)
NOW = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
CAP = 3  # max_items_per_section: the email shows 3 World stories, the page all of them
WORLD_STORIES = 5


def make_settings(
    folder: Path,
    *,
    smtp_port: int = 25,
    base_url: str = "https://review.example",
    secret: str | None = None,
    cap_on: str = "digest",
) -> cfg.Settings:
    """`cap_on`: whether the World cap is [digest] max_items_per_section or World's own max_items."""
    world: dict[str, Any] = {"name": "World", "categories": ["World"]}
    if cap_on == "section":
        world["max_items"] = CAP
    digest: dict[str, Any] = {
        "title": "Morning Review",
        "timezone": "UTC",
        "send_at": "07:00",
        "database": f"sqlite:///{folder / 'digest.sqlite'}",
        "base_url": base_url,
        "max_items_per_section": CAP if cap_on == "digest" else 10,
        "read_also": 0,
    }
    if secret:
        digest["secret"] = secret
    return cfg.from_mapping(
        {
            "digest": digest,
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "sender": "Morning Review <review@review.example>",
                "timeout": 10,
            },
            "sections": [world, {"name": "Sport", "categories": ["Sport"]}],
            "subscribers": [
                {"email": "alice@example.org"},
                {"email": "bob@example.org", "sections": ["Sport"], "timezone": "UTC"},
            ],
        },
        env={},
    )


def open_store(settings: cfg.Settings) -> Store:
    store = Store(settings.database_url)
    store.sync_subscribers(settings.subscribers, now=NOW - timedelta(days=1))
    return store


def add_news(store: Store, *, at: datetime, prefix: str, world: int = WORLD_STORIES, sport: int = 1) -> None:
    """World and Sport items first seen at `at`, with titles far apart so none cluster together."""
    feed = next((f for f in store.list_feeds() if f.url == "https://news.example/rss"), None) or store.add_feed(
        FeedSpec(url="https://news.example/rss", name="Harbour Times"), now=at
    )
    words = ["grain", "tram", "harbour", "bridge", "library", "ferry", "orchard", "glacier", "museum", "lighthouse"]
    items = [
        ParsedItem(
            key=f"{prefix}-w{i}",
            title=f"{prefix} {words[i]} {words[-1 - i]} report number {i}",
            url=f"https://news.example/world/{prefix}-{i}",
            summary_html=f"<p>World story {i}</p>",
            summary_text=f"World story {i}",
            published=at - timedelta(minutes=10 * (i + 1)),
            categories=("World",),
        )
        for i in range(world)
    ]
    items += [
        ParsedItem(
            key=f"{prefix}-s{i}",
            title=f"{prefix} cup final goal {i}",
            url=f"https://news.example/sport/{prefix}-{i}",
            summary_html="<p>Sport</p>",
            summary_text="Sport",
            published=at - timedelta(minutes=5),
            categories=("Sport",),
        )
        for i in range(sport)
    ]
    store_items(store, feed.id, items, now=at)


@dataclasses.dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Web:
    """A running app and a client for it."""

    settings: cfg.Settings
    store: Store
    http: aiohttp.ClientSession
    url: str

    def alice(self) -> str:
        """Alice's public id: what her links carry."""
        sub = self.store.get_subscriber(email="alice@example.org")
        assert sub is not None
        return sub.public_id

    def bob(self) -> str:
        sub = self.store.get_subscriber(email="bob@example.org")
        assert sub is not None
        return sub.public_id

    @property
    def secret(self) -> str:
        return self.store.site_secret()

    def status(self, public_id: str) -> str:
        sub = self.store.get_subscriber(public_id=public_id)
        assert sub is not None
        return sub.status


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> cfg.Settings:
    return make_settings(tmp_path, cap_on=getattr(request, "param", "digest"))


@pytest.fixture
def store(settings: cfg.Settings) -> Iterator[Store]:
    s = open_store(settings)
    yield s
    s.close()


@pytest.fixture
async def app(settings: cfg.Settings, store: Store) -> AsyncIterator[Web]:
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    url = listening(runner)[0]
    try:
        # No cookie jar: RFC 8058 one-click requests carry none, and the app must not need one.
        async with aiohttp.ClientSession(base_url=url, cookie_jar=aiohttp.DummyCookieJar()) as http:
            yield Web(settings, store, http, url)
    finally:
        await runner.cleanup()


async def post_one_click(
    http: aiohttp.ClientSession, path: str, *, multipart: bool = False, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, str]:
    if multipart:
        body: Any = aiohttp.MultipartWriter("form-data")
        part = body.append("One-Click")
        part.set_content_disposition("form-data", name="List-Unsubscribe")
    else:
        body = {"List-Unsubscribe": "One-Click"}
    async with http.post(path, data=body, allow_redirects=False, headers=headers) as resp:
        return resp, await resp.text()


# --------------------------------------------------------------------------- one-click unsubscribe


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
async def test_U1_a_one_click_post_unsubscribes_at_once_with_200_and_no_redirect(app: Web, multipart: bool) -> None:
    alice, bob = app.alice(), app.bob()
    path = f"/u/{tokens.unsubscribe_token(app.secret, alice)}"
    resp, body = await post_one_click(app.http, path, multipart=multipart)
    assert resp.status == 200
    assert "Location" not in resp.headers and "Set-Cookie" not in resp.headers
    assert "unsubscribed" in body
    assert app.status(alice) == UNSUBSCRIBED
    assert app.status(bob) == ACTIVE
    again, again_body = await post_one_click(app.http, path, multipart=multipart)
    assert (again.status, again_body) == (200, body)  # idempotent: the same answer, still unsubscribed
    assert app.status(alice) == UNSUBSCRIBED


async def test_U2_a_get_of_the_unsubscribe_link_only_asks_and_changes_nothing(app: Web) -> None:
    alice = app.alice()
    path = f"/u/{tokens.unsubscribe_token(app.secret, alice)}"
    for method in ("GET", "HEAD", "GET"):  # a link scanner fetching the URL, twice
        async with app.http.request(method, path, allow_redirects=False) as resp:
            body = await resp.text()
            assert resp.status == 200
    async with app.http.get(path) as resp:
        body = await resp.text()
    assert re.search(r'<form method="post">\s*<input type="hidden" name="List-Unsubscribe" value="One-Click">', body)
    assert app.status(alice) == ACTIVE


async def test_a_post_without_the_one_click_body_changes_nothing(app: Web) -> None:
    alice = app.alice()
    async with app.http.post(f"/u/{tokens.unsubscribe_token(app.secret, alice)}", data=b"") as resp:
        assert resp.status == 400
    async with app.http.post(
        f"/u/{tokens.unsubscribe_token(app.secret, alice)}", data={"List-Unsubscribe": "yes"}
    ) as resp:
        assert resp.status == 400
    assert app.status(alice) == ACTIVE


def _flip(token: str, index: int) -> str:
    chars = list(token)
    chars[index] = "A" if chars[index] != "A" else "B"
    return "".join(chars)


def _with_id(token: str, public_id: str) -> str:
    """Another subscriber's id in front of a copied signature."""
    payload = base64.urlsafe_b64encode(json.dumps(public_id).encode()).decode().rstrip("=")
    return payload + "." + token.split(".", 1)[1]


@pytest.mark.parametrize(("method", "prefix"), [("GET", "u"), ("POST", "u"), ("GET", "p"), ("POST", "p")])
async def test_U4_every_unreadable_token_gets_the_same_status_and_body_and_changes_nothing(
    app: Web, method: str, prefix: str
) -> None:
    alice, bob = app.alice(), app.bob()
    sign = tokens.unsubscribe_token if prefix == "u" else tokens.preferences_token
    other = tokens.preferences_token if prefix == "u" else tokens.unsubscribe_token
    good = sign(app.secret, alice)
    bad = {
        "bit flip in the signature": _flip(good, -3),
        "bit flip in the payload": _flip(good, 0),
        "truncated": good[:-4],
        "signature only": good.split(".", 1)[1],
        "wrong salt": other(app.secret, alice),
        "another subscriber's id, copied signature": _with_id(good, bob),
        "another site's secret": sign("not-our-secret", alice),
        "empty": "",
        "garbage": "%00..%2F",
        "very long": "A" * 5000,
    }
    before = {s.id: (s.status, s.sections, s.timezone) for s in app.store.list_subscribers()}
    answers = set()
    for what, token in bad.items():
        data = {"List-Unsubscribe": "One-Click", "section": "World"} if method == "POST" else None
        async with app.http.request(method, f"/{prefix}/{token}", data=data, allow_redirects=False) as resp:
            answers.add((resp.status, await resp.text()))
        assert len(answers) == 1, f"{what} got a different answer"
    ((status, body),) = answers
    assert status == 404 and "This link does not work" in body
    assert {s.id: (s.status, s.sections, s.timezone) for s in app.store.list_subscribers()} == before


async def test_U6_an_unsubscribe_token_and_a_preferences_token_are_not_interchangeable(app: Web) -> None:
    alice = app.alice()
    pref, unsub = tokens.preferences_token(app.secret, alice), tokens.unsubscribe_token(app.secret, alice)
    resp, _ = await post_one_click(app.http, f"/u/{pref}")
    assert resp.status == 404
    async with app.http.get(f"/p/{unsub}") as resp:
        assert resp.status == 404
    async with app.http.post(f"/p/{unsub}", data={"section": "World"}) as resp:
        assert resp.status == 404
    assert app.status(alice) == ACTIVE
    # ...while each works where it belongs.
    async with app.http.get(f"/p/{pref}") as resp:
        assert resp.status == 200
    resp, _ = await post_one_click(app.http, f"/u/{unsub}")
    assert resp.status == 200 and app.status(alice) == UNSUBSCRIBED


async def test_U5_after_a_secret_is_configured_tokens_of_the_generated_one_still_work(tmp_path: Path) -> None:
    generated = make_settings(tmp_path)
    store = open_store(generated)
    old = store.site_secret()
    settings = make_settings(tmp_path, secret="a-newly-configured-secret")
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            alice = store.get_subscriber(email="alice@example.org")
            bob = store.get_subscriber(email="bob@example.org")
            assert alice is not None and bob is not None
            resp, _ = await post_one_click(http, f"/u/{tokens.unsubscribe_token(old, alice.public_id)}")
            assert resp.status == 200
            bob_token = tokens.unsubscribe_token("a-newly-configured-secret", bob.public_id)
            resp, _ = await post_one_click(http, f"/u/{bob_token}")
            assert resp.status == 200
            # The page's own unsubscribe button is signed with the newest secret.
            charlie = store.add_subscriber("charlie@example.org", name=None, sections=None, timezone=None, now=NOW)
            async with http.get(f"/p/{tokens.preferences_token(old, charlie.public_id)}") as page:
                body = await page.text()
            assert f"../u/{tokens.unsubscribe_token('a-newly-configured-secret', charlie.public_id)}" in body
    finally:
        await runner.cleanup()
        store.close()
    assert [s.status for s in Store(settings.database_url).list_subscribers()] == [UNSUBSCRIBED, UNSUBSCRIBED, ACTIVE]


# --------------------------------------------------------------------------- preferences


def form_mac(body: str) -> str:
    m = re.search(r'name="form" value="([^"]+)"', body)
    assert m, "the preferences page has no form HMAC"
    return m.group(1)


async def open_preferences(app: Web, public_id: str) -> tuple[str, str]:
    path = f"/p/{tokens.preferences_token(app.secret, public_id)}"
    async with app.http.get(path) as resp:
        assert resp.status == 200
        return path, await resp.text()


async def test_the_preferences_page_shows_the_configured_sections_and_time_zone_pre_filled(app: Web) -> None:
    _, body = await open_preferences(app, app.bob())
    assert 'value="Sport" checked' in body
    assert 'value="World">' in body  # not ticked
    assert 'value="Other">' in body  # the fallback section is a choice too
    assert '<option value="UTC" selected>' in body and 'value="Europe/Moscow"' in body
    assert "bob@example.org" in body
    # Unsubscribing from everything is one click from here, without saving anything first (G8).
    assert f'action="../u/{tokens.unsubscribe_token(app.secret, app.bob())}"' in body


async def test_U10_a_subscriber_changes_only_their_own_sections(app: Web) -> None:
    alice, bob = app.alice(), app.bob()
    path, body = await open_preferences(app, alice)
    async with app.http.post(
        path, data={"form": form_mac(body), "section": ["World"], "timezone": "Europe/Moscow"}
    ) as resp:
        saved = await resp.text()
    assert resp.status == 200 and "Saved" in saved and 'value="World" checked' in saved
    a, b = app.store.get_subscriber(public_id=alice), app.store.get_subscriber(public_id=bob)
    assert a is not None and b is not None
    assert (a.sections, a.timezone, a.status) == (("World",), "Europe/Moscow", ACTIVE)
    assert (b.sections, b.timezone) == (("Sport",), "UTC")
    # Bob's id in Alice's token is refused, and Alice's form cannot be replayed at Bob's URL.
    forged = _with_id(tokens.preferences_token(app.secret, alice), bob)
    async with app.http.post(f"/p/{forged}", data={"form": form_mac(body), "section": ["World"]}) as resp:
        assert resp.status == 404
    async with app.http.post(
        f"/p/{tokens.preferences_token(app.secret, bob)}", data={"form": form_mac(body), "section": ["World"]}
    ) as resp:
        assert resp.status == 403
    b = app.store.get_subscriber(public_id=bob)
    assert b is not None and b.sections == ("Sport",)


async def test_R7_a_subscriber_whose_sections_cannot_be_read_is_told_and_chooses_again(app: Web) -> None:
    """Their stored choice was damaged (a hand edit, a broken file): the edition fails their row,
    so their page says why nothing comes and that saving a choice mends it."""
    bob = app.bob()
    with app.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscribers SET sections = '{not json' WHERE email = 'bob@example.org'")
    damaged = app.store.get_subscriber(public_id=bob)
    assert damaged is not None and damaged.damaged
    path, body = await open_preferences(app, bob)
    assert "We could not read the sections you chose, so no edition is sent to you." in body
    assert " checked" not in body.split('name="timezone"')[0]  # nothing ticked: no guess at their choice
    async with app.http.post(path, data={"form": form_mac(body), "section": ["World"], "timezone": "UTC"}) as resp:
        saved = await resp.text()
    assert resp.status == 200 and "Saved" in saved and "could not read" not in saved
    mended = app.store.get_subscriber(public_id=bob)
    assert mended is not None and mended.damaged is None and mended.sections == ("World",)
    _, again = await open_preferences(app, bob)
    assert "could not read" not in again and 'value="World" checked' in again


async def test_ticking_every_section_means_all_sections_including_later_ones(app: Web) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    async with app.http.post(
        path, data={"form": form_mac(body), "timezone": "UTC", "section": list(app.settings.section_names)}
    ) as resp:
        assert resp.status == 200
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and sub.sections is None


async def test_choosing_no_section_is_refused_and_offers_to_unsubscribe_instead(app: Web) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    async with app.http.post(path, data={"form": form_mac(body), "timezone": "UTC"}) as resp:
        page = await resp.text()
    assert resp.status == 422
    assert "Choose at least one section" in page and 'role="alert"' in page
    assert f'action="../u/{tokens.unsubscribe_token(app.secret, bob)}"' in page
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and (sub.sections, sub.status) == (("Sport",), ACTIVE)


async def test_an_unknown_time_zone_or_section_is_not_saved(app: Web) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    async with app.http.post(
        path, data={"form": form_mac(body), "section": ["World"], "timezone": "../../etc/passwd"}
    ) as resp:
        assert resp.status == 422
    async with app.http.post(
        path, data={"form": form_mac(body), "section": ["Not a section"], "timezone": "UTC"}
    ) as resp:
        assert resp.status == 422
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and (sub.sections, sub.timezone) == (("Sport",), "UTC")


async def test_a_reader_in_any_zone_finds_it_labelled_with_its_offset_and_it_is_stored(app: Web) -> None:
    """Russia alone has eleven zones: a reader in Vladivostok wants the edition at 07:00 there, not Moscow's."""
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    zones = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', body))
    # NOW is in January: Vladivostok is UTC+10 all year, New York in standard time.
    assert zones["Asia/Vladivostok"] == "Asia/Vladivostok (UTC+10)"
    assert zones["Asia/Yekaterinburg"] == "Asia/Yekaterinburg (UTC+5)"
    assert zones["America/New_York"] == "America/New York (UTC-5)" and zones["Asia/Kolkata"].endswith("(UTC+5:30)")
    assert 350 < len(zones) < 500
    assert [z for z in zones if z.startswith(("Etc/", "US/")) or ("/" not in z and z != "UTC")] == []
    assert "Asia/Calcutta" not in zones and "GMT" not in zones  # legacy aliases of Asia/Kolkata and UTC
    assert body.index('value="UTC" selected') < body.index('value="Africa/Abidjan"')  # the common ones first
    assert len(body.encode()) < 45_000  # ~420 options: ~30 KB more than the 18 of before
    async with app.http.post(
        path, data={"form": form_mac(body), "section": ["Sport"], "timezone": "Asia/Vladivostok"}
    ) as resp:
        saved = await resp.text()
    assert resp.status == 200 and "Saved" in saved and '<option value="Asia/Vladivostok" selected>' in saved
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and sub.timezone == "Asia/Vladivostok"


@pytest.mark.parametrize("zone", ["Mars/X", "Etc/GMT+5", "../../etc/passwd"])
async def test_a_zone_the_menu_does_not_offer_is_refused_on_the_page_not_stored(app: Web, zone: str) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    async with app.http.post(path, data={"form": form_mac(body), "section": ["World"], "timezone": zone}) as resp:
        page = await resp.text()
    assert resp.status == 422
    assert re.search(r'<p class="error" role="alert" id="form-error">Choose a time zone from the list.</p>', page)
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and (sub.sections, sub.timezone) == (("Sport",), "UTC")


async def test_U3_the_preferences_form_needs_its_hmac_and_a_same_site_post_but_one_click_does_not(app: Web) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    for data, headers in [
        ({"section": ["World"]}, {}),
        ({"section": ["World"], "form": "forged"}, {}),
        ({"section": ["World"], "form": form_mac(body)}, {"Sec-Fetch-Site": "cross-site"}),
    ]:
        async with app.http.post(path, data=data, headers=headers) as resp:
            assert resp.status == 403
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and sub.sections == ("Sport",)
    # The one-click endpoint is exempt: a mail provider's POST comes from anywhere (G1, bike_index#4077).
    resp, _ = await post_one_click(
        app.http, f"/u/{tokens.unsubscribe_token(app.secret, bob)}", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert resp.status == 200 and app.status(bob) == UNSUBSCRIBED


async def test_an_unsubscribed_address_sees_no_form_and_cannot_save(app: Web) -> None:
    bob = app.bob()
    path, body = await open_preferences(app, bob)
    row = app.store.get_subscriber(public_id=bob)
    assert row is not None
    app.store.set_status(row.id, UNSUBSCRIBED, now=NOW)
    async with app.http.get(path) as resp:
        page = await resp.text()
    assert "unsubscribed" in page and 'name="section"' not in page
    async with app.http.post(path, data={"form": form_mac(body), "section": ["World"], "timezone": "UTC"}) as resp:
        assert resp.status == 409
    sub = app.store.get_subscriber(public_id=bob)
    assert sub is not None and (sub.status, sub.sections) == (UNSUBSCRIBED, ("Sport",))


def renamed_world(settings: cfg.Settings, *, formerly: tuple[str, ...] = ("World",)) -> cfg.Settings:
    """The config after the operator renamed World to International, by default with `formerly`."""
    return dataclasses.replace(
        settings,
        sections=tuple(
            dataclasses.replace(s, name="International", formerly=formerly) if s.name == "World" else s
            for s in settings.sections
        ),
    )


async def serving(settings: cfg.Settings, store: Store) -> AsyncIterator[aiohttp.ClientSession]:
    """A client for the app serving `settings` on `store` (one `digest web` among several)."""
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            yield http
    finally:
        await runner.cleanup()


async def test_a_former_name_written_after_the_rename_ticks_its_section_and_is_no_orphan(tmp_path: Path) -> None:
    """The operator renamed World to International (formerly = ["World"]) and a command rewrote the
    stored choices once; a `digest web` still on the old config then saved "World" (finding 2). The
    new config's page ticks International, and status names no orphan, nor advises the `formerly`
    the config already has."""
    from digest.status import orphaned_choices

    old = make_settings(tmp_path)
    new = renamed_world(old)
    store = open_store(new)
    try:
        assert store.rename_chosen_sections(sorted(new.section_renames.items()), now=NOW) == 0  # the one-time rewrite
        bob = store.get_subscriber(email="bob@example.org")
        assert bob is not None
        path = f"/p/{tokens.preferences_token(store.site_secret(), bob.public_id)}"
        async for http in serving(old, store):  # the stale process
            async with http.get(path) as resp:
                body = await resp.text()
            data = {"form": form_mac(body), "section": ["World", "Sport"], "timezone": "UTC"}
            async with http.post(path, data=data) as resp:
                assert resp.status == 200
        saved = store.get_subscriber(email="bob@example.org")
        assert saved is not None and saved.sections == ("World", "Sport")
        assert orphaned_choices(new, store) is None
        async for http in serving(new, store):
            async with http.get(path) as resp:
                page = await resp.text()
        assert 'value="International" checked' in page and 'value="Sport" checked' in page
        assert "no longer offered" not in page
    finally:
        store.close()


async def test_status_advises_each_former_name_for_its_own_section(settings: cfg.Settings, store: Store) -> None:
    """Two sections renamed without `formerly` are two renames, not one list for one entry (finding 10)."""
    from digest.status import orphaned_choices

    bob = store.get_subscriber(email="bob@example.org")
    alice = store.get_subscriber(email="alice@example.org")
    assert bob is not None and alice is not None
    store.set_choices(bob.id, Choices(("Sports",), None), now=NOW)
    store.set_choices(alice.id, Choices(("World news",), None), now=NOW)
    said = orphaned_choices(settings, store)
    assert said is not None and "'Sports' (1 subscriber), 'World news' (1 subscriber)" in said
    assert 'formerly = ["Sports"], formerly = ["World news"]' in said and '["Sports", "World news"]' not in said
    store.set_choices(alice.id, Choices(("World",), None), now=NOW)
    said = orphaned_choices(settings, store)
    assert said is not None and 'add formerly = ["Sports"] to its [[sections]] entry' in said


@pytest.mark.parametrize(
    ("language", "notice"),
    [
        ("en", "The sections you chose are no longer offered, so no edition is sent to you."),
        ("ru", "Выбранных вами разделов больше нет, поэтому выпуски вам не отправляются."),
    ],
)
async def test_a_subscriber_whose_sections_all_vanished_is_told_on_the_preferences_page(
    settings: cfg.Settings, store: Store, language: str, notice: str
) -> None:
    """Sport was renamed to Sports without `formerly`: bob, who chose only Sport, gets nothing, and
    his page said nothing of why (finding 10)."""
    site = dataclasses.replace(settings, digest=dataclasses.replace(settings.digest, language=language))
    bob = store.get_subscriber(email="bob@example.org")
    assert bob is not None
    path = f"/p/{tokens.preferences_token(store.site_secret(), bob.public_id)}"
    store.set_choices(bob.id, Choices(("Markets",), "UTC"), now=NOW)
    async for http in serving(site, store):
        async with http.get(path) as resp:
            page = await resp.text()
        assert resp.status == 200 and notice in page and " checked" not in page.split('name="timezone"')[0]
        store.set_choices(bob.id, Choices(("Markets", "Sport"), "UTC"), now=NOW)  # one of them is still there
        async with http.get(path) as resp:
            page = await resp.text()
        assert notice not in page and 'value="Sport" checked' in page


async def test_saving_only_the_sections_leaves_the_time_zone_to_the_config(app: Web) -> None:
    """The form posts the time zone too; a field the subscriber did not change stays the
    operator's, so a later edit of their config entry still applies to it (finding 9)."""
    path, body = await open_preferences(app, app.bob())
    async with app.http.post(path, data={"form": form_mac(body), "section": ["World"], "timezone": "UTC"}) as resp:
        assert resp.status == 200
    found = app.store.subscriber_origins("bob@example.org")
    assert found is not None and (found.origins["sections"], found.origins["timezone"]) == ("subscriber", "config")
    edited = [
        dataclasses.replace(s, timezone="Asia/Tokyo") if s.email == "bob@example.org" else s
        for s in app.settings.subscribers
    ]
    app.store.sync_subscribers(edited, now=NOW)
    bob = app.store.get_subscriber(email="bob@example.org")
    assert bob is not None and (bob.sections, bob.timezone) == (("World",), "Asia/Tokyo")
    # And the other way round: alice (all sections, the site's zone) picks a zone and keeps the
    # sections the config gives her.
    path, body = await open_preferences(app, app.alice())
    every = list(app.settings.section_names)
    async with app.http.post(path, data={"form": form_mac(body), "section": every, "timezone": "Asia/Tokyo"}) as resp:
        assert resp.status == 200
    found = app.store.subscriber_origins("alice@example.org")
    assert found is not None and (found.origins["sections"], found.origins["timezone"]) == ("config", "subscriber")
    edited = [dataclasses.replace(s, sections=("Sport",)) if s.email == "alice@example.org" else s for s in edited]
    app.store.sync_subscribers(edited, now=NOW)
    alice = app.store.get_subscriber(email="alice@example.org")
    assert alice is not None and (alice.sections, alice.timezone) == (("Sport",), "Asia/Tokyo")


async def test_someone_the_operator_removed_is_not_told_they_unsubscribed(app: Web) -> None:
    """Dropped from the config, bob read "This address is unsubscribed", which he never did."""
    app.store.sync_subscribers([s for s in app.settings.subscribers if s.email != "bob@example.org"], now=NOW)
    bob = app.store.get_subscriber(email="bob@example.org")
    assert bob is not None and bob.status == "removed"
    _, body = await open_preferences(app, app.bob())
    assert "taken off the list by the site's editors" in body and "is unsubscribed" not in body
    _, body = await open_preferences(app, app.alice())
    assert "taken off the list" not in body


# --------------------------------------------------------------------------- editions and the rest


def mark_sent(store: Store, edition: Any) -> None:
    """As if the edition had gone out: the archive shows only editions sent to somebody."""
    rows = claim(store, edition.id, "test", now=NOW, lease=timedelta(minutes=5), limit=1000)
    record(store, [Mark(d.id, SENT, message_id=f"<t{d.id}@review.example>") for d in rows], "test", now=NOW)


@pytest.mark.parametrize("settings", ["digest", "section"], indirect=True)
async def test_the_edition_page_shows_every_story_of_a_section_the_email_cut_short(app: Web) -> None:
    add_news(app.store, at=NOW - timedelta(hours=2), prefix="Today")
    edition, _ = build_edition(app.settings, app.store, day=DAY, timezone="UTC", now=NOW)
    mark_sent(app.store, edition)
    alice = app.store.get_subscriber(public_id=app.alice())
    assert alice is not None
    mail = preview(app.settings, app.store, subscriber=alice, day=DAY, now=NOW).rendered
    assert mail is not None
    more = re.search(
        r'href="(https://review\.example(/editions/UTC/2026-01-16)#(s-world))"[^>]*>(\d+) more in World', mail.html
    )
    assert more, "the email has no 'N more in World' link"
    assert int(more.group(4)) == WORLD_STORIES - CAP
    async with app.http.get(more.group(2)) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.headers["Cache-Control"].startswith("public")
    assert f'id="{more.group(3)}"' in page
    titles = [item.title for item, section in app.store.edition_items(edition.id) if section == "World"]
    assert len(titles) == WORLD_STORIES
    for title in titles:
        assert title in page
    assert "more in World" not in page
    assert "__DIGEST_" not in page and "/u/" not in page  # a public page: nobody's own links


async def test_an_edition_page_is_rendered_once_and_served_from_that(settings: cfg.Settings, store: Store) -> None:
    add_news(store, at=NOW - timedelta(hours=2), prefix="Today")
    mark_sent(store, build_edition(settings, store, day=DAY, timezone="UTC", now=NOW)[0])
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    pages = runner.app[SITE].editions
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:

            async def get() -> str:
                async with http.get("/editions/UTC/2026-01-16") as resp:
                    assert resp.status == 200
                    return await resp.text()

            first = await asyncio.gather(*(get() for _ in range(4)))  # at once, before any is kept
            assert pages.rendered == 1
            again = await get()
            assert pages.rendered == 1, "the second GET rendered the edition again"
    finally:
        await runner.cleanup()
    assert len(set(first)) == 1 and again == first[0] and "Today" in again


def test_edition_pages_keep_at_most_their_bound_dropping_the_least_recently_read(
    settings: cfg.Settings, store: Store
) -> None:
    from digest.pipeline.mailer import make_renderer
    from digest.pipeline.send import EditionPages

    add_news(store, at=NOW - timedelta(hours=2), prefix="Today")
    a, b, c = (
        build_edition(settings, store, day=DAY, timezone=z, now=NOW)[0] for z in ("UTC", "Asia/Tokyo", "Europe/Moscow")
    )
    pages = EditionPages(settings, store, renderer=make_renderer(settings), secret="s", keep=2)
    first = pages.html(a)
    pages.html(b)
    assert pages.html(a) is first and pages.rendered == 2  # a is now the most recently read
    pages.html(c)  # over the bound: b goes
    assert pages.rendered == 3
    pages.html(a)
    assert pages.rendered == 3
    pages.html(b)
    assert pages.rendered == 4


async def test_an_edition_that_does_not_exist_is_a_404_page(app: Web) -> None:
    for path in (
        "/editions/UTC/2026-01-16",
        "/editions/Europe~Moscow/2026-01-16",
        "/editions/UTC/2026-13-45",
        "/editions/UTC/yesterday",
        "/editions/..~..~etc/2026-01-16",
    ):
        async with app.http.get(path) as resp:
            assert resp.status == 404, path
            assert "No such edition" in await resp.text(), path
    async with app.http.get("/editions/%2E%2E/2026-01-16") as resp:  # normalised to /2026-01-16
        assert resp.status == 404


async def test_the_index_lists_sent_editions_with_links_and_not_one_sent_to_nobody(app: Web) -> None:
    add_news(app.store, at=NOW - timedelta(hours=2), prefix="Today")
    for zone in ("UTC", "Europe/Moscow"):  # nobody reads in Moscow: that edition has no message to send
        mark_sent(app.store, build_edition(app.settings, app.store, day=DAY, timezone=zone, now=NOW)[0])
    async with app.http.get("/") as resp:
        page = await resp.text()
    assert resp.status == 200
    assert 'href="editions/UTC/2026-01-16"' in page and "Europe~Moscow" not in page
    assert "Friday, January 16, 2026" in page
    assert '<link rel="alternate" type="application/atom+xml"' in page
    async with app.http.get("/editions/Europe~Moscow/2026-01-16") as resp:
        assert resp.status == 404


async def test_healthz_answers_late_while_the_due_edition_is_not_built(app: Web) -> None:
    # 08:00 UTC, send_at 07:00, news polled before it and no edition built: see test_metrics.py for
    # the way back to "ok".
    add_news(app.store, at=NOW - timedelta(hours=2), prefix="Today")
    async with app.http.get("/healthz") as resp:
        assert resp.status == 503 and (await resp.text()).startswith("late\n")


async def test_every_answer_carries_the_security_headers_and_token_pages_are_never_cached(app: Web) -> None:
    alice = app.alice()
    token_paths = [
        f"/u/{tokens.unsubscribe_token(app.secret, alice)}",
        f"/p/{tokens.preferences_token(app.secret, alice)}",
        "/u/broken",
        "/p/",
    ]
    for path in [*token_paths, "/", "/healthz", "/nowhere", "/editions/UTC/2026-01-16"]:
        async with app.http.get(path) as resp:
            h = resp.headers
            assert h["Content-Security-Policy"] == CSP and "script" not in CSP
            assert h["X-Content-Type-Options"] == "nosniff"
            assert h["Referrer-Policy"] == "no-referrer"
            assert "Set-Cookie" not in h
            if path in token_paths:
                assert h["Cache-Control"] == "no-store"
            if path.startswith(("/u/", "/p/")) or path == "/nowhere":
                assert "<script" not in await resp.text()
    async with app.http.put("/healthz") as resp:
        assert resp.status == 405 and "Content-Security-Policy" in resp.headers


async def test_an_oversized_form_is_refused_without_a_change(app: Web) -> None:
    alice = app.alice()
    path, body = await open_preferences(app, alice)
    async with app.http.post(path, data={"form": form_mac(body), "section": "World", "pad": "x" * 200_000}) as resp:
        assert resp.status == 413
    sub = app.store.get_subscriber(public_id=alice)
    assert sub is not None and sub.sections is None


async def test_the_access_log_never_shows_a_token(app: Web, caplog: pytest.LogCaptureFixture) -> None:
    token = tokens.unsubscribe_token(app.secret, app.alice())
    with caplog.at_level("INFO", logger="digest"):
        await post_one_click(app.http, f"/u/{token}")
        async with app.http.get(f"/p/{tokens.preferences_token(app.secret, app.alice())}"):
            pass
    lines = [r.getMessage() for r in caplog.records]
    assert any("POST /u/<token> 200" in line for line in lines)
    assert not any(token.split(".")[1] in line for line in lines)
    assert not any("alice@example.org" in line for line in lines)


async def test_a_token_under_a_mangled_path_never_reaches_the_log(app: Web, caplog: pytest.LogCaptureFixture) -> None:
    """A broken client or proxy doubles a slash or changes the case (finding 5): aiohttp routes none
    of these, and the access log used to show each with its working token."""
    token = tokens.unsubscribe_token(app.secret, app.alice())
    paths = [f"//u/{token}", f"/U/{token}", f"/u//{token}", f"/x/p/{token}", f"/editions/{token}", "/editions.atom"]
    host, port = app.url.removeprefix("http://").rsplit(":", 1)
    with caplog.at_level("INFO", logger="digest"):
        for path in paths:  # as sent, on a socket: a client library would read "//u/..." as a host
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await reader.read()
            writer.close()
        await asyncio.sleep(0.05)  # the access log line is written after the answer
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.web.access"]
    assert len(lines) == len(paths)
    assert not any(token.split(".")[1] in line or token.split(".")[0] in line for line in lines), lines
    assert any("GET //u/<token> 404" in line for line in lines) and any("GET /U/<token> 404" in line for line in lines)
    assert any("GET /editions/<token> 404" in line for line in lines)
    assert any("GET /editions.atom 200" in line for line in lines)  # a file name is no token


async def test_a_path_with_encoded_line_breaks_or_escapes_writes_one_escaped_log_line(
    app: Web, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp decodes the path the access log shows: %0D%0A wrote a log line of the client's own
    ("... subscriber=2 unsubscribed"), %1B drove the operator's terminal, %E2%80%AE reversed what
    followed. Each is written as its escape, on the request's one line."""
    paths = {
        "/x%0D%0A2026-01-16%2008:00:00,000%20INFO%20digest.web:%20subscriber=2%20unsubscribed": r"/x\r\n2026-01-16 08",
        "/x%1B%5B2J%1B%5B31mred": r"/x\x1b[2J\x1b[31mred",
        "/editions/a%E2%80%AEb%E2%80%A8c/2026-01-16": r"/editions/a\u202eb\u2028c/2026-01-16",
    }
    with caplog.at_level("INFO", logger="digest"):
        for path in paths:
            async with app.http.get(yarl.URL(app.url + path, encoded=True)) as resp:
                assert resp.status == 404
        await asyncio.sleep(0.05)  # the access log line is written after the answer
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.web.access"]
    assert len(lines) == len(paths)
    for line, escaped in zip(lines, paths.values(), strict=True):
        assert escaped in line and " 404 " in line, line
        assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]", line), line


# --------------------------------------------------------------------------- end to end


def received(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_the_list_unsubscribe_url_of_a_sent_email_unsubscribes_and_the_next_edition_skips_them(
    tmp_path: Path,
) -> None:
    clock = Clock(NOW)
    async with SmtpServer() as smtp:
        settings = make_settings(tmp_path, smtp_port=smtp.port)
        store = open_store(settings)
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=0)
        base = listening(runner)[0]
        # The emails link to the app where it really listens (in production: the TLS proxy's https URL).
        sending = dataclasses.replace(settings, digest=dataclasses.replace(settings.digest, base_url=base))
        try:
            add_news(store, at=NOW - timedelta(hours=2), prefix="Today")
            await send_day(sending, store, day=DAY, transport=SmtpTransport, clock=clock)
            first = {m.rcpt_tos[0]: received(m.data) for m in smtp.messages}
            assert sorted(first) == ["alice@example.org", "bob@example.org"]

            bob_mail = first["bob@example.org"]
            assert bob_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            url = re.search(r"<(http[^>]+/u/[^>]+)>", str(bob_mail["List-Unsubscribe"]))
            assert url and url.group(1).startswith(base)
            # What a mail provider does (RFC 8058 section 3.2): POST, no cookies, no redirect followed.
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                async with http.post(
                    url.group(1),
                    data="List-Unsubscribe=One-Click",
                    allow_redirects=False,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ) as resp:
                    assert resp.status == 200 and "Location" not in resp.headers
                # Alice's "N more in World" link opens the whole section on the edition page.
                html = first["alice@example.org"].get_body(("html",))
                assert html is not None
                more = re.search(r'href="([^"]+#s-world)"[^>]*>\d+ more in World', html.get_content())
                assert more and more.group(1).startswith(base)
                async with http.get(more.group(1)) as resp:
                    page = await resp.text()
                assert resp.status == 200 and page.count('class="title"') == WORLD_STORIES + 1

            clock.now = NOW + timedelta(days=1)
            add_news(store, at=clock.now - timedelta(hours=2), prefix="Tomorrow")
            await send_day(sending, store, day=DAY + timedelta(days=1), transport=SmtpTransport, clock=clock)
            second = [m.rcpt_tos[0] for m in smtp.messages[len(first) :]]
            assert second == ["alice@example.org"]
        finally:
            await runner.cleanup()
            store.close()


# --------------------------------------------------------------------------- the shells that run it


async def test_the_daemon_serves_the_web_app_when_enabled_and_stops_it_on_shutdown(tmp_path: Path) -> None:
    port = free_port()
    base = make_settings(tmp_path)
    settings = dataclasses.replace(
        base, subscribers=(), web=dataclasses.replace(base.web, enabled=True, host="127.0.0.1", port=port)
    )
    store = Store(settings.database_url)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_daemon(
            settings, store, clock=Clock(), stop=stop, grace=2.0, ticks=Ticks(poll=0.2, reconcile=0.2, heartbeat=0.2)
        )
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        assert resp.status == 200 and (await resp.text()).startswith("ok\n")
                        break
                except aiohttp.ClientConnectorError:
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the daemon never served /healthz")
            stop.set()
            await asyncio.wait_for(task, 15)
            with pytest.raises(aiohttp.ClientConnectorError):
                async with http.get(f"http://127.0.0.1:{port}/healthz"):
                    pass
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        store.close()


async def test_digest_web_serves_until_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[digest]\ndatabase = "sqlite:///{tmp_path / "d.sqlite"}"\n[[subscribers]]\nemail = "alice@example.org"\n',
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "digest",
        "--config",
        str(config),
        "web",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
        cwd=str(tmp_path),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.match(r"serving on (http://127\.0\.0\.1:\d+)", line)
        assert m, line
        async with aiohttp.ClientSession() as http, http.get(m.group(1) + "/healthz") as resp:
            # 503 "late" after 07:00 UTC on the real clock: no edition was built in this test.
            assert resp.status in (200, 503) and (await resp.text()).startswith(("ok\n", "late\n"))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --------------------------------------------------------------------------- key rotation and old links (issue 9)


async def test_web_secret_keys_rotate_newest_first_and_retired_keys_stop_working(tmp_path: Path) -> None:
    newest, older, retired = "newest-key-0123456789", "older-key-0123456789", "retired-key-0123456789"
    base = make_settings(tmp_path)
    settings = dataclasses.replace(base, web=dataclasses.replace(base.web, secret_keys=(newest, older)))
    store = open_store(settings)
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        alice = store.get_subscriber(email="alice@example.org")
        assert alice is not None
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            for key, status in ((newest, 200), (older, 200), (store.site_secret(), 200), (retired, 404)):
                async with http.get(f"/p/{tokens.preferences_token(key, alice.public_id)}") as page:
                    assert page.status == status, key
                    body = await page.text()
            async with http.get(f"/p/{tokens.preferences_token(older, alice.public_id)}") as page:
                body = await page.text()
            # Links the page makes are signed with the newest key.
            assert f"../u/{tokens.unsubscribe_token(newest, alice.public_id)}" in body
    finally:
        await runner.cleanup()
        store.close()


async def test_only_listed_keys_retires_the_generated_secret_and_the_configs(tmp_path: Path) -> None:
    """Before, the generated secret (kept in the database, so in every backup) and [digest] secret
    verified links for ever: after a leak no rotation could retire them."""
    newest, configured = "newest-key-0123456789", "configured-secret-0123456789"
    base = make_settings(tmp_path)
    web = dataclasses.replace(base.web, secret_keys=(newest,), only_listed_keys=True)
    settings = dataclasses.replace(base, web=web, digest=dataclasses.replace(base.digest, secret=configured))
    store = open_store(settings)
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        alice = store.get_subscriber(email="alice@example.org")
        assert alice is not None
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            for key, status in ((newest, 200), (configured, 404), (store.site_secret(), 404)):
                async with http.get(f"/p/{tokens.preferences_token(key, alice.public_id)}") as page:
                    assert page.status == status, key
            resp, _ = await post_one_click(http, f"/u/{tokens.unsubscribe_token(store.site_secret(), alice.public_id)}")
            assert resp.status == 404
    finally:
        await runner.cleanup()
        store.close()
    assert Store(settings.database_url).get_subscriber(email="alice@example.org").status == ACTIVE  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="only_listed_keys = true with no web.secret_keys"):
        cfg.from_mapping({"web": {"only_listed_keys": True}})


async def test_links_from_before_public_ids_work_only_for_rows_that_existed_at_the_upgrade(tmp_path: Path) -> None:
    from itsdangerous import URLSafeSerializer

    settings = make_settings(tmp_path)
    store = open_store(settings)
    alice, bob = store.get_subscriber(email="alice@example.org"), store.get_subscriber(email="bob@example.org")
    assert alice is not None and bob is not None and alice.id < bob.id
    store.set_meta("legacy_link_max_id", str(alice.id))  # as migration 0002 records: bob came later
    secret = store.site_secret()
    old_unsubscribe = URLSafeSerializer(secret, salt="unsubscribe-v1")  # what release-1 emails carry
    old_preferences = URLSafeSerializer(secret, salt="preferences-v1")
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            async with http.get(f"/p/{old_preferences.dumps(alice.id)}") as page:
                assert page.status == 200 and "alice@example.org" in await page.text()
            async with http.get(f"/p/{old_preferences.dumps(bob.id)}") as page:
                assert page.status == 404
            resp, _ = await post_one_click(http, f"/u/{old_unsubscribe.dumps(bob.id)}")
            assert resp.status == 404
            resp, _ = await post_one_click(http, f"/u/{old_unsubscribe.dumps(alice.id)}")
            assert resp.status == 200
    finally:
        await runner.cleanup()
        store.close()
    statuses = {s.email: s.status for s in Store(settings.database_url).list_subscribers()}
    assert statuses == {"alice@example.org": UNSUBSCRIBED, "bob@example.org": ACTIVE}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a URL over aiohttp's 8 KB line limit
        b"GARBAGE\r\n\r\n",  # no request line at all
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",  # a header over the limit
    ],
    ids=["long-url", "no-request-line", "long-header"],
)
async def test_L5_a_malformed_request_is_a_400_logged_in_one_line(
    app: Web, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = app.url.removeprefix("http://").rsplit(":", 1)
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_bytes)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1:2] == [b"400"], status_line
    await asyncio.sleep(0.05)  # the log record is written after the answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]  # no traceback, no alarm
    # aiohttp says nothing of a request line it cannot read at all; of the others, one line.
    for line in (r for r in caplog.records if r.name == "aiohttp.server"):
        assert line.getMessage().startswith("web: a malformed request answered 400: ")
        assert "\n" not in line.getMessage()


@pytest.mark.parametrize("kind", ["bad-char", "long-query"])
async def test_L5_a_malformed_request_carrying_a_token_is_logged_without_it(
    app: Web, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp quotes the request line it could not read; the L5 line quoted it whole (finding 5)."""
    token = tokens.unsubscribe_token(app.secret, app.alice())
    if kind == "bad-char":
        line = f"GET /u/{token}\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    else:  # a query over the 8 KB line limit behind a preferences link
        line = f"GET /p/{token}?{'q' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    host, port = app.url.removeprefix("http://").rsplit(":", 1)
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(line)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1:2] == [b"400"], status_line
    await asyncio.sleep(0.05)
    logged = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert logged and all(line.startswith("web: a malformed request answered 400: ") for line in logged)
    payload, signature = token.split(".")
    assert not any(payload[:12] in line or signature[:12] in line for line in logged), logged
