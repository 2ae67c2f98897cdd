"""The job store: a bounded queue persisted in SQLite, so no accepted job is lost to a crash.

A job is committed (row and input image on disk) before the API answers 202. At start-up, jobs a
crash interrupted mid-run are requeued or failed by policy; outputs are written atomically and
only served for succeeded jobs, so a partial video is never served. Ids are 128-bit random
(unguessable) and every path is derived from a validated id, never from a request.

SQLite from the standard library rather than a queue server: it is the embedded default, one
file, crash-safe with WAL and synchronous=FULL.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit.errors import JobNotFoundError, QueueFullError, StoreBusyError

FINAL = ("succeeded", "failed", "cancelled")
Deliver = Callable[[dict[str, Any] | None], None]
ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cause TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created, id);
"""
NEWEST_BEFORE = ("SELECT * FROM jobs WHERE (created, id) < (?, ?) "
                  "ORDER BY created DESC, id DESC LIMIT ?")  # fmt: skip
OLDEST_AFTER = ("SELECT * FROM jobs WHERE (created, id) > (?, ?) "
                 "ORDER BY created ASC, id ASC LIMIT ?")  # fmt: skip


@dataclass
class JobProgress:
    stage: str = ""
    step: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    step_times: list[float] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "total": self.total,
                "eta_seconds": self.eta()}  # fmt: skip

    def eta(self) -> float | None:
        if self.stage != "denoise" or len(self.step_times) < 2:
            return None
        per_step = (self.step_times[-1] - self.step_times[0]) / (len(self.step_times) - 1)
        return round(per_step * (self.total - self.step), 1)


@dataclass
class Job:
    id: str
    status: str
    settings: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    attempts: int
    cancel: bool
    error: str | None
    cause: str | None
    result: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["settings"] = json.loads(data["settings"])
        data["result"] = json.loads(data["result"]) if data["result"] else None
        data["cancel"] = bool(data["cancel"])
        return cls(**data)


class JobStore:
    """Thread-safe: the API's event loop and the worker threads share one store. One server
    owns a store at a time: an exclusive lock on `owner.lock`, held until `close()` or the
    process ends (the kernel releases it even after kill -9), so a second server on the same
    folder is refused before it can "recover" jobs the first one is running."""

    def __init__(self, folder: Path, queue_size: int, owner: str = "") -> None:
        self.folder = folder
        self.queue_size = queue_size
        for sub in ("inputs", "outputs"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self._owner = _own(folder / "owner.lock", owner)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            folder / "jobs.db", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted job survives power loss
        self._db.executescript(SCHEMA)
        self.progress: dict[str, JobProgress] = {}  # live progress of running jobs, in memory
        # told at once when a running job is cancelled (the service tells its worker, which
        # stops at its next step; the flag in the row is the record and the fallback)
        self.on_cancel: Callable[[str], None] = lambda job_id: None
        self.wake = threading.Condition(self._lock)
        # event-stream subscribers per job: every change is pushed, so no step is missed
        self._subscribers: dict[str, list[Deliver]] = {}

    # paths: derived from a checked id only
    def input_path(self, job_id: str) -> Path:
        return self.folder / "inputs" / f"{check_id(job_id)}.png"

    def output_path(self, job_id: str) -> Path:
        return self.folder / "outputs" / f"{check_id(job_id)}.mp4"

    def _one(self, sql: str, *args: Any) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def depth(self) -> int:
        return int(self._one("SELECT count(*) FROM jobs WHERE status IN ('queued','running')")[0])

    def submit(self, settings: dict[str, Any], image: bytes, retry_after: int) -> Job:
        """Persist a new job (its first frame's encoded bytes first, then the row) or raise
        QueueFullError. The image is encoded by the caller: nothing slow holds the lock."""
        job_id = secrets.token_urlsafe(16)
        if self.depth() >= self.queue_size:  # checked again under the lock; this saves a write
            raise QueueFullError(self.queue_size, retry_after)
        target = self.input_path(job_id)
        # not files.replacing: the rename must happen under the lock, with the row
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(image)
                out.flush()
                os.fsync(out.fileno())  # as the row: an accepted job survives power loss
            with self._lock:
                if self.depth() >= self.queue_size:
                    raise QueueFullError(self.queue_size, retry_after)
                tmp.replace(target)
                self._db.execute(
                    "INSERT INTO jobs (id, status, settings, created) VALUES (?, 'queued', ?, ?)",
                    (job_id, json.dumps(settings), time.time()),
                )
                self.wake.notify_all()
        finally:
            tmp.unlink(missing_ok=True)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        row = self._one("SELECT * FROM jobs WHERE id = ?", check_id(job_id))
        if row is None:
            raise JobNotFoundError(job_id)
        return Job.from_row(row)

    def recent(self, limit: int = 20) -> list[Job]:
        return self.page(None, limit)

    def page(self, after: str | None, limit: int, oldest_first: bool = False) -> list[Job]:
        """Up to `limit` jobs, newest first (or oldest), starting after the job `after`: a
        cursor on (created, id), so a page costs the same however many jobs there are.
        JobNotFoundError when `after` is not a job."""
        query = OLDEST_AFTER if oldest_first else NEWEST_BEFORE
        with self._lock:
            if after is None:  # from the first (or the last) job on
                cursor = (-math.inf, "") if oldest_first else (math.inf, "")
            elif (cursor := self._db.execute(
                    "SELECT created, id FROM jobs WHERE id=?", (check_id(after),)).fetchone()
                  ) is None:  # fmt: skip
                raise JobNotFoundError(after)
            rows = self._db.execute(query, (*cursor, limit)).fetchall()
        return [Job.from_row(r) for r in rows]

    def ahead(self, job_id: str) -> int:
        """How many queued or running jobs were created before this one (its place in line
        less one; the running ones count: they hold the workers it waits for)."""
        row = self._one(
            "SELECT count(*) FROM jobs WHERE status IN ('queued','running') AND created < "
            "(SELECT created FROM jobs WHERE id = ?)", check_id(job_id))  # fmt: skip
        return int(row[0])

    def claim(self) -> Job | None:
        """The oldest queued job, now running; None when the queue is empty."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET status='running', started=?, attempts=attempts+1 WHERE id=?",
                (time.time(), row["id"]),
            )
            self.progress[row["id"]] = JobProgress()
            self._publish(row["id"], None)
            return self.get(row["id"])

    def update_progress(self, job_id: str, stage: str, step: int, total: int) -> None:
        progress = self.progress.setdefault(job_id, JobProgress())
        if stage != progress.stage:
            progress.step_times = []
        progress.stage, progress.step, progress.total = stage, step, total
        progress.step_times.append(time.monotonic())
        self._publish(job_id, progress.snapshot())

    def subscribe(self, job_id: str, deliver: Deliver) -> None:
        """`deliver` is called (from the thread that changed it, so it must not block) with
        each progress snapshot of the job, and None when its state changes."""
        with self._lock:
            self._subscribers.setdefault(check_id(job_id), []).append(deliver)

    def unsubscribe(self, job_id: str, q: Deliver) -> None:
        with self._lock:
            subscribers = self._subscribers.get(job_id, [])
            if q in subscribers:
                subscribers.remove(q)
            if not subscribers:
                self._subscribers.pop(job_id, None)

    def _publish(self, job_id: str, snapshot: dict[str, Any] | None) -> None:
        with self._lock:
            for deliver in self._subscribers.get(job_id, []):
                deliver(snapshot)

    def finish(
        self, job_id: str, status: str, *, result: dict[str, Any] | None = None,
        error: str | None = None, cause: str | None = None,
    ) -> None:  # fmt: skip
        assert status in FINAL
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status=?, finished=?, result=?, error=?, cause=? WHERE id=?",
                (status, time.time(), json.dumps(result) if result else None, error, cause,
                 job_id),
            )  # fmt: skip
            self.progress.pop(job_id, None)
            self._publish(job_id, None)

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled now; a running one at its next step (the worker sees the
        flag); a finished one is left as it is."""
        with self._lock:
            job = self.get(job_id)
            if job.status == "queued":
                self.finish(job_id, "cancelled", error="cancelled before it started")
            elif job.status == "running":
                self._db.execute("UPDATE jobs SET cancel=1 WHERE id=?", (job_id,))
            job = self.get(job_id)
        if job.status == "running":  # outside the lock: the worker's side never holds it up
            self.on_cancel(job_id)
        return job

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._one("SELECT cancel FROM jobs WHERE id=?", job_id)[0])

    def interrupt(self, job_id: str, policy: str, max_attempts: int, why: str) -> str:
        """A running job whose worker died: requeued (policy 'retry', while attempts remain)
        or failed with the cause `interrupted`; its partial output removed. The new status."""
        with self._lock:
            job = self.get(job_id)
            if job.status != "running":
                return job.status
            self.output_path(job_id).unlink(missing_ok=True)
            if job.cancel:
                self.finish(job_id, "cancelled", error=f"cancelled; its worker was lost: {why}")
                return "cancelled"
            if policy == "retry" and job.attempts < max_attempts:
                self._db.execute("UPDATE jobs SET status='queued' WHERE id=?", (job_id,))
                self.progress.pop(job_id, None)
                self._publish(job_id, None)
                self.wake.notify_all()
                return "queued"
            self.finish(job_id, "failed", error=f"{why} (attempt {job.attempts} of "
                        f"{max_attempts})", cause="interrupted")  # fmt: skip
            return "failed"

    def recover(self, policy: str, max_attempts: int) -> list[str]:
        """After a crash: jobs left 'running' are requeued (policy 'retry', while attempts
        remain) or failed. Their partial outputs are removed. Returns their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM jobs WHERE status='running'"
            ).fetchall()
            for row in rows:
                self.output_path(row["id"]).unlink(missing_ok=True)
                if policy == "retry" and row["attempts"] < max_attempts:
                    self._db.execute("UPDATE jobs SET status='queued' WHERE id=?", (row["id"],))
                else:
                    self.finish(row["id"], "failed", error="interrupted by a server restart",
                                cause="interrupted")  # fmt: skip
            self._strays(0)
        return [r["id"] for r in rows]

    def _strays(self, age: float) -> int:
        """Remove temp files a crash or a killed write left (`.name.XXXX.tmp`, older than
        `age` seconds: a younger one may be a write in progress) and inputs without a job
        (a crash between the image and its row)."""
        removed, cutoff = 0, time.time() - age
        for sub in ("inputs", "outputs"):
            for stray in (self.folder / sub).glob(".*"):
                if _mtime(stray) < cutoff:
                    stray.unlink(missing_ok=True)
                    removed += 1
        known = {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}
        for picture in (self.folder / "inputs").glob("*.png"):
            if picture.stem not in known and _mtime(picture) < cutoff:
                picture.unlink(missing_ok=True)
                removed += 1
        return removed

    def sweep(self, retention_seconds: float) -> int:
        """Delete finished jobs (rows, inputs, outputs) older than the retention, and stray
        temp files older than an hour. The number of jobs deleted."""
        cutoff = time.time() - retention_seconds
        with self._lock:
            self._strays(3600)
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status IN ('succeeded','failed','cancelled') "
                "AND finished < ?",
                (cutoff,),
            ).fetchall()
            for row in rows:
                self.input_path(row["id"]).unlink(missing_ok=True)
                self.output_path(row["id"]).unlink(missing_ok=True)
                self._db.execute("DELETE FROM jobs WHERE id=?", (row["id"],))
        return len(rows)

    def delete(self, job_id: str) -> Job:
        """Remove a job (row, input, output) once it has ended; a queued one is cancelled and
        removed, a running one only cancelled (it stops at its next step: delete it again
        then). The job as it was; JobNotFoundError when there is none."""
        with self._lock:  # one hold: a stream woken by the cancel finds the job gone
            if self.get(job_id).status == "queued":
                self.finish(job_id, "cancelled", error="cancelled before it started")
            job = self.get(job_id)
            if job.status in FINAL:
                self.input_path(job_id).unlink(missing_ok=True)
                self.output_path(job_id).unlink(missing_ok=True)
                self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
                return job
        job = self.cancel(job_id)  # running (the worker is told outside the lock)
        return self.delete(job_id) if job.status in FINAL else job  # it ended meanwhile

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._owner.close()  # releases the lock


def _own(path: Path, owner: str) -> Any:
    """Hold an exclusive lock on `path` for as long as the returned file stays open, with who
    holds it written inside; StoreBusyError naming the holder when another process has it."""
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the store's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise StoreBusyError(path.parent, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}{', ' + owner if owner else ''}\n")
    handle.flush()
    return handle


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")  # gone already


def check_id(job_id: str) -> str:
    if not ID.match(job_id):
        raise JobNotFoundError(job_id)
    return job_id
