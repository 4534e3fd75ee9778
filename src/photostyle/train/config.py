"""Typed training configuration (paper Sec. III-E/F and IV), read from YAML or JSON files.

Every field of :class:`TrainConfig` carries a trailing comment; :func:`config_yaml` turns those
comments into a fully commented YAML file (``photostyle train --print-config``), so the dataclass
is the single place where a setting is defined and documented.

The architecture is a nested :class:`~photostyle.models.stylizer.ModelConfig` (``model``), the one
the exported stylizer is saved with. The few of its fields that training sets (``arch``, ``fa``,
``residual``: the field's ``top_level`` metadata) are also read as top-level keys, as configs and
checkpoints of earlier releases wrote them, and are the training command's flags. The
affine head's training config (:mod:`photostyle.train.affine`) nests its ``model`` the same way,
with its own names for the top-level keys (``bins`` for ``model.grid_bins``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import io
import json
import math
import re
import tokenize
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from photostyle.data.sampler import SamplingConfig
from photostyle.dtypes import AUTOCAST_DTYPES, AutocastDtype
from photostyle.models.encoder import VGG_CONFIGS
from photostyle.models.layers import fa_variant
from photostyle.models.stylizer import ModelConfig
from photostyle.train.pipeline import StyleTerm


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in every checkpoint and as RUN/config.yaml.

    ``reconstruction=True`` trains the reconstruction decoder of the AdaIN/WCT baselines
    (:mod:`photostyle.eval.neural_baselines`): stylizer U alone, with FA ``"none"``, on content
    crops, with the content perceptual loss Eq. (3) and the SCP loss Eq. (2); the style terms, V and
    ``use_restyle``/``style_term`` are ignored. It is refused with any other ``fa`` (no silent
    override: the checkpoint's config says what was trained).

    ``model.widths`` and ``model.depths`` follow ``model.arch`` (a named VGG); ``model.convention``
    and ``model.encoder_sha256`` are set from the encoder weights when the stylizer is saved.
    """

    data: str = ""  # ImageFolder root (class = sub-folder)
    out_dir: str = "runs/photostyle"  # checkpoints, TensorBoard logs, plots, exported stylizer
    model: ModelConfig = field(  # architecture of U and V, saved with the exported stylizer
        default_factory=lambda: ModelConfig(residual=True),  # residual decoders
        metadata={"top_level": ("arch", "fa", "residual")},  # also top-level keys and flags
    )
    encoder_weights: str | None = None  # VGG weights file/URL; null = bundled ImageNet VGG16
    crop: int = 128  # side of the square training crops
    batch_size: int = 4  # triplets per step and process (torchrun: x world size per step)
    steps: int = 1000  # total optimisation steps
    lr: float = 1e-4  # Adam learning rate (paper: 1e-4)
    adam_betas: tuple[float, float] = (0.5, 0.999)  # Adam (beta1, beta2) (paper: 0.5, 0.999)
    beta: float = 1.0  # Eq. (8) weight of the perceptual losses (paper: 1)
    style_term: StyleTerm = "stats"  # Eqs. (4),(6): "stats" (channel mean/std) or literal "feature"
    relative_losses: bool = True  # squared errors relative to their target's energy (losses.py)
    use_scp: bool = True  # ablation switch: SCP losses L_r (Eq. (2))
    use_restyle: bool = True  # ablation switch: re-stylization stage V (Fig. 1)
    use_perceptual: bool = True  # ablation switch: perceptual losses L_p (Eqs. (3)-(7))
    reconstruction: bool = False  # train a plain autoencoder: U only, FA "none", Eq. (3) + SCP
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # Eqs. (10)-(11) thresholds
    index_size: int = 32  # image side for the perceptual distances of Eq. (9)
    index: str | None = None  # prebuilt index dir (photostyle index): its images; null = build one
    max_images: int | None = None  # use only the first N images per class (quick runs)
    seed: int = 0  # seeds weights init and the triplet stream
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"; torchrun: "cuda" = cuda:LOCAL_RANK
    amp: bool = False  # mixed precision (autocast) for the networks; the losses stay float32
    amp_dtype: AutocastDtype = "bfloat16"  # autocast type; "float16" (CUDA only) adds a GradScaler
    channels_last: bool = False  # NHWC memory format for weights and images (faster CUDA convs)
    grad_clip: float | None = None  # clip the gradients' total L2 norm to this; null = no clipping
    workers: int = 1  # DataLoader worker processes (per training process)
    log_every: int = 10  # steps between scalar logs (losses, gradient norm)
    image_every: int = 200  # steps between sample images (content|style|similar|U|V) in TensorBoard
    ckpt_every: int = 50  # steps between checkpoints (atomic, resumable) and loss-curve plots
    time_limit_s: float | None = None  # stop (after checkpointing) once this much time has passed

    def __post_init__(self) -> None:
        model = self.model
        fa = fa_variant(model.fa)  # raises for an unknown variant
        if model.arch not in VGG_CONFIGS:
            raise ValueError(f"unknown arch {model.arch!r}; choose from {sorted(VGG_CONFIGS)}")
        if model.head != "decoder":
            raise ValueError(
                f"train trains the pixel decoder, not the {model.head!r} head "
                "(photostyle train-affine trains the affine head)"
            )
        vgg = VGG_CONFIGS[model.arch]
        if (model.widths, model.depths) != (vgg.widths, vgg.depths):
            self.model = dataclasses.replace(model, widths=vgg.widths, depths=vgg.depths)
        if self.crop < 16 or self.batch_size < 1 or self.steps < 0:
            raise ValueError("crop must be >= 16, batch_size >= 1, steps >= 0")
        if not (self.use_scp or self.use_perceptual):
            raise ValueError("at least one of the SCP and perceptual losses must be on")
        if self.reconstruction and model.fa != "none":
            raise ValueError(
                f"reconstruction trains a plain autoencoder and needs fa='none', got {model.fa!r}"
            )
        if self.style_term not in ("stats", "feature"):
            raise ValueError(f"style_term must be 'stats' or 'feature', got {self.style_term!r}")
        if not (self.lr > 0 and self.beta >= 0 and all(0 <= b < 1 for b in self.adam_betas)):
            raise ValueError("lr must be > 0, beta >= 0 and both Adam betas in [0, 1)")
        if min(self.log_every, self.image_every, self.ckpt_every) < 1 or self.workers < 0:
            raise ValueError("log_every, image_every, ckpt_every must be >= 1 and workers >= 0")
        if self.index_size < 16 or (self.max_images is not None and self.max_images < 1):
            raise ValueError("index_size must be >= 16 and max_images >= 1")
        if self.amp_dtype not in AUTOCAST_DTYPES:
            names = " or ".join(repr(n) for n in AUTOCAST_DTYPES)
            raise ValueError(f"amp_dtype must be {names}, got {self.amp_dtype!r}")
        if self.amp and not fa.amp_safe:
            raise ValueError(f"amp is not supported with fa={model.fa!r} (it needs float32)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 (or null), got {self.grad_clip}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, strict: bool = False) -> TrainConfig:
        """Build a config from a (JSON/YAML-decoded) mapping.

        Args:
            d: field values; ``sampling`` and ``model`` may be mappings, ``adam_betas`` a list;
                ``arch``, ``fa`` and ``residual`` may be top-level keys (earlier releases).
            strict: refuse unknown keys and values of the wrong type (user files). Without it,
                unknown keys are ignored (checkpoints written by other versions).

        Raises:
            ValueError: a bad key, type or value; the message names the key.
        """
        if strict:
            return cls(**check_fields(cls, d))
        kwargs = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(kwargs.get("sampling"), Mapping):
            kwargs["sampling"] = SamplingConfig(**kwargs["sampling"])
        if "adam_betas" in kwargs:
            kwargs["adam_betas"] = tuple(kwargs["adam_betas"])
        top = {path.partition(".")[2]: d[k] for k, path in top_level_keys(cls).items() if k in d}
        model = kwargs.get("model", {})
        if top or isinstance(model, Mapping):
            base = _default(cls, "model").to_dict()
            nested = model.to_dict() if isinstance(model, ModelConfig) else dict(model)
            kwargs["model"] = ModelConfig.from_dict({**base, **nested, **top})
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config; missing keys take defaults.

        Raises:
            ValueError: unreadable file, unknown key, wrong type or invalid value (one line that
                names the file and the key).
        """
        values = read_config_file(path)
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_file(path)

    def to_yaml(self) -> str:
        """This config as a YAML document with a comment on every key."""
        return config_yaml(self)


# --- strict, typed reading of config files -------------------------------------------------------


def _choices(tp: Any) -> Sequence[str] | None:
    """The allowed values of ``Annotated[str, choices]`` (e.g. ``FAVariant``), else None."""
    if get_origin(tp) is not Annotated:
        return None
    return next(
        (m for m in tp.__metadata__ if isinstance(m, Sequence) and not isinstance(m, str)), None
    )


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    choices = _choices(tp)
    if choices is not None:
        args, origin = tuple(choices), Literal
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        return "a list of numbers" if args[-1] is Ellipsis else f"a list of {len(args)} numbers"
    if origin is dict:
        return "a mapping of strings"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    """A value does not have the annotated type (turned into a ValueError naming the key)."""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against annotation ``tp`` (ints accepted as floats, lists as tuples)."""
    origin, args = get_origin(tp), get_args(tp)
    choices = _choices(tp)
    if choices is not None:
        args, origin = tuple(choices), Literal
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise _Mismatch
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return tp(**check_fields(tp, value, prefix=f"{key}."))
    if origin is tuple and args[-1] is Ellipsis:  # tuple[X, ...]: any length
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return tuple(_coerce(v, args[0], key) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _Mismatch
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return {k: _coerce(v, args[1], key) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config annotation {tp!r}")
    raise _Mismatch


def _default(cls: type, name: str) -> Any:
    """The default value of field ``name`` of dataclass ``cls``."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def nested_top_level(f: dataclasses.Field[Any]) -> dict[str, str]:
    """Top-level key -> the field of nested dataclass field ``f`` it sets.

    ``f``'s ``top_level`` metadata names them: a sequence of the nested fields' own names
    (``TrainConfig.model``: arch, fa, residual), or a mapping from a key to a nested field when the
    key has a name of its own (``AffineTrainConfig.model``: ``bins`` -> ``grid_bins``).
    """
    names = f.metadata.get("top_level", ())
    return dict(names) if isinstance(names, Mapping) else {name: name for name in names}


def top_level_keys(cls: type) -> dict[str, str]:
    """Each top-level key of dataclass ``cls`` that sets a nested field -> that field's dotted
    path (``TrainConfig``: ``fa`` -> ``model.fa``; ``AffineTrainConfig``: ``bins`` ->
    ``model.grid_bins``)."""
    return {
        key: f"{f.name}.{name}"
        for f in dataclasses.fields(cls)
        for key, name in nested_top_level(f).items()
    }


def check_fields(cls: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from ``values``: known keys, annotated types.

    Nested dataclass fields (``sampling``, ``model``) are built from mappings, the keys given
    over the field's default; the fields a nested one lists as ``top_level`` may also be given
    as top-level keys (``fa`` for ``model.fa``). Ints are accepted where floats are expected and
    lists where tuples are.

    Raises:
        ValueError: an unknown key (with the closest known one), a value of the wrong type, or a
            setting given both at the top level and in its nested mapping.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls, include_extras=True)
    top = {key: path.partition(".") for key, path in top_level_keys(cls).items()}
    out: dict[str, Any] = {}
    lifted: dict[str, dict[str, Any]] = {}  # nested field -> its values given at the top level
    for key, value in values.items():
        if key in top:
            owner, _, name = top[key]
            owner_hints = get_type_hints(hints[owner], include_extras=True)
            lifted.setdefault(owner, {})[name] = _checked(value, owner_hints[name], prefix + key)
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), [*fields, *top], n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ValueError(f"unknown config key {prefix + str(key)!r}{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, Mapping):
            nested = check_fields(tp, value, prefix=f"{prefix}{key}.")
            out[key] = dataclasses.replace(_default(cls, key), **nested)
            continue
        out[key] = _checked(value, tp, prefix + key)
    for owner, given in lifted.items():
        inside = values.get(owner)
        both = sorted(
            (key, name)
            for key, (at, _, name) in top.items()
            if at == owner and key in values and isinstance(inside, Mapping) and name in inside
        )
        if both:
            key, name = both[0]
            raise ValueError(
                f"config key {prefix + key!r} is given twice (also as "
                f"{prefix + owner + '.' + name!r})"
            )
        out[owner] = dataclasses.replace(out.get(owner, _default(cls, owner)), **given)
    return out


def _checked(value: Any, tp: Any, key: str) -> Any:
    """``value`` coerced to annotation ``tp``, or a ValueError naming config key ``key``."""
    try:
        return _coerce(value, tp, key)
    except _Mismatch:
        raise ValueError(f"config key {key!r} must be {_describe(tp)}, got {value!r}") from None


def _yaml_loader() -> Any:
    """PyYAML's safe loader, also reading ``1e-4`` (no dot) as a float, as YAML 1.2 does."""
    try:
        import yaml
    except ImportError as err:
        raise ValueError("YAML configs need PyYAML: pip install 'photostyle[config]'") from err

    class Loader(yaml.SafeLoader):
        pass

    float_re = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789"))
    return yaml, Loader


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Keyword arguments of :class:`TrainConfig` from a YAML or JSON file, keys and types checked.

    Only the keys in the file are returned (the caller merges command-line overrides and
    defaults); cross-field rules are checked when the config is built.

    Raises:
        ValueError: unreadable or malformed file, unknown key or wrong type (one line naming
            ``path`` and the key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read config ({err})") from err
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    else:
        yaml, loader = _yaml_loader()
        try:
            data = yaml.load(text, Loader=loader)  # a SafeLoader subclass
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f"line {where.line + 1}: " if where is not None else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ValueError(f"{path}: not valid YAML ({line}{problem})") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must be a mapping of TrainConfig keys")
    try:
        return check_fields(TrainConfig, data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def layered_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The settings of a run, in layers: defaults < the config file at ``path`` < ``overrides``.

    Args:
        path: YAML or JSON file of :class:`TrainConfig` keys (:func:`read_config_file`); None =
            no file.
        overrides: field values that win over the file (e.g. command-line flags). None values
            are skipped (not given); a dotted key sets a field of a nested config
            (``"sampling.t1"``).

    Raises:
        ValueError: a bad file, key, type or value (one line naming the file or the key).
    """
    values = read_config_file(path) if path is not None else {}
    return TrainConfig.from_dict(with_overrides(TrainConfig, values, overrides or {}), strict=True)


def with_overrides(
    cls: type, values: dict[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments ``values`` of dataclass ``cls`` with ``overrides`` set over them.

    None overrides are skipped (not given); a dotted key sets a field of a nested config
    (``"sampling.t1"``), and so does a top-level key of a nested field (``"fa"``: ``model.fa``).

    Raises:
        ValueError: a dotted key whose head is not a nested config of ``cls``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    top = top_level_keys(cls)
    for key, value in overrides.items():
        if value is None:
            continue
        key = top.get(key, key)  # e.g. "fa": the nested model's field
        head, _, rest = key.partition(".")
        if not rest:
            values[key] = value
            continue
        factory = fields[head].default_factory if head in fields else dataclasses.MISSING
        if factory is dataclasses.MISSING:
            raise ValueError(f"unknown config key {key!r}")
        nested = values.get(head) or factory()
        values[head] = dataclasses.replace(nested, **{rest: value})
    return values


# --- commented YAML from the dataclass's own comments --------------------------------------------


def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field of dataclass ``cls``, read from its source."""
    return dict(_field_comments(cls))


@functools.cache
def _field_comments(cls: type) -> tuple[tuple[str, str], ...]:
    """:func:`field_comments` as pairs, read once per class: a class's source does not change
    while it runs, and reading it (``inspect.getsource`` parses the whole module) took most of
    the command line's start-up, which builds every command's flags."""
    source = inspect.getsource(cls)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    out: dict[str, str] = {}
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            end = node.end_lineno or node.lineno
            lines = range(node.lineno, end + 1)
            out[node.target.id] = " ".join(comments[i] for i in lines if i in comments)
    return tuple(out.items())


def _yaml_value(value: Any) -> str:
    """A YAML flow scalar/list that PyYAML and YAML 1.2 readers both read back as ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"  # YAML 1.1 needs the dot
        return text
    if isinstance(value, str):
        return json.dumps(value)  # a double-quoted YAML scalar
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to YAML")


def _yaml_lines(obj: Any, indent: str = "", min_width: int = 0) -> list[str]:
    """``key: value  # comment`` lines of dataclass ``obj``; nested dataclasses indented below."""
    comments = field_comments(type(obj))
    fields = dataclasses.fields(obj)
    heads = {}
    for f in fields:
        value = getattr(obj, f.name)
        scalar = "" if dataclasses.is_dataclass(value) else " " + _yaml_value(value)
        heads[f.name] = f"{indent}{f.name}:{scalar}"
    width = max(min_width, *(len(h) + 2 for h in heads.values()))
    lines = []
    for f in fields:
        comment = comments.get(f.name, "")
        lines.append(f"{heads[f.name].ljust(width)}# {comment}" if comment else heads[f.name])
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            lines.extend(_yaml_lines(value, indent + "  ", width))
    return lines


def config_yaml(config: TrainConfig) -> str:
    """``config`` as YAML, one commented line per setting (``photostyle train --print-config``)."""
    header = [
        "# photostyle training configuration: photostyle train --config FILE.yaml",
        "# Every key is optional (a missing key takes its default); command-line flags override",
        "# the file. The resolved config of a run is saved as RUN/config.yaml and in every",
        "# checkpoint.",
        "",
    ]
    return "\n".join(header + _yaml_lines(config)) + "\n"
