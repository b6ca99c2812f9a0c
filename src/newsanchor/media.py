"""Decode and encode media files with PyAV; the only module of the project that does so.

Video comes out as RGB uint8 frames ``[H, W, 3]`` resampled by timestamp to a fixed rate, audio
as float32 mono ``[S]`` in [-1, 1] at a fixed sample rate; files go out as H.264 + AAC mp4.
Every problem with an input file is a one-line :class:`MediaError` naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
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
# Start bytes of formats we know: a file that has one but cannot be opened is damaged, not foreign.
_SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"fLaC"), (0, b"OggS"), (0, b"ID3"))
# Tags the mp4 muxer writes as iTunes-style atoms, which most players show. Other keys survive only
# as QuickTime "mdta" keys (movflags=use_metadata_tags), which write_video switches to when needed.
# Not 'encoder': the muxer always overwrites it with its own name.
MP4_TAGS = frozenset({"title", "artist", "album_artist", "composer", "album", "date", "comment", "genre",
                      "copyright", "grouping", "lyrics", "description", "synopsis", "show", "episode_id",
                      "network", "keywords"})
_RESEEK_GAP = 50  # frames: farther than this to the next wanted frame, seeking beats decoding through


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learnt about a file. Times are seconds on the file's own clock."""

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


def _open(path: str) -> av.container.InputContainer:
    """Open for reading; every failure becomes a MediaError in plain words."""
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
    try:
        container = av.open(path, metadata_errors="replace")
    except (_AvError, OSError) as err:
        if any(header[at:at + len(magic)] == magic for at, magic in _SIGNATURES):
            raise MediaError(path, "truncated or corrupt") from None  # e.g. an mp4 cut before its moov atom
        if isinstance(err, av.error.InvalidDataError):
            raise MediaError(path, "not a media file") from None
        raise MediaError(path, f"cannot open ({_reason(err)})") from None
    if container.format.name == "tty" or not container.streams:  # FFmpeg reads *.txt as ANSI art
        container.close()
        raise MediaError(path, "not a media file")
    return container


def _video_stream(container):
    """First real video stream: cover art in audio files is a 'video' stream to ignore."""
    return next((s for s in container.streams.video if not int(s.disposition) & 1024), None)  # ATTACHED_PIC


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


def _frame_rate(stream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else None


def _scan(container, streams) -> tuple[dict[int, list[int | None]], object | None]:
    """Demux without decoding. Returns per stream index [first pts, end pts, longest packet, count]
    in ticks, and the stream whose data ran out (demux error, or last packet cut short) if any."""
    spans: dict[int, list[int | None]] = {s.index: [None, None, 0, 0] for s in streams}
    default = {s.index: int(1 / (_frame_rate(s) * s.time_base)) if s.type == "video" and _frame_rate(s) else 0
               for s in streams}
    cut = None
    try:
        for packet in container.demux(*streams):
            if packet.size == 0:  # flush packets
                continue
            span, duration = spans[packet.stream.index], packet.duration or default[packet.stream.index]
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:  # raw streams (.h264) have no timestamps: assume the average rate
                pts = span[3] * duration
            span[3] += 1
            # FFmpeg flags a packet the end of the file cut short. Only the last one counts:
            # mid-file ones are left to the decoder's error concealment.
            cut = packet.stream if packet.is_corrupt else None
            if cut is None:
                span[0] = pts if span[0] is None else min(span[0], pts)
                span[1] = pts + duration if span[1] is None else max(span[1], pts + duration)
                span[2] = max(span[2], duration)
    except (_AvError, OSError):
        return spans, streams[0]
    return spans, cut


def _declared_s(stream, container, fallback_to_file: bool) -> float | None:
    """The duration a stream's headers declare, if they do."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    with contextlib.suppress(KeyError, ValueError):  # Matroska by FFmpeg: a per-track "HH:MM:SS.nnn" tag
        hours, minutes, seconds = stream.metadata["DURATION"].split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if fallback_to_file and container.duration is not None:
        start = float((stream.start_time or 0) * stream.time_base)
        return max(0.0, ((container.start_time or 0) + container.duration) / av.time_base - start)
    return None


def _stream_times(stream, span, container) -> tuple[float, float]:
    """(start_s, duration_s): measured from the packet scan if there was one, else declared."""
    tb, start = stream.time_base, stream.start_time
    if span is None:
        return float((start or 0) * tb), _declared_s(stream, container, True) or 0.0
    start = span[0] if start is None else start  # the header's start honours edit lists
    if start is None or span[1] is None:
        return float((start or 0) * tb), 0.0
    return float(start * tb), float(max(0, span[1] - start) * tb)


def _check_truncation(path: str, container, streams, spans, cut) -> None:
    """Raise if the data ran out, or a stream's packets stop clearly before its declared end."""
    longest = max(streams, key=lambda s: (spans[s.index][1] or 0) * s.time_base)
    for s in [cut] if cut is not None else streams:
        measured = _stream_times(s, spans[s.index], container)[1]
        # Only the longest stream must reach the file's total when no per-stream duration exists.
        declared = _declared_s(s, container, s is longest)
        # Tolerance: headers round, and the last packet's duration is often a guess.
        short = declared is not None and measured < declared - max(0.25, 2 * float(spans[s.index][2] * s.time_base))
        if cut is not None or short:
            of = f" of {declared:.2f} s" if short else ""  # WAV shrinks its declared length to the file's
            raise MediaError(path, f"truncated ({s.type} ends at {measured:.2f} s{of})")


def probe(path, *, require_video: bool = True, require_audio: bool = True, scan_packets: bool = True) -> MediaInfo:
    """Describe a media file, checking it is usable. Raises MediaError: no such file, directory,
    cannot read, empty, not a media file, truncated or corrupt, no video/audio stream, truncated.

    ``scan_packets`` demuxes every packet (no decoding: milliseconds for short clips) to measure
    real stream durations and to catch files whose data stops before their headers say.
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
        spans: dict = {}
        if scan_packets:
            spans, cut = _scan(container, streams)
            _check_truncation(path, container, streams, spans, cut)
        v_start, v_duration = _stream_times(video, spans.get(video.index), container) if video else (0.0, 0.0)
        a_start, a_duration = _stream_times(audio, spans.get(audio.index), container) if audio else (0.0, 0.0)
        rate = _frame_rate(video) if video else None
        v, a = (video.codec_context if video else None), (audio.codec_context if audio else None)
        return MediaInfo(
            path=path, has_video=v is not None, has_audio=a is not None, width=v.width if v else 0,
            height=v.height if v else 0, video_codec=v.name if v else None,
            average_fps=float(rate) if rate else None, video_start_s=v_start, video_duration_s=v_duration,
            audio_codec=a.name if a else None, audio_sample_rate=a.sample_rate if a else None,
            audio_channels=a.channels if a else None, audio_start_s=a_start, audio_duration_s=a_duration)
    finally:
        container.close()


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
    origin, time, duration = None, None, None
    for frame in _decoded(container, stream, path, of_s):
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
        if current is None and total:
            raise MediaError(path, "no video frame could be decoded")
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
        stream = _video_stream(container)
        rate, tb, origin = _frame_rate(stream) or Fraction(25), Fraction(stream.time_base), stream.start_time or 0
        n_frames = count_output_frames(info, rate)
        if wanted[0] < 0 or wanted[-1] >= n_frames:
            raise IndexError(f"{path}: frame index out of range 0..{n_frames - 1}")

        def index_of(frame) -> int:
            return math.floor((frame.pts - origin) * tb * rate + Fraction(1, 1000))

        def decode_from(target: int) -> Iterator[av.VideoFrame]:
            container.seek(origin + math.floor(target / rate / tb), stream=stream, backward=True)
            frames = (f for f in container.decode(stream) if f.pts is not None)
            first = next(frames, None)
            if first is not None and index_of(first) > target:  # landed past it: start from the top
                container.seek(origin, stream=stream, backward=True)
                frames = (f for f in container.decode(stream) if f.pts is not None)
                first = next(frames, None)
            return chain([first] if first is not None else [], frames)

        i = 0
        while i < len(wanted):
            sought = wanted[i]
            frames = decode_from(sought)
            current = next(frames, None)
            for upcoming in chain(frames, [None]):
                if current is None or (upcoming is None and wanted[-1] > index_of(current) + 1):
                    raise MediaError(path, f"truncated (video ends before frame {wanted[-1]} of {n_frames})")
                while i < len(wanted) and (upcoming is None or index_of(upcoming) > wanted[i]):
                    found[wanted[i]] = current.to_ndarray(format="rgb24")
                    i += 1
                if i == len(wanted) or upcoming is None:
                    break
                if wanted[i] != sought and wanted[i] - index_of(upcoming) > _RESEEK_GAP:
                    break  # seek again (never twice for the same target: a one-GOP file would loop)
                current = upcoming
    except (_AvError, OSError) as err:
        raise MediaError(path, f"corrupt video data ({_reason(err)})") from err
    finally:
        container.close()
    given: set[int] = set()  # an index asked twice gets its own copy
    return [found[i].copy() if i in given else (given.add(i) or found[i]) for i in map(int, indices)]


# ---------------------------------------------------------------- audio

def read_audio(path, sr: int = 16000, *, info: MediaInfo | None = None, align_to_video: bool = True) -> np.ndarray:
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
        for frame in chain(_decoded(container, stream, path, info.audio_duration_s), [None]):
            if frame is not None and first_s is None and frame.pts is not None:
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


# ---------------------------------------------------------------- encoding

@contextlib.contextmanager
def _writing(path: str):
    """Encoder, muxer and file-system failures become MediaError; the caller's own errors pass."""
    try:
        yield
    except (_AvError, OSError) as err:
        raise MediaError(path, f"cannot write ({_reason(err)})") from err


def _checked(frame, shape: tuple[int, ...] | None, n: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"frame {n}: expected [H, W, 3] uint8 RGB, got {arr.shape} {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"frame {n}: size {arr.shape} differs from the first frame's {shape}")
    return arr


def write_video(path, frames: Iterable[np.ndarray], fps: float | Fraction = 25, *, audio: np.ndarray | None = None,
                sample_rate: int = 16000, crf: int = 18, preset: str = "veryfast", keyframe_interval: int | None = None,
                metadata: dict[str, str] | None = None) -> int:
    """Stream frames ([H, W, 3] uint8 RGB, all one size) and optional audio ([S] float32 mono at
    ``sample_rate``) into an H.264 yuv420p + AAC mp4 with its index first (faststart).

    Returns the number of frames written. Odd widths/heights are padded to even (yuv420p) by
    repeating the last column/row. Audio is trimmed or zero-padded to exactly n_frames / fps
    and interleaved with the video. ``keyframe_interval`` is the GOP size in frames, so readers
    can seek. ``metadata`` becomes container tags: keys in MP4_TAGS are standard atoms; any other
    key switches to QuickTime "mdta" tags so it survives too; 'encoder' is refused (overwritten by
    the muxer). The file appears atomically: written to a hidden sibling, then renamed; on any
    exception (KeyboardInterrupt too) nothing is left behind.
    """
    path, rate = os.fspath(path), _as_rate(fps)
    tags = {str(k): str(v) for k, v in (metadata or {}).items()}
    if "encoder" in tags:
        raise ValueError("metadata key 'encoder' is overwritten by the mp4 muxer; use 'comment' or another key")
    if audio is not None and np.ndim(audio) != 1:
        raise ValueError(f"audio must be [S] mono, got shape {np.shape(audio)}")
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}.mp4")
    container = None
    try:
        source = iter(frames)
        first = next(source, None)
        if first is None:
            raise ValueError(f"{path}: no frames to write")
        shape = _checked(first, None, 0).shape
        pad = ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0))
        with _writing(path):
            movflags = "+faststart" + ("" if set(tags) <= MP4_TAGS else "+use_metadata_tags")
            container = av.open(temporary, "w", format="mp4", container_options={"movflags": movflags})
            container.metadata.update(tags)
            video = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            video.height, video.width, video.pix_fmt = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2, "yuv420p"
            if keyframe_interval:
                video.codec_context.gop_size = int(keyframe_interval)
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate)
                sound.layout, sound.bit_rate = "mono", 64000
                audio = np.asarray(audio, dtype=np.float32)
        n = 0
        for frame in chain([first], source):
            arr = _checked(frame, shape, n)
            if shape[0] % 2 or shape[1] % 2:
                arr = np.pad(arr, pad, mode="edge")
            with _writing(path):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                picture.pts, picture.time_base = n, 1 / rate
                container.mux(video.encode(picture))
                n += 1
                if sound is not None:  # audio interleaved with the video it belongs to
                    _encode_audio(container, sound, audio, round((n - 1) * sample_rate / rate),
                                  round(n * sample_rate / rate))
        with _writing(path):
            container.mux(video.encode(None))
            if sound is not None:
                container.mux(sound.encode(None))
            container.close()
            container = None
            os.replace(temporary, path)
        return n
    except BaseException:
        if container is not None:
            with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                container.close()
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _encode_audio(container, stream, audio: np.ndarray, start: int, stop: int) -> None:
    """Encode samples [start, stop) of ``audio``, zeros past its end."""
    if stop <= start:
        return
    chunk = audio[start:stop]
    chunk = np.pad(chunk, (0, stop - start - len(chunk)))[None, :]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
    frame.rate, frame.pts, frame.time_base = stream.rate, start, Fraction(1, stream.rate)
    container.mux(stream.encode(frame))
