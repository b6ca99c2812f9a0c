"""A hostile corpus for the command line: inputs an attacker or a careless user gives `prepare` and
`synthesize`, each built here, each run through the real command.

Every refused input must give: a non-zero exit, exactly one line on stderr naming the input and
the problem, no traceback, nothing partial left behind and nothing that was there before lost
(the whole test folder is compared before and after). Inputs that are unusual but fine (other
sample rates, variable frame rate, unicode paths) must simply work. ``CORPUS`` lists every case,
so its size can be reported; the slow ones need the tiny anchor bundle of conftest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from newsanchor import media
from newsanchor.cli import app

GRID_CLIP = "grid_s1/bbaf2n.mp4"


# --- building the inputs ---------------------------------------------------------------------------

def _grey_frames(n: int, size=(96, 128)):
    for k in range(n):
        yield np.full((*size, 3), 40 + k % 50, np.uint8)


def _tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    """[channels, S] float32: a 220 Hz tone (a phase shift between channels)."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 220 * t + c) for c in range(channels)]).astype(np.float32)


def write_av(path: Path, frames: list[np.ndarray] | None, *, audio_rate: int = 16000, channels: int = 1,
             frame_ms: list[int] | None = None) -> Path:
    """An mp4 with H.264 video (``frame_ms``: each frame's duration, for a variable frame rate)
    and AAC audio as long as the video at ``audio_rate`` with ``channels`` (None frames: 2 s of
    audio only)."""
    durations = (frame_ms or [40] * len(frames)) if frames is not None else []
    with av.open(str(path), "w", format="mp4") as container:
        video = None
        if frames is not None:  # every stream is added before the first packet is written
            video = container.add_stream("libx264", rate=25)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt = "yuv420p"
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)  # milliseconds: any frame rate
        sound = container.add_stream("aac", rate=audio_rate)
        sound.layout = "stereo" if channels == 2 else "mono"
        if video is not None:
            pts = 0
            for frame, duration in zip(frames, durations):
                picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
                picture.pts, picture.time_base = pts, Fraction(1, 1000)
                container.mux(video.encode(picture))
                pts += duration
            container.mux(video.encode(None))
        samples = _tone(sum(durations) / 1000 if video is not None else 2.0, audio_rate, channels)
        for start in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, start:start + 1024].T.reshape(1, -1))  # interleaved
            piece = av.AudioFrame.from_ndarray(chunk, format="flt", layout=sound.layout.name)
            piece.rate, piece.pts = audio_rate, start
            container.mux(sound.encode(piece))
        container.mux(sound.encode(None))
    return path


def face_frames(shared_data: Path, n: int) -> list[np.ndarray]:
    frames = []
    for frame in media.iter_video_frames(shared_data / GRID_CLIP):
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


def empty_file(path: Path) -> Path:
    path.touch()
    return path


def named_pipe(path: Path) -> Path:
    """A FIFO: opening it for writing blocks, and renaming a finished file onto it replaces it."""
    os.mkfifo(path)
    return path


def silent_video(path: Path) -> Path:
    media.write_video(path, _grey_frames(50), 25)
    return path


def truncated_video(path: Path) -> Path:
    media.write_video(path, _grey_frames(75), 25, audio=_tone(3.0)[0])
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def one_frame_video(path: Path) -> Path:
    media.write_video(path, _grey_frames(1), 25, audio=_tone(0.04)[0])
    return path


def usable_looking_video(path: Path) -> Path:
    """Passes every check made before work (2 s, sound); no face, which only work would find."""
    media.write_video(path, _grey_frames(50), 25, audio=_tone(2.0)[0])
    return path


def fake_dataset(out: Path, *, fingerprint: str | None = None) -> Path:
    """A dataset folder as `prepare` leaves it, with one earlier clip "old" (its arrays are
    placeholders: the runs below must refuse or fail before they read them)."""
    from newsanchor.config import PrepareConfig
    from newsanchor.dataset import FORMAT, FORMAT_VERSION

    clip = out / "clips" / "old"
    clip.mkdir(parents=True)
    summary = {"id": "old", "source": str(out.parent / "old.mp4"), "sha256": "0" * 64,
               "config_fingerprint": fingerprint or PrepareConfig(size=64).fingerprint(), "frames": 50,
               "mfcc_frames": 200, "face_found_ratio": 1.0}
    (clip / "clip.json").write_text(json.dumps(summary))
    for name in ("arrays.npz", "edges.bin", "crops.mp4"):
        (clip / name).write_bytes(b"earlier work " * 100)
    (out / "manifest.json").write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                                   "clips": [summary], "skipped": []}))
    return out


def fake_bundle(root: Path, tamper: str) -> Path:
    """An anchor bundle's manifest and one listed file, then spoilt: ``tamper`` is "changed" (a
    byte of the file flipped), "escape" (the manifest lists a file outside the bundle) or "json"."""
    from newsanchor.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, MANIFEST
    from newsanchor.files import sha256_file

    root.mkdir()
    weights = root / "renderer.safetensors"
    weights.write_bytes(bytes(range(256)) * 4)
    files = {weights.name: sha256_file(weights)}
    if tamper == "escape":
        files["../outside.txt"] = "0" * 64
    manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "files": files}
    (root / MANIFEST).write_text("{not json" if tamper == "json" else json.dumps(manifest))
    if tamper == "changed":
        data = bytearray(weights.read_bytes())
        data[100] ^= 0xFF
        weights.write_bytes(bytes(data))
    return root


def folder_with(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def unwritable_folder(folder: Path) -> Path:
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# --- the corpus ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    """What one case runs: the arguments, the input the error must name, and a phrase of the problem."""

    args: list[str]
    named: str
    problem: str


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Hostile]  # builds the inputs in an empty folder
    slow: bool = False  # needs the tiny anchor bundle (``bundle`` replaces ANCHOR in args)
    needs_non_root: bool = False  # permission bits do not stop root


def _prepare(inputs: list[Path | str], out: Path | str, named, problem: str, *extra: str) -> Hostile:
    return Hostile(["prepare", *map(str, inputs), "--out", str(out), "--quiet", "--size", "64", *extra], str(named), problem)


def _synthesize(folder: Path, named, problem: str, *extra: str, out: Path | str | None = None,
                anchor: Path | str = "ANCHOR") -> Hostile:
    """``ANCHOR`` (as the anchor or the input named) becomes the tiny real bundle in slow cases and
    a missing folder in fast ones."""
    out = folder / "news.mp4" if out is None else out
    return Hostile(["synthesize", "--anchor", str(anchor), "--out", str(out), "--quiet", *extra], str(named), problem)


def _script_file(folder: Path, content: bytes, name: str = "script.txt") -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


ANCHOR_MISSING = "no-such-anchor"  # fast synthesize cases: a check that comes before the bundle loads names its input first

CORPUS: list[Case] = [
    # prepare: recordings
    Case("prepare-zero-byte", lambda d: _prepare([empty_file(d / "empty.mp4")], d / "ds",
                                                  d / "empty.mp4", "empty file")),
    Case("prepare-truncated", lambda d: _prepare([truncated_video(d / "cut.mp4")], d / "ds", d / "cut.mp4", "truncated")),
    Case("prepare-text-as-mp4", lambda d: _prepare([_script_file(d, b"Good evening.\n" * 50, "news.mp4")], d / "ds",
                                                    d / "news.mp4", "not a media file")),
    Case("prepare-no-audio", lambda d: _prepare([silent_video(d / "mute.mp4")],
                                                 d / "ds", d / "mute.mp4", "no audio stream")),
    Case("prepare-audio-only", lambda d: _prepare([write_av(d / "voice.mp4", None)], d / "ds", d / "voice.mp4",
                                                   "no video stream")),
    Case("prepare-no-face", lambda d: _prepare([usable_looking_video(d / "wall.mp4")], d / "ds", d / "wall.mp4",
                                                "no face found in any of 50 frames")),
    Case("prepare-one-frame", lambda d: _prepare([one_frame_video(d / "oneframe.mp4")], d / "ds", d / "oneframe.mp4",
                                                  "too few frames: 1")),
    Case("prepare-unicode-path-with-spaces", lambda d: _prepare(
        [truncated_video(folder_with(d / "Nachrichten – späť", {}) / "clip ☂ 01.mp4")], d / "ds",
        d / "Nachrichten – späť" / "clip ☂ 01.mp4", "truncated")),
    Case("prepare-folder-without-videos", lambda d: _prepare([folder_with(d / "notes", {"a.txt": b"x"})], d / "ds",
                                                              d / "notes", "no video files")),
    Case("prepare-missing-input", lambda d: _prepare([d / "missing.mp4"], d / "ds", d / "missing.mp4", "no such file")),
    # prepare: where the dataset goes
    Case("prepare-out-under-proc", lambda d: _prepare([usable_looking_video(d / "a.mp4")], "/proc/self/dataset",
                                                       "/proc/self/dataset", "cannot write")),
    Case("prepare-out-in-missing-proc-folder", lambda d: _prepare([usable_looking_video(d / "a.mp4")], "/proc/nope/dataset",
                                                                   "/proc/nope/dataset", "cannot write")),
    Case("prepare-out-below-a-file", lambda d: _prepare([usable_looking_video(d / "a.mp4")], d / "a.mp4" / "dataset",
                                                         d / "a.mp4" / "dataset", "is not a folder")),
    Case("prepare-out-is-a-file", lambda d: _prepare([usable_looking_video(d / "a.mp4")], d / "a.mp4", d / "a.mp4",
                                                      "exists and is not a folder")),
    Case("prepare-out-unrelated-folder", lambda d: _prepare(
        [usable_looking_video(d / "a.mp4")], folder_with(d / "photos", {"cat.jpg": b"\xff\xd8"}), d / "photos",
        "not a newsanchor dataset")),
    Case("prepare-out-foreign-manifest", lambda d: _prepare(
        [usable_looking_video(d / "a.mp4")], folder_with(d / "site", {"manifest.json": b'{"name": "my web app"}'}),
        d / "site", "not a newsanchor dataset")),
    Case("prepare-out-unwritable-folder", lambda d: _prepare([usable_looking_video(d / "a.mp4")],
                                                              unwritable_folder(d / "locked") / "dataset",
                                                              d / "locked" / "dataset", "permission denied"),
         needs_non_root=True),
    # prepare: re-runs on a dataset that already holds clips
    Case("prepare-rerun-other-settings", lambda d: _prepare(
        [usable_looking_video(d / "new.mp4")], fake_dataset(d / "ds", fingerprint="other"), d / "ds",
        "earlier clip old was prepared with other settings")),
    Case("prepare-rerun-one-frame", lambda d: _prepare([one_frame_video(d / "oneframe.mp4")], fake_dataset(d / "ds"),
                                                        d / "oneframe.mp4", "too few frames")),
    Case("prepare-empty-out-input-fails-midway", lambda d: _prepare([usable_looking_video(d / "wall.mp4")],
                                                                     folder_with(d / "ds", {}), d / "wall.mp4", "no face found")),
    Case("prepare-rerun-input-fails-midway", lambda d: _prepare([usable_looking_video(d / "wall.mp4")], fake_dataset(d / "ds"),
                                                                 d / "wall.mp4", "no face found")),
    # synthesize: outputs (checked before the bundle loads, so ANCHOR is missing here)
    Case("synthesize-out-in-missing-folder", lambda d: _synthesize(d, d / "nope" / "news.mp4", "does not exist",
                                                                   "--text", "Hello.", out=d / "nope" / "news.mp4")),
    Case("synthesize-out-under-proc", lambda d: _synthesize(d, "/proc/self/news.mp4", "cannot write", "--text", "Hello.",
                                                            out="/proc/self/news.mp4")),
    Case("synthesize-out-in-missing-proc-folder", lambda d: _synthesize(d, "/proc/nope/news.mp4", "does not exist",
                                                                        "--text", "Hello.", out="/proc/nope/news.mp4")),
    Case("synthesize-out-is-a-folder", lambda d: _synthesize(d, d / "news.mp4", "is a folder", "--text", "Hello.",
                                                             out=folder_with(d / "news.mp4", {}))),
    Case("synthesize-out-is-a-fifo", lambda d: _synthesize(d, d / "news.mp4", "not a regular file", "--text", "Hello.",
                                                           out=named_pipe(d / "news.mp4"))),
    Case("synthesize-out-not-mp4", lambda d: _synthesize(d, d / "news.avi", "must end in .mp4", "--text", "Hello.",
                                                         out=d / "news.avi")),
    Case("synthesize-captions-under-proc", lambda d: _synthesize(d, "/proc/self/news.vtt", "cannot write", "--text", "Hello.",
                                                                 "--captions", "/proc/self/news.vtt")),
    Case("synthesize-out-unwritable-folder", lambda d: _synthesize(d, unwritable_folder(d / "locked") / "news.mp4",
                                                                   "permission denied", "--text", "Hello.",
                                                                   out=d / "locked" / "news.mp4"), needs_non_root=True),
    # synthesize: scripts
    Case("synthesize-script-bad-utf8", lambda d: _synthesize(d, d / "script.txt", "cannot read the script", "--text-file",
                                                             str(_script_file(d, b"Good evening \xff\xfe\xc3(.")))),
    Case("synthesize-script-100k-characters", lambda d: _synthesize(
        d, d / "bulletin.txt", "100,000 characters", "--text-file",
        str(_script_file(d, ("The council met. " * 6000)[:100_000].encode(), "bulletin.txt")))),
    Case("synthesize-script-missing", lambda d: _synthesize(d, d / "nope.txt", "cannot read the script", "--text-file",
                                                            str(d / "nope.txt"))),
    Case("synthesize-script-is-a-folder", lambda d: _synthesize(d, d, "cannot read the script", "--text-file", str(d))),
    # synthesize: bundles (tampered ones are refused before any model loads)
    Case("synthesize-bundle-missing", lambda d: _synthesize(d, "ANCHOR", "not an anchor bundle", "--text", "Hello.")),
    Case("synthesize-bundle-byte-changed", lambda d: _synthesize(
        d, d / "anchor" / "renderer.safetensors", "checksum mismatch", "--text", "Hello.",
        anchor=fake_bundle(d / "anchor", "changed"))),
    Case("synthesize-bundle-file-outside", lambda d: _synthesize(
        d, d / "anchor" / "anchor.json", "leaves the bundle", "--text", "Hello.", anchor=fake_bundle(d / "anchor", "escape"))),
    Case("synthesize-bundle-manifest-not-json", lambda d: _synthesize(
        d, d / "anchor" / "anchor.json", "unreadable", "--text", "Hello.", anchor=fake_bundle(d / "anchor", "json"))),
    # synthesize with a real (tiny) bundle: what only the voice or the audio reader can refuse
    Case("synthesize-script-control-characters-only", lambda d: _synthesize(d, "--text", "nothing to speak", "--text",
                                                                            "\x00\x01\x1b\x7f\x08\u200b\ufeff\u202e"), slow=True),
    Case("synthesize-script-unreadable-letters", lambda d: _synthesize(
        d, d / "script.txt", "line 2, column 5", "--text-file",
        str(_script_file(d, "Good evening.\nThe 今天的新闻.\n".encode()))), slow=True),
    Case("synthesize-audio-zero-byte", lambda d: _synthesize(d, empty_file(d / "speech.wav"), "empty file",
                                                             "--audio", str(d / "speech.wav")), slow=True),
    Case("synthesize-audio-text", lambda d: _synthesize(d, d / "speech.wav", "not a media file", "--audio",
                                                        str(_script_file(d, b"Good evening.\n" * 50, "speech.wav"))),
         slow=True),
    Case("synthesize-audio-truncated", lambda d: _synthesize(d, d / "cut.mp4", "truncated", "--audio",
                                                             str(truncated_video(d / "cut.mp4"))), slow=True),
    Case("synthesize-audio-video-without-sound", lambda d: _synthesize(
        d, d / "mute.mp4", "no audio stream", "--audio",
        str(silent_video(d / "mute.mp4"))), slow=True),
]
# (Re-running prepare with other inputs that are fine, other sample rates, variable frame rate and
# unicode paths that work are the accepted cases further down.)


def _snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: folders by name, files also by size and modification time (a
    folder's own time changes whenever an entry comes and goes, as a write test's does)."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            seen[str(Path(root, name).relative_to(folder))] = ("folder",)
        for name in files:
            st = Path(root, name).lstat()
            seen[str(Path(root, name).relative_to(folder))] = (st.st_mode >> 12, st.st_size, st.st_mtime_ns)
    return seen


def run_cli(args: list[str]):
    result = CliRunner().invoke(app, args)
    crashed = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, crashed


def _check_refused(case: Case, folder: Path, anchor: str) -> None:
    hostile = case.build(folder)
    args = [anchor if a == "ANCHOR" else a for a in hostile.args]
    named = anchor if hostile.named == "ANCHOR" else hostile.named
    before = _snapshot(folder)
    code, stdout, stderr, crashed = run_cli(args)
    assert crashed is None, f"{case.name}: {crashed!r}"
    assert code != 0, f"{case.name}: exit 0\n{stderr}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"{case.name}: {len(lines)} lines on stderr:\n{stderr}"
    assert lines[0].startswith("newsanchor: ") and "Traceback" not in stderr + stdout
    assert named in lines[0], f"{case.name}: {named!r} not named in {lines[0]!r}"
    assert hostile.problem in lines[0], f"{case.name}: {hostile.problem!r} not in {lines[0]!r}"
    after = _snapshot(folder)
    assert after == before, f"{case.name}: left {sorted(set(after) - set(before))}, lost {sorted(set(before) - set(after))}, " \
                            f"changed {sorted(k for k in set(after) & set(before) if after[k] != before[k])}"


@pytest.mark.parametrize("case", [c for c in CORPUS if not c.slow], ids=lambda c: c.name)
def test_a_hostile_input_is_refused_in_one_line_and_changes_nothing(case, tmp_path):
    if case.needs_non_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "case"
    folder.mkdir()
    try:
        _check_refused(case, folder, str(folder / ANCHOR_MISSING))
    finally:
        for locked in folder.glob("locked"):
            locked.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CORPUS if c.slow], ids=lambda c: c.name)
def test_a_hostile_input_to_a_real_anchor_is_refused_in_one_line(case, grid_anchor_bundle, tmp_path, one_torch_thread):
    folder = tmp_path / "case"
    folder.mkdir()
    _check_refused(case, folder, str(grid_anchor_bundle))


def test_the_corpus_names_each_case_once():
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names))


# --- inputs that are unusual but fine ----------------------------------------------------------------

ACCEPTED = {
    "audio-8khz-mono": {"audio_rate": 8000, "channels": 1},
    "audio-48khz-stereo": {"audio_rate": 48000, "channels": 2},
    "variable-frame-rate": {"frame_ms": [30, 50] * 15},
}


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_unusual_but_valid_recordings_are_prepared(kind, tmp_path, shared_data):
    folder = tmp_path / "Aufnahmen – späť ☂"  # and the path has spaces and non-ASCII letters
    folder.mkdir()
    source = write_av(folder / f"{kind} 01.mp4", face_frames(shared_data, 30), **ACCEPTED[kind])
    out = tmp_path / "data set ü"
    code, stdout, stderr, crashed = run_cli(["prepare", str(source), "--out", str(out), "--size", "64", "--json", "--quiet"])
    assert crashed is None and code == 0, stderr
    info = media.probe(source)
    summary = json.loads(stdout)
    assert summary["video_frames"] == media.count_output_frames(info, 25) and summary["mfcc_frames"] == 4 * summary["video_frames"]
    assert summary["face_found_ratio"] > 0.9
    arrays = np.load(out / "clips" / f"{kind}_01" / "arrays.npz")
    assert arrays["audio"].shape == (640 * summary["video_frames"],) and np.abs(arrays["audio"]).max() > 3000  # the tone is there
    assert not [p for p in out.rglob(".*")]


# --- re-running prepare on a dataset -----------------------------------------------------------------

@pytest.fixture(scope="module")
def grid_sources(shared_data, tmp_path_factory) -> list[Path]:
    """Three short real recordings (30 frames of three GRID clips, with their sound)."""
    folder = tmp_path_factory.mktemp("grid_sources")
    sources = []
    for name in ("bbaf2n", "bbaf3s", "bbaf4p"):
        source = shared_data / "grid_s1" / f"{name}.mp4"
        frames = list(media.iter_video_frames(source))[:30]
        path = folder / f"{name}.mp4"
        media.write_video(path, frames, 25, audio=media.read_audio(source, 16000)[: 30 * 640], crf=12)
        sources.append(path)
    return sources


def _prepare_ok(*args) -> tuple[dict, str]:
    code, stdout, stderr, crashed = run_cli(["prepare", *map(str, args), "--size", "64", "--json", "--quiet", "--workers", "1"])
    assert crashed is None and code == 0, stderr
    return json.loads(stdout), stderr


def _clip_files(out: Path, clip: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "clips" / clip).iterdir()}


def test_rerun_with_other_inputs_adds_clips_keeps_the_old_and_refits_over_all(grid_sources, tmp_path):
    out = tmp_path / "ds"
    first, _ = _prepare_ok(grid_sources[0], "--out", out)
    kept = _clip_files(out, "bbaf2n")
    second, stderr = _prepare_ok(*grid_sources[1:], "--out", out)
    assert "kept 1 earlier clip(s)" in stderr and "bbaf2n" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["id"] for c in manifest["clips"]] == ["bbaf2n", "bbaf3s", "bbaf4p"]  # earlier first: splits stay put
    assert _clip_files(out, "bbaf2n") == kept  # not prepared again
    assert second["clips"] == 3 and second["video_frames"] == 90 == manifest["mouth_pca"]["fitted_on_frames"]
    clip_bytes = sum(p.stat().st_size for p in (out / "clips").rglob("*") if p.is_file())
    assert manifest["totals"]["bytes"] == clip_bytes
    # the PCA and the MFCC statistics are those of all three clips, not of the last run's two
    from newsanchor.dataset import PreparedDataset
    from newsanchor.features.audio import mfcc_stats
    from newsanchor.features.mouth import fit_mouth_pca

    dataset = PreparedDataset(out)
    arrays = [dataset.arrays(c["id"]) for c in dataset.clips]
    refit = fit_mouth_pca(np.concatenate([a["mouth"][a["face_found"]] for a in arrays]), 10)
    np.testing.assert_allclose(dataset.mouth_pca.mean, refit.mean, atol=1e-6)
    np.testing.assert_allclose(dataset.mfcc_stats.mean, mfcc_stats([a["mfcc"] for a in arrays]).mean, atol=1e-5)


def test_rerun_with_replace_names_each_clip_it_removes(grid_sources, tmp_path):
    out = tmp_path / "ds"
    _prepare_ok(*grid_sources[:2], "--out", out)
    summary, stderr = _prepare_ok(grid_sources[2], "--out", out, "--replace")
    removed = [line for line in stderr.splitlines() if line.startswith("removing")]
    assert len(removed) == 2 and "bbaf2n" in removed[0] and "bbaf3s" in removed[1] and "--replace" in removed[0]
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["bbaf4p"] and summary["clips"] == 1


def test_a_new_recording_with_an_old_ones_name_does_not_overwrite_it(grid_sources, tmp_path):
    out = tmp_path / "ds"
    _prepare_ok(grid_sources[0], "--out", out)
    other = tmp_path / "elsewhere" / "bbaf2n.mp4"  # same file name, another recording
    other.parent.mkdir()
    other.write_bytes(grid_sources[1].read_bytes())
    summary, _ = _prepare_ok(other, "--out", out)
    ids = [c["id"] for c in json.loads((out / "manifest.json").read_text())["clips"]]
    assert summary["clips"] == 2 and ids[0] == "bbaf2n" and ids[1].startswith("bbaf2n-")


def test_the_dataset_being_written_is_not_read_as_an_input(grid_sources, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "bbaf2n.mp4").write_bytes(grid_sources[0].read_bytes())
    _prepare_ok(folder, "--out", folder / "dataset")
    summary, _ = _prepare_ok(folder, "--out", folder / "dataset")  # its clips/*/crops.mp4 are mp4s too
    assert summary["clips"] == 1


# --- temporaries and interruptions -------------------------------------------------------------------

_SLOW_WRITER = """
import sys, time
import numpy as np
from newsanchor import media

def frames():
    for k in range(10_000):
        yield np.full((64, 64, 3), k % 255, np.uint8)
        if k == 150:  # past x264's look-ahead: the file has begun
            print("writing", flush=True)
        if k > 150:
            time.sleep(0.05)

media.write_video(sys.argv[1], frames(), 25)
"""


def test_a_killed_writers_temporary_is_swept_by_the_next_run(tmp_path):
    out = tmp_path / "news.mp4"
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    abandoned = tmp_path / f".news.mp4.tmp-{writer.pid}.mp4"
    assert abandoned.is_file() and not out.exists()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        in_use = tmp_path / f".news.mp4.tmp-{alive.pid}.mp4"  # another run writing the same name right now
        in_use.write_bytes(b"busy")
        unrelated = tmp_path / f".other.mp4.tmp-{writer.pid}.mp4"
        unrelated.write_bytes(b"not ours")
        code, _, stderr, crashed = run_cli(["synthesize", "--anchor", str(tmp_path / "missing"), "--out", str(out),
                                            "--text", "Hello.", "-q"])
        assert crashed is None and code != 0 and "missing" in stderr  # the run itself fails later, for its own reason
        assert not abandoned.exists() and in_use.exists() and unrelated.exists()
    finally:
        alive.kill()
        alive.wait()


def test_write_video_sweeps_what_a_killed_writer_of_the_same_file_left(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f".clip.mp4.tmp-{int(dead.stdout)}.mp4"
    abandoned.write_bytes(b"half a video")
    media.write_video(tmp_path / "clip.mp4", _grey_frames(3), 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("resumable, says_resume", [(True, True), (False, False)])
def test_ctrl_c_promises_a_resume_only_where_the_command_resumes(resumable, says_resume, capsys):
    import typer

    from newsanchor.cli.common import user_errors

    with pytest.raises(typer.Exit) as stopped:
        with user_errors(resumable=resumable):
            raise KeyboardInterrupt
    message = capsys.readouterr().err
    assert stopped.value.exit_code == 130 and message.startswith("newsanchor: interrupted")
    assert ("resume" in message) is says_resume


@pytest.mark.parametrize("out", ["missing/news.mp4", "/proc/self/news.mp4", "news.avi"])
def test_synthesize_checks_its_output_before_loading_anything(out, tmp_path, monkeypatch):
    import newsanchor.bundle
    import newsanchor.speech

    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(newsanchor.bundle, "load_bundle", must_not_run)
    monkeypatch.setattr(newsanchor.speech, "synthesize_speech", must_not_run)
    out = out if out.startswith("/") else str(tmp_path / out)
    code, _, stderr, crashed = run_cli(["synthesize", "--anchor", str(tmp_path), "--text", "Hello.", "--out", out, "-q"])
    assert crashed is None and code == 1 and stderr.startswith(f"newsanchor: {out}: ")


# --- properties of the script checks -------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])


def speakable(text: str) -> bool:
    from newsanchor.speech import ScriptError, check_script, voice_letter_scripts

    try:
        check_script(text, voice_letter_scripts())
    except ScriptError:
        return False
    return True


@PROPERTY_SETTINGS
@given(content=st.one_of(st.binary(max_size=80), st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_script_file_gives_one_line_naming_what_stopped_it(content, tmp_path):
    """Before the bundle loads, a script file is refused by name if it is not UTF-8, too long, or
    has nothing the voice can read; otherwise the (missing) anchor is what the one line names."""
    script = tmp_path / "script.txt"
    script.write_bytes(content)
    anchor = tmp_path / "no-anchor"
    code, stdout, stderr, crashed = run_cli(["synthesize", "--anchor", str(anchor), "--text-file", str(script),
                                             "--out", str(tmp_path / "news.mp4"), "--max-chars", "40", "-q"])
    assert crashed is None and code == 1 and "Traceback" not in stderr + stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("newsanchor: ")
    try:
        text = content.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as a text file reads
    except UnicodeDecodeError:
        text = None
    if text is None:
        assert f"{script}: cannot read the script" in lines[0]
    elif len(text) > 40:
        assert f"{script}: the script has {len(text):,} characters" in lines[0]
    elif not speakable(text):  # nothing to say, or letters the voice cannot read: refused by name too
        assert f"{script}: " in lines[0]
    else:
        assert str(anchor) in lines[0]
    assert not (tmp_path / "news.mp4").exists()


@PROPERTY_SETTINGS
@given(text=st.text(max_size=200))
def test_check_script_returns_sentences_or_says_in_one_line_where_the_letters_are(text):
    from newsanchor.speech import ScriptError, check_script

    try:
        sentences = check_script(text, ("LATIN",))
    except ScriptError as err:
        message = str(err)
        assert "\n" not in message and "\r" not in message
        return
    assert sentences and all(any(ch.isalnum() for ch in s) for s in sentences)
    assert all(not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN") for s in sentences for ch in s)
