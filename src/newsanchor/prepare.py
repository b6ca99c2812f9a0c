"""Recordings → dataset directory (paper §4.1–4.2). The format is described in docs/DATASET.md.

Each clip is prepared into ``clips/.tmp-<id>`` and renamed to ``clips/<id>`` when complete, so an
interrupted run leaves only finished clips behind and a re-run resumes where it stopped. A re-run
with other inputs adds their clips to those already there; only ``replace`` removes earlier clips.
The dataset-wide parts (mouth PCA, MFCC statistics, manifest) are computed last, over every clip
the dataset then holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import media
from .config import PrepareConfig
from .errors import MediaError, NewsanchorError, NoFaceError
from .features.audio import mfcc
from .features.crop import CropBox, canny_edges, choose_crop_box, crop_frame, to_crop_coords
from .features.face import smooth_landmarks, track_landmarks
from .features.mouth import normalise_mouth
from .timing import SAMPLE_RATE, SAMPLES_PER_FRAME
from .prepare_rerun import check_earlier_clips, check_output_dir, claim_clip_ids, earlier_clips, earlier_skips, names_of
from .dataset import (
    CLIP_ARRAYS, CLIP_CROPS, CLIP_EDGES, CLIP_INFO, CLIPS_DIR, EdgeWriter, write_dataset_summary,
)

MEDIA_SUFFIXES = {".mp4", ".mov", ".m4v", ".mpg", ".mpeg", ".mkv", ".webm", ".avi"}

Progress = Callable[[float], None]


@dataclass(frozen=True)
class ClipSource:
    id: str
    path: Path
    info: media.MediaInfo
    frames: int  # at the dataset's 25 fps


def collect_inputs(inputs: Sequence[str | Path], exclude: Path | None = None) -> list[Path]:
    """Media files named directly or found (recursively, sorted) in the named folders, leaving out
    those under ``exclude`` (the dataset being written: its crops are mp4s too)."""
    found: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for item in map(Path, inputs):
        if item.is_dir():
            try:
                files = sorted(p for p in item.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file()
                               and not (skip is not None and p.resolve().is_relative_to(skip)))
            except OSError as err:
                raise MediaError(item, f"cannot read folder ({err.strerror})") from None
            if not files:
                raise MediaError(item, f"folder has no video files ({', '.join(sorted(MEDIA_SUFFIXES))})")
            found.extend(files)
        elif item.exists() or item.is_symlink():
            found.append(item)
        else:
            raise MediaError(item, "no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def clip_ids(paths: Sequence[Path]) -> list[str]:
    """Short, filesystem-safe, unique ids from file names (a hash suffix where names collide)."""
    stems = [re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem).strip("._") or "clip" for p in paths]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    return [
        stem if counts[stem] == 1 else f"{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"
        for stem, p in zip(stems, paths)
    ]


def frames_for_mouth_pca(config: PrepareConfig) -> int:
    """Fewest face frames the mouth PCA can be fitted on; also the fewest frames a clip may have,
    so that a clip alone can make a dataset."""
    return config.pca_components + 1


def check_source(path: Path, config: PrepareConfig) -> tuple[media.MediaInfo, int]:
    """Everything that can be known about a source before decoding it: its description and its
    number of frames at the dataset's rate. Raises MediaError."""
    info = media.probe(path)
    shortfall = info.video_duration_s - info.audio_duration_s
    if shortfall > config.max_audio_shortfall_s:
        raise MediaError(path, f"audio much shorter than video ({info.audio_duration_s:.2f} s of {info.video_duration_s:.2f} s)")
    frames = media.count_output_frames(info, config.fps)
    needed = frames_for_mouth_pca(config)
    if frames < needed:
        raise MediaError(path, f"too few frames: {frames} at {config.fps} fps ({info.video_duration_s:.2f} s); "
                               f"a clip needs at least {needed} ({needed / config.fps:.2f} s)")
    return info, frames


def _track_clip(source: ClipSource, config: PrepareConfig, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1: landmarks [T, 68, 2] float32 (source pixels, NaN where no face) and found [T] bool."""
    frames = media.iter_video_frames(source.path, config.fps, info=source.info)
    landmarks = track_landmarks(frames, source.frames, config.tracker, on_frame=lambda: progress(0.5))
    found = ~np.isnan(landmarks[:, 0, 0])
    if not found.any():
        raise NoFaceError(source.path, f"no face found in any of {source.frames} frames")
    return landmarks, found


def _write_crops_and_edges(source: ClipSource, box: CropBox, wav: np.ndarray, config: PrepareConfig,
                           work: Path, progress: Progress) -> np.ndarray:
    """Pass 2: crops.mp4 [T frames of size², with the clip's audio] and edges.bin, streamed frame
    by frame. Returns the edge offsets [T + 1] int64."""
    edges = EdgeWriter(work / CLIP_EDGES)

    def crops():
        for frame in media.iter_video_frames(source.path, config.fps, info=source.info):
            crop = crop_frame(frame, box, config.size)
            edges.write(canny_edges(crop, config.canny_low, config.canny_high, config.canny_blur))
            progress(0.5)
            yield crop

    try:
        media.write_video(work / CLIP_CROPS, crops(), config.fps, audio=wav, sample_rate=SAMPLE_RATE,
                          crf=config.crop_crf, preset=config.crop_preset,
                          keyframe_interval=config.crop_keyframe_interval)
    finally:
        offsets = edges.close()
    return offsets


def prepare_clip(source: ClipSource, clip_dir: Path, config: PrepareConfig, sha256: str, progress: Progress) -> dict:
    """Prepare one clip into ``clip_dir`` (created through a temporary sibling). Returns the
    per-clip summary that also lands in ``clip.json`` and the manifest."""
    work = clip_dir.parent / f".tmp-{clip_dir.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        raw, found = _track_clip(source, config, progress)
        smoothed = smooth_landmarks(np.nan_to_num(raw), found, config.landmark_smoothing)
        box = choose_crop_box(smoothed, found, config.crop_margin, config.crop_raise,
                              (source.info.width, source.info.height))
        wav = media.read_audio(source.path, SAMPLE_RATE, info=source.info)
        wav = np.pad(wav, (0, max(0, source.frames * SAMPLES_PER_FRAME - len(wav))))[: source.frames * SAMPLES_PER_FRAME]
        edge_offsets = _write_crops_and_edges(source, box, wav, config, work, progress)
        mouth = normalise_mouth(np.where(found[:, None, None], smoothed, np.nan))  # NaN where no face
        np.savez(
            work / CLIP_ARRAYS,
            landmarks=np.where(found[:, None, None], to_crop_coords(smoothed, box, config.size), np.nan).astype(np.float32),
            landmarks_raw=to_crop_coords(raw, box, config.size),
            face_found=found,
            mouth=mouth.astype(np.float32),
            mfcc=mfcc(wav, SAMPLE_RATE, n_video_frames=source.frames),
            audio=np.round(np.clip(wav, -1, 1) * 32767).astype(np.int16),
            crop_box=np.array(box.to_list(), dtype=np.int64),
            edge_offsets=edge_offsets,
        )
        summary = {
            "id": source.id,
            "source": str(source.path),
            "sha256": sha256,
            "config_fingerprint": config.fingerprint(),
            "frames": source.frames,
            "mfcc_frames": source.frames * 4,
            "face_found_ratio": round(float(found.mean()), 6),
            "crop_box": box.to_list(),
            "source_size": [source.info.width, source.info.height],
            "source_fps": source.info.average_fps,
            "duration_s": source.frames / config.fps,
        }
        (work / CLIP_INFO).write_text(json.dumps(summary, indent=1))
        shutil.rmtree(clip_dir, ignore_errors=True)
        os.replace(work, clip_dir)
        return summary
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def finished_clip(clip_dir: Path, sha256: str, config: PrepareConfig) -> dict | None:
    """The summary of an already prepared clip if it matches this source and config."""
    try:
        summary = json.loads((clip_dir / CLIP_INFO).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("sha256") != sha256 or summary.get("config_fingerprint") != config.fingerprint():
        return None
    if not all((clip_dir / name).is_file() for name in (CLIP_ARRAYS, CLIP_EDGES, CLIP_CROPS)):
        return None
    return summary


# --- running many clips --------------------------------------------------------------------------

_progress_queue = None


def _worker_init(queue) -> None:
    global _progress_queue
    _progress_queue = queue
    # Ctrl-C is handled by the parent, which stops the workers; a half-done clip stays in its
    # temporary folder and is removed on the next run.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_prepare(source: ClipSource, clip_dir: Path, config: PrepareConfig, sha256: str) -> dict:
    queue = _progress_queue
    if queue is None:
        raise RuntimeError("_worker_prepare runs in _run_pool's workers only (their _worker_init gives the queue)")
    pending = 0.0

    def progress(amount: float) -> None:
        nonlocal pending
        pending += amount
        if pending >= 5:
            queue.put(pending)
            pending = 0.0

    summary = prepare_clip(source, clip_dir, config, sha256, progress)
    queue.put(pending)
    return summary


def _run_pool(todo: list[tuple[ClipSource, str]], clips_dir: Path, config: PrepareConfig, workers: int,
              progress: Progress, on_media_error: Callable[[MediaError], None]) -> dict[str, dict]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from queue import Empty

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    results: dict[str, dict] = {}
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(queue,))
    try:
        pending = {pool.submit(_worker_prepare, s, clips_dir / s.id, config, sha): s for s, sha in todo}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while True:
                try:
                    progress(queue.get_nowait())
                except Empty:
                    break
            for future in done:
                source = pending.pop(future)
                try:
                    results[source.id] = future.result()
                except MediaError as err:
                    on_media_error(err)
    except BaseException:
        processes = list(getattr(pool, "_processes", {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)  # gone before the caller removes the folders they were writing
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def check_enough_faces(out: Path, clips: Sequence[dict], config: PrepareConfig) -> None:
    """Refuse a dataset with too few face frames to fit the mouth PCA, in one line."""
    face_frames = sum(round(c["frames"] * c["face_found_ratio"]) for c in clips)
    needed = frames_for_mouth_pca(config)
    if face_frames < needed:
        raise NewsanchorError(f"{out}: only {face_frames} frames of the {len(clips)} clip(s) show a face; the "
                              f"{config.pca_components}-component mouth PCA needs at least {needed}")


def prepare(inputs: Sequence[str | Path], out: str | Path, config: PrepareConfig = PrepareConfig(), *,
            workers: int = 0, skip_bad: bool = False, replace: bool = False, progress_factory=None,
            warn=None) -> dict:
    """Prepare recordings (files or folders) into the dataset directory ``out``; returns the manifest.

    ``workers`` processes prepare clips in parallel (0: one per CPU core, at most one per clip).
    ``progress_factory(total_frames)`` returns a callable advanced by frames done. An unusable
    ``out`` and bad inputs raise before anything is written (``skip_bad``: bad inputs are reported
    through ``warn``, left out and listed in the manifest). If ``out`` already holds clips, the
    inputs' clips are added to them and the dataset-wide parts refitted over all; ``replace``
    instead removes (and reports through ``warn``) those that are not the inputs'. A run that fails
    removes what it added (all of a new ``out``); an interrupted one keeps its finished clips and
    resumes from them.
    """
    out = Path(out)
    warn = warn or (lambda message: None)
    created = check_output_dir(out)
    sources: list[ClipSource] = []
    skipped: list[dict] = []

    def skip_or_raise(err: MediaError) -> None:
        if not skip_bad:
            raise err
        warn(f"skipped {err}")
        skipped.append({"source": err.path, "error": err.problem})

    paths = collect_inputs(inputs, exclude=out)
    for path, clip_id in zip(paths, clip_ids(paths)):
        try:
            info, frames = check_source(path, config)
        except MediaError as err:
            skip_or_raise(err)
            continue
        sources.append(ClipSource(clip_id, path, info, frames))
    if not sources:
        raise NewsanchorError(f"{out}: none of the {len(paths)} inputs can be prepared")

    earlier = {} if created else earlier_clips(out, config)
    planned = claim_clip_ids(sources, earlier)
    sources = [source for source, _ in planned]
    others = check_earlier_clips(out, earlier, {s.id for s in sources}, replace)
    if not replace and not created:
        skipped[:0] = earlier_skips(out, paths)

    clips_dir = out / CLIPS_DIR
    added = {s.id for s in sources} - set(earlier)  # removed again if this run fails
    clips_dir_existed = clips_dir.is_dir()
    first_created = out  # with the folders made above it, removed again if this run fails
    while created and not first_created.parent.exists():
        first_created = first_created.parent
    try:
        try:
            clips_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NewsanchorError(f"{out}: cannot create the dataset folder ({err.strerror})") from None
        for stale in clips_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        advance = progress_factory(sum(s.frames for s in sources)) if progress_factory else (lambda _: None)

        # earlier clips stand unless replaced: by their input's new clip, or all of them with ``replace``
        summaries: dict[str, dict] = {c.id: c.summary for c in earlier.values()
                                      if c.summary is not None and c.problem is None and not replace}
        todo: list[tuple[ClipSource, str]] = []
        for source, sha in planned:
            done = finished_clip(clips_dir / source.id, sha, config)
            if done is not None:
                summaries[source.id] = done
                advance(source.frames)
            else:
                todo.append((source, sha))

        workers = workers or min(os.cpu_count() or 1, len(todo))
        if workers <= 1 or len(todo) <= 1:
            for source, sha in todo:
                try:
                    summaries[source.id] = prepare_clip(source, clips_dir / source.id, config, sha, advance)
                except MediaError as err:
                    skip_or_raise(err)
        else:
            summaries.update(_run_pool(todo, clips_dir, config, workers, advance, skip_or_raise))
        earlier_first = [] if replace else list(earlier)  # training splits drawn in this order stay put
        ordered = [summaries[clip_id] for clip_id in dict.fromkeys(earlier_first + [s.id for s in sources])
                   if clip_id in summaries]
        if not ordered:
            raise NewsanchorError(f"{out}: no input had a usable face")
        check_enough_faces(out, ordered, config)
        manifest = write_dataset_summary(out, config, ordered, skipped)
        if replace:
            listed = {c["id"] for c in ordered}
            for clip in earlier.values():
                if clip.id not in listed:
                    source = (clip.summary or {}).get("source", "source unknown")
                    warn(f"removing {clips_dir / clip.id} ({source}): not among the inputs prepared (--replace)")
                    shutil.rmtree(clips_dir / clip.id, ignore_errors=True)
        elif others:
            warn(f"{out}: kept {len(others)} earlier clip(s) not among the inputs ({names_of(others)}); "
                 "--replace would remove them")
        return manifest
    except KeyboardInterrupt:
        raise
    except BaseException:
        if created:
            shutil.rmtree(first_created, ignore_errors=True)
        else:
            for clip_id in added:
                shutil.rmtree(clips_dir / clip_id, ignore_errors=True)
            for stale in clips_dir.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if not clips_dir_existed:
                shutil.rmtree(clips_dir, ignore_errors=True)
        raise

