"""Triangle-mesh utilities on the host (NumPy): subdivision between optimization stages and
the errors of a recovered mesh against the true one.

* :func:`subdivide`: every triangle into four through its edge midpoints (shared edges get one
  midpoint, so a closed mesh stays closed and the surface does not move);
* :func:`vertex_normals`: area-weighted vertex normals;
* :func:`chamfer`: RMS of the symmetric nearest-point distances between two point sets;
* :func:`normal_consistency`: mean ``|n_a · n_b|`` over nearest-vertex pairs, both ways
  (1: the surfaces are parallel everywhere; a sphere against a bunny is ~0.8).
"""

from __future__ import annotations

import numpy as np


def subdivide(
    v: np.ndarray, f: np.ndarray, uv: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(vertices, faces, texcoords)`` with each triangle split into four; ``v`` is
    ``(N, 3)``, ``f`` ``(M, 3)``, ``uv`` ``(N, 2)`` or ``None``. The old vertices keep their
    indices; midpoints follow, one per undirected edge."""
    v, f = np.asarray(v, np.float64).reshape(-1, 3), np.asarray(f, np.int64).reshape(-1, 3)
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    mid = len(v) + inverse.reshape(-1, 3)  # midpoints of edges 01, 12, 20
    out_v = np.vstack([v, v[unique].mean(1)])
    (a, b, c), (ab, bc, ca) = f.T, mid.T
    out_f = np.stack([a, ab, ca, b, bc, ab, c, ca, bc, ab, bc, ca], 1).reshape(-1, 3)
    out_uv = None
    if uv is not None:
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        out_uv = np.vstack([uv, uv[unique].mean(1)])
    return out_v, out_f, out_uv


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (zero for unreferenced vertices)."""
    v, f = np.asarray(v, np.float64).reshape(-1, 3), np.asarray(f, np.int64).reshape(-1, 3)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """RMS of the nearest-point distances from ``a`` to ``b`` and from ``b`` to ``a``."""
    from scipy.spatial import cKDTree

    a, b = np.asarray(a, np.float64).reshape(-1, 3), np.asarray(b, np.float64).reshape(-1, 3)
    d = np.concatenate([cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]])
    return float(np.sqrt(np.mean(d**2)))


def normal_consistency(va: np.ndarray, fa: np.ndarray, vb: np.ndarray, fb: np.ndarray) -> float:
    """Mean ``|n_a · n_b|`` of each vertex's normal and its nearest vertex's on the other
    mesh, over both meshes' vertices."""
    from scipy.spatial import cKDTree

    va, vb = np.asarray(va, np.float64).reshape(-1, 3), np.asarray(vb, np.float64).reshape(-1, 3)
    na, nb = vertex_normals(va, fa), vertex_normals(vb, fb)
    ia, ib = cKDTree(vb).query(va)[1], cKDTree(va).query(vb)[1]
    dots = np.concatenate([np.abs((na * nb[ia]).sum(1)), np.abs((nb * na[ib]).sum(1))])
    return float(np.mean(dots))


def read_ply(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N, 3), faces (M, 3))`` of a mesh file Mitsuba reads (PLY, OBJ)."""
    import mitsuba as mi

    kind = "obj" if str(path).lower().endswith(".obj") else "ply"
    params = mi.traverse(mi.load_dict({"type": kind, "filename": str(path)}))
    v = np.array(params["vertex_positions"], np.float64).reshape(-1, 3)
    return v, np.array(params["faces"], np.int64).reshape(-1, 3)
