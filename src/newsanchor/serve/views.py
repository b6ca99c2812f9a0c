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


class AnchorView(BaseModel):
    name: str = Field(description="The bundle's folder name; use it as `anchor` in a job.")
    presenter: PresenterView
    thumbnail: str = Field(description="URL of a PNG of the anchor's first template frame.")


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
    anchor: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    stage: str
    eta_s: float | None = Field(description="Seconds left while rendering; null otherwise.")
    error: str | None
    created: str = Field(description="ISO 8601, UTC.")
    updated: str
    input: Literal["text", "audio"]
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


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_view(job: Job) -> dict:
    request = job.request
    done = job.status == "done"
    return {
        "id": job.id, "anchor": job.anchor, "status": job.status, "progress": round(job.progress, 4),
        "stage": job.stage, "eta_s": job.eta_s, "error": job.error, "created": iso(job.created),
        "updated": iso(job.updated), "input": request.get("input", "text"), "title": request.get("title"),
        "chars": len(request["text"]) if "text" in request else None, "cancel_requested": job.cancel_requested,
        "video": f"/api/jobs/{job.id}/video" if done and job.video else None,
        "captions": f"/api/jobs/{job.id}/captions" if done and job.captions else None,
    }
