"""``newsanchor evaluate mouth|renderer``: trained models measured on a dataset's held-out split
and ``evaluate lipsync``: an anchor's lip sync from outside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..files import check_output_path
from ..progress import done_of_total
from .common import frame_progress, user_errors


def evaluate_mouth_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory the runs were trained on.")],
    runs: Annotated[list[Path], typer.Argument(help="Run directories of `newsanchor train mouth` (seeds of a model are averaged).")],
    report: Annotated[Optional[Path], typer.Option(help="Folder for mouth_table1.json, mouth_tables.md and mouth_fig5.png.")] = None,
    timing: Annotated[bool, typer.Option(help="Also measure Table 2 (training and inference time).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON line.")] = False,
) -> None:
    """Table 1 (MSE, MAE, Int-MSE, landmark px), Table 2 (timing) and Figure 5 for trained runs."""
    from ..evaluate.mouth import evaluate_mouth, markdown_tables, plot_window_positions

    with user_errors():
        result = evaluate_mouth(dataset, runs, timing=timing)
        text = markdown_tables(result)
        if report is not None:
            report.mkdir(parents=True, exist_ok=True)
            (report / "mouth_table1.json").write_text(json.dumps(result, indent=1))
            (report / "mouth_tables.md").write_text(text)
            plot_window_positions(result, report / "mouth_fig5.png")
        print(json.dumps(result) if as_json else text)


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
    from ..evaluate.renderer import evaluate_renderers, markdown_table, without_nan

    with user_errors():
        with frame_progress("evaluate renderer", not quiet) as progress:
            result = evaluate_renderers(dataset, runs, clips=clips, batch_size=batch_size, device=device,
                                        precision=precision, samples=samples if samples_png else 0,
                                        on_frames=done_of_total(progress), sample_open_mouths=open_mouths)
        rows = result.pop("samples", [])
        if samples_png is not None and rows:
            import cv2
            import numpy as np

            from ..files import write_atomic

            grid = cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)
            write_atomic(samples_png, lambda tmp: cv2.imwrite(str(tmp), grid))
        print(json.dumps(without_nan(result), allow_nan=False) if as_json else markdown_table(result))


def evaluate_lipsync_command(
    anchor: Annotated[Path, typer.Argument(help="Anchor bundle directory (`newsanchor bundle`).")],
    recordings: Annotated[list[Path], typer.Argument(help="Speech to drive it with, joined in order: videos of a person saying it (then also the real reference) or audio files.")],
    out_video: Annotated[Path, typer.Option("--out-video", help="Where to keep the synthesised video (mp4).")],
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1… (default: cuda when present).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON line.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Lip sync measured from outside: dlib on every output frame, mouth opening against the speech envelope, beside the real recordings."""
    from ..evaluate.lipsync import evaluate_lipsync, markdown_table

    with user_errors():
        check_output_path(out_video, suffixes=(".mp4",))
        with frame_progress("lip sync", not quiet) as factory:
            bars: dict = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in bars:
                    bars[stage] = done_of_total(factory)
                bars[stage](done, total)

            result = evaluate_lipsync(anchor, recordings, out_video, device=device, progress=progress)
        print(json.dumps(result, allow_nan=False) if as_json else markdown_table(result))
