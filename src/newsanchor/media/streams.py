"""Opening media files, probing their streams, and catching damaged files before decoding."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from fractions import Fraction

import av

from ..errors import MediaError

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
# The only demuxers (FFmpeg names) that may open a file, because FFmpeg otherwise picks one by
# sniffing the content, and some it would pick read *other* files or hosts: a 54-byte text
# "ffconcat version 1.0\nfile other/input" (concat), an m3u8 playlist (hls), a dash manifest, an
# image2 pattern, an sdp session. These hold their media inside the one file, so opening one
# reads nothing else. Containers that carry sound (a recording):
RECORDING_FORMATS = frozenset({
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",   # one demuxer: QuickTime/MP4 family
    "matroska", "webm", "avi", "flv", "asf", "mpeg", "mpegts", "mxf", "nut",
    "wav", "w64", "aiff", "caf", "au", "flac", "mp3", "ogg", "aac", "ac3", "eac3", "amr", "wv", "ape",
})
# ...and what the command line also reads: raw video streams written without a container.
MEDIA_FORMATS = RECORDING_FORMATS | {"h264", "hevc", "m4v", "mpegvideo", "ivf"}


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


def _open(path: str, formats: frozenset[str] = MEDIA_FORMATS) -> av.container.InputContainer:
    """Open for reading with one of the demuxers in ``formats``; every failure becomes a
    MediaError in plain words."""
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
        # "file:" so that a name like "concat:a|b" or "subfile:…" is that file, not an FFmpeg
        # protocol; both lists are checked by FFmpeg before the demuxer reads a byte of the file
        container = av.open(f"file:{os.path.abspath(path)}", metadata_errors="replace",
                            container_options={"format_whitelist": ",".join(sorted(formats)),
                                               "protocol_whitelist": "file"})
    except av.error.ArgumentError:  # sniffed as a format not in the list
        raise MediaError(path, "not a media file") from None
    except (_AvError, OSError) as err:
        if any(header[at:at + len(magic)] == magic for at, magic in _SIGNATURES):
            raise MediaError(path, "truncated or corrupt") from None  # e.g. an mp4 cut before its moov atom
        if isinstance(err, av.error.InvalidDataError):
            raise MediaError(path, "not a media file") from None
        raise MediaError(path, f"cannot open ({_reason(err)})") from None
    # FFmpeg's own check already refused other demuxers; this one also holds for a build without it
    if not formats.intersection(container.format.name.split(",")) or not container.streams:
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


@dataclass
class _Span:
    """One stream's packets in its ticks: first pts, end pts (None until a packet counts), the
    longest packet and the number of packets."""

    first: int | None = None
    end: int | None = None
    longest: int = 0
    count: int = 0


def _scan(container, streams) -> tuple[dict[int, _Span], object | None]:
    """Demux without decoding. Returns per stream index its :class:`_Span` in ticks, and the
    stream whose data ran out (demux error, or last packet cut short) if any."""
    spans = {s.index: _Span() for s in streams}
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
                pts = span.count * duration
            span.count += 1
            # FFmpeg flags a packet the end of the file cut short. Only the last one counts:
            # mid-file ones are left to the decoder's error concealment.
            cut = packet.stream if packet.is_corrupt else None
            if cut is None:
                span.first = pts if span.first is None else min(span.first, pts)
                span.end = pts + duration if span.end is None else max(span.end, pts + duration)
                span.longest = max(span.longest, duration)
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


def _stream_times(stream, span: _Span | None, container) -> tuple[float, float]:
    """(start_s, duration_s): measured from the packet scan if there was one, else declared."""
    tb, start = stream.time_base, stream.start_time
    if span is None:
        return float((start or 0) * tb), _declared_s(stream, container, True) or 0.0
    start = span.first if start is None else start  # the header's start honours edit lists
    if start is None or span.end is None:
        return float((start or 0) * tb), 0.0
    return float(start * tb), float(max(0, span.end - start) * tb)


def _check_truncation(path: str, container, streams, spans: dict[int, _Span], cut) -> None:
    """Raise if the data ran out, or a stream's packets stop clearly before its declared end."""
    longest = max(streams, key=lambda s: (spans[s.index].end or 0) * s.time_base)
    for s in [cut] if cut is not None else streams:
        measured = _stream_times(s, spans[s.index], container)[1]
        # Only the longest stream must reach the file's total when no per-stream duration exists.
        declared = _declared_s(s, container, s is longest)
        # Tolerance: headers round, and the last packet's duration is often a guess.
        short = declared is not None and measured < declared - max(0.25, 2 * float(spans[s.index].longest * s.time_base))
        if cut is not None or short:
            of = f" of {declared:.2f} s" if short else ""  # WAV shrinks its declared length to the file's
            raise MediaError(path, f"truncated ({s.type} ends at {measured:.2f} s{of})")


def probe(path, *, require_video: bool = True, require_audio: bool = True, scan_packets: bool = True,
          formats: frozenset[str] = MEDIA_FORMATS) -> MediaInfo:
    """Describe a media file, checking it is usable. Raises MediaError: no such file, directory,
    cannot read, empty, not a media file, truncated or corrupt, no video/audio stream, truncated.

    ``scan_packets`` demuxes every packet (no decoding: milliseconds for short clips) to measure
    real stream durations and to catch files whose data stops before their headers say.
    ``formats``: the FFmpeg demuxers allowed to open it (:data:`MEDIA_FORMATS`; a file sniffed as
    anything else, such as a concat script or a playlist, is "not a media file" and is never read
    past its first bytes).
    """
    path = os.fspath(path)
    container = _open(path, formats)
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


