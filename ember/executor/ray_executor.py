"""The ray backend: ranks 1.. as Ray actors, one per GPU (or per CPU rank), for tensor
parallelism across hosts. Ray is the distributed engine here: it starts the actors on the
cluster's nodes, places them with a placement group and carries the driver's calls to them.

The cluster: the one this process is already connected to, else the one RAY_ADDRESS names or a
`ray start` on this host runs (address "auto"), else a local instance started here and stopped
with the engine. The placement group has one bundle per rank; the first, pinned to this host,
is held for the driver's rank, which runs in this process. The ranks then meet in
torch.distributed through a TCP store on this host (NCCL between GPUs, gloo on the CPU)."""
from __future__ import annotations

import os
import socket
import weakref
from typing import Any

from ember.config import EngineConfig
from ember.distributed.parallel_state import destroy_tensor_parallel
from ember.executor.distributed import DistributedExecutor
from ember.executor.worker import RankSpec, Worker

PLACEMENT_TIMEOUT_S = 300


class RayWorker:
    """The actor: one rank's Worker, and a way to call it."""

    def start(self, config: EngineConfig, spec: RankSpec) -> None:
        self.worker = Worker(config, spec)

    def call(self, method: str, *args) -> Any:
        return getattr(self.worker, method)(*args)


class DriverSeat:
    """An idle actor in the driver's bundle: it holds the driver's GPU, so that Ray gives it to
    no one else, and says which GPU that is."""

    def gpu_ids(self) -> list:
        import ray

        return ray.get_gpu_ids()


def _connect(num_ranks: int) -> bool:
    """Join a Ray cluster; True when this call did so (and the engine should leave it)."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return True
    try:
        ray.init(address="auto")
    except ConnectionError:  # no cluster running: a local one, with a CPU slot for each CPU rank
        ray.init(num_cpus=max(os.cpu_count() or 1, num_ranks), include_dashboard=False)
    return True


def _stop_ray(actors: list, placement: list, disconnect: list) -> None:
    import ray
    from ray.util.placement_group import remove_placement_group

    destroy_tensor_parallel()
    if not ray.is_initialized():  # Ray's own exit handler came first: its actors are gone
        return
    for actor in actors:
        ray.kill(actor)
    if placement:
        remove_placement_group(placement[0])
    if disconnect and disconnect[0]:
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _local_cuda_index(gpu_id) -> int:
    """The device index in this process of the GPU Ray calls `gpu_id`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [v.strip() for v in visible.split(",")].index(str(gpu_id))
    return int(gpu_id)


class RayExecutor(DistributedExecutor):
    def __init__(self, config: EngineConfig):
        # Mutable holders, filled as resources are taken: the finalizer frees what exists.
        self._actors: list = []
        self._workers: list = []
        self._placement: list = []
        self._disconnect: list = []
        self._awaited: list = []    # calls whose results the driver reads next
        self._unchecked: list = []  # step calls, checked for failures as they finish
        self._stop = weakref.finalize(self, _stop_ray, self._actors, self._placement, self._disconnect)
        super().__init__(config)

    def _start_workers(self) -> tuple[str, str]:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self._disconnect.append(_connect(self.config.tensor_parallel_size))
        tp, cuda = self.config.tensor_parallel_size, self.config.device.startswith("cuda")
        resource = "GPU" if cuda else "CPU"
        available = ray.cluster_resources().get(resource, 0)
        if available < tp:
            raise ValueError(f"tensor_parallel_size={tp} needs {tp} {resource}s in the Ray cluster, which has "
                             f"{available:g}: add hosts with `ray start --address=...`.")
        here = ray.util.get_node_ip_address()
        bundles = [{resource: 1.0} for _ in range(tp)]
        bundles[0][f"node:{here}"] = 0.001  # the driver's rank runs in this process, on this host
        group = placement_group(bundles, strategy="PACK")
        self._placement.append(group)
        try:
            ray.get(group.ready(), timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"Ray could not place {tp} ranks of one {resource} each (the first on this host) "
                               f"within {PLACEMENT_TIMEOUT_S} s.") from None

        def in_bundle(i: int, cls: type):
            return ray.remote(cls).options(
                num_cpus=0 if cuda else 1, num_gpus=1 if cuda else 0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i))

        driver_device = "cpu"
        if cuda:
            seat = in_bundle(0, DriverSeat).remote()
            self._actors.append(seat)
            driver_device = f"cuda:{_local_cuda_index(ray.get(seat.gpu_ids.remote())[0])}"
        nodes = set(ray.util.placement_group_table(group)["bundles_to_node_id"].values())
        host = "127.0.0.1" if len(nodes) == 1 else here
        init_method = f"tcp://{host}:{_free_port()}"
        self._workers.extend(in_bundle(rank, RayWorker).remote() for rank in range(1, tp))
        self._actors.extend(self._workers)
        # Ray sets CUDA_VISIBLE_DEVICES of each actor to its GPU: it is cuda:0 there.
        self._awaited = [w.start.remote(self.config, RankSpec(rank, tp, init_method, "cuda:0" if cuda else "cpu"))
                         for rank, w in enumerate(self._workers, start=1)]
        return init_method, driver_device

    def _submit(self, method: str, args: tuple, reply: bool) -> None:
        calls = [w.call.remote(method, *args) for w in self._workers]
        if reply:
            self._awaited = calls
        else:
            self._unchecked.extend(calls)

    def _replies(self) -> list[Any]:
        import ray

        calls, self._awaited = self._awaited, []
        try:
            return ray.get(calls)
        except ray.exceptions.RayError as e:
            raise RuntimeError(f"A tensor-parallel Ray worker failed: {e}") from None

    def _raise_if_failed(self) -> None:
        import ray

        done = []
        if self._unchecked:
            done, self._unchecked = ray.wait(self._unchecked, num_returns=len(self._unchecked), timeout=0)
        if self._awaited:  # replies to come (at start-up): look without taking them from _replies
            done += ray.wait(self._awaited, num_returns=len(self._awaited), timeout=0)[0]
        try:
            ray.get(done)
        except ray.exceptions.RayError as e:
            raise RuntimeError(f"A tensor-parallel Ray worker failed: {e}") from None

    def _stop_workers(self) -> None:
        self._stop()
