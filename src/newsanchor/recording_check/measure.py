"""One recording measured: its face in frames sampled a few times a second, and its whole sound
track (speech, level, clipping, and the longest silent, closed-mouth stretch with the face in view)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .. import media
from ..audio2mouth.silence import DEFAULT_VAD, activity_from_energy, frame_energy_db
from ..features.face import Box, detect_faces, face_detector, landmarks_in_box
from ..features.mouth import mouth_size, normalise_mouth
from ..timing import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .report import RecordingRequirements, RecordingSummary

_SEARCH_SIDE = 640  # longest side of whole-frame face searches (as features.face.detect_faces)
_DLIB_WINDOW_PX = 80  # dlib's frontal detector finds faces down to about its 80 px window
_PRESENTER_AT_PX = 2 * _DLIB_WINDOW_PX  # once found, search at a scale where the presenter is this wide…
_MAX_SEARCH_SIDE = 1280  # …but never on an image longer than this (~80 ms a search)
# "At full scale": within 0.45 dB of it. Lossy codecs (AAC, in nearly every camera file) turn the
# flat tops of clipped waves into ripples around full scale: speech amplified 20× and clipped, then
# AAC-coded, has 0.8 % of its samples at 0.999 or above but 5 % at 0.95 or above.
_NEAR_FULL_SCALE = 0.95


@dataclass
class _Faces:
    """Per sampled frame: found, a second face, size, yaw offset, luma, mouth opening."""

    found: list[bool] = field(default_factory=list)
    several: list[bool] = field(default_factory=list)
    size: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    luma: list[float] = field(default_factory=list)
    opening: list[float] = field(default_factory=list)


def _find_faces(gray: np.ndarray, presenter_px: float | None) -> list[Box]:
    """Faces in a grayscale frame [H, W] uint8, largest first. Where the presenter's width is
    known, one search at a scale that also finds faces half as wide; else (or when that finds
    nothing) features.face.detect_faces without its full-resolution step (~0.5 s at 1080p: too
    slow to run on every sampled frame)."""
    boxes: list[Box] = []
    if presenter_px:
        scale = min(_PRESENTER_AT_PX / presenter_px, _MAX_SEARCH_SIDE / max(gray.shape), 2.0)
        image = gray if abs(scale - 1) < 1e-3 else cv2.resize(
            gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes = [Box.from_dlib(r, scale) for r in face_detector().run(image, 0, 0.0)[0]]
    if not boxes:
        boxes = [box for box, _ in detect_faces(gray, _SEARCH_SIDE, full_resolution=False)]
    return sorted(boxes, key=lambda b: -b.w)


def smallest_findable_px(width: int, height: int) -> float:
    """The narrowest face (px) the whole-frame search finds in a ``width × height`` video."""
    return _DLIB_WINDOW_PX / 2 * max(1.0, max(width, height) / _SEARCH_SIDE)


def sampling_rate(every_s: float) -> Fraction:
    """Frames a second that sample a video every ``every_s`` seconds."""
    return 1 / Fraction(every_s).limit_denominator(10_000)


def _measure_faces(path: Path, info: media.MediaInfo, every_s: float, req: RecordingRequirements,
                   advance: Callable[[], None]) -> _Faces:
    """The presenter's face in frames sampled every ``every_s`` seconds (MediaError if unreadable)."""
    faces, presenter_px = _Faces(), None
    for frame in media.iter_video_frames(path, sampling_rate(every_s), info=info):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        boxes = _find_faces(gray, presenter_px)
        faces.found.append(bool(boxes))
        if boxes:
            presenter_px = boxes[0].w
            points = landmarks_in_box(gray, boxes[0])
            lo, hi = points.min(axis=0), points.max(axis=0)
            eyes = points[45] - points[36]  # outer eye corners: the yaw measure is free of roll
            x0, y0 = np.clip(np.floor(lo).astype(int), 0, None)
            x1, y1 = np.ceil(hi).astype(int) + 1
            faces.several.append(len(boxes) > 1 and boxes[1].w >= req.second_face_ratio * boxes[0].w)
            faces.size.append(float((hi - lo).max()))
            faces.yaw.append(float(np.dot(points[30] - points[36], eyes) / max(np.dot(eyes, eyes), 1e-9)) - 0.5)
            faces.luma.append(float(gray[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0)
            faces.opening.append(float(mouth_size(normalise_mouth(points))[1]) if np.dot(eyes, eyes) > 0 else np.inf)
        advance()
    return faces



def _db(power: float) -> float:
    return 10 * math.log10(max(power, 1e-10))


def _longest_run(mask: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


def measure_recording(path: Path, info: media.MediaInfo, every_s: float, req: RecordingRequirements,
                      advance: Callable[[], None]) -> RecordingSummary:
    """What ``path`` shows, its frames sampled every ``every_s`` s; ``advance()`` after each sampled
    frame. Raises MediaError if it cannot be decoded."""
    faces = _measure_faces(path, info, every_s, req, advance)
    found = np.array(faces.found, bool)
    any_face = bool(found.any())
    video = RecordingSummary(
        path=path, duration_s=info.video_duration_s, width=info.width, height=info.height, fps=info.average_fps,
        has_audio=info.has_audio, sampled_frames=len(found), face_found=float(found.mean()) if len(found) else 0.0)
    if any_face:
        size = float(np.median(faces.size))
        video = replace(video, face_px=size, several_faces=float(np.mean(faces.several)),
                        crop_upscale=req.crop_size / min(req.crop_margin * size, info.width, info.height),
                        frontal=float(np.mean(np.abs(faces.yaw) <= req.max_yaw_offset)),
                        face_luma=float(np.median(faces.luma)))
    if not info.has_audio:
        return video
    wav = media.read_audio(path, SAMPLE_RATE, info=info)
    energy = frame_energy_db(wav, math.ceil(len(wav) / SAMPLES_PER_FRAME), DEFAULT_VAD.low_cut_hz)
    activity = activity_from_energy(energy, DEFAULT_VAD)
    speech = activity >= 0.5
    frames = np.pad(wav, (0, len(activity) * SAMPLES_PER_FRAME - len(wav))).reshape(-1, SAMPLES_PER_FRAME)
    spoken = frames[speech] if speech.any() else frames
    # a stretch for the template: no speech, and no sampled frame near it without a face or with an open mouth
    usable = ~speech
    closed = iter(faces.opening)
    for k, face in enumerate(found):
        if not face or next(closed) > req.max_closed_opening:
            centre = k * every_s * FPS
            usable[max(0, math.floor(centre - every_s * FPS / 2)):math.ceil(centre + every_s * FPS / 2)] = False
    return replace(
        video, speech_s=float(speech.sum()) / FPS,
        speech_dbfs=_db(float(np.mean(10 ** (energy[speech] / 10)))) if speech.any() else None,
        peak_dbfs=20 * math.log10(max(float(np.abs(wav).max(initial=0.0)), 1e-5)),
        clipped=float(np.mean(np.abs(spoken) >= _NEAR_FULL_SCALE)) if spoken.size else 0.0,
        longest_quiet_s=_longest_run(usable) / FPS)
