"""Export the stylizer network to ONNX and run it with onnxruntime.

The exported graph is one pass of :class:`~photostyle.models.stylizer.PhotoStylizer` at working
size; :class:`OnnxNetwork` runs it as a :class:`photostyle.inference.NetworkBackend` (resizing and
upsampling stay in :mod:`photostyle.inference` and are shared by both backends)::

    content (1, 3, H, W)   float32 RGB in [0, 1]
    style   (1, 3, Hs, Ws) float32 RGB in [0, 1]   ->   image (1, 3, H, W) float32, unclamped
    alpha   ()             float32 in [0, 1]

H, W, Hs and Ws are dynamic: any size with both sides at least 16 px (the encoder's minimum:
relu4_1 at 1/8 scale needs 2 px for reflection padding); odd sizes are unpooled exactly as by
PyTorch's ``max_unpool2d``. The batch is 1. The FA variant is fixed at export time and semantic
masks are not part of the graph. The file's ``metadata_props`` say what it is (:class:`OnnxInfo`).

The TorchScript-based exporter is used (the torch.export-based one needs ``onnxscript``, which is
not a dependency). Two parts of the forward pass are written differently for it, in
:class:`ExportableStylizer`; the results are those of the PyTorch model (checked at export):

- ``max_unpool2d`` has no ONNX translation: :func:`unpool` scatters the pooled values to their
  recorded indices (ONNX ``ScatterElements``), which is what ``max_unpool2d`` does.
- ``alpha`` is a graph input, not a Python number: the FA blend ``alpha * z + (1 - alpha) * x``
  is always computed (:func:`aggregate`; exact at alpha 0 and 1).
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from photostyle.inference import NetworkOutput, WorkingStyle
from photostyle.models.decoder import residual_tail
from photostyle.models.encoder import MIN_SIDE
from photostyle.models.layers import FAVariant, fa_names, fa_none, fa_variant
from photostyle.models.stylizer import ModelConfig, PhotoStylizer
from photostyle.models.weights import WeightsError
from photostyle.utils import atomic_path, check_writable, sha256_file

ONNX_FORMAT = "photostyle.stylizer.onnx"  # value of the "photostyle.format" metadata entry
ONNX_FORMAT_VERSION = 1  # inputs, outputs and metadata keys as described in this module
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 20  # 20: the TorchScript-based exporter's newest opset
INPUT_NAMES = ("content", "style", "alpha")
OUTPUT_NAME = "image"
PARITY_TOLERANCE = 1e-3  # export check: largest allowed |onnxruntime - PyTorch| on the check pairs
# (content (H, W), style (H, W)) of the traced example, and of the export check (other, odd sizes).
TRACE_SIZES = ((64, 48), (48, 64))
CHECK_SIZES = ((37, 50), (45, 33))
EXPORTABLE_FA = fa_names(lambda spec: spec.exportable)  # FA variants with an ONNX graph

# Declared signature of the graph: (1, 3, H, W) images, a 0-d alpha (see the module docstring).
_SHAPES: dict[str, list[int | str]] = {
    "content": [1, 3, "height", "width"],
    "style": [1, 3, "style_height", "style_width"],
    "alpha": [],
    "image": [1, 3, "height", "width"],
}


class OnnxError(WeightsError):
    """An ONNX file is unreadable, not a photostyle export, or does not fit the loaded model."""


def check_exportable(fa: str) -> None:
    """Raise ``ValueError`` unless the FA variant ``fa`` has an ONNX graph."""
    if not fa_variant(fa).exportable:
        raise ValueError(
            f"FA variant {fa!r} cannot be exported to ONNX (see photostyle.deploy.onnx); "
            f"choose from {EXPORTABLE_FA}"
        )


def check_opset(opset: int) -> None:
    """Raise ``ValueError`` unless ``opset`` is one the export supports."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be {MIN_OPSET} to {MAX_OPSET}, got {opset}")


def unpool(x: torch.Tensor, indices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.max_unpool2d`` written as a scatter, which the ONNX exporter can translate.

    Args:
        x: pooled values.
        indices: their positions in each (H, W) plane, from ``F.max_pool2d(return_indices=True)``.
        size: (H, W) of the unpooled planes (odd sizes included).

    Shape: x (B, C, h, w), indices (B, C, h, w) -> (B, C, H, W), zero where nothing lands.
    """
    b, c = x.shape[0], x.shape[1]
    out = x.new_zeros(b, c, size[0] * size[1])  # (B, C, H*W)
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(b, c, size[0], size[1])


def aggregate(x: torch.Tensor, y: torch.Tensor, fa: str, alpha: torch.Tensor) -> torch.Tensor:
    """FA of one pair with a tensor ``alpha``, as ``photostyle.models.layers.feature_aggregation``.

    Args:
        x: content-side features.
        y: style features; the spatial size may differ from ``x``.
        fa: FA variant, one of :data:`EXPORTABLE_FA`.
        alpha: strength in [0, 1], a 0-d tensor.

    Shape: x (1, C, H, W), y (1, C, Hs, Ws), alpha () -> (1, C, H, W).
    """
    transform = fa_variant(fa).transform
    if transform is fa_none:
        return x  # the identity, whatever alpha
    z = transform(x.flatten(2)[0], y.flatten(2)[0]).view_as(x)  # (C, N) -> (1, C, H, W)
    return alpha * z + (1 - alpha) * x


class ExportableStylizer(nn.Module):
    """``PhotoStylizer(content, style, alpha=alpha).image`` for one pair, in exportable ops.

    Shares the encoder and the decoder (so the weights) of ``model`` and runs
    :meth:`Decoder.decode <photostyle.models.decoder.Decoder.decode>` without labels, with
    :func:`unpool` and :func:`aggregate` for ``max_unpool2d`` and the FA layers.

    Args:
        model: the stylizer, in float32.
        fa: FA variant baked into the graph, one of :data:`EXPORTABLE_FA`.
    """

    def __init__(self, model: PhotoStylizer, fa: FAVariant) -> None:
        super().__init__()
        check_exportable(fa)
        self.encoder = model.encoder
        self.decoder = model.pixel_decoder
        self.variant = fa

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        """Shape: content (1, 3, H, W), style (1, 3, Hs, Ws), alpha () -> (1, 3, H, W)."""
        dec, k, fa = self.decoder, self.decoder.feature_scale, self.variant
        c, s = self.encoder(content), self.encoder(style)
        h, _ = dec.decode(c, lambda level, x: aggregate(x, s.taps[level] * k, fa, alpha), unpool)
        if dec.residual:  # the image-level base, then the change scaled by alpha
            h = residual_tail(content, h, alpha, fa, lambda x: aggregate(x, style, fa, alpha))
        return h  # (1, 3, H, W)


def params_sha256(model: nn.Module) -> str:
    """Digest of a module's tensors (names, shapes, float32 values), whatever their file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class OnnxInfo:
    """What a photostyle ONNX file says about itself, stored as its ``metadata_props``."""

    fa: FAVariant  # FA variant baked into the graph
    config: ModelConfig  # architecture of the source stylizer (its ``fa`` is the exported one)
    weights_sha256: str  # sha256 of the source checkpoint file
    params_sha256: str  # params_sha256() of the source network: what the Stylizer check compares
    opset: int  # ONNX opset of the graph
    photostyle_version: str  # photostyle version that exported the file
    format_version: int = ONNX_FORMAT_VERSION  # layout of inputs, outputs and metadata

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` entries (all strings; keys prefixed ``photostyle.``)."""
        return {
            "photostyle.format": ONNX_FORMAT,
            "photostyle.format_version": str(self.format_version),
            "photostyle.version": self.photostyle_version,
            "photostyle.fa": self.fa,
            "photostyle.model_config": json.dumps(self.config.to_dict(), sort_keys=True),
            "photostyle.weights_sha256": self.weights_sha256,
            "photostyle.params_sha256": self.params_sha256,
            "photostyle.opset": str(self.opset),
            "photostyle.min_side": str(MIN_SIDE),
            "photostyle.inputs": "content (1,3,H,W), style (1,3,Hs,Ws): float32 RGB in [0,1]; "
            "alpha (): float32 in [0,1]",
            "photostyle.outputs": "image (1,3,H,W): float32 RGB, unclamped",
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str | Path) -> OnnxInfo:
        """Read the entries written by :meth:`to_metadata`.

        Raises:
            OnnxError: not a photostyle export, a newer format, or damaged entries.
        """
        if meta.get("photostyle.format") != ONNX_FORMAT:
            raise OnnxError(f"{source}: not a photostyle ONNX export (no photostyle metadata)")
        try:
            version = int(meta.get("photostyle.format_version", "missing"))
        except ValueError as err:
            raise OnnxError(f"{source}: damaged photostyle metadata ({err})") from err
        if version > ONNX_FORMAT_VERSION:
            raise OnnxError(
                f"{source}: written by a newer photostyle (format version {version}); update "
                "photostyle or export the file again with this one"
            )
        try:
            raw = json.loads(meta["photostyle.model_config"])
            if not isinstance(raw, dict):
                raise TypeError(f"model_config is a {type(raw).__name__}, not an object")
            fa = meta["photostyle.fa"]
            check_exportable(fa)
            info = cls(
                fa=cast(FAVariant, fa),
                config=ModelConfig.from_dict(raw),
                weights_sha256=meta["photostyle.weights_sha256"],
                params_sha256=meta["photostyle.params_sha256"],
                opset=int(meta["photostyle.opset"]),
                photostyle_version=meta["photostyle.version"],
                format_version=version,
            )
        except KeyError as err:
            raise OnnxError(f"{source}: photostyle metadata entry {err} missing") from err
        except (ValueError, TypeError) as err:
            raise OnnxError(f"{source}: damaged photostyle metadata ({err})") from err
        return info


class OnnxNetwork:
    """An exported stylizer network run by onnxruntime (the ``onnxruntime`` Stylizer backend, a
    :class:`photostyle.inference.NetworkBackend`).

    Args:
        path: a file written by :func:`export_onnx`.
        threads: intra-op threads; None = ``torch.get_num_threads()``, as the PyTorch backend.
        providers: onnxruntime execution providers; None = ``["CPUExecutionProvider"]``.

    Raises:
        OnnxError: a missing or unreadable file, not a photostyle export, or inputs and outputs
            other than those of the format (one-line message naming the file).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        providers: Iterable[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort  # the deploy extra; export to pt2 works without it
        except ImportError as err:
            raise OnnxError(
                f"the onnxruntime backend needs the deploy extra ({err}): "
                "pip install 'photostyle[deploy]'"
            ) from err
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as err:  # onnxruntime's errors derive from Exception alone
            raise OnnxError(f"{self.path}: not a readable ONNX model ({_first_line(err)})") from err
        self.info = OnnxInfo.from_metadata(
            self.session.get_modelmeta().custom_metadata_map, self.path
        )
        inputs = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if inputs != INPUT_NAMES or outputs != (OUTPUT_NAME,):
            raise OnnxError(f"{self.path}: inputs and outputs are not those of a photostyle export")

    def __call__(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        alpha: float = 1.0,
        fa: FAVariant | None = None,
    ) -> torch.Tensor:
        """One network pass at working size.

        Args:
            content: RGB in [0, 1].
            style: RGB in [0, 1].
            alpha: FA strength in [0, 1].
            fa: the FA variant the caller expects; None = the exported one.

        Returns:
            The stylized image, unclamped, on ``content``'s device and dtype.

        Raises:
            ValueError: other shapes, a side under 16 px, ``alpha`` outside [0, 1], or an FA
                variant other than the exported one.

        Shape: content (1, 3, H, W), style (1, 3, Hs, Ws) -> (1, 3, H, W).
        """
        if fa is not None and fa != self.info.fa:
            raise ValueError(
                f"{self.path.name} was exported with FA {self.info.fa!r}, not {fa!r}; "
                "export it again with that FA variant"
            )
        for name, t in (("content", content), ("style", style)):
            if t.ndim != 4 or t.shape[:2] != (1, 3):
                raise ValueError(f"{name} must be (1, 3, H, W), got {tuple(t.shape)}")
            if min(t.shape[-2:]) < MIN_SIDE:
                raise ValueError(f"{name} sides must be at least {MIN_SIDE} px: {tuple(t.shape)}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        feeds = {
            "content": _to_numpy(content),
            "style": _to_numpy(style),
            "alpha": np.asarray(alpha, dtype=np.float32),
        }
        (image,) = self.session.run([OUTPUT_NAME], feeds)
        return torch.from_numpy(image).to(content.device, content.dtype)

    encodes_style = False  # the graph encodes the style on every call

    @property
    def fixed_fa(self) -> FAVariant:
        """The FA variant the graph was exported with."""
        return self.info.fa

    def encode_style(self, style: WorkingStyle) -> WorkingStyle:
        """``style`` as it is: the graph encodes it itself (see :class:`NetworkBackend
        <photostyle.inference.NetworkBackend>`)."""
        return style

    def run(
        self,
        content: torch.Tensor,
        style: WorkingStyle,
        *,
        alpha: float,
        fa: FAVariant,
        refine: int = 0,
        content_labels: torch.Tensor | None = None,
    ) -> NetworkOutput:
        """One network pass as a :class:`~photostyle.inference.NetworkBackend` (see
        :meth:`__call__`; a precomputed style encoding is not used).

        Raises:
            ValueError: semantic masks or refinement asked for (not part of the graph), or as
                :meth:`__call__`.

        Shape: content (1, 3, H, W) -> image (1, 3, H, W).
        """
        if content_labels is not None or style.labels is not None:
            raise ValueError("the onnxruntime backend does not support semantic masks")
        if refine:
            raise ValueError("the onnxruntime backend does not refine (pixel decoders only)")
        return NetworkOutput(image=self(content, style.image, alpha=alpha, fa=fa))


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote."""

    path: Path  # the ONNX file
    info: OnnxInfo  # its metadata
    max_abs_diff: float  # largest |onnxruntime - PyTorch| over the check pairs (alpha 1 and 0.5)
    check_sizes: tuple[tuple[int, int], tuple[int, int]]  # (H, W) of the check content and style


def check_onnx_path(path: str | Path, *, protect: Iterable[str | Path] = ()) -> Path:
    """Refuse an export target that is not a ``.onnx`` file, is a directory or is an input.

    Raises:
        ValueError: one-line message naming ``path``.
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: the output must be a .onnx file")
    check_writable(path)  # not a directory, in a folder that can be written
    for other in protect:
        if Path(other).exists() and path.resolve() == Path(other).resolve():
            raise ValueError(f"{path}: refusing to overwrite an input file")
    return path


def export_onnx(
    model: PhotoStylizer,
    out: str | Path,
    *,
    weights: str | Path,
    fa: FAVariant | None = None,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export a stylizer network to an ONNX file, check it and compare it with PyTorch.

    :class:`ExportableStylizer` is traced on the CPU in float32 with dynamic heights and widths,
    the metadata (:class:`OnnxInfo`) added, the model validated by ``onnx.checker`` (full check)
    and run by onnxruntime on a pair of other, odd sizes (:data:`CHECK_SIZES`) at alpha 1 and 0.5
    to compare with the PyTorch model. Only a file that passes all of this replaces ``out``
    (atomic write).

    Args:
        model: the stylizer network (any device and dtype; it is not changed, the export is
            float32).
        out: the ``.onnx`` file to write.
        weights: the checkpoint file ``model`` was loaded from (its sha256 goes into the
            metadata; ``out`` may not be it).
        fa: FA variant baked into the graph; None = ``model.config.fa``.
        opset: ONNX opset, :data:`MIN_OPSET` to :data:`MAX_OPSET`.

    Returns:
        The path, metadata and measured difference.

    Raises:
        ValueError: an FA variant without ONNX graph (``wct``), an opset out of range, or an
            output that is not a ``.onnx`` file.
        OnnxError: the graph fails the checker or differs from PyTorch by more than
            :data:`PARITY_TOLERANCE`.
    """
    import onnx  # only the exporter needs the onnx package

    from photostyle.version import __version__

    config = model.config
    variant = fa or config.fa
    if config.head != "decoder":
        raise ValueError(
            f"{weights}: ONNX export handles pixel-decoder stylizers only, this one has "
            f"the {config.head} head (the previous release's model, weights 'decoder', "
            "exports)"
        )
    check_exportable(variant)
    check_opset(opset)
    out = check_onnx_path(out, protect=[weights])
    model = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's stays as it is
    info = OnnxInfo(
        fa=variant,
        config=replace(config, fa=variant),
        weights_sha256=sha256_file(weights),
        params_sha256=params_sha256(model),
        opset=opset,
        photostyle_version=__version__,
    )
    gen = torch.Generator().manual_seed(0)
    (ch, cw), (sh, sw) = TRACE_SIZES
    example = (
        torch.rand(1, 3, ch, cw, generator=gen),
        torch.rand(1, 3, sh, sw, generator=gen),
        torch.tensor(0.5),
    )
    with atomic_path(out) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            # TracerWarnings of the shape checks (constant in the graph, inputs are checked by
            # OnnxNetwork) and the notice that the TorchScript-based exporter is the legacy one.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ExportableStylizer(model, variant).eval(),
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    "content": {2: "height", 3: "width"},
                    "style": {2: "style_height", 3: "style_width"},
                    OUTPUT_NAME: {2: "height", 3: "width"},
                },
            )
        proto = onnx.load(str(tmp))
        _declare_signature(proto.graph)
        for key, value in info.to_metadata().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = "photostyle stylizer network at working size (see photostyle.inputs)"
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as err:  # shape inference errors included
            raise OnnxError(f"{out}: the exported graph fails the ONNX checker: {err}") from err
        onnx.save(proto, str(tmp))
        diff = _parity(OnnxNetwork(tmp, threads=1), model, variant)
        if not diff <= PARITY_TOLERANCE:
            raise OnnxError(
                f"{out}: onnxruntime and PyTorch differ by {diff:.3g} (> {PARITY_TOLERANCE})"
            )
    return ExportResult(path=out, info=info, max_abs_diff=diff, check_sizes=CHECK_SIZES)


def _declare_signature(graph: Any) -> None:
    """Give the graph the inputs and output of the format, in order, with their shapes.

    The exporter drops inputs that the graph does not use (``style`` with FA ``none``) and names
    the output's batch dimension after a node; the declared signature is the same for every file.
    """
    import onnx

    def value(name: str) -> Any:
        return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, _SHAPES[name])

    del graph.input[:]
    graph.input.extend(value(name) for name in INPUT_NAMES)
    del graph.output[:]
    graph.output.append(value(OUTPUT_NAME))


def _parity(network: OnnxNetwork, model: PhotoStylizer, fa: FAVariant) -> float:
    """Largest |onnxruntime - PyTorch| (FA ``fa``) on a random pair of :data:`CHECK_SIZES`, at
    alpha 1 and 0.5."""
    gen = torch.Generator().manual_seed(1)
    (ch, cw), (sh, sw) = CHECK_SIZES
    content = torch.rand(1, 3, ch, cw, generator=gen)
    style = torch.rand(1, 3, sh, sw, generator=gen)
    diff = 0.0
    with torch.no_grad():
        for alpha in (1.0, 0.5):
            expected = model(content, style, alpha=alpha, variant=fa).image
            got = network(content, style, alpha=alpha)
            diff = max(diff, float((got - expected).abs().max()))
    return diff


def default_cache_dir() -> Path:
    """Where :func:`load_backend` keeps exports it made: ``~/.cache/photostyle/onnx``."""
    return Path.home() / ".cache" / "photostyle" / "onnx"


def load_backend(
    model: PhotoStylizer,
    weights: str | Path,
    onnx_path: str | Path | None = None,
    *,
    fa: FAVariant | None = None,
    cache_dir: str | Path | None = None,
) -> OnnxNetwork:
    """The onnxruntime network of ``model``: ``onnx_path`` checked against it, or an export.

    Without ``onnx_path`` the network is exported once (FA ``model.config.fa``, opset
    :data:`DEFAULT_OPSET`) into ``cache_dir``, in a file named by the weights' digest, the FA
    variant, the opset and the format version, and reused by later calls.

    Args:
        model: the loaded stylizer network (the reference for the checks).
        weights: the checkpoint file it was loaded from.
        onnx_path: a file written by :func:`export_onnx`; None = the cached export.
        fa: FA variant asked for; None = whichever the file was exported with.
        cache_dir: folder of the cached exports; None = :func:`default_cache_dir`.

    Raises:
        OnnxError: the file is not a photostyle export, holds other weights than ``model``,
            or was exported with an FA variant other than ``fa``.
        ValueError: no ``onnx_path`` and an FA variant without ONNX graph.
    """
    digest = params_sha256(model)
    if onnx_path is None:
        check_exportable(model.config.fa)
        name = f"{digest[:16]}-{model.config.fa}-opset{DEFAULT_OPSET}-v{ONNX_FORMAT_VERSION}"
        path = Path(cache_dir or default_cache_dir()) / f"{name}.onnx"
        network = _open_cached(path)
        if network is None:
            export_onnx(model, path, weights=weights)
            network = OnnxNetwork(path)
    else:
        network = OnnxNetwork(onnx_path)
    if network.info.params_sha256 != digest:
        raise OnnxError(
            f"{network.path}: exported from other weights (sha256 "
            f"{network.info.weights_sha256[:12]}...) than {Path(weights).name}; load the "
            "checkpoint it was exported from"
        )
    if fa is not None and fa != network.info.fa:
        raise OnnxError(
            f"{network.path}: exported with FA {network.info.fa!r}, not {fa!r}; "
            "export it again with that FA variant"
        )
    return network


def _open_cached(path: Path) -> OnnxNetwork | None:
    """The cached export at ``path``, or None when there is none (or it is damaged)."""
    if not path.is_file():
        return None
    try:
        return OnnxNetwork(path)
    except OnnxError:
        return None


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
