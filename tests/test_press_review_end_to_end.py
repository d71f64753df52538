"""The press review through the real CLI: press feeds over HTTP, `digest poll`, `digest send`, aiosmtpd.

Two outlets cover one story (our own words); the email's subject reads like an agency's, both parts
quote each outlet with its link, and a subscriber who chose only "Press Review" gets that section.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import SmtpServer
from test_end_to_end import digest, parsed, rss

KOMMERSANT = rss(
    "Kommersant",
    [
        (
            "Central bank raises key rate to 18 percent",
            "/economy/rate",
            "Economy",
            timedelta(hours=3),
            "The central bank raised its key rate to 18 percent on Friday. Banks expect loans to cost more.",
        ),
        (
            "Theatre festival opens in Kazan",
            "/culture/kazan",
            "Culture",
            timedelta(hours=4),
            "The festival opened with twelve productions from six countries.",
        ),
    ],
)
VEDOMOSTI = rss(
    "Vedomosti",
    [
        (
            "Central bank raises its key rate to 18 percent",
            "/finance/rate",
            "Economy",
            timedelta(hours=2),
            "Importers welcomed a stronger rouble after the decision. "
            "The central bank raised its key rate to 18 percent.",
        ),
    ],
)


def write_config(tmp: Path, *, kommersant: str, vedomosti: str, smtp_port: int) -> Path:
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "Europe/Moscow"
database = "sqlite:///{tmp / "digest.sqlite"}"
base_url = "https://review.example"
allow_private_addresses = true
subject = "lead"
top_stories = 0  # the rate story stays in its section, where the test reads its synopsis
language = "ru"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "review@review.example"

[[sections]]
name = "Economy"
categories = ["Economy"]

[[feeds]]
url = "{kommersant}"
name = "Kommersant"
press = true

[[feeds]]
url = "{vedomosti}"
name = "Vedomosti"
press = true
plural = true

[[subscribers]]
email = "editor@example.org"

[[subscribers]]
email = "press@example.org"
sections = ["Press Review"]
""",
        encoding="utf-8",
    )
    return config


async def test_press_feeds_give_a_press_review_with_quoted_synopses(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(
            tmp_path,
            kommersant=feeds.serve("/k.xml", KOMMERSANT),
            vedomosti=feeds.serve("/v.xml", VEDOMOSTI),
            smtp_port=smtp.port,
        )
        code, out, err = await digest(config, "poll")
        assert code == 0, err
        code, out, err = await digest(config, "send")
        assert code == 0, err
        assert "2 sent" in out
    by_rcpt = {m.rcpt_tos[0]: parsed(m.data) for m in smtp.messages}
    editor = by_rcpt["editor@example.org"]
    assert editor["Subject"] == (
        "Обзор прессы: Central bank raises key rate to 18 percent и Theatre festival opens in Kazan"
    )
    text = " ".join(editor.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    html = editor.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # The story in its section: each outlet quoted verbatim, Russian verbs agreeing with the outlet's number.
    assert "Kommersant [" in text and "пишет: The central bank raised its key rate to 18 percent on Friday." in text
    assert "добавляют: Importers welcomed a stronger rouble after the decision." in text
    assert 'href="https://kommersant.example/economy/rate"' in html and "Vedomosti</a></strong> добавляют:" in html
    # The Press Review section, outlet by outlet, under its name in the site's language (a shipped name).
    assert "Press Review" not in text and text.index("Обзор прессы (") < text.index("Economy (")
    press_only = by_rcpt["press@example.org"]
    press_text = " ".join(press_only.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert "Theatre festival opens in Kazan" in press_text and "Vedomosti [" in press_text
    assert "Economy (" not in press_text  # the subscriber chose only the Press Review section
