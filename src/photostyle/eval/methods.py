"""The methods ``photostyle eval`` scores, each registered once with its capabilities.

A method is a function ``(content, style, content_mask, style_mask) -> output`` on (3, H, W)
tensors in [0, 1] (masks are (H, W) int64 label maps or None). Every kind of method is one
:class:`MethodSpec`: how to build it from the run's settings (:class:`MethodSettings`) and what
the rest of the evaluation may ask of it (does it use the pairs' masks, has it a strength of its
own, which model does it load, which optional package does it need). :func:`make_methods` builds
methods by name and :func:`method_names` lists them, both from the registry; a new baseline is
its function plus one :func:`register_method` call.

Registered here: ``photostyle-<fa>[+<upsampling>][@<working size>][-nomasks]`` (a family of
names, see :func:`photostyle_options`), the classical baselines and the peers of
:mod:`photostyle.eval.baselines`, and the neural baselines of
:mod:`photostyle.eval.neural_baselines` (``adain``, ``wct``, ``gatys``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import torch

from photostyle.api import DEFAULT_MAX_SIZE, StylizeOptions, Stylizer
from photostyle.eval.baselines import BASELINES, PEERS, require_peer
from photostyle.eval.metrics import metric_encoder
from photostyle.eval.neural_baselines import (
    GATYS_MAX_SIZE,
    NEURAL_TRANSFORMS,
    NeuralTransform,
    autoencoder_transfer,
    check_autoencoder,
    gatys,
)
from photostyle.models.encoder import VGGEncoder
from photostyle.models.layers import FAVariant, fa_variant
from photostyle.registry import Registry
from photostyle.upsample import UpsampleMethod, upsampler

Method = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor
]
MethodModel = Literal["stylizer", "autoencoder", "encoder"]  # models a method may need loaded


@dataclass
class MethodSettings:
    """The run's settings, as every method's builder sees them; models are loaded once, on use."""

    stylizer: Callable[[], Stylizer]  # returns the photostyle model
    alpha: float = 1.0  # FA strength of photostyle, transform strength of adain and wct
    # Working size of photostyle (None: the model's own), adain and wct (None: 1024; gatys:
    # GATYS_MAX_SIZE at most).
    max_size: int | None = None
    autoencoder: Callable[[], Stylizer] | None = None  # returns adain/wct's reconstruction decoder
    gatys_encoder: Callable[[], VGGEncoder] | None = None  # gatys' VGG; None = the bundled VGG16
    gatys_steps: int = 200  # optimisation steps of gatys
    upsample: UpsampleMethod = "guided"  # how photostyle methods without "+" reach full size
    refine: int | None = None  # photostyle's refinement steps; None = the model's own
    _loaded: dict[MethodModel, object] = field(default_factory=dict, init=False, repr=False)

    def model(self) -> Stylizer:
        """The photostyle model (``stylizer()``, called once)."""
        if "stylizer" not in self._loaded:
            self._loaded["stylizer"] = self.stylizer()
        return cast(Stylizer, self._loaded["stylizer"])

    def reconstruction(self, name: str) -> Stylizer:
        """The reconstruction decoder that method ``name`` needs (``autoencoder()``, called once).

        Raises:
            ValueError: none was given, or the stylizer is not an autoencoder.
        """
        if "autoencoder" not in self._loaded:
            if self.autoencoder is None:
                raise ValueError(
                    f"{name} needs --autoencoder FILE "
                    "(a checkpoint trained with photostyle train --reconstruction)"
                )
            decoder = self.autoencoder()
            check_autoencoder(decoder)
            self._loaded["autoencoder"] = decoder
        return cast(Stylizer, self._loaded["autoencoder"])


@dataclass(frozen=True)
class MethodSpec:
    """One kind of evaluation method: how it is built and what it is."""

    name: str  # the method's name; with ``family``, the prefix of its names
    build: Callable[[str, MethodSettings], Method]  # (full name, settings) -> the method
    uses_masks: bool  # uses the pairs' semantic masks (the others ignore them)
    adjustable: bool  # has a strength of its own (quality.Adjustable); others are blended
    model: MethodModel | None = None  # the model it loads, if any
    package: str | None = None  # a PyPI package it needs that photostyle does not require
    family: str | None = None  # names are ``name`` + this placeholder's values, e.g. "fa"
    default_rank: int | None = None  # place among ``photostyle eval``'s methods without --method


METHOD_REGISTRY: Registry[MethodSpec] = Registry("method")  # name (a family's prefix) -> spec


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry; ``photostyle eval --method`` then accepts it.

    Raises:
        ValueError: a method of that name is registered already.
    """
    return METHOD_REGISTRY.register(spec.name, spec)


def method_specs() -> tuple[MethodSpec, ...]:
    """The registered methods, in registration order."""
    return METHOD_REGISTRY.specs()


def eval_method(name: str) -> MethodSpec:
    """The registered method of ``name`` (a name of a family: its spec).

    Raises:
        ValueError: no such method (the message names the choices).
    """
    specs = METHOD_REGISTRY.specs()
    for spec in specs:
        if spec.name == name and spec.family is None:
            return spec
    for spec in specs:
        if spec.family is not None and name.startswith(spec.name):
            return spec
    families = [f"{s.name}<{s.family}>" for s in specs if s.family is not None]
    names = [s.name for s in specs if s.family is None]
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(families)}, {names}")


def method_names(fa_variants: Sequence[str]) -> list[str]:
    """Every method name :func:`make_methods` accepts (without the photostyle suffixes)."""
    plain = METHOD_REGISTRY.names(lambda spec: spec.family is None)
    return [*(PHOTOSTYLE_PREFIX + v for v in fa_variants), *plain]


def default_methods(fa: str) -> list[str]:
    """The methods ``photostyle eval`` scores without ``--method``, in their order.

    Args:
        fa: the FA variant of the photostyle family's default member (the model's).
    """
    chosen = sorted(
        (s for s in METHOD_REGISTRY.specs() if s.default_rank is not None),
        key=lambda s: s.default_rank or 0,
    )
    return [s.name + fa if s.family == "fa" else s.name for s in chosen]


def make_methods(
    names: Sequence[str],
    stylizer: Callable[[], Stylizer],
    *,
    alpha: float = 1.0,
    max_size: int | None = None,
    autoencoder: Callable[[], Stylizer] | None = None,
    gatys_encoder: Callable[[], VGGEncoder] | None = None,
    gatys_steps: int = 200,
    upsample: UpsampleMethod = "guided",
    refine: int | None = None,
) -> dict[str, Method]:
    """Methods by name: ``photostyle-<fa variant>`` (see :func:`photostyle_options` for the
    ``+<upsampling>`` and ``@<working size>`` suffixes; ``-nomasks`` at the end ignores the pairs'
    masks, to compare with and without them in one run), a classical baseline (``identity``,
    ``reinhard``, ``histogram``), a peer, a neural baseline (``adain``, ``wct``, ``gatys``), or
    any other registered method (:func:`register_method`).

    Args:
        names: method names, in the order wanted.
        stylizer: returns the stylizer to use (called once, only if a photostyle method is asked).
        alpha: FA strength of the photostyle methods, and transform strength of adain/wct.
        max_size: working size of the photostyle (None: the model's own), adain and wct (None:
            ``DEFAULT_MAX_SIZE``) methods (gatys: at most ``GATYS_MAX_SIZE``).
        autoencoder: returns the reconstruction decoder of adain/wct (a stylizer trained with
            ``reconstruction=True``); called once, only if adain or wct is asked.
        gatys_encoder: returns the VGG encoder of gatys; None = the bundled ImageNet VGG16.
        gatys_steps: optimisation steps of gatys.
        upsample: how photostyle methods without a ``+`` suffix reach full size.
        refine: refinement steps of the photostyle methods (None: the model's own).

    Raises:
        ValueError: an unknown name (checked before any work), adain/wct without an autoencoder
            (or with a stylizer that is not one), or negative gatys steps.
        PeerUnavailable: a peer's package is not installed (checked before any work).
    """
    specs = [(name, eval_method(name)) for name in names]
    settings = MethodSettings(
        stylizer, alpha, max_size, autoencoder, gatys_encoder, gatys_steps, upsample, refine
    )
    return {name: spec.build(name, settings) for name, spec in specs}


# --------------------------------------------------------------------------------------------
# The built-in methods
# --------------------------------------------------------------------------------------------


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


def _peer_method(name: str, settings: MethodSettings) -> Method:
    require_peer(name)  # its package, before any work
    return baseline_method(name)


@dataclass(frozen=True)
class StylizerMethod:
    """photostyle itself as a method, :class:`~photostyle.eval.quality.Adjustable` through its FA
    strength ``alpha``.
    """

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
    name: str,
    *,
    alpha: float = 1.0,
    max_size: int | None = None,
    upsample: UpsampleMethod = "guided",
    refine: int | None = None,
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
    try:
        fa_variant(fa)
        if up:
            upsampler(up)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    if size:
        if not size.isdigit() or int(size) < 16:
            raise ValueError(f"{name}: working size must be an integer >= 16, got {size!r}")
        max_size = int(size)
    return StylizeOptions(
        alpha=alpha,
        max_size=max_size,
        fa=cast(FAVariant, fa),
        upsample=cast(UpsampleMethod, up) if up else upsample,
        refine=refine,
    )


def _photostyle_method(name: str, settings: MethodSettings) -> Method:
    options = photostyle_options(
        name,
        alpha=settings.alpha,
        max_size=settings.max_size,
        upsample=settings.upsample,
        refine=settings.refine,
    )
    masks = not name.endswith(NO_MASKS_SUFFIX)
    return stylizer_method(settings.model(), options, use_masks=masks)


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


def _neural_method(name: str, settings: MethodSettings) -> Method:
    decoder = settings.reconstruction(name)
    transform = cast(NeuralTransform, name)  # registered under NEURAL_TRANSFORMS' names
    size = settings.max_size if settings.max_size is not None else DEFAULT_MAX_SIZE
    return autoencoder_method(decoder, transform, alpha=settings.alpha, max_size=size)


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


def _gatys_method(name: str, settings: MethodSettings) -> Method:
    if settings.gatys_steps < 0:
        raise ValueError(f"gatys steps must be >= 0, got {settings.gatys_steps}")
    make = settings.gatys_encoder
    encoder = make() if make is not None else metric_encoder()
    size = min(settings.max_size or GATYS_MAX_SIZE, GATYS_MAX_SIZE)
    return gatys_method(encoder, steps=settings.gatys_steps, max_size=size)


def _baseline_method(name: str, settings: MethodSettings) -> Method:
    return baseline_method(name)


def _register_builtins() -> None:
    """photostyle, the classical baselines, the peers, the neural baselines: in listing order."""
    register_method(
        MethodSpec(
            PHOTOSTYLE_PREFIX,
            _photostyle_method,
            uses_masks=True,
            adjustable=True,
            model="stylizer",
            family="fa",
            default_rank=0,
        )
    )
    ranks = {"reinhard": 1, "histogram": 2, "identity": 3}  # the default comparison, in order
    for name in BASELINES:
        register_method(
            MethodSpec(
                name,
                _baseline_method,
                uses_masks=False,
                adjustable=False,
                default_rank=ranks.get(name),
            )
        )
    for name, peer in PEERS.items():
        register_method(
            MethodSpec(name, _peer_method, uses_masks=False, adjustable=False, package=peer.package)
        )
    for name in NEURAL_TRANSFORMS:  # AdaIN / WCT at relu4_1, decoded by the autoencoder
        register_method(
            MethodSpec(name, _neural_method, uses_masks=True, adjustable=False, model="autoencoder")
        )
    register_method(
        MethodSpec("gatys", _gatys_method, uses_masks=False, adjustable=False, model="encoder")
    )


_register_builtins()
