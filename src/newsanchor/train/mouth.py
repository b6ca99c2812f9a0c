"""Training of the audio→mouth models (paper §3.1.2, Eq. 1–4), resumable, with early stopping.

Loss: λ1·L2 + λ2·L_int (+ λ_gan·L_GAN for ``tcn-gan``). L2 and L_int are means over the window's
elements where the paper (Eq. 1–2) writes squared Frobenius norms, i.e. sums over 50 × 10
values. λ1 = 100, λ2 = 1 keep the paper's 100:1 ratio either way, but the adversarial term is
not a sum: to weigh it against the regression terms as Eq. 4 does, its weight is divided by the
same 500, λ_gan = 1/500 = 0.002. (With λ_gan = 1 against means, the adversarial gradient
outweighs L2 by ~100× and validation MSE rises after one epoch: measured on GRID s1.) GAN variant: least squares
(LSGAN, as in pix2pixHD) on the discriminator's per-frame logits — a temporal PatchGAN over
audio and mouth together; BCE (the paper's Eq. 3) is available as ``gan_loss: bce``.

Data order is a function of (seed, epoch), and the full state (models, optimisers, counters)
is saved at every evaluation, so an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..audio2mouth.checkpoint import save_mouth_model
from ..audio2mouth.registry import MODELS, build_model
from ..audio2mouth.silence import closed_mouth_pose, speech_activity
from ..dataset import PreparedDataset
from ..errors import NewsanchorError
from ..features.mouth import mouth_size
from ..dataset import dataset_split
from .mouth_data import WindowSet, load_features
from .state import load_train_state, save_train_state

LOG = "log.csv"


@dataclass(frozen=True)
class MouthTrainConfig:
    model: str = "tcn-gan"
    seed: int = 0
    batch_size: int = 64
    learning_rate: float = 1e-3
    stride: int = 5  # frames between the starts of training windows
    max_epochs: float = 20.0
    max_steps: int = 0  # 0: no limit (tests and quick trials set one)
    evals_per_epoch: int = 4
    patience: int = 6  # evaluations without a better validation MSE before stopping
    lambda_l2: float = 100.0
    lambda_int: float = 1.0
    lambda_gan: float = 0.002  # adversarial models only: the paper's 1, over the 500 values L2 averages
    gan_loss: str = "lsgan"  # "lsgan" or "bce"
    discriminator_learning_rate: float = 1e-4
    grad_clip: float = 1.0
    model_overrides: dict = field(default_factory=dict)  # sizes that differ from the paper's (e.g. tiny test models)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.gan_loss not in ("lsgan", "bce"):
            raise ValueError(f"gan_loss must be 'lsgan' or 'bce', not {self.gan_loss!r}")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _gan_loss(logits: torch.Tensor, real: bool, kind: str) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def regression_losses(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 (Eq. 1) and inter-frame L2 (Eq. 2) as means; pred, target [B, T, K]."""
    l2 = F.mse_loss(pred, target)
    inter = F.mse_loss(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1])
    return l2, inter


class MouthTrainer:
    """Owns the models, optimisers and losses of one run directory."""

    def __init__(self, dataset: PreparedDataset, out: Path, config: MouthTrainConfig, device: torch.device | None = None):
        self.dataset, self.out, self.config = dataset, Path(out), config
        self.device = device or default_device()
        torch.manual_seed(config.seed)
        features = load_features(dataset)
        split = dataset_split(dataset)
        self.train_set = WindowSet(features, split["train"], config.stride)
        self.val_set = WindowSet(features, split["val"], stride=25)
        if len(self.train_set) < config.batch_size or not len(self.val_set):
            raise NewsanchorError(f"{dataset.root}: too little data for training windows "
                                  f"({len(self.train_set)} training, {len(self.val_set)} validation windows of 2 s)")
        self.spec = MODELS[config.model]
        self.generator, self.model_config = build_model(config.model, **config.model_overrides)
        self.generator.to(self.device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.learning_rate)
        self.modules = {"generator": self.generator}
        self.optimizers = {"generator": self.opt_g}
        self.discriminator = None
        discriminator_class = self.spec.discriminator_class
        if self.spec.adversarial:
            if discriminator_class is None:  # every adversarial model of the registry names one
                raise NewsanchorError(f"mouth model {config.model!r}: adversarial, but without a discriminator")
            self.discriminator = discriminator_class(self.model_config).to(self.device)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_learning_rate, betas=(0.5, 0.999))
            self.modules["discriminator"] = self.discriminator
            self.optimizers["discriminator"] = self.opt_d
        self.steps_per_epoch = len(self.train_set) // config.batch_size
        self._closed_mouth: list[float] | None = None
        # saved with the training state as JSON, and read back from it
        self.counters: dict[str, Any] = {"step": 0, "best_val_mse": float("inf"), "best_step": 0, "evals_since_best": 0, "done": False}

    # -- one step -------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.train_set))
        return order[position * self.config.batch_size:(position + 1) * self.config.batch_size]

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.config
        mfcc, mouth = (torch.from_numpy(a).to(self.device) for a in self.train_set.batch(self.batch_indices(step)))
        self.generator.train()
        pred = self.generator(mfcc)
        losses = {}
        if self.discriminator is not None:
            self.discriminator.train()
            d_real = self.discriminator(mfcc, mouth)
            d_fake = self.discriminator(mfcc, pred.detach())
            loss_d = 0.5 * (_gan_loss(d_real, True, cfg.gan_loss) + _gan_loss(d_fake, False, cfg.gan_loss))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), cfg.grad_clip)
            self.opt_d.step()
            losses["d"] = loss_d.item()
        l2, inter = regression_losses(pred, mouth)
        loss = cfg.lambda_l2 * l2 + cfg.lambda_int * inter
        if self.discriminator is not None:
            adversarial = _gan_loss(self.discriminator(mfcc, pred), True, cfg.gan_loss)
            loss = loss + cfg.lambda_gan * adversarial
            losses["g_adv"] = adversarial.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), cfg.grad_clip)
        self.opt_g.step()
        losses.update(loss=loss.item(), l2=l2.item(), int=inter.item())
        return losses

    @torch.inference_mode()
    def validate(self) -> float:
        """Mean squared error in PCA space over the validation windows."""
        self.generator.eval()
        total, count = 0.0, 0
        for start in range(0, len(self.val_set), 256):
            mfcc, mouth = self.val_set.batch(range(start, min(start + 256, len(self.val_set))))
            pred = self.generator(torch.from_numpy(mfcc).to(self.device)).float().cpu().numpy()
            total += float(((pred - mouth) ** 2).sum())
            count += pred.size
        return total / count

    # -- the loop -------------------------------------------------------------------------------
    def closed_mouth(self) -> list[float]:
        """The speaker's closed-mouth pose [K] in PCA space, from the training clips' pauses
        (speech activity < 0.5) with the smallest inner-lip openings: what inference eases to in
        silence."""
        features, activity, opening = [], [], []
        for clip in self.dataset.clips:
            arrays = self.dataset.arrays(clip["id"])
            frames = clip["frames"]
            features.append(self.dataset.mouth_pca.transform(arrays["mouth"]))
            activity.append(speech_activity(arrays["audio"].astype(np.float32) / 32767, frames))
            opening.append(mouth_size(arrays["mouth"])[:, 1])
        return closed_mouth_pose(np.concatenate(features), activity=np.concatenate(activity),
                                 opening=np.concatenate(opening)).tolist()

    def checkpoint_extra(self) -> dict:
        if self._closed_mouth is None:
            self._closed_mouth = self.closed_mouth()
        return {
            "mfcc_stats": self.dataset.mfcc_stats.to_dict(),
            "closed_mouth": self._closed_mouth,
            "mouth_pca": {"n_components": self.dataset.mouth_pca.n_components},
            "dataset": str(self.dataset.root),
            "train_config": asdict(self.config),
        }

    def run(self, on_step: Callable[[int, int, dict], None] | None = None) -> dict:
        """Train until validation stops improving (or the epoch/step limit); returns the counters."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(json.dumps(asdict(self.config), indent=1))
        restored = load_train_state(self.out, self.modules, self.optimizers, self.device)
        if restored is not None:
            self.counters = restored
        cfg = self.config
        total_steps = max(1, int(cfg.max_epochs * self.steps_per_epoch))
        if cfg.max_steps:
            total_steps = min(total_steps, cfg.max_steps)
        eval_every = max(1, self.steps_per_epoch // cfg.evals_per_epoch)
        new_log = not (self.out / LOG).exists()
        with open(self.out / LOG, "a", newline="") as log_file:
            log = csv.writer(log_file)
            if new_log:
                log.writerow(["step", "epoch", "loss", "l2", "int", "g_adv", "d", "val_mse", "seconds"])
            running: dict[str, list[float]] = {}
            started = time.perf_counter()
            while not self.counters["done"] and self.counters["step"] < total_steps:
                step = self.counters["step"]
                losses = self.train_step(step)
                self.counters["step"] = step + 1
                for key, value in losses.items():
                    running.setdefault(key, []).append(value)
                if on_step:
                    on_step(step + 1, total_steps, losses)
                if (step + 1) % eval_every == 0 or step + 1 == total_steps:
                    val = self.validate()
                    self._after_eval(val)
                    mean = {k: float(np.mean(v)) for k, v in running.items()}
                    log.writerow([step + 1, round((step + 1) / self.steps_per_epoch, 3)]
                                 + [f"{mean.get(k, float('nan')):.6g}" for k in ("loss", "l2", "int", "g_adv", "d")]
                                 + [f"{val:.6g}", round(time.perf_counter() - started, 1)])
                    log_file.flush()
                    running = {}
                    save_train_state(self.out, self.modules, self.optimizers, self.counters)
        return self.counters

    def _after_eval(self, val_mse: float) -> None:
        if val_mse < self.counters["best_val_mse"]:
            self.counters.update(best_val_mse=val_mse, best_step=self.counters["step"], evals_since_best=0)
            save_mouth_model(self.out, self.config.model, self.generator, self.model_config, self.checkpoint_extra())
        else:
            self.counters["evals_since_best"] += 1
            if self.counters["evals_since_best"] >= self.config.patience:
                self.counters["done"] = True


def train_mouth(dataset_dir: str | Path, out: str | Path, config: MouthTrainConfig, *, device: str | None = None,
                on_step=None) -> dict:
    """Train one audio→mouth model on a prepared dataset into the run directory ``out``."""
    trainer = MouthTrainer(PreparedDataset(dataset_dir), Path(out), config, torch.device(device) if device else None)
    return trainer.run(on_step)


__all__ = ["MouthTrainConfig", "MouthTrainer", "train_mouth", "regression_losses"]
