"""The mesh check that stands between the upstream's bytes and storage."""

from __future__ import annotations

import json
import struct

import pytest

from generations import meshes
from generations.models import GLB_TYPE, PLY_TYPE
from openrouter.sandbox.meshes import glb_bytes, mesh_for, ply_bytes


def glb(document: bytes, binary: bytes = b"", version: int = 2, length: int | None = None) -> bytes:
    document += b" " * (-len(document) % 4)
    body = struct.pack("<II", len(document), 0x4E4F534A) + document
    if binary:
        body += struct.pack("<II", len(binary), 0x004E4942) + binary
    total = 12 + len(body) if length is None else length
    return b"glTF" + struct.pack("<II", version, total) + body


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (ply_bytes(mesh_for("a chair")), PLY_TYPE),
        (ply_bytes(mesh_for("a ball", steps=64), ascii=True), PLY_TYPE),
        (glb_bytes(mesh_for("a donut")), GLB_TYPE),
        (b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n", PLY_TYPE),
        (
            b"ply\r\nformat ascii 1.0\r\nelement vertex 1\r\nproperty float x\r\n"
            b"end_header\r\n1\r\n",
            PLY_TYPE,
        ),
        (
            b"ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty float x\n"
            b"element face 1\nproperty list uchar int vertex_indices\nend_header\n"
            + struct.pack(">ff", 1, 2)
            + struct.pack(">B2i", 2, 0, 1),
            PLY_TYPE,
        ),
        (glb(b'{"asset":{"version":"2.0"}}', b"\x00" * 8), GLB_TYPE),
    ],
)
def test_well_formed_meshes_are_typed(data: bytes, content_type: str) -> None:
    assert meshes.mesh_type(data) == content_type


FACES_HEADER = (
    b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
    b"property float y\nproperty float z\nelement face 2\n"
    b"property list uchar int vertex_indices\nend_header\n"
)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<!doctype html><script>alert(1)</script>",
        b"ply\n",
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n" + bytes(range(256)),
        b"ply\nformat utf8 1.0\nelement vertex 0\nend_header\n",
        b"ply\nelement vertex 0\nend_header\n",
        b"ply\nformat ascii 1.0\nend_header\n",
        b"ply\nformat ascii 1.0\nelement vertex x\nend_header\n",
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n1\n",
        b"ply\nformat ascii 1.0\nproperty float x\nelement vertex 0\nend_header\n",
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n2\n",
        b"ply\nformat ascii 1.0\nelement vertex 0\n<script>\nend_header\n",
        FACES_HEADER + b"\x00" * 36,  # no faces at all
        FACES_HEADER + b"\x00" * 36 + struct.pack("<B3i", 3, 0, 1, 2) + b"\x03",  # cut list
        b"glTF" + struct.pack("<II", 2, 1_000_000) + b"\x00" * 20,
        b"glTF" + b"\xff" * 40,
        glb(b'{"asset":{"version":"2.0"}}', version=1),
        glb(b'{"asset":{"version":"2.0"}}', length=10_000),
        glb(b"not json at all!"),
        glb(b"[1, 2, 3]"),
        glb(b"[" * 50_000),
        glb(b'{"asset":{"version":"2.0"}}', b"\x00" * 6),  # misaligned BIN chunk
        glb(b'{"asset":{"version":"2.0"}}')[:-4] + b"\x00" * 4 + struct.pack("<I", 99),
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(meshes.InvalidMesh):
        meshes.mesh_type(data)


def test_a_glb_whose_first_chunk_is_binary_is_refused() -> None:
    document = json.dumps({"asset": {"version": "2.0"}}).encode()
    document += b" " * (-len(document) % 4)
    body = struct.pack("<II", len(document), 0x004E4942) + document
    data = b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body
    with pytest.raises(meshes.InvalidMesh):
        meshes.mesh_type(data)
