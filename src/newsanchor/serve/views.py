"""What the API answers with: response models (they document /docs) and job → JSON."""

from __future__ import annotations

import re
from datetime import datetime, UTC
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .store import Job

JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # server-made ids only; anything else is simply not found


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, in one line.")


class PresenterView(BaseModel):
    name: str
    consent: str


class AnchorJobView(BaseModel):
    """The job making an anchor (see also GET /api/jobs/{id})."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    stage: str
    eta_s: float | None = Field(description="Seconds left while training (from its pace so far); null otherwise.")
    error: str | None
    cancel_requested: bool
    created: str
    updated: str


class _AnchorFields(BaseModel):
    name: str = Field(description="The bundle's folder name; use it as `anchor` in a job once `state` is ready.")
    presenter: PresenterView
    created: str | None = Field(description="When the bundle was made (ISO 8601, UTC); null while being made.")
    quality: dict | None = Field(description="Summary of the quality report: met, not_met, held_out_s, accepted_problems.")
    quality_status: str | None = Field(description="The summary in words: 'quality met', 'quality NOT met: …' or "
                                                   "'no quality report'; null while being made.")
    thumbnail: str | None = Field(description="URL of a PNG of the anchor's first template frame.")
    job: AnchorJobView | None = Field(description="The job making it, while it is being made.")


class AnchorView(_AnchorFields):
    """An anchor of GET /api/anchors."""

    state: Literal["ready", "queued", "running"] = Field(
        description="ready: usable in jobs; queued or running: being made (see `job`).")


class ProblemView(BaseModel):
    check: str = Field(description="Which check failed (e.g. speech_too_short); see `accept`.")
    recording: str | None = Field(description="The recording's file name as uploaded; null for the whole set.")
    message: str = Field(description="What is wrong and what to record instead, in one line.")


class MeasureView(BaseModel):
    key: str
    label: str = Field(description="What is measured.")
    anchor: str = Field(description="The anchor's figure, formatted (— where none).")
    recording: str = Field(description="The same measure on the real recording.")
    target: str
    met: bool | None = Field(description="null: could not be judged (e.g. no pause in the held-out speech).")


class AnchorDetail(_AnchorFields):
    """One anchor: made (``ready``), or the latest job that tried to make it (any state)."""

    state: Literal["ready", "queued", "running", "done", "failed", "cancelled"] = Field(
        description="ready: usable in jobs; otherwise the state of the latest job making it (see `job`).")
    report: dict | None = Field(description="The full quality report (report.json).")
    measures: list[MeasureView] = Field(description="The report as a table: each measure, anchor vs recording, target, met.")
    report_markdown: str | None = Field(description="URL of the report as Markdown.")
    preview: str | None = Field(description="URL of the preview mp4: the anchor beside the recording.")
    problems: list[ProblemView] = Field(description="Why the recordings were refused (a failed job).")
    accepted_problems: list[str] = Field(description="Recording problems noted instead of refused (trial anchors).")


class AnchorCreated(BaseModel):
    id: str = Field(description="The job's id (GET /api/jobs/{id}, cancel, delete).")
    name: str
    status: str


class TextJobRequest(BaseModel):
    """A job that reads a script with the offline voice."""

    model_config = ConfigDict(extra="forbid")
    anchor: str
    text: str = Field(description="The script, at most the service's limit (20,000 characters by default).")
    title: str | None = Field(None, description="Lower-third title (printable ASCII).")
    subtitle: str | None = Field(None, description="Lower-third second line (needs a title).")
    captions: bool = Field(True, description="Also write WebVTT captions of the script.")
    burn_captions: bool = Field(False, description="Also draw the captions into the picture.")


class JobCreated(BaseModel):
    id: str
    status: str


class JobView(BaseModel):
    id: str
    kind: Literal["video", "anchor"] = Field(description="video: a script or recording read by an anchor; "
                                                         "anchor: recordings trained into a new anchor.")
    anchor: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    stage: str
    eta_s: float | None = Field(description="Seconds left while rendering; null otherwise.")
    error: str | None
    created: str = Field(description="ISO 8601, UTC.")
    updated: str
    input: Literal["text", "audio", "recordings"]
    title: str | None
    chars: int | None = Field(description="Characters of the script (text jobs).")
    cancel_requested: bool
    video: str | None = Field(description="URL of the mp4 once done.")
    captions: str | None = Field(description="URL of the WebVTT captions once done (text jobs).")


class Limits(BaseModel):
    max_text_chars: int
    max_upload_bytes: int
    max_title_chars: int
    submissions_per_minute: int
    max_recordings_bytes: int = Field(description="An anchor's recordings: all files of one submission together.")
    max_recordings: int = Field(description="An anchor's recordings: files in one submission.")
    max_recordings_s: float = Field(description="An anchor's recordings: seconds of all of them together.")
    accept: list[str] = Field(description="The recording checks an anchor submission may `accept` (trial anchors).")
    trial_accept: list[str] = Field(description="What the page's trial anchor accepts: the checks a short test "
                                                "recording fails.")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_view(job: Job) -> dict:
    request = job.request
    done = job.status == "done"
    return {
        "id": job.id, "kind": job.kind, "anchor": job.anchor, "status": job.status, "progress": round(job.progress, 4),
        "stage": job.stage, "eta_s": job.eta_s, "error": job.error, "created": iso(job.created),
        "updated": iso(job.updated), "input": request.get("input", "text"), "title": request.get("title"),
        "chars": len(request["text"]) if "text" in request else None, "cancel_requested": job.cancel_requested,
        "video": f"/api/jobs/{job.id}/video" if done and job.video else None,
        "captions": f"/api/jobs/{job.id}/captions" if done and job.captions else None,
    }


def anchor_job_view(job: Job) -> dict:
    return {"id": job.id, "status": job.status, "progress": round(job.progress, 4), "stage": job.stage,
            "eta_s": job.eta_s, "error": job.error, "cancel_requested": job.cancel_requested,
            "created": iso(job.created), "updated": iso(job.updated)}


def _figure(value: float | None, key: str) -> str:
    """A measure's figure as the report's Markdown table writes it."""
    if value is None:
        return "—"
    return format(value, ".0%" if key == "face_found" else ".3f")


def measures_table(report: dict | None) -> list[dict]:
    """A quality report's measures in the report's order, formatted for a table (MeasureView)."""
    from ..create.quality import MEASURES

    if not report:
        return []
    rows = []
    for key, label in MEASURES:
        measure = report.get("measures", {}).get(key)
        if measure is not None:
            rows.append({"key": key, "label": label, "anchor": _figure(measure.get("value"), key),
                         "recording": _figure(measure.get("recording"), key), "target": str(measure.get("target", "")),
                         "met": measure.get("met")})
    return rows
