"""``newsanchor prepare``: recordings → a training dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import frame_progress, stderr, user_errors


def prepare_command(
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
    from ..config import PrepareConfig, load_settings
    from ..prepare import prepare as prepare_dataset

    with user_errors(resumable=True):
        settings = load_settings(PrepareConfig, config, {} if size is None else {"size": size}, "--size: ")
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
