"""Without triton the kernel modules still import and the references work."""

import os
import subprocess
import sys

_SCRIPT = """
import sys
sys.modules["triton"] = None  # makes `import triton` raise ImportError
sys.modules["triton.language"] = None
import torch
from ember.kernels import triton_available
from ember.kernels import activation, kv_cache_write, paged_attention, rmsnorm, rotary
assert not triton_available()
x = torch.randn(2, 8)
assert torch.equal(activation.silu_and_mul_ref(x), torch.nn.functional.silu(x[:, :4]) * x[:, 4:])
try:
    rmsnorm.rms_norm(x, torch.ones(8), 1e-6)
except RuntimeError as e:
    assert "triton" in str(e)
else:
    raise AssertionError("expected RuntimeError")
print("ok")
"""


def test_modules_import_without_triton():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env,
                         cwd=root, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]
