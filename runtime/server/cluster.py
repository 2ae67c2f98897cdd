"""Serving on a Ray cluster (`i2vkit serve --cluster HOST:6379`, or `auto` from
RAY_ADDRESS): the API node keeps the durable job store and the HTTP API; each GPU of the cluster
gets one Ray actor (`num_gpus=1`) that loads the model once and runs jobs. Progress comes back
per step as a Ray streaming generator, cancel reaches the actor through a second thread of it
(`max_concurrency=2`), and the video comes back through Ray's object store. An actor whose node
leaves mid-job raises RayActorError here: its job is retried by the `--interrupted` policy and a
new actor is asked for, which Ray places on any GPU free; GPUs that join get new workers.

Ray does the cluster (scheduling, placement, node membership, transport); i2vkit does not manage
nodes of its own. Ray is the optional extra `i2vkit[cluster]`.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2vkit import files
from i2vkit.errors import ConfigError
from i2vkit.runtime.pipelines.base import OnProgress
from i2vkit.runtime.runner import Facts
from i2vkit.runtime.server import executor
from i2vkit.runtime.server.executor import Outcome, WorkerSpec
from i2vkit.runtime.server.store import Job, JobStore
from i2vkit.runtime.server.workers import WorkerLost

if TYPE_CHECKING:
    from i2vkit.runtime.server.service import Service

log = logging.getLogger("i2vkit.cluster")

POLL = 0.2  # seconds between checks of the job's cancel flag while a step runs
GROW = 2.0  # seconds between looks for GPUs that joined
NAMESPACE = "i2vkit"


def check_ray() -> None:
    """ConfigError naming the fix when Ray is not installed (without importing it)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "--cluster needs Ray, which is not installed: pip install 'i2vkit[cluster]' "
            "(or `invoke setup --lock env/requirements/cluster.txt`)"
        )


def _ray() -> Any:
    check_ray()
    import ray

    return ray


def address(given: str) -> str:
    """The cluster's GCS address: as given, or RAY_ADDRESS's for `auto`. Not Ray Client's
    `ray://`: it does not carry the streaming generators the progress comes back through
    (ray-project/ray#43357), so every job would fail."""
    found = given
    if given == "auto":
        found = os.environ.get("RAY_ADDRESS", "")
        if not found:
            raise ConfigError("--cluster auto reads RAY_ADDRESS, which is not set: "
                              "give --cluster HOST:6379, the head's GCS address")  # fmt: skip
    if found.startswith("ray://"):
        raise ConfigError(
            f"--cluster {found}: Ray Client (ray://) does not stream the per-step progress "
            "i2vkit's workers send; run the API on a machine that can reach the cluster's "
            "nodes and give the head's GCS address, HOST:6379"
        )
    return found


class WorkerActor:
    """The body of the Ray actor (made remote in RayPool, since Ray is optional): one model
    load on the node's GPU; the settings (home, caches) are the node's own, from its env."""

    def __init__(self, spec: WorkerSpec) -> None:
        from i2vkit.settings import resolve

        self.spec = replace(spec, app=resolve({"model": spec.model}, {}, os.environ))
        self.runner: Any = None
        self.cancelled = threading.Event()
        self.job: str | None = None  # the job it runs

    def load(self) -> tuple[Facts, dict[str, Any]]:
        import ray

        self.runner = executor.load(self.spec)
        context = ray.get_runtime_context()
        where = {"node": ray.util.get_node_ip_address(), "node_id": context.get_node_id(),
                 "pid": os.getpid()}  # fmt: skip
        return self.runner.facts(), where

    def cancel(self, job_id: str) -> None:
        """Threaded actors do not order calls: a late cancel must not stop the next job."""
        if self.job == job_id:
            self.cancelled.set()

    def run(self, job_id: str, settings: dict[str, Any], png: bytes) -> Iterator[tuple[Any, ...]]:
        """A streaming generator: ("progress", stage, done, total) per step, then ("outcome",
        outcome, facts, the mp4's bytes or None)."""
        self.cancelled.clear()
        self.job = job_id
        events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        with tempfile.TemporaryDirectory() as tmp:
            source, out = Path(tmp) / "input.png", Path(tmp) / "output.mp4"
            source.write_bytes(png)

            def work() -> None:
                outcome = executor.execute(
                    self.runner, job_id, settings, source, out,
                    progress=lambda *step: events.put(("progress", *step)),
                    cancelled=self.cancelled.is_set,
                )  # fmt: skip
                events.put(("done", outcome))

            thread = threading.Thread(target=work, name=f"job-{job_id}", daemon=True)
            thread.start()
            while True:
                event = events.get()
                if event[0] == "done":
                    break
                yield event
            thread.join()
            outcome = event[1]
            data = out.read_bytes() if outcome["status"] == "succeeded" else None
        yield ("outcome", outcome, self.runner.facts(), data)


class RayBackend:
    """One worker slot's actor, seen from the API node."""

    def __init__(self, pool: RayPool) -> None:
        self.pool = pool
        self.actor: Any = None
        self.place: dict[str, Any] = {}
        self.running: str | None = None  # the job it runs

    def where(self) -> dict[str, Any]:
        return {"kind": "ray", "node": None, "node_id": None, "pid": None, **self.place}

    def start(self, stopping: threading.Event) -> Facts:
        ray = self.pool.ray
        self.stop()
        self.place = {}  # not placed until the actor has loaded
        self.actor = self.pool.actor_class.remote(self.pool.spec)
        ref = self.actor.load.remote()  # waits in Ray's queue until a GPU is free
        while not stopping.is_set():
            ready, _ = ray.wait([ref], timeout=0.5)
            if ready:
                try:
                    facts, self.place = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    raise WorkerLost(f"the Ray actor died while loading: {error}") from error
                except ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None
                return facts
        raise WorkerLost("stopped while loading")

    def run(
        self, job: Job, store: JobStore, progress: OnProgress, cancelled: Callable[[], bool]
    ) -> tuple[Outcome, Facts]:
        ray = self.pool.ray
        png = store.input_path(job.id).read_bytes()
        asked = False
        self.running = job.id
        try:
            stream = self.actor.run.remote(job.id, job.settings, png)
            while True:
                ready, _ = ray.wait([stream], timeout=POLL)
                if not asked and cancelled():
                    asked = True
                    self.actor.cancel.remote(job.id)  # runs on the actor's second thread
                if not ready:
                    continue
                event = ray.get(next(stream))
                if event[0] == "progress":
                    progress(*event[1:])
                    continue
                _, outcome, facts, data = event
                if data is not None:  # atomic: a partial video is never served
                    with files.replacing(store.output_path(job.id), suffix=".mp4") as tmp:
                        tmp.write_bytes(data)
                return outcome, facts
        except StopIteration as error:
            raise WorkerLost("the Ray actor ended the job without an outcome") from error
        except ray.exceptions.RayTaskError:
            raise
        except ray.exceptions.RayError as error:  # the actor, its node or its objects: gone
            node = self.place.get("node", "?")
            raise WorkerLost(f"the Ray actor on node {node} was lost: "
                             f"{str(error).splitlines()[0]}") from error  # fmt: skip
        finally:
            self.running = None

    def alive(self) -> bool:
        return True  # a lost actor is known at its next call: Ray raises RayActorError

    def cancel(self) -> None:
        if self.actor is not None and self.running:
            self.actor.cancel.remote(self.running)  # runs on the actor's second thread

    def stop(self) -> None:
        if self.actor is not None:
            try:
                self.pool.ray.kill(self.actor)
            except Exception:  # already gone with its node
                log.debug("actor already gone", exc_info=True)
            self.actor = None


class RayPool:
    """Connects to the cluster, starts a worker per GPU and adds workers as GPUs join."""

    def __init__(self, given: str, service: Service) -> None:
        self.ray = _ray()
        self.address = address(given)
        self.service = service
        self.spec = service.spec(None)  # the device is the GPU Ray gives each actor
        self.actor_class: Any = None
        self._stop = threading.Event()
        self._grower: threading.Thread | None = None

    def gpus(self) -> int:
        return int(self.ray.cluster_resources().get("GPU", 0))

    def start(self) -> None:
        ray = self.ray
        ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=True,
                 configure_logging=False)  # fmt: skip
        # max_restarts=0: a dead actor is replaced by the slot, which knows which job it ran
        self.actor_class = ray.remote(num_gpus=1, max_concurrency=2, max_restarts=0)(WorkerActor)
        gpus = self.gpus()
        if gpus == 0:
            raise ConfigError(
                f"the Ray cluster at {self.address} has no GPU: start a worker node with "
                "`ray start --address=HEAD:6379 --num-gpus=N` (docs/scaling.md)"
            )
        log.info("Ray cluster at %s: %d GPU(s) on %d node(s)", self.address, gpus,
                 len([n for n in ray.nodes() if n["Alive"]]))  # fmt: skip
        for _ in range(gpus):
            self.service.add(RayBackend(self))
        self._grower = threading.Thread(target=self._grow, name="i2vkit-ray-grow", daemon=True)
        self._grower.start()

    def _grow(self) -> None:
        while not self._stop.wait(GROW):
            try:
                gpus = self.gpus()
            except Exception:
                log.warning("could not read the Ray cluster's resources", exc_info=True)
                continue
            while len(self.service.slots) < gpus and not self._stop.is_set():
                slot = self.service.add(RayBackend(self))
                log.info("a GPU joined the cluster: %s starts", slot.name)

    def describe(self) -> dict[str, Any]:
        try:
            nodes = [n for n in self.ray.nodes() if n["Alive"]]
            return {"address": self.address, "gpus": self.gpus(), "nodes": len(nodes)}
        except Exception as error:
            return {"address": self.address, "error": str(error)}

    def stop_growing(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.ray.shutdown()
