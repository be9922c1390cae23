"""Documented limits that a scene hits are said at run time (one warning line naming the
shape or estimator), never a silent zero."""

from __future__ import annotations

import peer_configs as P
import pytest
from test_delta_lights import _scene


def test_moving_analytic_shape_is_named(pd):
    """reparam has no boundary term for analytic shapes (edge and psdr have one for disks
    and rectangles, tests/test_analytic_shapes.py, which also checks spheres are named)."""
    cfg = P.BY_NAME["translate_disk_emitter_on_gray"]  # a `disk` moved through its to_world
    scene, spec = cfg.load(16)
    with pytest.warns(UserWarning, match=r"pathdiff_reparam: shape 'disk' \(Disk\) moves"):
        pd.derivative(scene, spec, "reparam", spp=2, max_depth=cfg.max_depth)


def test_moving_camera_limits(pd, tmp_path):
    """psdr and reparam follow a moving camera (no warning about it any more); reparam still
    has no shadow term for delta lights, which a moving camera sees move too."""
    import warnings

    scene = _scene(tmp_path, "point")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.derivative(scene, "sensor.rotate.x", "psdr", spp=2)
    match = r"pathdiff_reparam: delta lights \('light'\) .* seen by a moving camera"
    with pytest.warns(UserWarning, match=match):
        pd.derivative(scene, "sensor.rotate.x", "reparam", spp=2)


def test_no_warning_where_nothing_is_missing(pd, tmp_path):
    import warnings

    scene = _scene(tmp_path, "point")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.derivative(scene, "sensor.rotate.x", "edge", spp=2)
        pd.derivative(scene, "floor.translate.y", "edge", spp=2)


def test_delta_light_shadow_limits(pd, tmp_path):
    """reparam has no shadow term for delta lights; edge/psdr miss shadows seen through ideal
    specular surfaces (a mirror wall), and say nothing where nothing is missed."""
    import warnings

    from test_delta_shadows import _scene as shadow_scene

    scene = shadow_scene(tmp_path, "point", res=8)
    with pytest.warns(UserWarning, match=r"pathdiff_reparam: delta lights \('light'\)"):
        pd.derivative(scene, "card.translate.x", "reparam", spp=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.derivative(scene, "card.translate.x", "edge", spp=1, max_depth=3)
    mirror = shadow_scene(tmp_path, "point", res=8, wall=True, mirror=True)
    for integrator in ("edge", "psdr"):
        with pytest.warns(UserWarning, match=f"pathdiff_{integrator}: the shadows .*specular"):
            pd.derivative(mirror, "card.translate.x", integrator, spp=1, max_depth=3)


def test_projector_frustum_limit(pd, tmp_path):
    from test_delta_shadows import _scene as shadow_scene

    scene = shadow_scene(tmp_path, "projector", res=8)
    with pytest.warns(UserWarning, match=r"pathdiff_edge: projector 'light': the border"):
        pd.derivative(scene, "card.translate.x", "edge", spp=1)


def test_moving_camera_with_indirect_light_is_silent(pd):
    """No limit is left to say for a moving camera with indirect light: the moving-vertex
    factors follow the camera's hits (issue 13.2; prb, edge and psdr warned before), and
    reparam's warp follows them too."""
    import warnings

    from conftest import scene_path

    scene = pd.load_scene(scene_path("cbox"), res=8, max_depth=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for integrator in ("prb", "edge", "psdr", "reparam"):
            pd.derivative(scene, "sensor.translate.x", integrator, spp=1)


def test_reparam_moving_geometry_limits(pd):
    """reparam's warped rays have no moving-vertex factors and its warp no moving emitters
    (Mitsuba's glass-lens and textured-emitter configurations fail for it): both said."""
    cfg = P.BY_NAME["translate_textured_area_emitter_illuminating_plane"]  # the emitter moves
    scene, spec = cfg.load(8)
    with pytest.warns(UserWarning) as record:
        pd.derivative(scene, spec, "reparam", spp=1, max_depth=cfg.max_depth)
    said = " ".join(str(w.message) for w in record)
    assert "pathdiff_reparam: emitter 'light' moves" in said
    assert "no moving-vertex factors" in said
    cfg = P.BY_NAME["translate_glass_plane_lens"]  # a moving receiver, no moving emitter
    scene, spec = cfg.load(8)
    with pytest.warns(UserWarning, match="no moving-vertex factors") as record:
        pd.derivative(scene, spec, "reparam", spp=1, max_depth=cfg.max_depth)
    assert not any("emitter" in str(w.message) and "moves" in str(w.message) for w in record)
