"""Model weights into the standard Hugging Face cache (honours HF_HOME / HF_HUB_CACHE), from
the first source along a chain that answers: the Hub or a mirror of it (through
huggingface_hub), or ModelScope (through the `modelscope` client) for models their publishers
put there. Only the files the runtime needs (the catalogue's `files` patterns); resumable (both
clients resume partial files); verified. Afterwards the runtime loads with HF_HUB_OFFLINE=1.

The source chain (`sources`): on a mainland plan (its HF kind is a mirror, not huggingface.co)
the mirror the user named, then ModelScope, then the Hub's mirrors and the Hub; otherwise the
Hub and its mirrors first and ModelScope last. A source that fails, does not serve the model, or
serves files that differ from the pinned Hub commit hands over to the next.

ModelScope names branches, not Hub commits, so its listing (sizes, sha256) is compared with
the Hub commit's listing from the first HF endpoint that answers *before* anything large is
downloaded; the files then land in the HF cache layout (blobs named by sha256, the snapshot
folder named by the pinned commit) so the runtime cannot tell where they came from.

The `demo` models are fetched when a source serves them (an olah mirror, an image build) and
otherwise built locally by the runtime's own code, so setup works with no hub at all. Tokens
come from the clients' usual sources (HF_TOKEN or `hf auth login`; MODELSCOPE_API_TOKEN) and
are never printed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from i2vkit import catalogue
from i2vkit.catalogue import Model
from i2vkit.env import modelscope
from i2vkit.env.hub_files import (
    HubListing,
    Refused,
    check_download,
    hub_listing,
    patterns,
)
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


def cached(model: Model, app: Settings) -> Path | None:
    """The snapshot folder if every needed file is already in the cache (no network); for a
    `-fast` entry, only if its LoRA's files are there too."""
    if model.lora is not None and cached(catalogue.lora_files(model), app) is None:
        return None
    folder = catalogue.snapshot(model, app)
    if folder is None:
        return None
    if model.local and model.kind == "pipeline":
        return folder if (folder / "model_index.json").exists() else None
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    missing = [pattern for pattern in patterns(model)
               if not any(fnmatch.fnmatch(path, pattern) for path in present)]  # fmt: skip
    return None if missing else folder


@dataclass(frozen=True)
class Source:
    kind: str  # "hf" or "modelscope"
    mirror: str
    url: str

    @property
    def name(self) -> str:
        return f"{self.mirror} (ModelScope)" if self.kind == "modelscope" else self.mirror


def sources(model: Model, mirrors: Catalogue, plan: MirrorPlan) -> list[Source]:
    """Where setup looks for the model's files, in order (see the module docstring)."""
    hf = [Source("hf", m, _url(mirrors, m, "hf")) for m in plan.chains.get("hf", ())]
    ms = [Source("modelscope", m, _url(mirrors, m, "modelscope"))
          for m in plan.chains.get("modelscope", ())] if model.modelscope_id else []  # fmt: skip
    # by URL, not name: an image build's custom mirror may point at the Hub itself
    hub = mirrors.mirror["default"].endpoint("hf") if "default" in mirrors.mirror else None
    mainland = "hf" in plan.picks and (hub is None or plan.url("hf") != hub.url)
    # on a mainland plan the named mirror's own sources first (a custom one may offer both)
    named_first = sorted([*ms, *hf], key=lambda s: s.mirror != plan.requested)  # stable
    chain: list[Source] = []
    for source in named_first if mainland else [*hf, *ms]:
        if all((s.kind, s.url) != (source.kind, source.url) for s in chain):
            chain.append(source)  # the same endpoint under two names is tried once
    return chain


def _url(mirrors: Catalogue, mirror: str, kind: str) -> str:
    endpoint = mirrors.mirror[mirror].endpoint(kind)
    assert endpoint is not None  # the plan's chains hold only mirrors offering the kind
    return endpoint.url


@contextlib.contextmanager
def _xet_off(off: bool) -> Iterator[None]:
    """Xet transfers go to the Hub's own storage whatever HF_ENDPOINT says: a mirror of the
    Hub is used only with them off (huggingface_hub reads the constant at each download)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = before or off
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = before


def _download_hub(model: Model, app: Settings, source: Source) -> Path:
    from huggingface_hub import snapshot_download

    with _xet_off(source.mirror != "default"):
        return Path(
            snapshot_download(
                model.repo_id, revision=model.revision, cache_dir=app.hub_cache,
                allow_patterns=None if model.local else patterns(model), endpoint=source.url,
            )
        )  # fmt: skip


def _why(error: Exception, model: Model, source: Source) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, Refused):
        return str(error)
    if isinstance(error, GatedRepoError):
        return (f"{model.repo_id} is gated: accept its licence on the Hub and set HF_TOKEN "
                f"(or `hf auth login`)")  # fmt: skip
    if isinstance(error, RepositoryNotFoundError) or _status(error) == 404:
        repo = model.modelscope_id if source.kind == "modelscope" else model.repo_id
        return f"{source.name} does not serve {repo}"
    if type(error).__name__ == "FileDownloadError":  # modelscope_hub: size or sha256 mismatch
        return f"{source.name}: files failed their size or sha256 check: {_first_line(error)}"
    return f"{source.name}: {type(error).__name__}: {_first_line(error)}"


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) or getattr(error, "status_code", None)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0][:200]


def fetch(model: Model, app: Settings, mirrors: Catalogue, plan: MirrorPlan,
          build_python: Path | None = None) -> WeightsResult:  # fmt: skip
    """Fetch (or find, or for a tiny twin build) the model's files, and a `-fast` entry's LoRA;
    see the module docstring."""
    weights = _fetch(model, app, mirrors, plan, build_python)
    if model.lora is None:
        return weights
    lora = _fetch(catalogue.lora_files(model), app, mirrors, plan, build_python)
    return WeightsResult(
        model.name, weights.path, f"{weights.source}; LoRA: {lora.source}",
        weights.files + lora.files, weights.bytes_on_disk + lora.bytes_on_disk,
        weights.bytes_received + lora.bytes_received, weights.seconds + lora.seconds,
        (*weights.notes, *(f"LoRA: {n}" for n in lora.notes)),
    )  # fmt: skip


def _fetch(model: Model, app: Settings, mirrors: Catalogue, plan: MirrorPlan,
           build_python: Path | None) -> WeightsResult:  # fmt: skip
    started = time.perf_counter()
    folder = cached(model, app)
    if folder is not None:
        return WeightsResult(model.name, folder, "cache", _count(folder), _size(folder), 0,
                             time.perf_counter() - started)  # fmt: skip
    received = psutil.net_io_counters().bytes_recv
    chain = {s.name: s for s in sources(model, mirrors, plan)}
    fetched: dict[str, tuple[Path, str]] = {}  # source -> (snapshot folder, verification)
    listings: dict[str, HubListing | None] = {}

    def hub() -> HubListing | None:
        """The Hub commit's listing from the first HF source that answers (asked once)."""
        for s in chain.values():
            if s.kind == "hf" and s.name not in listings:
                listings[s.name] = hub_listing(model, s.url, s.name)
            if listings.get(s.name):
                return listings[s.name]
        return None

    def one(name: str) -> Attempt:
        source = chain[name]
        start = time.perf_counter()
        try:
            if source.kind == "modelscope":
                fetched[name] = modelscope.download(model, app, source.url, name, hub())
            else:
                folder = _download_hub(model, app, source)
                if name not in listings:
                    listings[name] = hub_listing(model, source.url, source.name)
                fetched[name] = (folder, check_download(model, folder, listings[name]))
        except WeightsError:
            raise  # the files came but are wrong: say so, do not look elsewhere
        except Exception as error:  # network, 5xx, not served there: the next may have it
            return Attempt(name, False, time.perf_counter() - start, _why(error, model, source),
                           mirror_fault=True)  # fmt: skip
        return Attempt(name, True, time.perf_counter() - start)

    attempts = failover.run(list(chain), one, "weights")
    notes = [a.reason for a in attempts if a.reason]
    if attempts and attempts[-1].ok:
        name = attempts[-1].mirror
        folder, verified = fetched[name]
        got = psutil.net_io_counters().bytes_recv - received
        return WeightsResult(model.name, folder, name, _count(folder), _size(folder), got,
                             time.perf_counter() - started, (*notes, verified))  # fmt: skip
    if model.local:
        folder = build_demo(model, app, build_python)
        notes.append(f"no source serves {model.repo_id}: built locally")
        return WeightsResult(model.name, folder, "built locally", _count(folder), _size(folder),
                             0, time.perf_counter() - started, tuple(notes))  # fmt: skip
    raise WeightsError(f"no source could provide {model.repo_id}: " + "; ".join(notes))


def build_demo(model: Model, app: Settings, python: Path | None) -> Path:
    """Build a tiny twin (or a twin's LoRA) with the runtime's own code, in the env's Python
    when given (the current interpreter may not have torch yet), where the runtime looks for
    it (runtime/loader.py model_folder)."""
    lora = model.kind == "lora"
    folder = app.home / "models" / (model.name if lora else model.base or model.name)
    if (folder / "model_index.json").exists() or (lora and folder.exists()):
        return folder
    save = "save_lora" if lora else "save"
    code = (
        "import sys; from pathlib import Path; from i2vkit.runtime import twins; "
        f"twins.{save}(Path(sys.argv[1]), sys.argv[2], twin=sys.argv[3])"
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
