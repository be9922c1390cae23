"""Boundary proxies: triangle meshes that carry the edges of Mitsuba's analytic disks.

The boundary terms sample points on mesh edges (:mod:`.edges`). Mitsuba's ``disk`` is not a
mesh, but its boundary is a fixed curve on the shape, moved by its ``to_world``: the rim. A
proxy is a triangle mesh kept outside the scene whose open edges approximate that curve: a
fan of :data:`DISK_SEGMENTS` triangles over the unit circle in ``z = 0``, its vertices placed
by the shape's current (possibly attached) ``to_world`` wherever the edge tables gather them,
so the disk's motion reaches the boundary terms through AD. The radiance on either side of a
sampled edge point is always traced in the real scene, against the analytic disk. The rim's
chords lie inside the circle by at most ``1 − cos(π/N)`` = 4.7e-6 of the radius, far below the
offset of the side rays (1e-3 pixel in the image, 1e-4 of the distance at path vertices), so a
sample on a chord straddles the true rim; the polygon's length is the circle's to 1.6e-6.

The fan's spokes are coplanar and never sampled. Hits on the disk count as hits on every
face of its proxy (a point of the disk does not sample its own rim). Mitsuba's
``rectangle`` needs no proxy: it is a mesh whose vertex buffer follows its ``to_world``.
Spheres and cylinders have silhouettes that depend on the viewpoint: no proxy
(:func:`supported`), and the estimators name them in a warning when they move.
"""

from __future__ import annotations

import drjit as dr
import mitsuba as mi
import numpy as np

#: rim segments of a disk's proxy
DISK_SEGMENTS = 1024


def supported(shape: mi.Shape) -> bool:
    """Whether ``shape`` is an analytic shape with a boundary proxy."""
    return not shape.is_mesh() and shape.class_name() in _LOCAL


def _disk() -> tuple[np.ndarray, np.ndarray]:
    φ = 2 * np.pi * np.arange(DISK_SEGMENTS) / DISK_SEGMENTS
    rim = np.c_[np.cos(φ), np.sin(φ), np.zeros_like(φ)]
    P = np.r_[np.zeros((1, 3)), rim]
    k = np.arange(1, DISK_SEGMENTS + 1)
    return P, np.c_[np.zeros_like(k), k, k % DISK_SEGMENTS + 1]


_LOCAL = {"Disk": _disk}


class ShapeProxy:
    """The proxy mesh of one analytic shape. :attr:`local` holds its vertices in the
    shape's own frame (flat); :meth:`transform` is the shape's current ``to_world``
    (attached when the shape moves); :meth:`refresh` writes the detached world positions
    into :attr:`mesh` (for the host-side and detached uses of a table)."""

    def __init__(self, shape: mi.Shape):
        self.shape = shape
        P, F = _LOCAL[shape.class_name()]()
        self.local = mi.Float(P.astype(np.float32).ravel())
        name = f"{shape.id() or shape.class_name()}_boundary_proxy"
        self.mesh = mi.Mesh(name, len(P), len(F))
        self.params = mi.traverse(self.mesh)
        self.params["faces"] = mi.UInt32(F.astype(np.uint32).ravel())
        self.shape_params = mi.traverse(shape)
        self.refresh()
        self.params.update()  # once: the proxy is in no scene, its bounds are never used

    def transform(self) -> mi.Transform4f:
        with dr.resume_grad():
            return mi.Transform4f(self.shape_params["to_world"])

    def refresh(self) -> None:
        """Detached world positions ``to_world · local`` from the shape's current transform,
        written into the buffer directly (no ``update()``: that would recompute bounds on the
        host on every render)."""
        with dr.suspend_grad():
            T = mi.Transform4f(dr.detach(self.shape_params["to_world"]))
            self.params["vertex_positions"] = dr.ravel(T @ dr.unravel(mi.Point3f, self.local))
