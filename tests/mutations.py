"""Damage a document in a few seeded random ways, as real inputs arrive broken (tests/test_*_mutations.py)."""

from __future__ import annotations

import random


def damaged(body: bytes, inserts: tuple[bytes, ...], rng: random.Random, *, addresses: tuple[bytes, ...] = ()) -> bytes:
    """`body` with 1 to 6 of: a byte changed, a run deleted, one of `inserts` put in, the document
    cut short; and either a link written as no address after one of `addresses` (`<link>`,
    `href="`), or, when none are given, a run repeated."""
    out = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(out) + 1)
        kind = rng.random()
        if kind < 0.3 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind < 0.5:
            del out[at : at + rng.randint(1, 200)]
        elif kind < 0.75:
            out[at:at] = rng.choice(inserts)
        elif kind < 0.85:
            if addresses:
                opening = rng.choice(addresses)
                found = out.find(opening, at)
                if found >= 0:
                    out[found + len(opening) : found + len(opening)] = b"http://["
            else:
                out[at:at] = out[at : at + rng.randint(1, 300)] * rng.randint(2, 4)
        else:
            del out[at:]
    return bytes(out)
