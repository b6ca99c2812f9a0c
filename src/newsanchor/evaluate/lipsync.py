"""Lip sync of a finished video, measured from the outside: does the mouth follow the speech?

Nothing of the pipeline is reused to look at the output: every frame is searched afresh by
dlib's frontal face detector (no tracking, no smoothing, no knowledge of where the face was
pasted) and its 68 landmarks are found by dlib's shape predictor. From them, per frame:

- ``found``: whether a face was detected at all;
- ``opening``: the inner-lip gap (mean of the three vertical pairs 61–67, 62–66, 63–65) divided
  by the distance between the outer eye corners (36, 45), so it does not depend on the face's
  size in the frame.

From the soundtrack, per frame, the speech envelope: RMS of the 40 ms of audio the frame covers.
Scores (:func:`lipsync_scores`):

- ``face_found``: fraction of frames with a face;
- ``correlation``: Pearson's r between opening and envelope over face-found frames, at zero lag
  (the sync a viewer sees); ``best_lag_frames`` is the lag within ±3 frames at which r peaks
  (positive: the mouth moves after the sound) — a check of audio/video offset;
- pauses: frames inside a quiet run of at least ``MIN_PAUSE_FRAMES`` (envelope below
  ``QUIET_FRACTION`` of its 95th percentile), without the ``PAUSE_EDGE_FRAMES`` at either end
  where a mouth is still closing or already opening; ``pause_opening`` and ``speech_opening``
  are the median openings in pauses and in speech.

Against a real recording of the same speech (the person saying it on camera), the output is
judged relative to what the real mouth does (:func:`judge`): r at least ``CORRELATION_SHARE`` of
the real r, and the mouth in pauses no more open than the real mouth's closed pose allows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from ..features.face import detect_faces, landmarks_in_box
from ..media import iter_video_frames, probe, read_audio
from ..timing import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
OUTER_EYE_CORNERS = (36, 45)
QUIET_FRACTION = 0.05
MIN_PAUSE_FRAMES = 6  # 240 ms: shorter gaps are stops inside words, where a mouth need not close
PAUSE_EDGE_FRAMES = 2
MAX_LAG_FRAMES = 3
# Targets of the lip-sync check (issue: text → finished video)
FACE_FOUND_TARGET = 0.95
CORRELATION_SHARE = 0.8
# "Closed" in a pause: at most the real mouth's median pause opening plus this share of the way
# from there to its median speech opening (dlib sees a small inner-lip gap even on closed lips).
CLOSED_MARGIN = 0.25


@dataclass
class LipSyncTrack:
    """Per-frame measurements of one video (or several, concatenated).

    found: ``[T]`` bool; opening: ``[T]`` float64, NaN where no face; envelope: ``[T]`` float64.
    """

    found: np.ndarray
    opening: np.ndarray
    envelope: np.ndarray

    @classmethod
    def concatenate(cls, tracks: Iterable[LipSyncTrack]) -> LipSyncTrack:
        tracks = list(tracks)
        return cls(*(np.concatenate([getattr(t, name) for t in tracks]) for name in ("found", "opening", "envelope")))


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap / outer-eye-corner distance of one face's landmarks ``[68, 2]``."""
    gap = np.mean([np.linalg.norm(landmarks[a] - landmarks[b]) for a, b in INNER_LIP_PAIRS])
    return float(gap / max(np.linalg.norm(landmarks[OUTER_EYE_CORNERS[0]] - landmarks[OUTER_EYE_CORNERS[1]]), 1e-6))


def face_landmarks_untracked(frame: np.ndarray) -> np.ndarray | None:
    """dlib's 68 landmarks ``[68, 2]`` of the most confident face in an RGB frame ``[H, W, 3]``
    uint8, searched in this frame alone; None when no face is detected."""
    faces = detect_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    if not faces:
        return None
    return landmarks_in_box(frame, max(faces, key=lambda face: face[1])[0])


def speech_envelope(wav16k: np.ndarray, frames: int) -> np.ndarray:
    """RMS of each frame's 640 samples of a 16 kHz waveform ``[S]`` → ``[frames]`` (0 past the end)."""
    padded = np.zeros(frames * SAMPLES_PER_FRAME, np.float64)
    take = min(len(wav16k), len(padded))
    padded[:take] = wav16k[:take]
    return np.sqrt((padded.reshape(frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def measure_video(path: str | Path, *, on_frame: Callable[[], None] | None = None) -> LipSyncTrack:
    """Per-frame face, mouth opening and speech envelope of a video with sound, at 25 fps,
    streamed (one frame in memory at a time)."""
    info = probe(path)
    found, opening = [], []
    for frame in iter_video_frames(path, 25, info=info):
        landmarks = face_landmarks_untracked(frame)
        found.append(landmarks is not None)
        opening.append(math.nan if landmarks is None else mouth_opening(landmarks))
        if on_frame is not None:
            on_frame()
    envelope = speech_envelope(read_audio(path, SAMPLE_RATE, info=info), len(found))
    return LipSyncTrack(np.array(found, bool), np.array(opening, np.float64), envelope)


def quiet_mask(envelope: np.ndarray) -> np.ndarray:
    """``[T]`` bool: frames whose envelope is below ``QUIET_FRACTION`` of its 95th percentile."""
    if len(envelope) == 0:
        return np.zeros(0, bool)
    return envelope < QUIET_FRACTION * np.percentile(envelope, 95)


def pause_mask(envelope: np.ndarray) -> np.ndarray:
    """``[T]`` bool: frames well inside quiet runs of the envelope ``[T]`` (see the module notes)."""
    quiet = quiet_mask(envelope)
    pauses = np.zeros_like(quiet)
    start = None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= MIN_PAUSE_FRAMES:
                pauses[start + PAUSE_EDGE_FRAMES:i - PAUSE_EDGE_FRAMES] = True
            start = None
    return pauses


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    # a constant signal has no r; test it exactly (max == min): the std of [0.05] * 50 is ~1e-17,
    # not 0, from the rounding of its mean, and corrcoef would then return rounding noise
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _lagged(track: LipSyncTrack, lag: int) -> float:
    """r of opening[t + lag] with envelope[t] over face-found frames."""
    n = len(track.opening)
    if lag >= 0:
        opening, envelope = track.opening[lag:], track.envelope[:n - lag]
    else:
        opening, envelope = track.opening[:n + lag], track.envelope[-lag:]
    ok = ~np.isnan(opening)
    return _pearson(opening[ok], envelope[ok])


@dataclass
class LipSyncScores:
    frames: int
    face_found: float
    correlation: float
    best_lag_frames: int
    best_lag_correlation: float
    pause_frames: int
    pause_opening: float
    speech_opening: float


def lipsync_scores(track: LipSyncTrack) -> LipSyncScores:
    """Scores of one track (see the module notes); NaN where undefined (no face, no pause)."""
    lags = {lag: _lagged(track, lag) for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1)}
    finite = {lag: r for lag, r in lags.items() if not math.isnan(r)}
    best = max(finite, key=finite.__getitem__) if finite else 0
    pauses = pause_mask(track.envelope)
    speaking = ~quiet_mask(track.envelope)

    def median(mask: np.ndarray) -> float:
        values = track.opening[mask & track.found]
        return float(np.median(values)) if len(values) else math.nan

    return LipSyncScores(frames=len(track.found), face_found=float(track.found.mean()) if len(track.found) else 0.0,
                         correlation=lags[0], best_lag_frames=int(best), best_lag_correlation=lags.get(best, math.nan),
                         pause_frames=int(pauses.sum()), pause_opening=median(pauses), speech_opening=median(speaking))


def closed_threshold(real: LipSyncScores) -> float:
    """The largest pause opening that counts as a closed mouth, from the real recording's scores."""
    return real.pause_opening + CLOSED_MARGIN * (real.speech_opening - real.pause_opening)


def judge(output: LipSyncScores, real: LipSyncScores | None) -> dict[str, bool | None]:
    """Each check of the lip-sync targets: True/False, or None where it cannot be judged (no
    real recording to compare with, no pause in the speech)."""
    checks: dict[str, bool | None] = {"face_found": output.face_found >= FACE_FOUND_TARGET}
    if real is None or math.isnan(real.correlation) or real.correlation <= 0:
        checks["correlation"] = None
    else:
        checks["correlation"] = (not math.isnan(output.correlation)
                                 and output.correlation >= CORRELATION_SHARE * real.correlation)
    if real is None or output.pause_frames == 0 or math.isnan(real.pause_opening):
        checks["closed_in_pauses"] = None
    else:
        checks["closed_in_pauses"] = (not math.isnan(output.pause_opening)
                                      and output.pause_opening <= closed_threshold(real))
    return checks


def report(output: LipSyncScores, real: LipSyncScores | None) -> dict:
    """Everything as plain JSON-ready values: both score sets, the thresholds and the checks."""
    result = {"output": asdict(output), "real": None if real is None else asdict(real), "checks": judge(output, real),
              "targets": {"face_found": FACE_FOUND_TARGET,
                          "correlation": None if real is None else CORRELATION_SHARE * real.correlation,
                          "pause_opening_max": None if real is None else closed_threshold(real)}}
    return _without_nan(result)


def _without_nan(value):
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def per_recording_table(result: dict) -> str:
    """One row per recording of :func:`evaluate_lipsync`'s result, and a last row for all joined."""
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    def verdicts(checks):
        return ", ".join(f"{name.replace('_', ' ')}: {'—' if ok is None else ('met' if ok else 'NOT met')}"
                         for name, ok in checks.items())

    lines = ["| recording | frames | face found | r output | r real | output/real | pause opening output (max) | checks |",
             "|---|---|---|---|---|---|---|---|"]
    for name, item in [(Path(r["recording"]).name, r) for r in result["per_recording"]] + [("all joined", result)]:
        out, real = item["output"], item["real"] or {}
        ratio = (out["correlation"] / real["correlation"]
                 if out.get("correlation") is not None and real.get("correlation") else None)
        lines.append(f"| {name} | {out['frames']} | {cell(out['face_found'], '.1%')} | {cell(out['correlation'], '.3f')} "
                     f"| {cell(real.get('correlation'), '.3f')} | {cell(ratio, '.0%')} "
                     f"| {cell(out['pause_opening'], '.4f')} ({cell(item['targets']['pause_opening_max'], '.4f')}) "
                     f"| {verdicts(item['checks'])} |")
    return "\n".join(lines)


def markdown_table(result: dict) -> str:
    """The report as a small markdown table: output beside the real recording, and the checks."""
    out, real, targets, checks = result["output"], result["real"] or {}, result["targets"], result["checks"]

    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    def verdict(name):
        return {True: "met", False: "NOT met", None: "not judged"}[checks[name]]

    rows = [
        ("frames", cell(out["frames"], "d"), cell(real.get("frames"), "d"), "", ""),
        ("face found (independent dlib, every frame)", cell(out["face_found"], ".1%"), cell(real.get("face_found"), ".1%"),
         f"≥ {targets['face_found']:.0%}", verdict("face_found")),
        ("r(mouth opening, speech envelope), lag 0", cell(out["correlation"], ".3f"), cell(real.get("correlation"), ".3f"),
         "≥ " + cell(targets["correlation"], ".3f") + f" ({CORRELATION_SHARE:.0%} of real)" if targets["correlation"] else "",
         verdict("correlation")),
        ("best lag (frames) and its r", f"{out['best_lag_frames']:+d}: {cell(out['best_lag_correlation'], '.3f')}",
         f"{real['best_lag_frames']:+d}: {cell(real.get('best_lag_correlation'), '.3f')}" if real else "—", "", ""),
        ("pause frames", cell(out["pause_frames"], "d"), cell(real.get("pause_frames"), "d"), "", ""),
        ("median mouth opening in pauses", cell(out["pause_opening"], ".4f"), cell(real.get("pause_opening"), ".4f"),
         "≤ " + cell(targets["pause_opening_max"], ".4f") if targets["pause_opening_max"] else "", verdict("closed_in_pauses")),
        ("median mouth opening in speech", cell(out["speech_opening"], ".4f"), cell(real.get("speech_opening"), ".4f"), "", ""),
    ]
    lines = ["| measure | output | real recording | target | |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def speech_of_recordings(recordings: list[Path]) -> tuple[np.ndarray, list[int], bool]:
    """The recordings' sound joined end to end, each cut or padded to whole frames of its video.

    Returns:
        (waveform ``[S]`` float32 16 kHz, frames of each recording, whether every recording has
        a video stream, i.e. can serve as the real reference).
    """
    from ..media import count_output_frames

    parts, frames, all_video = [], [], True
    for path in recordings:
        info = probe(path, require_video=False)
        wav = read_audio(path, SAMPLE_RATE, info=info)
        n = count_output_frames(info, FPS) if info.has_video else math.ceil(len(wav) / SAMPLES_PER_FRAME)
        all_video &= bool(info.has_video)
        part = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
        part[:min(len(wav), len(part))] = wav[:len(part)]
        parts.append(part)
        frames.append(n)
    return np.concatenate(parts), frames, all_video


def evaluate_lipsync(anchor: Path, recordings: list[Path], out_video: Path, *, device: str | None = None,
                     progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Drive ``anchor`` with the speech of ``recordings`` (joined), write the result to
    ``out_video``, and score it beside the recordings themselves when they are videos of a face.

    ``progress(stage, done, total)`` is called as frames are synthesised and measured.
    Returns :func:`report`'s dict of all recordings joined, plus ``video``, ``recordings`` and
    ``per_recording`` (each recording's own :func:`report`, its stretch of the output beside it).
    """
    from ..bundle import load_bundle
    from ..pipeline import AnchorPipeline

    wav, frames, all_video = speech_of_recordings(recordings)
    total = sum(frames)
    pipeline = AnchorPipeline(load_bundle(anchor), device=device)
    pipeline.synthesize(wav, out_video, on_frames=(lambda done, n: progress("synthesize", done, n)) if progress else None)

    def counter(stage: str, n: int) -> Callable[[], None] | None:
        if progress is None:
            return None
        done = [0]

        def tick() -> None:
            done[0] += 1
            progress(stage, done[0], n)
        return tick

    output_track = measure_video(out_video, on_frame=counter("measure output", total))
    real_tracks = None
    if all_video:
        tick = counter("measure recordings", total)
        real_tracks = [measure_video(path, on_frame=tick) for path in recordings]
    per_recording = []
    start = 0
    for index, (path, n) in enumerate(zip(recordings, frames)):
        part = LipSyncTrack(*(getattr(output_track, name)[start:start + n] for name in ("found", "opening", "envelope")))
        start += n
        own = real_tracks[index] if real_tracks is not None else None
        per_recording.append({"recording": str(path), **report(lipsync_scores(part), _scores_if_face(own))})
    real = _scores_if_face(LipSyncTrack.concatenate(real_tracks)) if real_tracks is not None else None
    return {**report(lipsync_scores(output_track), real), "video": str(out_video),
            "recordings": [str(p) for p in recordings], "per_recording": per_recording}


def _scores_if_face(track: LipSyncTrack | None) -> LipSyncScores | None:
    """Scores of a real recording's track, or None when it shows no face to compare with."""
    return lipsync_scores(track) if track is not None and track.found.any() else None
