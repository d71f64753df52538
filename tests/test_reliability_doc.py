"""Every requirement or fault-test id the code and the tests cite (S1, B7, H18, ...) is listed in
docs/reliability.md, so a citation always leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
# The groups docs/reliability.md defines; an id is one of these letters and a number.
ID = re.compile(r"(?<![\w+.-])([A-HLMPRSU])(\d{1,2})(?![\w+])")
# Not ids: Unicode's C0 and C1 control sets, which sanitize.py names.
NOT_IDS = re.compile(r"\bC[01] (?:and C1 )?controls")


def _listed() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^\| ([A-Z]\d{1,2}) \|", DOC.read_text(encoding="utf-8"), re.M)}


def _cited() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted([*(ROOT / "digest").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]):
        if path.name == Path(__file__).name:
            continue
        text = NOT_IDS.sub("", path.read_text(encoding="utf-8"))
        names = " ".join(m.group(1).replace("_", " ") for m in re.finditer(r"def (test_\w+)", text))
        comments = " ".join(re.findall(r"#[^\n]*", text)) + " ".join(re.findall(r'"""(.*?)"""', text, re.S))
        for m in ID.finditer(names + " " + comments):
            found.setdefault(m.group(0), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_cited_requirement_or_fault_test_id_is_in_docs_reliability() -> None:
    listed = _listed()
    missing = {code: sorted(paths) for code, paths in _cited().items() if code not in listed}
    assert not missing, f"cited but not in docs/reliability.md: {missing}"


def test_the_checker_sees_the_ids_it_should() -> None:
    cited = _cited()
    assert {"S1", "B7", "H18", "S13", "L1", "P9"} <= set(cited)  # in test names, comments and docstrings
    assert "C0" not in cited
