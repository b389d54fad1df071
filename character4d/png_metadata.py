"""Byte-identical PNGs: drop the metadata chunks a renderer writes (numpy-free, bytes in, bytes out)."""

from __future__ import annotations

import struct

# PNG chunks that carry no pixels: Blender writes render time, date and statistics into tEXt chunks.
_PNG_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf", b"pHYs"}


def strip_png_metadata(data: bytes) -> bytes:
    """Drop the metadata chunks of a PNG (render time, date...), keeping the image chunks untouched.

    Same inputs must give the same bytes, or shard hashes (and the benchmark's ground-truth manifest
    hash) would change with every render; Cycles writes its timings into every PNG whatever the stamp
    settings say.

    Args:
        data: a PNG file.

    Returns:
        The PNG without tEXt/zTXt/iTXt/tIME/eXIf/pHYs chunks.

    Raises:
        ValueError: if ``data`` is not a PNG.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("strip_png_metadata: not a PNG file")
    out, pos = [data[:8]], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] not in _PNG_METADATA_CHUNKS:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)
