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

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import NewsanchorError
from ..files import sha256_file, write_atomic
from .registry import MODELS

FORMAT = "newsanchor-mouth-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


class MouthModelError(NewsanchorError):
    """A saved mouth model cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"{path}: {problem}")


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
    try:
        extra_json = json.loads(json.dumps(extra or {}, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_mouth_model: extra is not plain JSON ({err})") from None
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    weights_path, meta_path = out / WEIGHTS_FILE, out / META_FILE
    write_atomic(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT, "name": name}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "newsanchor_version": __version__,
        "name": name,
        "config": dataclasses.asdict(config),
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights_path),
                    "parameters": int(sum(t.numel() for t in tensors.values()))},
        "extra": extra_json,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    return meta_path


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise MouthModelError(meta_path, "missing (not a saved mouth model directory)") from None
    except OSError as err:
        raise MouthModelError(meta_path, f"cannot read ({err.strerror})") from None
    except ValueError as err:
        raise MouthModelError(meta_path, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MouthModelError(meta_path, f"not a newsanchor mouth model (format is not {FORMAT!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise MouthModelError(meta_path, f"mouth model format version {version!r}; this newsanchor "
                                         f"({__version__}) reads version {FORMAT_VERSION}")
    for key, kind in (("name", str), ("config", dict), ("weights", dict), ("extra", dict)):
        if not isinstance(meta.get(key), kind):
            raise MouthModelError(meta_path, f"{key!r} is missing or not a {kind.__name__}")
    if meta["name"] not in MODELS:
        raise MouthModelError(meta_path, f"unknown model {meta['name']!r}; this newsanchor knows "
                                         f"{', '.join(MODELS)}")
    return meta


def _config_from_dict(config_class: type, values: dict, meta_path: Path) -> Any:
    # Not newsanchor.config.from_dict: that module pulls in face tracking (dlib), which
    # inference of the mouth alone should not pay for.
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MouthModelError(meta_path, f"config: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return config_class(**values)
    except (TypeError, ValueError) as err:
        raise MouthModelError(meta_path, f"config: {err}") from None


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
    root = Path(path_dir)
    meta_path = root / META_FILE
    meta = _read_meta(meta_path)
    spec = MODELS[meta["name"]]
    config = _config_from_dict(spec.config_class, meta["config"], meta_path)
    weights_path = root / meta["weights"].get("file", WEIGHTS_FILE)
    if not weights_path.is_file():
        raise MouthModelError(weights_path, f"missing (the weights named by {META_FILE})")
    expected = meta["weights"].get("sha256")
    if expected is not None and sha256_file(weights_path) != expected:
        raise MouthModelError(weights_path, f"checksum differs from {META_FILE} (weights from another save?)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise MouthModelError(weights_path, f"not readable safetensors ({err})") from None
    model = spec.generator_class(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        problem = " ".join(str(err).split())  # torch's message spans lines
        raise MouthModelError(weights_path, f"weights do not fit {meta['name']} with its config ({problem[:300]})") from None
    return model.to(device).eval(), meta["name"], config, meta["extra"]
