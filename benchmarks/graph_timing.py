"""A GPU call timed as the engine runs it: captured in a CUDA graph (`times` calls back to back,
as a decode step's layers run) and replayed; the median microseconds per call."""
from __future__ import annotations

import torch
import triton.testing


def graph_us(fn, times: int = 1, rep: int = 100) -> float:
    fn()  # Triton compiles and cuBLAS picks its kernel outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(times):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    return triton.testing.do_bench(graph.replay, warmup=10, rep=rep, return_mode="median") * 1e3 / times
