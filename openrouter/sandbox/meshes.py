"""Real, small meshes for the 3D endpoint: PLY (binary or ASCII) and binary glTF 2.0 (GLB).

Built with ``struct`` alone. The shape follows the prompt (chair/table → boxes, ball/planet →
sphere, donut/ring → torus, tree/cone/pyramid → cone, otherwise picked by a hash), and each output
index gets its own proportions, turn and tint, so ``num_outputs: 4`` gives four different objects.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]
Color = tuple[int, int, int]
Triangle = tuple[int, int, int]

_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "chair": ("chair", "stool", "seat", "throne"),
    "table": ("table", "desk", "bench"),
    "house": ("house", "home", "cabin", "hut", "building"),
    "box": ("box", "cube", "crate", "block", "brick"),
    "sphere": ("ball", "sphere", "planet", "apple", "orange", "globe", "moon", "orb", "egg"),
    "torus": ("donut", "doughnut", "ring", "torus", "bagel", "tire", "tyre", "wheel"),
    "tree": ("tree", "pine", "fir"),
    "cone": ("cone", "pyramid", "hat", "mountain", "spike", "tower"),
}
_FALLBACK_SHAPES = ("box", "sphere", "torus", "cone")
_COLOR_WORDS: dict[str, Color] = {
    "red": (200, 40, 40),
    "apple": (190, 30, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 205, 50),
    "gold": (212, 175, 55),
    "green": (60, 160, 70),
    "blue": (50, 100, 210),
    "planet": (70, 120, 200),
    "purple": (130, 70, 180),
    "pink": (230, 120, 170),
    "white": (235, 235, 235),
    "black": (40, 40, 45),
    "brown": (120, 80, 45),
    "wooden": (150, 105, 60),
    "donut": (210, 150, 90),
}
_DEFAULT_COLORS: dict[str, Color] = {
    "chair": (150, 105, 60),
    "table": (140, 95, 55),
    "house": (200, 180, 150),
    "box": (180, 140, 90),
    "sphere": (90, 140, 210),
    "torus": (210, 150, 90),
    "tree": (50, 130, 60),
    "cone": (200, 120, 60),
}
_TRUNK = (110, 75, 40)
_ROOF = (160, 50, 40)


@dataclass
class Mesh:
    positions: list[Vec3] = field(default_factory=list)
    colors: list[Color] = field(default_factory=list)
    triangles: list[Triangle] = field(default_factory=list)

    def add(
        self,
        positions: list[Vec3],
        triangles: list[Triangle],
        color: Color,
        inside: Callable[[Vec3], Vec3],
    ) -> None:
        """Appends a part, winding every triangle counter-clockwise seen from outside.

        ``inside(centroid)`` returns a point inside the part near that triangle; a triangle whose
        normal points towards it is flipped. That keeps the builders free of winding bookkeeping.
        """
        base = len(self.positions)
        self.positions.extend(positions)
        self.colors.extend([color] * len(positions))
        for a, b, c in triangles:
            pa, pb, pc = positions[a], positions[b], positions[c]
            normal = _cross(_sub(pb, pa), _sub(pc, pa))
            centroid = _scale(_add(_add(pa, pb), pc), 1 / 3)
            if _dot(normal, _sub(centroid, inside(centroid))) < 0:
                b, c = c, b
            self.triangles.append((base + a, base + b, base + c))

    def normals(self) -> list[Vec3]:
        """Area-weighted vertex normals, unit length (glTF requires it)."""
        sums = [[0.0, 0.0, 0.0] for _ in self.positions]
        for tri in self.triangles:
            pa, pb, pc = (self.positions[i] for i in tri)
            n = _cross(_sub(pb, pa), _sub(pc, pa))
            for i in tri:
                acc = sums[i]
                acc[0] += n[0]
                acc[1] += n[1]
                acc[2] += n[2]
        result: list[Vec3] = []
        for x, y, z in sums:
            length = math.sqrt(x * x + y * y + z * z)
            result.append(
                (x / length, y / length, z / length) if length > 1e-12 else (0.0, 1.0, 0.0)
            )
        return result


def shape_for(prompt: str) -> str:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    for shape, names in _SHAPE_WORDS.items():
        if any(w in names or w.removesuffix("s") in names for w in words):
            return shape
    digest = hashlib.sha256(prompt.strip().lower().encode()).digest()
    return _FALLBACK_SHAPES[digest[0] % len(_FALLBACK_SHAPES)]


def mesh_for(prompt: str, index: int = 0, steps: int = 32) -> Mesh:
    """The object for a prompt; ``index`` varies proportions, turn and tint between outputs."""
    shape = shape_for(prompt)
    rng = random.Random(hashlib.sha256(f"{index}\n{prompt}".encode()).digest())
    segments = max(8, min(64, 8 + steps // 2))
    color = _tint(_color_for(prompt, shape), rng)
    mesh = Mesh()
    _BUILDERS[shape](mesh, rng, segments, color)
    _finish(mesh, rng)
    return mesh


def _color_for(prompt: str, shape: str) -> Color:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    for word, color in _COLOR_WORDS.items():
        if word in words:
            return color
    return _DEFAULT_COLORS[shape]


def _tint(color: Color, rng: random.Random) -> Color:
    r, g, b = (max(0, min(255, c + rng.randint(-25, 25))) for c in color)
    return (r, g, b)


# --- parts -------------------------------------------------------------------------------------


def _box(mesh: Mesh, center: Vec3, size: Vec3, color: Color) -> None:
    cx, cy, cz = center
    hx, hy, hz = size[0] / 2, size[1] / 2, size[2] / 2
    positions: list[Vec3] = []
    triangles: list[Triangle] = []
    # Four vertices per face (not eight shared corners) so each face gets a flat normal.
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = [a for a in range(3) if a != axis]
            base = len(positions)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = [0.0, 0.0, 0.0]
                p[axis] = sign
                p[u], p[v] = float(du), float(dv)
                positions.append((cx + p[0] * hx, cy + p[1] * hy, cz + p[2] * hz))
            triangles += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    mesh.add(positions, triangles, color, lambda _c: center)


def _sphere(mesh: Mesh, center: Vec3, radius: float, segments: int, color: Color) -> None:
    rings = max(4, segments // 2)
    cx, cy, cz = center
    positions: list[Vec3] = [(cx, cy + radius, cz)]
    for i in range(1, rings):
        phi = math.pi * i / rings
        y, r = radius * math.cos(phi), radius * math.sin(phi)
        for j in range(segments):
            theta = 2 * math.pi * j / segments
            positions.append((cx + r * math.cos(theta), cy + y, cz + r * math.sin(theta)))
    positions.append((cx, cy - radius, cz))
    bottom = len(positions) - 1

    def ring(i: int, j: int) -> int:
        return 1 + (i - 1) * segments + j % segments

    triangles: list[Triangle] = []
    for j in range(segments):
        triangles.append((0, ring(1, j), ring(1, j + 1)))
        triangles.append((bottom, ring(rings - 1, j), ring(rings - 1, j + 1)))
        for i in range(1, rings - 1):
            a, b = ring(i, j), ring(i, j + 1)
            c, d = ring(i + 1, j), ring(i + 1, j + 1)
            triangles += [(a, c, d), (a, d, b)]
    mesh.add(positions, triangles, color, lambda _c: center)


def _cone(
    mesh: Mesh, base: Vec3, radius: float, height: float, segments: int, color: Color
) -> None:
    bx, by, bz = base
    rim = [
        (
            bx + radius * math.cos(2 * math.pi * j / segments),
            by,
            bz + radius * math.sin(2 * math.pi * j / segments),
        )
        for j in range(segments)
    ]
    apex = (bx, by + height, bz)
    # The base disc has its own rim vertices so that its normals stay flat.
    positions: list[Vec3] = [apex, *rim, (bx, by, bz), *rim]
    triangles: list[Triangle] = []
    for j in range(segments):
        k = (j + 1) % segments
        triangles.append((0, 1 + j, 1 + k))
        triangles.append((segments + 1, segments + 2 + j, segments + 2 + k))
    inside = (bx, by + height / 4, bz)
    mesh.add(positions, triangles, color, lambda _c: inside)


def _torus(
    mesh: Mesh, major: float, minor: float, segments: int, color: Color, y: float = 0.0
) -> None:
    around, tube = segments, max(6, segments // 2)
    positions: list[Vec3] = []
    for i in range(around):
        theta = 2 * math.pi * i / around
        for j in range(tube):
            phi = 2 * math.pi * j / tube
            r = major + minor * math.cos(phi)
            positions.append((r * math.cos(theta), y + minor * math.sin(phi), r * math.sin(theta)))
    triangles: list[Triangle] = []
    for i in range(around):
        for j in range(tube):
            a = i * tube + j
            b = ((i + 1) % around) * tube + j
            c = ((i + 1) % around) * tube + (j + 1) % tube
            d = i * tube + (j + 1) % tube
            triangles += [(a, b, c), (a, c, d)]

    def tube_center(p: Vec3) -> Vec3:
        angle = math.atan2(p[2], p[0])
        return (major * math.cos(angle), y, major * math.sin(angle))

    mesh.add(positions, triangles, color, tube_center)


# --- shapes ------------------------------------------------------------------------------------


def _build_chair(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    seat, leg = 0.45 + rng.uniform(-0.05, 0.05), 0.45 + rng.uniform(-0.05, 0.08)
    back = 0.5 + rng.uniform(-0.1, 0.15)
    _box(mesh, (0, leg + 0.03, 0), (seat, 0.06, seat), color)
    _box(mesh, (0, leg + 0.06 + back / 2, -seat / 2 + 0.03), (seat, back, 0.06), color)
    _legs(mesh, seat, leg, color)


def _build_table(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    width, depth = 1.2 + rng.uniform(-0.2, 0.3), 0.7 + rng.uniform(-0.1, 0.2)
    leg = 0.7 + rng.uniform(-0.05, 0.05)
    _box(mesh, (0, leg + 0.04, 0), (width, 0.08, depth), color)
    _legs(mesh, width, leg, color, depth)


def _legs(mesh: Mesh, width: float, height: float, color: Color, depth: float = 0.0) -> None:
    depth = depth or width
    dx, dz = width / 2 - 0.04, depth / 2 - 0.04
    for sx in (-1, 1):
        for sz in (-1, 1):
            _box(mesh, (sx * dx, height / 2, sz * dz), (0.06, height, 0.06), color)


def _build_house(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    width, height = 1.0 + rng.uniform(-0.1, 0.2), 0.7 + rng.uniform(-0.1, 0.2)
    _box(mesh, (0, height / 2, 0), (width, height, width), color)
    _cone(mesh, (0, height, 0), width * 0.75, 0.5 + rng.uniform(0, 0.2), 4, _ROOF)


def _build_box(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    size = (1 + rng.uniform(-0.2, 0.2), 1 + rng.uniform(-0.2, 0.2), 1 + rng.uniform(-0.2, 0.2))
    _box(mesh, (0, size[1] / 2, 0), size, color)


def _build_sphere(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    radius = 0.5 + rng.uniform(-0.08, 0.08)
    _sphere(mesh, (0, radius, 0), radius, segments, color)


def _build_torus(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    minor = 0.18 + rng.uniform(-0.05, 0.05)
    _torus(mesh, 0.5 + rng.uniform(-0.05, 0.05), minor, segments, color, y=minor)


def _build_tree(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    trunk = 0.3 + rng.uniform(0, 0.15)
    _box(mesh, (0, trunk / 2, 0), (0.14, trunk, 0.14), _TRUNK)
    radius, height = 0.45 + rng.uniform(-0.05, 0.1), 1.1 + rng.uniform(-0.1, 0.3)
    _cone(mesh, (0, trunk, 0), radius, height, segments, color)


def _build_cone(mesh: Mesh, rng: random.Random, segments: int, color: Color) -> None:
    sides = 4 if rng.random() < 0.3 else segments
    radius, height = 0.5 + rng.uniform(-0.05, 0.1), 1.0 + rng.uniform(-0.2, 0.3)
    _cone(mesh, (0, 0, 0), radius, height, sides, color)


_BUILDERS: dict[str, Callable[[Mesh, random.Random, int, Color], None]] = {
    "chair": _build_chair,
    "table": _build_table,
    "house": _build_house,
    "box": _build_box,
    "sphere": _build_sphere,
    "torus": _build_torus,
    "tree": _build_tree,
    "cone": _build_cone,
}


def _finish(mesh: Mesh, rng: random.Random) -> None:
    """Turns the object about Y, shades it by height, and rounds positions to float32.

    The rounding matters for GLB: accessor min/max must equal the stored float32 values.
    """
    angle = rng.uniform(0, 2 * math.pi)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    turned = [(x * cos_a - z * sin_a, y, x * sin_a + z * cos_a) for x, y, z in mesh.positions]
    flat = [c for p in turned for c in p]
    rounded = struct.unpack(f"<{len(flat)}f", struct.pack(f"<{len(flat)}f", *flat))
    mesh.positions = [(rounded[i], rounded[i + 1], rounded[i + 2]) for i in range(0, len(flat), 3)]
    ys = [p[1] for p in mesh.positions]
    low, span = min(ys), (max(ys) - min(ys)) or 1.0
    mesh.colors = [
        _shade(color, 0.7 + 0.3 * (p[1] - low) / span)
        for color, p in zip(mesh.colors, mesh.positions, strict=True)
    ]


def _shade(color: Color, factor: float) -> Color:
    r, g, b = (min(255, round(c * factor)) for c in color)
    return (r, g, b)


# --- encoders ----------------------------------------------------------------------------------


def ply_bytes(mesh: Mesh, *, ascii: bool = False, padding: int = 0, comment: str = "") -> bytes:
    """A PLY file with positions, normals, colours and triangles.

    ``padding`` adds about that many bytes as extra (unreferenced) copies of the first vertex:
    still a valid file, just a big one, for testing size caps cheaply.
    """
    normals = mesh.normals()
    vertex = struct.Struct("<6f3B")
    extra = padding // vertex.size if padding else 0
    comment = "".join(ch for ch in comment if 32 <= ord(ch) < 127)[:200]
    header = (
        "ply\n"
        f"format {'ascii' if ascii else 'binary_little_endian'} 1.0\n"
        "comment made by the OpenRouter sandbox\n"
        + (f"comment {comment}\n" if comment else "")
        + f"element vertex {len(mesh.positions) + extra}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(mesh.triangles)}\n"
        "property list uchar int vertex_indices\n"
        "end_header\n"
    ).encode("ascii")
    rows = zip(mesh.positions, normals, mesh.colors, strict=True)
    if ascii:
        lines = [
            " ".join([*(f"{v:.6g}" for v in p), *(f"{v:.5f}" for v in n), *map(str, c)])
            for p, n, c in rows
        ]
        first = lines[0] if lines else ""
        lines += [first] * extra
        lines += [f"3 {a} {b} {c}" for a, b, c in mesh.triangles]
        return header + ("\n".join(lines) + "\n").encode("ascii")
    vertices = b"".join(vertex.pack(*p, *n, *c) for p, n, c in rows)
    face = struct.Struct("<B3i")
    faces = b"".join(face.pack(3, *t) for t in mesh.triangles)
    return header + vertices + vertices[: vertex.size] * extra + faces


_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A  # "JSON"
_CHUNK_BIN = 0x004E4942  # "BIN\0"
_FLOAT, _UNSIGNED_INT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def glb_bytes(mesh: Mesh, *, padding: int = 0, name: str = "object") -> bytes:
    """A binary glTF 2.0 file: one node, one mesh, one primitive with POSITION, NORMAL, COLOR_0
    and indices, and a plain material. ``padding`` appends that many zero bytes to the buffer."""
    count = len(mesh.positions)
    normals = mesh.normals()
    positions = struct.pack(f"<{3 * count}f", *(c for p in mesh.positions for c in p))
    normal_data = struct.pack(f"<{3 * count}f", *(c for n in normals for c in n))
    colors = struct.pack(f"<{3 * count}f", *(c / 255 for rgb in mesh.colors for c in rgb))
    indices = struct.pack(f"<{3 * len(mesh.triangles)}I", *(i for t in mesh.triangles for i in t))
    views, offset = [], 0
    for data, target in (
        (positions, _ARRAY_BUFFER),
        (normal_data, _ARRAY_BUFFER),
        (colors, _ARRAY_BUFFER),
        (indices, _ELEMENT_ARRAY_BUFFER),
    ):
        # Every block is a multiple of 4 bytes long, so each view starts 4-aligned.
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": target})
        offset += len(data)
    binary = positions + normal_data + colors + indices + bytes(padding)
    binary += bytes(-len(binary) % 4)

    xs, ys, zs = zip(*mesh.positions, strict=True)
    document = {
        "asset": {"version": "2.0", "generator": "OpenRouter sandbox"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1, "COLOR_0": 2},
                        "indices": 3,
                        "material": 0,
                        "mode": 4,
                    }
                ],
            }
        ],
        "materials": [
            {
                "name": "sandbox",
                "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0},
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": _FLOAT,
                "count": count,
                "type": "VEC3",
                "min": [min(xs), min(ys), min(zs)],
                "max": [max(xs), max(ys), max(zs)],
            },
            {"bufferView": 1, "componentType": _FLOAT, "count": count, "type": "VEC3"},
            {"bufferView": 2, "componentType": _FLOAT, "count": count, "type": "VEC3"},
            {
                "bufferView": 3,
                "componentType": _UNSIGNED_INT,
                "count": 3 * len(mesh.triangles),
                "type": "SCALAR",
            },
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join(
        (
            struct.pack("<III", _GLB_MAGIC, 2, total),
            struct.pack("<II", len(text), _CHUNK_JSON),
            text,
            struct.pack("<II", len(binary), _CHUNK_BIN),
            binary,
        )
    )


# --- vector helpers ----------------------------------------------------------------------------


def _add(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _sub(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _scale(a: Vec3, k: float) -> Vec3:
    return (a[0] * k, a[1] * k, a[2] * k)


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
