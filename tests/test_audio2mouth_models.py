"""Audio → mouth models: shapes, receptive fields, causality of the baselines, registry, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from newsanchor.audio2mouth.baselines import LSTMConfig, LSTMGenerator
from newsanchor.audio2mouth.checkpoint import (
    META_FILE,
    WEIGHTS_FILE,
    load_mouth_model,
    save_mouth_model,
)
from newsanchor.audio2mouth.registry import MODELS, build_model
from newsanchor.audio2mouth.tcn import TCNConfig, TCNDiscriminator, TCNGenerator
from newsanchor.errors import NewsanchorError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY_TCN = {"filters": 16, "frontend_channels": (8, 8, 8, 16), "fc_hidden": 8, "dilations": (1, 2),
            "disc_audio_channels": (8, 8)}
TINY = {"tcn-gan": TINY_TCN, "tcn": TINY_TCN, "lstm": {"hidden": 16, "layers": 2}, "bilstm": {"hidden": 16, "layers": 1}}


def _positive_copy(model: torch.nn.Module) -> torch.nn.Module:
    """All weights and biases positive: with positive inputs every ReLU is active and no
    contributions cancel, so an output changes iff a perturbed input is in its receptive field."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.abs() + 0.01)
    return model.double().eval()


def test_tcn_generator_maps_4t_mfcc_rows_to_t_mouth_frames():
    model = TCNGenerator(TCNConfig(**TINY_TCN))
    for frames in (1, 13, 50):
        assert model(torch.randn(2, 4 * frames, 13)).shape == (2, frames, 10)
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(1, 198, 13))
    with pytest.raises(ValueError, match=r"\[B, 4T, 13\]"):
        model(torch.randn(1, 200, 12))


def test_paper_size_receptive_field_is_computed_from_the_layers():
    model = TCNGenerator(TCNConfig())
    # TCN: 4 levels x 2 convs x dilation d at 25 fps = ±30 frames; front end adds 6 rows.
    assert model.mfcc_extent == (-126, 129)  # rows 4t-126 .. 4t+3+126: symmetric about the frame
    assert model.receptive_field_mfcc_frames == 126
    assert model.receptive_field_video_frames == 32
    assert model.receptive_field_ms == 1260.0
    assert TCNGenerator(TCNConfig(dilations=(1, 2, 4, 8, 16))).receptive_field_video_frames == 32 + 16 * 2


def test_tcn_receptive_field_matches_perturbation():
    model = _positive_copy(TCNGenerator(TCNConfig(**TINY_TCN)))
    lo, hi = model.mfcc_extent
    frames = 40
    x = torch.rand(1, 4 * frames, 13, dtype=torch.float64) + 0.5
    with torch.no_grad():
        base = model(x)[0]
        for row in (0, 37, 80, 159):
            bumped = x.clone()
            bumped[0, row] += 1.0
            changed = set(np.flatnonzero((model(bumped)[0] - base).abs().amax(dim=1).numpy() > 1e-12))
            expected = {t for t in range(frames) if 4 * t + lo <= row <= 4 * t + hi}
            assert changed == expected, row


def test_tcn_single_pass_equals_windows_holding_the_receptive_field():
    model = TCNGenerator(TCNConfig(**TINY_TCN)).double().eval()
    context = model.receptive_field_video_frames
    x = torch.randn(1, 4 * 120, 13, dtype=torch.float64)
    with torch.no_grad():
        whole = model(x)[0]
        a, b = 40, 70  # frames a..b from a window with `context` frames of input on either side
        piece = model(x[:, 4 * (a - context):4 * (b + context)])[0, context:context + b - a]
    torch.testing.assert_close(piece, whole[a:b], rtol=0, atol=1e-12)


@pytest.mark.parametrize("overrides", [TINY_TCN, {**TINY_TCN, "frontend_channels": (8, 8, 8, 12), "use_skip_connections": False}])
def test_time_major_cpu_path_equals_forward(overrides):
    model = TCNGenerator(TCNConfig(**overrides)).eval()
    with torch.inference_mode():
        for frames in (1, 2, 3, 77):  # shorter than a dilation, and long
            x = torch.randn(1, 4 * frames, 13)
            torch.testing.assert_close(model.forward_sequence(x[0]), model(x)[0], rtol=0, atol=1e-6)


def test_discriminator_gives_per_frame_logits_of_the_pair():
    disc = TCNDiscriminator(TCNConfig(**TINY_TCN))
    mfcc, mouth = torch.randn(3, 200, 13), torch.randn(3, 50, 10, requires_grad=True)
    logits = disc(mfcc, mouth)
    assert logits.shape == (3, 50)
    logits[:, 25].sum().backward()  # a frame's logit depends on the mouth near it, not far away
    reach = np.flatnonzero(mouth.grad.abs().sum(dim=(0, 2)).numpy() > 0)
    context = disc.tcn.context
    assert reach.min() >= 25 - context and reach.max() <= 25 + context and 25 in reach
    with pytest.raises(ValueError, match="mouth must be"):
        disc(mfcc, torch.randn(3, 49, 10))


@pytest.mark.parametrize("delay, steps", [(20, 5), (18, 5), (21, 6), (0, 0)])
def test_time_delayed_lstm_sees_exactly_its_delay_of_future_audio(delay, steps):
    config = LSTMConfig(hidden=8, layers=2, delay_audio_frames=delay)
    assert config.delay_video_frames == steps  # rounded up, never less look-ahead than asked
    model = LSTMGenerator(config).double().eval()
    frames = 30
    x = torch.randn(1, 4 * frames, 13, dtype=torch.float64)
    with torch.no_grad():
        base = model(x)[0]
        assert base.shape == (frames, 10)
        row = 60
        bumped = x.clone()
        bumped[0, row] += 1.0
        changed = (model(bumped)[0] - base).abs().amax(dim=1).numpy() > 1e-12
    # frame t reads step t + D, which holds rows up to 4(t + D) + 3
    last_blind = (row - 3 + 3) // 4 - steps - 1  # largest t with 4(t + D) + 3 < row
    assert not changed[:last_blind + 1].any()
    assert changed[last_blind + 1:].all()
    assert model.lookahead_mfcc_frames == 4 * steps


def test_bilstm_sees_the_whole_future():
    model, config = build_model("bilstm", hidden=8, layers=1)
    assert config.bidirectional and config.delay_audio_frames == 0 and model.lookahead_mfcc_frames is None
    x = torch.randn(1, 4 * 20, 13)
    bumped = x.clone()
    bumped[0, -1] += 1.0
    with torch.no_grad():
        assert (model(bumped)[0, 0] - model(x)[0, 0]).abs().max() > 0
    with pytest.raises(ValueError, match="no time delay"):
        LSTMConfig(bidirectional=True, delay_audio_frames=20)


def test_registry_builds_all_four_models():
    assert set(MODELS) == {"tcn-gan", "tcn", "lstm", "bilstm"}
    assert MODELS["tcn-gan"].adversarial and MODELS["tcn-gan"].discriminator_class is TCNDiscriminator
    assert not any(MODELS[name].adversarial for name in ("tcn", "lstm", "bilstm"))
    assert MODELS["tcn"].generator_class is MODELS["tcn-gan"].generator_class
    for name, overrides in TINY.items():
        model, config = build_model(name, **overrides)
        assert isinstance(config, MODELS[name].config_class)
        assert model(torch.randn(2, 200, 13)).shape == (2, 50, 10)
    with pytest.raises(NewsanchorError, match="unknown mouth model 'gru'.*tcn-gan"):
        build_model("gru")
    with pytest.raises(NewsanchorError, match="'tcn'"):
        build_model("tcn", kernel_size=4)


@pytest.mark.parametrize("name", sorted(TINY))
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, name):
    torch.manual_seed(1)
    model, config = build_model(name, **TINY[name])
    extra = {"mfcc_stats": {"mean": [0.5] * 13, "std": [2.0] * 13}, "pca": {"n_components": 10}}
    save_mouth_model(tmp_path, name, model, config, extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == [META_FILE, WEIGHTS_FILE]  # no temp files left
    loaded, loaded_name, loaded_config, loaded_extra = load_mouth_model(tmp_path)
    assert (loaded_name, loaded_config, loaded_extra) == (name, config, extra)
    assert not loaded.training
    x = torch.randn(2, 200, 13)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def _one_line_error(path, match) -> None:
    with pytest.raises(NewsanchorError) as info:
        load_mouth_model(path)
    message = str(info.value)
    assert "\n" not in message and match in message, message


def test_checkpoint_errors_name_the_file(tmp_path):
    _one_line_error(tmp_path / "nowhere", str(tmp_path / "nowhere" / META_FILE))
    model, config = build_model("tcn", **TINY_TCN)
    save_mouth_model(tmp_path, "tcn", model, config)
    meta_path = tmp_path / META_FILE
    meta = json.loads(meta_path.read_text())

    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    _one_line_error(tmp_path, f"{meta_path}: mouth model format version 99")
    meta_path.write_text(json.dumps({**meta, "format": "something-else"}))
    _one_line_error(tmp_path, f"{meta_path}: not a newsanchor mouth model")
    meta_path.write_text("{not json")
    _one_line_error(tmp_path, f"{meta_path}: not valid JSON")
    meta_path.write_text(json.dumps({**meta, "config": {**meta["config"], "filters": 32}}))
    _one_line_error(tmp_path, f"{tmp_path / WEIGHTS_FILE}: weights do not fit tcn")
    meta_path.write_text(json.dumps({**meta, "config": {**meta["config"], "colour": 1}}))
    _one_line_error(tmp_path, "unknown setting(s) colour")

    meta_path.write_text(json.dumps(meta))
    (tmp_path / WEIGHTS_FILE).write_bytes((tmp_path / WEIGHTS_FILE).read_bytes()[:-4] + b"\0\0\0\0")
    _one_line_error(tmp_path, f"{tmp_path / WEIGHTS_FILE}: checksum differs")
    (tmp_path / WEIGHTS_FILE).unlink()
    _one_line_error(tmp_path, f"{tmp_path / WEIGHTS_FILE}: missing")


def test_save_refuses_what_it_could_not_load_back(tmp_path):
    model, config = build_model("lstm", hidden=8, layers=1)
    with pytest.raises(TypeError, match="LSTMConfig"):
        save_mouth_model(tmp_path, "tcn", model, config)
    with pytest.raises(ValueError, match="not plain JSON"):
        save_mouth_model(tmp_path, "lstm", model, config, {"stats": np.zeros(3)})
