"""Workers: claim a queued job, make what it asks for, store the result; repeat.

:class:`JobWorker` is what every worker shares: the claim loop (each worker claims one kind of
job), the heartbeat thread, and how a job ends — done, cancelled, lost to another worker,
failed with one line for the client — and what each ending leaves on disk. :class:`Worker`
makes videos; ``anchor_jobs.AnchorWorker`` trains anchors.

A video worker keeps one :class:`AnchorPipeline` per anchor and one speech engine, so a job pays only
for its own speech and frames. While a job runs, a heartbeat thread tells the store the worker
is alive (speech synthesis reports no progress, and a long script takes a while); progress
reports from the frame callback also carry cancel requests back: ``report`` raises
:class:`JobCancelled` inside ``on_frames`` and rendering stops there. A job becomes a
:class:`~newsanchor.synthesis.VideoRequest` and is made by ``make_video``, the call the command
line and the demo use too; the video and captions are written under a temporary name and
renamed, so a crash never leaves half a file under the final name.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..errors import NewsanchorError
from .anchors import NAME_PATTERN
from .store import Job, JobCancelled, JobLost, JobStore, WorkerIdentity, open_store

if TYPE_CHECKING:
    from ..speech.engine import SpeechEngine

log = logging.getLogger("newsanchor.serve")
HEARTBEAT_S = 5.0
REPORT_EVERY_S = 0.5
VIDEO_NAME, CAPTIONS_NAME, INPUT_NAME = "video.mp4", "captions.vtt", "input"


def input_path(outputs: Path, job_id: str) -> Path:
    """Where an uploaded recording waits for its job (server-made name, content-checked)."""
    return Path(outputs) / job_id / INPUT_NAME


class StopSignal(Protocol):
    """What :meth:`Worker.run` asks of its stop request (a threading.Event has it)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


class WorkerStopping(Exception):
    """The service is stopping (or gone) while a long job runs: the worker leaves the job as it is
    and exits; the next start requeues it, and the job resumes from what it saved."""


class JobWorker:
    """Processes jobs of :attr:`kind` from ``store``; one job at a time. Subclasses make the job
    (:meth:`_make`) and say what an ending leaves on disk (:meth:`_clean_up`)."""

    kind: ClassVar[str]  # the jobs it claims (store.KINDS)

    def __init__(self, store: JobStore, anchors_dir: Path, outputs_dir: Path, *, name: str | None = None,
                 device: str | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.store, self.anchors_dir, self.outputs = store, Path(anchors_dir), Path(outputs_dir)
        self.identity = WorkerIdentity.here(name or secrets.token_hex(4))
        self.device, self.heartbeat_s = device, heartbeat_s
        self.stop: StopSignal | None = None  # the run loop's stop request, for jobs long enough to look at it
        self.processed: deque[str] = deque(maxlen=10_000)  # ids of the latest jobs it finished, oldest first

    def run(self, stop: StopSignal, *, poll_s: float = 0.5) -> None:
        """Claim and process jobs until ``stop`` is set (checked between jobs)."""
        log.info("worker %s: ready for %s jobs", self.identity.id, self.kind)
        self.stop = stop
        while not stop.is_set():
            if not self.run_once():
                stop.wait(poll_s)

    def run_once(self) -> bool:
        """Claim and process one job; False when none was queued."""
        job = self.store.claim(self.identity, self.kind)
        if job is None:
            return False
        self.process(job)
        return True

    # --- one job ---

    def process(self, job: Job) -> None:
        """Make a claimed job and record how it ended."""
        folder = self.outputs / job.id
        beating = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, beating), daemon=True)
        beat.start()
        started = time.monotonic()
        try:
            results = self._make(job, folder)
            if self.store.finish(job.id, self.identity, "done", **results):
                self.processed.append(job.id)
                self._clean_up(folder, "done")
                log.info("job %s: done in %.1f s", job.id, time.monotonic() - started)
            else:
                raise JobLost(job.id)
        except JobCancelled:
            if self.store.finish(job.id, self.identity, "cancelled"):
                self._clean_up(folder, "cancelled")
            log.info("job %s: cancelled", job.id)
        except JobLost:
            self._lost(job, folder)
        except WorkerStopping:
            log.info("job %s: left as it is for the next start (the service is stopping)", job.id)
        except NewsanchorError as err:
            self._fail(job, folder, self._failure(job, folder, err))
        except Exception:
            log.exception("job %s: failed", job.id)
            self._fail(job, folder, f"internal error while making the {self.kind} (details are in the server log)")
        finally:
            beating.set()
            beat.join()

    def _make(self, job: Job, folder: Path) -> dict:
        """Do the job's work in ``folder``; → what ``store.finish`` records (``video``, ``captions``).
        Progress goes through :meth:`_reporter`, which raises to stop the work."""
        raise NotImplementedError

    def _clean_up(self, folder: Path, status: str) -> None:
        """What a job that ended as ``status`` (done, failed, cancelled) leaves in its folder."""

    def _failure(self, job: Job, folder: Path, err: NewsanchorError) -> str:
        """The one line a failed job shows its client."""
        return self._public_message(str(err).splitlines()[0] if str(err) else type(err).__name__)

    def _lost(self, job: Job, folder: Path) -> None:
        # requeued (another worker may have it now) or deleted: leave its folder to whoever
        # owns the job, but a deleted job's folder is ours to clean
        if self.store.get(job.id) is None:
            shutil.rmtree(folder, ignore_errors=True)
        log.warning("job %s: no longer this worker's; stopped", job.id)

    def _reporter(self, job: Job):
        def report(progress: float, stage: str, eta_s: float | None = None) -> None:
            self.store.report(job.id, self.identity, progress, stage, eta_s)  # raises to stop the job

        return report

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            try:
                if not self.store.heartbeat(job_id, self.identity):
                    return  # lost or finished: the next report stops the work
            except Exception:  # a busy database now and then must not kill the heartbeat
                log.exception("job %s: heartbeat failed", job_id)

    def _fail(self, job: Job, folder: Path, message: str) -> None:
        # a worker that lost the job (taken for dead, then woke up) leaves the files to the new owner
        if self.store.finish(job.id, self.identity, "failed", error=message):
            self._clean_up(folder, "failed")
        elif self.store.get(job.id) is None:  # deleted while it failed
            shutil.rmtree(folder, ignore_errors=True)
        log.warning("job %s: failed: %s", job.id, message)

    def _public_message(self, message: str) -> str:
        """``message`` for the client: without this server's folders in it."""
        for folder, shown in ((self.outputs, "job"), (self.anchors_dir, "anchors")):
            message = message.replace(str(folder.resolve()), shown).replace(str(folder), shown)
        return message


class Worker(JobWorker):
    """Renders video jobs for the anchors under ``anchors_dir``; one job at a time."""

    kind = "video"

    def __init__(self, store: JobStore, anchors_dir: Path, outputs_dir: Path, *, name: str | None = None,
                 device: str | None = None, heartbeat_s: float = HEARTBEAT_S, compile_renderer: bool = False,
                 precision: str = "auto"):
        super().__init__(store, anchors_dir, outputs_dir, name=name, device=device, heartbeat_s=heartbeat_s)
        self.compile_renderer, self.precision = compile_renderer, precision
        self._pipelines: dict = {}
        self._engine: SpeechEngine | None = None

    def _make(self, job: Job, folder: Path) -> dict:
        if job.attempts > 1:
            self._remove_partials(folder)
        video, captions = self._render(job, folder)
        return {"video": video, "captions": captions}

    def _clean_up(self, folder: Path, status: str) -> None:
        if status != "done":
            self._remove_results(folder)

    def _render(self, job: Job, folder: Path) -> tuple[str, str | None]:
        from ..synthesis import VideoRequest, frames_fraction, make_video

        request = job.request
        report = self._reporter(job)
        report(0.0, "loading the anchor")
        pipeline = self._pipeline(job.anchor)
        # the job's row → one video request; refusals name the job's fields, not server paths
        title, subtitle = request.get("title") or None, request.get("subtitle")
        if request.get("input") == "audio":
            video = VideoRequest(recording=input_path(self.outputs, job.id), input_name="audio", title=title,
                                 subtitle=subtitle)
        else:
            video = VideoRequest(text=request["text"], input_name="text", burn_captions=bool(request.get("burn_captions")),
                                 captions=folder / CAPTIONS_NAME if request.get("captions", True) else None,
                                 title=title, subtitle=subtitle)
        folder.mkdir(parents=True, exist_ok=True)
        stage_started = [time.monotonic()]
        last = [0.0]

        def on_stage(fraction: float, stage: str) -> None:
            report(fraction, stage)
            stage_started[0] = time.monotonic()  # the frames are timed from the stage they belong to

        def on_frames(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < REPORT_EVERY_S and done < total:
                return
            last[0] = now
            rate = done / max(now - stage_started[0], 1e-6)
            report(frames_fraction(done, total), f"rendering frame {done} of {total}",
                   eta_s=round((total - done) / max(rate, 1e-6), 1))

        summary = make_video(pipeline, video, folder / VIDEO_NAME,
                             speech_engine=self._speech_engine() if video.text is not None else None,
                             on_stage=on_stage, on_frames=on_frames)
        return f"{job.id}/{VIDEO_NAME}", f"{job.id}/{CAPTIONS_NAME}" if summary["captions"] else None

    @staticmethod
    def _remove_partials(folder: Path) -> None:
        """An earlier attempt's worker died while writing: its hidden temporaries (see
        ``files.write_atomic``) would stay beside the finished files forever. Only the job's
        owner, which this worker now is, writes in its folder."""
        for name in (VIDEO_NAME, CAPTIONS_NAME):
            for partial in folder.glob(f".{name}.*"):
                partial.unlink(missing_ok=True)

    @staticmethod
    def _remove_results(folder: Path) -> None:
        """A stopped job keeps no video or captions (its uploaded input stays until it is deleted)."""
        for name in (VIDEO_NAME, CAPTIONS_NAME):
            (folder / name).unlink(missing_ok=True)

    # --- kept between jobs ---

    def _speech_engine(self):
        if self._engine is None:
            from ..speech import get_engine

            self._engine = get_engine("piper")
        return self._engine

    def _pipeline(self, anchor: str):
        if anchor not in self._pipelines:
            from ..bundle import load_bundle
            from ..pipeline import AnchorPipeline, SynthesisSettings

            if not NAME_PATTERN.match(anchor):  # the app checks too; a worker never trusts a path from a row
                raise NewsanchorError(f"anchor {anchor!r}: not a valid anchor name")
            bundle = load_bundle(self.anchors_dir / anchor)
            # what every video of this anchor shares; make_video adds each job's own lower third and captions
            shared = SynthesisSettings(background=bundle.background(), compile_renderer=self.compile_renderer,
                                       precision=self.precision)
            self._pipelines[anchor] = AnchorPipeline(bundle, settings=shared, device=self.device)
        return self._pipelines[anchor]


def worker_process_main(db: str, anchors_dir: str, outputs_dir: str, name: str, stop, device: str | None = None,
                        compile_renderer: bool = False, precision: str = "auto", kind: str = "video",
                        threads: int | None = None) -> None:
    """Entry point of a worker process started by ``newsanchor serve`` (multiprocessing spawn):
    a video worker, or with ``kind="anchor"`` an anchor worker. ``threads``: torch's CPU threads
    (default: this machine's cores over ``$NEWSANCHOR_WORKERS``).

    Ctrl-C goes to the whole process group; the worker ignores it and stops when the server sets
    ``stop`` (or terminates it: its job is then requeued by the next claim)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {name} %(levelname)s %(message)s")
    try:
        import torch

        # one job per worker process: leave the other cores to the other workers and the app
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("NEWSANCHOR_WORKERS", "1")))))
    except Exception:  # pragma: no cover - torch is a dependency; threads are only a tuning
        pass
    store = open_store(db)
    try:
        worker: JobWorker
        if kind == "anchor":
            from .anchor_jobs import AnchorWorker

            worker = AnchorWorker(store, Path(anchors_dir), Path(outputs_dir), name=name, device=device)
        else:
            worker = Worker(store, Path(anchors_dir), Path(outputs_dir), name=name, device=device,
                            compile_renderer=compile_renderer, precision=precision)
        worker.run(_StopOrOrphaned(stop))
    finally:
        store.close()


class _StopOrOrphaned:
    """The server's stop request, also taken as given when the server process is gone: a server
    killed with SIGKILL asks nothing, and a worker left behind would go on taking jobs that a
    restarted server's workers take too. Checked between jobs, like the stop request."""

    def __init__(self, stop):
        self._stop = stop
        self._server = multiprocessing.parent_process()

    def is_set(self) -> bool:
        return self._stop.is_set() or (self._server is not None and not self._server.is_alive())

    def wait(self, timeout: float) -> bool:
        self._stop.wait(timeout)
        return self.is_set()
