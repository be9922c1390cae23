"""Mesh edge tables: the curves across which visibility (and flat shading) is discontinuous.

Topology is built once per mesh on the host (numpy): vertices are merged by position (split
UV/normal seams would otherwise turn every edge into a boundary edge and double the
boundary term) and each undirected edge keeps its two adjacent faces. Edges whose faces are
coplanar get zero sampling weight, since nothing can jump across them. Positions are
gathered per render from the mesh's *attached* vertex buffer, so edge velocities come out of
AD.

Candidate rule: an edge is a discontinuity candidate as seen from a point ``p`` if it is a
boundary edge (one face), a shading crease (flat-shaded mesh), or a silhouette:
``sign(n_A·(p − v0)) ≠ sign(n_B·(p − v0))``. Extra candidates add variance, never bias,
because the radiance difference is measured by tracing both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

NONE = 0xFFFFFFFF


@dataclass
class EdgeGeometry:
    """Attached per-edge positions: endpoints, the faces' unnormalized normals, masks."""

    v0: mi.Point3f
    v1: mi.Point3f
    nA: mi.Vector3f
    nB: mi.Vector3f
    #: a candidate from every viewpoint: an open (one-face) edge, or (static tables, where
    #: ``smooth`` is set) an open edge or a crease
    always: mi.Bool
    smooth: bool

    @property
    def crease(self) -> mi.Bool:
        """Non-coplanar edges of flat-shaded meshes: the shading normal jumps there."""
        if self.smooth:
            return mi.Bool(False)
        nA, nB = dr.detach(self.nA), dr.detach(self.nB)
        return ~self.always & (dr.dot(nA, nB) < (1 - 1e-6) * dr.norm(nA) * dr.norm(nB))

    def weight(self) -> mi.Float:
        """Edge length where the edge can ever be a discontinuity (0 on coplanar edges)."""
        nA, nB = dr.detach(self.nA), dr.detach(self.nB)
        bent = dr.dot(nA, nB) < (1 - 1e-6) * dr.norm(nA) * dr.norm(nB)
        return dr.select(self.always | bent, dr.norm(dr.detach(self.v1 - self.v0)), 0)

    def candidate(self, p: mi.Point3f) -> mi.Bool:
        """Edges that can carry a discontinuity as seen from ``p``."""
        d = dr.detach(p - self.v0)
        sA = dr.dot(dr.detach(self.nA), d) > 0
        sB = dr.dot(dr.detach(self.nB), d) > 0
        return self.always | self.crease | (sA != sB)


def gather_edges(
    positions: mi.Float,
    table,
    flags: mi.Bool,
    smooth: bool,
    idx: mi.UInt32,
    active: mi.Bool = True,
) -> EdgeGeometry:
    """Gather the attached geometry of edges ``idx`` from a flat position buffer, given a
    ``table`` with vertex indices ``v0``, ``v1`` and the faces' vertex triples ``fa``, ``fb``;
    ``flags`` marks edges that are candidates from everywhere."""

    def vertex(indices, i):
        return dr.gather(mi.Point3f, positions, dr.gather(mi.UInt32, indices, i, active), active)

    def normal(indices):
        a, b, c = (vertex(indices, 3 * idx + k) for k in range(3))
        return dr.cross(b - a, c - a)

    return EdgeGeometry(
        v0=vertex(table.v0, idx),
        v1=vertex(table.v1, idx),
        nA=normal(table.fa),
        nB=normal(table.fb),
        always=dr.gather(mi.Bool, flags, idx, active),
        smooth=smooth,
    )


class MeshEdges:
    """Edge table of one triangle mesh (topology on the host, positions on the device)."""

    def __init__(self, mesh: mi.Mesh):
        self.mesh = mesh
        P = np.array(dr.detach(mesh.vertex_positions_buffer()), dtype=np.float64).reshape(-1, 3)
        F = np.array(mesh.faces_buffer(), dtype=np.int64).reshape(-1, 3)
        F = _merge_vertices(P, F)
        F = F[(F[:, 0] != F[:, 1]) & (F[:, 1] != F[:, 2]) & (F[:, 2] != F[:, 0])]
        v0, v1, fa, fb = _edge_faces(F)
        boundary = fb < 0
        self.count = len(v0)
        self.v0 = mi.UInt32(v0)
        self.v1 = mi.UInt32(v1)
        self.fa = mi.UInt32(F[fa].ravel())
        self.fb = mi.UInt32(F[np.where(boundary, fa, fb)].ravel())
        self.face_a = mi.UInt32(fa)
        self.face_b = mi.UInt32(np.where(boundary, NONE, fb))
        self.open_edge = mi.Bool(boundary)  # one adjacent face
        self.smooth = mesh.has_vertex_normals()

    def geometry(self, idx: mi.UInt32 | None = None, active: mi.Bool = True) -> EdgeGeometry:
        """Attached geometry of the edges ``idx`` (all edges if ``None``)."""
        if idx is None:
            idx = dr.arange(mi.UInt32, self.count)
        return gather_edges(
            self.mesh.vertex_positions_buffer(), self, self.open_edge, self.smooth, idx, active
        )

    def adjacent(
        self, idx: mi.UInt32, si: mi.SurfaceInteraction3f, active: mi.Bool = True
    ) -> mi.Bool:
        """Whether ``si`` lies on one of the faces of edge ``idx``."""
        fa = dr.gather(mi.UInt32, self.face_a, idx, active)
        fb = dr.gather(mi.UInt32, self.face_b, idx, active)
        on_face = (fa == si.prim_index) | (fb == si.prim_index)
        return (si.shape == mi.ShapePtr(self.mesh)) & on_face


class StaticEdges:
    """The edges of all static meshes in one table. They are boundaries that move relative
    to a moving path vertex (moving receivers). The index tables are built once;
    :meth:`refresh` gathers the current positions and flags on the device."""

    def __init__(self, tables: list[MeshEdges]):
        self.tables = tables
        self.meshes = [t.mesh for t in tables]
        v0, v1, fa, fb, face_a, face_b, mesh = ([] for _ in range(7))
        offset = 0
        for k, t in enumerate(tables):
            for out, table in ((v0, t.v0), (v1, t.v1), (fa, t.fa), (fb, t.fb)):
                out.append(np.array(table) + offset)
            face_a.append(np.array(t.face_a))
            face_b.append(np.array(t.face_b))
            mesh.append(np.full(t.count, k))
            offset += t.mesh.vertex_count()
        self.count = int(sum(len(m) for m in mesh))
        self.v0, self.v1, self.fa, self.fb, self.face_a, self.face_b, self.mesh = (
            mi.UInt32(np.concatenate(a).astype(np.uint32))
            for a in (v0, v1, fa, fb, face_a, face_b, mesh)
        )
        self.refresh()

    def refresh(self) -> None:
        """Current (detached) positions, and the edges that are candidates from everywhere
        (boundary edges and creases)."""
        with dr.suspend_grad():
            self.positions = dr.concat([t.mesh.vertex_positions_buffer() for t in self.tables])
            geometry = [t.geometry() for t in self.tables]
            self.always = dr.concat([g.always | g.crease for g in geometry])

    def geometry(self, idx: mi.UInt32 | None = None, active: mi.Bool = True) -> EdgeGeometry:
        """Geometry of the edges ``idx``; open edges and creases are flagged ``always``
        (both are candidates from everywhere)."""
        if idx is None:
            idx = dr.arange(mi.UInt32, self.count)
        return gather_edges(self.positions, self, self.always, True, idx, active)

    def adjacent(
        self, idx: mi.UInt32, si: mi.SurfaceInteraction3f, active: mi.Bool = True
    ) -> mi.Bool:
        """Whether ``si`` lies on one of the faces of edge ``idx``."""
        k = dr.gather(mi.UInt32, self.mesh, idx, active)
        same = mi.Bool(False)
        for i, mesh in enumerate(self.meshes):
            same |= (k == i) & (si.shape == mi.ShapePtr(mesh))
        fa = dr.gather(mi.UInt32, self.face_a, idx, active)
        fb = dr.gather(mi.UInt32, self.face_b, idx, active)
        return same & ((fa == si.prim_index) | (fb == si.prim_index))


def _merge_vertices(P: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Remap faces onto one representative vertex per position (tolerance 1e-6 × diagonal)."""
    diag = float(np.linalg.norm(P.max(0) - P.min(0))) or 1.0
    q = np.round(P / (1e-6 * diag)).astype(np.int64)
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    return first[inverse.ravel()][F]


def _edge_faces(F: np.ndarray) -> tuple[np.ndarray, ...]:
    """Undirected edges ``(v0, v1)`` oriented as in their first face, and the adjacent faces
    ``fa``, ``fb`` (``fb = -1`` on boundary edges). Non-manifold edges (3+ faces) are kept
    with their first two faces, as candidates like any other edge."""
    nf = len(F)
    a = F.ravel()
    b = F[:, [1, 2, 0]].ravel()
    face = np.repeat(np.arange(nf), 3)
    key = np.minimum(a, b) * (F.max() + 1) + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    key, a, b, face = key[order], a[order], b[order], face[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    count = np.diff(np.r_[start, len(key)])
    fb = np.where(count >= 2, face[np.minimum(start + 1, len(key) - 1)], -1)
    return a[start], b[start], face[start], fb


def moving_meshes(scene: mi.Scene) -> list[mi.Mesh]:
    """Triangle meshes whose vertex positions currently carry derivatives."""
    return [
        s for s in scene.shapes() if s.is_mesh() and dr.grad_enabled(s.vertex_positions_buffer())
    ]


def moving_analytic_shapes(scene: mi.Scene) -> list[mi.Shape]:
    """Non-mesh shapes (``disk``, ``sphere``, ``cylinder``, ...) with a parameter that
    currently carries derivatives: they move, but have no edges to sample."""
    out = []
    with dr.resume_grad():
        for s in scene.shapes():
            if s.is_mesh():
                continue
            params = mi.traverse(s)
            if any(dr.grad_enabled(params[k]) for k in params.keys()):
                out.append(s)
    return out
