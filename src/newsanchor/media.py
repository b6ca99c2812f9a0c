"""Decode and encode media files with PyAV; the only module of the project that does so.

Video comes out as RGB uint8 frames ``[H, W, 3]`` resampled by timestamp to a fixed rate, audio
as float32 mono ``[S]`` in [-1, 1] at a fixed sample rate. Files go out as H.264 + AAC mp4.
Every problem with an input file is a one-line :class:`MediaError` naming the file.
"""

from __future__ import annotations

import math
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from typing import Iterable, Iterator, Sequence

import av
import numpy as np

from .errors import MediaError

__all__ = ["MediaInfo", "probe", "iter_video_frames", "count_output_frames", "read_audio",
           "write_video", "read_video_frames_at", "MP4_TAGS"]

_AvError = av.error.FFmpegError
# Start bytes of containers we know: a file that has one but cannot be opened is damaged, not foreign.
_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"fLaC"), (0, b"OggS"), (0, b"ID3"))
# Tags the mp4 muxer writes as iTunes-style atoms (read by most players). Any other key needs
# `movflags=use_metadata_tags` (QuickTime "mdta" keys, which FFmpeg/QuickTime read back).
# 'encoder' is absent on purpose: the muxer always overwrites it with its own version.
MP4_TAGS = frozenset({"title", "artist", "album_artist", "composer", "album", "date", "comment", "genre",
                      "copyright", "grouping", "lyrics", "description", "synopsis", "show", "episode_id",
                      "network", "keywords"})


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learnt about a file. Times are seconds in the file's own clock."""

    path: str
    has_video: bool
    has_audio: bool
    width: int                      # 0 if no video
    height: int
    video_codec: str | None
    average_fps: float | None       # source average frame rate
    video_start_s: float            # first video frame pts (0.0 if no video)
    video_duration_s: float         # end of the last video frame minus first frame pts
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_start_s: float
    audio_duration_s: float         # 0.0 if no audio


# ---------------------------------------------------------------- opening and probing

def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _check_file(path: str) -> bytes:
    """Stat and open the file ourselves so the common failures get plain words; returns its first bytes."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise MediaError(path, "no such file") from None
    except OSError as err:
        raise MediaError(path, f"cannot read ({_reason(err)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(path, "is a directory, not a media file")
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as err:
        raise MediaError(path, f"cannot read ({_reason(err)})") from None
    if not header:
        raise MediaError(path, "empty file")
    return header


def _open(path: str) -> av.container.InputContainer:
    """Open for reading, turning every failure into a MediaError."""
    header = _check_file(path)
    try:
        container = av.open(path, metadata_errors="replace")
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except PermissionError as err:
        raise MediaError(path, f"cannot read ({_reason(err)})") from None
    except (_AvError, OSError) as err:
        known = any(header[at:at + len(magic)] == magic for at, magic in _SIGNATURES)
        if known:  # e.g. an mp4 cut before its index (moov atom) was written
            raise MediaError(path, "truncated or corrupt") from None
        if isinstance(err, av.error.InvalidDataError):
            raise MediaError(path, "not a media file") from None
        raise MediaError(path, f"cannot open ({_reason(err)})") from None
    # FFmpeg reads *.txt as ANSI art ("tty"): a text file is not a recording.
    if container.format.name == "tty" or not container.streams:
        container.close()
        raise MediaError(path, "not a media file")
    return container


def _video_stream(container) -> av.video.stream.VideoStream | None:
    """First real video stream; cover art in audio files is a 'video' stream we must ignore."""
    for s in container.streams.video:
        if not int(s.disposition) & 1024:  # AV_DISPOSITION_ATTACHED_PIC
            return s
    return None


def _audio_stream(container) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _frame_rate(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


@dataclass
class _Span:
    """Packet-scan result for one stream, in stream time-base ticks."""
    first: int | None = None
    end: int | None = None
    longest_packet: int = 0


def _scan(container, streams) -> tuple[dict[int, _Span], object | None]:
    """Demux (no decoding) to find where each stream really starts and ends. Returns the spans
    and the stream being read when the data ran out (a demux error or a packet cut short)."""
    spans = {s.index: _Span() for s in streams}
    defaults = {s.index: (int(1 / (_frame_rate(s) * s.time_base)) if s.type == "video" and _frame_rate(s) else 0)
                for s in streams}
    cut = None
    try:
        for packet in container.demux(*streams):
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None or packet.size == 0:  # flush packets at the end
                continue
            # FFmpeg flags a packet that the end of the file cut short; mid-file ones are left
            # to the decoder's error concealment.
            cut = packet.stream if packet.is_corrupt else None
            if cut is not None:
                continue
            span = spans[packet.stream.index]
            duration = packet.duration or defaults[packet.stream.index]
            span.first = pts if span.first is None else min(span.first, pts)
            span.end = pts + duration if span.end is None else max(span.end, pts + duration)
            span.longest_packet = max(span.longest_packet, duration)
    except (_AvError, OSError):
        return spans, streams[0]
    return spans, cut


def _declared_s(stream) -> float | None:
    """The duration a stream's headers declare, if they do."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    try:  # Matroska written by FFmpeg keeps a per-track "HH:MM:SS.nnnnnnnnn" tag instead
        hours, minutes, seconds = stream.metadata["DURATION"].split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (KeyError, ValueError):
        return None


def _stream_times(stream, span: _Span | None, container) -> tuple[float, float]:
    """(start_s, duration_s) of a stream: from the packet scan if given, else from the headers."""
    tb = stream.time_base
    start = stream.start_time
    if span is not None:
        if start is None:
            start = span.first
        if span.end is None or start is None:
            return float((start or 0) * tb), 0.0
        return float(start * tb), float(max(0, span.end - start) * tb)
    start_s = float((start or 0) * tb)
    declared = _declared_s(stream)
    if declared is not None:
        return start_s, declared
    if container.duration is not None:
        return start_s, max(0.0, ((container.start_time or 0) + container.duration) / av.time_base - start_s)
    return start_s, 0.0


def _check_truncation(path: str, container, streams, spans: dict[int, _Span], failed) -> None:
    """Raise if the data ran out, or a stream's packets stop clearly before its declared duration."""
    def end_s(s):
        return float(spans[s.index].end * s.time_base) if spans[s.index].end is not None else 0.0

    longest = max(streams, key=end_s)
    for s in [failed] if failed is not None else streams:
        start_s, measured = _stream_times(s, spans[s.index], container)
        declared = _declared_s(s)
        if declared is None and s is longest and container.duration is not None:
            # Only the file's total is known, and only the longest stream must reach it.
            declared = ((container.start_time or 0) + container.duration) / av.time_base - start_s
        # Tolerance: headers round, and the last packet's duration is often a guess.
        tolerance = max(0.25, 2 * float(spans[s.index].longest_packet * s.time_base))
        short = declared is not None and measured < declared - tolerance
        if failed is not None or short:
            # (Some demuxers, e.g. WAV, shrink the declared duration to what the file holds.)
            of = f" of {declared:.2f} s" if short else ""
            raise MediaError(path, f"truncated ({s.type} ends at {measured:.2f} s{of})")


def probe(path, *, require_video: bool = True, require_audio: bool = True, scan_packets: bool = True) -> MediaInfo:
    """Describe a media file, checking it is usable. Raises MediaError (missing, directory,
    unreadable, empty, not media, missing a required stream, truncated).

    ``scan_packets`` demuxes every packet (no decoding, milliseconds for short clips) to
    measure real stream durations and catch files that end before their headers say.
    """
    path = os.fspath(path)
    container = _open(path)
    try:
        video, audio = _video_stream(container), _audio_stream(container)
        if video is None and audio is None:
            raise MediaError(path, "no audio or video stream")
        if require_video and video is None:
            raise MediaError(path, "no video stream")
        if require_audio and audio is None:
            raise MediaError(path, "no audio stream")
        streams = [s for s in (video, audio) if s is not None]
        spans: dict[int, _Span] = {}
        if scan_packets:
            spans, failed = _scan(container, streams)
            _check_truncation(path, container, streams, spans, failed)
        v_start, v_dur = _stream_times(video, spans.get(video.index), container) if video else (0.0, 0.0)
        a_start, a_dur = _stream_times(audio, spans.get(audio.index), container) if audio else (0.0, 0.0)
        rate = _frame_rate(video) if video else None
        return MediaInfo(
            path=path, has_video=video is not None, has_audio=audio is not None,
            width=video.codec_context.width if video else 0, height=video.codec_context.height if video else 0,
            video_codec=video.codec_context.name if video else None,
            average_fps=float(rate) if rate else None, video_start_s=v_start, video_duration_s=v_dur,
            audio_codec=audio.codec_context.name if audio else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
            audio_start_s=a_start, audio_duration_s=a_dur)
    finally:
        container.close()


# ---------------------------------------------------------------- video decoding

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
    # The duration is a float; within 1e-6 of a whole frame count it *is* that count.
    return nearest if abs(exact - nearest) < Fraction(1, 10**6) else math.ceil(exact)


def _decoded(container, stream, path: str, of_s: float) -> Iterator[av.frame.Frame]:
    """Decoded frames of one stream; data cut short or damaged becomes MediaError."""
    tb, start = stream.time_base, stream.start_time or 0
    seen, cut = 0.0, False  # seconds decoded so far; whether a packet was cut short by end of file
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
    """Decoded frames as (start, duration, frame), times exact in seconds from the first frame."""
    tb = Fraction(stream.time_base) if stream.time_base else None
    interval = 1 / (_frame_rate(stream) or Fraction(25))
    origin = None
    last = Fraction(0)
    for frame in _decoded(container, stream, path, of_s):
        if frame.pts is not None and tb is not None:
            if origin is None:
                origin = frame.pts
            time = (frame.pts - origin) * tb
        else:  # no timestamps: assume the average rate
            time = last + interval if origin is not None else Fraction(0)
            origin = 0 if origin is None else origin
        duration = getattr(frame, "duration", None)
        yield time, (duration * tb if duration and tb else interval), frame
        last = time


def iter_video_frames(path, fps: float | Fraction = 25, *, info: MediaInfo | None = None) -> Iterator[np.ndarray]:
    """Frames resampled by timestamp to ``fps``, each [H, W, 3] uint8 RGB.

    Output frame k shows the source frame on screen at k / fps seconds after the first frame
    (the last one with pts <= that time), so 25 -> 25 fps is an exact identity and variable
    frame rate input comes out evenly timed. Yields exactly ``count_output_frames(info, fps)``
    frames. Probes (raising MediaError) before returning; decoding is lazy and holds at most
    two decoded frames.
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
        if current is None and total:
            raise MediaError(path, "no video frame could be decoded")
        upcoming = next(decoded, None)
        image = None  # RGB of `current`, converted only if it is shown
        for k in range(total):
            t = k / rate
            while upcoming is not None and upcoming[0] <= t:
                current, upcoming, image = upcoming, next(decoded, None), None
            if upcoming is None and t >= current[0] + current[1] + 1 / rate:
                raise MediaError(path, f"truncated (video ends at {float(current[0] + current[1]):.2f} s "
                                       f"of {info.video_duration_s:.2f} s)")
            if image is None:
                image = current[2].to_ndarray(format="rgb24", threads=0)
                yield image
            else:  # the same source frame again: a copy, so callers may draw on what they get
                yield image.copy()
    finally:
        container.close()


def read_video_frames_at(path, indices: Sequence[int]) -> list[np.ndarray]:
    """Frames by 0-based index, each [H, W, 3] uint8 RGB, in the order asked.

    Meant for constant-rate files written by :func:`write_video` (random access into prepared
    crops): seeks to the keyframe at or before a wanted frame and decodes forward. Index i is the
    frame on screen at i / average_fps, the same frame ``iter_video_frames(path, average_fps)``
    yields at i. Raises IndexError for indices outside the file.
    """
    path = os.fspath(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return []
    info = probe(path, require_audio=False, scan_packets=False)  # headers only: this is called often
    found: dict[int, np.ndarray] = {}
    container = _open(path)
    try:
        stream = _video_stream(container)
        rate, tb = _frame_rate(stream) or Fraction(25), Fraction(stream.time_base)
        n_frames = count_output_frames(info, rate)
        if wanted[0] < 0 or wanted[-1] >= n_frames:
            raise IndexError(f"{path}: frame index out of range 0..{n_frames - 1}")
        origin = stream.start_time or 0
        index_of = lambda pts: math.floor((pts - origin) * tb * rate + Fraction(1, 1000))  # noqa: E731
        i = 0
        while i < len(wanted):
            sought = wanted[i]
            frames = _decode_from(container, stream, sought, origin, rate, tb, index_of, path)
            current = next(frames)
            for upcoming in chain(frames, [None]):
                if upcoming is None and wanted[-1] > index_of(current.pts) + 1:
                    raise MediaError(path, f"truncated (video ends at frame {index_of(current.pts)} of {n_frames})")
                while i < len(wanted) and (upcoming is None or index_of(upcoming.pts) > wanted[i]):
                    found[wanted[i]] = current.to_ndarray(format="rgb24")
                    i += 1
                # Far from the next wanted frame (and not still on the way to the one we sought):
                # seeking beats decoding everything in between.
                if i == len(wanted) or upcoming is None or (wanted[i] != sought and wanted[i] - index_of(upcoming.pts) > 50):
                    break
                current = upcoming
    except (_AvError, OSError) as err:
        raise MediaError(path, f"corrupt video data ({_reason(err)})") from err
    finally:
        container.close()
    given: set[int] = set()  # an index asked twice gets its own copy
    return [found[i].copy() if i in given else (given.add(i) or found[i]) for i in map(int, indices)]


def _decode_from(container, stream, target: int, origin: int, rate: Fraction, tb: Fraction, index_of, path: str):
    """Decoded frames (with pts) starting at a frame at or before index ``target``."""
    back = 0
    while True:
        start = max(0, target - back)
        container.seek(origin + math.floor(Fraction(start) / rate / tb), stream=stream, backward=True)
        frames = (f for f in container.decode(stream) if f.pts is not None)
        first = next(frames, None)
        if first is None:
            raise MediaError(path, f"truncated (no frame at or after index {start})")
        # With B-frames a keyframe's decode time can precede its display time, so a seek may
        # land just past the target; step further back until it does not.
        if index_of(first.pts) <= target or start == 0:
            return chain([first], frames)
        back = 2 * back + index_of(first.pts) - target


# ---------------------------------------------------------------- audio

def read_audio(path, sr: int = 16000, *, info: MediaInfo | None = None, align_to_video: bool = True) -> np.ndarray:
    """The audio track as [S] float32 mono in [-1, 1] at ``sr`` Hz (channels averaged).

    With ``align_to_video`` and a video stream, sample 0 is the time of the first video frame:
    audio that starts earlier is trimmed, audio that starts later is preceded by silence.
    Audio-only files (wav, flac, mp3...) work too. The length is whatever the audio covers.
    """
    path = os.fspath(path)
    if info is None:
        info = probe(path, require_video=False)
    elif not info.has_audio:
        raise MediaError(path, "no audio stream")
    container = _open(path)
    chunks: list[np.ndarray] = []
    first_s: float | None = None
    resampler, setup = None, None
    try:
        stream = _audio_stream(container)
        if stream is None:
            raise MediaError(path, "no audio stream")
        for frame in _decoded(container, stream, path, info.audio_duration_s):
            if first_s is None and frame.pts is not None:
                first_s = float(frame.pts * frame.time_base)
            # swresample's own down-mix gains differ by layout (5.1 can exceed 1.0), so it only
            # converts format and rate; channels are averaged here. A new resampler follows
            # any mid-stream layout/rate change.
            if setup != (frame.format.name, frame.layout.name, frame.rate):
                chunks += [f.to_ndarray().mean(axis=0) for f in (resampler.resample(None) if resampler else [])]
                resampler, setup = av.AudioResampler(format="fltp", rate=sr), (frame.format.name, frame.layout.name, frame.rate)
            chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(frame)]
        if resampler is not None:
            chunks += [f.to_ndarray().mean(axis=0) for f in resampler.resample(None)]
    finally:
        container.close()
    wav = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    first_s = info.audio_start_s if first_s is None else first_s
    # Decoders emit whole codec frames; the stream's declared end drops the encoder's tail padding.
    if info.audio_duration_s > 0:
        wav = wav[:max(0, round((info.audio_start_s + info.audio_duration_s - first_s) * sr))]
    if align_to_video and info.has_video:
        shift = round((first_s - info.video_start_s) * sr)
        wav = np.concatenate([np.zeros(shift, np.float32), wav]) if shift > 0 else wav[-shift:]
    return np.clip(wav, -1.0, 1.0)


# ---------------------------------------------------------------- encoding

@contextmanager
def _writing(path: str):
    """Encoder/muxer/file-system failures become MediaError; the caller's own exceptions pass."""
    try:
        yield
    except (_AvError, OSError) as err:
        raise MediaError(path, f"cannot write ({_reason(err)})") from err


def _check_frame(frame, shape: tuple[int, ...] | None, n: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"frame {n}: expected [H, W, 3] uint8 RGB, got {arr.shape} {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"frame {n}: size {arr.shape} differs from the first frame's {shape}")
    return arr


def write_video(path, frames: Iterable[np.ndarray], fps: float | Fraction = 25, *, audio: np.ndarray | None = None,
                sample_rate: int = 16000, crf: int = 18, preset: str = "veryfast", keyframe_interval: int | None = None,
                metadata: dict[str, str] | None = None) -> int:
    """Stream frames ([H, W, 3] uint8 RGB, all the same size) and optional audio ([S] float32
    mono at ``sample_rate``) into an H.264 (yuv420p) + AAC mp4 with the index at the front.

    Returns the number of frames written. Odd widths/heights are padded by repeating the last
    column/row (yuv420p needs even sizes). The audio is trimmed or zero-padded to exactly
    n_frames / fps seconds and interleaved with the video. ``keyframe_interval`` is the GOP size
    in frames. ``metadata`` becomes container tags: keys in MP4_TAGS are written as standard
    atoms; any other key switches the file to QuickTime "mdta" tags so it survives too;
    'encoder' is refused (the muxer overwrites it). The file appears atomically: it is written
    to a hidden temporary sibling and renamed; on any exception nothing is left behind.
    """
    path = os.fspath(path)
    rate = _as_rate(fps)
    tags = {str(k): str(v) for k, v in (metadata or {}).items()}
    if "encoder" in tags:
        raise ValueError("metadata key 'encoder' is overwritten by the mp4 muxer; use 'comment' or another key")
    movflags = "+faststart" + ("" if set(tags) <= MP4_TAGS else "+use_metadata_tags")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be [S] mono, got shape {audio.shape}")
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}.mp4")
    container = None
    try:
        source = iter(frames)
        first = next(source, None)
        if first is None:
            raise ValueError(f"{path}: no frames to write")
        shape = _check_frame(first, None, 0).shape
        pad = ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0))
        with _writing(path):
            container = av.open(temporary, "w", format="mp4", container_options={"movflags": movflags})
            container.metadata.update(tags)
            video = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            video.height, video.width = shape[0] + pad[0][1], shape[1] + pad[1][1]
            video.pix_fmt = "yuv420p"
            if keyframe_interval:
                video.codec_context.gop_size = int(keyframe_interval)
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate)
                sound.layout, sound.bit_rate = "mono", 64000
        n, fed = 0, 0
        for frame in chain([first], source):
            arr = _check_frame(frame, shape, n)
            with _writing(path):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.pad(arr, pad, mode="edge")), format="rgb24")
                picture.pts, picture.time_base = n, 1 / rate
                container.mux(video.encode(picture))
                n += 1
                if sound is not None:  # keep audio interleaved with the video it belongs to
                    fed = _feed_audio(container, sound, audio, fed, round(n * sample_rate / rate))
        with _writing(path):
            container.mux(video.encode(None))
            if sound is not None:
                _feed_audio(container, sound, audio, fed, round(n * sample_rate / rate))
                container.mux(sound.encode(None))
            container.close()
            container = None
            os.replace(temporary, path)
        return n
    except BaseException:
        if container is not None:
            try:
                container.close()
            except Exception:  # already failing; the original error is the one to report
                pass
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise


def _feed_audio(container, stream, audio: np.ndarray, fed: int, until: int) -> int:
    """Encode audio samples [fed, until), zero-padding past the end of ``audio``; returns ``until``."""
    if until <= fed:
        return fed
    chunk = audio[fed:until]
    if len(chunk) < until - fed:
        chunk = np.concatenate([chunk, np.zeros(until - fed - len(chunk), np.float32)])
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk[None, :]), format="flt", layout="mono")
    frame.rate, frame.pts, frame.time_base = stream.codec_context.sample_rate, fed, Fraction(1, stream.codec_context.sample_rate)
    container.mux(stream.encode(frame))
    return until
