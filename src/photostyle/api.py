"""Inference API: load a trained stylizer once, stylize many photos."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch

from photostyle.deploy.backends import BACKENDS, backend_spec
from photostyle.inference import (
    STAGES,
    NetworkBackend,
    StageHook,
    StylizeOptions,
    WorkingStyle,
    resolve_options,
    stylize_photo,
    timed_stage,
    working_size,
    working_style,
)
from photostyle.io import check_output_path, load_image, load_mask, save_image
from photostyle.models.checkpoint import load_stylizer
from photostyle.models.layers import FAVariant
from photostyle.models.stylizer import head_spec
from photostyle.models.weights import (
    check_sha256,
    stylizer_file,
)
from photostyle.utils import auto_dtype, resolve_device

DEFAULT_MAX_SIZE = 1024
Backend = str  # a name in photostyle.deploy.backends.BACKENDS ("torch", "onnxruntime")


class Stylizer:
    """A trained photorealistic stylizer (paper Fig. 2), ready for inference.

    Args:
        weights: stylizer checkpoint (``.safetensors``), or a bundled model's name (``"affine"``,
            the default, or ``"decoder"``, the previous release); None loads the default.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        encoder_weights: VGG weights the decoder was trained with; None = bundled ImageNet VGG16.
        fa: default FA variant; None = the variant stored in the checkpoint's metadata.
        dtype: compute dtype (float32; bfloat16 on CPUs/GPUs that support it); ``"auto"``:
            bfloat16 where it was measured faster at the same quality (the affine head with the
            torch backend on a CPU with AVX-512 BF16 or AMX, :func:`photostyle.utils.auto_dtype`),
            else float32.
        backend: ``"torch"``, or ``"onnxruntime"`` to run the network pass as an ONNX export
            (:mod:`photostyle.deploy.onnx`; float32, no semantic masks; resizing stays in torch).
        onnx_path: with ``"onnxruntime"``: a file from ``photostyle export``, checked to hold
            this checkpoint's network; None = export once into ``~/.cache/photostyle/onnx``.
        channels_last: run the network's convolutions in NHWC memory layout (faster; the same
            result up to float rounding).

    Raises:
        WeightsError: a weights file is missing, unreadable, not a stylizer checkpoint, or does
            not fit the architecture in its metadata (one-line message naming the file).
        ValueError: unknown ``fa`` variant, or CUDA asked for but missing.

    Example:
        >>> stylizer = Stylizer()  # doctest: +SKIP
        >>> out = stylizer.stylize(content, style)  # (3, H, W) in [0, 1]  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        encoder_weights: str | Path | None = None,
        fa: FAVariant | None = None,
        dtype: torch.dtype | Literal["auto"] = torch.float32,
        backend: Backend = "torch",
        onnx_path: str | Path | None = None,
        channels_last: bool = True,
    ) -> None:
        spec = backend_spec(backend)
        if onnx_path is not None and not spec.takes_file:
            raise ValueError("an ONNX file needs the onnxruntime backend")
        if dtype != "auto":
            spec.check_dtype(dtype)
        path, sha256 = stylizer_file(weights)
        if sha256 is not None:
            check_sha256(path, sha256)
        model, saved = load_stylizer(path, encoder_weights=encoder_weights, fa=fa)
        config = model.config
        self.config = config
        self.path = path
        self.meta = saved.meta
        self.device = resolve_device(device)
        if dtype == "auto":  # bfloat16 where measured faster, if this backend computes in it
            picked = auto_dtype(self.device, head_spec(config.head))
            dtype = picked if picked in spec.dtypes else spec.dtypes[0]
        spec.check_head(config.head, path)
        self.model = model.to(self.device, dtype).eval()
        # NHWC convolutions: 4-10% faster on this project's CPU, same output to 3e-7
        # (photostyle speed); they also pay on recent GPUs.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.dtype = dtype
        self.backend = backend
        # The network pass at working size (photostyle.inference), by the chosen backend.
        self.network: NetworkBackend = spec.load(
            self.model, path, onnx_path, fa, self.memory_format
        )
        if self.network.fixed_fa is not None:  # an export runs the variant it was made with
            self.config = replace(self.config, fa=self.network.fixed_fa)

    @torch.inference_mode()
    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        content_mask: torch.Tensor | None = None,
        style_mask: torch.Tensor | None = None,
        options: StylizeOptions | None = None,
        on_stage: StageHook | None = None,
    ) -> torch.Tensor:
        """Stylize one photo.

        The network runs at a working size (longest side ``options.max_size``). A model with the
        affine head (:mod:`photostyle.models.affine`) predicts a local affine colour model there,
        which is applied to the full-resolution content directly. A pixel decoder's result is
        brought back to the content's full size by ``options.upsample`` (default: a local affine
        colour model fitted at working size and applied to the full-resolution content, see
        :mod:`photostyle.upsample`). Either way edges and detail come from the original.

        Args:
            content: (3, H, W) RGB in [0, 1].
            style: (3, Hs, Ws) RGB in [0, 1].
            content_mask: optional (H, W) int64 labels (see :func:`photostyle.io.load_mask`).
            style_mask: optional (Hs, Ws) int64 labels; required with ``content_mask``.
            options: strength, working size, FA variant.
            on_stage: optional timing hook, called with ``(stage, seconds)`` after each of
                :data:`STAGES` (the style is then encoded apart, as :meth:`stylize_many` does;
                on CUDA the device is synchronised around each stage). Nothing else changes.

        Returns:
            (3, H, W) RGB in [0, 1].
        """
        opts = self.resolve_options(options)
        for name, t in (("content", content), ("style", style)):
            if t.ndim != 3 or t.shape[0] != 3:
                raise ValueError(f"{name} must be (3, H, W), got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{name} must be floating point in [0, 1], got {t.dtype}")
        if (content_mask is None) != (style_mask is None):
            raise ValueError("give both a content mask and a style mask, or neither")
        if content_mask is not None and content_mask.shape != content.shape[-2:]:
            raise ValueError("content mask size differs from the content image")
        if style_mask is not None and style_mask.shape != style.shape[-2:]:
            raise ValueError("style mask size differs from the style image")

        with timed_stage(on_stage, "resize", self.device):
            s = self._working_style(style, opts, style_mask)
        if on_stage is not None and self.network.encodes_style:
            with timed_stage(on_stage, "style_encoding", self.device):
                s = self.network.encode_style(s)
        return stylize_photo(
            self.network, content, s, opts, content_mask=content_mask, on_stage=on_stage
        )

    def resolve_options(self, options: StylizeOptions | None = None) -> StylizeOptions:
        """``options`` (default: all defaults) with this model's defaults filled in: ``max_size``
        None becomes its own working size (``ModelConfig.working_size``, chosen on the
        quality/speed frontier when the model was selected), ``fa`` and ``refine`` its own."""
        return resolve_options(options, self.config)

    def working_max_size(self, options: StylizeOptions) -> int:
        """The longest side the network works at under ``options``."""
        return options.max_size if options.max_size is not None else self.config.working_size

    @torch.inference_mode()
    def stylize_many(
        self,
        contents: Iterable[torch.Tensor],
        style: torch.Tensor,
        *,
        options: StylizeOptions | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stylize many photos with one style, encoding the style once (a generator).

        Each result equals :meth:`stylize` of that photo (up to float rounding); the style is
        resized and run through the encoder once, before the first photo (with the
        onnxruntime backend the exported graph encodes it on every call). ``contents`` is
        consumed lazily: one photo is read, stylized and yielded at a time, so a folder of any
        length runs in the memory of one photo.

        Args:
            contents: (3, H, W) RGB photos in [0, 1], any sizes.
            style: (3, Hs, Ws) RGB in [0, 1].
            options: strength, working size, FA variant, upsampling (the same for every photo).

        Yields:
            (3, H, W) RGB in [0, 1], one per photo, in order.
        """
        opts = self.resolve_options(options)
        if style.ndim != 3 or style.shape[0] != 3 or not style.is_floating_point():
            raise ValueError(f"style must be a float (3, H, W) tensor, got {tuple(style.shape)}")
        s = self.network.encode_style(self._working_style(style, opts))
        for content in contents:
            if content.ndim != 3 or content.shape[0] != 3 or not content.is_floating_point():
                raise ValueError(
                    f"content must be a float (3, H, W) tensor, got {tuple(content.shape)}"
                )
            yield stylize_photo(self.network, content, s, opts)

    def _working_style(
        self, style: torch.Tensor, opts: StylizeOptions, mask: torch.Tensor | None = None
    ) -> WorkingStyle:
        """The style (and its mask) at working size, the image in the compute dtype.

        Shape: style (3, Hs, Ws), mask (Hs, Ws) -> image (1, 3, hs, ws), labels (1, hs, ws).
        """
        # Resizing and upsampling stay in float32; only the network computes in ``dtype``.
        return working_style(style, self.working_max_size(opts), self.device, self.dtype, mask)

    def stylize_files(
        self,
        content: str | Path,
        style: str | Path,
        out: str | Path,
        *,
        content_mask: str | Path | None = None,
        style_mask: str | Path | None = None,
        options: StylizeOptions | None = None,
        protect: Iterable[str | Path] = (),
    ) -> Path:
        """Read, stylize and write atomically; never writes onto an input file.

        The output path is checked before any work: an unsupported suffix, a directory or one of
        the inputs (or ``protect``) is refused with :class:`~photostyle.io.ImageError`. On any
        failure no output file is left behind and an existing ``out`` is untouched.

        Args:
            content: content photo file.
            style: style photo file.
            out: output image (``.png``, ``.jpg``, ``.webp``, ``.tif``, ``.bmp``).
            content_mask: optional DPST colour mask of the content.
            style_mask: optional DPST colour mask of the style; required with ``content_mask``.
            options: strength, working size, FA variant.
            protect: further paths that must not be overwritten.

        Returns:
            ``out`` as a :class:`~pathlib.Path`.

        Raises:
            ImageError: an input cannot be read or ``out`` cannot be written.
            ValueError: one mask without the other, or bad options.
        """
        inputs = [p for p in (content, style, content_mask, style_mask) if p is not None]
        protected = [*inputs, *protect]  # ``protect`` may be a one-shot iterator
        check_output_path(out, protect=protected)
        c = load_image(content)
        s = load_image(style)
        cm = sm = None
        if content_mask is not None or style_mask is not None:
            if content_mask is None or style_mask is None:
                raise ValueError("give both a content mask and a style mask, or neither")
            cm = load_mask(content_mask, (c.shape[1], c.shape[2]))
            sm = load_mask(style_mask, (s.shape[1], s.shape[2]))
        result = self.stylize(c, s, content_mask=cm, style_mask=sm, options=options)
        return save_image(result, out, protect=protected)


# The facade; STAGES, StageHook, StylizeOptions and working_size live in photostyle.inference and
# are importable from here as before.
__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_SIZE",
    "STAGES",
    "Backend",
    "StageHook",
    "StylizeOptions",
    "Stylizer",
    "working_size",
]
