"""Training the audio→mouth models on a small real dataset (10 GRID clips)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from newsanchor.audio2mouth.checkpoint import load_mouth_model
from newsanchor.features.mouth import mouth_size
from newsanchor.train.mouth import MouthTrainConfig, MouthTrainer, regression_losses

pytestmark = pytest.mark.slow

TINY = {
    "tcn-gan": {"filters": 32, "dilations": (1, 2), "frontend_channels": (16, 16, 32, 32), "fc_hidden": 16,
                "disc_audio_channels": (16, 16)},
    "tcn": {"filters": 32, "dilations": (1, 2), "frontend_channels": (16, 16, 32, 32), "fc_hidden": 16},
    "lstm": {"hidden": 32, "layers": 1},
    "bilstm": {"hidden": 32, "layers": 1},
}


def tiny(model: str, **changes) -> MouthTrainConfig:
    return MouthTrainConfig(model=model, batch_size=8, stride=10, model_overrides=TINY[model], **changes)


@pytest.mark.parametrize("model", sorted(TINY))
def test_a_training_step_lowers_the_loss_and_the_best_model_loads(model, grid10, tmp_path):
    trainer = MouthTrainer(grid10, tmp_path / model, tiny(model, learning_rate=3e-3), torch.device("cpu"))
    mfcc, mouth = (torch.from_numpy(a) for a in trainer.train_set.batch(trainer.batch_indices(0)))

    def loss() -> float:
        with torch.no_grad():
            l2, inter = regression_losses(trainer.generator(mfcc), mouth)
        return float(100 * l2 + inter)

    before = loss()
    for _ in range(3):
        trainer.train_step(0)  # the same batch again: its loss must fall
    assert loss() < before
    trainer.config = tiny(model, max_steps=2, evals_per_epoch=100)
    trainer.run()
    loaded, name, _, extra = load_mouth_model(tmp_path / model)
    assert name == model and extra["mfcc_stats"]["mean"] == grid10.mfcc_stats.to_dict()["mean"]
    # the speaker's closed mouth travels with the model, and it is more closed than usual
    closed = np.array(extra["closed_mouth"], np.float32)
    openings = np.concatenate([mouth_size(grid10.arrays(c["id"])["mouth"])[:, 1] for c in grid10.clips])
    assert closed.shape == (10,) and mouth_size(grid10.mouth_pca.inverse(closed))[1] < np.nanmedian(openings)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(mfcc).numpy(), trainer.generator.eval()(mfcc).numpy(), atol=1e-6)


def test_resuming_reproduces_the_next_step(grid10, tmp_path):
    def run(folder, max_steps):
        losses = {}
        MouthTrainer(grid10, folder, tiny("tcn-gan", max_steps=max_steps, evals_per_epoch=100), torch.device("cpu")).run(
            lambda step, total, values: losses.__setitem__(step, values))
        return losses

    straight = run(tmp_path / "straight", 4)
    run(tmp_path / "resumed", 2)  # interrupted after step 2 (its state is saved at every evaluation)
    resumed = run(tmp_path / "resumed", 4)
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        for key, value in straight[step].items():
            assert resumed[step][key] == pytest.approx(value, rel=1e-5), (step, key)
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4"]
    assert json.loads((tmp_path / "resumed" / "train_state.json").read_text())["counters"]["step"] == 4


def test_evaluate_mouth_scores_runs_against_the_mean_predictor(grid10, tmp_path):
    from typer.testing import CliRunner

    from newsanchor.cli import app

    runs = []
    for model in ("tcn-gan", "lstm"):
        MouthTrainer(grid10, tmp_path / model, tiny(model, max_steps=3, evals_per_epoch=100), torch.device("cpu")).run()
        runs.append(str(tmp_path / model))
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", "mouth", str(grid10.root), *runs, "--report", str(report), "--no-timing", "--json"])
    assert result.exit_code == 0, result.stderr
    table = json.loads(result.stdout)
    assert set(table["models"]) == {"tcn-gan", "lstm"} and table["test"]["clips"] == 1
    for name, m in table["models"].items():
        assert m["mse"] > 0 and m["mae"] > 0 and m["int_mse"] > 0 and m["landmark_px"] > 0 and m["seeds"] == 1
        assert len(m["mse_per_window_position"]) == 50
    low, high = table["models"]["lstm"]["vs_tcn-gan"]["mse"]["ci95"]
    assert low <= table["models"]["lstm"]["vs_tcn-gan"]["mse"]["relative_difference"] <= high
    assert table["mean_predictor"]["mse"] > 0
    assert (report / "mouth_fig5.png").stat().st_size > 1000 and "Table 1" in (report / "mouth_tables.md").read_text()
