"""The newsroom service as real processes: ``newsanchor serve`` started as a subprocess with its
worker processes, a worker killed with SIGKILL mid-render (recovered by the service's supervisor,
and by a restart of the whole service), 50 concurrent clients over loopback, and an anchor
trained beside videos, killed with the whole service mid-training and finished after a restart."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import pytest
from serve_process import process_exists

from newsanchor.serve.settings import CONFIG_ENV, DB_NAME, OUTPUTS_NAME
from newsanchor.serve.sqlite_store import SqliteJobStore
from newsanchor.serve.worker import CAPTIONS_NAME, VIDEO_NAME

pytestmark = pytest.mark.slow
# long enough (about 13 s of speech, 330 frames) that the render is caught and killed halfway
LONG_SCRIPT = (
    "Good evening, and welcome to the late news. Our first story comes from the harbour, where the new "
    "ferry made its first crossing this morning. Passengers said the trip was quick and quiet, and the "
    "captain promised two crossings every day from next week."
)
FINAL = ("done", "failed", "cancelled")


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    """Poll ``check()`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(interval)
    return result


def job_store(anchors_dir: Path) -> SqliteJobStore:
    """The service's own job database, opened as one more client (what the store recorded)."""
    return SqliteJobStore(anchors_dir / DB_NAME)


def submit(client: httpx.Client, text: str) -> str:
    answer = client.post("/api/jobs", json={"anchor": "grid-s1", "text": text})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def caught_mid_render(client: httpx.Client, job_id: str) -> dict:
    """Wait until the job renders frames (running, progress past speech) and return its state."""
    def rendering():
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] not in FINAL, f"job ended before it could be caught rendering: {job}"
        return job if job["status"] == "running" and job["stage"].startswith("rendering frame") else None

    job = wait_for(rendering, 300, f"job {job_id} rendering", interval=0.05)
    assert job["progress"] > 0
    return job


def kill_its_worker(server, anchors_dir: Path, job_id: str) -> int:
    """SIGKILL the worker process that holds ``job_id`` (a child of the server) → its pid."""
    store = job_store(anchors_dir)
    try:
        held = store.get(job_id)
    finally:
        store.close()
    assert held.status == "running" and held.attempts == 1
    assert held.worker_pid in server.worker_pids(), (held.worker_pid, server.worker_pids())
    os.kill(held.worker_pid, signal.SIGKILL)
    return held.worker_pid


def assert_finished_once(anchors_dir: Path, job_id: str, killed_pid: int, server_logs: str) -> None:
    """Claimed twice (the killed attempt and the one that finished), finished once, by another
    process, into one playable video with nothing of the killed attempt left beside it."""
    store = job_store(anchors_dir)
    try:
        job = store.get(job_id)
    finally:
        store.close()
    assert job.status == "done" and job.error is None and job.progress == 1.0
    assert job.attempts == 2
    assert job.worker_pid != killed_pid and f":{killed_pid}:" not in job.worker
    assert len(re.findall(rf"job {job_id}: done in", server_logs)) == 1
    folder = anchors_dir / OUTPUTS_NAME / job_id
    assert sorted(p.name for p in folder.iterdir()) == [CAPTIONS_NAME, VIDEO_NAME]  # no partial file left
    with av.open(str(folder / VIDEO_NAME)) as container:
        assert container.streams.video and container.streams.audio
        rate = container.streams.audio[0].rate
        frames = samples = 0
        for frame in container.decode(container.streams.video[0], container.streams.audio[0]):
            if isinstance(frame, av.VideoFrame):
                frames += 1
            else:
                samples += frame.samples
    seconds = samples / rate
    assert seconds > 10 and abs(frames / 25 - seconds) < 0.2  # the whole script, picture and sound alike


def test_a_worker_killed_mid_render_is_replaced_and_its_job_finished_once(serve_processes, newsroom_dir):
    server = serve_processes(newsroom_dir, workers=1)
    with server.client() as client:
        job_id = submit(client, LONG_SCRIPT)
        caught_mid_render(client, job_id)
        killed = kill_its_worker(server, newsroom_dir, job_id)
        # the server is left alone: its supervisor starts another worker, whose claim requeues the job
        wait_for(lambda: not process_exists(killed), 10, f"worker {killed} gone")
        wait_for(lambda: server.worker_pids() and killed not in server.worker_pids(), 30, "a new worker")
        job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] in FINAL and j,
                       600, f"job {job_id} finished")
        assert job["status"] == "done", job
        assert client.get(job["video"]).status_code == 200
    assert server.process.poll() is None  # the service itself never stopped
    logs = server.log()
    assert re.search(rf"worker w0 \(pid {killed}\) exited with code -9; starting another", logs)
    assert f"job {job_id}: worker" in logs and "requeued" in logs
    assert_finished_once(newsroom_dir, job_id, killed, logs)


def test_a_job_left_by_a_killed_worker_is_finished_after_a_restart(serve_processes, newsroom_dir):
    first = serve_processes(newsroom_dir, workers=1)
    with first.client() as client:
        job_id = submit(client, LONG_SCRIPT)
        caught_mid_render(client, job_id)
    killed = kill_its_worker(first, newsroom_dir, job_id)
    # stopped at once, as a service manager would: the replacement worker, if the supervisor got to
    # start one, sees the stop request before it claims anything
    assert first.stop() == 0, first.log_tail()  # SIGTERM: a clean stop, its workers told to stop too
    store = job_store(newsroom_dir)
    try:
        left = store.get(job_id)
    finally:
        store.close()
    assert left.status == "running" and left.worker_pid == killed  # only the restart can recover it
    folder = newsroom_dir / OUTPUTS_NAME / job_id
    assert [p.name for p in folder.iterdir() if p.name.startswith(f".{VIDEO_NAME}.")]  # the killed render's partial

    second = serve_processes(newsroom_dir, workers=1)  # same anchors folder, same database
    with second.client() as client:
        job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] in FINAL and j,
                       600, f"job {job_id} finished after the restart")
        assert job["status"] == "done", job
    assert f"requeued 1 job(s) left running by a previous server: {job_id}" in second.log()
    assert_finished_once(newsroom_dir, job_id, killed, first.log() + second.log())


def test_fifty_concurrent_clients_each_get_their_video_once(serve_processes, newsroom_dir):
    # Fifty clients on fifty loopback addresses (127.0.0.10 … 127.0.0.59): the rate limit counts
    # submissions per client address (30 a minute by default), so each client's one submission is
    # within it, exactly as fifty newsroom desks would be; nothing is loosened for the test.
    clients = 50
    server = serve_processes(newsroom_dir, workers=2)
    start = threading.Barrier(clients)

    def one_client(n: int) -> str:
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + n}")
        with httpx.Client(base_url=server.url, transport=transport, timeout=60) as client:
            start.wait(30)  # all fifty send at once
            return submit(client, f"Story number {n + 1}.")

    with ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(one_client, range(clients)))
    assert len(set(ids)) == clients

    # bounded, and scaled to the work: fail when no job has finished for a long while, not on speed
    store = job_store(newsroom_dir)
    try:
        finished, last_progress = 0, time.monotonic()
        deadline = time.monotonic() + 120 * clients
        while finished < clients:
            jobs = [store.get(job_id) for job_id in ids]
            assert not [j for j in jobs if j.status in ("failed", "cancelled")], [(j.id, j.error) for j in jobs]
            now_finished = sum(j.status == "done" for j in jobs)
            if now_finished > finished:
                finished, last_progress = now_finished, time.monotonic()
            stalled = time.monotonic() - last_progress
            assert stalled < 180 and time.monotonic() < deadline, f"{finished} of {clients} done; stalled {stalled:.0f} s"
            time.sleep(0.5)
        jobs = [store.get(job_id) for job_id in ids]
    finally:
        store.close()
    assert [j.attempts for j in jobs] == [1] * clients  # each claimed once
    logs = server.log()
    assert all(len(re.findall(rf"job {job_id}: done in", logs)) == 1 for job_id in ids)
    assert len({j.worker_pid for j in jobs}) == 2  # both workers took part
    videos = [newsroom_dir / OUTPUTS_NAME / j.video for j in jobs]
    assert len(set(videos)) == clients and all(v.is_file() for v in videos)
    assert len({hashlib.sha256(v.read_bytes()).hexdigest() for v in videos}) == clients  # fifty different stories
    assert server.stop() == 0, server.log_tail()


def test_workers_of_a_killed_server_stop_by_themselves(serve_processes, newsroom_dir):
    server = serve_processes(newsroom_dir, workers=2)  # and one anchor worker, by default
    workers = wait_for(lambda: len(pids := server.worker_pids()) == 3 and pids, 60, "three worker processes")
    os.kill(server.process.pid, signal.SIGKILL)  # the server alone: nobody tells its workers to stop
    server.process.wait(10)
    wait_for(lambda: not any(process_exists(pid) for pid in workers), 30, "the orphaned workers to exit",
             interval=0.5)


def test_an_anchor_killed_mid_training_is_finished_once_after_a_restart_and_videos_flow_beside_it(
        serve_processes, actor_anchor_bundle, tmp_path, monkeypatch):
    from test_serve_anchors import CONSENT, TRIAL, tiny_config_yaml

    anchors = tmp_path / "anchors"
    shutil.copytree(actor_anchor_bundle, anchors / "actor")
    # the tiny plan, with renderer steps enough to be caught training them
    monkeypatch.setenv(CONFIG_ENV, str(tiny_config_yaml(tmp_path / "serve.yaml", renderer_max_steps=100)))
    recording = actor_anchor_bundle.parent / "recordings" / "actor_00.mp4"
    first = serve_processes(anchors, workers=1)  # one video worker and one anchor worker
    with first.client() as client:
        answer = client.post("/api/anchors", files=[("recordings", ("take1.mp4", recording.read_bytes(), "video/mp4"))],
                             data={"name": "resumed", "presenter": "Synthetic test actor", "consent": CONSENT,
                                   "consent_given": "true", "accept": TRIAL})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]

        def anchor_stage(prefix: str):
            def check():
                detail = client.get("/api/anchors/resumed").json()
                assert detail["state"] in ("queued", "running"), f"the anchor job ended before it was caught: {detail}"
                return detail if detail["state"] == "running" and detail["job"]["stage"].startswith(prefix) else None
            return check

        wait_for(anchor_stage("training"), 600, "the anchor training")
        # a video while the anchor trains: its own worker takes it at once, it does not wait for the training
        video_id = client.post("/api/jobs", json={"anchor": "actor", "text": "Good evening."}).json()["id"]
        wait_for(lambda: client.get(f"/api/jobs/{video_id}").json()["status"] != "queued", 60, "the video claimed")
        assert client.get("/api/anchors/resumed").json()["state"] == "running"
        video = wait_for(lambda: (j := client.get(f"/api/jobs/{video_id}").json())["status"] in FINAL and j, 600,
                         "the video beside the training")
        assert video["status"] == "done", video
        caught = wait_for(anchor_stage("training the renderer"), 900, "the renderer training")
        assert 0 < caught["job"]["progress"] < 1 and caught["job"]["eta_s"] is not None
    work = anchors / OUTPUTS_NAME / job_id / "work"
    finished = {p: p.stat().st_mtime_ns for p in (work / "dataset" / "manifest.json", work / "mouth" / "log.csv")}
    first.kill()  # SIGKILL to the server and every worker at once: a power cut
    store = job_store(anchors)
    try:
        left = store.get(job_id)
    finally:
        store.close()
    assert left.status == "running" and left.attempts == 1 and not (anchors / "resumed").exists()
    assert list(json.loads((work / "state.json").read_text())["seconds"]) == ["check", "prepare", "mouth"]

    second = serve_processes(anchors, workers=1)
    with second.client() as client:
        # the second attempt goes on from the work folder: the recordings are not prepared again,
        # nor the audio→mouth model trained again
        def resumed_renderer():
            detail = client.get("/api/anchors/resumed").json()
            ended = detail["state"] not in ("queued", "running")
            return detail if ended or detail["job"]["stage"].startswith("training the renderer") else None

        again = wait_for(resumed_renderer, 600, "the resumed training")
        assert again["state"] == "running" and again["job"]["id"] == job_id, again
        assert {p: p.stat().st_mtime_ns for p in finished} == finished
        made = wait_for(lambda: (d := client.get("/api/anchors/resumed").json())["state"] not in ("queued", "running")
                        and d, 900, "the anchor made after the restart")
        assert made["state"] == "ready" and made["quality_status"].startswith("quality"), made
        assert {a["name"]: a["state"] for a in client.get("/api/anchors").json()} == {"actor": "ready", "resumed": "ready"}
        assert client.get(made["preview"]).headers["content-type"] == "video/mp4"
        # offered as soon as the bundle is in place; the job ends a moment later, once its files are cleared
        wait_for(lambda: f"job {job_id}: done in" in second.log(), 60, "the anchor job's end")
    assert f"requeued 1 job(s) left running by a previous server: {job_id}" in second.log()
    store = job_store(anchors)
    try:
        job = store.get(job_id)
    finally:
        store.close()
    assert job.status == "done" and job.attempts == 2 and job.kind == "anchor"
    assert len(re.findall(rf"job {job_id}: done in", first.log() + second.log())) == 1
    assert not (anchors / OUTPUTS_NAME / job_id).exists()  # uploads and work folder removed once done
