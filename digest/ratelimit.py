"""A per-key sliding-window limit (the sign-up form's per-client limit). Pure: times are arguments.

In memory, per process: it slows a script hammering one web app down; the store's per-address
window and global hourly cap are what bound the mail that goes out.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    def __init__(self, limit: int, seconds: float, *, max_keys: int = 100_000) -> None:
        self.limit, self.seconds, self.max_keys = limit, seconds, max_keys
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Count one attempt by `key` at `now` (seconds); False when it is over the limit."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._forget(now)
            hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _forget(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.seconds]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full of live keys: start over rather than grow
            self._hits.clear()
