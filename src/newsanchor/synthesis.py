"""One video from one request: the single path from a script or a recording to a finished mp4.

The command line (``newsanchor synthesize``), the service's workers and the offline demo all
call :func:`make_video`; they differ only in how they build the :class:`VideoRequest` and the
:class:`~newsanchor.pipeline.AnchorPipeline` (which holds the models and the settings every
video of a run shares: label, studio background, precision…). A request adds what differs from
one video to the next: the speech, the lower third and the captions.

Steps: check the request and its output paths → check that the lower third can be drawn →
speech (the voice reads the script, or the recording is decoded at :data:`SAMPLE_RATE`) →
frames and H.264/AAC mp4 (``AnchorPipeline.synthesize``) → captions file. Every refusal is
one :class:`NewsanchorError` line naming the input it is about.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import MediaError, NewsanchorError
from .files import check_output_path
from .timing import SAMPLE_RATE

if TYPE_CHECKING:
    from .pipeline import AnchorPipeline
    from .speech import Speech, SpeechEngine

# A recording shorter than this has no speech to lip-sync (the service refuses it at upload too).
MIN_RECORDING_SAMPLES = SAMPLE_RATE // 10  # 0.1 s
CAPTION_SUFFIXES = (".srt", ".vtt")
# Shares of the whole video's progress: speech before the first frame, the frames, then the
# captions file after the last frame.
SPEECH_SHARE, FRAMES_SHARE = 0.1, 0.88


@dataclass(frozen=True)
class VideoRequest:
    """What one video says and shows beyond the pipeline's own settings.

    text: the script, read by the voice; or
    recording: a speech recording (any audio or video file) to lip-sync instead — exactly one of
        the two.
    title, subtitle: the lower third (a subtitle needs a title); None (or an empty title) for none.
    burn_captions: draw the script's captions into the picture (a script only).
    captions: also write the script's captions to this .srt or .vtt file (a script only), or None.
    input_name: how refusals name the input: a script file's path, ``--text``, a form field…;
        default: the recording's path, or ``text``.

    Raises :class:`NewsanchorError` (one line) for a request that cannot make a video.
    """

    text: str | None = None
    recording: Path | None = None
    title: str | None = None
    subtitle: str | None = None
    burn_captions: bool = False
    captions: Path | None = None
    input_name: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.recording is None):
            raise NewsanchorError("a video needs exactly one input: a script or a speech recording")
        if self.recording is not None and (self.captions is not None or self.burn_captions):
            raise NewsanchorError(f"{self.name}: captions need a script; a recording has no text")
        if self.subtitle is not None and not self.title:
            raise NewsanchorError(f"subtitle {self.subtitle!r}: needs a title")
        if self.captions is not None and Path(self.captions).suffix.lower() not in CAPTION_SUFFIXES:
            raise NewsanchorError(f"{self.captions}: captions are written as {' or '.join(CAPTION_SUFFIXES)}")

    @property
    def name(self) -> str:
        """The input as refusals name it."""
        if self.input_name is not None:
            return self.input_name
        return str(self.recording) if self.recording is not None else "text"

    @property
    def lower_third(self) -> tuple[str, str | None] | None:
        return (self.title, self.subtitle) if self.title else None


def frames_fraction(done: int, total: int) -> float:
    """The video's progress, 0 … 1, when ``done`` of ``total`` frames are written."""
    return SPEECH_SHARE + FRAMES_SHARE * done / max(total, 1)


def make_video(pipeline: AnchorPipeline, request: VideoRequest, out: str | Path, *,
               voice: str | Path | None = None, speech_engine: str | SpeechEngine | None = None,
               on_stage: Callable[[float, str], None] | None = None,
               on_frames: Callable[[int, int], None] | None = None) -> dict:
    """Make the video ``request`` asks for with ``pipeline``'s anchor and write it to ``out`` (mp4).

    Args:
        pipeline: the anchor, with the settings shared by its videos; the request's lower third
            and burned-in captions are used for this video only (the settings are restored after).
        request: what the video says and shows.
        out: the mp4 to write (atomically: a failed run leaves nothing under this name).
        voice: the voice file of the default engine, for a script (None: the default voice).
        speech_engine: an engine name or an engine already loaded (kept by a long-lived caller so
            that each video pays only for its own speech); give either this or ``voice``.
        on_stage: ``(fraction of the whole video 0 … 1, stage)`` at the start of each stage:
            the speech, the rendering (:data:`SPEECH_SHARE`), the captions file.
        on_frames: ``(frames done, frames in all)`` while frames are written (see
            :func:`frames_fraction`); an exception raised in it stops the video, and nothing is
            left under ``out``.

    Returns:
        ``AnchorPipeline.synthesize``'s summary (``video``, ``frames``, ``fps``, ``duration_s``,
        ``audio_duration_s``, ``seconds``, ``frames_per_s``, ``renderer_path``, ``stage_seconds``)
        and ``captions``: the captions file written, or None.

    Raises:
        NewsanchorError: one line naming what stopped the video: an output that cannot be
            written, a lower third that cannot be drawn, a script the voice cannot read, a
            recording that cannot be decoded or lasts under 0.1 s.
    """
    stage = on_stage or (lambda fraction, name: None)
    # where the results go and what is drawn are checked before the speech, the slow part
    check_output_path(out, suffixes=(".mp4",))
    if request.captions is not None:
        check_output_path(request.captions, suffixes=CAPTION_SUFFIXES)
    shared = pipeline.settings
    try:
        pipeline.set_settings(replace(shared, lower_third=request.lower_third, captions=None))
        _check_drawable(pipeline)
        waveform, speech = _speech(request, voice, speech_engine, stage)
        burned = tuple(speech.cues()) if speech is not None and request.burn_captions else None
        pipeline.set_settings(replace(pipeline.settings, captions=burned))
        stage(SPEECH_SHARE, "rendering")
        summary = pipeline.synthesize(waveform, out, on_frames=on_frames)
    finally:
        pipeline.set_settings(shared)
    summary["captions"] = None
    if speech is not None and request.captions is not None:  # the request allows captions of a script only
        from .speech import write_captions

        stage(SPEECH_SHARE + FRAMES_SHARE, "writing captions")
        summary["captions"] = str(write_captions(speech.cues(), request.captions))
    return summary


def _check_drawable(pipeline: AnchorPipeline) -> None:
    """Draw the overlays on the first template frame: a title the font cannot draw, or a lower
    third the frame has no room for, is refused before any speech or frame is made."""
    try:
        pipeline.finish(pipeline.template_frames[0])
    except ValueError as err:
        raise NewsanchorError(f"title/subtitle: {err}") from None


def _speech(request: VideoRequest, voice: str | Path | None, speech_engine: str | SpeechEngine | None,
            stage: Callable[[float, str], None]) -> tuple[np.ndarray, Speech | None]:
    """The request's speech: (waveform ``[S]`` float32 at :data:`SAMPLE_RATE`, the spoken script
    with its word times, or None for a recording)."""
    if request.recording is not None:
        from .media import read_audio

        stage(0.01, "reading the recording")
        try:
            waveform = read_audio(request.recording, SAMPLE_RATE)
        except MediaError as err:
            raise NewsanchorError(f"{request.name}: {err.problem}") from None
        if len(waveform) < MIN_RECORDING_SAMPLES:
            raise NewsanchorError(f"{request.name}: less than {MIN_RECORDING_SAMPLES / SAMPLE_RATE:g} s of sound")
        return waveform, None
    if request.text is None:  # VideoRequest holds exactly one of text and recording
        raise NewsanchorError(f"{request.name}: no script and no recording")
    from . import speech as speech_module

    stage(0.01, "speaking the script")
    try:
        # looked up on the module at call time: tests replace it there
        spoken = speech_module.synthesize_speech(request.text, voice, engine=speech_engine or "piper")
    except speech_module.ScriptError as err:
        raise NewsanchorError(f"{request.name}: {err}") from None
    return spoken.waveform, spoken
