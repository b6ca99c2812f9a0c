"""Audio→mouth training data: the dataset's fixed time split, and windows of 200 MFCC / 50 mouth frames.

The split is a property of the dataset, not of a run, so every model is scored on the same test
frames. The clips' timeline (manifest order) is cut into ``blocks`` equal blocks; the first 80%
of each block trains, the next 10% validates, the last 10% tests. Spreading the held-out parts
over the whole recording keeps sessions, lighting and sentence types in every split, and
contiguous pieces keep neighbouring (correlated) frames out of the other splits. Cuts snap to
clip boundaries when clips are short (GRID: 3 s), so held-out material is whole clips; long
recordings are cut inside the clip. Windows never cross a segment edge (nor, therefore, a clip
edge or a split) and never contain a frame without a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dataset import PreparedDataset
from ..features.audio import normalise_mfcc

SPLITS = ("train", "val", "test")
WINDOW = 50  # mouth frames per window (2 s); 200 MFCC frames
MFCC_PER_FRAME = 4
SNAP_CLIPS_SHORTER_THAN = 60 * 25  # frames: such clips are never cut by a split boundary
MIN_HELD_OUT_FRAMES = 2 * WINDOW  # smallest validation / test piece a block may leave


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


@dataclass
class ClipFeatures:
    """One clip's training arrays: mfcc [4T, 13] float32 (normalised), mouth [T, K] float32 (PCA),
    found [T] bool."""

    mfcc: np.ndarray
    mouth: np.ndarray
    found: np.ndarray


def load_features(dataset: PreparedDataset) -> dict[str, ClipFeatures]:
    """Normalised MFCC and PCA mouth features of every clip (small: ~1 MB per minute)."""
    features = {}
    for clip in dataset.clips:
        arrays = dataset.arrays(clip["id"])
        features[clip["id"]] = ClipFeatures(
            mfcc=normalise_mfcc(arrays["mfcc"], dataset.mfcc_stats),
            mouth=np.nan_to_num(dataset.mouth_pca.transform(arrays["mouth"])).astype(np.float32),
            found=arrays["face_found"],
        )
    return features


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


def window_starts(segment: Segment, found: np.ndarray, stride: int, window: int = WINDOW) -> list[int]:
    """Start frames (clip coordinates) of the windows in a segment: every ``stride`` frames plus
    one flush with the segment's end; windows with a face-less frame are left out."""
    if len(segment) < window:
        return []
    starts = list(range(segment.start, segment.stop - window + 1, stride))
    if starts[-1] != segment.stop - window:
        starts.append(segment.stop - window)
    return [s for s in starts if found[s:s + window].all()]


class WindowSet:
    """All windows of one split as index pairs; ``batch(indices)`` gathers them.

    mfcc batches are [B, 200, 13] float32, mouth batches [B, 50, K] float32.
    """

    def __init__(self, features: dict[str, ClipFeatures], segments: list[Segment], stride: int, window: int = WINDOW):
        self.features = features
        self.window = window
        self.index = [(seg.clip, start) for seg in segments for start in window_starts(seg, features[seg.clip].found, stride, window)]

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        mfcc, mouth = [], []
        for i in indices:
            clip, start = self.index[i]
            f = self.features[clip]
            mfcc.append(f.mfcc[start * MFCC_PER_FRAME:(start + self.window) * MFCC_PER_FRAME])
            mouth.append(f.mouth[start:start + self.window])
        return np.stack(mfcc), np.stack(mouth)
