"""The fields of the API's requests: parsed from requests and described in OpenAPI.

:data:`STYLIZE_FIELDS` (the form of ``POST /v1/stylize``) and :data:`LUT_FIELDS` (the query of
``GET /v1/results/{id}/look.cube``) are the one lists of fields; the request parsers and the
OpenAPI document read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from photostyle.api import StylizeOptions
from photostyle.lut import DEFAULT_LUT_SIZE, MIN_LUT_SIZE
from photostyle.serve.images import OUTPUT_FORMATS
from photostyle.upsample import UPSAMPLE_METHODS, UpsampleMethod

__all__ = [
    "LUT_FIELDS",
    "MAX_SERVED_LUT_SIZE",
    "STYLIZE_FIELDS",
    "FormField",
    "LutRequest",
    "RequestOptions",
    "openapi_form_schema",
    "openapi_query_parameters",
    "parse_lut_query",
    "parse_options",
]

Kind = Literal["file", "number", "integer", "string"]


@dataclass(frozen=True)
class FormField:
    """One request field: of a multipart form, or of a query string."""

    name: str  # the field's name in the form
    kind: Kind  # file upload, or the type a text value is parsed as
    description: str  # one line for the OpenAPI document
    required: bool = False  # whether a request must have it
    default: float | int | str | None = None  # value when absent (None: no value)
    choices: Sequence[str] = ()  # allowed values of a string field (empty: any)


STYLIZE_FIELDS: Final[tuple[FormField, ...]] = (
    FormField("content", "file", "the photo to restyle (any format Pillow reads)", True),
    FormField("style", "file", "the reference photo whose look is transferred", True),
    FormField("content_mask", "file", "optional DPST colour mask of the content"),
    FormField("style_mask", "file", "DPST colour mask of the style; needed with content_mask"),
    FormField("alpha", "number", "style strength in [0, 1]", default=1.0),
    FormField(
        "max_size",
        "integer",
        "longest side the network works at (absent: the model's own working size); the "
        "result has the content's full size",
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


MAX_SERVED_LUT_SIZE: Final = 65  # largest LUT the server fits (a 65^3 fit takes seconds)

LUT_FIELDS: Final[tuple[FormField, ...]] = (
    FormField("alpha", "number", "strength of the look in [0, 1] (the page's slider)", default=1.0),
    FormField(
        "size",
        "integer",
        f"lattice points per axis (LUT_3D_SIZE), {MIN_LUT_SIZE} to {MAX_SERVED_LUT_SIZE}",
        default=DEFAULT_LUT_SIZE,
    ),
)


@dataclass(frozen=True)
class LutRequest:
    """The query of a LUT download, checked."""

    alpha: float  # strength of the look the LUT is fitted to
    size: int  # lattice points per axis


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


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha:g}")
    return alpha


def _parse_all(fields: tuple[FormField, ...], values: dict[str, str]) -> dict[str, Any]:
    """Parses ``values`` against ``fields`` (file fields excluded); absent ones get defaults."""
    known = {f.name: f for f in fields if f.kind != "file"}
    parsed: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in known:
            raise ValueError(f"{name[:40]}: unknown field; fields: {', '.join(known)}")
        parsed[name] = _parse(known[name], raw)
    for name, field in known.items():
        parsed.setdefault(name, field.default)
    return parsed


def parse_lut_query(values: dict[str, str]) -> LutRequest:
    """Checks the query of a LUT download (:data:`LUT_FIELDS`).

    Raises:
        ValueError: one line naming the field: unknown field, unparsable or out-of-range value.
    """
    parsed = _parse_all(LUT_FIELDS, values)
    size = int(parsed["size"])
    if not MIN_LUT_SIZE <= size <= MAX_SERVED_LUT_SIZE:
        raise ValueError(f"size: must be in [{MIN_LUT_SIZE}, {MAX_SERVED_LUT_SIZE}], got {size}")
    return LutRequest(alpha=_check_alpha(float(parsed["alpha"])), size=size)


def parse_options(
    values: dict[str, str], *, default_max_size: int | None, max_working_size: int
) -> RequestOptions:
    """Checks the text fields of a request.

    Args:
        values: text value by field name (file fields excluded).
        default_max_size: working size when ``max_size`` is absent (None: the model's own).
        max_working_size: largest ``max_size`` the server accepts.

    Returns:
        The options.

    Raises:
        ValueError: one line naming the field: unknown field, unparsable or out-of-range value.
    """
    parsed = _parse_all(STYLIZE_FIELDS, values)
    alpha = _check_alpha(float(parsed["alpha"]))
    max_size = int(parsed["max_size"]) if "max_size" in values else default_max_size
    if max_size is not None and not 16 <= max_size <= max_working_size:
        raise ValueError(f"max_size: must be in [16, {max_working_size}], got {max_size}")
    upsample: UpsampleMethod = parsed["upsample"]
    options = StylizeOptions(alpha=1.0, max_size=max_size, upsample=upsample)
    return RequestOptions(alpha=alpha, stylize=options, format=str(parsed["format"]))


def _schema(f: FormField) -> dict[str, Any]:
    types = {"file": "string", "number": "number", "integer": "integer", "string": "string"}
    prop: dict[str, Any] = {"type": types[f.kind], "description": f.description}
    if f.kind == "file":
        prop["format"] = "binary"
    if f.default is not None:
        prop["default"] = f.default
    if f.choices:
        prop["enum"] = list(f.choices)
    if f.name == "alpha":
        prop |= {"minimum": 0, "maximum": 1}
    return prop


def openapi_form_schema() -> dict[str, Any]:
    """The multipart/form-data schema of :data:`STYLIZE_FIELDS` (OpenAPI 3.1)."""
    return {
        "type": "object",
        "properties": {f.name: _schema(f) for f in STYLIZE_FIELDS},
        "required": [f.name for f in STYLIZE_FIELDS if f.required],
    }


def openapi_query_parameters(fields: tuple[FormField, ...]) -> list[dict[str, Any]]:
    """The OpenAPI 3.1 query parameters of ``fields`` (e.g. :data:`LUT_FIELDS`)."""
    return [
        {"name": f.name, "in": "query", "required": f.required, "schema": _schema(f)}
        for f in fields
    ]
