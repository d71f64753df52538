"""Alembic migrations on SQLite and PostgreSQL: a database made by the release before migrations
(tests/fixtures/release-1: its schema and representative rows) is refused until `digest db upgrade`,
which keeps every row; a new database is created at head; the migrations build what schema.py says.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from digest import migrations
from digest.addresses import address_key
from digest.errors import SubscriberError
from digest.model import ParsedItem, PollRecord
from digest.store import Store
from digest.store import schema as t
from digest.store.feeds import url_hash
from digest.store.subscribers import address_hash

FIXTURE = Path(__file__).parent / "fixtures" / "release-1"
SITE = "https://harbourgazette.example/"
TABLES = ("meta", "feeds", "items", "subscribers", "editions", "edition_items", "deliveries", "locks")


def _statements(path: Path) -> list[str]:
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";")]


def load_release_1(url: str) -> None:
    """Build the release-1 database: its own DDL (as that release created it), then its rows."""
    engine = sa.create_engine(url)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        for stmt in _statements(FIXTURE / f"schema.{dialect}.sql") + _statements(FIXTURE / "data.sql"):
            conn.exec_driver_sql(stmt.rstrip(";"))
    engine.dispose()


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the release-1 tables, release-1 columns only, in a stable order."""
    engine = sa.create_engine(url)
    found = sa.MetaData()
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        found.reflect(conn, only=list(TABLES))
        for name in TABLES:
            table = found.tables[name]
            columns = [c for c in table.columns if c.name in _release_1_columns(name)]
            query = sa.select(*columns).order_by(*table.primary_key.columns)
            if name == "meta":  # rows the migrations add are checked on their own
                query = query.where(table.c.key != "legacy_link_max_id")
            out[name] = [dict(r) for r in conn.execute(query).mappings()]
    engine.dispose()
    return out


def _release_1_columns(table: str) -> set[str]:
    text = (FIXTURE / "schema.sqlite.sql").read_text(encoding="utf-8")
    body = text.split(f"CREATE TABLE {table} (", 1)[1].split(");", 1)[0]
    return {
        line.strip().split()[0].strip('"')
        for line in body.splitlines()
        if line.strip() and not line.strip().startswith(("PRIMARY", "UNIQUE", "CONSTRAINT", "FOREIGN"))
    }


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *args], capture_output=True, text=True, timeout=120
    )


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(
        f'[digest]\ndatabase = "{url}"\n\n[smtp]\nhost = "127.0.0.1"\nsender = "d@example.org"\n', encoding="utf-8"
    )
    return path


def test_release_1_database_is_refused_then_upgraded_keeping_every_row(empty_database_url: str, tmp_path: Path) -> None:
    url = empty_database_url
    load_release_1(url)
    before = snapshot(url)
    assert [len(before[n]) for n in TABLES] == [1, 2, 3, 4, 2, 3, 3, 1]  # the fixture as written
    config = write_config(tmp_path, url)

    current = cli(config, "db", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.startswith("0001 (the release before migrations")

    refused = cli(config, "subscribers", "list")  # any other command: one line naming the upgrade
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "`digest db upgrade`" in refused.stderr and "revision 0001" in refused.stderr
    assert snapshot(url) == before  # the refusal touched nothing (no sync, no schema change)

    upgraded = cli(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"upgraded 0001 -> {migrations.head()}"
    assert snapshot(url) == before  # every row of every table, every column, as it was

    again = cli(config, "db", "upgrade")  # idempotent
    assert again.returncode == 0 and again.stdout.strip() == f"already at {migrations.head()}: nothing to do"
    assert snapshot(url) == before
    assert cli(config, "db", "current").stdout.strip() == f"{migrations.head()} (head): up to date"

    store = Store(url)  # now accepted
    try:
        subs = {s.email: s for s in store.list_subscribers()}
        public_ids = {s.public_id for s in subs.values()}
        assert len(public_ids) == 4 and all(len(p) == 32 for p in public_ids)
        assert {e for e in subs if store.suppression_reason(e) is not None} == {"bob@example.org", "carol@example.net"}
        origins = store.subscriber_origins("bob@example.org")
        assert origins is not None and origins.origins["status"] == "subscriber"
        alice = store.subscriber_origins("alice@example.org")
        assert alice is not None and alice.origins == {
            "name": "config",
            "sections": "config",
            "timezone": "config",
            "status": "config",
        }
        assert store.legacy_link_max_id() == 4  # links sent before the upgrade: rows 1..4 only
        # 0003: every kept subscriber starts with no soft-bounce score, and no bounce is recorded.
        assert store.bounce_summary().by_kind == {} and store.bounce_summary().unverified == 0
        with store.engine.connect() as conn:
            scores = conn.execute(sa.select(t.subscribers.c.bounce_score, t.subscribers.c.bounce_score_at)).all()
        assert scores and all(tuple(row) == (0.0, None) for row in scores)
        # The fixture's outbox rows still point at their subscribers and editions.
        assert store.delivery_counts(1)
        # 0005: editions built before it have no stored stories (they are clustered when first read).
        assert store.edition_stories(1) is None
        assert store.save_edition_stories(1, '{"format": 1, "stories": []}', now=datetime(2026, 12, 1, tzinfo=UTC))
        assert store.edition_stories(1) == '{"format": 1, "stories": []}'
        assert not store.save_edition_stories(1, "{}", now=datetime(2026, 12, 1, tzinfo=UTC))  # the first stays
        # 0006: no worker registered, no feed claimed; the upgraded feeds can be claimed and released.
        assert store.workers(stale_after=timedelta(seconds=60)) == []
        with store.engine.connect() as conn:
            claims = conn.execute(sa.select(t.feeds.c.claimed_by, t.feeds.c.lease_until)).all()
        assert claims and all(tuple(row) == (None, None) for row in claims)
        store.register_worker(
            "w1", host="h", pid=1, version="t", worker_now=datetime.now(UTC), stale_after=timedelta(seconds=60)
        )
        claimed = store.claim_feeds("w1", due_by=datetime(2100, 1, 1, tzinfo=UTC), lease=timedelta(minutes=1), limit=10)
        assert {f.id for f in claimed} == {f.id for f in store.list_feeds(active_only=True)}
        assert store.workers(stale_after=timedelta(seconds=60))[0].feeds == len(claimed)
        assert store.release_feeds("w1", [f.id for f in claimed]) == len(claimed)
        store.unregister_worker("w1")
        # 0007: items stored before it name no outlet (they are cited by their feed, as before).
        with store.engine.connect() as conn:
            outlets = conn.execute(sa.select(t.items.c.outlet)).scalars().all()
        assert outlets and all(outlet is None for outlet in outlets)
        with store.engine.connect() as conn:
            newest = (
                conn.execute(sa.select(t.items.c.first_seen).order_by(t.items.c.first_seen.desc())).scalars().first()
            )
        assert newest is not None
        # read as an edition reads them: a zone with no edition yet takes the day up to the newest
        window = store.edition_window("Pacific/Auckland", until=newest).items
        assert window and all(item.outlet is None for item in window)
        # 0008: feeds stored before it link no site, until a poll receives a body that does.
        with store.engine.connect() as conn:
            sites = conn.execute(sa.select(t.feeds.c.site_url)).scalars().all()
        assert sites and all(site is None for site in sites)
        first = next(f for f in store.list_feeds() if f.name is None)  # cited by its title's outlet
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with store.poll_writer() as writer:
            writer.record(
                [PollRecord(first.id, now, 200, 0, None, now, title="World – The Harbour Gazette", site_url=SITE)]
            )
        (polled,) = [f for f in store.list_feeds() if f.id == first.id]
        assert (polled.site_url, polled.display_name) == (SITE, "The Harbour Gazette")
        # 0014: feeds stored before it have no copyright line, until a poll receives a body with one.
        with store.engine.connect() as conn:
            assert set(conn.execute(sa.select(t.feeds.c.rights)).scalars()) == {None}
        with store.poll_writer() as writer:
            writer.record(
                [
                    PollRecord(
                        first.id,
                        now,
                        200,
                        0,
                        None,
                        now,
                        title="HG > Home Page",
                        site_url="https://www.hgazette.example/",
                        rights="Copyright 2026 The Harbour Gazette Company",
                    )
                ]
            )
        (polled,) = [f for f in store.list_feeds() if f.id == first.id]
        assert polled.display_name == "The Harbour Gazette"
        # 0015: feeds stored before it declare no language, nor do their items, until a poll parses
        # a body of theirs; a poll that parsed none (a 304) keeps what the last body declared.
        assert {f.language for f in store.list_feeds()} == {None}
        assert {item.language for item in window} == {None}
        with store.poll_writer() as writer:
            writer.record([PollRecord(first.id, now, 200, 0, None, now, language="fr", items=())])
            writer.record([PollRecord(first.id, now, 304, 0, None, now)])
        (polled,) = [f for f in store.list_feeds() if f.id == first.id]
        assert polled.language == "fr"
        read = store.edition_window("Pacific/Auckland", until=newest).items
        assert {item.language for item in read if item.feed_id == first.id} == {"fr"}
        assert {item.language for item in read if item.feed_id != first.id} <= {None}
        # 0009: every stored link has its hash, and an item is found by it: the fixture's first item,
        # read again under another guid with the same link, is that item edited, not a new one.
        with store.engine.connect() as conn:
            links = conn.execute(sa.select(t.items.c.url, t.items.c.url_hash)).all()
        assert len(links) == 3 and all(h == (url_hash(u) if u else None) for u, h in links)
        edited = ParsedItem(
            key="guid:fixture-item-1-republished",
            title="Fixture item one, edited",
            url="https://news.example.org/a/1",
            summary_html="<p>Edited.</p>",
            summary_text="Edited.",
            published=None,
            content_hash="ff55" * 16,
        )
        with store.poll_writer() as writer:
            (written,) = writer.record([PollRecord(1, now, 200, 0, None, now, items=(edited,))])
        assert (written.new_items, written.updated_items) == (0, 1)
        # 0010: outbox rows queued before it have crashed no sender; a new crash is counted on them.
        with store.engine.connect() as conn:
            crashes = conn.execute(sa.select(t.deliveries.c.crashes)).scalars().all()
        assert crashes and set(crashes) == {0}
        assert store.expire_claims(1, now=now).count == 0  # nothing claimed: nothing lapsed
        # 0012: rows queued before it are not on the wire.
        with store.engine.connect() as conn:
            assert set(conn.execute(sa.select(t.deliveries.c.on_wire)).scalars()) == {False}
        # 0011: sign-up links already out keep the rule they were issued under: spent when issued
        # before the subscriber's last change, or before the address's suppression.
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.subscribers.c.updated_at, t.subscribers.c.signups_spent_at)).all()
            stops = conn.execute(sa.select(t.suppressions.c.created_at, t.suppressions.c.signups_spent_at)).all()
        assert len(rows) == 4 and all(spent == changed for changed, spent in rows)
        assert len(stops) == 2 and all(spent == since for since, spent in stops)
        issued = min(since for since, _ in stops) - timedelta(minutes=1)  # before bob unsubscribed
        assert store.confirm_subscription("bob@example.org", sections=None, timezone=None, issued=issued, now=now) == (
            store.get_subscriber(email="bob@example.org"),
            False,
        )
        # 0013: every address, stored lower-cased, is its own key; another spelling finds its row,
        # and a new address keeps the case its local part was written in.
        with store.engine.connect() as conn:
            keyed = conn.execute(sa.select(t.subscribers.c.email, t.subscribers.c.email_key)).all()
        assert len(keyed) == 4 and all(email == key for email, key in keyed)
        found = store.get_subscriber(email="Alice@EXAMPLE.org")
        assert found is not None and found.email == "alice@example.org"
        with pytest.raises(SubscriberError, match="already subscribed"):
            store.add_subscriber("ALICE@example.org", name=None, sections=None, timezone=None, now=now)
        # The upgraded table never hands out an id again, even the highest one once it is erased.
        store.sync_subscribers([], now=datetime(2026, 12, 1, tzinfo=UTC))  # this config lists nobody
        assert store.remove_subscriber("dave@example.org")  # dropped from the config: erasable
        newcomer = store.add_subscriber(
            "Erin.Vale@example.org", name=None, sections=None, timezone=None, now=datetime(2026, 12, 1, tzinfo=UTC)
        )
        assert newcomer.id == 5 and newcomer.public_id not in public_ids and newcomer.email == "Erin.Vale@example.org"
    finally:
        store.close()
    listed = cli(config, "subscribers", "list")
    assert listed.returncode == 0, listed.stderr
    assert "bob@example.org  unsubscribed" in listed.stdout


def test_a_new_database_is_created_at_head_and_matches_schema_py(empty_database_url: str) -> None:
    Store(empty_database_url).close()
    engine = sa.create_engine(empty_database_url)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), t.metadata)
    engine.dispose()
    assert diff == [], f"schema.py and the migrations disagree: {diff}"


def test_a_database_newer_than_this_digest_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    Store(empty_database_url).close()
    engine = sa.create_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    config = write_config(tmp_path, empty_database_url)
    result = cli(config, "status")
    assert result.returncode == 1
    assert "revision 9999, which this digest does not know" in result.stderr
    assert cli(config, "db", "current").stdout.startswith("9999: unknown to this digest")
    upgrade = cli(config, "db", "upgrade")
    assert upgrade.returncode == 1 and "a newer digest" in upgrade.stderr and "Traceback" not in upgrade.stderr


def test_subscriber_ids_are_never_reused(store: Store) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 16, 6, tzinfo=UTC)
    a = store.add_subscriber("a@example.org", name=None, sections=None, timezone=None, now=now)
    assert store.remove_subscriber("a@example.org")
    b = store.add_subscriber("b@example.org", name=None, sections=None, timezone=None, now=now)
    assert b.id > a.id
    assert b.public_id != a.public_id
    assert store.get_subscriber(public_id=a.public_id) is None


def _revision(file_name: str) -> Any:
    """A migration's module, loaded from its file (revisions are no importable package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(file_name, Path(migrations.__file__).parent / "versions" / file_name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_suppression_hash_is_the_one_migration_0002_wrote() -> None:
    # Migration 0002 carries a frozen copy of address_hash; both must give the same answer.
    module = _revision("0002_subscriber_ownership.py")
    assert module._address_hash(" Bob@Example.org") == address_hash("bob@example.org")


def test_the_address_key_is_the_one_migration_0013_wrote() -> None:
    # Migration 0013 carries a frozen copy of address_key: the rows it keyed must be found by the store's.
    module = _revision("0013_subscriber_email_key.py")
    for address in (" Ann.Lee@Example.org", "ann@bücher.de", "ÉLODIE@example.fr"):
        assert module._address_key(address) == address_key(address)


def test_the_link_hash_is_the_one_migration_0009_wrote() -> None:
    # Migration 0009 carries a frozen copy of url_hash: the items it hashed must be found by the store's.
    module = _revision("0009_item_url_hash.py")
    for link in ("https://news.example.org/a/1", "https://новости.example/статья?q=1", "https://x.example/\udcff"):
        assert module._url_hash(link) == url_hash(link)


def test_db_upgrade_refuses_while_a_daemon_is_running_on_the_database(empty_database_url: str, tmp_path: Path) -> None:
    load_release_1(empty_database_url)
    engine = sa.create_engine(empty_database_url)
    with engine.begin() as conn:  # a heartbeat a few seconds old, on the real clock
        beat = (datetime.now(UTC) - timedelta(seconds=5)).replace(tzinfo=None)
        conn.execute(sa.text("UPDATE locks SET heartbeat_at = :beat"), {"beat": beat})
    engine.dispose()
    config = write_config(tmp_path, empty_database_url)
    refused = cli(config, "db", "upgrade")
    assert refused.returncode == 1 and "host-a:1234" in refused.stderr and "Stop it" in refused.stderr
    assert cli(config, "db", "current").stdout.startswith("0001")  # nothing was changed


def test_head_is_named_by_the_newest_file_as_alembic_reads_the_scripts() -> None:
    """The store compares a database with head() on every open without importing Alembic (issue 12),
    so head() reads versions/NNNN_what.py names: each must hold revision NNNN, revising the one before."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.HERE))
    assert migrations.head() == script.get_current_head()
    chain = list(reversed(list(script.walk_revisions())))
    assert [Path(r.path).name.partition("_")[0] for r in chain] == [r.revision for r in chain]
    assert [r.down_revision for r in chain] == [None, *(r.revision for r in chain[:-1])]
