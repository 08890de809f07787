"""The Ray executor (`--executor ray`): a stage's units of work as tasks on a Ray cluster.

The driver (the `pipe` process) keeps the stage session: the lock, the ledger buffer, Ctrl-C and
the summary. Only the per-unit work runs on the cluster, and the results stream back to the driver,
which records them as with the local executor, so a driver killed with SIGKILL resumes the same way.
Workers write their outputs straight into the dataset root, which must therefore be a path every
node of the cluster sees (a shared filesystem), as img2dataset assumes too.

Ray retries a task whose worker process or node was lost (`max_retries`), so a lost worker only
re-runs its units; nothing is recorded until a unit's results reach the driver, so no row is ever
written twice. A unit that keeps killing its worker is then split by the executor, and only the item
that kills a worker alone is recorded `worker_crashed` (see pipeline.executors).

`ray_address` None starts a local Ray runtime with `workers` CPUs for this run and stops it after;
`auto` (or an address) joins a running cluster and leaves it running.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pipeline.errors import PipeError, is_disk_full
from pipeline.executors import Backend, BatchFunction, Crashed, ExecutorSpec, ItemFunction, quiet_worker, run_items

INSTALL_HINT = "--executor ray needs Ray: pip install -e \".[ray]\" (or pip install \"ray[data]\")"
# How often Ray re-runs a unit whose worker process or node was lost, before the executor isolates it.
UNIT_RETRIES = 2

# Run tokens whose initializer has already run in this worker process (Ray reuses worker processes).
_INITIALIZED: set[str] = set()


def _run_unit(function: ItemFunction | BatchFunction, init: tuple, token: str, items: list) -> list:
    """What a Ray task runs: the stage's initializer once per worker process and run, then the unit."""
    if token not in _INITIALIZED:
        quiet_worker()
        initializer, initargs = init
        if initializer is not None:
            initializer(*initargs)
        _INITIALIZED.add(token)
    return run_items(function, items)


class UnitWorker:
    """A Ray actor that runs units: what the stage's function loads (networks) stays loaded in it
    between units, and a GPU it holds is its own."""

    def __init__(self, function: ItemFunction | BatchFunction, init: tuple) -> None:
        quiet_worker()
        initializer, initargs = init
        if initializer is not None:
            initializer(*initargs)
        self.function = function

    def run(self, items: list) -> list:
        return run_items(self.function, items)


def import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise PipeError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, workers: int) -> bool:
    """Join the cluster at `address`, or start a local runtime with `workers` CPUs (unless this process
    is connected already); returns whether this call started a local runtime (to be stopped after)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)
            return False
        ray.init(num_cpus=max(1, workers), **options)
        return True
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PipeError(f"--ray-address {address or '(local)'}: cannot start or join Ray: {exc}") from None


class RayBackend(Backend):
    """Units as Ray tasks; with `actors`, as calls to a pool of `UnitWorker` actors (one per GPU when
    each unit asks for `num_gpus`, else one per CPU of the cluster)."""

    def __init__(self, function: ItemFunction | BatchFunction, spec: ExecutorSpec, initializer, initargs: tuple, num_gpus: float = 0, actors: bool = False) -> None:  # noqa: ANN001
        ray = self.ray = import_ray()
        self.started_here = connect(spec.ray_address, spec.workers)
        self.function = ray.put(function)
        self.init = ray.put((initializer, initargs))
        self.token = uuid.uuid4().hex
        task = ray.remote(_run_unit)
        self.unit_task = task.options(num_gpus=num_gpus, max_retries=UNIT_RETRIES)
        # An item run alone after its unit crashed: once more is enough to name it.
        self.alone_task = task.options(num_gpus=num_gpus, max_retries=0)
        self.workers = self._start_actors(num_gpus) if actors else []
        self.running: dict[Any, Any] = {}  # handle -> the actor running it

    def _start_actors(self, num_gpus: float) -> list:
        resources = self.ray.cluster_resources()
        count = int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1))
        if count < 1:
            raise PipeError(f"the Ray cluster has no GPU for --device cuda (resources: {resources})")
        actor = self.ray.remote(UnitWorker).options(num_cpus=0 if num_gpus else 1, num_gpus=num_gpus, max_restarts=UNIT_RETRIES, max_task_retries=UNIT_RETRIES)
        return [actor.remote(self.function, self.init) for _ in range(count)]

    def start(self, items: list, alone: bool = False) -> Any:
        if not self.workers:
            task = self.alone_task if alone else self.unit_task
            return task.remote(self.function, self.init, self.token, items)
        load = {id(worker): 0 for worker in self.workers}
        for worker in self.running.values():
            load[id(worker)] += 1
        worker = min(self.workers, key=lambda w: load[id(w)])
        method = worker.run.options(max_task_retries=0) if alone else worker.run
        handle = method.remote(items)
        self.running[handle] = worker
        return handle

    def wait(self, handles: list, block: bool) -> list:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=None if block else 0)
        if ready and len(handles) > 1:  # with it, everything else that is already done
            ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return ready

    def result(self, handle: Any) -> list:
        exceptions = self.ray.exceptions
        self.running.pop(handle, None)
        try:
            return self.ray.get(handle)
        except exceptions.RayTaskError as exc:
            if is_disk_full(exc.cause):  # a full disk on a node: the same one line as locally
                raise exc.cause from None
            raise  # a bug in pipe's own unit code (item exceptions are caught inside the task)
        except exceptions.RayError as exc:  # the worker process or its node died
            logging.getLogger(__name__).info("a Ray worker was lost: %s", exc)
            raise Crashed from None

    def restart(self) -> bool:
        return False  # the other tasks in flight run on, in their own worker processes

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
