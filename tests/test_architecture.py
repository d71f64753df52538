"""Data flows one way: the stage modules never import each other or a shell (STYLE.md).

The check reads every module's imports with `ast`, relative ones included (`from ..store import x`
inside `deliver/` is the store), and `import digest.x` as well as `from digest import x`.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import digest

PACKAGE = Path(digest.__file__).parent
STAGES = {"fetch", "parse", "parsepool", "store", "compose", "render", "message", "deliver"}
SHELLS = {"pipeline", "daemon", "worker", "cli", "web", "demo"}
# The parser pool runs parse in its worker processes; that is its whole job.
ALLOWED = {"parsepool": {"parse"}}


def _package_parts(package: Path, path: Path) -> list[str]:
    """`digest/deliver/core.py` -> ["digest", "deliver"]: the package a module's relative imports start from."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return parts[:-1]  # a package's __init__ and a plain module both resolve from their folder


def imported_modules(package: Path, path: Path) -> set[str]:
    """The top-level `digest` modules that one file imports, however the import is written."""
    found: set[str] = set()
    root = package.name
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith(f"{root}."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_parts(package, path)
                base = base[: len(base) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if not target or target[0] != root:
                continue
            if len(target) > 1:
                found.add(target[1])
            else:  # from digest import render / from . import render
                found.update(alias.name for alias in node.names)
    return found


def _module_of(package: Path, path: Path) -> str:
    return path.relative_to(package).parts[0].removesuffix(".py")


def contract_violations(package: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        me = _module_of(package, path)
        imports = imported_modules(package, path) - {me}
        where = path.relative_to(package)
        if me in STAGES:
            bad = (imports & (STAGES | SHELLS)) - ALLOWED.get(me, set())
            if bad:
                problems.append(f"{where} imports {sorted(bad)}: stages talk only through the pipeline")
        elif me not in SHELLS and me not in {"__main__", "status"}:
            bad = imports & SHELLS
            if bad:
                problems.append(f"{where} imports the shell(s) {sorted(bad)}")
    return problems


def test_stages_never_import_each_other_and_nothing_but_shells_imports_a_shell() -> None:
    assert contract_violations(PACKAGE) == []


def test_the_contract_fails_on_planted_bad_imports(tmp_path: Path) -> None:
    copy = tmp_path / "digest"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    (copy / "fetch.py").write_text((copy / "fetch.py").read_text() + "\nfrom .render import render_edition\n")
    core = copy / "deliver" / "core.py"
    core.write_text(core.read_text() + "\nfrom ..store import Store\n")
    (copy / "sections.py").write_text((copy / "sections.py").read_text() + "\nimport digest.daemon\n")
    problems = contract_violations(copy)
    assert any(p.startswith("fetch.py imports ['render']") for p in problems), problems
    assert any(p.startswith("deliver/core.py imports ['store']") for p in problems), problems
    assert any(p.startswith("sections.py imports the shell(s) ['daemon']") for p in problems), problems
    assert len(problems) == 3, problems


def test_the_contract_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    """Heavy libraries are imported where they are used (issue 12), so a stage's imports hide in functions."""
    copy = tmp_path / "digest"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    (copy / "parse.py").write_text(
        (copy / "parse.py").read_text() + "\n\ndef _late() -> None:\n    from digest.store import Store\n"
    )
    (copy / "compose.py").write_text(
        (copy / "compose.py").read_text() + "\nif TYPE_CHECKING:\n    from .render import Renderer\n"
    )
    problems = contract_violations(copy)
    assert any(p.startswith("parse.py imports ['store']") for p in problems), problems
    assert any(p.startswith("compose.py imports ['render']") for p in problems), problems
    assert len(problems) == 2, problems
