"""Mouth normalisation and PCA (paper §4.2; pipeline stages "preparation" and 3).

"We get the 20 normalized mouth coordinates via removing the in-plane rotation and calculating
the relative coordinates based on the center of the nose. We use PCA to de-correlate the mouth
coordinates into a 10-D feature vector."

Normalised mouth coordinates
----------------------------
For dlib 68-point landmarks (0-based indices) in image pixels (x right, y down)::

    q = R(-angle) @ (p - centre) / scale        for p in points 48..67

- ``centre``: mean of the nose points 27..35;
- ``angle``: direction of the line from the centre of eye 36..41 (image left, the subject's
  right eye) to the centre of eye 42..47, so ``R(-angle)`` makes the eye line horizontal;
- ``scale``: inter-ocular distance (between those eye centres), so one unit = one IOD.

``R(a) = [[cos a, -sin a], [sin a, cos a]]``. No reflection is involved, so normalised ``y``
still points down the face (the mouth has positive ``y``). The inverse puts a mouth onto any
pose: ``p = centre + scale * R(angle) @ q`` (:func:`denormalise_mouth`).

Precision: all arithmetic is float64. Normalised mouths are returned as float32 (they are model
features; |q| < 2, so float32 rounding costs <= 6e-8 IOD per coordinate, i.e. <= 5e-5 px even
at 800 px IOD). Denormalised coordinates are float64, because float32 cannot resolve 1e-4 px
at 4000 px (its spacing there is 2.4e-4); cast when storing.

PCA vectors flatten ``[20, 2]`` row-major: ``(x48, y48, x49, y49, ..., x67, y67)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

MOUTH = slice(48, 68)
NOSE = slice(27, 36)
LEFT_EYE = slice(36, 42)  # image left = the subject's right eye
RIGHT_EYE = slice(42, 48)
N_LANDMARKS = 68
N_MOUTH_POINTS = 20
MOUTH_DIM = 2 * N_MOUTH_POINTS  # 40

# Indices inside the 20-point mouth (dlib index - 48).
MOUTH_LEFT_CORNER = 0  # 48
MOUTH_RIGHT_CORNER = 6  # 54
INNER_UPPER_LIP = (13, 14, 15)  # 61, 62, 63
INNER_LOWER_LIP = (19, 18, 17)  # 67, 66, 65 (paired with the upper points above)


@dataclass(frozen=True, eq=False)
class FacePose:
    """In-plane pose of a face (or a batch of faces) from its landmarks.

    Attributes:
        centre: ``[..., 2]`` float64, nose centre in pixels (mean of points 27..35).
        angle: ``[...]`` float64, radians, eye line direction (eye 36..41 → eye 42..47).
        scale: ``[...]`` float64, inter-ocular distance in pixels.
    """

    centre: np.ndarray
    angle: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=np.float64)
        angle = np.asarray(self.angle, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if centre.shape[-1:] != (2,) or centre.shape[:-1] != angle.shape or angle.shape != scale.shape:
            raise ValueError(
                f"FacePose: need centre [..., 2], angle [...], scale [...] with one batch shape; "
                f"got {centre.shape}, {angle.shape}, {scale.shape}"
            )
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "angle", angle)
        object.__setattr__(self, "scale", scale)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.angle.shape


def _check_landmarks(landmarks: np.ndarray, caller: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"{caller}: landmarks must be [..., {N_LANDMARKS}, 2], got {landmarks.shape}")
    return landmarks


def _check_mouth(mouth: np.ndarray, caller: str) -> np.ndarray:
    mouth = np.asarray(mouth, dtype=np.float64)
    if mouth.shape[-2:] != (N_MOUTH_POINTS, 2):
        raise ValueError(f"{caller}: mouth must be [..., {N_MOUTH_POINTS}, 2], got {mouth.shape}")
    return mouth


def _rotate(points: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """``R(angle) @ p`` for points ``[..., P, 2]`` and angles broadcastable to ``[...]``."""
    cos = np.cos(angle)[..., None]
    sin = np.sin(angle)[..., None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


def face_pose(landmarks: np.ndarray) -> FacePose:
    """Nose centre, eye-line angle and inter-ocular distance of each face.

    Args:
        landmarks: ``[..., 68, 2]`` dlib landmarks in pixels.

    Returns:
        :class:`FacePose` with batch shape ``[...]`` (float64).

    Raises:
        ValueError: wrong shape, or a face whose two eye centres coincide (no scale).
            NaN landmarks (e.g. frames without a face) give a NaN pose, not an error.
    """
    landmarks = _check_landmarks(landmarks, "face_pose")
    centre = landmarks[..., NOSE, :].mean(axis=-2)
    eye_line = landmarks[..., RIGHT_EYE, :].mean(axis=-2) - landmarks[..., LEFT_EYE, :].mean(axis=-2)
    scale = np.hypot(eye_line[..., 0], eye_line[..., 1])
    if np.any(scale == 0):
        raise ValueError(f"face_pose: {int(np.sum(scale == 0))} face(s) with zero inter-ocular distance")
    angle = np.arctan2(eye_line[..., 1], eye_line[..., 0])
    return FacePose(centre=centre, angle=angle, scale=scale)


def normalise_mouth(landmarks: np.ndarray) -> np.ndarray:
    """The 20 mouth points relative to the nose centre, eye line level, in IOD units.

    Args:
        landmarks: ``[..., 68, 2]`` dlib landmarks in pixels.

    Returns:
        ``[..., 20, 2]`` float32, ``R(-angle) @ (p - centre) / scale`` for points 48..67.
    """
    landmarks = _check_landmarks(landmarks, "normalise_mouth")
    pose = face_pose(landmarks)
    relative = landmarks[..., MOUTH, :] - pose.centre[..., None, :]
    normalised = _rotate(relative, -pose.angle) / pose.scale[..., None, None]
    return normalised.astype(np.float32)


def denormalise_mouth(mouth: np.ndarray, pose: FacePose) -> np.ndarray:
    """Put normalised mouths onto a pose: the exact inverse of :func:`normalise_mouth`.

    Args:
        mouth: ``[..., 20, 2]`` normalised mouth points.
        pose: a pose whose batch shape broadcasts against the mouths' ``[...]`` — the pose of
            the frames they came from, or a single template pose (batch shape ``()``) for all.

    Returns:
        ``[..., 20, 2]`` float64 pixel coordinates, ``centre + scale * R(angle) @ q``
        (batch shape is the broadcast of both).
    """
    mouth = _check_mouth(mouth, "denormalise_mouth")
    try:
        batch = np.broadcast_shapes(mouth.shape[:-2], pose.batch_shape)
    except ValueError:
        raise ValueError(
            f"denormalise_mouth: mouth batch {mouth.shape[:-2]} does not broadcast "
            f"with pose batch {pose.batch_shape}"
        ) from None
    mouth = np.broadcast_to(mouth, batch + mouth.shape[-2:])
    angle = np.broadcast_to(pose.angle, batch)
    scale = np.broadcast_to(pose.scale, batch)[..., None, None]
    centre = np.broadcast_to(pose.centre, batch + (2,))[..., None, :]
    return centre + scale * _rotate(mouth, angle)


def mouth_box(landmarks: np.ndarray, size: int, margin: float = 0.25) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a box around the mouth points of landmarks [68, 2] (crop pixels),
    widened by ``margin`` × its width on every side and clipped to the [size, size] crop."""
    mouth = landmarks[MOUTH]
    lo, hi = mouth.min(axis=0), mouth.max(axis=0)
    pad = margin * (hi[0] - lo[0])
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return max(0, x0), max(0, y0), min(size, x1 + 1), min(size, y1 + 1)


def mouth_size(mouth: np.ndarray) -> np.ndarray:
    """Mouth width and inner-lip opening, in the units of ``mouth`` (IOD for normalised mouths).

    - width: distance between the corners 48 and 54;
    - height: mean of ``y(67) - y(61)``, ``y(66) - y(62)``, ``y(65) - y(63)`` — the vertical
      gaps of the inner lips. It is *signed* (y points down the face, so open > 0) rather than
      absolute, so that lips pressed slightly past each other by landmark noise read as
      "a little closed" and the jaw regression sees a continuous input.

    Expects an upright mouth (as :func:`normalise_mouth` returns): "vertical" is the y axis.

    Args:
        mouth: ``[..., 20, 2]``.

    Returns:
        ``[..., 2]`` float32 ``(width, height)``.
    """
    mouth = _check_mouth(mouth, "mouth_size")
    corners = mouth[..., MOUTH_RIGHT_CORNER, :] - mouth[..., MOUTH_LEFT_CORNER, :]
    width = np.hypot(corners[..., 0], corners[..., 1])
    gaps = mouth[..., INNER_LOWER_LIP, 1] - mouth[..., INNER_UPPER_LIP, 1]
    height = gaps.mean(axis=-1)
    return np.stack([width, height], axis=-1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class MouthPCA:
    """A fitted PCA of normalised mouths, as plain arrays (saved with safetensors/npz, no pickle).

    Attributes:
        mean: ``[40]`` float64, mean flattened mouth.
        components: ``[K, 40]`` float64, orthonormal principal axes (rows).
        explained_variance: ``[K]`` float64, variance along each axis.
        explained_variance_ratio: ``[K]`` float64, its share of the total variance.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray

    # Not a field (no annotation): the array names, in the order to_arrays writes them.
    _ARRAY_NAMES = ("mean", "components", "explained_variance", "explained_variance_ratio")

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float64) for name in self._ARRAY_NAMES}
        n_components = arrays["components"].shape[0] if arrays["components"].ndim == 2 else -1
        expected = {
            "mean": (MOUTH_DIM,),
            "components": (n_components, MOUTH_DIM),
            "explained_variance": (n_components,),
            "explained_variance_ratio": (n_components,),
        }
        for name, array in arrays.items():
            if n_components < 1 or array.shape != expected[name]:
                raise ValueError(
                    f"MouthPCA: {name} has shape {array.shape}, expected {expected[name]} (K >= 1)"
                )
            object.__setattr__(self, name, array)

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    @property
    def total_explained_variance(self) -> float:
        """Share of the training variance the K components keep (the paper: ~0.99 for K=10)."""
        return float(self.explained_variance_ratio.sum())

    def transform(self, mouth: np.ndarray) -> np.ndarray:
        """Normalised mouths ``[..., 20, 2]`` → PCA coefficients ``[..., K]`` float32."""
        mouth = _check_mouth(mouth, "MouthPCA.transform")
        flat = mouth.reshape(mouth.shape[:-2] + (MOUTH_DIM,))
        return ((flat - self.mean) @ self.components.T).astype(np.float32)

    def inverse(self, coeffs: np.ndarray) -> np.ndarray:
        """PCA coefficients ``[..., K]`` → normalised mouths ``[..., 20, 2]`` float32."""
        coeffs = np.asarray(coeffs, dtype=np.float64)
        if coeffs.shape[-1:] != (self.n_components,):
            raise ValueError(
                f"MouthPCA.inverse: coefficients must be [..., {self.n_components}], got {coeffs.shape}"
            )
        flat = coeffs @ self.components + self.mean
        return flat.reshape(coeffs.shape[:-1] + (N_MOUTH_POINTS, 2)).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{name: float64 array}`` for ``np.savez`` / safetensors."""
        return {name: getattr(self, name).copy() for name in self._ARRAY_NAMES}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> MouthPCA:
        """Inverse of :meth:`to_arrays`; extra keys are ignored, missing ones raise ValueError."""
        missing = [name for name in cls._ARRAY_NAMES if name not in arrays]
        if missing:
            raise ValueError(f"MouthPCA.from_arrays: missing {', '.join(missing)}")
        return cls(**{name: np.asarray(arrays[name]) for name in cls._ARRAY_NAMES})


def fit_mouth_pca(mouths: np.ndarray, n_components: int = 10) -> MouthPCA:
    """Fit a PCA to normalised mouths (sklearn, full SVD) and keep only its numbers.

    Args:
        mouths: ``[N, 20, 2]`` normalised mouths, N > n_components.
        n_components: K, 10 in the paper.

    Returns:
        :class:`MouthPCA` with K components.

    Raises:
        ValueError: wrong shape, NaN/inf, or too few mouths for K components.
    """
    mouths = _check_mouth(mouths, "fit_mouth_pca")
    if mouths.ndim != 3:
        raise ValueError(f"fit_mouth_pca: mouths must be [N, {N_MOUTH_POINTS}, 2], got {mouths.shape}")
    if not 1 <= n_components <= MOUTH_DIM:
        raise ValueError(f"fit_mouth_pca: n_components must be in 1..{MOUTH_DIM}, got {n_components}")
    if mouths.shape[0] < n_components + 1:
        raise ValueError(
            f"fit_mouth_pca: {mouths.shape[0]} mouths are too few for {n_components} components "
            f"(need at least {n_components + 1})"
        )
    if not np.all(np.isfinite(mouths)):
        raise ValueError("fit_mouth_pca: mouths contain NaN or inf (drop frames without a face first)")
    pca = PCA(n_components=n_components, svd_solver="full")
    pca.fit(mouths.reshape(mouths.shape[0], MOUTH_DIM))
    return MouthPCA(
        mean=pca.mean_,
        components=pca.components_,
        explained_variance=pca.explained_variance_,
        explained_variance_ratio=pca.explained_variance_ratio_,
    )
