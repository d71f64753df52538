"""Subscriber lists as CSV (email, name, sections, timezone, status). Pure: text in, rows out.

`sections` is a list separated by ';' or '|' (empty: all sections), because section names such as
"Business & Economy" contain commas no more often than spaces, and a CSV cell is one field.
`status` is what an export writes (an older export, or a list written by hand, has none).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.errors import SubscriberError
from digest.model import NAME_LIMIT, Subscriber
from digest.sanitize import clean_text

if TYPE_CHECKING:
    from _csv import Reader

COLUMNS = ("email", "name", "sections", "timezone")
# The sections cell of a subscriber whose stored sections the database could not read
# (Subscriber.damaged). An empty cell would say "all sections" and an import would widen their
# choice; this one an import refuses, naming the line, until someone writes what they chose.
UNREADABLE = "(unreadable)"
# The statuses an export writes: the store's subscriber statuses (digest.store.subscribers), spelt
# out here because this module reads text and must not load the database layer.
STATUSES = ("active", "paused", "unsubscribed", "suspended", "removed")
_NO_MAIL = ("unsubscribed", "suspended")  # statuses whose sections no edition reads

NOTHING_IMPORTED = "nothing was imported"


@dataclass(frozen=True, slots=True)
class RosterRow:
    line: int  # where the row starts in the file (a quoted cell may span lines)
    email: str
    name: str | None
    sections: tuple[str, ...] | None
    timezone: str | None
    status: str | None  # one of STATUSES, or None: the file does not say


def check_name(name: str | None, *, subject: str) -> str | None:
    """The name, or SubscriberError when it is longer than NAME_LIMIT (`subject` says where it was given)."""
    if name is not None and len(name) > NAME_LIMIT:
        raise SubscriberError(
            f"{subject} is {len(name):,} characters long; a subscriber's name may have at most {NAME_LIMIT}.",
            hint="Give a shorter name (the person's or the organisation's).",
        )
    return name


def read_csv(text: str, *, source: str = "CSV") -> list[RosterRow]:
    """The rows of a subscriber CSV; a file the csv module cannot read, or its first bad row, is one
    SubscriberError (`read_roster` gives every bad row)."""
    rows, problems = read_roster(text, source=source)
    if problems:
        raise problems[0][1]
    return rows


def read_roster(text: str, *, source: str = "CSV") -> tuple[list[RosterRow], list[tuple[int, SubscriberError]]]:
    """The good rows of a subscriber CSV and (its line, an error) for each bad one, so that one run names every
    row to fix (an operator with four typos fixed one per run before). A file the csv module cannot
    read past a point (a quote never closed), or without an email column, is one SubscriberError.

    Lines may end in CRLF (Windows), LF or a lone CR (Excel for Mac's "CSV (Macintosh)"): read with
    newline="" as the csv module asks, which also keeps a line break inside a quoted cell."""
    # strict: a quote left open would otherwise swallow the rest of its line (or of the file) into
    # one cell, and a name would silently carry the sections and time zone after it.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    rows: list[RosterRow] = []
    problems: list[tuple[int, SubscriberError]] = []
    for row in _rows(_numbered(reader, source), source):
        if isinstance(row, RosterRow):
            rows.append(row)
        else:
            problems.append(row)
    return rows, problems


def _numbered(reader: Reader, source: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a row starts on, its cells), blank lines left out. A row's own line_num is the line
    it ends on, which a quoted cell with a line break in it pushes down."""
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a cell over the csv module's size limit, an open quote...
            if "unexpected end of data" in str(exc):
                raise SubscriberError(
                    f'{source} line {start}: a quote (") opened in this row is never closed, so the rest of the '
                    "file would be one cell.",
                    hint=f'Close the quote, or write a quote inside a cell as two (""); {NOTHING_IMPORTED}.',
                ) from None
            raise SubscriberError(
                f"{source} line {start} cannot be read as CSV: {exc}.",
                hint="Quote a cell with a comma, a quote or a line break in it whole, its quotes doubled "
                f'("Ann ""Nan"" Lee"), as a spreadsheet\'s \'CSV UTF-8\' does; {NOTHING_IMPORTED}.',
            ) from None
        end = reader.line_num
        if cells:
            yield start, cells


def _rows(numbered: Iterator[tuple[int, list[str]]], source: str) -> Iterator[RosterRow | tuple[int, SubscriberError]]:
    _, header = next(numbered, (1, []))
    fields = [f.strip().lower() for f in header]
    if "email" not in fields:
        if len(fields) == 1 and "email" in [f.strip() for f in fields[0].split(";")]:
            # A European spreadsheet's "CSV": its list separator is ';', which a sections cell uses too,
            # so the file cannot be read as it is without guessing which ';' separates what.
            raise SubscriberError(
                f"{source} separates its columns with ';' (first line: {clean_text(fields[0], limit=200)}); "
                "separate columns with commas.",
                hint="Save it as 'CSV UTF-8 (Comma delimited)' from your spreadsheet, sections still separated "
                f"by ';' inside their cell; {NOTHING_IMPORTED}.",
            )
        raise SubscriberError(
            f"{source} has no 'email' column (found: {clean_text(', '.join(fields), limit=200) or 'nothing'}).",
            hint="The first line must name the columns: email,name,sections,timezone",
        )
    for n, cells in numbered:
        if not any(c.strip() for c in cells):
            continue  # a spreadsheet's empty row: ",,,"
        try:
            yield _row(n, dict(zip(fields, cells, strict=False)), len(cells), len(fields), source)
        except SubscriberError as exc:
            yield n, exc


def _row(n: int, raw: dict[str, str], cells: int, columns: int, source: str) -> RosterRow:
    """One row of cells under the header's names, or SubscriberError naming its line."""
    if cells != columns:
        raise SubscriberError(
            f"{source} line {n} has {cells} cells where the first line names {columns} columns.",
            hint='Quote a cell that holds a comma ("Smith, John") and give every column, empty if need be '
            f"(someone@example.org,,,); {NOTHING_IMPORTED}.",
        )
    email = raw["email"].strip()
    if not email:
        # Other cells filled and the address left out: a row the operator meant to import, which
        # skipping would drop without a word (its other cells are not empty, or the row was skipped above).
        raise SubscriberError(
            f"{source} line {n} has no email address.",
            hint=f"Fill in its email cell, or delete the line; {NOTHING_IMPORTED}.",
        )
    # A spreadsheet's cell may hold line breaks, tabs or a NUL (which PostgreSQL refuses).
    name = clean_text(raw.get("name") or "") or None
    status = _status(raw.get("status") or "", f"{source} line {n}")
    sections = raw.get("sections") or ""
    if sections.strip() == UNREADABLE and status in _NO_MAIL:
        sections = ""  # they get no mail, so no choice is widened; an import must not stop on them
    return RosterRow(
        line=n,
        email=email,
        name=check_name(name, subject=f"{source} line {n}: the name"),
        sections=_sections(sections, email, f"{source} line {n}"),
        timezone=(raw.get("timezone") or "").strip() or None,
        status=status,
    )


def _sections(cell: str, email: str, where: str) -> tuple[str, ...] | None:
    """A sections cell: None (empty: all sections) or the names; a cell of separators only names none."""
    cell = cell.replace("|", ";").strip()
    if not cell:
        return None
    if cell == UNREADABLE:
        raise SubscriberError(
            f"{where}: the sections of {clean_text(email, limit=200)} could not be read when this list was exported.",
            hint=f"Write the sections they chose in that cell (empty: all sections); {NOTHING_IMPORTED}.",
        )
    names = tuple(s.strip() for s in cell.split(";") if s.strip())
    if not names:  # ";" is not "all sections": someone meant to write names and wrote none
        raise SubscriberError(
            f"{where}: the sections cell {cell!r} names no section.",
            hint=f"Write section names separated by ';', or leave the cell empty for all sections; {NOTHING_IMPORTED}.",
        )
    return names


def _status(cell: str, where: str) -> str | None:
    status = cell.strip().lower()
    if status and status not in STATUSES:
        raise SubscriberError(
            f"{where}: the status {clean_text(cell, limit=40)!r} is not one of {', '.join(STATUSES)}.",
            hint=f"Write one of those (empty: active) as `digest subscribers export` does; {NOTHING_IMPORTED}.",
        )
    return status or None


def write_csv(subscribers: Sequence[Subscriber]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*COLUMNS, "status"))
    for s in subscribers:
        writer.writerow((s.email, s.name or "", _sections_cell(s), s.timezone or "", s.status))
    return out.getvalue()


def _sections_cell(s: Subscriber) -> str:
    if s.damaged:
        return UNREADABLE
    return ";".join(s.sections) if s.sections is not None else ""
