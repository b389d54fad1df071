"""The Character4D sample contract: keys, field names, folder layout, encoding, shards.

One sample is one (character, motion) pair (DESIGN.md section 5). This module owns both on-disk
layouts of a sample and their round trip; every other package reads and writes samples through it
instead of re-deriving names, paths or shapes.

Shard fields (webdataset: member ``{key}.{field}``; names end in the extension so webdataset's
default decoders apply):

=========================  ==============================  =====================================
field                      folder path (under ``<key>/``)  content
=========================  ==============================  =====================================
``meta.json``              ``meta.json``                   ids, fps, joint names, source times...
``cameras.json``           ``cameras.json``                :meth:`character4d.cameras.Cameras.to_json`
``joints.npy``             ``joints.npy``                  float32 [F, J, 3] world positions
``apose_joints.npy``       ``apose_joints.npy``            float32 [J, 3]
``apose.v{VV}.png``        ``apose/view{VV}.png``          RGBA uint8
``v{VV}.f{FFF}.png``       ``motion/view{VV}/{FFF}.png``   RGBA uint8
``pose.v{VV}.f{FFF}.png``  ``pose/view{VV}/{FFF}.png``     RGB uint8 pose map
``depth.v{VV}.f{FFF}.png`` ``depth/view{VV}/{FFF}.png``    optional, uint16 millimetres, 0 = none
``mask.v{VV}.f{FFF}.png``  ``mask/view{VV}/{FFF}.png``     optional, L uint8 (0 or 255)
``normal.v{VV}.f{FFF}.png````normal/view{VV}/{FFF}.png``   optional, RGB uint8 (no accessor yet)
=========================  ==============================  =====================================

Only numpy and PIL are imported with this module; webdataset (which pulls in torch when it is
installed) is imported inside the functions that read or write shards.

The package is split by idea; every public name is re-exported here, so ``character4d.format`` stays
the one import path:

=================  ==============================================================
module             what it owns
=================  ==============================================================
``names``          keys, ids, field names, field <-> folder path
``codecs``         PNG / lossless WebP / npy / JSON / depth encoders
``meta``           :class:`SampleMeta`: the ``meta.json`` document
``sample``         :class:`Sample` (lazy decoding)
``validation``     the contract checks behind :meth:`Sample.validate`
``build``          :func:`build_sample` from arrays, :func:`transcode`
``folders``        the folder layout, atomic write and read
``shards``         :class:`ShardWriter` and tar reading
``discovery``      :func:`open_samples`, :func:`export_folders`
=================  ==============================================================
"""

from __future__ import annotations

from character4d.format.build import CODECS, build_sample, transcode
from character4d.format.codecs import (
    decode_image,
    decode_stack,
    encode_depth,
    encode_json,
    encode_npy,
    encode_png,
    encode_webp,
    encode_webp_stack,
)
from character4d.format.discovery import export_folders, open_samples
from character4d.format.folders import read_folder_sample, write_folder_sample
from character4d.format.meta import REQUIRED_META_KEYS, SampleMeta, meta_problems
from character4d.format.names import (
    APOSE_JOINTS,
    CAMERAS,
    JOINTS,
    MAX_FRAMES,
    MAX_VIEWS,
    META,
    SampleFormatError,
    apose_name,
    depth_name,
    field_to_path,
    frame_name,
    mask_name,
    parse_key,
    path_to_field,
    pose_name,
    sample_key,
    sanitize_id,
)
from character4d.format.sample import Sample
from character4d.format.shards import ShardWriter

__all__ = [
    "APOSE_JOINTS",
    "CODECS",
    "CAMERAS",
    "JOINTS",
    "MAX_FRAMES",
    "MAX_VIEWS",
    "META",
    "REQUIRED_META_KEYS",
    "Sample",
    "SampleMeta",
    "SampleFormatError",
    "ShardWriter",
    "apose_name",
    "build_sample",
    "decode_image",
    "decode_stack",
    "depth_name",
    "encode_depth",
    "encode_json",
    "encode_npy",
    "encode_png",
    "encode_webp",
    "encode_webp_stack",
    "export_folders",
    "field_to_path",
    "frame_name",
    "mask_name",
    "meta_problems",
    "open_samples",
    "parse_key",
    "path_to_field",
    "pose_name",
    "read_folder_sample",
    "sample_key",
    "sanitize_id",
    "transcode",
    "write_folder_sample",
]
