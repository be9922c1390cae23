"""Split-vertex meshes (hard edges, UV seams) and the film's reconstruction filter for the
boundary estimators, against CRN finite differences of the primal integrator (issue 14.1,
14.3).

Negative controls run the same cases with ``crease_rule=legacy`` (creases decided from
``has_vertex_normals()`` only, the behaviour before issue 14), which misses the hard edges
of Mitsuba's built-in ``cube`` and UV seams, and must fail the same comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

SENSOR = """
    <sensor type="perspective">
        <float name="fov" value="{fov}"/>
        <transform name="to_world">
            <lookat origin="{origin}" target="0, 0, 0" up="0, 1, 0"/>
        </transform>
        <sampler type="independent"><integer name="sample_count" value="16"/></sampler>
        <film type="hdrfilm">
            <integer name="width" value="$res"/><integer name="height" value="$res"/>
            <boolean name="sample_border" value="true"/>
            {rfilter}
        </film>
    </sensor>"""


def _scene_file(tmp_path, body: str, res: int = 20, fov: float = 40, origin: str = "2.2, 1.8, 3",
                rfilter: str = '<rfilter type="box"/>', sun: bool = True) -> str:  # fmt: skip
    """A scene around ``body``: a sun (directional light) and a dim sky, or (``sun=False``)
    a bright sky only."""
    sky = 0.2 if sun else 1.0
    sun = SUN if sun else ""
    xml = f"""<scene version="3.0.0">
    <default name="res" value="{res}"/>
    <integrator type="pathdiff_path"><integer name="max_depth" value="2"/></integrator>
    {SENSOR.format(fov=fov, origin=origin, rfilter=rfilter)}
    {sun}
    <emitter type="constant"><rgb name="radiance" value="{sky}"/></emitter>
    {body}
</scene>"""
    path = tmp_path / "scene.xml"
    path.write_text(xml)
    return str(path)


SUN = """<emitter type="directional">
        <vector name="direction" value="-0.5, -1, -0.3"/>
        <rgb name="irradiance" value="3"/>
    </emitter>"""

CUBE = """<shape type="cube" id="cube">
        <transform name="to_world"><scale value="0.7"/></transform>
        <bsdf type="diffuse"><rgb name="reflectance" value="0.7"/></bsdf>
    </shape>"""


def _uv_sphere_obj(path, n_lon: int = 16, n_lat: int = 8) -> str:
    """A UV sphere whose vertices are split along its texture seam (u = 0 / u = 1), with
    smooth vertex normals: the seam is a discontinuity of a clamped texture only."""
    v, vt, vn, f = [], [], [], []
    for i in range(n_lat + 1):
        th = np.pi * i / n_lat
        for j in range(n_lon + 1):  # j = n_lon duplicates j = 0 with u = 1
            ph = 2 * np.pi * j / n_lon
            p = (np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph))
            v.append(p)
            vn.append(p)
            vt.append((j / n_lon, 1 - i / n_lat))
    k = lambda i, j: i * (n_lon + 1) + j + 1  # noqa: E731
    for i in range(n_lat):
        for j in range(n_lon):
            a, b, c, d = k(i, j), k(i, j + 1), k(i + 1, j + 1), k(i + 1, j)
            if i > 0:
                f.append((a, b, c))
            if i < n_lat - 1:
                f.append((a, c, d))
    _write_obj(path, v, vt, vn, [[(x, x, x) for x in t] for t in f])
    return str(path)


def _blender_obj(path) -> str:
    """A Blender-style export: a beveled box (hard edges: per-face normals, one vertex per
    face corner) with a UV unwrap whose islands meet at seams, and a smooth-shaded top
    whose only split is a UV seam across it."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    normals = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]
    v = [tuple(c * 0.6) for c in corners]
    vt, vn, f = [], [], []
    for q, (quad, n) in enumerate(zip(quads, normals, strict=True)):
        vn.append(n)
        base = len(vt)  # each face its own UV island (a seam along every edge)
        vt += [(q / 6, 0), ((q + 1) / 6, 0), ((q + 1) / 6, 1), (q / 6, 1)]
        face = [(quad[k] + 1, base + k + 1, q + 1) for k in range(4)]
        f += [[face[0], face[1], face[2]], [face[0], face[2], face[3]]]
    _write_obj(path, v, vt, vn, f)
    return str(path)


def _write_obj(path, v, vt, vn, f) -> None:
    lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in vt]
    lines += [f"vn {a:.6f} {b:.6f} {c:.6f}" for a, b, c in vn]
    lines += ["f " + " ".join(f"{a}/{b}/{c}" for a, b, c in t) for t in f]
    path.write_text("\n".join(lines) + "\n")


def _checker(path) -> str:
    """A smooth ramp in u (bilinear, clamped): continuous inside each face, but u = 0 and
    u = 1 differ, so a UV seam is a discontinuity (and the only one)."""
    import mitsuba as mi

    tex = np.repeat(np.linspace(0.05, 0.95, 8, dtype=np.float32)[None, :, None], 8, 0)
    tex = np.repeat(tex, 3, 2)
    mi.Bitmap(tex).write(str(path))
    return str(path)


def _textured(shape: str, filename: str, tex: str, extra: str = "") -> str:
    return f"""<shape type="{shape}" id="obj">
        <string name="filename" value="{filename}"/>{extra}
        <bsdf type="diffuse"><texture type="bitmap" name="reflectance">
            <string name="filename" value="{tex}"/><string name="filter_type" value="bilinear"/>
            <string name="wrap_mode" value="clamp"/>
        </texture></bsdf>
    </shape>"""


def _cube(tmp_path) -> str:
    return _scene_file(tmp_path, CUBE)


def _sphere(tmp_path) -> str:
    obj = _uv_sphere_obj(tmp_path / "sphere.obj")
    tex = _checker(tmp_path / "tex.exr")
    return _scene_file(
        tmp_path,
        _textured(
            "obj",
            obj,
            tex,
            '<transform name="to_world"><rotate y="1" angle="-60"/>'
            '<scale value="0.8"/></transform>',
        ),
        sun=False,  # a sun's self-shadow terminator on the smooth sphere is a delta-light
    )  # shadow boundary (issue 14.2), not this test's subject


def _blender(tmp_path) -> str:
    obj = _blender_obj(tmp_path / "box.obj")
    tex = _checker(tmp_path / "tex.exr")
    return _scene_file(tmp_path, _textured("obj", obj, tex))


CASES = {"cube": _cube, "sphere": _sphere, "blender": _blender}


def _fd_compare(pd, scene, spec: str, integrator: str, h: float, **opts):
    """4 AD seeds vs 8 CRN FD seeds, total + random-weight losses + 4 x 4 tiles; a noise floor
    of 1e-3 of the largest statistic for tiles where both sides are ~0 (FD exactly 0)."""
    from pathdiff.stats import compare, random_weights, summary

    ad = [pd.derivative(scene, spec, integrator, spp=32, seed=s, **opts) for s in range(4)]
    fd = [pd.finite_difference(scene, spec, h=h, spp=256, seed=100 + s) for s in range(8)]
    w = random_weights(np.shape(fd[0]))
    floor = 1e-3 * np.abs(np.mean([summary(f, w, 4) for f in fd], 0)).max()
    return compare(ad, fd, tiles=4, floor=floor)


SPLIT_CASES = [
    ("cube", "cube.rotate.y", 1.0),
    ("cube", "cube.translate.x", 0.02),
    ("sphere", "obj.rotate.y", 1.0),
    ("blender", "obj.rotate.y", 1.0),
]


@pytest.mark.parametrize(
    "integrator", ["pathdiff_edge", pytest.param("pathdiff_psdr", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("case,spec,h", SPLIT_CASES)
def test_split_vertices_match_fd(pd, tmp_path, case, spec, h, integrator):
    scene = pd.load_scene(CASES[case](tmp_path), res=20)
    r = _fd_compare(pd, scene, spec, integrator, h)
    assert (np.abs(r.b_mean) > 4 * r.b_se)[1:].any(), "FD is not significant"
    assert r.passed, f"z = {r.z.round(1)}, threshold {r.threshold:.2f}"


@pytest.mark.parametrize("case,spec,h", SPLIT_CASES)
def test_legacy_crease_rule_fails(pd, tmp_path, case, spec, h):
    """Negative control: creases from has_vertex_normals() only miss the hard edges."""
    scene = pd.load_scene(CASES[case](tmp_path), res=20)
    r = _fd_compare(pd, scene, spec, "pathdiff_edge", h, crease_rule="legacy")
    assert not r.passed


def _gaussian_cube(tmp_path, sample_border: bool = True):
    path = _scene_file(tmp_path, CUBE, rfilter='<rfilter type="gaussian"/>')
    if not sample_border:
        text = open(path).read()
        open(path, "w").write(
            text.replace('sample_border" value="true', 'sample_border" value="false')
        )
    return path


@pytest.mark.parametrize(
    "integrator,sample_border",
    [
        ("pathdiff_edge", True),
        ("pathdiff_edge", False),
        pytest.param("pathdiff_psdr", True, marks=pytest.mark.slow),
    ],
)
def test_gaussian_film_matches_fd(pd, tmp_path, integrator, sample_border):
    """Issue 14.3: primary boundary samples splatted through a Gaussian reconstruction filter
    (the hdrfilm default), with and without ``sample_border``."""
    scene = pd.load_scene(_gaussian_cube(tmp_path, sample_border), res=20)
    r = _fd_compare(pd, scene, "cube.translate.x", integrator, 0.02)
    assert (np.abs(r.b_mean) > 4 * r.b_se)[1:].any(), "FD is not significant"
    assert r.passed, f"z = {r.z.round(1)}, threshold {r.threshold:.2f}"


def test_gaussian_film_pixel_splat_fails(pd, tmp_path):
    """Negative control: the old one-pixel splat under a Gaussian film fails."""
    scene = pd.load_scene(_gaussian_cube(tmp_path), res=20)
    r = _fd_compare(pd, scene, "cube.translate.x", "pathdiff_edge", 0.02, pixel_splat=True)
    assert not r.passed


def test_crop_window_warns(pd, tmp_path):
    """A crop window is a documented limit of the primary term: one warning line."""
    path = _scene_file(tmp_path, CUBE, res=8)
    text = (
        open(path)
        .read()
        .replace(
            '<boolean name="sample_border"',
            '<integer name="crop_width" value="4"/><integer name="crop_height" value="4"/>'
            '<boolean name="sample_border"',
        )
    )
    open(path, "w").write(text)
    scene = pd.load_scene(path)
    with pytest.warns(UserWarning, match="crop window"):
        pd.derivative(scene, "cube.rotate.y", "pathdiff_edge", spp=1)
