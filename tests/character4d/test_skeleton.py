"""Tests of character4d.skeleton: the canonical humanoid and the mapping of real and synthetic skeletons."""

from pathlib import Path

import pytest

from character4d.skeleton import (
    BODY_BONES,
    CONVENTIONS,
    FACE_POINTS,
    FINGER_BONES,
    JOINT_NAMES,
    PARENTS,
    REQUIRED_BONES,
    SkeletonMap,
    UnmappableSkeletonError,
    describe_mapping,
    map_skeleton,
)

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"


# The armature of the CMU FBX clips motions/91_48.fbx and 91_50.fbx (read from the files' Model/LimbNode
# records and their connections); each entry is (bone, parent).
CMU_FBX_BONES = [
    ("hip", None), ("abdomen", "hip"), ("chest", "abdomen"), ("neck", "chest"), ("head", "neck"),
    ("leftEye", "head"), ("rightEye", "head"), ("rCollar", "chest"), ("rShldr", "rCollar"),
    ("rForeArm", "rShldr"), ("rHand", "rForeArm"), ("rThumb1", "rHand"), ("rThumb2", "rThumb1"),
    ("rIndex1", "rHand"), ("rIndex2", "rIndex1"), ("rMid1", "rHand"), ("rMid2", "rMid1"), ("rRing1", "rHand"),
    ("rRing2", "rRing1"), ("rPinky1", "rHand"), ("rPinky2", "rPinky1"), ("lCollar", "chest"),
    ("lShldr", "lCollar"), ("lForeArm", "lShldr"), ("lHand", "lForeArm"), ("lThumb1", "lHand"),
    ("lThumb2", "lThumb1"), ("lIndex1", "lHand"), ("lIndex2", "lIndex1"), ("lMid1", "lHand"),
    ("lMid2", "lMid1"), ("lRing1", "lHand"), ("lRing2", "lRing1"), ("lPinky1", "lHand"), ("lPinky2", "lPinky1"),
    ("rButtock", "hip"), ("rThigh", "rButtock"), ("rShin", "rThigh"), ("rFoot", "rShin"), ("lButtock", "hip"),
    ("lThigh", "lButtock"), ("lShin", "lThigh"), ("lFoot", "lShin"),
]  # fmt: skip


def _mixamo_names(prefix: str = "mixamorig:") -> list[str]:
    names = ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End"]
    for side in ("Left", "Right"):
        limbs = ("Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase", "Toe_End")
        names += [f"{side}{b}" for b in limbs]
        for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky"):
            names += [f"{side}Hand{finger}{n}" for n in (1, 2, 3, 4)]
    return [prefix + n for n in names]


# ----- the canonical humanoid ---------------------------------------------------------------------


def test_canonical_tables():
    assert len(BODY_BONES) == 22 and BODY_BONES[:6] == ("hips", "spine", "chest", "upperChest", "neck", "head")
    assert set(REQUIRED_BONES) <= set(BODY_BONES) and len(REQUIRED_BONES) == 15
    assert len(FINGER_BONES) == 30
    assert FINGER_BONES[:4] == ("leftThumbMetacarpal", "leftThumbProximal", "leftThumbDistal", "leftIndexProximal")
    assert FINGER_BONES[-1] == "rightLittleDistal"
    assert FACE_POINTS == ("nose", "leftEye", "rightEye", "leftEar", "rightEar")
    assert len(JOINT_NAMES) == 22 + 5 + 40 and len(set(JOINT_NAMES)) == len(JOINT_NAMES)
    assert JOINT_NAMES[27:31] == ("leftThumbMetacarpal", "leftThumbProximal", "leftThumbDistal", "leftThumbTip")
    assert JOINT_NAMES[-1] == "rightLittleTip"
    for bone in BODY_BONES + FINGER_BONES:
        assert bone in PARENTS
    assert PARENTS["hips"] is None and PARENTS["leftUpperArm"] == "leftShoulder"
    assert PARENTS["leftIndexProximal"] == "leftHand" and PARENTS["leftThumbDistal"] == "leftThumbProximal"


# ----- real assets --------------------------------------------------------------------------------


def _glb_skeleton(path: Path) -> tuple[list[str], list[str | None]]:
    pygltflib = pytest.importorskip("pygltflib")
    gltf = pygltflib.GLTF2().load(str(path))
    parent = {c: i for i, node in enumerate(gltf.nodes) for c in (node.children or [])}
    joints = gltf.skins[0].joints
    return [gltf.nodes[j].name for j in joints], [gltf.nodes[parent[j]].name if j in parent else None for j in joints]


@pytest.mark.parametrize(
    "filename, convention, num_bones",
    [("human-male.glb", "unreal", 52), ("human-zombie.glb", "unreal", 34), ("human-kenney.glb", "mixamo", 32)],
)
def test_real_characters_map(filename, convention, num_bones):
    from tests.conftest import shared_assets  # skips without ../shared; fails under CI=true

    names, parents = _glb_skeleton(shared_assets() / "characters" / filename)
    mapping = map_skeleton(names, parents)
    assert mapping.convention == convention
    assert len(mapping.bones) == num_bones
    if convention == "unreal":
        expected = {"hips": "pelvis", "spine": "spine_01", "chest": "spine_02", "upperChest": "spine_03",
                    "neck": "neck_01", "leftShoulder": "clavicle_l", "leftUpperArm": "upperarm_l",
                    "rightLowerLeg": "calf_r", "leftToes": "ball_l", "leftThumbMetacarpal": "thumb_01_l",
                    "rightIndexDistal": "index_03_r"}  # fmt: skip
        assert "root" in mapping.unmapped and "head_leaf" in mapping.unmapped
    else:
        expected = {"hips": "Hips", "spine": "Spine", "chest": "Chest", "upperChest": "UpperChest",
                    "leftUpperArm": "LeftArm", "leftLowerArm": "LeftForeArm", "leftUpperLeg": "LeftUpLeg",
                    "leftLowerLeg": "LeftLeg", "rightToes": "RightToes", "leftThumbMetacarpal": "LeftHandThumb1",
                    "leftThumbProximal": "LeftHandThumb2", "rightIndexProximal": "RightHandIndex1"}  # fmt: skip
    assert {k: mapping.bones.get(k) for k in expected} == expected


def test_cmu_fbx_skeleton_maps():
    names = [n for n, _ in CMU_FBX_BONES]
    mapping = map_skeleton(names, dict(CMU_FBX_BONES))
    assert mapping.convention == "cmu"
    expected = {"hips": "hip", "spine": "abdomen", "chest": "chest", "neck": "neck", "head": "head",
                "leftShoulder": "lCollar", "leftUpperArm": "lShldr", "leftLowerArm": "lForeArm", "leftHand": "lHand",
                "rightUpperLeg": "rThigh", "rightLowerLeg": "rShin", "rightFoot": "rFoot", "leftEye": "leftEye",
                "leftThumbMetacarpal": "lThumb1", "leftMiddleIntermediate": "lMid2",
                "rightLittleProximal": "rPinky1"}  # fmt: skip
    assert {k: mapping.bones.get(k) for k in expected} == expected
    assert "upperChest" not in mapping.bones and "leftToes" not in mapping.bones
    assert set(mapping.unmapped) == {"lButtock", "rButtock"}
    # Without the missing upperChest, the shoulders hang from the chest.
    assert mapping.parent_of("leftShoulder") == "chest"


# ----- synthetic conventions ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["mixamorig:", "mixamorig1:", "mixamorig12:", "", "Armature|mixamorig:", "rig:"])
def test_mixamo_with_any_prefix(prefix):
    mapping = map_skeleton(_mixamo_names(prefix))
    assert mapping.convention == "mixamo"
    assert mapping.bones["hips"] == f"{prefix}Hips"
    assert (mapping.bones["spine"], mapping.bones["chest"], mapping.bones["upperChest"]) == tuple(
        f"{prefix}{n}" for n in ("Spine", "Spine1", "Spine2")
    )
    assert mapping.bones["rightLowerArm"] == f"{prefix}RightForeArm"
    assert mapping.bones["leftLowerLeg"] == f"{prefix}LeftLeg"
    assert mapping.bones["leftToes"] == f"{prefix}LeftToeBase"
    assert mapping.bones["leftThumbMetacarpal"] == f"{prefix}LeftHandThumb1"
    assert mapping.bones["leftLittleDistal"] == f"{prefix}LeftHandPinky3"
    assert len(mapping.bones) == 22 + 30
    assert mapping.canonical_of(f"{prefix}LeftArm") == "leftUpperArm"
    assert mapping.canonical_of(f"{prefix}HeadTop_End") is None


def test_humanik_character_prefix():
    names = [n.replace("mixamorig:", "Character1_") for n in _mixamo_names()]
    mapping = map_skeleton(names)
    assert mapping.convention == "mixamo"
    assert mapping.bones["leftUpperArm"] == "Character1_LeftArm"
    assert mapping.bones["hips"] == "Character1_Hips"


def _vrm_names(thumbs: tuple[str, str, str]) -> list[str]:
    names = list(BODY_BONES)
    for side in ("left", "right"):
        names += [f"{side}Thumb{t}" for t in thumbs]
        for finger in ("Index", "Middle", "Ring", "Little"):
            names += [f"{side}{finger}{p}" for p in ("Proximal", "Intermediate", "Distal")]
    return names


def test_vrm1_and_vrm0_thumbs():
    vrm1 = map_skeleton(_vrm_names(("Metacarpal", "Proximal", "Distal")))
    assert vrm1.convention == "vrm1"
    assert vrm1.bones["leftThumbMetacarpal"] == "leftThumbMetacarpal"
    assert all(vrm1.bones[b] == b for b in BODY_BONES + FINGER_BONES)
    vrm0 = map_skeleton(_vrm_names(("Proximal", "Intermediate", "Distal")))
    assert vrm0.convention == "vrm0"
    assert vrm0.bones["leftThumbMetacarpal"] == "leftThumbProximal"
    assert vrm0.bones["leftThumbProximal"] == "leftThumbIntermediate"
    assert vrm0.bones["rightThumbDistal"] == "rightThumbDistal"
    assert len(vrm0.bones) == 52


def test_vroid_names():
    names = ["Root", "J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest", "J_Bip_C_Neck",
             "J_Bip_C_Head", "J_Adj_L_FaceEye", "J_Adj_R_FaceEye"]  # fmt: skip
    for s in ("L", "R"):
        limbs = ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "ToeBase")
        names += [f"J_Bip_{s}_{b}" for b in limbs]
        names += [f"J_Bip_{s}_{f}{n}" for f in ("Thumb", "Index", "Middle", "Ring", "Little") for n in (1, 2, 3)]
        names += [f"J_Sec_{s}_Bust1", f"J_Bip_{s}_Index3_end"]
    mapping = map_skeleton(names)
    assert mapping.convention == "vroid"
    assert mapping.bones["upperChest"] == "J_Bip_C_UpperChest"
    assert mapping.bones["rightLowerArm"] == "J_Bip_R_LowerArm"
    assert mapping.bones["leftThumbMetacarpal"] == "J_Bip_L_Thumb1"
    assert mapping.bones["leftLittleIntermediate"] == "J_Bip_L_Little2"
    assert mapping.bones["leftEye"] == "J_Adj_L_FaceEye"
    assert len(mapping.bones) == 54


def _unreal_names(num_spine: int) -> list[str]:
    names = ["root", "pelvis"] + [f"spine_{i:02d}" for i in range(1, num_spine + 1)] + ["neck_01", "neck_02", "head"]
    for s in ("l", "r"):
        names += [f"{b}_{s}" for b in ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball")]
        names += [f"upperarm_twist_01_{s}", f"ik_hand_{s}", f"index_metacarpal_{s}"]
    return names


def test_unreal_ue5_spine_chain():
    mapping = map_skeleton(_unreal_names(5))
    assert mapping.convention == "unreal"
    assert [mapping.bones[b] for b in ("spine", "chest", "upperChest")] == ["spine_01", "spine_03", "spine_05"]
    assert mapping.bones["neck"] == "neck_01"
    assert mapping.bones["leftHand"] == "hand_l"  # not ik_hand_l
    assert mapping.bones["rightUpperArm"] == "upperarm_r"  # not the twist bone
    ue4 = map_skeleton(_unreal_names(3))
    assert (ue4.bones["spine"], ue4.bones["chest"], ue4.bones["upperChest"]) == ("spine_01", "spine_02", "spine_03")


def test_cmu_bvh_variant():
    names = ["Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"]
    for s in ("Left", "Right"):
        limbs = ("Shoulder", "Arm", "ForeArm", "Hand", "FingerBase", "HandIndex1", "UpLeg", "Leg", "Foot", "ToeBase")
        names += [f"{s}{b}" for b in limbs]
    mapping = map_skeleton(names)
    assert mapping.convention == "cmu_bvh"
    assert [mapping.bones[b] for b in ("spine", "chest", "upperChest")] == ["LowerBack", "Spine", "Spine1"]
    assert mapping.bones["neck"] == "Neck" and mapping.bones["leftToes"] == "LeftToeBase"
    assert mapping.bones["leftIndexProximal"] == "LeftHandIndex1"


# ----- heuristic ----------------------------------------------------------------------------------


def test_heuristic_biped_names_with_hierarchy():
    bones = [("Bip01", None), ("Bip01 Pelvis", "Bip01"), ("Bip01 Spine", "Bip01 Pelvis"),
             ("Bip01 Spine1", "Bip01 Spine"), ("Bip01 Spine2", "Bip01 Spine1"), ("Bip01 Neck", "Bip01 Spine2"),
             ("Bip01 Head", "Bip01 Neck"), ("Bip01 HeadNub", "Bip01 Head")]  # fmt: skip
    for s in ("L", "R"):
        bones += [(f"Bip01 {s} Clavicle", "Bip01 Neck"), (f"Bip01 {s} UpperArm", f"Bip01 {s} Clavicle"),
                  (f"Bip01 {s} Forearm", f"Bip01 {s} UpperArm"), (f"Bip01 {s} Hand", f"Bip01 {s} Forearm"),
                  (f"Bip01 {s} Thigh", "Bip01 Pelvis"), (f"Bip01 {s} Calf", f"Bip01 {s} Thigh"),
                  (f"Bip01 {s} Foot", f"Bip01 {s} Calf"), (f"Bip01 {s} Toe0", f"Bip01 {s} Foot")]  # fmt: skip
    mapping = map_skeleton([b for b, _ in bones], dict(bones))
    assert mapping.convention == "heuristic"
    expected = {"hips": "Bip01 Pelvis", "spine": "Bip01 Spine", "chest": "Bip01 Spine1", "upperChest": "Bip01 Spine2",
                "neck": "Bip01 Neck", "head": "Bip01 Head", "leftShoulder": "Bip01 L Clavicle",
                "leftUpperArm": "Bip01 L UpperArm", "rightLowerArm": "Bip01 R Forearm", "leftUpperLeg": "Bip01 L Thigh",
                "leftLowerLeg": "Bip01 L Calf", "rightToes": "Bip01 R Toe0"}  # fmt: skip
    assert {k: mapping.bones.get(k) for k in expected} == expected


def test_heuristic_blender_side_suffixes_and_joint_style_names():
    names = ["Armature|hips", "spine", "chest", "neck", "head"]
    for s in ("L", "R"):
        names += [f"shoulder.{s}", f"upper_arm.{s}", f"forearm.{s}", f"hand.{s}", f"thigh.{s}", f"shin.{s}",
                  f"foot.{s}", f"toe.{s}", f"thumb.01.{s}", f"thumb.02.{s}", f"thumb.03.{s}"]  # fmt: skip
    mapping = map_skeleton(names)
    assert mapping.convention == "heuristic"
    assert mapping.bones["leftUpperArm"] == "upper_arm.L" and mapping.bones["rightLowerLeg"] == "shin.R"
    assert mapping.bones["hips"] == "Armature|hips"
    assert mapping.bones["rightThumbMetacarpal"] == "thumb.01.R" and mapping.bones["rightThumbDistal"] == "thumb.03.R"
    # Shoulder/elbow/wrist and hip/knee/ankle joints (no clavicle): the shoulder is the upper arm.
    joints = ["Hips", "Spine", "Neck", "Head"] + [
        f"{s}{j}" for s in ("Left", "Right") for j in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
    ]
    mapping = map_skeleton(joints)
    assert mapping.convention == "heuristic"
    assert mapping.bones["leftUpperArm"] == "LeftShoulder" and "leftShoulder" not in mapping.bones
    assert mapping.bones["rightUpperLeg"] == "RightHip" and mapping.bones["rightFoot"] == "RightAnkle"


def test_heuristic_finds_unnamed_hips_from_hierarchy():
    bones = [("Root", None), ("Body", "Root"), ("Spine", "Body"), ("Head", "Spine")]
    for s in ("l", "r"):
        bones += [(f"{s}_UpperArm", "Spine"), (f"{s}_LowerArm", f"{s}_UpperArm"), (f"{s}_Wrist", f"{s}_LowerArm"),
                  (f"{s}_Thigh", "Body"), (f"{s}_Knee", f"{s}_Thigh"), (f"{s}_Foot", f"{s}_Knee")]  # fmt: skip
    mapping = map_skeleton([b for b, _ in bones], [p for _, p in bones])
    assert mapping.bones["hips"] == "Body"


# ----- errors and reports -------------------------------------------------------------------------


QUADRUPED = ["root", "spine", "spine1", "neck", "head", "tail", "tail1", "front_leg_l", "front_leg_r",
             "front_foot_l", "front_foot_r", "back_leg_l", "back_leg_r", "back_foot_l", "back_foot_r"]  # fmt: skip


def test_quadruped_is_unmappable_with_a_helpful_error():
    with pytest.raises(UnmappableSkeletonError) as info:
        map_skeleton(QUADRUPED)
    err = info.value
    assert isinstance(err, ValueError)
    assert {"leftUpperArm", "leftLowerArm", "leftHand", "rightHand"} <= set(err.missing)
    assert "spine" not in err.missing and err.found["spine"] == "spine"
    message = str(err)
    assert "leftUpperArm" in message and "closest source bones" in message and "mixamo" in message


def test_parents_validation():
    with pytest.raises(ValueError, match="parents"):
        map_skeleton(["a", "b"], [None])
    with pytest.raises(ValueError, match=r"parents\[1\]"):
        map_skeleton(["a", "b"], [-1, 7])
    with pytest.raises(TypeError, match="bone_names"):
        map_skeleton("Hips")


def test_describe_mapping():
    text = describe_mapping(_mixamo_names())
    assert "convention: mixamo" in text
    assert "leftUpperArm" in text and "mixamorig:LeftArm" in text
    assert "unmapped source bones (13): mixamorig:HeadTop_End, mixamorig:LeftToe_End" in text
    bad = describe_mapping(QUADRUPED)
    assert "UNMAPPABLE" in bad and "missing required bones" in bad


def test_skeleton_map_json_round_trip():
    mapping = map_skeleton(_mixamo_names())
    assert SkeletonMap.from_json(mapping.to_json()) == mapping
    assert set(CONVENTIONS) == {"vrm1", "vrm0", "vroid", "mixamo", "cmu_bvh", "unreal", "cmu", "heuristic"}


def test_heuristic_agrees_with_the_name_tables_on_real_skeletons():
    # The heuristic is the fallback for unknown conventions; on the known real skeletons it must
    # reproduce the tables' answer independently.
    from character4d.skeleton import _match_heuristic, _parent_map

    skeletons = [([n for n, _ in CMU_FBX_BONES], dict(CMU_FBX_BONES))]
    if ASSETS.is_dir():
        files = ("human-male.glb", "human-zombie.glb", "human-kenney.glb")
        skeletons += [_glb_skeleton(ASSETS / "characters" / f) for f in files]
    for names, parents in skeletons:
        assert _match_heuristic(names, _parent_map(names, parents)) == map_skeleton(names, parents).bones


def test_register_convention_maps_a_new_naming_scheme():
    from character4d.skeleton import register_convention, unregister_convention

    # A house naming scheme ("pelvis_jnt", "L_humerus_jnt", ...) that no built-in table knows and whose
    # anatomical words the heuristic does not read.
    sided = {"UpperArm": "humerus", "LowerArm": "radius", "Hand": "carpus", "UpperLeg": "femur",
             "LowerLeg": "tibia", "Foot": "tarsus"}
    table = {"hips": "pelvis_jnt", "spine": "lumbar_jnt", "head": "skull_jnt"}
    for side, token in (("left", "L"), ("right", "R")):
        table.update({f"{side}{role}": f"{token}_{word}_jnt" for role, word in sided.items()})
    names = list(table.values()) + ["prop_jnt"]
    with pytest.raises(UnmappableSkeletonError):
        map_skeleton(names)
    register_convention("studio", {**table, "head": ["cranium_jnt", "skull_jnt"]})
    try:
        assert "studio" in _conventions_now() and _conventions_now()[-1] == "heuristic"
        mapping = map_skeleton(["rig:" + n for n in names])
        assert mapping.convention == "studio"
        assert mapping.bones == {c: "rig:" + s for c, s in table.items()}
        assert mapping.unmapped == ("rig:prop_jnt",)
        with pytest.raises(ValueError, match="already registered"):
            register_convention("studio", table)
        register_convention("studio", table, replace=True)
    finally:
        unregister_convention("studio")
    assert "studio" not in _conventions_now()


def _conventions_now():
    import character4d.skeleton

    return character4d.skeleton.CONVENTIONS


@pytest.mark.parametrize(
    ("name", "table", "match"),
    [
        ("mixamo", {"hips": "Hips"}, "reserved"),
        ("heuristic", {"hips": "Hips"}, "reserved"),
        ("x", {}, "at least one"),
        ("x", {"leftUperArm": "a"}, "leftUpperArm"),
    ],
)
def test_register_convention_rejects(name, table, match):
    from character4d.skeleton import register_convention

    with pytest.raises(ValueError, match=match):
        register_convention(name, table)
