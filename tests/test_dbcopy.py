"""`digest db copy`: an installation moves from its SQLite file to PostgreSQL and nobody outside
notices (audit-multi bug 5): the links already mailed still work, subscribers' own choices stay
theirs, the day already sent is not sent again, suppressions and bounces stay.

End to end: the `digest` command as a process, feeds over HTTP on 127.0.0.1, a real SMTP server
(aiosmtpd), the web app on 127.0.0.1, a real SQLite file and a new PostgreSQL database.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from conftest import postgres_database
from digestprocess import run_digest
from httpservers import FeedServer
from ports import free_port
from smtpservers import SmtpServer
from test_bounces_end_to_end import FIXTURES, returned_to
from test_ownership import (
    DAY1,
    DAY2,
    daemon,
    digest,
    form_mac,
    links,
    ok,
    received,
    rss,
    subscriber_entry,
    text_of,
    until,
    web_app,
)
from test_ownership import write_config as wire_config

from digest import config as cfg
from digest import migrations, unsubscribes
from digest.store import Store

READERS = ("alice", "bob", "carol", "dave", "erin")


def write_config(tmp: Path, *, database: str, feed: str, smtp_port: int, web_port: int) -> Path:
    """The Wire Review with five readers and a bounce domain, on `database`."""
    readers = "".join(subscriber_entry(f"{name}@example.org") for name in READERS)
    bounces = '\n[bounces]\ndomain = "bounces.wire.example"\n'
    ports = {"smtp_port": smtp_port, "web_port": web_port}
    return wire_config(tmp, database=database, feed=feed, subscribers=readers, extra=bounces, **ports)


def point_at(config: Path, database: str) -> None:
    """What the operator does after the copy: `database` names the new one."""
    lines = config.read_text(encoding="utf-8").splitlines()
    moved = [f'database = "{database}"' if line.startswith("database = ") else line for line in lines]
    config.write_text("\n".join(moved) + "\n", encoding="utf-8")


async def test_a_sqlite_installation_copied_to_postgresql_keeps_its_links_choices_sends_and_suppressions(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    sqlite_file = tmp_path / "digest.sqlite"
    with postgres_database() as pg_url:
        async with FeedServer() as feeds, SmtpServer() as smtp:
            feed = feeds.serve("/wire.xml", rss(DAY1, "one"))
            config = write_config(
                tmp_path, database=f"sqlite:///{sqlite_file}", feed=feed, smtp_port=smtp.port, web_port=web_port
            )
            await ok(config, DAY1, "poll")
            await ok(config, DAY1 + timedelta(minutes=1), "send")
            mailed = {name: received(smtp, f"{name}@example.org")[0] for name in READERS}
            verp = {m.rcpt_tos[0]: m.mail_from for m in smtp.messages}

            # Alice chooses her sections on the web page; Dave unsubscribes with his link.
            _, alice_preferences = links(mailed["alice"])
            dave_unsubscribe, _ = links(mailed["dave"])
            async with web_app(config, DAY1), aiohttp.ClientSession() as http:
                async with http.get(alice_preferences) as resp:
                    page = await resp.text()
                async with http.post(
                    alice_preferences, data={"form": form_mac(page), "section": ["Sport"], "timezone": "UTC"}
                ) as resp:
                    assert resp.status == 200
                async with http.post(dave_unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
                    assert resp.status == 200
            # Carol's address bounced for good.
            bounce = tmp_path / "carol.eml"
            bounce.write_bytes(
                returned_to(verp["carol@example.org"], (FIXTURES / "qmail-5.1.1-no-mailbox.eml").read_bytes())
            )
            assert (await ok(config, DAY1 + timedelta(minutes=30), "bounces", "import", str(bounce))).strip() == (
                "1 suppressed"
            )
            # Erin's one-click comes while another process holds the database: the web app keeps it
            # in the spool beside the SQLite file (and stops before it could apply it itself).
            erin_unsubscribe, _ = links(mailed["erin"])
            holder = sqlite3.connect(sqlite_file, timeout=30)
            async with web_app(config, DAY1), aiohttp.ClientSession() as http:
                holder.execute("BEGIN IMMEDIATE")
                async with http.post(erin_unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
                    assert resp.status == 503
            holder.rollback()
            holder.close()
            spool = unsubscribes.spool_path(cfg.load(config))
            assert len(unsubscribes.pending(spool)) == 1

            copied = await ok(config, DAY1 + timedelta(hours=1), "db", "copy", "--to", pg_url)
            assert f"applied 1 unsubscribe(s) waiting in {spool}" in copied, copied
            counts = dict(line.split() for line in copied.splitlines() if re.fullmatch(r"[a-z_]+ +\d+", line))
            assert counts["subscribers"] == "5" and counts["deliveries"] == "5" and counts["bounces"] == "1", copied
            assert counts["suppressions"] == "3" and counts["editions"] == "1", copied  # carol, dave, erin
            assert "next: point `database`" in copied, copied
            assert unsubscribes.pending(spool) == []
            before = await ok(config, DAY1 + timedelta(hours=1), "status")  # the SQLite file, left as it was
            point_at(config, pg_url)

            after = await ok(config, DAY1 + timedelta(hours=1), "status")
            assert after == before, (before, after)

            # The same day again: nothing goes twice.
            await ok(config, DAY1 + timedelta(hours=2), "send")
            assert len(smtp.messages) == len(READERS)

            # Bob's link, mailed while the database was SQLite, unsubscribes him on PostgreSQL.
            bob_unsubscribe, _ = links(mailed["bob"])
            async with web_app(config, DAY1 + timedelta(hours=3)), aiohttp.ClientSession() as http:
                async with http.post(bob_unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
                    assert resp.status == 200
                async with http.get(alice_preferences) as resp:
                    assert resp.status == 200
            shown = await ok(config, DAY1 + timedelta(hours=4), "subscribers", "show", "alice@example.org")
            assert "sections  Sport  [set by subscriber]" in shown, shown
            shown = await ok(config, DAY1 + timedelta(hours=4), "subscribers", "show", "bob@example.org")
            assert "status    unsubscribed  [set by subscriber]" in shown, shown

            # The next day: Alice gets her sections only; the stopped addresses get nothing.
            feeds.serve("/wire.xml", rss(DAY2, "two"))
            await ok(config, DAY2, "poll")
            await ok(config, DAY2 + timedelta(minutes=1), "send")
            second = received(smtp, "alice@example.org")
            assert len(second) == 2
            assert "Sport story two" in text_of(second[1]) and "World story two" not in text_of(second[1])
            for name in ("bob", "carol", "dave", "erin"):
                assert len(received(smtp, f"{name}@example.org")) == 1, name


def quiet_config(tmp: Path, database: str) -> Path:
    """A config whose mail and feed are never reached: for what the copy refuses."""
    return write_config(tmp, database=database, feed="http://127.0.0.1:9/none.xml", smtp_port=9, web_port=9)


def ids(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        return {s.email: s.id for s in store.list_subscribers()}
    finally:
        store.close()


async def test_the_copy_keeps_ids_and_the_target_hands_out_none_the_source_ever_did(
    tmp_path: Path, empty_database_url: str
) -> None:
    config = quiet_config(tmp_path, f"sqlite:///{tmp_path / 'digest.sqlite'}")
    await ok(config, DAY1, "subscribers", "add", "frank@example.org")
    await ok(config, DAY1, "subscribers", "add", "gina@example.org")
    await ok(config, DAY1, "subscribers", "remove", "gina@example.org")  # the newest id, now unused
    source = ids(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    await ok(config, DAY1, "db", "copy", "--to", empty_database_url)
    point_at(config, empty_database_url)
    assert ids(empty_database_url) == source
    await ok(config, DAY1, "subscribers", "add", "hugo@example.org")  # the id counter follows the copy
    assert ids(empty_database_url)["hugo@example.org"] == max(source.values()) + 2  # never gina's id


async def test_a_failure_half_way_leaves_the_target_empty_and_a_second_copy_into_a_filled_one_is_refused(
    tmp_path: Path,
) -> None:
    config = quiet_config(tmp_path, f"sqlite:///{tmp_path / 'digest.sqlite'}")
    await ok(config, DAY1, "subscribers", "add", "frank@example.org")
    with postgres_database() as pg_url:
        # A hand edit PostgreSQL cannot hold (its column is VARCHAR(16); SQLite keeps any length).
        with sqlite3.connect(tmp_path / "digest.sqlite") as conn:
            conn.execute("UPDATE subscribers SET status = 'unsubscribed-by-hand' WHERE email = 'frank@example.org'")
        code, out, err = await digest(config, DAY1, "db", "copy", "--to", pg_url)
        assert code == 1 and "rolled back" in err and "subscribers" in err and "next:" not in out, err
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                for table in ("feeds", "subscribers", "suppressions", "items"):
                    assert conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 0, table
        finally:
            engine.dispose()

        with sqlite3.connect(tmp_path / "digest.sqlite") as conn:
            conn.execute("UPDATE subscribers SET status = 'active' WHERE email = 'frank@example.org'")
        await ok(config, DAY1, "db", "copy", "--to", pg_url)
        code, out, err = await digest(config, DAY1, "db", "copy", "--to", pg_url)
        assert code == 1 and "is not empty" in err and "nothing was copied" in err, err
        assert ids(pg_url) == ids(f"sqlite:///{tmp_path / 'digest.sqlite'}")  # one copy, not two


async def test_the_copy_is_refused_from_an_outdated_source_and_while_a_daemon_runs_on_it(tmp_path: Path) -> None:
    source = tmp_path / "digest.sqlite"
    config = quiet_config(tmp_path, f"sqlite:///{source}")
    engine = sa.create_engine(f"sqlite:///{source}")
    migrations.upgrade(engine, to="0011")  # a database the previous digest made
    engine.dispose()
    target = tmp_path / "new.sqlite"
    code, _, err = await digest(config, DAY1, "db", "copy", "--to", f"sqlite:///{target}")
    assert code == 1 and "schema revision 0011" in err and "`digest db upgrade` first" in err, err
    assert not target.exists() or ids(f"sqlite:///{target}") == {}

    await ok(config, DAY1, "db", "upgrade")
    async with daemon(config, DAY1) as run:
        await until(lambda: Store(f"sqlite:///{source}").lock_holder("daemon") is not None, "the daemon's lock")
        code, _, err = await digest(config, DAY1, "db", "copy", "--to", f"sqlite:///{target}")
        assert code == 1 and "A digest daemon" in err and "run `digest db copy`" in err, err
        run.terminate()
        await run.wait()


async def copy_with(config: Path, to_url: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`digest db copy --to URL` with exactly this environment beside the test's own (no PGPASSWORD)."""
    unset: dict[str, str | None] = {"PGPASSWORD": None, "DIGEST_DB_COPY_PASSWORD": None}
    return await run_digest(config, "db", "copy", "--to", to_url, env={**unset, "DIGEST_NOW": DAY1.isoformat(), **env})


async def test_the_target_password_comes_from_the_environment_and_one_on_the_command_line_is_warned_of(
    tmp_path: Path,
) -> None:
    """`--to` with the password in it shows it to every user of the host (`ps`): the URL may go
    without one, the password in DIGEST_DB_COPY_PASSWORD."""
    config = quiet_config(tmp_path, f"sqlite:///{tmp_path / 'digest.sqlite'}")
    await ok(config, DAY1, "subscribers", "add", "frank@example.org")
    source = ids(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    with postgres_database() as pg_url, postgres_database() as other_url:
        password = sa.engine.make_url(pg_url).password
        assert password, "the test server takes a password (DIGEST_TEST_POSTGRES_URL carries one)"
        bare = sa.engine.make_url(pg_url)._replace(password=None).render_as_string(hide_password=False)
        assert password not in bare

        code, out, err = await copy_with(config, bare, {})  # no password anywhere: the server refuses
        assert code == 1 and "next:" not in out, err
        code, out, err = await copy_with(config, bare, {"DIGEST_DB_COPY_PASSWORD": password})
        assert code == 0, err
        assert "warning" not in err and password not in out + err, err
        assert ids(pg_url) == source

        code, out, err = await copy_with(config, other_url, {})
        assert code == 0, err
        assert "warning: the --to URL carries a password, which `ps` shows" in err, err
        assert "DIGEST_DB_COPY_PASSWORD" in err and password not in out + err
        assert ids(other_url) == source
