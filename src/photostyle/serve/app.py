"""The web app: a page, ``POST /v1/stylize``, ``GET /healthz`` and ``/openapi.json``.

The page's results (``POST /v1/results``) are kept for its slider, its full-size download and
its ``.cube`` download (``GET /v1/results/{id}/look.cube``: a 3D LUT fitted by
:func:`photostyle.lut.fit_lut` from the full-resolution content to the result at the slider's
strength, i.e. to the very image the full-size download gives).

Network passes run in a :class:`~photostyle.serve.jobs.JobQueue` (bounded concurrency, worker
threads); decoding and encoding run in a few other threads, so the event loop stays free.
Results are always computed at alpha = 1 and blended by :func:`~photostyle.serve.images.blend`:
the page's slider re-blends a kept result without a new network pass, and its download is
byte-identical to ``POST /v1/stylize`` with the same inputs and alpha.
"""

from __future__ import annotations

import contextlib
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import torch
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photostyle.api import StylizeOptions
from photostyle.lut import cube_text, fit_lut
from photostyle.serve.fields import (
    STYLIZE_FIELDS,
    RequestOptions,
    parse_lut_query,
    parse_options,
)
from photostyle.serve.images import (
    OUTPUT_FORMATS,
    DecodedInputs,
    blend,
    decode_inputs,
    encode_image,
    preview,
)
from photostyle.serve.jobs import JobQueue, JobTimeout, QueueFull
from photostyle.serve.openapi import openapi_document
from photostyle.version import __version__

__all__ = ["ServeConfig", "StylizerLike", "create_app"]


class StylizerLike(Protocol):
    """What the server needs of a model: :class:`photostyle.api.Stylizer` fits."""

    device: torch.device

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        content_mask: torch.Tensor | None = None,
        style_mask: torch.Tensor | None = None,
        options: StylizeOptions | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class ServeConfig:
    """Limits and defaults of the server."""

    concurrency: int = 1  # network passes at once (one per device)
    max_queue: int = 8  # requests that may wait for a network pass; more answer 503
    timeout: float = 300.0  # seconds a request may wait plus run; longer answers 504
    max_upload_bytes: int = 64 * 2**20  # request body limit; larger answers 413
    max_pixels: int = 50_000_000  # largest photo (width * height), checked before decoding
    default_max_size: int | None = None  # working size when a request gives none; None: model's
    max_working_size: int = 2048  # largest working size a request may ask for
    preview_size: int = 1024  # longest side of the page's slider previews
    kept_results: int = 4  # page results kept for the slider and download (oldest dropped)
    io_threads: int = 4  # threads decoding uploads and encoding results
    temp_dir: Path | None = None  # parent of per-request temporary folders; None = system's

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_upload_bytes", "max_pixels", "kept_results"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.io_threads < 1 or self.max_queue < 0 or not self.timeout > 0:
            raise ValueError("io_threads must be >= 1, max_queue >= 0 and timeout > 0")
        if self.default_max_size is not None and not (
            16 <= self.default_max_size <= self.max_working_size
        ):
            raise ValueError(
                f"default_max_size must be in [16, max_working_size={self.max_working_size}], "
                f"got {self.default_max_size}"
            )
        if self.preview_size < 16:
            raise ValueError(f"preview_size must be at least 16, got {self.preview_size}")


class BadRequest(ValueError):
    """A client error answered with 400 and the one-line message."""


class BodyTooLarge(ValueError):
    """The request body exceeds ``max_upload_bytes``."""


@dataclass(frozen=True)
class _Kept:
    """A page result at alpha = 1, kept for re-blending."""

    content: torch.Tensor  # (3, H, W) the content photo
    stylized: torch.Tensor  # (3, H, W) the stylization at alpha = 1
    content_preview: torch.Tensor  # (3, h, w) both at preview size
    stylized_preview: torch.Tensor  # (3, h, w)


class _BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes end in :class:`BodyTooLarge` (413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:  # refused before reading the body
            response = _error(413, _too_large(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(_too_large(self.limit))
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit / 2**20:g} MiB per request"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _read_static(name: str) -> bytes:
    return (resources.files("photostyle.serve") / "static" / name).read_bytes()


class _Server:
    """The app's handlers and the state they share (one instance per app)."""

    def __init__(
        self, stylizer: StylizerLike | Callable[[], StylizerLike], config: ServeConfig
    ) -> None:
        self.config = config
        self._factory: Callable[[], StylizerLike] | None = None
        self._stylizer: StylizerLike | None = None
        if hasattr(stylizer, "stylize"):
            self._stylizer = cast(StylizerLike, stylizer)
        else:
            self._factory = cast(Callable[[], StylizerLike], stylizer)
        self.queue = JobQueue(config.concurrency, config.max_queue, config.timeout)
        self.io_limiter = anyio.CapacityLimiter(config.io_threads)
        self.kept: OrderedDict[str, _Kept] = OrderedDict()  # touched on the event loop only
        self.page = {name: _read_static(name) for name in ("index.html", "app.js")}
        self.openapi = openapi_document(__version__)

    @property
    def stylizer(self) -> StylizerLike:
        if self._stylizer is None:
            raise RuntimeError("the model is not loaded yet (the app has not started)")
        return self._stylizer

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self._factory is not None and self._stylizer is None:
            self._stylizer = self._factory()
        try:
            yield
        finally:
            self.queue.close()

    # ---- requests -----------------------------------------------------------------------

    async def _read_form(self, request: Request) -> tuple[dict[str, bytes], RequestOptions]:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequest("expected a multipart/form-data body (content, style, options)")
        files = {f.name for f in STYLIZE_FIELDS if f.kind == "file"}
        uploads: dict[str, bytes] = {}
        values: dict[str, str] = {}
        async with request.form(max_files=len(files), max_fields=len(STYLIZE_FIELDS)) as form:
            for name, value in form.multi_items():
                if name in uploads or name in values:
                    raise BadRequest(f"{name[:40]}: given twice")
                if isinstance(value, UploadFile):
                    if name not in files:
                        raise BadRequest(f"{name[:40]}: not a file field")
                    uploads[name] = await value.read()
                elif name in files:
                    raise BadRequest(f"{name}: expected a file upload")
                else:
                    values[name] = value
        try:
            options = parse_options(
                values,
                default_max_size=self.config.default_max_size,
                max_working_size=self.config.max_working_size,
            )
        except ValueError as err:
            raise BadRequest(str(err)) from err
        return uploads, options

    async def _stylize(
        self, request: Request
    ) -> tuple[DecodedInputs, torch.Tensor, RequestOptions]:
        """Reads, decodes and stylizes a request at alpha = 1."""
        if self.queue.full():  # refuse before reading and decoding the uploads
            raise QueueFull(self.queue.retry_after())
        uploads, options = await self._read_form(request)
        decode = partial(
            decode_inputs,
            uploads,
            max_pixels=self.config.max_pixels,
            temp_dir=self.config.temp_dir,
        )
        try:
            inputs = await anyio.to_thread.run_sync(decode, limiter=self.io_limiter)
        except ValueError as err:  # ImageError included: one line naming the field
            raise BadRequest(str(err)) from err
        del uploads
        stylizer = self.stylizer
        job = partial(
            stylizer.stylize,
            inputs.content,
            inputs.style,
            content_mask=inputs.content_mask,
            style_mask=inputs.style_mask,
            options=options.stylize,
        )
        try:
            stylized = await self.queue.run(job)
        except ValueError as err:  # e.g. masks on a backend without mask support
            raise BadRequest(str(err)) from err
        return inputs, stylized, options

    async def _encode(
        self, content: torch.Tensor, stylized: torch.Tensor, alpha: float, fmt: str
    ) -> bytes:
        def work() -> bytes:
            return encode_image(blend(content, stylized, alpha), fmt)

        return await anyio.to_thread.run_sync(work, limiter=self.io_limiter)

    async def stylize(self, request: Request) -> Response:
        inputs, stylized, options = await self._stylize(request)
        data = await self._encode(inputs.content, stylized, options.alpha, options.format)
        spec = OUTPUT_FORMATS[options.format]
        return Response(
            data,
            media_type=spec.media_type,
            headers={"Content-Disposition": f'inline; filename="photostyle{spec.suffix}"'},
        )

    async def create_result(self, request: Request) -> Response:
        inputs, stylized, _ = await self._stylize(request)
        size = self.config.preview_size

        def previews() -> tuple[torch.Tensor, torch.Tensor]:
            return preview(inputs.content, size), preview(stylized, size)

        small_c, small_s = await anyio.to_thread.run_sync(previews, limiter=self.io_limiter)
        result_id = secrets.token_urlsafe(16)
        self.kept[result_id] = _Kept(inputs.content, stylized, small_c, small_s)
        while len(self.kept) > self.config.kept_results:
            self.kept.popitem(last=False)
        height, width = inputs.content.shape[-2:]
        return JSONResponse({"id": result_id, "width": width, "height": height})

    def _kept(self, request: Request) -> _Kept:
        kept = self.kept.get(request.path_params["result_id"])
        if kept is None:
            raise HTTPException(404, "unknown or expired result; stylize again")
        self.kept.move_to_end(request.path_params["result_id"])
        return kept

    def _kept_result(self, request: Request) -> tuple[_Kept, RequestOptions]:
        kept = self._kept(request)
        query = {k: v for k, v in request.query_params.items() if k in ("alpha", "format")}
        try:
            options = parse_options(
                query,
                default_max_size=self.config.default_max_size,
                max_working_size=self.config.max_working_size,
            )
        except ValueError as err:
            raise BadRequest(str(err)) from err
        return kept, options

    async def result_preview(self, request: Request) -> Response:
        kept, options = self._kept_result(request)

        def work() -> bytes:
            small = blend(kept.content_preview, kept.stylized_preview, options.alpha)
            return encode_image(small, "jpeg")

        data = await anyio.to_thread.run_sync(work, limiter=self.io_limiter)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def result_image(self, request: Request) -> Response:
        kept, options = self._kept_result(request)
        data = await self._encode(kept.content, kept.stylized, options.alpha, options.format)
        spec = OUTPUT_FORMATS[options.format]
        name = f"photostyle_alpha{options.alpha:.2f}{spec.suffix}"
        return Response(
            data,
            media_type=spec.media_type,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def result_lut(self, request: Request) -> Response:
        kept = self._kept(request)
        try:
            query = parse_lut_query(dict(request.query_params))
        except ValueError as err:
            raise BadRequest(str(err)) from err

        def work() -> bytes:
            look = blend(kept.content, kept.stylized, query.alpha)  # what the download shows
            lut = fit_lut(
                kept.content, look, size=query.size, title=f"photostyle alpha {query.alpha:.2f}"
            )
            return cube_text(lut).encode("utf-8")

        data = await anyio.to_thread.run_sync(work, limiter=self.io_limiter)
        name = f"photostyle_alpha{query.alpha:.2f}.cube"
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def healthz(self, _request: Request) -> Response:
        ready = self._stylizer is not None
        return JSONResponse(
            {
                "status": "ok" if ready else "loading",
                "device": str(self._stylizer.device) if self._stylizer is not None else None,
                "queue": {"admitted": self.queue.admitted, "capacity": self.queue.capacity},
            },
            status_code=200 if ready else 503,
        )

    async def openapi_json(self, _request: Request) -> Response:
        return JSONResponse(self.openapi)

    async def index(self, _request: Request) -> Response:
        return Response(
            self.page["index.html"],
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                "style-src 'self' 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def script(self, _request: Request) -> Response:
        return Response(self.page["app.js"], media_type="text/javascript; charset=utf-8")


async def _bad_request(_request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _too_large_handler(_request: Request, exc: Exception) -> Response:
    return _error(413, str(exc))


async def _busy(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueueFull)
    return _error(503, str(exc), headers={"Retry-After": str(exc.retry_after)})


async def _timeout(_request: Request, exc: Exception) -> Response:
    return _error(504, str(exc))


async def _internal_error(_request: Request, _exc: Exception) -> Response:
    return _error(500, "internal error; see the server's log")  # no internals to the client


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


def create_app(
    stylizer: StylizerLike | Callable[[], StylizerLike], config: ServeConfig | None = None
) -> Starlette:
    """The ASGI app (run it with uvicorn, or test it with Starlette's ``TestClient``).

    Args:
        stylizer: the model (e.g. :class:`photostyle.api.Stylizer`), or a function that builds
            it once at the app's lifespan startup (before uvicorn accepts connections).
        config: limits and defaults; None = :class:`ServeConfig` defaults.

    Returns:
        A Starlette app. Routes: ``GET /`` (page), ``POST /v1/stylize``, ``POST /v1/results``,
        ``GET /v1/results/{id}/preview``, ``GET /v1/results/{id}/image``,
        ``GET /v1/results/{id}/look.cube``, ``GET /healthz``, ``GET /openapi.json``.
    """
    server = _Server(stylizer, config or ServeConfig())
    routes = [
        Route("/", server.index, methods=["GET"]),
        Route("/app.js", server.script, methods=["GET"]),
        Route("/v1/stylize", server.stylize, methods=["POST"]),
        Route("/v1/results", server.create_result, methods=["POST"]),
        Route("/v1/results/{result_id}/preview", server.result_preview, methods=["GET"]),
        Route("/v1/results/{result_id}/image", server.result_image, methods=["GET"]),
        Route("/v1/results/{result_id}/look.cube", server.result_lut, methods=["GET"]),
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/openapi.json", server.openapi_json, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {
        BadRequest: _bad_request,
        BodyTooLarge: _too_large_handler,
        QueueFull: _busy,
        JobTimeout: _timeout,
        HTTPException: _http_error,
        500: _internal_error,  # then re-raised to uvicorn, which logs it; the server goes on
    }
    return Starlette(
        routes=routes,
        middleware=[Middleware(_BodyLimit, limit=server.config.max_upload_bytes)],
        exception_handlers=handlers,
        lifespan=server.lifespan,
    )
