"""Jaw correction (paper §3.2.2; pipeline stage 3, mouth → landmarks).

"Considering the rigid relationship between the jawline and mouth shape, we use a simple
multi-linear regression model to learn how the mouth shape (w, h) affects the offset of the
jawline." The template clip is non-speaking (mouth closed), so pasting a generated open mouth
into it would leave the chin where a closed mouth puts it; the regression moves it.

Frame and units
---------------
The 17 jawline points (dlib 0..16) are expressed in the same normalised face frame as the mouth
(:mod:`newsanchor.features.mouth`)::

    j = R(-angle) @ (p - centre) / scale

(nose centre, eye line horizontal, one unit = one inter-ocular distance), and the mouth shape is
``(w, h) = mouth_size(normalised mouth)``. The regression is::

    jaw_norm ≈ mean_jaw + [w, h, 1] @ coefficients        coefficients: [3, 34]

with the 34 columns the flattened ``[17, 2]`` offsets ``(x0, y0, x1, y1, ..., x16, y16)``.
Correction only ever uses *differences* of predictions, ``(Δw, Δh) @ coefficients[:2]``, so the
intercept and mean cancel; they are kept to make the model a complete description of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from newsanchor.features.mouth import (
    MOUTH,
    N_LANDMARKS,
    FacePose,
    denormalise_mouth,
    face_pose,
    mouth_size,
    normalise_mouth,
)

JAW = slice(0, 17)
N_JAW_POINTS = 17
JAW_DIM = 2 * N_JAW_POINTS  # 34
# Frames whose inner-lip opening is at or below this quantile of the training frames define the
# closed-mouth reference jaw (the "template jaw unchanged" baseline of jaw_error).
CLOSED_MOUTH_QUANTILE = 0.1


def _rotate(points: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """``R(angle) @ p`` for points ``[..., P, 2]``, angles ``[...]`` (same convention as mouth.py)."""
    cos = np.cos(angle)[..., None]
    sin = np.sin(angle)[..., None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


def normalise_jaw(landmarks: np.ndarray, pose: FacePose | None = None) -> np.ndarray:
    """The jawline in the normalised face frame.

    Args:
        landmarks: ``[..., 68, 2]`` pixels.
        pose: their pose (computed from ``landmarks`` when omitted).

    Returns:
        ``[..., 17, 2]`` float64, ``R(-angle) @ (p - centre) / scale`` for points 0..16.
    """
    landmarks = _check_landmarks(landmarks, "normalise_jaw")
    pose = face_pose(landmarks) if pose is None else pose
    relative = landmarks[..., JAW, :] - pose.centre[..., None, :]
    return _rotate(relative, -pose.angle) / pose.scale[..., None, None]


def denormalise_jaw(jaw: np.ndarray, pose: FacePose) -> np.ndarray:
    """Inverse of :func:`normalise_jaw`: ``[..., 17, 2]`` normalised → float64 pixels.

    The pose's batch shape must broadcast against the jaws' ``[...]``.
    """
    jaw = np.asarray(jaw, dtype=np.float64)
    if jaw.shape[-2:] != (N_JAW_POINTS, 2):
        raise ValueError(f"denormalise_jaw: jaw must be [..., {N_JAW_POINTS}, 2], got {jaw.shape}")
    return pose.centre[..., None, :] + pose.scale[..., None, None] * _rotate(jaw, pose.angle)


def _check_landmarks(landmarks: np.ndarray, caller: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"{caller}: landmarks must be [..., {N_LANDMARKS}, 2], got {landmarks.shape}")
    return landmarks


def _design(sizes: np.ndarray) -> np.ndarray:
    """``[..., 2]`` mouth sizes → ``[..., 3]`` regression inputs ``[w, h, 1]`` (float64)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return np.concatenate([sizes, np.ones(sizes.shape[:-1] + (1,))], axis=-1)


@dataclass(frozen=True, eq=False)
class JawModel:
    """A fitted jaw regression, as plain float64 arrays (saved with npz/safetensors, no pickle).

    Attributes:
        coefficients: ``[3, 34]`` rows ``w``, ``h``, intercept; columns the flattened ``[17, 2]``
            jaw offsets from ``mean_jaw`` in IOD units.
        mean_jaw: ``[17, 2]`` mean normalised jawline of the training frames.
        reference_jaw: ``[17, 2]`` mean normalised jawline of the training frames with the mouth
            (nearly) closed — the jaw a non-speaking template shows.
        reference_size: ``[2]`` mean ``(w, h)`` of those closed-mouth frames.
    """

    coefficients: np.ndarray
    mean_jaw: np.ndarray
    reference_jaw: np.ndarray
    reference_size: np.ndarray

    # Not a field (no annotation): the array names, in the order to_arrays writes them.
    _ARRAY_NAMES = ("coefficients", "mean_jaw", "reference_jaw", "reference_size")
    _SHAPES: ClassVar[dict[str, tuple[int, ...]]] = {
        "coefficients": (3, JAW_DIM),
        "mean_jaw": (N_JAW_POINTS, 2),
        "reference_jaw": (N_JAW_POINTS, 2),
        "reference_size": (2,),
    }

    def __post_init__(self) -> None:
        for name in self._ARRAY_NAMES:
            array = np.array(getattr(self, name), dtype=np.float64)
            if array.shape != self._SHAPES[name]:
                raise ValueError(f"JawModel: {name} has shape {array.shape}, expected {self._SHAPES[name]}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"JawModel: {name} contains NaN or inf")
            object.__setattr__(self, name, array)

    def predict(self, sizes: np.ndarray) -> np.ndarray:
        """Normalised jawlines predicted from mouth sizes.

        Args:
            sizes: ``[..., 2]`` ``(w, h)`` of normalised mouths.

        Returns:
            ``[..., 17, 2]`` float64, ``mean_jaw + [w, h, 1] @ coefficients``.
        """
        offsets = _design(sizes) @ self.coefficients
        return self.mean_jaw + offsets.reshape(offsets.shape[:-1] + (N_JAW_POINTS, 2))

    def offset_between(self, sizes: np.ndarray, from_sizes: np.ndarray) -> np.ndarray:
        """Predicted jaw movement ``predict(sizes) - predict(from_sizes)``, ``[..., 17, 2]`` float64."""
        delta = np.asarray(sizes, dtype=np.float64) - np.asarray(from_sizes, dtype=np.float64)
        offsets = delta @ self.coefficients[:2]
        return offsets.reshape(offsets.shape[:-1] + (N_JAW_POINTS, 2))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{name: float64 array}`` for ``np.savez`` / safetensors."""
        return {name: getattr(self, name).copy() for name in self._ARRAY_NAMES}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> JawModel:
        """Inverse of :meth:`to_arrays`; extra keys are ignored, missing ones raise ValueError."""
        missing = [name for name in cls._ARRAY_NAMES if name not in arrays]
        if missing:
            raise ValueError(f"JawModel.from_arrays: missing {', '.join(missing)}")
        return cls(**{name: np.asarray(arrays[name]) for name in cls._ARRAY_NAMES})


def _usable(landmarks: np.ndarray, found: np.ndarray, caller: str) -> np.ndarray:
    """Landmarks ``[N, 68, 2]`` of the frames with a face and finite landmarks."""
    landmarks = _check_landmarks(landmarks, caller)
    found = np.asarray(found, dtype=bool)
    if landmarks.ndim != 3 or found.shape != landmarks.shape[:1]:
        raise ValueError(f"{caller}: need landmarks [N, 68, 2] and found [N]; got {landmarks.shape}, {found.shape}")
    keep = found & np.all(np.isfinite(landmarks), axis=(1, 2))
    return landmarks[keep]


def fit_jaw(landmarks: np.ndarray, found: np.ndarray) -> JawModel:
    """Least-squares fit of the jaw regression on one person's frames.

    Args:
        landmarks: ``[N, 68, 2]`` pixels (any crop; each frame is normalised by its own pose).
        found: ``[N]`` bool, frames with a face (others, and any frame with NaN, are skipped).

    Returns:
        :class:`JawModel`.

    Raises:
        ValueError: wrong shapes, or fewer than 10 usable frames / no spread in mouth shape.
    """
    landmarks = _usable(landmarks, found, "fit_jaw")
    if landmarks.shape[0] < 10:
        raise ValueError(f"fit_jaw: {landmarks.shape[0]} usable frames are too few (need at least 10)")
    pose = face_pose(landmarks)
    jaws = normalise_jaw(landmarks, pose)
    sizes = mouth_size(normalise_mouth(landmarks)).astype(np.float64)
    mean_jaw = jaws.mean(axis=0)
    design = _design(sizes)
    if np.linalg.matrix_rank(design) < 3:
        raise ValueError("fit_jaw: mouth width and height do not vary independently; cannot fit")
    targets = (jaws - mean_jaw).reshape(len(jaws), JAW_DIM)
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)

    closed = sizes[:, 1] <= np.quantile(sizes[:, 1], CLOSED_MOUTH_QUANTILE)
    return JawModel(
        coefficients=coefficients,
        mean_jaw=mean_jaw,
        reference_jaw=jaws[closed].mean(axis=0),
        reference_size=sizes[closed].mean(axis=0),
    )


def correct_jaw(template_landmarks: np.ndarray, new_mouth_normalised: np.ndarray, jaw: JawModel) -> np.ndarray:
    """Put new mouths into a template face and move its jawline to match them.

    Every output frame is the template frame's landmarks with points 48..67 replaced by
    ``denormalise_mouth(new mouth, template pose)`` and points 0..16 moved by the regression's
    predicted offset between the new mouth's ``(w, h)`` and the template mouth's own, rotated and
    scaled into the template pose. Brows, eyes and nose stay as the template has them.

    Args:
        template_landmarks: ``[68, 2]`` (one still template for all frames) or ``[T, 68, 2]``
            (a template clip, one frame per output frame), pixels, finite.
        new_mouth_normalised: ``[T, 20, 2]`` normalised mouths (e.g. ``MouthPCA.inverse`` of the
            audio-to-mouth output).
        jaw: the person's fitted :class:`JawModel`.

    Returns:
        ``[T, 68, 2]`` float64 pixels.

    Raises:
        ValueError: wrong shapes, mismatched T, or non-finite template landmarks.
    """
    template = _check_landmarks(template_landmarks, "correct_jaw")
    mouths = np.asarray(new_mouth_normalised, dtype=np.float64)
    if mouths.ndim != 3 or mouths.shape[1:] != (20, 2):
        raise ValueError(f"correct_jaw: new mouths must be [T, 20, 2], got {mouths.shape}")
    n_frames = mouths.shape[0]
    if template.ndim == 2:
        template = np.broadcast_to(template, (n_frames,) + template.shape)
    if template.ndim != 3 or template.shape[0] != n_frames:
        raise ValueError(
            f"correct_jaw: template must be [68, 2] or [T={n_frames}, 68, 2], got {template.shape}"
        )
    if not np.all(np.isfinite(template)):
        raise ValueError("correct_jaw: template landmarks contain NaN or inf (a template frame without a face)")

    pose = face_pose(template)
    template_sizes = mouth_size(normalise_mouth(template))
    new_sizes = mouth_size(mouths)
    jaw_offsets = jaw.offset_between(new_sizes, template_sizes)

    corrected = template.copy()
    corrected[:, MOUTH] = denormalise_mouth(mouths, pose)
    corrected[:, JAW] = denormalise_jaw(normalise_jaw(template, pose) + jaw_offsets, pose)
    return corrected


def jaw_error(jaw: JawModel, landmarks: np.ndarray, found: np.ndarray) -> dict[str, float]:
    """How well the regression predicts held-out jawlines, in pixels.

    For each usable frame, the jawline is predicted in the frame's own pose from the closed-mouth
    reference jaw (``reference_jaw``), either unchanged (what pasting a mouth into a closed-mouth
    template does) or moved by ``offset_between(frame's (w, h), reference_size)`` (what
    :func:`correct_jaw` does). Errors are Euclidean distances to the frame's detected jaw points,
    averaged over the 17 points and the frames.

    Args:
        jaw: fitted model.
        landmarks: ``[N, 68, 2]`` pixels, frames NOT used to fit ``jaw``.
        found: ``[N]`` bool.

    Returns:
        ``{"with_regression_px", "without_regression_px", "n_frames"}`` (plain floats / int).
    """
    landmarks = _usable(landmarks, found, "jaw_error")
    if landmarks.shape[0] == 0:
        raise ValueError("jaw_error: no usable frames")
    pose = face_pose(landmarks)
    actual = landmarks[:, JAW]
    sizes = mouth_size(normalise_mouth(landmarks))
    without = denormalise_jaw(np.broadcast_to(jaw.reference_jaw, actual.shape), pose)
    with_regression = denormalise_jaw(jaw.reference_jaw + jaw.offset_between(sizes, jaw.reference_size), pose)

    def mean_distance(predicted: np.ndarray) -> float:
        return float(np.linalg.norm(predicted - actual, axis=-1).mean())

    return {
        "with_regression_px": mean_distance(with_regression),
        "without_regression_px": mean_distance(without),
        "n_frames": int(landmarks.shape[0]),
    }
