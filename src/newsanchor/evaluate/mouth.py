"""Audio→mouth evaluation (paper §4.3): Table 1 (MSE, MAE, Int-MSE, landmark error), Table 2
(training and inference time, side by side in one process) and Figure 5 (MSE per window position).

Every model is scored on the dataset's fixed test split (``train.mouth_data``) with the inference
a user gets (overlapping windows, ``audio2mouth.infer.predict_mouth``). Runs of the same model
(seeds) are averaged; each model is compared with the TCN-GAN by a paired bootstrap over test
clips, and the mean predictor (the training mean for every frame) is the floor.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from ..audio2mouth.checkpoint import load_mouth_model
from ..audio2mouth.infer import predict_mouth
from ..audio2mouth.registry import MODELS, build_model
from ..dataset import PreparedDataset
from ..errors import NewsanchorError
from ..features.mouth import face_pose, denormalise_mouth, MOUTH
from ..dataset import dataset_split
from ..train.mouth_data import WINDOW, WindowSet, load_features

REFERENCE = "tcn-gan"


@dataclass
class ClipErrors:
    """Sums over one test clip's face-found frames (so clips can be resampled and re-added)."""

    se: float = 0.0  # squared error, summed over frames and components
    ae: float = 0.0
    values: int = 0  # frames × components
    int_se: float = 0.0  # squared error of frame-to-frame differences (Eq. 5)
    int_values: int = 0
    px: float = 0.0  # mouth landmark distance in crop pixels, summed over points
    points: int = 0


def _clip_errors(pred: np.ndarray, target: np.ndarray, found: np.ndarray, landmarks: np.ndarray, pca) -> ClipErrors:
    """pred, target [T, K]; found [T]; landmarks [T, 68, 2] (crop pixels, the reference)."""
    e = ClipErrors()
    diff = (pred - target)[found]
    e.se, e.ae, e.values = float((diff ** 2).sum()), float(np.abs(diff).sum()), diff.size
    pairs = found[1:] & found[:-1]
    vel = ((pred[1:] - pred[:-1]) - (target[1:] - target[:-1]))[pairs]
    e.int_se, e.int_values = float((vel ** 2).sum()), vel.size
    if found.any():
        pose = face_pose(landmarks[found].astype(np.float64))
        placed = denormalise_mouth(pca.inverse(pred[found]), pose)
        e.px = float(np.linalg.norm(placed - landmarks[found][:, MOUTH], axis=-1).sum())
        e.points = placed.shape[0] * placed.shape[1]
    return e


def _metrics(errors: list[ClipErrors]) -> dict[str, float]:
    values = sum(e.values for e in errors)
    return {
        "mse": sum(e.se for e in errors) / values,
        "mae": sum(e.ae for e in errors) / values,
        "int_mse": sum(e.int_se for e in errors) / max(sum(e.int_values for e in errors), 1),
        "landmark_px": sum(e.px for e in errors) / max(sum(e.points for e in errors), 1),
    }


def _mean_over_seeds(per_run: list[list[ClipErrors]]) -> list[ClipErrors]:
    """Per clip, the average of the runs' error sums (the seed-averaged model, clip by clip)."""
    merged = []
    for clip_runs in zip(*per_run):
        m = ClipErrors()
        for field in ("se", "ae", "int_se", "px"):
            setattr(m, field, float(np.mean([getattr(c, field) for c in clip_runs])))
        m.values, m.int_values, m.points = clip_runs[0].values, clip_runs[0].int_values, clip_runs[0].points
        merged.append(m)
    return merged


class Bootstrap(TypedDict):
    """:func:`paired_bootstrap`'s result."""

    relative_difference: float
    ci95: list[float]


def paired_bootstrap(model: list[ClipErrors], reference: list[ClipErrors], *, key: str = "mse",
                     samples: int = 2000, seed: int = 0) -> Bootstrap:
    """Relative difference of ``key`` (model / reference − 1) with a 95% interval from resampling
    test clips with replacement (the same clips for both)."""
    rng = np.random.default_rng(seed)
    n = len(model)
    diffs = []
    for _ in range(samples):
        pick = rng.integers(0, n, n)
        a = _metrics([model[i] for i in pick])[key]
        b = _metrics([reference[i] for i in pick])[key]
        diffs.append(a / b - 1)
    point = _metrics(model)[key] / _metrics(reference)[key] - 1
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"relative_difference": point, "ci95": [float(lo), float(hi)]}


def median_seconds(fn, repeat: int = 5, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def timing_table(model_names: list[str], batch_size: int = 64, seconds_of_audio: float = 60.0) -> dict[str, dict]:
    """Table 2: one training step (batch of 2-s windows: forward, backward, Adam) and inference
    for ``seconds_of_audio`` of speech, for each model, measured here side by side."""
    from ..train.mouth import regression_losses  # timing a training step needs the trainer's loss

    rng = np.random.default_rng(0)
    audio = rng.standard_normal((int(seconds_of_audio * 100), 13)).astype(np.float32)
    mfcc = torch.from_numpy(rng.standard_normal((batch_size, 4 * WINDOW, 13)).astype(np.float32))
    table = {}
    for name in model_names:
        model, _ = build_model(name)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        target = torch.zeros(batch_size, WINDOW, model(mfcc[:1]).shape[-1])

        def step():
            model.train()
            l2, inter = regression_losses(model(mfcc), target)
            optimizer.zero_grad()
            (100 * l2 + inter).backward()
            optimizer.step()

        table[name] = {
            "batch_training_s": median_seconds(step),
            "inference_60s_audio_s": median_seconds(lambda: predict_mouth(model.eval(), audio)),
        }
    return table


def evaluate_mouth(dataset_dir: str | Path, runs: Sequence[str | Path], *, bootstrap_samples: int = 2000,
                   timing: bool = True) -> dict:
    """Table 1 (+ Table 2 and Figure 5 data) for the runs on the dataset's test split."""
    models = [load_mouth_model(run) for run in runs]  # unreadable runs fail before any work
    dataset = PreparedDataset(dataset_dir)
    features = load_features(dataset)
    split = dataset_split(dataset)
    test = split["test"]
    if not test:
        raise NewsanchorError(f"{dataset.root}: the test split is empty ({len(dataset.clips)} clips are too few "
                              "to hold out whole clips); prepare more recordings")
    pca = dataset.mouth_pca
    landmarks = {seg.clip: dataset.arrays(seg.clip)["landmarks"] for seg in test}

    def score(predict) -> list[ClipErrors]:
        out = []
        for seg in test:
            f = features[seg.clip]
            pred = predict(f.mfcc[4 * seg.start:4 * seg.stop])
            out.append(_clip_errors(pred, f.mouth[seg.start:seg.stop], f.found[seg.start:seg.stop],
                                    landmarks[seg.clip][seg.start:seg.stop], pca))
        return out

    train_frames = [(features[s.clip].mouth[s.start:s.stop])[features[s.clip].found[s.start:s.stop]] for s in split["train"]]
    mean_mouth = np.concatenate(train_frames).mean(axis=0)
    mean_errors = score(lambda m: np.repeat(mean_mouth[None], len(m) // 4, axis=0))

    per_model: dict[str, list[list[ClipErrors]]] = defaultdict(list)
    positions: dict[str, list[np.ndarray]] = defaultdict(list)
    windows = WindowSet(features, test, stride=WINDOW)
    for model, name, _, _ in models:
        model.eval()
        per_model[name].append(score(lambda m: predict_mouth(model, m)))  # as a user's audio is run
        if len(windows):  # Figure 5: one 50-frame window at a time, no overlap
            win_mfcc, win_mouth = windows.batch(range(len(windows)))
            with torch.inference_mode():
                pred = model(torch.from_numpy(win_mfcc)).float().numpy()
            positions[name].append(((pred - win_mouth) ** 2).mean(axis=(0, 2)))

    result: dict = {"models": {}, "mean_predictor": _metrics(mean_errors),
                    "test": {"clips": len(test), "frames": int(sum(len(s) for s in test)), "windows": len(windows)}}
    merged = {name: _mean_over_seeds(r) for name, r in per_model.items()}
    for name, errors in merged.items():
        entry: dict[str, Any] = _metrics(errors)
        entry["seeds"] = len(per_model[name])
        entry["per_seed"] = [_metrics(r) for r in per_model[name]]
        entry["vs_mean_predictor"] = entry["mse"] / result["mean_predictor"]["mse"] - 1
        if REFERENCE in merged and name != REFERENCE:
            entry[f"vs_{REFERENCE}"] = {k: paired_bootstrap(errors, merged[REFERENCE], key=k, samples=bootstrap_samples)
                                        for k in ("mse", "int_mse")}
        entry["mse_per_window_position"] = np.mean(positions[name], axis=0).tolist() if positions[name] else []
        result["models"][name] = entry
    if timing:
        result["table2"] = timing_table([n for n in MODELS if n in merged] or list(MODELS))
    return result


def markdown_tables(result: dict) -> str:
    lines = ["| model | seeds | MSE | MAE | Int-MSE | mouth landmarks (px) | MSE vs TCN-GAN (95% CI) | MSE vs mean predictor |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        vs = m.get(f"vs_{REFERENCE}", {}).get("mse")
        vs_text = f"{100 * vs['relative_difference']:+.1f}% [{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}]" if vs else "—"
        lines.append(f"| {name} | {m['seeds']} | {m['mse']:.5f} | {m['mae']:.4f} | {m['int_mse']:.5f} | "
                     f"{m['landmark_px']:.2f} | {vs_text} | {100 * m['vs_mean_predictor']:+.1f}% |")
    mp = result["mean_predictor"]
    lines.append(f"| mean predictor | – | {mp['mse']:.5f} | {mp['mae']:.4f} | {mp['int_mse']:.5f} | {mp['landmark_px']:.2f} | | |")
    text = "### Table 1 — audio→mouth accuracy on the test split\n\n" + "\n".join(lines) + "\n"
    if "table2" in result:
        rows = ["| model | batch training (s) | inference, 60 s of audio (s) |", "|---|---|---|"]
        for name, t in result["table2"].items():
            rows.append(f"| {name} | {t['batch_training_s']:.4f} | {t['inference_60s_audio_s']:.4f} |")
        text += "\n### Table 2 — training and inference time (this machine, one process)\n\n" + "\n".join(rows) + "\n"
    return text


def plot_window_positions(result: dict, path: str | Path) -> None:
    """Figure 5: test MSE at each of the 50 positions of an output window, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for name, m in result["models"].items():
        ax.plot(np.arange(1, WINDOW + 1), m["mse_per_window_position"], label=name)
    ax.set_xlabel("position in the 50-frame output window")
    ax.set_ylabel("MSE (PCA space)")
    ax.set_title("MSE per window position (paper Fig. 5)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
