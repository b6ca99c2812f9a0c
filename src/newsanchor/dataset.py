"""A prepared dataset directory: its layout, its dataset-wide summary, and reading it back.

Layout (docs/DATASET.md has the details)::

    DIR/manifest.json           format, version, config, sources, totals, PCA variance, MFCC stats
    DIR/mouth_pca.npz           PCA of normalised mouths: mean [40], components [K, 40], variances [K]
    DIR/clips/<id>/clip.json    per-clip summary (also in the manifest)
    DIR/clips/<id>/arrays.npz   landmarks, face_found, mouth, mfcc, audio, crop_box, edge_offsets
    DIR/clips/<id>/edges.bin    Canny edges, one zlib-compressed bit-packed [S, S/8] block a frame
    DIR/clips/<id>/crops.mp4    face crops [T, S, S, 3], 25 fps H.264, with the clip's audio
"""

from __future__ import annotations

import json
from dataclasses import dataclass
import zlib
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from . import __version__, media
from .config import PrepareConfig, to_dict
from .errors import DatasetError
from .features.audio import MFCC_HZ, MfccStats, mfcc_stats
from .features.mouth import MouthPCA, fit_mouth_pca
from .files import write_atomic
from .timing import SAMPLE_RATE

FORMAT = "newsanchor-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MOUTH_PCA = "mouth_pca.npz"
CLIPS_DIR = "clips"
CLIP_INFO = "clip.json"
CLIP_ARRAYS = "arrays.npz"
CLIP_EDGES = "edges.bin"
CLIP_CROPS = "crops.mp4"


def pack_edges(edges: np.ndarray) -> bytes:
    """An edge map [S, S] bool as bytes: bits packed along x, then zlib (level 1: 4× smaller than
    packed bits at 0.4 ms a 512² frame)."""
    return zlib.compress(np.packbits(edges, axis=-1).tobytes(), 1)


def unpack_edges(blob: bytes, size: int) -> np.ndarray:
    """Inverse of :func:`pack_edges` → [size, size] bool."""
    packed = np.frombuffer(zlib.decompress(blob), np.uint8).reshape(size, size // 8)
    return np.unpackbits(packed, axis=-1).astype(bool)


class EdgeWriter:
    """Appends packed edge maps to a file; ``offsets`` [T + 1] int64 locate frame k at
    ``offsets[k]:offsets[k + 1]``."""

    def __init__(self, path: Path):
        self._file = open(path, "wb")
        self._offsets = [0]

    def write(self, edges: np.ndarray) -> None:
        blob = pack_edges(edges)
        self._file.write(blob)
        self._offsets.append(self._offsets[-1] + len(blob))

    def close(self) -> np.ndarray:
        self._file.close()
        return np.array(self._offsets, dtype=np.int64)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_dataset_summary(out: Path, config: PrepareConfig, clips: Sequence[dict], skipped: Sequence[dict]) -> dict:
    """Fit the mouth PCA and the MFCC statistics over all prepared clips and write the
    manifest. Returns the manifest."""
    mouths, mfcc_chunks = [], []
    for clip in clips:
        with np.load(out / CLIPS_DIR / clip["id"] / CLIP_ARRAYS) as arrays:
            mouths.append(arrays["mouth"][arrays["face_found"]])
            mfcc_chunks.append(arrays["mfcc"])
    pca = fit_mouth_pca(np.concatenate(mouths), config.pca_components)
    stats = mfcc_stats(mfcc_chunks)
    # numpy's stubs: a **dict of arrays could also fill savez's allow_pickle: bool
    write_atomic(out / MOUTH_PCA, lambda tmp: np.savez(tmp, **pca.to_arrays()))  # type: ignore[arg-type]

    frames = sum(c["frames"] for c in clips)
    found = sum(c["frames"] * c["face_found_ratio"] for c in clips)
    minutes = frames / config.fps / 60
    size_bytes = sum(_folder_bytes(out / CLIPS_DIR / c["id"]) for c in clips)  # the listed clips only
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "newsanchor_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fps": config.fps,
        "size": config.size,
        "sample_rate": SAMPLE_RATE,
        "mfcc_hz": MFCC_HZ,
        "config": to_dict(config),
        "totals": {
            "clips": len(clips),
            "video_frames": frames,
            "mfcc_frames": sum(c["mfcc_frames"] for c in clips),
            "face_found_ratio": round(found / max(frames, 1), 6),
            "minutes": round(minutes, 3),
            "bytes": size_bytes,
            "mb_per_minute": round(size_bytes / 1e6 / max(minutes, 1e-9), 2),
        },
        "mouth_pca": {
            "file": MOUTH_PCA,
            "n_components": len(pca.explained_variance_ratio),
            "explained_variance_ratio": [round(float(v), 6) for v in pca.explained_variance_ratio],
            "total_explained_variance": round(pca.total_explained_variance, 6),
            "fitted_on_frames": int(sum(len(m) for m in mouths)),
        },
        "mfcc_stats": stats.to_dict(),
        "clips": list(clips),
        "skipped": list(skipped),
    }
    write_atomic(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
    return manifest


def read_mouth_pca(path: Path) -> MouthPCA:
    """A mouth PCA stored as plain arrays (``mouth_pca.npz`` of a dataset or an anchor bundle)."""
    with np.load(path) as arrays:
        return MouthPCA.from_arrays({name: arrays[name] for name in arrays.files})


class PreparedDataset:
    """Read access to a dataset written by ``newsanchor prepare``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.manifest = json.loads((self.root / MANIFEST).read_text())
        except FileNotFoundError:
            raise DatasetError(f"{self.root}: not a prepared dataset (no {MANIFEST}; run `newsanchor prepare`)") from None
        except (OSError, ValueError) as err:
            raise DatasetError(f"{self.root / MANIFEST}: unreadable ({err})") from None
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(f"{self.root}: not a newsanchor dataset")
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{self.root}: dataset format version {self.manifest.get('format_version')}, "
                               f"this newsanchor reads version {FORMAT_VERSION}; prepare it again")
        self.clips: list[dict] = self.manifest["clips"]
        self.size: int = self.manifest["size"]
        self.fps: int = self.manifest["fps"]

    def clip_dir(self, clip_id: str) -> Path:
        return self.root / CLIPS_DIR / clip_id

    def arrays(self, clip_id: str) -> dict[str, np.ndarray]:
        """landmarks [T, 68, 2] float32 (crop pixels, NaN without face), landmarks_raw (unsmoothed),
        face_found [T] bool, mouth [T, 20, 2] float32 (normalised), mfcc [4T, 13] float32,
        audio [640T] int16 (16 kHz), crop_box [4] int64 (x, y, w, h in source pixels),
        edge_offsets [T + 1] int64 (byte ranges of the frames in edges.bin)."""
        with np.load(self.clip_dir(clip_id) / CLIP_ARRAYS) as arrays:
            return {name: arrays[name] for name in arrays.files}

    def edge_map(self, clip_id: str, frame: int) -> np.ndarray:
        """Canny edges of one crop [S, S] bool."""
        offsets = self._edge_offsets(clip_id)
        with open(self.clip_dir(clip_id) / CLIP_EDGES, "rb") as f:
            f.seek(int(offsets[frame]))
            return unpack_edges(f.read(int(offsets[frame + 1] - offsets[frame])), self.size)

    def edge_maps(self, clip_id: str) -> Iterator[np.ndarray]:
        """Canny edges of every crop in order, each [S, S] bool, streamed."""
        offsets = self._edge_offsets(clip_id)
        with open(self.clip_dir(clip_id) / CLIP_EDGES, "rb") as f:
            for start, stop in zip(offsets[:-1], offsets[1:]):
                yield unpack_edges(f.read(int(stop - start)), self.size)

    def _edge_offsets(self, clip_id: str) -> np.ndarray:
        with np.load(self.clip_dir(clip_id) / CLIP_ARRAYS) as arrays:
            return arrays["edge_offsets"]

    def crops(self, clip_id: str) -> Iterator[np.ndarray]:
        """All face crops of a clip in order, each [S, S, 3] uint8, streamed."""
        return media.iter_video_frames(self.clip_dir(clip_id) / CLIP_CROPS, self.fps)

    def crop_frames(self, clip_id: str, indices: Sequence[int]) -> list[np.ndarray]:
        """Face crops at the given frame indices (random access), each [S, S, 3] uint8."""
        return media.read_video_frames_at(self.clip_dir(clip_id) / CLIP_CROPS, indices)

    @cached_property
    def mouth_pca(self) -> MouthPCA:
        return read_mouth_pca(self.root / MOUTH_PCA)

    @cached_property
    def mfcc_stats(self) -> MfccStats:
        return MfccStats.from_dict(self.manifest["mfcc_stats"])

    def mouth_features(self, clip_id: str) -> np.ndarray:
        """PCA mouth features [T, K] float32 (NaN rows where no face was found)."""
        return self.mouth_pca.transform(self.arrays(clip_id)["mouth"])


# --- the fixed time split (train / val / test), a property of the dataset, not of a run --------

SPLITS = ("train", "val", "test")
SNAP_CLIPS_SHORTER_THAN = 60 * 25  # frames: such clips are never cut by a split boundary
MIN_HELD_OUT_FRAMES = 100  # smallest validation / test piece a block may leave: two 2-s audio→mouth windows


@dataclass(frozen=True)
class Segment:
    """Frames [start, stop) of one clip, all in one split."""

    clip: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def split_segments(clip_frames: list[tuple[str, int]], blocks: int = 10,
                   fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                   snap_shorter_than: int = SNAP_CLIPS_SHORTER_THAN) -> dict[str, list[Segment]]:
    """Cut the timeline of (clip id, frames) into train/val/test segments (see module docstring);
    a cut falling in a clip shorter than ``snap_shorter_than`` frames moves to its nearer end."""
    starts = np.cumsum([0] + [n for _, n in clip_frames])
    total = int(starts[-1])
    clip_starts = starts[:-1]

    def snapped(position: float) -> int:
        k = int(np.searchsorted(starts, position, side="right") - 1)
        k = min(k, len(clip_frames) - 1)
        if clip_frames[k][1] < snap_shorter_than:
            return int(starts[k] if position - starts[k] < starts[k + 1] - position else starts[k + 1])
        return int(round(position))

    bounds: list[tuple[str, int, int]] = []  # (split, timeline start, timeline stop)
    edges = np.cumsum((0.0,) + fractions)
    for b in range(blocks):
        block_start, block_len = total * b / blocks, total / blocks
        cuts = [snapped(block_start + block_len * e) for e in edges]
        for split, lo, hi in zip(SPLITS, cuts[:-1], cuts[1:]):
            if hi > lo:
                bounds.append((split, lo, hi))

    segments: dict[str, list[Segment]] = {s: [] for s in SPLITS}
    for split, lo, hi in bounds:
        first = int(np.searchsorted(starts, lo, side="right") - 1)
        for k in range(first, len(clip_frames)):
            clip_lo, clip_hi = int(clip_starts[k]), int(starts[k + 1])
            if clip_lo >= hi:
                break
            a, b = max(lo, clip_lo), min(hi, clip_hi)
            if b > a:
                segments[split].append(Segment(clip_frames[k][0], a - clip_lo, b - clip_lo))
    return segments


def dataset_split(dataset: PreparedDataset) -> dict[str, list[Segment]]:
    """The dataset's split. Ten blocks; with many short clips (GRID) the held-out parts are whole
    clips and there are fewer blocks if needed to give every part at least one clip; with fewer
    than ten clips every cut falls where it lands, inside clips. A small dataset gets fewer
    blocks, so that every validation and test piece holds at least two 2-s windows (a minute of
    recordings: one block, the last 6 s validating and testing)."""
    clip_frames = [(c["id"], c["frames"]) for c in dataset.clips]
    total = sum(n for _, n in clip_frames)
    blocks = max(1, min(10, int(total * 0.1) // MIN_HELD_OUT_FRAMES))
    if len(clip_frames) < 10:
        return split_segments(clip_frames, blocks, snap_shorter_than=0)
    short = np.median([n for _, n in clip_frames]) < SNAP_CLIPS_SHORTER_THAN
    return split_segments(clip_frames, max(1, min(blocks, len(clip_frames) // 10)) if short else blocks)
