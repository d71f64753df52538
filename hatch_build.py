"""Wheel build hook: clustering compiled to C with mypyc, the rest of the wheel as it was.

`pip install .` (and a wheel built from the sdist) compiles the modules in COMPILED, which hold the
clustering's loops (`bench/cluster.py`'s first run takes about a fifth less CPU); their .py files
ship beside the compiled ones, and Python imports the compiled module when both are there. With
DIGEST_PURE_PYTHON=1 the wheel is pure Python, for a machine without a C compiler. An editable
install (`pip install -e .`) is never compiled, so a developer's edits take effect without a build.

A build that cannot compile stops with one line saying so, rather than shipping slow code unnoticed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# What the clustering of a batch spends its time in; everything they import stays pure Python.
COMPILED = [
    "digest/cluster/blocking.py",
    "digest/cluster/features.py",
    "digest/cluster/grouping.py",
    "digest/cluster/linking.py",
    "digest/cluster/pairs.py",
    "digest/cluster/stories.py",
    "digest/cluster/vectors.py",
    "digest/cluster/weather.py",
    "digest/words.py",
]
MYPY = "mypy==2.4.1"  # the same as [project.optional-dependencies] dev: the code is checked with it
PURE = "DIGEST_PURE_PYTHON"
HOW_TO_SKIP = f"set {PURE}=1 to build pure Python (slower clustering), e.g. `{PURE}=1 pip install .`"


def pure_python() -> bool:
    return os.environ.get(PURE, "") not in ("", "0")


class MypycHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # setuptools: mypyc builds its C extensions with setuptools' build_ext
        return [] if pure_python() else [MYPY, "setuptools"]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable" or pure_python():
            return
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[0]  # as setuptools
        if shutil.which(compiler) is None:
            raise SystemExit(f"digest: no C compiler ({compiler}) to compile clustering with mypyc; {HOW_TO_SKIP}")
        self._work = tempfile.mkdtemp(prefix="digest-mypyc-")
        out = Path(self._work, "lib")
        # In a process of its own: mypyc's build patches setuptools and distutils as it imports them.
        done = subprocess.run([sys.executable, __file__, str(out), self._work], cwd=self.root, check=False)
        if done.returncode != 0:
            raise SystemExit(f"digest: compiling clustering with mypyc failed (output above); {HOW_TO_SKIP}")
        for built in sorted(out.rglob("*.so")) + sorted(out.rglob("*.pyd")):
            build_data["force_include"][str(built)] = built.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True  # cp311-cp311-<platform>: compiled for this interpreter only

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def compile_modules(out: str, work: str) -> None:
    """Build COMPILED's extension modules into `out` (run from the project's root)."""
    import setuptools  # before mypyc.build, which builds with setuptools when it is imported
    from mypyc.build import mypycify

    extensions = mypycify(
        [*COMPILED, "--config-file", "pyproject.toml", "--cache-dir", os.path.join(work, "mypy-cache")],
        opt_level="3",
        target_dir=os.path.join(work, "c"),
        group_name="digest",  # the shared library: digest__mypyc.<tag>.so, not a hash of the modules' names
    )
    dist = setuptools.Distribution({"name": "digest", "ext_modules": extensions})
    build_ext = dist.get_command_obj("build_ext")
    build_ext.build_lib = out
    build_ext.build_temp = os.path.join(work, "obj")
    dist.run_command("build_ext")


if __name__ == "__main__":
    compile_modules(sys.argv[1], sys.argv[2])
