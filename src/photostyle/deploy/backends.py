"""Backends of the network pass, registered once with what each supports.

A backend turns a loaded :class:`~photostyle.models.stylizer.PhotoStylizer` into a
:class:`~photostyle.inference.NetworkBackend`, the one network pass of the stylize path
(:mod:`photostyle.inference`). :class:`photostyle.Stylizer`'s ``backend=`` and the command line's
``--backend`` take their choices from here (:data:`BACKENDS`) and ask each spec what it runs:
which heads, which compute types, whether it takes a prebuilt network file (``--onnx``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from photostyle.inference import NetworkBackend, TorchBackend
from photostyle.models.layers import FAVariant
from photostyle.models.stylizer import PhotoStylizer, head_spec
from photostyle.registry import Registry

# (model, checkpoint path, network file or None, FA variant asked for or None, memory format)
BackendLoader = Callable[
    [PhotoStylizer, Path, "str | Path | None", "FAVariant | None", torch.memory_format],
    NetworkBackend,
]


@dataclass(frozen=True)
class BackendSpec:
    """One way of running the network pass, and what it supports."""

    name: str  # its name in ``backend=`` and ``--backend``
    load: BackendLoader  # builds the backend for a loaded model
    heads: tuple[str, ...]  # ModelConfig.head values it runs
    dtypes: tuple[torch.dtype, ...]  # compute types it offers (the first: its default)
    takes_file: bool  # runs a prebuilt network file (``onnx_path``, ``--onnx``)
    summary: str  # one phrase for the command line's help

    def check_dtype(self, dtype: torch.dtype) -> None:
        """Refuse a compute type this backend does not offer (one line naming both)."""
        if dtype not in self.dtypes:
            names = " or ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            raise ValueError(f"the {self.name} backend computes in {names} only")

    def check_head(self, head: str, path: Path) -> None:
        """Refuse a stylizer whose head this backend does not run (one line naming the file)."""
        if head not in self.heads:
            runs = " or ".join(head_spec(h).label for h in self.heads)
            raise ValueError(
                f"{path}: the {self.name} backend runs {runs} stylizers only, this one has the "
                f"{head} head (use the torch backend)"
            )


BACKEND_REGISTRY: Registry[BackendSpec] = Registry("backend")  # name -> spec, in listing order


def _torch(
    model: PhotoStylizer,
    path: Path,
    network_file: str | Path | None,
    fa: FAVariant | None,
    memory_format: torch.memory_format,
) -> NetworkBackend:
    return TorchBackend(model, memory_format=memory_format)


def _onnxruntime(
    model: PhotoStylizer,
    path: Path,
    network_file: str | Path | None,
    fa: FAVariant | None,
    memory_format: torch.memory_format,
) -> NetworkBackend:
    try:
        from photostyle.deploy.onnx import load_backend
    except ImportError as err:
        raise ValueError(
            f"the onnxruntime backend needs the deploy extra ({err}): "
            "pip install 'photostyle[deploy]'"
        ) from err
    return load_backend(model, path, network_file, fa=fa)


def _register_builtins() -> None:
    for spec in (
        BackendSpec(
            "torch",
            _torch,
            heads=("decoder", "affine"),
            dtypes=(torch.float32, torch.bfloat16),
            takes_file=False,
            summary="PyTorch (default)",
        ),
        BackendSpec(
            "onnxruntime",
            _onnxruntime,
            heads=("decoder",),
            dtypes=(torch.float32,),
            takes_file=True,
            summary="onnxruntime (an ONNX export; no masks)",
        ),
    ):
        BACKEND_REGISTRY.register(spec.name, spec)


_register_builtins()

BACKENDS = BACKEND_REGISTRY.names()  # backend= and --backend choices


def backend_spec(name: str) -> BackendSpec:
    """The registered backend ``name``.

    Raises:
        ValueError: no such backend (the message names the choices).
    """
    return BACKEND_REGISTRY.get(name)


__all__ = ["BACKENDS", "BACKEND_REGISTRY", "BackendLoader", "BackendSpec", "backend_spec"]
