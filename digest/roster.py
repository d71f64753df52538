"""Subscriber lists as CSV (email, name, sections, timezone). Pure: text in, rows out.

`sections` is a list separated by ';' or '|' (empty: all sections), because section names such as
"Business & Economy" contain commas no more often than spaces, and a CSV cell is one field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from digest.errors import SubscriberError
from digest.model import Subscriber
from digest.sanitize import clean_text

COLUMNS = ("email", "name", "sections", "timezone")
# The sections cell of a subscriber whose stored sections the database could not read
# (Subscriber.damaged). An empty cell would say "all sections" and an import would widen their
# choice; this one an import refuses, naming the line, until someone writes what they chose.
UNREADABLE = "(unreadable)"


@dataclass(frozen=True, slots=True)
class RosterRow:
    line: int
    email: str
    name: str | None
    sections: tuple[str, ...] | None
    timezone: str | None


def read_csv(text: str, *, source: str = "CSV") -> list[RosterRow]:
    """The rows of a subscriber CSV; a file the csv module cannot read is one SubscriberError.

    Lines may end in CRLF (Windows), LF or a lone CR (Excel for Mac's "CSV (Macintosh)"): read with
    newline="" as the csv module asks, which also keeps a line break inside a quoted cell."""
    try:
        return _rows(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")), source)
    except csv.Error as exc:  # a cell over the csv module's size limit, a NUL byte...
        raise SubscriberError(
            f"{source} cannot be read as CSV: {exc}.",
            hint="Save it again as 'CSV UTF-8' from your spreadsheet; nothing was imported.",
        ) from None


def _rows(reader: csv.DictReader[str], source: str) -> list[RosterRow]:
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "email" not in fields:
        raise SubscriberError(
            f"{source} has no 'email' column (found: {clean_text(', '.join(fields), limit=200) or 'nothing'}).",
            hint="The first line must name the columns: email,name,sections,timezone",
        )
    reader.fieldnames = fields
    rows = []
    for n, raw in enumerate(reader, start=2):
        email = (raw.get("email") or "").strip()
        if not email:
            continue
        sections_cell = (raw.get("sections") or "").replace("|", ";")
        if sections_cell.strip() == UNREADABLE:
            raise SubscriberError(
                f"{source} line {n}: the sections of {clean_text(email, limit=200)} could not be read when "
                "this list was exported.",
                hint="Write the sections they chose in that cell (empty: all sections); nothing was imported.",
            )
        sections = tuple(s.strip() for s in sections_cell.split(";") if s.strip()) or None
        rows.append(
            RosterRow(
                line=n,
                email=email,
                # A spreadsheet's cell may hold line breaks, tabs or a NUL (which PostgreSQL refuses).
                name=clean_text(raw.get("name") or "") or None,
                sections=sections,
                timezone=(raw.get("timezone") or "").strip() or None,
            )
        )
    return rows


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
