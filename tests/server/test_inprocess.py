"""The API in process, through httpx's ASGITransport: the same app `invoke serve` runs, without a
socket or a child process, so every refusal can be checked in milliseconds. The real-server
tests (test_api.py, test_lifecycle.py) cover what needs the process: binding, kill -9, SSE."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from i2vkit.runtime.server.http import create_app
from i2vkit.runtime.server.service import ServeConfig, Service
from i2vkit.settings import resolve
from tests.helpers.api import SMALL, png

pytestmark = pytest.mark.anyio
TOKEN = "in-process-token"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _service(home: Path, token: str | None = None) -> Service:
    app = resolve({"home": str(home)}, {}, {})
    config = ServeConfig(app=app, model="demo", devices=("cpu",), warmup=False, token=token,
                         queue_size=4, max_upload_bytes=2**20)  # fmt: skip
    return Service.create(config)


@pytest.fixture(scope="module")
def service(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("inprocess") / "home"
    shutil.copytree(demo_home, home)
    service = _service(home, TOKEN)
    service.start().join(timeout=120)  # the lifespan's work, which ASGITransport does not run
    assert service.state == "READY", service.reason
    yield service
    service.stop()


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(service.config, service))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://i2vkit.test",
                                 headers=headers) as client:  # fmt: skip
        yield client


async def _submit(client: httpx.AsyncClient, image: bytes | None = None, **fields: str):
    files = {"image": ("in.png", png() if image is None else image, "image/png")}
    return await client.post("/v1/jobs", data={**SMALL, **fields}, files=files)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("height", "100", "height=100 is not a multiple of 64; try height=128"),
        ("width", "4096", "width=4096 is out of range; allowed: 64 to 1536"),
        ("frames", "1", "frames=1 is out of range; allowed: 2 to 161"),
        ("steps", "abc", "steps='abc' is not a whole number"),
        ("guidance", "x", "guidance='x' is not a number"),
        ("seed", "-1", "seed=-1 is out of range"),
        ("scheduler", "plms", "scheduler 'plms' is unknown for demo; known: ddim, dpm++, euler"),
        ("prompt", "x" * 2001, "prompt is longer than 2000 characters"),
        ("preset", "ultra", "preset 'ultra' is unknown; known: entry, mainstream"),
    ],
)
async def test_each_bad_setting_gets_the_cli_s_sentence(client, field, value, message):
    response = await _submit(client, **{field: value})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


async def test_a_valid_job_runs_to_a_video(client):
    response = await _submit(client, prompt="a kite")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["status"] not in (
        "succeeded", "failed", "cancelled",
    ):  # fmt: skip
        assert time.monotonic() < deadline, job
        await anyio.sleep(0.05)
    assert job["status"] == "succeeded", job
    video = await client.get(f"/v1/jobs/{job_id}/video")
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert job["settings"]["prompt"] == "a kite" and job["settings"]["height"] == 64


async def test_without_the_token_nothing_but_health_answers(client):
    anonymous = {"Authorization": ""}
    assert (await client.get("/healthz", headers=anonymous)).status_code == 200
    for path in ("/v1/jobs", "/v1/info", "/v1/presets", "/metrics"):
        assert (await client.get(path, headers=anonymous)).status_code == 401, path
    wrong = {"Authorization": "Bearer not-it"}
    assert (await client.get("/v1/jobs", headers=wrong)).status_code == 401


async def test_unknown_and_malformed_ids_are_404(client):
    for bad in ("x" * 22, "../../etc/passwd", "a;b"):
        assert (await client.get(f"/v1/jobs/{bad}")).status_code == 404, bad


async def test_an_upload_over_the_limit_is_413(client):
    response = await _submit(client, image=png() + b"\0" * (2 * 2**20))
    assert response.status_code == 413 and "MiB" in response.json()["detail"]


async def test_not_an_image_is_422_with_the_reason(client):
    response = await _submit(client, image=b"%PDF-1.7 not a picture")
    assert response.status_code == 422 and "not an image" in response.json()["detail"]


async def test_the_openapi_form_carries_the_bounds(client):
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["JobForm"]
    height = next(s for s in schema["properties"]["height"]["anyOf"] if s.get("type"))
    assert (height["minimum"], height["maximum"]) == (64, 1536)
    assert schema["properties"]["preset"]["default"] == "preview"


async def test_a_server_still_loading_answers_503_with_retry_after(demo_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    service = _service(home)  # not started: STARTING
    try:
        transport = httpx.ASGITransport(app=create_app(service.config, service))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 503
            response = await _submit(client)
            assert response.status_code == 503 and response.headers["Retry-After"] == "5"
            assert (await client.get("/healthz")).json()["state"] == "STARTING"
    finally:
        service.stop()


async def test_images_people_send_are_accepted(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(buffer, "JPEG")
    response = await _submit(client, image=buffer.getvalue())
    assert response.status_code == 202, response.text
    await client.post(f"/v1/jobs/{response.json()['id']}/cancel")
