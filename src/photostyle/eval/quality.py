"""Quality evaluation on content/style pairs: every method through one code path.

A method is a function ``(content, style, content_mask, style_mask) -> output`` on (3, H, W)
tensors in [0, 1] (masks are (H, W) int64 label maps or None). :func:`evaluate` runs each method
on each pair, times it and scores it with :func:`photostyle.eval.metrics.score_pair`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, cast

import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.baselines import BASELINES
from photostyle.eval.bench import memory_probe
from photostyle.eval.metrics import psnr, score_pair
from photostyle.eval.neural_baselines import (
    GATYS_MAX_SIZE,
    NeuralTransform,
    autoencoder_transfer,
    check_autoencoder,
    gatys,
)
from photostyle.io import load_image, load_mask
from photostyle.models.encoder import VGG16, VGGEncoder
from photostyle.models.layers import FA_VARIANTS, FAVariant
from photostyle.models.weights import build_encoder
from photostyle.upsample import UPSAMPLE_METHODS, UpsampleMethod

Method = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor
]


class PairLike(Protocol):
    """A content/style pair on disk (see :func:`photostyle.data.pairs.find_pairs`)."""

    @property
    def name(self) -> str: ...
    @property
    def content(self) -> Path: ...
    @property
    def style(self) -> Path: ...
    @property
    def content_mask(self) -> Path | None: ...
    @property
    def style_mask(self) -> Path | None: ...


@dataclass(frozen=True)
class MethodResult:
    """One method on one pair."""

    pair: str  # pair name (content file stem)
    method: str  # method name
    ssim: float  # SSIM(output, content), luma, content size
    gram: float  # Gram distance(output, style)
    gram_ratio: float  # gram / Gram distance(content, style)
    seconds: float  # wall time of the method (stylization only, no I/O)
    psnr_ref: float | None = None  # PSNR (dB) to the reference method's output; None = no reference
    peak_mib: float | None = None  # peak memory above the call's start (MiB); None = unmeasured


def baseline_method(name: str) -> Method:
    """A classical baseline (``identity``, ``reinhard``, ``histogram``) as a method (no masks)."""
    fn = BASELINES[name]

    def run(
        content: torch.Tensor,
        style: torch.Tensor,
        content_mask: torch.Tensor | None,
        style_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return fn(content, style)

    return run


def metric_encoder(device: str | torch.device = "cpu") -> VGGEncoder:
    """The bundled ImageNet VGG16: the fixed yardstick of the Gram metric, whatever the model."""
    return build_encoder(None, VGG16).to(device)


def evaluate(
    pairs: Sequence[PairLike],
    methods: Mapping[str, Method],
    encoder: VGGEncoder,
    *,
    use_masks: bool = True,
    on_output: Callable[[PairLike, str, torch.Tensor], None] | None = None,
    on_pair: Callable[[PairLike], None] | None = None,
    reference: str | None = None,
    memory_device: str | torch.device | None = "cpu",
) -> list[MethodResult]:
    """Run and score every method on every pair.

    Args:
        pairs: content/style pairs (with optional mask paths).
        methods: name -> method.
        encoder: VGG encoder for the Gram metric.
        use_masks: pass the pair's masks to the methods (when the pair has both).
        on_output: called with (pair, method name, output) after each run, e.g. to save it.
        on_pair: called after each pair (progress).
        reference: a method name; every method also gets its PSNR to that method's output (e.g.
            how close an upsampled result comes to running the network at full size).
        memory_device: where each call's peak memory is measured (see
            :func:`photostyle.eval.bench.memory_probe`: the process's resident set sampled every
            2 ms on the CPU, the allocator's peak on CUDA); None = not measured.

    Returns:
        One :class:`MethodResult` per (pair, method), in order.

    Raises:
        ValueError: ``reference`` is not one of ``methods``.
    """
    if reference is not None and reference not in methods:
        raise ValueError(f"reference {reference!r} is not one of the methods {list(methods)}")
    results = []
    for pair in pairs:
        content, style = load_image(pair.content), load_image(pair.style)
        cm = sm = None
        if use_masks and pair.content_mask is not None and pair.style_mask is not None:
            cm = load_mask(pair.content_mask, (content.shape[1], content.shape[2]))
            sm = load_mask(pair.style_mask, (style.shape[1], style.shape[2]))
        ref_output = None
        rows = {}
        for name in sorted(methods, key=lambda n: n != reference):  # the reference runs first
            probe = None if memory_device is None else memory_probe(memory_device)
            with probe or contextlib.nullcontext():
                start = time.perf_counter()
                output = methods[name](content, style, cm, sm)
                seconds = time.perf_counter() - start
            peak = None if probe is None else probe.peak_bytes / 2**20
            scores = score_pair(output, content, style, encoder)
            if name == reference:
                ref_output = output
            ref = None if ref_output is None else psnr(output, ref_output)
            rows[name] = MethodResult(
                pair.name, name, **asdict(scores), seconds=seconds, psnr_ref=ref, peak_mib=peak
            )
            if on_output is not None:
                on_output(pair, name, output)
        results += [rows[name] for name in methods]  # in the order asked
        if on_pair is not None:
            on_pair(pair)
    return results


def summarize(results: Sequence[MethodResult]) -> dict[str, dict[str, float]]:
    """Mean of each metric per method (``peak_mib``: the largest), in first-seen method order."""
    by_method: dict[str, list[MethodResult]] = {}
    for r in results:
        by_method.setdefault(r.method, []).append(r)
    summary = {}
    for method, rows in by_method.items():
        summary[method] = {
            key: math.fsum(getattr(r, key) for r in rows) / len(rows)
            for key in ("ssim", "gram", "gram_ratio", "seconds")
        }
        summary[method]["pairs"] = float(len(rows))
        refs = [r.psnr_ref for r in rows if r.psnr_ref is not None]
        if refs:  # inf (identical outputs) stays inf
            summary[method]["psnr_ref"] = math.fsum(refs) / len(refs)
        peaks = [r.peak_mib for r in rows if r.peak_mib is not None]
        if peaks:  # the largest over the pairs: what a user must have
            summary[method]["peak_mib"] = max(peaks)
    return summary


def markdown_table(results: Sequence[MethodResult]) -> str:
    """Per-method means as a markdown table (SSIM up = structure kept, Gram ratio down = styled)."""
    lines = [
        "| method | SSIM to content (higher: structure kept) | Gram ratio to style (lower: styled) "
        "| s / pair | pairs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    with_ref = any(r.psnr_ref is not None for r in results)
    with_peak = any(r.peak_mib is not None for r in results)
    if with_peak:
        lines[0] += " peak MiB (largest pair) |"
        lines[1] += " ---: |"
    if with_ref:
        lines[0] += " PSNR to reference (dB) |"
        lines[1] += " ---: |"
    for method, m in summarize(results).items():
        line = (
            f"| {method} | {m['ssim']:.3f} | {m['gram_ratio']:.3f} | {m['seconds']:.2f} "
            f"| {int(m['pairs'])} |"
        )
        if with_peak:
            line += f" {m['peak_mib']:.0f} |" if "peak_mib" in m else " - |"
        if with_ref:
            line += f" {m['psnr_ref']:.1f} |" if "psnr_ref" in m else " - |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def stylizer_method(
    stylizer: Stylizer, options: StylizeOptions | None = None, *, use_masks: bool = True
) -> Method:
    """photostyle itself as a method (masks used when given, unless ``use_masks`` is False)."""

    def run(
        content: torch.Tensor,
        style: torch.Tensor,
        content_mask: torch.Tensor | None,
        style_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if not use_masks:
            content_mask = style_mask = None
        return stylizer.stylize(
            content, style, content_mask=content_mask, style_mask=style_mask, options=options
        )

    return run


PHOTOSTYLE_PREFIX = "photostyle-"
NO_MASKS_SUFFIX = "-nomasks"  # photostyle-<fa>...-nomasks: that method ignores the pairs' masks


def photostyle_options(
    name: str, *, alpha: float = 1.0, max_size: int = 1024, upsample: UpsampleMethod = "guided"
) -> StylizeOptions:
    """Options of a method named ``photostyle-<fa>[+<upsampling>][@<working size>][-nomasks]``.

    ``photostyle-mean_std+bicubic@256`` runs the network at 256 px and upsamples its output
    bicubically; without suffixes the arguments apply. This lets one ``photostyle eval`` compare
    upsampling methods and working sizes side by side. The ``-nomasks`` suffix (the method ignores
    the pairs' masks, see :func:`make_methods`) does not change the options.

    Raises:
        ValueError: unknown FA variant or upsampling, or a bad size.
    """
    spec = name[len(PHOTOSTYLE_PREFIX) :].removesuffix(NO_MASKS_SUFFIX)
    spec, _, size = spec.partition("@")
    fa, _, up = spec.partition("+")
    if fa not in FA_VARIANTS:
        raise ValueError(f"{name}: unknown FA variant {fa!r}; choose from {FA_VARIANTS}")
    if up and up not in UPSAMPLE_METHODS:
        raise ValueError(f"{name}: unknown upsampling {up!r}; choose from {UPSAMPLE_METHODS}")
    if size:
        if not size.isdigit() or int(size) < 16:
            raise ValueError(f"{name}: working size must be an integer >= 16, got {size!r}")
        max_size = int(size)
    return StylizeOptions(
        alpha=alpha,
        max_size=max_size,
        fa=cast(FAVariant, fa),
        upsample=cast(UpsampleMethod, up) if up else upsample,
    )


NEURAL_METHODS = ("adain", "wct", "gatys")  # photostyle.eval.neural_baselines


def method_names(fa_variants: Sequence[str]) -> list[str]:
    """Every method name :func:`make_methods` accepts."""
    return [*(PHOTOSTYLE_PREFIX + v for v in fa_variants), *BASELINES, *NEURAL_METHODS]


def autoencoder_method(
    autoencoder: Stylizer, transform: NeuralTransform, *, alpha: float = 1.0, max_size: int = 1024
) -> Method:
    """AdaIN or WCT at relu4_1 decoded by a reconstruction decoder, as a method (masks used)."""

    def run(
        content: torch.Tensor,
        style: torch.Tensor,
        content_mask: torch.Tensor | None,
        style_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return autoencoder_transfer(
            autoencoder,
            content,
            style,
            transform,
            alpha=alpha,
            max_size=max_size,
            content_mask=content_mask,
            style_mask=style_mask,
        )

    return run


def gatys_method(encoder: VGGEncoder, *, steps: int = 200, max_size: int = 512) -> Method:
    """Gatys et al.'s optimisation as a method (no masks)."""

    def run(
        content: torch.Tensor,
        style: torch.Tensor,
        content_mask: torch.Tensor | None,
        style_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return gatys(content, style, encoder, steps=steps, max_size=max_size)

    return run


def make_methods(
    names: Sequence[str],
    stylizer: Callable[[], Stylizer],
    *,
    alpha: float = 1.0,
    max_size: int = 1024,
    autoencoder: Callable[[], Stylizer] | None = None,
    gatys_encoder: Callable[[], VGGEncoder] | None = None,
    gatys_steps: int = 200,
    upsample: UpsampleMethod = "guided",
) -> dict[str, Method]:
    """Methods by name: ``photostyle-<fa variant>`` (see :func:`photostyle_options` for the
    ``+<upsampling>`` and ``@<working size>`` suffixes; ``-nomasks`` at the end ignores the pairs'
    masks, to compare with and without them in one run), a classical baseline (``identity``,
    ``reinhard``, ``histogram``) or a neural baseline (``adain``, ``wct``, ``gatys``).

    Args:
        names: method names, in the order wanted.
        stylizer: returns the stylizer to use (called once, only if a photostyle method is asked).
        alpha: FA strength of the photostyle methods, and transform strength of adain/wct.
        max_size: working size of the photostyle, adain and wct methods (gatys: at most
            ``GATYS_MAX_SIZE``).
        autoencoder: returns the reconstruction decoder of adain/wct (a stylizer trained with
            ``reconstruction=True``); called once, only if adain or wct is asked.
        gatys_encoder: returns the VGG encoder of gatys; None = the bundled ImageNet VGG16.
        gatys_steps: optimisation steps of gatys.
        upsample: how photostyle methods without a ``+`` suffix reach full size.

    Raises:
        ValueError: an unknown name, adain/wct without an autoencoder (or with a stylizer that is
            not one), or negative gatys steps.
    """
    methods: dict[str, Method] = {}
    model: Stylizer | None = None
    decoder: Stylizer | None = None
    for name in names:
        if name in BASELINES:
            methods[name] = baseline_method(name)
        elif name in ("adain", "wct"):
            if autoencoder is None:
                raise ValueError(
                    f"{name} needs --autoencoder FILE "
                    "(a checkpoint trained with photostyle train --reconstruction)"
                )
            if decoder is None:
                decoder = autoencoder()
                check_autoencoder(decoder)
            transform: NeuralTransform = "adain" if name == "adain" else "wct"
            methods[name] = autoencoder_method(decoder, transform, alpha=alpha, max_size=max_size)
        elif name == "gatys":
            if gatys_steps < 0:
                raise ValueError(f"gatys steps must be >= 0, got {gatys_steps}")
            encoder = gatys_encoder() if gatys_encoder is not None else metric_encoder()
            size = min(max_size, GATYS_MAX_SIZE)
            methods[name] = gatys_method(encoder, steps=gatys_steps, max_size=size)
        elif name.startswith(PHOTOSTYLE_PREFIX):
            options = photostyle_options(name, alpha=alpha, max_size=max_size, upsample=upsample)
            model = model or stylizer()
            masks = not name.endswith(NO_MASKS_SUFFIX)
            methods[name] = stylizer_method(model, options, use_masks=masks)
        else:
            raise ValueError(
                f"unknown method {name!r}; choose from photostyle-<fa>, "
                f"{[*BASELINES, *NEURAL_METHODS]}"
            )
    return methods


def results_json(results: Sequence[MethodResult]) -> dict[str, object]:
    """Per-pair rows and per-method means, ready for ``json.dump``."""
    return {"pairs": [asdict(r) for r in results], "summary": summarize(results)}
