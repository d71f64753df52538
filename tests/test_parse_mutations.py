"""parse_feed on damaged documents: whatever the bytes, digest's own code never raises (P6, C10).

Real feeds arrive truncated, with a byte flipped, a tag cut out, a stray "&" or "<![CDATA[".
Every corpus document (and this repository's fixtures) is damaged here in a few seeded random ways
and parsed. parse_feed may answer ParseError (not a feed), or feedparser may raise one of the
exceptions of `FEEDPARSER_BUGS` (its bugs on some malformed documents, which the parser pool reports
as that feed's error, tests/test_parsepool.py). Anything else loses a feed digest could read: an
exception in digest's own code (a link urlsplit refuses), or one feedparser raised on what parse
mends before it reads (surrogate references, an encoding declaration that names none). Seeded, so
a failure names its case.
"""

from __future__ import annotations

import random
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from conftest import corpus_dir
from mutations import damaged

from digest.errors import ParseError
from digest.parse import parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CASES = 3000
# What a damaged document may gain: markup and bytes publishers' documents really carry broken.
INSERTS = (
    b"<",
    b"&",
    b"]]>",
    b"<![CDATA[",
    b"\x00",
    b"\xff\xfe",
    b"\xe9",
    b"<item><title>x</title></item>",
    b"<entry>",
    b"&#x0;",
    b"&#55357;",
    b"<description>&lt;p&gt;",
    b"</channel>",
    b"<link>http://[",
    b'xml:base="http://[x/"',
)


# (exception, feedparser's module) of the feedparser 6.0 bugs left: a handler that finds no value it
# pushed (KeyError, TypeError on int(None)) and the strict parser's namespace split (ValueError).
FEEDPARSER_BUGS = frozenset(
    {
        ("KeyError", "util.py"),
        ("KeyError", "cc.py"),
        ("KeyError", "mixin.py"),
        ("TypeError", "_base.py"),
        ("TypeError", "psc.py"),
        ("ValueError", "strict.py"),
    }
)
# A link or a base written as no address, where a feed writes its addresses.
ADDRESSES = (b"<link>", b'href="', b'xml:base="')


def _documents() -> list[Path]:
    found = sorted(FIXTURES.iterdir())
    root = corpus_dir()
    if root is not None:
        found += sorted(p for p in (root / "feeds").rglob("*") if p.is_file() and p.stat().st_size < 400_000)
    return found


def test_no_damaged_document_raises_in_digests_own_code() -> None:
    documents = _documents()
    rng = random.Random(28)
    outcomes: Counter[str] = Counter()
    ours: list[str] = []
    for case in range(CASES):
        path = rng.choice(documents)
        body = damaged(path.read_bytes(), INSERTS, rng, addresses=ADDRESSES)
        content_type = rng.choice([None, "application/rss+xml", "text/xml; charset=koi8-r"])
        try:
            parse_feed(body, url="https://gazette.example/feed", content_type=content_type, now=NOW)
            outcomes["parsed"] += 1
        except ParseError:
            outcomes["not a feed"] += 1
        except Exception as exc:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = (type(exc).__name__, Path(last.filename).name)
            if "/feedparser/" in last.filename.replace("\\", "/") and where in FEEDPARSER_BUGS:
                outcomes[f"feedparser raised {where[0]}"] += 1
            else:
                ours.append(f"case {case} ({path.name}): {where[0]}: {exc} in {where[1]}, {last.name}")
    print(f"\n{CASES} damaged documents of {len(documents)}: {dict(outcomes)}")
    assert not ours, "\n".join(ours[:10])
