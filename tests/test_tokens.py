"""digest.tokens: signed unsubscribe/preference tokens and Message-IDs (reliability A8, G3, G4, U4-U6)."""

from __future__ import annotations

import re

import pytest

from digest import tokens
from digest.errors import ConfigError

SECRET = "site-secret-2026"
PID = "5f0e1d2c3b4a59687766554433221100"  # a public id: 32 hex
OTHER = "00112233445566778899aabbccddeeff"


def test_an_unsubscribe_token_reads_back_as_its_subscriber() -> None:
    for sub in ("0" * 32, "f" * 32, PID, "0123456789abcdef" * 2):
        token = tokens.unsubscribe_token(SECRET, sub)
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", token) and len(token) < 80  # URL-safe and short
        assert tokens.read_unsubscribe_token([SECRET], token) == sub
        assert tokens.read_preferences_token([SECRET], tokens.preferences_token(SECRET, sub)) == sub


def test_U4_tampered_tokens_all_read_as_none() -> None:
    good = tokens.unsubscribe_token(SECRET, PID)
    other = tokens.unsubscribe_token(SECRET, OTHER)
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    copied = other.split(".")[0] + "." + good.split(".")[1]  # another id with this signature
    for bad in (flipped, good[:-3], good[1:], "", ".", "MQ", copied, good + "x", "a" * 5000, "Nw.%%%"):
        assert tokens.read_unsubscribe_token([SECRET], bad) is None, bad
    assert tokens.read_unsubscribe_token(["another secret"], good) is None
    assert tokens.read_unsubscribe_token([], good) is None


def test_U6_a_token_for_one_purpose_is_refused_for_the_other() -> None:
    assert tokens.read_unsubscribe_token([SECRET], tokens.preferences_token(SECRET, PID)) is None
    assert tokens.read_preferences_token([SECRET], tokens.unsubscribe_token(SECRET, PID)) is None


def test_a_signed_value_that_is_not_a_subscriber_id_is_refused() -> None:
    from itsdangerous import URLSafeSerializer

    for value in (7, True, -1, [PID], None, 7.5, PID.upper(), PID + "0", "../" + PID[3:]):
        forged = URLSafeSerializer(SECRET, salt=tokens.UNSUBSCRIBE_SALT).dumps(value)
        assert tokens.read_unsubscribe_token([SECRET], forged) is None, value


def test_U5_tokens_signed_with_the_previous_secret_keep_working_after_rotation() -> None:
    old, new = "old-secret", "new-secret"
    issued_before = tokens.unsubscribe_token(old, PID)
    issued_after = tokens.unsubscribe_token(new, PID)
    assert tokens.read_unsubscribe_token([new, old], issued_before) == PID  # keys newest first
    assert tokens.read_unsubscribe_token([new, old], issued_after) == PID
    assert tokens.read_unsubscribe_token([new], issued_before) is None  # once the old key is retired
    assert issued_after != issued_before


def test_key_ring_is_newest_first_without_repeats() -> None:
    assert tokens.key_ring(["k2-newest-key-xx", "k1-older-key-xxx"], "configured", "generated") == (
        "k2-newest-key-xx",
        "k1-older-key-xxx",
        "configured",
        "generated",
    )
    assert tokens.key_ring([], None, "generated") == ("generated",)
    assert tokens.key_ring([], "generated", "generated") == ("generated",)


def test_tokens_of_the_release_before_public_ids_read_only_as_legacy() -> None:
    from itsdangerous import URLSafeSerializer

    old = URLSafeSerializer(SECRET, salt="unsubscribe-v1").dumps(7)  # what release-1 emails carry
    assert tokens.read_unsubscribe_token([SECRET], old) is None
    assert tokens.read_legacy_unsubscribe_token([SECRET], old) == 7
    assert tokens.read_legacy_preferences_token([SECRET], old) is None  # purposes stay apart
    assert tokens.read_legacy_unsubscribe_token([SECRET], tokens.unsubscribe_token(SECRET, PID)) is None


def test_A8_message_ids_are_stable_per_pair_and_unpredictable_without_the_secret() -> None:
    mid = tokens.message_id(SECRET, 42, 7, "news.example.org")
    assert re.fullmatch(r"<e42\.s7\.[0-9a-f]{20}@news\.example\.org>", mid)
    assert mid == tokens.message_id(SECRET, 42, 7, "news.example.org")
    others = {
        tokens.message_id(SECRET, 42, 8, "news.example.org"),
        tokens.message_id(SECRET, 43, 7, "news.example.org"),
        tokens.message_id("other", 42, 7, "news.example.org"),
    }
    assert mid not in others and len(others) == 3


def test_a_message_id_domain_is_our_own_and_punycoded() -> None:
    assert tokens.message_id(SECRET, 1, 1, "новости.рф").endswith("@xn--b1amnebsh.xn--p1ai>")
    # IDNA 2008, as the relay and DNS spell it: Python's IDNA 2003 codec wrote straße.de as "strasse.de"
    assert tokens.message_id(SECRET, 1, 1, "Presse.Straße.de.").endswith("@presse.xn--strae-oqa.de>")
    for bad in ("", "exa mple.org", "a>b", "example.org>\r\nBcc: x"):
        with pytest.raises(ConfigError):
            tokens.message_id(SECRET, 1, 1, bad)


def test_link_tokens_are_the_bytes_itsdangerous_makes() -> None:
    """The send path signs links without itsdangerous's zlib attempt (tokens._signed) when zlib could
    not shorten the payload; every token must still be exactly what itsdangerous makes, including
    for ids it compresses (repeated runs), which go through itsdangerous itself."""
    import random
    import uuid

    from itsdangerous import URLSafeSerializer

    rng = random.Random(12)
    ids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(3000)]
    ids += ["".join(rng.choice("0123456789abcdef"[: rng.randint(1, 4)]) for _ in range(32)) for _ in range(500)]
    ids += ["0" * 32, "0123456789abcdeffedcba9876543210"]
    signed_here = 0
    for key in ("k1", SECRET):
        for salt, make in (
            (tokens.UNSUBSCRIBE_SALT, tokens.unsubscribe_token),
            (tokens.PREFERENCES_SALT, tokens.preferences_token),
        ):
            mac = tokens._mac(key, salt)
            assert mac is not None
            for pid in ids:
                assert make(key, pid) == URLSafeSerializer(key, salt=salt).dumps(pid), pid
                signed_here += tokens._signed(mac, pid) is not None
    compressed = sum(URLSafeSerializer("k1", salt=tokens.UNSUBSCRIBE_SALT).dumps(pid).startswith(".") for pid in ids)
    print(f"{signed_here} of {4 * len(ids)} tokens signed without zlib; {compressed} ids itsdangerous compresses")
    assert compressed > 0  # the check covers the compressed form too
    assert signed_here > 2 * len(ids)  # most random ids take the short path
