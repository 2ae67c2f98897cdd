"""The build plan of `i2vkit build-image`, as data: base, build args (every mirror URL rendered
from the catalogue by mirrors/render.py), stages, files baked in, labels and expected size.

Computing a plan touches no network and no Docker engine (mirror 'auto' is the exception: it
probes the mirrors first, as everywhere in i2vkit). It reads the lockfiles (for the lock hash)
and asks git for the source revision. The HF token is never part of a plan: only where it was
found is.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from i2vkit import __version__
from i2vkit.data import StrictModel, load_toml, need_checkout, packaged
from i2vkit.mirrors import render
from i2vkit.mirrors.catalogue import Catalogue, TorchEndpoint, load
from i2vkit.mirrors.choose import MirrorPlan, resolve
from i2vkit.net import is_loopback
from i2vkit.settings import Settings

DOCKERFILE = "images/Dockerfile"  # relative to the build context, the project's root
DEFAULT_BASE = "debian:bookworm-slim"
MIRROR_NAME = "image"  # the custom mirror the build's own `i2vkit setup` runs against
PREFIX = "/opt/i2vkit/env"
HF_HOME = "/opt/i2vkit/hf"
SERVE_PORT = 7860
# Base images whose apt sources i2vkit knows how to render: (distro, suite) per name fragment.
APT_BASES = (
    ("bookworm", ("debian", "bookworm")),
    ("debian:12", ("debian", "bookworm")),
    ("ubuntu:24.04", ("ubuntu", "noble")),
    ("noble", ("ubuntu", "noble")),
)


class Sizes(StrictModel):
    schema_: int = Field(alias="schema")
    source: int
    runtime_layer: int
    cluster_layer: int
    base: dict[str, int]
    torch: dict[str, int]


@cache
def sizes() -> Sizes:
    return load_toml(packaged("i2vkit.images", "data", "sizes.toml"), Sizes)


@dataclass(frozen=True)
class Stage:
    name: str
    does: str


@dataclass(frozen=True)
class Baked:
    path: str  # inside the image
    what: str
    bytes: int


@dataclass(frozen=True)
class BuildPlan:
    tag: str
    base: str
    model: str
    variant: str
    variant_reason: str
    mirror: str
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    stages: tuple[Stage, ...]
    baked: tuple[Baked, ...]
    expected_bytes: int
    network_mode: str | None  # "host" where a mirror or the token server is on loopback
    push: bool = False
    no_weights: bool = False
    token_source: str | None = None  # where the HF token was found; never the token
    notes: tuple[str, ...] = ()
    context: str = ""  # the checkout: the Dockerfile copies its folders
    dockerfile: str = DOCKERFILE
    sizes: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_variant(cuda: str, settings: Settings) -> tuple[str, str]:
    """(variant, why): 'auto' asks the doctor about this host; a name must be choosable."""
    from i2vkit import advice, catalogue
    from i2vkit.host import detect_host

    decision = advice.variant_for(
        cuda, catalogue.torch_variants(), lambda: detect_host(settings.hub_cache)
    )
    return decision.value, (f"auto: {decision.reason}" if cuda == "auto" else decision.reason)


def lock_file(cluster: bool) -> str:
    """The pip lock the image's env installs: the runtime's, or with Ray's pins for an image
    that also joins a Ray cluster as a worker node (`build-image --cluster`)."""
    return f"env/requirements/{'cluster' if cluster else 'runtime'}.txt"


def lock_hash(variant: str, root: Path, cluster: bool = False) -> str:
    """The hash the image's own `i2vkit setup --backend venv` records for its env: one function
    (env.plan.lock_hash), so the label and the env's state agree."""
    from i2vkit.env.plan import lock_hash as env_lock_hash

    digest, _files = env_lock_hash(variant, "venv", root / lock_file(cluster))
    return f"sha256:{digest}"


def source_revision(root: Path) -> str:
    """The git commit of the source, '-dirty' when the tree has changes; 'unknown' without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")


def apt_target(base: str) -> tuple[str, str] | None:
    return next((target for part, target in APT_BASES if part in base), None)


def mirror_config(mplan: MirrorPlan) -> dict[str, Any]:
    """The plan's pypi, torch, hf and modelscope endpoints as one invoke.yaml custom mirror
    (`mirrors:`)."""
    pypi = mplan.picks["pypi"].endpoint
    torch = mplan.picks["torch"].endpoint
    assert isinstance(torch, TorchEndpoint)
    entry: dict[str, Any] = {"pypi": {"url": pypi.url}}
    files = getattr(pypi, "files", None)
    if files:
        entry["pypi"]["files"] = files
    entry["torch"] = {"url": torch.url, "layout": torch.layout, "variants": [mplan.variant]}
    entry["hf"] = {"url": mplan.url("hf")}
    if "modelscope" in mplan.picks:
        entry["modelscope"] = {"url": mplan.url("modelscope")}
    return {"mirrors": {MIRROR_NAME: entry}}


def build_args(
    mplan: MirrorPlan, base: str, model: Any, no_weights: bool, root: Path, cluster: bool = False
) -> dict[str, str]:
    args = {"BASE_IMAGE": base, **render.docker_build_args(mplan)}
    target = apt_target(base)
    args["APT_SOURCES"] = render.apt_sources(mplan, *target) if target else ""
    args["APT_SOURCES_FILE"] = (
        f"/etc/apt/sources.list.d/{target[0] if target else 'debian'}.sources"
    )
    args["TORCH_VARIANT"] = mplan.variant
    args["MIRROR_CONFIG"] = json.dumps(mirror_config(mplan))
    args["MODEL"] = model.name
    args["MODEL_REPO"] = "" if model.local else model.repo_id
    args["MODEL_REVISION"] = model.revision
    # a hub model's files come in the weights stage; a tiny twin is built in the final one,
    # from the runtime code it belongs to
    args["FETCH_WEIGHTS"] = "0" if no_weights or model.local else "1"
    args["LOCAL_MODEL"] = model.name if model.local and not no_weights else ""
    args["HF_TOKEN_URL"] = ""  # set by the build when a token is delivered (images/secrets.py)
    args["LOCK"] = lock_file(cluster)
    args["LOCK_HASH"] = lock_hash(mplan.variant, root, cluster)
    args["SOURCE_REVISION"] = source_revision(root)
    args["VERSION"] = __version__
    return args


def _loopback(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")


def _baked(
    model: Any, variant: str, no_weights: bool, sz: Sizes, cluster: bool = False
) -> tuple[Baked, ...]:
    files = [
        Baked(
            PREFIX,
            f"venv: torch {variant} + {lock_file(cluster)} (hash-locked)",
            sz.torch.get(variant, max(sz.torch.values()))
            + sz.runtime_layer
            + (sz.cluster_layer if cluster else 0),
        ),
    ]
    if no_weights:
        files.append(Baked(HF_HOME, "no weights (--no-weights): mount an HF cache at run time", 0))
    elif model.local:
        files.append(
            Baked(
                f"/var/lib/i2vkit/models/{model.name}",
                f"{model.name}: tiny model built with the env's torch",
                model.download_bytes,
            )
        )
    else:
        cache_dir = f"{HF_HOME}/hub/models--{model.repo_id.replace('/', '--')}"
        listed = getattr(model, "files", ()) or ()
        if listed:
            files += [
                Baked(f"{cache_dir}/snapshots/<{model.revision}>/{name}", "weights", size)
                for name, size in listed
            ]
        else:
            files.append(
                Baked(cache_dir, f"{model.repo_id}@{model.revision}", model.download_bytes)
            )
    files.append(Baked("/opt/i2vkit/src", "i2vkit's source (the last layer)", sz.source))
    return tuple(files)


def make_plan(
    settings: Settings,
    model: str,
    mirror: str,
    cuda: str = "auto",
    tag: str | None = None,
    base: str = DEFAULT_BASE,
    push: bool = False,
    no_weights: bool = False,
    custom_mirrors: Mapping[str, Any] | None = None,
    catalogue: Catalogue | None = None,
    token_source: str | None = None,
    root: Path | None = None,
    cluster: bool = False,
) -> BuildPlan:
    """Everything the build will do, decided up front; nothing is built or fetched here."""
    from i2vkit import catalogue as models

    root = root or need_checkout("build-image (the Docker build context is the checkout)")
    entry = models.model(model)  # raises UnknownNameError listing the known models
    variant, why = resolve_variant(cuda, settings)
    mplan = resolve(catalogue or load(custom=custom_mirrors), mirror, variant)
    torch_version = models.torch_variants().torch
    sz = sizes()
    baked = _baked(entry, variant, no_weights, sz, cluster)
    base_bytes = sz.base.get(base, sz.base["default"])
    args = build_args(mplan, base, entry, no_weights, root, cluster)
    urls = [args["PIP_INDEX_URL"], args["TORCH_INDEX_URL"], args["HF_ENDPOINT"]]
    labels = {
        "io.i2vkit.model": entry.name,
        "io.i2vkit.model.revision": entry.revision,
        "io.i2vkit.torch.variant": variant,
        "io.i2vkit.lock.hash": args["LOCK_HASH"],
        "io.i2vkit.cluster": "ray" if cluster else "none",
        "org.opencontainers.image.revision": args["SOURCE_REVISION"],
    }
    if no_weights:
        weights = "skipped (--no-weights)"
    elif entry.local:
        weights = f"nothing: {entry.name} is built in the final stage, from the runtime's code"
    else:
        weights = (
            f"`i2vkit setup --weights-only --model {entry.name} --mirror {MIRROR_NAME}` with the "
            f"env's python into {HF_HOME} ({args['HF_ENDPOINT']})"
        )
    final = "env + weights + source"
    if entry.local and not no_weights:
        final += f"; {entry.name} built (`i2vkit setup --weights-only`)"
    stages = (
        Stage(
            "base",
            f"{base}; python3, python3-venv, ca-certificates from apt if missing; "
            "user i2vkit (uid 10001)",
        ),
        Stage(
            "env",
            f"`i2vkit setup --backend venv --prefix {PREFIX} --cuda {variant} --mirror "
            f"{MIRROR_NAME} --no-weights --lock {args['LOCK']}`: torch "
            f"{torch_version}+{variant}, {args['LOCK']}",
        ),
        Stage("weights", weights),
        Stage(
            "final",
            f"{final}; user i2vkit; HF_HUB_OFFLINE=1; HEALTHCHECK /readyz; "
            f"`i2vkit serve --host 0.0.0.0 --port {SERVE_PORT}`",
        ),
    )
    notes = [*mplan.notes]
    if not apt_target(base):
        notes.append(f"base {base!r}: apt sources left as the base has them")
    if token_source:
        notes.append(
            f"HF token from {token_source}: delivered once over loopback to the weights "
            "step, never in a layer, the config or the history"
        )
    loopback = any(_loopback(u) for u in urls) or bool(token_source)
    if cluster:
        notes.append(
            "with Ray: the image also joins a Ray cluster as a worker node: `docker run "
            "--gpus all --network host --entrypoint /opt/i2vkit/env/bin/ray TAG start "
            "--address=HEAD:6379 --block` (docs/scaling.md)"
        )
    return BuildPlan(
        tag=tag or f"i2vkit/{entry.name}:{torch_version}-{variant}{'-ray' if cluster else ''}",
        base=base,
        model=entry.name,
        variant=variant,
        variant_reason=why,
        mirror=mirror,
        build_args=args,
        labels=labels,
        stages=stages,
        baked=baked,
        expected_bytes=base_bytes + sum(b.bytes for b in baked),
        network_mode="host" if loopback else None,
        push=push,
        no_weights=no_weights,
        token_source=token_source,
        notes=tuple(notes),
        context=str(root),
        sizes={"base": base_bytes, **{b.path: b.bytes for b in baked}},
    )
