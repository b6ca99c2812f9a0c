"""Anchor jobs: a presenter's recordings, uploaded to the service, become an anchor in its
anchors folder — checked, prepared, trained, bundled and reported by ``create.create_anchor``,
the one call that makes anchors everywhere (one call per job).

A job's files, in the outputs folder under its id, while it runs:

    JOB/recordings/recording-01 …  the uploads, under server-made names, checked by content
    JOB/work/                     create_anchor's work folder: finished stages, training checkpoints
    JOB/problems.json             why the recordings were refused (only a failed job keeps it)

Everything else ``create_anchor`` is called with is in the job's request (:func:`anchor_request`):
presenter and consent, the accepted checks, the plan and time budget the job was queued with,
and each recording's name as the client sent it, so that problems name the client's files and
never the server's. A job requeued after a crash or a restart calls ``create_anchor`` again with
the same arguments, and it goes on from its work folder. Done or cancelled, the job's folder is
removed (the anchor is in the anchors folder); failed, only problems.json stays, until the job
is deleted.
"""

from __future__ import annotations

import calendar
import json
import logging
import shutil
import time
from pathlib import Path

from ..config import from_dict, to_dict
from ..errors import NewsanchorError
from ..files import write_atomic
from .anchors import NAME_PATTERN
from .settings import AnchorTraining
from .store import Job
from .worker import HEARTBEAT_S, REPORT_EVERY_S, JobWorker, WorkerStopping

log = logging.getLogger("newsanchor.serve")
RECORDINGS_DIR, WORK_DIR, PROBLEMS_NAME = "recordings", "work", "problems.json"
# what the page's "trial anchor" box accepts (GET /api/limits): the checks a short test recording fails
TRIAL_ACCEPTS = ("speech_too_short", "no_quiet_stretch")
# the first seconds of an attempt, whose progress says what earlier attempts did, not this one's pace
SETTLE_S = 2.0


def recording_file(index: int) -> str:
    """The server's name for the ``index``-th (0-based) recording of a job."""
    return f"recording-{index + 1:02d}"


def anchor_recording_path(outputs: Path, job_id: str, file: str) -> Path:
    """Where the recording a job's request names as ``file`` waits for its job."""
    return Path(outputs) / job_id / RECORDINGS_DIR / file


def anchor_request(presenter: str, consent: str, accept: list[str], recordings: list[dict],
                   training: AnchorTraining) -> dict:
    """An anchor job's request, as stored in its row::

        {"input": "recordings", "presenter", "consent", "accept": [check, …],
         "recordings": [{"file": "recording-01", "name": as sent, "bytes", "sha256", "seconds"}, …],
         "minutes": budget or None, "plan": CreatePlan as a dict}
    """
    request = {"input": "recordings", "presenter": presenter, "consent": consent, "accept": list(accept),
               "recordings": recordings, "minutes": training.minutes, "plan": to_dict(training.plan)}
    return json.loads(json.dumps(request))  # as the row will hold it (tuples become lists): retries compare equal


def training_of(request: dict) -> AnchorTraining:
    """The budget and plan an anchor job was queued with."""
    from ..create import CreatePlan

    return AnchorTraining(minutes=request.get("minutes"), plan=from_dict(CreatePlan, request.get("plan", {}), "plan"))


def read_problems(outputs: Path, job_id: str) -> list[dict]:
    """The problems a failed anchor job found in its recordings: ``[{"check", "recording"
    (the client's file name, or None for the whole set), "message"}]``; [] when there are none."""
    try:
        problems = json.loads((Path(outputs) / job_id / PROBLEMS_NAME).read_text())
    except (OSError, ValueError):
        return []
    return problems if isinstance(problems, list) else []


def remaining_seconds(started: tuple[float, float], now: float, fraction: float) -> float | None:
    """Seconds left at overall ``fraction``, at the pace since ``started`` (time, fraction) — this
    attempt's, since a resumed job jumps over the stages it finished before; None until the pace
    can be told (or once only the last stage's unmeasured tail is left)."""
    elapsed, gained = now - started[0], fraction - started[1]
    if elapsed < 1.0 or gained < 0.005 or fraction >= 1.0:
        return None
    return round(elapsed * (1.0 - fraction) / gained, 1)


class AnchorWorker(JobWorker):
    """Trains anchor jobs into ``anchors_dir``; one at a time (a service runs ``--anchor-workers``
    of them beside its video workers)."""

    kind = "anchor"

    def __init__(self, store, anchors_dir: Path, outputs_dir: Path, *, name: str | None = None,
                 device: str | None = None, heartbeat_s: float = HEARTBEAT_S):
        super().__init__(store, anchors_dir, outputs_dir, name=name, device=device, heartbeat_s=heartbeat_s)

    def _make(self, job: Job, folder: Path) -> dict:
        from ..bundle import Presenter
        from ..create import create_anchor

        if not NAME_PATTERN.match(job.anchor):  # the app checks too; a worker never trusts a path from a row
            raise NewsanchorError(f"anchor {job.anchor!r}: not a valid anchor name")
        request, out = job.request, self.anchors_dir / job.anchor
        on_progress = self._progress(job)
        on_progress(0.0, "starting")
        if job.attempts > 1 and self._made_by_an_earlier_attempt(job, out):
            log.info("job %s: the anchor was in place before its worker stopped", job.id)
            return {}
        training = training_of(request)
        create_anchor([path for path, _ in self._recordings(job, folder)], out,
                      Presenter(request["presenter"], request["consent"]), minutes=training.minutes,
                      plan=training.plan, accept=request.get("accept", ()), device=self.device,
                      work=folder / WORK_DIR, on_progress=on_progress)
        return {}

    def _progress(self, job: Job):
        """``create_anchor``'s ``on_progress``: reports (with an ETA) at most every REPORT_EVERY_S,
        and stops the training when the job is cancelled or lost (the store's report raises) or
        when the service stops (:class:`WorkerStopping`: the job resumes at the next start)."""
        report = self._reporter(job)
        began = time.monotonic()
        pace_from = (began, 0.0)  # (time, fraction) the ETA's pace is measured from
        last = float("-inf")

        def on_progress(fraction: float, what: str) -> None:
            nonlocal pace_from, last
            if self.stop is not None and self.stop.is_set():
                raise WorkerStopping(job.id)
            now = time.monotonic()
            if now - began < SETTLE_S:  # a resumed job reports what it did before at once: not its pace
                pace_from = (now, fraction)
            if now - last < REPORT_EVERY_S and fraction < 1.0:
                return
            last = now
            report(fraction, what, remaining_seconds(pace_from, now, fraction))

        return on_progress

    def _recordings(self, job: Job, folder: Path) -> list[tuple[Path, str]]:
        """(the file here, the name its client gave it) for each recording of the job."""
        return [(anchor_recording_path(self.outputs, job.id, item["file"]), item["name"])
                for item in job.request["recordings"]]

    @staticmethod
    def _made_by_an_earlier_attempt(job: Job, out: Path) -> bool:
        """Whether an earlier attempt of this job put the anchor in place and stopped before the
        job was marked done: a bundle at ``out`` of this job's presenter, made since it was queued."""
        try:
            manifest = json.loads((out / "anchor.json").read_text())
            made = calendar.timegm(time.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ"))
        except (OSError, ValueError, KeyError, TypeError):
            return False
        person = manifest.get("presenter")
        return (made >= int(job.created) and isinstance(person, dict)
                and person.get("name") == job.request["presenter"] and person.get("consent") == job.request["consent"])

    def _failure(self, job: Job, folder: Path, err: NewsanchorError) -> str:
        from ..create import RecordingsRejected

        if isinstance(err, RecordingsRejected):
            names = {path.name: name for path, name in self._recordings(job, folder)}
            problems = [{"check": p.check, "recording": names.get(p.path.name) if p.path is not None else None,
                         "message": self._public(job, folder, p.message)} for p in err.problems]
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / PROBLEMS_NAME, lambda tmp: tmp.write_text(json.dumps(problems, indent=1)))
        return self._public(job, folder, str(err).splitlines()[0] if str(err) else type(err).__name__)

    def _public(self, job: Job, folder: Path, message: str) -> str:
        """``message`` with each recording named as its client named it, and no server folder."""
        for path, name in self._recordings(job, folder):
            message = message.replace(str(path.resolve()), name).replace(str(path), name)
        return self._public_message(message)

    def _clean_up(self, folder: Path, status: str) -> None:
        if status == "failed":  # the problems stay with the job; the uploads and the work go
            for part in (RECORDINGS_DIR, WORK_DIR):
                shutil.rmtree(folder / part, ignore_errors=True)
        else:  # done: the anchor is in the anchors folder; cancelled: nothing of it is kept
            shutil.rmtree(folder, ignore_errors=True)
