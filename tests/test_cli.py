"""The ``pathdiff`` command line: render, params, doctor and one-line errors."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, scene_path

import pathdiff
from pathdiff import cli
from pathdiff.cli import main, render_progressive
from pathdiff.images import read_image

CBOX = scene_path("cbox")


def _run(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("pathdiff")
    cmd = [exe] if exe else [sys.executable, "-m", "pathdiff.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("name", ["out.exr", "sub/out.png"])
def test_render(tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["render", CBOX, "-o", str(out), "--res", "16", "--spp", "4"]) == 0
    img = read_image(out)
    assert img.shape == (16, 16, 3) and 0.01 < img.mean() < 10
    stdout = capsys.readouterr().out
    assert str(out) in stdout and " s)" in stdout


def test_render_options(tmp_path):
    out = tmp_path / "a.exr"
    args = ["render", CBOX, "-o", str(out), "--spp", "4", "-D", "res=8", "--integrator", "path"]
    assert main([*args, "--max-depth", "1"]) == 0
    direct = read_image(out)
    assert direct.shape == (8, 8, 3)
    assert main(args) == 0
    full = read_image(out)

    def black(img):
        return (img.max(axis=2) == 0).mean()

    assert black(direct) > 0.5 > black(full)  # max_depth 1: only the light is seen


def _stub(monkeypatch, seconds_per_call: float) -> list[tuple[int, int]]:
    """Replace ``pathdiff.render`` by an image of value ``seed`` and the clock by a fake one."""
    calls = []

    def render(scene, integrator, spp, seed, **opts):
        calls.append((spp, seed))
        return np.full((2, 2, 3), float(seed), np.float32)

    clock = itertools.count(0.0, seconds_per_call)  # the first pass takes seconds_per_call
    monkeypatch.setattr(pathdiff, "render", render)
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    return calls


def test_progressive_fast_renders_the_rest_in_one_go(monkeypatch):
    calls = _stub(monkeypatch, 0.01)
    img = render_progressive(None, None, spp=64, seed=3)
    assert [n for n, _ in calls] == [8, 56]
    (_, s0), (_, s1) = calls
    assert s0 != s1
    np.testing.assert_allclose(img, (8 * s0 + 56 * s1) / 64)


def test_progressive_slow_shows_passes(monkeypatch, capsys):
    calls = _stub(monkeypatch, 0.5)
    img = render_progressive(None, None, spp=20, seed=1)
    spp = [n for n, _ in calls]
    seeds = [s for _, s in calls]
    assert spp == [2] * 10 and len(set(seeds)) == 10
    np.testing.assert_allclose(img, np.mean(seeds))
    assert "20/20" in capsys.readouterr().err  # the progress bar


def test_params(capsys):
    assert main(["params", scene_path("shadow"), "--res", "8"]) == 0
    out = capsys.readouterr().out
    assert "occluder.vertex_positions" in out and "Float" in out
    assert "occluder.translate.x|y|z" in out and "occluder.scale" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["render", "missing.xml", "-o", "x.png"], "scene file not found: missing.xml"),
        (["render", CBOX, "-o", "x.tiff"], "unsupported output type '.tiff'"),
        (["render", CBOX, "-o", "x.png", "-D", "res"], "--define expects KEY=VALUE"),
        (["render", CBOX, "-o", "x.png", "--integrator", "nosuch"], "nosuch"),
        (["params", str(ROOT / "pyproject.toml")], "malformed XML in"),
    ],
)
def test_errors_in_process(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("pathdiff: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_error_in_subprocess_is_one_line():
    r = _run("render", "missing.xml", "-o", "x.png")
    assert r.returncode == 2
    assert r.stderr.strip() == "pathdiff: error: scene file not found: missing.xml"


def test_doctor():
    r = _run("doctor")
    assert r.returncode == 0, r.stderr
    for word in ("drjit", "mitsuba", "llvm_ad_rgb", "libLLVM", "CUDA", "-> ok"):
        assert word in r.stdout


def test_backend_error_is_one_line():
    code = (
        "import os; os.environ['DRJIT_LIBLLVM_PATH'] = '/nonexistent/libLLVM.so';"
        "import sys; from pathdiff.cli import main; sys.exit(main(['doctor']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "libllvm19" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
