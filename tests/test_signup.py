"""Sign-up with confirmed opt-in through the real app on 127.0.0.1 and a real SMTP server:
the same answer for every address, one confirmation per window, a global hourly cap, a
confirmation that only a POST from its page makes, an expiring link, the honeypot, CSRF and the
per-client limit; a suppressed address comes back only this way."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from dbfaults import write_lock
from smtpservers import SmtpServer
from test_faults import MALFORMED_FORMS
from test_web import NOW, Clock, make_settings, open_store

from digest import config as cfg
from digest import web as web_app
from digest.store import ACTIVE, UNSUBSCRIBED, Store
from digest.web import listening, start_web


@dataclasses.dataclass
class Site:
    settings: cfg.Settings
    store: Store
    http: aiohttp.ClientSession
    smtp: SmtpServer
    clock: Clock
    url: str  # the app's loopback address


async def start(tmp_path: Path, *, language: str = "en", **web: Any) -> AsyncIterator[Site]:
    async with SmtpServer() as smtp:
        base = make_settings(tmp_path, smtp_port=smtp.port)
        settings = dataclasses.replace(
            base, web=dataclasses.replace(base.web, **web), digest=dataclasses.replace(base.digest, language=language)
        )
        store = open_store(settings)
        clock = Clock()
        runner = await start_web(settings, store, clock=clock, host="127.0.0.1", port=0)
        try:
            url = listening(runner)[0]
            async with aiohttp.ClientSession(base_url=url) as http:
                yield Site(settings, store, http, smtp, clock, url)
        finally:
            await runner.cleanup()
            store.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async for s in start(tmp_path):
        yield s


async def form(site: Site) -> dict[str, str]:
    async with site.http.get("/subscribe") as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        page = await resp.text()
    token = re.search(r'name="form" value="([^"]+)"', page)
    assert token and 'name="website"' in page and "<script" not in page
    return {"form": token.group(1)}


async def sign_up(
    site: Site, email: str, *, sections: tuple[str, ...] = ("World",), timezone: str = "UTC", **extra: str
) -> tuple[int, str]:
    data = [
        *(await form(site)).items(),
        ("email", email),
        ("timezone", timezone),
        *(("section", s) for s in sections),
        *extra.items(),
    ]
    async with site.http.post("/subscribe", data=data) as resp:
        return resp.status, await resp.text()


async def mail_count(site: Site, n: int) -> None:
    for _ in range(100):
        if len(site.smtp.messages) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} messages, got {len(site.smtp.messages)}")


def link_in(data: bytes) -> str:
    msg = message_from_bytes(data, policy=policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    m = re.search(r"https://review\.example(/confirm/\S+)", body.get_content())
    assert m
    return m.group(1)


async def confirm(http: aiohttp.ClientSession, link: str) -> tuple[int, str]:
    """Open a confirmation link and press its button, as a person does: the answer's status and page."""
    async with http.get(link) as resp:
        mac = re.search(r'name="form" value="([^"]+)"', await resp.text())
    assert mac
    async with http.post(link, data={"form": mac.group(1)}) as resp:
        return resp.status, await resp.text()


async def test_U8_every_address_gets_the_same_answer_and_one_confirmation_per_window(site: Site) -> None:
    bob = site.store.get_subscriber(email="bob@example.org")
    assert bob is not None
    site.store.set_status(bob.id, UNSUBSCRIBED, now=NOW)
    answers = set()
    for email in ("new@example.org", "alice@example.org", "bob@example.org"):  # new, subscribed, unsubscribed
        status, page = await sign_up(site, email)
        answers.add((status, page))
    status, page = await sign_up(site, "new@example.org")  # pending: a second time within the window
    answers.add((status, page))
    assert len(answers) == 1 and status == 200 and "Check your inbox" in page
    await mail_count(site, 3)
    await asyncio.sleep(0.3)
    assert sorted(m.rcpt_tos[0] for m in site.smtp.messages) == [
        "alice@example.org",
        "bob@example.org",
        "new@example.org",
    ]
    assert site.store.get_subscriber(email="new@example.org") is None  # nothing until confirmed
    site.clock.now = NOW + timedelta(hours=1, minutes=1)  # the window has passed
    await sign_up(site, "new@example.org")
    await mail_count(site, 4)


async def test_a_confirmation_to_an_internationalised_domain_carries_its_a_label(site: Site) -> None:
    await sign_up(site, "user@xn--bcher-kva.de")  # kept as user@bücher.de
    await mail_count(site, 1)
    [sent] = site.smtp.messages  # the test server offers no SMTPUTF8, and none is needed
    msg = message_from_bytes(sent.data, policy=policy.default)
    assert sent.rcpt_tos == ("user@xn--bcher-kva.de",) and sent.data.isascii()
    assert [a.addr_spec for a in msg["To"].addresses] == ["user@xn--bcher-kva.de"]


async def test_only_a_post_from_the_links_page_confirms_and_a_suppressed_address_comes_back(site: Site) -> None:
    bob = site.store.get_subscriber(email="bob@example.org")
    assert bob is not None
    site.store.set_status(bob.id, UNSUBSCRIBED, now=NOW - timedelta(hours=1))
    assert site.store.suppression_reason("bob@example.org") is not None
    await sign_up(site, "bob@example.org", sections=("Sport",))
    await mail_count(site, 1)
    msg = message_from_bytes(site.smtp.messages[0].data, policy=policy.default)
    assert "Confirm your subscription" in str(msg["Subject"]) and msg["Auto-Submitted"] == "auto-generated"
    path = link_in(site.smtp.messages[0].data)
    for _ in range(2):  # a mail scanner opening the link twice changes nothing
        async with site.http.get(path) as resp:
            page = await resp.text()
            assert resp.status == 200 and "Confirm your subscription" in page
    assert site.store.get_subscriber(email="bob@example.org").status == UNSUBSCRIBED  # type: ignore[union-attr]
    async with site.http.post(path, data={"form": "forged"}) as resp:
        assert resp.status == 403
    async with site.http.post(
        path,
        data={"form": re.search(r'name="form" value="([^"]+)"', page).group(1)},  # type: ignore[union-attr]
        headers={"Sec-Fetch-Site": "cross-site"},
    ) as resp:
        assert resp.status == 403
    mac = re.search(r'name="form" value="([^"]+)"', page)
    assert mac
    async with site.http.post(path, data={"form": mac.group(1)}) as resp:
        done = await resp.text()
        assert resp.status == 200 and "You are subscribed" in done and 'href="../p/' in done
    bob = site.store.get_subscriber(email="bob@example.org")
    assert bob is not None and bob.status == ACTIVE and bob.sections == ("Sport",)
    assert site.store.suppression_reason("bob@example.org") is None


async def test_U7_a_confirmation_link_expires(site: Site) -> None:
    await sign_up(site, "late@example.org")
    await mail_count(site, 1)
    path = link_in(site.smtp.messages[0].data)
    async with site.http.get(path[:-2] + ("AA" if not path.endswith("AA") else "BB")) as resp:  # altered
        assert resp.status == 404 and "expired or does not work" in await resp.text()
    site.clock.now = NOW + timedelta(hours=47)
    async with site.http.get(path) as resp:
        assert resp.status == 200
    site.clock.now = NOW + timedelta(hours=49)  # [web] confirm_expiry is 48h
    async with site.http.get(path) as resp:
        assert resp.status == 404 and "expired or does not work" in await resp.text()
    async with site.http.post(path, data={"form": "x"}) as resp:
        assert resp.status == 404
    assert site.store.get_subscriber(email="late@example.org") is None


async def test_the_honeypot_the_form_signature_and_bad_input(site: Site) -> None:
    status, page = await sign_up(site, "bot@example.org", website="http://spam.example")
    assert status == 200 and "Check your inbox" in page
    status, _ = await sign_up(site, "not-an-address")
    assert status == 422
    status, _ = await sign_up(site, "nosections@example.org", sections=())
    assert status == 422
    async with site.http.post("/subscribe", data={"form": "x", "email": "a@example.org", "section": "World"}) as resp:
        assert resp.status == 403
    async with site.http.post(
        "/subscribe",
        data={**(await form(site)), "email": "c@example.org", "section": "World"},
        headers={"Sec-Fetch-Site": "cross-site"},
    ) as resp:
        assert resp.status == 403
    await asyncio.sleep(0.3)
    assert site.smtp.messages == []


@pytest.mark.parametrize(
    ("language", "error"), [("en", "Choose a time zone from the list."), ("ru", "Выберите часовой пояс из списка.")]
)
async def test_a_sign_up_in_a_zone_the_menu_does_not_offer_is_refused_on_the_page(
    tmp_path: Path, language: str, error: str
) -> None:
    """It was signed up in the site's zone without a word: an edition at 07:00 somebody else's time."""
    async for site in start(tmp_path, language=language):
        status, page = await sign_up(site, "mars@example.org", timezone="Mars/X")
        assert status == 422 and f'<p class="error" role="alert" id="form-error">{error}</p>' in page
        assert 'value="mars@example.org"' in page and '<option value="UTC" selected>' in page
        status, page = await sign_up(site, "far.east@example.org", timezone="Asia/Vladivostok")
        assert status == 200
        await mail_count(site, 1)
        assert [m.rcpt_tos for m in site.smtp.messages] == [("far.east@example.org",)]  # none to mars@
        assert (await confirm(site.http, link_in(site.smtp.messages[0].data)))[0] == 200
        sub = site.store.get_subscriber(email="far.east@example.org")
        assert sub is not None and sub.timezone == "Asia/Vladivostok"


async def test_the_global_hourly_cap_and_the_per_client_limit(tmp_path: Path) -> None:
    async for site in start(tmp_path, confirm_hourly_cap=2, signup_per_client=4):
        for i in range(4):
            status, page = await sign_up(site, f"reader{i}@example.org")
            assert status == 200 and "Check your inbox" in page
        status, _ = await sign_up(site, "reader9@example.org")
        assert status == 429  # the fifth post from this client in 10 minutes
        await mail_count(site, 2)
        await asyncio.sleep(0.3)
        assert len(site.smtp.messages) == 2  # the hourly cap held the other two back


async def post_from(site: Site, forwarded_for: str, email: str) -> int:
    """A sign-up post that our proxy on this host forwarded for `forwarded_for`: the status."""
    data = [*(await form(site)).items(), ("email", email), ("section", "World")]
    async with site.http.post("/subscribe", data=data, headers={"X-Forwarded-For": forwarded_for}) as resp:
        return resp.status


async def test_U9_an_ipv6_client_is_limited_by_its_64_not_by_each_address_it_posts_from(tmp_path: Path) -> None:
    """A client routed a /64 can post from 2**64 addresses: counted whole, each was a new client,
    and one machine could spend the hourly cap and lock everyone else out of the form."""
    async for site in start(tmp_path, signup_per_client=3):
        statuses = [await post_from(site, f"2001:db8:1:2::{n + 1:x}", f"six{n}@example.org") for n in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        assert await post_from(site, "2001:db8:1:3::1", "neighbour@example.org") == 200  # another /64
        # An IPv4 client is itself however a dual-stack listener or proxy spells it.
        spellings = ["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7", "::ffff:c633:6407"]
        assert [await post_from(site, a, f"four{n}@example.org") for n, a in enumerate(spellings)] == [200] * 3 + [429]


async def test_U9_a_forwarded_for_that_is_no_address_is_the_clients_own_word_and_not_believed(tmp_path: Path) -> None:
    """A proxy that passes its client's X-Forwarded-For on unchanged lets the client name itself: a
    new name each post was a new client each time (and a key of kilobytes held in memory)."""
    async for site in start(tmp_path, signup_per_client=3):
        statuses = [await post_from(site, f"client-{n}-{'x' * 2000}", f"named{n}@example.org") for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert (await sign_up(site, "direct@example.org"))[0] == 429  # counted as the proxy's own posts


async def test_U9_spellings_of_one_mailbox_share_its_confirmation_window(tmp_path: Path) -> None:
    """Subscription bombing: every "+tag", and every placing of dots in a Gmail address, is a new
    address to one inbox. Counted as written, each had a window of its own, and clients enough
    could send one inbox the whole hourly cap every hour."""
    async for site in start(tmp_path, signup_per_client=20):
        spellings = [
            "victim@gmail.com",
            "victim+1@gmail.com",
            "v.i.c.t.i.m@gmail.com",
            "Vic.Tim+news@googlemail.com",
            "ｖｉｃｔｉｍ@gmail.com",  # full-width letters: one mailbox once folded
        ]
        for n, address in enumerate(spellings):
            assert await post_from(site, f"198.51.100.{n + 1}", address) == 200
        assert await post_from(site, "198.51.100.9", "ann+list@example.org") == 200
        assert await post_from(site, "198.51.100.10", "ann.other@example.org") == 200  # dots count outside Gmail
        await mail_count(site, 3)
        await asyncio.sleep(0.5)
        rcpts = [m.rcpt_tos[0] for m in site.smtp.messages]
        # One confirmation to the inbox, under whichever spelling's work ran first: the answer comes
        # before the work (U8), so two sign-ups a moment apart may be worked in either order.
        victim = [r for r in rcpts if not r.endswith("@example.org")]
        assert sorted(set(rcpts) - set(victim)) == ["ann+list@example.org", "ann.other@example.org"]
        assert len(rcpts) == 3 and len(victim) == 1 and victim[0] in spellings, rcpts


async def test_U8_the_answer_comes_before_any_work_the_address_decides_so_its_time_tells_nothing(
    tmp_path: Path,
) -> None:
    """Whether a confirmation may go is a database write when it may and none when the window holds
    it back: answered after that, a sign-up took tens of milliseconds longer for an address sent no
    confirmation within the window. The answer now comes first; here it comes while another process
    holds the database's write lock, for an address in its window and a new one alike."""
    async for site in start(tmp_path):
        assert (await sign_up(site, "seen@example.org"))[0] == 200
        await mail_count(site, 1)
        with write_lock(tmp_path / "digest.sqlite"):
            for address in ("seen@example.org", "new@example.org"):
                status, page = await asyncio.wait_for(sign_up(site, address), 3)
                assert status == 200 and "Check your inbox" in page
            await asyncio.sleep(0.3)
            assert len(site.smtp.messages) == 1
        await mail_count(site, 2)
        await asyncio.sleep(0.3)
        assert [m.rcpt_tos[0] for m in site.smtp.messages] == ["seen@example.org", "new@example.org"]


async def test_L3_a_malformed_sign_up_or_confirmation_body_is_400_and_spends_nothing(tmp_path: Path) -> None:
    """The sign-up form and the confirmation page read their bodies as the subscriber forms do: a
    body no form reader can read (a charset Python does not know, bytes that are not UTF-8, broken
    multipart) is the client's fault, a 400 that changes nothing, not a 500 with a traceback in the
    operator's log. Before, both called aiohttp's reader directly and answered 500."""
    async for site in start(tmp_path, signup_per_client=20):
        status, _ = await sign_up(site, "new@example.org")
        assert status == 200
        await mail_count(site, 1)
        link = link_in(site.smtp.messages[0].data)
        for content_type, body in MALFORMED_FORMS:
            for path in ("/subscribe", link):
                async with site.http.post(path, data=body, headers={"Content-Type": content_type}) as resp:
                    page = await resp.text()
                    assert resp.status == 400 and "The form could not be read" in page, (path, content_type)
        await asyncio.sleep(0.3)
        assert len(site.smtp.messages) == 1 and site.store.get_subscriber(email="new@example.org") is None
        assert (await confirm(site.http, link))[0] == 200  # the link was not spent: it still confirms
        assert site.store.get_subscriber(email="new@example.org") is not None


async def test_H19_a_sign_up_body_that_never_arrives_is_408_and_the_connection_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends the sign-up form's headers and then a trickle of its body holds no
    connection past READ_TIMEOUT, as on the subscriber forms (tests/test_faults.py, H19)."""
    monkeypatch.setattr(web_app, "READ_TIMEOUT", 0.5)
    async for site in start(tmp_path):
        port = urlsplit(site.url).port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /subscribe HTTP/1.1\r\nHost: review\r\nContent-Length: 100\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nemail=a"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert site.smtp.messages == []


async def test_signup_off_means_no_page_and_no_link(tmp_path: Path) -> None:
    async for site in start(tmp_path, signup=False):
        async with site.http.get("/subscribe") as resp:
            assert resp.status == 404
        async with site.http.get("/") as resp:
            assert "/subscribe" not in await resp.text()


async def test_U7_a_replayed_confirmation_after_an_unsubscribe_changes_nothing(site: Site) -> None:
    await sign_up(site, "carol@example.org")
    await mail_count(site, 1)
    path = link_in(site.smtp.messages[0].data)
    async with site.http.get(path) as resp:
        mac = re.search(r'name="form" value="([^"]+)"', await resp.text())
    assert mac
    async with site.http.post(path, data={"form": mac.group(1)}) as resp:
        assert resp.status == 200
    async with site.http.post(path, data={"form": mac.group(1)}) as resp:  # pressed twice: still subscribed
        assert resp.status == 200 and "You are subscribed" in await resp.text()
    carol = site.store.get_subscriber(email="carol@example.org")
    assert carol is not None and carol.status == ACTIVE
    site.clock.now = NOW + timedelta(minutes=5)
    site.store.set_status(carol.id, UNSUBSCRIBED, now=site.clock.now)
    site.clock.now = NOW + timedelta(minutes=10)
    async with site.http.post(path, data={"form": mac.group(1)}) as resp:  # the old link, replayed
        assert resp.status == 404
    carol = site.store.get_subscriber(email="carol@example.org")
    assert carol is not None and carol.status == UNSUBSCRIBED
    assert site.store.suppression_reason("carol@example.org") is not None


async def test_U6_a_confirmation_token_does_not_unsubscribe_and_an_unsubscribe_token_does_not_confirm(
    site: Site,
) -> None:
    from digest import tokens

    await sign_up(site, "dave@example.org")
    await mail_count(site, 1)
    confirm_token = link_in(site.smtp.messages[0].data).rsplit("/", 1)[1]
    async with site.http.post(f"/u/{confirm_token}", data={"List-Unsubscribe": "One-Click"}) as resp:
        assert resp.status == 404
    alice = site.store.get_subscriber(email="alice@example.org")
    assert alice is not None
    unsubscribe = tokens.unsubscribe_token(site.store.site_secret(), alice.public_id)
    async with site.http.get(f"/confirm/{unsubscribe}") as resp:
        assert resp.status == 404
    assert site.store.get_subscriber(email="dave@example.org") is None


async def test_U8_the_answer_has_the_same_status_body_and_headers_for_every_address(site: Site) -> None:
    site.store.set_status(
        site.store.get_subscriber(email="bob@example.org").id,  # type: ignore[union-attr]
        UNSUBSCRIBED,
        now=NOW - timedelta(hours=1),
    )
    await sign_up(site, "pending@example.org")
    seen = set()
    for email in ("fresh@example.org", "pending@example.org", "alice@example.org", "bob@example.org"):
        data = [*(await form(site)).items(), ("email", email), ("section", "World")]
        async with site.http.post("/subscribe", data=data) as resp:
            headers = tuple(sorted((k, v) for k, v in resp.headers.items() if k.lower() != "date"))
            seen.add((resp.status, headers, await resp.text()))
    assert len(seen) == 1


async def test_U9_subscription_bombing_sends_one_confirmation_and_the_limiter_engages(tmp_path: Path) -> None:
    async for site in start(tmp_path, signup_per_client=20):
        # 500 sign-ups of one address from 500 clients (behind our proxy): one confirmation.
        for n in range(500):
            data = [*(await form(site)).items(), ("email", "victim@example.org"), ("section", "World")]
            async with site.http.post(
                "/subscribe", data=data, headers={"X-Forwarded-For": f"192.0.2.9, 198.51.{n // 250}.{n % 250}"}
            ) as resp:
                assert resp.status == 200
        # 500 sign-ups of different addresses from one client: the limiter stops it after 20.
        statuses = [(await sign_up(site, f"target{n}@example.org"))[0] for n in range(500)]
        assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}
        await mail_count(site, 21)
        await asyncio.sleep(0.5)
        rcpts = [m.rcpt_tos[0] for m in site.smtp.messages]
        assert rcpts.count("victim@example.org") == 1 and len(rcpts) == 21


async def test_a_sign_up_confirmed_after_its_section_was_renamed_keeps_it(tmp_path: Path) -> None:
    """The link was sent while the section was "World"; the operator renamed it to "International"
    ([[sections]] formerly) before the reader confirmed: they get International, not every section."""
    async for site in start(tmp_path):
        await sign_up(site, "new@example.org", sections=("World",))
        await mail_count(site, 1)
        path = link_in(site.smtp.messages[0].data)
    base = make_settings(tmp_path)
    renamed = dataclasses.replace(
        base,
        sections=tuple(
            dataclasses.replace(s, name="International", formerly=("World",)) if s.name == "World" else s
            for s in base.sections
        ),
    )
    store = open_store(renamed)
    runner = await start_web(renamed, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            status, page = await confirm(http, path)
            assert status == 200 and "You are subscribed" in page
        sub = store.get_subscriber(email="new@example.org")
        assert sub is not None and sub.sections == ("International",)
    finally:
        await runner.cleanup()
        store.close()


@pytest.mark.parametrize(
    ("language", "heading"),
    [("en", "The sections you chose no longer exist"), ("ru", "Выбранных вами разделов больше нет")],
)
async def test_a_sign_up_whose_sections_are_all_gone_subscribes_to_nothing(
    tmp_path: Path, language: str, heading: str
) -> None:
    """The reader chose only Sport; the operator dropped it (or renamed it without `formerly`)
    before they confirmed. They got every section (finding 3): a narrow opt-in made the widest."""
    async for site in start(tmp_path, language=language):
        await sign_up(site, "narrow@example.org", sections=("Sport",))
        await mail_count(site, 1)
        path = link_in(site.smtp.messages[0].data)
        without_sport = dataclasses.replace(
            site.settings, sections=tuple(s for s in site.settings.sections if s.name != "Sport")
        )
        runner = await start_web(without_sport, site.store, clock=site.clock, host="127.0.0.1", port=0)
        try:
            async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
                status, page = await confirm(http, path)
        finally:
            await runner.cleanup()
        assert status == 409 and heading in page, page
        assert site.store.get_subscriber(email="narrow@example.org") is None


async def confirmation_link(site: Site, email: str, *, sections: tuple[str, ...], timezone: str = "UTC") -> str:
    """Sign up and return the link of the confirmation that arrives."""
    before = len(site.smtp.messages)
    status, _ = await sign_up(site, email, sections=sections, timezone=timezone)
    assert status == 200
    await mail_count(site, before + 1)
    return link_in(site.smtp.messages[before].data)


async def test_a_spent_confirmation_link_leads_no_one_to_the_subscribers_preferences(site: Site) -> None:
    """A confirmation link forwarded or leaked after use (a shared mailbox, a proxy's log) showed
    whoever opened it the subscriber's address and a link to their preferences page."""
    link = await confirmation_link(site, "erin@example.org", sections=("World",))
    status, first = await confirm(site.http, link)
    assert status == 200 and "You are subscribed" in first and 'href="../p/' in first  # the subscriber's own click
    status, again = await confirm(site.http, link)
    assert status == 200 and "You are subscribed already" in again, again
    assert "The email we sent you has the link to your preferences." in again
    assert "/p/" not in again and "erin@example.org" not in again
    erin = site.store.get_subscriber(email="erin@example.org")
    assert erin is not None and erin.status == ACTIVE and erin.sections == ("World",)


async def test_U7_a_confirmation_link_is_spent_by_an_erasure_and_a_new_sign_up_still_comes_back(site: Site) -> None:
    """With the row erased (`digest subscribers remove`), the replay check had nothing to compare
    with: the used link subscribed the address again and lifted its suppression (finding 1)."""
    used = await confirmation_link(site, "carol@example.org", sections=("Sport",))
    assert (await confirm(site.http, used))[0] == 200
    site.clock.now = NOW + timedelta(minutes=61)  # past the per-address window: a second request
    unused = await confirmation_link(site, "carol@example.org", sections=("World",))
    site.clock.now = NOW + timedelta(minutes=70)
    assert site.store.remove_subscriber("carol@example.org", now=site.clock.now)  # at her request
    for link in (used, unused):  # both were issued before the erasure
        status, page = await confirm(site.http, link)
        assert status == 404 and "expired or does not work" in page
    assert site.store.get_subscriber(email="carol@example.org") is None
    assert site.store.suppression_reason("carol@example.org") == ("erased", site.clock.now)
    site.clock.now = NOW + timedelta(minutes=135)
    again = await confirmation_link(site, "carol@example.org", sections=("World",))  # she signs up anew
    status, page = await confirm(site.http, again)
    assert status == 200 and "You are subscribed" in page
    carol = site.store.get_subscriber(email="carol@example.org")
    assert carol is not None and (carol.status, carol.sections) == (ACTIVE, ("World",))
    await confirm(site.http, used)  # the first link once more: it changes nothing
    carol = site.store.get_subscriber(email="carol@example.org")
    assert carol is not None and (carol.status, carol.sections) == (ACTIVE, ("World",))


async def test_U7_two_sign_ups_confirmed_oldest_first_end_with_the_newer_choices(site: Site) -> None:
    """The newer request was dropped as a replay of the older one while the page said "You are
    subscribed" (finding 8). Single use needs only that a link is not applied twice and that no
    older request undoes a newer one: neither is a reason to refuse a newer request."""
    older = await confirmation_link(site, "dave@example.org", sections=("Sport",), timezone="Europe/Moscow")
    site.clock.now = NOW + timedelta(minutes=61)
    newer = await confirmation_link(site, "dave@example.org", sections=("World",), timezone="Asia/Tokyo")
    site.clock.now = NOW + timedelta(minutes=62)
    assert (await confirm(site.http, older))[0] == 200
    dave = site.store.get_subscriber(email="dave@example.org")
    assert dave is not None and (dave.sections, dave.timezone) == (("Sport",), "Europe/Moscow")
    site.clock.now = NOW + timedelta(minutes=63)
    status, page = await confirm(site.http, newer)
    assert status == 200 and "You are subscribed" in page
    for link in (older, newer):  # each used once; the older one never undoes the newer
        status, page = await confirm(site.http, link)
        assert status == 200 and "You are subscribed" in page
        dave = site.store.get_subscriber(email="dave@example.org")
        assert dave is not None and (dave.sections, dave.timezone) == (("World",), "Asia/Tokyo")


async def test_U7_a_row_changed_for_another_reason_still_takes_a_newer_confirmation(site: Site) -> None:
    """bob (listed in the config) signs up on the web for World; before he confirms, the operator
    edits his config entry's name. That change to the row made the confirmation a "replay"."""
    link = await confirmation_link(site, "bob@example.org", sections=("World",))
    renamed = [
        dataclasses.replace(s, name="Bob B.") if s.email == "bob@example.org" else s for s in site.settings.subscribers
    ]
    site.store.sync_subscribers(renamed, now=NOW + timedelta(minutes=1))
    bob = site.store.get_subscriber(email="bob@example.org")
    assert bob is not None and bob.name == "Bob B." and bob.sections == ("Sport",)
    site.clock.now = NOW + timedelta(minutes=2)
    assert (await confirm(site.http, link))[0] == 200
    bob = site.store.get_subscriber(email="bob@example.org")
    assert bob is not None and bob.sections == ("World",)


async def test_a_confirmation_link_carries_no_readable_address_and_a_tampered_one_reaches_nobody(site: Site) -> None:
    """A proxy's access log keeps URLs: the link must not give away who signed up (it was the
    address in base64), and a flipped bit, a cut or another site's key opens nothing (U4)."""
    import base64

    from digest import tokens

    link = await confirmation_link(site, "Zoe.Private@example.org", sections=("World",), timezone="Asia/Tokyo")
    token = link.rsplit("/", 1)[1]
    head = token.split(".")[0]  # a signed token's payload is its first part
    raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    for needle in ("Private", "example", "Tokyo", "World"):
        assert needle.encode() not in raw and needle not in token and needle.lower().encode() not in raw.lower()
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    other_site = tokens.signup_token("another site's secret", "eve@example.org", None, "UTC", issued=NOW)
    for bad in (flipped, token[:-3], token + "AA", other_site, "", "." + token):
        async with site.http.get(f"/confirm/{bad}") as resp:
            assert resp.status == 404, bad
    assert site.store.get_subscriber(email="eve@example.org") is None
    status, page = await confirm(site.http, link)
    assert status == 200 and "You are subscribed" in page
    sub = site.store.get_subscriber(email="Zoe.Private@example.org")
    assert sub is not None and sub.sections == ("World",) and sub.timezone == "Asia/Tokyo"


async def test_a_signed_confirmation_link_of_the_previous_release_still_confirms_until_it_expires(site: Site) -> None:
    """Links mailed before the upgrade (readable, signed with itsdangerous) keep working for
    `confirm_expiry`, then expire as any link does."""
    from itsdangerous import URLSafeSerializer

    from digest import tokens

    issued = int(site.clock.now.timestamp() * 1000)
    old = URLSafeSerializer(site.store.site_secret(), salt=tokens.SIGNUP_SALT).dumps(
        ["old.link@example.org", ["World"], "UTC", issued]
    )
    stale = URLSafeSerializer(site.store.site_secret(), salt=tokens.SIGNUP_SALT).dumps(
        ["stale.link@example.org", ["World"], "UTC", issued - 49 * 3600 * 1000]
    )
    async with site.http.get(f"/confirm/{stale}") as resp:
        assert resp.status == 404
    status, page = await confirm(site.http, f"/confirm/{old}")
    assert status == 200 and "You are subscribed" in page
    sub = site.store.get_subscriber(email="old.link@example.org")
    assert sub is not None and sub.status == ACTIVE and sub.sections == ("World",)


async def test_a_sign_up_keeps_the_address_as_written_and_another_spelling_is_the_same_subscription(
    site: Site,
) -> None:
    # RFC 5321 section 2.4: the local part may be case-sensitive (mailed as written), the domain is not.
    link = await confirmation_link(site, "Dana.Ross@Example.ORG", sections=("World",))
    assert site.smtp.messages[-1].rcpt_tos == ("Dana.Ross@example.org",)
    assert (await confirm(site.http, link))[0] == 200
    dana = site.store.get_subscriber(email="dana.ross@example.org")
    assert dana is not None and dana.email == "Dana.Ross@example.org"
    # Another spelling within the window is the same address: no second confirmation.
    assert (await sign_up(site, "dana.ross@example.org"))[0] == 200
    await asyncio.sleep(0.3)
    assert len(site.smtp.messages) == 1
    site.clock.now = NOW + timedelta(minutes=61)
    again = await confirmation_link(site, "DANA.ROSS@example.org", sections=("Sport",))
    assert (await confirm(site.http, again))[0] == 200
    danas = [s for s in site.store.list_subscribers() if s.email.lower() == "dana.ross@example.org"]
    assert [(s.id, s.email, s.sections) for s in danas] == [(dana.id, "Dana.Ross@example.org", ("Sport",))]
    # An address subscribed before (stored lower-cased) stays as it is when confirmed in capitals.
    alice = await confirmation_link(site, "Alice@example.org", sections=("Sport",))
    assert (await confirm(site.http, alice))[0] == 200
    assert [s.email for s in site.store.list_subscribers() if s.email.lower() == "alice@example.org"] == [
        "alice@example.org"
    ]
