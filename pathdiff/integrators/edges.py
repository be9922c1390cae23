"""Mesh edge tables: the curves across which visibility (and flat shading) is discontinuous.

Topology is built once per mesh on the host (numpy): vertices are merged by position (split
UV/normal seams would otherwise turn every edge into a boundary edge and double the
boundary term) and each undirected edge keeps its two adjacent faces and, for each face, the
mesh's own (unmerged) vertex indices of the edge's two endpoints. Positions, normals and
texture coordinates are gathered per render on the device from the mesh's buffers (positions
*attached*, so edge velocities come out of AD), so the classification follows the mesh when
its vertices move and needs no host round trip.

What jumps across an edge (per edge, :attr:`EdgeGeometry.crease`):

* **shading normal**: on a flat-shaded mesh (no vertex normals) wherever the faces are not
  coplanar; on a mesh with vertex normals wherever the two faces' vertex normals at either
  endpoint differ (split vertices at hard edges: Mitsuba's ``cube``, OBJ/PLY files with
  per-face normals or auto-smooth);
* **texture coordinates**: wherever the two faces' UVs at either endpoint differ (a UV
  seam; an extra candidate if the texture happens to be continuous across it);
* BSDF and emitter are per mesh in Mitsuba, so they never jump inside one edge table (two
  meshes touching along an edge have open edges, which are sampled).

Candidate rule: an edge is a discontinuity candidate as seen from a point ``p`` if it is a
boundary edge (one face), a crease (something above jumps), or a silhouette:
``sign(n_A·(p − v0)) ≠ sign(n_B·(p − v0))``. Coplanar edges with nothing jumping get zero
sampling weight. Extra candidates add variance, never bias, because the radiance difference
is measured by tracing both sides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np

from .proxies import ShapeProxy, supported

NONE = 0xFFFFFFFF
#: two unit shading normals differ when their dot product is below this
NORMAL_COS = 1 - 1e-5
#: two texture coordinates differ when a component differs by more than this
UV_EPS = 1e-6
#: ``EdgeIntegrator.crease_rule`` value that restores the old classification (creases from
#: ``has_vertex_normals()`` only), kept as a negative control for the tests
LEGACY = "legacy"


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
    jump: mi.Bool | bool = False
    #: false on the twin copies of an edge shared by two meshes (sampled once, see
    #: :class:`Twins`)
    keep: mi.Bool | bool = True

    @property
    def bent(self) -> mi.Bool:
        """The two faces are not coplanar."""
        nA, nB = dr.detach(self.nA), dr.detach(self.nB)
        return dr.dot(nA, nB) < (1 - 1e-6) * dr.norm(nA) * dr.norm(nB)

    @property
    def crease(self) -> mi.Bool:
        """Interior edges across which the integrand jumps wherever they are seen: the
        shading normal (flat shading on non-coplanar faces, or split vertex normals) or the
        texture coordinates differ on the two sides."""
        crease = mi.Bool(self.jump)
        if not self.smooth:
            crease |= self.bent
        return ~self.always & crease

    def weight(self) -> mi.Float:
        """Edge length where the edge can ever be a discontinuity (0 on coplanar edges with
        nothing jumping across them)."""
        ever = (self.always | self.bent | self.jump) & self.keep
        return dr.select(ever, dr.norm(dr.detach(self.v1 - self.v0)), 0)

    def candidate(self, p: mi.Point3f) -> mi.Bool:
        """Edges that can carry a discontinuity as seen from ``p``."""
        d = dr.detach(p - self.v0)
        sA = dr.dot(dr.detach(self.nA), d) > 0
        sB = dr.dot(dr.detach(self.nB), d) > 0
        return (self.always | self.crease | (sA != sB)) & self.keep


def gather_edges(
    positions: mi.Float,
    table,
    flags: mi.Bool,
    smooth: bool,
    idx: mi.UInt32,
    active: mi.Bool = True,
    jump: mi.Bool | bool = False,
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
        jump=jump,
    )


class MeshEdges:
    """Edge table of one triangle mesh (topology on the host, positions on the device).

    ``proxy``: the boundary proxy of an analytic shape (:mod:`.proxies`) whose mesh this is;
    its :attr:`owner` is the analytic shape, a hit anywhere on which counts as on every face,
    and its attached positions come from the shape's ``to_world`` at each :meth:`geometry`
    call (inside the path loop's AD scope, like a mesh's vertex buffer)."""

    def __init__(self, mesh: mi.Mesh, rule: str = "", proxy: ShapeProxy | None = None):
        self.mesh = mesh
        self.proxy = proxy
        self.owner = mesh if proxy is None else proxy.shape
        self.rule = rule
        P = np.array(dr.detach(mesh.vertex_positions_buffer()), dtype=np.float64).reshape(-1, 3)
        F0 = np.array(mesh.faces_buffer(), dtype=np.int64).reshape(-1, 3)
        F = _merge_vertices(P, F0)
        keep = (F[:, 0] != F[:, 1]) & (F[:, 1] != F[:, 2]) & (F[:, 2] != F[:, 0])
        face_edges = np.full((len(F), 3), NONE, dtype=np.uint32)
        faces = np.flatnonzero(keep)  # the mesh's face index of each kept face
        F, F0 = F[keep], F0[keep]
        v0, v1, fa, fb, edge_of = _edge_faces(F)
        face_edges[keep] = edge_of.reshape(-1, 3)
        boundary = fb < 0
        fb_ = np.where(boundary, fa, fb)
        # the mesh's own vertex indices of the endpoints on either face (split vertices)
        self.corners = [
            mi.UInt32(_own_index(F, F0, f, v).astype(np.uint32))
            for f in (fa, fb_)
            for v in (v0, v1)
        ]
        self.count = len(v0)
        self.v0 = mi.UInt32(v0)
        self.v1 = mi.UInt32(v1)
        self.fa = mi.UInt32(F[fa].ravel())
        self.fb = mi.UInt32(F[np.where(boundary, fa, fb)].ravel())
        self.face_a = mi.UInt32(faces[fa])
        self.face_b = mi.UInt32(np.where(boundary, NONE, faces[fb_]))
        #: per face of the mesh, its edges (edge ``k`` joins corners ``k`` and ``k + 1``;
        #: ``NONE`` for degenerate faces)
        self.face_edges = mi.UInt32(face_edges.ravel())
        self.face_count = len(face_edges)
        self.open_edge = mi.Bool(boundary)  # one adjacent face
        self.smooth = mesh.has_vertex_normals()

    def jump(self, idx: mi.UInt32, active: mi.Bool = True) -> mi.Bool | bool:
        """Whether the shading normal or the texture coordinates differ on the two sides of
        edges ``idx`` at either endpoint (device gathers of the mesh's attributes)."""
        if self.rule == LEGACY:
            return False
        a0, a1, b0, b1 = (dr.gather(mi.UInt32, c, idx, active) for c in self.corners)
        jump = mi.Bool(False)
        with dr.suspend_grad():
            if self.mesh.has_vertex_normals():
                normals = dr.detach(self.mesh.vertex_normals_buffer())
                for a, b in ((a0, b0), (a1, b1)):
                    na = dr.gather(mi.Vector3f, normals, a, active)
                    nb = dr.gather(mi.Vector3f, normals, b, active)
                    cos = dr.dot(na, nb) * dr.rsqrt(dr.squared_norm(na) * dr.squared_norm(nb))
                    jump |= (a != b) & ~(cos >= NORMAL_COS)
            if self.mesh.has_vertex_texcoords():
                uv = dr.detach(self.mesh.vertex_texcoords_buffer())
                for a, b in ((a0, b0), (a1, b1)):
                    d = dr.gather(mi.Point2f, uv, a, active) - dr.gather(mi.Point2f, uv, b, active)
                    jump |= (a != b) & (dr.maximum(dr.abs(d.x), dr.abs(d.y)) > UV_EPS)
        return jump

    def geometry(self, idx: mi.UInt32 | None = None, active: mi.Bool = True) -> EdgeGeometry:
        """Attached geometry of the edges ``idx`` (all edges if ``None``)."""
        if idx is None:
            idx = dr.arange(mi.UInt32, self.count)
        positions = self.mesh.vertex_positions_buffer() if self.proxy is None else self.proxy.local
        g = gather_edges(
            positions, self, self.open_edge, self.smooth, idx, active, self.jump(idx, active)
        )
        if self.proxy is not None:  # local -> world, attached to the shape's to_world
            T = self.proxy.transform()
            g.v0, g.v1 = T @ g.v0, T @ g.v1
            g.nA, g.nB = T @ mi.Normal3f(g.nA), T @ mi.Normal3f(g.nB)
        return g

    def adjacent(
        self, idx: mi.UInt32, si: mi.SurfaceInteraction3f, active: mi.Bool = True
    ) -> mi.Bool:
        """Whether ``si`` lies on one of the faces of edge ``idx``."""
        if self.proxy is not None:
            return si.shape == mi.ShapePtr(self.owner)
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
        self.meshes = [t.owner for t in tables]
        v0, v1, fa, fb, face_a, face_b, mesh, face_edges = ([] for _ in range(8))
        offset, edges, faces = 0, 0, 0
        #: index of each table's first face in :attr:`face_edges`
        self.face_offset = []
        for k, t in enumerate(tables):
            for out, table in ((v0, t.v0), (v1, t.v1), (fa, t.fa), (fb, t.fb)):
                out.append(np.array(table) + offset)
            face_a.append(np.array(t.face_a))
            face_b.append(np.array(t.face_b))
            mesh.append(np.full(t.count, k))
            fe = np.array(t.face_edges)
            face_edges.append(np.where(fe == NONE, NONE, fe + edges).astype(np.uint32))
            self.face_offset.append(faces)
            offset += t.mesh.vertex_count()
            edges += t.count
            faces += t.face_count
        #: per face of every table, its three edges in this table (``NONE``: degenerate face)
        self.face_edges = mi.UInt32(np.concatenate(face_edges) if face_edges else [])
        self.count = int(sum(len(m) for m in mesh))
        self.v0, self.v1, self.fa, self.fb, self.face_a, self.face_b, self.mesh = (
            mi.UInt32(np.concatenate(a).astype(np.uint32))
            for a in (v0, v1, fa, fb, face_a, face_b, mesh)
        )
        self.twins = Twins(tables)
        self.refresh()

    def refresh(self) -> None:
        """Current (detached) positions, and the edges that are candidates from everywhere
        (boundary edges and creases)."""
        with dr.suspend_grad():
            self.positions = dr.concat([t.mesh.vertex_positions_buffer() for t in self.tables])
            geometry = [t.geometry() for t in self.tables]
            self.always = dr.concat([g.always | g.crease for g in geometry])
            self.keep = dr.concat([self.twins.keep(k) for k in range(len(self.tables))])
            # the faces' normals per edge, once per render (two gathers per sample, not six)
            self.normals = [
                dr.concat([dr.ravel(getattr(g, n)) for g in geometry]) for n in ("nA", "nB")
            ]

    def geometry(self, idx: mi.UInt32 | None = None, active: mi.Bool = True) -> EdgeGeometry:
        """Geometry of the edges ``idx``; open edges and creases are flagged ``always``
        (both are candidates from everywhere)."""
        if idx is None:
            idx = dr.arange(mi.UInt32, self.count)

        def vertex(indices):
            i = dr.gather(mi.UInt32, indices, idx, active)
            return dr.gather(mi.Point3f, self.positions, i, active)

        return EdgeGeometry(
            v0=vertex(self.v0),
            v1=vertex(self.v1),
            nA=dr.gather(mi.Vector3f, self.normals[0], idx, active),
            nB=dr.gather(mi.Vector3f, self.normals[1], idx, active),
            always=dr.gather(mi.Bool, self.always, idx, active),
            smooth=True,
            keep=dr.gather(mi.Bool, self.keep, idx, active),
        )

    def adjacent(
        self, idx: mi.UInt32, si: mi.SurfaceInteraction3f, active: mi.Bool = True
    ) -> mi.Bool:
        """Whether ``si`` lies on one of the faces of edge ``idx``."""
        k = dr.gather(mi.UInt32, self.mesh, idx, active)
        fa = dr.gather(mi.UInt32, self.face_a, idx, active)
        fb = dr.gather(mi.UInt32, self.face_b, idx, active)
        on_face = (fa == si.prim_index) | (fb == si.prim_index)
        same = mi.Bool(False)
        for i, table in enumerate(self.tables):
            here = (k == i) & (si.shape == mi.ShapePtr(table.owner))
            same |= here if table.proxy is not None else here & on_face
        return same


class Twins:
    """Open edges that two meshes share (the walls of a box built from separate quads): one
    discontinuity, so one copy is sampled. Without this, a moving camera or receiver counts the
    jump across such an edge once per mesh (measured on the Cornell box: the tiles along the
    walls' shared edges twice FD).

    The pairs are found once on the host (endpoints equal within 1e-6 of the set's diagonal,
    either orientation); whether a pair still coincides is checked on the device per render,
    so meshes that move apart get both edges back."""

    def __init__(self, tables: list[MeshEdges]):
        self.tables = tables
        #: per table ``k``: ``(j, own edge indices, twin edge indices in table j)``, ``j < k``
        self.pairs: list[list[tuple[int, mi.UInt32, mi.UInt32]]] = [[] for _ in tables]
        self.q = 0.0
        ends = [_open_edge_ends(t) for t in tables]
        if len(tables) < 2 or not any(len(e[0]) for e in ends):
            return
        points = np.concatenate([p for _, a, b in ends for p in (a, b)] + [np.zeros((1, 3))])
        q = 1e-6 * (float(np.linalg.norm(points.max(0) - points.min(0))) or 1.0)
        first: dict[bytes, tuple[int, int]] = {}
        for k, (idx, a, b) in enumerate(ends):
            qa, qb = np.round(a / q).astype(np.int64), np.round(b / q).astype(np.int64)
            less = _lex_less(qa, qb)[:, None]
            lo, hi = np.where(less, qa, qb), np.where(less, qb, qa)
            found: dict[int, tuple[list[int], list[int]]] = {}
            for e, key in zip(idx, np.c_[lo, hi]):
                key = key.tobytes()
                if key in first and first[key][0] != k:
                    j, twin = first[key]
                    found.setdefault(j, ([], []))[0].append(e)
                    found[j][1].append(twin)
                else:
                    first.setdefault(key, (k, int(e)))
            self.pairs[k] = [(j, mi.UInt32(o), mi.UInt32(t)) for j, (o, t) in found.items()]
        self.q = q

    def keep(self, k: int) -> mi.Bool:
        """Per edge of table ``k``: false where it still coincides with its earlier twin."""
        table = self.tables[k]
        keep = dr.full(mi.Bool, True, table.count)
        for j, own, twin in self.pairs[k]:
            other = self.tables[j]
            a0, a1 = _ends(table, own)
            b0, b1 = _ends(other, twin)
            tol = 2 * self.q
            same = (_close(a0, b0, tol) & _close(a1, b1, tol)) | (
                _close(a0, b1, tol) & _close(a1, b0, tol)
            )
            dr.scatter(keep, mi.Bool(False), own, same)
        return keep


def _open_edge_ends(table: MeshEdges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host copies: indices and endpoint positions of ``table``'s open edges."""
    P = np.array(dr.detach(table.mesh.vertex_positions_buffer()), np.float64).reshape(-1, 3)
    idx = np.flatnonzero(np.array(table.open_edge))
    return idx, P[np.array(table.v0)[idx]], P[np.array(table.v1)[idx]]


def _lex_less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise lexicographic ``a < b`` of integer point arrays."""
    diff = a != b
    first = np.argmax(diff, axis=1)
    rows = np.arange(len(a))
    return diff.any(1) & (a[rows, first] < b[rows, first])


def _ends(table: MeshEdges, idx: mi.UInt32) -> tuple[mi.Point3f, mi.Point3f]:
    """Detached endpoint positions of edges ``idx`` of a mesh table."""
    P = dr.detach(table.mesh.vertex_positions_buffer())
    v0, v1 = (dr.gather(mi.UInt32, v, idx) for v in (table.v0, table.v1))
    return dr.gather(mi.Point3f, P, v0), dr.gather(mi.Point3f, P, v1)


def _close(a: mi.Point3f, b: mi.Point3f, tol: float) -> mi.Bool:
    return dr.max(dr.abs(a - b)) <= tol


def _merge_vertices(P: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Remap faces onto one representative vertex per position (tolerance 1e-6 × diagonal)."""
    diag = float(np.linalg.norm(P.max(0) - P.min(0))) or 1.0
    q = np.round(P / (1e-6 * diag)).astype(np.int64)
    _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    return first[inverse.ravel()][F]


def _own_index(F: np.ndarray, F0: np.ndarray, face: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The unmerged vertex index (``F0``) of merged vertex ``v`` in each face ``face``."""
    k = np.argmax(F[face] == v[:, None], axis=1)
    return F0[face, k]


def _edge_faces(F: np.ndarray) -> tuple[np.ndarray, ...]:
    """Undirected edges ``(v0, v1)`` oriented as in their first face, the adjacent faces
    ``fa``, ``fb`` (``fb = -1`` on boundary edges) and the edge of each half-edge ``3f + k``
    (corners ``k``, ``k + 1`` of face ``f``). Non-manifold edges (3+ faces) are kept with
    their first two faces, as candidates like any other edge."""
    nf = len(F)
    a = F.ravel()
    b = F[:, [1, 2, 0]].ravel()
    face = np.repeat(np.arange(nf), 3)
    key = np.minimum(a, b) * (F.max() + 1) + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    key, a, b, face = key[order], a[order], b[order], face[order]
    first = np.r_[True, key[1:] != key[:-1]]
    start = np.flatnonzero(first)
    count = np.diff(np.r_[start, len(key)])
    fb = np.where(count >= 2, face[np.minimum(start + 1, len(key) - 1)], -1)
    edge_of = np.empty(len(key), dtype=np.uint32)
    edge_of[order] = np.cumsum(first) - 1
    return a[start], b[start], face[start], fb, edge_of


@dataclass
class EdgeSet:
    """The edges one derivative render samples, with length-weighted distributions.

    ``moving``: a table per mesh whose vertex positions carry derivatives; ``static``: at most
    one table of all static meshes' edges (boundaries that move relative to a moving receiver
    or camera hit); ``primary``: the tables whose edges move in the image (all meshes when
    the camera moves); ``camera``: the camera moves."""

    moving: list[tuple[MeshEdges, mi.DiscreteDistribution]]
    static: list[tuple[StaticEdges, mi.DiscreteDistribution]]
    primary: list[MeshEdges]
    meshes: list[mi.Mesh]
    camera: bool
    #: per primary table: false on the twin copies of edges shared with an earlier table
    primary_keep: list[mi.Bool | bool]

    def on_moving(self, si: mi.SurfaceInteraction3f) -> mi.Bool:
        """Whether ``si`` lies on a moving mesh (static edges move relative to it)."""
        moving = mi.Bool(False)
        for mesh in self.meshes:
            moving |= si.shape == mi.ShapePtr(mesh)
        return moving


class EdgeTables:
    """An estimator's cache of edge tables: topology built once per mesh, positions gathered
    per render. ``rule``: the crease rule (``LEGACY`` for the negative control);
    ``static``: also sample static edges for moving receivers."""

    def __init__(self, rule: str = "", static: bool = True):
        self.rule = rule
        self.static = static
        self._tables: dict[int, MeshEdges] = {}
        self._combined: dict[tuple, StaticEdges] = {}
        self._twins: tuple[tuple, Twins] | None = None
        self._proxies: dict[int, ShapeProxy] = {}

    def table(self, shape: mi.Shape) -> MeshEdges:
        """The (cached) edge table of a mesh, or of an analytic shape's boundary proxy
        (placed where the shape is now)."""
        cached = self._tables.get(id(shape))
        if shape.is_mesh():  # (a mesh subdivided between optimization stages: new topology)
            stale = cached is None or cached.mesh is not shape
            if stale or cached.face_count != shape.face_count():
                self._tables[id(shape)] = MeshEdges(shape, self.rule)
            return self._tables[id(shape)]
        proxy = self._proxies.get(id(shape))
        if proxy is None or proxy.shape is not shape:
            proxy = self._proxies[id(shape)] = ShapeProxy(shape)
            cached = self._tables[id(shape)] = MeshEdges(proxy.mesh, self.rule, proxy)
        else:
            proxy.refresh()
        return cached

    def edge_set(
        self, scene: mi.Scene, camera: bool, who: str = "pathdiff", analytic: bool = True
    ) -> EdgeSet:
        """The :class:`EdgeSet` of a derivative render of ``scene`` (``camera``: the camera
        moves). With ``analytic``, disks take part through their boundary proxies; other
        moving analytic shapes, which have no edges here, are named in a warning. No host
        round trip: a table whose weights all vanish yields ``pmf = NaN`` samples, which
        every sampler rejects (``pmf > 0``)."""
        edged = (lambda s: s.is_mesh() or supported(s)) if analytic else (lambda s: s.is_mesh())
        moving = moving_meshes(scene)
        for shape in moving_analytic_shapes(scene):
            if edged(shape):
                moving.append(shape)
                continue
            what = (
                "curved analytic shapes (sphere, cylinder) have no boundary term here"
                if analytic
                else f"{who} has no boundary term for analytic shapes (pathdiff_edge and "
                "pathdiff_psdr have one for disks)"
            )
            warnings.warn(
                f"{who}: shape {shape.id() or shape.class_name()!r} ({shape.class_name()}) "
                f"moves, but {what}: its silhouette and shadow derivatives are missing (use a "
                "triangle mesh)",
                stacklevel=4,
            )
        tables = [self.table(shape) for shape in moving]
        others = [s for s in scene.shapes() if edged(s) and s not in moving]
        with dr.suspend_grad():
            distr = [(t, mi.DiscreteDistribution(t.geometry().weight())) for t in tables]
            static = []
            if self.static and (tables or camera) and others:
                table = self.combined(others)
                static.append((table, mi.DiscreteDistribution(table.geometry().weight())))
        primary, keep = tables, [True] * len(tables)
        if camera:  # every edge moves in the image, a shared edge is one curve there
            primary = [self.table(s) for s in scene.shapes() if edged(s)]
            twins = self.twins(primary)
            keep = [twins.keep(k) for k in range(len(primary))]
        return EdgeSet(distr, static, primary, moving, camera, keep)

    def twins(self, tables: list[MeshEdges]) -> Twins:
        """The (cached) :class:`Twins` of a list of tables."""
        key = tuple(id(t) for t in tables)
        if self._twins is None or self._twins[0] != key or self._twins[1].tables != tables:
            self._twins = (key, Twins(tables))
        return self._twins[1]

    def combined(self, meshes: list[mi.Shape]) -> StaticEdges:
        """One table of the edges of ``meshes`` (and boundary proxies): indices built once
        per set (the last two sets are kept), positions refreshed on every call."""
        tables = [self.table(mesh) for mesh in meshes]
        key = tuple(id(t) for t in tables)
        cached = self._combined.get(key)
        if cached is None or [t.owner for t in cached.tables] != list(meshes):
            cached = StaticEdges(tables)
            self._combined = {**dict(list(self._combined.items())[-1:]), key: cached}
        else:
            cached.refresh()
        return cached


def moving_meshes(scene: mi.Scene) -> list[mi.Mesh]:
    """Triangle meshes whose vertex positions currently carry derivatives (also when asked
    inside ``dr.suspend_grad``)."""
    with dr.resume_grad():
        return [
            s
            for s in scene.shapes()
            if s.is_mesh() and dr.grad_enabled(s.vertex_positions_buffer())
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
