"""Small shared helpers: atomic file writes, hashing, device selection, matplotlib, messages."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

_TOKEN_BYTES = 6  # random bytes in the name of atomic_path's temporary file


def _temporary_name(path: Path, token: str) -> Path:
    """The temporary file :func:`atomic_path` writes ``path`` through (hidden, same suffix)."""
    return path.parent / f".{path.stem}.{token}.tmp{path.suffix}"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (writers that pick a format from it still work). On
    any exception the temporary file is removed and ``path`` is left untouched. A process killed
    outright leaves it behind: :func:`remove_stale_temporaries` removes it later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path, secrets.token_hex(_TOKEN_BYTES))
    # os.open honours the umask (unlike mkstemp's 0600), so results get ordinary permissions.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    mode = os.stat(tmp).st_mode
    try:
        yield tmp
        os.chmod(tmp, mode)  # writers that recreate the file (safetensors) would leave 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left beside ``path`` when killed outright.

    Call it only while no other process writes ``path`` (e.g. when a run resumes).

    Returns:
        The files removed.
    """
    path = Path(path)
    token = re.compile(rf"[0-9a-f]{{{2 * _TOKEN_BYTES}}}")
    stale = [
        tmp
        for tmp in path.parent.glob(_temporary_name(path, "*").name)
        if token.fullmatch(tmp.name[len(path.stem) + 2 : -len(f".tmp{path.suffix}")])
    ]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def write_json(path: str | Path, data: object, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (UTF-8) to ``path`` atomically: the old file stays on any error.

    Returns:
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent), encoding="utf-8")
    return path


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def check_writable(path: str | Path, *, folder: bool = False) -> Path:
    """Check, before any work, that a file (or with ``folder`` a folder) can be written at ``path``.

    Missing parent folders are fine (writers create them); the nearest existing one must be a
    folder in which a file can be created: that is tried (a hidden file, removed at once), since
    permission bits do not tell (root may write anywhere they allow, yet not in ``/proc`` or on a
    read-only mount).

    Raises:
        ValueError: ``path`` is a folder where a file is wanted (or a file where a folder is),
            one of its parents is a file, or the nearest existing parent is not writable.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file, not a folder")
    if not folder and path.is_dir():
        raise ValueError(f"{path}: is a directory")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{path}: {parent} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".photostyle-check-"):
            pass
    except OSError as err:
        raise ValueError(f"{path}: cannot write in {parent} ({err.strerror or err})") from err
    return path


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


def cpu_bfloat16_units() -> bool | None:
    """Whether this CPU has bfloat16 matrix units (AVX-512 BF16 or AMX); None when PyTorch
    cannot tell (its probes are private and may move)."""
    probes = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    known = [probe for probe in probes if probe is not None]
    return any(bool(probe()) for probe in known) if known else None


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix units (AVX-512 BF16 or AMX).

    Without them PyTorch computes bfloat16 with reference kernels: a 1024 x 1024 ``torch.mm``
    measured 0.9 GFLOP/s in bfloat16 against 154 GFLOP/s in float32 on an AVX2-only CPU. True when
    PyTorch cannot tell (:func:`cpu_bfloat16_units` is None).
    """
    return cpu_bfloat16_units() is not False


class BFloat16Capability(Protocol):
    """What :func:`auto_dtype` asks of a stylizer head's registration
    (:class:`photostyle.models.stylizer.HeadSpec`)."""

    @property
    def auto_bfloat16(self) -> bool:
        """Whether the head's network was measured faster in bfloat16 at the same quality."""
        ...


def auto_dtype(device: torch.device, head: BFloat16Capability) -> torch.dtype:
    """The network's compute dtype for ``dtype="auto"``: bfloat16 only where it was measured
    faster at the same quality, else float32.

    That is a head registered with ``auto_bfloat16`` (the affine head) on a CPU known to have
    bfloat16 units (:func:`cpu_bfloat16_units`): with AVX-512 BF16 the default stylizer took
    0.71-0.79x float32's time per call, its result within 57-58 dB PSNR of float32's and the
    dev-pair scores within 0.001. CUDA, other heads and CPUs without the units (or where PyTorch
    cannot tell) get float32: not measured faster there.

    Args:
        device: where the network runs.
        head: the registration of the stylizer's head
            (:func:`photostyle.models.stylizer.head_spec`).
    """
    if device.type == "cpu" and head.auto_bfloat16 and cpu_bfloat16_units():
        return torch.bfloat16
    return torch.float32


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
