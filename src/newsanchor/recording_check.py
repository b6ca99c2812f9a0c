"""Checks on a presenter's recordings before an anchor is trained from them; nothing is written.

Every problem is found in one pass and reported in plain words that say what to re-record, e.g.
``talk.mp4: the face is 61 px (…); film closer so that it is at least 98 px``.
A recording is measured from frames sampled every ``sample_every_s`` (2 a second by default, at
most :data:`MAX_SAMPLED_FRAMES` per recording) and from its whole audio track:

- video: frame rate, and per sampled frame the faces dlib's frontal detector finds, the 68
  landmarks of the largest (the presenter, as the tracker picks it), its size, how far it is
  turned (yaw, from the nose tip between the outer eye corners) and its brightness;
- audio: speech found by the project's voice activity detector (audio2mouth.silence), its level,
  clipping, and the longest stretch without speech in which the presenter's face is in view
  with the mouth closed (what the anchor's template is cut from).

Thresholds live in :class:`RecordingRequirements`, each with the reason for its value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from . import media
from .audio2mouth.silence import DEFAULT_VAD, activity_from_energy, frame_energy_db
from .config import PrepareConfig
from .errors import MediaError
from .features.face import Box, face_detector, landmarks_in_box
from .features.mouth import mouth_size, normalise_mouth
from .prepare import collect_inputs, frames_for_mouth_pca
from .timing import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

# The stable ids of RecordingProblem.check. Music under the speech is not among them: the energy VAD
# cannot tell music from speech, and nothing else here could do it reliably.
CHECKS = ("unreadable", "frame_rate_too_low", "too_short", "no_face", "face_too_small", "several_faces", "face_turned",
          "too_dark", "no_audio", "audio_shorter_than_video", "audio_silent", "audio_clipped", "audio_too_quiet",
          "speech_too_short", "no_quiet_stretch")
MAX_SAMPLED_FRAMES = 600  # per recording: fractions are then known to ±4 % (95 %), and an hour takes ~1 min
_SEARCH_SIDE = 640  # longest side of whole-frame face searches (as features.face.detect_faces)
_DLIB_WINDOW_PX = 80  # dlib's frontal detector finds faces down to about its 80 px window
_PRESENTER_AT_PX = 2 * _DLIB_WINDOW_PX  # once found, search at a scale where the presenter is this wide…
_MAX_SEARCH_SIDE = 1280  # …but never on an image longer than this (~80 ms a search)
_NOSE_DEPTH = 0.47  # nose tip in front of the outer eye corners, in eye-corner distances: offset 0.47·tan(yaw)
_AUDIO_CHUNK_FRAMES = 1500  # 60 s of audio per FFT block: bounded memory for long recordings
# "At full scale": within 0.45 dB of it. Lossy codecs (AAC, in nearly every camera file) turn the
# flat tops of clipped waves into ripples around full scale: speech amplified 20× and clipped, then
# AAC-coded, has 0.8 % of its samples at 0.999 or above but 5 % at 0.95 or above.
_NEAR_FULL_SCALE = 0.95


@dataclass(frozen=True)
class RecordingRequirements:
    """What a recording must show. Defaults and their reasons:"""

    # The paper trains on 2 hours; the least the project trains an anchor on is the offline demo's
    # ~2.3 min of speech (141 s over its two clips). Below 2 minutes the audio→mouth model has seen
    # too few phonemes in context to generalise to new scripts.
    min_total_speech_s: float = 120.0
    # prepare resamples to 25 fps by repeating frames: below 20 fps more than one frame in five is
    # a repeat, and the mouth the models learn from moves in jumps.
    min_fps: float = 20.0
    # The renderer's crop side (256 for CPU work, 512 as in the paper).
    crop_size: int = 256
    # prepare's crop is crop_margin × the 68-landmark box (PrepareConfig.crop_margin). The face must
    # be large enough that this crop is at least min_crop_fill of crop_size, i.e. enlarged at most
    # 1.25×: GRID s1 (face ~111 px at 360×288, the smallest the project accepts for 256² crops)
    # gives a 233 px crop, enlarged 1.10×; upscaled further, the renderer learns and reproduces blur.
    crop_margin: float = PrepareConfig.crop_margin
    min_crop_fill: float = 0.8
    # Sampled frames with a face. Frames without one are dropped by prepare; more than a fifth
    # lost means the presenter leaves the shot, looks away or is covered for long.
    min_face_found: float = 0.8
    # A second face at least half the presenter's width in a fifth of the frames: the tracker
    # follows the largest face of its first sighting, which may be the wrong person, and the
    # other face sits in the crops the renderer learns from.
    second_face_ratio: float = 0.5
    max_several_faces: float = 0.2
    # Yaw from the nose tip between the outer eye corners (0.5 = frontal). 0.2 off centre is
    # ~23° (_NOSE_DEPTH). Mouth normalisation removes in-plane rotation only, so turned heads teach
    # the mouth model foreshortening as mouth shape; the paper's actors avoided out-of-plane rotation.
    max_yaw_offset: float = 0.2
    max_turned: float = 0.2
    # Median luma (0–255) of the face box. The facial maps are Canny edges at fixed thresholds
    # (PrepareConfig canny_low 60, canny_high 140): gradients scale with brightness, so below ~40
    # (a well-lit face is 85–150) the face's contours fall under them, and shadow noise rises.
    min_face_luma: float = 40.0
    # Share of the speech samples at full scale (within 0.45 dB of it). GRID s1's loudest clips
    # reach it on 0.4 % of their speech (brief peaks); past 1 % the vowels themselves are flattened,
    # adding harmonics that change the MFCCs the mouth model hears.
    max_clipped: float = 0.01
    # Speech level (RMS above 100 Hz over speech frames). Real recordings have a noise floor
    # around -60 to -70 dBFS (features/audio.py); speech below -40 dBFS puts its quiet consonants,
    # 20–30 dB under the vowels, in that floor. Broadcast speech sits near -23.
    min_speech_dbfs: float = -40.0
    # Less speech than this in a recording: its sound is silent, or not the presenter's voice.
    min_recording_speech_s: float = 1.0
    # The template (template.py) is the best-scoring stretch of its default 100 frames (4 s, played
    # forwards and backwards); the best has no speech, the face in view and the mouth closed. Below
    # 2 s of such a stretch, half the template's frames or more show the presenter speaking or
    # looking away, and every video carries them; the message asks for 5 s to leave room.
    min_quiet_stretch_s: float = 2.0
    # Inner-lip opening (inter-ocular distances) above which a silent mouth counts as open
    # (~0.02 closed, ~0.2 wide open, see template.find_template).
    max_closed_opening: float = 0.1

    @property
    def min_face_px(self) -> float:
        """Smallest 68-landmark box (its longer side, source pixels) that meets ``min_crop_fill``."""
        return self.min_crop_fill * self.crop_size / self.crop_margin


@dataclass(frozen=True)
class RecordingProblem:
    path: Path | None  # the recording, or None for a problem of the whole set
    check: str  # stable id, e.g. "face_too_small"
    message: str  # one line: what is wrong and what to do, naming the file


@dataclass(frozen=True)
class RecordingSummary:
    """What was measured in one recording; None where it could not be measured."""

    path: Path
    error: str | None = None  # why the file could not be read
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # average source frame rate
    has_audio: bool | None = None
    sampled_frames: int = 0
    face_found: float | None = None  # fraction of sampled frames with a face
    several_faces: float | None = None  # fraction of face frames with a second, sizeable face
    face_px: float | None = None  # median 68-landmark box (longer side), source pixels
    crop_upscale: float | None = None  # how much prepare's crop is enlarged to crop_size (> 1: upsampled)
    frontal: float | None = None  # fraction of face frames turned at most max_yaw_offset
    face_luma: float | None = None  # median mean luma (0–255) of the face box
    speech_s: float | None = None
    speech_dbfs: float | None = None
    peak_dbfs: float | None = None
    clipped: float | None = None  # fraction of speech samples at full scale (within 0.45 dB)
    longest_quiet_s: float | None = None  # without speech, face in view, mouth closed


@dataclass(frozen=True)
class RecordingReport:
    recordings: list[RecordingSummary]
    problems: list[RecordingProblem]
    total_speech_s: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem, or one line saying that all recordings pass."""
        if self.problems:
            return [p.message for p in self.problems]
        n = len(self.recordings)
        return [f"{'the recording passes' if n == 1 else f'all {n} recordings pass'}: {self.total_speech_s / 60:.1f} min of speech, "
                f"a quiet stretch of {max(r.longest_quiet_s or 0 for r in self.recordings):.1f} s for the template"]


@dataclass
class _Faces:
    """Per sampled frame: found, a second face, size, yaw offset, luma, mouth opening."""

    found: list[bool] = field(default_factory=list)
    several: list[bool] = field(default_factory=list)
    size: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    luma: list[float] = field(default_factory=list)
    opening: list[float] = field(default_factory=list)


def _search(gray: np.ndarray, scale: float, upsample: int) -> list[Box]:
    image = gray if abs(scale - 1) < 1e-3 else cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    rects, _, _ = face_detector().run(image, upsample, 0.0)
    return [Box.from_dlib(r, scale) for r in rects]


def _find_faces(gray: np.ndarray, presenter_px: float | None) -> list[Box]:
    """Faces in a grayscale frame [H, W] uint8, largest first. Where the presenter's width is
    known, one search at a scale that also finds faces half as wide; else (or when that finds
    nothing) the whole-frame search of features.face.detect_faces at 640 px, without its
    full-resolution step (~0.5 s at 1080p: too slow to run on every sampled frame)."""
    longest = max(gray.shape)
    boxes: list[Box] = []
    if presenter_px:
        boxes = _search(gray, min(_PRESENTER_AT_PX / presenter_px, _MAX_SEARCH_SIDE / longest, 2.0), 0)
    for upsample in (0, 1):
        if boxes:
            break
        boxes = _search(gray, min(1.0, _SEARCH_SIDE / longest), upsample)
    return sorted(boxes, key=lambda b: -b.w)


def _smallest_findable_px(width: int, height: int) -> float:
    return _DLIB_WINDOW_PX / 2 * max(1.0, max(width, height) / _SEARCH_SIDE)


def _rate(every_s: float) -> Fraction:
    return 1 / Fraction(every_s).limit_denominator(10_000)


def _measure_faces(path: Path, info: media.MediaInfo, every_s: float, req: RecordingRequirements,
                   advance: Callable[[], None]) -> _Faces:
    """The presenter's face in frames sampled every ``every_s`` seconds (MediaError if unreadable)."""
    faces, presenter_px = _Faces(), None
    for frame in media.iter_video_frames(path, _rate(every_s), info=info):
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


def _speech(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VAD activity [T] in 0..1 and frame energies [T] dBFS per 25 fps frame of wav [S] 16 kHz,
    as audio2mouth.silence.speech_activity computes them, the FFT in bounded blocks."""
    n = math.ceil(len(wav) / SAMPLES_PER_FRAME)
    step = _AUDIO_CHUNK_FRAMES
    energy = np.concatenate([np.zeros(0)] + [
        frame_energy_db(wav[k * SAMPLES_PER_FRAME:(k + step) * SAMPLES_PER_FRAME], min(step, n - k), DEFAULT_VAD.low_cut_hz)
        for k in range(0, n, step)])
    return activity_from_energy(energy, DEFAULT_VAD), energy


def _db(power: float) -> float:
    return 10 * math.log10(max(power, 1e-10))


def _longest_run(mask: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


def _measure(path: Path, info: media.MediaInfo, every_s: float, req: RecordingRequirements,
             advance: Callable[[], None]) -> RecordingSummary:
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
    activity, energy = _speech(wav)
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


def _video_problems(s: RecordingSummary, info: media.MediaInfo, req: RecordingRequirements,
                    prepare: PrepareConfig) -> list[tuple[str, str]]:
    out = []
    width, height, fps, face_found = info.width, info.height, info.average_fps, s.face_found or 0.0
    if fps is not None and fps < req.min_fps:
        out.append(("frame_rate_too_low", f"the video has {fps:.1f} frames a second; record at 25 (at least "
                                          f"{req.min_fps:g}): slower video is stretched to 25 by repeating frames"))
    needed = frames_for_mouth_pca(prepare)
    if media.count_output_frames(info, prepare.fps) < needed:
        out.append(("too_short", f"only {info.video_duration_s:.2f} s long; prepare needs at least {needed / prepare.fps:.2f} s; "
                                 "record longer takes"))
    n = s.sampled_frames
    if face_found < req.min_face_found:
        seen = f"in only {round(face_found * n)} of {n} sampled frames" if face_found else f"in none of {n} sampled frames"
        out.append(("no_face", f"a face was found {seen} (faces under ~{_smallest_findable_px(width, height):.0f} px "
                               f"are not seen); keep the presenter's whole face in shot, facing the camera, "
                               f"at least {math.ceil(req.min_face_px)} px"))
    if s.face_px is None or s.crop_upscale is None or s.several_faces is None or s.frontal is None or s.face_luma is None:
        return out  # no face: nothing more to say about it
    if s.crop_upscale > 1 / req.min_crop_fill:
        crop = f"prepare's {req.crop_margin:g}× crop is {req.crop_size / s.crop_upscale:.0f} px, enlarged {s.crop_upscale:.2f}× " \
               f"to the renderer's {req.crop_size}² crops"
        todo = f"film closer so that it is at least {math.ceil(req.min_face_px)} px" if req.crop_margin * s.face_px < min(
            width, height) else f"record at a higher resolution than {width}×{height}"
        out.append(("face_too_small", f"the face is {s.face_px:.0f} px (brows to chin or across the jaw, the larger), "
                                      f"so {crop}; {todo}"))
    if s.several_faces > req.max_several_faces:
        out.append(("several_faces", f"a second face is in shot in {s.several_faces:.0%} of the frames with a face; "
                                     "film the presenter alone"))
    if 1 - s.frontal > req.max_turned:
        degrees = math.degrees(math.atan(req.max_yaw_offset / _NOSE_DEPTH))
        out.append(("face_turned", f"the face is turned more than ~{degrees:.0f}° from the camera in {1 - s.frontal:.0%} "
                                   f"of the frames with a face; have the presenter face the camera (turned at most "
                                   f"{req.max_turned:.0%} of the time)"))
    if s.face_luma < req.min_face_luma:
        out.append(("too_dark", f"the face is too dark (mean luma {s.face_luma:.0f} of 255, needs at least {req.min_face_luma:g}); "
                                "light the presenter's face evenly from the front"))
    return out


def _audio_problems(s: RecordingSummary, info: media.MediaInfo, req: RecordingRequirements,
                    prepare: PrepareConfig) -> list[tuple[str, str]]:
    if not info.has_audio:
        return [("no_audio", "has no sound track; record the presenter's voice in the same file")]
    out = []
    if info.video_duration_s - info.audio_duration_s > prepare.max_audio_shortfall_s:
        out.append(("audio_shorter_than_video", f"the sound ends at {info.audio_duration_s:.2f} s of "
                                                f"{info.video_duration_s:.2f} s of video; export sound and picture "
                                                "together, the same length"))
    if media.count_output_frames(info, prepare.fps) < frames_for_mouth_pca(prepare):
        return out  # too short to say anything about its speech ("too_short" says so)
    speech_s, peak_dbfs, clipped = s.speech_s or 0.0, s.peak_dbfs if s.peak_dbfs is not None else -100.0, s.clipped or 0.0
    if speech_s < req.min_recording_speech_s or s.speech_dbfs is None:
        level = f"its loudest peak is {peak_dbfs:.0f} dBFS" if peak_dbfs > -99 else "the track is digital silence"
        return out + [("audio_silent", f"no speech heard ({speech_s:.1f} s; {level}); check that the "
                                       "presenter's microphone is connected and recording")]
    if clipped > req.max_clipped:
        out.append(("audio_clipped", f"the sound is clipped ({clipped:.1%} of the speech at full scale); "
                                     "record again with the input gain lower, peaks near -6 dBFS"))
    if s.speech_dbfs < req.min_speech_dbfs:
        out.append(("audio_too_quiet", f"the speech is too quiet ({s.speech_dbfs:.0f} dBFS, needs "
                                       f"{req.min_speech_dbfs:g}); raise the input gain or move the microphone closer"))
    return out


def _unreadable(path: Path, reason: str) -> RecordingProblem:
    todo = {"no such file": "check the name and folder", "no video stream": "a recording needs the camera's picture too"}
    return RecordingProblem(path, "unreadable", f"{path}: cannot be read ({reason}); "
                                                f"{todo.get(reason, 'export it again as an mp4 or mov')}")


def _recordings(paths: Sequence[Path]) -> list[Path]:
    """Files as given (a missing one is reported, not raised); folders as prepare expands them."""
    found: list[Path] = []
    for path in map(Path, paths):
        found.extend(collect_inputs([path]) if path.is_dir() else [path])
    return found


def check_recordings(paths: Sequence[Path], requirements: RecordingRequirements = RecordingRequirements(), *,
                     sample_every_s: float = 0.5, progress: Callable[[int, int], None] | None = None) -> RecordingReport:
    """Measure each recording and report every problem at once; nothing is written.

    ``paths``: recordings, or folders of them (their video files, recursively, as ``prepare``
    reads them). A file that cannot be read is one ``unreadable`` problem naming it and the
    reason; the others are still checked. ``progress(done, total)`` counts sampled frames over
    all recordings. Raises MediaError for a folder without video files.
    """
    if not sample_every_s > 0:
        raise ValueError(f"sample_every_s must be positive, got {sample_every_s}")
    req, prepare_config = requirements, PrepareConfig()
    problems: list[RecordingProblem] = []
    summaries: list[RecordingSummary] = []
    planned: list[tuple[Path, media.MediaInfo | None, float]] = []
    for path in _recordings(paths):
        try:
            info = media.probe(path, require_audio=False)
        except MediaError as err:
            planned.append((path, None, 0.0))
            summaries.append(RecordingSummary(path, error=err.problem))
            continue
        every = max(sample_every_s, info.video_duration_s / MAX_SAMPLED_FRAMES)
        planned.append((path, info, every))
        summaries.append(RecordingSummary(path))
    total = sum(media.count_output_frames(info, _rate(every)) for _, info, every in planned if info is not None)
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for index, (path, probed, every) in enumerate(planned):
        if probed is None:
            problems.append(_unreadable(path, summaries[index].error or "unreadable"))
            continue
        try:
            summary = _measure(path, probed, every, req, advance)
        except MediaError as err:
            summaries[index] = RecordingSummary(path, error=err.problem)
            problems.append(_unreadable(path, err.problem))
            continue
        summaries[index] = summary
        for check, text in (_video_problems(summary, probed, req, prepare_config)
                            + _audio_problems(summary, probed, req, prepare_config)):
            problems.append(RecordingProblem(path, check, f"{path}: {text}"))
    measured = [s for s in summaries if s.error is None]
    total_speech = sum(s.speech_s or 0.0 for s in measured)
    if total_speech < req.min_total_speech_s:
        more = req.min_total_speech_s - total_speech
        problems.append(RecordingProblem(None, "speech_too_short", (
            f"the {len(planned)} recording{'s hold' if len(planned) != 1 else ' holds'} {total_speech:.0f} s of speech; an anchor needs "
            f"at least {req.min_total_speech_s:.0f} s: record about {math.ceil(more / 60)} more minute"
            f"{'s' if math.ceil(more / 60) != 1 else ''} of the presenter reading to the camera")))
    quiet = [(s.longest_quiet_s, s.path) for s in measured if s.longest_quiet_s is not None]
    if quiet and max(quiet)[0] < req.min_quiet_stretch_s:
        longest, where = max(quiet)
        problems.append(RecordingProblem(None, "no_quiet_stretch", (
            f"no recording has {req.min_quiet_stretch_s:g} s without speech with the face in view and the mouth closed "
            f"(the longest is {longest:.1f} s, in {where}); film the presenter silent, mouth closed, "
            f"looking into the camera for {max(5, math.ceil(req.min_quiet_stretch_s) + 1)} s: the anchor's template is cut from it")))
    return RecordingReport(summaries, problems, total_speech)
