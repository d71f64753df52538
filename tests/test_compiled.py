"""An installed wheel's clustering is compiled (hatch_build.py), so that what the suite and the bench
measure is what users run; an editable install, a pure Python build (DIGEST_PURE_PYTHON=1) and the
source tree skip, saying which."""

from __future__ import annotations

import ast
import importlib
import json
from importlib import metadata
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import digest

HOOK = Path(__file__).parent.parent / "hatch_build.py"


def _compiled_modules() -> list[str]:
    """hatch_build.COMPILED as module names, read without importing the hook (it needs hatchling)."""
    for node in ast.parse(HOOK.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["COMPILED"]:
            paths: list[str] = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError(f"no COMPILED list in {HOOK}")


def _why_not_a_compiled_wheel() -> str | None:
    try:
        dist = metadata.distribution("digest")
    except metadata.PackageNotFoundError:
        return "digest is not installed: the tests run on the source tree"
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        return "an editable install is pure Python"
    if Path(str(dist.locate_file("digest/__init__.py"))).resolve() != Path(digest.__file__).resolve():
        return f"digest is imported from {Path(digest.__file__).parent}, not from the installed wheel"
    tags = [
        line.partition(":")[2].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    if tags and all(tag.endswith("-none-any") for tag in tags):
        return "the wheel was built pure Python (DIGEST_PURE_PYTHON)"
    return None


def test_an_installed_wheels_clustering_is_compiled() -> None:
    why = _why_not_a_compiled_wheel()
    if why:
        pytest.skip(f"clustering runs as pure Python here: {why}")
    modules = _compiled_modules()
    assert "digest.cluster.grouping" in modules
    for name in modules:
        path = importlib.import_module(name).__file__ or ""
        assert path.endswith(tuple(EXTENSION_SUFFIXES)), f"{name} is not compiled: {path}"
