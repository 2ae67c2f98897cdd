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
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from i2vkit.errors import ModelLoadError
from i2vkit.runtime import parallel
from i2vkit.runtime.pipelines.base import OnProgress
from i2vkit.runtime.runner import Facts
from i2vkit.runtime.server import executor
from i2vkit.runtime.server.executor import Outcome, WorkerSpec
from i2vkit.runtime.server.store import Job, JobStore
from i2vkit.runtime.server.workers import WorkerLost

POLL = 0.2  # seconds between checks of the child's life and the job's cancel flag


class LocalProcess:
    """A worker: one process, or with `--parallel N` a group of N (one per device, rank 0
    talking to this process, runtime/parallel.py) that runs each job together."""

    def __init__(self, spec: WorkerSpec, name: str, devices: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.name = name
        self.devices = devices or (spec.device or "",)
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._conn: Any = None
        self._cancel: Any = None
        self._spent = False  # out of step (see run): restarted before its next job

    @property
    def _proc(self) -> Any:  # rank 0
        return self._procs[0] if self._procs else None

    def where(self) -> dict[str, Any]:
        pids = [p.pid for p in self._procs]
        return {"kind": "process", "pid": pids[0] if pids else None,
                **({"pids": pids} if len(self.devices) > 1 else {})}  # fmt: skip

    def start(self, stopping: threading.Event) -> Facts:
        self.stop()
        self._spent = False
        self._conn, child = self._ctx.Pipe()
        self._cancel = self._ctx.Event()
        port = _free_port() if len(self.devices) > 1 else 0
        for rank, device in enumerate(self.devices):
            spec = replace(self.spec, device=device or None)
            # not daemonic: a daemonic process may not start processes of its own
            # (torch.compile's workers); stop() ends it, and it ends itself with this process
            args = (spec, child if rank == 0 else None, self._cancel, os.getpid(), rank,
                    len(self.devices), port)  # fmt: skip
            proc = self._ctx.Process(target=_child, name=f"{self.name}.{rank}", args=args,
                                     daemon=False)  # fmt: skip
            proc.start()
            self._procs.append(proc)
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
        try:
            outcome, facts = self._run(job, store, progress, cancelled)
        except WorkerLost:
            raise
        except BaseException:  # the child may still be working on this job: never reuse it
            self._spent = True
            raise
        if outcome["status"] == "failed" and len(self._procs) > 1:
            self._spent = True  # a rank may have failed mid-collective: a fresh group
        return outcome, facts

    def _run(
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
                if message[1]["status"] == "failed":
                    self._check_ranks()
                return message[1], message[2]

    def alive(self) -> bool:
        return not self._spent and all(proc.is_alive() for proc in self._procs)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def _check_ranks(self) -> None:
        """A rank killed mid-job fails rank 0's job (a broken collective) before its death
        reaches us: that failure is the group's loss, not the job's."""
        for proc in self._procs[1:]:
            proc.join(timeout=1.0)
            if not proc.is_alive():
                raise WorkerLost(self._death(proc))

    def _receive(self) -> tuple[Any, ...] | None:
        """The child's next message, None when none came within POLL; WorkerLost when the
        child is dead (after the messages it sent before dying)."""
        try:
            if self._conn.poll(POLL):
                return self._conn.recv()
        except (EOFError, OSError) as error:
            raise WorkerLost(self._death()) from error
        for proc in self._procs:  # one rank gone and the group is broken
            if not proc.is_alive():
                raise WorkerLost(self._death(proc))
        return None

    def _death(self, proc: Any = None) -> str:
        proc = proc or self._proc
        proc.join(timeout=5)
        code = proc.exitcode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        rank = self._procs.index(proc) if proc in self._procs else 0
        device = self.devices[rank] or "default device"
        return f"worker process {proc.pid} ({device}{f', rank {rank}' if rank else ''}) {how}"

    def stop(self) -> None:
        procs, conn = self._procs, self._conn
        self._procs, self._conn = [], None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)  # the child's loop ends (and its group's); it exits
            conn.close()
        for proc in procs:
            proc.join(timeout=10)
        for proc in procs:  # a group whose rank died waits in a collective: kill the rest
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def _child(
    spec: WorkerSpec, conn: Any, cancel: Any, parent: int, rank: int = 0, world: int = 1,
    port: int = 0,
) -> None:  # fmt: skip
    """A worker process's main: load, say ready, run jobs until told to stop. In a group,
    rank 0 talks to the server and passes each message on to the other ranks."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(processName)s]: %(message)s",
    )  # fmt: skip
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    try:
        group = None
        if world > 1:
            executor.prepare(spec)
            group = parallel.init(rank, world, port, spec.device or "cpu")
        runner = executor.load(spec, group)
    except BaseException as error:
        if conn is not None:
            conn.send(("failed", f"{type(error).__name__}: {error}"))
        sys.exit(1)  # a rank that failed alone: the server sees it exit
    if conn is not None:
        conn.send(("ready", runner.facts()))
    while True:
        message = _next(conn, group, runner)
        if message is None:
            return
        _, job_id, settings, source, out = message
        if conn is not None:
            outcome = executor.execute(
                runner, job_id, settings, Path(source), Path(out),
                progress=lambda stage, done, total: conn.send(("progress", stage, done, total)),
                cancelled=(lambda: group.agree(cancel.is_set())) if group else cancel.is_set,
            )  # fmt: skip
            conn.send(("outcome", outcome, runner.facts()))
            continue
        assert group is not None  # another rank: the same job, its frames discarded
        with tempfile.TemporaryDirectory() as tmp:
            executor.execute(runner, job_id, settings, Path(source), Path(tmp) / "rank.mp4",
                             progress=lambda *_: None,
                             cancelled=lambda: group.agree(False))  # fmt: skip


def _next(conn: Any, group: parallel.Group | None, runner: Any) -> Any:
    """The next job message (None: stop), on every rank of a group alike. In a group, rank 0
    plans the job first and answers a refusal itself: the other ranks never start a job that
    rank 0 would leave (they would wait in a collective for good)."""
    while True:
        message = None
        if conn is not None:
            try:
                message = conn.recv()
            except EOFError:
                message = None
            if group is not None and message is not None:
                refused = executor.refusal(runner, message[1], message[2], Path(message[4]))
                if refused is not None:
                    conn.send(("outcome", refused, runner.facts()))
                    continue
        return group.broadcast(message) if group else message


def _free_port() -> int:
    """A loopback port for the group's rendezvous (rank 0's TCP store binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _exit_with(parent: int) -> None:
    """A worker never outlives its server, not even one killed with SIGKILL."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
