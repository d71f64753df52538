"""The README documents every setting and every command (Datasette's habit: a test fails when it doesn't)."""

from __future__ import annotations

import dataclasses
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


def _commands(group: click.Group, prefix: str = "digest") -> list[str]:
    names = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            names += _commands(cmd, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_command_is_in_the_readme() -> None:
    for command in _commands(main):
        *parent, leaf = command.split()
        assert f"`{command}" in README or (f"`{' '.join(parent)} " in README and f"{leaf} " in README), \
            f"README does not mention `{command}`"
