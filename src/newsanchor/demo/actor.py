"""A synthetic actor: a talking head made from one public-domain photograph, with exact ground truth.

The offline demo, and end-to-end tests, need a recording of someone speaking, and the project
ships none. So it makes one. The actor is NASA's portrait of astronaut Eileen Collins, which
scikit-image ships as ``skimage.data.astronaut()`` (public domain).

1. **Portrait.** dlib (features.face) finds the face. The photo is cut and scaled to a square
   ``size`` × ``size`` portrait (384 by default) in which the 68-landmark box is ``size / 3.15``
   wide. At 384 that is 122 px, so the project's crop (``crop_margin`` 2.1 × landmark box) is
   256 px: a 256² face crop with no resampling. The actor starts from dlib's landmarks on the
   portrait itself. The photo smiles with its teeth showing. The teeth are painted out and the
   inner-lip points moved onto the lip edges, so the rest shape (``landmarks``) has closed lips.
2. **Motion** (:mod:`.motion`). Phonemes map to visemes: targets for jaw ``open``, lip ``wide``
   and lip ``round``. These are blended over time (coarticulation), and seeded blinks and head
   sway are added. The result is 7 parameters per frame (PARAM_NAMES).
3. **Warp.** The parameters move the mouth points 48..67 and the lower jaw 4..12 along the face's
   own axes (linear displacement bases, in inter-ocular distances, IOD), and the upper eyelids
   for blinks. The head sway moves everything. A piecewise-affine warp over a Delaunay
   triangulation puts the photo's pixels there. The triangulation covers the 68 points, a ring
   of anchors around the head (moves with it) and the frame border (fixed). A dark cavity with
   a band of upper teeth is painted inside the inner lips, and a faint seam where closed lips meet.

Ground truth: the landmarks :meth:`SyntheticActor.frame_for` returns are where the warp put the
points, exactly. dlib on the rendered frame finds them to within ~1 px on average, and within
3 px for the rest face (tests/test_actor.py). One 384² frame takes ~5 ms on one core.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from ..features.face import FaceTracker
from ..features.mouth import face_pose
from ..timing import FPS, SAMPLE_RATE
from .motion import idle_motion, mouth_trajectory

DEFAULT_SIZE = 384
LANDMARK_BOX_FRACTION = 1 / 3.15  # landmark box / portrait side: 122 px at 384, crop 2.1× = 256
PARAM_NAMES = ("open", "wide", "round", "blink", "dx", "dy", "tilt")  # dx, dy px; tilt radians
N_PARAMS = len(PARAM_NAMES)
_JAW = np.arange(4, 13)
_JAW_WEIGHT = np.array([0.2, 0.45, 0.7, 0.9, 1.0, 0.9, 0.7, 0.45, 0.2])  # the chin (8) moves most
_INNER_UPPER, _INNER_LOWER = [61, 62, 63], [67, 66, 65]  # paired top/bottom inner-lip points


@cache
def _portrait(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The astronaut portrait with its teeth painted out ``[size, size, 3]`` uint8, its landmarks
    ``[68, 2]`` float64 (dlib's, inner lips moved onto the lip edges) and the teeth colour ``[3]``."""
    from skimage import data  # the photo ships inside scikit-image: nothing is downloaded

    photo = np.ascontiguousarray(data.astronaut()[..., :3])
    found = FaceTracker().update(photo)
    if found is None:  # would mean a broken dlib or scikit-image install, not bad input
        raise RuntimeError("skimage.data.astronaut(): dlib found no face in the demo photo")
    lo, hi = found.min(0), found.max(0)
    scale = size * LANDMARK_BOX_FRACTION / float((hi - lo).max())
    side = size / scale  # portrait side in photo pixels
    cx, cy = (lo + hi) / 2
    # face centre at 42 % of the height (room for hair above, shoulders below), kept inside the photo
    x0 = min(max(cx - side / 2, 0.0), photo.shape[1] - side)
    y0 = min(max(cy - 0.42 * side, 0.0), photo.shape[0] - side)
    matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    image = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    landmarks = FaceTracker().update(image)  # dlib on the portrait itself: what a tracker will see
    if landmarks is None:
        raise RuntimeError(f"astronaut portrait at {size}²: dlib lost the face")
    image, landmarks, teeth = _paint_out_teeth(image, landmarks.astype(np.float64))
    for array in (image, landmarks, teeth):
        array.flags.writeable = False
    return image, landmarks, teeth


def _paint_out_teeth(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove the smile's teeth so closing the lips leaves no sliver of them.

    Inside the outer lips, pixels that are not lip-red (teeth) or are dark (mouth corners) are
    the mouth's interior: inpainted with the lips around them. dlib puts the inner-lip points
    roughly on the teeth, so 61..63 and 65..67 move to the interior's top and bottom edges in their
    columns. Returns (image, landmarks, teeth colour [3] float32).
    """
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(landmarks[48:60] * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    rgb = image.astype(np.int16)
    redness, value = rgb[..., 0] - rgb[..., 1], rgb.max(axis=2)
    interior = (lips > 0) & ((redness < 40) | (value < 110))
    bright = image[interior & (value >= 150)]
    teeth = np.median(bright, axis=0) * 0.95 if len(bright) >= 8 else np.array([215.0, 205, 195])
    landmarks = landmarks.copy()
    for upper, lower, top, bottom in zip(_INNER_UPPER, _INNER_LOWER, (50, 51, 52), (58, 57, 56)):
        x = int(round((landmarks[upper, 0] + landmarks[lower, 0]) / 2))
        column = interior[:, max(x - 1, 0):x + 2].any(axis=1)
        # the run of interior rows nearest the middle of dlib's gap, kept inside the outer lips
        first, last = int(np.ceil(landmarks[top, 1])) + 1, int(landmarks[bottom, 1]) - 1
        rows = np.flatnonzero(column[first:last + 1]) + first
        if len(rows) == 0:
            continue  # lips closed here in the photo: dlib's points stand
        middle = (landmarks[upper, 1] + landmarks[lower, 1]) / 2
        row = int(rows[np.argmin(np.abs(rows - middle))])
        start, stop = row, row
        while start - 1 >= first and column[start - 1]:
            start -= 1
        while stop + 1 <= last and column[stop + 1]:
            stop += 1
        landmarks[upper, 1], landmarks[lower, 1] = start - 0.5, stop + 0.5  # pixel edges
    mask = cv2.dilate(interior.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA), landmarks, teeth.astype(np.float32)


_SPLINE_STEPS = 4  # samples per lip segment of the painted mouth outline


def _closed_spline(points: np.ndarray) -> np.ndarray:
    """Closed Catmull-Rom curve through ``points`` [N, 2] → [N · 4, 2] (starts at points[0])."""
    t = np.arange(_SPLINE_STEPS)[:, None, None] / _SPLINE_STEPS  # [S, 1, 1]
    p0, p1, p2, p3 = (np.roll(points, shift, axis=0)[None] for shift in (1, 0, -1, -2))
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return curve.transpose(1, 0, 2).reshape(-1, 2)  # segment by segment


class SyntheticActor:
    """The talking astronaut. ``frame_for`` renders one parameter vector (see PARAM_NAMES).

    >>> actor = SyntheticActor()
    >>> for frame, landmarks in actor.frames([("h", 0, .1), ("ə", .1, .3)], 10): ...
    """

    def __init__(self, size: int = DEFAULT_SIZE, seed: int = 0):
        if not 128 <= size <= 2048:
            raise ValueError(f"SyntheticActor: size must be in 128..2048, got {size}")
        self.size, self.seed = int(size), int(seed)
        self._image, source, self._teeth = _portrait(self.size)
        self._cavity = np.array([45.0, 15, 18], np.float32)  # dark red-brown, unlit mouth
        pose = face_pose(source)
        self._iod = float(pose.scale)
        u = np.array([math.cos(pose.angle), math.sin(pose.angle)])
        v = np.array([-u[1], u[0]])  # down the face
        self._v = v
        mouth_centre = (source[48] + source[54]) / 2

        def along(du: np.ndarray, dv: np.ndarray) -> np.ndarray:  # face-frame IOD → pixel offsets
            return self._iod * (du[:, None] * u + dv[:, None] * v)

        gaps = (source[_INNER_LOWER] - source[_INNER_UPPER]) @ v / self._iod
        gap = float(gaps.mean())
        dv = np.zeros(68)  # close the photo's smile (inner lips below)
        dv[[50, 51, 52]], dv[[49, 53]] = 0.25 * gap, 0.15 * gap
        dv[[56, 57, 58]], dv[[55, 59]] = -0.55 * gap, -0.4 * gap
        dv[_JAW] = -0.45 * gap * _JAW_WEIGHT
        self._rest = source + along(np.zeros(68), dv)
        # each inner pair meets in one point (not just one height), so no sliver triangle flips
        meet = source[_INNER_UPPER] + 0.4 * (source[_INNER_LOWER] - source[_INNER_UPPER])
        self._rest[_INNER_UPPER], self._rest[_INNER_LOWER] = meet, meet
        u_rel = (self._rest - mouth_centre) @ u / self._iod  # across the face, IOD units (met pairs alike)
        mouth, outer, inner = np.arange(48, 68), np.arange(48, 60), np.arange(60, 68)
        basis = np.zeros((4, 68, 2))
        jaw = 0.30  # IOD the lower lip drops at open = 1
        du, dv = np.zeros(68), np.zeros(68)
        dv[_INNER_LOWER], dv[[56, 57, 58]], dv[[55, 59]] = jaw, 0.92 * jaw, 0.75 * jaw
        dv[[48, 54, 60, 64]], dv[_INNER_UPPER], dv[[50, 51, 52]] = 0.45 * jaw, -0.06 * jaw, -0.03 * jaw
        dv[_JAW] = 0.95 * jaw * _JAW_WEIGHT
        du[mouth] = -0.06 * u_rel[mouth]  # an opening jaw pulls the corners in a little
        basis[0] = along(du, dv)
        du, dv = np.zeros(68), np.zeros(68)
        du[mouth], dv[[48, 54]] = 0.22 * u_rel[mouth], -0.02  # spread lips rise at the corners
        basis[1] = along(du, dv)
        du, dv = np.zeros(68), np.zeros(68)
        du[outer], du[inner] = -0.28 * u_rel[outer], -0.34 * u_rel[inner]  # inner lips make an "o"
        dv[[50, 51, 52]], dv[[56, 57, 58]], dv[_INNER_UPPER], dv[_INNER_LOWER] = -0.04, 0.04, -0.03, 0.05
        dv[[48, 54]], dv[[60, 64]] = 0.04, 0.06  # rounding undoes the smile's raised corners
        basis[2] = along(du, dv)
        for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):  # lids meet (in pixels)
            basis[3, upper] = 0.9 * (source[lower] - source[upper])
        self._basis = basis
        self._anchors_ring, self._anchors_border = self._anchors(source)
        lo, hi = source.min(0), source.max(0)
        self._pivot = np.array([(lo[0] + hi[0]) / 2, hi[1] + 0.25 * (hi[1] - lo[1])])  # the neck
        self._points = np.concatenate([source, self._anchors_ring, self._anchors_border])  # [V, 2]
        self._points.flags.writeable = False
        self._triangles = Delaunay(self._points).simplices.astype(np.int64)  # [N, 3]
        self._triangles.flags.writeable = False
        self._source_tri = self._points[self._triangles].transpose(0, 2, 1)  # [N, 2, 3]: x row, y row
        ys, xs = np.mgrid[0:self.size, 0:self.size].astype(np.float32)
        self._xs, self._ys = xs, ys

    def _anchors(self, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A ring of 16 points around the head (moves with it) and 16 on the frame border (fixed)."""
        lo, hi = source.min(0), source.max(0)
        w, h = hi - lo
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2 - 0.12 * h])  # include the forehead
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = centre + np.stack([0.95 * w * np.cos(angles), 1.05 * h * np.sin(angles)], axis=1)
        ring = np.clip(ring, 3, self.size - 4)
        edge = np.array([-1.0, self.size / 4, self.size / 2, 3 * self.size / 4, float(self.size)])
        border = {(x, y) for x in edge for y in edge if x in (edge[0], edge[-1]) or y in (edge[0], edge[-1])}
        return ring, np.array(sorted(border))

    @property
    def landmarks(self) -> np.ndarray:
        """Rest landmarks ``[68, 2]`` float32 (lips closed, head still), portrait pixels."""
        return self._rest.astype(np.float32)

    def _params(self, params) -> np.ndarray:
        p = np.asarray(params, dtype=np.float64).reshape(-1)
        if p.shape[0] == 3:
            p = np.concatenate([p, np.zeros(N_PARAMS - 3)])
        if p.shape[0] != N_PARAMS or not np.all(np.isfinite(p)):
            raise ValueError(f"params must be 3 (mouth) or {N_PARAMS} finite values {PARAM_NAMES}, got {np.shape(params)}")
        p[:4] = np.clip(p[:4], (0, -1, 0, 0), (1, 1, 1, 1))
        return p

    def _moved(self, p: np.ndarray) -> np.ndarray:
        """Landmarks and head-ring anchors ``[68 + 16, 2]`` for checked parameters ``p`` ``[7]``."""
        points = np.concatenate([self._rest + np.tensordot(p[:4], self._basis, axes=1), self._anchors_ring])
        cos, sin = math.cos(p[6]), math.sin(p[6])
        return (points - self._pivot) @ np.array([[cos, sin], [-sin, cos]]) + self._pivot + p[4:6]

    def landmarks_for(self, params) -> np.ndarray:
        """Landmarks ``[68, 2]`` float32 of one parameter vector, without rendering (ground truth)."""
        return self._moved(self._params(params))[:68].astype(np.float32)

    def mesh(self, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The warp's mesh for one parameter vector: source points ``[V, 2]`` (in the photo),
        target points ``[V, 2]`` (in the frame) and triangles ``[N, 3]`` (indices into both)."""
        target = np.concatenate([self._moved(self._params(params)), self._anchors_border])
        return self._points, target, self._triangles

    def frame_for(self, params) -> tuple[np.ndarray, np.ndarray]:
        """Render one parameter vector ``[7]`` (PARAM_NAMES; or ``[3]``: mouth only, head still).

        Mouth and blink values are clipped to their ranges. Returns the frame ``[size, size, 3]``
        uint8 RGB and its landmarks ``[68, 2]`` float32, where the warp put them.
        """
        moving = self._moved(self._params(params))
        frame = self._warp(np.concatenate([moving, self._anchors_border]))
        self._paint_mouth(frame, moving[:68])
        return frame, moving[:68].astype(np.float32)

    def _warp(self, targets: np.ndarray) -> np.ndarray:
        """Piecewise-affine warp of the portrait so its mesh points land on ``targets`` ``[V, 2]``.

        Each output pixel gets the triangle it lies in (rasterised), then that triangle's
        target→source affine map; one ``cv2.remap`` samples the photo (~5 ms at 384²).
        """
        tri = targets[self._triangles]  # [N, 3, 2]
        edge1, edge2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        area = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]
        # zero-area triangles (the inner lips of a closed mouth) cover nothing and have no inverse
        keep = np.flatnonzero(np.abs(area) > 1e-3)
        target_h = np.concatenate([tri[keep].transpose(0, 2, 1), np.ones((len(keep), 1, 3))], axis=1)
        affine = self._source_tri[keep] @ np.linalg.inv(target_h)  # [K, 2, 3] target → source
        coeffs = np.concatenate([affine.reshape(-1, 6), [[1, 0, 0, 0, 1, 0]]]).astype(np.float32)
        index = np.full((self.size, self.size), -1, np.int32)  # -1 → last row: identity
        fixed = np.round(tri[keep] * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
        for k, corners in enumerate(fixed):
            cv2.fillConvexPoly(index, corners, k, cv2.LINE_8, 4)
        c = coeffs[index]  # [H, W, 6]
        map_x = c[..., 0] * self._xs + c[..., 1] * self._ys + c[..., 2]
        map_y = c[..., 3] * self._xs + c[..., 4] * self._ys + c[..., 5]
        return cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def _paint_mouth(self, frame: np.ndarray, landmarks: np.ndarray) -> None:
        """Lip seam, dark cavity inside the inner lips ``landmarks[60:68]`` and upper teeth under the upper lip."""
        inner = landmarks[60:68]
        gap = float(np.mean((landmarks[_INNER_LOWER] - landmarks[_INNER_UPPER]) @ self._v))  # px
        x0, y0 = np.maximum(np.floor(landmarks[48:68].min(0)).astype(int) - 4, 0)
        x1, y1 = np.minimum(np.ceil(landmarks[48:68].max(0)).astype(int) + 5, self.size)
        origin = np.array([x0, y0])

        def mask_of(polygon: np.ndarray, line: bool = False) -> np.ndarray:  # anti-aliased, 0..1
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            points = [np.round((polygon - origin) * 16).astype(np.int32)]
            if line:
                cv2.polylines(mask, points, True, 255, 1, cv2.LINE_AA, 4)
                return mask.astype(np.float32)[..., None] / 255
            cv2.fillPoly(mask, points, 255, cv2.LINE_AA, 4)
            return cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255

        lips = _closed_spline(inner)  # [32, 2]: rounded lips, not an octagon
        # closed lips still show where they meet: a faint dark seam (dlib's inner-lip cue too)
        shade = mask_of(lips, line=True) * 0.35
        if gap >= 0.3:  # a slit only darkens; from ~3 px the mouth is a dark hole with teeth
            shade = np.maximum(shade, mask_of(lips) * min(1.0, gap / 3.0) * 0.95)
        upper = lips[: 4 * _SPLINE_STEPS + 1]  # 60 → 64 along the upper lip
        teeth_h = min(0.45 * gap, 0.10 * self._iod)
        teeth = np.minimum(mask_of(np.concatenate([upper, upper[::-1] + teeth_h * self._v])), shade) * 0.9
        # teeth further back, towards the corners, are in the mouth's shadow
        half = max(abs(inner[4, 0] - inner[0, 0]) / 2, 1.0)
        across = (np.arange(x0, x1) - (inner[4, 0] + inner[0, 0]) / 2) / half
        teeth *= np.clip(1 - 0.7 * across**2, 0.25, 1)[None, :, None]
        roi: np.ndarray = frame[y0:y1, x0:x1].astype(np.float32)
        roi = roi * (1 - shade) + self._cavity * shade
        roi = roi * (1 - teeth) + self._teeth * teeth
        frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)

    def trajectory(self, phonemes: Sequence[tuple[str, float, float]], n_frames: int) -> np.ndarray:
        """Parameters ``[T, 7]`` float32 (PARAM_NAMES) at 25 fps: visemes + this seed's idle motion."""
        return np.concatenate([mouth_trajectory(phonemes, n_frames), idle_motion(self.seed, n_frames, self.size)], axis=1)

    def frames(self, phonemes: Sequence[tuple[str, float, float]], n_frames: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(frame [H, W, 3] uint8, landmarks [68, 2] float32)`` for each of ``n_frames`` frames, one at a time."""
        for params in self.trajectory(phonemes, n_frames):
            yield self.frame_for(params)


def write_actor_video(path, phonemes: Sequence[tuple[str, float, float]], wav16k: np.ndarray, *, seed: int = 0,
                      size: int = DEFAULT_SIZE) -> dict:
    """Write the actor saying ``phonemes`` over ``wav16k`` ([S] float32, 16 kHz) to an mp4 at 25 fps.

    The video lasts as long as the audio, rounded up to whole frames. Frames are streamed to
    media.write_video, which writes atomically: on any error no file is left. Returns
    ``{"frames": T, "duration_s": T / 25}``.
    """
    from ..media import write_video  # PyAV only when writing

    wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"{path}: audio must be [S] mono, got shape {wav.shape}")
    n_frames = math.ceil(len(wav) * FPS / SAMPLE_RATE)
    if n_frames == 0:
        raise ValueError(f"{path}: no audio (0 samples), so there are no frames to write")
    actor = SyntheticActor(size=size, seed=seed)
    trajectory = actor.trajectory(phonemes, n_frames)  # [T, 7]: bad phonemes fail before any file
    frames = (actor.frame_for(params)[0] for params in trajectory)
    written = write_video(path, frames, FPS, audio=wav, sample_rate=SAMPLE_RATE)
    return {"frames": written, "duration_s": written / FPS}
