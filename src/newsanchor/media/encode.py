"""Encoding: frames and a waveform into an H.264/AAC mp4, written atomically."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from itertools import chain
from typing import Iterable

import av
import numpy as np

from ..errors import MediaError
from ..files import remove_stale_temporaries, temporary_sibling
from ..timing import SAMPLE_RATE
from .decode import _as_rate
from .streams import MP4_TAGS, _AvError, _reason


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
                sample_rate: int = SAMPLE_RATE, crf: int = 18, preset: str = "veryfast", keyframe_interval: int | None = None,
                metadata: dict[str, str] | None = None, reproducible: bool = False) -> int:
    """Stream frames ([H, W, 3] uint8 RGB, all one size) and optional audio ([S] float32 mono at
    ``sample_rate``) into an H.264 yuv420p + AAC mp4 with its index first (faststart).

    Returns the number of frames written. Odd widths/heights are padded to even (yuv420p) by
    repeating the last column/row. Audio is trimmed or zero-padded to exactly n_frames / fps
    and interleaved with the video. ``keyframe_interval`` is the GOP size in frames, so readers
    can seek. ``metadata`` becomes container tags: keys in MP4_TAGS are standard atoms; any other
    key switches to QuickTime "mdta" tags so it survives too; 'encoder' is refused (overwritten by
    the muxer). ``reproducible``: the same frames give the same bytes (x264's macroblock-tree rate
    control is off: with it, libx264 coded the same frames of some videos in one of two ways from
    run to run, even on one thread; without it a CRF about 2 higher gives the same size and
    quality). The file appears atomically: written to a hidden sibling, then renamed; on any
    exception (KeyboardInterrupt too) nothing is left behind, and the hidden siblings a killed
    earlier writer of the same path left are removed first.
    """
    path, rate = os.fspath(path), _as_rate(fps)
    tags = {str(k): str(v) for k, v in (metadata or {}).items()}
    if "encoder" in tags:
        raise ValueError("metadata key 'encoder' is overwritten by the mp4 muxer; use 'comment' or another key")
    if audio is not None and np.ndim(audio) != 1:
        raise ValueError(f"audio must be [S] mono, got shape {np.shape(audio)}")
    remove_stale_temporaries(path)
    temporary = os.fspath(temporary_sibling(path))
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
            options = {"crf": str(crf), "preset": preset} | ({"x264-params": "mbtree=0"} if reproducible else {})
            video = container.add_stream("libx264", rate=rate, options=options)
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
                if sound is not None and audio is not None:  # audio interleaved with the video it belongs to
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
