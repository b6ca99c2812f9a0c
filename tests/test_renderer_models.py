"""Renderer generators (render/pix2pixhd.py), discriminators and GAN losses (train/)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from newsanchor.errors import NewsanchorError
from newsanchor.facemap.draw import N_CHANNELS
from newsanchor.render import (
    RENDERER_CONFIGS,
    GlobalGenerator,
    LocalEnhancer,
    RendererConfig,
    build_renderer,
    load_renderer,
    renderer_gflops,
    save_renderer,
)
from newsanchor.train.discriminators import DiscriminatorConfig, MultiscaleDiscriminator
from newsanchor.train.gan_losses import (
    VGGPerceptualLoss,
    feature_matching_loss,
    lsgan_loss,
    vgg19_features,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"ngf": 4, "n_downsampling": 2, "n_blocks": 1}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_input_channels_follow_facial_map():
    assert RendererConfig().in_channels == N_CHANNELS == 5
    assert RendererConfig(appearance_channels=3).input_channels == 8


def test_named_configs_build_with_expected_sizes():
    with torch.device("meta"):  # shapes only: no 730 MB of weights to initialise
        full, full_cfg = build_renderer("full-512")
        light, light_cfg = build_renderer("light-256")
    assert isinstance(full, GlobalGenerator) and isinstance(light, GlobalGenerator)
    assert (full_cfg.ngf, full_cfg.n_downsampling, full_cfg.n_blocks) == (64, 4, 9)
    assert (light_cfg.ngf, light_cfg.n_blocks) == (32, 6)
    # pix2pixHD's global generator (1024-channel bottleneck) is ~182M parameters
    assert 100e6 < n_params(full) < 250e6
    assert 2e6 < n_params(light) < 15e6


@pytest.mark.parametrize("name", sorted(RENDERER_CONFIGS))
@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_generator_shape_and_range(name, upsample):
    model, config = build_renderer(name, upsample=upsample, **TINY)
    x = torch.randn(2, config.input_channels, 16, 16) * 3
    y = model(x)
    assert y.shape == (2, 3, 16, 16)
    assert y.min() >= -1 and y.max() <= 1
    assert y.std() > 0


def test_appearance_channels_change_input_width():
    model, _ = build_renderer("light-256", appearance_channels=3, **TINY)
    assert model(torch.randn(1, 8, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[B, 8, S, S\]"):
        model(torch.randn(1, 5, 8, 8))


def test_size_not_divisible_raises():
    model, _ = build_renderer("light-256", **TINY)
    with pytest.raises(ValueError, match="not divisible by 4"):
        model(torch.randn(1, 5, 18, 18))
    enhancer, _ = build_renderer("light-256", local_enhancer=True, **TINY)
    with pytest.raises(ValueError, match="not divisible by 8"):
        enhancer(torch.randn(1, 5, 20, 20))


def test_local_enhancer_shapes_and_global_half_resolution():
    model, config = build_renderer("light-256", local_enhancer=True, n_local_blocks=1, **TINY)
    assert isinstance(model, LocalEnhancer)
    assert model.global_generator.config.ngf == 2 * config.ngf
    seen = {}
    model.global_generator.body.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    y = model(torch.randn(2, 5, 32, 32))
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    assert seen["shape"] == (2, 2 * config.ngf, 16, 16)


def test_unknown_renderer_and_override():
    with pytest.raises(ValueError, match="unknown renderer"):
        build_renderer("huge-4k")
    with pytest.raises(ValueError, match="unknown setting"):
        build_renderer("light-256", nfg=3)
    with pytest.raises(ValueError, match="upsample"):
        RendererConfig(upsample="bilinear")


def test_gflops_counts_convolutions():
    model, _ = build_renderer(RendererConfig(in_channels=1, ngf=2, n_downsampling=0, n_blocks=0))
    # conv7 1→2 and conv7 2→3 at 8×8: 64·(49·1·2 + 49·2·3) MACs
    assert renderer_gflops(model, 8) == pytest.approx(2 * 64 * (98 + 294) / 1e9)
    model, _ = build_renderer("light-256", upsample="transposed", **TINY)
    flops16, flops32 = renderer_gflops(model, 16), renderer_gflops(model, 32)
    assert flops32 == pytest.approx(4 * flops16)


def test_discriminator_returns_features_then_patch_logits():
    config = DiscriminatorConfig(in_channels=8, ndf=4, n_layers=3, num_scales=3)
    outputs = MultiscaleDiscriminator(config)(torch.randn(2, 8, 64, 64))
    assert len(outputs) == 3
    for scale in outputs:
        assert len(scale) == config.n_layers + 2
        assert scale[-1].shape[:2] == (2, 1)
        assert all(f.shape[0] == 2 for f in scale)
    # pix2pixHD's patch map sizes at 64, 32, 16 pixels (k4, pad 2: each conv adds one pixel then halves)
    assert [s[-1].shape[-1] for s in outputs] == [11, 7, 5]
    assert outputs[0][0].shape == (2, 4, 33, 33)
    with pytest.raises(ValueError, match="expected"):
        MultiscaleDiscriminator(config)(torch.randn(1, 5, 64, 64))


def test_lsgan_and_feature_matching_losses():
    real = [[torch.randn(1, 4, 8, 8), torch.ones(1, 1, 4, 4)], [torch.randn(1, 4, 4, 4), torch.ones(1, 1, 2, 2)]]
    fake = [[torch.randn(1, 4, 8, 8), torch.zeros(1, 1, 4, 4)], [torch.randn(1, 4, 4, 4), torch.zeros(1, 1, 2, 2)]]
    assert lsgan_loss(real, True) == 0 and lsgan_loss(fake, False) == 0
    assert lsgan_loss(real, False) == pytest.approx(1.0) and lsgan_loss(fake, True) == pytest.approx(1.0)
    assert feature_matching_loss(real, real) == 0
    fm = feature_matching_loss(real, fake, weight=2.0)
    expected = 2.0 * ((real[0][0] - fake[0][0]).abs().mean() + (real[1][0] - fake[1][0]).abs().mean()) / 2
    assert fm == pytest.approx(expected.item())
    # real features are detached: gradients reach only the fake branch
    r = [[torch.randn(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 1, 2, 2)]]
    f = [[torch.randn(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 1, 2, 2)]]
    feature_matching_loss(r, f).backward()
    assert r[0][0].grad is None and f[0][0].grad is not None


def test_tiny_gan_training_lowers_generator_l1():
    torch.manual_seed(0)
    generator, config = build_renderer("light-256", **{**TINY, "ngf": 8})
    disc = MultiscaleDiscriminator(DiscriminatorConfig(in_channels=config.input_channels + 3, ndf=4, n_layers=2, num_scales=2))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    maps = torch.randn(2, config.input_channels, 16, 16)
    # a fixed, smooth (so learnable in a few steps) target image in [-0.8, 0.8]
    target = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4) * 1.6 - 0.8, size=16, mode="bilinear")
    with torch.no_grad():
        before = (generator(maps) - target).abs().mean().item()
    for _ in range(15):
        fake = generator(maps)
        d_loss = 0.5 * (lsgan_loss(disc(torch.cat([maps, target], 1)), True)
                        + lsgan_loss(disc(torch.cat([maps, fake.detach()], 1)), False))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        fake_out, real_out = disc(torch.cat([maps, fake], 1)), disc(torch.cat([maps, target], 1))
        l1 = (fake - target).abs().mean()
        g_loss = lsgan_loss(fake_out, True) + feature_matching_loss(real_out, fake_out) + 10 * l1
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    with torch.no_grad():
        after = (generator(maps) - target).abs().mean().item()
    assert after < 0.5 * before and after < 0.2


def test_save_load_round_trip(tmp_path):
    model, config = build_renderer("light-256", local_enhancer=True, n_local_blocks=1, appearance_channels=3, **TINY)
    meta_path = save_renderer(tmp_path / "r", model, config, extra={"size": 32, "note": "x"})
    meta = json.loads(meta_path.read_text())
    assert meta["format"] == "newsanchor-renderer" and meta["format_version"] == 1
    assert len(meta["weights"]["sha256"]) == 64 and meta["weights"]["parameters"] == n_params(model)
    loaded, loaded_config, extra = load_renderer(tmp_path / "r")
    assert loaded_config == config and extra == {"size": 32, "note": "x"}
    assert not loaded.training
    x = torch.randn(1, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["renderer.json", "renderer.safetensors"]


def _one_line_naming(err: pytest.ExceptionInfo, path) -> None:
    message = str(err.value)
    assert "\n" not in message and str(path) in message


def test_load_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(NewsanchorError) as err:
        load_renderer(tmp_path / "nothing")
    _one_line_naming(err, tmp_path / "nothing" / "renderer.json")

    model, config = build_renderer("light-256", **TINY)
    meta_path = save_renderer(tmp_path / "r", model, config)
    meta = json.loads(meta_path.read_text())

    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(NewsanchorError, match="version 99") as err:
        load_renderer(tmp_path / "r")
    _one_line_naming(err, meta_path)

    # weights that do not fit the config (checksum updated so the shape check is reached)
    other, other_config = build_renderer("light-256", **{**TINY, "ngf": 6})
    save_renderer(tmp_path / "other", other, other_config)
    weights = tmp_path / "r" / "renderer.safetensors"
    weights.write_bytes((tmp_path / "other" / "renderer.safetensors").read_bytes())
    meta_path.write_text(json.dumps({**meta, "weights": {**meta["weights"], "sha256": None}}))
    with pytest.raises(NewsanchorError, match="do not fit") as err:
        load_renderer(tmp_path / "r")
    _one_line_naming(err, weights)

    meta_path.write_text(json.dumps(meta))  # original checksum, other weights
    with pytest.raises(NewsanchorError, match="checksum") as err:
        load_renderer(tmp_path / "r")
    _one_line_naming(err, weights)

    weights.unlink()
    with pytest.raises(NewsanchorError, match="missing") as err:
        load_renderer(tmp_path / "r")
    _one_line_naming(err, weights)


def test_render_does_not_import_train():
    code = ("import sys, newsanchor.render.pix2pixhd, newsanchor.render.inputs, newsanchor.render.runtime, "
            "newsanchor.facemap.draw, newsanchor.facemap.jaw; "
            "bad = [m for m in sys.modules if m.startswith('newsanchor.train')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vgg_loss_needs_a_local_file(tmp_path):
    with pytest.raises(NewsanchorError, match="local") as err:
        VGGPerceptualLoss(None)
    assert "\n" not in str(err.value)
    with pytest.raises(NewsanchorError, match="missing") as err:
        VGGPerceptualLoss(tmp_path / "vgg19.safetensors")
    _one_line_naming(err, tmp_path / "vgg19.safetensors")


def test_vgg_loss_with_random_weights(tmp_path):
    torch.manual_seed(0)
    features = vgg19_features()
    assert len(features) == 37  # torchvision's vgg19().features
    tensors = {f"features.{k}": v for k, v in features.state_dict().items()}
    tensors["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / "vgg19.safetensors"
    save_file(tensors, str(path))
    loss_fn = VGGPerceptualLoss(path)
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss_fn(a, a.clone()) == 0
    b = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    loss = loss_fn(b, a)
    assert loss > 0
    loss.backward()
    assert b.grad is not None and all(p.grad is None for p in loss_fn.parameters())
