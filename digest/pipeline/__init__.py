"""The only code that calls the stages in order; the CLI, the daemon, the web app and the demo call
its two façades, one per job:

poll: config -> fetch -> parse -> store.write                          (pipeline.poll)
send: what is due -> build -> compose -> render -> deliver -> mark     (pipeline.send)
      its drafts, recording nothing: preview, send --dry-run           (pipeline.drafts)

Behind the send façade: pipeline.mailer (an edition's messages), pipeline.sender (one sender's
claim loop), pipeline.workers (sending processes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.pipeline.drafts import preview
    from digest.pipeline.poll import poll_feeds, poll_once
    from digest.pipeline.send import SendReport, build_edition, send_day, send_due

__all__ = ["SendReport", "build_edition", "poll_feeds", "poll_once", "preview", "send_day", "send_due"]

# Each name is imported from its module on first use (PEP 562): `digest poll` then never loads the
# send side's libraries (Jinja2, css-inline, Babel, DKIM, aiosmtplib), a quarter of its start-up.
_HOME = {
    "poll_feeds": "poll",
    "poll_once": "poll",
    "SendReport": "send",
    "build_edition": "send",
    "preview": "drafts",
    "send_day": "send",
    "send_due": "send",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
