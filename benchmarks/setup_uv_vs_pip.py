"""Cold setup of the same requirement set through a loopback PyPI mirror: uv vs plain pip,
in one run; then the no-op re-run of `invoke setup`.

    python benchmarks/setup_uv_vs_pip.py

The requirement set is i2vkit's direct dependencies plus the runtime extra and the CPU torch
(each tool resolves it: the mirror holds exactly the locked versions). The mirror is a
pypiserver over a folder of those wheels (downloaded once, cached in ~/.cache/i2vkit-bench).
Cold means an empty tool cache and a fresh venv for each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from i2vkit.tools import uv  # noqa: E402
from tests.helpers.servers import PypiServer  # noqa: E402

WHEELS = Path.home() / ".cache" / "i2vkit-bench" / "wheels"


def requirement_set() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["runtime"]
    return [d for d in deps if not d.startswith("torch")] + ["torch==2.13.0+cpu"]


def fill_wheelhouse() -> None:
    if WHEELS.exists() and any(WHEELS.glob("torch-*.whl")):
        return
    WHEELS.mkdir(parents=True, exist_ok=True)
    lock = ROOT / "env" / "requirements" / "runtime.txt"
    pip = [sys.executable, "-m", "pip", "download", "-q", "-d", str(WHEELS), "--only-binary=:all:"]
    subprocess.run([*pip, "--no-deps", "--require-hashes", "-r", str(lock)], check=True)
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU build and its dependencies


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    fill_wheelhouse()
    reqs = requirement_set()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        server = PypiServer(WHEELS, t / "pypiserver.log").wait()
        index = f"{server.url}/simple"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        env |= {"PIP_CONFIG_FILE": os.devnull, "UV_CACHE_DIR": str(t / "uv-cache")}
        try:
            subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(t / "a")],
                           check=True)  # fmt: skip
            uv_s = timed([uv(), "pip", "install", "--python", str(t / "a" / "bin" / "python"),
                          "--no-config", "--index-url", index, *reqs], env)  # fmt: skip
            subprocess.run([sys.executable, "-m", "venv", str(t / "b")], check=True)
            pip_s = timed([str(t / "b" / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--no-cache-dir", "--disable-pip-version-check", "--index-url", index,
                           *reqs], env)  # fmt: skip
        finally:
            server.stop()
        home = t / "home"
        setup = [sys.executable, "-m", "invoke", "setup", "--model", "demo", "--cuda", "cpu"]
        run_env = {**os.environ, "I2VKIT_HOME": str(home)}
        subprocess.run(setup, cwd=ROOT, env=run_env, check=True, capture_output=True)
        noop = [timed(setup, run_env) for _ in range(3)]
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({
        "requirements": len(reqs), "wheels_on_mirror": len(list(WHEELS.glob("*.whl"))),
        "uv_cold_s": round(uv_s, 1), "pip_cold_s": round(pip_s, 1),
        "pip_over_uv": round(pip_s / uv_s, 2),
        "setup_noop_rerun_s": [round(x, 2) for x in noop],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
