"""The demo image, built for real by dockerd from the loopback mirrors, run, and inspected.

One build per session (the layer cache persists across sessions, see conftest.py); the slow
test rebuilds cold (no cache) and then after a code-only change, and prints the ratio.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from i2vkit.cli.images import plan_lines
from i2vkit.errors import ContainerStartError
from i2vkit.images import build as builder
from i2vkit.images.build import build_image
from i2vkit.images.plan import make_plan
from i2vkit.images.run import run_image
from i2vkit.settings import resolve
from tests.helpers import fresh
from tests.helpers.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = f"hf_buildSECRET{uuid.uuid4().hex}"
TAG = "i2vkit-test/demo:cpu"


def _file_in(client, tag: str, path: str) -> bytes:
    """A file of the image, read from a created (never started) container's filesystem: not
    `cat` through the container's log, whose last line (the JSON's closing brace, with no
    newline after it) a run read once as missing."""
    container = client.containers.create(tag)
    try:
        chunks, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None, path
            return member.read()
    finally:
        container.remove()


@pytest.fixture(scope="session")
def built(client, dockerd, base_image, mirror, tmp_path_factory):
    """`build_image` for the demo model with an HF token in the environment."""
    home = tmp_path_factory.mktemp("build-home")
    environ = {**dockerd.env, "HF_HOME": str(home / "hf")}
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)  # where huggingface_hub.get_token finds it
        try:
            summary = build_image(
                resolve({}, {}, environ), "demo", "loop", cuda="cpu", tag=TAG,
                base=base_image, custom_mirrors=mirror,
                show=lambda plan: lines.extend(plan_lines(plan)), say=lines.append,
                environ=environ,
            )  # fmt: skip
        except Exception:
            print("\n".join(lines)[-4000:].replace(TOKEN, "<token>"))
            raise
    assert summary is not None, "\n".join(lines)[-3000:]
    print("\n".join(summary.lines()))
    return summary, "\n".join(lines)


def _wait(url: str, timeout: float) -> int:
    end, status = time.monotonic() + timeout, 0
    while time.monotonic() < end:
        try:
            status = urllib.request.urlopen(url, timeout=3).status
            if status == 200:
                return status
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return status


def _multipart(fields: dict[str, str], image: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="{image.name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + image.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_the_image_serves_a_video(built, client, dockerd):
    port = free_port()
    container = run_image(TAG, port=port, gpus=False, insecure=True, environ=dockerd.env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait(f"{base}/readyz", 180) == 200, container.logs()[-2000:]
        body, kind = _multipart(
            {"height": "64", "width": "64", "frames": "4", "steps": "2", "prompt": "a boat"},
            ROOT / "docs" / "example.png",
        )
        request = urllib.request.Request(
            f"{base}/v1/jobs", data=body, method="POST", headers={"Content-Type": kind}
        )
        answer = urllib.request.urlopen(request, timeout=30)
        assert answer.status == 202
        job = json.load(answer)
        for _ in range(240):
            status = json.load(urllib.request.urlopen(f"{base}/v1/jobs/{job['id']}", timeout=5))
            if status["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert status["status"] == "succeeded", status
        video = urllib.request.urlopen(f"{base}/v1/jobs/{job['id']}/video", timeout=30).read()
        assert video[4:8] == b"ftyp" and len(video) > 1000
    finally:
        container.remove(force=True)


def test_image_config(built, client):
    attrs = client.images.get(TAG).attrs["Config"]
    assert attrs["User"] == "10001:10001"
    assert "HF_HUB_OFFLINE=1" in attrs["Env"]
    assert "/readyz" in " ".join(attrs["Healthcheck"]["Test"])
    assert attrs["Entrypoint"][:4] == ["python", "-m", "i2vkit", "serve"]
    labels = attrs["Labels"]
    assert labels["io.i2vkit.model"] == "demo"
    assert labels["io.i2vkit.torch.variant"] == "cpu"
    assert labels["io.i2vkit.lock.hash"].startswith("sha256:")
    assert labels["org.opencontainers.image.revision"]
    # the label is the lock hash the image's own setup recorded for its env
    state = _file_in(client, TAG, "/opt/i2vkit/env/.i2vkit-setup.json")
    assert b'"lock_hash"' in state, state
    recorded = json.loads(state)["lock_hash"]
    assert labels["io.i2vkit.lock.hash"] == f"sha256:{recorded}"


def test_the_token_is_nowhere_in_the_image(built, client, tmp_path):
    _summary, log = built
    assert TOKEN not in log
    history = json.dumps(client.api.history(TAG))
    assert "HF_TOKEN_URL" in history or "weights" in log  # the history was really read
    assert TOKEN not in history
    assert TOKEN not in json.dumps(client.api.inspect_image(TAG))
    needle, tail, size = TOKEN.encode(), b"", 0
    for chunk in client.images.get(TAG).save(chunk_size=1 << 20):  # every layer, as `docker save`
        size += len(chunk)
        assert needle not in tail + chunk
        tail = chunk[-len(needle) :]
    assert size > 100_000_000


def test_run_image_with_gpus_starts_or_fails_cleanly(built, client, dockerd):
    """`--gpus all` needs the NVIDIA container toolkit: where the host has none, the error says
    so and no Created container is left behind; where it has one, the container starts."""
    before = {c.id for c in client.containers.list(all=True)}
    run = functools.partial(
        run_image, TAG, port=free_port(), gpus=True, insecure=True, environ=dockerd.env
    )
    if shutil.which("nvidia-container-runtime-hook") is None:  # the toolkit's hook (system)
        with pytest.raises(ContainerStartError, match=r"cannot start.*NVIDIA container toolkit"):
            run()
        assert {c.id for c in client.containers.list(all=True)} == before  # nothing left behind
        return
    container = run()
    try:
        assert container.id not in before
    finally:
        container.remove(force=True)


@pytest.mark.slow
def test_code_only_change_rebuilds_only_the_last_layers(
    built, client, dockerd, base_image, mirror, tmp_path
):
    """Cold (no cache) vs warm (a runtime/*.py change) build of the same plan, from a copy of
    the project so the working tree is never touched."""
    context = fresh.copy_checkout(tmp_path / "context")
    app = resolve({}, {}, {"HF_HOME": str(tmp_path / "hf")})
    plan = make_plan(
        app,
        "demo",
        "loop",
        cuda="cpu",
        tag="i2vkit-test/demo:rebuild",
        base=base_image,
        custom_mirrors=mirror,
        root=context,
    )
    lines: list[str] = []
    cold: builder.Summary | None = None
    try:
        cold = builder.build(client, plan, lines.append, nocache=True)
        with open(context / "runtime" / "server" / "http.py", "a") as source:
            source.write(f"\n# a code-only change {uuid.uuid4().hex}\n")
        warm = builder.build(client, plan, lines.append)
    except Exception:
        print("\n".join(lines[-60:]))
        raise
    finally:  # the no-cache chain is this test's alone: never let it pile up in the data root
        with contextlib.suppress(Exception):
            client.images.remove("i2vkit-test/demo:rebuild", force=True)
        for step in reversed(cold.steps if cold else []):
            with contextlib.suppress(Exception):
                client.images.remove(step.image, force=True)
    stages = warm.by_stage()
    assert stages["env"][0] == stages["env"][1], stages  # every env step cached
    assert stages["weights"][0] == stages["weights"][1], stages
    rebuilt = [s.text for s in warm.counted if not s.cached]
    assert rebuilt and rebuilt[0] == "COPY . .", rebuilt
    print(  # a figure for docs/benchmarks.md, not an assertion: timing depends on the machine
        f"\ncold build {cold.seconds:.1f} s (no cache), warm build after a code-only change "
        f"{warm.seconds:.1f} s: {cold.seconds / warm.seconds:.1f}x; "
        f"image {warm.size_bytes / 1e9:.2f} GB"
    )
