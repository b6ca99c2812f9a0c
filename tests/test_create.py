"""``anchor create``: recordings → checked, trained, bundled and reported anchor, in one call that
resumes where it stopped. Trained for real on the synthetic actor's recording, with tiny models
(the plan below) so that a whole anchor takes ~30 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import yaml
from typer.testing import CliRunner

from newsanchor.bundle import Presenter, load_bundle
from newsanchor.cli import app
from newsanchor.create import CreatePlan, RecordingsRejected, create_anchor, work_folder
from newsanchor.create.listing import list_anchors, quality_status
from newsanchor.create.plan import steps_for, training_seconds
from newsanchor.create.quality import MEASURES
from newsanchor.errors import NewsanchorError

TINY = dict(size=64, mouth_model="tcn", mouth_max_steps=30, mouth_min_steps=5,
            mouth_overrides={"filters": 16, "dilations": [1, 2]}, renderer_max_steps=20, renderer_min_steps=5,
            renderer_batch=2, renderer_overrides={"ngf": 4, "n_downsampling": 2, "n_blocks": 1, "max_channels": 16},
            calibration_steps=5, template_frames=25, report_frames=100)
# the actor's take is 29 s of speech without a 2-s pause: a trial anchor accepts both
TRIAL = ("speech_too_short", "no_quiet_stretch")
PERSON = Presenter("Test actor", "synthetic actor; no real person")


@pytest.fixture(scope="module")
def recording(actor_anchor_bundle) -> Path:
    return actor_anchor_bundle.parent / "recordings" / "actor_00.mp4"


@pytest.fixture(scope="module")
def created(recording, tmp_path_factory):
    """One tiny anchor made with a budget (``create_anchor``'s result, its progress reports)."""
    out = tmp_path_factory.mktemp("anchors") / "actor"
    reports: list[tuple[float, str]] = []
    result = create_anchor([recording], out, PERSON, minutes=2, plan=CreatePlan(**TINY), accept=TRIAL,
                           on_progress=lambda fraction, what: reports.append((fraction, what)))
    return result, reports


@pytest.mark.slow
def test_an_anchor_is_made_checked_and_reported(created):
    result, reports = created
    out = Path(result["anchor"])
    bundle = load_bundle(out)  # every checksum right, the report's files included
    assert not work_folder(out).exists()  # the work is cleared once the anchor is in place
    assert list(result["seconds"]) == ["check", "prepare", "mouth", "renderer", "bundle", "report"]
    assert 5 <= result["steps"]["renderer"] <= 20 and 5 <= result["steps"]["mouth"] <= 30
    # the report: every measure with its figure, the recording's, its target and a verdict
    report = json.loads((out / "quality" / "report.json").read_text())
    assert report == result["report"]
    assert [key for key, _ in MEASURES] == list(report["measures"])
    for measure in report["measures"].values():
        assert measure["target"] and measure["met"] in (True, False, None)
    assert report["not_met"] == [k for k, m in report["measures"].items() if m["met"] is False]
    assert report["met"] == (not report["not_met"]) and 2 < report["held_out_s"] <= 4
    assert bundle.quality == {"met": report["met"], "not_met": report["not_met"],
                              "held_out_s": report["held_out_s"], "accepted_problems": 2}
    table = (out / "quality" / "report.md").read_text()
    assert "| lip sync" in table and "speech; an anchor needs at least 120 s" in table
    # the preview: the anchor beside the recording, labelled as AI-generated in picture and tags
    with av.open(str(out / "quality" / "preview.mp4")) as preview:
        stream = preview.streams.video[0]
        assert stream.width >= 1.5 * stream.height and preview.streams.audio
        assert "AI-generated" in preview.metadata.get("comment", "")
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"checking the recordings", "preparing the recordings"} <= {what for _, what in reports}


@pytest.mark.slow
def test_anchor_list_says_whether_the_quality_is_met(created, tmp_path):
    result, _ = created
    folder = Path(result["anchor"]).parent
    (entry,) = [e for e in list_anchors(folder) if e["name"] == "actor"]
    assert entry["ok"] and entry["presenter"] == "Test actor" and entry["size"] == 64
    assert entry["status"].endswith(quality_status(entry["quality"]))
    if not entry["quality"]["met"]:
        assert "quality NOT met: " in entry["status"]
    listed = CliRunner().invoke(app, ["anchor", "list", str(folder)])
    assert listed.exit_code == 0 and listed.output.startswith("actor: Test actor, made ")


def test_recordings_that_fail_their_checks_write_nothing(recording, tmp_path):
    with pytest.raises(RecordingsRejected) as rejected:
        create_anchor([recording], tmp_path / "actor", PERSON, plan=CreatePlan(**TINY))
    assert {p.check for p in rejected.value.problems} == set(TRIAL)
    assert list(tmp_path.iterdir()) == []
    # the command line: every problem on its own line, what to do, a non-zero exit
    run = CliRunner().invoke(app, ["anchor", "create", str(recording), "--presenter", "A", "--consent", "B",
                                   "--out", str(tmp_path / "actor"), "-q"])
    assert run.exit_code == 1
    lines = run.output.strip().splitlines()
    assert any("120 s" in line for line in lines) and any("5 s" in line for line in lines)
    assert "nothing was written" in lines[-1] and list(tmp_path.iterdir()) == []


def test_what_cannot_be_made_is_refused_before_any_work(recording, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(NewsanchorError, match="taken: already exists"):
        create_anchor([recording], tmp_path / "taken", PERSON)
    with pytest.raises(NewsanchorError, match="cannot accept 'no_face'"):
        create_anchor([recording], tmp_path / "a", PERSON, accept=["no_face"])
    with pytest.raises(NewsanchorError, match="positive time budget"):
        create_anchor([recording], tmp_path / "a", PERSON, minutes=0)
    other = work_folder(tmp_path / "b")
    other.mkdir()
    (other / "state.json").write_text(json.dumps({"fingerprint": "another set of recordings"}))
    with pytest.raises(NewsanchorError, match="unfinished anchor of other recordings"):
        create_anchor([recording], tmp_path / "b", PERSON, plan=CreatePlan(**TINY), accept=TRIAL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.work", "taken"]


def test_the_budget_buys_steps_at_the_measured_speed_within_floor_and_cap():
    assert training_seconds(3600, 600, 300) == 2700 and training_seconds(600, 700, 60) == 0
    assert steps_for(100, 0.5, 10, 1000) == 200
    assert steps_for(0, 0.5, 10, 1000) == 10  # never under the floor
    assert steps_for(1e6, 0.5, 10, 1000) == 1000  # nor over the cap
    assert steps_for(100, 0.5, 50, 20) == 20  # a cap under the floor wins


@pytest.mark.slow
def test_killed_mid_training_the_same_command_goes_on(recording, tmp_path):
    """A real process is killed (SIGKILL) while the renderer trains; the same command finishes
    the anchor from its checkpoint: the stages done before are not done again."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({**TINY, "renderer_max_steps": 400}))
    out = tmp_path / "anchors" / "actor"
    (tmp_path / "anchors").mkdir()
    command = [sys.executable, "-m", "newsanchor", "anchor", "create", str(recording), "--presenter", "Test actor",
               "--consent", "synthetic", "--out", str(out), "--config", str(plan), "--minutes", "30", "-q",
               *[f"--accept={check}" for check in TRIAL]]
    work = work_folder(out)
    log, checkpoint = work / "renderer" / "log.csv", work / "renderer" / "train_state.json"

    def checkpointed_step() -> int:
        try:
            return json.loads(checkpoint.read_text())["counters"]["step"]
        except (OSError, ValueError):  # not written yet
            return 0

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while checkpointed_step() < 200:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the renderer never reached its step-200 checkpoint"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not out.exists()
    state = json.loads((work / "state.json").read_text())
    assert list(state["seconds"]) == ["check", "prepare", "mouth"] and state["steps"]["renderer"] == 400
    before = {p: p.stat().st_mtime_ns for p in (work / "dataset" / "manifest.json", work / "mouth" / "log.csv")}

    again = subprocess.run(command + ["--json", "--keep-work"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["steps"] == state["steps"] and load_bundle(out).quality is not None
    assert {p: p.stat().st_mtime_ns for p in before} == before  # prepared and trained once
    # the renderer went on from its step-200 checkpoint: its log has each checkpoint once (5:
    # the timed first steps; 255: 250 steps on, the speed measured again)
    steps = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert steps == [5, 200, 255, 400]
