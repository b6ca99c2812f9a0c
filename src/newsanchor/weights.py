"""Self-describing model files: ``<name>.safetensors`` + ``<name>.json`` (no pickle).

The JSON names the format and its version, the newsanchor version, the model's config (a frozen
dataclass as a dict), the weights' file, SHA-256 and parameter count, and free ``extra``
metadata. Every model family (mouth models, renderers) saves and loads through here; each keeps
its own format name, version and error class, so messages say what kind of file is wrong.
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

from . import __version__
from .config import from_dict
from .errors import NewsanchorError
from .files import sha256_file, write_atomic


@dataclasses.dataclass(frozen=True)
class WeightsFormat:
    """One family of model files: ``format`` names it in the JSON, ``kind`` in messages."""

    format: str
    version: int
    weights_file: str
    meta_file: str
    kind: str  # e.g. "mouth model", "renderer"
    error: type[NewsanchorError]  # constructed as error(path, problem)


def save_weights(fmt: WeightsFormat, path_dir: str | os.PathLike[str], model: torch.nn.Module, config: Any,
                 extra: dict | None = None, **fields: Any) -> Path:
    """Write the weights, then the JSON (each atomically); ``fields`` are extra top-level JSON
    keys (e.g. a registry name). Returns the JSON's path."""
    try:
        extra_json = json.loads(json.dumps(extra or {}, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"saving a {fmt.kind}: extra is not plain JSON ({err})") from None
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    weights_path, meta_path = out / fmt.weights_file, out / fmt.meta_file
    write_atomic(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": fmt.format}))
    meta = {
        "format": fmt.format,
        "format_version": fmt.version,
        "newsanchor_version": __version__,
        **fields,
        "config": dataclasses.asdict(config),
        "weights": {"file": fmt.weights_file, "sha256": sha256_file(weights_path),
                    "parameters": int(sum(t.numel() for t in tensors.values()))},
        "extra": extra_json,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    return meta_path


def read_meta(fmt: WeightsFormat, path_dir: str | os.PathLike[str]) -> dict:
    """The JSON of a saved model, checked for format, version and the keys every file has."""
    meta_path = Path(path_dir) / fmt.meta_file
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise fmt.error(meta_path, f"missing (not a saved {fmt.kind} directory)") from None
    except OSError as err:
        raise fmt.error(meta_path, f"cannot read ({err.strerror})") from None
    except ValueError as err:
        raise fmt.error(meta_path, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt.format:
        raise fmt.error(meta_path, f"not a newsanchor {fmt.kind} (format is not {fmt.format!r})")
    version = meta.get("format_version")
    if version != fmt.version:
        raise fmt.error(meta_path, f"{fmt.kind} format version {version!r}; this newsanchor ({__version__}) "
                                   f"reads version {fmt.version}")
    for key, kind in (("config", dict), ("weights", dict), ("extra", dict)):
        if not isinstance(meta.get(key), kind):
            raise fmt.error(meta_path, f"{key!r} is missing or not a {kind.__name__}")
    return meta


def config_from_meta(fmt: WeightsFormat, path_dir: str | os.PathLike[str], config_class: type, values: dict) -> Any:
    """The config dataclass from the JSON's ``config``, refusing unknown settings by name."""
    try:
        return from_dict(config_class, values, "config")
    except NewsanchorError as err:
        raise fmt.error(Path(path_dir) / fmt.meta_file, str(err)) from None


def load_into(fmt: WeightsFormat, path_dir: str | os.PathLike[str], meta: dict, model: torch.nn.Module, description: str) -> None:
    """Load the weights the JSON names into ``model`` after checking their SHA-256."""
    weights_path = Path(path_dir) / str(meta["weights"].get("file", fmt.weights_file))
    if not weights_path.is_file():
        raise fmt.error(weights_path, f"missing (the weights named by {fmt.meta_file})")
    expected = meta["weights"].get("sha256")
    if expected is not None and sha256_file(weights_path) != expected:
        raise fmt.error(weights_path, f"checksum differs from {fmt.meta_file} (weights from another save?)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise fmt.error(weights_path, f"not readable safetensors ({' '.join(str(err).split())})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        problem = " ".join(str(err).split())  # torch's message spans lines
        raise fmt.error(weights_path, f"weights do not fit {description} ({problem[:300]})") from None
