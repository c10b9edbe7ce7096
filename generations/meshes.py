"""Is this file really a PLY or GLB model? Checked before an output is stored.

The upstream's bytes are not trusted: a header that never ends, a body shorter than its header
says, a GLB whose length field lies, a magic number followed by junk, or an HTML page must never
be stored (and served to the viewer) as a model. ``mesh_type`` returns the content type of a
well-formed file, or raises ``InvalidMesh``.

What is checked is the structure a viewer relies on, not the geometry:

- PLY: the ``ply`` magic line, one known ``format`` line, ``element``/``property`` lines with
  known types, ``end_header``; a binary body at least as long as its elements need (list rows are
  walked, so a truncated face list is caught); an ASCII body with at least one line per row.
- GLB: magic ``glTF``, version 2, a header length equal to the file size, chunks whose lengths
  are 4-aligned and within the file, and a first chunk of type JSON holding a glTF document.
"""

from __future__ import annotations

import json
import struct

from generations.models import GLB_TYPE, PLY_TYPE

MAX_PLY_HEADER = 64 * 1024  # bytes; real headers are a few hundred

PLY_SCALARS = {
    "char": "b",
    "int8": "b",
    "uchar": "B",
    "uint8": "B",
    "short": "h",
    "int16": "h",
    "ushort": "H",
    "uint16": "H",
    "int": "i",
    "int32": "i",
    "uint": "I",
    "uint32": "I",
    "float": "f",
    "float32": "f",
    "double": "d",
    "float64": "d",
}
PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
PLY_LIST_COUNTS = {"char", "int8", "uchar", "uint8", "short", "int16", "ushort", "uint16"}
PLY_LIST_COUNTS |= {"int", "int32", "uint", "uint32"}

GLB_HEADER = struct.Struct("<4sII")
GLB_CHUNK = struct.Struct("<II")
GLB_JSON = 0x4E4F534A  # "JSON"


class InvalidMesh(Exception):
    """The bytes are not a well-formed PLY or GLB model; ``reason`` says what is wrong (for
    the log — the user is told ``MESSAGE``)."""

    MESSAGE = (
        "The model sent back a file that is not a valid 3D object (PLY or GLB), so nothing was "
        "kept. Try again, or pick another model."
    )

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def mesh_type(data: bytes) -> str:
    """The content type of a well-formed PLY or GLB file; ``InvalidMesh`` otherwise."""
    if data[:4] == b"glTF":
        check_glb(data)
        return GLB_TYPE
    if data[:4] in (b"ply\n", b"ply\r"):
        check_ply(data)
        return PLY_TYPE
    raise InvalidMesh("neither a PLY nor a GLB magic number")


# --- PLY --------------------------------------------------------------------------------------

# An element: its name, its row count, and its properties as (count type or None, value type).
Property = tuple[str | None, str]
Element = tuple[str, int, list[Property]]


def check_ply(data: bytes) -> None:
    header, body = _ply_split(data)
    fmt, elements = _ply_header(header)
    if fmt == "ascii":
        _ply_ascii_body(body, elements)
    else:
        _ply_binary_body(body, elements, PLY_FORMATS[fmt])


def _ply_split(data: bytes) -> tuple[str, bytes]:
    for marker in (b"\nend_header\n", b"\nend_header\r\n", b"\r\nend_header\r\n"):
        at = data.find(marker, 0, MAX_PLY_HEADER)
        if at != -1:
            end = at + len(marker)
            try:
                return data[:end].decode("ascii"), data[end:]
            except UnicodeDecodeError:
                raise InvalidMesh("PLY header is not ASCII") from None
    raise InvalidMesh("PLY header has no end_header")


def _ply_header(header: str) -> tuple[str, list[Element]]:
    lines = [line.strip() for line in header.splitlines()]
    if lines[0] != "ply" or lines[-1] != "end_header":
        raise InvalidMesh("PLY header does not start with ply or end with end_header")
    fmt: str | None = None
    elements: list[Element] = []
    for line in lines[1:-1]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        keyword = words[0]
        if keyword == "format":
            if fmt is not None or elements or len(words) != 3 or words[1] not in PLY_FORMATS:
                raise InvalidMesh(f"bad PLY format line: {line[:80]!r}")
            fmt = words[1]
        elif keyword == "element":
            if fmt is None or len(words) != 3 or not words[2].isdigit():
                raise InvalidMesh(f"bad PLY element line: {line[:80]!r}")
            elements.append((words[1], int(words[2]), []))
        elif keyword == "property":
            _ply_property(elements[-1][2] if elements else None, words, line)
        else:
            raise InvalidMesh(f"unknown PLY header line: {line[:80]!r}")
    if fmt is None or not elements:
        raise InvalidMesh("PLY header has no format line or no element")
    return fmt, elements


def _ply_property(properties: list[Property] | None, words: list[str], line: str) -> None:
    if properties is None:
        raise InvalidMesh("PLY property before any element")
    if len(words) == 3 and words[1] in PLY_SCALARS:
        properties.append((None, words[1]))
    elif (
        len(words) == 5
        and words[1] == "list"
        and words[2] in PLY_LIST_COUNTS
        and words[3] in PLY_SCALARS
    ):
        properties.append((words[2], words[3]))
    else:
        raise InvalidMesh(f"bad PLY property line: {line[:80]!r}")


def _ply_ascii_body(body: bytes, elements: list[Element]) -> None:
    rows = sum(count for _, count, properties in elements if properties)
    lines = sum(1 for line in body.splitlines() if line.strip())
    if lines < rows:
        raise InvalidMesh(f"ASCII PLY body has {lines} lines for {rows} rows")


def _ply_binary_body(body: bytes, elements: list[Element], order: str) -> None:
    offset = 0
    for _name, count, properties in elements:
        if not properties or count == 0:
            continue
        if all(kind is None for kind, _ in properties):
            row = struct.calcsize(order + "".join(PLY_SCALARS[t] for _, t in properties))
            offset += row * count
            if offset > len(body):
                break
            continue
        offset = _ply_walk_lists(body, offset, count, properties, order)
    if offset > len(body):
        raise InvalidMesh(f"binary PLY body is {len(body)} bytes, its header needs {offset}")


def _ply_walk_lists(
    body: bytes, offset: int, count: int, properties: list[Property], order: str
) -> int:
    """Where the rows of an element with list properties end; past ``len(body)`` when cut."""
    steps = [
        (
            struct.Struct(order + PLY_SCALARS[kind]) if kind else None,
            struct.calcsize(PLY_SCALARS[t]),
        )
        for kind, t in properties
    ]
    end = len(body)
    for _ in range(count):
        for counter, size in steps:
            if counter is None:
                offset += size
                continue
            if offset + counter.size > end:
                return offset + counter.size
            (items,) = counter.unpack_from(body, offset)
            if items < 0:
                raise InvalidMesh("binary PLY list with a negative length")
            offset += counter.size + items * size
        if offset > end:
            return offset
    return offset


# --- GLB --------------------------------------------------------------------------------------


def check_glb(data: bytes) -> None:
    if len(data) < GLB_HEADER.size + GLB_CHUNK.size:
        raise InvalidMesh("GLB shorter than its header")
    magic, version, length = GLB_HEADER.unpack_from(data)
    if magic != b"glTF" or version != 2:
        raise InvalidMesh(f"GLB version {version}, not 2")
    if length != len(data):
        raise InvalidMesh(f"GLB header says {length} bytes, the file has {len(data)}")
    offset = GLB_HEADER.size
    first = True
    while offset < length:
        if offset + GLB_CHUNK.size > length:
            raise InvalidMesh("GLB chunk header past the end of the file")
        size, kind = GLB_CHUNK.unpack_from(data, offset)
        start = offset + GLB_CHUNK.size
        if size % 4 or start + size > length:
            raise InvalidMesh(f"GLB chunk of {size} bytes at {offset} is misaligned or too long")
        if first:
            if kind != GLB_JSON:
                raise InvalidMesh("the first GLB chunk is not JSON")
            _glb_document(data[start : start + size])
            first = False
        offset = start + size


def _glb_document(chunk: bytes) -> None:
    try:
        document = json.loads(chunk.decode("utf-8"))
    except (ValueError, RecursionError):
        raise InvalidMesh("the GLB JSON chunk is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("asset"), dict):
        raise InvalidMesh("the GLB JSON chunk is not a glTF document")
