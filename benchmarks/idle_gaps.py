"""The GPU's idle gaps in a torch.profiler trace (no kernel or copy running) and the host calls
running during the long ones: a synchronisation there means the host waited on the GPU and then
kept it waiting; Python-side work shows as the aten ops and launches it makes. Shared by
step_profile.py (--idle) and tp_profile.py."""
from __future__ import annotations

import bisect
from collections import defaultdict

import torch

LONG_US = 20.0  # shorter gaps are launch latency between kernels, not the host's doing


def idle_gaps(prof) -> list[tuple[float, float]]:
    """(start, end) in us of every stretch with no GPU activity between the first and the last."""
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA)
    gaps, end = [], spans[0][1] if spans else 0.0
    for start, stop in spans[1:]:
        if start > end:
            gaps.append((end, start))
        end = max(end, stop)
    return gaps


def host_calls_during(prof, long_gaps: list[tuple[float, float]]) -> list[tuple[str, float]]:
    """Host calls by the time (us) they overlap `long_gaps`, most first (nested calls counted
    in each)."""
    overlap: dict[str, float] = defaultdict(float)
    ends = [b for _, b in long_gaps]  # the gaps are in time order and do not overlap
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue
        s, t = e.time_range.start, e.time_range.end
        i = bisect.bisect_right(ends, s)  # the first gap ending after the call starts
        while i < len(long_gaps) and long_gaps[i][0] < t:
            a, b = long_gaps[i]
            overlap[e.name] += min(t, b) - max(s, a)
            i += 1
    return sorted(overlap.items(), key=lambda kv: -kv[1])


def report(prof, per: float, unit: str, top: int = 15) -> list[str]:
    """Lines: the idle time and the long gaps' share, per `unit` (the run divided by `per`),
    then the host calls during the long gaps."""
    gaps = idle_gaps(prof)
    long_gaps = [g for g in gaps if g[1] - g[0] >= LONG_US]
    lines = [f"GPU idle {sum(b - a for a, b in gaps) / 1000 / per:.3f} ms per {unit} in {len(gaps)} gaps; "
             f"{len(long_gaps)} gaps >= {LONG_US:.0f} us hold {sum(b - a for a, b in long_gaps) / 1000 / per:.3f} ms "
             f"per {unit}",
             f"host calls during the gaps >= {LONG_US:.0f} us (us per {unit}, nested calls counted in each):"]
    lines += [f"  {us / per:8.1f}  {name[:100]}" for name, us in host_calls_during(prof, long_gaps)[:top]]
    return lines
