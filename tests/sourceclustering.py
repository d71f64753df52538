"""Clustering's modules loaded from their Python source, whether or not the installed ones are compiled.

The wheel's clustering is compiled with mypyc (hatch_build.py): its functions call one another
directly, so a test that replaces one (`grouping._link`) to show what it does changes nothing there.
Such a test replaces it in a copy of the modules loaded from the .py files the wheel ships beside
the compiled ones, the same code, for the duration of one test: `monkeypatch` puts the installed
modules back. (Module globals, constants, are read at run time by compiled code too: a test may
patch those on the installed modules.)"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

import digest

_PACKAGE = Path(digest.__file__).parent


def _own(name: str) -> bool:
    """A module that the wheel may ship compiled (hatch_build.COMPILED): clustering's and `words`."""
    return name == "digest.words" or name.startswith("digest.cluster.")


class _FromSource:
    """A finder of `_own` modules' .py files, ahead of the one that would find their compiled modules."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not _own(name):
            return None
        return importlib.util.spec_from_file_location(name, _PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py"))


def from_source(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """Module `name` (say "digest.cluster.grouping") and every clustering module it imports, loaded
    anew from source until the test ends."""
    for loaded in [n for n in sys.modules if _own(n)]:
        monkeypatch.delitem(sys.modules, loaded)
        parent, _, child = loaded.rpartition(".")
        if hasattr(sys.modules[parent], child):  # `from digest import words` reads the package's attribute
            monkeypatch.delattr(sys.modules[parent], child)
    monkeypatch.setattr(sys, "meta_path", [_FromSource(), *sys.meta_path])
    module = importlib.import_module(name)
    assert module.__file__ is not None and module.__file__.endswith(".py")
    return module
