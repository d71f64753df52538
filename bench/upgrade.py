"""Time `digest db upgrade` of a release-1 database (the release before migrations) with many rows.

    python bench/upgrade.py                          # 100,000 subscribers, SQLite
    python bench/upgrade.py --subscribers 20000
    python bench/upgrade.py --postgres postgresql+psycopg://postgres:pw@127.0.0.1:5432/postgres
    python bench/upgrade.py --subscribers 1000 --items 500000   # migration 0009 hashes every item's link

The database is built from tests/fixtures/release-1 (that release's DDL), then filled: N subscribers
(one in ten unsubscribed, one in fifty suspended), one edition and one outbox row per subscriber,
and M items of 50 feeds (one in twenty without a link).
The command runs as a process; the figure is its wall time, interpreter start-up included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "release-1"
T = datetime(2026, 11, 1, 9, 0)


def build(url: str, subscribers: int, items: int = 0) -> None:
    engine = sa.create_engine(url)
    text = (FIXTURE / f"schema.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    with engine.begin() as conn:
        for stmt in (s.strip() for s in text.split(";\n")):
            if stmt.rstrip(";"):
                conn.exec_driver_sql(stmt.rstrip(";"))
        meta = sa.MetaData()
        meta.reflect(conn)
        subs, eds, dels = meta.tables["subscribers"], meta.tables["editions"], meta.tables["deliveries"]
        status = [
            "unsubscribed" if i % 10 == 0 else "suspended" if i % 50 == 1 else "active" for i in range(subscribers)
        ]
        conn.execute(
            sa.insert(subs),
            [
                {
                    "email": f"reader{i:06d}@example.org",
                    "name": None,
                    "sections": None,
                    "timezone": None,
                    "status": status[i],
                    "permanent_failures": 0,
                    "from_config": i % 3 == 0,
                    "created_at": T,
                    "updated_at": T,
                }
                for i in range(subscribers)
            ],
        )
        conn.execute(sa.insert(eds).values(day=T.date(), timezone="UTC", cutoff=T, created_at=T, status="open"))
        conn.execute(
            sa.insert(dels),
            [
                {"edition_id": 1, "subscriber_id": i + 1, "status": "sent", "attempts": 1, "updated_at": T}
                for i in range(subscribers)
            ],
        )
        if items:
            _items(conn, meta, items)
    engine.dispose()


def _items(conn: sa.Connection, meta: sa.MetaData, n: int) -> None:
    feeds, rows = meta.tables["feeds"], meta.tables["items"]
    conn.execute(
        sa.insert(feeds),
        [
            {
                "url": f"https://news{k}.example/rss",
                "origin_url": f"https://news{k}.example/rss",
                "name": None,
                "section": None,
                "interval_minutes": None,
                "from_config": True,
                "active": True,
                "consecutive_failures": 0,
                "created_at": T,
            }
            for k in range(50)
        ],
    )
    for start in range(0, n, 50_000):  # in chunks: a million dicts at once would cost the bench's memory
        conn.execute(
            sa.insert(rows),
            [
                {
                    "feed_id": i % 50 + 1,
                    "key": f"guid:{i}",
                    "title": f"Item {i}",
                    "summary_html": "",
                    "summary_text": "",
                    "url": None if i % 20 == 0 else f"https://news{i % 50}.example/2026/11/01/story-{i}?ref=rss",
                    "first_seen": T,
                    "updated_at": T,
                    "categories": "[]",
                    "content_hash": f"{i:064x}",
                }
                for i in range(start, min(n, start + 50_000))
            ],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=0, help="items to store (migration 0009 hashes their links)")
    parser.add_argument("--postgres", help="a PostgreSQL server URL; a scratch database is made and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        admin, name = None, None
        if args.postgres:
            name = f"digest_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{Path(tmp) / 'release-1.sqlite'}"
        try:
            build(url, args.subscribers, args.items)
            config = Path(tmp) / "digest.toml"
            config.write_text(
                f'[digest]\ndatabase = "{url}"\n[smtp]\nhost = "127.0.0.1"\nsender = "d@example.org"\n',
                encoding="utf-8",
            )
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "digest", "--config", str(config), "db", "upgrade"],
                capture_output=True,
                text=True,
                check=False,
            )
            took = time.perf_counter() - started
            if done.returncode != 0:
                sys.exit(f"digest db upgrade failed: {done.stderr}")
            backend = "postgresql" if args.postgres else "sqlite"
            print(
                f"{backend}: {args.subscribers} subscribers + {args.subscribers} outbox rows + {args.items} items: "
                f"{done.stdout.strip()} in {took:.2f} s"
            )
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
