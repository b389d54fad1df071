"""The ``meta.json`` document of a sample."""

from __future__ import annotations

REQUIRED_META_KEYS = (
    "character_id",
    "motion_id",
    "num_views",
    "num_frames",
    "resolution",
    "fps",
    "joint_names",
    "source_times",
)

