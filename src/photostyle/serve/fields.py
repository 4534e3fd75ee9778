"""The form fields of ``POST /v1/stylize``: parsed from requests and described in OpenAPI.

:data:`STYLIZE_FIELDS` is the one list of fields; the request parser and the OpenAPI document
both read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from photostyle.api import DEFAULT_MAX_SIZE, StylizeOptions
from photostyle.serve.images import OUTPUT_FORMATS
from photostyle.upsample import UPSAMPLE_METHODS, UpsampleMethod

__all__ = [
    "STYLIZE_FIELDS",
    "FormField",
    "RequestOptions",
    "openapi_form_schema",
    "parse_options",
]

Kind = Literal["file", "number", "integer", "string"]


@dataclass(frozen=True)
class FormField:
    """One multipart form field."""

    name: str  # the field's name in the form
    kind: Kind  # file upload, or the type a text value is parsed as
    description: str  # one line for the OpenAPI document
    required: bool = False  # whether a request must have it
    default: float | int | str | None = None  # value when absent (None: no value)
    choices: tuple[str, ...] = ()  # allowed values of a string field (empty: any)


STYLIZE_FIELDS: Final[tuple[FormField, ...]] = (
    FormField("content", "file", "the photo to restyle (any format Pillow reads)", True),
    FormField("style", "file", "the reference photo whose look is transferred", True),
    FormField("content_mask", "file", "optional DPST colour mask of the content"),
    FormField("style_mask", "file", "DPST colour mask of the style; needed with content_mask"),
    FormField("alpha", "number", "style strength in [0, 1]", default=1.0),
    FormField(
        "max_size",
        "integer",
        "longest side the network works at; the result has the content's full size",
        default=DEFAULT_MAX_SIZE,
    ),
    FormField(
        "upsample",
        "string",
        "how the working-size result reaches full size",
        default="guided",
        choices=UPSAMPLE_METHODS,
    ),
    FormField(
        "format",
        "string",
        "encoding of the returned image",
        default="png",
        choices=tuple(OUTPUT_FORMATS),
    ),
)


@dataclass(frozen=True)
class RequestOptions:
    """The non-file fields of a request, checked."""

    alpha: float  # strength the result is blended at (see photostyle.serve.images.blend)
    stylize: StylizeOptions  # what the network pass gets (always alpha = 1)
    format: str  # a key of OUTPUT_FORMATS


def _parse(field: FormField, raw: str) -> float | int | str:
    try:
        if field.kind == "number":
            value: float | int | str = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return value
        if field.kind == "integer":
            return int(raw)
    except ValueError as err:
        raise ValueError(f"{field.name}: expected a {field.kind}, got {raw[:40]!r}") from err
    if field.choices and raw not in field.choices:
        raise ValueError(
            f"{field.name}: unknown {raw[:40]!r}; choose from {', '.join(field.choices)}"
        )
    return raw


def parse_options(
    values: dict[str, str], *, default_max_size: int, max_working_size: int
) -> RequestOptions:
    """Checks the text fields of a request.

    Args:
        values: text value by field name (file fields excluded).
        default_max_size: working size when ``max_size`` is absent.
        max_working_size: largest ``max_size`` the server accepts.

    Returns:
        The options.

    Raises:
        ValueError: one line naming the field: unknown field, unparsable or out-of-range value.
    """
    known = {f.name: f for f in STYLIZE_FIELDS if f.kind != "file"}
    parsed: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in known:
            raise ValueError(f"{name[:40]}: unknown field; fields: {', '.join(known)}")
        parsed[name] = _parse(known[name], raw)
    for name, field in known.items():
        parsed.setdefault(name, field.default)
    if "max_size" not in values:
        parsed["max_size"] = default_max_size
    alpha, max_size = float(parsed["alpha"]), int(parsed["max_size"])
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha:g}")
    if not 16 <= max_size <= max_working_size:
        raise ValueError(f"max_size: must be in [16, {max_working_size}], got {max_size}")
    upsample: UpsampleMethod = parsed["upsample"]
    options = StylizeOptions(alpha=1.0, max_size=max_size, upsample=upsample)
    return RequestOptions(alpha=alpha, stylize=options, format=str(parsed["format"]))


def openapi_form_schema() -> dict[str, Any]:
    """The multipart/form-data schema of :data:`STYLIZE_FIELDS` (OpenAPI 3.1)."""
    types = {"file": "string", "number": "number", "integer": "integer", "string": "string"}
    properties: dict[str, Any] = {}
    for f in STYLIZE_FIELDS:
        prop: dict[str, Any] = {"type": types[f.kind], "description": f.description}
        if f.kind == "file":
            prop["format"] = "binary"
        if f.default is not None:
            prop["default"] = f.default
        if f.choices:
            prop["enum"] = list(f.choices)
        if f.name == "alpha":
            prop |= {"minimum": 0, "maximum": 1}
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in STYLIZE_FIELDS if f.required],
    }
