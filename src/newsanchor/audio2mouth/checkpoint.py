"""Save and load a trained audio → mouth model: ``model.safetensors`` + ``model.json``, no pickle.

``model.json`` describes itself::

    {"format": "newsanchor-mouth-model", "format_version": 1, "newsanchor_version": "...",
     "name": "tcn-gan", "config": {...}, "weights": {"file": "model.safetensors",
     "sha256": "...", "parameters": 1825162}, "extra": {...}, "created": "..."}

``extra`` is whatever JSON the caller needs beside the weights (the trainer stores the MFCC
statistics and PCA summary there). Both files are written under a temporary name and renamed
into place, weights first; the JSON carries the weights' SHA-256, so a pair torn by a crash or
mixed up by hand is refused on load instead of silently giving a different model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import NewsanchorError
from ..weights import WeightsFormat, config_from_meta, load_into, read_meta, save_weights
from .registry import MODELS

FORMAT = "newsanchor-mouth-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


class MouthModelError(NewsanchorError):
    """A saved mouth model cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"{path}: {problem}")


MOUTH_MODEL_FILES = WeightsFormat(FORMAT, FORMAT_VERSION, WEIGHTS_FILE, META_FILE, "mouth model", MouthModelError)


def save_mouth_model(path_dir: str | os.PathLike[str], name: str, model: nn.Module, config: Any,
                     extra: dict | None = None) -> Path:
    """Write ``path_dir/model.safetensors`` and ``path_dir/model.json`` (directory created).

    Args:
        path_dir: output directory.
        name: registry name (``"tcn-gan"``, ``"tcn"``, ``"lstm"``, ``"bilstm"``).
        model: its generator (any device/dtype; weights are stored as they are, on CPU).
        config: the model's frozen config dataclass.
        extra: JSON-serialisable metadata stored beside the weights.

    Returns:
        The path of ``model.json``.
    """
    if name not in MODELS:
        raise ValueError(f"save_mouth_model: unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if not isinstance(config, MODELS[name].config_class):
        raise TypeError(f"save_mouth_model: {name!r} needs a {MODELS[name].config_class.__name__}, "
                         f"got {type(config).__name__}")
    return save_weights(MOUTH_MODEL_FILES, path_dir, model, config, extra, name=name)


def load_mouth_model(path_dir: str | os.PathLike[str], device: str | torch.device = "cpu"
                     ) -> tuple[nn.Module, str, Any, dict]:
    """Read a model written by :func:`save_mouth_model`.

    Returns:
        ``(model, name, config, extra)``: the generator on ``device`` in eval mode, its registry
        name, its config dataclass, and the stored ``extra`` dict.

    Raises:
        MouthModelError (a NewsanchorError): one line naming the file that is missing, of
        another format or version, inconsistent with its weights, or unreadable.
    """
    meta = read_meta(MOUTH_MODEL_FILES, path_dir)
    meta_path = Path(path_dir) / META_FILE
    if not isinstance(meta.get("name"), str) or meta["name"] not in MODELS:
        raise MouthModelError(meta_path, f"unknown model {meta.get('name')!r}; this newsanchor knows {', '.join(MODELS)}")
    spec = MODELS[meta["name"]]
    config = config_from_meta(MOUTH_MODEL_FILES, path_dir, spec.config_class, meta["config"])
    model = spec.generator_class(config)
    load_into(MOUTH_MODEL_FILES, path_dir, meta, model, f"{meta['name']} with its config")
    return model.to(device).eval(), meta["name"], config, meta["extra"]
