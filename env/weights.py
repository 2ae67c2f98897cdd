"""Model weights into the standard Hugging Face cache (honours HF_HOME / HF_HUB_CACHE), through
huggingface_hub from the plan's HF endpoint, failing over along the endpoint chain. Only the
files the runtime needs (the catalogue's `files`, fp16 variant where the repo has one);
resumable (huggingface_hub resumes partial blobs); verified against the endpoint's sizes and
LFS sha256. Afterwards the runtime loads with HF_HUB_OFFLINE=1.

The `demo` models are fetched when the endpoint serves them (an olah mirror, an image build)
and otherwise built locally by the runtime's own code, so setup works with no hub at all.
Tokens come from huggingface_hub's usual sources (HF_TOKEN, HF_TOKEN_PATH, `hf auth login`)
and are never printed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from i2vkit import catalogue
from i2vkit.catalogue import Model
from i2vkit.errors import WeightsError
from i2vkit.mirrors import failover
from i2vkit.mirrors.catalogue import Catalogue
from i2vkit.mirrors.choose import MirrorPlan
from i2vkit.mirrors.failover import Attempt
from i2vkit.settings import Settings


@dataclass(frozen=True)
class WeightsResult:
    model: str
    path: Path  # the snapshot folder (or the local demo folder)
    source: str  # the mirror it came from, "cache" when nothing was fetched, or "built locally"
    files: int
    bytes_on_disk: int
    bytes_received: int  # network bytes while fetching (psutil), 0 when cached
    seconds: float
    notes: tuple[str, ...] = ()


def patterns(model: Model) -> list[str]:
    return [path for path, _size in model.files]


def cached(model: Model, app: Settings) -> Path | None:
    """The snapshot folder if every needed file is already in the cache (no network)."""
    folder = catalogue.snapshot(model, app)
    if folder is None:
        return None
    if model.local:
        return folder if (folder / "model_index.json").exists() else None
    missing = [p for p in patterns(model) if not (folder / p).exists()]
    return None if missing else folder


def _verify(model: Model, endpoint: str, folder: Path) -> str:
    """Sizes and LFS sha256 against what the endpoint says the files are. An endpoint without
    file metadata (olah's offline mirror) leaves huggingface_hub's own size check, said so."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi(endpoint=endpoint).model_info(
            model.repo_id, revision=model.revision, files_metadata=True
        )
    except HfHubHTTPError:
        return "no file hashes from this endpoint: sizes checked while downloading"
    wanted = set(patterns(model))
    for sibling in info.siblings or []:
        if not model.local and sibling.rfilename not in wanted:
            continue
        path = folder / sibling.rfilename
        if not path.exists():
            raise WeightsError(f"{model.repo_id}: {sibling.rfilename} is missing after download")
        if sibling.size is not None and path.stat().st_size != sibling.size:
            raise WeightsError(f"{model.repo_id}: {sibling.rfilename} has the wrong size")
        if sibling.lfs and _sha256(path) != sibling.lfs.sha256:
            raise WeightsError(f"{model.repo_id}: {sibling.rfilename} fails its sha256 check")
    return "sizes and sha256 verified"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(model: Model, app: Settings, endpoint: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            model.repo_id, revision=model.revision, cache_dir=app.hub_cache,
            allow_patterns=None if model.local else patterns(model), endpoint=endpoint,
        )
    )  # fmt: skip


def _why(error: Exception, model: Model, mirror: str) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return (f"{model.repo_id} is gated: accept its licence on the Hub and set HF_TOKEN "
                f"(or `hf auth login`)")  # fmt: skip
    if isinstance(error, RepositoryNotFoundError):
        return f"{mirror} does not serve {model.repo_id}"
    return f"{mirror}: {type(error).__name__}: {str(error).splitlines()[0][:200]}"


def fetch(model: Model, app: Settings, mirrors: Catalogue, plan: MirrorPlan,
          build_python: Path | None = None) -> WeightsResult:  # fmt: skip
    """Fetch (or find, or for demo build) the model's files; see the module docstring."""
    started = time.perf_counter()
    folder = cached(model, app)
    if folder is not None:
        return WeightsResult(model.name, folder, "cache", _count(folder), _size(folder), 0,
                             time.perf_counter() - started)  # fmt: skip
    received = psutil.net_io_counters().bytes_recv
    fetched: dict[str, tuple[Path, str]] = {}  # mirror -> (snapshot folder, verification)

    def one(mirror: str) -> Attempt:
        endpoint = mirrors.mirror[mirror].endpoint("hf")
        assert endpoint is not None
        start = time.perf_counter()
        try:
            folder = _download(model, app, endpoint.url)
            fetched[mirror] = (folder, _verify(model, endpoint.url, folder))
        except WeightsError:
            raise  # the files came but are wrong: say so, do not look elsewhere
        except Exception as error:  # network, 5xx, not served there: the next may have it
            return Attempt(mirror, False, time.perf_counter() - start, _why(error, model, mirror),
                           mirror_fault=True)  # fmt: skip
        return Attempt(mirror, True, time.perf_counter() - start)

    attempts = failover.run(plan.chains.get("hf", ()), one, "weights")
    notes = [a.reason for a in attempts if a.reason]
    if attempts and attempts[-1].ok:
        mirror = attempts[-1].mirror
        folder, verified = fetched[mirror]
        got = psutil.net_io_counters().bytes_recv - received
        return WeightsResult(model.name, folder, mirror, _count(folder), _size(folder), got,
                             time.perf_counter() - started, (*notes, verified))  # fmt: skip
    if model.local:
        folder = build_demo(model, app, build_python)
        notes.append(f"no endpoint serves {model.repo_id}: built locally")
        return WeightsResult(model.name, folder, "built locally", _count(folder), _size(folder),
                             0, time.perf_counter() - started, tuple(notes))  # fmt: skip
    raise WeightsError(f"no endpoint could provide {model.repo_id}: " + "; ".join(notes))


def build_demo(model: Model, app: Settings, python: Path | None) -> Path:
    """Build a demo model with the runtime's own code, in the env's Python when given (the
    current interpreter may not have torch yet)."""
    folder = app.home / "models" / model.name
    if (folder / "model_index.json").exists():
        return folder
    code = (
        "import sys; from pathlib import Path; from i2vkit.runtime import twins; "
        "twins.save(Path(sys.argv[1]), sys.argv[2], twin=sys.argv[3])"
    )
    done = subprocess.run(
        [str(python or sys.executable), "-c", code, str(folder), model.family, model.twin],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise WeightsError(f"building the {model.name} model failed: {done.stderr[-800:]}")
    return folder


def _count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _size(folder: Path) -> int:
    # the snapshot holds symlinks into the cache's blobs: count what they point at
    return sum(p.resolve().stat().st_size for p in folder.rglob("*") if p.is_file())
