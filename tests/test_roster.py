"""Subscriber lists in and out as an operator moves them: the real `python -m digest subscribers
add/import/export` against real SQLite files, and the real `send` to aiosmtpd on loopback.
Ids (G10, S14, L2) are those of docs/reliability.md."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import SmtpServer
from test_faults import NOW, cli, one_error, poll, rss, write_config

from digest import roster
from digest.store import Store
from digest.store import subscribers as store_subscribers

HEADER = "email,name,sections,timezone,status\n"


def site(folder: Path, *, feed_url: str | None = None, smtp_port: int = 25) -> Path:
    """A config of no subscribers in `folder`, its database beside it."""
    folder.mkdir(exist_ok=True)
    return write_config(folder, feed_url=feed_url, smtp_port=smtp_port, subscribers=())


def imported(config: Path, text: str, name: str = "roster.csv") -> str:
    """`digest subscribers import` of `text`; its summary line."""
    path = config.parent / name
    path.write_text(text, encoding="utf-8")
    result = cli(config, "subscribers", "import", str(path))
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(config: Path, text: str, name: str = "roster.csv") -> str:
    """The one error line of an import of `text`, after checking nothing was imported."""
    before = cli(config, "subscribers", "export").stdout
    path = config.parent / name
    path.write_text(text, encoding="utf-8")
    line = one_error(cli(config, "subscribers", "import", str(path)))
    assert cli(config, "subscribers", "export").stdout == before, "a refused import changed the database"
    return line


def listing(config: Path) -> str:
    result = cli(config, "subscribers", "list")
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------- status carried over (G10)


async def test_G10_an_export_imported_into_another_database_keeps_who_unsubscribed_paused_or_was_suspended(
    tmp_path: Path,
) -> None:
    """The README's way from SQLite to PostgreSQL: export from one database, import into another.
    Before, the import dropped the status column and signed everyone up again, all sections."""
    a = site(tmp_path / "a")
    for who, sections in (("on", ""), ("gone", "Sport"), ("failing", "World"), ("resting", "World,Sport")):
        args = ("--sections", sections) if sections else ()
        added = cli(a, "subscribers", "add", f"{who}@example.org", "--name", who.title(), *args)
        assert added.returncode == 0, added.stderr
    # What the web pages and delivery do to them, through the real store on A's file.
    store = Store(f"sqlite:///{tmp_path / 'a' / 'digest.sqlite'}")
    try:
        by_email = {s.email: s.id for s in store.list_subscribers()}
        store.set_status(by_email["gone@example.org"], store_subscribers.UNSUBSCRIBED, now=NOW)
        store.set_status(by_email["resting@example.org"], store_subscribers.PAUSED, now=NOW)
        for _ in range(3):
            store.count_permanent_failure(by_email["failing@example.org"], suspend_after=3, now=NOW)
    finally:
        store.close()
    exported = cli(a, "subscribers", "export", "--out", str(tmp_path / "a.csv"))
    assert exported.returncode == 0, exported.stderr
    a_rows = (tmp_path / "a.csv").read_text(encoding="utf-8")
    assert "gone@example.org,Gone,Sport,,unsubscribed" in a_rows.splitlines()

    async with FeedServer() as feed, SmtpServer() as smtp:
        b = site(tmp_path / "b", feed_url=feed.serve("/news.xml", rss()), smtp_port=smtp.port)
        summary = imported(b, a_rows, "from-a.csv")
        assert "2 added, 0 updated, 0 unchanged, 2 unsubscribed or suspended as the file says, 0 left" in summary
        assert cli(b, "subscribers", "export").stdout == a_rows
        assert (await asyncio.to_thread(poll, b)).returncode == 0
        sent = await asyncio.to_thread(cli, b, "send")
        assert sent.returncode == 0, sent.stderr
        received = sorted(m.rcpt_tos[0] for m in smtp.messages)
    assert received == ["on@example.org"]
    # Suppressed in B as in A: neither the CLI, another import nor the config signs them up again.
    assert "unsubscribed; digest never mails that address again" in one_error(
        cli(b, "subscribers", "add", "gone@example.org")
    )
    again = imported(b, HEADER + "gone@example.org,Gone,,,active\nfailing@example.org,,,,\n", "again.csv")
    assert "2 left as they are (unsubscribed, suspended or erased here)" in again
    b.write_text(b.read_text(encoding="utf-8") + '[[subscribers]]\nemail = "gone@example.org"\n', encoding="utf-8")
    shown = cli(b, "subscribers", "show", "gone@example.org").stdout
    assert "status    unsubscribed  [set by subscriber]" in shown and "suppressed unsubscribed since" in shown
    assert "status    suspended  [set by delivery]" in cli(b, "subscribers", "show", "failing@example.org").stdout
    assert "status    paused  [set by subscriber]" in cli(b, "subscribers", "show", "resting@example.org").stdout


def test_G10_an_import_stops_an_active_address_the_file_says_unsubscribed_or_suspended(tmp_path: Path) -> None:
    config = site(tmp_path)
    imported(config, HEADER + "ann@example.org,Ann,,,\nbob@example.org,Bob,,,\ncat@example.org,Cat,,,paused\n")
    summary = imported(
        config,
        HEADER + "ann@example.org,Ann,,,unsubscribed\nbob@example.org,Bob,,,Suspended\ncat@example.org,Cat,,,active\n",
    )
    assert "0 added, 0 updated, 1 unchanged, 2 unsubscribed or suspended as the file says" in summary
    listed = listing(config)
    assert "ann@example.org  unsubscribed" in listed and "bob@example.org  suspended" in listed
    # "active" does not resume someone who paused: that is theirs to do on their preferences page.
    assert "cat@example.org  paused" in listed
    assert "suppressed failed since" in cli(config, "subscribers", "show", "bob@example.org").stdout


def test_an_unknown_status_is_one_line_naming_its_line(tmp_path: Path) -> None:
    config = site(tmp_path)
    line = refused(config, HEADER + "ann@example.org,Ann,,,active\nbob@example.org,Bob,,,gone away\n")
    assert "line 3: the status 'gone away' is not one of active, paused, unsubscribed" in line


def test_the_statuses_an_import_reads_are_those_the_store_keeps() -> None:
    assert roster.STATUSES == store_subscribers.STATUSES


# --------------------------------------------------------------------------- counts


def test_S14_importing_the_same_list_again_counts_its_rows_unchanged(tmp_path: Path) -> None:
    config = site(tmp_path)
    text = HEADER + "ann@example.org,Ann,World;Sport,Asia/Tokyo,\nbob@example.org,Bob,,,active\n"
    assert "2 added, 0 updated, 0 unchanged" in imported(config, text)
    assert "0 added, 0 updated, 2 unchanged" in imported(config, text)
    changed = text.replace("Bob,", "Robert,") + "cat@example.org,,,,\n"
    assert "1 added, 1 updated, 1 unchanged, 0 unsubscribed or suspended as the file says" in imported(config, changed)


# --------------------------------------------------------------------------- what a file may say


def test_an_address_twice_in_one_file_names_both_lines_and_imports_nothing(tmp_path: Path) -> None:
    config = site(tmp_path)
    text = HEADER + "ann@example.org,Ann,,,\nbob@example.org,,,,\nAnn@Example.ORG ,Ann,,,unsubscribed\n"
    line = refused(config, text)
    assert "lines 2 and 4 both give the address ann@example.org" in line


def test_a_row_with_cells_but_no_address_is_refused_with_its_line(tmp_path: Path) -> None:
    """Before, such a row was skipped without a word: the operator's Bob was never imported. A row of
    empty cells (",,,,", a spreadsheet's blank line) is still skipped."""
    config = site(tmp_path)
    line = refused(config, HEADER + "ann@example.org,Ann,,,\n,,,,\n ,Bob,World,,\n")
    assert "roster.csv line 4 has no email address" in line
    imported(config, HEADER + "ann@example.org,Ann,,,\n,,,,\n")
    assert "ann@example.org" in listing(config)


def test_L2_an_open_quote_or_a_row_of_too_few_or_too_many_cells_is_refused_with_its_line(tmp_path: Path) -> None:
    """Before, the open quote put the sections and time zone into the name, silently."""
    config = site(tmp_path)
    line = refused(config, HEADER + 'ann@example.org,Ann,,,\nnew6@example.com,"unterminated,World,UTC\n')
    assert 'line 3: a quote (") opened in this row is never closed' in line
    line = refused(config, HEADER + 'ann@example.org,"Ann" Lee,,,\n')
    assert "line 2 cannot be read as CSV" in line
    assert "line 3 has 3 cells where the first line names 5 columns" in refused(
        config, HEADER + "ann@example.org,Ann,,,\nbob@example.org,Bob,World\n"
    )
    assert "line 2 has 6 cells where the first line names 5 columns" in refused(
        config, HEADER + "ann@example.org,Smith, Ann,,,\n"
    )


def test_an_error_names_the_line_its_row_starts_on_after_blank_lines_and_a_multi_line_cell(tmp_path: Path) -> None:
    config = site(tmp_path)
    text = HEADER + '\nann@example.org,"Ann\nLee",,,\n\nbroken@,Bob,,,\n'
    assert "roster.csv line 6: 'broken@' is not a valid email address" in refused(config, text)


def test_an_empty_sections_choice_is_refused_on_add_and_import_and_an_empty_cell_means_all(tmp_path: Path) -> None:
    """Before, `--sections ""` stored a subscriber with no section, who never got an email."""
    config = site(tmp_path)
    for value in ("", ",", " , "):
        added = cli(config, "subscribers", "add", "ann@example.org", "--sections", value)
        assert "names no section" in one_error(added)
    assert "ann@example.org" not in listing(config)
    assert "line 3: the sections cell ';' names no section" in refused(
        config, HEADER + "bob@example.org,Bob,,,\nann@example.org,Ann,;,,\n"
    )
    imported(config, HEADER + "bob@example.org,Bob,,,\n")
    assert "bob@example.org  active  [all sections]" in listing(config)


def test_a_name_over_200_characters_is_refused_on_add_and_import(tmp_path: Path) -> None:
    config = site(tmp_path)
    line = one_error(cli(config, "subscribers", "add", "ann@example.org", "--name", "A" * 100_000))
    assert "--name is 100,000 characters long; a subscriber's name may have at most 200" in line
    assert len(line) < 200  # the name itself is not quoted back
    assert "ann@example.org" not in listing(config)
    line = refused(config, HEADER + "bob@example.org,Bob,,,\nann@example.org," + "A" * 201 + ",,,\n")
    assert "line 3: the name is 201 characters long" in line
    assert cli(config, "subscribers", "add", "ann@example.org", "--name", "A" * 200).returncode == 0
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        assert db.execute("SELECT length(name) FROM subscribers").fetchone() == (200,)


def test_an_unreadable_sections_cell_stops_an_import_only_for_someone_who_gets_mail(tmp_path: Path) -> None:
    # An export writes "(unreadable)" for sections the database could not read (R7). For an active
    # subscriber an import must not guess their choice; for one who unsubscribed or was suspended no
    # edition reads it, and the whole list must not stop on them.
    config = site(tmp_path / "site")
    text = HEADER + "gone@example.org,,(unreadable),,unsubscribed\nbounced@example.org,,(unreadable),,suspended\n"
    assert "0 added, 0 updated, 0 unchanged, 2 unsubscribed or suspended as the file says" in imported(config, text)
    listed = cli(config, "subscribers", "list").stdout
    assert "gone@example.org  unsubscribed" in listed and "bounced@example.org  suspended" in listed
    error = refused(config, HEADER + "reader@example.org,,(unreadable),,active\n")
    assert "the sections of reader@example.org could not be read when this list was exported" in error


# --------------------------------------------------------------------------- unsubscribe on request (G10)


async def test_G10_unsubscribe_on_request_keeps_the_subscribers_choices_and_nothing_but_their_sign_up_undoes_it(
    tmp_path: Path,
) -> None:
    """Audit finding 11: a request by mail ([smtp] unsubscribe_mailto) could only be met by erasing
    the subscriber, or by a one-row CSV that also reset their sections to all and their name."""
    async with FeedServer() as feed, SmtpServer() as smtp:
        config = write_config(
            tmp_path, feed_url=feed.serve("/news.xml", rss()), smtp_port=smtp.port, subscribers=("cfg@example.org",)
        )
        for args in (
            ("ann@example.org", "--name", "Ann", "--sections", "Sport"),
            ("bob@example.org",),
            ("pat@example.org",),
        ):
            assert cli(config, "subscribers", "add", *args).returncode == 0
        store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
        try:
            pat = store.get_subscriber(email="pat@example.org")
            assert pat is not None
            store.set_status(pat.id, store_subscribers.PAUSED, now=NOW)  # on their preferences page
        finally:
            store.close()

        # One line per address; a typo (or an alias) exits 1, naming it, and the others are done.
        asked = cli(
            config,
            "subscribers",
            "unsubscribe",
            "Ann@Example.org",
            "cfg@example.org",
            "pat@example.org",
            "nobdy@example.org",
        )
        assert asked.stdout.splitlines() == [
            f"unsubscribed {who}@example.org (sections and settings kept; only their own sign-up subscribes them again)"
            for who in ("ann", "cfg", "pat")
        ], asked.stdout
        assert "nobdy@example.org is not a subscriber here; nothing changed" in asked.stderr
        assert "No subscriber nobdy@example.org (1 of the 4 addresses given)" in one_error(asked)
        again = cli(config, "subscribers", "unsubscribe", "ann@example.org")  # idempotent
        assert again.returncode == 0 and again.stdout == "ann@example.org was already unsubscribed; nothing changed\n"

        shown = cli(config, "subscribers", "show", "ann@example.org").stdout
        assert "name      Ann  [set by cli]" in shown and "sections  Sport  [set by cli]" in shown, shown
        assert "status    unsubscribed  [set by cli]" in shown and "suppressed unsubscribed since" in shown, shown
        # The operator acted on the person's word: neither the CLI, an import nor the config undoes it.
        assert "ann@example.org unsubscribed; digest never mails" in one_error(
            cli(config, "subscribers", "add", "ann@example.org")
        )
        assert "1 left as they are" in imported(config, HEADER + "ann@example.org,Ann,,,active\n")
        assert "cfg@example.org  unsubscribed" in listing(config)  # still listed in the config

        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 0, sent.stderr
        assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["bob@example.org"]


def test_a_config_subscriber_who_signed_up_themselves_stays_subscribed_when_their_entry_is_deleted(
    tmp_path: Path,
) -> None:
    """Audit finding 7: the sync set them to `removed`, stopping mail they had confirmed they want."""
    config = write_config(tmp_path, subscribers=("cfg@example.org", "op@example.org"))
    assert cli(config, "subscribers", "list").returncode == 0
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:
        cfg_sub = store.get_subscriber(email="cfg@example.org")
        assert cfg_sub is not None
        store.set_status(cfg_sub.id, store_subscribers.UNSUBSCRIBED, now=NOW)  # one-click, then a sign-up
        store.confirm_subscription(
            "cfg@example.org",
            sections=None,
            timezone=None,
            issued=NOW + timedelta(minutes=1),
            now=NOW + timedelta(minutes=2),
        )
    finally:
        store.close()
    write_config(tmp_path, subscribers=())  # the operator deletes both entries
    shown = cli(config, "subscribers", "show", "cfg@example.org")
    assert "1 subscriber(s) deleted from the config signed up or resumed the emails themselves" in shown.stderr
    assert "(not in the config)" in shown.stdout and "status    active  [set by subscriber]" in shown.stdout
    assert "status    removed  [set by config]" in cli(config, "subscribers", "show", "op@example.org").stdout
    assert "WARNING" not in cli(config, "subscribers", "list").stderr  # said once, when it happened


# --------------------------------------------------------------------------- lifting a suspension


def test_reinstate_lifts_a_suspension_deliveries_caused_and_never_a_subscribers_own_stop(tmp_path: Path) -> None:
    """Before, a subscriber suspended by failed deliveries (a relay's mistake, a mailbox since mended)
    could never be mailed again: `add` refused them and no command lifted it."""
    config = site(tmp_path)
    for who in ("ann", "bob", "cat", "dan"):
        assert cli(config, "subscribers", "add", f"{who}@example.org").returncode == 0
    assert cli(config, "subscribers", "unsubscribe", "cat@example.org").returncode == 0
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:
        ann, bob = store.get_subscriber(email="ann@example.org"), store.get_subscriber(email="bob@example.org")
        assert ann is not None and bob is not None
        for _ in range(3):
            store.count_permanent_failure(ann.id, suspend_after=3, now=NOW)
        store.record_bounce(
            dedupe="c1", subscriber_id=bob.id, edition_id=None, kind="complaint", status=None, diagnostic=None,
            via="arf", now=NOW, threshold=3.0, half_life=timedelta(days=7),
        )  # fmt: skip
    finally:
        store.close()
    assert "ann@example.org  suspended" in listing(config)
    added = cli(config, "subscribers", "add", "ann@example.org")
    assert "it is suspended, and `add` does not lift that" in one_error(added)
    assert "hint: Once the mailbox works again: `digest subscribers reinstate ann@example.org`" in added.stderr

    done = cli(config, "subscribers", "reinstate", "ann@example.org")
    assert done.returncode == 0 and "reinstated ann@example.org" in done.stdout, done.stderr
    shown = cli(config, "subscribers", "show", "ann@example.org").stdout
    assert "active  [set by cli]" in shown and "suppressed" not in shown and "strikes   0 of 3" in shown, shown

    # A spam complaint, an unsubscribe and an active address are not the operator's to lift: exit 1.
    refused = cli(config, "subscribers", "reinstate", "bob@example.org", "cat@example.org", "dan@example.org")
    assert refused.returncode == 1
    assert "bob@example.org reported an edition as spam; only their own sign-up" in refused.stderr
    assert "cat@example.org unsubscribed; only their own sign-up" in refused.stderr
    assert "dan@example.org is active; nothing changed" in refused.stdout
    assert "Not reinstated: bob@example.org, cat@example.org (2 of the 3 addresses given)" in refused.stderr
    states = listing(config)
    assert "bob@example.org  suspended" in states and "cat@example.org  unsubscribed" in states
