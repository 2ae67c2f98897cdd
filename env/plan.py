"""The setup plan, as data: which backend and why, which torch variant and why, every index and
channel URL per kind, the lockfiles and their hash, the model's files and sizes. Computed with
no network (except `--mirror auto`, which probes), printed, and only then acted on.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit import advice, catalogue
from i2vkit.data import packaged
from i2vkit.errors import ConfigError
from i2vkit.host import detect_host
from i2vkit.mirrors import catalogue as mirror_catalogue
from i2vkit.mirrors.catalogue import Catalogue
from i2vkit.mirrors.choose import MirrorPlan, resolve
from i2vkit.settings import Settings

REQUIREMENTS = packaged("i2vkit.env", "requirements")
CONDA_LOCK = packaged("i2vkit.env", "conda-lock.yml")
BACKENDS = ("auto", "mamba", "rattler", "venv")
SETUP_KINDS = ("pypi", "torch", "conda", "hf")  # what setup downloads through mirrors


@dataclass(frozen=True)
class Options:
    """What the user asked for; None means "decide"."""

    mirror: str = "default"
    model: str | None = None
    backend: str = "auto"
    cuda: str = "auto"
    prefix: Path | None = None
    env: bool = True  # build the environment
    weights: bool = True  # fetch the model's weights
    wheelhouse: Path | None = None
    custom_mirrors: dict[str, Any] = field(default_factory=dict)
    lock: Path | None = None  # the pip layer's lockfile (default env/requirements/runtime.txt)
    global_config: bool = False  # also write the user's own pip/uv/conda config (asked for only)


@dataclass(frozen=True)
class SetupPlan:
    backend: str
    backend_reason: str
    variant: str
    variant_reason: str
    torch: str  # the exact torch requirement, e.g. "torch==2.13.0+cpu"
    python: str  # the interpreter a venv is made from, or the lock's python
    python_version: str  # "3.11" for a venv (its base interpreter); "" when the lock decides
    prefix: Path  # where the env ends up
    mirrors_catalogue: Catalogue  # custom mirrors included
    mirrors: MirrorPlan
    urls: dict[str, str]  # kind -> the URL used first
    notes: list[str]  # fallbacks the mirror plan made
    lock_hash: str
    lockfiles: list[str]
    lock: Path  # the pip layer's lockfile
    wheelhouse: Path | None
    model: catalogue.Model | None
    files: list[tuple[str, int]]  # model files and expected sizes
    env: bool
    weights: bool
    global_config: bool = False

    @property
    def download_bytes(self) -> int:
        return sum(size for _path, size in self.files)


def default_wheelhouse(environ: dict[str, str] | None = None) -> Path | None:
    """The host pip's own local wheelhouse, if it has one: air-gapped hosts keep torch there.
    Only a local directory counts (never a URL: that would be a second index)."""
    env = os.environ if environ is None else environ
    for entry in (env.get("PIP_FIND_LINKS") or "").split():
        path = Path(entry.removeprefix("file://"))
        if path.is_dir():
            return path
    return None


def lock_hash(variant: str, backend: str, lock: Path) -> tuple[str, list[str]]:
    """One sha256 over everything the lockfiles decide about the env's contents (for a conda
    backend, the lockfile's packages for this platform, not the whole file). It does not
    depend on the machine computing it, so an image's label equals the hash its in-build setup
    records; the venv's base interpreter is compared separately (EnvState.python_version)."""
    files = [lock, catalogue.DATA / "torch_variants.toml"]
    digest = hashlib.sha256(f"{variant}|{backend}".encode())
    if backend in ("mamba", "rattler"):
        from i2vkit.env import conda, condalock

        digest.update(condalock.digest(CONDA_LOCK, conda.host_platform()).encode())
        files.append(CONDA_LOCK)
    for path in files:
        digest.update(path.read_bytes() if path.exists() else b"missing")
    package = packaged("i2vkit")  # names as they sit in the package: env/..., data/...
    names = [str(p.relative_to(package)) if p.is_relative_to(package) else str(p) for p in files]
    return digest.hexdigest(), names


def choose_backend(asked: str) -> tuple[str, str]:
    """mamba/micromamba/conda when one is installed, else the embedded rattler backend when the
    conda lockfile covers this platform, else a uv venv from this Python."""
    from i2vkit.env import conda, conda_exe, condalock

    if asked not in BACKENDS:
        raise ConfigError(f"backend {asked!r} is unknown; known: {', '.join(BACKENDS)}")
    if asked != "auto":
        return asked, "asked for with --backend"
    found = conda_exe.detect()
    if found.exe is not None:
        return "mamba", found.reason
    platform = conda.host_platform()
    if CONDA_LOCK.exists() and platform in condalock.locked_platforms(CONDA_LOCK):
        return "rattler", (
            f"{found.reason}; the embedded py-rattler backend installs env/conda-lock.yml "
            f"({platform})"
        )
    return "venv", (
        f"{found.reason}, and env/conda-lock.yml does not cover {platform} yet (`i2vkit lock` "
        "writes it): a uv venv from this Python"
    )


def choose_variant(asked: str, app: Settings) -> tuple[str, str]:
    decision = advice.variant_for(
        asked, catalogue.torch_variants(), lambda: detect_host(app.hub_cache)
    )
    return decision.value, decision.reason


def make(options: Options, app: Settings) -> SetupPlan:
    backend, backend_reason = choose_backend(options.backend)
    variant, variant_reason = choose_variant(options.cuda, app)
    mirrors = mirror_catalogue.load(custom=options.custom_mirrors or None)
    mplan = resolve(mirrors, options.mirror, variant)
    model = catalogue.model(options.model or app.model) if options.weights else None
    lock = options.lock or REQUIREMENTS / "runtime.txt"
    if not lock.is_file():
        raise ConfigError(f"lockfile {lock} does not exist: `i2vkit lock` writes it")
    digest, lockfiles = lock_hash(variant, backend, lock)
    torch_pin = f"torch=={catalogue.torch_variants().torch}+{variant}"
    return SetupPlan(
        backend=backend,
        backend_reason=backend_reason,
        variant=variant,
        variant_reason=variant_reason,
        torch=torch_pin,
        python=sys.executable,
        python_version="{}.{}".format(*sys.version_info[:2]) if backend == "venv" else "",
        prefix=options.prefix or app.home / "envs" / "default",
        mirrors_catalogue=mirrors,
        mirrors=mplan,
        urls=_urls(mirrors, mplan),
        notes=[p.note for k, p in mplan.picks.items() if p.note and k in SETUP_KINDS]
        + mplan.left_out_notes(SETUP_KINDS),
        lock_hash=digest,
        lockfiles=lockfiles,
        lock=lock,
        wheelhouse=options.wheelhouse if options.wheelhouse else default_wheelhouse(),
        model=model,
        files=_files(model),
        env=options.env,
        weights=options.weights,
        global_config=options.global_config,
    )


def _files(model: catalogue.Model | None) -> list[tuple[str, int]]:
    """The model's files, and a `-fast` entry's LoRA files under the LoRA's repo id."""
    if model is None:
        return []
    lora = [(f"{model.lora.repo_id}@{model.lora.revision[:12]}: {path}", size)
            for path, size in model.lora.files] if model.lora else []  # fmt: skip
    return [*model.files, *lora]


def _urls(mirrors: Catalogue, plan: MirrorPlan) -> dict[str, str]:
    urls = {}
    for kind in SETUP_KINDS:
        if kind in plan.picks:
            urls[kind] = f"{plan.url(kind)} ({plan.picks[kind].mirror})"
    return urls


def describe(plan: SetupPlan) -> dict[str, Any]:
    """The plan as plain data (the --json output and what the tables are drawn from)."""
    return {
        "backend": {"value": plan.backend, "reason": plan.backend_reason},
        "variant": {"value": plan.variant, "reason": plan.variant_reason, "torch": plan.torch},
        "python": plan.python,
        "prefix": str(plan.prefix),
        "urls": plan.urls,
        "failover": {k: list(v) for k, v in plan.mirrors.chains.items() if k in SETUP_KINDS},
        "notes": plan.notes,
        "lock": {"hash": plan.lock_hash, "files": plan.lockfiles},
        "wheelhouse": str(plan.wheelhouse) if plan.wheelhouse else None,
        "model": plan.model.name if plan.model else None,
        "repo": f"{plan.model.repo_id}@{plan.model.revision}" if plan.model else None,
        "license": _licenses(plan.model) if plan.model else [],
        "files": [{"path": p, "bytes": b} for p, b in plan.files],
        "download_bytes": plan.download_bytes,
        "sources": _sources(plan),
        "memory": _memory(plan.model) if plan.model else [],
        "steps": [s for s, on in (("env", plan.env), ("weights", plan.weights)) if on],
        "conda": _conda_packages(plan) if plan.backend in ("mamba", "rattler") else None,
    }


def _licenses(model: catalogue.Model) -> list[str]:
    """The terms the user accepts by downloading: the model's, and its LoRA's where it has one."""
    terms = [f"{model.repo_id}: {model.license}"]
    if model.lora:
        terms.append(f"{model.lora.repo_id}: {model.lora.license}")
    if model.gated:
        terms.append(f"{model.repo_id} is gated: accept its terms on the Hub and set HF_TOKEN")
    return terms


def _sources(plan: SetupPlan) -> list[dict[str, str]]:
    """Where the weights come from, in the order setup tries them."""
    if not plan.model:
        return []
    from i2vkit.env.weights import sources

    found = sources(plan.model, plan.mirrors_catalogue, plan.mirrors)
    return [{"name": s.name, "kind": s.kind, "url": s.url} for s in found]


MEMORY_SIZES_GIB = (12, 16, 24, 48, 80, 141)  # the GPUs people run: 3060 to H200


def _memory(model: catalogue.Model) -> list[dict[str, Any]]:
    """The strategy the memory planner would pick for each preset on common GPU sizes (bf16),
    so a user sees before downloading what their card will do."""
    from i2vkit import planner

    rows = []
    for gib in MEMORY_SIZES_GIB:
        fits = planner.preset_fits(model.name, "cuda", "bf16", gib * planner.GIB)
        rows.append({"gib": gib, "presets": [
            {"preset": name, "fits": ok, "strategy": est.strategy.name if ok else None,
             "peak_gib": round(est.peak / planner.GIB, 1)}
            for name, ok, est in fits
        ]})  # fmt: skip
    return rows


def _conda_packages(plan: SetupPlan) -> dict[str, Any]:
    """The conda layer's packages and the URLs they would come from (offline)."""
    from i2vkit.env import conda

    planned = conda.planned(CONDA_LOCK, plan.mirrors_catalogue, plan.mirrors)
    return {
        "platform": conda.host_platform(),
        "packages": [{"name": p.name, "version": p.version, "url": url} for p, url in planned],
    }
