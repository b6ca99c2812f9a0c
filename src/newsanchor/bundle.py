"""Anchor bundles: one self-contained directory holding everything synthesis needs.

Layout (``BUNDLE_VERSION`` 1)::

    anchor.json               manifest: format, version, presenter, consent, created, settings,
                              the template's place in the recordings, SHA-256 of every file
    mouth/model.json, mouth/model.safetensors           audio→mouth generator (+ MFCC statistics,
                                                        closed-mouth pose in its extra)
    renderer/renderer.json, renderer/renderer.safetensors
    mouth_pca.npz             the dataset's mouth PCA
    jaw.npz                   jaw regression fitted on the dataset
    template/frames.mp4       the template stretch of the source recording, full frame, 25 fps
    template/crops.mp4        the same frames' face crops (the renderer's appearance reference)
    template/arrays.npz       landmarks [N, 68, 2] (crop px), mouth [N, 20, 2], edges packed
                              [N, S, ceil(S/8)] uint8, crop_box [4] (x, y, w, h source px)
    background.png            optional studio background
    quality/report.json, quality/report.md, quality/preview.mp4
                              optional: the quality report of ``anchor create`` (held-out
                              measures, targets, met / not met) and its preview; the manifest's
                              ``quality`` entry summarises it for listings

Loading checks the format, the version and every checksum before anything is used, and refuses
what it cannot trust with one line naming the file. Nothing in a bundle points back at a
training run or dataset: it can be copied to another machine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np

from . import __version__, media
from .audio2mouth.checkpoint import load_mouth_model
from .dataset import MOUTH_PCA, PreparedDataset, read_mouth_pca
from .errors import NewsanchorError
from .facemap.jaw import JawModel, fit_jaw
from .features.mouth import MouthPCA
from .files import sha256_file, write_atomic
from .audio2mouth.checkpoint import META_FILE as MOUTH_META, WEIGHTS_FILE as MOUTH_WEIGHTS
from .render.pix2pixhd import LOWER_FACE, PIX2PIXHD, is_lower_face, load_renderer
from .render.pix2pixhd import META_FILE as RENDERER_META, WEIGHTS_FILE as RENDERER_WEIGHTS
from .render.references import REFERENCES_FILE, ReferenceMouths, load_reference_mouths
from .timing import SAMPLES_PER_FRAME
from .template import TemplateChoice

if TYPE_CHECKING:
    import torch

BUNDLE_FORMAT = "newsanchor-anchor"
BUNDLE_VERSION = 1
MANIFEST = "anchor.json"
TEMPLATE_FRAMES, TEMPLATE_CROPS, TEMPLATE_ARRAYS = "template/frames.mp4", "template/crops.mp4", "template/arrays.npz"
JAW, BACKGROUND = "jaw.npz", "background.png"
QUALITY_FOLDER = "quality"
# frames sampled for the jaw fit: the regression has 3 × 34 numbers, a few thousand frames pin it down
JAW_FIT_FRAMES = 20_000


class BundleError(NewsanchorError):
    """A bundle that cannot be built or trusted; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Presenter:
    name: str
    consent: str  # who agreed to what, when: shown to whoever receives the bundle

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise NewsanchorError("presenter name: must not be empty")
        if not self.consent.strip():
            raise NewsanchorError("consent note: must not be empty (say who agreed to be this anchor, and when)")


def _pack_edges(edges: np.ndarray) -> np.ndarray:
    return np.packbits(edges.astype(bool), axis=-1)


def _fit_dataset_jaw(dataset: PreparedDataset) -> JawModel:
    landmark_parts: list[np.ndarray] = []
    found_parts: list[np.ndarray] = []
    for clip in dataset.clips:
        arrays = dataset.arrays(clip["id"])
        landmark_parts.append(arrays["landmarks"])
        found_parts.append(arrays["face_found"])
    landmarks, found = np.concatenate(landmark_parts), np.concatenate(found_parts)
    if len(landmarks) > JAW_FIT_FRAMES:
        keep = np.linspace(0, len(landmarks) - 1, JAW_FIT_FRAMES).round().astype(int)
        landmarks, found = landmarks[keep], found[keep]
    try:
        return fit_jaw(landmarks, found)
    except ValueError as err:
        raise BundleError(dataset.root, f"cannot fit the jaw regression ({err})") from None


def _write_template(dataset: PreparedDataset, choice: TemplateChoice, out: Path) -> dict:
    """Template files under ``out``; returns the manifest's template entry."""
    clip = next((c for c in dataset.clips if c["id"] == choice.clip), None)
    if clip is None:
        raise BundleError(dataset.root, f"no clip {choice.clip!r} for the template")
    if not 0 <= choice.start < choice.stop <= clip["frames"]:
        raise BundleError(dataset.root, f"template frames {choice.start}..{choice.stop} outside clip {choice.clip!r} "
                                        f"(0..{clip['frames']})")
    arrays = dataset.arrays(choice.clip)
    span = slice(choice.start, choice.stop)
    if not arrays["face_found"][span].all():
        raise BundleError(dataset.root, f"template {choice.clip} {choice.start}..{choice.stop} has frames without a face")
    source = Path(clip["source"])
    if not source.is_file():
        raise BundleError(source, "the template's source recording is missing (needed for the full frames)")

    def stretch(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames):
            if index >= choice.stop:
                return
            if index >= choice.start:
                yield frame

    (out / "template").mkdir()
    audio = arrays["audio"][choice.start * SAMPLES_PER_FRAME:choice.stop * SAMPLES_PER_FRAME].astype(np.float32) / 32768
    written = media.write_video(out / TEMPLATE_FRAMES, stretch(media.iter_video_frames(source, dataset.fps)),
                                dataset.fps, audio=audio, crf=14, keyframe_interval=dataset.fps)
    if written != len(choice):
        raise BundleError(source, f"decoded {written} template frames, expected {len(choice)}; was it changed?")
    media.write_video(out / TEMPLATE_CROPS, stretch(dataset.crops(choice.clip)), dataset.fps, crf=14,
                      keyframe_interval=dataset.fps)
    edges = np.stack([_pack_edges(e) for e in stretch(dataset.edge_maps(choice.clip))])
    np.savez(out / TEMPLATE_ARRAYS, landmarks=arrays["landmarks"][span], mouth=arrays["mouth"][span], edges=edges,
             crop_box=arrays["crop_box"])
    return {"clip": choice.clip, "start": choice.start, "stop": choice.stop, "frames": len(choice),
            "source_sha256": clip["sha256"], "source_size": clip["source_size"], "score": choice.score}


def build_bundle(dataset_dir: str | Path, mouth_run: str | Path, renderer_run: str | Path, out: str | Path, *,
                 presenter: Presenter, template: TemplateChoice, background: str | Path | None = None) -> Path:
    """Assemble an anchor bundle at ``out`` (which must not exist); it appears complete or not at all.

    Raises:
        BundleError / NewsanchorError: an unreadable part, parts that do not belong together
        (PCA size, crop size), a template without faces, an unreadable background image.
    """
    out = Path(out)
    if out.exists():
        raise BundleError(out, "already exists; choose a new name or remove it")
    dataset = PreparedDataset(dataset_dir)
    _, mouth_name, mouth_config, mouth_extra = load_mouth_model(mouth_run)
    _, renderer_config, renderer_extra = load_renderer(renderer_run)
    pca = dataset.mouth_pca
    if getattr(mouth_config, "n_mouth", pca.n_components) != pca.n_components:
        raise BundleError(Path(mouth_run), f"predicts {mouth_config.n_mouth} PCA components, the dataset has "
                                           f"{pca.n_components}: trained on another dataset?")
    if dataset.size % renderer_config.size_multiple:
        raise BundleError(Path(renderer_run), f"needs crops a multiple of {renderer_config.size_multiple} px, "
                                              f"the dataset's are {dataset.size}")
    background_image = None
    if background is not None:
        background_image = cv2.imread(str(background), cv2.IMREAD_COLOR)
        if background_image is None:
            raise BundleError(Path(background), "not a readable image")

    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        (building / "mouth").mkdir()
        for name in (MOUTH_META, MOUTH_WEIGHTS):
            shutil.copyfile(Path(mouth_run) / name, building / "mouth" / name)
        (building / "renderer").mkdir()
        for name in (RENDERER_META, RENDERER_WEIGHTS):
            shutil.copyfile(Path(renderer_run) / name, building / "renderer" / name)
        if is_lower_face(renderer_config):
            load_reference_mouths(renderer_run)  # refuses a missing or unreadable file by name
            shutil.copyfile(Path(renderer_run) / REFERENCES_FILE, building / "renderer" / REFERENCES_FILE)
        shutil.copyfile(dataset.root / MOUTH_PCA, building / MOUTH_PCA)
        # numpy's stubs: a **dict of arrays could also fill savez's allow_pickle: bool
        np.savez(building / JAW, **_fit_dataset_jaw(dataset).to_arrays())  # type: ignore[arg-type]
        if background_image is not None:
            cv2.imwrite(str(building / BACKGROUND), background_image)
        template_entry = _write_template(dataset, template, building)
        files = sorted(p.relative_to(building).as_posix() for p in building.rglob("*") if p.is_file())
        manifest = {
            "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "newsanchor_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "presenter": {"name": presenter.name, "consent": presenter.consent},
            "fps": dataset.fps, "size": dataset.size, "sample_rate": dataset.manifest["sample_rate"],
            "mfcc_stats": dataset.manifest["mfcc_stats"],
            "mouth": {"model": mouth_name, "closed_mouth": mouth_extra.get("closed_mouth")},
            "renderer": {"input_edges": renderer_extra.get("input", {}).get("edges", True),
                         "architecture": LOWER_FACE if is_lower_face(renderer_config) else PIX2PIXHD},
            "template": template_entry,
            "background": BACKGROUND if background_image is not None else None,
            "files": {name: sha256_file(building / name) for name in files},
        }
        write_atomic(building / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
        os.chmod(building, 0o755)
        building.rename(out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return out


def add_quality_report(root: str | Path, files: dict[str, Path], summary: dict) -> None:
    """Copy ``files`` (name → source) into the bundle's ``quality/`` folder, list them in the
    manifest with their checksums and record ``summary`` (JSON-ready: whether the report's
    targets are met, and which are not) as its ``quality`` entry. Replaces an earlier report.
    The manifest is rewritten atomically, after the files are in place."""
    root = Path(root)
    manifest = load_bundle(root).manifest
    folder = root / QUALITY_FOLDER
    listed = {name: digest for name, digest in manifest["files"].items()
              if not name.startswith(f"{QUALITY_FOLDER}/")}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, source in files.items():
        if Path(name).name != name:
            raise ValueError(f"quality file {name!r}: a plain file name")
        shutil.copyfile(source, folder / name)
        listed[f"{QUALITY_FOLDER}/{name}"] = sha256_file(folder / name)
    manifest = {**manifest, "files": dict(sorted(listed.items())), "quality": summary}
    write_atomic(root / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))


class AnchorBundle:
    """A verified bundle (see :func:`load_bundle`): its manifest and its parts, read on demand."""

    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest
        self.fps: int = manifest["fps"]
        self.size: int = manifest["size"]

    @property
    def presenter(self) -> Presenter:
        return Presenter(**self.manifest["presenter"])

    def mouth_model(self, device: str | torch.device = "cpu"):
        """``(model, name, config, extra)`` as :func:`load_mouth_model` returns them."""
        return load_mouth_model(self.root / "mouth", device)

    def renderer(self, device: str | torch.device = "cpu"):
        """``(model, config, extra)`` as :func:`load_renderer` returns them."""
        return load_renderer(self.root / "renderer", device)

    def reference_mouths(self) -> ReferenceMouths:
        """The presenter's reference mouths of a lower-face renderer."""
        return load_reference_mouths(self.root / "renderer")

    @cached_property
    def mouth_pca(self) -> MouthPCA:
        return read_mouth_pca(self.root / MOUTH_PCA)

    @cached_property
    def jaw(self) -> JawModel:
        with np.load(self.root / JAW) as arrays:
            return JawModel.from_arrays({k: arrays[k] for k in arrays.files})

    @cached_property
    def template_arrays(self) -> dict[str, np.ndarray]:
        """landmarks [N, 68, 2], mouth [N, 20, 2], edges [N, S, S] bool, crop_box [4]."""
        with np.load(self.root / TEMPLATE_ARRAYS) as arrays:
            out = {k: arrays[k] for k in arrays.files}
        out["edges"] = np.unpackbits(out["edges"], axis=-1, count=self.size).astype(bool)
        return out

    def template_frames(self) -> Iterator[np.ndarray]:
        """The template's full source frames [H, W, 3] uint8, streamed."""
        return media.iter_video_frames(self.root / TEMPLATE_FRAMES, self.fps)

    def template_crops(self) -> Iterator[np.ndarray]:
        """The template's face crops [S, S, 3] uint8, streamed."""
        return media.iter_video_frames(self.root / TEMPLATE_CROPS, self.fps)

    @property
    def quality(self) -> dict | None:
        """The quality report's summary (``{"met": bool, "not_met": [...], ...}``), or None for a
        bundle made without one (``newsanchor bundle``, older versions)."""
        return self.manifest.get("quality")

    def background(self) -> np.ndarray | None:
        """The studio background [H, W, 3] RGB uint8, or None."""
        if not self.manifest.get("background"):
            return None
        path = self.root / self.manifest["background"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:  # only a bundle opened without verify=True can hold an unreadable file
            raise BundleError(path, "not a readable image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_bundle(path: str | Path, *, verify: bool = True) -> AnchorBundle:
    """Open a bundle, checking format, version and (``verify``) every file's SHA-256.

    Raises:
        BundleError: not a bundle, another format or a newer version, a file missing, changed
        or unexpected — one line naming the file.
    """
    root = Path(path)
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BundleError(root, f"not an anchor bundle (no {MANIFEST}; make one with `newsanchor bundle`)") from None
    except (OSError, ValueError) as err:
        raise BundleError(manifest_path, f"unreadable ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(manifest_path, "not a newsanchor anchor bundle")
    if manifest.get("format_version") != BUNDLE_VERSION:
        raise BundleError(manifest_path, f"bundle format version {manifest.get('format_version')}; this newsanchor "
                                         f"({__version__}) reads version {BUNDLE_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(manifest_path, "lists no files")
    if verify:
        for name, digest in files.items():
            file = root / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise BundleError(manifest_path, f"file name {name!r} leaves the bundle")
            if not file.is_file():
                raise BundleError(file, "missing from the bundle")
            if sha256_file(file) != digest:
                raise BundleError(file, "changed since the bundle was made (checksum mismatch); do not trust it")
        extra = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.is_file() and p.name != MANIFEST and p.relative_to(root).as_posix() not in files)
        if extra:
            raise BundleError(root / extra[0], "not listed in the bundle's manifest; do not trust it")
    return AnchorBundle(root, manifest)
