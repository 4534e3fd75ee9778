"""Minimal ICC v4 matrix/TRC RGB profiles built from primaries (nothing downloaded).

Display P3 and Adobe RGB (1998) as their specifications define them: primaries and white point,
colorants adapted to the D50 connection space with the Bradford transform, parametric tone curves.
"""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
DISPLAY_P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # ICC parametric type 3
ADOBE_GAMMA = (563 / 256,)  # parametric type 0
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def colorants(primaries, white_xy=D65_XY) -> np.ndarray:
    """RGB -> XYZ (D50) matrix of the primaries, Bradford-adapted from the white point."""
    p = np.stack([_xyz(xy) for xy in primaries], axis=1)
    white = _xyz(white_xy)
    m = p * np.linalg.solve(p, white)
    cone = _BRADFORD @ np.array(D50) / (_BRADFORD @ white)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone) @ _BRADFORD
    return adapt @ m


def _s15(values) -> bytes:
    return struct.pack(f">{len(values)}i", *(round(v * 65536) for v in values))


def _mluc(text: str) -> bytes:
    s = text.encode("utf-16-be")
    return (
        b"mluc"
        + b"\0" * 4
        + struct.pack(">II", 1, 12)
        + b"enUS"
        + struct.pack(">II", len(s), 28)
        + s
    )


def _para(params) -> bytes:
    kind = {1: 0, 5: 3}[len(params)]
    return b"para" + b"\0" * 4 + struct.pack(">H", kind) + b"\0\0" + _s15(params)


def make_profile(name: str, primaries, curve, *, space: bytes = b"RGB ") -> bytes:
    """An ICC v4.3 display profile: desc, cprt, wtpt, r/g/bXYZ, r/g/bTRC."""
    m = colorants(primaries)
    curve_tag = _para(curve)
    tags = [
        (b"desc", _mluc(name)),
        (b"cprt", _mluc("No copyright, use freely")),
        (b"wtpt", b"XYZ " + b"\0" * 4 + _s15(D50)),
        (b"rXYZ", b"XYZ " + b"\0" * 4 + _s15(m[:, 0])),
        (b"gXYZ", b"XYZ " + b"\0" * 4 + _s15(m[:, 1])),
        (b"bXYZ", b"XYZ " + b"\0" * 4 + _s15(m[:, 2])),
        (b"rTRC", curve_tag),
        (b"gTRC", curve_tag),
        (b"bTRC", curve_tag),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += struct.pack(">4sII", sig, offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x04300000)
        + b"mntr"
        + space
        + b"XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + _s15(D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def display_p3() -> bytes:
    return make_profile("Display P3 (test)", DISPLAY_P3, SRGB_CURVE)


def adobe_rgb() -> bytes:
    return make_profile("Adobe RGB (1998) (test)", ADOBE_RGB, ADOBE_GAMMA)
