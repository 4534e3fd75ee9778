"""Shared fixtures: a tiny VGG layout with random weights, so model tests run in milliseconds."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

from photostyle.models.encoder import InputConvention, VGGConfig, VGGEncoder

# Same structure as VGG (4 blocks up to relu4_1, block 3 has two convs) with tiny widths.
TINY = VGGConfig("tiny", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), full_depths=(1, 1, 2, 2, 2))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cuda`` where there is no CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (scripts/gpu_check.sh runs these)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Run the whole session with one intra-op thread in PyTorch and one thread in each BLAS
    (NumPy's, SciPy's, OpenCV's), then restore the previous counts."""
    # Tiny tensors: intra-op threads only add synchronisation, and CI runners have 2 cores. On a
    # busy 2-core machine a threaded BLAS waits for its second thread in every call: SciPy's
    # conjugate gradients in photostyle.lut.fit_lut took 11 s instead of 0.2 s for 293 steps.
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, so that the limit covers it too)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_cfg() -> VGGConfig:
    """The tiny VGG layout."""
    return TINY


@pytest.fixture
def make_encoder() -> Callable[..., VGGEncoder]:
    """Factory of tiny frozen encoders with seeded random weights."""

    def make(seed: int = 0, convention: InputConvention = "torch_rgb") -> VGGEncoder:
        torch.manual_seed(seed)
        return VGGEncoder(TINY, convention)

    return make


@pytest.fixture
def tiny_encoder(make_encoder: Callable[..., VGGEncoder]) -> VGGEncoder:
    return make_encoder()


@pytest.fixture
def write_png() -> Callable[..., Path]:
    """Factory writing a random RGB PNG of a given size (seeded) and returning its path."""

    def write(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path

    return write


@pytest.fixture
def write_encoder_weights() -> Callable[..., Path]:
    """Factory writing seeded random encoder weights of a VGG layout; returns the path."""

    def write(path: Path, cfg: VGGConfig, seed: int = 0) -> Path:
        from photostyle.models.weights import save_checkpoint

        torch.manual_seed(seed)
        encoder = VGGEncoder(cfg, "torch_rgb")
        save_checkpoint(path, dict(encoder.convs.state_dict()), {"input_convention": "torch_rgb"})
        return path

    return write


@pytest.fixture
def tiny_weights(
    tmp_path: Path,
    tiny_cfg: VGGConfig,
    monkeypatch: pytest.MonkeyPatch,
    write_encoder_weights: Callable[..., Path],
) -> Path:
    """Registers the tiny layout as arch "tiny" (for this test) and writes seeded weights for it."""
    from photostyle.models.encoder import VGG_CONFIGS

    monkeypatch.setitem(VGG_CONFIGS, "tiny", tiny_cfg)
    return write_encoder_weights(tmp_path / "tiny_vgg.safetensors", tiny_cfg)


@pytest.fixture
def data_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """An ImageFolder tree: 2 classes x 3 random 40 px photos."""
    root = tmp_path / "photos"
    for c, name in enumerate(("beach", "city")):
        for i in range(3):
            write_png(root / name / f"{i}.png", 40, 40, seed=10 * c + i)
    return root


@pytest.fixture(scope="session")
def tiny_stylizer_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny stylizer checkpoint and its torchvision-format encoder weights (seeded, random).

    Written like a trained model: ``save_stylizer`` of a ``TwoStageModel``'s U on the tiny layout,
    ``arch="custom"``, the encoder file's sha256 in ``model_config``. The last decoder conv is
    scaled so that outputs vary around 0.5 instead of saturating. Load it with
    ``Stylizer(weights, encoder_weights=encoder, device="cpu")``.

    Returns:
        (stylizer ``.safetensors``, encoder ``.safetensors``).
    """
    from safetensors.torch import save_file

    from photostyle.models.checkpoint import save_stylizer
    from photostyle.models.stylizer import ModelConfig
    from photostyle.models.weights import build_encoder
    from photostyle.train.pipeline import TwoStageModel
    from photostyle.utils import sha256_file

    root = tmp_path_factory.mktemp("tiny_stylizer")
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    in_ch = 3
    for name, key in TINY.torchvision_keys().items():
        out_ch = TINY.widths[int(name[4]) - 1]
        fan_in = in_ch * 9
        state[f"{key}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) / fan_in**0.5
        state[f"{key}.bias"] = torch.randn(out_ch, generator=g) * 0.1
        in_ch = out_ch
    encoder_path = root / "vgg_tiny.safetensors"
    save_file(state, str(encoder_path))

    config = ModelConfig(
        arch="custom",
        widths=TINY.widths,
        depths=TINY.depths,
        convention="torch_rgb",
        encoder_sha256=sha256_file(encoder_path),
    )
    torch.manual_seed(0)
    model = TwoStageModel(config, build_encoder(encoder_path, config.vgg()))
    with torch.no_grad():
        last = model.u.block1[-1]
        last.weight.mul_(0.2)
        last.bias.fill_(0.5)
    weights_path = root / "stylizer_tiny.safetensors"
    save_stylizer(weights_path, model.u.state_dict(), config)
    return weights_path, encoder_path


@pytest.fixture
def make_affine_weights(
    tiny_stylizer_files: tuple[Path, Path],
) -> Callable[..., Path]:
    """Writes a tiny affine-head stylizer on the tiny encoder (seeded, untrained) at a path, with
    ``ModelConfig`` fields overriding the defaults (4 bins, 8 channels). Load it with
    ``Stylizer(path, encoder_weights=tiny_stylizer_files[1], device="cpu")``."""
    from photostyle.api import Stylizer
    from photostyle.models.checkpoint import save_stylizer
    from photostyle.models.stylizer import ModelConfig, build_stylizer
    from photostyle.models.weights import build_encoder
    from photostyle.utils import sha256_file

    weights, encoder = tiny_stylizer_files

    def make(path: Path, **fields: object) -> Path:
        base = Stylizer(weights, encoder_weights=encoder, device="cpu").config
        config = ModelConfig.from_dict(
            {**base.to_dict(), "head": "affine", "grid_bins": 4, "grid_hidden": 8, **fields}
        )
        assert config.encoder_sha256 == sha256_file(encoder)
        torch.manual_seed(0)
        model = build_stylizer(config, build_encoder(encoder, config.vgg()))
        save_stylizer(path, model.decoder.state_dict(), config)
        return path

    return make


@pytest.fixture
def load_script() -> Callable[[str], ModuleType]:
    """Imports ``scripts/NAME.py`` as a module (the scripts are not a package)."""

    def load(name: str) -> ModuleType:
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
