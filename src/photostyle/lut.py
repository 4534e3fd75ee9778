"""3D colour lookup tables: fit one from a stylization, read and write ``.cube``, apply it.

A look that only depends on a pixel's colour (the *global* part of a stylization) is a function
``RGB -> RGB`` and can be stored as a 3D LUT: an ``N x N x N`` lattice of output colours over the
input cube, read between lattice points by trilinear interpolation. Photographers' tools
(Lightroom, Photoshop, DaVinci Resolve, Capture One, ffmpeg's ``lut3d``, OBS) load such tables in
the Adobe / Resolve ``.cube`` text format:

.. code-block:: text

    TITLE "my look"
    LUT_3D_SIZE 33
    DOMAIN_MIN 0 0 0
    DOMAIN_MAX 1 1 1
    0.0123 0.0045 0.0000      <- N**3 lines "R G B", red changing fastest, then green, then blue

What a LUT cannot hold: changes that depend on where a pixel is (semantic masks, local contrast,
anything the same colour gets differently in two places).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import cg

from photostyle.utils import atomic_path, resize_image

if TYPE_CHECKING:
    from photostyle.api import StylizeOptions, Stylizer

__all__ = [
    "DEFAULT_LUT_SIZE",
    "Lut3D",
    "LutError",
    "apply_lut",
    "bake_lut",
    "cube_text",
    "fit_lut",
    "identity_lut",
    "neutral_reference",
    "read_cube",
    "write_cube",
]

DEFAULT_LUT_SIZE: Final = 33  # the common size of grading LUTs (Resolve, Lightroom profiles)
MIN_LUT_SIZE, MAX_LUT_SIZE = 2, 256  # sizes accepted on reading and fitting
_APPLY_CHUNK: Final = 1 << 22  # pixels per grid_sample call (bounds the grid's memory)


class LutError(ValueError):
    """A ``.cube`` file that is not a readable 3D LUT; ``str(err)`` names the file."""


@dataclass(frozen=True)
class Lut3D:
    """A 3D LUT: output colours on a regular lattice over the input domain.

    ``table[b, g, r]`` is the output RGB at input ``domain_min + (r, g, b) / (N - 1) *
    (domain_max - domain_min)`` (blue-major, as the ``.cube`` file lists it).

    Shape: table (N, N, N, 3), float32.
    """

    table: torch.Tensor  # (N, N, N, 3) output RGB, indexed [blue, green, red]
    title: str = ""  # free text stored in the file's TITLE line
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)  # input colour of lattice point 0
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)  # input colour of lattice point N-1
    comments: tuple[str, ...] = field(default=())  # lines written as "# ..." (provenance)

    def __post_init__(self) -> None:
        t = self.table
        n = t.shape[0] if t.ndim == 4 else 0
        if t.ndim != 4 or t.shape != (n, n, n, 3) or not MIN_LUT_SIZE <= n <= MAX_LUT_SIZE:
            raise ValueError(
                f"LUT table must be (N, N, N, 3) with 2 <= N <= 256, got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise ValueError(f"LUT table must be floating point, got {t.dtype}")
        if any(hi <= lo for lo, hi in zip(self.domain_min, self.domain_max, strict=True)):
            raise ValueError(
                f"DOMAIN_MAX must exceed DOMAIN_MIN, got {self.domain_min}, {self.domain_max}"
            )

    @property
    def size(self) -> int:
        """Lattice points per axis, N."""
        return int(self.table.shape[0])


def identity_lut(size: int = DEFAULT_LUT_SIZE) -> Lut3D:
    """The LUT that returns its input.

    Shape: table (size, size, size, 3).
    """
    if not MIN_LUT_SIZE <= size <= MAX_LUT_SIZE:
        raise ValueError(f"LUT size must be in {MIN_LUT_SIZE}..{MAX_LUT_SIZE}, got {size}")
    return Lut3D(_lattice(size))


def _lattice(size: int) -> torch.Tensor:
    """Input colours of the lattice points, (N, N, N, 3) indexed [b, g, r], channels (r, g, b)."""
    axis = torch.linspace(0.0, 1.0, size)
    b, g, r = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b], dim=-1)


# --------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------


def apply_lut(image: torch.Tensor, lut: Lut3D) -> torch.Tensor:
    """Maps every pixel through the LUT with trilinear interpolation.

    Inputs outside the LUT's domain are clamped to it (as Resolve and ffmpeg do).

    Args:
        image: RGB, any float dtype and device.
        lut: the table.

    Returns:
        The mapped image, float32, same shape and device as ``image``.

    Shape:
        image (3, H, W) or (B, 3, H, W) -> the same.
    """
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"image must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be floating point, got {image.dtype}")
    dev = image.device
    lo = torch.tensor(lut.domain_min, device=dev)
    hi = torch.tensor(lut.domain_max, device=dev)
    # grid_sample on a 5-D volume (1, C, D=b, H=g, W=r) with (x, y, z) = (r, g, b) is trilinear.
    volume = lut.table.to(dev, torch.float32).permute(3, 0, 1, 2)[None]  # (1, 3, N, N, N)
    pixels = image.float().movedim(-3, -1).reshape(-1, 3)  # (P, 3)
    out = torch.empty_like(pixels)
    for start in range(0, pixels.shape[0], _APPLY_CHUNK):
        chunk = pixels[start : start + _APPLY_CHUNK]
        grid = ((chunk - lo) / (hi - lo)).clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)
        sampled = F.grid_sample(
            volume, grid.view(1, 1, 1, -1, 3), mode="bilinear", align_corners=True
        )  # (1, 3, 1, 1, p)
        out[start : start + chunk.shape[0]] = sampled.view(3, -1).T
    return out.view(*image.shape[:-3], *image.shape[-2:], 3).movedim(-1, -3).contiguous()


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def fit_lut(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    size: int = DEFAULT_LUT_SIZE,
    smoothness: float = 0.1,
    max_samples: int = 1_000_000,
    title: str = "",
) -> Lut3D:
    """The LUT that best maps ``source`` colours to ``target`` colours (a regularised fit).

    Each pixel pair is one sample. The lattice offsets ``d = table - identity`` solve the sparse
    least-squares problem ``min |W d - (y - x)|^2 / n + smoothness * |D d|^2 / E``: ``W`` holds the
    trilinear weights of the samples on the lattice (so the fit is exact for what
    :func:`apply_lut` computes), ``D`` the differences between neighbouring lattice points
    (``E`` of them). Colours the samples never visit get offsets that vary smoothly from the
    visited ones, so the LUT stays a gentle function there instead of jumping back to identity.

    Args:
        source: input colours in [0, 1] (e.g. the content photo at working size).
        target: wanted colours (e.g. photostyle's output for that photo).
        size: lattice points per axis.
        smoothness: weight of the neighbour-difference penalty.
        max_samples: pixels used at most (an even subsample of the rest).
        title: the LUT's title.

    Returns:
        The fitted LUT over the domain [0, 1]^3; outputs are clamped to [0, 1].

    Shape:
        source (3, H, W), target (3, H, W) (or any (3, ...) with equal shapes).
    """
    if source.shape != target.shape or source.ndim < 2 or source.shape[0] != 3:
        raise ValueError(
            f"source and target must be equal (3, ...) shapes, got {tuple(source.shape)}, "
            f"{tuple(target.shape)}"
        )
    if not MIN_LUT_SIZE <= size <= MAX_LUT_SIZE:
        raise ValueError(f"LUT size must be in {MIN_LUT_SIZE}..{MAX_LUT_SIZE}, got {size}")
    if not smoothness > 0:
        raise ValueError(f"smoothness must be positive, got {smoothness}")
    x = source.detach().reshape(3, -1).T.double().clamp(0.0, 1.0).cpu().numpy()  # (n, 3)
    y = target.detach().reshape(3, -1).T.double().clamp(0.0, 1.0).cpu().numpy()
    if x.shape[0] > max_samples:
        keep = np.linspace(0, x.shape[0] - 1, max_samples).round().astype(np.int64)
        x, y = x[keep], y[keep]
    n = x.shape[0]
    nodes = size**3

    # Trilinear weights: sample i touches the 8 corners of its lattice cell.
    pos = x * (size - 1)
    cell = np.minimum(np.floor(pos), size - 2).astype(np.int64)  # (n, 3) lower corner (r, g, b)
    frac = pos - cell
    rows, cols, vals = [], [], []
    for corner in range(8):
        bits = [(corner >> k) & 1 for k in range(3)]  # offsets along r, g, b
        w = np.ones(n)
        for k, bit in enumerate(bits):
            w = w * (frac[:, k] if bit else 1.0 - frac[:, k])
        idx = (
            (cell[:, 2] + bits[2]) * size * size
            + (cell[:, 1] + bits[1]) * size
            + cell[:, 0]
            + bits[0]
        )
        rows.append(np.arange(n))
        cols.append(idx)
        vals.append(w)
    weights = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, nodes)
    )
    diff = _neighbour_differences(size)
    system = (weights.T @ weights) / n + smoothness * (diff.T @ diff) / diff.shape[0]
    rhs = weights.T @ (y - x) / n  # (nodes, 3)
    # Conjugate gradients with a Jacobi preconditioner: the system is sparse, symmetric and
    # positive definite (the differences connect every node); a direct solve fills in badly.
    system = system.tocsr()
    precondition = sp.diags(1.0 / system.diagonal())
    offsets = np.empty((nodes, 3))
    for c in range(3):
        offsets[:, c], _ = cg(system, rhs[:, c], rtol=1e-8, maxiter=5000, M=precondition)
    table = _lattice(size).reshape(-1, 3).double() + torch.from_numpy(np.asarray(offsets))
    return Lut3D(table.clamp(0.0, 1.0).float().reshape(size, size, size, 3), title=title)


def neutral_reference(size: int = 512) -> torch.Tensor:
    """A smooth test image whose colours span the RGB cube, for a LUT from a style alone.

    Hue runs along the width, lightness down the height, and the four quarters (top to bottom
    within each lightness band) hold saturations 1, 2/3, 1/3 and 0, so every lattice cell near
    the photo-like part of the cube is visited.

    Shape: returns (3, size, size), float32 RGB in [0, 1].
    """
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    hue = torch.linspace(0.0, 1.0, size)[None, :].expand(size, size)
    rows = torch.linspace(0.0, 1.0, size)[:, None].expand(size, size)
    band = (rows * 4).floor().clamp(max=3)
    sat = 1.0 - band / 3.0
    light = (rows * 4 - band).clamp(0.0, 1.0) * 0.96 + 0.02
    # HSL -> RGB
    k = torch.stack([(n + hue * 12.0) % 12.0 for n in (0.0, 8.0, 4.0)])  # (3, size, size)
    a = sat * torch.minimum(light, 1.0 - light)
    rgb = light - a * torch.clamp(torch.minimum(k - 3.0, 9.0 - k), -1.0, 1.0)
    return rgb.clamp(0.0, 1.0).contiguous()


def bake_lut(
    stylizer: Stylizer,
    style: torch.Tensor,
    content: torch.Tensor | None = None,
    *,
    size: int = DEFAULT_LUT_SIZE,
    options: StylizeOptions | None = None,
    title: str = "",
) -> Lut3D:
    """The global part of a stylization as a LUT: photostyle's result fitted colour to colour.

    The content (or, without one, :func:`neutral_reference`) is stylized at working size and
    :func:`fit_lut` maps its colours to the result's.

    Args:
        stylizer: a loaded stylizer.
        style: the look.
        content: the photo whose stylization the LUT reproduces; None = the neutral reference.
        size: lattice points per axis.
        options: stylization options (working size, strength...).
        title: the LUT's title.

    Shape:
        style (3, Hs, Ws), content (3, H, W).
    """
    from photostyle.api import working_size

    opts = stylizer.resolve_options(options)
    source = content if content is not None else neutral_reference()
    h, w = source.shape[-2:]
    small = resize_image(source[None].float(), working_size(h, w, stylizer.working_max_size(opts)))[
        0
    ]
    result = stylizer.stylize(small, style, options=opts)
    return fit_lut(small, result, size=size, title=title)


def _neighbour_differences(size: int) -> sp.csr_matrix:
    """Sparse operator of the differences between lattice neighbours along r, g and b."""
    index = np.arange(size**3).reshape(size, size, size)  # [b, g, r]
    pairs = [
        (index[:, :, 1:], index[:, :, :-1]),
        (index[:, 1:, :], index[:, :-1, :]),
        (index[1:, :, :], index[:-1, :, :]),
    ]
    a = np.concatenate([p.ravel() for p, _ in pairs])
    b = np.concatenate([q.ravel() for _, q in pairs])
    m = a.shape[0]
    data = np.concatenate([np.ones(m), -np.ones(m)])
    rows = np.concatenate([np.arange(m), np.arange(m)])
    return sp.csr_matrix((data, (rows, np.concatenate([a, b]))), shape=(m, size**3))


# --------------------------------------------------------------------------------------------
# .cube files
# --------------------------------------------------------------------------------------------


def cube_text(lut: Lut3D) -> str:
    """The LUT as the text of an Adobe / Resolve ``.cube`` file (what :func:`write_cube` writes).

    Args:
        lut: the table.

    Returns:
        The file's text, ``\\n`` line ends.
    """
    title = lut.title.replace('"', "'").replace("\n", " ")
    lines = [f"# {c}" for c in lut.comments]
    lines.append(f'TITLE "{title}"')
    lines.append(f"LUT_3D_SIZE {lut.size}")
    lines.append("DOMAIN_MIN " + " ".join(f"{v:.6g}" for v in lut.domain_min))
    lines.append("DOMAIN_MAX " + " ".join(f"{v:.6g}" for v in lut.domain_max))
    values = lut.table.reshape(-1, 3).double().numpy()  # blue-major, red fastest
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in values)
    return "\n".join(lines) + "\n" + body + "\n"


def write_cube(lut: Lut3D, path: str | Path) -> Path:
    """Writes the LUT as an Adobe / Resolve ``.cube`` file, atomically.

    Args:
        lut: the table.
        path: the output file (its suffix should be ``.cube``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    text = cube_text(lut)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


_KEYWORD = re.compile(r"^[A-Z][A-Z0-9_]*$")


def read_cube(path: str | Path) -> Lut3D:
    """Reads a 3D LUT from an Adobe / Resolve ``.cube`` file.

    Accepts ``TITLE``, ``LUT_3D_SIZE``, ``DOMAIN_MIN``, ``DOMAIN_MAX``, Resolve's
    ``LUT_3D_INPUT_RANGE``, ``#`` comments and blank lines; 1D LUTs are refused.

    Args:
        path: the file.

    Returns:
        The LUT.

    Raises:
        LutError: the file is missing, unreadable, not text, or not a complete 3D LUT.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise LutError(f"{p}: no such file") from err
    except UnicodeDecodeError as err:
        raise LutError(f"{p}: not a .cube LUT (not a text file)") from err
    except OSError as err:
        raise LutError(f"{p}: cannot read ({err.strerror or err})") from err
    title, size = "", 0
    lo, hi = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    values: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        try:
            if _KEYWORD.match(head):
                if values:
                    raise ValueError(f"keyword {head} after the table")
                if head == "TITLE":
                    title = rest.strip().strip('"')
                elif head == "LUT_3D_SIZE":
                    size = int(rest)
                elif head == "LUT_1D_SIZE":
                    raise ValueError("a 1D LUT, not a 3D LUT")
                elif head == "DOMAIN_MIN":
                    lo = _triple(rest)
                elif head == "DOMAIN_MAX":
                    hi = _triple(rest)
                elif head == "LUT_3D_INPUT_RANGE":
                    a, b = (float(v) for v in rest.split())
                    lo, hi = (a, a, a), (b, b, b)
                continue  # other keywords (e.g. LUT_1D_INPUT_RANGE) do not change a 3D table
            row = [float(v) for v in line.split()]
            if len(row) != 3 or not all(math.isfinite(v) for v in row):
                raise ValueError(f"expected three numbers, got {line[:40]!r}")
            values.append(row)
        except ValueError as err:
            raise LutError(f"{p}: not a .cube LUT (line {number}: {err})") from err
    if not MIN_LUT_SIZE <= size <= MAX_LUT_SIZE:
        got = "no LUT_3D_SIZE" if size == 0 else f"LUT_3D_SIZE {size}"
        raise LutError(f"{p}: not a .cube 3D LUT ({got}; need {MIN_LUT_SIZE}..{MAX_LUT_SIZE})")
    if len(values) != size**3:
        raise LutError(
            f"{p}: not a complete .cube LUT ({len(values)} rows; LUT_3D_SIZE {size} needs "
            f"{size**3})"
        )
    table = torch.tensor(values, dtype=torch.float32).reshape(size, size, size, 3)
    try:
        return Lut3D(table, title=title, domain_min=lo, domain_max=hi)
    except ValueError as err:
        raise LutError(f"{p}: not a valid .cube LUT ({err})") from err


def _triple(text: str) -> tuple[float, float, float]:
    parts = [float(v) for v in text.split()]
    if len(parts) != 3:
        raise ValueError(f"expected three numbers, got {text!r}")
    return parts[0], parts[1], parts[2]
