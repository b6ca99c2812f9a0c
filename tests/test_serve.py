"""The newsroom service (serve/): the REST API against the real app, a real worker and a tiny
anchor of the synthetic actor; the SQLite job store's claims and crash recovery; security. The store
contract itself, for SQLite and PostgreSQL alike, is in test_serve_postgres.py."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor.cli import app as cli_app
from newsanchor.errors import NewsanchorError
from newsanchor.serve.anchors import discover_anchors
from newsanchor.serve.app import create_app
from newsanchor.serve.security import is_loopback, resolve_token
from newsanchor.serve.settings import ServeSettings
from newsanchor.serve.sqlite_store import SqliteJobStore
from newsanchor.serve.store import open_store
from newsanchor.serve.worker import Worker

with warnings.catch_warnings():  # this Starlette wants httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# the anchor is the synthetic actor's tiny bundle (conftest): no ../shared needed, seconds per job
pytestmark = [pytest.mark.usefixtures("one_torch_thread")]
TOKEN = "a-test-token-long-enough"
# a loopback service answers only to its own names (TestClient's default is "testserver")
LOCAL_URL = "http://localhost"


@pytest.fixture(scope="module")
def anchors_dir(actor_anchor_bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("newsroom")
    shutil.copytree(actor_anchor_bundle, root / "actor")
    (root / "broken").mkdir()  # refused, with a reason in the log
    (root / "broken" / "anchor.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def service(anchors_dir):
    settings = ServeSettings(anchors_dir, submissions_per_minute=10_000)  # the limit has its own test
    app = create_app(settings)
    with TestClient(app, base_url=LOCAL_URL) as client:
        yield SimpleNamespace(app=app, client=client, store=app.state.store, settings=settings)
    app.state.store.close()


@pytest.fixture(scope="module")
def the_worker(service):
    """A real worker with its own database connection, kept so its pipeline and voice load once."""
    store = SqliteJobStore(Path(service.settings.db_spec))
    yield Worker(store, service.settings.anchors_dir, service.settings.outputs_dir, name="test", device="cpu")
    store.close()


@pytest.fixture
def running_worker(the_worker):
    """The worker's loop in a thread for the length of a test."""
    stop = threading.Event()
    thread = threading.Thread(target=the_worker.run, args=(stop,), kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()
    yield the_worker
    stop.set()
    thread.join(120)


def post_text(client, text="Good evening.", **extra):
    return client.post("/api/jobs", json={"anchor": "actor", "text": text, **extra})


def wait_done(client, job_id, timeout=90.0):
    seen, deadline = [], time.monotonic() + timeout
    while not seen or seen[-1]["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job {job_id} not finished after {timeout} s: {seen[-1]}"
        time.sleep(0.05 if seen else 0)
        seen.append(client.get(f"/api/jobs/{job_id}").json())
    return seen[-1], seen


@pytest.fixture(scope="module")
def speech():
    """Real speech, [S] float32 at 16 kHz: the default voice reading a sentence (~4 s)."""
    from newsanchor.speech import synthesize_speech

    return synthesize_speech("Good evening. The council met today to discuss the budget for next year.").waveform


def speech_wav_bytes(speech, seconds=1.0) -> bytes:
    samples = (np.clip(speech[:int(16000 * seconds)], -1, 1) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


def set_running(db: str, job_id: str, *, pid: int, heartbeat: float):
    """What a worker that claimed the job and then died (or froze) leaves in the table."""
    with sqlite3.connect(db) as con:
        con.execute("UPDATE jobs SET status = 'running', worker = 'ghost', worker_pid = ?, worker_host = ?, "
                    "heartbeat = ?, attempts = attempts + 1 WHERE id = ?",
                    (pid, socket.gethostname(), heartbeat, job_id))


def act_mid_render(worker, monkeypatch, action):
    """Call ``action(job_id)`` (it must succeed) when the worker reports its first rendered
    frames, as a user might."""
    real_report = worker.store.report

    def report(job_id, identity, progress, stage, eta_s):
        if stage.startswith("rendering frame"):
            assert action(job_id)
        return real_report(job_id, identity, progress, stage, eta_s)

    monkeypatch.setattr(worker.store, "report", report)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the id names no process any more
    return process.pid


def test_anchors_are_listed_with_thumbnails_and_bad_bundles_skipped(service, anchors_dir, caplog):
    anchors = service.client.get("/api/anchors").json()
    assert [{key: a[key] for key in ("name", "presenter", "thumbnail", "state", "quality_status")} for a in anchors] == [
        {"name": "actor", "presenter": {"name": "Synthetic test actor", "consent": "synthetic; no real person"},
         "thumbnail": "/api/anchors/actor/thumbnail", "state": "ready", "quality_status": "no quality report"}]
    png = service.client.get(anchors[0]["thumbnail"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert service.client.get("/api/anchors/broken/thumbnail").status_code == 404
    with caplog.at_level("WARNING", logger="newsanchor.serve"):
        assert list(discover_anchors(anchors_dir)) == ["actor"]
    assert any("broken: skipped" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)


def test_the_page_works_offline_and_labels_every_control(service):
    page = service.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]

    controls = re.findall(r"<(?:input|textarea|select|progress)\b[^>]*>", page.text)
    ids = [re.search(r'\bid="([^"]+)"', tag).group(1) for tag in controls]  # every control has an id...
    assert ids and set(ids) <= set(re.findall(r'<label[^>]*\bfor="([^"]+)"', page.text))  # ...and a label
    assert not [url for url in re.findall(r'(?:src|href)="([^"]*)"', page.text) if "//" in url]  # nothing from elsewhere
    assert [service.client.get(f"/static/{name}").status_code for name in ("app.js", "style.css")] == [200, 200]


def test_the_api_docs_are_served_by_the_app_itself(service, anchors_dir):
    docs = service.client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    urls = sorted(re.findall(r'(?:src|href)="([^"]*)"', docs.text))
    assert urls == ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "data:,"]  # no CDN
    assert [service.client.get(url).status_code for url in urls[:2]] == [200, 200]
    # the start-up script runs because the policy names its hash, not because inline scripts are allowed
    csp = docs.headers["content-security-policy"]
    inline = re.search(r"<script>(.*?)</script>", docs.text, re.DOTALL).group(1).encode()
    assert f"'sha256-{base64.b64encode(hashlib.sha256(inline).digest()).decode()}'" in csp
    assert "unsafe" not in csp and "default-src 'self'" in csp and len(docs.headers.get_list("content-security-policy")) == 1
    assert service.client.get("/redoc").status_code == 404  # switched off rather than loaded from a CDN
    # beyond loopback its files load like the page's; the docs page needs the token like the API
    closed = TestClient(create_app(ServeSettings(anchors_dir, host="0.0.0.0", token=TOKEN), store=service.store))
    assert closed.get("/docs/assets/swagger-ui.css").status_code == 200
    assert closed.get("/docs").status_code == 401
    assert closed.get("/docs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_script_becomes_an_mp4_with_sound_and_captions(service, running_worker):
    created = post_text(service.client, title="Evening news", subtitle="Live")
    assert created.status_code == 201 and created.headers["location"] == f"/api/jobs/{created.json()['id']}"
    job, seen = wait_done(service.client, job_id := created.json()["id"])
    assert job["status"] == "done" and job["progress"] == 1.0 and job["anchor"] == "actor"
    assert job["eta_s"] is None and job["error"] is None
    assert [s["progress"] for s in seen] == sorted(s["progress"] for s in seen)  # never goes backwards
    video = service.client.get(job["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        assert container.streams.video and container.streams.audio
        assert container.metadata["newsanchor_ai_generated"] == "true"
    captions = service.client.get(job["captions"])
    assert captions.status_code == 200 and captions.text.startswith("WEBVTT") and "Good evening." in captions.text
    assert job_id in [j["id"] for j in service.client.get("/api/jobs").json()]
    folder = service.settings.outputs_dir / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["captions.vtt", "video.mp4"]  # no temporary left


def test_an_uploaded_recording_is_checked_by_content_and_lip_synced(service, the_worker, speech):
    before = len(service.store.recent(1000))
    for content in (b"\x89PNG\r\n\x1a\n" + bytes(200), b"This is not a recording at all.\n" * 20):
        answer = service.client.post("/api/jobs", data={"anchor": "actor"},
                                     files={"audio": ("speech.wav", content, "audio/wav")})
        assert answer.status_code == 415 and answer.json()["error"].startswith("audio: not a usable audio recording")
        assert "/" not in answer.json()["error"].split("(", 1)[1]  # no server path in the message
    assert len(service.store.recent(1000)) == before
    assert not [p for p in service.settings.outputs_dir.iterdir() if p.name.startswith(".upload")]
    # a real recording under a misleading name and type is accepted: the content decides
    answer = service.client.post("/api/jobs", data={"anchor": "actor"},
                                 files={"audio": ("../../etc/passwd.png", speech_wav_bytes(speech), "image/png")})
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    assert sorted(p.name for p in (service.settings.outputs_dir / job_id).iterdir()) == ["input"]
    assert the_worker.run_once()
    job = service.client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "done" and job["input"] == "audio" and job["captions"] is None
    assert service.client.get(f"/api/jobs/{job_id}/video").status_code == 200
    missing = service.client.get(f"/api/jobs/{job_id}/captions")
    assert missing.status_code == 404 and "no captions" in missing.json()["error"]


def test_idempotency_key_returns_the_same_job(service):
    headers = {"Idempotency-Key": "retry-1"}
    first = service.client.post("/api/jobs", json={"anchor": "actor", "text": "Same story."}, headers=headers)
    again = service.client.post("/api/jobs", json={"anchor": "actor", "text": "Same story."}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200 and first.json()["id"] == again.json()["id"]
    other = service.client.post("/api/jobs", json={"anchor": "actor", "text": "Another story."}, headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]
    assert sum(j.idempotency_key == "retry-1" for j in service.store.recent(1000)) == 1
    service.client.post(f"/api/jobs/{first.json()['id']}/cancel")


@pytest.mark.parametrize("body, status, message", [
    ({"anchor": "actor", "text": "x" * 20_001}, 413, "text: 20001 characters"),
    ({"anchor": "actor", "text": " ... "}, 422, "nothing to speak"),
    ({"anchor": "actor"}, 422, "text: Field required"),
    ({"anchor": "actor", "text": "Hi.", "title": "Café"}, 422, "title: only printable ASCII"),
    ({"anchor": "actor", "text": "Hi.", "subtitle": "Live"}, 422, "subtitle: needs a title"),
    ({"anchor": "nobody", "text": "Hi."}, 404, "anchor 'nobody': not found"),
])
def test_bad_submissions_get_one_line_json_errors(service, body, status, message):
    before = len(service.store.recent(1000))
    answer = service.client.post("/api/jobs", json=body)
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"]
    assert len(service.store.recent(1000)) == before


def test_unknown_jobs_are_404_and_unexpected_errors_hide_their_traceback(service, anchors_dir, tmp_path):
    paths = ("/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/..%2F..%2Fetc", "/api/jobs/x/video")
    assert all((a := service.client.get(p)).status_code == 404 and "error" in a.json() for p in paths)
    assert service.client.delete("/api/jobs/0123456789abcdef0123456789abcdef").status_code == 404
    app = create_app(ServeSettings(anchors_dir, db=str(tmp_path / "jobs.sqlite")))

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret detail at /srv/x.py line 3")

    answer = TestClient(app, base_url=LOCAL_URL, raise_server_exceptions=False).get("/api/boom")
    assert answer.status_code == 500 and answer.json() == {"error": "internal server error (details are in the server log)"}


def test_a_queued_job_is_cancelled_at_once_and_never_rendered(service, the_worker):
    job_id = post_text(service.client, "Never read.").json()["id"]
    answer = service.client.post(f"/api/jobs/{job_id}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert not the_worker.run_once()  # nothing left to claim
    assert service.client.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
    assert service.client.get(f"/api/jobs/{job_id}/video").status_code == 404


def test_a_running_job_stops_at_its_next_frame_report(service, the_worker, monkeypatch):
    job_id = post_text(service.client, "Good evening. This one is stopped while it renders.").json()["id"]
    job = the_worker.store.claim(the_worker.identity)
    assert job.id == job_id
    act_mid_render(the_worker, monkeypatch,
                   lambda i: service.client.post(f"/api/jobs/{i}/cancel").json()["status"] == "running")
    the_worker.process(job)
    final = service.client.get(f"/api/jobs/{job_id}").json()
    assert final["status"] == "cancelled" and 0.1 < final["progress"] < 0.98
    assert not (service.settings.outputs_dir / job_id / "video.mp4").exists()
    assert not [p for p in (service.settings.outputs_dir / job_id).iterdir() if p.name.startswith(".")]


def test_delete_removes_the_job_and_its_files_even_while_it_renders(service, the_worker, monkeypatch):
    job_id = post_text(service.client, "Delete me.").json()["id"]
    assert the_worker.run_once()
    folder = service.settings.outputs_dir / job_id
    assert (folder / "video.mp4").is_file()
    assert service.client.delete(f"/api/jobs/{job_id}").status_code == 204
    assert not folder.exists() and service.client.get(f"/api/jobs/{job_id}").status_code == 404
    assert service.client.delete(f"/api/jobs/{job_id}").status_code == 404
    # deleted mid-render: the worker stops at its next report and leaves nothing behind
    job_id = post_text(service.client, "Deleted while it renders.").json()["id"]
    act_mid_render(the_worker, monkeypatch, lambda i: service.client.delete(f"/api/jobs/{i}").status_code == 204)
    assert the_worker.run_once()
    assert service.store.get(job_id) is None and not (service.settings.outputs_dir / job_id).exists()
    assert job_id not in the_worker.processed


def test_jobs_of_dead_workers_are_requeued_and_rendered_exactly_once(service, the_worker):
    db = service.settings.db_spec
    lost_pid, stale, alive = (post_text(service.client, f"Story {n}.").json()["id"] for n in range(3))
    set_running(db, lost_pid, pid=dead_pid(), heartbeat=time.time())  # process gone: found at once
    set_running(db, stale, pid=os.getpid(), heartbeat=time.time() - 120)  # frozen: heartbeat too old
    set_running(db, alive, pid=os.getpid(), heartbeat=time.time())  # a live worker's job: left alone
    assert [the_worker.run_once() for _ in range(3)] == [True, True, False]
    for job_id in (lost_pid, stale):
        job = service.store.get(job_id)
        assert job.status == "done" and job.attempts == 2 and job.worker == the_worker.identity.id
        assert (service.settings.outputs_dir / job_id / "video.mp4").is_file()
        assert the_worker.processed.count(job_id) == 1
    assert service.store.get(alive).status == "running" and service.store.get(alive).worker == "ghost"
    # a done job is never taken again, whatever its old worker columns say
    set_running(db, lost_pid, pid=dead_pid(), heartbeat=0.0)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (lost_pid,))
    assert not the_worker.run_once() and service.store.get(lost_pid).status == "done"
    assert service.store.recover() == []
    service.client.delete(f"/api/jobs/{alive}")


@pytest.mark.slow
def test_twenty_concurrent_submissions_complete_exactly_once(service, running_worker):
    def submit(n):
        return service.client.post("/api/jobs", json={"anchor": "actor", "text": "News."},
                                   headers={"Idempotency-Key": f"burst-{n}"})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 20
    deadline = time.monotonic() + 100
    while any(service.store.get(i).status != "done" for i in ids):
        assert time.monotonic() < deadline, [service.store.get(i).status for i in ids]
        time.sleep(0.1)
    for job_id in ids:
        assert service.store.get(job_id).attempts == 1 and running_worker.processed.count(job_id) == 1
        assert (service.settings.outputs_dir / job_id / "video.mp4").is_file()


def test_beyond_loopback_every_route_but_the_page_needs_the_token(service, anchors_dir, tmp_path):
    app = create_app(ServeSettings(anchors_dir, host="0.0.0.0", token=TOKEN), store=service.store)
    client = TestClient(app, base_url=LOCAL_URL)
    for path in ("/api/anchors", "/api/jobs", "/api/anchors/actor/thumbnail", "/openapi.json"):
        denied = client.get(path)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer" and "token" in denied.json()["error"]
        assert client.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.post("/api/jobs", json={"anchor": "actor", "text": "Hi."}).status_code == 401
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
    with pytest.raises(ValueError, match="needs a token"):
        create_app(ServeSettings(anchors_dir, host="0.0.0.0"), store=service.store)
    # the token: generated once, saved private, reused, announced only when made
    said, file = [], tmp_path / "token"
    assert resolve_token("127.0.0.1", None, file, announce=said.append) is None
    token = resolve_token("0.0.0.0", None, file, announce=said.append)
    assert len(token) >= 32 and file.stat().st_mode & 0o777 == 0o600 and token in said[-1]
    assert resolve_token("192.168.1.5", None, file, announce=said.append) == token and token not in said[-1]
    assert resolve_token("0.0.0.0", TOKEN, file, announce=said.append) == TOKEN
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3")] == [True] * 3 + [False] * 2


def test_submissions_are_rate_limited(anchors_dir, tmp_path):
    app = create_app(ServeSettings(anchors_dir, db=str(tmp_path / "jobs.sqlite"), submissions_per_minute=3))
    client = TestClient(app, base_url=LOCAL_URL)
    answers = [client.post("/api/jobs", json={"anchor": "actor", "text": "Hi."}) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert "at most 3 a minute" in (limited := answers[-1]).json()["error"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert client.get("/api/jobs").status_code == 200  # reading is not limited
    app.state.store.close()


def test_uploads_over_the_limit_are_refused_by_length_and_while_streaming(anchors_dir, tmp_path, speech):
    app = create_app(ServeSettings(anchors_dir, db=str(tmp_path / "jobs.sqlite"), max_upload_bytes=10_000))
    client = TestClient(app, base_url=LOCAL_URL)
    big = speech_wav_bytes(speech, seconds=4.0)  # 128 KB: past the limit with the form's allowance too
    answer = client.post("/api/jobs", data={"anchor": "actor"}, files={"audio": ("a.wav", big, "audio/wav")})
    assert answer.status_code == 413 and "request too large" in answer.json()["error"]
    boundary = "newsanchor-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"anchor\"\r\n\r\nactor\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
    chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))  # no Content-Length: counted as it streams
    answer = client.post("/api/jobs", content=chunks, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 413 and "request too large" in answer.json()["error"]
    assert app.state.store.recent(10) == []
    assert not [p for p in (anchors_dir / ".newsanchor-outputs").glob(".upload*")]
    app.state.store.close()


def test_an_unreachable_postgresql_is_one_line_without_its_password(anchors_dir):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NewsanchorError, match="cannot open the job database") as caught:
        open_store(f"postgresql://user:secret@127.0.0.1:{port}/news")
    assert "secret" not in str(caught.value)
    result = CliRunner().invoke(cli_app, ["serve", "--anchors", str(anchors_dir), "--db", f"postgresql://u:pw@127.0.0.1:{port}/db"])
    assert result.exit_code == 1 and f"postgresql://u@127.0.0.1:{port}/db: cannot open the job database" in result.output
    assert "pw" not in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_captions_can_be_burned_into_the_picture(service, running_worker):
    pictures = {}
    for burn in (False, True):
        created = post_text(service.client, burn_captions=burn)
        job, _ = wait_done(service.client, created.json()["id"])
        assert job["status"] == "done", job
        with av.open(io.BytesIO(service.client.get(job["video"]).content)) as container:
            pictures[burn] = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    lower_part_differs = [np.abs(a - b)[a.shape[0] // 2:].max() > 100 for a, b in zip(pictures[False], pictures[True])]
    assert any(lower_part_differs)
