"""POST /api/anchors: a new anchor from a consenting presenter's recordings, name and consent
(multipart), checked field by field, every recording saved and probed as a video with sound
(the upload checks of :mod:`.submit`), then queued as an anchor job under a name nobody has or
is making."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from .anchor_jobs import RECORDINGS_DIR, anchor_request, recording_file
from .anchors import name_problem
from .security import size_text
from .submit import (ERROR_RESPONSES, IDEMPOTENCY_PARAMETERS, idempotency_key, probe_recording, queue_job,
                     rate_limited, refuse, save_upload)
from .views import AnchorCreated

router = APIRouter()
MAX_PRESENTER_CHARS = 200
MAX_CONSENT_CHARS = 2000
# what a checkbox sends when ticked ("on" from a plain HTML form) or a client writes for yes
TRUE_WORDS = frozenset({"true", "on", "yes", "1"})

_ANCHOR_SCHEMA = {
    "type": "object", "required": ["name", "presenter", "consent", "consent_given", "recordings"],
    "properties": {
        "recordings": {"type": "array", "items": {"type": "string", "format": "binary"},
                       "description": "The presenter's recordings: video files with sound (one field per file)."},
        "name": {"type": "string", "description": "The new anchor's name: 1 to 100 letters, digits, '.', '_' or '-'."},
        "presenter": {"type": "string", "description": "The person the anchor shows."},
        "consent": {"type": "string", "description": "What the presenter agreed to, and when."},
        "consent_given": {"type": "boolean", "description": "Must be true: the presenter agreed to become this anchor."},
        "accept": {"type": "array", "items": {"type": "string"},
                   "description": "Recording checks whose problems are noted in the report instead of refusing the "
                                  "recordings (see GET /api/limits), e.g. speech_too_short for a trial anchor."},
    },
}
_ANCHOR_OPENAPI = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _ANCHOR_SCHEMA}}},
    "parameters": IDEMPOTENCY_PARAMETERS,
}



def _text_field(form, field: str, max_chars: int) -> str:
    """A required one-line text field of the form, its white space made single spaces."""
    value = form.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise refuse(422, f"{field}: required")
    if not isinstance(value, str):
        raise refuse(422, f"{field}: must be a text field, not a file")
    value = " ".join(value.split())
    if len(value) > max_chars:
        raise refuse(422, f"{field}: {len(value)} characters; at most {max_chars}")
    if not value.isprintable():
        raise refuse(422, f"{field}: only printable characters")
    return value


def _accepted_checks(form) -> list[str]:
    from ..create import ACCEPTABLE

    accept: list[str] = []
    for value in form.getlist("accept"):
        if not isinstance(value, str):
            raise refuse(422, "accept: must be text fields")
        for check in filter(None, (part.strip() for part in value.split(","))):
            if check not in ACCEPTABLE:
                raise refuse(422, f"accept {check[:60]!r}: choose from {', '.join(ACCEPTABLE)}")
            if check not in accept:
                accept.append(check)
    return accept


def _client_file_name(upload: UploadFile, index: int) -> str:
    """The name a recording is shown by (problems, the job): the client's file name without any
    folder, only printable characters, at most 100; never used as a path."""
    raw = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    shown = "".join(c for c in raw if c.isprintable()).strip()[:100]
    return shown or f"recording {index + 1}"


def _check_name_free(request: Request, name: str) -> None:
    """409 when an anchor of ``name`` exists, something else has that name in the anchors folder,
    or an anchor job makes it (the store refuses a second one too, atomically)."""
    state = request.app.state
    if state.anchors.get(name) is not None:
        raise refuse(409, f"name {name!r}: an anchor of that name exists; choose another name")
    if os.path.lexists(state.settings.anchors_dir / name):
        raise refuse(409, f"name {name!r}: taken by a folder in the anchors folder that is not a usable anchor; "
                        f"choose another name")
    making = state.store.of_kind("anchor", anchor=name, unfinished=True, limit=1)
    if making:
        raise refuse(409, f"name {name!r}: already being made (see GET /api/anchors/{name})")


async def _anchor_submission(request: Request) -> tuple[str, dict, list[tuple[Path, str]]]:
    """The form checked field by field, its recordings saved and probed → (name, request, uploads)."""
    settings = request.app.state.settings
    saved: list[Path] = []
    try:
        async with request.form(max_files=settings.max_recordings, max_fields=16) as form:
            name = form.get("name")
            if not isinstance(name, str) or not name:
                raise refuse(422, "name: required (the new anchor's name)")
            problem = name_problem(name)
            if problem is not None:
                raise refuse(422, f"name {name[:100]!r}: {problem}")
            presenter = _text_field(form, "presenter", MAX_PRESENTER_CHARS)
            consent = _text_field(form, "consent", MAX_CONSENT_CHARS)
            given = form.get("consent_given")
            if not isinstance(given, str) or given.strip().lower() not in TRUE_WORDS:
                raise refuse(422, "consent_given: must be true: an anchor is made only of a person who agreed to it")
            accept = _accepted_checks(form)
            fields = form.getlist("recordings")
            uploads = [field for field in fields if isinstance(field, UploadFile)]
            if not fields:
                raise refuse(422, "recordings: attach the presenter's recordings as file fields named 'recordings'")
            if len(uploads) != len(fields):
                raise refuse(422, "recordings: must be files")
            budget = settings.max_recordings_bytes
            recordings = []
            for index, upload in enumerate(uploads):
                shown = _client_file_name(upload, index)
                path, digest, size = await run_in_threadpool(
                    save_upload, upload, settings.outputs_dir, budget, f"recordings: {shown}",
                    f"{size_text(settings.max_recordings_bytes)} in all")
                saved.append(path)
                budget -= size
                recordings.append({"file": recording_file(index), "name": shown, "bytes": size, "sha256": digest})
        seconds = 0.0
        for path, recording in zip(saved, recordings):
            info = await run_in_threadpool(probe_recording, path, f"recordings: {recording['name']}", video=True)
            recording["seconds"] = round(info.video_duration_s, 3)
            seconds += info.video_duration_s
        if seconds > settings.max_recordings_s:
            raise refuse(413, f"recordings: {seconds / 60:.0f} minutes in all; at most "
                            f"{settings.max_recordings_s / 60:.0f} per anchor")
    except BaseException:
        for path in saved:
            path.unlink(missing_ok=True)
        raise
    body = anchor_request(presenter, consent, accept, recordings, settings.anchor_training)
    return name, body, [(path, f"{RECORDINGS_DIR}/{r['file']}") for path, r in zip(saved, recordings)]


@router.post("/api/anchors", status_code=202, response_model=AnchorCreated, responses=ERROR_RESPONSES,
             openapi_extra=_ANCHOR_OPENAPI,
             summary="Make a new anchor from a consenting presenter's recordings (multipart); follow it at "
                     "GET /api/anchors/{name}")
async def submit_anchor(request: Request):
    key = idempotency_key(request)
    limited = rate_limited(request)
    if limited is not None:
        return limited
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise refuse(415, "send the recordings and the anchor's details as multipart/form-data")
    name, body, uploads = await _anchor_submission(request)
    return await queue_job(request, key, "anchor", name, body, uploads, still_free=partial(_check_name_free, request, name))
