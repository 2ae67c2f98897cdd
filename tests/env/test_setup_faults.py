"""`invoke setup` when a mirror answers, but wrongly: a captive portal (HTTP 200 and a login
page for every path) or a file that is not the one the lockfile pins. Setup leaves that mirror
for the next one (or the wheelhouse) and its report says why."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from i2vkit.env import plan as planning
from i2vkit.env import venv
from i2vkit.mirrors.choose import choose
from i2vkit.settings import resolve
from tests.env.test_setup import env_python
from tests.env.test_setup import setup as run_setup
from tests.helpers.mirrors import catalogue_for, installed, mirrors_config

ARGS = ("--backend", "venv", "--cuda", "cpu", "--no-weights")


def local_mirror(small_sources) -> dict:
    """The good stand-ins, as tests/helpers/config.py names them."""
    return {
        "pypi": {"url": f"{small_sources['pypi'].url}/simple"},
        "torch": {"url": small_sources["torch"].url + "/{variant}", "layout": "find-links",
                  "variants": ["cpu"]},
    }  # fmt: skip


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_setup_leaves_a_captive_portal_for_the_next_mirror_and_says_why(
    setup_env, small_sources, captive, tmp_path
):
    portal = {
        "pypi": {"url": f"{captive.url}/simple"},
        "torch": {"url": captive.url + "/{variant}", "layout": "find-links", "variants": ["cpu"]},
    }
    config = mirrors_config(tmp_path / "invoke.yaml",
                            {"captive": portal, "local": local_mirror(small_sources)})  # fmt: skip
    env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config)}
    lock = small_sources["locks"] / "small.txt"
    done = run_setup(env, "--mirror", "captive", *ARGS, "--lock", str(lock))
    out = flat(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch via captive: failed after" in out
    assert f"{captive.url}/cpu is not a wheel index (no wheel links)" in out
    assert "pypi via captive: failed after" in out
    assert f"{captive.url}/simple/alpha/ is not a PEP 503 simple index" in out
    imported = subprocess.run([env_python(setup_env), "-c", "import alpha, beta, torch"])
    assert imported.returncode == 0


def test_setup_names_a_hash_mismatch_and_takes_the_file_from_the_next_mirror(
    setup_env, small_sources, tampered_pypi, tmp_path
):
    bad = {"pypi": {"url": f"{tampered_pypi.url}/simple"}}
    config = mirrors_config(tmp_path / "invoke.yaml",
                            {"tampered": bad, "local": local_mirror(small_sources)})  # fmt: skip
    env = {**setup_env, "INVOKE_RUNTIME_CONFIG": str(config)}
    lock = small_sources["locks"] / "small.txt"
    before = len(small_sources["pypi"].fetched())
    done = run_setup(env, "--mirror", "tampered", *ARGS, "--lock", str(lock))
    out = flat(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pypi via tampered: failed after" in out
    assert "hash mismatch: alpha==1.0 from tampered has sha256 " in out
    assert "alpha-1.0-py3-none-any.whl" in small_sources["pypi"].fetched()[before:]
    assert "local (after tampered failed)" in out  # the pip layer's source in the table
    imported = subprocess.run([env_python(setup_env), "-c", "import alpha, beta"])
    assert imported.returncode == 0


def test_after_a_captive_portal_the_pip_layer_comes_from_the_wheelhouse(
    small_sources, captive, tmp_path
):
    """The mirror chain here is the portal alone (a real one runs on to outside mirrors)."""
    options = planning.Options(backend="venv", cuda="cpu", weights=False,
                               wheelhouse=small_sources["root"] / "wheels",
                               lock=small_sources["locks"] / "small.txt")  # fmt: skip
    plan = planning.make(options, resolve({}, {}, os.environ))
    catalogue = catalogue_for({"captive": captive.url})
    plan = replace(plan, mirrors_catalogue=catalogue, mirrors=choose(catalogue, "captive", "cpu"))
    python = venv.create(tmp_path / "env", sys.executable)
    result = venv.install_runtime(python, plan, catalogue)
    attempts = [(a.mirror, a.ok, a.mirror_fault) for a in result.attempts]
    assert attempts[0] == ("captive", False, True)
    assert attempts[-1][:2] == ("wheelhouse", True)
    assert "not a PEP 503 simple index" in (result.attempts[0].reason or "")
    assert {"alpha", "beta"} <= installed(Path(python).parent.parent)
