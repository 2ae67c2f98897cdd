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
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
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


# --- the hostile pass's findings, in process -------------------------------------------------


def _app(service: Service, **changes: object) -> httpx.ASGITransport:
    from dataclasses import replace

    return httpx.ASGITransport(app=create_app(replace(service.config, **changes), service))


PART = (
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
)


class Body:
    """A streamed (chunked) request body that counts the chunks the server pulled."""

    def __init__(self, chunks: int, size: int = 64 * 1024, stall: float = 0.0) -> None:
        self.chunks, self.size, self.stall, self.pulled = chunks, size, stall, 0

    async def __aiter__(self):
        self.pulled += 1
        yield PART  # a well-formed start: the parser reads on, into the image's bytes
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size
            if self.stall:
                await anyio.sleep(self.stall)


def _multipart(body: Body, **headers: str) -> dict:
    return {"content": body,
            "headers": {"Content-Type": "multipart/form-data; boundary=b", **headers}}  # fmt: skip


async def test_the_token_is_checked_before_the_body_is_read(client):
    body = Body(chunks=1000)  # 64 MiB, chunked: no Content-Length to refuse it by
    response = await client.post("/v1/jobs", **_multipart(body, Authorization=""))
    assert response.status_code == 401
    # nothing parsed or spooled: at most 1 MiB of the 64 is read and dropped before the
    # answer, so that closing on unread bytes does not reset it away
    assert body.pulled <= 18, body.pulled


async def test_a_chunked_body_is_cut_at_the_cap_while_it_streams(client):
    body = Body(chunks=1000)  # the cap: 1 MiB upload + 64 KiB of form
    response = await client.post("/v1/jobs", **_multipart(body))
    assert response.status_code == 413 and "MiB" in response.json()["detail"]
    # cut at the cap (1 MiB + 64 KiB: 18 chunks), then at most 1 MiB drained before the answer
    assert body.pulled <= 19 + 16, body.pulled


async def test_a_stalled_body_is_408(client, monkeypatch):
    from i2vkit.runtime.server import guard

    monkeypatch.setattr(guard, "BODY_IDLE_SECONDS", 0.3)
    body = Body(chunks=3, size=1024, stall=2.0)
    response = await client.post("/v1/jobs", **_multipart(body))
    assert response.status_code == 408 and "stalled" in response.json()["detail"]
    assert body.pulled == 2


async def test_without_a_token_a_foreign_host_or_origin_is_refused(service):
    open_app = _app(service, token=None)
    for base, status in (("http://attacker.example:7860", 403), ("http://127.0.0.1:7860", 200),
                         ("http://localhost:7860", 200), ("http://[::1]:7860", 200)):  # fmt: skip
        async with httpx.AsyncClient(transport=open_app, base_url=base) as c:
            assert (await c.get("/v1/jobs")).status_code == status, base
    async with httpx.AsyncClient(transport=open_app, base_url="http://127.0.0.1:7860") as c:
        # a page elsewhere posting a form (fetch no-cors + FormData sends its Origin)
        foreign = await _submit_with(c, {"Origin": "http://attacker.example"})
        assert foreign.status_code == 403 and "origin" in foreign.json()["detail"]
        framed = await _submit_with(c, {"Sec-Fetch-Site": "cross-site"})
        assert framed.status_code == 403
        same = await _submit_with(c, {"Origin": "http://127.0.0.1:7860"})
        assert same.status_code == 202, same.text
        await c.post(f"/v1/jobs/{same.json()['id']}/cancel")
    allowed = _app(service, token=None, allowed_hosts=("i2v.internal",))
    async with httpx.AsyncClient(transport=allowed, base_url="http://i2v.internal") as c:
        assert (await c.get("/v1/jobs")).status_code == 200


async def _submit_with(c: httpx.AsyncClient, headers: dict) -> httpx.Response:
    files = {"image": ("in.png", png(), "image/png")}
    return await c.post("/v1/jobs", data=SMALL, files=files, headers=headers)


async def test_every_answer_forbids_framing_sniffing_and_foreign_scripts(client):
    for path in ("/", "/v1/info", "/v1/jobs/" + "x" * 22):
        headers = (await client.get(path)).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


async def test_an_unexpected_error_is_a_json_500_with_the_same_headers(service, caplog):
    app = create_app(service.config, service)

    @app.get("/v1/broken")  # a route with a bug, on the app `invoke serve` runs
    def broken() -> None:
        raise KeyError("no such thing")

    # as uvicorn does: what the app raises after its answer is not the client's
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:  # fmt: skip
        answer = await c.get("/v1/broken")
    assert answer.status_code == 500
    assert answer.json()["detail"] == "internal error: KeyError; the server's log has more"
    assert answer.json()["error"]["type"] == "server_error"  # the openai client's 5xx shape
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    failed = [r for r in caplog.records if r.getMessage() == "request failed: GET /v1/broken"]
    assert len(failed) == 1 and failed[0].exc_info, "logged once, with its traceback"


async def test_head_answers_as_get_without_a_body_and_docs_need_no_cdn(client):
    for path in ("/v1/info", "/healthz", "/"):
        response = await client.head(path)
        assert response.status_code == 200 and response.content == b"", path
        assert int(response.headers["content-length"]) > 0
    assert (await client.get("/docs")).status_code == 404  # Swagger UI would load a CDN
    assert (await client.get("/openapi.json")).status_code == 200


async def test_cancelling_an_ended_job_is_409(client):
    job_id = (await _submit(client)).json()["id"]
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
    deadline = time.monotonic() + 60
    while (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "running":
        assert time.monotonic() < deadline
        await anyio.sleep(0.05)
    again = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


async def test_a_refusal_never_echoes_a_huge_value(client):
    response = await _submit(client, prompt="p" * 1_000_000)
    assert response.status_code == 422
    assert len(response.content) < 2000, len(response.content)
    assert "(1000000 characters)" in response.text


async def test_several_image_fields_are_refused(client):
    files = [("image", ("a.png", png(), "image/png")), ("image", ("b.png", png(), "image/png"))]
    response = await client.post("/v1/jobs", data=SMALL, files=files)
    assert response.status_code == 422 and "several 'image'" in response.json()["detail"]


async def test_the_seed_s_range_is_written_in_whole_numbers(client):
    response = await _submit(client, seed="-5")
    assert "allowed: 0 to 4294967295" in response.json()["detail"]


async def test_an_extreme_aspect_ratio_is_refused_before_it_is_decoded(client, service):
    thin = png(width=1, height=20000)  # under 1 KB; cropping it once asked for gigabytes
    response = await _submit(client, image=thin)
    assert response.status_code == 422 and "16 times" in response.json()["detail"]
    # a wide but sane picture is cropped to the job's size before it is stored
    from PIL import Image

    wide = await _submit(client, image=png(width=1024, height=128))
    assert wide.status_code == 202, wide.text
    job_id = wide.json()["id"]
    with Image.open(service.store.input_path(job_id)) as stored:
        assert stored.size == (64, 64)
    await client.post(f"/v1/jobs/{job_id}/cancel")


async def test_a_large_photo_is_stored_at_the_job_s_size(client, service):
    from PIL import Image

    photo = io.BytesIO()
    Image.linear_gradient("L").resize((3000, 2000)).convert("RGB").save(photo, "JPEG")
    response = await _submit(client, image=photo.getvalue())
    assert response.status_code == 202, response.text
    stored = service.store.input_path(response.json()["id"])
    assert stored.stat().st_size < 20_000, stored.stat().st_size  # not a 3000x2000 PNG
    await client.post(f"/v1/jobs/{response.json()['id']}/cancel")


async def test_a_text_field_that_is_not_utf8_is_refused_not_stored_as_mojibake(client):
    prompt = "un caf\xe9 au bord de l'eau".encode("latin-1")  # é as one byte: not UTF-8
    body = (b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n' + prompt +
            b'\r\n--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png() + b"\r\n--b--\r\n")  # fmt: skip
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = await client.post("/v1/jobs", content=body, headers=headers)
    assert response.status_code == 422 and "'prompt' is not UTF-8" in response.text
    accepted = await _submit(client, prompt="un café au bord de l'eau — 水")  # UTF-8: fine
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["settings"]["prompt"] == "un café au bord de l'eau — 水"
    await client.post(f"/v1/jobs/{accepted.json()['id']}/cancel")


async def test_presets_on_a_cpu_warn_and_estimate_the_time(client):
    job_id = (await _submit(client)).json()["id"]
    deadline = time.monotonic() + 60
    while (await client.get(f"/v1/jobs/{job_id}")).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        await anyio.sleep(0.05)
    presets = {p["name"]: p for p in (await client.get("/v1/presets")).json()}
    assert presets["preview"]["warning"] == "" or "min" in presets["preview"]["warning"]
    assert "not meant for a CPU" in presets["entry"]["warning"]
    # from this server's own jobs: a bigger preset is expected to take longer
    assert 0 < presets["preview"]["seconds_estimate"] < presets["pro"]["seconds_estimate"]
    # and a client that sends a big job hears it at once, not after minutes
    big = await _submit(client, height="512", width="512", frames="16", steps="50")
    assert big.status_code == 202, big.text
    assert any("runs on a CPU" in w for w in big.json()["warnings"]), big.json()["warnings"]
    await client.post(f"/v1/jobs/{big.json()['id']}/cancel")
    assert (await _submit(client)).json()["warnings"] == []


async def test_forged_session_cookies_are_401_not_500(client):
    for forged in ("9" * 5000 + ".x", "\u00b2.x", ".", "1.", "abc"):
        cookie = {"Cookie": f"i2vkit_session={forged}".encode()}  # bytes: "²" as UTF-8
        response = await client.get("/v1/info", headers={"Authorization": "", **cookie})
        assert response.status_code == 401, forged


async def test_hosts_with_tricks_are_refused_and_a_proxy_s_origin_is_allowed(service):
    open_app = _app(service, token=None)
    for host in ("evil.example@127.0.0.1", "127.0.0.1#.evil.example", "127.0.0.1:abc"):
        async with httpx.AsyncClient(transport=open_app, base_url="http://127.0.0.1") as c:
            assert (await c.get("/v1/jobs", headers={"Host": host})).status_code == 403, host
    # behind a proxy that rewrites Host, the page's origin is the proxy's (--allow-host)
    proxied = _app(service, allowed_hosts=("videos.example",))
    async with httpx.AsyncClient(transport=proxied, base_url="http://127.0.0.1:7860",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:  # fmt: skip
        response = await _submit_with(c, {"Origin": "https://videos.example"})
        assert response.status_code == 202, response.text
        await c.post(f"/v1/jobs/{response.json()['id']}/cancel")
