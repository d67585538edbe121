"""Where work items run: ``LocalBackend`` (this process, in order) or ``RayBackend`` (Ray tasks on a local
instance or a cluster; ``pip install 'medrecon[distributed]'``).

A backend gets the pending ``Task`` s of every volume of a run and calls ``on_result(task, result)`` on the
driver as each finishes, which saves it to the volume's ``.partial`` folder and writes the volume as soon as
its last item is in. Items are pure (``medrecon.jobs.work``), so the backends agree bit for bit on CPU at the
same torch thread count.

Ray: each task rebuilds its volume's job from the spec on the worker (``prepare_job``; the last one is kept per
worker process), so input files must be readable at the same paths on every node (one machine, or a shared
file system); results come back to the driver, which alone writes outputs. A worker that dies mid-item is
retried (``max_retries``) and continues from the item's last sampler checkpoint in ``.partial`` when the
workers can reach it. An item that fails for good does not stop the others: the volumes that can finish are
written, then the first error is raised, and ``--resume`` redoes only what is missing.
"""
from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from .work import ItemContext, ItemResult, WorkItem, execute_item

if TYPE_CHECKING:
    from .registry import Registry
    from .run import PreparedJob
    from .spec import JobSpec

__all__ = ["BACKENDS", "Backend", "LocalBackend", "RayBackend", "Task", "make_backend"]

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Task:
    """One work item of volume ``volume`` (its index in the run) with the run's shared context."""

    volume: int
    spec: JobSpec
    item: WorkItem
    context: ItemContext


Callback = Callable[[int, Any], None]


class Backend(Protocol):
    """Runs tasks and reports each result on the driver."""

    shows_step_progress: bool  # whether per-step progress bars make sense (items run in this process)
    prepare_device: str | None  # the driver's device for validating and assembling (None: the job's own)

    def describe(self) -> dict[str, Any]: ...

    def run(self, tasks: list[Task], job_of: Callable[[Task], PreparedJob],
            on_result: Callable[[Task, ItemResult], None], callback: Callback | None = None) -> None: ...


class LocalBackend:
    """Every task in this process, one after the other."""

    shows_step_progress = True
    prepare_device = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "local"}

    def run(self, tasks: list[Task], job_of: Callable[[Task], PreparedJob],
            on_result: Callable[[Task, ItemResult], None], callback: Callback | None = None) -> None:
        for task in tasks:
            on_result(task, execute_item(job_of(task), task.item, task.context, callback))


_WORKER_JOBS: dict[str, Any] = {}


def _execute_on_worker(spec: JobSpec, item: WorkItem, context: ItemContext, callback: Callback | None,
                       threads: int, registry: Registry | None) -> ItemResult:
    """A Ray task: the job rebuilt from ``spec`` (the last one kept per worker process), then ``execute_item``
    on the job's own device."""
    import torch

    from .registry import REGISTRY
    from .run import JobCache

    torch.set_num_threads(threads)
    cache = _WORKER_JOBS.setdefault("cache", JobCache(registry or REGISTRY))
    job = cache.get(spec)
    context = dataclasses.replace(context, device=str(job.device), progress=False)
    return execute_item(job, item, context, callback)


def _check_reachable(address: str) -> None:
    """Refuse an address with no Ray cluster listening (``host:port``; ``auto`` and ``ray://`` are left to Ray)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected host:port (e.g. 10.0.0.1:6379), auto or ray://...")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as err:
        raise ConfigError(f"--address {address}: no Ray cluster reachable there ({err.strerror or err}); start "
                          "one with `ray start --head` or check the address") from None


class RayBackend:
    """Tasks on Ray: a local instance (``num_cpus`` CPUs) when no ``address`` is given, else the cluster there.

    Args:
        address: ``host:port`` of a running cluster's head (``ray start --head``), ``auto``, or None.
        cpus_per_task: CPUs (and torch threads) per item.
        gpus_per_task: GPUs per item (``run.device = "cuda"`` needs at least one; fractions share a GPU).
        max_retries: retries of an item whose worker died.
        num_cpus: CPUs of the local instance (default: all).
        registry: the components the workers build jobs with (default: the driver's ``REGISTRY`` as it is when
            the tasks are submitted, so components registered by the driver reach the workers).
    """

    shows_step_progress = False
    prepare_device = "cpu"

    def __init__(self, address: str | None = None, cpus_per_task: int = 1, gpus_per_task: float = 0.0,
                 max_retries: int = 3, num_cpus: int | None = None, registry: Registry | None = None):
        if cpus_per_task < 1:
            raise ConfigError(f"--cpus-per-task {cpus_per_task}: need at least 1")
        if gpus_per_task < 0:
            raise ConfigError(f"--gpus-per-task {gpus_per_task}: need 0 or more")
        if max_retries < 0:
            raise ConfigError(f"--max-retries {max_retries}: need 0 or more")
        self.address, self.cpus_per_task, self.gpus_per_task = address, cpus_per_task, gpus_per_task
        self.max_retries, self.num_cpus, self.registry = max_retries, num_cpus, registry
        self._started = False

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address or "local", "cpus_per_task": self.cpus_per_task,
                "gpus_per_task": self.gpus_per_task, "max_retries": self.max_retries}

    def connect(self, specs: list[JobSpec] = ()) -> None:  # type: ignore[assignment]
        """Start or join the cluster and check it can run ``specs``: a one-line ``ConfigError`` for a missing
        Ray, an unreachable address, or more GPUs per task than the cluster has (before any compute)."""
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'medrecon[distributed]'") from None
        if any(spec.run.device.startswith("cuda") for spec in specs) and self.gpus_per_task == 0:
            self.gpus_per_task = 1.0
        if self.address is not None:
            _check_reachable(self.address)
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
                else:
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ConfigError(f"--address {self.address or 'local'}: cannot join the Ray cluster "
                                  f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
            self._started = True
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))
        if self.gpus_per_task > gpus:
            self.close()
            raise ConfigError(f"--gpus-per-task {self.gpus_per_task:g}: the Ray cluster "
                              f"({self.address or 'local'}) has {gpus:g} GPUs")
        if self.cpus_per_task > cpus:
            self.close()
            raise ConfigError(f"--cpus-per-task {self.cpus_per_task}: the Ray cluster "
                              f"({self.address or 'local'}) has {cpus:g} CPUs")

    def close(self) -> None:
        """Shut down the local instance this backend started (a joined cluster keeps running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, tasks: list[Task], job_of: Callable[[Task], PreparedJob],
            on_result: Callable[[Task, ItemResult], None], callback: Callback | None = None) -> None:
        import ray

        if not tasks:
            return
        if not ray.is_initialized():
            self.connect([t.spec for t in tasks])
        remote = ray.remote(_execute_on_worker).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=self.max_retries,
            retry_exceptions=False)
        from .registry import REGISTRY

        registry = ray.put(self.registry or REGISTRY)  # the driver's components, plug-ins included
        pending = {remote.remote(t.spec, t.item, t.context, callback, self.cpus_per_task, registry): t
                   for t in tasks}
        failure: BaseException | None = None
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayTaskError as err:  # the item's own error, raised on the driver
                failure = failure or _cause(err)
                continue
            except ray.exceptions.RayError as err:  # worker lost beyond the retries, object lost, ...
                failure = failure or RuntimeError(f"chunk {task.item.chunk} of {task.spec.data.options.get('path')}"
                                                  f" failed on Ray: {str(err).splitlines()[0]}")
                continue
            on_result(task, result)  # finished items are kept even after another item failed
        if failure is not None:
            raise failure


def _cause(err: Any) -> BaseException:
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else RuntimeError(str(err).splitlines()[0])


def make_backend(name: str, address: str | None = None, cpus_per_task: int = 1, gpus_per_task: float = 0.0,
                 max_retries: int = 3) -> Backend:
    """The backend called ``name`` (``BACKENDS``); Ray options are refused for the local backend."""
    if name == "local":
        if address is not None or gpus_per_task:
            raise ConfigError("--address and --gpus-per-task need --backend ray")
        return LocalBackend()
    if name == "ray":
        return RayBackend(address, cpus_per_task, gpus_per_task, max_retries)
    raise ConfigError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
