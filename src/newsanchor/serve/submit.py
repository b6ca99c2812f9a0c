"""POST /api/jobs: a script as JSON, or a recording as multipart; checked, then queued.

Everything a client sends is checked before a job exists: the anchor is one the service
verified, the script is speakable and within the limit, a title can be drawn, and an upload is
audio by its content (probed after it is saved under a server-made name, never by its file
name or declared type). A retried request with the same ``Idempotency-Key`` gets the job the
first one created.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ..errors import MediaError
from ..speech.engine import ScriptError
from ..speech.text import check_script
from .security import size_text
from .settings import MAX_TITLE_CHARS
from .views import ErrorBody, JobCreated, TextJobRequest
from .worker import INPUT_NAME

router = APIRouter()
UPLOAD_CHUNK = 1 << 20
UPLOAD_PREFIX = ".upload-"  # a recording on its way in, in the outputs folder until its job exists

_MULTIPART_SCHEMA = {
    "type": "object", "required": ["anchor", "audio"],
    "properties": {
        "anchor": {"type": "string"},
        "audio": {"type": "string", "format": "binary", "description": "A speech recording (any audio or video file with sound)."},
        "title": {"type": "string"}, "subtitle": {"type": "string"},
    },
}
_OPENAPI = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": TextJobRequest.model_json_schema()},
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
    }},
    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "Retrying with the same key returns the same job instead of a new one."}],
}
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429)}


def _bad(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _check_title(title: str | None, subtitle: str | None) -> None:
    for name, value in (("title", title), ("subtitle", subtitle)):
        if value is None:
            continue
        if not value.strip():
            raise _bad(422, f"{name}: must not be blank (leave it out instead)")
        if len(value) > MAX_TITLE_CHARS:
            raise _bad(422, f"{name}: {len(value)} characters; at most {MAX_TITLE_CHARS}")
        if not all(" " <= c <= "~" for c in value):
            raise _bad(422, f"{name}: only printable ASCII letters, digits and punctuation can be drawn")
    if subtitle is not None and title is None:
        raise _bad(422, "subtitle: needs a title")


def _check_anchor(request: Request, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise _bad(422, "anchor: required (see GET /api/anchors)")
    if name not in request.app.state.anchors:
        raise _bad(404, f"anchor {name[:100]!r}: not found (see GET /api/anchors)")
    return name


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise _bad(422, "Idempotency-Key: 1 to 200 printable characters")
    return key


def _client_key(request: Request) -> str:
    # one shared token is the norm, so the client's address is what tells clients apart
    return request.client.host if request.client else "unknown"


async def _text_job(request: Request) -> tuple[str, dict]:
    try:
        payload = TextJobRequest.model_validate_json(await request.body())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _bad(422, f"{where}: {first['msg']}") from None
    anchor = _check_anchor(request, payload.anchor)
    limit = request.app.state.settings.max_text_chars
    if len(payload.text) > limit:
        raise _bad(413, f"text: {len(payload.text)} characters; this service reads at most {limit} per job")
    try:  # the check the command line makes, so that a job the worker could not speak is never queued
        check_script(payload.text, request.app.state.letter_scripts)
    except ScriptError as err:
        raise _bad(422, f"text: {err}") from None
    _check_title(payload.title, payload.subtitle)
    return anchor, {"input": "text", "text": payload.text, "title": payload.title, "subtitle": payload.subtitle,
                    "captions": payload.captions, "burn_captions": payload.burn_captions}


def _save_upload(upload: UploadFile, folder: Path, limit: int) -> tuple[Path, str]:
    """Copy an upload to a hidden temporary file in ``folder`` → (path, SHA-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=UPLOAD_PREFIX)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            for block in iter(lambda: upload.file.read(UPLOAD_CHUNK), b""):
                size += len(block)
                if size > limit:
                    raise _bad(413, f"audio: larger than {size_text(limit)}")
                digest.update(block)
                out.write(block)
        if size == 0:
            raise _bad(422, "audio: the file is empty")
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest()


def sweep_orphaned_uploads(outputs: Path, started: float) -> list[Path]:
    """Remove the temporary uploads a server that died mid-request left in ``outputs``: those
    last written before ``started`` (this server's start, so none of its own), → what was removed."""
    removed = []
    for path in Path(outputs).glob(f"{UPLOAD_PREFIX}*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < started:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another server's sweep got there first
            pass
    return removed


def _probe_audio(path: Path, max_seconds: float) -> float:
    from ..media import RECORDING_FORMATS, probe

    try:
        # only demuxers of self-contained recordings: content sniffing alone would also pick
        # concat scripts and playlists, which open other files (another job's upload)
        info = probe(path, require_video=False, formats=RECORDING_FORMATS)
    except MediaError as err:
        raise _bad(415, f"audio: not a usable audio recording ({err.problem})") from None
    if info.audio_duration_s < 0.1:
        raise _bad(422, "audio: less than 0.1 s of sound")
    if info.audio_duration_s > max_seconds:
        raise _bad(413, f"audio: {info.audio_duration_s / 60:.1f} minutes; at most {max_seconds / 60:.0f} per job")
    return info.audio_duration_s


async def _audio_job(request: Request) -> tuple[str, dict, Path]:
    settings = request.app.state.settings
    async with request.form(max_files=1, max_fields=8) as form:
        anchor = _check_anchor(request, form.get("anchor"))
        title, subtitle = form.get("title") or None, form.get("subtitle") or None
        if not (title is None or isinstance(title, str)) or not (subtitle is None or isinstance(subtitle, str)):
            raise _bad(422, "title, subtitle: must be text fields")
        _check_title(title, subtitle)
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise _bad(422, "audio: attach the recording as a file field named 'audio'")
        saved, digest = await run_in_threadpool(_save_upload, upload, settings.outputs_dir, settings.max_upload_bytes)
    try:
        seconds = await run_in_threadpool(_probe_audio, saved, settings.max_audio_s)
    except BaseException:
        saved.unlink(missing_ok=True)
        raise
    return anchor, {"input": "audio", "audio_sha256": digest, "audio_s": round(seconds, 3), "title": title,
                    "subtitle": subtitle}, saved


def _replay(existing, anchor: str, body: dict) -> JSONResponse:
    """The answer to a retried submission: the first job, if it is the same request."""
    if existing.anchor != anchor or existing.request != body:
        raise _bad(409, "Idempotency-Key: already used for a different request")
    return JSONResponse({"id": existing.id, "status": existing.status}, status_code=200,
                        headers={"Location": f"/api/jobs/{existing.id}"})


@router.post("/api/jobs", status_code=201, response_model=JobCreated, responses=_ERRORS, openapi_extra=_OPENAPI,
             summary="Queue a video: a script (JSON) or a recording (multipart field `audio`)")
async def submit_job(request: Request):
    state = request.app.state
    key = _idempotency_key(request)
    wait = state.rate_limiter.retry_after(_client_key(request))
    if wait is not None:
        return JSONResponse({"error": f"too many submissions: at most {state.settings.submissions_per_minute} "
                                      f"a minute; try again in {wait:.0f} s"}, status_code=429,
                            headers={"Retry-After": str(max(1, round(wait)))})
    content_type = request.headers.get("content-type", "").lower()
    saved = None
    if content_type.startswith("application/json"):
        anchor, body = await _text_job(request)
    elif content_type.startswith("multipart/form-data"):
        anchor, body, saved = await _audio_job(request)
    else:
        raise _bad(415, "send the job as application/json (a script) or multipart/form-data (a recording)")
    try:
        existing = await run_in_threadpool(state.store.find_by_key, key) if key is not None else None
        if existing is not None:
            return _replay(existing, anchor, body)
        job_id = uuid.uuid4().hex
        folder = state.settings.outputs_dir / job_id
        if saved is not None:  # the recording is in place before any worker can see the job
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(saved, folder / INPUT_NAME)
            saved = None
        job, created = await run_in_threadpool(state.store.create, job_id, anchor, body, idempotency_key=key)
        if not created:  # a retry raced us between the check and the insert
            shutil.rmtree(folder, ignore_errors=True)
            return _replay(job, anchor, body)
    finally:
        if saved is not None:
            saved.unlink(missing_ok=True)
    return JSONResponse({"id": job.id, "status": job.status}, status_code=201,
                        headers={"Location": f"/api/jobs/{job.id}"})

