"""The template: a non-speaking stretch of the person's recording that every output is built on
(paper §3.2.2, pipeline stage 3).

The generated mouth is placed into the template's frames; everything else in them — head,
eyes, clothes, background — is shown as recorded. A good template is quiet (no speech, so the
recorded mouth does not move), keeps the mouth closed, and holds the head steady; a short one is
enough because it is played back and forth (:func:`pingpong_indices`): forwards then backwards,
so that the loop never jumps from its last frame to its first.

:func:`score_template_frames` rates each frame of a clip; :func:`find_template` picks the best
window over all clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio2mouth.silence import speech_activity
from .features.mouth import face_pose, mouth_size

# Default length of an automatically chosen template: 4 s at 25 fps.
DEFAULT_TEMPLATE_FRAMES = 100


@dataclass(frozen=True)
class TemplateChoice:
    """A stretch of one clip: frames ``[start, stop)``, and why it was chosen (lower is better)."""

    clip: str
    start: int
    stop: int
    score: float
    speech: float  # mean speech activity, 0..1
    opening: float  # mean inner-lip opening, inter-ocular distances
    motion: float  # mean head motion per frame, inter-ocular distances

    def __len__(self) -> int:
        return self.stop - self.start


def score_template_frames(landmarks: np.ndarray, mouth: np.ndarray, found: np.ndarray, audio16k: np.ndarray
                          ) -> dict[str, np.ndarray]:
    """Per-frame properties that make a template good or bad.

    Args:
        landmarks: ``[T, 68, 2]`` crop pixels (NaN without a face).
        mouth: ``[T, 20, 2]`` normalised mouths (IOD units).
        found: ``[T]`` bool, face found.
        audio16k: ``[S]`` float mono 16 kHz of the clip (int16 scale is fine: the VAD is relative).

    Returns:
        ``{"speech": [T] 0..1, "opening": [T] IOD, "motion": [T] IOD per frame}``; frames without a
        face get ``inf`` opening and motion so that no window containing them wins.
    """
    n = len(landmarks)
    speech = speech_activity(np.asarray(audio16k, dtype=np.float32), n)
    opening = np.full(n, np.inf)
    motion = np.full(n, np.inf)
    if found.any():
        opening[found] = np.clip(mouth_size(mouth[found])[:, 1], 0, None)
        # head motion: how far the nose centre moves frame to frame, in IOD (NaN pose without a face)
        pose = face_pose(np.where(found[:, None, None], landmarks, np.nan).astype(np.float64))
        step = np.linalg.norm(np.diff(pose.centre, axis=0), axis=1) / pose.scale[1:]
        motion[1:] = np.where(np.isfinite(step), step, np.inf)
        motion[0] = motion[1] if n > 1 else 0.0
    return {"speech": speech, "opening": opening, "motion": motion}


def _window_means(values: np.ndarray, length: int) -> np.ndarray:
    """Mean of every window of ``length`` consecutive values ``[T - length + 1]`` (inf propagates)."""
    finite = np.where(np.isfinite(values), values, 0.0)
    bad = (~np.isfinite(values)).astype(np.int64)
    sums = np.convolve(finite, np.ones(length), mode="valid")
    bads = np.convolve(bad, np.ones(length, dtype=np.int64), mode="valid")
    return np.where(bads > 0, np.inf, sums / length)


def find_template(clips: dict[str, dict[str, np.ndarray]], length: int = DEFAULT_TEMPLATE_FRAMES,
                  weights: tuple[float, float, float] = (1.0, 4.0, 20.0)) -> TemplateChoice:
    """The best ``length``-frame window over all clips: least speech, mouth most closed, head
    steadiest, by ``weights`` · (speech, opening, motion) of the window means. A clip shorter than
    ``length`` can still serve whole, when no clip is long enough.

    Args:
        clips: clip id → :func:`score_template_frames` output.
        length: frames in the template.
        weights: how much speech (0..1), opening (IOD; ~0.02 closed, ~0.2 wide open) and
            motion (IOD per frame; ~0.005 steady) weigh.

    Raises:
        ValueError: no clip has a window without faceless frames.
    """
    if length < 2:
        raise ValueError(f"find_template: length must be at least 2 frames, got {length}")
    best: TemplateChoice | None = None
    longest = max((len(s["speech"]) for s in clips.values()), default=0)
    length = min(length, longest)
    for clip, scores in clips.items():
        if len(scores["speech"]) < length:
            continue
        means = [_window_means(scores[k], length) for k in ("speech", "opening", "motion")]
        total = weights[0] * means[0] + weights[1] * means[1] + weights[2] * means[2]
        if not np.isfinite(total).any():
            continue
        start = int(np.argmin(total))
        if best is None or total[start] < best.score:
            best = TemplateChoice(clip, start, start + length, float(total[start]),
                                  *(float(m[start]) for m in means))
    if best is None:
        raise ValueError("find_template: no stretch of the recordings has a face in every frame")
    return best


def pingpong_indices(n_template: int, n_out: int, start: int = 0) -> np.ndarray:
    """Template frame for each output frame, playing the template forwards then backwards.

    ``0, 1, …, n-1, n-2, …, 1, 0, 1, …`` (period ``2n - 2``): consecutive output frames are always
    neighbouring template frames, so the loop never jumps.

    Args:
        n_template: frames in the template (≥ 1).
        n_out: output frames (≥ 0).
        start: phase in the period, to continue a stream where it left off.

    Returns:
        ``[n_out]`` int64 in ``[0, n_template)``.
    """
    if n_template < 1 or n_out < 0:
        raise ValueError(f"pingpong_indices: need n_template >= 1 and n_out >= 0, got {n_template}, {n_out}")
    if n_template == 1:
        return np.zeros(n_out, dtype=np.int64)
    period = 2 * n_template - 2
    phase = (np.arange(n_out, dtype=np.int64) + start) % period
    return np.where(phase < n_template, phase, period - phase)


def template_in_dataset(dataset_dir: str | Path, spec: str | None = None,
                        length: int = DEFAULT_TEMPLATE_FRAMES) -> TemplateChoice:
    """The template a user asked for in a prepared dataset.

    ``spec``: ``CLIP`` (the best stretch of that clip), ``CLIP:START-STOP`` (those frames, at the
    dataset's 25 fps) or None (the best stretch of all clips, :func:`find_template`).

    Raises:
        NewsanchorError: an unknown clip, a malformed range, no stretch with a face throughout.
    """
    from .dataset import PreparedDataset
    from .errors import NewsanchorError

    dataset = PreparedDataset(dataset_dir)
    known = {c["id"]: c["frames"] for c in dataset.clips}
    clip, _, span = (spec or "").partition(":")
    if spec and clip not in known:
        raise NewsanchorError(f"template {spec!r}: no clip {clip!r} in {dataset.root} "
                              f"(clips: {', '.join(list(known)[:5])}{'…' if len(known) > 5 else ''})")
    if span:
        try:
            start, stop = (int(v) for v in span.split("-"))
        except ValueError:
            raise NewsanchorError(f"template {spec!r}: expected CLIP:START-STOP in frames, e.g. {clip}:0-100") from None
        nan = float("nan")
        return TemplateChoice(clip, start, stop, nan, nan, nan, nan)
    scores = {}
    for name in [clip] if clip else list(known):
        arrays = dataset.arrays(name)
        scores[name] = score_template_frames(arrays["landmarks"], arrays["mouth"], arrays["face_found"],
                                             arrays["audio"].astype(np.float32) / 32768)
    try:
        return find_template(scores, length)
    except ValueError as err:
        raise NewsanchorError(f"{dataset.root}: {err}") from None
