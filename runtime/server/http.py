"""The HTTP API (FastAPI; OpenAPI at /openapi.json), versioned under /v1, and the web page.

Every request is checked before it is accepted: Host, Origin, the token and the body's size
before the body is read (guard.py), then the image, every setting's bounds and the memory
planner. Accepted jobs are persisted before the 202. Image work runs off the event loop.
"""

# No `from __future__ import annotations` here: FastAPI resolves the route signatures'
# annotations, and the job form is a local of `_routes`.
import asyncio
import contextlib
import hmac
import io
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ConfigDict, Field

from i2vkit import files, request
from i2vkit.errors import (
    I2VKitError,
    JobNotFoundError,
    NotReadyError,
    QueueFullError,
    RequestError,
    WontFitError,
    http_status,
)
from i2vkit.runtime.pictures import load_image
from i2vkit.runtime.pipelines.base import fit
from i2vkit.runtime.server import estimates, guard, page, videos
from i2vkit.runtime.server.service import ServeConfig, Service
from i2vkit.runtime.server.store import FINAL, Job

FORM_OVERHEAD = 64 * 1024  # the form's other fields and multipart framing, beside the image
LOGINS_PER_MINUTE = 5  # failed logins from one client before 429
# pictures decoded at once: each may be 40 MP (120 MB as RGB) though its file is a few KB, so
# a flood of small uploads must not decode in every pool thread at once
DECODES = 2
_decoding: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
log = logging.getLogger("i2vkit.server")


def create_app(config: ServeConfig, service: Service | None = None) -> FastAPI:
    service = service or Service.create(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()  # loads in the background: /healthz answers STARTING meanwhile
        yield
        service.stop()

    # /docs and /redoc would load Swagger's scripts from a CDN (blank offline or where it is
    # blocked): the schema is at /openapi.json, the page has a "use via API" snippet
    app = FastAPI(title="i2vkit", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(guard.Guard, token=config.token, allowed_hosts=config.allowed_hosts,
                       max_body=config.max_upload_bytes + FORM_OVERHEAD)  # fmt: skip

    @app.exception_handler(I2VKitError)
    async def known_error(_req: Request, error: I2VKitError) -> JSONResponse:
        return _error(http_status(error), str(error), **_extra(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, error: RequestValidationError) -> JSONResponse:
        # the same sentences as the CLI's, not pydantic's: the value, then what would do
        problems = [request.sentence(e) for e in error.errors()]
        details = [{**e, "input": request.short(e.get("input"))} for e in error.errors()]
        return _error(422, "; ".join(problems), errors=jsonable_encoder(details))

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage(_req: Request, error: Exception) -> JSONResponse:
        return _storage_error(error, config)

    # an exception nothing here handles: guard.py answers a JSON 500 with its headers
    _routes(app, service, config)
    page.routes(app, service, config)
    videos.routes(app, service, config)
    return app


def _storage_error(error: Exception, config: ServeConfig) -> JSONResponse:
    """The job store could not write: a full disk (507, the folder named) or another error of
    the filesystem or SQLite (500), as JSON."""
    full = (isinstance(error, OSError) and error.errno in files.DISK_FULL) or "full" in str(error)
    log.error("the job store failed: %s", error)
    if full:
        return _error(507, f"no space left to store the job in {config.folder}: free disk "
                      "space there (or lower --retention-hours) and try again",
                      headers={"Retry-After": "60"})  # fmt: skip
    return _error(500, f"the job store failed: {error}")


def _extra(error: I2VKitError) -> dict[str, Any]:
    if isinstance(error, WontFitError):
        return {"fits": list(error.fits)}
    if isinstance(error, QueueFullError):
        return {"headers": {"Retry-After": str(error.retry_after)}}
    if isinstance(error, NotReadyError):
        return {"headers": {"Retry-After": "5"}}
    return {}


def _error(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _routes(app: FastAPI, service: Service, config: ServeConfig) -> None:
    # no auth dependency: guard.py checks the token for /v1/ and /metrics before the body
    failures: dict[str, deque[float]] = {}  # failed logins per client, for the rate limit
    failures_lock = threading.Lock()  # login is a sync route: it runs in pool threads

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Alive: the process answers. The body says the state and, when FAILED, why, and
        each worker's state (ready, busy, restarting, failed), where it runs and its deaths."""
        return {"state": service.health, "reason": service.reason,
                "workers": [slot.view() for slot in service.slots]}  # fmt: skip

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready to take work: 200 when READY or BUSY, 503 while STARTING or FAILED."""
        ok = service.health in ("READY", "BUSY")
        return JSONResponse({"state": service.health, "reason": service.reason},
                            status_code=200 if ok else 503)  # fmt: skip

    @app.post("/v1/login", include_in_schema=False)
    def login(req: Request, token: Annotated[str, Form(max_length=512)]) -> JSONResponse:
        """The page's sign-in: a session cookie (12 h, an HMAC, never the token itself);
        5 failures a minute from one client, then 429."""
        client = req.client.host if req.client else "?"
        now = time.monotonic()
        with failures_lock:
            if len(failures) > 10_000:  # many clients: forget those idle for a minute
                for idle in [c for c, d in failures.items() if not d or now - d[-1] > 60]:
                    del failures[idle]
            recent = failures.setdefault(client, deque(maxlen=LOGINS_PER_MINUTE))
        if len(recent) == LOGINS_PER_MINUTE and now - recent[0] < 60:
            wait = int(60 - (now - recent[0])) + 1
            raise HTTPException(429, f"too many failed logins: try again in {wait} s",
                                {"Retry-After": str(wait)})  # fmt: skip
        if not config.token or not hmac.compare_digest(token.encode(), config.token.encode()):
            recent.append(now)
            raise HTTPException(401, "wrong token")
        response = JSONResponse({"ok": True})
        response.set_cookie(guard.COOKIE, guard.session(config.token), httponly=True,
                            samesite="strict", max_age=guard.SESSION_SECONDS)  # fmt: skip
        return response

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        return service.info()

    @app.get("/v1/presets")
    def presets() -> list[dict[str, Any]]:
        return estimates.presets(service, config)

    class JobForm(request.overrides_model()):  # type: ignore[misc]
        """The job's settings as form fields: the overrides every entry point checks alike
        (i2vkit/request.py), and the preset they start from."""

        model_config = ConfigDict(extra="ignore", frozen=True)  # the image is its own part
        preset: str = Field(config.preset, max_length=32)

    @app.post("/v1/jobs", status_code=202)
    async def submit(
        req: Request,
        image: Annotated[UploadFile, File(description="the first frame: PNG, JPEG, WebP, ...")],
        form: Annotated[JobForm, Form()],
    ) -> dict[str, Any]:
        """Queue a job. 202 with its id and URLs; 422 when a setting, the image or the memory
        planner refuses it (with settings that would fit); 429 with Retry-After when full."""
        if len((await req.form()).getlist("image")) > 1:  # parsed once: FastAPI's copy
            raise RequestError("several 'image' fields were sent; send exactly one")
        overrides = form.model_dump(exclude={"preset"}, exclude_none=True)
        s = request.make(config.model, form.preset, **overrides)
        job = await accept(service, s, image)
        view = _view(service, job)
        view["warnings"] = estimates.slow(service, s)
        return view

    @app.get("/v1/jobs")
    def recent(limit: int = 20) -> list[dict[str, Any]]:
        if not 1 <= limit <= 200:
            raise RequestError(f"limit={limit} is out of range; allowed: 1 to 200")
        return [_view(service, job) for job in service.store.recent(limit)]

    @app.get("/v1/jobs/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        return _view(service, service.store.get(job_id))

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202)
    def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, a running one at its next denoising step; 409 when it
        has already ended."""
        job = service.store.get(job_id)
        if job.status in FINAL:
            raise HTTPException(409, f"job {job_id} has already ended: it {job.status}")
        return _view(service, service.store.cancel(job_id))

    @app.get("/v1/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        """Server-sent events: `progress` while the job is queued or runs, then `done` (or
        `deleted`, when the job is deleted meanwhile)."""
        service.store.get(job_id)  # 404 before the stream starts
        return StreamingResponse(_stream(service, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.get("/v1/jobs/{job_id}/video", response_class=FileResponse)
    def video(job_id: str) -> FileResponse:
        """The mp4 of a succeeded job; HTTP range requests work (a browser can seek)."""
        job = service.store.get(job_id)
        path = service.store.output_path(job_id)
        if job.status != "succeeded" or not path.exists():
            raise HTTPException(404, f"no video: the job is {job.status}")
        return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        _device_memory(service)
        service.metrics.queue_depth.set(service.store.depth())
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def accept(service: Service, s: request.Request, image: UploadFile) -> Job:
    """Check, plan and persist a job whose first frame is the upload `image`: what every API
    that creates jobs (ours, the OpenAI videos API) does. The picture is decoded, cropped to the
    job's size and encoded off the event loop (a 6300x6300 JPEG took 17 s on it); the store
    writes the small PNG that results."""
    config = service.config
    if service.health not in ("READY", "BUSY"):
        raise NotReadyError(f"not ready: {service.health}")
    data = await image.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise HTTPException(413, f"image is over {config.max_upload_bytes // 2**20} MiB")
    service.plan(s)
    if service.store.depth() >= config.queue_size:  # before the costly decode, not after
        raise QueueFullError(config.queue_size, estimates.retry_after(service))
    decoding = _decoding.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(DECODES))
    async with decoding:
        png = await asyncio.to_thread(_first_frame, data, image.filename or "image", s)
    retry = estimates.retry_after(service)  # said by the 429 if the queue filled meanwhile
    job = await asyncio.to_thread(service.store.submit, s.model_dump(), png, retry)
    service.metrics.queue_depth.set(service.store.depth())
    return job


def _first_frame(data: bytes, name: str, s: request.Request) -> bytes:
    """The upload as the job's first frame: decoded (bounded by pictures.py), cropped to the
    video's aspect around its centre and resized to its size (ImageOps.fit crops first, so an
    extreme aspect ratio costs nothing), as PNG bytes."""
    picture = fit(load_image(data, name), s.height, s.width)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _view(service: Service, job: Job) -> dict[str, Any]:
    base = f"/v1/jobs/{job.id}"
    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "settings": job.settings,
        "error": job.error,
        "cause": job.cause,
        "urls": {
            "self": base,
            "events": f"{base}/events",
            "cancel": f"{base}/cancel",
            "video": f"{base}/video" if job.status == "succeeded" else None,
        },
    }
    if job.status == "queued":
        view["queue"] = estimates.place(service, job)
    progress = service.store.progress.get(job.id)
    if progress:
        view["progress"] = {
            "stage": progress.stage,
            "step": progress.step,
            "total": progress.total,
            "eta_seconds": progress.eta(),
        }
    if job.result:
        view["result"] = {k: v for k, v in job.result.items() if k != "settings"}
    return view


async def _stream(service: Service, job_id: str) -> AsyncIterator[str]:
    """Push every change: the worker's thread hands each step to this stream's asyncio queue.
    No thread waits for a stream (50 open streams held 50 of the pool's threads, and a POST
    waited 97 s); a client that leaves cancels this generator, which unsubscribes."""
    store = service.store
    loop = asyncio.get_running_loop()
    changes: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def deliver(snapshot: dict[str, Any] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(changes.put_nowait, snapshot)

    store.subscribe(job_id, deliver)
    try:
        job = store.get(job_id)
        view = _view(service, job)
        while True:  # the job may be deleted meanwhile (the videos API, retention): see below
            kind = "done" if job.status in FINAL else "progress"
            yield f"event: {kind}\ndata: {json.dumps(view, sort_keys=True)}\n\n"
            if kind == "done":
                return
            try:
                snapshot = await asyncio.wait_for(changes.get(), 15.0)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            try:
                job = store.get(job_id)
            except JobNotFoundError:  # the stream ends saying so, not with a traceback
                yield f"event: deleted\ndata: {json.dumps({'id': job_id})}\n\n"
                return
            view = _view(service, job)
            if snapshot is not None and job.status == "running":
                view["progress"] = snapshot  # exactly this step, even if the job moved on
    finally:
        store.unsubscribe(job_id, deliver)


def _device_memory(service: Service) -> None:
    """As the workers last saw it (after their last job): this process never touches a GPU."""
    for slot in service.slots:
        if slot.facts:
            device = slot.facts.device
            service.metrics.gpu_memory.labels(device, "free").set(slot.facts.free)
            service.metrics.gpu_memory.labels(device, "total").set(slot.facts.total)
