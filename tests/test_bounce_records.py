"""Recording bounces and complaints (both backends): once per outcome, hard and complaint suppress
at once, soft ones add up with decay, unverified tokens change nothing and are counted; and
`intake` from raw bytes through the parser and the token check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest import config as cfg
from digest import tokens
from digest.pipeline.bounces import NOT_A_BOUNCE, intake
from digest.store import ACTIVE, SUSPENDED, Store
from digest.store.bounces import DUPLICATE, RECORDED, SUPPRESSED, UNVERIFIED, decayed

NOW = datetime(2026, 1, 16, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
FIXTURES = Path(__file__).parent / "fixtures" / "bounces"


def record(store: Store, subscriber_id: int | None, kind: str, *, key: str, at: datetime = NOW) -> str:
    return store.record_bounce(
        dedupe=key,
        subscriber_id=subscriber_id,
        edition_id=1,
        kind=kind,
        status="5.1.1",
        diagnostic="550 5.1.1 no such user",
        via="file",
        now=at,
        threshold=3.0,
        half_life=WEEK,
    )


def add(store: Store, email: str) -> int:
    return store.add_subscriber(email, name=None, sections=None, timezone=None, now=NOW).id


def status(store: Store, subscriber_id: int) -> str:
    sub = store.get_subscriber(id=subscriber_id)
    assert sub is not None
    return sub.status


def test_a_hard_bounce_suppresses_at_once_and_counts_once(store: Store) -> None:
    a = add(store, "a@example.org")
    assert record(store, a, "hard", key="k1") == SUPPRESSED
    assert record(store, a, "hard", key="k1") == DUPLICATE
    assert status(store, a) == SUSPENDED and store.suppression_reason("a@example.org") is not None
    reason = store.suppression_reason("A@example.org ")
    assert reason is not None and reason[0] == "bounced"
    assert store.bounce_summary().by_kind == {"hard": 1}


def test_a_complaint_suppresses_at_once(store: Store) -> None:
    a = add(store, "a@example.org")
    assert record(store, a, "complaint", key="c1") == SUPPRESSED
    assert status(store, a) == SUSPENDED
    reason = store.suppression_reason("a@example.org")
    assert reason is not None and reason[0] == "complained"


def test_soft_bounces_add_up_to_the_threshold_and_decay_with_time(store: Store) -> None:
    a, b = add(store, "a@example.org"), add(store, "b@example.org")
    # a: soft bounces an hour apart barely decay: 1, 2.0, 2.99, then 3.98 passes the threshold of 3.
    assert [record(store, a, "soft", key=f"a{i}", at=NOW + timedelta(hours=i)) for i in range(4)] == [
        RECORDED,
        RECORDED,
        RECORDED,
        SUPPRESSED,
    ]
    assert status(store, a) == SUSPENDED
    # b: one soft bounce a week for a year never gets there: each one halves before the next.
    for week in range(52):
        assert record(store, b, "soft", key=f"b{week}", at=NOW + week * WEEK) == RECORDED
    assert status(store, b) == ACTIVE and store.suppression_reason("b@example.org") is None
    assert abs(decayed(2.0, NOW, NOW + WEEK, WEEK) - 1.0) < 1e-9


def test_an_unverified_report_changes_nothing_and_is_counted_once(store: Store) -> None:
    a = add(store, "a@example.org")
    assert record(store, None, "hard", key="u1") == UNVERIFIED
    assert record(store, None, "hard", key="u1") == DUPLICATE
    assert status(store, a) == ACTIVE
    summary = store.bounce_summary()
    assert (summary.by_kind, summary.unverified) == ({}, 1)


def test_bounces_go_with_the_subscriber_they_belong_to(store: Store) -> None:
    a = add(store, "a@example.org")
    record(store, a, "soft", key="s1")
    assert store.last_bounce(a) is not None
    assert store.remove_subscriber("a@example.org")
    assert store.bounce_summary().by_kind == {}


def _settings(tmp_path: Path) -> cfg.Settings:
    return cfg.from_mapping(
        {
            "digest": {"database": f"sqlite:///{tmp_path / 'd.sqlite'}", "secret": "s3cret-key"},
            "bounces": {"domain": "bounces.example.org"},
        },
        env={},
    )


def test_U12_U13_a_dsn_for_a_verp_address_counts_once_for_its_subscriber_and_a_forged_one_is_ignored(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    store = Store(settings.database_url)
    try:
        sub = store.add_subscriber("anna@example.org", name=None, sections=None, timezone=None, now=NOW)
        raw = (FIXTURES / "postfix-5.1.1-user-unknown.eml").read_bytes()
        # The fixture's own token was signed by nobody: counted, nothing else.
        assert intake(settings, store, raw, via="file", now=NOW) == UNVERIFIED
        assert status(store, sub.id) == ACTIVE
        verp = tokens.verp_address("s3cret-key", sub.public_id, 7, "bounces.example.org")
        assert intake(settings, store, raw, via="smtp", now=NOW, envelope_to=verp) == SUPPRESSED
        assert intake(settings, store, raw, via="imap", now=NOW, envelope_to=verp) == DUPLICATE
        assert status(store, sub.id) == SUSPENDED
        last = store.last_bounce(sub.id)
        assert last is not None and last[:2] == ("hard", "5.1.1")
        vacation = (FIXTURES / "autoreply-vacation.eml").read_bytes()
        assert intake(settings, store, vacation, via="file", now=NOW) == NOT_A_BOUNCE
        wrong_key = tokens.verp_address("another-key", sub.public_id, 7, "bounces.example.org")
        assert intake(settings, store, raw, via="smtp", now=NOW, envelope_to=wrong_key) == UNVERIFIED
    finally:
        store.close()


def test_a_verified_bounce_whose_diagnostic_holds_a_nul_is_recorded(store: Store, tmp_path: Path) -> None:
    """On PostgreSQL, which refuses a NUL in text, the remote server's words with one failed the
    record, and the IMAP fetch at that message every time; they are stored as one clean line."""
    settings = _settings(tmp_path)
    sub = store.add_subscriber("anna@example.org", name=None, sections=None, timezone=None, now=NOW)
    raw = (FIXTURES / "postfix-5.1.1-user-unknown.eml").read_bytes()
    raw = raw.replace(b"address rejected", b"address\x00rejected")
    verp = tokens.verp_address("s3cret-key", sub.public_id, 7, "bounces.example.org")
    assert intake(settings, store, raw, via="imap", now=NOW, envelope_to=verp) == SUPPRESSED
    last = store.last_bounce(sub.id)
    assert last is not None and last[:2] == ("hard", "5.1.1") and "address rejected" in str(last)
