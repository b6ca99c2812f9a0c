"""Training pairs for the lower-face renderer: (map + masked frame + reference mouths, real region).

Decoding a random frame of an H.264 crop video costs up to a key-frame interval of decoding, so
the regions of a split's frames are cut once, in one sequential pass, into a cache of the run
(:class:`RegionCache`: memory-mapped arrays on disk, so memory stays bounded whatever the
dataset's length; ~90 kB a frame at 256²). Reference mouths come from the training split
(:func:`choose_references`): a small pool per mouth state, from which each training pair draws at
random (so the renderer learns to use any good reference, not one frame), while evaluation and
synthesis use each pool's best (stored with the renderer as ``references.npz``).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..dataset import PreparedDataset, Segment
from ..features.mouth import mouth_box
from ..render.inputs import lower_face_input, region_alpha
from ..render.references import (OPEN_ENOUGH, STATES, ReferenceMouths, choose_bank, choose_candidates,
                                 mouth_openness, mouth_shape, nearest_mouths, teeth_score, warp_references)

log = logging.getLogger("newsanchor.train")
CACHE_VERSION = 1
# A bank mouth from within this many frames of a training frame's own moment (same clip) is never
# among its references: at synthesis the moment being rendered is not in the bank, and a reference
# that is the frame itself would teach the renderer to copy, not to fit.
OWN_MOMENT_FRAMES = 50


@dataclass
class RegionCache:
    """Regions ``[N, h, w, 3]`` uint8, their edges ``[N, h, w]`` bool, landmarks ``[N, 68, 2]``
    float32 (crop pixels), and ``clip [N]`` int32 (index into ``clip_ids``) and ``frame [N]`` int32."""

    regions: np.ndarray
    edges: np.ndarray
    landmarks: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    clip_ids: list[str]

    def __len__(self) -> int:
        return len(self.regions)

    @classmethod
    def open(cls, folder: Path) -> RegionCache:
        meta = json.loads((folder / "cache.json").read_text())
        return cls(np.load(folder / "regions.npy", mmap_mode="r"), np.load(folder / "edges.npy", mmap_mode="r"),
                   np.load(folder / "landmarks.npy"), np.load(folder / "clip.npy"), np.load(folder / "frame.npy"),
                   meta["clip_ids"])


def build_region_cache(dataset: PreparedDataset, segments: list[Segment], box: tuple[int, int, int, int],
                       folder: Path, on_frames: Callable[[int, int], None] | None = None) -> RegionCache:
    """Cut the region ``box`` of every face-found frame of ``segments`` into ``folder`` (reused when
    it already holds the same frames and box; written under a temporary name, then renamed)."""
    key = {"version": CACHE_VERSION, "dataset": str(dataset.root), "box": list(box),
           "segments": [[s.clip, s.start, s.stop] for s in segments]}
    if (folder / "cache.json").is_file() and json.loads((folder / "cache.json").read_text()).get("key") == key:
        return RegionCache.open(folder)
    x0, y0, w, h = box
    found = {s.clip: dataset.arrays(s.clip)["face_found"] for s in segments}
    total = int(sum(found[s.clip][s.start:s.stop].sum() for s in segments))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    regions = np.lib.format.open_memmap(tmp / "regions.npy", "w+", np.uint8, (total, h, w, 3))
    edges = np.lib.format.open_memmap(tmp / "edges.npy", "w+", np.bool_, (total, h, w))
    landmarks = np.zeros((total, 68, 2), np.float32)
    clip_index, frame_index = np.zeros(total, np.int32), np.zeros(total, np.int32)
    clip_ids = sorted({s.clip for s in segments})
    clip_number = {clip: i for i, clip in enumerate(clip_ids)}
    n = 0
    by_clip: dict[str, list[Segment]] = {}
    for s in segments:
        by_clip.setdefault(s.clip, []).append(s)
    for clip, clip_segments in by_clip.items():
        wanted = np.zeros(len(found[clip]), bool)
        for s in clip_segments:
            wanted[s.start:s.stop] = True
        wanted &= found[clip]
        last = int(np.flatnonzero(wanted)[-1]) if wanted.any() else -1
        clip_landmarks = dataset.arrays(clip)["landmarks"]
        for k, (crop, edge) in enumerate(zip(dataset.crops(clip), dataset.edge_maps(clip))):
            if k > last:
                break
            if not wanted[k]:
                continue
            regions[n] = crop[y0:y0 + h, x0:x0 + w]
            edges[n] = edge[y0:y0 + h, x0:x0 + w]
            landmarks[n], clip_index[n], frame_index[n] = clip_landmarks[k], clip_number[clip], k
            n += 1
            if on_frames and n % 200 == 0:
                on_frames(n, total)
    if n != total:
        raise RuntimeError(f"{dataset.root}: cut {n} regions, expected {total}")
    regions.flush()
    edges.flush()
    del regions, edges
    for name, array in (("landmarks", landmarks), ("clip", clip_index), ("frame", frame_index)):
        np.save(tmp / f"{name}.npy", array)
    (tmp / "cache.json").write_text(json.dumps({"key": key, "clip_ids": clip_ids, "frames": total}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    if on_frames:
        on_frames(total, total)
    return RegionCache.open(folder)


@dataclass
class ReferencePools:
    """Per mouth state, candidate crops ``[P, S, S, 3]`` and landmarks ``[P, 68, 2]``; item 0 is the best."""

    crops: list[np.ndarray]
    landmarks: list[np.ndarray]
    openness: list[np.ndarray]

    def best(self, count: int) -> ReferenceMouths:
        """The first ``count`` states' best candidates."""
        return ReferenceMouths(np.stack([c[0] for c in self.crops[:count]]) if count else np.zeros((0, 1, 1, 3), np.uint8),
                               np.stack([lm[0] for lm in self.landmarks[:count]]).astype(np.float32) if count
                               else np.zeros((0, 68, 2), np.float32),
                               STATES[:count], np.array([o[0] for o in self.openness[:count]], np.float32))


def choose_references(dataset: PreparedDataset, cache: RegionCache, pool: int = 8, teeth_candidates: int = 32,
                      source: str = "") -> ReferencePools:
    """Reference pools from the cached training frames (see :mod:`newsanchor.render.references`).

    The open state's candidates are the ``teeth_candidates`` widest mouths, ranked by openness ×
    (0.5 + visible teeth). Warns, naming the dataset, when the widest mouth is barely open."""
    openness = mouth_openness(cache.landmarks)
    candidates = choose_candidates(openness, pool)
    widest = np.argsort(-np.nan_to_num(openness, nan=-1.0), kind="stable")[:teeth_candidates]
    crops_by_state, landmarks_by_state, openness_by_state = [], [], []
    for state, indices in zip(STATES, candidates):
        if state != "open":
            crops = _full_crops(dataset, cache, indices)
        else:
            wide_crops = _full_crops(dataset, cache, widest)
            teeth = np.array([teeth_score(c, cache.landmarks[i]) for c, i in zip(wide_crops, widest)])
            order = np.argsort(-(openness[widest] * (0.5 + teeth)), kind="stable")[:pool]
            indices = widest[order]
            crops = [wide_crops[j] for j in order]
            if openness[indices[0]] < OPEN_ENOUGH:
                log.warning("%s: the presenter's mouth never opens wide (widest inner-lip gap %.2f IOD, under %.2f): "
                            "no open-mouth reference with teeth; the renderer will have to invent them",
                            source or dataset.root, openness[indices[0]], OPEN_ENOUGH)
            elif teeth[order[0]] < 0.05:
                log.warning("%s: no reference mouth shows teeth (at most %.0f%% of the open mouth looks like teeth)",
                            source or dataset.root, 100 * teeth[order[0]])
        crops_by_state.append(np.stack(crops))
        landmarks_by_state.append(cache.landmarks[indices])
        openness_by_state.append(openness[indices])
    return ReferencePools(crops_by_state, landmarks_by_state, openness_by_state)


def _full_crops(dataset: PreparedDataset, cache: RegionCache, indices: np.ndarray) -> list[np.ndarray]:
    """The whole crops ``[S, S, 3]`` of cached frames ``indices``, decoded from the dataset."""
    return [dataset.crop_frames(cache.clip_ids[int(cache.clip[i])], [int(cache.frame[i])])[0] for i in indices]


@dataclass
class ReferenceBank:
    """Bank mouths (``reference_choice="nearest"``) and where each came from: the clip's name
    ``clips [N]`` and frame ``frames [N]`` int32, so a training frame never reads its own moment."""

    mouths: ReferenceMouths
    clips: np.ndarray
    frames: np.ndarray


def choose_reference_bank(dataset: PreparedDataset, cache: RegionCache, size: int, source: str = "") -> ReferenceBank:
    """``size`` training frames whose mouths cover the presenter's shapes (:func:`choose_bank`),
    closed first. Warns, naming the dataset, when the widest of them is barely open."""
    picks = choose_bank(mouth_shape(cache.landmarks), size)
    openness = mouth_openness(cache.landmarks[picks]).astype(np.float32)
    if np.nanmax(openness) < OPEN_ENOUGH:
        log.warning("%s: the presenter's mouth never opens wide (widest inner-lip gap %.2f IOD, under %.2f): "
                    "no open mouth among the reference mouths; the renderer will have to invent teeth",
                    source or dataset.root, np.nanmax(openness), OPEN_ENOUGH)
    mouths = ReferenceMouths(np.stack(_full_crops(dataset, cache, picks)), cache.landmarks[picks].astype(np.float32),
                             ("bank",) * len(picks), openness)
    return ReferenceBank(mouths, np.array([cache.clip_ids[int(c)] for c in cache.clip[picks]]),
                         cache.frame[picks].astype(np.int32))


class LowerFaceFrames(torch.utils.data.Dataset):
    """Cached frames as ``(inputs [C, h, w], real [3, h, w], alpha [1, h, w], weight [1, h, w])``
    float32 tensors; ``weight`` is 1 + ``mouth_weight`` inside the frame's mouth box.

    ``randomise``: draw each reference from its pool and widen the mask by a neighbouring frame's
    face (as synthesis widens it by the template's); otherwise the pools' best and the frame's own mask.
    The draws are seeded by ``(seed, draw)`` for an item ``(index, draw)`` (the training loader's,
    :class:`newsanchor.train.renderer.StepBatches`), by ``(seed, index)`` for a plain index.
    With a ``bank`` instead of pools, the references are the bank's mouths shaped most like the
    frame's (nearest first, never from the frame's own moment): the ``references`` nearest, or
    (``randomise``) that many of the ``2 × references`` nearest.
    """

    def __init__(self, cache: RegionCache, pools: ReferencePools | None, box: tuple[int, int, int, int], size: int, *,
                 references: int, masked_frame: bool = True, use_edges: bool = True, randomise: bool = True,
                 mouth_weight: float = 2.0, neighbour_frames: int = 12, reference_warp: str = "head",
                 bank: ReferenceBank | None = None, match_colours: bool = False, seed: int = 0,
                 reference_resample: str = "linear"):
        if (pools is None) == (bank is None):
            raise ValueError("LowerFaceFrames: give reference pools or a bank, not both")
        self.cache, self.pools, self.bank, self.box, self.size = cache, pools, bank, box, size
        self.reference_warp, self.match_colours = reference_warp, match_colours
        self.references, self.masked_frame, self.use_edges = references, masked_frame, use_edges
        self.randomise, self.mouth_weight, self.neighbour_frames = randomise, mouth_weight, neighbour_frames
        self.seed, self.reference_resample = seed, reference_resample

    def __len__(self) -> int:
        return len(self.cache)

    def _neighbour(self, index: int, rng: np.random.Generator) -> int:
        other = index + int(rng.integers(-self.neighbour_frames, self.neighbour_frames + 1))
        if 0 <= other < len(self.cache) and self.cache.clip[other] == self.cache.clip[index]:
            return other
        return index

    def _references(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """The frame's reference crops ``[K, S, S, 3]`` and their landmarks ``[K, 68, 2]``, unwarped."""
        k = self.references
        if self.bank is not None:
            bank, cache = self.bank, self.cache
            own = (bank.clips == cache.clip_ids[int(cache.clip[index])]) \
                & (np.abs(bank.frames - int(cache.frame[index])) < OWN_MOMENT_FRAMES)
            order = nearest_mouths(bank.mouths.shapes, mouth_shape(cache.landmarks[index]), k if rng is None else 2 * k, ~own)
            if rng is not None:
                order = order[np.sort(rng.choice(len(order), min(k, len(order)), replace=False))]
            return bank.mouths.crops[order], bank.mouths.landmarks[order]
        pools = self.pools
        assert pools is not None  # one of the two, checked in __init__
        picks = [0 if rng is None else int(rng.integers(len(c))) for c in pools.crops[:k]]
        if not picks:
            return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 68, 2), np.float32)
        return (np.stack([pools.crops[s][p] for s, p in enumerate(picks)]),
                np.stack([pools.landmarks[s][p] for s, p in enumerate(picks)]))

    def __getitem__(self, item: int | tuple[int, int]):
        index, draw = item if isinstance(item, tuple) else (item, item)
        cache, (x0, y0, w, h) = self.cache, self.box
        rng = np.random.default_rng([self.seed, draw]) if self.randomise else None
        landmarks = cache.landmarks[index]
        faces = landmarks[None] if rng is None else np.stack([landmarks, cache.landmarks[self._neighbour(index, rng)]])
        alpha = region_alpha(faces, self.box)
        edges = np.zeros((self.size, self.size), bool)
        edges[y0:y0 + h, x0:x0 + w] = cache.edges[index]
        region = np.asarray(cache.regions[index])
        crops, crop_landmarks = self._references(index, rng)
        refs = warp_references(crops, crop_landmarks, landmarks, self.box, self.reference_warp,
                               self.reference_resample) if len(crops) else np.zeros((0, h, w, 3), np.uint8)
        inputs = lower_face_input(edges, landmarks, region, alpha, refs, self.box, use_edges=self.use_edges,
                                  masked_frame=self.masked_frame, match_colours=self.match_colours,
                                  reference_warp=self.reference_warp)
        weight = np.ones((h, w), np.float32)
        mx0, my0, mx1, my1 = mouth_box(landmarks - (x0, y0), max(h, w))
        weight[my0:my1, mx0:mx1] += self.mouth_weight
        real = region.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        return (torch.from_numpy(inputs), torch.from_numpy(real), torch.from_numpy(alpha[None].astype(np.float32)),
                torch.from_numpy(weight[None]))
