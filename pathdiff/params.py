"""One traversal per scene: :func:`scene_params`.

``mi.traverse`` walks the whole scene graph; pathdiff used to call it again wherever it
needed a parameter. A ``mi.SceneParameters`` reads and writes the scene's values live (a
write through one object is seen through another), so one object per scene can be shared by
every caller. Scenes cannot be weakly referenced, so the last few are kept by identity.
"""

from __future__ import annotations

import mitsuba as mi

#: traversed scenes, oldest first: id(scene) -> (scene, its parameters)
_TRAVERSED: dict[int, tuple[mi.Scene, mi.SceneParameters]] = {}
#: how many scenes are kept (each keeps its scene alive)
KEEP = 8


def scene_params(scene: mi.Scene) -> mi.SceneParameters:
    """The parameters of ``scene``, traversed once per scene object."""
    entry = _TRAVERSED.pop(id(scene), None)
    if entry is None or entry[0] is not scene:
        entry = (scene, mi.traverse(scene))
    _TRAVERSED[id(scene)] = entry  # most recent last
    while len(_TRAVERSED) > KEEP:
        del _TRAVERSED[next(iter(_TRAVERSED))]
    return entry[1]
