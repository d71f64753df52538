"""Shared fixtures: real databases (SQLite always; PostgreSQL when DIGEST_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]


CORPUS_ABSENT = "../shared/corpus is absent: set DIGEST_CORPUS to it (CI has it and must run these tests)"


def corpus_dir() -> Path | None:
    """../shared/corpus beside the repo (or $DIGEST_CORPUS); None when absent, so tests skip.

    Under CI (CI=true) an absent corpus is an error, not a skip: the corpus tests must run there.
    """
    env = os.environ.get("DIGEST_CORPUS")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "corpus")
    for c in candidates:
        if (c / "feeds" / "news").is_dir():
            return c
    if os.environ.get("CI"):
        raise RuntimeError(f"CI=true but {CORPUS_ABSENT}")
    return None


def _postgres_url() -> str | None:
    return os.environ.get("DIGEST_TEST_POSTGRES_URL") or None


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards; skips the test where no
    server is configured (and fails it under CI, which must test PostgreSQL)."""
    base = _postgres_url()
    if base is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: .ci/run sets DIGEST_TEST_POSTGRES_URL")
        pytest.skip("PostgreSQL not configured here (set DIGEST_TEST_POSTGRES_URL; .ci/run does)")
    import sqlalchemy as sa

    name = f"digest_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same store tests against every backend."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'test.sqlite'}")
        yield s
        s.close()
        return
    with postgres_database() as url:
        s = Store(url)
        yield s
        s.close()


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on every backend (for tests that build a schema themselves)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    with postgres_database() as url:
        yield url
