"""The file formats ``photostyle export`` writes, registered once with what each needs.

Each format is an :class:`ExportFormat`: its name (``--format``), the suffix of its files, a
one-line description and the optional packages it needs (the ``deploy`` extra). The command's
choices, default and help come from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from photostyle.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    """One export format."""

    name: str  # its --format value
    suffix: str  # the suffix of its files (".onnx")
    description: str  # what it is, for --help
    modules: tuple[str, ...] = ()  # modules it needs beyond photostyle's requirements


EXPORT_REGISTRY: Registry[ExportFormat] = Registry("export format")  # name -> format, in order


def _register_builtins() -> None:
    for spec in (
        ExportFormat("onnx", ".onnx", "an ONNX graph", ("onnx", "onnxruntime")),
        ExportFormat("pt2", ".pt2", "a torch.export ExportedProgram"),
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
