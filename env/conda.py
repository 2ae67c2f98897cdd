"""Install the conda layer from the lockfile into a prefix with embedded py-rattler: no conda
executable needed. The orchestrator (env/setup.py) owns the prefix's life (a fresh temporary
prefix, then an atomic swap); this module only fills the prefix it is given.

Each canonical URL of the lockfile is pointed at the chosen mirror's conda channel (the
catalogue's `conda` kind: `custom` is the base of conda-forge). Hashes stay the lockfile's, so a
mirror serving a different file fails the install. When a package cannot be fetched from a
mirror (refused, DNS, timeout, an HTTP error, a hash mismatch), the install runs again from the
next mirror in the plan's conda chain and the result says so; any other failure (linking, disk)
stops at once, since another mirror would not fix it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import rattler

from i2vkit.env import condalock
from i2vkit.errors import CondaInstallError, ConfigError
from i2vkit.mirrors import failover
from i2vkit.mirrors.catalogue import Catalogue
from i2vkit.mirrors.choose import MirrorPlan, choose
from i2vkit.mirrors.failover import Attempt, Notify
from i2vkit.mirrors.rewrite import Rule, mirror_of, rewrite_url, rules

KIND = "conda"
TIMEOUT_S = 600  # per request, body included: a stalled mirror fails over instead of hanging
_FETCH = re.compile(r"failed to fetch (\S+)")

Progress = Callable[[str, int, "int | None"], None]  # package name, bytes so far, total


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    build: str
    url: str  # where it was installed from (the mirror's URL)
    bytes: int | None  # downloaded in this run; 0 when it came from the package cache
    mirror: str  # catalogue name of the mirror serving `url`


@dataclass(frozen=True)
class CondaResult:
    backend: str  # 'rattler', 'mamba', 'micromamba' or 'conda'
    platform: str
    prefix: Path
    attempts: tuple[Attempt, ...]
    packages: tuple[InstalledPackage, ...]

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    def bytes_by_mirror(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.packages:
            out[p.mirror] = out.get(p.mirror, 0) + (p.bytes or 0)
        return out

    def summary(self) -> list[str]:
        lines = failover.describe(KIND, self.attempts, done=f"installed with {self.backend}")
        if self.ok:
            for mirror, size in sorted(self.bytes_by_mirror().items()):
                count = sum(p.mirror == mirror for p in self.packages)
                lines.append(f"{count} conda package(s), {size} bytes downloaded, from {mirror}")
        return lines


def mirror_rules(catalogue: Catalogue, mirror: str) -> list[Rule]:
    """Canonical -> `mirror` URL prefixes (empty for the canonical `default` itself)."""
    return rules(catalogue, choose(catalogue, mirror))


def host_platform() -> str:
    return str(rattler.Platform.current())


class _Reporter:
    """Structurally rattler's InstallerReporter (only the hooks we need): bytes per package."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.names: dict[int, str] = {}
        self.bytes: dict[str, int] = {}

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        self.names[operation] = package_name
        return operation

    def on_download_start(self, cache_entry: int) -> int:
        return cache_entry  # the operation index, so progress maps back to the name

    def on_download_progress(self, download_idx: int, progress: int, total: int | None) -> None:
        name = self.names.get(download_idx, "?")
        self.bytes[name] = progress
        if self.progress is not None:
            self.progress(name, progress, total)

    def on_download_completed(self, download_idx: int) -> None:
        pass

    def on_populate_cache_complete(self, cache_entry: int) -> None:
        pass


def _fetch_failure(error: Exception, by_file: dict[str, Any], mirror: str) -> tuple[str, str]:
    """(package, sentence) for a download failure; raises nothing, callers decide."""
    text = str(error)
    found = _FETCH.search(text)
    record = by_file.get(found.group(1)) if found else None
    package = record.name.normalized if record is not None else (found.group(1) if found else "?")
    url = record.url if record is not None else "?"
    cause = [ln.strip() for ln in text.splitlines() if ln.strip()][-1]
    # reqwest repeats the URL we already name: "... (404 Not Found) for url (http://...)"
    cause = re.sub(r" for url \(.*\)$", "", cause.removeprefix("Caused by: "))
    return package, f"package {package} could not be fetched from mirror {mirror} ({url}): {cause}"


def _install_once(
    records: list[Any], prefix: Path, reporter: _Reporter, cache: Path | None, timeout: int
) -> None:
    client = rattler.Client.default_client(max_retries=0, timeout=timeout)  # we fail over instead
    asyncio.run(
        rattler.install(
            records,
            prefix,
            cache_dir=cache,
            # a structural match: subclassing the Protocol makes mypy demand every hook
            reporter=cast(rattler.InstallerReporter, reporter),
            client=client,
            execute_link_scripts=False,  # lockfile packages' scripts never run on our behalf
        )
    )


def read_prefix(
    prefix: Path, catalogue: Catalogue, sizes: dict[str, int] | None = None
) -> tuple[InstalledPackage, ...]:
    """What conda-meta says is installed, each with the mirror its URL belongs to; `sizes`
    (bytes downloaded per package name) when known, else bytes is None."""
    out = []
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        url = data.get("url") or ""
        out.append(
            InstalledPackage(
                name=data["name"],
                version=data["version"],
                build=data.get("build", ""),
                url=url,
                bytes=None if sizes is None else sizes.get(data["name"], 0),
                mirror=mirror_of(url, catalogue) or "?",
            )
        )
    return tuple(out)


def conda_chain(plan: MirrorPlan) -> tuple[str, ...]:
    """The mirrors to try for conda, chosen first."""
    chain = tuple(plan.chains.get(KIND, ()))
    if not chain:
        raise ConfigError(
            "no mirror in the catalogue offers conda channels; add one under `mirrors:` in "
            "invoke.yaml (conda: {url: ..., custom: ...})"
        )
    return chain


def install_rattler(
    lockfile: Path,
    prefix: Path,
    catalogue: Catalogue,
    plan: MirrorPlan,
    *,
    platform: str | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
    timeout_s: int = TIMEOUT_S,
) -> CondaResult:
    """Install the lockfile's packages for `platform` (default: this host's) into `prefix`,
    from the plan's conda mirror, failing over along `plan.chains['conda']`.
    Raises LockfileMissingError / PlatformNotLockedError before touching the network, and
    CondaInstallError (carrying the result) when no mirror could do it."""
    platform = platform or host_platform()
    condalock.records(lockfile, platform)  # a missing file or platform fails here, named
    sizes: dict[str, int] = {}

    def attempt(mirror: str) -> Attempt:
        pairs = mirror_rules(catalogue, mirror)
        records = condalock.records(lockfile, platform)
        for record in records:
            record.url = rewrite_url(record.url, pairs)
            record.channel = rewrite_url(record.channel, pairs)
        reporter, start = _Reporter(progress), time.monotonic()
        try:
            _install_once(records, prefix, reporter, cache_dir, timeout_s)
        except Exception as error:  # rattler raises its own InstallerError, not ours
            took = time.monotonic() - start
            if not _FETCH.search(str(error)):
                return Attempt(mirror, False, took, f"installing into {prefix} failed: {error}")
            package, reason = _fetch_failure(error, {r.file_name: r for r in records}, mirror)
            return Attempt(mirror, False, took, reason, mirror_fault=True, package=package)
        sizes.update(reporter.bytes)
        return Attempt(mirror, True, time.monotonic() - start)

    attempts = failover.run(conda_chain(plan), attempt, KIND, notify)
    if not attempts[-1].ok:
        raise CondaInstallError(CondaResult("rattler", platform, prefix, attempts, ()))
    installed = read_prefix(prefix, catalogue, sizes)
    return CondaResult("rattler", platform, prefix, attempts, installed)


def planned(lockfile: Path, catalogue: Catalogue, plan: MirrorPlan, platform: str | None = None):
    """(package, mirror URL) pairs the install would fetch first: for `--dry-run`, offline."""
    platform = platform or host_platform()
    pairs = mirror_rules(catalogue, plan.picks[KIND].mirror) if KIND in plan.picks else []
    return [(p, rewrite_url(p.url, pairs)) for p in condalock.packages(lockfile, platform)]
