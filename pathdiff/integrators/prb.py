"""``pathdiff_prb``: radiative backpropagation with path replay."""

from __future__ import annotations

from .base import PathLoopIntegrator


class PRBIntegrator(PathLoopIntegrator):
    """Interior derivative term by path replay backpropagation (Vicini et al. 2021).

    A primal pass computes each sample's radiance ``L``; the adjoint pass replays the path
    with the same random numbers, carrying the adjoint radiance ``δL`` (reverse mode) or
    accumulating the derivative radiance (forward mode). At vertex ``k`` with detached
    throughput ``β`` it differentiates

    .. math:: \\partial L_o = \\partial(β L_e) + \\partial(β f_s L_{nee} / p)
              + L_{rem} \\, \\partial f_s / f_s ,

    with ``L_rem`` the radiance the primal path gathered after ``k`` (total minus what was
    already collected). Memory does not depend on path depth; time is about twice a primal
    render.

    Differentiable: BSDF parameters (albedo, bitmap textures, roughness through ``f/pdf`` with a
    detached pdf), emitter radiance/intensity/scale of area, point, spot, directional, constant
    and envmap emitters, any parameter that does not move geometry.

    Limits: no visibility (boundary) term, so derivatives with respect to vertex positions or
    ``to_world`` miss silhouette and shadow edges (use ``pathdiff_edge``, ``pathdiff_reparam``
    or ``pathdiff_psdr``); parameters of delta (specular) lobes are not differentiated.
    """
