"""The only code that calls the stages in order; the CLI, the daemon and the demo call this.

poll: config -> fetch -> parse -> store.write            (pipeline.poll)
send: store.read -> compose -> render -> deliver -> mark  (pipeline.send)
"""

from __future__ import annotations

from digest.pipeline.poll import poll_feeds, poll_once
from digest.pipeline.send import SendReport, build_edition, preview, send_day, send_edition

__all__ = ["SendReport", "build_edition", "poll_feeds", "poll_once", "preview", "send_day", "send_edition"]
