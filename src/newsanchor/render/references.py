"""Reference mouths: a few frames of the presenter's own mouth (closed, half open, wide open
with teeth) that the lower-face renderer copies texture from.

Chosen automatically from the recordings' training frames by how open the mouth is (inner-lip
gap in inter-ocular distances) and, for the open one, by how much of the mouth's inside is
bright and grey (teeth). At render time each reference is warped so that its head pose matches
the frame being rendered (:func:`align_reference`): a similarity fitted on the eyes and nose,
which do not move when the mouth does, so the upper teeth land where they belong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..features.mouth import face_pose

# Mouth states the references cover, in channel order, with the openness quantile each is drawn
# from (closed: the 3rd percentile; half: the median of the open half; open: the widest).
STATES = ("closed", "half", "open")
STATE_QUANTILES = (0.03, 0.75, 0.995)
# A mouth whose inner lips part less than this (IODs) at its widest is "never open": teeth must be
# invented, and the anchor creator is told.
OPEN_ENOUGH = 0.12
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
INNER_MOUTH = list(range(60, 68))
# Points that stay put when the mouth moves: eye corners and the nose bridge and bottom.
STABLE_POINTS = list(range(27, 36)) + list(range(36, 48))


def mouth_openness(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap ``[...]`` in IODs of landmarks ``[..., 68, 2]`` (NaN where they are)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    gaps = np.mean([np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1) for a, b in INNER_LIP_PAIRS],
                   axis=0)
    with np.errstate(invalid="ignore"):
        return gaps / face_pose(landmarks).scale


def teeth_score(crop: np.ndarray, landmarks: np.ndarray) -> float:
    """Share of the inner-mouth polygon that looks like teeth: brighter than the median of the
    face's lower half and low in saturation. crop [S, S, 3] RGB uint8, landmarks [68, 2]."""
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[INNER_MOUTH]).astype(np.int32)], 1)
    inside = mask.astype(bool)
    if inside.sum() < 4:
        return 0.0
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    face = np.zeros_like(mask)
    cv2.fillPoly(face, [np.round(landmarks[list(range(2, 15)) + [35, 34, 33, 32, 31]]).astype(np.int32)], 1)
    skin_value = float(np.median(hsv[..., 2][face.astype(bool) & ~inside])) if (face.astype(bool) & ~inside).any() else 128.0
    teeth = (hsv[..., 2] >= skin_value) & (hsv[..., 1] < 90)
    return float(teeth[inside].mean())


def choose_candidates(openness: np.ndarray, pool: int = 8) -> list[np.ndarray]:
    """Per state of :data:`STATES`, the indices ``[≤ pool]`` of frames nearest its openness
    quantile (NaN openness never chosen); the first of each is the state's best."""
    valid = np.flatnonzero(np.isfinite(openness))
    if valid.size == 0:
        raise ValueError("choose_candidates: no frame with a face")
    values = openness[valid]
    out = []
    for q in STATE_QUANTILES:
        target = np.quantile(values, q)
        order = np.argsort(np.abs(values - target), kind="stable")[:pool]
        out.append(valid[order])
    return out


@dataclass(frozen=True)
class ReferenceMouths:
    """The references of one anchor: crops ``[K, S, S, 3]`` uint8 RGB, landmarks ``[K, 68, 2]``
    float32 (crop pixels), and per reference its state name and openness (IODs)."""

    crops: np.ndarray
    landmarks: np.ndarray
    states: tuple[str, ...]
    openness: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"crops": self.crops, "landmarks": self.landmarks, "states": np.array(self.states),
                "openness": self.openness}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ReferenceMouths:
        crops, landmarks = np.asarray(arrays["crops"], np.uint8), np.asarray(arrays["landmarks"], np.float32)
        if crops.ndim != 4 or crops.shape[-1] != 3 or landmarks.shape != (len(crops), 68, 2):
            raise ValueError(f"reference mouths: crops {crops.shape} and landmarks {landmarks.shape} do not fit")
        return cls(crops, landmarks, tuple(str(s) for s in arrays["states"]), np.asarray(arrays["openness"], np.float32))

    def aligned(self, target_landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Every reference warped to the target's pose and cut to the region: ``[K, h, w, 3]`` uint8."""
        return np.stack([align_reference(c, lm, target_landmarks, box) for c, lm in zip(self.crops, self.landmarks)]) \
            if len(self.crops) else np.zeros((0, box[3], box[2], 3), np.uint8)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) ``[2, 3]`` mapping points
    ``source [P, 2]`` onto ``target [P, 2]`` (Umeyama 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    cov = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / max((s ** 2).sum() / len(source), 1e-12)
    matrix = scale * rotation
    return np.hstack([matrix, (mu_t - matrix @ mu_s)[:, None]])


def align_reference(crop: np.ndarray, reference_landmarks: np.ndarray, target_landmarks: np.ndarray,
                    box: tuple[int, int, int, int]) -> np.ndarray:
    """A reference crop ``[S, S, 3]`` warped so that its eyes and nose land on the target's, cut to
    the region ``box = (x0, y0, w, h)``: ``[h, w, 3]`` uint8."""
    x0, y0, w, h = box
    matrix = similarity(reference_landmarks[STABLE_POINTS], target_landmarks[STABLE_POINTS])
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(crop, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


REFERENCES_FILE = "references.npz"


def load_reference_mouths(folder: str | Path) -> ReferenceMouths:
    """The reference mouths saved beside a lower-face renderer (``folder/references.npz``).

    Raises:
        RendererError: missing or unreadable, naming the file.
    """
    from .pix2pixhd import RendererError

    path = Path(folder) / REFERENCES_FILE
    try:
        with np.load(path) as arrays:
            return ReferenceMouths.from_arrays({k: arrays[k] for k in arrays.files})
    except FileNotFoundError:
        raise RendererError(path, "missing (a lower-face renderer needs its reference mouths)") from None
    except (OSError, ValueError, KeyError) as err:
        raise RendererError(path, f"not readable reference mouths ({err})") from None
