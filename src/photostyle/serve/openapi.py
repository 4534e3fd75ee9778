"""The server's OpenAPI 3.1 description, built from the form-field list."""

from __future__ import annotations

from typing import Any, Final

from photostyle.serve.fields import LUT_FIELDS, openapi_form_schema, openapi_query_parameters
from photostyle.serve.images import OUTPUT_FORMATS

__all__ = ["ERROR_RESPONSES", "openapi_document"]

# Status codes the API answers with a one-line JSON error, and when.
ERROR_RESPONSES: Final[dict[str, str]] = {
    "400": "bad upload or option: not an image, corrupt, too small, unknown field ...",
    "413": "request body larger than the server's limit",
    "503": "queue full; see the Retry-After header",
    "504": "no result within the server's timeout",
}


def _errors(*codes: str) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    return {
        code: {
            "description": ERROR_RESPONSES[code],
            "content": {"application/json": {"schema": error}},
        }
        for code in codes
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI document served at ``/openapi.json``.

    Args:
        version: the photostyle version.
    """
    image = {"schema": {"type": "string", "format": "binary"}}
    form = {"multipart/form-data": {"schema": openapi_form_schema()}}
    alpha = {
        "name": "alpha",
        "in": "query",
        "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0},
    }
    result_id = {"name": "result_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "photostyle",
            "version": version,
            "description": "Photorealistic style transfer: the content photo with the style "
            "photo's colours and tone, at the content's full resolution.",
        },
        "paths": {
            "/v1/stylize": {
                "post": {
                    "summary": "Stylize a content photo with a style photo",
                    "requestBody": {"required": True, "content": form},
                    "responses": {
                        "200": {
                            "description": "the result at the content's full size, no metadata",
                            "content": {spec.media_type: image for spec in OUTPUT_FORMATS.values()},
                        },
                        **_errors("400", "413", "503", "504"),
                    },
                }
            },
            "/v1/results": {
                "post": {
                    "summary": "Stylize at alpha 1 and keep the result for the page's slider",
                    "requestBody": {"required": True, "content": form},
                    "responses": {
                        "200": {
                            "description": "the kept result's id and size",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Result"}
                                }
                            },
                        },
                        **_errors("400", "413", "503", "504"),
                    },
                }
            },
            "/v1/results/{result_id}/preview": {
                "get": {
                    "summary": "A small JPEG of a kept result at strength alpha",
                    "parameters": [result_id, alpha],
                    "responses": {
                        "200": {"description": "JPEG", "content": {"image/jpeg": image}},
                        "404": {"description": "unknown or expired result"},
                    },
                }
            },
            "/v1/results/{result_id}/image": {
                "get": {
                    "summary": "A kept result at full size and strength alpha (as /v1/stylize)",
                    "parameters": [
                        result_id,
                        alpha,
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the image, as an attachment",
                            "content": {spec.media_type: image for spec in OUTPUT_FORMATS.values()},
                        },
                        "404": {"description": "unknown or expired result"},
                    },
                }
            },
            "/v1/results/{result_id}/look.cube": {
                "get": {
                    "summary": "The look of a kept result at strength alpha as a .cube 3D LUT "
                    "(fitted from the full-size content to the full-size result; the global "
                    "part of the look only)",
                    "parameters": [result_id, *openapi_query_parameters(LUT_FIELDS)],
                    "responses": {
                        "200": {
                            "description": "an Adobe / Resolve .cube file, as an attachment",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors("400"),
                        "404": {"description": "unknown or expired result"},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness, device and queue",
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
                "Result": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                    },
                    "required": ["id", "width", "height"],
                },
            }
        },
    }
