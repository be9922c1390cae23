"""`.ci/setup` is idempotent (a second run installs nothing) and fails in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shims(tmp: Path) -> tuple[dict, Path]:
    """PATH with `apt-get` and `sudo` that record any call and fail."""
    bin_ = tmp / "bin"
    bin_.mkdir()
    calls = tmp / "calls"
    for name in ("apt-get", "sudo"):
        exe = bin_ / name
        exe.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{calls}"\necho "E: no network" >&2\nexit 100\n'
        )
        exe.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bin_}{os.pathsep}{env['PATH']}"
    env["PIP_NO_INDEX"] = "1"  # any pip download would fail instead of using the network
    return env, calls


def _installed_here() -> bool:
    marker = ROOT / ".ci" / ".installed"
    if not marker.exists() or (ROOT / "pyproject.toml").stat().st_mtime > marker.stat().st_mtime:
        return False
    code = "import pathdiff, os; print(os.path.dirname(os.path.dirname(pathdiff.__file__)))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env
    )
    return r.returncode == 0 and Path(r.stdout.strip()) == ROOT


@pytest.mark.skipif(
    not _installed_here(), reason="run .ci/setup from this tree first (.ci/run does)"
)
def test_second_run_does_nothing(tmp_path: Path) -> None:
    env, calls = _shims(tmp_path)
    marker = ROOT / ".ci" / ".installed"
    before = marker.stat().st_mtime_ns
    r = subprocess.run(
        ["bash", str(ROOT / ".ci" / "setup")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    assert not calls.exists(), calls.read_text()
    assert marker.stat().st_mtime_ns == before


def test_cannot_install_llvm_is_one_line(tmp_path: Path) -> None:
    """No usable LLVM and apt-get failing: one line naming what failed, exit 1."""
    tree = tmp_path / "tree"
    (tree / ".ci").mkdir(parents=True)
    (tree / "pathdiff").mkdir()
    shutil.copy(ROOT / ".ci" / "setup", tree / ".ci" / "setup")
    src = (ROOT / "pathdiff" / "backend.py").read_text()
    assert "MIN_LLVM = 17" in src
    (tree / "pathdiff" / "backend.py").write_text(src.replace("MIN_LLVM = 17", "MIN_LLVM = 999"))
    env, calls = _shims(tmp_path)
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}"
    r = subprocess.run(
        ["bash", str(tree / ".ci" / "setup")], capture_output=True, text=True, env=env
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("setup: cannot install libllvm19"), r.stderr
    assert "no network" in lines[-1]
    assert len(lines) <= 2 and "Traceback" not in r.stderr
    assert calls.exists()
