"""Rendering and differentiation entry points: ``render``, ``derivative``, ``gradient``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import drjit as dr
import mitsuba as mi
import numpy as np

from .integrators import PLUGINS, plugin_name
from .integrators.base import UNBOUNDED_DEPTH
from .losses import get_loss
from .params import scene_params
from .scene import ParamSpec, bind_specs, resolve_param

#: options every pathdiff integrator understands, inherited from the scene's integrator
COMMON_OPTIONS = ("max_depth", "rr_depth", "hide_emitters")
#: options only pathdiff's integrators have (inherited by pathdiff integrators only)
PATHDIFF_OPTIONS = ("bend_normals",)


def scene_integrator_options(scene: mi.Scene) -> dict:
    """``max_depth``/``rr_depth``/``hide_emitters`` of the scene's own integrator, if known."""
    integ = scene.integrator()
    if integ is None:
        return {}
    if hasattr(integ, "options"):  # pathdiff's integrators keep their options
        return dict(integ.options)
    opts = _native_depths(integ)
    hide = getattr(integ, "hide_emitters", None)  # a property (a method in older Mitsubas)
    if hide is not None:
        opts["hide_emitters"] = bool(hide() if callable(hide) else hide)
    return opts


def _native_depths(integ: mi.Integrator) -> dict:
    """``max_depth`` and ``rr_depth`` of one of Mitsuba's own integrators. Mitsuba 3.9 exposes
    neither as a property nor through ``mi.traverse`` (only ``hide_emitters``); its
    ``to_string()`` (``PathIntegrator[max_depth = 5, rr_depth = 3]``) is the one place they
    appear, so they are read from there, in this one function (tests/test_scene.py checks
    it against ``path``, ``volpath`` and ``prb``)."""
    opts = {}
    for key in ("max_depth", "rr_depth"):
        m = re.search(rf"\b{key}\s*=\s*(-?\d+)", str(integ))
        if m:
            opts[key] = int(m.group(1))
    if opts.get("max_depth") == UNBOUNDED_DEPTH:
        opts["max_depth"] = -1
    return opts


def make_integrator(
    scene: mi.Scene, integrator: str | mi.Integrator | None = None, **opts
) -> mi.Integrator:
    """The integrator to use: an instance, a name (``prb``, ``pathdiff_prb``, ``path``...) or
    ``None`` for the scene's own. Named integrators inherit ``max_depth``, ``rr_depth`` and
    ``hide_emitters`` (pathdiff's also ``bend_normals``) from the scene's integrator;
    ``opts`` override them.

    ``path`` means pathdiff's primal tracer; Mitsuba's own is ``mitsuba:path``.
    """
    if isinstance(integrator, mi.Integrator):
        if opts:
            raise ValueError("integrator options need an integrator name, not an instance")
        return integrator
    if integrator is None:
        if not opts:
            return scene.integrator()
        integrator = type(scene.integrator()).__name__
        names = {cls.__name__: name for name, cls in PLUGINS.items()}
        if integrator not in names:
            raise ValueError("pass integrator=NAME to override the scene integrator's options")
        integrator = names[integrator]
    keys = COMMON_OPTIONS
    if integrator.startswith("mitsuba:"):
        name = integrator.removeprefix("mitsuba:")
    else:
        name, keys = plugin_name(integrator), COMMON_OPTIONS + PATHDIFF_OPTIONS
    inherited = {k: v for k, v in scene_integrator_options(scene).items() if k in keys}
    props = {"type": name, **inherited, **opts}
    try:
        return mi.load_dict(props)
    except Exception as e:
        lines = str(e).strip().splitlines()
        # a Python plugin's own error comes last, after Mitsuba's traceback
        why = lines[-1] if "Traceback" in lines[0] else lines[0]
        raise ValueError(f"cannot create integrator {integrator!r}: {why}") from e


def render(
    scene: mi.Scene,
    integrator: str | mi.Integrator | None = None,
    spp: int = 0,
    seed: int = 0,
    sensor: int = 0,
    **opts,
) -> np.ndarray:
    """Render ``scene`` and return the linear image as an ``(H, W, C)`` float32 array."""
    integ = make_integrator(scene, integrator, **opts)
    with dr.suspend_grad():
        img = mi.render(scene, integrator=integ, spp=spp, seed=seed, sensor=sensor)
    return np.array(img, dtype=np.float32)


class _DiffRender(dr.CustomOp):
    """``mi.render`` as an AD operation whose inputs are the scene parameters *and* any
    other attached values the image depends on through the integrators, such as a camera's
    pose (:func:`pathdiff.integrators.camera.attach_camera`): Mitsuba's own operation only
    sees ``SceneParameters``, so a camera θ would get no gradient. The derivative passes are
    the integrator's own ``render_forward``/``render_backward``; they reach every attached
    ancestor through the AD graph."""

    def eval(self, scene, sensor, inputs, params, integrator, seeds, spps, shape=None):
        self.args = scene, params, sensor, integrator, seeds[1], spps[1]
        if shape is not None:  # reverse mode only (backward_render): no primal pass
            return dr.zeros(mi.TensorXf, shape)
        with dr.suspend_grad():
            return integrator.render(scene, sensor, seeds[0], spps[0], develop=True, evaluate=False)

    def forward(self):
        scene, params, sensor, integrator, seed, spp = self.args
        self.set_grad_out(integrator.render_forward(scene, params, sensor, seed, spp))

    def backward(self):
        scene, params, sensor, integrator, seed, spp = self.args
        integrator.render_backward(scene, params, self.grad_out(), sensor, seed, spp)

    def name(self):
        return "pathdiff.render"


def gradient_seed(seed: int | mi.UInt32) -> int | mi.UInt32:
    """The seed of the gradient pass, decorrelated from the primal pass's ``seed``; a
    ``mi.UInt32`` seed (inside ``dr.freeze``) stays on the device."""
    if isinstance(seed, int):
        return int(mi.sample_tea_32(seed, 1)[0])
    return mi.sample_tea_32(mi.UInt32(seed), mi.UInt32(1))[0]


def diff_render(
    scene: mi.Scene,
    params: mi.SceneParameters,
    integrator: mi.Integrator,
    sensor: int = 0,
    spp: int = 0,
    seed: int = 0,
    extra: Sequence = (),
    shape: tuple | None = None,
) -> mi.TensorXf:
    """A differentiable render (like ``mi.render``) that also carries the derivatives of
    the attached values in ``extra`` (e.g. the θ of camera ParamSpecs). With ``shape`` (the
    image's), no primal pass: zeros whose gradient runs the reverse pass
    (:func:`backward_render`)."""
    if isinstance(sensor, int):
        sensor = scene.sensors()[sensor]
    seeds = (seed, gradient_seed(seed))
    inputs = (dict(params), list(extra))
    return dr.custom(
        _DiffRender, scene, sensor, inputs, params, integrator, seeds, (spp, spp), shape
    )


def backward_render(
    scene: mi.Scene,
    params: mi.SceneParameters,
    integrator: mi.Integrator,
    grad_image: mi.TensorXf,
    sensor: int | mi.Sensor = 0,
    spp: int = 0,
    seed: int = 0,
    extra: Sequence = (),
) -> None:
    """Reverse mode alone: propagate an image gradient ``δI`` (``grad_image``, the film's
    shape) through the integrator's ``render_backward`` into the attached parameters and
    the attached values in ``extra``, without a primal render. The gradient pass uses the
    seed :func:`diff_render` derives from ``seed``, so the result equals the gradient of
    ``Σ δI · diff_render(..., seed=seed)``."""
    img = diff_render(scene, params, integrator, sensor, spp, seed, extra, grad_image.shape)
    dr.set_grad(img, grad_image)
    dr.enqueue(dr.ADMode.Backward, img)
    dr.traverse(dr.ADMode.Backward)


def _as_spec(scene: mi.Scene, spec: str | ParamSpec) -> ParamSpec:
    return resolve_param(scene, spec) if isinstance(spec, str) else spec


def derivative(
    scene: mi.Scene,
    spec: str | ParamSpec,
    integrator: str | mi.Integrator | None = "prb",
    spp: int = 0,
    seed: int = 0,
    sensor: int = 0,
    **opts,
) -> np.ndarray:
    """Forward-mode derivative image ``dI/dθ`` for the scalar θ named by a ParamSpec.

    The same ``seed`` drives the primal and the differential pass, so
    ``derivative(..., seed=s)`` is the derivative of the estimator ``render(..., seed=s)``
    (for interior estimators whose samples do not depend on θ).
    """
    spec = _as_spec(scene, spec)
    integ = make_integrator(scene, integrator, **opts)
    try:
        θ = bind_tangent(spec)
        img = integ.render_forward(scene, params=θ, sensor=sensor, seed=seed, spp=spp)
        return np.array(img, dtype=np.float32)
    finally:
        spec.reset()


def bind_tangent(spec: ParamSpec) -> mi.Float:
    """Bind ``spec`` at θ = 0 with the forward tangent dθ = 1 already pushed into the scene
    parameters (the integrator's AD scopes may not reach back across the θ -> parameter
    edges); returns θ. The caller resets the spec."""
    θ = mi.Float(0.0)
    dr.enable_grad(θ)
    spec.bind(theta=θ)
    dr.set_grad(θ, 1.0)
    dr.enqueue(dr.ADMode.Forward, θ)
    dr.traverse(dr.ADMode.Forward, dr.ADFlag.ClearEdges)
    return θ


def _numpy(value) -> np.ndarray:
    """A parameter value as numpy: a single RGB/3-vector as ``(3,)`` (not ``(3, 1)``),
    tensors and flat arrays with their own shape."""
    arr = np.array(value)
    if arr.ndim == 2 and arr.shape[1] == 1 and not isinstance(value, mi.TensorXf):
        arr = arr[:, 0]
    return arr


def gradient(
    scene: mi.Scene,
    keys: Sequence[str | ParamSpec],
    loss: str | Callable = "l2",
    target: np.ndarray | None = None,
    integrator: str | mi.Integrator | None = "prb",
    spp: int = 0,
    seed: int = 0,
    sensor: int = 0,
    **opts,
) -> dict[str, np.ndarray]:
    """Reverse-mode gradient of ``loss(render(θ), target)`` for each key.

    A key is a ``mi.traverse`` key (the gradient has that parameter's shape) or a ParamSpec
    for a scalar θ (e.g. ``occluder.translate.x``; the gradient is a scalar). ``loss`` is a
    name (``l1``, ``l2``, ``rel_l2``, ``multiscale_l1``) or ``f(image, target) -> mi.Float``.
    """
    integ = make_integrator(scene, integrator, **opts)
    loss_fn = get_loss(loss)
    params = scene_params(scene)
    specs, direct = {}, []
    for key in keys:
        name = key if isinstance(key, str) else key.name
        if isinstance(key, str) and key in params:
            direct.append(key)
        else:
            specs[name] = (_as_spec(scene, key), mi.Float(0.0))
    try:
        for key in direct:
            dr.enable_grad(params[key])
        params.update()
        for _, θ in specs.values():
            dr.enable_grad(θ)
        if specs:  # composed: several specs on one mesh move it by all of them
            bind_specs(params, list(specs.values()))
        thetas = [θ for _, θ in specs.values()]
        img = diff_render(scene, params, integ, sensor, spp, seed, extra=thetas)
        tgt = mi.TensorXf(np.asarray(target, dtype=np.float32)) if target is not None else None
        value = loss_fn(img, tgt)
        dr.backward(value)
        out = {key: _numpy(dr.grad(params[key])) for key in direct}
        out.update({name: np.array(dr.grad(θ))[0] for name, (_, θ) in specs.items()})
        return out
    finally:
        for key in direct:
            dr.disable_grad(params[key])
        params.update()
        for spec, _ in specs.values():
            spec.reset()
