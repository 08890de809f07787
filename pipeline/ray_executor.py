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

from pipeline.errors import PipeError
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


def import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise PipeError(INSTALL_HINT) from None
    return ray


class RayBackend(Backend):
    def __init__(self, function: ItemFunction | BatchFunction, spec: ExecutorSpec, initializer, initargs: tuple, num_gpus: float = 0) -> None:  # noqa: ANN001
        ray = self.ray = import_ray()
        self.started_here = not ray.is_initialized()
        if self.started_here:
            options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
            try:
                if spec.ray_address:
                    ray.init(address=spec.ray_address, **options)
                else:
                    ray.init(num_cpus=max(1, spec.workers), **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise PipeError(f"--ray-address {spec.ray_address or '(local)'}: cannot start or join Ray: {exc}") from None
        self.function = ray.put(function)
        self.init = ray.put((initializer, initargs))
        self.token = uuid.uuid4().hex
        task = ray.remote(_run_unit)
        self.unit_task = task.options(num_gpus=num_gpus, max_retries=UNIT_RETRIES)
        # An item run alone after its unit crashed: once more is enough to name it.
        self.alone_task = task.options(num_gpus=num_gpus, max_retries=0)

    def start(self, items: list, alone: bool = False) -> Any:
        task = self.alone_task if alone else self.unit_task
        return task.remote(self.function, self.init, self.token, items)

    def wait(self, handles: list, block: bool) -> list:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=None if block else 0)
        if ready:  # everything else that is already done too
            more, _ = self.ray.wait([h for h in handles if h not in ready], num_returns=len(handles) - len(ready), timeout=0) if len(handles) > len(ready) else ([], [])
            ready += more
        return ready

    def result(self, handle: Any) -> list:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(handle)
        except exceptions.RayTaskError:
            raise  # a bug in pipe's own unit code (item exceptions are caught inside the task)
        except exceptions.RayError as exc:  # the worker process or its node died
            logging.getLogger(__name__).info("a Ray worker was lost: %s", exc)
            raise Crashed from None

    def restart(self) -> bool:
        return False  # the other tasks in flight run on, in their own worker processes

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
