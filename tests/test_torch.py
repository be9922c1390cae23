"""The PyTorch layer (``pathdiff.torch``): its gradients equal ``pd.gradient``'s for the same
samples and agree with CRN finite differences of the primal integrator; batches, the
separate gradient spp, NaN safety, a ``torch.optim.Adam`` loop, and the extra's absence."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT, scene_path

torch = pytest.importorskip("torch")

RES = 16

# (scene, parameter, estimator, FD step, film): a material, a light, a texture, a mesh moved
# by a ParamSpec and by its vertex positions (boundary estimator), and the camera
CASES = [
    ("cbox", "red.reflectance.value", "prb", 0.05),
    ("cbox", "light.emitter.radiance.value", "prb", 0.5),
    ("textured", "plane_bsdf.reflectance.data", "prb", 0.05),
    ("shadow", "occluder.translate.x", "edge", 0.02),
    ("shadow", "occluder.vertex_positions", "edge", 0.02),
    ("shadow", "sensor.translate.x", "edge", 0.02),
]
IDS = [f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
#: the FD comparisons of these run in the slow tier (their exact equality with
#: pd.gradient, which has its own FD tests, runs by default)
SLOW_FD = {
    "light.emitter.radiance.value", "occluder.translate.x", "occluder.vertex_positions",
    "sensor.translate.x",
}  # fmt: skip
FD_CASES = [
    pytest.param(*c, id=i, marks=[pytest.mark.slow] if c[1] in SLOW_FD else [])
    for c, i in zip(CASES, IDS)
]

TWO_SENSORS = f"""<scene version="3.0.0">
    <path value="{ROOT / "scenes" / "shadow"}"/>
    <include filename="{ROOT / "scenes" / "shadow" / "scene.xml"}"/>
    <sensor type="perspective" id="side">
        <float name="fov" value="45"/>
        <transform name="to_world"><lookat origin="2.5, 1.5, 3" target="0, 0, 0" up="0, 1, 0"/></transform>
        <sampler type="independent"><integer name="sample_count" value="8"/></sampler>
        <film type="hdrfilm"><integer name="width" value="{RES}"/><integer name="height" value="{RES}"/>
            <rfilter type="box"/></film>
    </sensor>
</scene>"""  # noqa: E501


@pytest.fixture(scope="module")
def pdt():
    import pathdiff.torch

    return pathdiff.torch


def _scene(pd, name):
    return pd.load_scene(scene_path(name), res=RES, max_depth=3)


def _start(pd, scene, key) -> torch.Tensor:
    """The parameter's current value as a tensor (θ = 0 for a ParamSpec)."""
    from pathdiff.params import scene_params

    params = scene_params(scene)
    if key in params:
        value = np.array(params[key], dtype=np.float32)
        if key.endswith("vertex_positions"):
            value = value.reshape(-1, 3)
        return torch.tensor(value.squeeze(), requires_grad=True)
    return torch.tensor(0.0, requires_grad=True)


def _layer_grad(pdt, scene, key, value, weights, integrator, **kw) -> torch.Tensor:
    x = value.detach().clone().requires_grad_(True)
    img = pdt.render(scene, {key: x}, integrator=integrator, **kw)
    (img * weights).sum().backward()
    return x.grad


def _weights(shape, seed) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,key,integrator,h", CASES, ids=IDS)
def test_equals_pd_gradient(pd, pdt, name, key, integrator, h):
    """Same seed, same samples: the layer's gradient is ``pd.gradient``'s (with the separate
    gradient spp), and the scene holds its own values again afterwards."""
    import drjit as dr
    import mitsuba as mi

    scene = _scene(pd, name)
    x = _start(pd, scene, key)
    w = _weights((RES, RES, 3), 0)
    W = mi.TensorXf(w.numpy())

    def reference():
        return pd.gradient(
            scene, [key], loss=lambda img, _: dr.sum(img * W, axis=None),
            integrator=integrator, spp=8, seed=5,
        )[key]  # fmt: skip

    # A camera ParamSpec, once bound, leaves the sensor's inverse matrix recomputed (1e-8
    # apart), and the boundary samples' random numbers are seeded from the camera rays' bits
    # (RNGSampler.from_ray): other samples, the same distribution. Compare both in the state
    # any first bind leaves.
    reference()
    before = pd.render(scene, "path", spp=4, seed=9)
    got = _layer_grad(pdt, scene, key, x, w, integrator, spp=2, spp_grad=8, seed=5)
    ref = reference()
    assert got.shape == x.shape
    assert np.abs(ref).max() > 0, "the reference gradient is zero: vacuous comparison"
    np.testing.assert_allclose(got.numpy().ravel(), np.ravel(ref), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(pd.render(scene, "path", spp=4, seed=9), before)


@pytest.mark.parametrize("name,key,integrator,h", FD_CASES)
def test_matches_fd(pd, pdt, name, key, integrator, h):
    """Directional derivative of random-weight losses along the ParamSpec ``key`` (every
    component moving by θ for a key) against CRN FD of the primal ``path`` integrator,
    8 seeds each, t-threshold."""
    from pathdiff.stats import mean_se, threshold, z_scores

    scene = _scene(pd, name)
    x = _start(pd, scene, key)
    weights = [torch.ones(RES, RES, 3)] + [_weights((RES, RES, 3), j) for j in (1, 2, 3)]
    ad, fd = [], []
    for s in range(8):
        grads = [_layer_grad(pdt, scene, key, x, w, integrator, spp=16, seed=s) for w in weights]
        ad.append(np.array([float(g.sum()) for g in grads]))
        img = pd.finite_difference(scene, key, h=h, spp=128, seed=100 + s)
        fd.append(np.array([float((w.numpy() * img).sum()) for w in weights]))
    z = z_scores(ad, fd)
    mean, se = mean_se(fd)
    assert (np.abs(mean) > 4 * se).any(), "FD is not significant: the comparison would be vacuous"
    assert np.all(np.abs(z) <= threshold(len(z), 8, 8)), f"z = {z.round(2)}, FD {mean.round(3)}"


def test_camera_needs_its_theta_in_the_reverse_pass(pd, pdt, monkeypatch):
    """Negative control for the FD test's camera case: a camera's θ reaches the image only
    through the integrator, so a layer that did not hand it to the reverse pass would return
    0 where FD is clearly not."""
    import pathdiff.torch as mod

    real = mod.backward_render
    monkeypatch.setattr(mod, "backward_render", lambda *a, extra=(), **k: real(*a, **k))
    scene = _scene(pd, "shadow")
    x = torch.tensor(0.0)
    g = _layer_grad(pdt, scene, "sensor.translate.x", x, torch.ones(RES, RES, 3), "edge", spp=8)
    fd = pd.finite_difference(scene, "sensor.translate.x", h=0.02, spp=64).sum()
    assert float(g) == 0.0 and abs(fd) > 1.0


def test_batch_of_sensors(pd, pdt, tmp_path):
    """``sensor=[0, 1]`` stacks the views (view k with seed + k) and its gradient is the sum
    of the views' gradients."""
    path = tmp_path / "two.xml"
    path.write_text(TWO_SENSORS)
    scene = pd.load_scene(str(path), res=RES, max_depth=3)
    key = "floor_bsdf.reflectance.value"
    x = _start(pd, scene, key)
    w = _weights((2, RES, RES, 3), 4)
    batch = pdt.render(scene, {key: x}, sensor=[0, "side"], spp=4, seed=7)
    assert batch.shape == (2, RES, RES, 3)
    (batch * w).sum().backward()
    single, total = [], torch.zeros(3)
    for k in range(2):
        y = x.detach().clone().requires_grad_(True)
        img = pdt.render(scene, {key: y}, sensor=k, spp=4, seed=7 + k)
        (img * w[k]).sum().backward()
        single.append(img.detach())
        total += y.grad
    torch.testing.assert_close(batch.detach(), torch.stack(single))
    torch.testing.assert_close(x.grad, total, rtol=1e-4, atol=1e-5)
    assert not torch.equal(single[0], single[1])


def test_adam_recovers_a_colour(pd, pdt):
    """A ``torch.optim.Adam`` loop (decaying step) through the layer recovers the red wall's
    colour from a reference render."""
    scene = pd.load_scene(scene_path("cbox"), res=32, max_depth=3)
    key = "red.reflectance.value"
    truth = _start(pd, scene, key).detach()
    target = pdt.render(scene, {key: truth}, spp=128, seed=1000)
    x = torch.tensor([0.3, 0.3, 0.3], requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    decay = torch.optim.lr_scheduler.ExponentialLR(opt, 0.95)
    for it in range(60):
        opt.zero_grad()
        loss = ((pdt.render(scene, {key: x}, spp=16, seed=it) - target) ** 2).mean()
        loss.backward()
        opt.step()
        decay.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    assert (x.detach() - truth).abs().max() < 0.03, (x, truth)


def test_nan_safe(pd, pdt):
    """Non-finite pixels and gradient entries come out as 0, with a warning."""
    scene = _scene(pd, "cbox")
    x = torch.tensor([float("nan"), 0.1, 0.1], requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = pdt.render(scene, {"red.reflectance.value": x}, spp=2)
        img.sum().backward()
    assert torch.isfinite(img).all() and torch.isfinite(x.grad).all()
    assert any("non-finite image pixels set to 0" in str(c.message) for c in caught)


def test_bad_values_say_what_is_wrong(pd, pdt):
    scene = _scene(pd, "cbox")
    with pytest.raises(ValueError, match=r"red.reflectance.value: expected 3 values, got 2"):
        pdt.render(scene, {"red.reflectance.value": torch.zeros(2)}, spp=1)
    with pytest.raises(ValueError, match=r"is a scalar"):
        pdt.render(scene, {"tall_box.translate.x": torch.zeros(2)}, spp=1)
    with pytest.raises(ValueError, match=r"no sensor with id 'nope'"):
        pdt.render(scene, {}, sensor="nope", spp=1)


def test_core_never_imports_torch_and_absence_is_one_line():
    """``import pathdiff`` (every module but the layer) leaves torch alone; without torch,
    ``import pathdiff.torch`` fails with one line naming the extra."""
    code = (
        "import sys, pkgutil, importlib, pathdiff\n"
        "for m in pkgutil.walk_packages(pathdiff.__path__, 'pathdiff.'):\n"
        "    if m.name != 'pathdiff.torch' and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.modules['torch'] = None\n"
        "import pathdiff.torch\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        "ImportError: pathdiff.torch needs PyTorch: pip install 'pathdiff[torch]'"
    ), r.stderr
