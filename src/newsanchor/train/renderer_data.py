"""Renderer training pairs from a prepared dataset: (facial map + appearance, real face crop).

The input (:mod:`newsanchor.render.inputs`) is drawn from the frame's own landmarks and edges
(at inference: template edges + generated mouth — the same function) and the clip's first
frame with a face as the appearance reference (at inference: the template frame).

Splits are the dataset's (``dataset.dataset_split``): the renderer is evaluated on the
same held-out contiguous blocks as the audio→mouth models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..dataset import PreparedDataset
from ..render.inputs import appearance_reference, renderer_input, to_image_tensor
from ..dataset import Segment, dataset_split


@dataclass(frozen=True)
class FrameRef:
    clip: str
    frame: int


class RendererFrames(torch.utils.data.Dataset):
    """Face-found frames of the given segments as (input [8, S, S], target [3, S, S]) tensors."""

    def __init__(self, dataset: PreparedDataset, segments: list[Segment], *, use_edges: bool = True):
        self.dataset = dataset
        self.use_edges = use_edges
        self.frames: list[FrameRef] = []
        for seg in segments:
            found = dataset.arrays(seg.clip)["face_found"]
            self.frames += [FrameRef(seg.clip, k) for k in range(seg.start, seg.stop) if found[k]]

    @classmethod
    def split(cls, dataset: PreparedDataset, name: str, *, use_edges: bool = True) -> RendererFrames:
        return cls(dataset, dataset_split(dataset)[name], use_edges=use_edges)

    def __len__(self) -> int:
        return len(self.frames)

    @lru_cache(maxsize=64)
    def _landmarks(self, clip: str) -> np.ndarray:
        return self.dataset.arrays(clip)["landmarks"]

    @lru_cache(maxsize=64)
    def reference(self, clip: str) -> np.ndarray:
        landmarks = self._landmarks(clip)
        first = int(np.flatnonzero(~np.isnan(landmarks[:, 0, 0]))[0])
        return appearance_reference(self.dataset.crop_frames(clip, [first])[0], landmarks[first])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        ref = self.frames[index]
        landmarks = self._landmarks(ref.clip)[ref.frame]
        crop = self.dataset.crop_frames(ref.clip, [ref.frame])[0]
        inputs = renderer_input(self.dataset.edge_map(ref.clip, ref.frame), landmarks, self.reference(ref.clip),
                                 use_edges=self.use_edges)
        return torch.from_numpy(inputs), to_image_tensor(crop)
