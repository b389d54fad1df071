"""Shared fixtures: where the third-party assets are, a per-session cache for the default data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
HAS_BPY = importlib.util.find_spec("bpy") is not None


def need_assets() -> Path:
    from tests.conftest import shared_assets  # skips without ../shared; fails under CI=true

    return shared_assets()


@pytest.fixture(scope="session")
def c4d_home(tmp_path_factory) -> Path:
    """A private CHARACTER4D_HOME so tests never touch the user's cache."""
    return tmp_path_factory.mktemp("c4d_home")


@pytest.fixture(scope="session")
def default_data(c4d_home):
    """The embedded default characters and motions, generated once per test session."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARACTER4D_HOME", str(c4d_home))
    from character4d.pipeline import default_inputs

    chars, motions = default_inputs()
    yield {p.stem: p for p in chars}, {p.stem: p for p in motions}
    mp.undo()
