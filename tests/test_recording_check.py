"""Recording checks (newsanchor.recording_check): each kind of bad recording, crafted with PyAV from
real material (the synthetic actor: a real photograph, real TTS speech; real clips where
../shared is present), is reported by exactly its own check, naming the file; good ones pass."""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import missing_dependency
from newsanchor import media
from newsanchor.features.mouth import face_pose
from newsanchor.recording_check import RecordingRequirements, check_recordings

SILENCE_S = 5.0  # after the speech: room for the template's 4 s quiet stretch
FEW_SECONDS = RecordingRequirements(min_total_speech_s=3.0)  # the set-level speech total, for short test clips


@pytest.fixture(scope="module")
def actor_take():
    """The synthetic actor saying a sentence (~4 s of piper speech), then silent for SILENCE_S:
    (frames [T, 384, 384, 3] uint8 at 25 fps, wav [640 T] float32 at 16 kHz, actor, phonemes)."""
    if importlib.util.find_spec("piper") is None:
        missing_dependency("piper-tts is not installed (pip install 'newsanchor[piper]')")
    from newsanchor.demo import SyntheticActor
    from newsanchor.speech import synthesize_speech

    speech = synthesize_speech("Good evening. Tonight the council met to approve the budget for the coming year.")
    n = math.ceil(speech.duration * 25 + SILENCE_S * 25)
    wav = np.zeros(n * 640, np.float32)
    wav[:len(speech.waveform)] = speech.waveform
    actor = SyntheticActor()
    phonemes = [(p.symbol, p.start, p.end) for p in speech.phonemes]
    frames = np.stack([frame for frame, _ in actor.frames(phonemes, n)])
    return frames, wav, actor, phonemes


def _write(path: Path, frames, wav=None, fps=25) -> Path:
    media.write_video(path, iter(frames), fps, audio=wav, sample_rate=16000, preset="ultrafast")
    return path


def _checks(report, path: Path) -> set[str]:
    """The ids of the problems about ``path``, after checking that each message names it."""
    mine = [p for p in report.problems if p.path == path]
    for problem in mine:
        assert problem.message.startswith(f"{path}: ") and "\n" not in problem.message, problem.message
    return {p.check for p in mine}


def _only(path: Path, requirements=FEW_SECONDS):
    report = check_recordings([path], requirements)
    return report, _checks(report, path)


def test_the_actor_take_passes_every_check(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    path = _write(tmp_path / "take.mp4", frames, wav)
    seen = []
    report = check_recordings([path], FEW_SECONDS, progress=lambda done, total: seen.append((done, total)))
    assert report.ok, report.lines()
    assert report.lines() == [f"the recording passes: {report.total_speech_s / 60:.1f} min of speech, "
                              f"a quiet stretch of {report.recordings[0].longest_quiet_s:.1f} s for the template"]
    s = report.recordings[0]
    assert s.face_found == 1.0 and s.several_faces == 0.0 and s.frontal == 1.0
    assert s.face_px == pytest.approx(122, abs=4)  # the actor is framed for a natural 256 px crop
    assert s.crop_upscale == pytest.approx(1.0, abs=0.05)
    assert 3.0 < s.speech_s < 5.0 and -35 < s.speech_dbfs < -15 and s.clipped == 0.0
    assert s.longest_quiet_s >= 4.0 and s.sampled_frames == math.ceil(len(frames) / 25 * 2)
    assert seen[-1] == (s.sampled_frames, s.sampled_frames) and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    # the whole set is short of speech, and says by how much
    (problem,) = check_recordings([path]).problems
    assert problem.path is None and problem.check == "speech_too_short" and "120 s" in problem.message


def test_without_a_quiet_stretch_the_set_has_no_template(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    speaking = round(len(frames) - SILENCE_S * 25 + 10)  # 0.4 s of silence left
    path = _write(tmp_path / "no_pause.mp4", frames[:speaking], wav[:speaking * 640])
    report, checks = _only(path)
    assert checks == set()
    (problem,) = report.problems
    assert problem.path is None and problem.check == "no_quiet_stretch" and str(path) in problem.message


@pytest.mark.parametrize("kind, check", [
    ("no_face", "no_face"),
    ("blurred", "no_face"),
    ("two_faces", "several_faces"),
    ("dark", "too_dark"),
    ("small", "face_too_small"),
    ("clipped", "audio_clipped"),
    ("quiet", "audio_too_quiet"),
    ("silent", "audio_silent"),
    ("no_audio", "no_audio"),
    ("8fps", "frame_rate_too_low"),
])
def test_each_bad_recording_triggers_exactly_its_check(actor_take, tmp_path, kind, check):
    frames, wav, _, _ = actor_take
    frames, wav, fps = frames[:100], wav[:100 * 640], 25  # the 4 s of speech
    if kind == "no_face":
        frames = np.full_like(frames, 128)
    elif kind == "blurred":  # 1/24 of the size and back: a blur of ~12 px
        frames = np.stack([cv2.resize(cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA), (384, 384)) for f in frames])
    elif kind == "two_faces":
        frames = np.concatenate([frames, frames], axis=2)
    elif kind == "dark":
        frames = np.stack([cv2.convertScaleAbs(f, alpha=0.15) for f in frames])  # ×0.15
    elif kind == "small":
        frames = np.stack([cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in frames])
    elif kind == "clipped":
        wav = np.clip(wav * 20, -1, 1)
    elif kind == "quiet":
        wav = wav * 0.1  # -20 dB
    elif kind == "silent":
        wav = np.zeros_like(wav)
    elif kind == "no_audio":
        wav = None
    elif kind == "8fps":
        frames, fps = frames[::3], Fraction(25, 3)
    path = _write(tmp_path / f"{kind}.mp4", frames, None if wav is None else wav[:round(len(frames) * 16000 / fps)], fps)
    report, checks = _only(path)
    assert checks == {check}, report.lines()
    (problem,) = [p for p in report.problems if p.path == path]
    assert len(problem.message) < 300


def test_messages_give_the_measured_figure_and_the_target(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    small = np.stack([cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in frames[:75]])
    path = _write(tmp_path / "small.mp4", small, wav[:75 * 640])
    report = check_recordings([path], FEW_SECONDS)
    (problem,) = [p for p in report.problems if p.check == "face_too_small"]
    face = report.recordings[0].face_px
    assert face == pytest.approx(61, abs=4)
    assert f"the face is {face:.0f} px" in problem.message and "at least 98 px" in problem.message
    # the same face is big enough for 128² crops: the threshold follows the crop size
    assert "face_too_small" not in _checks(check_recordings([path], RecordingRequirements(crop_size=128)), path)


def _turned(actor, degrees: float) -> np.ndarray:
    """The actor's rest face with the head turned ``degrees`` about the vertical, imitated in 2D:
    each landmark moves sideways by its depth in front of the jaw ends × sin(angle), and the
    rest frame is warped piecewise-affinely onto the moved mesh (as the actor itself is rendered)."""
    depth = np.zeros(68)  # inter-ocular distances in front of the jaw ends (points 0 and 16)
    depth[0:17] = 1.2 * np.sin(np.pi * np.arange(17) / 16)
    depth[17:27] = [0.8, 0.95, 1.05, 1.1, 1.15, 1.15, 1.1, 1.05, 0.95, 0.8]
    depth[27:36] = [1.2, 1.35, 1.5, 1.6, 1.3, 1.4, 1.45, 1.4, 1.3]
    depth[36:48] = [0.85, 1.0, 1.0, 1.05, 1.0, 1.0, 1.05, 1.0, 1.0, 0.85, 1.0, 1.0]
    depth[48:68] = 1.3
    _, rest, triangles = actor.mesh(np.zeros(7))  # rest: where the rest frame has each mesh point
    target = rest.copy()
    face = rest[:68]
    iod, angle = float(face_pose(face.astype(np.float64)).scale), math.radians(degrees)
    centre = face[:, 0].mean()
    target[:68, 0] = centre + (face[:, 0] - centre) * math.cos(angle) + depth * iod * math.sin(angle)
    frame = actor.frame_for(np.zeros(7))[0]
    out = frame.copy()
    for tri in triangles:  # each triangle warped within its bounding box
        src, dst = rest[tri].astype(np.float32), target[tri].astype(np.float32)
        x0, y0 = np.maximum(np.floor(dst.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(dst.max(axis=0)).astype(int) + 1, out.shape[1::-1])
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((dst - (x0, y0)) * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        warped = cv2.warpAffine(frame, cv2.getAffineTransform(src, (dst - (x0, y0)).astype(np.float32)), (x1 - x0, y1 - y0),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out[y0:y1, x0:x1][mask > 0] = warped[mask > 0]
    return out


def test_a_turned_head_is_reported(actor_take, tmp_path):
    frames, wav, actor, _ = actor_take
    turned = _turned(actor, 35)
    path = _write(tmp_path / "turned.mp4", [turned] * 100, wav[:100 * 640])
    report, checks = _only(path)
    assert checks == {"face_turned"}, report.lines()
    assert report.recordings[0].frontal == 0.0
    slight = _write(tmp_path / "slight.mp4", [_turned(actor, 10)] * 100, wav[:100 * 640])
    assert _only(slight)[1] == set()


def test_portrait_video_is_not_a_problem(actor_take, tmp_path):
    """1080×1920 with the actor letterboxed across its width: prepare crops the face wherever it is."""
    frames, wav, _, _ = actor_take
    canvas = np.zeros((1920, 1080, 3), np.uint8)

    def letterboxed(frame):
        canvas[420:1500] = cv2.resize(frame, (1080, 1080), interpolation=cv2.INTER_LINEAR)
        return canvas.copy()

    path = _write(tmp_path / "portrait.mp4", (letterboxed(f) for f in frames[:75]), wav[:75 * 640])
    report, checks = _only(path)
    assert checks == set(), report.lines()
    assert report.recordings[0].face_px == pytest.approx(122 * 1080 / 384, rel=0.05)


def _av_write(path: Path, frames, wav, video_s: float, audio_s: float) -> Path:
    """An mp4 whose sound stops before its picture (media.write_video always makes them equal)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for k in range(round(video_s * 25)):
            container.mux(video.encode(av.VideoFrame.from_ndarray(frames[k], format="rgb24")))
        container.mux(video.encode(None))
        chunk = wav[:round(audio_s * 16000)][None, :].copy()
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.rate = 16000
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


def test_sound_shorter_than_picture_is_what_prepare_refuses(actor_take, tmp_path):
    from newsanchor.config import PrepareConfig
    from newsanchor.errors import MediaError
    from newsanchor.prepare import check_source

    frames, wav, _, _ = actor_take
    path = _av_write(tmp_path / "short_sound.mp4", frames, wav, video_s=6.0, audio_s=4.0)
    with pytest.raises(MediaError, match="audio much shorter than video"):
        check_source(path, PrepareConfig())
    report, checks = _only(path)
    assert checks == {"audio_shorter_than_video"}, report.lines()


def test_a_clip_too_short_for_prepare(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    path = _write(tmp_path / "blink.mp4", frames[:8], wav[:8 * 640])
    report, checks = _only(path)
    assert checks == {"too_short"}, report.lines()


def test_unreadable_files_are_reported_and_the_rest_still_checked(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    good = _write(tmp_path / "good.mp4", frames, wav)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all\n" * 20)
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad = [tmp_path / name for name in ("empty.mp4", "notes.mp4", "cut.mp4", "missing.mp4")]
    report = check_recordings([bad[0], good, *bad[1:]], FEW_SECONDS)
    for path in bad:
        (problem,) = [p for p in report.problems if p.path == path]
        assert problem.check == "unreadable" and problem.message.startswith(f"{path}: cannot be read (")
    assert _checks(report, good) == set() and report.recordings[1].error is None
    assert [r.path for r in report.recordings] == [bad[0], good, *bad[1:]]
    errors = {r.path.name: r.error for r in report.recordings}
    assert errors == {"empty.mp4": "empty file", "good.mp4": None, "notes.mp4": "not a media file",
                      "cut.mp4": errors["cut.mp4"], "missing.mp4": "no such file"}
    assert errors["cut.mp4"].startswith("truncated")
    assert report.lines() == [p.message for p in report.problems] and not report.ok


def test_a_second_small_face_in_the_background_is_not_several_faces(actor_take, tmp_path):
    frames, wav, _, _ = actor_take
    both = frames[:100].copy()
    thumb = cv2.resize(frames[0], None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)  # a face ~43 px
    both[:, :thumb.shape[0], -thumb.shape[1]:] = thumb
    path = _write(tmp_path / "poster.mp4", both, wav[:100 * 640])
    assert _only(path)[1] == set()


# --- real recordings (../shared) ---------------------------------------------------------------------

def test_grid_clips_pass_at_256_and_are_too_small_for_512(shared_data):
    clips = sorted((shared_data / "grid_s1").glob("*.mp4"))[:3]
    report = check_recordings(clips)
    assert {p.check for p in report.problems} <= {"speech_too_short", "no_quiet_stretch"}, report.lines()
    for s in report.recordings:
        assert s.face_found == 1.0 and 100 < s.face_px < 120 and 1.0 < s.crop_upscale < 1.25
        assert s.frontal == 1.0 and s.several_faces == 0.0 and s.face_luma > 100 and s.clipped < 0.01
    large = check_recordings(clips[:1], RecordingRequirements(crop_size=512))
    assert _checks(large, clips[0]) == {"face_too_small"}


def test_obama_address_passes_every_recording_check(shared_data):
    path = shared_data / "clips" / "obama_address_1.mp4"
    report = check_recordings([path])
    assert _checks(report, path) == set(), report.lines()
    s = report.recordings[0]
    assert s.fps == pytest.approx(30) and s.face_found == 1.0 and 10 < s.speech_s < 20


@pytest.mark.slow
def test_other_real_clips_pass_every_recording_check(shared_data):
    clips = [shared_data / "clips" / name for name in ("hdtf_aoc.mp4", "studio_suit_wide.mp4", "mead_m030_1080p.mp4",
                                                        "office_map.mp4", "presenter_blue.mp4")]
    turning = shared_data / "clips" / "hdtf_katiehill.mp4"  # turns ~25° away for about 2 of its 8 s
    report = check_recordings([*clips, turning])
    assert not [p for p in report.problems if p.path in clips], report.lines()
    by_name = {s.path.name: s for s in report.recordings}
    assert 0.7 < by_name[turning.name].frontal < 0.95
    assert by_name["studio_suit_wide.mp4"].face_px > 150  # "small face" for its 700² frame, yet a 450 px crop
    assert by_name["mead_m030_1080p.mp4"].crop_upscale < 0.5


def test_anchor_check_command_reports_every_problem_in_lines_and_exits_non_zero(actor_take, tmp_path):
    import json

    from typer.testing import CliRunner

    from newsanchor.cli import app

    frames, wav, _, _ = actor_take
    good = _write(tmp_path / "take.mp4", frames, wav)
    dark = _write(tmp_path / "dark.mp4", (frames * 0.15).astype(np.uint8), wav)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(app, ["anchor", "check", str(good), str(dark), str(broken), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith(f"{dark}: ") and "too dark" in line for line in lines)
    assert any(line.startswith(f"{broken}: cannot be read") for line in lines)
    assert any("of speech; an anchor needs at least 120 s" in line for line in lines)
    assert not any(line.startswith(f"{good}: ") for line in lines)
    as_json = CliRunner().invoke(app, ["anchor", "check", str(good), "--json", "-q"])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and not report["ok"] and [p["check"] for p in report["problems"]] == ["speech_too_short"]
    assert report["recordings"][0]["path"] == str(good) and report["recordings"][0]["face_found"] == 1.0
    assert sorted(tmp_path.iterdir()) == before  # nothing written
    refused = CliRunner().invoke(app, ["anchor", "check", str(good), "--size", "300"])
    assert refused.exit_code == 1 and "--size 300" in refused.output
