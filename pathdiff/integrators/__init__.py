"""pathdiff integrator plugins and their registration with Mitsuba."""

from __future__ import annotations

import mitsuba as mi

from .ad import ADPathIntegrator
from .edge import EdgeIntegrator
from .path import PathIntegrator
from .prb import PRBIntegrator
from .psdr import PSDRIntegrator
from .reparam import ReparamIntegrator

PLUGINS = {
    "pathdiff_path": PathIntegrator,
    "pathdiff_ad": ADPathIntegrator,
    "pathdiff_prb": PRBIntegrator,
    "pathdiff_edge": EdgeIntegrator,
    "pathdiff_psdr": PSDRIntegrator,
    "pathdiff_reparam": ReparamIntegrator,
}


def plugin_name(name: str) -> str:
    """Map a short name (``prb``) to its plugin name (``pathdiff_prb``); others unchanged."""
    return f"pathdiff_{name}" if f"pathdiff_{name}" in PLUGINS else name


def register() -> None:
    """Register every ``pathdiff_*`` plugin with Mitsuba for the current variant."""
    for name, cls in PLUGINS.items():
        mi.register_integrator(name, lambda props, cls=cls: cls(props))
