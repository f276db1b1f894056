"""A one-shot all-reduce for small messages between GPUs of one host, through PyTorch's
symmetric memory: every rank copies its partial sums into a buffer its peers can read over
NVLink, and one kernel per rank waits on a signal-pad barrier, then reads and adds every
rank's buffer. A decode step's all-reduces (batch x hidden, 7 KB at batch 1 of the 7B shape)
are latency-bound: NCCL spends most of its ~10-20 us per call launching and synchronising,
which this does in one kernel. It is captured in CUDA graphs like any kernel (the barrier
lives on the device).

Chosen once at group set-up, and only where it proves itself: every rank must have the ops,
peer access to every other GPU and the buffer; then it must give NCCL's sums, eagerly and
replayed from a CUDA graph. Otherwise (and on the CPU, and for messages over
ONE_SHOT_MAX_BYTES) the process group's own all-reduce runs. NVLink multicast is never used:
no multimem op, and the CUDA backend allocates without a multicast object
(TORCH_SYMM_MEM_DISABLE_MULTICAST=1, set here unless the environment says otherwise)."""
from __future__ import annotations

import logging
import os
import socket

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# Messages up to this size take the one-shot path: a decode step of up to 256 sequences of
# the 7B shape (256 x 3584 bf16 = 1.75 MiB). Larger ones (prefill chunks) go to NCCL, whose
# ring uses the links better once bandwidth, not latency, is what counts. Where the two
# cross on 2 H200s: benchmarks/allreduce_gpu.py.
ONE_SHOT_MAX_BYTES = 2 * 1024 * 1024
# The kernel reads and writes 16-byte vectors.
ALIGNMENT = 16
# What PyTorch's CUDA one-shot kernel sums (AT_DISPATCH_FLOAT_AND_BFLOAT16); fp16 goes to NCCL.
DTYPES = (torch.float32, torch.bfloat16)
# vLLM's switch for its own symmetric-memory all-reduce is honoured too.
SWITCHES = ("EMBER_ALLREDUCE_USE_SYMM_MEM", "VLLM_ALLREDUCE_USE_SYMM_MEM")


def fits_one_shot(x: torch.Tensor, max_bytes: int) -> bool:
    """Whether `x` can go through a one-shot buffer of `max_bytes`."""
    nbytes = x.numel() * x.element_size()
    return (x.dtype in DTYPES and x.is_contiguous() and 0 < nbytes <= max_bytes and nbytes % ALIGNMENT == 0
            and x.data_ptr() % ALIGNMENT == 0)


def switched_off() -> bool:
    return any(os.environ.get(name, "1").strip().lower() in ("0", "false", "off") for name in SWITCHES)


# Whether this process has entered a symmetric-memory rendezvous. Torch numbers the store
# exchanges of its rendezvous with one counter per process, so a second tensor-parallel engine
# in the same process (its driver's counter advanced by the first engine's group, its new
# workers' counters at zero) would wait for keys its peers never write (on 2 H200s the second
# engine of a pytest process did not finish; alone it passed in 46 s). Later groups take the
# process group's all-reduce instead.
_rendezvous_entered = False


def unavailable_reason(device: torch.device) -> str | None:
    """Why this rank cannot take part (None: it can), from what it alone can see."""
    if switched_off():
        return f"switched off ({' or '.join(SWITCHES)}=0)"
    if _rendezvous_entered:
        return "an earlier tensor-parallel group of this process took part in a rendezvous already"
    if device.type != "cuda":
        return f"the device is {device.type}, not cuda"
    try:
        import torch.distributed._symmetric_memory as symm_mem  # noqa: F401
    except ImportError as e:
        return f"torch.distributed._symmetric_memory is missing ({e})"
    ops = getattr(torch.ops, "symm_mem", None)
    if ops is None or not hasattr(ops, "one_shot_all_reduce_copy_out"):
        return f"torch {torch.__version__} has no torch.ops.symm_mem.one_shot_all_reduce_copy_out"
    enable = getattr(symm_mem, "enable_symm_mem_for_group", None)
    if enable is not None and getattr(enable, "__deprecated__", None) is None:
        # Before the rendezvous resolved groups by name, a group was registered once per
        # process under a name the next engine's group reuses, with the old group's store.
        return f"torch {torch.__version__} needs enable_symm_mem_for_group (torch 2.11 and later do not)"
    others = [i for i in range(torch.cuda.device_count()) if i != device.index]
    unreachable = [i for i in others if not torch.cuda.can_device_access_peer(device.index, i)]
    if unreachable:
        return f"cuda:{device.index} has no peer access to cuda:{unreachable}"
    return None


def _note_rendezvous() -> None:
    global _rendezvous_entered
    _rendezvous_entered = True


def _host() -> str:
    """This host's identity: its name and its kernel's boot (containers may share a name)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def all_ranks_agree(ok: bool, group, device: torch.device) -> bool:
    """True when `ok` holds on every rank (one collective of the process group)."""
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
    return bool(flag.item())


class SymmMemAllReduce:
    def __init__(self, buffer: torch.Tensor, handle, group_name: str, max_bytes: int):
        self.buffer = buffer  # uint8, this rank's part of the symmetric buffer
        self.handle = handle  # the rendezvous: peers' mappings of this buffer
        self.group_name = group_name
        self.max_bytes = max_bytes

    @classmethod
    def create(cls, group, device: torch.device, max_bytes: int = ONE_SHOT_MAX_BYTES) -> SymmMemAllReduce | None:
        """The one-shot all-reduce for `group` (a collective: every rank calls it), or None
        where it is unavailable or disagrees with the process group's all-reduce. Every rank
        makes the same collectives whatever fails where, and each step that could fail on one
        rank alone is followed by the ranks' agreement: no rank is left waiting in a
        rendezvous, a barrier or a collective that another has skipped."""
        backend = dist.get_backend(group)
        hosts = [None] * dist.get_world_size(group)
        dist.all_gather_object(hosts, _host(), group=group)
        reason = "the ranks span hosts" if len(set(hosts)) > 1 else unavailable_reason(device)
        buffer = None
        if reason is None:
            # No multicast object: nothing here uses multimem, and on a shared host NVLink
            # multicast is a risk of its own (unless someone explicitly asked for it).
            os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
            try:
                from torch.distributed._symmetric_memory import _SymmetricMemory
                # Outside symmetric memory's cached pool: freed with the tensor, so a later
                # engine in this process meets its peers afresh instead of reusing this group's.
                buffer = _SymmetricMemory.empty_strided_p2p((max_bytes,), (1,), torch.uint8, device)
            except Exception as e:  # noqa: BLE001 - any failure means the process group's all-reduce
                reason = f"allocating the symmetric buffer failed: {e!r}"
        if not all_ranks_agree(reason is None, group, device):
            logger.log(logging.INFO if switched_off() else logging.WARNING,
                       "All-reduce through %s: the one-shot path is unavailable (%s)", backend,
                       reason or "on another rank")
            return None
        fast = None
        try:
            import torch.distributed._symmetric_memory as symm_mem
            _note_rendezvous()
            fast = cls(buffer, symm_mem.rendezvous(buffer, group), group.group_name, max_bytes)
        except Exception as e:  # noqa: BLE001
            reason = f"the rendezvous failed: {e!r}"
        reason = fast._check(group, device, reason) if fast is not None else _failed_check(group, device, reason)
        if reason is not None:
            logger.warning("All-reduce through %s: the one-shot path failed its check (%s)", backend, reason)
            if fast is not None:
                fast.close()
            return None
        logger.info("All-reduce: one-shot through symmetric memory up to %d KiB, %s above",
                    max_bytes // 1024, backend)
        return fast

    def fits(self, x: torch.Tensor) -> bool:
        return fits_one_shot(x, self.max_bytes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of every rank's `x`, as a new tensor (the buffer is reused by the next call)."""
        staging = self.buffer[:x.numel() * x.element_size()].view(x.dtype).view(x.shape)
        out = torch.empty_like(x)
        return torch.ops.symm_mem.one_shot_all_reduce_copy_out(staging, x, "sum", self.group_name, out)

    def close(self) -> None:
        """Drop the buffer and the peers' mappings (before the process group goes). No wait
        for the device: after a rank died mid-step, a kernel of ours waits at the barrier for
        ever, and the rank leaving must not wait for it."""
        self.buffer = self.handle = None

    def _check(self, group, device: torch.device, reason: str | None) -> str | None:
        """None when the one-shot sums equal the process group's on every rank, eagerly and
        replayed from a CUDA graph, in every dtype; else what went wrong (here or elsewhere).
        Small integers: exact in any dtype and order of summation."""
        inputs, expected = _check_inputs(group, device)
        graph, captured = torch.cuda.CUDAGraph(), None
        if reason is None:
            try:
                # Every dtype on every rank, even after a difference: each call is a barrier.
                differ = [x.dtype for x, want in zip(inputs, expected) if not torch.equal(self(x), want)]
                if differ:
                    reason = f"eager sums in {differ} differ from {dist.get_backend(group)}'s"
                with torch.cuda.graph(graph):
                    captured = self(inputs[0])
            except Exception as e:  # noqa: BLE001
                reason = repr(e)
        # Replayed only once every rank has captured: a lone replay would wait for ever.
        if not all_ranks_agree(reason is None, group, device):
            return reason or "failed on another rank"
        try:
            graph.replay()
            torch.cuda.synchronize(device)
            if not torch.equal(captured, expected[0]):
                reason = "sums replayed from a CUDA graph differ"
            graph.reset()
        except Exception as e:  # noqa: BLE001
            reason = repr(e)
        if not all_ranks_agree(reason is None, group, device):
            return reason or "failed on another rank"
        return None


def _check_inputs(group, device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One input per dtype, different on each rank, and the process group's sums of them."""
    inputs = [((torch.arange(4096, device=device) % 7) + dist.get_rank(group)).to(dtype).view(16, 256)
              for dtype in DTYPES]
    expected = [x.clone() for x in inputs]
    for want in expected:
        dist.all_reduce(want, group=group)
    return inputs, expected


def _failed_check(group, device: torch.device, reason: str) -> str:
    """The collectives a check makes, on a rank whose rendezvous failed: so that the others,
    whose check makes them, are not left waiting."""
    _check_inputs(group, device)
    all_ranks_agree(False, group, device)
    return reason
