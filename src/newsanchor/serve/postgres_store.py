"""The job store in a PostgreSQL database, for workers on several machines sharing one queue.

The same rows, rules and guarantees as :mod:`.sqlite_store`; what differs is how concurrency is
made safe. A claim picks its job with ``SELECT … FOR UPDATE SKIP LOCKED`` inside its
transaction: a row another claimer holds is skipped, not waited for, and a row claimed since the
statement began is re-checked and passed over, so two workers never take the same job. Jobs of
dead workers are requeued under the same kind of row lock, so exactly one claimer requeues each.

Every timestamp (created, updated, heartbeat) and the "now" that dead-worker checks compare them
with come from the database server's clock: workers on several machines then agree on how old a
heartbeat is even when the machines' clocks drift apart.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Json

from ..errors import NewsanchorError
from .store import (STALE_AFTER_S, AnchorInMaking, Job, JobCancelled, JobLost, JobStore, WorkerIdentity, check_kind,
                    log_lost_job, lost_job_update, worker_is_dead)

log = logging.getLogger("newsanchor.serve")
SCHEMA_VERSION = 2  # 2: jobs have a kind (video, anchor)
# pg_advisory_xact_lock key serialising schema creation between processes starting at once
# (concurrent CREATE TABLE IF NOT EXISTS can otherwise fail); any constant unique to us will do
SCHEMA_LOCK_KEY = 0x6E657773616E6368  # "newsanch"
# the time the statement arrived: one value for all of a statement's columns (created = updated)
NOW = "extract(epoch FROM statement_timestamp())::double precision"
COLUMNS = ("id, anchor, request, status, progress, stage, eta_s, error, idempotency_key, worker, worker_pid, "
           "worker_host, heartbeat, cancel_requested, attempts, created, updated, video, captions, kind")
# seq orders jobs created in the same microsecond, as SQLite's rowid does; it is not part of a Job.
# request is json, not jsonb: jsonb would reorder the request's keys.
SCHEMA = """
CREATE TABLE IF NOT EXISTS newsanchor_jobs (
    id               TEXT PRIMARY KEY,
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    anchor           TEXT NOT NULL,
    request          JSON NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress         DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage            TEXT NOT NULL DEFAULT 'queued',
    eta_s            DOUBLE PRECISION,
    error            TEXT,
    idempotency_key  TEXT UNIQUE,
    worker           TEXT,
    worker_pid       INTEGER,
    worker_host      TEXT,
    heartbeat        DOUBLE PRECISION,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created          DOUBLE PRECISION NOT NULL,
    updated          DOUBLE PRECISION NOT NULL,
    video            TEXT,
    captions         TEXT,
    kind             TEXT NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'anchor'))
)
"""
# what a database of an earlier schema version needs to become this one (version → statements)
MIGRATIONS = {
    1: ["ALTER TABLE newsanchor_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'video' CHECK (kind IN ('video', 'anchor'))"],
}
ONE_MAKER_PER_ANCHOR = "newsanchor_jobs_one_maker_per_anchor"
INDEXES = f"""
CREATE INDEX IF NOT EXISTS newsanchor_jobs_by_status ON newsanchor_jobs (status, created, seq);
CREATE INDEX IF NOT EXISTS newsanchor_jobs_by_created ON newsanchor_jobs (created, seq);
CREATE INDEX IF NOT EXISTS newsanchor_jobs_by_kind ON newsanchor_jobs (kind, status, created, seq);
CREATE UNIQUE INDEX IF NOT EXISTS {ONE_MAKER_PER_ANCHOR} ON newsanchor_jobs (anchor)
    WHERE kind = 'anchor' AND status IN ('queued', 'running')
"""


def public_url(url: str) -> str:
    """The database URL as it may be shown: without a password (in the address or the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not even a URL (an unclosed [ipv6 bracket): show no part that may hold a password
        return url.split("://", 1)[0] + "://…"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    query = "&".join(item for item in parts.query.split("&") if item and not item.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class PostgresJobStore(JobStore):
    """:class:`JobStore` in a PostgreSQL database (``postgresql://user@host/db``). One connection
    per store object, guarded by a lock, so the app's request threads and a worker's heartbeat
    thread may share one store; every worker process opens its own."""

    def __init__(self, url: str, *, stale_after: float = STALE_AFTER_S):
        self.url, self.stale_after = url, stale_after
        self.shown = public_url(url)
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._closed = False
        self._params: dict = {}
        try:
            self._params = conninfo_to_dict(url)
            self._params.setdefault("connect_timeout", "10")
            self._params.setdefault("application_name", "newsanchor")
            self._db = self._connect()
            self._create_schema()
        except psycopg.Error as err:
            raise NewsanchorError(f"{self.shown}: cannot open the job database ({self._one_line(err)})") from None

    def _connect(self) -> psycopg.Connection[DictRow]:
        # autocommit: a transaction is opened explicitly wherever one is needed
        return psycopg.connect(**self._params, autocommit=True, row_factory=dict_row)

    def _one_line(self, err: psycopg.Error) -> str:
        message = (str(err).strip().splitlines() or [type(err).__name__])[0].strip()
        message = message.replace(self.url, self.shown)  # libpq quotes a URL it cannot parse whole
        password = self._params.get("password")
        return message.replace(password, "***") if password else message

    def _create_schema(self) -> None:
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            db.execute("CREATE TABLE IF NOT EXISTS newsanchor_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM newsanchor_schema").fetchone()
            if row is not None and row["version"] > SCHEMA_VERSION:
                raise NewsanchorError(f"{self.shown}: job database schema {row['version']} is newer than this "
                                      f"newsanchor reads ({SCHEMA_VERSION})")
            if row is not None and row["version"] == SCHEMA_VERSION:
                return  # nothing to create: no DDL, so no table locks against running workers
            db.execute(SCHEMA)  # a new database gets this version's table; an older one keeps its own...
            for old in range(row["version"] if row is not None else SCHEMA_VERSION, SCHEMA_VERSION):
                for statement in MIGRATIONS[old]:  # ...and is brought up to date
                    db.execute(statement)
            for statement in INDEXES.split(";"):
                if statement.strip():
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO newsanchor_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            else:
                db.execute("UPDATE newsanchor_schema SET version = %s", (SCHEMA_VERSION,))

    def _connection(self) -> psycopg.Connection[DictRow]:
        """The connection, opened again if the server dropped it (a restart, a network cut): the
        operation that saw it drop failed, the next one works."""
        if self._db.closed and not self._closed:
            log.warning("%s: connection to the job database lost; reconnecting", self.shown)
            try:
                self._db = self._connect()
            except psycopg.Error as err:
                raise NewsanchorError(f"{self.shown}: cannot reconnect to the job database "
                                      f"({self._one_line(err)})") from None
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[DictRow]]:
        """One transaction on this store's connection (committed on success, else rolled back)."""
        with self._lock:
            db = self._connection()
            with db.transaction():
                yield db

    def _read(self, sql: str, params: tuple = ()) -> list[DictRow]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    # --- the app's side ---

    def create(self, job_id, anchor, request, *, kind="video", idempotency_key=None):
        try:
            return self._create(job_id, anchor, request, check_kind(kind), idempotency_key)
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == ONE_MAKER_PER_ANCHOR:
                raise AnchorInMaking(anchor) from None
            raise

    def _create(self, job_id: str, anchor: str, request: dict, kind: str, idempotency_key: str | None) -> tuple[Job, bool]:
        with self._transaction() as db:
            # ON CONFLICT: a second server creating the same key at the same moment waits for the
            # first to commit, then inserts nothing and returns the first one's job below
            rows = db.execute(
                f"INSERT INTO newsanchor_jobs (id, anchor, request, status, stage, idempotency_key, created, updated, "
                f"kind) VALUES (%s, %s, %s, 'queued', 'queued', %s, {NOW}, {NOW}, %s) "
                f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}",
                (job_id, anchor, Json(request), idempotency_key, kind)).fetchall()
            if rows:
                return Job(**rows[0]), True
            row = db.execute(f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE idempotency_key = %s",
                             (idempotency_key,)).fetchone()
            if row is None:  # only if the conflicting job was deleted in between
                raise NewsanchorError(f"{self.shown}: the job with Idempotency-Key {idempotency_key!r} "
                                      f"vanished while this one was created; send the request again")
            return Job(**row), False

    def find_by_key(self, idempotency_key):
        rows = self._read(f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE idempotency_key = %s", (idempotency_key,))
        return Job(**rows[0]) if rows else None

    def get(self, job_id):
        rows = self._read(f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE id = %s", (job_id,))
        return Job(**rows[0]) if rows else None

    def recent(self, limit=50):
        rows = self._read(f"SELECT {COLUMNS} FROM newsanchor_jobs ORDER BY created DESC, seq DESC LIMIT %s", (limit,))
        return [Job(**row) for row in rows]

    def of_kind(self, kind, *, anchor=None, unfinished=False, limit=50):
        rows = self._read(
            f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE kind = %s AND (%s::text IS NULL OR anchor = %s) "
            f"AND (NOT %s OR status IN ('queued', 'running')) ORDER BY created DESC, seq DESC LIMIT %s",
            (check_kind(kind), anchor, anchor, unfinished, limit))
        return [Job(**row) for row in rows]

    def cancel(self, job_id):
        with self._transaction() as db:
            db.execute(f"UPDATE newsanchor_jobs SET status = 'cancelled', stage = 'cancelled', eta_s = NULL, "
                       f"updated = {NOW} WHERE id = %s AND status = 'queued'", (job_id,))
            db.execute(f"UPDATE newsanchor_jobs SET cancel_requested = TRUE, stage = 'cancelling', updated = {NOW} "
                       f"WHERE id = %s AND status = 'running'", (job_id,))
            row = db.execute(f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE id = %s", (job_id,)).fetchone()
        return Job(**row) if row is not None else None

    def delete(self, job_id):
        with self._transaction() as db:
            rows = db.execute(f"DELETE FROM newsanchor_jobs WHERE id = %s RETURNING {COLUMNS}", (job_id,)).fetchall()
        return Job(**rows[0]) if rows else None

    # --- the workers' side ---

    def _requeue_dead(self, db: psycopg.Connection[DictRow]) -> list[str]:
        row = db.execute(f"SELECT {NOW} AS now").fetchone()
        if row is None:  # a SELECT without FROM returns one row
            raise NewsanchorError(f"{self.shown}: the job database returned no current time")
        now = row["now"]
        running = [Job(**r) for r in db.execute(f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE status = 'running'")]
        suspects = [job.id for job in running if worker_is_dead(job, now, stale_after=self.stale_after, host=self.host)]
        if not suspects:
            return []
        # lock the suspects and look again: a row another claimer is requeueing is skipped (it
        # requeues it, once), and a heartbeat that arrived meanwhile clears its worker
        locked = [Job(**r) for r in db.execute(
            f"SELECT {COLUMNS} FROM newsanchor_jobs WHERE id = ANY(%s) AND status = 'running' "
            f"FOR UPDATE SKIP LOCKED", (suspects,))]
        lost = [job for job in locked if worker_is_dead(job, now, stale_after=self.stale_after, host=self.host)]
        for job in lost:
            db.execute(f"UPDATE newsanchor_jobs SET {lost_job_update(job)}, updated = %s "
                       f"WHERE id = %s AND status = 'running'", (now, job.id))
            log_lost_job(job, now)
        return [job.id for job in lost]

    def recover(self):
        with self._transaction() as db:
            return self._requeue_dead(db)

    def claim(self, worker: WorkerIdentity, kind: str = "video"):
        with self._transaction() as db:
            self._requeue_dead(db)
            rows = db.execute(
                f"UPDATE newsanchor_jobs SET status = 'running', stage = 'starting', progress = 0, eta_s = NULL, "
                f"error = NULL, worker = %s, worker_pid = %s, worker_host = %s, heartbeat = {NOW}, updated = {NOW}, "
                f"attempts = attempts + 1 "
                f"WHERE id = (SELECT id FROM newsanchor_jobs WHERE status = 'queued' AND kind = %s "
                f"ORDER BY created, seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}",
                (worker.id, worker.pid, worker.host, check_kind(kind))).fetchall()
        return Job(**rows[0]) if rows else None

    def heartbeat(self, job_id, worker):
        with self._transaction() as db:
            rows = db.execute(f"UPDATE newsanchor_jobs SET heartbeat = {NOW} WHERE id = %s AND worker = %s "
                              f"AND status = 'running' RETURNING id", (job_id, worker.id)).fetchall()
        return bool(rows)

    def report(self, job_id, worker, progress, stage, eta_s):
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE newsanchor_jobs SET progress = %s, stage = CASE WHEN cancel_requested THEN stage ELSE %s END, "
                f"eta_s = %s, heartbeat = {NOW}, updated = {NOW} WHERE id = %s AND worker = %s AND status = 'running' "
                f"RETURNING cancel_requested", (float(progress), stage, eta_s, job_id, worker.id)).fetchall()
        if not rows:
            raise JobLost(job_id)
        if rows[0]["cancel_requested"]:
            raise JobCancelled(job_id)

    def finish(self, job_id, worker, status, *, error=None, video=None, captions=None):
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"finish: status must be done, failed or cancelled, got {status!r}")
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE newsanchor_jobs SET status = %s, stage = %s, "
                f"progress = CASE WHEN %s THEN 1.0 ELSE progress END, eta_s = NULL, error = %s, video = %s, "
                f"captions = %s, heartbeat = {NOW}, updated = {NOW} "
                f"WHERE id = %s AND worker = %s AND status = 'running' RETURNING id",
                (status, status, status == "done", error, video, captions, job_id, worker.id)).fetchall()
        return bool(rows)

    def close(self):
        with self._lock:
            self._closed = True
            self._db.close()
