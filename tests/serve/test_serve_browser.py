"""The page end to end in headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Upload two photos, wait for the result, move the strength slider, download the full-size
image and compare it with ``POST /v1/stylize`` at the same strength, then download the look's
``.cube`` LUT and read it back. Set
``PHOTOSTYLE_SCREENSHOT=docs/serve.png`` to keep the page's screenshot.

The page and its API are the subject here, not the model's per-photo refinement: the shipped
model runs at the page's smallest working size without refinement steps (a refined 512 px pass
costs seconds on a 2-core CPU).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs Debian's chromium and chromedriver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (requirements-ci)")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from photostyle.api import StylizeOptions, Stylizer  # noqa: E402
from photostyle.lut import read_cube  # noqa: E402
from photostyle.serve import ServeConfig, create_app  # noqa: E402
from photostyle.serve.net import listen_socket  # noqa: E402

ASSETS = resources.files("photostyle") / "assets"
PAGE_SIZE = "256"  # the working size the test picks in the page (and asks of the API)
# The server's working size when a request names none: one the page does not offer, so a page
# that dropped the choice would not match the API's answer at PAGE_SIZE.
SERVER_DEFAULT_SIZE = 192


class UnrefinedStylizer:
    """The shipped model with no per-photo refinement steps (``refine=0``) on every call."""

    def __init__(self) -> None:
        self.stylizer = Stylizer(device="cpu")
        self.device = self.stylizer.device

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        content_mask: torch.Tensor | None = None,
        style_mask: torch.Tensor | None = None,
        options: StylizeOptions | None = None,
    ) -> torch.Tensor:
        options = replace(options or StylizeOptions(), refine=0)
        return self.stylizer.stylize(
            content, style, content_mask=content_mask, style_mask=style_mask, options=options
        )


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The server with the shipped model, on a free loopback port in a thread."""
    config = ServeConfig(default_max_size=SERVER_DEFAULT_SIZE)
    app = create_app(UnrefinedStylizer(), config)
    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,860")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: str, seconds: float = 180) -> None:
    WebDriverWait(driver, seconds).until(lambda d: d.execute_script(f"return {condition};"))


def wait_for_download(folder: Path, name: str, seconds: float = 60) -> Path:
    """The file ``name`` in ``folder`` once Chromium has finished it (renamed from .crdownload)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (folder / name).is_file():
            return folder / name
        time.sleep(0.1)
    raise AssertionError(f"{name} not downloaded; in the folder: {sorted(folder.iterdir())}")


def test_upload_slide_download_matches_the_api(server_url: str, browser: Any) -> None:
    import httpx2

    content, style = Path(str(ASSETS / "demo_content.jpg")), Path(str(ASSETS / "demo_style.jpg"))
    browser.get(server_url)
    Select(browser.find_element(By.ID, "max_size")).select_by_value(PAGE_SIZE)
    browser.find_element(By.ID, "content").send_keys(str(content))
    browser.find_element(By.ID, "style").send_keys(str(style))
    wait_for(browser, "document.body.dataset.state === 'ready'")
    assert browser.find_element(By.ID, "size").text == "600 × 400 px"
    first = browser.find_element(By.ID, "after").get_attribute("src")

    slider = browser.find_element(By.ID, "alpha")
    slider.click()  # the middle of the track: strength 0.5
    slider.send_keys(Keys.RIGHT, Keys.RIGHT)  # two steps of 0.05
    wait_for(browser, "document.body.dataset.alpha === '0.60'")
    wait_for(browser, "document.body.dataset.state === 'ready'")
    assert browser.find_element(By.ID, "after").get_attribute("src") != first
    assert browser.find_element(By.ID, "alpha-value").text == "0.60"

    browser.find_element(By.ID, "download").click()
    downloaded = wait_for_download(browser.downloads, "photostyle_alpha0.60.png").read_bytes()

    with content.open("rb") as c, style.open("rb") as s:
        api = httpx2.post(
            f"{server_url}/v1/stylize",
            files={"content": c, "style": s},
            data={"alpha": "0.6", "max_size": PAGE_SIZE, "format": "png"},
            timeout=300,
        )
    assert api.status_code == 200
    assert downloaded == api.content  # the same pixels, the same bytes

    lut_link = browser.find_element(By.ID, "download-lut")
    lut_link.click()
    cube = wait_for_download(browser.downloads, "photostyle_alpha0.60.cube")
    lut = read_cube(cube)
    assert lut.size == 33 and lut.title == "photostyle alpha 0.60"
    again = httpx2.get(str(lut_link.get_attribute("href")), timeout=60)
    assert again.status_code == 200 and again.content == cube.read_bytes()

    keep = os.environ.get("PHOTOSTYLE_SCREENSHOT")
    shot = Path(keep) if keep else browser.downloads.parent / "serve.png"
    assert browser.save_screenshot(str(shot))

    browser.find_element(By.ID, "content").send_keys(str(Path(__file__)))  # not an image
    wait_for(browser, "document.body.dataset.state === 'error'")
    status = browser.find_element(By.ID, "status")
    assert status.text == "content: not a recognised image file"
