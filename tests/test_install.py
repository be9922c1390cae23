"""A non-editable install works outside the source tree: ``doctor``, a small ``render`` of a
scene shipped as package data, and a one-problem ``bench`` (whose references and scenes are
package data too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "runs", "build",
    "bench_out", "gradcheck_out", "out*", ".ci",
)  # fmt: skip


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A venv (system site-packages: Mitsuba and Dr.Jit need no download) with pathdiff
    installed from a copy of the tree, not editable."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    env_dir = tmp / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    r = subprocess.run([*pip, "--version"], capture_output=True, text=True)
    if r.returncode != 0:  # pip < 22.3 has no --python
        pip = [str(py), "-m", "pip"]
    _run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", str(src)], tmp, env)
    shutil.rmtree(src)  # nothing may depend on the copy
    return env_dir, env


def test_imports_from_the_venv(installed, tmp_path):
    env_dir, env = installed
    code = (
        "import pathdiff, pathdiff.bench.problems as p; print(pathdiff.__file__); print(p.BUNDLED)"
    )
    out = _run([str(env_dir / "bin" / "python"), "-c", code], tmp_path, env).stdout.split()
    assert Path(out[0]).is_relative_to(env_dir), out
    assert (Path(out[1]) / "cbox" / "scene.xml").is_file()


def test_doctor_render_and_bench_outside_the_tree(installed, tmp_path):
    env_dir, env = installed
    exe = str(env_dir / "bin" / "pathdiff")
    assert "pathdiff" in _run([exe, "doctor"], tmp_path, env).stdout.lower()
    code = "import pathdiff.bench.problems as p; print(p.BUNDLED / 'cbox' / 'scene.xml')"
    scene = _run([str(env_dir / "bin" / "python"), "-c", code], tmp_path, env).stdout.strip()
    _run([exe, "render", scene, "--res", "8", "--spp", "4", "-o", "cbox.png"], tmp_path, env)
    assert (tmp_path / "cbox.png").is_file()
    bench = ["--problems", "area_light", "--estimators", "prb", "--spp", "2", "--seeds", "2"]
    _run([exe, "bench", *bench, "--opt-iters", "0", "--out", "b"], tmp_path, env)
    assert "| area_light | prb |" in (tmp_path / "b" / "table.md").read_text()
