"""Subscriber lists in and out as an operator moves them: the real `python -m digest subscribers
add/import/export` against real SQLite files, and the real `send` to aiosmtpd on loopback.
Ids (G10, S14, L2) are those of docs/reliability.md."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_faults import cli, one_error, write_config

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


# --------------------------------------------------------------------------- what a file may say


def test_an_address_twice_in_one_file_names_both_lines_and_imports_nothing(tmp_path: Path) -> None:
    config = site(tmp_path)
    text = HEADER + "ann@example.org,Ann,,,\nbob@example.org,,,,\nAnn@Example.ORG ,Ann,,,unsubscribed\n"
    line = refused(config, text)
    assert "lines 2 and 4 both give the address ann@example.org" in line


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
