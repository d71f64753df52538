"""`digest poll` imports only what polling needs (issue 12: start fast).

Each command imports its heavy libraries where it uses them: the send side's (Jinja2, css-inline,
Babel, DKIM, aiosmtplib), the text tools of clustering and synopses (razdel, pysbd, Snowball,
Unidecode), nh3 and feedparser (parsing runs in the parser pool's worker processes, never in the
poll's own), rich (only for a progress bar on a terminal), and Alembic (only to create or upgrade a
database; a database at head is recognised from its alembic_version row alone). These tests run
the real command in a subprocess against a real HTTP server and read the modules it had loaded
when it exited, so a stray top-level import fails here instead of silently costing every poll.
`bench/startup.py` measures what it is worth.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import trustme
from httpservers import FeedServer

# Top-level packages and digest modules the poll path must not load in its own process.
SEND_SIDE = {
    "jinja2",
    "css_inline",
    "babel",
    "dkim",
    "aiosmtplib",
    "itsdangerous",
    "digest.pipeline.send",
    "digest.pipeline.drafts",
    "digest.pipeline.mailer",
    "digest.render",
    "digest.message",
    "digest.compose",
    "digest.deliver",
}
TEXT_TOOLS = {"razdel", "pysbd", "snowballstemmer", "unidecode", "digest.synopsis", "digest.sentences"}
CLUSTERING = {"digest.cluster", "digest.words"}  # config asks it only about non-default thresholds
PARSING = {"feedparser", "nh3", "digest.parse", "digest.sanitize"}  # in the worker processes only
OTHERS = {"rich", "apscheduler", "aiosmtpd", "email_validator", "flufl", "prometheus_client", "digest.daemon"}
NOT_ON_POLL = SEND_SIDE | TEXT_TOOLS | CLUSTERING | PARSING | OTHERS | {"alembic", "mako"}
# Only what a body to parse needs: a poll whose feeds all answer 304 starts no parser process.
PARSER_PROCESSES = {"multiprocessing"}

# Runs `python -m digest ARGS...` and writes the names in sys.modules at exit to the file given first,
# with the number of CAs loaded into the verifying TLS context aiohttp builds at import (its private
# name: None when aiohttp is not loaded or no longer has it).
_RECORDING = (
    "import atexit, json, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def record():\n"
    "    context = getattr(sys.modules.get('aiohttp.connector'), '_SSL_CONTEXT_VERIFIED', None)\n"
    "    cas = context.cert_store_stats()['x509_ca'] if context is not None else None\n"
    "    open(out, 'w').write(json.dumps({'modules': sorted(sys.modules), 'aiohttp_cas': cas}))\n"
    "atexit.register(record)\n"
    "runpy.run_module('digest', run_name='__main__', alter_sys=True)\n"
)


def rss(title: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Startup news</title>'
        "<link>https://startup.example.org/</link>"
        f"<item><title>{title}</title><link>https://startup.example.org/{title.replace(' ', '-')}</link>"
        f"<guid>{title}</guid><description>&lt;p&gt;About {title}.&lt;/p&gt;</description></item>"
        "</channel></rss>"
    ).encode()


async def digest_recording(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run the CLI in a subprocess; its exit code, stdout and the modules it had loaded."""
    code, out, recorded = await _run_recording(tmp_path, *args, env=env)
    return code, out, set(recorded["modules"])


async def _run_recording(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, Any]:
    record = tmp_path / "modules.json"
    record.unlink(missing_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RECORDING,
        str(record),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    assert record.exists(), err.decode()
    return proc.returncode, out.decode() + err.decode(), json.loads(record.read_text())


def loaded(modules: set[str], names: set[str]) -> list[str]:
    """The names (a package counts with its submodules) that appear in `modules`."""
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


async def test_digest_poll_loads_no_send_side_text_tools_parser_or_alembic_in_its_own_process(tmp_path: Path) -> None:
    async with FeedServer() as server:
        url = server.serve("/news.xml", rss("first story"), etag='"v1"')
        config = tmp_path / "digest.toml"
        config.write_text(
            f'[digest]\ndatabase = "sqlite:///{tmp_path / "digest.sqlite"}"\nallow_private_addresses = true\n\n'
            f'[[feeds]]\nurl = "{url}"\n',
            encoding="utf-8",
        )
        # First run: the database is created (by the migrations: Alembic may load) and the feed parsed.
        code, out, modules = await digest_recording(tmp_path, "--config", str(config), "poll")
        assert code == 0 and "1 new" in out, out
        assert loaded(modules, NOT_ON_POLL - {"alembic", "mako"}) == []

        # A changed feed: parsed again, in a worker; the database is at head, so no Alembic either.
        server.serve("/news.xml", rss("second story"), etag='"v2"')
        code, out, modules = await digest_recording(tmp_path, "--config", str(config), "poll")
        assert code == 0 and "1 new" in out, out
        assert loaded(modules, NOT_ON_POLL) == []
        assert loaded(modules, PARSER_PROCESSES) == ["multiprocessing"]  # a parser process was started

        # Unchanged: a conditional GET answered 304.
        code, out, modules = await digest_recording(tmp_path, "--config", str(config), "poll")
        assert code == 0 and " 304 " in f" {out}" and "unchanged" in out, out
        assert loaded(modules, NOT_ON_POLL | PARSER_PROCESSES) == []
        assert [r.headers.get("If-None-Match") for r in server.requests] == [None, '"v1"', '"v2"']
        assert {"aiohttp", "sqlalchemy", "digest.pipeline.poll"} <= modules  # the check sees what did load


async def test_digest_poll_verifies_https_feeds_with_one_ca_load_of_its_own(tmp_path: Path) -> None:
    """aiohttp's own TLS contexts are built without the CA bundle (a tenth of the start-up); the
    fetcher's context loads it, honouring the operator's SSL_CERT_FILE, and verifies every https feed."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    async with FeedServer(ssl_context=server_tls) as server:
        url = server.serve("/news.xml", rss("secure story"), etag='"s1"')
        assert url.startswith("https://")
        config = tmp_path / "digest.toml"
        config.write_text(
            f'[digest]\ndatabase = "sqlite:///{tmp_path / "digest.sqlite"}"\nallow_private_addresses = true\n\n'
            f'[[feeds]]\nurl = "{url}"\n',
            encoding="utf-8",
        )
        # A CA the server's certificate does not chain to: refused, nothing stored.
        code, out, recorded = await _run_recording(
            tmp_path, "--config", str(config), "poll", env={"SSL_CERT_FILE": str(tmp_path / "other-ca.pem")}
        )
        # (exit 1: every feed failed, which a cron job's `digest poll && digest send` should stop on)
        assert code == 1 and "certificate verify failed" in out and "0 new items, 1 failed" in out, out
        assert recorded["aiohttp_cas"] in (0, None)  # aiohttp's unused contexts loaded no CA bundle

        # The operator's CA (SSL_CERT_FILE, restored after aiohttp's import): verified and stored.
        code, out, recorded = await _run_recording(
            tmp_path, "--config", str(config), "poll", env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")}
        )
        assert code == 0 and "1 new" in out and "failed" in out and "1 failed" not in out, out
        assert recorded["aiohttp_cas"] in (0, None)
    assert len(server.requests) == 1  # the refused handshake never got as far as a request


async def test_help_loads_neither_the_network_the_database_nor_the_send_side(tmp_path: Path) -> None:
    for args in (("--help",), ("poll", "--help")):
        code, out, modules = await digest_recording(tmp_path, *args)
        assert code == 0 and "Usage:" in out, out
        assert loaded(modules, NOT_ON_POLL | {"aiohttp", "sqlalchemy", "digest.pipeline", "digest.store"}) == []


def test_the_check_sees_a_planted_heavy_import() -> None:
    assert loaded({"jinja2.environment", "digest.pipeline.poll"}, NOT_ON_POLL) == ["jinja2"]
    assert loaded({"digest.pipeline.sender"}, {"digest.pipeline.send"}) == []
