"""Host -> device copies that do not block the host. A copy from pageable memory waits until
the device has finished all earlier work, which would undo the overlap of host and device;
from pinned memory it is queued like a kernel."""
from __future__ import annotations

import numpy as np
import torch


def to_device(data: np.ndarray | list, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.from_numpy(data) if isinstance(data, np.ndarray) else torch.tensor(data)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)
