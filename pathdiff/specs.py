"""ParamSpecs: a scalar θ bound into scene parameters (θ = 0 is the scene as loaded).

* ``KEY``: a ``mi.traverse`` key; every component moves by θ (all channels of a colour,
  every texel of a texture);
* ``KEY[i]``: component ``i`` of the flattened parameter;
* ``SHAPE.translate.x|y|z``, ``SHAPE.rotate.x|y|z`` (degrees, about the vertex centroid,
  world axes), ``SHAPE.scale`` (factor ``1 + θ`` about the centroid): a rigid motion of the
  vertices (and normals) of the triangle mesh with XML id ``SHAPE``; for an analytic shape
  (``disk``, ``rectangle``, ``sphere``, ``cylinder``) the same motions of its ``to_world``,
  about the shape's own centre;
* ``SENSOR.translate.x|y|z`` (world axes), ``SENSOR.rotate.x|y|z`` (degrees, about the
  camera's own position, world axes), ``SENSOR.fov`` (the horizontal field of view, degrees)
  for the perspective sensor with XML id ``SENSOR``. Mitsuba marks a sensor's pose and fov
  non-differentiable, so the sensor keeps detached values and the attached ones are
  registered with :func:`pathdiff.integrators.camera.attach_camera` for the estimators.

Several specs on one mesh or sensor compose (:func:`bind_specs`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import drjit as dr
import mitsuba as mi

from .params import scene_params
from .scene import SceneError, _differentiable, _size


def rigid_specs(scene: mi.Scene) -> list[str]:
    """The rigid-motion ParamSpecs available for the scene's triangle meshes."""
    out = []
    params = scene_params(scene)
    for shape in scene.shapes():
        if shape.id() and (shape.is_mesh() or f"{shape.id()}.to_world" in params):
            out += [f"{shape.id()}.translate.{a}" for a in "xyz"]
            out += [f"{shape.id()}.rotate.{a}" for a in "xyz"]
            out.append(f"{shape.id()}.scale")
    for sensor in scene.sensors():
        if sensor.id() and sensor.class_name() == "PerspectiveCamera":
            out += [f"{sensor.id()}.{m}.{a}" for m in ("translate", "rotate") for a in "xyz"]
            out.append(f"{sensor.id()}.fov")
    return out


@dataclass
class ParamSpec:
    """A scalar θ bound into scene parameters: ``bind(params, θ)`` writes base + change(θ)."""

    name: str
    kind: str
    keys: list[str]
    params: mi.SceneParameters
    base: dict = field(repr=False)
    change: object = field(repr=False)  # (θ) -> {key: value}
    #: (current values, θ) -> {key: value}: this spec's change applied on top of other specs'
    #: (a rigid motion moves the current vertices); default: add ``change(θ) - base``
    apply: object = field(default=None, repr=False)
    #: (values) -> replacements: last step before writing (a camera registers its attached
    #: pose and writes detached values into the sensor); ``None``: reset
    finish: object = field(default=None, repr=False)

    def bind(self, params: mi.SceneParameters | None = None, theta: mi.Float = 0.0) -> None:
        """Write the parameters at θ (attached to θ if it carries gradients) and update.
        ``params`` defaults to the spec's own."""
        bind_specs(self.params if params is None else params, [(self, theta)])

    def on(self, current: dict, theta: mi.Float) -> dict:
        """The values of :attr:`keys` after this spec's change at θ, starting from
        ``current`` (for keys missing there: the base values)."""
        cur = {k: current.get(k, self.base[k]) for k in self.keys}
        if self.apply is not None:
            return self.apply(cur, mi.Float(theta))
        change = self.change(mi.Float(theta))
        if not any(k in current for k in self.keys):  # alone on its keys: any value type
            return change
        return {k: cur[k] + (v - self.base[k]) for k, v in change.items()}

    def reset(self, params: mi.SceneParameters | None = None) -> None:
        """Restore the values captured when the spec was resolved (through ``params``,
        default the spec's own: the scene's one traversal)."""
        params = self.params if params is None else params
        if self.finish is not None:
            self.finish(None)
        for key, value in self.base.items():
            params[key] = type(value)(value)
        params.update()


def bind_specs(params: mi.SceneParameters, specs: list) -> None:
    """Write several ``(spec, θ)`` at once, composed in order: two specs on one mesh
    (``obj.translate.x`` and ``obj.rotate.y``) move it by both, not by the last one."""
    values: dict = {}
    for spec, theta in specs:
        values.update(spec.on(values, theta))
    # each finish sees the composed (attached) values and returns what to write instead
    finishers = {id(s): s for s, _ in specs if s.finish is not None}.values()
    values.update({k: v for spec in finishers for k, v in spec.finish(values).items()})
    for key, value in values.items():
        params[key] = value
    params.update()


def _kind(params: mi.SceneParameters, key: str) -> str:
    """'emitter', 'texture', 'material', 'geometry' or 'other', from the key's owners."""
    node, owners = params.properties[key][2], []
    while node is not None:
        owners.append(node)
        node = params.hierarchy[node][0]
    if any(isinstance(o, mi.Emitter) for o in owners):
        return "emitter"
    if isinstance(params[key], mi.TensorXf):
        return "texture"
    if any(isinstance(o, mi.BSDF) for o in owners):
        return "material"
    if isinstance(owners[0], mi.Shape):
        return "geometry"
    return "other"


def resolve_param(scene: mi.Scene, spec: str) -> ParamSpec:
    """Resolve a ParamSpec string (see the module docstring) against ``scene``."""
    params = scene_params(scene)
    m = re.fullmatch(r"(.+)\.(translate|rotate)\.([xyz])|(.+)\.(fov)", spec)
    sensors = {x.id(): x for x in scene.sensors() if x.id()}
    if m and spec not in params and (m.group(1) or m.group(4)) in sensors:
        sensor = sensors[m.group(1) or m.group(4)]
        return _camera(params, spec, sensor, m.group(2) or m.group(5), m.group(3))
    m = re.fullmatch(r"(.+)\.(translate|rotate)\.([xyz])|(.+)\.(scale)", spec)
    if m and spec not in params:
        shape_id = m.group(1) or m.group(4)
        motion = m.group(2) or m.group(5)
        return _rigid(scene, params, spec, shape_id, motion, m.group(3))
    key, index = spec, None
    m = re.fullmatch(r"(.+)\[(\d+)\]", spec)
    if m:
        key, index = m.group(1), int(m.group(2))
    if key not in params:
        candidates = list(params.keys()) + rigid_specs(scene)
        near = difflib.get_close_matches(spec, candidates, n=5, cutoff=0.5)
        if not near:
            head = spec.split(".")[0]
            near = [c for c in candidates if c.split(".")[0] == head][:5]
        hint = f"; did you mean: {', '.join(near)}" if near else ""
        raise SceneError(f"unknown parameter {spec!r}{hint}")
    if not _differentiable(params, key):
        raise SceneError(f"parameter {key!r} is not differentiable")
    value = params[key]
    if not dr.is_array_v(value) or _size(value) == 0:
        hint = "; use SHAPE.translate/rotate/scale" if key.endswith("to_world") else ""
        raise SceneError(
            f"parameter {key!r} ({type(value).__name__}) cannot take a scalar θ: "
            f"ParamSpecs need a Float, colour, texture or vertex parameter{hint}"
        )
    base = type(value)(dr.detach(value))
    size = _size(value)
    if index is not None and not 0 <= index < size:
        raise SceneError(f"index {index} out of range for {key!r} ({size} components)")

    def change(θ: mi.Float) -> dict:
        if index is None:
            return {key: base + θ}
        flat = dr.select(dr.arange(mi.UInt32, size) == index, θ, 0)
        if isinstance(base, mi.TensorXf):
            return {key: base + mi.TensorXf(flat, base.shape)}
        if dr.depth_v(base) > 1:  # e.g. Color3f: a unit vector along channel `index`
            return {key: base + dr.unravel(type(base), flat)}
        return {key: base + flat}

    return ParamSpec(spec, _kind(params, key), [key], params, {key: base}, change)


def _rigid(scene, params, spec, shape_id, motion, axis) -> ParamSpec:
    shapes = {s.id(): s for s in scene.shapes()}
    if shape_id not in shapes:
        near = difflib.get_close_matches(shape_id, list(shapes), n=5, cutoff=0.4)
        hint = f"; shapes: {', '.join(near or sorted(k for k in shapes if k))}"
        raise SceneError(f"unknown shape {shape_id!r} in {spec!r}{hint}")
    shape = shapes[shape_id]
    kp, kn = f"{shape_id}.vertex_positions", f"{shape_id}.vertex_normals"
    if kp not in params:  # analytic shapes (Mitsuba's rectangle too: a mesh placed by to_world)
        if f"{shape_id}.to_world" not in params:
            raise SceneError(
                f"{shape_id} is a {shape.class_name().lower()} without a to_world: rigid "
                "ParamSpecs need a mesh or a shape placed by to_world"
            )
        return _rigid_transform(params, spec, f"{shape_id}.to_world", motion, axis)
    P = dr.unravel(mi.Point3f, dr.detach(params[kp]))
    # translation and uniform scaling leave normals unchanged
    has_n = motion == "rotate" and kn in params and dr.width(params[kn]) > 0
    N = dr.unravel(mi.Vector3f, dr.detach(params[kn])) if has_n else None
    ax = mi.Vector3f([float(a == axis) for a in "xyz"]) if axis else None

    def apply(cur: dict, θ: mi.Float) -> dict:
        """Move the current vertices; rotation and scaling about their own centroid, so that
        composed motions commute (rotate in place, translate)."""
        Q = dr.unravel(mi.Point3f, cur[kp])
        c = mi.Point3f(dr.mean(Q.x), dr.mean(Q.y), dr.mean(Q.z))
        if motion == "translate":
            return {kp: dr.ravel(Q + ax * θ)}
        if motion == "scale":
            return {kp: dr.ravel(c + (Q - c) * (1 + θ))}
        rot = _rotation(ax, θ)
        out = {kp: dr.ravel(c + rot(Q - c))}
        if has_n:
            out[kn] = dr.ravel(rot(dr.unravel(mi.Vector3f, cur[kn])))
        return out

    base = {kp: mi.Float(dr.detach(params[kp]))}
    if has_n:
        base[kn] = mi.Float(dr.detach(params[kn]))
    del P, N

    def change(θ: mi.Float) -> dict:
        return apply(base, θ)

    return ParamSpec(spec, "geometry", list(base), params, base, change, apply)


def _rigid_transform(params, spec: str, key: str, motion: str, axis: str | None) -> ParamSpec:
    """A rigid motion of an analytic shape (``disk``, ``rectangle``, ``sphere``...) through
    its ``to_world``: world-axis translation, rotation (degrees) and scaling about the
    shape's own origin (its centre), composed on top of the current transform."""
    ax = mi.Vector3f([float(a == axis) for a in "xyz"]) if axis else None

    def apply(cur: dict, θ: mi.Float) -> dict:
        M = mi.Transform4f(cur[key])
        if motion == "translate":
            return {key: mi.Transform4f().translate(ax * θ) @ M}
        c = M @ mi.Point3f(0)
        if motion == "scale":
            local = mi.Transform4f().scale(mi.Vector3f(1 + θ))
        else:
            local = mi.Transform4f().rotate(ax, θ)
        return {key: mi.Transform4f().translate(c) @ local @ mi.Transform4f().translate(-c) @ M}

    base = {key: mi.Transform4f(dr.detach(params[key]))}

    def change(θ: mi.Float) -> dict:
        return apply(base, θ)

    return ParamSpec(spec, "geometry", [key], params, base, change, apply)


def _camera(params, spec: str, sensor: mi.Sensor, motion: str, axis: str | None) -> ParamSpec:
    """A sensor's pose or fov as θ (see the module docstring)."""
    from .integrators.camera import attach_camera, check_sensor, detach_camera

    try:
        check_sensor(sensor, spec)
    except ValueError as e:
        msg = str(e).replace("the primary boundary term supports", "ParamSpecs support")
        raise SceneError(msg) from None
    kt, kf = f"{sensor.id()}.to_world", f"{sensor.id()}.x_fov"
    base = {kt: mi.Transform4f(params[kt]), kf: mi.Float(params[kf])}
    ax = mi.Vector3f([float(a == axis) for a in "xyz"]) if axis else None

    def apply(cur: dict, θ: mi.Float) -> dict:
        M, fov = mi.Transform4f(cur[kt]), mi.Float(cur[kf])
        if motion == "translate":
            return {kt: mi.Transform4f().translate(ax * θ) @ M, kf: fov}
        if motion == "rotate":  # about the camera's position, world axis
            c = M @ mi.Point3f(0)
            R = mi.Transform4f().translate(c) @ mi.Transform4f().rotate(ax, θ)
            return {kt: R @ mi.Transform4f().translate(-c) @ M, kf: fov}
        return {kt: M, kf: fov + θ}

    def finish(values: dict | None) -> dict | None:
        """Register the attached pose/fov; the sensor itself gets them detached."""
        if values is None:  # reset
            detach_camera(sensor)
            return None
        if dr.grad_enabled(values[kt]) or dr.grad_enabled(values[kf]):
            attach_camera(sensor, values[kt], values[kf])
        else:  # a plain value (finite differences, a primal render): nothing to follow
            detach_camera(sensor)
        return {kt: dr.detach(values[kt]), kf: dr.detach(values[kf])}

    def change(θ: mi.Float) -> dict:
        return apply(base, θ)

    return ParamSpec(spec, "camera", [kt, kf], params, base, change, apply, finish)


def _rotation(axis: mi.Vector3f, degrees: mi.Float):
    """Rodrigues rotation ``v -> v cosφ + (a×v) sinφ + a (a·v)(1 − cosφ)`` (AD-friendly)."""
    φ = dr.deg2rad(degrees)
    s, c = dr.sin(φ), dr.cos(φ)

    def rot(v: mi.Vector3f) -> mi.Vector3f:
        return v * c + dr.cross(axis, v) * s + axis * dr.dot(axis, v) * (1 - c)

    return rot
