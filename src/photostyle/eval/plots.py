"""Figures of the evaluations, so a person can look rather than read.

- :func:`plot_quality`: the structure/style trade-off of ``photostyle eval`` (mean SSIM to content
  against the Gram ratio's geometric mean, one colour per method, every pair, and each method's
  curve over a strength sweep).
- :func:`plot_bench`: ``photostyle bench``'s time and peak memory against megapixels (Table I).
- :func:`plot_ablation`: ``photostyle ablate``'s metrics per variant (Tables III/IV), with the
  Gram ratio's geometric mean and the photorealism.

Each writes a PNG atomically with matplotlib (the ``train`` extra), returns its path, and raises
ValueError for nothing to plot and :class:`~photostyle.utils.PlotUnavailable` when matplotlib is
not installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from photostyle.eval.ablate import AblationRow
from photostyle.eval.quality import MethodResult, summarize_sweep
from photostyle.utils import PlotUnavailable, atomic_path, pyplot


class TimedRow(Protocol):
    """What :func:`plot_bench` reads of a row (``BenchRow``, ``EndToEndRow``)."""

    @property
    def method(self) -> str: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def median_s(self) -> float: ...
    @property
    def spread_s(self) -> float: ...
    @property
    def peak_mib(self) -> float: ...
    @property
    def memory(self) -> str: ...


def _pyplot_for(items: Sequence[object]) -> Any:
    if not items:
        raise ValueError("nothing to plot: no results")
    return pyplot()


def _save(fig: Any, path: str | Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_quality(results: Sequence[MethodResult], path: str | Path) -> Path:
    """SSIM to content (y, mean over pairs, higher: structure kept) against the Gram ratio to
    style (x, geometric mean over pairs, lower: styled), one colour per method.

    A method at one strength: a small dot per pair and a large marker at its averages (named in
    the legend). A method at several strengths (``photostyle eval --alpha-sweep``): its frontier,
    a curve through its averages at each strength (labelled with it) from the weakest (near
    identity's (1, 1)) to the strongest, which gets the large marker and the pair dots. Better lies
    above and to the left.
    """
    plt = _pyplot_for(results)
    curves: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for (method, alpha), stats in summarize_sweep(results).items():
        curves.setdefault(method, []).append((alpha, stats))
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colours = plt.get_cmap("tab10")
    swept = False
    for i, (method, points) in enumerate(curves.items()):
        points.sort(key=lambda point: point[0])
        strongest, mean = points[-1]
        rows = [r for r in results if r.method == method and r.alpha == strongest]
        colour = colours(i % 10)
        ax.scatter(
            [r.gram_ratio for r in rows], [r.ssim for r in rows], s=12, alpha=0.35, color=colour
        )
        if len(points) > 1:
            swept = True
            ax.plot(
                [m["gram_ratio_geomean"] for _, m in points],
                [m["ssim"] for _, m in points],
                color=colour,
                lw=1.5,
                marker="o",
                ms=4,
                zorder=2,
            )
            for alpha, m in points[:-1]:  # the strongest is named in the legend
                ax.annotate(
                    f"{alpha:g}",
                    (m["gram_ratio_geomean"], m["ssim"]),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=6,
                    color=colour,
                )
        ax.scatter(
            [mean["gram_ratio_geomean"]],
            [mean["ssim"]],
            s=90,
            color=colour,
            edgecolor="black",
            label=f"{method} ({mean['ssim']:.3f}, {mean['gram_ratio_geomean']:.3f})",
            zorder=3,
        )
    # The axis ends past the 95th percentile of the pairs: a few far outliers would squeeze the
    # averages (where the comparison is) into a corner. The title counts what is left out.
    ratios = sorted(r.gram_ratio for r in results if math.isfinite(r.gram_ratio))
    right = max(1.2, 1.1 * ratios[min(len(ratios) - 1, int(0.95 * len(ratios)))]) if ratios else 1.2
    for points in curves.values():
        right = max(right, 1.05 * max(m["gram_ratio_geomean"] for _, m in points))
    beyond = sum(x > right for x in ratios)
    ax.set_xlim(0, right)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("Gram ratio to style, geometric mean (lower: more style transferred; 1 = none)")
    ax.set_ylabel("SSIM to content, mean (higher: structure kept)")
    pairs = len({r.pair for r in results})
    more = f"; {beyond} beyond the axis" if beyond else ""
    what = "curves: strength sweep, " if swept else ""
    ax.set_title(
        f"structure vs style on {pairs} pair{'s' * (pairs != 1)} ({what}dots: pairs{more})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize=7,
        loc="best",
        title="method (mean SSIM, Gram ratio geo. mean)" + (", strongest" if swept else ""),
        title_fontsize=7,
    )
    return _save(fig, path)


def plot_bench(rows: Sequence[TimedRow], path: str | Path) -> Path:
    """Median time (left, with the interquartile range) and peak memory (right) against
    megapixels, one line per method, log-log.
    """
    plt = _pyplot_for(rows)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    methods = list(dict.fromkeys(r.method for r in rows))
    for method in methods:
        mine = sorted((r for r in rows if r.method == method), key=lambda r: r.height * r.width)
        mp = [r.height * r.width / 1e6 for r in mine]
        ax_t.errorbar(
            mp,
            [r.median_s for r in mine],
            yerr=[[r.spread_s / 2 for r in mine]] * 2,
            marker="o",
            capsize=3,
            label=method,
        )
        ax_m.plot(mp, [max(r.peak_mib, 1e-3) for r in mine], marker="o", label=method)
    from matplotlib.ticker import FuncFormatter  # matplotlib is there: pyplot() succeeded

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax in (ax_t, ax_m):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel("megapixels")
        ax.grid(alpha=0.3, which="both")
    ax_t.set_ylabel("median seconds per photo (bars: IQR)")
    ax_m.set_ylabel(f"peak memory above baseline, MiB ({rows[0].memory})")
    ax_t.legend(fontsize=8)
    ax_t.set_title(f"time, {rows[0].device}, median of {rows[0].runs}")
    ax_m.set_title("peak memory")
    return _save(fig, path)


def plot_ablation(rows: Sequence[AblationRow], path: str | Path) -> Path:
    """One horizontal bar per variant in four panels: SSIM and photorealism (higher better), the
    Gram ratio's geometric mean and FID-VGG (lower better); a missing value leaves its bar out.
    """
    plt = _pyplot_for(rows)
    panels = [
        ("ssim", "SSIM to content, mean (higher: better)"),
        ("gram_ratio_geomean", "Gram ratio, geo. mean (lower: better)"),
        ("photorealism", "photorealism dB, mean (higher: better)"),
        ("fid_vgg", "FID-VGG to styles (lower: better)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 0.5 * len(rows) + 1.8), sharey=True)
    labels = [r.variant for r in rows]
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [getattr(r, key) for r in rows]
        shown = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        bars = ax.barh(range(len(rows)), shown, color="tab:blue")
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {text}",
                va="center",
                fontsize=8,
            )
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(rows)), labels)
    axes[0].invert_yaxis()
    steps = {r.steps for r in rows}
    fig.suptitle(
        f"ablation, {rows[0].pairs} pairs, {'/'.join(map(str, sorted(steps)))} steps", fontsize=10
    )
    return _save(fig, path)


__all__ = ["PlotUnavailable", "plot_ablation", "plot_bench", "plot_quality", "pyplot"]
