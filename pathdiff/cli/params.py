"""``pathdiff params``: the differentiable parameters of a scene and its rigid ParamSpecs."""

from __future__ import annotations

from .common import load_scene_from_args, scene_arguments


def add_parser(sub):
    p = sub.add_parser("params", help="list the differentiable parameters of a scene")
    scene_arguments(p, depth=False)
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    import pathdiff
    from pathdiff.scene import rigid_specs

    scene = load_scene_from_args(args)
    rows = pathdiff.list_params(scene)
    width = max(len(k) for k, _, _ in rows) if rows else 10
    print(f"{'parameter':{width}s}  {'type':10s} {'size':>8s}")
    for key, kind, size in rows:
        print(f"{key:{width}s}  {kind:10s} {size:8d}")
    rigid = rigid_specs(scene)
    sensors = {s.id() for s in scene.sensors()}
    meshes = [n for n in dict.fromkeys(s.split(".")[0] for s in rigid) if n not in sensors]
    cameras = [n for n in dict.fromkeys(s.split(".")[0] for s in rigid) if n in sensors]
    if meshes:
        print("\nrigid ParamSpecs (triangle meshes):")
        for shape in meshes:
            print(f"  {shape}.translate.x|y|z  {shape}.rotate.x|y|z  {shape}.scale")
    if cameras:
        print("\ncamera ParamSpecs (perspective sensors; degrees for rotate and fov):")
        for cam in cameras:
            print(f"  {cam}.translate.x|y|z  {cam}.rotate.x|y|z  {cam}.fov")
    return 0
