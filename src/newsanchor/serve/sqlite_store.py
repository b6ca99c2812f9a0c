"""The job store in one SQLite file (WAL mode), shared by the app and worker processes.

Why it is safe with several processes: every change that reads then writes runs in a
``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock up front, so two workers can
never both see the same job as queued. WAL lets readers (the app answering polls) go on while
a worker writes. ``synchronous=FULL`` because a queue that forgets a committed job after a
power cut is not durable.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import NewsanchorError
from .store import (STALE_AFTER_S, AnchorInMaking, Job, JobCancelled, JobLost, JobStore, WorkerIdentity, check_kind,
                    log_lost_job, lost_job_update, worker_is_dead)

SCHEMA_VERSION = 2  # 2: jobs have a kind (video, anchor)
TABLE = """
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    anchor           TEXT NOT NULL,
    request          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress         REAL NOT NULL DEFAULT 0,
    stage            TEXT NOT NULL DEFAULT 'queued',
    eta_s            REAL,
    error            TEXT,
    idempotency_key  TEXT UNIQUE,
    worker           TEXT,
    worker_pid       INTEGER,
    worker_host      TEXT,
    heartbeat        REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created          REAL NOT NULL,
    updated          REAL NOT NULL,
    video            TEXT,
    captions         TEXT,
    kind             TEXT NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'anchor'))
)
"""
# what a database of an earlier schema version needs to become this one (version → statements)
MIGRATIONS = {
    1: ["ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'anchor'))"],
}
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs (kind, status, created);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_maker_per_anchor ON jobs (anchor)
    WHERE kind = 'anchor' AND status IN ('queued', 'running')
"""


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["request"] = json.loads(values["request"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


class SqliteJobStore(JobStore):
    """:class:`JobStore` in a SQLite file. One connection per store object, guarded by a lock, so
    the app's request threads and a worker's heartbeat thread may share one store."""

    def __init__(self, path: Path, *, stale_after: float = STALE_AFTER_S):
        self.path, self.stale_after = Path(path), stale_after
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit (isolation_level None): transactions are opened explicitly below
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise NewsanchorError(f"{self.path}: cannot switch the job database to WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            with self._immediate() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise NewsanchorError(f"{self.path}: job database schema {version} is newer than this "
                                          f"newsanchor reads ({SCHEMA_VERSION})")
                # executescript would commit our transaction: one statement at a time
                db.execute(TABLE)  # a new database (version 0) gets this version's table; an older one...
                for old in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                    for statement in MIGRATIONS[old]:  # ...keeps its own and is brought up to date
                        db.execute(statement)
                for statement in INDEXES.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as err:  # OSError: its folder cannot be made (/proc, read-only, a file)
            raise NewsanchorError(f"{self.path}: cannot open the job database "
                                  f"({getattr(err, 'strerror', None) or err})") from None

    @contextmanager
    def _immediate(self):
        """A write transaction holding SQLite's write lock from its start."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- the app's side ---

    def create(self, job_id, anchor, request, *, kind="video", idempotency_key=None):
        now = time.time()
        with self._immediate() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    return _job(row), False
            try:
                row = db.execute(
                    "INSERT INTO jobs (id, anchor, request, status, stage, idempotency_key, created, updated, kind) "
                    "VALUES (?, ?, ?, 'queued', 'queued', ?, ?, ?, ?) RETURNING *",
                    (job_id, anchor, json.dumps(request), idempotency_key, now, now, check_kind(kind))).fetchall()[0]
            except sqlite3.IntegrityError as err:
                if "jobs.anchor" in str(err):  # jobs_one_maker_per_anchor
                    raise AnchorInMaking(anchor) from None
                raise
            return _job(row), True

    def find_by_key(self, idempotency_key):
        rows = self._read("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,))
        return _job(rows[0]) if rows else None

    def get(self, job_id):
        rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def recent(self, limit=50):
        return [_job(r) for r in self._read("SELECT * FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?", (limit,))]

    def of_kind(self, kind, *, anchor=None, unfinished=False, limit=50):
        rows = self._read(
            "SELECT * FROM jobs WHERE kind = ? AND (? IS NULL OR anchor = ?) "
            "AND (NOT ? OR status IN ('queued', 'running')) ORDER BY created DESC, rowid DESC LIMIT ?",
            (check_kind(kind), anchor, anchor, unfinished, limit))
        return [_job(r) for r in rows]

    def cancel(self, job_id):
        now = time.time()
        with self._immediate() as db:
            db.execute("UPDATE jobs SET status = 'cancelled', stage = 'cancelled', eta_s = NULL, updated = ? "
                       "WHERE id = ? AND status = 'queued'", (now, job_id))
            db.execute("UPDATE jobs SET cancel_requested = 1, stage = 'cancelling', updated = ? "
                       "WHERE id = ? AND status = 'running'", (now, job_id))
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    def delete(self, job_id):
        with self._immediate() as db:
            rows = db.execute("DELETE FROM jobs WHERE id = ? RETURNING *", (job_id,)).fetchall()
        return _job(rows[0]) if rows else None

    # --- the workers' side ---

    def _requeue_dead(self, db: sqlite3.Connection, now: float) -> list[str]:
        running = [_job(r) for r in db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()]
        lost = [job for job in running if worker_is_dead(job, now, stale_after=self.stale_after, host=self.host)]
        for job in lost:
            db.execute(f"UPDATE jobs SET {lost_job_update(job)}, updated = ? WHERE id = ? AND status = 'running'",
                       (now, job.id))
            log_lost_job(job, now)
        return [job.id for job in lost]

    def recover(self):
        with self._immediate() as db:
            return self._requeue_dead(db, time.time())

    def claim(self, worker: WorkerIdentity, kind: str = "video"):
        now = time.time()
        with self._immediate() as db:
            self._requeue_dead(db, now)
            rows = db.execute(
                "UPDATE jobs SET status = 'running', stage = 'starting', progress = 0, eta_s = NULL, error = NULL, "
                "worker = ?, worker_pid = ?, worker_host = ?, heartbeat = ?, updated = ?, attempts = attempts + 1 "
                "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND kind = ? ORDER BY created, rowid LIMIT 1) "
                "RETURNING *", (worker.id, worker.pid, worker.host, now, now, check_kind(kind))).fetchall()
        return _job(rows[0]) if rows else None

    def heartbeat(self, job_id, worker):
        now = time.time()
        with self._immediate() as db:
            rows = db.execute("UPDATE jobs SET heartbeat = ? WHERE id = ? AND worker = ? AND status = 'running' "
                              "RETURNING id", (now, job_id, worker.id)).fetchall()
        return bool(rows)

    def report(self, job_id, worker, progress, stage, eta_s):
        now = time.time()
        with self._immediate() as db:
            rows = db.execute(
                "UPDATE jobs SET progress = ?, stage = CASE WHEN cancel_requested THEN stage ELSE ? END, eta_s = ?, "
                "heartbeat = ?, updated = ? WHERE id = ? AND worker = ? AND status = 'running' "
                "RETURNING cancel_requested", (float(progress), stage, eta_s, now, now, job_id, worker.id)).fetchall()
        if not rows:
            raise JobLost(job_id)
        if rows[0][0]:
            raise JobCancelled(job_id)

    def finish(self, job_id, worker, status, *, error=None, video=None, captions=None):
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"finish: status must be done, failed or cancelled, got {status!r}")
        now = time.time()
        with self._immediate() as db:
            rows = db.execute(
                "UPDATE jobs SET status = ?, stage = ?, progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END, "
                "eta_s = NULL, error = ?, video = ?, captions = ?, heartbeat = ?, updated = ? "
                "WHERE id = ? AND worker = ? AND status = 'running' RETURNING id",
                (status, status, status, error, video, captions, now, now, job_id, worker.id)).fetchall()
        return bool(rows)

    def close(self):
        with self._lock:
            self._db.close()
