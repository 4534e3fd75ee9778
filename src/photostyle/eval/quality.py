"""Quality evaluation on content/style pairs: every method through one code path.

A method is a function ``(content, style, content_mask, style_mask) -> output`` on (3, H, W)
tensors in [0, 1] (masks are (H, W) int64 label maps or None). :func:`evaluate` runs each method
on each pair, times it and scores it with :class:`photostyle.eval.metrics.PairScorer` (SSIM to the
content, Gram ratio to the style, photorealism).

Strength sweeps (``alphas``) trace each method's frontier: a method with a strength knob of its
own (:class:`Adjustable`: photostyle's ``alpha``) runs at each strength; every other method runs
once and its output is blended towards the content, ``(1 - a) content + a output``.

Averages over pairs (:func:`summarize`): the Gram ratio is a ratio, and a few pairs with ratios of
2-4 dominate its arithmetic mean, so the headline average is its **geometric mean** (the mean of
log-ratios: a pair at 2x and one at 0.5x cancel), reported beside the median and the arithmetic
mean. Photorealism is reported as its mean and 10th percentile (the worst pairs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.baselines import BASELINES, PEERS, require_peer
from photostyle.eval.metrics import PairScorer, psnr
from photostyle.eval.neural_baselines import (
    GATYS_MAX_SIZE,
    NeuralTransform,
    autoencoder_transfer,
    check_autoencoder,
    gatys,
)
from photostyle.io import load_image, load_mask
from photostyle.measure import memory_probe
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
    photorealism: float = math.nan  # PSNR (dB) to the content's best local affine colour model
    alpha: float = 1.0  # strength: the method's own alpha, or its blend weight towards the output


@runtime_checkable
class Adjustable(Protocol):
    """A method with a strength knob of its own (photostyle's ``alpha``)."""

    @property
    def alpha(self) -> float:
        """The strength it runs at, in [0, 1]."""
        ...

    def at(self, alpha: float) -> Method:
        """The same method at strength ``alpha``."""
        ...


def baseline_method(name: str) -> Method:
    """A classical baseline or a peer (see :mod:`photostyle.eval.baselines`) as a method (no masks).

    Raises:
        KeyError: not a baseline or peer.
    """
    fn = BASELINES[name] if name in BASELINES else PEERS[name].transfer

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


def blend(content: torch.Tensor, output: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) content + alpha output``: a method's output at a lower strength.

    Shape: (3, H, W), (3, H, W) -> (3, H, W).
    """
    if content.shape != output.shape:
        raise ValueError(
            f"output {tuple(output.shape)} differs from content {tuple(content.shape)}"
        )
    return torch.lerp(content.to(output.dtype), output, alpha)


def check_alphas(alphas: Sequence[float]) -> tuple[float, ...]:
    """Validate a strength sweep: distinct values in [0, 1], at least one.

    Raises:
        ValueError: empty, out of range, not finite, or repeated.
    """
    values = tuple(float(a) for a in alphas)
    if not values:
        raise ValueError("no strengths given: expected e.g. 0,0.25,0.5,0.75,1")
    for a in values:
        if not 0.0 <= a <= 1.0:  # NaN fails too
            raise ValueError(f"strength {a:g} is not in [0, 1]")
    if len(set(values)) != len(values):
        raise ValueError(f"repeated strength in {','.join(f'{a:g}' for a in values)}")
    return values


def parse_alphas(text: str) -> tuple[float, ...]:
    """Parse a comma-separated strength sweep, ``"0,0.5,1"`` -> ``(0.0, 0.5, 1.0)``.

    Raises:
        ValueError: a malformed entry, or what :func:`check_alphas` refuses (one line).
    """
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a number: expected e.g. 0,0.25,0.5,0.75,1"
            ) from None
    return check_alphas(values)


def _timed(
    method: Method,
    args: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    memory_device: str | torch.device | None,
) -> tuple[torch.Tensor, float, float | None]:
    """Run a method: its output, wall seconds and peak memory (MiB, None = unmeasured)."""
    probe = None if memory_device is None else memory_probe(memory_device)
    with probe or contextlib.nullcontext():
        start = time.perf_counter()
        output = method(*args)
        seconds = time.perf_counter() - start
    return output, seconds, None if probe is None else probe.peak_bytes / 2**20


def _runs(
    method: Method,
    args: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    alphas: Sequence[float] | None,
    memory_device: str | torch.device | None,
) -> Iterator[tuple[float, torch.Tensor, float, float | None]]:
    """(alpha, output, seconds, peak MiB) of a method at each strength of a sweep (or once)."""
    if alphas is None:
        alpha = method.alpha if isinstance(method, Adjustable) else 1.0
        yield (alpha, *_timed(method, args, memory_device))
    elif isinstance(method, Adjustable):
        for alpha in alphas:
            yield (alpha, *_timed(method.at(alpha), args, memory_device))
    else:  # one run, blended towards the content: the blend itself costs nothing to speak of
        output, seconds, peak = _timed(method, args, memory_device)
        for alpha in alphas:
            yield alpha, blend(args[0], output, alpha), seconds, peak


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
    alphas: Sequence[float] | None = None,
) -> list[MethodResult]:
    """Run and score every method on every pair (at every strength of a sweep).

    Args:
        pairs: content/style pairs (with optional mask paths).
        methods: name -> method.
        encoder: VGG encoder for the Gram metric.
        use_masks: pass the pair's masks to the methods (when the pair has both).
        on_output: called with (pair, method name, output) after each run, e.g. to save it; in a
            sweep only with each method's output at the largest strength.
        on_pair: called after each pair (progress).
        reference: a method name; every method also gets its PSNR to that method's output (e.g.
            how close an upsampled result comes to running the network at full size); in a sweep,
            to the reference's output at the same strength.
        memory_device: where each call's peak memory is measured (see
            :func:`photostyle.measure.memory_probe`: the process's resident set sampled every
            2 ms on the CPU, the allocator's peak on CUDA); None = not measured.
        alphas: a strength sweep, e.g. ``(0, 0.25, 0.5, 0.75, 1)``: :class:`Adjustable` methods
            run at each strength, the others once, blended towards the content (:func:`blend`).
            None = each method once as it is.

    Returns:
        One :class:`MethodResult` per (pair, method, strength), in that order (methods in the
        order given, strengths in the sweep's order).

    Raises:
        ValueError: ``reference`` is not one of ``methods``, or a bad sweep.
    """
    if reference is not None and reference not in methods:
        raise ValueError(f"reference {reference!r} is not one of the methods {list(methods)}")
    if alphas is not None:
        alphas = check_alphas(alphas)
    shown = None if alphas is None else max(alphas)
    results = []
    for pair in pairs:
        content, style = load_image(pair.content), load_image(pair.style)
        cm = sm = None
        if use_masks and pair.content_mask is not None and pair.style_mask is not None:
            cm = load_mask(pair.content_mask, (content.shape[1], content.shape[2]))
            sm = load_mask(pair.style_mask, (style.shape[1], style.shape[2]))
        scorer = PairScorer(content, style, encoder)  # content and style through VGG once
        ref_outputs: dict[float, torch.Tensor] = {}
        rows: dict[str, list[MethodResult]] = {}
        for name in sorted(methods, key=lambda n: n != reference):  # the reference runs first
            for alpha, output, seconds, peak in _runs(
                methods[name], (content, style, cm, sm), alphas, memory_device
            ):
                scores = scorer(output)
                if name == reference:
                    ref_outputs[alpha] = output
                ref = psnr(output, ref_outputs[alpha]) if alpha in ref_outputs else None
                rows.setdefault(name, []).append(
                    MethodResult(
                        pair.name,
                        name,
                        **asdict(scores),
                        seconds=seconds,
                        psnr_ref=ref,
                        peak_mib=peak,
                        alpha=alpha,
                    )
                )
                if on_output is not None and shown in (None, alpha):
                    on_output(pair, name, output)
        results += [row for name in methods for row in rows[name]]  # in the order asked
        if on_pair is not None:
            on_pair(pair)
    return results


def geometric_mean(values: Sequence[float]) -> float:
    """``exp(mean(log v))`` of positive values: the average of ratios; 0 if one is 0, NaN if one
    is NaN or negative.
    """
    if not values:
        raise ValueError("geometric mean of nothing")
    if any(math.isnan(v) or v < 0 for v in values):
        return math.nan
    if any(v == 0 for v in values):
        return 0.0
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default);
    infinite values are kept (two equal neighbours return their value, never inf - inf).
    """
    if not values:
        raise ValueError("quantile of nothing")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if ordered[lo] == ordered[hi]:
        return ordered[lo]
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


def _stats(rows: Sequence[MethodResult]) -> dict[str, float]:
    """The averages of one method at one strength over its pairs."""
    ratios = [r.gram_ratio for r in rows]
    real = [r.photorealism for r in rows]
    stats = {
        "alpha": rows[0].alpha,
        "pairs": float(len(rows)),
        "ssim": math.fsum(r.ssim for r in rows) / len(rows),
        "gram": math.fsum(r.gram for r in rows) / len(rows),
        "gram_ratio_geomean": geometric_mean(ratios),
        "gram_ratio_median": statistics.median(ratios),
        "gram_ratio": math.fsum(ratios) / len(rows),  # arithmetic mean
        "photorealism": math.fsum(real) / len(rows),  # inf (an unchanged flat image) stays inf
        "photorealism_p10": quantile(real, 0.1),
        "seconds": math.fsum(r.seconds for r in rows) / len(rows),
    }
    refs = [r.psnr_ref for r in rows if r.psnr_ref is not None]
    if refs:  # inf (identical outputs) stays inf
        stats["psnr_ref"] = math.fsum(refs) / len(refs)
    peaks = [r.peak_mib for r in rows if r.peak_mib is not None]
    if peaks:  # the largest over the pairs: what a user must have
        stats["peak_mib"] = max(peaks)
    return stats


def summarize_sweep(results: Sequence[MethodResult]) -> dict[tuple[str, float], dict[str, float]]:
    """Averages per (method, strength), in first-seen order: see :func:`summarize`."""
    groups: dict[tuple[str, float], list[MethodResult]] = {}
    for r in results:
        groups.setdefault((r.method, r.alpha), []).append(r)
    return {key: _stats(rows) for key, rows in groups.items()}


def summarize(results: Sequence[MethodResult]) -> dict[str, dict[str, float]]:
    """Averages of each method over the pairs, in first-seen method order.

    Keys per method: ``ssim`` (mean), ``gram_ratio_geomean`` (the headline Gram average),
    ``gram_ratio_median``, ``gram_ratio`` (arithmetic mean), ``gram`` (mean), ``photorealism``
    (mean dB), ``photorealism_p10`` (10th percentile), ``seconds`` (mean), ``pairs``, ``alpha``;
    ``peak_mib`` (the largest) and ``psnr_ref`` (mean) when measured. A method seen at several
    strengths (a sweep) has one entry per strength, named ``"<method> (alpha <a>)"``.
    """
    grouped = summarize_sweep(results)
    alphas: dict[str, int] = {}
    for method, _ in grouped:
        alphas[method] = alphas.get(method, 0) + 1
    return {
        method if alphas[method] == 1 else f"{method} (alpha {alpha:g})": stats
        for (method, alpha), stats in grouped.items()
    }


def markdown_table(results: Sequence[MethodResult]) -> str:
    """Per-method averages as a markdown table, one row per method (and strength of a sweep).

    SSIM up = structure kept; Gram ratio down = styled (geometric mean first: the headline);
    photorealism up = no new edges or textures.
    """
    sweep = any(r.alpha != 1.0 for r in results)
    lines = [
        "| method |"
        + (" alpha |" if sweep else "")
        + " SSIM to content (higher: structure kept) | Gram ratio geo. mean (lower: styled) "
        "| Gram ratio median | Gram ratio mean | photorealism dB mean | photorealism dB p10 "
        "| s / pair | pairs |",
        "| --- |" + (" ---: |" if sweep else "") + " ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    with_ref = any(r.psnr_ref is not None for r in results)
    with_peak = any(r.peak_mib is not None for r in results)
    if with_peak:
        lines[0] += " peak MiB (largest pair) |"
        lines[1] += " ---: |"
    if with_ref:
        lines[0] += " PSNR to reference (dB) |"
        lines[1] += " ---: |"
    for (method, alpha), m in summarize_sweep(results).items():
        line = f"| {method} |" + (f" {alpha:g} |" if sweep else "")
        line += (
            f" {m['ssim']:.3f} | {m['gram_ratio_geomean']:.3f} | {m['gram_ratio_median']:.3f} "
            f"| {m['gram_ratio']:.3f} | {m['photorealism']:.1f} | {m['photorealism_p10']:.1f} "
            f"| {m['seconds']:.2f} | {int(m['pairs'])} |"
        )
        if with_peak:
            line += f" {m['peak_mib']:.0f} |" if "peak_mib" in m else " - |"
        if with_ref:
            line += f" {m['psnr_ref']:.1f} |" if "psnr_ref" in m else " - |"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StylizerMethod:
    """photostyle itself as a method, :class:`Adjustable` through its FA strength ``alpha``."""

    stylizer: Stylizer  # the loaded model
    options: StylizeOptions  # per-call settings, alpha included
    use_masks: bool = True  # pass the pairs' masks (False: ignore them)

    @property
    def alpha(self) -> float:
        """The FA strength it runs at."""
        return self.options.alpha

    def at(self, alpha: float) -> StylizerMethod:
        """The same method at FA strength ``alpha``."""
        return dataclasses.replace(self, options=dataclasses.replace(self.options, alpha=alpha))

    def __call__(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        content_mask: torch.Tensor | None,
        style_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if not self.use_masks:
            content_mask = style_mask = None
        return self.stylizer.stylize(
            content, style, content_mask=content_mask, style_mask=style_mask, options=self.options
        )


def stylizer_method(
    stylizer: Stylizer, options: StylizeOptions | None = None, *, use_masks: bool = True
) -> StylizerMethod:
    """photostyle itself as a method (masks used when given, unless ``use_masks`` is False)."""
    return StylizerMethod(stylizer, options or StylizeOptions(), use_masks)


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
    """Every method name :func:`make_methods` accepts (without the photostyle suffixes)."""
    return [*(PHOTOSTYLE_PREFIX + v for v in fa_variants), *BASELINES, *PEERS, *NEURAL_METHODS]


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
        PeerUnavailable: a peer's package is not installed (checked before any work).
    """
    methods: dict[str, Method] = {}
    model: Stylizer | None = None
    decoder: Stylizer | None = None
    for name in names:
        if name in BASELINES:
            methods[name] = baseline_method(name)
        elif name in PEERS:
            require_peer(name)
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
                f"{[*BASELINES, *PEERS, *NEURAL_METHODS]}"
            )
    return methods


def results_json(results: Sequence[MethodResult]) -> dict[str, object]:
    """Per-pair rows (one per strength in a sweep) and per-method averages (:func:`summarize`,
    keyed as there, each also naming its method), ready for ``json.dump``.
    """
    summary = summarize(results)
    methods = [method for method, _ in summarize_sweep(results)]
    return {
        "pairs": [asdict(r) for r in results],
        "summary": {
            label: {"method": method, **stats}
            for (label, stats), method in zip(summary.items(), methods, strict=True)
        },
    }
