"""pathdiff: physically based differentiable Monte Carlo path tracing.

Importing the package selects the Dr.Jit backend (see :mod:`pathdiff.backend`) and registers
the ``pathdiff_*`` integrator plugins with Mitsuba, so that ``<integrator
type="pathdiff_prb"/>`` works in XML and with ``mi.render()``.
"""

from __future__ import annotations

from .backend import BackendError, choose_variant
from .version import __version__ as __version__

try:
    variant = choose_variant()
except BackendError as _err:  # reported by the CLI as one line; raised on first API use
    backend_error: BackendError | None = _err
else:
    backend_error = None
    from . import integrators
    from .fd import finite_difference
    from .optimize import OptimizeResult, optimize
    from .render import derivative, gradient, render
    from .scene import ParamSpec, list_params, load_scene, resolve_param

    integrators.register()

__all__ = [
    "BackendError",
    "ParamSpec",
    "derivative",
    "finite_difference",
    "gradient",
    "list_params",
    "load_scene",
    "optimize",
    "OptimizeResult",
    "render",
    "resolve_param",
    "set_variant",
]


def set_variant(name: str) -> str:
    """Switch to another Mitsuba variant (e.g. ``cuda_ad_rgb``) and register the plugins there."""
    from . import integrators as _integrators

    name = choose_variant(name)
    _integrators.register()
    return name


def __getattr__(name: str):
    if backend_error is not None:
        raise backend_error
    raise AttributeError(f"module 'pathdiff' has no attribute {name!r}")
