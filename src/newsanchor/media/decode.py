"""Decoding: video resampled by timestamp to RGB frames, audio to float32 mono."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from itertools import chain
from typing import Iterator, Sequence, cast

import av
import numpy as np

from ..errors import MediaError
from ..timing import SAMPLE_RATE
from .streams import (_AvError, _RESEEK_GAP, MediaInfo, _audio_stream, _frame_rate, _open, _reason,
                    _video_stream, probe)


# ---------------------------------------------------------------- video

def _as_rate(fps: float | Fraction) -> Fraction:
    # A float like 29.97 becomes 2997/100; pass Fraction(30000, 1001) for exact NTSC.
    rate = Fraction(fps).limit_denominator(1_000_000) if isinstance(fps, float) else Fraction(fps)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


def count_output_frames(info: MediaInfo, fps: float | Fraction = 25) -> int:
    """Number of frames :func:`iter_video_frames` yields: the k >= 0 with k / fps < video duration."""
    if not info.has_video or info.video_duration_s <= 0:
        return 0
    exact = Fraction(info.video_duration_s) * _as_rate(fps)
    nearest = round(exact)
    # The duration is a float: within 1e-6 of a whole number of frames it *is* that number.
    return nearest if abs(exact - nearest) < Fraction(1, 10**6) else math.ceil(exact)


def _decoded(container, stream, path: str, of_s: float) -> Iterator[av.frame.Frame]:
    """Decoded frames of one stream; data cut short or damaged becomes MediaError."""
    tb, start = stream.time_base, stream.start_time or 0
    seen, cut = 0.0, False  # seconds decoded so far; whether the end of the file cut a packet
    try:
        for packet in container.demux(stream):
            cut = cut or packet.is_corrupt
            for frame in packet.decode():
                if frame.pts is not None and tb is not None:
                    seen = float((frame.pts - start) * tb)
                yield frame
    except (_AvError, OSError) as err:
        if cut:
            raise MediaError(path, f"truncated ({stream.type} ends at {seen:.2f} s of {of_s:.2f} s)") from err
        raise MediaError(path, f"corrupt {stream.type} data at {seen:.2f} s") from err


def _timed_frames(container, stream, path: str, of_s: float) -> Iterator[tuple[Fraction, Fraction, av.VideoFrame]]:
    """(start, duration, frame) with exact times in seconds from the first frame."""
    tb = Fraction(stream.time_base) if stream.time_base else None
    interval = 1 / (_frame_rate(stream) or Fraction(25))
    origin: int | None = None
    time: Fraction | None = None
    duration = interval  # replaced by each frame's own before the next one needs it
    # a video stream decodes to VideoFrames; PyAV types Packet.decode() as the base Frame
    frames = cast("Iterator[av.VideoFrame]", _decoded(container, stream, path, of_s))
    for frame in frames:
        if frame.pts is not None and tb is not None:
            origin = frame.pts if origin is None else origin
            time = (frame.pts - origin) * tb
        else:  # no timestamps (raw streams): each frame follows the previous one
            time = Fraction(0) if time is None else time + duration
        duration = frame.duration * tb if getattr(frame, "duration", None) and tb else interval
        yield time, duration, frame


def iter_video_frames(path, fps: float | Fraction = 25, *, info: MediaInfo | None = None) -> Iterator[np.ndarray]:
    """Frames resampled by timestamp to ``fps``, each [H, W, 3] uint8 RGB.

    Output frame k is the source frame on screen k / fps seconds after the first frame (the last
    one with pts <= that time), in exact rational arithmetic: 25 -> 25 fps is an identity and
    variable frame rate comes out evenly timed. Yields exactly ``count_output_frames(info, fps)``
    frames. Probes (raising MediaError) at the call; decoding is lazy and holds two frames at most.
    """
    path = os.fspath(path)
    rate = _as_rate(fps)
    if info is None:
        info = probe(path, require_audio=False)
    elif not info.has_video:
        raise MediaError(path, "no video stream")
    return _resampled(path, rate, count_output_frames(info, rate), info)


def _resampled(path: str, rate: Fraction, total: int, info: MediaInfo) -> Iterator[np.ndarray]:
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(path, "no video stream")
        stream.thread_type = "AUTO"
        decoded = _timed_frames(container, stream, path, info.video_duration_s)
        current = next(decoded, None)
        if current is None:
            if total:
                raise MediaError(path, "no video frame could be decoded")
            return
        upcoming = next(decoded, None)
        image = None  # RGB of `current`, converted only once it is shown
        for k in range(total):
            t = k / rate
            while upcoming is not None and upcoming[0] <= t:
                current, upcoming, image = upcoming, next(decoded, None), None
            if upcoming is None and t >= current[0] + current[1] + 1 / rate:
                end = float(current[0] + current[1])
                raise MediaError(path, f"truncated (video ends at {end:.2f} s of {info.video_duration_s:.2f} s)")
            if image is None:
                image = current[2].to_ndarray(format="rgb24", threads=0)  # threaded swscale: 1080p needs it
                yield image
            else:  # the same source frame again: a copy, so callers may draw on what they get
                yield image.copy()
    finally:
        container.close()


def read_video_frames_at(path, indices: Sequence[int]) -> list[np.ndarray]:
    """Frames by 0-based index, each [H, W, 3] uint8 RGB, in the order asked (repeats allowed).

    For random access into constant-rate files written by :func:`write_video`: seeks to the
    keyframe at or before a wanted frame and decodes forward. Frame i is the one on screen at
    i / average_fps, as ``iter_video_frames(path, average_fps)`` yields it. IndexError if out of range.
    """
    path = os.fspath(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return []
    info = probe(path, require_audio=False, scan_packets=False)  # headers only: this is called often
    found: dict[int, np.ndarray] = {}
    container = _open(path)
    try:
        decoder = _IndexedDecoder(container, _video_stream(container), path, info)
        decoder.check_range(wanted)
        next_wanted = 0
        while next_wanted < len(wanted):
            next_wanted = decoder.read_run(wanted, next_wanted, found)
    except (_AvError, OSError) as err:
        raise MediaError(path, f"corrupt video data ({_reason(err)})") from err
    finally:
        container.close()
    given: set[int] = set()  # an index asked twice gets its own copy
    frames = []
    for i in map(int, indices):
        frames.append(found[i].copy() if i in given else found[i])
        given.add(i)
    return frames


class _IndexedDecoder:
    """One open video stream read by frame index: a seek to the keyframe at or before a frame,
    then decoding forward. Frame i is the one on screen at i / average_fps."""

    def __init__(self, container, stream, path: str, info: MediaInfo):
        self.container, self.stream, self.path = container, stream, path
        self.rate = _frame_rate(stream) or Fraction(25)
        self.time_base, self.origin = Fraction(stream.time_base), stream.start_time or 0
        self.n_frames = count_output_frames(info, self.rate)

    def check_range(self, wanted: Sequence[int]) -> None:
        """IndexError unless every (sorted) wanted index is a frame of the video."""
        if wanted[0] < 0 or wanted[-1] >= self.n_frames:
            raise IndexError(f"{self.path}: frame index out of range 0..{self.n_frames - 1}")

    def index_of(self, frame: av.VideoFrame) -> int:
        if frame.pts is None:  # frames_from passes on only frames with a pts
            raise MediaError(self.path, "a decoded video frame has no timestamp")
        return math.floor((frame.pts - self.origin) * self.time_base * self.rate + Fraction(1, 1000))

    def frames_from(self, target: int) -> Iterator[av.VideoFrame]:
        """Decoded frames from the keyframe at or before ``target`` on (from the start when the
        seek lands past it)."""
        container, stream = self.container, self.stream
        container.seek(self.origin + math.floor(target / self.rate / self.time_base), stream=stream, backward=True)
        frames = (f for f in container.decode(stream) if f.pts is not None)
        first = next(frames, None)
        if first is not None and self.index_of(first) > target:
            container.seek(self.origin, stream=stream, backward=True)
            frames = (f for f in container.decode(stream) if f.pts is not None)
            first = next(frames, None)
        return chain([first] if first is not None else [], frames)

    def read_run(self, wanted: Sequence[int], start: int, found: dict[int, np.ndarray]) -> int:
        """Seek to ``wanted[start]`` and decode forward, putting every wanted frame met into
        ``found``, until all are read or the next is more than ``_RESEEK_GAP`` frames ahead
        (seeking beats decoding through). Returns the position in ``wanted`` still to read.
        A frame is the one on screen until the next frame's index (duplicates fill gaps)."""
        sought, i = wanted[start], start
        frames = self.frames_from(sought)
        current = next(frames, None)
        for upcoming in chain(frames, [None]):
            if current is None or (upcoming is None and wanted[-1] > self.index_of(current) + 1):
                raise MediaError(self.path, f"truncated (video ends before frame {wanted[-1]} of {self.n_frames})")
            while i < len(wanted) and (upcoming is None or self.index_of(upcoming) > wanted[i]):
                found[wanted[i]] = current.to_ndarray(format="rgb24")
                i += 1
            if i == len(wanted) or upcoming is None:
                break
            if wanted[i] != sought and wanted[i] - self.index_of(upcoming) > _RESEEK_GAP:
                break  # seek again (never twice for the same target: a one-GOP file would loop)
            current = upcoming
        return i


# ---------------------------------------------------------------- audio

def read_audio(path, sr: int = SAMPLE_RATE, *, info: MediaInfo | None = None, align_to_video: bool = True) -> np.ndarray:
    """The audio track as [S] float32 mono in [-1, 1] at ``sr`` Hz (channels averaged).

    With ``align_to_video`` and a video stream, sample 0 is the time of the first video frame:
    audio starting earlier is trimmed, audio starting later is preceded by silence. Audio-only
    files (wav, flac, mp3...) work too. The length is what the audio covers, up to its declared end.
    """
    path = os.fspath(path)
    if info is None:
        info = probe(path, require_video=False)
    elif not info.has_audio:
        raise MediaError(path, "no audio stream")
    container = _open(path)
    chunks: list[np.ndarray] = []
    first_s, resampler, setup = None, None, None
    try:
        stream = _audio_stream(container)
        if stream is None:
            raise MediaError(path, "no audio stream")
        # an audio stream decodes to AudioFrames; PyAV types Packet.decode() as the base Frame
        frames = cast("Iterator[av.AudioFrame]", _decoded(container, stream, path, info.audio_duration_s))
        for frame in chain(frames, [None]):
            if frame is not None and first_s is None and frame.pts is not None and frame.time_base is not None:
                first_s = float(frame.pts * frame.time_base)
            # swresample only converts format and rate: its down-mix gains depend on the layout
            # (5.1 can exceed 1.0), so channels are averaged here. A layout or rate change
            # mid-stream flushes the resampler and starts a new one.
            kind = None if frame is None else (frame.format.name, frame.layout.name, frame.rate)
            if resampler is not None and kind != setup:
                chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(None)]
                resampler = None
            if frame is not None:
                if resampler is None:
                    resampler, setup = av.AudioResampler(format="fltp", rate=sr), kind
                chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(frame)]
    finally:
        container.close()
    wav = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    first_s = info.audio_start_s if first_s is None else first_s
    if info.audio_duration_s > 0:  # decoders emit whole codec frames: drop the encoder's tail padding
        wav = wav[:max(0, round((info.audio_start_s + info.audio_duration_s - first_s) * sr))]
    if align_to_video and info.has_video:
        shift = round((first_s - info.video_start_s) * sr)
        wav = np.concatenate([np.zeros(shift, np.float32), wav]) if shift > 0 else wav[-shift:]
    return np.clip(wav, -1.0, 1.0)


