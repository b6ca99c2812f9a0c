"""Renderer inference paths (render/runtime.py): fp32, bf16, ONNX Runtime, the automatic choice,
and `newsanchor export onnx`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from newsanchor.cli import app
from newsanchor.evaluate.image_metrics import psnr
from newsanchor.render.lower_face import LowerFaceConfig, build_lower_face
from newsanchor.render.pix2pixhd import build_renderer, load_renderer, save_renderer
from newsanchor.render.runtime import RendererRunner, choose_runner, export_onnx, resolve_precision

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"ngf": 8, "n_downsampling": 2, "n_blocks": 1, "appearance_channels": 3}


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model, _ = build_renderer("light-256", **TINY)
    return model.eval()


@pytest.fixture
def inputs():
    return np.random.default_rng(0).uniform(-1, 1, (2, 8, 32, 32)).astype(np.float32)


def test_fp32_runner_is_the_model_and_renders_uint8_images(tiny_model, inputs):
    runner = RendererRunner(tiny_model, "fp32")
    with torch.no_grad():
        expected = tiny_model(torch.from_numpy(inputs))
    torch.testing.assert_close(runner.forward(inputs), expected)
    images = runner.render(inputs)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], ((expected[0].clamp(-1, 1).permute(1, 2, 0) + 1) * 127.5).round().byte().numpy())


def test_bf16_runner_stays_close_and_leaves_the_model_alone(tiny_model, inputs):
    reference = RendererRunner(tiny_model, "fp32").render(inputs)
    images = RendererRunner(tiny_model, "bf16").render(inputs)
    assert next(tiny_model.parameters()).dtype == torch.float32
    assert min(psnr(a, b) for a, b in zip(images, reference)) > 35


def test_choose_runner_follows_the_precision_not_a_timing(tiny_model, inputs):
    assert choose_runner(tiny_model, precision="fp32").path == "fp32"
    assert choose_runner(tiny_model, precision="bf16").path == "bf16"
    auto = [choose_runner(tiny_model).path for _ in range(3)]
    assert auto == [resolve_precision("auto", "cpu")] * 3
    first, again = (choose_runner(tiny_model, precision="bf16").render(inputs) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="fp16"):
        choose_runner(tiny_model, precision="fp16")


def test_precision_names_are_checked():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


@pytest.mark.slow
def test_onnx_export_runs_in_onnx_runtime_like_pytorch_for_any_batch(tiny_model, inputs, tmp_path):
    path = export_onnx(tiny_model, 32, tmp_path / "renderer.onnx")
    runner = RendererRunner(tiny_model, "onnx", onnx_file=path)
    with torch.no_grad():
        expected = tiny_model(torch.from_numpy(inputs))
    torch.testing.assert_close(runner.forward(inputs), expected, atol=1e-4, rtol=1e-4)
    assert runner.forward(inputs[:1]).shape == (1, 3, 32, 32)


@pytest.mark.slow
def test_a_blend_head_lower_face_renderer_exports_for_any_batch(tmp_path):
    # the default renderer (lower-face-bank) mixes per pixel; exported from a batch of one, its
    # reshapes once fixed the ONNX model's batch at one
    torch.manual_seed(0)
    model, config = build_lower_face(LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1, references=1, head="blend"))
    model.eval()
    path = export_onnx(model, 64, tmp_path / "renderer.onnx", shape=(32, 48))
    runner = RendererRunner(model, "onnx", onnx_file=path)
    for batch in (1, 3):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, config.input_channels, 32, 48)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x))
        torch.testing.assert_close(runner.forward(x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_export_onnx_command_writes_a_file_and_refuses_bad_sizes(tiny_model, tmp_path):
    _, config = build_renderer("light-256", **TINY)
    save_renderer(tmp_path / "run", tiny_model, config, {"train_config": {"config": "light-256"}})
    runner = CliRunner()
    bad = runner.invoke(app, ["export", "onnx", str(tmp_path / "run"), "--out", str(tmp_path / "r.onnx"), "--size", "30"])
    assert bad.exit_code == 1 and "--size 30" in bad.output and not (tmp_path / "r.onnx").exists()
    ok = runner.invoke(app, ["export", "onnx", str(tmp_path / "run"), "--out", str(tmp_path / "r.onnx"), "--size", "32"])
    assert ok.exit_code == 0, ok.output
    model, _, _ = load_renderer(tmp_path / "run")
    onnx_runner = RendererRunner(model, "onnx", onnx_file=tmp_path / "r.onnx")
    assert onnx_runner.forward(np.zeros((1, 8, 32, 32), np.float32)).shape == (1, 3, 32, 32)


def test_export_onnx_command_names_a_missing_renderer(tmp_path):
    result = CliRunner().invoke(app, ["export", "onnx", str(tmp_path / "none"), "--out", str(tmp_path / "r.onnx")])
    assert result.exit_code == 1 and "none" in result.output and "Traceback" not in result.output


def test_onnx_path_needs_an_exported_file(tiny_model):
    with pytest.raises(ValueError, match="exported"):
        RendererRunner(tiny_model, "onnx")
    with pytest.raises(ValueError, match="path"):
        RendererRunner(tiny_model, "int8")


@pytest.mark.slow
def test_compiled_runner_pads_to_its_one_batch_shape_and_matches_eager(tiny_model, inputs):
    eager = RendererRunner(tiny_model, "fp32")
    compiled = RendererRunner(tiny_model, "fp32", compile_batch=len(inputs) + 1)
    for batch in (inputs, inputs[:1]):  # smaller than the compiled shape: padded, then cut
        np.testing.assert_allclose(compiled.forward(batch).numpy(), eager.forward(batch).numpy(), atol=1e-4)
    assert compiled._compiled is not None  # still compiled: one shape, no fallback


def test_a_compiler_failure_falls_back_to_eager_with_a_warning(tiny_model, inputs, monkeypatch, caplog):
    def broken(model, **_):
        def run(x):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    runner = RendererRunner(tiny_model, "fp32", compile_batch=len(inputs))
    expected = RendererRunner(tiny_model, "fp32").forward(inputs)
    np.testing.assert_array_equal(runner.forward(inputs).numpy(), expected.numpy())
    assert runner._compiled is None and "compiling failed" in caplog.text
    runner = choose_runner(tiny_model, batch=len(inputs), compiled=True)
    assert runner.compile_batch == len(inputs)
