"""Renderer training (paper §3.2, pix2pixHD): facial map + appearance → face crop.

Losses: LSGAN on multi-scale PatchGAN discriminators, discriminator feature matching (×10), L1
to the real crop, and a VGG19 perceptual loss when the user gives a local weights file. Mixed
precision (bf16 autocast) on CUDA and on CPUs with native bf16. Multi-GPU / multi-node through torchrun: each process trains
on its share of every batch order (DistributedDataParallel; gloo on CPU, NCCL on GPUs), and rank
0 writes checkpoints, samples and the log. The run resumes from its last checkpoint. At every
checkpoint the generator is scored on validation frames (L1), and the run's ``renderer.json`` is
its best so far: adversarial training does not improve monotonically (on GRID s1, step 900 scored
2 dB below step 500).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..dataset import PreparedDataset
from ..errors import NewsanchorError
from ..render.pix2pixhd import build_renderer, save_renderer
from ..render.runtime import resolve_precision
from ..threads import limit_blas_in_worker
from .discriminators import DiscriminatorConfig, MultiscaleDiscriminator
from .gan_losses import VGGPerceptualLoss, feature_matching_loss, lsgan_loss
from ..render.inputs import APPEARANCE_CHANNELS, MAP_CHANNELS, to_image
from .renderer_data import RendererFrames
from .state import load_train_state, save_train_state

LOG = "log.csv"


@dataclass(frozen=True)
class RendererTrainConfig:
    config: str = "light-256"  # a name in render.pix2pixhd.RENDERER_CONFIGS
    seed: int = 0
    batch_size: int = 4  # per step, over all processes
    learning_rate: float = 2e-4
    max_steps: int = 20_000
    lambda_fm: float = 10.0
    lambda_l1: float = 10.0
    lambda_vgg: float = 10.0  # only with vgg_weights
    vgg_weights: str | None = None  # a local VGG19 safetensors file; never downloaded
    discriminator_scales: int = 2
    checkpoint_every: int = 100
    sample_every: int = 200
    loader_workers: int = 2
    edges: bool = True  # False: the edge channel left empty (the paper's Fig. 7 ablation)
    snapshot_steps: tuple[int, ...] = ()  # also keep the renderer as it was at these steps, in step_NNNNNNN/
    precision: str = "auto"  # "fp32", "bf16" (autocast) or "auto" (render.runtime.resolve_precision)
    val_frames: int = 64  # validation frames scored (L1) at every checkpoint; the run keeps its best renderer
    renderer_overrides: dict = field(default_factory=dict)  # sizes that differ from the named config


def pick_device(device: str | None) -> torch.device:
    """The given device, else this process's GPU (``LOCAL_RANK`` under torchrun), else the CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


class StepBatches(torch.utils.data.Sampler):
    """This process's share of the batches from ``start`` on: the order is a function of
    (seed, epoch), so resuming continues the same sequence.

    ``draws``: each item is ``(frame index, draw)`` instead of the index alone, ``draw`` the
    sample's number over the whole run (``step × batch + position``), for a dataset whose items
    draw at random (reference mouths, mask neighbours) to seed those draws with: a run, resumed
    or not, then sees the same training pairs whatever its loader workers."""

    def __init__(self, n: int, batch: int, seed: int, start: int, stop: int, rank: int, world: int, draws: bool = False):
        self.n, self.batch, self.seed, self.start, self.stop, self.rank, self.world = n, batch, seed, start, stop, rank, world
        self.per_epoch, self.draws = n // batch, draws

    def __iter__(self):
        for step in range(self.start, self.stop):
            epoch, position = divmod(step, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            picks = order[position * self.batch:(position + 1) * self.batch].tolist()
            if self.draws:
                picks = [(index, step * self.batch + j) for j, index in enumerate(picks)]
            yield picks[self.rank::self.world]

    def __len__(self) -> int:
        return self.stop - self.start


def mixed_precision(precision: str, device: torch.device):
    """The autocast context of a training run: bf16 where :func:`resolve_precision` picks it."""
    try:
        precision = resolve_precision(precision, device)
    except ValueError as err:
        raise NewsanchorError(f"renderer training: {err}") from None
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def step_loader(frames: torch.utils.data.Dataset, config, start: int, rank: int, world: int,
                draws: bool = False) -> torch.utils.data.DataLoader:
    """This process's batches from step ``start`` to ``config.max_steps`` (see :class:`StepBatches`;
    ``draws``: the dataset is indexed by ``(index, draw)``)."""
    if not isinstance(frames, Sized):  # torch's Dataset declares no __len__; the frame datasets here have one
        raise TypeError(f"step_loader: {type(frames).__name__} has no length")
    sampler = StepBatches(len(frames), config.batch_size, config.seed, start, config.max_steps, rank, world, draws)
    return torch.utils.data.DataLoader(frames, batch_sampler=sampler, num_workers=config.loader_workers,
                                       persistent_workers=False,
                                       worker_init_fn=limit_blas_in_worker if config.loader_workers else None)


class RunLog:
    """``log.csv`` of a run (rank 0 only; other ranks write nothing): a header once, a row per checkpoint."""

    def __init__(self, out: Path, rank: int, header: list[str]):
        file = open(out / LOG, "a", newline="") if rank == 0 else None
        writer = csv.writer(file) if file else None
        if file and writer and file.tell() == 0:
            writer.writerow(header)
        self.file, self.writer = file, writer

    def row(self, values: list) -> None:
        if self.writer and self.file:  # both or neither
            self.writer.writerow(values)
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


def ddp(module: torch.nn.Module, world: int) -> torch.nn.Module:
    """The module wrapped for DistributedDataParallel when several processes train."""
    return DistributedDataParallel(module) if world > 1 else module


def _sample_grid(inputs: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> np.ndarray:
    """Rows of map | rendered | real for up to 4 items, RGB uint8."""
    rows = []
    for x, f, r in zip(inputs[:4], fake[:4], real[:4]):
        drawn = (x[:MAP_CHANNELS].amax(dim=0, keepdim=True) > -0.9).float().repeat(3, 1, 1) * 2 - 1
        rows.append(np.concatenate([to_image(drawn), to_image(f), to_image(r)], axis=1))
    return np.concatenate(rows, axis=0)


def _renderer_extra(dataset: PreparedDataset, config: RendererTrainConfig, step: int) -> dict:
    """What a saved renderer carries besides its weights: how to build its input, its provenance."""
    return {"input": {"edges": config.edges}, "dataset": str(dataset.root), "train_config": asdict(config), "step": step}


def _validation_batches(dataset: PreparedDataset, config: RendererTrainConfig) -> list[tuple[torch.Tensor, ...]]:
    """Up to ``val_frames`` frames evenly spread over the validation split, in batches."""
    frames = RendererFrames.split(dataset, "val", use_edges=config.edges)
    if config.val_frames <= 0 or len(frames) == 0:
        return []
    picks = np.unique(np.linspace(0, len(frames) - 1, min(config.val_frames, len(frames))).round().astype(int))
    items = [frames[int(i)] for i in picks]
    size = max(1, config.batch_size)
    return [tuple(torch.stack(t) for t in zip(*items[i:i + size])) for i in range(0, len(items), size)]


@torch.no_grad()
def _validation_l1(generator: torch.nn.Module, batches, device: torch.device, autocast) -> float:
    """Mean absolute error (in [-1, 1] units) of the generator on the validation batches."""
    was_training = generator.training
    generator.eval()
    total, count = 0.0, 0
    for inputs, real in batches:
        with autocast:
            fake = generator(inputs.to(device))
        total += float(F.l1_loss(fake.float(), real.to(device), reduction="sum"))
        count += real.numel()
    generator.train(was_training)
    return total / max(count, 1)


@dataclass
class GanModels:
    """The generator and discriminator of a run, their optimisers and the generator's config."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    config: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    @classmethod
    def on(cls, generator: torch.nn.Module, discriminator: torch.nn.Module, config: Any, learning_rate: float,
           device: torch.device) -> GanModels:
        """Both networks moved to ``device``, each with Adam (β = 0.5, 0.999, as pix2pixHD)."""
        generator.to(device)
        discriminator.to(device)
        betas = (0.5, 0.999)
        return cls(generator, discriminator, config, torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=betas),
                   torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=betas))

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}


def _build_models(config: RendererTrainConfig, device: torch.device) -> GanModels:
    """pix2pixHD's generator (map + appearance in) and multi-scale discriminator, with Adam."""
    overrides = {"in_channels": MAP_CHANNELS, "appearance_channels": APPEARANCE_CHANNELS} | config.renderer_overrides
    generator, renderer_config = build_renderer(config.config, **overrides)
    discriminator = MultiscaleDiscriminator(DiscriminatorConfig(in_channels=renderer_config.input_channels + 3,
                                                                num_scales=config.discriminator_scales))
    return GanModels.on(generator, discriminator, renderer_config, config.learning_rate, device)


def discriminator_update(d_model, optimizer: torch.optim.Optimizer, condition: torch.Tensor, real: torch.Tensor,
                         fake: torch.Tensor, autocast) -> torch.Tensor:
    """One LSGAN update of a conditional multi-scale discriminator on (condition, real) against
    (condition, fake) — in one forward, so one backward for DDP. Returns its loss."""
    with autocast:
        both = d_model(torch.cat([torch.cat([condition, real], 1), torch.cat([condition, fake.detach()], 1)]))
        n = len(real)
        loss_d = 0.5 * (lsgan_loss([[o[:n] for o in s] for s in both], True)
                        + lsgan_loss([[o[n:] for o in s] for s in both], False))
    optimizer.zero_grad(set_to_none=True)
    loss_d.backward()
    optimizer.step()
    return loss_d


def adversarial_terms(discriminator: torch.nn.Module, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                      autocast, lambda_fm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's LSGAN loss and feature matching (×``lambda_fm``) against a discriminator
    that is not updated by them. Returns ``(g_gan, g_fm)``."""
    for p in discriminator.parameters():
        p.requires_grad_(False)
    try:
        with autocast:
            fake_out = discriminator(torch.cat([condition, fake], 1))
            with torch.no_grad():
                real_out = discriminator(torch.cat([condition, real], 1))
            return lsgan_loss(fake_out, True), feature_matching_loss(real_out, fake_out, weight=lambda_fm)
    finally:
        for p in discriminator.parameters():
            p.requires_grad_(True)


def keep_best(counters: dict, key: str, value: float) -> bool:
    """Record a validation score (lower is better) in ``counters``; True when it is the best so far
    (or there is nothing to compare: NaN), and then ``counters[key]`` and ``best_step`` are updated."""
    best = counters.get(key)
    improved = value != value or best is None or value < best
    if improved:
        counters.update({key: None if value != value else value, "best_step": counters["step"]})
    return improved


def _train_step(models: GanModels, g_model, d_model, inputs: torch.Tensor, real: torch.Tensor,
                config: RendererTrainConfig, autocast, vgg) -> tuple[dict[str, float], torch.Tensor]:
    """One discriminator and one generator update; returns (losses, the generator's output)."""
    with autocast:
        fake = g_model(inputs)
    loss_d = discriminator_update(d_model, models.opt_d, inputs, real, fake, autocast)
    g_gan, g_fm = adversarial_terms(models.discriminator, inputs, real, fake, autocast, config.lambda_fm)
    with autocast:
        g_l1 = config.lambda_l1 * F.l1_loss(fake.float(), real)
        g_vgg = config.lambda_vgg * vgg(fake.float(), real) if vgg is not None else torch.zeros((), device=real.device)
    loss_g = g_gan + g_fm + g_l1 + g_vgg
    models.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    models.opt_g.step()
    losses = {"g_gan": g_gan.item(), "g_fm": g_fm.item(), "g_l1": g_l1.item(), "g_vgg": g_vgg.item(), "d": loss_d.item()}
    return losses, fake


def checkpoint(out: Path, models: GanModels, counters: dict, key: str, value: float, extra: dict) -> None:
    """Save the training state; the run's renderer becomes this step's if its validation score
    ``value`` (kept in ``counters[key]``) is the best so far (adversarial training does not
    improve monotonically). The saved renderer's ``extra`` gets the score under ``key`` less "best_"."""
    improved = keep_best(counters, key, value)
    save_train_state(out, models.modules, models.optimizers, counters)
    if improved:
        save_renderer(out, models.generator, models.config, extra | {key.removeprefix("best_"): counters[key]})


def train_renderer(dataset_dir: str | Path, out: str | Path, config: RendererTrainConfig, *, device: str | None = None,
                   on_step=None) -> dict:
    """Train a renderer on the dataset's training split into the run directory ``out``."""
    rank, world = distributed()
    out, device_t = Path(out), pick_device(device)
    torch.manual_seed(config.seed)
    dataset = PreparedDataset(dataset_dir)
    frames = RendererFrames.split(dataset, "train", use_edges=config.edges)
    if len(frames) < config.batch_size:
        raise NewsanchorError(f"{dataset.root}: {len(frames)} training frames, fewer than a batch")
    models = _build_models(config, device_t)
    counters = {"step": 0}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=1))
    restored = load_train_state(out, models.modules, models.optimizers, device_t) if out.is_dir() else None
    if restored is not None:
        counters = restored
    vgg = VGGPerceptualLoss(config.vgg_weights).to(device_t) if config.vgg_weights else None
    g_model, d_model = ddp(models.generator, world), ddp(models.discriminator, world)
    autocast = mixed_precision(config.precision, device_t)
    loader = step_loader(frames, config, counters["step"], rank, world)
    val_batches = _validation_batches(dataset, config) if rank == 0 else []
    log = RunLog(out, rank, ["step", "g_gan", "g_fm", "g_l1", "g_vgg", "d", "val_l1", "seconds"])
    started = time.perf_counter()
    try:
        for inputs, real in loader:
            inputs, real = inputs.to(device_t), real.to(device_t)
            losses, fake = _train_step(models, g_model, d_model, inputs, real, config, autocast, vgg)
            counters["step"] += 1
            step = counters["step"]
            if on_step and rank == 0:
                on_step(step, config.max_steps, losses)
            if rank != 0:
                continue
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                val_l1 = _validation_l1(models.generator, val_batches, device_t, autocast) if val_batches else float("nan")
                log.row([step] + [f"{losses[k]:.5g}" for k in ("g_gan", "g_fm", "g_l1", "g_vgg", "d")]
                        + [f"{val_l1:.5g}", round(time.perf_counter() - started, 1)])
                checkpoint(out, models, counters, "best_val_l1", val_l1, _renderer_extra(dataset, config, step))
            if step in config.snapshot_steps:
                save_renderer(out / f"step_{step:07d}", models.generator, models.config, _renderer_extra(dataset, config, step))
            if step % config.sample_every == 0:
                cv2.imwrite(str(out / f"sample_{step:07d}.png"), cv2.cvtColor(_sample_grid(inputs, fake, real), cv2.COLOR_RGB2BGR))
    finally:
        log.close()
    return counters
