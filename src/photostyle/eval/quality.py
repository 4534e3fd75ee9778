"""Quality evaluation on content/style pairs: every method through one code path.

A method is a function ``(content, style, content_mask, style_mask) -> output`` on (3, H, W)
tensors in [0, 1] (masks are (H, W) int64 label maps or None), registered in
:mod:`photostyle.eval.methods` and built by name with :func:`make_methods`. :func:`evaluate` runs
each method on each pair, times it and scores it with :class:`photostyle.eval.metrics.PairScorer`
(SSIM to the content, Gram ratio to the style, photorealism).

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
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from photostyle.eval.methods import Method
from photostyle.eval.methods import make_methods as make_methods  # re-exported
from photostyle.eval.methods import method_names as method_names  # re-exported
from photostyle.eval.methods import photostyle_options as photostyle_options  # re-exported
from photostyle.eval.methods import stylizer_method as stylizer_method  # re-exported
from photostyle.eval.metrics import PairScorer, psnr
from photostyle.eval.metrics import metric_encoder as metric_encoder  # re-exported
from photostyle.io import load_image, load_mask
from photostyle.measure import memory_probe
from photostyle.models.encoder import VGGEncoder


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
