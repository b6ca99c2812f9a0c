"""``newsanchor train mouth|renderer``: the two models of an anchor from a prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import NewsanchorError
from ..progress import done_of_total
from .common import frame_progress, step_progress, stderr, user_errors


def train_mouth_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `newsanchor prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (re-running resumes it).")],
    model: Annotated[str, typer.Option(help="tcn-gan (the paper's), tcn, lstm or bilstm.")] = "tcn-gan",
    seed: Annotated[int, typer.Option(help="Seed of the weights and the data order.")] = 0,
    config: Annotated[Optional[Path], typer.Option(help="YAML file with training settings (see configs/train_mouth.yaml).")] = None,
    max_epochs: Annotated[Optional[float], typer.Option(help="Stop after this many epochs at the latest.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an audio→mouth model (MFCC → PCA mouth), with early stopping on validation."""
    from ..config import load_settings
    from ..train.mouth import MouthTrainConfig, train_mouth

    with user_errors(resumable=True):
        overrides: dict[str, Any] = {"model": model, "seed": seed} | ({"max_epochs": max_epochs} if max_epochs is not None else {})
        settings = load_settings(MouthTrainConfig, config, overrides)
        with step_progress(f"train {settings.model}", quiet) as on_step:
            counters = train_mouth(dataset, out, settings, device=device, on_step=on_step)
        stderr.print(f"{out}: best validation MSE {counters['best_val_mse']:.5f} at step {counters['best_step']} "
                     f"of {counters['step']}", markup=False, soft_wrap=True)


def train_renderer_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `newsanchor prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (re-running resumes it).")],
    preset: Annotated[str, typer.Option(help="Renderer: lower-face-bank (the default: renders the nose-to-chin region from the presenter's own pixels, mixing its painting per pixel with the stored mouth shaped most like each frame's; real time on a CPU), lower-face (three fixed reference mouths, painted over) or lower-face-nearest (the three nearest of the stored mouths), light-256 or full-512 (the paper's whole-face pix2pixHD).")] = "lower-face-bank",
    config: Annotated[Optional[Path], typer.Option(help="YAML file with training settings (see configs/train_renderer.yaml); the options below override it.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Training steps in all (a resumed run counts the steps it has; default 20,000, lower-face 6,000).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Frames per step, over all processes (default 4, lower-face 8).")] = None,
    vgg_weights: Annotated[Optional[Path], typer.Option(help="Local VGG19 safetensors file for the perceptual loss (never downloaded).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the weights and the data order (default 0).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="auto (bf16 autocast on CUDA and CPUs with native bf16, else fp32; the default), fp32 or bf16.")] = None,
    edges: Annotated[Optional[bool], typer.Option("--edges/--no-edges", help="Feed the template's edge channel (the default; --no-edges: the paper's Fig. 7 ablation).")] = None,
    upsample: Annotated[Optional[str], typer.Option(help="Decoder upsampling: nearest (upsample + conv, the default) or transposed (pix2pixHD's; ~20% fewer FLOPs).")] = None,
    snapshot_steps: Annotated[Optional[str], typer.Option(help="Comma-separated steps at which to keep a copy of the renderer in RUN/step_NNNNNNN (for equal-budget comparisons).")] = None,
    loader_workers: Annotated[Optional[int], typer.Option(help="Processes decoding training frames (default 2; lower-face 1, which reads a cache).")] = None,
    references: Annotated[Optional[bool], typer.Option("--references/--no-references", help="lower-face: read reference mouths of the presenter (the default; --no-references: the ablation).")] = None,
    masked_frame: Annotated[Optional[bool], typer.Option("--masked-frame/--no-masked-frame", help="lower-face: read the frame's own region with the lower face masked (the default; --no-masked-frame: the ablation).")] = None,
    reference_warp: Annotated[Optional[str], typer.Option(help="lower-face: bring the reference mouths onto each frame by the head pose only (head), also bend them onto its mouth (mouth, the default), or bend them and keep only the mouth and chin (mouth-only) or only the face inside the jaw (face-only).")] = None,
    head: Annotated[Optional[str], typer.Option(help="lower-face: paint every pixel (rgb) or mix painted colour and reference mouths per pixel (blend); default: the preset's.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a renderer (facial map → face); run under torchrun for several GPUs or nodes."""
    from ..config import settings_for_preset
    from ..render.lower_face import LOWER_FACE_CONFIGS
    from ..train.renderer import RendererTrainConfig, train_renderer

    with user_errors(resumable=True):
        try:
            snapshots = tuple(int(step) for step in (snapshot_steps or "").split(",") if step.strip())
        except ValueError:
            raise NewsanchorError(f"--snapshot-steps: expected comma-separated step numbers, got {snapshot_steps!r}") from None
        from ..render.pix2pixhd import RENDERER_CONFIGS, UPSAMPLE_MODES

        if preset not in LOWER_FACE_CONFIGS and preset not in RENDERER_CONFIGS:
            raise NewsanchorError(f"--preset {preset}: choose one of {', '.join([*LOWER_FACE_CONFIGS, *RENDERER_CONFIGS])}")
        if upsample is not None and upsample not in UPSAMPLE_MODES:
            raise NewsanchorError(f"--upsample {upsample}: expected one of {', '.join(UPSAMPLE_MODES)}")
        lower_face = preset in LOWER_FACE_CONFIGS
        if not lower_face and (reference_warp or head or references is not None or masked_frame is not None):
            raise NewsanchorError(f"--preset {preset}: --reference-warp, --head, --references and --masked-frame "
                                  "are lower-face options")
        if lower_face and (vgg_weights or upsample):
            raise NewsanchorError(f"--preset {preset}: --vgg-weights and --upsample are pix2pixHD options")
        # the file's settings, then the options given on the command line
        given: dict[str, Any] = {"max_steps": max_steps, "batch_size": batch_size, "seed": seed, "precision": precision, "edges": edges,
                 "loader_workers": loader_workers}
        given = {k: v for k, v in given.items() if v is not None} | ({"snapshot_steps": snapshots} if snapshot_steps else {})
        if lower_face:
            from ..train.lower_face import LowerFaceTrainConfig, cache_regions, train_lower_face

            given |= {k: v for k, v in (("references", references), ("masked_frame", masked_frame)) if v is not None}
            lower = settings_for_preset(LowerFaceTrainConfig, config, preset, given,
                                       {"reference_warp": reference_warp, "head": head})
            with frame_progress("cut training regions", not quiet) as progress:
                cache_regions(dataset, out, lower, on_frames=done_of_total(progress))
            with step_progress(f"train renderer {preset}", quiet) as on_step:
                counters = train_lower_face(dataset, out, lower, device=device, on_step=on_step)
            stderr.print(f"{out}: renderer trained to step {counters['step']} (best on validation: step "
                         f"{counters.get('best_step')})", markup=False, soft_wrap=True)
            return
        if vgg_weights:
            given["vgg_weights"] = str(vgg_weights)
        settings = settings_for_preset(RendererTrainConfig, config, preset, given, {"upsample": upsample})
        with step_progress(f"train renderer {preset}", quiet) as on_step:
            counters = train_renderer(dataset, out, settings, device=device, on_step=on_step)
        stderr.print(f"{out}: renderer trained to step {counters['step']}", markup=False, soft_wrap=True)
