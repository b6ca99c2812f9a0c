"""Submissions: POST /api/jobs (a video: a script as JSON, or a recording as multipart), and
what every submission shares — POST /api/anchors (:mod:`.submit_anchor`) too: uploads saved
under server-made names and probed, the rate limit, Idempotency-Key, queueing.

Everything a client sends is checked before a job exists: the anchor is one the service
verified (or, for a new one, a plain name nobody has or is making), the script is speakable
and within the limit, a title can be drawn, consent is given and described, and every upload is
a recording by its content (probed through an allow-list of containers after it is saved under
a server-made name, never by its file name or declared type). A retried request with the same
``Idempotency-Key`` gets the job the first one created.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from functools import partial
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
from .store import AnchorInMaking
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
IDEMPOTENCY_PARAMETERS = [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                           "description": "Retrying with the same key returns the same job instead of a new one."}]
_OPENAPI = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": TextJobRequest.model_json_schema()},
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
    }},
    "parameters": IDEMPOTENCY_PARAMETERS,
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429)}
def refuse(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _check_title(title: str | None, subtitle: str | None) -> None:
    for name, value in (("title", title), ("subtitle", subtitle)):
        if value is None:
            continue
        if not value.strip():
            raise refuse(422, f"{name}: must not be blank (leave it out instead)")
        if len(value) > MAX_TITLE_CHARS:
            raise refuse(422, f"{name}: {len(value)} characters; at most {MAX_TITLE_CHARS}")
        if not all(" " <= c <= "~" for c in value):
            raise refuse(422, f"{name}: only printable ASCII letters, digits and punctuation can be drawn")
    if subtitle is not None and title is None:
        raise refuse(422, "subtitle: needs a title")


def _check_anchor(request: Request, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise refuse(422, "anchor: required (see GET /api/anchors)")
    if request.app.state.anchors.get(name) is None:
        raise refuse(404, f"anchor {name[:100]!r}: not found (see GET /api/anchors)")
    return name


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise refuse(422, "Idempotency-Key: 1 to 200 printable characters")
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
        raise refuse(422, f"{where}: {first['msg']}") from None
    anchor = _check_anchor(request, payload.anchor)
    limit = request.app.state.settings.max_text_chars
    if len(payload.text) > limit:
        raise refuse(413, f"text: {len(payload.text)} characters; this service reads at most {limit} per job")
    try:  # the check the command line makes, so that a job the worker could not speak is never queued
        check_script(payload.text, request.app.state.letter_scripts)
    except ScriptError as err:
        raise refuse(422, f"text: {err}") from None
    _check_title(payload.title, payload.subtitle)
    return anchor, {"input": "text", "text": payload.text, "title": payload.title, "subtitle": payload.subtitle,
                    "captions": payload.captions, "burn_captions": payload.burn_captions}


def save_upload(upload: UploadFile, folder: Path, limit: int, field: str = "audio",
                 limit_text: str | None = None) -> tuple[Path, str, int]:
    """Copy an upload to a hidden temporary file in ``folder`` → (path, SHA-256, bytes); over
    ``limit`` bytes is 413, naming ``field`` and ``limit_text`` (default: the limit)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=UPLOAD_PREFIX)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            for block in iter(lambda: upload.file.read(UPLOAD_CHUNK), b""):
                size += len(block)
                if size > limit:
                    raise refuse(413, f"{field}: larger than {limit_text or size_text(limit)}")
                digest.update(block)
                out.write(block)
        if size == 0:
            raise refuse(422, f"{field}: the file is empty")
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


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


def probe_recording(path: Path, field: str, *, video: bool):
    """The upload at ``path`` probed as a recording with sound (and a picture when ``video``) →
    its MediaInfo; anything else is 415, naming ``field``."""
    from ..media import RECORDING_FORMATS, probe

    try:
        # only demuxers of self-contained recordings: content sniffing alone would also pick
        # concat scripts and playlists, which open other files (another job's upload)
        return probe(path, require_video=video, formats=RECORDING_FORMATS)
    except MediaError as err:
        kind = "video recording with sound" if video else "audio recording"
        raise refuse(415, f"{field}: not a usable {kind} ({err.problem})") from None


def _probe_audio(path: Path, max_seconds: float) -> float:
    info = probe_recording(path, "audio", video=False)
    if info.audio_duration_s < 0.1:
        raise refuse(422, "audio: less than 0.1 s of sound")
    if info.audio_duration_s > max_seconds:
        raise refuse(413, f"audio: {info.audio_duration_s / 60:.1f} minutes; at most {max_seconds / 60:.0f} per job")
    return info.audio_duration_s


async def _audio_job(request: Request) -> tuple[str, dict, Path]:
    settings = request.app.state.settings
    async with request.form(max_files=1, max_fields=8) as form:
        anchor = _check_anchor(request, form.get("anchor"))
        title, subtitle = form.get("title") or None, form.get("subtitle") or None
        if not (title is None or isinstance(title, str)) or not (subtitle is None or isinstance(subtitle, str)):
            raise refuse(422, "title, subtitle: must be text fields")
        _check_title(title, subtitle)
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise refuse(422, "audio: attach the recording as a file field named 'audio'")
        saved, digest, _ = await run_in_threadpool(save_upload, upload, settings.outputs_dir, settings.max_upload_bytes)
    try:
        seconds = await run_in_threadpool(_probe_audio, saved, settings.max_audio_s)
    except BaseException:
        saved.unlink(missing_ok=True)
        raise
    return anchor, {"input": "audio", "audio_sha256": digest, "audio_s": round(seconds, 3), "title": title,
                    "subtitle": subtitle}, saved


def _replay(existing, kind: str, anchor: str, body: dict) -> JSONResponse:
    """The answer to a retried submission: the first job, if it is the same request."""
    if existing.kind != kind or existing.anchor != anchor or existing.request != body:
        raise refuse(409, "Idempotency-Key: already used for a different request")
    return _created(existing, status=200)


def _created(job, status: int) -> JSONResponse:
    """A queued job's answer: JobCreated pointing at the job, or AnchorCreated at the anchor it makes."""
    if job.kind == "anchor":
        return JSONResponse({"id": job.id, "name": job.anchor, "status": job.status}, status_code=status,
                            headers={"Location": f"/api/anchors/{job.anchor}"})
    return JSONResponse({"id": job.id, "status": job.status}, status_code=status,
                        headers={"Location": f"/api/jobs/{job.id}"})


def rate_limited(request: Request) -> JSONResponse | None:
    """The 429 answer when the client sent too many submissions (videos and anchors together)."""
    state = request.app.state
    wait = state.rate_limiter.retry_after(_client_key(request))
    if wait is None:
        return None
    return JSONResponse({"error": f"too many submissions: at most {state.settings.submissions_per_minute} "
                                  f"a minute; try again in {wait:.0f} s"}, status_code=429,
                        headers={"Retry-After": str(max(1, round(wait)))})


async def queue_job(request: Request, key: str | None, kind: str, anchor: str, body: dict,
                 uploads: list[tuple[Path, str]], still_free=None) -> JSONResponse:
    """Queue the checked job — or answer a retry with the job its key made — with its ``uploads``
    (saved file, name in the job's folder) moved into the job's folder before any worker can
    see the job. ``still_free()``: raises when a new anchor's name is taken (after the retry
    check: a retry of a queued anchor finds its own name taken). Uploads not moved are removed."""
    state = request.app.state
    pending = [path for path, _ in uploads]
    folder = state.settings.outputs_dir / uuid.uuid4().hex
    try:
        existing = await run_in_threadpool(state.store.find_by_key, key) if key is not None else None
        if existing is not None:
            return _replay(existing, kind, anchor, body)
        if still_free is not None:
            await run_in_threadpool(still_free)
        for path, name in uploads:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, folder / name)
            pending.remove(path)
        try:
            job, made = await run_in_threadpool(partial(state.store.create, folder.name, anchor, body, kind=kind,
                                                        idempotency_key=key))
        except AnchorInMaking as err:  # another request for the same name got there first
            shutil.rmtree(folder, ignore_errors=True)
            raise refuse(409, f"name {err.name!r}: already being made (see GET /api/anchors/{err.name})") from None
        except BaseException:  # no job: its uploads go too
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if not made:  # a retry raced us between the check and the insert
            shutil.rmtree(folder, ignore_errors=True)
            return _replay(job, kind, anchor, body)
    finally:
        for path in pending:
            path.unlink(missing_ok=True)
    return _created(job, status=202 if kind == "anchor" else 201)


@router.post("/api/jobs", status_code=201, response_model=JobCreated, responses=ERROR_RESPONSES, openapi_extra=_OPENAPI,
             summary="Queue a video: a script (JSON) or a recording (multipart field `audio`)")
async def submit_job(request: Request):
    key = idempotency_key(request)
    limited = rate_limited(request)
    if limited is not None:
        return limited
    content_type = request.headers.get("content-type", "").lower()
    uploads = []
    if content_type.startswith("application/json"):
        anchor, body = await _text_job(request)
    elif content_type.startswith("multipart/form-data"):
        anchor, body, saved = await _audio_job(request)
        uploads = [(saved, INPUT_NAME)]
    else:
        raise refuse(415, "send the job as application/json (a script) or multipart/form-data (a recording)")
    return await queue_job(request, key, "video", anchor, body, uploads)
