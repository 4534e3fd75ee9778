"""Export the stylizer network with ``torch.export`` (a ``.pt2`` ExportedProgram).

The same graph as the ONNX export (:class:`photostyle.deploy.onnx.ExportableStylizer`: inputs
``content`` (1, 3, H, W), ``style`` (1, 3, Hs, Ws), ``alpha`` (a 0-d tensor); output ``image``
(1, 3, H, W), not clamped), with dynamic heights and widths of at least 16 px. Run it with
``torch.export.load(path).module()(content, style, alpha)``, in Python without photostyle, or
compile it ahead of time with AOTInductor. Loading a ``.pt2`` file unpickles parts of it: load
only files you made or trust (photostyle itself never loads one outside the tests).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.export import Dim

from photostyle.deploy.onnx import (
    CHECK_SIZES,
    PARITY_TOLERANCE,
    TRACE_SIZES,
    ExportableStylizer,
    check_exportable,
)
from photostyle.models.encoder import MIN_SIDE
from photostyle.models.layers import FAVariant
from photostyle.models.stylizer import PhotoStylizer
from photostyle.utils import atomic_path, check_writable

MAX_SIDE = 1 << 15  # largest height/width the exported program accepts


@dataclass(frozen=True)
class Pt2Result:
    """What :func:`export_pt2` wrote and how close it is to PyTorch eager."""

    path: Path  # the .pt2 file
    fa: FAVariant  # FA variant baked into the graph
    max_abs_diff: float  # largest |exported - eager| on the check pair, alpha 1 and 0.5


def check_pt2_path(path: str | Path) -> Path:
    """Refuse an export target that is not a ``.pt2`` file or is a directory."""
    path = Path(path)
    if path.suffix.lower() != ".pt2":
        raise ValueError(f"{path}: the output must be a .pt2 file")
    check_writable(path)  # not a directory, in a folder that can be written
    return path


def export_pt2(model: PhotoStylizer, out: str | Path, *, fa: FAVariant | None = None) -> Pt2Result:
    """Export, check against eager PyTorch on other (odd) sizes, then write ``out`` atomically.

    Args:
        model: the stylizer network (any device and dtype; it is not changed).
        out: the ``.pt2`` file to write.
        fa: FA variant baked into the graph; None = ``model.config.fa``.

    Raises:
        ValueError: not a ``.pt2`` path, an FA variant that cannot be exported, or a program that
            differs from eager PyTorch by more than ``PARITY_TOLERANCE``.
    """
    path = check_pt2_path(out)
    variant = fa or model.config.fa
    check_exportable(variant)
    model = copy.deepcopy(model).float().cpu().eval()  # the caller's stays as it is
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # plain weights
    graph = ExportableStylizer(model, variant).eval()
    (ch, cw), (sh, sw) = TRACE_SIZES
    g = torch.Generator().manual_seed(0)
    example = (torch.rand(1, 3, ch, cw, generator=g), torch.rand(1, 3, sh, sw, generator=g))
    side = {2: Dim("H", min=MIN_SIDE, max=MAX_SIDE), 3: Dim("W", min=MIN_SIDE, max=MAX_SIDE)}
    style_side = {
        2: Dim("Hs", min=MIN_SIDE, max=MAX_SIDE),
        3: Dim("Ws", min=MIN_SIDE, max=MAX_SIDE),
    }
    with torch.no_grad():
        program = torch.export.export(
            graph, (*example, torch.tensor(1.0)), dynamic_shapes=(side, style_side, None)
        )
        (ch, cw), (sh, sw) = CHECK_SIZES
        content = torch.rand(1, 3, ch, cw, generator=g)
        style = torch.rand(1, 3, sh, sw, generator=g)
        diff = 0.0
        for alpha in (1.0, 0.5):
            got = program.module()(content, style, torch.tensor(alpha))
            expected = model(content, style, alpha=alpha, variant=variant).image
            diff = max(diff, float((got - expected).abs().max()))
    if not diff <= PARITY_TOLERANCE:
        raise ValueError(f"{path}: exported program differs from PyTorch by {diff:.3g}")
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))
    return Pt2Result(path=path, fa=variant, max_abs_diff=diff)
