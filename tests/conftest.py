"""Shared fixtures: bundled scene paths and a small-scene loader."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENES = ["cbox", "shadow", "silhouette", "textured", "glossy", "bunny"]


def scene_path(name: str) -> str:
    return str(ROOT / "scenes" / name / "scene.xml")


@pytest.fixture(scope="session")
def pd():
    import pathdiff

    return pathdiff
