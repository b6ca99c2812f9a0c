"""`newsanchor prepare`: bad inputs, and the dataset it writes from real recordings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor import media
from newsanchor.cli import app
from newsanchor.dataset import PreparedDataset

GRID = ["bbaf2n", "bbaf3s", "bbaf4p", "bbaf5a"]


def run_cli(*args: str | os.PathLike) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _frames(n: int, size=(96, 128)):
    for k in range(n):
        yield np.full((*size, 3), 40 + k % 50, np.uint8)


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _write_wav(path: Path, seconds: float) -> None:
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((_tone(seconds) * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _write_short_audio_video(path: Path, video_s: float, audio_s: float) -> None:
    """An mp4 whose audio track really is shorter than its video (write_video would pad it)."""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for k, arr in enumerate(_frames(int(video_s * 25))):
            picture = av.VideoFrame.from_ndarray(arr, format="rgb24")
            picture.pts, picture.time_base = k, Fraction(1, 25)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        samples = _tone(audio_s)
        for start in range(0, len(samples), 1024):
            chunk = samples[start:start + 1024][None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.rate, frame.pts = 16000, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))


def make_bad_input(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.mp4"
    if kind == "not_media":
        path.write_text("this is a news script, not a recording\n" * 20)
    elif kind == "empty":
        path.touch()
    elif kind == "truncated":
        media.write_video(path, _frames(75), 25, audio=_tone(3.0))
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "no_video":
        path = folder / "no_video.wav"
        _write_wav(path, 2.0)
    elif kind == "no_audio":
        media.write_video(path, _frames(50), 25)
    elif kind == "short_audio":
        _write_short_audio_video(path, video_s=3.0, audio_s=1.0)
    elif kind == "no_face":
        media.write_video(path, _frames(50), 25, audio=_tone(2.0))
    elif kind == "missing":
        path = folder / "missing.mp4"
    else:
        raise ValueError(kind)
    return path


BAD_INPUTS = {
    "not_media": "not a media file",
    "empty": "empty file",
    "truncated": "truncated",
    "no_video": "no video stream",
    "no_audio": "no audio stream",
    "short_audio": "audio much shorter than video",
    "no_face": "no face found in any of 50 frames",
    "missing": "no such file",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_a_non_zero_exit_and_no_output(kind, tmp_path):
    source = make_bad_input(kind, tmp_path)
    out = tmp_path / "dataset"
    code, stdout, stderr = run_cli("prepare", source, "--out", out, "--quiet")
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(source) in lines[0] and BAD_INPUTS[kind] in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name] * source.exists()


def test_a_folder_without_videos_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no videos here")
    code, _, stderr = run_cli("prepare", tmp_path, "--out", tmp_path / "out")
    assert code != 0 and "folder has no video files" in stderr and not (tmp_path / "out").exists()


def test_an_unrelated_output_folder_is_never_written_into(tmp_path, shared_data):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    code, _, stderr = run_cli("prepare", shared_data / "grid_s1" / "bbaf2n.mp4", "--out", out, "--quiet")
    assert code != 0 and "not a newsanchor dataset" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_skip_bad_leaves_unusable_inputs_out_and_lists_them(tmp_path, shared_data):
    bad = make_bad_input("empty", tmp_path)
    out = tmp_path / "dataset"
    code, stdout, stderr = run_cli("prepare", shared_data / "grid_s1" / "bbaf2n.mp4", shared_data / "grid_s1" / "bbaf3s.mp4",
                                   bad, "--out", out, "--size", "256", "--skip-bad", "--json", "--quiet", "--workers", "1")
    assert code == 0, stderr
    assert "empty file" in stderr
    assert json.loads(stdout)["clips"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"] == [{"source": str(bad), "error": "empty file"}]


def test_prepare_real_clips_writes_a_consistent_dataset_and_resumes(tmp_path, shared_data):
    sources = [shared_data / "grid_s1" / f"{name}.mp4" for name in GRID[:2]]
    out = tmp_path / "grid"
    code, stdout, stderr = run_cli("prepare", *sources, "--out", out, "--size", "256", "--json", "--quiet", "--workers", "1")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["clips"] == 2 and summary["video_frames"] == 150 and summary["mfcc_frames"] == 600
    assert summary["face_found_ratio"] >= 0.95
    assert 0.9 <= summary["pca_explained_variance"] <= 1.0

    dataset = PreparedDataset(out)
    for clip in dataset.clips:
        arrays = dataset.arrays(clip["id"])
        frames = clip["frames"]
        assert arrays["landmarks"].shape == (frames, 68, 2) and arrays["mfcc"].shape == (4 * frames, 13)
        assert arrays["audio"].shape == (640 * frames,) and arrays["mouth"].shape == (frames, 20, 2)
        found = arrays["face_found"]
        inside = arrays["landmarks"][found]
        assert (inside > 0).all() and (inside < 256).all()
        edge_maps = list(dataset.edge_maps(clip["id"]))
        assert len(edge_maps) == frames and edge_maps[0].shape == (256, 256) and edge_maps[0].dtype == bool
        np.testing.assert_array_equal(dataset.edge_map(clip["id"], 10), edge_maps[10])
        assert 0.01 < edge_maps[10].mean() < 0.3
        crops = list(dataset.crops(clip["id"]))
        assert len(crops) == frames and crops[0].shape == (256, 256, 3)
        np.testing.assert_array_equal(dataset.crop_frames(clip["id"], [37])[0], crops[37])
        coeffs = dataset.mouth_features(clip["id"])
        assert coeffs.shape == (frames, 10) and np.isfinite(coeffs[found]).all()
        # the mouth opens and closes while speaking: the first component varies
        assert coeffs[found, 0].std() > 0.01
    assert set(os.listdir(out / "clips")) == {"bbaf2n", "bbaf3s"}

    # re-running resumes: finished clips are not prepared again
    stamp = {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*")}
    code, stdout2, _ = run_cli("prepare", *sources, "--out", out, "--size", "256", "--json", "--quiet")
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*")} == stamp
    assert {k: v for k, v in json.loads(stdout2).items() if k != "elapsed_s"} == {k: v for k, v in summary.items() if k != "elapsed_s"}

    # a different setting prepares the clips again
    code, stdout3, _ = run_cli("prepare", *sources, "--out", out, "--size", "128", "--json", "--quiet")
    assert code == 0 and PreparedDataset(out).size == 128
    assert PreparedDataset(out).edge_map("bbaf2n", 0).shape == (128, 128)


def test_interrupted_prepare_leaves_only_finished_clips_and_resumes(tmp_path, shared_data):
    sources = [str(shared_data / "grid_s1" / f"{name}.mp4") for name in GRID]
    out = tmp_path / "grid"
    command = [sys.executable, "-m", "newsanchor", "prepare", *sources, "--out", str(out), "--size", "256",
               "--workers", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        clips = out / "clips"
        if clips.is_dir() and any(not p.name.startswith(".") for p in clips.iterdir()) and any(p.name.startswith(".tmp-") for p in clips.iterdir()):
            break  # one clip finished and the next is half-way
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("preparation finished before it could be interrupted")
    assert process.returncode == 130 and "resume" in stderr
    left = sorted(p.name for p in (out / "clips").iterdir())
    assert left and all(not name.startswith(".") for name in left)  # no half-written clip
    assert all((out / "clips" / name / "clip.json").is_file() for name in left)
    assert not (out / "manifest.json").exists()

    code, stdout, stderr = run_cli("prepare", *sources, "--out", out, "--size", "256", "--json", "--quiet", "--workers", "1")
    assert code == 0, stderr
    assert json.loads(stdout)["clips"] == len(GRID)


@pytest.mark.slow
def test_prepare_news_clips_of_every_kind(tmp_path, shared_data):
    """1080p 29.97 fps, MPEG-4 part 2, 22.1 fps variable rate, small faces, 30 fps."""
    names = ["hdtf_aoc", "mead_m030_1080p", "studio_suit_wide", "presenter_blue", "obama_address_3"]
    sources = [shared_data / "clips" / f"{name}.mp4" for name in names]
    out = tmp_path / "news"
    code, stdout, stderr = run_cli("prepare", *sources, "--out", out, "--json", "--quiet")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    for clip in manifest["clips"]:
        info = media.probe(clip["source"])
        assert clip["frames"] == media.count_output_frames(info, 25)
        assert abs(clip["frames"] / 25 - info.video_duration_s) <= 1 / 25 + 1e-6
        assert clip["mfcc_frames"] == 4 * clip["frames"]
        assert clip["face_found_ratio"] >= 0.95, clip
    assert json.loads(stdout)["face_found_ratio"] >= 0.95


@pytest.mark.slow
def test_prepare_grid_pca_explains_most_mouth_variance(tmp_path, shared_data):
    sources = sorted((shared_data / "grid_s1").glob("*.mp4"))[::45]  # 20 clips across the sessions
    out = tmp_path / "grid"
    code, stdout, stderr = run_cli("prepare", *sources, "--out", out, "--size", "256", "--json", "--quiet")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["clips"] == 20 and summary["mfcc_frames"] == 4 * summary["video_frames"]
    assert summary["face_found_ratio"] >= 0.95
    assert summary["pca_explained_variance"] >= 0.9


def test_frames_without_a_face_are_flagged_not_fatal(tmp_path, shared_data):
    """A clip that opens on 20 blank frames (as some GRID clips open on grey ones)."""
    source = shared_data / "grid_s1" / "bbaf2n.mp4"
    speech = list(media.iter_video_frames(source))
    blank = [np.full_like(speech[0], 128) for _ in range(20)]
    clip = tmp_path / "late_face.mp4"
    media.write_video(clip, iter(blank + speech), 25, audio=media.read_audio(source, 16000), crf=12)
    out = tmp_path / "dataset"
    code, stdout, stderr = run_cli("prepare", clip, "--out", out, "--size", "256", "--json", "--quiet")
    assert code == 0, stderr
    arrays = PreparedDataset(out).arrays("late_face")
    found = arrays["face_found"]
    assert not found[:20].any() and found[25:].all()
    assert np.isnan(arrays["mouth"][~found]).all() and np.isnan(arrays["landmarks"][~found]).all()
    assert np.isfinite(arrays["mouth"][found]).all()
    assert json.loads(stdout)["face_found_ratio"] == pytest.approx(found.mean(), abs=1e-6)
