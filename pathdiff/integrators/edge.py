"""``pathdiff_edge``: interior term by path replay plus edge-sampled boundary terms."""

from __future__ import annotations

from functools import partial

import mitsuba as mi

from .base import PathLoopIntegrator, Terms
from .camera import attached as camera_attached
from .edges import EdgeTables
from .primary import PrimaryEdges
from .secondary import SecondaryEdges
from .shadows import DeltaShadows
from .terms import vertex_terms


class EdgeIntegrator(PathLoopIntegrator):
    """Interior term (``pathdiff_prb``) plus the boundary term by edge sampling (Li et al. 2018).

    Reynolds' theorem splits the derivative of an integral whose integrand jumps across a
    moving curve Γ into the interior term and ``∫_Γ (f⁻ − f⁺) V_n dℓ``, with ``n`` pointing to
    the "+" side and ``V_n`` the normal velocity of Γ. Points on Γ are sampled on mesh edges:

    * **primary** (image plane): edges projected to the film, picked ∝ projected length;
      ``f± = L(x ± ε n)`` is the radiance of camera rays just beside the edge (full path
      tracing, shared random numbers), ``V_n = n · ∂x`` comes from AD through the projection
      of the attached endpoints; the sample is splatted through the film's reconstruction
      filter (the pixel it falls in for a box filter; ``sample_border`` honoured).
    * **secondary** (sphere of directions at each path vertex ``p`` of the replay): an edge
      ``(v0, v1)`` picked ∝ length, ``y = v0 + t(v1 − v0)``, ``ω = (y − p)/|y − p|``,
      ``m = (v0 − p) × (v1 − p)``; the term is ``β f_s(ω) (L⁺ − L⁻) ∂(ω·m)/|m| |dω/dt| / pmf``
      with ``|dω/dt| = |(I − ωωᵀ)(v1 − v0)| / |y − p|`` and ``L±`` the incident radiance along
      ``ω ± ε m/|m|`` (shadows of moving occluders, occlusion of indirect light).

    Primary samples come from the edges of meshes whose vertex positions carry derivatives,
    secondary ones too and, with ``static_edges`` (default true), at vertices on a moving
    mesh (a moving receiver) also from one table of all static edges: ``p`` is attached, so
    ``∂(ω·m)`` includes the vertex's own motion (a static occluder's shadow sliding over a
    moving surface). That part of the velocity is not the whole story for the radiance from
    the side rays' first hits, which the replay holds fixed in space while ``p`` moves (NEE
    holds its emitter sample likewise): there the boundary moves only by the factor
    ``1 − r_e/r`` (edge and hit at distances ``r_e``, ``r``); :func:`.secondary.fixed_share`
    removes the difference. Parameters:
    ``edge_samples`` (primary boundary samples per pixel; default: the render's spp),
    ``primary`` / ``secondary`` (enable each term); ``crease_rule=legacy`` and
    ``pixel_splat`` restore the pre-issue-14 crease rule and one-pixel splat (negative controls
    for the tests). Candidate edges: see :mod:`.edges` (split normals and UV seams are
    creases). Limits: pinhole perspective sensors, no crop window (warned); edges partly
    behind the camera are skipped. Shadows of delta lights
    (point, spot, projector, directional) seen by the camera: :mod:`.shadows` (option
    ``delta_shadows``); seen indirectly they are missed (warned).
    """

    def __init__(self, props: mi.Properties):
        super().__init__(props)
        # "legacy": creases from has_vertex_normals() only (negative control for the tests)
        self.edges = EdgeTables(props.get("crease_rule", ""), props.get("static_edges", True))
        self.primary = PrimaryEdges(props)
        self.secondary = SecondaryEdges(props)
        self.shadows = DeltaShadows(props)
        self.options.update(
            **self.primary.options(),
            **self.secondary.options(),
            **self.shadows.options(),
            static_edges=self.edges.static,
        )

    def terms(self, scene: mi.Scene, sensor: mi.Sensor | None = None) -> Terms:
        """Secondary edges at every replay vertex, primary edges in the image."""
        edges = self.edges.edge_set(scene, camera_moves(scene, sensor), self.plugin)
        return Terms(
            vertex=vertex_terms(
                self.secondary.term(self, edges), self.shadows.term(self, scene, edges)
            ),
            boundary=[
                partial(self.primary.image, edges=edges, loop=self),
                partial(self.shadows.image, edges=edges, loop=self, primary=self.primary),
            ],
        )


def camera_moves(scene: mi.Scene, sensor: mi.Sensor | None) -> bool:
    """Whether ``sensor`` (``None``: any sensor of ``scene``) has an attached pose or fov."""
    sensors = scene.sensors() if sensor is None else [sensor]
    return any(camera_attached(s) for s in sensors)
