"""Frozen iterations (``freeze="auto"``, :mod:`pathdiff.optimize.frozen`): the same
trajectory as the unfrozen loop for the same seeds, a fixed number of recordings per stage
(at most two: the first iteration may see the scene's values as loaded, later ones the
values the previous iteration bound; the learning rate's decay does not re-record), the
cases that run unfrozen, and the fallback when a recording fails."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from conftest import scene_path

KEYS = ["red.reflectance.value", "light.emitter.radiance.value:lr=0.3"]
INIT = {"red.reflectance.value": 0.3, "light.emitter.radiance.value": 12.0}


def _modules():
    return (
        importlib.import_module("pathdiff.optimize"),
        importlib.import_module("pathdiff.optimize.frozen"),
    )


@pytest.fixture(scope="module")
def target(pd):
    scene = pd.load_scene(scene_path("cbox"), res=24)
    return pd.render(scene, "path", spp=64, seed=7)


def _run(pd, target, keys=KEYS, init=INIT, **settings):
    """Plan and run on a fresh Cornell box; (plan, result)."""
    opt, _ = _modules()
    scene = pd.load_scene(scene_path("cbox"), res=24)
    settings = {"iters": 8, "spp": 4, "progress": False, "init": init, **settings}
    p = opt.plan(scene, keys, [target], opt.Settings(**settings))
    return p, opt.run(p)


def _same(a, b) -> None:
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5)
    for name in a.values:
        np.testing.assert_allclose(a.values[name], b.values[name], rtol=1e-5, atol=1e-6)


def test_same_trajectory_and_one_recording(pd, target):
    """With the learning rate decaying over the second half, a mask and the exposure fit."""
    _, frozen = _modules()
    mask = np.ones(target.shape[:2], np.float32)
    mask[:4] = 0
    tgt = {"image": target, "mask": mask}
    p, a = _run(pd, tgt, exposure="fit", freeze="auto", iters=12)
    _, b = _run(pd, tgt, exposure="fit", freeze="off", iters=12)
    assert isinstance(p.iteration, frozen.FrozenIteration)
    assert 1 <= p.iteration.recordings <= 2  # not one per iteration (12 here)
    _same(a, b)


def test_a_stage_records_once(pd, target):
    _, frozen = _modules()
    p, a = _run(pd, target, schedule="12:2,24:4", freeze="auto")
    _, b = _run(pd, target, schedule="12:2,24:4", freeze="off")
    assert 2 <= p.iteration.recordings <= 4  # 1-2 per stage, not one per iteration
    _same(a, b)


@pytest.mark.parametrize(
    "keys,init,integrator,reason",
    [
        (["tall_box.translate.x"], {}, None, "moves geometry"),
        (["red.reflectance.value[0]"], {}, None, "is a ParamSpec"),
        (["red.reflectance.value"], {}, "edge", "estimator pathdiff_edge is not frozen"),
        (["red.reflectance.value"], {}, None, "the loss is a Python callable"),
    ],
)
def test_unfrozen_cases(pd, target, keys, init, integrator, reason):
    opt, frozen = _modules()
    scene = pd.load_scene(scene_path("cbox"), res=24)
    loss = (lambda img, t: ((img - t) ** 2).sum()) if "callable" in reason else "l2"
    cfg = opt.Settings(iters=1, spp=1, progress=False, integrator=integrator, loss=loss)
    p = opt.plan(scene, keys, [target], cfg)
    assert reason in frozen.reason_not_to_freeze(p)


def test_texture_is_not_frozen(pd):
    opt, frozen = _modules()
    scene = pd.load_scene(scene_path("textured"), res=16)
    img = pd.render(scene, "path", spp=4)
    p = opt.plan(scene, ["plane_bsdf.reflectance.data"], [img], opt.Settings(iters=1))
    assert "is a texture" in frozen.reason_not_to_freeze(p)


def test_failed_recording_falls_back(pd, target, monkeypatch):
    """A recording that fails (here: made to) gives one warning and the unfrozen result."""
    _, frozen = _modules()

    class Failing:
        n_recordings = 0

        def __init__(self, fn, **kw):
            pass

        def __call__(self, *args):
            raise RuntimeError("record(): reading from evaluated variables (simulated)")

    monkeypatch.setattr(frozen.dr, "freeze", Failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p, a = _run(pd, target, freeze="auto")
    notes = [str(c.message) for c in caught if "cannot be frozen" in str(c.message)]
    assert len(notes) == 1 and "simulated" in notes[0]
    _, b = _run(pd, target, freeze="off")
    _same(a, b)
