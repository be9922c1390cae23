"""PyTorch layer: a pathdiff render as a differentiable ``torch`` operation.

Install with ``pip install 'pathdiff[torch]'``; the rest of pathdiff never imports torch.

>>> import pathdiff as pd, pathdiff.torch as pdt, torch
>>> scene = pd.load_scene("scenes/cbox/scene.xml", res=64)
>>> red = torch.tensor([0.5, 0.2, 0.2], requires_grad=True)
>>> img = pdt.render(scene, {"red.reflectance.value": red}, spp=16, seed=0)
>>> loss = ((img - target) ** 2).mean(); loss.backward()      # red.grad: shape (3,)

``params`` maps scene parameters to tensors:

* a ``mi.traverse`` key (``red.reflectance.value``, ``plane_bsdf.reflectance.data``,
  ``light.emitter.radiance.value``, ``obj.vertex_positions``) to a tensor with that
  parameter's number of components, in any shape (a colour ``(3,)``, a texture ``(H, W, C)``,
  vertex positions ``(N, 3)`` or flat); its gradient has the tensor's shape;
* a ParamSpec (a string such as ``occluder.translate.x`` or ``sensor.rotate.y``, or a
  :class:`pathdiff.ParamSpec`) to a scalar tensor θ (θ = 0 is the scene as loaded).

The values are written into the scene for the call only: afterwards the scene holds what it
held before, so ``render`` is a function of its arguments.

**How the gradient is computed.** The layer is a ``torch.autograd.Function``: its forward
pass is a primal render (no AD graph is recorded, so nothing is held between the forward and
the backward pass), and its backward pass hands the image gradient ``δI`` to the estimator's
own reverse mode (:func:`pathdiff.render.backward_render`: path replay, boundary terms, the
camera's derivatives), with its own sample count ``spp_grad`` and a seed derived from
``seed``, exactly as :func:`pathdiff.gradient` does; the two agree to float precision.
Wrapping the Dr.Jit graph instead (``dr.wrap``) would keep a whole render's graph alive
between the passes, which path replay exists to avoid, and would not run the boundary terms.

Tensors cross between torch and Dr.Jit through DLPack (``mi.TensorXf(tensor)``,
``TensorXf.torch()``): on a CUDA variant (``pd.set_variant("cuda_ad_rgb")``) CUDA tensors
stay on the device; on the LLVM variant, CPU tensors are shared without copies.

**Several sensors** (``sensor=[0, 1, 2]``) give a stacked ``(N, H, W, C)`` batch; view ``k``
renders with seed ``seed + k``. **NaN-safe**: non-finite pixels of the image and non-finite
gradient entries become 0, with a warning saying how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

try:
    import torch
except ImportError:
    raise ImportError("pathdiff.torch needs PyTorch: pip install 'pathdiff[torch]'") from None

import drjit as dr
import mitsuba as mi

from .params import scene_params
from .render import backward_render, make_integrator
from .scene import ParamSpec, _size, bind_specs, resolve_param
from .variables import _flatten, _unflatten

__all__ = ["render"]


def render(
    scene: mi.Scene,
    params: Mapping[str | ParamSpec, torch.Tensor] | None = None,
    *,
    integrator: str | mi.Integrator = "prb",
    spp: int = 0,
    spp_grad: int | None = None,
    seed: int = 0,
    sensor: int | str | Sequence[int | str] = 0,
    **opts,
) -> torch.Tensor:
    """Render ``scene`` with ``params`` set; differentiable with respect to the tensors.

    ``integrator`` is a pathdiff estimator name (``prb``, ``edge``, ``psdr``, ``reparam``...)
    or an instance, with ``opts`` its options (e.g. ``max_depth=3``). ``spp`` samples per pixel
    for the image (0: the sensor's), ``spp_grad`` for the gradient (default: ``spp``).
    ``sensor`` is an index or XML id, or a list of them for a stacked batch. Returns a
    float32 ``(H, W, C)`` tensor (``(N, H, W, C)`` for a list) on the tensors' device.
    """
    call = _Call(scene, dict(params or {}), integrator, spp, spp_grad, seed, sensor, opts)
    values = [_as_tensor(v, name) for name, v in zip(call.names, call.values_in)]
    return _Render.apply(call, *values)


class _Render(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: _Call, *values: torch.Tensor) -> torch.Tensor:
        ctx.call = call
        ctx.save_for_backward(*values)
        return call.primal(values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grads = ctx.call.adjoint(ctx.saved_tensors, grad)
        return (None, *grads)


class _Call:
    """One ``render`` call: the scene, what it binds, and how it samples."""

    def __init__(self, scene, params, integrator, spp, spp_grad, seed, sensor, opts):
        self.scene, self.seed = scene, int(seed)
        self.spp = int(spp)
        self.spp_grad = self.spp if spp_grad is None else int(spp_grad)
        self.batch = not isinstance(sensor, (int, str))
        self.sensors = [_sensor_index(scene, s) for s in (sensor if self.batch else [sensor])]
        self.integ = _integrator(scene, integrator, opts)
        self.params = scene_params(scene)
        self.keys, self.specs, self.names, self.values_in = [], [], [], []
        for key, value in params.items():
            if isinstance(key, str) and key in self.params:
                self.keys.append(key)
            else:
                self.specs.append(resolve_param(scene, key) if isinstance(key, str) else key)
            self.names.append(key if isinstance(key, str) else key.name)
            self.values_in.append(value)
        self.shapes = {k: _size(self.params[k]) for k in self.keys}

    # -- the two passes ------------------------------------------------------------------
    def primal(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        device = values[0].device if values else None
        with dr.suspend_grad(), self.bound(values, attach=False):
            images = [
                mi.render(self.scene, integrator=self.integ, sensor=s, spp=self.spp,
                          seed=self.view_seed(k)).torch()
                for k, s in enumerate(self.sensors)
            ]  # fmt: skip
        img = torch.stack(images) if self.batch else images[0]
        img = _finite(img, "image pixels")
        return img if device is None else img.to(device)

    def adjoint(self, values: Sequence[torch.Tensor], grad: torch.Tensor) -> list:
        grad = _finite(grad.detach().to(torch.float32).contiguous(), "image-gradient entries")
        with self.bound(values, attach=True) as leaves:
            thetas = [leaves[spec.name] for spec in self.specs]
            for k, s in enumerate(self.sensors):
                δI = mi.TensorXf(grad[k] if self.batch else grad)
                backward_render(
                    self.scene, self.params, self.integ, δI, s, self.spp_grad,
                    self.view_seed(k), extra=thetas,
                )  # fmt: skip
            out = []
            for name, value in zip(self.names, values):
                g = dr.grad(leaves[name])
                g = _flatten(g).torch() if name in self.shapes else g.torch()
                g = _finite(g.reshape(value.shape), f"gradient entries of {name}")
                out.append(g.to(value.dtype).to(value.device))
        return out

    def view_seed(self, k: int) -> int:
        return (self.seed + k) & 0xFFFFFFFF

    # -- writing the values into the scene for one pass -----------------------------------
    def bound(self, values: Sequence[torch.Tensor], attach: bool):
        return _Bound(self, values, attach)


class _Bound:
    """Context: the call's values written into the scene (attached to fresh Dr.Jit leaves
    if ``attach``); on exit the scene's previous values are back, detached."""

    def __init__(self, call: _Call, values: Sequence[torch.Tensor], attach: bool):
        self.call, self.values, self.attach = call, values, attach

    def __enter__(self) -> dict:
        call, params = self.call, self.call.params
        self.saved = {k: dr.detach(params[k]) for k in call.keys}
        leaves, specs = {}, []
        by_name = dict(zip(call.names, self.values))
        for key in call.keys:
            flat = mi.TensorXf(_contiguous(by_name[key]).reshape(-1)).array
            if dr.width(flat) != call.shapes[key]:
                raise ValueError(
                    f"{key}: expected {call.shapes[key]} values, got {by_name[key].numel()}"
                )
            value = _unflatten(params[key], flat)
            if self.attach:
                dr.enable_grad(value)
            params[key] = leaves[key] = value
        params.update()
        for spec in call.specs:
            t = by_name[spec.name]
            if t.numel() != 1:
                raise ValueError(f"{spec.name} is a scalar θ: got {t.numel()} values")
            θ = mi.Float(mi.TensorXf(_contiguous(t).reshape(1)).array)
            if self.attach:
                dr.enable_grad(θ)
            leaves[spec.name] = θ
            specs.append((spec, θ))
        if specs:
            bind_specs(params, specs)
        if self.attach:  # the keys may have been re-wrapped by params.update(): read back
            for key in call.keys:
                leaves[key] = params[key]
        return leaves

    def __exit__(self, *exc) -> None:
        params = self.call.params
        for spec in self.call.specs:
            spec.reset()
        for key, value in self.saved.items():
            params[key] = value
        params.update()


# ---- small conversions -------------------------------------------------------------------
def _contiguous(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError):
        kind = type(value).__name__
        raise TypeError(f"{name}: expected a tensor or numbers, got {kind}") from None


def _finite(t: torch.Tensor, what: str) -> torch.Tensor:
    bad = ~torch.isfinite(t)
    n = int(bad.sum())  # one host read per pass, after the kernels ran
    if n:
        warnings.warn(f"pathdiff.torch: {n} non-finite {what} set to 0", stacklevel=4)
        t = torch.where(bad, torch.zeros_like(t), t)
    return t


def _sensor_index(scene: mi.Scene, sensor: int | str) -> int:
    sensors = scene.sensors()
    if isinstance(sensor, str):
        ids = [s.id() for s in sensors]
        if sensor not in ids:
            raise ValueError(f"no sensor with id {sensor!r} (have: {', '.join(ids)})")
        return ids.index(sensor)
    if not 0 <= int(sensor) < len(sensors):
        raise ValueError(f"sensor {sensor} out of range: the scene has {len(sensors)}")
    return int(sensor)


#: integrators made per (scene, name, options), the last few kept
_INTEGRATORS: dict = {}


def _integrator(scene: mi.Scene, integrator, opts: dict) -> mi.Integrator:
    if isinstance(integrator, mi.Integrator):
        return make_integrator(scene, integrator, **opts)
    key = (id(scene), integrator, tuple(sorted(opts.items())))
    entry = _INTEGRATORS.pop(key, None)
    if entry is None or entry[0] is not scene:
        entry = (scene, make_integrator(scene, integrator, **opts))
    _INTEGRATORS[key] = entry
    while len(_INTEGRATORS) > 8:
        del _INTEGRATORS[next(iter(_INTEGRATORS))]
    return entry[1]
