"""Training of the lower-face renderer (:mod:`newsanchor.render.lower_face`).

Each step: the generator paints the region, the render is blended into the real frame's region
through the soft mask (as synthesis blends it into the template), and the blend is compared
with the real region by

- LSGAN on multi-scale PatchGAN discriminators (conditioned on the map and the mask) with
  feature matching (×``lambda_fm``), as pix2pixHD;
- L1 (×``lambda_l1``) weighted ``1 + mouth_weight`` in the mouth box;
- a Laplacian-pyramid L1 (×``lambda_lap``), mouth-weighted at the finest level: the fine detail
  (lip lines, teeth edges, stubble) that a plain L1 lets the renderer average into blur.
- with the blend head, a small penalty on its mixing logits (×``lambda_blend``), so that the mix
  of painted colour and references stays a choice the gradient can still change, and optionally
  the mix's entropy (×``lambda_choice``), so that a pixel copies one source rather than averaging.

The run is resumable (its training state at every checkpoint), keeps its best renderer on
validation frames (L1 + Laplacian of the blend: not L1 alone, which rewards blur), and runs under
torchrun as the pix2pixHD trainer does. The reference mouths it chose are saved beside the
renderer (``references.npz``) for bundles.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..config import from_dict
from ..dataset import PreparedDataset, dataset_split
from ..errors import NewsanchorError
from ..render.inputs import to_image
from ..render.lower_face import LOWER_FACE_CONFIGS, LowerFaceConfig, build_lower_face
from ..render.pix2pixhd import save_renderer
from .discriminators import DiscriminatorConfig, MultiscaleDiscriminator
from .gan_losses import laplacian_loss
from ..render.references import REFERENCES_FILE
from .lower_face_data import (LowerFaceFrames, RegionCache, build_region_cache, choose_reference_bank,
                              choose_references)
from .renderer import (GanModels, RunLog, adversarial_terms, checkpoint, ddp, discriminator_update, distributed, mixed_precision,
                       pick_device, step_loader)
from .state import load_train_state


@dataclass(frozen=True)
class LowerFaceTrainConfig:
    config: str = "lower-face"  # a name in render.lower_face.LOWER_FACE_CONFIGS
    seed: int = 0
    batch_size: int = 8
    learning_rate: float = 2e-4
    max_steps: int = 6000
    lambda_l1: float = 10.0
    lambda_lap: float = 20.0
    lambda_fm: float = 10.0
    lambda_blend: float = 0.01  # blend head: × mean squared logit, keeps the mix from freezing on one source
    # blend head: × the mix's mean entropy per pixel. L1 alone is least for an average of sources
    # that disagree a little (a blur); this asks each pixel to copy one of them instead
    lambda_choice: float = 0.0
    mouth_weight: float = 2.0  # extra weight of the mouth box in L1 and the finest Laplacian level
    discriminator_scales: int = 2
    discriminator_ndf: int = 32
    checkpoint_every: int = 200
    sample_every: int = 500
    loader_workers: int = 1
    edges: bool = True
    references: bool = True  # False: the ablation without reference mouths
    masked_frame: bool = True  # False: the ablation without the masked frame region
    precision: str = "auto"
    val_frames: int = 64
    snapshot_steps: tuple[int, ...] = ()
    renderer_overrides: dict = field(default_factory=dict)


def _renderer_config(config: LowerFaceTrainConfig) -> LowerFaceConfig:
    if config.config not in LOWER_FACE_CONFIGS:
        raise NewsanchorError(f"unknown lower-face renderer {config.config!r}; choose one of {', '.join(LOWER_FACE_CONFIGS)}")
    base = asdict(LOWER_FACE_CONFIGS[config.config])
    overrides = dict(config.renderer_overrides)
    if not config.references:
        overrides["references"] = 0
    if not config.masked_frame:
        overrides["masked_frame"] = False
    return from_dict(LowerFaceConfig, base | overrides, "lower-face renderer")


def _build_models(config: LowerFaceTrainConfig, device: torch.device) -> GanModels:
    """The lower-face generator and a multi-scale discriminator of (map, mask, region), with Adam."""
    generator, renderer_config = build_lower_face(_renderer_config(config))
    discriminator = MultiscaleDiscriminator(DiscriminatorConfig(
        in_channels=renderer_config.map_channels + 1 + 3, ndf=config.discriminator_ndf,
        num_scales=config.discriminator_scales))
    return GanModels.on(generator, discriminator, renderer_config, config.learning_rate, device)


def cache_regions(dataset_dir: str | Path, out: str | Path, config: LowerFaceTrainConfig,
                  on_frames: Callable[[int, int], None] | None = None) -> tuple[RegionCache, RegionCache]:
    """The region caches of the training and validation splits under ``out/cache`` (cut on the
    first call, reused after; :func:`train_lower_face` calls this itself, a caller may call it
    first to show its own progress). Returns ``(train, val)``."""
    dataset, renderer_config = PreparedDataset(dataset_dir), _renderer_config(config)
    box = renderer_config.region_box(dataset.size)
    split = dataset_split(dataset)
    train_cache = build_region_cache(dataset, split["train"], box, Path(out) / "cache" / "train", on_frames)
    if len(train_cache) < config.batch_size:
        raise NewsanchorError(f"{dataset.root}: {len(train_cache)} training frames, fewer than a batch")
    return train_cache, build_region_cache(dataset, split["val"], box, Path(out) / "cache" / "val")


def prepare_frames(dataset: PreparedDataset, run: Path, config: LowerFaceTrainConfig, renderer_config: LowerFaceConfig,
                   on_frames: Callable[[int, int], None] | None = None) -> tuple[LowerFaceFrames, LowerFaceFrames]:
    """Region caches of the training and validation splits, the reference mouths (the pools' best,
    or the bank for ``reference_choice="nearest"``, written to ``run/references.npz``), and the two
    datasets over them: ``(train, val)``."""
    box = renderer_config.region_box(dataset.size)
    train_cache, val_cache = cache_regions(dataset.root, run, config, on_frames)
    if renderer_config.reference_choice == "nearest" and renderer_config.references:
        bank = choose_reference_bank(dataset, train_cache, renderer_config.bank_size, source=str(dataset.root))
        pools, references = None, bank.mouths
    else:
        bank, pools = None, choose_references(dataset, train_cache, source=str(dataset.root))
        references = pools.best(renderer_config.references)
    # numpy's stubs: a **dict of arrays could also fill savez's allow_pickle: bool
    np.savez(run / REFERENCES_FILE, **references.to_arrays())  # type: ignore[arg-type]
    frames = partial(LowerFaceFrames, references=renderer_config.references, masked_frame=renderer_config.masked_frame,
                     use_edges=config.edges, mouth_weight=config.mouth_weight, reference_warp=renderer_config.reference_warp,
                     bank=bank, match_colours=renderer_config.match_reference_colours, seed=config.seed,
                     reference_resample=renderer_config.reference_resample)
    return (frames(train_cache, pools, box, dataset.size, randomise=True),
            frames(val_cache, pools, box, dataset.size, randomise=False))


def _blend(fake: torch.Tensor, real: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The render blended into the real region as synthesis blends it into the template."""
    return alpha * fake + (1 - alpha) * real


def _train_step(models: GanModels, g_model, d_model, batch, config: LowerFaceTrainConfig, autocast) -> dict[str, float]:
    """One discriminator and one generator update; returns the losses. The discriminators judge
    the blended region conditioned on the map and the mask."""
    inputs, real, alpha, weight = batch
    condition = inputs[:, :models.config.map_channels + 1]
    with autocast:
        fake = _blend(g_model(inputs).float(), real, alpha)
    loss_d = discriminator_update(d_model, models.opt_d, condition, real, fake, autocast)
    g_gan, g_fm = adversarial_terms(models.discriminator, condition, real, fake, autocast, config.lambda_fm)
    g_l1 = config.lambda_l1 * (weight * (fake - real).abs()).mean()
    g_lap = config.lambda_lap * laplacian_loss(fake, real, weight)
    loss_g = g_gan + g_fm + g_l1 + g_lap
    logits = models.generator.blend_logits  # a tensor, or None outside training or with the rgb head
    if isinstance(logits, torch.Tensor):
        loss_g = loss_g + config.lambda_blend * logits.pow(2).mean()
        if config.lambda_choice:
            log_weights = torch.log_softmax(logits, 1)
            loss_g = loss_g + config.lambda_choice * -(log_weights.exp() * log_weights).sum(1).mean()
    models.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    models.opt_g.step()
    return {"g_gan": g_gan.item(), "g_fm": g_fm.item(), "g_l1": g_l1.item(), "g_lap": g_lap.item(), "d": loss_d.item()}


def validation_batches(frames: LowerFaceFrames, count: int, batch_size: int = 8) -> list[tuple[torch.Tensor, ...]]:
    """Up to ``count`` validation frames spread evenly, as batches of (inputs, real, alpha, weight)."""
    if count <= 0 or len(frames) == 0:
        return []
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    return [tuple(torch.stack(t) for t in zip(*[frames[int(i)] for i in picks[start:start + batch_size]]))
            for start in range(0, len(picks), batch_size)]


@torch.no_grad()
def validation_score(generator: torch.nn.Module, batches: list[tuple[torch.Tensor, ...]], device: torch.device,
                     autocast) -> float:
    """Mean L1 + Laplacian-pyramid L1 (in [-1, 1] units) of the blended render on the validation
    batches; NaN without any."""
    if not batches:
        return float("nan")
    was_training = generator.training
    generator.eval()
    total, count = 0.0, 0
    for batch in batches:
        inputs, real, alpha, _ = (t.to(device) for t in batch)
        with autocast:
            fake = _blend(generator(inputs).float(), real, alpha)
        total += float(F.l1_loss(fake, real) + laplacian_loss(fake, real)) * len(inputs)
        count += len(inputs)
    generator.train(was_training)
    return total / count


def _sample_grid(inputs: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, alpha: torch.Tensor,
                 map_channels: int) -> np.ndarray:
    """Rows of map | blended render | real for up to 4 items, RGB uint8."""
    rows = []
    for x, f, r, a in zip(inputs[:4], fake[:4], real[:4], alpha[:4]):
        drawn = (x[:map_channels].amax(dim=0, keepdim=True) > -0.9).float().repeat(3, 1, 1) * 2 - 1
        rows.append(np.concatenate([to_image(drawn), to_image(_blend(f.float(), r, a)), to_image(r)], axis=1))
    return np.concatenate(rows, axis=0)


def _extra(dataset: PreparedDataset, config: LowerFaceTrainConfig, step: int) -> dict:
    return {"input": {"edges": config.edges}, "dataset": str(dataset.root), "crop_size": dataset.size,
            "train_config": asdict(config), "step": step, "references_file": REFERENCES_FILE}


def train_lower_face(dataset_dir: str | Path, out: str | Path, config: LowerFaceTrainConfig, *, device: str | None = None,
                     on_step=None, on_frames: Callable[[int, int], None] | None = None) -> dict:
    """Train a lower-face renderer on the dataset's training split into the run directory ``out``
    (resuming it); returns the counters ``{"step", "best_step", "best_val"}``."""
    rank, world = distributed()
    out, device_t = Path(out), pick_device(device)
    torch.manual_seed(config.seed)
    dataset = PreparedDataset(dataset_dir)
    models = _build_models(config, device_t)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=1))
    train_frames, val_frames = prepare_frames(dataset, out, config, models.config, on_frames if rank == 0 else None)
    counters = load_train_state(out, models.modules, models.optimizers, device_t) or {"step": 0}
    g_model, d_model = ddp(models.generator, world), ddp(models.discriminator, world)
    autocast = mixed_precision(config.precision, device_t)
    loader = step_loader(train_frames, config, counters["step"], rank, world, draws=True)
    val_batches = validation_batches(val_frames, config.val_frames) if rank == 0 else []
    log = RunLog(out, rank, ["step", "g_gan", "g_fm", "g_l1", "g_lap", "d", "val", "seconds"])
    started = time.perf_counter()
    try:
        for batch in loader:
            batch = [t.to(device_t) for t in batch]
            losses = _train_step(models, g_model, d_model, batch, config, autocast)
            counters["step"] += 1
            step = counters["step"]
            if on_step and rank == 0:
                on_step(step, config.max_steps, losses)
            if rank != 0:
                continue
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                val = validation_score(models.generator, val_batches, device_t, autocast)
                log.row([step] + [f"{losses[k]:.5g}" for k in ("g_gan", "g_fm", "g_l1", "g_lap", "d")]
                        + [f"{val:.5g}", round(time.perf_counter() - started, 1)])
                checkpoint(out, models, counters, "best_val", val, _extra(dataset, config, step))
            if step in config.snapshot_steps:
                save_renderer(out / f"step_{step:07d}", models.generator, models.config, _extra(dataset, config, step))
                (out / f"step_{step:07d}" / REFERENCES_FILE).write_bytes((out / REFERENCES_FILE).read_bytes())
            if step % config.sample_every == 0:
                with torch.no_grad():
                    fake = models.generator(batch[0][:4])
                grid = _sample_grid(batch[0], fake, batch[1], batch[2], models.config.map_channels)
                cv2.imwrite(str(out / f"sample_{step:07d}.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    finally:
        log.close()
    return counters
