"""The wheels benchmarks/gpu_check.py needs on the GPU machines, whose image (Python 3.12,
x86-64, torch, transformers, accelerate, peft, psutil) lacks them and which reach no index:
downloaded here into .whl/ (git-ignored through .git/info/exclude) at the versions the runtime
lock pins, to travel with the working tree (`carry: [".whl"]`, see docs/benchmarks.md).

    python benchmarks/gpu_wheels.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "env" / "requirements" / "runtime.txt"
NEEDED = ("diffusers", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "ftfy", "wcwidth", "av")  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pinned(name: str, python: str = "3.12.3") -> str:
    """The lock's version of `name` on the GPU image's Python (the lock splits some pins by
    Python version, with markers that packaging evaluates as pip would)."""
    from packaging.markers import Marker

    environment = {
        "python_full_version": python, "python_version": python.rsplit(".", 1)[0],
        "sys_platform": "linux", "platform_machine": "x86_64",
        "platform_python_implementation": "CPython", "implementation_name": "cpython",
    }  # fmt: skip
    pattern = re.compile(rf"^{re.escape(name)}==(\S+)(?: ; (.*?))? \\$", re.M)
    for version, marker in pattern.findall(LOCK.read_text()):
        if not marker or Marker(marker).evaluate(environment):
            return version
    raise SystemExit(f"{name} is not pinned for Python {python} in {LOCK}")


def main() -> int:
    target = ROOT / ".whl"
    where = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=ROOT,
                           capture_output=True, text=True, check=True)  # fmt: skip
    exclude = ROOT / where.stdout.strip()
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if "/.whl/" not in (exclude.read_text() if exclude.exists() else "").split():
        with exclude.open("a") as f:
            f.write("/.whl/\n")
    specs = [f"{name}=={pinned(name)}" for name in NEEDED]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(target),
               *(arg for p in PLATFORMS for arg in ("--platform", p)), *specs]  # fmt: skip
    done = subprocess.run(command)
    if done.returncode == 0:
        size = sum(p.stat().st_size for p in target.glob("*.whl"))
        print(f"{len(specs)} wheels, {size / 2**20:.1f} MiB in {target}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
