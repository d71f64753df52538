"""Config: validated before any I/O, every error names its key, the example stays in step."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import re
import subprocess
import sys
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest import config as cfg
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_config_is_exactly_what_init_writes() -> None:
    text = (ROOT / "config" / "digest.example.toml").read_text(encoding="utf-8")
    assert text == cfg.example_toml(), "regenerate with: digest init --path config/digest.example.toml --force"


def test_the_example_documents_every_setting_with_its_default() -> None:
    text = (ROOT / "config" / "digest.example.toml").read_text(encoding="utf-8")
    for table, cls in cfg.TABLES.items():
        block = text.split(f"[{table}]", 1)[1]
        for f in dataclasses.fields(cls):
            assert f"# {f.name} = " in block, f"{table}.{f.name} is not documented in the example config"
            if f.default not in (dataclasses.MISSING, None, ""):
                assert f"# {f.name} = {cfg.toml_value(f.default)}" in block, f"{table}.{f.name} default differs"


def test_the_example_loads_with_the_newsroom_sections_in_order() -> None:
    settings = cfg.from_mapping(tomllib.loads(cfg.example_toml()), env={})
    assert settings.section_names[:8] == cfg.DEFAULT_SECTIONS
    assert settings.digest.max_item_age == timedelta(hours=48)
    assert settings.digest.send_at == time(7, 0)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"smtp": {"port": 70000}}, "smtp.port"),
        ({"smtp": {"port": "25"}}, "smtp.port"),
        ({"smtp": {"security": "ssl"}}, "smtp.security"),
        ({"digest": {"timezone": "Mars/Olympus"}}, "digest.timezone"),
        ({"digest": {"send_at": "7am"}}, "digest.send_at"),
        ({"digest": {"max_item_age": "two days"}}, "digest.max_item_age"),
        ({"digest": {"base_url": "ftp://x"}}, "digest.base_url"),
        ({"digest": {"colour": "red"}}, "digest.colour"),
        ({"feeds": [{"name": "no url"}]}, "feeds #1.url"),
        ({"feeds": [{"url": "file:///etc/passwd"}]}, "feeds #1.url"),
        ({"feeds": [{"url": "https://a.example/f", "section": "Nope"}]}, "feeds #1.section"),
        ({"subscribers": [{"email": "x@y.z", "sections": ["Nope"]}]}, "subscribers #1.sections"),
        ({"subscribers": [{"email": "x@y.z", "timezone": "Nowhere"}]}, "subscribers #1.timezone"),
        ({"sections": [{"name": "A", "url_patterns": ["("]}]}, "sections #1.url_patterns"),
        ({"smpt": {}}, "[smpt]"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg.from_mapping(doc, env={})
    assert key in err.value.message
    assert "\n" not in err.value.message


def test_read_also_min_must_stay_below_the_one_story_bar_and_the_defaults_do() -> None:
    """config asks clustering's pair_threshold only when one of the two settings is not its default
    (so `digest poll` need not import clustering): the defaults must therefore pass the check."""
    from digest.cluster import pair_threshold

    defaults = cfg.DigestSettings()
    assert defaults.read_also_min < pair_threshold(defaults.cluster_threshold)
    for digest in (
        {"read_also_min": 0.9},
        {"cluster_threshold": 0.05},
        {"cluster_threshold": 0.3, "read_also_min": 0.9},
    ):
        with pytest.raises(ConfigError, match="digest.read_also_min must be below"):
            cfg.from_mapping({"digest": digest}, env={})
    assert (
        cfg.from_mapping({"digest": {"cluster_threshold": 0.3, "read_also_min": 0.5}}, env={}).digest.read_also_min
        == 0.5
    )


def test_secrets_come_from_the_environment_and_never_print(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    settings = cfg.from_mapping(
        {"smtp": {"password": "in-file"}},
        env={
            "DIGEST_SMTP_PASSWORD": "s3cret",
            "DIGEST_DIGEST_SECRET_FILE": str(secret_file),
            "DIGEST_SMTP_PORT": "587",
        },
    )
    assert settings.smtp.password == "s3cret"
    assert settings.digest.secret == "from-a-file"
    assert settings.smtp.port == 587
    described = cfg.describe(settings)
    assert described["smtp"]["password"] == "********"
    assert "s3cret" not in repr(described)


def test_the_database_defaults_to_a_sqlite_file_beside_the_config(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[digest]\ntitle = "T"\n')
    settings = cfg.load(path, env={})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'digest.sqlite'}"


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No config file") as err:
        cfg.load(tmp_path / "absent.toml", env={})
    assert "digest init" in err.value.hint
    broken = tmp_path / "broken.toml"
    broken.write_text("[digest\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfg.load(broken, env={})


def test_durations_read_like_people_write_them() -> None:
    assert cfg.parse_duration("48h") == timedelta(hours=48)
    assert cfg.parse_duration("1h30m") == timedelta(minutes=90)
    assert cfg.parse_duration("7d") == timedelta(days=7)
    assert cfg.parse_duration("soon") is None


# --------------------------------------------------------------------------- issue 9: small things


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        ("false", False),
        ("0", False),
        ("no", False),
        (" No ", False),
    ],
)
def test_a_boolean_from_the_environment_takes_the_six_plain_words(word: str, value: bool) -> None:
    assert cfg.from_mapping({}, env={"DIGEST_WEB_ENABLED": word}).web.enabled is value


@pytest.mark.parametrize("word", ["ture", "on", "", "2", "enabled"])
def test_any_other_boolean_word_from_the_environment_is_an_error_naming_the_variable(word: str) -> None:
    with pytest.raises(ConfigError, match=r"web.enabled must be true or false.*\(from the environment\)") as err:
        cfg.from_mapping({}, env={"DIGEST_WEB_ENABLED": word})
    assert "DIGEST_WEB_ENABLED" in err.value.hint and "config file" not in err.value.hint


def test_an_error_from_an_environment_variable_says_so_in_its_hint() -> None:
    with pytest.raises(ConfigError, match="smtp.port") as err:
        cfg.from_mapping({"smtp": {"port": 25}}, env={"DIGEST_SMTP_PORT": "twenty-five"})
    assert "environment variable DIGEST_SMTP_PORT" in err.value.hint
    with pytest.raises(ConfigError) as err:
        cfg.from_mapping({}, env={"DIGEST_SECRET": ""} | {"DIGEST_DIGEST_TIMEZONE": "Mars/Base"})
    assert "DIGEST_DIGEST_TIMEZONE" in err.value.hint
    with pytest.raises(ConfigError) as from_file:  # the same mistake in the file keeps the file's hint
        cfg.from_mapping({"smtp": {"port": "twenty-five"}}, env={})
    assert "config file" in from_file.value.hint


def test_a_feed_url_listed_twice_is_an_error_naming_both_entries() -> None:
    feeds = [{"url": "https://a.example/rss"}, {"url": "https://b.example/rss"}, {"url": "https://a.example/rss"}]
    with pytest.raises(ConfigError, match=r"feeds #3\.url = 'https://a.example/rss' repeats feeds #1\.url"):
        cfg.from_mapping({"feeds": feeds}, env={})


def test_P10_a_feed_url_longer_than_the_store_can_index_is_refused_by_check_config() -> None:
    """A feed's URL is a unique key of the store: on PostgreSQL a 3,000-character one failed every
    command with the database's own words, while check-config said OK."""
    fits = "https://a.example/rss?" + "q" * (cfg.MAX_FEED_URL - 22)
    assert cfg.from_mapping({"feeds": [{"url": fits}]}, env={}).feeds[0].url == fits
    with pytest.raises(ConfigError, match=r"feeds #1\.url is 2049 characters long; a feed URL may have 2048 at most"):
        cfg.from_mapping({"feeds": [{"url": fits + "q"}]}, env={})


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sections": [{"name": "World\u0000"}]}, "sections #1.name"),
        ({"sections": [{"name": "World", "formerly": ["Old\nWorld"]}]}, "sections #1.formerly"),
        ({"feeds": [{"url": "https://a.example/rss", "name": "Wire\tNews"}]}, "feeds #1.name"),
        ({"subscribers": [{"email": "a@example.org", "name": "A\u0000B"}]}, "subscribers #1.name"),
    ],
)
def test_a_name_the_store_keeps_with_a_control_character_is_refused_by_check_config(
    raw: dict[str, Any], key: str
) -> None:
    """On PostgreSQL, which refuses a NUL in text, such a name failed every command after the
    config sync with a traceback, while check-config said OK."""
    with pytest.raises(ConfigError, match=re.escape(key) + r" = .* contains a control character"):
        cfg.from_mapping(raw, env={})


def test_a_feed_url_already_in_normal_form_skips_parsing_and_is_spelt_as_parsing_would() -> None:
    """The shortcut of normalise_feed_url against yarl's spelling, on URLs built from awkward parts."""
    hosts = ["example.com", "News.Example.org", "a", "127.0.0.1", "xn--d1acufc.xn--p1ai", "-a.com", "a..b", "b.", "a_b"]
    hosts += ["[::1]", "user@h.com", "ex%41mple.com", "x" * 64 + ".com", ".".join(["abc"] * 90)]
    ports = ["", ":80", ":443", ":8080", ":65536", ":080"]
    paths = ["", "/", "/feed.xml", "/a/./b", "/a/../b", "/.", "/..", "/a//b", "/%7Efoo", "/%7efoo", "/~foo", "/a b"]
    paths += ["/é", "/a%2Fb", "/a;b=c:d@e", "/.well-known/feed", "/a/.", "/!$&'()*+,=", "/%", "/%zz", "/a+b"]
    queries = ["", "?", "?a=b&&c", "?a=b+c", "?a=%20", "?a=b c", "?a=/?:@", "?a[]=1"]
    short = 0
    for scheme, host, port, path, query, fragment in itertools.product(
        ["http", "https", "HTTP"], hosts, ports, paths, queries, ["", "#x"]
    ):
        url = f"{scheme}://{host}{port}{path}{query}{fragment}"
        short += cfg._already_normal(url)
        assert cfg.normalise_feed_url(f" {url} ") == cfg._normalise_by_parsing(url), url
    assert short > 1000  # the shortcut was taken, and gave the same spelling each time


def test_config_entries_are_counted_from_one() -> None:
    subs = [{"email": "a@example.org"}, {"email": "b@example.org", "timezone": "Nowhere"}]
    with pytest.raises(ConfigError, match=r"^subscribers #2\.timezone"):
        cfg.from_mapping({"subscribers": subs}, env={})


def test_web_secret_keys_newest_first_from_the_file_or_the_environment() -> None:
    keys = ["newest-key-0123456789", "older-key-0123456789"]
    assert cfg.from_mapping({"web": {"secret_keys": keys}}, env={}).web.secret_keys == tuple(keys)
    from_env = cfg.from_mapping({}, env={"DIGEST_WEB_SECRET_KEYS": "newest-key-0123456789, older-key-0123456789"})
    assert from_env.web.secret_keys == tuple(keys)
    with pytest.raises(ConfigError, match="shorter than 16"):
        cfg.from_mapping({"web": {"secret_keys": ["short"]}}, env={})
    shown = cfg.describe(cfg.from_mapping({"web": {"secret_keys": keys}}, env={}))
    assert shown["web"]["secret_keys"] == "********"  # a secret: masked by check-config


def test_outlets_name_sites_and_a_bad_entry_says_what_to_write() -> None:
    settings = cfg.from_mapping(
        tomllib.loads('[outlets]\n"RIA.ru" = " RIA Novosti "\n"www.iz.ru" = { name = "Izvestia", plural = true }\n'),
        env={},
    )
    assert settings.outlets == (
        cfg.OutletName("ria.ru", "RIA Novosti"),
        cfg.OutletName("iz.ru", "Izvestia", plural=True),
    )
    for text, message in (
        ('"https://ria.ru/" = "RIA"', r'outlets\."https://ria\.ru/" is not a site: write its host alone'),
        ('"ria.ru" = 3', r'outlets\."ria\.ru" must be a string'),
        ('"ria.ru" = { nam = "RIA" }', r'outlets\."ria\.ru"\.nam is not a setting; allowed: name, plural'),
        ('"ria.ru" = " "', r'outlets\."ria\.ru" is empty: give the name'),
    ):
        with pytest.raises(ConfigError, match=message):
            cfg.from_mapping(tomllib.loads(f"[outlets]\n{text}\n"), env={})


def test_a_sections_former_names_map_to_it_and_must_be_free() -> None:
    settings = cfg.from_mapping(
        {
            "sections": [{"name": "International", "formerly": ["World", "World news"]}, {"name": "Sport"}],
            "subscribers": [{"email": "a@example.org", "sections": ["World", "International", "Sport"]}],
        }
    )
    assert settings.section_renames == {"World": "International", "World news": "International"}
    assert settings.current_section("World news") == "International" and settings.current_section("Sport") == "Sport"
    # A subscriber entry not yet edited after the rename reads as the section, listed once.
    assert settings.subscribers[0].sections == ("International", "Sport")
    # The fallback section renamed: listed as a section of no rules under its new name.
    fallback = cfg.from_mapping(
        {
            "digest": {"fallback_section": "Misc"},
            "sections": [{"name": "World"}, {"name": "Misc", "formerly": ["Other"]}],
            "subscribers": [{"email": "a@example.org", "sections": ["Other"]}],
        }
    )
    assert fallback.section_names == ("World", "Misc") and fallback.subscribers[0].sections == ("Misc",)
    for sections, message in (
        (
            [{"name": "A", "formerly": ["B"]}, {"name": "B"}],
            "sections #1.formerly = 'B' is the name of a section subscribers can choose now",
        ),
        (
            [{"name": "A", "formerly": ["Old"]}, {"name": "B", "formerly": ["Old"]}],
            "sections #2.formerly = 'Old' is also a former name of 'A'",
        ),
        ([{"name": "A", "formerly": ["Other"]}], "sections #1.formerly = 'Other' is the name of a section subscribers"),
        ([{"name": "A", "formerly": [" "]}], "sections #1.formerly has an empty name"),
    ):
        with pytest.raises(ConfigError, match=message):
            cfg.from_mapping({"sections": sections})


# --------------------------------------------------------------------------- check-config said OK (audit)


def digest(
    config: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m digest --config CONFIG ARGS...` as an operator runs it: a real process whose
    DIGEST_* environment is `env` alone, in `cwd` (default: the config's folder)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=str(cwd or config.parent),
        timeout=120,
    )


def one_error(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(error, hint) of a failed command, after checking they are all it wrote, with no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("  hint: "), result.stderr
    return lines[0].removeprefix("error: "), lines[1].removeprefix("  hint: ")


def pem_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:hunter2x@db.example.org/news", "postgresql+psycopg://u:***@db.example.org/news"),
        # libpq's own parameter, which SQLAlchemy's masking leaves as it is
        (
            "postgresql+psycopg://u@db.example.org/news?password=hunter2x",
            "postgresql+psycopg://u@db.example.org/news?password=***",
        ),
    ],
)
def test_check_config_masks_the_password_of_the_database_url(tmp_path: Path, url: str, shown: str) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(f'[digest]\ndatabase = "{url}"\n', encoding="utf-8")
    result = digest(config, "check-config")
    assert result.returncode == 0 and "config OK" in result.stdout, result.stderr
    assert "hunter2x" not in result.stdout + result.stderr
    assert f'database = "{shown}"' in result.stdout


def test_a_database_password_with_a_bare_at_sign_is_refused_without_printing_it(tmp_path: Path) -> None:
    """SQLAlchemy ends the password at its first "@": the rest became a host, and the driver's
    error ("failed to resolve host 'ter2x@127.0.0.1'") printed it."""
    config = tmp_path / "digest.toml"
    config.write_text('[digest]\ndatabase = "postgresql+psycopg://u:hun@ter2x@127.0.0.1:9/news"\n', encoding="utf-8")
    error, hint = one_error(digest(config, "status"))
    assert error == "digest.database = 'postgresql+psycopg://u:***@127.0.0.1:9/news' has an '@' in its password."
    assert "@ as %40" in hint


@pytest.mark.parametrize(
    ("text", "env", "error", "hint"),
    [
        pytest.param(
            '[[subscribers]]\nemail = "Editor@Example.org"\n[[subscribers]]\nemail = "editor@example.org"\n',
            {},
            "subscribers #2.email = 'editor@example.org' repeats subscribers #1.email: one subscriber, one entry.",
            "Delete one of subscribers #1 and subscribers #2",
            id="duplicate-subscriber",
        ),
        pytest.param(
            '[[subscribers]]\nemail = "a@example.org"\n' * 2,
            {},
            "subscribers #2.email = 'a@example.org' repeats subscribers #1.email",
            "merge their settings",
            id="identical-subscribers",
        ),
        pytest.param(
            '[[subscribers]]\nemail = "a@example.org"\nsections = []\n',
            {},
            "subscribers #1.sections is empty: a@example.org would never get an edition.",
            "leave sections out for all of them",
            id="empty-sections",
        ),
        pytest.param(
            '[[subscribers]]\nemail = "a@example.org"\nname = "' + "A" * 201 + '"\n',
            {},
            "subscribers #1.name is 201 characters long; a subscriber's name may have at most 200.",
            "Give a shorter name",
            id="long-subscriber-name",
        ),
        pytest.param(
            '[smtp]\nusername = "review"\n',
            {},
            "smtp.username = 'review' is set but no password is",
            "Set DIGEST_SMTP_PASSWORD, or DIGEST_SMTP_PASSWORD_FILE naming a file that holds it,",
            id="smtp-user-without-password",
        ),
        pytest.param(
            '[smtp]\nusername = "review"\n',
            {"DIGEST_SMTP_PASSWORD": ""},
            "smtp.username = 'review' is set but no password is",
            "[smtp] password",
            id="smtp-empty-password",
        ),
        pytest.param(
            '[bounces]\nimap_host = "imap.example.org"\nimap_username = "bounces"\n',
            {},
            "bounces.imap_username = 'bounces' is set but no password is",
            "Set DIGEST_BOUNCES_IMAP_PASSWORD, or DIGEST_BOUNCES_IMAP_PASSWORD_FILE naming a file",
            id="imap-user-without-password",
        ),
        pytest.param(
            '[dkim]\ndomain = "example.org"\nselector = "digest"\nkey_file = "missing.pem"\n',
            {},
            "/missing.pem' cannot be read: No such file or directory.",
            "readable by the user digest runs as",
            id="dkim-key-missing",
        ),
        pytest.param(
            '[dkim]\ndomain = "example.org"\nselector = "digest"\nkey_file = "digest.toml"\n',
            {},
            "/digest.toml' is not a PEM RSA private key",
            "openssl genrsa",
            id="dkim-key-not-pem",
        ),
        pytest.param(
            "",
            {"DIGEST_SMTP_PASWORD": "s3cret"},
            "The environment variable DIGEST_SMTP_PASWORD is not a setting of [smtp]; "
            "did you mean DIGEST_SMTP_PASSWORD?",
            "Rename or unset it",
            id="misspelt-variable",
        ),
        pytest.param(
            '[smtp]\nsecurity = "starttls"\nca_file = "no-such-ca.pem"\n',
            {},
            "/no-such-ca.pem' cannot be read as CA certificates: No such file or directory.",
            "Point ca_file at the PEM file of the relay's CA certificate",
            id="missing-ca-file",
        ),
        pytest.param(
            '[[feeds]]\nurl = "http://127.0.0.1:8080/rss"\n',
            {},
            "feeds #1.url = 'http://127.0.0.1:8080/rss' points at 127.0.0.1, a loopback address, "
            "and [digest] allow_private_addresses is false.",
            "set allow_private_addresses = true",
            id="loopback-feed",
        ),
        pytest.param(
            '[[feeds]]\nurl = "https://example.org/rss"\n[[feeds]]\nurl = "http://LocalHost./rss"\n',
            {},
            "feeds #2.url = 'http://localhost./rss' points at localhost, a loopback name",
            "allow_private_addresses",
            id="localhost-feed",
        ),
        pytest.param(
            '[[feeds]]\nurl = "http://[::ffff:10.0.0.1]/rss"\n',
            {},
            "a private, inside IPv6 ::ffff:a00:1 address",
            "allow_private_addresses",
            id="mapped-private-feed",
        ),
    ],
)
def test_check_config_refuses_in_one_line_what_passed_and_failed_later(
    tmp_path: Path, text: str, env: dict[str, str], error: str, hint: str
) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(text, encoding="utf-8")
    got_error, got_hint = one_error(digest(config, "check-config", env=env))
    assert error in got_error and hint in got_hint, (got_error, got_hint)


def test_what_check_config_alone_refuses_stops_no_other_command(tmp_path: Path) -> None:
    # A feed on this machine with private addresses not allowed, a user name with no password: an
    # upgrade that refused them at every load would stop a daemon that sends fine today (the feed's
    # polls fail and say why; the password may be in the daemon's environment only).
    config = tmp_path / "digest.toml"
    config.write_text('[smtp]\nusername = "review"\n[[feeds]]\nurl = "http://127.0.0.1:8080/rss"\n', encoding="utf-8")
    assert "password" in one_error(digest(config, "check-config"))[0]
    config.write_text(
        '[smtp]\nusername = "review"\npassword = "x"\n[[feeds]]\nurl = "http://127.0.0.1:8080/rss"\n',
        encoding="utf-8",
    )
    assert "loopback" in one_error(digest(config, "check-config"))[0]
    status = digest(config, "status")
    assert status.returncode == 0, status.stderr
    assert "feeds: 1 active" in status.stdout


def test_a_password_given_any_supported_way_and_a_readable_pem_key_pass_check_config(tmp_path: Path) -> None:
    key = pem_key(tmp_path / "dkim.pem")
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    config = tmp_path / "digest.toml"
    head = f'[dkim]\ndomain = "example.org"\nselector = "digest"\nkey_file = "{key}"\n[smtp]\nusername = "review"\n'
    for extra, env in (
        ('password = "in-the-file"\n', {}),
        ("", {"DIGEST_SMTP_PASSWORD": "s3cret"}),
        ("", {"DIGEST_SMTP_PASSWORD_FILE": str(secret)}),
    ):
        config.write_text(head + extra, encoding="utf-8")
        result = digest(config, "check-config", env=env)
        assert result.returncode == 0 and "config OK" in result.stdout, (env, result.stderr)
        assert 'password = "********"' in result.stdout and "s3cret" not in result.stdout + result.stderr


def test_relative_file_settings_are_read_from_the_config_files_folder_wherever_digest_runs(tmp_path: Path) -> None:
    """Before, `key_file = "keys/dkim.pem"` was read from the working directory: the daemon started by
    systemd (in /) found no key and its first send stopped. A path from an environment variable
    stays relative to the working directory it was typed in."""
    (tmp_path / "keys").mkdir()
    pem_key(tmp_path / "keys" / "dkim.pem")
    (tmp_path / "mine").mkdir()
    config = tmp_path / "digest.toml"
    config.write_text(
        '[digest]\ntemplates_dir = "mine"\n[dkim]\ndomain = "example.org"\nselector = "digest"\n'
        'key_file = "keys/dkim.pem"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = digest(config, "check-config", cwd=elsewhere)
    assert result.returncode == 0 and "config OK" in result.stdout, result.stderr
    assert f'key_file = "{tmp_path / "keys" / "dkim.pem"}"' in result.stdout
    assert f'templates_dir = "{tmp_path / "mine"}"' in result.stdout
    settings = cfg.load(config, env={"DIGEST_SMTP_CA_FILE": "ca.pem", "DIGEST_DKIM_KEY_FILE": "~/dkim.pem"})
    assert (settings.smtp.ca_file, settings.dkim.key_file) == ("ca.pem", "~/dkim.pem")
    assert settings.digest.templates_dir == str(tmp_path / "mine")


def test_the_short_forms_of_the_secrets_read_a_file_too(tmp_path: Path) -> None:
    """README: DIGEST_SECRET and DIGEST_SMTP_PASSWORD are short forms, and <NAME>_FILE reads a
    secret from a file; DIGEST_SECRET_FILE was ignored (only DIGEST_DIGEST_SECRET_FILE worked)."""
    site, smtp = tmp_path / "site-secret", tmp_path / "smtp-password"
    site.write_text("site-secret-from-a-file\n", encoding="utf-8")
    smtp.write_text("smtp-password-from-a-file\n", encoding="utf-8")
    settings = cfg.from_mapping({}, env={"DIGEST_SECRET_FILE": str(site), "DIGEST_SMTP_PASSWORD_FILE": str(smtp)})
    assert settings.digest.secret == "site-secret-from-a-file"
    assert settings.smtp.password == "smtp-password-from-a-file"
    # The file beats its variable, and the short form the long one.
    both = cfg.from_mapping(
        {}, env={"DIGEST_SECRET": "plain", "DIGEST_SECRET_FILE": str(site), "DIGEST_DIGEST_SECRET": "long"}
    )
    assert both.digest.secret == "site-secret-from-a-file"
    with pytest.raises(ConfigError, match="DIGEST_SECRET_FILE points at") as err:
        cfg.from_mapping({}, env={"DIGEST_SECRET_FILE": str(tmp_path / "absent")})
    assert "DIGEST_SECRET_FILE" in err.value.hint
    # What an operator sees: the secret is set (masked), not "(unset)".
    config = tmp_path / "digest.toml"
    config.write_text("", encoding="utf-8")
    result = digest(config, "check-config", env={"DIGEST_SECRET_FILE": str(site)})
    assert result.returncode == 0 and 'secret = "********"' in result.stdout, result.stdout + result.stderr


def test_an_unknown_digest_variable_is_a_warning_with_the_name_it_may_have_meant(tmp_path: Path) -> None:
    """Other software may set DIGEST_* variables: outside the tables' prefixes they warn, never stop."""
    config = tmp_path / "digest.toml"
    config.write_text("", encoding="utf-8")
    env = {"DIGEST_SMPT_HOST": "mail.example.org", "DIGEST_PIPELINE": "x", "DIGEST_NOW": "2026-01-16T06:00:00+00:00"}
    result = digest(config, "check-config", env=env)
    assert result.returncode == 0 and "config OK" in result.stdout, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, result.stderr
    assert "DIGEST_SMPT_HOST is not one digest reads; it is ignored (did you mean DIGEST_SMTP_HOST?)" in warnings[1]
    assert "DIGEST_PIPELINE is not one digest reads; it is ignored (settings are DIGEST_<TABLE>_<KEY>)" in warnings[0]
    # digest's own variables and every form of a setting are known: nothing to say.
    config.write_text(PUBLIC, encoding="utf-8")  # (nor of the links: see the base_url tests)
    quiet = {"DIGEST_CONFIG": str(config), "DIGEST_DKIM_KEY_FILE": "", "DIGEST_SECRET_FILE": os.devnull}
    result = digest(config, "check-config", env={**quiet, "DIGEST_TEST_POSTGRES_URL": "postgresql://x"})
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_relative_sqlite_path_is_shown_resolved_and_warned_about_away_from_the_config(tmp_path: Path) -> None:
    """A relative sqlite:/// path is read from the working directory (unchanged: data must not move
    on upgrade); run from elsewhere, every command says which file it opens instead of silently
    starting an empty database there."""
    home, elsewhere = tmp_path / "etc", tmp_path / "cron"
    home.mkdir()
    elsewhere.mkdir()
    config = home / "digest.toml"
    config.write_text(PUBLIC + 'database = "sqlite:///digest.sqlite"\n', encoding="utf-8")

    beside = digest(config, "check-config")
    assert beside.returncode == 0 and beside.stderr == "", beside.stderr
    assert f"database file: {home / 'digest.sqlite'}" in beside.stdout

    away = digest(config, "status", cwd=elsewhere)
    assert away.returncode == 0, away.stderr
    warnings = [line for line in away.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, away.stderr
    assert (
        f"is relative to the working directory {elsewhere}, not to the config file's folder {home}: "
        f"this command opens {elsewhere / 'digest.sqlite'}; write the path absolute "
        f"(sqlite:///{home / 'digest.sqlite'})" in warnings[0]
    )
    assert (elsewhere / "digest.sqlite").exists() and not (home / "digest.sqlite").exists()  # resolved as before
    checked = digest(config, "check-config", cwd=elsewhere)
    assert f"database file: {elsewhere / 'digest.sqlite'}" in checked.stdout and "WARNING" in checked.stderr

    # What `digest init` suggests is absolute, and says why.
    example = cfg.example_toml()
    assert '# database = "sqlite:////' in example and "relative to the working directory" in example


# --------------------------------------------------------------------------- the links in real mail (audit 6)

PUBLIC = '[digest]\nbase_url = "https://review.example.org"\n'


@pytest.mark.parametrize(
    ("base_url", "said"),
    [
        (None, "[digest] base_url is http://localhost:8080, its default: every email's unsubscribe and preferences"),
        ("http://127.0.0.1:8080", "[digest] base_url = 'http://127.0.0.1:8080' names this machine (loopback)"),
        ("https://[::1]", "names this machine (loopback)"),
        ("http://review.example.org", "is not https: Gmail and Yahoo show no one-click unsubscribe"),
        ("https://review.example.org", None),
    ],
)
def test_check_config_warns_of_a_base_url_readers_cannot_use_and_still_passes(
    tmp_path: Path, base_url: str | None, said: str | None
) -> None:
    """Audit finding 6: with base_url unset, real mail went out with links to http://localhost:8080,
    and check-config said OK without a word. A warning, not a refusal: an intranet's http address or
    a trial on one machine works, and a config that passed before an upgrade still passes."""
    config = tmp_path / "digest.toml"
    config.write_text(f'[digest]\nbase_url = "{base_url}"\n' if base_url else "", encoding="utf-8")
    result = digest(config, "check-config")
    assert result.returncode == 0 and "config OK" in result.stdout, result.stderr
    if said is None:
        assert result.stderr == "", result.stderr
        return
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: ") and said in line, line
    assert line.endswith("set [digest] base_url to the https address readers reach the web app at, behind a TLS proxy.")


async def test_send_logs_one_line_naming_base_url_when_real_mail_carries_dead_links_and_a_dry_run_does_not(
    tmp_path: Path,
) -> None:
    from httpservers import FeedServer
    from smtpservers import SmtpServer
    from test_faults import cli, poll, rss, write_config

    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=feeds.serve("/news.xml", rss()), smtp_port=smtp.port)
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(tmp_path / "eml"))
        assert dry.returncode == 0 and "base_url" not in dry.stderr, dry.stderr  # nothing reaches a reader
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 0 and len(smtp.messages) == 1, sent.stderr
    warned = [line for line in sent.stderr.splitlines() if "base_url" in line]
    assert len(warned) == 1 and "WARNING" in warned[0], sent.stderr
    assert "[digest] base_url is http://localhost:8080, its default" in warned[0]


def test_the_daemon_logs_the_base_url_warning_when_it_starts(tmp_path: Path) -> None:
    import threading

    from test_faults import write_config

    config = write_config(tmp_path, extra='base_url = "http://127.0.0.1:8080"')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    stop = threading.Timer(60, run.terminate)  # a daemon that says nothing must not hang the test
    stop.start()
    try:
        assert run.stderr is not None
        line = run.stderr.readline()  # the first thing it says
    finally:
        stop.cancel()
        run.terminate()
        run.wait(60)
    assert "WARNING" in line and "[digest] base_url = 'http://127.0.0.1:8080' names this machine (loopback)" in line
