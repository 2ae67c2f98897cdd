"""The OpenAI videos API (`client.videos` of the official `openai` package) over the same job
store as /v1/jobs: a video is a job, with the same id.

The mapping: `input_reference` (an uploaded file) is the first frame, and required: these models
make a video from an image. `size` "WxH" is width and height; `seconds` is frames at the model's
fps, rounded to its frame rule (Wan: 4k+1); omitted, both are the preset's. i2vkit's own settings
(steps, seed, guidance, scheduler, negative_prompt, fps, preset) come as more form fields (the
client's `extra_body`); every value goes through `request.make`, so refusals read like /v1/jobs'.
Statuses: queued, running -> in_progress, succeeded -> completed, failed and cancelled -> failed.
`model` may be left out or name the served model; another is a 404 naming the served one (vLLM
answers an unserved model so; SGLang ignores the field).

Errors are {"error": {"message", "type", "param", "code"}}: the client raises its APIStatusError
subclass by status and shows only `error.message` in the exception's text. Auth is the app's
(a middleware over /v1/*), not this module's.
"""

# No `from __future__ import annotations`: FastAPI resolves the route signatures' annotations,
# and the form is a local of `routes` (as in http.py).
import math
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ConfigDict, Field

from i2vkit import catalogue, request
from i2vkit.errors import (
    I2VKitError,
    JobNotFoundError,
    NotReadyError,
    QueueFullError,
    RequestError,
    UnknownNameError,
    WontFitError,
    http_status,
)
from i2vkit.runtime.server import http  # the module, not its names: http.py imports this one
from i2vkit.runtime.server.service import ServeConfig, Service
from i2vkit.runtime.server.store import FINAL

STATUS = {"queued": "queued", "running": "in_progress", "succeeded": "completed",
          "failed": "failed", "cancelled": "failed"}  # fmt: skip
SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
LIST_MAX = 100  # a page's most videos
CODES: tuple[tuple[type[I2VKitError], str], ...] = (
    (JobNotFoundError, "not_found"),
    (QueueFullError, "queue_full"),
    (NotReadyError, "not_ready"),
    (WontFitError, "wont_fit"),
    (UnknownNameError, "unknown_name"),
    (RequestError, "invalid_value"),
)


class _OpenAIErrors(APIRoute):
    """Errors as the OpenAI API writes them, where the openai client reads the message (the
    rest of the app answers {"detail": ...}, which it would show as a bare status code)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(req: Request) -> Response:
            try:
                return await handler(req)
            except JobNotFoundError as error:
                return _error(404, f"no video has the id {error.job_id[:40]!r}", "not_found")
            except I2VKitError as error:
                code = next((c for kind, c in CODES if isinstance(error, kind)), "server_error")
                extra = http._extra(error)
                fits = {"fits": extra["fits"]} if "fits" in extra else {}
                return _error(http_status(error), str(error), code, extra.get("headers"), **fits)
            except RequestValidationError as error:
                problems = error.errors()
                param = str(problems[0]["loc"][-1]) if problems and problems[0]["loc"] else None
                message = "; ".join(request.sentence(e) for e in problems)
                return _error(422, message, "invalid_value", param=param)
            except HTTPException as error:
                return _error(error.status_code, str(error.detail), None, error.headers)

        return answer


def _error(
    status: int, message: str, code: str | None, headers: Mapping[str, str] | None = None,
    param: str | None = None, **extra: Any,
) -> JSONResponse:  # fmt: skip
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"message": message, "type": kind, "param": param, "code": code, **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def routes(app: FastAPI, service: Service, config: ServeConfig) -> None:
    router = APIRouter(prefix="/v1/videos", tags=["videos"], route_class=_OpenAIErrors)
    store = service.store

    class VideoForm(request.overrides_model()):  # type: ignore[misc]
        """OpenAI's create fields, and i2vkit's settings (the client's `extra_body`) but height,
        width and frames, which `size` and `seconds` set. Unknown fields are refused."""

        model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
        input_reference: UploadFile | None = Field(None, description="the first frame")
        model: str | None = Field(None, max_length=200)
        seconds: str | None = Field(None, max_length=16, description="the video's length")
        size: str | None = Field(None, max_length=16, description="WIDTHxHEIGHT in pixels")
        preset: str = Field(config.preset, max_length=32)

    @router.post("")  # File(), not Form(): the OpenAPI document then says multipart/form-data
    async def create(form: Annotated[VideoForm, File()]) -> dict[str, Any]:
        """Queue a video (a job, as POST /v1/jobs does): 422 without `input_reference` or
        when a value, the image or the memory planner refuses it; 404 for a model not served
        here; 429 when the queue is full."""
        image = form.input_reference
        if image is None:
            raise RequestError(f"input_reference is required: {config.model} makes a video "
                               "from an image, its first frame; upload one")  # fmt: skip
        if form.model not in (None, config.model):
            served = config.model
            raise HTTPException(404, f"model {form.model!r} is not served here; this server "
                                f"serves {served!r}: give that or leave model out")  # fmt: skip
        job = await http.accept(service, _settings(form, config), image)
        return _video(http._view(service, job), config.retention_hours)

    @router.get("")
    def videos(after: str | None = None, limit: int = 20, order: str = "desc") -> dict[str, Any]:
        """A page of videos, newest first (`order=asc`: oldest first), after the id `after`."""
        if not 1 <= limit <= LIST_MAX:
            raise RequestError(f"limit={limit} is out of range; allowed: 1 to {LIST_MAX}")
        if order not in ("asc", "desc"):
            raise RequestError(f"order={order!r} is unknown; known: asc, desc")
        jobs = store.page(after, limit + 1, oldest_first=order == "asc")  # one more: has_more
        data = [_video(http._view(service, job), config.retention_hours) for job in jobs[:limit]]
        return {"object": "list", "data": data, "has_more": len(jobs) > limit,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}  # fmt: skip

    @router.get("/{video_id}")
    def retrieve(video_id: str) -> dict[str, Any]:
        return _video(http._view(service, store.get(video_id)), config.retention_hours)

    @router.delete("/{video_id}")
    def delete(video_id: str) -> dict[str, Any]:
        """Remove a video and its files. A queued one is cancelled and removed; a running one is
        cancelled (409): it stops at its next step, and can be deleted once it has."""
        job = store.delete(video_id)
        if job.status not in FINAL:
            raise HTTPException(409, f"video {job.id} was in_progress: it is cancelled and "
                                "stops at its next step; delete it once it is failed")  # fmt: skip
        return {"id": job.id, "object": "video.deleted", "deleted": True}

    @router.get("/{video_id}/content", response_class=FileResponse)
    def content(video_id: str, variant: str = "video") -> FileResponse:
        """The mp4 of a completed video; HTTP range requests work."""
        job = store.get(video_id)
        if variant != "video":
            raise HTTPException(404, f"variant={variant!r} is not made here; there is only "
                                "variant=video (the mp4)")  # fmt: skip
        path = store.output_path(job.id)
        if job.status != "succeeded" or not path.exists():
            raise HTTPException(404, f"video {job.id} has no content: it is {STATUS[job.status]}")
        return FileResponse(path, media_type="video/mp4", filename=f"{job.id}.mp4")

    @router.api_route("/{rest:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    def elsewhere(req: Request) -> None:
        """remix, edit, extend, characters: a clear 404 rather than a bare 405."""
        raise HTTPException(404, f"{req.method} {req.url.path} is not served here; i2vkit's "
                            "videos API: create, retrieve, list, delete, content")  # fmt: skip

    app.include_router(router)


def _settings(form: Any, config: ServeConfig) -> request.Request:
    """The job's settings: `size` and `seconds` as height, width and frames, then the preset,
    the model's defaults and every bound, by `request.make`."""
    given = form.model_dump(exclude={"input_reference", "model", "seconds", "size", "preset"},
                            exclude_none=True)  # fmt: skip
    for name, instead in (("height", "size"), ("width", "size"), ("frames", "seconds")):
        if name in given:
            raise RequestError(f"{name} is set by {instead} here; give {instead} instead")
    model = catalogue.model(config.model)
    how: dict[str, str] = {}  # a derived setting: how the client's value became it
    if form.size is not None:
        given["width"], given["height"] = _size(form.size, model)
        how["width"] = how["height"] = (
            f"size={form.size} is width={given['width']}, height={given['height']}"
        )
    if form.seconds is not None:
        fps = given.get("fps", model.fps)
        given["frames"] = _frames(form.seconds, model, fps)
        how["frames"] = f"seconds={form.seconds} is frames={given['frames']} at {fps} fps"
    try:
        return request.make(config.model, form.preset, **given)
    except RequestError as error:
        named = dict.fromkeys(v for k, v in how.items() if f"{k}=" in str(error))
        raise RequestError(f"{error} ({'; '.join(named)})" if named else str(error)) from error


def _size(size: str, model: catalogue.Model) -> tuple[int, int]:
    match = SIZE.match(size)
    if match is None:
        lim = catalogue.limits()
        k = max(model.size_multiple, lim.size_multiple)
        raise RequestError(f"size={size!r} is not WIDTHxHEIGHT in pixels, e.g. 512x512 "
                           f"(multiples of {k}, {lim.size_min} to {lim.size_max})")  # fmt: skip
    return int(match[1]), int(match[2])


def _frames(seconds: str, model: catalogue.Model, fps: int) -> int:
    """`seconds` at `fps` in frames, rounded to the model's frame rule and within its limits."""
    try:
        value = float(seconds)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise RequestError(f"seconds={seconds!r} is not a number")
    low, high = catalogue.limits().frames_min, model.frames_max or catalogue.limits().frames_max
    if not low <= value * fps <= high:
        raise RequestError(
            f"seconds={seconds} is out of range; allowed: {low / fps:g} to {high / fps:g} "
            f"({model.name} makes {low} to {high} frames at {fps} fps)"
        )
    step = model.frames_step
    if step == 1:
        return max(low, round(value * fps))
    most = (high - 1) // step  # frames = k * step + 1, 1 <= k <= most
    return min(most, max(1, round((value * fps - 1) / step))) * step + 1


def _video(view: dict[str, Any], retention_hours: float) -> dict[str, Any]:
    """A job's view (http._view) as OpenAI's Video object."""
    s, status = view["settings"], STATUS[view["status"]]
    video: dict[str, Any] = {
        "id": view["id"],
        "object": "video",
        "model": s["model"],
        "status": status,
        "progress": _progress(status, view.get("progress")),
        "created_at": int(view["created"]),
        "completed_at": int(view["finished"]) if view["finished"] else None,
        "expires_at": _expires(view, retention_hours),
        "prompt": s.get("prompt", ""),
        "seconds": f"{round(s['frames'] / s['fps'], 3):g}",
        "size": f"{s['width']}x{s['height']}",
        "remixed_from_video_id": None,
        "error": None,
    }
    if status == "failed":  # failed or cancelled: the cause is the code (oom, interrupted, ...)
        video["error"] = {"code": view["cause"] or view["status"],
                          "message": view["error"] or view["status"]}  # fmt: skip
    return video


def _expires(view: dict[str, Any], hours: float) -> int | None:
    """When --retention-hours removes the finished video (None: kept, or not finished)."""
    return int(view["finished"] + hours * 3600) if view["finished"] and hours else None


def _progress(status: str, progress: dict[str, Any] | None) -> int:
    """0 to 100 by denoising steps: 99 at most until the video is written."""
    if status == "completed":
        return 100
    if not progress or not progress["total"]:
        return 0
    if progress["stage"] != "denoise":  # encoding before, decoding and writing after
        return 0 if progress["stage"] == "encode" else 99
    return min(99, math.floor(100 * progress["step"] / progress["total"]))
