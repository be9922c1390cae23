"""The benchmark problems: a scene, a scalar parameter θ (ParamSpec), a loss and a target.

Every problem is differentiated at θ = 0. Its finite-difference reference (CRN central
differences of the primal ``path`` tracer, :mod:`pathdiff.bench.make_references`) and the
target image of its short optimization (the scene rendered at ``θ = target``) are stored in
``references/NAME.npz`` with the settings that produced them.

Besides the ParamSpecs of :func:`pathdiff.resolve_param`, two suite-local kinds exist:

* ``SHAPE.displace``: every vertex of a mesh moves by θ along its vertex normal (a
  deformation of all vertices, not a rigid motion);
* ``sensor.translate.x|y|z``: the camera moves by θ. Mitsuba 3.9.1 does not propagate
  derivatives through ``sensor.to_world`` (flagged NonDifferentiable), so estimators get the
  equivalent motion instead: every mesh (area lights included) moves by −θ. This is exact
  for scenes lit only by mesh emitters (no environment), which is checked. The FD reference
  moves the real camera, so it also validates the equivalence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

import pathdiff as pd
from pathdiff.params import scene_params
from pathdiff.scene import ParamSpec

SUITE = Path(__file__).resolve().parent
#: the bundled scenes (a link to the source tree's ``scenes/``, copied into the wheel)
BUNDLED = SUITE / "bundled"
REFERENCES = SUITE / "references"

#: estimators that only compute the interior (continuous) term
INTERIOR_ONLY = ("prb", "ad", "mitsuba:prb")
#: estimators that cannot differentiate the camera: the suite moves the scene for them
SHIFT = ("reparam", "psdr")
#: Mitsuba's own integrators, run as reference columns
MITSUBA = ("mitsuba:prb", "mitsuba:prb_projective")


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    ``h`` is the FD step (chosen so silhouettes move ≲ 0.05 px per h, estimators.md §7.2),
    ``opts`` are integrator options used by the reference and every estimator, ``target`` is
    the goal of the short optimization (start at θ = 0, reach θ = target); ``ref_seeds``
    overrides the number of FD seeds of the reference (for very noisy problems).
    """

    name: str
    scene: str
    spec: str
    covers: str
    h: float
    target: float
    visibility: bool
    loss: str = "l2"
    opts: dict = field(default_factory=dict)
    ref_seeds: int | None = None

    @property
    def scene_path(self) -> Path:
        """``scene`` is relative to the suite's folder (``bundled/...``: the bundled scenes)."""
        return SUITE / self.scene

    @property
    def reference_path(self) -> Path:
        return REFERENCES / f"{self.name}.npz"


PROBLEMS: list[Problem] = [
    Problem(
        name="diffuse_albedo",
        scene="bundled/cbox/scene.xml",
        spec="red.reflectance.value",
        covers="diffuse material, interreflection (colour bleeding)",
        h=0.005,
        target=0.2,
        visibility=False,
        opts={"max_depth": 4},
    ),
    Problem(
        name="glossy_roughness",
        scene="bundled/glossy/scene.xml",
        spec="metal.alpha.value",
        covers="glossy material (GGX roughness)",
        h=0.002,
        target=0.15,
        visibility=False,
    ),
    Problem(
        name="texture",
        scene="bundled/textured/scene.xml",
        spec="plane_bsdf.reflectance.data",
        covers="texture (all texels)",
        h=0.005,
        target=0.15,
        visibility=False,
    ),
    Problem(
        name="area_light",
        scene="bundled/shadow/scene.xml",
        spec="light.emitter.radiance.value",
        covers="area-light radiance",
        h=0.4,
        target=10.0,
        visibility=False,
    ),
    Problem(
        name="envmap",
        scene="bundled/glossy/scene.xml",
        spec="env.scale",
        covers="environment-map intensity",
        h=0.01,
        target=0.3,
        visibility=False,
    ),
    Problem(
        name="silhouette_translate",
        scene="bundled/silhouette/scene.xml",
        spec="object.translate.x",
        covers="primary silhouette, translation",
        h=0.002,
        target=0.15,
        visibility=True,
    ),
    Problem(
        name="silhouette_rotate",
        scene="bundled/silhouette/scene.xml",
        spec="object.rotate.y",
        covers="primary silhouette, rotation (degrees)",
        h=0.2,
        target=12.0,
        visibility=True,
    ),
    Problem(
        name="shadow",
        scene="bundled/shadow/scene.xml",
        spec="occluder.translate.x",
        covers="shadow (secondary visibility) + primary",
        h=0.002,
        target=0.15,
        visibility=True,
    ),
    Problem(
        name="reflection",
        scene="scenes/reflection.xml",
        spec="occluder.translate.x",
        covers="visibility seen only in a glossy reflection",
        h=0.002,
        target=0.15,
        visibility=True,
    ),
    Problem(
        name="cbox_geometry",
        scene="bundled/cbox/scene.xml",
        spec="tall_box.rotate.y",
        covers="interreflection + visibility in the Cornell box",
        h=0.4,
        target=10.0,
        visibility=True,
        opts={"max_depth": 3},
        ref_seeds=128,
    ),
    Problem(
        name="camera_translate",
        scene="bundled/shadow/scene.xml",
        spec="sensor.translate.x",
        covers="camera translation (Mitsuba's estimators: as a motion of the whole scene)",
        h=0.005,
        target=0.1,
        visibility=True,
    ),
    Problem(
        name="point_shadow",
        scene="scenes/point_shadow.xml",
        spec="card.translate.x",
        covers="shadow of a point light (delta light), seen directly",
        h=0.001,  # the shadow moves 1.7 h: at h = 0.005 FD leaks into a corner pixel
        target=0.15,
        visibility=True,
    ),
    Problem(
        name="cube_sun",
        scene="scenes/cube_sun.xml",
        spec="cube.rotate.y",
        covers="split-vertex mesh (built-in cube) under a sun, Gaussian film filter",
        h=0.2,
        target=10.0,
        visibility=True,
    ),
    Problem(
        name="uv_seam",
        scene="scenes/uv_seam.xml",
        spec="obj.rotate.y",
        covers="UV seam (split vertices, clamped texture) on a rotating sphere",
        h=1.0,
        target=10.0,
        visibility=True,
    ),
    Problem(
        name="bunny_displace",
        scene="bundled/bunny/scene.xml",
        spec="mesh.displace",
        covers="deformation of 2562 vertices along their normals",
        h=0.005,
        target=0.05,
        visibility=True,
    ),
]


def problem(name: str) -> Problem:
    """The problem called ``name``."""
    for p in PROBLEMS:
        if p.name == name:
            return p
    raise KeyError(f"unknown problem {name!r}; known: {', '.join(p.name for p in PROBLEMS)}")


def load(p: Problem, res: int) -> mi.Scene:
    """The problem's scene at ``res`` × ``res`` pixels."""
    return pd.load_scene(p.scene_path, res=res)


def resolve(
    p: Problem, scene: mi.Scene, fd: bool = False, estimator: str | None = None
) -> ParamSpec:
    """The ParamSpec of ``p`` for ``estimator``; ``fd=True`` gives the one the FD reference
    uses. The camera is pathdiff's camera ParamSpec (attached pose) for pathdiff's
    estimators and FD; Mitsuba's own cannot differentiate a sensor, nor can ``reparam`` and
    ``psdr`` yet (they warn), so they get the equivalent motion of the whole scene."""
    head, _, tail = p.spec.partition(".")
    if tail == "displace":
        return displace_spec(scene, head)
    if head == "sensor" and tail.startswith("translate."):
        axis = "xyz".index(tail[-1])
        if fd:
            return camera_spec(scene, axis)
        if estimator is not None and (estimator.startswith("mitsuba:") or estimator in SHIFT):
            return scene_shift_spec(scene, axis, p.spec)
    return pd.resolve_param(scene, p.spec)


def displace_spec(scene: mi.Scene, shape_id: str) -> ParamSpec:
    """θ moves every vertex of mesh ``shape_id`` along its vertex normal (at θ = 0)."""
    params = scene_params(scene)
    kp, kn = f"{shape_id}.vertex_positions", f"{shape_id}.vertex_normals"
    P = dr.unravel(mi.Point3f, mi.Float(dr.detach(params[kp])))
    N = dr.unravel(mi.Vector3f, mi.Float(dr.detach(params[kn])))
    base = {kp: mi.Float(dr.detach(params[kp])), kn: mi.Float(dr.detach(params[kn]))}

    def change(θ: mi.Float) -> dict:
        return {kp: dr.ravel(P + N * θ)}

    return ParamSpec(f"{shape_id}.displace", "geometry", [kp], params, base, change)


def scene_shift_spec(scene: mi.Scene, axis: int, name: str) -> ParamSpec:
    """θ moves every mesh by −θ along ``axis``: a camera translation by +θ."""
    if any(e.is_environment() for e in scene.emitters()):
        raise ValueError(f"{name}: a scene motion equals a camera motion only without envmaps")
    params = scene_params(scene)
    keys = [f"{s.id()}.vertex_positions" for s in scene.shapes() if s.is_mesh()]
    base = {k: mi.Float(dr.detach(params[k])) for k in keys}
    unit = np.eye(3)[axis]
    offset = {k: np.tile(-unit, dr.width(v) // 3) for k, v in base.items()}

    def change(θ: mi.Float) -> dict:
        # one copy of θ per key: Dr.Jit 1.5 can resize a literal θ in place when it is
        # multiplied with a wider array, which breaks the next key of another size
        return {k: base[k] + mi.Float(offset[k]) * mi.Float(θ) for k in keys}

    return ParamSpec(name, "geometry", keys, params, base, change)


def camera_spec(scene: mi.Scene, axis: int) -> ParamSpec:
    """θ translates the first sensor along ``axis`` (for finite differences only)."""
    params = scene_params(scene)
    key = "sensor.to_world"
    base = mi.Transform4f(params[key])
    unit = [float(i == axis) for i in range(3)]

    def change(θ: mi.Float) -> dict:
        return {key: mi.Transform4f().translate(mi.Vector3f(*unit) * θ) @ base}

    return ParamSpec(
        f"sensor.translate.{'xyz'[axis]}", "camera", [key], params, {key: base}, change
    )


def shifted(spec: ParamSpec, theta: float) -> ParamSpec:
    """``spec`` re-centred at ``theta``: its θ = 0 is the original's θ = ``theta``."""
    return ParamSpec(
        spec.name, spec.kind, spec.keys, spec.params, spec.base, lambda θ: spec.change(θ + theta)
    )


def estimators() -> list[str]:
    """Every registered pathdiff derivative estimator, then Mitsuba's reference columns."""
    from pathdiff.integrators import PLUGINS

    ours = [n.removeprefix("pathdiff_") for n in PLUGINS if n != "pathdiff_path"]
    return ours + list(MITSUBA)


def caveat(p: Problem, estimator: str) -> str:
    """Why a result is expected to be off (empty if it is not)."""
    if p.visibility and estimator in INTERIOR_ONLY:
        return "interior only (expected biased)"
    return ""
