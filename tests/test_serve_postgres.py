"""The job store contract, checked against both stores (a SQLite file and a real PostgreSQL
server started for the session), and the newsroom service running its queue in PostgreSQL.

The server: the PostgreSQL binaries installed on this machine (Debian: ``/usr/lib/postgresql/*/bin``,
else ``initdb`` on PATH), a throwaway cluster in a temporary folder, listening on 127.0.0.1 on a
free port with trust authentication and fsync off. Without the binaries, or when it cannot
start, the PostgreSQL cases are skipped with the reason; the SQLite cases still run.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from conftest import missing_dependency
from test_serve import LOCAL_URL, TestClient, anchors_dir, dead_pid, post_text, wait_done  # noqa: F401  (anchors_dir: a fixture)

from newsanchor.errors import NewsanchorError
from newsanchor.serve import postgres_store, sqlite_store
from newsanchor.serve.app import create_app
from newsanchor.serve.postgres_store import PostgresJobStore, public_url
from newsanchor.serve.service import WorkerPool
from newsanchor.serve.settings import ServeSettings
from newsanchor.serve.sqlite_store import SqliteJobStore
from newsanchor.serve.store import AnchorInMaking, JobCancelled, JobLost, WorkerIdentity, open_store

pytestmark = [pytest.mark.slow]
HOST = socket.gethostname()
REQUEST = {"input": "text", "text": "Good evening. Ça va?", "title": "Évening", "captions": True}


# --- a real PostgreSQL server for the session ---

def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps one per major version)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_unprivileged_user(folder: Path) -> list[str]:
    """The command prefix that runs the server's tools: initdb refuses to run as root, so as root
    they run as ``postgres`` (or ``nobody``), who is given ``folder``."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        missing_dependency("PostgreSQL: running as root and no runuser to start the server as another user")
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        for path in (folder, *folder.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return [runuser, "-u", user, "--"]
    missing_dependency("PostgreSQL: running as root and neither a postgres nor a nobody user to start it as")


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of its own: yields the URL of its ``postgres`` database (superuser
    ``newsanchor``, no password); stopped and deleted at the end of the session."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").is_file():
        missing_dependency("PostgreSQL: no server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH")
    # not under pytest's temporary folders: those are private to root, and the server runs as another user
    root = Path(tempfile.mkdtemp(prefix="newsanchor-pg-"))
    data, log = root / "data", root / "server.log"
    prefix = as_unprivileged_user(root)

    def tool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], cwd=root, capture_output=True, text=True, timeout=120)

    started = False
    try:
        made = tool(str(bin_dir / "initdb"), "-D", str(data), "-U", "newsanchor", "--auth=trust", "-E", "UTF8",
                    "--no-locale", "--no-sync")
        if made.returncode != 0:
            missing_dependency(f"PostgreSQL: initdb failed: {(made.stderr or made.stdout).strip().splitlines()[-1:]}")
        for attempt in range(3):  # a free port can be taken between finding it and binding it
            port = free_port()
            options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                       f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            run = tool(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
            if run.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else run.stderr
            missing_dependency(f"PostgreSQL: the server did not start: {tail}")
        yield f"postgresql://newsanchor@127.0.0.1:{port}/postgres"
    finally:
        if started:
            tool(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server, one per test."""
    name = f"jobs_{next(_database_numbers)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


# --- both stores, one contract ---

@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """``make_store(stale_after=…)`` opens another store (its own connection) on one fresh
    database per test; ``make_store.spec`` is what ``--db`` would say."""
    if request.param == "sqlite":
        spec = str(tmp_path / "jobs.sqlite")
        kind = lambda **options: SqliteJobStore(Path(spec), **options)  # noqa: E731
    else:
        spec = request.getfixturevalue("postgres_url")
        kind = lambda **options: PostgresJobStore(spec, **options)  # noqa: E731
    opened = []

    def make(**options):
        opened.append(kind(**options))
        return opened[-1]

    make.spec = spec
    yield make
    for store in opened:
        store.close()


def worker(name: str, pid: int | None = None, host: str = HOST) -> WorkerIdentity:
    return WorkerIdentity(f"{host}:{name}", pid if pid is not None else os.getpid(), host)


def job_id(n: int) -> str:
    return f"{n:032x}"


def test_jobs_are_created_once_per_key_and_listed_newest_first(make_store):
    store = make_store()
    first, created = store.create(job_id(1), "grid-s1", REQUEST, idempotency_key="retry-1")
    assert created and first.status == "queued" and first.stage == "queued" and first.progress == 0.0
    assert first.request == REQUEST and list(first.request) == list(REQUEST)  # keys keep their order
    assert first.attempts == 0 and first.worker is None and not first.cancel_requested
    assert abs(first.created - time.time()) < 5 and first.updated == first.created
    again, created = store.create(job_id(2), "grid-s1", {"input": "text", "text": "Other."}, idempotency_key="retry-1")
    assert not created and again == first
    assert store.find_by_key("retry-1") == first and store.find_by_key("never-used") is None
    for n in (3, 4):
        store.create(job_id(n), "grid-s1", REQUEST)
    assert [job.id for job in store.recent()] == [job_id(4), job_id(3), job_id(1)]
    assert [job.id for job in store.recent(2)] == [job_id(4), job_id(3)]
    assert store.get(job_id(2)) is None and store.get(job_id(1)) == first
    assert make_store().get(job_id(1)) == first  # another connection sees the same row


def test_one_idempotency_key_sent_from_several_connections_at_once_makes_one_job(make_store):
    stores = [make_store() for _ in range(8)]
    start = threading.Barrier(len(stores))

    def submit(index):
        start.wait()
        return stores[index].create(job_id(index), "grid-s1", REQUEST, idempotency_key="burst")

    with ThreadPoolExecutor(len(stores)) as pool:
        answers = list(pool.map(submit, range(len(stores))))
    assert sum(created for _, created in answers) == 1
    assert len({job.id for job, _ in answers}) == 1 and len(stores[0].recent()) == 1


def test_the_oldest_job_is_claimed_and_only_its_worker_reports_and_finishes_it(make_store):
    store = make_store()
    for n in range(3):
        store.create(job_id(n), "grid-s1", REQUEST)
    me, other = worker("me"), worker("other")
    job = store.claim(me)
    assert job.id == job_id(0) and job.status == "running" and job.stage == "starting" and job.attempts == 1
    assert (job.worker, job.worker_pid, job.worker_host) == (me.id, me.pid, me.host)
    assert abs(job.heartbeat - time.time()) < 5
    assert store.claim(other).id == job_id(1)  # the next oldest
    store.report(job.id, me, 0.5, "rendering frame 5 of 10", 2.5)
    reported = store.get(job.id)
    assert (reported.progress, reported.stage, reported.eta_s) == (0.5, "rendering frame 5 of 10", 2.5)
    assert store.heartbeat(job.id, me) and not store.heartbeat(job.id, other)
    with pytest.raises(JobLost):
        store.report(job.id, other, 0.9, "not mine", None)
    assert not store.finish(job.id, other, "failed", error="not mine")
    with pytest.raises(ValueError, match="done, failed or cancelled"):
        store.finish(job.id, me, "running")
    assert store.finish(job.id, me, "done", video=f"{job.id}/video.mp4", captions=f"{job.id}/captions.vtt")
    done = store.get(job.id)
    assert (done.status, done.stage, done.progress, done.eta_s, done.error) == ("done", "done", 1.0, None, None)
    assert (done.video, done.captions) == (f"{job.id}/video.mp4", f"{job.id}/captions.vtt")
    # a finished job is nobody's any more: no heartbeat, report or second ending applies
    assert not store.heartbeat(job.id, me) and not store.finish(job.id, me, "failed")
    with pytest.raises(JobLost):
        store.report(job.id, me, 0.1, "again", None)
    assert store.get(job.id) == done
    assert store.claim(me).id == job_id(2) and store.claim(me) is None
    assert store.finish(job_id(2), me, "failed", error="audio: too short")
    failed = store.get(job_id(2))
    assert (failed.status, failed.error, failed.progress) == ("failed", "audio: too short", 0.0)


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one_to_stop(make_store):
    store = make_store()
    for n in range(3):
        store.create(job_id(n), "grid-s1", REQUEST)
    me = worker("me")
    running = store.claim(me)
    assert running.id == job_id(0)
    queued = store.cancel(job_id(1))
    assert (queued.status, queued.stage, queued.cancel_requested) == ("cancelled", "cancelled", False)
    asked = store.cancel(running.id)
    assert (asked.status, asked.stage, asked.cancel_requested) == ("running", "cancelling", True)
    with pytest.raises(JobCancelled):
        store.report(running.id, me, 0.4, "rendering frame 4 of 10", 1.0)
    assert store.get(running.id).stage == "cancelling" and store.get(running.id).progress == 0.4
    assert store.finish(running.id, me, "cancelled")
    assert store.get(running.id).status == "cancelled"
    assert store.claim(me).id == job_id(2) and store.claim(me) is None  # the cancelled one is never claimed
    assert store.finish(job_id(2), me, "done")
    assert store.cancel(job_id(2)).status == "done"  # finished jobs stay as they are
    assert store.cancel(job_id(9)) is None


def test_a_worker_that_lost_its_job_can_never_overwrite_it(make_store):
    store = make_store(stale_after=0.5)
    first, second = worker("first"), worker("second")
    store.create(job_id(1), "grid-s1", REQUEST)
    store.claim(first)
    # deleted while it runs
    assert store.delete(job_id(1)).worker == first.id and store.get(job_id(1)) is None and store.delete(job_id(1)) is None
    with pytest.raises(JobLost):
        store.report(job_id(1), first, 0.5, "rendering", None)
    assert not store.heartbeat(job_id(1), first) and not store.finish(job_id(1), first, "done")
    # taken for dead (no heartbeat for longer than stale_after), requeued and claimed by another
    store.create(job_id(2), "grid-s1", REQUEST)
    assert store.claim(first).id == job_id(2)
    time.sleep(0.7)
    assert store.claim(second).id == job_id(2)
    taken = store.get(job_id(2))
    assert taken.worker == second.id and taken.attempts == 2
    with pytest.raises(JobLost):
        store.report(job_id(2), first, 0.9, "rendering", None)
    assert not store.heartbeat(job_id(2), first) and not store.finish(job_id(2), first, "done", video="stale.mp4")
    assert store.get(job_id(2)) == taken
    assert store.finish(job_id(2), second, "done") and store.get(job_id(2)).video is None


def test_jobs_of_dead_workers_are_requeued_and_others_left_alone(make_store):
    store = make_store(stale_after=1.0)
    ids = {name: job_id(n) for n, name in enumerate(("gone", "frozen", "alive", "far", "cancelling", "done"))}
    for n in ids.values():
        store.create(n, "grid-s1", REQUEST)
    # two workers' processes that end after their claims (a dead pid at claim time would be requeued by the next claim)
    doomed = {name: subprocess.Popen(["sleep", "60"]) for name in ("gone", "cancelling")}
    pids = {"far": dead_pid(), **{name: process.pid for name, process in doomed.items()}}
    for name in ids:  # each claims the oldest queued job: the order of ids above
        assert store.claim(worker(name, pids.get(name), "elsewhere" if name == "far" else HOST)).id == ids[name]
    assert store.cancel(ids["cancelling"]).cancel_requested
    assert store.finish(ids["done"], worker("done"), "done")
    for process in doomed.values():
        process.kill()
        process.wait()
    # a process that is gone on this host is found at once, without waiting for its heartbeat
    assert sorted(store.recover()) == sorted([ids["gone"], ids["cancelling"]])
    requeued = store.get(ids["gone"])
    assert (requeued.status, requeued.stage, requeued.progress, requeued.eta_s) == \
        ("queued", "requeued: its worker stopped", 0.0, None)
    assert (requeued.worker, requeued.worker_pid, requeued.heartbeat, requeued.attempts) == (None, None, None, 1)
    assert store.get(ids["cancelling"]).status == "cancelled"  # asked to stop anyway: not run again
    # a process id names nothing on another host: "far" waits for its heartbeat to go stale, as
    # does "frozen" (its process exists but it stopped reporting); "alive" keeps beating
    for _ in range(6):
        time.sleep(0.2)
        assert store.heartbeat(ids["alive"], worker("alive"))
    assert sorted(store.recover()) == sorted([ids["frozen"], ids["far"]])
    assert store.get(ids["alive"]).status == "running" and store.get(ids["done"]).status == "done"
    assert store.recover() == []
    assert [store.claim(worker("next")).id for _ in range(3)] == [ids["gone"], ids["frozen"], ids["far"]]
    assert all(store.get(ids[name]).attempts == 2 for name in ("gone", "frozen", "far"))


def test_claims_from_several_connections_never_share_a_job(make_store):
    stores = [make_store() for _ in range(8)]
    for n in range(40):
        stores[0].create(job_id(n), "grid-s1", {"input": "text", "text": "x"})
    claimed: list[str] = []
    start = threading.Barrier(len(stores))

    def drain(index):
        me = worker(f"w{index}")
        start.wait()
        while (job := stores[index].claim(me)) is not None:
            claimed.append(job.id)
            assert stores[index].finish(job.id, me, "done")

    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(drain, range(len(stores))))
    assert sorted(claimed) == [job_id(n) for n in range(40)]
    assert all(job.status == "done" and job.attempts == 1 for job in stores[0].recent(100))
    if isinstance(stores[0], SqliteJobStore):
        assert stores[0]._read("PRAGMA journal_mode")[0][0] == "wal"


CLAIM_THEN_WAIT = """
import sys, time
from newsanchor.serve.store import WorkerIdentity, open_store
store = open_store(sys.argv[1])
print(store.claim(WorkerIdentity.here("doomed")).id, flush=True)
time.sleep(600)
"""


def test_the_job_of_a_killed_worker_process_is_requeued_exactly_once(make_store, caplog):
    stores = [make_store() for _ in range(8)]
    stores[0].create(job_id(7), "grid-s1", REQUEST)
    doomed = subprocess.Popen([sys.executable, "-c", CLAIM_THEN_WAIT, make_store.spec], stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout.readline().strip() == job_id(7)
        taken = stores[0].get(job_id(7))
        assert taken.status == "running" and taken.worker_pid == doomed.pid
        assert stores[0].recover() == []  # alive: left alone
    finally:
        doomed.kill()  # kill -9: no chance to finish or release anything
        doomed.wait()
    start = threading.Barrier(len(stores))

    def claim(index):
        start.wait()
        return stores[index].claim(worker(f"w{index}"))

    with caplog.at_level("WARNING", logger="newsanchor.serve"), ThreadPoolExecutor(len(stores)) as pool:
        claims = list(pool.map(claim, range(len(stores))))
    won = [job for job in claims if job is not None]
    assert len(won) == 1 and won[0].id == job_id(7) and won[0].attempts == 2
    assert sum(job_id(7) in record.getMessage() and "requeued" in record.getMessage() for record in caplog.records) == 1
    assert stores[0].recover() == [] and stores[0].get(job_id(7)).worker == won[0].worker
    assert not stores[0].finish(job_id(7), WorkerIdentity(taken.worker, doomed.pid, HOST), "done")


# --- anchor jobs: the same queue, their own workers ---

ANCHOR_REQUEST = {"input": "recordings", "presenter": "Jane Doe", "consent": "Jane agreed on 2026-11-01.",
                  "recordings": [{"file": "recording-01", "name": "take1.mp4"}]}


def test_anchor_jobs_are_claimed_by_anchor_workers_only_and_one_job_makes_a_name(make_store):
    store = make_store(stale_after=0.5)
    store.create(job_id(1), "grid-s1", REQUEST)
    made, created = store.create(job_id(2), "jane", ANCHOR_REQUEST, kind="anchor")
    assert created and made.kind == "anchor" and made.request == ANCHOR_REQUEST and made.status == "queued"
    store.create(job_id(3), "grid-s1", REQUEST)
    with pytest.raises(ValueError, match="job kind"):
        store.create(job_id(9), "grid-s1", REQUEST, kind="podcast")
    videos, anchors = worker("videos"), worker("anchors")
    assert [store.claim(videos).id, store.claim(videos, "video").id, store.claim(videos)] == [job_id(1), job_id(3), None]
    assert all(store.get(job_id(n)).kind == "video" and store.finish(job_id(n), videos, "done") for n in (1, 3))
    # one unfinished job per anchor name, whoever asks (another connection, another key)
    with pytest.raises(AnchorInMaking, match="'jane': already being made"):
        make_store().create(job_id(4), "jane", ANCHOR_REQUEST, kind="anchor", idempotency_key="other")
    assert store.get(job_id(4)) is None and store.find_by_key("other") is None
    assert store.create(job_id(5), "john", {**ANCHOR_REQUEST, "presenter": "John"}, kind="anchor")[1]
    assert [j.id for j in store.of_kind("anchor", unfinished=True)] == [job_id(5), job_id(2)]
    assert [j.id for j in store.of_kind("anchor", anchor="jane")] == [job_id(2)]
    assert [j.id for j in store.of_kind("video", limit=1)] == [job_id(3)]
    # an anchor worker that stops beating loses its job to the queue, and only an anchor worker takes it again
    assert store.claim(anchors, "anchor").id == job_id(2)
    store.report(job_id(2), anchors, 0.3, "training audio→mouth: step 5 of 30", 120.0)
    time.sleep(0.7)
    assert store.claim(videos) is None  # its claim requeued the anchor job, but does not take it
    requeued = store.get(job_id(2))
    assert (requeued.status, requeued.kind, requeued.progress) == ("queued", "anchor", 0.0)
    with pytest.raises(AnchorInMaking):  # still being made: queued again
        store.create(job_id(6), "jane", ANCHOR_REQUEST, kind="anchor")
    again = store.claim(worker("anchors-2"), "anchor")
    assert again.id == job_id(2) and again.attempts == 2
    assert store.finish(job_id(2), worker("anchors-2"), "failed", error="2 problems with the recordings")
    assert store.create(job_id(6), "jane", ANCHOR_REQUEST, kind="anchor")[1]  # the name is free once it failed
    assert store.cancel(job_id(6)).status == "cancelled"
    assert store.claim(anchors, "anchor").id == job_id(5) and store.claim(anchors, "anchor") is None


V1_SQLITE = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, anchor TEXT NOT NULL, request TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT 'queued', eta_s REAL, error TEXT,
    idempotency_key TEXT UNIQUE, worker TEXT, worker_pid INTEGER, worker_host TEXT, heartbeat REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
    updated REAL NOT NULL, video TEXT, captions TEXT);
CREATE INDEX jobs_by_status ON jobs (status, created);
CREATE INDEX jobs_by_created ON jobs (created);
INSERT INTO jobs (id, anchor, request, status, created, updated) VALUES ('{id}', 'grid-s1', '{{"input": "text", "text": "Kept."}}', 'queued', 1, 1);
PRAGMA user_version = 1;
"""
V1_POSTGRES = """
CREATE TABLE newsanchor_schema (version INTEGER NOT NULL);
INSERT INTO newsanchor_schema (version) VALUES (1);
CREATE TABLE newsanchor_jobs (id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY, anchor TEXT NOT NULL,
    request JSON NOT NULL, status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress DOUBLE PRECISION NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT 'queued', eta_s DOUBLE PRECISION,
    error TEXT, idempotency_key TEXT UNIQUE, worker TEXT, worker_pid INTEGER, worker_host TEXT,
    heartbeat DOUBLE PRECISION, cancel_requested BOOLEAN NOT NULL DEFAULT FALSE, attempts INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL, video TEXT, captions TEXT);
CREATE INDEX newsanchor_jobs_by_status ON newsanchor_jobs (status, created, seq);
CREATE INDEX newsanchor_jobs_by_created ON newsanchor_jobs (created, seq);
INSERT INTO newsanchor_jobs (id, anchor, request, status, created, updated)
    VALUES ('{id}', 'grid-s1', '{{"input": "text", "text": "Kept."}}', 'queued', 1, 1);
"""


def test_a_queue_of_the_first_schema_is_brought_up_to_date_with_its_jobs(make_store):
    """A database made before jobs had a kind: its jobs are videos, and anchor jobs can join them."""
    if isinstance(make_store(), SqliteJobStore):
        Path(make_store.spec).unlink()
        for end in ("-wal", "-shm"):
            Path(make_store.spec + end).unlink(missing_ok=True)
        with sqlite3.connect(make_store.spec) as db:
            db.executescript(V1_SQLITE.format(id=job_id(1)))
        version = sqlite_store.SCHEMA_VERSION
    else:
        with psycopg.connect(make_store.spec, autocommit=True) as db:
            db.execute("DROP TABLE newsanchor_jobs")
            db.execute("DROP TABLE newsanchor_schema")
            db.execute(V1_POSTGRES.format(id=job_id(1)))
        version = postgres_store.SCHEMA_VERSION
    stores = [make_store() for _ in range(3)]  # several processes starting at once migrate it once
    kept = stores[0].get(job_id(1))
    assert (kept.kind, kept.status, kept.request) == ("video", "queued", {"input": "text", "text": "Kept."})
    assert stores[1].create(job_id(2), "jane", ANCHOR_REQUEST, kind="anchor")[1]
    with pytest.raises(AnchorInMaking):
        stores[2].create(job_id(3), "jane", ANCHOR_REQUEST, kind="anchor")
    assert stores[1].claim(worker("videos")).id == job_id(1)
    assert stores[2].claim(worker("anchors"), "anchor").id == job_id(2)
    if isinstance(stores[0], SqliteJobStore):
        assert stores[0]._read("PRAGMA user_version")[0][0] == version
    else:
        with psycopg.connect(make_store.spec) as db:
            assert db.execute("SELECT version FROM newsanchor_schema").fetchall() == [(version,)]


# --- PostgreSQL only ---

def test_processes_starting_at_once_create_the_schema_once(postgres_url):
    start = threading.Barrier(8)

    def open_one(_):
        start.wait()
        return PostgresJobStore(postgres_url)

    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(open_one, range(8)))
    stores[0].create(job_id(1), "grid-s1", REQUEST)
    assert all(store.get(job_id(1)) is not None for store in stores)
    newer = postgres_store.SCHEMA_VERSION + 1
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM newsanchor_schema").fetchall() == [(postgres_store.SCHEMA_VERSION,)]
        db.execute("UPDATE newsanchor_schema SET version = %s", (newer,))
    for store in stores:
        store.close()
    with pytest.raises(NewsanchorError, match=f"schema {newer} is newer than this newsanchor reads"):
        PostgresJobStore(postgres_url)


def test_postgres_urls_open_the_postgres_store_and_a_lost_connection_comes_back(postgres_url, postgres_server):
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://"),
                postgres_url.replace("postgresql://", "postgresql+psycopg://")):
        store = open_store(url)
        assert isinstance(store, PostgresJobStore)
        store.close()
    store = open_store(postgres_url)
    store.create(job_id(1), "grid-s1", REQUEST)
    pid = store._db.info.backend_pid
    with psycopg.connect(postgres_server, autocommit=True) as admin:  # as a server restart would
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        store.get(job_id(1))  # the call that finds the connection gone fails...
    assert store.get(job_id(1)).id == job_id(1)  # ...the next one reconnects
    store.close()


def test_an_unreachable_database_is_one_line_without_its_password():
    port = free_port()  # nothing listens there
    for url in (f"postgresql://anchor:s3cret-pw@127.0.0.1:{port}/news",
                f"postgresql://anchor@127.0.0.1:{port}/news?password=s3cret-pw&connect_timeout=5"):
        with pytest.raises(NewsanchorError) as caught:
            open_store(url)
        message = str(caught.value)
        assert message.startswith(f"postgresql://anchor@127.0.0.1:{port}/news")
        assert "cannot open the job database" in message and "s3cret" not in message and "\n" not in message
    with pytest.raises(NewsanchorError, match="cannot open the job database") as caught:
        open_store("postgresql://anchor:s3cret-pw@[::1/news")  # libpq quotes a URL it cannot read
    assert "s3cret" not in str(caught.value)
    assert public_url("postgres://u:pw@h:5/d?sslmode=require&password=pw") == "postgres://u@h:5/d?sslmode=require"


def test_the_service_renders_a_job_with_its_queue_in_postgresql(anchors_dir, postgres_url, monkeypatch):  # noqa: F811
    """The real app and a real worker process (as ``newsanchor serve`` starts it), sharing the queue
    only through PostgreSQL."""
    monkeypatch.setenv("NEWSANCHOR_WORKERS", "1")  # WorkerPool.start sets it; restored afterwards
    settings = ServeSettings(anchors_dir, db=postgres_url)
    app = create_app(settings)
    assert isinstance(app.state.store, PostgresJobStore)
    pool = WorkerPool(settings, 1, device="cpu")
    try:
        with TestClient(app, base_url=LOCAL_URL) as client:
            pool.start()
            created = post_text(client, "Good evening from the database.", title="Evening news")
            assert created.status_code == 201, created.text
            job, seen = wait_done(client, created.json()["id"], timeout=300)
            assert job["status"] == "done" and job["progress"] == 1.0, job
            assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)
            video = client.get(job["video"])
            assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and len(video.content) > 1000
            assert client.get(job["captions"]).text.startswith("WEBVTT")
    finally:
        pool.stop()
    row = app.state.store.get(job["id"])
    assert row.attempts == 1 and row.worker.endswith(":w0") and row.worker_pid not in (None, os.getpid())
    app.state.store.close()


def test_the_service_runs_an_anchor_job_with_its_queue_in_postgresql(anchors_dir, postgres_url, monkeypatch,  # noqa: F811
                                                                   actor_anchor_bundle):
    """The real app and a real anchor worker process sharing the queue through PostgreSQL: the
    actor's recording, refused by its checks (fast), fails the job with every problem listed."""
    monkeypatch.setenv("NEWSANCHOR_WORKERS", "1")
    recording = actor_anchor_bundle.parent / "recordings" / "actor_00.mp4"
    settings = ServeSettings(anchors_dir, db=postgres_url)
    app = create_app(settings)
    pool = WorkerPool(settings, 0, device="cpu", anchor_count=1)
    try:
        with TestClient(app, base_url=LOCAL_URL) as client:
            pool.start()
            answer = client.post("/api/anchors", files=[("recordings", ("take1.mp4", recording.read_bytes(), "video/mp4"))],
                                 data={"name": "refused", "presenter": "Synthetic test actor", "consent": "synthetic",
                                       "consent_given": "true"})
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 300
            while (detail := client.get("/api/anchors/refused").json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, detail
                time.sleep(0.2)
            assert detail["state"] == "failed", detail
            assert {p["check"] for p in detail["problems"]} == {"speech_too_short", "no_quiet_stretch"}
    finally:
        pool.stop()
    row = app.state.store.get(answer.json()["id"])
    assert row.kind == "anchor" and row.worker.endswith(":a0") and row.worker_pid not in (None, os.getpid())
    app.state.store.close()
