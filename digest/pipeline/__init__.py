"""The only code that calls the stages in order; the CLI, the daemon, the web app and the demo call
its two façades, one per job:

poll: config -> fetch -> parse -> store.write                          (pipeline.poll)
send: what is due -> build -> compose -> render -> deliver -> mark     (pipeline.send)

Behind the send façade: pipeline.mailer (an edition's messages), pipeline.sender (one sender's
claim loop), pipeline.workers (sending processes).
"""

from __future__ import annotations

from digest.pipeline.poll import poll_feeds, poll_once
from digest.pipeline.send import SendReport, build_edition, preview, send_day, send_due

__all__ = ["SendReport", "build_edition", "poll_feeds", "poll_once", "preview", "send_day", "send_due"]
