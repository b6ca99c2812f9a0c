"""Where and how the renderer runs fastest: device, numeric precision, inference path.

On CUDA, bf16 autocast is the standard fast path. On CPUs, oneDNN runs bf16 convolutions
natively where the CPU has AVX512-BF16 or AMX; there a light-256 training step takes about half
the time of fp32 (measured 4.4 s against 8.6–9.2 s for a batch of 4, one thread, this project's
2-core development CPU). Elsewhere bf16 would be emulated and slower, so fp32 stays.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from ..errors import NewsanchorError
from ..files import write_atomic

if TYPE_CHECKING:
    from .lower_face import LowerFaceConfig
    from .pix2pixhd import RendererConfig

log = logging.getLogger("newsanchor.render")


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast is the fast path on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` → ``"bf16"`` where :func:`bf16_is_fast`, else ``"fp32"``; others pass through.

    Raises:
        ValueError: not one of auto, fp32, bf16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


# --- inference paths -------------------------------------------------------------------------

PATHS = ("fp32", "bf16", "onnx")


def export_onnx(model: torch.nn.Module, size: int, path: str | Path, shape: tuple[int, int] | None = None) -> Path:
    """Write the generator as ONNX (opset 18, fp32, batch dimension dynamic), atomically.

    Input ``x`` ``[B, C, size, size]`` (or ``[B, C, *shape]``) float32, output ``[B, 3, …]`` of the same size.

    Raises:
        NewsanchorError: the onnx/onnxscript packages are missing or the export fails.
    """
    path = Path(path)
    try:
        import onnx  # noqa: F401  (the exporter needs it; fail with a clear message)
    except ImportError:
        raise NewsanchorError("ONNX export needs the onnx and onnxscript packages (pip install onnx onnxscript)") from None
    # nn.Module.__getattr__ is typed Tensor | Module; every renderer keeps its config here
    channels = cast("RendererConfig | LowerFaceConfig", model.config).input_channels
    example = torch.zeros(2, channels, *(shape or (size, size)))  # batch 1 would let the exporter fix it at 1
    model = copy.deepcopy(model).float().cpu().eval()  # the caller's model stays where and as it is

    def write(tmp: Path) -> None:
        exporter_log = logging.getLogger("torch.onnx")
        level = exporter_log.level
        exporter_log.setLevel(logging.ERROR)  # it notes optional packages it did not find, e.g. torchvision
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it narrates each pass
                warnings.simplefilter("ignore")
                program = torch.onnx.export(model, (example,), dynamo=True, opset_version=18,
                                            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                                            input_names=["x"], output_names=["y"])
                if program is None:  # dynamo=True always returns the program; the stubs allow None
                    raise NewsanchorError(f"{path}: ONNX export returned no program")
                program.save(str(tmp))
        finally:
            exporter_log.setLevel(level)

    try:
        write_atomic(path, write)
    except NewsanchorError:
        raise
    except Exception as err:  # the exporter raises many kinds; the user needs one line
        raise NewsanchorError(f"{path}: ONNX export failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    return path


class RendererRunner:
    """Runs a loaded renderer on batches of inputs by one of :data:`PATHS`.

    ``fp32``: eager PyTorch. ``bf16``: a bf16 copy of the weights, bf16 activations throughout
    (no per-layer casts as under autocast: 0.39 s against 0.57 s for a light-256 batch of 4 on
    the development CPU, at 44.9 dB PSNR against fp32 output; channels-last was slower there, 0.45 s).
    ``onnx``: ONNX Runtime (fp32) on an exported file (CPU). The caller's model is not modified.

    ``compile_batch``: for fp32/bf16, run the model through ``torch.compile`` with batches padded
    to this size (one shape, one compilation). Compiling takes ~40 s once per process (less when
    the compiler's disk cache has it) and makes a light-256 bf16 batch 1.4× faster on the
    development CPU (0.088 against 0.124 s a frame); where compiling fails (no C++ compiler),
    it warns once and runs eagerly.
    """

    def __init__(self, model: torch.nn.Module, path: str = "fp32", *, device: torch.device | str = "cpu",
                 onnx_file: str | Path | None = None, threads: int | None = None, compile_batch: int | None = None):
        if path not in PATHS:
            raise ValueError(f"inference path must be one of {', '.join(PATHS)}, got {path!r}")
        self.path, self.device = path, torch.device(device)
        self.model = model.to(self.device).eval()
        self.session = None
        if path == "bf16":
            self.model = copy.deepcopy(self.model).to(torch.bfloat16)
        self.compile_batch = compile_batch if path != "onnx" else None
        self._compiled = torch.compile(self.model, dynamic=False) if self.compile_batch else None
        if path == "onnx":
            if self.device.type != "cpu":
                raise ValueError("the onnx path runs on the CPU")
            if onnx_file is None:
                raise ValueError("the onnx path needs an exported file (export_onnx)")
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            options.log_severity_level = 3
            self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    @torch.inference_mode()
    def forward(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Inputs ``[B, C, S, S]`` float32 in [-1, 1] → output ``[B, 3, S, S]`` float32 (CPU)."""
        if self.session is not None:
            array = inputs.numpy() if torch.is_tensor(inputs) else np.ascontiguousarray(inputs, dtype=np.float32)
            return torch.from_numpy(self.session.run(None, {"x": array})[0])
        dtype = torch.bfloat16 if self.path == "bf16" else torch.float32
        x = torch.as_tensor(inputs).to(self.device, dtype)
        batch = self.compile_batch  # set whenever _compiled is
        if self._compiled is not None and batch is not None and len(x) <= batch:
            padded = torch.cat([x, x.new_zeros((batch - len(x), *x.shape[1:]))]) if len(x) < batch else x
            try:
                return self._compiled(padded)[:len(x)].float().cpu()
            except Exception as err:  # e.g. no C++ compiler on this machine: eager is still correct
                log.warning("renderer: compiling failed (%s: %s); running uncompiled", type(err).__name__,
                            str(err).splitlines()[0] if str(err) else "")
                self._compiled = None
        return self.model(x).float().cpu()

    @torch.inference_mode()
    def render(self, inputs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Inputs ``[B, C, S, S]`` → RGB uint8 ``[B, S, S, 3]``."""
        out = self.forward(inputs).clamp_(-1, 1).add_(1).mul_(127.5).round_()
        return out.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def seconds_per_batch(runner: RendererRunner, inputs: np.ndarray, repeat: int = 3) -> float:
    """Median wall time of ``runner.forward(inputs)`` after one warm-up call."""
    runner.forward(inputs)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        runner.forward(inputs)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def choose_runner(model: torch.nn.Module, *, device: torch.device | str = "cpu", batch: int = 4,
                  precision: str = "auto", compiled: bool = False) -> RendererRunner:
    """The renderer's inference path for ``precision`` (auto, fp32 or bf16; see
    :func:`resolve_precision`): ``auto`` is bf16 where the hardware runs it natively, fp32
    elsewhere. Decided by the machine, never by a timing, so the same inputs and precision give
    the same frames however busy the machine is. With ``compiled`` the path is compiled for
    batches of ``batch``.

    Raises:
        ValueError: an unknown precision.
    """
    path = resolve_precision(precision, device)
    return RendererRunner(model, path, device=device, compile_batch=batch if compiled else None)
