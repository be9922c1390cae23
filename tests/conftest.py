"""Shared fixtures: bundled scene paths and a small-scene loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENES = ["cbox", "shadow", "silhouette", "textured", "glossy", "bunny"]


def scene_path(name: str) -> str:
    return str(ROOT / "scenes" / name / "scene.xml")


BLOCKER_XML = f"""<scene version="3.0.0">
    <path value="{ROOT / "scenes" / "textured"}"/>
    <path value="{ROOT / "scenes" / "silhouette"}"/>
    <include filename="{ROOT / "scenes" / "textured" / "scene.xml"}"/>
    <shape type="ply" id="blocker">
        <string name="filename" value="object.ply"/>
        <boolean name="face_normals" value="true"/>
        <transform name="to_world">
            <scale value="0.25"/>
            <translate value="0.13, 0.07, 0.3"/>
        </transform>
        <bsdf type="diffuse" id="blocker_bsdf">
            <rgb name="reflectance" value="0.2, 0.3, 0.8"/>
        </bsdf>
    </shape>
</scene>"""


def load_case(pd, name: str, tmp_path_factory, res: int = 24):
    """A bundled scene at ``res`` and max_depth 3, or ``blocker``: a faceted mesh in front of
    the textured plane."""
    if name == "blocker":
        path = tmp_path_factory.mktemp("blocker") / "scene.xml"
        path.write_text(BLOCKER_XML)
        return pd.load_scene(str(path), res=res)
    return pd.load_scene(scene_path(name), res=res, max_depth=3)


def assert_matches_fd(
    pd, scene, spec: str, integrator: str, h: float, spp: int = 32, tiles: int = 4, **opts
) -> None:
    """Independent seeds of ``integrator`` against independent CRN FD seeds (t-threshold),
    on the image total, random-weight losses and ``tiles × tiles`` tile sums (the tiles
    localize biases: they catch a 3× low shadow term that the whole-image statistics miss).
    Use ``tiles=0`` for estimators that are biased by design (``reparam``) unless ``opts``
    (integrator options) shrink the bias below the noise."""
    from pathdiff.stats import compare

    # 8 seeds at half the spp rather than 4 at full: the same samples, but a standard error
    # with 7 degrees of freedom; with 3 (four seeds) a tile's noise was underestimated 6x by
    # chance (projector over a moving floor: z = -10 on an estimator unbiased over 60 seeds)
    n = max(spp // 2, 4)
    ad = [pd.derivative(scene, spec, integrator, spp=n, seed=s, **opts) for s in range(8)]
    fd = [pd.finite_difference(scene, spec, h=h, spp=256, seed=100 + s) for s in range(8)]
    # float32 rounding: where FD is exactly 0 (nothing moves there), AD's last-bit rounding
    # can have the same sign in every seed; 1e-5 of FD's absolute sum is far below any bias
    floor = 1e-5 * float(np.abs(np.stack(fd)).sum()) / len(fd)
    result = compare(ad, fd, tiles=tiles, floor=floor)
    significant = abs(result.b_mean) > 4 * result.b_se
    assert significant[1:].any(), "FD is not significant: the comparison would be vacuous"
    assert result.passed, f"z = {result.z.round(2)}, threshold {result.threshold:.2f}"


def load_problem(name: str, estimator: str):
    """A problem of the ``pathdiff bench`` suite at its reference resolution: the scene, its
    parameter resolved for ``estimator`` and the stored FD reference."""
    from pathdiff.bench.make_references import load_reference
    from pathdiff.bench.problems import load, problem, resolve

    p = problem(name)
    ref = load_reference(p)
    scene = load(p, ref["settings"]["res"])
    return scene, resolve(p, scene, estimator=estimator), ref


def tile_variance(runs: list[np.ndarray], tiles: int = 4) -> float:
    """``Σ`` over ``tiles × tiles`` tiles of the variance across ``runs`` of each tile's sum
    (channels summed): a noise measure of derivative images that cannot cancel."""
    a = np.stack(runs).sum(-1)
    n, h, w = a.shape
    t = a[:, : h - h % tiles, : w - w % tiles].reshape(n, tiles, h // tiles, tiles, w // tiles)
    return float(t.sum(axis=(2, 4)).var(axis=0, ddof=1).sum())


@pytest.fixture(scope="session")
def pd():
    import pathdiff

    return pathdiff
