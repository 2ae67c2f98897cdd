"""The conda layer's lockfile: solve env/environment.yml with py-rattler, write a conda-lock v1
lockfile, and read it back for the installers.

Assumes no conda executable: py-rattler solves and reads lockfiles in-process, and conda-lock
(a light-layer dependency) only parses the spec, computes its per-platform content hash and
validates the models, so `conda-lock lock --check-input-hash` agrees with ours. conda-lock is
never asked to solve: it would download conda-standalone.

Lockfiles keep canonical URLs (the catalogue's `default` mirror). A solve may run through a
mirror: `rules` (canonical -> mirror prefixes, from mirrors.rewrite.rules) point the solver at
the mirror, and every URL is turned back into the canonical one before it is written.
"""

from __future__ import annotations

import asyncio
import graphlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler
import yaml
from rattler import Channel, Gateway, GenericVirtualPackage, MatchSpec, PackageName, Version
from rattler.package import BuildString
from rattler.platform import Subdir

from i2vkit import files
from i2vkit.errors import (
    LOCK_FIX,
    ConfigError,
    LockfileMissingError,
    PlatformNotLockedError,
    SolveError,
)
from i2vkit.mirrors import catalogue as mirror_catalogue
from i2vkit.mirrors.rewrite import Rule, rewrite_url

HERE = Path(__file__).resolve().parent
SPEC = HERE / "environment.yml"
LOCKFILE = HERE / "conda-lock.yml"


def canonical_channel(name: str, catalogue: mirror_catalogue.Catalogue | None = None) -> str:
    """The upstream URL of a channel named in a spec ('conda-forge'); URLs pass unchanged."""
    if "://" in name:
        return name.rstrip("/")
    default = (catalogue or mirror_catalogue.load()).mirror["default"].conda
    if default is None:
        raise ConfigError("the mirror catalogue's `default` mirror has no conda channel")
    return f"{default.custom.rstrip('/')}/{name}"


def _reverse(rules: Sequence[Rule]) -> list[Rule]:
    # mirror -> canonical, longest mirror prefix first, for any scheme (file:// included)
    return sorted(((m, c) for c, m in rules), key=lambda p: len(p[0]), reverse=True)


def _spec(spec_path: Path, channels: Sequence[str] | None, platforms: Sequence[str] | None):
    """conda-lock's own reading of the spec, so its content hash matches ours."""
    from conda_lock.lookup import DEFAULT_MAPPING_URL
    from conda_lock.src_parser import make_lock_spec

    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read conda spec {spec_path}: {error}") from error
    # Checked before conda-lock sees it: for a `pip:` section it would fetch a PyPI-to-conda
    # name mapping from GitHub, which is neither needed nor reachable everywhere.
    pip = [d for d in raw.get("dependencies") or [] if isinstance(d, dict) and "pip" in d]
    if pip:
        names = ", ".join(str(n) for n in pip[0]["pip"] or [])
        raise ConfigError(
            f"{spec_path} has a pip section ({names}); the pip layer is locked separately: "
            "move them to the pip requirements"
        )
    spec = make_lock_spec(
        src_files=[spec_path],
        channel_overrides=list(channels) if channels else None,
        platform_overrides=list(platforms) if platforms else None,
        mapping_url=DEFAULT_MAPPING_URL,
    )
    return spec


def _virtual_packages(repo: Any, platform: str) -> list[GenericVirtualPackage]:
    """conda-lock's default virtual packages for `platform` (glibc 2.28, linux 5.10, ...)."""
    return [
        GenericVirtualPackage(
            PackageName(p.name), Version(p.version), BuildString(p.build_string or "0")
        )
        for p, subdirs in repo.packages_by_subdir.items()
        if platform in subdirs
    ]


def _dependencies(depends: Sequence[str]) -> dict[str, str]:
    """conda-lock's shape: name -> version spec ('' when any), the build dropped."""
    out: dict[str, str] = {}
    for dep in depends:
        spec = MatchSpec(dep)
        if spec.name is None:
            continue
        name, version = spec.name.normalized, str(spec.version) if spec.version else ""
        out[name] = ",".join(v for v in (out.get(name), version) if v)
    return out


async def _solve(
    urls: Sequence[str], specs: Sequence[str], platform: str, repo: Any, cache: Path | None
):
    gateway = Gateway(cache_dir=cache) if cache else Gateway()
    try:
        return await rattler.solve(
            [Channel(u) for u in urls],
            specs,
            gateway=gateway,
            platforms=[Subdir(platform), Subdir("noarch")],
            virtual_packages=_virtual_packages(repo, platform),
        )
    except Exception as error:  # rattler's SolverError/GatewayError carry the explanation
        raise SolveError(f"cannot solve the conda spec for {platform}: {error}") from error


def _match_spec(dependency: Any) -> str:
    """A spec line back from conda-lock's parsed dependency ('python 3.11.*', 'x * h1_0')."""
    if dependency.build:
        return f"{dependency.name} {dependency.version or '*'} {dependency.build}"
    return f"{dependency.name} {dependency.version}".strip()


def _locked(record: Any, platform: str, back: list[Rule]):
    from conda_lock.lockfile.v1.models import HashModel, LockedDependency

    return LockedDependency(
        name=record.name.normalized,
        version=str(record.version),
        manager="conda",
        platform=platform,
        dependencies=_dependencies(record.depends),
        url=rewrite_url(record.url, back),
        hash=HashModel(
            md5=record.md5.hex() if record.md5 else None,
            sha256=record.sha256.hex() if record.sha256 else None,
        ),
        build=str(record.build),
        category="main",
        optional=False,
    )


def lock(
    spec_path: Path = SPEC,
    channels: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
    out_path: Path = LOCKFILE,
    *,
    rules: Sequence[Rule] = (),
    catalogue: mirror_catalogue.Catalogue | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Solve `spec_path` for each platform and write a conda-lock v1 lockfile at `out_path`
    (atomically). Channels and platforms default to the spec's. `rules` route the solve through
    a mirror; the file still holds canonical URLs."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
    from conda_lock.lockfile.v1.models import LockMeta
    from conda_lock.virtual_package import default_virtual_package_repodata

    spec = _spec(spec_path, channels, platforms)
    canonical = [canonical_channel(c.url, catalogue) for c in spec.channels]
    solve_urls = [rewrite_url(u, list(rules)) for u in canonical]
    repo = default_virtual_package_repodata()
    back = _reverse(rules)
    packages = []
    for platform in spec.platforms:
        specs = [_match_spec(d) for d in spec.dependencies[platform]]
        records = asyncio.run(_solve(solve_urls, specs, platform, repo, cache_dir))
        packages += [_locked(r, platform, back) for r in records]
    strays = [p.url for p in packages if not any(p.url.startswith(f"{c}/") for c in canonical)]
    if strays:  # a rule that did not map back would leak a mirror URL into the lockfile
        raise SolveError(
            f"{strays[0]} is not under the canonical channels ({', '.join(canonical)}); "
            "check the mirror rules the lock was solved through"
        )
    packages.sort(key=lambda p: (p.manager, p.name, p.platform))
    meta = LockMeta(
        content_hash=compute_content_hashes(spec, repo),
        channels=spec.channels,
        platforms=spec.platforms,
        sources=[os.path.relpath(spec_path.resolve(), out_path.resolve().parent)],
    )
    data = LockfileV1(package=packages, metadata=meta).dict_for_output()
    header = (
        f"# conda-lock v1 lockfile for i2vkit's conda layer, from {spec_path.name}.\n"
        "# Written by `i2vkit lock` (py-rattler solve); do not edit. URLs are canonical:\n"
        "# `i2vkit setup --mirror NAME` points them at the mirror when installing.\n"
    )
    files.write_text(out_path, header + yaml.safe_dump(data, sort_keys=False))
    return out_path


@dataclass(frozen=True)
class Locked:
    """One package of the lockfile for one platform, as the installers need it."""

    name: str
    version: str
    build: str
    url: str  # canonical
    md5: str | None
    sha256: str | None
    size: int | None  # conda-lock v1 does not record sizes: usually None
    depends: tuple[str, ...]  # names only


def _open(path: Path) -> rattler.LockFile:
    if not path.is_file():
        raise LockfileMissingError(path)
    try:
        return rattler.LockFile.from_path(path)
    except Exception as error:  # ParseCondaLockError and friends
        raise ConfigError(f"cannot read conda lockfile {path}: {error}; {LOCK_FIX}") from error


def locked_platforms(path: Path = LOCKFILE) -> list[str]:
    return sorted(p.name for p in _open(path).platforms())


def records(path: Path, platform: str) -> list[rattler.RepoDataRecord]:
    """Fresh RepoDataRecords (canonical URLs) for `platform`; callers may change their URLs."""
    env = _open(path).default_environment()
    found = {p.name: p for p in env.platforms()} if env is not None else {}
    if env is None or platform not in found:
        raise PlatformNotLockedError(path, platform, sorted(found), SPEC.name)
    return env.conda_repodata_records_for_platform(found[platform]) or []


def packages(path: Path, platform: str) -> list[Locked]:
    """What the lockfile pins for `platform` (for plans and dry runs: no network)."""
    return [
        Locked(
            name=r.name.normalized,
            version=str(r.version),
            build=str(r.build),
            url=r.url,
            md5=r.md5.hex() if r.md5 else None,
            sha256=r.sha256.hex() if r.sha256 else None,
            size=r.size,
            depends=tuple(_dependencies(r.depends)),
        )
        for r in records(path, platform)
    ]


def digest(path: Path, platform: str) -> str:
    """A hash of what would be installed on `platform`: changes only when its packages do, so
    a re-lock that leaves this platform alone does not trigger a rebuild."""
    lines = sorted(f"{p.url}#{p.sha256 or p.md5}" for p in packages(path, platform))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def explicit(path: Path, platform: str, rules: Sequence[Rule] = ()) -> str:
    """An @EXPLICIT file (conda, mamba, micromamba) with each URL sent through `rules` and its
    md5 attached, so the installer checks the mirror's file against the lockfile. Dependencies
    come before their dependents: micromamba installs an explicit file in its order."""
    pinned = {p.name: p for p in packages(path, platform)}
    graph = {name: [d for d in p.depends if d in pinned] for name, p in pinned.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:  # a dependency cycle has no right order: installers cope
        order = sorted(pinned)
    lines = [f"# platform: {platform}", "@EXPLICIT"]
    for name in order:
        p = pinned[name]
        url = rewrite_url(p.url, list(rules))
        lines.append(f"{url}#{p.md5}" if p.md5 else url)
    return "\n".join(lines) + "\n"
