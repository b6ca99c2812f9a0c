"""Anchors made from the newsroom service (issue 11): POST /api/anchors with the presenter's
recordings, name and consent, an anchor job in the same queue as videos, trained by a real
anchor worker (``create_anchor`` with a tiny plan), followed at GET /api/anchors/{name} (progress,
ETA, problems, then the quality report and preview), and the new anchor offered for scripts
without a restart. The recordings are the synthetic actor's take (conftest): 29 s of speech,
which fails the checks speech_too_short and no_quiet_stretch unless they are accepted."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import threading
import time
import warnings
import wave
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from newsanchor.create import CreatePlan
from newsanchor.create.listing import quality_status
from newsanchor.serve.anchor_jobs import AnchorWorker, remaining_seconds
from newsanchor.serve.app import create_app
from newsanchor.serve.settings import AnchorTraining, ServeSettings, load_serve_config
from newsanchor.serve.sqlite_store import SqliteJobStore
from newsanchor.serve.store import AnchorInMaking
from newsanchor.serve.submit import UPLOAD_PREFIX
from newsanchor.serve.worker import Worker

with warnings.catch_warnings():  # this Starlette wants httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = [pytest.mark.usefixtures("one_torch_thread")]
LOCAL_URL = "http://localhost"
TOKEN = "a-test-token-long-enough"
# trains in well under a minute on a 2-core CPU; the same plan as tests/test_create.py
TINY_PLAN = dict(size=64, mouth_model="tcn", mouth_max_steps=30, mouth_min_steps=5,
                 mouth_overrides={"filters": 16, "dilations": (1, 2)}, renderer_max_steps=20, renderer_min_steps=5,
                 renderer_batch=2, renderer_overrides={"ngf": 4, "n_downsampling": 2, "n_blocks": 1, "max_channels": 16},
                 calibration_steps=5, template_frames=25, report_frames=100)
TINY = AnchorTraining(minutes=None, plan=CreatePlan(**TINY_PLAN))
TRIAL = ["speech_too_short", "no_quiet_stretch"]
CONSENT = "The synthetic test actor agreed on 2026-01-01 (it is no real person)."
FINAL = ("ready", "done", "failed", "cancelled")


def tiny_config_yaml(path: Path, **plan_changes) -> Path:
    """A ``newsanchor serve --config`` file training anchors with the tiny plan."""
    import yaml

    plan = {**TINY_PLAN, "mouth_overrides": {"filters": 16, "dilations": [1, 2]}, **plan_changes}
    path.write_text(yaml.safe_dump({"anchor_training": {"minutes": None, "plan": plan}}))
    return path


@pytest.fixture(scope="module")
def recording(actor_anchor_bundle) -> Path:
    return actor_anchor_bundle.parent / "recordings" / "actor_00.mp4"


@pytest.fixture(scope="module")
def newsroom(actor_anchor_bundle, tmp_path_factory):
    """A loopback service over an anchors folder holding the actor's tiny anchor (so it starts,
    and so one name is taken), training anchors with the tiny plan."""
    root = tmp_path_factory.mktemp("anchor-newsroom")
    shutil.copytree(actor_anchor_bundle, root / "actor")
    settings = ServeSettings(root, submissions_per_minute=10_000, anchor_training=TINY)
    app = create_app(settings)
    with TestClient(app, base_url=LOCAL_URL) as client:
        yield SimpleNamespace(app=app, client=client, store=app.state.store, settings=settings, root=root)
    app.state.store.close()


@pytest.fixture(scope="module")
def anchor_worker(newsroom):
    """A real anchor worker with its own connection to the service's queue."""
    store = SqliteJobStore(Path(newsroom.settings.db_spec))
    yield AnchorWorker(store, newsroom.root, newsroom.settings.outputs_dir, name="anchors", device="cpu")
    store.close()


def submit_anchor(client, recording: Path | None, name: str, *, consent: str | None = CONSENT, given: str | None = "true",
                  accept=(), files=None, headers=None):
    data: dict = {"name": name, "presenter": "Synthetic test actor"}
    if consent is not None:
        data["consent"] = consent
    if given is not None:
        data["consent_given"] = given
    if accept:
        data["accept"] = list(accept)
    if files is None:
        files = [("recordings", ("take 1.mp4", recording.read_bytes(), "video/mp4"))]
    return client.post("/api/anchors", data=data, files=files, headers=headers or {})


def one_line_error(answer, status: int, *fragments: str) -> str:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert list(answer.json()) == ["error"], answer.json()
    message = answer.json()["error"]
    assert "\n" not in message and all(fragment in message for fragment in fragments), message
    return message


def anchor_jobs(store) -> list:
    return store.of_kind("anchor", limit=1000)


def no_uploads_left(settings: ServeSettings) -> bool:
    return not list(settings.outputs_dir.glob(f"{UPLOAD_PREFIX}*"))


def wav_bytes(seconds: float = 1.0) -> bytes:
    """A real audio recording (a tone): a recording, but no picture of a presenter."""
    t = np.arange(int(16000 * seconds)) / 16000
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()


def follow(client, name: str, worker, timeout: float = 900.0) -> list[dict]:
    """Run ``worker`` on the next job in a thread while polling GET /api/anchors/{name}; → every
    answer seen, the last one final."""
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    seen, deadline = [], time.monotonic() + timeout
    while not seen or seen[-1]["state"] not in FINAL or thread.is_alive():
        assert time.monotonic() < deadline, f"anchor {name}: not made after {timeout:.0f} s: {seen[-1:]}"
        seen.append(client.get(f"/api/anchors/{name}").json())
        time.sleep(0.1)
    thread.join()
    seen.append(client.get(f"/api/anchors/{name}").json())
    return seen


# --- refused before anything is queued ---

@pytest.mark.parametrize("change, status, fragments", [
    (dict(consent=None), 422, ["consent: required"]),
    (dict(consent="   "), 422, ["consent: required"]),
    (dict(given=None), 422, ["consent_given: must be true"]),
    (dict(given="false"), 422, ["consent_given: must be true"]),
    (dict(name="../escape"), 422, ["name '../escape'", "letters, digits"]),
    (dict(name="a b"), 422, ["name 'a b'"]),
    (dict(name=".hidden"), 422, ["name '.hidden'"]),
    (dict(name="trial.work"), 422, ["must not end in '.work'"]),
    (dict(name="actor"), 409, ["name 'actor': an anchor of that name exists"]),
    (dict(accept=["no_face"]), 422, ["accept 'no_face': choose from", "speech_too_short"]),
    (dict(files=[("notes", ("notes.txt", b"no recording here", "text/plain"))]), 422, ["recordings: attach"]),
    (dict(files=[("recordings", ("speech.wav", wav_bytes(), "video/mp4"))]), 415,
     ["recordings: speech.wav: not a usable video recording with sound (no video stream)"]),
    (dict(files=[("recordings", ("take.mp4", b"ffconcat version 1.0\nfile ../actor/anchor.json\n", "video/mp4"))]),
     415, ["recordings: take.mp4: not a usable video recording with sound (not a media file)"]),
    (dict(files=[("recordings", ("empty.mp4", b"", "video/mp4"))]), 422, ["recordings: empty.mp4: the file is empty"]),
])
def test_bad_anchor_submissions_are_refused_in_one_line_and_leave_nothing(newsroom, recording, change, status, fragments):
    before = len(anchor_jobs(newsroom.store))
    name = change.pop("name", "refused")
    message = one_line_error(submit_anchor(newsroom.client, recording, name, **change), status, *fragments)
    assert str(newsroom.root) not in message
    assert len(anchor_jobs(newsroom.store)) == before and no_uploads_left(newsroom.settings)
    assert sorted(p.name for p in newsroom.root.iterdir() if not p.name.startswith(".")) == ["actor"]


def test_anchors_are_sent_as_multipart_only(newsroom):
    one_line_error(newsroom.client.post("/api/anchors", json={"name": "x"}), 415, "multipart/form-data")


def test_anchor_uploads_over_the_limit_are_refused_by_length_and_while_streaming(newsroom, recording, tmp_path):
    settings = ServeSettings(newsroom.root, db=str(tmp_path / "jobs.sqlite"), max_recordings_bytes=10_000,
                             anchor_training=TINY)
    app = create_app(settings)
    client = TestClient(app, base_url=LOCAL_URL)
    one_line_error(submit_anchor(client, recording, "big"), 413, "request too large", "an anchor's recordings", "9.77 KB")
    # no Content-Length: counted as it streams
    boundary = "newsanchor-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"recordings\"; filename=\"a.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + recording.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    answer = client.post("/api/anchors", content=(body[i:i + 4096] for i in range(0, len(body), 4096)),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    one_line_error(answer, 413, "request too large")
    # within the request's allowance for its other fields, but over the limit once the files are
    # added up: the recordings' own count
    limit = 2 * recording.stat().st_size - 20_000
    settings = ServeSettings(newsroom.root, db=str(tmp_path / "jobs2.sqlite"), max_recordings_bytes=limit,
                             anchor_training=TINY)
    client = TestClient(create_app(settings), base_url=LOCAL_URL)
    two = [("recordings", (f"take{n}.mp4", recording.read_bytes(), "video/mp4")) for n in (1, 2)]
    one_line_error(submit_anchor(client, recording, "big", files=two), 413,
                   f"recordings: take2.mp4: larger than {limit / 2 ** 20:.3g} MB in all")
    # more files than one anchor takes: refused while the form is read
    settings = ServeSettings(newsroom.root, db=str(tmp_path / "jobs3.sqlite"), max_recordings=1, anchor_training=TINY)
    client = TestClient(create_app(settings), base_url=LOCAL_URL)
    one_line_error(submit_anchor(client, recording, "many", files=two), 400, "Too many files")
    assert app.state.store.recent(10) == [] and no_uploads_left(settings)
    app.state.store.close()


def test_beyond_loopback_the_anchor_routes_need_the_token_and_other_sites_cannot_post(newsroom, recording):
    app = create_app(ServeSettings(newsroom.root, host="0.0.0.0", token=TOKEN, anchor_training=TINY), store=newsroom.store)
    client = TestClient(app, base_url=LOCAL_URL)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/api/anchors", "/api/anchors/actor", "/api/anchors/actor/thumbnail"):
        one_line_error(client.get(path), 401, "token")
        assert client.get(path, headers=bearer).status_code == 200, path
    one_line_error(submit_anchor(client, recording, "no-token"), 401, "token")
    one_line_error(submit_anchor(client, recording, "foreign", headers={**bearer, "Origin": "https://evil.example.com"}),
                   403, "Origin 'https://evil.example.com'")
    assert not [j for j in anchor_jobs(newsroom.store) if j.anchor in ("no-token", "foreign")]


# --- the anchor list, without a restart ---

def test_the_list_shows_quality_and_follows_the_anchors_folder(newsroom, actor_anchor_bundle):
    anchors = newsroom.client.get("/api/anchors").json()
    assert [(a["name"], a["state"], a["quality_status"], a["job"]) for a in anchors] == \
        [("actor", "ready", "no quality report", None)]  # made with `newsanchor bundle`: no report
    assert anchors[0]["thumbnail"] == "/api/anchors/actor/thumbnail" and anchors[0]["created"]
    detail = newsroom.client.get("/api/anchors/actor").json()
    assert (detail["state"], detail["report"], detail["measures"], detail["preview"]) == ("ready", None, [], None)
    assert newsroom.client.get("/api/anchors/actor/quality/report.json").status_code == 404
    for missing in ("nobody", "..", "%2e%2e", "actor.work", "a" * 300, "actor%2Fquality"):
        assert "not found" in one_line_error(newsroom.client.get(f"/api/anchors/{missing}"), 404).lower()
    one_line_error(newsroom.client.get("/api/anchors/actor/quality/anchor.json"), 404, "no quality file")
    # a bundle copied in while the service runs is offered, and can read a script, without a restart
    shutil.copytree(actor_anchor_bundle, newsroom.root / "copied-in")
    try:
        assert [a["name"] for a in newsroom.client.get("/api/anchors").json()] == ["actor", "copied-in"]
        created = newsroom.client.post("/api/jobs", json={"anchor": "copied-in", "text": "Hello."})
        assert created.status_code == 201, created.text
        newsroom.client.delete(f"/api/jobs/{created.json()['id']}")
    finally:
        shutil.rmtree(newsroom.root / "copied-in")
    assert [a["name"] for a in newsroom.client.get("/api/anchors").json()] == ["actor"]
    one_line_error(newsroom.client.post("/api/jobs", json={"anchor": "copied-in", "text": "Hello."}), 404, "not found")


def test_the_limits_name_the_acceptable_checks(newsroom):
    limits = newsroom.client.get("/api/limits").json()
    assert set(TRIAL) <= set(limits["accept"]) and "no_face" not in limits["accept"] and limits["trial_accept"] == TRIAL
    assert limits["max_recordings_bytes"] == 4 * 1024 ** 3 and limits["max_recordings"] == 20


# --- jobs ---

def test_rejected_recordings_fail_the_job_with_every_problem_named_by_its_upload(newsroom, recording, anchor_worker):
    answer = submit_anchor(newsroom.client, recording, "rejected")
    assert answer.status_code == 202, answer.text
    created = answer.json()
    assert created["name"] == "rejected" and created["status"] == "queued"
    assert answer.headers["location"] == "/api/anchors/rejected"
    queued = newsroom.client.get("/api/anchors/rejected").json()
    assert queued["state"] == "queued" and queued["job"]["id"] == created["id"]
    assert queued["presenter"] == {"name": "Synthetic test actor", "consent": CONSENT}
    assert [(a["name"], a["state"]) for a in newsroom.client.get("/api/anchors").json()] == \
        [("actor", "ready"), ("rejected", "queued")]
    # a video worker never takes an anchor job, and the name is taken while it waits
    video_store = SqliteJobStore(Path(newsroom.settings.db_spec))
    try:
        assert not Worker(video_store, newsroom.root, newsroom.settings.outputs_dir, name="videos").run_once()
    finally:
        video_store.close()
    one_line_error(submit_anchor(newsroom.client, recording, "rejected"), 409, "name 'rejected': already being made")

    seen = follow(newsroom.client, "rejected", anchor_worker)
    final = seen[-1]
    assert final["state"] == "failed" and final["job"]["status"] == "failed"
    problems = final["problems"]
    assert {p["check"] for p in problems} == set(TRIAL) and all(p["recording"] is None for p in problems)
    assert any("120 s" in p["message"] for p in problems) and any("5 s" in p["message"] for p in problems)
    assert [p for p in problems if "take 1.mp4" in p["message"]]  # the upload's own name, not the server's
    assert str(newsroom.root) not in json.dumps(final) and "recording-01" not in json.dumps(final)
    assert final["job"]["error"].startswith("2 problems with the recordings")
    folder = newsroom.settings.outputs_dir / final["job"]["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["problems.json"]  # the uploads are gone
    assert not (newsroom.root / "rejected").exists()
    # a failed name is free again; the failed job is deleted with its folder
    assert newsroom.client.delete(f"/api/jobs/{final['job']['id']}").status_code == 204
    assert not folder.exists()
    one_line_error(newsroom.client.get("/api/anchors/rejected"), 404, "not found")


def test_a_queued_anchor_job_is_cancelled_and_its_uploads_removed(newsroom, recording, anchor_worker):
    created = submit_anchor(newsroom.client, recording, "cancelled-early", accept=TRIAL).json()
    folder = newsroom.settings.outputs_dir / created["id"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["recordings", "recordings/recording-01"]
    job = newsroom.client.get(f"/api/jobs/{created['id']}").json()
    assert (job["kind"], job["input"], job["anchor"], job["status"]) == ("anchor", "recordings", "cancelled-early", "queued")
    assert newsroom.client.post(f"/api/jobs/{created['id']}/cancel").json()["status"] == "cancelled"
    assert not anchor_worker.run_once()  # nothing to claim
    assert newsroom.client.get("/api/anchors/cancelled-early").json()["state"] == "cancelled"
    assert newsroom.client.delete(f"/api/jobs/{created['id']}").status_code == 204 and not folder.exists()


def test_an_anchor_job_cancelled_while_it_works_stops_and_keeps_nothing(newsroom, recording, anchor_worker, monkeypatch):
    created = submit_anchor(newsroom.client, recording, "cancelled-late", accept=TRIAL).json()
    real_report = anchor_worker.store.report

    def report(job_id, identity, progress, stage, eta_s):  # the user cancels once the recordings are being prepared
        if stage == "preparing the recordings":
            assert newsroom.client.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "running"
        return real_report(job_id, identity, progress, stage, eta_s)

    monkeypatch.setattr(anchor_worker.store, "report", report)
    assert anchor_worker.run_once()
    detail = newsroom.client.get("/api/anchors/cancelled-late").json()
    assert detail["state"] == "cancelled" and 0 < detail["job"]["progress"] < 0.5
    assert not (newsroom.settings.outputs_dir / created["id"]).exists()  # uploads and work folder removed
    assert not (newsroom.root / "cancelled-late").exists()


def test_the_eta_comes_from_this_attempts_pace():
    assert remaining_seconds((100.0, 0.0), 100.5, 0.1) is None  # too early to tell
    assert remaining_seconds((100.0, 0.0), 110.0, 0.25) == 30.0
    assert remaining_seconds((100.0, 0.4), 110.0, 0.6) == 20.0  # resumed at 40 %: its own pace, not 0 → 60 %
    assert remaining_seconds((100.0, 0.0), 110.0, 1.0) is None


def test_the_serve_config_file_sets_how_anchors_are_trained(tmp_path):
    config = load_serve_config(tiny_config_yaml(tmp_path / "serve.yaml"))
    assert config.anchor_training.minutes is None and config.anchor_training.plan.renderer_max_steps == 20
    assert load_serve_config(None).anchor_training == AnchorTraining()
    (tmp_path / "bad.yaml").write_text("anchor_training: {plan: {sise: 64}}\n")
    with pytest.raises(Exception, match=r"bad.yaml.anchor_training.plan: unknown setting\(s\) sise"):
        load_serve_config(tmp_path / "bad.yaml")


def test_the_store_lets_one_job_at_a_time_make_a_name(newsroom):
    store = newsroom.store
    job, made = store.create("a" * 32, "twice", {"input": "recordings"}, kind="anchor")
    assert made and job.kind == "anchor"
    with pytest.raises(AnchorInMaking, match="'twice': already being made"):
        store.create("b" * 32, "twice", {"input": "recordings"}, kind="anchor")
    store.cancel(job.id)
    assert store.create("b" * 32, "twice", {"input": "recordings"}, kind="anchor")[1]  # free once the first ended
    store.create("c" * 32, "twice", {"input": "text", "text": "Hi."})  # videos of an anchor are not limited
    for job_id in ("a" * 32, "b" * 32, "c" * 32):
        store.delete(job_id)


@pytest.mark.slow
def test_recordings_become_an_anchor_with_its_report_and_it_reads_a_script(newsroom, recording, anchor_worker):
    headers = {"Idempotency-Key": "make-trial-actor"}
    answer = submit_anchor(newsroom.client, recording, "trial-actor", accept=TRIAL, headers=headers)
    assert answer.status_code == 202, answer.text
    again = submit_anchor(newsroom.client, recording, "trial-actor", accept=TRIAL, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == answer.json()["id"]  # a retry, not a second job
    job_id = answer.json()["id"]
    stored = newsroom.store.get(job_id).request
    assert stored["accept"] == TRIAL and stored["minutes"] is None and stored["plan"]["renderer_max_steps"] == 20
    assert stored["recordings"][0]["name"] == "take 1.mp4" and stored["recordings"][0]["seconds"] > 25

    seen = follow(newsroom.client, "trial-actor", anchor_worker)
    running = [s for s in seen if s["state"] == "running"]
    assert running and seen[-1]["state"] == "ready", seen[-1]
    progress = [s["job"]["progress"] for s in running]
    assert progress == sorted(progress) and progress[-1] > 0.5  # it went forward, never back
    assert any(s["job"]["eta_s"] is not None and s["job"]["eta_s"] > 0 for s in running)
    stages = {s["job"]["stage"].split(":")[0] for s in running}
    assert {"checking the recordings", "training audio→mouth"} <= stages

    made = seen[-1]
    assert made["presenter"] == {"name": "Synthetic test actor", "consent": CONSENT}
    assert made["job"]["id"] == job_id and made["job"]["status"] == "done"
    report = made["report"]
    assert report == newsroom.client.get(made["report_markdown"].replace("report.md", "report.json")).json()
    assert made["quality"]["met"] == report["met"] and made["quality"]["not_met"] == report["not_met"]
    assert made["quality_status"] == quality_status(made["quality"]) and made["quality_status"].startswith("quality ")
    assert [m["key"] for m in made["measures"]] == ["lip_sync", "face_found", "closed_in_pauses", "mouth_sharpness", "identity"]
    assert all(m["target"] and m["anchor"] and m["met"] in (True, False, None) for m in made["measures"])
    assert len(made["accepted_problems"]) == 2 and made["problems"] == []
    markdown = newsroom.client.get(made["report_markdown"])
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8" and "| lip sync" in markdown.text
    # the accepted problems name the upload as its client did, never by the server's folders
    assert any("in take 1.mp4)" in problem for problem in made["accepted_problems"]) and "in take 1.mp4)" in markdown.text
    assert str(newsroom.root) not in json.dumps(made) + markdown.text and "recording-01" not in markdown.text
    preview = newsroom.client.get(made["preview"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(preview.content)) as container:
        assert container.streams.video and container.streams.audio
        assert container.metadata["newsanchor_ai_generated"] == "true"
    # finished: the uploads and the work folder are gone, the anchor is in the anchors folder
    assert not (newsroom.settings.outputs_dir / job_id).exists()
    assert (newsroom.root / "trial-actor" / "anchor.json").is_file()
    listed = {a["name"]: a for a in newsroom.client.get("/api/anchors").json()}
    assert listed["trial-actor"]["state"] == "ready" and listed["trial-actor"]["quality_status"] == made["quality_status"]
    one_line_error(submit_anchor(newsroom.client, recording, "trial-actor", accept=TRIAL), 409,
                   "name 'trial-actor': an anchor of that name exists")

    # the new anchor reads a script, without a restart
    created = newsroom.client.post("/api/jobs", json={"anchor": "trial-actor", "text": "Good evening."})
    assert created.status_code == 201, created.text
    video_store = SqliteJobStore(Path(newsroom.settings.db_spec))
    try:
        assert Worker(video_store, newsroom.root, newsroom.settings.outputs_dir, name="videos", device="cpu").run_once()
    finally:
        video_store.close()
    job = newsroom.client.get(f"/api/jobs/{created.json()['id']}").json()
    assert job["status"] == "done", job
    assert newsroom.client.get(job["video"]).headers["content-type"] == "video/mp4"


def test_an_earlier_attempt_that_put_the_anchor_in_place_counts_as_done(newsroom, actor_anchor_bundle, anchor_worker):
    """The worker died between moving the bundle into place and marking the job done: the
    requeued job does not train again (create_anchor would refuse: the anchor exists)."""
    request = {"input": "recordings", "presenter": "Synthetic test actor", "consent": "synthetic; no real person",
               "accept": [], "recordings": [], "minutes": None, "plan": {}}
    job, _ = newsroom.store.create("d" * 32, "put-in-place", request, kind="anchor")
    shutil.copytree(actor_anchor_bundle, newsroom.root / "put-in-place")
    try:
        manifest = json.loads((newsroom.root / "put-in-place" / "anchor.json").read_text())
        manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created + 1))
        (newsroom.root / "put-in-place" / "anchor.json").write_text(json.dumps(manifest))  # as made by this job
        claimed = anchor_worker.store.claim(anchor_worker.identity, "anchor")
        assert claimed.id == job.id
        anchor_worker.process(dataclasses.replace(claimed, attempts=2))  # as if it were the second attempt
        assert newsroom.store.get(job.id).status == "done"
    finally:
        shutil.rmtree(newsroom.root / "put-in-place")
        newsroom.store.delete(job.id)
    assert os.path.exists(newsroom.settings.outputs_dir) and not (newsroom.settings.outputs_dir / job.id).exists()
