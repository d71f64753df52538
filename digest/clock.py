"""The wall clock, and the one way to move it for tests and rehearsals.

Pure stages take `now` as a parameter; the shells (CLI, daemon) get it from here. Setting
DIGEST_NOW to an ISO 8601 instant starts the clock there; it then runs at real speed, so a test can
start the real daemon a minute before a daylight-saving edge and watch what it sends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from digest.errors import ConfigError

Clock = Callable[[], datetime]


def system_clock(env: Mapping[str, str] | None = None) -> Clock:
    env = os.environ if env is None else env
    start = env.get("DIGEST_NOW")
    if not start:
        return lambda: datetime.now(UTC)
    try:
        origin = datetime.fromisoformat(start)
    except ValueError:
        raise ConfigError(
            f"DIGEST_NOW = {start!r} is not an ISO 8601 time such as 2026-03-29T01:59:00+01:00."
        ) from None
    if origin.tzinfo is None:
        raise ConfigError(f"DIGEST_NOW = {start!r} needs a UTC offset, e.g. {start}+00:00.")
    t0 = time.monotonic()
    origin = origin.astimezone(UTC)
    return lambda: origin + timedelta(seconds=time.monotonic() - t0)
