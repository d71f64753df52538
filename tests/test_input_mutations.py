"""Bounces, subscriber CSVs and OPML files, damaged: each is read or refused in one line, never a traceback.

What comes back from the world is often broken: a bounce an MTA wrote with raw 8-bit headers or no
From, a report cut short, a CSV a spreadsheet saved with a lone CR at each line's end, an OPML file
with folders nested deeper than anyone meant. Each fixture and example here is damaged in a few
seeded random ways and read:

* `bounces.parse_bytes` gives a Bounce or None (not a bounce); it raises nothing. (MIME nested
  thousands deep still exhausts the email package's recursion: `intake` counts such a message as
  unreadable, tests/test_bounces_end_to_end.py, B18.)
* `roster.read_csv` gives rows or a SubscriberError (one line and a hint);
* `opml.parse_opml` gives feeds or a FeedError.

Each seeded, so a failure names its case; the outcomes are printed. Before session 29 the bounce
cases raised in flufl.bounce's detectors and the CSV cases in the csv module.
"""

from __future__ import annotations

import random
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mutations import damaged

from digest import bounces, opml, roster
from digest.errors import FeedError, SubscriberError

BOUNCES = sorted((Path(__file__).parent / "fixtures" / "bounces").glob("*.eml"))
CASES = 2000

# What a damaged message may gain: the parts of bounces that receiving systems write broken.
BOUNCE_INSERTS = (
    b"\r\n",
    b"\n\n",
    b"--",
    b"=?utf-8?b?",
    b"?=",
    b"\xff",
    b"\x00",
    b"From: \r\n",
    "From: Système <MAILER-DAEMON@x.example>\r\n".encode(),
    b"Content-Type: message/delivery-status\r\n",
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n',
    b'Content-Type: text/plain; charset="no-such-charset"\r\n',
    b"Content-Transfer-Encoding: base64\r\n",
    b"Final-Recipient: rfc822;",
    b"Status: 9.9.9.9\r\n",
    b"Action: failed\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/feedback-report\r\n",
)
CSV = (
    b"email,name,sections,timezone\r\n"
    b'alice@example.org,"Smith, Alice",World;Sport,Europe/Moscow\r\n'
    b"bob@example.org,Bob,,\r\n"
)
CSV_INSERTS = (b"\r", b"\n", b'"', b",", b"\x00", b";", b"|", b'"a\rb"', b"\xef\xbb\xbf")
OPML = (
    b'<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
    b'<outline text="World"><outline type="rss" text="A" xmlUrl="https://a.example/rss"/></outline>'
    b'<outline text="B" xmlUrl="http://b.example/feed" category="/Sport,/x"/></body></opml>'
)
OPML_INSERTS = (
    b"<outline>",
    b"</outline>",
    b'<outline text="F">' * 2000 + b'<outline xmlUrl="https://deep.example/rss"/>' + b"</outline>" * 2000,
    b"&",
    b"<",
    b'xmlUrl=""',
    b"\x00",
)


def _raised(exc: Exception) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} in {Path(last.filename).name}, {last.name}"


def _check(name: str, seed: int, make: Callable[[random.Random], bytes], read: Callable[[bytes], str]) -> None:
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    raised: list[str] = []
    for case in range(CASES):
        body = make(rng)
        try:
            outcomes[read(body)] += 1
        except Exception as exc:
            raised.append(f"case {case}: {_raised(exc)}")
    print(f"\n{CASES} damaged {name}: {dict(outcomes)}")
    assert not raised, "\n".join(raised[:10])


def test_a_damaged_bounce_is_read_or_is_not_a_bounce_and_never_raises() -> None:
    def read(raw: bytes) -> str:
        found = bounces.parse_bytes(raw, envelope_to=None)
        return "not a bounce" if found is None else f"{found.kind} ({found.method})"

    _check(
        f"bounces of {len(BOUNCES)}",
        29,
        lambda rng: damaged(rng.choice(BOUNCES).read_bytes(), BOUNCE_INSERTS, rng),
        read,
    )


def test_a_damaged_subscriber_csv_is_read_or_refused_in_one_line() -> None:
    def read(data: bytes) -> str:
        try:
            return "read" if roster.read_csv(data.decode("utf-8", "replace")) else "no rows"
        except SubscriberError as exc:
            assert "\n" not in exc.message and exc.hint
            return "refused"

    _check("CSV files", 29, lambda rng: damaged(CSV, CSV_INSERTS, rng), read)


def test_a_damaged_opml_file_is_read_or_refused_in_one_line() -> None:
    def read(data: bytes) -> str:
        try:
            return "read" if opml.parse_opml(data) else "no feeds"
        except FeedError as exc:
            assert "\n" not in exc.message
            return "refused"

    _check("OPML files", 29, lambda rng: damaged(OPML, OPML_INSERTS, rng), read)
