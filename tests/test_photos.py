"""Photographs as targets: clipped highlights, unknown exposure and white balance, JPEG, and
the run's notes (clipped views, parameters stuck at a bound, a loss that does not decrease).

Targets are rendered by Mitsuba's own ``path`` integrator at high spp and written as 8-bit
sRGB files, as a camera would give them; each recovery is checked against the truth, and the
clipped cases have a negative control: the same photo compared without the camera response
(as a linear array, the old behaviour) misses the truth.
"""

from __future__ import annotations

import warnings

import mitsuba as mi
import numpy as np
import pytest
from conftest import scene_path

import pathdiff as pd
from pathdiff.images import read_image, write_image
from pathdiff.optimize import diagnose
from pathdiff.targets import Target

WALL = "red.reflectance.value"
TRUTH = np.array([0.45, 0.2, 0.3])


def _photo(tmp_path, name: str, scene: str, res: int, edit: dict, gains=1.0, ext=".png") -> str:
    """Mitsuba ``path`` render of ``scene`` with ``edit`` applied, times ``gains``, as 8 bit."""
    sc = pd.load_scene(scene_path(scene), res=res)
    params = mi.traverse(sc)
    for k, v in edit.items():
        params[k] = type(params[k])(v)
    params.update()
    integ = mi.load_dict({"type": "path", "max_depth": 4})
    img = np.array(mi.render(sc, integrator=integ, spp=512, seed=11)) * np.asarray(gains)
    return write_image(tmp_path / f"{name}{ext}", img)


def _fit(scene: str, res: int, param: str, target, init, **kw) -> np.ndarray:
    sc = pd.load_scene(scene_path(scene), res=res, max_depth=4)
    kw = {"iters": 60, "spp": 8, "seed": 0, "progress": False, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets = target if isinstance(target, list) else [target]
        r = pd.optimize(sc, [param], targets, init={param: init}, **kw)
    return r


@pytest.fixture(scope="module")
def lamp_photo(tmp_path_factory) -> str:
    """The Cornell box with its lamp in view (it clips at 255), red wall changed."""
    return _photo(tmp_path_factory.mktemp("lamp"), "photo", "cbox", 24, {WALL: TRUTH})


def test_clipped_lamp_png_recovers_the_wall(lamp_photo):
    r = _fit("cbox", 24, WALL, lamp_photo, 0.5)
    err = np.abs(r.values[WALL] - TRUTH).max()
    assert err < 0.03, r.values[WALL]
    assert any("clipped in the photo" in n for n in r.notes), r.notes


def test_clipped_lamp_without_response_misses(lamp_photo):
    """Negative control: the same photo as a linear array (no camera response) is pulled
    far off by the lamp's saturated pixels."""
    target = {"image": read_image(lamp_photo)}
    r = _fit("cbox", 24, WALL, target, 0.5)
    assert np.abs(r.values[WALL] - TRUTH).max() > 0.1, r.values[WALL]


def test_unknown_exposure_and_white_balance(tmp_path):
    """A photo taken with an unknown exposure and white balance: per-channel gains are fitted
    each iteration (--exposure fit-rgb); the other walls pin them, so the red wall is
    recovered. Controls: gains assumed known miss; least-squares gains (biased low by the
    render's noise) would too, see ``fit_gains``."""
    gains = np.array([0.6, 0.5, 0.7])
    photo = _photo(tmp_path, "photo", "cbox", 24, {WALL: TRUTH}, gains=gains)
    r = _fit("cbox", 24, WALL, photo, 0.5, exposure="fit-rgb")
    assert np.abs(r.values[WALL] - TRUTH).max() < 0.03, r.values[WALL]
    wrong = _fit("cbox", 24, WALL, photo, 0.5)
    assert np.abs(wrong.values[WALL] - TRUTH).max() > 0.1, wrong.values[WALL]


def test_jpeg_with_unknown_exposure(tmp_path):
    """A JPEG (compression noise, ringing next to the clipped lamp, chroma subsampling at
    24 pixels) with an unknown exposure."""
    photo = _photo(tmp_path, "photo", "cbox", 24, {WALL: TRUTH}, gains=0.6, ext=".jpg")
    r = _fit("cbox", 24, WALL, photo, 0.5, exposure="fit")
    assert np.abs(r.values[WALL] - TRUTH).max() < 0.05, r.values[WALL]
    assert any("next to clipped ones left out" in n for n in r.notes), r.notes


def test_exposure_per_view(tmp_path):
    """A target's own ``exposure`` overrides the run's (several photos: a reference view with a
    known exposure fixes the overall brightness, the others are fitted). Control: the same
    photo with its exposure declared known misses."""
    photo = _photo(tmp_path, "photo", "cbox", 24, {WALL: TRUTH}, gains=0.6)
    r = _fit("cbox", 24, WALL, [{"image": photo, "exposure": "fit"}], 0.5)
    assert np.abs(r.values[WALL] - TRUTH).max() < 0.04, r.values[WALL]
    known = _fit("cbox", 24, WALL, [{"image": photo, "exposure": "none"}], 0.5, exposure="fit")
    assert np.abs(known.values[WALL] - TRUTH).max() > 0.1, known.values[WALL]
    with pytest.raises(pd.inputs.InputError, match="exposure is one of"):
        _fit("cbox", 24, WALL, [{"image": photo, "exposure": "auto"}], 0.5)


def test_clipped_specular_highlight(tmp_path):
    """Glossy plastic under a sun, exposed so that its highlight and the sky clip; the
    plastic's diffuse colour is recovered with an unknown exposure."""
    key, truth = "plastic.diffuse_reflectance.value", np.array([0.3, 0.15, 0.05])
    photo = _photo(tmp_path, "photo", "glossy", 32, {key: truth}, gains=1.6)
    img = read_image(photo)
    assert (img.max(axis=2) >= 0.99).mean() > 0.02  # the highlight and sky clip
    r = _fit("glossy", 32, key, photo, 0.5, exposure="fit", lr=0.03)
    assert np.abs(r.values[key] - truth).max() < 0.04, r.values[key]
    wrong = _fit("glossy", 32, key, {"image": img}, 0.5, exposure="fit", lr=0.03)
    assert np.abs(wrong.values[key] - truth).max() > 2 * np.abs(r.values[key] - truth).max()


# ---- notes and warnings (no rendering) ------------------------------------------------------
def test_mostly_clipped_view_warns():
    img = np.full((10, 10, 3), 0.2, np.float32)
    img[:7] = 1.0
    t = Target(img, ldr=True, path="a.png")
    with pytest.warns(UserWarning, match="70% of the pixels are masked"):
        notes = diagnose.target_notes([t])
    assert "70 of 100 pixels" in notes[0]
    assert diagnose.target_notes([Target(img)]) == []  # an HDR array clips nothing


def test_parameter_at_a_bound_warns():
    cols = ["iteration", "loss", "seconds", "a[0]", "a[1]", "b"]
    rows = np.zeros((40, 6))
    rows[:, 3] = np.linspace(0.5, 0.0, 40).clip(0.0, None)  # reaches 0 early, stays
    rows[:, 3][20:] = 0.0
    rows[:, 4], rows[:, 5] = 0.3, 1.0
    with pytest.warns(UserWarning, match=r"a\[0\] sat at its lower bound 0"):
        notes = diagnose.bound_notes(["a", "b"], {"a": (0, 1), "b": (0, np.inf)}, cols, rows)
    assert len(notes) == 1
    rows[-1, 3] = 0.01  # left the bound at the end: nothing to say
    assert diagnose.bound_notes(["a"], {"a": (0, 1)}, cols, rows) == []


def test_loss_that_does_not_decrease_warns():
    rng = np.random.default_rng(0)
    flat = 1.0 + 0.05 * rng.standard_normal(60)
    with pytest.warns(UserWarning, match="did not decrease"):
        assert diagnose.loss_notes(flat)
    falling = np.linspace(1.0, 0.8, 60) + 0.01 * rng.standard_normal(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert diagnose.loss_notes(falling) == []  # a noise floor far from 0 is fine
