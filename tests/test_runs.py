"""Run directories: never clobbered (``--overwrite`` clears, ``--resume`` continues), and
``--resume`` refuses changed settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import scene_path

from pathdiff.cli import main
from pathdiff.images import write_image


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "target.exr"
    write_image(path, np.full((8, 8, 3), 0.3, np.float32))
    return path


def _optimize(target, out, *extra):
    args = ["optimize", scene_path("cbox"), "--res", "8", "--target", str(target)]
    args += ["--param", "red.reflectance.value", "--spp", "1", "--final-spp", "1", "--quiet"]
    return main([*args, "--iters", "2", "--checkpoint-every", "1", *extra, "-o", str(out)])


def test_run_directory_is_never_clobbered(target, tmp_path, capsys):
    out = tmp_path / "run"
    assert _optimize(target, out) == 0
    stale = out / "frames" / "view0_00099.exr"  # as left by an earlier, longer run
    stale.write_bytes((out / "frames" / "view0_00000.exr").read_bytes())
    capsys.readouterr()
    assert _optimize(target, out) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "another -o" in err
    assert stale.is_file()
    assert _optimize(target, out, "--overwrite") == 0
    assert not stale.exists() and (out / "result.json").is_file()


def test_resume_refuses_changed_settings(target, tmp_path, capsys):
    out = tmp_path / "run"
    assert _optimize(target, out) == 0
    capsys.readouterr()
    assert _optimize(target, out, "--resume", "--lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "lr: 0.02 -> 0.5" in err and len(err.strip().splitlines()) == 1
    assert _optimize(target, out, "--resume", "--seed", "3") == 2
    assert "seed: 0 -> 3" in capsys.readouterr().err
    assert _optimize(target, out, "--resume", "--iters", "3") == 0  # only --iters changes
    result = json.loads((out / "result.json").read_text())
    assert result["iterations"] == 3
    config = json.loads((out / "config.json").read_text())
    assert len(config["resumed"]) == 1


def test_resume_into_a_missing_directory_leaves_nothing(target, tmp_path, capsys):
    out = tmp_path / "missing" / "run"
    assert _optimize(target, out, "--resume") == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_summary_is_printed_when_outputs_cannot_be_written(target, tmp_path, capsys, monkeypatch):
    from pathdiff import runs

    def fail(out, result):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runs, "write_result", fail)
    assert _optimize(target, tmp_path / "run") == 2
    out, err = capsys.readouterr()
    assert "recovered" in out and "2 iterations" in out
    assert "cannot write the outputs" in err and len(err.strip().splitlines()) == 1
