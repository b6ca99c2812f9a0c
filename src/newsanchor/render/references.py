"""Reference mouths: a few frames of the presenter's own mouth (closed, half open, wide open
with teeth) that the lower-face renderer copies texture from.

Chosen automatically from the recordings' training frames by how open the mouth is (inner-lip
gap in inter-ocular distances) and, for the open one, by how much of the mouth's inside is
brighter and greyer than the lips around it (teeth). At render time each reference is warped so that its head pose matches
the frame being rendered (:func:`align_reference`): a similarity fitted on the eyes and nose,
which do not move when the mouth does, so the upper teeth land where they belong — and, with
``warp="mouth"``, then bent by a thin-plate spline that carries the reference's jaw, nose bottom
and lips onto the frame's drawn ones (:func:`warp_reference`): the lips and teeth of the
reference arrive where the frame's mouth is, open as wide as it is, and the renderer has to
clean them up rather than move them (:func:`warp_references` does all of a frame's references
with one spline solve).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..features.mouth import face_pose, normalise_mouth

if TYPE_CHECKING:  # lower_face reads this module's names at import
    from .lower_face import LowerFaceConfig

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
# Points the thin-plate spline carries from the reference onto the frame: jaw, nose bottom, lips.
WARP_POINTS = list(range(2, 15)) + list(range(31, 36)) + list(range(48, 68))
WARPS = ("head", "mouth", "mouth-only", "face-only")
# The area a "mouth-only" reference keeps: the face below the nose bottom, inside the jaw from the
# third to the thirteenth point (a reference's neck, collar and outer cheeks come from another
# moment's clothes and light, and a network that may copy them does).
SUPPORT_JAW = list(range(3, 14))
# The area a "face-only" reference keeps: the whole face inside the jaw, up to the top of the nose
# bridge (its cheeks, jaw line and chin, but not the neck and collar below).
FACE_SUPPORT = list(range(17)) + [27]
SUPPORT_NOSE = [35, 34, 33, 32, 31]
# How a frame's references are picked from those stored: "states", all of them (one per mouth state
# of STATES); "nearest", the K of a larger bank whose mouths are shaped most like the frame's.
CHOICES = ("states", "nearest")
# How a reference's pixels are resampled onto the frame. Bilinear weights average neighbours (a
# half-pixel shift halves a pattern of single-pixel lines), so a bilinear warp costs the copied lips
# and teeth about a quarter of their detail; bicubic keeps it (benchmarks/RESULTS.md, "Bicubic warps").
RESAMPLING = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
_TPS_GRID = 8  # the spline is evaluated every 8 px and interpolated between (smooth by construction)


def mouth_openness(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap ``[...]`` in IODs of landmarks ``[..., 68, 2]`` (NaN where they are)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    gaps = np.mean([np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1) for a, b in INNER_LIP_PAIRS],
                   axis=0)
    with np.errstate(invalid="ignore"):
        return gaps / face_pose(landmarks).scale


def mouth_shape(landmarks: np.ndarray) -> np.ndarray:
    """The mouth's shape as a vector ``[..., 40]``: the 20 lip points relative to the nose, eye line
    level, in IODs (:func:`newsanchor.features.mouth.normalise_mouth`), so that head pose and scale
    do not count."""
    points = normalise_mouth(np.asarray(landmarks, np.float64))
    return points.reshape(*points.shape[:-2], -1).astype(np.float32)


def nearest_mouths(bank_shapes: np.ndarray, shape: np.ndarray, count: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices ``[count]`` of the bank's mouths (shapes ``[N, 40]``) nearest ``shape [40]``, nearest
    first, among ``allowed [N]`` bool where given (too few allowed: the nearest of the others fill up)."""
    distance = np.linalg.norm(bank_shapes - shape, axis=-1)
    if allowed is not None:
        distance = np.where(allowed, distance, distance + 1e6)
    return np.argsort(distance, kind="stable")[:count]


def choose_bank(shapes: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices ``[≤ size]`` of frames whose mouths cover the shapes ``[N, 40]`` (NaN rows never
    chosen): k-means with ``size`` centres, and per centre the frame nearest it (a real mouth, not
    an average), in order of openness of the centre's lips (closed first)."""
    valid = np.flatnonzero(np.isfinite(shapes).all(-1))
    if valid.size == 0:
        raise ValueError("choose_bank: no frame with a face")
    if valid.size <= size:
        return valid
    data = shapes[valid].astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    _, labels, centres = cv2.kmeans(data, size, np.zeros((len(data), 1), np.int32), criteria, 3, cv2.KMEANS_PP_CENTERS)
    chosen = []
    for c, centre in enumerate(centres):
        members = np.flatnonzero(labels.ravel() == c)
        if members.size:
            chosen.append(valid[members[np.argmin(np.linalg.norm(data[members] - centre, axis=-1))]])
    chosen_arr = np.unique(np.array(chosen))
    # points 13..19 of the 20 are the inner lips (60..67): their vertical spread is the opening
    opening = np.ptp(shapes[chosen_arr].reshape(len(chosen_arr), 20, 2)[:, 12:, 1], axis=-1)
    return chosen_arr[np.argsort(opening, kind="stable")]


def teeth_score(crop: np.ndarray, landmarks: np.ndarray) -> float:
    """Share of the inner-mouth polygon that looks like teeth: brighter and less saturated than
    the median of the lips around it (teeth beside a dark mouth and red lips; measured against the
    lips, not the skin, because teeth are often darker than a lit face). crop [S, S, 3] RGB uint8,
    landmarks [68, 2]."""
    inner = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(landmarks[INNER_MOUTH]).astype(np.int32)], 1)
    outer = np.zeros_like(inner)
    cv2.fillPoly(outer, [np.round(landmarks[48:60]).astype(np.int32)], 1)
    inside = inner.astype(bool)
    lips = outer.astype(bool) & ~inside
    if inside.sum() < 4 or lips.sum() < 4:
        return 0.0
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    value, saturation = hsv[..., 2], hsv[..., 1]
    teeth = (value > np.median(value[lips])) & (saturation < np.median(saturation[lips]))
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

    def __len__(self) -> int:
        return len(self.crops)

    @cached_property
    def shapes(self) -> np.ndarray:
        """:func:`mouth_shape` of every reference, ``[K, 40]``."""
        return mouth_shape(self.landmarks)

    def nearest(self, target_landmarks: np.ndarray, count: int) -> np.ndarray:
        """Indices ``[count]`` of the references whose mouths are shaped most like the target's
        (``[68, 2]``), nearest first."""
        return nearest_mouths(self.shapes, mouth_shape(target_landmarks), count)

    def aligned(self, target_landmarks: np.ndarray, box: tuple[int, int, int, int], warp: str = "head",
                count: int | None = None, resample: str = "linear") -> np.ndarray:
        """References warped onto the target (:func:`warp_reference`) and cut to the region:
        ``[K, h, w, 3]`` uint8 — all of them in stored order, or (a bank holding more than
        ``count``) the ``count`` shaped most like the target's mouth, nearest first."""
        if count is None or count >= len(self.crops):
            return warp_references(self.crops, self.landmarks, target_landmarks, box, warp, resample)
        return self.warped(self.nearest(target_landmarks, count), target_landmarks, box, warp, resample)

    def warped(self, picks: np.ndarray, target_landmarks: np.ndarray, box: tuple[int, int, int, int],
               warp: str = "head", resample: str = "linear") -> np.ndarray:
        """The references ``picks [K]`` warped onto the target and cut to the region: ``[K, h, w, 3]`` uint8."""
        return warp_references(self.crops[picks], self.landmarks[picks], target_landmarks, box, warp, resample)


class ReferenceChooser:
    """Chooses a bank's references for frames rendered in order: the ``count`` nearest each frame's
    mouth (:meth:`ReferenceMouths.nearest`), except that the previous frame's choice is kept while
    its mean shape distance is at most ``1 + hold`` times the nearest's. Each change of reference
    brings another moment's lip texture, so a choice made afresh every frame flickers as the mouth
    passes between two bank shapes; ``hold`` 0 is the plain nearest choice.
    """

    def __init__(self, mouths: ReferenceMouths, count: int, hold: float = 0.0):
        if hold < 0:
            raise ValueError(f"ReferenceChooser: hold must be >= 0, got {hold}")
        self.mouths, self.count, self.hold = mouths, min(count, len(mouths)), hold
        self._previous: np.ndarray | None = None

    def __call__(self, target_landmarks: np.ndarray) -> np.ndarray:
        """Indices ``[count]`` into the bank for the next frame's landmarks ``[68, 2]``."""
        shape = mouth_shape(target_landmarks)
        picks = nearest_mouths(self.mouths.shapes, shape, self.count)
        if self._previous is not None and self.hold > 0:
            distance = np.linalg.norm(self.mouths.shapes - shape, axis=-1)
            if distance[self._previous].mean() <= (1.0 + self.hold) * distance[picks].mean():
                picks = self._previous
        self._previous = picks
        return picks

    def aligned(self, target_landmarks: np.ndarray, box: tuple[int, int, int, int], warp: str = "head",
                resample: str = "linear") -> np.ndarray:
        """The next frame's chosen references warped onto it and cut to the region ``[K, h, w, 3]``."""
        return self.mouths.warped(self(target_landmarks), target_landmarks, box, warp, resample)


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
                    box: tuple[int, int, int, int], resample: str = "linear") -> np.ndarray:
    """A reference crop ``[S, S, 3]`` warped so that its eyes and nose land on the target's, cut to
    the region ``box = (x0, y0, w, h)``: ``[h, w, 3]`` uint8 (``resample``: a :data:`RESAMPLING` name)."""
    x0, y0, w, h = box
    matrix = similarity(reference_landmarks[STABLE_POINTS], target_landmarks[STABLE_POINTS])
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(crop, matrix, (w, h), flags=RESAMPLING[resample], borderMode=cv2.BORDER_REPLICATE)


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """Thin-plate radial function ``r² log r²`` of squared distances (0 at 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, r2 * np.log(r2), 0.0)


def thin_plate_spline(source: np.ndarray, target: np.ndarray, points: np.ndarray, smoothing: float = 1e-3) -> np.ndarray:
    """The thin-plate spline through control points ``source [P, 2] → target [P, D]`` evaluated at
    ``points [N, 2]``: ``[N, D]`` (D = 2 for one warp; several warps from the same source points
    side by side cost one solve). ``smoothing`` (in units of the points' spread squared) keeps
    coinciding control points (a closed mouth's inner lips) from making the system singular."""
    scale = max(float(np.ptp(source, axis=0).max()), 1e-6)
    s, q = source / scale, points / scale
    n = len(s)
    kernel = _tps_kernel(((s[:, None] - s[None]) ** 2).sum(-1)) + smoothing * np.eye(n)
    affine = np.hstack([np.ones((n, 1)), s])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n], system[:n, n:], system[n:, :n] = kernel, affine, affine.T
    rhs = np.zeros((n + 3, target.shape[1]))
    rhs[:n] = target
    coefficients = np.linalg.solve(system, rhs)
    basis = _tps_kernel(((q[:, None] - s[None]) ** 2).sum(-1))
    return basis @ coefficients[:n] + np.hstack([np.ones((len(q), 1)), q]) @ coefficients[n:]


def warp_reference(crop: np.ndarray, reference_landmarks: np.ndarray, target_landmarks: np.ndarray,
                   box: tuple[int, int, int, int], warp: str = "mouth", resample: str = "linear") -> np.ndarray:
    """One reference crop ``[S, S, 3]`` brought onto the target face (see :func:`warp_references`),
    cut to the region: ``[h, w, 3]`` uint8."""
    return warp_references(crop[None], reference_landmarks[None], target_landmarks, box, warp, resample)[0]


def warp_references(crops: np.ndarray, reference_landmarks: np.ndarray, target_landmarks: np.ndarray,
                    box: tuple[int, int, int, int], warp: str = "mouth", resample: str = "linear") -> np.ndarray:
    """Reference crops ``[K, S, S, 3]`` (landmarks ``[K, 68, 2]``) brought onto the target face
    ``[68, 2]``, cut to the region ``box = (x0, y0, w, h)``: ``[K, h, w, 3]`` uint8.

    ``warp="head"``: :func:`align_reference` (eyes and nose onto the target's). ``"mouth"``: then
    a thin-plate spline moves each reference's jaw, nose bottom and lips (:data:`WARP_POINTS`)
    onto the target's, while the region's border stays where the head alignment put it (one
    spline solve for all K: the target's points are the same). ``"mouth-only"`` and
    ``"face-only"``: as ``"mouth"``, then black outside the target's mouth-and-chin area or its
    face inside the jaw (:func:`reference_support`). ``resample``: how pixels are read
    (:data:`RESAMPLING`).
    """
    if warp not in WARPS:
        raise ValueError(f"warp must be one of {WARPS}, got {warp!r}")
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {tuple(RESAMPLING)}, got {resample!r}")
    support = reference_support(target_landmarks, box, warp)
    if support is not None:
        warped = warp_references(crops, reference_landmarks, target_landmarks, box, "mouth", resample)
        return (warped * support[None, ..., None]).round().astype(np.uint8)
    x0, y0, w, h = box
    if warp == "head" or len(crops) == 0:
        return np.stack([align_reference(c, lm, target_landmarks, box, resample) for c, lm in zip(crops, reference_landmarks)]) \
            if len(crops) else np.zeros((0, h, w, 3), np.uint8)
    heads = [similarity(lm[STABLE_POINTS], target_landmarks[STABLE_POINTS]) for lm in reference_landmarks]
    moved = [lm[WARP_POINTS] @ m[:, :2].T + m[:, 2] for lm, m in zip(reference_landmarks, heads)]
    border = np.array([(x0 + w * fx, y0 + h * fy) for fx in (0, 0.5, 1) for fy in (0, 0.5, 1) if (fx, fy) != (0.5, 0.5)])
    control_target = np.vstack([target_landmarks[WARP_POINTS], border])
    control_sources = np.hstack([np.vstack([m, border]) for m in moved])  # [P, 2K]
    gx = np.linspace(x0, x0 + w - 1, max(2, -(-w // _TPS_GRID) + 1))
    gy = np.linspace(y0, y0 + h - 1, max(2, -(-h // _TPS_GRID) + 1))
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    # target pixel → where it lies on each head-aligned reference → that reference crop's pixel
    aligned = thin_plate_spline(control_target, control_sources, grid)
    rows, cols = _interpolation_weights(h, len(gy)), _interpolation_weights(w, len(gx))
    out = np.empty((len(crops), h, w, 3), np.uint8)
    for k, (crop, head) in enumerate(zip(crops, heads)):
        inverse = cv2.invertAffineTransform(head)
        source = aligned[:, 2 * k:2 * k + 2] @ inverse[:, :2].T + inverse[:, 2]
        coarse = source.reshape(len(gy), len(gx), 2)
        maps = [(rows @ coarse[..., i] @ cols.T).astype(np.float32) for i in (0, 1)]
        out[k] = cv2.remap(crop, maps[0], maps[1], RESAMPLING[resample], borderMode=cv2.BORDER_REPLICATE)
    return out


def reference_support(target_landmarks: np.ndarray, box: tuple[int, int, int, int], warp: str) -> np.ndarray | None:
    """Where a reference brought by ``warp`` is kept, ``[h, w]`` float32 in [0, 1]:
    :func:`mouth_support` for ``"mouth-only"``, the target's face inside its jaw
    (:data:`FACE_SUPPORT`, feathered alike) for ``"face-only"``, None (everywhere) otherwise."""
    if warp == "mouth-only":
        return mouth_support(target_landmarks, box)
    if warp == "face-only":
        return _feathered_polygon(np.asarray(target_landmarks, np.float64)[FACE_SUPPORT], box)
    return None


def mouth_support(target_landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Where a ``"mouth-only"`` reference is kept: the polygon of the target's jaw
    (:data:`SUPPORT_JAW`) closed by its nose bottom, feathered over 3 % of the region's width
    (0.5 on the polygon's edge), in the region ``box``: ``[h, w]`` float32 in [0, 1]."""
    return _feathered_polygon(np.asarray(target_landmarks, np.float64)[SUPPORT_JAW + SUPPORT_NOSE], box)


def _feathered_polygon(points: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The polygon ``points [P, 2]`` (crop pixels) filled in the region ``box`` and feathered over
    3 % of its width: ``[h, w]`` float32 in [0, 1]."""
    x0, y0, w, h = box
    polygon = points - (x0, y0)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.03 * w))


def _interpolation_weights(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation ``[n_out, n_in]`` from ``n_in`` samples spanning the same first and last
    position as the ``n_out`` outputs."""
    position = np.linspace(0, n_in - 1, n_out)
    low = np.minimum(np.floor(position).astype(int), n_in - 2)
    frac = position - low
    weights = np.zeros((n_out, n_in))
    weights[np.arange(n_out), low] = 1 - frac
    weights[np.arange(n_out), low + 1] = frac
    return weights


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


def reference_chooser(config: LowerFaceConfig, mouths: ReferenceMouths) -> ReferenceChooser | None:
    """The chooser of a renderer whose frames read the nearest of a bank (None for one that reads
    every stored reference in their stored order)."""
    if config.reference_choice != "nearest" or config.references >= len(mouths):
        return None
    return ReferenceChooser(mouths, config.references, config.reference_hold)
