"""Audio→mouth training data: windows of 200 MFCC / 50 mouth frames over the dataset's fixed time
split (:func:`newsanchor.dataset.dataset_split`).

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

from ..dataset import PreparedDataset, Segment
from ..features.audio import normalise_mfcc

WINDOW = 50  # mouth frames per window (2 s); 200 MFCC frames
MFCC_PER_FRAME = 4


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
