"""The one error tree of digest.

Every error a user can fix is a DigestError: its message is one sentence naming the subject
(a config key, a feed URL, an SMTP host) and its ``hint`` says what to do. Only the CLI prints
them and turns them into exit code 1; everything else raises or records them.

    DigestError
     +-- ConfigError          a setting is missing or wrong (names the key)
     +-- FeedError            one feed failed (names the URL); recorded on the feed, never stops a poll
     |    +-- FeedURLError    a feed URL is not acceptable (scheme, private address)
     |    +-- FetchError      HTTP-level failure: timeout, size cap, redirect loop, status
     |    +-- ParseError      the body is not a feed, or parsing ran out of budget
     +-- StoreError           the database cannot be opened or written
     |    +-- LockHeldError   another daemon holds the database
 |    +-- OutdatedDatabaseError  the database's schema is older (or newer) than this digest's
     |    +-- DatabaseBusyError another process held a write lock past the timeout
     |    +-- DatabaseFullError the disk under the database is full (or failing)
     |    +-- DatabaseLostError the connection went away (a server restart): a fresh one may work
     +-- DeliveryError        SMTP failed for the whole run (names the host)
     |    +-- SmtpAuthError   the server refused our credentials (535)
     |    +-- SenderRefusedError the server refused our envelope sender (5xx at MAIL FROM)
     |    +-- CircuitOpenError too many consecutive failures: the run stopped
     +-- TemplateError        a template is missing or uses an unknown variable
     +-- SubscriberError      a subscriber address or choice is invalid
"""

from __future__ import annotations

import re

# C0 and C1 controls: a line break in a log line or an error, a NUL that PostgreSQL refuses in text.
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def remote_words(text: str, *, limit: int = 300) -> str:
    """A remote party's words inside an error (an HTTP reason phrase, an SMTP reply, a bounce's
    diagnostic) as one line without control characters, cut to `limit` with an ellipsis: what a
    log line, a command's output and the store can all take. Here, not in digest.sanitize: the
    poll's own process quotes servers too, and must not load the HTML tools."""
    flat = " ".join(CONTROLS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def full_stop(text: str) -> str:
    """`text` ending a sentence with one period: a quoted reply or library message often has its
    own ("... via TLS (or STARTTLS)."), and a message that added another ended in "..".
    Text ending in "?", "!" or an ellipsis (remote_words' cut) is left as it is."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!", "…")) else text + "."


def is_bug(exc: BaseException) -> bool:
    """Whether `exc` is an error the code did not expect (a bug met on some input), which costs one
    feed, one item or one subscriber's message, never the run. A Rust extension's panic (nh3 and
    css-inline are built with pyo3) arrives as pyo3_runtime.PanicException, which derives from
    BaseException so that `except Exception` lets it through; it is a bug of that kind all the same.
    KeyboardInterrupt, SystemExit and asyncio's cancellation are not: they stop what they stop."""
    if isinstance(exc, Exception):
        return True
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


_DOUBLED_STOP = re.compile(r"(?<!\.)([.?!…])\.$")  # "x.." or "x?." at the end, not an ellipsis "x..."


class DigestError(Exception):
    """An error the user can act on: a one-line message plus a hint."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # A message written as f"...: {exc}." doubles the period of a library's or a server's words
        # that end with one ("... is not valid OPML: no element found.."); said once here for all.
        super().__init__(_DOUBLED_STOP.sub(r"\1", message))
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(DigestError):
    hint = "Fix the setting in your config file, then run `digest check-config`."


class FeedError(DigestError):
    hint = "Check the feed URL in a browser; `digest feeds list` shows the last error of each feed."


class FeedURLError(FeedError):
    hint = (
        "Feeds must be http:// or https:// URLs on public addresses "
        "(set allow_private_addresses = true for local feeds)."
    )


class FetchError(FeedError):
    pass


class ParseError(FeedError):
    pass


class StoreError(DigestError):
    hint = "Check the [digest] database URL and that its folder is writable."


class LockHeldError(StoreError):
    hint = "Stop the other daemon first, or point this one at another database."


class OutdatedDatabaseError(StoreError):
    hint = ""  # the message itself names `digest db upgrade`: one line, nothing else to read


class DatabaseBusyError(StoreError):
    hint = "Try again in a minute; nothing was changed."


class DatabaseFullError(StoreError):
    hint = "Free space on the disk that holds the database, then run the command again."


class DatabaseLostError(StoreError):
    """The server closed our connection (a PostgreSQL restart, `pg_terminate_backend`, a cut
    network): the connection is invalidated, and a fresh one may work once the server is back."""

    hint = "Check that the database server is running and reachable; nothing was changed."


class DeliveryError(DigestError):
    hint = "Check the [smtp] settings with `digest check-config`; unsent messages stay pending for the next run."


class SmtpAuthError(DeliveryError):
    hint = "Check [smtp] username and the DIGEST_SMTP_PASSWORD environment variable; no subscriber was marked failed."


class SenderRefusedError(DeliveryError):
    hint = (
        "Check [smtp] sender (and [bounces] domain, which makes the return path) against what the relay "
        "lets this account send as; no subscriber was marked failed, unsent messages stay pending."
    )


class CircuitOpenError(DeliveryError):
    hint = "The SMTP server kept failing; unsent messages stay pending. Fix the server, then run `digest send` again."


class TemplateError(DigestError):
    hint = "Fix the template, or remove [digest] templates_dir to use the built-in ones."


class SubscriberError(DigestError):
    hint = "Check the address and section names; `digest check-config` lists the sections."
