"""Weights from ModelScope (the `modelscope` client, whose 1.40 core is modelscope_hub): its
listing compared with the pinned Hub commit's before anything large is downloaded, the files
downloaded (the client checks every sha256 and resumes partial files), then moved into the
Hugging Face cache layout under the pinned commit, so the runtime loads them like a Hub
download. ModelScope names branches, not Hub commits: the comparison is what ties them."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from i2vkit.catalogue import Model
from i2vkit.env.hub_files import HubListing, Refused, differences, git_blob_id, patterns, wanted
from i2vkit.files import replacing, write_text
from i2vkit.settings import Settings


def listing(model: Model, url: str, name: str) -> dict[str, tuple[int, str]]:
    """The needed files on ModelScope: path -> (size, sha256), from its listing."""
    # modelscope 1.40's client is modelscope_hub; HubApi takes the endpoint per instance, so
    # no process-wide setting (MODELSCOPE_ENDPOINT is read once per process) is touched
    from modelscope_hub.api import HubApi

    listed = HubApi(endpoint=url).list_repo_files(
        model.modelscope_id, "model", revision=model.modelscope_revision
    )
    files = {f.path: (f.size, (f.sha256 or "").lower()) for f in listed
             if f.type != "tree" and (model.local or wanted(model, f.path))}  # fmt: skip
    if not files:
        raise Refused(f"{name} lists no files of {model.modelscope_id}")
    if any(not sha for _size, sha in files.values()):
        raise Refused(f"{name} gives no sha256 for {model.modelscope_id}'s files")
    return files


def download(model: Model, app: Settings, url: str, name: str,
             hub: HubListing | None) -> tuple[Path, str]:  # fmt: skip
    """Compare ModelScope's files with the Hub commit's, download them (the client checks
    every sha256 and resumes partial files), then move them into the HF cache layout."""
    from modelscope import snapshot_download

    files = listing(model, url, name)
    label = f"{model.modelscope_id}@{model.modelscope_revision}"
    if hub is not None:
        problems = differences(hub, files)
        if problems:
            raise Refused(f"{name}: {label} differs from the Hub's {model.repo_id}@"
                           f"{hub.commit[:12]}: " + "; ".join(problems[:3]))  # fmt: skip
    staging = app.home / "downloads" / "modelscope"
    staged = Path(
        snapshot_download(
            model.modelscope_id, revision=model.modelscope_revision, cache_dir=str(staging),
            allow_patterns=None if model.local else patterns(model), endpoint=url,
        )
    )  # fmt: skip
    if hub is not None:
        small = [p for p, f in hub.files.items() if f.sha256 is None and f.blob_id]
        wrong = [p for p in small if git_blob_id(staged / p) != hub.files[p].blob_id]
        if wrong:
            raise Refused(f"{name}: {label}'s {', '.join(wrong[:3])} differ from the "
                           f"Hub's {hub.commit[:12]}")  # fmt: skip
        commit = hub.commit
        verified = (f"sha256 verified against ModelScope's listing; the listing matches the "
                    f"Hub's {hub.commit[:12]} ({hub.source})")  # fmt: skip
    else:
        commit = model.revision if is_commit(model.revision) else synthetic_commit(files)
        verified = ("sha256 verified against ModelScope's listing; not compared with the Hub "
                    "(no HF endpoint answered)")  # fmt: skip
    folder = into_hub_cache(model, app, staged, files, commit)
    shutil.rmtree(staged, ignore_errors=True)
    return folder, verified


def is_commit(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", revision) is not None


def synthetic_commit(files: dict[str, tuple[int, str]]) -> str:
    """A stable 40-hex name for a snapshot no Hub commit vouches for (a branch revision)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path, (size, sha256) in sorted(files.items()):
        digest.update(f"{path}\0{size}\0{sha256}\n".encode())
    return digest.hexdigest()


def into_hub_cache(model: Model, app: Settings, staged: Path,
                    files: dict[str, tuple[int, str]], commit: str) -> Path:  # fmt: skip
    """huggingface_hub's cache layout: blobs/<hash>, snapshots/<commit>/<path> as relative
    links to them, refs/<branch> naming the commit. Each link is made beside its place and
    renamed over it, so a snapshot never holds a half-written file."""
    repo = Path(app.hub_cache) / ("models--" + model.repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for path, (_size, sha256) in sorted(files.items()):
        blob = repo / "blobs" / sha256
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            with replacing(blob, ".incomplete") as tmp:
                shutil.move(staged / path, tmp)  # a rename on one filesystem
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp_link = link.with_name(f".{link.name}.link")
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(os.path.relpath(blob, link.parent))
        tmp_link.replace(link)
    if not is_commit(model.revision):
        write_text(repo / "refs" / model.revision, commit)
    return snapshot
