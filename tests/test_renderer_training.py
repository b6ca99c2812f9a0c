"""Renderer training on a small real dataset (10 GRID clips at 64²): loss, resume, samples, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from newsanchor.render.pix2pixhd import build_renderer, load_renderer
from newsanchor.train.renderer import RendererTrainConfig, train_renderer
from newsanchor.train.renderer_data import RendererFrames

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
TINY = {"ngf": 8, "n_downsampling": 2, "n_blocks": 1}


def test_frames_pair_a_map_and_reference_with_the_real_crop(grid10):
    frames = RendererFrames.split(grid10, "train")
    inputs, target = frames[5]
    assert inputs.shape == (8, 64, 64) and target.shape == (3, 64, 64)
    assert -1 <= float(inputs.min()) and float(inputs.max()) <= 1 and float(target.std()) > 0.05
    held_out = {(f.clip, f.frame) for f in RendererFrames.split(grid10, "test").frames}
    assert held_out and not held_out & {(f.clip, f.frame) for f in frames.frames}


def test_a_few_steps_on_a_real_batch_lower_the_l1_loss(grid10):
    frames = RendererFrames.split(grid10, "train")
    inputs, target = (torch.stack(t) for t in zip(*[frames[i] for i in range(4)]))
    generator, _ = build_renderer("light-256", appearance_channels=3, **TINY)
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss = F.l1_loss(generator(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_training_checkpoints_samples_and_resumes(grid10, tmp_path):
    config = RendererTrainConfig(batch_size=2, max_steps=2, checkpoint_every=1, sample_every=2, loader_workers=0,
                                 renderer_overrides=TINY)
    train_renderer(grid10.root, tmp_path, config, device="cpu")
    assert (tmp_path / "sample_0000002.png").is_file()
    counters = train_renderer(grid10.root, tmp_path, RendererTrainConfig(**{**config.__dict__, "max_steps": 3}), device="cpu")
    assert counters["step"] == 3
    rows = [row.split(",") for row in (tmp_path / "log.csv").read_text().splitlines()]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"] and rows[0][6] == "val_l1"
    model, config_loaded, extra = load_renderer(tmp_path, "cpu")
    # the run's renderer is the checkpoint that scored best on the validation frames
    val = {int(row[0]): float(row[6]) for row in rows[1:]}
    assert extra["step"] == min(val, key=val.get) and extra["val_l1"] == pytest.approx(min(val.values()), rel=1e-4)
    assert config_loaded.input_channels == 8
    frames = RendererFrames.split(grid10, "test")
    with torch.no_grad():
        out = model(frames[0][0][None])
    assert out.shape == (1, 3, 64, 64)


def test_two_processes_train_a_step_with_distributed_data_parallel(grid10, tmp_path):
    script = (
        "from newsanchor.train.renderer import RendererTrainConfig, train_renderer\n"
        f"train_renderer({str(grid10.root)!r}, {str(tmp_path)!r}, RendererTrainConfig(batch_size=4, max_steps=2, "
        f"checkpoint_every=1, sample_every=100, loader_workers=0, renderer_overrides={TINY!r}), device='cpu')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29577",
                             "--no-python", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "train_state.json").read_text())["counters"]["step"] == 2


def test_the_command_line_chooses_the_decoder_upsampling(grid10, tmp_path):
    from typer.testing import CliRunner

    from newsanchor.cli import app

    args = ["train", "renderer", str(grid10.root), "--preset", "light-256", "--out", str(tmp_path / "run"), "--max-steps", "1",
            "--batch-size", "1", "--loader-workers", "0", "--device", "cpu", "-q"]
    refused = CliRunner().invoke(app, [*args, "--upsample", "bilinear"])
    assert refused.exit_code == 1 and "--upsample bilinear" in refused.output and not (tmp_path / "run").exists()
    result = CliRunner().invoke(app, [*args, "--upsample", "transposed"])
    assert result.exit_code == 0, result.output
    _, config, _ = load_renderer(tmp_path / "run", "cpu")
    assert config.upsample == "transposed"
