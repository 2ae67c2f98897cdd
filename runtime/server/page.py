"""The web page: GET / (web/index.html), its script and style under /static/, and each job's
input picture as a small JPEG for the page's job list.

The page has no inline script or style: it works under the strict Content-Security-Policy that
guard.py sends with every answer, as it does the token check for /v1/ (the thumbnails too).
The files are read once, when the app is made; they change with a release, so a browser
revalidates them (ETag) instead of keeping a stale copy.
"""

# No `from __future__ import annotations`: FastAPI resolves the route signatures' annotations.
import asyncio
import hashlib
import io
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from PIL import Image, ImageOps

from i2vkit.runtime.server.service import ServeConfig, Service

WEB = Path(__file__).with_name("web")
# the only files /static/ serves, with their types: nothing else in (or outside) web/ is reachable
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
THUMB_SIDE = 320  # the job list's pictures: at most this on the long side


def routes(app: FastAPI, service: Service, config: ServeConfig) -> None:
    """Register GET /, GET /static/{name} and GET /v1/jobs/{job_id}/input on `app`."""
    files = {"index.html": "text/html; charset=utf-8", **STATIC}
    served = {name: _Asset((WEB / name).read_bytes(), kind) for name, kind in files.items()}

    @app.get("/", include_in_schema=False)
    def page(req: Request) -> Response:
        return served["index.html"].response(req)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str, req: Request) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        return served[name].response(req)

    @app.get("/v1/jobs/{job_id}/input", response_class=Response)
    async def job_input(job_id: str) -> Response:
        """The job's input picture as a JPEG at most 320 px on its long side."""
        service.store.get(job_id)  # 404 for an unknown id
        path = service.store.input_path(job_id)
        try:
            data = await asyncio.to_thread(thumbnail, path)
        except FileNotFoundError:
            raise HTTPException(404, "the job's input picture is gone") from None
        # a job's input never changes; private: it may need the token
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=86400"})  # fmt: skip


class _Asset:
    def __init__(self, body: bytes, kind: str) -> None:
        self.body, self.kind = body, kind
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'

    def response(self, req: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "ETag": self.etag}
        if self.etag in req.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.kind, headers=headers)


def thumbnail(path: Path) -> bytes:
    """A small JPEG of the picture at `path` (the stored PNG or the original upload)."""
    with Image.open(path) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a fraction of the size
        picture = ImageOps.exif_transpose(image)
        if picture.mode in ("RGBA", "LA", "P", "PA"):
            rgba = picture.convert("RGBA")
            picture = Image.new("RGB", rgba.size, "white")
            picture.paste(rgba, mask=rgba.getchannel("A"))  # transparency on white, not black
        picture = picture.convert("RGB")
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=85)
    return out.getvalue()
