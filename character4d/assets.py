"""What a character or motion file holds, read without Blender: suffixes, errors, VRM humanoid tables.

`character4d.blender.character` imports files into Blender; everything here works on the file itself
or on plain bone-name lists, so it is tested without Blender.
"""

from __future__ import annotations

from pathlib import Path

from character4d.skeleton import REQUIRED_BONES, SkeletonMap, UnmappableSkeletonError, map_skeleton

CHARACTER_SUFFIXES = (".glb", ".gltf", ".vrm", ".fbx", ".obj")
MOTION_SUFFIXES = (".fbx", ".bvh")

# Standing height range of DESIGN.md section 4; characters outside it are scaled into it.
HEIGHT_RANGE = (1.6, 1.9)


class AssetError(ValueError):
    """An input file cannot be used; the message names the file and the problem."""


def read_vrm_humanoid(path: str | Path) -> tuple[str, dict[str, str]] | None:
    """The humanoid bone map stored in a VRM file, as canonical -> node name.

    VRM 0.x keeps it in ``extensions.VRM.humanoid.humanBones`` (a list of ``{bone, node}``), VRM 1.0 in
    ``extensions.VRMC_vrm.humanoid.humanBones`` (``{bone: {node}}``). VRM 0.x thumbs are named
    Proximal/Intermediate/Distal, which VRM 1.0 (our canonical set) calls Metacarpal/Proximal/Distal.

    Args:
        path: a .vrm (or .glb) file.

    Returns:
        (convention "vrm0"/"vrm1", mapping) or None when the file carries no VRM humanoid.

    Raises:
        AssetError: when the file is not a readable glTF binary.
    """
    import pygltflib

    try:
        with open(path, "rb") as fh:
            binary = fh.read(4) == b"glTF"
        # pygltflib picks the parser from the suffix, which a .vrm does not tell it.
        gltf = pygltflib.GLTF2().load_binary(str(path)) if binary else pygltflib.GLTF2().load_json(str(path))
    except Exception as exc:  # pygltflib raises assorted errors on corrupt input
        raise AssetError(f"{path}: not a readable glTF/VRM file ({exc})") from exc
    ext = gltf.extensions or {}
    nodes = gltf.nodes or []

    def node_name(i: int) -> str:
        return nodes[i].name or f"node{i}"

    thumb_0x = {"ThumbProximal": "ThumbMetacarpal", "ThumbIntermediate": "ThumbProximal",
                "ThumbDistal": "ThumbDistal"}
    if "VRMC_vrm" in ext:
        bones = ext["VRMC_vrm"].get("humanoid", {}).get("humanBones", {})
        return "vrm1", {b: node_name(v["node"]) for b, v in bones.items() if "node" in v}
    if "VRM" in ext:
        out = {}
        for entry in ext["VRM"].get("humanoid", {}).get("humanBones", []):
            bone, node = entry.get("bone"), entry.get("node")
            if bone is None or node is None or node < 0:
                continue
            for old, new in thumb_0x.items():
                if bone.endswith(old):
                    bone = bone[: -len(old)] + new
            out[bone] = node_name(node)
        return "vrm0", out
    return None


def map_bones(names: list[str], parents: list[str | None], path: Path) -> SkeletonMap:
    """Map a skeleton onto the canonical humanoid; a VRM humanoid table in the file wins when complete.

    Args:
        names: bone names.
        parents: parent name of each bone (None for roots).
        path: the file (its VRM/glTF extensions are read when present).

    Returns:
        The mapping.

    Raises:
        AssetError: when the skeleton is not a humanoid we can map (names the missing bones).
    """
    vrm = read_vrm_humanoid(path) if path.suffix.lower() in (".vrm", ".glb", ".gltf") else None
    if vrm is not None:
        convention, table = vrm
        bones = {c: n for c, n in table.items() if n in names}
        if all(b in bones for b in REQUIRED_BONES):
            used = set(bones.values())
            return SkeletonMap(convention, bones, tuple(n for n in names if n not in used))
    try:
        return map_skeleton(names, parents)
    except UnmappableSkeletonError as exc:
        raise AssetError(f"{path}: skeleton cannot be mapped onto the humanoid: {exc}") from exc
