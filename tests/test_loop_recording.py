"""The shared path loop is recorded once per call.

Dr.Jit records a symbolic loop's body a second time when a loop state variable comes out of
it unchanged (to drop that variable), and recording is Python tracing: on a small render it
was a third of a boundary derivative's time (``docs/benchmarks.md``, forward section). The
loop therefore excludes its read-only inputs, captures the rays' time, traverses only its
generators' state and turns the invariant-variable optimization off when the body ends.
These tests count the recordings of each loop; a plain loop with an unchanged state
variable is the negative control (recorded twice).
"""

from __future__ import annotations

import drjit as dr
import pytest
from conftest import scene_path


@pytest.fixture
def recordings(monkeypatch):
    """``(label, number of body recordings)`` of every ``dr.while_loop`` call."""
    calls: list[list] = []
    original = dr.while_loop

    def while_loop(state, cond, body, labels=(), label=None, **kwargs):
        call = [label, 0]
        calls.append(call)

        def counted(*args):
            call[1] += 1
            return body(*args)

        return original(state, cond, counted, labels, label=label, **kwargs)

    monkeypatch.setattr(dr, "while_loop", while_loop)
    return calls


def test_negative_control_unchanged_state_is_recorded_twice(pd, recordings):
    import mitsuba as mi

    i, unchanged = mi.UInt32(0, 1, 2), mi.Float(1, 2, 3)
    dr.while_loop((i, unchanged), lambda i, u: i < 4, lambda i, u: (i + 1, u), label="control")
    assert recordings == [["control", 2]]


@pytest.mark.parametrize("integrator", ["path", "prb", "edge"])
def test_path_loop_recorded_once(pd, recordings, integrator):
    scene = pd.load_scene(scene_path("shadow"), res=8)
    if integrator == "path":
        pd.render(scene, integrator, spp=1)
    else:  # the primal, the replay and (edge) the nested loops of the boundary samples
        pd.derivative(scene, "occluder.translate.x", integrator, spp=1)
    loops = [n for label, n in recordings if label and label.startswith("pathdiff")]
    assert len(loops) >= (1 if integrator == "path" else 2), recordings
    assert all(n == 1 for n in loops), recordings
