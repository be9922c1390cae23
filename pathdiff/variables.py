"""Optimization variables: which scene parameters move, their latent values, bounds and steps.

A variable is named as on the command line (``--param``):

* ``KEY`` — a whole ``mi.traverse`` key: a colour, a float, a texture, vertex positions;
* a glob over keys, e.g. ``*.reflectance.value`` (one variable per matching key);
* a scalar ParamSpec: ``KEY[i]``, ``SHAPE.translate.x``, ``SHAPE.rotate.y``, ``SHAPE.scale``;

optionally followed by options ``:lr=0.05``, ``:min=0``, ``:max=1``
(``red.reflectance.value:lr=0.05``). Each variable keeps its latent value in its own
``mi.ad.Adam``: the parameter itself (flattened) for keys, θ for ParamSpecs, and the
differential coordinates ``u = (I + λL) v`` of ``mi.ad.LargeSteps`` (Nicolet et al. 2021,
with UniformAdam) for vertex positions when ``λ > 0``. After each step the latent value is
clamped to the bounds of its kind: reflectances and other albedos in [0, 1], roughness in
[0.001, 1], emitted radiance ≥ 0.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from .inputs import InputError, MissingFileError
from .params import scene_params
from .scene import ParamSpec, SceneError, bind_specs, list_params, resolve_param

#: (pattern on the key, lower bound, upper bound), first match wins
BOUNDS = [
    (r"(reflectance|albedo|base_color|transmittance|opacity|weight)", 0.0, 1.0),
    (r"(roughness|alpha(_u|_v)?)\b", 1e-3, 1.0),
    (r"(emitter|radiance|intensity|irradiance)", 0.0, math.inf),
]


@dataclass
class ParamArg:
    """A parsed ``--param`` argument: name (key, glob or ParamSpec) and per-variable options."""

    name: str
    lr: float | None = None
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def parse(cls, text: str) -> ParamArg:
        name, *opts = text.split(":")
        arg = cls(name.strip())
        fields = {"lr": "lr", "min": "lo", "max": "hi"}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or key.strip() not in fields:
                raise InputError(f"bad option {opt!r} in --param {text!r}: use lr=, min=, max=")
            try:
                setattr(arg, fields[key.strip()], float(value))
            except ValueError:
                raise InputError(f"bad number {value!r} in --param {text!r}") from None
        if not arg.name:
            raise InputError(f"empty parameter name in --param {text!r}")
        return arg


def default_bounds(key: str) -> tuple[float, float]:
    """Bounds suited to a parameter key (unbounded if its kind is unknown)."""
    leaf = key.split(".", 1)[-1]
    for pattern, lo, hi in BOUNDS:
        if re.search(pattern, leaf):
            return lo, hi
    return -math.inf, math.inf


def _flatten(value) -> mi.Float:
    if isinstance(value, mi.TensorXf):
        return mi.Float(value.array)
    return dr.ravel(value) if dr.depth_v(value) > 1 else mi.Float(value)


def _unflatten(like, flat: mi.Float):
    if isinstance(like, mi.TensorXf):
        return mi.TensorXf(flat, like.shape)
    return dr.unravel(type(like), flat) if dr.depth_v(like) > 1 else flat


class Variable:
    """One optimized quantity: a latent value in its own Adam optimizer, mapped to scene values.

    ``scene_values()`` gives ``{key: value}`` attached to the latent value; ``value()`` the
    current parameter (flattened, numpy) for trajectories and comparison with the truth.
    """

    kind = "key"

    def __init__(self, name: str, keys: list[str], lr: float, lo: float, hi: float, **adam):
        self.name, self.keys, self.lr, self.lo, self.hi = name, keys, lr, lo, hi
        self.opt = mi.ad.Adam(lr=lr, **adam)

    @property
    def latent(self) -> mi.Float:
        return self.opt["x"]

    def scene_values(self) -> dict:
        raise NotImplementedError

    def value(self) -> np.ndarray:
        return np.array(dr.detach(self.latent), dtype=np.float64).ravel()

    def set_value(self, value: np.ndarray) -> None:
        """Start from ``value`` (broadcast to the parameter's size)."""
        self.opt["x"] = mi.Float(np.broadcast_to(value, self.value().shape).astype(np.float32))
        self.clamp()

    def grad_finite(self) -> bool:
        return bool(np.isfinite(np.array(dr.grad(self.latent))).all())

    def step(self) -> None:
        self.opt.step()
        self.clamp()

    def discard_grad(self) -> None:
        self.opt["x"] = self.opt["x"]  # a fresh detached copy; Adam's state is kept

    def clamp(self) -> None:
        if self.lo > -math.inf or self.hi < math.inf:
            self.opt["x"] = dr.clip(self.latent, self.lo, self.hi)

    def state(self) -> dict[str, np.ndarray]:
        """Latent value and Adam moments, for checkpoints."""
        value, _, _, (t, m, v, _) = self.opt.state["x"]
        return {"x": np.array(value), "m": np.array(m), "v": np.array(v), "t": np.array(t)}

    def snapshot(self) -> dict:
        """Adam's state (references, no copy: a step replaces the arrays, never mutates)."""
        return dict(self.opt.state)

    def rollback(self, snapshot: dict) -> None:
        """Return to a :meth:`snapshot` (undo a partial step)."""
        self.opt.state.clear()
        self.opt.state.update(snapshot)
        self.discard_grad()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.opt["x"] = mi.Float(state["x"])
        value, promoted, lr, _ = self.opt.state["x"]
        moments = (mi.UInt32(state["t"]), mi.Float(state["m"]), mi.Float(state["v"]), None)
        self.opt.state["x"] = (value, promoted, lr, moments)


class KeyVariable(Variable):
    """A whole ``mi.traverse`` parameter, optimized directly (flattened)."""

    def __init__(self, params: mi.SceneParameters, key: str, lr: float, lo: float, hi: float):
        super().__init__(key, [key], lr, lo, hi)
        self.like = type(params[key])(dr.detach(params[key]))
        self.opt["x"] = _flatten(self.like)

    def scene_values(self) -> dict:
        return {self.name: _unflatten(self.like, self.latent)}


class MeshVariable(Variable):
    """Vertex positions in the differential coordinates of ``mi.ad.LargeSteps``."""

    kind = "large_steps"

    def __init__(self, params: mi.SceneParameters, key: str, lr: float, lambda_: float):
        super().__init__(key, [key], lr, -math.inf, math.inf, uniform=True)
        self.lambda_, self.params = lambda_, params
        self._build(dr.detach(params[key]))
        self.opt["x"] = self.ls.to_differential(dr.detach(params[key]))

    def _build(self, base: mi.Float) -> None:
        """Large steps on the mesh's current faces. ``mi.ad.LargeSteps`` numbers the distinct
        positions of ``base`` in sorted order, so the differential coordinates depend on it:
        ``base`` is kept for checkpoints."""
        faces = self.params[self.name.removesuffix("vertex_positions") + "faces"]
        self.base = mi.Float(base)
        self.ls = mi.ad.LargeSteps(self.base, faces, self.lambda_)

    def scene_values(self) -> dict:
        return {self.name: self.ls.from_differential(self.latent)}

    def value(self) -> np.ndarray:
        with dr.suspend_grad():
            return np.array(self.ls.from_differential(self.latent), dtype=np.float64)

    def set_value(self, value: np.ndarray) -> None:
        value = np.broadcast_to(value, self.value().shape).astype(np.float32)
        self.opt["x"] = self.ls.to_differential(mi.Float(value))

    def upsample(self, params: mi.SceneParameters) -> None:
        """Subdivide the mesh at its current positions (each triangle into 4, the surface
        unchanged: :func:`pathdiff.meshes.subdivide`), write it into the scene (positions,
        faces, texture coordinates; vertex normals recomputed by Mitsuba) and restart large
        steps and Adam on it (the moments of the coarse mesh do not carry over)."""
        from .meshes import subdivide

        prefix = self.name.removesuffix("vertex_positions")
        faces = np.array(params[prefix + "faces"], np.int64)
        uv_key = prefix + "vertex_texcoords"
        uv = np.array(params[uv_key]) if uv_key in params and dr.width(params[uv_key]) else None
        v, f, uv = subdivide(self.value(), faces, uv)
        with dr.suspend_grad():
            params[prefix + "faces"] = mi.UInt32(f.ravel().astype(np.uint32))
            params[self.name] = mi.Float(v.ravel().astype(np.float32))
            if uv is not None:
                params[uv_key] = mi.Float(uv.ravel().astype(np.float32))
            normals = prefix + "vertex_normals"
            if normals in params and dr.width(params[normals]):
                params[normals] = dr.zeros(mi.Float, v.size)
            params.update()
        beta_1 = self.opt.beta_1
        self.opt = mi.ad.Adam(lr=self.lr, uniform=True, beta_1=beta_1)
        self._build(dr.detach(params[self.name]))
        self.opt["x"] = self.ls.to_differential(dr.detach(params[self.name]))

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "base": np.array(self.base)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if "base" in state:
            self._build(mi.Float(state["base"]))
        super().load_state(state)


class SpecVariable(Variable):
    """A scalar θ bound through a ParamSpec (θ = 0 is the scene as loaded)."""

    kind = "spec"

    def __init__(self, scene: mi.Scene, spec: str | ParamSpec, lr: float, lo: float, hi: float):
        self.spec = resolve_param(scene, spec) if isinstance(spec, str) else spec
        super().__init__(self.spec.name, list(self.spec.keys), lr, lo, hi)
        self.opt["x"] = mi.Float(0.0)

    def scene_values(self) -> dict:
        return self.spec.change(self.latent)


def _spec_bounds(spec, lo: float, hi: float) -> tuple[float, float]:
    """Bounds on θ keeping ``base + θ`` of the components a ``KEY[i]`` spec moves in [lo, hi]."""
    m = re.fullmatch(r"(.+)\[(\d+)\]", spec.name)
    if m is None or (lo == -math.inf and hi == math.inf):
        return lo, hi
    base = spec.base[m.group(1)]
    i = int(m.group(2))
    flat = np.array(base, dtype=np.float64)
    moved = flat.reshape(-1, len(base))[:, i] if dr.depth_v(base) > 1 else flat.ravel()[i]
    return lo - float(np.min(moved)), hi - float(np.max(moved))


def select_variables(
    scene: mi.Scene, args: Sequence[str | ParamArg | ParamSpec], lr: float, lambda_: float = 20.0
) -> list[Variable]:
    """The variables named by ``--param`` arguments (globs expanded) or given as resolved
    :class:`ParamSpec` objects, with their bounds."""
    params = scene_params(scene)
    keys = [k for k, _, _ in list_params(scene)]
    out: dict[str, Variable] = {}
    for arg in args:
        if isinstance(arg, ParamSpec):
            if arg.name in out:
                raise InputError(f"parameter {arg.name!r} is given twice")
            out[arg.name] = _spec_variable(scene, arg, ParamArg(arg.name), lr)
            continue
        arg = arg if isinstance(arg, ParamArg) else ParamArg.parse(arg)
        names = [arg.name]
        if any(c in arg.name for c in "*?"):
            names = fnmatch.filter(keys, arg.name)
            if not names:
                raise SceneError(f"no differentiable parameter matches {arg.name!r}")
        for name in names:
            if name in out:
                raise InputError(f"parameter {name!r} is given twice")
            out[name] = _variable(scene, params, keys, name, arg, lr, lambda_)
    _check_overlaps(list(out.values()))
    return list(out.values())


def _variable(scene, params, keys, name, arg, lr, lambda_) -> Variable:
    lr = arg.lr if arg.lr is not None else lr
    if name in params and name not in keys:
        raise SceneError(f"parameter {name!r} is not differentiable")
    key = name if name in params else re.sub(r"\[\d+\]$", "", name)
    lo, hi = default_bounds(key) if key in params else (-math.inf, math.inf)
    lo = arg.lo if arg.lo is not None else lo
    hi = arg.hi if arg.hi is not None else hi
    if name.endswith("vertex_positions") and name in params and lambda_ > 0:
        return MeshVariable(params, name, lr, lambda_)
    if name in params:
        return KeyVariable(params, name, lr, lo, hi)
    return _spec_variable(scene, name, arg, lr, lo, hi)


def _spec_variable(scene, spec, arg, lr, lo=-math.inf, hi=math.inf) -> SpecVariable:
    """A ParamSpec variable (from its string or object), bounded like its key."""
    if isinstance(spec, ParamSpec):
        lr = arg.lr if arg.lr is not None else lr
        key = re.sub(r"\[\d+\]$", "", spec.name)
        lo, hi = default_bounds(key) if key in spec.keys else (-math.inf, math.inf)
    var = SpecVariable(scene, spec, lr, lo, hi)
    var.lo, var.hi = _spec_bounds(var.spec, lo, hi)
    return var


def _check_overlaps(variables: list[Variable]) -> None:
    """ParamSpecs may share keys (they compose); whole keys may not."""
    owner: dict[str, Variable] = {}
    for var in variables:
        for key in var.keys:
            other = owner.setdefault(key, var)
            if other is not var and not other.kind == var.kind == "spec":
                raise InputError(f"{other.name!r} and {var.name!r} both change {key!r}")


def bind(params: mi.SceneParameters, variables: Sequence[Variable]) -> None:
    """Write every variable's values into the scene (attached to the latent values).

    Several ParamSpecs on one mesh (``occluder.translate.x`` and ``.rotate.y``) compose, in
    the order given (:func:`pathdiff.scene.bind_specs`).
    """
    specs = [(v.spec, v.latent) for v in variables if v.kind == "spec"]
    for var in variables:
        if var.kind != "spec":
            for key, value in var.scene_values().items():
                params[key] = value
    bind_specs(params, specs)


def param_error(name: str, value: np.ndarray, truth: np.ndarray) -> float:
    """Distance of a value to the truth: RMSE, except for vertex positions, where vertices may
    slide along the surface: the RMS of the symmetric nearest-vertex (Chamfer) distances."""
    if not name.endswith("vertex_positions"):
        return float(np.sqrt(np.mean((value - truth) ** 2)))
    from .meshes import chamfer

    return chamfer(value, truth)


def read_value(value, base_dir: str = ".") -> np.ndarray:
    """A flat parameter value from a number, a list, or a file relative to ``base_dir``: PLY
    (vertex positions) or an image (texture texels, linear)."""
    if isinstance(value, (int, float, list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float64).ravel()
    path = os.path.join(base_dir, os.fspath(value))
    if not os.path.isfile(path):
        raise MissingFileError(f"value file not found: {path}")
    if path.lower().endswith(".ply"):
        mesh = mi.load_dict({"type": "ply", "filename": path})
        return np.array(mi.traverse(mesh)["vertex_positions"], dtype=np.float64)
    from .images import read_image

    return read_image(path).astype(np.float64).ravel()


def values_for(
    variables: Sequence[Variable], values: dict, base_dir: str = ".", what: str = "value"
) -> dict[str, np.ndarray]:
    """``{variable name: flat array}`` from ``{name: number | list | file}``, checked."""
    by_name = {v.name: v for v in variables}
    out = {}
    for name, value in values.items():
        if name not in by_name:
            raise InputError(f"{what} given for {name!r}, which is not optimized")
        flat = read_value(value, base_dir)
        size = by_name[name].value().size
        # a true mesh is compared by Chamfer distance: any number of vertices
        mesh_truth = what == "truth" and name.endswith("vertex_positions") and flat.size % 3 == 0
        if flat.size not in (1, size) and not mesh_truth:
            raise InputError(f"{what} for {name!r} has {flat.size} values, expected {size}")
        if not np.isfinite(flat).all():
            raise InputError(f"{what} for {name!r} contains NaN or Inf")
        out[name] = flat.copy() if mesh_truth else np.broadcast_to(flat, (size,)).copy()
    return out
