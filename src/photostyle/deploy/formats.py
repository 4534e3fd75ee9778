"""The file formats ``photostyle export`` writes, registered once with what each needs.

Each format is an :class:`ExportFormat`: its name (``--format``), the suffix of its files, a
one-line description, the optional packages it needs (the ``deploy`` extra) and its exporter:
a check of the request made before any work, and the export of a model. The command's choices,
default and help come from here, and it runs a format without naming it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from photostyle.deploy.onnx import DEFAULT_OPSET, check_onnx_path, check_opset, export_onnx
from photostyle.models.stylizer import PhotoStylizer
from photostyle.registry import Registry


@dataclass(frozen=True)
class ExportRequest:
    """What to write where; a format ignores the options it has no use for."""

    out: Path  # the file to write
    inputs: tuple[Path, ...] = ()  # files the output may not overwrite (the weights)
    opset: int = DEFAULT_OPSET  # ONNX opset


@dataclass(frozen=True)
class ExportFormat:
    """One export format."""

    name: str  # its --format value
    suffix: str  # the suffix of its files (".onnx")
    description: str  # what it is, for --help
    # Raises a one-line ValueError for a request it cannot meet (path, options), before any work.
    check: Callable[[ExportRequest], None]
    # Exports (model, the checkpoint it was loaded from, request); returns the one-line report.
    export: Callable[[PhotoStylizer, Path, ExportRequest], str]
    modules: tuple[str, ...] = ()  # modules it needs beyond photostyle's requirements


def _check_onnx(request: ExportRequest) -> None:
    check_onnx_path(request.out, protect=request.inputs)
    check_opset(request.opset)


def _export_onnx(model: PhotoStylizer, weights: Path, request: ExportRequest) -> str:
    result = export_onnx(model, request.out, weights=weights, opset=request.opset)
    (ch, cw), _ = result.check_sizes
    return (
        f"wrote {result.path} (ONNX opset {result.info.opset}, FA {result.info.fa}; inputs "
        "content (1,3,H,W), style (1,3,Hs,Ws), alpha; sides >= 16 px); onnxruntime vs PyTorch "
        f"at {cw}x{ch}: max abs diff {result.max_abs_diff:.2g}"
    )


def _check_pt2(request: ExportRequest) -> None:
    from photostyle.deploy.torch_export import check_pt2_path  # torch.export, when asked for

    check_pt2_path(request.out)


def _export_pt2(model: PhotoStylizer, weights: Path, request: ExportRequest) -> str:
    from photostyle.deploy.torch_export import export_pt2

    pt2 = export_pt2(model, request.out)
    return (
        f"wrote {pt2.path} (torch.export, FA {pt2.fa}; inputs content (1,3,H,W), style "
        f"(1,3,Hs,Ws), alpha; sides >= 16 px); vs eager: max abs diff {pt2.max_abs_diff:.2g}"
    )


EXPORT_REGISTRY: Registry[ExportFormat] = Registry("export format")  # name -> format, in order


def _register_builtins() -> None:
    for spec in (
        ExportFormat(
            "onnx",
            ".onnx",
            "an ONNX graph",
            _check_onnx,
            _export_onnx,
            modules=("onnx", "onnxruntime"),
        ),
        ExportFormat("pt2", ".pt2", "a torch.export ExportedProgram", _check_pt2, _export_pt2),
    ):
        EXPORT_REGISTRY.register(spec.name, spec)


_register_builtins()

EXPORT_FORMATS: Sequence[str] = EXPORT_REGISTRY.names()  # --format choices, in order
DEFAULT_EXPORT_FORMAT = "onnx"  # what photostyle export writes without --format


def export_format(name: str) -> ExportFormat:
    """The registered format ``name``.

    Raises:
        ValueError: no such format (the message names the choices).
    """
    return EXPORT_REGISTRY.get(name)


def check_export_modules(name: str) -> None:
    """Raise a one-line ValueError unless the packages format ``name`` needs are importable."""
    for module in export_format(name).modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(
                f"{name.upper()} export needs the deploy extra ({err}): "
                "pip install 'photostyle[deploy]'"
            ) from err
