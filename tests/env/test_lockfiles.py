"""The two pip locks agree: cluster.txt is runtime.txt plus Ray's pins, never another version or
hash of a package they share (`invoke lock` solves it constrained by runtime.txt)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ; (.+?))? \\$")


def _pins(path: Path) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """(name, marker) -> (version, hashes) for every pinned line."""
    pins: dict[tuple[str, str], tuple[str, set[str]]] = {}
    current: set[str] = set()
    for line in path.read_text().splitlines():
        found = PIN.match(line)
        if found:
            current = set()
            name, version, marker = found.group(1).lower(), found.group(2), found.group(3) or ""
            pins[(name, marker)] = (version, current)
        elif line.strip().startswith("--hash=sha256:"):
            current.add(line.strip().split(":", 1)[1].rstrip(" \\"))
    return {key: (version, frozenset(hashes)) for key, (version, hashes) in pins.items()}


def test_the_cluster_lock_is_the_runtime_lock_plus_ray():
    runtime = _pins(ROOT / "env" / "requirements" / "runtime.txt")
    cluster = _pins(ROOT / "env" / "requirements" / "cluster.txt")
    assert len(runtime) > 50
    for key, (version, hashes) in runtime.items():
        assert cluster.get(key, (None,))[0] == version, f"{key}: {version} vs {cluster.get(key)}"
        assert cluster[key][1] == hashes and hashes, key
    added = {name for name, _ in set(cluster) - set(runtime)}
    assert "ray" in added and "torch" not in {name for name, _ in cluster}
    assert all(hashes for _, hashes in cluster.values())
