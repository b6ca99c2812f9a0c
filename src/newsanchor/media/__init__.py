"""Decode and encode media files with PyAV; the only module of the project that does so.

Video comes out as RGB uint8 frames ``[H, W, 3]`` resampled by timestamp to a fixed rate, audio
as float32 mono ``[S]`` in [-1, 1] at a fixed sample rate; files go out as H.264 + AAC mp4.
Every problem with an input file is a one-line :class:`MediaError` naming the file.
"""

from .decode import count_output_frames, iter_video_frames, read_audio, read_video_frames_at
from .encode import write_video
from .streams import MEDIA_FORMATS, MP4_TAGS, RECORDING_FORMATS, MediaInfo, probe

__all__ = ["MediaInfo", "probe", "iter_video_frames", "count_output_frames", "read_audio",
           "write_video", "read_video_frames_at", "MP4_TAGS", "MEDIA_FORMATS", "RECORDING_FORMATS"]
