"""The CLI as an operator uses it: real config files, a real SQLite database, exit codes 0/1/2."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from smtpservers import Scripted, SmtpServer, make_certs

from digest.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\ntitle = "Morning Review"\ntimezone = "Europe/Moscow"\n'
        '[smtp]\npassword = "hunter2"\n'
        '[[sections]]\nname = "World"\ncategories = ["World"]\n'
        '[[sections]]\nname = "Sport"\nurl_patterns = ["/sport/"]\nkeywords = ["football"]\n'
        '[[feeds]]\nurl = "https://news.example/rss"\n'
        '[[subscribers]]\nemail = "editor@example.org"\n',
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], input=input, catch_exceptions=False)


def test_init_writes_a_config_that_check_config_accepts(tmp_path: Path) -> None:
    target = tmp_path / "digest.toml"
    first = CliRunner().invoke(main, ["init", "--path", str(target)])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["init", "--path", str(target)])
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    checked = run(target, "check-config")
    assert checked.exit_code == 0 and "config OK" in checked.output


def test_check_config_masks_secrets(config: Path) -> None:
    result = run(config, "check-config")
    assert result.exit_code == 0
    assert "hunter2" not in result.output and 'password = "********"' in result.output


def test_a_config_error_is_one_line_with_a_hint_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 99999\n")
    result = CliRunner().invoke(main, ["--config", str(bad), "check-config"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "error: smtp.port must be between 1 and 65535, not 99999."
    assert lines[1].startswith("  hint: ") and len(lines) == 2


def test_check_config_lists_the_outlets_names_and_says_what_is_wrong_with_one(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[outlets]\n"ria.ru" = "RIA Novosti"\n"iz.ru" = { name = "Izvestia", plural = true }\n')
    result = run(good, "check-config")
    assert result.exit_code == 0 and "outlets: ria.ru = RIA Novosti, iz.ru = Izvestia" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[outlets]\n"https://ria.ru" = "RIA Novosti"\n')
    result = CliRunner().invoke(main, ["--config", str(bad), "check-config"])
    assert result.exit_code == 1
    assert result.output.startswith('error: outlets."https://ria.ru" is not a site: write its host alone')


def test_usage_errors_exit_2(config: Path) -> None:
    assert CliRunner().invoke(main, ["--config", str(config), "send", "--date", "tomorrow"]).exit_code == 2
    assert CliRunner().invoke(main, ["no-such-command"]).exit_code == 2


def test_debug_shows_the_traceback_as_a_real_process_would(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    plain = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(missing), "poll"], capture_output=True, text=True
    )
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and "digest init" in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "digest", "--debug", "--config", str(missing), "poll"], capture_output=True, text=True
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_feeds_add_list_remove(config: Path) -> None:
    assert run(config, "feeds", "add", "https://sport.example/feed", "--section", "Sport").exit_code == 0
    listed = run(config, "feeds", "list")
    assert "https://sport.example/feed  [Sport]" in listed.output and "2 feeds" in listed.output
    assert run(config, "feeds", "remove", "https://sport.example/feed").exit_code == 0
    assert "1 feeds" in run(config, "feeds", "list").output
    missing = run(config, "feeds", "remove", "https://sport.example/feed")
    assert missing.exit_code == 1 and "No active feed" in missing.output


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://x.example/f",
        "data:text/xml,<rss/>",
        "/etc/passwd",
        "http://127.0.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_H5_unsafe_feed_urls_are_refused_when_added(config: Path, url: str) -> None:
    result = run(config, "feeds", "add", url)
    assert result.exit_code == 1 and result.output.startswith("error: ")


def test_opml_import_makes_folders_sections_and_export_round_trips(config: Path, tmp_path: Path) -> None:
    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        '<outline text="Sport"><outline type="rss" text="Goals" xmlUrl="https://goals.example/rss"/></outline>'
        '<outline type="rss" text="Wire" xmlUrl="https://wire.example/atom" category="/World"/>'
        '<outline type="rss" text="Bad" xmlUrl="file:///etc/passwd"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    result = run(config, "feeds", "import", str(opml))
    assert result.exit_code == 0 and "imported 2 feeds" in result.output and "1 skipped" in result.output
    listed = run(config, "feeds", "list").output
    assert "https://goals.example/rss  [Sport]" in listed and "https://wire.example/atom  [World]" in listed
    exported = run(config, "feeds", "export").output
    assert 'xmlUrl="https://goals.example/rss"' in exported and '<outline text="Sport"' in exported
    broken = tmp_path / "broken.opml"
    broken.write_text("<opml><body>")
    assert run(config, "feeds", "import", str(broken)).exit_code == 1


def test_opml_export_is_titled_as_the_sites_email_and_keeps_its_sections_names(tmp_path: Path) -> None:
    # A Russian site that keeps the default title reads "Обзор прессы" in its email and pages; its
    # export says so too, while folders keep the sections' own names, which an import reads back.
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\nlanguage = "ru"\n[[sections]]\nname = "Sport"\nkeywords = ["football"]\n'
        '[[feeds]]\nurl = "https://goals.example/rss"\nsection = "Sport"\n',
        encoding="utf-8",
    )
    exported = run(path, "feeds", "export").output
    assert "<title>Обзор прессы</title>" in exported and '<outline text="Sport"' in exported
    named = tmp_path / "named.toml"
    named.write_text(path.read_text(encoding="utf-8").replace('language = "ru"', 'language = "ru"\ntitle = "Утро"'))
    assert "<title>Утро</title>" in run(named, "feeds", "export").output


def test_opml_folders_nested_thousands_deep_import_without_exhausting_the_stack(config: Path, tmp_path: Path) -> None:
    """A hostile (or machine-made) OPML whose folders nest 5,000 deep: before, reading them
    recursed once a folder and the import died with a RecursionError traceback. The feed inside
    goes to its innermost folder's section, and feeds before and after keep their order."""
    depth = 5000
    opml = tmp_path / "deep.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        '<outline type="rss" text="First" xmlUrl="https://first.example/rss" category="/World"/>'
        + '<outline text="Folder">' * (depth - 1)
        + '<outline text="Sport"><outline type="rss" text="Deep" xmlUrl="https://deep.example/rss"/></outline>'
        + "</outline>" * (depth - 1)
        + '<outline type="rss" text="Last" xmlUrl="https://last.example/rss"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    result = run(config, "feeds", "import", str(opml))
    assert result.exit_code == 0 and "imported 3 feeds" in result.output, result.output
    listed = run(config, "feeds", "list").output
    assert "https://deep.example/rss  [Sport]" in listed and "https://first.example/rss  [World]" in listed
    assert listed.index("first.example") < listed.index("deep.example") < listed.index("last.example")


def test_subscribers_add_validates_the_address_and_sections(config: Path) -> None:
    bad = run(config, "subscribers", "add", "not-an-address")
    assert bad.exit_code == 1 and "not a valid email address" in bad.output
    unknown = run(config, "subscribers", "add", "a@example.org", "--sections", "Weather")
    assert unknown.exit_code == 1 and "'Weather' is not a section" in unknown.output
    ok = run(config, "subscribers", "add", "A@Example.org", "--sections", "World,Sport", "--timezone", "Asia/Tokyo")
    assert ok.exit_code == 0
    listed = run(config, "subscribers", "list").output
    assert "A@example.org  active  [World, Sport]  tz=Asia/Tokyo" in listed  # the domain lower-cased only
    assert "editor@example.org  active  [all sections]  tz=Europe/Moscow" in listed


def test_a_name_given_on_the_command_line_is_one_line_as_the_configs_are(config: Path, tmp_path: Path) -> None:
    """check-config refuses a name with a control character; `--name` did not, and stored a tab or a
    line break in a subscriber's or a feed's name. Now it is refused in one line, and nothing is added."""
    for args in (
        ("subscribers", "add", "ann@example.org", "--name", "Ann\tSmith"),
        ("feeds", "add", "https://lines.example/rss", "--name", "Two\nlines"),
    ):
        refused = run(config, *args)
        assert refused.exit_code == 1, refused.output
        lines = refused.output.strip().splitlines()
        assert lines[0].startswith("error: --name = ") and "control character" in lines[0]
        assert lines[1].startswith("  hint: ") and len(lines) == 2
    assert "ann@example.org" not in run(config, "subscribers", "list").output
    assert "lines.example" not in run(config, "feeds", "list").output
    assert run(config, "subscribers", "add", "ann@example.org", "--name", "Ann Smith").exit_code == 0
    # An OPML export's titles may carry a tab, a line break or a C1 control as character references.
    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        '<outline text="World&#10;News"><outline type="rss" text="The&#9;Wire&#150;" xmlUrl="https://wire.example/atom"/>'
        "</outline></body></opml>",
        encoding="utf-8",
    )
    imported = run(config, "feeds", "import", str(opml))
    # The folder is no section of the config (its feed goes by the rules): named on one line.
    assert imported.exit_code == 0 and "note: folder 'World News' (1 feed)" in imported.output
    exported = run(config, "feeds", "export").output
    assert 'text="The Wire"' in exported and "&#9;" not in exported and "&#10;" not in exported
    assert "\x96" not in exported


def test_subscribers_csv_import_is_all_or_nothing_and_export_round_trips(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name,sections,timezone\nok@example.org,Ok,World,\nbroken@,X,,\n", encoding="utf-8")
    result = run(config, "subscribers", "import", str(bad))
    assert result.exit_code == 1 and "line 3" in result.output
    assert "ok@example.org" not in run(config, "subscribers", "list").output
    good = tmp_path / "good.csv"
    good.write_text(
        "email,name,sections,timezone\nok@example.org,Ok,World;Sport,Asia/Tokyo\neditor@example.org,Chief,,\n",
        encoding="utf-8",
    )
    result = run(config, "subscribers", "import", str(good))
    assert "1 added, 1 updated" in result.output
    exported = run(config, "subscribers", "export").output.splitlines()
    assert exported[0] == "email,name,sections,timezone,status"
    assert "ok@example.org,Ok,World;Sport,Asia/Tokyo,active" in exported


def test_an_imported_address_keeps_its_case_and_another_spelling_is_the_same_subscriber(
    config: Path, tmp_path: Path
) -> None:
    # RFC 5321 section 2.4: a local part may be case-sensitive, a domain is not.
    first = tmp_path / "first.csv"
    first.write_text("email,name,sections,timezone\nAnn.Lee@Example.ORG,Ann,World,\nEDITOR@example.org,Chief,,\n")
    result = run(config, "subscribers", "import", str(first))
    assert result.exit_code == 0 and "1 added, 1 updated" in result.output, result.output
    listed = run(config, "subscribers", "list").output
    assert "Ann.Lee@example.org  active" in listed
    assert "editor@example.org  active" in listed  # the config's row as it was
    assert "EDITOR" not in listed and "ann.lee" not in listed
    again = tmp_path / "again.csv"
    again.write_text("email,name,sections,timezone\nann.lee@example.org,Ann Lee,Sport,\n")
    assert "1 updated" in run(config, "subscribers", "import", str(again)).output
    exported = run(config, "subscribers", "export").output.splitlines()
    assert [line for line in exported if "ann" in line.lower()] == ["Ann.Lee@example.org,Ann Lee,Sport,,active"]
    added = run(config, "subscribers", "add", "ANN.LEE@example.org")
    assert added.exit_code == 1 and "already subscribed" in added.output
    twice = tmp_path / "twice.csv"
    twice.write_text("email,name,sections,timezone\nBo@example.org,,,\nbo@EXAMPLE.org,,,\n")
    refused = run(config, "subscribers", "import", str(twice))
    assert refused.exit_code == 1 and "lines 2 and 3 both give the address Bo@example.org" in refused.output
    shown = run(config, "subscribers", "show", "ann.lee@EXAMPLE.ORG")
    assert shown.exit_code == 0 and "Ann.Lee@example.org" in shown.output


def sections_config(tmp_path: Path, toml: str) -> Path:
    """A config of nothing but these sections."""
    config = tmp_path / "digest.toml"
    config.write_text(toml, encoding="utf-8")
    return config


def test_sections_explain_points_out_a_capitalised_keyword_the_text_writes_in_lower_case(tmp_path: Path) -> None:
    config = sections_config(
        tmp_path,
        '[[sections]]\nname = "Business & Economy"\nkeywords = ["Bitcoin", "UN"]\n'
        '[[sections]]\nname = "World"\n[[sections.rules]]\nkeywords = [["Crimea"], ["referendum"]]\n',
    )
    lower = run(config, "sections", "explain", "bitcoins fall as miners sell")
    assert lower.exit_code == 0 and lower.output.startswith("Other: ")
    assert "note: keyword 'Bitcoin' of section 'Business & Economy' is written with a capital" in lower.output
    assert "write 'bitcoin' to match it either way" in lower.output
    named = run(config, "sections", "explain", "Bitcoin falls as miners sell")
    assert named.output.startswith("Business & Economy: ") and "note:" not in named.output
    # A word that only shares the name's stem is what the capital keeps apart; an acronym is meant as capitals.
    assert "note:" not in run(config, "sections", "explain", "o crime e o referendum da un").output
    assert "keyword 'Crimea' of section 'World'" in run(config, "sections", "explain", "crimea referendum").output


def test_sections_explain_points_out_a_derived_word_a_keyword_does_not_match(tmp_path: Path) -> None:
    config = sections_config(
        tmp_path,
        '[[sections]]\nname = "Society & Culture"\nkeywords = ["culture", "Japan"]\n'
        '[[sections]]\nname = "Business & Economy"\nkeywords = ["imports"]\n',
    )
    derived = run(config, "sections", "explain", "A cultural revival, and why it is important")
    assert derived.exit_code == 0 and derived.output.startswith("Other: ")
    assert (
        "note: keyword 'culture' of section 'Society & Culture' does not match 'cultural', a word derived from it"
        " (keywords match a word's inflections only); add 'cultural' if it should match too." in derived.output
    )
    assert "keyword 'imports' of section 'Business & Economy' does not match 'important'" in derived.output
    # An inflection matches, so there is nothing to point out; nor for a name's derived word, which matches.
    inflected = run(config, "sections", "explain", "Imports fall as cultures meet")
    assert inflected.output.startswith("Society & Culture: ") and "note:" not in inflected.output
    assert "note:" not in run(config, "sections", "explain", "Japanese stocks rise").output


def test_sections_explain_says_which_rule_matched(config: Path) -> None:
    by_url = run(config, "sections", "explain", "https://news.example/sport/final-score")
    assert by_url.exit_code == 0 and by_url.output.startswith("Sport: ")
    by_title = run(config, "sections", "explain", "Football cup final tonight")
    assert by_title.output.startswith("Sport: ")
    nothing = run(config, "sections", "explain", "Weather tomorrow")
    assert nothing.output.startswith("Other: ")


# --------------------------------------------------------------------------- check-config --smtp


def smtp_config(tmp_path: Path, port: int, *extra: str) -> Path:
    path = tmp_path / "smtp.toml"
    lines = [
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'sender = "Review <review@review.example>"',
        "timeout = 5",
    ]
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


def test_check_config_smtp_greets_the_relay_and_sends_nothing(tmp_path: Path) -> None:
    with SmtpServer(size_limit=10_240_000) as srv:
        result = run(smtp_config(tmp_path, srv.port), "check-config", "--smtp")
    assert result.exit_code == 0, result.output
    tail = result.output.split("config OK\n", 1)[1].splitlines()
    assert tail[0].startswith(f"smtp 127.0.0.1:{srv.port}: 220 smtp.test ")
    assert tail[1:] == [
        '  TLS: none (security = "none"): mail goes in plain text',
        "  AUTH: not used ([smtp] username unset); the server offers AUTH LOGIN PLAIN ATTEMPTS",
        "  SIZE: 10,240,000 bytes a message at most",
        "  SMTPUTF8: not offered (an address with a non-ASCII local part cannot be sent)",
        "  MAIL FROM:<review@review.example>: 250 OK",
        "smtp OK: nothing was sent",
    ]
    assert srv.messages == [] and srv.handler.rcpt_seen == [] and srv.handler.quits == 1


def test_check_config_smtp_does_starttls_and_auth_as_configured(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with SmtpServer(tls="starttls", certs=certs, require_auth=True, auth_needs_tls=True) as srv:
        config = smtp_config(
            tmp_path,
            srv.port,
            'security = "starttls"',
            f'ca_file = "{certs.ca_file}"',
            'username = "digest"',
            'password = "s3cret"',
        )
        result = run(config, "check-config", "--smtp")
    assert result.exit_code == 0, result.output
    assert re.search(r"  TLS: STARTTLS, TLSv1\.[23], certificate verified for 127\.0\.0\.1\n", result.output)
    assert "  AUTH: accepted for 'digest'\n" in result.output and srv.handler.auth_attempts == 1
    assert "s3cret" not in result.output and srv.messages == []


@pytest.mark.parametrize(
    ("server", "extra", "error", "hint"),
    [
        (  # implicit TLS against a plain port: the port speaks plain SMTP
            {},
            ['security = "tls"'],
            "error: TLS with the SMTP server 127.0.0.1:{port} failed: [SSL: WRONG_VERSION_NUMBER]",
            'The server speaks plain SMTP on this port: use security = "starttls"',
        ),
        (  # a wrong password
            {"handler": Scripted(auth="reject"), "require_auth": True},
            ['username = "digest"', 'password = "wrong"'],
            "error: The SMTP server 127.0.0.1:{port} refused the credentials of 'digest': 535 5.7.8",
            "",
        ),
        (  # the relay does not let this account send as the sender (audit finding 1)
            {"handler": Scripted(mail="553 5.7.1 <review@review.example>: Sender address rejected")},
            [],
            "error: The SMTP server 127.0.0.1:{port} refused the sender 'review@review.example': 553 5.7.1",
            "Check [smtp] sender",
        ),
        (  # busy: a send would only defer
            {"handler": Scripted(greeting="421 4.3.2 too busy")},
            [],
            "error: The SMTP server 127.0.0.1:{port} is not ready: 421 4.3.2 too busy.",
            "A send would defer its messages",
        ),
    ],
    ids=["tls-on-a-plain-port", "wrong-password", "sender-refused", "busy"],
)
def test_check_config_smtp_stops_with_the_error_and_hint_a_send_would_give(
    tmp_path: Path, server: dict[str, Any], extra: list[str], error: str, hint: str
) -> None:
    with SmtpServer(**server) as srv:
        result = run(smtp_config(tmp_path, srv.port, *extra), "check-config", "--smtp")
    assert result.exit_code == 1
    # (the test server's own log lines, binary bytes and all, are in this process's output too)
    said = [line for line in result.output.split("config OK\n", 1)[1].splitlines() if "mail.log" not in line]
    errors, hints = [x for x in said if x.startswith("error: ")], [x for x in said if x.startswith("  hint: ")]
    assert len(errors) == 1 and errors[0].startswith(error.format(port=srv.port)), result.output
    assert len(hints) == 1 and hint in hints[0]
    assert "WARNING digest" not in result.output  # nothing of ours beside the one error
    assert srv.messages == [] and srv.handler.rcpt_seen == []


def test_check_config_smtp_names_a_closed_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    result = run(smtp_config(tmp_path, port), "check-config", "--smtp")
    assert result.exit_code == 1
    assert f"error: Cannot connect to the SMTP server 127.0.0.1:{port}: " in result.output
    assert "are [smtp] host and port right?" in result.output


def test_check_config_smtp_tries_the_return_path_a_send_would_use(tmp_path: Path) -> None:
    # With [bounces] domain, MAIL FROM is a VERP address under it, not [smtp] sender: a relay
    # that lets the account send only as the latter refuses every edition; check-config says so.
    with SmtpServer(Scripted(mail=lambda t: None if t.address.startswith("bounce+") else "553 5.7.1 no")) as srv:
        config = smtp_config(tmp_path, srv.port)
        config.write_text(config.read_text() + '[bounces]\ndomain = "bounces.review.example"\n')
        result = run(config, "check-config", "--smtp")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"  MAIL FROM:<bounce\+[0-9a-f]{32}-0-[0-9a-f]{12}@bounces\.review\.example>: 250 OK", result.output
    )
