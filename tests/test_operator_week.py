"""An operator's first week (the operator audit's rough edges): the real `python -m digest` against
real SQLite files and a real feed server on loopback, read as an operator reads it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from httpservers import FeedServer
from smtpservers import SmtpServer
from test_faults import channel, cli, parts, poll, pub_date, write_config
from test_faults import rss as rss

# --------------------------------------------------------------------------- a feed gone (410)


async def test_H12_a_feed_stopped_by_410_is_named_until_the_operator_removes_it(tmp_path: Path) -> None:
    """Audit bug 3: after one poll line saying 410, `status` counted only the active feeds and named
    no stopped one, `feeds list` left it out, and `feeds list --all` gave it a next poll time."""
    async with FeedServer() as srv:
        live = srv.serve("/news.xml", rss())
        gone = srv.serve("/gone.xml", b"bye", status=410)
        added = srv.serve("/added.xml", b"bye", status=410)
        config = write_config(tmp_path, feed_url=live, tail=f'[[feeds]]\nurl = "{gone}"\n')
        assert cli(config, "feeds", "add", added).returncode == 0
        assert (await asyncio.to_thread(poll, config)).returncode == 0

    out = cli(config, "status").stdout
    assert "feeds: 1 active, 2 stopped (410 Gone)" in out, out
    # What to do depends on where the feed is listed: the config file, or the CLI's list.
    assert f"  stopped: {gone}: the publisher answered 410 Gone on " in out
    assert "delete its [[feeds]] entry from the config" in out
    assert f"`digest feeds remove {added}` (and `digest feeds add NEW-URL` if it moved)" in out

    listing = cli(config, "feeds", "list").stdout
    assert f"{gone}  [rules]  STOPPED: gone (410)  last=410  next=-" in listing, listing
    assert "3 feeds" in listing

    # The operator acts: the CLI's feed is removed, the config's entry deleted. Neither is named again.
    removed = cli(config, "feeds", "remove", added)
    assert removed.returncode == 0, removed.stderr
    config.write_text(config.read_text(encoding="utf-8").replace(f'[[feeds]]\nurl = "{gone}"\n', ""))
    out = cli(config, "status").stdout
    assert "feeds: 1 active, 0 due now" in out and "stopped" not in out, out
    listing = cli(config, "feeds", "list").stdout
    assert "1 feeds" in listing and "gone" not in listing
    every = cli(config, "feeds", "list", "--all").stdout
    assert f"{added}  [rules]  removed  last=410  next=-" in every, every


async def test_a_feed_stopped_by_410_is_polled_again_after_feeds_enable(tmp_path: Path) -> None:
    """A [[feeds]] entry stopped by a 410 could not be polled again: `feeds add` turned it on, and
    the next command's config sync turned it off again, as its last answer was still 410."""
    async with FeedServer() as srv:
        gone = srv.serve("/gone.xml", b"bye", status=410)
        config = write_config(tmp_path, feed_url=gone)
        first = await asyncio.to_thread(poll, config)
        assert first.returncode == 1 and "410" in first.stdout + first.stderr  # its one feed failed
        listing = cli(config, "feeds", "list").stdout
        assert "STOPPED: gone (410)" in listing and f"(`digest feeds enable {gone}` polls it again)" in listing
        assert (
            f"`digest feeds enable {gone}` polls it again if the publisher restored it" in cli(config, "status").stdout
        )

        refused = cli(config, "feeds", "enable", srv.url("/other.xml"))
        assert refused.returncode == 1 and "is no feed stopped by a 410 Gone" in refused.stderr, refused.stderr

        srv.serve("/gone.xml", rss())  # the publisher restored it
        enabled = cli(config, "feeds", "enable", gone)
        assert enabled.returncode == 0 and f"enabled {gone}" in enabled.stdout, enabled.stderr
        polled = await asyncio.to_thread(poll, config)  # a command: the config sync runs first
        assert polled.returncode == 0, polled.stderr
    listing = cli(config, "feeds", "list").stdout
    assert f"{gone}  [rules]  active  last=200" in listing, listing
    assert "stopped" not in cli(config, "status").stdout
    again = cli(config, "feeds", "enable", gone)
    assert again.returncode == 1 and "is polled already" in again.stderr, again.stderr


async def test_a_failing_feed_is_one_tidy_line_in_status(tmp_path: Path) -> None:
    """Audit: "failing: <url> (1x, last status 200): <url>: not a feed (the response body is
    empty).; next try ..." said the URL twice and ended in ".;"."""
    async with FeedServer() as srv:
        empty = srv.serve("/empty.xml", b"")
        config = write_config(tmp_path, feed_url=empty)
        await asyncio.to_thread(poll, config)
    out = cli(config, "status").stdout
    line = next(line for line in out.splitlines() if "failing:" in line)
    why = "not a feed (the response body is empty); next try "
    assert line.startswith(f"  failing: {empty} (1x, last status 200): {why}"), line
    assert line.count(empty) == 1 and ".;" not in line


# --------------------------------------------------------------------------- OPML folders


def opml(*outlines: str) -> str:
    return (
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        + "".join(outlines)
        + "</body></opml>"
    )


def gadgets() -> bytes:
    """A feed whose one item no rule of the test's config files: its own section, or the fallback."""
    item = (
        "<item><title>A new phone is announced</title><link>https://gadgets.example/phone</link>"
        f"<guid>https://gadgets.example/phone</guid><pubDate>{pub_date()}</pubDate>"
        "<description>It folds.</description></item>"
    )
    return channel("Gadgets", "https://gadgets.example/", item)


async def test_an_opml_folder_that_is_no_section_is_filed_by_the_rules_until_the_config_has_it(
    tmp_path: Path,
) -> None:
    """Audit bug 2: an OPML folder "Tech" that the config lacks became a section that every
    all-sections reader was mailed but that /subscribe, /p/ and `--sections Tech` refused. Now its
    feeds go by the rules (the fallback here) and the import says how to make it a section; once
    the config has it, importing again files them there, and it can be chosen everywhere."""
    sections = '[[sections]]\nname = "World"\ncategories = ["World"]\n'
    async with FeedServer() as srv, SmtpServer() as smtp:
        url = srv.serve("/gadgets.xml", gadgets())
        config = write_config(tmp_path, smtp_port=smtp.port)
        config.write_text(config.read_text(encoding="utf-8") + sections, encoding="utf-8")
        reader = tmp_path / "reader.opml"
        reader.write_text(opml(f'<outline text="Tech"><outline type="rss" text="G" xmlUrl="{url}"/></outline>'))

        imported = cli(config, "feeds", "import", str(reader))
        assert imported.returncode == 0, imported.stderr
        assert (
            "note: folder 'Tech' (1 feed) is no section of the config, so its items are filed by the section "
            'rules; to give it a section of its own, add [[sections]] name = "Tech" to the config and import '
            "the file again"
        ) in imported.stdout, imported.stdout
        assert f"{url}  [rules]" in cli(config, "feeds", "list").stdout
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 0, sent.stderr
        [message] = smtp.messages
        text, _ = parts(message.data)
        assert "A new phone is announced" in text and "Other" in text and "Tech" not in text, text

        # The operator adds the section and imports the file again: the feed is filed there.
        config.write_text(config.read_text(encoding="utf-8") + '[[sections]]\nname = "Tech"\n', encoding="utf-8")
        again = cli(config, "feeds", "import", str(reader))
        assert f"filed {url} under 'Tech'" in again.stdout and "note:" not in again.stdout, again.stdout
        assert f"{url}  [Tech]" in cli(config, "feeds", "list").stdout
        chosen = cli(config, "subscribers", "add", "tech@example.org", "--sections", "Tech")
        assert chosen.returncode == 0, chosen.stderr
        explained = cli(config, "sections", "explain", "https://gadgets.example/phone")
        assert "Tech" in explained.stdout, explained.stdout


def test_a_feed_filed_under_a_section_the_config_lacks_goes_by_the_rules(tmp_path: Path) -> None:
    """A database from before: an OPML import stored the folder "Tech" on the feed. Its items are
    filed by the rules, not under a section nobody can choose, and `feeds list` says why."""
    config = write_config(tmp_path)
    reader = tmp_path / "reader.opml"
    reader.write_text(opml('<outline type="rss" text="G" xmlUrl="https://gadgets.example/rss"/>'))
    assert cli(config, "feeds", "import", str(reader)).returncode == 0
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        db.execute("UPDATE feeds SET section = 'Tech'")
    listing = cli(config, "feeds", "list").stdout
    assert "https://gadgets.example/rss  [rules: 'Tech' is no section]" in listing, listing


# --------------------------------------------------------------------------- CSV import


def test_a_csv_import_names_every_bad_row_at_once_with_what_was_meant(tmp_path: Path) -> None:
    """Audit: four bad rows took four runs, each with no suggestion. Now one run names them all,
    in the file's order, each with its line and the section or zone meant; nothing is imported."""
    config = write_config(tmp_path, subscribers=())
    config.write_text(
        config.read_text(encoding="utf-8") + '[[sections]]\nname = "World"\n[[sections]]\nname = "Sport"\n'
    )
    roster = tmp_path / "subs.csv"
    roster.write_text(
        "email,name,sections,timezone\n"
        "good@example.org,Good,World,Europe/Paris\n"
        "a@example.org,A,Wrold,\n"
        "b@example.org,B,sports,\n"
        "c@example.org,C,,europe/moscow\n"
        "d@example.org,D,World,,extra\n"
        "a@example.org,A again,,\n",
        encoding="utf-8",
    )
    result = cli(config, "subscribers", "import", str(roster))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{roster} line 3: 'Wrold' is not a section (did you mean 'World'?).",
        f"{roster} line 4: 'sports' is not a section (did you mean 'Sport'?).",
        f"{roster} line 5: timezone = 'europe/moscow' is not an IANA time zone (did you mean 'Europe/Moscow'?).",
        f"{roster} line 6 has 5 cells where the first line names 4 columns.",
        f"{roster} lines 3 and 7 both give the address a@example.org.",
        f"error: {roster}: 5 rows cannot be imported (each is named above).",
        "  hint: Fix those lines; nothing was imported.",
    ], result.stderr
    assert "good@example.org" not in cli(config, "subscribers", "list").stdout

    # One bad row stays one error line, with the suggestion; `subscribers add` suggests alike.
    roster.write_text("email,sections\nx@example.org,wORLD\n", encoding="utf-8")
    one = cli(config, "subscribers", "import", str(roster))
    assert f"error: {roster} line 2: 'wORLD' is not a section (did you mean 'World'?)." in one.stderr
    added = cli(config, "subscribers", "add", "y@example.org", "--sections", "Wrold")
    assert "error: 'Wrold' is not a section (did you mean 'World'?)." in added.stderr


def test_a_csv_separated_by_semicolons_is_told_to_use_commas(tmp_path: Path) -> None:
    config = write_config(tmp_path, subscribers=())
    roster = tmp_path / "excel.csv"
    roster.write_text("email;name;sections;timezone\na@example.org;A;;\n", encoding="utf-8")
    result = cli(config, "subscribers", "import", str(roster))
    assert result.returncode == 1
    assert "separates its columns with ';'" in result.stderr and "separate columns with commas" in result.stderr


# --------------------------------------------------------------------------- config errors


def test_a_config_error_names_the_line_of_the_entry_it_counts(tmp_path: Path) -> None:
    """Audit: "error: feeds #13.url is missing" made the operator count 30 [[feeds]] tables."""
    config = write_config(tmp_path)
    feeds = "".join(f'\n[[feeds]]\nurl = "https://news{i}.example.org/rss"\n' for i in range(12))
    config.write_text(
        config.read_text(encoding="utf-8") + feeds + '\n[[feeds]]\nname = "No address"\n', encoding="utf-8"
    )
    lines = config.read_text(encoding="utf-8").splitlines()
    thirteenth = [n for n, text in enumerate(lines, start=1) if text == "[[feeds]]"][12]
    result = cli(config, "check-config")
    assert result.returncode == 1
    [error] = [text for text in result.stderr.splitlines() if text.startswith("error: ")]
    assert error == (
        f"error: feeds #13.url is missing: every feed needs a url. (feeds #13: digest.toml line {thirteenth})"
    ), result.stderr


# --------------------------------------------------------------------------- an HTML page as a feed


async def test_an_html_page_given_as_a_feed_names_the_feed_it_links(tmp_path: Path) -> None:
    """Audit: "not a feed (looks like an HTML page)" gave no next step, though the corpus's heise
    page names its feed in <link rel="alternate">. Served as it is over HTTP, polled for real."""
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip(CORPUS_ABSENT)
    page = (corpus / "feeds" / "hostile" / "feedreader_html_heise.html").read_bytes()
    relative = b'<html><head><link rel="alternate" type="application/rss+xml" href="/feeds/all.rss"></head></html>'
    async with FeedServer() as srv:
        html = {"Content-Type": "text/html; charset=utf-8"}
        heise = srv.serve("/heise.html", page, headers=html)
        home = srv.serve("/home/", relative, headers=html)
        bare = srv.serve("/bare.html", b"<html><body><p>No feed here</p></body></html>", headers=html)
        # A landing page served at the feed's own address, naming that address (and an href that is
        # no URL): "use <the same URL>" would send the operator round in circles.
        itself = b'<link rel="alternate" type="application/rss+xml" href="http://[oops">'
        itself += b'<link rel="alternate" type="application/rss+xml" href="/landing.xml">'
        landing = srv.serve("/landing.xml", b"<html><head>" + itself + b"</head></html>", headers=html)
        config = write_config(
            tmp_path,
            feed_url=heise,
            tail=f'[[feeds]]\nurl = "{home}"\n[[feeds]]\nurl = "{bare}"\n[[feeds]]\nurl = "{landing}"\n',
        )
        polled = await asyncio.to_thread(poll, config)
    out = polled.stdout + polled.stderr
    assert (
        "not a feed (looks like an HTML page); this page names its feed: https://www.heise.de/rss/heise-atom.xml; "
        "use that as the feed's url"
    ) in out, out
    assert f"this page names its feed: {srv.url('/feeds/all.rss')}; use that" in out  # resolved against the page
    status = cli(config, "status").stdout
    assert "this page names its feed: https://www.heise.de/rss/heise-atom.xml" in status, status
    assert f"failing: {bare} (1x, last status 200): not a feed (looks like an HTML page); next try" in status
    assert f"failing: {landing} (1x, last status 200): not a feed (looks like an HTML page); next try" in status


# --------------------------------------------------------------------------- digest init's examples


def test_check_config_and_send_warn_of_the_example_feeds_and_readers_init_writes(tmp_path: Path) -> None:
    """Audit: `digest init` writes live example feeds (news.example.org) and subscribers
    (editor@example.org), and check-config said "config OK" with them: kept, they poll hosts that do
    not exist and mail example.org. A warning (still OK: a rehearsal may mean them)."""
    config = tmp_path / "digest.toml"
    assert cli(None, "init", "--path", str(config)).returncode == 0
    checked = cli(config, "check-config")
    assert checked.returncode == 0 and "config OK" in checked.stdout, checked.stderr
    [warning] = [line for line in checked.stderr.splitlines() if "RFC 2606" in line]
    assert warning == (
        "warning: example entries (names reserved by RFC 2606) are still in the config: feeds "
        "https://news.example.org/rss/world.xml, https://sport.example.org/feed.atom poll hosts that do not exist; "
        "subscribers editor@example.org, analyst@example.org are mailed at addresses no one reads; replace them "
        "with your own feeds and readers, or delete them."
    ), checked.stderr

    # Real names: nothing to say.
    own = config.read_text(encoding="utf-8").replace("example.org", "gazette.ru")
    config.write_text(own, encoding="utf-8")
    assert "RFC 2606" not in cli(config, "check-config").stderr


async def test_a_send_logs_the_example_entries_it_mails(tmp_path: Path) -> None:
    async with FeedServer() as srv, SmtpServer() as smtp:
        config = write_config(
            tmp_path, feed_url=srv.serve("/news.xml", rss()), smtp_port=smtp.port, subscribers=("reader@news.example",)
        )
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(tmp_path / "eml"))
        assert dry.returncode == 0 and "RFC 2606" not in dry.stderr, dry.stderr  # a dry run mails no one
        real = await asyncio.to_thread(cli, config, "send")
    assert real.returncode == 0, real.stderr
    assert "subscribers reader@news.example are mailed at addresses no one reads" in real.stderr, real.stderr


# --------------------------------------------------------------------------- a section renamed without formerly


def test_check_config_warns_of_chosen_sections_no_section_has_now(tmp_path: Path) -> None:
    """Audit: after renaming "Sport" to "Sports" without `formerly`, check-config said OK and a
    cron-run `send` said "1 skipped"; only `status` said why. check-config reads an existing
    database (never creating one) and says what status says."""
    config = write_config(tmp_path, subscribers=())
    base = config.read_text(encoding="utf-8")
    config.write_text(base + '[[sections]]\nname = "Sport"\n', encoding="utf-8")
    fresh = cli(config, "check-config")
    assert fresh.returncode == 0 and "chosen sections" not in fresh.stderr
    assert not (tmp_path / "digest.sqlite").exists()  # checking created no database
    assert cli(config, "subscribers", "add", "fan@example.org", "--sections", "Sport").returncode == 0

    config.write_text(base + '[[sections]]\nname = "Sports"\n', encoding="utf-8")
    checked = cli(config, "check-config")
    assert checked.returncode == 0 and "config OK" in checked.stdout, checked.stderr
    assert (
        "warning: chosen sections that no section has: 'Sport' (1 subscriber); those subscribers get nothing "
        'from them. If a section was renamed, add formerly = ["Sport"] to its [[sections]] entry.'
    ) in checked.stderr.splitlines(), checked.stderr

    config.write_text(base + '[[sections]]\nname = "Sports"\nformerly = ["Sport"]\n', encoding="utf-8")
    assert "chosen sections" not in cli(config, "check-config").stderr
