"""The ``pathdiff`` command line: render, params, doctor and one-line errors."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, scene_path

import pathdiff
from pathdiff.cli import main, render_progressive
from pathdiff.cli.render import pass_sizes
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


def _stub(monkeypatch) -> list[tuple[int, int]]:
    """Replace ``pathdiff.render`` by an image of value ``seed``."""
    calls = []

    def render(scene, integrator, spp, seed, **opts):
        calls.append((spp, seed))
        return np.full((2, 2, 3), float(seed), np.float32)

    monkeypatch.setattr(pathdiff, "render", render)
    return calls


@pytest.mark.parametrize("spp", [1, 32, 33, 64, 1000])
def test_passes_depend_on_spp_only(monkeypatch, spp):
    calls = _stub(monkeypatch)
    img = render_progressive(None, None, spp=spp, seed=3)
    sizes = [n for n, _ in calls]
    assert sum(sizes) == spp and sizes == pass_sizes(spp)
    assert len(sizes) == (1 if spp <= 32 else 8)
    seeds = [s for _, s in calls]
    assert len(set(seeds)) == len(seeds)
    np.testing.assert_allclose(img, sum(n * s for n, s in calls) / spp)


def test_render_seed_is_reproducible_whatever_the_timing(tmp_path, monkeypatch):
    """The same seed gives the same bits with a warm cache and with a clock that makes every
    pass look slow (the old code split the passes by the first pass's time)."""
    args = ["render", CBOX, "--res", "8", "--spp", "40", "--seed", "5", "--integrator", "path"]
    assert main([*args, "-o", str(tmp_path / "a.exr")]) == 0
    clock = itertools.count(0.0, 100.0)
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    assert main([*args, "-o", str(tmp_path / "b.exr")]) == 0
    monkeypatch.undo()
    assert (
        main([*args[:-4], "--seed", "6", "--integrator", "path", "-o", str(tmp_path / "c.exr")])
        == 0
    )
    a, b, c = (read_image(tmp_path / f"{n}.exr") for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # the seed matters: the comparison can fail


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
        (["render", CBOX, "-o", "x.png", "-D", "res"], "expects KEY=VALUE, got 'res'"),
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
    variant = next(ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("variant"))
    assert variant in ("llvm_ad_rgb", "cuda_ad_rgb") and variant == pathdiff.variant
    for word in ("drjit", "mitsuba", "libLLVM", "CUDA", "-> ok"):
        assert word in r.stdout


def test_backend_error_is_one_line():
    code = (
        "import os; os.environ['DRJIT_LIBLLVM_PATH'] = '/nonexistent/libLLVM.so';"
        "import sys; from pathdiff.cli import main; sys.exit(main(['doctor']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "libllvm19" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pathdiff {pathdiff.__version__}"


def test_internal_error_is_exit_4_and_debug_shows_the_traceback(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("injected bug\nsecond line")

    monkeypatch.setattr(pathdiff, "load_scene", boom)
    assert main(["params", CBOX]) == 4
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "internal error: RuntimeError: injected bug" in err and "--debug" in err
    assert main(["--debug", "params", CBOX]) == 4
    assert "Traceback" in capsys.readouterr().err
    assert main(["params", CBOX, "--debug"]) == 4
    assert "Traceback" in capsys.readouterr().err


class _FakeResult:
    """Stands in for a GradcheckResult (the verdict logic is tested in test_gradcheck.py)."""

    def __init__(self, name, verdict, hint=None, decisive_spp=None):
        self.name, self.verdict, self.hint, self.decisive_spp = name, verdict, hint, decisive_spp
        self.passed, self.panel = verdict == "PASS", None

    def to_dict(self):
        return {"spec": self.name, "verdict": self.verdict, "panel": self.panel}


@pytest.mark.parametrize(
    "verdicts,code",
    [(["PASS", "PASS"], 0), (["PASS", "FAIL"], 1), (["INCONCLUSIVE", "PASS"], 3),
     (["INCONCLUSIVE", "FAIL"], 1)],
)  # fmt: skip
def test_gradcheck_exit_codes_progress_and_notes(monkeypatch, tmp_path, capsys, verdicts, code):
    import pathdiff.gradcheck
    import pathdiff.report

    specs = ["red.reflectance.value", "green.reflectance.value"]
    by_name = dict(zip(specs, verdicts))

    def fake(scene, names, integrator, **kw):  # the pre-`progress` interface
        return [_FakeResult(n, by_name[n], "try edge", 4096) for n in names]

    monkeypatch.setattr(pathdiff.gradcheck, "gradcheck", fake)
    monkeypatch.setattr(pathdiff.report, "format_table", lambda rs: "TABLE")
    monkeypatch.setattr(pathdiff.report, "write_panel", lambda r, path: path)
    argv = ["gradcheck", CBOX, "--res", "8", "--out", str(tmp_path)]
    assert main([*argv, *(a for s in specs for a in ("--param", s))]) == code
    out, err = capsys.readouterr()
    progress = [ln for ln in err.splitlines() if ln.startswith("gradcheck [")]
    assert len([ln for ln in progress if ":" in ln.split("]")[1]]) == 2  # one result per param
    assert "TABLE" in out and "try edge" in out
    assert ("about 4096 spp would decide" in out) == ("INCONCLUSIVE" in verdicts)


def test_gradcheck_prints_the_table_when_panels_cannot_be_written(monkeypatch, tmp_path, capsys):
    import pathdiff.gradcheck
    import pathdiff.report

    def fail(r, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(
        pathdiff.gradcheck, "gradcheck", lambda s, names, i, **kw: [_FakeResult(names[0], "PASS")]
    )
    monkeypatch.setattr(pathdiff.report, "write_panel", fail)
    argv = ["gradcheck", CBOX, "--res", "8", "--param", "red.reflectance.value", "--json"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["verdict"] == "PASS"
    assert "cannot write the panels" in err and "Permission denied" in err


def test_python_dash_m_pathdiff():
    r = subprocess.run(
        [sys.executable, "-m", "pathdiff", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0 and r.stdout.strip() == f"pathdiff {pathdiff.__version__}"


def test_gradcheck_uses_the_progress_callback_when_offered(monkeypatch, tmp_path, capsys):
    import pathdiff.gradcheck
    import pathdiff.report

    def fake(scene, names, integrator, progress=None, **kw):
        for n in names:
            progress(f"checking {n}")
        return [_FakeResult(n, "PASS") for n in names]

    monkeypatch.setattr(pathdiff.gradcheck, "gradcheck", fake)
    monkeypatch.setattr(pathdiff.report, "format_table", lambda rs: "TABLE")
    monkeypatch.setattr(pathdiff.report, "write_panel", lambda r, path: path)
    argv = ["gradcheck", CBOX, "--res", "8", "--param", "red.reflectance.value"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "checking red.reflectance.value" in capsys.readouterr().err


def test_each_warning_printed_once_per_run(capsys):
    """A warning raised once per view (e.g. two moving cameras) is printed once."""
    from pathdiff.cli import optimize as cli_optimize

    cli_optimize._WARNED.clear()
    for _ in range(2):
        cli_optimize._show_warning(UserWarning("pathdiff_edge: a limit"), UserWarning, "f", 1)
    assert capsys.readouterr().err.count("a limit") == 1
