"""The web server's HTTP API with an in-process client and a fake stylizer."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from photostyle.io import image_to_tensor
from photostyle.serve import ServeConfig, create_app
from photostyle.serve.fields import LUT_FIELDS, STYLIZE_FIELDS
from photostyle.serve.images import blend

Files = dict[str, tuple[str, bytes, str]]


def decoded(data: bytes) -> torch.Tensor:
    return image_to_tensor(Image.open(io.BytesIO(data)))


def as_files(**uploads: bytes) -> Files:
    return {name: (f"../../etc/{name}.png", data, "image/png") for name, data in uploads.items()}


@pytest.fixture
def client(fake_stylizer: Any, tmp_path: Path) -> Iterator[TestClient]:
    config = ServeConfig(max_upload_bytes=200_000, temp_dir=tmp_path, max_working_size=1024)
    with TestClient(create_app(fake_stylizer, config)) as test_client:
        yield test_client


def test_stylize_returns_the_blend_of_the_alpha_1_result(
    client: TestClient,
    fake_stylizer: Any,
    make_png: Callable[..., bytes],
    expected: Callable[..., torch.Tensor],
    tmp_path: Path,
) -> None:
    content, style = make_png(40, 48, seed=0), make_png(30, 20, seed=1)
    response = client.post(
        "/v1/stylize", files=as_files(content=content, style=style), data={"alpha": "0.6"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    c, s = decoded(content), decoded(style)
    want = blend(c, expected(c, s), 0.6).mul(255).round() / 255
    assert torch.equal(decoded(response.content), want)
    assert [call.alpha for call in fake_stylizer.calls] == [1.0]  # the network always at 1
    assert fake_stylizer.calls[0].max_size is None  # absent: the model's own working size
    assert list(tmp_path.iterdir()) == []  # nothing left in the temporary folder


@pytest.mark.parametrize(("fmt", "pillow"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_stylize_formats_and_options(
    client: TestClient, fake_stylizer: Any, make_png: Callable[..., bytes], fmt: str, pillow: str
) -> None:
    files = as_files(content=make_png(), style=make_png(seed=1))
    data = {"format": fmt, "max_size": "64", "upsample": "bicubic"}
    response = client.post("/v1/stylize", files=files, data=data)
    assert response.status_code == 200, response.text
    img = Image.open(io.BytesIO(response.content))
    assert img.format == pillow and img.size == (48, 40)
    assert fake_stylizer.calls[-1].max_size == 64 and fake_stylizer.calls[-1].upsample == "bicubic"


def test_result_has_no_exif_or_gps(client: TestClient, make_png: Callable[..., bytes]) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS latitude
    content = make_png(format="JPEG", exif=exif.tobytes())
    assert len(Image.open(io.BytesIO(content)).getexif()) > 0
    for fmt in ("jpeg", "png", "webp"):
        response = client.post(
            "/v1/stylize",
            files=as_files(content=content, style=make_png(seed=1)),
            data={"format": fmt},
        )
        assert response.status_code == 200
        img = Image.open(io.BytesIO(response.content))
        assert len(img.getexif()) == 0 and "exif" not in img.info
        assert b"SecretCam" not in response.content


def test_masks_reach_the_stylizer(client: TestClient, make_png: Callable[..., bytes]) -> None:
    files = as_files(
        content=make_png(), style=make_png(seed=1), content_mask=make_png(), style_mask=make_png()
    )
    assert client.post("/v1/stylize", files=files).status_code == 200


def corrupt(png: bytes) -> bytes:
    return png[: len(png) // 2]


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        ({"content": b"hello, not an image", "style": None}, {}, "content: not a recognised image"),
        ({"content": None, "style": b""}, {}, "style: file is empty"),
        ({"content": "corrupt", "style": None}, {}, "content: truncated or corrupt image"),
        ({"content": "tiny", "style": None}, {}, "content: image is 8x8 pixels; both sides"),
        ({"content": None}, {}, "style: missing; upload a style photo"),
        ({"content": None, "style": None, "content_mask": None}, {}, "give both content_mask"),
        (
            {"content": None, "style": None, "content_mask": "wrong-size", "style_mask": None},
            {},
            "content_mask: mask is 20x20 pixels but its photo is 48x40",
        ),
        ({"content": None, "style": None}, {"alpha": "1.5"}, "alpha: must be in [0, 1], got 1.5"),
        ({"content": None, "style": None}, {"alpha": "nan"}, "alpha: expected a number"),
        ({"content": None, "style": None}, {"max_size": "big"}, "max_size: expected a integer"),
        ({"content": None, "style": None}, {"max_size": "4096"}, "max_size: must be in [16, 1024]"),
        ({"content": None, "style": None}, {"format": "gif"}, "format: unknown 'gif'"),
        ({"content": None, "style": None}, {"colour": "red"}, "colour: unknown field"),
        ({"style": None}, {"content": "a string"}, "content: expected a file upload"),
    ],
)
def test_bad_uploads_answer_400_with_one_line(
    client: TestClient,
    fake_stylizer: Any,
    make_png: Callable[..., bytes],
    files: dict[str, Any],
    data: dict[str, str],
    message: str,
    tmp_path: Path,
) -> None:
    special = {
        None: make_png(),
        "corrupt": corrupt(make_png(200, 200)),
        "tiny": make_png(8, 8),
        "wrong-size": make_png(20, 20),
    }
    uploads = {k: special.get(v, v) if not isinstance(v, bytes) else v for k, v in files.items()}
    response = client.post("/v1/stylize", files=as_files(**uploads), data=data)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith(message) and "\n" not in error
    assert str(tmp_path) not in error and "etc" not in error  # no server or client paths
    assert fake_stylizer.calls == []
    assert list(tmp_path.iterdir()) == []


def test_not_multipart_is_400(client: TestClient) -> None:
    response = client.post("/v1/stylize", json={"content": "x"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("expected a multipart/form-data body")


def test_too_large_upload_is_413(
    client: TestClient, fake_stylizer: Any, make_png: Callable[..., bytes]
) -> None:
    big = make_png(300, 300)  # about 270 kB of random pixels, over the 200 kB limit
    response = client.post("/v1/stylize", files=as_files(content=big, style=make_png()))
    assert response.status_code == 413
    assert response.json()["error"] == "upload too large: the limit is 0.190735 MiB per request"
    assert fake_stylizer.calls == []


def test_too_large_upload_without_content_length_is_413(
    client: TestClient, make_png: Callable[..., bytes]
) -> None:
    body = httpx2.Request(
        "POST", "http://x", files=as_files(content=make_png(300, 300), style=make_png())
    )
    payload = body.read()

    def chunks() -> Iterator[bytes]:  # streamed: no Content-Length header
        for start in range(0, len(payload), 65536):
            yield payload[start : start + 65536]

    headers = {"content-type": body.headers["content-type"]}
    response = client.post("/v1/stylize", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_eight_parallel_requests_are_all_answered_correctly(
    fake_stylizer: Any,
    make_png: Callable[..., bytes],
    expected: Callable[..., torch.Tensor],
) -> None:
    app = create_app(fake_stylizer, ServeConfig(max_queue=8))
    pairs = [(make_png(32 + i, 40, seed=i), make_png(24, 24, seed=100 + i)) for i in range(8)]

    with TestClient(app) as client:

        def send(i: int) -> httpx2.Response:
            content, style = pairs[i]
            return client.post(
                "/v1/stylize",
                files=as_files(content=content, style=style),
                data={"alpha": str(i / 8)},
            )

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(send, range(8)))
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        c, s = decoded(pairs[i][0]), decoded(pairs[i][1])
        want = blend(c, expected(c, s), i / 8).mul(255).round() / 255
        assert torch.equal(decoded(response.content), want)
    assert fake_stylizer.most_running == 1  # one network pass at a time


def test_full_queue_answers_503_with_retry_after(
    make_fake_stylizer: Any, make_png: Callable[..., bytes]
) -> None:
    gate = threading.Event()
    stylizer = make_fake_stylizer(gate)
    app = create_app(stylizer, ServeConfig(concurrency=1, max_queue=1))
    files = as_files(content=make_png(), style=make_png(seed=1))
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        running = [pool.submit(client.post, "/v1/stylize", files=files) for _ in range(2)]
        for _ in range(200):  # until one runs and one waits
            if client.get("/healthz").json()["queue"]["admitted"] == 2:
                break
            threading.Event().wait(0.02)
        busy = client.post("/v1/stylize", files=files)
        assert busy.status_code == 503
        assert int(busy.headers["retry-after"]) >= 1
        assert busy.json()["error"].startswith("the server is busy")
        gate.set()
        assert [f.result().status_code for f in running] == [200, 200]
        assert client.post("/v1/stylize", files=files).status_code == 200  # free again


def test_timeout_answers_504(make_fake_stylizer: Any, make_png: Callable[..., bytes]) -> None:
    gate = threading.Event()
    app = create_app(make_fake_stylizer(gate), ServeConfig(timeout=0.2))
    with TestClient(app) as client:
        response = client.post(
            "/v1/stylize", files=as_files(content=make_png(), style=make_png(seed=1))
        )
        gate.set()
        assert response.status_code == 504
        assert response.json()["error"] == "no result within 0.2 s"
        assert client.get("/healthz").status_code == 200  # the server goes on


def test_page_result_slider_and_download_match_the_api(
    client: TestClient, make_png: Callable[..., bytes]
) -> None:
    content, style = make_png(60, 80, seed=3), make_png(30, 30, seed=4)
    created = client.post("/v1/results", files=as_files(content=content, style=style))
    assert created.status_code == 200
    result = created.json()
    assert (result["width"], result["height"]) == (80, 60)
    for alpha in ("0", "0.35", "1"):
        api = client.post(
            "/v1/stylize",
            files=as_files(content=content, style=style),
            data={"alpha": alpha, "format": "png"},
        )
        download = client.get(f"/v1/results/{result['id']}/image?alpha={alpha}&format=png")
        assert download.status_code == 200
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.content == api.content  # byte for byte
    small = client.get(f"/v1/results/{result['id']}/preview?alpha=0.5")
    assert small.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(small.content)).size == (80, 60)
    assert client.get("/v1/results/nope/preview").status_code == 404
    bad = client.get(f"/v1/results/{result['id']}/preview?alpha=2")
    assert bad.status_code == 400 and bad.json()["error"].startswith("alpha:")


def test_kept_results_are_bounded(fake_stylizer: Any, make_png: Callable[..., bytes]) -> None:
    with TestClient(create_app(fake_stylizer, ServeConfig(kept_results=2))) as client:
        files = as_files(content=make_png(), style=make_png(seed=1))
        ids = [client.post("/v1/results", files=files).json()["id"] for _ in range(3)]
        codes = [client.get(f"/v1/results/{i}/preview").status_code for i in ids]
    assert codes == [404, 200, 200]


def test_healthz_openapi_and_page(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health == {"status": "ok", "device": "cpu", "queue": {"admitted": 0, "capacity": 9}}
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    form = spec["paths"]["/v1/stylize"]["post"]["requestBody"]["content"]
    schema = form["multipart/form-data"]["schema"]
    assert list(schema["properties"]) == [f.name for f in STYLIZE_FIELDS]
    assert schema["required"] == ["content", "style"]
    post = spec["paths"]["/v1/stylize"]["post"]
    assert {"200", "400", "413", "503", "504"} <= set(post["responses"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="alpha"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/../../etc/passwd").status_code == 404


def test_a_factory_is_called_once_at_start(fake_stylizer: Any) -> None:
    made = []

    def factory() -> Any:
        made.append(1)
        return fake_stylizer

    app = create_app(factory)
    assert made == []
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/healthz").status_code == 200
    assert made == [1]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="default_max_size"):
        ServeConfig(default_max_size=4096)
    with pytest.raises(ValueError, match="concurrency"):
        ServeConfig(concurrency=0)


def test_real_stylizer_at_small_size(make_png: Callable[..., bytes]) -> None:
    from photostyle.api import StylizeOptions, Stylizer

    stylizer = Stylizer(device="cpu")
    content, style = make_png(48, 64, seed=5), make_png(40, 40, seed=6)
    with TestClient(create_app(stylizer)) as client:
        response = client.post(
            "/v1/stylize",
            files=as_files(content=content, style=style),
            data={"alpha": "0.5", "max_size": "32"},
        )
    assert response.status_code == 200
    c, s = decoded(content), decoded(style)
    full = stylizer.stylize(c, s, options=StylizeOptions(alpha=1.0, max_size=32))
    want = blend(c, full, 0.5).mul(255).round() / 255
    assert torch.equal(decoded(response.content), want)
    assert np.asarray(Image.open(io.BytesIO(response.content))).shape == (48, 64, 3)


def test_a_failing_pass_is_a_500_and_the_server_goes_on(
    fake_stylizer: Any, make_png: Callable[..., bytes]
) -> None:
    calls = [0]
    stylize = fake_stylizer.stylize

    def flaky(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("CUDA out of memory")
        return stylize(*args, **kwargs)

    fake_stylizer.stylize = flaky
    files = as_files(content=make_png(), style=make_png(seed=1))
    app = create_app(fake_stylizer)
    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.post("/v1/stylize", files=files)
        assert failed.status_code == 500
        assert failed.json() == {"error": "internal error; see the server's log"}
        assert client.post("/v1/stylize", files=files).status_code == 200
        assert client.get("/healthz").json()["queue"]["admitted"] == 0


def test_lut_download_is_the_look_at_the_sliders_strength(
    client: TestClient,
    tmp_path: Path,
    make_png: Callable[..., bytes],
    expected: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    from photostyle.lut import apply_lut, read_cube

    content, style = make_png(60, 80, seed=7), make_png(30, 30, seed=8)
    result = client.post("/v1/results", files=as_files(content=content, style=style)).json()
    response = client.get(f"/v1/results/{result['id']}/look.cube?alpha=0.6&size=9")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="photostyle_alpha0.60.cube"'
    )
    path = tmp_path / "look.cube"
    path.write_bytes(response.content)
    lut = read_cube(path)
    assert lut.size == 9 and lut.title == "photostyle alpha 0.60"
    c, s = decoded(content), decoded(style)
    want = blend(c, expected(c, s), 0.6)  # the full-size download's pixels
    assert (apply_lut(c, lut) - want).abs().mean() < 1.5 / 255  # the fake's look is global

    default = client.get(f"/v1/results/{result['id']}/look.cube")
    path.write_bytes(default.content)
    assert read_cube(path).size == 33 and b'TITLE "photostyle alpha 1.00"' in default.content


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("size=1", "size: must be in [2, 65], got 1"),
        ("size=66", "size: must be in [2, 65], got 66"),
        ("size=x", "size: expected a integer, got 'x'"),
        ("alpha=1.5", "alpha: must be in [0, 1], got 1.5"),
        ("format=png", "format: unknown field; fields: alpha, size"),
    ],
)
def test_lut_download_bad_query_is_400(
    client: TestClient, make_png: Callable[..., bytes], query: str, message: str
) -> None:
    result = client.post("/v1/results", files=as_files(content=make_png(), style=make_png(seed=1)))
    response = client.get(f"/v1/results/{result.json()['id']}/look.cube?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert client.get("/v1/results/nope/look.cube").status_code == 404


def test_openapi_lut_parameters_come_from_the_field_list(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    get = spec["paths"]["/v1/results/{result_id}/look.cube"]["get"]
    assert [p["name"] for p in get["parameters"]] == ["result_id"] + [f.name for f in LUT_FIELDS]
    assert get["parameters"][2]["schema"]["default"] == 33
    assert {"200", "400", "404"} <= set(get["responses"])
