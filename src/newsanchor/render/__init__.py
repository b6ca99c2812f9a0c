"""Inference-side rendering: facial map → face image (paper §3.2). Never imports ``newsanchor.train``."""

from newsanchor.render.pix2pixhd import (
    NATIVE_SIZES,
    RENDERER_CONFIGS,
    GlobalGenerator,
    LocalEnhancer,
    RendererConfig,
    RendererError,
    build_renderer,
    load_renderer,
    renderer_gflops,
    save_renderer,
)

RENDERERS = {"pix2pixhd": build_renderer}

__all__ = [
    "NATIVE_SIZES", "RENDERERS", "RENDERER_CONFIGS", "GlobalGenerator", "LocalEnhancer", "RendererConfig",
    "RendererError", "build_renderer", "load_renderer", "renderer_gflops", "save_renderer",
]
