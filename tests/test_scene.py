"""Scene loading, parameter listing and ParamSpec resolution on a tiny self-written scene."""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest

from pathdiff.scene import SceneError, list_params, load_scene, resolve_param, rigid_specs

SCENE_XML = """<scene version="3.0.0">
    <default name="res" value="16"/>
    <default name="spp" value="4"/>
    <default name="radius" value="0.5"/>
    <integrator type="path"><integer name="max_depth" value="3"/></integrator>
    <sensor type="perspective" id="sensor">
        <transform name="to_world"><lookat origin="0, 0, 5" target="0, 0, 0" up="0, 1, 0"/>
        </transform>
        <sampler type="independent"><integer name="sample_count" value="$spp"/></sampler>
        <film type="hdrfilm">
            <integer name="width" value="$res"/><integer name="height" value="$res"/>
        </film>
    </sensor>
    <bsdf type="diffuse" id="red"><rgb name="reflectance" value="0.5, 0.1, 0.2"/></bsdf>
    <shape type="ply" id="box">
        <string name="filename" value="box.ply"/>
        <ref id="red"/>
    </shape>
    <shape type="ply" id="box2">
        <string name="filename" value="box.ply"/>
        <ref id="red"/>
    </shape>
    <shape type="sphere" id="ball"><float name="radius" value="$radius"/></shape>
    <bsdf type="diffuse" id="checker">
        <texture type="bitmap" name="reflectance">
            <string name="filename" value="tex.exr"/>
            <string name="format" value="variant"/>
        </texture>
    </bsdf>
    <shape type="rectangle" id="quad"><ref id="checker"/></shape>
    <emitter type="constant" id="sky"><rgb name="radiance" value="1, 1, 1"/></emitter>
</scene>
"""


@pytest.fixture(scope="module")
def scene_file(pd, tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    box = mi.load_dict({"type": "cube"})
    # moved off the origin and tilted, so that the centroid and the normals matter
    transform = mi.ScalarTransform4f().translate([0.5, 0.2, -0.3]).rotate([1, 1, 0], 20)
    params = mi.traverse(box)
    P = dr.unravel(mi.Point3f, params["vertex_positions"])
    params["vertex_positions"] = dr.ravel(mi.Transform4f(transform) @ P)
    params.update()
    box.write_ply(str(root / "box.ply"))
    mi.Bitmap(np.random.default_rng(0).random((4, 4, 3)).astype(np.float32)).write(
        str(root / "tex.exr")
    )
    (root / "scene.xml").write_text(SCENE_XML)
    return root / "scene.xml"


@pytest.fixture
def scene(scene_file):
    return load_scene(scene_file)


def _array(value) -> np.ndarray:
    return np.array(value, dtype=np.float64).ravel()


def _forward(spec) -> np.ndarray:
    """d(params[key])/dθ at θ = 0 for the first key the spec writes."""
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    spec.bind(theta=θ)
    # keep gradients of interior nodes: textures derive data from the written tensor
    dr.forward(θ, dr.ADFlag.ClearNone)
    grad = _array(dr.grad(spec.params[spec.keys[0]]))
    spec.reset()
    return grad


def _moved(spec, theta: float) -> dict[str, np.ndarray]:
    """The values the spec writes at ``theta`` (then reset)."""
    spec.bind(theta=mi.Float(theta))
    out = {k: _array(spec.params[k]) for k in spec.keys}
    spec.reset()
    return out


def test_load_scene_sets_xml_parameters(scene_file):
    scene = load_scene(scene_file, res=8, spp=3, radius=2)
    sensor = scene.sensors()[0]
    assert tuple(sensor.film().crop_size()) == (8, 8)
    assert sensor.sampler().sample_count() == 3
    ball = next(s for s in scene.shapes() if s.id() == "ball")
    assert ball.bbox().extents()[0] == pytest.approx(4.0)


def test_list_params(scene):
    rows = {key: (kind, size) for key, kind, size in list_params(scene)}
    n = len(_array(mi.traverse(scene)["box.vertex_positions"]))
    assert rows["red.reflectance.value"] == ("Color3f", 3)
    assert rows["box.vertex_positions"] == ("Float", n)
    assert rows["checker.reflectance.data"] == ("TensorXf", 4 * 4 * 3)
    assert "sky.radiance.value" in rows
    assert not {"box.faces", "ball.to_world", "sensor.to_world"} & set(rows)
    assert "box2.vertex_positions" in rows  # meshes sharing a BSDF are not merged
    assert rigid_specs(scene) == [
        f"{shape}.{motion}"
        for shape in ("box", "box2", "ball", "quad")  # the sphere through its to_world
        for motion in [*(f"translate.{a}" for a in "xyz"), *(f"rotate.{a}" for a in "xyz"), "scale"]
    ] + [
        f"sensor.{motion}"  # the perspective sensor's pose and fov
        for motion in [*(f"translate.{a}" for a in "xyz"), *(f"rotate.{a}" for a in "xyz"), "fov"]
    ]


@pytest.mark.parametrize(
    "spec,kind",
    [
        ("red.reflectance.value", "material"),
        ("checker.reflectance.data", "texture"),
        ("sky.radiance.value", "emitter"),
        ("box.vertex_positions", "geometry"),
        ("box.rotate.y", "geometry"),
    ],
)
def test_kind(scene, spec, kind):
    assert resolve_param(scene, spec).kind == kind


@pytest.mark.parametrize(
    "spec,key,size,index",
    [
        ("red.reflectance.value", "red.reflectance.value", 3, None),
        ("red.reflectance.value[1]", "red.reflectance.value", 3, 1),
        ("checker.reflectance.data", "checker.reflectance.data", 48, None),
        ("checker.reflectance.data[7]", "checker.reflectance.data", 48, 7),
        ("box.vertex_positions[4]", "box.vertex_positions", None, 4),
    ],
)
def test_key_specs(scene, spec, key, size, index):
    spec = resolve_param(scene, spec)
    assert spec.keys == [key] and spec.params is not None
    base = _array(mi.traverse(scene)[key])
    delta = np.ones_like(base) if index is None else np.eye(len(base))[index]
    np.testing.assert_allclose(_moved(spec, 0.25)[key] - base, 0.25 * delta, atol=1e-6)
    np.testing.assert_array_equal(_forward(spec), delta)
    np.testing.assert_array_equal(_array(mi.traverse(scene)[key]), base)  # reset restores


def _rotation(axis: int, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix about world axis 0, 1 or 2."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return [
        np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    ][axis]


def test_rigid_specs(scene):
    P = _array(mi.traverse(scene)["box.vertex_positions"]).reshape(-1, 3)
    N = _array(mi.traverse(scene)["box.vertex_normals"]).reshape(-1, 3)
    c = P.mean(0)

    spec = resolve_param(scene, "box.translate.z")
    assert spec.keys == ["box.vertex_positions"]
    moved = _moved(spec, 0.3)["box.vertex_positions"].reshape(-1, 3)
    np.testing.assert_allclose(moved - P, np.tile([0, 0, 0.3], (len(P), 1)), atol=1e-6)
    np.testing.assert_allclose(_forward(spec).reshape(-1, 3), np.tile([0, 0, 1], (len(P), 1)))

    spec = resolve_param(scene, "box.scale")
    moved = _moved(spec, 0.5)["box.vertex_positions"].reshape(-1, 3)
    np.testing.assert_allclose(moved, c + 1.5 * (P - c), atol=1e-5)
    np.testing.assert_allclose(_forward(spec).reshape(-1, 3), P - c, atol=1e-5)

    for axis in range(3):
        spec = resolve_param(scene, f"box.rotate.{'xyz'[axis]}")
        assert spec.keys == ["box.vertex_positions", "box.vertex_normals"]
        R = _rotation(axis, 30.0)
        moved = _moved(spec, 30.0)
        np.testing.assert_allclose(
            moved["box.vertex_positions"].reshape(-1, 3), c + (P - c) @ R.T, atol=1e-5
        )
        np.testing.assert_allclose(moved["box.vertex_normals"].reshape(-1, 3), N @ R.T, atol=1e-5)
        # d/dθ at θ = 0 (degrees): (π/180) · axis × (p − c)
        expected = np.pi / 180 * np.cross(np.eye(3)[axis], P - c)
        np.testing.assert_allclose(_forward(spec).reshape(-1, 3), expected, atol=1e-6)
    np.testing.assert_array_equal(
        _array(mi.traverse(scene)["box.vertex_positions"]).reshape(-1, 3), P
    )


@pytest.mark.parametrize(
    "spec,message",
    [
        ("red.reflectanse.value", r"unknown parameter .*did you mean: red\.reflectance\.value"),
        ("red.xyz", r"did you mean: red\.reflectance\.value"),
        ("box.translate.w", r"did you mean: .*box\.translate\.x"),
        ("red.reflectance.value[3]", r"index 3 out of range .*\(3 components\)"),
        ("bx.translate.x", r"unknown shape 'bx' .*box"),
        ("box.faces", "'box.faces' is not differentiable"),
        ("ball.to_world", r"AffineTransform4f.*SHAPE\.translate"),
    ],
)
def test_paramspec_errors(scene, spec, message):
    with pytest.raises(SceneError, match=message) as info:
        resolve_param(scene, spec)
    assert "\n" not in str(info.value)


def test_analytic_shapes_move_through_to_world(scene):
    spec = resolve_param(scene, "ball.rotate.x")
    assert spec.kind == "geometry" and spec.keys == ["ball.to_world"]


def test_near_matches_are_at_most_five(scene):
    with pytest.raises(SceneError) as info:
        resolve_param(scene, "box.rotate")
    assert 1 <= str(info.value).split("did you mean: ")[1].count(",") + 1 <= 5


@pytest.mark.parametrize(
    "body,message",
    [
        ('<shape type="ply">\n</scene>\n', r"malformed XML in .*bad\.xml, line 3, column \d+"),
        ('<shape type="nosuch"/>\n</scene>', r"bad\.xml \(line 2, col \d+\).*nosuch"),
        (
            '<shape type="ply"><string name="filename" value="none.ply"/></shape>\n</scene>',
            r"bad\.xml \(line 2, col \d+\).*none\.ply",
        ),
        ('<integer name="x" value="1"/>\n</scene>', r"bad\.xml .*unreferenced property"),
    ],
)
def test_load_errors(tmp_path, body, message):
    bad = tmp_path / "bad.xml"
    bad.write_text('<scene version="3.0.0">\n' + body)
    with pytest.raises(SceneError, match=message) as info:
        load_scene(bad)
    assert "\n" not in str(info.value)


def test_missing_scene_file(tmp_path):
    with pytest.raises(SceneError, match="scene file not found: .*missing.xml"):
        load_scene(tmp_path / "missing.xml")


@pytest.mark.parametrize("kind", ["path", "volpath", "prb"])
def test_native_integrator_options(kind):
    """The options a named integrator inherits from one of Mitsuba's own (issue 12.8)."""
    import mitsuba as mi

    from pathdiff.render import scene_integrator_options

    scene = mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": kind, "max_depth": -1, "rr_depth": 3, "hide_emitters": True},
        }  # fmt: skip
    )
    assert scene_integrator_options(scene) == {
        "max_depth": -1,
        "rr_depth": 3,
        "hide_emitters": True,
    }


def test_one_traversal_per_scene(scene):
    """``scene_params`` traverses a scene once and shares the object; its values are live
    (a change made through another traversal is seen), and another scene gets its own."""
    from pathdiff.params import scene_params

    params = scene_params(scene)
    assert scene_params(scene) is params
    assert resolve_param(scene, "box.translate.x").params is params
    other = mi.traverse(scene)
    key = "red.reflectance.value"
    old = mi.Color3f(other[key])
    other[key] = mi.Color3f(0.25, 0.5, 0.75)
    other.update()
    try:
        assert np.allclose(np.array(params[key]).ravel(), [0.25, 0.5, 0.75])
    finally:
        other[key] = old
        other.update()
    assert scene_params(mi.load_dict({"type": "scene"})) is not params
