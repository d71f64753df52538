"""The README documents every setting and every command (Datasette's habit: a test fails when it doesn't)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from digest import config as cfg
from digest.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_reference() -> None:
    for table, cls in cfg.TABLES.items():
        block = README.split(f"#### `[{table}]`", 1)
        assert len(block) == 2, f"README has no reference table for [{table}]"
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in block[1].split("####", 1)[0], f"README does not document {table}.{f.name}"


def _commands(group: click.Group, prefix: str = "digest") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found.update(_commands(cmd, f"{prefix} {name}"))
        else:
            found[f"{prefix} {name}"] = cmd
    return found


def _reference_rows(readme: str) -> dict[str, str]:
    """Command reference table -> {full command name: its synopsis as written}.

    A row's first cell holds one or more backticked synopses separated by " / "; the first names the
    full command (`digest feeds add URL [--name N]`), the others only the leaf of the same group
    (`remove URL`).
    """
    section = readme.split("## Command reference", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `digest "):
            continue
        cell = line.split(" | ", 1)[0].removeprefix("| ")
        synopses = re.findall(r"`([^`]+)`", cell)
        words = synopses[0].split()
        group: list[str] = []
        for i, w in enumerate(words):
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            group = words[: i + 1]
        name = " ".join(group)
        assert name not in rows, f"README's command reference lists `{name}` twice"
        rows[name] = synopses[0]
        for extra in synopses[1:]:
            leaf = extra.split()[0]
            full = " ".join([*group[:-1], leaf])
            assert full not in rows, f"README's command reference lists `{full}` twice"
            rows[full] = extra
    return rows


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")} - {"--help"}


def check_command_reference(readme: str) -> list[str]:
    """Every command has its own row naming exactly its options; no row names a command that does not exist."""
    problems: list[str] = []
    rows = _reference_rows(readme)
    commands = _commands(main)
    for name, cmd in commands.items():
        if name not in rows:
            problems.append(f"README's command reference has no row for `{name}`")
            continue
        written, actual = set(re.findall(r"--[a-z][a-z-]*", rows[name])), _options(cmd)
        if written != actual:
            problems.append(f"`{name}`: README names options {sorted(written)}, the command has {sorted(actual)}")
    problems += [f"README documents `{n}`, which is not a command" for n in rows if n not in commands]
    return problems


def test_every_command_has_its_exact_row_in_the_readme() -> None:
    assert check_command_reference(README) == []


def test_the_command_reference_check_catches_a_missing_option_and_a_stale_row() -> None:
    broken = README.replace("[--date YYYY-MM-DD] [--dry-run DIR]", "[--dry-run DIR]", 1)
    broken = broken.replace("| `digest run` |", "| `digest run` |\n| `digest frobnicate` | gone |", 1)
    problems = check_command_reference(broken)
    assert any("`digest send`" in p and "--date" in p for p in problems), problems
    assert any("digest frobnicate" in p for p in problems), problems


def test_the_readmes_nginx_example_appends_the_clients_address_for_the_sign_up_limit() -> None:
    """nginx forwards no X-Forwarded-For of its own unless told to, and passes on the one a client
    wrote: the sign-up form's per-client limit (web._client) would count every reader as the proxy,
    or each post as whoever it claims to be. Every nginx location that serves the subscriber pages
    must append the peer's address, as `$proxy_add_x_forwarded_for` does."""
    blocks = README.split("\n```")[1::2]  # the text inside each fenced block
    locations = [line for b in blocks for line in b.splitlines() if line.startswith("location /")]
    assert locations, "README has no nginx example serving the web app"
    for line in locations:
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in line, line
