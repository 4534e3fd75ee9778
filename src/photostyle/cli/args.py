"""Argument groups that several commands share, and the readers that turn them into library objects.

Choices and defaults come from the library (its constants and dataclass defaults), never copies.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

from photostyle.dtypes import AUTO_DTYPE, COMPUTE_DTYPES, torch_dtype
from photostyle.models.layers import FA_VARIANTS
from photostyle.upsample import UPSAMPLE_METHODS

if TYPE_CHECKING:
    from photostyle.api import StylizeOptions, Stylizer

_C = TypeVar("_C")
SubParsers = argparse._SubParsersAction  # what a command module's ``register`` adds its parser to


def device_type(text: str) -> str:
    """``--device`` checked when the arguments are parsed, before any work (argparse names it)."""
    from photostyle.utils import resolve_device

    try:
        resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        type=device_type,
        default="auto",
        help="auto, cpu, cuda or cuda:N (default auto)",
    )


def add_weights_args(p: argparse.ArgumentParser, *, encoder: bool = True) -> None:
    """``--weights`` (and ``--encoder-weights``) of the commands that measure or serve a model."""
    p.add_argument("--weights", type=Path, help="stylizer .safetensors (default: shipped model)")
    if encoder:
        p.add_argument("--encoder-weights", help="VGG weights the stylizer was trained with")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The stylizer and how it runs: weights, FA, alpha, working size, upsampling, device, dtype."""
    p.add_argument(
        "--weights",
        type=Path,
        help="stylizer .safetensors, or a bundled model: affine (the default) or decoder "
        "(the previous release)",
    )
    p.add_argument(
        "--encoder-weights",
        help="VGG weights file or URL the stylizer was trained with (default: bundled VGG16)",
    )
    p.add_argument(
        "--fa",
        choices=FA_VARIANTS,
        help="FA variant (default: the model's)",
    )
    p.add_argument("--alpha", type=float, default=1.0, help="style strength in [0, 1] (default 1)")
    p.add_argument(
        "--max-size",
        type=int,
        help="longest side the network works at; the result is brought back to full size "
        "(default: the model's own working size, stored in its weights)",
    )
    p.add_argument(
        "--upsample",
        choices=UPSAMPLE_METHODS,
        default="guided",
        help="how the working-size result reaches full size: guided (local affine colour model "
        "applied to the full-size photo), change (add the upsampled change), bicubic "
        "(default guided)",
    )
    p.add_argument(
        "--refine",
        type=int,
        metavar="STEPS",
        help="refine the colour grade on each photo with this many optimisation steps (models "
        "with the curves head; 0 = one network pass; default: the model's own)",
    )
    add_device_arg(p)
    p.add_argument(
        "--dtype",
        choices=(AUTO_DTYPE, *COMPUTE_DTYPES),
        default=AUTO_DTYPE,
        help="the network's compute type; auto (default): bfloat16 on CPUs with AVX-512 BF16 or "
        "AMX, where it is faster at the same quality, else float32 (resizing and upsampling "
        "stay float32)",
    )


def add_backend_args(p: argparse.ArgumentParser) -> None:
    from photostyle.deploy.backends import BACKEND_REGISTRY, BACKENDS

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=BACKENDS[0],
        help="run the network with "
        + ", or ".join(spec.summary for spec in BACKEND_REGISTRY.specs()),
    )
    p.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="with --backend onnxruntime: a file from photostyle export (default: export once "
        "into ~/.cache/photostyle/onnx)",
    )


def stylizer_from_args(args: argparse.Namespace) -> Stylizer:
    """The stylizer of :func:`add_model_args` (and :func:`add_backend_args`, where a command has
    them)."""
    from photostyle.api import Stylizer
    from photostyle.deploy.backends import BACKEND_REGISTRY, BACKENDS, backend_spec

    backend = getattr(args, "backend", BACKENDS[0])  # stylize and demo have it
    onnx = getattr(args, "onnx", None)
    if onnx is not None and not backend_spec(backend).takes_file:
        takes = " or ".join(BACKEND_REGISTRY.names(lambda s: s.takes_file))
        raise ValueError(f"--onnx needs --backend {takes}")
    from photostyle.utils import check_bfloat16_speed, resolve_device

    if args.dtype == "bfloat16":
        check_bfloat16_speed(resolve_device(args.device), "--dtype bfloat16")
    return Stylizer(
        args.weights,
        device=args.device,
        encoder_weights=args.encoder_weights,
        fa=args.fa,
        backend=backend,
        onnx_path=onnx,
        dtype=AUTO_DTYPE if args.dtype == AUTO_DTYPE else torch_dtype(args.dtype),
    )


def flag_config(cls: Callable[..., _C], **values: object) -> _C:
    """``cls(**values)`` for a config dataclass whose fields are flags: a message that starts
    with a field's name names the flag instead (``--max-size``, not ``max_size``)."""
    try:
        return cls(**values)
    except ValueError as err:
        text = str(err)
        for name in values:
            if text.startswith(f"{name} "):
                raise ValueError(f"--{name.replace('_', '-')}{text[len(name) :]}") from None
        raise


def options_from_args(args: argparse.Namespace) -> StylizeOptions:
    """The per-call options of :func:`add_model_args`, checked (messages name the flags)."""
    from photostyle.api import StylizeOptions

    return flag_config(
        StylizeOptions,
        alpha=args.alpha,
        max_size=args.max_size,
        fa=args.fa,
        upsample=args.upsample,
        refine=args.refine,
    )


# --- flags generated from a config dataclass -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """How the fields of a config dataclass become flags (see :func:`dataclass_flags`)."""

    names: Mapping[str, str] = dataclasses.field(default_factory=dict)  # field -> its flag's name
    choices: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # by field
    # bool field -> (an extra flag that sets it False, that flag's help)
    negations: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    layered: bool = False  # every default None: only the flags given override a config file


def _field_type(annotation: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """(argparse type, choices) of a field annotation.

    ``X | None`` is read as ``X``; a ``Literal`` gives its values as choices, and so does an
    ``Annotated[str, names]`` whose metadata is a sequence of names (a registry's, such as
    ``FAVariant``).
    """
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            annotation = options[0]
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        for names in metadata:
            if isinstance(names, Sequence) and not isinstance(names, str):
                return base, tuple(names)
        return _field_type(base)
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        return type(values[0]), values
    return annotation, None


def _field_default(f: dataclasses.Field[Any], defaults: object | None) -> Any:
    """The default of field ``f``: its value in ``defaults`` if given, else its own."""
    if defaults is not None:
        return getattr(defaults, f.name)
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def dataclass_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    spec: FlagSpec | None = None,
    *,
    defaults: object | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, str]:
    """One ``--flag`` per field of a config dataclass, its help the field's comment.

    Fields without a default become required; ``bool`` fields become ``--flag`` / ``--no-flag``;
    ``Literal`` fields take their values as choices, ``tuple`` fields one value per element
    (``tuple[X, ...]``: one or more); a ``device`` field is checked like every ``--device``; a
    nested dataclass (``sampling``) gives one flag per field of its own, or per field its
    ``top_level`` metadata names (``model``: ``--arch``, ``--fa``, ``--residual``; a mapping gives
    the flags names of their own: ``--bins`` for ``model.grid_bins``), its defaults those of the
    field's default value. With ``spec.layered`` every default is None, so that only the flags
    given are set (the help still shows the dataclass's default).

    Args:
        parser: where the flags are added.
        cls: the config dataclass.
        spec: flag names, choices and negations.
        defaults: an instance whose values are the defaults shown (None: the fields' own).
        only: the fields that become flags (None: all).

    Returns:
        Each flag's ``dest`` -> the (dotted) field it sets: ``t1`` -> ``sampling.t1``.
    """
    from typing import get_type_hints

    from photostyle.train.config import field_comments, nested_top_level

    spec = spec or FlagSpec()
    hints = get_type_hints(cls, include_extras=True)  # keeps Annotated choices
    comments = field_comments(cls)
    dests: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            top = nested_top_level(f)  # flag's name -> nested field
            renamed = {name: key for key, name in top.items() if key != name}
            nested = dataclass_flags(
                parser,
                hints[f.name],
                dataclasses.replace(spec, names={**spec.names, **renamed}),
                defaults=_field_default(f, defaults),
                only=tuple(top.values()) if "top_level" in f.metadata else None,
            )
            dests.update({dest: f"{f.name}.{path}" for dest, path in nested.items()})
            continue
        dest = spec.names.get(f.name, f.name)
        flag = "--" + dest.replace("_", "-")
        dests[dest] = f.name
        text = comments.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            parser.add_argument(flag, required=True, help=text)
            continue
        default = _field_default(f, defaults)
        value = None if spec.layered else default  # the parsed value when the flag is not given
        shown = (
            ""
            if default in ("", ()) or (spec.layered and default is None)
            else f" (default {default})"
        )
        kind, choices = _field_type(hints[f.name])
        if f.name == "device" and not spec.layered:
            add_device_arg(parser)
        elif f.name == "device":
            parser.add_argument(flag, type=device_type, help=f"{text}{shown}")
        elif kind is bool:  # argparse adds "(default: X)" itself when the default is not None
            help_text = f"{text}{shown}" if spec.layered else text
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=value, help=help_text
            )
            if f.name in spec.negations:
                negation, negation_help = spec.negations[f.name]
                parser.add_argument(
                    negation, dest=dest, action="store_false", default=value, help=negation_help
                )
        elif get_origin(kind) is tuple and get_args(kind)[-1] is Ellipsis:  # tuple[X, ...]
            parser.add_argument(
                flag,
                type=get_args(kind)[0],
                nargs="+",
                metavar=dest.upper().split("_")[-1],
                default=value,
                help=f"{text}{shown}",
            )
        elif get_origin(kind) is tuple:
            types_ = get_args(kind)
            parser.add_argument(
                flag,
                type=types_[0],
                nargs=len(types_),
                metavar=tuple(f"{dest.upper()}{i + 1}" for i in range(len(types_))),
                default=value,
                help=f"{text}{shown}",
            )
        else:
            parser.add_argument(
                flag,
                type=kind,
                choices=spec.choices.get(f.name, choices),
                default=value,
                help=f"{text}{shown}",
            )
    return dests
