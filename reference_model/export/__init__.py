"""Exports of 4D characters that people can open outside the research code.

- ``viewer``: ``charactershot view`` - a self-contained web page that plays a ``.ply`` splat sequence.
- ``mesh``: ``charactershot export-mesh`` - an animated glTF mesh from a fitted 4D Gaussian model.
- ``rig``: ``charactershot export-rig`` - a skeletal animation of a character from 3D joints (BVH + GLB).
- ``ik``: the inverse kinematics behind ``export-rig`` (numpy only).

Nothing here imports bpy or torch at import time; the Blender side lives in ``blender_rig`` and runs in a
worker subprocess.
"""
