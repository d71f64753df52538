"""Bounce and complaint classification on real-world formats (tests/fixtures/bounces/labels.tsv)."""

from __future__ import annotations

import email
import re
from pathlib import Path

import pytest

from digest import bounces

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"


def _labels() -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for line in (FIXTURES / "labels.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, kind, status, recipient, token, fmt = line.split("\t")
        rows.append((name, kind, status, recipient, token, fmt))
    return rows


LABELS = _labels()


def _classify(name: str) -> bounces.Bounce | None:
    return bounces.parse_bytes((FIXTURES / name).read_bytes())


def test_the_fixture_set_covers_the_formats_and_both_status_classes() -> None:
    formats = {fmt for *_, fmt in LABELS}
    assert {"postfix", "exim", "exchange", "gmail", "yahoo", "outlookcom", "qmail"} <= formats
    bounced = [row for row in LABELS if row[1] != "none"]
    assert len(bounced) >= 40
    assert sum(1 for row in bounced if row[2].startswith("4.")) >= 8
    assert sum(1 for row in bounced if row[2].startswith("5.")) >= 20
    assert sum(1 for row in bounced if row[1] == "complaint") >= 4
    assert {p.name for p in FIXTURES.glob("*.eml")} == {row[0] for row in LABELS}


def test_classification_accuracy_is_at_least_95_percent_and_no_4xx_is_hard() -> None:
    right = 0
    wrong: list[str] = []
    for name, kind, status, _recipient, _token, _fmt in LABELS:
        found = _classify(name)
        got = found.kind if found else "none"
        if got == kind:
            right += 1
        else:
            wrong.append(f"{name}: expected {kind}, got {got} ({found})")
        if status.startswith("4.") or (found and found.status and found.status.startswith("4.")):
            assert got != "hard", f"{name}: a 4.x.x was taken as hard"
    accuracy = right / len(LABELS)
    print(f"\nbounce classification: {right}/{len(LABELS)} right, accuracy {accuracy:.1%}")
    for line in wrong:
        print("  wrong:", line)
    assert accuracy >= 0.95


@pytest.mark.parametrize("row", [r for r in LABELS if r[1] != "none"], ids=lambda r: r[0])
def test_each_bounce_names_its_token_and_recipient(row: tuple[str, ...]) -> None:
    name, _kind, status, recipient, token, _fmt = row
    found = _classify(name)
    assert found is not None
    assert found.token == token
    if found.kind != "complaint" and status != "-":
        assert found.status == status
    if recipient != "-" and found.recipient is not None:
        assert found.recipient.lower() == recipient.lower()


def test_the_envelope_recipient_beats_the_headers() -> None:
    raw = (FIXTURES / "postfix-5.1.1-user-unknown.eml").read_bytes()
    found = bounces.parse_bytes(
        raw, envelope_to="bounce+00ff00ff00ff00ff00ff00ff00ff00ff-1-00ff00ff00ff@bounces.example.org"
    )
    assert found is not None and found.token == "00ff00ff00ff00ff00ff00ff00ff00ff-1-00ff00ff00ff"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("5.1.1", "hard"),
        ("5.1.10", "hard"),
        ("5.2.1", "hard"),
        ("5.4.4", "hard"),
        ("5.0.0", "hard"),
        ("5.2.2", "soft"),
        ("5.7.1", "soft"),
        ("5.3.4", "soft"),
        ("4.4.1", "soft"),
        ("4.1.1", "soft"),
        ("2.0.0", None),
        ("9.9.9", None),
        ("hello", None),
    ],
)
def test_status_classes(status: str, kind: str | None) -> None:
    assert bounces.classify_status(status) == kind


def test_a_report_without_any_failure_is_not_a_bounce() -> None:
    msg = email.message_from_string("From: someone@example.org\nSubject: hello\n\nJust a note.\n")
    assert bounces.parse(msg) is None


# What a receiving system may write into a bounce that flufl.bounce's detectors cannot read.
ODD_SENDERS = {
    # Raw UTF-8 in the From header (the email package gives it as a Header, not a str): its sina
    # detector called .lower() on it and raised.
    "8-bit display name": "From: Système de messagerie <MAILER-DAEMON@mail.qmail-host.example>".encode(),
    # An empty From, or none (its yale detector indexed the empty list of its addresses and raised).
    "empty": b"From: ",
    "none": b"",
}


@pytest.mark.parametrize("header", ODD_SENDERS.values(), ids=ODD_SENDERS.keys())
def test_a_detector_that_raises_on_a_senders_header_does_not_lose_the_bounce(header: bytes) -> None:
    """flufl.bounce runs its detectors in turn, and the first that raises stops them all; the
    message is read again with its headers as text, and the qmail detector still finds the failure.
    Before, the exception went up to `digest bounces` and the bounce was lost (over IMAP, every
    fetch stopped at it)."""
    raw = (FIXTURES / "qmail-5.1.1-no-mailbox.eml").read_bytes()
    odd = re.sub(rb"(?m)^From: MAILER-DAEMON.*$", header, raw, count=1)
    assert odd != raw
    found = bounces.parse_bytes(odd)
    assert found is not None
    assert (found.kind, found.status, found.recipient, found.method) == (
        "hard",
        "5.1.1",
        "fedor@qmail-host.example",
        "fallback",
    )


@pytest.mark.parametrize("charset", ["no-such-charset", "utf\x008"])
def test_a_text_part_in_a_charset_python_does_not_know_is_read_as_utf_8(charset: str) -> None:
    raw = (FIXTURES / "qmail-5.1.1-no-mailbox.eml").read_bytes()
    odd = re.sub(rb"(?mi)^Content-Type: text/plain.*$", f'Content-Type: text/plain; charset="{charset}"'.encode(), raw)
    assert odd != raw
    found = bounces.parse_bytes(odd)
    assert found is not None and (found.kind, found.status) == ("hard", "5.1.1")


def test_a_diagnostic_with_control_characters_is_one_clean_line() -> None:
    """The remote server's words are stored (bounces.diagnostic) and printed: a NUL in them, which
    PostgreSQL refuses in text, failed the bounce's record there; control characters are spaces."""
    raw = (FIXTURES / "postfix-5.1.1-user-unknown.eml").read_bytes()
    odd = raw.replace(b"Recipient address rejected:", b"Recipient\x00address\trejected:\x1b[31m")
    assert odd != raw
    found = bounces.parse_bytes(odd)
    assert found is not None and found.kind == "hard"
    assert "Recipient address rejected: [31m User unknown" in found.diagnostic
    assert not any(ord(ch) < 32 for ch in found.diagnostic)
