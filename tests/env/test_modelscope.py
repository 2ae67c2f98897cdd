"""Weights from ModelScope: a tiny Wan twin served by the ModelScope stand-in (tests/helpers/
modelscope.py, written from the client's source: no real ModelScope server can run locally)
and by olah (a real Hub-protocol server); `invoke setup` takes it from the first source that
has the pinned files, fails over between them, and leaves it in the HF cache layout the
runtime loads from offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from i2vkit import catalogue
from i2vkit.env.weights import sources
from i2vkit.mirrors import catalogue as mirror_catalogue
from i2vkit.mirrors.choose import resolve
from tests.helpers.config import invoke_config
from tests.helpers.invoke import ROOT
from tests.helpers.modelscope import ModelScopeHub
from tests.helpers.olah import OlahHub
from tests.helpers.servers import free_port

REPO = "i2vkit/wan-demo-ti2v-tiny"  # the same id on both hubs (catalogue: wan-demo)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from i2vkit.runtime import twins

    return twins.save(tmp_path_factory.mktemp("twin") / "model", "wan", twin="ti2v")


@pytest.fixture(scope="module")
def olah(twin: Path, tmp_path_factory: pytest.TempPathFactory):
    server = OlahHub(tmp_path_factory.mktemp("olah"), {REPO: twin})
    yield server
    server.stop()


@pytest.fixture
def modelscope(twin: Path):
    server = ModelScopeHub({REPO: twin})
    yield server
    server.stop()


def _setup(env: dict[str, str], tmp_path: Path, pypi: str, hf: str, ms: str,
           *extra: str) -> subprocess.CompletedProcess:  # fmt: skip
    config = invoke_config(tmp_path / "hubs.yaml", pypi, None, hf, ms)
    return subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--weights-only", "--model", "wan-demo",
         "--mirror", "local", "--json", *extra],
        cwd=ROOT, env={**env, "INVOKE_RUNTIME_CONFIG": str(config),
                       "HF_HOME": str(tmp_path / "hf")},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _weights(done: subprocess.CompletedProcess) -> tuple[dict, list[str]]:
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    return next(s for s in report["steps"] if s["name"] == "weights"), report["notes"]


def _snapshot(tmp_path: Path) -> Path:
    repo = tmp_path / "hf" / "hub" / "models--i2vkit--wan-demo-ti2v-tiny"
    commit = (repo / "refs" / "main").read_text().strip()
    return repo / "snapshots" / commit


def test_setup_takes_the_twin_from_modelscope_into_the_hf_cache_and_the_runtime_loads_it(
    olah, modelscope, small_sources, setup_env, twin, tmp_path
):
    done = _setup(setup_env, tmp_path, small_sources["pypi"].url, olah.url, modelscope.url)
    step, notes = _weights(done)
    assert step["source"] == "local (ModelScope)"
    files = sorted(p.relative_to(twin).as_posix() for p in twin.rglob("*") if p.is_file())
    assert sorted(modelscope.downloads()) == files  # every file, once
    assert "/resolve/" not in olah.log.read_text()  # olah only described the commit
    assert any("matches the Hub's" in n for n in notes), notes

    # the HF cache layout: refs/main names olah's commit, links into sha256-named blobs
    snapshot = _snapshot(tmp_path)
    assert snapshot.name == olah.commits[REPO]
    weights = snapshot / "transformer" / "diffusion_pytorch_model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent.name == "blobs"
    assert weights.read_bytes() == (twin / "transformer" / weights.name).read_bytes()
    assert not list((tmp_path / "home").glob("downloads/modelscope/models/*/snapshots/*/*"))

    # the runtime, offline, loads it from the HF cache (not a locally built twin) and runs it
    code = (
        "from i2vkit.settings import resolve; from i2vkit.runtime.loader import Loader; "
        "from i2vkit import request; from i2vkit.runtime.pipelines import FAMILIES; "
        "from i2vkit.runtime.pipelines.base import Generation; "
        "from i2vkit.runtime.pictures import gradient_picture; "
        "loaded = Loader('wan-demo', resolve(), device='cpu').get(); "
        "print(loaded.pipe.name_or_path); "
        "s = request.make('wan-demo', 'preview', height=64, width=64, frames=5, steps=2); "
        "print(FAMILIES['wan'].run(loaded.pipe, Generation(s, gradient_picture(64, 64))).shape)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**setup_env, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    path, shape = run.stdout.strip().splitlines()[-2:]
    assert path == str(snapshot) and shape == "(5, 64, 64, 3)"
    assert not (tmp_path / "home" / "models" / "wan-demo").exists()

    asked = len(modelscope.requests)
    again = _setup(setup_env, tmp_path, small_sources["pypi"].url, olah.url, modelscope.url)
    assert again.returncode == 0 and json.loads(again.stdout)["steps"][-1]["detail"] == "up to date"
    assert len(modelscope.requests) == asked  # found in the cache: nothing asked


def test_a_dead_modelscope_fails_over_to_olah(olah, small_sources, setup_env, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    step, notes = _weights(_setup(setup_env, tmp_path, small_sources["pypi"].url, olah.url, dead))
    assert step["source"] == "local"
    failed = [n for n in notes if n.startswith("local (ModelScope):")]
    assert failed and "Error" in failed[0], notes
    assert (_snapshot(tmp_path) / "model_index.json").exists()


def test_modelscope_files_that_differ_from_the_hub_commit_are_never_downloaded(
    olah, small_sources, setup_env, twin, tmp_path
):
    """ModelScope's branch moved on (a file the pinned Hub commit does not have): setup sees it
    in the listings and takes the Hub's files instead, without downloading ModelScope's."""
    newer = tmp_path / "newer"
    shutil.copytree(twin, newer)
    (newer / "transformer" / "extra.safetensors").write_bytes(b"\0" * 1024)
    server = ModelScopeHub({REPO: newer})
    try:
        done = _setup(setup_env, tmp_path, small_sources["pypi"].url, olah.url, server.url)
    finally:
        server.stop()
    step, notes = _weights(done)
    assert step["source"] == "local"
    assert server.downloads() == []
    assert any("differs from the Hub's" in n and "extra.safetensors" in n for n in notes), notes


def test_a_corrupt_modelscope_file_is_caught_and_setup_fails_over(
    olah, modelscope, small_sources, setup_env, tmp_path
):
    modelscope.corrupt.add("vae/diffusion_pytorch_model.safetensors")
    done = _setup(setup_env, tmp_path, small_sources["pypi"].url, olah.url, modelscope.url)
    step, notes = _weights(done)
    assert step["source"] == "local"
    assert any("sha256" in n for n in notes if n.startswith("local (ModelScope)")), notes
    vae = _snapshot(tmp_path) / "vae" / "diffusion_pytorch_model.safetensors"
    assert vae.read_bytes()[:1] != b"" and vae.resolve().parent.name == "blobs"
    blobs = list((tmp_path / "hf" / "hub").glob("models--*/blobs/*"))
    assert all(not b.name.endswith(".incomplete") for b in blobs)


def test_modelscope_alone_still_verifies_and_names_a_stable_snapshot(
    modelscope, small_sources, setup_env, tmp_path
):
    """No HF endpoint answers: the files come from ModelScope, checked against its own
    sha256 listing, and the snapshot is named by a hash of that listing (the same each time)."""
    dead = f"http://127.0.0.1:{free_port()}"
    step, notes = _weights(_setup(setup_env, tmp_path, small_sources["pypi"].url, dead,
                                  modelscope.url))  # fmt: skip
    assert step["source"] == "local (ModelScope)"
    assert any("not compared with the Hub" in n for n in notes), notes
    first = _snapshot(tmp_path).name
    shutil.rmtree(tmp_path / "hf")
    _weights(_setup(setup_env, tmp_path, small_sources["pypi"].url, dead, modelscope.url))
    assert _snapshot(tmp_path).name == first


@pytest.mark.parametrize(
    ("mirror", "model", "expected"),
    [
        # a mainland plan: ModelScope first, then the Hub's mirror, then the Hub
        ("tuna", "wan2.2-i2v-a14b", ["default (ModelScope)", "hf-mirror", "default"]),
        ("aliyun", "wan2.2-ti2v-5b", ["default (ModelScope)", "hf-mirror", "default"]),
        # the mirror the user named comes first
        ("hf-mirror", "wan2.2-i2v-a14b", ["hf-mirror", "default (ModelScope)", "default"]),
        # the Hub itself: ModelScope last
        ("default", "wan2.2-i2v-a14b", ["default", "hf-mirror", "default (ModelScope)"]),
        # not published on ModelScope in the Diffusers format
        ("tuna", "wan2.1-i2v-14b-480p", ["hf-mirror", "default"]),
    ],
)
def test_the_source_chain_follows_the_plan(mirror: str, model: str, expected: list[str]):
    mirrors = mirror_catalogue.load()
    chain = sources(catalogue.model(model), mirrors, resolve(mirrors, mirror))
    assert [s.name for s in chain] == expected


def test_an_image_builds_custom_mirror_pointing_at_the_hub_keeps_modelscope_last():
    """Image builds name their plan's endpoints as a custom mirror `image`: a default build's
    points at huggingface.co, so it is not a mainland plan, and the default mirror's copies of
    the same endpoints are not tried twice."""
    custom = {"image": {"pypi": {"url": "https://pypi.org/simple"},
                        "hf": {"url": "https://huggingface.co"},
                        "modelscope": {"url": "https://www.modelscope.cn"}}}  # fmt: skip
    mirrors = mirror_catalogue.load(custom=custom)
    chain = sources(catalogue.model("wan2.2-ti2v-5b"), mirrors, resolve(mirrors, "image"))
    assert [s.name for s in chain] == ["image", "hf-mirror", "image (ModelScope)"]


def test_the_dry_run_shows_the_source_chain_and_the_strategy_per_gpu_size(setup_env):
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "setup", "--dry-run", "--json", "--mirror", "tuna",
         "--model", "wan2.2-i2v-a14b"],
        cwd=ROOT, env=setup_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert [s["name"] for s in plan["sources"]] == ["default (ModelScope)", "hf-mirror", "default"]
    assert plan["sources"][0]["url"] == "https://www.modelscope.cn"
    assert plan["download_bytes"] > 100e9 and any(
        f["path"] == "transformer_2/*" for f in plan["files"]
    )
    pro = {row["gib"]: next(p for p in row["presets"] if p["preset"] == "entry")
           for row in plan["memory"]}  # fmt: skip
    # the leaner the card, the leaner the strategy: all on an H100, streamed on a 4090
    assert pro[80]["strategy"] == "full" and pro[24]["strategy"] == "offload"
    assert pro[12]["strategy"] == "lean" and pro[12]["peak_gib"] < 12
    assert len({p["strategy"] for p in pro.values()}) >= 4
