"""A worker in its own process on this machine (cog's design): the child loads the model once
and runs the jobs the API process sends it over a pipe, sending back each step's progress and
the outcome. It reads the job's input and writes its video straight to the job store's folder
(same machine), so no frame crosses the pipe.

multiprocessing's spawn context rather than fork: a forked child would inherit the API process's
threads and locks (uvicorn, SQLite) and, were CUDA ever touched, a broken CUDA state.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from i2vkit.errors import ModelLoadError
from i2vkit.runtime.pipelines.base import OnProgress
from i2vkit.runtime.runner import Facts
from i2vkit.runtime.server import executor
from i2vkit.runtime.server.executor import Outcome, WorkerSpec
from i2vkit.runtime.server.store import Job, JobStore
from i2vkit.runtime.server.workers import WorkerLost

POLL = 0.2  # seconds between checks of the child's life and the job's cancel flag


class LocalProcess:
    def __init__(self, spec: WorkerSpec, name: str) -> None:
        self.spec = spec
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._cancel: Any = None

    def where(self) -> dict[str, Any]:
        return {"kind": "process", "pid": self._proc.pid if self._proc else None}

    def start(self, stopping: threading.Event) -> Facts:
        self.stop()
        self._conn, child = self._ctx.Pipe()
        self._cancel = self._ctx.Event()
        # not daemonic: a daemonic process may not start processes of its own (torch.compile's
        # workers); stop() ends it, and the child ends itself when this process is gone
        args = (self.spec, child, self._cancel, os.getpid())
        self._proc = self._ctx.Process(target=_child, name=self.name, args=args, daemon=False)
        self._proc.start()
        child.close()
        while not stopping.is_set():
            message = self._receive()
            if message is None:
                continue
            if message[0] == "failed":
                raise ModelLoadError(message[1])
            return message[1]
        raise WorkerLost("stopped while loading")

    def run(
        self, job: Job, store: JobStore, progress: OnProgress, cancelled: Callable[[], bool]
    ) -> tuple[Outcome, Facts]:
        self._cancel.clear()
        try:
            self._conn.send(("job", job.id, job.settings, str(store.input_path(job.id)),
                             str(store.output_path(job.id))))  # fmt: skip
        except OSError as error:  # the child is gone: a broken pipe
            raise WorkerLost(self._death()) from error
        checked = 0.0
        while True:
            message = self._receive()
            if time.monotonic() - checked > POLL:
                checked = time.monotonic()
                if not self._cancel.is_set() and cancelled():
                    self._cancel.set()  # the child sees it before its next step
            if message is None:
                continue
            if message[0] == "progress":
                progress(*message[1:])
            elif message[0] == "outcome":
                return message[1], message[2]

    def _receive(self) -> tuple[Any, ...] | None:
        """The child's next message, None when none came within POLL; WorkerLost when the
        child is dead (after the messages it sent before dying)."""
        try:
            if self._conn.poll(POLL):
                return self._conn.recv()
        except (EOFError, OSError) as error:
            raise WorkerLost(self._death()) from error
        if not self._proc.is_alive():
            raise WorkerLost(self._death())
        return None

    def _death(self) -> str:
        proc = self._proc
        proc.join(timeout=5)
        code = proc.exitcode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        return f"worker process {proc.pid} ({self.spec.device or 'default device'}) {how}"

    def stop(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)  # the child's loop ends; it exits
            conn.close()
        if proc is not None:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def _child(spec: WorkerSpec, conn: Any, cancel: Any, parent: int) -> None:
    """The worker process's main: load, say ready, run jobs until told to stop."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(processName)s]: %(message)s",
    )  # fmt: skip
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    try:
        runner = executor.load(spec)
    except BaseException as error:
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", runner.facts()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        _, job_id, settings, source, out = message
        outcome = executor.execute(
            runner, job_id, settings, Path(source), Path(out),
            progress=lambda stage, done, total: conn.send(("progress", stage, done, total)),
            cancelled=cancel.is_set,
        )  # fmt: skip
        conn.send(("outcome", outcome, runner.facts()))


def _exit_with(parent: int) -> None:
    """A worker never outlives its server, not even one killed with SIGKILL."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
