"""Small shared helpers: atomic file writes, hashing, device selection, matplotlib."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (writers that pick a format from it still work). On
    any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}"
    # os.open honours the umask (unlike mkstemp's 0600), so results get ordinary permissions.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode
    try:
        yield tmp
        os.chmod(tmp, mode)  # writers that recreate the file (safetensors) would leave 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is passed to torch.

    Raises:
        ValueError: not a device string torch knows (``"tpu"``), or a device whose backend is
            not available here (CUDA on a machine without a GPU); one-line message.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else torch.backends.mps
    if backend is None or not backend.is_available():
        raise ValueError(f"device {str(device)!r}: no {dev.type.upper()} device is available here")
    return dev


def resize_image(x: torch.Tensor, size: tuple[int, int], mode: str = "area") -> torch.Tensor:
    """Resize a batch of images; area averaging when shrinking, bilinear when growing.

    Shape: (B, C, H, W) -> (B, C, *size).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "area" and (size[0] > x.shape[-2] or size[1] > x.shape[-1]):
        mode = "bilinear"
    align = False if mode == "bilinear" else None
    return F.interpolate(x, size=size, mode=mode, align_corners=align)


class PlotUnavailable(ImportError):
    """matplotlib is not installed (``pip install 'photostyle[train]'``)."""


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend.

    Raises:
        PlotUnavailable: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise PlotUnavailable("plots need matplotlib: pip install 'photostyle[train]'") from err
    return plt


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix units (AVX-512 BF16 or AMX).

    Without them PyTorch computes bfloat16 with reference kernels: a 1024 x 1024 ``torch.mm``
    measured 0.9 GFLOP/s in bfloat16 against 154 GFLOP/s in float32 on an AVX2-only CPU. True when
    PyTorch cannot tell (its probes are private and may move).
    """
    probes = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    known = [probe for probe in probes if probe is not None]
    return not known or any(bool(probe()) for probe in known)


def check_bfloat16_speed(device: torch.device, what: str) -> None:
    """Refuse bfloat16 on a CPU without bfloat16 units, where it is about 100x slower.

    Raises:
        ValueError: ``device`` is a CPU without AVX-512 BF16 or AMX.
    """
    if device.type == "cpu" and not cpu_has_fast_bfloat16():
        raise ValueError(
            f"{what}: this CPU has no bfloat16 units (AVX-512 BF16 or AMX), where bfloat16 runs "
            "about 100x slower than float32; use float32"
        )
