"""Scenes: loading Mitsuba XML, listing differentiable parameters, writing an optimized scene
back to XML. ParamSpecs (scalar θ bound into the scene) live in :mod:`pathdiff.specs` and are
re-exported here."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET

import drjit as dr
import mitsuba as mi
import numpy as np

from .params import scene_params


class SceneError(RuntimeError):
    """A problem with the user's scene or parameter names; the message is one line."""


def load_scene(
    path: str | os.PathLike, res: int | None = None, spp: int | None = None, **xml_params
) -> mi.Scene:
    """Load a Mitsuba XML scene; ``res``, ``spp`` and ``xml_params`` set its ``$`` defaults.

    Shapes and BSDFs are not merged (``optimize=False``) so that every XML id stays a
    parameter key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SceneError(f"scene file not found: {path}")
    try:
        ET.parse(path)
    except ET.ParseError as e:
        line, col = e.position
        raise SceneError(f"malformed XML in {path}, line {line}, column {col}: {e.msg}") from e
    if res is not None:
        xml_params["res"] = res
    if spp is not None:
        xml_params["spp"] = spp
    xml_params = {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in xml_params.items()
    }
    try:
        return mi.load_file(path, optimize=False, **xml_params)
    except Exception as e:
        raise SceneError(_condense(path, e)) from e


def _condense(path: str, e: Exception) -> str:
    """Mitsuba's (possibly multi-line) loader error as one line naming the file."""
    msg = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip()) or type(e).__name__
    msg = re.sub(r"^\[[\w.]+:\d+\]\s*", "", msg)
    m = re.match(r"(?:At|(?:Error while|While) loading) (.+?) (\(line \d+, col \d+\)):?\s*", msg)
    if m:
        return f"cannot load {m.group(1)} {m.group(2)}: {msg[m.end() :]}"
    return f"cannot load {path}: {msg}"


def _differentiable(params: mi.SceneParameters, key: str) -> bool:
    return not (params.flags(key) & int(mi.ParamFlags.NonDifferentiable))


def _size(value) -> int:
    return (
        int(dr.prod(value.shape))
        if isinstance(value, mi.TensorXf)
        else dr.width(value) * (len(value) if dr.depth_v(value) > 1 else 1)
    )


def list_params(scene: mi.Scene) -> list[tuple[str, str, int]]:
    """Differentiable parameters as ``(key, type name, number of scalar components)``."""
    params = scene_params(scene)
    out = []
    for key in params.keys():
        if not _differentiable(params, key):
            continue
        value = params[key]
        if not dr.is_array_v(value) or _size(value) == 0:
            continue
        out.append((key, type(value).__name__, _size(value)))
    return out


def write_scene(
    scene: mi.Scene,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    keys: list[str],
    xml_params: dict | None = None,
) -> tuple[str, list[str]]:
    """Write the XML ``source`` with the scene's current values of ``keys`` to
    ``out_dir/scene.xml``; returns its path and the keys that have no place in the XML.

    Colours and floats are written in place, textures as EXR, moved meshes as PLY (in world
    space: their ``to_world`` is dropped). Every other file the scene references is copied
    beside it, so the directory is self-contained. ``xml_params`` (the ``$`` values the scene
    was loaded with) become the file's ``<default>`` values.
    """
    source, out = os.fspath(source), os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    tree = ET.parse(source)
    root = tree.getroot()
    xml_params = {k: str(v) for k, v in (xml_params or {}).items()}
    for d in root.iter("default"):
        if d.get("name") in xml_params:
            d.set("value", xml_params[d.get("name")])
    defaults = {d.get("name"): d.get("value") for d in root.iter("default")}
    by_id = {e.get("id"): e for e in root.iter() if e.get("id") and e.tag != "ref"}
    params = scene_params(scene)
    meshes = {s.id(): s for s in scene.shapes() if s.is_mesh()}
    written, missing = set(), []
    for key in keys:
        found = _xml_element(by_id, key)
        done = None if found is None else _write_value(found, key, params, meshes, out)
        if done is not None:
            written.add(done)
        else:
            missing.append(key)
    base = os.path.dirname(os.path.abspath(source))
    for elem in root.iter("string"):
        if elem.get("name") != "filename" or elem in written:
            continue
        value = re.sub(r"\$(\w+)", lambda m: defaults.get(m[1], m[0]), elem.get("value"))
        path = os.path.join(base, value)
        if os.path.isfile(path):
            name = os.path.basename(path)
            if os.path.abspath(path) != os.path.abspath(os.path.join(out, name)):
                shutil.copy2(path, os.path.join(out, name))
            elem.set("value", name)
    xml = os.path.join(out, "scene.xml")
    ET.indent(tree, space="    ")
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return xml, missing


def _xml_element(by_id: dict, key: str) -> tuple[ET.Element, str] | None:
    """The element a ``mi.traverse`` key lives in (``ID.child.child...``) and the key's leaf."""
    parts = key.split(".")
    elem = by_id.get(parts[0])
    for part in parts[1:-1]:
        if elem is None:
            return None
        children = [by_id.get(c.get("id")) if c.tag == "ref" else c for c in elem]
        named = [c for c in children if c is not None and c.get("name") == part]
        unnamed = [c for c in children if c is not None and c.tag == part and not c.get("name")]
        elem = (named + unnamed + [None])[0]
    return (elem, parts[-1]) if elem is not None else None


def _filename_element(elem: ET.Element, value: str) -> ET.Element:
    """Set (or add) the ``<string name="filename">`` child of ``elem``."""
    node = next((c for c in elem if c.tag == "string" and c.get("name") == "filename"), None)
    if node is None:
        node = ET.SubElement(elem, "string", name="filename")
    node.set("value", value)
    return node


def _write_value(found, key, params, meshes, out) -> ET.Element | None:
    """Store the value of ``key`` in the XML (and a file); the element that took it."""
    elem, leaf = found
    value = params[key]
    if leaf in ("vertex_positions", "vertex_normals") and elem.tag == "shape":
        name = f"{elem.get('id')}_optimized.ply"
        meshes[elem.get("id")].write_ply(os.path.join(out, name))
        elem.set("type", "ply")
        for t in [c for c in elem if c.tag == "transform" and c.get("name") == "to_world"]:
            elem.remove(t)
        return _filename_element(elem, name)
    if elem.tag == "sensor" and leaf in ("to_world", "x_fov"):
        return _write_camera(elem, leaf, value)
    if leaf == "data" and elem.tag == "texture":
        from .images import write_image

        name = f"{'_'.join(key.split('.')[:-1])}.exr"
        write_image(os.path.join(out, name), np.array(value))
        return _filename_element(elem, name)
    if leaf != "value" or elem.tag not in ("rgb", "float", "spectrum"):
        elem = next((c for c in elem if c.get("name") == leaf and c.get("value")), None)
        if elem is None:
            return None
    elem.set("value", ", ".join(f"{x:.7g}" for x in np.array(value, dtype=np.float64).ravel()))
    return elem


def _write_camera(elem: ET.Element, leaf: str, value) -> ET.Element:
    """A sensor's pose (``to_world``: the transform's content becomes one ``<matrix>``) or
    horizontal field of view (``x_fov``: ``fov`` with ``fov_axis`` x)."""
    if leaf == "to_world":
        for t in [c for c in elem if c.tag == "transform" and c.get("name") == "to_world"]:
            elem.remove(t)
        node = ET.Element("transform", name="to_world")
        M = np.array(value.matrix, dtype=np.float64).reshape(4, 4)
        ET.SubElement(node, "matrix", value=" ".join(f"{x:.9g}" for x in M.ravel()))
        elem.insert(0, node)
        return node
    for c in [c for c in elem if c.get("name") in ("fov", "fov_axis", "focal_length")]:
        elem.remove(c)
    ET.SubElement(elem, "string", name="fov_axis", value="x")
    node = ET.Element("float", name="fov", value=f"{float(np.ravel(value)[0]):.9g}")
    elem.insert(0, node)
    return node


from .specs import ParamSpec, bind_specs, resolve_param, rigid_specs  # noqa: E402

__all__ = [
    "ParamSpec", "SceneError", "bind_specs", "list_params", "load_scene", "resolve_param",
    "rigid_specs", "write_scene",
]  # fmt: skip
