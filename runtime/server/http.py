"""The HTTP API (FastAPI; OpenAPI at /openapi.json), versioned under /v1, and the web page.

Every request is checked before it is accepted: auth, upload size, the image, every setting's
bounds, and the memory planner. Accepted jobs are persisted before the 202.
"""

# No `from __future__ import annotations` here: FastAPI resolves the route signatures'
# annotations, and the job form is a local of `_routes`.
import asyncio
import hmac
import json
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ConfigDict, Field

from i2vkit import catalogue, request
from i2vkit.errors import (
    I2VKitError,
    NotReadyError,
    QueueFullError,
    RequestError,
    WontFitError,
    http_status,
)
from i2vkit.runtime.pictures import load_image
from i2vkit.runtime.runner import plan_on
from i2vkit.runtime.server.service import ServeConfig, Service
from i2vkit.runtime.server.store import FINAL, Job

PAGE = Path(__file__).with_name("web") / "index.html"
COOKIE = "i2vkit_token"


def create_app(config: ServeConfig, service: Service | None = None) -> FastAPI:
    service = service or Service.create(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()  # loads in the background: /healthz answers STARTING meanwhile
        yield
        service.stop()

    app = FastAPI(title="i2vkit", version="1", lifespan=lifespan)
    app.state.service = service

    @app.middleware("http")
    async def limit_upload(req: Request, call_next: Any) -> Response:
        length = req.headers.get("content-length", "")
        if length.isdigit() and int(length) > config.max_upload_bytes + 64 * 1024:
            return _error(413, f"upload is over {config.max_upload_bytes // 2**20} MiB")
        return await call_next(req)

    @app.exception_handler(I2VKitError)
    async def known_error(_req: Request, error: I2VKitError) -> JSONResponse:
        return _error(http_status(error), str(error), **_extra(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req: Request, error: RequestValidationError) -> JSONResponse:
        # the same sentences as the CLI's, not pydantic's: the value, then what would do
        problems = [request.sentence(e) for e in error.errors()]
        return _error(422, "; ".join(problems), errors=jsonable_encoder(error.errors()))

    _routes(app, service, config)
    return app


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
    def authorize(req: Request) -> None:
        if not config.token:
            return
        header = req.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else req.cookies.get(COOKIE, "")
        if not given or not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(401, "an API token is required", {"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorize)]

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.post("/v1/login", include_in_schema=False)
    def login(token: Annotated[str, Form(max_length=512)]) -> JSONResponse:
        if not config.token or not hmac.compare_digest(token.encode(), config.token.encode()):
            raise HTTPException(401, "wrong token")
        response = JSONResponse({"ok": True})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/v1/info", dependencies=auth)
    def info() -> dict[str, Any]:
        return service.info()

    @app.get("/v1/presets", dependencies=auth)
    def presets() -> list[dict[str, Any]]:
        return _presets(service, config)

    class JobForm(request.overrides_model()):  # type: ignore[misc]
        """The job's settings as form fields: the overrides every entry point checks alike
        (i2vkit/request.py), and the preset they start from."""

        model_config = ConfigDict(extra="ignore", frozen=True)  # the image is its own part
        preset: str = Field(config.preset, max_length=32)

    @app.post("/v1/jobs", status_code=202, dependencies=auth)
    async def submit(
        image: Annotated[UploadFile, File(description="the first frame: PNG, JPEG, WebP, ...")],
        form: Annotated[JobForm, Form()],
    ) -> dict[str, Any]:
        """Queue a job. 202 with its id and URLs; 422 when a setting, the image or the memory
        planner refuses it (with settings that would fit); 429 with Retry-After when full."""
        if service.health not in ("READY", "BUSY"):
            raise NotReadyError(f"not ready: {service.health}")
        overrides = form.model_dump(exclude={"preset"}, exclude_none=True)
        s = request.make(config.model, form.preset, **overrides)
        data = await image.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, f"image is over {config.max_upload_bytes // 2**20} MiB")
        picture = await asyncio.to_thread(load_image, data, image.filename or "image")
        service.plan(s)
        job = service.store.submit(s.model_dump(), picture, _retry_after(service))
        service.metrics.queue_depth.set(service.store.depth())
        return _view(service, job)

    @app.get("/v1/jobs", dependencies=auth)
    def recent(limit: int = 20) -> list[dict[str, Any]]:
        if not 1 <= limit <= 200:
            raise RequestError(f"limit={limit} is out of range; allowed: 1 to 200")
        return [_view(service, job) for job in service.store.recent(limit)]

    @app.get("/v1/jobs/{job_id}", dependencies=auth)
    def status(job_id: str) -> dict[str, Any]:
        return _view(service, service.store.get(job_id))

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, dependencies=auth)
    def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, a running one at its next denoising step."""
        return _view(service, service.store.cancel(job_id))

    @app.get("/v1/jobs/{job_id}/events", dependencies=auth)
    async def events(job_id: str) -> StreamingResponse:
        """Server-sent events: `progress` while the job is queued or runs, then `done`."""
        service.store.get(job_id)  # 404 before the stream starts
        return StreamingResponse(_stream(service, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.get("/v1/jobs/{job_id}/video", dependencies=auth, response_class=FileResponse)
    def video(job_id: str) -> FileResponse:
        """The mp4 of a succeeded job; HTTP range requests work (a browser can seek)."""
        job = service.store.get(job_id)
        path = service.store.output_path(job_id)
        if job.status != "succeeded" or not path.exists():
            raise HTTPException(404, f"no video: the job is {job.status}")
        return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")

    @app.get("/metrics", dependencies=auth, include_in_schema=False)
    def metrics() -> Response:
        _device_memory(service)
        service.metrics.queue_depth.set(service.store.depth())
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _retry_after(service: Service) -> int:
    done = [j for j in service.store.recent(20) if j.status == "succeeded" and j.result]
    if not done:
        return 10
    mean = sum(j.result["seconds"]["total"] for j in done if j.result) / len(done)
    able = sum(w.state in ("ready", "busy") for w in service.slots)
    return max(1, int(mean * service.store.depth() / max(1, able)))


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
    """Push every change: the worker publishes each step to this stream's queue."""
    store = service.store
    changes = store.subscribe(job_id)
    try:
        job = store.get(job_id)
        view = _view(service, job)
        while True:
            kind = "done" if job.status in FINAL else "progress"
            yield f"event: {kind}\ndata: {json.dumps(view, sort_keys=True)}\n\n"
            if kind == "done":
                return
            try:
                snapshot = await asyncio.to_thread(changes.get, True, 15.0)
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            job = store.get(job_id)
            view = _view(service, job)
            if snapshot is not None and job.status == "running":
                view["progress"] = snapshot  # exactly this step, even if the job moved on
    finally:
        store.unsubscribe(job_id, changes)


def _presets(service: Service, config: ServeConfig) -> list[dict[str, Any]]:
    """Every preset with whether it fits the device the jobs run on, and why."""
    out = []
    facts = service.facts()
    for p in catalogue.presets():
        s = request.make(config.model, p.name)  # the model's own numbers for the preset
        entry: dict[str, Any] = {"name": p.name, "height": s.height, "width": s.width,
                                 "frames": s.frames, "steps": s.steps}  # fmt: skip
        entry["fits"], entry["reason"] = True, ""
        entry["strategy"], entry["estimate_gib"] = None, None
        if facts:
            entry["strategy"] = facts.strategy  # the weights are placed at load
            try:
                estimate = plan_on(facts, s, config.app.home)
                entry["estimate_gib"] = round(estimate.peak / 2**30, 2)
            except WontFitError as error:
                entry["fits"], entry["reason"] = False, str(error)
        entry["default"] = p.name == config.preset
        out.append(entry)
    return out


def _device_memory(service: Service) -> None:
    """As the workers last saw it (after their last job): this process never touches a GPU."""
    for slot in service.slots:
        if slot.facts:
            device = slot.facts.device
            service.metrics.gpu_memory.labels(device, "free").set(slot.facts.free)
            service.metrics.gpu_memory.labels(device, "total").set(slot.facts.total)
