"""The newsroom web app: the page, the anchors, and the jobs' REST API (OpenAPI at /docs, served offline).

The app never renders: it checks requests, queues jobs in the store and serves what workers
wrote. Every error is answered as ``{"error": "one line"}``; unexpected ones are logged with
their traceback and answered without it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .anchors import discover_anchors
from .docs import install_docs
from .security import BodyTooLarge, Guard, HostPolicy, RateLimiter, is_loopback, size_text
from .settings import MAX_JSON_BYTES, MAX_TITLE_CHARS, ServeSettings
from .store import JobStore, open_store
from .submit import router as submit_router
from .views import JOB_ID, AnchorView, ErrorBody, JobView, Limits, job_view

log = logging.getLogger("newsanchor.serve")
STATIC = Path(__file__).parent / "static"
router = APIRouter()
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}  # FastAPI's type of responses


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
            "max_title_chars": MAX_TITLE_CHARS, "submissions_per_minute": s.submissions_per_minute}


@router.get("/api/anchors", response_model=list[AnchorView], summary="The anchors this service offers")
def anchors(request: Request):
    return [{"name": a.name, "presenter": {"name": a.presenter.name, "consent": a.presenter.consent},
             "thumbnail": f"/api/anchors/{a.name}/thumbnail"} for a in _state(request).anchors.values()]


@router.get("/api/anchors/{name}/thumbnail", responses={200: {"content": {"image/png": {}}}, **_NOT_FOUND},
            response_class=Response, summary="PNG of an anchor's first template frame")
def thumbnail(request: Request, name: str):
    anchor = _state(request).anchors.get(name)
    if anchor is None:
        raise HTTPException(404, f"anchor {name[:100]!r}: not found")
    return Response(anchor.thumbnail_png, media_type="image/png")


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
    """The app for ``settings``: anchors are loaded (all checksums verified) now, bad ones
    skipped with a logged reason; ``store`` defaults to ``open_store(settings.db_spec)``.

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
    app.state.anchors = discover_anchors(settings.anchors_dir)
    app.state.rate_limiter = RateLimiter(settings.submissions_per_minute)
    app.state.letter_scripts = _voice_letter_scripts()
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
    app.include_router(router)
    app.include_router(submit_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_docs(app)
    _install_error_handlers(app)
    app.add_middleware(Guard, token=settings.token, max_upload=settings.max_upload_bytes, max_json=MAX_JSON_BYTES,
                       hosts=hosts)
    return app
