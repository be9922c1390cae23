"""``optimize --workers N``: the views split over processes (torch.distributed, gloo).

Two processes must retrace one process (same seeds: same renders, gradients summed), write
the run directory once, resume from a checkpoint, and refuse what they cannot do in one line
before any rendering.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from pathdiff.cli import main
from pathdiff.images import write_image
from pathdiff.inputs import InputError

RES = 16
#: a colour, a radiance and a scalar ParamSpec (one component of a colour)
PARAMS = [
    "red.reflectance.value",
    "light.emitter.radiance.value:lr=0.3",
    "green.reflectance.value[1]",
]
INIT = {"red.reflectance.value": 0.3, "light.emitter.radiance.value": 10.0}
SECOND_SENSOR = """    <sensor type="perspective" id="side">
        <float name="fov" value="45"/>
        <transform name="to_world">
            <lookat origin="1.3, 0.4, 3.6" target="0, 0, 0" up="0, 1, 0"/>
        </transform>
        <sampler type="independent"/>
        <film type="hdrfilm">
            <integer name="width" value="$res"/>
            <integer name="height" value="$res"/>
            <string name="pixel_format" value="rgb"/>
        </film>
    </sensor>
"""


@pytest.fixture(scope="module")
def two_views(pd, tmp_path_factory):
    """The Cornell box seen by two sensors (XML path) and its two 16² targets (EXR paths)."""
    tmp = tmp_path_factory.mktemp("two_views")
    xml = (ROOT / "scenes" / "cbox" / "scene.xml").read_text()
    xml = xml.replace(
        '<scene version="3.0.0">',
        f'<scene version="3.0.0">\n    <path value="{ROOT / "scenes" / "cbox"}"/>',
    )
    xml = xml.replace(
        '    <bsdf type="diffuse" id="white">',
        SECOND_SENSOR + '    <bsdf type="diffuse" id="white">',
        1,
    )
    path = tmp / "scene.xml"
    path.write_text(xml)
    scene = pd.load_scene(str(path), res=RES, max_depth=3)
    targets = []
    for sensor in range(2):
        targets.append(tmp / f"target{sensor}.exr")
        write_image(targets[-1], pd.render(scene, "path", spp=128, sensor=sensor))
    return str(path), [str(t) for t in targets]


def _optimize(pd, two_views, **kw):
    xml, targets = two_views
    settings = dict(iters=6, spp=4, init=INIT, xml_params={"res": RES, "max_depth": 3})
    settings.update(progress=False, final_spp=4, checkpoint_every=2)
    return pd.optimize(xml, PARAMS, targets, **{**settings, **kw})


@pytest.fixture(scope="module")
def one_process(pd, two_views, tmp_path_factory):
    return _optimize(pd, two_views, out_dir=tmp_path_factory.mktemp("one") / "run")


@pytest.fixture(scope="module")
def two_processes(pd, two_views, tmp_path_factory):
    pytest.importorskip("torch")
    return _optimize(pd, two_views, workers=2, out_dir=tmp_path_factory.mktemp("two") / "run")


def assert_same_run(a, b) -> None:
    np.testing.assert_allclose(b.losses, a.losses, rtol=1e-4)
    for name in a.names:
        np.testing.assert_allclose(b.trajectory[name], a.trajectory[name], rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(b.values[name], a.values[name], rtol=1e-4, err_msg=name)


def test_two_processes_retrace_one(one_process, two_processes):
    """Same seeds: the same renders per view, the gradients summed over the processes, so the
    same steps. (Without the all-reduce, each process steps on its own views' gradient and
    this fails at the first step.)"""
    assert two_processes.iterations == one_process.iterations == 6
    assert len(set(np.round(one_process.losses, 6))) > 1  # the run moves
    assert_same_run(one_process, two_processes)


def test_two_processes_write_the_run_once(two_processes):
    out = two_processes.out_dir
    from pathlib import Path

    out = Path(out)
    names = {"config.json", "checkpoint.npz", "result.json", "trajectory.csv", "loss.png"}
    names |= {"final_0.exr", "final_1.exr", "frames.png", "frames.gif", "scene", "frames"}
    assert names <= {f.name for f in out.iterdir()}, sorted(f.name for f in out.iterdir())
    assert not list(out.glob("*.tmp"))
    rows = (out / "trajectory.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # header + one row per iteration, written once
    frames = sorted(f.name for f in (out / "frames").iterdir())
    assert any(f.startswith("view0_") for f in frames) and any(
        f.startswith("view1_") for f in frames
    )
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["workers"] == 2


def test_cli_workers(two_views, tmp_path, capsys):
    pytest.importorskip("torch")
    xml, (t0, t1) = two_views
    out = tmp_path / "run"
    args = ["optimize", xml, "--res", str(RES), "--max-depth", "3", "--target", t0, "--target", t1]
    args += ["--param", PARAMS[0], "--iters", "3", "--spp", "2", "--final-spp", "2"]
    assert main([*args, "--workers", "2", "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("3 iterations (done)") == 1
    assert (out / "checkpoint.npz").is_file() and (out / "final_1.png").is_file()
    result = json.loads((out / "result.json").read_text())
    assert result["iterations"] == 3


CRASH = (
    "from pathdiff.optimize import loop\n"
    "commit = loop.commit\n"
    "def crash(p, h, it, ev, seconds):\n"
    "    if it == 4:\n"
    "        raise RuntimeError('injected failure')\n"
    "    commit(p, h, it, ev, seconds)\n"
    "loop.commit = crash\n"
)


def test_worker_failure_then_resume(pd, two_views, one_process, tmp_path, monkeypatch):
    """A worker that raises at iteration 4 stops the run with one line naming it (no hang);
    --resume with two processes continues from the checkpoint of iteration 4 and retraces
    the uninterrupted run."""
    pytest.importorskip("torch")
    from pathdiff.optimize import distributed

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(distributed, "WORKER_CODE", CRASH + distributed.WORKER_CODE)
        with pytest.raises(distributed.WorkerError, match=r"worker rank 1 failed .*injected"):
            _optimize(pd, two_views, workers=2, out_dir=out)
    rest = _optimize(pd, two_views, workers=2, out_dir=out, resume=True)
    assert_same_run(one_process, rest)
    config = json.loads((out / "config.json").read_text())
    assert len(config["resumed"]) == 1


@pytest.mark.parametrize(
    "what,message",
    [
        ("one target", "--workers 2 is more than the 1 target"),
        ("scene object", "--workers needs the scene as an XML path"),
        ("ParamSpec", "--workers needs parameters as --param strings"),
        ("callable loss", "--workers needs the loss by name"),
        ("callback", "--workers cannot send a callback"),
        ("torchrun size", "torchrun started 3 processes but --workers is 2: give --workers 3"),
        ("no torch", "--workers needs PyTorch: pip install 'pathdiff[torch]'"),
    ],
)
def test_bad_workers_fail_before_loading(pd, two_views, monkeypatch, what, message):
    from pathdiff.optimize import setup

    xml, targets = two_views
    scene, params, kw = xml, list(PARAMS), {}
    if what == "one target":
        targets = targets[:1]
    elif what == "scene object":
        scene = pd.load_scene(xml, res=RES)
    elif what == "ParamSpec":
        params[2] = pd.resolve_param(pd.load_scene(xml, res=RES), PARAMS[2])
    elif what == "callable loss":
        kw["loss"] = lambda a, b: a - b
    elif what == "callback":
        kw["callback"] = print
    elif what == "torchrun size":
        monkeypatch.setenv("WORLD_SIZE", "3")
        monkeypatch.setenv("RANK", "0")
    elif what == "no torch":
        monkeypatch.setitem(sys.modules, "torch", None)
        monkeypatch.setitem(sys.modules, "torch.distributed", None)

    def loaded(*args, **kwargs):
        raise AssertionError("the scene was loaded before the check")

    monkeypatch.setattr(setup, "load_scene", loaded)
    with pytest.raises(InputError, match=re.escape(message)):
        pd.optimize(scene, params, targets, workers=2, iters=2, progress=False, **kw)


def test_cli_without_torch_exits_2(two_views, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "torch.distributed", None)
    xml, (t0, t1) = two_views
    args = ["optimize", xml, "--target", t0, "--target", t1, "--param", PARAMS[0]]
    assert main([*args, "--workers", "2", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pathdiff: error: --workers needs PyTorch: pip install 'pathdiff[torch]'"]
    assert not (tmp_path / "run").exists()


def test_import_does_not_import_torch():
    code = "import sys, pathdiff, pathdiff.optimize.distributed; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_views_are_dealt_round_robin():
    from pathdiff.optimize.distributed import Group

    g = Group()
    assert list(g.views(3)) == [0, 1, 2]
    g.rank, g.size = 1, 2
    assert list(g.views(5)) == [1, 3]
