"""Data flows one way: the stage modules never import each other (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import digest

PACKAGE = Path(digest.__file__).parent
STAGES = {"fetch", "parse", "parsepool", "store", "compose", "render", "message", "deliver"}
SHELLS = {"pipeline", "daemon", "cli", "web", "demo"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("digest"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("digest."))
    return found


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_stage_modules_never_import_each_other_or_the_shells() -> None:
    for path in PACKAGE.rglob("*.py"):
        me = _module_of(path)
        if me not in STAGES:
            continue
        allowed = {me, "parse"} if me == "parsepool" else {me}  # the pool runs parse in its workers
        bad = (_imports(path) & (STAGES | SHELLS)) - allowed
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}: stages talk only through the pipeline"


def test_nothing_imports_the_shells_but_the_shells() -> None:
    for path in PACKAGE.rglob("*.py"):
        me = _module_of(path)
        if me in SHELLS or me in {"__main__", "status"}:
            continue
        bad = _imports(path) & SHELLS
        assert not bad, f"{path.relative_to(PACKAGE)} imports the shell(s) {sorted(bad)}"
