"""The newsroom web app: the page, the anchors, and the jobs' REST API (OpenAPI at /docs, served offline).

The app never renders or trains: it checks requests, queues jobs in the store and serves what
workers wrote — videos, and anchors (bundles in the anchors folder, offered as soon as they
appear there). Every error is answered as ``{"error": "one line"}``; unexpected ones are logged with
their traceback and answered without it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..bundle import QUALITY_FOLDER
from ..create import ACCEPTABLE
from ..create.listing import quality_status
from .anchor_jobs import TRIAL_ACCEPTS, anchor_recording_path, read_problems
from .anchors import NAME_PATTERN, Anchor, AnchorCatalog
from .docs import install_docs
from .security import BodyTooLarge, Guard, HostPolicy, RateLimiter, is_loopback, size_text
from .settings import MAX_JSON_BYTES, MAX_TITLE_CHARS, ServeSettings
from .store import Job, JobStore, open_store
from .submit import router as submit_router
from .submit_anchor import router as submit_anchor_router
from .views import (JOB_ID, AnchorDetail, AnchorView, ErrorBody, JobView, Limits, anchor_job_view, job_view,
                    measures_table)

log = logging.getLogger("newsanchor.serve")
STATIC = Path(__file__).parent / "static"
router = APIRouter()
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}  # FastAPI's type of responses
# the files of a bundle's quality report the API serves (no other name is ever looked up)
QUALITY_FILES = {"report.json": "application/json", "report.md": "text/markdown; charset=utf-8",
                 "preview.mp4": "video/mp4"}


def _state(request: Request):
    return request.app.state


def _job_or_404(request: Request, job_id: str):
    job = _state(request).store.get(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(404, f"job {job_id[:40]!r}: not found")
    return job


def _output_file(request: Request, job_id: str, which: str) -> Path:
    job = _job_or_404(request, job_id)
    relative = getattr(job, which)
    if job.status != "done" or not relative:
        raise HTTPException(404, f"job {job.id}: no {which} ({job.status})" if job.status != "done"
                            else f"job {job.id}: no {which} (not asked for, or the input was a recording)")
    outputs = _state(request).settings.outputs_dir.resolve()
    path = (outputs / relative).resolve()
    if not path.is_relative_to(outputs) or not path.is_file():  # rows are ours, but never follow one out
        raise HTTPException(404, f"job {job.id}: the {which} file is gone")
    return path


@router.get("/", include_in_schema=False)
def page():
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


@router.get("/api/limits", response_model=Limits, summary="The service's limits, for clients to check before sending")
def limits(request: Request):
    s = _state(request).settings
    return {"max_text_chars": s.max_text_chars, "max_upload_bytes": s.max_upload_bytes,
            "max_title_chars": MAX_TITLE_CHARS, "submissions_per_minute": s.submissions_per_minute,
            "max_recordings_bytes": s.max_recordings_bytes, "max_recordings": s.max_recordings,
            "max_recordings_s": s.max_recordings_s, "accept": list(ACCEPTABLE), "trial_accept": list(TRIAL_ACCEPTS)}


# --- anchors ---

def _presenter(anchor: Anchor | None, job: Job | None) -> dict:
    if anchor is not None:
        return {"name": anchor.presenter.name, "consent": anchor.presenter.consent}
    assert job is not None
    return {"name": job.request.get("presenter", ""), "consent": job.request.get("consent", "")}


def _anchor_fields(anchor: Anchor | None, job: Job | None, name: str) -> dict:
    """What the list and the detail say of an anchor (``anchor``: its bundle, when made) and of
    the job making it (``job``)."""
    return {"name": name, "presenter": _presenter(anchor, job),
            "created": anchor.created if anchor else None, "quality": anchor.quality if anchor else None,
            "quality_status": quality_status(anchor.quality) if anchor else None,
            "thumbnail": f"/api/anchors/{name}/thumbnail" if anchor else None,
            "job": anchor_job_view(job) if job is not None else None}


@router.get("/api/anchors", response_model=list[AnchorView],
            summary="The anchors this service offers (ready), then those being made (with progress)")
def anchors(request: Request):
    state = _state(request)
    ready = state.anchors.current()
    making = sorted(state.store.of_kind("anchor", unfinished=True, limit=1000), key=lambda job: job.created)
    return ([{**_anchor_fields(anchor, None, name), "state": "ready"} for name, anchor in ready.items()]
            + [{**_anchor_fields(None, job, job.anchor), "state": job.status} for job in making
               if job.anchor not in ready])


def _quality_file(anchor: Anchor, name: str) -> Path | None:
    """A file of the anchor's quality report, when the bundle has it (never outside the bundle)."""
    root = anchor.path.resolve()
    path = (root / QUALITY_FOLDER / name).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _public_report_text(state, anchor: Anchor) -> Callable[[str], str]:
    """What makes a report's text fit for clients: the recording problems it notes name the
    uploads by this server's paths (``create_anchor`` words them by path), so each becomes the
    name its client gave it (from the anchor's jobs) and any other server folder a plain word."""
    swaps = []
    for job in state.store.of_kind("anchor", anchor=anchor.name, limit=20):
        for recording in job.request.get("recordings", []):
            path = anchor_recording_path(state.settings.outputs_dir, job.id, recording["file"])
            swaps += [(str(path.resolve()), recording["name"]), (str(path), recording["name"])]
    for folder, shown in ((state.settings.outputs_dir, "job"), (state.settings.anchors_dir, "anchors")):
        swaps += [(str(Path(folder).resolve()), shown), (str(folder), shown)]

    def public(text: str) -> str:
        for server, shown in swaps:
            text = text.replace(server, shown)
        return text

    return public


def _report(state, anchor: Anchor) -> dict | None:
    """The anchor's quality report (report.json) as clients see it, or None."""
    path = _quality_file(anchor, "report.json")
    try:
        text = path.read_text() if path is not None else None
    except OSError:
        text = None
    if text is None:
        return None
    try:  # each string made public by itself: a replacement never meets JSON's escapes
        return _map_strings(json.loads(text), _public_report_text(state, anchor))
    except ValueError:
        log.warning("%s: the quality report cannot be read", anchor.name)
        return None


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    return value


@router.get("/api/anchors/{name}", response_model=AnchorDetail, responses=_NOT_FOUND,
            summary="An anchor: presenter, quality report and preview once made; progress, ETA or "
                    "problems while (or after failing) being made")
def anchor_detail(request: Request, name: str):
    state = _state(request)
    anchor = state.anchors.get(name) if NAME_PATTERN.match(name) else None
    jobs = state.store.of_kind("anchor", anchor=name, limit=1) if NAME_PATTERN.match(name) else []
    job = jobs[0] if jobs else None
    if anchor is not None:
        made_state = "ready"
    elif job is not None:
        made_state = job.status  # being made, or the latest try failed or was cancelled
    else:
        raise HTTPException(404, f"anchor {name[:100]!r}: not found (see GET /api/anchors)")
    report = _report(state, anchor) if anchor is not None else None
    return {**_anchor_fields(anchor, job, name), "state": made_state,
            "report": report, "measures": measures_table(report),
            "report_markdown": f"/api/anchors/{name}/quality/report.md" if anchor and _quality_file(anchor, "report.md") else None,
            "preview": f"/api/anchors/{name}/quality/preview.mp4" if anchor and _quality_file(anchor, "preview.mp4") else None,
            "problems": read_problems(state.settings.outputs_dir, job.id) if job and job.status == "failed" else [],
            "accepted_problems": list((report or {}).get("accepted_problems", []))}


def _anchor_or_404(request: Request, name: str) -> Anchor:
    anchor = _state(request).anchors.get(name) if NAME_PATTERN.match(name) else None
    if anchor is None:
        raise HTTPException(404, f"anchor {name[:100]!r}: not found")
    return anchor


@router.get("/api/anchors/{name}/thumbnail", responses={200: {"content": {"image/png": {}}}, **_NOT_FOUND},
            response_class=Response, summary="PNG of an anchor's first template frame")
def thumbnail(request: Request, name: str):
    return Response(_anchor_or_404(request, name).thumbnail_png, media_type="image/png")


@router.get("/api/anchors/{name}/quality/{file}", response_class=FileResponse, responses={
    200: {"content": {media: {} for media in QUALITY_FILES.values()}}, **_NOT_FOUND},
    summary="The anchor's quality report: report.json, report.md, or preview.mp4 (the anchor beside the recording)")
def quality_file(request: Request, name: str, file: str):
    anchor = _anchor_or_404(request, name)
    path = _quality_file(anchor, file) if file in QUALITY_FILES else None
    if path is None:
        raise HTTPException(404, f"anchor {name}: no quality file {file[:40]!r} (report.json, report.md, preview.mp4)")
    if file == "report.json":
        return JSONResponse(_report(_state(request), anchor))
    if file == "report.md":
        return Response(_public_report_text(_state(request), anchor)(path.read_text()), media_type=QUALITY_FILES[file])
    return FileResponse(path, media_type=QUALITY_FILES[file])


@router.get("/api/jobs", response_model=list[JobView], summary="Recent jobs, newest first")
async def recent_jobs(request: Request):
    state = _state(request)
    return [job_view(job) for job in await run_in_threadpool(state.store.recent, state.settings.recent_jobs)]


@router.get("/api/jobs/{job_id}", response_model=JobView, responses=_NOT_FOUND, summary="A job's state and progress")
def get_job(request: Request, job_id: str):
    return job_view(_job_or_404(request, job_id))


@router.get("/api/jobs/{job_id}/video", response_class=FileResponse, summary="The finished mp4 (404 until done)",
            responses={200: {"content": {"video/mp4": {}}}, **_NOT_FOUND})
def video(request: Request, job_id: str):
    return FileResponse(_output_file(request, job_id, "video"), media_type="video/mp4")


@router.get("/api/jobs/{job_id}/captions", response_class=FileResponse, summary="WebVTT captions of a text job",
            responses={200: {"content": {"text/vtt": {}}}, **_NOT_FOUND})
def captions(request: Request, job_id: str):
    return FileResponse(_output_file(request, job_id, "captions"), media_type="text/vtt; charset=utf-8")


@router.post("/api/jobs/{job_id}/cancel", response_model=JobView, responses=_NOT_FOUND,
             summary="Cancel: a queued job at once, a running one at its next progress report")
def cancel_job(request: Request, job_id: str):
    job = _state(request).store.cancel(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(404, f"job {job_id[:40]!r}: not found")
    return job_view(job)


@router.delete("/api/jobs/{job_id}", status_code=204, response_class=Response, responses=_NOT_FOUND,
               summary="Delete a job and its files (a running job is stopped)")
def delete_job(request: Request, job_id: str):
    state = _state(request)
    job = state.store.delete(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(404, f"job {job_id[:40]!r}: not found")
    shutil.rmtree(state.settings.outputs_dir / job.id, ignore_errors=True)
    return Response(status_code=204)


def _one_line(message: object) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else "error"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return JSONResponse({"error": f"request too large: more than {size_text(exc.limit)}"}, status_code=413)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal server error (details are in the server log)"}, status_code=500)


def _voice_letter_scripts() -> tuple[str, ...] | None:
    """The letters the workers' voice reads, so that scripts are checked before they are queued."""
    from ..speech import SpeechError, voice_letter_scripts

    try:
        return voice_letter_scripts()  # the default voice, as worker.py speaks with
    except SpeechError as err:  # the workers will say the same for every script; the app still answers
        log.warning("scripts are not checked for letters the voice cannot read: %s", err)
        return None


def create_app(settings: ServeSettings, store: JobStore | None = None) -> FastAPI:
    """The app for ``settings``: anchors are loaded (all checksums verified) now and again
    whenever the anchors folder gains or loses one, bad ones skipped with a logged reason;
    ``store`` defaults to ``open_store(settings.db_spec)``.

    Raises:
        ValueError: a non-loopback host without a token.
        NewsanchorError: an allowed host that is not a host name or address.
    """
    if settings.token is None and not is_loopback(settings.host):
        raise ValueError(f"host {settings.host}: a service reachable from other machines needs a token")
    hosts = HostPolicy(settings.host, settings.allowed_hosts)
    app = FastAPI(title="newsanchor newsroom", version=__version__, docs_url=None, redoc_url=None,  # docs.py
                  description="Queue videos of a virtual news anchor reading a script or lip-syncing a recording. "
                              "Every route but the page needs `Authorization: Bearer TOKEN` when the service "
                              "listens beyond loopback.")
    app.state.settings = settings
    app.state.store = store if store is not None else open_store(settings.db_spec)
    app.state.anchors = AnchorCatalog(settings.anchors_dir)
    app.state.anchors.current()  # loaded (and bad ones logged) at the start, not at the first request
    app.state.rate_limiter = RateLimiter(settings.submissions_per_minute)
    app.state.letter_scripts = _voice_letter_scripts()
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
    app.include_router(router)
    app.include_router(submit_router)
    app.include_router(submit_anchor_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_docs(app)
    _install_error_handlers(app)
    uploads = {"/api/jobs": (settings.max_upload_bytes, "audio files"),
               "/api/anchors": (settings.max_recordings_bytes, "an anchor's recordings (all files together)")}
    app.add_middleware(Guard, token=settings.token, uploads=uploads, max_json=MAX_JSON_BYTES, hosts=hosts)
    return app
