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
from pathlib import Path

from .. import media
from ..config import PrepareConfig
from ..errors import MediaError
from ..prepare import collect_inputs, frames_for_mouth_pca
from .measure import measure_recording, sampling_rate, smallest_findable_px
from .report import CHECKS, RecordingProblem, RecordingReport, RecordingRequirements, RecordingSummary

__all__ = ["CHECKS", "MAX_SAMPLED_FRAMES", "RecordingProblem", "RecordingReport", "RecordingRequirements",
           "RecordingSummary", "check_recordings"]

MAX_SAMPLED_FRAMES = 600  # per recording: fractions are then known to ±4 % (95 %), and an hour takes ~1 min
_NOSE_DEPTH = 0.47  # nose tip in front of the outer eye corners, in eye-corner distances: offset 0.47·tan(yaw)


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
        out.append(("no_face", f"a face was found {seen} (faces under ~{smallest_findable_px(width, height):.0f} px "
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
    total = sum(media.count_output_frames(info, sampling_rate(every)) for _, info, every in planned if info is not None)
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
            summary = measure_recording(path, probed, every, req, advance)
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
