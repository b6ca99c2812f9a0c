"""media.py on tiny synthetic files built with PyAV: frame k of a test video shows the bits of its
index as 8 black/white bars, so a decoded frame says which source frame it is."""

from __future__ import annotations

import os
from fractions import Fraction
from functools import partial

import av
import numpy as np
import pytest

from newsanchor import media
from newsanchor.media import streams
from newsanchor.errors import MediaError

H, W = 48, 64


def bars(index: int, height: int = H, width: int = W) -> np.ndarray:
    """[H, W, 3] uint8 grey frame whose top strip holds 8 bars, the bits of ``index`` (MSB left).
    (A small strip, so that x264 does not see a scene cut, and a keyframe, in every frame.)"""
    bits = [(index >> (7 - b)) & 1 for b in range(8)]
    row = np.repeat(np.array(bits) * 224 + 16, width // 8).astype(np.uint8)
    frame = np.full((height, width, 3), 128, np.uint8)
    frame[:8, : len(row)] = row[None, :, None]
    return frame


def index_of(frame: np.ndarray) -> int:
    bar_means = frame[1:7, :W].reshape(6, 8, -1, 3).mean(axis=(0, 2, 3))
    return int("".join("1" if m > 128 else "0" for m in bar_means), 2)


def encode(path, pts, time_base, *, durations=None, fmt=None, faststart=False, audio=None, audio_rate=16000,
           audio_pts=0):
    """Write frames bars(0..n-1) at the given pts (in time_base) with libx264; optional mono float audio."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, container_options=options) as container:
        video = container.add_stream("libx264", rate=25, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        video.codec_context.time_base = time_base
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=audio_rate)
            sound.layout = "mono"
        by_pts = dict(zip(pts, durations or [None] * len(pts), strict=True))

        def mux(packets):
            for packet in packets:  # explicit durations make the variable frame rate exact
                if by_pts.get(packet.pts):
                    packet.duration = by_pts[packet.pts]
                container.mux(packet)

        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(bars(i), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            mux(video.encode(frame))
        mux(video.encode(None))
        if sound is not None:
            frame = av.AudioFrame.from_ndarray(audio.astype(np.float32)[None], format="flt", layout="mono")
            frame.rate, frame.pts, frame.time_base = audio_rate, audio_pts, Fraction(1, audio_rate)
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return str(path)


def write_wav(path, samples: np.ndarray, rate: int, codec="pcm_s16le", layout="stereo", fmt="wav"):
    """samples [C, S] float in [-1, 1]."""
    sample_format = {"pcm_s16le": "s16", "pcm_s32le": "s32", "pcm_f32le": "flt", "flac": "s16", "mp2": "s16"}[codec]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        if sample_format == "flt":
            data = samples.astype(np.float32)
        else:
            scale = 32767 if sample_format == "s16" else 2**31 - 1
            data = np.round(samples * scale).astype(np.int16 if sample_format == "s16" else np.int32)
        frame = av.AudioFrame.from_ndarray(data.T.reshape(1, -1).copy(), format=sample_format, layout=layout)
        frame.rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


def sine(freq, rate, seconds, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def peak_hz(wav, rate):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.argmax(spectrum) * rate / len(wav)


def decoded_indices(path, fps=25, info=None):
    return [index_of(f) for f in media.iter_video_frames(path, fps, info=info)]


# ---------------------------------------------------------------- video resampling

def test_variable_frame_rate_picks_the_frame_on_screen(tmp_path):
    pts_ms = [0, 33, 80, 100, 170, 200, 260, 300]
    durations = [b - a for a, b in zip(pts_ms, pts_ms[1:], strict=False)] + [50]  # last frame ends at 350 ms
    path = encode(tmp_path / "vfr.mkv", pts_ms, Fraction(1, 1000), durations=durations)
    info = media.probe(path, require_audio=False)
    assert info.video_duration_s == pytest.approx(0.35)
    # independently: output k at k*40 ms shows the last frame with pts <= k*40 ms
    expected = [max(i for i, p in enumerate(pts_ms) if p <= k * 40) for k in range(100) if k * 40 < 350]
    assert len(expected) == 9 == media.count_output_frames(info, 25)
    assert decoded_indices(path, 25, info) == expected


def test_30_to_25_fps_and_25_identity(tmp_path):
    thirty = encode(tmp_path / "30.mp4", list(range(60)), Fraction(1, 30))
    info = media.probe(thirty, require_audio=False)
    assert media.count_output_frames(info, 25) == 50
    assert decoded_indices(thirty) == [k * 30 // 25 for k in range(50)]

    twentyfive = encode(tmp_path / "25.mp4", list(range(75)), Fraction(1, 25))
    info = media.probe(twentyfive, require_audio=False)
    assert (info.average_fps, info.video_duration_s) == (25.0, 3.0)
    assert media.count_output_frames(info, 25) == 75
    assert decoded_indices(twentyfive, Fraction(25)) == list(range(75))
    # 25 -> 30 repeats frames; repeated frames are separate arrays
    frames = list(media.iter_video_frames(twentyfive, 30))
    assert [index_of(f) for f in frames] == [k * 25 // 30 for k in range(90)]
    assert not np.shares_memory(frames[5], frames[6])


def test_22_1_fps_with_late_start(tmp_path):
    # 1350/61 fps like studio_suit_wide.mp4, first frame at 45/1350 s instead of 0
    path = encode(tmp_path / "22.mp4", [45 + 61 * i for i in range(40)], Fraction(1, 1350), durations=[61] * 40)
    info = media.probe(path, require_audio=False)
    assert info.average_fps == pytest.approx(1350 / 61, rel=1e-3)
    assert info.video_start_s == pytest.approx(45 / 1350, abs=1e-3)
    assert info.video_duration_s == pytest.approx(40 * 61 / 1350, abs=1e-3)
    n = media.count_output_frames(info, 25)
    assert n == 46  # ceil(1.807 s * 25)
    assert decoded_indices(path, 25, info) == [k * 1350 // (25 * 61) for k in range(n)]


def test_raw_stream_without_timestamps(tmp_path):
    # a raw .h264 stream has no pts: frames follow each other by their durations (1/30 s here)
    path = encode(tmp_path / "raw.h264", list(range(30)), Fraction(1, 30), fmt="h264")
    info = media.probe(path, require_audio=False)
    assert media.count_output_frames(info, 25) == 25
    assert decoded_indices(path, 25, info) == [k * 30 // 25 for k in range(25)]


# ---------------------------------------------------------------- audio

@pytest.mark.parametrize("codec,rate,layout", [("pcm_s16le", 44100, "stereo"), ("pcm_f32le", 16000, "mono"),
                                               ("pcm_s32le", 22050, "stereo"), ("flac", 48000, "stereo"),
                                               ("mp2", 32000, "mono")])
def test_read_audio_any_format_to_16k_mono(tmp_path, codec, rate, layout):
    channels = 2 if layout == "stereo" else 1
    fmt = "flac" if codec == "flac" else "mp2" if codec == "mp2" else "wav"
    path = write_wav(tmp_path / f"tone.{fmt}", np.tile(sine(440, rate, 1.0), (channels, 1)), rate, codec, layout, fmt)
    wav = media.read_audio(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) <= (1200 if codec == "mp2" else 2)  # mp2 frames are 1152 samples
    assert peak_hz(wav, 16000) == pytest.approx(440, abs=2)
    assert np.abs(wav[2000:14000]).max() == pytest.approx(0.5, abs=0.03)  # averaged, not summed


def test_read_audio_downmix_stays_in_range(tmp_path):
    six = np.tile(sine(300, 16000, 0.5, amplitude=0.9), (6, 1))
    wav = media.read_audio(write_wav(tmp_path / "51.wav", six, 16000, layout="5.1"), 16000)
    assert np.abs(wav).max() == pytest.approx(0.9, abs=0.01)  # swresample's own down-mix would give ~1.5
    one_of_four = np.zeros((4, 8000))
    one_of_four[0] = sine(300, 16000, 0.5)
    wav = media.read_audio(write_wav(tmp_path / "quad.wav", one_of_four, 16000, layout="quad"), 16000)
    assert np.abs(wav).max() == pytest.approx(0.5 / 4, abs=0.01)


def test_aac_in_mp4_is_aligned_to_video(tmp_path):
    tone = sine(440, 16000, 1.0)
    late = encode(tmp_path / "late.mp4", list(range(50)), Fraction(1, 25), audio=tone, audio_pts=8000)  # 0.5 s late
    wav = media.read_audio(late, 16000)
    assert len(wav) == pytest.approx(24000, abs=64)
    assert np.abs(wav[:7000]).max() < 0.01  # zeros until the audio starts
    assert np.abs(wav[8500:23000]).max() == pytest.approx(0.5, abs=0.05)
    assert peak_hz(wav[8500:23000], 16000) == pytest.approx(440, abs=3)

    # video starting 0.2 s after audio: sample 0 is the first video frame's time
    silence_then_tone = np.concatenate([np.zeros(3200), tone])
    early = encode(tmp_path / "early.mp4", [5 + i for i in range(50)], Fraction(1, 25), audio=silence_then_tone)
    aligned = media.read_audio(early, 16000)
    raw = media.read_audio(early, 16000, align_to_video=False)
    assert len(raw) - len(aligned) == pytest.approx(3200, abs=2)
    assert np.abs(aligned[200:800]).max() > 0.3 and np.abs(raw[200:800]).max() < 0.01


# ---------------------------------------------------------------- writing

def read_tags(path):
    with av.open(path) as container:
        return dict(container.metadata), container.streams.video[0].codec_context.pix_fmt


def top_level_boxes(path):
    boxes, data, at = [], open(path, "rb").read(), 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        boxes.append(data[at + 4:at + 8].decode())
        at += size if size >= 8 else len(data)
    return boxes


@pytest.mark.parametrize("audio_seconds", [0.9, 2.0])  # shorter than the video: padded; longer: trimmed
def test_write_video_round_trip(tmp_path, audio_seconds):
    out = tmp_path / "out.mp4"
    metadata = {"comment": "AI-generated", "title": "test", "ai_generated": "true"}
    n = media.write_video(out, (bars(i) for i in range(30)), 25, audio=sine(440, 16000, audio_seconds),
                          keyframe_interval=10, metadata=metadata)
    assert n == 30 and os.listdir(tmp_path) == ["out.mp4"]  # no temporary file left
    info = media.probe(out)
    assert (info.video_codec, info.audio_codec, info.width, info.height) == ("h264", "aac", W, H)
    assert (info.audio_sample_rate, info.audio_channels) == (16000, 1)
    assert info.video_duration_s == pytest.approx(1.2)
    assert abs(info.audio_duration_s - info.video_duration_s) <= 1 / 25
    assert len(media.read_audio(out, 16000)) == pytest.approx(19200, abs=640)
    tags, pix_fmt = read_tags(str(out))
    assert pix_fmt == "yuv420p" and {k: tags.get(k) for k in metadata} == metadata
    assert top_level_boxes(out).index("moov") < top_level_boxes(out).index("mdat")  # faststart
    assert decoded_indices(out) == list(range(30))


def test_write_video_odd_size_and_standard_tags(tmp_path):
    out = tmp_path / "odd.mp4"
    media.write_video(out, [bars(i, 47, 63) for i in range(5)], metadata={"comment": "AI-generated"})
    info = media.probe(out, require_audio=False)
    assert (info.width, info.height) == (64, 48)
    assert read_tags(str(out))[0]["comment"] == "AI-generated"
    with pytest.raises(ValueError, match="encoder"):
        media.write_video(tmp_path / "e.mp4", [bars(0)], metadata={"encoder": "x"})


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_write_video_failure_leaves_no_file(tmp_path, failure):
    def frames():
        for i in range(10):
            if i == 5:
                raise failure("stop")
            yield bars(i)

    with pytest.raises(failure):
        media.write_video(tmp_path / "out.mp4", frames(), audio=np.zeros(16000, np.float32))
    assert os.listdir(tmp_path) == []
    # an existing file is untouched by a failed rewrite
    media.write_video(tmp_path / "out.mp4", [bars(1)] * 3)
    before = (tmp_path / "out.mp4").read_bytes()
    with pytest.raises(ValueError, match="frame 2"):
        media.write_video(tmp_path / "out.mp4", [bars(1), bars(2), bars(3, 32, 32)])
    assert os.listdir(tmp_path) == ["out.mp4"] and (tmp_path / "out.mp4").read_bytes() == before
    with pytest.raises(MediaError, match="cannot write"):
        media.write_video(tmp_path / "missing" / "out.mp4", [bars(1)])


def test_read_video_frames_at_matches_sequential_decoding(tmp_path):
    out = tmp_path / "crops.mp4"
    media.write_video(out, (bars(i) for i in range(120)), 25, keyframe_interval=12)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        keyframes = [round(p.pts * stream.time_base * 25) for p in container.demux(stream) if p.is_keyframe]
    assert keyframes == list(range(0, 120, 12))
    sequential = list(media.iter_video_frames(out, 25))
    wanted = [0, 7, 8, 11, 12, 13, 59, 119, 100, 8]  # unsorted, repeated, far apart
    got = media.read_video_frames_at(out, wanted)
    assert [index_of(f) for f in got] == wanted
    assert all(np.array_equal(g, sequential[i]) for g, i in zip(got, wanted, strict=True))
    assert not np.shares_memory(got[2], got[9])
    with pytest.raises(IndexError):
        media.read_video_frames_at(out, [120])


# ---------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def cut_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut")
    files = {}
    for name, faststart, keep in [("moov_at_end", False, 0.5), ("faststart", True, 0.6)]:
        full = encode(folder / f"{name}_full.mp4", list(range(75)), Fraction(1, 25), faststart=faststart,
                      audio=sine(440, 16000, 3.0))
        data = open(full, "rb").read()
        files[name] = folder / f"{name}.mp4"
        files[name].write_bytes(data[: int(len(data) * keep)])
    return files


def expect_error(call, path, problem):
    with pytest.raises(MediaError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert problem in message, message
    return message


def test_bad_files_give_one_line_errors(tmp_path, cut_files):
    text, txt, noise, empty = (tmp_path / n for n in ("text.mp4", "notes.txt", "noise.mp4", "empty.mp4"))
    text.write_text("not a video\n" * 50)
    txt.write_text("not a video either\n" * 50)
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    empty.write_bytes(b"")
    cases = [(tmp_path / "missing.mp4", "no such file"), (tmp_path, "is a directory, not a media file"),
             (empty, "empty file"), (text, "not a media file"), (txt, "not a media file"),
             (noise, "not a media file"), (cut_files["moov_at_end"], "truncated or corrupt")]
    for path, problem in cases:
        for reader in (media.probe, media.iter_video_frames, media.read_audio):
            assert expect_error(partial(reader, path), path, problem) == f"{path}: {problem}"

    cut = cut_files["faststart"]
    message = expect_error(lambda: media.probe(cut), cut, "truncated (")
    assert message.endswith("of 3.00 s)")
    expect_error(lambda: media.read_audio(cut), cut, "truncated (")
    # without the packet scan, decoding runs into the missing data and must still say so in one line
    quick = media.probe(cut, scan_packets=False)
    expect_error(lambda: list(media.iter_video_frames(cut, info=quick)), cut, "")


def test_missing_streams(tmp_path):
    silent = encode(tmp_path / "silent.mp4", list(range(10)), Fraction(1, 25))
    tone = write_wav(tmp_path / "tone.wav", np.tile(sine(440, 16000, 0.2), (2, 1)), 16000)
    expect_error(lambda: media.probe(silent), silent, "no audio stream")
    expect_error(lambda: media.read_audio(silent), silent, "no audio stream")
    expect_error(lambda: media.probe(tone), tone, "no video stream")
    expect_error(lambda: media.iter_video_frames(tone), tone, "no video stream")
    assert media.probe(silent, require_audio=False).has_audio is False
    info = media.probe(tone, require_video=False)
    assert (info.has_video, info.audio_channels, info.audio_duration_s) == (False, 2, pytest.approx(0.2))


def test_unreadable_file(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "locked.wav", np.zeros((2, 100)), 16000)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(streams, "open", refuse, raising=False)  # works even when tests run as root
    assert expect_error(lambda: media.probe(path), path, "") == f"{path}: cannot read (Permission denied)"


@pytest.mark.timeout(60)
def test_read_video_frames_at_in_a_single_gop_file(tmp_path):
    # one keyframe for the whole file: every seek lands on frame 0 (this once looped forever)
    out = tmp_path / "one_gop.mp4"
    media.write_video(out, (bars(i) for i in range(130)), 25, keyframe_interval=1000)
    assert [index_of(f) for f in media.read_video_frames_at(out, [3, 70, 129])] == [3, 70, 129]
