"""Ablation studies (paper Tables III and IV): train one stylizer per variant, score each alike.

A variant is a spec naming what differs from the full method:

- ``full``: every component on, T1 = top 50% inside, T2 = top 10% outside (the paper's "Ours").
- ``no_scp``, ``no_restyle``, ``no_perceptual``: drop the SCP losses (Eq. (2)), the
  re-stylization stage V (Fig. 1) or the perceptual losses (Eqs. (3)-(7)) (Table III).
- ``t1=X``, ``t2=X``: the sampling thresholds of Eqs. (10)-(11) as fractions in (0, 1]
  (Table IV, e.g. ``t1=0.44`` is "top 44% inside").

Terms combine with ``+`` (``no_scp+t1=0.44``); a list of variants is comma-separated. Every variant
starts from the full method (the base config's ablation switches and thresholds are reset to the
paper's), so rows differ only by what their spec says, and share the base's data, steps, crop,
batch size, learning rate and seed (hence the same triplet stream).

Each variant trains with :class:`~photostyle.train.trainer.Trainer` into ``OUT/<variant>/``; a
variant whose checkpoint already reached ``steps`` is not trained again, and an unfinished one
resumes, so an interrupted or time-limited study continues where it stopped. Its exported stylizer
is then run on DPST-layout pairs and scored with :func:`photostyle.eval.quality.evaluate` (mean SSIM
to content, mean Gram ratio to style) and, with at least 2 pairs, FID-VGG between its outputs and
the style photos (:mod:`photostyle.eval.fid`: Fréchet distance of bundled-VGG16 relu4_1 features;
comparable between rows of one study only, never with the paper's Inception FIDs, and biased upward
with fewer images than its 512 dimensions).

Settings:

- small, on a laptop CPU (minutes per variant): ``photostyle ablate --data PHOTOS --pairs PAIRS
  --out-dir runs/ablate --steps 200 --crop 64 --batch-size 2 --limit-pairs 8`` (add
  ``--max-images 50`` to shorten the perceptual index); the numbers show trends, not the paper's.
- full, on a GPU: ``--steps 20000 --crop 256 --batch-size 8 --device cuda`` (hours per variant;
  ``--time-limit-per-variant`` splits it over sessions, re-running resumes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.data.sampler import SamplingConfig
from photostyle.eval import fid as fid_module
from photostyle.eval import quality
from photostyle.eval.quality import PairLike
from photostyle.models.encoder import VGGEncoder
from photostyle.models.inception import FID_INPUT_SIZE
from photostyle.train.config import TrainConfig
from photostyle.utils import atomic_path, resolve_device, write_json

# Ablation switches: spec term -> the TrainConfig field it turns off (paper Table III).
SWITCHES = {"no_scp": "use_scp", "no_restyle": "use_restyle", "no_perceptual": "use_perceptual"}
# Paper wording of what each switch removes (Table III rows).
SWITCH_LABELS = {
    "no_scp": "SCP losses",
    "no_restyle": "re-stylization",
    "no_perceptual": "perceptual losses",
}
THRESHOLDS = ("t1", "t2")  # sampling-threshold terms (paper Table IV)
DEFAULT_VARIANTS = ("full", "no_scp", "no_restyle", "no_perceptual")  # paper Table III
TRAIN_RECORD = "ablation_train.json"  # per-variant file: training seconds and final loss
# TrainConfig fields that may differ between sessions of one run without changing its result.
RUNTIME_FIELDS = frozenset(
    {"out_dir", "steps", "device", "workers", "log_every", "image_every", "ckpt_every"}
    | {"time_limit_s"}
)


@dataclass(frozen=True)
class Variant:
    """One row of an ablation study."""

    name: str  # canonical spec, also the run's sub-folder: "full", "no_scp+t1=0.44"...
    overrides: Mapping[str, Any]  # TrainConfig fields to replace: the 3 switches and sampling

    @property
    def label(self) -> str:
        """The row's description in the paper's wording (Tables III and IV)."""
        off = [SWITCH_LABELS[t] for t, f in SWITCHES.items() if not self.overrides[f]]
        sampling: SamplingConfig = self.overrides["sampling"]
        text = "Ours without " + ", ".join(off) if off else "Ours"
        if sampling != SamplingConfig():
            return (
                f"{text} (T1: top {sampling.t1 * 100:g}% inside, "
                f"T2: top {sampling.t2 * 100:g}% outside)"
            )
        return text if off else "Ours (All components)"


def parse_variant(spec: str) -> Variant:
    """One variant from its spec (see the module docstring).

    Args:
        spec: ``full`` or ``+``-joined terms among ``no_scp``, ``no_restyle``, ``no_perceptual``,
            ``t1=X``, ``t2=X`` (X a fraction in (0, 1]); case and spaces are ignored.

    Returns:
        The variant, with a canonical name (terms in a fixed order, numbers as ``%g``) and its
        complete overrides: ``use_scp``, ``use_restyle``, ``use_perceptual`` and ``sampling``.

    Raises:
        ValueError: an unknown or repeated term, a bad threshold, ``full`` combined with other
            terms, or both losses dropped (one line each).
    """
    terms = [t.strip().lower() for t in spec.split("+")]
    if not all(terms):
        raise ValueError(f"empty term in ablation variant {spec!r}")
    if "full" in terms:
        if len(terms) > 1:
            raise ValueError(f"ablation variant {spec!r}: 'full' does not combine with others")
        terms = []
    switches: dict[str, bool] = dict.fromkeys(SWITCHES.values(), True)
    fractions: dict[str, float] = {}
    seen: set[str] = set()
    for term in terms:
        key, sep, value = term.partition("=")
        key = key.strip()
        if key in seen:
            raise ValueError(f"ablation variant {spec!r} repeats {key!r}")
        seen.add(key)
        if key in SWITCHES and not sep:
            switches[SWITCHES[key]] = False
        elif key in THRESHOLDS and sep:
            try:
                fraction = float(value)
            except ValueError:
                fraction = math.nan
            if not 0.0 < fraction <= 1.0:  # also refuses nan
                raise ValueError(
                    f"ablation variant {spec!r}: {key} must be a fraction in (0, 1], "
                    f"got {value.strip()!r}"
                )
            fractions[key] = fraction
        else:
            raise ValueError(
                f"unknown ablation variant {term!r}; use full, no_scp, no_restyle, no_perceptual, "
                "t1=X, t2=X (join terms with '+')"
            )
    if not (switches["use_scp"] or switches["use_perceptual"]):
        raise ValueError(f"ablation variant {spec!r} drops both the SCP and perceptual losses")
    names = [t for t in SWITCHES if t in seen]
    names += [f"{k}={fractions[k]:g}" for k in THRESHOLDS if k in fractions]
    return Variant(
        name="+".join(names) or "full",
        overrides={**switches, "sampling": SamplingConfig(**fractions)},
    )


def parse_variants(specs: str | Sequence[str]) -> list[Variant]:
    """Variants from a comma-separated string (``"full,no_scp,t1=0.44"``) or a list of specs.

    Raises:
        ValueError: no variant, a bad spec (see :func:`parse_variant`) or two specs naming the
            same variant.
    """
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    items = [s for s in (s.strip() for s in items) if s]
    if not items:
        raise ValueError("no ablation variant given")
    variants = [parse_variant(s) for s in items]
    names = [v.name for v in variants]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"ablation variant {name!r} is given twice")
    return variants


def variant_config(base: TrainConfig, variant: Variant, out_dir: str | Path) -> TrainConfig:
    """The training config of ``variant``: ``base`` with its overrides, run in ``out_dir/<name>``.

    Raises:
        ValueError: the result is not a valid TrainConfig.
    """
    return dataclasses.replace(base, **variant.overrides, out_dir=str(Path(out_dir) / variant.name))


@dataclass(frozen=True)
class AblationConfig:
    """What an ablation study trains and how its stylizers are scored."""

    pairs: str  # DPST-layout folder of evaluation pairs (content/, style/, optional masks)
    out_dir: str  # one sub-folder per variant: checkpoint, stylizer, logs, outputs/
    variants: tuple[str, ...] = DEFAULT_VARIANTS  # variant specs (see parse_variant)
    limit_pairs: int | None = None  # evaluate only the first N pairs (None: all)
    use_masks: bool = True  # pass the pairs' masks to the stylizers
    max_size: int = 1024  # working size (longest side) of the stylizers at evaluation
    fid_vgg: bool = True  # also FID-VGG of outputs vs style photos (needs >= 2 pairs)
    fid_size: int = FID_INPUT_SIZE  # side images are resized to for FID-VGG

    def __post_init__(self) -> None:
        if self.limit_pairs is not None and self.limit_pairs < 1:
            raise ValueError(f"limit_pairs must be >= 1, got {self.limit_pairs}")
        if self.max_size < 16:
            raise ValueError(f"max_size must be >= 16, got {self.max_size}")
        if self.fid_size < fid_module.VGG_MIN_SIZE:
            raise ValueError(f"fid_size must be >= {fid_module.VGG_MIN_SIZE}, got {self.fid_size}")


@dataclass(frozen=True)
class AblationRow:
    """One trained and scored variant (a row of Table III / IV)."""

    variant: str  # canonical spec, e.g. "no_scp"
    label: str  # the paper's wording, e.g. "Ours without SCP losses"
    steps: int  # training steps completed (may be below target_steps after a time limit)
    target_steps: int  # steps asked for
    final_loss: float  # last logged total loss, Eq. (8) (nan if never logged)
    train_seconds: float  # training wall time, summed over resumed sessions (nan if unknown)
    ssim: float  # mean SSIM(output, content): structure kept, higher is better
    gram_ratio: float  # mean Gram distance ratio to the style: lower is more stylized
    fid_vgg: float | None  # FID-VGG(outputs, style photos), lower is better; None: not computed
    pairs: int  # evaluation pairs scored
    run_dir: str  # the variant's run folder
    gram_ratio_geomean: float = math.nan  # geometric mean of the Gram ratios (the headline)
    photorealism: float = math.nan  # mean photorealism, dB (PSNR to a local affine colour model)
    photorealism_p10: float = math.nan  # 10th percentile of the photorealism over the pairs, dB

    def to_json(self) -> dict[str, Any]:
        """The row as strict JSON values (nan becomes None)."""
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in dataclasses.asdict(self).items()
        }


@dataclass
class AblationProgress:
    """Optional callbacks reporting a study's progress (e.g. to drive tqdm bars)."""

    on_variant: Callable[[Variant, str], None] | None = None  # (variant, "train"/"done"/"eval")
    on_step: Callable[[int, dict[str, float]], None] | None = None  # (step, losses) per step
    on_index_batch: Callable[[int], None] | None = None  # images added to the perceptual index
    on_pair: Callable[[], None] | None = None  # after each evaluation pair


@dataclass
class _TrainState:
    step: int  # steps the checkpoint holds
    config: TrainConfig  # the config saved in it
    history: list[dict[str, float]] = field(default_factory=list)  # its logged losses


def _saved_state(run_dir: Path) -> _TrainState | None:
    """The step, config and loss history of a run folder's checkpoint, without its tensors."""
    from safetensors import SafetensorError, safe_open

    path = run_dir / "checkpoint.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        return _TrainState(
            step=int(meta["step"]),
            config=TrainConfig.from_dict(json.loads(meta["train_config"])),
            history=json.loads(meta.get("history", "[]")),
        )
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a readable training checkpoint ({err})") from err


def _comparable(config: TrainConfig) -> dict[str, Any]:
    d = {k: v for k, v in config.to_dict().items() if k not in RUNTIME_FIELDS}
    for key in ("data", "encoder_weights"):
        if d[key] and Path(d[key]).exists():
            d[key] = os.path.realpath(d[key])
    return json.loads(json.dumps(d))  # tuples and lists compare alike


def _check_same_run(run_dir: Path, saved: TrainConfig, wanted: TrainConfig) -> None:
    a, b = _comparable(saved), _comparable(wanted)
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if diff:
        raise ValueError(
            f"{run_dir}: holds a run with other settings ({', '.join(diff)}); "
            "use another --out-dir or remove that folder"
        )


def _reuse_index(run_dir: Path, siblings: Sequence[Path]) -> None:
    """Copy a sibling variant's perceptual index (same images and encoder) instead of rebuilding.

    The Trainer checks the copied index's image list and size and rebuilds it if they differ.
    """
    target = run_dir / "index.safetensors"
    if target.exists():
        return
    for sibling in siblings:
        source = sibling / "index.safetensors"
        if source.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            return


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRAIN_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _last_total(history: Sequence[Mapping[str, float]]) -> float:
    for entry in reversed(history):
        if "total" in entry:
            return float(entry["total"])
    return math.nan


def train_variant(
    config: TrainConfig, siblings: Sequence[Path] = (), progress: AblationProgress | None = None
) -> tuple[int, float, float, bool]:
    """Train (or resume) one variant's run; a run that already reached its steps is left as is.

    Args:
        config: the variant's training config (see :func:`variant_config`).
        siblings: run folders of other variants whose perceptual index may be reused.
        progress: step and index callbacks.

    Returns:
        (steps completed, final total loss, training seconds over all sessions, whether this
        call trained).

    Raises:
        ValueError: the run folder holds a run with other settings.
    """
    from photostyle.train.trainer import Trainer

    progress = progress or AblationProgress()
    run_dir = Path(config.out_dir)
    saved = _saved_state(run_dir)
    record = _read_record(run_dir)
    seconds = float(record.get("train_seconds", 0.0 if saved is None else math.nan))
    if saved is not None:
        _check_same_run(run_dir, saved.config, config)
        if saved.step >= config.steps and (run_dir / "stylizer.safetensors").is_file():
            loss = record.get("final_loss") if record.get("step") == saved.step else None
            final = _last_total(saved.history) if loss is None else float(loss)
            return saved.step, final, seconds, False
    _reuse_index(run_dir, siblings)
    trainer = Trainer(config, progress=progress.on_step, on_index_batch=progress.on_index_batch)
    start = time.monotonic()
    result = trainer.train()
    seconds += time.monotonic() - start
    final = float(result.losses.get("total", _last_total(trainer.history)))
    record = {
        "step": result.step,
        "train_seconds": seconds if math.isfinite(seconds) else None,
        "final_loss": final if math.isfinite(final) else None,
    }
    write_json(run_dir / TRAIN_RECORD, record)
    return result.step, final, seconds, True


def _evaluate_variant(
    name: str,
    stylizer: Stylizer,
    pairs: Sequence[PairLike],
    encoder: VGGEncoder,
    outputs: Path,
    options: StylizeOptions,
    config: AblationConfig,
    progress: AblationProgress,
) -> tuple[list[quality.MethodResult], list[Path]]:
    """Score one stylizer on the pairs; its outputs go to ``outputs/<pair>.png``."""
    from photostyle.io import save_image

    written: list[Path] = []

    def keep(pair: PairLike, _: str, image: torch.Tensor) -> None:
        written.append(save_image(image, outputs / f"{pair.name}.png"))

    def pair_done(_: PairLike) -> None:
        if progress.on_pair is not None:
            progress.on_pair()

    results = quality.evaluate(
        pairs,
        {name: quality.stylizer_method(stylizer, options)},
        encoder,
        use_masks=config.use_masks,
        on_output=keep,
        on_pair=pair_done,
    )
    return results, written


def run_ablation(
    config: AblationConfig,
    base: TrainConfig,
    *,
    encoder: VGGEncoder | None = None,
    fid_extractor: fid_module.Extractor | None = None,
    progress: AblationProgress | None = None,
) -> list[AblationRow]:
    """Train and score every variant of ``config`` (paper Tables III/IV), one row each.

    All variant configs are built (and validated) before any training. Outputs are written to
    ``OUT/<variant>/outputs/<pair>.png``.

    Args:
        config: pairs, output folder, variant specs and evaluation settings.
        base: training settings shared by all variants (``data``, ``steps``, ``crop``,
            ``batch_size``, ``lr``, ``time_limit_s``, ``device``...); its ``out_dir``, ablation
            switches and sampling thresholds are replaced per variant.
        encoder: VGG encoder of the Gram metric (default: the bundled VGG16,
            :func:`photostyle.eval.quality.metric_encoder`, on ``base.device``).
        fid_extractor: features for FID-VGG (default: :func:`photostyle.eval.fid.vgg_extractor`
            on ``base.device``); unused when ``config.fid_vgg`` is off or there are < 2 pairs.
        progress: callbacks for progress bars.

    Returns:
        One :class:`AblationRow` per variant, in the order given.

    Raises:
        ValueError: a bad variant spec, no ``base.data``, a pairs folder without pairs, or a run
            folder holding a run with other settings.
    """
    from photostyle.data.pairs import find_pairs

    if not base.data:
        raise ValueError("ablate needs training data (an ImageFolder root)")
    progress = progress or AblationProgress()
    variants = parse_variants(config.variants)
    out = Path(config.out_dir)
    configs = [variant_config(base, v, out) for v in variants]
    pairs = find_pairs(config.pairs, use_masks=config.use_masks)[: config.limit_pairs]
    device = resolve_device(base.device)
    options = StylizeOptions(max_size=config.max_size)
    use_fid = config.fid_vgg and len(pairs) >= 2
    metric = encoder if encoder is not None else quality.metric_encoder(device)
    style_stats: fid_module.ActivationStatistics | None = None

    rows = []
    for k, (variant, cfg) in enumerate(zip(variants, configs, strict=True)):
        run_dir = Path(cfg.out_dir)
        siblings = [Path(c.out_dir) for c in configs[:k]]
        if progress.on_variant is not None:
            done = _saved_state(run_dir)
            finished = done is not None and done.step >= cfg.steps
            progress.on_variant(variant, "done" if finished else "train")
        steps, final, seconds, _ = train_variant(cfg, siblings, progress)
        if progress.on_variant is not None:
            progress.on_variant(variant, "eval")
        stylizer = Stylizer(
            run_dir / "stylizer.safetensors", encoder_weights=cfg.encoder_weights, device=device
        )
        results, written = _evaluate_variant(
            variant.name, stylizer, pairs, metric, run_dir / "outputs", options, config, progress
        )
        means = quality.summarize(results)[variant.name]
        fid_value = None
        if use_fid:
            extractor = fid_extractor or fid_module.vgg_extractor(device)
            fid_extractor = extractor
            if style_stats is None:
                style_stats = fid_module.activation_statistics(
                    [p.style for p in pairs], extractor, size=config.fid_size, device=device
                )
            ours = fid_module.activation_statistics(
                written, extractor, size=config.fid_size, device=device
            )
            fid_value = fid_module.frechet_distance(
                ours.mu, ours.sigma, style_stats.mu, style_stats.sigma
            )
        rows.append(
            AblationRow(
                variant=variant.name,
                label=variant.label,
                steps=steps,
                target_steps=cfg.steps,
                final_loss=final,
                train_seconds=seconds,
                ssim=means["ssim"],
                gram_ratio=means["gram_ratio"],
                fid_vgg=fid_value,
                pairs=len(results),
                run_dir=str(run_dir),
                gram_ratio_geomean=means["gram_ratio_geomean"],
                photorealism=means["photorealism"],
                photorealism_p10=means["photorealism_p10"],
            )
        )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def ablation_markdown(rows: Sequence[AblationRow]) -> str:
    """The rows as a markdown table, one row per variant (the layout of Tables III/IV)."""
    lines = [
        "| variant | method | steps | final loss | train s | SSIM to content (higher: "
        "structure kept) | Gram ratio geo. mean (lower: styled) | Gram ratio mean "
        "| photorealism dB mean | photorealism dB p10 | FID-VGG to styles (lower) | pairs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        steps = str(r.steps) if r.steps >= r.target_steps else f"{r.steps}/{r.target_steps}"
        lines.append(
            f"| {r.variant} | {r.label} | {steps} | {_fmt(r.final_loss, '.4g')} "
            f"| {_fmt(r.train_seconds, '.0f')} | {_fmt(r.ssim, '.3f')} "
            f"| {_fmt(r.gram_ratio_geomean, '.3f')} | {_fmt(r.gram_ratio, '.3f')} "
            f"| {_fmt(r.photorealism, '.1f')} | {_fmt(r.photorealism_p10, '.1f')} "
            f"| {_fmt(r.fid_vgg, '.2f')} | {r.pairs} |"
        )
    return "\n".join(lines) + "\n"


def ablation_json(
    rows: Sequence[AblationRow], config: AblationConfig, base: TrainConfig
) -> dict[str, Any]:
    """Rows and settings, ready for ``json.dump`` (no nan: missing values are None)."""
    return {
        "settings": {"ablation": dataclasses.asdict(config), "train": base.to_dict()},
        "fid_vgg_note": "FID-VGG: bundled VGG16 relu4_1 features of outputs vs style photos; "
        "compare rows of one study only, not with Inception FID",
        "rows": [r.to_json() for r in rows],
    }


__all__ = [
    "DEFAULT_VARIANTS",
    "AblationConfig",
    "AblationProgress",
    "AblationRow",
    "Variant",
    "ablation_json",
    "ablation_markdown",
    "parse_variant",
    "parse_variants",
    "run_ablation",
    "train_variant",
    "variant_config",
]
