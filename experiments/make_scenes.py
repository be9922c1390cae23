"""Regenerate the mesh, texture and environment-map assets of the bundled scenes.

Writes binary little-endian PLY meshes (merged vertices, outward/inward-facing winding as
needed by the one-sided BSDFs), ``textured/texture.png`` and ``glossy/envmap.exr`` into
``scenes/``. The ``scene.xml`` files are hand-written and reference these assets. The output is
deterministic. Usage: ``python experiments/make_scenes.py [scenes_dir]``.
"""

import os
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

SCENES = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "scenes")


def ints(s):
    """Parse a whitespace-separated list of integers into an (n, 3) array."""
    return np.array(s.split(), int).reshape(-1, 3)


def write_ply(path, v, f, uv=None):
    """Write a binary PLY with float32 positions (+ optional uv) and int32 triangle indices."""
    v = np.asarray(v, np.float32)
    props = ["x", "y", "z"] + (["u", "v"] if uv is not None else [])
    vert = np.empty(len(v), [(p, "<f4") for p in props])
    for i, p in enumerate("xyz"):
        vert[p] = v[:, i]
    if uv is not None:
        vert["u"], vert["v"] = np.asarray(uv, np.float32).T
    face = np.empty(len(f), [("n", "u1"), ("i", "<i4", 3)])
    face["n"], face["i"] = 3, f
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}"]
    header += [f"property float {p}" for p in props]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode())
        fh.write(vert.tobytes() + face.tobytes())


SENSOR_XML = """
    <sensor type="perspective" id="{id}">
        <float name="fov" value="{fov}"/>
        <transform name="to_world">
            <lookat origin="{origin}" target="{target}" up="0, 1, 0"/>
        </transform>
        <sampler type="independent">
            <integer name="sample_count" value="$spp"/>
        </sampler>
        <film type="hdrfilm">
            <integer name="width" value="$res"/>
            <integer name="height" value="$res"/>
            <string name="pixel_format" value="rgb"/>
            <rfilter type="box"/>
        </film>
    </sensor>
"""


def sensor_xml(sensor_id, origin, target, fov):
    """A pinhole sensor looking from ``origin`` at ``target`` (y up), ``$res`` square film with
    a box filter, ``$spp`` samples, for generated scene files."""
    vec = lambda p: ", ".join(f"{float(x):.4f}" for x in p)  # noqa: E731
    return SENSOR_XML.format(id=sensor_id, fov=fov, origin=vec(origin), target=vec(target))


def quad(c, u, v):
    """Quad centred at c with half-edge vectors u, v; its normal points along cross(u, v)."""
    c, u, v = (np.asarray(a, float) for a in (c, u, v))
    verts = [c - u - v, c + u - v, c + u + v, c - u + v]
    return np.array(verts), np.array([[0, 1, 2], [0, 2, 3]]), [[0, 1], [1, 1], [1, 0], [0, 0]]


def orient(v, f, inside=0.0):
    """Flip triangles so normals point away from point `inside` (convex / star shapes)."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c - 3 * inside) < 0
    f = f.copy()
    f[flip] = f[flip][:, ::-1]
    return f


def box(center, half, angle_deg=0.0):
    """Closed box (8 merged vertices, 12 triangles) rotated about +y, outward normals."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    f = ints("0 1 3 0 3 2 4 6 7 4 7 5 0 4 5 0 5 1 2 3 7 2 7 6 0 2 6 0 6 4 1 5 7 1 7 3")
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    v = corners * half @ rot.T + center
    return v, orient(v, f, np.asarray(center, float))


def icosphere(level):
    """Unit icosphere with merged vertices: 10 * 4**level + 2 vertices, 20 * 4**level faces."""
    p = (1 + 5**0.5) / 2
    v = "-1 p 0 1 p 0 -1 -p 0 1 -p 0 0 -1 p 0 1 p 0 -1 -p 0 1 -p p 0 -1 p 0 1 -p 0 -1 -p 0 1"
    v = np.array(v.replace("p", repr(p)).split(), float).reshape(-1, 3)
    f = ints(
        "0 11 5 0 5 1 0 1 7 0 7 10 0 10 11 1 5 9 5 11 4 11 10 2 10 7 6 7 1 8 "
        "3 9 4 3 4 2 3 2 6 3 6 8 3 8 9 4 9 5 2 4 11 6 2 10 8 6 7 9 8 1"
    )
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(level):
        e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        uniq, inv = np.unique(e, axis=0, return_inverse=True)
        mid = v[uniq].mean(1)
        m = len(v) + inv.reshape(-1, 3)  # midpoints of edges (01, 12, 20)
        v = np.vstack([v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
        (a, b, c), (ab, bc, ca) = f.T, m.T
        f = np.stack([a, ab, ca, b, bc, ab, c, ca, bc, ab, bc, ca], 1).reshape(-1, 3)
    return v, orient(v, f)


def bunny(v):
    """Deform a unit sphere radially into a blobby bunny: body, head, two ears and a tail."""
    d = v / np.linalg.norm(v, axis=1, keepdims=True)
    r = np.ones(len(d))
    bumps = [
        ((0, 0.7, 0.7), 0.5, 0.12),
        ((-0.45, 1, 0.05), 1.1, 0.035),
        ((0.45, 1, 0.05), 1.1, 0.035),
        ((0, 0.2, -1), 0.25, 0.02),
    ]
    for axis, amp, width in bumps:
        a = np.asarray(axis) / np.linalg.norm(axis)
        r += amp * np.exp(-(1 - d @ a) / width)
    return d * r[:, None] * [0.7, 0.65, 0.9] + [0, -0.3, 0]


def make_cbox(out):
    """Cornell box in [-1, 1]^3, walls facing inward (one-sided diffuse)."""
    walls = {
        "floor": ([0, -1, 0], [0, 0, 1], [1, 0, 0]),
        "ceiling": ([0, 1, 0], [1, 0, 0], [0, 0, 1]),
        "back": ([0, 0, -1], [1, 0, 0], [0, 1, 0]),
        "left": ([-1, 0, 0], [0, 1, 0], [0, 0, 1]),
        "right": ([1, 0, 0], [0, 0, 1], [0, 1, 0]),
        "light": ([0, 0.99, 0], [0.23, 0, 0], [0, 0, 0.19]),
    }
    for name, (c, u, v) in walls.items():
        write_ply(out / f"{name}.ply", *quad(c, u, v)[:2])
    write_ply(out / "short_box.ply", *box([0.335, -0.7, 0.38], [0.3, 0.3, 0.3], -17))
    write_ply(out / "tall_box.ply", *box([-0.33, -0.39, -0.28], [0.3, 0.61, 0.3], 18.25))


def make_shadow(out):
    """Floor, downward-facing quad light and a thin floating slab (occluder)."""
    write_ply(out / "floor.ply", *quad([0, 0, 0], [0, 0, 3], [3, 0, 0])[:2])
    write_ply(out / "light.ply", *quad([-1.2, 3, -0.6], [0.4, 0, 0], [0, 0, 0.4])[:2])
    write_ply(out / "occluder.ply", *box([-0.3, 1.4, -0.15], [0.35, 0.05, 0.35], 20))


def make_silhouette(out):
    v, f = icosphere(1)
    write_ply(out / "object.ply", v @ np.diag([0.9, 1.0, 0.8]), f)


def make_textured(out):
    v, f, uv = quad([0, 0, 0], [1, 0, 0], [0, 1, 0])
    write_ply(out / "plane.ply", v, f, uv)
    write_ply(out / "light.ply", *quad([0, 1.5, 2], [0.4, 0, 0], [0, -0.32, 0.24])[:2])
    y, x = np.mgrid[0:16, 0:16] / 15.0
    light = np.stack([0.9 * np.ones_like(x), 0.2 + 0.7 * x, 0.1 + 0.2 * y], -1)
    dark = np.stack([0.05 + 0.1 * y, 0.1 + 0.1 * x, 0.45 + 0.3 * y], -1)
    checker = ((np.arange(16)[:, None] // 4 + np.arange(16) // 4) % 2)[..., None]
    img = np.where(checker == 0, light, dark)
    iio.imwrite(out / "texture.png", (img * 255 + 0.5).astype(np.uint8))


def make_glossy(out):
    v, f = icosphere(3)
    write_ply(out / "sphere.ply", v, f)
    write_ply(out / "floor.ply", *quad([0, 0, 0], [0, 0, 3], [3, 0, 0])[:2])
    h, w = 16, 32
    theta = (np.arange(h) + 0.5) / h * np.pi  # 0 = up (+y)
    phi = (np.arange(w) + 0.5) / w * 2 * np.pi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    sky = np.where(
        (th < np.pi / 2)[..., None],
        np.array([0.2, 0.3, 0.6]) * (0.4 + 0.6 * np.cos(th))[..., None],
        [0.08, 0.07, 0.06],
    )
    sun_dir = np.array([1, 1.5, 1.2]) / np.linalg.norm([1, 1.5, 1.2])
    # Mitsuba's envmap convention: d = (sin(theta) sin(phi), cos(theta), -sin(theta) cos(phi))
    dirs = np.stack([np.sin(th) * np.sin(ph), np.cos(th), -np.sin(th) * np.cos(ph)], -1)
    sun = 120 * np.exp(-(1 - dirs @ sun_dir) / 0.01)[..., None] * [1.0, 0.9, 0.7]
    os.environ.setdefault("DRJIT_LIBLLVM_PATH", "/usr/lib/x86_64-linux-gnu/libLLVM-19.so")
    import mitsuba as mi

    mi.Bitmap((sky + sun).astype(np.float32)).write(str(out / "envmap.exr"))


def make_bunny(out):
    v, f = icosphere(4)
    write_ply(out / "sphere.ply", v * 0.9, f)
    write_ply(out / "bunny.ply", bunny(v), f)
    write_ply(out / "light.ply", *quad([0.5, 3, 3], [0.5, 0, 0], [0, 0, 0.5])[:2])


if __name__ == "__main__":
    for name in ("cbox", "shadow", "silhouette", "textured", "glossy", "bunny"):
        globals()[f"make_{name}"](SCENES / name)
        print(f"{name}: {sorted(p.name for p in (SCENES / name).iterdir())}")
