"""The ``newsanchor`` command line: one subcommand → one library function.

Errors the user can act on are printed as one line on stderr with a non-zero exit; progress goes
to stderr, machine-readable results (``--json``) to stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__, cli_anchor
from .cli_common import frame_progress, step_progress, stderr, user_errors
from .errors import NewsanchorError
from .progress import done_of_total

app = typer.Typer(
    name="newsanchor",
    help="A virtual news anchor from a consenting person's own recordings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"newsanchor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Turn news text or speech into a video of a specific, consenting person reading it."""


@app.command()
def prepare(
    inputs: Annotated[list[Path], typer.Argument(help="Video files of the person (mp4, mov, mkv, webm, mpg…) or folders of them.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to write (re-running resumes it, and adds other inputs to its clips).")],
    size: Annotated[Optional[int], typer.Option(help="Face crop side in pixels: 512 (the paper's) or 256 for small faces and CPU work.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file with preparation settings (see configs/prepare.yaml).")] = None,
    workers: Annotated[int, typer.Option(help="Clips prepared in parallel (0: one per CPU core).")] = 0,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out unusable inputs (listed in the manifest) instead of stopping.")] = False,
    replace_clips: Annotated[bool, typer.Option("--replace", help="Make the dataset these inputs' clips only: remove (and name) its earlier clips of other recordings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line with the dataset's figures.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Turn recordings into a training dataset: face crops, landmarks, mouth PCA, MFCC, edges."""
    from dataclasses import replace

    from .config import PrepareConfig, load_yaml
    from .prepare import prepare as prepare_dataset

    with user_errors(resumable=True):
        settings = load_yaml(PrepareConfig, config) if config else PrepareConfig()
        if size is not None:
            try:
                settings = replace(settings, size=size)
            except ValueError as err:
                raise NewsanchorError(f"--size: {err}") from None
        started = time.perf_counter()
        with frame_progress("prepare", enabled=not quiet) as factory:
            manifest = prepare_dataset(inputs, out, settings, workers=workers, skip_bad=skip_bad, replace=replace_clips,
                                       progress_factory=factory, warn=lambda m: stderr.print(m, markup=False, soft_wrap=True))
        elapsed = time.perf_counter() - started
        totals = manifest["totals"]
        summary = {
            "dataset": str(out),
            "clips": totals["clips"],
            "video_frames": totals["video_frames"],
            "mfcc_frames": totals["mfcc_frames"],
            "face_found_ratio": totals["face_found_ratio"],
            "pca_explained_variance": manifest["mouth_pca"]["total_explained_variance"],
            "minutes": totals["minutes"],
            "mb_per_minute": totals["mb_per_minute"],
            "skipped": len(manifest["skipped"]),
            "elapsed_s": round(elapsed, 2),
        }
        if as_json:
            print(json.dumps(summary))
        else:
            stderr.print(
                f"{out}: {summary['clips']} clips, {summary['video_frames']} frames "
                f"({summary['minutes']:.1f} min), face found in {100 * summary['face_found_ratio']:.1f}% of frames, "
                f"PCA-{manifest['mouth_pca']['n_components']} explains {100 * summary['pca_explained_variance']:.1f}%, "
                f"{summary['mb_per_minute']:.0f} MB per minute", markup=False, soft_wrap=True,
            )


train_app = typer.Typer(help="Train the models of an anchor from a prepared dataset.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure trained models on a dataset's held-out test split.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
export_app = typer.Typer(help="Write trained models in other formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@train_app.command("mouth")
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
    from dataclasses import replace

    from .config import load_yaml
    from .train.mouth import MouthTrainConfig, train_mouth

    with user_errors(resumable=True):
        settings = load_yaml(MouthTrainConfig, config) if config else MouthTrainConfig()
        overrides = {"model": model, "seed": seed} | ({"max_epochs": max_epochs} if max_epochs is not None else {})
        try:
            settings = replace(settings, **overrides)
        except ValueError as err:
            raise NewsanchorError(str(err)) from None
        with step_progress(f"train {settings.model}", quiet) as on_step:
            counters = train_mouth(dataset, out, settings, device=device, on_step=on_step)
        stderr.print(f"{out}: best validation MSE {counters['best_val_mse']:.5f} at step {counters['best_step']} "
                     f"of {counters['step']}", markup=False, soft_wrap=True)


@train_app.command("renderer")
def train_renderer_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory written by `newsanchor prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (re-running resumes it).")],
    preset: Annotated[str, typer.Option(help="Renderer: lower-face (renders the nose-to-chin region from the presenter's own pixels; real time on a CPU), light-256 or full-512 (the paper's whole-face pix2pixHD).")] = "lower-face",
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
    reference_warp: Annotated[Optional[str], typer.Option(help="lower-face: bring the reference mouths onto each frame by the head pose only (head) or also bend them onto its mouth (mouth, the default).")] = None,
    head: Annotated[Optional[str], typer.Option(help="lower-face: paint every pixel (rgb) or mix painted colour and reference mouths per pixel (blend); default: the preset's.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a renderer (facial map → face); run under torchrun for several GPUs or nodes."""
    from .render.lower_face import LOWER_FACE_CONFIGS
    from .train.renderer import RendererTrainConfig, train_renderer

    with user_errors(resumable=True):
        try:
            snapshots = tuple(int(step) for step in (snapshot_steps or "").split(",") if step.strip())
        except ValueError:
            raise NewsanchorError(f"--snapshot-steps: expected comma-separated step numbers, got {snapshot_steps!r}") from None
        from .render.pix2pixhd import RENDERER_CONFIGS, UPSAMPLE_MODES

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
        given = {"max_steps": max_steps, "batch_size": batch_size, "seed": seed, "precision": precision, "edges": edges,
                 "loader_workers": loader_workers}
        given = {k: v for k, v in given.items() if v is not None} | ({"snapshot_steps": snapshots} if snapshot_steps else {})
        if lower_face:
            from .train.lower_face import LowerFaceTrainConfig, cache_regions, train_lower_face

            given |= {k: v for k, v in (("references", references), ("masked_frame", masked_frame)) if v is not None}
            lower = _training_settings(LowerFaceTrainConfig, config, preset, given,
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
        settings = _training_settings(RendererTrainConfig, config, preset, given, {"upsample": upsample})
        with step_progress(f"train renderer {preset}", quiet) as on_step:
            counters = train_renderer(dataset, out, settings, device=device, on_step=on_step)
        stderr.print(f"{out}: renderer trained to step {counters['step']}", markup=False, soft_wrap=True)


def _training_settings(cls, config_file: Path | None, preset: str, given: dict, renderer_options: dict):
    """A trainer's settings: ``cls``'s defaults, then the YAML file, then the options given; the
    sizes are the preset's, changed by the file's ``renderer_overrides`` and the
    ``renderer_options`` given."""
    import dataclasses

    from .config import load_yaml

    settings = load_yaml(cls, config_file) if config_file else cls()
    if config_file and settings.config != cls().config:
        raise NewsanchorError(f"{config_file}: the renderer's size is --preset on the command line, not 'config' in the file")
    overrides = dict(settings.renderer_overrides) | {k: v for k, v in renderer_options.items() if v is not None}
    try:
        return dataclasses.replace(settings, config=preset, renderer_overrides=overrides, **given)
    except (TypeError, ValueError) as err:
        raise NewsanchorError(f"train renderer: {err}") from None


@evaluate_app.command("mouth")
def evaluate_mouth_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory the runs were trained on.")],
    runs: Annotated[list[Path], typer.Argument(help="Run directories of `newsanchor train mouth` (seeds of a model are averaged).")],
    report: Annotated[Optional[Path], typer.Option(help="Folder for mouth_table1.json, mouth_tables.md and mouth_fig5.png.")] = None,
    timing: Annotated[bool, typer.Option(help="Also measure Table 2 (training and inference time).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON line.")] = False,
) -> None:
    """Table 1 (MSE, MAE, Int-MSE, landmark px), Table 2 (timing) and Figure 5 for trained runs."""
    from .evaluate.mouth import evaluate_mouth, markdown_tables, plot_window_positions

    with user_errors():
        result = evaluate_mouth(dataset, runs, timing=timing)
        text = markdown_tables(result)
        if report is not None:
            report.mkdir(parents=True, exist_ok=True)
            (report / "mouth_table1.json").write_text(json.dumps(result, indent=1))
            (report / "mouth_tables.md").write_text(text)
            plot_window_positions(result, report / "mouth_fig5.png")
        print(json.dumps(result) if as_json else text)


@evaluate_app.command("renderer")
def evaluate_renderer_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory the renderers were trained on.")],
    runs: Annotated[list[Path], typer.Argument(help="Renderer directories (train runs or their step_NNNNNNN snapshots).")],
    clips: Annotated[Optional[int], typer.Option(help="Evaluate this many held-out segments, evenly spread (default: all).")] = None,
    batch_size: Annotated[int, typer.Option(help="Frames rendered at once.")] = 8,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    precision: Annotated[str, typer.Option(help="auto, fp32 or bf16 (see `train renderer`).")] = "auto",
    samples_png: Annotated[Optional[Path], typer.Option(help="Write a PNG of sample rows: static baseline | each renderer | real.")] = None,
    samples: Annotated[int, typer.Option(help="Rows in --samples-png.")] = 4,
    open_mouths: Annotated[bool, typer.Option("--open-mouths", help="Sample rows of the frames whose real mouth is most open (else evenly spread).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """PSNR/SSIM (crop and mouth), LMD, flicker, mouth sharpness and identity on held-out frames, beside a static baseline."""
    from .evaluate.renderer import evaluate_renderers, markdown_table, without_nan

    with user_errors():
        with frame_progress("evaluate renderer", not quiet) as progress:
            result = evaluate_renderers(dataset, runs, clips=clips, batch_size=batch_size, device=device,
                                        precision=precision, samples=samples if samples_png else 0,
                                        on_frames=done_of_total(progress), sample_open_mouths=open_mouths)
        rows = result.pop("samples", [])
        if samples_png is not None and rows:
            import cv2
            import numpy as np

            from .files import write_atomic

            grid = cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)
            write_atomic(samples_png, lambda tmp: cv2.imwrite(str(tmp), grid))
        print(json.dumps(without_nan(result), allow_nan=False) if as_json else markdown_table(result))


@export_app.command("onnx")
def export_onnx_command(
    renderer: Annotated[Path, typer.Argument(help="Renderer directory (a train run or a snapshot).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    size: Annotated[Optional[int], typer.Option(help="Crop side the renderer runs at (default: its config's native size, or the lower-face renderer's training crops).")] = None,
) -> None:
    """Export the renderer to ONNX (fp32, any batch size) for ONNX Runtime and other engines."""
    from .render.pix2pixhd import NATIVE_SIZES, is_lower_face, load_renderer
    from .render.runtime import export_onnx

    with user_errors():
        model, config, extra = load_renderer(renderer)
        if is_lower_face(config):
            size = size or extra.get("crop_size")
            if size is None:
                raise NewsanchorError(f"{renderer}: no crop size recorded; give --size")
            shape = config.region_shape(size)
        else:
            size = size or NATIVE_SIZES.get(extra.get("train_config", {}).get("config", ""))
            if size is None:
                raise NewsanchorError(f"{renderer}: no native size recorded; give --size")
            if size % config.size_multiple:
                raise NewsanchorError(f"--size {size}: must be a multiple of {config.size_multiple} for this renderer")
            shape = (size, size)
        export_onnx(model, size, out, shape=shape)
        stderr.print(f"{out}: ONNX renderer, input x [B, {config.input_channels}, {shape[0]}, {shape[1]}]", markup=False,
                     soft_wrap=True)


# the anchor commands (bundle, synthesize, evaluate lipsync, demo, serve) live in cli_anchor
cli_anchor.register(app, evaluate_app)


def run() -> None:  # pragma: no cover - console entry for `python -m newsanchor`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
