"""One owner for each piece of subscriber state, and suppression that outlives removal (issue 9),
on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from digest.config import SubscriberSpec
from digest.errors import FeedError, SubscriberError
from digest.model import FeedSpec
from digest.store import ACTIVE, PAUSED, REMOVED, SUSPENDED, UNSUBSCRIBED, Choices, Store
from digest.store import schema as t
from digest.store.subscribers import ImportRow, address_hash

T0 = datetime(2026, 1, 16, 6, tzinfo=UTC)


def spec(email: str = "alice@example.org", **fields: object) -> SubscriberSpec:
    return SubscriberSpec(email=email, **fields)  # type: ignore[arg-type]


def test_the_config_never_overwrites_what_the_subscriber_chose(store: Store) -> None:
    store.sync_subscribers([spec(name="Alice", timezone="UTC")], now=T0)
    alice = store.get_subscriber(email="alice@example.org")
    assert alice is not None
    store.set_choices(alice.id, Choices(("Sport",), "Europe/Moscow"), now=T0)  # the web page
    for _ in range(2):  # every command syncs; none puts the config's value back
        store.sync_subscribers([spec(name="Alice", timezone="UTC")], now=T0)
    # The operator edits the entry: fields the subscriber did not set follow the config.
    store.sync_subscribers([spec(name="Alice Editor", sections=("World",), timezone="Asia/Tokyo")], now=T0)
    found = store.subscriber_origins("alice@example.org")
    assert found is not None
    sub = found.subscriber
    assert (sub.name, sub.sections, sub.timezone) == ("Alice Editor", ("Sport",), "Europe/Moscow")
    assert found.origins == {"name": "config", "sections": "subscriber", "timezone": "subscriber", "status": "config"}


def test_an_unsubscribed_address_stays_suppressed_through_removal_relisting_cli_and_import(store: Store) -> None:
    store.sync_subscribers([spec(), spec("bob@example.org")], now=T0)
    alice = store.get_subscriber(email="alice@example.org")
    assert alice is not None
    store.set_status(alice.id, UNSUBSCRIBED, now=T0)
    with pytest.raises(SubscriberError, match="listed in digest.toml; remove it there"):
        store.remove_subscriber("alice@example.org")
    store.sync_subscribers([spec("bob@example.org")], now=T0)  # the operator deletes the entry
    assert store.remove_subscriber("alice@example.org")
    with store.engine.connect() as conn:  # nothing that reads back as the address is kept
        kept = conn.execute(sa.select(t.suppressions)).all()
    assert len(kept) == 1 and "alice" not in str(tuple(kept[0]))
    store.sync_subscribers([spec(), spec("bob@example.org")], now=T0)  # listed again
    again = store.get_subscriber(email="alice@example.org")
    assert again is not None and again.status == UNSUBSCRIBED and again.public_id != alice.public_id
    assert again.id > alice.id  # ids are never reused
    assert [s.email for s in store.iter_subscribers()] == ["bob@example.org"]
    store.sync_subscribers([spec("bob@example.org")], now=T0)
    assert store.remove_subscriber("alice@example.org")
    with pytest.raises(SubscriberError, match="unsubscribed; digest never mails that address again"):
        store.add_subscriber("Alice@Example.org", name=None, sections=None, timezone=None, now=T0)
    imported = store.import_subscribers([ImportRow("alice@example.org", None, None, None)], now=T0)
    assert imported == {"added": 0, "updated": 0, "unchanged": 0, "stopped": 0, "kept": 1}
    assert store.get_subscriber(email="alice@example.org") is None


def test_a_permanently_failing_address_is_suppressed_too(store: Store) -> None:
    sub = store.add_subscriber("gone@example.org", name=None, sections=None, timezone=None, now=T0)
    for _ in range(3):
        store.count_permanent_failure(sub.id, suspend_after=3, now=T0)
    found = store.subscriber_origins("gone@example.org")
    assert found is not None and found.subscriber.status == SUSPENDED and found.origins["status"] == "delivery"
    assert store.remove_subscriber("gone@example.org")
    with pytest.raises(SubscriberError, match="failed permanently"):
        store.add_subscriber("gone@example.org", name=None, sections=None, timezone=None, now=T0)


def test_dropping_an_active_subscriber_from_the_config_then_listing_again_reactivates(store: Store) -> None:
    store.sync_subscribers([spec()], now=T0)
    store.sync_subscribers([], now=T0 + timedelta(minutes=1))
    dropped = store.subscriber_origins("alice@example.org")
    assert dropped is not None and dropped.subscriber.status == REMOVED and not dropped.from_config
    store.sync_subscribers([spec()], now=T0 + timedelta(minutes=2))
    back = store.get_subscriber(email="alice@example.org")
    assert back is not None and back.status == ACTIVE


def test_a_subscriber_who_signed_up_or_resumed_themselves_outlives_their_config_entry(store: Store) -> None:
    """Audit finding 7: deleting a [[subscribers]] entry set to `removed` someone who had signed up
    and confirmed on the web, stopping mail they asked for; only the operator's own word stops."""
    store.sync_subscribers([spec("cfg@example.org"), spec("rested@example.org"), spec("op@example.org")], now=T0)
    cfg_sub = store.get_subscriber(email="cfg@example.org")
    rested = store.get_subscriber(email="rested@example.org")
    assert cfg_sub is not None and rested is not None
    store.set_status(cfg_sub.id, UNSUBSCRIBED, now=T0)  # one-click...
    store.confirm_subscription(  # ... then signed up again and confirmed from their inbox
        "cfg@example.org",
        sections=("Sport",),
        timezone=None,
        issued=T0 + timedelta(minutes=1),
        now=T0 + timedelta(minutes=2),
    )
    store.set_status(rested.id, PAUSED, now=T0)  # paused, then resumed, on the preferences page
    store.set_status(rested.id, ACTIVE, now=T0 + timedelta(minutes=1))

    assert store.sync_subscribers([], now=T0 + timedelta(minutes=3)) == 2  # the operator deletes all three
    for email in ("cfg@example.org", "rested@example.org"):
        found = store.subscriber_origins(email)
        assert found is not None and not found.from_config
        assert (found.subscriber.status, found.origins["status"]) == (ACTIVE, "subscriber")
    op = store.subscriber_origins("op@example.org")
    assert op is not None and (op.subscriber.status, op.origins["status"]) == (REMOVED, "config")
    assert sorted(s.email for s in store.iter_subscribers()) == ["cfg@example.org", "rested@example.org"]
    assert store.sync_subscribers([], now=T0 + timedelta(minutes=4)) == 0  # said once, at the deletion


def test_a_feed_the_config_lists_cannot_be_removed_from_the_cli(store: Store) -> None:
    url = "https://news.example.org/rss"
    store.sync_feeds([FeedSpec(url=url)], now=T0)
    with pytest.raises(FeedError, match="listed in digest.toml; remove it there"):
        store.remove_feed(url)
    assert [f.url for f in store.list_feeds(active_only=True)] == [url]
    store.sync_feeds([], now=T0)  # deleted from the config: stops polling, nothing to remove by hand
    assert store.list_feeds(active_only=True) == []


def test_U11_erasing_an_active_subscriber_keeps_only_a_hash_and_nothing_but_a_sign_up_brings_them_back(
    store: Store,
) -> None:
    store.add_subscriber("alice@example.org", name="Alice Liddell", sections=("World",), timezone="UTC", now=T0)
    store.add_subscriber("bob@example.org", name=None, sections=None, timezone=None, now=T0)
    alice = store.get_subscriber(email="alice@example.org")
    assert alice is not None
    with store.engine.begin() as conn:  # a soft bounce whose diagnostic quotes her address
        conn.execute(
            sa.insert(t.bounces).values(
                dedupe="d" * 64,
                subscriber_id=alice.id,
                kind="soft",
                status="4.2.2",
                diagnostic="452 4.2.2 <alice@example.org>: mailbox full",
                verified=True,
                via="smtp",
                received_at=T0,
            )
        )
    assert store.remove_subscriber("Alice@Example.org", now=T0 + timedelta(minutes=1))  # her request
    with store.engine.connect() as conn:  # nothing that reads back as her: no address, no name
        rows = [tuple(r) for table in t.metadata.sorted_tables for r in conn.execute(sa.select(table))]
    assert not [r for r in rows if "alice" in str(r).lower() or "liddell" in str(r).lower()]
    assert store.suppression_reason("alice@example.org") == ("erased", T0 + timedelta(minutes=1))
    # Neither the CLI, an import nor the config mails her again on the operator's word (G10).
    with pytest.raises(SubscriberError, match="alice@example.org was erased; digest never mails"):
        store.add_subscriber("alice@example.org", name=None, sections=None, timezone=None, now=T0)
    imported = store.import_subscribers([ImportRow("alice@example.org", None, None, None)], now=T0)
    assert imported == {"added": 0, "updated": 0, "unchanged": 0, "stopped": 0, "kept": 1}
    store.sync_subscribers([spec(), spec("bob@example.org")], now=T0)
    listed = store.get_subscriber(email="alice@example.org")
    assert listed is not None and listed.status == UNSUBSCRIBED
    assert [s.email for s in store.iter_subscribers()] == ["bob@example.org"]
    # She signs up again and confirms from her own inbox: the one way back.
    back, applied = store.confirm_subscription(
        "alice@example.org",
        sections=None,
        timezone=None,
        issued=T0 + timedelta(minutes=5),
        now=T0 + timedelta(minutes=6),
    )
    assert (
        applied and back is not None and back.status == ACTIVE and store.suppression_reason("alice@example.org") is None
    )


def test_the_cli_names_why_an_address_is_suppressed(store: Store) -> None:
    for email, reason in (("hard@example.org", "bounced"), ("spam@example.org", "complained")):
        with store.engine.begin() as conn:  # as a bounce or a complaint leaves it (store.bounces)
            conn.execute(sa.insert(t.suppressions).values(email_hash=address_hash(email), reason=reason, created_at=T0))
    with pytest.raises(SubscriberError, match="hard@example.org bounced; digest never mails"):
        store.add_subscriber("hard@example.org", name=None, sections=None, timezone=None, now=T0)
    with pytest.raises(SubscriberError, match="spam@example.org reported a digest as spam; digest never mails"):
        store.add_subscriber("spam@example.org", name=None, sections=None, timezone=None, now=T0)
