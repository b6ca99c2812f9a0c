"""The job queue's interface: what the web app and the workers need from a job store.

Two kinds of job share the queue: ``video`` (a script or recording → an mp4, by the video
workers) and ``anchor`` (recordings → a trained anchor bundle, by the anchor workers, so that a
training of an hour never holds up the videos). A worker claims only its own kind. ``anchor``
names the anchor a job reads from (video) or makes (anchor); at most one unfinished anchor job
may make a given name, which the store enforces (:class:`AnchorInMaking`).

The app creates, reads, cancels and deletes jobs; workers claim them one at a time, report
progress (which doubles as a heartbeat and as the way a cancel request reaches them) and
finish them. Every state change a worker makes names the worker, so a worker that lost its job
(requeued after it was taken for dead, cancelled, deleted) can never overwrite what another
worker did: the change simply does not apply and the worker learns it lost the job.

Two implementations: SQLite (:mod:`.sqlite_store`, one file, the workers of one machine) and
PostgreSQL (:mod:`.postgres_store`, claiming with ``SELECT … FOR UPDATE SKIP LOCKED``, so workers
on several machines can share one queue). :func:`open_store` is the one place that chooses an
implementation from ``--db``.
"""

from __future__ import annotations

import logging
import os
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..errors import NewsanchorError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATUSES = frozenset({"done", "failed", "cancelled"})
KINDS = ("video", "anchor")
# A running job whose worker has not reported for this long is taken for lost. Workers
# heartbeat from a separate thread every few seconds, so only a dead or frozen worker is this late.
STALE_AFTER_S = 30.0


class JobLost(Exception):
    """The worker no longer owns its job (requeued, deleted): it must stop and write nothing."""


class JobCancelled(Exception):
    """A cancel was requested for the job a worker runs: it stops and marks the job cancelled."""


class AnchorInMaking(NewsanchorError):
    """Another queued or running anchor job already makes an anchor of this name."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"anchor {name!r}: already being made by another job")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"job kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


@dataclass(frozen=True)
class WorkerIdentity:
    """Who claims a job: a unique id, and the process and host it runs in (for liveness checks)."""

    id: str
    pid: int
    host: str

    @classmethod
    def here(cls, name: str) -> WorkerIdentity:
        host = socket.gethostname()
        return cls(f"{host}:{os.getpid()}:{name}", os.getpid(), host)


@dataclass(frozen=True)
class Job:
    """One row of the queue. ``video``/``captions`` are paths relative to the outputs folder
    (video jobs); ``kind`` is ``video`` or ``anchor``."""

    id: str
    anchor: str
    request: dict
    status: str
    progress: float
    stage: str
    eta_s: float | None
    error: str | None
    idempotency_key: str | None
    worker: str | None
    worker_pid: int | None
    worker_host: str | None
    heartbeat: float | None
    cancel_requested: bool
    attempts: int
    created: float
    updated: float
    video: str | None
    captions: str | None
    kind: str = "video"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def worker_is_dead(job: Job, now: float, *, stale_after: float = STALE_AFTER_S, host: str | None = None) -> bool:
    """Whether the worker of a running job is gone: its heartbeat is older than ``stale_after``,
    or it ran on this host and its process no longer exists (found at once, without waiting)."""
    if job.heartbeat is None or now - job.heartbeat > stale_after:
        return True
    here = host if host is not None else socket.gethostname()
    return job.worker_host == here and job.worker_pid is not None and not pid_alive(job.worker_pid)


def lost_job_update(job: Job) -> str:
    """The SET clause (without ``updated``) for a running job whose worker is dead: back in the
    queue, or cancelled when a cancel had been asked for (it is not run again). One rule for
    every store; each adds ``updated`` and its own ``WHERE id = … AND status = 'running'``."""
    if job.cancel_requested:
        return "status = 'cancelled', stage = 'cancelled', worker = NULL, eta_s = NULL"
    return ("status = 'queued', stage = 'requeued: its worker stopped', progress = 0, eta_s = NULL, "
            "worker = NULL, worker_pid = NULL, heartbeat = NULL")


def log_lost_job(job: Job, now: float) -> None:
    """The warning every store logs when it takes a job from a dead worker."""
    logging.getLogger("newsanchor.serve").warning(
        "job %s: worker %s stopped (last heartbeat %.0f s ago); %s", job.id, job.worker,
        now - (job.heartbeat or 0), "cancelled" if job.cancel_requested else "requeued")


class JobStore(ABC):
    """A durable job queue shared by the app and any number of worker processes."""

    @abstractmethod
    def create(self, job_id: str, anchor: str, request: dict, *, kind: str = "video",
               idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Queue a job of ``kind``; with a key already used, return that job instead. -> (job, created).

        Raises:
            AnchorInMaking: an anchor job for a name another queued or running anchor job makes.
        """

    @abstractmethod
    def find_by_key(self, idempotency_key: str) -> Job | None:
        """The job created with this Idempotency-Key, if any."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """One job, or None."""

    @abstractmethod
    def recent(self, limit: int = 50) -> list[Job]:
        """The newest jobs first (every kind)."""

    @abstractmethod
    def of_kind(self, kind: str, *, anchor: str | None = None, unfinished: bool = False, limit: int = 50) -> list[Job]:
        """The newest jobs of ``kind`` first: only those naming ``anchor`` when given, only the
        queued and running ones when ``unfinished``."""

    @abstractmethod
    def claim(self, worker: WorkerIdentity, kind: str = "video") -> Job | None:
        """Take the oldest queued job of ``kind`` for ``worker`` atomically (requeueing jobs of
        dead workers first, whatever their kind), or None when none is queued."""

    @abstractmethod
    def recover(self) -> list[str]:
        """Requeue (or, if a cancel was asked for, cancel) running jobs whose worker is dead;
        returns their ids. Done jobs are never touched."""

    @abstractmethod
    def heartbeat(self, job_id: str, worker: WorkerIdentity) -> bool:
        """Note that ``worker`` is alive; False when it no longer owns the job."""

    @abstractmethod
    def report(self, job_id: str, worker: WorkerIdentity, progress: float, stage: str, eta_s: float | None) -> None:
        """Progress of a running job (also a heartbeat).

        Raises:
            JobLost: the worker no longer owns the job.
            JobCancelled: a cancel was requested.
        """

    @abstractmethod
    def finish(self, job_id: str, worker: WorkerIdentity, status: str, *, error: str | None = None,
               video: str | None = None, captions: str | None = None) -> bool:
        """End a running job as done, failed or cancelled; False when ``worker`` no longer owns it."""

    @abstractmethod
    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, or ask the worker of a running one to stop; finished
        jobs stay as they are. Returns the job afterwards, or None if there is no such job."""

    @abstractmethod
    def delete(self, job_id: str) -> Job | None:
        """Remove a job's row (its worker, if any, loses it); returns the row it had, or None."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def sqlite_path(spec: str | os.PathLike[str]) -> Path | None:
    """The SQLite file ``--db`` names (a path, or ``sqlite:///path`` as SQLAlchemy reads it:
    ``sqlite:///relative.db``, ``sqlite:////absolute.db``); None for any URL of another scheme."""
    text = os.fspath(spec)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "sqlite":
        return Path(text.split("://", 1)[1].removeprefix("/"))
    return None if scheme else Path(text)


def open_store(spec: str | os.PathLike[str]) -> JobStore:
    """The store ``--db`` names: a PostgreSQL URL (``postgresql://user@host/db``, also
    ``postgres://``), else a SQLite file path (or ``sqlite:///path``).

    Raises:
        NewsanchorError: another URL scheme, or a database that cannot be opened.
    """
    text = os.fspath(spec)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from .postgres_store import PostgresJobStore

        if scheme.startswith("postgresql+"):  # SQLAlchemy's postgresql+psycopg://: libpq knows no driver part
            text = "postgresql://" + text.split("://", 1)[1]
        return PostgresJobStore(text)
    path = sqlite_path(text)
    if path is None:
        raise NewsanchorError(f"--db {scheme}://…: unknown database URL scheme; give a PostgreSQL URL "
                              f"(postgresql://user@host/db) or a SQLite file path")
    from .sqlite_store import SqliteJobStore

    return SqliteJobStore(path)
