"""Face detection, tracking and dlib 68-point landmarks.

dlib's HOG detector costs ~25 ms on a 512² frame, so it runs only on key frames, and then on a
small region around the tracked face rescaled so the face is ~``detect_face_px`` wide. Between key
frames the box handed to the shape predictor comes from the previous frame's landmarks, through
the learned relation between detector boxes and landmark boxes, so the predictor always sees boxes
like those it was trained on. The predictor runs on the face region upscaled to
``predict_face_px``: dlib rounds landmarks to whole pixels, and upscaling makes that rounding
sub-pixel in the source frame (jitter shows up in every later stage).

One identity per clip: after the first detection (the largest face), key-frame detections are
matched to the track by overlap, and a lost face is re-acquired only if dlib's face-recognition
descriptor says it is the same person (so a second person in shot never takes over the track).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import dlib
import numpy as np
from scipy.signal import savgol_filter

N_LANDMARKS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@dataclass(frozen=True)
class TrackerConfig:
    key_interval: int = 5  # run the detector every N frames (and whenever tracking looks wrong)
    detect_face_px: int = 120  # face width the key-frame detector works at (dlib's window is 80 px)
    predict_face_px: int = 480  # face width the landmark predictor works at (sub-pixel precision)
    full_frame_side: int = 640  # longest side for whole-frame searches when no face is tracked
    max_jump: float = 0.35  # landmark-box change (fraction of face size) that forces a re-detect
    min_overlap: float = 0.45  # IoU below which a key-frame detection replaces the tracked box
    same_person_distance: float = 0.6  # face-descriptor distance accepted as the tracked person (dlib's)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels: centre (cx, cy), width w, height h."""

    cx: float
    cy: float
    w: float
    h: float

    @classmethod
    def from_dlib(cls, r: dlib.rectangle, scale: float = 1.0, x0: float = 0.0, y0: float = 0.0) -> Box:
        """A dlib rectangle found in an image resized by ``scale`` from offset (x0, y0)."""
        return cls(
            (r.left() + r.right() + 1) / 2 / scale + x0,
            (r.top() + r.bottom() + 1) / 2 / scale + y0,
            r.width() / scale,
            r.height() / scale,
        )

    def to_dlib(self) -> dlib.rectangle:
        """The box as a dlib rectangle in the same image (integer corners)."""
        return dlib.rectangle(int(self.cx - self.w / 2), int(self.cy - self.h / 2),
                              int(self.cx + self.w / 2), int(self.cy + self.h / 2))

    @classmethod
    def around(cls, points: np.ndarray) -> Box:
        """Bounding box of points [N, 2]."""
        lo, hi = points.min(axis=0), points.max(axis=0)
        return cls((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[0] - lo[0], hi[1] - lo[1])

    @property
    def size(self) -> float:
        return max(self.w, self.h)

    def scaled(self, factor: float) -> Box:
        return Box(self.cx, self.cy, self.w * factor, self.h * factor)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.cx + self.w / 2, other.cx + other.w / 2) - max(self.cx - self.w / 2, other.cx - other.w / 2))
        iy = max(0.0, min(self.cy + self.h / 2, other.cy + other.h / 2) - max(self.cy - self.h / 2, other.cy - other.h / 2))
        inter = ix * iy
        return inter / (self.w * self.h + other.w * other.h - inter + 1e-9)


@cache
def predictor_path(name: str = PREDICTOR_FILE) -> Path:
    """A model file shipped in the face-recognition-models wheel (by default the 68-point one).

    Found through the import system without importing the package (its ``__init__`` needs
    a setuptools module that modern environments lack).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pip install face-recognition-models)")
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "models" / name
        if candidate.is_file():
            return candidate
    raise RuntimeError(f"face-recognition-models has no models/{name}")


@cache
def _shape_predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(predictor_path()))


@cache
def _recogniser() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(predictor_path(RECOGNITION_FILE)))


def face_descriptor(frame: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 128-D face-recognition descriptor [128] float64 of the face in ``box`` of an RGB
    frame [H, W, 3] uint8; faces of one person lie within ~0.6 of each other (~100 ms)."""
    frame = np.ascontiguousarray(frame)
    return np.array(_recogniser().compute_face_descriptor(frame, _shape_predictor()(frame, box.to_dlib())))


def landmarks_in_box(image: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 landmarks ``[68, 2]`` float64 (integer pixels) of the face in ``box`` of an
    image ``[H, W]`` or ``[H, W, 3]`` uint8, predicted at the image's own scale (no tracking)."""
    shape = _shape_predictor()(np.ascontiguousarray(image), box.to_dlib())
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


@cache
def face_detector() -> dlib.fhog_object_detector:
    """dlib's frontal face detector (HOG), loaded once per process."""
    return dlib.get_frontal_face_detector()


def _region(gray: np.ndarray, box: Box, context: float, face_px: float, allow_downscale: bool):
    """Cut a square region ``context`` face sizes wide around ``box`` and resize it so the face is
    ``face_px`` wide. Returns (image, scale, x0, y0) with frame = image / scale + (x0, y0)."""
    h, w = gray.shape
    half = box.size * context / 2
    x0, y0 = max(0, int(box.cx - half)), max(0, int(box.cy - half))
    x1, y1 = min(w, int(box.cx + half) + 1), min(h, int(box.cy + half) + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = face_px / max(box.size, 1.0)
    if not allow_downscale:
        scale = max(scale, 1.0)
    patch = gray[y0:y1, x0:x1]
    if abs(scale - 1.0) > 1e-3:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=interp)
    return patch, scale, x0, y0


def detect_faces(gray: np.ndarray, full_frame_side: int = 640, *, full_resolution: bool = True) -> list[tuple[Box, float]]:
    """All frontal faces in a grayscale frame [H, W] uint8, as (box, score), best effort at any size.

    Searches a downscaled copy first, then upsampled copies for small faces; the last resort, the
    whole frame at full resolution (~0.5 s at 1080p), only with ``full_resolution``.
    """
    h, w = gray.shape
    factor = min(1.0, full_frame_side / max(h, w))
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
    attempts = [(small, factor, 0), (small, factor, 1)]
    if factor < 0.75 and full_resolution:  # faces too small for the downscaled copy: search the full frame
        attempts.append((gray, 1.0, 1))
    for image, scale, upsample in attempts:
        rects, scores, _ = face_detector().run(image, upsample, 0.0)
        if rects:
            return [(Box.from_dlib(r, scale), float(s)) for r, s in zip(rects, scores)]
    return []


class FaceTracker:
    """Landmarks of one person through a video, fed frame by frame.

    >>> tracker = FaceTracker()
    >>> landmarks = [tracker.update(frame) for frame in frames]  # each [68, 2] float32 or None
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self._frame_index = 0
        self._last_landmarks: np.ndarray | None = None
        self._last_seen: Box | None = None  # landmark box where the face was last found
        self._next_key = 0
        # detector box relative to the landmark box: (dx, dy) in landmark-box sizes, scale
        self._relation = np.array([0.0, 0.0, 1.0])
        self._relation_known = False
        self._identity: np.ndarray | None = None  # face descriptor of the tracked person
        self._confirmed_at = -1  # last frame where the detector confirmed the tracked face
        self._retracted = range(0)
        self.detections = 0  # key frames where the detector confirmed the face
        self.seconds = {"detect": 0.0, "landmarks": 0.0}  # time spent per stage (for benchmarks)

    def _detector_box_from_landmarks(self, landmarks: np.ndarray) -> Box:
        lb = Box.around(landmarks)
        dx, dy, s = self._relation
        return Box(lb.cx + dx * lb.size, lb.cy + dy * lb.size, lb.size * s, lb.size * s)

    def _learn_relation(self, detection: Box, landmarks: np.ndarray) -> None:
        lb = Box.around(landmarks)
        observed = np.array([(detection.cx - lb.cx) / lb.size, (detection.cy - lb.cy) / lb.size, detection.size / lb.size])
        self._relation = observed if not self._relation_known else 0.8 * self._relation + 0.2 * observed
        self._relation_known = True

    def _predict(self, gray: np.ndarray, box: Box) -> np.ndarray | None:
        region = _region(gray, box, 1.6, self.config.predict_face_px, allow_downscale=False)
        if region is None:
            return None
        patch, scale, x0, y0 = region
        half = box.size * scale / 2
        cx, cy = (box.cx - x0) * scale, (box.cy - y0) * scale
        rect = dlib.rectangle(int(round(cx - half)), int(round(cy - half)), int(round(cx + half)) - 1, int(round(cy + half)) - 1)
        shape = _shape_predictor()(patch, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        # dlib's integer pixel (x, y) is a pixel centre: map centres back through the resize
        points = (points + 0.5) / scale - 0.5 + (x0, y0)
        return points.astype(np.float32)

    def _detect_near(self, gray: np.ndarray, expected: Box) -> Box | None:
        region = _region(gray, expected, 2.2, self.config.detect_face_px, allow_downscale=True)
        if region is None:
            return None
        patch, scale, x0, y0 = region
        rects, _, _ = face_detector().run(patch, 0, 0.0)
        boxes = [Box.from_dlib(r, scale, x0, y0) for r in rects]
        if not boxes:
            return None
        return max(boxes, key=expected.iou)

    def _acquire(self, frame: np.ndarray, gray: np.ndarray) -> Box | None:
        found = detect_faces(gray, self.config.full_frame_side)
        if not found:
            return None
        if self._identity is None:  # first sight: the main (largest, most certain) face
            box = max(found, key=lambda f: f[0].size * (1.0 + 0.1 * f[1]))[0]
            self._identity = face_descriptor(frame, box)
            return box
        last = self._last_seen
        if last is not None:  # most likely first: near where the person was, of similar size
            found.sort(key=lambda f: np.hypot(f[0].cx - last.cx, f[0].cy - last.cy) / last.size + abs(np.log(f[0].size / last.size)))
        for box, _ in found:
            if np.linalg.norm(face_descriptor(frame, box) - self._identity) <= self.config.same_person_distance:
                return box
        return None

    def update(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks [68, 2] float32 (pixels, x then y) of the tracked face in an RGB frame
        [H, W, 3] uint8 (or grayscale [H, W]), or None when the face is not visible."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        index = self._frame_index
        self._frame_index += 1
        is_key = index >= self._next_key
        if is_key:
            self._next_key = index + self.config.key_interval
        box: Box | None = None
        from_detection = False
        started = time.perf_counter()
        if self._last_landmarks is not None:
            box = self._detector_box_from_landmarks(self._last_landmarks)
            if is_key:
                detection = self._detect_near(gray, box) or self._acquire(frame, gray)
                if detection is None:
                    box = None  # the face left, turned away or is covered
                    # since the last confirmation the predictor may have drawn a face on nothing
                    self._retracted = range(self._confirmed_at + 1, index)
                elif detection.iou(box) < self.config.min_overlap:
                    box, from_detection = detection, True
        elif is_key:
            box = self._acquire(frame, gray)
            from_detection = box is not None
        predicting = time.perf_counter()
        self.seconds["detect"] += predicting - started
        landmarks = self._predict(gray, box) if box is not None else None
        self.seconds["landmarks"] += time.perf_counter() - predicting
        if landmarks is None:
            self._last_landmarks = None
            return None
        if from_detection and box is not None:  # from_detection: box is the detection
            self._learn_relation(box, landmarks)
        if is_key:
            self.detections += 1
            self._confirmed_at = index
        elif self._jumped(landmarks):
            self._next_key = index + 1  # verify with the detector on the next frame
        self._last_landmarks = landmarks
        self._last_seen = Box.around(landmarks)
        return landmarks

    def take_retracted(self) -> range:
        """Earlier frames (0-based indices) whose landmarks turned out unconfirmed: the face was
        gone at the next key frame. Cleared by the call."""
        retracted, self._retracted = self._retracted, range(0)
        return retracted

    def _jumped(self, landmarks: np.ndarray) -> bool:
        if self._last_seen is None:
            return False
        now, before = Box.around(landmarks), self._last_seen
        shift = np.hypot(now.cx - before.cx, now.cy - before.cy) / before.size
        return shift > self.config.max_jump or abs(np.log(now.size / before.size)) > self.config.max_jump


def track_landmarks(frames: Iterable[np.ndarray], n_frames: int, config: TrackerConfig = TrackerConfig(),
                    on_frame: Callable[[], None] | None = None) -> np.ndarray:
    """Landmarks [T, 68, 2] float32 (NaN where no face) of one clip's RGB frames [H, W, 3] uint8.

    Frames the tracker later retracts (the face had gone by the next key frame) are NaN too.
    """
    landmarks = np.full((n_frames, N_LANDMARKS, 2), np.nan, dtype=np.float32)
    tracker = FaceTracker(config)
    for index, frame in enumerate(frames):
        points = tracker.update(frame)
        if points is not None:
            landmarks[index] = points
        landmarks[tracker.take_retracted()] = np.nan
        if on_frame:
            on_frame()
    return landmarks


def smooth_landmarks(landmarks: np.ndarray, found: np.ndarray, window: int = 5, polyorder: int = 2) -> np.ndarray:
    """Savitzky–Golay smoothing in time within each run of consecutive found frames.

    landmarks [T, 68, 2] float32, found [T] bool → [T, 68, 2] float32. A low polynomial order
    over ~5 frames (200 ms) removes detector jitter but keeps fast lip closures (/p/, /b/, /m/).
    Runs shorter than the window are left as they are; ``window`` < 3 disables smoothing.
    """
    out = landmarks.astype(np.float32, copy=True)
    if window < 3:
        return out
    window += 1 - window % 2  # odd
    idx = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
    for start, stop in zip(idx[::2], idx[1::2]):
        if stop - start >= window:
            out[start:stop] = savgol_filter(landmarks[start:stop].astype(np.float64), window, min(polyorder, window - 1), axis=0)
    return out
