"""A neural texture trained through pathdiff against photographs.

A coordinate-based MLP (Fourier features of the texel coordinates (u, v), a few layers, a
sigmoid) predicts the albedo map of a diffuse plane. Its output is handed to
``pathdiff.torch.render`` as the plane's bitmap texture and trained with ``torch.optim.Adam``
so that three renders of the plane match three "photos": 8-bit sRGB PNGs rendered beforehand
with Mitsuba's own path tracer from the true texture, read back and linearized.

The script writes the scene (XML, the true texture, a uniform grey start texture) and the
photos into ``--out``; the figure and the numbers (``neural_texture.png``/``.json``) go to
``--figure`` (``docs/images/torch/``). Training stops early once the loss *and* the texture
have plateaued. About 400 x 0.2-0.4 s on 2 CPU cores.

    python experiments/torch_neural_texture.py [--out DIR] [--iters N] [--lr LR] [--spp N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import mitsuba as mi
import numpy as np
import torch

import pathdiff as pd
import pathdiff.torch as pdt
from pathdiff.images import linear_to_srgb, srgb_to_linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_scenes import sensor_xml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "plane_bsdf.reflectance.data"
TEX_RES = 64
IMG_RES = 64
# (origin, target) of the three cameras; all look at the plane z = 0, x, y in [-1, 1]
VIEWS = [
    ((0.0, -0.6, 3.2), (0.0, 0.0, 0.0)),
    ((-2.1, 0.4, 2.4), (0.0, 0.05, 0.0)),
    ((1.5, 1.3, 2.6), (0.05, 0.0, 0.0)),
]
LIGHT_RADIANCE = 26.0
ENV_RADIANCE = 0.15
MAX_DEPTH = 3
PHOTO_SPP = 512
PHOTO_SEED = 1_000_000
WINDOW = 50  # iterations between progress lines and plateau checks
LOSS_TOL = 0.01
MOVE_TOL = 0.004
EVAL_SPP = 256


SCENE_XML = """<?xml version="1.0" encoding="utf-8"?>
<!-- A textured diffuse plane (z = 0, [-1, 1]^2) lit by a square area light and a dim constant
     environment, seen by three cameras. Written by experiments/torch_neural_texture.py. -->
<scene version="3.0.0">
    <default name="res" value="{res}"/>
    <default name="spp" value="64"/>
    <default name="max_depth" value="{max_depth}"/>
    <default name="texture" value="texture.png"/>

    <integrator type="pathdiff_path">
        <integer name="max_depth" value="$max_depth"/>
    </integrator>
{sensors}

    <emitter type="constant" id="envlight">
        <rgb name="radiance" value="{env}, {env}, {env}"/>
    </emitter>

    <bsdf type="diffuse" id="plane_bsdf">
        <texture type="bitmap" name="reflectance">
            <string name="filename" value="$texture"/>
            <string name="format" value="variant"/>
        </texture>
    </bsdf>

    <shape type="rectangle" id="light">
        <transform name="to_world">
            <scale value="0.35"/>
            <lookat origin="0.4, 1.7, 2.0" target="0, 0, 0" up="0, 1, 0"/>
        </transform>
        <emitter type="area">
            <rgb name="radiance" value="{light}, {light}, {light}"/>
        </emitter>
    </shape>
    <shape type="rectangle" id="plane">
        <ref id="plane_bsdf"/>
    </shape>
</scene>
"""


# ---- the scene and its photos ------------------------------------------------------------
def true_texture(n: int) -> np.ndarray:
    """A linear albedo map ``(n, n, 3)`` in [0.05, 0.9] with detail at several scales: a
    horizontal colour gradient, concentric rings, diagonal stripes and a small checkerboard."""
    t = (np.arange(n) + 0.5) / n
    u, v = np.meshgrid(t, t)
    radius = np.hypot(u - 0.4, v - 0.45)
    rings = 0.5 + 0.5 * np.cos(2 * np.pi * 5 * radius)
    stripes = 0.5 + 0.5 * np.tanh(4 * np.sin(2 * np.pi * 6 * (u + v)))
    checker = ((np.floor(u * n / 4) + np.floor(v * n / 4)) % 2).astype(float)
    corner = (u > 0.7) & (v > 0.7)
    r = 0.55 * u + 0.45 * rings
    g = stripes * (0.25 + 0.75 * v)
    b = (1 - rings) * (1 - 0.6 * u)
    rgb = np.stack([r, g, b], axis=-1)
    rgb[corner] = (0.1 + 0.8 * checker[corner])[:, None]
    return np.clip(0.05 + 0.85 * rgb, 0.05, 0.9).astype(np.float32)


def write_srgb_png(path: Path, linear: np.ndarray) -> None:
    """Write a linear ``(H, W, 3)`` image as an 8-bit sRGB PNG (values above 1 clip)."""
    bitmap = mi.Bitmap(np.ascontiguousarray(linear, dtype=np.float32))
    bitmap = bitmap.convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.UInt8, srgb_gamma=True)
    bitmap.write(str(path))


def build_scene(out: Path) -> Path:
    """Write the scene XML, the true texture and the uniform grey start texture into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sensors = "".join(sensor_xml(f"view{k}", o, t, 40) for k, (o, t) in enumerate(VIEWS))
    xml = SCENE_XML.format(
        res=IMG_RES, max_depth=MAX_DEPTH, sensors=sensors, env=ENV_RADIANCE, light=LIGHT_RADIANCE
    )
    (out / "scene.xml").write_text(xml)
    write_srgb_png(out / "texture.png", true_texture(TEX_RES))
    write_srgb_png(out / "grey.png", np.full((TEX_RES, TEX_RES, 3), 0.4, dtype=np.float32))
    return out / "scene.xml"


def take_photos(scene: mi.Scene, out: Path) -> list[Path]:
    """Render every view with Mitsuba's path tracer and save it as an 8-bit sRGB PNG."""
    paths = []
    for k in range(len(VIEWS)):
        img = pd.render(scene, "mitsuba:path", spp=PHOTO_SPP, seed=PHOTO_SEED + k, sensor=k)
        paths.append(out / f"photo{k}.png")
        write_srgb_png(paths[-1], img)
    return paths


def load_photos(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos linearized ``(N, H, W, 3)`` and a mask of their unclipped pixels
    ``(N, H, W, 1)`` (a pixel with a channel at 255 is left out of the loss)."""
    raw = np.stack([np.array(mi.Bitmap(str(p)))[..., :3] for p in paths])
    linear = srgb_to_linear(raw.astype(np.float32) / 255.0)
    mask = (raw < 255).all(axis=-1, keepdims=True).astype(np.float32)
    return torch.from_numpy(linear), torch.from_numpy(mask)


def scene_texture(scene: mi.Scene) -> np.ndarray:
    """The albedo map the scene holds, ``(H, W, 3)``."""
    return np.array(mi.traverse(scene)[KEY], dtype=np.float32)


# ---- the network -------------------------------------------------------------------------
class NeuralTexture(torch.nn.Module):
    """Random Fourier features of (u, v), then an MLP with a sigmoid RGB output."""

    def __init__(self, features: int = 64, scale: float = 6.0, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(2, features) * scale)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(2 * features, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 3),
        )

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        """RGB albedo in (0, 1) at the coordinates ``uv`` ``(..., 2)``."""
        phase = 2 * math.pi * uv @ self.freqs
        return torch.sigmoid(self.mlp(torch.cat([phase.sin(), phase.cos()], dim=-1)))


def texel_coords(n: int) -> torch.Tensor:
    """The centres of an ``n`` x ``n`` texel grid in [0, 1]^2, ``(n, n, 2)``."""
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    v, u = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u, v], dim=-1)


# ---- training and measurement ------------------------------------------------------------
def seen_texels(scene: mi.Scene, views: list[int]) -> np.ndarray:
    """``(H, W)`` bool: texels whose value changes some pixel of some view (a nonzero
    gradient of the summed images)."""
    tex = torch.full((TEX_RES, TEX_RES, 3), 0.5, requires_grad=True)
    pdt.render(scene, {KEY: tex}, integrator="prb", spp=16, seed=7, sensor=views).sum().backward()
    return (tex.grad.abs().sum(-1) > 0).numpy()


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean square difference of ``a`` and ``b`` (over ``mask``'s true entries)."""
    diff2 = (np.asarray(a, dtype=np.float64) - b) ** 2
    if mask is None:
        return float(np.sqrt(diff2.mean()))
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), diff2.shape)
    return float(np.sqrt(diff2[mask].mean()))


def plateaued(losses: list[float], window: int = WINDOW, tol: float = LOSS_TOL) -> bool:
    """True once the mean loss of the last ``window`` iterations is within ``tol`` (relative)
    of the mean of the ``window`` before it."""
    if len(losses) < 2 * window:
        return False
    last, before = np.mean(losses[-window:]), np.mean(losses[-2 * window : -window])
    return bool(last > (1 - tol) * before)


def train(
    scene: mi.Scene,
    net: NeuralTexture,
    targets: torch.Tensor,
    mask: torch.Tensor,
    args: argparse.Namespace,
) -> list[float]:
    """Fit ``net`` so that the renders of its texture match ``targets``; the losses.

    Stops early when the loss has plateaued *and* the texture moved by less than
    ``MOVE_TOL`` (RMS) over the last ``WINDOW`` iterations: at 8 spp the loss soon sits on
    its Monte Carlo noise floor while the texture still improves."""
    uv = texel_coords(TEX_RES)
    views = list(range(len(targets)))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.iters, eta_min=args.lr / 10)
    losses: list[float] = []
    with torch.no_grad():
        previous = net(uv)
    start = time.perf_counter()
    for it in range(args.iters):
        opt.zero_grad()
        tex = net(uv)
        seed = 3 * it  # view k uses seed + k: no seed is reused
        img = pdt.render(scene, {KEY: tex}, integrator="prb", spp=args.spp, seed=seed, sensor=views)
        loss = (((img - targets) ** 2) * mask).sum() / (3 * mask.sum())
        loss.backward()
        opt.step()
        decay.step()
        losses.append(loss.item())
        if (it + 1) % WINDOW == 0:
            moved = float(((tex.detach() - previous) ** 2).mean().sqrt())
            previous = tex.detach()
            per_it = (time.perf_counter() - start) / (it + 1)
            print(
                f"it {it + 1:4d}  loss {np.mean(losses[-WINDOW:]):.3e} (mean of {WINDOW})  "
                f"texture moved {moved:.4f}  {per_it:.3f} s/it",
                flush=True,
            )
            if plateaued(losses) and moved < MOVE_TOL:
                print(f"stopping: loss and texture plateaued at iteration {it + 1}", flush=True)
                break
    return losses


def render_views(scene: mi.Scene, tex: np.ndarray, spp: int = EVAL_SPP) -> np.ndarray:
    """Renders ``(N, H, W, 3)`` of every view with the albedo map ``tex`` (no gradient)."""
    with torch.no_grad():
        views = list(range(len(VIEWS)))
        img = pdt.render(scene, {KEY: torch.from_numpy(tex)}, spp=spp, seed=12345, sensor=views)
    return img.numpy()


# ---- the figure --------------------------------------------------------------------------
def figure(panels: dict[str, np.ndarray], losses: list[float], path: Path) -> None:
    """Two rows of three square panels: the images of ``panels`` (linear, shown as sRGB) and,
    last, the loss curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(7.2, 5.0), layout="constrained")
    for ax, (title, img) in zip(axes.flat, panels.items()):
        ax.imshow(linear_to_srgb(img), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes.flat[len(panels)]
    ax.semilogy(losses, lw=0.6)
    ax.set_box_aspect(1)
    ax.set_title("loss (MSE, 3 views)", fontsize=8)
    ax.set_xlabel("iteration", fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    """Build the scene and photos, train the neural texture, report, draw the figure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "out" / "neural_texture")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--spp", type=int, default=8)
    ap.add_argument("--scale", type=float, default=6.0, help="Fourier feature scale")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "images" / "torch")
    args = ap.parse_args()
    torch.manual_seed(0)

    path = build_scene(args.out)
    photo_scene = pd.load_scene(path)
    paths = take_photos(photo_scene, args.out)
    truth = scene_texture(photo_scene)
    targets, mask = load_photos(paths)
    print(f"photos: max {float(targets.max()):.3f}, clipped pixels {int((mask == 0).sum())}")

    scene = pd.load_scene(path, texture="grey.png")
    seen = seen_texels(scene, list(range(len(VIEWS))))
    net = NeuralTexture(scale=args.scale)
    uv = texel_coords(TEX_RES)
    with torch.no_grad():
        initial = net(uv).numpy()
    start = time.perf_counter()
    losses = train(scene, net, targets, mask, args)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        final = net(uv).numpy()

    photos = targets.numpy()
    view_mask = mask.numpy()
    before, after = render_views(scene, initial), render_views(scene, final)
    reference = render_views(scene, truth)  # the floor: noise and 8-bit quantization
    result = {
        "iterations": len(losses),
        "seconds": round(seconds, 1),
        "seconds_per_iteration": round(seconds / len(losses), 3),
        "spp": args.spp,
        "lr": args.lr,
        "texels_seen": int(seen.sum()),
        "texels": TEX_RES * TEX_RES,
        "texture_rmse_initial": rmse(initial, truth, seen[..., None]),
        "texture_rmse_final": rmse(final, truth, seen[..., None]),
        "view_rmse_initial": [rmse(b, p, m) for b, p, m in zip(before, photos, view_mask)],
        "view_rmse_final": [rmse(a, p, m) for a, p, m in zip(after, photos, view_mask)],
        "view_rmse_true_texture": [rmse(r, p, m) for r, p, m in zip(reference, photos, view_mask)],
        "eval_spp": EVAL_SPP,
        "loss_first": losses[0],
        "loss_last": float(np.mean(losses[-10:])),
        "losses": [float(f"{x:.4e}") for x in losses],
    }
    print_table(result)
    args.figure.mkdir(parents=True, exist_ok=True)
    (args.figure / "neural_texture.json").write_text(json.dumps(result, indent=1) + "\n")
    panels = {
        "true texture": truth,
        "initial MLP texture": initial,
        f"MLP texture, it {len(losses)}": final,
        "photo (view 0, 8-bit sRGB)": photos[0],
        "final render (view 0)": after[0],
    }
    figure(panels, losses, args.figure / "neural_texture.png")
    print(f"wrote {args.figure / 'neural_texture.png'} and neural_texture.json")


def print_table(r: dict) -> None:
    """The texture and per-view RMSE before and after training, as a small table."""
    print(f"\n{r['iterations']} iterations, {r['seconds']} s ({r['seconds_per_iteration']} s/it)")
    print(f"{'RMSE (linear)':<28}{'initial':>10}{'final':>10}{'true tex':>10}")
    seen = f"texture ({r['texels_seen']}/{r['texels']} texels)"
    print(f"{seen:<28}{r['texture_rmse_initial']:>10.4f}{r['texture_rmse_final']:>10.4f}")
    rows = zip(r["view_rmse_initial"], r["view_rmse_final"], r["view_rmse_true_texture"])
    for k, (a, b, c) in enumerate(rows):
        label = f"view {k} image ({r['eval_spp']} spp)"
        print(f"{label:<28}{a:>10.4f}{b:>10.4f}{c:>10.4f}")


if __name__ == "__main__":
    main()
