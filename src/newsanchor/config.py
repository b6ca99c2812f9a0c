"""Configuration: frozen dataclasses, loadable from YAML and written into every dataset, run and bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import NewsanchorError
from .features.face import TrackerConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # a (frozen) config dataclass


@dataclass(frozen=True)
class PrepareConfig:
    """How recordings become a dataset (paper §4.1–4.2)."""

    fps: int = 25
    size: int = 512  # face crop side in the dataset (the paper's 512×512 face area; 256 for small sources)
    crop_margin: float = 2.1  # crop side / landmark-box size: room for hair, ears and shoulders
    crop_raise: float = 0.12  # crop centre above the landmark-box centre, in landmark-box sizes (hair)
    landmark_smoothing: int = 5  # Savitzky–Golay window in frames; < 3 disables
    canny_low: int = 60
    canny_high: int = 140
    canny_blur: int = 3  # Gaussian kernel before Canny (odd; 0 disables): fewer edges from sensor noise
    crop_crf: int = 14  # H.264 quality of the stored crops (lower is better and bigger)
    crop_preset: str = "superfast"  # x264 speed: at CRF 14 as sharp as "veryfast" (~40 dB) and 1.7× faster
    crop_keyframe_interval: int = 25  # frames between keyframes of the stored crops: random access cost
    pca_components: int = 10
    max_audio_shortfall_s: float = 0.5  # audio may end this much before the video (padded with silence)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if self.size < 64 or self.size % 16:
            raise ValueError(f"size must be a multiple of 16 and at least 64, not {self.size}")
        if self.fps != 25:
            raise ValueError("the dataset frame rate is fixed at 25 fps (4 MFCC frames per video frame)")

    def fingerprint(self) -> str:
        """Short hash of everything that changes prepared arrays (a clip prepared with another
        fingerprint is prepared again on resume)."""
        return hashlib.sha256(json.dumps(to_dict(self), sort_keys=True).encode()).hexdigest()[:16]


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _is_tuple_type(hint: Any) -> bool:
    """``tuple[...]``, or a union with one (``tuple[int, ...] | None``)."""
    if hint is tuple or get_origin(hint) is tuple:
        return True
    return get_origin(hint) in (Union, UnionType) and any(_is_tuple_type(arg) for arg in get_args(hint))


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build a (nested) frozen dataclass from plain values (YAML, or the JSON of a dataset, run or
    bundle), refusing unknown keys by name; lists become tuples where the field is a tuple."""
    if not isinstance(values, dict):
        raise NewsanchorError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise NewsanchorError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            value = from_dict(hint, value, f"{where}.{name}")
        elif isinstance(value, list) and _is_tuple_type(hint):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise NewsanchorError(f"{where}: {err}") from None


def load_yaml(cls: type[T], path: str | Path) -> T:
    """A config dataclass from a YAML file; missing keys keep their defaults."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise NewsanchorError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise NewsanchorError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return from_dict(cls, values, str(path))


def load_settings(cls: type[T], config_file: str | Path | None, overrides: dict[str, Any], where: str = "") -> T:
    """A command's settings: ``cls``'s defaults, then the YAML file (if any), then ``overrides``
    (the options given on the command line); a value they refuse is one error, ``where``-prefixed."""
    settings = load_yaml(cls, config_file) if config_file else cls()
    try:
        return dataclasses.replace(settings, **overrides)
    except (TypeError, ValueError) as err:
        raise NewsanchorError(f"{where}{err}") from None


def settings_for_preset(cls: type[T], config_file: str | Path | None, preset: str, given: dict[str, Any],
                        renderer_options: dict[str, Any]) -> T:
    """A renderer trainer's settings: ``cls``'s defaults, then the YAML file, then the options
    ``given``; the sizes are ``preset``'s, changed by the file's ``renderer_overrides`` and by the
    ``renderer_options`` that are not None. ``cls`` is a trainer config with fields ``config``
    (the preset) and ``renderer_overrides``."""
    settings: Any = load_yaml(cls, config_file) if config_file else cls()
    if config_file and settings.config != cls().config:  # type: ignore[attr-defined]
        raise NewsanchorError(f"{config_file}: the renderer's size is --preset on the command line, not 'config' in the file")
    overrides = dict(settings.renderer_overrides) | {k: v for k, v in renderer_options.items() if v is not None}
    try:
        return dataclasses.replace(settings, config=preset, renderer_overrides=overrides, **given)
    except (TypeError, ValueError) as err:
        raise NewsanchorError(f"train renderer: {err}") from None
