"""Atomic files: written under a unique temporary name beside the target, renamed over it only
once complete, and the temporary removed whatever happens. A reader (or a crash) never sees a
half-written lockfile, config, record, video or model folder.

The shape of huggingface_hub's `_download_to_tmp_and_move`; rename is atomic within one
filesystem, which "beside the target" guarantees.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# a write failed for want of room: a full disk, a quota, a file-size limit (RLIMIT_FSIZE)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def replacing(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `target` for the caller (or a library) to write; it replaces
    `target` when the block ends normally, and is removed if the block raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str, mode: int | None = None) -> Path:
    """`text` at `target`, atomically; `mode` sets the permissions (mkstemp makes files 0600)."""
    with replacing(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)
    return target


@contextlib.contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target`; it replaces `target` (an old one is removed) when
    the block ends normally, and is removed if the block raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
