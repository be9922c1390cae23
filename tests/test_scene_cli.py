"""Scene loading, ParamSpec resolution, image files and the command line, end to end."""

from __future__ import annotations

import subprocess
import sys

import drjit as dr
import mitsuba as mi
import numpy as np
import pytest
from conftest import ROOT, scene_path

from pathdiff.cli import main
from pathdiff.images import linear_to_srgb, read_image, srgb_to_linear, write_image
from pathdiff.scene import SceneError

SPHERE_XML = """<scene version="3.0.0">
    <shape type="sphere" id="ball"/>
</scene>"""


@pytest.fixture(scope="module")
def cbox(pd):
    return pd.load_scene(scene_path("cbox"), res=16)


def test_keys_survive_loading(pd, cbox):
    keys = {k for k, _, _ in pd.list_params(cbox)}
    assert {"red.reflectance.value", "light.emitter.radiance.value"} <= keys
    assert "tall_box.vertex_positions" in keys  # meshes are not merged


def _forward(spec):
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    spec.bind(spec.params, θ)
    dr.forward(θ)
    grad = dr.grad(spec.params[spec.keys[0]])
    spec.reset(spec.params)
    return np.array(grad).ravel()


def test_paramspec_components(pd, cbox):
    np.testing.assert_allclose(_forward(pd.resolve_param(cbox, "red.reflectance.value")), [1, 1, 1])
    np.testing.assert_allclose(
        _forward(pd.resolve_param(cbox, "red.reflectance.value[2]")), [0, 0, 1]
    )


def test_paramspec_rigid_motions(pd, cbox):
    key = "tall_box.vertex_positions"
    P = np.array(mi.traverse(cbox)[key]).reshape(-1, 3)
    c = P.mean(0)
    np.testing.assert_allclose(
        _forward(pd.resolve_param(cbox, "tall_box.translate.z")).reshape(-1, 3),
        np.tile([0, 0, 1], (len(P), 1)),
    )
    np.testing.assert_allclose(
        _forward(pd.resolve_param(cbox, "tall_box.scale")).reshape(-1, 3),
        P - c,
        rtol=1e-5,
        atol=1e-6,
    )
    # d/dθ of a rotation about y (degrees) at θ = 0: (π/180) · ŷ × (p − c)
    expected = np.pi / 180 * np.cross([0, 1, 0], P - c)
    got = _forward(pd.resolve_param(cbox, "tall_box.rotate.y")).reshape(-1, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    spec = pd.resolve_param(cbox, "tall_box.translate.x")
    spec.bind(spec.params, mi.Float(0.5))
    moved = np.array(mi.traverse(cbox)[key]).reshape(-1, 3)
    np.testing.assert_allclose(moved - P, np.tile([0.5, 0, 0], (len(P), 1)), atol=1e-6)
    spec.reset(spec.params)
    np.testing.assert_array_equal(np.array(mi.traverse(cbox)[key]).reshape(-1, 3), P)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("red.reflectanse.value", "did you mean: red.reflectance.value"),
        ("red.reflectance.value[3]", "out of range"),
        ("tall_bx.translate.x", "tall_box"),
        ("sensor.to_world", "not differentiable"),
    ],
)
def test_paramspec_errors(pd, cbox, spec, message):
    with pytest.raises(SceneError, match=message.replace("[", r"\[")):
        pd.resolve_param(cbox, spec)


def test_rigid_spec_needs_a_mesh(pd, tmp_path):
    path = tmp_path / "sphere.xml"
    path.write_text(SPHERE_XML)
    scene = pd.load_scene(path)
    with pytest.raises(SceneError, match="not a triangle mesh"):
        pd.resolve_param(scene, "ball.translate.x")


def test_load_errors(pd, tmp_path):
    with pytest.raises(SceneError, match="not found"):
        pd.load_scene(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text('<scene version="3.0.0">\n  <shape type="ply">\n</scene>\n')
    with pytest.raises(SceneError, match=r"bad.xml, line 3"):
        pd.load_scene(bad)
    unknown = tmp_path / "unknown.xml"
    unknown.write_text('<scene version="3.0.0"><shape type="nosuchshape"/></scene>')
    with pytest.raises(SceneError, match="unknown.xml"):
        pd.load_scene(unknown)


def test_image_round_trip(tmp_path):
    img = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    write_image(tmp_path / "a.exr", img)
    np.testing.assert_array_equal(read_image(tmp_path / "a.exr"), img)
    write_image(tmp_path / "a.png", img)
    back = linear_to_srgb(read_image(tmp_path / "a.png"))
    np.testing.assert_allclose(back, linear_to_srgb(img), atol=0.5 / 255 + 1e-6)
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "none.png")


def test_cli_render_exr_and_png(tmp_path, capsys):
    for name in ("out.exr", "out.png"):
        out = tmp_path / name
        assert (
            main(["render", scene_path("cbox"), "-o", str(out), "--res", "16", "--spp", "8"]) == 0
        )
        img = read_image(out)
        assert img.shape == (16, 16, 3) and img.mean() > 0.01
    assert "wrote" in capsys.readouterr().out


def test_cli_params_lists_keys(capsys):
    assert main(["params", scene_path("shadow"), "--res", "8"]) == 0
    out = capsys.readouterr().out
    assert "occluder.vertex_positions" in out and "occluder.translate.x" in out


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pathdiff.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["render", "missing.xml", "-o", "x.png"], "scene file not found"),
        (["render", scene_path("cbox"), "-o", "x.tiff"], "unsupported output type"),
        (["params", str(ROOT / "pyproject.toml")], "malformed XML"),
    ],
)
def test_cli_errors_are_one_line(args, message):
    r = _run(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_doctor():
    r = _run("doctor")
    assert r.returncode == 0, r.stderr
    assert "llvm_ad_rgb" in r.stdout and "-> ok" in r.stdout


def test_backend_error_is_one_line():
    code = (
        "import os; os.environ['DRJIT_LIBLLVM_PATH'] = '/nonexistent/libLLVM.so';"
        "import sys; from pathdiff.cli import main; sys.exit(main(['doctor']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "libllvm19" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
