"""``newsanchor export onnx``: a trained renderer for other inference engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import NewsanchorError
from .common import stderr, user_errors


def export_onnx_command(
    renderer: Annotated[Path, typer.Argument(help="Renderer directory (a train run or a snapshot).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    size: Annotated[Optional[int], typer.Option(help="Crop side the renderer runs at (default: its config's native size, or the lower-face renderer's training crops).")] = None,
) -> None:
    """Export the renderer to ONNX (fp32, any batch size) for ONNX Runtime and other engines."""
    from ..render.lower_face import LowerFaceConfig
    from ..render.pix2pixhd import NATIVE_SIZES, load_renderer
    from ..render.runtime import export_onnx

    with user_errors():
        model, config, extra = load_renderer(renderer)
        if isinstance(config, LowerFaceConfig):
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
