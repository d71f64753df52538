"""VERP return paths and Feedback-ID: every message's envelope sender names its recipient, signed."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path

import pytest
from httpservers import FeedServer
from smtpservers import SmtpServer
from test_end_to_end import HARBOUR, SUMMIT, digest, parsed, write_config

from digest import bounces, tokens

SECRET = "verp-test-secret-0123456789"
PID = "0123456789abcdef0123456789abcdef"


def test_a_bounce_token_reads_back_and_any_change_breaks_it() -> None:
    token = tokens.bounce_token(SECRET, PID, 42)
    assert re.fullmatch(r"[0-9a-z-]+", token)
    assert len("bounce+" + token) <= 64  # RFC 5321: the longest local part
    assert tokens.read_bounce_token([SECRET], token) == (PID, 42)
    assert tokens.read_bounce_token([SECRET], token.upper()) == (PID, 42)  # a lower-casing MTA
    assert tokens.read_bounce_token(["old-secret", SECRET], token) == (PID, 42)  # rotation
    assert tokens.read_bounce_token(["another-secret"], token) is None
    assert tokens.read_bounce_token([SECRET], token.replace("-42-", "-43-", 1)) is None
    assert tokens.read_bounce_token([SECRET], "1" + token[1:]) is None
    assert tokens.read_bounce_token([SECRET], token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert tokens.read_bounce_token([SECRET], "") is None
    assert tokens.read_bounce_token([SECRET], "17-42") is None


def test_the_verp_address_is_what_the_bounce_parser_finds() -> None:
    address = tokens.verp_address(SECRET, PID, 9999999, "Bounces.Example.ORG.")
    assert len(address.partition("@")[0]) <= 64
    assert address.startswith("bounce+") and address.endswith("@bounces.example.org")
    raw = (Path(__file__).parent / "fixtures" / "bounces" / "qmail-5.1.1-no-mailbox.eml").read_bytes()
    found = bounces.parse_bytes(raw, envelope_to=address)
    assert found is not None and tokens.read_bounce_token([SECRET], found.token or "") == (PID, 9999999)


@pytest.mark.slow
async def test_each_message_goes_out_with_its_own_signed_return_path_and_a_feedback_id(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        urls = [feeds.serve("/harbour.xml", HARBOUR), feeds.serve("/summit.xml", SUMMIT)]
        config = write_config(tmp_path, feeds=urls, smtp_port=smtp.port)
        text = config.read_text(encoding="utf-8")
        text = text.replace("[fetch]", '[bounces]\ndomain = "bounces.review.example"\n\n[fetch]')
        text = text.replace('title = "Morning Review"', f'title = "Morning Review"\nsecret = "{SECRET}"')
        config.write_text(text, encoding="utf-8")
        assert (await digest(config, "poll"))[0] == 0
        code, out, err = await digest(config, "send")
        assert code == 0, err
        assert len(smtp.messages) == 2
        seen = set()
        for received in smtp.messages:
            local, _, domain = received.mail_from.partition("@")
            assert domain == "bounces.review.example" and local.startswith("bounce+")
            decoded = tokens.read_bounce_token([SECRET], local.removeprefix("bounce+"))
            assert decoded is not None
            seen.add(decoded[0])
            assert received.rcpt_tos[0] not in received.mail_from
            msg = parsed(received.data)
            feedback = str(msg["Feedback-ID"])
            assert re.fullmatch(r"\d+:\d{4}-\d\d-\d\d:edition:review\.example", feedback)
            assert parseaddr(str(msg["To"]))[1] not in feedback
        assert len(seen) == 2  # one return path per subscriber
