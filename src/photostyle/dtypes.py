"""Floating-point types by name, registered once with what each is used for.

The inference network computes in a *compute* type (:class:`photostyle.Stylizer`'s ``dtype``,
``--dtype``); training's mixed precision runs the networks under an *autocast* type
(``TrainConfig.amp_dtype``). Flags, configs and benchmarks take their choices from here
(:data:`COMPUTE_DTYPES`, :data:`AUTOCAST_DTYPES`) and turn names into torch types with
:func:`torch_dtype`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Final, TypeAlias

import torch

from photostyle.registry import Registry


@dataclass(frozen=True)
class DtypeSpec:
    """One floating-point type and the uses it is offered for."""

    name: str  # its name in flags and configs ("bfloat16")
    dtype: torch.dtype  # the torch type
    compute: bool  # a compute type of the inference network (Stylizer dtype, --dtype)
    autocast: bool  # an autocast type of training's mixed precision (amp_dtype)
    cuda_only: bool  # runs on CUDA devices only (float16 autocast needs CUDA kernels)


DTYPE_REGISTRY: Registry[DtypeSpec] = Registry("dtype")  # name -> spec, in registration order


def _register_builtins() -> None:
    for spec in (
        DtypeSpec("float32", torch.float32, compute=True, autocast=False, cuda_only=False),
        DtypeSpec("bfloat16", torch.bfloat16, compute=True, autocast=True, cuda_only=False),
        DtypeSpec("float16", torch.float16, compute=False, autocast=True, cuda_only=True),
    ):
        DTYPE_REGISTRY.register(spec.name, spec)


_register_builtins()

DEFAULT_COMPUTE_DTYPE = "float32"  # the network's compute type unless asked otherwise
# The CLI's default: chosen per model and CPU (photostyle.utils.auto_dtype; Stylizer(dtype="auto"))
AUTO_DTYPE: Final = "auto"
COMPUTE_DTYPES: Sequence[str] = DTYPE_REGISTRY.names(lambda s: s.compute)  # --dtype choices
AUTOCAST_DTYPES: Sequence[str] = DTYPE_REGISTRY.names(lambda s: s.autocast)  # amp_dtype choices
# The name of an autocast type; the metadata lists the choices (typed config files, flags).
AutocastDtype: TypeAlias = Annotated[str, AUTOCAST_DTYPES]


def dtype_spec(name: str) -> DtypeSpec:
    """The registered type ``name``.

    Raises:
        ValueError: no such type (the message names the choices).
    """
    return DTYPE_REGISTRY.get(name)


def torch_dtype(name: str) -> torch.dtype:
    """The torch type of registered name ``name`` (``"bfloat16"`` -> ``torch.bfloat16``).

    Raises:
        ValueError: no such type (the message names the choices).
    """
    return dtype_spec(name).dtype
