"""Bad input on every subcommand: one line, exit code 2, before any rendering, nothing written.

Rendering is replaced by a function that fails the test, so every case must be rejected
before the first render (and each case costs a scene load at most).
"""

from __future__ import annotations

import json

import mitsuba as mi
import numpy as np
import pytest
from conftest import scene_path

import pathdiff
from pathdiff.cli import main
from pathdiff.images import write_image

CBOX = scene_path("cbox")
SHADOW = scene_path("shadow")


@pytest.fixture
def files(tmp_path):
    """A 16x16 target, a plain file, a non-run directory and example files."""
    write_image(tmp_path / "target.exr", np.full((16, 16, 3), 0.5, np.float32))
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    example = {"scene": CBOX, "targets": [{"image": "target.exr"}], "res": 16}
    example["params"] = ["red.reflectance.value"]
    for name, extra in {"spp": {"spp": -1}, "key": {"lr_": 1}, "res": {"res": 0}}.items():
        (tmp_path / f"bad_{name}.json").write_text(json.dumps({**example, **extra}))
    return tmp_path


def _no_render(*args, **kwargs):
    raise AssertionError("rendered before rejecting bad input")


@pytest.fixture(autouse=True)
def no_rendering(monkeypatch):
    monkeypatch.setattr(mi, "render", _no_render)
    monkeypatch.setattr(pathdiff, "render", _no_render)
    monkeypatch.setattr("pathdiff.gradcheck.gradcheck", _no_render)


RENDER = ["render", CBOX, "--res", "8"]
GRAD = ["gradcheck", CBOX, "--res", "8", "--param", "red.reflectance.value"]
OPT = ["optimize", CBOX, "--res", "16", "--target", "{d}/target.exr"]
OPT += ["--param", "red.reflectance.value"]

CASES = [
    # render
    (RENDER + ["-o", "{d}/x.png", "--spp", "-4"], "--spp: must be a positive integer"),
    (RENDER + ["-o", "{d}/x.png", "--spp", "0"], "--spp: must be a positive integer"),
    (RENDER + ["-o", "{d}/x.png", "--res", "0"], "--res: must be a positive integer"),
    (RENDER + ["-o", "{d}/x.png", "--max-depth", "0"], "--max-depth: must be -1 (unlimited)"),
    (RENDER + ["-o", "{d}/x.png", "--seed", "-1"], "--seed: must be an integer >= 0"),
    (RENDER + ["-o", "{d}/x.png", "-D", "foo"], "expects KEY=VALUE, got 'foo'"),
    (RENDER + ["-o", "{d}/x.tiff"], "unsupported output type '.tiff'"),
    (RENDER + ["-o", "/sys/out.exr"], "cannot write /sys/out.exr"),
    (RENDER + ["-o", "{d}/afile/out.png"], "is a file, not a directory"),
    (RENDER + ["-o", "{d}/notes"], "unsupported output type"),
    (RENDER + ["-o", "{d}/x.png", "--integrator", "nosuch"], "nosuch"),
    (["render", "{d}/missing.xml", "-o", "{d}/x.png"], "scene file not found"),
    # params
    (["params", CBOX, "-D", "foo"], "expects KEY=VALUE, got 'foo'"),
    (["params", CBOX, "--res", "-2"], "--res: must be a positive integer"),
    (["params", "{d}/afile"], "malformed XML"),
    # gradcheck
    (GRAD + ["--spp", "-4"], "--spp: must be a positive integer"),
    (GRAD + ["--fd-spp", "0"], "--fd-spp: must be a positive integer"),
    (GRAD + ["--res", "0"], "--res: must be a positive integer"),
    (GRAD + ["--seeds", "1"], "--seeds: must be an integer >= 2"),
    (GRAD + ["--h", "0"], "--h: must be a positive number"),
    (GRAD + ["--h", "nan"], "--h: must be a positive number"),
    (GRAD + ["--integrator", "path"], "primal-only"),
    (GRAD + ["--integrator", "mitsuba:path"], "primal-only"),
    (GRAD + ["--param", "red.reflectanse.value"], "unknown parameter"),
    (GRAD + ["--out", "{d}/afile"], "it is a file"),
    (GRAD + ["--out", "/sys/panels"], "cannot write /sys/panels"),
    # optimize
    (OPT + ["-o", "{d}/r", "--spp", "-3"], "--spp: must be a positive integer"),
    (OPT + ["-o", "{d}/r", "--iters", "-1"], "--iters: must be a positive integer"),
    (OPT + ["-o", "{d}/r", "--iters", "0"], "--iters: must be a positive integer"),
    (OPT + ["-o", "{d}/r", "--res", "0"], "--res: must be a positive integer"),
    (OPT + ["-o", "{d}/r", "--lr", "0"], "--lr: must be a positive number"),
    (OPT + ["-o", "{d}/r", "--tol", "-1"], "--tol: must be a number >= 0"),
    (OPT + ["-o", "{d}/r", "--final-spp", "0"], "--final-spp: must be a positive integer"),
    (OPT + ["-o", "{d}/r", "--checkpoint-every", "0"], "--checkpoint-every: must be"),
    (OPT + ["-o", "{d}/r", "--max-depth", "0"], "--max-depth: must be -1 (unlimited)"),
    (OPT + ["-o", "{d}/r", "--loss", "l3"], "invalid choice: 'l3'"),
    (OPT + ["-o", "{d}/r", "--schedule", "8:0"], "bad schedule"),
    (OPT + ["-o", "{d}/r", "-D", "foo"], "expects KEY=VALUE, got 'foo'"),
    (OPT + ["-o", "{d}/r", "--init", "foo"], "expects KEY=VALUE, got 'foo'"),
    (OPT + ["-o", "{d}/r", "--integrator", "nosuch"], "nosuch"),
    (OPT + ["-o", "{d}/r", "--resume", "--overwrite"], "exclude each other"),
    (OPT + ["-o", "{d}/r", "--resume"], "no checkpoint to resume from"),
    (OPT + ["-o", "{d}/afile"], "it is a file"),
    (OPT + ["-o", "{d}/notes"], "is not empty: continue its run with --resume"),
    (OPT + ["-o", "{d}/notes", "--overwrite"], "does not hold a pathdiff run"),
    (OPT + ["-o", "/sys/run"], "cannot write /sys/run"),
    (OPT[:-2] + ["-o", "{d}/r"], "no parameter to optimize"),
    (["optimize", "{d}/bad_spp.json", "-o", "{d}/r"], "--spp must be a positive integer"),
    (["optimize", "{d}/bad_key.json", "-o", "{d}/r"], "unknown key(s) lr_"),
    (["optimize", "{d}/bad_res.json", "-o", "{d}/r"], "res must be a positive integer"),
    (["optimize", "{d}/missing.json", "-o", "{d}/r"], "example file not found"),
    # bench, doctor
    (["bench", "--spp", "x"], "--spp: must be a positive integer"),
    (["bench", "--seeds", "1"], "--seeds: must be"),
    (["bench", "--problems", "nope"], "unknown problem(s) nope"),
    (["bench", "--estimators", "nope"], "unknown estimator(s) nope"),
    (["doctor", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_input_is_one_line_exit_2(files, capsys, args, message):
    before = sorted(p.name for p in files.rglob("*"))
    assert main([a.format(d=files) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pathdiff: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in files.rglob("*")) == before  # nothing created or removed
