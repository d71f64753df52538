"""digest.message: template + subscriber -> SMTP-ready bytes (reliability A5-A11, E5, F1-F8)."""

from __future__ import annotations

import base64
import html
import os
import re
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from test_render import WEB_URL, item, rich_edition

from digest import message, render, tokens
from digest.errors import ConfigError
from digest.model import DayGroup, Edition, Rendered, SectionGroup, Story

GOLDEN = Path(__file__).parent / "golden"
DOMAIN = "news.example.org"
BASE = f"https://{DOMAIN}"
SECRET = "test-secret"


def pid(subscriber: int) -> str:
    """A stand-in public id for a subscriber number (links carry public ids, never row ids)."""
    return f"{subscriber:032x}"


WHEN = datetime(2026, 1, 16, 7, 0, tzinfo=UTC)
SINGLE = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Id",
    "List-Archive",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Content-Type",
)


def make_template(
    rendered: Rendered | None = None, *, sender_name: str | None = "Press Review"
) -> message.MessageTemplate:
    return message.build_template(
        rendered or render.Renderer().render(rich_edition()),
        sender=f"digest@{DOMAIN}",
        sender_name=sender_name,
        list_id=f"digest.{DOMAIN}",
        base_url=BASE,
    )


def personal(
    template: message.MessageTemplate,
    sub: int = 7,
    *,
    to_addr: str = "reader@example.com",
    to_name: str | None = "Reader",
    mailto: str | None = None,
) -> bytes:
    return message.personalise(
        template,
        to_addr=to_addr,
        to_name=to_name,
        message_id=tokens.message_id(SECRET, 42, sub, DOMAIN),
        date=WHEN,
        unsubscribe_url=f"{BASE}/u/{tokens.unsubscribe_token(SECRET, pid(sub))}",
        preferences_url=f"{BASE}/p/{tokens.preferences_token(SECRET, pid(sub))}",
        unsubscribe_mailto=mailto,
    )


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def raw_headers(raw: bytes) -> list[bytes]:
    """The header section as unfolded logical lines."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"\r\n[ \t]", b" ", head).split(b"\r\n")


def personalised(text: str, sub: int = 7) -> str:
    return text.replace(
        render.PLACEHOLDER_UNSUBSCRIBE_URL, f"{BASE}/u/{tokens.unsubscribe_token(SECRET, pid(sub))}"
    ).replace(render.PLACEHOLDER_PREFERENCES_URL, f"{BASE}/p/{tokens.preferences_token(SECRET, pid(sub))}")


def test_a_personalised_message_matches_the_golden_file() -> None:
    raw = personal(make_template(), mailto=f"unsubscribe@{DOMAIN}")
    path = GOLDEN / "message.eml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_bytes(raw)
    assert path.read_bytes() == raw, "message.eml changed; rerun with UPDATE_GOLDEN=1 if intended"


# --------------------------------------------------------------------------- F1, F2


def test_F1_many_generated_messages_have_exactly_one_of_each_header() -> None:
    # 1,000 rather than reliability.md's 10,000: policy.default parses ~2 ms of headers per message.
    template = make_template(Rendered("Press Review — January 16, 2026", "<p>x</p>", "x\n"))
    names = ["Reader", None, "Иван Петров", "O'Brien, Jr.", "😀 فاطمة", 'Quote " and \\ slash', "x" * 200]
    ids = set()
    for sub in range(1_000):
        raw = personal(template, sub, to_addr=f"user{sub}@example.com", to_name=names[sub % len(names)])
        msg = parse(raw)
        for name in SINGLE:
            assert len(msg.get_all(name) or []) == 1, (sub, name)
        assert msg["To"].addresses[0].addr_spec == f"user{sub}@example.com"
        assert msg.defects == [] and all(not part.defects for part in msg.walk())
        ids.add(msg["Message-ID"])
    assert len(ids) == 1_000 and all(i.endswith(f"@{DOMAIN}>") for i in ids)


def test_F2_multipart_alternative_text_first_html_last_decoding_to_the_rendered_parts() -> None:
    rendered = render.Renderer().render(rich_edition())
    msg = parse(personal(make_template(rendered)))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8" and part["Content-Transfer-Encoding"] == "quoted-printable"
    # The parser keeps the wire's CRLF line ends in decoded text.
    assert parts[0].get_content().replace("\r\n", "\n") == personalised(rendered.text)
    assert parts[1].get_content().replace("\r\n", "\n") == personalised(rendered.html)
    assert msg["Subject"] == rendered.subject  # folded on the wire, one line again when read
    assert rendered.subject.startswith("Press Review — January 16, 2026: Central bank raises")


# --------------------------------------------------------------------------- F3 line length


def test_F3_a_5000_character_url_and_a_one_line_html_keep_every_line_under_998_octets() -> None:
    long_url = "https://example.org/" + "a1-é%2F" * 700
    long_url = long_url[:5000]
    story = Story(lead=item(1, "Long link", url=long_url))
    edition = Edition(
        title="Press Review",
        day=date(2026, 1, 16),
        timezone="UTC",
        web_url=WEB_URL,
        sections=(
            SectionGroup(
                name="World", anchor="s-world", days=(DayGroup(date(2026, 1, 16), (story,)),), total=1, shown=1
            ),
        ),
    )
    rendered = render.Renderer().render(edition)
    one_line_html = rendered.html.replace("\n", " ")  # as if the template were minified to one line
    assert one_line_html.count("\n") == 0 and len(one_line_html) > 5_000
    raw = personal(make_template(Rendered(rendered.subject, one_line_html, rendered.text, rendered.preheader)))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")  # CRLF only
    text, html_part = (p.get_content() for p in parse(raw).iter_parts())
    assert long_url in text and f'href="{html.escape(long_url)}"' in html_part


# --------------------------------------------------------------------------- F4 unsubscribe headers


def test_F4_list_unsubscribe_has_one_https_uri_and_the_one_click_post_header() -> None:
    template = make_template()
    for mailto in (None, f"unsubscribe@{DOMAIN}", f"mailto:unsubscribe@{DOMAIN}?subject=stop"):
        raw = personal(template, mailto=mailto)
        msg = parse(raw)
        value = msg["List-Unsubscribe"]
        uris = re.findall(r"<([^>]*)>", value)
        assert [u for u in uris if u.startswith("https:")] == [f"{BASE}/u/{tokens.unsubscribe_token(SECRET, pid(7))}"]
        assert re.fullmatch(r"<[^<>]+>(, <[^<>]+>)?", value)
        assert uris[0].startswith("https:")  # the preferred one first
        if mailto:
            assert uris[1].startswith(f"mailto:unsubscribe@{DOMAIN}?subject=")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # A6: both on one physical line each (folding has broken DKIM in practice).
        lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert any(line.startswith(b"List-Unsubscribe: <https://") and line.endswith(b">") for line in lines)
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines


def test_a_url_that_could_break_the_header_is_refused() -> None:
    template = make_template()
    for bad in (f"{BASE}/u/x>\r\nBcc: victim@example.com", f"{BASE}/u/a b", "javascript:alert(1)"):
        with pytest.raises(ConfigError):
            message.personalise(
                template,
                to_addr="a@example.com",
                to_name=None,
                message_id=tokens.message_id(SECRET, 1, 1, DOMAIN),
                date=WHEN,
                unsubscribe_url=bad,
                preferences_url=f"{BASE}/p/x",
            )


# --------------------------------------------------------------------------- F5, F6 header text


@pytest.mark.parametrize(
    "evil",
    [
        "Title\r\nBcc: victim@example.com",
        "Title\rBcc: victim@example.com",
        "Title\nBcc: victim@example.com",
        "Title\x00Bcc: victim@example.com",
        "Title\x85Bcc: victim@example.com",
        "Title\u2028Bcc: victim@example.com",
        "Title\u2029\r\n\r\n<html>body</html>",
    ],
)
def test_F5_a_hostile_title_gives_a_single_line_subject_and_no_new_header(evil: str) -> None:
    rendered = render.Renderer().render(
        Edition(title=evil, day=date(2026, 1, 16), timezone="UTC", sections=rich_edition().sections, web_url=WEB_URL)
    )
    template = message.build_template(
        Rendered(evil + " — x", rendered.html, rendered.text),
        sender=f"digest@{DOMAIN}",
        sender_name=evil,
        list_id=f"digest.{DOMAIN}",
        base_url=BASE,
    )
    raw = personal(template, to_name=evil)
    msg = parse(raw)
    assert msg.get_all("Bcc") is None
    names = [line.split(b":", 1)[0] for line in raw_headers(raw)]
    assert sorted(names) == sorted(n.encode() for n in SINGLE)
    for name in ("Subject", "From", "To"):
        assert "\n" not in str(msg[name]) and "\r" not in str(msg[name])
    # The would-be header is now just words in the one-line subject.
    assert msg["Subject"].startswith("Title ")
    assert "Bcc: victim@example.com" in msg["Subject"] or "<html>body</html>" in msg["Subject"]
    assert msg["To"].addresses[0].addr_spec == "reader@example.com"


def test_F6_emoji_rtl_and_a_300_character_subject_and_name_round_trip() -> None:
    title = "📰 Обзор прессы — שלום עולם — مرحبا " + "долгий заголовок " * 17
    title = title[:300]
    name, to_name = "Редакция 📰 עיתון", "Получатель 😀 قارئ"
    rendered = Rendered(subject=title, html="<p>x</p>", text="x\n")
    raw = personal(
        message.build_template(
            rendered, sender=f"digest@{DOMAIN}", sender_name=name, list_id=f"digest.{DOMAIN}", base_url=BASE
        ),
        to_name=to_name,
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head  # RFC 2047 encoded words
    # Folded near 78 columns (CPython's folder may leave one extra space before an encoded word).
    assert max(len(line) for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe:")) <= 80
    assert head.count(b"\r\n =?utf-8?") >= 5
    msg = parse(raw)
    assert msg["Subject"] == message.one_line(title, limit=message.SUBJECT_CHARS) == " ".join(title.split())
    assert display_name(raw, "From") == name and display_name(raw, "To") == to_name
    assert msg["From"].addresses[0].addr_spec == f"digest@{DOMAIN}"


def display_name(raw: bytes, header: str) -> str:
    """Decode a display name as RFC 2047 6.2 says: whitespace between adjacent encoded words is dropped.

    (policy.default's address parser keeps it, so a folded long name would gain spaces there.)
    """
    name, _ = parseaddr(message_from_bytes(raw, policy=policy.compat32)[header])
    return str(make_header(decode_header(name)))


def test_long_non_ascii_display_names_round_trip() -> None:
    template = make_template(sender_name="Редакция " * 20)
    for to_name in ("Иван Петров-Водкин " * 8, 'O\'Brien, "Jr" — שלום ' * 6, "😀" * 100):
        raw = personal(template, to_name=to_name)
        assert display_name(raw, "To") == message.one_line(to_name, limit=message.NAME_CHARS)
        assert display_name(raw, "From") == message.one_line("Редакция " * 20, limit=message.NAME_CHARS)
        assert max(len(line) for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 998


def test_a_non_ascii_recipient_domain_is_sent_as_punycode() -> None:
    msg = parse(personal(make_template(), to_addr="reader@пример.рф"))
    assert msg["To"].addresses[0].domain == "xn--e1afmkfd.xn--p1ai"


def test_an_idn_domain_in_to_and_from_is_the_idna_2008_a_label_the_envelope_carries_too() -> None:
    # Python's "idna" codec is IDNA 2003 and would write straße.de as another domain, strasse.de.
    template = message.build_template(
        render.Renderer().render(rich_edition()),
        sender="digest@straße.de",
        sender_name="Press Review",
        list_id=f"digest.{DOMAIN}",
        base_url=BASE,
    )
    raw = personal(template, to_addr="leser@straße.de")
    msg = parse(raw)
    assert msg["To"].addresses[0].addr_spec == "leser@xn--strae-oqa.de"
    assert msg["From"].addresses[0].addr_spec == "digest@xn--strae-oqa.de"
    assert raw.isascii()
    # a non-ASCII local part still needs SMTPUTF8 (RFC 6532), but its domain is the A-label as well
    utf8 = message_from_bytes(personal(template, to_addr="jörg@straße.de"), policy=policy.SMTPUTF8)
    assert str(utf8["To"]).encode("utf-8", "surrogateescape") == "Reader <jörg@xn--strae-oqa.de>".encode()


# --------------------------------------------------------------------------- F7, F8


def test_F7_the_same_subscriber_token_is_in_the_html_the_text_and_the_header() -> None:
    msg = parse(personal(make_template(), 7))
    token = tokens.unsubscribe_token(SECRET, pid(7))
    text, html_part = (p.get_content() for p in msg.iter_parts())
    assert f"Unsubscribe: {BASE}/u/{token}" in text
    assert re.search(rf'<a href="{re.escape(BASE)}/u/{re.escape(token)}"[^>]*>Unsubscribe</a>', html_part)
    assert msg["List-Unsubscribe"] == f"<{BASE}/u/{token}>"
    assert tokens.read_unsubscribe_token([SECRET], token) == pid(7)
    prefs = tokens.preferences_token(SECRET, pid(7))
    assert f"{BASE}/p/{prefs}" in text and f'href="{BASE}/p/{prefs}"' in html_part
    assert tokens.unsubscribe_token(SECRET, pid(8)) not in text + html_part


def test_F8_the_message_id_is_stable_per_subscriber_and_differs_between_them() -> None:
    template = make_template()
    first, again, other = (parse(personal(template, s))["Message-ID"] for s in (7, 7, 8))
    assert first == again != other
    assert first == tokens.message_id(SECRET, 42, 7, DOMAIN) != tokens.message_id("another secret", 42, 7, DOMAIN)


def test_only_the_personal_parts_differ_between_two_subscribers() -> None:
    template = make_template()
    a, b = personal(template, 1, to_addr="a@example.com"), personal(template, 2, to_addr="b@example.com")
    diff = [(x, y) for x, y in zip(a.split(b"\r\n"), b.split(b"\r\n"), strict=True) if x != y]
    allowed = (b"To:", b"Message-ID:", b"List-Unsubscribe:", b"https://news.example.org/")
    assert diff and all(x.startswith(allowed) for x, _ in diff), diff


# --------------------------------------------------------------------------- DKIM


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_a_dkim_signature_verifies_and_covers_both_list_unsubscribe_headers(dkim_key: tuple[bytes, bytes]) -> None:
    private, txt = dkim_key
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return txt if name == b"mail._domainkey.news.example.org." else b""

    raw = personal(make_template(), mailto=f"unsubscribe@{DOMAIN}")
    signed = message.sign_dkim(raw, domain=DOMAIN, selector="mail", private_key=private)
    assert signed.endswith(raw) and signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=dns)
    assert looked_up == [b"mail._domainkey.news.example.org."]
    sig = parse(signed)["DKIM-Signature"].replace(" ", "")
    covered = re.search(r"h=([^;]+)", sig)
    assert covered and {
        "list-unsubscribe",
        "list-unsubscribe-post",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
    } <= set(covered.group(1).lower().split(":"))
    tampered = signed.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <https://evil.")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_bad_dkim_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DKIM"):
        message.sign_dkim(personal(make_template()), domain=DOMAIN, selector="mail", private_key=b"not a key")
