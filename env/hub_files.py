"""What a model's files should be: the catalogue's patterns, the pinned revision's listing as an
HF endpoint gives it (sizes, LFS sha256, git blob ids), and the checks against it. Shared by
the weights sources (env/weights.py for the Hub and its mirrors, env/modelscope.py)."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

from i2vkit.catalogue import Model
from i2vkit.errors import WeightsError


class Refused(Exception):
    """A source's files are not the pinned ones: the next source may have them."""


def patterns(model: Model) -> list[str]:
    return [path for path, _size in model.files]


def wanted(model: Model, path: str) -> bool:
    """Whether `path` (repo-relative) is one the runtime needs: fnmatch, as both clients
    match their allow patterns."""
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns(model))


@dataclass(frozen=True)
class HubFile:
    size: int | None
    sha256: str | None  # LFS files
    blob_id: str | None  # git's blob id: the hash of a small (non-LFS) file


@dataclass(frozen=True)
class HubListing:
    """The pinned revision's files as an HF endpoint describes them."""

    source: str
    commit: str
    files: dict[str, HubFile]


def hub_listing(model: Model, url: str, name: str) -> HubListing | None:
    """The needed files of the pinned revision, with sizes and hashes where the endpoint gives
    them (olah's offline mode gives names only); None when the endpoint does not answer."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=url).model_info(
            model.repo_id, revision=model.revision, files_metadata=True, timeout=15
        )
    except Exception:  # any failure only means this endpoint cannot vouch for the files
        return None
    files = {
        s.rfilename: HubFile(s.size, s.lfs.sha256 if s.lfs else None, s.blob_id)
        for s in info.siblings or []
        if model.local or wanted(model, s.rfilename)
    }
    return HubListing(name, info.sha or model.revision, files)


def differences(listing: HubListing, files: dict[str, tuple[int, str]]) -> list[str]:
    """What differs between the Hub's listing and `files` (path -> (size, sha256))."""
    problems = [f"{path} is missing" for path in sorted(set(listing.files) - set(files))]
    extra = sorted(set(files) - set(listing.files))
    problems += [f"{path} is not in the Hub's commit" for path in extra]
    for path in sorted(set(files) & set(listing.files)):
        hub, (size, sha256) = listing.files[path], files[path]
        if hub.size is not None and hub.size != size:
            problems.append(f"{path} is {size:,} bytes, the Hub's {hub.size:,}")
        elif hub.sha256 is not None and hub.sha256 != sha256:
            problems.append(f"{path} has sha256 {sha256[:12]}, the Hub's {hub.sha256[:12]}")
    return problems


def check_download(model: Model, folder: Path, listing: HubListing | None) -> str:
    """Sizes and hashes of a Hub download against the endpoint's listing; raises WeightsError
    when they differ. Says what was checked."""
    if listing is None:
        return "no file hashes from this endpoint: sizes checked while downloading"
    problems, hashed = [], 0
    for path, hub in listing.files.items():
        file = folder / path
        if not file.exists():
            problems.append(f"{path} is missing after download")
            continue
        if hub.size is not None and file.stat().st_size != hub.size:
            problems.append(f"{path} has the wrong size")
        elif hub.sha256 is not None:
            hashed += 1
            if sha256(file) != hub.sha256:
                problems.append(f"{path} fails its sha256 check")
        elif hub.blob_id is not None:
            hashed += 1
            if git_blob_id(file) != hub.blob_id:
                problems.append(f"{path} fails its git blob check")
    if problems:
        raise WeightsError(f"{model.repo_id}: " + "; ".join(problems[:5]))
    if not hashed:
        return f"{len(listing.files)} file(s) present; this endpoint gives no hashes"
    return f"sizes and hashes verified ({hashed} file(s))"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """git's id of a file (what the Hub lists for files not stored in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
