"""Inference API: load a trained stylizer once, stylize many photos."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F

from photostyle.io import check_output_path, load_image, load_mask, save_image
from photostyle.models.affine import AffineHead
from photostyle.models.encoder import EncoderOutput
from photostyle.models.layers import FA_VARIANTS, FAVariant
from photostyle.models.refine import RefineSettings, refine_grade
from photostyle.models.stylizer import ModelConfig, PhotoStylizer
from photostyle.models.weights import (
    BUNDLED_VGG16_SHA256,
    STYLIZER_FORMAT,
    WeightsError,
    build_encoder,
    check_sha256,
    load_checkpoint,
    stylizer_file,
)
from photostyle.upsample import (
    UPSAMPLE_METHODS,
    UpsampleMethod,
    apply_local_affine,
    upsample_stylized,
)
from photostyle.utils import auto_dtype, resize_image, resolve_device

if TYPE_CHECKING:
    from photostyle.deploy.onnx import OnnxNetwork

DEFAULT_MAX_SIZE = 1024
# Per-call timing hook: called with (stage, seconds) after each stage of a stylization:
# "resize", "style_encoding", "network", "full_resolution" (a stage may be reported more than
# once per call: add them up). See :meth:`Stylizer.stylize`.
StageHook = Callable[[str, float], None]
STAGES: tuple[str, ...] = ("resize", "style_encoding", "network", "full_resolution")
Backend = Literal["torch", "onnxruntime"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@dataclass(frozen=True)
class StylizeOptions:
    """Per-call settings of :meth:`Stylizer.stylize`."""

    alpha: float = 1.0  # FA strength: 0 keeps the content features, 1 fully aggregates the style
    max_size: int | None = None  # longest side the network works at; None = the model's own
    fa: FAVariant | None = None  # FA variant; None = the stylizer's default
    upsample: UpsampleMethod = "guided"  # how a working-size result reaches full size
    refine: int | None = None  # curves head: per-photo refinement steps; None = the model's own

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.refine is not None and self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")
        if self.max_size is not None and self.max_size < 16:
            raise ValueError(f"max_size must be at least 16, got {self.max_size}")
        if self.fa is not None and self.fa not in FA_VARIANTS:
            raise ValueError(f"unknown FA variant {self.fa!r}; choose from {FA_VARIANTS}")
        if self.upsample not in UPSAMPLE_METHODS:
            raise ValueError(
                f"unknown upsampling {self.upsample!r}; choose from {UPSAMPLE_METHODS}"
            )


def working_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    """Size (h, w) with the longest side at most ``max_size``, keeping the aspect ratio."""
    scale = min(1.0, max_size / max(h, w))
    return max(16, round(h * scale)), max(16, round(w * scale))


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
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
        if onnx_path is not None and backend != "onnxruntime":
            raise ValueError("an ONNX file needs the onnxruntime backend")
        if backend == "onnxruntime" and dtype not in (torch.float32, "auto"):
            raise ValueError("the onnxruntime backend computes in float32 only")
        path, sha256 = stylizer_file(weights)
        if sha256 is not None:
            check_sha256(path, sha256)
        tensors, meta = load_checkpoint(path)
        if meta.get("format") != STYLIZER_FORMAT or "model_config" not in meta:
            raise WeightsError(f"{path}: not a photostyle stylizer checkpoint")
        try:
            raw = json.loads(meta["model_config"])
            if not isinstance(raw, dict):
                raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
            config = ModelConfig.from_dict(raw)
            if len(config.widths) != 4 or len(config.depths) != 4:
                raise ValueError("widths and depths need 4 entries")
            if min(config.widths) < 1 or min(config.depths) < 1:
                raise ValueError("widths and depths must be positive")
        except (ValueError, TypeError) as err:
            raise WeightsError(f"{path}: unreadable model config ({err})") from err
        if fa is not None:
            if fa not in FA_VARIANTS:
                raise ValueError(f"unknown FA variant {fa!r}; choose from {FA_VARIANTS}")
            config = ModelConfig.from_dict({**config.to_dict(), "fa": fa})
        self.config = config
        self.path = path
        self.meta = meta
        self.device = resolve_device(device)
        if dtype == "auto":
            # onnxruntime computes in float32 only
            dtype = auto_dtype(self.device, config.head) if backend == "torch" else torch.float32
        sha = None
        if encoder_weights is None and config.encoder_sha256:
            sha = config.encoder_sha256
            if sha != BUNDLED_VGG16_SHA256:
                raise WeightsError(
                    f"{path}: trained with other encoder weights; pass them with encoder_weights"
                )
        try:
            encoder = build_encoder(
                encoder_weights, config.vgg(), sha256=sha, padding_mode=config.padding_mode
            )
        except WeightsError as err:
            which = encoder_weights if encoder_weights is not None else "bundled VGG16"
            first = str(err).strip().splitlines()[0]
            raise WeightsError(
                f"{path}: encoder weights ({which}) do not fit this {config.arch} stylizer: {first}"
            ) from err
        model = PhotoStylizer(config, encoder)
        state = {k[len("decoder.") :]: v for k, v in tensors.items() if k.startswith("decoder.")}
        try:
            model.decoder.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise WeightsError(
                f"{path}: weights do not fit a {config.arch} stylizer ({first})"
            ) from err
        self.model = model.to(self.device, dtype).eval()
        # NHWC convolutions: 4-10% faster on this project's CPU, same output to 3e-7
        # (photostyle speed); they also pay on recent GPUs.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.dtype = dtype
        self.backend = backend
        self.onnx: OnnxNetwork | None = None
        if backend == "onnxruntime" and config.head != "decoder":
            raise ValueError(
                f"{path}: the onnxruntime backend runs pixel-decoder stylizers only, this one "
                f"has the {config.head} head (use the torch backend)"
            )
        if backend == "onnxruntime":
            try:
                from photostyle.deploy.onnx import load_backend
            except ImportError as err:
                raise ValueError(
                    f"the onnxruntime backend needs the deploy extra ({err}): "
                    "pip install 'photostyle[deploy]'"
                ) from err
            self.onnx = load_backend(self, onnx_path, fa=fa)
            self.config = replace(self.config, fa=self.onnx.info.fa)

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

        with self._stage(on_stage, "resize"):
            s = self._working_style(style, opts)
        labels_s = None
        if style_mask is not None:
            labels_s = _resize_labels(style_mask, (s.shape[-2], s.shape[-1])).to(self.device)
        style_enc = None
        if on_stage is not None and self.onnx is None:
            with self._stage(on_stage, "style_encoding"):
                style_enc = self.model.encoder(s.contiguous(memory_format=self.memory_format))
        return self._stylize_one(
            content,
            s,
            opts,
            content_mask=content_mask,
            labels_s=labels_s,
            style_enc=style_enc,
            on_stage=on_stage,
        )

    def resolve_options(self, options: StylizeOptions | None = None) -> StylizeOptions:
        """``options`` (default: all defaults) with the working size filled in: ``max_size``
        None becomes this model's own working size (``ModelConfig.working_size``, chosen on the
        quality/speed frontier when the model was selected)."""
        opts = options or StylizeOptions()
        if opts.refine and self.config.grid_residual != "curves":
            raise ValueError("refine needs a model with the affine head's curves residual")
        refine = opts.refine if opts.refine is not None else self.config.refine_steps
        return replace(opts, max_size=self.working_max_size(opts), refine=refine)

    def working_max_size(self, options: StylizeOptions) -> int:
        """The longest side the network works at under ``options``."""
        return options.max_size if options.max_size is not None else self.config.working_size

    @contextlib.contextmanager
    def _stage(self, hook: StageHook | None, name: str) -> Iterator[None]:
        """Time the enclosed work as stage ``name`` when a hook is given (else nothing)."""
        if hook is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        hook(name, time.perf_counter() - start)

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
        s = self._working_style(style, opts)
        style_enc = None
        if self.onnx is None:
            style_enc = self.model.encoder(s.contiguous(memory_format=self.memory_format))
        for content in contents:
            if content.ndim != 3 or content.shape[0] != 3 or not content.is_floating_point():
                raise ValueError(
                    f"content must be a float (3, H, W) tensor, got {tuple(content.shape)}"
                )
            yield self._stylize_one(content, s, opts, style_enc=style_enc)

    def _working_style(self, style: torch.Tensor, opts: StylizeOptions) -> torch.Tensor:
        """The style at working size, in the compute dtype. Shape: (3, Hs, Ws) -> (1, 3, hs, ws)."""
        sh, sw = working_size(style.shape[-2], style.shape[-1], self.working_max_size(opts))
        # Resizing and upsampling stay in float32; only the network computes in ``dtype``.
        return resize_image(style[None].to(self.device, torch.float32), (sh, sw)).to(self.dtype)

    def _stylize_one(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        opts: StylizeOptions,
        *,
        content_mask: torch.Tensor | None = None,
        labels_s: torch.Tensor | None = None,
        style_enc: EncoderOutput | None = None,
        on_stage: StageHook | None = None,
    ) -> torch.Tensor:
        """Working size -> network -> full size for one photo.

        Shape: content (3, H, W), style (1, 3, hs, ws) at working size -> (3, H, W) in [0, 1].
        """
        h, w = content.shape[-2:]
        with self._stage(on_stage, "resize"):
            c_full = content[None].to(self.device, torch.float32)  # (1, 3, H, W)
            c = resize_image(c_full, working_size(h, w, self.working_max_size(opts)))
        labels_c = None
        if content_mask is not None:
            labels_c = _resize_labels(content_mask, (c.shape[-2], c.shape[-1])).to(self.device)
        fa = opts.fa or self.config.fa
        if isinstance(self.model.decoder, AffineHead) and self.onnx is None:
            with self._stage(on_stage, "network"):
                coeffs = self._colour_model(
                    c.to(self.dtype), style, opts, fa, labels_c, labels_s, style_enc
                )
            with self._stage(on_stage, "full_resolution"):  # clamped in the same pass
                return apply_local_affine(coeffs.float(), c_full, clamp=True)[0].cpu()
        else:
            with self._stage(on_stage, "network"):
                out = self._network(
                    c.to(self.dtype),
                    style,
                    alpha=opts.alpha,
                    fa=fa,
                    labels_c=labels_c,
                    labels_s=labels_s,
                    style_enc=style_enc,
                ).float()  # (1, 3, h, w)
            with self._stage(on_stage, "full_resolution"):
                out = upsample_stylized(c_full, c, out, opts.upsample)  # (1, 3, H, W)
        with self._stage(on_stage, "full_resolution"):
            return out[0].clamp_(0, 1).cpu()  # out is a fresh buffer: clamp in place

    def _colour_model(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        opts: StylizeOptions,
        fa: FAVariant,
        labels_c: torch.Tensor | None,
        labels_s: torch.Tensor | None,
        style_enc: EncoderOutput | None = None,
    ) -> torch.Tensor:
        """The affine head's colour model at working size, its grade refined on this photo when
        ``opts.refine`` steps are asked for (:mod:`photostyle.models.refine`).

        Shape: content (1, 3, h, w), style (1, 3, hs, ws) -> (1, 12, h, w).
        """
        head = self.model.decoder
        assert isinstance(head, AffineHead)
        fmt = self.memory_format
        encoder = self.model.encoder
        enc_c = encoder(content.contiguous(memory_format=fmt))
        enc_s = style_enc if style_enc is not None else encoder(style.contiguous(memory_format=fmt))
        base, residual = head.grid(
            content, style, enc_c, enc_s, content_labels=labels_c, style_labels=labels_s, variant=fa
        )
        if opts.refine and head.residual == "curves":
            settings = RefineSettings(steps=opts.refine, ssim_weight=self.config.refine_ssim_weight)
            residual = refine_grade(
                head, encoder, content, style, base, residual, settings, enc_c.taps, enc_s.taps
            )
        return head.colour_model(content, base, residual, alpha=opts.alpha).coeffs

    def _network(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        alpha: float,
        fa: FAVariant,
        labels_c: torch.Tensor | None = None,
        labels_s: torch.Tensor | None = None,
        style_enc: EncoderOutput | None = None,
    ) -> torch.Tensor:
        """One pixel-decoder pass at working size (the seam where other backends plug in).

        ``style_enc``: the encoder's output for ``style``, computed once by :meth:`stylize_many`
        (ignored by the onnxruntime backend, whose graph encodes the style itself).

        Shape: content (1, 3, h, w), style (1, 3, hs, ws) -> (1, 3, h, w), unclamped.
        """
        if self.onnx is not None:
            if labels_c is not None or labels_s is not None:
                raise ValueError("the onnxruntime backend does not support semantic masks")
            return self.onnx(content, style, alpha=alpha, fa=fa)
        return self.model(
            content.contiguous(memory_format=self.memory_format),
            style.contiguous(memory_format=self.memory_format),
            alpha=alpha,
            content_labels=labels_c,
            style_labels=labels_s,
            style_enc=style_enc,
            variant=fa,
        ).image

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


def _resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(labels[None, None].float(), size=size, mode="nearest")[:, 0].long()
